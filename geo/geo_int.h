/*
 * geo_int.h - internals shared by the files of the geo room (prefix geo__).
 * Never included from outside geo/.
 *
 * What lives where:
 *   geo_conf.c    the `geo:` section, regions' match keys, carriers, nets;
 *                 geo_build orchestrates the whole load (config -> tables)
 *   geo_mmdb.c    MaxMind-format databases: open, field paths, decoding of
 *                 each distinct data record once, search-tree walk
 *   geo_lists.c   text sources: ASN range CSVs and CIDR list files
 *   geo_prefix.c  prefix sets and ranges -> partitions of the address space
 *   geo_table.c   merge of all sources into the lookup tables; geo_classify
 *   geo_explain.c geo_explain (per-source trace, same decision)
 *
 * Vocabulary.  A *partition* of an address family is a sorted list of
 * *pieces*: CIDR prefixes that cover the family's whole address space
 * without overlap, each with one value (or GEO__NOVAL: "no data here").
 * Every source (an MMDB file, a CSV, the carriers' CIDR lists, the nets
 * overrides) is turned into a partition; geo_table.c merges them.  A
 * piece's prefix length is exactly the ECS scope that source can vouch for.
 */
#ifndef STEERDNS_GEO_GEO_INT_H
#define STEERDNS_GEO_GEO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <maxminddb.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"
#include "geo/geo.h"

/* Addresses during the build are 128-bit integers; IPv4 uses the low 32
 * bits (width W = 32), IPv6 all 128. */
typedef unsigned __int128 geo__u128;

#define GEO__NOVAL UINT32_MAX

/* All ones in the low w bits (w <= 128). */
static inline geo__u128 geo__ones(unsigned w)
{
    return w >= 128 ? ~(geo__u128)0 : (((geo__u128)1 << w) - 1);
}

/* netaddr bytes <-> integer of the family's width. */
geo__u128 geo__addr_to_u128(const uint8_t *addr, uint8_t family);
void geo__u128_to_addr(geo__u128 v, uint8_t family, uint8_t *addr);
/* "1.2.3.0/24" / "2001:db8::/32" of an integer prefix. */
void geo__fmt_prefix(geo__u128 start, unsigned len, unsigned w, char *buf, size_t size);

/* ---- partitions (geo_prefix.c) ---- */

typedef struct geo__piece {
    geo__u128 start;
    uint32_t val;
    uint8_t len;
} geo__piece_t;

typedef struct geo__pvec {
    geo__piece_t *v;
    size_t n, cap;
} geo__pvec_t;

/* A prefix with a value, for longest-match sets (CIDR lists, nets, CSV rows
 * split into prefixes).  Among equal prefixes the lowest prio wins. */
typedef struct geo__pfx {
    geo__u128 start;
    uint32_t val;
    uint32_t prio;
    uint8_t len;
} geo__pfx_t;

typedef struct geo__pfxvec {
    geo__pfx_t *v;
    size_t n, cap;
} geo__pfxvec_t;

void geo__pvec_push(geo__pvec_t *pv, geo__u128 start, unsigned len, uint32_t val);
void geo__pvec_free(geo__pvec_t *pv);
void geo__pfxvec_push(geo__pfxvec_t *v, geo__u128 start, unsigned len, uint32_t val, uint32_t prio);
void geo__pfxvec_free(geo__pfxvec_t *v);

/* Append the maximal aligned prefixes covering [lo, hi] (width w). */
void geo__range_to_prefixes(geo__u128 lo, geo__u128 hi, unsigned w, uint32_t val, uint32_t prio,
                            geo__pfxvec_t *out);

/* Turn a longest-match prefix set (sorted in place) into a partition of the
 * whole w-bit space: each piece is the largest prefix in which the longest
 * matching entry is the same one (or none).  Appends to out. */
void geo__pfx_partition(geo__pfxvec_t *set, unsigned w, geo__pvec_t *out);

/* ---- MMDB sources (geo_mmdb.c) ---- */

#define GEO__MAX_ALTS     4 /* alternative paths of one field */
#define GEO__MAX_PATH_LEN 8 /* components in one path */

/* One field to read from each data record: up to GEO__MAX_ALTS alternative
 * paths, the first one present wins. */
typedef struct geo__field {
    const char *name; /* "country", "asn", ... */
    size_t nalts;
    const char **alts[GEO__MAX_ALTS]; /* NULL-terminated component arrays (arena) */
    const char *text[GEO__MAX_ALTS];  /* the paths as written, for messages */
    const yconf_node_t *node;         /* where it was configured (NULL: default) */
} geo__field_t;

enum { GEO__F_COUNTRY, GEO__F_SUBDIV, GEO__F_CITY, GEO__F_LAT, GEO__F_LON, GEO__NCITYF };
enum { GEO__F_ASN, GEO__F_ORG, GEO__NASNF };

typedef enum geo__kind { GEO__KIND_CITY, GEO__KIND_ASN } geo__kind_t;

/* What a city database says about a network (deduplicated). */
typedef struct geo__city {
    char cc[2];         /* upper-case; "\0\0" unknown */
    uint16_t region;    /* from the match keys, or GEO_NONE */
    float lat, lon;     /* NAN unknown */
    const char *subdiv; /* "" unknown (arena, interned) */
    const char *city;   /* "" unknown */
} geo__city_t;

/* What an ASN source says (deduplicated by ASN). */
typedef struct geo__asnrec {
    uint32_t asn;
    uint16_t carrier; /* from carriers.*.asns, or GEO_NONE */
    const char *org;  /* "" unknown (arena) */
} geo__asnrec_t;

typedef struct geo__u32map geo__u32map_t; /* uint32 -> uint32 hash (geo_mmdb.c) */
geo__u32map_t *geo__u32map_new(void);
void geo__u32map_free(geo__u32map_t *m);
/* Returns the value or GEO__NOVAL. */
uint32_t geo__u32map_get(const geo__u32map_t *m, uint32_t key);
/* Insert or keep: returns the value now stored for key. */
uint32_t geo__u32map_put(geo__u32map_t *m, uint32_t key, uint32_t val);

typedef struct geo geo_t;

typedef struct geo__mmdb {
    MMDB_s db;
    bool open;
    geo__kind_t kind;
    const char *path;    /* resolved path (arena) */
    const char *cfgpath; /* "geo.city_db[1]" (arena) */
    const yconf_node_t *node;
    uint32_t ipv4_node;           /* node where IPv4 (::/96) starts, if ipv4_subtree */
    unsigned ipv4_depth;          /* depth reached on the ::/96 path */
    bool ipv4_subtree;            /* ::/96 leads to a search node (aliases point at it) */
    MMDB_search_node_s ipv4_leaf; /* when !ipv4_subtree: its left record ends the ::/96 path */
    /* Build-time state, freed when the build ends. */
    geo__u32map_t *cache;      /* data offset -> record index */
    size_t found[GEO__NCITYF]; /* records holding each field (GEO__NCITYF >= GEO__NASNF) */
    size_t decoded;
    bool failed;
} geo__mmdb_t;

/* Open and check a database (metadata, IPv4 subtree).  Errors name the
 * file at the node's position. */
int geo__mmdb_open(geo_t *g, geo__mmdb_t *m, diag_list_t *d);
/* Decode the record at entry (once per data offset); returns the city or
 * ASN record index, or GEO__NOVAL after adding an error. */
uint32_t geo__mmdb_decode(geo_t *g, geo__mmdb_t *m, MMDB_entry_s *entry, diag_list_t *d);
/* After a walk: complain about fields found in no record. */
void geo__mmdb_check_fields(geo_t *g, geo__mmdb_t *m, diag_list_t *d);
/* Read a field of an entry as text / number (explain and decode). */
bool geo__mmdb_field_str(const geo__field_t *f, MMDB_entry_s *e, char *buf, size_t size, int *err,
                         uint32_t *type);
bool geo__mmdb_field_num(const geo__field_t *f, MMDB_entry_s *e, double *out, int *err,
                         uint32_t *type);

/* Walk of one family's tree as a stream of pieces, in address order. */
typedef struct geo__walk_item {
    uint32_t node; /* search node to expand, or UINT32_MAX for a leaf */
    uint8_t depth;
    geo__u128 start;
    uint8_t rtype; /* leaf: MMDB_RECORD_TYPE_* */
    MMDB_entry_s entry;
} geo__walk_item_t;

typedef struct geo__walk {
    geo__mmdb_t *m;
    unsigned w;      /* 32 or 128 */
    uint64_t budget; /* nodes that may still be expanded */
    geo__walk_item_t stack[2 * 129 + 4];
    size_t sp;
} geo__walk_t;

/* Start a walk of family (4 or 6) of m; returns false if m has no data for
 * that family (an IPv4-only database and IPv6). */
bool geo__walk_init(geo__walk_t *wk, geo__mmdb_t *m, uint8_t family);
/* Next piece: 1 (out set), 0 (end), or -1 after adding an error. */
int geo__walk_next(geo_t *g, geo__walk_t *wk, geo__piece_t *out, diag_list_t *d);

/* ---- text sources (geo_lists.c) ---- */

/* One row of an ASN CSV kept for explain; prio orders overlapping rows
 * (lower wins). */
typedef struct geo__csvrow4 {
    uint32_t start, end, rec, prio;
} geo__csvrow4_t;
typedef struct geo__csvrow6 {
    uint64_t start_hi, start_lo, end_hi, end_lo;
    uint32_t rec, prio;
} geo__csvrow6_t;

typedef struct geo__csv {
    const char *path;    /* resolved (arena) */
    const char *cfgpath; /* "geo.asn_csv[0]" */
    const yconf_node_t *node;
    geo__csvrow4_t *rows4; /* sorted by start (malloc, owned by geo) */
    size_t n4;
    geo__csvrow6_t *rows6;
    size_t n6;
    geo__pfxvec_t set4, set6; /* build-time */
} geo__csv_t;

/* Parse an ASN range CSV (start,end,asn,org).  Errors at file:line:column. */
int geo__csv_load(geo_t *g, geo__csv_t *c, diag_list_t *d);

/* Parse a CIDR list file into carrier CIDR sets; errors at file:line:column. */
int geo__cidr_file_load(geo_t *g, const char *path, const yconf_node_t *node, const char *cfgpath,
                        uint16_t carrier, diag_list_t *d);

/* Add one carrier CIDR (from a list or file); pos is where it was written.
 * Returns false after adding a diagnostic (bad or conflicting). */
bool geo__carrier_cidr_add(geo_t *g, const char *text, uint16_t carrier, const diag_pos_t *pos,
                           const char *cfgpath, diag_list_t *d);

/* Parse "1.2.3.0/24" (or a bare address) strictly; on error write a reason
 * to why. */
bool geo__parse_cidr(const char *s, netaddr_t *out, const char **why);

/* ---- the classifier ---- */

/* A result record: what geo_classify returns, minus the scope. */
typedef struct geo__rec {
    uint16_t region, carrier;
    char cc[2];
    uint16_t pad;
    uint32_t asn;
    float lat, lon;
} geo__rec_t;

/* Merged ranges during the build: the first address of a range and its
 * value (record index << 8 | scope). */
typedef struct geo__e4 {
    uint32_t start;
    uint32_t val;
} geo__e4_t;
typedef struct geo__e6 {
    uint64_t hi, lo;
    uint32_t val;
    uint32_t pad;
} geo__e6_t;

/* The lookup structure of one family (see geo_table.c): a direct array on
 * the top k1 bits of the address whose 32-bit entries are either a final
 * value (GEO__LEAF), an inner node of 256 entries on the next 8 bits
 * (GEO__NODE), or a block of a few sorted range starts with their values.
 * Offsets count uint32_t from the start of the pool. */
#define GEO__LEAF     0x80000000u
#define GEO__NODE     0x40000000u
#define GEO__OFF_MASK 0x3fffffffu

typedef struct geo__lpm {
    const uint32_t *l1;   /* 1 << k1 entries */
    const uint32_t *pool; /* nodes and blocks */
    unsigned k1;
    size_t l1n, pooln, ranges;
} geo__lpm_t;

#define GEO__MAX_RECS    (1u << 23) /* a leaf holds rec << 8 | scope in 31 bits */
#define GEO__MAX_ALIASES 16

/* An IPv6 range that a database maps onto its IPv4 data (::/96,
 * ::ffff:0:0/96, 2002::/16, Teredo 2001::/32 in MaxMind's files). */
typedef struct geo__alias {
    uint64_t hi, lo; /* prefix */
    uint8_t len;     /* the embedded IPv4 address is bits [len, len + 32) */
} geo__alias_t;

/* A nets override. */
typedef struct geo__net {
    netaddr_t pfx;
    uint16_t region, carrier;
    const char *key; /* as written */
    diag_pos_t pos;
} geo__net_t;

/* Where a carrier CIDR was written (explain). */
typedef struct geo__ccidr {
    netaddr_t pfx;
    uint16_t carrier;
    diag_pos_t pos;
} geo__ccidr_t;

/* A region match key ("cn" or "cn-bj", lower-case). */
typedef struct geo__mkey {
    const char *key;
    uint16_t region;
    diag_pos_t pos;
} geo__mkey_t;

struct geo {
    /* ---- read by geo_classify ---- */
    geo__lpm_t t4, t6;
    const geo__rec_t *recs;
    size_t nrecs;
    geo__alias_t alias[GEO__MAX_ALIASES];
    size_t nalias;

    /* ---- names ---- */
    const char **carriers; /* arena */
    size_t ncarriers;
    const char **regions; /* arena copies of the region names */
    size_t nregions;

    /* ---- sources (explain; the databases stay open) ---- */
    geo__mmdb_t *dbs; /* malloc */
    size_t ndbs;
    geo__csv_t *csvs; /* malloc */
    size_t ncsvs;
    geo__field_t cityf[GEO__NCITYF];
    geo__field_t asnf[GEO__NASNF];
    int format; /* 0 maxmind, 1 dbip */

    geo__city_t *city; /* malloc, grows during build */
    size_t ncity, capcity;
    geo__asnrec_t *asnr; /* malloc */
    size_t nasnr, capasnr;
    geo__u32map_t *asn_index;   /* ASN -> asnr index (build) */
    geo__u32map_t *asn_carrier; /* ASN -> carrier (build) */

    geo__net_t *nets; /* arena */
    size_t nnets;
    geo__ccidr_t *ccidrs; /* malloc */
    size_t nccidrs, capccidrs;
    geo__mkey_t *mkeys; /* open-addressing hash, arena */
    size_t mkcap, nmkeys;

    /* ---- build-time, then freed ---- */
    geo__pfxvec_t nets4, nets6, cc4, cc6;
    struct geo__strset *strs; /* interned strings (geo_conf.c) */
    arena_t *arena;
    const char *base_dir;

    /* ---- memory ---- */
    void *map; /* one mmap holding both tables and the records */
    size_t maplen;
    size_t arena_bytes; /* approximate arena use */
    size_t heap_bytes;
};

/* Resolve a configured path against base_dir (arena). */
const char *geo__path(geo_t *g, const char *p);

/* Intern a string in the arena (build time). */
const char *geo__intern(geo_t *g, const char *s, size_t len);

/* Region of (country, subdivision) by the match keys; which key (or NULL). */
uint16_t geo__region_of(const geo_t *g, const char cc[2], const char *subdiv,
                        const geo__mkey_t **which);

/* Add an ASN record (dedup by ASN; the first org seen stays). */
uint32_t geo__asn_record(geo_t *g, uint32_t asn, const char *org, size_t orglen);

/* Merge every source and build the lookup tables (geo_table.c). */
int geo__table_build(geo_t *g, diag_list_t *d);
void geo__table_free(geo_t *g);

/* The decision both geo_classify and geo_explain use: the table entry for
 * addr; sets *rec (or NULL when the family is unknown) and *scope.  For an
 * IPv6 address that embeds IPv4 (alias), *alias_len is the alias prefix
 * length and *v4 the embedded address; otherwise *alias_len = -1. */
void geo__decide(const geo_t *g, const netaddr_t *addr, const geo__rec_t **rec, uint8_t *scope,
                 int *alias_len, netaddr_t *v4);
void geo__fill(const geo__rec_t *r, uint8_t scope, geo_result_t *out);

#endif
