/*
 * load.c - zone sources -> zone builders: the YAML zone format (records in
 * presentation format, parsed by ldns), `include:` of zone files by glob and
 * `import:` of RFC 1035 master files (ldns).
 *
 * Load time only.  Every record becomes a zones__rec_t with its position;
 * db.c turns them into nodes and RRsets.  Problems are diagnostics at the
 * position of what is wrong, and loading goes on to find the next one.
 */
#include "zones/zones_int.h"

#include "core/grow.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

typedef struct loader {
    const zones_config_in_t *in;
    arena_t *arena;   /* the snapshot's: YAML trees that outlive the load */
    arena_t *scratch; /* freed when the database is built */
    diag_list_t *d;
    zones__zb_t *zbs;
    size_t n, cap;
    size_t max_zones;
    bool too_many;
} loader_t;

/* ---- rdata name positions ---- */

/* Length of the uncompressed name at rdata[off], or 0 if it does not fit. */
static uint16_t rdata_name_len(const uint8_t *rdata, uint16_t rdlen, uint16_t off)
{
    uint16_t p = off;
    while (p < rdlen) {
        uint8_t l = rdata[p];
        if (l > 63)
            return 0;
        p = (uint16_t)(p + l + 1);
        if (l == 0)
            return p <= rdlen ? (uint16_t)(p - off) : 0;
    }
    return 0;
}

unsigned zones_rdata_names(uint16_t type, const uint8_t *rdata, uint16_t rdlen,
                            uint16_t offs[2])
{
    switch (type) {
    case ZONES_TYPE_NS:
    case ZONES_TYPE_CNAME:
    case ZONES_TYPE_PTR:
        if (rdata_name_len(rdata, rdlen, 0) == 0)
            return 0;
        offs[0] = 0;
        return 1;
    case ZONES_TYPE_MX:
        if (rdlen < 3 || rdata_name_len(rdata, rdlen, 2) == 0)
            return 0;
        offs[0] = 2;
        return 1;
    case ZONES_TYPE_SRV:
        if (rdlen < 7 || rdata_name_len(rdata, rdlen, 6) == 0)
            return 0;
        offs[0] = 6;
        return 1;
    case ZONES_TYPE_SOA: {
        uint16_t l1 = rdata_name_len(rdata, rdlen, 0);
        if (l1 == 0 || rdata_name_len(rdata, rdlen, l1) == 0)
            return 0;
        offs[0] = 0;
        offs[1] = l1;
        return 2;
    }
    default:
        return 0;
    }
}

/* ---- helpers ---- */

static void zb_add_rec(zones__zb_t *zb, const zones__rec_t *r)
{
    zb->recs = grow_array(zb->recs, zb->nrecs, &zb->caprecs, sizeof(*zb->recs), 64);
    zb->recs[zb->nrecs++] = *r;
}

static void zb_add_ref(zones__zb_t *zb, const zones__ref_t *r)
{
    zb->refs = grow_array(zb->refs, zb->nrefs, &zb->caprefs, sizeof(*zb->refs), 16);
    zb->refs[zb->nrefs++] = *r;
}

/* A folder of the pattern that does not exist is no match (a warning, as
 * for an empty folder); one that cannot be read is an error. */
static int glob_failed(const char *epath, int eerrno)
{
    (void)epath;
    return eerrno != ENOENT && eerrno != ENOTDIR;
}

static const char *dir_of(arena_t *a, const char *path)
{
    char *copy = arena_strdup(a, path);
    const char *dir = dirname(copy);
    return arena_strdup(a, strcmp(dir, ".") == 0 ? "" : dir);
}

/* Types a zone may not hold: meta types and those we do not implement. */
static const char *forbidden_type(uint16_t t)
{
    switch (t) {
    case ZONES_TYPE_OPT:
        return "OPT is a pseudo-record, not zone data";
    case ZONES_TYPE_DNAME:
        return "DNAME is not supported";
    case 0:
    case 250: /* TSIG */
    case 249: /* TKEY */
    case ZONES_TYPE_IXFR:
    case ZONES_TYPE_AXFR:
    case 253:
    case 254:
    case ZONES_TYPE_ANY:
        return "a query-only type cannot be zone data";
    default:
        return NULL;
    }
}

/* Convert one ldns RR into a record of zb.  Returns false (after a
 * diagnostic) when the record is unusable. */
static bool take_rr(loader_t *L, zones__zb_t *zb, ldns_rr *rr, const diag_pos_t *pos)
{
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
        diag_error(L->d, pos, "only class IN is served");
        return false;
    }
    uint16_t type = (uint16_t)ldns_rr_get_type(rr);
    const char *why = forbidden_type(type);
    if (why) {
        diag_error(L->d, pos, "%s", why);
        return false;
    }
    ldns_rdf *owner = ldns_rr_owner(rr);
    size_t olen = ldns_rdf_size(owner);
    if (olen == 0 || olen > DNAME_MAXLEN) {
        diag_error(L->d, pos, "bad owner name");
        return false;
    }
    uint8_t lname[DNAME_MAXLEN];
    dname_lower_copy(lname, ldns_rdf_data(owner), olen);
    if (!dname_is_subdomain(lname, zb->origin)) {
        char o[DNAME_STRLEN], z[DNAME_STRLEN];
        dname_to_str(lname, o, sizeof(o));
        dname_to_str(zb->origin, z, sizeof(z));
        diag_error(L->d, pos, "owner '%s' is outside zone '%s'", o, z);
        return false;
    }
    ldns_buffer *buf = ldns_buffer_new(512);
    if (buf == NULL)
        abort();
    if (ldns_rr_rdata2buffer_wire(buf, rr) != LDNS_STATUS_OK || ldns_buffer_position(buf) > 65535) {
        ldns_buffer_free(buf);
        diag_error(L->d, pos, "record data too large");
        return false;
    }
    zones__rec_t r = {0};
    r.owner = arena_memdup(L->scratch, lname, olen);
    r.owner_len = (uint8_t)olen;
    r.type = type;
    r.ttl = ldns_rr_ttl(rr);
    if (r.ttl > 0x7FFFFFFFu) {
        ldns_buffer_free(buf);
        diag_error(L->d, pos, "TTL %u is above 2147483647 (RFC 2181 section 8)", r.ttl);
        return false;
    }
    r.rdlen = (uint16_t)ldns_buffer_position(buf);
    r.rdata = arena_memdup(L->scratch, ldns_buffer_begin(buf), r.rdlen);
    /* Two records that differ only in the case of a name are one record:
     * compare them in canonical form. */
    r.crdata = r.rdata;
    ldns_rr *canon = ldns_rr_clone(rr);
    if (canon == NULL)
        abort();
    ldns_rr2canonical(canon);
    ldns_buffer_clear(buf);
    if (ldns_rr_rdata2buffer_wire(buf, canon) == LDNS_STATUS_OK &&
        ldns_buffer_position(buf) == r.rdlen &&
        memcmp(ldns_buffer_begin(buf), r.rdata, r.rdlen) != 0)
        r.crdata = arena_memdup(L->scratch, ldns_buffer_begin(buf), r.rdlen);
    ldns_rr_free(canon);
    r.pos = *pos;
    r.pos.file = arena_strdup(L->scratch, pos->file ? pos->file : "");
    ldns_buffer_free(buf);
    zb_add_rec(zb, &r);
    return true;
}

/* Parse "<owner> <text>" with ldns and add it. */
static void add_text_record(loader_t *L, zones__zb_t *zb, const uint8_t *owner, const char *text,
                            uint32_t default_ttl, const yconf_node_t *where)
{
    char owner_str[DNAME_STRLEN];
    dname_to_str(owner, owner_str, sizeof(owner_str));
    char *line = NULL;
    if (asprintf(&line, "%s %s", owner_str, text) < 0)
        abort();
    ldns_rr *rr = NULL;
    ldns_rdf *origin = ldns_dname_new_frm_data(zb->origin_len, zb->origin);
    ldns_status s = ldns_rr_new_frm_str(&rr, line, default_ttl, origin, NULL);
    free(line);
    ldns_rdf_deep_free(origin);
    if (s != LDNS_STATUS_OK || rr == NULL) {
        yconf_error(L->d, where, "record '%s': %s", text, ldns_get_errorstr_by_id(s));
        if (rr)
            ldns_rr_free(rr);
        return;
    }
    /* ldns reads "www A 1.2.3.4" as owner www: a second owner in the text
     * is the common mistake; the owner must be the YAML key. */
    ldns_rdf *o = ldns_rr_owner(rr);
    uint8_t got[DNAME_MAXLEN];
    dname_lower_copy(got, ldns_rdf_data(o), ldns_rdf_size(o));
    if (!dname_equal(got, owner)) {
        yconf_error(L->d, where, "record '%s': the owner comes from the key, write only [TTL] TYPE RDATA",
                    text);
        ldns_rr_free(rr);
        return;
    }
    take_rr(L, zb, rr, &where->pos);
    ldns_rr_free(rr);
}

/* ---- YAML zone items ---- */

typedef struct zone_item {
    const char *origin;
    uint64_t ttl_ms;
    const yconf_node_t *soa;
    const yconf_node_t *ns;
    const yconf_node_t *records;
    const char *import;
    const char *include;
    const char *carrier;
} zone_item_t;

static const char *check_ttl(const void *v)
{
    uint64_t ms = *(const uint64_t *)v;
    if (ms % 1000)
        return "a TTL is a whole number of seconds";
    if (ms / 1000 > 0x7FFFFFFFu)
        return "TTL larger than 2147483647 seconds (RFC 2181 section 8)";
    return NULL;
}

enum { ZI_ORIGIN, ZI_TTL, ZI_SOA, ZI_NS, ZI_RECORDS, ZI_IMPORT, ZI_INCLUDE, ZI_CARRIER };
static const yconf_key_t zone_item_table[] = {
    [ZI_ORIGIN] = {"origin", YCONF_T_STR, offsetof(zone_item_t, origin), 0, 0, NULL, 0, NULL, NULL},
    [ZI_TTL] = {"ttl", YCONF_T_DURATION, offsetof(zone_item_t, ttl_ms), 0, 0, "3600", 0, NULL, check_ttl},
    [ZI_SOA] = {"soa", YCONF_T_NODE, offsetof(zone_item_t, soa), 0, 0, NULL, 0, NULL, NULL},
    [ZI_NS] = {"ns", YCONF_T_NODE, offsetof(zone_item_t, ns), 0, 0, NULL, 0, NULL, NULL},
    [ZI_RECORDS] = {"records", YCONF_T_MAP, offsetof(zone_item_t, records), 0, 0, NULL, 0, NULL, NULL},
    [ZI_IMPORT] = {"import", YCONF_T_STR, offsetof(zone_item_t, import), 0, 0, NULL, 0, NULL, NULL},
    [ZI_INCLUDE] = {"include", YCONF_T_STR, offsetof(zone_item_t, include), 0, 0, NULL, 0, NULL, NULL},
    [ZI_CARRIER] = {"carrier", YCONF_T_STR, offsetof(zone_item_t, carrier), 0, 0, NULL, 0, NULL, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

typedef struct soa_map {
    const char *mname, *rname;
    uint64_t serial;
    uint64_t refresh, retry, expire, minimum; /* ms */
} soa_map_t;

static const yconf_key_t soa_table[] = {
    {"mname", YCONF_T_STR, offsetof(soa_map_t, mname), 0, 0, NULL, YCONF_REQUIRED, NULL, NULL},
    {"rname", YCONF_T_STR, offsetof(soa_map_t, rname), 0, 0, NULL, YCONF_REQUIRED, NULL, NULL},
    {"serial", YCONF_T_U64, offsetof(soa_map_t, serial), 0, 4294967295.0, "1", 0, NULL, NULL},
    {"refresh", YCONF_T_DURATION, offsetof(soa_map_t, refresh), 0, 0, "3600", 0, NULL, check_ttl},
    {"retry", YCONF_T_DURATION, offsetof(soa_map_t, retry), 0, 0, "600", 0, NULL, check_ttl},
    {"expire", YCONF_T_DURATION, offsetof(soa_map_t, expire), 0, 0, "604800", 0, NULL, check_ttl},
    {"minimum", YCONF_T_DURATION, offsetof(soa_map_t, minimum), 0, 0, "300", 0, NULL, check_ttl},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void add_soa(loader_t *L, zones__zb_t *zb, const yconf_node_t *soa, uint32_t ttl,
                    const char *path)
{
    char text[1200];
    if (soa->kind == YCONF_SCALAR) {
        snprintf(text, sizeof(text), "SOA %s", soa->u.scalar.str);
    } else if (soa->kind == YCONF_MAP) {
        soa_map_t m = {0};
        char sub[512];
        snprintf(sub, sizeof(sub), "%s.soa", path);
        if (yconf_apply(soa, soa_table, &m, L->scratch, L->d, sub, NULL) != 0)
            return;
        snprintf(text, sizeof(text), "SOA %s %s %llu %llu %llu %llu %llu", m.mname, m.rname,
                 (unsigned long long)m.serial, (unsigned long long)(m.refresh / 1000),
                 (unsigned long long)(m.retry / 1000), (unsigned long long)(m.expire / 1000),
                 (unsigned long long)(m.minimum / 1000));
    } else {
        yconf_error(L->d, soa, "%s.soa: expected \"MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM\" or a mapping",
                    path);
        return;
    }
    add_text_record(L, zb, zb->origin, text, ttl, soa);
}

static void add_records(loader_t *L, zones__zb_t *zb, const yconf_node_t *records, uint32_t ttl,
                        const char *path)
{
    for (size_t i = 0; i < records->u.map.n; i++) {
        const yconf_node_t *key = records->u.map.pairs[i].key;
        const yconf_node_t *val = records->u.map.pairs[i].value;
        uint8_t owner[DNAME_MAXLEN];
        int olen = dname_from_str(key->u.scalar.str, zb->origin, owner);
        if (olen < 0) {
            yconf_error(L->d, key, "%s.records: invalid owner name '%s'", path, key->u.scalar.str);
            continue;
        }
        dname_lower(owner);
        if (!dname_is_subdomain(owner, zb->origin)) {
            char z[DNAME_STRLEN];
            dname_to_str(zb->origin, z, sizeof(z));
            yconf_error(L->d, key, "%s.records: owner '%s' is outside zone '%s'", path,
                        key->u.scalar.str, z);
            continue;
        }
        if (val->kind == YCONF_SCALAR && !yconf_is_null(val)) {
            add_text_record(L, zb, owner, val->u.scalar.str, ttl, val);
        } else if (val->kind == YCONF_SEQ) {
            for (size_t j = 0; j < val->u.seq.n; j++) {
                const yconf_node_t *it = val->u.seq.items[j];
                if (it->kind == YCONF_MAP) {
                    /* A resolver beside the name's other records. */
                    zones__ref_t r = {arena_memdup(L->scratch, owner, (size_t)olen), (uint8_t)olen, it};
                    zb_add_ref(zb, &r);
                    continue;
                }
                if (it->kind != YCONF_SCALAR || yconf_is_null(it)) {
                    yconf_error(L->d, it,
                                "%s.records.%s[%zu]: expected a record such as \"300 A 192.0.2.1\" or a resolver such as {steer: NAME}",
                                path, key->u.scalar.str, j);
                    continue;
                }
                add_text_record(L, zb, owner, it->u.scalar.str, ttl, it);
            }
        } else if (val->kind == YCONF_MAP) {
            zones__ref_t r = {arena_memdup(L->scratch, owner, (size_t)olen), (uint8_t)olen, val};
            zb_add_ref(zb, &r);
        } else {
            yconf_error(L->d, val,
                        "%s.records.%s: expected a record, a list of records or a resolver such as {steer: NAME}",
                        path, key->u.scalar.str);
        }
    }
}

/* Read an RFC 1035 master file record by record, so that every bad line is
 * reported, not just the first. */
static void import_master(loader_t *L, zones__zb_t *zb, const char *file, uint32_t ttl,
                          const yconf_node_t *where)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        yconf_error(L->d, where, "import: cannot open '%s': %s", file, strerror(errno));
        return;
    }
    ldns_rdf *origin = ldns_dname_new_frm_data(zb->origin_len, zb->origin);
    ldns_rdf *prev = NULL;
    uint32_t dttl = ttl;
    int line = 0;
    size_t errors = 0;
    const char *fname = arena_strdup(L->scratch, file);
    while (!feof(f)) {
        ldns_rr *rr = NULL;
        int before = line;
        ldns_status s = ldns_rr_new_frm_fp_l(&rr, f, &dttl, &origin, &prev, &line);
        diag_pos_t pos = {fname, (uint32_t)(line > before ? line : before + 1), 1};
        switch (s) {
        case LDNS_STATUS_OK:
            take_rr(L, zb, rr, &pos);
            ldns_rr_free(rr);
            break;
        case LDNS_STATUS_SYNTAX_EMPTY:
        case LDNS_STATUS_SYNTAX_TTL:
        case LDNS_STATUS_SYNTAX_ORIGIN:
            break;
        case LDNS_STATUS_SYNTAX_INCLUDE:
            diag_error(L->d, &pos, "$INCLUDE is not supported: import each file as its own zone");
            errors++;
            break;
        default:
            diag_error(L->d, &pos, "%s", ldns_get_errorstr_by_id(s));
            errors++;
            break;
        }
        if (errors > 100) {
            diag_error(L->d, &pos, "too many errors, giving up on this file");
            break;
        }
    }
    if (origin)
        ldns_rdf_deep_free(origin);
    if (prev)
        ldns_rdf_deep_free(prev);
    fclose(f);
}

static zones__zb_t *new_zone(loader_t *L)
{
    L->zbs = grow_array(L->zbs, L->n, &L->cap, sizeof(*L->zbs), 8);
    zones__zb_t *zb = &L->zbs[L->n++];
    memset(zb, 0, sizeof(*zb));
    return zb;
}

static void load_zone_item(loader_t *L, const yconf_node_t *item, const char *path,
                           const char *base_dir, bool from_include)
{
    zone_item_t zi = {0};
    const yconf_node_t *nodes[9];
    if (!yconf_expect(L->d, item, YCONF_MAP, path))
        return;
    if (yconf_apply(item, zone_item_table, &zi, L->scratch, L->d, path, nodes) != 0)
        return;
    if (zi.include) {
        if (from_include) {
            yconf_error(L->d, nodes[ZI_INCLUDE], "%s.include: a zone file cannot include others", path);
            return;
        }
        for (int k = 0; zone_item_table[k].name; k++) {
            if (k != ZI_INCLUDE && nodes[k]) {
                yconf_error(L->d, nodes[k], "%s: 'include' stands alone; put '%s' in the included zone files",
                            path, zone_item_table[k].name);
                return;
            }
        }
        const char *pattern = arena_path(L->scratch, base_dir, zi.include);
        glob_t g;
        int rc = glob(pattern, 0, glob_failed, &g);
        if (rc == GLOB_NOMATCH) {
            if (strpbrk(zi.include, "*?["))
                yconf_warn(L->d, nodes[ZI_INCLUDE], "%s.include: no file matches '%s'", path, pattern);
            else
                yconf_error(L->d, nodes[ZI_INCLUDE], "%s.include: no such file '%s'", path, pattern);
            return;
        }
        if (rc != 0) {
            yconf_error(L->d, nodes[ZI_INCLUDE], "%s.include: cannot read '%s'", path, pattern);
            return;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const yconf_node_t *root;
            /* In the snapshot's arena: resolver references keep pointing
             * at these nodes after the load. */
            if (yconf_parse_file(L->arena, g.gl_pathv[i], L->in->max_file_bytes, L->d, &root) != 0)
                continue;
            /* The included file's positions name the file itself. */
            load_zone_item(L, root, "zone", dir_of(L->scratch, g.gl_pathv[i]), true);
        }
        globfree(&g);
        return;
    }
    if (zi.origin == NULL) {
        if (zi.import == NULL) {
            yconf_error(L->d, item, "%s: a zone needs 'origin' (or 'include' of zone files)", path);
            return;
        }
    }
    if (L->n >= L->max_zones) {
        if (!L->too_many)
            yconf_error(L->d, item, "%s: more than %zu zones (the limit)", path, L->max_zones);
        L->too_many = true;
        return;
    }
    zones__zb_t *zb = new_zone(L);
    zb->pos = item->pos;
    zb->source = item->pos.file;
    zb->carrier = zi.carrier;
    zb->carrier_node = nodes[ZI_CARRIER];
    uint32_t ttl = (uint32_t)(zi.ttl_ms / 1000);
    char zpath[300] = "";
    if (zi.origin) {
        uint8_t o[DNAME_MAXLEN];
        char abs[DNAME_STRLEN + 2];
        size_t ol = strlen(zi.origin);
        /* An origin is always absolute, with or without the final dot. */
        snprintf(abs, sizeof(abs), "%s%s", zi.origin, (ol && zi.origin[ol - 1] == '.') ? "" : ".");
        int len = dname_from_str(abs, NULL, o);
        if (len < 0) {
            yconf_error(L->d, nodes[ZI_ORIGIN], "%s.origin: invalid domain name '%s'", path, zi.origin);
            L->n--;
            return;
        }
        dname_lower(o);
        memcpy(zb->origin, o, (size_t)len);
        zb->origin_len = (uint8_t)len;
        zb->pos = nodes[ZI_ORIGIN]->pos;
        snprintf(zpath, sizeof(zpath), "%.*s", (int)strlen(abs) - 1, abs);
    }
    if (zi.import) {
        const char *file = arena_path(L->scratch, base_dir, zi.import);
        if (zi.origin == NULL) {
            /* Without an origin the file must say it: take its SOA owner.
             * Peek with ldns at the first record. */
            FILE *f = fopen(file, "r");
            ldns_zone *z = NULL;
            int line = 0;
            if (f && ldns_zone_new_frm_fp_l(&z, f, NULL, ttl, LDNS_RR_CLASS_IN, &line) == LDNS_STATUS_OK &&
                ldns_zone_soa(z)) {
                ldns_rdf *own = ldns_rr_owner(ldns_zone_soa(z));
                dname_lower_copy(zb->origin, ldns_rdf_data(own), ldns_rdf_size(own));
                zb->origin_len = (uint8_t)ldns_rdf_size(own);
            }
            if (z)
                ldns_zone_deep_free(z);
            if (f)
                fclose(f);
            if (zb->origin_len == 0) {
                yconf_error(L->d, nodes[ZI_IMPORT], "%s.import: give 'origin': '%s' has no readable SOA to take it from",
                            path, file);
                L->n--;
                return;
            }
            size_t zl = dname_to_str(zb->origin, zpath, sizeof(zpath));
            if (zl > 1)
                zpath[zl - 1] = '\0';
        }
        import_master(L, zb, file, ttl, nodes[ZI_IMPORT]);
    }
    char full[400];
    snprintf(full, sizeof(full), "zones[\"%s\"]", zpath);
    if (nodes[ZI_SOA])
        add_soa(L, zb, nodes[ZI_SOA], ttl, full);
    if (nodes[ZI_NS]) {
        const yconf_node_t *ns = nodes[ZI_NS];
        if (ns->kind == YCONF_SCALAR) {
            char text[DNAME_STRLEN + 8];
            snprintf(text, sizeof(text), "NS %s", ns->u.scalar.str);
            add_text_record(L, zb, zb->origin, text, ttl, ns);
        } else if (ns->kind == YCONF_SEQ) {
            for (size_t i = 0; i < ns->u.seq.n; i++) {
                const yconf_node_t *it = ns->u.seq.items[i];
                if (it->kind != YCONF_SCALAR) {
                    yconf_error(L->d, it, "%s.ns[%zu]: expected a name server name", full, i);
                    continue;
                }
                char text[DNAME_STRLEN + 8];
                snprintf(text, sizeof(text), "NS %s", it->u.scalar.str);
                add_text_record(L, zb, zb->origin, text, ttl, it);
            }
        } else {
            yconf_error(L->d, ns, "%s.ns: expected a list of name server names", full);
        }
    }
    if (zi.records)
        add_records(L, zb, zi.records, ttl, full);
}

int zones__load(const zones_config_in_t *in, arena_t *a, arena_t *scratch, diag_list_t *d,
                zones__zb_t **out, size_t *nout)
{
    loader_t L = {.in = in, .arena = a, .scratch = scratch, .d = d};
    L.max_zones = in->max_zones ? in->max_zones : ZONES_DEFAULT_MAX_ZONES;
    size_t before = diag_errors(d);
    const yconf_node_t *zones = in->zones;
    if (zones != NULL && !yconf_is_null(zones)) {
        if (yconf_expect(d, zones, YCONF_SEQ, "zones")) {
            for (size_t i = 0; i < zones->u.seq.n; i++) {
                char path[64];
                snprintf(path, sizeof(path), "zones[%zu]", i);
                load_zone_item(&L, zones->u.seq.items[i], path, in->base_dir, false);
            }
        }
    }
    *out = L.zbs;
    *nout = L.n;
    return diag_errors(d) > before ? -EINVAL : 0;
}
