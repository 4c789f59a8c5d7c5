/*
 * answer_bench.c - microbenchmark of the query path without the network:
 * answer_respond on a snapshot, for the peer kit's query mix (static names,
 * the steered name, SOA, NXDOMAIN), with and without ECS.  Prints ns per
 * query (median of 5 runs of N queries each).
 *
 *     answer_bench CONFIG [N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dname.h"
#include "resolver/answer.h"
#include "resolver/snap.h"

static size_t mkq(uint8_t *q, const char *name, uint16_t type, const uint8_t *ecs, int ecslen)
{
    memset(q, 0, 12);
    q[0] = 0x12;
    q[2] = 0x01;
    q[5] = 1;
    q[11] = 1;
    uint8_t w[DNAME_MAXLEN];
    int len = dname_from_str(name, NULL, w);
    size_t p = 12;
    memcpy(q + p, w, (size_t)len);
    p += (size_t)len;
    q[p++] = (uint8_t)(type >> 8);
    q[p++] = (uint8_t)type;
    q[p++] = 0;
    q[p++] = 1;
    uint8_t opt[11] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, (uint8_t)ecslen};
    memcpy(q + p, opt, 11);
    p += 11;
    if (ecslen) {
        memcpy(q + p, ecs, (size_t)ecslen);
        p += (size_t)ecslen;
    }
    return p;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: answer_bench CONFIG [N]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 2000000;
    diag_list_t d;
    diag_init(&d);
    snap_t *s;
    if (snap_build(argv[1], &d, &s) != 0) {
        diag_print(&d, stderr);
        return 1;
    }
    /* The kit's mix: 40% app A, 20% app AAAA, 20% www A, 10% SOA, 10% NXDOMAIN. */
    static const struct {
        const char *name;
        uint16_t type;
    } mix[10] = {{"app.dl.example.net.", 1}, {"app.dl.example.net.", 1}, {"app.dl.example.net.", 1},
                 {"app.dl.example.net.", 1}, {"app.dl.example.net.", 28}, {"app.dl.example.net.", 28},
                 {"www.dl.example.net.", 1}, {"www.dl.example.net.", 1}, {"dl.example.net.", 6},
                 {"nx01.dl.example.net.", 1}};
    static const uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 24, 0, 175, 16, 199};
    static uint8_t out[65535];
    static answer_txn_t txn;
    txn.rng = 1;
    answer_client_t client = {.addr = {.family = 4, .bits = 32, .addr = {127, 0, 1, 1}}};
    for (int variant = 0; variant < 2; variant++) {
        uint8_t qs[10][600];
        size_t ql[10];
        for (int i = 0; i < 10; i++)
            ql[i] = mkq(qs[i], mix[i].name, mix[i].type, ecs, variant ? (int)sizeof(ecs) : 0);
        double runs[5];
        size_t sink = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = now_ns();
            for (long k = 0; k < n; k++) {
                int i = (int)(k % 10);
                sink += answer_respond(&s->env, qs[i], ql[i], &client, &txn, out, 4096);
            }
            runs[r] = (now_ns() - t0) / (double)n;
        }
        qsort(runs, 5, sizeof(double), cmp);
        printf("%s: %.1f ns/query (median of 5 x %ld; min %.1f, max %.1f) [%zu]\n",
               variant ? "ecs  " : "noecs", runs[2], n, runs[0], runs[4], sink % 7);
    }
    snap_free(s);
    diag_clear(&d);
    return 0;
}
