/*
 * snap.c - configuration file -> snapshot (see snap.h).
 *
 * The main file's top level is a settings table; each section goes to the
 * room that owns it (zones -> zones/, ...), and this file joins their
 * results.  One validation path serves `check`, `serve` and reload.
 */
#include "resolver/snap.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/yconf.h"

typedef struct top {
    const yconf_node_t *server;
    const yconf_node_t *zones;
} top_t;

static const yconf_key_t top_table[] = {
    {"server", YCONF_T_MAP, offsetof(top_t, server), 0, 0, NULL, 0, NULL, NULL},
    {"zones", YCONF_T_SEQ, offsetof(top_t, zones), 0, 0, NULL, 0, NULL, NULL},
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

static void parse_server(const yconf_node_t *node, snap_t *s, diag_list_t *d)
{
    server_raw_t r = {0};
    yconf_apply(node, server_table, &r, s->arena, d, "server", NULL);
    snap_server_t *sv = &s->server;
    sv->port = r.port;
    sv->workers = r.workers;
    sv->max_udp_payload = r.max_udp_payload;
    sv->ecs = r.ecs;
    sv->ecs_max_v4 = r.ecs_max_v4;
    sv->ecs_max_v6 = r.ecs_max_v6;
    sv->control = r.control;
    sv->log_level = r.log_level;
    sv->max_config_bytes = r.max_config_bytes;
    sv->max_zones = r.max_zones;
    tcp_raw_t t = {0};
    yconf_apply(r.tcp, tcp_table, &t, s->arena, d, "server.tcp", NULL);
    sv->tcp_max_connections = t.max_connections;
    sv->tcp_idle_timeout_ms = t.idle_timeout_ms;
    sv->tcp_max_queries = t.max_queries;

    /* listen: an address or a list; default both loopbacks' wildcard
     * counterpart is too surprising, so the default is every IPv4 and IPv6
     * address (0.0.0.0 and ::), as NSD and Knot do. */
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
    char *dircopy = arena_strdup(s->arena, path);
    const char *base_dir = dirname(dircopy);

    const yconf_node_t *root = NULL;
    if (yconf_parse_file(s->arena, path, 0, d, &root) != 0) {
        snap_free(s);
        return -EINVAL;
    }
    top_t top = {0};
    yconf_apply(root, top_table, &top, s->arena, d, "", NULL);
    parse_server(top.server, s, d);

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

void snap_free(snap_t *s)
{
    if (s == NULL)
        return;
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
