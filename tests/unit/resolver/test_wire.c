/*
 * test_wire.c - unit tests of the query parser: verdicts for well-formed,
 * malformed and unusual queries, EDNS fields and ECS validation (RFC 7871
 * section 6), and the OPT writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "resolver/wire.h"

/* Build "www.example.test A" with an optional OPT carrying `opt` bytes of
 * options. */
static size_t mkq(uint8_t *out, bool edns, const uint8_t *opts, size_t optlen, uint8_t version,
                  uint16_t udp)
{
    static const uint8_t hdr_q[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                    3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
                                    4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
    memcpy(out, hdr_q, sizeof(hdr_q));
    size_t p = sizeof(hdr_q);
    if (edns) {
        out[11] = 1;
        uint8_t o[11] = {0, 0, 41, (uint8_t)(udp >> 8), (uint8_t)udp, 0, version, 0x80, 0,
                         (uint8_t)(optlen >> 8), (uint8_t)optlen};
        memcpy(out + p, o, 11);
        p += 11;
        if (optlen)
            memcpy(out + p, opts, optlen);
        p += optlen;
    }
    return p;
}

static void test_plain(void **state)
{
    (void)state;
    uint8_t q[512];
    size_t n = mkq(q, false, NULL, 0, 0, 0);
    wire_query_t w;
    assert_int_equal(wire_parse_query(q, n, true, &w), WIRE_OK);
    assert_int_equal(w.id, 0x1234);
    assert_true(w.has_question);
    assert_int_equal(w.qname_len, 18);
    assert_int_equal(w.qtype, 1);
    assert_int_equal(w.qclass, 1);
    assert_false(w.edns);
    n = mkq(q, true, NULL, 0, 0, 100);
    assert_int_equal(wire_parse_query(q, n, true, &w), WIRE_OK);
    assert_true(w.edns);
    assert_true(w.edns_do);
    assert_int_equal(w.edns_udp, 512); /* below 512 counts as 512 */
}

static void test_ecs(void **state)
{
    (void)state;
    struct {
        uint8_t opt[32];
        size_t len;
        wire_verdict_t want;
        uint8_t source;
        const char *what;
    } t[] = {
        {{0, 8, 0, 7, 0, 1, 24, 0, 198, 18, 1}, 11, WIRE_OK, 24, "IPv4 /24"},
        {{0, 8, 0, 4, 0, 1, 0, 0}, 8, WIRE_OK, 0, "source 0"},
        {{0, 8, 0, 11, 0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 1}, 15, WIRE_OK, 56, "IPv6 /56"},
        {{0, 8, 0, 7, 0, 3, 24, 0, 1, 2, 3}, 11, WIRE_FORMERR, 0, "unknown family"},
        {{0, 8, 0, 9, 0, 1, 33, 0, 1, 2, 3, 4, 5}, 13, WIRE_FORMERR, 0, "IPv4 prefix 33"},
        {{0, 8, 0, 7, 0, 1, 20, 0, 10, 1, 255}, 11, WIRE_FORMERR, 0, "bits past the prefix"},
        {{0, 8, 0, 8, 0, 1, 24, 0, 10, 1, 2, 0}, 12, WIRE_FORMERR, 0, "address longer than prefix"},
        {{0, 8, 0, 6, 0, 1, 24, 0, 10, 1}, 10, WIRE_FORMERR, 0, "address shorter than prefix"},
        {{0, 8, 0, 3, 0, 1, 0}, 7, WIRE_FORMERR, 0, "option too short"},
        {{0, 8, 0, 9, 0, 1, 24, 0, 198}, 9, WIRE_FORMERR, 0, "option overruns the OPT"},
        {{0, 8, 0, 4, 0, 1, 0, 0, 0, 8, 0, 4, 0, 1, 0, 0}, 16, WIRE_FORMERR, 0, "two ECS options"},
        {{0xfd, 0xe9, 0, 2, 'x', 'y'}, 6, WIRE_OK, 0, "unknown option"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t q[512];
        size_t n = mkq(q, true, t[i].opt, t[i].len, 0, 1232);
        wire_query_t w;
        wire_verdict_t v = wire_parse_query(q, n, true, &w);
        if (v != t[i].want)
            fail_msg("%s: expected verdict %d, got %d", t[i].what, t[i].want, v);
        if (v == WIRE_OK && t[i].opt[1] == 8) {
            assert_true(w.ecs);
            assert_int_equal(w.ecs_source, t[i].source);
        }
        if (v == WIRE_FORMERR)
            assert_false(w.ecs);
        /* With ECS off the option is an unknown one (RFC 6891 section
         * 6.1.2): only its framing in the OPT record matters. */
        wire_verdict_t off = strcmp(t[i].what, "option overruns the OPT") == 0 ? WIRE_FORMERR : WIRE_OK;
        v = wire_parse_query(q, n, false, &w);
        if (v != off)
            fail_msg("%s, ECS off: expected verdict %d, got %d", t[i].what, off, v);
        assert_false(w.ecs);
    }
}

static void test_verdicts(void **state)
{
    (void)state;
    uint8_t q[512], m[512];
    size_t n = mkq(q, false, NULL, 0, 0, 0);
    wire_query_t w;
    assert_int_equal(wire_parse_query(q, 11, true, &w), WIRE_DROP);
    memcpy(m, q, n);
    m[2] |= 0x80;
    assert_int_equal(wire_parse_query(m, n, true, &w), WIRE_DROP);
    memcpy(m, q, n);
    m[2] = (uint8_t)(m[2] | (5 << 3));
    assert_int_equal(wire_parse_query(m, n, true, &w), WIRE_NOTIMP);
    assert_true(w.has_question);
    n = mkq(q, true, NULL, 0, 1, 1232);
    assert_int_equal(wire_parse_query(q, n, true, &w), WIRE_BADVERS);
    assert_true(w.edns);
    /* OPT with a non-root owner. */
    n = mkq(q, true, NULL, 0, 0, 1232);
    memcpy(m, q, n);
    m[34] = 1;
    assert_int_equal(wire_parse_query(m, n, true, &w), WIRE_FORMERR);
    /* Every truncation of a valid query is rejected, never read past. */
    for (size_t k = 0; k < n; k++) {
        wire_verdict_t v = wire_parse_query(q, k, true, &w);
        assert_true(v == WIRE_DROP || v == WIRE_FORMERR);
    }
}

static void test_opt_writer(void **state)
{
    (void)state;
    uint8_t q[512], out[64];
    uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 22, 0, 198, 18, 4};
    size_t n = mkq(q, true, ecs, sizeof(ecs), 0, 4096);
    wire_query_t w;
    assert_int_equal(wire_parse_query(q, n, true, &w), WIRE_OK);
    size_t len = wire_write_opt(out, &w, 1232, 0, true, 24);
    assert_int_equal(len, wire_opt_len(&w, true));
    const uint8_t want[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 11,
                            0, 8, 0, 7, 0, 1, 22, 24, 198, 18, 4};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    len = wire_write_opt(out, &w, 1232, 1, false, 0);
    assert_int_equal(len, 11);
    assert_int_equal(out[5], 1); /* extended rcode bits */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_ecs),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_opt_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
