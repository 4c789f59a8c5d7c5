/*
 * wire.c - query parser and response header/OPT writers (see wire.h).
 */
#include "resolver/wire.h"

#include <string.h>

/* Skip a possibly compressed name in a record (additional section).
 * Returns the position after it, or 0 on error. */
static size_t skip_name(const uint8_t *pkt, size_t len, size_t p)
{
    for (unsigned hops = 0; hops < 128; hops++) {
        if (p >= len)
            return 0;
        uint8_t c = pkt[p];
        if ((c & 0xC0) == 0xC0)
            return p + 2 <= len ? p + 2 : 0;
        if (c & 0xC0)
            return 0;
        p += (size_t)c + 1;
        if (c == 0)
            return p <= len ? p : 0;
    }
    return 0;
}

static wire_verdict_t parse_opt(const uint8_t *pkt, size_t p, size_t rdlen, uint16_t cls,
                                uint32_t ttl, bool ecs, wire_query_t *q)
{
    q->edns = true;
    q->edns_udp = cls < 512 ? 512 : cls;
    q->edns_version = (uint8_t)(ttl >> 16);
    q->edns_do = (ttl & 0x8000u) != 0;
    size_t end = p + rdlen;
    while (p < end) {
        if (end - p < 4)
            return WIRE_FORMERR;
        uint16_t code = wire_get16(pkt + p);
        uint16_t olen = wire_get16(pkt + p + 2);
        p += 4;
        if (olen > end - p)
            return WIRE_FORMERR;
        /* With ECS off the option is one we do not implement: ignored
         * like any unknown option (RFC 6891 section 6.1.2), never
         * FORMERR and never echoed. */
        if (code == WIRE_OPT_ECS && ecs) {
            /* RFC 7871 section 6: validate everything; a bad option is
             * FORMERR, and so is a second ECS option. */
            if (q->ecs || olen < 4)
                return WIRE_FORMERR;
            uint16_t family = wire_get16(pkt + p);
            uint8_t source = pkt[p + 2];
            unsigned maxbits;
            if (family == 1)
                maxbits = 32;
            else if (family == 2)
                maxbits = 128;
            else
                return WIRE_FORMERR;
            if (source > maxbits)
                return WIRE_FORMERR;
            unsigned alen = (source + 7u) / 8u;
            if ((unsigned)olen - 4u != alen)
                return WIRE_FORMERR;
            memset(q->ecs_addr, 0, sizeof(q->ecs_addr));
            memcpy(q->ecs_addr, pkt + p + 4, alen);
            if (source % 8u) {
                uint8_t mask = (uint8_t)(0xFFu >> (source % 8u));
                if (q->ecs_addr[alen - 1] & mask)
                    return WIRE_FORMERR;
            }
            q->ecs = true;
            q->ecs_family = (uint8_t)family;
            q->ecs_source = source;
        }
        /* Unknown options are ignored (RFC 6891 section 6.1.2). */
        p += olen;
    }
    return WIRE_OK;
}

wire_verdict_t wire_parse_query(const uint8_t *pkt, size_t len, bool ecs, wire_query_t *q)
{
    memset(q, 0, sizeof(*q));
    if (len < WIRE_HEADER_LEN)
        return WIRE_DROP;
    q->id = wire_get16(pkt);
    q->flags = wire_get16(pkt + 2);
    if (q->flags & WIRE_FLAG_QR)
        return WIRE_DROP; /* a response: never answer it (no reflection loops) */
    q->qdcount = wire_get16(pkt + 4);
    q->ancount = wire_get16(pkt + 6);
    q->nscount = wire_get16(pkt + 8);
    q->arcount = wire_get16(pkt + 10);
    bool notimp = WIRE_OPCODE(q->flags) != 0;
    if (q->qdcount != 1)
        return notimp ? WIRE_NOTIMP : WIRE_FORMERR;

    /* The question name: labels only; a compression pointer here could
     * only point into the header (RFC 1035 section 4.1.4). */
    size_t p = WIRE_HEADER_LEN;
    for (;;) {
        if (p >= len)
            return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
        uint8_t c = pkt[p];
        if (c > 63)
            return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
        p += (size_t)c + 1;
        if (p - WIRE_HEADER_LEN > 255)
            return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
        if (c == 0)
            break;
    }
    if (p + 4 > len)
        return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
    q->qname_len = (uint16_t)(p - WIRE_HEADER_LEN);
    q->qtype = wire_get16(pkt + p);
    q->qclass = wire_get16(pkt + p + 2);
    p += 4;
    q->question_end = (uint16_t)p;
    q->has_question = true;

    /* Records in the answer or authority section, or a second or
     * misplaced OPT, make the query malformed; the records are still
     * walked to find the OPT record, so that the FORMERR carries ours
     * (RFC 6891 section 6.1.1). */
    bool formerr = q->ancount != 0 || q->nscount != 0;
    uint32_t before_ar = (uint32_t)q->ancount + q->nscount;
    uint32_t total = before_ar + q->arcount;
    bool seen_opt = false;
    wire_verdict_t v = WIRE_OK;
    for (uint32_t i = 0; i < total; i++) {
        size_t owner = p;
        p = skip_name(pkt, len, p);
        if (p == 0 || p + 10 > len)
            return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
        uint16_t type = wire_get16(pkt + p);
        uint16_t cls = wire_get16(pkt + p + 2);
        uint32_t ttl = ((uint32_t)wire_get16(pkt + p + 4) << 16) | wire_get16(pkt + p + 6);
        uint16_t rdlen = wire_get16(pkt + p + 8);
        p += 10;
        if (rdlen > len - p)
            return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
        if (type == 41 && i >= before_ar) {
            /* One OPT, owned by the root (RFC 6891 section 6.1.1). */
            if (seen_opt || pkt[owner] != 0) {
                formerr = true;
                q->edns = true; /* answered with our OPT all the same */
            } else {
                seen_opt = true;
                v = parse_opt(pkt, p, rdlen, cls, ttl, ecs, q);
                if (v != WIRE_OK) {
                    q->ecs = false;
                    if (notimp)
                        return WIRE_NOTIMP;
                    return v;
                }
            }
        }
        p += rdlen;
    }
    if (formerr) {
        q->ecs = false;
        return notimp ? WIRE_NOTIMP : WIRE_FORMERR;
    }
    if (p != len)
        return notimp ? WIRE_NOTIMP : WIRE_FORMERR; /* trailing bytes */
    if (notimp)
        return WIRE_NOTIMP;
    if (q->edns && q->edns_version > 0)
        return WIRE_BADVERS;
    return WIRE_OK;
}

size_t wire_write_opt(uint8_t *out, const wire_query_t *q, uint16_t our_payload,
                      uint8_t ext_rcode, bool with_ecs, uint8_t scope)
{
    bool ecs = with_ecs && q->ecs;
    unsigned alen = ecs ? (q->ecs_source + 7u) / 8u : 0u;
    uint16_t rdlen = ecs ? (uint16_t)(4u + 4u + alen) : 0;
    out[0] = 0; /* root owner */
    wire_put16(out + 1, 41);
    wire_put16(out + 3, our_payload);
    out[5] = ext_rcode;
    out[6] = 0; /* version 0 */
    wire_put16(out + 7, q->edns_do ? 0x8000u : 0);
    wire_put16(out + 9, rdlen);
    if (ecs) {
        /* RFC 7871 section 7.2.1: FAMILY, SOURCE and ADDRESS as received;
         * SCOPE is ours. */
        wire_put16(out + 11, WIRE_OPT_ECS);
        wire_put16(out + 13, (uint16_t)(4u + alen));
        wire_put16(out + 15, q->ecs_family);
        out[17] = q->ecs_source;
        out[18] = scope;
        memcpy(out + 19, q->ecs_addr, alen);
    }
    return 11u + rdlen;
}

void wire_write_header(uint8_t *out, const wire_query_t *q, bool aa, bool tc, unsigned rcode,
                       uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
    uint16_t f = WIRE_FLAG_QR | (q->flags & (0x7800u | WIRE_FLAG_RD | WIRE_FLAG_CD));
    if (aa)
        f |= WIRE_FLAG_AA;
    if (tc)
        f |= WIRE_FLAG_TC;
    f |= (uint16_t)(rcode & 0xFu);
    wire_put16(out, q->id);
    wire_put16(out + 2, f);
    wire_put16(out + 4, qd);
    wire_put16(out + 6, an);
    wire_put16(out + 8, ns);
    wire_put16(out + 10, ar);
}
