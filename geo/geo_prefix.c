/*
 * geo_prefix.c - prefix arithmetic for the geo build: address <-> integer,
 * address ranges -> CIDR prefixes, and longest-match prefix sets ->
 * partitions of the address space.
 *
 * Owns nothing beyond the growable vectors its callers pass in.  Sits in the
 * middle of the build: the text sources (geo_lists.c) and the nets and
 * carrier CIDRs (geo_conf.c) produce prefix sets; geo__pfx_partition turns
 * each into the sorted, gap-free piece list that geo_table.c merges.
 * Load time only.
 */
#include "geo/geo_int.h"

#include "core/grow.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

geo__u128 geo__addr_to_u128(const uint8_t *addr, uint8_t family)
{
    unsigned n = family == 4 ? 4 : 16;
    geo__u128 v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | addr[i];
    return v;
}

void geo__u128_to_addr(geo__u128 v, uint8_t family, uint8_t *addr)
{
    unsigned n = family == 4 ? 4 : 16;
    memset(addr, 0, 16);
    for (unsigned i = n; i-- > 0;) {
        addr[i] = (uint8_t)v;
        v >>= 8;
    }
}

void geo__fmt_prefix(geo__u128 start, unsigned len, unsigned w, char *buf, size_t size)
{
    netaddr_t a = {.family = w == 32 ? 4 : 6, .bits = (uint8_t)len};
    geo__u128_to_addr(start, a.family, a.addr);
    netaddr_format(&a, true, buf, size);
}

void geo__pvec_push(geo__pvec_t *pv, geo__u128 start, unsigned len, uint32_t val)
{
    pv->v = grow_array(pv->v, pv->n, &pv->cap, sizeof(*pv->v), 1024);
    pv->v[pv->n++] = (geo__piece_t){.start = start, .val = val, .len = (uint8_t)len};
}

void geo__pvec_free(geo__pvec_t *pv)
{
    free(pv->v);
    memset(pv, 0, sizeof(*pv));
}

void geo__pfxvec_push(geo__pfxvec_t *v, geo__u128 start, unsigned len, uint32_t val, uint32_t prio)
{
    v->v = grow_array(v->v, v->n, &v->cap, sizeof(*v->v), 256);
    v->v[v->n++] = (geo__pfx_t){.start = start, .val = val, .prio = prio, .len = (uint8_t)len};
}

void geo__pfxvec_free(geo__pfxvec_t *v)
{
    free(v->v);
    memset(v, 0, sizeof(*v));
}

/* Number of trailing zero bits of v within width w (w when v is 0). */
static unsigned ctz_w(geo__u128 v, unsigned w)
{
    if (v == 0) return w;
    uint64_t lo = (uint64_t)v;
    if (lo) return (unsigned)__builtin_ctzll(lo);
    return 64 + (unsigned)__builtin_ctzll((uint64_t)(v >> 64));
}

/* The maximal aligned prefixes covering [lo, hi], visited in order. */
typedef void (*emit_fn)(void *ctx, geo__u128 start, unsigned len);

static void range_walk(geo__u128 lo, geo__u128 hi, unsigned w, emit_fn emit, void *ctx)
{
    const geo__u128 top = geo__ones(w);
    for (;;) {
        /* The largest block that starts at lo (alignment) and ends at or
         * before hi. */
        unsigned k = ctz_w(lo, w);
        while (k > 0 && (lo | geo__ones(k)) > hi)
            k--;
        geo__u128 last = lo | geo__ones(k);
        emit(ctx, lo, w - k);
        if (last >= hi || last == top) return;
        lo = last + 1;
    }
}

struct pfx_ctx {
    geo__pfxvec_t *out;
    uint32_t val, prio;
};

static void emit_pfx(void *ctx, geo__u128 start, unsigned len)
{
    struct pfx_ctx *c = ctx;
    geo__pfxvec_push(c->out, start, len, c->val, c->prio);
}

void geo__range_to_prefixes(geo__u128 lo, geo__u128 hi, unsigned w, uint32_t val, uint32_t prio,
                            geo__pfxvec_t *out)
{
    struct pfx_ctx c = {out, val, prio};
    range_walk(lo, hi, w, emit_pfx, &c);
}

struct piece_ctx {
    geo__pvec_t *out;
    uint32_t val;
};

static void emit_piece(void *ctx, geo__u128 start, unsigned len)
{
    struct piece_ctx *c = ctx;
    geo__pvec_push(c->out, start, len, c->val);
}

static void fill(geo__pvec_t *out, geo__u128 lo, geo__u128 hi, unsigned w, uint32_t val)
{
    struct piece_ctx c = {out, val};
    range_walk(lo, hi, w, emit_piece, &c);
}

static int pfx_cmp(const void *pa, const void *pb)
{
    const geo__pfx_t *a = pa, *b = pb;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;     /* outer prefixes first */
    if (a->prio != b->prio) return a->prio < b->prio ? -1 : 1; /* the winner first */
    return 0;
}

void geo__pfx_partition(geo__pfxvec_t *set, unsigned w, geo__pvec_t *out)
{
    const geo__u128 top = geo__ones(w);
    if (set->n == 0) {
        geo__pvec_push(out, 0, 0, GEO__NOVAL);
        return;
    }
    qsort(set->v, set->n, sizeof(*set->v), pfx_cmp);
    /* Sweep the address space in order, keeping the stack of prefixes that
     * contain the cursor (outermost at the bottom).  Nested prefixes are
     * the only way two prefixes can overlap, so the innermost open prefix is
     * the longest match for every address until it closes. */
    struct open {
        geo__u128 end;
        uint32_t val;
    } stack[130];
    size_t sp = 0;
    geo__u128 cursor = 0;
    bool done = false; /* the cursor wrapped past the top address */
    for (size_t i = 0; i < set->n; i++) {
        const geo__pfx_t *p = &set->v[i];
        if (i > 0 && p->start == set->v[i - 1].start && p->len == set->v[i - 1].len)
            continue; /* the same prefix again: the first (lowest prio) won */
        geo__u128 pend = p->start | geo__ones(w - p->len);
        /* Close the prefixes that end before this one starts. */
        while (sp > 0 && stack[sp - 1].end < p->start) {
            if (cursor <= stack[sp - 1].end)
                fill(out, cursor, stack[sp - 1].end, w, stack[sp - 1].val);
            cursor = stack[sp - 1].end + 1;
            sp--;
        }
        if (cursor < p->start)
            fill(out, cursor, p->start - 1, w, sp ? stack[sp - 1].val : GEO__NOVAL);
        cursor = p->start;
        stack[sp++] = (struct open){pend, p->val};
    }
    while (sp > 0 && !done) {
        geo__u128 end = stack[sp - 1].end;
        if (cursor <= end) fill(out, cursor, end, w, stack[sp - 1].val);
        if (end == top)
            done = true;
        else
            cursor = end + 1;
        sp--;
    }
    if (!done) fill(out, cursor, top, w, GEO__NOVAL);
}
