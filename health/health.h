/*
 * health.h - regions, clusters and servers (the topology), the poller that
 * measures every server's bandwidth, and the state tables it publishes.
 *
 * Where it sits: health -> states -> resolver.  At snapshot build time the
 * configuration's `regions:`, `clusters:` and `health:` sections become an
 * immutable health_topo_t allocated in the snapshot's arena; it assigns
 * dense ids (0..n-1 in config order) to regions, clusters and servers and
 * owns two state tables (double buffering).  The poller (health_t) runs on
 * its own thread with its own libuv loop, polls each server's check, runs
 * the state machine (IDLE / BUSY / DOWN with hysteresis, UNKNOWN until the
 * first usable measurement), fills the back table and publishes it with one
 * atomic pointer store.  DNS workers read the latest table with one acquire
 * load per query and index it by the ids the topology assigned: no locks,
 * no allocation, no system calls on the query path.
 *
 * Ownership:
 *   - health_topo_t and everything reachable from it belong to the arena it
 *     was built in (the snapshot).  Free it only after health_apply() has
 *     moved the poller to another topology (or NULL) and every reader has
 *     passed a quiescent point.
 *   - health_t (the poller) owns its thread, loop, HTTP handles, per-server
 *     runtime state and the reason texts shown by status.
 *
 * Threads: build and health_apply() on the main (control) thread;
 * health_table_acquire() and the inline readers on any thread;
 * health_status_write() on any thread (control plane; takes a mutex).
 */
#ifndef STEERDNS_HEALTH_HEALTH_H
#define STEERDNS_HEALTH_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"

/* ------------------------------------------------------------------------ */
/* States and reasons                                                        */
/* ------------------------------------------------------------------------ */

/* A server's or cluster's state.  UNKNOWN means "no usable measurement
 * yet": the resolver treats it as usable with utilisation 0 (see
 * health_state_usable()); status prints it as such. */
typedef enum health_state {
    HEALTH_UNKNOWN = 0,
    HEALTH_IDLE = 1, /* utilisation below the threshold: may take new clients */
    HEALTH_BUSY = 2, /* at or above the threshold (or forced BUSY): up, but full */
    HEALTH_DOWN = 3, /* failing, stale or forced DOWN */
} health_state_t;

/* Why a server or cluster is in its state: a short code published with the
 * state (health_reason_str() gives its text).  The detailed text of the
 * last failure ("HTTP 503", "line 3: expected a value") is kept by the
 * poller and shown by health_status_write(). */
typedef enum health_reason {
    HEALTH_R_NONE = 0,       /* no sample yet */
    HEALTH_R_BELOW,          /* utilisation below the threshold */
    HEALTH_R_ABOVE,          /* utilisation at or above the threshold */
    HEALTH_R_HOLD_BUSY,      /* BUSY: below threshold but not yet below the return threshold */
    HEALTH_R_HOLD_IDLE,      /* IDLE: above threshold, waiting for busy_after samples */
    HEALTH_R_RISING,         /* DOWN: succeeding, waiting for `rise` successes */
    HEALTH_R_FIRST_SAMPLE,   /* UNKNOWN: counter read once; a rate needs two samples */
    HEALTH_R_COUNTER_RESET,  /* counter went backwards (restart): new baseline */
    HEALTH_R_LIVE,           /* tcp or file check: up, no bandwidth data */
    HEALTH_R_TIMEOUT,        /* no complete answer within the timeout */
    HEALTH_R_CONNECT,        /* connection refused or failed */
    HEALTH_R_TRANSPORT,      /* other transport error (reset, empty reply, ...) */
    HEALTH_R_HTTP_STATUS,    /* HTTP status other than 2xx */
    HEALTH_R_HTML,           /* HTML where metrics or JSON were expected */
    HEALTH_R_PARSE,          /* malformed Prometheus exposition */
    HEALTH_R_NO_METRIC,      /* the metric / series is missing */
    HEALTH_R_BAD_JSON,       /* malformed JSON */
    HEALTH_R_NO_FIELD,       /* the JSON field is missing */
    HEALTH_R_BAD_VALUE,      /* NaN, infinite, negative counter, not a number */
    HEALTH_R_NEGATIVE_RATE,  /* a gauge reported a negative rate */
    HEALTH_R_BODY_TOO_LARGE, /* response larger than health.max_body */
    HEALTH_R_STALE,          /* no usable measurement for stale_after */
    HEALTH_R_FILE,           /* file check: cannot read or parse the state file */
    HEALTH_R_FILE_DOWN,      /* file check: the file says DOWN */
    HEALTH_R_FILE_BUSY,      /* file check: the file says BUSY */
    HEALTH_R_ADMIN_DOWN,     /* admin file forces DOWN */
    HEALTH_R_ADMIN_BUSY,     /* admin file forces BUSY */
    HEALTH_R_ADMIN_UP,       /* admin file forces UP (never DOWN) */
    HEALTH_R_CLUSTER,        /* cluster: derived from its servers' states */
    HEALTH_R_COUNT_
} health_reason_t;

/* Flags published with a server's state. */
#define HEALTH_F_ADMIN   0x1u /* the admin file overrides this server */
#define HEALTH_F_NO_RATE 0x2u /* the check gives no bandwidth (tcp, file) */

const char *health_state_str(health_state_t s);   /* "IDLE", "BUSY", ... */
const char *health_reason_str(health_reason_t r); /* "below threshold", ... */

/* True when a server or cluster in state s may receive new clients:
 * IDLE, or UNKNOWN (no measurement yet; counted with utilisation 0). */
static inline bool health_state_usable(health_state_t s)
{
    return s == HEALTH_IDLE || s == HEALTH_UNKNOWN;
}

/* ------------------------------------------------------------------------ */
/* Topology: built from YAML at snapshot build time, immutable afterwards    */
/* ------------------------------------------------------------------------ */

typedef enum health_check_kind {
    HEALTH_CHECK_PROMETHEUS = 0,
    HEALTH_CHECK_JSON = 1,
    HEALTH_CHECK_TCP = 2,
    HEALTH_CHECK_FILE = 3,
} health_check_kind_t;

typedef enum health_mode {
    HEALTH_MODE_COUNTER = 0, /* a monotonic counter: rate = delta / time */
    HEALTH_MODE_GAUGE = 1,   /* the value is already a rate (per second) */
} health_mode_t;

/* One server's check, resolved (defaults from `health:` filled in). */
typedef struct health_check {
    health_check_kind_t kind;
    const char *url;                /* prometheus, json */
    const char *metric;             /* prometheus */
    const char *const *label_names; /* prometheus: exact label matchers */
    const char *const *label_values;
    uint32_t n_labels;
    const char *field;                /* json: dotted path such as net.eth0.tx_bps */
    health_mode_t mode;               /* prometheus, json */
    double unit_bits;                 /* bits per unit of the value: 8 for bytes */
    const char *unit;                 /* the unit's name as configured */
    const char *address;              /* tcp: "192.0.2.1:80" as written */
    netaddr_t addr;                   /* tcp: parsed address */
    uint16_t port;                    /* tcp */
    const char *path;                 /* file: resolved against base_dir */
    uint64_t interval_ms, timeout_ms; /* per check */
    uint64_t stale_after_ms;          /* resolved (never 0) */
    const yconf_node_t *node;         /* the check: mapping, for positions */
} health_check_t;

typedef struct health_region {
    const char *name;
    double lat, lon;            /* degrees */
    const char *country;        /* ISO 3166-1 alpha-2, or NULL */
    const yconf_node_t *match;  /* opaque to health; parsed by geo; may be NULL */
    const uint32_t *neighbours; /* explicit order of other regions (ids) */
    uint32_t n_neighbours;
    const uint32_t *fallback;      /* every other region: neighbours first, then by
                                      great-circle distance (ties: id order) */
    uint32_t n_fallback;           /* n_regions - 1 */
    const yconf_node_t *node;      /* the region's mapping, for positions */
    const yconf_node_t *name_node; /* its key */
} health_region_t;

typedef struct health_cluster {
    const char *name;
    uint32_t region;     /* region id */
    const char *carrier; /* carrier id as written; validated by the snapshot */
    const yconf_node_t *carrier_node;
    uint32_t weight;
    const uint8_t (*entry4)[4]; /* IPv4 entry addresses, network order */
    uint32_t n_entry4;
    const uint8_t (*entry6)[16]; /* IPv6 entry addresses */
    uint32_t n_entry6;
    uint32_t first_server, n_servers; /* servers first_server .. first_server+n_servers-1 */
    uint64_t capacity_bps;            /* sum of its servers' capacities */
    const yconf_node_t *node;
    const yconf_node_t *name_node;
} health_cluster_t;

typedef struct health_server {
    const char *name;      /* unique within its cluster */
    uint32_t cluster;      /* cluster id */
    uint64_t capacity_bps; /* link bandwidth, bit/s (> 0) */
    const health_check_t *check;
    const yconf_node_t *node;
    const yconf_node_t *name_node;
} health_server_t;

/* The `health:` section, resolved. */
typedef struct health_settings {
    uint64_t interval_ms;       /* default check interval */
    uint64_t timeout_ms;        /* default check timeout (0 in YAML = the interval) */
    uint64_t stale_after_ms;    /* default staleness limit (0 = 3 x the check's interval) */
    double threshold;           /* BUSY at or above this utilisation (0.9) */
    double return_threshold;    /* BUSY -> IDLE only below this (threshold - 5 points) */
    uint32_t busy_after;        /* samples at/above threshold before IDLE -> BUSY */
    uint32_t idle_after;        /* samples below return threshold before BUSY -> IDLE */
    uint32_t fall;              /* consecutive failures before DOWN */
    uint32_t rise;              /* consecutive usable samples before leaving DOWN */
    uint64_t max_body;          /* response body cap, bytes */
    const char *admin_file;     /* resolved path of the admin state file, or NULL */
    uint64_t admin_interval_ms; /* how often the admin file is checked for changes */
    uint32_t max_connections;   /* open HTTP connections kept, 0 = one per server */
} health_settings_t;

typedef struct health_topo health_topo_t;

typedef struct health_config_in {
    const yconf_node_t *regions;  /* `regions:` mapping, or NULL (no regions) */
    const yconf_node_t *clusters; /* `clusters:` mapping, or NULL */
    const yconf_node_t *health;   /* `health:` mapping, or NULL (all defaults) */
    const char *base_dir;         /* relative paths (admin_file, file checks) start here;
                                     NULL = the current directory */
} health_config_in_t;

/* Build the topology from the three sections.  Every problem is added to d
 * with its position (unknown and duplicate keys, bad values, cross
 * references such as an unknown region) and building goes on, so one run
 * reports them all.  Returns 0 and sets *out, or -EINVAL when at least one
 * error was added (*out untouched).  Everything is allocated in a.  Never
 * exits.  Main thread (any single thread). */
int health_topo_build(const health_config_in_t *in, arena_t *a, diag_list_t *d,
                      health_topo_t **out);

uint32_t health_topo_regions(const health_topo_t *t);
uint32_t health_topo_clusters(const health_topo_t *t);
uint32_t health_topo_servers(const health_topo_t *t);
/* The id must be below the corresponding count. */
const health_region_t *health_topo_region(const health_topo_t *t, uint32_t id);
const health_cluster_t *health_topo_cluster(const health_topo_t *t, uint32_t id);
const health_server_t *health_topo_server(const health_topo_t *t, uint32_t id);
const health_settings_t *health_topo_settings(const health_topo_t *t);

/* Name lookups for build time (linear; not for the query path).  Return the
 * id, or -1 when there is no such name. */
int64_t health_topo_find_region(const health_topo_t *t, const char *name);
int64_t health_topo_find_cluster(const health_topo_t *t, const char *name);
int64_t health_topo_find_server(const health_topo_t *t, uint32_t cluster, const char *name);

/* Great-circle distance between two regions in km (haversine). */
double health_region_distance_km(const health_region_t *a, const health_region_t *b);

/* ------------------------------------------------------------------------ */
/* Published state tables (read on the query path)                           */
/* ------------------------------------------------------------------------ */

/* A server's published view.  Fields are relaxed atomics: a reader that
 * keeps a table across two publications reads stale but sane values, never
 * a data race.  Read them through the accessors below. */
typedef struct health_server_view {
    _Atomic uint32_t word;      /* state | reason << 8 | flags << 16 */
    _Atomic uint32_t util_ppm;  /* utilisation in millionths (1000000 = 100%) */
    _Atomic uint64_t rate_bps;  /* last measured rate, bit/s */
    _Atomic uint64_t sample_ms; /* health_clock_ms() of the last usable sample; 0 = none */
    _Atomic uint64_t seq;       /* +1 per new measurement or state change */
} health_server_view_t;

typedef struct health_cluster_view {
    _Atomic uint32_t word;     /* state | reason << 8 */
    _Atomic uint32_t util_ppm; /* capacity-weighted utilisation of the servers up */
    _Atomic uint32_t n_idle, n_busy, n_down, n_unknown;
    _Atomic uint64_t rate_bps;  /* sum of the rates of the servers up */
    _Atomic uint64_t sample_ms; /* newest sample of any of its servers */
    _Atomic uint64_t seq;       /* +1 per new measurement or state change of a server */
} health_cluster_view_t;

/* One of the two tables a topology owns. */
typedef struct health_table {
    _Atomic uint64_t pub_seq;        /* publication number (0 = initial, all UNKNOWN) */
    _Atomic uint64_t pub_ms;         /* health_clock_ms() of the publication */
    health_server_view_t *servers;   /* [n_servers], indexed by server id */
    health_cluster_view_t *clusters; /* [n_clusters], indexed by cluster id */
    uint32_t n_servers, n_clusters;
} health_table_t;

/* The latest published table: one acquire load.  Never NULL (the initial
 * table of a freshly built topology has every server and cluster UNKNOWN).
 * Any thread; allocation-free; valid as long as the topology is. */
const health_table_t *health_table_acquire(const health_topo_t *topo);

/* Monotonic milliseconds (CLOCK_MONOTONIC), the clock of sample_ms and
 * pub_ms.  Any thread. */
uint64_t health_clock_ms(void);

#define HEALTH__LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static inline health_state_t health_server_state(const health_table_t *t, uint32_t id)
{
    return (health_state_t)(HEALTH__LOAD(t->servers[id].word) & 0xffu);
}
static inline health_reason_t health_server_reason(const health_table_t *t, uint32_t id)
{
    return (health_reason_t)((HEALTH__LOAD(t->servers[id].word) >> 8) & 0xffu);
}
static inline uint32_t health_server_flags(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->servers[id].word) >> 16;
}
/* Utilisation as a fraction (0.42 = 42%); may exceed 1. */
static inline double health_server_util(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->servers[id].util_ppm) / 1e6;
}
static inline uint64_t health_server_rate(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->servers[id].rate_bps);
}
static inline uint64_t health_server_sample_ms(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->servers[id].sample_ms);
}
static inline uint64_t health_server_seq(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->servers[id].seq);
}

/* Cluster state: IDLE when at least one server is IDLE; else UNKNOWN when
 * at least one server is UNKNOWN; else BUSY when at least one is BUSY;
 * else DOWN.  Use health_state_usable() to decide whether to answer. */
static inline health_state_t health_cluster_state(const health_table_t *t, uint32_t id)
{
    return (health_state_t)(HEALTH__LOAD(t->clusters[id].word) & 0xffu);
}
/* Capacity-weighted utilisation of the servers that are up (IDLE, BUSY,
 * and UNKNOWN counted as 0); 1.0 when every server is DOWN. */
static inline double health_cluster_util(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].util_ppm) / 1e6;
}
static inline uint32_t health_cluster_idle(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].n_idle);
}
static inline uint32_t health_cluster_busy(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].n_busy);
}
static inline uint32_t health_cluster_down(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].n_down);
}
static inline uint32_t health_cluster_unknown(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].n_unknown);
}
static inline uint64_t health_cluster_rate(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].rate_bps);
}
static inline uint64_t health_cluster_sample_ms(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].sample_ms);
}
static inline uint64_t health_cluster_seq(const health_table_t *t, uint32_t id)
{
    return HEALTH__LOAD(t->clusters[id].seq);
}
static inline uint64_t health_table_seq(const health_table_t *t)
{
    return atomic_load_explicit(&t->pub_seq, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* The poller                                                                */
/* ------------------------------------------------------------------------ */

typedef struct health health_t;

/* Create a stopped poller (no thread yet).  Returns 0 or -ENOMEM (*out
 * untouched).  Main thread. */
int health_new(health_t **out);

/* Start the poller thread with its own libuv loop.  Returns 0 or a negative
 * errno.  Main thread; at most once. */
int health_start(health_t *h);

/* Set a callback run on the poller thread after each publication (the
 * caller forwards it, e.g. with uv_async_send; it must not block).  A
 * health_apply() before health_start() publishes, and so calls it, on the
 * caller's thread.  Call before health_start() and health_apply(). */
void health_set_notify(health_t *h, void (*cb)(void *arg), void *arg);

/* Make the poller adopt topo (NULL: poll nothing).  State carries over from
 * the previous topology for servers with the same cluster name, server name
 * and check; the new topology's first table (carried states, others
 * UNKNOWN) is published before this returns.  Returns 0 once the poller no
 * longer touches the previous topology (which may then be freed), or
 * -EBUSY when topo is already adopted by another poller.  A topology is
 * adopted by at most one poller.  Main thread; may be called before
 * health_start(). */
int health_apply(health_t *h, health_topo_t *topo);

/* Write the state of every server and cluster of topo to t, one line each
 * (format in docs/health.md), a header line first, each cluster followed
 * by its servers:
 *   health servers=2 clusters=1 publication=812 published=3ms
 *   cluster bj-telecom state=IDLE util=42.0% rate=4.20Gbit/s idle=1 busy=0
 *           down=0 unknown=0 seq=17 reason="from its servers"
 *           detail="1 of 1 servers idle"
 *   server bj-telecom/bj-t-1 state=IDLE util=42.0% rate=4.20Gbit/s age=312ms
 *          seq=17 kind=prometheus reason="below threshold" detail="42.0% < 90%"
 * Detailed reason texts come from h when topo is the topology h polls;
 * otherwise the reason code's text is shown.  h may be NULL.  Any thread. */
void health_status_write(health_t *h, const health_topo_t *topo, const trace_t *t);

/* Counters for monitoring and the bench.  Any thread. */
typedef struct health_stats {
    uint64_t polls;        /* checks started */
    uint64_t failures;     /* checks that failed */
    uint64_t publications; /* tables published */
    uint64_t transitions;  /* server state changes */
    uint64_t cpu_ns;       /* CPU time used by the poller thread */
} health_stats_t;
void health_get_stats(health_t *h, health_stats_t *out);

/* Stop the thread (joins it), release every handle and free h.  The
 * adopted topology is left as it is (its last table stays published).
 * NULL is ignored.  Main thread. */
void health_stop(health_t *h);

/* Negative errno-style code -> text. */
const char *health_strerror(int err);

#endif
