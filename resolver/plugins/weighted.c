/*
 * weighted.c - the `weighted` plugin: one address per answer, chosen at
 * random in proportion to its weight (gdnsd's weighted with multi off).
 *
 *     img: {weighted: {192.0.2.1: 3, 192.0.2.2: 1, "2001:db8::1": 1}}
 *     img: {weighted: {addresses: {192.0.2.1: 3, 192.0.2.2: 1}, ttl: 30}}
 *
 * A and AAAA are chosen separately among the addresses of their family.
 * Per query: one random number and a binary search of the cumulative
 * weights; nothing else.
 */
#include <string.h>

#include "resolver/plugin.h"

typedef struct weighted {
    /* Sets 0..n4-1 hold one IPv4 address each, n4..n4+n6-1 one IPv6. */
    uint32_t n4, n6;
    uint64_t *cum4, *cum6; /* cumulative weights */
    uint64_t total4, total6;
} weighted_t;

typedef struct weighted_cfg {
    const yconf_node_t *addresses;
    uint64_t ttl_ms;
} weighted_cfg_t;

static const yconf_key_t weighted_table[] = {
    {"addresses", YCONF_T_MAP, offsetof(weighted_cfg_t, addresses), 0, 0, NULL, YCONF_REQUIRED,
     NULL, NULL},
    {"ttl", YCONF_T_DURATION, offsetof(weighted_cfg_t, ttl_ms), 0, 2147483647000.0, "300", 0,
     NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static int weighted_create(const plugin_env_t *env, const yconf_node_t *cfg, const char *path,
                           arena_t *a, diag_list_t *d, void **inst, plugin_decl_t *decl)
{
    (void)env;
    weighted_cfg_t c = {.ttl_ms = 300000};
    const yconf_node_t *map = cfg;
    char sub[300];
    snprintf(sub, sizeof(sub), "%s", path);
    if (!yconf_expect(d, cfg, YCONF_MAP, path))
        return -22;
    if (yconf_map_get(cfg, "addresses")) {
        if (yconf_apply(cfg, weighted_table, &c, a, d, path, NULL) != 0)
            return -22;
        map = c.addresses;
        snprintf(sub, sizeof(sub), "%s.addresses", path);
    }
    size_t n = map->u.map.n;
    if (n == 0) {
        yconf_error(d, map, "%s: at least one address is needed", sub);
        return -22;
    }
    weighted_t *w = arena_calloc(a, 1, sizeof(*w));
    plugin_set_t *sets = arena_calloc(a, n, sizeof(*sets));
    uint8_t(*v4)[4] = arena_calloc(a, n, 4);
    uint8_t(*v6)[16] = arena_calloc(a, n, 16);
    uint64_t *wt4 = arena_calloc(a, n, sizeof(uint64_t));
    uint64_t *wt6 = arena_calloc(a, n, sizeof(uint64_t));
    const char **key4 = arena_calloc(a, n, sizeof(char *));
    const char **key6 = arena_calloc(a, n, sizeof(char *));
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *k = map->u.map.pairs[i].key, *v = map->u.map.pairs[i].value;
        netaddr_t addr;
        if (netaddr_parse(k->u.scalar.str, &addr) != 0) {
            yconf_error(d, k, "%s: '%s' is not an IPv4 or IPv6 address", sub, k->u.scalar.str);
            ok = false;
            continue;
        }
        uint32_t weight;
        char wpath[400];
        snprintf(wpath, sizeof(wpath), "%s[\"%s\"]", sub, k->u.scalar.str);
        if (!yconf_parse_value(v, YCONF_T_U32, 1, 1000000, NULL, &weight, a, d, wpath)) {
            ok = false;
            continue;
        }
        /* One address, one weight: "2001:db8::1" and "2001:DB8::1" are
         * the same address. */
        const char *same = NULL;
        if (addr.family == 4) {
            for (uint32_t j = 0; j < w->n4 && !same; j++)
                if (memcmp(v4[j], addr.addr, 4) == 0)
                    same = key4[j];
        } else {
            for (uint32_t j = 0; j < w->n6 && !same; j++)
                if (memcmp(v6[j], addr.addr, 16) == 0)
                    same = key6[j];
        }
        if (same) {
            yconf_error(d, k, "%s: '%s' is the same address as '%s'", sub, k->u.scalar.str, same);
            ok = false;
            continue;
        }
        if (addr.family == 4) {
            key4[w->n4] = k->u.scalar.str;
            memcpy(v4[w->n4], addr.addr, 4);
            wt4[w->n4++] = weight;
        } else {
            key6[w->n6] = k->u.scalar.str;
            memcpy(v6[w->n6], addr.addr, 16);
            wt6[w->n6++] = weight;
        }
    }
    if (!ok)
        return -22;
    w->cum4 = arena_calloc(a, w->n4 ? w->n4 : 1, sizeof(uint64_t));
    w->cum6 = arena_calloc(a, w->n6 ? w->n6 : 1, sizeof(uint64_t));
    for (uint32_t i = 0; i < w->n4; i++) {
        w->total4 += wt4[i];
        w->cum4[i] = w->total4;
        sets[i] = (plugin_set_t){(const uint8_t(*)[4])v4[i], 1, NULL, 0};
    }
    for (uint32_t i = 0; i < w->n6; i++) {
        w->total6 += wt6[i];
        w->cum6[i] = w->total6;
        sets[w->n4 + i] = (plugin_set_t){NULL, 0, (const uint8_t(*)[16])v6[i], 1};
    }
    decl->sets = sets;
    decl->nsets = w->n4 + w->n6;
    decl->ttl = (uint32_t)(c.ttl_ms / 1000);
    *inst = w;
    return 0;
}

static uint32_t pick(const uint64_t *cum, uint32_t n, uint64_t total, uint64_t r)
{
    uint64_t x = r % total;
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void weighted_explain(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                             const trace_t *t)
{
    const weighted_t *w = inst;
    r->ttl = UINT32_MAX;
    r->scope = 0;
    uint64_t rnd = plugin_rand(q->rng);
    if (q->qtype == ZONES_TYPE_AAAA && w->n6) {
        r->set = w->n4 + pick(w->cum6, w->n6, w->total6, rnd);
    } else if (q->qtype != ZONES_TYPE_AAAA && w->n4) {
        r->set = pick(w->cum4, w->n4, w->total4, rnd);
    } else {
        /* No address of the asked family: a set of the other family gives
         * NODATA for this type. */
        r->set = 0;
    }
    trace_printf(t, "weighted: random pick in proportion to weight: set %u of %u", r->set,
                 w->n4 + w->n6);
}

static void weighted_resolve(const void *inst, const plugin_query_t *q, plugin_result_t *r)
{
    weighted_explain(inst, q, r, NULL);
}

const plugin_desc_t plugin_weighted = {
    .abi = PLUGIN_ABI_VERSION,
    .name = "weighted",
    .create = weighted_create,
    .resolve = weighted_resolve,
    .explain = weighted_explain,
};
