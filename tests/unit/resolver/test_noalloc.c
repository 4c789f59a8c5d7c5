/*
 * test_noalloc.c - the query path allocates nothing (STYLE.md): build a
 * snapshot, then answer many queries of every kind (positive, NODATA,
 * NXDOMAIN, CNAME, wildcard, referral, REFUSED, FORMERR, NOTIMP, BADVERS,
 * truncated, ECS, TCP-sized, CNAME chains cut at the cap, CNAMEs into a
 * delegation or to a plugin name, DS at a served child apex) while counting every malloc, calloc, realloc
 * and free made by our code (the libraries are linked with --wrap) and, in
 * builds without sanitizers, every byte the C library's allocator hands
 * out at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>

#include <cmocka.h>

#include "resolver/answer.h"
#include "resolver/snap.h"

static int counting;
static long allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

void *__wrap_malloc(size_t n)
{
    allocs += counting;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    allocs += counting;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocs += counting;
    return __real_realloc(p, n);
}
void __wrap_free(void *p)
{
    allocs += counting && p;
    __real_free(p);
}

static size_t query(uint8_t *out, const char *name, uint16_t type, uint16_t flags, int edns,
                    const uint8_t *opt, size_t optlen)
{
    size_t p = 12;
    memset(out, 0, 12);
    out[0] = 0xab;
    out[2] = (uint8_t)(flags >> 8);
    out[3] = (uint8_t)flags;
    out[5] = 1;
    const char *s = name;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        out[p++] = (uint8_t)l;
        memcpy(out + p, s, l);
        p += l;
        s += l + (dot ? 1 : 0);
    }
    out[p++] = 0;
    out[p++] = (uint8_t)(type >> 8);
    out[p++] = (uint8_t)type;
    out[p++] = 0;
    out[p++] = 1;
    if (edns >= 0) {
        out[11] = 1;
        uint8_t o[11] = {0, 0, 41, 0x10, 0, 0, (uint8_t)edns, 0, 0, 0, (uint8_t)optlen};
        memcpy(out + p, o, 11);
        p += 11;
        if (optlen)
            memcpy(out + p, opt, optlen);
        p += optlen;
    }
    return p;
}

static void test_no_allocation(void **state)
{
    (void)state;
    char statefile[] = "/tmp/steerdns-noalloc-state-XXXXXX";
    int sfd = mkstemp(statefile);
    assert_int_equal(write(sfd, "UP\n", 3), 3);
    close(sfd);
    char path[] = "/tmp/steerdns-noalloc-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    char cfg[8192];
    snprintf(cfg, sizeof(cfg),
        "regions: {r0: {lat: 39.9, lon: 116.4, country: CN}, r1: {lat: 23.1, lon: 113.3, country: CN}}\n"
        "geo:\n"
        "  carriers: {t: {}, u: {}}\n"
        "  nets: {\"198.18.0.0/24\": {region: r0, carrier: t}, \"198.18.1.0/24\": {region: r1, carrier: u}}\n"
        "clusters:\n"
        "  c0: {region: r0, carrier: t, entry: [203.0.113.1, \"2001:db8::1\"], servers: {s: {capacity: 1Gbit, check: {kind: file, path: %s}}}}\n"
        "  c1: {region: r1, carrier: u, entry: [203.0.113.2], servers: {s: {capacity: 1Gbit, check: {kind: file, path: %s}}}}\n"
        "resolvers: {steer: {dl: {mode: damped}, lit: {mode: literal}}}\n"
        "zones:\n"
        "  - origin: example.test\n"
        "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"
        "    ns: [ns1]\n"
        "    records:\n"
        "      ns1: \"A 192.0.2.1\"\n"
        "      www: [\"A 192.0.2.80\", \"AAAA 2001:db8::80\"]\n"
        "      alias: \"CNAME www\"\n"
        "      \"*.wild\": \"A 192.0.2.99\"\n"
        "      child: \"NS ns.child\"\n"
        "      ns.child: \"A 192.0.2.53\"\n"
        "      app: {steer: dl}\n"
        "      app2: {steer: lit}\n"
        "      img: {weighted: {192.0.2.1: 3, 192.0.2.2: 1}}\n"
        "      api: {failover: [c0, c1]}\n"
        "      l0: \"CNAME l1\"\n      l1: \"CNAME l2\"\n      l2: \"CNAME l3\"\n"
        "      l3: \"CNAME l4\"\n      l4: \"CNAME l5\"\n      l5: \"CNAME l6\"\n"
        "      l6: \"CNAME l7\"\n      l7: \"CNAME l8\"\n      l8: \"CNAME l9\"\n"
        "      l9: \"A 192.0.2.9\"\n"
        "      tocut: \"CNAME x.child\"\n"
        "      toapp: \"CNAME app\"\n"
        "      signed: [\"NS ns.signed\", \"DS 12345 8 2 2bb183af5f22588179a53b0a98631fad1a292118e7b5e0e3e0a8b5e2e8c1f0d4\"]\n"
        "      ns.signed: \"A 192.0.2.54\"\n"
        "      big: [\"TXT 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\", \"TXT 1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\", \"TXT 2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\", \"TXT 3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\", \"TXT 4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\", \"TXT 5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"]\n"
        "  - origin: signed.example.test\n"
        "    soa: \"ns.signed.example.test. hostmaster 1 3600 600 604800 120\"\n"
        "    ns: [ns]\n"
        "    records: {ns: \"A 192.0.2.54\"}\n", statefile, statefile);
    assert_int_equal(write(fd, cfg, strlen(cfg)), (ssize_t)strlen(cfg));
    close(fd);
    diag_list_t d;
    diag_init(&d);
    snap_t *s = NULL;
    if (snap_build(path, &d, &s) != 0) {
        diag_print(&d, stderr);
        fail_msg("the test configuration does not build");
    }
    unlink(path);
    unlink(statefile);
    /* The controllers' first update (main thread; may allocate). */
    snap_update_plugins(s, 1000);

    static const uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 24, 0, 198, 18, 0};
    static const uint8_t badecs[] = {0, 8, 0, 7, 0, 9, 24, 0, 198, 18, 1};
    static const uint8_t ecs1[] = {0, 8, 0, 7, 0, 1, 24, 0, 198, 18, 1};
    struct {
        const char *name;
        uint16_t type, flags;
        int edns;
        const uint8_t *opt;
        size_t optlen;
    } qs[] = {
        {"www.example.test", 1, 0, -1, NULL, 0},
        {"www.example.test", 28, 0, 0, ecs, sizeof(ecs)},
        {"www.example.test", 15, 0, 0, NULL, 0},
        {"nope.example.test", 1, 0, 0, NULL, 0},
        {"alias.example.test", 1, 0x0100, 0, NULL, 0},
        {"a.b.wild.example.test", 1, 0, 0, NULL, 0},
        {"x.child.example.test", 1, 0, 0, NULL, 0},
        {"example.org", 1, 0, 0, NULL, 0},
        {"big.example.test", 16, 0, -1, NULL, 0},
        {"www.example.test", 1, 0x2800, 0, NULL, 0},
        {"www.example.test", 1, 0, 1, NULL, 0},
        {"www.example.test", 1, 0, 0, badecs, sizeof(badecs)},
        {"example.test", 255, 0, 0, NULL, 0},
        {"example.test", 252, 0, 0, NULL, 0},
        {"app.example.test", 1, 0, 0, ecs, sizeof(ecs)},
        {"app.example.test", 28, 0, 0, ecs1, sizeof(ecs1)},
        {"app.example.test", 1, 0, -1, NULL, 0},
        {"app2.example.test", 1, 0, 0, ecs1, sizeof(ecs1)},
        {"app2.example.test", 28, 0, 0, ecs, sizeof(ecs)},
        {"img.example.test", 1, 0, 0, NULL, 0},
        {"api.example.test", 28, 0, 0, NULL, 0},
        {"app.example.test", 255, 0, 0, ecs, sizeof(ecs)},
        /* CNAME chains at and past the cap, into a delegation, to a
         * plugin name; DS at the apex of a served child zone. */
        {"l0.example.test", 1, 0, 0, NULL, 0},
        {"l1.example.test", 1, 0, 0, NULL, 0},
        {"tocut.example.test", 1, 0, 0, NULL, 0},
        {"toapp.example.test", 1, 0, 0, ecs, sizeof(ecs)},
        {"signed.example.test", 43, 0, 0, NULL, 0},
        {"signed.example.test", 6, 0, 0, NULL, 0},
    };
    static answer_txn_t txn;
    static uint8_t out[65535];
    uint8_t q[600];
    answer_client_t client = {.addr = {.family = 4, .bits = 32, .addr = {192, 0, 2, 9}}};
    size_t heap_before = mallinfo2().uordblks;
    counting = 1;
    size_t answered = 0, steered = 0;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            size_t n = query(q, qs[i].name, qs[i].type, qs[i].flags, qs[i].edns, qs[i].opt,
                             qs[i].optlen);
            client.tcp = round & 1;
            answered += answer_respond(&s->env, q, n, &client, &txn, out,
                                       client.tcp ? sizeof(out) : 4096) > 0;
            steered += txn.plugin;
        }
    }
    counting = 0;
    size_t heap_after = mallinfo2().uordblks;
    assert_int_equal(answered, 2000 * (sizeof(qs) / sizeof(qs[0])));
    /* Every plugin path ran: steer (damped, literal), weighted, failover. */
    assert_int_equal(steered, 2000 * 8);
    if (allocs != 0)
        fail_msg("the query path allocated %ld times", allocs);
#ifndef STEERDNS_SANITIZED
    if (heap_after != heap_before)
        fail_msg("heap in use changed by %zd bytes while answering", (ssize_t)(heap_after - heap_before));
#else
    (void)heap_before;
    (void)heap_after;
#endif
    snap_free(s);
    diag_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
