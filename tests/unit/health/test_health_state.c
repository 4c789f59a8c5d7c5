/*
 * test_health_state.c - unit tests of the pure logic between measurements
 * and published states: the hysteresis state machine, fall/rise,
 * staleness, counters -> rates with resets, admin overrides and cluster
 * aggregation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "health/health_int.h"

static const health__params_t P = {
    .threshold = 0.90,
    .return_threshold = 0.85,
    .busy_after = 1,
    .idle_after = 2,
    .fall = 3,
    .rise = 2,
    .stale_ms = 3000,
};

#define ASSERT_STATE(sm, st, rs)                                                                   \
    do {                                                                                           \
        if ((sm).state != (st) || (sm).reason != (rs))                                             \
            fail_msg("expected %s/%s, got %s/%s", health_state_str(st), health_reason_str(rs),     \
                     health_state_str((sm).state), health_reason_str((sm).reason));                \
    } while (0)

static void test_first_sample(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    ASSERT_STATE(sm, HEALTH_UNKNOWN, HEALTH_R_NONE);
    assert_true(health__sm_sample(&sm, &P, 100, 0.5, 5, false));
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_BELOW);
    assert_int_equal(sm.seq, 1);
    health__sm_init(&sm, 0);
    assert_true(health__sm_sample(&sm, &P, 100, 0.95, 5, false));
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_ABOVE);
    /* Exactly at the threshold is BUSY ("at or above"). */
    health__sm_init(&sm, 0);
    health__sm_sample(&sm, &P, 100, 0.90, 5, false);
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_ABOVE);
}

static void test_hysteresis_no_flap(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    health__sm_sample(&sm, &P, 1, 0.50, 0, false);
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_BELOW);
    /* 90% +- 2% noise: once BUSY, it stays BUSY; one transition in all. */
    static const double noise[] = {0.91, 0.88, 0.92, 0.89, 0.875, 0.90, 0.86, 0.93, 0.88, 0.89};
    int transitions = 0;
    uint64_t t = 2;
    for (int round = 0; round < 10; round++)
        for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
            transitions += health__sm_sample(&sm, &P, t++, noise[i], 0, false);
    assert_int_equal(transitions, 1);
    assert_int_equal(sm.state, HEALTH_BUSY);
    /* Below the threshold but not below the return threshold: BUSY. */
    health__sm_sample(&sm, &P, t++, 0.87, 0, false);
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_HOLD_BUSY);
    /* Below the return threshold: idle_after (2) samples in a row. */
    assert_false(health__sm_sample(&sm, &P, t++, 0.80, 0, false));
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_HOLD_BUSY);
    assert_int_equal(sm.streak, 1);
    /* An interruption resets the count. */
    assert_false(health__sm_sample(&sm, &P, t++, 0.86, 0, false));
    assert_int_equal(sm.streak, 0);
    assert_false(health__sm_sample(&sm, &P, t++, 0.80, 0, false));
    assert_true(health__sm_sample(&sm, &P, t++, 0.70, 0, false));
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_BELOW);
}

static void test_busy_after(void **state)
{
    (void)state;
    health__params_t p = P;
    p.busy_after = 3;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    health__sm_sample(&sm, &p, 1, 0.10, 0, false);
    assert_false(health__sm_sample(&sm, &p, 2, 0.95, 0, false));
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_HOLD_IDLE);
    assert_false(health__sm_sample(&sm, &p, 3, 0.95, 0, false));
    assert_false(health__sm_sample(&sm, &p, 4, 0.50, 0, false)); /* resets */
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_BELOW);
    assert_false(health__sm_sample(&sm, &p, 5, 0.95, 0, false));
    assert_false(health__sm_sample(&sm, &p, 6, 0.95, 0, false));
    assert_true(health__sm_sample(&sm, &p, 7, 0.95, 0, false));
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_ABOVE);
}

static void test_fall_and_rise(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    health__sm_sample(&sm, &P, 1, 0.3, 0, false);
    uint64_t seq = sm.seq;
    /* Two failures: still IDLE, reason shows the failure. */
    assert_false(health__sm_fail(&sm, &P, 2, HEALTH_R_TIMEOUT));
    assert_false(health__sm_fail(&sm, &P, 3, HEALTH_R_HTML));
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_HTML);
    assert_int_equal(sm.seq, seq);
    /* A success in between resets the count. */
    health__sm_sample(&sm, &P, 4, 0.3, 0, false);
    assert_false(health__sm_fail(&sm, &P, 5, HEALTH_R_TIMEOUT));
    assert_false(health__sm_fail(&sm, &P, 6, HEALTH_R_TIMEOUT));
    assert_true(health__sm_fail(&sm, &P, 7, HEALTH_R_CONNECT));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_CONNECT);
    assert_int_equal(sm.fails, 3);
    /* Down: the reason follows the latest failure. */
    assert_false(health__sm_fail(&sm, &P, 8, HEALTH_R_BAD_JSON));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_BAD_JSON);
    /* Rise: 2 usable samples in a row; a baseline poll keeps counting. */
    assert_false(health__sm_sample(&sm, &P, 9, 0.95, 0, false));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_RISING);
    health__sm_nodata(&sm, &P, 10, HEALTH_R_COUNTER_RESET);
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_RISING);
    assert_true(health__sm_sample(&sm, &P, 11, 0.95, 0, false));
    ASSERT_STATE(sm, HEALTH_BUSY, HEALTH_R_ABOVE);
    /* UNKNOWN goes DOWN after `fall` failures too. */
    health__sm_init(&sm, 0);
    health__sm_fail(&sm, &P, 1, HEALTH_R_TIMEOUT);
    health__sm_fail(&sm, &P, 2, HEALTH_R_TIMEOUT);
    ASSERT_STATE(sm, HEALTH_UNKNOWN, HEALTH_R_TIMEOUT);
    assert_true(health__sm_fail(&sm, &P, 3, HEALTH_R_TIMEOUT));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_TIMEOUT);
}

static void test_stale(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 1000);
    /* UNKNOWN with polls that never give a measurement: stale too. */
    health__sm_nodata(&sm, &P, 2000, HEALTH_R_FIRST_SAMPLE);
    assert_false(health__sm_tick(&sm, &P, 4000));
    assert_true(health__sm_tick(&sm, &P, 4001));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_STALE);
    /* IDLE whose samples stop. */
    health__sm_init(&sm, 0);
    health__sm_sample(&sm, &P, 10000, 0.2, 0, false);
    assert_false(health__sm_tick(&sm, &P, 12000));
    assert_true(health__sm_tick(&sm, &P, 13001));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_STALE);
    assert_false(health__sm_tick(&sm, &P, 20000)); /* already down */
}

static void test_force(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    assert_true(health__sm_force(&sm, 5, HEALTH_DOWN, HEALTH_R_FILE_DOWN));
    ASSERT_STATE(sm, HEALTH_DOWN, HEALTH_R_FILE_DOWN);
    assert_true(health__sm_force(&sm, 6, HEALTH_IDLE, HEALTH_R_LIVE));
    ASSERT_STATE(sm, HEALTH_IDLE, HEALTH_R_LIVE);
    assert_true(sm.no_rate);
    assert_int_equal(sm.last_good_ms, 6);
}

static void test_rates(void **state)
{
    (void)state;
    health__counter_t c = {0};
    double rate = -1;
    const uint64_t S = 1000000000u; /* 1 s in ns */
    assert_int_equal(health__rate_update(&c, 1000, 1 * S, false, 10 * S, &rate),
                     HEALTH__RATE_BASELINE);
    assert_int_equal(health__rate_update(&c, 3000, 3 * S, false, 10 * S, &rate), HEALTH__RATE_OK);
    assert_float_equal(rate, 1000, 1e-9);
    /* A counter reset (exporter restart): new baseline, no negative rate. */
    assert_int_equal(health__rate_update(&c, 500, 4 * S, false, 10 * S, &rate), HEALTH__RATE_RESET);
    assert_int_equal(health__rate_update(&c, 1500, 5 * S, false, 10 * S, &rate), HEALTH__RATE_OK);
    assert_float_equal(rate, 1000, 1e-9);
    /* Bad values leave the baseline as it was. */
    assert_int_equal(health__rate_update(&c, NAN, 6 * S, false, 10 * S, &rate), HEALTH__RATE_BAD);
    assert_int_equal(health__rate_update(&c, -1, 6 * S, false, 10 * S, &rate), HEALTH__RATE_BAD);
    assert_int_equal(health__rate_update(&c, INFINITY, 6 * S, false, 10 * S, &rate),
                     HEALTH__RATE_BAD);
    assert_int_equal(health__rate_update(&c, 2500, 6 * S, false, 10 * S, &rate), HEALTH__RATE_OK);
    assert_float_equal(rate, 1000, 1e-9);
    /* A previous reading older than the limit is not used. */
    assert_int_equal(health__rate_update(&c, 99999, 60 * S, false, 10 * S, &rate),
                     HEALTH__RATE_BASELINE);
    /* Remote timestamps: equal means nothing new; switching clocks means a
     * new baseline; a remote clock going back starts over. */
    health__counter_t r = {0};
    assert_int_equal(health__rate_update(&r, 100, 5000 * 1000000ull, true, 10 * S, &rate),
                     HEALTH__RATE_BASELINE);
    assert_int_equal(health__rate_update(&r, 100, 5000 * 1000000ull, true, 10 * S, &rate),
                     HEALTH__RATE_SAME);
    assert_int_equal(health__rate_update(&r, 600, 5500 * 1000000ull, true, 10 * S, &rate),
                     HEALTH__RATE_OK);
    assert_float_equal(rate, 1000, 1e-9);
    assert_int_equal(health__rate_update(&r, 700, 5400 * 1000000ull, true, 10 * S, &rate),
                     HEALTH__RATE_BASELINE);
    assert_int_equal(health__rate_update(&r, 800, 7 * S, false, 10 * S, &rate),
                     HEALTH__RATE_BASELINE);
}

static void test_cluster_aggregate(void **state)
{
    (void)state;
    health__agg_t a;
    /* One idle server is enough for an idle cluster. */
    health__srv_sum_t s1[] = {
        {HEALTH_BUSY, 0.95, 9500, 10000, 5},
        {HEALTH_IDLE, 0.50, 5000, 10000, 7},
        {HEALTH_DOWN, 0.10, 1000, 30000, 9},
    };
    health__cluster_aggregate(s1, 3, &a);
    assert_int_equal(a.state, HEALTH_IDLE);
    assert_int_equal(a.n_idle, 1);
    assert_int_equal(a.n_busy, 1);
    assert_int_equal(a.n_down, 1);
    assert_int_equal(a.n_unknown, 0);
    /* Capacity-weighted over servers up only: (0.95*10k + 0.5*10k) / 20k. */
    assert_float_equal(a.util, 0.725, 1e-12);
    assert_int_equal(a.rate_bps, 14500);
    assert_int_equal(a.sample_ms, 9);
    /* Weighting: a big busy server and a small idle one. */
    health__srv_sum_t s2[] = {
        {HEALTH_BUSY, 0.92, 0, 40000, 0},
        {HEALTH_IDLE, 0.20, 0, 10000, 0},
    };
    health__cluster_aggregate(s2, 2, &a);
    assert_float_equal(a.util, (0.92 * 40000 + 0.2 * 10000) / 50000, 1e-12);
    /* UNKNOWN: usable with utilisation 0, counted in the capacity. */
    health__srv_sum_t s3[] = {
        {HEALTH_BUSY, 0.96, 0, 10000, 0},
        {HEALTH_UNKNOWN, 0.50, 0, 10000, 0},
    };
    health__cluster_aggregate(s3, 2, &a);
    assert_int_equal(a.state, HEALTH_UNKNOWN);
    assert_float_equal(a.util, 0.48, 1e-12);
    health__srv_sum_t s4[] = {
        {HEALTH_BUSY, 0.96, 0, 10000, 0},
        {HEALTH_DOWN, 0.0, 0, 10000, 0},
    };
    health__cluster_aggregate(s4, 2, &a);
    assert_int_equal(a.state, HEALTH_BUSY);
    health__srv_sum_t s5[] = {
        {HEALTH_DOWN, 0.2, 0, 10000, 0},
        {HEALTH_DOWN, 0.0, 0, 10000, 0},
    };
    health__cluster_aggregate(s5, 2, &a);
    assert_int_equal(a.state, HEALTH_DOWN);
    assert_float_equal(a.util, 1.0, 0);
}

static void test_admin_apply(void **state)
{
    (void)state;
    health__sm_t sm;
    health__sm_init(&sm, 0);
    health_reason_t r = HEALTH_R_NONE;
    assert_int_equal(health__admin_apply(HEALTH_ADMIN_UP, &sm, &r), HEALTH_IDLE);
    assert_int_equal(r, HEALTH_R_ADMIN_UP);
    health__sm_sample(&sm, &P, 1, 0.95, 0, false);
    r = sm.reason;
    assert_int_equal(health__admin_apply(HEALTH_ADMIN_UP, &sm, &r), HEALTH_BUSY);
    assert_int_equal(r, HEALTH_R_ABOVE);
    assert_int_equal(health__admin_apply(HEALTH_ADMIN_DOWN, &sm, &r), HEALTH_DOWN);
    assert_int_equal(r, HEALTH_R_ADMIN_DOWN);
    assert_int_equal(health__admin_apply(HEALTH_ADMIN_BUSY, &sm, &r), HEALTH_BUSY);
    assert_int_equal(r, HEALTH_R_ADMIN_BUSY);
    r = sm.reason;
    assert_int_equal(health__admin_apply(HEALTH_ADMIN_NONE, &sm, &r), HEALTH_BUSY);
}

static void test_names_and_formats(void **state)
{
    (void)state;
    for (int r = 0; r < HEALTH_R_COUNT_; r++)
        assert_string_not_equal(health_reason_str((health_reason_t)r), "?");
    assert_string_equal(health_state_str(HEALTH_UNKNOWN), "UNKNOWN");
    char buf[32];
    health__fmt_rate(4210000000ull, buf, sizeof(buf));
    assert_string_equal(buf, "4.21Gbit/s");
    health__fmt_rate(999, buf, sizeof(buf));
    assert_string_equal(buf, "999bit/s");
    health__fmt_util(0.421, buf, sizeof(buf));
    assert_string_equal(buf, "42.1%");
    assert_int_equal(health__ppm(0.5), 500000);
    assert_int_equal(health__ppm(-1), 0);
    assert_int_equal(health__ppm(NAN), 0);
    assert_int_equal(health__ppm(1e9), UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_sample), cmocka_unit_test(test_hysteresis_no_flap),
        cmocka_unit_test(test_busy_after),   cmocka_unit_test(test_fall_and_rise),
        cmocka_unit_test(test_stale),        cmocka_unit_test(test_force),
        cmocka_unit_test(test_rates),        cmocka_unit_test(test_cluster_aggregate),
        cmocka_unit_test(test_admin_apply),  cmocka_unit_test(test_names_and_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
