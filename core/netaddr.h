/*
 * netaddr.h - IPv4/IPv6 addresses and prefixes (CIDR), parsed and printed.
 *
 * One representation for every room: the family, the prefix length in bits
 * and 16 bytes of address in network order (IPv4 uses the first 4).  Pure
 * functions; no allocation; any thread.
 */
#ifndef STEERDNS_CORE_NETADDR_H
#define STEERDNS_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETADDR_STRLEN 64 /* enough for "ffff:...:ffff/128" */

typedef struct netaddr {
    uint8_t family; /* 4 or 6; 0 = none */
    uint8_t bits;   /* prefix length: 0..32 or 0..128 */
    uint8_t addr[16];
} netaddr_t;

/* Parse "192.0.2.1" or "2001:db8::1" (bits = full length) into out.
 * Returns 0 or -EINVAL; out untouched on failure. */
int netaddr_parse(const char *s, netaddr_t *out);

/* Parse "198.18.0.0/24" or "2001:db8::/32"; a bare address means a host
 * prefix.  Bits set past the prefix length are an error (-EINVAL) unless
 * allow_host_bits, in which case they are cleared.  Returns 0 or -EINVAL. */
int netaddr_parse_cidr(const char *s, bool allow_host_bits, netaddr_t *out);

/* Write "addr" or "addr/bits" (when bits is shorter than the family's
 * length, or always_prefix) into out.  Returns the length. */
size_t netaddr_format(const netaddr_t *a, bool always_prefix, char *out, size_t size);

/* Maximum prefix length of a family (32 or 128). */
static inline unsigned netaddr_maxbits(uint8_t family)
{
    return family == 4 ? 32u : 128u;
}

/* Clear every bit past `bits` in addr (of the given family). */
void netaddr_mask(uint8_t *addr, uint8_t family, unsigned bits);

/* True when no bit past `bits` is set. */
bool netaddr_is_masked(const uint8_t *addr, uint8_t family, unsigned bits);

/* True when address a lies within prefix p (same family). */
bool netaddr_contains(const netaddr_t *p, const netaddr_t *a);

#endif
