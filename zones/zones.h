/*
 * zones.h - the immutable zone database.
 *
 * Built at snapshot build time from YAML zones (records in presentation
 * format, parsed by ldns) and RFC 1035 master files (imported with ldns).
 * Owns, in the snapshot's arena: every zone, its nodes (owner names,
 * lower-cased wire format, with empty non-terminals made explicit), and each
 * node's RRsets with rdata in uncompressed wire format.  Nothing here is
 * written after zones_build returns, so any number of worker threads may
 * read it at once.
 *
 * Flow: config (yconf tree) -> zones_build -> zones_t, owned by the snapshot
 * -> read by the resolver's answer compiler and query path.
 *
 * ldns is used at load time only; the query path uses zones_lookup(), which
 * does a few hash probes and allocates nothing.
 */
#ifndef STEERDNS_ZONES_ZONES_H
#define STEERDNS_ZONES_ZONES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/dname.h"
#include "core/yconf.h"

/* RR types the database itself needs to know. */
enum {
    ZONES_TYPE_A = 1,
    ZONES_TYPE_NS = 2,
    ZONES_TYPE_CNAME = 5,
    ZONES_TYPE_SOA = 6,
    ZONES_TYPE_PTR = 12,
    ZONES_TYPE_MX = 15,
    ZONES_TYPE_AAAA = 28,
    ZONES_TYPE_SRV = 33,
    ZONES_TYPE_DNAME = 39,
    ZONES_TYPE_OPT = 41,
    ZONES_TYPE_DS = 43,
    ZONES_TYPE_IXFR = 251,
    ZONES_TYPE_AXFR = 252,
    ZONES_TYPE_ANY = 255,
};

/* One RRset: every RR of one owner and type.  rdata holds `count` records,
 * each as a 2-byte big-endian length followed by that many bytes of
 * uncompressed wire rdata, in the order they were written (duplicates
 * removed).  All RRs share one TTL (the smallest given, RFC 2181 5.2). */
typedef struct zones_rrset {
    uint16_t type;
    uint16_t count;
    uint32_t ttl;
    uint32_t rdata_len;
    const uint8_t *rdata;
} zones_rrset_t;

/* Node flags. */
#define ZONES_NODE_APEX 0x01u       /* the zone's origin */
#define ZONES_NODE_DELEGATION 0x02u /* NS below the apex: a zone cut */
#define ZONES_NODE_OCCLUDED 0x04u   /* below a zone cut: glue only, never answered */
#define ZONES_NODE_WILDCARD 0x08u   /* first label is '*' */
#define ZONES_NODE_ENT 0x10u        /* empty non-terminal: exists, holds no RRset */

typedef struct zones_zone zones_zone_t;

/* A name in a zone.  `id` is dense over the whole database (0..n-1), so
 * other rooms can keep per-node tables (compiled answers, resolver plugin
 * instances) as plain arrays. */
typedef struct zones_node {
    const uint8_t *name; /* lower-cased wire format */
    uint8_t name_len;
    uint8_t labels;
    uint8_t flags;
    uint8_t pad;
    uint32_t id;
    const zones_zone_t *zone;
    const struct zones_node *parent;   /* NULL at the apex */
    const struct zones_node *wildcard; /* the node "*.<this name>", if any */
    uint16_t nrrsets;
    const zones_rrset_t *rrsets; /* sorted by type */
    /* A resolver plugin reference written in the zone YAML, e.g. the value
     * node of `app: {steer: downloads}`; NULL for static names.  The zone
     * database only carries it; the snapshot builder resolves it. */
    const yconf_node_t *resolver;
} zones_node_t;

struct zones_zone {
    const uint8_t *apex; /* lower-cased wire format */
    uint8_t apex_len;
    uint8_t apex_labels;
    uint32_t index;           /* position in the database */
    const zones_node_t *apex_node;
    /* The closest enclosing zone this database also serves, or NULL: it
     * answers DS queries for this zone's apex (RFC 4035 section 3.1.4.1). */
    const zones_zone_t *parent;
    const zones_rrset_t *soa; /* the apex SOA */
    uint32_t negative_ttl;    /* min(SOA TTL, SOA MINIMUM), RFC 2308 section 5 */
    const char *source;       /* file the zone came from, for messages */
    const char *carrier;      /* `carrier:` declared by a delegated zone, or NULL */
    const yconf_node_t *carrier_node;
    size_t nnodes;
    /* Hash table of the zone's nodes (internal layout, see zones_int.h). */
    const void *table;
    uint32_t table_mask;
};

typedef struct zones zones_t;

typedef struct zones_config_in {
    const yconf_node_t *zones; /* the `zones:` sequence of the main file */
    const char *base_dir;      /* relative include/import paths resolve against it */
    size_t max_zones;          /* 0: ZONES_DEFAULT_MAX_ZONES */
    size_t max_file_bytes;     /* 0: YCONF_MAX_FILE_BYTES */
} zones_config_in_t;

#define ZONES_DEFAULT_MAX_ZONES 10000

/* Build the database.  Every problem is added to d with its position; the
 * build goes on to find more.  Returns 0 and sets *out (allocated in a), or
 * -EINVAL when any error was reported (*out untouched).  Load time only. */
int zones_build(const zones_config_in_t *in, arena_t *a, diag_list_t *d, zones_t **out);

size_t zones_count(const zones_t *db);
const zones_zone_t *zones_get(const zones_t *db, size_t i);
/* Total nodes over all zones (ids are 0..n-1). */
size_t zones_node_count(const zones_t *db);
/* Visit every node of every zone (order unspecified). */
void zones_foreach_node(const zones_t *db, void (*fn)(void *ctx, const zones_node_t *n),
                        void *ctx);

/* The RRset of one type at a node, or NULL. */
const zones_rrset_t *zones_node_rrset(const zones_node_t *n, uint16_t type);

/* Positions of the domain names inside one rdata of a given type (NS,
 * CNAME, PTR: 0; MX: 2; SRV: 6; SOA: MNAME and RNAME).  Fills offs and
 * returns how many (0 for types without names, or malformed rdata).  Only
 * the RFC 1035 types among these may be compressed (RFC 3597 section 4). */
unsigned zones_rdata_names(uint16_t type, const uint8_t *rdata, uint16_t rdlen, uint16_t offs[2]);

/* A lower-cased query name split into labels, with one hash per suffix.
 * Filled by zones_qname_prepare; lives on the caller's stack or in a
 * worker's transaction struct. */
typedef struct zones_qname {
    uint8_t name[DNAME_MAXLEN];
    uint8_t len;
    uint8_t labels;
    uint8_t label_off[DNAME_MAXLABELS]; /* offset of label i from the left */
    uint64_t suffix_hash[DNAME_MAXLABELS + 1]; /* hash of the suffix at label i */
} zones_qname_t;

/* Lower-case and index a wire name of length len (already validated). */
void zones_qname_prepare(zones_qname_t *q, const uint8_t *wire, size_t len);

typedef enum zones_result {
    ZONES_NOTAUTH = 0, /* not in any zone: REFUSED */
    ZONES_EXACT,       /* node has the name (may be an empty non-terminal) */
    ZONES_WILDCARD,    /* node is the wildcard that synthesises the name */
    ZONES_DELEGATION,  /* node is the zone cut above (or at) the name */
    ZONES_NXDOMAIN,    /* node is the closest encloser */
} zones_result_t;

typedef struct zones_match {
    zones_result_t result;
    const zones_zone_t *zone;
    const zones_node_t *node;
} zones_match_t;

/* Find the answer position of a name: the zone by longest suffix, then the
 * name, a zone cut on the way down, a wildcard (RFC 4592) or the closest
 * encloser.  A DS query at a zone cut is answered by the parent, so pass
 * ds_at_cut = true for qtype DS: then a cut of the zone is not a referral
 * for the cut's own name, and the apex of a zone whose parent zone is also
 * served is looked up in that parent.  Hot path: no allocation, bounded by
 * the number of labels. */
void zones_lookup(const zones_t *db, const zones_qname_t *q, bool ds_at_cut, zones_match_t *m);

/* Exact node lookup in one zone (name lower-cased), or NULL.  Load time. */
const zones_node_t *zones_find_node(const zones_zone_t *z, const uint8_t *name);

/* Zone whose apex is the longest suffix of name, or NULL.  Load time. */
const zones_zone_t *zones_find_zone(const zones_t *db, const uint8_t *name);

#endif
