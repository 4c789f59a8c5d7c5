/*
 * test_steer.c - black-box tables of the steer plugin (issue 5): client
 * address or ECS x cluster states -> expected answer, over the wire.
 *
 * One server for the file.  Every cluster has one server polled through
 * the real health poller: a Prometheus endpoint of the fixture HTTP server
 * (tests/fixtures/httpfix) whose transmit counter grows at a rate the test
 * sets (with exposition timestamps, so the measured utilisation is exact to
 * about a percent); BUSY and DOWN are forced with the admin state file.
 * Before each table the test waits (with a deadline) until `status` shows
 * the states and utilisations it set; it never sleeps a fixed time.
 *
 * Topology (clusters of 100 Mbit/s; distances from Beijing: Jilin 860 km,
 * Shanghai 1067, Guangzhou 1888, London 8140; Shanghai lists Guangzhou as
 * its explicit neighbour although Beijing is nearer):
 *
 *   cluster  region    carrier  A         AAAA            util (base)
 *   bj-tel   beijing   telecom  10.0.1.1  2001:db8:1::1   10%
 *   bj-uni   beijing   unicom   10.0.1.2  -               20%
 *   jl-tel   jilin     telecom  10.0.2.1  -               30%
 *   sh-tel   shanghai  telecom  10.0.3.1  2001:db8:3::1   40%
 *   sh-uni   shanghai  unicom   10.0.3.2  -                5%
 *   gz-tel   guangzhou telecom  10.0.4.1  -               50%
 *   gz-mob   guangzhou mobile   10.0.4.3  -               25%
 *   lon      london    intl     10.0.5.1  2001:db8:5::1   35%
 *   tj-a/tj-b (weights 3/1), he-a/he-b (weights 1/1): tie tests, 0%
 *
 * Clients: nets overrides 198.18.N.0/24 (region and/or carrier), the
 * mobile carrier's CIDR list 198.19.0.0/16 (carrier only), the lab city
 * database (175.16.199.0/24 and 127.0.3.0/24 = CN-22 = jilin, 127.0.1.0/24 =
 * GB-ENG = london, 127.0.2.0/24 = US: no region), 2001:250::/32 (CN, no
 * subdivision: the country tier), and unknown addresses.
 *
 * Branches covered, mode literal: rule 1 (least-loaded idle home, the line
 * hierarchy region+carrier / region / carrier in country / carrier /
 * country / default, ties by weight then round robin); rule 2 (first idle
 * in candidate order: distance, carrier penalty, explicit neighbours,
 * skipping clusters without the asked family); rule 3 (every cluster busy:
 * least-loaded not DOWN); rule 4 (all DOWN: fallback, else the first
 * candidate); AAAA and NODATA; default_region / default_carrier; the
 * delegated zone's carrier; TTL and busy TTL; the ECS scope; source address
 * vs ECS.  Mode damped: never a DOWN cluster while one is up, never
 * SERVFAIL, never empty.  `steerdns explain` (offline and live) and
 * `steerdns status`.
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
#include "tests/fixtures/httpfix.h"

/* Deadlines for the poller to show a change: generous for sanitizer
 * builds, only ever waited out when something is wrong. */
#define STATE_DEADLINE_MS 15000
#define CAPACITY_BYTES 12500000.0 /* 100 Mbit/s */

typedef struct cl {
    const char *name, *region, *carrier, *v4, *v6;
    unsigned weight;
    double base; /* utilisation in percent */
} cl_t;

static const cl_t clusters[] = {
    {"bj-tel", "beijing", "telecom", "10.0.1.1", "2001:db8:1::1", 1, 10},
    {"bj-uni", "beijing", "unicom", "10.0.1.2", NULL, 1, 20},
    {"jl-tel", "jilin", "telecom", "10.0.2.1", NULL, 1, 30},
    {"sh-tel", "shanghai", "telecom", "10.0.3.1", "2001:db8:3::1", 1, 40},
    {"sh-uni", "shanghai", "unicom", "10.0.3.2", NULL, 1, 5},
    {"gz-tel", "guangzhou", "telecom", "10.0.4.1", NULL, 1, 50},
    {"gz-mob", "guangzhou", "mobile", "10.0.4.3", NULL, 1, 25},
    {"lon", "london", "intl", "10.0.5.1", "2001:db8:5::1", 1, 35},
    {"tj-a", "tianjin", "telecom", "10.0.6.1", NULL, 3, 0},
    {"tj-b", "tianjin", "telecom", "10.0.6.2", NULL, 1, 0},
    {"he-a", "hebei", "telecom", "10.0.7.1", NULL, 1, 0},
    {"he-b", "hebei", "telecom", "10.0.7.2", NULL, 1, 0},
};
#define NCL (sizeof(clusters) / sizeof(clusters[0]))
#define MAIN8 "[bj-tel, bj-uni, jl-tel, sh-tel, sh-uni, gz-tel, gz-mob, lon]"

static httpfix_t *fix;
static bb_t srv;
static double cur_util[NCL]; /* what the fixture serves now, percent */
static char cur_admin[1024];

static const cl_t *cl_find(const char *name)
{
    for (size_t i = 0; i < NCL; i++)
        if (strcmp(clusters[i].name, name) == 0)
            return &clusters[i];
    return NULL;
}

static const char *config_text(void)
{
    static char buf[16384];
    size_t o = 0;
#define W(...) o += (size_t)snprintf(buf + o, sizeof(buf) - o, __VA_ARGS__)
    W("server:\n"
      "  listen: [127.0.0.1, \"::1\"]\n"
      "  port: 0\n"
      "  workers: 2\n"
      "  control: ctl.sock\n"
      "health:\n"
      "  interval: 100ms\n"
      "  idle_after: 1\n"
      "  stale_after: 5s\n"
      "  fall: 5\n"
      "  admin_file: admin.txt\n"
      "  admin_interval: 20ms\n"
      "regions:\n"
      "  beijing: {lat: 39.90, lon: 116.40, country: CN}\n"
      "  jilin: {lat: 43.88, lon: 125.32, country: CN, match: [CN-22]}\n"
      "  shanghai: {lat: 31.23, lon: 121.47, country: CN, neighbours: [guangzhou]}\n"
      "  guangzhou: {lat: 23.13, lon: 113.26, country: CN}\n"
      "  xinjiang: {lat: 43.80, lon: 87.60, country: CN}\n"
      "  london: {lat: 51.50, lon: -0.10, country: GB, match: [GB-ENG]}\n"
      "  tianjin: {lat: -40, lon: -60}\n"
      "  hebei: {lat: -45, lon: -70}\n"
      "geo:\n"
      "  city_db: @SHARED@/peers/mmdb/lab-city.mmdb\n"
      "  carriers:\n"
      "    telecom: {}\n"
      "    unicom: {}\n"
      "    mobile: {cidrs: [198.19.0.0/16]}\n"
      "    intl: {}\n"
      "  nets:\n"
      "    198.18.1.0/24: {region: beijing, carrier: telecom}\n"
      "    198.18.2.0/24: {region: beijing, carrier: unicom}\n"
      "    198.18.3.0/24: {region: beijing, carrier: mobile}\n"
      "    198.18.4.0/24: {region: shanghai, carrier: telecom}\n"
      "    198.18.5.0/24: {region: shanghai, carrier: unicom}\n"
      "    198.18.6.0/24: {region: xinjiang, carrier: unicom}\n"
      "    198.18.7.0/24: {region: beijing}\n"
      "    198.18.10.0/24: {region: tianjin, carrier: telecom}\n"
      "    198.18.11.0/24: {region: hebei, carrier: telecom}\n"
      "    \"2001:db8:aa::/48\": {region: beijing, carrier: telecom}\n"
      "clusters:\n");
    for (size_t i = 0; i < NCL; i++) {
        const cl_t *c = &clusters[i];
        char url[256], path[64];
        snprintf(path, sizeof(path), "/m/%s", c->name);
        httpfix_url(fix, path, url, sizeof(url));
        W("  %s:\n    region: %s\n    carrier: %s\n    weight: %u\n", c->name, c->region,
          c->carrier, c->weight);
        if (c->v6)
            W("    entry: [%s, \"%s\"]\n", c->v4, c->v6);
        else
            W("    entry: [%s]\n", c->v4);
        W("    servers: {s1: {capacity: 100Mbit, check: {kind: prometheus, url: \"%s\"}}}\n", url);
    }
    W("resolvers:\n"
      "  steer:\n"
      "    lit: {mode: literal, ttl: 60s, busy_ttl: 7s, clusters: " MAIN8 "}\n"
      "    near: {mode: literal, carrier_penalty_km: 100, clusters: " MAIN8 "}\n"
      "    dflt: {mode: literal, default_region: guangzhou, default_carrier: unicom, clusters: " MAIN8 "}\n"
      "    fb: {mode: literal, clusters: [bj-tel, bj-uni, jl-tel], fallback: [192.0.2.250, \"2001:db8::250\"]}\n"
      "    v4only: {mode: literal, clusters: [bj-uni, jl-tel]}\n"
      "    tie: {mode: literal, clusters: [tj-a, tj-b]}\n"
      "    rr: {mode: literal, clusters: [he-a, he-b]}\n"
      "    damp: {mode: damped, clusters: " MAIN8 ", fallback: [192.0.2.251, \"2001:db8::251\"]}\n"
      "    fb4: {mode: literal, clusters: [bj-tel, bj-uni, jl-tel], fallback: 192.0.2.252}\n"
      "    damp4: {mode: damped, clusters: " MAIN8 ", fallback: 192.0.2.253}\n"
      "zones:\n"
      "  - origin: example.test\n"
      "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"
      "    ns: [ns1]\n"
      "    records:\n"
      "      ns1: \"A 192.0.2.53\"\n"
      "      app: {steer: lit}\n"
      "      near: {steer: near}\n"
      "      dflt: {steer: dflt}\n"
      "      fb: {steer: fb}\n"
      "      v4only: {steer: v4only}\n"
      "      tie: {steer: tie}\n"
      "      rr: {steer: rr}\n"
      "      dmp: {steer: damp}\n"
      "      fb4: {steer: fb4}\n"
      "      dmp4: {steer: damp4}\n"
      "  - origin: uni.example.test\n"
      "    carrier: unicom\n"
      "    soa: \"ns1.example.test. hostmaster.example.test. 1 3600 600 604800 60\"\n"
      "    ns: [ns1.example.test.]\n"
      "    records:\n"
      "      app: {steer: lit}\n");
#undef W
    return buf;
}

/* ---- the fixture: utilisation per cluster ---- */

static void set_util(const char *name, double pct)
{
    for (size_t i = 0; i < NCL; i++)
        if (strcmp(clusters[i].name, name) == 0) {
            char path[64];
            snprintf(path, sizeof(path), "/m/%s", name);
            httpfix_set_rate(fix, path, pct / 100.0 * CAPACITY_BYTES);
            cur_util[i] = pct;
            return;
        }
    fail_msg("no cluster %s", name);
}

static void base_utils(void)
{
    for (size_t i = 0; i < NCL; i++)
        set_util(clusters[i].name, clusters[i].base);
}

/* ---- the control socket ---- */

/* The state the admin text forces on a cluster (IDLE when none). */
static const char *admin_state(const char *admin, const char *cluster)
{
    const char *all = NULL, *own = NULL;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", admin);
    for (char *save = NULL, *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char target[64], state[16];
        if (sscanf(ln, "%63s %15s", target, state) != 2)
            continue;
        const char *st = strcmp(state, "UP") == 0 ? "IDLE" : strcmp(state, "BUSY") == 0 ? "BUSY" : "DOWN";
        if (strcmp(target, "*") == 0)
            all = st;
        else if (strcmp(target, cluster) == 0)
            own = st;
    }
    static char res[16];
    snprintf(res, sizeof(res), "%s", own ? own : all ? all : "IDLE");
    return res;
}

/* True when status shows every cluster in the state the admin text and
 * the fixture's utilisations make it (util within 2 points). */
static bool status_matches(const char *st, char *why, size_t whysize)
{
    for (size_t i = 0; i < NCL; i++) {
        char key[80];
        snprintf(key, sizeof(key), "\ncluster %s state=", clusters[i].name);
        const char *p = strstr(st, key);
        if (p == NULL) {
            snprintf(why, whysize, "no line for cluster %s", clusters[i].name);
            return false;
        }
        char state[16];
        double util;
        if (sscanf(p + strlen(key), "%15s util=%lf%%", state, &util) != 2) {
            snprintf(why, whysize, "cannot parse the line of %s", clusters[i].name);
            return false;
        }
        const char *want = admin_state(cur_admin, clusters[i].name);
        if (strcmp(state, want) != 0) {
            snprintf(why, whysize, "cluster %s: state %s, want %s", clusters[i].name, state, want);
            return false;
        }
        if (strcmp(want, "DOWN") != 0 && fabs(util - cur_util[i]) > 2.0) {
            snprintf(why, whysize, "cluster %s: util %.1f%%, want %.1f%%", clusters[i].name, util,
                     cur_util[i]);
            return false;
        }
    }
    return true;
}

/* Wait until the server's published states are the ones set. */
static void wait_states(void)
{
    static char st[65536];
    char why[200] = "";
    long long deadline = bb_now_ms() + STATE_DEADLINE_MS;
    while (bb_now_ms() < deadline) {
        bb_control(&srv, "status", st, sizeof(st));
        if (status_matches(st, why, sizeof(why)))
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("states not reached within %d ms: %s\nadmin file:\n%s\nstatus:\n%s", STATE_DEADLINE_MS,
             why, cur_admin, st);
}

static void set_admin(const char *text)
{
    snprintf(cur_admin, sizeof(cur_admin), "%s", text);
    bb_write(&srv, "admin.txt", text);
    wait_states();
}

/* No overrides; wait for the states the poller measures, written in the
 * admin file's form ("bj-tel BUSY" for a cluster over the threshold). */
static void expect_measured(const char *states)
{
    bb_write(&srv, "admin.txt", "");
    snprintf(cur_admin, sizeof(cur_admin), "%s", states);
    wait_states();
}

/* ---- queries ---- */

typedef struct res {
    char rcode[16];
    char answer[1024];
    char ecs[160];
    int ttl; /* first answer RR's, -1 when none */
    int nauth;
} res_t;

static void ask(const char *name, const char *type, const char *ecs, const char *source, bool tcp,
                res_t *r)
{
    bb_q_t o = {.tcp = tcp, .ecs = ecs, .source = source};
    ldns_pkt *p = bb_query(&srv, name, type, &o);
    if (p == NULL)
        fail_msg("%s %s ecs=%s source=%s: no answer", name, type, ecs ? ecs : "-",
                 source ? source : "-");
    snprintf(r->rcode, sizeof(r->rcode), "%s", bb_rcode(p));
    bb_rdata(ldns_pkt_answer(p), r->answer, sizeof(r->answer));
    bb_ecs(p, r->ecs, sizeof(r->ecs));
    r->ttl = ldns_pkt_ancount(p) ? (int)ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) : -1;
    r->nauth = (int)ldns_pkt_nscount(p);
    ldns_pkt_free(p);
}

/* The rdata a cluster name stands for in the tables: its entry of the
 * asked family; "fb" / "dfb" the fallbacks of fb / damp; "" NODATA. */
static const char *expect_rdata(const char *what, const char *type)
{
    bool v6 = strcmp(type, "AAAA") == 0;
    if (strcmp(what, "fb") == 0)
        return v6 ? "2001:db8::250" : "192.0.2.250";
    if (strcmp(what, "dfb") == 0)
        return v6 ? "2001:db8::251" : "192.0.2.251";
    if (strcmp(what, "fb4") == 0) /* IPv4-only fallbacks */
        return v6 ? "(no IPv6 fallback)" : "192.0.2.252";
    if (strcmp(what, "dfb4") == 0)
        return v6 ? "(no IPv6 fallback)" : "192.0.2.253";
    if (what[0] == '\0')
        return "";
    const cl_t *c = cl_find(what);
    if (c == NULL)
        fail_msg("table names no cluster '%s'", what);
    return v6 ? (c->v6 ? c->v6 : "(no IPv6 entry)") : c->v4;
}

static const char *cluster_of(const char *rdata)
{
    for (size_t i = 0; i < NCL; i++)
        if (strcmp(rdata, clusters[i].v4) == 0 || (clusters[i].v6 && strcmp(rdata, clusters[i].v6) == 0))
            return clusters[i].name;
    return rdata;
}

typedef struct scase {
    const char *label;  /* name under example.test (or a full name with a final dot) */
    const char *type;
    const char *ecs;    /* NULL: none */
    const char *source; /* NULL: 127.0.0.1 */
    const char *want;   /* cluster name, "fb", "dfb" or "" (NODATA) */
    int scope;          /* expected ECS scope, -1: don't check */
    int ttl;            /* expected TTL, -1: don't check */
} scase_t;

static void qname_of(const char *label, char *out, size_t size)
{
    size_t n = strlen(label);
    if (n && label[n - 1] == '.')
        snprintf(out, size, "%s", label);
    else
        snprintf(out, size, "%s.example.test.", label);
}

static void check_case(const char *table, const scase_t *c, bool tcp)
{
    char qname[256], what[1400], w[1500];
    qname_of(c->label, qname, sizeof(qname));
    snprintf(what, sizeof(what), "[%s] %s %s ecs=%s source=%s %s (admin: %s)", table, qname, c->type,
             c->ecs ? c->ecs : "none", c->source ? c->source : "127.0.0.1", tcp ? "tcp" : "udp",
             cur_admin[0] ? cur_admin : "none");
    for (char *p = what; *p; p++)
        if (*p == '\n')
            *p = ';';
    if (c->source && strchr(c->source, ':') && !bb_have_ipv6())
        return; /* no IPv6 loopback on this host */
    res_t r;
    ask(qname, c->type, c->ecs, c->source, tcp, &r);
    snprintf(w, sizeof(w), "%s: rcode", what);
    BB_EXPECT_STR(w, r.rcode, "NOERROR");
    const char *want = expect_rdata(c->want, c->type);
    if (strcmp(r.answer, want) != 0)
        fail_msg("%s: answer: expected %s (%s), got %s (%s)", what, want, c->want, r.answer,
                 cluster_of(r.answer));
    if (c->want[0] == '\0') {
        snprintf(w, sizeof(w), "%s: NODATA carries the SOA", what);
        BB_EXPECT_INT(w, r.nauth, 1);
    }
    if (c->scope >= 0 && c->ecs) {
        char ecs[128];
        snprintf(ecs, sizeof(ecs), "%s", c->ecs);
        char *slash = strchr(ecs, '/');
        char wantecs[160];
        snprintf(wantecs, sizeof(wantecs), "%.*s/%s/%d", (int)(slash - ecs), ecs, slash + 1, c->scope);
        snprintf(w, sizeof(w), "%s: ECS (address/source/scope)", what);
        BB_EXPECT_STR(w, r.ecs, wantecs);
    }
    if (c->ttl >= 0) {
        snprintf(w, sizeof(w), "%s: TTL", what);
        BB_EXPECT_INT(w, r.ttl, c->ttl);
    }
}

static void run_table(const char *table, const scase_t *cases, size_t n)
{
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < n; i++)
            check_case(table, &cases[i], tcp);
}

#define RUN(t) run_table(#t, t, sizeof(t) / sizeof(t[0]))

/* ---- setup ---- */

static int setup(void **state)
{
    (void)state;
    if (httpfix_start("127.0.0.1", 0, &fix) != 0)
        fail_msg("httpfix_start failed");
    for (size_t i = 0; i < NCL; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/m/%s", clusters[i].name);
        httpfix_set_body(fix, path,
                         "# TYPE node_network_transmit_bytes_total counter\n"
                         "node_network_transmit_bytes_total{device=\"eth0\"} {counter} {timestamp_ms}\n");
    }
    base_utils();
    bb_prepare(&srv, config_text());
    bb_write(&srv, "admin.txt", "");
    bb_launch(&srv);
    set_admin("");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bb_stop(&srv);
    httpfix_stop(fix);
    return 0;
}

/* Every test starts and ends with no overrides and the base utilisations. */
static void reset(void)
{
    base_utils();
    set_admin("");
}

/* ---- rule 1 and the line hierarchy ---- */

static const scase_t hierarchy[] = {
    /* region+carrier */
    {"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 60},
    {"app", "AAAA", "198.18.1.0/24", NULL, "bj-tel", 24, 60},
    {"app", "A", "198.18.2.0/24", NULL, "bj-uni", 24, 60},
    {"app", "A", "198.18.4.0/24", NULL, "sh-tel", 24, 60},
    {"app", "A", "198.18.5.0/24", NULL, "sh-uni", 24, 60},
    /* region: no Beijing mobile cluster; the least loaded of Beijing's */
    {"app", "A", "198.18.3.0/24", NULL, "bj-tel", 24, 60},
    /* carrier in country: Xinjiang has no cluster; China's unicom ones */
    {"app", "A", "198.18.6.0/24", NULL, "sh-uni", 24, 60},
    /* carrier: nothing but the carrier known (mobile's CIDR list) */
    {"app", "A", "198.19.5.0/24", NULL, "gz-mob", -1, 60},
    /* country: CN without a subdivision any region matches */
    {"app", "A", "2001:250::/32", NULL, "sh-uni", 31, 60},
    {"app", "AAAA", "2001:250::/32", NULL, "bj-tel", 31, 60},
    /* default: nothing known; every cluster is home */
    {"app", "A", "192.0.2.0/24", NULL, "sh-uni", -1, 60},
    {"app", "A", "203.0.113.0/24", NULL, "sh-uni", -1, 60},
    /* region from the city database (CN-22 = jilin), by ECS or source */
    {"app", "A", "175.16.199.0/24", NULL, "jl-tel", 24, 60},
    {"app", "A", NULL, "127.0.3.1", "jl-tel", -1, 60},
    {"app", "A", NULL, "127.0.1.1", "lon", -1, 60},
    {"app", "AAAA", NULL, "127.0.1.1", "lon", -1, 60},
    {"app", "A", NULL, "127.0.2.1", "sh-uni", -1, 60}, /* US: no region, no country */
    {"app", "A", NULL, "::1", "sh-uni", -1, 60},
    /* the ECS address wins over the source; SOURCE 0 means the source */
    {"app", "A", "198.18.1.0/24", "127.0.3.1", "bj-tel", 24, 60},
    {"app", "A", "0.0.0.0/0", "127.0.1.1", "lon", 0, 60},
    /* IPv6 ECS client (an override of 2001:db8:aa::/48); a /64 is capped
     * to /56 and the override's /48 decides */
    {"app", "A", "2001:db8:aa::/48", NULL, "bj-tel", 48, 60},
    {"app", "AAAA", "2001:db8:aa::/64", NULL, "bj-tel", 48, 60},
    /* a /32 is looked up as /24: the scope never exceeds the cap */
    {"app", "A", "198.18.1.77/32", NULL, "bj-tel", 24, 60},
    /* default_region / default_carrier */
    {"dflt", "A", "192.0.2.0/24", NULL, "gz-mob", -1, -1},
    {"dflt", "A", "198.18.7.0/24", NULL, "bj-uni", 24, -1},
    {"app", "A", "198.18.7.0/24", NULL, "bj-tel", 24, -1},
    {"dflt", "A", "198.18.1.0/24", NULL, "bj-tel", 24, -1},
    /* a delegated zone's carrier decides when the address does not */
    {"app.uni.example.test.", "A", "198.18.7.0/24", NULL, "bj-uni", 24, -1},
    {"app.uni.example.test.", "A", "198.18.1.0/24", NULL, "bj-tel", 24, -1},
    {"app.uni.example.test.", "A", "192.0.2.0/24", NULL, "sh-uni", -1, -1},
    {"app.uni.example.test.", "A", "198.19.5.0/24", NULL, "gz-mob", -1, -1},
};

static void test_hierarchy(void **state)
{
    (void)state;
    reset();
    RUN(hierarchy);
}

/* The same clients with other utilisations: rule 1 follows the load, not
 * the order. */
static const scase_t hierarchy_loaded[] = {
    {"app", "A", "198.18.3.0/24", NULL, "bj-uni", 24, 60},
    {"app", "A", "198.18.6.0/24", NULL, "bj-uni", 24, 60},
    {"app", "A", "2001:250::/32", NULL, "jl-tel", 31, 60},
    {"app", "AAAA", "2001:250::/32", NULL, "sh-tel", 31, 60},
    {"app", "A", "192.0.2.0/24", NULL, "lon", -1, 60},
    {"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 60}, /* one home: no choice */
    {"dflt", "A", "192.0.2.0/24", NULL, "gz-tel", -1, -1},
};

static void test_least_loaded_follows_load(void **state)
{
    (void)state;
    reset();
    set_util("bj-tel", 60);
    set_util("sh-uni", 45);
    set_util("jl-tel", 8);
    set_util("lon", 3);
    set_util("gz-mob", 55);
    set_admin("");
    RUN(hierarchy_loaded);
    reset();
}

/* ---- rule 2: home busy -> first idle cluster in candidate order ---- */

static const scase_t busy_home[] = {
    /* Beijing telecom: jl-tel (860 km) before bj-uni (0 + 1000 km carrier
     * penalty) before sh-tel (1067 km); AAAA skips clusters without IPv6. */
    {"app", "A", "198.18.1.0/24", NULL, "jl-tel", 24, 60},
    {"app", "AAAA", "198.18.1.0/24", NULL, "sh-tel", 24, 60},
    {"app", "A", "2001:db8:aa::/48", NULL, "jl-tel", 48, 60},
    /* With a 100 km penalty the same-region other carrier comes first. */
    {"near", "A", "198.18.1.0/24", NULL, "bj-uni", 24, -1},
    /* Beijing mobile: home = Beijing's clusters; bj-uni is idle */
    {"app", "A", "198.18.3.0/24", NULL, "bj-uni", 24, 60},
};

static const scase_t busy_home2[] = {
    {"app", "A", "198.18.1.0/24", NULL, "bj-uni", 24, 60},
    {"near", "A", "198.18.1.0/24", NULL, "bj-uni", 24, -1},
};

static const scase_t busy_home3[] = {
    {"app", "A", "198.18.1.0/24", NULL, "sh-tel", 24, 60},
    {"near", "A", "198.18.1.0/24", NULL, "sh-tel", 24, -1},
    /* Beijing mobile: both home clusters unusable; every other carrier
     * costs the penalty, so gz-mob (1888 km, mobile) comes before sh-tel
     * (1067 + 1000 km); jl-tel (860 + 1000) is DOWN. */
    {"app", "A", "198.18.3.0/24", NULL, "gz-mob", 24, 60},
};

/* Shanghai lists Guangzhou as its neighbour: after its own region (the
 * other carrier first), Guangzhou (1212 km) before Beijing (1067 km). */
static const scase_t neighbours1[] = {
    {"app", "A", "198.18.4.0/24", NULL, "sh-uni", 24, 60},
};
static const scase_t neighbours2[] = {
    {"app", "A", "198.18.4.0/24", NULL, "gz-tel", 24, 60},
    {"app", "A", "198.18.5.0/24", NULL, "gz-tel", 24, 60},
    /* AAAA: gz-tel has no IPv6; next in the explicit order is Beijing */
    {"app", "AAAA", "198.18.4.0/24", NULL, "bj-tel", 24, 60},
};
static const scase_t neighbours3[] = {
    /* the neighbour busy too: the rest of Shanghai's order, by distance */
    {"app", "A", "198.18.4.0/24", NULL, "bj-tel", 24, 60},
    {"app", "A", "198.18.5.0/24", NULL, "bj-uni", 24, 60},
};

static void test_busy_home(void **state)
{
    (void)state;
    reset();
    set_admin("bj-tel BUSY test\n");
    RUN(busy_home);
    set_admin("bj-tel BUSY\njl-tel DOWN\n");
    RUN(busy_home2);
    set_admin("bj-tel BUSY\njl-tel DOWN\nbj-uni BUSY\n");
    RUN(busy_home3);
    set_admin("sh-tel BUSY\n");
    RUN(neighbours1);
    set_admin("sh-tel BUSY\nsh-uni BUSY\n");
    RUN(neighbours2);
    set_admin("sh-tel BUSY\nsh-uni BUSY\ngz-tel BUSY\ngz-mob DOWN\n");
    RUN(neighbours3);
    reset();
}

/* BUSY measured by the poller (utilisation over the 90% threshold), not
 * forced: the same rule. */
static const scase_t busy_measured[] = {
    {"app", "A", "198.18.1.0/24", NULL, "jl-tel", 24, 60},
    {"app", "A", "198.18.3.0/24", NULL, "bj-uni", 24, 60},
    {"app", "A", "198.18.2.0/24", NULL, "bj-uni", 24, 60},
};

static void test_busy_measured(void **state)
{
    (void)state;
    reset();
    set_util("bj-tel", 150);
    expect_measured("bj-tel BUSY (measured)\n");
    RUN(busy_measured);
    /* Back under the return threshold: home again. */
    set_util("bj-tel", 10);
    expect_measured("");
    static const scase_t back[] = {{"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 60}};
    RUN(back);
    reset();
}

/* ---- rules 3 and 4 ---- */

static const scase_t all_busy[] = {
    /* the least loaded of all, wherever it is in the order (sh-uni 5%) */
    {"app", "A", "198.18.1.0/24", NULL, "sh-uni", 24, 7},
    {"app", "A", "198.18.4.0/24", NULL, "sh-uni", 24, 7},
    {"app", "AAAA", "198.18.1.0/24", NULL, "bj-tel", 24, 7}, /* among IPv6 clusters */
    {"app", "A", NULL, "127.0.1.1", "sh-uni", -1, 7},
    {"fb", "A", "198.18.1.0/24", NULL, "bj-tel", 24, -1},
};
static const scase_t all_busy_two_down[] = {
    /* never a DOWN one: the least loaded of the rest (bj-uni 20%; for
     * IPv6, lon 35% before sh-tel 40%) */
    {"app", "A", "198.18.1.0/24", NULL, "bj-uni", 24, 7},
    {"app", "AAAA", "198.18.1.0/24", NULL, "lon", 24, 7},
};
static const scase_t all_down[] = {
    /* a fallback is configured: answered for both families, with busy_ttl
     * (the answer changes as soon as a cluster recovers) */
    {"fb", "A", "198.18.1.0/24", NULL, "fb", 24, 5},
    {"fb", "AAAA", "198.18.1.0/24", NULL, "fb", 24, 5},
    {"dmp", "A", "198.18.1.0/24", NULL, "dfb", -1, -1},
    {"dmp", "AAAA", "192.0.2.0/24", NULL, "dfb", -1, -1},
    /* an IPv4-only fallback: AAAA from the first candidate with IPv6, in
     * both modes (never empty while a cluster has the family) */
    {"fb4", "A", "198.18.1.0/24", NULL, "fb4", 24, 5},
    {"fb4", "AAAA", "198.18.1.0/24", NULL, "bj-tel", 24, 5},
    {"fb4", "AAAA", "198.18.2.0/24", NULL, "bj-tel", 24, -1},
    {"dmp4", "A", "198.18.1.0/24", NULL, "dfb4", -1, -1},
    {"dmp4", "AAAA", "198.18.1.0/24", NULL, "bj-tel", -1, -1},
    {"dmp4", "AAAA", "198.18.4.0/24", NULL, "sh-tel", -1, -1},
    /* no fallback: never empty, the first candidate (of the family) */
    {"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 7},
    {"app", "AAAA", "198.18.1.0/24", NULL, "bj-tel", 24, 7},
    {"app", "A", "198.18.4.0/24", NULL, "sh-tel", 24, 7},
    {"app", "A", "198.18.2.0/24", NULL, "bj-uni", 24, 7},
    {"app", "AAAA", "198.18.2.0/24", NULL, "bj-tel", 24, 7},
    /* no cluster of the instance has IPv6: NODATA, not SERVFAIL */
    {"v4only", "AAAA", "198.18.1.0/24", NULL, "", -1, -1},
};
static const scase_t fb_clusters_down[] = {
    {"fb", "A", "198.18.1.0/24", NULL, "fb", 24, 5},
    {"app", "A", "198.18.1.0/24", NULL, "sh-tel", 24, 60},
};

static void test_all_busy_all_down(void **state)
{
    (void)state;
    reset();
    set_admin("* BUSY\n");
    RUN(all_busy);
    set_admin("* BUSY\nsh-uni DOWN\nbj-tel DOWN\n");
    RUN(all_busy_two_down);
    set_admin("* DOWN\n");
    RUN(all_down);
    set_admin("bj-tel DOWN\nbj-uni DOWN\njl-tel DOWN\n");
    RUN(fb_clusters_down);
    reset();
}

/* ---- IPv6: AAAA from IPv6 entries only ---- */

static const scase_t ipv6[] = {
    /* bj-uni, home of Beijing unicom, has no IPv6 entry: AAAA comes from
     * the nearest cluster that has one (bj-tel at 0 + 1000 km, before
     * sh-uni at 1067 km which has none either), A from the home. */
    {"app", "A", "198.18.2.0/24", NULL, "bj-uni", 24, 60},
    {"app", "AAAA", "198.18.2.0/24", NULL, "bj-tel", 24, 60},
    {"app", "AAAA", "175.16.199.0/24", NULL, "bj-tel", 24, 60},
    {"app", "AAAA", "198.18.4.0/24", NULL, "sh-tel", 24, 60},
    /* an instance whose clusters have no IPv6 at all: NODATA */
    {"v4only", "AAAA", "198.18.1.0/24", NULL, "", -1, -1},
    /* (its Beijing cluster is home for every Beijing client) */
    {"v4only", "A", "198.18.1.0/24", NULL, "bj-uni", 24, -1},
    {"v4only", "A", "175.16.199.0/24", NULL, "jl-tel", 24, -1},
    {"v4only", "A", "198.18.2.0/24", NULL, "bj-uni", 24, -1},
    /* IPv6 transport, IPv6 ECS */
    {"app", "AAAA", "2001:db8:aa::/48", "::1", "bj-tel", 48, 60},
};

static void test_ipv6(void **state)
{
    (void)state;
    reset();
    RUN(ipv6);
}

/* ---- ties: weight, then round robin ---- */

static void count_answers(const char *label, const char *ecs, int n, int *a, int *b,
                          const char *ra, const char *rb)
{
    *a = *b = 0;
    char qname[128];
    qname_of(label, qname, sizeof(qname));
    for (int i = 0; i < n; i++) {
        res_t r;
        ask(qname, "A", ecs, NULL, i % 4 == 3, &r);
        if (strcmp(r.answer, ra) == 0)
            (*a)++;
        else if (strcmp(r.answer, rb) == 0)
            (*b)++;
        else
            fail_msg("%s: answer %s is neither %s nor %s", label, r.answer, ra, rb);
    }
}

static void test_ties(void **state)
{
    (void)state;
    reset();
    int a, b;
    /* tj-a (weight 3) and tj-b (weight 1) equally loaded: the weight. */
    count_answers("tie", "198.18.10.0/24", 60, &a, &b, "10.0.6.1", "10.0.6.2");
    BB_EXPECT_INT("tie by weight: answers of tj-b (weight 1)", b, 0);
    /* The load comes before the weight. */
    set_util("tj-a", 20);
    set_admin("");
    count_answers("tie", "198.18.10.0/24", 60, &a, &b, "10.0.6.1", "10.0.6.2");
    BB_EXPECT_INT("less loaded tj-b: answers of tj-a", a, 0);
    /* Equal load and weight: round robin, both about half. */
    count_answers("rr", "198.18.11.0/24", 200, &a, &b, "10.0.7.1", "10.0.7.2");
    if (a < 50 || b < 50)
        fail_msg("round robin over 200 queries: expected both he-a and he-b at least 50 times, got %d and %d",
                 a, b);
    /* One worker takes turns: on one TCP connection the answers alternate. */
    int fd = bb_tcp_connect(&srv);
    char prev[64] = "";
    for (int i = 0; i < 12; i++) {
        uint8_t qb[512], ab[4096];
        bb_q_t o = {.ecs = "198.18.11.0/24"};
        size_t l = bb_build("rr.example.test.", "A", &o, qb, sizeof(qb));
        assert_true(bb_tcp_send(fd, qb, l));
        int n = bb_tcp_recv(fd, ab, sizeof(ab), 2000);
        assert_true(n > 12);
        ldns_pkt *p = NULL;
        assert_int_equal(ldns_wire2pkt(&p, ab, (size_t)n), LDNS_STATUS_OK);
        char got[64];
        bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
        ldns_pkt_free(p);
        if (i > 0 && strcmp(got, prev) == 0)
            fail_msg("round robin on one connection: answer %d repeats %s", i, got);
        snprintf(prev, sizeof(prev), "%s", got);
    }
    close(fd);
    reset();
}

/* ---- TTL ---- */

static void test_ttl(void **state)
{
    (void)state;
    reset();
    static const scase_t idle[] = {
        {"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 60},
        {"near", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 30}, /* the default ttl */
    };
    RUN(idle);
    /* Above `near` (75%) but still IDLE: the short busy_ttl. */
    set_util("bj-tel", 82);
    set_admin("");
    static const scase_t nearly[] = {
        {"app", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 7},
        {"near", "A", "198.18.1.0/24", NULL, "bj-tel", 24, 5}, /* default busy_ttl */
        {"app", "A", "198.18.2.0/24", NULL, "bj-uni", 24, 60},
    };
    RUN(nearly);
    /* The chosen cluster, not the home, decides the TTL. */
    set_util("bj-tel", 10);
    set_admin("bj-tel BUSY\n");
    static const scase_t moved[] = {{"app", "A", "198.18.1.0/24", NULL, "jl-tel", 24, 60}};
    RUN(moved);
    reset();
}

/* ---- damped: the invariants ---- */

static void damped_check(const char *admin);

static void damped_round(const char *admin)
{
    set_admin(admin);
    damped_check(admin);
}

/* The states the poller measured (cur_admin), the admin file empty. */
static void damped_measured_round(void)
{
    damped_check(cur_admin);
}

static void damped_check(const char *admin)
{
    static const char *const v4[] = {
        "198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24", "198.18.4.0/24", "198.18.5.0/24",
        "198.18.6.0/24", "198.18.7.0/24", "198.18.10.0/24", "175.16.199.0/24", "2.2.3.0/24",
        "192.0.2.0/24", "203.0.113.0/24", "0.0.0.0/0",
    };
    char subnets[64][48];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
        snprintf(subnets[n++], 48, "%s", v4[i]);
    for (int i = 0; i < 24; i++)
        snprintf(subnets[n++], 48, "198.19.%d.0/24", i * 7);
    for (int i = 0; i < 12; i++)
        snprintf(subnets[n++], 48, "100.64.%d.0/24", i * 13);
    snprintf(subnets[n++], 48, "2001:db8:aa::/48");
    snprintf(subnets[n++], 48, "2001:250::/32");
    bool any_up4 = false, any_up6 = false;
    for (size_t k = 0; k < 8; k++) {
        bool up = strcmp(admin_state(admin, clusters[k].name), "DOWN") != 0;
        any_up4 |= up;
        any_up6 |= up && clusters[k].v6;
    }
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < 2; t++) {
            const char *type = t ? "AAAA" : "A";
            res_t r;
            ask("dmp.example.test.", type, subnets[i], NULL, i % 3 == 0, &r);
            char what[400];
            snprintf(what, sizeof(what), "damped, admin '%.200s', ECS %.47s %s", admin, subnets[i], type);
            for (char *p = what; *p; p++)
                if (*p == '\n')
                    *p = ';';
            if (strcmp(r.rcode, "NOERROR") != 0)
                fail_msg("%s: rcode %s", what, r.rcode);
            if (r.answer[0] == '\0')
                fail_msg("%s: empty answer", what);
            const char *cl = cluster_of(r.answer);
            const cl_t *c = cl_find(cl);
            bool fallback = strcmp(r.answer, expect_rdata("dfb", type)) == 0;
            if (c == NULL && !fallback)
                fail_msg("%s: answer %s is neither a cluster nor the fallback", what, r.answer);
            if (c && strcmp(admin_state(admin, cl), "DOWN") == 0)
                fail_msg("%s: answered DOWN cluster %s (%s)", what, cl, r.answer);
            if (fallback && (t ? any_up6 : any_up4))
                fail_msg("%s: fallback answered while a cluster with an %s entry is up", what, type);
        }
}

static void test_damped_invariants(void **state)
{
    (void)state;
    reset();
    damped_round("");
    damped_round("bj-tel DOWN\nsh-uni DOWN\n");
    damped_round("bj-tel DOWN\nbj-uni DOWN\njl-tel BUSY\n");
    damped_round("* BUSY\n");
    damped_round("* BUSY\nbj-tel DOWN\nsh-tel DOWN\nlon DOWN\n");
    damped_round("* DOWN\ngz-tel UP\n");
    damped_round("* DOWN\n");
    /* Heavy measured load on a home cluster: still never empty or DOWN. */
    set_util("bj-tel", 150);
    set_util("jl-tel", 120);
    expect_measured("bj-tel BUSY\njl-tel BUSY\n");
    damped_measured_round();
    reset();
}

/* ---- explain and status ---- */

/* needles must appear in this order. */
static void expect_in_order(const char *what, const char *text, const char *const *needles, size_t n)
{
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        const char *q = strstr(p, needles[i]);
        if (q == NULL)
            fail_msg("%s: expected '%s' (item %zu) after the previous ones in\n%s", what, needles[i],
                     i, text);
        p = q + strlen(needles[i]);
    }
}

/* The answer lines of an explanation: "A\t10.0.1.1" -> "10.0.1.1". */
static void explain_answer(const char *text, char *out, size_t size)
{
    out[0] = '\0';
    size_t o = 0;
    for (const char *p = text; (p = strstr(p, "  answer     ")) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *tab = eol ? eol : p + strlen(p);
        while (tab > p && tab[-1] != '\t')
            tab--;
        int w = snprintf(out + o, size - o, "%s%.*s", o ? ", " : "", (int)((eol ? eol : p + strlen(p)) - tab), tab);
        if (w > 0)
            o += (size_t)w;
    }
}

static void test_explain_offline(void **state)
{
    (void)state;
    char out[65536];
    const char *args[] = {"steerdns", "explain", "-c", srv.config, "--offline",
                          "--client", "198.18.1.0/24", "app.example.test", "A", NULL};
    BB_EXPECT_INT("explain --offline: exit", bb_run(out, sizeof(out), args), 0);
    static const char *const order[] = {
        "offline:",
        "geo: nets: override \"198.18.1.0/24\"",
        "steer: client subnet from ECS: region=beijing (region), carrier=telecom (address)",
        "steer: mode literal",
        "steer: candidates (8, home tier: region+carrier, 1 home; then nearest first, +1000 km for another carrier):",
        "1. bj-tel", "home", "distance=0km", "state=UNKNOWN",
        "2. jl-tel", "distance=",
        "3. bj-uni", "4. sh-tel", "5. gz-tel", "6. sh-uni", "7. gz-mob", "8. lon",
        "steer: rule 1 (literal): least-loaded idle home cluster bj-tel",
        "steer: TTL 7s",
        "answer: rcode NOERROR",
        "10.0.1.1",
        "ECS scope  /24",
    };
    expect_in_order("explain --offline (Beijing telecom)", out, order, sizeof(order) / sizeof(order[0]));
    /* Shanghai: its neighbour before the nearer Beijing. */
    const char *args2[] = {"steerdns", "explain", "-c", srv.config, "--offline",
                           "--client", "198.18.4.0/24", "app.example.test", "AAAA", NULL};
    BB_EXPECT_INT("explain --offline (Shanghai): exit", bb_run(out, sizeof(out), args2), 0);
    static const char *const order2[] = {
        "home tier: region+carrier", "1. sh-tel", "2. sh-uni", "3. gz-tel", "4. gz-mob",
        "5. bj-tel", "6. bj-uni", "7. jl-tel", "8. lon", "2001:db8:3::1",
    };
    expect_in_order("explain --offline (Shanghai telecom)", out, order2, sizeof(order2) / sizeof(order2[0]));
    /* An ECS prefix longer than the server's limit (/25 cut to /24): the
     * geo trace asks every source about the same cut address the result
     * comes from, agrees with it, and the scope is at most the limit. */
    bb_t cut;
    bb_prepare(&cut,
               "server: {listen: [127.0.0.1], port: 0}\n"
               "regions: {beijing: {lat: 39.9, lon: 116.4}}\n"
               "geo:\n"
               "  carriers: {telecom: {}, unicom: {}}\n"
               "  nets:\n"
               "    \"198.51.100.0/25\": {region: beijing, carrier: telecom}\n"
               "    \"198.51.100.128/25\": {region: beijing, carrier: unicom}\n"
               "clusters:\n"
               "  bj-telecom: {region: beijing, carrier: telecom, entry: [192.0.2.11],\n"
               "               servers: {s: {capacity: 1Gbit, check: {kind: tcp, address: \"127.0.0.1:9\"}}}}\n"
               "  bj-unicom: {region: beijing, carrier: unicom, entry: [192.0.2.12],\n"
               "              servers: {s: {capacity: 1Gbit, check: {kind: tcp, address: \"127.0.0.1:9\"}}}}\n"
               "zones:\n"
               "  - origin: example.org\n"
               "    soa: \"ns1 hostmaster 1 3600 600 604800 60\"\n"
               "    ns: [ns1]\n"
               "    records:\n"
               "      ns1: \"A 192.0.2.53\"\n"
               "      dl: {steer: {}}\n");
    const char *args3[] = {"steerdns", "explain", "-c", cut.config, "--offline", "--client",
                           "198.51.100.128/25", "dl.example.org", NULL};
    BB_EXPECT_INT("explain /25 beyond the ECS limit: exit", bb_run(out, sizeof(out), args3), 0);
    static const char *const order3[] = {
        "geo: client 198.51.100.0/24 (24 bits given)",
        "geo: nets: override \"198.51.100.0/25\"",
        "region beijing, carrier telecom",
        "geo: carrier telecom: set by the nets override \"198.51.100.0/25\"",
        "geo: region beijing: set by the nets override \"198.51.100.0/25\"",
        ("geo: result: region beijing, carrier telecom, country -, AS0, location -, scope /24 "
         "(decided by a /25, capped at the server's ECS limit /24)"),
        "steer: client subnet from ECS: region=beijing (region), carrier=telecom (address)",
        "192.0.2.11",
        "ECS scope  /24",
    };
    expect_in_order("explain 198.51.100.128/25", out, order3, sizeof(order3) / sizeof(order3[0]));
    if (strstr(out, "no override holds") || strstr(out, "region none") || strstr(out, "scope /25"))
        fail_msg("explain 198.51.100.128/25: the geo trace contradicts its result:\n%s", out);
    bb_stop(&cut);
    /* The line hierarchy's tier names. */
    static const struct {
        const char *client, *tier;
    } tiers[] = {
        {"198.18.3.0/24", "home tier: region,"},
        {"198.18.6.0/24", "home tier: carrier in country,"},
        {"198.19.5.0/24", "home tier: carrier,"},
        {"2001:250::/32", "home tier: country,"},
        {"192.0.2.0/24", "home tier: default,"},
    };
    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        const char *a[] = {"steerdns", "explain", "-c", srv.config, "--offline",
                           "--client", tiers[i].client, "app.example.test", NULL};
        BB_EXPECT_INT("explain --offline: exit", bb_run(out, sizeof(out), a), 0);
        char what[100];
        snprintf(what, sizeof(what), "explain --offline --client %s", tiers[i].client);
        bb_expect_contains(what, out, tiers[i].tier);
    }
}

/* Live: the running server's states; the answer explain prints is the one
 * the wire gives. */
static void test_explain_live(void **state)
{
    (void)state;
    reset();
    set_admin("bj-tel BUSY\n");
    char out[65536], ans[512];
    const char *args[] = {"steerdns", "explain", "-c", srv.config, "--client", "198.18.1.0/24",
                          "app.example.test", "A", NULL};
    BB_EXPECT_INT("explain (live): exit", bb_run(out, sizeof(out), args), 0);
    static const char *const order[] = {
        "steer: candidates (8, home tier: region+carrier, 1 home; then nearest first, +1000 km for another carrier):",
        "1. bj-tel", "state=BUSY util=",
        "2. jl-tel", "state=IDLE util=",
        "steer: rule 2 (literal): no idle home cluster; first idle cluster in candidate order: jl-tel",
        "steer: TTL 60s",
        "10.0.2.1",
    };
    expect_in_order("explain (live, bj-tel BUSY)", out, order, sizeof(order) / sizeof(order[0]));
    if (strstr(out, "offline:"))
        fail_msg("explain with a running server answered offline:\n%s", out);

    /* explain and the wire agree, client by client, state by state. */
    static const char *const admins[] = {"", "bj-tel BUSY\n", "* BUSY\n", "* DOWN\n",
                                         "sh-tel BUSY\nsh-uni BUSY\n"};
    static const struct {
        const char *name, *type, *client;
    } qs[] = {
        {"app", "A", "198.18.1.0/24"},  {"app", "AAAA", "198.18.1.0/24"},
        {"app", "A", "198.18.4.0/24"},  {"app", "A", "198.18.6.0/24"},
        {"app", "A", "2001:250::/32"},  {"app", "AAAA", "198.18.2.0/24"},
        {"fb", "A", "198.18.1.0/24"},   {"fb", "AAAA", "198.18.1.0/24"},
        {"dflt", "A", "192.0.2.0/24"},  {"v4only", "AAAA", "198.18.1.0/24"},
        {"dmp", "A", "198.18.5.0/24"},  {"app", "A", "127.0.3.1"},
    };
    for (size_t k = 0; k < sizeof(admins) / sizeof(admins[0]); k++) {
        set_admin(admins[k]);
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            char qname[128];
            qname_of(qs[i].name, qname, sizeof(qname));
            const char *a[] = {"steerdns", "explain", "-c", srv.config, "--client", qs[i].client,
                               qname, qs[i].type, NULL};
            BB_EXPECT_INT("explain (live): exit", bb_run(out, sizeof(out), a), 0);
            explain_answer(out, ans, sizeof(ans));
            bool ecs = strchr(qs[i].client, '/') != NULL;
            res_t r;
            ask(qname, qs[i].type, ecs ? qs[i].client : NULL, ecs ? NULL : qs[i].client, false, &r);
            char what[1400];
            snprintf(what, sizeof(what), "explain vs wire: %s %s client %s, admin '%s'", qname,
                     qs[i].type, qs[i].client, admins[k]);
            for (char *p = what; *p; p++)
                if (*p == '\n')
                    *p = ';';
            BB_EXPECT_STR(what, ans, r.answer);
        }
    }
    /* The rules' own words. */
    set_admin("* DOWN\n");
    const char *a4[] = {"steerdns", "explain", "-c", srv.config, "--client", "198.18.1.0/24",
                        "fb.example.test", NULL};
    BB_EXPECT_INT("explain (all DOWN): exit", bb_run(out, sizeof(out), a4), 0);
    bb_expect_contains("explain (all DOWN, fallback)", out, "steer: rule 4: every cluster is DOWN: fallback addresses");
    const char *a4c[] = {"steerdns", "explain", "-c", srv.config, "--client", "198.18.1.0/24",
                         "fb4.example.test", "AAAA", NULL};
    BB_EXPECT_INT("explain (all DOWN, IPv4 fallback): exit", bb_run(out, sizeof(out), a4c), 0);
    bb_expect_contains("explain (all DOWN, IPv4-only fallback, AAAA)", out,
                       "steer: rule 4: every cluster is DOWN and the fallback has no IPv6 address: "
                       "first candidate with one, bj-tel");
    const char *a4b[] = {"steerdns", "explain", "-c", srv.config, "--client", "198.18.1.0/24",
                         "app.example.test", NULL};
    bb_run(out, sizeof(out), a4b);
    bb_expect_contains("explain (all DOWN, no fallback)", out,
                    "steer: rule 4: every cluster is DOWN and no fallback: first candidate bj-tel");
    set_admin("* BUSY\n");
    bb_run(out, sizeof(out), a4b);
    bb_expect_contains("explain (all BUSY)", out,
                    "steer: rule 3 (literal): every cluster busy; least-loaded cluster that is up: sh-uni");
    reset();
}

static void test_status(void **state)
{
    (void)state;
    reset();
    set_admin("bj-tel BUSY draining\njl-tel DOWN\n");
    char out[65536];
    const char *args[] = {"steerdns", "status", "-c", srv.config, NULL};
    BB_EXPECT_INT("status: exit", bb_run(out, sizeof(out), args), 0);
    for (size_t i = 0; i < NCL; i++) {
        char want[200];
        snprintf(want, sizeof(want), "cluster %s state=%s ", clusters[i].name,
                 admin_state(cur_admin, clusters[i].name));
        bb_expect_contains("status: cluster line", out, want);
        snprintf(want, sizeof(want), "server %s/s1 state=%s ", clusters[i].name,
                 admin_state(cur_admin, clusters[i].name));
        bb_expect_contains("status: server line", out, want);
    }
    bb_expect_contains("status: admin BUSY reason", out, "admin=yes reason=\"admin: BUSY\" detail=\"admin file: BUSY: draining (measured: IDLE)\"");
    bb_expect_contains("status: admin DOWN reason", out, "reason=\"admin: DOWN\"");
    bb_expect_contains("status: measured", out, "server sh-uni/s1 state=IDLE util=");
    bb_expect_contains("status: kind", out, "kind=prometheus reason=\"below threshold\"");

    /* A real failure, measured by the poller: the endpoint answers 503. */
    set_admin("");
    httpfix_set_status(fix, "/m/lon", 503);
    expect_measured("lon DOWN (HTTP 503)\n");
    BB_EXPECT_INT("status: exit", bb_run(out, sizeof(out), args), 0);
    bb_expect_contains("status: HTTP failure", out, "server lon/s1 state=DOWN");
    const char *lon = strstr(out, "server lon/s1 ");
    assert_non_null(lon);
    char line[600];
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(lon, "\n"), lon);
    bb_expect_contains("status: HTTP failure reason", line, "reason=\"HTTP error status\" detail=\"HTTP status 503");
    /* London's clients go elsewhere: every other cluster costs the carrier
     * penalty; Beijing is the nearest region. */
    static const scase_t lon_down[] = {
        {"app", "A", NULL, "127.0.1.1", "bj-tel", -1, 60},
        {"app", "AAAA", NULL, "127.0.1.1", "bj-tel", -1, 60},
    };
    RUN(lon_down);
    httpfix_set_status(fix, "/m/lon", 200);
    expect_measured("");
    static const scase_t lon_back[] = {{"app", "A", NULL, "127.0.1.1", "lon", -1, 60}};
    RUN(lon_back);
    reset();
}

/* A reload keeps the measured and forced states: the first answers of
 * the new configuration already see them (no moment of UNKNOWN). */
static void test_reload_keeps_states(void **state)
{
    (void)state;
    reset();
    set_admin("bj-tel BUSY\n");
    char *text = strdup(config_text());
    char *p = strstr(text, "ttl: 60s");
    assert_non_null(p);
    memcpy(p, "ttl: 61s", 8);
    assert_true(bb_reload(&srv, text, true));
    static const scase_t after[] = {
        {"app", "A", "198.18.1.0/24", NULL, "jl-tel", 24, 61},
        {"app", "A", "198.18.3.0/24", NULL, "bj-uni", 24, 61},
        {"app", "A", "2001:250::/32", NULL, "sh-uni", 31, 61},
    };
    RUN(after);
    /* And back to the original file. */
    assert_true(bb_reload(&srv, config_text(), true));
    static const scase_t back[] = {{"app", "A", "198.18.1.0/24", NULL, "jl-tel", 24, 60}};
    RUN(back);
    free(text);
    reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hierarchy),
        cmocka_unit_test(test_least_loaded_follows_load),
        cmocka_unit_test(test_busy_home),
        cmocka_unit_test(test_busy_measured),
        cmocka_unit_test(test_all_busy_all_down),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_damped_invariants),
        cmocka_unit_test(test_explain_offline),
        cmocka_unit_test(test_explain_live),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_reload_keeps_states),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
