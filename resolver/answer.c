/*
 * answer.c - the answer compiler (snapshot build) and answer_respond (the
 * query path).  See answer.h for the blob format.
 */
#include "resolver/answer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== compiler (load time) ==== */

#define CB_MAX 65000u  /* largest blob: leaves room for header, question, OPT */
#define CB_TAB 256u    /* compression targets remembered per blob */
#define CB_RELOCS 2048u
#define CB_CUTS 1024u
#define PTR_LIMIT (0x4000u - 256u) /* targets must stay addressable after a shift */

typedef struct ctab {
    uint16_t off; /* message offset */
    uint8_t len;
    uint8_t name[DNAME_MAXLEN]; /* lower-cased suffix */
} ctab_t;

typedef struct compiler {
    arena_t *a;
    diag_list_t *d;
    const zones_t *zones;
    uint8_t buf[CB_MAX];
    size_t len;
    size_t base; /* message offset of buf[0]: 12 + base_qlen + 4 */
    uint8_t base_qlen;
    bool base_is_qname;
    bool overflow;
    ctab_t tab[CB_TAB];
    unsigned ntab;
    uint16_t relocs[CB_RELOCS];
    unsigned nrelocs;
    answer_cut_t cuts[CB_CUTS];
    bool cut_required[CB_CUTS]; /* the RRset ending at this cut is required */
    unsigned ncuts;
    uint16_t an, ns, ar;
    size_t total_bytes;
    const uint8_t *what; /* name being compiled, for messages */
} compiler_t;

enum { SEC_AN, SEC_NS, SEC_AR };

static bool room(compiler_t *c, size_t n)
{
    if (c->len + n > CB_MAX) {
        c->overflow = true;
        return false;
    }
    return true;
}

static void tab_add(compiler_t *c, const uint8_t *lname, size_t off)
{
    if (c->ntab >= CB_TAB || off >= PTR_LIMIT)
        return;
    ctab_t *t = &c->tab[c->ntab++];
    t->off = (uint16_t)off;
    t->len = (uint8_t)dname_len(lname);
    memcpy(t->name, lname, t->len);
}

static int tab_find(const compiler_t *c, const uint8_t *lname, size_t len)
{
    for (unsigned i = 0; i < c->ntab; i++)
        if (c->tab[i].len == len && memcmp(c->tab[i].name, lname, len) == 0)
            return (int)i;
    return -1;
}

static void begin(compiler_t *c, const uint8_t *base_name, bool base_is_qname)
{
    c->len = 0;
    c->base_qlen = (uint8_t)dname_len(base_name);
    c->base = WIRE_HEADER_LEN + c->base_qlen + 4u;
    c->base_is_qname = base_is_qname;
    c->overflow = false;
    c->ntab = 0;
    c->nrelocs = 0;
    c->ncuts = 0;
    c->an = c->ns = c->ar = 0;
    /* The question's suffixes are compression targets. */
    for (const uint8_t *p = base_name; *p; p += *p + 1)
        tab_add(c, p, WIRE_HEADER_LEN + (size_t)(p - base_name));
    c->cuts[0] = (answer_cut_t){0, 0, 0, 0, false};
    c->cut_required[0] = false;
    c->ncuts = 1;
}

static void put_ptr(compiler_t *c, uint16_t target)
{
    if (!room(c, 2))
        return;
    if (!(c->base_is_qname && target == WIRE_HEADER_LEN)) {
        if (c->nrelocs < CB_RELOCS)
            c->relocs[c->nrelocs++] = (uint16_t)c->len;
        else
            c->overflow = true;
    }
    c->buf[c->len++] = (uint8_t)(0xC0u | (target >> 8));
    c->buf[c->len++] = (uint8_t)target;
}

/* Write a name, compressed against what was written before when
 * compress. */
static void put_name(compiler_t *c, const uint8_t *name, bool compress)
{
    size_t nlen = dname_len(name);
    uint8_t lname[DNAME_MAXLEN];
    dname_lower_copy(lname, name, nlen);
    if (!compress) {
        if (room(c, nlen)) {
            memcpy(c->buf + c->len, name, nlen);
            c->len += nlen;
        }
        return;
    }
    size_t offs[DNAME_MAXLABELS];
    unsigned nl = 0;
    int hit = -1;
    size_t p = 0;
    while (lname[p]) {
        hit = tab_find(c, lname + p, nlen - p);
        if (hit >= 0)
            break;
        offs[nl++] = p;
        p += lname[p] + 1u;
    }
    /* Labels before the matching suffix are written out. */
    if (!room(c, p + 2))
        return;
    size_t start = c->len;
    memcpy(c->buf + c->len, name, p);
    c->len += p;
    if (hit >= 0)
        put_ptr(c, c->tab[hit].off);
    else
        c->buf[c->len++] = 0;
    for (unsigned i = 0; i < nl; i++)
        tab_add(c, lname + offs[i], c->base + start + offs[i]);
}

static bool compressible(uint16_t type)
{
    switch (type) {
    case ZONES_TYPE_NS:
    case ZONES_TYPE_CNAME:
    case ZONES_TYPE_SOA:
    case ZONES_TYPE_PTR:
    case ZONES_TYPE_MX:
        return true;
    default:
        return false;
    }
}

/* A pointer to the question name itself (offset 12): it never moves,
 * whatever the blob was compiled against. */
static void put_qname_ptr(compiler_t *c)
{
    if (!room(c, 2))
        return;
    c->buf[c->len++] = 0xC0;
    c->buf[c->len++] = WIRE_HEADER_LEN;
}

/* One RR; owner NULL means the question name. */
static void put_rr(compiler_t *c, const uint8_t *owner, uint16_t type, uint32_t ttl,
                   const uint8_t *rdata, uint16_t rdlen)
{
    if (owner == NULL)
        put_qname_ptr(c);
    else
        put_name(c, owner, true);
    if (!room(c, 10 + (size_t)rdlen))
        return;
    wire_put16(c->buf + c->len, type);
    wire_put16(c->buf + c->len + 2, WIRE_CLASS_IN);
    wire_put32(c->buf + c->len + 4, ttl);
    size_t rdlen_at = c->len + 8;
    c->len += 10;
    size_t rstart = c->len;
    uint16_t offs[2];
    unsigned nn = compressible(type) ? zones_rdata_names(type, rdata, rdlen, offs) : 0;
    uint16_t p = 0;
    for (unsigned i = 0; i < nn; i++) {
        memcpy(c->buf + c->len, rdata + p, offs[i] - p);
        c->len += offs[i] - p;
        put_name(c, rdata + offs[i], true);
        p = (uint16_t)(offs[i] + dname_len(rdata + offs[i]));
    }
    if (!room(c, (size_t)(rdlen - p)))
        return;
    memcpy(c->buf + c->len, rdata + p, (size_t)(rdlen - p));
    c->len += (size_t)(rdlen - p);
    wire_put16(c->buf + rdlen_at, (uint16_t)(c->len - rstart));
}

static void end_rrset(compiler_t *c, bool required)
{
    if (c->overflow || c->ncuts >= CB_CUTS)
        return;
    c->cuts[c->ncuts] = (answer_cut_t){(uint16_t)c->len, c->an, c->ns, c->ar, false};
    c->cut_required[c->ncuts] = required;
    c->ncuts++;
}

static void put_rrset(compiler_t *c, const uint8_t *owner, const zones_rrset_t *s, uint32_t ttl,
                      int section, bool required)
{
    if (c->overflow)
        return;
    size_t save_len = c->len;
    unsigned save_ntab = c->ntab, save_relocs = c->nrelocs;
    const uint8_t *p = s->rdata;
    for (uint16_t i = 0; i < s->count; i++) {
        uint16_t rdlen = wire_get16(p);
        put_rr(c, owner, s->type, ttl, p + 2, rdlen);
        p += 2 + rdlen;
    }
    if (c->overflow) {
        /* Keep the blob whole up to the previous RRset. */
        c->len = save_len;
        c->ntab = save_ntab;
        c->nrelocs = save_relocs;
        return;
    }
    if (section == SEC_AN)
        c->an = (uint16_t)(c->an + s->count);
    else if (section == SEC_NS)
        c->ns = (uint16_t)(c->ns + s->count);
    else
        c->ar = (uint16_t)(c->ar + s->count);
    end_rrset(c, required);
}

static const answer_blob_t *finish(compiler_t *c, uint8_t rcode, bool aa)
{
    if (c->overflow) {
        char n[DNAME_STRLEN];
        dname_to_str(c->what, n, sizeof(n));
        diag_warn(c->d, NULL, "an answer for '%s' is larger than %u bytes: records that do not fit are left out",
                  n, CB_MAX);
    }
    answer_blob_t *b = arena_calloc(c->a, 1, sizeof(*b));
    b->data = arena_memdup(c->a, c->buf, c->len);
    b->len = (uint16_t)c->len;
    b->an = c->an;
    b->ns = c->ns;
    b->ar = c->ar;
    b->rcode = rcode;
    b->aa = aa;
    b->base_qlen = c->base_qlen;
    b->nrelocs = (uint16_t)c->nrelocs;
    b->relocs = arena_memdup(c->a, c->relocs, c->nrelocs * sizeof(uint16_t));
    /* A cut may drop only optional records when no required RRset comes
     * after it. */
    bool required_after = false;
    for (unsigned i = c->ncuts; i-- > 0;) {
        c->cuts[i].optional_rest = !required_after;
        if (c->cut_required[i])
            required_after = true;
    }
    b->ncuts = (uint16_t)c->ncuts;
    b->cuts = arena_memdup(c->a, c->cuts, c->ncuts * sizeof(answer_cut_t));
    c->total_bytes += c->len + sizeof(*b);
    return b;
}

/* Addresses of in-zone targets of NS, MX and SRV records (RFC 1035
 * section 3.3.9, RFC 2782): optional additional data; glue only in
 * referrals. */
static void put_additional(compiler_t *c, const zones_zone_t *z, const zones_rrset_t *s,
                           const uint8_t *cut, bool referral)
{
    if (s->type != ZONES_TYPE_NS && s->type != ZONES_TYPE_MX && s->type != ZONES_TYPE_SRV)
        return;
    const uint8_t *p = s->rdata;
    const zones_node_t *seen[64];
    unsigned nseen = 0;
    for (uint16_t i = 0; i < s->count; i++) {
        uint16_t rdlen = wire_get16(p);
        uint16_t offs[2];
        if (zones_rdata_names(s->type, p + 2, rdlen, offs) > 0) {
            const uint8_t *target = p + 2 + offs[0];
            uint8_t lt[DNAME_MAXLEN];
            dname_lower_copy(lt, target, dname_len(target));
            const zones_node_t *g = dname_is_subdomain(lt, z->apex) ? zones_find_node(z, lt) : NULL;
            /* Outside a referral only authoritative addresses: not the
             * glue at or below a zone cut. */
            if (g && !referral && (g->flags & (ZONES_NODE_OCCLUDED | ZONES_NODE_DELEGATION)))
                g = NULL;
            bool dup = false;
            for (unsigned k = 0; k < nseen; k++)
                dup |= seen[k] == g;
            if (g && !dup && nseen < 64) {
                seen[nseen++] = g;
                /* Glue below the cut is required for the referral to work
                 * (RFC 9471); other addresses are a courtesy. */
                bool required = referral && cut && dname_is_subdomain(lt, cut);
                const zones_rrset_t *a4 = zones_node_rrset(g, ZONES_TYPE_A);
                const zones_rrset_t *a6 = zones_node_rrset(g, ZONES_TYPE_AAAA);
                if (a4)
                    put_rrset(c, g->name, a4, a4->ttl, SEC_AR, required);
                if (a6)
                    put_rrset(c, g->name, a6, a6->ttl, SEC_AR, required);
            }
        }
        p += 2 + rdlen;
    }
}

static void put_soa(compiler_t *c, const zones_zone_t *z)
{
    put_rrset(c, z->apex, z->soa, z->negative_ttl, SEC_NS, true);
}

static const answer_blob_t *compile_nodata(compiler_t *c, const zones_node_t *n)
{
    begin(c, n->name, true);
    put_soa(c, n->zone);
    return finish(c, WIRE_RCODE_NOERROR, true);
}

/* The longest CNAME chain followed inside a zone: an answer holds at most
 * this many CNAME records (RFC 1034 section 4.3.2 leaves the bound to the
 * server; without one a loop would never end).  put_chain and chain_end
 * must stop at the same place, or a type the end of the chain has would be
 * answered by the "other types" answer, which claims NODATA. */
#define CHAIN_MAX 8u

/* Follow a CNAME chain from node n inside its zone for qtype (0: a type
 * no node has), writing into c (begun by the caller).  RFC 1034 section
 * 4.3.2 step 3.a; RFC 6604 for the rcode of the last link. */
static uint8_t put_chain(compiler_t *c, const zones_node_t *n, uint16_t qtype)
{
    const zones_zone_t *z = n->zone;
    const uint8_t *owner = NULL; /* the question name */
    const zones_node_t *cur = n;
    const zones_node_t *visited[CHAIN_MAX + 1];
    /* Targets written as owners of later links live here, not in a loop
     * variable, because put_rrset reads them one iteration later. */
    uint8_t names[CHAIN_MAX][DNAME_MAXLEN];
    for (unsigned hop = 0;; hop++) {
        visited[hop] = cur;
        const zones_rrset_t *cn = zones_node_rrset(cur, ZONES_TYPE_CNAME);
        if (cn == NULL || qtype == ZONES_TYPE_CNAME) {
            const zones_rrset_t *s = zones_node_rrset(cur, qtype ? qtype : 0xFFFFu);
            if (qtype == ZONES_TYPE_CNAME)
                s = cn;
            if (s) {
                put_rrset(c, owner, s, s->ttl, SEC_AN, true);
                put_additional(c, z, s, NULL, false);
            } else {
                put_soa(c, z);
            }
            return WIRE_RCODE_NOERROR;
        }
        /* The cap: the CNAMEs so far, and no SOA, which would claim that
         * the last target has no data (RFC 2308 section 2.2). */
        if (hop == CHAIN_MAX)
            return WIRE_RCODE_NOERROR;
        put_rrset(c, owner, cn, cn->ttl, SEC_AN, true);
        const uint8_t *target = cn->rdata + 2;
        uint8_t *lt = names[hop];
        size_t tl = dname_len(target);
        dname_lower_copy(lt, target, tl);
        if (!dname_is_subdomain(lt, z->apex))
            return WIRE_RCODE_NOERROR; /* out of zone: the resolver follows it */
        zones_qname_t q;
        zones_qname_prepare(&q, lt, tl);
        zones_match_t m;
        zones_lookup(c->zones, &q, false, &m);
        if (m.zone != z)
            return WIRE_RCODE_NOERROR; /* another zone (a child we also serve) */
        if (m.result == ZONES_NXDOMAIN) {
            put_soa(c, z);
            return WIRE_RCODE_NXDOMAIN;
        }
        if (m.result == ZONES_DELEGATION) {
            /* The target is at or below a zone cut: restarting at it
             * (RFC 1034 section 4.3.2 step 3.b) gives the referral, so
             * the CNAMEs are followed by the cut's NS RRset in the
             * authority section and its glue in the additional section.
             * AA stays: it covers the CNAMEs (as Knot DNS and NSD do). */
            const zones_rrset_t *ns = zones_node_rrset(m.node, ZONES_TYPE_NS);
            put_rrset(c, m.node->name, ns, ns->ttl, SEC_NS, true);
            put_additional(c, z, ns, m.node->name, true);
            return WIRE_RCODE_NOERROR;
        }
        if (m.result == ZONES_NOTAUTH)
            return WIRE_RCODE_NOERROR;
        if (m.node->resolver && (qtype == ZONES_TYPE_A || qtype == ZONES_TYPE_AAAA))
            return WIRE_RCODE_NOERROR; /* dynamic target: the resolver asks for it */
        for (unsigned k = 0; k <= hop; k++)
            if (visited[k] == m.node)
                return WIRE_RCODE_NOERROR; /* a loop */
        cur = m.node;
        /* A wildcard synthesises its records under the target name
         * (RFC 4592 section 3.3.1). */
        owner = m.result == ZONES_WILDCARD ? lt : m.node->name;
    }
}

/* The node at the end of n's CNAME chain (n itself without one), or NULL
 * when put_chain would not reach one: the chain leaves the zone, hits a
 * cut, a missing name or a loop, or is longer than CHAIN_MAX. */
static const zones_node_t *chain_end(const compiler_t *c, const zones_node_t *n)
{
    const zones_node_t *cur = n;
    for (unsigned hop = 0;; hop++) {
        const zones_rrset_t *cn = zones_node_rrset(cur, ZONES_TYPE_CNAME);
        if (cn == NULL)
            return cur;
        if (hop == CHAIN_MAX)
            return NULL;
        uint8_t lt[DNAME_MAXLEN];
        size_t tl = dname_len(cn->rdata + 2);
        dname_lower_copy(lt, cn->rdata + 2, tl);
        if (!dname_is_subdomain(lt, n->zone->apex))
            return NULL;
        zones_qname_t q;
        zones_qname_prepare(&q, lt, tl);
        zones_match_t m;
        zones_lookup(c->zones, &q, false, &m);
        if (m.zone != n->zone || (m.result != ZONES_EXACT && m.result != ZONES_WILDCARD))
            return NULL;
        if (m.node == n)
            return NULL;
        cur = m.node;
    }
}

static const answer_blob_t *compile_type(compiler_t *c, const zones_node_t *n, uint16_t qtype)
{
    begin(c, n->name, true);
    uint8_t rcode = put_chain(c, n, qtype);
    return finish(c, rcode, true);
}

static const answer_blob_t *compile_referral(compiler_t *c, const zones_node_t *n)
{
    begin(c, n->name, false);
    const zones_rrset_t *ns = zones_node_rrset(n, ZONES_TYPE_NS);
    put_rrset(c, n->name, ns, ns->ttl, SEC_NS, true);
    put_additional(c, n->zone, ns, n->name, true);
    return finish(c, WIRE_RCODE_NOERROR, false);
}

typedef struct compile_ctx {
    compiler_t *c;
    answer_db_t *db;
} compile_ctx_t;

/* Add t to the 512-entry types list of nt entries unless it is there. */
static unsigned add_type(uint16_t *types, unsigned nt, uint16_t t)
{
    for (unsigned k = 0; k < nt; k++)
        if (types[k] == t)
            return nt;
    if (nt < 512)
        types[nt++] = t;
    return nt;
}

static void compile_node(void *arg, const zones_node_t *n)
{
    compile_ctx_t *x = arg;
    compiler_t *c = x->c;
    answer_node_t *an = &x->db->nodes[n->id];
    c->what = n->name;
    if (n->flags & ZONES_NODE_OCCLUDED)
        return;
    if (n->flags & ZONES_NODE_DELEGATION) {
        an->referral = compile_referral(c, n);
        an->other = compile_nodata(c, n);
        const zones_rrset_t *ds = zones_node_rrset(n, ZONES_TYPE_DS);
        if (ds) {
            uint16_t *types = arena_alloc(c->a, sizeof(uint16_t));
            const answer_blob_t **blobs = arena_alloc(c->a, sizeof(*blobs));
            types[0] = ZONES_TYPE_DS;
            begin(c, n->name, true);
            put_rrset(c, NULL, ds, ds->ttl, SEC_AN, true);
            blobs[0] = finish(c, WIRE_RCODE_NOERROR, true);
            an->ntypes = 1;
            an->types = types;
            an->blobs = blobs;
        }
        an->any = an->other;
        return;
    }
    /* Types with a precompiled positive answer: those at the node, plus
     * those at the end of its CNAME chain. */
    uint16_t types[512];
    unsigned nt = 0;
    for (uint16_t i = 0; i < n->nrrsets && nt < 256; i++)
        types[nt++] = n->rrsets[i].type;
    if (zones_node_rrset(n, ZONES_TYPE_CNAME)) {
        const zones_node_t *end = chain_end(c, n);
        if (end && end->resolver) {
            /* A name a plugin answers: A and AAAA are its, not NODATA.
             * The chain stops before it (put_chain) and the resolver asks
             * for the target itself, with its ECS. */
            nt = add_type(types, nt, ZONES_TYPE_A);
            nt = add_type(types, nt, ZONES_TYPE_AAAA);
        }
        for (uint16_t i = 0; end && i < end->nrrsets; i++)
            nt = add_type(types, nt, end->rrsets[i].type);
    }
    /* Sorted for the binary search of the query path. */
    for (unsigned i = 1; i < nt; i++)
        for (unsigned k = i; k > 0 && types[k - 1] > types[k]; k--) {
            uint16_t t = types[k];
            types[k] = types[k - 1];
            types[k - 1] = t;
        }
    uint16_t *ts = arena_memdup(c->a, types, nt * sizeof(uint16_t));
    const answer_blob_t **blobs = arena_calloc(c->a, nt ? nt : 1, sizeof(*blobs));
    for (unsigned i = 0; i < nt; i++)
        blobs[i] = compile_type(c, n, ts[i]);
    an->ntypes = (uint16_t)nt;
    an->types = ts;
    an->blobs = blobs;
    if (zones_node_rrset(n, ZONES_TYPE_CNAME))
        an->other = compile_type(c, n, 0);
    else
        an->other = compile_nodata(c, n);
    /* QTYPE ANY (RFC 8482 section 4.2): one RRset, the CNAME if there is
     * one, else the first by type. */
    if (n->nrrsets == 0) {
        an->any = an->other;
    } else {
        const zones_rrset_t *s = zones_node_rrset(n, ZONES_TYPE_CNAME);
        if (s == NULL)
            s = &n->rrsets[0];
        begin(c, n->name, true);
        put_rrset(c, NULL, s, s->ttl, SEC_AN, true);
        an->any = finish(c, WIRE_RCODE_NOERROR, true);
    }
}

int answer_compile(const zones_t *zones, arena_t *a, diag_list_t *d, answer_db_t **out)
{
    compiler_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->a = a;
    c->d = d;
    c->zones = zones;
    answer_db_t *db = arena_calloc(a, 1, sizeof(*db));
    db->zones = zones;
    size_t nn = zones_node_count(zones);
    db->nodes = arena_calloc(a, nn ? nn : 1, sizeof(answer_node_t));
    size_t nz = zones_count(zones);
    db->nxdomain = arena_calloc(a, nz ? nz : 1, sizeof(*db->nxdomain));
    for (size_t i = 0; i < nz; i++) {
        const zones_zone_t *z = zones_get(zones, i);
        c->what = z->apex;
        begin(c, z->apex, false);
        put_soa(c, z);
        db->nxdomain[i] = finish(c, WIRE_RCODE_NXDOMAIN, true);
    }
    compile_ctx_t x = {c, db};
    zones_foreach_node(zones, compile_node, &x);
    db->bytes = c->total_bytes;
    free(c);
    *out = db;
    return 0;
}

int answer_compile_plugin(answer_db_t *db, const zones_node_t *n, const plugin_inst_t *pi,
                          arena_t *a, diag_list_t *d)
{
    answer_node_t *an = &db->nodes[n->id];
    for (const answer_setcache_t *k = db->setcache; k; k = k->next) {
        if (k->pi == pi && k->zone == n->zone) {
            an->plugin = pi;
            an->sets = k->sets;
            return 0;
        }
    }
    compiler_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->a = a;
    c->d = d;
    c->zones = db->zones;
    c->what = n->name;
    const answer_blob_t **sets = arena_calloc(a, (size_t)pi->decl.nsets * 2, sizeof(*sets));
    for (uint32_t i = 0; i < pi->decl.nsets; i++) {
        const plugin_set_t *ps = &pi->decl.sets[i];
        for (int fam = 0; fam < 2; fam++) {
            uint32_t cnt = fam ? ps->n6 : ps->n4;
            /* Compiled against the zone apex, so that every name of the
             * zone can share it: the answers' owner is the question name
             * (a pointer that never moves), the SOA of NODATA points into
             * the question's suffix (moved by the length difference). */
            begin(c, n->zone->apex, false);
            if (cnt == 0) {
                /* No address of this family in the set: NODATA. */
                put_soa(c, n->zone);
                sets[i * 2 + (uint32_t)fam] = finish(c, WIRE_RCODE_NOERROR, true);
                continue;
            }
            for (uint32_t k = 0; k < cnt; k++)
                put_rr(c, NULL, fam ? ZONES_TYPE_AAAA : ZONES_TYPE_A, pi->decl.ttl,
                       fam ? ps->v6[k] : ps->v4[k], fam ? 16 : 4);
            c->an = (uint16_t)cnt;
            end_rrset(c, true);
            answer_blob_t *b = (answer_blob_t *)finish(c, WIRE_RCODE_NOERROR, true);
            b->ttl_stride = fam ? 28 : 16;
            sets[i * 2 + (uint32_t)fam] = b;
        }
    }
    an->plugin = pi;
    an->sets = sets;
    answer_setcache_t *k = arena_calloc(a, 1, sizeof(*k));
    *k = (answer_setcache_t){pi, n->zone, sets, db->setcache};
    db->setcache = k;
    db->bytes += c->total_bytes;
    free(c);
    return 0;
}

/* ==== the query path ==== */

/* Error and header-only responses: the question (when usable) and an OPT
 * (when the query had a good one). */
static size_t respond_plain(const answer_env_t *env, const uint8_t *pkt, answer_txn_t *t,
                            unsigned rcode, bool aa, uint8_t *out, size_t outsize)
{
    const wire_query_t *q = &t->q;
    size_t qlen = q->has_question ? (size_t)q->question_end - WIRE_HEADER_LEN : 0;
    size_t opt = q->edns ? wire_opt_len(q, env->ecs) : 0;
    if (WIRE_HEADER_LEN + qlen + opt > outsize)
        return 0;
    wire_write_header(out, q, aa, false, rcode & 0xFu, q->has_question ? 1 : 0, 0, 0,
                      q->edns ? 1 : 0);
    memcpy(out + WIRE_HEADER_LEN, pkt + WIRE_HEADER_LEN, qlen);
    size_t len = WIRE_HEADER_LEN + qlen;
    if (q->edns)
        len += wire_write_opt(out + len, q, env->max_udp_payload, (uint8_t)(rcode >> 4), env->ecs, 0);
    t->rcode = (uint8_t)rcode;
    t->rrl_kind = RRL_ERROR;
    t->rrl_name = NULL;
    t->rrl_name_len = 0;
    return len;
}

static const answer_blob_t *pick_type(const answer_node_t *an, uint16_t qtype)
{
    if (qtype == ZONES_TYPE_ANY)
        return an->any;
    unsigned lo = 0, hi = an->ntypes;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (an->types[mid] < qtype)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < an->ntypes && an->types[lo] == qtype)
        return an->blobs[lo];
    return an->other;
}

static size_t emit_blob(const answer_env_t *env, const uint8_t *pkt, answer_txn_t *t,
                        const answer_blob_t *b, uint8_t scope, uint32_t ttl, bool tcp,
                        uint8_t *out, size_t outsize)
{
    const wire_query_t *q = &t->q;
    size_t qend = q->question_end;
    size_t opt = q->edns ? wire_opt_len(q, env->ecs) : 0;
    size_t limit;
    if (tcp)
        limit = 65535;
    else if (q->edns)
        /* RFC 6891 section 6.2.5: the smaller of the client's size and
         * ours. */
        limit = q->edns_udp < env->max_udp_payload ? q->edns_udp : env->max_udp_payload;
    else
        limit = 512;
    if (limit > outsize)
        limit = outsize;
    size_t keep = b->len;
    uint16_t an = b->an, ns = b->ns, ar = b->ar;
    bool tc = false;
    if (qend + keep + opt > limit) {
        /* Roll back to the last whole RRset that fits; TC unless only
         * optional additional records were left out (RFC 2181 section 9). */
        unsigned k = b->ncuts;
        while (k > 0 && qend + b->cuts[k - 1].len + opt > limit)
            k--;
        if (k == 0)
            return respond_plain(env, pkt, t, WIRE_RCODE_SERVFAIL, false, out, outsize);
        const answer_cut_t *cut = &b->cuts[k - 1];
        keep = cut->len;
        an = cut->an;
        ns = cut->ns;
        ar = cut->ar;
        tc = !cut->optional_rest;
    }
    wire_write_header(out, q, b->aa, tc, b->rcode, 1, an, ns, (uint16_t)(ar + (q->edns ? 1 : 0)));
    memcpy(out + WIRE_HEADER_LEN, pkt + WIRE_HEADER_LEN, qend - WIRE_HEADER_LEN);
    uint8_t *body = out + qend;
    memcpy(body, b->data, keep);
    unsigned delta = (unsigned)q->qname_len - b->base_qlen;
    if (delta) {
        for (uint16_t i = 0; i < b->nrelocs; i++) {
            uint16_t at = b->relocs[i];
            if (at + 2u > keep)
                continue;
            uint16_t ptr = (uint16_t)(wire_get16(body + at) + delta);
            wire_put16(body + at, ptr);
        }
    }
    if (ttl != UINT32_MAX && b->ttl_stride) {
        /* A plugin lowered the TTL of this answer: patch each answer RR
         * (they are contiguous and all the same size). */
        for (uint16_t i = 0; i < an; i++)
            wire_put32(body + (size_t)i * b->ttl_stride + 6, ttl);
    }
    size_t len = qend + keep;
    if (q->edns)
        len += wire_write_opt(out + len, q, env->max_udp_payload, 0, env->ecs, scope);
    t->rcode = b->rcode;
    t->tc = tc;
    if (b->rcode == WIRE_RCODE_NXDOMAIN)
        t->rrl_kind = RRL_NXDOMAIN;
    else if (!b->aa)
        t->rrl_kind = RRL_REFERRAL;
    else
        t->rrl_kind = b->an ? RRL_ANSWER : RRL_NODATA;
    return len;
}

/* A name answered by a plugin: who is asking (the ECS subnet, RFC 7871
 * section 7.1.2, else the source address), the plugin's choice, and that
 * set's precompiled answer with the plugin's TTL and the ECS scope. */
static size_t respond_plugin(const answer_env_t *env, const uint8_t *pkt, answer_txn_t *t,
                             const answer_node_t *an, const zones_match_t *m,
                             const answer_client_t *client, uint8_t *out, size_t outsize)
{
    const wire_query_t *q = &t->q;
    plugin_query_t pq;
    pq.qtype = q->qtype == ZONES_TYPE_AAAA ? ZONES_TYPE_AAAA : ZONES_TYPE_A;
    pq.zone = m->zone;
    pq.node = m->node;
    pq.rng = &t->rng;
    pq.turn = &t->turn;
    pq.now_ms = 0;
    /* A cap of 0 uses no bit of the ECS address: classify like a query
     * with SOURCE PREFIX-LENGTH 0, by the resolver's address, scope 0
     * (RFC 7871 section 7.1.2). */
    unsigned cap = q->ecs_family == 1 ? env->ecs_max_v4 : env->ecs_max_v6;
    bool use_ecs = q->ecs && env->ecs && q->ecs_source > 0 && cap > 0;
    pq.zone_carrier = env->zone_carrier ? env->zone_carrier[m->zone->index] : GEO_NONE;
    if (use_ecs) {
        pq.client.family = q->ecs_family == 1 ? 4 : 6;
        pq.client.bits = (uint8_t)(q->ecs_source < cap ? q->ecs_source : cap);
        memcpy(pq.client.addr, q->ecs_addr, 16);
        netaddr_mask(pq.client.addr, pq.client.family, pq.client.bits);
        pq.ecs = true;
    } else {
        pq.client = client->addr;
        pq.ecs = false;
    }
    plugin_result_t *r = &t->pr;
    r->set = 0;
    r->ttl = UINT32_MAX;
    r->scope = 0;
    if (t->trace)
        an->plugin->desc->explain(an->plugin->inst, &pq, r, t->trace);
    else
        an->plugin->desc->resolve(an->plugin->inst, &pq, r);
    t->plugin = true;
    if (r->set >= an->plugin->decl.nsets)
        r->set = 0;
    /* The scope: what the decision depended on (RFC 7871 section 7.2.1).
     * We never look at more than cap bits of any client's address, so the
     * answer holds for every address sharing those bits: the scope is at
     * most the cap, whatever the client sent.  (A database network longer
     * than the cap does not narrow it: a longer source would be cut to the
     * same cap bits and get the same answer.) */
    uint8_t scope = 0;
    if (use_ecs) {
        scope = r->scope;
        if (scope > cap)
            scope = (uint8_t)cap;
    }
    uint32_t ttl = r->ttl < an->plugin->decl.ttl ? r->ttl : UINT32_MAX;
    const answer_blob_t *b = an->sets[r->set * 2u + (pq.qtype == ZONES_TYPE_AAAA)];
    return emit_blob(env, pkt, t, b, scope, ttl, client->tcp, out, outsize);
}

size_t answer_respond(const answer_env_t *env, const uint8_t *pkt, size_t len,
                      const answer_client_t *client, answer_txn_t *t, uint8_t *out,
                      size_t outsize)
{
    t->tc = false;
    t->dropped = false;
    t->rcode = 0;
    t->plugin = false;
    wire_verdict_t v = wire_parse_query(pkt, len, env->ecs, &t->q);
    const wire_query_t *q = &t->q;
    switch (v) {
    case WIRE_DROP:
        t->dropped = true;
        return 0;
    case WIRE_FORMERR:
        return respond_plain(env, pkt, t, WIRE_RCODE_FORMERR, false, out, outsize);
    case WIRE_NOTIMP:
        return respond_plain(env, pkt, t, WIRE_RCODE_NOTIMP, false, out, outsize);
    case WIRE_BADVERS:
        return respond_plain(env, pkt, t, WIRE_RCODE_BADVERS, false, out, outsize);
    case WIRE_OK:
        break;
    }
    if (q->qclass != WIRE_CLASS_IN)
        return respond_plain(env, pkt, t, WIRE_RCODE_REFUSED, false, out, outsize);
    switch (q->qtype) {
    case 0:
    case ZONES_TYPE_OPT:
    case 249: /* TKEY */
    case 250: /* TSIG */
        return respond_plain(env, pkt, t, WIRE_RCODE_FORMERR, false, out, outsize);
    case ZONES_TYPE_AXFR:
    case ZONES_TYPE_IXFR:
        /* No zone transfers are offered. */
        return respond_plain(env, pkt, t, WIRE_RCODE_REFUSED, false, out, outsize);
    case 253: /* MAILB */
    case 254: /* MAILA */
        return respond_plain(env, pkt, t, WIRE_RCODE_NOTIMP, false, out, outsize);
    default:
        break;
    }
    zones_qname_prepare(&t->qn, pkt + WIRE_HEADER_LEN, q->qname_len);
    zones_match_t m;
    zones_lookup(env->zones, &t->qn, q->qtype == ZONES_TYPE_DS, &m);
    const answer_blob_t *b;
    /* The name a response counts against for rate limiting: the zone for
     * NXDOMAIN (a random-name flood is one bucket), the cut for referrals,
     * the node (for a wildcard, the wildcard) otherwise. */
    if (m.node) {
        t->rrl_name = m.result == ZONES_NXDOMAIN ? m.zone->apex : m.node->name;
        t->rrl_name_len = m.result == ZONES_NXDOMAIN ? m.zone->apex_len : m.node->name_len;
    }
    switch (m.result) {
    case ZONES_NOTAUTH:
        /* Never recursive: names outside our zones are refused. */
        return respond_plain(env, pkt, t, WIRE_RCODE_REFUSED, false, out, outsize);
    case ZONES_DELEGATION:
        b = env->answers->nodes[m.node->id].referral;
        break;
    case ZONES_NXDOMAIN:
        b = env->answers->nxdomain[m.zone->index];
        break;
    case ZONES_EXACT:
    case ZONES_WILDCARD:
    default:
        b = pick_type(&env->answers->nodes[m.node->id], q->qtype);
        break;
    }
    if (b->rcode == WIRE_RCODE_NXDOMAIN && m.zone) {
        /* A CNAME chain ending in NXDOMAIN counts against the zone. */
        t->rrl_name = m.zone->apex;
        t->rrl_name_len = m.zone->apex_len;
    }
    if (m.result == ZONES_EXACT || m.result == ZONES_WILDCARD) {
        const answer_node_t *an = &env->answers->nodes[m.node->id];
        if (an->plugin && (q->qtype == ZONES_TYPE_A || q->qtype == ZONES_TYPE_AAAA ||
                           q->qtype == ZONES_TYPE_ANY))
            return respond_plugin(env, pkt, t, an, &m, client, out, outsize);
    }
    return emit_blob(env, pkt, t, b, 0, UINT32_MAX, client->tcp, out, outsize);
}
