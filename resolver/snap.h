/*
 * snap.h - one immutable configuration snapshot.
 *
 * A snapshot owns everything built from one configuration file, in one
 * arena: server settings, the zone database, the compiled answers (and, as
 * the rooms join, the geo classifier, the health topology and the resolver
 * plugin instances).  It is built off the query path (at start and on each
 * reload, in the libuv thread pool), validated in full, then published to
 * the workers with one atomic pointer swap (server.h) and freed once every
 * worker has passed a quiescent point.  Nothing in it is written after
 * snap_build returns.
 *
 * Flow: config file -> snap_build -> snapshot -> server_publish -> workers.
 */
#ifndef STEERDNS_RESOLVER_SNAP_H
#define STEERDNS_RESOLVER_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "geo/geo.h"
#include "health/health.h"
#include "resolver/answer.h"
#include "resolver/plugin.h"
#include "resolver/rrl.h"
#include "zones/zones.h"

#define SNAP_MAX_LISTEN 16

/* The `server:` section. */
typedef struct snap_server {
    netaddr_t listen[SNAP_MAX_LISTEN];
    size_t nlisten;
    uint32_t port;
    uint32_t workers;         /* 0 = one per CPU */
    uint32_t max_udp_payload; /* our EDNS size, RFC 6891; default 1232 */
    /* TCP (RFC 7766). */
    uint32_t tcp_max_connections; /* over all workers */
    uint64_t tcp_idle_timeout_ms;
    uint32_t tcp_max_queries; /* per connection, then close; 0 = no cap */
    /* EDNS Client Subnet (RFC 7871). */
    bool ecs;
    uint32_t ecs_max_v4, ecs_max_v6;
    const char *control; /* unix socket path for status/explain, or NULL */
    rrl_conf_t rrl;      /* response rate limiting (rate 0: off) */
    uint32_t rrl_table_size;
    const char *user;    /* drop privileges to this user after binding */
    const char *group;
    int log_level;
    uint64_t max_config_bytes;
    uint32_t max_zones;
} snap_server_t;

typedef struct snap {
    uint64_t generation;
    arena_t *arena;
    const char *path; /* the main configuration file */
    snap_server_t server;
    zones_t *zones;
    answer_db_t *answers;
    answer_env_t env; /* what answer_respond reads */
    geo_t *geo;                /* NULL without geo data */
    health_topo_t *topo;       /* NULL without regions and clusters */
    uint16_t *cluster_carrier; /* carrier id of each cluster (GEO_NONE: none) */
    plugin_inst_t **plugins;   /* every plugin instance, named and inline */
    size_t nplugins;
    size_t build_ms;
} snap_t;

/* Read only server.control from the configuration file at path (for the
 * status and explain clients), resolved against the file's folder.
 * Returns 0, -ENOENT when none is set, or another negative errno. */
int snap_read_control(const char *path, char *out, size_t size);

/* On reload (main thread, before s is published): every instance of s
 * that has the same plugin and name (path) as one of old takes over its
 * feedback state (the plugin's adopt hook). */
void snap_adopt_plugins(snap_t *s, const snap_t *old);

/* Run every plugin instance's update hook with the latest health table
 * (main thread, after each health publication). */
void snap_update_plugins(snap_t *s, uint64_t now_ms);

/* Build and validate a snapshot from the configuration file at path.
 * Every problem goes to d with its position.  Returns 0 and sets *out, or a
 * negative errno when anything is wrong (then nothing is returned: a half
 * valid configuration never serves).  Any thread; uses no global state. */
int snap_build(const char *path, diag_list_t *d, snap_t **out);

/* Free a snapshot and everything it owns.  Only when no worker can read it
 * any more (server.h).  NULL is ignored. */
void snap_free(snap_t *s);

/* True when two snapshots listen on the same addresses, port and worker
 * count (a reload cannot move sockets: that needs a restart). */
bool snap_same_listeners(const snap_t *a, const snap_t *b);

#endif
