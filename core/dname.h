/*
 * dname.h - domain names in uncompressed wire format (RFC 1035 section 3.1).
 *
 *   +---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
 *   | 3 | w | w | w | 7 | e | x | a | m | p | l | e | 3 | c | o | m | 0
 *   +---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
 *
 * A name is a sequence of length-prefixed labels ending with the root label
 * (a zero byte); at most 255 bytes and 127 labels.  These helpers are pure,
 * allocate nothing and may be called from any thread, including the query
 * path (dname_hash, dname_lower_copy).
 */
#ifndef STEERDNS_CORE_DNAME_H
#define STEERDNS_CORE_DNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNAME_MAXLEN 255
#define DNAME_MAXLABELS 128
#define DNAME_STRLEN (DNAME_MAXLEN * 4 + 2) /* worst case with \DDD escapes */

/* Length in bytes of a valid wire name, including the root label. */
size_t dname_len(const uint8_t *name);

/* Number of labels, not counting the root. */
unsigned dname_labels(const uint8_t *name);

/* Parse presentation format ("www.example.com.", "www", "@", "\\046") into
 * out (DNAME_MAXLEN bytes).  A name without a trailing dot is relative and
 * gets origin appended (origin NULL: relative names are invalid); "@" is the
 * origin.  Returns the wire length, or -EINVAL (syntax) / -EMSGSIZE (too
 * long); out may be partly written on failure. */
int dname_from_str(const char *s, const uint8_t *origin, uint8_t *out);

/* Write the presentation form with trailing dot into out (at least
 * DNAME_STRLEN bytes).  Returns the string length. */
size_t dname_to_str(const uint8_t *name, char *out, size_t size);

/* Lower-case ASCII letters in place / into dst (same length). */
void dname_lower(uint8_t *name);
void dname_lower_copy(uint8_t *dst, const uint8_t *src, size_t len);

/* Case-insensitive equality of two wire names. */
bool dname_equal(const uint8_t *a, const uint8_t *b);

/* True if name is parent or below it (case-insensitive). */
bool dname_is_subdomain(const uint8_t *name, const uint8_t *parent);

/* Pointer to the suffix of name that drops its first `skip` labels. */
const uint8_t *dname_skip_labels(const uint8_t *name, unsigned skip);

/* Canonical order of RFC 4034 section 6.1 (case-insensitive, label by
 * label from the right): <0, 0, >0. */
int dname_compare(const uint8_t *a, const uint8_t *b);

/* Hash of the bytes of a name (callers hash lower-cased names). */
static inline uint64_t dname_hash(const uint8_t *name, size_t len)
{
    /* FNV-1a, 64 bit, with a final mix: names are short, and this needs no
     * table or alignment. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= name[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

/* Read a name from a DNS message at *pos, following compression pointers
 * (RFC 1035 section 4.1.4) strictly backwards.  Writes the uncompressed
 * name to out (DNAME_MAXLEN bytes) and advances *pos past the name as it
 * appears in place.  Returns the name length or -EBADMSG. */
int dname_unpack(const uint8_t *msg, size_t msglen, size_t *pos, uint8_t *out);

#endif
