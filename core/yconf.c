/*
 * yconf.c - libyaml document -> positioned node tree; settings tables.
 */
#include "core/yconf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

typedef struct conv {
    arena_t *a;
    diag_list_t *d;
    const char *file; /* arena copy */
    yaml_document_t *doc;
    size_t budget;
    bool failed;
} conv_t;

static void set_pos(conv_t *c, diag_pos_t *pos, yaml_mark_t m)
{
    pos->file = c->file;
    pos->line = (uint32_t)m.line + 1;
    pos->col = (uint32_t)m.column + 1;
}

static const yconf_node_t *convert(conv_t *c, yaml_node_t *yn, int depth);

static bool scalar_eq(const yconf_node_t *a, const yconf_node_t *b)
{
    return a->u.scalar.len == b->u.scalar.len &&
           memcmp(a->u.scalar.str, b->u.scalar.str, a->u.scalar.len) == 0;
}

static const yconf_node_t *convert(conv_t *c, yaml_node_t *yn, int depth)
{
    if (c->failed)
        return NULL;
    if (yn == NULL) {
        c->failed = true;
        diag_error(c->d, &(diag_pos_t){c->file, 0, 0}, "malformed YAML document");
        return NULL;
    }
    yconf_node_t *n = arena_calloc(c->a, 1, sizeof(*n));
    set_pos(c, &n->pos, yn->start_mark);
    if (depth > YCONF_MAX_DEPTH) {
        c->failed = true;
        diag_error(c->d, &n->pos, "nesting deeper than %d levels (or an alias that refers to itself)",
                   YCONF_MAX_DEPTH);
        return NULL;
    }
    if (c->budget == 0) {
        c->failed = true;
        diag_error(c->d, &n->pos, "document expands to more than %u nodes (aliases?)",
                   YCONF_MAX_NODES);
        return NULL;
    }
    c->budget--;
    switch (yn->type) {
    case YAML_SCALAR_NODE:
        n->kind = YCONF_SCALAR;
        n->u.scalar.str = arena_strndup(c->a, (const char *)yn->data.scalar.value,
                                        yn->data.scalar.length);
        n->u.scalar.len = yn->data.scalar.length;
        n->u.scalar.plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                            yn->data.scalar.style == YAML_ANY_SCALAR_STYLE;
        return n;
    case YAML_SEQUENCE_NODE: {
        n->kind = YCONF_SEQ;
        size_t cnt = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
        const yconf_node_t **items = arena_calloc(c->a, cnt ? cnt : 1, sizeof(*items));
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_t *child =
                yaml_document_get_node(c->doc, yn->data.sequence.items.start[i]);
            items[i] = convert(c, child, depth + 1);
            if (c->failed)
                return NULL;
        }
        n->u.seq.items = items;
        n->u.seq.n = cnt;
        return n;
    }
    case YAML_MAPPING_NODE: {
        n->kind = YCONF_MAP;
        size_t cnt = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
        yconf_pair_t *pairs = arena_calloc(c->a, cnt ? cnt : 1, sizeof(*pairs));
        size_t kept = 0;
        /* Duplicate keys: a linear scan for small mappings, a hash set of
         * kept indexes for large ones (zone records, CIDR overrides). */
        size_t hcap = 0;
        uint32_t *hset = NULL;
        if (cnt > 16) {
            hcap = 64;
            while (hcap < cnt * 2)
                hcap <<= 1;
            hset = calloc(hcap, sizeof(uint32_t));
            if (hset == NULL)
                abort();
        }
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_pair_t *p = &yn->data.mapping.pairs.start[i];
            const yconf_node_t *k = convert(c, yaml_document_get_node(c->doc, p->key), depth + 1);
            const yconf_node_t *v =
                c->failed ? NULL : convert(c, yaml_document_get_node(c->doc, p->value), depth + 1);
            if (c->failed) {
                free(hset);
                return NULL;
            }
            if (k->kind != YCONF_SCALAR) {
                diag_error(c->d, &k->pos, "mapping key must be a scalar, got a %s",
                           yconf_kind_name(k->kind));
                continue;
            }
            /* Duplicate keys are an error at the second key's position;
             * the first value stays. */
            const yconf_node_t *first = NULL;
            size_t slot = 0;
            if (hset) {
                uint64_t h = 1469598103934665603ull;
                for (size_t b = 0; b < k->u.scalar.len; b++)
                    h = (h ^ (uint8_t)k->u.scalar.str[b]) * 1099511628211ull;
                slot = (size_t)(h ^ (h >> 29)) & (hcap - 1);
                while (hset[slot] != 0) {
                    if (scalar_eq(pairs[hset[slot] - 1].key, k)) {
                        first = pairs[hset[slot] - 1].key;
                        break;
                    }
                    slot = (slot + 1) & (hcap - 1);
                }
            } else {
                for (size_t j = 0; j < kept && !first; j++)
                    if (scalar_eq(pairs[j].key, k))
                        first = pairs[j].key;
            }
            if (first) {
                diag_error(c->d, &k->pos, "duplicate key '%s' (first at line %u)",
                           k->u.scalar.str, first->pos.line);
                continue;
            }
            if (hset)
                hset[slot] = (uint32_t)kept + 1;
            pairs[kept].key = k;
            pairs[kept].value = v;
            kept++;
        }
        free(hset);
        n->u.map.pairs = pairs;
        n->u.map.n = kept;
        return n;
    }
    default:
        c->failed = true;
        diag_error(c->d, &n->pos, "empty or unknown YAML node");
        return NULL;
    }
}

static void report_parser_error(conv_t *c, yaml_parser_t *p)
{
    diag_pos_t pos = {c->file, (uint32_t)p->problem_mark.line + 1,
                      (uint32_t)p->problem_mark.column + 1};
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a line. */
        diag_error(c->d, &(diag_pos_t){c->file, 0, 0}, "%s at byte %zu", problem,
                   p->problem_offset);
    } else if (p->context) {
        diag_error(c->d, &pos, "%s %s (line %u, column %u)", problem, p->context,
                   (unsigned)p->context_mark.line + 1, (unsigned)p->context_mark.column + 1);
    } else {
        diag_error(c->d, &pos, "%s", problem);
    }
}

int yconf_parse_buffer(arena_t *a, const char *name, const void *buf, size_t len, diag_list_t *d,
                       const yconf_node_t **out)
{
    conv_t c = {.a = a, .d = d, .file = arena_strdup(a, name), .budget = YCONF_MAX_NODES};
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        diag_error(d, &(diag_pos_t){c.file, 0, 0}, "cannot initialise the YAML parser");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_parser_error(&c, &parser);
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    c.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const yconf_node_t *tree;
    if (root == NULL) {
        yconf_node_t *empty = arena_calloc(a, 1, sizeof(*empty));
        empty->kind = YCONF_MAP;
        empty->pos = (diag_pos_t){c.file, 1, 1};
        empty->u.map.pairs = NULL;
        tree = empty;
    } else {
        tree = convert(&c, root, 0);
    }
    yaml_document_delete(&doc);
    /* A second document in the same file is almost always a mistake (a stray
     * "---"); say so rather than silently ignore it. */
    if (!c.failed && root != NULL) {
        yaml_document_t next;
        if (yaml_parser_load(&parser, &next)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2 != NULL) {
                diag_error(d, &(diag_pos_t){c.file, (uint32_t)r2->start_mark.line + 1,
                                            (uint32_t)r2->start_mark.column + 1},
                           "more than one YAML document in a file");
                c.failed = true;
            }
            yaml_document_delete(&next);
        } else {
            report_parser_error(&c, &parser);
            c.failed = true;
        }
    }
    yaml_parser_delete(&parser);
    if (c.failed || tree == NULL)
        return -EINVAL;
    *out = tree;
    return 0;
}

int yconf_parse_file(arena_t *a, const char *path, size_t max_bytes, diag_list_t *d,
                     const yconf_node_t **out)
{
    if (max_bytes == 0)
        max_bytes = YCONF_MAX_FILE_BYTES;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        diag_error(d, &(diag_pos_t){path, 0, 0}, "cannot open: %s", strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        diag_error(d, &(diag_pos_t){path, 0, 0}, "is a directory, not a YAML file");
        return -EISDIR;
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max_bytes) {
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        diag_error(d, &(diag_pos_t){path, 0, 0}, "read error");
        return -EIO;
    }
    if (len > max_bytes) {
        free(buf);
        diag_error(d, &(diag_pos_t){path, 0, 0}, "file larger than the limit of %zu bytes",
                   max_bytes);
        return -EFBIG;
    }
    int rc = yconf_parse_buffer(a, path, buf, len, d, out);
    free(buf);
    return rc;
}

const char *yconf_kind_name(yconf_kind_t kind)
{
    switch (kind) {
    case YCONF_SCALAR:
        return "scalar";
    case YCONF_SEQ:
        return "sequence";
    case YCONF_MAP:
        return "mapping";
    }
    return "node";
}

bool yconf_is_null(const yconf_node_t *n)
{
    if (n == NULL)
        return true;
    if (n->kind != YCONF_SCALAR || !n->u.scalar.plain)
        return false;
    const char *s = n->u.scalar.str;
    return n->u.scalar.len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const yconf_node_t *yconf_map_get(const yconf_node_t *map, const char *key)
{
    if (map == NULL || map->kind != YCONF_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->u.map.n; i++) {
        const yconf_node_t *k = map->u.map.pairs[i].key;
        if (k->u.scalar.len == klen && memcmp(k->u.scalar.str, key, klen) == 0)
            return map->u.map.pairs[i].value;
    }
    return NULL;
}

void yconf_error(diag_list_t *d, const yconf_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, DIAG_ERROR, n ? &n->pos : NULL, fmt, ap);
    va_end(ap);
}

void yconf_warn(diag_list_t *d, const yconf_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, DIAG_WARNING, n ? &n->pos : NULL, fmt, ap);
    va_end(ap);
}

static const char *kind_article(yconf_kind_t k)
{
    switch (k) {
    case YCONF_SCALAR:
        return "a scalar";
    case YCONF_SEQ:
        return "a sequence";
    case YCONF_MAP:
        return "a mapping";
    }
    return "a node";
}

bool yconf_expect(diag_list_t *d, const yconf_node_t *n, yconf_kind_t kind, const char *path)
{
    if (n != NULL && n->kind == kind)
        return true;
    if (n == NULL) {
        diag_error(d, NULL, "%s: missing, expected %s", path, kind_article(kind));
        return false;
    }
    yconf_error(d, n, "%s: expected %s, got %s", path, kind_article(kind),
                yconf_is_null(n) ? "nothing" : kind_article(n->kind));
    return false;
}

/* ---- single-value parsers ---- */

int yconf_str_to_u64(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        uint64_t dgt = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return -ERANGE;
        v = v * 10 + dgt;
    }
    *out = v;
    return 0;
}

int yconf_str_to_double(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Split "12.5Gbit" into number and unit; the number must be a plain
 * non-negative decimal. */
static int split_number(const char *s, double *num, const char **unit)
{
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    char buf[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof(buf))
        return -ERANGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *num = strtod(buf, NULL);
    while (*p == ' ')
        p++;
    *unit = p;
    return 0;
}

/* A duration in milliseconds, before rounding. */
static int duration_ms_exact(const char *s, double *out)
{
    double v;
    const char *unit;
    if (s == NULL || split_number(s, &v, &unit) != 0)
        return -EINVAL;
    double mul;
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        mul = 1000;
    else if (strcmp(unit, "ms") == 0)
        mul = 1;
    else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0)
        mul = 60000;
    else if (strcmp(unit, "h") == 0)
        mul = 3600000;
    else if (strcmp(unit, "d") == 0)
        mul = 86400000;
    else
        return -EINVAL;
    double ms = v * mul;
    if (ms > 1e15)
        return -ERANGE;
    *out = ms;
    return 0;
}

int yconf_str_to_duration_ms(const char *s, uint64_t *out)
{
    double ms;
    int rc = duration_ms_exact(s, &ms);
    if (rc == 0)
        *out = (uint64_t)llround(ms);
    return rc;
}

/* A duration in its largest whole unit: 100ms, 1.5s, 1h, 1d. */
static void fmt_duration(char *buf, size_t size, double ms)
{
    static const struct {
        double ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (ms >= units[i].ms && fmod(ms, units[i].ms) == 0) {
            snprintf(buf, size, "%.0f%s", ms / units[i].ms, units[i].unit);
            return;
        }
    if (ms >= 1000)
        snprintf(buf, size, "%gs", ms / 1000);
    else
        snprintf(buf, size, "%gms", ms);
}

int yconf_str_to_bandwidth(const char *s, uint64_t *out)
{
    double v;
    const char *unit;
    if (s == NULL || split_number(s, &v, &unit) != 0)
        return -EINVAL;
    double mul = 1;
    const char *rest = unit;
    switch (*unit) {
    case 'k':
    case 'K':
        mul = 1e3;
        rest++;
        break;
    case 'M':
        mul = 1e6;
        rest++;
        break;
    case 'G':
        mul = 1e9;
        rest++;
        break;
    case 'T':
        mul = 1e12;
        rest++;
        break;
    default:
        break;
    }
    /* Only bit units: "MB" would be ambiguous between bytes and bits. */
    if (!(*rest == '\0' || strcmp(rest, "bit") == 0 || strcmp(rest, "bps") == 0 ||
          strcmp(rest, "bit/s") == 0 || strcmp(rest, "b/s") == 0))
        return -EINVAL;
    if (*rest == '\0' && rest != unit)
        return -EINVAL; /* "10G" alone: say the unit */
    double bps = v * mul;
    if (bps > 1.8e19)
        return -ERANGE;
    *out = (uint64_t)llround(bps);
    return 0;
}

int yconf_str_to_percent(const char *s, double *out)
{
    if (s == NULL)
        return -EINVAL;
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '%') {
        char buf[64];
        if (n >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, s, n - 1);
        buf[n - 1] = '\0';
        double v;
        if (yconf_str_to_double(buf, &v) != 0)
            return -EINVAL;
        *out = v / 100.0;
        return 0;
    }
    double v;
    if (yconf_str_to_double(s, &v) != 0)
        return -EINVAL;
    if (v > 1.0 || v < 0.0)
        return -ERANGE; /* a fraction 0..1, or write "90%" */
    *out = v;
    return 0;
}

int yconf_str_to_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "True", "Yes", "On", "TRUE", NULL};
    static const char *const no[] = {"false", "no", "off", "False", "No", "Off", "FALSE", NULL};
    for (int i = 0; yes[i]; i++)
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    for (int i = 0; no[i]; i++)
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    return -EINVAL;
}

static const char *type_hint(yconf_type_t t)
{
    switch (t) {
    case YCONF_T_BOOL:
        return "true or false";
    case YCONF_T_U32:
    case YCONF_T_U64:
        return "a non-negative integer";
    case YCONF_T_DOUBLE:
        return "a number";
    case YCONF_T_PERCENT:
        return "a percentage such as 90% or a fraction such as 0.9";
    case YCONF_T_DURATION:
        return "a duration such as 500ms, 1s, 5m";
    case YCONF_T_BANDWIDTH:
        return "a bandwidth in bits such as 10Gbit, 100Mbit";
    case YCONF_T_STR:
        return "a string";
    case YCONF_T_ENUM:
        return "one of the listed names";
    case YCONF_T_NODE:
        return "a value";
    case YCONF_T_SEQ:
        return "a sequence";
    case YCONF_T_MAP:
        return "a mapping";
    }
    return "a value";
}

static void fmt_num(char *buf, size_t size, yconf_type_t t, double v)
{
    if (t == YCONF_T_PERCENT)
        snprintf(buf, size, "%g%%", v * 100.0);
    else if (t == YCONF_T_DURATION)
        fmt_duration(buf, size, v);
    else if (t == YCONF_T_BANDWIDTH)
        snprintf(buf, size, "%gbit", v);
    else
        snprintf(buf, size, "%.15g", v);
}

bool yconf_parse_value(const yconf_node_t *n, yconf_type_t type, double min, double max,
                       const char *const *choices, void *out, arena_t *a, diag_list_t *d,
                       const char *path)
{
    if (type == YCONF_T_NODE) {
        *(const yconf_node_t **)out = n;
        return true;
    }
    if (type == YCONF_T_SEQ || type == YCONF_T_MAP) {
        yconf_kind_t want = type == YCONF_T_SEQ ? YCONF_SEQ : YCONF_MAP;
        if (!yconf_expect(d, n, want, path))
            return false;
        *(const yconf_node_t **)out = n;
        return true;
    }
    if (n->kind != YCONF_SCALAR) {
        yconf_error(d, n, "%s: expected %s, got %s", path, type_hint(type),
                    kind_article(n->kind));
        return false;
    }
    const char *s = n->u.scalar.str;
    if (strlen(s) != n->u.scalar.len) {
        yconf_error(d, n, "%s: value contains a NUL byte", path);
        return false;
    }
    int rc = 0;
    double num = 0;
    bool numeric = true;
    union {
        bool b;
        uint64_t u;
        double f;
    } v = {0};
    switch (type) {
    case YCONF_T_BOOL:
        rc = yconf_str_to_bool(s, &v.b);
        numeric = false;
        break;
    case YCONF_T_U32:
    case YCONF_T_U64:
        rc = yconf_str_to_u64(s, &v.u);
        num = (double)v.u;
        if (rc == 0 && type == YCONF_T_U32 && v.u > UINT32_MAX)
            rc = -ERANGE;
        break;
    case YCONF_T_DOUBLE:
        rc = yconf_str_to_double(s, &v.f);
        num = v.f;
        break;
    case YCONF_T_PERCENT:
        rc = yconf_str_to_percent(s, &v.f);
        num = v.f;
        break;
    case YCONF_T_DURATION:
        /* The range holds for the value written, before it is rounded to
         * whole milliseconds (0.5ms is below 1ms). */
        rc = duration_ms_exact(s, &num);
        if (rc == 0)
            v.u = (uint64_t)llround(num);
        break;
    case YCONF_T_BANDWIDTH:
        rc = yconf_str_to_bandwidth(s, &v.u);
        num = (double)v.u;
        break;
    case YCONF_T_STR:
        *(const char **)out = arena_strndup(a, s, n->u.scalar.len);
        return true;
    case YCONF_T_ENUM:
        for (int i = 0; choices && choices[i]; i++) {
            if (strcmp(choices[i], s) == 0) {
                *(int *)out = i;
                return true;
            }
        }
        {
            char list[512] = "";
            size_t used = 0;
            for (int i = 0; choices && choices[i]; i++) {
                int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                                 choices[i]);
                if (w < 0 || (size_t)w >= sizeof(list) - used)
                    break;
                used += (size_t)w;
            }
            yconf_error(d, n, "%s: unknown value '%s' (expected one of: %s)", path, s, list);
        }
        return false;
    default:
        return false;
    }
    if (rc != 0) {
        yconf_error(d, n, "%s: invalid value '%s': expected %s", path, s, type_hint(type));
        return false;
    }
    if (numeric && (min != 0 || max != 0) && (num < min || num > max)) {
        char lo[48], hi[48];
        fmt_num(lo, sizeof(lo), type, min);
        fmt_num(hi, sizeof(hi), type, max);
        yconf_error(d, n, "%s: value '%s' out of range [%s, %s]", path, s, lo, hi);
        return false;
    }
    switch (type) {
    case YCONF_T_BOOL:
        *(bool *)out = v.b;
        break;
    case YCONF_T_U32:
        *(uint32_t *)out = (uint32_t)v.u;
        break;
    case YCONF_T_U64:
    case YCONF_T_DURATION:
    case YCONF_T_BANDWIDTH:
        *(uint64_t *)out = v.u;
        break;
    case YCONF_T_DOUBLE:
    case YCONF_T_PERCENT:
        *(double *)out = v.f;
        break;
    default:
        break;
    }
    return true;
}

size_t yconf_apply(const yconf_node_t *map, const yconf_key_t *table, void *target, arena_t *a,
                   diag_list_t *d, const char *path, const yconf_node_t **nodes)
{
    size_t before = diag_errors(d);
    size_t rows = 0;
    while (table[rows].name)
        rows++;
    if (nodes)
        for (size_t i = 0; i < rows; i++)
            nodes[i] = NULL;
    char sub[512];
    const char *dot = path && *path ? "." : "";
    const char *pfx = path ? path : "";

    if (map != NULL && !yconf_is_null(map) && !yconf_expect(d, map, YCONF_MAP, *pfx ? pfx : "value"))
        map = NULL;
    if (yconf_is_null(map))
        map = NULL;

    /* Defaults first, through the same parser as user values. */
    for (size_t i = 0; i < rows; i++) {
        const yconf_key_t *k = &table[i];
        if (k->def == NULL)
            continue;
        yconf_node_t dn = {.kind = YCONF_SCALAR, .pos = {"(default)", 0, 0}};
        dn.u.scalar.str = k->def;
        dn.u.scalar.len = strlen(k->def);
        dn.u.scalar.plain = true;
        snprintf(sub, sizeof(sub), "%s%s%s (default)", pfx, dot, k->name);
        yconf_parse_value(&dn, k->type, k->min, k->max, k->choices, (char *)target + k->offset,
                          a, d, sub);
    }
    if (map == NULL) {
        for (size_t i = 0; i < rows; i++)
            if (table[i].flags & YCONF_REQUIRED)
                diag_error(d, NULL, "%s%s%s: required setting missing", pfx, dot, table[i].name);
        return diag_errors(d) - before;
    }
    bool seen[256] = {false};
    for (size_t p = 0; p < map->u.map.n; p++) {
        const yconf_node_t *key = map->u.map.pairs[p].key;
        const yconf_node_t *val = map->u.map.pairs[p].value;
        size_t i;
        for (i = 0; i < rows; i++)
            if (strcmp(table[i].name, key->u.scalar.str) == 0)
                break;
        if (i == rows) {
            char known[512] = "";
            size_t used = 0;
            for (size_t j = 0; j < rows; j++) {
                int w = snprintf(known + used, sizeof(known) - used, "%s%s", j ? ", " : "",
                                 table[j].name);
                if (w < 0 || (size_t)w >= sizeof(known) - used)
                    break;
                used += (size_t)w;
            }
            yconf_error(d, key, "%s%sunknown key '%s' (known: %s)", pfx, *pfx ? ": " : "",
                        key->u.scalar.str, known);
            continue;
        }
        if (i < sizeof(seen))
            seen[i] = true;
        if (nodes)
            nodes[i] = val;
        const yconf_key_t *k = &table[i];
        snprintf(sub, sizeof(sub), "%s%s%s", pfx, dot, k->name);
        void *field = (char *)target + k->offset;
        if (!yconf_parse_value(val, k->type, k->min, k->max, k->choices, field, a, d, sub))
            continue;
        if (k->check) {
            const char *why = k->check(field);
            if (why)
                yconf_error(d, val, "%s: %s", sub, why);
        }
    }
    for (size_t i = 0; i < rows && i < sizeof(seen); i++)
        if ((table[i].flags & YCONF_REQUIRED) && !seen[i])
            yconf_error(d, map, "%s%s%s: required setting missing", pfx, dot, table[i].name);
    return diag_errors(d) - before;
}
