/*
 * test_core.c - unit tests of the base room: names, YAML tree, settings
 * tables, diagnostics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/dname.h"
#include "core/netaddr.h"
#include "core/yconf.h"

static void test_dname_roundtrip(void **state)
{
    (void)state;
    uint8_t origin[DNAME_MAXLEN], name[DNAME_MAXLEN];
    char text[DNAME_STRLEN];
    assert_int_equal(dname_from_str("example.com.", NULL, origin), 13);
    assert_int_equal(dname_from_str("www", origin, name), 17);
    dname_to_str(name, text, sizeof(text));
    assert_string_equal(text, "www.example.com.");
    assert_int_equal(dname_from_str("@", origin, name), 13);
    assert_true(dname_equal(name, origin));
    assert_int_equal(dname_from_str("a\\.b.example.com.", NULL, name), 17);
    dname_to_str(name, text, sizeof(text));
    assert_string_equal(text, "a\\.b.example.com.");
    assert_int_equal(dname_from_str("\\065.", NULL, name), 3);
    assert_int_equal(name[1], 'A');
    assert_int_equal(dname_from_str(".", NULL, name), 1);
    assert_int_equal(dname_labels(name), 0);
}

static void test_dname_errors(void **state)
{
    (void)state;
    uint8_t name[DNAME_MAXLEN];
    assert_true(dname_from_str("a..b.", NULL, name) < 0);
    assert_true(dname_from_str(".a.", NULL, name) < 0);
    assert_true(dname_from_str("relative", NULL, name) < 0);
    char longlabel[80];
    memset(longlabel, 'x', 64);
    strcpy(longlabel + 64, ".");
    assert_true(dname_from_str(longlabel, NULL, name) < 0);
    char longname[400] = "";
    for (int i = 0; i < 64; i++)
        strcat(longname, "abc.");
    assert_true(dname_from_str(longname, NULL, name) < 0);
}

static void test_dname_compare_subdomain(void **state)
{
    (void)state;
    uint8_t a[DNAME_MAXLEN], b[DNAME_MAXLEN], c[DNAME_MAXLEN];
    dname_from_str("WWW.Example.COM.", NULL, a);
    dname_from_str("example.com.", NULL, b);
    dname_from_str("www.example.com.", NULL, c);
    assert_true(dname_equal(a, c));
    assert_true(dname_is_subdomain(a, b));
    assert_false(dname_is_subdomain(b, a));
    assert_int_equal(dname_compare(a, c), 0);
    assert_true(dname_compare(b, a) < 0);
    dname_lower(a);
    assert_memory_equal(a, c, dname_len(c));
}

static void test_dname_unpack(void **state)
{
    (void)state;
    /* header(12) + "3www7example3com0" + pointer to offset 16 ("example") */
    uint8_t msg[64] = {0};
    const uint8_t nm[] = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
    memcpy(msg + 12, nm, sizeof(nm));
    size_t off = 12 + sizeof(nm);
    msg[off] = 0xC0;
    msg[off + 1] = 16;
    uint8_t out[DNAME_MAXLEN];
    size_t pos = off;
    assert_int_equal(dname_unpack(msg, off + 2, &pos, out), 13);
    assert_int_equal(pos, off + 2);
    /* A pointer to itself (a loop) is refused. */
    msg[off + 1] = (uint8_t)off;
    pos = off;
    assert_true(dname_unpack(msg, off + 2, &pos, out) < 0);
    /* Truncated. */
    pos = 12;
    assert_true(dname_unpack(msg, 14, &pos, out) < 0);
}

static void test_value_parsers(void **state)
{
    (void)state;
    uint64_t u;
    double f;
    assert_int_equal(yconf_str_to_duration_ms("500ms", &u), 0);
    assert_int_equal(u, 500);
    assert_int_equal(yconf_str_to_duration_ms("2", &u), 0);
    assert_int_equal(u, 2000);
    assert_int_equal(yconf_str_to_duration_ms("1.5m", &u), 0);
    assert_int_equal(u, 90000);
    assert_true(yconf_str_to_duration_ms("5 parsecs", &u) < 0);
    assert_int_equal(yconf_str_to_bandwidth("10Gbit", &u), 0);
    assert_int_equal(u, 10000000000ull);
    assert_int_equal(yconf_str_to_bandwidth("100Mbps", &u), 0);
    assert_int_equal(u, 100000000ull);
    assert_true(yconf_str_to_bandwidth("10GB", &u) < 0);
    assert_true(yconf_str_to_bandwidth("10G", &u) < 0);
    assert_int_equal(yconf_str_to_percent("90%", &f), 0);
    assert_float_equal(f, 0.9, 1e-12);
    assert_int_equal(yconf_str_to_percent("0.85", &f), 0);
    assert_float_equal(f, 0.85, 1e-12);
    assert_true(yconf_str_to_percent("90", &f) < 0);
    assert_true(yconf_str_to_u64("-1", &u) < 0);
    assert_true(yconf_str_to_u64("18446744073709551616", &u) < 0);
}

typedef struct {
    uint32_t port;
    bool flag;
    uint64_t timeout;
    const char *name;
    int mode;
} sample_t;

static const char *const modes[] = {"fast", "slow", NULL};
static const yconf_key_t sample_table[] = {
    {"port", YCONF_T_U32, offsetof(sample_t, port), 0, 65535, "53", 0, NULL, NULL},
    {"flag", YCONF_T_BOOL, offsetof(sample_t, flag), 0, 0, "false", 0, NULL, NULL},
    {"timeout", YCONF_T_DURATION, offsetof(sample_t, timeout), 1, 60000, "10s", 0, NULL, NULL},
    {"name", YCONF_T_STR, offsetof(sample_t, name), 0, 0, NULL, YCONF_REQUIRED, NULL, NULL},
    {"mode", YCONF_T_ENUM, offsetof(sample_t, mode), 0, 0, "fast", 0, modes, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* Render every diagnostic as "line:col: message" joined by '|'. */
static void diag_lines(const diag_list_t *d, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < d->n; i++) {
        char one[512];
        snprintf(one, sizeof(one), "%s%u:%u: %s", i ? "|" : "", d->items[i].line, d->items[i].col,
                 d->items[i].msg);
        strncat(out, one, size - strlen(out) - 1);
    }
}

static void test_apply_good(void **state)
{
    (void)state;
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const char *text = "port: 5353\nname: x\nmode: slow\n";
    const yconf_node_t *root;
    assert_int_equal(yconf_parse_buffer(a, "t.yaml", text, strlen(text), &d, &root), 0);
    sample_t s = {0};
    assert_int_equal(yconf_apply(root, sample_table, &s, a, &d, "server", NULL), 0);
    assert_int_equal(s.port, 5353);
    assert_false(s.flag);
    assert_int_equal(s.timeout, 10000);
    assert_string_equal(s.name, "x");
    assert_int_equal(s.mode, 1);
    diag_clear(&d);
    arena_free(a);
}

static void test_apply_errors(void **state)
{
    (void)state;
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const char *text = "port: 70000\n"
                       "flag: maybe\n"
                       "colour: red\n"
                       "mode: medium\n"
                       "port: 1\n";
    const yconf_node_t *root;
    assert_int_equal(yconf_parse_buffer(a, "t.yaml", text, strlen(text), &d, &root), 0);
    sample_t s = {0};
    yconf_apply(root, sample_table, &s, a, &d, "server", NULL);
    char got[4096];
    diag_lines(&d, got, sizeof(got));
    assert_string_equal(got,
                        "5:1: duplicate key 'port' (first at line 1)"
                        "|1:7: server.port: value '70000' out of range [0, 65535]"
                        "|2:7: server.flag: invalid value 'maybe': expected true or false"
                        "|3:1: server: unknown key 'colour' (known: port, flag, timeout, name, mode)"
                        "|4:7: server.mode: unknown value 'medium' (expected one of: fast, slow)"
                        "|1:1: server.name: required setting missing");
    diag_clear(&d);
    arena_free(a);
}

static void test_yaml_syntax_error_position(void **state)
{
    (void)state;
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const char *text = "a: 1\nb: [1, 2\nc: 3\n";
    const yconf_node_t *root = NULL;
    assert_true(yconf_parse_buffer(a, "bad.yaml", text, strlen(text), &d, &root) < 0);
    assert_null(root);
    assert_int_equal(diag_errors(&d), 1);
    assert_string_equal(d.items[0].file, "bad.yaml");
    assert_true(d.items[0].line >= 2);
    diag_clear(&d);
    arena_free(a);
}

static void test_yaml_alias_bomb(void **state)
{
    (void)state;
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    /* Each level doubles: 2^30 nodes if expanded. */
    char text[4096] = "l0: &l0 [x, x]\n";
    for (int i = 1; i < 30; i++) {
        char line[64];
        snprintf(line, sizeof(line), "l%d: &l%d [*l%d, *l%d]\n", i, i, i - 1, i - 1);
        strcat(text, line);
    }
    const yconf_node_t *root = NULL;
    assert_true(yconf_parse_buffer(a, "bomb.yaml", text, strlen(text), &d, &root) < 0);
    assert_int_equal(diag_errors(&d), 1);
    diag_clear(&d);
    arena_free(a);
}

static void test_yaml_positions(void **state)
{
    (void)state;
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const char *text = "zones:\n  - origin: example.com\n    ttl: 300\n";
    const yconf_node_t *root;
    assert_int_equal(yconf_parse_buffer(a, "p.yaml", text, strlen(text), &d, &root), 0);
    const yconf_node_t *zones = yconf_map_get(root, "zones");
    assert_non_null(zones);
    assert_int_equal(zones->kind, YCONF_SEQ);
    const yconf_node_t *ttl = yconf_map_get(zones->u.seq.items[0], "ttl");
    assert_int_equal(ttl->pos.line, 3);
    assert_int_equal(ttl->pos.col, 10);
    diag_clear(&d);
    arena_free(a);
}

static void test_netaddr(void **state)
{
    (void)state;
    netaddr_t a, p;
    char buf[NETADDR_STRLEN];
    assert_int_equal(netaddr_parse_cidr("198.18.0.0/24", false, &p), 0);
    assert_int_equal(p.family, 4);
    assert_int_equal(p.bits, 24);
    assert_true(netaddr_parse_cidr("198.18.0.1/24", false, &p) < 0);
    assert_int_equal(netaddr_parse_cidr("198.18.0.1/24", true, &p), 0);
    netaddr_format(&p, false, buf, sizeof(buf));
    assert_string_equal(buf, "198.18.0.0/24");
    assert_int_equal(netaddr_parse("198.18.0.77", &a), 0);
    assert_true(netaddr_contains(&p, &a));
    assert_int_equal(netaddr_parse_cidr("2001:db8::/29", true, &p), 0);
    netaddr_format(&p, false, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8::/29");
    assert_true(netaddr_parse_cidr("10.0.0.0/33", false, &p) < 0);
    assert_true(netaddr_parse_cidr("10.0.0.0/", false, &p) < 0);
    assert_true(netaddr_parse_cidr("nonsense", false, &p) < 0);
    assert_int_equal(netaddr_parse("::1", &a), 0);
    netaddr_format(&a, false, buf, sizeof(buf));
    assert_string_equal(buf, "::1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dname_roundtrip),
        cmocka_unit_test(test_dname_errors),
        cmocka_unit_test(test_dname_compare_subdomain),
        cmocka_unit_test(test_dname_unpack),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_apply_good),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_yaml_syntax_error_position),
        cmocka_unit_test(test_yaml_alias_bomb),
        cmocka_unit_test(test_yaml_positions),
        cmocka_unit_test(test_netaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
