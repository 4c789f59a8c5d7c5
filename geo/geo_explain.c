/*
 * geo_explain.c - "why did this client get that region and carrier?"
 *
 * geo_explain takes its result from the very table lookup geo_classify
 * uses (geo__decide), so the two can never disagree; then it asks each
 * source on its own what it knows about the client and writes one trace
 * line per source: the nets overrides, each city and ASN database (through
 * libmaxminddb, with the configured field paths), each ASN CSV, the
 * carriers' CIDR lists, and how the region and carrier were chosen.
 *
 * Owns nothing.  Runs for `steerdns explain` and the control channel, never
 * on the query path (it decodes MMDB data and scans lists).
 */
#include "geo/geo_int.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *region_name(const geo_t *g, uint16_t id)
{
    return id == GEO_NONE ? "none" : id < g->nregions ? g->regions[id] : "?";
}

static const char *carrier_name(const geo_t *g, uint16_t id)
{
    return id == GEO_NONE ? "none" : id < g->ncarriers ? g->carriers[id] : "?";
}

/* Smallest prefix length L such that addr/L lies inside [lo, hi] (w bits):
 * the prefix of a range's CIDR split that holds addr. */
static unsigned block_len(geo__u128 a, geo__u128 lo, geo__u128 hi, unsigned w)
{
    for (unsigned len = 0; len <= w; len++) {
        geo__u128 s = a & ~geo__ones(w - len) & geo__ones(w);
        geo__u128 e = s | geo__ones(w - len);
        if (s >= lo && e <= hi) return len;
    }
    return w;
}

/* The longest nets override holding a (or NULL). */
static const geo__net_t *nets_match(const geo_t *g, const netaddr_t *a)
{
    const geo__net_t *best = NULL;
    for (size_t i = 0; i < g->nnets; i++) {
        const geo__net_t *n = &g->nets[i];
        if (netaddr_contains(&n->pfx, a) && (best == NULL || n->pfx.bits > best->pfx.bits))
            best = n;
    }
    return best;
}

static const geo__ccidr_t *ccidr_match(const geo_t *g, const netaddr_t *a)
{
    const geo__ccidr_t *best = NULL;
    for (size_t i = 0; i < g->nccidrs; i++) {
        const geo__ccidr_t *c = &g->ccidrs[i];
        if (netaddr_contains(&c->pfx, a) && (best == NULL || c->pfx.bits > best->pfx.bits))
            best = c;
    }
    return best;
}

static const geo__asnrec_t *asn_find(const geo_t *g, uint32_t asn)
{
    for (size_t i = 0; i < g->nasnr; i++)
        if (g->asnr[i].asn == asn) return &g->asnr[i];
    return NULL;
}

/* What one database says; fills the city's (cc, subdivision) for the
 * region line when it is the first city database with data. */
static void explain_db(const geo_t *g, geo__mmdb_t *m, const netaddr_t *a, const trace_t *t,
                       bool *city_found, char cc[3], char *subdiv, size_t subsize)
{
    if (a->family == 6 && m->db.metadata.ip_version == 4) {
        trace_printf(t, "geo: %s '%s': no IPv6 data (an IPv4 database)", m->cfgpath, m->path);
        return;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (a->family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a->addr, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->addr, 16);
    }
    int err = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&m->db, (struct sockaddr *)&ss, &err);
    if (err != MMDB_SUCCESS) {
        trace_printf(t, "geo: %s '%s': lookup failed: %s", m->cfgpath, m->path, MMDB_strerror(err));
        return;
    }
    unsigned nm = r.netmask;
    if (a->family == 4 && m->db.metadata.ip_version == 6) nm = nm >= 96 ? nm - 96 : 0;
    netaddr_t net = *a;
    net.bits = (uint8_t)nm;
    netaddr_mask(net.addr, net.family, nm);
    char ns[NETADDR_STRLEN];
    netaddr_format(&net, true, ns, sizeof(ns));
    if (!r.found_entry) {
        trace_printf(t, "geo: %s '%s': network %s: no data", m->cfgpath, m->path, ns);
        return;
    }
    char buf[4][256];
    int e;
    uint32_t ty;
    if (m->kind == GEO__KIND_CITY) {
        const geo__field_t *f = g->cityf;
        for (int i = 0; i < 3; i++)
            if (!geo__mmdb_field_str(&f[i], &r.entry, buf[i], sizeof(buf[i]), &e, &ty))
                snprintf(buf[i], sizeof(buf[i]), "-");
        double lat = NAN, lon = NAN;
        geo__mmdb_field_num(&f[GEO__F_LAT], &r.entry, &lat, &e, &ty);
        geo__mmdb_field_num(&f[GEO__F_LON], &r.entry, &lon, &e, &ty);
        if (isnan(lat) || isnan(lon))
            snprintf(buf[3], sizeof(buf[3]), "-");
        else
            snprintf(buf[3], sizeof(buf[3]), "%.4f,%.4f", lat, lon);
        trace_printf(t,
                     "geo: %s '%s': network %s: country %s, subdivision %s, city %s, "
                     "location %s",
                     m->cfgpath, m->path, ns, buf[0], buf[1], buf[2], buf[3]);
        if (!*city_found) {
            *city_found = true;
            if (strcmp(buf[0], "-") != 0 && strlen(buf[0]) == 2) {
                cc[0] = (char)(buf[0][0] & ~0x20);
                cc[1] = (char)(buf[0][1] & ~0x20);
                cc[2] = '\0';
            }
            snprintf(subdiv, subsize, "%s", strcmp(buf[1], "-") == 0 ? "" : buf[1]);
        }
    } else {
        double asn = 0;
        if (!geo__mmdb_field_num(&g->asnf[GEO__F_ASN], &r.entry, &asn, &e, &ty)) {
            trace_printf(t, "geo: %s '%s': network %s: no AS number", m->cfgpath, m->path, ns);
            return;
        }
        if (!geo__mmdb_field_str(&g->asnf[GEO__F_ORG], &r.entry, buf[0], sizeof(buf[0]), &e, &ty))
            snprintf(buf[0], sizeof(buf[0]), "-");
        trace_printf(t, "geo: %s '%s': network %s: AS%.0f (%s)", m->cfgpath, m->path, ns, asn,
                     buf[0]);
    }
}

static void explain_csv(const geo_t *g, const geo__csv_t *c, const netaddr_t *a, const trace_t *t)
{
    unsigned w = a->family == 4 ? 32 : 128;
    geo__u128 v = geo__addr_to_u128(a->addr, a->family);
    size_t n = a->family == 4 ? c->n4 : c->n6;
    unsigned best_len = 0;
    uint32_t best_prio = UINT32_MAX, best_rec = 0;
    geo__u128 best_lo = 0, best_hi = 0;
    bool found = false;
    /* Every row holding the address (overlaps are rare but allowed). */
    for (size_t i = 0; i < n; i++) {
        geo__u128 lo, hi;
        uint32_t rec, prio;
        if (a->family == 4) {
            lo = c->rows4[i].start;
            hi = c->rows4[i].end;
            rec = c->rows4[i].rec;
            prio = c->rows4[i].prio;
        } else {
            lo = (geo__u128)c->rows6[i].start_hi << 64 | c->rows6[i].start_lo;
            hi = (geo__u128)c->rows6[i].end_hi << 64 | c->rows6[i].end_lo;
            rec = c->rows6[i].rec;
            prio = c->rows6[i].prio;
        }
        if (lo > v) break;
        if (hi < v) continue;
        unsigned len = block_len(v, lo, hi, w);
        if (!found || len > best_len || (len == best_len && prio < best_prio)) {
            found = true;
            best_len = len;
            best_prio = prio;
            best_rec = rec;
            best_lo = lo;
            best_hi = hi;
        }
    }
    if (!found) {
        trace_printf(t, "geo: %s '%s': no row", c->cfgpath, c->path);
        return;
    }
    netaddr_t x = {.family = a->family, .bits = (uint8_t)w};
    char slo[NETADDR_STRLEN], shi[NETADDR_STRLEN], pfx[NETADDR_STRLEN];
    geo__u128_to_addr(best_lo, a->family, x.addr);
    netaddr_format(&x, false, slo, sizeof(slo));
    geo__u128_to_addr(best_hi, a->family, x.addr);
    netaddr_format(&x, false, shi, sizeof(shi));
    geo__fmt_prefix(v & ~geo__ones(w - best_len) & geo__ones(w), best_len, w, pfx, sizeof(pfx));
    const geo__asnrec_t *ar = &g->asnr[best_rec];
    trace_printf(t, "geo: %s '%s': row %s-%s (network %s): AS%u (%s)", c->cfgpath, c->path, slo,
                 shi, pfx, ar->asn, ar->org[0] ? ar->org : "-");
}

void geo_explain(const geo_t *g, const netaddr_t *addr, const trace_t *t, geo_result_t *out)
{
    geo_explain_capped(g, addr, 255, t, out);
}

void geo_explain_capped(const geo_t *g, const netaddr_t *addr, unsigned scope_cap,
                        const trace_t *t, geo_result_t *out)
{
    const geo__rec_t *rec;
    uint8_t scope;
    int alias_len;
    netaddr_t v4;
    geo__decide(g, addr, &rec, &scope, &alias_len, &v4);
    geo__fill(rec, scope, out);
    /* What the server sends: never more bits than it looks at. */
    unsigned sent = scope > scope_cap ? scope_cap : scope;
    if (!trace_on(t)) return;

    char cs[NETADDR_STRLEN];
    netaddr_t a = *addr;
    if (a.family == 4 || a.family == 6) netaddr_mask(a.addr, a.family, a.bits);
    if (a.family != 4 && a.family != 6) {
        trace_printf(t, "geo: client of unknown address family %u: unknown", a.family);
        return;
    }
    netaddr_format(&a, true, cs, sizeof(cs));
    trace_printf(t, "geo: client %s (%u bits given)", cs, a.bits);
    if (g == NULL) {
        trace_printf(t, "geo: no geo data configured: region none, carrier none, scope 0");
        return;
    }
    if (alias_len >= 0) {
        char s4[NETADDR_STRLEN];
        netaddr_format(&v4, true, s4, sizeof(s4));
        trace_printf(t, "geo: IPv6 /%d embeds IPv4 %s: classified as that address", alias_len, s4);
        a = v4;
    }

    /* Every source is asked about the very address the table lookup used:
     * the client's address with the bits past its prefix zero (a /24
     * client in a /25 override is that override's: docs/geo.md,
     * Classification).  So the lines below and the result agree. */
    netaddr_t pt = a;
    pt.bits = (uint8_t)netaddr_maxbits(a.family);
    char ps[NETADDR_STRLEN];
    netaddr_format(&pt, false, ps, sizeof(ps));
    const geo__net_t *net = nets_match(g, &pt);
    if (net && net->pfx.bits > a.bits)
        trace_printf(t,
                     "geo: nets: override \"%s\" (%s:%u:%u) holds %s (the client's address, bits "
                     "past /%u zero): region %s, carrier %s",
                     net->key, net->pos.file ? net->pos.file : "?", net->pos.line, net->pos.col, ps,
                     a.bits, region_name(g, net->region), carrier_name(g, net->carrier));
    else if (net)
        trace_printf(t, "geo: nets: override \"%s\" (%s:%u:%u): region %s, carrier %s", net->key,
                     net->pos.file ? net->pos.file : "?", net->pos.line, net->pos.col,
                     region_name(g, net->region), carrier_name(g, net->carrier));
    else if (g->nnets)
        trace_printf(t, "geo: nets: no override holds %s", cs);
    bool both = net && net->region != GEO_NONE && net->carrier != GEO_NONE;
    if (both) trace_printf(t, "geo: the override sets region and carrier: no database consulted");

    bool city_found = false;
    char cc[3] = "", subdiv[256] = "";
    if (!both) {
        for (size_t i = 0; i < g->ndbs; i++)
            explain_db(g, &g->dbs[i], &a, t, &city_found, cc, subdiv, sizeof(subdiv));
        for (size_t i = 0; i < g->ncsvs; i++)
            explain_csv(g, &g->csvs[i], &a, t);
    }

    /* Carrier: the override, then the CIDR lists, then the ASN. */
    if (net && net->carrier != GEO_NONE) {
        trace_printf(t, "geo: carrier %s: set by the nets override \"%s\"",
                     carrier_name(g, out->carrier), net->key);
    } else {
        const geo__ccidr_t *c = ccidr_match(g, &pt);
        if (c) {
            char ns[NETADDR_STRLEN];
            netaddr_format(&c->pfx, true, ns, sizeof(ns));
            trace_printf(t, "geo: carrier %s: network %s listed for '%s' at %s:%u",
                         carrier_name(g, out->carrier), ns, carrier_name(g, c->carrier),
                         c->pos.file ? c->pos.file : "?", c->pos.line);
        } else if (out->asn != 0) {
            const geo__asnrec_t *ar = asn_find(g, out->asn);
            if (ar && ar->carrier != GEO_NONE)
                trace_printf(t, "geo: carrier %s: AS%u (%s) is in its asns",
                             carrier_name(g, out->carrier), out->asn, ar->org[0] ? ar->org : "-");
            else
                trace_printf(t,
                             "geo: carrier none: AS%u is in no carrier's asns and no CIDR "
                             "list holds the client",
                             out->asn);
        } else {
            trace_printf(t, "geo: carrier none: no CIDR list holds the client and its AS is "
                            "unknown");
        }
    }

    /* Region: the override, then the match keys. */
    if (net && net->region != GEO_NONE) {
        trace_printf(t, "geo: region %s: set by the nets override \"%s\"",
                     region_name(g, out->region), net->key);
    } else if (cc[0]) {
        const geo__mkey_t *which;
        geo__region_of(g, cc, subdiv, &which);
        if (which)
            trace_printf(t, "geo: region %s: match key '%s' (%s:%u:%u) for %s%s%s",
                         region_name(g, out->region), which->key,
                         which->pos.file ? which->pos.file : "?", which->pos.line, which->pos.col,
                         cc, subdiv[0] ? "-" : "", subdiv);
        else if (subdiv[0])
            trace_printf(t, "geo: region none: no match key for %s-%s or %s", cc, subdiv, cc);
        else
            trace_printf(t, "geo: region none: no match key for %s", cc);
    } else {
        trace_printf(t, "geo: region none: country unknown");
    }

    char lat[32] = "-";
    if (!isnan(out->lat)) snprintf(lat, sizeof(lat), "%.4f,%.4f", out->lat, out->lon);
    char capped[96] = "";
    if (out->scope > sent)
        snprintf(capped, sizeof(capped),
                 " (decided by a /%u, capped at the server's ECS limit /%u)", out->scope, sent);
    trace_printf(t,
                 "geo: result: region %s, carrier %s, country %s, AS%u, location %s, scope /%u%s",
                 region_name(g, out->region), carrier_name(g, out->carrier),
                 out->country[0] ? out->country : "-", out->asn, lat, sent, capped);
}
