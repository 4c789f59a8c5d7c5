/*
 * fuzz_health_parse.c - libFuzzer target for the health room's parsers of
 * untrusted input: the Prometheus text format (bodies from any endpoint),
 * JSON field extraction, the admin file and the per-server state file.
 * Built with -DSTEERDNS_FUZZ=ON (clang); seeds in
 * tests/unit/health/fuzz_corpus/.  The first byte picks the query so that
 * label matchers, empty matchers and no matchers are all exercised.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health/health_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const n1[] = {"device"}, *const v1[] = {"eth0"};
    static const char *const n2[] = {"device", "job"}, *const v2[] = {"a\\b\"c\nd", ""};
    static const health_prom_query_t queries[] = {
        {"node_network_transmit_bytes_total", n1, v1, 1},
        {"m", n2, v2, 2},
        {"up", NULL, NULL, 0},
    };
    const health_prom_query_t *q = &queries[size ? data[0] % 3 : 0];
    const char *buf = (const char *)data + (size ? 1 : 0);
    size_t len = size ? size - 1 : 0;
    health_prom_result_t r;
    int rc = health_prom_scan(buf, len, q, &r);
    if (rc != 0 && rc != -22) abort();
    if (rc == 0 && r.lines > len + 1) abort();
    double v;
    char err[128];
    health_json_extract(buf, len, "net.eth0.0.tx_bps", &v, err, sizeof(err));
    health_admin_parse(buf, len, NULL, NULL, NULL);
    health_admin_state_t st;
    const char *reason, *e;
    size_t rl;
    if (health_state_file_parse(buf, len, &st, &reason, &rl, &e) == 0 &&
        (reason < buf || reason + rl > buf + len))
        abort();
    return 0;
}
