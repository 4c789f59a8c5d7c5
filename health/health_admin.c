/*
 * health_admin.c - parsers of the operator's state files: the global admin
 * file (health.admin_file, "TARGET STATE [reason]" per line) and the
 * per-server `file` check ("STATE [reason]").
 *
 * Owns nothing: pure functions over a byte buffer, bounded by its length,
 * safe on any bytes.  The poller re-reads the files when they change and
 * applies the result on top of the measured states (health -> states ->
 * resolver).  Any thread.
 */
#include "health/health_parse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Names of clusters and servers: the characters health_topo_build allows. */
static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

health_admin_state_t health_admin_state_parse(const char *s, size_t len)
{
    if (len == 2 && strncasecmp(s, "UP", 2) == 0) return HEALTH_ADMIN_UP;
    if (len == 4 && strncasecmp(s, "DOWN", 4) == 0) return HEALTH_ADMIN_DOWN;
    if (len == 4 && strncasecmp(s, "BUSY", 4) == 0) return HEALTH_ADMIN_BUSY;
    return HEALTH_ADMIN_NONE;
}

const char *health_admin_state_str(health_admin_state_t s)
{
    switch (s) {
    case HEALTH_ADMIN_UP:
        return "UP";
    case HEALTH_ADMIN_DOWN:
        return "DOWN";
    case HEALTH_ADMIN_BUSY:
        return "BUSY";
    case HEALTH_ADMIN_NONE:
        break;
    }
    return "NONE";
}

/* A line split into words: [s, e) with blanks trimmed on both sides. */
typedef struct span {
    const char *s;
    size_t n;
} span_t;

static span_t next_word(span_t *rest)
{
    size_t i = 0;
    while (i < rest->n && is_blank(rest->s[i]))
        i++;
    size_t j = i;
    while (j < rest->n && !is_blank(rest->s[j]))
        j++;
    span_t w = {rest->s + i, j - i};
    rest->s += j;
    rest->n -= j;
    return w;
}

static span_t trim(span_t x)
{
    while (x.n > 0 && is_blank(x.s[0])) {
        x.s++;
        x.n--;
    }
    while (x.n > 0 && is_blank(x.s[x.n - 1]))
        x.n--;
    if (x.n > HEALTH_ADMIN_REASON_MAX) x.n = HEALTH_ADMIN_REASON_MAX;
    return x;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i])) return false;
    return true;
}

/* Iterate over lines; returns false at the end. */
static bool next_line(const char *buf, size_t len, size_t *off, span_t *line)
{
    if (*off >= len) return false;
    const char *nl = memchr(buf + *off, '\n', len - *off);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line->s = buf + *off;
    line->n = end - *off;
    *off = nl ? end + 1 : len;
    return true;
}

size_t health_admin_parse(const char *buf, size_t len,
                          void (*on_rule)(void *ctx, const health_admin_rule_t *r),
                          void (*on_error)(void *ctx, size_t line, const char *msg), void *ctx)
{
    size_t off = 0, lineno = 0, bad = 0;
    span_t line;
    while (next_line(buf, len, &off, &line)) {
        lineno++;
        span_t rest = line;
        span_t target = next_word(&rest);
        if (target.n == 0 || target.s[0] == '#') continue;
        const char *msg = NULL;
        span_t state = next_word(&rest);
        health_admin_rule_t r = {.line = lineno};
        if (memchr(line.s, '\0', line.n) != NULL) {
            msg = "NUL byte in line";
        } else if (state.n == 0) {
            msg = "expected TARGET STATE [reason]";
        } else if ((r.state = health_admin_state_parse(state.s, state.n)) == HEALTH_ADMIN_NONE) {
            msg = "unknown state (expected UP, DOWN or BUSY)";
        } else if (target.n == 1 && target.s[0] == '*') {
            /* every server */
        } else {
            const char *slash = memchr(target.s, '/', target.n);
            if (slash == NULL) {
                if (name_ok(target.s, target.n)) {
                    r.cluster = target.s;
                    r.cluster_len = target.n;
                } else {
                    msg = "invalid target (expected CLUSTER/SERVER, CLUSTER or *)";
                }
            } else {
                size_t cn = (size_t)(slash - target.s);
                size_t sn = target.n - cn - 1;
                const char *sv = slash + 1;
                if (!name_ok(target.s, cn)) {
                    msg = "invalid cluster name in target";
                } else if (sn == 1 && sv[0] == '*') {
                    r.cluster = target.s;
                    r.cluster_len = cn;
                } else if (!name_ok(sv, sn)) {
                    msg = "invalid server name in target";
                } else {
                    r.cluster = target.s;
                    r.cluster_len = cn;
                    r.server = sv;
                    r.server_len = sn;
                }
            }
        }
        if (msg) {
            bad++;
            if (on_error) on_error(ctx, lineno, msg);
            continue;
        }
        span_t reason = trim(rest);
        r.reason = reason.s;
        r.reason_len = reason.n;
        if (on_rule) on_rule(ctx, &r);
    }
    return bad;
}

int health_state_file_parse(const char *buf, size_t len, health_admin_state_t *state,
                            const char **reason, size_t *reason_len, const char **err)
{
    size_t off = 0;
    span_t line;
    while (next_line(buf, len, &off, &line)) {
        span_t rest = line;
        span_t word = next_word(&rest);
        if (word.n == 0 || word.s[0] == '#') continue;
        if (memchr(line.s, '\0', line.n) != NULL) {
            *err = "NUL byte in the state file";
            return -EINVAL;
        }
        health_admin_state_t s = health_admin_state_parse(word.s, word.n);
        if (s == HEALTH_ADMIN_NONE) {
            *err = "unknown state (expected UP, DOWN or BUSY)";
            return -EINVAL;
        }
        span_t r = trim(rest);
        *state = s;
        *reason = r.s;
        *reason_len = r.n;
        return 0;
    }
    *err = "empty state file (expected UP, DOWN or BUSY)";
    return -EINVAL;
}
