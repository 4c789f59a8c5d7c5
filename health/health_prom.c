/*
 * health_prom.c - the Prometheus text exposition parser (format 0.0.4, the
 * one node_exporter serves as text/plain; version=0.0.4).
 *
 * Owns nothing: a pure, allocation-free function over a byte buffer, fed by
 * the poller with each `prometheus` check's response body (health ->
 * states -> resolver).  It is bounded by the input length (one pass, no
 * recursion, no backtracking) and safe on any bytes, including NULs; it is
 * fuzzed.
 *
 * Grammar of a sample line (blanks are spaces and tabs):
 *
 *   line      = name [blanks] ["{" [labels] "}"] blanks value [blanks ts] [blanks "#" ...]
 *   name      = [a-zA-Z_:][a-zA-Z0-9_:]*
 *   labels    = label {"," label} [","]
 *   label     = [blanks] lname [blanks] "=" [blanks] '"' escaped '"' [blanks]
 *   escaped   = any bytes but '"' and '\', or \\ \" \n
 *   value     = a Go ParseFloat float: 1, -2.5, 1.5e+09, NaN, +Inf, -Inf, 0x1p3
 *   ts        = ["-"] digits   (milliseconds since the epoch)
 */
#include "health/health_parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cursor {
    const char *s; /* the line, without its '\n' (and '\r') */
    size_t n;
    size_t i;
} cursor_t;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static void skip_blanks(cursor_t *c)
{
    while (c->i < c->n && is_blank(c->s[c->i]))
        c->i++;
}

static bool at_end(const cursor_t *c)
{
    return c->i >= c->n;
}

/* The state of one matcher while a series' labels are read. */
typedef struct mstate {
    bool seen;
    bool equal;
} mstate_t;

/* Read a quoted label value starting at the opening quote.  When m is not
 * NULL, compare its unescaped bytes with want[0..wlen) on the fly, so no
 * copy is needed.  Returns NULL or an error message. */
static const char *read_label_value(cursor_t *c, const char *want, size_t wlen, bool *equal)
{
    if (at_end(c) || c->s[c->i] != '"') return "expected '\"' to open a label value";
    c->i++;
    size_t k = 0;
    bool eq = true;
    for (;;) {
        if (at_end(c)) return "unterminated label value";
        char ch = c->s[c->i++];
        if (ch == '"') break;
        if (ch == '\\') {
            if (at_end(c)) return "unterminated escape in label value";
            char e = c->s[c->i++];
            if (e == 'n')
                ch = '\n';
            else if (e == '\\' || e == '"')
                ch = e;
            else {
                c->i -= 2; /* point at the backslash */
                return "invalid escape in label value (only \\\\, \\\" and \\n)";
            }
        }
        if (want != NULL) {
            if (k < wlen && want[k] == ch)
                k++;
            else
                eq = false;
        }
    }
    if (want != NULL) *equal = eq && k == wlen;
    return NULL;
}

/* Parse the value token as a float.  Go's ParseFloat (which Prometheus
 * uses) accepts what strtod accepts in the C locale, except strtod's
 * "nan(...)" form, which the character check below refuses. */
static const char *read_value(cursor_t *c, double *out)
{
    size_t start = c->i;
    while (c->i < c->n && !is_blank(c->s[c->i]))
        c->i++;
    size_t len = c->i - start;
    if (len == 0) return "expected a value";
    char tok[64];
    if (len >= sizeof(tok)) {
        c->i = start;
        return "value too long";
    }
    for (size_t j = 0; j < len; j++) {
        char ch = c->s[start + j];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '.' || ch == '+' || ch == '-')) {
            c->i = start + j;
            return "invalid character in value";
        }
    }
    memcpy(tok, c->s + start, len);
    tok[len] = '\0';
    char *end;
    double v = strtod(tok, &end);
    if (end != tok + len) {
        c->i = start;
        return "invalid value";
    }
    *out = v;
    return NULL;
}

static const char *read_timestamp(cursor_t *c, int64_t *out)
{
    bool neg = false;
    if (c->i < c->n && c->s[c->i] == '-') {
        neg = true;
        c->i++;
    }
    size_t start = c->i;
    uint64_t v = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        uint64_t d = (uint64_t)(c->s[c->i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) return "timestamp out of range";
        v = v * 10 + d;
        c->i++;
    }
    if (c->i == start || (c->i < c->n && !is_blank(c->s[c->i]))) return "invalid timestamp";
    *out = neg ? -(int64_t)v : (int64_t)v;
    return NULL;
}

/* Parse one sample line of the queried metric, whose name ends at c->i.
 * Returns NULL or an error message (c->i at the problem). */
static const char *parse_sample(cursor_t *c, const health_prom_query_t *q, mstate_t *ms,
                                bool *match, double *value, bool *has_ts, int64_t *ts)
{
    for (size_t j = 0; j < q->n_labels; j++)
        ms[j] = (mstate_t){false, false};
    skip_blanks(c);
    if (!at_end(c) && c->s[c->i] == '{') {
        c->i++;
        for (;;) {
            skip_blanks(c);
            if (at_end(c)) return "unterminated label set";
            if (c->s[c->i] == '}') {
                c->i++;
                break;
            }
            size_t ns = c->i;
            char first = c->s[c->i];
            if (!(is_name_start(first) && first != ':')) return "expected a label name";
            while (c->i < c->n && is_name_char(c->s[c->i]) && c->s[c->i] != ':')
                c->i++;
            size_t nlen = c->i - ns;
            size_t mi = q->n_labels;
            for (size_t j = 0; j < q->n_labels; j++) {
                if (strlen(q->label_names[j]) == nlen &&
                    memcmp(q->label_names[j], c->s + ns, nlen) == 0) {
                    mi = j;
                    break;
                }
            }
            skip_blanks(c);
            if (at_end(c) || c->s[c->i] != '=') return "expected '=' after the label name";
            c->i++;
            skip_blanks(c);
            const char *want = NULL;
            size_t wlen = 0;
            if (mi < q->n_labels) {
                if (ms[mi].seen) {
                    c->i = ns;
                    return "duplicate label name";
                }
                want = q->label_values[mi];
                wlen = strlen(want);
            }
            bool eq = false;
            const char *e = read_label_value(c, want, wlen, &eq);
            if (e) return e;
            if (mi < q->n_labels) ms[mi] = (mstate_t){true, eq};
            skip_blanks(c);
            if (at_end(c)) return "unterminated label set";
            if (c->s[c->i] == ',') {
                c->i++;
                continue;
            }
            if (c->s[c->i] == '}') {
                c->i++;
                break;
            }
            return "expected ',' or '}' after a label";
        }
        skip_blanks(c);
    } else {
        /* Without labels the name must be followed by a blank. */
        if (c->i > 0 && !is_blank(c->s[c->i - 1]) && !at_end(c))
            return "expected a blank after the metric name";
    }
    if (at_end(c)) return "expected a value";
    const char *e = read_value(c, value);
    if (e) return e;
    skip_blanks(c);
    *has_ts = false;
    if (!at_end(c) && c->s[c->i] != '#') {
        e = read_timestamp(c, ts);
        if (e) return e;
        *has_ts = true;
        skip_blanks(c);
    }
    /* An OpenMetrics exemplar (" # {trace_id="..."} 1") is ignored. */
    if (!at_end(c) && c->s[c->i] != '#') return "unexpected text after the value";
    bool ok = true;
    for (size_t j = 0; j < q->n_labels && ok; j++) {
        if (q->label_values[j][0] == '\0')
            ok = !ms[j].seen || ms[j].equal; /* empty matcher: absent or empty */
        else
            ok = ms[j].seen && ms[j].equal;
    }
    *match = ok;
    return NULL;
}

int health_prom_scan(const char *buf, size_t len, const health_prom_query_t *q,
                     health_prom_result_t *res)
{
    if (q->n_labels > HEALTH_PROM_MAX_MATCHERS) return -E2BIG;
    if (q->metric == NULL || q->metric[0] == '\0') return -EINVAL;
    health_prom_result_t r = {0};
    size_t mlen = strlen(q->metric);
    mstate_t ms[HEALTH_PROM_MAX_MATCHERS];
    bool all_ts = true;
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - buf) : len;
        cursor_t c = {buf + off, end - off, 0};
        if (c.n > 0 && c.s[c.n - 1] == '\r') c.n--;
        r.lines++;
        off = nl ? end + 1 : len;

        skip_blanks(&c);
        if (at_end(&c) || c.s[c.i] == '#') continue;
        if (!is_name_start(c.s[c.i])) {
            r.err = "expected a metric name";
            r.err_line = r.lines;
            r.err_col = c.i + 1;
            *res = r;
            return -EINVAL;
        }
        /* Most lines are other metrics: one comparison decides, so a large
         * exposition costs little more than finding its line ends. */
        if (c.n - c.i < mlen || c.s[c.i + mlen - 1] != q->metric[mlen - 1] ||
            memcmp(c.s + c.i, q->metric, mlen) != 0 ||
            (c.n - c.i > mlen && is_name_char(c.s[c.i + mlen])))
            continue; /* another metric: only its first character is checked */
        c.i += mlen;
        bool match = false, has_ts = false;
        double v = 0;
        int64_t ts = 0;
        const char *e = parse_sample(&c, q, ms, &match, &v, &has_ts, &ts);
        if (e) {
            r.err = e;
            r.err_line = r.lines;
            r.err_col = (c.i < c.n ? c.i : c.n) + 1;
            *res = r;
            return -EINVAL;
        }
        if (!match) continue;
        r.value = r.matches == 0 ? v : r.value + v;
        if (!has_ts)
            all_ts = false;
        else if (r.matches == 0 || ts > r.timestamp_ms)
            r.timestamp_ms = ts;
        r.matches++;
    }
    r.has_timestamp = r.matches > 0 && all_ts;
    if (!r.has_timestamp) r.timestamp_ms = 0;
    *res = r;
    return 0;
}
