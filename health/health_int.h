/*
 * health_int.h - internals shared by the files of the health room (prefix
 * health__).  Never included from outside health/ and its own tests.
 *
 * What lives here: the topology struct (built by health_topo.c, read by
 * everyone), the pure state machine, rate and cluster aggregation of
 * health_state.c (unit-tested on their own), the publication helpers, and
 * the poller's hooks used by health_status.c.
 *
 * Flow: health_topo.c (config -> topology) -> health_poller.c (checks ->
 * health_state.c -> back table -> publish) -> readers (resolver, status).
 */
#ifndef STEERDNS_HEALTH_INT_H
#define STEERDNS_HEALTH_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "health/health.h"
#include "health/health_parse.h"

/* Caps on configuration sizes, so a hostile file cannot exhaust memory. */
#define HEALTH__MAX_REGIONS  4096u
#define HEALTH__MAX_CLUSTERS 100000u
#define HEALTH__MAX_SERVERS  1000000u
#define HEALTH__MAX_ENTRIES  64u
#define HEALTH__MAX_NAME     63u

struct health_topo {
    health_region_t *regions;
    uint32_t n_regions;
    health_cluster_t *clusters;
    uint32_t n_clusters;
    health_server_t *servers;
    uint32_t n_servers;
    health_check_t *checks; /* [n_servers] */
    health_settings_t settings;
    /* Double buffer: the poller writes the table `current` does not point
     * to, then publishes it with a release store. */
    health_table_t tables[2];
    _Atomic(health_table_t *) current;
    /* The poller that adopted this topology (NULL: none).  Written by
     * health_apply on the main thread only. */
    _Atomic(void *) owner;
};

/* ---- the state machine of one server (pure; health_state.c) ---- */

typedef struct health__params {
    double threshold;        /* BUSY at or above */
    double return_threshold; /* back to IDLE only below */
    uint32_t busy_after, idle_after;
    uint32_t fall, rise;
    uint64_t stale_ms;
} health__params_t;

typedef struct health__sm {
    health_state_t state;
    health_reason_t reason;
    uint32_t fails;        /* consecutive failed polls */
    uint32_t goods;        /* consecutive usable measurements */
    uint32_t streak;       /* consecutive samples pulling IDLE<->BUSY */
    bool has_sample;       /* util/rate hold a measurement */
    bool no_rate;          /* the last measurement carried no bandwidth */
    bool stale_down;       /* DOWN because no usable sample came for stale_ms */
    double util;           /* last utilisation (fraction) */
    uint64_t rate_bps;     /* last rate */
    uint64_t last_good_ms; /* last usable measurement (or start of polling) */
    uint64_t sample_ms;    /* last usable measurement; 0 = never */
    uint64_t seq;          /* +1 per usable measurement or state change */
} health__sm_t;

void health__params_from_settings(health__params_t *p, const health_settings_t *s,
                                  const health_check_t *c);

/* Start in UNKNOWN; staleness is counted from now_ms. */
void health__sm_init(health__sm_t *sm, uint64_t now_ms);

/* The functions below return true when the state changed. */

/* A usable measurement: utilisation util, rate_bps bit/s (no_rate: the
 * check gives liveness only, util and rate are 0). */
bool health__sm_sample(health__sm_t *sm, const health__params_t *p, uint64_t now_ms, double util,
                       uint64_t rate_bps, bool no_rate);

/* A poll that worked but gave no measurement (the first counter value, a
 * counter reset, a timestamp that did not advance). */
bool health__sm_nodata(health__sm_t *sm, const health__params_t *p, uint64_t now_ms,
                       health_reason_t why);

/* A failed poll: DOWN after p->fall of them in a row. */
bool health__sm_fail(health__sm_t *sm, const health__params_t *p, uint64_t now_ms,
                     health_reason_t why);

/* A state stated by a file check (no hysteresis; liveness only). */
bool health__sm_force(health__sm_t *sm, uint64_t now_ms, health_state_t state, health_reason_t why);

/* Time passes: DOWN (STALE) when no usable measurement for p->stale_ms. */
bool health__sm_tick(health__sm_t *sm, const health__params_t *p, uint64_t now_ms);

/* ---- counters -> rates (pure; health_state.c) ---- */

typedef struct health__counter {
    bool valid;
    bool remote_ts; /* t_ns came from the exposition's timestamp */
    double value;
    uint64_t t_ns;
} health__counter_t;

typedef enum health__rate_rc {
    HEALTH__RATE_OK = 0,   /* *rate set */
    HEALTH__RATE_BASELINE, /* first value (or previous too old): need another */
    HEALTH__RATE_RESET,    /* the counter went backwards: new baseline */
    HEALTH__RATE_SAME,     /* sample time did not advance: no new data */
    HEALTH__RATE_BAD,      /* NaN, infinite or negative counter */
} health__rate_rc_t;

/* Feed one counter reading taken at t_ns; max_age_ns bounds how old the
 * previous reading may be to form a rate.  *rate is in counter units per
 * second. */
health__rate_rc_t health__rate_update(health__counter_t *prev, double value, uint64_t t_ns,
                                      bool remote_ts, uint64_t max_age_ns, double *rate);

/* ---- cluster aggregation (pure; health_state.c) ---- */

typedef struct health__srv_sum {
    health_state_t state;
    double util;
    uint64_t rate_bps;
    uint64_t capacity_bps;
    uint64_t sample_ms;
} health__srv_sum_t;

typedef struct health__agg {
    health_state_t state;
    uint32_t n_idle, n_busy, n_down, n_unknown;
    double util;
    uint64_t rate_bps;
    uint64_t sample_ms;
} health__agg_t;

void health__cluster_aggregate(const health__srv_sum_t *s, size_t n, health__agg_t *out);

/* ---- admin overrides (health_state.c) ---- */

/* Apply an admin state to a measured state.  Returns the effective state;
 * *reason is replaced when the override changes anything. */
health_state_t health__admin_apply(health_admin_state_t admin, const health__sm_t *sm,
                                   health_reason_t *reason);

/* ---- publication helpers ---- */

static inline uint32_t health__word(health_state_t s, health_reason_t r, uint32_t flags)
{
    return (uint32_t)s | ((uint32_t)r << 8) | (flags << 16);
}

static inline uint32_t health__ppm(double util)
{
    if (!(util > 0)) return 0;
    double v = util * 1e6 + 0.5;
    return v >= 4294967295.0 ? UINT32_MAX : (uint32_t)v;
}

/* Initialise both tables of a topology to UNKNOWN and point current at
 * the first (health_topo.c). */
void health__tables_init(health_topo_t *t, arena_t *a);

/* ---- poller hooks for status (health_poller.c) ---- */

/* Copy the detailed reason of server id into buf when h polls topo;
 * returns false otherwise.  Takes h's status mutex. */
bool health__detail(health_t *h, const health_topo_t *topo, uint32_t id, char *buf, size_t size);

/* Format helpers shared by status and logs. */
void health__fmt_rate(uint64_t bps, char *buf, size_t size);
void health__fmt_util(double util, char *buf, size_t size);

#endif
