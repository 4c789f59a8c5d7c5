/*
 * trace.h - a line sink for explanations and status reports.
 *
 * `steerdns explain` and `steerdns status` print what a decision or a poller
 * saw.  The code that decides writes lines to a trace_t; the caller decides
 * where they go (stdout, a control-channel reply buffer).  A NULL trace
 * costs one branch, so decision functions take one unconditionally and the
 * real query path passes NULL: explain runs the very same code.
 */
#ifndef STEERDNS_CORE_TRACE_H
#define STEERDNS_CORE_TRACE_H

#include <stdio.h>

typedef struct trace {
    /* Receives one line without trailing newline. */
    void (*emit)(void *ctx, const char *line);
    void *ctx;
} trace_t;

/* True when t would print anything (so callers can skip expensive
 * formatting). */
static inline int trace_on(const trace_t *t)
{
    return t != NULL && t->emit != NULL;
}

/* Format one line (at most 1023 bytes, no allocation) and emit it. */
void trace_emitf(const trace_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* trace_emitf when t is on; with a NULL trace (the query path) the
 * arguments are not even evaluated. */
#define trace_printf(t, ...)                                                                     \
    do {                                                                                          \
        const trace_t *trace__t = (t);                                                            \
        if (trace_on(trace__t))                                                                   \
            trace_emitf(trace__t, __VA_ARGS__);                                                   \
    } while (0)

/* A trace that writes each line plus '\n' to a FILE *. */
void trace_emit_file(void *file, const char *line);
#define TRACE_FILE(f) ((trace_t){trace_emit_file, (f)})

#endif
