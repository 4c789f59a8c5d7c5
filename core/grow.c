/*
 * grow.c - see grow.h.
 */
#include "core/grow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void *grow_array(void *items, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return items;
    size_t c = *cap ? *cap * 2 : first;
    if (c <= n)
        c = n + 1;
    if (c > SIZE_MAX / elem) {
        fprintf(stderr, "steerdns: array of %zu x %zu bytes overflows\n", c, elem);
        abort();
    }
    void *p = realloc(items, c * elem);
    if (p == NULL) {
        fprintf(stderr, "steerdns: out of memory growing an array to %zu x %zu bytes\n", c, elem);
        abort();
    }
    *cap = c;
    return p;
}
