/*
 * test_protocol.c - black-box tests of the authoritative core over the
 * wire: flags, negative answers, CNAME, wildcards, referrals, REFUSED,
 * case and compression, EDNS0, truncation, TCP, and malformed queries.
 * One server for the whole file; cases are tables where they can be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bb.h"

#define DS_HEX "2bb183af5f22588179a53b0a98631fad1a292118e7b5e0e3e0a8b5e2e8c1f0d4"

static const char *config_text(void)
{
    static char buf[16384];
    char big[8192] = "";
    /* 40 TXT records of 100 bytes: about 4.4 KB, too big for UDP. */
    for (int i = 0; i < 40; i++) {
        char one[200];
        snprintf(one, sizeof(one), "%s\"TXT \\\"%02d-%096d\\\"\"", i ? ", " : "", i, 0);
        strcat(big, one);
    }
    snprintf(buf, sizeof(buf),
             "server:\n"
             "  listen: [127.0.0.1, \"::1\"]\n"
             "  port: 0\n"
             "  workers: 2\n"
             "zones:\n"
             "  - origin: example.test\n"
             "    ttl: 3600\n"
             "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"
             "    ns: [ns1, ns2]\n"
             "    records:\n"
             "      ns1: [\"A 192.0.2.1\", \"AAAA 2001:db8::1\"]\n"
             "      ns2: \"A 192.0.2.2\"\n"
             "      www: [\"300 A 192.0.2.80\", \"AAAA 2001:db8::80\"]\n"
             "      alias: \"CNAME www\"\n"
             "      chain: \"CNAME alias\"\n"
             "      dangling: \"CNAME nothere\"\n"
             "      outside: \"CNAME www.elsewhere.org.\"\n"
             "      \"*.wild\": [\"A 192.0.2.99\", \"TXT wild\"]\n"
             "      sub.wild: \"A 192.0.2.98\"\n"
             "      a.b.ent: \"A 192.0.2.7\"\n"
             "      child: [\"NS ns1.child\", \"NS ns.other.net.\"]\n"
             "      ns1.child: \"A 192.0.2.53\"\n"
             "      carrier: \"NS ns1\"\n"
             "      mx: \"MX 10 mail\"\n"
             "      mail: \"A 192.0.2.25\"\n"
             "      big: [%s]\n"
             /* A chain of 12 CNAMEs: l4 ends at l12 within the cap of 8. */
             "      l0: \"CNAME l1\"\n"
             "      l1: \"CNAME l2\"\n"
             "      l2: \"CNAME l3\"\n"
             "      l3: \"CNAME l4\"\n"
             "      l4: \"CNAME l5\"\n"
             "      l5: \"CNAME l6\"\n"
             "      l6: \"CNAME l7\"\n"
             "      l7: \"CNAME l8\"\n"
             "      l8: \"CNAME l9\"\n"
             "      l9: \"CNAME l10\"\n"
             "      l10: \"CNAME l11\"\n"
             "      l11: \"CNAME l12\"\n"
             "      l12: \"A 192.0.2.99\"\n"
             /* CNAMEs into a delegation. */
             "      tocut: \"CNAME host.child\"\n"
             "      tocutapex: \"CNAME child\"\n"
             /* CNAMEs to a plugin name and to another zone. */
             "      dyn: {static: [192.0.2.10, \"2001:db8::10\"]}\n"
             "      todyn: \"CNAME dyn\"\n"
             "      toapp: \"CNAME app.carrier\"\n"
             /* A signed delegation to a zone we also serve. */
             "      signed: [\"NS ns1.signed\", \"DS 12345 8 2 " DS_HEX "\"]\n"
             "      ns1.signed: \"A 192.0.2.54\"\n"
             "  - origin: signed.example.test\n"
             "    soa: \"ns1 hostmaster.example.test. 9 3600 600 604800 90\"\n"
             "    ns: [ns1]\n"
             "    records:\n"
             "      ns1: \"A 192.0.2.54\"\n"
             "      www: \"A 203.0.113.8\"\n"
             "  - origin: carrier.example.test\n"
             "    soa: \"ns1.example.test. hostmaster.example.test. 7 3600 600 604800 60\"\n"
             "    ns: [ns1.example.test.]\n"
             "    records:\n"
             "      app: \"A 203.0.113.7\"\n",
             big);
    return buf;
}

static bb_t srv;

static int setup(void **state)
{
    (void)state;
    bb_start(&srv, config_text());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bb_stop(&srv);
    return 0;
}

/* ---- the table ---- */

typedef struct pcase {
    const char *qname, *qtype;
    const char *rcode;
    int aa;              /* 1 / 0 */
    const char *answer;  /* rdata of the answer section, ", "-separated */
    const char *auth;    /* rdata of the authority section, or NULL = don't check */
    int auth_ttl;        /* TTL of the first authority RR, -1 = don't check */
    const char *addl;    /* rdata of the additional section (without OPT), NULL = don't check */
} pcase_t;

#define SOA "ns1.example.test. hostmaster.example.test. 1 3600 600 604800 120"
#define L(n) "l" #n ".example.test."

static const pcase_t cases[] = {
    /* AA on authoritative answers. */
    {"www.example.test.", "A", "NOERROR", 1, "192.0.2.80", "", -1, ""},
    {"www.example.test.", "AAAA", "NOERROR", 1, "2001:db8::80", "", -1, ""},
    /* NXDOMAIN and NODATA carry the SOA, TTL min(SOA TTL, MINIMUM) (RFC 2308). */
    {"nope.example.test.", "A", "NXDOMAIN", 1, "", SOA, 120, ""},
    {"www.example.test.", "MX", "NOERROR", 1, "", SOA, 120, ""},
    {"b.ent.example.test.", "A", "NOERROR", 1, "", SOA, 120, ""},
    {"ent.example.test.", "TXT", "NOERROR", 1, "", SOA, 120, ""},
    /* CNAME followed inside the zone; RFC 6604 rcode for a dangling one. */
    {"alias.example.test.", "A", "NOERROR", 1, "www.example.test., 192.0.2.80", "", -1, NULL},
    {"chain.example.test.", "A", "NOERROR", 1, "alias.example.test., www.example.test., 192.0.2.80", "", -1, NULL},
    {"alias.example.test.", "CNAME", "NOERROR", 1, "www.example.test.", "", -1, NULL},
    {"alias.example.test.", "TXT", "NOERROR", 1, "www.example.test.", SOA, 120, NULL},
    {"dangling.example.test.", "A", "NXDOMAIN", 1, "nothere.example.test.", SOA, 120, NULL},
    {"outside.example.test.", "A", "NOERROR", 1, "www.elsewhere.org.", "", -1, NULL},
    /* Wildcards (RFC 4592). */
    {"foo.wild.example.test.", "A", "NOERROR", 1, "192.0.2.99", "", -1, ""},
    {"x.y.wild.example.test.", "A", "NOERROR", 1, "192.0.2.99", "", -1, ""},
    {"foo.wild.example.test.", "TXT", "NOERROR", 1, "\"wild\"", "", -1, ""},
    {"foo.wild.example.test.", "AAAA", "NOERROR", 1, "", SOA, 120, ""},
    {"sub.wild.example.test.", "A", "NOERROR", 1, "192.0.2.98", "", -1, ""},
    {"sub.wild.example.test.", "TXT", "NOERROR", 1, "", SOA, 120, ""},
    {"*.wild.example.test.", "A", "NOERROR", 1, "192.0.2.99", "", -1, ""},
    /* Referrals: no AA, NS in authority, glue in additional. */
    {"host.child.example.test.", "A", "NOERROR", 0, "", "ns1.child.example.test., ns.other.net.", 3600, "192.0.2.53"},
    {"child.example.test.", "NS", "NOERROR", 0, "", "ns1.child.example.test., ns.other.net.", 3600, "192.0.2.53"},
    {"a.b.child.example.test.", "AAAA", "NOERROR", 0, "", "ns1.child.example.test., ns.other.net.", 3600, "192.0.2.53"},
    /* DS at a cut belongs to the parent (RFC 4035 section 3.1.4.1). */
    {"child.example.test.", "DS", "NOERROR", 1, "", SOA, 120, ""},
    /* A child zone we also serve wins over the parent's delegation. */
    {"app.carrier.example.test.", "A", "NOERROR", 1, "203.0.113.7", "", -1, ""},
    /* Outside every zone: REFUSED, never recursion. */
    {"example.org.", "A", "REFUSED", 0, "", "", -1, ""},
    {"test.", "SOA", "REFUSED", 0, "", "", -1, ""},
    {".", "NS", "REFUSED", 0, "", "", -1, ""},
    /* Additional section processing for NS and MX. */
    {"example.test.", "NS", "NOERROR", 1, "ns1.example.test., ns2.example.test.", "", -1,
     "192.0.2.1, 2001:db8::1, 192.0.2.2"},
    {"mx.example.test.", "MX", "NOERROR", 1, "10 mail.example.test.", "", -1, "192.0.2.25"},
    {"example.test.", "SOA", "NOERROR", 1, SOA, "", -1, ""},
    /* The CNAME chain cap (8 links): a chain that ends within it gets its
     * data; a chain cut at the cap gets the CNAMEs so far and no SOA (it
     * claims nothing about the rest). */
    {"l4.example.test.", "A", "NOERROR", 1, L(5) ", " L(6) ", " L(7) ", " L(8) ", " L(9) ", "
     L(10) ", " L(11) ", " L(12) ", 192.0.2.99", "", -1, NULL},
    {"l5.example.test.", "A", "NOERROR", 1, L(6) ", " L(7) ", " L(8) ", " L(9) ", " L(10) ", "
     L(11) ", " L(12) ", 192.0.2.99", "", -1, NULL},
    {"l3.example.test.", "A", "NOERROR", 1, L(4) ", " L(5) ", " L(6) ", " L(7) ", " L(8) ", "
     L(9) ", " L(10) ", " L(11), "", -1, NULL},
    {"l4.example.test.", "TXT", "NOERROR", 1, L(5) ", " L(6) ", " L(7) ", " L(8) ", " L(9) ", "
     L(10) ", " L(11) ", " L(12), SOA, 120, NULL},
    {"l3.example.test.", "TXT", "NOERROR", 1, L(4) ", " L(5) ", " L(6) ", " L(7) ", " L(8) ", "
     L(9) ", " L(10) ", " L(11), "", -1, NULL},
    /* DS at the apex of a child zone we also serve comes from the parent
     * (RFC 4035 section 3.1.4.1): its DS RRset, or its NODATA. */
    {"signed.example.test.", "DS", "NOERROR", 1, "12345 8 2 " DS_HEX, "", -1, ""},
    {"SIGNED.example.test.", "DS", "NOERROR", 1, "12345 8 2 " DS_HEX, "", -1, ""},
    {"carrier.example.test.", "DS", "NOERROR", 1, "", SOA, 120, ""},
    /* Every other type stays with the child. */
    {"signed.example.test.", "SOA", "NOERROR", 1,
     "ns1.signed.example.test. hostmaster.example.test. 9 3600 600 604800 90", "", -1, ""},
    {"signed.example.test.", "NS", "NOERROR", 1, "ns1.signed.example.test.", "", -1, "192.0.2.54"},
    {"signed.example.test.", "TXT", "NOERROR", 1, "",
     "ns1.signed.example.test. hostmaster.example.test. 9 3600 600 604800 90", 90, ""},
    {"www.signed.example.test.", "DS", "NOERROR", 1, "",
     "ns1.signed.example.test. hostmaster.example.test. 9 3600 600 604800 90", 90, ""},
    {"app.carrier.example.test.", "DS", "NOERROR", 1, "",
     "ns1.example.test. hostmaster.example.test. 7 3600 600 604800 60", 60, ""},
    /* A CNAME into a delegation: the CNAME, then the referral (RFC 1034
     * section 4.3.2 step 3.b on the target), AA for the CNAME. */
    {"tocut.example.test.", "A", "NOERROR", 1, "host.child.example.test.",
     "ns1.child.example.test., ns.other.net.", 3600, "192.0.2.53"},
    {"tocutapex.example.test.", "TXT", "NOERROR", 1, "child.example.test.",
     "ns1.child.example.test., ns.other.net.", 3600, "192.0.2.53"},
    /* A CNAME to a name a plugin answers, or to another zone: the CNAME
     * alone, no SOA (RFC 2308 section 2.2 would read one as NODATA). */
    {"todyn.example.test.", "A", "NOERROR", 1, "dyn.example.test.", "", -1, ""},
    {"todyn.example.test.", "AAAA", "NOERROR", 1, "dyn.example.test.", "", -1, ""},
    {"dyn.example.test.", "A", "NOERROR", 1, "192.0.2.10", "", -1, ""},
    /* The plugin name has no TXT: that NODATA is true. */
    {"todyn.example.test.", "TXT", "NOERROR", 1, "dyn.example.test.", SOA, 120, ""},
    {"toapp.example.test.", "A", "NOERROR", 1, "app.carrier.example.test.", "", -1, ""},
    {"toapp.example.test.", "TXT", "NOERROR", 1, "app.carrier.example.test.", "", -1, ""},
};

static void check_case(const pcase_t *c, const bb_q_t *o)
{
    ldns_pkt *p = bb_query(&srv, c->qname, c->qtype, o);
    if (p == NULL)
        fail_msg("%s %s: no answer", c->qname, c->qtype);
    char what[300], got[8192];
    snprintf(what, sizeof(what), "%s %s%s rcode", c->qname, c->qtype, o && o->tcp ? " (tcp)" : "");
    BB_EXPECT_STR(what, bb_rcode(p), c->rcode);
    snprintf(what, sizeof(what), "%s %s AA", c->qname, c->qtype);
    BB_EXPECT_INT(what, ldns_pkt_aa(p), c->aa);
    snprintf(what, sizeof(what), "%s %s RA", c->qname, c->qtype);
    BB_EXPECT_INT(what, ldns_pkt_ra(p), 0);
    bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
    snprintf(what, sizeof(what), "%s %s answer", c->qname, c->qtype);
    BB_EXPECT_STR(what, got, c->answer);
    if (c->auth) {
        bb_rdata(ldns_pkt_authority(p), got, sizeof(got));
        snprintf(what, sizeof(what), "%s %s authority", c->qname, c->qtype);
        BB_EXPECT_STR(what, got, c->auth);
    }
    if (c->auth_ttl >= 0) {
        snprintf(what, sizeof(what), "%s %s authority TTL", c->qname, c->qtype);
        BB_EXPECT_INT(what, ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(p), 0)), c->auth_ttl);
    }
    if (c->addl) {
        bb_rdata(ldns_pkt_additional(p), got, sizeof(got));
        snprintf(what, sizeof(what), "%s %s additional", c->qname, c->qtype);
        BB_EXPECT_STR(what, got, c->addl);
    }
    ldns_pkt_free(p);
}

static void test_table_udp(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i], NULL);
}

static void test_table_tcp(void **state)
{
    (void)state;
    bb_q_t o = {.tcp = true};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i], &o);
}

static void test_table_no_edns(void **state)
{
    (void)state;
    bb_q_t o = {.no_edns = true};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i], &o);
}

static void test_ipv6_transport(void **state)
{
    (void)state;
    if (!bb_have_ipv6()) {
        skip();
        return;
    }
    bb_q_t o = {.source = "::1"};
    check_case(&cases[0], &o);
    o.tcp = true;
    check_case(&cases[0], &o);
}

/* ---- flags, case, compression ---- */

static void test_rd_copied_ra_never(void **state)
{
    (void)state;
    bb_q_t o = {.rd = true};
    ldns_pkt *p = bb_query(&srv, "www.example.test.", "A", &o);
    assert_non_null(p);
    BB_EXPECT_INT("RD copied", ldns_pkt_rd(p), 1);
    BB_EXPECT_INT("RA", ldns_pkt_ra(p), 0);
    ldns_pkt_free(p);
    p = bb_query(&srv, "example.org.", "A", &o);
    BB_EXPECT_RCODE(p, "REFUSED");
    BB_EXPECT_INT("RA on REFUSED", ldns_pkt_ra(p), 0);
    ldns_pkt_free(p);
}

static void test_case_and_compression(void **state)
{
    (void)state;
    uint8_t q[512], a[4096];
    size_t qlen = bb_build("WwW.ExAmPlE.TeSt.", "A", NULL, q, sizeof(q));
    int n = bb_raw_udp(&srv, q, qlen, a, sizeof(a), 2000);
    assert_true(n > 0);
    /* The question comes back byte for byte, case included. */
    size_t qname_len = 18; /* 3www7example4test0 */
    assert_memory_equal(a + 12, q + 12, qname_len + 4);
    /* The answer's owner is a compression pointer to the question. */
    size_t an = 12 + qname_len + 4;
    BB_EXPECT_INT("answer owner byte 0", a[an], 0xC0);
    BB_EXPECT_INT("answer owner byte 1", a[an + 1], 12);
    ldns_pkt *p = NULL;
    assert_int_equal(ldns_wire2pkt(&p, a, (size_t)n), LDNS_STATUS_OK);
    char *owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_answer(p), 0)));
    BB_EXPECT_STR("owner case", owner, "WwW.ExAmPlE.TeSt.");
    free(owner);
    ldns_pkt_free(p);

    /* Names in rdata are compressed too: the NS answer's targets point
     * into the question. */
    qlen = bb_build("example.test.", "NS", NULL, q, sizeof(q));
    n = bb_raw_udp(&srv, q, qlen, a, sizeof(a), 2000);
    assert_true(n > 0);
    /* ns1.example.test. as rdata: 3ns1 + pointer = 6 bytes. */
    size_t rr = 12 + 14 + 4;     /* first answer RR */
    size_t rdlen_at = rr + 2 + 8; /* owner pointer, type, class, ttl */
    BB_EXPECT_INT("NS rdata length (compressed)", (a[rdlen_at] << 8) | a[rdlen_at + 1], 6);
}

/* ---- EDNS0 (RFC 6891) ---- */

static void test_edns(void **state)
{
    (void)state;
    bb_q_t o = {.udp_size = 4096, .do_bit = true};
    ldns_pkt *p = bb_query(&srv, "www.example.test.", "A", &o);
    assert_non_null(p);
    BB_EXPECT_INT("OPT present", ldns_pkt_edns(p), 1);
    BB_EXPECT_INT("our payload size", ldns_pkt_edns_udp_size(p), 1232);
    BB_EXPECT_INT("DO echoed", ldns_pkt_edns_do(p), 1);
    BB_EXPECT_INT("version", ldns_pkt_edns_version(p), 0);
    ldns_pkt_free(p);

    o = (bb_q_t){.no_edns = true};
    p = bb_query(&srv, "www.example.test.", "A", &o);
    BB_EXPECT_INT("no OPT without EDNS", ldns_pkt_edns(p), 0);
    ldns_pkt_free(p);

    o = (bb_q_t){0};
    p = bb_query(&srv, "www.example.test.", "A", &o);
    BB_EXPECT_INT("DO clear when not asked", ldns_pkt_edns_do(p), 0);
    ldns_pkt_free(p);

    /* Unknown options are ignored, not echoed. */
    o = (bb_q_t){.extra_opt_code = 65001};
    p = bb_query(&srv, "www.example.test.", "A", &o);
    BB_EXPECT_RCODE(p, "NOERROR");
    BB_EXPECT_INT("no option echoed", ldns_pkt_edns_data(p) ? (int)ldns_rdf_size(ldns_pkt_edns_data(p)) : 0, 0);
    ldns_pkt_free(p);

    /* EDNS version 1: BADVERS, with an OPT of version 0 (section 6.1.3). */
    o = (bb_q_t){.edns_version = 1};
    p = bb_query(&srv, "www.example.test.", "A", &o);
    BB_EXPECT_RCODE(p, "BADVERS");
    BB_EXPECT_INT("BADVERS answer count", ldns_pkt_ancount(p), 0);
    BB_EXPECT_INT("BADVERS OPT version", ldns_pkt_edns_version(p), 0);
    ldns_pkt_free(p);
}

/* ---- truncation and TCP ---- */

static void test_truncation(void **state)
{
    (void)state;
    struct {
        bb_q_t o;
        size_t limit;
    } t[] = {
        {{.no_edns = true}, 512},
        {{.udp_size = 1232}, 1232},
        {{.udp_size = 4096}, 1232}, /* min(client, ours) */
        {{.udp_size = 600}, 600},
        {{.udp_size = 100}, 512},   /* below 512 counts as 512 */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t q[512], a[65536];
        size_t qlen = bb_build("big.example.test.", "TXT", &t[i].o, q, sizeof(q));
        int n = bb_raw_udp(&srv, q, qlen, a, sizeof(a), 2000);
        assert_true(n > 0);
        char what[64];
        snprintf(what, sizeof(what), "case %zu: size <= limit %zu", i, t[i].limit);
        if ((size_t)n > t[i].limit)
            fail_msg("%s: got %d bytes", what, n);
        ldns_pkt *p = NULL;
        assert_int_equal(ldns_wire2pkt(&p, a, (size_t)n), LDNS_STATUS_OK);
        snprintf(what, sizeof(what), "case %zu: TC", i);
        BB_EXPECT_INT(what, ldns_pkt_tc(p), 1);
        BB_EXPECT_RCODE(p, "NOERROR");
        ldns_pkt_free(p);
    }
    bb_q_t o = {.tcp = true};
    ldns_pkt *p = bb_query(&srv, "big.example.test.", "TXT", &o);
    assert_non_null(p);
    BB_EXPECT_INT("TC over TCP", ldns_pkt_tc(p), 0);
    BB_EXPECT_INT("all 40 TXT over TCP", ldns_pkt_ancount(p), 40);
    ldns_pkt_free(p);
}

static void test_tcp_pipelined(void **state)
{
    (void)state;
    int fd = bb_tcp_connect(&srv);
    const char *names[] = {"www.example.test.", "nope.example.test.", "big.example.test.",
                           "alias.example.test."};
    const char *types[] = {"A", "A", "TXT", "A"};
    const char *want[] = {"NOERROR", "NXDOMAIN", "NOERROR", "NOERROR"};
    uint16_t ids[4];
    /* Four queries in one write (RFC 7766 section 6.2.1.1). */
    uint8_t all[4096];
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t q[512];
        size_t l = bb_build(names[i], types[i], NULL, q, sizeof(q));
        ids[i] = (uint16_t)((q[0] << 8) | q[1]);
        all[off++] = (uint8_t)(l >> 8);
        all[off++] = (uint8_t)l;
        memcpy(all + off, q, l);
        off += l;
    }
    assert_int_equal(send(fd, all, off, 0), (ssize_t)off);
    for (int i = 0; i < 4; i++) {
        uint8_t a[65536];
        int n = bb_tcp_recv(fd, a, sizeof(a), 3000);
        assert_true(n > 0);
        ldns_pkt *p = NULL;
        assert_int_equal(ldns_wire2pkt(&p, a, (size_t)n), LDNS_STATUS_OK);
        BB_EXPECT_INT("pipelined answer id (in order)", ldns_pkt_id(p), ids[i]);
        BB_EXPECT_RCODE(p, want[i]);
        ldns_pkt_free(p);
    }
    /* A query split across writes (the length prefix alone first). */
    uint8_t q[512];
    size_t l = bb_build("www.example.test.", "AAAA", NULL, q, sizeof(q));
    uint8_t pre[2] = {(uint8_t)(l >> 8), (uint8_t)l};
    assert_int_equal(send(fd, pre, 2, 0), 2);
    assert_int_equal(send(fd, q, 5, 0), 5);
    assert_int_equal(send(fd, q + 5, l - 5, 0), (ssize_t)(l - 5));
    uint8_t a[4096];
    int n = bb_tcp_recv(fd, a, sizeof(a), 3000);
    assert_true(n > 0);
    close(fd);
}

/* ---- malformed and unusual queries ---- */

static int raw(const uint8_t *q, size_t len, uint8_t *a, size_t asz, int timeout_ms)
{
    return bb_raw_udp(&srv, q, len, a, asz, timeout_ms);
}

static void expect_raw_rcode(const char *what, const uint8_t *q, size_t len, int want_rcode,
                             int want_qd)
{
    uint8_t a[4096];
    int n = raw(q, len, a, sizeof(a), 2000);
    if (n < 12)
        fail_msg("%s: no answer", what);
    char w[200];
    snprintf(w, sizeof(w), "%s: rcode", what);
    BB_EXPECT_INT(w, a[3] & 0x0F, want_rcode);
    snprintf(w, sizeof(w), "%s: QR", what);
    BB_EXPECT_INT(w, (a[2] >> 7) & 1, 1);
    snprintf(w, sizeof(w), "%s: ID", what);
    BB_EXPECT_INT(w, (a[0] << 8) | a[1], (q[0] << 8) | q[1]);
    if (want_qd >= 0) {
        snprintf(w, sizeof(w), "%s: QDCOUNT", what);
        BB_EXPECT_INT(w, (a[4] << 8) | a[5], want_qd);
    }
}

/* The FORMERR to a query that had an OPT record carries ours (RFC 6891
 * section 6.1.1), also when the query is malformed around it. */
static void expect_formerr_with_opt(const char *what, const uint8_t *q, size_t len)
{
    expect_raw_rcode(what, q, len, 1, -1);
    uint8_t a[4096];
    int n = raw(q, len, a, sizeof(a), 2000);
    char w[200];
    snprintf(w, sizeof(w), "%s: ARCOUNT (our OPT)", what);
    BB_EXPECT_INT(w, (a[10] << 8) | a[11], 1);
    if (n < 12 + 11 || a[n - 11] != 0 || a[n - 10] != 0 || a[n - 9] != 41)
        fail_msg("%s: the last record is not an OPT", what);
}

static void test_opcodes_and_formerr(void **state)
{
    (void)state;
    uint8_t q[600];
    size_t len = bb_build("www.example.test.", "A", NULL, q, sizeof(q));

    uint8_t m[600];
    /* Opcodes other than QUERY: NOTIMP (STATUS = 2, NOTIFY = 4, UPDATE = 5). */
    int ops[] = {1, 2, 4, 5, 15};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        memcpy(m, q, len);
        m[2] = (uint8_t)((m[2] & 0x87) | (ops[i] << 3));
        char what[32];
        snprintf(what, sizeof(what), "opcode %d", ops[i]);
        expect_raw_rcode(what, m, len, 4, 1);
    }
    /* QDCOUNT 0 and 2. */
    memcpy(m, q, len);
    m[5] = 0;
    expect_raw_rcode("QDCOUNT 0", m, len, 1, 0);
    memcpy(m, q, len);
    m[5] = 2;
    expect_raw_rcode("QDCOUNT 2", m, len, 1, 0);
    /* A truncated name. */
    memcpy(m, q, len);
    m[11] = 0;
    expect_raw_rcode("truncated name", m, 12 + 6, 1, 0);
    /* A label length byte with the pointer bits in the question. */
    memcpy(m, q, len);
    m[12] = 0xC0;
    m[13] = 0x0C;
    m[11] = 0;
    expect_raw_rcode("pointer in question", m, 12 + 2 + 4, 1, 0);
    /* Extended label type (0x40). */
    m[12] = 0x41;
    expect_raw_rcode("label type 0x40", m, len, 1, 0);
    /* A name longer than 255 bytes. */
    uint8_t longq[600] = {0};
    memcpy(longq, q, 12);
    longq[11] = 0;
    size_t p = 12;
    for (int i = 0; i < 5; i++) {
        longq[p++] = 63;
        memset(longq + p, 'a', 63);
        p += 63;
    }
    longq[p++] = 0;
    longq[p++] = 0;
    longq[p++] = 1;
    longq[p++] = 0;
    longq[p++] = 1;
    expect_raw_rcode("name over 255 bytes", longq, p, 1, 0);
    /* Question type/class cut off. */
    memcpy(m, q, len);
    m[11] = 0;
    expect_raw_rcode("missing QTYPE", m, 12 + 18 + 2, 1, 0);
    /* Trailing garbage after the records. */
    memcpy(m, q, len);
    m[len] = 0xAB;
    expect_raw_rcode("trailing bytes", m, len + 1, 1, -1);
    /* Two OPT records. */
    uint8_t two[700];
    memcpy(two, q, len);
    memcpy(two + len, q + len - 11, 11);
    two[11] = 2;
    expect_formerr_with_opt("two OPT records", two, len + 11);
    /* An OPT not owned by the root. */
    uint8_t own[700];
    memcpy(own, q, len - 11);
    own[len - 11] = 1;
    own[len - 10] = 'x';
    own[len - 9] = 0;
    memcpy(own + len - 8, q + len - 10, 10);
    expect_formerr_with_opt("OPT owned by x", own, len + 2);
    /* An answer record in a query. */
    memcpy(m, q, len);
    m[7] = 1;
    expect_raw_rcode("ANCOUNT 1", m, len, 1, -1);
    /* An answer record before the OPT: still FORMERR, with our OPT. */
    uint8_t an[700];
    size_t qe = len - 11;
    memcpy(an, q, qe);
    const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1};
    memcpy(an + qe, rr, sizeof(rr));
    memcpy(an + qe + sizeof(rr), q + qe, 11);
    an[7] = 1;
    expect_formerr_with_opt("ANCOUNT 1 and an OPT", an, len + sizeof(rr));
    /* Class CH: REFUSED (nothing is served outside IN). */
    memcpy(m, q, len);
    m[12 + 18 + 3] = 3;
    expect_raw_rcode("class CH", m, len, 5, 1);
    /* Zone transfers are refused. */
    size_t al = bb_build("example.test.", "AXFR", NULL, m, sizeof(m));
    expect_raw_rcode("AXFR", m, al, 5, 1);
}

static void test_dropped(void **state)
{
    (void)state;
    uint8_t q[600], a[600];
    size_t len = bb_build("www.example.test.", "A", NULL, q, sizeof(q));
    /* A response (QR=1) is never answered: no reflection loops. */
    q[2] |= 0x80;
    BB_EXPECT_INT("QR=1 answered", raw(q, len, a, sizeof(a), 300), -1);
    /* Runts shorter than a header. */
    BB_EXPECT_INT("5-byte packet answered", raw(q, 5, a, sizeof(a), 300), -1);
}

static void test_any_minimal(void **state)
{
    (void)state;
    /* RFC 8482: one RRset, not everything. */
    ldns_pkt *p = bb_query(&srv, "example.test.", "ANY", NULL);
    BB_EXPECT_RCODE(p, "NOERROR");
    BB_EXPECT_INT("AA", ldns_pkt_aa(p), 1);
    ldns_rr_list *an = ldns_pkt_answer(p);
    assert_true(ldns_rr_list_rr_count(an) >= 1);
    ldns_rr_type t = ldns_rr_get_type(ldns_rr_list_rr(an, 0));
    for (size_t i = 1; i < ldns_rr_list_rr_count(an); i++)
        BB_EXPECT_INT("one RRset type", ldns_rr_get_type(ldns_rr_list_rr(an, i)), t);
    ldns_pkt_free(p);
    p = bb_query(&srv, "nope.example.test.", "ANY", NULL);
    BB_EXPECT_RCODE(p, "NXDOMAIN");
    ldns_pkt_free(p);
}

static void test_garbage_survives(void **state)
{
    (void)state;
    /* Random bytes, random lengths, random header bits: the server must
     * still answer a real query afterwards. */
    srand(12345);
    uint8_t buf[1500], a[4096];
    for (int i = 0; i < 2000; i++) {
        size_t len = (size_t)(rand() % 600);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rand();
        if (len > 3 && (i & 1))
            buf[2] &= 0x7F; /* a query, so it is parsed further */
        if (len > 5 && (i & 2)) {
            buf[4] = 0;
            buf[5] = 1;
        }
        (void)raw(buf, len, a, sizeof(a), 0);
    }
    ldns_pkt *p = bb_query(&srv, "www.example.test.", "A", NULL);
    assert_non_null(p);
    BB_EXPECT_RCODE(p, "NOERROR");
    ldns_pkt_free(p);
}

/* Additional addresses of an authoritative MX answer come from the zone's
 * own data, never from glue below a cut; a referral still carries its glue. */
static void test_additional_not_glue(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, "server: {listen: [127.0.0.1], port: 0, workers: 1}\n"
                 "zones:\n"
                 "  - origin: g.test\n"
                 "    soa: \"ns1 h 1 3600 600 604800 60\"\n"
                 "    ns: [ns1]\n"
                 "    records:\n"
                 "      ns1: \"A 192.0.2.1\"\n"
                 "      sub: \"NS ns.sub\"\n"
                 "      ns.sub: \"A 192.0.2.9\"\n"
                 "      mx: \"MX 10 ns.sub\"\n"
                 "      mx2: \"MX 10 mail\"\n"
                 "      mail: \"A 192.0.2.10\"\n");
    struct {
        const char *name, *type;
        int ar; /* additional records besides OPT */
    } ar_cases[] = {{"mx.g.test.", "MX", 0}, {"mx2.g.test.", "MX", 1}, {"x.sub.g.test.", "A", 1}};
    for (size_t i = 0; i < sizeof(ar_cases) / sizeof(ar_cases[0]); i++) {
        ldns_pkt *p = bb_query(&b, ar_cases[i].name, ar_cases[i].type, NULL);
        assert_non_null(p);
        int ar = (int)ldns_rr_list_rr_count(ldns_pkt_additional(p));
        if (ar != ar_cases[i].ar)
            fail_msg("%s %s: expected %d additional records, got %d", ar_cases[i].name, ar_cases[i].type,
                     ar_cases[i].ar, ar);
        ldns_pkt_free(p);
    }
    bb_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_udp),
        cmocka_unit_test(test_additional_not_glue),
        cmocka_unit_test(test_table_tcp),
        cmocka_unit_test(test_table_no_edns),
        cmocka_unit_test(test_ipv6_transport),
        cmocka_unit_test(test_rd_copied_ra_never),
        cmocka_unit_test(test_case_and_compression),
        cmocka_unit_test(test_edns),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_tcp_pipelined),
        cmocka_unit_test(test_opcodes_and_formerr),
        cmocka_unit_test(test_dropped),
        cmocka_unit_test(test_any_minimal),
        cmocka_unit_test(test_garbage_survives),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
