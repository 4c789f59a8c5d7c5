/*
 * test_geo.c - unit tests of the geo room (geo_build, geo_classify,
 * geo_explain) against MaxMind's test databases in
 * ${STEERDNS_SHARED}/testdata/mmdb (their source-data JSON files say which
 * network maps where), CSV and CIDR list files the tests write into a
 * temporary folder, and the bad-config fixtures in tests/unit/geo/bad/,
 * whose "# expect:" lines are the exact diagnostics.
 *
 * Placeholders in YAML and expectations: @MMDB@ = the test databases'
 * folder, @TMP@ = this run's temporary folder, @DIR@ = the fixtures' folder.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"
#include "geo/geo.h"

#define MMDB_DIR STEERDNS_SHARED "/testdata/mmdb"
#define BAD_DIR  GEO_TEST_DIR "/bad"

static char tmpdir[256];

/* ---- allocation counting (replaces malloc for this binary) ----
 * Under ASan the sanitizer owns malloc, so the count is not available
 * there (the test says so and is skipped). */
#if !defined(STEERDNS_SANITIZED)
#define COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static volatile int counting;
static volatile size_t alloc_count;
void *malloc(size_t n)
{
    if (counting) alloc_count++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (counting) alloc_count++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (counting) alloc_count++;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    if (counting && p) alloc_count++;
    __libc_free(p);
}
#endif

/* ---- helpers ---- */

/* Replace every placeholder; returns a malloc'd string. */
static char *subst(const char *s)
{
    static const char *const keys[] = {"@MMDB@", "@TMP@", "@DIR@"};
    const char *vals[] = {MMDB_DIR, tmpdir, BAD_DIR};
    size_t cap = strlen(s) * 4 + 4096, n = 0;
    char *out = malloc(cap);
    for (const char *p = s; *p;) {
        int hit = -1;
        for (int k = 0; k < 3; k++)
            if (strncmp(p, keys[k], strlen(keys[k])) == 0) hit = k;
        if (hit >= 0) {
            size_t vl = strlen(vals[hit]);
            memcpy(out + n, vals[hit], vl);
            n += vl;
            p += strlen(keys[hit]);
        } else {
            out[n++] = *p++;
        }
        assert_true(n + 1024 < cap);
    }
    out[n] = '\0';
    return out;
}

typedef struct fx {
    arena_t *a;
    diag_list_t d;
    geo_t *g;
    int rc;
    char diags[16384];
} fx_t;

/* Diagnostics as "file:line:col: severity: msg" lines, file as basename. */
static void format_diags(const diag_list_t *d, char *out, size_t size)
{
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < d->n; i++) {
        diag_t x = d->items[i];
        char *file = x.file;
        if (file && strrchr(file, '/')) x.file = strrchr(file, '/') + 1;
        char line[2048];
        diag_format(&x, line, sizeof(line));
        int w = snprintf(out + used, size - used, "%s\n", line);
        if (w < 0 || (size_t)w >= size - used) break;
        used += (size_t)w;
    }
}

/* Build a classifier from YAML text with a `regions:` map (name ->
 * {match: [...]}) and a `geo:` section. */
static void build_text(fx_t *f, const char *name, const char *yaml_in, const char *base_dir)
{
    memset(f, 0, sizeof(*f));
    f->a = arena_new();
    diag_init(&f->d);
    char *yaml = subst(yaml_in);
    const yconf_node_t *root = NULL;
    f->rc = yconf_parse_buffer(f->a, name, yaml, strlen(yaml), &f->d, &root);
    free(yaml);
    if (f->rc == 0) {
        const yconf_node_t *rn = yconf_map_get(root, "regions");
        size_t nreg = rn && rn->kind == YCONF_MAP ? rn->u.map.n : 0;
        geo_region_def_t *regs = arena_calloc(f->a, nreg ? nreg : 1, sizeof(*regs));
        for (size_t i = 0; i < nreg; i++) {
            regs[i].name = rn->u.map.pairs[i].key->u.scalar.str;
            regs[i].match = yconf_map_get(rn->u.map.pairs[i].value, "match");
        }
        geo_config_in_t in = {.section = yconf_map_get(root, "geo"),
                              .regions = regs,
                              .nregions = nreg,
                              .base_dir = base_dir};
        f->rc = geo_build(&in, f->a, &f->d, &f->g);
    }
    format_diags(&f->d, f->diags, sizeof(f->diags));
}

static void build_ok(fx_t *f, const char *yaml)
{
    build_text(f, "t.yaml", yaml, tmpdir);
    if (f->rc != 0 || f->d.n != 0) fprintf(stderr, "unexpected diagnostics:\n%s", f->diags);
    assert_int_equal(f->rc, 0);
    assert_non_null(f->g);
}

static void fx_free(fx_t *f)
{
    geo_free(f->g);
    arena_free(f->a);
    diag_clear(&f->d);
}

static geo_result_t cls(const geo_t *g, const char *client)
{
    netaddr_t a;
    if (netaddr_parse_cidr(client, true, &a) != 0) fail_msg("bad test address %s", client);
    geo_result_t r;
    memset(&r, 0x55, sizeof(r));
    geo_classify(g, &a, &r);
    /* explain must say the same */
    geo_result_t e;
    geo_explain(g, &a, NULL, &e);
    assert_memory_equal(&r, &e, offsetof(geo_result_t, lat));
    return r;
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define EXPECT_CLS(g, client, cc, reg, car, scp)                                                   \
    do {                                                                                           \
        geo_result_t r_ = cls((g), (client));                                                      \
        if (strcmp(r_.country, (cc)) != 0 || r_.region != (reg) || r_.carrier != (car) ||          \
            r_.scope != (scp))                                                                     \
            fail_msg("%s: expected country '%s' region %d carrier %d scope %d, got '%s' %d "       \
                     "%d %d",                                                                      \
                     (client), (cc), (int)(reg), (int)(car), (int)(scp), r_.country,               \
                     (int)r_.region, (int)r_.carrier, (int)r_.scope);                              \
    } while (0)

static const uint16_t NONE = GEO_NONE;

/* ---- MaxMind City test database ---- */

static const char *const city_cfg = "regions:\n"
                                    "  england: {match: [GB-ENG]}\n"
                                    "  uk: {match: [gb]}\n"
                                    "  jilin: {match: [CN-22]}\n"
                                    "  china: {match: [CN]}\n"
                                    "  usa: {match: [US]}\n"
                                    "geo:\n"
                                    "  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n";

static void test_city_maxmind(void **state)
{
    (void)state;
    fx_t f;
    build_ok(&f, city_cfg);
    /* ECS /24s from MaxMind's source data. */
    EXPECT_CLS(f.g, "2.2.3.0/24", "GB", 0, NONE, 24);
    EXPECT_CLS(f.g, "149.101.100.0/24", "US", 4, NONE, 28);
    EXPECT_CLS(f.g, "175.16.199.0/24", "CN", 2, NONE, 24);
    EXPECT_CLS(f.g, "81.2.69.142", "GB", 0, NONE, 31);
    EXPECT_CLS(f.g, "81.2.69.142/32", "GB", 0, NONE, 31);
    EXPECT_CLS(f.g, "89.160.20.112/28", "SE", NONE, NONE, 28);
    /* 81.2.69.0/24 asks for 81.2.69.0, which is in no network. */
    geo_result_t r = cls(f.g, "81.2.69.0/24");
    assert_string_equal(r.country, "");
    assert_int_equal(r.region, GEO_NONE);
    assert_true(isnan(r.lat) && isnan(r.lon));
    assert_int_equal(r.asn, 0);
    assert_true(r.scope >= 24);
    EXPECT_CLS(f.g, "1.2.3.0/24", "", NONE, NONE, cls(f.g, "1.2.3.0/24").scope);
    /* A /16 client into /24 data: 175.16.0.0 itself is in no network; the
     * scope is the empty network around it, at least the bits given. */
    r = cls(f.g, "175.16.0.0/16");
    assert_string_equal(r.country, "");
    assert_true(r.scope >= 16);
    /* IPv6 */
    EXPECT_CLS(f.g, "2a02:d3c0::/29", "GB", 1, NONE, 29);
    EXPECT_CLS(f.g, "2a02:d3c0::/32", "GB", 1, NONE, 29);
    EXPECT_CLS(f.g, "2a02:d3c7:ffff::1", "GB", 1, NONE, 29);
    EXPECT_CLS(f.g, "2001:250::/48", "CN", 3, NONE, 31);
    EXPECT_CLS(f.g, "2001:480:10::/48", "US", 4, NONE, 48);
    /* IPv4-mapped and the aliases of the IPv6 tree. */
    EXPECT_CLS(f.g, "::ffff:2.2.3.1", "GB", 0, NONE, 120);
    EXPECT_CLS(f.g, "::ffff:149.101.100.7", "US", 4, NONE, 124);
    EXPECT_CLS(f.g, "2002:0202:0301::/48", "GB", 0, NONE, 40);
    /* Location */
    r = cls(f.g, "2.125.160.216");
    assert_float_equal(r.lat, 51.75, 1e-4);
    assert_float_equal(r.lon, -1.25, 1e-4);
    assert_int_equal(r.scope, 29);
    fx_free(&f);
}

/* Every answer agrees with libmaxminddb's own lookup: same country, and a
 * scope equal to the network prefix it reports. */
static void test_city_matches_libmaxminddb(void **state)
{
    (void)state;
    fx_t f;
    build_ok(&f, "geo:\n  city_db: @MMDB@/GeoLite2-City-Test.mmdb\n");
    MMDB_s db;
    assert_int_equal(MMDB_open(MMDB_DIR "/GeoLite2-City-Test.mmdb", MMDB_MODE_MMAP, &db), 0);
    uint64_t seed = 12345;
    size_t found = 0;
    for (int i = 0; i < 200000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        netaddr_t a = {0};
        struct sockaddr_storage ss = {0};
        uint32_t x = (uint32_t)(seed >> 32);
        int kind = i % 4;
        if (kind < 2) {
            /* IPv4 near the test networks or anywhere. */
            a.family = 4;
            a.bits = 32;
            if (kind == 0) x = (x & 0xffff0000u) | (x & 0xff);
            memcpy(a.addr, &x, 4);
            if (kind == 0) {
                static const uint8_t pre[][2] = {{2, 2},    {81, 2},    {149, 101}, {175, 16},
                                                 {89, 160}, {216, 160}, {202, 196}, {67, 43}};
                a.addr[0] = pre[x % 8][0];
                a.addr[1] = pre[x % 8][1];
            }
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, a.addr, 4);
        } else {
            a.family = 6;
            a.bits = 128;
            for (int k = 0; k < 16; k++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                a.addr[k] = (uint8_t)(seed >> 56);
            }
            a.addr[0] = 0x20;
            a.addr[1] = kind == 2 ? 0x01 : 0x02;
            if (kind == 2)
                a.addr[2] = a.addr[2] & 0x0f;
            else
                a.addr[2] = 0xc0 | (a.addr[2] & 0x3f), a.addr[1] = 0x02, a.addr[0] = 0x2a;
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, a.addr, 16);
        }
        int err;
        MMDB_lookup_result_s lr = MMDB_lookup_sockaddr(&db, (struct sockaddr *)&ss, &err);
        assert_int_equal(err, 0);
        geo_result_t r;
        geo_classify(f.g, &a, &r);
        char want[3] = "";
        if (lr.found_entry) {
            MMDB_entry_data_s v;
            if (MMDB_get_value(&lr.entry, &v, "country", "iso_code", NULL) == 0 && v.has_data)
                memcpy(want, v.utf8_string, 2), want[2] = '\0';
            found++;
        }
        unsigned nm = lr.netmask;
        if (a.family == 4) nm -= 96;
        if (strcmp(want, r.country) != 0 || nm != r.scope) {
            char s[NETADDR_STRLEN];
            netaddr_format(&a, false, s, sizeof(s));
            fail_msg("%s: libmaxminddb says '%s' /%u, geo says '%s' /%u", s, want, nm, r.country,
                     r.scope);
        }
    }
    assert_true(found > 1000);
    MMDB_close(&db);
    fx_free(&f);
}

static void test_region_match(void **state)
{
    (void)state;
    fx_t f;
    geo_result_t r;
    /* Subdivision beats country; keys compare case-insensitively. */
    build_ok(&f, "regions:\n"
                 "  uk: {match: [GB]}\n"
                 "  england: {match: [gb-eng]}\n"
                 "  washington: {match: [US-Wa]}\n"
                 "  nomatch: {}\n"
                 "geo:\n"
                 "  city_db: [@MMDB@/GeoIP2-City-Test.mmdb]\n");
    EXPECT_CLS(f.g, "2.2.3.9", "GB", 1, NONE, 24);
    EXPECT_CLS(f.g, "2a02:d3c0::1", "GB", 0, NONE, 29);
    EXPECT_CLS(f.g, "216.160.83.56", "US", 2, NONE, 29);
    EXPECT_CLS(f.g, "149.101.100.0", "US", NONE, NONE, 28);
    fx_free(&f);

    /* Two city databases: the first with data decides (the country
     * database has no subdivisions, so only the country key matches); the
     * scope is the longer of the two networks. */
    build_ok(&f, "regions:\n"
                 "  uk: {match: [GB]}\n"
                 "  england: {match: [GB-ENG]}\n"
                 "geo:\n"
                 "  city_db: [@MMDB@/GeoIP2-Country-Test.mmdb, @MMDB@/GeoIP2-City-Test.mmdb]\n");
    r = cls(f.g, "81.2.69.161");
    assert_string_equal(r.country, "GB");
    assert_int_equal(r.region, 0);
    assert_int_equal(r.scope, 27);
    assert_true(isnan(r.lat)); /* the country database has no location */
    fx_free(&f);
    build_ok(&f, "regions:\n"
                 "  uk: {match: [GB]}\n"
                 "  england: {match: [GB-ENG]}\n"
                 "geo:\n"
                 "  city_db: [@MMDB@/GeoIP2-City-Test.mmdb, @MMDB@/GeoIP2-Country-Test.mmdb]\n");
    r = cls(f.g, "81.2.69.161");
    assert_int_equal(r.region, 1);
    assert_float_equal(r.lat, 51.5142, 1e-4);
    /* 2.2.3.1: only the city database has it. */
    r = cls(f.g, "2.2.3.1");
    assert_int_equal(r.region, 1);
    assert_int_equal(r.scope, 24);
    fx_free(&f);
}

/* ---- ASN and ISP databases, carriers ---- */

static void test_asn_db_carriers(void **state)
{
    (void)state;
    fx_t f;
    build_ok(&f, "geo:\n"
                 "  asn_db: @MMDB@/GeoLite2-ASN-Test.mmdb\n"
                 "  carriers:\n"
                 "    telecom: {asns: [4134, AS4809]}\n"
                 "    unicom: {asns: [as4837]}\n"
                 "    google: {asns: [15169]}\n");
    assert_int_equal(geo_carrier_count(f.g), 3);
    assert_string_equal(geo_carrier_name(f.g, 1), "unicom");
    assert_null(geo_carrier_name(f.g, 3));
    assert_int_equal(geo_carrier_find(f.g, "google"), 2);
    assert_int_equal(geo_carrier_find(f.g, "nope"), -1);
    geo_result_t r = cls(f.g, "1.0.0.1");
    assert_int_equal(r.asn, 15169);
    assert_int_equal(r.carrier, 2);
    assert_int_equal(r.scope, 24);
    assert_string_equal(r.country, "");
    r = cls(f.g, "49.64.0.0/16");
    assert_int_equal(r.asn, 4134);
    assert_int_equal(r.carrier, 0);
    assert_int_equal(r.scope, 11);
    r = cls(f.g, "27.192.1.0/24");
    assert_int_equal(r.asn, 4837);
    assert_int_equal(r.carrier, 1);
    r = cls(f.g, "2001:1700::/32");
    assert_int_equal(r.asn, 6730);
    assert_int_equal(r.carrier, GEO_NONE);
    assert_int_equal(r.scope, 27);
    r = cls(f.g, "12.81.96.1");
    assert_int_equal(r.asn, 7018); /* a record with no organisation */
    fx_free(&f);
}

static void test_isp_db(void **state)
{
    (void)state;
    fx_t f;
    build_ok(&f, "geo:\n"
                 "  asn_db: @MMDB@/GeoIP2-ISP-Test.mmdb\n"
                 "  asn_fields: {org: [isp, autonomous_system_organization]}\n"
                 "  carriers:\n"
                 "    telstra: {asns: [1221]}\n");
    geo_result_t r = cls(f.g, "1.128.0.0/16");
    assert_int_equal(r.asn, 1221);
    assert_int_equal(r.carrier, 0);
    assert_int_equal(r.scope, 11);
    /* ::1.0.128.0/113 has an ISP but no AS number: no ASN data. */
    r = cls(f.g, "1.0.128.1");
    assert_int_equal(r.asn, 0);
    assert_int_equal(r.carrier, GEO_NONE);
    /* explain names the ISP */
    char path[512];
    snprintf(path, sizeof(path), "%s/explain.txt", tmpdir);
    FILE *out = fopen(path, "w+");
    trace_t t = TRACE_FILE(out);
    netaddr_t a;
    netaddr_parse("1.128.0.1", &a);
    geo_explain(f.g, &a, &t, &r);
    rewind(out);
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, out);
    buf[n] = '\0';
    fclose(out);
    if (!strstr(buf, "AS1221 (Telstra Internet)") || !strstr(buf, "carrier telstra: AS1221"))
        fail_msg("explain output:\n%s", buf);
    fx_free(&f);
}

static void test_asn_csv(void **state)
{
    (void)state;
    write_file("asn.csv", "start,end,asn,org\n"
                          "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n"
                          "2.26.200.0,2.26.215.255,201907,\"LLC \"\"SPUTNIK\"\"\"\r\n"
                          "36.0.0.0,36.255.255.255,4134,Chinanet\n"
                          "36.1.0.0,36.1.3.255,9808,China Mobile\n"
                          "214.95.0.0,215.0.255.255,749,DoD\n"
                          "215.0.0.0,215.1.3.255,721,DoD NIC\n"
                          "240e::,240e:ff:ffff:ffff:ffff:ffff:ffff:ffff,4134,Chinanet\n"
                          "9.9.9.0,9.9.9.255,0,not routed\n");
    fx_t f;
    build_ok(&f, "geo:\n"
                 "  asn_csv: asn.csv\n"
                 "  carriers:\n"
                 "    telecom: {asns: [4134]}\n"
                 "    mobile: {asns: [9808]}\n");
    geo_result_t r = cls(f.g, "1.0.0.9");
    assert_int_equal(r.asn, 13335);
    assert_int_equal(r.scope, 24);
    /* 2.26.200.0-2.26.215.255 splits into two /21s. */
    r = cls(f.g, "2.26.212.1");
    assert_int_equal(r.asn, 201907);
    assert_int_equal(r.scope, 21);
    r = cls(f.g, "36.200.0.0/16");
    assert_int_equal(r.asn, 4134);
    assert_int_equal(r.carrier, 0);
    assert_int_equal(r.scope, 9); /* 36.128.0.0/9: no hole inside */
    r = cls(f.g, "36.1.2.0/24");
    assert_int_equal(r.asn, 9808);
    assert_int_equal(r.carrier, 1);
    assert_int_equal(r.scope, 22);
    r = cls(f.g, "36.0.0.1");
    assert_int_equal(r.asn, 4134);
    assert_int_equal(r.scope, 16); /* 36.0.0.0/16, beside the mobile /22 */
    /* Overlapping rows: where they overlap the narrower row wins. */
    r = cls(f.g, "215.0.5.0");
    assert_int_equal(r.asn, 721);
    r = cls(f.g, "214.95.0.1");
    assert_int_equal(r.asn, 749);
    r = cls(f.g, "240e:1::/32");
    assert_int_equal(r.asn, 4134);
    assert_int_equal(r.carrier, 0);
    assert_int_equal(r.scope, 24);
    r = cls(f.g, "9.9.9.9");
    assert_int_equal(r.asn, 0);
    fx_free(&f);
}

static void test_carrier_cidr_files(void **state)
{
    (void)state;
    write_file("telecom.txt", "# China Telecom\n"
                              "36.0.0.0/16\n"
                              "  36.1.0.0/16   # trailing comment\n"
                              "\n"
                              "240e::/24\r\n"
                              "1.0.0.7\n");
    write_file("asn2.csv", "36.0.0.0,36.255.255.255,9808,China Mobile\n");
    fx_t f;
    build_ok(&f, "geo:\n"
                 "  asn_csv: [@TMP@/asn2.csv]\n"
                 "  carriers:\n"
                 "    telecom:\n"
                 "      cidr_files: [telecom.txt]\n"
                 "      cidrs: [36.2.0.0/15]\n"
                 "    mobile: {asns: [9808], cidrs: [36.1.128.0/17]}\n");
    /* A CIDR list beats the ASN. */
    EXPECT_CLS(f.g, "36.0.5.0/24", "", NONE, 0, 16);
    /* Longest CIDR wins. */
    EXPECT_CLS(f.g, "36.1.200.0/24", "", NONE, 1, 17);
    EXPECT_CLS(f.g, "36.1.0.0/24", "", NONE, 0, 17);
    EXPECT_CLS(f.g, "36.3.0.0/24", "", NONE, 0, 15);
    /* Not in a list: the ASN decides. */
    EXPECT_CLS(f.g, "36.200.0.0/24", "", NONE, 1, 9);
    EXPECT_CLS(f.g, "240e:0:1::/48", "", NONE, 0, 24);
    EXPECT_CLS(f.g, "1.0.0.7", "", NONE, 0, 32);
    EXPECT_CLS(f.g, "1.0.0.6", "", NONE, NONE, 32);
    fx_free(&f);
}

/* ---- nets overrides ---- */

static void test_nets(void **state)
{
    (void)state;
    fx_t f;
    build_ok(&f, "regions:\n"
                 "  beijing: {match: [CN-11]}\n"
                 "  guangzhou: {match: [CN-22]}\n"
                 "  uk: {match: [GB]}\n"
                 "geo:\n"
                 "  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n"
                 "  asn_db: @MMDB@/GeoLite2-ASN-Test.mmdb\n"
                 "  carriers:\n"
                 "    telecom: {asns: [4134]}\n"
                 "    unicom: {}\n"
                 "  nets:\n"
                 "    \"175.16.0.0/16\": {region: beijing, carrier: telecom}\n"
                 "    \"175.16.199.0/24\": {carrier: unicom}\n"
                 "    \"2.2.0.0/16\": {region: beijing}\n"
                 "    \"2a02:d3c0::/32\": {region: guangzhou, carrier: unicom}\n"
                 "    \"2a02:d3c0:1::/48\": {carrier: telecom}\n"
                 "    10.1.0.0/24: {region: uk, carrier: unicom}\n");
    /* The override sets both: nothing else consulted; the scope is the
     * largest network around the client inside the /16 and outside the
     * longer override 175.16.199.0/24: 175.16.0.0/17. */
    EXPECT_CLS(f.g, "175.16.5.0/24", "", 0, 0, 17);
    EXPECT_CLS(f.g, "175.16.192.0/24", "", 0, 0, 22);
    /* A longer override sets only the carrier: the region comes from the
     * database (CN-22 -> guangzhou). */
    EXPECT_CLS(f.g, "175.16.199.0/24", "CN", 1, 1, 24);
    /* Region override only; carrier from ASN (none for this address). */
    EXPECT_CLS(f.g, "2.2.3.0/24", "GB", 0, NONE, 24);
    /* IPv6 */
    EXPECT_CLS(f.g, "2a02:d3c0:8000::/40", "", 1, 1, 33);
    EXPECT_CLS(f.g, "2a02:d3c0::/48", "", 1, 1, 48); /* beside the /48 below */
    EXPECT_CLS(f.g, "2a02:d3c0:1::/56", "GB", 2, 0, 48);
    /* A /16 ECS into a /24 override: decided by what the bits say (the
     * address with zeros), the scope is honest. */
    EXPECT_CLS(f.g, "10.1.0.0/16", "", 2, 1, 24);
    EXPECT_CLS(f.g, "10.1.1.0/24", "", NONE, NONE, cls(f.g, "10.1.1.0/24").scope);
    assert_true(cls(f.g, "10.1.1.0/24").scope >= 24);
    /* explain says which override and which match key decided */
    char path[512];
    snprintf(path, sizeof(path), "%s/explain-nets.txt", tmpdir);
    FILE *out = fopen(path, "w+");
    trace_t t = TRACE_FILE(out);
    netaddr_t a;
    geo_result_t r;
    netaddr_parse_cidr("175.16.199.0/24", false, &a);
    geo_explain(f.g, &a, &t, &r);
    netaddr_parse_cidr("175.16.5.0/24", false, &a);
    geo_explain(f.g, &a, &t, &r);
    /* A /16 client in a /24 override: the trace asks the override about
     * the same address the table used (the bits past /16 zero) and agrees
     * with the result; with a cap (the server's ECS limit) the scope is at
     * most the cap, in the result line too. */
    netaddr_parse_cidr("10.1.0.0/16", false, &a);
    geo_result_t rc;
    geo_classify(f.g, &a, &rc);
    geo_explain(f.g, &a, &t, &r);
    assert_int_equal(r.region, rc.region);
    assert_int_equal(r.carrier, rc.carrier);
    assert_int_equal(r.scope, 24);
    geo_explain_capped(f.g, &a, 20, &t, &r);
    assert_int_equal(r.region, rc.region);
    assert_int_equal(r.scope, rc.scope); /* the result is geo_classify's */
    rewind(out);
    char buf[8192] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, out);
    buf[n] = '\0';
    fclose(out);
    static const char *const want[] = {
        "geo: client 175.16.199.0/24 (24 bits given)\n",
        "geo: nets: override \"175.16.199.0/24\" (t.yaml:13:5): region none, carrier unicom\n",
        "network 175.16.199.0/24: country CN, subdivision 22, city Changchun, location "
        "43.8800,125.3228\n",
        "geo: carrier unicom: set by the nets override \"175.16.199.0/24\"\n",
        "geo: region guangzhou: match key 'cn-22' (t.yaml:3:23) for CN-22\n",
        "geo: result: region guangzhou, carrier unicom, country CN, AS0, location "
        "43.8800,125.3228, scope /24\n",
        "geo: the override sets region and carrier: no database consulted\n",
        "geo: result: region beijing, carrier telecom, country -, AS0, location -, scope /17\n",
        "geo: client 10.1.0.0/16 (16 bits given)\n",
        "geo: nets: override \"10.1.0.0/24\" (t.yaml:17:5) holds 10.1.0.0 (the client's address, "
        "bits past /16 zero): region uk, carrier unicom\n",
        "geo: result: region uk, carrier unicom, country -, AS0, location -, scope /24\n",
        "geo: result: region uk, carrier unicom, country -, AS0, location -, scope /20 (decided by "
        "a /24, capped at the server's ECS limit /20)\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(buf, want[i]) == NULL) fail_msg("explain lacks \"%s\":\n%s", want[i], buf);
    fx_free(&f);
}

/* Random nested nets overrides and carrier CIDRs against a naive longest
 * match, and the scope against its definition: the shortest prefix around
 * the client inside which no entry of any consulted list starts a longer
 * network (so the answer is the same for every address in it). */
typedef struct rnet {
    netaddr_t p;
    int region, carrier; /* -1: not set */
} rnet_t;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 17;
}

static const rnet_t *naive_lpm(const rnet_t *v, size_t n, const netaddr_t *a)
{
    const rnet_t *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (netaddr_contains(&v[i].p, a) && (best == NULL || v[i].p.bits > best->p.bits))
            best = &v[i];
    return best;
}

static unsigned naive_scope(const rnet_t *v, size_t n, const netaddr_t *a)
{
    unsigned maxb = a->family == 4 ? 32 : 128;
    for (unsigned L = 0; L <= maxb; L++) {
        netaddr_t q = *a;
        q.bits = (uint8_t)L;
        netaddr_mask(q.addr, q.family, L);
        bool clean = true;
        for (size_t i = 0; i < n && clean; i++)
            if (v[i].p.bits > L && netaddr_contains(&q, &v[i].p)) clean = false;
        if (clean) return L;
    }
    return maxb;
}

static void random_net(uint64_t *s, int family, netaddr_t *p)
{
    memset(p, 0, sizeof(*p));
    p->family = (uint8_t)family;
    if (family == 4) {
        p->addr[0] = 10;
        for (int k = 1; k < 4; k++)
            p->addr[k] = (uint8_t)lcg(s);
        p->bits = (uint8_t)(8 + lcg(s) % 23); /* 8..30 */
        /* Crowd the networks so that they nest. */
        p->addr[1] &= 0x0f;
    } else {
        static const uint8_t pre[] = {0x20, 0x01, 0x0d, 0xb8};
        memcpy(p->addr, pre, 4);
        for (int k = 4; k < 16; k++)
            p->addr[k] = (uint8_t)lcg(s);
        p->addr[4] &= 0x0f;
        p->bits = (uint8_t)(32 + lcg(s) % 41); /* 32..72 */
    }
    netaddr_mask(p->addr, p->family, p->bits);
}

static void test_random_overrides(void **state)
{
    (void)state;
    uint64_t s = 42;
    enum { NN = 240, NC = 240 };
    rnet_t nets[NN], cc[NC];
    size_t nn = 0, nc = 0;
    static char yaml[NN * 120 + NC * 80 + 4096];
    size_t used = (size_t)snprintf(yaml, sizeof(yaml),
                                   "regions:\n  r0: {}\n  r1: {}\n  r2: {}\n"
                                   "geo:\n  carriers:\n");
    /* Carrier CIDRs: each carrier's own list; no network twice. */
    for (int c = 0; c < 3; c++) {
        used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "    c%d:\n      cidrs:\n", c);
        for (int i = 0; i < NC / 3; i++) {
            rnet_t r = {.region = -1, .carrier = c};
            random_net(&s, i % 2 ? 6 : 4, &r.p);
            bool dup = false;
            for (size_t j = 0; j < nc; j++)
                dup |= cc[j].p.bits == r.p.bits && memcmp(cc[j].p.addr, r.p.addr, 16) == 0;
            if (dup) continue;
            cc[nc++] = r;
            char t[NETADDR_STRLEN];
            netaddr_format(&r.p, true, t, sizeof(t));
            used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "        - \"%s\"\n", t);
        }
    }
    used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "  nets:\n");
    for (int i = 0; i < NN; i++) {
        rnet_t r;
        random_net(&s, i % 2 ? 6 : 4, &r.p);
        bool dup = false;
        for (size_t j = 0; j < nn; j++)
            dup |= nets[j].p.bits == r.p.bits && memcmp(nets[j].p.addr, r.p.addr, 16) == 0;
        if (dup) continue;
        int what = (int)(lcg(&s) % 3); /* region, carrier, both */
        r.region = what != 1 ? (int)(lcg(&s) % 3) : -1;
        r.carrier = what != 0 ? (int)(lcg(&s) % 3) : -1;
        nets[nn++] = r;
        char t[NETADDR_STRLEN];
        netaddr_format(&r.p, true, t, sizeof(t));
        used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "    \"%s\": {", t);
        if (r.region >= 0)
            used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "region: r%d%s", r.region,
                                     r.carrier >= 0 ? ", " : "");
        if (r.carrier >= 0)
            used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "carrier: c%d", r.carrier);
        used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "}\n");
    }
    assert_true(used < sizeof(yaml) - 1);
    fx_t f;
    build_ok(&f, yaml);
    for (int i = 0; i < 20000; i++) {
        netaddr_t a;
        random_net(&s, i % 2 ? 6 : 4, &a);
        /* A client with a random number of bits given. */
        unsigned maxb = a.family == 4 ? 32 : 128;
        for (int k = a.family == 4 ? 1 : 4; k < 16; k++)
            a.addr[k] = (uint8_t)(a.addr[k] | (uint8_t)lcg(&s));
        if (a.family == 4) memset(a.addr + 4, 0, 12);
        a.bits = (uint8_t)(i % 3 == 0 ? maxb : 8 + lcg(&s) % (maxb - 7));
        netaddr_mask(a.addr, a.family, a.bits);
        netaddr_t full = a;
        full.bits = (uint8_t)maxb;
        const rnet_t *n = naive_lpm(nets, nn, &full);
        const rnet_t *c = naive_lpm(cc, nc, &full);
        int want_region = n && n->region >= 0 ? n->region : GEO_NONE;
        int want_carrier = n && n->carrier >= 0 ? n->carrier : c ? c->carrier : GEO_NONE;
        unsigned want_scope;
        if (n && n->region >= 0 && n->carrier >= 0)
            want_scope = naive_scope(nets, nn, &full);
        else {
            unsigned s1 = naive_scope(nets, nn, &full), s2 = naive_scope(cc, nc, &full);
            want_scope = s1 > s2 ? s1 : s2;
        }
        geo_result_t r;
        geo_classify(f.g, &a, &r);
        if (r.region != want_region || r.carrier != want_carrier || r.scope != want_scope) {
            char t[NETADDR_STRLEN];
            netaddr_format(&a, true, t, sizeof(t));
            fail_msg("%s: want region %d carrier %d scope %u, got %d %d %u", t, want_region,
                     want_carrier, want_scope, r.region, r.carrier, r.scope);
        }
        /* Every address inside client/scope gets the same answer. */
        for (int k = 0; k < 4; k++) {
            netaddr_t b = full;
            for (unsigned bit = r.scope; bit < maxb; bit++)
                if (lcg(&s) & 1) b.addr[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
            geo_result_t rb;
            geo_classify(f.g, &b, &rb);
            assert_int_equal(rb.region, r.region);
            assert_int_equal(rb.carrier, r.carrier);
        }
    }
    fx_free(&f);
}

static void test_none(void **state)
{
    (void)state;
    fx_t f;
    build_text(&f, "t.yaml", "other: 1\n", NULL);
    assert_int_equal(f.rc, 0);
    EXPECT_CLS(f.g, "1.2.3.4", "", NONE, NONE, 0);
    EXPECT_CLS(f.g, "2001:db8::1", "", NONE, NONE, 0);
    netaddr_t a = {.family = 5};
    geo_result_t r;
    geo_classify(f.g, &a, &r);
    assert_int_equal(r.region, GEO_NONE);
    assert_int_equal(r.scope, 0);
    assert_int_equal(geo_carrier_count(f.g), 0);
    fx_free(&f);
    geo_free(NULL);
    assert_int_equal(geo_carrier_count(NULL), 0);
}

/* ---- bad configurations and broken data ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_bad_fixtures(void **state)
{
    (void)state;
    DIR *dir = opendir(BAD_DIR);
    assert_non_null(dir);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".yaml") == 0) names[n++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof(names[0]), cmp_str);
    assert_true(n >= 10);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", BAD_DIR, names[i]);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        static char text[65536];
        size_t len = fread(text, 1, sizeof(text) - 1, fp);
        text[len] = '\0';
        fclose(fp);
        /* Expected lines: "# expect: <diagnostic>". */
        static char expect[16384];
        expect[0] = '\0';
        for (char *p = text; (p = strstr(p, "# expect: ")) != NULL;) {
            p += 10;
            char *eol = strchr(p, '\n');
            size_t k = eol ? (size_t)(eol - p) : strlen(p);
            strncat(expect, p, k);
            strcat(expect, "\n");
        }
        char *want = subst(expect);
        fx_t f;
        build_text(&f, names[i], text, BAD_DIR);
        if (strcmp(want, f.diags) != 0 || f.rc == 0) {
            fprintf(stderr, "%s: rc %d\n--- expected\n%s--- got\n%s---\n", names[i], f.rc, want,
                    f.diags);
            failures++;
        }
        assert_null(f.g);
        free(want);
        fx_free(&f);
        free(names[i]);
    }
    assert_int_equal(failures, 0);
}

static void test_broken_databases(void **state)
{
    (void)state;
    static const char *const dbs[] = {
        "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    };
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        for (int kind = 0; kind < 2; kind++) {
            char yaml[1024];
            snprintf(yaml, sizeof(yaml), "geo:\n  %s: %s/%s\n", kind ? "asn_db" : "city_db",
                     MMDB_DIR, dbs[i]);
            fx_t f;
            build_text(&f, "t.yaml", yaml, NULL);
            if (f.rc == 0 || f.g != NULL || strstr(f.diags, dbs[i]) == NULL ||
                strstr(f.diags, "t.yaml:2:") == NULL || diag_errors(&f.d) == 0)
                fail_msg("%s: rc %d, diagnostics:\n%s", dbs[i], f.rc, f.diags);
            print_message("    %s", f.diags);
            fx_free(&f);
        }
    }
}

/* The good test databases with field paths that are not in them. */
static void test_wrong_fields(void **state)
{
    (void)state;
    fx_t f;
    build_text(&f, "t.yaml", "geo:\n  format: dbip\n  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n",
               NULL);
    assert_int_not_equal(f.rc, 0);
    char *want = subst("t.yaml:3:12: error: geo.city_db: '@MMDB@/GeoIP2-City-Test.mmdb': field "
                       "'city' (path 'city'): is a map, expected a string: wrong field paths "
                       "for this city database? (see geo.format and geo.fields)\n");
    if (strstr(f.diags, want) == NULL) fail_msg("got:\n%s\nwant:\n%s", f.diags, want);
    free(want);
    fx_free(&f);
    build_text(&f, "t.yaml",
               "geo:\n  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n  fields: {country: "
               "country.names.en}\n",
               NULL);
    assert_int_not_equal(f.rc, 0);
    if (strstr(f.diags, "field 'country' (path 'country.names.en'): gave '") == NULL)
        fail_msg("got:\n%s", f.diags);
    fx_free(&f);
    build_text(&f, "t.yaml",
               "geo:\n  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n  fields: {country: country}\n",
               NULL);
    assert_int_not_equal(f.rc, 0);
    if (strstr(f.diags, "field 'country' (path 'country'): is a map, expected a string") == NULL)
        fail_msg("got:\n%s", f.diags);
    fx_free(&f);
}

/* ---- the hot path allocates nothing ---- */

static void test_no_allocation(void **state)
{
    (void)state;
#ifdef COUNT_ALLOCS
    write_file("c.txt", "36.0.0.0/8\n240e::/20\n");
    fx_t f;
    build_ok(&f, "regions:\n  uk: {match: [GB]}\n"
                 "geo:\n"
                 "  city_db: @MMDB@/GeoIP2-City-Test.mmdb\n"
                 "  asn_db: @MMDB@/GeoLite2-ASN-Test.mmdb\n"
                 "  carriers: {t: {asns: [4134], cidr_files: [c.txt]}}\n"
                 "  nets: {\"10.0.0.0/8\": {region: uk}}\n");
    netaddr_t addrs[64];
    static const char *const cs[] = {"2.2.3.1",      "149.101.100.0/24", "81.2.69.0/24",
                                     "2a02:d3c0::1", "::ffff:2.2.3.1",   "10.1.1.1",
                                     "36.1.1.1",     "240e::1",          "2002:202:301::1"};
    size_t na = sizeof(cs) / sizeof(cs[0]);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(netaddr_parse_cidr(cs[i], true, &addrs[i]), 0);
    uint64_t sum = 0;
    geo_result_t r;
    alloc_count = 0;
    counting = 1;
    for (int i = 0; i < 100000; i++) {
        netaddr_t a = addrs[(size_t)i % na];
        a.addr[a.family == 4 ? 3 : 15] ^= (uint8_t)i;
        geo_classify(f.g, &a, &r);
        sum += r.scope;
    }
    counting = 0;
    assert_true(sum > 0);
    assert_int_equal(alloc_count, 0);
    fx_free(&f);
#else
    skip();
#endif
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/steerdns-geo-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_city_maxmind),
        cmocka_unit_test(test_city_matches_libmaxminddb),
        cmocka_unit_test(test_region_match),
        cmocka_unit_test(test_asn_db_carriers),
        cmocka_unit_test(test_isp_db),
        cmocka_unit_test(test_asn_csv),
        cmocka_unit_test(test_carrier_cidr_files),
        cmocka_unit_test(test_nets),
        cmocka_unit_test(test_random_overrides),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_bad_fixtures),
        cmocka_unit_test(test_broken_databases),
        cmocka_unit_test(test_wrong_fields),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests_name("geo", tests, setup, teardown);
}
