/*
 * snap.c - configuration file -> snapshot (see snap.h).
 *
 * The main file's top level is a settings table; each section goes to the
 * room that owns it (zones -> zones/, ...), and this file joins their
 * results.  One validation path serves `check`, `serve` and reload.
 */
#include "resolver/snap.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/dname.h"
#include "core/yconf.h"

typedef struct top {
    const yconf_node_t *server;
    const yconf_node_t *zones;
    const yconf_node_t *geo;
    const yconf_node_t *regions;
    const yconf_node_t *clusters;
    const yconf_node_t *health;
    const yconf_node_t *resolvers;
} top_t;

static const yconf_key_t top_table[] = {
    {"server", YCONF_T_MAP, offsetof(top_t, server), 0, 0, NULL, 0, NULL, NULL},
    {"zones", YCONF_T_SEQ, offsetof(top_t, zones), 0, 0, NULL, 0, NULL, NULL},
    {"geo", YCONF_T_MAP, offsetof(top_t, geo), 0, 0, NULL, 0, NULL, NULL},
    {"regions", YCONF_T_MAP, offsetof(top_t, regions), 0, 0, NULL, 0, NULL, NULL},
    {"clusters", YCONF_T_MAP, offsetof(top_t, clusters), 0, 0, NULL, 0, NULL, NULL},
    {"health", YCONF_T_MAP, offsetof(top_t, health), 0, 0, NULL, 0, NULL, NULL},
    {"resolvers", YCONF_T_MAP, offsetof(top_t, resolvers), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct server_raw {
    const yconf_node_t *listen;
    uint32_t port;
    uint32_t workers;
    uint32_t max_udp_payload;
    const yconf_node_t *tcp;
    bool ecs;
    uint32_t ecs_max_v4, ecs_max_v6;
    const char *control;
    int log_level;
    uint64_t max_config_bytes;
    uint32_t max_zones;
    const yconf_node_t *rrl;
    const char *user, *group;
} server_raw_t;

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};

static const yconf_key_t server_table[] = {
    {"listen", YCONF_T_NODE, offsetof(server_raw_t, listen), 0, 0, NULL, 0, NULL, NULL},
    {"port", YCONF_T_U32, offsetof(server_raw_t, port), 0, 65535, "53", 0, NULL, NULL},
    {"workers", YCONF_T_U32, offsetof(server_raw_t, workers), 0, 256, "0", 0, NULL, NULL},
    {"max_udp_payload", YCONF_T_U32, offsetof(server_raw_t, max_udp_payload), 512, 4096, "1232", 0,
     NULL, NULL},
    {"tcp", YCONF_T_MAP, offsetof(server_raw_t, tcp), 0, 0, NULL, 0, NULL, NULL},
    {"ecs", YCONF_T_BOOL, offsetof(server_raw_t, ecs), 0, 0, "true", 0, NULL, NULL},
    {"ecs_max_prefix_v4", YCONF_T_U32, offsetof(server_raw_t, ecs_max_v4), 0, 32, "24", 0, NULL,
     NULL},
    {"ecs_max_prefix_v6", YCONF_T_U32, offsetof(server_raw_t, ecs_max_v6), 0, 128, "56", 0, NULL,
     NULL},
    {"control", YCONF_T_STR, offsetof(server_raw_t, control), 0, 0, NULL, 0, NULL, NULL},
    {"log_level", YCONF_T_ENUM, offsetof(server_raw_t, log_level), 0, 0, "info", 0, log_levels, NULL},
    {"max_config_bytes", YCONF_T_U64, offsetof(server_raw_t, max_config_bytes), 1024, 1e12,
     "67108864", 0, NULL, NULL},
    {"max_zones", YCONF_T_U32, offsetof(server_raw_t, max_zones), 1, 10000000, "10000", 0, NULL,
     NULL},
    {"rrl", YCONF_T_MAP, offsetof(server_raw_t, rrl), 0, 0, NULL, 0, NULL, NULL},
    {"user", YCONF_T_STR, offsetof(server_raw_t, user), 0, 0, NULL, 0, NULL, NULL},
    {"group", YCONF_T_STR, offsetof(server_raw_t, group), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct rrl_raw {
    uint32_t rate;
    uint64_t window_ms;
    uint32_t slip;
    uint32_t v4, v6;
    uint32_t table_size;
} rrl_raw_t;

static const yconf_key_t rrl_table[] = {
    {"rate", YCONF_T_U32, offsetof(rrl_raw_t, rate), 0, 1000000, "0", 0, NULL, NULL},
    {"window", YCONF_T_DURATION, offsetof(rrl_raw_t, window_ms), 1000, 3600000, "15s", 0, NULL,
     NULL},
    {"slip", YCONF_T_U32, offsetof(rrl_raw_t, slip), 0, 10, "2", 0, NULL, NULL},
    {"ipv4_prefix", YCONF_T_U32, offsetof(rrl_raw_t, v4), 0, 32, "24", 0, NULL, NULL},
    {"ipv6_prefix", YCONF_T_U32, offsetof(rrl_raw_t, v6), 0, 128, "56", 0, NULL, NULL},
    {"table_size", YCONF_T_U32, offsetof(rrl_raw_t, table_size), 1024, 16777216, "65536", 0,
     NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct tcp_raw {
    uint32_t max_connections;
    uint64_t idle_timeout_ms;
    uint32_t max_queries;
} tcp_raw_t;

static const yconf_key_t tcp_table[] = {
    {"max_connections", YCONF_T_U32, offsetof(tcp_raw_t, max_connections), 1, 1000000, "1024", 0,
     NULL, NULL},
    {"idle_timeout", YCONF_T_DURATION, offsetof(tcp_raw_t, idle_timeout_ms), 100, 3600000, "10s",
     0, NULL, NULL},
    {"max_queries", YCONF_T_U32, offsetof(tcp_raw_t, max_queries), 0, 1000000000, "0", 0, NULL,
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const char *resolve_path(arena_t *a, const char *base_dir, const char *p)
{
    return p ? arena_path(a, base_dir, p) : NULL;
}

/* The row of name in a settings table. */
static size_t table_row(const yconf_key_t *table, const char *name)
{
    size_t i = 0;
    while (table[i].name && strcmp(table[i].name, name) != 0)
        i++;
    return i;
}

/* server.user and server.group must name accounts of this host: checked
 * here, at their values, so that check and a reload refuse what serve's
 * privilege drop (main.c) would.  A group alone is an error rather than
 * applied or ignored: as with NSD's username and Knot's user[:group], the
 * group goes with dropping to a user, and changing only the group of a
 * process that stays root would protect nothing.  The _r lookups: a
 * reload builds in the thread pool. */
/* Whether the user (group false) or group (group true) name exists; the
 * buffer grows while the lookup says ERANGE. */
static bool account_exists(const char *name, bool group)
{
    size_t size = 16384;
    char *buf = NULL;
    bool found = false;
    int rc;
    do {
        char *nb = realloc(buf, size);
        if (nb == NULL)
            break;
        buf = nb;
        if (group) {
            struct group gr, *g = NULL;
            rc = getgrnam_r(name, &gr, buf, size, &g);
            found = g != NULL;
        } else {
            struct passwd pw, *u = NULL;
            rc = getpwnam_r(name, &pw, buf, size, &u);
            found = u != NULL;
        }
        size *= 2;
    } while (rc == ERANGE && size <= (1u << 24));
    free(buf);
    return found;
}

static void check_accounts(const server_raw_t *r, const yconf_node_t *user_node,
                           const yconf_node_t *group_node, diag_list_t *d)
{
    if (r->user && !account_exists(r->user, false))
        yconf_error(d, user_node, "server.user: no such user '%s'", r->user);
    if (r->group && user_node == NULL)
        yconf_error(d, group_node,
                    "server.group: set without server.user (the group is applied only when dropping privileges to server.user)");
    else if (r->group && !account_exists(r->group, true))
        yconf_error(d, group_node, "server.group: no such group '%s'", r->group);
}

static void parse_server(const yconf_node_t *node, snap_t *s, diag_list_t *d, const char *base_dir)
{
    server_raw_t r = {0};
    const yconf_node_t *given[sizeof(server_table) / sizeof(server_table[0])] = {NULL};
    yconf_apply(node, server_table, &r, s->arena, d, "server", given);
    check_accounts(&r, given[table_row(server_table, "user")],
                   given[table_row(server_table, "group")], d);
    snap_server_t *sv = &s->server;
    sv->port = r.port;
    sv->workers = r.workers;
    sv->max_udp_payload = r.max_udp_payload;
    sv->ecs = r.ecs;
    sv->ecs_max_v4 = r.ecs_max_v4;
    sv->ecs_max_v6 = r.ecs_max_v6;
    sv->control = resolve_path(s->arena, base_dir, r.control);
    sv->log_level = r.log_level;
    sv->max_config_bytes = r.max_config_bytes;
    sv->max_zones = r.max_zones;
    sv->user = r.user;
    sv->group = r.group;
    rrl_raw_t rr = {0};
    yconf_apply(r.rrl, rrl_table, &rr, s->arena, d, "server.rrl", NULL);
    sv->rrl = (rrl_conf_t){rr.rate, (uint32_t)(rr.window_ms / 1000), rr.slip, (uint8_t)rr.v4,
                           (uint8_t)rr.v6};
    sv->rrl_table_size = rr.table_size;
    tcp_raw_t t = {0};
    yconf_apply(r.tcp, tcp_table, &t, s->arena, d, "server.tcp", NULL);
    sv->tcp_max_connections = t.max_connections;
    sv->tcp_idle_timeout_ms = t.idle_timeout_ms;
    sv->tcp_max_queries = t.max_queries;

    /* listen: an address or a list; by default every IPv4 and IPv6
     * address (0.0.0.0 and ::), as NSD does; wildcard sockets answer from
     * the address that was asked (IP_PKTINFO). */
    const yconf_node_t *l = r.listen;
    if (l == NULL || yconf_is_null(l)) {
        netaddr_parse("0.0.0.0", &sv->listen[0]);
        netaddr_parse("::", &sv->listen[1]);
        sv->nlisten = 2;
        return;
    }
    const yconf_node_t *one[1] = {l};
    const yconf_node_t *const *items = one;
    size_t n = 1;
    if (l->kind == YCONF_SEQ) {
        items = l->u.seq.items;
        n = l->u.seq.n;
    }
    for (size_t i = 0; i < n; i++) {
        const yconf_node_t *it = items[i];
        netaddr_t a;
        if (it->kind != YCONF_SCALAR || netaddr_parse(it->u.scalar.str, &a) != 0) {
            yconf_error(d, it, "server.listen: '%s' is not an IPv4 or IPv6 address",
                        it->kind == YCONF_SCALAR ? it->u.scalar.str : "?");
            continue;
        }
        if (sv->nlisten == SNAP_MAX_LISTEN) {
            yconf_error(d, it, "server.listen: at most %d addresses", SNAP_MAX_LISTEN);
            break;
        }
        for (size_t k = 0; k < sv->nlisten; k++)
            if (memcmp(&sv->listen[k], &a, sizeof(a)) == 0)
                yconf_error(d, it, "server.listen: '%s' is listed twice", it->u.scalar.str);
        sv->listen[sv->nlisten++] = a;
    }
}

/* The carriers geo declares, for messages. */
static void carrier_list(const geo_t *g, char *buf, size_t size)
{
    buf[0] = '\0';
    size_t o = 0;
    size_t n = geo_carrier_count(g);
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", geo_carrier_name(g, (uint16_t)i));
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (n == 0)
        snprintf(buf, size, "none: declare them in geo.carriers");
}

/* Clusters name carriers; geo declares them: join the two. */
static void map_carriers(snap_t *s, diag_list_t *d)
{
    uint32_t n = s->topo ? health_topo_clusters(s->topo) : 0;
    s->cluster_carrier = arena_calloc(s->arena, n ? n : 1, sizeof(uint16_t));
    for (uint32_t i = 0; i < n; i++) {
        const health_cluster_t *cl = health_topo_cluster(s->topo, i);
        s->cluster_carrier[i] = GEO_NONE;
        if (cl->carrier == NULL)
            continue;
        int id = geo_carrier_find(s->geo, cl->carrier);
        if (id < 0) {
            char known[512];
            carrier_list(s->geo, known, sizeof(known));
            yconf_error(d, cl->carrier_node, "clusters.%s.carrier: unknown carrier '%s' (known: %s)",
                        cl->name, cl->carrier, known);
            continue;
        }
        s->cluster_carrier[i] = (uint16_t)id;
    }
    size_t nz = s->zones ? zones_count(s->zones) : 0;
    uint16_t *zc = arena_calloc(s->arena, nz ? nz : 1, sizeof(uint16_t));
    s->env.zone_carrier = zc;
    for (size_t z = 0; z < nz; z++) {
        const zones_zone_t *zz = zones_get(s->zones, z);
        int id = zz->carrier ? geo_carrier_find(s->geo, zz->carrier) : -1;
        zc[z] = id >= 0 ? (uint16_t)id : GEO_NONE;
        if (zz->carrier && id < 0) {
            char known[512];
            carrier_list(s->geo, known, sizeof(known));
            yconf_error(d, zz->carrier_node, "zone carrier: unknown carrier '%s' (known: %s)",
                        zz->carrier, known);
        }
    }
}

static plugin_inst_t *new_instance(snap_t *s, const plugin_desc_t *desc, const yconf_node_t *cfg,
                                   const char *path, const plugin_env_t *env, diag_list_t *d)
{
    plugin_inst_t *pi = arena_calloc(s->arena, 1, sizeof(*pi));
    pi->desc = desc;
    pi->path = arena_strdup(s->arena, path);
    if (desc->create(env, cfg, pi->path, s->arena, d, &pi->inst, &pi->decl) != 0)
        return NULL;
    if (pi->decl.nsets == 0 || pi->decl.nsets > PLUGIN_MAX_SETS) {
        yconf_error(d, cfg, "%s: the plugin declared %u answer sets", path, pi->decl.nsets);
        return NULL;
    }
    s->plugins[s->nplugins++] = pi;
    return pi;
}

typedef struct named {
    const char *plugin, *name;
    plugin_inst_t *pi;
} named_t;

typedef struct plugin_walk {
    snap_t *s;
    diag_list_t *d;
    const named_t *named;
    size_t nn;
    const plugin_env_t *env;
} plugin_walk_t;

/* One name that uses a plugin: `app: {steer: downloads}` refers to the
 * named instance resolvers.steer.downloads; `img: {weighted: {...}}` is an
 * inline configuration (an instance of its own). */
static void plugin_visit(void *ctx, const zones_node_t *n)
{
    plugin_walk_t *w = ctx;
    if (n->resolver == NULL)
        return;
    const yconf_node_t *ref = n->resolver;
    char owner[DNAME_STRLEN];
    dname_to_str(n->name, owner, sizeof(owner));
    if (ref->u.map.n != 1) {
        yconf_error(w->d, ref, "'%s': a resolver is one plugin name and its settings, such as {steer: downloads} (plugins: %s)",
                    owner, plugin_names());
        return;
    }
    const yconf_node_t *k = ref->u.map.pairs[0].key;
    const yconf_node_t *v = ref->u.map.pairs[0].value;
    const plugin_desc_t *desc = plugin_find(k->u.scalar.str);
    if (desc == NULL) {
        yconf_error(w->d, k, "'%s': unknown plugin '%s' (known: %s)", owner, k->u.scalar.str,
                    plugin_names());
        return;
    }
    const plugin_inst_t *pi = NULL;
    bool by_name = v->kind == YCONF_SCALAR && !yconf_is_null(v);
    if (by_name && strcmp(desc->name, "static") == 0) {
        /* static's short form is an address: a scalar names an instance
         * only when resolvers.static.NAME is defined. */
        by_name = false;
        for (size_t i = 0; i < w->nn && !by_name; i++)
            by_name = strcmp(w->named[i].plugin, "static") == 0 &&
                      strcmp(w->named[i].name, v->u.scalar.str) == 0;
    }
    if (by_name) {
        bool found = false;
        for (size_t i = 0; i < w->nn && !found; i++)
            if (strcmp(w->named[i].plugin, desc->name) == 0 &&
                strcmp(w->named[i].name, v->u.scalar.str) == 0) {
                pi = w->named[i].pi;
                found = true;
            }
        if (!found) {
            char known[512] = "";
            size_t o = 0;
            for (size_t i = 0; i < w->nn && o + 2 < sizeof(known); i++) {
                if (strcmp(w->named[i].plugin, desc->name) != 0)
                    continue;
                int x = snprintf(known + o, sizeof(known) - o, "%s%s", o ? ", " : "", w->named[i].name);
                if (x > 0)
                    o += (size_t)x;
            }
            yconf_error(w->d, v, "'%s': no resolvers.%s.%s is defined (defined: %s)", owner,
                        desc->name, v->u.scalar.str, o ? known : "none");
            return;
        }
        if (pi == NULL)
            return; /* the named instance's own errors are reported already */
    } else {
        char path[DNAME_STRLEN + 64];
        snprintf(path, sizeof(path), "%s %s", owner, desc->name);
        pi = new_instance(w->s, desc, v, path, w->env, w->d);
        if (pi == NULL)
            return;
    }
    answer_compile_plugin(w->s->answers, n, pi, w->s->arena, w->d);
}

/* Create the named instances (resolvers.PLUGIN.NAME), then the inline ones
 * of the names that use a plugin, and compile their answers. */
static void build_plugins(snap_t *s, const yconf_node_t *resolvers, diag_list_t *d)
{
    plugin_env_t env = {
        .geo = s->geo,
        .topo = s->topo,
        .cluster_carrier = s->cluster_carrier,
        .ecs_max_v4 = s->server.ecs_max_v4,
        .ecs_max_v6 = s->server.ecs_max_v6,
    };
    size_t nnamed = 0;
    if (resolvers)
        for (size_t i = 0; i < resolvers->u.map.n; i++) {
            const yconf_node_t *v = resolvers->u.map.pairs[i].value;
            if (v->kind == YCONF_MAP)
                nnamed += v->u.map.n;
        }
    s->plugins = arena_calloc(s->arena, zones_node_count(s->zones) + nnamed + 1, sizeof(*s->plugins));
    named_t *named = arena_calloc(s->arena, nnamed ? nnamed : 1, sizeof(named_t));
    size_t nn = 0;
    for (size_t i = 0; resolvers && i < resolvers->u.map.n; i++) {
        const yconf_node_t *k = resolvers->u.map.pairs[i].key;
        const yconf_node_t *v = resolvers->u.map.pairs[i].value;
        const plugin_desc_t *desc = plugin_find(k->u.scalar.str);
        if (desc == NULL) {
            yconf_error(d, k, "resolvers: unknown plugin '%s' (known: %s)", k->u.scalar.str,
                        plugin_names());
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "resolvers.%s", k->u.scalar.str);
        if (!yconf_expect(d, v, YCONF_MAP, path))
            continue;
        for (size_t j = 0; j < v->u.map.n; j++) {
            const yconf_node_t *nk = v->u.map.pairs[j].key;
            snprintf(path, sizeof(path), "resolvers.%s.%s", k->u.scalar.str, nk->u.scalar.str);
            plugin_inst_t *pi = new_instance(s, desc, v->u.map.pairs[j].value, path, &env, d);
            named[nn++] = (named_t){desc->name, nk->u.scalar.str, pi};
        }
    }
    plugin_walk_t w = {s, d, named, nn, &env};
    zones_foreach_node(s->zones, plugin_visit, &w);
}

void snap_adopt_plugins(snap_t *s, const snap_t *old)
{
    for (size_t i = 0; i < s->nplugins; i++) {
        plugin_inst_t *pi = s->plugins[i];
        if (pi->desc->adopt == NULL)
            continue;
        for (size_t k = 0; k < old->nplugins; k++) {
            const plugin_inst_t *po = old->plugins[k];
            if (po->desc == pi->desc && strcmp(po->path, pi->path) == 0) {
                pi->desc->adopt(pi->inst, po->inst);
                break;
            }
        }
    }
}

void snap_update_plugins(snap_t *s, uint64_t now_ms)
{
    if (s->topo == NULL)
        return;
    plugin_update_t u = {health_table_acquire(s->topo), now_ms};
    for (size_t i = 0; i < s->nplugins; i++)
        if (s->plugins[i]->desc->update)
            s->plugins[i]->desc->update(s->plugins[i]->inst, &u);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int snap_build(const char *path, diag_list_t *d, snap_t **out)
{
    uint64_t t0 = now_ms();
    size_t before = diag_errors(d);
    snap_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->arena = arena_new();
    s->path = arena_strdup(s->arena, path);
    /* Files named relative to a configuration in the current folder keep
     * their own names ("zones/a.yaml", not "./zones/a.yaml") in messages. */
    char *dircopy = arena_strdup(s->arena, path);
    const char *base_dir = dirname(dircopy);
    if (strcmp(base_dir, ".") == 0)
        base_dir = "";

    const yconf_node_t *root = NULL;
    if (yconf_parse_file(s->arena, path, 0, d, &root) != 0) {
        snap_free(s);
        return -EINVAL;
    }
    top_t top = {0};
    yconf_apply(root, top_table, &top, s->arena, d, "", NULL);
    parse_server(top.server, s, d, base_dir);
    /* The main file was read under the default cap (its own limit is in
     * it); hold it to the limit it sets, as every other file is. */
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size > s->server.max_config_bytes)
        diag_error(d, &(diag_pos_t){path, 0, 0},
                   "file larger than the limit of %" PRIu64 " bytes (server.max_config_bytes)",
                   s->server.max_config_bytes);

    /* Regions, clusters and servers (health), then the classifier (geo),
     * which needs the regions' names and match keys, then the carriers
     * clusters name, checked against geo's. */
    bool topo_failed = false;
    if (top.regions || top.clusters || top.health) {
        health_config_in_t hin = {top.regions, top.clusters, top.health, base_dir};
        topo_failed = health_topo_build(&hin, s->arena, d, &s->topo) != 0;
    }
    /* Without a valid topology, geo's region references and the plugins'
     * cluster references would only repeat its errors in other words:
     * they are checked once the topology is right. */
    if (!topo_failed) {
        uint32_t nr = s->topo ? health_topo_regions(s->topo) : 0;
        geo_region_def_t *defs = arena_calloc(s->arena, nr ? nr : 1, sizeof(*defs));
        for (uint32_t i = 0; i < nr; i++) {
            const health_region_t *r = health_topo_region(s->topo, i);
            defs[i] = (geo_region_def_t){r->name, r->match};
        }
        geo_config_in_t gin = {top.geo, defs, nr, base_dir};
        if (top.geo || nr > 0)
            geo_build(&gin, s->arena, d, &s->geo);
    }

    zones_config_in_t zin = {
        .zones = top.zones,
        .base_dir = base_dir,
        .max_zones = s->server.max_zones,
        .max_file_bytes = (size_t)s->server.max_config_bytes,
    };
    if (top.zones == NULL)
        diag_warn(d, &root->pos, "no zones: every query will be refused");
    if (zones_build(&zin, s->arena, d, &s->zones) == 0)
        answer_compile(s->zones, s->arena, d, &s->answers);
    if (!topo_failed) {
        map_carriers(s, d);
        if (s->answers)
            build_plugins(s, top.resolvers, d);
    }

    if (diag_errors(d) > before || s->zones == NULL || s->answers == NULL) {
        snap_free(s);
        return -EINVAL;
    }
    s->env.zones = s->zones;
    s->env.answers = s->answers;
    s->env.max_udp_payload = (uint16_t)s->server.max_udp_payload;
    s->env.ecs = s->server.ecs;
    s->env.ecs_max_v4 = (uint8_t)s->server.ecs_max_v4;
    s->env.ecs_max_v6 = (uint8_t)s->server.ecs_max_v6;
    s->build_ms = (size_t)(now_ms() - t0);
    *out = s;
    return 0;
}

int snap_read_control(const char *path, char *out, size_t size)
{
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const yconf_node_t *root;
    int rc = yconf_parse_file(a, path, 0, &d, &root);
    if (rc == 0) {
        const yconf_node_t *c = yconf_map_get(yconf_map_get(root, "server"), "control");
        if (c == NULL || c->kind != YCONF_SCALAR || yconf_is_null(c)) {
            rc = -ENOENT;
        } else {
            char *dircopy = arena_strdup(a, path);
            snprintf(out, size, "%s", resolve_path(a, dirname(dircopy), c->u.scalar.str));
        }
    }
    diag_clear(&d);
    arena_free(a);
    return rc;
}

void snap_free(snap_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nplugins; i++)
        if (s->plugins[i]->desc->destroy)
            s->plugins[i]->desc->destroy(s->plugins[i]->inst);
    geo_free(s->geo);
    arena_free(s->arena);
    free(s);
}

bool snap_same_listeners(const snap_t *a, const snap_t *b)
{
    if (a->server.nlisten != b->server.nlisten || a->server.port != b->server.port ||
        a->server.workers != b->server.workers)
        return false;
    for (size_t i = 0; i < a->server.nlisten; i++)
        if (memcmp(&a->server.listen[i], &b->server.listen[i], sizeof(netaddr_t)) != 0)
            return false;
    return true;
}
