/*
 * diag.c - the diagnostics list (see diag.h).  Load-time only.
 */
#include "core/diag.h"

#include "core/grow.h"

#include <stdlib.h>
#include <string.h>

void diag_init(diag_list_t *d)
{
    memset(d, 0, sizeof(*d));
}

void diag_clear(diag_list_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].msg);
    }
    free(d->items);
    diag_init(d);
}

static char *xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *r = strdup(s);
    if (r == NULL)
        abort();
    return r;
}

void diag_vadd(diag_list_t *d, diag_severity_t sev, const diag_pos_t *pos, const char *fmt,
               va_list ap)
{
    if (sev == DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n >= DIAG_MAX_KEPT)
        return;
    d->items = grow_array(d->items, d->n, &d->cap, sizeof(*d->items), 16);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    diag_t *x = &d->items[d->n++];
    x->file = pos ? xstrdup(pos->file) : NULL;
    x->line = pos ? pos->line : 0;
    x->col = pos ? pos->col : 0;
    x->severity = sev;
    x->msg = msg;
}

void diag_add(diag_list_t *d, diag_severity_t sev, const diag_pos_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, sev, pos, fmt, ap);
    va_end(ap);
}

void diag_error(diag_list_t *d, const diag_pos_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, DIAG_ERROR, pos, fmt, ap);
    va_end(ap);
}

void diag_warn(diag_list_t *d, const diag_pos_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, DIAG_WARNING, pos, fmt, ap);
    va_end(ap);
}

void diag_move(diag_list_t *dst, diag_list_t *src)
{
    for (size_t i = 0; i < src->n; i++) {
        diag_t *x = &src->items[i];
        diag_pos_t pos = {x->file, x->line, x->col};
        diag_add(dst, x->severity, x->file ? &pos : NULL, "%s", x->msg);
    }
    /* Errors beyond the kept ones still count in the destination. */
    size_t kept_err = 0, kept_warn = 0;
    for (size_t i = 0; i < src->n; i++)
        if (src->items[i].severity == DIAG_ERROR)
            kept_err++;
        else
            kept_warn++;
    dst->errors += src->errors - kept_err;
    dst->warnings += src->warnings - kept_warn;
    diag_clear(src);
}

size_t diag_format(const diag_t *x, char *buf, size_t size)
{
    const char *sev = x->severity == DIAG_ERROR ? "error" : "warning";
    int n;
    if (x->file && x->line)
        n = snprintf(buf, size, "%s:%u:%u: %s: %s", x->file, x->line, x->col, sev, x->msg);
    else if (x->file)
        n = snprintf(buf, size, "%s: %s: %s", x->file, sev, x->msg);
    else
        n = snprintf(buf, size, "%s: %s", sev, x->msg);
    return n < 0 ? 0 : (size_t)n;
}

void diag_print(const diag_list_t *d, FILE *out)
{
    char line[2048];
    for (size_t i = 0; i < d->n; i++) {
        diag_format(&d->items[i], line, sizeof(line));
        fprintf(out, "%s\n", line);
    }
    size_t total = d->errors + d->warnings;
    if (total > d->n)
        fprintf(out, "note: %zu more diagnostics not shown\n", total - d->n);
}
