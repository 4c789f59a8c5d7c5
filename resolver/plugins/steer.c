/*
 * steer.c - the `steer` plugin: send each client to an idle cluster of its
 * region and carrier, nearest first (CN102625287A), without herding.
 *
 *     app: {steer: downloads}                       # resolvers.steer.downloads
 *     resolvers:
 *       steer:
 *         downloads: {mode: damped, ttl: 30s, clusters: [bj-telecom, ...]}
 *
 * Candidate order (built once per snapshot, for every client origin and
 * carrier; docs/steering.md):
 *   home  = the first non-empty tier of the line hierarchy DNSPod and
 *           Alibaba Cloud DNS operators know: region+carrier, region,
 *           carrier within the client's country, carrier, country, default;
 *   then  = the other clusters, nearest first: the great-circle distance of
 *           their region (or the region's explicit neighbour order) plus a
 *           penalty for another carrier.
 *
 * mode literal, the patent word for word: the least-loaded idle home cluster
 * (ties: weight, then round robin); else the first idle cluster in candidate
 * order; else the least-loaded cluster that is not DOWN; all DOWN: the
 * fallback addresses (or the first candidate).
 *
 * mode damped (default): each cluster has an admission fraction a, updated
 * on every health sample by a controller on the main thread (update hook):
 * multiplicative decrease while the cluster is above its target, additive
 * increase below it, paced so a change is seen before the next one.  A
 * client stays home when the hash of its subnet is below a; the same subnets
 * move first and come back last.  Clients that move go to the nearest
 * clusters with headroom below their own target, split in proportion to that
 * headroom by a second hash, and a cluster at its target takes no more
 * overflow.  resolve only reads the controller's published table.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "resolver/plugin.h"

#define STEER_LITERAL 0
#define STEER_DAMPED 1
#define STEER_MAX_DEST 4
#define PPM 1000000u

typedef struct cand_list {
    uint32_t n;     /* candidates */
    uint32_t nhome; /* the first nhome are home */
    const char *tier; /* which line tier made the home set */
    uint32_t *idx;  /* indexes into steer_t.cl */
} cand_list_t;

/* The controller's published view of one cluster (relaxed atomics: resolve
 * reads them without locks; a torn mix of two updates is harmless). */
typedef struct ctl_view {
    _Atomic uint32_t admit_ppm;   /* fraction of home clients that stay */
    _Atomic uint32_t ndest;       /* destinations for the others */
    _Atomic uint64_t dest[STEER_MAX_DEST]; /* cl index << 32 | cumulative weight ppm */
} ctl_view_t;

/* The controller's private state of one cluster (main thread only). */
typedef struct ctl_state {
    double admit;
    uint64_t last_change_ms;
    uint64_t last_seq;
} ctl_state_t;

typedef struct steer {
    const health_topo_t *topo;
    const geo_t *geo;
    const uint16_t *cluster_carrier; /* by topo cluster id */
    int mode;
    uint32_t ttl, busy_ttl;
    double threshold;   /* the health threshold (BUSY at or above) */
    double target;      /* damped: keep clusters at or below this */
    double near;        /* TTL shortens when the chosen cluster is above this */
    double penalty_km;  /* added to the distance of another carrier */
    double increase;    /* damped: additive increase per sample */
    double decrease;    /* damped: largest multiplicative step down */
    uint64_t hold_ms;   /* damped: least time between two changes */
    uint32_t spread;    /* damped: destinations per source */
    uint32_t ncl;
    uint32_t *cl;       /* topo cluster ids of the clusters considered */
    uint32_t nregions, ncarriers, ncountries;
    char (*country)[3];
    int32_t default_origin; /* origin used when nothing is known, -1 = none */
    int32_t default_carrier;
    cand_list_t *lists; /* [origin][carrier + 1]; origin = region | R + country | R + C */
    uint32_t fallback_set; /* UINT32_MAX: none */
    ctl_view_t *view;   /* by cl index */
    ctl_state_t *state; /* by cl index */
    uint32_t *home_of;  /* by cl index: its own (region, carrier) list */
} steer_t;

/* ---- configuration ---- */

typedef struct steer_cfg {
    int mode;
    const yconf_node_t *clusters;
    uint64_t ttl_ms, busy_ttl_ms;
    double target, near;
    double penalty_km;
    const char *default_region, *default_carrier;
    const yconf_node_t *fallback;
    double increase, decrease;
    uint64_t hold_ms;
    uint32_t spread;
} steer_cfg_t;

static const char *const modes[] = {"literal", "damped", NULL};

static const yconf_key_t steer_table[] = {
    {"mode", YCONF_T_ENUM, offsetof(steer_cfg_t, mode), 0, 0, "damped", 0, modes, NULL},
    {"clusters", YCONF_T_SEQ, offsetof(steer_cfg_t, clusters), 0, 0, NULL, 0, NULL, NULL},
    {"ttl", YCONF_T_DURATION, offsetof(steer_cfg_t, ttl_ms), 1000, 86400000, "30s", 0, NULL, NULL},
    {"busy_ttl", YCONF_T_DURATION, offsetof(steer_cfg_t, busy_ttl_ms), 1000, 86400000, "5s", 0,
     NULL, NULL},
    {"target", YCONF_T_PERCENT, offsetof(steer_cfg_t, target), 0.05, 1.0, "80%", 0, NULL, NULL},
    {"near", YCONF_T_PERCENT, offsetof(steer_cfg_t, near), 0.0, 1.0, "75%", 0, NULL, NULL},
    {"carrier_penalty_km", YCONF_T_DOUBLE, offsetof(steer_cfg_t, penalty_km), 0, 40000, "1000", 0,
     NULL, NULL},
    {"default_region", YCONF_T_STR, offsetof(steer_cfg_t, default_region), 0, 0, NULL, 0, NULL,
     NULL},
    {"default_carrier", YCONF_T_STR, offsetof(steer_cfg_t, default_carrier), 0, 0, NULL, 0, NULL,
     NULL},
    {"fallback", YCONF_T_NODE, offsetof(steer_cfg_t, fallback), 0, 0, NULL, 0, NULL, NULL},
    {"increase", YCONF_T_PERCENT, offsetof(steer_cfg_t, increase), 0.001, 1.0, "5%", 0, NULL,
     NULL},
    {"decrease", YCONF_T_PERCENT, offsetof(steer_cfg_t, decrease), 0.01, 1.0, "50%", 0, NULL,
     NULL},
    {"hold", YCONF_T_DURATION, offsetof(steer_cfg_t, hold_ms), 0, 3600000, "0", 0, NULL, NULL},
    {"spread", YCONF_T_U32, offsetof(steer_cfg_t, spread), 1, STEER_MAX_DEST, "3", 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static uint32_t origin_count(const steer_t *s)
{
    return s->nregions + s->ncountries + 1;
}

static cand_list_t *list_at(const steer_t *s, uint32_t origin, uint32_t carrier_plus1)
{
    return &s->lists[origin * (s->ncarriers + 1) + carrier_plus1];
}

typedef struct sortkey {
    uint32_t idx;
    double key;
} sortkey_t;

static int sortkey_cmp(const void *a, const void *b)
{
    const sortkey_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static const char *region_country(const steer_t *s, uint32_t region)
{
    return health_topo_region(s->topo, region)->country;
}

/* Position of region b in region a's fallback order (explicit neighbours
 * first, then by distance); a itself is 0. */
static double region_rank(const steer_t *s, uint32_t a, uint32_t b)
{
    if (a == b)
        return 0;
    const health_region_t *ra = health_topo_region(s->topo, a);
    for (uint32_t i = 0; i < ra->n_fallback; i++)
        if (ra->fallback[i] == b)
            return i + 1;
    return 1e9;
}

/* Build the candidate list of clients from `origin` (a region, or a country
 * with no region known, or nothing) with carrier c (GEO_NONE: unknown). */
static void build_list(steer_t *s, arena_t *a, uint32_t origin, uint32_t c, cand_list_t *out)
{
    bool has_region = origin < s->nregions;
    bool has_country = !has_region && origin < s->nregions + s->ncountries;
    const char *country = has_country ? s->country[origin - s->nregions]
                          : has_region ? region_country(s, origin) : NULL;
    bool known_c = c != GEO_NONE;
    /* The line hierarchy: the first tier with a cluster is home. */
    static const char *const tiers[] = {"region+carrier", "region", "carrier in country",
                                        "carrier", "country", "default"};
    bool *home = arena_calloc(a, s->ncl ? s->ncl : 1, sizeof(bool));
    const char *tier = "default";
    for (int t = 0; t < 6; t++) {
        uint32_t nh = 0;
        for (uint32_t i = 0; i < s->ncl; i++) {
            const health_cluster_t *cl = health_topo_cluster(s->topo, s->cl[i]);
            uint16_t cc = s->cluster_carrier[s->cl[i]];
            const char *kc = region_country(s, cl->region);
            bool same_c = known_c && cc == c;
            bool same_r = has_region && cl->region == origin;
            bool same_country = country && kc && strcmp(kc, country) == 0;
            bool in = false;
            switch (t) {
            case 0:
                in = same_r && same_c;
                break;
            case 1:
                in = same_r;
                break;
            case 2:
                in = same_c && same_country;
                break;
            case 3:
                in = same_c;
                break;
            case 4:
                in = same_country;
                break;
            case 5:
                in = true;
                break;
            }
            home[i] = in;
            nh += in;
        }
        if (nh > 0) {
            tier = tiers[t];
            break;
        }
    }
    /* Everything else, nearest first: region rank (explicit neighbours,
     * then distance) or distance, plus the penalty for another carrier.
     * Without a known region, the default region (if any) is the place
     * distances are measured from. */
    int32_t from = has_region ? (int32_t)origin : s->default_origin;
    sortkey_t *keys = arena_calloc(a, s->ncl ? s->ncl : 1, sizeof(sortkey_t));
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ncl; i++) {
        const health_cluster_t *cl = health_topo_cluster(s->topo, s->cl[i]);
        double key = 0;
        if (from >= 0) {
            const health_region_t *rf = health_topo_region(s->topo, (uint32_t)from);
            if (rf->n_neighbours > 0)
                key = region_rank(s, (uint32_t)from, cl->region) * 1e6;
            else
                key = health_region_distance_km(rf, health_topo_region(s->topo, cl->region));
        }
        /* Another carrier costs the penalty (with an explicit neighbour
         * order it only breaks ties inside one rank). */
        if (known_c && s->cluster_carrier[s->cl[i]] != c)
            key += s->penalty_km;
        /* Home clusters come first whatever their distance. */
        keys[n++] = (sortkey_t){i, (home[i] ? -1e12 : 0) + key};
    }
    qsort(keys, n, sizeof(*keys), sortkey_cmp);
    out->n = n;
    out->idx = arena_calloc(a, n ? n : 1, sizeof(uint32_t));
    out->nhome = 0;
    for (uint32_t i = 0; i < n; i++) {
        out->idx[i] = keys[i].idx;
        out->nhome += home[keys[i].idx];
    }
    out->tier = tier;
}

static int steer_create(const plugin_env_t *env, const yconf_node_t *cfg, const char *path,
                        arena_t *a, diag_list_t *d, void **inst, plugin_decl_t *decl)
{
    steer_cfg_t c = {0};
    if (cfg->kind != YCONF_MAP && !yconf_is_null(cfg)) {
        yconf_error(d, cfg, "%s: expected the settings of a steer policy (a mapping)", path);
        return -22;
    }
    if (yconf_apply(yconf_is_null(cfg) ? NULL : cfg, steer_table, &c, a, d, path, NULL) != 0)
        return -22;
    if (env->topo == NULL || health_topo_clusters(env->topo) == 0) {
        yconf_error(d, cfg, "%s: steering needs clusters, and no clusters are configured", path);
        return -22;
    }
    steer_t *s = arena_calloc(a, 1, sizeof(*s));
    s->topo = env->topo;
    s->geo = env->geo;
    s->cluster_carrier = env->cluster_carrier;
    s->mode = c.mode;
    s->ttl = (uint32_t)(c.ttl_ms / 1000);
    s->busy_ttl = (uint32_t)(c.busy_ttl_ms / 1000);
    if (s->busy_ttl > s->ttl)
        s->busy_ttl = s->ttl;
    s->threshold = health_topo_settings(env->topo)->threshold;
    s->target = c.target;
    s->near = c.near;
    s->penalty_km = c.penalty_km;
    s->increase = c.increase;
    s->decrease = c.decrease;
    s->hold_ms = c.hold_ms;
    s->spread = c.spread;
    if (s->target > s->threshold) {
        yconf_error(d, cfg, "%s.target: %.0f%% is above the health threshold %.0f%%: clusters would be BUSY before the controller acts",
                    path, s->target * 100, s->threshold * 100);
        return -22;
    }
    uint32_t total = health_topo_clusters(env->topo);
    s->cl = arena_calloc(a, total, sizeof(uint32_t));
    bool ok = true;
    if (c.clusters) {
        for (size_t i = 0; i < c.clusters->u.seq.n; i++) {
            const yconf_node_t *it = c.clusters->u.seq.items[i];
            int64_t id = it->kind == YCONF_SCALAR ? health_topo_find_cluster(env->topo, it->u.scalar.str) : -1;
            if (id < 0) {
                yconf_error(d, it, "%s.clusters[%zu]: unknown cluster '%s'", path, i,
                            it->kind == YCONF_SCALAR ? it->u.scalar.str : "?");
                ok = false;
                continue;
            }
            bool dup = false;
            for (uint32_t k = 0; k < s->ncl; k++)
                dup |= s->cl[k] == (uint32_t)id;
            if (dup) {
                yconf_error(d, it, "%s.clusters[%zu]: '%s' is listed twice", path, i, it->u.scalar.str);
                ok = false;
                continue;
            }
            s->cl[s->ncl++] = (uint32_t)id;
        }
        if (s->ncl == 0 && ok) {
            yconf_error(d, c.clusters, "%s.clusters: at least one cluster is needed", path);
            ok = false;
        }
    } else {
        for (uint32_t i = 0; i < total; i++)
            s->cl[s->ncl++] = i;
    }
    s->nregions = health_topo_regions(env->topo);
    s->ncarriers = (uint32_t)geo_carrier_count(env->geo);
    /* Countries named by regions: origins for clients whose region is not
     * known but whose country is. */
    s->country = arena_calloc(a, s->nregions ? s->nregions : 1, 3);
    for (uint32_t r = 0; r < s->nregions; r++) {
        const char *cc = region_country(s, r);
        if (cc == NULL)
            continue;
        bool have = false;
        for (uint32_t k = 0; k < s->ncountries; k++)
            have |= strcmp(s->country[k], cc) == 0;
        if (!have)
            snprintf(s->country[s->ncountries++], 3, "%s", cc);
    }
    s->default_origin = -1;
    if (c.default_region) {
        int64_t r = health_topo_find_region(env->topo, c.default_region);
        if (r < 0) {
            yconf_error(d, cfg, "%s.default_region: unknown region '%s'", path, c.default_region);
            ok = false;
        } else {
            s->default_origin = (int32_t)r;
        }
    }
    s->default_carrier = -1;
    if (c.default_carrier) {
        int id = geo_carrier_find(env->geo, c.default_carrier);
        if (id < 0) {
            yconf_error(d, cfg, "%s.default_carrier: unknown carrier '%s'", path, c.default_carrier);
            ok = false;
        } else {
            s->default_carrier = id;
        }
    }
    if (!ok)
        return -22;
    /* Answer sets: one per cluster considered, then the fallback. */
    plugin_set_t *sets = arena_calloc(a, s->ncl + 1, sizeof(*sets));
    for (uint32_t i = 0; i < s->ncl; i++) {
        const health_cluster_t *cl = health_topo_cluster(env->topo, s->cl[i]);
        sets[i] = (plugin_set_t){cl->entry4, cl->n_entry4, cl->entry6, cl->n_entry6};
    }
    s->fallback_set = UINT32_MAX;
    if (c.fallback) {
        char fp[320];
        snprintf(fp, sizeof(fp), "%s.fallback", path);
        if (!plugin_parse_addresses(c.fallback, fp, a, d, &sets[s->ncl]))
            return -22;
        s->fallback_set = s->ncl;
    }
    /* Candidate lists for every origin and carrier. */
    uint32_t no = origin_count(s);
    s->lists = arena_calloc(a, (size_t)no * (s->ncarriers + 1), sizeof(cand_list_t));
    for (uint32_t o = 0; o < no; o++)
        for (uint32_t cp = 0; cp <= s->ncarriers; cp++)
            build_list(s, a, o, cp == 0 ? GEO_NONE : cp - 1, list_at(s, o, cp));
    /* Each cluster's own list (its region and carrier): where its home
     * clients go when they move. */
    s->home_of = arena_calloc(a, s->ncl, sizeof(uint32_t));
    for (uint32_t i = 0; i < s->ncl; i++) {
        const health_cluster_t *cl = health_topo_cluster(env->topo, s->cl[i]);
        uint16_t cc = s->cluster_carrier[s->cl[i]];
        s->home_of[i] = cl->region * (s->ncarriers + 1) + (cc == GEO_NONE ? 0u : cc + 1u);
    }
    s->view = arena_calloc(a, s->ncl, sizeof(ctl_view_t));
    s->state = arena_calloc(a, s->ncl, sizeof(ctl_state_t));
    for (uint32_t i = 0; i < s->ncl; i++) {
        atomic_init(&s->view[i].admit_ppm, PPM);
        atomic_init(&s->view[i].ndest, 0);
        s->state[i].admit = 1.0;
    }
    decl->sets = sets;
    decl->nsets = s->ncl + (s->fallback_set != UINT32_MAX ? 1 : 0);
    decl->ttl = s->ttl;
    *inst = s;
    return 0;
}

/* ---- per query ---- */

static bool has_family(const steer_t *s, uint32_t i, uint16_t qtype)
{
    const health_cluster_t *cl = health_topo_cluster(s->topo, s->cl[i]);
    return qtype == ZONES_TYPE_AAAA ? cl->n_entry6 > 0 : cl->n_entry4 > 0;
}

/* A stable 64-bit hash of the client's subnet (the address masked to the
 * bits used), so the same subnets move first and come back last. */
static uint64_t subnet_hash(const netaddr_t *c, uint64_t salt)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ salt ^ ((uint64_t)c->family << 56) ^ ((uint64_t)c->bits << 48);
    unsigned len = c->family == 4 ? 4u : 16u;
    for (unsigned i = 0; i < len; i++) {
        h ^= c->addr[i];
        h *= 0x100000001B3ull;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

static const char *cl_name(const steer_t *s, uint32_t i)
{
    return health_topo_cluster(s->topo, s->cl[i])->name;
}

static void trace_candidates(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                             uint16_t qtype, const trace_t *t)
{
    if (!trace_on(t))
        return;
    trace_printf(t, "steer: candidates (%u, home tier: %s, %u home):", l->n, l->tier, l->nhome);
    for (uint32_t k = 0; k < l->n; k++) {
        uint32_t i = l->idx[k];
        uint32_t id = s->cl[i];
        const health_cluster_t *cl = health_topo_cluster(s->topo, id);
        uint16_t cc = s->cluster_carrier[id];
        trace_printf(t,
                     "  %2u. %-24s %s region=%s carrier=%s state=%s util=%.1f%% admit=%.0f%%%s",
                     k + 1, cl->name, k < l->nhome ? "home " : "other",
                     health_topo_region(s->topo, cl->region)->name,
                     cc == GEO_NONE ? "-" : geo_carrier_name(s->geo, cc),
                     health_state_str(health_cluster_state(tab, id)),
                     health_cluster_util(tab, id) * 100.0,
                     atomic_load_explicit(&s->view[i].admit_ppm, memory_order_relaxed) / 1e4,
                     has_family(s, i, qtype) ? "" : " (no address of this family)");
    }
}

static void decide_literal(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                           const plugin_query_t *q, plugin_result_t *r, const trace_t *t)
{
    /* 1. The least-loaded idle home cluster; ties by weight, then round
     * robin. */
    int64_t best = -1;
    double best_u = 0;
    uint32_t best_w = 0, ties = 0;
    for (uint32_t k = 0; k < l->nhome; k++) {
        uint32_t i = l->idx[k], id = s->cl[i];
        if (!has_family(s, i, q->qtype) || !health_state_usable(health_cluster_state(tab, id)))
            continue;
        double u = health_cluster_util(tab, id);
        uint32_t w = health_topo_cluster(s->topo, id)->weight;
        if (best < 0 || u < best_u || (u == best_u && w > best_w)) {
            best = i;
            best_u = u;
            best_w = w;
            ties = 1;
        } else if (u == best_u && w == best_w) {
            /* Round robin among equals: reservoir choice keeps each tie
             * equally likely. */
            ties++;
            if (plugin_rand(q->rng) % ties == 0)
                best = i;
        }
    }
    if (best >= 0) {
        r->set = (uint32_t)best;
        trace_printf(t, "steer: rule 1 (literal): least-loaded idle home cluster %s (%.1f%%)",
                     cl_name(s, (uint32_t)best), best_u * 100.0);
        return;
    }
    /* 2. The first idle cluster in candidate order. */
    for (uint32_t k = l->nhome; k < l->n; k++) {
        uint32_t i = l->idx[k];
        if (has_family(s, i, q->qtype) && health_state_usable(health_cluster_state(tab, s->cl[i]))) {
            r->set = i;
            trace_printf(t, "steer: rule 2 (literal): no idle home cluster; first idle cluster in candidate order: %s",
                         cl_name(s, i));
            return;
        }
    }
    /* 3. The least-loaded cluster that is not DOWN. */
    best = -1;
    for (uint32_t k = 0; k < l->n; k++) {
        uint32_t i = l->idx[k], id = s->cl[i];
        if (!has_family(s, i, q->qtype) || health_cluster_state(tab, id) == HEALTH_DOWN)
            continue;
        double u = health_cluster_util(tab, id);
        if (best < 0 || u < best_u) {
            best = i;
            best_u = u;
        }
    }
    if (best >= 0) {
        r->set = (uint32_t)best;
        trace_printf(t, "steer: rule 3 (literal): every cluster busy; least-loaded cluster that is up: %s (%.1f%%)",
                     cl_name(s, (uint32_t)best), best_u * 100.0);
        return;
    }
    /* 4. Everything DOWN. */
    if (s->fallback_set != UINT32_MAX) {
        r->set = s->fallback_set;
        trace_printf(t, "steer: rule 4: every cluster is DOWN: fallback addresses");
        return;
    }
    r->set = l->n ? l->idx[0] : 0;
    for (uint32_t k = 0; k < l->n; k++)
        if (has_family(s, l->idx[k], q->qtype)) {
            r->set = l->idx[k];
            break;
        }
    trace_printf(t, "steer: rule 4: every cluster is DOWN and no fallback: first candidate %s",
                 cl_name(s, r->set));
}

static void decide_damped(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                          const plugin_query_t *q, plugin_result_t *r, const trace_t *t)
{
    uint64_t h = subnet_hash(&q->client, 0);
    /* The home cluster of this subnet: a stable pick among the home
     * clusters that are not DOWN, weighted by capacity. */
    int64_t home = -1;
    uint64_t total = 0;
    for (uint32_t k = 0; k < l->nhome; k++) {
        uint32_t i = l->idx[k];
        if (has_family(s, i, q->qtype) && health_cluster_state(tab, s->cl[i]) != HEALTH_DOWN)
            total += health_topo_cluster(s->topo, s->cl[i])->capacity_bps / 1000000u + 1u;
    }
    if (total > 0) {
        uint64_t x = (h >> 20) % total;
        for (uint32_t k = 0; k < l->nhome; k++) {
            uint32_t i = l->idx[k];
            if (!has_family(s, i, q->qtype) || health_cluster_state(tab, s->cl[i]) == HEALTH_DOWN)
                continue;
            uint64_t w = health_topo_cluster(s->topo, s->cl[i])->capacity_bps / 1000000u + 1u;
            if (x < w) {
                home = i;
                break;
            }
            x -= w;
        }
    }
    double hx = (double)(h >> 11) / 9007199254740992.0; /* [0, 1) */
    if (home >= 0) {
        const ctl_view_t *v = &s->view[home];
        double admit = atomic_load_explicit(&v->admit_ppm, memory_order_relaxed) / (double)PPM;
        if (hx < admit) {
            r->set = (uint32_t)home;
            trace_printf(t, "steer: damped: home %s admits %.0f%% of its subnets; this one (hash %.3f) stays",
                         cl_name(s, (uint32_t)home), admit * 100.0, hx);
            return;
        }
        /* Moved: a destination by a second hash, in proportion to the
         * headroom the controller allotted. */
        uint32_t nd = atomic_load_explicit(&v->ndest, memory_order_relaxed);
        double hy = (double)(subnet_hash(&q->client, 0x5bd1e995) >> 11) / 9007199254740992.0;
        for (uint32_t k = 0; k < nd && k < STEER_MAX_DEST; k++) {
            uint64_t e = atomic_load_explicit(&v->dest[k], memory_order_relaxed);
            uint32_t di = (uint32_t)(e >> 32);
            double cum = (uint32_t)e / (double)PPM;
            if (hy < cum && di < s->ncl && has_family(s, di, q->qtype) &&
                health_cluster_state(tab, s->cl[di]) != HEALTH_DOWN) {
                r->set = di;
                trace_printf(t, "steer: damped: home %s admits %.0f%%; this subnet (hash %.3f) moves to %s (second hash %.3f)",
                             cl_name(s, (uint32_t)home), admit * 100.0, hx, cl_name(s, di), hy);
                return;
            }
        }
        if (health_cluster_state(tab, s->cl[home]) != HEALTH_DOWN) {
            r->set = (uint32_t)home;
            trace_printf(t, "steer: damped: home %s sheds, but no cluster has headroom: stays home",
                         cl_name(s, (uint32_t)home));
            return;
        }
    }
    /* No home cluster up: the first usable cluster nearest first, else the
     * least loaded that is up (the literal rules 2-4). */
    trace_printf(t, "steer: damped: no home cluster is up");
    cand_list_t rest = *l;
    rest.nhome = 0;
    decide_literal(s, &rest, tab, q, r, t);
}

static void steer_explain(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                          const trace_t *t)
{
    const steer_t *s = inst;
    geo_result_t g;
    if (trace_on(t) && s->geo)
        geo_explain(s->geo, &q->client, t, &g);
    else if (s->geo)
        geo_classify(s->geo, &q->client, &g);
    else
        memset(&g, 0, sizeof(g)), g.region = g.carrier = GEO_NONE;
    uint32_t carrier = g.carrier;
    const char *carrier_from = "address";
    if (carrier == GEO_NONE && q->zone->carrier != NULL) {
        int id = geo_carrier_find(s->geo, q->zone->carrier);
        if (id >= 0) {
            carrier = (uint32_t)id;
            carrier_from = "the delegated zone";
        }
    }
    if (carrier == GEO_NONE && s->default_carrier >= 0) {
        carrier = (uint32_t)s->default_carrier;
        carrier_from = "default_carrier";
    }
    uint32_t origin = s->nregions + s->ncountries; /* nothing known */
    const char *origin_from = "nothing known";
    if (g.region != GEO_NONE && g.region < s->nregions) {
        origin = g.region;
        origin_from = "region";
    } else {
        for (uint32_t k = 0; k < s->ncountries; k++)
            if (g.country[0] && memcmp(s->country[k], g.country, 3) == 0) {
                origin = s->nregions + k;
                origin_from = "country";
                break;
            }
        if (origin == s->nregions + s->ncountries && s->default_origin >= 0) {
            origin = (uint32_t)s->default_origin;
            origin_from = "default_region";
        }
    }
    const cand_list_t *l = list_at(s, origin, carrier == GEO_NONE ? 0 : carrier + 1);
    if (trace_on(t)) {
        trace_printf(t, "steer: client %s: region=%s (%s), carrier=%s (%s), country=%s",
                     q->ecs ? "subnet from ECS" : "source address",
                     origin < s->nregions ? health_topo_region(s->topo, origin)->name : "-",
                     origin_from, carrier == GEO_NONE ? "-" : geo_carrier_name(s->geo, (uint16_t)carrier),
                     carrier == GEO_NONE ? "unknown" : carrier_from, g.country[0] ? g.country : "-");
        trace_printf(t, "steer: mode %s, threshold %.0f%%%s", s->mode == STEER_DAMPED ? "damped" : "literal",
                     s->threshold * 100.0, s->mode == STEER_DAMPED ? "" : "");
    }
    const health_table_t *tab = health_table_acquire(s->topo);
    trace_candidates(s, l, tab, q->qtype, t);
    if (s->mode == STEER_DAMPED)
        decide_damped(s, l, tab, q, r, t);
    else
        decide_literal(s, l, tab, q, r, t);
    /* A short TTL while the chosen cluster is near its threshold, so
     * resolvers come back soon when it fills up. */
    r->ttl = s->ttl;
    if (r->set < s->ncl) {
        double u = health_cluster_util(tab, s->cl[r->set]);
        bool shedding = atomic_load_explicit(&s->view[r->set].admit_ppm, memory_order_relaxed) < PPM;
        if (u >= s->near || shedding || health_cluster_state(tab, s->cl[r->set]) != HEALTH_IDLE) {
            r->ttl = s->busy_ttl;
            trace_printf(t, "steer: TTL %us (short: the chosen cluster is near its threshold, shedding or not measured)",
                         r->ttl);
        } else {
            trace_printf(t, "steer: TTL %us", r->ttl);
        }
    }
    r->scope = s->geo ? g.scope : 0;
}

static void steer_resolve(const void *inst, const plugin_query_t *q, plugin_result_t *r)
{
    steer_explain(inst, q, r, NULL);
}

/* ---- the controller (main thread, after each health publication) ---- */

static void steer_update(void *inst, const plugin_update_t *u)
{
    steer_t *s = inst;
    if (s->mode != STEER_DAMPED)
        return;
    const health_table_t *tab = u->table;
    /* 1. Admission of each cluster's home clients. */
    for (uint32_t i = 0; i < s->ncl; i++) {
        uint32_t id = s->cl[i];
        ctl_state_t *st = &s->state[i];
        uint64_t seq = health_cluster_seq(tab, id);
        if (seq == st->last_seq)
            continue; /* no new sample of this cluster */
        st->last_seq = seq;
        health_state_t hs = health_cluster_state(tab, id);
        double util = health_cluster_util(tab, id);
        double old = st->admit;
        if (hs == HEALTH_DOWN) {
            st->admit = 0;
        } else if (hs == HEALTH_UNKNOWN) {
            /* nothing measured: leave it */
        } else if (util > s->target) {
            if (u->now_ms - st->last_change_ms >= s->hold_ms) {
                double f = s->target / util;
                if (f < 1.0 - s->decrease)
                    f = 1.0 - s->decrease;
                st->admit *= f;
            }
        } else if (util < s->target - 0.05) {
            if (u->now_ms - st->last_change_ms >= s->hold_ms)
                st->admit += s->increase;
        }
        if (st->admit > 1)
            st->admit = 1;
        if (st->admit < 0)
            st->admit = 0;
        if (st->admit != old)
            st->last_change_ms = u->now_ms;
        atomic_store_explicit(&s->view[i].admit_ppm, (uint32_t)(st->admit * PPM),
                              memory_order_relaxed);
    }
    /* 2. Destinations of the clients each cluster sheds: its nearest other
     * clusters with headroom below their own target, in proportion to that
     * headroom (capacity-weighted). */
    for (uint32_t i = 0; i < s->ncl; i++) {
        ctl_view_t *v = &s->view[i];
        if (s->state[i].admit >= 1.0) {
            atomic_store_explicit(&v->ndest, 0, memory_order_relaxed);
            continue;
        }
        const cand_list_t *l = &s->lists[s->home_of[i]];
        uint32_t dest[STEER_MAX_DEST];
        double room[STEER_MAX_DEST], sum = 0;
        uint32_t nd = 0;
        for (uint32_t k = 0; k < l->n && nd < s->spread; k++) {
            uint32_t j = l->idx[k];
            if (j == i)
                continue;
            uint32_t jd = s->cl[j];
            health_state_t hs = health_cluster_state(tab, jd);
            if (hs == HEALTH_DOWN || hs == HEALTH_BUSY)
                continue;
            double uj = health_cluster_util(tab, jd);
            double head = (s->target - uj) * (double)health_topo_cluster(s->topo, jd)->capacity_bps;
            if (head <= 0 || s->state[j].admit < 1.0)
                continue; /* at its target, or shedding its own clients */
            dest[nd] = j;
            room[nd] = head;
            sum += head;
            nd++;
        }
        double cum = 0;
        for (uint32_t k = 0; k < nd; k++) {
            cum += room[k] / sum;
            uint32_t ppm = k + 1 == nd ? PPM : (uint32_t)(cum * PPM);
            atomic_store_explicit(&v->dest[k], ((uint64_t)dest[k] << 32) | ppm, memory_order_relaxed);
        }
        atomic_store_explicit(&v->ndest, nd, memory_order_relaxed);
    }
}

const plugin_desc_t plugin_steer = {
    .abi = PLUGIN_ABI_VERSION,
    .name = "steer",
    .create = steer_create,
    .resolve = steer_resolve,
    .explain = steer_explain,
    .update = steer_update,
};
