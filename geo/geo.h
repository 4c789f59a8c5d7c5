/*
 * geo.h - "who is asking": client address -> region, carrier, country, ASN,
 * location, and the prefix length that decided them.
 *
 * The geo room owns the classifier of one configuration snapshot.  At
 * snapshot build (geo_build) it reads the `geo:` section, opens the
 * MaxMind-format databases (libmaxminddb, memory-mapped), the ASN range CSVs
 * and the carriers' CIDR list files, validates every region's `match:` keys,
 * and flattens all of it into one longest-prefix-match table per address
 * family that maps an address straight to a compact result record.  The
 * resolver then calls geo_classify once per query with the ECS address
 * (RFC 7871) or the resolver's source address; that call decodes no MMDB
 * data, allocates nothing and takes no lock.
 *
 * Flow: config -> geo_build (load time, snapshot builder's thread)
 *       -> geo_t inside the snapshot -> geo_classify (any worker, any time)
 *       -> geo_explain (`steerdns explain`, offline or control channel).
 *
 * The configuration schema is documented in docs/geo.md (the contract).
 */
#ifndef STEERDNS_GEO_GEO_H
#define STEERDNS_GEO_GEO_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"

/* "No region" / "no carrier". */
#define GEO_NONE 0xFFFF

/* At most this many regions and carriers (ids are uint16_t, GEO_NONE
 * excluded). */
#define GEO_MAX_REGIONS  65534u
#define GEO_MAX_CARRIERS 65534u

/* A region the configuration declares.  The snapshot builder parses the
 * top-level `regions:` section and passes each region's name and its raw
 * `match:` node; geo validates the keys and reports errors at their
 * positions (as `regions.NAME.match[I]: ...`). */
typedef struct geo_region_def {
    const char *name;          /* e.g. "beijing" */
    const yconf_node_t *match; /* the region's `match:` sequence node, or NULL */
} geo_region_def_t;

typedef struct geo_config_in {
    const yconf_node_t *section;     /* the top-level `geo:` mapping, or NULL: no geo data */
    const geo_region_def_t *regions; /* region ids are indexes into this array */
    size_t nregions;
    const char *base_dir; /* relative paths resolve against it; NULL = current directory */
} geo_config_in_t;

/* An immutable classifier, owned by one configuration snapshot. */
typedef struct geo geo_t;

/* Build a classifier from in.  Small things (names, records) are allocated
 * from arena a, which must outlive the classifier; the big lookup tables and
 * the open databases belong to the geo_t and are released by geo_free.
 * Every problem is added to d with its file:line:column (a database or list
 * file that cannot be used is named in the message); warnings do not fail
 * the build.  Returns 0 and sets *out, or a negative errno-style code
 * (-EINVAL for configuration or data errors) with *out untouched.  Never
 * exits.  Load time only: the snapshot builder's thread. */
int geo_build(const geo_config_in_t *in, arena_t *a, diag_list_t *d, geo_t **out);

/* Close the databases and free the tables.  NULL is ignored.  Call only when
 * no thread can still classify with g (after the snapshot's grace period). */
void geo_free(geo_t *g);

typedef struct geo_result {
    uint16_t region;  /* index into regions[] or GEO_NONE */
    uint16_t carrier; /* carrier id (index of geo.carriers) or GEO_NONE */
    char country[3];  /* ISO 3166-1 alpha-2, "" when unknown */
    uint8_t scope;    /* prefix length that decided this result: the ECS SCOPE PREFIX-LENGTH */
    uint32_t asn;     /* 0 when unknown */
    float lat, lon;   /* NAN when unknown */
} geo_result_t;

/* Classify one client.  addr->family is 4 or 6; addr->bits is the number of
 * leading bits the client gave (the ECS SOURCE PREFIX-LENGTH already capped
 * by the caller, or 32/128 for a plain source address); bits past it are
 * treated as zero.  Fills *out completely (an unknown family gives an
 * all-unknown result with scope 0).
 * Hot path: any thread, concurrently; allocation-free, lock-free, bounded
 * (one index read and a binary search of a few table entries). */
void geo_classify(const geo_t *g, const netaddr_t *addr, geo_result_t *out);

/* The same decision as geo_classify (the same table lookup fills *out), plus
 * one trace line per source saying what it found for this client (network
 * and prefix, country, subdivision, city, location, ASN and organisation,
 * carrier and why, region and which match key or nets override decided).
 * Not for the query path: may decode MMDB data. */
void geo_explain(const geo_t *g, const netaddr_t *addr, const trace_t *t, geo_result_t *out);

/* geo_explain for a server with an ECS limit: *out is geo_classify's result
 * (out->scope the deciding prefix), and the trace's result line states the
 * scope the server sends, min(deciding prefix, scope_cap), where scope_cap
 * is the server's ECS limit for the address's family (an answer never
 * claims to hold for more bits than the server looks at). */
void geo_explain_capped(const geo_t *g, const netaddr_t *addr, unsigned scope_cap,
                        const trace_t *t, geo_result_t *out);

/* Carriers, by id (the index in geo.carriers, in declaration order).
 * geo_carrier_name returns NULL for an unknown id; geo_carrier_find returns
 * the id or -1 (exact, case-sensitive match).  Any thread; g may be NULL
 * (no carriers). */
size_t geo_carrier_count(const geo_t *g);
const char *geo_carrier_name(const geo_t *g, uint16_t id);
int geo_carrier_find(const geo_t *g, const char *name);

/* Sizes of a built classifier, for `status`, logs and the benchmark. */
typedef struct geo_stats {
    size_t entries4, entries6; /* ranges in the IPv4 / IPv6 lookup tables */
    size_t records;            /* distinct result records */
    size_t city_records;       /* distinct city/country records decoded */
    size_t asn_records;        /* distinct ASN records */
    size_t table4_bytes;       /* IPv4 lookup structure */
    size_t table6_bytes;       /* IPv6 lookup structure */
    size_t record_bytes;       /* result records */
    size_t table_bytes;        /* all three: what the query path reads */
    size_t total_bytes;        /* table_bytes + everything else geo keeps (explain data, names) */
} geo_stats_t;
void geo_get_stats(const geo_t *g, geo_stats_t *out);

#endif
