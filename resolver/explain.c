/*
 * explain.c - explain one query (see explain.h).
 */
#include "resolver/explain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/dname.h"

int explain_query(const snap_t *s, const char *client, const char *name, const char *type,
                  const trace_t *t)
{
    netaddr_t c;
    bool ecs = strchr(client, '/') != NULL;
    if (netaddr_parse_cidr(client, true, &c) != 0) {
        trace_printf(t, "error: client '%s' is not an address or ADDRESS/PREFIX", client);
        return -EINVAL;
    }
    uint16_t qtype = type ? (uint16_t)ldns_get_rr_type_by_name(type) : ZONES_TYPE_A;
    if (qtype == 0) {
        trace_printf(t, "error: unknown type '%s'", type);
        return -EINVAL;
    }
    uint8_t q[600], wname[DNAME_MAXLEN];
    char abs[DNAME_STRLEN + 2];
    size_t nl = strlen(name);
    snprintf(abs, sizeof(abs), "%s%s", name, nl && name[nl - 1] == '.' ? "" : ".");
    int len = dname_from_str(abs, NULL, wname);
    if (len < 0) {
        trace_printf(t, "error: '%s' is not a domain name", name);
        return -EINVAL;
    }
    /* The query: RD clear, EDNS with our payload, ECS when a prefix was
     * given. */
    memset(q, 0, 12);
    q[0] = 0x5e;
    q[1] = 0xed;
    q[5] = 1;
    q[11] = 1;
    size_t p = 12;
    memcpy(q + p, wname, (size_t)len);
    p += (size_t)len;
    wire_put16(q + p, qtype);
    wire_put16(q + p + 2, WIRE_CLASS_IN);
    p += 4;
    q[p++] = 0;
    wire_put16(q + p, 41);
    wire_put16(q + p + 2, 1232);
    wire_put32(q + p + 4, 0);
    p += 8;
    if (ecs) {
        unsigned alen = (c.bits + 7u) / 8u;
        wire_put16(q + p, (uint16_t)(8 + alen));
        p += 2;
        wire_put16(q + p, WIRE_OPT_ECS);
        wire_put16(q + p + 2, (uint16_t)(4 + alen));
        wire_put16(q + p + 4, c.family == 4 ? 1 : 2);
        q[p + 6] = c.bits;
        q[p + 7] = 0;
        memcpy(q + p + 8, c.addr, alen);
        p += 8 + alen;
    } else {
        wire_put16(q + p, 0);
        p += 2;
    }
    answer_client_t ac = {.addr = c, .tcp = true};
    ac.addr.bits = (uint8_t)netaddr_maxbits(c.family);
    if (ecs && s->env.ecs) {
        /* The resolver's own address does not matter with ECS; show a
         * documentation address. */
        netaddr_parse("192.0.2.1", &ac.addr);
    } else if (ecs) {
        trace_printf(t, "note: server.ecs is false: ECS is ignored, so %s stands for the resolver's source address",
                     client);
    }
    char cs[NETADDR_STRLEN];
    netaddr_format(&c, ecs, cs, sizeof(cs));
    trace_printf(t, "query: %s %s from %s %s (configuration generation %llu)", abs,
                 type ? type : "A", ecs ? "ECS subnet" : "source address", cs,
                 (unsigned long long)s->generation);
    static answer_txn_t txn;
    static uint8_t out[65535];
    memset(&txn, 0, sizeof(txn));
    txn.rng = 0x9E3779B97F4A7C15ull;
    txn.trace = t;
    size_t n = answer_respond(&s->env, q, p, &ac, &txn, out, sizeof(out));
    if (!txn.plugin && txn.rcode == WIRE_RCODE_REFUSED)
        trace_printf(t, "answer: refused (a name outside every zone, a class other than IN, or a zone transfer)");
    else if (!txn.plugin)
        trace_printf(t, "answer: from the zone's records (no resolver plugin decides this name and type)");
    ldns_pkt *pkt = NULL;
    if (n == 0 || ldns_wire2pkt(&pkt, out, n) != LDNS_STATUS_OK) {
        trace_printf(t, "answer: none (the query would be dropped)");
        return 0;
    }
    ldns_lookup_table *rc = ldns_lookup_by_id(ldns_rcodes, (int)ldns_pkt_get_rcode(pkt));
    trace_printf(t, "answer: rcode %s%s%s", rc ? rc->name : "?", ldns_pkt_aa(pkt) ? ", authoritative" : "",
                 ldns_pkt_tc(pkt) ? ", truncated" : "");
    const ldns_rr_list *secs[3] = {ldns_pkt_answer(pkt), ldns_pkt_authority(pkt), ldns_pkt_additional(pkt)};
    const char *names[3] = {"answer", "authority", "additional"};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < ldns_rr_list_rr_count(secs[k]); i++) {
            char *str = ldns_rr2str(ldns_rr_list_rr(secs[k], i));
            size_t sl = strlen(str);
            if (sl && str[sl - 1] == '\n')
                str[sl - 1] = '\0';
            trace_printf(t, "  %-10s %s", names[k], str);
            free(str);
        }
    }
    if (ecs && txn.plugin && s->env.ecs)
        trace_printf(t, "  ECS scope  /%u", out[n - 1 - ((c.bits + 7u) / 8u)]);
    else if (ecs)
        trace_printf(t, "  ECS scope  /0");
    ldns_pkt_free(pkt);
    return 0;
}
