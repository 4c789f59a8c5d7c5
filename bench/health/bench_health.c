/*
 * bench_health.c - CPU cost of the health poller: N servers polled every
 * interval against local fixture endpoints (httpfix servers in this
 * process, on loopback), measured as the CPU time of the poller thread
 * alone (pthread CPU clock) over wall time.  Target: 1,000 servers polled
 * every second below 5% of one core.
 *
 * It also reports how evenly the polls are spread in time (requests seen
 * by the fixtures per 100 ms window: ideally N / interval * 0.1 each) and
 * whether every server reached its expected state.
 *
 * Usage: bench_health [--servers N] [--interval MS] [--seconds S]
 *                     [--fixtures K] [--body small|node] [--padding LINES]
 *                     [--kind prometheus|json]
 *   --body node: a node_exporter-like exposition (# HELP/# TYPE, a faster
 *   `lo` before `eth0`, other metrics) with --padding extra series
 *   (default 400: about 40 KB per response); small: one line.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/yconf.h"
#include "health/health.h"
#include "tests/fixtures/httpfix.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* User and system CPU seconds of the thread named name (from /proc), so
 * the report can tell the kernel's share (system calls, and on loopback
 * the receiving side's TCP processing, which Linux charges to the sender)
 * from the poller's own code, libcurl and libuv (user). */
static bool thread_times(const char *name, double *user, double *sys)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return false;
    struct dirent *e;
    bool found = false;
    long hz = sysconf(_SC_CLK_TCK);
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "", stat[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        if (fgets(comm, sizeof(comm), f) == NULL) comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) != 0) continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) continue;
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[n] = '\0';
        /* Fields after the command's closing parenthesis: utime is the
         * 14th field of the line, stime the 15th. */
        const char *p = strrchr(stat, ')');
        unsigned long long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
            *user = (double)ut / (double)hz;
            *sys = (double)st / (double)hz;
            found = true;
        }
    }
    closedir(d);
    return found;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_health [--servers N] [--interval MS] [--seconds S] "
                    "[--fixtures K] [--body small|node] [--padding LINES] "
                    "[--kind prometheus|json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned servers = 1000, interval = 1000, seconds = 20, nfix = 4, padding = 400;
    const char *body_kind = "node", *kind = "prometheus";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--servers") == 0)
            servers = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--interval") == 0)
            interval = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--fixtures") == 0)
            nfix = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--padding") == 0)
            padding = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--body") == 0)
            body_kind = argv[++i];
        else if (strcmp(argv[i], "--kind") == 0)
            kind = argv[++i];
        else
            usage();
    }
    if (servers == 0 || interval < 10 || seconds == 0 || nfix == 0) usage();
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARNING);

    /* Fixtures and their bodies. */
    httpfix_t **fix = calloc(nfix, sizeof(*fix));
    for (unsigned k = 0; k < nfix; k++)
        if (httpfix_start(NULL, 0, &fix[k]) != 0) {
            fprintf(stderr, "cannot start fixture %u\n", k);
            return 1;
        }
    size_t bcap = 64 + (size_t)padding * 96 + 4096;
    char *body = malloc(bcap);
    bool json = strcmp(kind, "json") == 0;
    if (json)
        snprintf(body, bcap, "{\"tx_bps\": 4e8, \"rx_bps\": 1e8}");
    else if (strcmp(body_kind, "node") == 0)
        httpfix_node_exporter_template(body, bcap, padding);
    else
        snprintf(body, bcap, "node_network_transmit_bytes_total{device=\"eth0\"} {counter}\n");
    size_t body_len = strlen(body);

    /* The topology: clusters of 10 servers, spread over the fixtures. */
    size_t cap = (size_t)servers * 200 + 4096, used = 0;
    char *yaml = malloc(cap);
    used +=
        (size_t)snprintf(yaml + used, cap - used, "regions: {r: {lat: 0, lon: 0}}\nclusters:\n");
    for (unsigned i = 0; i < servers; i++) {
        char path[64], url[160];
        snprintf(path, sizeof(path), "/s/%u", i);
        httpfix_t *f = fix[i % nfix];
        httpfix_set_body(f, path, body);
        httpfix_set_rate(f, path, 5e7); /* 400 Mbit/s of 1 Gbit/s: IDLE */
        if (i % 10 == 0)
            used += (size_t)snprintf(yaml + used, cap - used,
                                     "  c%u:\n    region: r\n    carrier: telecom\n"
                                     "    entry: 192.0.2.1\n    servers:\n",
                                     i / 10);
        used += (size_t)snprintf(yaml + used, cap - used,
                                 "      s%u: {capacity: 1Gbit, check: {kind: %s, url: \"%s\"}}\n",
                                 i, kind, httpfix_url(f, path, url, sizeof(url)));
    }
    used +=
        (size_t)snprintf(yaml + used, cap - used, "health: {interval: %ums, fall: 3}\n", interval);
    arena_t *a = arena_new();
    diag_list_t d;
    diag_init(&d);
    const yconf_node_t *root = NULL;
    health_topo_t *topo = NULL;
    if (yconf_parse_buffer(a, "bench.yaml", yaml, used, &d, &root) != 0 ||
        health_topo_build(&(health_config_in_t){yconf_map_get(root, "regions"),
                                                yconf_map_get(root, "clusters"),
                                                yconf_map_get(root, "health"), NULL},
                          a, &d, &topo) != 0) {
        diag_print(&d, stderr);
        return 1;
    }

    health_t *h;
    if (health_new(&h) != 0 || health_start(h) != 0 || health_apply(h, topo) != 0) {
        fprintf(stderr, "cannot start the poller\n");
        return 1;
    }
    /* Warm up: every server measured (two polls for a counter). */
    uint64_t deadline = now_ms() + 5000 + 3u * interval;
    for (;;) {
        const health_table_t *tb = health_table_acquire(topo);
        uint32_t idle = 0;
        for (uint32_t c = 0; c < health_topo_clusters(topo); c++)
            idle += health_cluster_idle(tb, c);
        if (idle == servers) break;
        if (now_ms() > deadline) {
            fprintf(stderr, "warm-up: only %u of %u servers IDLE\n", idle, servers);
            trace_t tr = TRACE_FILE(stderr);
            health_status_write(h, topo, &tr);
            return 1;
        }
        usleep(50000);
    }

    /* Measure. */
    health_stats_t s0, s1;
    double u0 = 0, y0 = 0, u1 = 0, y1 = 0;
    thread_times("steerdns-health", &u0, &y0);
    health_get_stats(h, &s0);
    double p0 = process_cpu_s();
    uint64_t t0 = now_ms();
    uint64_t prev_hits = 0, wmin = UINT64_MAX, wmax = 0, windows = 0;
    for (unsigned k = 0; k < nfix; k++)
        for (unsigned i = k; i < servers; i += nfix) {
            char path[64];
            snprintf(path, sizeof(path), "/s/%u", i);
            prev_hits += httpfix_hits(fix[k], path);
        }
    uint64_t next = t0 + 100;
    while (now_ms() < t0 + (uint64_t)seconds * 1000u) {
        uint64_t now = now_ms();
        if (now < next) {
            usleep((useconds_t)(next - now) * 1000u);
            continue;
        }
        next += 100;
        uint64_t hits = 0;
        for (unsigned k = 0; k < nfix; k++)
            for (unsigned i = k; i < servers; i += nfix) {
                char path[64];
                snprintf(path, sizeof(path), "/s/%u", i);
                hits += httpfix_hits(fix[k], path);
            }
        uint64_t w = hits - prev_hits;
        prev_hits = hits;
        if (w < wmin) wmin = w;
        if (w > wmax) wmax = w;
        windows++;
    }
    uint64_t t1 = now_ms();
    double p1 = process_cpu_s();
    health_get_stats(h, &s1);
    thread_times("steerdns-health", &u1, &y1);
    double wall = (double)(t1 - t0) / 1000.0;
    double cpu = (double)(s1.cpu_ns - s0.cpu_ns) / 1e9;
    const health_table_t *tb = health_table_acquire(topo);
    uint32_t idle = 0, down = 0;
    for (uint32_t c = 0; c < health_topo_clusters(topo); c++) {
        idle += health_cluster_idle(tb, c);
        down += health_cluster_down(tb, c);
    }
    printf("servers=%u interval=%ums kind=%s body=%s (%zu bytes) fixtures=%u seconds=%.1f\n",
           servers, interval, kind, json ? "json" : body_kind, body_len, nfix, wall);
    printf("polls/s=%.0f failures=%llu publications/s=%.0f idle=%u down=%u\n",
           (double)(s1.polls - s0.polls) / wall, (unsigned long long)(s1.failures - s0.failures),
           (double)(s1.publications - s0.publications) / wall, idle, down);
    printf("requests per 100ms window: min=%llu max=%llu (ideal %.0f) over %llu windows\n",
           (unsigned long long)wmin, (unsigned long long)wmax, servers * 100.0 / interval,
           (unsigned long long)windows);
    printf("poller thread CPU: %.3fs in %.1fs = %.2f%% of one core (target < 5%%)\n", cpu, wall,
           100.0 * cpu / wall);
    printf("  of which user %.2f%% (poller, libcurl, libuv), system %.2f%% (kernel)\n",
           100.0 * (u1 - u0) / wall, 100.0 * (y1 - y0) / wall);
    printf("whole process (poller + fixtures + bench): %.2f%% of one core\n",
           100.0 * (p1 - p0) / wall);
    health_stop(h);
    for (unsigned k = 0; k < nfix; k++)
        httpfix_stop(fix[k]);
    arena_free(a);
    diag_clear(&d);
    free(fix);
    free(body);
    free(yaml);
    return 100.0 * cpu / wall < 5.0 && down == 0 ? 0 : 1;
}
