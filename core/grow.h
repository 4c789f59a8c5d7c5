/*
 * grow.h - growing a malloc'd array by doubling, for load-time builders
 * (diagnostics, records of a zone being loaded).  Never on the query path.
 */
#ifndef STEERDNS_CORE_GROW_H
#define STEERDNS_CORE_GROW_H

#include <stddef.h>

/* Make room for item number n (0-based) in items, which has room for *cap
 * items of elem bytes: returns the array (moved when it had to grow, to
 * first items at least, then doubling) and updates *cap.  Out of memory
 * aborts, as the arena does. */
void *grow_array(void *items, size_t n, size_t *cap, size_t elem, size_t first);

#endif
