/*
 * health_state.c - the pure logic between a measurement and a published
 * state: the per-server state machine with hysteresis, counter -> rate
 * with reset handling, admin overrides, cluster aggregation, and the names
 * of states and reasons.
 *
 * Owns nothing: every function works on structs its caller owns (the
 * poller's per-server runtime state).  Flow: poll result -> here -> the
 * poller's back table -> publish -> resolver.  Any thread; no allocation.
 *
 * The server state machine (thresholds T = threshold, R = return
 * threshold; counts from health.*):
 *
 *            first usable sample: util >= T ? BUSY : IDLE
 *   UNKNOWN ------------------------------------------------> IDLE / BUSY
 *      |                                                    |  ^
 *      | `fall` failures in a row,           busy_after     |  | idle_after samples
 *      | or no usable sample for stale_after samples >= T   v  | below R (not T)
 *      +---------------------------------> DOWN <------ IDLE      BUSY
 *                                           |     `fall` failures / stale
 *                                           | `rise` usable samples in a row
 *                                           +--> util >= T ? BUSY : IDLE
 */
#include "health/health_int.h"

#include <math.h>
#include <stdio.h>

const char *health_state_str(health_state_t s)
{
    switch (s) {
    case HEALTH_UNKNOWN:
        return "UNKNOWN";
    case HEALTH_IDLE:
        return "IDLE";
    case HEALTH_BUSY:
        return "BUSY";
    case HEALTH_DOWN:
        return "DOWN";
    }
    return "?";
}

const char *health_reason_str(health_reason_t r)
{
    static const char *const names[HEALTH_R_COUNT_] = {
        [HEALTH_R_NONE] = "no sample yet",
        [HEALTH_R_BELOW] = "below threshold",
        [HEALTH_R_ABOVE] = "at or above threshold",
        [HEALTH_R_HOLD_BUSY] = "not yet below return threshold",
        [HEALTH_R_HOLD_IDLE] = "above threshold, waiting for busy_after",
        [HEALTH_R_RISING] = "recovering, waiting for rise",
        [HEALTH_R_FIRST_SAMPLE] = "first counter sample, rate needs two",
        [HEALTH_R_COUNTER_RESET] = "counter reset",
        [HEALTH_R_LIVE] = "alive (no bandwidth data)",
        [HEALTH_R_TIMEOUT] = "timeout",
        [HEALTH_R_CONNECT] = "connection failed",
        [HEALTH_R_TRANSPORT] = "transport error",
        [HEALTH_R_HTTP_STATUS] = "HTTP error status",
        [HEALTH_R_HTML] = "HTML instead of data",
        [HEALTH_R_PARSE] = "malformed metrics",
        [HEALTH_R_NO_METRIC] = "metric missing",
        [HEALTH_R_BAD_JSON] = "malformed JSON",
        [HEALTH_R_NO_FIELD] = "JSON field missing",
        [HEALTH_R_BAD_VALUE] = "bad value",
        [HEALTH_R_NEGATIVE_RATE] = "negative rate",
        [HEALTH_R_BODY_TOO_LARGE] = "response too large",
        [HEALTH_R_STALE] = "stale data",
        [HEALTH_R_FILE] = "state file unreadable",
        [HEALTH_R_FILE_DOWN] = "state file says DOWN",
        [HEALTH_R_FILE_BUSY] = "state file says BUSY",
        [HEALTH_R_ADMIN_DOWN] = "admin: DOWN",
        [HEALTH_R_ADMIN_BUSY] = "admin: BUSY",
        [HEALTH_R_ADMIN_UP] = "admin: UP",
        [HEALTH_R_CLUSTER] = "from its servers",
    };
    if ((unsigned)r < HEALTH_R_COUNT_ && names[r]) return names[r];
    return "?";
}

void health__params_from_settings(health__params_t *p, const health_settings_t *s,
                                  const health_check_t *c)
{
    p->threshold = s->threshold;
    p->return_threshold = s->return_threshold;
    p->busy_after = s->busy_after ? s->busy_after : 1;
    p->idle_after = s->idle_after ? s->idle_after : 1;
    p->fall = s->fall ? s->fall : 1;
    p->rise = s->rise ? s->rise : 1;
    p->stale_ms = c->stale_after_ms;
}

void health__sm_init(health__sm_t *sm, uint64_t now_ms)
{
    *sm = (health__sm_t){.state = HEALTH_UNKNOWN, .reason = HEALTH_R_NONE, .last_good_ms = now_ms};
}

static void enter(health__sm_t *sm, health_state_t s, health_reason_t r)
{
    sm->state = s;
    sm->reason = r;
    sm->streak = 0;
    sm->stale_down = false;
}

bool health__sm_sample(health__sm_t *sm, const health__params_t *p, uint64_t now_ms, double util,
                       uint64_t rate_bps, bool no_rate)
{
    health_state_t old = sm->state;
    if (!(util >= 0) || isinf(util)) util = 0; /* callers reject NaN; be safe anyway */
    sm->fails = 0;
    if (sm->goods < UINT32_MAX) sm->goods++;
    sm->has_sample = true;
    sm->no_rate = no_rate;
    sm->util = util;
    sm->rate_bps = rate_bps;
    sm->last_good_ms = now_ms;
    sm->sample_ms = now_ms;
    bool above = util >= p->threshold;
    switch (sm->state) {
    case HEALTH_UNKNOWN:
        enter(sm, above ? HEALTH_BUSY : HEALTH_IDLE, above ? HEALTH_R_ABOVE : HEALTH_R_BELOW);
        break;
    case HEALTH_DOWN:
        sm->stale_down = false;
        if (sm->goods >= p->rise)
            enter(sm, above ? HEALTH_BUSY : HEALTH_IDLE, above ? HEALTH_R_ABOVE : HEALTH_R_BELOW);
        else
            sm->reason = HEALTH_R_RISING;
        break;
    case HEALTH_IDLE:
        if (above) {
            if (++sm->streak >= p->busy_after)
                enter(sm, HEALTH_BUSY, HEALTH_R_ABOVE);
            else
                sm->reason = HEALTH_R_HOLD_IDLE;
        } else {
            sm->streak = 0;
            sm->reason = HEALTH_R_BELOW;
        }
        break;
    case HEALTH_BUSY:
        /* Hysteresis: a server hovering around T stays BUSY; only a value
         * below the lower return threshold R, idle_after times in a row,
         * brings it back. */
        if (util < p->return_threshold) {
            if (++sm->streak >= p->idle_after)
                enter(sm, HEALTH_IDLE, HEALTH_R_BELOW);
            else
                sm->reason = HEALTH_R_HOLD_BUSY;
        } else {
            sm->streak = 0;
            sm->reason = above ? HEALTH_R_ABOVE : HEALTH_R_HOLD_BUSY;
        }
        break;
    }
    sm->seq++;
    return sm->state != old;
}

bool health__sm_nodata(health__sm_t *sm, const health__params_t *p, uint64_t now_ms,
                       health_reason_t why)
{
    (void)p;
    (void)now_ms;
    sm->fails = 0;
    /* A DOWN server keeps the reason it is down for until a usable sample
     * starts its recovery. */
    if (sm->state != HEALTH_DOWN) sm->reason = why;
    return false;
}

bool health__sm_fail(health__sm_t *sm, const health__params_t *p, uint64_t now_ms,
                     health_reason_t why)
{
    (void)now_ms;
    health_state_t old = sm->state;
    sm->goods = 0;
    if (sm->fails < UINT32_MAX) sm->fails++;
    if (sm->state != HEALTH_DOWN && sm->fails >= p->fall)
        enter(sm, HEALTH_DOWN, why);
    else if (!sm->stale_down)
        sm->reason = why; /* DOWN already, or a failure still being counted */
    /* A server that staleness made DOWN stays DOWN for `stale data` (the
     * failure is kept as the event the detail shows), until a usable
     * sample starts its recovery: what made it DOWN is the missing sample,
     * however many failures in a row there are. */
    if (sm->state != old) sm->seq++;
    return sm->state != old;
}

bool health__sm_force(health__sm_t *sm, uint64_t now_ms, health_state_t state, health_reason_t why)
{
    health_state_t old = sm->state;
    enter(sm, state, why);
    sm->fails = 0;
    sm->goods = 0;
    sm->has_sample = true;
    sm->no_rate = true;
    sm->util = 0;
    sm->rate_bps = 0;
    sm->last_good_ms = now_ms;
    sm->sample_ms = now_ms;
    sm->seq++;
    return sm->state != old;
}

bool health__sm_tick(health__sm_t *sm, const health__params_t *p, uint64_t now_ms)
{
    if (sm->state == HEALTH_DOWN || p->stale_ms == 0) return false;
    if (now_ms > sm->last_good_ms && now_ms - sm->last_good_ms > p->stale_ms) {
        enter(sm, HEALTH_DOWN, HEALTH_R_STALE);
        sm->stale_down = true;
        sm->goods = 0;
        sm->seq++;
        return true;
    }
    return false;
}

health__rate_rc_t health__rate_update(health__counter_t *prev, double value, uint64_t t_ns,
                                      bool remote_ts, uint64_t max_age_ns, double *rate)
{
    if (!isfinite(value) || value < 0) return HEALTH__RATE_BAD;
    health__counter_t cur = {true, remote_ts, value, t_ns};
    if (!prev->valid || prev->remote_ts != remote_ts ||
        (t_ns > prev->t_ns && max_age_ns && t_ns - prev->t_ns > max_age_ns)) {
        *prev = cur;
        return HEALTH__RATE_BASELINE;
    }
    if (t_ns <= prev->t_ns) {
        /* The exposition's timestamp did not advance (a cached value):
         * nothing new.  A remote clock going backwards starts over. */
        if (t_ns < prev->t_ns) {
            *prev = cur;
            return HEALTH__RATE_BASELINE;
        }
        return HEALTH__RATE_SAME;
    }
    if (value < prev->value) {
        /* Counters only go down when the exporter restarts (or the device
         * was re-created): a reset, as Prometheus' rate() treats it.  The
         * increase since the reset is unknown, so this reading becomes the
         * baseline rather than a guessed rate. */
        *prev = cur;
        return HEALTH__RATE_RESET;
    }
    double dt = (double)(t_ns - prev->t_ns) / 1e9;
    *rate = (value - prev->value) / dt;
    *prev = cur;
    return HEALTH__RATE_OK;
}

void health__cluster_aggregate(const health__srv_sum_t *s, size_t n, health__agg_t *out)
{
    health__agg_t a = {0};
    double cap = 0, weighted = 0;
    for (size_t i = 0; i < n; i++) {
        switch (s[i].state) {
        case HEALTH_IDLE:
            a.n_idle++;
            break;
        case HEALTH_BUSY:
            a.n_busy++;
            break;
        case HEALTH_DOWN:
            a.n_down++;
            break;
        case HEALTH_UNKNOWN:
            a.n_unknown++;
            break;
        }
        if (s[i].sample_ms > a.sample_ms) a.sample_ms = s[i].sample_ms;
        if (s[i].state == HEALTH_DOWN) continue;
        cap += (double)s[i].capacity_bps;
        if (s[i].state != HEALTH_UNKNOWN) {
            weighted += s[i].util * (double)s[i].capacity_bps;
            a.rate_bps += s[i].rate_bps;
        }
    }
    if (a.n_idle)
        a.state = HEALTH_IDLE;
    else if (a.n_unknown)
        a.state = HEALTH_UNKNOWN;
    else if (a.n_busy)
        a.state = HEALTH_BUSY;
    else
        a.state = HEALTH_DOWN;
    a.util = cap > 0 ? weighted / cap : 1.0;
    *out = a;
}

health_state_t health__admin_apply(health_admin_state_t admin, const health__sm_t *sm,
                                   health_reason_t *reason)
{
    switch (admin) {
    case HEALTH_ADMIN_DOWN:
        *reason = HEALTH_R_ADMIN_DOWN;
        return HEALTH_DOWN;
    case HEALTH_ADMIN_BUSY:
        *reason = HEALTH_R_ADMIN_BUSY;
        return HEALTH_BUSY;
    case HEALTH_ADMIN_UP:
        if (sm->state == HEALTH_DOWN || sm->state == HEALTH_UNKNOWN) {
            *reason = HEALTH_R_ADMIN_UP;
            return HEALTH_IDLE;
        }
        return sm->state;
    case HEALTH_ADMIN_NONE:
        break;
    }
    return sm->state;
}

void health__fmt_rate(uint64_t bps, char *buf, size_t size)
{
    static const char *const units[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
    double v = (double)bps;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llubit/s", (unsigned long long)bps);
    else
        snprintf(buf, size, "%.2f%s", v, units[u]);
}

void health__fmt_util(double util, char *buf, size_t size)
{
    snprintf(buf, size, "%.1f%%", util * 100.0);
}
