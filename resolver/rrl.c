/*
 * rrl.c - response rate limiting (see rrl.h).
 */
#include "resolver/rrl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rrl_init(rrl_table_t *t, uint32_t size)
{
    uint32_t n = 1024;
    while (n < size && n < (1u << 24))
        n <<= 1;
    t->b = calloc(n, sizeof(*t->b));
    if (t->b == NULL)
        return -ENOMEM;
    t->mask = n - 1;
    t->slip_count = 0;
    return 0;
}

void rrl_free(rrl_table_t *t)
{
    free(t->b);
    t->b = NULL;
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

rrl_verdict_t rrl_account(rrl_table_t *t, const rrl_conf_t *c, const netaddr_t *client,
                          rrl_kind_t kind, const uint8_t *name, size_t name_len, uint16_t qtype,
                          uint32_t now)
{
    if (c->rate == 0 || t->b == NULL)
        return RRL_PASS;
    /* The key: client prefix, kind, and the name (and type) the kind is
     * counted per. */
    uint8_t a[16];
    memcpy(a, client->addr, 16);
    netaddr_mask(a, client->family, client->family == 4 ? c->v4_prefix : c->v6_prefix);
    uint64_t h = mix(0x243F6A8885A308D3ull, ((uint64_t)client->family << 8) | (uint64_t)kind);
    uint64_t w0, w1;
    memcpy(&w0, a, 8);
    memcpy(&w1, a + 8, 8);
    h = mix(mix(h, w0), w1);
    if (kind == RRL_ANSWER)
        h = mix(h, qtype);
    for (size_t i = 0; name && i < name_len; i++)
        h = mix(h, name[i]);
    h |= 1; /* 0 marks an empty bucket */
    rrl_bucket_t *b = &t->b[h & t->mask];
    int32_t rate = (int32_t)c->rate;
    if (b->key != h) {
        /* A new bucket (or a collision evicting an old one): full credit. */
        b->key = h;
        b->balance = rate;
        b->last = now;
    } else if (now != b->last) {
        uint32_t dt = now - b->last;
        int64_t bal = (int64_t)b->balance + (int64_t)dt * rate;
        b->balance = (int32_t)(bal > rate ? rate : bal);
        b->last = now;
    }
    int32_t floor = -(int32_t)(c->window * c->rate);
    if (b->balance > floor)
        b->balance--;
    if (b->balance >= 0)
        return RRL_PASS;
    if (c->slip && ++t->slip_count >= c->slip) {
        t->slip_count = 0;
        return RRL_SLIP;
    }
    return RRL_DROP;
}
