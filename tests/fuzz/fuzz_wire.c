/*
 * fuzz_wire.c - libFuzzer target for the query parser alone (header,
 * question, OPT and the ECS option), and the OPT writer on what it parsed.
 */
#include <stdint.h>
#include <stdlib.h>

#include "resolver/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wire_query_t q;
    wire_verdict_t v = wire_parse_query(data, size, true, &q);
    if (q.has_question && (q.question_end > size || q.qname_len > 255))
        abort();
    if (v == WIRE_OK && q.ecs) {
        if ((q.ecs_family == 1 && q.ecs_source > 32) || q.ecs_source > 128)
            abort();
        uint8_t out[64];
        size_t n = wire_write_opt(out, &q, 1232, 0, true, q.ecs_source);
        if (n != wire_opt_len(&q, true))
            abort();
    }
    /* With ECS off the option is never taken. */
    (void)wire_parse_query(data, size, false, &q);
    if (q.ecs)
        abort();
    return 0;
}
