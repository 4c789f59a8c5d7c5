/*
 * explain.h - "why did this client get that answer?"
 *
 * explain_query builds a real query for NAME TYPE as CLIENT would send it
 * (CLIENT "ADDR/PREFIX" becomes an EDNS Client Subnet option, a bare ADDR
 * the source address), answers it with answer_respond on the given
 * snapshot with a trace sink attached, and prints the classification, the
 * plugin's whole decision and the answer that was produced.  Because the
 * answer comes from the same code as on the wire, an explanation cannot
 * disagree with a real answer.  Control plane only (uses ldns to print).
 */
#ifndef STEERDNS_RESOLVER_EXPLAIN_H
#define STEERDNS_RESOLVER_EXPLAIN_H

#include "core/trace.h"
#include "resolver/snap.h"

/* Returns 0, or -EINVAL after printing what is wrong with the arguments. */
int explain_query(const snap_t *s, const char *client, const char *name, const char *type,
                  const trace_t *t);

#endif
