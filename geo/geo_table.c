/*
 * geo_table.c - the lookup tables of the classifier: the build-time merge of
 * every source into one table per address family, and geo_classify.
 *
 * Owns the one memory mapping that holds the tables (entries, direct index,
 * result records), released by geo__table_free.  Last step of the build and
 * the only geo code on the query path.
 *
 * Build.  Every source is a partition of the family's address space into
 * prefixes (geo_int.h); the sources are walked side by side, and at each
 * step the longest of their current prefixes is the next piece of the
 * merged partition (prefixes either nest or are disjoint, so the longest one
 * lies inside all the others).  Each merged piece gets a deduplicated result
 * record and its scope; runs of pieces with the same record and scope
 * become one range.
 *
 * Lookup.  A direct array on the top bits of the address, inner nodes on
 * the next 8 bits where ranges are dense, and small sorted blocks (see
 * "the lookup structure" below) give the value: the record index (region,
 * carrier, country, ASN, lat/lon) and the scope.
 */
#include "geo/geo_int.h"

#include "core/grow.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- result records, deduplicated (build time) ---- */

typedef struct recset {
    geo__rec_t *v;
    size_t n, cap;
    uint32_t *slots; /* index + 1; 0 empty */
    size_t nslots;
} recset_t;

static uint64_t rec_hash(const geo__rec_t *r)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)r;
    for (size_t i = 0; i < sizeof(*r); i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 31);
}

static void recset_grow(recset_t *s)
{
    size_t ns = s->nslots ? s->nslots * 2 : 4096;
    uint32_t *slots = calloc(ns, sizeof(*slots));
    if (slots == NULL) abort();
    for (size_t i = 0; i < s->n; i++) {
        size_t j = rec_hash(&s->v[i]) & (ns - 1);
        while (slots[j])
            j = (j + 1) & (ns - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->nslots = ns;
}

/* Returns the record's index, or GEO__NOVAL when there are too many. */
static uint32_t recset_get(recset_t *s, const geo__rec_t *r)
{
    if ((s->n + 1) * 2 > s->nslots) recset_grow(s);
    size_t j = rec_hash(r) & (s->nslots - 1);
    while (s->slots[j]) {
        const geo__rec_t *o = &s->v[s->slots[j] - 1];
        if (memcmp(o, r, sizeof(*r)) == 0) return s->slots[j] - 1;
        j = (j + 1) & (s->nslots - 1);
    }
    if (s->n >= GEO__MAX_RECS) return GEO__NOVAL;
    s->v = grow_array(s->v, s->n, &s->cap, sizeof(*s->v), 1024);
    s->v[s->n] = *r;
    s->slots[j] = (uint32_t)s->n + 1;
    return (uint32_t)s->n++;
}

/* ---- sources being merged ---- */

typedef enum role { ROLE_NETS, ROLE_CITY, ROLE_CC, ROLE_ASN } role_t;

typedef struct src {
    role_t role;
    geo__pvec_t arr; /* array sources */
    size_t pos;
    geo__walk_t *walk; /* MMDB sources */
    geo__piece_t cur;
    geo__u128 end;
} src_t;

/* Next piece of s; 1, 0 at the end, -1 on error. */
static int src_next(geo_t *g, src_t *s, unsigned w, diag_list_t *d)
{
    int rc;
    if (s->walk) {
        rc = geo__walk_next(g, s->walk, &s->cur, d);
    } else if (s->pos < s->arr.n) {
        s->cur = s->arr.v[s->pos++];
        rc = 1;
    } else {
        rc = 0;
    }
    if (rc == 1) s->end = s->cur.start | geo__ones(w - s->cur.len);
    return rc;
}

typedef struct outvec {
    void *v;
    size_t n, cap, esize;
} outvec_t;

static void *out_push(outvec_t *o)
{
    o->v = grow_array(o->v, o->n, &o->cap, o->esize, 4096);
    return (char *)o->v + o->esize * o->n++;
}

/* Merge the sources of one family into out (geo__e4_t or geo__e6_t). */
static int merge_family(geo_t *g, src_t *srcs, size_t ns, unsigned w, recset_t *rs, outvec_t *out,
                        diag_list_t *d)
{
    const geo__u128 top = geo__ones(w);
    for (size_t i = 0; i < ns; i++) {
        int rc = src_next(g, &srcs[i], w, d);
        if (rc < 0) return -EINVAL;
        if (rc == 0 || srcs[i].cur.start != 0) {
            diag_error(d, NULL, "geo: internal error: a source does not start at address 0");
            return -EINVAL;
        }
    }
    geo__u128 cursor = 0;
    uint32_t last_key[4] = {GEO__NOVAL - 1, 0, 0, 0};
    uint32_t last_rec = 0;
    uint32_t prev_val = UINT32_MAX;
    for (;;) {
        unsigned maxlen = 0, netlen = 0;
        uint32_t key[4] = {GEO__NOVAL, GEO__NOVAL, GEO__NOVAL, GEO__NOVAL};
        for (size_t i = 0; i < ns; i++) {
            const src_t *s = &srcs[i];
            if (s->cur.len > maxlen) maxlen = s->cur.len;
            if (s->role == ROLE_NETS) netlen = s->cur.len;
            /* Within a role the first source with data wins. */
            if (key[s->role] == GEO__NOVAL) key[s->role] = s->cur.val;
        }
        const geo__net_t *net = key[ROLE_NETS] != GEO__NOVAL ? &g->nets[key[ROLE_NETS]] : NULL;
        unsigned scope = maxlen;
        if (net && net->region != GEO_NONE && net->carrier != GEO_NONE) {
            /* The override decides everything: only the nets table was
             * consulted, so only its network bounds the scope. */
            scope = netlen;
            key[ROLE_CITY] = key[ROLE_CC] = key[ROLE_ASN] = GEO__NOVAL;
        }
        uint32_t rid;
        if (memcmp(key, last_key, sizeof(key)) == 0) {
            rid = last_rec;
        } else {
            const geo__city_t *city =
                key[ROLE_CITY] != GEO__NOVAL ? &g->city[key[ROLE_CITY]] : NULL;
            const geo__asnrec_t *asn = key[ROLE_ASN] != GEO__NOVAL ? &g->asnr[key[ROLE_ASN]] : NULL;
            geo__rec_t r;
            memset(&r, 0, sizeof(r));
            r.region = net && net->region != GEO_NONE ? net->region
                       : city                         ? city->region
                                                      : GEO_NONE;
            r.carrier = net && net->carrier != GEO_NONE ? net->carrier
                        : key[ROLE_CC] != GEO__NOVAL    ? (uint16_t)key[ROLE_CC]
                        : asn                           ? asn->carrier
                                                        : GEO_NONE;
            if (city) {
                r.cc[0] = city->cc[0];
                r.cc[1] = city->cc[1];
            }
            r.lat = city ? city->lat : NAN;
            r.lon = city ? city->lon : NAN;
            r.asn = asn ? asn->asn : 0;
            rid = recset_get(rs, &r);
            if (rid == GEO__NOVAL) {
                diag_error(d, NULL, "geo: more than %u distinct results; cannot build the table",
                           GEO__MAX_RECS);
                return -E2BIG;
            }
            memcpy(last_key, key, sizeof(key));
            last_rec = rid;
        }
        uint32_t val = rid << 8 | scope;
        if (val != prev_val) {
            if (w == 32) {
                geo__e4_t *e = out_push(out);
                e->start = (uint32_t)cursor;
                e->val = val;
            } else {
                geo__e6_t *e = out_push(out);
                e->hi = (uint64_t)(cursor >> 64);
                e->lo = (uint64_t)cursor;
                e->val = val;
                e->pad = 0;
            }
            prev_val = val;
        }
        geo__u128 end = cursor | geo__ones(w - maxlen);
        if (end == top) break;
        cursor = end + 1;
        for (size_t i = 0; i < ns; i++) {
            src_t *s = &srcs[i];
            if (s->end >= cursor) continue;
            int rc = src_next(g, s, w, d);
            if (rc < 0) return -EINVAL;
            if (rc == 0 || s->cur.start != cursor) {
                /* Only a corrupt tree can get here (the walk checks most
                 * of it); never guess. */
                char at[NETADDR_STRLEN];
                geo__fmt_prefix(cursor, w, w, at, sizeof(at));
                if (s->walk)
                    yconf_error(d, s->walk->m->node,
                                "%s: cannot load '%s': search tree: no network covers %s",
                                s->walk->m->cfgpath, s->walk->m->path, at);
                else
                    diag_error(d, NULL, "geo: internal error: a source skips %s", at);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* ---- building ---- */

static int build_family(geo_t *g, uint8_t family, recset_t *rs, outvec_t *out, diag_list_t *d)
{
    unsigned w = family == 4 ? 32 : 128;
    src_t srcs[4 * 8 + 4];
    size_t ns = 0;
    geo__pvec_t nets = {0}, cc = {0};
    geo__walk_t *walks[2 * 8] = {0};
    size_t nwalks = 0;
    geo__pvec_t csvp[8] = {{0}};
    int rc = 0;

    geo__pfxvec_t *nset = family == 4 ? &g->nets4 : &g->nets6;
    if (nset->n) {
        geo__pfx_partition(nset, w, &nets);
        srcs[ns++] = (src_t){.role = ROLE_NETS, .arr = nets};
    }
    for (size_t i = 0; i < g->ndbs; i++) {
        if (g->dbs[i].kind != GEO__KIND_CITY) continue;
        geo__walk_t *wk = malloc(sizeof(*wk));
        if (wk == NULL) abort();
        if (!geo__walk_init(wk, &g->dbs[i], family)) {
            free(wk);
            continue;
        }
        walks[nwalks++] = wk;
        srcs[ns++] = (src_t){.role = ROLE_CITY, .walk = wk};
    }
    geo__pfxvec_t *cset = family == 4 ? &g->cc4 : &g->cc6;
    if (cset->n) {
        geo__pfx_partition(cset, w, &cc);
        srcs[ns++] = (src_t){.role = ROLE_CC, .arr = cc};
    }
    for (size_t i = 0; i < g->ndbs; i++) {
        if (g->dbs[i].kind != GEO__KIND_ASN) continue;
        geo__walk_t *wk = malloc(sizeof(*wk));
        if (wk == NULL) abort();
        if (!geo__walk_init(wk, &g->dbs[i], family)) {
            free(wk);
            continue;
        }
        walks[nwalks++] = wk;
        srcs[ns++] = (src_t){.role = ROLE_ASN, .walk = wk};
    }
    for (size_t i = 0; i < g->ncsvs; i++) {
        geo__pfxvec_t *set = family == 4 ? &g->csvs[i].set4 : &g->csvs[i].set6;
        if (set->n == 0) continue;
        geo__pfx_partition(set, w, &csvp[i]);
        geo__pfxvec_free(set); /* the partition replaces it */
        srcs[ns++] = (src_t){.role = ROLE_ASN, .arr = csvp[i]};
    }
    if (ns == 0) {
        /* No source for this family: one range, nothing known, scope 0. */
        geo__pvec_push(&nets, 0, 0, GEO__NOVAL);
        srcs[ns++] = (src_t){.role = ROLE_NETS, .arr = nets};
    }
    rc = merge_family(g, srcs, ns, w, rs, out, d);
    for (size_t i = 0; i < nwalks; i++)
        free(walks[i]);
    geo__pvec_free(&nets);
    geo__pvec_free(&cc);
    for (size_t i = 0; i < 8; i++)
        geo__pvec_free(&csvp[i]);
    return rc;
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* ---- the lookup structure ----
 *
 * For one family of width w, over the merged ranges (sorted starts with
 * values):
 *
 *   l1[top k1 bits] --GEO__LEAF--> value
 *                   --GEO__NODE--> node[next 8 bits] --> ... (same entries)
 *                   --block------> +--------+---------+-------------+
 *                                  | n | kw | val[n]  | key[n] (kw) |
 *                                  +--------+---------+-------------+
 *
 * A block holds the ranges of a slot whose starts differ only in the kw
 * bytes after the bits consumed so far (key[0] is the slot's own start,
 * 0); the last key <= those bytes of the address picks the value.  Slots
 * with one range are leaves; slots with many ranges (or starts that need
 * more than 8 key bytes) become 256-way nodes.  With k1 = 24 for a large
 * IPv4 table almost every address is a leaf in l1: one memory access for
 * the value, one for the record. */

/* Keys are stored as the low bytes of little-endian integers. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "geo tables assume a little-endian host");

#define BLOCK_SMALL 16 /* ranges a block may hold with any key width */
#define BLOCK_LARGE 64 /* ... with 1- or 2-byte keys */

typedef struct ranges {
    const void *v;
    size_t n;
    unsigned w;
} ranges_t;

static inline geo__u128 r_start(const ranges_t *r, size_t i)
{
    if (r->w == 32) return ((const geo__e4_t *)r->v)[i].start;
    const geo__e6_t *e = &((const geo__e6_t *)r->v)[i];
    return (geo__u128)e->hi << 64 | e->lo;
}

static inline uint32_t r_val(const ranges_t *r, size_t i)
{
    return r->w == 32 ? ((const geo__e4_t *)r->v)[i].val : ((const geo__e6_t *)r->v)[i].val;
}

typedef struct pool {
    uint32_t *v;
    size_t n, cap;
} pool_t;

static size_t pool_alloc(pool_t *p, size_t words, size_t align_words)
{
    size_t at = align_up(p->n, align_words);
    if (at + words > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < at + words)
            cap *= 2;
        uint32_t *nv = realloc(p->v, cap * sizeof(*nv));
        if (nv == NULL) abort();
        p->v = nv;
        p->cap = cap;
    }
    memset(p->v + p->n, 0, (at + words - p->n) * sizeof(uint32_t));
    p->n = at + words;
    return at;
}

/* The entry for the slot [S, S | ones(w - d)] whose first range is i0;
 * *next is set to the first range of the following slot. */
static uint32_t build_slot(const ranges_t *r, pool_t *p, size_t i0, geo__u128 S, unsigned d,
                           size_t *next, int *err)
{
    unsigned w = r->w;
    geo__u128 E = S | geo__ones(w - d);
    size_t i1 = i0;
    while (i1 + 1 < r->n && r_start(r, i1 + 1) <= E)
        i1++;
    *next = (i1 + 1 < r->n && r_start(r, i1 + 1) == E + 1) ? i1 + 1 : i1;
    size_t n = i1 - i0 + 1;
    if (n == 1) return GEO__LEAF | r_val(r, i0);
    /* The narrowest key width that keeps every start exact. */
    unsigned rest = w - d, kw = 0;
    for (unsigned cand = 1; cand <= 8 && kw == 0; cand *= 2) {
        if (8 * cand >= rest) {
            kw = cand;
            break;
        }
        geo__u128 low = geo__ones(rest - 8 * cand);
        bool fits = true;
        for (size_t i = i0 + 1; i <= i1 && fits; i++)
            fits = (r_start(r, i) & low) == 0;
        if (fits) kw = cand;
    }
    if (kw && (n <= BLOCK_SMALL || (n <= BLOCK_LARGE && kw <= 2))) {
        size_t words = 1 + n + (n * kw + 3) / 4;
        /* A block that fits a cache line does not straddle two. */
        size_t at = p->n;
        if (words <= 16 && (at % 16) + words > 16) at = pool_alloc(p, 0, 16);
        at = pool_alloc(p, words, 1);
        if (at > GEO__OFF_MASK) {
            *err = -E2BIG;
            return 0;
        }
        uint32_t *b = p->v + at;
        b[0] = (uint32_t)n | (uint32_t)kw << 16;
        unsigned char *keys = (unsigned char *)(b + 1 + n);
        for (size_t i = 0; i < n; i++) {
            b[1 + i] = r_val(r, i0 + i);
            geo__u128 rel = i == 0 ? 0 : r_start(r, i0 + i) - S;
            uint64_t key =
                (uint64_t)(8 * kw >= rest ? rel << (8 * kw - rest) : rel >> (rest - 8 * kw));
            memcpy(keys + i * kw, &key, kw); /* little-endian low bytes */
        }
        return (uint32_t)at;
    }
    /* An inner node on the next (up to) 8 bits. */
    unsigned stride = rest < 8 ? rest : 8;
    size_t slots = (size_t)1 << stride;
    size_t at = pool_alloc(p, slots, 16);
    if (at > GEO__OFF_MASK) {
        *err = -E2BIG;
        return 0;
    }
    size_t i = i0;
    for (size_t k = 0; k < slots; k++) {
        geo__u128 cs = S | ((geo__u128)k << (rest - stride));
        uint32_t e = build_slot(r, p, i, cs, d + stride, &i, err);
        if (*err) return 0;
        p->v[at + k] = e; /* p->v may have moved: index, not pointer */
    }
    return GEO__NODE | (uint32_t)at;
}

static unsigned l1_bits(size_t n, unsigned w)
{
    /* A large IPv4 table gets a direct array on /24 (64 MiB): 97% of the
     * IPv4 space of a city database is then one access.  IPv6 and small
     * tables get about one slot per range. */
    if (w == 32 && n >= ((size_t)1 << 20)) return 24;
    unsigned k = 8;
    while (k < 20 && ((size_t)1 << k) < n)
        k++;
    return k;
}

static int build_lpm(const ranges_t *r, uint32_t **l1out, unsigned *k1out, pool_t *p)
{
    unsigned k1 = l1_bits(r->n, r->w);
    size_t nb = (size_t)1 << k1;
    uint32_t *l1 = malloc(nb * sizeof(*l1));
    if (l1 == NULL) abort();
    size_t i = 0;
    int err = 0;
    for (size_t b = 0; b < nb && !err; b++) {
        geo__u128 S = (geo__u128)b << (r->w - k1);
        l1[b] = build_slot(r, p, i, S, k1, &i, &err);
    }
    if (err) {
        free(l1);
        return err;
    }
    *l1out = l1;
    *k1out = k1;
    return 0;
}

int geo__table_build(geo_t *g, diag_list_t *d)
{
    recset_t rs = {0};
    outvec_t o4 = {.esize = sizeof(geo__e4_t)}, o6 = {.esize = sizeof(geo__e6_t)};
    uint32_t *l1[2] = {NULL, NULL};
    unsigned k1[2] = {0, 0};
    pool_t pool[2] = {{0}, {0}};
    int rc = build_family(g, 4, &rs, &o4, d);
    if (rc == 0) rc = build_family(g, 6, &rs, &o6, d);
    for (size_t i = 0; rc == 0 && i < g->ndbs; i++)
        geo__mmdb_check_fields(g, &g->dbs[i], d);
    ranges_t r4 = {o4.v, o4.n, 32}, r6 = {o6.v, o6.n, 128};
    if (rc == 0) rc = build_lpm(&r4, &l1[0], &k1[0], &pool[0]);
    free(o4.v);
    if (rc == 0) rc = build_lpm(&r6, &l1[1], &k1[1], &pool[1]);
    free(o6.v);
    if (rc == -E2BIG) diag_error(d, NULL, "geo: the lookup tables would exceed 4 GiB");
    size_t off[5], total = 0;
    if (rc == 0) {
        off[0] = 0;
        off[1] = align_up(off[0] + ((size_t)1 << k1[0]) * 4, 64);
        off[2] = align_up(off[1] + pool[0].n * 4, 64);
        off[3] = align_up(off[2] + ((size_t)1 << k1[1]) * 4, 64);
        off[4] = align_up(off[3] + pool[1].n * 4, 64);
        total = align_up(off[4] + rs.n * sizeof(geo__rec_t), 4096);
    }
    /* One anonymous mapping, asking for huge pages: random lookups over
     * tens of megabytes would otherwise pay a TLB miss on top of each
     * cache miss. */
    const size_t huge = 2u * 1024u * 1024u;
    size_t maplen = align_up(total, huge) + huge;
    void *map = rc == 0
                    ? mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                    : MAP_FAILED;
    if (rc == 0 && map == MAP_FAILED) {
        diag_error(d, NULL, "geo: cannot map %zu bytes for the lookup tables", maplen);
        rc = -ENOMEM;
    }
    if (rc != 0) {
        for (int f = 0; f < 2; f++) {
            free(l1[f]);
            free(pool[f].v);
        }
        free(rs.v);
        free(rs.slots);
        return rc;
    }
    char *base = (char *)align_up((size_t)map, huge);
#ifdef MADV_HUGEPAGE
    if (total >= huge) (void)madvise(base, align_up(total, huge), MADV_HUGEPAGE);
#endif
    memcpy(base + off[0], l1[0], ((size_t)1 << k1[0]) * 4);
    if (pool[0].n) memcpy(base + off[1], pool[0].v, pool[0].n * 4);
    memcpy(base + off[2], l1[1], ((size_t)1 << k1[1]) * 4);
    if (pool[1].n) memcpy(base + off[3], pool[1].v, pool[1].n * 4);
    memcpy(base + off[4], rs.v, rs.n * sizeof(geo__rec_t));
    g->t4 = (geo__lpm_t){.l1 = (const uint32_t *)(base + off[0]),
                         .pool = (const uint32_t *)(base + off[1]),
                         .k1 = k1[0],
                         .l1n = (size_t)1 << k1[0],
                         .pooln = pool[0].n,
                         .ranges = o4.n};
    g->t6 = (geo__lpm_t){.l1 = (const uint32_t *)(base + off[2]),
                         .pool = (const uint32_t *)(base + off[3]),
                         .k1 = k1[1],
                         .l1n = (size_t)1 << k1[1],
                         .pooln = pool[1].n,
                         .ranges = o6.n};
    g->recs = (const geo__rec_t *)(base + off[4]);
    g->nrecs = rs.n;
    for (int f = 0; f < 2; f++) {
        free(l1[f]);
        free(pool[f].v);
    }
    free(rs.v);
    free(rs.slots);
    /* Read-only from here on: a stray write from anywhere faults. */
    mprotect(map, maplen, PROT_READ);
    g->map = map;
    g->maplen = maplen;
    return 0;
}

void geo__table_free(geo_t *g)
{
    if (g->map) munmap(g->map, g->maplen);
    g->map = NULL;
}

/* ---- the query path ---- */

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t load_be64(const uint8_t *p)
{
    return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

/* Bits [d, d + k) of a w-bit address (k <= 64). */
static inline uint64_t bits_at(geo__u128 a, unsigned w, unsigned d, unsigned k)
{
    return (uint64_t)(a >> (w - d - k)) & (k >= 64 ? UINT64_MAX : (((uint64_t)1 << k) - 1));
}

/* A block key: the low kw bytes of a little-endian integer (constant-size
 * loads, no library call). */
static inline uint64_t load_key(const unsigned char *p, uint32_t kw)
{
    switch (kw) {
    case 1:
        return p[0];
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

/* The value (rec << 8 | scope) of address a in table t.  Bounded: each
 * node consumes 8 bits, so at most w / 8 steps, then one block. */
static inline uint32_t lpm_lookup(const geo__lpm_t *t, geo__u128 a, unsigned w)
{
    unsigned d = t->k1;
    uint32_t e = t->l1[(size_t)(a >> (w - d))];
    while (!(e & GEO__LEAF)) {
        const uint32_t *x = t->pool + (e & GEO__OFF_MASK);
        if (e & GEO__NODE) {
            unsigned stride = w - d < 8 ? w - d : 8;
            e = x[bits_at(a, w, d, stride)];
            d += stride;
            continue;
        }
        uint32_t n = x[0] & 0xffff, kw = x[0] >> 16;
        const unsigned char *keys = (const unsigned char *)(x + 1 + n);
        unsigned rest = w - d;
        uint64_t key =
            8 * kw >= rest ? bits_at(a, w, d, rest) << (8 * kw - rest) : bits_at(a, w, d, 8 * kw);
        uint32_t lo = 0, hi = n - 1;
        while (lo < hi) {
            uint32_t mid = (lo + hi + 1) >> 1;
            uint64_t k = load_key(keys + (size_t)mid * kw, kw);
            if (k <= key)
                lo = mid;
            else
                hi = mid - 1;
        }
        return x[1 + lo];
    }
    return e & ~GEO__LEAF;
}

static inline uint32_t lookup4(const geo_t *g, uint32_t a)
{
    return lpm_lookup(&g->t4, a, 32);
}

static inline uint32_t lookup6(const geo_t *g, uint64_t ahi, uint64_t alo)
{
    return lpm_lookup(&g->t6, (geo__u128)ahi << 64 | alo, 128);
}

static inline uint32_t mask32(unsigned bits)
{
    return bits >= 32 ? UINT32_MAX : bits == 0 ? 0 : UINT32_MAX << (32 - bits);
}

static inline uint64_t mask64(unsigned bits)
{
    return bits >= 64 ? UINT64_MAX : bits == 0 ? 0 : UINT64_MAX << (64 - bits);
}

void geo__decide(const geo_t *g, const netaddr_t *addr, const geo__rec_t **rec, uint8_t *scope,
                 int *alias_len, netaddr_t *v4)
{
    *alias_len = -1;
    if (g == NULL || (addr->family != 4 && addr->family != 6)) {
        *rec = NULL;
        *scope = 0;
        return;
    }
    unsigned bits = addr->bits;
    if (addr->family == 4) {
        uint32_t a = load_be32(addr->addr) & mask32(bits);
        uint32_t val = lookup4(g, a);
        *rec = &g->recs[val >> 8];
        *scope = (uint8_t)(val & 0xff);
        return;
    }
    uint64_t hi = load_be64(addr->addr) & mask64(bits);
    uint64_t lo = load_be64(addr->addr + 8) & mask64(bits > 64 ? bits - 64 : 0);
    /* IPv6 addresses that embed an IPv4 address are classified as that
     * address: IPv4-mapped always (a dual-stack socket reports IPv4
     * clients that way), and whatever else the databases alias to their
     * IPv4 data, as libmaxminddb's own lookups do. */
    int alen = -1;
    if (hi == 0 && (lo >> 32) == 0xffff) {
        alen = 96;
    } else {
        for (size_t i = 0; i < g->nalias; i++) {
            const geo__alias_t *al = &g->alias[i];
            uint64_t mh = mask64(al->len), ml = mask64(al->len > 64 ? al->len - 64u : 0);
            if ((hi & mh) == al->hi && (lo & ml) == al->lo) {
                alen = al->len;
                break;
            }
        }
    }
    if (alen >= 0) {
        geo__u128 full = (geo__u128)hi << 64 | lo;
        uint32_t a4 = (uint32_t)(full >> (128 - (unsigned)alen - 32));
        unsigned b4 = bits > (unsigned)alen ? bits - (unsigned)alen : 0;
        a4 &= mask32(b4);
        uint32_t val = lookup4(g, a4);
        *rec = &g->recs[val >> 8];
        *scope = (uint8_t)((unsigned)alen + (val & 0xff));
        *alias_len = alen;
        if (v4) {
            v4->family = 4;
            v4->bits = (uint8_t)(b4 > 32 ? 32 : b4);
            memset(v4->addr, 0, sizeof(v4->addr));
            v4->addr[0] = (uint8_t)(a4 >> 24);
            v4->addr[1] = (uint8_t)(a4 >> 16);
            v4->addr[2] = (uint8_t)(a4 >> 8);
            v4->addr[3] = (uint8_t)a4;
        }
        return;
    }
    uint32_t val = lookup6(g, hi, lo);
    *rec = &g->recs[val >> 8];
    *scope = (uint8_t)(val & 0xff);
}

void geo__fill(const geo__rec_t *r, uint8_t scope, geo_result_t *out)
{
    if (r == NULL) {
        out->region = GEO_NONE;
        out->carrier = GEO_NONE;
        out->country[0] = '\0';
        out->scope = scope;
        out->asn = 0;
        out->lat = NAN;
        out->lon = NAN;
        return;
    }
    out->region = r->region;
    out->carrier = r->carrier;
    out->country[0] = r->cc[0];
    out->country[1] = r->cc[1];
    out->country[2] = '\0';
    out->scope = scope;
    out->asn = r->asn;
    out->lat = r->lat;
    out->lon = r->lon;
}

void geo_classify(const geo_t *g, const netaddr_t *addr, geo_result_t *out)
{
    const geo__rec_t *r;
    uint8_t scope;
    int alias_len;
    geo__decide(g, addr, &r, &scope, &alias_len, NULL);
    geo__fill(r, scope, out);
}

void geo_get_stats(const geo_t *g, geo_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (g == NULL) return;
    out->entries4 = g->t4.ranges;
    out->entries6 = g->t6.ranges;
    out->records = g->nrecs;
    out->city_records = g->ncity;
    out->asn_records = g->nasnr;
    out->table4_bytes = (g->t4.l1n + g->t4.pooln) * sizeof(uint32_t);
    out->table6_bytes = (g->t6.l1n + g->t6.pooln) * sizeof(uint32_t);
    out->record_bytes = g->nrecs * sizeof(geo__rec_t);
    out->table_bytes = out->table4_bytes + out->table6_bytes + out->record_bytes;
    out->total_bytes = out->table_bytes + g->ncity * sizeof(geo__city_t) +
                       g->nasnr * sizeof(geo__asnrec_t) + g->nccidrs * sizeof(geo__ccidr_t) +
                       g->heap_bytes + g->arena_bytes;
}
