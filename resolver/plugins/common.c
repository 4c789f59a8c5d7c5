/*
 * common.c - helpers shared by the plugins (address lists).
 */
#include <string.h>

#include "resolver/plugin.h"

bool plugin_parse_addresses(const yconf_node_t *n, const char *path, arena_t *a, diag_list_t *d,
                            plugin_set_t *out)
{
    const yconf_node_t *one[1] = {n};
    const yconf_node_t *const *items = one;
    size_t cnt = 1;
    if (n->kind == YCONF_SEQ) {
        items = n->u.seq.items;
        cnt = n->u.seq.n;
    } else if (n->kind != YCONF_SCALAR) {
        yconf_error(d, n, "%s: expected an address or a list of addresses", path);
        return false;
    }
    uint8_t(*v4)[4] = arena_calloc(a, cnt ? cnt : 1, 4);
    uint8_t(*v6)[16] = arena_calloc(a, cnt ? cnt : 1, 16);
    uint32_t n4 = 0, n6 = 0;
    bool ok = true;
    for (size_t i = 0; i < cnt; i++) {
        netaddr_t addr;
        if (items[i]->kind != YCONF_SCALAR || netaddr_parse(items[i]->u.scalar.str, &addr) != 0) {
            yconf_error(d, items[i], "%s: '%s' is not an IPv4 or IPv6 address", path,
                        items[i]->kind == YCONF_SCALAR ? items[i]->u.scalar.str : "?");
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
