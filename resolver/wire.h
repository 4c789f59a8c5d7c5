/*
 * wire.h - the DNS message codec of the query path: our own bounds-checked
 * reader for a query's header, question, OPT and ECS, and writers for the
 * response header and OPT record.
 *
 * The header (RFC 1035 section 4.1.1):
 *
 *                                   1  1  1  1  1  1
 *     0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   |                      ID                       |
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   |          QDCOUNT / ANCOUNT / NSCOUNT / ARCOUNT |
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *
 * The OPT pseudo-record (RFC 6891 section 6.1.2) and its ECS option
 * (RFC 7871 section 6):
 *
 *   NAME = 0 (root) | TYPE = 41 | CLASS = UDP payload size
 *   TTL  = EXTENDED-RCODE(8) VERSION(8) DO(1) Z(15) | RDLEN | options
 *   option: CODE(16) LENGTH(16) DATA
 *   ECS:    FAMILY(16) SOURCE PREFIX-LENGTH(8) SCOPE PREFIX-LENGTH(8)
 *           ADDRESS (ceil(SOURCE/8) bytes, bits past SOURCE zero)
 *
 * Pure functions, no allocation; called by every worker on every query.
 */
#ifndef STEERDNS_RESOLVER_WIRE_H
#define STEERDNS_RESOLVER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_HEADER_LEN 12
#define WIRE_MAX_UDP 65535

enum {
    WIRE_RCODE_NOERROR = 0,
    WIRE_RCODE_FORMERR = 1,
    WIRE_RCODE_SERVFAIL = 2,
    WIRE_RCODE_NXDOMAIN = 3,
    WIRE_RCODE_NOTIMP = 4,
    WIRE_RCODE_REFUSED = 5,
    WIRE_RCODE_BADVERS = 16, /* extended: lives in the OPT record */
};

/* Flag bits of header bytes 2-3, as one 16-bit word. */
#define WIRE_FLAG_QR 0x8000u
#define WIRE_FLAG_AA 0x0400u
#define WIRE_FLAG_TC 0x0200u
#define WIRE_FLAG_RD 0x0100u
#define WIRE_FLAG_RA 0x0080u
#define WIRE_FLAG_AD 0x0020u
#define WIRE_FLAG_CD 0x0010u
#define WIRE_OPCODE(flags) (((flags) >> 11) & 0xFu)

#define WIRE_OPT_ECS 8
#define WIRE_CLASS_IN 1

/* What the parser decided about a query. */
typedef enum wire_verdict {
    WIRE_OK = 0,      /* a well-formed standard query */
    WIRE_DROP,        /* no answer at all: too short, or a response (QR=1) */
    WIRE_FORMERR,     /* answer FORMERR */
    WIRE_NOTIMP,      /* answer NOTIMP: opcode other than QUERY */
    WIRE_BADVERS,     /* answer BADVERS: EDNS version > 0 */
} wire_verdict_t;

typedef struct wire_query {
    uint16_t id;
    uint16_t flags;
    uint16_t qdcount, ancount, nscount, arcount;
    /* The question, when has_question: the name starts at offset 12. */
    bool has_question;
    uint16_t qname_len;
    uint16_t qtype, qclass;
    uint16_t question_end; /* offset just past QCLASS */
    /* EDNS (RFC 6891). */
    bool edns;
    uint8_t edns_version;
    bool edns_do;
    uint16_t edns_udp; /* advertised payload size, raised to 512 */
    /* EDNS Client Subnet (RFC 7871). */
    bool ecs;
    uint8_t ecs_family; /* 1 = IPv4, 2 = IPv6 */
    uint8_t ecs_source;
    uint8_t ecs_addr[16]; /* bits past ecs_source are zero */
} wire_query_t;

/* Parse a query.  Fills q as far as the packet allowed (has_question tells
 * whether the question may be echoed; edns whether an OPT may be written)
 * and returns the verdict.  ecs: EDNS Client Subnet is enabled, so its
 * option is parsed and validated (a malformed one is FORMERR); when false
 * it is skipped like any unknown option and q->ecs stays false.  Never
 * reads past len. */
wire_verdict_t wire_parse_query(const uint8_t *pkt, size_t len, bool ecs, wire_query_t *q);

static inline uint16_t wire_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline void wire_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wire_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Length of the OPT record wire_write_opt would write. */
static inline size_t wire_opt_len(const wire_query_t *q, bool with_ecs)
{
    return 11u + ((with_ecs && q->ecs) ? 4u + 4u + (q->ecs_source + 7u) / 8u : 0u);
}

/* Write the response OPT record at out (room checked by the caller):
 * our payload size, the extended rcode bits, version 0, DO echoed, and the
 * ECS option echoed with the given scope when the query had one and
 * with_ecs.  Returns the bytes written. */
size_t wire_write_opt(uint8_t *out, const wire_query_t *q, uint16_t our_payload,
                      uint8_t ext_rcode, bool with_ecs, uint8_t scope);

/* Write a header at out: ID and flags from the query (opcode, RD, CD
 * copied; QR set; RA, AD, Z clear), with aa/tc and the low 4 rcode bits,
 * and the four counts. */
void wire_write_header(uint8_t *out, const wire_query_t *q, bool aa, bool tc, unsigned rcode,
                       uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar);

#endif
