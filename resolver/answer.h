/*
 * answer.h - precompiled answers and the per-query answer pipeline.
 *
 * At snapshot build, answer_compile() turns the zone database into wire
 * bytes: for every node and query type the whole response after the
 * question (answer, authority and additional sections, names compressed),
 * for every zone its NXDOMAIN response, for every zone cut its referral.
 * Per query, answer_respond() parses the query, finds the node, picks the
 * precompiled blob and writes header + the query's own question bytes (so
 * the name's case is preserved) + the blob + the OPT record.  Nothing is
 * allocated on that path.
 *
 * A blob is compiled against a "base" question name.  Compression pointers
 * into that name's suffixes or into the blob itself shift when the real
 * question name is longer (a wildcard match, a name below a zone cut, a
 * name under an NXDOMAIN closest encloser); every such pointer is listed in
 * relocs[] and moved by the length difference when the blob is copied.  A
 * pointer to offset 12, the question name itself, never moves.
 *
 * Flow: zones_t -> answer_compile -> answer_db_t (in the snapshot) ->
 * answer_respond on every worker.
 */
#ifndef STEERDNS_RESOLVER_ANSWER_H
#define STEERDNS_RESOLVER_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "resolver/plugin.h"
#include "resolver/rrl.h"
#include "resolver/wire.h"
#include "zones/zones.h"

/* A place where a response may be cut on overflow: after a whole RRset. */
typedef struct answer_cut {
    uint16_t len; /* blob bytes kept */
    uint16_t an, ns, ar;
    /* Dropping everything after this cut loses nothing the client must
     * have: only optional additional records follow. */
    bool optional_rest;
} answer_cut_t;

typedef struct answer_blob {
    const uint8_t *data;
    uint16_t len;
    uint16_t an, ns, ar;
    uint8_t rcode;
    bool aa;
    uint8_t base_qlen; /* length of the name this blob was compiled for */
    uint16_t nrelocs;
    uint16_t ncuts;
    uint16_t ttl_stride; /* plugin answers: bytes per answer RR, for TTL patching */
    const uint16_t *relocs; /* blob offsets of 2-byte pointers to shift */
    const answer_cut_t *cuts;
} answer_blob_t;

/* Precompiled responses of one node (indexed by zones_node_t.id). */
typedef struct answer_node {
    uint16_t ntypes;
    const uint16_t *types; /* sorted */
    const answer_blob_t *const *blobs;
    const answer_blob_t *other;    /* any type not in types[] */
    const answer_blob_t *any;      /* QTYPE ANY (RFC 8482: one RRset) */
    const answer_blob_t *referral; /* zone cuts */
    /* A name answered by a resolver plugin: its instance, and for each of
     * the instance's answer sets the A and the AAAA answer (sets[2i],
     * sets[2i+1]). */
    const plugin_inst_t *plugin;
    const answer_blob_t *const *sets;
} answer_node_t;

/* Set answers compiled for one plugin instance in one zone, shared by every
 * name of that zone using the instance (they differ only in the zone's SOA
 * of their NODATA answers). */
typedef struct answer_setcache {
    const plugin_inst_t *pi;
    const zones_zone_t *zone;
    const answer_blob_t *const *sets;
    struct answer_setcache *next;
} answer_setcache_t;

typedef struct answer_db {
    const zones_t *zones;
    answer_setcache_t *setcache;
    answer_node_t *nodes;              /* by node id */
    const answer_blob_t **nxdomain;    /* by zone index */
    size_t bytes;                      /* total blob bytes, for reports */
} answer_db_t;

/* Compile every answer of the database.  Warnings (an answer too large to
 * ever send, cut to 64 KiB) go to d.  Returns 0 or a negative errno. */
int answer_compile(const zones_t *zones, arena_t *a, diag_list_t *d, answer_db_t **out);

/* Compile the answers of every answer set of plugin instance pi for node n
 * (load time).  Returns 0 or a negative errno. */
int answer_compile_plugin(answer_db_t *db, const zones_node_t *n, const plugin_inst_t *pi,
                          arena_t *a, diag_list_t *d);

/* What one response needs besides the query: the serving settings of the
 * snapshot. */
typedef struct answer_env {
    const zones_t *zones;
    const answer_db_t *answers;
    uint16_t max_udp_payload; /* our EDNS payload size (RFC 6891), e.g. 1232 */
    bool ecs;                 /* honour and echo EDNS Client Subnet */
    uint8_t ecs_max_v4, ecs_max_v6;
    const uint16_t *zone_carrier; /* carrier id a delegated zone declares, by zone index */
} answer_env_t;

/* Where a query came from. */
typedef struct answer_client {
    netaddr_t addr; /* source address, bits = 32 / 128 */
    bool tcp;
} answer_client_t;

/* What happened, for the worker's counters. */
typedef struct answer_txn {
    wire_query_t q;
    zones_qname_t qn;
    uint8_t rcode; /* including extended (BADVERS = 16) */
    bool tc;
    bool dropped;
    bool plugin;              /* a plugin chose the answer */
    plugin_result_t pr;       /* what it chose */
    uint64_t rng;             /* the worker's random state for plugins; never 0 */
    uint64_t turn;            /* the worker's round-robin counter for plugins */
    const trace_t *trace;     /* explain: the plugin's decision is traced here */
    /* For response rate limiting: the kind of response and the name it
     * counts against (lower-cased wire bytes, or NULL). */
    uint8_t rrl_kind;
    uint8_t rrl_name_len;
    const uint8_t *rrl_name;
} answer_txn_t;

/* Answer one query: write the response into out (outsize >= 512) and
 * return its length, or 0 to send nothing.  txn is the caller's scratch
 * (one per worker).  Thread-safe for distinct txn/out; allocates nothing. */
size_t answer_respond(const answer_env_t *env, const uint8_t *pkt, size_t len,
                      const answer_client_t *client, answer_txn_t *txn, uint8_t *out,
                      size_t outsize);

#endif
