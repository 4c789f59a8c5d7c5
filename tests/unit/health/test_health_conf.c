/*
 * test_health_conf.c - the topology builder: a valid configuration read
 * back through the accessors, and bad configurations whose diagnostics
 * must match, exactly and in order, the "# expect: LINE:COL: error: MSG"
 * lines at the top of each fixture in tests/unit/health/conf/.
 *
 * HEALTH_CONF_PRINT=1 prints the actual diagnostics (for writing a new
 * fixture's expectations, which must then be reviewed by hand).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/yconf.h"
#include "health/health.h"

#define CONF_DIR STEERDNS_SOURCE_DIR "/tests/unit/health/conf/"

typedef struct loaded {
    arena_t *a;
    diag_list_t d;
    health_topo_t *topo;
    int rc;
} loaded_t;

static void load_file(loaded_t *l, const char *path)
{
    l->a = arena_new();
    diag_init(&l->d);
    l->topo = NULL;
    const yconf_node_t *root = NULL;
    /* Duplicate keys are reported by the parser, which still returns the
     * tree: building goes on so one run shows every problem. */
    l->rc = yconf_parse_file(l->a, path, 0, &l->d, &root);
    if (root == NULL) return;
    health_config_in_t in = {yconf_map_get(root, "regions"), yconf_map_get(root, "clusters"),
                             yconf_map_get(root, "health"), "/etc/steerdns"};
    int rc = health_topo_build(&in, l->a, &l->d, &l->topo);
    if (l->rc == 0) l->rc = rc;
}

static void load_text(loaded_t *l, const char *text)
{
    l->a = arena_new();
    diag_init(&l->d);
    l->topo = NULL;
    const yconf_node_t *root = NULL;
    l->rc = yconf_parse_buffer(l->a, "inline.yaml", text, strlen(text), &l->d, &root);
    if (root == NULL) return;
    health_config_in_t in = {yconf_map_get(root, "regions"), yconf_map_get(root, "clusters"),
                             yconf_map_get(root, "health"), NULL};
    l->rc = health_topo_build(&in, l->a, &l->d, &l->topo);
}

static void unload(loaded_t *l)
{
    diag_clear(&l->d);
    arena_free(l->a);
}

static void test_good(void **state)
{
    (void)state;
    loaded_t l;
    load_file(&l, CONF_DIR "good.yaml");
    if (l.rc != 0) {
        diag_print(&l.d, stderr);
        fail_msg("good.yaml did not build");
    }
    health_topo_t *t = l.topo;
    assert_int_equal(health_topo_regions(t), 4);
    assert_int_equal(health_topo_clusters(t), 2);
    assert_int_equal(health_topo_servers(t), 5);

    const health_region_t *bj = health_topo_region(t, 0);
    assert_string_equal(bj->name, "beijing");
    assert_float_equal(bj->lat, 39.90, 1e-9);
    assert_float_equal(bj->lon, 116.40, 1e-9);
    assert_string_equal(bj->country, "CN");
    assert_non_null(bj->match);
    assert_int_equal(bj->match->kind, YCONF_SEQ);
    assert_int_equal(bj->match->pos.line, 4);
    assert_int_equal(bj->n_neighbours, 2);
    assert_int_equal(bj->neighbours[0], 1); /* tianjin */
    assert_int_equal(bj->neighbours[1], 2); /* shanghai */
    /* Fallback: neighbours first, then by distance (guangzhou). */
    assert_int_equal(bj->n_fallback, 3);
    assert_int_equal(bj->fallback[0], 1);
    assert_int_equal(bj->fallback[1], 2);
    assert_int_equal(bj->fallback[2], 3);
    /* Guangzhou has no neighbours: by distance, shanghai (~1210 km), then
     * tianjin (~1800 km), then beijing (~1890 km). */
    const health_region_t *gz = health_topo_region(t, 3);
    assert_null(gz->country);
    assert_null(gz->match);
    assert_int_equal(gz->fallback[0], 2);
    assert_int_equal(gz->fallback[1], 1);
    assert_int_equal(gz->fallback[2], 0);
    double d = health_region_distance_km(bj, health_topo_region(t, 2));
    assert_true(d > 1000 && d < 1100); /* Beijing-Shanghai ~1070 km */
    assert_int_equal(health_topo_find_region(t, "shanghai"), 2);
    assert_int_equal(health_topo_find_region(t, "nowhere"), -1);

    const health_cluster_t *c0 = health_topo_cluster(t, 0);
    assert_string_equal(c0->name, "bj-telecom");
    assert_int_equal(c0->region, 0);
    assert_string_equal(c0->carrier, "telecom");
    assert_int_equal(c0->carrier_node->pos.line, 11);
    assert_int_equal(c0->carrier_node->pos.col, 14);
    assert_int_equal(c0->weight, 3);
    assert_int_equal(c0->n_entry4, 2);
    assert_int_equal(c0->n_entry6, 1);
    static const uint8_t e4[4] = {203, 0, 113, 2};
    assert_memory_equal(c0->entry4[1], e4, 4);
    assert_int_equal(c0->entry6[0][0], 0x20);
    assert_int_equal(c0->entry6[0][15], 1);
    assert_int_equal(c0->first_server, 0);
    assert_int_equal(c0->n_servers, 2);
    assert_int_equal(c0->capacity_bps, 50000000000ull);
    const health_cluster_t *c1 = health_topo_cluster(t, 1);
    assert_int_equal(c1->weight, 1);
    assert_int_equal(c1->region, 3);
    assert_int_equal(c1->first_server, 2);
    assert_int_equal(c1->n_servers, 3);
    assert_int_equal(health_topo_find_cluster(t, "gz-unicom"), 1);
    assert_int_equal(health_topo_find_server(t, 1, "gz-u-2"), 3);
    assert_int_equal(health_topo_find_server(t, 0, "gz-u-2"), -1);

    /* Checks with defaults filled in. */
    const health_server_t *s = health_topo_server(t, 0);
    assert_string_equal(s->name, "bj-t-1");
    assert_int_equal(s->cluster, 0);
    assert_int_equal(s->capacity_bps, 10000000000ull);
    const health_check_t *k = s->check;
    assert_int_equal(k->kind, HEALTH_CHECK_PROMETHEUS);
    assert_string_equal(k->metric, "node_network_transmit_bytes_total");
    assert_int_equal(k->n_labels, 1);
    assert_string_equal(k->label_names[0], "device");
    assert_string_equal(k->label_values[0], "eth0");
    assert_int_equal(k->mode, HEALTH_MODE_COUNTER);
    assert_float_equal(k->unit_bits, 8, 0);
    assert_int_equal(k->interval_ms, 2000);
    assert_int_equal(k->timeout_ms, 2000); /* health.timeout 0 = the interval */
    assert_int_equal(k->stale_after_ms, 6000);
    k = health_topo_server(t, 1)->check;
    assert_string_equal(k->metric, "my_tx_bytes_total");
    assert_int_equal(k->n_labels, 2);
    assert_string_equal(k->label_names[0], "iface");
    assert_string_equal(k->label_values[0], "bond0");
    assert_string_equal(k->label_values[1], "");
    assert_int_equal(k->interval_ms, 500);
    assert_int_equal(k->timeout_ms, 200);
    assert_int_equal(k->stale_after_ms, 1500);
    k = health_topo_server(t, 2)->check;
    assert_int_equal(k->kind, HEALTH_CHECK_JSON);
    assert_string_equal(k->field, "net.eth0.tx");
    assert_int_equal(k->mode, HEALTH_MODE_GAUGE);
    assert_float_equal(k->unit_bits, 1e6, 0);
    k = health_topo_server(t, 3)->check;
    assert_int_equal(k->kind, HEALTH_CHECK_TCP);
    assert_int_equal(k->addr.family, 6);
    assert_int_equal(k->port, 8080);
    k = health_topo_server(t, 4)->check;
    assert_int_equal(k->kind, HEALTH_CHECK_FILE);
    assert_string_equal(k->path, "/etc/steerdns/states/gz-u-3.state");
    assert_int_equal(k->stale_after_ms, 10000);

    const health_settings_t *st = health_topo_settings(t);
    assert_int_equal(st->interval_ms, 2000);
    assert_float_equal(st->threshold, 0.80, 1e-12);
    assert_float_equal(st->return_threshold, 0.75, 1e-12);
    assert_int_equal(st->fall, 4);
    assert_int_equal(st->rise, 2);
    assert_int_equal(st->busy_after, 1);
    assert_int_equal(st->idle_after, 2);
    assert_int_equal(st->max_body, 4194304);
    assert_string_equal(st->admin_file, "/etc/steerdns/admin.state");

    /* The initial table: every server and cluster UNKNOWN. */
    const health_table_t *tb = health_table_acquire(t);
    assert_non_null(tb);
    assert_int_equal(health_table_seq(tb), 0);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(health_server_state(tb, i), HEALTH_UNKNOWN);
        assert_true(health_state_usable(health_server_state(tb, i)));
        assert_float_equal(health_server_util(tb, i), 0, 0);
    }
    assert_int_equal(health_server_flags(tb, 3), HEALTH_F_NO_RATE);
    assert_int_equal(health_cluster_state(tb, 1), HEALTH_UNKNOWN);
    assert_int_equal(health_cluster_unknown(tb, 1), 3);
    assert_int_equal(health_cluster_idle(tb, 1), 0);
    unload(&l);
}

static void test_empty_and_defaults(void **state)
{
    (void)state;
    loaded_t l;
    load_text(&l, "other: 1\n");
    assert_int_equal(l.rc, 0);
    assert_int_equal(health_topo_servers(l.topo), 0);
    assert_non_null(health_table_acquire(l.topo));
    const health_settings_t *st = health_topo_settings(l.topo);
    assert_int_equal(st->interval_ms, 1000);
    assert_int_equal(st->timeout_ms, 0);
    assert_float_equal(st->threshold, 0.9, 1e-12);
    assert_float_equal(st->return_threshold, 0.85, 1e-12);
    assert_int_equal(st->fall, 3);
    assert_null(st->admin_file);
    unload(&l);
}

/* Compare a fixture's diagnostics with its "# expect:" lines. */
static void check_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), CONF_DIR "%s", name);
    loaded_t l;
    load_file(&l, path);
    assert_int_not_equal(l.rc, 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    char want[64][1024];
    size_t nwant = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "# expect: ", 10) != 0) continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(want[nwant++], sizeof(want[0]), "%s", line + 10);
    }
    fclose(f);
    bool print = getenv("HEALTH_CONF_PRINT") != NULL;
    size_t prefix = strlen(path) + 1;
    bool ok = l.d.n == nwant;
    for (size_t i = 0; i < l.d.n; i++) {
        char got[1024];
        diag_format(&l.d.items[i], got, sizeof(got));
        const char *rel = strncmp(got, path, prefix - 1) == 0 ? got + prefix : got;
        if (print) printf("# expect: %s\n", rel);
        if (i < nwant && strcmp(rel, want[i]) != 0) {
            fprintf(stderr, "%s: diagnostic %zu\n  expected: %s\n  actual:   %s\n", name, i + 1,
                    want[i], rel);
            ok = false;
        }
    }
    if (l.d.n != nwant) {
        fprintf(stderr, "%s: expected %zu diagnostics, got %zu:\n", name, nwant, l.d.n);
        diag_print(&l.d, stderr);
    }
    unload(&l);
    assert_true(ok);
}

static void test_bad_refs(void **state)
{
    (void)state;
    check_fixture("bad_refs.yaml");
}

static void test_bad_keys(void **state)
{
    (void)state;
    check_fixture("bad_keys.yaml");
}

static void test_bad_values(void **state)
{
    (void)state;
    check_fixture("bad_values.yaml");
}

static void test_bad_timing(void **state)
{
    (void)state;
    check_fixture("bad_timing.yaml");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    check_fixture("bad_shapes.yaml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),       cmocka_unit_test(test_empty_and_defaults),
        cmocka_unit_test(test_bad_refs),   cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_bad_values), cmocka_unit_test(test_bad_timing),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
