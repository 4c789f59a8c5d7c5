/*
 * arena.c - chunked bump allocator (see arena.h).
 */
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (64u * 1024u)
#define ARENA_ALIGN 16u

typedef struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
} chunk_t;

struct arena {
    chunk_t *head;
    size_t footprint;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "steerdns: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

arena_t *arena_new(void)
{
    arena_t *a = xmalloc(sizeof(*a));
    a->head = NULL;
    a->footprint = sizeof(*a);
    return a;
}

void arena_free(arena_t *a)
{
    if (a == NULL)
        return;
    chunk_t *c = a->head;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

static chunk_t *chunk_new(arena_t *a, size_t size)
{
    chunk_t *c = xmalloc(sizeof(chunk_t) + size);
    c->size = size;
    c->used = 0;
    a->footprint += sizeof(chunk_t) + size;
    return c;
}

void *arena_alloc(arena_t *a, size_t size)
{
    if (size == 0)
        size = 1;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size) {
        fprintf(stderr, "steerdns: arena allocation of %zu bytes overflows\n", size);
        abort();
    }
    chunk_t *c = a->head;
    if (c && c->size - c->used >= need) {
        void *p = c->data + c->used;
        c->used += need;
        return p;
    }
    if (need > ARENA_CHUNK / 4) {
        /* A large block gets a chunk of its own, linked behind the current
         * one so the current chunk's free space is not wasted. */
        chunk_t *big = chunk_new(a, need);
        big->used = need;
        if (c) {
            big->next = c->next;
            c->next = big;
        } else {
            big->next = NULL;
            a->head = big;
        }
        return big->data;
    }
    chunk_t *n = chunk_new(a, ARENA_CHUNK);
    n->next = a->head;
    a->head = n;
    n->used = need;
    return n->data;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        fprintf(stderr, "steerdns: arena allocation of %zu x %zu bytes overflows\n", n, size);
        abort();
    }
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void *arena_memdup(arena_t *a, const void *p, size_t n)
{
    void *r = arena_alloc(a, n);
    if (n)
        memcpy(r, p, n);
    return r;
}

char *arena_sprintf(arena_t *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

char *arena_path(arena_t *a, const char *base, const char *p)
{
    if (p[0] == '/' || base == NULL || base[0] == '\0')
        return arena_strdup(a, p);
    size_t n = strlen(base);
    return arena_sprintf(a, "%s%s%s", base, base[n - 1] == '/' ? "" : "/", p);
}

size_t arena_footprint(const arena_t *a)
{
    return a->footprint;
}
