/*
 * geo_conf.c - the `geo:` configuration section, the regions' match keys,
 * carriers and nets overrides; geo_build, geo_free and the carrier lookups.
 *
 * Owns the geo_t itself (malloc) and everything the build allocates outside
 * the arena.  This is the first step of the flow: the snapshot builder hands
 * over the parsed YAML nodes and region definitions, this file validates
 * them with yconf tables (every error at its own position), opens the
 * sources (geo_mmdb.c, geo_lists.c) and asks geo_table.c to flatten them
 * into the lookup tables.  Load time only; geo_carrier_* may be called from
 * any thread.
 */
#include "geo/geo_int.h"

#include "core/grow.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEO_MAX_FILES 8       /* files per source kind */
#define GEO_MAX_NETS  1000000 /* nets overrides */

/* ---- small helpers ---- */

const char *geo__path(geo_t *g, const char *p)
{
    return arena_path(g->arena, g->base_dir, p);
}

/* A set of interned strings (build time). */
struct geo__strset {
    const char **s;
    size_t cap, n;
};
static struct geo__strset *g_strs_of(geo_t *g);

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

const char *geo__intern(geo_t *g, const char *s, size_t len)
{
    if (len == 0) return "";
    struct geo__strset *t = g_strs_of(g);
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        const char **ns = calloc(ncap, sizeof(*ns));
        if (ns == NULL) abort();
        for (size_t i = 0; i < t->cap; i++) {
            if (t->s[i] == NULL) continue;
            size_t j = str_hash(t->s[i], strlen(t->s[i])) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = t->s[i];
        }
        free(t->s);
        t->s = ns;
        t->cap = ncap;
    }
    size_t j = str_hash(s, len) & (t->cap - 1);
    while (t->s[j]) {
        if (strncmp(t->s[j], s, len) == 0 && t->s[j][len] == '\0') return t->s[j];
        j = (j + 1) & (t->cap - 1);
    }
    char *c = arena_strndup(g->arena, s, len);
    g->arena_bytes += len + 1;
    t->s[j] = c;
    t->n++;
    return c;
}

/* The string set hangs off the geo_t only during the build. */
static struct geo__strset *g_strs_of(geo_t *g)
{
    if (g->strs == NULL) {
        g->strs = calloc(1, sizeof(*g->strs));
        if (g->strs == NULL) abort();
    }
    return g->strs;
}

static void strs_free(geo_t *g)
{
    if (g->strs) {
        free(g->strs->s);
        free(g->strs);
        g->strs = NULL;
    }
}

/* "name1, name2, ..." (at most ~400 bytes), or "none". */
static void known_list(const char *const *names, size_t n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= size - used || used + (size_t)w > 400) {
            buf[used] = '\0';
            snprintf(buf + used, size - used, ", ...");
            return;
        }
        used += (size_t)w;
    }
}

static bool scalar_ok(diag_list_t *d, const yconf_node_t *n, const char *path)
{
    if (n->kind != YCONF_SCALAR || yconf_is_null(n)) {
        yconf_error(d, n, "%s: expected a string, got %s", path,
                    n->kind == YCONF_SCALAR ? "nothing"
                    : n->kind == YCONF_SEQ  ? "a sequence"
                                            : "a mapping");
        return false;
    }
    if (strlen(n->u.scalar.str) != n->u.scalar.len) {
        yconf_error(d, n, "%s: contains a NUL byte", path);
        return false;
    }
    return true;
}

/* A value that is one string or a sequence of strings: the items and their
 * config paths ("geo.city_db" or "geo.city_db[1]"). */
static size_t string_list(geo_t *g, const yconf_node_t *n, const char *path, size_t max,
                          const yconf_node_t **items, const char **paths, diag_list_t *d)
{
    if (n == NULL) return 0;
    if (n->kind == YCONF_SCALAR) {
        if (!scalar_ok(d, n, path)) return 0;
        items[0] = n;
        paths[0] = arena_strdup(g->arena, path);
        return 1;
    }
    if (n->kind != YCONF_SEQ) {
        yconf_error(d, n, "%s: expected a string or a sequence of strings, got a mapping", path);
        return 0;
    }
    if (n->u.seq.n == 0) {
        yconf_error(d, n, "%s: empty sequence", path);
        return 0;
    }
    if (n->u.seq.n > max) {
        yconf_error(d, n, "%s: at most %zu entries", path, max);
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n->u.seq.n; i++) {
        const char *p = arena_sprintf(g->arena, "%s[%zu]", path, i);
        if (!scalar_ok(d, n->u.seq.items[i], p)) continue;
        items[k] = n->u.seq.items[i];
        paths[k++] = p;
    }
    return k;
}

/* ---- field paths ---- */

static const char *const city_field_names[GEO__NCITYF] = {"country", "subdivision", "city",
                                                          "latitude", "longitude"};
static const char *const city_defaults[2][GEO__NCITYF] = {
    {"country.iso_code", "subdivisions.0.iso_code", "city.names.en", "location.latitude",
     "location.longitude"},
    {"country_code", "state1", "city", "latitude", "longitude"},
};
static const char *const asn_field_names[GEO__NASNF] = {"asn", "org"};
static const char *const asn_defaults[GEO__NASNF] = {"autonomous_system_number",
                                                     "autonomous_system_organization"};

/* Split "a.b.0.c" into components; false with a reason. */
static bool path_split(geo_t *g, const char *text, const char ***out, const char **why)
{
    const char *parts[GEO__MAX_PATH_LEN + 1];
    size_t n = 0;
    const char *p = text;
    if (*p == '\0') {
        *why = "empty path";
        return false;
    }
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0) {
            *why = "empty component";
            return false;
        }
        if (n == GEO__MAX_PATH_LEN) {
            *why = "more than 8 components";
            return false;
        }
        parts[n++] = arena_strndup(g->arena, p, len);
        if (!dot) break;
        p = dot + 1;
    }
    const char **arr = arena_calloc(g->arena, n + 1, sizeof(*arr));
    memcpy(arr, parts, n * sizeof(*arr));
    arr[n] = NULL;
    *out = arr;
    return true;
}

static void field_set_default(geo_t *g, geo__field_t *f, const char *name, const char *text)
{
    const char *why;
    memset(f, 0, sizeof(*f));
    f->name = name;
    f->nalts = 1;
    f->text[0] = text;
    path_split(g, text, &f->alts[0], &why);
}

/* fields.X: a path, a sequence of alternative paths, or null (not read). */
static void field_parse(geo_t *g, geo__field_t *f, const yconf_node_t *n, const char *path,
                        diag_list_t *d)
{
    if (n == NULL) return;
    f->node = n;
    if (yconf_is_null(n)) {
        f->nalts = 0;
        return;
    }
    const yconf_node_t *items[GEO__MAX_ALTS];
    const char *paths[GEO__MAX_ALTS];
    if (n->kind == YCONF_SEQ && n->u.seq.n > GEO__MAX_ALTS) {
        yconf_error(d, n, "%s: at most %d alternative paths", path, GEO__MAX_ALTS);
        return;
    }
    size_t k = string_list(g, n, path, GEO__MAX_ALTS, items, paths, d);
    if (k == 0) return;
    geo__field_t nf = {.name = f->name, .node = n};
    for (size_t i = 0; i < k; i++) {
        const char *why;
        const char *text = items[i]->u.scalar.str;
        if (!path_split(g, text, &nf.alts[nf.nalts], &why)) {
            yconf_error(d, items[i], "%s: invalid path '%s': %s", paths[i], text, why);
            return;
        }
        nf.text[nf.nalts++] = arena_strdup(g->arena, text);
    }
    *f = nf;
}

/* ---- regions and match keys ---- */

static size_t mkey_slot(const geo_t *g, const char *key)
{
    size_t mask = g->mkcap - 1;
    size_t j = str_hash(key, strlen(key)) & mask;
    while (g->mkeys[j].key && strcmp(g->mkeys[j].key, key) != 0)
        j = (j + 1) & mask;
    return j;
}

uint16_t geo__region_of(const geo_t *g, const char cc[2], const char *subdiv,
                        const geo__mkey_t **which)
{
    if (which) *which = NULL;
    if (g->nmkeys == 0 || cc[0] == '\0') return GEO_NONE;
    char key[300];
    key[0] = (char)tolower((unsigned char)cc[0]);
    key[1] = (char)tolower((unsigned char)cc[1]);
    size_t sl = subdiv ? strlen(subdiv) : 0;
    if (sl > 0 && sl < sizeof(key) - 4) {
        key[2] = '-';
        for (size_t i = 0; i < sl; i++) {
            unsigned char ch = (unsigned char)subdiv[i];
            key[3 + i] = (char)(ch < 0x80 ? tolower(ch) : ch);
        }
        key[3 + sl] = '\0';
        size_t j = mkey_slot(g, key);
        if (g->mkeys[j].key) {
            if (which) *which = &g->mkeys[j];
            return g->mkeys[j].region;
        }
    }
    key[2] = '\0';
    size_t j = mkey_slot(g, key);
    if (g->mkeys[j].key) {
        if (which) *which = &g->mkeys[j];
        return g->mkeys[j].region;
    }
    return GEO_NONE;
}

static void regions_parse(geo_t *g, const geo_config_in_t *in, diag_list_t *d)
{
    size_t total = 0;
    for (size_t r = 0; r < in->nregions; r++) {
        const yconf_node_t *m = in->regions[r].match;
        if (m && m->kind == YCONF_SEQ) total += m->u.seq.n;
    }
    g->mkcap = 16;
    while (g->mkcap < total * 2 + 16)
        g->mkcap *= 2;
    g->mkeys = arena_calloc(g->arena, g->mkcap, sizeof(*g->mkeys));
    g->arena_bytes += g->mkcap * sizeof(*g->mkeys);
    for (size_t r = 0; r < in->nregions; r++) {
        const geo_region_def_t *rd = &in->regions[r];
        const yconf_node_t *m = rd->match;
        if (m == NULL || yconf_is_null(m)) continue;
        char path[300];
        snprintf(path, sizeof(path), "regions.%s.match", rd->name);
        if (!yconf_expect(d, m, YCONF_SEQ, path)) continue;
        for (size_t i = 0; i < m->u.seq.n; i++) {
            const yconf_node_t *k = m->u.seq.items[i];
            char ipath[340];
            snprintf(ipath, sizeof(ipath), "%.300s[%zu]", path, i);
            if (!scalar_ok(d, k, ipath)) continue;
            const char *s = k->u.scalar.str;
            size_t n = k->u.scalar.len;
            bool ok = n >= 2 && isalpha((unsigned char)s[0]) && isalpha((unsigned char)s[1]) &&
                      (unsigned char)s[0] < 0x80 && (unsigned char)s[1] < 0x80 &&
                      (n == 2 || (s[2] == '-' && n > 3 && n <= 3 + 64));
            if (!ok) {
                yconf_error(d, k,
                            "%s: invalid match key '%s': expected a country code (CN) or "
                            "country-subdivision (CN-BJ, CN-Beijing)",
                            ipath, s);
                continue;
            }
            char low[80];
            for (size_t c = 0; c < n; c++) {
                unsigned char ch = (unsigned char)s[c];
                low[c] = (char)(ch < 0x80 ? tolower(ch) : ch);
            }
            low[n] = '\0';
            size_t j = mkey_slot(g, low);
            if (g->mkeys[j].key) {
                yconf_error(d, k, "%s: '%s' is already matched by region '%s' (line %u)", ipath, s,
                            g->regions[g->mkeys[j].region], g->mkeys[j].pos.line);
                continue;
            }
            g->mkeys[j] = (geo__mkey_t){
                .key = arena_strdup(g->arena, low), .region = (uint16_t)r, .pos = k->pos};
            g->nmkeys++;
        }
    }
}

/* ---- carriers ---- */

typedef struct carrier_conf {
    const yconf_node_t *asns, *cidrs, *cidr_files;
} carrier_conf_t;

static const yconf_key_t carrier_table[] = {
    {"asns", YCONF_T_SEQ, offsetof(carrier_conf_t, asns), 0, 0, NULL, 0, NULL, NULL},
    {"cidrs", YCONF_T_SEQ, offsetof(carrier_conf_t, cidrs), 0, 0, NULL, 0, NULL, NULL},
    {"cidr_files", YCONF_T_NODE, offsetof(carrier_conf_t, cidr_files), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static bool name_ok(const char *s)
{
    if (*s == '\0') return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

static bool parse_asn(const char *s, uint32_t *out)
{
    if ((s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's')) s += 2;
    uint64_t v;
    if (yconf_str_to_u64(s, &v) != 0 || v == 0 || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

static void carriers_parse(geo_t *g, const yconf_node_t *map, diag_list_t *d)
{
    g->asn_carrier = geo__u32map_new();
    geo__u32map_t *asn_line = geo__u32map_new();
    size_t n = map ? map->u.map.n : 0;
    if (n > GEO_MAX_CARRIERS) {
        yconf_error(d, map, "geo.carriers: at most %u carriers", GEO_MAX_CARRIERS);
        n = 0;
    }
    g->carriers = arena_calloc(g->arena, n ? n : 1, sizeof(*g->carriers));
    g->ncarriers = n;
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *k = map->u.map.pairs[i].key;
        g->carriers[i] = arena_strdup(g->arena, k->u.scalar.str);
        if (!name_ok(k->u.scalar.str))
            yconf_error(d, k,
                        "geo.carriers: invalid carrier id '%s': use letters, digits, '_', '-' "
                        "and '.'",
                        k->u.scalar.str);
    }
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *v = map->u.map.pairs[i].value;
        char path[300];
        snprintf(path, sizeof(path), "geo.carriers.%s", g->carriers[i]);
        /* Whatever parsed is still checked, so one run lists every
         * problem. */
        carrier_conf_t cc = {0};
        yconf_apply(v, carrier_table, &cc, g->arena, d, path, NULL);
        uint16_t id = (uint16_t)i;
        for (size_t j = 0; cc.asns && j < cc.asns->u.seq.n; j++) {
            const yconf_node_t *a = cc.asns->u.seq.items[j];
            char ipath[340];
            snprintf(ipath, sizeof(ipath), "%s.asns[%zu]", path, j);
            uint32_t asn;
            if (a->kind != YCONF_SCALAR || !parse_asn(a->u.scalar.str, &asn)) {
                yconf_error(d, a, "%s: invalid AS number '%s': expected 1..4294967295 or ASnnn",
                            ipath, a->kind == YCONF_SCALAR ? a->u.scalar.str : "(not a scalar)");
                continue;
            }
            uint32_t prev = geo__u32map_get(g->asn_carrier, asn);
            if (prev != GEO__NOVAL) {
                yconf_error(d, a, "%s: AS%u already belongs to carrier '%s' (line %u)", ipath, asn,
                            g->carriers[prev], geo__u32map_get(asn_line, asn));
                continue;
            }
            geo__u32map_put(g->asn_carrier, asn, id);
            geo__u32map_put(asn_line, asn, a->pos.line);
        }
        for (size_t j = 0; cc.cidrs && j < cc.cidrs->u.seq.n; j++) {
            const yconf_node_t *c = cc.cidrs->u.seq.items[j];
            char ipath[340];
            snprintf(ipath, sizeof(ipath), "%s.cidrs[%zu]", path, j);
            if (!scalar_ok(d, c, ipath)) continue;
            geo__carrier_cidr_add(g, c->u.scalar.str, id, &c->pos, ipath, d);
        }
        if (cc.cidr_files) {
            const yconf_node_t *items[64];
            const char *paths[64];
            char fpath[340];
            snprintf(fpath, sizeof(fpath), "%s.cidr_files", path);
            size_t nf = string_list(g, cc.cidr_files, fpath, 64, items, paths, d);
            for (size_t j = 0; j < nf; j++)
                geo__cidr_file_load(g, geo__path(g, items[j]->u.scalar.str), items[j], paths[j], id,
                                    d);
        }
    }
    geo__u32map_free(asn_line);
}

static int ccidr_cmp(const void *pa, const void *pb)
{
    const geo__pfx_t *a = pa, *b = pb;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->prio < b->prio ? -1 : a->prio > b->prio;
}

/* The very same network listed for two carriers is an error at the later
 * place (nested networks are fine: the longest prefix wins). */
static void carriers_check_conflicts(geo_t *g, geo__pfxvec_t *set, diag_list_t *d)
{
    if (set->n < 2) return;
    qsort(set->v, set->n, sizeof(*set->v), ccidr_cmp);
    for (size_t i = 1; i < set->n; i++) {
        const geo__pfx_t *a = &set->v[i - 1], *b = &set->v[i];
        if (a->start != b->start || a->len != b->len || a->val == b->val) continue;
        const geo__ccidr_t *first = &g->ccidrs[a->prio], *second = &g->ccidrs[b->prio];
        char net[NETADDR_STRLEN];
        netaddr_format(&second->pfx, true, net, sizeof(net));
        diag_error(d, &second->pos,
                   "network %s is listed for carrier '%s' and already for carrier '%s' (%s:%u)",
                   net, g->carriers[second->carrier], g->carriers[first->carrier],
                   first->pos.file ? first->pos.file : "?", first->pos.line);
    }
}

/* ---- nets ---- */

typedef struct net_conf {
    const char *region, *carrier;
} net_conf_t;

static const yconf_key_t net_table[] = {
    {"region", YCONF_T_STR, offsetof(net_conf_t, region), 0, 0, NULL, 0, NULL, NULL},
    {"carrier", YCONF_T_STR, offsetof(net_conf_t, carrier), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void nets_parse(geo_t *g, const yconf_node_t *map, diag_list_t *d)
{
    size_t n = map ? map->u.map.n : 0;
    if (n > GEO_MAX_NETS) {
        yconf_error(d, map, "geo.nets: at most %u entries", GEO_MAX_NETS);
        return;
    }
    g->nets = arena_calloc(g->arena, n ? n : 1, sizeof(*g->nets));
    g->arena_bytes += n * sizeof(*g->nets);
    char rknown[512], cknown[512];
    known_list(g->regions, g->nregions, rknown, sizeof(rknown));
    known_list(g->carriers, g->ncarriers, cknown, sizeof(cknown));
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *k = map->u.map.pairs[i].key;
        const yconf_node_t *v = map->u.map.pairs[i].value;
        const char *key = k->u.scalar.str;
        char path[200];
        snprintf(path, sizeof(path), "geo.nets[\"%.120s\"]", key);
        netaddr_t pfx;
        const char *why;
        bool good = true;
        if (!geo__parse_cidr(key, &pfx, &why)) {
            yconf_error(d, k, "%s: invalid network '%s': %s", path, key, why);
            good = false;
        }
        const yconf_node_t *vn[3];
        net_conf_t nc = {0};
        if (yconf_is_null(v)) {
            yconf_error(d, v, "%s: sets neither region nor carrier", path);
            continue;
        }
        if (yconf_apply(v, net_table, &nc, g->arena, d, path, vn) != 0) continue;
        geo__net_t net = {.pfx = pfx,
                          .region = GEO_NONE,
                          .carrier = GEO_NONE,
                          .key = arena_strdup(g->arena, key),
                          .pos = k->pos};
        if (nc.region) {
            size_t r;
            for (r = 0; r < g->nregions; r++)
                if (strcmp(g->regions[r], nc.region) == 0) break;
            if (r == g->nregions) {
                yconf_error(d, vn[0], "%s.region: unknown region '%s' (known: %s)", path, nc.region,
                            rknown);
                good = false;
            } else {
                net.region = (uint16_t)r;
            }
        }
        if (nc.carrier) {
            size_t c;
            for (c = 0; c < g->ncarriers; c++)
                if (strcmp(g->carriers[c], nc.carrier) == 0) break;
            if (c == g->ncarriers) {
                yconf_error(d, vn[1], "%s.carrier: unknown carrier '%s' (known: %s)", path,
                            nc.carrier, cknown);
                good = false;
            } else {
                net.carrier = (uint16_t)c;
            }
        }
        if (!nc.region && !nc.carrier) {
            yconf_error(d, v, "%s: sets neither region nor carrier", path);
            continue;
        }
        if (!good) continue;
        /* The same network written twice (another spelling). */
        bool dup = false;
        for (size_t j = 0; j < g->nnets; j++) {
            const geo__net_t *o = &g->nets[j];
            if (o->pfx.family == pfx.family && o->pfx.bits == pfx.bits &&
                memcmp(o->pfx.addr, pfx.addr, 16) == 0) {
                yconf_error(d, k, "%s: the same network as \"%s\" (line %u)", path, o->key,
                            o->pos.line);
                dup = true;
                break;
            }
        }
        if (dup) continue;
        uint32_t idx = (uint32_t)g->nnets;
        g->nets[g->nnets++] = net;
        geo__pfxvec_push(pfx.family == 4 ? &g->nets4 : &g->nets6,
                         geo__addr_to_u128(pfx.addr, pfx.family), pfx.bits, idx, idx);
    }
}

/* ---- ASN records ---- */

uint32_t geo__asn_record(geo_t *g, uint32_t asn, const char *org, size_t orglen)
{
    if (g->asn_index == NULL) g->asn_index = geo__u32map_new();
    uint32_t idx = geo__u32map_get(g->asn_index, asn);
    if (idx != GEO__NOVAL) return idx;
    g->asnr = grow_array(g->asnr, g->nasnr, &g->capasnr, sizeof(*g->asnr), 1024);
    uint32_t car = g->asn_carrier ? geo__u32map_get(g->asn_carrier, asn) : GEO__NOVAL;
    idx = (uint32_t)g->nasnr;
    g->asnr[g->nasnr++] = (geo__asnrec_t){
        .asn = asn,
        .carrier = car == GEO__NOVAL ? GEO_NONE : (uint16_t)car,
        .org = geo__intern(g, org, orglen),
    };
    geo__u32map_put(g->asn_index, asn, idx);
    return idx;
}

/* ---- the section ---- */

typedef struct geo_conf {
    const yconf_node_t *city_db, *fields, *asn_db, *asn_fields, *asn_csv, *carriers, *nets;
    int format;
} geo_conf_t;

static const char *const formats[] = {"maxmind", "dbip", NULL};

static const yconf_key_t geo_table_keys[] = {
    {"city_db", YCONF_T_NODE, offsetof(geo_conf_t, city_db), 0, 0, NULL, 0, NULL, NULL},
    {"format", YCONF_T_ENUM, offsetof(geo_conf_t, format), 0, 0, "maxmind", 0, formats, NULL},
    {"fields", YCONF_T_MAP, offsetof(geo_conf_t, fields), 0, 0, NULL, 0, NULL, NULL},
    {"asn_db", YCONF_T_NODE, offsetof(geo_conf_t, asn_db), 0, 0, NULL, 0, NULL, NULL},
    {"asn_fields", YCONF_T_MAP, offsetof(geo_conf_t, asn_fields), 0, 0, NULL, 0, NULL, NULL},
    {"asn_csv", YCONF_T_NODE, offsetof(geo_conf_t, asn_csv), 0, 0, NULL, 0, NULL, NULL},
    {"carriers", YCONF_T_MAP, offsetof(geo_conf_t, carriers), 0, 0, NULL, 0, NULL, NULL},
    {"nets", YCONF_T_MAP, offsetof(geo_conf_t, nets), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct fields_conf {
    const yconf_node_t *f[GEO__NCITYF];
} fields_conf_t;

static const yconf_key_t city_fields_keys[] = {
    {"country", YCONF_T_NODE, offsetof(fields_conf_t, f[0]), 0, 0, NULL, 0, NULL, NULL},
    {"subdivision", YCONF_T_NODE, offsetof(fields_conf_t, f[1]), 0, 0, NULL, 0, NULL, NULL},
    {"city", YCONF_T_NODE, offsetof(fields_conf_t, f[2]), 0, 0, NULL, 0, NULL, NULL},
    {"latitude", YCONF_T_NODE, offsetof(fields_conf_t, f[3]), 0, 0, NULL, 0, NULL, NULL},
    {"longitude", YCONF_T_NODE, offsetof(fields_conf_t, f[4]), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const yconf_key_t asn_fields_keys[] = {
    {"asn", YCONF_T_NODE, offsetof(fields_conf_t, f[0]), 0, 0, NULL, 0, NULL, NULL},
    {"org", YCONF_T_NODE, offsetof(fields_conf_t, f[1]), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void add_dbs(geo_t *g, const yconf_node_t *n, const char *path, geo__kind_t kind,
                    diag_list_t *d)
{
    const yconf_node_t *items[GEO_MAX_FILES];
    const char *paths[GEO_MAX_FILES];
    size_t k = string_list(g, n, path, GEO_MAX_FILES, items, paths, d);
    for (size_t i = 0; i < k; i++) {
        geo__mmdb_t *m = &g->dbs[g->ndbs++];
        memset(m, 0, sizeof(*m));
        m->kind = kind;
        m->node = items[i];
        m->cfgpath = paths[i];
        m->path = geo__path(g, items[i]->u.scalar.str);
    }
}

static void build_free_temp(geo_t *g)
{
    for (size_t i = 0; i < g->ndbs; i++) {
        geo__u32map_free(g->dbs[i].cache);
        g->dbs[i].cache = NULL;
    }
    for (size_t i = 0; i < g->ncsvs; i++) {
        geo__pfxvec_free(&g->csvs[i].set4);
        geo__pfxvec_free(&g->csvs[i].set6);
    }
    geo__pfxvec_free(&g->nets4);
    geo__pfxvec_free(&g->nets6);
    geo__pfxvec_free(&g->cc4);
    geo__pfxvec_free(&g->cc6);
    geo__u32map_free(g->asn_index);
    geo__u32map_free(g->asn_carrier);
    g->asn_index = g->asn_carrier = NULL;
    strs_free(g);
}

int geo_build(const geo_config_in_t *in, arena_t *a, diag_list_t *d, geo_t **out)
{
    size_t errors_before = diag_errors(d);
    geo_t *g = calloc(1, sizeof(*g));
    if (g == NULL) return -ENOMEM;
    g->arena = a;
    g->base_dir = in->base_dir ? arena_strdup(a, in->base_dir) : NULL;

    if (in->nregions > GEO_MAX_REGIONS) {
        diag_error(d, NULL, "regions: at most %u regions", GEO_MAX_REGIONS);
        geo_free(g);
        return -EINVAL;
    }
    g->nregions = in->nregions;
    g->regions = arena_calloc(a, in->nregions ? in->nregions : 1, sizeof(*g->regions));
    for (size_t r = 0; r < in->nregions; r++)
        g->regions[r] = arena_strdup(a, in->regions[r].name ? in->regions[r].name : "");
    regions_parse(g, in, d);

    geo_conf_t c = {0};
    const yconf_node_t *section = in->section;
    if (section && yconf_is_null(section)) section = NULL;
    if (section)
        yconf_apply(section, geo_table_keys, &c, a, d, "geo", NULL);
    else
        c.format = 0;
    g->format = c.format;

    /* Field paths: the format's defaults, then the overrides. */
    for (int i = 0; i < GEO__NCITYF; i++)
        field_set_default(g, &g->cityf[i], city_field_names[i], city_defaults[g->format][i]);
    for (int i = 0; i < GEO__NASNF; i++)
        field_set_default(g, &g->asnf[i], asn_field_names[i], asn_defaults[i]);
    fields_conf_t fc = {0};
    if (c.fields) {
        yconf_apply(c.fields, city_fields_keys, &fc, a, d, "geo.fields", NULL);
        for (int i = 0; i < GEO__NCITYF; i++) {
            char p[64];
            snprintf(p, sizeof(p), "geo.fields.%s", city_field_names[i]);
            field_parse(g, &g->cityf[i], fc.f[i], p, d);
        }
    }
    memset(&fc, 0, sizeof(fc));
    if (c.asn_fields) {
        yconf_apply(c.asn_fields, asn_fields_keys, &fc, a, d, "geo.asn_fields", NULL);
        for (int i = 0; i < GEO__NASNF; i++) {
            char p[64];
            snprintf(p, sizeof(p), "geo.asn_fields.%s", asn_field_names[i]);
            field_parse(g, &g->asnf[i], fc.f[i], p, d);
        }
    }
    if (g->cityf[GEO__F_COUNTRY].nalts == 0)
        yconf_error(d, g->cityf[GEO__F_COUNTRY].node,
                    "geo.fields.country: cannot be null: the country is what a city database "
                    "is for");
    if (g->asnf[GEO__F_ASN].nalts == 0)
        yconf_error(d, g->asnf[GEO__F_ASN].node, "geo.asn_fields.asn: cannot be null");

    /* Carriers before anything that makes ASN records (they carry the
     * carrier of their ASN), nets after carriers (they name them). */
    carriers_parse(g, c.carriers, d);
    carriers_check_conflicts(g, &g->cc4, d);
    carriers_check_conflicts(g, &g->cc6, d);
    nets_parse(g, c.nets, d);

    g->dbs = calloc(2 * GEO_MAX_FILES, sizeof(*g->dbs));
    g->csvs = calloc(GEO_MAX_FILES, sizeof(*g->csvs));
    if (g->dbs == NULL || g->csvs == NULL) abort();
    add_dbs(g, c.city_db, "geo.city_db", GEO__KIND_CITY, d);
    add_dbs(g, c.asn_db, "geo.asn_db", GEO__KIND_ASN, d);
    for (size_t i = 0; i < g->ndbs; i++)
        geo__mmdb_open(g, &g->dbs[i], d);
    {
        const yconf_node_t *items[GEO_MAX_FILES];
        const char *paths[GEO_MAX_FILES];
        size_t k = string_list(g, c.asn_csv, "geo.asn_csv", GEO_MAX_FILES, items, paths, d);
        for (size_t i = 0; i < k; i++) {
            geo__csv_t *cv = &g->csvs[g->ncsvs++];
            cv->node = items[i];
            cv->cfgpath = paths[i];
            cv->path = geo__path(g, items[i]->u.scalar.str);
            geo__csv_load(g, cv, d);
        }
    }

    int rc = 0;
    if (diag_errors(d) > errors_before)
        rc = -EINVAL;
    else if ((rc = geo__table_build(g, d)) == 0 && diag_errors(d) > errors_before)
        rc = -EINVAL;
    build_free_temp(g);
    if (rc != 0) {
        geo_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void geo_free(geo_t *g)
{
    if (g == NULL) return;
    build_free_temp(g);
    for (size_t i = 0; i < g->ndbs; i++)
        if (g->dbs[i].open) MMDB_close(&g->dbs[i].db);
    free(g->dbs);
    for (size_t i = 0; i < g->ncsvs; i++) {
        free(g->csvs[i].rows4);
        free(g->csvs[i].rows6);
    }
    free(g->csvs);
    free(g->city);
    free(g->asnr);
    free(g->ccidrs);
    geo__table_free(g);
    free(g);
}

/* ---- carriers by id and name ---- */

size_t geo_carrier_count(const geo_t *g)
{
    return g ? g->ncarriers : 0;
}

const char *geo_carrier_name(const geo_t *g, uint16_t id)
{
    if (g == NULL || id >= g->ncarriers) return NULL;
    return g->carriers[id];
}

int geo_carrier_find(const geo_t *g, const char *name)
{
    if (g == NULL || name == NULL) return -1;
    for (size_t i = 0; i < g->ncarriers; i++)
        if (strcmp(g->carriers[i], name) == 0) return (int)i;
    return -1;
}
