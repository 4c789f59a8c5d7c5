/*
 * health_topo.c - `regions:`, `clusters:` and `health:` -> the immutable
 * topology (health_topo_t) with its two initial state tables.
 *
 * Owns nothing itself: everything it builds is allocated in the caller's
 * arena (the snapshot's) and lives as long as the snapshot.  Runs at
 * snapshot build time on one thread (check, serve and reload share it).
 * Flow: YAML tree (core/yconf) -> here -> topology -> the poller adopts it
 * (health_apply) and publishes states into its tables -> resolver.
 *
 * Settings are declared in yconf tables; unknown and duplicate keys, bad
 * values and cross references (an unknown region, a timeout longer than
 * the interval) are diagnostics at their own position, and building goes
 * on after each one so that a single run reports every problem.
 */
#include "health/health_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Settings tables                                                           */
/* ------------------------------------------------------------------------ */

static const char *check_country(const void *v)
{
    const char *s = *(const char *const *)v;
    if (strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z') return NULL;
    return "expected a two-letter ISO 3166 country code such as CN";
}

static const char *check_url(const void *v)
{
    const char *s = *(const char *const *)v;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
        return "expected an http:// or https:// URL";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "URL contains a blank or control character";
    if (strlen(s) > 2048) return "URL longer than 2048 bytes";
    return NULL;
}

static bool metric_name_ok(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

static const char *check_metric(const void *v)
{
    return metric_name_ok(*(const char *const *)v)
               ? NULL
               : "invalid metric name (expected [a-zA-Z_:][a-zA-Z0-9_:]*)";
}

static const char *check_field(const void *v)
{
    return health_json_path_valid(*(const char *const *)v)
               ? NULL
               : "invalid field path (expected names separated by '.', such as net.eth0.tx_bps)";
}

static const char *check_nonempty(const void *v)
{
    return **(const char *const *)v ? NULL : "must not be empty";
}

typedef struct region_cfg {
    double lat, lon;
    const char *country;
    const yconf_node_t *match;
    const yconf_node_t *neighbours;
} region_cfg_t;

static const yconf_key_t region_keys[] = {
    {"lat", YCONF_T_DOUBLE, offsetof(region_cfg_t, lat), -90, 90, NULL, YCONF_REQUIRED, NULL, NULL},
    {"lon", YCONF_T_DOUBLE, offsetof(region_cfg_t, lon), -180, 180, NULL, YCONF_REQUIRED, NULL,
     NULL},
    {"country", YCONF_T_STR, offsetof(region_cfg_t, country), 0, 0, NULL, 0, NULL, check_country},
    {"match", YCONF_T_NODE, offsetof(region_cfg_t, match), 0, 0, NULL, 0, NULL, NULL},
    {"neighbours", YCONF_T_SEQ, offsetof(region_cfg_t, neighbours), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct cluster_cfg {
    const char *region;
    const char *carrier;
    const yconf_node_t *entry;
    uint32_t weight;
    const yconf_node_t *servers;
} cluster_cfg_t;

enum { CL_REGION, CL_CARRIER, CL_ENTRY, CL_WEIGHT, CL_SERVERS };
static const yconf_key_t cluster_keys[] = {
    [CL_REGION] = {"region", YCONF_T_STR, offsetof(cluster_cfg_t, region), 0, 0, NULL,
                   YCONF_REQUIRED, NULL, check_nonempty},
    [CL_CARRIER] = {"carrier", YCONF_T_STR, offsetof(cluster_cfg_t, carrier), 0, 0, NULL,
                    YCONF_REQUIRED, NULL, check_nonempty},
    [CL_ENTRY] = {"entry", YCONF_T_NODE, offsetof(cluster_cfg_t, entry), 0, 0, NULL, YCONF_REQUIRED,
                  NULL, NULL},
    [CL_WEIGHT] = {"weight", YCONF_T_U32, offsetof(cluster_cfg_t, weight), 0, 1000000, "1", 0, NULL,
                   NULL},
    [CL_SERVERS] = {"servers", YCONF_T_MAP, offsetof(cluster_cfg_t, servers), 0, 0, NULL,
                    YCONF_REQUIRED, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct server_cfg {
    uint64_t capacity;
    const yconf_node_t *check;
} server_cfg_t;

static const yconf_key_t server_keys[] = {
    {"capacity", YCONF_T_BANDWIDTH, offsetof(server_cfg_t, capacity), 1000, 1e14, NULL,
     YCONF_REQUIRED, NULL, NULL},
    {"check", YCONF_T_MAP, offsetof(server_cfg_t, check), 0, 0, NULL, YCONF_REQUIRED, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const char *const kind_names[] = {"prometheus", "json", "tcp", "file", NULL};
static const char *const mode_names[] = {"counter", "gauge", NULL};
static const char *const unit_names[] = {"bytes", "bits", "kbits", "Mbits", "Gbits", NULL};
static const double unit_bits[] = {8, 1, 1e3, 1e6, 1e9};

typedef struct check_cfg {
    int kind;
    const char *url;
    const char *metric;
    const yconf_node_t *labels;
    const char *field;
    int mode;
    int unit;
    const char *address;
    const char *path;
    uint64_t interval_ms, timeout_ms, stale_after_ms;
} check_cfg_t;

#define CK_KIND                                                                                    \
    {                                                                                              \
        "kind", YCONF_T_ENUM, offsetof(check_cfg_t, kind), 0, 0, NULL, YCONF_REQUIRED, kind_names, \
            NULL                                                                                   \
    }
#define CK_URL                                                                                     \
    {                                                                                              \
        "url", YCONF_T_STR, offsetof(check_cfg_t, url), 0, 0, NULL, YCONF_REQUIRED, NULL,          \
            check_url                                                                              \
    }
#define CK_INTERVAL                                                                                \
    {                                                                                              \
        "interval", YCONF_T_DURATION, offsetof(check_cfg_t, interval_ms), 10, 3600000, NULL, 0,    \
            NULL, NULL                                                                             \
    }
#define CK_TIMEOUT                                                                                 \
    {                                                                                              \
        "timeout", YCONF_T_DURATION, offsetof(check_cfg_t, timeout_ms), 1, 3600000, NULL, 0, NULL, \
            NULL                                                                                   \
    }
#define CK_STALE                                                                                   \
    {                                                                                              \
        "stale_after", YCONF_T_DURATION, offsetof(check_cfg_t, stale_after_ms), 10, 86400000,      \
            NULL, 0, NULL, NULL                                                                    \
    }
#define CK_END                                                                                     \
    {                                                                                              \
        NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL                                                      \
    }

static const yconf_key_t prom_keys[] = {
    CK_KIND,
    CK_URL,
    {"metric", YCONF_T_STR, offsetof(check_cfg_t, metric), 0, 0, NULL, 0, NULL, check_metric},
    {"labels", YCONF_T_MAP, offsetof(check_cfg_t, labels), 0, 0, NULL, 0, NULL, NULL},
    {"mode", YCONF_T_ENUM, offsetof(check_cfg_t, mode), 0, 0, "counter", 0, mode_names, NULL},
    {"unit", YCONF_T_ENUM, offsetof(check_cfg_t, unit), 0, 0, "bytes", 0, unit_names, NULL},
    CK_INTERVAL,
    CK_TIMEOUT,
    CK_STALE,
    CK_END,
};

static const yconf_key_t json_keys[] = {
    CK_KIND,
    CK_URL,
    {"field", YCONF_T_STR, offsetof(check_cfg_t, field), 0, 0, "tx_bps", 0, NULL, check_field},
    {"mode", YCONF_T_ENUM, offsetof(check_cfg_t, mode), 0, 0, "gauge", 0, mode_names, NULL},
    {"unit", YCONF_T_ENUM, offsetof(check_cfg_t, unit), 0, 0, "bits", 0, unit_names, NULL},
    CK_INTERVAL,
    CK_TIMEOUT,
    CK_STALE,
    CK_END,
};

static const yconf_key_t tcp_keys[] = {
    CK_KIND,
    {"address", YCONF_T_STR, offsetof(check_cfg_t, address), 0, 0, NULL, YCONF_REQUIRED, NULL,
     NULL},
    CK_INTERVAL,
    CK_TIMEOUT,
    CK_STALE,
    CK_END,
};

static const yconf_key_t file_keys[] = {
    CK_KIND,
    {"path", YCONF_T_STR, offsetof(check_cfg_t, path), 0, 0, NULL, YCONF_REQUIRED, NULL,
     check_nonempty},
    CK_INTERVAL,
    CK_STALE,
    CK_END,
};

static const yconf_key_t *const kind_tables[] = {prom_keys, json_keys, tcp_keys, file_keys};

static const yconf_key_t health_keys[] = {
    {"interval", YCONF_T_DURATION, offsetof(health_settings_t, interval_ms), 10, 3600000, "1s", 0,
     NULL, NULL},
    {"timeout", YCONF_T_DURATION, offsetof(health_settings_t, timeout_ms), 0, 3600000, "0", 0, NULL,
     NULL},
    {"stale_after", YCONF_T_DURATION, offsetof(health_settings_t, stale_after_ms), 0, 86400000, "0",
     0, NULL, NULL},
    {"threshold", YCONF_T_PERCENT, offsetof(health_settings_t, threshold), 0.001, 10, "90%", 0,
     NULL, NULL},
    {"return_threshold", YCONF_T_PERCENT, offsetof(health_settings_t, return_threshold), 0, 10,
     NULL, 0, NULL, NULL},
    {"busy_after", YCONF_T_U32, offsetof(health_settings_t, busy_after), 1, 100, "1", 0, NULL,
     NULL},
    {"idle_after", YCONF_T_U32, offsetof(health_settings_t, idle_after), 1, 100, "2", 0, NULL,
     NULL},
    {"fall", YCONF_T_U32, offsetof(health_settings_t, fall), 1, 100, "3", 0, NULL, NULL},
    {"rise", YCONF_T_U32, offsetof(health_settings_t, rise), 1, 100, "2", 0, NULL, NULL},
    {"max_body", YCONF_T_U64, offsetof(health_settings_t, max_body), 1024, 268435456, "4194304", 0,
     NULL, NULL},
    {"admin_file", YCONF_T_STR, offsetof(health_settings_t, admin_file), 0, 0, NULL, 0, NULL,
     check_nonempty},
    {"admin_interval", YCONF_T_DURATION, offsetof(health_settings_t, admin_interval_ms), 10,
     3600000, "1s", 0, NULL, NULL},
    {"max_connections", YCONF_T_U32, offsetof(health_settings_t, max_connections), 0, 1000000, "0",
     0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* The node a table row received (yconf_apply's `nodes`), by key name. */
static const yconf_node_t *row_node(const yconf_key_t *table, const yconf_node_t *const *nodes,
                                    const char *name)
{
    for (size_t i = 0; table[i].name; i++)
        if (strcmp(table[i].name, name) == 0) return nodes[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct build {
    arena_t *a;
    diag_list_t *d;
    const char *base_dir;
    health_topo_t *t;
} build_t;

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > HEALTH__MAX_NAME) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool check_name(build_t *b, const yconf_node_t *key, const char *what)
{
    if (name_ok(key->u.scalar.str, key->u.scalar.len)) return true;
    yconf_error(b->d, key, "%s: invalid name '%s' (letters, digits, '-', '_' and '.', at most %u)",
                what, key->u.scalar.str, HEALTH__MAX_NAME);
    return false;
}

/* "beijing, guangzhou" - the known names for an error message. */
static void known_regions(const health_topo_t *t, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < t->n_regions; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", t->regions[i].name);
        if (w < 0 || (size_t)w >= size - used) {
            /* Cut at the last whole name. */
            if (used + 5 < size) snprintf(buf + used, size - used, ", ...");
            return;
        }
        used += (size_t)w;
    }
    if (t->n_regions == 0) snprintf(buf, size, "none");
}

static const char *resolve_path(build_t *b, const char *p)
{
    return arena_path(b->a, b->base_dir, p);
}

/* "192.0.2.1:80" or "[2001:db8::1]:80" */
static bool parse_hostport(const char *s, netaddr_t *addr, uint16_t *port)
{
    char host[NETADDR_STRLEN];
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') return false;
        size_t n = (size_t)(close - s - 1);
        if (n == 0 || n >= sizeof(host)) return false;
        memcpy(host, s + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) return false;
        size_t n = (size_t)(colon - s);
        if (n == 0 || n >= sizeof(host) || memchr(s, ':', n) != NULL) return false;
        memcpy(host, s, n);
        host[n] = '\0';
    }
    uint64_t p;
    if (yconf_str_to_u64(colon + 1, &p) != 0 || p == 0 || p > 65535) return false;
    netaddr_t a;
    if (netaddr_parse(host, &a) != 0) return false;
    *addr = a;
    *port = (uint16_t)p;
    return true;
}

/* ------------------------------------------------------------------------ */
/* health:                                                                   */
/* ------------------------------------------------------------------------ */

static void build_settings(build_t *b, const yconf_node_t *n)
{
    health_settings_t *s = &b->t->settings;
    memset(s, 0, sizeof(*s));
    s->return_threshold = -1; /* "not given": derived from the threshold below */
    const yconf_node_t *nodes[sizeof(health_keys) / sizeof(health_keys[0])];
    yconf_apply(n, health_keys, s, b->a, b->d, "health", nodes);
    const yconf_node_t *rn = row_node(health_keys, nodes, "return_threshold");
    if (s->return_threshold < 0) {
        s->return_threshold = s->threshold - 0.05;
        if (s->return_threshold < 0) s->return_threshold = 0;
    } else if (rn && s->return_threshold > s->threshold) {
        yconf_error(b->d, rn,
                    "health.return_threshold: %g%% is above the threshold %g%% (BUSY returns to "
                    "IDLE only below the return threshold)",
                    s->return_threshold * 100, s->threshold * 100);
        s->return_threshold = s->threshold;
    }
    /* A bad default is reported once, here, and replaced by the automatic
     * value so that it does not cascade into an error per check. */
    const yconf_node_t *tn = row_node(health_keys, nodes, "timeout");
    if (tn && s->timeout_ms > s->interval_ms) {
        yconf_error(b->d, tn, "health.timeout: %llums is longer than the interval %llums",
                    (unsigned long long)s->timeout_ms, (unsigned long long)s->interval_ms);
        s->timeout_ms = 0;
    }
    const yconf_node_t *sn = row_node(health_keys, nodes, "stale_after");
    if (sn && s->stale_after_ms && s->stale_after_ms < s->interval_ms) {
        yconf_error(b->d, sn, "health.stale_after: %llums is shorter than the interval %llums",
                    (unsigned long long)s->stale_after_ms, (unsigned long long)s->interval_ms);
        s->stale_after_ms = 0;
    }
    if (s->admin_file) s->admin_file = resolve_path(b, s->admin_file);
}

/* ------------------------------------------------------------------------ */
/* regions:                                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_dist(const void *x, const void *y)
{
    const double *a = x, *b = y;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static void build_regions(build_t *b, const yconf_node_t *n)
{
    health_topo_t *t = b->t;
    if (n == NULL || yconf_is_null(n)) return;
    if (!yconf_expect(b->d, n, YCONF_MAP, "regions")) return;
    if (n->u.map.n > HEALTH__MAX_REGIONS) {
        yconf_error(b->d, n, "regions: more than %u regions", HEALTH__MAX_REGIONS);
        return;
    }
    t->regions = arena_calloc(b->a, n->u.map.n ? n->u.map.n : 1, sizeof(*t->regions));
    const yconf_node_t **neigh = arena_calloc(b->a, n->u.map.n ? n->u.map.n : 1, sizeof(*neigh));
    char path[256];
    for (size_t i = 0; i < n->u.map.n; i++) {
        const yconf_node_t *key = n->u.map.pairs[i].key;
        const yconf_node_t *val = n->u.map.pairs[i].value;
        check_name(b, key, "regions");
        snprintf(path, sizeof(path), "regions.%s", key->u.scalar.str);
        region_cfg_t rc = {0};
        if (yconf_is_null(val) || val->kind != YCONF_MAP) {
            yconf_expect(b->d, val, YCONF_MAP, path);
        } else {
            yconf_apply(val, region_keys, &rc, b->a, b->d, path, NULL);
        }
        health_region_t *r = &t->regions[t->n_regions];
        r->name = key->u.scalar.str;
        r->lat = rc.lat;
        r->lon = rc.lon;
        r->country = rc.country;
        r->match = rc.match;
        r->node = val;
        r->name_node = key;
        neigh[t->n_regions] = rc.neighbours;
        t->n_regions++;
    }
    /* Neighbours refer to regions, so they are resolved once all exist. */
    char known[512];
    for (uint32_t i = 0; i < t->n_regions; i++) {
        health_region_t *r = &t->regions[i];
        const yconf_node_t *seq = neigh[i];
        if (seq == NULL || seq->u.seq.n == 0) continue;
        uint32_t *ids = arena_calloc(b->a, seq->u.seq.n, sizeof(*ids));
        uint32_t cnt = 0;
        for (size_t j = 0; j < seq->u.seq.n; j++) {
            const yconf_node_t *it = seq->u.seq.items[j];
            if (it->kind != YCONF_SCALAR) {
                yconf_error(b->d, it, "regions.%s.neighbours[%zu]: expected a region name, got %s",
                            r->name, j, it->kind == YCONF_MAP ? "a mapping" : "a sequence");
                continue;
            }
            int64_t id = health_topo_find_region(t, it->u.scalar.str);
            if (id < 0) {
                known_regions(t, known, sizeof(known));
                yconf_error(b->d, it, "regions.%s.neighbours[%zu]: unknown region '%s' (known: %s)",
                            r->name, j, it->u.scalar.str, known);
                continue;
            }
            if ((uint32_t)id == i) {
                yconf_error(b->d, it,
                            "regions.%s.neighbours[%zu]: a region is not its own neighbour",
                            r->name, j);
                continue;
            }
            bool dup = false;
            for (uint32_t k = 0; k < cnt; k++)
                dup = dup || ids[k] == (uint32_t)id;
            if (dup) {
                yconf_error(b->d, it, "regions.%s.neighbours[%zu]: '%s' is listed twice", r->name,
                            j, it->u.scalar.str);
                continue;
            }
            ids[cnt++] = (uint32_t)id;
        }
        r->neighbours = ids;
        r->n_neighbours = cnt;
    }
    /* The fallback order: explicit neighbours, then every other region by
     * great-circle distance (the patent's "nearest first"). */
    if (t->n_regions > 1) {
        double *tmp = malloc(sizeof(double) * 2 * t->n_regions);
        if (tmp == NULL) abort();
        for (uint32_t i = 0; i < t->n_regions; i++) {
            health_region_t *r = &t->regions[i];
            uint32_t *order = arena_calloc(b->a, t->n_regions - 1, sizeof(*order));
            uint32_t cnt = 0;
            for (uint32_t k = 0; k < r->n_neighbours; k++)
                order[cnt++] = r->neighbours[k];
            size_t m = 0;
            for (uint32_t j = 0; j < t->n_regions; j++) {
                bool listed = j == i;
                for (uint32_t k = 0; k < r->n_neighbours && !listed; k++)
                    listed = r->neighbours[k] == j;
                if (listed) continue;
                tmp[2 * m] = health_region_distance_km(r, &t->regions[j]);
                tmp[2 * m + 1] = j;
                m++;
            }
            qsort(tmp, m, 2 * sizeof(double), cmp_dist);
            for (size_t k = 0; k < m; k++)
                order[cnt++] = (uint32_t)tmp[2 * k + 1];
            r->fallback = order;
            r->n_fallback = cnt;
        }
        free(tmp);
    }
}

/* ------------------------------------------------------------------------ */
/* clusters: and their servers                                               */
/* ------------------------------------------------------------------------ */

static void build_labels(build_t *b, const yconf_node_t *labels, const char *path,
                         health_check_t *c)
{
    if (labels->u.map.n > HEALTH_PROM_MAX_MATCHERS) {
        yconf_error(b->d, labels, "%s.labels: more than %u label matchers", path,
                    HEALTH_PROM_MAX_MATCHERS);
        return;
    }
    const char **names = arena_calloc(b->a, labels->u.map.n + 1, sizeof(*names));
    const char **values = arena_calloc(b->a, labels->u.map.n + 1, sizeof(*values));
    uint32_t cnt = 0;
    for (size_t i = 0; i < labels->u.map.n; i++) {
        const yconf_node_t *k = labels->u.map.pairs[i].key;
        const yconf_node_t *v = labels->u.map.pairs[i].value;
        const char *ks = k->u.scalar.str;
        bool ok = (*ks >= 'a' && *ks <= 'z') || (*ks >= 'A' && *ks <= 'Z') || *ks == '_';
        for (const char *p = ks; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_';
        if (!ok || strlen(ks) != k->u.scalar.len) {
            yconf_error(b->d, k, "%s.labels: invalid label name '%s'", path, ks);
            continue;
        }
        if (v->kind != YCONF_SCALAR || yconf_is_null(v)) {
            yconf_error(b->d, v, "%s.labels.%s: expected a string value", path, ks);
            continue;
        }
        if (strlen(v->u.scalar.str) != v->u.scalar.len) {
            yconf_error(b->d, v, "%s.labels.%s: value contains a NUL byte", path, ks);
            continue;
        }
        names[cnt] = ks;
        values[cnt] = v->u.scalar.str;
        cnt++;
    }
    c->label_names = names;
    c->label_values = values;
    c->n_labels = cnt;
}

static void build_check(build_t *b, const yconf_node_t *n, const char *path, health_check_t *c)
{
    const health_settings_t *s = &b->t->settings;
    memset(c, 0, sizeof(*c));
    c->node = n;
    const yconf_node_t *kn = yconf_map_get(n, "kind");
    if (kn == NULL) {
        yconf_error(b->d, n,
                    "%s.kind: required setting missing (one of: prometheus, json, tcp, "
                    "file)",
                    path);
        return;
    }
    int kind = -1;
    char sub[560];
    snprintf(sub, sizeof(sub), "%s.kind", path);
    if (!yconf_parse_value(kn, YCONF_T_ENUM, 0, 0, kind_names, &kind, b->a, b->d, sub)) return;
    const yconf_key_t *table = kind_tables[kind];
    check_cfg_t cc = {.interval_ms = s->interval_ms,
                      .timeout_ms = s->timeout_ms,
                      .stale_after_ms = s->stale_after_ms};
    const yconf_node_t *nodes[16];
    bool clean = yconf_apply(n, table, &cc, b->a, b->d, path, nodes) == 0;
    c->kind = (health_check_kind_t)kind;
    c->interval_ms = cc.interval_ms;
    const yconf_node_t *in = row_node(table, nodes, "interval");
    const yconf_node_t *tn = row_node(table, nodes, "timeout");
    const yconf_node_t *sn = row_node(table, nodes, "stale_after");
    /* health.timeout 0 means "the check's interval". */
    c->timeout_ms = cc.timeout_ms ? cc.timeout_ms : cc.interval_ms;
    c->stale_after_ms = cc.stale_after_ms ? cc.stale_after_ms : 3 * cc.interval_ms;
    /* Cross checks only on values that parsed (no cascades); the error goes
     * where the check set a value, naming an inherited one as such. */
    if (clean && c->timeout_ms > c->interval_ms && (tn || in))
        yconf_error(b->d, tn ? tn : in,
                    "%s.%s: timeout %llums%s is longer than the interval %llums", path,
                    tn ? "timeout" : "interval", (unsigned long long)c->timeout_ms,
                    tn ? "" : " (from health.timeout)", (unsigned long long)c->interval_ms);
    if (clean && c->stale_after_ms < c->interval_ms && (sn || in))
        yconf_error(b->d, sn ? sn : in,
                    "%s.%s: stale_after %llums%s is shorter than the interval %llums", path,
                    sn ? "stale_after" : "interval", (unsigned long long)c->stale_after_ms,
                    sn ? "" : " (from health.stale_after)", (unsigned long long)c->interval_ms);
    switch (c->kind) {
    case HEALTH_CHECK_PROMETHEUS:
    case HEALTH_CHECK_JSON:
        c->url = cc.url;
        c->mode = (health_mode_t)cc.mode;
        c->unit = unit_names[cc.unit];
        c->unit_bits = unit_bits[cc.unit];
        if (c->kind == HEALTH_CHECK_JSON) {
            c->field = cc.field;
            break;
        }
        /* Without `metric:` and `labels:` the check reads node_exporter's
         * transmit counter of eth0; with a metric of its own, no label
         * matchers unless given. */
        if (cc.metric == NULL) {
            c->metric = "node_network_transmit_bytes_total";
            if (cc.labels == NULL) {
                static const char *const dn[] = {"device"}, *const dv[] = {"eth0"};
                c->label_names = dn;
                c->label_values = dv;
                c->n_labels = 1;
            }
        } else {
            c->metric = cc.metric;
        }
        if (cc.labels) build_labels(b, cc.labels, path, c);
        break;
    case HEALTH_CHECK_TCP:
        if (cc.address) {
            c->address = cc.address;
            if (!parse_hostport(cc.address, &c->addr, &c->port))
                yconf_error(b->d, row_node(table, nodes, "address"),
                            "%s.address: invalid address '%s' (expected IP:PORT or [IPv6]:PORT)",
                            path, cc.address);
        }
        break;
    case HEALTH_CHECK_FILE:
        if (cc.path) c->path = resolve_path(b, cc.path);
        break;
    }
}

static void build_entries(build_t *b, const yconf_node_t *n, const char *path, health_cluster_t *cl)
{
    const yconf_node_t *one[1];
    const yconf_node_t *const *items;
    size_t cnt;
    if (n->kind == YCONF_SCALAR && !yconf_is_null(n)) {
        one[0] = n;
        items = one;
        cnt = 1;
    } else if (n->kind == YCONF_SEQ) {
        items = n->u.seq.items;
        cnt = n->u.seq.n;
    } else {
        yconf_error(b->d, n, "%s.entry: expected an address or a list of addresses", path);
        return;
    }
    if (cnt == 0) {
        yconf_error(b->d, n, "%s.entry: at least one address is needed", path);
        return;
    }
    if (cnt > HEALTH__MAX_ENTRIES) {
        yconf_error(b->d, n, "%s.entry: more than %u addresses", path, HEALTH__MAX_ENTRIES);
        return;
    }
    uint8_t(*v4)[4] = arena_calloc(b->a, cnt, 4);
    uint8_t(*v6)[16] = arena_calloc(b->a, cnt, 16);
    uint32_t n4 = 0, n6 = 0;
    for (size_t i = 0; i < cnt; i++) {
        const yconf_node_t *it = items[i];
        char ipath[320];
        if (n->kind == YCONF_SEQ)
            snprintf(ipath, sizeof(ipath), "%s.entry[%zu]", path, i);
        else
            snprintf(ipath, sizeof(ipath), "%s.entry", path);
        netaddr_t a;
        if (it->kind != YCONF_SCALAR || strchr(it->u.scalar.str, '/') != NULL ||
            netaddr_parse(it->u.scalar.str, &a) != 0) {
            yconf_error(b->d, it, "%s: invalid address '%s' (expected an IPv4 or IPv6 address)",
                        ipath, it->kind == YCONF_SCALAR ? it->u.scalar.str : "(not a scalar)");
            continue;
        }
        bool dup = false;
        if (a.family == 4) {
            for (uint32_t k = 0; k < n4 && !dup; k++)
                dup = memcmp(v4[k], a.addr, 4) == 0;
            if (!dup) memcpy(v4[n4++], a.addr, 4);
        } else {
            for (uint32_t k = 0; k < n6 && !dup; k++)
                dup = memcmp(v6[k], a.addr, 16) == 0;
            if (!dup) memcpy(v6[n6++], a.addr, 16);
        }
        if (dup) yconf_error(b->d, it, "%s: address '%s' is listed twice", ipath, it->u.scalar.str);
    }
    cl->entry4 = (const uint8_t(*)[4])v4;
    cl->n_entry4 = n4;
    cl->entry6 = (const uint8_t(*)[16])v6;
    cl->n_entry6 = n6;
}

static void build_clusters(build_t *b, const yconf_node_t *n)
{
    health_topo_t *t = b->t;
    if (n == NULL || yconf_is_null(n)) return;
    if (!yconf_expect(b->d, n, YCONF_MAP, "clusters")) return;
    if (n->u.map.n > HEALTH__MAX_CLUSTERS) {
        yconf_error(b->d, n, "clusters: more than %u clusters", HEALTH__MAX_CLUSTERS);
        return;
    }
    /* Count servers first so the arrays are allocated once. */
    size_t total = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const yconf_node_t *sv = yconf_map_get(n->u.map.pairs[i].value, "servers");
        if (sv && sv->kind == YCONF_MAP) total += sv->u.map.n;
    }
    if (total > HEALTH__MAX_SERVERS) {
        yconf_error(b->d, n, "clusters: more than %u servers", HEALTH__MAX_SERVERS);
        return;
    }
    t->clusters = arena_calloc(b->a, n->u.map.n ? n->u.map.n : 1, sizeof(*t->clusters));
    t->servers = arena_calloc(b->a, total ? total : 1, sizeof(*t->servers));
    t->checks = arena_calloc(b->a, total ? total : 1, sizeof(*t->checks));
    char path[256], spath[400], known[512];
    for (size_t i = 0; i < n->u.map.n; i++) {
        const yconf_node_t *key = n->u.map.pairs[i].key;
        const yconf_node_t *val = n->u.map.pairs[i].value;
        check_name(b, key, "clusters");
        snprintf(path, sizeof(path), "clusters.%s", key->u.scalar.str);
        health_cluster_t *cl = &t->clusters[t->n_clusters];
        uint32_t cid = t->n_clusters++;
        cl->name = key->u.scalar.str;
        cl->node = val;
        cl->name_node = key;
        cl->first_server = t->n_servers;
        if (yconf_is_null(val) || val->kind != YCONF_MAP) {
            yconf_expect(b->d, val, YCONF_MAP, path);
            continue;
        }
        cluster_cfg_t cc = {0};
        const yconf_node_t *nodes[sizeof(cluster_keys) / sizeof(cluster_keys[0])];
        yconf_apply(val, cluster_keys, &cc, b->a, b->d, path, nodes);
        cl->weight = cc.weight;
        cl->carrier = cc.carrier;
        cl->carrier_node = nodes[CL_CARRIER];
        if (cc.region) {
            int64_t rid = health_topo_find_region(t, cc.region);
            if (rid < 0) {
                known_regions(t, known, sizeof(known));
                yconf_error(b->d, nodes[CL_REGION], "%s.region: unknown region '%s' (known: %s)",
                            path, cc.region, known);
            } else {
                cl->region = (uint32_t)rid;
            }
        }
        if (cc.entry) build_entries(b, cc.entry, path, cl);
        if (cc.servers == NULL) continue;
        if (cc.servers->u.map.n == 0)
            yconf_error(b->d, cc.servers, "%s.servers: at least one server is needed", path);
        for (size_t j = 0; j < cc.servers->u.map.n; j++) {
            const yconf_node_t *sk = cc.servers->u.map.pairs[j].key;
            const yconf_node_t *sv = cc.servers->u.map.pairs[j].value;
            snprintf(spath, sizeof(spath), "%s.servers", path);
            check_name(b, sk, spath);
            snprintf(spath, sizeof(spath), "%s.servers.%s", path, sk->u.scalar.str);
            uint32_t sid = t->n_servers++;
            health_server_t *srv = &t->servers[sid];
            health_check_t *chk = &t->checks[sid];
            srv->name = sk->u.scalar.str;
            srv->cluster = cid;
            srv->node = sv;
            srv->name_node = sk;
            srv->check = chk;
            chk->kind = HEALTH_CHECK_TCP;
            chk->interval_ms = t->settings.interval_ms;
            chk->timeout_ms = t->settings.interval_ms;
            chk->stale_after_ms = 3 * t->settings.interval_ms;
            if (yconf_is_null(sv) || sv->kind != YCONF_MAP) {
                yconf_expect(b->d, sv, YCONF_MAP, spath);
                continue;
            }
            server_cfg_t sc = {0};
            yconf_apply(sv, server_keys, &sc, b->a, b->d, spath, NULL);
            srv->capacity_bps = sc.capacity;
            cl->capacity_bps += sc.capacity;
            if (sc.check) {
                char cpath[480];
                snprintf(cpath, sizeof(cpath), "%s.check", spath);
                build_check(b, sc.check, cpath, chk);
            }
        }
        cl->n_servers = t->n_servers - cl->first_server;
    }
}

/* ------------------------------------------------------------------------ */
/* The topology                                                              */
/* ------------------------------------------------------------------------ */

void health__tables_init(health_topo_t *t, arena_t *a)
{
    for (int k = 0; k < 2; k++) {
        health_table_t *tb = &t->tables[k];
        tb->n_servers = t->n_servers;
        tb->n_clusters = t->n_clusters;
        tb->servers = arena_calloc(a, t->n_servers ? t->n_servers : 1, sizeof(*tb->servers));
        tb->clusters = arena_calloc(a, t->n_clusters ? t->n_clusters : 1, sizeof(*tb->clusters));
        atomic_init(&tb->pub_seq, 0);
        atomic_init(&tb->pub_ms, 0);
        for (uint32_t i = 0; i < t->n_servers; i++) {
            health_server_view_t *v = &tb->servers[i];
            atomic_init(&v->word, health__word(HEALTH_UNKNOWN, HEALTH_R_NONE,
                                               t->checks[i].kind == HEALTH_CHECK_TCP ||
                                                       t->checks[i].kind == HEALTH_CHECK_FILE
                                                   ? HEALTH_F_NO_RATE
                                                   : 0));
            atomic_init(&v->util_ppm, 0);
            atomic_init(&v->rate_bps, 0);
            atomic_init(&v->sample_ms, 0);
            atomic_init(&v->seq, 0);
        }
        for (uint32_t i = 0; i < t->n_clusters; i++) {
            health_cluster_view_t *v = &tb->clusters[i];
            atomic_init(&v->word, health__word(HEALTH_UNKNOWN, HEALTH_R_CLUSTER, 0));
            atomic_init(&v->util_ppm, 0);
            atomic_init(&v->n_idle, 0);
            atomic_init(&v->n_busy, 0);
            atomic_init(&v->n_down, 0);
            atomic_init(&v->n_unknown, t->clusters[i].n_servers);
            atomic_init(&v->rate_bps, 0);
            atomic_init(&v->sample_ms, 0);
            atomic_init(&v->seq, 0);
        }
    }
    atomic_init(&t->current, &t->tables[0]);
    atomic_init(&t->owner, NULL);
}

int health_topo_build(const health_config_in_t *in, arena_t *a, diag_list_t *d, health_topo_t **out)
{
    size_t before = diag_errors(d);
    health_topo_t *t = arena_calloc(a, 1, sizeof(*t));
    build_t b = {.a = a, .d = d, .base_dir = in->base_dir, .t = t};
    build_settings(&b, in->health);
    build_regions(&b, in->regions);
    build_clusters(&b, in->clusters);
    if (diag_errors(d) > before) return -EINVAL;
    health__tables_init(t, a);
    *out = t;
    return 0;
}

uint32_t health_topo_regions(const health_topo_t *t)
{
    return t->n_regions;
}

uint32_t health_topo_clusters(const health_topo_t *t)
{
    return t->n_clusters;
}

uint32_t health_topo_servers(const health_topo_t *t)
{
    return t->n_servers;
}

const health_region_t *health_topo_region(const health_topo_t *t, uint32_t id)
{
    return &t->regions[id];
}

const health_cluster_t *health_topo_cluster(const health_topo_t *t, uint32_t id)
{
    return &t->clusters[id];
}

const health_server_t *health_topo_server(const health_topo_t *t, uint32_t id)
{
    return &t->servers[id];
}

const health_settings_t *health_topo_settings(const health_topo_t *t)
{
    return &t->settings;
}

int64_t health_topo_find_region(const health_topo_t *t, const char *name)
{
    for (uint32_t i = 0; i < t->n_regions; i++)
        if (strcmp(t->regions[i].name, name) == 0) return i;
    return -1;
}

int64_t health_topo_find_cluster(const health_topo_t *t, const char *name)
{
    for (uint32_t i = 0; i < t->n_clusters; i++)
        if (strcmp(t->clusters[i].name, name) == 0) return i;
    return -1;
}

int64_t health_topo_find_server(const health_topo_t *t, uint32_t cluster, const char *name)
{
    if (cluster >= t->n_clusters) return -1;
    const health_cluster_t *c = &t->clusters[cluster];
    for (uint32_t i = c->first_server; i < c->first_server + c->n_servers; i++)
        if (strcmp(t->servers[i].name, name) == 0) return i;
    return -1;
}

double health_region_distance_km(const health_region_t *a, const health_region_t *b)
{
    const double rad = M_PI / 180.0, earth_km = 6371.0;
    double dlat = (b->lat - a->lat) * rad, dlon = (b->lon - a->lon) * rad;
    double h = sin(dlat / 2) * sin(dlat / 2) +
               cos(a->lat * rad) * cos(b->lat * rad) * sin(dlon / 2) * sin(dlon / 2);
    if (h > 1) h = 1;
    return 2 * earth_km * asin(sqrt(h));
}

const health_table_t *health_table_acquire(const health_topo_t *topo)
{
    return atomic_load_explicit(&((health_topo_t *)topo)->current, memory_order_acquire);
}
