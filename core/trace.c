/*
 * trace.c - line sinks (see trace.h).
 */
#include "core/trace.h"

#include <stdarg.h>

void trace_emitf(const trace_t *t, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    t->emit(t->ctx, line);
}

void trace_emit_file(void *file, const char *line)
{
    fputs(line, (FILE *)file);
    fputc('\n', (FILE *)file);
}
