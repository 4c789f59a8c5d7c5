/*
 * dname.c - wire-format domain names (see dname.h).
 */
#include "core/dname.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static inline uint8_t lc(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

size_t dname_len(const uint8_t *name)
{
    const uint8_t *p = name;
    while (*p)
        p += *p + 1;
    return (size_t)(p - name) + 1;
}

unsigned dname_labels(const uint8_t *name)
{
    unsigned n = 0;
    while (*name) {
        name += *name + 1;
        n++;
    }
    return n;
}

int dname_from_str(const char *s, const uint8_t *origin, uint8_t *out)
{
    size_t len = 0;
    if (strcmp(s, "@") == 0) {
        if (origin == NULL)
            return -EINVAL;
        size_t ol = dname_len(origin);
        memcpy(out, origin, ol);
        return (int)ol;
    }
    if (strcmp(s, ".") == 0) {
        out[0] = 0;
        return 1;
    }
    const char *p = s;
    bool absolute = false;
    if (*p == '\0')
        return -EINVAL;
    while (*p) {
        size_t lab = len; /* position of the length byte */
        if (lab + 1 > DNAME_MAXLEN)
            return -EMSGSIZE;
        len++;
        size_t n = 0;
        while (*p && *p != '.') {
            uint8_t c;
            if (*p == '\\') {
                p++;
                if (p[0] >= '0' && p[0] <= '9') {
                    if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
                        return -EINVAL;
                    int v = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
                    if (v > 255)
                        return -EINVAL;
                    c = (uint8_t)v;
                    p += 3;
                } else if (*p) {
                    c = (uint8_t)*p++;
                } else {
                    return -EINVAL;
                }
            } else {
                c = (uint8_t)*p++;
            }
            if (n == 63)
                return -EINVAL;
            if (len + 1 > DNAME_MAXLEN)
                return -EMSGSIZE;
            out[len++] = c;
            n++;
        }
        if (n == 0)
            return -EINVAL; /* empty label: ".." or leading dot */
        out[lab] = (uint8_t)n;
        if (*p == '.') {
            p++;
            if (*p == '\0')
                absolute = true;
        }
    }
    if (absolute) {
        if (len + 1 > DNAME_MAXLEN)
            return -EMSGSIZE;
        out[len++] = 0;
        return (int)len;
    }
    if (origin == NULL)
        return -EINVAL;
    size_t ol = dname_len(origin);
    if (len + ol > DNAME_MAXLEN)
        return -EMSGSIZE;
    memcpy(out + len, origin, ol);
    return (int)(len + ol);
}

size_t dname_to_str(const uint8_t *name, char *out, size_t size)
{
    char buf[DNAME_STRLEN];
    size_t o = 0;
    if (*name == 0) {
        buf[o++] = '.';
    }
    while (*name) {
        uint8_t n = *name++;
        for (uint8_t i = 0; i < n; i++) {
            uint8_t c = *name++;
            if (c == '.' || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' ||
                c == '@' || c == '$') {
                buf[o++] = '\\';
                buf[o++] = (char)c;
            } else if (c <= 0x20 || c >= 0x7f) {
                o += (size_t)snprintf(buf + o, 5, "\\%03u", c);
            } else {
                buf[o++] = (char)c;
            }
        }
        buf[o++] = '.';
    }
    buf[o] = '\0';
    if (size) {
        size_t n = o < size - 1 ? o : size - 1;
        memcpy(out, buf, n);
        out[n] = '\0';
    }
    return o;
}

void dname_lower(uint8_t *name)
{
    while (*name) {
        uint8_t n = *name++;
        for (uint8_t i = 0; i < n; i++, name++)
            *name = lc(*name);
    }
}

void dname_lower_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
    /* Length bytes are at most 63, never in 'A'..'Z' (65..90), so a blind
     * byte-wise lower-casing leaves them intact. */
    for (size_t i = 0; i < len; i++)
        dst[i] = lc(src[i]);
}

bool dname_equal(const uint8_t *a, const uint8_t *b)
{
    for (;;) {
        if (*a != *b)
            return false;
        if (*a == 0)
            return true;
        uint8_t n = *a;
        a++;
        b++;
        for (uint8_t i = 0; i < n; i++)
            if (lc(a[i]) != lc(b[i]))
                return false;
        a += n;
        b += n;
    }
}

const uint8_t *dname_skip_labels(const uint8_t *name, unsigned skip)
{
    while (skip-- && *name)
        name += *name + 1;
    return name;
}

bool dname_is_subdomain(const uint8_t *name, const uint8_t *parent)
{
    unsigned nl = dname_labels(name), pl = dname_labels(parent);
    if (nl < pl)
        return false;
    return dname_equal(dname_skip_labels(name, nl - pl), parent);
}

int dname_compare(const uint8_t *a, const uint8_t *b)
{
    const uint8_t *la[DNAME_MAXLABELS], *lb[DNAME_MAXLABELS];
    unsigned na = 0, nb = 0;
    for (const uint8_t *p = a; *p; p += *p + 1)
        la[na++] = p;
    for (const uint8_t *p = b; *p; p += *p + 1)
        lb[nb++] = p;
    while (na > 0 && nb > 0) {
        const uint8_t *x = la[--na], *y = lb[--nb];
        unsigned lx = x[0], ly = y[0], m = lx < ly ? lx : ly;
        for (unsigned i = 1; i <= m; i++) {
            int d = (int)lc(x[i]) - (int)lc(y[i]);
            if (d)
                return d;
        }
        if (lx != ly)
            return (int)lx - (int)ly;
    }
    return (int)na - (int)nb;
}

int dname_unpack(const uint8_t *msg, size_t msglen, size_t *pos, uint8_t *out)
{
    size_t p = *pos, len = 0, end = 0;
    bool jumped = false;
    size_t limit = p; /* pointers must go strictly backwards */
    for (int hops = 0;; hops++) {
        if (p >= msglen || hops > DNAME_MAXLABELS)
            return -EBADMSG;
        uint8_t c = msg[p];
        if ((c & 0xC0) == 0xC0) {
            if (p + 1 >= msglen)
                return -EBADMSG;
            size_t target = ((size_t)(c & 0x3F) << 8) | msg[p + 1];
            if (!jumped)
                end = p + 2;
            if (target >= limit)
                return -EBADMSG;
            limit = target;
            p = target;
            jumped = true;
            continue;
        }
        if (c & 0xC0)
            return -EBADMSG; /* 0x40 / 0x80: extended label types are obsolete */
        if (p + 1 + c > msglen || len + 1 + c > DNAME_MAXLEN)
            return -EBADMSG;
        memcpy(out + len, msg + p, (size_t)c + 1);
        len += (size_t)c + 1;
        p += (size_t)c + 1;
        if (c == 0)
            break;
    }
    *pos = jumped ? end : p;
    return (int)len;
}
