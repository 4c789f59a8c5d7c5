/*
 * common.c - helpers shared by the plugins (address lists).
 */
#include <string.h>

#include "resolver/plugin.h"

/* "a mapping", "a sequence", "nothing": what a node is, for messages. */
static const char *node_what(const yconf_node_t *n)
{
    if (yconf_is_null(n))
        return "nothing";
    return n->kind == YCONF_MAP ? "a mapping" : n->kind == YCONF_SEQ ? "a sequence" : "a scalar";
}

bool plugin_parse_addresses(const yconf_node_t *n, const char *path, arena_t *a, diag_list_t *d,
                            plugin_set_t *out)
{
    const yconf_node_t *one[1] = {n};
    const yconf_node_t *const *items = one;
    size_t cnt = 1;
    if (n->kind == YCONF_SEQ) {
        items = n->u.seq.items;
        cnt = n->u.seq.n;
    } else if (n->kind != YCONF_SCALAR || yconf_is_null(n)) {
        yconf_error(d, n, "%s: expected an address or a list of addresses, got %s", path,
                    node_what(n));
        return false;
    }
    uint8_t(*v4)[4] = arena_calloc(a, cnt ? cnt : 1, 4);
    uint8_t(*v6)[16] = arena_calloc(a, cnt ? cnt : 1, 16);
    uint32_t n4 = 0, n6 = 0;
    bool ok = true;
    for (size_t i = 0; i < cnt; i++) {
        const yconf_node_t *it = items[i];
        netaddr_t addr;
        if (it->kind != YCONF_SCALAR || yconf_is_null(it)) {
            yconf_error(d, it, "%s: expected an IPv4 or IPv6 address, got %s", path, node_what(it));
            ok = false;
            continue;
        }
        if (netaddr_parse(it->u.scalar.str, &addr) != 0) {
            yconf_error(d, it, "%s: '%s' is not an IPv4 or IPv6 address", path, it->u.scalar.str);
            ok = false;
            continue;
        }
        /* An RRset holds no duplicate records (RFC 2181 section 5), and
         * "2001:db8::1" and "2001:DB8::1" are one address. */
        bool dup = false;
        if (addr.family == 4) {
            for (uint32_t k = 0; k < n4 && !dup; k++)
                dup = memcmp(v4[k], addr.addr, 4) == 0;
        } else {
            for (uint32_t k = 0; k < n6 && !dup; k++)
                dup = memcmp(v6[k], addr.addr, 16) == 0;
        }
        if (dup) {
            yconf_error(d, it, "%s: address '%s' is listed twice", path, it->u.scalar.str);
            ok = false;
            continue;
        }
        if (addr.family == 4)
            memcpy(v4[n4++], addr.addr, 4);
        else
            memcpy(v6[n6++], addr.addr, 16);
    }
    if (cnt == 0) {
        yconf_error(d, n, "%s: at least one address is needed", path);
        ok = false;
    }
    out->v4 = (const uint8_t(*)[4])v4;
    out->n4 = n4;
    out->v6 = (const uint8_t(*)[16])v6;
    out->n6 = n6;
    return ok;
}
