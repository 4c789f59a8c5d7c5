/*
 * server.h - the listening sockets and the worker threads.
 *
 * A worker owns its libuv loop, one SO_REUSEPORT UDP socket and one TCP
 * listening socket per listen address, its receive and send batches, a
 * fixed pool of TCP connections, its transaction scratch and its counters;
 * nothing in it is written by any other thread.  UDP is read and written in
 * batches (recvmmsg/sendmmsg on a uv_poll_t: Debian 12's libuv 1.44 has
 * neither SO_REUSEPORT nor batched sends).
 *
 * The snapshot in force is one atomic pointer.  A worker announces the
 * global epoch before it loads the pointer and clears the announcement when
 * its batch is done; server_publish() swaps the pointer and bumps the
 * epoch, and the old snapshot may be freed once server_passed() says every
 * worker has left the epochs that could still see it.
 */
#ifndef STEERDNS_RESOLVER_SERVER_H
#define STEERDNS_RESOLVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "resolver/snap.h"

typedef struct server server_t;

/* Counters summed over the workers (each worker keeps its own). */
typedef struct server_counters {
    uint64_t udp_queries, udp_answers, tcp_queries, tcp_answers;
    uint64_t dropped;   /* queries not answered on purpose (QR=1, runts) */
    uint64_t truncated; /* UDP answers with TC=1 */
    uint64_t send_errors;
    uint64_t rcodes[24]; /* by response code, 16 = BADVERS */
    uint64_t tcp_accepted, tcp_rejected, tcp_timeouts, tcp_closed_slow;
    uint64_t rrl_dropped, rrl_slipped; /* UDP responses limited by RRL */
} server_counters_t;

/* Create the sockets for snapshot s's listen settings (binding them now, so
 * errors show before anything else starts) and the workers (not yet
 * running).  With port 0 the kernel picks one port, used for every address
 * and for UDP and TCP alike.  Returns 0 or a negative errno (logged). */
int server_new(snap_t *s, server_t **out);

/* The port actually bound. */
uint16_t server_port(const server_t *srv);
unsigned server_workers(const server_t *srv);

/* Start the worker threads. */
int server_start(server_t *srv);

/* Make s the snapshot in force.  Returns the previous one in *old and the
 * epoch after which it is unreachable: free it once server_passed(srv,
 * epoch).  Main thread. */
uint64_t server_publish(server_t *srv, snap_t *s, snap_t **old);
bool server_passed(const server_t *srv, uint64_t epoch);

/* The snapshot in force (main thread: it is the only writer). */
snap_t *server_current(const server_t *srv);

/* Sum of every worker's counters (approximate while they run). */
void server_counters(const server_t *srv, server_counters_t *sum);

/* Stop and join the workers, close the sockets, free the server.  The
 * snapshot in force is returned to the caller to free. */
snap_t *server_free(server_t *srv);

#endif
