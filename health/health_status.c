/*
 * health_status.c - `steerdns status` for health: one line per cluster and
 * per server, from the published table plus the poller's reason texts.
 *
 * Owns nothing.  Control plane, any thread: it reads the latest published
 * table (acquire load, relaxed fields) and takes the poller's status mutex
 * only to copy each server's reason text.  Flow: health -> states -> here
 * -> the control channel's reply (a trace_t sink).
 *
 * Line formats (docs/health.md, "What status shows"):
 *   health servers=N clusters=N publication=SEQ published=AGE
 *   cluster NAME state=S util=U% rate=R idle=N busy=N down=N unknown=N seq=N
 *           reason="from its servers" detail="..."
 *   server CLUSTER/SERVER state=S util=U% rate=R age=A seq=N kind=K [admin=yes]
 *          reason="..." detail="..."
 * (each on one line).
 */
#include "health/health_int.h"

#include <stdio.h>
#include <string.h>

static const char *kind_str(health_check_kind_t k)
{
    switch (k) {
    case HEALTH_CHECK_PROMETHEUS:
        return "prometheus";
    case HEALTH_CHECK_JSON:
        return "json";
    case HEALTH_CHECK_TCP:
        return "tcp";
    case HEALTH_CHECK_FILE:
        return "file";
    }
    return "?";
}

static void fmt_age(uint64_t now, uint64_t then, char *buf, size_t size)
{
    if (then == 0)
        snprintf(buf, size, "-");
    else if (now < then)
        snprintf(buf, size, "0ms");
    else
        snprintf(buf, size, "%llums", (unsigned long long)(now - then));
}

/* Reason texts go inside double quotes: make them safe to print there. */
static void quote_safe(char *s)
{
    for (; *s; s++)
        if (*s == '"' || (unsigned char)*s < 0x20 || *s == 0x7f) *s = '\'';
}

static void cluster_text(const health_table_t *tb, uint32_t c, uint32_t n_servers, char *buf,
                         size_t size)
{
    uint32_t idle = health_cluster_idle(tb, c), busy = health_cluster_busy(tb, c);
    uint32_t unknown = health_cluster_unknown(tb, c);
    switch (health_cluster_state(tb, c)) {
    case HEALTH_IDLE:
        snprintf(buf, size, "%u of %u servers idle", idle, n_servers);
        break;
    case HEALTH_UNKNOWN:
        snprintf(buf, size, "no server idle; %u without a measurement yet (usable, utilisation 0)",
                 unknown);
        break;
    case HEALTH_BUSY:
        snprintf(buf, size, "all %u servers up are busy", busy);
        break;
    case HEALTH_DOWN:
        snprintf(buf, size, "all %u servers down", n_servers);
        break;
    }
}

void health_status_write(health_t *h, const health_topo_t *topo, const trace_t *t)
{
    if (!trace_on(t)) return;
    const health_table_t *tb = health_table_acquire(topo);
    uint64_t now = health_clock_ms();
    char age[32], util[32], rate[32], why[300];
    fmt_age(now, atomic_load_explicit(&tb->pub_ms, memory_order_relaxed), age, sizeof(age));
    trace_printf(t, "health servers=%u clusters=%u publication=%llu published=%s", topo->n_servers,
                 topo->n_clusters, (unsigned long long)health_table_seq(tb), age);
    for (uint32_t c = 0; c < topo->n_clusters; c++) {
        const health_cluster_t *cl = &topo->clusters[c];
        health__fmt_util(health_cluster_util(tb, c), util, sizeof(util));
        health__fmt_rate(health_cluster_rate(tb, c), rate, sizeof(rate));
        cluster_text(tb, c, cl->n_servers, why, sizeof(why));
        trace_printf(t,
                     "cluster %s state=%s util=%s rate=%s idle=%u busy=%u down=%u unknown=%u "
                     "seq=%llu reason=\"%s\" detail=\"%s\"",
                     cl->name, health_state_str(health_cluster_state(tb, c)), util, rate,
                     health_cluster_idle(tb, c), health_cluster_busy(tb, c),
                     health_cluster_down(tb, c), health_cluster_unknown(tb, c),
                     (unsigned long long)health_cluster_seq(tb, c),
                     health_reason_str(HEALTH_R_CLUSTER), why);
        for (uint32_t i = cl->first_server; i < cl->first_server + cl->n_servers; i++) {
            const health_server_t *s = &topo->servers[i];
            uint32_t flags = health_server_flags(tb, i);
            health_state_t st = health_server_state(tb, i);
            health__fmt_util(health_server_util(tb, i), util, sizeof(util));
            if (flags & HEALTH_F_NO_RATE)
                snprintf(rate, sizeof(rate), "-");
            else
                health__fmt_rate(health_server_rate(tb, i), rate, sizeof(rate));
            fmt_age(now, health_server_sample_ms(tb, i), age, sizeof(age));
            uint64_t sample_ms = health_server_sample_ms(tb, i);
            if (sample_ms == 0) {
                /* Never measured: UNKNOWN counts as 0, DOWN not at all. */
                snprintf(util, sizeof(util), "-");
                snprintf(rate, sizeof(rate), "-");
            }
            char detail[256];
            if (h == NULL || !health__detail(h, topo, i, detail, sizeof(detail))) detail[0] = '\0';
            quote_safe(detail);
            trace_printf(t,
                         "server %s/%s state=%s util=%s rate=%s age=%s seq=%llu kind=%s%s "
                         "reason=\"%s\" detail=\"%s\"",
                         cl->name, s->name, health_state_str(st), util, rate, age,
                         (unsigned long long)health_server_seq(tb, i), kind_str(s->check->kind),
                         flags & HEALTH_F_ADMIN ? " admin=yes" : "",
                         health_reason_str(health_server_reason(tb, i)), detail);
        }
    }
}
