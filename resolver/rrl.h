/*
 * rrl.h - response rate limiting, in the manner of BIND and Knot DNS RRL.
 *
 * An authoritative server's answers can be aimed at a victim by spoofing
 * its address.  RRL counts the UDP responses each client prefix (/24 IPv4,
 * /56 IPv6 by default) receives per kind of response and name:
 *
 *   answer    per query name and type
 *   nodata    per query name
 *   nxdomain  per zone (a random-name flood is one bucket)
 *   referral  per delegation
 *   error     per client prefix (REFUSED, FORMERR, NOTIMP, ...)
 *
 * Each bucket earns `rate` credits per second, up to `rate`, and spends one
 * per response; below zero the response is limited, down to a debt of
 * rate x window (so a flooder stays limited until it has been quiet for up
 * to `window`).  Of the limited responses every `slip`-th is sent empty with
 * TC=1, so a real client behind a spoofed prefix can retry over TCP; the
 * rest are dropped.  TCP is never limited.
 *
 * One table per worker, direct-mapped by hash, written only by its worker:
 * no lock, no allocation on the query path.  The kernel keeps one client's
 * datagrams on one worker's socket, so a client sees one table; a flood from
 * many source ports spreads over the workers, so the effective rate is at
 * most rate x workers.
 */
#ifndef STEERDNS_RESOLVER_RRL_H
#define STEERDNS_RESOLVER_RRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

typedef enum rrl_kind {
    RRL_ANSWER = 0,
    RRL_NODATA,
    RRL_NXDOMAIN,
    RRL_REFERRAL,
    RRL_ERROR,
} rrl_kind_t;

typedef struct rrl_conf {
    uint32_t rate;   /* responses per second per bucket; 0 = off */
    uint32_t window; /* seconds of debt */
    uint32_t slip;   /* every slip-th limited response goes out truncated; 0 = none */
    uint8_t v4_prefix, v6_prefix;
} rrl_conf_t;

typedef struct rrl_bucket {
    uint64_t key;
    int32_t balance;
    uint32_t last; /* seconds */
} rrl_bucket_t;

typedef struct rrl_table {
    rrl_bucket_t *b;
    uint32_t mask;
    uint32_t slip_count;
} rrl_table_t;

typedef enum rrl_verdict { RRL_PASS = 0, RRL_DROP, RRL_SLIP } rrl_verdict_t;

/* A table of size buckets (rounded up to a power of two).  Returns 0 or
 * -ENOMEM.  Worker setup, not the query path. */
int rrl_init(rrl_table_t *t, uint32_t size);
void rrl_free(rrl_table_t *t);

/* Account one UDP response to client of this kind about name (lower-cased
 * wire bytes; may be NULL for errors) and type.  now is seconds from any
 * monotonic clock.  Hot path: a hash, one bucket, no allocation. */
rrl_verdict_t rrl_account(rrl_table_t *t, const rrl_conf_t *c, const netaddr_t *client,
                          rrl_kind_t kind, const uint8_t *name, size_t name_len, uint16_t qtype,
                          uint32_t now);

#endif
