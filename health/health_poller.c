/*
 * health_poller.c - the poller: one thread, one libuv loop, every server's
 * check, the state machine, and publication of the state tables.
 *
 * Owns: the thread and its loop; libcurl multi handles driven by the loop
 * (curl_multi_socket_action with one uv_poll_t per socket and one
 * uv_timer_t per multi for curl's timeouts, the canonical multi-uv
 * integration; HEALTH_SHARDS multis, each endpoint always in the same
 * one, see srv_endpoint); a
 * pool of curl easy handles with their body buffers; the runtime state of
 * the adopted topology (one srv_t per server: its timer, state machine,
 * counter baseline, admin override and reason text); the admin file's
 * rules.  It only writes the topology's back table and publishes it.
 *
 * Flow: timer tick -> check (HTTP / TCP connect / file stat) -> result ->
 * health_state.c state machine -> srv_update() marks the server dirty ->
 * on the next loop iteration (a short timer) publish(): recompute dirty clusters,
 * write the back table, one release store of the table pointer -> the
 * notify callback -> DNS workers read the table with one acquire load.
 *
 * Threads: health_new/start/apply/stop on the main thread; everything else
 * here on the poller thread, except the reason texts, which are guarded by
 * status_mu for health_status_write() on any thread.
 */
#include "health/health_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "core/grow.h"
#include "core/log.h"

/* Publications are coalesced: at most one per PUB_MIN_MS, which bounds the
 * cost at thousands of samples per second and still reflects a change well
 * within one poll interval. */
#define PUB_MIN_MS 10
/* Polls are started in slots of this many milliseconds (see run_start). */
#define PHASE_SLOT_MS 10
/* Body buffers larger than this are freed after use rather than pooled. */
#define KEEP_BUF_MAX (1024u * 1024u)
/* State files are small; anything larger is refused. */
#define STATE_FILE_MAX (1024u * 1024u)

typedef struct srv srv_t;
typedef struct run run_t;

/* One libcurl multi handle and its timer.  libcurl 7.88 walks a multi's
 * whole connection cache each time a transfer is removed, so one multi
 * for a thousand endpoints costs a thousand steps per poll; endpoints are
 * spread over HEALTH_SHARDS multis by host and port (connections are
 * shared only within one endpoint anyway). */
#define HEALTH_SHARDS 16
typedef struct shard {
    CURLM *multi;
    uv_timer_t timer;
    health_t *h;
} shard_t;

/* One HTTP transfer: a pooled easy handle and its body buffer. */
typedef struct xfer {
    CURL *easy;
    shard_t *shard; /* the multi it runs in */
    srv_t *srv; /* NULL once its server is gone (topology switch) */
    health_t *h;
    char *body;
    size_t len, cap, max;
    bool too_big;
    uint64_t start_ns;
    char errbuf[CURL_ERROR_SIZE];
    struct xfer *next_free;
} xfer_t;

/* One TCP connect check in flight.  Freed after both handles closed. */
typedef struct probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_timer_t timer;
    srv_t *srv; /* NULL once answered or abandoned */
    uint64_t start_ns;
    int open_handles;
    bool closing;
} probe_t;

/* Identity of a file's content for change detection. */
typedef struct fsig {
    bool valid;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} fsig_t;

/* Everything the detail text of a server is composed from. */
typedef struct srv_text {
    health__sm_t sm;
    health_admin_state_t admin;
    bool ev_is_rate;
    char admin_reason[HEALTH_ADMIN_REASON_MAX + 1];
    char event[160];
} srv_text_t;

/* Set the last poll's outcome text. */
#define SET_EVENT(s, ...)                                                                          \
    do {                                                                                           \
        snprintf((s)->event, sizeof((s)->event), __VA_ARGS__);                                     \
        (s)->ev_is_rate = false;                                                                   \
    } while (0)

struct srv {
    run_t *run;
    uint32_t id;
    const health_server_t *cfg;
    const health_check_t *chk;
    health__params_t params;
    health__sm_t sm;
    health__counter_t ctr;
    uv_timer_t timer;
    xfer_t *xfer;   /* HTTP in flight */
    uint8_t shard;  /* HTTP: its endpoint's multi (srv_endpoint) */
    bool ip_host;   /* HTTP: the URL's host is an address */
    probe_t *probe; /* TCP in flight */
    fsig_t fsig;    /* file check: last file seen */
    bool file_ok;   /* file check: last read parsed */
    /* The effective (published) values. */
    health_state_t eff;
    health_reason_t eff_reason;
    uint32_t flags;
    uint64_t vseq;
    /* Admin override from the admin file. */
    health_admin_state_t admin;
    uint8_t admin_level; /* 0 none, 1 every server, 2 cluster, 3 cluster/server */
    char admin_reason[HEALTH_ADMIN_REASON_MAX + 1];
    /* The last poll's outcome in words; for a rate sample it is composed
     * from sm only when needed (ev_is_rate), so that a sample formats no
     * text. */
    char event[160];
    bool ev_is_rate;
    /* What status shows (guarded by status_mu): a copy taken at each
     * update, formatted into words only when status asks. */
    srv_text_t shown;
};

struct run {
    health_t *h;
    health_topo_t *topo;
    srv_t *srv;
    uint32_t n, n_clusters;
    health__agg_t *agg; /* per cluster, last computed */
    uint64_t *cl_seq;   /* per cluster */
    uint8_t *srv_bits;  /* bit b: in srv_list[b] */
    uint8_t *cl_bits;   /* bit b: in cl_list[b]; bit 2: in recompute */
    uint32_t *srv_list[2], n_srv_list[2];
    uint32_t *cl_list[2], n_cl_list[2];
    uint32_t *recompute, n_recompute;
    int cur; /* index of the table published last */
    uint32_t open_handles;
    bool closing;
};

struct health {
    uv_loop_t loop;
    uv_thread_t thread;
    bool started;
    bool stopped;
    uv_async_t wake;
    uv_timer_t pub_timer;
    uv_timer_t admin_timer;
    shard_t shards[HEALTH_SHARDS];
    struct curl_slist *accept_prom, *accept_json;
    xfer_t *pool;
    struct sockctx **socks; /* by descriptor: libcurl's sockets we watch */
    size_t socks_cap;
    void (*notify)(void *arg);
    void *notify_arg;

    /* apply / stop requests from the main thread */
    pthread_mutex_t ctl_mu;
    pthread_cond_t ctl_cv;
    bool req_pending, req_done, req_stop;
    health_topo_t *req_topo;
    health_topo_t *applied; /* main thread's view: the topology last applied */

    /* status */
    pthread_mutex_t status_mu;
    run_t *run; /* written by the poller under status_mu */

    /* publication */
    bool pub_wanted;
    bool pub_timer_armed;
    uint64_t last_pub_ms;
    uint64_t pub_count;

    /* admin file */
    fsig_t admin_sig;
    bool admin_present;
    const char *admin_path;

    log_rl_t rl;
    _Atomic uint64_t st_polls, st_failures, st_pubs, st_transitions;
};

static void srv_update(srv_t *s, bool measured);
static void request_publish(health_t *h);
static void publish(health_t *h);
static void admin_reload(health_t *h, bool force);

uint64_t health_clock_ms(void)
{
    return uv_hrtime() / 1000000u;
}

const char *health_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EBUSY:
        return "topology already adopted by another poller";
    case -EINVAL:
        return "invalid configuration";
    case -ENOMEM:
        return "out of memory";
    case -EALREADY:
        return "poller already started";
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}

/* ------------------------------------------------------------------------ */
/* Publication                                                               */
/* ------------------------------------------------------------------------ */

static void mark_cluster(run_t *r, uint32_t c)
{
    if (!(r->cl_bits[c] & 4u)) {
        r->cl_bits[c] |= 4u;
        r->recompute[r->n_recompute++] = c;
    }
}

static void mark_srv(run_t *r, uint32_t id)
{
    for (int b = 0; b < 2; b++) {
        if (!(r->srv_bits[id] & (1u << b))) {
            r->srv_bits[id] |= (uint8_t)(1u << b);
            r->srv_list[b][r->n_srv_list[b]++] = id;
        }
    }
    mark_cluster(r, r->srv[id].cfg->cluster);
}

static void cluster_reason(const health__agg_t *a, uint32_t n, char *buf, size_t size)
{
    switch (a->state) {
    case HEALTH_IDLE:
        snprintf(buf, size, "%u of %u servers idle", a->n_idle, n);
        break;
    case HEALTH_UNKNOWN:
        snprintf(buf, size, "no server idle; %u without a measurement yet (usable, utilisation 0)",
                 a->n_unknown);
        break;
    case HEALTH_BUSY:
        snprintf(buf, size, "all %u servers up are busy", a->n_busy);
        break;
    case HEALTH_DOWN:
        snprintf(buf, size, "all %u servers down", n);
        break;
    }
}

static void recompute_clusters(run_t *r)
{
    health__srv_sum_t sum[64];
    for (uint32_t k = 0; k < r->n_recompute; k++) {
        uint32_t c = r->recompute[k];
        r->cl_bits[c] &= (uint8_t)~4u;
        const health_cluster_t *cl = &r->topo->clusters[c];
        health__agg_t a, acc = {0};
        /* Aggregate in chunks so a cluster of any size needs no heap: the
         * partial results combine by counts, rate and capacity. */
        double cap = 0, weighted = 0;
        for (uint32_t i = 0; i < cl->n_servers; i += 64) {
            uint32_t m = cl->n_servers - i < 64 ? cl->n_servers - i : 64;
            double pcap = 0;
            for (uint32_t j = 0; j < m; j++) {
                const srv_t *s = &r->srv[cl->first_server + i + j];
                sum[j] = (health__srv_sum_t){s->eff, s->sm.has_sample ? s->sm.util : 0,
                                             s->sm.has_sample ? s->sm.rate_bps : 0,
                                             s->cfg->capacity_bps, s->sm.sample_ms};
                if (s->eff != HEALTH_DOWN) pcap += (double)s->cfg->capacity_bps;
            }
            health__cluster_aggregate(sum, m, &a);
            acc.n_idle += a.n_idle;
            acc.n_busy += a.n_busy;
            acc.n_down += a.n_down;
            acc.n_unknown += a.n_unknown;
            acc.rate_bps += a.rate_bps;
            if (a.sample_ms > acc.sample_ms) acc.sample_ms = a.sample_ms;
            if (pcap > 0) {
                cap += pcap;
                weighted += a.util * pcap;
            }
        }
        acc.state = acc.n_idle      ? HEALTH_IDLE
                    : acc.n_unknown ? HEALTH_UNKNOWN
                    : acc.n_busy    ? HEALTH_BUSY
                                    : HEALTH_DOWN;
        acc.util = cap > 0 ? weighted / cap : 1.0;
        health_state_t old = r->agg[c].state;
        if (acc.state != old && (old != HEALTH_UNKNOWN || acc.state != HEALTH_UNKNOWN)) {
            char why[160];
            cluster_reason(&acc, cl->n_servers, why, sizeof(why));
            log_rl_msg(&r->h->rl, LOG_INFO, "health: cluster %s: %s -> %s (%s)", cl->name,
                       health_state_str(old), health_state_str(acc.state), why);
        }
        r->agg[c] = acc;
        for (int b = 0; b < 2; b++) {
            if (!(r->cl_bits[c] & (1u << b))) {
                r->cl_bits[c] |= (uint8_t)(1u << b);
                r->cl_list[b][r->n_cl_list[b]++] = c;
            }
        }
    }
    r->n_recompute = 0;
}

static void write_back(run_t *r, int back)
{
    health_table_t *tb = &r->topo->tables[back];
    const memory_order rx = memory_order_relaxed;
    for (uint32_t k = 0; k < r->n_srv_list[back]; k++) {
        uint32_t id = r->srv_list[back][k];
        r->srv_bits[id] &= (uint8_t) ~(1u << back);
        const srv_t *s = &r->srv[id];
        health_server_view_t *v = &tb->servers[id];
        atomic_store_explicit(&v->word, health__word(s->eff, s->eff_reason, s->flags), rx);
        atomic_store_explicit(&v->util_ppm, health__ppm(s->sm.has_sample ? s->sm.util : 0), rx);
        atomic_store_explicit(&v->rate_bps, s->sm.has_sample ? s->sm.rate_bps : 0, rx);
        atomic_store_explicit(&v->sample_ms, s->sm.sample_ms, rx);
        atomic_store_explicit(&v->seq, s->vseq, rx);
    }
    r->n_srv_list[back] = 0;
    for (uint32_t k = 0; k < r->n_cl_list[back]; k++) {
        uint32_t c = r->cl_list[back][k];
        r->cl_bits[c] &= (uint8_t) ~(1u << back);
        const health__agg_t *a = &r->agg[c];
        health_cluster_view_t *v = &tb->clusters[c];
        atomic_store_explicit(&v->word, health__word(a->state, HEALTH_R_CLUSTER, 0), rx);
        atomic_store_explicit(&v->util_ppm, health__ppm(a->util), rx);
        atomic_store_explicit(&v->n_idle, a->n_idle, rx);
        atomic_store_explicit(&v->n_busy, a->n_busy, rx);
        atomic_store_explicit(&v->n_down, a->n_down, rx);
        atomic_store_explicit(&v->n_unknown, a->n_unknown, rx);
        atomic_store_explicit(&v->rate_bps, a->rate_bps, rx);
        atomic_store_explicit(&v->sample_ms, a->sample_ms, rx);
        atomic_store_explicit(&v->seq, r->cl_seq[c], rx);
    }
    r->n_cl_list[back] = 0;
}

static void publish(health_t *h)
{
    run_t *r = h->run;
    h->pub_wanted = false;
    if (r == NULL) return;
    recompute_clusters(r);
    int back = 1 - r->cur;
    write_back(r, back);
    health_table_t *tb = &r->topo->tables[back];
    uint64_t now = health_clock_ms();
    uint64_t prev = atomic_load_explicit(&r->topo->tables[r->cur].pub_seq, memory_order_relaxed);
    atomic_store_explicit(&tb->pub_seq, prev + 1, memory_order_relaxed);
    atomic_store_explicit(&tb->pub_ms, now, memory_order_relaxed);
    /* The release store makes every view written above visible to a
     * reader whose acquire load sees this table. */
    atomic_store_explicit(&r->topo->current, tb, memory_order_release);
    r->cur = back;
    h->last_pub_ms = now;
    atomic_fetch_add_explicit(&h->st_pubs, 1, memory_order_relaxed);
    if (h->notify) h->notify(h->notify_arg);
}

static void on_pub_timer(uv_timer_t *t)
{
    health_t *h = t->data;
    h->pub_timer_armed = false;
    if (h->pub_wanted) publish(h);
}

/* Something changed: publish on the next loop iteration (so that every
 * change of this iteration goes into one table), but not sooner than
 * PUB_MIN_MS after the last publication.  A timer, not a check handle: a
 * change made in a timer callback must not wait for the next I/O event. */
static void request_publish(health_t *h)
{
    h->pub_wanted = true;
    if (h->pub_timer_armed) return;
    uint64_t now = health_clock_ms();
    uint64_t since = now - h->last_pub_ms;
    h->pub_timer_armed = true;
    uv_timer_start(&h->pub_timer, on_pub_timer, since >= PUB_MIN_MS ? 0 : PUB_MIN_MS - since, 0);
}

/* ------------------------------------------------------------------------ */
/* Server state -> effective state, detail text, logs                        */
/* ------------------------------------------------------------------------ */

static void text_of(const srv_t *s, srv_text_t *t)
{
    t->sm = s->sm;
    t->admin = s->admin;
    t->ev_is_rate = s->ev_is_rate;
    memcpy(t->admin_reason, s->admin_reason, sizeof(t->admin_reason));
    memcpy(t->event, s->event, sizeof(t->event));
}

static void compose_detail(const srv_text_t *v, const health__params_t *p, char *buf, size_t size)
{
    const health__sm_t *sm = &v->sm;
    char u[32], t[32], r[32], ev[sizeof(v->event)];
    health__fmt_util(sm->util, u, sizeof(u));
    health__fmt_util(p->threshold, t, sizeof(t));
    health__fmt_util(p->return_threshold, r, sizeof(r));
    if (v->ev_is_rate) {
        char rs[32];
        health__fmt_rate(sm->rate_bps, rs, sizeof(rs));
        snprintf(ev, sizeof(ev), "%s = %s of capacity", rs, u);
    } else {
        memcpy(ev, v->event, sizeof(ev));
    }
    if (v->admin != HEALTH_ADMIN_NONE) {
        snprintf(buf, size, "admin file: %s%s%s (measured: %s)", health_admin_state_str(v->admin),
                 v->admin_reason[0] ? ": " : "", v->admin_reason, health_state_str(sm->state));
        return;
    }
    switch (sm->reason) {
    case HEALTH_R_NONE:
        snprintf(buf, size, "no usable measurement yet (usable, utilisation 0)");
        return;
    case HEALTH_R_BELOW:
        snprintf(buf, size, "%s < %s", u, t);
        return;
    case HEALTH_R_ABOVE:
        snprintf(buf, size, "%s >= %s", u, t);
        return;
    case HEALTH_R_HOLD_IDLE:
        snprintf(buf, size, "%s >= %s, BUSY after %u of %u samples", u, t, sm->streak,
                 p->busy_after);
        return;
    case HEALTH_R_HOLD_BUSY:
        if (sm->util < p->return_threshold)
            snprintf(buf, size, "%s < %s, IDLE after %u of %u samples", u, r, sm->streak,
                     p->idle_after);
        else
            snprintf(buf, size, "%s not below the return threshold %s", u, r);
        return;
    case HEALTH_R_RISING:
        snprintf(buf, size, "recovering: %u of %u usable samples (%s)", sm->goods, p->rise, ev);
        return;
    case HEALTH_R_STALE:
        if (sm->stale_down && sm->fails > 0) {
            /* DOWN because no usable sample came in time, while the polls
             * kept failing (fewer than `fall` of them may have failed):
             * staleness is the reason, the last failure the detail. */
            snprintf(buf, size, "no usable sample for more than %llums; last: %s (%u failures in a row)",
                     (unsigned long long)p->stale_ms, ev, sm->fails);
            return;
        }
        if (sm->fails == 0) {
            snprintf(buf, size, "no usable sample for more than %llums (last poll: %s)",
                     (unsigned long long)p->stale_ms, ev);
            return;
        }
        break; /* a stale sample: a failure like the others */
    case HEALTH_R_LIVE:
    case HEALTH_R_FIRST_SAMPLE:
    case HEALTH_R_COUNTER_RESET:
    case HEALTH_R_FILE_DOWN:
    case HEALTH_R_FILE_BUSY:
        snprintf(buf, size, "%s", ev);
        return;
    default:
        break;
    }
    /* A failure. */
    if (sm->state == HEALTH_DOWN)
        snprintf(buf, size, "%s; %u failures in a row", ev, sm->fails);
    else
        snprintf(buf, size, "%s; %u of %u failures before DOWN", ev, sm->fails, p->fall);
}

/* Recompute the effective state after the state machine or the admin
 * override changed; measured: a new usable measurement arrived. */
static void srv_update(srv_t *s, bool measured)
{
    run_t *r = s->run;
    health_t *h = r->h;
    health_reason_t reason = s->sm.reason;
    health_state_t st = health__admin_apply(s->admin, &s->sm, &reason);
    uint32_t flags =
        (s->admin != HEALTH_ADMIN_NONE ? HEALTH_F_ADMIN : 0) |
        (s->chk->kind == HEALTH_CHECK_TCP || s->chk->kind == HEALTH_CHECK_FILE ? HEALTH_F_NO_RATE
                                                                               : 0);
    bool changed = st != s->eff;
    pthread_mutex_lock(&h->status_mu);
    text_of(s, &s->shown);
    pthread_mutex_unlock(&h->status_mu);
    if (changed) {
        /* Only the poller writes s->shown, so it may read it unlocked. */
        char detail[256];
        compose_detail(&s->shown, &s->params, detail, sizeof(detail));
        atomic_fetch_add_explicit(&h->st_transitions, 1, memory_order_relaxed);
        log_rl_msg(&h->rl, st == HEALTH_DOWN ? LOG_WARNING : LOG_INFO,
                   "health: server %s/%s: %s -> %s (%s)", r->topo->clusters[s->cfg->cluster].name,
                   s->cfg->name, health_state_str(s->eff), health_state_str(st), detail);
    }
    if (measured || changed) {
        s->vseq++;
        r->cl_seq[s->cfg->cluster]++;
    }
    s->eff = st;
    s->eff_reason = reason;
    s->flags = flags;
    mark_srv(r, s->id);
    request_publish(h);
}

static void srv_fail(srv_t *s, health_reason_t why)
{
    atomic_fetch_add_explicit(&s->run->h->st_failures, 1, memory_order_relaxed);
    health__sm_fail(&s->sm, &s->params, health_clock_ms(), why);
    srv_update(s, false);
}

/* A measurement of bandwidth in bit/s. */
static void srv_rate(srv_t *s, double bps)
{
    uint64_t rate = bps >= 1.8e19 ? UINT64_MAX : (uint64_t)llround(bps);
    double util = bps / (double)s->cfg->capacity_bps;
    s->ev_is_rate = true;
    health__sm_sample(&s->sm, &s->params, health_clock_ms(), util, rate, false);
    srv_update(s, true);
}

/* A reading of the configured value (counter or gauge) at t_ns. */
static void srv_value(srv_t *s, double value, uint64_t t_ns, bool remote_ts)
{
    const health_check_t *c = s->chk;
    if (c->mode == HEALTH_MODE_GAUGE) {
        if (isnan(value) || isinf(value)) {
            SET_EVENT(s, "value is %g", value);
            srv_fail(s, HEALTH_R_BAD_VALUE);
        } else if (value < 0) {
            SET_EVENT(s, "negative rate %g %s/s", value, c->unit);
            srv_fail(s, HEALTH_R_NEGATIVE_RATE);
        } else {
            srv_rate(s, value * c->unit_bits);
        }
        return;
    }
    double prev = s->ctr.value;
    double rate = 0;
    health__rate_rc_t rc =
        health__rate_update(&s->ctr, value, t_ns, remote_ts, s->params.stale_ms * 1000000u, &rate);
    uint64_t now = health_clock_ms();
    switch (rc) {
    case HEALTH__RATE_OK:
        srv_rate(s, rate * c->unit_bits);
        return;
    case HEALTH__RATE_BASELINE:
        SET_EVENT(s, "first counter sample %.17g, rate needs a second", value);
        health__sm_nodata(&s->sm, &s->params, now, HEALTH_R_FIRST_SAMPLE);
        break;
    case HEALTH__RATE_RESET:
        SET_EVENT(s, "counter reset (%.17g -> %.17g), new baseline", prev, value);
        log_rl_msg(&s->run->h->rl, LOG_INFO, "health: server %s/%s: %s",
                   s->run->topo->clusters[s->cfg->cluster].name, s->cfg->name, s->event);
        health__sm_nodata(&s->sm, &s->params, now, HEALTH_R_COUNTER_RESET);
        break;
    case HEALTH__RATE_SAME:
        /* The exposition's timestamp did not move: nothing new; staleness
         * will take the server down if it never does. */
        health__sm_nodata(&s->sm, &s->params, now, s->sm.reason);
        break;
    case HEALTH__RATE_BAD:
        SET_EVENT(s, "counter value %g is not a non-negative number", value);
        srv_fail(s, HEALTH_R_BAD_VALUE);
        return;
    }
    srv_update(s, false);
}

/* ------------------------------------------------------------------------ */
/* HTTP checks: curl multi driven by libuv                                   */
/* ------------------------------------------------------------------------ */

typedef struct sockctx {
    uv_poll_t poll;
    curl_socket_t fd;
    shard_t *shard; /* the multi that watches it now */
} sockctx_t;

static void check_multi_info(shard_t *sh);

static void on_sock_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sockctx_t *c = p->data;
    shard_t *sh = c->shard;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    int running;
    /* May call sock_cb(REMOVE) for this very socket, which closes c. */
    curl_multi_socket_action(sh->multi, c->fd, flags, &running);
    check_multi_info(sh);
}

/* A socket's poll handle lives as long as the socket: libcurl removes a
 * keep-alive connection from its watch list after every transfer and adds
 * it back for the next one, and a handle kept across that costs no
 * allocation and no uv_poll_init (three system calls) per request.  The
 * table by descriptor finds it again; close_cb ends it. */
static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    shard_t *sh = userp;
    health_t *h = sh->h;
    sockctx_t *c = socketp;
    if (c && uv_is_closing((uv_handle_t *)&c->poll)) c = NULL; /* closed by close_cb */
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            uv_poll_stop(&c->poll);
            curl_multi_assign(sh->multi, fd, NULL);
        }
        return 0;
    }
    if (c == NULL && fd >= 0 && (size_t)fd < h->socks_cap) c = h->socks[fd];
    if (c == NULL) {
        if (fd < 0) return -1;
        c = calloc(1, sizeof(*c));
        if (c == NULL) return -1;
        int rc = uv_poll_init_socket(&h->loop, &c->poll, fd);
        if (rc != 0) {
            log_rl_msg(&h->rl, LOG_ERR, "health: cannot watch socket %d: %s", (int)fd,
                       uv_strerror(rc));
            free(c);
            return -1;
        }
        c->poll.data = c;
        c->fd = fd;
        size_t old_cap = h->socks_cap;
        h->socks = grow_array(h->socks, (size_t)fd, &h->socks_cap, sizeof(*h->socks), 64);
        memset(h->socks + old_cap, 0, (h->socks_cap - old_cap) * sizeof(*h->socks));
        h->socks[fd] = c;
    }
    c->shard = sh;
    curl_multi_assign(sh->multi, fd, c);
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&c->poll, ev, on_poll);
    return 0;
}

/* Stop watching fd for good (libcurl closes it, or the poller ends). */
static void sock_forget(health_t *h, curl_socket_t fd)
{
    if (fd < 0 || (size_t)fd >= h->socks_cap || h->socks[fd] == NULL) return;
    uv_close((uv_handle_t *)&h->socks[fd]->poll, on_sock_closed);
    h->socks[fd] = NULL;
}

static int close_cb(void *clientp, curl_socket_t fd)
{
    sock_forget(clientp, fd);
    return close(fd);
}

static void on_curl_timeout(uv_timer_t *t)
{
    shard_t *sh = t->data;
    int running;
    curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(sh);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    shard_t *sh = userp;
    /* Never call curl from here: the uv timer does it on the next
     * iteration (timeout 0 included). */
    if (timeout_ms < 0)
        uv_timer_stop(&sh->timer);
    else
        uv_timer_start(&sh->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer_t *x = userdata;
    size_t n = size * nmemb;
    if (n > x->max - x->len) {
        x->too_big = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 16384;
        while (cap < x->len + n)
            cap *= 2;
        if (cap > x->max) cap = x->max;
        char *nb = realloc(x->body, cap + 1);
        if (nb == NULL) return 0;
        x->body = nb;
        x->cap = cap;
    }
    memcpy(x->body + x->len, ptr, n);
    x->len += n;
    return n;
}

static xfer_t *xfer_get(health_t *h)
{
    xfer_t *x = h->pool;
    if (x) {
        h->pool = x->next_free;
        x->next_free = NULL;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) return NULL;
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(x);
        return NULL;
    }
    x->h = h;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* Checks go straight to the servers: no proxy, and no proxy variables
     * looked up in the environment on every request. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    /* A node_exporter page is 50-150 KB: read it in a few system calls
     * (the pool holds only as many handles as polls run at once). */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 131072L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "steerdns-health/" STEERDNS_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
    return x;
}

static void xfer_put(health_t *h, xfer_t *x)
{
    x->srv = NULL;
    if (x->cap > KEEP_BUF_MAX) {
        free(x->body);
        x->body = NULL;
        x->cap = 0;
    }
    x->len = 0;
    x->next_free = h->pool;
    h->pool = x;
}

/* What a server's URL says about its endpoint, worked out once per run
 * with libcurl's URL parser: the shard (a hash of scheme, host and port,
 * so that every check of one endpoint runs in the multi that holds its
 * connections) and whether the host is an address (then libcurl's name
 * cache need never expire). */
static void srv_endpoint(srv_t *s)
{
    s->shard = 0;
    s->ip_host = false;
    if (s->chk->url == NULL) return;
    CURLU *u = curl_url();
    if (u == NULL) return;
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, s->chk->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        const char *part[3] = {scheme, host, port};
        uint32_t x = 2166136261u;
        for (int k = 0; k < 3; k++)
            for (const char *c = part[k]; *c; c++)
                x = (x ^ (unsigned char)*c) * 16777619u;
        s->shard = (uint8_t)((x ^ (x >> 16)) % HEALTH_SHARDS);
        unsigned char a[16];
        size_t n = strlen(host);
        if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
            char v6[64];
            snprintf(v6, sizeof(v6), "%.*s", (int)(n - 2), host + 1);
            s->ip_host = inet_pton(AF_INET6, v6, a) == 1;
        } else {
            s->ip_host = inet_pton(AF_INET, host, a) == 1;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

static void http_start(srv_t *s)
{
    health_t *h = s->run->h;
    const health_check_t *c = s->chk;
    xfer_t *x = xfer_get(h);
    if (x == NULL) {
        SET_EVENT(s, "out of memory starting the request");
        srv_fail(s, HEALTH_R_TRANSPORT);
        return;
    }
    x->srv = s;
    x->len = 0;
    x->too_big = false;
    x->max = s->run->topo->settings.max_body;
    x->errbuf[0] = '\0';
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    /* libcurl walks its whole name cache for expired entries on every
     * request unless entries never expire: with a thousand endpoints that
     * walk is a third of the poller's time.  Addresses never expire, so
     * checks of address URLs (the usual case) skip it; host names keep
     * libcurl's 60 s. */
    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, s->ip_host ? -1L : 60L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                     c->kind == HEALTH_CHECK_PROMETHEUS ? h->accept_prom : h->accept_json);
    x->start_ns = uv_hrtime();
    s->xfer = x;
    x->shard = &h->shards[s->shard];
    CURLMcode mc = curl_multi_add_handle(x->shard->multi, e);
    if (mc != CURLM_OK) {
        s->xfer = NULL;
        xfer_put(h, x);
        SET_EVENT(s, "cannot start the request: %s", curl_multi_strerror(mc));
        srv_fail(s, HEALTH_R_TRANSPORT);
    }
}

/* Why a response is taken for an HTML page (a web server's error or
 * welcome page instead of the data): 'c' its Content-Type says HTML, 'b'
 * its body starts with '<' (no exposition line or JSON document can);
 * 0: not HTML. */
static char looks_like_html(const char *ctype, const char *body, size_t len)
{
    if (ctype && (strncasecmp(ctype, "text/html", 9) == 0 ||
                  strncasecmp(ctype, "application/xhtml", 17) == 0))
        return 'c';
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '<' ? 'b' : 0;
}

static void http_done(srv_t *s, xfer_t *x, CURLcode rc)
{
    const health_check_t *c = s->chk;
    CURL *e = x->easy;
    if (rc != CURLE_OK) {
        health_reason_t why;
        const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            why = HEALTH_R_TIMEOUT;
            SET_EVENT(s, "no answer within %llums", (unsigned long long)c->timeout_ms);
            break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
            why = HEALTH_R_CONNECT;
            SET_EVENT(s, "%.150s", detail);
            break;
        case CURLE_FILESIZE_EXCEEDED:
            why = HEALTH_R_BODY_TOO_LARGE;
            SET_EVENT(s, "response larger than max_body %zu bytes", x->max);
            break;
        case CURLE_WRITE_ERROR:
            if (x->too_big) {
                why = HEALTH_R_BODY_TOO_LARGE;
                SET_EVENT(s, "response larger than max_body %zu bytes", x->max);
                break;
            }
            /* fall through */
        default:
            why = HEALTH_R_TRANSPORT;
            SET_EVENT(s, "%.150s", detail);
            break;
        }
        srv_fail(s, why);
        return;
    }
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
        SET_EVENT(s, "HTTP status %ld", code);
        srv_fail(s, HEALTH_R_HTTP_STATUS);
        return;
    }
    char *ctype = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype);
    const char *body = x->body ? x->body : "";
    char html = looks_like_html(ctype, body, x->len);
    if (html == 'c') {
        SET_EVENT(s, "HTML instead of %s (Content-Type %s)",
                  c->kind == HEALTH_CHECK_JSON ? "JSON" : "metrics", ctype);
        srv_fail(s, HEALTH_R_HTML);
        return;
    }
    if (html == 'b') {
        /* Say what was seen: the Content-Type did not claim HTML. */
        SET_EVENT(s, "body starts with '<' (Content-Type %s)", ctype ? ctype : "none");
        srv_fail(s, HEALTH_R_HTML);
        return;
    }
    /* The sample time: when the server started answering, which is close
     * to when it read its counters (better than when the last byte came). */
    curl_off_t ttfb_us = 0;
    curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &ttfb_us);
    uint64_t t_ns = x->start_ns + (uint64_t)(ttfb_us > 0 ? ttfb_us : 0) * 1000u;

    if (c->kind == HEALTH_CHECK_PROMETHEUS) {
        health_prom_query_t q = {c->metric, c->label_names, c->label_values, c->n_labels};
        health_prom_result_t res;
        int prc = health_prom_scan(body, x->len, &q, &res);
        if (prc != 0) {
            SET_EVENT(s, "bad exposition: line %zu column %zu: %s", res.err_line, res.err_col,
                      res.err ? res.err : "too many matchers");
            srv_fail(s, HEALTH_R_PARSE);
            return;
        }
        if (res.matches == 0) {
            char sel[128];
            size_t used = (size_t)snprintf(sel, sizeof(sel), "%s{", c->metric);
            for (uint32_t i = 0; i < c->n_labels && used < sizeof(sel); i++)
                used += (size_t)snprintf(sel + used, sizeof(sel) - used, "%s%s=\"%s\"",
                                         i ? "," : "", c->label_names[i], c->label_values[i]);
            if (used < sizeof(sel)) snprintf(sel + used, sizeof(sel) - used, "}");
            SET_EVENT(s, "no series %s in %zu lines", sel, res.lines);
            srv_fail(s, HEALTH_R_NO_METRIC);
            return;
        }
        if (res.has_timestamp) {
            /* An exposition timestamp is the time the value was taken:
             * better for the rate, and too old means stale data. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            if (wall_ms - res.timestamp_ms > (int64_t)s->params.stale_ms) {
                SET_EVENT(s, "sample timestamp %lldms old",
                          (long long)(wall_ms - res.timestamp_ms));
                srv_fail(s, HEALTH_R_STALE);
                return;
            }
            srv_value(s, res.value,
                      res.timestamp_ms > 0 ? (uint64_t)res.timestamp_ms * 1000000u : 0, true);
        } else {
            srv_value(s, res.value, t_ns, false);
        }
        return;
    }
    /* json */
    double v = 0;
    char err[128];
    int jrc = health_json_extract(body, x->len, c->field, &v, err, sizeof(err));
    if (jrc != 0) {
        SET_EVENT(s, "%s%s", jrc == -EINVAL ? "bad JSON: " : "", err);
        srv_fail(s, jrc == -EINVAL   ? HEALTH_R_BAD_JSON
                    : jrc == -ENOENT ? HEALTH_R_NO_FIELD
                                     : HEALTH_R_BAD_VALUE);
        return;
    }
    srv_value(s, v, t_ns, false);
}

static void check_multi_info(shard_t *sh)
{
    health_t *h = sh->h;
    CURLMsg *msg;
    int pending;
    while ((msg = curl_multi_info_read(sh->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        xfer_t *x = (xfer_t *)priv;
        curl_multi_remove_handle(sh->multi, e);
        if (x == NULL) continue;
        srv_t *s = x->srv;
        if (s) {
            s->xfer = NULL;
            http_done(s, x, rc);
        }
        xfer_put(h, x);
    }
}

/* ------------------------------------------------------------------------ */
/* TCP checks                                                                */
/* ------------------------------------------------------------------------ */

static void on_probe_closed(uv_handle_t *hd)
{
    probe_t *p = hd->data;
    if (--p->open_handles == 0) free(p);
}

static void probe_close(probe_t *p)
{
    if (p->closing) return;
    p->closing = true;
    uv_close((uv_handle_t *)&p->tcp, on_probe_closed);
    uv_close((uv_handle_t *)&p->timer, on_probe_closed);
}

static void tcp_result(probe_t *p, int status)
{
    srv_t *s = p->srv;
    if (s == NULL) return;
    p->srv = NULL;
    s->probe = NULL;
    if (status == 0) {
        double ms = (double)(uv_hrtime() - p->start_ns) / 1e6;
        SET_EVENT(s, "connected to %s in %.1fms", s->chk->address, ms);
        health__sm_sample(&s->sm, &s->params, health_clock_ms(), 0, 0, true);
        s->sm.reason = s->sm.state == HEALTH_DOWN ? HEALTH_R_RISING : HEALTH_R_LIVE;
        srv_update(s, true);
    } else if (status == UV_ETIMEDOUT) {
        SET_EVENT(s, "no connection to %s within %llums", s->chk->address,
                  (unsigned long long)s->chk->timeout_ms);
        srv_fail(s, HEALTH_R_TIMEOUT);
    } else {
        SET_EVENT(s, "connect to %s: %s", s->chk->address, uv_strerror(status));
        srv_fail(s, HEALTH_R_CONNECT);
    }
}

static void on_probe_connect(uv_connect_t *req, int status)
{
    probe_t *p = req->data;
    tcp_result(p, status);
    probe_close(p);
}

static void on_probe_timeout(uv_timer_t *t)
{
    probe_t *p = t->data;
    tcp_result(p, UV_ETIMEDOUT);
    probe_close(p);
}

static void tcp_start(srv_t *s)
{
    health_t *h = s->run->h;
    const health_check_t *c = s->chk;
    probe_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        SET_EVENT(s, "out of memory");
        srv_fail(s, HEALTH_R_TRANSPORT);
        return;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (c->addr.family == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(c->port);
        memcpy(&sin->sin_addr, c->addr.addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(c->port);
        memcpy(&sin6->sin6_addr, c->addr.addr, 16);
    }
    uv_tcp_init(&h->loop, &p->tcp);
    uv_timer_init(&h->loop, &p->timer);
    p->tcp.data = p;
    p->timer.data = p;
    p->req.data = p;
    p->open_handles = 2;
    p->srv = s;
    p->start_ns = uv_hrtime();
    s->probe = p;
    int rc = uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&ss, on_probe_connect);
    if (rc != 0) {
        tcp_result(p, rc);
        probe_close(p);
        return;
    }
    uv_timer_start(&p->timer, on_probe_timeout, c->timeout_ms, 0);
}

/* ------------------------------------------------------------------------ */
/* Files: the per-server file check and the admin file                       */
/* ------------------------------------------------------------------------ */

static bool fsig_equal(const fsig_t *a, const fsig_t *b)
{
    return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static int fsig_of(const struct stat *st, fsig_t *sig)
{
    *sig = (fsig_t){true, st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
    return 0;
}

/* Read a small file; returns a malloc'd buffer or NULL with errno set. */
static char *read_small(const char *path, size_t max, size_t *len, fsig_t *sig)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }
    fsig_of(&st, sig);
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

static void file_check(srv_t *s)
{
    const char *path = s->chk->path;
    struct stat st;
    uint64_t now = health_clock_ms();
    if (stat(path, &st) != 0) {
        s->fsig.valid = false;
        SET_EVENT(s, "cannot read %s: %s", path, strerror(errno));
        srv_fail(s, HEALTH_R_FILE);
        return;
    }
    fsig_t sig;
    fsig_of(&st, &sig);
    if (s->file_ok && fsig_equal(&sig, &s->fsig)) {
        /* Unchanged: the file still says what it said; that is a fresh
         * statement, so it is not stale. */
        s->sm.last_good_ms = now;
        return;
    }
    size_t len = 0;
    char *buf = read_small(path, STATE_FILE_MAX, &len, &s->fsig);
    if (buf == NULL) {
        s->fsig.valid = false;
        s->file_ok = false;
        SET_EVENT(s, "cannot read %s: %s", path, strerror(errno));
        srv_fail(s, HEALTH_R_FILE);
        return;
    }
    health_admin_state_t st_word;
    const char *reason, *err;
    size_t rlen;
    if (health_state_file_parse(buf, len, &st_word, &reason, &rlen, &err) != 0) {
        s->file_ok = false;
        SET_EVENT(s, "%s: %s", path, err);
        free(buf);
        srv_fail(s, HEALTH_R_FILE);
        return;
    }
    s->file_ok = true;
    SET_EVENT(s, "state file says %s%s%.*s", health_admin_state_str(st_word), rlen ? ": " : "",
              (int)rlen, reason);
    free(buf);
    switch (st_word) {
    case HEALTH_ADMIN_DOWN:
        health__sm_force(&s->sm, now, HEALTH_DOWN, HEALTH_R_FILE_DOWN);
        break;
    case HEALTH_ADMIN_BUSY:
        health__sm_force(&s->sm, now, HEALTH_BUSY, HEALTH_R_FILE_BUSY);
        break;
    default:
        health__sm_force(&s->sm, now, HEALTH_IDLE, HEALTH_R_LIVE);
        break;
    }
    srv_update(s, true);
}

typedef struct admin_ctx {
    run_t *run;
    const char *path;
    health_admin_state_t *state; /* per server, being built */
    uint8_t *level;
    const char **reason;
    size_t *reason_len;
    unsigned warned;
} admin_ctx_t;

static void admin_set(admin_ctx_t *a, uint32_t id, uint8_t level, const health_admin_rule_t *r)
{
    if (level < a->level[id]) return;
    a->level[id] = level;
    a->state[id] = r->state;
    a->reason[id] = r->reason;
    a->reason_len[id] = r->reason_len;
}

static int64_t find_cluster_n(const health_topo_t *t, const char *s, size_t n)
{
    for (uint32_t i = 0; i < t->n_clusters; i++)
        if (strlen(t->clusters[i].name) == n && memcmp(t->clusters[i].name, s, n) == 0) return i;
    return -1;
}

static void admin_on_rule(void *ctx, const health_admin_rule_t *r)
{
    admin_ctx_t *a = ctx;
    const health_topo_t *t = a->run->topo;
    if (r->cluster == NULL) {
        for (uint32_t i = 0; i < a->run->n; i++)
            admin_set(a, i, 1, r);
        return;
    }
    int64_t c = find_cluster_n(t, r->cluster, r->cluster_len);
    if (c < 0) {
        if (a->warned++ < 20)
            log_warn("health: %s:%zu: unknown cluster '%.*s'", a->path, r->line,
                     (int)r->cluster_len, r->cluster);
        return;
    }
    const health_cluster_t *cl = &t->clusters[c];
    if (r->server == NULL) {
        for (uint32_t i = cl->first_server; i < cl->first_server + cl->n_servers; i++)
            admin_set(a, i, 2, r);
        return;
    }
    for (uint32_t i = cl->first_server; i < cl->first_server + cl->n_servers; i++) {
        const char *nm = t->servers[i].name;
        if (strlen(nm) == r->server_len && memcmp(nm, r->server, r->server_len) == 0) {
            admin_set(a, i, 3, r);
            return;
        }
    }
    if (a->warned++ < 20)
        log_warn("health: %s:%zu: unknown server '%.*s/%.*s'", a->path, r->line,
                 (int)r->cluster_len, r->cluster, (int)r->server_len, r->server);
}

static void admin_on_error(void *ctx, size_t line, const char *msg)
{
    admin_ctx_t *a = ctx;
    if (a->warned++ < 20) log_warn("health: %s:%zu: %s (line ignored)", a->path, line, msg);
}

/* Apply the admin file's content (NULL: no file) to every server. */
static void admin_apply_text(health_t *h, const char *buf, size_t len)
{
    run_t *r = h->run;
    if (r == NULL || r->n == 0) return;
    admin_ctx_t a = {.run = r, .path = h->admin_path};
    a.state = calloc(r->n, sizeof(*a.state));
    a.level = calloc(r->n, sizeof(*a.level));
    a.reason = calloc(r->n, sizeof(*a.reason));
    a.reason_len = calloc(r->n, sizeof(*a.reason_len));
    if (!a.state || !a.level || !a.reason || !a.reason_len) {
        log_err("health: out of memory applying the admin file");
        goto out;
    }
    if (buf) health_admin_parse(buf, len, admin_on_rule, admin_on_error, &a);
    uint32_t changed = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        srv_t *s = &r->srv[i];
        char reason[HEALTH_ADMIN_REASON_MAX + 1];
        size_t rl =
            a.reason_len[i] < HEALTH_ADMIN_REASON_MAX ? a.reason_len[i] : HEALTH_ADMIN_REASON_MAX;
        if (rl) memcpy(reason, a.reason[i], rl);
        reason[rl] = '\0';
        if (s->admin == a.state[i] && strcmp(s->admin_reason, reason) == 0) continue;
        if (s->admin != a.state[i])
            log_info("health: server %s/%s: admin override %s -> %s%s%s",
                     r->topo->clusters[s->cfg->cluster].name, s->cfg->name,
                     health_admin_state_str(s->admin), health_admin_state_str(a.state[i]),
                     rl ? ": " : "", reason);
        s->admin = a.state[i];
        s->admin_level = a.level[i];
        memcpy(s->admin_reason, reason, rl + 1);
        changed++;
        srv_update(s, false);
    }
    (void)changed;
out:
    free(a.state);
    free(a.level);
    free(a.reason);
    free(a.reason_len);
}

static void admin_reload(health_t *h, bool force)
{
    if (h->admin_path == NULL) return;
    struct stat st;
    if (stat(h->admin_path, &st) != 0) {
        int e = errno;
        if (h->admin_present || force) {
            if (e == ENOENT)
                log_info("health: admin file %s absent: no overrides", h->admin_path);
            else
                log_warn("health: admin file %s: %s: no overrides", h->admin_path, strerror(e));
        }
        h->admin_present = false;
        h->admin_sig.valid = false;
        admin_apply_text(h, NULL, 0);
        return;
    }
    fsig_t sig;
    fsig_of(&st, &sig);
    if (!force && h->admin_present && fsig_equal(&sig, &h->admin_sig)) return;
    size_t len = 0;
    char *buf = read_small(h->admin_path, STATE_FILE_MAX, &len, &h->admin_sig);
    if (buf == NULL) {
        /* Keep the overrides in force: a file being rewritten must not
         * release every drained server for a moment. */
        log_warn("health: admin file %s: %s: overrides unchanged", h->admin_path, strerror(errno));
        h->admin_sig.valid = false;
        return;
    }
    h->admin_present = true;
    log_info("health: admin file %s read", h->admin_path);
    admin_apply_text(h, buf, len);
    free(buf);
}

static void on_admin_timer(uv_timer_t *t)
{
    admin_reload(t->data, false);
}

/* ------------------------------------------------------------------------ */
/* Ticks                                                                     */
/* ------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    srv_t *s = t->data;
    health_t *h = s->run->h;
    if (health__sm_tick(&s->sm, &s->params, health_clock_ms())) {
        if (s->event[0] == '\0') SET_EVENT(s, "no answer yet");
        srv_update(s, false);
    }
    if (s->xfer || s->probe) return; /* the previous check is still running (timeout <= interval) */
    atomic_fetch_add_explicit(&h->st_polls, 1, memory_order_relaxed);
    switch (s->chk->kind) {
    case HEALTH_CHECK_PROMETHEUS:
    case HEALTH_CHECK_JSON:
        http_start(s);
        break;
    case HEALTH_CHECK_TCP:
        tcp_start(s);
        break;
    case HEALTH_CHECK_FILE:
        file_check(s);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Runs: the runtime state of one adopted topology                           */
/* ------------------------------------------------------------------------ */

static void run_free(run_t *r)
{
    free(r->srv);
    free(r->agg);
    free(r->cl_seq);
    free(r->srv_bits);
    free(r->cl_bits);
    for (int b = 0; b < 2; b++) {
        free(r->srv_list[b]);
        free(r->cl_list[b]);
    }
    free(r->recompute);
    free(r);
}

static void on_srv_timer_closed(uv_handle_t *hd)
{
    srv_t *s = hd->data;
    run_t *r = s->run;
    if (--r->open_handles == 0 && r->closing) run_free(r);
}

static run_t *run_new(health_t *h, health_topo_t *topo)
{
    run_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->h = h;
    r->topo = topo;
    r->n = topo->n_servers;
    r->n_clusters = topo->n_clusters;
    size_t ns = r->n ? r->n : 1, nc = r->n_clusters ? r->n_clusters : 1;
    r->srv = calloc(ns, sizeof(*r->srv));
    r->agg = calloc(nc, sizeof(*r->agg));
    r->cl_seq = calloc(nc, sizeof(*r->cl_seq));
    r->srv_bits = calloc(ns, 1);
    r->cl_bits = calloc(nc, 1);
    r->recompute = calloc(nc, sizeof(uint32_t));
    bool ok = r->srv && r->agg && r->cl_seq && r->srv_bits && r->cl_bits && r->recompute;
    for (int b = 0; b < 2; b++) {
        r->srv_list[b] = calloc(ns, sizeof(uint32_t));
        r->cl_list[b] = calloc(nc, sizeof(uint32_t));
        ok = ok && r->srv_list[b] && r->cl_list[b];
    }
    if (!ok) {
        run_free(r);
        return NULL;
    }
    /* The table currently published (the initial one, or whatever an
     * earlier poller left) is the one not to write first. */
    r->cur = atomic_load_explicit(&topo->current, memory_order_relaxed) == &topo->tables[1];
    uint64_t now = health_clock_ms();
    for (uint32_t i = 0; i < r->n; i++) {
        srv_t *s = &r->srv[i];
        s->run = r;
        s->id = i;
        s->cfg = &topo->servers[i];
        s->chk = s->cfg->check;
        srv_endpoint(s);
        health__params_from_settings(&s->params, &topo->settings, s->chk);
        health__sm_init(&s->sm, now);
        s->eff = HEALTH_UNKNOWN;
        s->eff_reason = HEALTH_R_NONE;
    }
    for (uint32_t c = 0; c < r->n_clusters; c++) {
        r->agg[c].state = HEALTH_UNKNOWN;
        r->agg[c].n_unknown = topo->clusters[c].n_servers;
    }
    return r;
}

static bool same_check(const health_check_t *a, const health_check_t *b)
{
#define SAME_STR(x, y) (((x) == NULL && (y) == NULL) || ((x) && (y) && strcmp((x), (y)) == 0))
    if (a->kind != b->kind || a->mode != b->mode || a->unit_bits != b->unit_bits) return false;
    if (!SAME_STR(a->url, b->url) || !SAME_STR(a->metric, b->metric) ||
        !SAME_STR(a->field, b->field) || !SAME_STR(a->path, b->path) ||
        !SAME_STR(a->address, b->address) || a->n_labels != b->n_labels)
        return false;
    for (uint32_t i = 0; i < a->n_labels; i++)
        if (!SAME_STR(a->label_names[i], b->label_names[i]) ||
            !SAME_STR(a->label_values[i], b->label_values[i]))
            return false;
    return true;
#undef SAME_STR
}

/* Carry state from the old run to servers of the new one with the same
 * cluster name, server name and check. */
static void run_carry(run_t *old, run_t *nr)
{
    for (uint32_t i = 0; i < nr->n; i++) {
        srv_t *s = &nr->srv[i];
        const char *cname = nr->topo->clusters[s->cfg->cluster].name;
        int64_t oc = health_topo_find_cluster(old->topo, cname);
        if (oc < 0) continue;
        int64_t os = health_topo_find_server(old->topo, (uint32_t)oc, s->cfg->name);
        if (os < 0) continue;
        const srv_t *o = &old->srv[os];
        if (!same_check(o->chk, s->chk)) continue;
        s->sm = o->sm;
        s->ctr = o->ctr;
        s->fsig = o->fsig;
        s->file_ok = o->file_ok;
        s->vseq = o->vseq;
        s->admin = o->admin;
        s->admin_level = o->admin_level;
        memcpy(s->admin_reason, o->admin_reason, sizeof(s->admin_reason));
        memcpy(s->event, o->event, sizeof(s->event));
        s->ev_is_rate = o->ev_is_rate;
        /* Thresholds may have changed: re-derive the effective state with
         * the new parameters at the next sample; the state itself stays. */
        s->eff = o->eff;
        s->eff_reason = o->eff_reason;
        nr->cl_seq[s->cfg->cluster] = old->cl_seq[o->cfg->cluster];
    }
    /* A cluster kept by name keeps its state: the reload is no transition
     * to log. */
    for (uint32_t c = 0; c < nr->n_clusters; c++) {
        int64_t oc = health_topo_find_cluster(old->topo, nr->topo->clusters[c].name);
        if (oc >= 0) nr->agg[c].state = old->agg[oc].state;
    }
}

/* Stop everything of a run; it frees itself once its timers are closed.
 * After this returns nothing reads the run's topology any more. */
static void run_teardown(health_t *h, run_t *r)
{
    r->closing = true;
    for (uint32_t i = 0; i < r->n; i++) {
        srv_t *s = &r->srv[i];
        if (s->xfer) {
            curl_multi_remove_handle(s->xfer->shard->multi, s->xfer->easy);
            xfer_put(h, s->xfer);
            s->xfer = NULL;
        }
        if (s->probe) {
            s->probe->srv = NULL;
            probe_close(s->probe);
            s->probe = NULL;
        }
        uv_close((uv_handle_t *)&s->timer, on_srv_timer_closed);
    }
    if (r->open_handles == 0) run_free(r);
}

static void run_start(health_t *h, run_t *r)
{
    /* Spread the first polls over each check's interval, so 1,000 servers
     * polled every second are not a burst of 1,000 requests.  Phases are
     * rounded to slots of PHASE_SLOT_MS (a tenth of the interval when that
     * is shorter): the servers of one slot fire in the same loop iteration
     * and their requests go out together, which costs one wake-up of the
     * poller instead of one per server, and the spread stays smooth (10
     * requests every 10 ms for 1,000 servers a second).  libuv re-arms
     * repeating timers from the loop time, so a slot stays together. */
    for (uint32_t i = 0; i < r->n; i++) {
        srv_t *s = &r->srv[i];
        uv_timer_init(&h->loop, &s->timer);
        s->timer.data = s;
        r->open_handles++;
        uint64_t iv = s->chk->interval_ms;
        uint64_t slot = iv / 10 < PHASE_SLOT_MS ? (iv / 10 ? iv / 10 : 1) : PHASE_SLOT_MS;
        uint64_t phase = r->n > 1 ? iv * i / r->n : 0;
        uv_timer_start(&s->timer, on_tick, phase - phase % slot, iv);
    }
}

/* Adopt a topology (NULL: none).  On the poller thread, or on the caller's
 * thread before the poller thread exists. */
static void adopt(health_t *h, health_topo_t *topo)
{
    run_t *old = h->run;
    run_t *nr = NULL;
    if (topo) {
        nr = run_new(h, topo);
        if (nr == NULL) log_err("health: out of memory adopting the new topology; polling nothing");
    }
    if (old && nr) run_carry(old, nr);
    /* Switch first: status readers (under status_mu) must never see a run
     * that teardown may free. */
    pthread_mutex_lock(&h->status_mu);
    h->run = nr;
    pthread_mutex_unlock(&h->status_mu);
    if (old) run_teardown(h, old);
    uv_timer_stop(&h->admin_timer);
    h->admin_path = NULL;
    h->admin_present = false;
    h->admin_sig.valid = false;
    if (nr == NULL) return;
    const health_settings_t *st = &topo->settings;
    /* A configured cap is split evenly over the shards. */
    long maxconn = st->max_connections
                       ? (long)((st->max_connections + HEALTH_SHARDS - 1) / HEALTH_SHARDS)
                       : (long)nr->n + 16;
    for (int i = 0; i < HEALTH_SHARDS; i++)
        curl_multi_setopt(h->shards[i].multi, CURLMOPT_MAXCONNECTS, maxconn);
    /* Every server and cluster is written to both tables once. */
    for (uint32_t i = 0; i < nr->n; i++) {
        /* Carried servers keep their effective state, new ones are
         * UNKNOWN: srv_update logs no transition for either. */
        srv_update(&nr->srv[i], false);
    }
    for (uint32_t c = 0; c < nr->n_clusters; c++)
        mark_cluster(nr, c);
    if (st->admin_file) {
        h->admin_path = st->admin_file;
        admin_reload(h, true);
        uv_timer_start(&h->admin_timer, on_admin_timer, st->admin_interval_ms,
                       st->admin_interval_ms);
    }
    /* Publish the carried states now: health_apply returns after this, so
     * a snapshot published next never shows them as UNKNOWN. */
    publish(h);
    run_start(h, nr);
}

/* ------------------------------------------------------------------------ */
/* Thread, apply, stop                                                       */
/* ------------------------------------------------------------------------ */

static void on_closed_noop(uv_handle_t *hd)
{
    (void)hd;
}

static void shutdown_loop(health_t *h)
{
    adopt(h, NULL);
    for (int i = 0; i < HEALTH_SHARDS; i++) {
        shard_t *sh = &h->shards[i];
        if (sh->multi) {
            /* Closes cached connections; close_cb closes their polls. */
            curl_multi_cleanup(sh->multi);
            sh->multi = NULL;
            uv_close((uv_handle_t *)&sh->timer, on_closed_noop);
        }
    }
    for (size_t fd = 0; fd < h->socks_cap; fd++)
        sock_forget(h, (curl_socket_t)fd);
    uv_close((uv_handle_t *)&h->wake, on_closed_noop);
    uv_close((uv_handle_t *)&h->pub_timer, on_closed_noop);
    uv_close((uv_handle_t *)&h->admin_timer, on_closed_noop);
}

static void on_wake(uv_async_t *a)
{
    health_t *h = a->data;
    pthread_mutex_lock(&h->ctl_mu);
    bool stop = h->req_stop;
    bool pending = h->req_pending;
    health_topo_t *topo = h->req_topo;
    h->req_pending = false;
    pthread_mutex_unlock(&h->ctl_mu);
    if (pending) {
        adopt(h, topo);
        pthread_mutex_lock(&h->ctl_mu);
        h->req_done = true;
        pthread_cond_broadcast(&h->ctl_cv);
        pthread_mutex_unlock(&h->ctl_mu);
    }
    if (stop && !h->stopped) {
        h->stopped = true;
        shutdown_loop(h);
    }
}

static void thread_main(void *arg)
{
    health_t *h = arg;
    /* A name for top -H, perf and gdb. */
    pthread_setname_np(pthread_self(), "steerdns-health");
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int health_new(health_t **out)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) return -ENOMEM;
    health_t *h = calloc(1, sizeof(*h));
    if (h == NULL) return -ENOMEM;
    int rc = uv_loop_init(&h->loop);
    if (rc != 0) {
        free(h);
        return rc;
    }
    for (int i = 0; i < HEALTH_SHARDS; i++) {
        shard_t *sh = &h->shards[i];
        sh->h = h;
        sh->multi = curl_multi_init();
        if (sh->multi == NULL) {
            while (i-- > 0)
                curl_multi_cleanup(h->shards[i].multi);
            uv_loop_close(&h->loop);
            free(h);
            return -ENOMEM;
        }
    }
    pthread_mutex_init(&h->ctl_mu, NULL);
    pthread_cond_init(&h->ctl_cv, NULL);
    pthread_mutex_init(&h->status_mu, NULL);
    uv_async_init(&h->loop, &h->wake, on_wake);
    h->wake.data = h;
    uv_timer_init(&h->loop, &h->pub_timer);
    h->pub_timer.data = h;
    uv_timer_init(&h->loop, &h->admin_timer);
    h->admin_timer.data = h;
    for (int i = 0; i < HEALTH_SHARDS; i++) {
        shard_t *sh = &h->shards[i];
        uv_timer_init(&h->loop, &sh->timer);
        sh->timer.data = sh;
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    }
    /* Ask for the text format: node_exporter would otherwise be free to
     * negotiate protobuf or OpenMetrics. */
    h->accept_prom = curl_slist_append(NULL, "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1");
    h->accept_json = curl_slist_append(NULL, "Accept: application/json;q=1,*/*;q=0.1");
    log_rl_init(&h->rl, 100, 1000);
    *out = h;
    return 0;
}

void health_set_notify(health_t *h, void (*cb)(void *arg), void *arg)
{
    h->notify = cb;
    h->notify_arg = arg;
}

int health_start(health_t *h)
{
    if (h->started) return -EALREADY;
    int rc = uv_thread_create(&h->thread, thread_main, h);
    if (rc != 0) return rc;
    h->started = true;
    return 0;
}

int health_apply(health_t *h, health_topo_t *topo)
{
    if (topo) {
        void *owner = atomic_load_explicit(&topo->owner, memory_order_relaxed);
        if (owner != NULL && owner != h) return -EBUSY;
        atomic_store_explicit(&topo->owner, h, memory_order_relaxed);
    }
    if (!h->started) {
        adopt(h, topo);
    } else {
        pthread_mutex_lock(&h->ctl_mu);
        h->req_topo = topo;
        h->req_pending = true;
        h->req_done = false;
        pthread_mutex_unlock(&h->ctl_mu);
        uv_async_send(&h->wake);
        pthread_mutex_lock(&h->ctl_mu);
        while (!h->req_done)
            pthread_cond_wait(&h->ctl_cv, &h->ctl_mu);
        pthread_mutex_unlock(&h->ctl_mu);
    }
    if (h->applied && h->applied != topo)
        atomic_store_explicit(&h->applied->owner, NULL, memory_order_relaxed);
    h->applied = topo;
    return 0;
}

void health_stop(health_t *h)
{
    if (h == NULL) return;
    if (h->started) {
        pthread_mutex_lock(&h->ctl_mu);
        h->req_stop = true;
        pthread_mutex_unlock(&h->ctl_mu);
        uv_async_send(&h->wake);
        uv_thread_join(&h->thread);
    } else {
        h->stopped = true;
        shutdown_loop(h);
        uv_run(&h->loop, UV_RUN_DEFAULT);
    }
    if (h->applied) atomic_store_explicit(&h->applied->owner, NULL, memory_order_relaxed);
    uv_loop_close(&h->loop);
    while (h->pool) {
        xfer_t *x = h->pool;
        h->pool = x->next_free;
        curl_easy_cleanup(x->easy);
        free(x->body);
        free(x);
    }
    curl_slist_free_all(h->accept_prom);
    curl_slist_free_all(h->accept_json);
    pthread_mutex_destroy(&h->ctl_mu);
    pthread_cond_destroy(&h->ctl_cv);
    pthread_mutex_destroy(&h->status_mu);
    free(h->socks);
    free(h);
}

void health_get_stats(health_t *h, health_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->polls = atomic_load_explicit(&h->st_polls, memory_order_relaxed);
    out->failures = atomic_load_explicit(&h->st_failures, memory_order_relaxed);
    out->publications = atomic_load_explicit(&h->st_pubs, memory_order_relaxed);
    out->transitions = atomic_load_explicit(&h->st_transitions, memory_order_relaxed);
    if (h->started) {
        clockid_t cid;
        struct timespec ts;
        if (pthread_getcpuclockid(h->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
            out->cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
}

bool health__detail(health_t *h, const health_topo_t *topo, uint32_t id, char *buf, size_t size)
{
    bool ok = false;
    srv_text_t v;
    health__params_t p;
    pthread_mutex_lock(&h->status_mu);
    if (h->run && h->run->topo == topo && id < h->run->n) {
        v = h->run->srv[id].shown;
        p = h->run->srv[id].params;
        ok = true;
    }
    pthread_mutex_unlock(&h->status_mu);
    if (ok) compose_detail(&v, &p, buf, size);
    return ok;
}
