/*
 * test_plugins.c - black-box tests of the resolver plugins other than
 * steer's decisions (docs/plugins.md), over the wire:
 *
 *   weighted  the distribution over many queries follows the weights, A and
 *             AAAA separately; one address per answer; NODATA for a family
 *             it has none of; TTL; ECS scope 0;
 *   failover  the first cluster that is up and has an address of the asked
 *             family wins (BUSY is up); when no cluster that is up has
 *             one -> the fallback's addresses of the family, else the first
 *             cluster that has the family even DOWN (never an empty answer
 *             while one exists); TTL; ECS scope 0;
 *   static    both families, TTL, the long form;
 *   names     named instances shared by several names, inline instances,
 *             other types beside a plugin, ANY, a CNAME to a plugin name,
 *             a wildcard answered by a plugin;
 *   check     exact `file:line:column: error: message` for bad plugin
 *             configurations (unknown plugin, unknown instance, unknown
 *             cluster, bad address, duplicate address, CNAME and a
 *             resolver, a resolver below a zone cut, bad settings);
 *   reload    SIGHUP with a changed plugin configuration changes the
 *             answers; a bad one keeps the old ones.
 *
 * Cluster states are forced with the admin file; the test waits (with a
 * deadline) until `status` shows them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bb.h"

#define STATE_DEADLINE_MS 15000

static const char *const cluster_names[] = {"primary", "backup", "third"};
#define NCL 3

#define CLUSTERS                                                                                  \
    "health: {interval: 100ms, admin_file: admin.txt, admin_interval: 20ms}\n"                    \
    "regions: {r1: {lat: 0, lon: 0}}\n"                                                           \
    "geo: {carriers: {c: {}}}\n"                                                                  \
    "clusters:\n"                                                                                 \
    "  primary: {region: r1, carrier: c, entry: [10.1.0.1, \"2001:db8:1::1\"],"                   \
    " servers: {s1: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"                         \
    "  backup: {region: r1, carrier: c, entry: [10.2.0.1, 10.2.0.2],"                             \
    " servers: {s1: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"                         \
    "  third: {region: r1, carrier: c, entry: [\"2001:db8:3::1\"],"                               \
    " servers: {s1: {capacity: 1Gbit, check: {kind: file, path: up}}}}\n"

#define ZONE_HEAD                                                                                 \
    "zones:\n"                                                                                    \
    "  - origin: example.test\n"                                                                  \
    "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"                                          \
    "    ns: [ns1]\n"                                                                             \
    "    records:\n"                                                                              \
    "      ns1: \"A 192.0.2.53\"\n"

/* 60 addresses: about 1 KB of answer, more than 512 bytes. */
#define BIG10(x) x ".1, " x ".2, " x ".3, " x ".4, " x ".5, " x ".6, " x ".7, " x ".8, " x ".9, " x ".10"
#define BIG BIG10("10.9.1") ", " BIG10("10.9.2") ", " BIG10("10.9.3") ", " BIG10("10.9.4") ", " \
            BIG10("10.9.5") ", " BIG10("10.9.6")

static const char config[] =
    "server:\n"
    "  listen: [127.0.0.1, \"::1\"]\n"
    "  port: 0\n"
    "  workers: 2\n"
    "  control: ctl.sock\n" CLUSTERS
    "resolvers:\n"
    "  weighted:\n"
    "    w1: {addresses: {192.0.2.1: 3, 192.0.2.2: 1, \"2001:db8::1\": 1, \"2001:db8::2\": 4}, ttl: 30s}\n"
    "    unused: {192.0.2.200: 1}\n"
    "  failover:\n"
    "    f1: {clusters: [primary, backup, third], ttl: 5s, fallback: [192.0.2.99, \"2001:db8::99\"]}\n"
    "    f2: [primary, backup]\n" ZONE_HEAD
    "      img: {weighted: w1}\n"
    "      img2: {weighted: w1}\n"
    "      inl: {weighted: {198.51.100.1: 1, 198.51.100.2: 1}}\n"
    "      v4w: {weighted: {198.51.100.7: 1}}\n"
    "      v6w: {weighted: {\"2001:db8::7\": 1}}\n"
    "      api: {failover: f1}\n"
    "      api2: {failover: f2}\n"
    "      api3: {failover: [backup, third]}\n"
    "      api4: {failover: {clusters: [primary, backup], fallback: 192.0.2.98}}\n"
    "      www: {static: [192.0.2.10, \"2001:db8::10\"]}\n"
    "      www2: {static: {addresses: 192.0.2.11, ttl: 60s}}\n"
    "      both: {static: [192.0.2.12]}\n"
    "      both.example.test.: [\"TXT \\\"hello\\\"\", \"MX 10 mail.example.org.\"]\n"
    "      alias: \"CNAME www\"\n"
    "      \"*.cdn\": {weighted: {192.0.2.50: 1}}\n"
    "      big: {static: [" BIG "]}\n";

static bb_t srv;

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
    bb_prepare(&srv, config);
    bb_write(&srv, "up", "UP\n");
    bb_write(&srv, "admin.txt", "");
    bb_launch(&srv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bb_stop(&srv);
    return 0;
}

/* ---- states through the admin file ---- */

/* Write the admin file and wait until every cluster shows the state it
 * forces: `want` lists the three states in cluster order. */
static void set_states(const char *admin, const char *const want[NCL])
{
    bb_write(&srv, "admin.txt", admin);
    static char st[65536];
    long long deadline = bb_now_ms() + STATE_DEADLINE_MS;
    for (;;) {
        bb_control(&srv, "status", st, sizeof(st));
        bool all = true;
        for (int i = 0; i < NCL && all; i++) {
            char key[80];
            snprintf(key, sizeof(key), "\ncluster %s state=%s ", cluster_names[i], want[i]);
            all = strstr(st, key) != NULL;
        }
        if (all)
            return;
        if (bb_now_ms() > deadline)
            fail_msg("states %s/%s/%s not reached within %d ms for admin file:\n%s\nstatus:\n%s",
                     want[0], want[1], want[2], STATE_DEADLINE_MS, admin, st);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- queries ---- */

typedef struct res {
    char rcode[16];
    char answer[1024];
    char owner[256]; /* of the first answer RR */
    char ecs[160];
    int ttl, ancount, nscount;
} res_t;

static void ask(const bb_t *b, const char *name, const char *type, const char *ecs, bool tcp,
                res_t *r)
{
    bb_q_t o = {.tcp = tcp, .ecs = ecs};
    ldns_pkt *p = bb_query(b, name, type, &o);
    if (p == NULL)
        fail_msg("%s %s: no answer", name, type);
    snprintf(r->rcode, sizeof(r->rcode), "%s", bb_rcode(p));
    bb_rdata(ldns_pkt_answer(p), r->answer, sizeof(r->answer));
    bb_ecs(p, r->ecs, sizeof(r->ecs));
    r->ancount = ldns_pkt_ancount(p);
    r->nscount = ldns_pkt_nscount(p);
    r->ttl = r->ancount ? (int)ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) : -1;
    r->owner[0] = '\0';
    if (r->ancount) {
        char *s = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_answer(p), 0)));
        snprintf(r->owner, sizeof(r->owner), "%s", s);
        free(s);
    }
    ldns_pkt_free(p);
}

typedef struct pcase {
    const char *name, *type;
    const char *answer; /* "" = NODATA */
    int ttl;            /* -1: don't check */
} pcase_t;

static void run_cases(const char *title, const pcase_t *c, size_t n)
{
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < n; i++) {
            res_t r;
            /* Every other query with ECS: these plugins do not depend on
             * the client, so the scope is 0. */
            const char *ecs = i % 2 ? "198.51.100.0/24" : NULL;
            ask(&srv, c[i].name, c[i].type, ecs, tcp, &r);
            char w[400];
            snprintf(w, sizeof(w), "[%s] %s %s (%s): rcode", title, c[i].name, c[i].type,
                     tcp ? "tcp" : "udp");
            BB_EXPECT_STR(w, r.rcode, "NOERROR");
            snprintf(w, sizeof(w), "[%s] %s %s (%s): answer", title, c[i].name, c[i].type,
                     tcp ? "tcp" : "udp");
            BB_EXPECT_STR(w, r.answer, c[i].answer);
            if (c[i].answer[0] == '\0') {
                snprintf(w, sizeof(w), "[%s] %s %s: NODATA carries the SOA", title, c[i].name,
                         c[i].type);
                BB_EXPECT_INT(w, r.nscount, 1);
            }
            if (c[i].ttl >= 0) {
                snprintf(w, sizeof(w), "[%s] %s %s (%s): TTL", title, c[i].name, c[i].type,
                         tcp ? "tcp" : "udp");
                BB_EXPECT_INT(w, r.ttl, c[i].ttl);
            }
            if (ecs) {
                snprintf(w, sizeof(w), "[%s] %s %s (%s): ECS", title, c[i].name, c[i].type,
                         tcp ? "tcp" : "udp");
                BB_EXPECT_STR(w, r.ecs, "198.51.100.0/24/0");
            }
        }
}

#define RUN(t) run_cases(#t, t, sizeof(t) / sizeof(t[0]))

/* ---- weighted ---- */

static void distribution(const char *name, const char *type, const char *a, const char *b,
                         double want_a, int n)
{
    int na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        res_t r;
        ask(&srv, name, type, NULL, i % 10 == 9, &r);
        char w[200];
        snprintf(w, sizeof(w), "%s %s: one address per answer", name, type);
        BB_EXPECT_INT(w, r.ancount, 1);
        if (strcmp(r.answer, a) == 0)
            na++;
        else if (strcmp(r.answer, b) == 0)
            nb++;
        else
            fail_msg("%s %s: answer %s is neither %s nor %s", name, type, r.answer, a, b);
    }
    double share = (double)na / n;
    /* Five standard deviations of the binomial share: a false alarm about
     * once in a million runs, while 3:1 and 1:1 stay far apart. */
    double tol = 5.0 * sqrt(want_a * (1.0 - want_a) / n);
    if (share < want_a - tol || share > want_a + tol)
        fail_msg("%s %s: share of %s over %d queries: expected %.2f +- %.3f, got %.3f (%d vs %d)",
                 name, type, a, n, want_a, tol, share, na, nb);
}

static void test_weighted(void **state)
{
    (void)state;
    /* 3:1 among the IPv4 addresses, 1:4 among the IPv6 ones. */
    distribution("img.example.test.", "A", "192.0.2.1", "192.0.2.2", 0.75, 1000);
    distribution("img.example.test.", "AAAA", "2001:db8::1", "2001:db8::2", 0.20, 1000);
    /* The same named instance behind another name. */
    distribution("img2.example.test.", "A", "192.0.2.1", "192.0.2.2", 0.75, 400);
    /* Inline, equal weights. */
    distribution("inl.example.test.", "A", "198.51.100.1", "198.51.100.2", 0.50, 400);
    static const pcase_t c[] = {
        {"v4w.example.test.", "A", "198.51.100.7", 300},
        {"v4w.example.test.", "AAAA", "", -1},
        {"v6w.example.test.", "AAAA", "2001:db8::7", 300},
        {"v6w.example.test.", "A", "", -1},
    };
    run_cases("weighted", c, sizeof(c) / sizeof(c[0]));
    res_t r;
    ask(&srv, "img.example.test.", "A", "198.51.100.0/24", false, &r);
    BB_EXPECT_INT("weighted TTL", r.ttl, 30);
    BB_EXPECT_STR("weighted: ECS scope 0", r.ecs, "198.51.100.0/24/0");
    /* ANY is answered as A (one IPv4 address, at random). */
    ask(&srv, "img.example.test.", "ANY", NULL, false, &r);
    if (strcmp(r.answer, "192.0.2.1") != 0 && strcmp(r.answer, "192.0.2.2") != 0)
        fail_msg("weighted ANY: expected one IPv4 address, got '%s'", r.answer);
}

/* ---- failover ---- */

/* `steerdns explain` of name/type against the running server: exit 0 and
 * the rule line. */
static void expect_explain(const char *name, const char *type, const char *line)
{
    static char out[65536];
    const char *args[] = {"steerdns", "explain", "-c", srv.config, "--client", "192.0.2.7",
                          name, type, NULL};
    BB_EXPECT_INT("explain: exit", bb_run(out, sizeof(out), args), 0);
    char what[200];
    snprintf(what, sizeof(what), "explain %s %s", name, type);
    bb_expect_contains(what, out, line);
}

static void test_failover(void **state)
{
    (void)state;
    static const char *const idle[] = {"IDLE", "IDLE", "IDLE"};
    set_states("", idle);
    static const pcase_t up[] = {
        {"api.example.test.", "A", "10.1.0.1", 5},
        {"api.example.test.", "AAAA", "2001:db8:1::1", 5},
        {"api2.example.test.", "A", "10.1.0.1", 30},
        {"api2.example.test.", "AAAA", "2001:db8:1::1", 30},
        /* The first cluster is up but has no IPv6: the first one up
         * that has (docs/plugins.md), not NODATA. */
        {"api3.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
        {"api3.example.test.", "AAAA", "2001:db8:3::1", 30},
        {"api4.example.test.", "AAAA", "2001:db8:1::1", 30},
        {"api.example.test.", "ANY", "10.1.0.1", 5},
    };
    RUN(up);
    expect_explain("api3.example.test", "AAAA",
                   "failover: chose third, the first cluster that is up and has IPv6 addresses");

    static const char *const busy[] = {"BUSY", "IDLE", "IDLE"};
    set_states("primary BUSY full\n", busy);
    static const pcase_t primary_busy[] = {
        /* BUSY is up: failover does not care about load. */
        {"api.example.test.", "A", "10.1.0.1", 5},
        {"api2.example.test.", "AAAA", "2001:db8:1::1", 30},
    };
    RUN(primary_busy);

    static const char *const pdown[] = {"DOWN", "IDLE", "IDLE"};
    set_states("primary DOWN\n", pdown);
    static const pcase_t primary_down[] = {
        {"api.example.test.", "A", "10.2.0.1, 10.2.0.2", 5},
        /* backup is up but has no IPv6: third, the next one that has */
        {"api.example.test.", "AAAA", "2001:db8:3::1", 5},
        /* no cluster that is up has IPv6, the fallback has none: the
         * first cluster that has, though DOWN */
        {"api4.example.test.", "AAAA", "2001:db8:1::1", 30},
        {"api2.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
        {"api3.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
    };
    RUN(primary_down);

    static const char *const pbdown[] = {"DOWN", "DOWN", "IDLE"};
    set_states("primary DOWN\nbackup DOWN\n", pbdown);
    static const pcase_t two_down[] = {
        {"api.example.test.", "AAAA", "2001:db8:3::1", 5},
        /* third is up but has no IPv4: the fallback's IPv4 address */
        {"api.example.test.", "A", "192.0.2.99", 5},
        /* every cluster of f2 DOWN, no fallback: the first cluster */
        {"api2.example.test.", "A", "10.1.0.1", 30},
        {"api2.example.test.", "AAAA", "2001:db8:1::1", 30},
        {"api3.example.test.", "AAAA", "2001:db8:3::1", 30},
        /* third is up but has no IPv4, no fallback: backup, though DOWN */
        {"api3.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
    };
    RUN(two_down);
    expect_explain("api3.example.test", "A",
                   "failover: no cluster that is up has IPv4 addresses: answering backup, the "
                   "first cluster with IPv4 addresses (DOWN)");
    expect_explain("api.example.test", "A",
                   "failover: no cluster that is up has IPv4 addresses: answering the fallback "
                   "addresses");

    static const char *const down[] = {"DOWN", "DOWN", "DOWN"};
    set_states("* DOWN\n", down);
    static const pcase_t all_down[] = {
        {"api.example.test.", "A", "192.0.2.99", 5},
        {"api.example.test.", "AAAA", "2001:db8::99", 5},
        {"api2.example.test.", "A", "10.1.0.1", 30},
        {"api2.example.test.", "AAAA", "2001:db8:1::1", 30},
        /* no fallback: the first cluster with an address of the family */
        {"api3.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
        {"api3.example.test.", "AAAA", "2001:db8:3::1", 30},
        /* the fallback has no IPv6: the first cluster that has */
        {"api4.example.test.", "A", "192.0.2.98", 30},
        {"api4.example.test.", "AAAA", "2001:db8:1::1", 30},
    };
    RUN(all_down);

    /* A cluster rule beats the `*` rule. */
    static const char *const only_third[] = {"DOWN", "DOWN", "IDLE"};
    set_states("* DOWN\nthird UP\n", only_third);
    static const pcase_t third_up[] = {
        {"api.example.test.", "AAAA", "2001:db8:3::1", 5},
        {"api3.example.test.", "AAAA", "2001:db8:3::1", 30},
        /* third is up but has no IPv4: backup, the first that has (DOWN) */
        {"api3.example.test.", "A", "10.2.0.1, 10.2.0.2", 30},
        {"api.example.test.", "A", "192.0.2.99", 5}, /* f1 has a fallback */
    };
    RUN(third_up);

    set_states("", idle);
    RUN(up);
}

/* ---- static, and names answered by plugins ---- */

static void test_static_and_names(void **state)
{
    (void)state;
    static const pcase_t c[] = {
        {"www.example.test.", "A", "192.0.2.10", 300},
        {"www.example.test.", "AAAA", "2001:db8::10", 300},
        {"www.example.test.", "ANY", "192.0.2.10", 300},
        {"www2.example.test.", "A", "192.0.2.11", 60},
        {"www2.example.test.", "AAAA", "", -1},
        /* Other types beside a plugin come from the name's records. */
        {"both.example.test.", "A", "192.0.2.12", 300},
        {"both.example.test.", "TXT", "\"hello\"", 3600},
        {"both.example.test.", "MX", "10 mail.example.org.", 3600},
        {"both.example.test.", "SRV", "", -1},
        /* A CNAME to a plugin name is not followed (the target's answer
         * depends on who asks). */
        {"alias.example.test.", "A", "www.example.test.", 3600},
        {"alias.example.test.", "AAAA", "www.example.test.", 3600},
        /* A wildcard answered by a plugin. */
        {"x.cdn.example.test.", "A", "192.0.2.50", 300},
        {"a.b.cdn.example.test.", "A", "192.0.2.50", 300},
        {"x.cdn.example.test.", "AAAA", "", -1},
    };
    RUN(c);
    res_t r;
    ask(&srv, "X.Cdn.example.test.", "A", NULL, false, &r);
    BB_EXPECT_STR("wildcard plugin answer: owner is the query name", r.owner, "X.Cdn.example.test.");
    ask(&srv, "alias.example.test.", "A", NULL, false, &r);
    BB_EXPECT_INT("CNAME to a plugin name: answer count", r.ancount, 1);
    ask(&srv, "nope.example.test.", "A", NULL, false, &r);
    BB_EXPECT_STR("NXDOMAIN beside plugins", r.rcode, "NXDOMAIN");

    /* A plugin answer too large for UDP: TC without EDNS or with a small
     * buffer, whole over TCP. */
    struct {
        bb_q_t o;
        int tc, an;
    } big[] = {
        {{.no_edns = true}, 1, 0},
        {{.udp_size = 512, .ecs = "2.2.3.0/24"}, 1, 0},
        {{.udp_size = 1232}, 0, 60},
        {{.tcp = true, .no_edns = true}, 0, 60},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        ldns_pkt *p = bb_query(&srv, "big.example.test.", "A", &big[i].o);
        assert_non_null(p);
        char w[100];
        snprintf(w, sizeof(w), "large plugin answer, case %zu: TC", i);
        BB_EXPECT_INT(w, ldns_pkt_tc(p), big[i].tc);
        snprintf(w, sizeof(w), "large plugin answer, case %zu: ANCOUNT", i);
        BB_EXPECT_INT(w, ldns_pkt_ancount(p), big[i].an);
        ldns_pkt_free(p);
    }
}

/* ---- steerdns check ---- */

/* Check `text` (written as bad.yaml) and compare every diagnostic line
 * with `want` (lines "LINE:COLUMN: error: message", in any order), and
 * the error count. */
static void check_diags(const char *title, const char *text, const char *const *want, size_t n)
{
    bb_prepare(&extra, "server: {port: 0}\n");
    bb_write(&extra, "up", "UP\n");
    bb_write(&extra, "bad.yaml", text);
    char path[400], out[32768];
    snprintf(path, sizeof(path), "%s/bad.yaml", extra.dir);
    const char *args[] = {"steerdns", "check", "-c", path, NULL};
    char w[200];
    snprintf(w, sizeof(w), "%s: exit status of check", title);
    BB_EXPECT_INT(w, bb_run(out, sizeof(out), args), 1);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        char line[1200];
        snprintf(line, sizeof(line), "%s:%s\n", path, want[i]);
        if (strstr(out, line) == NULL)
            fail_msg("%s: expected the line\n  %s:%s\nin\n%s", title, path, want[i], out);
        found++;
    }
    /* Nothing else: as many error lines as expected. */
    size_t lines = 0;
    for (const char *p = out; (p = strstr(p, ": error: ")) != NULL; p++)
        lines++;
    snprintf(w, sizeof(w), "%s: number of error lines", title);
    BB_EXPECT_INT(w, lines, found);
    char tail[64];
    snprintf(tail, sizeof(tail), ": %zu error(s)\n", n);
    if (strstr(out, tail) == NULL)
        fail_msg("%s: expected '%s' in\n%s", title, tail, out);
    bb_stop(&extra);
}

static void test_check_plugin_errors(void **state)
{
    (void)state;
    static const char text[] =
        "server: {listen: [127.0.0.1], port: 0}\n"                           /* 1 */
        CLUSTERS                                                             /* 2-8 */
        "resolvers:\n"                                                       /* 9 */
        "  steer:\n"                                                         /* 10 */
        "    lit: {mode: literal, clusters: [primary, nope]}\n"              /* 11 */
        "    odd: {mode: sideways}\n"                                        /* 12 */
        "  failover:\n"                                                      /* 13 */
        "    f1: [primary, gone, primary]\n"                                 /* 14 */
        "    f2: {clusters: [backup], ttl: soon}\n"                          /* 15 */
        "  weighted:\n"                                                      /* 16 */
        "    w1: {192.0.2.300: 1, 192.0.2.2: 0}\n"                           /* 17 */
        "    w2: {\"2001:db8::1\": 1, \"2001:DB8::1\": 2}\n"                 /* 18 */
        "  nosuch:\n"                                                        /* 19 */
        "    x: {}\n"                                                        /* 20 */
        "zones:\n"                                                           /* 21 */
        "  - origin: example.test\n"                                         /* 22 */
        "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"                 /* 23 */
        "    ns: [ns1]\n"                                                    /* 24 */
        "    records:\n"                                                     /* 25 */
        "      ns1: \"A 192.0.2.53\"\n"                                      /* 26 */
        "      a: {nosuch: foo}\n"                                           /* 27 */
        "      b: {steer: missing}\n"                                        /* 28 */
        "      c: {static: [192.0.2.1, not-an-address, 192.0.2.1]}\n"        /* 29 */
        "      d: {static: [192.0.2.1], weighted: w1}\n"                     /* 30 */
        "      e: {failover: {clusters: [primary], colour: red}}\n"          /* 31 */
        "      f: {weighted: {}}\n"                                          /* 32 */
        "      g: {failover: [[primary]]}\n"                                 /* 33 */
        "      h: {static: {addresses: [], ttl: 5s}}\n"                      /* 34 */
        "      i: {failover: missing}\n"                                     /* 35 */
        "      j: {static: {192.0.2.1: 1}}\n"                                /* 36 */
        "      k: {steer: {fallback: [192.0.2.7, \"::1\", 192.0.2.7]}}\n";   /* 37 */
    static const char *const want[] = {
        "11:46: error: resolvers.steer.lit.clusters[1]: unknown cluster 'nope'",
        "12:17: error: resolvers.steer.odd.mode: unknown value 'sideways' (expected one of: literal, damped)",
        "14:19: error: resolvers.failover.f1[1]: unknown cluster 'gone'",
        "14:25: error: resolvers.failover.f1[2]: 'primary' is listed twice",
        "15:35: error: resolvers.failover.f2.ttl: invalid value 'soon': expected a duration such as 500ms, 1s, 5m",
        "17:10: error: resolvers.weighted.w1: '192.0.2.300' is not an IPv4 or IPv6 address",
        "17:37: error: resolvers.weighted.w1[\"192.0.2.2\"]: value '0' out of range [1, 1000000]",
        "18:28: error: resolvers.weighted.w2: '2001:DB8::1' is the same address as '2001:db8::1'",
        "19:3: error: resolvers: unknown plugin 'nosuch' (known: steer, weighted, failover, static)",
        "27:11: error: 'a.example.test.': unknown plugin 'nosuch' (known: steer, weighted, failover, static)",
        "28:18: error: 'b.example.test.': no resolvers.steer.missing is defined (defined: lit, odd)",
        "29:31: error: c.example.test. static: 'not-an-address' is not an IPv4 or IPv6 address",
        "29:47: error: c.example.test. static: address '192.0.2.1' is listed twice",
        "30:10: error: 'd.example.test.': a resolver is one plugin name and its settings, such as {steer: downloads} (plugins: steer, weighted, failover, static)",
        "31:43: error: e.example.test. failover: unknown key 'colour' (known: clusters, ttl, fallback)",
        "32:21: error: f.example.test. weighted: at least one address is needed",
        "33:22: error: g.example.test. failover[0]: expected a cluster name, got a sequence",
        "34:31: error: h.example.test. static.addresses: at least one address is needed",
        "35:21: error: 'i.example.test.': no resolvers.failover.missing is defined (defined: f1, f2)",
        "36:20: error: j.example.test. static: unknown key '192.0.2.1' (known: addresses, ttl)",
        "36:19: error: j.example.test. static.addresses: required setting missing",
        "37:48: error: k.example.test. steer.fallback: address '192.0.2.7' is listed twice",
    };
    check_diags("plugin errors", text, want, sizeof(want) / sizeof(want[0]));
}

/* Errors of the zone itself are found before plugins are built. */
static void test_check_zone_errors(void **state)
{
    (void)state;
    static const char text[] =
        "server: {listen: [127.0.0.1], port: 0}\n"                  /* 1 */
        "resolvers: {weighted: {w1: {192.0.2.1: 1}}}\n"             /* 2 */
        ZONE_HEAD                                                   /* 3-8 */
        "      d: {weighted: w1}\n"                                 /* 9 */
        "      d.example.test.: \"CNAME www\"\n"                    /* 10 */
        "      e: {weighted: w1}\n"                                 /* 11 */
        "      e.example.test.: [\"A 192.0.2.2\"]\n"                /* 12 */
        "      sub: \"NS ns.other.net.\"\n"                         /* 13 */
        "      app.sub: {weighted: w1}\n"                           /* 14 */
        "      sub2: \"NS ns.other.net.\"\n"                        /* 15 */
        "      sub2.example.test.: {weighted: w1}\n";               /* 16 */
    static const char *const want[] = {
        "10:24: error: 'd.example.test.' is answered by a resolver; it cannot also have CNAME records",
        "12:25: error: 'e.example.test.' is answered by a resolver; it cannot also have A records",
        "14:16: error: 'app.sub.example.test.' is at or below a zone cut: a resolver cannot answer there",
        "16:27: error: 'sub2.example.test.' is at or below a zone cut: a resolver cannot answer there",
    };
    check_diags("zone errors", text, want, sizeof(want) / sizeof(want[0]));
}

/* Plugins that need clusters, without any. */
static void test_check_no_clusters(void **state)
{
    (void)state;
    static const char text[] =
        "server: {listen: [127.0.0.1], port: 0}\n" ZONE_HEAD       /* 1-7 */
        "      a: {failover: [x]}\n"                                /* 8 */
        "      b: {steer: {mode: literal}}\n";                      /* 9 */
    static const char *const want[] = {
        "8:21: error: a.example.test. failover: failover needs clusters, and no clusters are configured",
        "9:18: error: b.example.test. steer: steering needs clusters, and no clusters are configured",
    };
    check_diags("no clusters", text, want, sizeof(want) / sizeof(want[0]));
}

/* ---- reload ---- */

static const char *reload_config(const char *weights, const char *order, const char *static_ttl)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "server: {listen: [127.0.0.1], port: 0, workers: 2}\n" CLUSTERS
             "resolvers:\n"
             "  weighted: {w: {%s}}\n"
             "  failover: {f: [%s]}\n" ZONE_HEAD
             "      img: {weighted: w}\n"
             "      api: {failover: f}\n"
             "      www: {static: {addresses: [192.0.2.10], ttl: %s}}\n",
             weights, order, static_ttl);
    return buf;
}

static void expect_answer(const bb_t *b, const char *name, const char *want, int ttl,
                          const char *when)
{
    /* Several queries: weighted must give only this address. */
    for (int i = 0; i < 20; i++) {
        res_t r;
        ask(b, name, "A", NULL, i % 2, &r);
        char w[300];
        snprintf(w, sizeof(w), "%s: %s A", when, name);
        BB_EXPECT_STR(w, r.answer, want);
        if (ttl >= 0) {
            snprintf(w, sizeof(w), "%s: %s TTL", when, name);
            BB_EXPECT_INT(w, r.ttl, ttl);
        }
    }
}

static void test_reload(void **state)
{
    (void)state;
    bb_prepare(&extra, reload_config("192.0.2.1: 1", "primary, backup", "60s"));
    bb_write(&extra, "up", "UP\n");
    bb_launch(&extra);
    expect_answer(&extra, "img.example.test.", "192.0.2.1", 300, "before reload");
    expect_answer(&extra, "api.example.test.", "10.1.0.1", 30, "before reload");
    expect_answer(&extra, "www.example.test.", "192.0.2.10", 60, "before reload");

    assert_true(bb_reload(&extra, reload_config("192.0.2.2: 1", "backup, primary", "10s"), true));
    expect_answer(&extra, "img.example.test.", "192.0.2.2", 300, "after a good reload");
    expect_answer(&extra, "api.example.test.", "10.2.0.1, 10.2.0.2", 30, "after a good reload");
    expect_answer(&extra, "www.example.test.", "192.0.2.10", 10, "after a good reload");

    /* Bad plugin configurations are refused; the old answers stay. */
    assert_true(bb_reload(&extra, reload_config("192.0.2.3: 1", "backup, nope", "10s"), false));
    assert_true(bb_log_count(&extra, "unknown cluster 'nope'") >= 1);
    expect_answer(&extra, "img.example.test.", "192.0.2.2", 300, "after a refused reload");
    expect_answer(&extra, "api.example.test.", "10.2.0.1, 10.2.0.2", 30, "after a refused reload");
    assert_true(bb_reload(&extra, reload_config("192.0.2.3: 1, 192.0.2.03: 2", "backup", "10s"), false));
    expect_answer(&extra, "img.example.test.", "192.0.2.2", 300, "after a second refused reload");

    /* The next good one applies. */
    assert_true(bb_reload(&extra, reload_config("192.0.2.4: 7", "primary", "10s"), true));
    expect_answer(&extra, "img.example.test.", "192.0.2.4", 300, "after the next good reload");
    expect_answer(&extra, "api.example.test.", "10.1.0.1", 30, "after the next good reload");
    bb_stop(&extra);
}

/* Regression (resolver/snap.c): `resolvers.static.NAME` was accepted by
 * check, but `{static: NAME}` is read as an inline address, so a named
 * static instance can never be used. */
static void test_named_static(void **state)
{
    (void)state;
    bb_prepare(&extra, "server: {listen: [127.0.0.1], port: 0, workers: 1}\n"
                   "resolvers: {static: {st1: [192.0.2.10]}}\n" ZONE_HEAD
                   "      a: {static: st1}\n"
                   "      b: {static: 192.0.2.11}\n");
    char out[8192];
    const char *args[] = {"steerdns", "check", "-c", extra.config, NULL};
    int rc = bb_run(out, sizeof(out), args);
    if (rc != 0)
        fail_msg("a named static instance: check exit %d, expected 0:\n%s", rc, out);
    bb_launch(&extra);
    expect_answer(&extra, "a.example.test.", "192.0.2.10", 300, "named static");
    expect_answer(&extra, "b.example.test.", "192.0.2.11", 300, "inline static");
    bb_stop(&extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_static_and_names),
        cmocka_unit_test_teardown(test_check_plugin_errors, stop_extra),
        cmocka_unit_test_teardown(test_check_zone_errors, stop_extra),
        cmocka_unit_test_teardown(test_check_no_clusters, stop_extra),
        cmocka_unit_test_teardown(test_reload, stop_extra),
        cmocka_unit_test_teardown(test_named_static, stop_extra),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
