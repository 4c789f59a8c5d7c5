/*
 * test_ecs.c - black-box tests of "who is asking" over the wire (issue 3):
 * a steered name whose answer depends only on the client's region, with
 * MaxMind's GeoIP2-City-Test database (and the lab database that adds
 * 127.0.1.0/24 = GB, 127.0.2.0/24 = US, 127.0.3.0/24 = CN, so a test can
 * choose its source address on 127.0.0.0/8).
 *
 * Covered: the answer follows the ECS address when there is one, else the
 * source address; the ECS option comes back with FAMILY, SOURCE and ADDRESS
 * as sent and SCOPE = the prefix that decided (RFC 7871 section 7.2.1);
 * SOURCE 0 classifies by the source address with scope 0; the server caps
 * (server.ecs_max_prefix_v4/v6) on lookups and scopes; IPv6 ECS (native and
 * 6to4); malformed ECS -> FORMERR; no ECS in the query -> none in the
 * answer; static names -> scope 0; server.ecs: false -> ignored (even
 * when malformed) and not echoed; broken databases -> `steerdns check` exits 1 naming the file and
 * `serve` refuses to start.  Every table runs over UDP and TCP, and over
 * IPv6 transport where the source address does not matter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bb.h"

/* Answers of the steered name `app`: one cluster per region. */
#define GB4 "10.1.0.1"
#define US4 "10.2.0.1"
#define CN4 "10.3.0.1"
#define OTHER4 "10.9.0.1"
#define GB6 "2001:db8:1::1"
#define US6 "2001:db8:2::1"
#define OTHER6 "2001:db8:9::1"

#define MMDB "@SHARED@/testdata/mmdb/"

/* The configuration, with extra `server:` lines (indented by two). */
static const char *config(const char *server_extra)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "server:\n"
             "  listen: [127.0.0.1, \"::1\"]\n"
             "  port: 0\n"
             "  workers: 2\n"
             "%s"
             "health:\n"
             "  interval: 100ms\n"
             "regions:\n"
             "  gb: {lat: 51.5, lon: -0.1, country: GB, match: [GB]}\n"
             "  us: {lat: 38.0, lon: -97.0, country: US, match: [US]}\n"
             "  cn: {lat: 35.0, lon: 105.0, country: CN, match: [CN]}\n"
             "  other: {lat: 0, lon: 0}\n"
             "geo:\n"
             "  city_db: [" MMDB "GeoIP2-City-Test.mmdb, @SHARED@/peers/mmdb/lab-city.mmdb]\n"
             "  carriers: {net: {}}\n"
             "clusters:\n"
             "  gb: {region: gb, carrier: net, entry: [" GB4 ", \"" GB6 "\"],"
             " servers: {s: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"
             "  us: {region: us, carrier: net, entry: [" US4 ", \"" US6 "\"],"
             " servers: {s: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"
             "  cn: {region: cn, carrier: net, entry: [" CN4 "],"
             " servers: {s: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"
             "  other: {region: other, carrier: net, entry: [" OTHER4 ", \"" OTHER6 "\"],"
             " servers: {s: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"
             "resolvers:\n"
             "  steer:\n"
             "    geo: {mode: literal, default_region: other}\n"
             "zones:\n"
             "  - origin: example.test\n"
             "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"
             "    ns: [ns1]\n"
             "    records:\n"
             "      ns1: \"A 192.0.2.53\"\n"
             "      www: [\"A 192.0.2.80\", \"AAAA 2001:db8::80\"]\n"
             "      app: {steer: geo}\n"
             "      fixed: {static: [192.0.2.10, \"2001:db8::10\"]}\n",
             server_extra);
    return buf;
}

static void start(bb_t *b, const char *server_extra)
{
    bb_prepare(b, config(server_extra));
    bb_write(b, "up", "UP\n");
    bb_launch(b);
}

/* ---- one answer, summarised ---- */

typedef struct res {
    char rcode[16];
    char answer[1024]; /* rdata of the answer section */
    char ecs[160];     /* "addr/source/scope", "" when the answer has none */
    int opt;           /* the answer has an OPT record */
} res_t;

static void ask(const bb_t *b, const char *name, const char *type, const bb_q_t *o, res_t *r)
{
    ldns_pkt *p = bb_query(b, name, type, o);
    if (p == NULL)
        fail_msg("%s %s (ecs %s, source %s, %s): no answer", name, type,
                 o && o->ecs ? o->ecs : "-", o && o->source ? o->source : "-",
                 o && o->tcp ? "tcp" : "udp");
    snprintf(r->rcode, sizeof(r->rcode), "%s", bb_rcode(p));
    bb_rdata(ldns_pkt_answer(p), r->answer, sizeof(r->answer));
    bb_ecs(p, r->ecs, sizeof(r->ecs));
    r->opt = ldns_pkt_edns(p);
    ldns_pkt_free(p);
}

/* ---- the table: client x query -> answer and echoed ECS ---- */

typedef struct ecase {
    const char *ecs;    /* ECS sent ("addr/prefix"), NULL = none */
    const char *source; /* source address, NULL = 127.0.0.1 (or ::1) */
    const char *name, *type;
    const char *answer; /* expected rdata */
    const char *echo;   /* expected ECS option in the answer ("" = none) */
} ecase_t;

#define APP "app.example.test."

/* Default caps: /24 for IPv4, /56 for IPv6. */
static const ecase_t cases[] = {
    /* The ECS address decides; SCOPE is the database network, at most the
     * cap (the database's /28 here is cut to 24: no more bits of any
     * client are ever used, RFC 7871 section 7.2.1). */
    {"149.101.100.0/24", NULL, APP, "A", US4, "149.101.100.0/24/24"},
    {"2.2.3.0/24", NULL, APP, "A", GB4, "2.2.3.0/24/24"},
    {"2.2.3.0/24", NULL, APP, "AAAA", GB6, "2.2.3.0/24/24"},
    {"175.16.199.0/24", NULL, APP, "A", CN4, "175.16.199.0/24/24"},
    /* Fewer bits than the network: the client said 149.101.0.0. */
    {"149.101.0.0/16", NULL, APP, "A", OTHER4, "149.101.0.0/16/18"},
    /* Unknown address: the default region; scope = the empty network,
     * /25 in the database, cut to the cap: a /24 and a /32 source in the
     * same /24 get the same scope, as they get the same answer. */
    {"81.2.69.0/24", NULL, APP, "A", OTHER4, "81.2.69.0/24/24"},
    /* More bits than the cap: looked up as /24 (81.2.69.0 has no data,
     * although 81.2.69.142 is GB), and the scope never exceeds the cap
     * (the database's /25 or /28 are cut to 24). */
    {"81.2.69.142/32", NULL, APP, "A", OTHER4, "81.2.69.142/32/24"},
    {"149.101.100.0/32", NULL, APP, "A", US4, "149.101.100.0/32/24"},
    {"216.160.83.56/29", NULL, APP, "A", OTHER4, "216.160.83.56/29/24"},
    /* IPv6 ECS. */
    {"2a02:d3c0::/32", NULL, APP, "A", GB4, "2a02:d3c0::/32/29"},
    {"2a02:d3c0::/32", NULL, APP, "AAAA", GB6, "2a02:d3c0::/32/29"},
    {"2001:250::/32", NULL, APP, "A", CN4, "2001:250::/32/31"},
    {"2001:218::/32", NULL, APP, "A", OTHER4, "2001:218::/32/32"}, /* JP: no region */
    {"2a02:d3c0::1/128", NULL, APP, "A", GB4, "2a02:d3c0::1/128/29"}, /* capped to /56 */
    /* ::/56 falls in the database's IPv4-mapped subtree (a /104 network):
     * the scope is cut to the cap, at or under it in the source. */
    {"::/56", NULL, APP, "A", OTHER4, "::/56/56"},
    {"::/48", NULL, APP, "A", OTHER4, "::/48/56"},
    {"::/64", NULL, APP, "A", OTHER4, "::/64/56"},
    /* 6to4 2002:0202:0300::/40 embeds 2.2.3.0/24: 16 + 24 bits decided. */
    {"2002:202:300::/40", NULL, APP, "A", GB4, "2002:202:300::/40/40"},
    /* The ECS address wins over the source address. */
    {"2.2.3.0/24", "127.0.3.1", APP, "A", GB4, "2.2.3.0/24/24"},
    {"149.101.100.0/24", "127.0.1.1", APP, "A", US4, "149.101.100.0/24/24"},
    /* SOURCE PREFIX-LENGTH 0: classify the source address, SCOPE 0
     * (RFC 7871 section 7.1.2). */
    {"0.0.0.0/0", "127.0.1.1", APP, "A", GB4, "0.0.0.0/0/0"},
    {"0.0.0.0/0", "127.0.2.1", APP, "A", US4, "0.0.0.0/0/0"},
    {"::/0", "127.0.3.1", APP, "A", CN4, "::/0/0"},
    {"0.0.0.0/0", NULL, APP, "A", OTHER4, "0.0.0.0/0/0"},
    /* No ECS: the source address decides and no ECS comes back. */
    {NULL, "127.0.1.1", APP, "A", GB4, ""},
    {NULL, "127.0.2.1", APP, "A", US4, ""},
    {NULL, "127.0.2.1", APP, "AAAA", US6, ""},
    {NULL, "127.0.3.1", APP, "A", CN4, ""},
    {NULL, NULL, APP, "A", OTHER4, ""},
    /* Names that do not depend on the client: scope 0. */
    {"2.2.3.0/24", NULL, "fixed.example.test.", "A", "192.0.2.10", "2.2.3.0/24/0"},
    {"2a02:d3c0::/32", NULL, "fixed.example.test.", "AAAA", "2001:db8::10", "2a02:d3c0::/32/0"},
    {"2.2.3.0/24", NULL, "www.example.test.", "A", "192.0.2.80", "2.2.3.0/24/0"},
    {"2.2.3.0/24", NULL, "nope.example.test.", "A", "", "2.2.3.0/24/0"},
    {"2.2.3.0/24", NULL, "www.example.test.", "MX", "", "2.2.3.0/24/0"},
    {NULL, NULL, "fixed.example.test.", "A", "192.0.2.10", ""},
};

static void run_case(const bb_t *b, const ecase_t *c, bool tcp, bool v6)
{
    if ((v6 || (c->source && strchr(c->source, ':'))) && !bb_have_ipv6())
        return;
    bb_q_t o = {.tcp = tcp, .ecs = c->ecs, .source = c->source};
    if (v6)
        o.source = "::1";
    res_t r;
    ask(b, c->name, c->type, &o, &r);
    char what[400];
    snprintf(what, sizeof(what), "%s %s ecs=%s source=%s over %s/%s", c->name, c->type,
             c->ecs ? c->ecs : "none", o.source ? o.source : "127.0.0.1", tcp ? "TCP" : "UDP",
             v6 ? "IPv6" : "IPv4");
    char w[480];
    snprintf(w, sizeof(w), "%s: rcode", what);
    BB_EXPECT_STR(w, r.rcode, strstr(c->name, "nope") ? "NXDOMAIN" : "NOERROR");
    snprintf(w, sizeof(w), "%s: answer", what);
    BB_EXPECT_STR(w, r.answer, c->answer);
    snprintf(w, sizeof(w), "%s: ECS echoed (address/source/scope)", what);
    BB_EXPECT_STR(w, r.ecs, c->echo);
    snprintf(w, sizeof(w), "%s: OPT present", what);
    BB_EXPECT_INT(w, r.opt, 1);
}

static bb_t srv; /* defaults: ECS on, caps 24/56 */

/* A second server (or prepared folder) of one test: stopped by the
 * teardown even when a check fails half-way, so no server outlives a
 * failed test. */
static bb_t extra;

static int stop_extra(void **state)
{
    (void)state;
    if (extra.dir[0])
        bb_stop(&extra);
    memset(&extra, 0, sizeof(extra));
    return 0;
}

static int setup(void **state)
{
    (void)state;
    start(&srv, "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bb_stop(&srv);
    return 0;
}

static void test_table_udp(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&srv, &cases[i], false, false);
}

static void test_table_tcp(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&srv, &cases[i], true, false);
}

/* Over IPv6 transport (source ::1, which no database knows): every case
 * whose answer does not depend on the source address. */
static void test_table_ipv6_transport(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const ecase_t *c = &cases[i];
        bool by_source = c->ecs == NULL || strstr(c->ecs, "/0") != NULL;
        if (by_source && c->source != NULL)
            continue;
        run_case(&srv, c, false, true);
        run_case(&srv, c, true, true);
    }
}

/* No EDNS at all: no OPT in the answer, the source address decides. */
static void test_no_edns(void **state)
{
    (void)state;
    bb_q_t o = {.no_edns = true, .source = "127.0.2.9"};
    res_t r;
    ask(&srv, APP, "A", &o, &r);
    BB_EXPECT_STR("no EDNS: answer", r.answer, US4);
    BB_EXPECT_INT("no EDNS: OPT in the answer", r.opt, 0);
}

/* ---- malformed ECS -> FORMERR (RFC 7871 section 7.1.1) ---- */

/* A query for app.example.test/A whose OPT carries exactly these option
 * bytes. */
static size_t query_with_options(const uint8_t *opts, size_t olen, uint8_t *out, size_t size)
{
    size_t len = bb_build(APP, "A", NULL, out, size);
    /* bb_build ends with an OPT whose RDLENGTH (last two bytes) is 0. */
    if (len + olen > size)
        fail_msg("query too large");
    out[len - 2] = (uint8_t)(olen >> 8);
    out[len - 1] = (uint8_t)olen;
    memcpy(out + len, opts, olen);
    return len + olen;
}

/* One ECS option: family, source, scope and `alen` address bytes. */
static size_t ecs_opt(uint8_t *o, unsigned family, unsigned source, const uint8_t *addr,
                      size_t alen)
{
    o[0] = 0;
    o[1] = 8;
    o[2] = (uint8_t)((4 + alen) >> 8);
    o[3] = (uint8_t)(4 + alen);
    o[4] = (uint8_t)(family >> 8);
    o[5] = (uint8_t)family;
    o[6] = (uint8_t)source;
    o[7] = 0;
    memcpy(o + 8, addr, alen);
    return 8 + alen;
}

typedef struct badcase {
    const char *what;
    unsigned family, source;
    uint8_t addr[20];
    size_t alen;
    int rcode; /* 1 FORMERR, 0 NOERROR (the controls) */
} badcase_t;

static const badcase_t malformed[] = {
    {"family 0", 0, 0, {0}, 0, 1},
    {"family 3", 3, 24, {2, 2, 3}, 3, 1},
    {"IPv4 source 33", 1, 33, {2, 2, 3, 0, 0}, 5, 1},
    {"IPv6 source 129", 2, 129, {0x2a, 0x02}, 17, 1},
    {"IPv4 /24 with 4 address bytes", 1, 24, {2, 2, 3, 0}, 4, 1},
    {"IPv4 /24 with 2 address bytes", 1, 24, {2, 2}, 2, 1},
    {"IPv4 /0 with 1 address byte", 1, 0, {0}, 1, 1},
    {"IPv6 /32 with 16 address bytes", 2, 32, {0x2a, 0x02, 0xd3, 0xc0}, 16, 1},
    {"IPv4 /20: bits set past the prefix", 1, 20, {2, 2, 3}, 3, 1},
    {"IPv4 /23: bit 24 set", 1, 23, {2, 2, 3}, 3, 1},
    {"IPv6 /52: bits set past the prefix", 2, 52, {0x2a, 0x02, 0xd3, 0xc0, 0, 0, 0x0f}, 7, 1},
    /* Controls: the same shapes, well formed. */
    {"IPv4 /24 (control)", 1, 24, {2, 2, 3}, 3, 0},
    {"IPv4 /22 (control)", 1, 22, {2, 2, 0}, 3, 0},
    {"IPv4 /0 (control)", 1, 0, {0}, 0, 0},
    {"IPv6 /0 (control)", 2, 0, {0}, 0, 0},
    {"IPv6 /52 (control)", 2, 52, {0x2a, 0x02, 0xd3, 0xc0, 0, 0, 0x00}, 7, 0},
};

static void expect_raw(const char *what, const uint8_t *q, size_t len, int want_rcode, bool tcp)
{
    uint8_t a[4096];
    int n;
    if (tcp) {
        int fd = bb_tcp_connect(&srv);
        n = bb_tcp_send(fd, q, len) ? bb_tcp_recv(fd, a, sizeof(a), 2000) : -1;
        close(fd);
    } else {
        n = bb_raw_udp(&srv, q, len, a, sizeof(a), 2000);
    }
    if (n < 12)
        fail_msg("%s (%s): no answer", what, tcp ? "tcp" : "udp");
    char w[300];
    snprintf(w, sizeof(w), "%s (%s): rcode", what, tcp ? "tcp" : "udp");
    BB_EXPECT_INT(w, a[3] & 0x0F, want_rcode);
    snprintf(w, sizeof(w), "%s (%s): ANCOUNT", what, tcp ? "tcp" : "udp");
    BB_EXPECT_INT(w, (a[6] << 8) | a[7], want_rcode == 0 ? 1 : 0);
}

static void test_malformed_ecs(void **state)
{
    (void)state;
    for (int tcp = 0; tcp < 2; tcp++) {
        for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
            uint8_t opt[64], q[600];
            size_t ol = ecs_opt(opt, malformed[i].family, malformed[i].source, malformed[i].addr, malformed[i].alen);
            size_t len = query_with_options(opt, ol, q, sizeof(q));
            expect_raw(malformed[i].what, q, len, malformed[i].rcode, tcp);
        }
        /* An option too short to hold FAMILY, SOURCE and SCOPE. */
        uint8_t shortopt[] = {0, 8, 0, 3, 0, 1, 24}, q[600];
        size_t len = query_with_options(shortopt, sizeof(shortopt), q, sizeof(q));
        expect_raw("ECS option of 3 bytes", q, len, 1, tcp);
        /* Two ECS options (RFC 7871 section 7.1.1: at most one). */
        uint8_t two[64];
        uint8_t a24[] = {2, 2, 3};
        size_t ol = ecs_opt(two, 1, 24, a24, 3);
        ol += ecs_opt(two + ol, 1, 24, a24, 3);
        len = query_with_options(two, ol, q, sizeof(q));
        expect_raw("two ECS options", q, len, 1, tcp);
        /* An option length running past the OPT record. */
        uint8_t over[] = {0, 8, 0, 20, 0, 1, 24, 0, 2, 2, 3};
        len = query_with_options(over, sizeof(over), q, sizeof(q));
        expect_raw("ECS length past the OPT record", q, len, 1, tcp);
    }
    /* The server still answers normally afterwards. */
    res_t r;
    bb_q_t o = {.ecs = "2.2.3.0/24"};
    ask(&srv, APP, "A", &o, &r);
    BB_EXPECT_STR("after malformed ECS", r.answer, GB4);
}

/* ---- other server settings ---- */

typedef struct setcase {
    const char *ecs, *source, *type;
    const char *answer, *echo;
} setcase_t;

static void run_set(const bb_t *b, const char *title, const setcase_t *c, size_t n)
{
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < n; i++) {
            bb_q_t o = {.tcp = tcp, .ecs = c[i].ecs, .source = c[i].source};
            res_t r;
            ask(b, APP, c[i].type, &o, &r);
            char w[300];
            snprintf(w, sizeof(w), "%s: ecs=%s source=%s %s %s: answer", title,
                     c[i].ecs ? c[i].ecs : "none", c[i].source ? c[i].source : "127.0.0.1",
                     c[i].type, tcp ? "tcp" : "udp");
            BB_EXPECT_STR(w, r.answer, c[i].answer);
            snprintf(w, sizeof(w), "%s: ecs=%s source=%s %s %s: ECS echoed", title,
                     c[i].ecs ? c[i].ecs : "none", c[i].source ? c[i].source : "127.0.0.1",
                     c[i].type, tcp ? "tcp" : "udp");
            BB_EXPECT_STR(w, r.ecs, c[i].echo);
        }
}

/* server.ecs: false - the option is ignored (the source address decides)
 * and never echoed. */
static void test_ecs_off(void **state)
{
    (void)state;
    start(&extra, "  ecs: false\n");
    static const setcase_t c[] = {
        {"2.2.3.0/24", "127.0.3.1", "A", CN4, ""},
        {"149.101.100.0/24", "127.0.1.1", "A", GB4, ""},
        {"2a02:d3c0::/32", "127.0.2.1", "AAAA", US6, ""},
        {"0.0.0.0/0", "127.0.2.1", "A", US4, ""},
        {"2.2.3.0/24", NULL, "A", OTHER4, ""},
    };
    run_set(&extra, "ecs: false", c, sizeof(c) / sizeof(c[0]));
    /* Static answers do not echo either. */
    bb_q_t o = {.ecs = "2.2.3.0/24"};
    res_t r;
    ask(&extra, "fixed.example.test.", "A", &o, &r);
    BB_EXPECT_STR("ecs: false, static name: ECS echoed", r.ecs, "");
    BB_EXPECT_INT("ecs: false, static name: OPT present", r.opt, 1);
    /* With ECS off its option is an unknown option (RFC 6891 section
     * 6.1.2): ignored, even malformed - no FORMERR, nothing echoed, the
     * source address decides. */
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        uint8_t opt[64], q[600], a[600];
        size_t ol = ecs_opt(opt, malformed[i].family, malformed[i].source, malformed[i].addr,
                            malformed[i].alen);
        size_t len = query_with_options(opt, ol, q, sizeof(q));
        int n = bb_raw_udp(&extra, q, len, a, sizeof(a), 2000);
        char w[200];
        snprintf(w, sizeof(w), "ecs: false, %s: answered", malformed[i].what);
        BB_EXPECT_INT(w, n >= 12, 1);
        snprintf(w, sizeof(w), "ecs: false, %s: rcode", malformed[i].what);
        BB_EXPECT_INT(w, a[3] & 0x0F, 0);
        ldns_pkt *p = NULL;
        assert_int_equal(ldns_wire2pkt(&p, a, (size_t)n), LDNS_STATUS_OK);
        char got[1024];
        bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
        snprintf(w, sizeof(w), "ecs: false, %s: answer", malformed[i].what);
        BB_EXPECT_STR(w, got, OTHER4);
        bb_ecs(p, got, sizeof(got));
        snprintf(w, sizeof(w), "ecs: false, %s: ECS echoed", malformed[i].what);
        BB_EXPECT_STR(w, got, "");
        ldns_pkt_free(p);
    }
    /* The audit's example (dig +ednsopt=8:000121000a010000ff: IPv4 with
     * SOURCE 33), a too-short option and two ECS options, over UDP and
     * TCP. */
    static const uint8_t odd[][24] = {
        {0, 8, 0, 9, 0, 1, 0x21, 0, 0x0a, 0x01, 0x00, 0x00, 0xff},
        {0, 8, 0, 3, 0, 1, 24},
        {0, 8, 0, 7, 0, 1, 24, 0, 2, 2, 3, 0, 8, 0, 7, 0, 1, 24, 0, 2, 2, 3},
    };
    static const size_t oddlen[] = {13, 7, 22};
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < sizeof(oddlen) / sizeof(oddlen[0]); i++) {
            uint8_t q[600], a[600];
            size_t len = query_with_options(odd[i], oddlen[i], q, sizeof(q));
            int n;
            if (tcp) {
                int fd = bb_tcp_connect(&extra);
                n = bb_tcp_send(fd, q, len) ? bb_tcp_recv(fd, a, sizeof(a), 2000) : -1;
                close(fd);
            } else {
                n = bb_raw_udp(&extra, q, len, a, sizeof(a), 2000);
            }
            char w[200];
            snprintf(w, sizeof(w), "ecs: false, odd option %zu (%s): answered", i, tcp ? "tcp" : "udp");
            BB_EXPECT_INT(w, n >= 12, 1);
            snprintf(w, sizeof(w), "ecs: false, odd option %zu (%s): rcode", i, tcp ? "tcp" : "udp");
            BB_EXPECT_INT(w, a[3] & 0x0F, 0);
            snprintf(w, sizeof(w), "ecs: false, odd option %zu (%s): ANCOUNT", i, tcp ? "tcp" : "udp");
            BB_EXPECT_INT(w, (a[6] << 8) | a[7], 1);
        }
    /* An option running past the OPT record is still a malformed OPT. */
    uint8_t over[] = {0, 8, 0, 20, 0, 1, 24, 0, 2, 2, 3}, q[600], a[600];
    size_t len = query_with_options(over, sizeof(over), q, sizeof(q));
    int n = bb_raw_udp(&extra, q, len, a, sizeof(a), 2000);
    BB_EXPECT_INT("ecs: false, option past the OPT: answered", n >= 12, 1);
    BB_EXPECT_INT("ecs: false, option past the OPT: rcode", a[3] & 0x0F, 1);
    bb_stop(&extra);
}

/* Caps raised to the full address: every bit the client sends is used. */
static void test_caps_full(void **state)
{
    (void)state;
    start(&extra, "  ecs_max_prefix_v4: 32\n  ecs_max_prefix_v6: 128\n");
    static const setcase_t c[] = {
        {"81.2.69.142/32", NULL, "A", GB4, "81.2.69.142/32/31"},
        {"216.160.83.56/29", NULL, "A", US4, "216.160.83.56/29/29"},
        {"149.101.100.0/32", NULL, "A", US4, "149.101.100.0/32/28"},
        {"2a02:d3c0::1/128", NULL, "AAAA", GB6, "2a02:d3c0::1/128/29"},
        {"2.2.3.0/24", NULL, "A", GB4, "2.2.3.0/24/24"},
    };
    run_set(&extra, "caps 32/128", c, sizeof(c) / sizeof(c[0]));
    bb_stop(&extra);
}

/* Caps below the networks: the lookup uses only the capped prefix, so the
 * answer is the one for that prefix, and the scope is at most the cap. */
static void test_caps_short(void **state)
{
    (void)state;
    start(&extra, "  ecs_max_prefix_v4: 16\n  ecs_max_prefix_v6: 24\n");
    static const setcase_t c[] = {
        /* 149.101.100.0/24 is looked up as 149.101.0.0/16: no data. */
        {"149.101.100.0/24", NULL, "A", OTHER4, "149.101.100.0/24/16"},
        {"2.2.3.0/24", NULL, "A", OTHER4, "2.2.3.0/24/16"},
        /* 2a02:d3c0::/32 as 2a02:d300::/24: the GB network is /29. */
        {"2a02:d3c0::/32", NULL, "A", OTHER4, "2a02:d3c0::/32/24"},
        /* At the cap: the database's /18 is cut to the cap too. */
        {"149.101.0.0/16", NULL, "A", OTHER4, "149.101.0.0/16/16"},
        {"0.0.0.0/0", "127.0.1.1", "A", GB4, "0.0.0.0/0/0"},
    };
    run_set(&extra, "caps 16/24", c, sizeof(c) / sizeof(c[0]));
    /* The capped answer is the answer for the capped prefix on a server
     * with the default caps. */
    static const char *const pairs[][2] = {
        {"149.101.100.0/24", "149.101.0.0/16"},
        {"2.2.3.0/24", "2.2.0.0/16"},
        {"175.16.199.0/24", "175.16.0.0/16"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        res_t capped, full;
        bb_q_t o1 = {.ecs = pairs[i][0]}, o2 = {.ecs = pairs[i][1]};
        ask(&extra, APP, "A", &o1, &capped);
        ask(&srv, APP, "A", &o2, &full);
        char w[200];
        snprintf(w, sizeof(w), "cap 16: %s answered as %s", pairs[i][0], pairs[i][1]);
        BB_EXPECT_STR(w, capped.answer, full.answer);
    }
    bb_stop(&extra);
}

/* Regression (resolver/answer.c, respond_plugin): with a cap of 0 no bit of
 * the ECS address is used, yet the query is classified as the address
 * 0.0.0.0/0 instead of by the resolver's source address, so every client
 * lands in the default region.  Expected: the same as SOURCE
 * PREFIX-LENGTH 0 (RFC 7871 section 7.1.2): the source address decides,
 * scope 0. */
static void test_caps_zero(void **state)
{
    (void)state;
    start(&extra, "  ecs_max_prefix_v4: 0\n  ecs_max_prefix_v6: 0\n");
    static const setcase_t c[] = {
        {"2.2.3.0/24", "127.0.2.1", "A", US4, "2.2.3.0/24/0"},
        {"149.101.100.0/24", "127.0.1.1", "A", GB4, "149.101.100.0/24/0"},
        {"2a02:d3c0::/32", "127.0.3.1", "A", CN4, "2a02:d3c0::/32/0"},
        {"0.0.0.0/0", "127.0.1.1", "A", GB4, "0.0.0.0/0/0"},
    };
    run_set(&extra, "caps 0/0", c, sizeof(c) / sizeof(c[0]));
    bb_stop(&extra);
}

/* ---- broken databases ---- */

static void test_broken_databases(void **state)
{
    (void)state;
    static const struct {
        const char *key, *file, *message;
    } dbs[] = {
        {"city_db", "GeoIP2-City-Test-Broken-Double-Format.mmdb", "cannot load"},
        {"city_db", "GeoIP2-City-Test-Invalid-Node-Count.mmdb", "cannot load"},
        {"city_db", "MaxMind-DB-test-broken-pointers-24.mmdb", "cannot load"},
        {"city_db", "MaxMind-DB-test-broken-search-tree-24.mmdb", "cannot load"},
        {"asn_db", "MaxMind-DB-test-broken-pointers-24.mmdb", "cannot load"},
        {"asn_db", "GeoIP2-City-Test-Invalid-Node-Count.mmdb", "cannot load"},
        /* Good files of the wrong kind: the field paths fit no record. */
        {"city_db", "GeoLite2-ASN-Test.mmdb", "is in none of its"},
        {"asn_db", "GeoIP2-City-Test.mmdb", "is in none of its"},
        {"city_db", "no-such-file.mmdb", "cannot open"},
    };
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        char text[1024];
        /* Line 5, column 12 holds the path. */
        snprintf(text, sizeof(text),
                 "server: {listen: [127.0.0.1], port: 0, workers: 1}\n" /* 1 */
                 "regions:\n"                                          /* 2 */
                 "  gb: {lat: 51.5, lon: -0.1, match: [GB]}\n"         /* 3 */
                 "geo:\n"                                              /* 4 */
                 "  %-8s %s%s\n"                                       /* 5 */
                 "zones:\n"
                 "  - origin: example.test\n"
                 "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"
                 "    ns: [ns1]\n",
                 strcmp(dbs[i].key, "city_db") == 0 ? "city_db:" : "asn_db: ", MMDB, dbs[i].file);
        bb_prepare(&extra, text);
        char out[16384], want[1024];
        const char *check[] = {"steerdns", "check", "-c", extra.config, NULL};
        char what[200];
        snprintf(what, sizeof(what), "check with %s %s: exit status", dbs[i].key, dbs[i].file);
        BB_EXPECT_INT(what, bb_run(out, sizeof(out), check), 1);
        snprintf(want, sizeof(want), "%s:5:12: error: geo.%s: ", extra.config, dbs[i].key);
        snprintf(what, sizeof(what), "check with %s %s: position", dbs[i].key, dbs[i].file);
        bb_expect_contains(what, out, want);
        snprintf(want, sizeof(want), "%s/testdata/mmdb/%s", STEERDNS_SHARED, dbs[i].file);
        snprintf(what, sizeof(what), "check with %s %s: names the file", dbs[i].key, dbs[i].file);
        bb_expect_contains(what, out, want);
        bb_expect_contains(what, out, dbs[i].message);
        bb_expect_contains(what, out, ": 1 error(s)");
        /* serve refuses the same file and never says ready. */
        const char *serve[] = {"steerdns", "serve", "-c", extra.config, NULL};
        snprintf(what, sizeof(what), "serve with %s %s: exit status", dbs[i].key, dbs[i].file);
        BB_EXPECT_INT(what, bb_run(out, sizeof(out), serve), 1);
        if (strstr(out, "steerdns ready"))
            fail_msg("serve with a broken %s became ready:\n%s", dbs[i].file, out);
        bb_stop(&extra);
    }
}

/* A broken database on reload: refused, the old one keeps answering. */
static void test_broken_database_reload(void **state)
{
    (void)state;
    start(&extra, "");
    char *text = strdup(config(""));
    char *p = strstr(text, "GeoIP2-City-Test.mmdb");
    assert_non_null(p);
    const char *broken = "GeoIP2-City-Test-Broken-Double-Format.mmdb";
    size_t cap = strlen(text) + strlen(broken) + 1;
    char *bad = malloc(cap);
    snprintf(bad, cap, "%.*s%s%s", (int)(p - text), text, broken, p + strlen("GeoIP2-City-Test.mmdb"));
    assert_true(bb_reload(&extra, bad, false));
    assert_true(bb_log_count(&extra, broken) >= 1);
    bb_q_t o = {.ecs = "149.101.100.0/24"};
    res_t r;
    ask(&extra, APP, "A", &o, &r);
    BB_EXPECT_STR("after a refused reload: answer", r.answer, US4);
    BB_EXPECT_STR("after a refused reload: ECS", r.ecs, "149.101.100.0/24/24");
    free(bad);
    free(text);
    bb_stop(&extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_udp),
        cmocka_unit_test(test_table_tcp),
        cmocka_unit_test(test_table_ipv6_transport),
        cmocka_unit_test(test_no_edns),
        cmocka_unit_test(test_malformed_ecs),
        cmocka_unit_test_teardown(test_ecs_off, stop_extra),
        cmocka_unit_test_teardown(test_caps_full, stop_extra),
        cmocka_unit_test_teardown(test_caps_short, stop_extra),
        cmocka_unit_test_teardown(test_caps_zero, stop_extra),
        cmocka_unit_test_teardown(test_broken_databases, stop_extra),
        cmocka_unit_test_teardown(test_broken_database_reload, stop_extra),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
