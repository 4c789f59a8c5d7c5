/*
 * diag.h - configuration diagnostics with file:line:column positions.
 *
 * Config code never exits on bad input: it collects every problem as a
 * diagnostic {file, line, column, severity, message} and keeps going, so that
 * `steerdns check` can list all of them at once (the way NSD counts errors
 * and goes on).  A diag list belongs to whoever builds a configuration; it is
 * never touched on the query path.
 *
 * Printed form (one line each):
 *     zones/app.yaml:12:7: error: clusters[3].region: unknown region 'cn-sh'
 */
#ifndef STEERDNS_CORE_DIAG_H
#define STEERDNS_CORE_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A position in a configuration file.  line and col are 1-based; 0 means the
 * position is unknown (for example an error about a whole file). */
typedef struct diag_pos {
    const char *file;
    uint32_t line;
    uint32_t col;
} diag_pos_t;

typedef enum diag_severity { DIAG_ERROR = 0, DIAG_WARNING = 1 } diag_severity_t;

typedef struct diag {
    char *file; /* owned copy, may be NULL */
    uint32_t line;
    uint32_t col;
    diag_severity_t severity;
    char *msg; /* owned */
} diag_t;

/* At most this many diagnostics are kept; later ones are only counted, so a
 * hostile file cannot make the list grow without bound. */
#define DIAG_MAX_KEPT 1000

typedef struct diag_list {
    diag_t *items;
    size_t n, cap;
    size_t errors;   /* every error, kept or not */
    size_t warnings; /* every warning, kept or not */
} diag_list_t;

/* Initialise an empty list.  Any thread; no allocation until the first add. */
void diag_init(diag_list_t *d);

/* Free every diagnostic; the list is empty and reusable afterwards. */
void diag_clear(diag_list_t *d);

/* Append one diagnostic.  pos may be NULL (no position).  The message is
 * formatted with printf rules and copied. */
void diag_add(diag_list_t *d, diag_severity_t sev, const diag_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_vadd(diag_list_t *d, diag_severity_t sev, const diag_pos_t *pos, const char *fmt,
               va_list ap) __attribute__((format(printf, 4, 0)));

void diag_error(diag_list_t *d, const diag_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warn(diag_list_t *d, const diag_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number of errors added so far (warnings do not count). */
static inline size_t diag_errors(const diag_list_t *d)
{
    return d->errors;
}

/* Move every diagnostic of src to the end of dst; src is left empty. */
void diag_move(diag_list_t *dst, diag_list_t *src);

/* Format one diagnostic as "file:line:col: error: msg" into buf (always NUL
 * terminated, truncated to size).  Returns the untruncated length. */
size_t diag_format(const diag_t *x, char *buf, size_t size);

/* Print every kept diagnostic, one per line, then a note if some were
 * dropped. */
void diag_print(const diag_list_t *d, FILE *out);

#endif
