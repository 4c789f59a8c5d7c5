/*
 * test_steer_damped.c - black-box test of the damped steer controller over
 * the wire: when a home cluster crosses its target, only part of its
 * clients move at the next sample; the same subnets move on every repeat;
 * and once the home is idle again they come back in steps.
 *
 * And when the home goes DOWN, every client leaves at once and comes back in
 * steps once it is up again.  Also `default:`, the home of unknown clients.
 *
 * The test plays a small closed loop, like ../shared/loop does at scale:
 * N client /24 subnets of one region and carrier, each with the same demand,
 * cache their answers for the answer's TTL, and the test turns the answers
 * into the transmit counters of two fixture Prometheus endpoints (httpfix),
 * which the real poller reads every 100 ms.  Every wait is a condition with
 * a deadline, never a fixed sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../fixtures/httpfix.h"
#include "bb.h"

#define NSUB        64          /* client subnets 198.18.0.0/24 .. 198.18.63.0/24 */
#define HOME_IP     "192.0.2.1" /* home: 100 Mbit/s */
#define AWAY_IP     "192.0.2.2" /* the neighbour: 1 Gbit/s, never near its target */
#define AWAY_IP6    "2001:db8::2" /* the only IPv6 entry: the home has none */
#define HOME_BPS    100e6
#define DEADLINE_MS 15000

typedef struct loop {
    bb_t b;
    httpfix_t *fx;
    double demand;          /* total demand as a fraction of the home's capacity */
    char cfg[4096];         /* the configuration served */
    bool away[NSUB];        /* each subnet's cached answer: at the neighbour */
    long long expiry[NSUB]; /* when the cached answer expires (ms) */
} loop_t;

static void pause_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Ask the server where subnet i goes now: 1 = the neighbour, 0 = home;
 * the TTL into *ttl. */
static int ask(const loop_t *l, int i, uint32_t *ttl)
{
    char ecs[32], got[128];
    snprintf(ecs, sizeof(ecs), "198.18.%d.0/24", i);
    bb_q_t o = {.ecs = ecs};
    ldns_pkt *p = bb_query(&l->b, "dl.app.test.", "A", &o);
    if (p == NULL) fail_msg("subnet %s: no answer", ecs);
    BB_EXPECT_RCODE(p, "NOERROR");
    bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
    if (ttl && ldns_rr_list_rr_count(ldns_pkt_answer(p)) > 0)
        *ttl = ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0));
    ldns_pkt_free(p);
    if (strcmp(got, HOME_IP) == 0) return 0;
    if (strcmp(got, AWAY_IP) == 0) return 1;
    fail_msg("subnet %s: expected %s or %s, got '%s'", ecs, HOME_IP, AWAY_IP, got);
    return -1;
}

/* One round of the loop: subnets whose cached answer expired ask again,
 * then the fixtures' counters grow at the demand the answers put on each
 * cluster.  Returns how many subnets the server sends away right now (a
 * fresh answer for every subnet, cached or not) and fills now_away. */
static int round_trip(loop_t *l, bool *now_away)
{
    long long t = bb_now_ms();
    double per = l->demand * HOME_BPS / 8 / NSUB; /* bytes/s of one subnet */
    double home = 0, away = 0;
    int moved = 0;
    for (int i = 0; i < NSUB; i++) {
        uint32_t ttl = 1;
        int a = ask(l, i, &ttl);
        if (now_away) now_away[i] = a;
        moved += a;
        if (t >= l->expiry[i]) {
            l->away[i] = a;
            l->expiry[i] = t + (long long)ttl * 1000;
        }
        if (l->away[i])
            away += per;
        else
            home += per;
    }
    httpfix_set_rate(l->fx, "/home", home);
    httpfix_set_rate(l->fx, "/away", away);
    return moved;
}

/* Poll the server's status until both clusters are measured (IDLE). */
static void wait_measured(const loop_t *l)
{
    char out[8192];
    const char *args[] = {"steerdns", "status", "-c", l->b.config, NULL};
    long long deadline = bb_now_ms() + DEADLINE_MS;
    while (bb_now_ms() < deadline) {
        bb_run(out, sizeof(out), args);
        if (strstr(out, "cluster home state=IDLE") && strstr(out, "cluster away state=IDLE"))
            return;
        pause_ms(50);
    }
    fail_msg("clusters not measured (IDLE) within %d ms; last status:\n%s", DEADLINE_MS, out);
}

/* Run rounds until the set of subnets sent away has been the same, and not
 * empty, for `stable_ms`; return its size and copy it into set. */
static int settle_moved(loop_t *l, bool *set, int stable_ms)
{
    bool cur[NSUB], last[NSUB] = {0};
    long long since = bb_now_ms(), deadline = bb_now_ms() + DEADLINE_MS;
    int n = -1;
    while (bb_now_ms() < deadline) {
        int m = round_trip(l, cur);
        if (m == 0 || memcmp(cur, last, sizeof(cur)) != 0) {
            memcpy(last, cur, sizeof(cur));
            since = bb_now_ms();
        } else if (bb_now_ms() - since >= stable_ms) {
            memcpy(set, cur, sizeof(cur));
            return m;
        }
        n = m;
        pause_ms(20);
    }
    fail_msg("the subnets sent away did not settle within %d ms (last count %d)", DEADLINE_MS, n);
    return -1;
}

/* Lower the demand and run rounds until every subnet is home again;
 * returns the distinct counts of subnets away seen on the way (in order,
 * first the count before any came back). */
static int come_back(loop_t *l, int start, int *counts, int max)
{
    int nc = 0;
    counts[nc++] = start;
    long long deadline = bb_now_ms() + DEADLINE_MS;
    bool cur[NSUB];
    while (bb_now_ms() < deadline) {
        int m = round_trip(l, cur);
        if (m > counts[nc - 1])
            fail_msg("while coming back, subnets away went up from %d to %d", counts[nc - 1], m);
        if (m < counts[nc - 1] && nc < max) counts[nc++] = m;
        if (m == 0) return nc;
        pause_ms(5);
    }
    fail_msg("the subnets did not all come back within %d ms (still away: %d)", DEADLINE_MS,
             counts[nc - 1]);
    return -1;
}

/* Start the fixtures and the server; wait until both clusters are
 * measured. */
static void loop_start(loop_t *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(httpfix_start(NULL, 0, &l->fx), 0);
    char body[4096], uh[256], ua[256];
    httpfix_node_exporter_template(body, sizeof(body), 0);
    httpfix_set_body(l->fx, "/home", body);
    httpfix_set_body(l->fx, "/away", body);
    httpfix_url(l->fx, "/home", uh, sizeof(uh));
    httpfix_url(l->fx, "/away", ua, sizeof(ua));
    char *cfg = l->cfg;
    snprintf(
        cfg, sizeof(l->cfg),
        "server: {listen: [127.0.0.1], port: 0, workers: 1, control: ctl.sock}\n"
        "health: {interval: 100ms, threshold: 90%%}\n"
        "regions:\n"
        "  r1: {lat: 39.9, lon: 116.4, country: CN}\n"
        "  r2: {lat: 31.2, lon: 121.5, country: CN}\n"
        "geo:\n"
        "  carriers: {c1: {}}\n"
        "  nets: {\"198.18.0.0/18\": {region: r1, carrier: c1}}\n"
        "clusters:\n"
        "  home: {region: r1, carrier: c1, entry: [" HOME_IP "],\n"
        "         servers: {h1: {capacity: 100Mbit, check: {kind: prometheus, url: \"%s\"}}}}\n"
        "  away: {region: r2, carrier: c1, entry: [" AWAY_IP ", \"" AWAY_IP6 "\"],\n"
        "         servers: {a1: {capacity: 1Gbit, check: {kind: prometheus, url: \"%s\"}}}}\n"
        "resolvers:\n"
        "  steer:\n"
        "    dl: {mode: damped, ttl: 1s, busy_ttl: 1s, target: 80%%, increase: 3%%,\n"
        "         return_margin: 10%%, default: away}\n"
        "    dl2: {mode: damped, ttl: 30s, busy_ttl: 1s, target: 80%%}\n"
        "zones:\n"
        "  - origin: app.test\n"
        "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"
        "    ns: [ns1]\n"
        "    records:\n"
        "      ns1: \"A 192.0.2.53\"\n"
        "      dl: {steer: dl}\n"
        "      dl2: {steer: dl2}\n",
        uh, ua);
    bb_start(&l->b, cfg);
    wait_measured(l);
}

static void loop_stop(loop_t *l)
{
    bb_stop(&l->b);
    httpfix_stop(l->fx);
}

static void test_damped_moves_part_same_subnets_and_returns_in_steps(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);

    /* Below the target every subnet is home. */
    l.demand = 0.5;
    for (int k = 0; k < 3; k++)
        BB_EXPECT_INT("subnets away at 50% demand", round_trip(&l, NULL), 0);

    /* 1. The home crosses its target (95% > 80%): part of its subnets move,
     * not all, and the set settles. */
    l.demand = 0.95;
    bool first[NSUB];
    int n1 = settle_moved(&l, first, 1500);
    if (n1 <= 0 || n1 >= NSUB / 2)
        fail_msg("at 95%% demand: expected some but fewer than %d of %d subnets away, got %d",
                 NSUB / 2, NSUB, n1);
    print_message("at 95%% demand %d of %d subnets moved\n", n1, NSUB);

    for (int rep = 0; rep < 2; rep++) {
        /* 2. Idle again (40%): they come back, in more than one step, and
         * none moves away meanwhile. */
        l.demand = 0.4;
        int counts[NSUB + 1];
        int nc = come_back(&l, n1, counts, NSUB + 1);
        if (n1 >= 2 && nc < 3)
            fail_msg("expected the %d subnets to come back in steps, saw counts %d -> %d only", n1,
                     counts[0], counts[nc - 1]);
        char seq[256];
        size_t sl = 0;
        for (int k = 0; k < nc && sl + 8 < sizeof(seq); k++)
            sl += (size_t)snprintf(seq + sl, sizeof(seq) - sl, "%s%d", k ? " -> " : "", counts[k]);
        print_message("at 40%% demand they came back in steps: %s\n", seq);

        /* 3. Over the target again: the same subnets move (the stable
         * hash: one set contains the other, the smaller is not empty). */
        l.demand = 0.95;
        bool again[NSUB];
        int n2 = settle_moved(&l, again, 1500);
        int both = 0, only1 = 0, only2 = 0;
        for (int i = 0; i < NSUB; i++) {
            both += first[i] && again[i];
            only1 += first[i] && !again[i];
            only2 += !first[i] && again[i];
        }
        if (both == 0 || (only1 > 0 && only2 > 0))
            fail_msg(
                "repeat %d: expected the same subnets to move: first %d away, now %d, in both %d, "
                "only first %d, only now %d",
                rep + 1, n1, n2, both, only1, only2);
        print_message("at 95%% demand again %d moved, %d of them moved the first time\n", n2, both);
        n1 = n2;
        memcpy(first, again, sizeof(first));
    }
    loop_stop(&l);
}

/* A reload in the middle of shedding keeps the controller's state: the
 * subnets that were moved away are still away right after it. */
static void test_damped_reload_keeps_moves(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);
    l.demand = 0.95;
    bool before[NSUB];
    int n1 = settle_moved(&l, before, 1500);
    assert_true(n1 > 0);
    assert_true(bb_reload(&l.b, l.cfg, true));
    bool after[NSUB];
    int n2 = round_trip(&l, after);
    int kept = 0;
    for (int i = 0; i < NSUB; i++)
        kept += before[i] && after[i];
    if (kept != n1)
        fail_msg("after a reload %d of the %d subnets moved away are still away (%d away now): "
                 "the controller was reset",
                 kept, n1, n2);
    loop_stop(&l);
}

/* The home goes DOWN: every subnet leaves at once (never a DOWN answer);
 * when it is up again they come back in steps. */
static void test_damped_down_home_empties_and_refills_in_steps(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);
    l.demand = 0.5;
    BB_EXPECT_INT("subnets away at 50% demand", round_trip(&l, NULL), 0);
    httpfix_set_status(l.fx, "/home", 503);
    long long deadline = bb_now_ms() + DEADLINE_MS;
    int m = 0;
    while ((m = round_trip(&l, NULL)) < NSUB && bb_now_ms() < deadline)
        pause_ms(20);
    BB_EXPECT_INT("subnets away while the home is DOWN", m, NSUB);
    httpfix_set_status(l.fx, "/home", 200);
    int counts[NSUB + 1];
    int nc = come_back(&l, NSUB, counts, NSUB + 1);
    if (nc < 4)
        fail_msg(
            "expected the subnets to come back in steps after the home is up again, saw %d counts",
            nc);
    print_message("after DOWN, %d subnets came back in %d steps\n", NSUB, nc - 1);
    loop_stop(&l);
}

/* Every "expected=X%" of an explain of dl for subnet 0 (the controller's
 * expected utilisation of each candidate): fails when one is not a sane
 * utilisation (below 0 or above 1000%: an unsigned wrap of a negative
 * value shows as about 429496%).  Returns the largest. */
static double explain_expected(const loop_t *l, char *out, size_t size)
{
    const char *args[] = {"steerdns", "explain", "-c", l->b.config, "--client", "198.18.0.0/24",
                          "dl.app.test", NULL};
    BB_EXPECT_INT("explain: exit", bb_run(out, size, args), 0);
    double most = -1;
    int n = 0;
    for (const char *p = out; (p = strstr(p, " expected=")) != NULL; p++) {
        double v = strtod(p + 10, NULL);
        if (!(v >= 0.0 && v <= 1000.0))
            fail_msg("explain shows an expected utilisation of %.1f%%:\n%s", v, out);
        if (v > most) most = v;
        n++;
    }
    if (n != 2) fail_msg("explain: expected 2 candidates with expected=, got %d:\n%s", n, out);
    return most;
}

/* Clients coming back home after the home shed them: the buckets that
 * come back are estimated at the home's load per bucket, which can be more
 * than what the neighbour really carries for them (a bucket holds 0, 1 or
 * more subnets).  The neighbour's expected load must stay a utilisation
 * (never negative, never wrapped), and every subnet comes home. */
static void test_damped_return_home_expected_sane(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);
    static char out[65536];
    for (int rep = 0; rep < 2; rep++) {
        l.demand = 0.95;
        bool set[NSUB];
        int n = settle_moved(&l, set, 1000);
        explain_expected(&l, out, sizeof(out));
        /* Much lower demand: everything comes back, in steps; explain on
         * the way. */
        l.demand = 0.3;
        long long deadline = bb_now_ms() + DEADLINE_MS;
        int m = n;
        while (m > 0 && bb_now_ms() < deadline) {
            int was = m;
            m = round_trip(&l, NULL);
            /* At 30% nothing has a reason to move away again. */
            if (m > was)
                fail_msg("while coming back at 30%% demand, subnets away went up from %d to %d",
                         was, m);
            explain_expected(&l, out, sizeof(out));
        }
        if (m > 0) fail_msg("%d subnets still away %d ms after the demand fell", m, DEADLINE_MS);
        /* Once back, a few more steps: still sane. */
        for (int k = 0; k < 5; k++) {
            round_trip(&l, NULL);
            explain_expected(&l, out, sizeof(out));
            pause_ms(50);
        }
    }
    loop_stop(&l);
}

/* One answer of name/type for subnet i: its first record's data and TTL. */
static void ask_one(const loop_t *l, const char *name, const char *type, int i, char *got,
                    size_t size, uint32_t *ttl)
{
    char ecs[32];
    snprintf(ecs, sizeof(ecs), "198.18.%d.0/24", i);
    bb_q_t o = {.ecs = ecs};
    ldns_pkt *p = bb_query(&l->b, name, type, &o);
    if (p == NULL) fail_msg("%s %s subnet %s: no answer", name, type, ecs);
    BB_EXPECT_RCODE(p, "NOERROR");
    bb_rdata(ldns_pkt_answer(p), got, size);
    *ttl = ldns_rr_list_rr_count(ldns_pkt_answer(p)) > 0
               ? ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0))
               : 0;
    ldns_pkt_free(p);
}

/* The home has no IPv6 entry: an AAAA query is answered by the neighbour
 * (literal rules), but while the client's home moves clients away the
 * client may move or come back, so its answers carry busy_ttl
 * (docs/steering.md, TTL), for AAAA as for A. */
static void test_damped_aaaa_ttl_while_home_sheds(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);
    char got[128], what[96];
    uint32_t ttl = 0;
    /* Idle, nothing moves: the long TTL, once the controller has stepped
     * with both clusters measured (until then the neighbour is "not
     * measured": busy_ttl). */
    long long until = bb_now_ms() + DEADLINE_MS;
    do {
        ask_one(&l, "dl2.app.test.", "AAAA", 0, got, sizeof(got), &ttl);
        BB_EXPECT_STR("dl2 AAAA while idle", got, AWAY_IP6);
        if (ttl != 30) pause_ms(20);
    } while (ttl != 30 && bb_now_ms() < until);
    if (ttl != 30) {
        static char out[65536];
        const char *args[] = {"steerdns", "explain", "-c", l.b.config, "--client",
                              "198.18.0.0/24", "dl2.app.test", "AAAA", NULL};
        bb_run(out, sizeof(out), args);
        fprintf(stderr, "%s", out);
        fail_msg("dl2 AAAA TTL while idle: expected 30, got %u (explain above)", ttl);
    }
    /* The home at 150% whatever the answers (this test plays no loop), so
     * that its controller keeps moving clients away; wait until dl2 has
     * moved a subnet. */
    httpfix_set_rate(l.fx, "/home", 1.5 * HOME_BPS / 8);
    long long deadline = bb_now_ms() + DEADLINE_MS;
    int moved = -1;
    while (moved < 0 && bb_now_ms() < deadline) {
        for (int i = 0; i < NSUB && moved < 0; i++) {
            ask_one(&l, "dl2.app.test.", "A", i, got, sizeof(got), &ttl);
            if (strcmp(got, AWAY_IP) == 0) moved = i;
        }
        pause_ms(20);
    }
    if (moved < 0) fail_msg("dl2 moved no subnet away within %d ms at 150%% load", DEADLINE_MS);
    for (int i = 0; i < NSUB; i++) {
        ask_one(&l, "dl2.app.test.", "AAAA", i, got, sizeof(got), &ttl);
        snprintf(what, sizeof(what), "dl2 AAAA subnet %d while the home sheds: answer", i);
        BB_EXPECT_STR(what, got, AWAY_IP6);
        snprintf(what, sizeof(what), "dl2 AAAA subnet %d while the home sheds: TTL (busy_ttl)", i);
        BB_EXPECT_INT(what, ttl, 1);
    }
    loop_stop(&l);
}

/* `default:` is the home of clients nothing is known about (DNSPod's
 * default line); a known client keeps its own home.  A bad `default:` is an
 * error at its position. */
static void test_default_line(void **state)
{
    (void)state;
    loop_t l;
    loop_start(&l);
    static const struct {
        const char *ecs, *want;
    } cases[] = {
        {"100.64.1.0/24", AWAY_IP}, /* in no nets entry: region and carrier unknown */
        {"192.0.2.0/24", AWAY_IP},
        {"198.18.1.0/24", HOME_IP}, /* r1 / c1 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[128], what[64];
        bb_q_t o = {.ecs = cases[i].ecs};
        ldns_pkt *p = bb_query(&l.b, "dl.app.test.", "A", &o);
        if (p == NULL) fail_msg("%s: no answer", cases[i].ecs);
        bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
        ldns_pkt_free(p);
        snprintf(what, sizeof(what), "answer for %s", cases[i].ecs);
        BB_EXPECT_STR(what, got, cases[i].want);
    }
    loop_stop(&l);

    bb_t b;
    bb_prepare(
        &b,
        "server: {listen: [127.0.0.1], port: 0}\n"                  /* 1 */
        "regions: {r1: {lat: 39.9, lon: 116.4}}\n"                  /* 2 */
        "geo: {carriers: {c1: {}}}\n"                               /* 3 */
        "clusters:\n"                                               /* 4 */
        "  home: {region: r1, carrier: c1, entry: [" HOME_IP "],\n" /* 5 */
        "         servers: {h1: {capacity: 1Gbit, check: {kind: tcp, address: \"127.0.0.1:9\"}}}}\n"
        "resolvers:\n"                                       /* 7 */
        "  steer:\n"                                         /* 8 */
        "    dl: {default: [home, nope]}\n"                  /* 9 */
        "    d2: {clusters: [home], default: {home: 1}}\n"); /* 10 */
    char out[4096];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("check with a bad default: exit", bb_run(out, sizeof(out), args), 1);
    bb_expect_contains("unknown default cluster", out,
                       ":9:26: error: resolvers.steer.dl.default[1]: unknown cluster 'nope'\n");
    bb_expect_contains("default of the wrong kind", out,
                       ":10:37: error: resolvers.steer.d2.default: expected a cluster name or a "
                       "list of cluster names\n");
    bb_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damped_moves_part_same_subnets_and_returns_in_steps),
        cmocka_unit_test(test_damped_down_home_empties_and_refills_in_steps),
        cmocka_unit_test(test_damped_reload_keeps_moves),
        cmocka_unit_test(test_default_line),
        cmocka_unit_test(test_damped_aaaa_ttl_while_home_sheds),
        cmocka_unit_test(test_damped_return_home_expected_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
