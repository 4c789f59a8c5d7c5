/*
 * yconf.h - the YAML node tree with positions, and table-driven settings.
 *
 * libyaml parses a file; yconf converts its document into an immutable tree
 * allocated in an arena, where every node keeps the file, line and column of
 * where it starts.  Because positions survive parsing, even cross-reference
 * errors found much later ("cluster -> unknown region") can name the place in
 * the file that is wrong.
 *
 * Settings are declared in tables of yconf_key_t {key, type, range, default,
 * check} (as Knot's conf/schema.c and Redis's config.c do) and applied to a
 * mapping node with yconf_apply(), which reports unknown keys, duplicate keys,
 * wrong types and out-of-range values each at its own position.
 *
 * Load-time only; never used on the query path.
 */
#ifndef STEERDNS_CORE_YCONF_H
#define STEERDNS_CORE_YCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"

typedef enum yconf_kind { YCONF_SCALAR, YCONF_SEQ, YCONF_MAP } yconf_kind_t;

typedef struct yconf_node yconf_node_t;
typedef struct yconf_pair {
    const yconf_node_t *key; /* always a scalar */
    const yconf_node_t *value;
} yconf_pair_t;

struct yconf_node {
    yconf_kind_t kind;
    diag_pos_t pos;
    union {
        struct {
            const char *str; /* NUL-terminated; may contain NULs before len */
            size_t len;
            bool plain; /* unquoted: may be null, a number or a bool */
        } scalar;
        struct {
            const yconf_node_t **items;
            size_t n;
        } seq;
        struct {
            const yconf_pair_t *pairs;
            size_t n;
        } map;
    } u;
};

/* Size limits of a YAML file: bigger files are refused with a diagnostic. */
#define YCONF_MAX_FILE_BYTES (64u * 1024u * 1024u)
#define YCONF_MAX_DEPTH 64
#define YCONF_MAX_NODES (8u * 1024u * 1024u)

/* Parse the YAML file at path into a tree allocated in a.  An empty document
 * gives an empty mapping.  Returns 0 and sets *out, or a negative errno-style
 * code after adding diagnostics to d (syntax errors carry their position);
 * *out is untouched on failure.  max_bytes 0 means YCONF_MAX_FILE_BYTES. */
int yconf_parse_file(arena_t *a, const char *path, size_t max_bytes, diag_list_t *d,
                     const yconf_node_t **out);

/* The same for a buffer; name is used as the file name in positions. */
int yconf_parse_buffer(arena_t *a, const char *name, const void *buf, size_t len, diag_list_t *d,
                       const yconf_node_t **out);

/* Accessors. */
const char *yconf_kind_name(yconf_kind_t kind);
bool yconf_is_null(const yconf_node_t *n);
/* The value of key in a mapping, or NULL (also when n is not a mapping). */
const yconf_node_t *yconf_map_get(const yconf_node_t *map, const char *key);

/* Add an error at node n's position (or without position if n is NULL). */
void yconf_error(diag_list_t *d, const yconf_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void yconf_warn(diag_list_t *d, const yconf_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Check a node's kind; on mismatch add "PATH: expected a mapping, got a
 * sequence" at its position and return false. */
bool yconf_expect(diag_list_t *d, const yconf_node_t *n, yconf_kind_t kind, const char *path);

/* Value types of settings and the C type each writes at its offset. */
typedef enum yconf_type {
    YCONF_T_BOOL,      /* bool */
    YCONF_T_U32,       /* uint32_t, decimal */
    YCONF_T_U64,       /* uint64_t, decimal */
    YCONF_T_DOUBLE,    /* double */
    YCONF_T_PERCENT,   /* double fraction: "90%" or 0.9 */
    YCONF_T_DURATION,  /* uint64_t milliseconds: "500ms", "1s", "2m", "1h", "1d"; bare = s */
    YCONF_T_BANDWIDTH, /* uint64_t bit/s: "10Gbit", "100Mbit", "1Gbps"; bare = bit/s */
    YCONF_T_STR,       /* const char *, copied into the arena */
    YCONF_T_ENUM,      /* int: index into choices */
    YCONF_T_NODE,      /* const yconf_node_t *: any node, parsed by the caller */
    YCONF_T_SEQ,     /* const yconf_node_t *: must be a sequence */
    YCONF_T_MAP,     /* const yconf_node_t *: must be a mapping */
} yconf_type_t;

#define YCONF_REQUIRED 1u

/* One row of a settings table.  A table ends with a row whose name is NULL.
 * min/max bound numeric types (in the unit stored: ms, bit/s, fraction);
 * both 0 means unbounded.  def is a default written as YAML text and parsed
 * the same way as a user's value; NULL leaves the field as the caller set it.
 * check, if set, returns NULL when the value is fine, or a reason. */
typedef struct yconf_key {
    const char *name;
    yconf_type_t type;
    size_t offset;
    double min, max;
    const char *def;
    unsigned flags;
    const char *const *choices; /* YCONF_T_ENUM: NULL-terminated names */
    const char *(*check)(const void *value);
} yconf_key_t;

/* Apply a settings table to mapping `map` (NULL: only defaults), writing into
 * target.  path prefixes messages ("server" -> "server.port: ...").  Unknown
 * and duplicate keys, wrong kinds, bad values and missing required keys are
 * errors at their positions.  When nodes is not NULL it receives, per table
 * row, the value node given (or NULL).  Returns the number of errors added. */
size_t yconf_apply(const yconf_node_t *map, const yconf_key_t *table, void *target, arena_t *a,
                   diag_list_t *d, const char *path, const yconf_node_t **nodes);

/* Parse one scalar as `type` into out (same C types as above).  Adds an
 * error naming path and returns false when the value is bad. */
bool yconf_parse_value(const yconf_node_t *n, yconf_type_t type, double min, double max,
                       const char *const *choices, void *out, arena_t *a, diag_list_t *d,
                       const char *path);

/* Parsers of single values, for code and tests: return 0 or -EINVAL (-ERANGE
 * on overflow); out untouched on failure. */
int yconf_str_to_u64(const char *s, uint64_t *out);
int yconf_str_to_duration_ms(const char *s, uint64_t *out);
int yconf_str_to_bandwidth(const char *s, uint64_t *out);
int yconf_str_to_percent(const char *s, double *out);
int yconf_str_to_bool(const char *s, bool *out);
int yconf_str_to_double(const char *s, double *out);

#endif
