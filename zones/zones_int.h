/*
 * zones_int.h - internals shared by the zones room's files (zones__
 * prefix).  Never included from outside zones/.
 */
#ifndef STEERDNS_ZONES_INT_H
#define STEERDNS_ZONES_INT_H

#include <string.h>

#include "zones/zones.h"

/* One slot of an open-addressing hash table of names. */
typedef struct zones__slot {
    uint64_t hash; /* 0 = empty (real hashes are forced non-zero) */
    const void *item;
} zones__slot_t;

struct zones {
    zones_zone_t **zones;
    size_t nzones;
    size_t nnodes;
    zones__slot_t *apex_table; /* item: zones_zone_t */
    uint32_t apex_mask;
    /* Every name that a lookup would find as an exact match (in the
     * deepest zone holding it, not at or below a zone cut): the common case
     * of a query is then one probe (item: zones_node_t). */
    zones__slot_t *exact_table;
    uint32_t exact_mask;
};

/* A record collected while loading, before nodes are built. */
typedef struct zones__rec {
    uint8_t *owner; /* lower-cased wire */
    uint8_t owner_len;
    uint16_t type;
    uint32_t ttl;
    uint16_t rdlen;
    uint8_t *rdata;
    uint8_t *crdata; /* rdata in canonical form (RFC 4034 section 6.2: names
                      * lower-cased), for finding duplicates; often rdata */
    diag_pos_t pos;
} zones__rec_t;

/* A resolver reference: owner name -> the YAML value naming the plugin. */
typedef struct zones__ref {
    uint8_t *owner;
    uint8_t owner_len;
    const yconf_node_t *node;
} zones__ref_t;

/* Everything known about one zone while it is being loaded. */
typedef struct zones__zb {
    uint8_t origin[DNAME_MAXLEN];
    uint8_t origin_len;
    diag_pos_t pos;     /* where the zone is declared */
    const char *source; /* file the zone came from */
    const char *carrier;
    const yconf_node_t *carrier_node;
    zones__rec_t *recs;
    size_t nrecs, caprecs;
    zones__ref_t *refs;
    size_t nrefs, caprefs;
} zones__zb_t;

/* Hash of a suffix, one label at a time from the right: the hash of
 * label+rest is zones__hash_step(hash(rest), label).  The root's hash is
 * ZONES__HASH_ROOT.  Computing it this way gives all suffix hashes of a
 * name in one pass. */
#define ZONES__HASH_ROOT 0xcbf29ce484222325ull
static inline uint64_t zones__hash_step(uint64_t h, const uint8_t *label)
{
    /* Eight bytes per multiply (the length byte included), so a typical
     * label costs one: this runs for every label of every query. */
    unsigned n = (unsigned)label[0] + 1u;
    const uint8_t *p = label;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        for (unsigned i = 0; i < n; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return h;
}
/* Table key from a suffix hash: mixed, never 0. */
static inline uint64_t zones__hash_key(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h | 1u;
}
uint64_t zones__name_hash(const uint8_t *name);

/* Loading (load.c): parse the `zones:` sequence into zone builders. */
int zones__load(const zones_config_in_t *in, arena_t *a, arena_t *scratch, diag_list_t *d,
                zones__zb_t **out, size_t *nout);

/* Building (db.c): zone builders -> database. */
int zones__build_db(zones__zb_t *zbs, size_t n, arena_t *a, arena_t *scratch, diag_list_t *d,
                    zones_t **out);


#endif
