/*
 * test_config.c - black-box tests of how `steerdns check` reads files:
 * names in messages as the operator wrote them, include patterns whose
 * folder does not exist, the size limit applied to the main file too, and
 * a resolver beside other records at one name, steer's default target,
 * duplicates that differ in case, record TTL limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bb.h"

#define HEAD                                                                                     \
    "server:\n"                                                                                  \
    "  listen: [127.0.0.1]\n"                                                                    \
    "  port: 0\n"                                                                                \
    "  workers: 1\n"

#define ZONE_BAD_RECORD                                                                          \
    "origin: a.test\n"                                                                           \
    "soa: \"ns1 h 1 1 1 1 1\"\n"                                                                 \
    "ns: [ns1]\n"                                                                                \
    "records:\n"                                                                                 \
    "  ns1: \"A 192.0.2.1\"\n"                                                                   \
    "  bad: \"A 300.1.1.1\"\n"

/* Run `steerdns check -c rel` from the test's folder. */
static int check_in(const bb_t *b, const char *rel, char *out, size_t size)
{
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(b->dir), 0);
    const char *args[] = {"steerdns", "check", "-c", rel, NULL};
    int rc = bb_run(out, size, args);
    assert_int_equal(chdir(cwd), 0);
    return rc;
}

/* With a relative -c, files are named as written: "zones.d/a.yaml", not
 * "./zones.d/a.yaml"; the same for a zone file's own imports. */
static void test_relative_names(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, HEAD "zones:\n"
                        "  - include: zones.d/*.yaml\n"
                        "  - import: b.zone\n"
                        "    origin: b.test\n");
    bb_write(&b, "zones.d/a.yaml", ZONE_BAD_RECORD);
    bb_write(&b, "b.zone", "$TTL 300\n@ SOA ns1 h 1 1 1 1 1\n@ NS ns1\nns1 A 192.0.2.1\nbad A 300.1.1.1\n");
    char out[8192];
    BB_EXPECT_INT("check: exit", check_in(&b, "steerdns.yaml", out, sizeof(out)), 1);
    bb_expect_contains("included file", out, "zones.d/a.yaml:6:8: error:");
    bb_expect_contains("imported file", out, "b.zone:5:1: error:");
    if (strstr(out, "./") != NULL)
        fail_msg("a name starts with ./:\n%s", out);
    bb_stop(&b);
}

/* A pattern whose folder does not exist matches nothing: a warning, as for
 * an empty folder; the configuration is valid. */
static void test_include_missing_folder(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, HEAD "zones:\n"
                        "  - include: zones.d/*.yaml\n"
                        "  - include: nodir/z*.yaml\n");
    bb_write(&b, "zones.d/a.yaml",
             "origin: a.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords: {ns1: \"A 192.0.2.1\"}\n");
    char out[8192];
    BB_EXPECT_INT("check: exit", check_in(&b, "steerdns.yaml", out, sizeof(out)), 0);
    bb_expect_contains("warning", out,
                       "steerdns.yaml:7:14: warning: zones[1].include: no file matches 'nodir/z*.yaml'");
    bb_stop(&b);
}

/* server.max_config_bytes holds the main file to the limit it sets. */
static void test_main_file_limit(void **state)
{
    (void)state;
    char text[4096] = HEAD "  max_config_bytes: 1024\n"
                           "zones:\n"
                           "  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\"}}\n";
    while (strlen(text) < 2000)
        strcat(text, "# a comment that makes the main file larger than its own limit\n");
    bb_t b;
    bb_prepare(&b, text);
    char out[8192];
    BB_EXPECT_INT("check: exit", check_in(&b, "steerdns.yaml", out, sizeof(out)), 1);
    bb_expect_contains("limit", out,
                       "steerdns.yaml: error: file larger than the limit of 1024 bytes (server.max_config_bytes)");
    bb_stop(&b);
}

/* A name's list may hold a resolver beside other records: the resolver
 * answers A and AAAA, the records the other types; two resolvers at one
 * name are an error. */
static void test_resolver_beside_records(void **state)
{
    (void)state;
    const char *zone = "zones:\n"
                       "  - origin: a.test\n"
                       "    soa: \"ns1 h 1 1 1 1 1\"\n"
                       "    ns: [ns1]\n"
                       "    records:\n"
                       "      ns1: \"A 192.0.2.1\"\n"
                       "      app: [{static: 192.0.2.7}, \"TXT \\\"hello\\\"\", \"MX 10 ns1\"]\n";
    char text[2048];
    snprintf(text, sizeof(text), HEAD "%s", zone);
    bb_t b;
    bb_start(&b, text);
    const char *types[] = {"A", "TXT", "MX"};
    const char *want[] = {"192.0.2.7", "\"hello\"", "10 ns1.a.test."};
    for (int i = 0; i < 3; i++) {
        ldns_pkt *p = bb_query(&b, "app.a.test.", types[i], NULL);
        assert_non_null(p);
        char got[512];
        bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
        bb_expect_contains(types[i], got, want[i]);
        ldns_pkt_free(p);
    }
    bb_stop(&b);

    snprintf(text, sizeof(text), HEAD "%s      two: [{static: 192.0.2.7}, {static: 192.0.2.8}]\n", zone);
    bb_prepare(&b, text);
    char out[4096];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("two resolvers: exit", bb_run(out, sizeof(out), args), 1);
    bb_expect_contains("two resolvers", out, "steerdns.yaml:12:34: error: 'two.a.test.' has more than one resolver");
    bb_stop(&b);
}

/* A carrier, a region and one cluster whose server's state is a file. */
#define ONE_CLUSTER                                                                              \
    "geo: {carriers: {tel: {asns: [1]}}}\n"                                                      \
    "regions: {r: {lat: 1, lon: 1}}\n"                                                           \
    "clusters:\n"                                                                                \
    "  c1: {region: r, carrier: tel, entry: [192.0.2.1], servers: {s: {capacity: 1Gbit, check: {kind: file, path: st}}}}\n"

/* steer's `target`: unwritten, it stays under a lower health threshold;
 * literal instances never trip over it; written above the threshold in
 * damped mode, it is an error at its position. */
static void test_steer_target_default(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, HEAD "health: {threshold: 60%}\n"
                        ONE_CLUSTER
                        "resolvers:\n"
                        "  steer:\n"
                        "    lit: {mode: literal}\n"
                        "    dmp: {mode: damped}\n"
                        "zones:\n"
                        "  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\", x: {steer: lit}, y: {steer: dmp}}}\n");
    char out[4096];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("unwritten target under a 60% threshold: exit", bb_run(out, sizeof(out), args), 0);
    bb_stop(&b);
    bb_prepare(&b, HEAD "health: {threshold: 60%}\n"
                        ONE_CLUSTER
                        "resolvers:\n"
                        "  steer:\n"
                        "    bad: {mode: damped, target: 80%}\n"
                        "zones:\n"
                        "  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\", z: {steer: bad}}}\n");
    BB_EXPECT_INT("target above the threshold: exit", bb_run(out, sizeof(out), args), 1);
    bb_expect_contains("target above the threshold", out,
                       "steerdns.yaml:12:33: error: resolvers.steer.bad.target: 80% is above the health threshold 60%");
    bb_stop(&b);
}

/* Records that differ only in the case of a name are one record (RFC 2181
 * section 5, compared in the canonical form of RFC 4034 section 6.2); a
 * record TTL above 2^31-1 is an error (RFC 2181 section 8). */
static void test_duplicates_and_ttl(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "zones:\n"
                      "  - origin: a.test\n"
                      "    soa: \"ns1 h 1 1 1 1 1\"\n"
                      "    ns: [ns1, NS1]\n"
                      "    records:\n"
                      "      ns1: \"A 192.0.2.1\"\n"
                      "      mx: [\"MX 10 Mail\", \"MX 10 mail\", \"MX 10 mail.A.TEST.\"]\n"
                      "      c: [\"CNAME x\", \"CNAME X\"]\n"
                      "      x: \"A 192.0.2.2\"\n");
    const char *names[] = {"mx.a.test.", "a.test.", "c.a.test."};
    const char *types[] = {"MX", "NS", "A"};
    const int want[] = {1, 1, 2}; /* c: the CNAME and x's address */
    for (int i = 0; i < 3; i++) {
        ldns_pkt *p = bb_query(&b, names[i], types[i], NULL);
        assert_non_null(p);
        if ((int)ldns_pkt_ancount(p) != want[i])
            fail_msg("%s %s: expected %d answer records, got %d", names[i], types[i], want[i],
                     (int)ldns_pkt_ancount(p));
        ldns_pkt_free(p);
    }
    bb_stop(&b);
    bb_prepare(&b, HEAD "zones:\n"
                        "  - origin: a.test\n"
                        "    soa: \"ns1 h 1 1 1 1 1\"\n"
                        "    ns: [ns1]\n"
                        "    records:\n"
                        "      ns1: \"A 192.0.2.1\"\n"
                        "      big: \"2147483648 A 192.0.2.3\"\n");
    char out[4096];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("TTL 2^31: exit", bb_run(out, sizeof(out), args), 1);
    bb_expect_contains("TTL 2^31", out, "steerdns.yaml:11:12: error: TTL 2147483648 is above 2147483647");
    bb_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_names),
        cmocka_unit_test(test_include_missing_folder),
        cmocka_unit_test(test_main_file_limit),
        cmocka_unit_test(test_resolver_beside_records),
        cmocka_unit_test(test_steer_target_default),
        cmocka_unit_test(test_duplicates_and_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
