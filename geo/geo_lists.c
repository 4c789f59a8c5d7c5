/*
 * geo_lists.c - the text sources of the geo room: ASN range CSVs
 * (start,end,asn,org, as @ip-location-db/asn publishes them) and carrier
 * CIDR list files (one network a line, '#' comments).
 *
 * Owns the parsed CSV rows kept for explain (freed by geo_free) and the
 * build-time prefix sets.  Every bad line is a diagnostic at
 * file:line:column of the offending field; a file with too many bad lines
 * is abandoned after GEO_LIST_MAX_ERRORS of them.  Sits beside geo_mmdb.c:
 * geo_conf.c calls in here, geo_table.c merges what comes out.  Load time
 * only.
 */
#include "geo/geo_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GEO_LIST_MAX_ERRORS 20
#define GEO_LIST_MAX_BYTES  (1024u * 1024u * 1024u) /* 1 GiB */
#define GEO_LIST_MAX_LINE   4096

/* Read a whole file into a NUL-terminated malloc buffer. */
static char *slurp(const char *path, const yconf_node_t *node, const char *cfgpath, size_t *len,
                   diag_list_t *d)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        yconf_error(d, node, "%s: cannot open '%s': %s", cfgpath, path, strerror(e));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        yconf_error(d, node, "%s: cannot open '%s': not a regular file", cfgpath, path);
        return NULL;
    }
    if ((uint64_t)st.st_size > GEO_LIST_MAX_BYTES) {
        fclose(f);
        yconf_error(d, node, "%s: '%s' is larger than the limit of %u bytes", cfgpath, path,
                    GEO_LIST_MAX_BYTES);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        fclose(f);
        yconf_error(d, node, "%s: '%s': out of memory", cfgpath, path);
        return NULL;
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    bool bad = got != n || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        yconf_error(d, node, "%s: cannot read '%s'", cfgpath, path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

bool geo__parse_cidr(const char *s, netaddr_t *out, const char **why)
{
    if (netaddr_parse_cidr(s, false, out) == 0) return true;
    netaddr_t tmp;
    if (netaddr_parse_cidr(s, true, &tmp) == 0)
        *why = "address bits set past the prefix length";
    else
        *why = "expected an address or ADDRESS/PREFIX";
    return false;
}

/* ---- a line reader that counts errors per file ---- */

typedef struct lines {
    const char *path;
    const char *buf;
    size_t len, pos;
    uint32_t lineno;
    unsigned errors;
    diag_list_t *d;
} lines_t;

/* Next line without its end of line (LF or CRLF); false at the end. */
static bool next_line(lines_t *L, const char **s, size_t *n)
{
    if (L->pos >= L->len) return false;
    const char *p = L->buf + L->pos;
    const char *nl = memchr(p, '\n', L->len - L->pos);
    size_t k = nl ? (size_t)(nl - p) : L->len - L->pos;
    L->pos += k + (nl ? 1 : 0);
    if (k > 0 && p[k - 1] == '\r') k--;
    L->lineno++;
    *s = p;
    *n = k;
    return true;
}

static void line_error(lines_t *L, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line_error(lines_t *L, size_t col, const char *fmt, ...)
{
    L->errors++;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_pos_t pos = {L->path, L->lineno, (uint32_t)col};
    diag_error(L->d, &pos, "%s", msg);
    if (L->errors == GEO_LIST_MAX_ERRORS)
        diag_error(L->d, &pos, "too many errors, stopped reading '%s'", L->path);
}

/* Copy at most 40 bytes of a field for a message, printable ASCII only. */
static const char *shown(const char *s, size_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size && i < 40; i++)
        buf[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > 40 && k + 4 < size) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

/* ---- ASN range CSV ---- */

typedef struct field {
    const char *s; /* unquoted content (may point into tmp) */
    size_t n;
    size_t col; /* 1-based column where the field starts */
} field_t;

/* Split one CSV line (RFC 4180 quoting: "..." with "" for a quote).
 * Quoted fields are unescaped into tmp.  Returns the number of fields, or -1
 * after reporting an error. */
static int split_csv(lines_t *L, const char *s, size_t n, field_t *f, int maxf, char *tmp,
                     size_t tmpsize)
{
    int nf = 0;
    size_t i = 0, t = 0;
    for (;;) {
        if (nf == maxf) return maxf + 1; /* too many */
        field_t *x = &f[nf++];
        x->col = i + 1;
        if (i < n && s[i] == '"') {
            size_t q = i++;
            x->s = tmp + t;
            size_t start = t;
            for (;;) {
                if (i >= n) {
                    line_error(L, q + 1, "unterminated quoted field");
                    return -1;
                }
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        if (t < tmpsize) tmp[t++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (t < tmpsize) tmp[t++] = s[i];
                i++;
            }
            x->n = t - start;
            if (i < n && s[i] != ',') {
                line_error(L, i + 1, "unexpected text after a quoted field");
                return -1;
            }
        } else {
            x->s = s + i;
            size_t st = i;
            while (i < n && s[i] != ',') {
                if (s[i] == '"') {
                    line_error(L, i + 1, "quote inside an unquoted field");
                    return -1;
                }
                i++;
            }
            x->n = i - st;
        }
        if (i >= n) return nf;
        i++; /* the comma */
    }
}

static bool field_addr(const field_t *f, netaddr_t *a)
{
    char buf[NETADDR_STRLEN];
    if (f->n == 0 || f->n >= sizeof(buf)) return false;
    memcpy(buf, f->s, f->n);
    buf[f->n] = '\0';
    return netaddr_parse(buf, a) == 0;
}

typedef struct rawrow {
    geo__u128 start, end;
    uint32_t rec;
    uint32_t line;
    uint8_t family;
} rawrow_t;

static int row_width_cmp(const void *pa, const void *pb)
{
    const rawrow_t *a = *(const rawrow_t *const *)pa, *b = *(const rawrow_t *const *)pb;
    geo__u128 wa = a->end - a->start, wb = b->end - b->start;
    if (wa != wb) return wa < wb ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

static int row4_cmp(const void *pa, const void *pb)
{
    const geo__csvrow4_t *a = pa, *b = pb;
    return a->start < b->start ? -1 : a->start > b->start;
}

static int row6_cmp(const void *pa, const void *pb)
{
    const geo__csvrow6_t *a = pa, *b = pb;
    if (a->start_hi != b->start_hi) return a->start_hi < b->start_hi ? -1 : 1;
    return a->start_lo < b->start_lo ? -1 : a->start_lo > b->start_lo;
}

int geo__csv_load(geo_t *g, geo__csv_t *c, diag_list_t *d)
{
    size_t len;
    char *buf = slurp(c->path, c->node, c->cfgpath, &len, d);
    if (buf == NULL) return -EINVAL;
    lines_t L = {.path = c->path, .buf = buf, .len = len, .d = d};
    rawrow_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    const char *s;
    size_t n;
    char tmp[GEO_LIST_MAX_LINE], show[64];
    while (L.errors < GEO_LIST_MAX_ERRORS && next_line(&L, &s, &n)) {
        if (n == 0) continue;
        if (n > GEO_LIST_MAX_LINE) {
            line_error(&L, 1, "line longer than %u bytes", GEO_LIST_MAX_LINE);
            continue;
        }
        if (memchr(s, '\0', n)) {
            line_error(&L, 1, "NUL byte in a text file");
            continue;
        }
        field_t f[4];
        int nf = split_csv(&L, s, n, f, 4, tmp, sizeof(tmp));
        if (nf < 0) continue;
        if (nf != 4) {
            line_error(&L, 1, "expected 4 fields (start,end,asn,org), got %s",
                       nf > 4    ? "more"
                       : nf == 3 ? "3"
                       : nf == 2 ? "2"
                                 : "1");
            continue;
        }
        netaddr_t a, b;
        if (!field_addr(&f[0], &a)) {
            /* A header line is allowed as the first line. */
            if (L.lineno == 1 && f[0].n > 0 &&
                ((f[0].s[0] >= 'a' && f[0].s[0] <= 'z') ||
                 (f[0].s[0] >= 'A' && f[0].s[0] <= 'Z')) &&
                memchr(f[0].s, '.', f[0].n) == NULL && memchr(f[0].s, ':', f[0].n) == NULL)
                continue;
            line_error(&L, f[0].col, "invalid start address '%s'",
                       shown(f[0].s, f[0].n, show, sizeof(show)));
            continue;
        }
        if (!field_addr(&f[1], &b)) {
            line_error(&L, f[1].col, "invalid end address '%s'",
                       shown(f[1].s, f[1].n, show, sizeof(show)));
            continue;
        }
        if (a.family != b.family) {
            line_error(&L, f[1].col, "end address '%s' is not of the start address's family",
                       shown(f[1].s, f[1].n, show, sizeof(show)));
            continue;
        }
        geo__u128 lo = geo__addr_to_u128(a.addr, a.family);
        geo__u128 hi = geo__addr_to_u128(b.addr, b.family);
        if (hi < lo) {
            line_error(&L, f[1].col, "end address '%s' is before the start address",
                       shown(f[1].s, f[1].n, show, sizeof(show)));
            continue;
        }
        const char *as = f[2].s;
        size_t an = f[2].n;
        if (an > 2 && (as[0] == 'A' || as[0] == 'a') && (as[1] == 'S' || as[1] == 's')) {
            as += 2;
            an -= 2;
        }
        uint64_t asn = 0;
        bool ok = an > 0 && an <= 10;
        for (size_t i = 0; ok && i < an; i++) {
            ok = as[i] >= '0' && as[i] <= '9';
            asn = asn * 10 + (uint64_t)(as[i] - '0');
        }
        if (!ok || asn > UINT32_MAX) {
            line_error(&L, f[2].col, "invalid AS number '%s'",
                       shown(f[2].s, f[2].n, show, sizeof(show)));
            continue;
        }
        if (asn == 0) continue; /* AS0: not routed; no data */
        if (nrows == cap) {
            cap = cap ? cap * 2 : 4096;
            rawrow_t *nr = realloc(rows, cap * sizeof(*rows));
            if (nr == NULL) abort();
            rows = nr;
        }
        rows[nrows++] = (rawrow_t){.start = lo,
                                   .end = hi,
                                   .rec = geo__asn_record(g, (uint32_t)asn, f[3].s, f[3].n),
                                   .line = L.lineno,
                                   .family = a.family};
    }
    free(buf);
    if (L.errors > 0) {
        free(rows);
        return -EINVAL;
    }
    /* Overlapping rows are allowed (the published files have a few): the
     * row that covers fewer addresses wins, then the earlier line.  That
     * order becomes each row's prio. */
    rawrow_t **order = malloc((nrows ? nrows : 1) * sizeof(*order));
    if (order == NULL) abort();
    for (size_t i = 0; i < nrows; i++)
        order[i] = &rows[i];
    qsort(order, nrows, sizeof(*order), row_width_cmp);
    size_t n4 = 0, n6 = 0;
    for (size_t i = 0; i < nrows; i++) {
        order[i]->line = (uint32_t)i; /* now the prio */
        if (order[i]->family == 4)
            n4++;
        else
            n6++;
    }
    free(order);
    c->rows4 = malloc((n4 ? n4 : 1) * sizeof(*c->rows4));
    c->rows6 = malloc((n6 ? n6 : 1) * sizeof(*c->rows6));
    if (c->rows4 == NULL || c->rows6 == NULL) abort();
    g->heap_bytes += n4 * sizeof(*c->rows4) + n6 * sizeof(*c->rows6);
    for (size_t i = 0; i < nrows; i++) {
        const rawrow_t *r = &rows[i];
        if (r->family == 4) {
            c->rows4[c->n4++] =
                (geo__csvrow4_t){(uint32_t)r->start, (uint32_t)r->end, r->rec, r->line};
            geo__range_to_prefixes(r->start, r->end, 32, r->rec, r->line, &c->set4);
        } else {
            c->rows6[c->n6++] = (geo__csvrow6_t){(uint64_t)(r->start >> 64),
                                                 (uint64_t)r->start,
                                                 (uint64_t)(r->end >> 64),
                                                 (uint64_t)r->end,
                                                 r->rec,
                                                 r->line};
            geo__range_to_prefixes(r->start, r->end, 128, r->rec, r->line, &c->set6);
        }
    }
    free(rows);
    qsort(c->rows4, c->n4, sizeof(*c->rows4), row4_cmp);
    qsort(c->rows6, c->n6, sizeof(*c->rows6), row6_cmp);
    return 0;
}

/* ---- carrier CIDR list files ---- */

bool geo__carrier_cidr_add(geo_t *g, const char *text, uint16_t carrier, const diag_pos_t *pos,
                           const char *cfgpath, diag_list_t *d)
{
    netaddr_t p;
    const char *why;
    if (!geo__parse_cidr(text, &p, &why)) {
        if (cfgpath)
            diag_error(d, pos, "%s: invalid network '%s': %s", cfgpath, text, why);
        else
            diag_error(d, pos, "invalid network '%s': %s", text, why);
        return false;
    }
    if (g->nccidrs == g->capccidrs) {
        g->capccidrs = g->capccidrs ? g->capccidrs * 2 : 256;
        geo__ccidr_t *n = realloc(g->ccidrs, g->capccidrs * sizeof(*n));
        if (n == NULL) abort();
        g->ccidrs = n;
    }
    uint32_t idx = (uint32_t)g->nccidrs;
    g->ccidrs[g->nccidrs++] = (geo__ccidr_t){.pfx = p, .carrier = carrier, .pos = *pos};
    geo__u128 v = geo__addr_to_u128(p.addr, p.family);
    geo__pfxvec_push(p.family == 4 ? &g->cc4 : &g->cc6, v, p.bits, carrier, idx);
    return true;
}

int geo__cidr_file_load(geo_t *g, const char *path, const yconf_node_t *node, const char *cfgpath,
                        uint16_t carrier, diag_list_t *d)
{
    size_t len;
    char *buf = slurp(path, node, cfgpath, &len, d);
    if (buf == NULL) return -EINVAL;
    /* Positions name the list file; explain shows them later, so the path
     * is interned in the arena. */
    const char *fpath = geo__intern(g, path, strlen(path));
    lines_t L = {.path = fpath, .buf = buf, .len = len, .d = d};
    const char *s;
    size_t n;
    char show[64];
    size_t before = g->nccidrs;
    while (L.errors < GEO_LIST_MAX_ERRORS && next_line(&L, &s, &n)) {
        const char *hash = memchr(s, '#', n);
        if (hash) n = (size_t)(hash - s);
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t e = n;
        while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        if (i == e) continue;
        size_t t = i;
        while (t < e && s[t] != ' ' && s[t] != '\t')
            t++;
        if (t < e) {
            size_t x = t;
            while (s[x] == ' ' || s[x] == '\t')
                x++;
            line_error(&L, x + 1, "unexpected text after the network: '%s'",
                       shown(s + x, e - x, show, sizeof(show)));
            continue;
        }
        char tok[NETADDR_STRLEN];
        if (t - i >= sizeof(tok)) {
            line_error(&L, i + 1, "invalid network '%s': too long",
                       shown(s + i, t - i, show, sizeof(show)));
            continue;
        }
        memcpy(tok, s + i, t - i);
        tok[t - i] = '\0';
        diag_pos_t pos = {fpath, L.lineno, (uint32_t)(i + 1)};
        if (!geo__carrier_cidr_add(g, tok, carrier, &pos, NULL, d)) L.errors++;
        if (L.errors == GEO_LIST_MAX_ERRORS)
            diag_error(d, &pos, "too many errors, stopped reading '%s'", fpath);
    }
    free(buf);
    if (L.errors == 0 && g->nccidrs == before)
        yconf_warn(d, node, "%s: '%s' lists no network", cfgpath, path);
    return L.errors ? -EINVAL : 0;
}
