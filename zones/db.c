/*
 * db.c - zone builders -> the immutable zone database, and the lookup that
 * the query path uses.
 *
 * Each zone's names become nodes (empty non-terminals included, RFC 4592
 * section 2.2.2), each node's records become RRsets sorted by type, and
 * every node goes into the zone's open-addressing hash table keyed by a hash
 * of its name computed label by label from the right.  Because of that hash
 * order, a query name yields the hash of every one of its suffixes in one
 * pass, and finding the zone, a zone cut, the closest encloser or a
 * wildcard costs one probe per label.
 */
#include "zones/zones_int.h"

#include "core/grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t zones__name_hash(const uint8_t *name)
{
    const uint8_t *labels[DNAME_MAXLABELS];
    unsigned n = 0;
    for (const uint8_t *p = name; *p; p += *p + 1)
        labels[n++] = p;
    uint64_t h = ZONES__HASH_ROOT;
    while (n > 0)
        h = zones__hash_step(h, labels[--n]);
    return h;
}

static uint32_t table_size(size_t n)
{
    uint32_t cap = 8;
    while (cap < n * 2)
        cap <<= 1;
    return cap;
}

static void table_put(zones__slot_t *t, uint32_t mask, uint64_t key, const void *item)
{
    uint32_t i = (uint32_t)key & mask;
    while (t[i].hash != 0)
        i = (i + 1) & mask;
    t[i].hash = key;
    t[i].item = item;
}

/* ---- building ---- */

typedef struct nb { /* node builder */
    uint8_t *name;
    uint8_t len;
    uint8_t flags;
    size_t first_rec, nrecs; /* range in the sorted record array */
    const yconf_node_t *resolver;
    diag_pos_t pos; /* first record's or reference's position */
    struct nb *next_in_bucket;
} nb_t;

typedef struct nbmap {
    nb_t **buckets;
    size_t mask;
    nb_t **all;
    size_t n, cap;
} nbmap_t;

static nb_t *nbmap_get(nbmap_t *m, const uint8_t *name, size_t len)
{
    uint64_t h = zones__hash_key(zones__name_hash(name));
    for (nb_t *b = m->buckets[h & m->mask]; b; b = b->next_in_bucket)
        if (b->len == len && memcmp(b->name, name, len) == 0)
            return b;
    return NULL;
}

static nb_t *nbmap_add(nbmap_t *m, arena_t *scratch, const uint8_t *name, size_t len)
{
    nb_t *b = arena_calloc(scratch, 1, sizeof(*b));
    b->name = arena_memdup(scratch, name, len);
    b->len = (uint8_t)len;
    uint64_t h = zones__hash_key(zones__name_hash(name));
    b->next_in_bucket = m->buckets[h & m->mask];
    m->buckets[h & m->mask] = b;
    m->all = grow_array(m->all, m->n, &m->cap, sizeof(*m->all), 64);
    m->all[m->n++] = b;
    return b;
}

/* Ensure a node for name and each of its ancestors down to the apex. */
static nb_t *ensure_node(nbmap_t *m, arena_t *scratch, const uint8_t *name, size_t len,
                         const uint8_t *apex)
{
    nb_t *b = nbmap_get(m, name, len);
    if (b)
        return b;
    b = nbmap_add(m, scratch, name, len);
    if (!dname_equal(name, apex) && *name) {
        const uint8_t *parent = name + name[0] + 1;
        ensure_node(m, scratch, parent, len - (size_t)name[0] - 1, apex);
    }
    return b;
}

static int rec_cmp(const void *pa, const void *pb)
{
    const zones__rec_t *a = pa, *b = pb;
    int c = dname_compare(a->owner, b->owner);
    if (c)
        return c;
    if (a->type != b->type)
        return (int)a->type - (int)b->type;
    if (a->rdlen != b->rdlen)
        return (int)a->rdlen - (int)b->rdlen;
    c = memcmp(a->crdata, b->crdata, a->rdlen);
    if (c)
        return c;
    /* Keep file order among equal records (for the first position). */
    if (a->pos.line != b->pos.line)
        return a->pos.line < b->pos.line ? -1 : 1;
    return 0;
}

static int nb_cmp(const void *pa, const void *pb)
{
    const nb_t *a = *(const nb_t *const *)pa, *b = *(const nb_t *const *)pb;
    return dname_compare(a->name, b->name);
}

static void name_str(const uint8_t *name, char *buf)
{
    dname_to_str(name, buf, DNAME_STRLEN);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

typedef struct built {
    zones_zone_t *zone;
    zones_node_t *nodes;
    size_t nnodes;
} built_t;

/* The order of records in an RRset follows the file, not the sort; this
 * comparator restores it inside one (owner, type) run. */
static int rec_pos_cmp(const void *pa, const void *pb)
{
    const zones__rec_t *a = pa, *b = pb;
    if (a->pos.line != b->pos.line)
        return a->pos.line < b->pos.line ? -1 : 1;
    if (a->pos.col != b->pos.col)
        return a->pos.col < b->pos.col ? -1 : 1;
    return 0;
}

static bool build_zone(zones__zb_t *zb, arena_t *a, arena_t *scratch, diag_list_t *d,
                       uint32_t *next_id, built_t *out)
{
    size_t before = diag_errors(d);
    char zname[DNAME_STRLEN], oname[DNAME_STRLEN];
    name_str(zb->origin, zname);

    /* 1. Sort and drop duplicate records (RFC 2181 section 5). */
    qsort(zb->recs, zb->nrecs, sizeof(*zb->recs), rec_cmp);
    size_t w = 0;
    for (size_t i = 0; i < zb->nrecs; i++) {
        zones__rec_t *r = &zb->recs[i];
        if (w > 0) {
            zones__rec_t *p = &zb->recs[w - 1];
            if (p->type == r->type && p->rdlen == r->rdlen && dname_equal(p->owner, r->owner) &&
                memcmp(p->crdata, r->crdata, r->rdlen) == 0) {
                if (r->ttl < p->ttl)
                    p->ttl = r->ttl;
                continue;
            }
        }
        zb->recs[w++] = *r;
    }
    zb->nrecs = w;

    /* 2. Nodes for every owner, every resolver reference and every
     * ancestor up to the apex. */
    nbmap_t m = {0};
    size_t nb_guess = zb->nrecs + zb->nrefs + 16;
    size_t nbuckets = 16;
    while (nbuckets < nb_guess * 2)
        nbuckets <<= 1;
    m.buckets = arena_calloc(scratch, nbuckets, sizeof(*m.buckets));
    m.mask = nbuckets - 1;
    nb_t *apex = ensure_node(&m, scratch, zb->origin, zb->origin_len, zb->origin);
    apex->pos = zb->pos;
    for (size_t i = 0; i < zb->nrecs;) {
        size_t j = i;
        while (j < zb->nrecs && dname_equal(zb->recs[j].owner, zb->recs[i].owner))
            j++;
        nb_t *b = ensure_node(&m, scratch, zb->recs[i].owner, zb->recs[i].owner_len, zb->origin);
        b->first_rec = i;
        b->nrecs = j - i;
        b->pos = zb->recs[i].pos;
        i = j;
    }
    for (size_t i = 0; i < zb->nrefs; i++) {
        nb_t *b = ensure_node(&m, scratch, zb->refs[i].owner, zb->refs[i].owner_len, zb->origin);
        if (b->resolver) {
            name_str(b->name, oname);
            diag_error(d, &zb->refs[i].node->pos, "'%s' has more than one resolver", oname);
            continue;
        }
        b->resolver = zb->refs[i].node;
        if (b->nrecs == 0)
            b->pos = zb->refs[i].node->pos;
    }
    qsort(m.all, m.n, sizeof(*m.all), nb_cmp);

    /* 3. Flags and validation, parents first (canonical order). */
    for (size_t i = 0; i < m.n; i++) {
        nb_t *b = m.all[i];
        bool is_apex = b == apex;
        if (is_apex)
            b->flags |= ZONES_NODE_APEX;
        if (b->name[0] == 1 && b->name[1] == '*')
            b->flags |= ZONES_NODE_WILDCARD;
        if (!is_apex) {
            nb_t *parent = nbmap_get(&m, b->name + b->name[0] + 1, b->len - (size_t)b->name[0] - 1);
            if (parent && (parent->flags & (ZONES_NODE_DELEGATION | ZONES_NODE_OCCLUDED)))
                b->flags |= ZONES_NODE_OCCLUDED;
        }
        zones__rec_t *recs = &zb->recs[b->first_rec];
        bool has_cname = false, has_other = false, has_ns = false, has_soa = false;
        size_t ncname = 0, nsoa = 0;
        for (size_t k = 0; k < b->nrecs; k++) {
            uint16_t t = recs[k].type;
            if (t == ZONES_TYPE_CNAME) {
                has_cname = true;
                ncname++;
            } else if (t != 46 /* RRSIG */ && t != 47 /* NSEC */) {
                has_other = true;
            }
            if (t == ZONES_TYPE_NS)
                has_ns = true;
            if (t == ZONES_TYPE_SOA) {
                has_soa = true;
                nsoa++;
                if (!is_apex)
                    diag_error(d, &recs[k].pos, "SOA is only allowed at the zone apex '%s'", zname);
                else if (nsoa == 2)
                    diag_error(d, &recs[k].pos, "more than one SOA record at '%s'", zname);
            }
        }
        name_str(b->name, oname);
        /* CNAME problems are reported at the (first) CNAME record. */
        const diag_pos_t *cpos = &b->pos;
        for (size_t k = 0; k < b->nrecs; k++)
            if (recs[k].type == ZONES_TYPE_CNAME) {
                cpos = &recs[k].pos;
                break;
            }
        if (has_cname && is_apex)
            diag_error(d, cpos, "CNAME at the zone apex '%s' is not allowed (RFC 1912 section 2.4)", zname);
        else if (has_cname && has_other)
            diag_error(d, cpos, "'%s' has a CNAME and other data (RFC 1034 section 3.6.2)", oname);
        else if (ncname > 1)
            diag_error(d, cpos, "'%s' has more than one CNAME record", oname);
        if (has_ns && !is_apex && !(b->flags & ZONES_NODE_OCCLUDED)) {
            if (b->flags & ZONES_NODE_WILDCARD)
                diag_error(d, &b->pos, "NS records at the wildcard '%s' are not allowed (RFC 4592 section 4.2)",
                           oname);
            else
                b->flags |= ZONES_NODE_DELEGATION;
        }
        if (b->resolver) {
            if (b->flags & (ZONES_NODE_DELEGATION | ZONES_NODE_OCCLUDED))
                yconf_error(d, b->resolver, "'%s' is at or below a zone cut: a resolver cannot answer there", oname);
            for (size_t k = 0; k < b->nrecs; k++) {
                uint16_t t = recs[k].type;
                if (t == ZONES_TYPE_A || t == ZONES_TYPE_AAAA || t == ZONES_TYPE_CNAME) {
                    diag_error(d, &recs[k].pos, "'%s' is answered by a resolver; it cannot also have %s records",
                               oname, t == ZONES_TYPE_A ? "A" : t == ZONES_TYPE_AAAA ? "AAAA" : "CNAME");
                    break;
                }
            }
        }
        if (b->flags & ZONES_NODE_OCCLUDED) {
            for (size_t k = 0; k < b->nrecs; k++) {
                uint16_t t = recs[k].type;
                if (t != ZONES_TYPE_A && t != ZONES_TYPE_AAAA) {
                    diag_warn(d, &recs[k].pos, "'%s' is below a zone cut: only A/AAAA glue is kept, this record is ignored",
                              oname);
                    break;
                }
            }
        }
        if (is_apex && !has_soa)
            diag_error(d, &zb->pos, "zone '%s' has no SOA record", zname);
        if (is_apex && !has_ns)
            diag_error(d, &zb->pos, "zone '%s' has no NS records at its apex", zname);
        if (b->nrecs == 0 && !b->resolver && !is_apex)
            b->flags |= ZONES_NODE_ENT;
    }
    if (diag_errors(d) > before) {
        free(m.all);
        return false;
    }

    /* 4. Final arrays in the snapshot's arena. */
    zones_zone_t *z = arena_calloc(a, 1, sizeof(*z));
    z->apex = arena_memdup(a, zb->origin, zb->origin_len);
    z->apex_len = zb->origin_len;
    z->apex_labels = (uint8_t)dname_labels(zb->origin);
    z->source = zb->source ? arena_strdup(a, zb->source) : NULL;
    z->carrier = zb->carrier ? arena_strdup(a, zb->carrier) : NULL;
    z->carrier_node = zb->carrier_node;
    z->nnodes = m.n;
    zones_node_t *nodes = arena_calloc(a, m.n, sizeof(*nodes));
    uint32_t cap = table_size(m.n);
    zones__slot_t *table = arena_calloc(a, cap, sizeof(*table));
    for (size_t i = 0; i < m.n; i++) {
        nb_t *b = m.all[i];
        zones_node_t *n = &nodes[i];
        n->name = arena_memdup(a, b->name, b->len);
        n->name_len = b->len;
        n->labels = (uint8_t)dname_labels(b->name);
        n->flags = b->flags;
        n->id = (*next_id)++;
        n->zone = z;
        n->resolver = b->resolver;
        /* RRsets: group the node's records by type. */
        zones__rec_t *recs = &zb->recs[b->first_rec];
        size_t nsets = 0;
        for (size_t k = 0; k < b->nrecs; k++)
            if (k == 0 || recs[k].type != recs[k - 1].type)
                nsets++;
        if (b->flags & ZONES_NODE_OCCLUDED) {
            nsets = 0;
            for (size_t k = 0; k < b->nrecs; k++)
                if ((k == 0 || recs[k].type != recs[k - 1].type) &&
                    (recs[k].type == ZONES_TYPE_A || recs[k].type == ZONES_TYPE_AAAA))
                    nsets++;
        }
        zones_rrset_t *sets = nsets ? arena_calloc(a, nsets, sizeof(*sets)) : NULL;
        size_t si = 0;
        for (size_t k = 0; k < b->nrecs;) {
            size_t e = k;
            while (e < b->nrecs && recs[e].type == recs[k].type)
                e++;
            uint16_t t = recs[k].type;
            if ((b->flags & ZONES_NODE_OCCLUDED) && t != ZONES_TYPE_A && t != ZONES_TYPE_AAAA) {
                k = e;
                continue;
            }
            qsort(&recs[k], e - k, sizeof(*recs), rec_pos_cmp);
            zones_rrset_t *s = &sets[si++];
            s->type = t;
            s->count = (uint16_t)(e - k);
            uint32_t ttl = recs[k].ttl, len = 0;
            bool ttl_differs = false;
            for (size_t r = k; r < e; r++) {
                if (recs[r].ttl != recs[k].ttl)
                    ttl_differs = true;
                if (recs[r].ttl < ttl)
                    ttl = recs[r].ttl;
                len += 2u + recs[r].rdlen;
            }
            if (ttl_differs) {
                char tname[DNAME_STRLEN];
                name_str(b->name, tname);
                diag_warn(d, &recs[k].pos, "records of one RRset at '%s' have different TTLs; using the smallest, %u (RFC 2181 section 5.2)",
                          tname, ttl);
            }
            s->ttl = ttl;
            uint8_t *rd = arena_alloc(a, len ? len : 1);
            uint32_t o = 0;
            for (size_t r = k; r < e; r++) {
                rd[o++] = (uint8_t)(recs[r].rdlen >> 8);
                rd[o++] = (uint8_t)recs[r].rdlen;
                memcpy(rd + o, recs[r].rdata, recs[r].rdlen);
                o += recs[r].rdlen;
            }
            s->rdata = rd;
            s->rdata_len = len;
            if (t == ZONES_TYPE_SOA && (b->flags & ZONES_NODE_APEX)) {
                z->soa = s;
                uint32_t minimum = len >= 2 + 4 ? be32(rd + len - 4) : 0;
                z->negative_ttl = ttl < minimum ? ttl : minimum;
            }
            k = e;
        }
        n->rrsets = sets;
        n->nrrsets = (uint16_t)si;
        table_put(table, cap - 1, zones__hash_key(zones__name_hash(n->name)), n);
    }
    /* Parents and wildcards: nodes are in canonical order, so a parent is
     * already in the table when its child is linked. */
    z->table = table;
    z->table_mask = cap - 1;
    for (size_t i = 0; i < m.n; i++) {
        zones_node_t *n = &nodes[i];
        if (n->flags & ZONES_NODE_APEX) {
            z->apex_node = n;
            continue;
        }
        zones_node_t *p = (zones_node_t *)zones_find_node(z, n->name + n->name[0] + 1);
        n->parent = p;
        if (p && (n->flags & ZONES_NODE_WILDCARD))
            p->wildcard = n;
    }
    /* Glue: a warning for in-bailiwick name servers of a cut without
     * addresses, as Knot DNS gives. */
    for (size_t i = 0; i < m.n; i++) {
        const zones_node_t *n = &nodes[i];
        if (!(n->flags & ZONES_NODE_DELEGATION))
            continue;
        const zones_rrset_t *ns = zones_node_rrset(n, ZONES_TYPE_NS);
        const uint8_t *p = ns->rdata;
        for (uint16_t r = 0; r < ns->count; r++) {
            uint16_t rdlen = (uint16_t)((p[0] << 8) | p[1]);
            uint8_t target[DNAME_MAXLEN];
            size_t tl = dname_len(p + 2);
            dname_lower_copy(target, p + 2, tl);
            if (dname_is_subdomain(target, n->name)) {
                const zones_node_t *g = zones_find_node(z, target);
                if (g == NULL || (!zones_node_rrset(g, ZONES_TYPE_A) && !zones_node_rrset(g, ZONES_TYPE_AAAA))) {
                    char tn[DNAME_STRLEN];
                    name_str(target, tn);
                    name_str(n->name, oname);
                    diag_warn(d, &m.all[i]->pos, "delegation '%s': name server '%s' is below the cut but has no glue address",
                              oname, tn);
                }
            }
            p += 2 + rdlen;
        }
    }
    free(m.all);
    out->zone = z;
    out->nodes = nodes;
    out->nnodes = m.n;
    return true;
}

typedef struct zones_full {
    struct zones db;
    built_t *built;
} zones_full_t;

int zones__build_db(zones__zb_t *zbs, size_t n, arena_t *a, arena_t *scratch, diag_list_t *d,
                    zones_t **out)
{
    size_t before = diag_errors(d);
    zones_full_t *full = arena_calloc(a, 1, sizeof(*full));
    zones_t *db = &full->db;
    full->built = arena_calloc(a, n ? n : 1, sizeof(built_t));
    db->zones = arena_calloc(a, n ? n : 1, sizeof(*db->zones));
    uint32_t cap = table_size(n);
    db->apex_table = arena_calloc(a, cap, sizeof(*db->apex_table));
    db->apex_mask = cap - 1;
    uint32_t next_id = 0;
    for (size_t i = 0; i < n; i++) {
        zones__zb_t *zb = &zbs[i];
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            if (dname_equal(zbs[j].origin, zb->origin)) {
                char zname[DNAME_STRLEN];
                name_str(zb->origin, zname);
                diag_error(d, &zb->pos, "zone '%s' is defined twice (first at %s:%u)", zname,
                           zbs[j].pos.file ? zbs[j].pos.file : "?", zbs[j].pos.line);
                dup = true;
            }
        }
        if (dup)
            continue;
        built_t b;
        if (!build_zone(zb, a, scratch, d, &next_id, &b))
            continue;
        b.zone->index = (uint32_t)db->nzones;
        full->built[db->nzones] = b;
        db->zones[db->nzones++] = b.zone;
        table_put(db->apex_table, db->apex_mask, zones__hash_key(zones__name_hash(b.zone->apex)),
                  b.zone);
    }
    db->nnodes = next_id;
    if (diag_errors(d) > before)
        return -EINVAL;
    /* Each zone's closest served parent, for DS at its apex. */
    for (size_t i = 0; i < db->nzones; i++) {
        zones_zone_t *z = db->zones[i];
        if (z->apex_labels > 0)
            z->parent = zones_find_zone(db, z->apex + z->apex[0] + 1);
    }
    /* The exact-match table: a node goes in when zones_lookup would return
     * it as ZONES_EXACT, which needs its zone to be the deepest one that
     * holds the name and the node to be above every cut of that zone. */
    uint32_t ecap = table_size(db->nnodes);
    db->exact_table = arena_calloc(a, ecap, sizeof(zones__slot_t));
    db->exact_mask = ecap - 1;
    for (size_t i = 0; i < db->nzones; i++) {
        const built_t *b = &full->built[i];
        for (size_t k = 0; k < b->nnodes; k++) {
            const zones_node_t *node = &b->nodes[k];
            if (node->flags & (ZONES_NODE_OCCLUDED | ZONES_NODE_DELEGATION))
                continue;
            if (zones_find_zone(db, node->name) != node->zone)
                continue;
            table_put(db->exact_table, db->exact_mask, zones__hash_key(zones__name_hash(node->name)),
                      node);
        }
    }
    *out = db;
    return 0;
}

int zones_build(const zones_config_in_t *in, arena_t *a, diag_list_t *d, zones_t **out)
{
    arena_t *scratch = arena_new();
    zones__zb_t *zbs = NULL;
    size_t n = 0;
    int rc = zones__load(in, a, scratch, d, &zbs, &n);
    zones_t *db = NULL;
    int rc2 = zones__build_db(zbs, n, a, scratch, d, &db);
    for (size_t i = 0; i < n; i++) {
        free(zbs[i].recs);
        free(zbs[i].refs);
    }
    free(zbs);
    arena_free(scratch);
    if (rc != 0 || rc2 != 0)
        return -EINVAL;
    *out = db;
    return 0;
}

size_t zones_count(const zones_t *db)
{
    return db->nzones;
}

const zones_zone_t *zones_get(const zones_t *db, size_t i)
{
    return i < db->nzones ? db->zones[i] : NULL;
}

size_t zones_node_count(const zones_t *db)
{
    return db->nnodes;
}

void zones_foreach_node(const zones_t *db, void (*fn)(void *ctx, const zones_node_t *n), void *ctx)
{
    const zones_full_t *full = (const zones_full_t *)db;
    for (size_t i = 0; i < db->nzones; i++)
        for (size_t k = 0; k < full->built[i].nnodes; k++)
            fn(ctx, &full->built[i].nodes[k]);
}

const zones_rrset_t *zones_node_rrset(const zones_node_t *n, uint16_t type)
{
    for (uint16_t i = 0; i < n->nrrsets; i++)
        if (n->rrsets[i].type == type)
            return &n->rrsets[i];
    return NULL;
}

/* ---- lookup ---- */

static inline const zones_node_t *probe(const zones_zone_t *z, uint64_t key, const uint8_t *name,
                                        size_t len)
{
    const zones__slot_t *t = z->table;
    uint32_t i = (uint32_t)key & z->table_mask;
    while (t[i].hash != 0) {
        if (t[i].hash == key) {
            const zones_node_t *n = t[i].item;
            if (n->name_len == len && memcmp(n->name, name, len) == 0)
                return n;
        }
        i = (i + 1) & z->table_mask;
    }
    return NULL;
}

const zones_node_t *zones_find_node(const zones_zone_t *z, const uint8_t *name)
{
    return probe(z, zones__hash_key(zones__name_hash(name)), name, dname_len(name));
}

static inline const zones_zone_t *probe_zone(const zones_t *db, uint64_t key, const uint8_t *name,
                                             size_t len)
{
    const zones__slot_t *t = db->apex_table;
    uint32_t i = (uint32_t)key & db->apex_mask;
    while (t[i].hash != 0) {
        if (t[i].hash == key) {
            const zones_zone_t *z = t[i].item;
            if (z->apex_len == len && memcmp(z->apex, name, len) == 0)
                return z;
        }
        i = (i + 1) & db->apex_mask;
    }
    return NULL;
}

const zones_zone_t *zones_find_zone(const zones_t *db, const uint8_t *name)
{
    zones_qname_t q;
    zones_qname_prepare(&q, name, dname_len(name));
    for (unsigned i = 0; i <= q.labels; i++) {
        const zones_zone_t *z = probe_zone(db, zones__hash_key(q.suffix_hash[i]),
                                           q.name + (i < q.labels ? q.label_off[i] : q.len - 1),
                                           i < q.labels ? (size_t)(q.len - q.label_off[i]) : 1);
        if (z)
            return z;
    }
    return NULL;
}

void zones_qname_prepare(zones_qname_t *q, const uint8_t *wire, size_t len)
{
    /* A branch-free copy the compiler vectorises, then the label walk. */
    dname_lower_copy(q->name, wire, len);
    q->len = (uint8_t)len;
    unsigned n = 0;
    for (size_t p = 0; q->name[p]; p += q->name[p] + 1)
        q->label_off[n++] = (uint8_t)p;
    q->labels = (uint8_t)n;
    uint64_t h = ZONES__HASH_ROOT;
    q->suffix_hash[n] = h;
    for (unsigned i = n; i > 0; i--) {
        h = zones__hash_step(h, q->name + q->label_off[i - 1]);
        q->suffix_hash[i - 1] = h;
    }
}

void zones_lookup(const zones_t *db, const zones_qname_t *q, bool ds_at_cut, zones_match_t *m)
{
    m->result = ZONES_NOTAUTH;
    m->zone = NULL;
    m->node = NULL;
    /* Most queries ask for a name that exists: one probe finds it. */
    {
        uint64_t key = zones__hash_key(q->suffix_hash[0]);
        const zones__slot_t *t = db->exact_table;
        uint32_t i = (uint32_t)key & db->exact_mask;
        while (t[i].hash != 0) {
            if (t[i].hash == key) {
                const zones_node_t *n = t[i].item;
                if (n->name_len == q->len && memcmp(n->name, q->name, q->len) == 0) {
                    /* DS at the apex of a zone whose parent we serve too:
                     * the walk below asks the parent. */
                    if (ds_at_cut && (n->flags & ZONES_NODE_APEX) && n->zone->parent)
                        break;
                    m->result = ZONES_EXACT;
                    m->zone = n->zone;
                    m->node = n;
                    return;
                }
            }
            i = (i + 1) & db->exact_mask;
        }
    }
    /* The zone: the longest suffix that is an apex (i = labels skipped). */
    const zones_zone_t *z = NULL;
    unsigned zi = 0;
    for (unsigned i = 0; i <= q->labels; i++) {
        unsigned off = i < q->labels ? q->label_off[i] : (unsigned)q->len - 1u;
        z = probe_zone(db, zones__hash_key(q->suffix_hash[i]), q->name + off, q->len - off);
        if (z) {
            zi = i;
            break;
        }
    }
    if (z == NULL)
        return;
    if (zi == 0 && ds_at_cut && z->parent) {
        /* The DS RRset of a zone lives in its parent (RFC 4035 section
         * 3.1.4.1): when we serve both, the parent answers, with its DS or
         * its NODATA.  The name is the child's apex, so the parent's apex
         * is zi labels below it. */
        z = z->parent;
        zi = (unsigned)(q->labels - z->apex_labels);
    }
    m->zone = z;
    const zones_node_t *cur = z->apex_node;
    /* Walk down from the apex one label at a time (RFC 1034 section
     * 4.3.2 step 3): stop at a zone cut, or where the name ends. */
    for (unsigned i = zi; i > 0; i--) {
        unsigned off = q->label_off[i - 1];
        const zones_node_t *n =
            probe(z, zones__hash_key(q->suffix_hash[i - 1]), q->name + off, q->len - off);
        if (n == NULL) {
            /* cur is the closest encloser: synthesise from its wildcard
             * if it has one (RFC 4592 section 3.3.1). */
            if (cur->wildcard) {
                m->result = ZONES_WILDCARD;
                m->node = cur->wildcard;
            } else {
                m->result = ZONES_NXDOMAIN;
                m->node = cur;
            }
            return;
        }
        if (n->flags & ZONES_NODE_DELEGATION) {
            /* DS lives on the parent side of the cut (RFC 4035 section
             * 3.1.4.1): a DS query for the cut itself stays here. */
            if (!(i == 1 && ds_at_cut)) {
                m->result = ZONES_DELEGATION;
                m->node = n;
                return;
            }
        }
        cur = n;
    }
    m->result = ZONES_EXACT;
    m->node = cur;
}
