/*
 * health_json.c - JSON field extraction for the `json` check kind.
 *
 * Owns nothing: the poller hands it a response body and the check's field
 * path; it parses with jansson (which caps nesting depth itself), walks the
 * dotted path and returns the number (health -> states -> resolver).  The
 * parsed document is freed before returning.  Any thread.
 */
#include "health/health_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

bool health_json_path_valid(const char *path)
{
    if (path == NULL || *path == '\0') return false;
    size_t comp = 0;
    for (const char *p = path;; p++) {
        if (*p == '.' || *p == '\0') {
            if (comp == 0) return false;
            if (*p == '\0') return true;
            comp = 0;
        } else {
            comp++;
        }
    }
}

/* Write a reason into the caller's buffer, if any. */
#define SET_ERR(err, size, ...)                                                                    \
    do {                                                                                           \
        if ((err) != NULL && (size) > 0) snprintf((err), (size), __VA_ARGS__);                     \
    } while (0)

/* A decimal number in a string ("123", "1.5e9"), as some scripts print. */
static bool string_number(const char *s, double *out)
{
    if (*s == '\0' || strlen(s) > 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '+' || *p == 'e' ||
              *p == 'E'))
            return false;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0') return false;
    *out = v;
    return true;
}

int health_json_extract(const char *buf, size_t len, const char *path, double *out, char *err,
                        size_t errsize)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY, &je);
    if (root == NULL) {
        SET_ERR(err, errsize, "line %d column %d: %s", je.line, je.column, je.text);
        return -EINVAL;
    }
    const json_t *cur = root;
    char comp[256];
    const char *p = path;
    int rc = 0;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof(comp)) {
            rc = -ENOENT;
            SET_ERR(err, errsize, "invalid field path '%s'", path);
            break;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n + (dot ? 1 : 0);
        bool digits = strspn(comp, "0123456789") == n;
        if (json_is_array(cur) && digits) {
            cur = json_array_get(cur, strtoul(comp, NULL, 10));
        } else if (json_is_object(cur)) {
            cur = json_object_get(cur, comp);
        } else {
            cur = NULL;
        }
        if (cur == NULL) {
            rc = -ENOENT;
            SET_ERR(err, errsize, "field '%s' not found", path);
            break;
        }
    }
    if (rc == 0) {
        double v = 0;
        if (json_is_number(cur)) {
            v = json_number_value(cur);
        } else if (json_is_string(cur) && string_number(json_string_value(cur), &v)) {
            /* accepted */
        } else {
            rc = -EDOM;
            SET_ERR(err, errsize, "field '%s' is not a number", path);
        }
        if (rc == 0 && !isfinite(v)) {
            rc = -EDOM;
            SET_ERR(err, errsize, "field '%s' is not finite", path);
        }
        if (rc == 0) *out = v;
    }
    json_decref(root);
    return rc;
}
