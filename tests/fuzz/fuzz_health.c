/*
 * fuzz_health.c - libFuzzer target for the health room's parsers of what
 * endpoints and operators send: the Prometheus text exposition, JSON field
 * extraction and the admin state file.  The first input byte picks the
 * parser; the rest is the body.  Any bytes: a value or a clear error, never
 * a crash, a hang or a read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>

#include "health/health_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_rule(void *ctx, const health_admin_rule_t *r)
{
    (void)ctx;
    if (r->state == HEALTH_ADMIN_NONE)
        abort();
}

static void on_error(void *ctx, size_t line, const char *msg)
{
    (void)ctx;
    if (line == 0 || msg == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        static const char *const names[] = {"device", "job"};
        static const char *const values[] = {"eth0", ""};
        health_prom_query_t q = {"node_network_transmit_bytes_total", names, values, 2};
        health_prom_result_t r;
        int rc = health_prom_scan(body, len, &q, &r);
        if (rc != 0 && (rc != -22 || r.err == NULL))
            abort();
        if (rc == 0 && r.lines > len + 1)
            abort();
        break;
    }
    case 1: {
        double v;
        char err[128];
        int rc = health_json_extract(body, len, "net.eth0.tx_bps", &v, err, sizeof(err));
        if (rc == 0 && (v != v))
            abort(); /* NaN must be an error */
        break;
    }
    case 2:
        health_admin_parse(body, len, on_rule, on_error, NULL);
        break;
    default: {
        health_admin_state_t st;
        const char *reason, *err;
        size_t rl;
        if (health_state_file_parse(body, len, &st, &reason, &rl, &err) == 0 &&
            (reason < body || reason + rl > body + len))
            abort(); /* the reason points into the input */
        break;
    }
    }
    return 0;
}
