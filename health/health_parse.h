/*
 * health_parse.h - the pure parsers of the health room: the Prometheus text
 * exposition format, JSON field extraction, and the admin state file.
 *
 * Where they sit: the poller (health_poller.c) hands each response body or
 * file content to one of these and feeds the number it gets to the state
 * machine.  They are pure functions: no allocation (except JSON, which
 * parses with jansson), no global state, bounded by the input length, safe
 * on any bytes (they are fuzzed), and callable from any thread.
 */
#ifndef STEERDNS_HEALTH_PARSE_H
#define STEERDNS_HEALTH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Prometheus text exposition format 0.0.4 ----
 *
 *   # HELP node_network_transmit_bytes_total Network device statistic transmit_bytes.
 *   # TYPE node_network_transmit_bytes_total counter
 *   node_network_transmit_bytes_total{device="eth0"} 1.2345e+10 [timestamp_ms]
 *   \__________ metric name ________/\__ labels __/ \_ value _/
 *
 * Lines starting with '#' (after blanks) and empty lines are skipped.  Every
 * other line must start with a character that may start a metric name
 * ([a-zA-Z_:], so HTML or JSON fails at once); lines of the queried metric
 * are parsed in full (labels with \\ \" \n escapes, a float value such as
 * 1.5e+09, NaN, +Inf, an optional integer timestamp, an optional
 * OpenMetrics exemplar after " # "), lines of other metrics are skipped
 * after that first character, which keeps a 100 KB node_exporter page
 * cheap.  A matcher with an empty value matches a series without that
 * label (as in PromQL). */

#define HEALTH_PROM_MAX_MATCHERS 16

typedef struct health_prom_query {
    const char *metric;
    const char *const *label_names;
    const char *const *label_values;
    size_t n_labels; /* at most HEALTH_PROM_MAX_MATCHERS */
} health_prom_query_t;

typedef struct health_prom_result {
    double value;         /* sum of the values of every matching series */
    size_t matches;       /* matching series (0: the metric is missing) */
    bool has_timestamp;   /* every matching series had a timestamp */
    int64_t timestamp_ms; /* the largest of them */
    size_t lines;         /* lines read */
    size_t err_line;      /* on error: 1-based line and column */
    size_t err_col;
    const char *err; /* on error: static message; NULL on success */
} health_prom_result_t;

/* Scan buf[0..len) for the series of q.  Returns 0 (res filled; matches may
 * be 0), -EINVAL on a syntax error (res->err, err_line, err_col set) or an
 * empty metric name in q, or -E2BIG when q has more than
 * HEALTH_PROM_MAX_MATCHERS matchers. */
int health_prom_scan(const char *buf, size_t len, const health_prom_query_t *q,
                     health_prom_result_t *res);

/* ---- JSON ----
 *
 * path is a dotted list of object keys; a component made only of digits
 * indexes an array: "tx_bps", "net.eth0.tx_bps", "ifaces.0.tx".  The value
 * must be a JSON number, or a string holding a decimal number. */

/* True when path is syntactically valid (non-empty components). */
bool health_json_path_valid(const char *path);

/* Returns 0 and *out, or -EINVAL (not JSON), -ENOENT (path missing), -EDOM
 * (not a number, or not finite).  err (if not NULL) receives a short
 * reason such as "line 1 column 7: unexpected token". */
int health_json_extract(const char *buf, size_t len, const char *path, double *out, char *err,
                        size_t errsize);

/* ---- Admin state file ----
 *
 * One override per line; blank lines and lines whose first non-blank
 * character is '#' are ignored:
 *
 *   # TARGET            STATE  [reason...]
 *   bj-telecom/bj-t-1   DOWN   disk replacement, ticket 4711
 *   bj-unicom           BUSY   draining the whole cluster before the upgrade
 *   *                   UP
 *
 * TARGET is CLUSTER/SERVER, CLUSTER (every server of a cluster; also
 * written CLUSTER/ followed by a star) or a lone star (every server).  STATE is UP, DOWN or BUSY
 * (any case).  The most specific target wins; of two equally specific lines the later wins.
 *
 * The per-server `file` check reads a file whose first line (after
 * comments and blank lines) is just "STATE [reason...]". */

typedef enum health_admin_state {
    HEALTH_ADMIN_NONE = 0,
    HEALTH_ADMIN_UP = 1,   /* never DOWN: measured IDLE/BUSY stays, otherwise IDLE */
    HEALTH_ADMIN_DOWN = 2, /* DOWN */
    HEALTH_ADMIN_BUSY = 3, /* BUSY (drain: no new clients, not counted as down) */
} health_admin_state_t;

#define HEALTH_ADMIN_REASON_MAX 80 /* longer reasons are cut */

typedef struct health_admin_rule {
    size_t line;
    const char *cluster; /* NULL for every server */
    size_t cluster_len;
    const char *server; /* NULL for a whole cluster or every server */
    size_t server_len;
    health_admin_state_t state;
    const char *reason; /* may be empty */
    size_t reason_len;
} health_admin_rule_t;

/* Call on_rule for every valid line and on_error (message static) for
 * every bad one; returns the number of bad lines.  Pointers in a rule point
 * into buf. */
size_t health_admin_parse(const char *buf, size_t len,
                          void (*on_rule)(void *ctx, const health_admin_rule_t *r),
                          void (*on_error)(void *ctx, size_t line, const char *msg), void *ctx);

/* Parse a state word ("UP", "down", ...); HEALTH_ADMIN_NONE if invalid. */
health_admin_state_t health_admin_state_parse(const char *s, size_t len);
const char *health_admin_state_str(health_admin_state_t s);

/* Parse a per-server state file: the first line that is not blank or a
 * comment, "STATE [reason...]".  Returns 0 (state and reason set; reason
 * points into buf), or -EINVAL with *err set to a static message. */
int health_state_file_parse(const char *buf, size_t len, health_admin_state_t *state,
                            const char **reason, size_t *reason_len, const char **err);

#endif
