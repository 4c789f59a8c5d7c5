/*
 * test_health_parse.c - unit tests of the health room's pure parsers: the
 * Prometheus text format, JSON field extraction, the admin file and the
 * per-server state file; plus a bounded random-input run of each (the
 * libFuzzer target fuzz_health_prom.c goes further).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "health/health_parse.h"

static const char *const eth0_n[] = {"device"}, *const eth0_v[] = {"eth0"};
static const health_prom_query_t Q_ETH0 = {"node_network_transmit_bytes_total", eth0_n, eth0_v, 1};

static int scan(const char *text, const health_prom_query_t *q, health_prom_result_t *r)
{
    return health_prom_scan(text, strlen(text), q, r);
}

/* Expect a successful scan with exactly one match of value v. */
#define EXPECT_VALUE(text, q, v)                                                                   \
    do {                                                                                           \
        health_prom_result_t r_;                                                                   \
        int rc_ = scan((text), (q), &r_);                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("scan failed: line %zu col %zu: %s", r_.err_line, r_.err_col, r_.err);        \
        assert_int_equal(r_.matches, 1);                                                           \
        assert_float_equal(r_.value, (double)(v), fabs((double)(v)) * 1e-12 + 1e-12);              \
    } while (0)

#define EXPECT_ERROR(text, q, line, col, msg)                                                      \
    do {                                                                                           \
        health_prom_result_t r_;                                                                   \
        assert_int_equal(scan((text), (q), &r_), -EINVAL);                                         \
        assert_int_equal(r_.err_line, (line));                                                     \
        assert_int_equal(r_.err_col, (col));                                                       \
        assert_string_equal(r_.err, (msg));                                                        \
    } while (0)

static void test_prom_node_exporter(void **state)
{
    (void)state;
    /* A realistic excerpt: HELP/TYPE lines, a faster `lo` first, an escaped
     * label value that contains "eth0", other devices, other metrics. */
    const char *text =
        "# HELP node_network_transmit_bytes_total Network device statistic transmit_bytes.\n"
        "# TYPE node_network_transmit_bytes_total counter\n"
        "node_network_transmit_bytes_total{device=\"lo\"} 9.87654321e+12\n"
        "node_network_transmit_bytes_total{device=\"eth0 \\\"x\\\"\"} 5\n"
        "node_network_transmit_bytes_total{device=\"eth0\"} 1.2345e+10\n"
        "node_network_transmit_bytes_total{device=\"eth1\"} 77\n"
        "node_network_transmit_bytes_total_other{device=\"eth0\"} 1\n"
        "node_network_up{device=\"eth0\"} 1\n";
    EXPECT_VALUE(text, &Q_ETH0, 1.2345e10);
}

static void test_prom_syntax_variants(void **state)
{
    (void)state;
    /* Blanks and tabs, trailing comma, CRLF, timestamps, exemplars. */
    EXPECT_VALUE("node_network_transmit_bytes_total { device = \"eth0\" , } \t 42 \r\n", &Q_ETH0,
                 42);
    EXPECT_VALUE("  node_network_transmit_bytes_total{device=\"eth0\"} 42", &Q_ETH0, 42);
    EXPECT_VALUE("node_network_transmit_bytes_total{job=\"n\",device=\"eth0\",x=\"\"} 1e3\n",
                 &Q_ETH0, 1000);
    EXPECT_VALUE("node_network_transmit_bytes_total{device=\"eth0\"} -1.5E-2\n", &Q_ETH0, -0.015);
    EXPECT_VALUE("node_network_transmit_bytes_total{device=\"eth0\"} 0x10\n", &Q_ETH0, 16);
    EXPECT_VALUE("node_network_transmit_bytes_total{device=\"eth0\"} 7 # {trace_id=\"a\"} 1\n",
                 &Q_ETH0, 7);
    health_prom_result_t r;
    assert_int_equal(
        scan("node_network_transmit_bytes_total{device=\"eth0\"} 10 1700000000123\n", &Q_ETH0, &r),
        0);
    assert_true(r.has_timestamp);
    assert_int_equal(r.timestamp_ms, 1700000000123LL);
    assert_int_equal(
        scan("node_network_transmit_bytes_total{device=\"eth0\"} 10 -5\n", &Q_ETH0, &r), 0);
    assert_int_equal(r.timestamp_ms, -5);
    /* Special values are parsed; the caller decides they are unusable. */
    assert_int_equal(scan("node_network_transmit_bytes_total{device=\"eth0\"} NaN\n", &Q_ETH0, &r),
                     0);
    assert_true(isnan(r.value));
    assert_int_equal(scan("node_network_transmit_bytes_total{device=\"eth0\"} +Inf\n", &Q_ETH0, &r),
                     0);
    assert_true(isinf(r.value) && r.value > 0);
    /* Escapes: \\ \" \n in the matched value. */
    static const char *const n[] = {"device"}, *const v[] = {"a\\b\"c\nd"};
    health_prom_query_t q = {"m", n, v, 1};
    EXPECT_VALUE("m{device=\"a\\\\b\\\"c\\nd\"} 3\n", &q, 3);
    /* No labels at all. */
    health_prom_query_t q0 = {"up", NULL, NULL, 0};
    EXPECT_VALUE("# comment\n\nup 1\n", &q0, 1);
    /* An empty matcher matches an absent label (as in PromQL). */
    static const char *const en[] = {"device"}, *const ev[] = {""};
    health_prom_query_t qe = {"up", en, ev, 1};
    EXPECT_VALUE("up{device=\"x\"} 5\nup 1\n", &qe, 1);
}

static void test_prom_sum_and_missing(void **state)
{
    (void)state;
    health_prom_query_t all = {"node_network_transmit_bytes_total", NULL, NULL, 0};
    health_prom_result_t r;
    assert_int_equal(scan("node_network_transmit_bytes_total{device=\"a\"} 1\n"
                          "node_network_transmit_bytes_total{device=\"b\"} 2\n",
                          &all, &r),
                     0);
    assert_int_equal(r.matches, 2);
    assert_float_equal(r.value, 3, 1e-12);
    assert_false(r.has_timestamp);
    /* Missing metric, missing device. */
    assert_int_equal(scan("node_network_transmit_bytes_total{device=\"lo\"} 1\n", &Q_ETH0, &r), 0);
    assert_int_equal(r.matches, 0);
    assert_int_equal(scan("", &Q_ETH0, &r), 0);
    assert_int_equal(r.matches, 0);
    assert_int_equal(r.lines, 0);
    /* Text that happens to start with a name: no error, but no metric. */
    assert_int_equal(scan("Hello world\n", &Q_ETH0, &r), 0);
    assert_int_equal(r.matches, 0);
}

static void test_prom_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("<!DOCTYPE html>\n<html></html>\n", &Q_ETH0, 1, 1, "expected a metric name");
    EXPECT_ERROR("# ok\n{device=\"eth0\"} 1\n", &Q_ETH0, 2, 1, "expected a metric name");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\" 1\n", &Q_ETH0, 1, 49,
                 "expected ',' or '}' after a label");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0} 1\n", &Q_ETH0, 1, 50,
                 "unterminated label value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=eth0} 1\n", &Q_ETH0, 1, 42,
                 "expected '\"' to open a label value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"}\n", &Q_ETH0, 1, 49,
                 "expected a value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"} 12abc\n", &Q_ETH0, 1, 50,
                 "invalid value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"} nan(1)\n", &Q_ETH0, 1, 53,
                 "invalid character in value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"} 1 2 3\n", &Q_ETH0, 1, 54,
                 "unexpected text after the value");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"} 1 12x\n", &Q_ETH0, 1, 54,
                 "invalid timestamp");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"eth0\"} 1 99999999999999999999\n",
                 &Q_ETH0, 1, 70, "timestamp out of range");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"e\\th0\"} 1\n", &Q_ETH0, 1, 44,
                 "invalid escape in label value (only \\\\, \\\" and \\n)");
    EXPECT_ERROR("node_network_transmit_bytes_total{device=\"a\",device=\"eth0\"} 1\n", &Q_ETH0, 1,
                 46, "duplicate label name");
    EXPECT_ERROR("node_network_transmit_bytes_total{9=\"a\"} 1\n", &Q_ETH0, 1, 35,
                 "expected a label name");
    EXPECT_ERROR("node_network_transmit_bytes_total\x01 1\n", &Q_ETH0, 1, 34,
                 "expected a blank after the metric name");
}

static void test_prom_nul_and_limits(void **state)
{
    (void)state;
    /* NUL bytes: lines of other metrics are skipped after the name; a NUL
     * inside the matched series is an error, never a crash. */
    const char text[] = "foo\0bar 1\nnode_network_transmit_bytes_total{device=\"eth0\"} 4\n";
    health_prom_result_t r;
    assert_int_equal(health_prom_scan(text, sizeof(text) - 1, &Q_ETH0, &r), 0);
    assert_int_equal(r.matches, 1);
    const char bad[] = "node_network_transmit_bytes_total{device=\"eth0\"}\0 4\n";
    assert_int_equal(health_prom_scan(bad, sizeof(bad) - 1, &Q_ETH0, &r), -EINVAL);
    /* A value token of 64 bytes or more. */
    char longv[200];
    snprintf(longv, sizeof(longv), "node_network_transmit_bytes_total{device=\"eth0\"} 1%070d\n",
             0);
    EXPECT_ERROR(longv, &Q_ETH0, 1, 50, "value too long");
    /* Too many matchers. */
    const char *names[HEALTH_PROM_MAX_MATCHERS + 1], *vals[HEALTH_PROM_MAX_MATCHERS + 1];
    for (int i = 0; i <= HEALTH_PROM_MAX_MATCHERS; i++)
        names[i] = vals[i] = "a";
    health_prom_query_t q = {"m", names, vals, HEALTH_PROM_MAX_MATCHERS + 1};
    assert_int_equal(scan("m 1\n", &q, &r), -E2BIG);
}

/* Random and mutated inputs: every call must return and stay in bounds
 * (ASan and valgrind check the latter). */
static void test_prom_random(void **state)
{
    (void)state;
    const char *seed = "# TYPE node_network_transmit_bytes_total counter\n"
                       "node_network_transmit_bytes_total{device=\"eth0\",a=\"\\\\\\\"\\n\"} "
                       "1.5e+09 1700000000000\n";
    size_t slen = strlen(seed);
    char buf[512];
    uint32_t x = 12345;
    for (int it = 0; it < 200000; it++) {
        size_t n;
        if (it & 1) {
            n = slen;
            memcpy(buf, seed, n);
            for (int m = 0; m < 1 + (it % 4); m++) {
                x = x * 1103515245u + 12345u;
                buf[(x >> 8) % n] = (char)(x >> 24);
            }
            x = x * 1103515245u + 12345u;
            n = (x >> 8) % (n + 1); /* truncate anywhere */
        } else {
            x = x * 1103515245u + 12345u;
            n = (x >> 8) % sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                static const char alphabet[] = "{}\"\\=,# \t\n\rnode_eth0e+-.0123456789NaInf";
                buf[i] =
                    (x >> 28) < 12 ? alphabet[(x >> 8) % (sizeof(alphabet) - 1)] : (char)(x >> 16);
            }
        }
        /* Exact-size heap copy so ASan sees reads past the end. */
        char *p = malloc(n ? n : 1);
        memcpy(p, buf, n);
        health_prom_result_t r;
        int rc = health_prom_scan(p, n, &Q_ETH0, &r);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == -EINVAL) {
            assert_non_null(r.err);
            assert_true(r.err_line >= 1);
        }
        double v;
        char err[64];
        health_json_extract(p, n, "a.b.0", &v, err, sizeof(err));
        health_admin_parse(p, n, NULL, NULL, NULL);
        health_admin_state_t st;
        const char *reason, *e;
        size_t rl;
        health_state_file_parse(p, n, &st, &reason, &rl, &e);
        free(p);
    }
}

static void test_json(void **state)
{
    (void)state;
    double v = -1;
    char err[128];
    const char *doc = "{\"tx_bps\": 1.5e9, \"net\": {\"eth0\": {\"tx_bps\": 42}},"
                      " \"ifaces\": [{\"tx\": 7}, {\"tx\": 8}], \"s\": \"123.5\", \"b\": true,"
                      " \"x\": \"12abc\", \"n\": null}";
    size_t n = strlen(doc);
    assert_int_equal(health_json_extract(doc, n, "tx_bps", &v, err, sizeof(err)), 0);
    assert_float_equal(v, 1.5e9, 1);
    assert_int_equal(health_json_extract(doc, n, "net.eth0.tx_bps", &v, err, sizeof(err)), 0);
    assert_float_equal(v, 42, 0);
    assert_int_equal(health_json_extract(doc, n, "ifaces.1.tx", &v, err, sizeof(err)), 0);
    assert_float_equal(v, 8, 0);
    assert_int_equal(health_json_extract(doc, n, "s", &v, err, sizeof(err)), 0);
    assert_float_equal(v, 123.5, 0);
    assert_int_equal(health_json_extract(doc, n, "net.eth1.tx_bps", &v, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "field 'net.eth1.tx_bps' not found");
    assert_int_equal(health_json_extract(doc, n, "ifaces.5.tx", &v, err, sizeof(err)), -ENOENT);
    assert_int_equal(health_json_extract(doc, n, "tx_bps.deeper", &v, err, sizeof(err)), -ENOENT);
    assert_int_equal(health_json_extract(doc, n, "b", &v, err, sizeof(err)), -EDOM);
    assert_string_equal(err, "field 'b' is not a number");
    assert_int_equal(health_json_extract(doc, n, "x", &v, err, sizeof(err)), -EDOM);
    assert_int_equal(health_json_extract(doc, n, "n", &v, err, sizeof(err)), -EDOM);
    assert_int_equal(health_json_extract(doc, n, "net", &v, err, sizeof(err)), -EDOM);
    const char *garbage = "{\"tx_bps\": 12,, }";
    assert_int_equal(health_json_extract(garbage, strlen(garbage), "tx_bps", &v, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "line 1 column"));
    assert_int_equal(health_json_extract("<html>", 6, "tx_bps", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(health_json_extract("", 0, "tx_bps", &v, err, sizeof(err)), -EINVAL);
    /* Trailing garbage after a valid document is refused. */
    assert_int_equal(health_json_extract("{\"tx_bps\":1} x", 14, "tx_bps", &v, err, sizeof(err)),
                     -EINVAL);
    assert_true(health_json_path_valid("a.b.0"));
    assert_false(health_json_path_valid(""));
    assert_false(health_json_path_valid("a..b"));
    assert_false(health_json_path_valid(".a"));
    assert_false(health_json_path_valid("a."));
}

typedef struct rules {
    char text[1024];
    size_t used;
} rules_t;

static void on_rule(void *ctx, const health_admin_rule_t *r)
{
    rules_t *x = ctx;
    x->used += (size_t)snprintf(x->text + x->used, sizeof(x->text) - x->used,
                                "%zu:%.*s|%.*s|%s|%.*s;", r->line,
                                r->cluster ? (int)r->cluster_len : 1, r->cluster ? r->cluster : "*",
                                r->server ? (int)r->server_len : 1, r->server ? r->server : "*",
                                health_admin_state_str(r->state), (int)r->reason_len, r->reason);
}

static void on_error(void *ctx, size_t line, const char *msg)
{
    rules_t *x = ctx;
    x->used +=
        (size_t)snprintf(x->text + x->used, sizeof(x->text) - x->used, "%zu:E %s;", line, msg);
}

static void test_admin_file(void **state)
{
    (void)state;
    const char *text = "# maintenance\n"
                       "\n"
                       "bj-telecom/bj-t-1   DOWN   disk swap, ticket #4711  \n"
                       "  bj-unicom busy draining\r\n"
                       "gz/*\tUp\n"
                       "*  BUSY\n"
                       "bj-telecom/bj-t-2\n"
                       "bj telecom DOWN\n"
                       "bj-telecom/bj-t-1 SLEEPY\n"
                       "a/b/c DOWN\n"
                       "/x DOWN\n";
    rules_t x = {.used = 0};
    size_t bad = health_admin_parse(text, strlen(text), on_rule, on_error, &x);
    assert_int_equal(bad, 5);
    assert_string_equal(x.text, "3:bj-telecom|bj-t-1|DOWN|disk swap, ticket #4711;"
                                "4:bj-unicom|*|BUSY|draining;"
                                "5:gz|*|UP|;"
                                "6:*|*|BUSY|;"
                                "7:E expected TARGET STATE [reason];"
                                "8:E unknown state (expected UP, DOWN or BUSY);"
                                "9:E unknown state (expected UP, DOWN or BUSY);"
                                "10:E invalid server name in target;"
                                "11:E invalid cluster name in target;");
}

static void test_state_file(void **state)
{
    (void)state;
    health_admin_state_t st;
    const char *reason, *err;
    size_t rl;
    const char *t1 = "# set by deploy\n\n  down  kernel upgrade \n UP\n";
    assert_int_equal(health_state_file_parse(t1, strlen(t1), &st, &reason, &rl, &err), 0);
    assert_int_equal(st, HEALTH_ADMIN_DOWN);
    assert_int_equal(rl, strlen("kernel upgrade"));
    assert_memory_equal(reason, "kernel upgrade", rl);
    assert_int_equal(health_state_file_parse("UP", 2, &st, &reason, &rl, &err), 0);
    assert_int_equal(st, HEALTH_ADMIN_UP);
    assert_int_equal(rl, 0);
    assert_int_equal(health_state_file_parse("# only\n", 7, &st, &reason, &rl, &err), -EINVAL);
    assert_string_equal(err, "empty state file (expected UP, DOWN or BUSY)");
    assert_int_equal(health_state_file_parse("maybe\n", 6, &st, &reason, &rl, &err), -EINVAL);
    assert_string_equal(err, "unknown state (expected UP, DOWN or BUSY)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_node_exporter),
        cmocka_unit_test(test_prom_syntax_variants),
        cmocka_unit_test(test_prom_sum_and_missing),
        cmocka_unit_test(test_prom_errors),
        cmocka_unit_test(test_prom_nul_and_limits),
        cmocka_unit_test(test_prom_random),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_admin_file),
        cmocka_unit_test(test_state_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
