/*
 * test_zones.c - unit tests of the zone database: building from YAML,
 * validation diagnostics with exact positions, and the lookup (zone by
 * longest suffix, closest encloser, wildcards, cuts, empty non-terminals).
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
#include "zones/zones.h"

typedef struct fx {
    arena_t *a;
    diag_list_t d;
    zones_t *db;
    int rc;
} fx_t;

static void build(fx_t *f, const char *yaml)
{
    f->a = arena_new();
    diag_init(&f->d);
    const yconf_node_t *root;
    assert_int_equal(yconf_parse_buffer(f->a, "z.yaml", yaml, strlen(yaml), &f->d, &root), 0);
    zones_config_in_t in = {.zones = yconf_map_get(root, "zones"), .base_dir = "."};
    f->db = NULL;
    f->rc = zones_build(&in, f->a, &f->d, &f->db);
}

static void done(fx_t *f)
{
    diag_clear(&f->d);
    arena_free(f->a);
}

static void diags(const fx_t *f, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < f->d.n; i++) {
        char one[600];
        snprintf(one, sizeof(one), "%s%u:%u: %s%s", i ? "\n" : "", f->d.items[i].line,
                 f->d.items[i].col, f->d.items[i].severity == DIAG_WARNING ? "warning: " : "",
                 f->d.items[i].msg);
        strncat(out, one, size - strlen(out) - 1);
    }
}

static const char *good =
    "zones:\n"
    "  - origin: example.test\n"
    "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"
    "    ns: [ns1]\n"
    "    records:\n"
    "      ns1: \"A 192.0.2.1\"\n"
    "      www: [\"A 192.0.2.80\", \"A 192.0.2.81\", \"A 192.0.2.80\"]\n"
    "      \"*.wild\": \"A 192.0.2.99\"\n"
    "      a.b.ent: \"A 192.0.2.7\"\n"
    "      cut: \"NS ns.cut\"\n"
    "      ns.cut: \"A 192.0.2.53\"\n"
    "      app: {steer: downloads}\n"
    "  - origin: sub.example.test\n"
    "    soa: \"ns1.example.test. h 1 1 1 1 60\"\n"
    "    ns: [ns1.example.test.]\n";

static zones_result_t lookup(const fx_t *f, const char *name, bool ds, const char **node_out)
{
    static char buf[DNAME_STRLEN];
    uint8_t w[DNAME_MAXLEN];
    int len = dname_from_str(name, NULL, w);
    assert_true(len > 0);
    zones_qname_t q;
    zones_qname_prepare(&q, w, (size_t)len);
    zones_match_t m;
    zones_lookup(f->db, &q, ds, &m);
    if (m.node)
        dname_to_str(m.node->name, buf, sizeof(buf));
    else
        buf[0] = '\0';
    *node_out = buf;
    return m.result;
}

static void test_lookup(void **state)
{
    (void)state;
    fx_t f;
    build(&f, good);
    char ds[4096];
    diags(&f, ds, sizeof(ds));
    assert_int_equal(f.rc, 0);
    assert_string_equal(ds, "");
    assert_int_equal(zones_count(f.db), 2);
    struct {
        const char *name;
        bool ds;
        zones_result_t r;
        const char *node;
    } t[] = {
        {"www.example.test.", false, ZONES_EXACT, "www.example.test."},
        {"WWW.EXAMPLE.TEST.", false, ZONES_EXACT, "www.example.test."},
        {"example.test.", false, ZONES_EXACT, "example.test."},
        {"nope.example.test.", false, ZONES_NXDOMAIN, "example.test."},
        {"x.www.example.test.", false, ZONES_NXDOMAIN, "www.example.test."},
        {"b.ent.example.test.", false, ZONES_EXACT, "b.ent.example.test."},
        {"c.b.ent.example.test.", false, ZONES_NXDOMAIN, "b.ent.example.test."},
        {"x.wild.example.test.", false, ZONES_WILDCARD, "*.wild.example.test."},
        {"y.x.wild.example.test.", false, ZONES_WILDCARD, "*.wild.example.test."},
        {"wild.example.test.", false, ZONES_EXACT, "wild.example.test."},
        {"cut.example.test.", false, ZONES_DELEGATION, "cut.example.test."},
        {"ns.cut.example.test.", false, ZONES_DELEGATION, "cut.example.test."},
        {"cut.example.test.", true, ZONES_EXACT, "cut.example.test."},
        {"x.cut.example.test.", true, ZONES_DELEGATION, "cut.example.test."},
        {"a.sub.example.test.", false, ZONES_NXDOMAIN, "sub.example.test."},
        {"sub.example.test.", false, ZONES_EXACT, "sub.example.test."},
        {"example.org.", false, ZONES_NOTAUTH, ""},
        {"test.", false, ZONES_NOTAUTH, ""},
        {".", false, ZONES_NOTAUTH, ""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *node;
        zones_result_t r = lookup(&f, t[i].name, t[i].ds, &node);
        if (r != t[i].r || strcmp(node, t[i].node) != 0)
            fail_msg("%s%s: expected result %d at '%s', got %d at '%s'", t[i].name,
                     t[i].ds ? " (DS)" : "", t[i].r, t[i].node, r, node);
    }
    /* Duplicates are removed, order kept; the resolver reference is kept. */
    const zones_zone_t *z = zones_find_zone(f.db, (const uint8_t *)"\3www\7example\4test");
    assert_non_null(z);
    const zones_node_t *www = zones_find_node(z, (const uint8_t *)"\3www\7example\4test");
    assert_non_null(www);
    assert_int_equal(zones_node_rrset(www, ZONES_TYPE_A)->count, 2);
    const zones_node_t *app = zones_find_node(z, (const uint8_t *)"\3app\7example\4test");
    assert_non_null(app);
    assert_non_null(app->resolver);
    assert_int_equal(z->negative_ttl, 120);
    done(&f);
}

static void test_errors(void **state)
{
    (void)state;
    struct {
        const char *yaml;
        const char *want;
    } t[] = {
        {"zones:\n  - origin: a.test\n    ns: [ns1]\n    records: {ns1: \"A 192.0.2.1\"}\n",
         "2:13: zone 'a.test.' has no SOA record"},
        {"zones:\n  - origin: a.test\n    soa: \"ns1 h 1 1 1 1 1\"\n",
         "2:13: zone 'a.test.' has no NS records at its apex"},
        {"zones:\n  - origin: a..test\n",
         "2:13: zones[0].origin: invalid domain name 'a..test'"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {\"@\": \"CNAME b.test.\"}}\n",
         "2:72: CNAME at the zone apex 'a.test.' is not allowed (RFC 1912 section 2.4)"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: [\"CNAME a\", \"CNAME b\"]}}\n",
         "2:71: 'x.a.test.' has more than one CNAME record"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {\"*.w\": \"NS ns1\"}}\n",
         "2:74: NS records at the wildcard '*.w.a.test.' are not allowed (RFC 4592 section 4.2)"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: \"SOA a b 1 1 1 1 1\"}}\n",
         "2:70: SOA is only allowed at the zone apex 'a.test.'"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: \"DNAME b.test.\"}}\n",
         "2:70: DNAME is not supported"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: \"CH A 1.2.3.4\"}}\n",
         "2:70: only class IN is served"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: \"y A 1.2.3.4\"}}\n",
         "2:70: record 'y A 1.2.3.4': Syntax error, could not parse the RR's rdata"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: 7}}\n",
         "2:70: record '7': Syntax error, could not parse the RR's class"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {x: [[1]]}}\n",
         "2:71: zones[\"a.test\"].records.x[0]: expected a record such as \"300 A 192.0.2.1\" or a resolver such as {steer: NAME}"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], colour: red}\n",
         "2:57: zones[0]: unknown key 'colour' (known: origin, ttl, soa, ns, records, import, include, carrier)"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {cut: \"NS x.cut\", \"x.cut\": \"A 1.2.3.4\", \"y.cut\": \"TXT no\"}}\n",
         "2:115: warning: 'y.cut.a.test.' is below a zone cut: only A/AAAA glue is kept, this record is ignored"},
        {"zones:\n  - {origin: a.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {app: {steer: x}, \"app\": \"A 1.2.3.4\"}}\n",
         "2:84: duplicate key 'app' (first at line 2)"},
        {"zones:\n  - {origin: a.test, ttl: 1.5, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1]}\n",
         "2:27: zones[0].ttl: a TTL is a whole number of seconds"},
        {"zones:\n  - {include: \"nonexistent-dir/x.yaml\"}\n",
         "2:15: zones[0].include: no such file './nonexistent-dir/x.yaml'"},
        {"zones:\n  - {include: x, origin: a.test}\n",
         "2:26: zones[0]: 'include' stands alone; put 'origin' in the included zone files"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        fx_t f;
        build(&f, t[i].yaml);
        char got[8192];
        diags(&f, got, sizeof(got));
        if (strcmp(got, t[i].want) != 0)
            fail_msg("case %zu: expected diagnostic\n  %s\ngot\n  %s", i, t[i].want, got);
        done(&f);
    }
}

static void test_ttl_rules(void **state)
{
    (void)state;
    fx_t f;
    build(&f, "zones:\n  - {origin: a.test, ttl: 1h, soa: \"ns1 h 1 1 1 1 7200\", ns: [ns1], "
              "records: {x: [\"300 A 192.0.2.1\", \"600 A 192.0.2.2\"], y: \"A 192.0.2.3\"}}\n");
    assert_int_equal(f.rc, 0);
    const zones_zone_t *z = zones_get(f.db, 0);
    /* RFC 2308: min(SOA TTL, MINIMUM). */
    assert_int_equal(z->negative_ttl, 3600);
    const zones_node_t *x = zones_find_node(z, (const uint8_t *)"\1x\1a\4test");
    /* RFC 2181 5.2: one TTL per RRset, the smallest, with a warning. */
    assert_int_equal(zones_node_rrset(x, ZONES_TYPE_A)->ttl, 300);
    assert_int_equal(f.d.warnings, 1);
    const zones_node_t *y = zones_find_node(z, (const uint8_t *)"\1y\1a\4test");
    assert_int_equal(zones_node_rrset(y, ZONES_TYPE_A)->ttl, 3600);
    done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ttl_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
