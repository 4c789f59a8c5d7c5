/*
 * geo_bench.c - benchmark of the geo classifier: build time, memory and
 * nanoseconds per geo_classify over random addresses.
 *
 *   geo_bench CONFIG.yaml [-n COUNT] [-f 4|6|6dense|mix] [-s SEED] [-V V4.mmdb V6.mmdb]
 *             [-e ADDR[/BITS]...]
 *
 * CONFIG is a steerdns-style YAML file with a `geo:` section and an
 * optional `regions:` mapping (name -> {match: [...]}); relative paths
 * resolve against the file's directory.  Each lookup is timed on its own
 * (clock_gettime, with the timer's own cost measured and subtracted), so the
 * median and p90 are latencies of one classification with cold caches, as a
 * DNS worker sees them; the throughput line is back-to-back calls.
 * -e explains the given clients instead of benchmarking.  -V also checks
 * every answer against libmaxminddb's own lookup in the given city
 * databases (for a config whose only source is those databases): same
 * country, scope = the network prefix libmaxminddb reports.
 *
 * Owns nothing of steerdns; sits outside the flow (tooling).
 */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <maxminddb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "core/yconf.h"
#include "geo/geo.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* Anonymous memory backed by transparent huge pages (the tables ask for
 * them with madvise). */
static long thp_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "AnonHugePages:", 14) == 0) v = strtol(line + 14, NULL, 10);
    fclose(f);
    return v;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: geo_bench CONFIG.yaml [-n COUNT] [-f 4|6|6dense|mix] [-s SEED] "
                    "[-V V4.mmdb V6.mmdb] [-e ADDR[/BITS]...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const char *cfg = argv[1];
    size_t count = 1000000;
    const char *fam = "4";
    int explain_from = 0;
    const char *verify[2] = {NULL, NULL};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            fam = argv[++i];
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            rng_state = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "-V") == 0 && i + 2 < argc) {
            verify[0] = argv[++i];
            verify[1] = argv[++i];
        } else if (strcmp(argv[i], "-e") == 0) {
            explain_from = i + 1;
            break;
        } else
            usage();
    }
    if (count == 0) usage();

    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const yconf_node_t *root;
    if (yconf_parse_file(a, cfg, 0, &d, &root) != 0) {
        diag_print(&d, stderr);
        return 1;
    }
    /* regions: name -> {match: [...]} (the resolver room's format may
     * differ; the bench only needs names and match lists). */
    const yconf_node_t *rn = yconf_map_get(root, "regions");
    size_t nreg = rn && rn->kind == YCONF_MAP ? rn->u.map.n : 0;
    geo_region_def_t *regs = calloc(nreg ? nreg : 1, sizeof(*regs));
    for (size_t i = 0; i < nreg; i++) {
        regs[i].name = rn->u.map.pairs[i].key->u.scalar.str;
        regs[i].match = yconf_map_get(rn->u.map.pairs[i].value, "match");
    }
    char *cfgcopy = strdup(cfg);
    geo_config_in_t in = {.section = yconf_map_get(root, "geo"),
                          .regions = regs,
                          .nregions = nreg,
                          .base_dir = dirname(cfgcopy)};

    long rss0 = rss_kib();
    uint64_t t0 = now_ns();
    geo_t *g = NULL;
    int rc = geo_build(&in, a, &d, &g);
    uint64_t t1 = now_ns();
    diag_print(&d, stderr);
    if (rc != 0) {
        fprintf(stderr, "geo_build failed: %s\n", strerror(-rc));
        return 1;
    }
    long rss1 = rss_kib();
    geo_stats_t st;
    geo_get_stats(g, &st);
    printf("build: %.2f s\n", (double)(t1 - t0) / 1e9);
    printf("tables: %zu IPv4 ranges, %zu IPv6 ranges, %zu results (%zu city, %zu ASN records)\n",
           st.entries4, st.entries6, st.records, st.city_records, st.asn_records);
    printf("memory: lookup tables %.1f MiB (IPv4 %.1f, IPv6 %.1f, records %.1f), all geo data "
           "%.1f MiB; process RSS +%.1f MiB after the build (includes the touched pages of the "
           "memory-mapped databases)\n",
           (double)st.table_bytes / 1048576.0, (double)st.table4_bytes / 1048576.0,
           (double)st.table6_bytes / 1048576.0, (double)st.record_bytes / 1048576.0,
           (double)st.total_bytes / 1048576.0, (double)(rss1 - rss0) / 1024.0);
    printf("huge pages: %.1f MiB of anonymous memory\n", (double)thp_kib() / 1024.0);

    if (explain_from) {
        trace_t t = TRACE_FILE(stdout);
        for (int i = explain_from; i < argc; i++) {
            netaddr_t x;
            if (netaddr_parse_cidr(argv[i], true, &x) != 0) {
                fprintf(stderr, "bad address %s\n", argv[i]);
                continue;
            }
            geo_result_t r;
            geo_explain(g, &x, &t, &r);
        }
        geo_free(g);
        arena_free(a);
        diag_clear(&d);
        free(regs);
        free(cfgcopy);
        return 0;
    }

    netaddr_t *addrs = calloc(count, sizeof(*addrs));
    uint32_t *lat = calloc(count, sizeof(*lat));
    for (size_t i = 0; i < count; i++) {
        netaddr_t *x = &addrs[i];
        bool dense = strcmp(fam, "6dense") == 0;
        bool v6 = strcmp(fam, "6") == 0 || dense || (strcmp(fam, "mix") == 0 && (rnd() & 1));
        uint64_t r1 = rnd(), r2 = rnd();
        if (!v6) {
            x->family = 4;
            x->bits = 32;
            memcpy(x->addr, &r1, 4);
        } else {
            /* Global unicast, 2000::/3: where IPv6 clients are. */
            x->family = 6;
            x->bits = 128;
            memcpy(x->addr, &r1, 8);
            memcpy(x->addr + 8, &r2, 8);
            x->addr[0] = (uint8_t)(0x20 | (x->addr[0] & 0x1f));
            if (dense) {
                /* Where the registries' allocations are: 2001::/16,
                 * 2400::/12 (APNIC), 2600::/12 (ARIN), 2800::/12
                 * (LACNIC), 2a00::/12 (RIPE), 2c00::/12 (AFRINIC). */
                static const uint8_t top[6][2] = {{0x20, 0x01}, {0x24, 0}, {0x26, 0},
                                                  {0x28, 0},    {0x2a, 0}, {0x2c, 0}};
                const uint8_t *t = top[r2 % 6];
                x->addr[0] = t[0];
                if (t[1])
                    x->addr[1] = t[1];
                else
                    x->addr[1] &= 0x0f;
            }
        }
    }
    if (verify[0]) {
        MMDB_s db[2];
        for (int k = 0; k < 2; k++)
            if (MMDB_open(verify[k], MMDB_MODE_MMAP, &db[k]) != 0) {
                fprintf(stderr, "cannot open %s\n", verify[k]);
                return 1;
            }
        size_t bad = 0;
        for (size_t i = 0; i < count; i++) {
            const netaddr_t *x = &addrs[i];
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            if (x->family == 4) {
                ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
                memcpy(&((struct sockaddr_in *)&ss)->sin_addr, x->addr, 4);
            } else {
                ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
                memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, x->addr, 16);
            }
            MMDB_s *m = &db[x->family == 4 ? 0 : 1];
            int err;
            MMDB_lookup_result_s lr = MMDB_lookup_sockaddr(m, (struct sockaddr *)&ss, &err);
            char want[3] = "";
            if (lr.found_entry) {
                MMDB_entry_data_s v;
                if ((MMDB_get_value(&lr.entry, &v, "country_code", NULL) == 0 && v.has_data) ||
                    (MMDB_get_value(&lr.entry, &v, "country", "iso_code", NULL) == 0 && v.has_data))
                    if (v.data_size == 2) memcpy(want, v.utf8_string, 2);
            }
            unsigned nm = lr.netmask;
            if (x->family == 4 && m->metadata.ip_version == 6) nm = nm >= 96 ? nm - 96 : 0;
            geo_result_t r;
            geo_classify(g, x, &r);
            if (strcmp(want, r.country) != 0 || nm != r.scope) {
                if (bad++ < 10) {
                    char s[NETADDR_STRLEN];
                    netaddr_format(x, false, s, sizeof(s));
                    printf("MISMATCH %s: libmaxminddb '%s' /%u, geo '%s' /%u\n", s, want, nm,
                           r.country, r.scope);
                }
            }
        }
        printf("verify: %zu of %zu answers differ from libmaxminddb\n", bad, count);
        MMDB_close(&db[0]);
        MMDB_close(&db[1]);
    }
    /* The timer's own cost, to subtract. */
    uint32_t ovh[1001];
    for (int i = 0; i < 1001; i++) {
        uint64_t s = now_ns();
        uint64_t e = now_ns();
        ovh[i] = (uint32_t)(e - s);
    }
    qsort(ovh, 1001, sizeof(ovh[0]), cmp_u32);
    uint32_t overhead = ovh[500];

    uint64_t sink = 0;
    geo_result_t r;
    for (size_t i = 0; i < count; i++) {
        uint64_t s = now_ns();
        geo_classify(g, &addrs[i], &r);
        uint64_t e = now_ns();
        sink += r.region + r.carrier + r.scope;
        uint64_t dt = e - s;
        lat[i] = dt > overhead ? (uint32_t)(dt - overhead) : 0;
    }
    qsort(lat, count, sizeof(lat[0]), cmp_u32);
    size_t known = 0;
    uint64_t tb0 = now_ns();
    for (size_t i = 0; i < count; i++) {
        geo_classify(g, &addrs[i], &r);
        known += r.country[0] != '\0';
        sink += r.scope;
    }
    uint64_t tb1 = now_ns();
    printf("classify (%zu random %s addresses, timer overhead %u ns subtracted): median %u ns, "
           "p90 %u ns, p99 %u ns, max %u ns\n",
           count,
           strcmp(fam, "4") == 0        ? "IPv4"
           : strcmp(fam, "6") == 0      ? "IPv6 (2000::/3)"
           : strcmp(fam, "6dense") == 0 ? "IPv6 (in the RIRs' main blocks)"
                                        : "mixed",
           overhead, lat[count / 2], lat[count * 9 / 10], lat[count * 99 / 100], lat[count - 1]);
    printf("throughput: %.1f ns/classification back to back; %.1f%% of addresses have a country "
           "(checksum %llu)\n",
           (double)(tb1 - tb0) / (double)count, 100.0 * (double)known / (double)count,
           (unsigned long long)(sink & 0xffff));
    geo_free(g);
    arena_free(a);
    diag_clear(&d);
    free(addrs);
    free(lat);
    free(regs);
    free(cfgcopy);
    return 0;
}
