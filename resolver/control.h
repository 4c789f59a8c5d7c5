/*
 * control.h - the local control channel of a running server.
 *
 * A unix stream socket (server.control).  A client sends one line, the
 * server writes its reply and closes:
 *     status                      counters, generation, every server and cluster state
 *     explain CLIENT NAME [TYPE]  the decision for one query, with live states
 * Runs on the main loop; never touches a worker.  The socket file is
 * created with mode 0600 (root or the server's user only).
 */
#ifndef STEERDNS_RESOLVER_CONTROL_H
#define STEERDNS_RESOLVER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "core/trace.h"

typedef struct control control_t;

/* Answer one command line into t (main thread). */
typedef void (*control_fn)(void *arg, const char *line, const trace_t *t);

/* Listen on path (an old socket file there is replaced).  Returns 0 or a
 * negative errno (logged). */
int control_start(uv_loop_t *loop, const char *path, control_fn fn, void *arg,
                  control_t **out);

/* Stop listening, close open connections, remove the socket file. */
void control_stop(control_t *c);

/* Client side: send line to the socket at path and copy the reply to
 * stdout.  Returns 0, or a negative errno when nothing answers there.
 * When error_reply is not NULL it is set to whether a line of the reply
 * starts with "error:" (the server refused the command or its arguments).
 * line NULL only probes whether something listens at path. */
int control_request(const char *path, const char *line, bool *error_reply);

#endif
