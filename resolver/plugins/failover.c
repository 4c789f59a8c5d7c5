/*
 * failover.c - the `failover` plugin: an ordered list of clusters, the
 * first one that is up wins.
 *
 *     api: {failover: [primary, backup]}
 *     api: {failover: {clusters: [primary, backup], ttl: 30, fallback: [192.0.2.1]}}
 *
 * The answer is the first cluster that is up (any state but DOWN: IDLE,
 * BUSY, or not yet measured) and has an address of the asked family (A:
 * IPv4, AAAA: IPv6).  When no cluster that is up has one (every cluster is
 * DOWN, or those up have only the other family), the answer is the
 * `fallback` addresses of that family if it has some, else the first
 * cluster with an address of the family, even DOWN: never an empty answer
 * while one exists (docs/plugins.md).
 */
#include "resolver/plugin.h"

typedef struct failover {
    const health_topo_t *topo;
    uint32_t n;
    uint32_t *cluster; /* ids in order; set i answers cluster[i] */
    bool has_fallback; /* set n is the fallback */
    plugin_set_t fallback;
} failover_t;

typedef struct failover_cfg {
    const yconf_node_t *clusters;
    uint64_t ttl_ms;
    const yconf_node_t *fallback;
} failover_cfg_t;

static const yconf_key_t failover_table[] = {
    {"clusters", YCONF_T_SEQ, offsetof(failover_cfg_t, clusters), 0, 0, NULL, YCONF_REQUIRED,
     NULL, NULL},
    {"ttl", YCONF_T_DURATION, offsetof(failover_cfg_t, ttl_ms), 0, 2147483647000.0, "30", 0,
     NULL, NULL},
    {"fallback", YCONF_T_NODE, offsetof(failover_cfg_t, fallback), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static int failover_create(const plugin_env_t *env, const yconf_node_t *cfg, const char *path,
                           arena_t *a, diag_list_t *d, void **inst, plugin_decl_t *decl)
{
    failover_cfg_t c = {.ttl_ms = 30000};
    const yconf_node_t *list = cfg;
    char sub[300];
    snprintf(sub, sizeof(sub), "%s", path);
    if (cfg->kind == YCONF_MAP) {
        if (yconf_apply(cfg, failover_table, &c, a, d, path, NULL) != 0)
            return -22;
        list = c.clusters;
        snprintf(sub, sizeof(sub), "%s.clusters", path);
    } else if (!yconf_expect(d, cfg, YCONF_SEQ, path)) {
        return -22;
    }
    if (env->topo == NULL || health_topo_clusters(env->topo) == 0) {
        yconf_error(d, cfg, "%s: failover needs clusters, and no clusters are configured", path);
        return -22;
    }
    size_t n = list->u.seq.n;
    if (n == 0) {
        yconf_error(d, list, "%s: at least one cluster is needed", sub);
        return -22;
    }
    failover_t *f = arena_calloc(a, 1, sizeof(*f));
    f->topo = env->topo;
    f->cluster = arena_calloc(a, n, sizeof(uint32_t));
    plugin_set_t *sets = arena_calloc(a, n + 1, sizeof(*sets));
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *it = list->u.seq.items[i];
        if (it->kind != YCONF_SCALAR || yconf_is_null(it)) {
            yconf_error(d, it, "%s[%zu]: expected a cluster name, got %s", sub, i,
                        yconf_is_null(it) ? "nothing" : it->kind == YCONF_MAP ? "a mapping" : "a sequence");
            ok = false;
            continue;
        }
        int64_t id = health_topo_find_cluster(env->topo, it->u.scalar.str);
        if (id < 0) {
            yconf_error(d, it, "%s[%zu]: unknown cluster '%s'", sub, i, it->u.scalar.str);
            ok = false;
            continue;
        }
        bool dup = false;
        for (uint32_t k = 0; k < f->n && !dup; k++)
            dup = f->cluster[k] == (uint32_t)id;
        if (dup) {
            yconf_error(d, it, "%s[%zu]: '%s' is listed twice", sub, i, it->u.scalar.str);
            ok = false;
            continue;
        }
        const health_cluster_t *cl = health_topo_cluster(env->topo, (uint32_t)id);
        /* Set k answers cluster[k]. */
        sets[f->n] = (plugin_set_t){cl->entry4, cl->n_entry4, cl->entry6, cl->n_entry6};
        f->cluster[f->n++] = (uint32_t)id;
    }
    if (c.fallback) {
        char fp[320];
        snprintf(fp, sizeof(fp), "%s.fallback", path);
        if (!plugin_parse_addresses(c.fallback, fp, a, d, &sets[f->n]))
            ok = false;
        f->has_fallback = true;
        f->fallback = sets[f->n];
    }
    if (!ok)
        return -22;
    decl->sets = sets;
    decl->nsets = f->n + (f->has_fallback ? 1 : 0);
    decl->ttl = (uint32_t)(c.ttl_ms / 1000);
    *inst = f;
    return 0;
}

static bool has_family(const failover_t *f, uint32_t i, uint16_t qtype)
{
    const health_cluster_t *cl = health_topo_cluster(f->topo, f->cluster[i]);
    return qtype == ZONES_TYPE_AAAA ? cl->n_entry6 > 0 : cl->n_entry4 > 0;
}

static void failover_explain(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                             const trace_t *t)
{
    const failover_t *f = inst;
    const health_table_t *tab = health_table_acquire(f->topo);
    const char *fam = q->qtype == ZONES_TYPE_AAAA ? "IPv6" : "IPv4";
    r->ttl = UINT32_MAX;
    r->scope = 0;
    int64_t first_fam = -1; /* the first cluster with the family, up or not */
    for (uint32_t i = 0; i < f->n; i++) {
        health_state_t s = health_cluster_state(tab, f->cluster[i]);
        bool fam_ok = has_family(f, i, q->qtype);
        if (trace_on(t))
            trace_printf(t, "failover: %u. %s: %s%s", i + 1,
                         health_topo_cluster(f->topo, f->cluster[i])->name, health_state_str(s),
                         fam_ok ? "" : q->qtype == ZONES_TYPE_AAAA ? ", no IPv6 address"
                                                                   : ", no IPv4 address");
        if (!fam_ok)
            continue;
        if (first_fam < 0)
            first_fam = i;
        if (s != HEALTH_DOWN) {
            r->set = i;
            trace_printf(t, "failover: chose %s, the first cluster that is up and has %s addresses",
                         health_topo_cluster(f->topo, f->cluster[i])->name, fam);
            return;
        }
    }
    /* No cluster that is up can answer this family. */
    const char *why = first_fam < 0 ? "no cluster has" : "no cluster that is up has";
    if (f->has_fallback) {
        const plugin_set_t *fb = &f->fallback;
        if (q->qtype == ZONES_TYPE_AAAA ? fb->n6 > 0 : fb->n4 > 0) {
            r->set = f->n;
            trace_printf(t, "failover: %s %s addresses: answering the fallback addresses", why,
                         fam);
            return;
        }
    }
    if (first_fam >= 0) {
        /* Never an empty answer while a cluster has an address of the
         * family, even a DOWN one. */
        r->set = (uint32_t)first_fam;
        trace_printf(t, "failover: %s %s addresses%s: answering %s, the first cluster with %s "
                        "addresses (DOWN)",
                     why, fam, f->has_fallback ? " and the fallback has none" : "",
                     health_topo_cluster(f->topo, f->cluster[first_fam])->name, fam);
        return;
    }
    /* Nothing has the family: NODATA (the first cluster's empty set). */
    r->set = 0;
    trace_printf(t, "failover: no cluster%s has %s addresses: NODATA",
                 f->has_fallback ? " and no fallback address" : "", fam);
}

static void failover_resolve(const void *inst, const plugin_query_t *q, plugin_result_t *r)
{
    failover_explain(inst, q, r, NULL);
}

const plugin_desc_t plugin_failover = {
    .abi = PLUGIN_ABI_VERSION,
    .name = "failover",
    .create = failover_create,
    .resolve = failover_resolve,
    .explain = failover_explain,
};
