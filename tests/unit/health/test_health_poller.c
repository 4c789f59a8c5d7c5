/*
 * test_health_poller.c - black-box tests of the real poller: a topology
 * built from YAML text points at fixture HTTP servers (httpfix) whose
 * counters and answers the test changes while it runs; the test reads the
 * published tables exactly as a DNS worker would.
 *
 * No fixed sleeps: every wait is for a condition on the published table
 * (woken by the poller's notify callback) with a deadline; on a timeout
 * the poller's status is printed with the failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/yconf.h"
#include "health/health.h"
#include "tests/fixtures/httpfix.h"

/* Under valgrind or a sanitizer everything is slower: deadlines scale. */
static double slow = 1.0;

static httpfix_t *fix;

/* ---- waiting on publications ---- */

static pthread_mutex_t pub_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pub_cv = PTHREAD_COND_INITIALIZER;
static uint64_t pub_count;

static void on_notify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pub_mu);
    pub_count++;
    pthread_cond_broadcast(&pub_cv);
    pthread_mutex_unlock(&pub_mu);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for the next publication, or 20 ms, whichever comes first. */
static void wait_publication(void)
{
    pthread_mutex_lock(&pub_mu);
    uint64_t seen = pub_count;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (pub_count == seen)
        if (pthread_cond_timedwait(&pub_cv, &pub_mu, &ts) != 0) break;
    pthread_mutex_unlock(&pub_mu);
}

static void status_to_stderr(health_t *h, const health_topo_t *t)
{
    trace_t tr = TRACE_FILE(stderr);
    health_status_write(h, t, &tr);
}

/* Wait until cond holds; fail with the status after timeout_ms. */
#define WAIT_UNTIL(h, topo, cond, timeout_ms, ...)                                                 \
    do {                                                                                           \
        uint64_t dl_ = mono_ms() + (uint64_t)((timeout_ms)*slow);                                  \
        while (!(cond)) {                                                                          \
            if (mono_ms() > dl_) {                                                                 \
                status_to_stderr((h), (topo));                                                     \
                fail_msg("timeout waiting for " __VA_ARGS__);                                      \
            }                                                                                      \
            wait_publication();                                                                    \
        }                                                                                          \
    } while (0)

#define TB(topo)          health_table_acquire(topo)
#define SSTATE(topo, id)  health_server_state(TB(topo), (id))
#define SREASON(topo, id) health_server_reason(TB(topo), (id))
#define CSTATE(topo, id)  health_cluster_state(TB(topo), (id))

/* Wait for n new measurements (or state changes) of server id. */
static void wait_samples(health_t *h, health_topo_t *t, uint32_t id, uint64_t n)
{
    uint64_t start = health_server_seq(TB(t), id);
    WAIT_UNTIL(h, t, health_server_seq(TB(t), id) >= start + n, 5000, "%llu samples of server %u",
               (unsigned long long)n, id);
}

/* ---- building topologies from YAML text ---- */

typedef struct topo {
    arena_t *a;
    health_topo_t *t;
} topo_t;

/* One region and one cluster `c` whose servers follow. */
#define ONE_CLUSTER                                                                              \
    "regions: {r: {lat: 0, lon: 0}}\n"                                                           \
    "clusters:\n"                                                                                \
    "  c:\n"                                                                                     \
    "    region: r\n"                                                                            \
    "    carrier: telecom\n"                                                                     \
    "    entry: 192.0.2.1\n"                                                                     \
    "    servers:\n"

static topo_t build(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static topo_t build(const char *fmt, ...)
{
    char *text = malloc(1 << 20);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, 1 << 20, fmt, ap);
    va_end(ap);
    topo_t r = {arena_new(), NULL};
    diag_list_t d;
    diag_init(&d);
    const yconf_node_t *root = NULL;
    int rc = yconf_parse_buffer(r.a, "test.yaml", text, strlen(text), &d, &root);
    if (rc == 0) {
        health_config_in_t in = {yconf_map_get(root, "regions"), yconf_map_get(root, "clusters"),
                                 yconf_map_get(root, "health"), NULL};
        rc = health_topo_build(&in, r.a, &d, &r.t);
    }
    if (rc != 0) {
        diag_print(&d, stderr);
        fprintf(stderr, "%s\n", text);
        fail_msg("config did not build");
    }
    diag_clear(&d);
    free(text);
    return r;
}

static health_t *start_poller(health_topo_t *t)
{
    health_t *h;
    assert_int_equal(health_new(&h), 0);
    health_set_notify(h, on_notify, NULL);
    assert_int_equal(health_start(h), 0);
    if (t) assert_int_equal(health_apply(h, t), 0);
    return h;
}

static char *url(const char *path)
{
    static char bufs[16][256];
    static int next;
    char *b = bufs[next++ % 16];
    return httpfix_url(fix, path, b, 256);
}

/* 80 Mbit/s = 10 MB/s: a byte counter growing at util * 1e7 per second. */
#define CAP_BYTES_PER_S 1e7
#define CAP             "80Mbit"

static void set_util(const char *path, double util)
{
    httpfix_set_rate(fix, path, util * CAP_BYTES_PER_S);
}

static const char *EXPO = "# HELP node_network_transmit_bytes_total Network device statistic.\n"
                          "# TYPE node_network_transmit_bytes_total counter\n"
                          "node_network_transmit_bytes_total{device=\"lo\"} {counter*5}\n"
                          "node_network_transmit_bytes_total{device=\"eth0\"} {counter}\n";

static const char *HEALTH_FAST = "health:\n"
                                 "  interval: 50ms\n"
                                 "  timeout: 40ms\n"
                                 "  fall: 2\n"
                                 "  rise: 1\n";

/* ---- tests ---- */

static void test_hysteresis(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/hy", EXPO);
    set_util("/hy", 0.50);
    topo_t t = build(ONE_CLUSTER
                     "      s: {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
                     "health: {interval: 200ms, threshold: 90%%, return_threshold: 70%%,\n"
                     "         busy_after: 3, idle_after: 2, fall: 3}\n",
                     url("/hy"));
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE at 50%%");
    double u = health_server_util(TB(t.t), 0);
    /* eth0, not the five times faster lo: 50%% (the margin is for timing
     * noise on a loaded machine; lo would read 250%%). */
    if (fabs(u - 0.5) > 0.15) fail_msg("utilisation %.3f, expected 0.50", u);

    /* 90%% +- 10%% noise while IDLE: busy_after 3 never sees three in a
     * row at or above 90%%. */
    health_stats_t st0, st1;
    health_get_stats(h, &st0);
    for (int i = 0; i < 8; i++) {
        set_util("/hy", i % 2 ? 1.00 : 0.78);
        wait_samples(h, t.t, 0, 1);
        if (getenv("HEALTH_TEST_LOG"))
            fprintf(stderr, "%llu set %.2f measured %.4f %s seq %llu sample %llu\n",
                    (unsigned long long)mono_ms(), i % 2 ? 1.00 : 0.78,
                    health_server_util(TB(t.t), 0), health_state_str(SSTATE(t.t, 0)),
                    (unsigned long long)health_server_seq(TB(t.t), 0),
                    (unsigned long long)health_server_sample_ms(TB(t.t), 0));
        assert_int_equal(SSTATE(t.t, 0), HEALTH_IDLE);
    }
    /* Clearly above: BUSY after three samples. */
    set_util("/hy", 1.20);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_BUSY, 3000, "BUSY at 120%%");
    assert_true(health_server_util(TB(t.t), 0) > 1.1);
    /* 90%% +- 10%% noise while BUSY: never below the 70%% return threshold. */
    for (int i = 0; i < 8; i++) {
        set_util("/hy", i % 2 ? 0.82 : 1.00);
        wait_samples(h, t.t, 0, 1);
        assert_int_equal(SSTATE(t.t, 0), HEALTH_BUSY);
    }
    /* Below the return threshold: back to IDLE. */
    set_util("/hy", 0.40);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE at 40%%");
    health_get_stats(h, &st1);
    /* Exactly two transitions in all that noise: IDLE->BUSY->IDLE. */
    assert_int_equal(st1.transitions - st0.transitions, 2);
    assert_int_equal(st1.failures - st0.failures, 0);
    assert_int_equal(CSTATE(t.t, 0), HEALTH_IDLE);
    health_stop(h);
    arena_free(t.a);
}

/* Every way an endpoint can be bad ends in DOWN with its reason. */
static void test_down_reasons(void **state)
{
    (void)state;
    httpfix_set(fix, "/timeout", &(httpfix_resp_t){.body = "x 1\n", .delay_ms = 2000});
    httpfix_set(fix, "/html",
                &(httpfix_resp_t){.content_type = "text/html",
                                  .body = "<html><body>Welcome to nginx!</body></html>"});
    httpfix_set(fix, "/html-plain", &(httpfix_resp_t){.body = "\n  <!DOCTYPE html>\n<html>"});
    httpfix_set(
        fix, "/garbage",
        &(httpfix_resp_t){.content_type = "application/json", .body = "{\"tx_bps\": 12,, }"});
    httpfix_set_body(fix, "/missing", "node_network_transmit_bytes_total{device=\"lo\"} 5\n");
    httpfix_set(fix, "/huge", &(httpfix_resp_t){.huge_bytes = 64u * 1024 * 1024});
    httpfix_set(fix, "/503", &(httpfix_resp_t){.status = 503, .body = "busy"});
    httpfix_set(fix, "/drop", &(httpfix_resp_t){.drop = true});
    httpfix_set(fix, "/negative", &(httpfix_resp_t){.body = "{\"tx_bps\": -5}"});
    httpfix_set_body(fix, "/nan", "node_network_transmit_bytes_total{device=\"eth0\"} NaN\n");
    httpfix_set_body(fix, "/badsyntax", "node_network_transmit_bytes_total{device=\"eth0\" 1\n");
    httpfix_set_body(fix, "/nofield", "{\"rx_bps\": 5}");
    httpfix_set_body(fix, "/old", "node_network_transmit_bytes_total{device=\"eth0\"} 5 1000\n");
    httpfix_set_body(fix, "/resets", EXPO);
    httpfix_set_counter(fix, "/resets", 1e15);
    httpfix_set_rate(fix, "/resets", -1e6); /* goes down on every poll: never a rate */
    char sfile[] = "/tmp/health-test-state-XXXXXX";
    int fd = mkstemp(sfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "DOWN maintenance\n", 17), 17);
    close(fd);
    topo_t t =
        build(ONE_CLUSTER
              "      timeout:  {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      html:     {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      html2:    {capacity: " CAP ", check: {kind: json, url: \"%s\"}}\n"
              "      garbage:  {capacity: " CAP ", check: {kind: json, url: \"%s\"}}\n"
              "      missing:  {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      huge:     {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      s503:     {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      drop:     {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      negative: {capacity: " CAP ", check: {kind: json, url: \"%s\"}}\n"
              "      nan:      {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      syntax:   {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      nofield:  {capacity: " CAP ", check: {kind: json, url: \"%s\"}}\n"
              "      refused:  {capacity: " CAP
              ", check: {kind: prometheus, url: \"http://127.0.0.1:1/m\"}}\n"
              "      tcpdown:  {capacity: " CAP ", check: {kind: tcp, address: \"127.0.0.1:1\"}}\n"
              "      file:     {capacity: " CAP ", check: {kind: file, path: \"%s\"}}\n"
              "      old:      {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
              "      resets:   {capacity: " CAP ", check: {kind: prometheus, url: \"%s\", "
              "stale_after: 300ms}}\n"
              "health: {interval: 50ms, timeout: 40ms, fall: 2, max_body: 65536}\n",
              url("/timeout"), url("/html"), url("/html-plain"), url("/garbage"), url("/missing"),
              url("/huge"), url("/503"), url("/drop"), url("/negative"), url("/nan"),
              url("/badsyntax"), url("/nofield"), sfile, url("/old"), url("/resets"));
    health_t *h = start_poller(t.t);
    static const health_reason_t want[] = {
        HEALTH_R_TIMEOUT,       HEALTH_R_HTML,           HEALTH_R_HTML,        HEALTH_R_BAD_JSON,
        HEALTH_R_NO_METRIC,     HEALTH_R_BODY_TOO_LARGE, HEALTH_R_HTTP_STATUS, HEALTH_R_TRANSPORT,
        HEALTH_R_NEGATIVE_RATE, HEALTH_R_BAD_VALUE,      HEALTH_R_PARSE,       HEALTH_R_NO_FIELD,
        HEALTH_R_CONNECT,       HEALTH_R_CONNECT,        HEALTH_R_FILE_DOWN,   HEALTH_R_STALE,
        HEALTH_R_STALE,
    };
    uint32_t n = health_topo_servers(t.t);
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (uint32_t i = 0; i < n; i++)
        WAIT_UNTIL(h, t.t, SSTATE(t.t, i) == HEALTH_DOWN && SREASON(t.t, i) == want[i], 5000,
                   "server %s DOWN with reason '%s'", health_topo_server(t.t, i)->name,
                   health_reason_str(want[i]));
    WAIT_UNTIL(h, t.t, CSTATE(t.t, 0) == HEALTH_DOWN, 2000, "cluster DOWN");
    assert_int_equal(health_cluster_down(TB(t.t), 0), n);
    /* The status shows why, with the detail. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    trace_t tr = TRACE_FILE(mem);
    health_status_write(h, t.t, &tr);
    fclose(mem);
    assert_non_null(strstr(buf, "server c/huge state=DOWN"));
    assert_non_null(strstr(buf, "response larger than max_body 65536 bytes"));
    assert_non_null(strstr(buf, "HTTP status 503"));
    assert_non_null(strstr(buf, "HTML instead of metrics (Content-Type text/html)"));
    /* A body that only looks like HTML says so, not that it was HTML by its
     * type. */
    if (strstr(buf, "body starts with '<' (Content-Type text/plain") == NULL)
        fail_msg("expected the detail \"body starts with '<' (Content-Type text/plain...)\" for "
                 "c/html2; status:\n%s", buf);
    /* Quotes inside reasons are shown as ' (the reason itself is quoted). */
    assert_non_null(strstr(buf, "no series node_network_transmit_bytes_total{device='eth0'}"));
    assert_non_null(strstr(buf, "state file says DOWN: maintenance"));
    assert_non_null(strstr(buf, "cluster c state=DOWN"));
    free(buf);
    health_stop(h);
    arena_free(t.a);
    unlink(sfile);
}

/* The status of server 0 of t (its whole line). */
static void server_line(health_t *h, const health_topo_t *t, char *out, size_t size)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    trace_t tr = TRACE_FILE(mem);
    health_status_write(h, t, &tr);
    fclose(mem);
    const char *l = strstr(buf, "\nserver ");
    l = l ? l + 1 : "";
    size_t n = strcspn(l, "\n");
    snprintf(out, size, "%.*s", (int)n, l);
    free(buf);
}

/* No usable sample for stale_after makes a server DOWN before `fall`
 * failures do: its reason is then `stale data`, with the last failure in
 * the detail, and it stays so while the polls keep failing. */
static void test_stale_reason(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/stale", "{\"tx_bps\": 1e6}");
    httpfix_set_status(fix, "/stale", 200);
    topo_t t = build(ONE_CLUSTER
                     "      s: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "health: {interval: 200ms, fall: 50, rise: 1}\n",
                     url("/stale"));
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE");
    httpfix_set_status(fix, "/stale", 404);
    /* 50 failures take 10 s; stale_after (3 x 200 ms) comes first. */
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_DOWN, 5000, "DOWN through staleness");
    char line[1024];
    server_line(h, t.t, line, sizeof(line));
    if (SREASON(t.t, 0) != HEALTH_R_STALE || strstr(line, "reason=\"stale data\"") == NULL ||
        strstr(line, "no usable sample for more than 600ms; last: HTTP status 404") == NULL)
        fail_msg("expected reason 'stale data' and detail 'no usable sample for more than 600ms; "
                 "last: HTTP status 404 ...', got reason '%s':\n%s",
                 health_reason_str(SREASON(t.t, 0)), line);
    /* More failures (fewer than `fall`) do not replace the reason. */
    uint64_t hits = httpfix_hits(fix, "/stale");
    WAIT_UNTIL(h, t.t, httpfix_hits(fix, "/stale") >= hits + 3, 5000, "three more polls");
    /* The third poll's answer may still be on its way: wait for the
     * fourth request, by then the third has been counted. */
    WAIT_UNTIL(h, t.t, httpfix_hits(fix, "/stale") >= hits + 4, 5000, "four more polls");
    server_line(h, t.t, line, sizeof(line));
    if (SSTATE(t.t, 0) != HEALTH_DOWN || SREASON(t.t, 0) != HEALTH_R_STALE ||
        strstr(line, "last: HTTP status 404") == NULL)
        fail_msg("after more failed polls: expected DOWN, 'stale data', got %s '%s':\n%s",
                 health_state_str(SSTATE(t.t, 0)), health_reason_str(SREASON(t.t, 0)), line);
    /* A usable sample ends it. */
    httpfix_set_status(fix, "/stale", 200);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE again");
    health_stop(h);
    arena_free(t.a);
}

static void test_counter_reset(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/cr", EXPO);
    httpfix_set_counter(fix, "/cr", 5e12);
    set_util("/cr", 0.5);
    topo_t t = build(ONE_CLUSTER
                     "      s: {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"
                     "%s",
                     url("/cr"), HEALTH_FAST);
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE");
    health_stats_t st0, st1;
    health_get_stats(h, &st0);
    /* The exporter restarts: its counter starts again near 0. */
    httpfix_set_counter(fix, "/cr", 0);
    WAIT_UNTIL(h, t.t, SREASON(t.t, 0) == HEALTH_R_COUNTER_RESET, 3000, "reason counter reset");
    assert_int_equal(SSTATE(t.t, 0), HEALTH_IDLE);
    wait_samples(h, t.t, 0, 2);
    assert_int_equal(SSTATE(t.t, 0), HEALTH_IDLE);
    assert_int_equal(SREASON(t.t, 0), HEALTH_R_BELOW);
    double u = health_server_util(TB(t.t), 0);
    if (fabs(u - 0.5) > 0.1) fail_msg("utilisation after the reset %.3f, expected 0.50", u);
    health_get_stats(h, &st1);
    assert_int_equal(st1.failures, st0.failures); /* a reset is not a failure */
    assert_int_equal(st1.transitions, st0.transitions);
    health_stop(h);
    arena_free(t.a);
}

static void test_cluster_state(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/j1", "{\"tx_bps\": 9.5e7}");
    httpfix_set_body(fix, "/j2", "{\"net\": {\"eth0\": {\"tx\": 380}}}");
    httpfix_set_body(fix, "/j3", "{\"tx_bps\": 5e7}");
    topo_t t = build("regions: {r: {lat: 0, lon: 0}}\n"
                     "clusters:\n"
                     "  c:\n"
                     "    region: r\n"
                     "    carrier: telecom\n"
                     "    entry: [192.0.2.1, \"2001:db8::1\"]\n"
                     "    servers:\n"
                     "      a: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "      b: {capacity: 400Mbit, check: {kind: json, url: \"%s\", "
                     "field: net.eth0.tx, unit: Mbits}}\n"
                     "      c: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "%s",
                     url("/j1"), url("/j2"), url("/j3"), HEALTH_FAST);
    health_t *h = start_poller(t.t);
    /* a BUSY (95%%), b IDLE (95%% of 400 is 380: BUSY too), c IDLE (50%%). */
    WAIT_UNTIL(h, t.t,
               SSTATE(t.t, 0) == HEALTH_BUSY && SSTATE(t.t, 1) == HEALTH_BUSY &&
                   SSTATE(t.t, 2) == HEALTH_IDLE,
               3000, "a, b BUSY and c IDLE");
    WAIT_UNTIL(h, t.t, CSTATE(t.t, 0) == HEALTH_IDLE && health_cluster_idle(TB(t.t), 0) == 1, 2000,
               "cluster IDLE with one idle server");
    assert_int_equal(health_cluster_busy(TB(t.t), 0), 2);
    /* (0.95*100 + 0.95*400 + 0.5*100) / 600 */
    assert_float_equal(health_cluster_util(TB(t.t), 0), (95.0 + 380 + 50) / 600, 1e-6);
    /* c becomes busy too: the cluster is BUSY. */
    httpfix_set_body(fix, "/j3", "{\"tx_bps\": 9.9e7}");
    WAIT_UNTIL(h, t.t, CSTATE(t.t, 0) == HEALTH_BUSY, 3000, "cluster BUSY");
    /* b goes down: the cluster's utilisation counts only servers up. */
    httpfix_set_status(fix, "/j2", 500);
    WAIT_UNTIL(h, t.t, health_cluster_down(TB(t.t), 0) == 1, 3000, "one server down");
    WAIT_UNTIL(h, t.t, fabs(health_cluster_util(TB(t.t), 0) - (95.0 + 99) / 200) < 1e-6, 2000,
               "utilisation of the servers up");
    /* The sequence number moves with every sample of any server. */
    uint64_t s0 = health_cluster_seq(TB(t.t), 0);
    wait_samples(h, t.t, 0, 2);
    assert_true(health_cluster_seq(TB(t.t), 0) >= s0 + 2);
    /* All down. */
    httpfix_set_status(fix, "/j1", 500);
    httpfix_set_status(fix, "/j3", 500);
    WAIT_UNTIL(h, t.t, CSTATE(t.t, 0) == HEALTH_DOWN, 3000, "cluster DOWN");
    assert_float_equal(health_cluster_util(TB(t.t), 0), 1.0, 0);
    health_stop(h);
    arena_free(t.a);
}

/* Write content to path the way editors and deploy tools do: a new file
 * renamed over the old one. */
static void write_file(const char *path, const char *content)
{
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void test_admin_file(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/ad1", "{\"tx_bps\": 1e7}");
    httpfix_set_body(fix, "/ad2", "{\"tx_bps\": 1e7}");
    char dir[] = "/tmp/health-admin-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char admin[600];
    snprintf(admin, sizeof(admin), "%s/admin.state", dir);
    topo_t t =
        build("regions: {r: {lat: 0, lon: 0}}\n"
              "clusters:\n"
              "  c1:\n"
              "    region: r\n"
              "    carrier: telecom\n"
              "    entry: 192.0.2.1\n"
              "    servers:\n"
              "      s1: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
              "      s2: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
              "  c2:\n"
              "    region: r\n"
              "    carrier: unicom\n"
              "    entry: 192.0.2.2\n"
              "    servers:\n"
              "      s1: {capacity: 100Mbit, check: {kind: tcp, address: \"127.0.0.1:1\"}}\n"
              "health: {interval: 50ms, fall: 2, admin_file: \"%s\", admin_interval: 20ms}\n",
              url("/ad1"), url("/ad2"), admin);
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t,
               SSTATE(t.t, 0) == HEALTH_IDLE && SSTATE(t.t, 1) == HEALTH_IDLE &&
                   SSTATE(t.t, 2) == HEALTH_DOWN,
               3000, "measured states without an admin file");
    assert_int_equal(health_server_flags(TB(t.t), 0) & HEALTH_F_ADMIN, 0);
    /* Maintenance on one server. */
    write_file(admin, "# maintenance window\nc1/s1 DOWN disk swap\n");
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_DOWN && SREASON(t.t, 0) == HEALTH_R_ADMIN_DOWN,
               2000, "c1/s1 forced DOWN");
    assert_true(health_server_flags(TB(t.t), 0) & HEALTH_F_ADMIN);
    assert_int_equal(SSTATE(t.t, 1), HEALTH_IDLE);
    /* Drain a whole cluster, force another UP; the server line wins over
     * the cluster line. */
    write_file(admin, "c1 BUSY draining\nc1/s2 UP\nc2/s1 UP ignore the check\n");
    WAIT_UNTIL(h, t.t,
               SSTATE(t.t, 0) == HEALTH_BUSY && SREASON(t.t, 0) == HEALTH_R_ADMIN_BUSY &&
                   SSTATE(t.t, 2) == HEALTH_IDLE && SREASON(t.t, 2) == HEALTH_R_ADMIN_UP,
               2000, "c1 BUSY, c2/s1 UP");
    assert_int_equal(SSTATE(t.t, 1), HEALTH_IDLE); /* UP keeps the measured IDLE */
    WAIT_UNTIL(h, t.t, CSTATE(t.t, 1) == HEALTH_IDLE, 2000, "cluster c2 IDLE by override");
    /* Status shows the override. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    trace_t tr = TRACE_FILE(mem);
    health_status_write(h, t.t, &tr);
    fclose(mem);
    assert_non_null(strstr(buf, "server c1/s1 state=BUSY"));
    assert_non_null(strstr(buf, "admin=yes"));
    assert_non_null(strstr(buf, "reason=\"admin: BUSY\" detail=\"admin file: BUSY: draining"));
    free(buf);
    /* The file goes away: measured states again. */
    unlink(admin);
    WAIT_UNTIL(h, t.t,
               SSTATE(t.t, 0) == HEALTH_IDLE && SSTATE(t.t, 1) == HEALTH_IDLE &&
                   SSTATE(t.t, 2) == HEALTH_DOWN,
               2000, "measured states after the admin file is removed");
    assert_int_equal(health_server_flags(TB(t.t), 0) & HEALTH_F_ADMIN, 0);
    health_stop(h);
    arena_free(t.a);
    rmdir(dir);
}

static void test_tcp_and_file_checks(void **state)
{
    (void)state;
    char sfile[] = "/tmp/health-test-state-XXXXXX";
    int fd = mkstemp(sfile);
    assert_true(fd >= 0);
    close(fd);
    write_file(sfile, "UP\n");
    topo_t t = build(ONE_CLUSTER
                     "      t: {capacity: 1Gbit, check: {kind: tcp, address: \"127.0.0.1:%u\"}}\n"
                     "      f: {capacity: 1Gbit, check: {kind: file, path: \"%s\"}}\n"
                     "%s",
                     httpfix_port(fix), sfile, HEALTH_FAST);
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE && SSTATE(t.t, 1) == HEALTH_IDLE, 3000,
               "tcp and file checks IDLE");
    assert_int_equal(SREASON(t.t, 0), HEALTH_R_LIVE);
    assert_true(health_server_flags(TB(t.t), 0) & HEALTH_F_NO_RATE);
    write_file(sfile, "busy\n");
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 1) == HEALTH_BUSY, 2000, "file says BUSY");
    write_file(sfile, "# deploy\nDOWN upgrading\n");
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 1) == HEALTH_DOWN && SREASON(t.t, 1) == HEALTH_R_FILE_DOWN, 2000,
               "file says DOWN");
    write_file(sfile, "what\n");
    WAIT_UNTIL(h, t.t, SREASON(t.t, 1) == HEALTH_R_FILE, 2000, "unparsable file");
    unlink(sfile);
    write_file(sfile, "UP\n");
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 1) == HEALTH_IDLE, 2000, "file says UP again");
    health_stop(h);
    arena_free(t.a);
    unlink(sfile);
}

/* Staleness from a frozen exposition timestamp and from counters that
 * never give a rate is covered in test_down_reasons; here, a server that
 * recovers from DOWN needs `rise` usable samples. */
static void test_recovery_rise(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/rise", "{\"tx_bps\": 1e7}");
    httpfix_set_status(fix, "/rise", 503);
    topo_t t = build(ONE_CLUSTER
                     "      s: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "health: {interval: 50ms, fall: 2, rise: 3}\n",
                     url("/rise"));
    health_t *h = start_poller(t.t);
    /* UNKNOWN until the first usable measurement (published and usable). */
    assert_int_equal(SSTATE(t.t, 0), HEALTH_UNKNOWN);
    assert_true(health_state_usable(CSTATE(t.t, 0)));
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_DOWN, 3000, "DOWN after two failures");
    httpfix_set_status(fix, "/rise", 200);
    WAIT_UNTIL(h, t.t, SREASON(t.t, 0) == HEALTH_R_RISING, 3000, "recovering");
    assert_int_equal(SSTATE(t.t, 0), HEALTH_DOWN);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE after rise samples");
    health_stop(h);
    arena_free(t.a);
}

/* Checks reach their endpoint by address (libcurl's name cache never
 * expires for it) and by host name (the cache expires as usual). */
static void test_url_hosts(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/host", "{\"tx_bps\": 1e7}");
    httpfix_set_status(fix, "/host", 200);
    char byname[256];
    const char *byaddr = url("/host");
    const char *p = strstr(byaddr, "127.0.0.1");
    assert_non_null(p);
    snprintf(byname, sizeof(byname), "%.*slocalhost%s", (int)(p - byaddr), byaddr, p + 9);
    topo_t t = build(ONE_CLUSTER
                     "      a: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "      b: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"
                     "health: {interval: 50ms}\n",
                     byaddr, byname);
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE && SSTATE(t.t, 1) == HEALTH_IDLE, 3000,
               "both endpoints polled");
    health_stop(h);
    arena_free(t.a);
}

#define APPLY_FMT                                                                                  \
    "regions: {r: {lat: 0, lon: 0}}\n"                                                             \
    "clusters:\n"                                                                                  \
    "%s"                                                                                           \
    "  c:\n"                                                                                       \
    "    region: r\n"                                                                              \
    "    carrier: telecom\n"                                                                       \
    "    entry: 192.0.2.1\n"                                                                       \
    "    servers:\n"                                                                               \
    "      k1: {capacity: " CAP ", check: {kind: prometheus, url: \"%s\"}}\n"                      \
    "      k2: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}\n"                            \
    "%s"                                                                                           \
    "health: {interval: %s, fall: 2}\n"

static void test_apply_carries_state(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/k1", EXPO);
    set_util("/k1", 0.97);
    httpfix_set_body(fix, "/k2", "{\"tx_bps\": 1e6}");
    httpfix_set_body(fix, "/k2b", "{\"tx_bps\": 1e6}");
    topo_t a = build(APPLY_FMT, "", url("/k1"), url("/k2"), "", "50ms");
    health_t *h = start_poller(a.t);
    WAIT_UNTIL(h, a.t, SSTATE(a.t, 0) == HEALTH_BUSY && SSTATE(a.t, 1) == HEALTH_IDLE, 3000,
               "k1 BUSY, k2 IDLE");
    uint64_t seq = health_server_seq(TB(a.t), 0);
    /* The new topology: a cluster in front (ids shift), k1 unchanged, k2
     * with another URL (a new check: no carry), a new k3; a long interval
     * so that nothing is polled before the assertions. */
    topo_t b = build(
        APPLY_FMT,
        "  front:\n    region: r\n    carrier: mobile\n    entry: 192.0.2.9\n"
        "    servers: {f: {capacity: 1Gbit, check: {kind: json, url: \"http://127.0.0.1:1/\"}}}\n",
        url("/k1"), url("/k2b"),
        "      k3: {capacity: 100Mbit, check: {kind: json, url: \"http://127.0.0.1:1/\"}}\n",
        "10s");
    /* Another poller cannot adopt a topology this one holds. */
    health_t *h2;
    assert_int_equal(health_new(&h2), 0);
    assert_int_equal(health_apply(h2, a.t), -EBUSY);
    health_stop(h2);

    assert_int_equal(health_apply(h, b.t), 0);
    /* The old topology may go now: valgrind/ASan check nobody touches it. */
    arena_free(a.a);
    const health_table_t *tb = TB(b.t);
    assert_true(health_table_seq(tb) >= 1);
    assert_int_equal(health_server_state(tb, 1), HEALTH_BUSY); /* k1, carried */
    assert_true(health_server_util(tb, 1) > 0.9);
    assert_true(health_server_seq(tb, 1) >= seq);
    assert_int_equal(health_server_state(tb, 2), HEALTH_UNKNOWN); /* k2: new URL */
    assert_int_equal(health_server_state(tb, 3), HEALTH_UNKNOWN); /* k3: new */
    assert_int_equal(health_server_state(tb, 0), HEALTH_UNKNOWN); /* front/f */
    assert_int_equal(health_cluster_state(tb, 1), HEALTH_UNKNOWN);
    assert_int_equal(health_cluster_busy(tb, 1), 1);
    assert_int_equal(health_cluster_unknown(tb, 1), 2);
    /* Detach: the poller polls nothing; b stays readable. */
    assert_int_equal(health_apply(h, NULL), 0);
    assert_int_equal(health_server_state(TB(b.t), 1), HEALTH_BUSY);
    health_stop(h);
    arena_free(b.a);
}

/* Apply before start, then start; stop without start. */
static void test_lifecycle(void **state)
{
    (void)state;
    httpfix_set_body(fix, "/lc", "{\"tx_bps\": 1e6}");
    topo_t t = build("clusters:\n"
                     "  c:\n"
                     "    region: r\n"
                     "    carrier: telecom\n"
                     "    entry: 192.0.2.1\n"
                     "    servers: {s: {capacity: 100Mbit, check: {kind: json, url: \"%s\"}}}\n"
                     "regions: {r: {lat: 0, lon: 0}}\n"
                     "%s",
                     url("/lc"), HEALTH_FAST);
    health_t *h;
    assert_int_equal(health_new(&h), 0);
    health_set_notify(h, on_notify, NULL);
    assert_int_equal(health_apply(h, t.t), 0);
    assert_int_equal(health_start(h), 0);
    assert_int_equal(health_start(h), -EALREADY);
    WAIT_UNTIL(h, t.t, SSTATE(t.t, 0) == HEALTH_IDLE, 3000, "IDLE");
    health_stats_t st;
    health_get_stats(h, &st);
    assert_true(st.polls >= 1);
    assert_true(st.publications >= 1);
    health_stop(h);
    arena_free(t.a);
    assert_int_equal(health_new(&h), 0);
    health_stop(h);
    health_stop(NULL);
}

/* Many servers polled concurrently against one fixture. */
static void test_many_servers(void **state)
{
    (void)state;
    enum { N = 300 };
    size_t cap = 160 * N + 512, used = 0;
    char *servers = malloc(cap);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/many/%d", i);
        httpfix_set_body(fix, path, EXPO);
        set_util(path, i % 10 == 9 ? 1.5 : (i % 10) / 20.0 + 0.02);
        used += (size_t)snprintf(servers + used, cap - used,
                                 "      s%d: {capacity: " CAP
                                 ", check: {kind: prometheus, url: \"%s\"}}\n",
                                 i, url(path));
    }
    topo_t t = build("regions: {r: {lat: 0, lon: 0}}\n"
                     "clusters:\n"
                     "  c:\n"
                     "    region: r\n"
                     "    carrier: telecom\n"
                     "    entry: 192.0.2.1\n"
                     "    servers:\n%s"
                     "health: {interval: 500ms, fall: 3}\n",
                     servers);
    free(servers);
    health_t *h = start_poller(t.t);
    WAIT_UNTIL(h, t.t,
               health_cluster_idle(TB(t.t), 0) == N - N / 10 &&
                   health_cluster_busy(TB(t.t), 0) == N / 10,
               15000, "270 IDLE and 30 BUSY servers");
    health_stop(h);
    arena_free(t.a);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    /* Deadlines are generous already; HEALTH_TEST_SLOW=N stretches them
     * further for very slow runs. */
    if (getenv("HEALTH_TEST_SLOW")) slow = atof(getenv("HEALTH_TEST_SLOW"));
    if (!(slow >= 1)) slow = 1;
    log_set_level(getenv("HEALTH_TEST_LOG") ? LOG_DEBUG : LOG_ERR);
    return httpfix_start(NULL, 0, &fix);
}

static int group_teardown(void **state)
{
    (void)state;
    httpfix_stop(fix);
    return 0;
}

int main(void)
{
    /* HEALTH_TEST_FILTER=test_admin* runs a subset. */
    if (getenv("HEALTH_TEST_FILTER")) cmocka_set_test_filter(getenv("HEALTH_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hysteresis),    cmocka_unit_test(test_down_reasons),
        cmocka_unit_test(test_counter_reset), cmocka_unit_test(test_cluster_state),
        cmocka_unit_test(test_stale_reason),
        cmocka_unit_test(test_admin_file),    cmocka_unit_test(test_tcp_and_file_checks),
        cmocka_unit_test(test_recovery_rise), cmocka_unit_test(test_url_hosts),
        cmocka_unit_test(test_apply_carries_state),
        cmocka_unit_test(test_lifecycle),     cmocka_unit_test(test_many_servers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
