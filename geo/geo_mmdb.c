/*
 * geo_mmdb.c - MaxMind-format databases as geo sources: open and check a
 * file, decode each distinct data record once through the configured field
 * paths, and walk the search tree as an ordered stream of pieces.
 *
 * Owns the MMDB_s handles of one classifier (closed by geo_free) and the
 * build-time decode caches.  libmaxminddb does the file format: the walk
 * reads nodes with MMDB_read_node and data with MMDB_aget_value and
 * MMDB_get_entry_data_list (which follows every pointer of a record, so a
 * corrupt record is found at load time, not by a client).  Sits between
 * geo_conf.c (which configures the files) and geo_table.c (which merges the
 * pieces); nothing here runs on the query path.
 */
#include "geo/geo_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- uint32 -> uint32 hash map (build time) ---- */

struct geo__u32map {
    struct slot {
        uint32_t key, val; /* val GEO__NOVAL: empty */
    } * s;
    size_t cap, n;
};

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "steerdns: out of memory (%zu x %zu bytes)\n", n, size);
        abort();
    }
    return p;
}

static void map_init(geo__u32map_t *m, size_t cap)
{
    m->s = xcalloc(cap, sizeof(*m->s));
    for (size_t i = 0; i < cap; i++)
        m->s[i].val = GEO__NOVAL;
    m->cap = cap;
    m->n = 0;
}

geo__u32map_t *geo__u32map_new(void)
{
    geo__u32map_t *m = xcalloc(1, sizeof(*m));
    map_init(m, 1024);
    return m;
}

void geo__u32map_free(geo__u32map_t *m)
{
    if (m == NULL) return;
    free(m->s);
    free(m);
}

uint32_t geo__u32map_get(const geo__u32map_t *m, uint32_t key)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash32(key) & mask;; i = (i + 1) & mask) {
        if (m->s[i].val == GEO__NOVAL) return GEO__NOVAL;
        if (m->s[i].key == key) return m->s[i].val;
    }
}

uint32_t geo__u32map_put(geo__u32map_t *m, uint32_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        geo__u32map_t old = *m;
        map_init(m, old.cap * 2);
        for (size_t i = 0; i < old.cap; i++)
            if (old.s[i].val != GEO__NOVAL) geo__u32map_put(m, old.s[i].key, old.s[i].val);
        free(old.s);
    }
    size_t mask = m->cap - 1;
    for (size_t i = hash32(key) & mask;; i = (i + 1) & mask) {
        if (m->s[i].val == GEO__NOVAL) {
            m->s[i].key = key;
            m->s[i].val = val;
            m->n++;
            return val;
        }
        if (m->s[i].key == key) return m->s[i].val;
    }
}

/* ---- open ---- */

static const char *kind_word(const geo__mmdb_t *m)
{
    return m->kind == GEO__KIND_CITY ? "city" : "ASN";
}

int geo__mmdb_open(geo_t *g, geo__mmdb_t *m, diag_list_t *d)
{
    (void)g;
    struct stat st;
    if (stat(m->path, &st) != 0) {
        int e = errno;
        yconf_error(d, m->node, "%s: cannot open '%s': %s", m->cfgpath, m->path, strerror(e));
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        yconf_error(d, m->node, "%s: cannot open '%s': is a directory", m->cfgpath, m->path);
        return -EISDIR;
    }
    int rc = MMDB_open(m->path, MMDB_MODE_MMAP, &m->db);
    if (rc != MMDB_SUCCESS) {
        yconf_error(d, m->node, "%s: cannot load '%s': %s", m->cfgpath, m->path, MMDB_strerror(rc));
        return -EINVAL;
    }
    m->open = true;
    const MMDB_metadata_s *md = &m->db.metadata;
    if (md->ip_version != 4 && md->ip_version != 6) {
        yconf_error(d, m->node, "%s: cannot load '%s': unsupported ip_version %u", m->cfgpath,
                    m->path, md->ip_version);
        return -EINVAL;
    }
    if (md->node_count == 0) {
        yconf_error(d, m->node, "%s: cannot load '%s': the search tree is empty", m->cfgpath,
                    m->path);
        return -EINVAL;
    }
    /* Find where IPv4 starts in an IPv6 tree: 96 zero bits down from the
     * root (MaxMind's convention, which libmaxminddb also follows). */
    m->ipv4_subtree = true;
    m->ipv4_node = 0;
    m->ipv4_depth = 0;
    if (md->ip_version == 6) {
        uint32_t node = 0;
        for (unsigned depth = 0; depth < 96; depth++) {
            MMDB_search_node_s sn;
            rc = MMDB_read_node(&m->db, node, &sn);
            if (rc != MMDB_SUCCESS) {
                yconf_error(d, m->node, "%s: cannot load '%s': search tree: %s", m->cfgpath,
                            m->path, MMDB_strerror(rc));
                return -EINVAL;
            }
            if (sn.left_record_type == MMDB_RECORD_TYPE_INVALID) {
                yconf_error(d, m->node,
                            "%s: cannot load '%s': search tree: invalid record in node %u",
                            m->cfgpath, m->path, node);
                return -EINVAL;
            }
            if (sn.left_record_type != MMDB_RECORD_TYPE_SEARCH_NODE) {
                m->ipv4_subtree = false;
                m->ipv4_leaf = sn;
                m->ipv4_depth = depth + 1;
                break;
            }
            node = (uint32_t)sn.left_record;
            m->ipv4_depth = depth + 1;
        }
        m->ipv4_node = node;
    }
    m->cache = geo__u32map_new();
    return 0;
}

/* ---- field access ---- */

static const char *type_name(uint32_t t)
{
    switch (t) {
    case MMDB_DATA_TYPE_UTF8_STRING:
        return "a string";
    case MMDB_DATA_TYPE_DOUBLE:
    case MMDB_DATA_TYPE_FLOAT:
        return "a floating-point number";
    case MMDB_DATA_TYPE_BYTES:
        return "bytes";
    case MMDB_DATA_TYPE_UINT16:
    case MMDB_DATA_TYPE_UINT32:
    case MMDB_DATA_TYPE_INT32:
    case MMDB_DATA_TYPE_UINT64:
    case MMDB_DATA_TYPE_UINT128:
        return "an integer";
    case MMDB_DATA_TYPE_MAP:
        return "a map";
    case MMDB_DATA_TYPE_ARRAY:
        return "an array";
    case MMDB_DATA_TYPE_BOOLEAN:
        return "a boolean";
    default:
        return "data of an unknown type";
    }
}

/* Look up the first alternative of f present in e.  Returns 1 found, 0 not
 * there, or -1 with *err set (a libmaxminddb error). */
static int field_get(const geo__field_t *f, MMDB_entry_s *e, MMDB_entry_data_s *out, int *err,
                     size_t *which)
{
    for (size_t i = 0; i < f->nalts; i++) {
        MMDB_entry_data_s v;
        int rc = MMDB_aget_value(e, &v, f->alts[i]);
        if (rc == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR ||
            rc == MMDB_INVALID_LOOKUP_PATH_ERROR)
            continue; /* a key or index that is not in this record */
        if (rc != MMDB_SUCCESS) {
            *err = rc;
            return -1;
        }
        if (!v.has_data) continue;
        /* An empty string is DB-IP's way of saying "unknown". */
        if (v.type == MMDB_DATA_TYPE_UTF8_STRING && v.data_size == 0) continue;
        *out = v;
        if (which) *which = i;
        return 1;
    }
    return 0;
}

bool geo__mmdb_field_str(const geo__field_t *f, MMDB_entry_s *e, char *buf, size_t size, int *err,
                         uint32_t *type)
{
    MMDB_entry_data_s v;
    *err = 0;
    *type = 0;
    if (f->nalts == 0 || field_get(f, e, &v, err, NULL) != 1) return false;
    *type = v.type;
    if (v.type != MMDB_DATA_TYPE_UTF8_STRING) return false;
    size_t n = v.data_size < size - 1 ? v.data_size : size - 1;
    memcpy(buf, v.utf8_string, n);
    buf[n] = '\0';
    return true;
}

bool geo__mmdb_field_num(const geo__field_t *f, MMDB_entry_s *e, double *out, int *err,
                         uint32_t *type)
{
    MMDB_entry_data_s v;
    *err = 0;
    *type = 0;
    if (f->nalts == 0 || field_get(f, e, &v, err, NULL) != 1) return false;
    *type = v.type;
    switch (v.type) {
    case MMDB_DATA_TYPE_DOUBLE:
        *out = v.double_value;
        return true;
    case MMDB_DATA_TYPE_FLOAT:
        *out = v.float_value;
        return true;
    case MMDB_DATA_TYPE_UINT16:
        *out = v.uint16;
        return true;
    case MMDB_DATA_TYPE_UINT32:
        *out = v.uint32;
        return true;
    case MMDB_DATA_TYPE_INT32:
        *out = v.int32;
        return true;
    case MMDB_DATA_TYPE_UINT64:
        *out = (double)v.uint64;
        return true;
    default:
        return false;
    }
}

/* ---- decoding ---- */

/* Report a problem with one field (once: the file fails at the first). */
static void field_error(geo__mmdb_t *m, diag_list_t *d, const geo__field_t *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void field_error(geo__mmdb_t *m, diag_list_t *d, const geo__field_t *f, const char *fmt, ...)
{
    m->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    yconf_error(d, m->node,
                "%s: '%s': field '%s' (path '%s'): %s: wrong field paths for this %s database? "
                "(see geo.format and geo.%s)",
                m->cfgpath, m->path, f->name, f->text[0], msg, kind_word(m),
                m->kind == GEO__KIND_CITY ? "fields" : "asn_fields");
}

static uint32_t decode_city(geo_t *g, geo__mmdb_t *m, MMDB_entry_s *e, diag_list_t *d)
{
    geo__city_t c = {.region = GEO_NONE, .lat = NAN, .lon = NAN, .subdiv = "", .city = ""};
    char buf[256];
    int err;
    uint32_t type;
    const geo__field_t *f = g->cityf;

    if (geo__mmdb_field_str(&f[GEO__F_COUNTRY], e, buf, sizeof(buf), &err, &type)) {
        size_t n = strlen(buf);
        bool ok = n == 2;
        for (size_t i = 0; ok && i < 2; i++)
            ok = (buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= 'a' && buf[i] <= 'z');
        if (!ok) {
            if (!m->failed)
                field_error(m, d, &f[GEO__F_COUNTRY],
                            "gave '%s', expected a 2-letter ISO 3166-1 code", buf);
            return GEO__NOVAL;
        }
        c.cc[0] = (char)(buf[0] & ~0x20);
        c.cc[1] = (char)(buf[1] & ~0x20);
        m->found[GEO__F_COUNTRY]++;
    } else if (err == 0 && type != 0) {
        if (!m->failed)
            field_error(m, d, &f[GEO__F_COUNTRY], "is %s, expected a string", type_name(type));
        return GEO__NOVAL;
    } else if (err != 0) {
        goto data_error;
    }

    static const int strf[2] = {GEO__F_SUBDIV, GEO__F_CITY};
    for (int k = 0; k < 2; k++) {
        const geo__field_t *sf = &f[strf[k]];
        if (geo__mmdb_field_str(sf, e, buf, sizeof(buf), &err, &type)) {
            const char *s = geo__intern(g, buf, strlen(buf));
            if (k == 0)
                c.subdiv = s;
            else
                c.city = s;
            m->found[strf[k]]++;
        } else if (err == 0 && type != 0) {
            if (!m->failed) field_error(m, d, sf, "is %s, expected a string", type_name(type));
            return GEO__NOVAL;
        } else if (err != 0) {
            goto data_error;
        }
    }

    static const int numf[2] = {GEO__F_LAT, GEO__F_LON};
    for (int k = 0; k < 2; k++) {
        const geo__field_t *nf = &f[numf[k]];
        double v;
        if (geo__mmdb_field_num(nf, e, &v, &err, &type)) {
            double lim = k == 0 ? 90.0 : 180.0;
            if (!(v >= -lim && v <= lim)) {
                if (!m->failed) {
                    snprintf(buf, sizeof(buf), "%g", v);
                    field_error(m, d, nf, "gave %s, out of range", buf);
                }
                return GEO__NOVAL;
            }
            if (k == 0)
                c.lat = (float)v;
            else
                c.lon = (float)v;
            m->found[numf[k]]++;
        } else if (err == 0 && type != 0) {
            if (!m->failed) field_error(m, d, nf, "is %s, expected a number", type_name(type));
            return GEO__NOVAL;
        } else if (err != 0) {
            goto data_error;
        }
    }

    c.region = geo__region_of(g, c.cc, c.subdiv, NULL);
    if (g->ncity == g->capcity) {
        g->capcity = g->capcity ? g->capcity * 2 : 1024;
        geo__city_t *nc = realloc(g->city, g->capcity * sizeof(*nc));
        if (nc == NULL) abort();
        g->city = nc;
    }
    g->city[g->ncity] = c;
    return (uint32_t)g->ncity++;

data_error:
    if (!m->failed)
        yconf_error(d, m->node, "%s: cannot load '%s': data record at offset %u: %s", m->cfgpath,
                    m->path, e->offset, MMDB_strerror(err));
    m->failed = true;
    return GEO__NOVAL;
}

static uint32_t decode_asn(geo_t *g, geo__mmdb_t *m, MMDB_entry_s *e, diag_list_t *d)
{
    int err;
    uint32_t type;
    double v;
    const geo__field_t *f = g->asnf;
    if (!geo__mmdb_field_num(&f[GEO__F_ASN], e, &v, &err, &type)) {
        if (err != 0) goto data_error;
        if (type != 0) {
            if (!m->failed)
                field_error(m, d, &f[GEO__F_ASN], "is %s, expected an integer", type_name(type));
            return GEO__NOVAL;
        }
        return GEO__NOVAL - 1; /* no ASN in this record: no data */
    }
    if (!(v >= 0 && v <= 4294967295.0) || v != floor(v)) {
        if (!m->failed) {
            char buf[64];
            snprintf(buf, sizeof(buf), "%g", v);
            field_error(m, d, &f[GEO__F_ASN], "gave %s, expected an AS number", buf);
        }
        return GEO__NOVAL;
    }
    m->found[GEO__F_ASN]++;
    char org[256] = "";
    if (geo__mmdb_field_str(&f[GEO__F_ORG], e, org, sizeof(org), &err, &type)) {
        m->found[GEO__F_ORG]++;
    } else if (err != 0) {
        goto data_error;
    } else if (type != 0) {
        if (!m->failed)
            field_error(m, d, &f[GEO__F_ORG], "is %s, expected a string", type_name(type));
        return GEO__NOVAL;
    }
    if (v == 0) return GEO__NOVAL - 1; /* AS0: not routed, no data */
    return geo__asn_record(g, (uint32_t)v, org, strlen(org));

data_error:
    if (!m->failed)
        yconf_error(d, m->node, "%s: cannot load '%s': data record at offset %u: %s", m->cfgpath,
                    m->path, e->offset, MMDB_strerror(err));
    m->failed = true;
    return GEO__NOVAL;
}

uint32_t geo__mmdb_decode(geo_t *g, geo__mmdb_t *m, MMDB_entry_s *entry, diag_list_t *d)
{
    uint32_t got = geo__u32map_get(m->cache, entry->offset);
    if (got != GEO__NOVAL) return got;
    /* Follow every pointer of the record once, so that a corrupt record is
     * a load error even when the fields we read would not touch the bad
     * part. */
    MMDB_entry_data_list_s *list = NULL;
    int rc = MMDB_get_entry_data_list(entry, &list);
    MMDB_free_entry_data_list(list);
    if (rc != MMDB_SUCCESS) {
        if (!m->failed)
            yconf_error(d, m->node, "%s: cannot load '%s': data record at offset %u: %s",
                        m->cfgpath, m->path, entry->offset, MMDB_strerror(rc));
        m->failed = true;
        return GEO__NOVAL;
    }
    m->decoded++;
    uint32_t v =
        m->kind == GEO__KIND_CITY ? decode_city(g, m, entry, d) : decode_asn(g, m, entry, d);
    if (v == GEO__NOVAL) return GEO__NOVAL;
    /* GEO__NOVAL - 1 marks "decoded, carries nothing we use". */
    geo__u32map_put(m->cache, entry->offset, v);
    return v;
}

void geo__mmdb_check_fields(geo_t *g, geo__mmdb_t *m, diag_list_t *d)
{
    if (m->failed || m->decoded == 0) return;
    const geo__field_t *f = m->kind == GEO__KIND_CITY ? g->cityf : g->asnf;
    size_t nf = m->kind == GEO__KIND_CITY ? GEO__NCITYF : GEO__NASNF;
    for (size_t i = 0; i < nf; i++) {
        if (f[i].nalts == 0 || m->found[i] > 0) continue;
        char paths[256] = "";
        size_t used = 0;
        for (size_t k = 0; k < f[i].nalts; k++) {
            int w =
                snprintf(paths + used, sizeof(paths) - used, "%s'%s'", k ? ", " : "", f[i].text[k]);
            if (w < 0 || (size_t)w >= sizeof(paths) - used) break;
            used += (size_t)w;
        }
        /* Without the country (city databases) or the ASN (ASN databases)
         * the file is useless: the field paths must be wrong. */
        bool key = (m->kind == GEO__KIND_CITY && i == GEO__F_COUNTRY) ||
                   (m->kind == GEO__KIND_ASN && i == GEO__F_ASN);
        const yconf_node_t *at = f[i].node ? f[i].node : m->node;
        if (key) {
            yconf_error(d, at,
                        "%s: '%s': field '%s' (path %s) is in none of its %zu records: "
                        "wrong field paths for this %s database? (see geo.format and "
                        "geo.%s)",
                        m->cfgpath, m->path, f[i].name, paths, m->decoded, kind_word(m),
                        m->kind == GEO__KIND_CITY ? "fields" : "asn_fields");
            m->failed = true;
        } else {
            yconf_warn(d, at, "%s: '%s': field '%s' (path %s) is in none of its %zu records",
                       m->cfgpath, m->path, f[i].name, paths, m->decoded);
        }
    }
}

/* ---- the search-tree walk ---- */

bool geo__walk_init(geo__walk_t *wk, geo__mmdb_t *m, uint8_t family)
{
    memset(wk, 0, sizeof(*wk));
    wk->m = m;
    wk->w = family == 4 ? 32 : 128;
    wk->budget = (uint64_t)m->db.metadata.node_count + 1;
    if (family == 6 && m->db.metadata.ip_version == 4) return false;
    geo__walk_item_t *it = &wk->stack[wk->sp++];
    memset(it, 0, sizeof(*it));
    if (family == 4 && m->db.metadata.ip_version == 6 && !m->ipv4_subtree) {
        /* IPv4 is one leaf of the IPv6 tree: all of it has one answer. */
        it->node = UINT32_MAX;
        it->depth = 0;
        it->start = 0;
        it->rtype = m->ipv4_leaf.left_record_type;
        it->entry = m->ipv4_leaf.left_record_entry;
        return true;
    }
    it->node = family == 4 ? m->ipv4_node : 0;
    it->depth = 0;
    it->start = 0;
    return true;
}

static int walk_error(geo__walk_t *wk, diag_list_t *d, const char *what, uint32_t node)
{
    geo__mmdb_t *m = wk->m;
    if (!m->failed)
        yconf_error(d, m->node, "%s: cannot load '%s': search tree: %s (node %u)", m->cfgpath,
                    m->path, what, node);
    m->failed = true;
    return -1;
}

static void add_alias(geo_t *g, geo__u128 start, unsigned len)
{
    if (len + 32 > 128) return;
    for (size_t i = 0; i < g->nalias; i++)
        if (g->alias[i].len == len && g->alias[i].hi == (uint64_t)(start >> 64) &&
            g->alias[i].lo == (uint64_t)start)
            return;
    if (g->nalias < GEO__MAX_ALIASES)
        g->alias[g->nalias++] = (geo__alias_t){
            .hi = (uint64_t)(start >> 64), .lo = (uint64_t)start, .len = (uint8_t)len};
}

int geo__walk_next(geo_t *g, geo__walk_t *wk, geo__piece_t *out, diag_list_t *d)
{
    geo__mmdb_t *m = wk->m;
    while (wk->sp > 0) {
        geo__walk_item_t it = wk->stack[--wk->sp];
        if (it.node == UINT32_MAX) {
            /* A leaf: its prefix is the network this database vouches for. */
            out->start = it.start;
            out->len = it.depth;
            if (it.rtype == MMDB_RECORD_TYPE_EMPTY) {
                out->val = GEO__NOVAL;
            } else {
                uint32_t v = geo__mmdb_decode(g, m, &it.entry, d);
                if (v == GEO__NOVAL) return -1;
                out->val = v == GEO__NOVAL - 1 ? GEO__NOVAL : v;
            }
            return 1;
        }
        if (wk->budget-- == 0)
            return walk_error(wk, d, "more nodes reached than the tree holds (a cycle?)", it.node);
        MMDB_search_node_s sn;
        int rc = MMDB_read_node(&m->db, it.node, &sn);
        if (rc != MMDB_SUCCESS) return walk_error(wk, d, MMDB_strerror(rc), it.node);
        unsigned cd = it.depth + 1u;
        /* Push right, then left, so that the left half comes out first and
         * the pieces stay in address order. */
        for (int side = 1; side >= 0; side--) {
            uint8_t rtype = side ? sn.right_record_type : sn.left_record_type;
            uint64_t rec = side ? sn.right_record : sn.left_record;
            geo__walk_item_t ch = {.node = UINT32_MAX, .depth = (uint8_t)cd, .start = it.start};
            if (side) ch.start |= (geo__u128)1 << (wk->w - cd);
            switch (rtype) {
            case MMDB_RECORD_TYPE_SEARCH_NODE:
                if (cd >= wk->w)
                    return walk_error(wk, d, "deeper than the address length", it.node);
                if (wk->w == 128 && m->db.metadata.ip_version == 6 && m->ipv4_subtree &&
                    m->ipv4_depth == 96 && (uint32_t)rec == m->ipv4_node) {
                    /* The IPv4 subtree, under ::/96 or under an alias
                     * (::ffff:0:0/96, 2002::/16, Teredo): it is walked
                     * once as IPv4; here it is a hole that geo_classify
                     * sends to the IPv4 table. */
                    add_alias(g, ch.start, cd);
                    ch.rtype = MMDB_RECORD_TYPE_EMPTY;
                } else {
                    ch.node = (uint32_t)rec;
                }
                break;
            case MMDB_RECORD_TYPE_EMPTY:
                ch.rtype = MMDB_RECORD_TYPE_EMPTY;
                break;
            case MMDB_RECORD_TYPE_DATA:
                ch.rtype = MMDB_RECORD_TYPE_DATA;
                ch.entry = side ? sn.right_record_entry : sn.left_record_entry;
                break;
            default:
                return walk_error(wk, d, "invalid record", it.node);
            }
            wk->stack[wk->sp++] = ch;
        }
    }
    return 0;
}
