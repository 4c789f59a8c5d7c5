/*
 * plugin.h - the resolver plugin interface: how a name's A/AAAA answer is
 * chosen per query (steer, weighted, failover, static).
 *
 * A plugin is one const descriptor (ABI version, name, callbacks) and one
 * line in the registry (resolver/plugins/registry.c), as gdnsd's plugapi
 * does, but with no process-global state: every instance belongs to a
 * snapshot, so a reload can change any plugin setting.
 *
 *   create   snapshot build: parse the instance's YAML (report diagnostics at
 *            their positions), resolve every name it uses to an id, allocate
 *            from the snapshot arena, and declare the answer sets it may
 *            choose from.  The resolver precompiles each set's A and AAAA
 *            answers to wire format for every name that uses the instance.
 *   resolve  per query, on any worker: bounded, non-blocking, allocation-
 *            free, no shared writes; read health once; return which set,
 *            the TTL and the ECS scope.
 *   explain  the same decision with a trace sink (`steerdns explain`), so an
 *            explanation can never disagree with a real answer.
 *   update   optional, main thread only: after each health publication
 *            (controllers that feed back on measurements keep their state
 *            here and publish it to resolve with an atomic pointer).
 *   adopt    optional, main thread only: on a reload, before the new
 *            snapshot is published, take over the feedback state of the same
 *            instance (same plugin and name) in the snapshot it replaces, so a
 *            reload does not reset a controller.
 *   destroy  optional: release what is not in the arena.
 *
 * A name uses a plugin in a zone's records (docs/plugins.md):
 *     app: {steer: downloads}          named instance resolvers.steer.downloads
 *     img: {weighted: {192.0.2.1: 3, 192.0.2.2: 1}}     inline configuration
 */
#ifndef STEERDNS_RESOLVER_PLUGIN_H
#define STEERDNS_RESOLVER_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"
#include "geo/geo.h"
#include "health/health.h"
#include "zones/zones.h"

#define PLUGIN_ABI_VERSION 1
#define PLUGIN_MAX_SETS 65535

/* What the snapshot offers a plugin at create time. */
typedef struct plugin_env {
    const geo_t *geo;                /* classifier; NULL without a geo: section */
    const health_topo_t *topo;       /* clusters and their states; NULL without clusters */
    const uint16_t *cluster_carrier; /* carrier id of each cluster (GEO_NONE: none) */
    uint32_t ecs_max_v4, ecs_max_v6; /* server caps on ECS bits (for scopes) */
} plugin_env_t;

/* One answer a plugin may give: the addresses of its A and AAAA answers
 * (either list may be empty: that type then gets NODATA). */
typedef struct plugin_set {
    const uint8_t (*v4)[4];
    uint32_t n4;
    const uint8_t (*v6)[16];
    uint32_t n6;
} plugin_set_t;

/* What create declares. */
typedef struct plugin_decl {
    const plugin_set_t *sets;
    uint32_t nsets;
    uint32_t ttl; /* TTL compiled into the answers; resolve may lower it per query */
} plugin_decl_t;

/* One query, as a plugin sees it. */
typedef struct plugin_query {
    netaddr_t client;  /* ECS address (masked to the bits used) or the source address */
    bool ecs;          /* client came from an ECS option with SOURCE > 0 */
    uint16_t qtype;    /* ZONES_TYPE_A or ZONES_TYPE_AAAA */
    const zones_zone_t *zone; /* the zone of the name */
    uint16_t zone_carrier;    /* the carrier the zone declares (`carrier:`), or GEO_NONE */
    const zones_node_t *node; /* the name */
    uint64_t *rng;     /* the worker's random state (xorshift64*), never 0 */
    uint64_t *turn;    /* the worker's round-robin counter: take a turn with (*turn)++ */
    uint64_t now_ms;   /* health_clock_ms() of the batch */
} plugin_query_t;

typedef struct plugin_result {
    uint32_t set;  /* index of the declared set to answer with */
    uint32_t ttl;  /* TTL to put in the answer (<= the declared TTL) */
    uint8_t scope; /* ECS SCOPE PREFIX-LENGTH: the prefix the decision depended on (0: none) */
} plugin_result_t;

/* Passed to update. */
typedef struct plugin_update {
    const health_table_t *table;
    uint64_t now_ms;
} plugin_update_t;

typedef struct plugin_desc {
    uint32_t abi; /* PLUGIN_ABI_VERSION */
    const char *name;
    /* path names the configuration for messages, e.g. "resolvers.steer.downloads".
     * Returns 0, or a negative errno after adding diagnostics. */
    int (*create)(const plugin_env_t *env, const yconf_node_t *cfg, const char *path, arena_t *a,
                  diag_list_t *d, void **inst, plugin_decl_t *decl);
    void (*destroy)(void *inst);
    void (*resolve)(const void *inst, const plugin_query_t *q, plugin_result_t *r);
    void (*explain)(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                    const trace_t *t);
    void (*update)(void *inst, const plugin_update_t *u);
    void (*adopt)(void *inst, const void *old_inst);
} plugin_desc_t;

/* The registered plugins (registry.c), or NULL for an unknown name. */
const plugin_desc_t *plugin_find(const char *name);
/* "steer, weighted, failover, static": for messages. */
const char *plugin_names(void);

/* A fast random number for plugins (xorshift64*). */
static inline uint64_t plugin_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A plugin instance and its descriptor, as the snapshot keeps them. */
typedef struct plugin_inst {
    const plugin_desc_t *desc;
    void *inst;
    plugin_decl_t decl;
    const char *path;
} plugin_inst_t;

/* Helpers for plugins: parse an address list node (scalar or sequence)
 * into sets' v4/v6 arrays in the arena.  Return false after a diagnostic. */
bool plugin_parse_addresses(const yconf_node_t *n, const char *path, arena_t *a, diag_list_t *d,
                            plugin_set_t *out);

#endif
