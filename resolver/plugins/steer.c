/*
 * steer.c - the `steer` plugin: send each client to an idle cluster of its
 * region and carrier, nearest first (CN102625287A), without herding.
 *
 *     app: {steer: downloads}                       # resolvers.steer.downloads
 *     resolvers:
 *       steer:
 *         downloads: {mode: damped, ttl: 30s, clusters: [bj-telecom, ...]}
 *
 * Owns (in the snapshot arena): the candidate lists, the answer sets (one per
 * cluster, plus the fallback), and in damped mode the controller's state and
 * its published view.  Sits between health (published states, read once per
 * query) and the answer pipeline (which set, TTL, ECS scope).
 * docs/steering.md is the contract.
 *
 * Candidate order (built once per snapshot, for every client origin and
 * carrier):
 *   home  = the first non-empty tier of the line hierarchy DNSPod and
 *           Alibaba Cloud DNS operators know: region+carrier, region,
 *           carrier within the client's country, carrier, country, default
 *           (the `default:` clusters, else every cluster);
 *   then  = the other clusters, nearest first: the great-circle distance of
 *           their region (or the region's explicit neighbour order) plus a
 *           penalty for another carrier.
 *
 * mode literal, the patent word for word: the least-loaded idle home cluster
 * (ties: weight, then round robin); else the first idle cluster in candidate
 * order; else the least-loaded cluster that is not DOWN; all DOWN: the
 * fallback addresses (or the first candidate).
 *
 * mode damped (default): the hash of a client's subnet picks one of 256
 * buckets.  Each cluster keeps buckets [0, keep) of its home clients at home
 * and sends every other bucket to one named destination.  A controller on
 * the main thread (the update hook, once per health interval) moves buckets:
 *   - expected load = measured rate + the moves made recently whose clients
 *     have not re-resolved yet (they do within the short TTL), so a move is
 *     never made twice while the measurement lags;
 *   - level = the target utilisation, or the expected utilisation of all
 *     clusters together when that is higher (then nobody can be under the
 *     target and the best is everybody equal);
 *   - a cluster above the level that receives overflow sends it on once it
 *     reaches the health threshold; a cluster above the level sheds its own
 *     home buckets, newest first (keep decreases), to its nearest clusters
 *     that have room below the level, in proportion to that room, never to
 *     a cluster that sheds itself (no ping-pong);
 *   - a cluster below the level by `return_margin` takes its buckets back,
 *     most recently moved first, at most `increase` of them a step.
 * A bucket keeps its destination until the controller moves it, so a client
 * moves only when load must move.  resolve only reads the published view
 * (relaxed atomics): no locks, no allocation, a bounded number of reads.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "resolver/plugin.h"

#define STEER_LITERAL    0
#define STEER_DAMPED     1
#define STEER_MAX_SPREAD 8
/* Buckets of the subnet hash: the unit of admission.  256 keeps a bucket
 * below one subnet for the few hundred subnets a cluster usually serves,
 * and the whole view of a cluster in 512 bytes. */
#define STEER_BUCKETS 256u
/* The subnet the hash is taken over: what resolvers send as ECS
 * (RFC 7871 section 11.1 recommends /24 and /56). */
#define STEER_HASH_BITS4 24u
#define STEER_HASH_BITS6 56u
#define PPM              1000000u

#define CTL_F_SHORT 1u      /* answers for this cluster get the short TTL */
#define CTL_F_UNMEASURED 2u /* ... because it has no bandwidth measurement */

typedef struct cand_list {
    uint32_t n;       /* candidates */
    uint32_t nhome;   /* the first nhome are home */
    const char *tier; /* which line tier made the home set */
    uint32_t *idx;    /* indexes into steer_t.cl */
    float *km;        /* distance from the client's region, -1 unknown (explain) */
    uint8_t *other_carrier; /* 1: the carrier penalty applied (explain) */
    bool by_neighbours; /* the order came from an explicit neighbour list */
} cand_list_t;

/* The controller's published view of one cluster (relaxed atomics: resolve
 * reads them without locks; a mix of two steps is harmless, since every
 * value it can read is a valid cluster or count). */
typedef struct ctl_view {
    _Atomic uint32_t keep;                /* buckets [0, keep) of its home clients stay home */
    _Atomic uint32_t flags;               /* CTL_F_* */
    _Atomic uint32_t expect_ppm;          /* expected utilisation, for explain */
    _Atomic uint16_t dest[STEER_BUCKETS]; /* where bucket b >= keep goes (cl index) */
} ctl_view_t;

/* One move not yet seen in the measurements. */
typedef struct ctl_pend {
    uint64_t t_ms;
    double bps; /* signed change of the cluster's load */
} ctl_pend_t;

/* The controller's private state of one cluster (main thread only). */
typedef struct ctl_state {
    uint32_t keep;
    uint16_t dest[STEER_BUCKETS];
    double frac;         /* part of a bucket carried to the next sample */
    double rho;          /* home demand per bucket, bit/s (estimated) */
    double cap;          /* capacity of its servers that are up, bit/s */
    double meas;         /* measured rate, bit/s */
    double expect;       /* expected rate once every move made has taken effect */
    double inflow;       /* expected rate of other clusters' buckets sent here */
    double delta;        /* change made in the current step */
    double room0, given; /* a shed's destination: room at the start, given so far */
    bool up, measured, was_up;
    ctl_pend_t *ring;
    uint32_t ring_pos;
} ctl_state_t;

typedef struct steer {
    const health_topo_t *topo;
    const geo_t *geo;
    uint32_t ecs_max_v4, ecs_max_v6; /* the server's ECS limits: scopes never exceed them */
    const uint16_t *cluster_carrier; /* by topo cluster id */
    int mode;
    uint32_t ttl, busy_ttl;
    double threshold;  /* the health threshold (BUSY at or above) */
    double hyst;       /* the health hysteresis: threshold - return threshold */
    double ret_margin; /* damped: clients come back below level - ret_margin */
    double target;     /* damped: keep clusters at or below this */
    double near;       /* TTL shortens when the chosen cluster is above this */
    double penalty_km; /* added to the distance of another carrier */
    double increase;   /* damped: largest share of buckets that return per step */
    double decrease;   /* damped: largest share of the kept buckets shed per step */
    uint32_t spread;   /* damped: destinations per source */
    uint32_t ncl;
    uint32_t *cl; /* topo cluster ids of the clusters considered */
    uint32_t nregions, ncarriers, ncountries;
    char (*country)[3];
    int32_t default_origin; /* origin used when nothing is known, -1 = none */
    int32_t default_carrier;
    bool *is_default;      /* by cl index: a `default:` cluster (NULL: no default list) */
    cand_list_t *lists;    /* [origin][carrier + 1]; origin = region | R + country | R + C */
    uint32_t fallback_set; /* UINT32_MAX: none */
    uint32_t fallback_n4, fallback_n6; /* its addresses of each family */
    uint32_t *home_of;     /* by cl index: its own (region, carrier) list */
    /* damped */
    ctl_view_t *view;   /* by cl index */
    ctl_state_t *state; /* by cl index */
    _Atomic uint32_t level_ppm;
    uint64_t step_ms;   /* a step per health interval */
    uint64_t lag_ms;    /* a measured rate is the mean over the last interval */
    uint64_t settle_ms; /* clients re-resolve within the short TTL */
    uint64_t last_step_ms;
    uint32_t nring;
    struct sortkey *order; /* scratch of the step */
    const char *path;      /* "resolvers.steer.NAME", for logs */
} steer_t;

/* ---- configuration ---- */

typedef struct steer_cfg {
    int mode;
    const yconf_node_t *clusters;
    uint64_t ttl_ms, busy_ttl_ms;
    double target, near;
    double penalty_km;
    const char *default_region, *default_carrier;
    const yconf_node_t *defaults;
    const yconf_node_t *fallback;
    double increase, decrease;
    uint32_t spread;
    double return_margin;
} steer_cfg_t;

static const char *const modes[] = {"literal", "damped", NULL};

enum {
    K_MODE,
    K_CLUSTERS,
    K_TTL,
    K_BUSY_TTL,
    K_TARGET,
    K_NEAR,
    K_PENALTY,
    K_DEFAULT_REGION,
    K_DEFAULT_CARRIER,
    K_DEFAULT,
    K_FALLBACK,
    K_INCREASE,
    K_DECREASE,
    K_SPREAD,
    K_RETURN_MARGIN,
    K_COUNT_
};

static const yconf_key_t steer_table[] = {
    [K_MODE] = {"mode", YCONF_T_ENUM, offsetof(steer_cfg_t, mode), 0, 0, "damped", 0, modes, NULL},
    [K_CLUSTERS] = {"clusters", YCONF_T_SEQ, offsetof(steer_cfg_t, clusters), 0, 0, NULL, 0, NULL,
                    NULL},
    [K_TTL] = {"ttl", YCONF_T_DURATION, offsetof(steer_cfg_t, ttl_ms), 1000, 86400000, "30s", 0,
               NULL, NULL},
    [K_BUSY_TTL] = {"busy_ttl", YCONF_T_DURATION, offsetof(steer_cfg_t, busy_ttl_ms), 1000,
                    86400000, "5s", 0, NULL, NULL},
    [K_TARGET] = {"target", YCONF_T_PERCENT, offsetof(steer_cfg_t, target), 0.05, 1.0, "80%", 0,
                  NULL, NULL},
    [K_NEAR] = {"near", YCONF_T_PERCENT, offsetof(steer_cfg_t, near), 0.0, 1.0, "75%", 0, NULL,
                NULL},
    [K_PENALTY] = {"carrier_penalty_km", YCONF_T_DOUBLE, offsetof(steer_cfg_t, penalty_km), 0,
                   40000, "1000", 0, NULL, NULL},
    [K_DEFAULT_REGION] = {"default_region", YCONF_T_STR, offsetof(steer_cfg_t, default_region), 0,
                          0, NULL, 0, NULL, NULL},
    [K_DEFAULT_CARRIER] = {"default_carrier", YCONF_T_STR, offsetof(steer_cfg_t, default_carrier),
                           0, 0, NULL, 0, NULL, NULL},
    [K_DEFAULT] = {"default", YCONF_T_NODE, offsetof(steer_cfg_t, defaults), 0, 0, NULL, 0, NULL,
                   NULL},
    [K_FALLBACK] = {"fallback", YCONF_T_NODE, offsetof(steer_cfg_t, fallback), 0, 0, NULL, 0, NULL,
                    NULL},
    [K_INCREASE] = {"increase", YCONF_T_PERCENT, offsetof(steer_cfg_t, increase), 0.001, 1.0, "10%",
                    0, NULL, NULL},
    [K_DECREASE] = {"decrease", YCONF_T_PERCENT, offsetof(steer_cfg_t, decrease), 0.01, 1.0, "50%",
                    0, NULL, NULL},
    [K_SPREAD] = {"spread", YCONF_T_U32, offsetof(steer_cfg_t, spread), 1, STEER_MAX_SPREAD, "3", 0,
                  NULL, NULL},
    [K_RETURN_MARGIN] = {"return_margin", YCONF_T_PERCENT, offsetof(steer_cfg_t, return_margin), 0,
                         1.0, "10%", 0, NULL, NULL},
    [K_COUNT_] = {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
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
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
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
    if (a == b) return 0;
    const health_region_t *ra = health_topo_region(s->topo, a);
    for (uint32_t i = 0; i < ra->n_fallback; i++)
        if (ra->fallback[i] == b) return i + 1;
    return 1e9;
}

/* Build the candidate list of clients from `origin` (a region, or a country
 * with no region known, or nothing) with carrier c (GEO_NONE: unknown). */
static void build_list(steer_t *s, arena_t *a, uint32_t origin, uint32_t c, cand_list_t *out)
{
    bool has_region = origin < s->nregions;
    bool has_country = !has_region && origin < s->nregions + s->ncountries;
    const char *country = has_country  ? s->country[origin - s->nregions]
                          : has_region ? region_country(s, origin)
                                       : NULL;
    bool known_c = c != GEO_NONE;
    /* The line hierarchy: the first tier with a cluster is home. */
    static const char *const tiers[] = {"region+carrier", "region",  "carrier in country",
                                        "carrier",        "country", "default"};
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
                in = s->is_default ? s->is_default[i] : true;
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
    if (from < 0 && s->is_default) {
        /* Nothing known and no default_region: measure from the region of
         * the first `default:` cluster. */
        for (uint32_t i = 0; i < s->ncl && from < 0; i++)
            if (s->is_default[i]) from = (int32_t)health_topo_cluster(s->topo, s->cl[i])->region;
    }
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
        if (known_c && s->cluster_carrier[s->cl[i]] != c) key += s->penalty_km;
        /* Home clusters come first whatever their distance. */
        keys[n++] = (sortkey_t){i, (home[i] ? -1e12 : 0) + key};
    }
    qsort(keys, n, sizeof(*keys), sortkey_cmp);
    out->n = n;
    out->idx = arena_calloc(a, n ? n : 1, sizeof(uint32_t));
    out->km = arena_calloc(a, n ? n : 1, sizeof(float));
    out->other_carrier = arena_calloc(a, n ? n : 1, 1);
    out->by_neighbours = from >= 0 && health_topo_region(s->topo, (uint32_t)from)->n_neighbours > 0;
    out->nhome = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ci = keys[i].idx;
        const health_cluster_t *cl = health_topo_cluster(s->topo, s->cl[ci]);
        out->idx[i] = ci;
        out->nhome += home[ci];
        out->km[i] = from >= 0 ? (float)health_region_distance_km(
                                      health_topo_region(s->topo, (uint32_t)from),
                                      health_topo_region(s->topo, cl->region))
                               : -1.0f;
        out->other_carrier[i] = known_c && s->cluster_carrier[s->cl[ci]] != c;
    }
    out->tier = tier;
}

/* "a, b, c" (at most 8 names, then ", ...") for "unknown X (known: ...)"
 * messages.  kind: 'r' regions, 'k' carriers. */
static const char *known_names(const plugin_env_t *env, char kind, char *buf, size_t size)
{
    size_t n = kind == 'r' ? health_topo_regions(env->topo) : geo_carrier_count(env->geo);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        const char *name = kind == 'r' ? health_topo_region(env->topo, (uint32_t)i)->name
                                       : geo_carrier_name(env->geo, (uint16_t)i);
        int w = i == 8 ? snprintf(buf + o, size - o, ", ...")
                       : snprintf(buf + o, size - o, "%s%s", i ? ", " : "", name ? name : "?");
        if (w < 0) break;
        o += (size_t)w < size - o ? (size_t)w : size - o - 1;
        if (i == 8) break;
    }
    if (n == 0) snprintf(buf, size, "none");
    return buf;
}

/* Resolve a cluster name of this policy to its cl index, or add an error at
 * n and return -1. */
static int64_t policy_cluster(const steer_t *s, const yconf_node_t *n, const char *what,
                              diag_list_t *d)
{
    if (n->kind != YCONF_SCALAR) {
        yconf_error(d, n, "%s: expected a cluster name", what);
        return -1;
    }
    int64_t id = health_topo_find_cluster(s->topo, n->u.scalar.str);
    if (id < 0) {
        yconf_error(d, n, "%s: unknown cluster '%s'", what, n->u.scalar.str);
        return -1;
    }
    for (uint32_t k = 0; k < s->ncl; k++)
        if (s->cl[k] == (uint32_t)id) return k;
    yconf_error(d, n, "%s: cluster '%s' is not one of this policy's clusters", what,
                n->u.scalar.str);
    return -1;
}

/* `default: CLUSTER` or `default: [CLUSTER, ...]`: the home clusters of
 * clients nothing is known about (DNSPod's "default line"). */
static bool parse_defaults(steer_t *s, const yconf_node_t *n, const char *path, arena_t *a,
                           diag_list_t *d)
{
    char what[320];
    s->is_default = arena_calloc(a, s->ncl ? s->ncl : 1, sizeof(bool));
    if (n->kind == YCONF_SCALAR) {
        snprintf(what, sizeof(what), "%s.default", path);
        int64_t k = policy_cluster(s, n, what, d);
        if (k < 0) return false;
        s->is_default[k] = true;
        return true;
    }
    if (n->kind != YCONF_SEQ) {
        yconf_error(d, n, "%s.default: expected a cluster name or a list of cluster names", path);
        return false;
    }
    if (n->u.seq.n == 0) {
        yconf_error(d, n, "%s.default: at least one cluster is needed", path);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n->u.seq.n; i++) {
        const yconf_node_t *it = n->u.seq.items[i];
        snprintf(what, sizeof(what), "%s.default[%zu]", path, i);
        int64_t k = policy_cluster(s, it, what, d);
        if (k < 0) {
            ok = false;
            continue;
        }
        if (s->is_default[k]) {
            yconf_error(d, it, "%s: '%s' is listed twice", what, it->u.scalar.str);
            ok = false;
            continue;
        }
        s->is_default[k] = true;
    }
    return ok;
}

static int steer_create(const plugin_env_t *env, const yconf_node_t *cfg, const char *path,
                        arena_t *a, diag_list_t *d, void **inst, plugin_decl_t *decl)
{
    steer_cfg_t c = {0};
    const yconf_node_t *nodes[K_COUNT_ + 1] = {0};
    if (cfg->kind != YCONF_MAP && !yconf_is_null(cfg)) {
        yconf_error(d, cfg, "%s: expected the settings of a steer policy (a mapping)", path);
        return -22;
    }
    /* A bad setting does not stop the checks below: one run of `check`
     * reports every error. */
    bool ok = yconf_apply(yconf_is_null(cfg) ? NULL : cfg, steer_table, &c, a, d, path, nodes) == 0;
    if (env->topo == NULL || health_topo_clusters(env->topo) == 0) {
        yconf_error(d, cfg, "%s: steering needs clusters, and no clusters are configured", path);
        return -22;
    }
    steer_t *s = arena_calloc(a, 1, sizeof(*s));
    s->topo = env->topo;
    s->geo = env->geo;
    s->ecs_max_v4 = env->ecs_max_v4;
    s->ecs_max_v6 = env->ecs_max_v6;
    s->cluster_carrier = env->cluster_carrier;
    s->mode = c.mode;
    s->ttl = (uint32_t)(c.ttl_ms / 1000);
    s->busy_ttl = (uint32_t)(c.busy_ttl_ms / 1000);
    if (s->busy_ttl > s->ttl) s->busy_ttl = s->ttl;
    const health_settings_t *hs = health_topo_settings(env->topo);
    s->threshold = hs->threshold;
    s->hyst = hs->threshold > hs->return_threshold ? hs->threshold - hs->return_threshold : 0;
    s->target = c.target;
    /* Unwritten, the target stays 10 points under a threshold lower than
     * 90% (never under 5%). */
    if (nodes[K_TARGET] == NULL && s->target > s->threshold - 0.10)
        s->target = s->threshold - 0.10 > 0.05 ? s->threshold - 0.10 : 0.05;
    s->near = c.near;
    s->penalty_km = c.penalty_km;
    s->increase = c.increase;
    s->decrease = c.decrease;
    s->spread = c.spread;
    s->ret_margin = c.return_margin;
    s->path = arena_strdup(a, path);
    if (s->mode == STEER_DAMPED && s->target > s->threshold) {
        yconf_error(d, nodes[K_TARGET] ? nodes[K_TARGET] : cfg,
                    "%s.target: %.0f%% is above the health threshold %.0f%%: clusters would be "
                    "BUSY before the controller acts",
                    path, s->target * 100, s->threshold * 100);
        ok = false;
    }
    uint32_t total = health_topo_clusters(env->topo);
    s->cl = arena_calloc(a, total, sizeof(uint32_t));
    if (c.clusters) {
        for (size_t i = 0; i < c.clusters->u.seq.n; i++) {
            const yconf_node_t *it = c.clusters->u.seq.items[i];
            int64_t id = it->kind == YCONF_SCALAR
                             ? health_topo_find_cluster(env->topo, it->u.scalar.str)
                             : -1;
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
                yconf_error(d, it, "%s.clusters[%zu]: '%s' is listed twice", path, i,
                            it->u.scalar.str);
                ok = false;
                continue;
            }
            s->cl[s->ncl++] = (uint32_t)id;
        }
        if (s->ncl == 0 && c.clusters->u.seq.n == 0) {
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
        if (cc == NULL) continue;
        bool have = false;
        for (uint32_t k = 0; k < s->ncountries; k++)
            have |= strcmp(s->country[k], cc) == 0;
        if (!have) snprintf(s->country[s->ncountries++], 3, "%s", cc);
    }
    s->default_origin = -1;
    if (c.default_region) {
        int64_t r = health_topo_find_region(env->topo, c.default_region);
        if (r < 0) {
            char known[256];
            yconf_error(d, nodes[K_DEFAULT_REGION] ? nodes[K_DEFAULT_REGION] : cfg,
                        "%s.default_region: unknown region '%s' (known: %s)", path,
                        c.default_region, known_names(env, 'r', known, sizeof(known)));
            ok = false;
        } else {
            s->default_origin = (int32_t)r;
        }
    }
    s->default_carrier = -1;
    if (c.default_carrier) {
        int id = geo_carrier_find(env->geo, c.default_carrier);
        if (id < 0) {
            char known[256];
            yconf_error(d, nodes[K_DEFAULT_CARRIER] ? nodes[K_DEFAULT_CARRIER] : cfg,
                        "%s.default_carrier: unknown carrier '%s' (known: %s)", path,
                        c.default_carrier, known_names(env, 'k', known, sizeof(known)));
            ok = false;
        } else {
            s->default_carrier = id;
        }
    }
    /* (An unusable clusters: list was reported already: checking the
     * defaults against it would only repeat that.) */
    if (c.defaults && s->ncl > 0 && !parse_defaults(s, c.defaults, path, a, d)) ok = false;
    if (!ok) return -22;
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
        if (!plugin_parse_addresses(c.fallback, fp, a, d, &sets[s->ncl])) return -22;
        s->fallback_set = s->ncl;
        s->fallback_n4 = sets[s->ncl].n4;
        s->fallback_n6 = sets[s->ncl].n6;
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
    /* The controller: a step per measurement (the slowest check interval of
     * the policy's servers); moves are seen one interval after the clients
     * made them, and clients make them within the short TTL. */
    s->step_ms = 0;
    for (uint32_t i = 0; i < s->ncl; i++) {
        const health_cluster_t *cl = health_topo_cluster(env->topo, s->cl[i]);
        for (uint32_t k = 0; k < cl->n_servers; k++) {
            const health_server_t *sv = health_topo_server(env->topo, cl->first_server + k);
            uint64_t iv = sv->check ? sv->check->interval_ms : hs->interval_ms;
            if (iv > s->step_ms) s->step_ms = iv;
        }
    }
    if (s->step_ms == 0) s->step_ms = hs->interval_ms ? hs->interval_ms : 1000;
    s->lag_ms = s->step_ms;
    s->settle_ms = (uint64_t)s->busy_ttl * 1000u;
    /* Two ring entries per step cover every move still pending (steps may
     * come early on a DOWN transition). */
    uint64_t nring = 2 * ((s->lag_ms + s->settle_ms) / s->step_ms + 2);
    s->nring = nring > 4096 ? 4096 : (uint32_t)nring;
    s->view = arena_calloc(a, s->ncl, sizeof(ctl_view_t));
    s->state = arena_calloc(a, s->ncl, sizeof(ctl_state_t));
    s->order = arena_calloc(a, s->ncl, sizeof(sortkey_t));
    for (uint32_t i = 0; i < s->ncl; i++) {
        ctl_state_t *st = &s->state[i];
        atomic_init(&s->view[i].keep, STEER_BUCKETS);
        atomic_init(&s->view[i].flags, 0);
        atomic_init(&s->view[i].expect_ppm, 0);
        st->keep = STEER_BUCKETS;
        st->was_up = true;
        st->ring = arena_calloc(a, s->nring, sizeof(ctl_pend_t));
        for (uint32_t b = 0; b < STEER_BUCKETS; b++) {
            st->dest[b] = (uint16_t)i;
            atomic_init(&s->view[i].dest[b], (uint16_t)i);
        }
    }
    atomic_init(&s->level_ppm, (uint32_t)(s->target * PPM));
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

/* The prefix of the client the damped decision hashes: the ECS subnet (or
 * source address) cut to /24 or /56, so that one resolver's whole subnet
 * gets one answer. */
static unsigned hash_bits(const netaddr_t *c)
{
    unsigned cap = c->family == 4 ? STEER_HASH_BITS4 : STEER_HASH_BITS6;
    return c->bits < cap ? c->bits : cap;
}

/* A stable 64-bit hash of the client's subnet (the address masked to
 * hash_bits), so the same subnets move first and come back last. */
static uint64_t subnet_hash(const netaddr_t *c, uint64_t salt)
{
    unsigned bits = hash_bits(c);
    uint64_t h =
        0x9E3779B97F4A7C15ull ^ salt ^ ((uint64_t)c->family << 56) ^ ((uint64_t)bits << 48);
    unsigned len = c->family == 4 ? 4u : 16u;
    for (unsigned i = 0; i < len; i++) {
        unsigned left = bits > i * 8 ? bits - i * 8 : 0;
        uint8_t byte = left >= 8 ? c->addr[i] : (uint8_t)(c->addr[i] & (0xffu << (8 - left)));
        h ^= byte;
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
    if (!trace_on(t)) return;
    trace_printf(t, "steer: candidates (%u, home tier: %s, %u home; then %s, +%.0f km for another carrier):",
                 l->n, l->tier, l->nhome,
                 l->by_neighbours ? "the region's neighbour order" : "nearest first", s->penalty_km);
    for (uint32_t k = 0; k < l->n; k++) {
        uint32_t i = l->idx[k];
        uint32_t id = s->cl[i];
        const health_cluster_t *cl = health_topo_cluster(s->topo, id);
        uint16_t cc = s->cluster_carrier[id];
        char ctl[96] = " admit=100%";
        if (s->mode == STEER_DAMPED) {
            uint32_t keep = atomic_load_explicit(&s->view[i].keep, memory_order_relaxed);
            snprintf(ctl, sizeof(ctl), " expected=%.1f%% keep=%u/%u (admit %.0f%%)",
                     atomic_load_explicit(&s->view[i].expect_ppm, memory_order_relaxed) / 1e4, keep,
                     STEER_BUCKETS, keep * 100.0 / STEER_BUCKETS);
        }
        char dist[48] = " distance=-";
        if (l->km[k] >= 0)
            snprintf(dist, sizeof(dist), " distance=%.0fkm%s", l->km[k],
                     l->other_carrier[k] && s->penalty_km > 0 ? "+penalty" : "");
        trace_printf(
            t, "  %2u. %-24s %s region=%s carrier=%s%s state=%s util=%.1f%%%s%s", k + 1, cl->name,
            k < l->nhome ? "home " : "other", health_topo_region(s->topo, cl->region)->name,
            cc == GEO_NONE ? "-" : geo_carrier_name(s->geo, cc), dist,
            health_state_str(health_cluster_state(tab, id)), health_cluster_util(tab, id) * 100.0,
            ctl, has_family(s, i, qtype) ? "" : " (no address of this family)");
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
            ties++;
        }
    }
    if (ties > 1) {
        /* Round robin among equals: this worker's next turn picks the
         * n-th of them in candidate order. */
        uint32_t n = (uint32_t)((*q->turn)++ % ties);
        for (uint32_t k = 0; k < l->nhome; k++) {
            uint32_t i = l->idx[k], id = s->cl[i];
            if (!has_family(s, i, q->qtype) ||
                !health_state_usable(health_cluster_state(tab, id)) ||
                health_cluster_util(tab, id) != best_u ||
                health_topo_cluster(s->topo, id)->weight != best_w)
                continue;
            if (n-- == 0) {
                best = i;
                break;
            }
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
        if (has_family(s, i, q->qtype) &&
            health_state_usable(health_cluster_state(tab, s->cl[i]))) {
            r->set = i;
            trace_printf(t,
                         "steer: rule 2 (literal): no idle home cluster; first idle cluster in "
                         "candidate order: %s",
                         cl_name(s, i));
            return;
        }
    }
    /* 3. The least-loaded cluster that is not DOWN. */
    best = -1;
    for (uint32_t k = 0; k < l->n; k++) {
        uint32_t i = l->idx[k], id = s->cl[i];
        if (!has_family(s, i, q->qtype) || health_cluster_state(tab, id) == HEALTH_DOWN) continue;
        double u = health_cluster_util(tab, id);
        if (best < 0 || u < best_u) {
            best = i;
            best_u = u;
        }
    }
    if (best >= 0) {
        r->set = (uint32_t)best;
        trace_printf(t,
                     "steer: rule 3 (literal): every cluster busy; least-loaded cluster that is "
                     "up: %s (%.1f%%)",
                     cl_name(s, (uint32_t)best), best_u * 100.0);
        return;
    }
    /* 4. Everything DOWN (every cluster with an address of the family):
     * the fallback's addresses of the family, else the first candidate
     * that has the family, so that the answer is never empty while a
     * cluster has an address of the family (docs/steering.md). */
    bool v6 = q->qtype == ZONES_TYPE_AAAA;
    if (s->fallback_set != UINT32_MAX && (v6 ? s->fallback_n6 : s->fallback_n4) > 0) {
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
    if (s->fallback_set == UINT32_MAX)
        trace_printf(t, "steer: rule 4: every cluster is DOWN and no fallback: first candidate %s",
                     cl_name(s, r->set));
    else
        trace_printf(t, "steer: rule 4: every cluster is DOWN and the fallback has no %s address: "
                        "first candidate with one, %s",
                     v6 ? "IPv6" : "IPv4", cl_name(s, r->set));
}

/* The literal rules 2-4 for a client whose damped answer cannot be used
 * (no home cluster up, or neither its bucket's destination nor its home). */
static void decide_rest(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                        const plugin_query_t *q, plugin_result_t *r, const trace_t *t)
{
    cand_list_t rest = *l;
    rest.nhome = 0;
    decide_literal(s, &rest, tab, q, r, t);
}

/* The home cluster of the subnet with hash h: a stable pick among the home
 * clusters that are up and have an address of the family of qtype (0: any
 * family), weighted by capacity; when all of those are DOWN, among all of
 * them (the controller has moved a DOWN cluster's buckets).  -1 when no
 * home cluster has the family.  *nup: how many it picked among. */
static int64_t pick_home(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                         uint64_t h, uint16_t qtype, uint32_t *nup)
{
    int64_t home = -1;
    *nup = 0;
    for (int pass = 0; pass < 2 && home < 0; pass++) {
        uint64_t total = 0;
        for (uint32_t k = 0; k < l->nhome; k++) {
            uint32_t i = l->idx[k];
            if ((qtype == 0 || has_family(s, i, qtype)) &&
                (pass == 1 || health_cluster_state(tab, s->cl[i]) != HEALTH_DOWN)) {
                total += health_topo_cluster(s->topo, s->cl[i])->capacity_bps / 1000000u + 1u;
                (*nup)++;
            }
        }
        if (total == 0) continue;
        uint64_t x = (h & 0xffffffffffffull) % total;
        for (uint32_t k = 0; k < l->nhome; k++) {
            uint32_t i = l->idx[k];
            if ((qtype != 0 && !has_family(s, i, qtype)) ||
                (pass == 0 && health_cluster_state(tab, s->cl[i]) == HEALTH_DOWN))
                continue;
            uint64_t w = health_topo_cluster(s->topo, s->cl[i])->capacity_bps / 1000000u + 1u;
            if (x < w) {
                home = i;
                break;
            }
            x -= w;
        }
    }
    return home;
}

/* Returns true when the answer depended on the subnet hash (so the ECS
 * scope must cover the hashed prefix). */
static bool decide_damped(const steer_t *s, const cand_list_t *l, const health_table_t *tab,
                          const plugin_query_t *q, plugin_result_t *r, const trace_t *t,
                          int64_t *home_out)
{
    uint64_t h = subnet_hash(&q->client, 0);
    uint32_t nup = 0;
    int64_t home = pick_home(s, l, tab, h, q->qtype, &nup);
    *home_out = home;
    if (home < 0) {
        /* No home cluster has an address of this family: the answer comes
         * from the literal rules, but the client still belongs to the home
         * its other family's queries go to, and when that home moves
         * clients away the client may move or come back: the TTL must
         * say so (docs/steering.md, TTL). */
        uint32_t nother = 0;
        *home_out = pick_home(s, l, tab, h,
                              q->qtype == ZONES_TYPE_AAAA ? ZONES_TYPE_A : ZONES_TYPE_AAAA, &nother);
    }
    if (home < 0) {
        trace_printf(t, "steer: damped: no home cluster has an address of this family");
        decide_rest(s, l, tab, q, r, t);
        return false;
    }
    if (nup > 1)
        trace_printf(t,
                     "steer: damped: home %s, picked among %u home clusters by the subnet hash in "
                     "proportion to capacity",
                     cl_name(s, (uint32_t)home), nup);
    bool home_up = health_cluster_state(tab, s->cl[home]) != HEALTH_DOWN;
    const ctl_view_t *v = &s->view[home];
    uint32_t b = (uint32_t)(h >> 56);
    uint32_t keep = atomic_load_explicit(&v->keep, memory_order_relaxed);
    bool hashed = nup > 1 || keep < STEER_BUCKETS;
    if (b < keep && home_up) {
        r->set = (uint32_t)home;
        if (keep == STEER_BUCKETS)
            trace_printf(t,
                         "steer: damped: home %s keeps all its subnets (this one is in bucket %u): "
                         "stays home",
                         cl_name(s, (uint32_t)home), b);
        else
            trace_printf(t,
                         "steer: damped: home %s keeps buckets 0-%u of 0-%u; this subnet is in "
                         "bucket %u: stays home",
                         cl_name(s, (uint32_t)home), keep - 1, STEER_BUCKETS - 1, b);
        return hashed;
    }
    uint32_t di = atomic_load_explicit(&v->dest[b], memory_order_relaxed);
    if (b >= keep && di < s->ncl && di != (uint32_t)home && has_family(s, di, q->qtype) &&
        health_cluster_state(tab, s->cl[di]) != HEALTH_DOWN) {
        r->set = di;
        trace_printf(t,
                     "steer: damped: home %s%s keeps buckets below %u; this subnet is in bucket "
                     "%u, which the controller moved to %s",
                     cl_name(s, (uint32_t)home), home_up ? "" : " (DOWN)", keep, b, cl_name(s, di));
        return true;
    }
    if (home_up) {
        r->set = (uint32_t)home;
        trace_printf(t,
                     "steer: damped: home %s keeps buckets below %u; bucket %u has no usable "
                     "destination: stays home",
                     cl_name(s, (uint32_t)home), keep, b);
        return hashed;
    }
    trace_printf(t, "steer: damped: home %s is DOWN and bucket %u has no usable destination yet",
                 cl_name(s, (uint32_t)home), b);
    decide_rest(s, l, tab, q, r, t);
    return false;
}

static void steer_explain(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                          const trace_t *t)
{
    const steer_t *s = inst;
    geo_result_t g;
    /* The scope sent is the prefix that decided, but never more bits than
     * the server looks at in an ECS address (its ECS limit; the answer
     * path caps it): explain's geo result line states that scope. */
    unsigned cap = !q->ecs ? 255u : q->client.family == 4 ? s->ecs_max_v4 : s->ecs_max_v6;
    if (trace_on(t) && s->geo)
        geo_explain_capped(s->geo, &q->client, cap, t, &g);
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
        trace_printf(
            t, "steer: client %s: region=%s (%s), carrier=%s (%s), country=%s",
            q->ecs ? "subnet from ECS" : "source address",
            origin < s->nregions ? health_topo_region(s->topo, origin)->name : "-", origin_from,
            carrier == GEO_NONE ? "-" : geo_carrier_name(s->geo, (uint16_t)carrier),
            carrier == GEO_NONE ? "unknown" : carrier_from, g.country[0] ? g.country : "-");
        if (s->mode == STEER_DAMPED)
            trace_printf(t, "steer: mode damped, threshold %.0f%%, target %.0f%%, level %.1f%%",
                         s->threshold * 100.0, s->target * 100.0,
                         atomic_load_explicit(&s->level_ppm, memory_order_relaxed) / 1e4);
        else
            trace_printf(t, "steer: mode literal, threshold %.0f%%", s->threshold * 100.0);
    }
    const health_table_t *tab = health_table_acquire(s->topo);
    trace_candidates(s, l, tab, q->qtype, t);
    bool hashed = false;
    int64_t home = -1;
    if (s->mode == STEER_DAMPED)
        hashed = decide_damped(s, l, tab, q, r, t, &home);
    else
        decide_literal(s, l, tab, q, r, t);
    /* A short TTL while the chosen cluster is near its threshold, so
     * resolvers come back soon when it fills up; in damped mode also while
     * the controller expects it near (moves under way) and while the
     * client's home sheds (the client may move or come back), so that every
     * client a move concerns re-resolves within busy_ttl. */
    r->ttl = s->ttl;
    if (r->set < s->ncl) {
        uint32_t id = s->cl[r->set];
        double u = health_cluster_util(tab, id);
        bool idle = health_cluster_state(tab, id) == HEALTH_IDLE;
        const char *why = NULL;
        uint32_t vflags = s->mode == STEER_DAMPED
                              ? atomic_load_explicit(&s->view[r->set].flags, memory_order_relaxed)
                              : 0;
        if (s->mode != STEER_DAMPED) {
            if (u >= s->near || !idle)
                why = "the chosen cluster is near its threshold, shedding or not measured";
        } else if (!idle) {
            why = "the chosen cluster is not IDLE or not measured yet";
        } else if (u >= s->near) {
            why = "the chosen cluster is near its threshold";
        } else if (vflags & CTL_F_SHORT) {
            why = vflags & CTL_F_UNMEASURED
                      ? "the chosen cluster has no bandwidth measurement"
                      : "the controller expects the chosen cluster near its threshold";
        } else if (home >= 0 && atomic_load_explicit(&s->view[home].keep, memory_order_relaxed) <
                                    STEER_BUCKETS) {
            why = "the client's home sheds: it may move or come back";
        }
        if (why) {
            r->ttl = s->busy_ttl;
            trace_printf(t, "steer: TTL %us (short: %s)", r->ttl, why);
        } else {
            trace_printf(t, "steer: TTL %us", r->ttl);
        }
    } else {
        /* The fallback: every cluster is DOWN, and the answer changes as
         * soon as one recovers. */
        r->ttl = s->busy_ttl;
        trace_printf(t, "steer: TTL %us (short: the fallback, every cluster is DOWN)", r->ttl);
    }
    r->scope = s->geo ? g.scope : 0;
    if (hashed && q->ecs) {
        /* The answer depends on the hashed prefix: it holds for that prefix
         * only (RFC 7871 section 7.2.1). */
        unsigned hb = hash_bits(&q->client);
        if (r->scope < hb) r->scope = (uint8_t)hb;
    }
}

static void steer_resolve(const void *inst, const plugin_query_t *q, plugin_result_t *r)
{
    steer_explain(inst, q, r, NULL);
}

/* ---- the controller (main thread, after each health publication) ---- */

/* The part of a move made at t_ms that the measurements do not show yet:
 * nothing is seen during one measurement interval, then the clients
 * re-resolve evenly over the short TTL. */
static double ctl_unseen(const steer_t *s, uint64_t now, uint64_t t_ms)
{
    double age = (double)(now - t_ms) - (double)s->lag_ms;
    if (age <= 0) return 1.0;
    if (s->settle_ms == 0 || age >= (double)s->settle_ms) return 0.0;
    return 1.0 - age / (double)s->settle_ms;
}

/* Move bucket b of src's home clients to cluster `to` (src itself: back
 * home), and account for the load it carries. */
static void ctl_move(steer_t *s, uint32_t src, uint32_t b, uint32_t to)
{
    ctl_state_t *st = &s->state[src];
    uint32_t from = st->dest[b];
    if (from == to) return;
    double r = st->rho;
    /* The bucket is estimated at its home's average load per bucket, and
     * the one that leaves may carry less (a bucket holds whole subnets, or
     * none): a cluster never loses more than it is expected to carry.
     * Without this bound, clients coming back home after a shed drove the
     * destination's expected load negative, which gave it room it does not
     * have in the following steps (the move stays pending in the ring) and
     * showed in explain as an unsigned wrap (expected=429490.6%). */
    double gone = r < s->state[from].expect ? r : s->state[from].expect;
    if (gone < 0) gone = 0;
    s->state[from].expect -= gone;
    s->state[from].delta -= gone;
    s->state[to].expect += r;
    s->state[to].delta += r;
    if (from != src) {
        s->state[from].inflow -= r;
        if (s->state[from].inflow < 0) s->state[from].inflow = 0;
    }
    if (to != src) s->state[to].inflow += r;
    st->dest[b] = (uint16_t)to;
}

static double ctl_room(const steer_t *s, uint32_t j, double level)
{
    const ctl_state_t *st = &s->state[j];
    return level * st->cap - st->expect;
}

/* May cluster j take clients of other clusters?  It must be measured and
 * up, and must not shed its own clients (no ping-pong). */
static bool ctl_can_take(const steer_t *s, uint32_t j)
{
    const ctl_state_t *st = &s->state[j];
    return st->measured && st->keep == STEER_BUCKETS;
}

/* The destinations for src's clients: the first `spread` clusters of its
 * candidate list (nearest first) that can take clients and have room below
 * the level, except `not`.  Returns how many. */
static uint32_t ctl_dests(const steer_t *s, uint32_t src, uint32_t not, double level, uint32_t *out)
{
    const cand_list_t *l = &s->lists[s->home_of[src]];
    uint32_t n = 0;
    for (uint32_t k = 0; k < l->n && n < s->spread; k++) {
        uint32_t j = l->idx[k];
        if (j == src || j == not || !ctl_can_take(s, j) || ctl_room(s, j, level) <= 0) continue;
        out[n++] = j;
    }
    return n;
}

/* One bucket of src must go somewhere else (it is sent on, or its home or
 * its destination went DOWN): the destination with the most room, else
 * (must) the one with the most room, or the least excess, among the
 * `spread` nearest clusters that are up, so that a DOWN cluster's clients
 * do not all land on one; else nowhere (-1). */
static int64_t ctl_pick_any(const steer_t *s, uint32_t src, uint32_t not, double level, bool must)
{
    uint32_t d[STEER_MAX_SPREAD];
    uint32_t n = ctl_dests(s, src, not, level, d);
    int64_t best = -1;
    for (uint32_t k = 0; k < n; k++)
        if (best < 0 || ctl_room(s, d[k], level) > ctl_room(s, (uint32_t)best, level)) best = d[k];
    if (best >= 0 || !must) return best;
    const cand_list_t *l = &s->lists[s->home_of[src]];
    double best_room = 0;
    for (uint32_t k = 0, m = 0; k < l->n && m < s->spread; k++) {
        uint32_t j = l->idx[k];
        if (j == src || j == not || !s->state[j].up) continue;
        m++;
        double room = s->state[j].measured ? ctl_room(s, j, level) : 0;
        if (best < 0 || room > best_room) {
            best = j;
            best_room = room;
        }
    }
    return best;
}

/* Cluster i is above the level and receives other clusters' buckets: send
 * them on (newest first) to their sources' other destinations with room.
 * Returns the excess left. */
static double ctl_push_back(steer_t *s, uint32_t i, double excess, double level)
{
    for (uint32_t src = 0; src < s->ncl && excess > 0; src++) {
        ctl_state_t *st = &s->state[src];
        if (src == i) continue;
        for (uint32_t b = st->keep; b < STEER_BUCKETS && excess > 0; b++) {
            if (st->dest[b] != i) continue;
            int64_t to = ctl_pick_any(s, src, i, level, false);
            if (to < 0 || ctl_room(s, (uint32_t)to, level) < st->rho) break;
            ctl_move(s, src, b, (uint32_t)to);
            excess -= st->rho;
        }
    }
    return excess;
}

/* Cluster i is above the level: shed `excess` of its home load, newest
 * buckets first, to its destinations in proportion to their room. */
static void ctl_shed(steer_t *s, uint32_t i, double excess, double level)
{
    ctl_state_t *st = &s->state[i];
    if (st->rho <= 0 || st->keep == 0) return;
    uint32_t d[STEER_MAX_SPREAD];
    uint32_t n = ctl_dests(s, i, i, level, d);
    double room = 0;
    for (uint32_t k = 0; k < n; k++) {
        s->state[d[k]].room0 = ctl_room(s, d[k], level);
        s->state[d[k]].given = 0;
        room += s->state[d[k]].room0;
    }
    if (n == 0 || room <= 0) {
        st->frac = 0;
        return;
    }
    /* Multiplicative decrease: the excess, but no more than the room and no
     * more than `decrease` of the clients still at home. */
    double amount = excess < room ? excess : room;
    double most = s->decrease * st->keep * st->rho;
    if (amount > most) amount = most;
    double nb = amount / st->rho + st->frac;
    uint32_t whole = nb >= st->keep ? st->keep : (uint32_t)nb;
    st->frac = whole < st->keep ? nb - whole : 0;
    for (uint32_t m = 0; m < whole; m++) {
        /* In proportion to room: the destination that has had the least of
         * its room so far. */
        uint32_t best = d[0];
        double bf = 0;
        for (uint32_t k = 0; k < n; k++) {
            double f = (s->state[d[k]].given + st->rho) / s->state[d[k]].room0;
            if (k == 0 || f < bf) {
                bf = f;
                best = d[k];
            }
        }
        s->state[best].given += st->rho;
        st->keep--;
        st->dest[st->keep] = (uint16_t)i;
        ctl_move(s, i, st->keep, best);
    }
}

static void ctl_step(steer_t *s, const health_table_t *tab, uint64_t now)
{
    uint32_t n = s->ncl;
    /* 1. What each cluster carries now, and will once the moves made are
     * seen. */
    double sum_x = 0, sum_c = 0;
    for (uint32_t i = 0; i < n; i++) {
        ctl_state_t *st = &s->state[i];
        uint32_t id = s->cl[i];
        const health_cluster_t *c = health_topo_cluster(s->topo, id);
        st->up = health_cluster_state(tab, id) != HEALTH_DOWN;
        /* Capacity and rate of the servers that are up and measure
         * bandwidth (a tcp or file check, or no sample yet, tells nothing
         * about room).  A server the admin file forces BUSY counts as full
         * up to the threshold: it takes no overflow and its clients move. */
        st->cap = 0;
        st->meas = 0;
        for (uint32_t k = 0; k < c->n_servers; k++) {
            uint32_t sid = c->first_server + k;
            health_state_t ss = health_server_state(tab, sid);
            if (ss == HEALTH_DOWN || ss == HEALTH_UNKNOWN ||
                (health_server_flags(tab, sid) & HEALTH_F_NO_RATE))
                continue;
            double cap = (double)health_topo_server(s->topo, sid)->capacity_bps;
            double rate = (double)health_server_rate(tab, sid);
            if (ss == HEALTH_BUSY && (health_server_flags(tab, sid) & HEALTH_F_ADMIN) &&
                rate < s->threshold * cap)
                rate = s->threshold * cap;
            st->cap += cap;
            st->meas += rate;
        }
        st->measured = st->up && st->cap > 0;
        double unseen = 0;
        for (uint32_t k = 0; k < s->nring; k++)
            if (st->ring[k].bps != 0)
                unseen += st->ring[k].bps * ctl_unseen(s, now, st->ring[k].t_ms);
        st->expect = st->meas + unseen;
        if (st->expect < 0) st->expect = 0;
        st->delta = 0;
        st->inflow = 0;
        if (st->measured) {
            sum_x += st->expect;
            sum_c += st->cap;
        }
    }
    /* 2. Load sent to each cluster by others (at the per-bucket estimate of
     * the last step), then each home's demand per bucket. */
    for (uint32_t src = 0; src < n; src++) {
        ctl_state_t *st = &s->state[src];
        for (uint32_t b = st->keep; b < STEER_BUCKETS; b++)
            if (st->dest[b] != src) s->state[st->dest[b]].inflow += st->rho;
    }
    for (uint32_t i = 0; i < n; i++) {
        ctl_state_t *st = &s->state[i];
        /* With too few buckets at home the estimate is noise: keep the
         * last one. */
        if (st->measured && st->keep >= STEER_BUCKETS / 16 && st->expect > st->inflow)
            st->rho = (st->expect - st->inflow) / st->keep;
    }
    /* 3. The level: the target, or everybody's utilisation when that is
     * higher. */
    double level = s->target;
    if (sum_c > 0 && sum_x / sum_c > level) level = sum_x / sum_c;
    /* 4. DOWN: a DOWN cluster's clients all go now, and so do clients sent
     * to a cluster that went DOWN (never answer DOWN while any is up). */
    for (uint32_t src = 0; src < n; src++) {
        ctl_state_t *st = &s->state[src];
        if (!st->up) {
            st->keep = 0;
            st->frac = 0;
            for (uint32_t b = 0; b < STEER_BUCKETS; b++) {
                if (st->dest[b] != src && s->state[st->dest[b]].up) continue;
                int64_t to = ctl_pick_any(s, src, src, level, true);
                if (to >= 0) ctl_move(s, src, b, (uint32_t)to);
            }
            continue;
        }
        for (uint32_t b = st->keep; b < STEER_BUCKETS; b++) {
            uint32_t d = st->dest[b];
            if (d == src || s->state[d].up) continue;
            int64_t to = ctl_pick_any(s, src, d, level, false);
            ctl_move(s, src, b, to >= 0 ? (uint32_t)to : src);
        }
    }
    /* 5. Above the level, most loaded first: send back overflow received,
     * then shed home clients. */
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (s->state[i].measured)
            s->order[m++] = (sortkey_t){i, -s->state[i].expect / s->state[i].cap};
    qsort(s->order, m, sizeof(sortkey_t), sortkey_cmp);
    for (uint32_t k = 0; k < m; k++) {
        uint32_t i = s->order[k].idx;
        ctl_state_t *st = &s->state[i];
        double excess = st->expect - level * st->cap;
        if (excess <= 0) {
            st->frac = 0;
            continue;
        }
        /* A cluster that receives overflow is filled up to the level
         * only, so landing a little above it is estimation noise: it sends
         * overflow on (to the level) only once it reaches the health
         * threshold (or the level plus the health hysteresis, when that is
         * higher), and until then sheds none of its own clients either.
         * Overflow goes on before any of its own clients move (no
         * ping-pong). */
        if (st->inflow > 0) {
            double line = level + s->hyst > s->threshold ? level + s->hyst : s->threshold;
            if (st->expect <= line * st->cap) continue;
            excess = ctl_push_back(s, i, excess, level);
        }
        if (excess > 0) ctl_shed(s, i, excess, level);
    }
    /* 6. Below the level by return_margin, least loaded first: the buckets
     * moved last come back first, at most `increase` of them a step. */
    uint32_t step_max = (uint32_t)ceil(s->increase * STEER_BUCKETS);
    for (uint32_t k = m; k-- > 0;) {
        uint32_t i = s->order[k].idx;
        ctl_state_t *st = &s->state[i];
        if (st->keep >= STEER_BUCKETS) continue;
        double room = (level - s->ret_margin) * st->cap - st->expect;
        if (room <= 0) continue;
        uint32_t nb = STEER_BUCKETS - st->keep;
        if (st->rho > 0 && room / st->rho < nb) nb = (uint32_t)(room / st->rho);
        if (nb > step_max) nb = step_max;
        for (uint32_t b = 0; b < nb; b++) {
            ctl_move(s, i, st->keep, i);
            st->keep++;
        }
    }
    /* 7. Remember the moves until the measurements show them, and publish:
     * destinations first, then keep (a reader that sees the new keep with an
     * old destination answers a valid cluster either way). */
    for (uint32_t i = 0; i < n; i++) {
        ctl_state_t *st = &s->state[i];
        ctl_view_t *v = &s->view[i];
        if (st->delta != 0) {
            st->ring[st->ring_pos] = (ctl_pend_t){now, st->delta};
            st->ring_pos = (st->ring_pos + 1) % s->nring;
        }
        uint32_t was = atomic_load_explicit(&v->keep, memory_order_relaxed);
        if ((was == STEER_BUCKETS) != (st->keep == STEER_BUCKETS))
            log_info("steer: %s: cluster %s %s (expected %.1f%%, level %.1f%%, keeps %u/%u)",
                     s->path, cl_name(s, i),
                     st->keep < STEER_BUCKETS ? "starts moving clients away"
                                              : "has all its clients back",
                     st->cap > 0 ? st->expect / st->cap * 100 : 0, level * 100, st->keep,
                     STEER_BUCKETS);
        if (st->delta != 0 && log_get_level() >= LOG_DEBUG)
            log_debug("steer: %s: %s measured %.1f%% expected %.1f%% inflow %.1f%% keep %u/%u, "
                      "%.1f Mbit/s per bucket",
                      s->path, cl_name(s, i), st->cap > 0 ? st->meas / st->cap * 100 : 0,
                      st->cap > 0 ? st->expect / st->cap * 100 : 0,
                      st->cap > 0 ? st->inflow / st->cap * 100 : 0, st->keep, STEER_BUCKETS,
                      st->rho / 1e6);
        for (uint32_t b = 0; b < STEER_BUCKETS; b++)
            atomic_store_explicit(&v->dest[b], st->dest[b], memory_order_relaxed);
        atomic_store_explicit(&v->keep, st->keep, memory_order_relaxed);
        double u = st->cap > 0 ? st->expect / st->cap : 0;
        /* Published as an unsigned ppm: keep it a utilisation (a negative
         * double converted to uint32_t is undefined and showed wrapped). */
        if (!(u > 0)) u = 0;
        uint32_t flags = 0;
        if (!st->measured || u >= s->near || st->keep < STEER_BUCKETS) flags |= CTL_F_SHORT;
        if (!st->measured) flags |= CTL_F_UNMEASURED;
        atomic_store_explicit(&v->flags, flags, memory_order_relaxed);
        atomic_store_explicit(&v->expect_ppm, (uint32_t)(u > 4000 ? 4000 * PPM : u * PPM),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&s->level_ppm, (uint32_t)(level * PPM), memory_order_relaxed);
}

static void steer_update(void *inst, const plugin_update_t *u)
{
    steer_t *s = inst;
    if (s->mode != STEER_DAMPED) return;
    /* One step per measurement interval; at once when a cluster goes DOWN
     * or comes back. */
    bool updown = false;
    for (uint32_t i = 0; i < s->ncl; i++) {
        bool up = health_cluster_state(u->table, s->cl[i]) != HEALTH_DOWN;
        updown |= up != s->state[i].was_up;
    }
    if (!updown && s->last_step_ms != 0 && u->now_ms - s->last_step_ms < s->step_ms) return;
    ctl_step(s, u->table, u->now_ms);
    s->last_step_ms = u->now_ms;
    for (uint32_t i = 0; i < s->ncl; i++)
        s->state[i].was_up = s->state[i].up;
}

/* A reload: take over the controller of the instance this one replaces,
 * cluster by cluster (by name), so the clients moved away stay where they
 * are.  Buckets sent to a cluster that is gone come home; the next step
 * moves them again if needed. */
static void steer_adopt(void *inst, const void *old_inst)
{
    steer_t *s = inst;
    const steer_t *o = old_inst;
    if (s->mode != STEER_DAMPED || o->mode != STEER_DAMPED)
        return;
    uint32_t *to_new = calloc(o->ncl ? o->ncl : 1, sizeof(uint32_t));
    if (to_new == NULL)
        return;
    for (uint32_t j = 0; j < o->ncl; j++) {
        to_new[j] = UINT32_MAX;
        for (uint32_t i = 0; i < s->ncl; i++)
            if (strcmp(cl_name(o, j), cl_name(s, i)) == 0)
                to_new[j] = i;
    }
    for (uint32_t j = 0; j < o->ncl; j++) {
        uint32_t i = to_new[j];
        if (i == UINT32_MAX)
            continue;
        const ctl_state_t *os = &o->state[j];
        ctl_state_t *st = &s->state[i];
        ctl_pend_t *ring = st->ring;
        *st = *os;
        st->ring = ring;
        uint32_t n = o->nring < s->nring ? o->nring : s->nring;
        memcpy(st->ring, os->ring, n * sizeof(ctl_pend_t));
        st->ring_pos = os->ring_pos % s->nring;
        for (uint32_t b = 0; b < STEER_BUCKETS; b++) {
            uint32_t d = os->dest[b] < o->ncl ? to_new[os->dest[b]] : UINT32_MAX;
            st->dest[b] = (uint16_t)(d == UINT32_MAX ? i : d);
        }
        /* A bucket whose destination is gone points at its own home, which
         * the answer path treats as staying home. */
        ctl_view_t *v = &s->view[i];
        for (uint32_t b = 0; b < STEER_BUCKETS; b++)
            atomic_store_explicit(&v->dest[b], st->dest[b], memory_order_relaxed);
        atomic_store_explicit(&v->keep, st->keep, memory_order_relaxed);
        atomic_store_explicit(&v->flags, atomic_load_explicit(&o->view[j].flags, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&v->expect_ppm,
                              atomic_load_explicit(&o->view[j].expect_ppm, memory_order_relaxed),
                              memory_order_relaxed);
    }
    s->last_step_ms = o->last_step_ms;
    atomic_store_explicit(&s->level_ppm, atomic_load_explicit(&o->level_ppm, memory_order_relaxed),
                          memory_order_relaxed);
    free(to_new);
}

const plugin_desc_t plugin_steer = {
    .abi = PLUGIN_ABI_VERSION,
    .name = "steer",
    .create = steer_create,
    .resolve = steer_resolve,
    .explain = steer_explain,
    .update = steer_update,
    .adopt = steer_adopt,
};
