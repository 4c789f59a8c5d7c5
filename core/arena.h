/*
 * arena.h - a bump allocator that owns everything built from one
 * configuration.
 *
 * A snapshot allocates its zone database, classifier tables, topology and
 * plugin instances from one arena and frees them all at once when the last
 * worker has left it.  Allocation is load-time only; arenas are never used on
 * the query path.  An arena is used by one thread at a time.
 *
 * Running out of memory aborts the process with a message (as Redis's
 * zmalloc does): configuration sizes are capped, so this only happens when
 * the machine itself is out of memory.
 */
#ifndef STEERDNS_CORE_ARENA_H
#define STEERDNS_CORE_ARENA_H

#include <stddef.h>

typedef struct arena arena_t;

/* Create an empty arena.  Never returns NULL. */
arena_t *arena_new(void);

/* Free the arena and everything allocated from it.  NULL is ignored. */
void arena_free(arena_t *a);

/* Allocate size bytes aligned to 16.  Memory is not zeroed. */
void *arena_alloc(arena_t *a, size_t size);

/* Allocate n * size zeroed bytes (overflow-checked). */
void *arena_calloc(arena_t *a, size_t n, size_t size);

/* Copies: a NUL-terminated string, the first n bytes of a string (adds the
 * NUL), or a block of bytes. */
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
void *arena_memdup(arena_t *a, const void *p, size_t n);

/* printf into the arena. */
char *arena_sprintf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A copy of path p as seen from folder base: p itself when it is absolute
 * or base is NULL or empty ("" stands for the current folder), else
 * base/p.  For file names written in configuration files. */
char *arena_path(arena_t *a, const char *base, const char *p);

/* Bytes obtained from the system for this arena (for memory reports). */
size_t arena_footprint(const arena_t *a);

#endif
