/*
 * netaddr.c - address and prefix parsing (see netaddr.h).
 */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int netaddr_parse(const char *s, netaddr_t *out)
{
    netaddr_t a = {0};
    if (strchr(s, ':')) {
        if (inet_pton(AF_INET6, s, a.addr) != 1)
            return -EINVAL;
        a.family = 6;
        a.bits = 128;
    } else {
        if (inet_pton(AF_INET, s, a.addr) != 1)
            return -EINVAL;
        a.family = 4;
        a.bits = 32;
    }
    *out = a;
    return 0;
}

int netaddr_parse_cidr(const char *s, bool allow_host_bits, netaddr_t *out)
{
    char buf[NETADDR_STRLEN];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    netaddr_t a;
    if (netaddr_parse(buf, &a) != 0)
        return -EINVAL;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -EINVAL;
        unsigned bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > netaddr_maxbits(a.family))
            return -EINVAL;
        a.bits = (uint8_t)bits;
    }
    if (!netaddr_is_masked(a.addr, a.family, a.bits)) {
        if (!allow_host_bits)
            return -EINVAL;
        netaddr_mask(a.addr, a.family, a.bits);
    }
    *out = a;
    return 0;
}

size_t netaddr_format(const netaddr_t *a, bool always_prefix, char *out, size_t size)
{
    char buf[NETADDR_STRLEN];
    if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, buf, sizeof(buf)) == NULL)
        snprintf(buf, sizeof(buf), "?");
    int n;
    if (always_prefix || a->bits != netaddr_maxbits(a->family))
        n = snprintf(out, size, "%s/%u", buf, a->bits);
    else
        n = snprintf(out, size, "%s", buf);
    return n < 0 ? 0 : (size_t)n;
}

void netaddr_mask(uint8_t *addr, uint8_t family, unsigned bits)
{
    unsigned len = family == 4 ? 4u : 16u;
    for (unsigned i = 0; i < len; i++) {
        unsigned lo = i * 8;
        if (bits >= lo + 8)
            continue;
        if (bits <= lo)
            addr[i] = 0;
        else
            addr[i] &= (uint8_t)(0xFFu << (8 - (bits - lo)));
    }
}

bool netaddr_is_masked(const uint8_t *addr, uint8_t family, unsigned bits)
{
    unsigned len = family == 4 ? 4u : 16u;
    for (unsigned i = 0; i < len; i++) {
        unsigned lo = i * 8;
        if (bits >= lo + 8)
            continue;
        uint8_t keep = bits <= lo ? 0 : (uint8_t)(0xFFu << (8 - (bits - lo)));
        if (addr[i] & (uint8_t)~keep)
            return false;
    }
    return true;
}

bool netaddr_contains(const netaddr_t *p, const netaddr_t *a)
{
    if (p->family != a->family || a->bits < p->bits)
        return false;
    uint8_t tmp[16];
    memcpy(tmp, a->addr, 16);
    netaddr_mask(tmp, a->family, p->bits);
    return memcmp(tmp, p->addr, a->family == 4 ? 4 : 16) == 0;
}
