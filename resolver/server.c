/*
 * server.c - sockets, worker threads, UDP batches and the TCP connection
 * pool (see server.h).
 */
#include "resolver/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "core/log.h"

#define BATCH 32
#define UDP_RBUF 4096        /* larger queries are dropped as malformed */
#define UDP_SBUF 4096        /* >= max_udp_payload (at most 4096) */
#define UDP_BATCHES_PER_WAKE 8 /* then let TCP and timers run */
#define CMSG_SPACE_PKTINFO 64
#define TCP_MAX_QUERY 4096   /* larger DNS messages close the connection */
#define TCP_IN (2 + TCP_MAX_QUERY) /* one whole query with its length prefix */
#define TCP_OUT (65535 + 2)
#define TCP_SNDBUF 65536     /* kernel send buffer per connection (doubled by Linux) */
#define EPOCH_IDLE UINT64_MAX

typedef struct worker worker_t;

typedef struct udp_sock {
    int fd;
    bool wildcard; /* bound to 0.0.0.0/::, replies need the query's address */
    uint8_t family;
    uv_poll_t poll;
    worker_t *w;
} udp_sock_t;

typedef struct tcp_listener {
    int fd;
    uv_poll_t poll;
    worker_t *w;
} tcp_listener_t;

typedef struct tcp_conn {
    worker_t *w;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int pending_closes;
    bool open;
    bool closing;
    bool writing; /* output is parked in out; reading paused */
    uint8_t *out;
    size_t outlen, outoff;
    size_t inlen;
    uint32_t queries;
    netaddr_t peer;
    /* In the server's free stack: index + 1 of the next free slot, 0 at
     * the bottom.  Atomic because a worker popping the stack may read it
     * while another worker pops the same slot (the tag then fails its
     * compare-and-swap). */
    _Atomic uint32_t next_free;
    uint8_t in[TCP_IN];
} tcp_conn_t;

struct worker {
    server_t *srv;
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    bool started;
    udp_sock_t udp[SNAP_MAX_LISTEN];
    tcp_listener_t tcp[SNAP_MAX_LISTEN];
    size_t nsock;
    /* Announced epoch while a batch runs; EPOCH_IDLE between batches. */
    _Alignas(64) _Atomic uint64_t epoch;
    _Alignas(64) struct {
        _Atomic uint64_t v[sizeof(server_counters_t) / sizeof(uint64_t)];
    } counters;
    answer_txn_t txn;
    rrl_table_t rrl;
    /* UDP batch buffers. */
    struct mmsghdr rmsg[BATCH], smsg[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    struct sockaddr_storage raddr[BATCH];
    uint8_t rctl[BATCH][CMSG_SPACE_PKTINFO], sctl[BATCH][CMSG_SPACE_PKTINFO];
    uint8_t rbuf[BATCH][UDP_RBUF];
    uint8_t sbuf[BATCH][UDP_SBUF];
    /* TCP (the connection slots are the server's, see struct server). */
    uint8_t **bigbufs; /* parked-output buffers, TCP_OUT bytes each */
    size_t nbig, nbig_free;
    uint8_t tcp_out[TCP_OUT];
};

struct server {
    _Atomic(snap_t *) current;
    _Atomic uint64_t epoch;
    uint16_t port;
    unsigned nworkers;
    worker_t **workers;
    uint64_t idle_timeout_ms;
    uint32_t max_queries;
    /* TCP connection slots: exactly tcp.max_connections, shared by every
     * worker, so the cap holds over the whole server however the kernel
     * spreads connections over the SO_REUSEPORT listeners.  The free
     * slots form a lock-free stack: one compare-and-swap at accept and
     * one at close (never per query).  head is (tag << 32) | (index + 1),
     * 0 in the low half when empty; the tag counts every change so a slot
     * popped and pushed back between a load and a CAS cannot be mistaken
     * for an unchanged head (ABA). */
    tcp_conn_t *conns;
    size_t nconns;
    _Alignas(64) _Atomic uint64_t conn_head;
};

/* Counter indexes: positions of the fields in server_counters_t. */
#define CIDX(field) (offsetof(server_counters_t, field) / sizeof(uint64_t))

/* A worker's counters are written by that worker only, so a relaxed load
 * and store (plain moves on x86) suffice; the main thread's reads may be a
 * little stale, never torn. */
static inline void cnt_add(worker_t *w, size_t idx, uint64_t n)
{
    _Atomic uint64_t *c = &w->counters.v[idx];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* ---- sockets ---- */

static socklen_t to_sockaddr(const netaddr_t *a, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a->addr, 4);
        return sizeof(*s4);
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    memcpy(&s6->sin6_addr, a->addr, 16);
    return sizeof(*s6);
}

static bool is_wildcard(const netaddr_t *a)
{
    static const uint8_t zero[16] = {0};
    return memcmp(a->addr, zero, a->family == 4 ? 4 : 16) == 0;
}

/* Create, configure and bind one socket; returns the fd or -errno. */
static int open_socket(const netaddr_t *a, uint16_t port, int type)
{
    int fam = a->family == 4 ? AF_INET : AF_INET6;
    int fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Every worker binds its own socket to the same address and port; the
     * kernel spreads datagrams and connections over them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (fam == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    if (type == SOCK_DGRAM && is_wildcard(a)) {
        if (fam == AF_INET)
            setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
        else
            setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    }
    if (type == SOCK_DGRAM && fam == AF_INET6) {
        /* Fragment large answers at the IPv6 minimum MTU rather than lose
         * them to path MTU problems (as NSD does on Linux). */
        int mtu = 1280;
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, sizeof(mtu));
    }
    struct sockaddr_storage ss;
    socklen_t sl = to_sockaddr(a, port, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, 1024) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

/* Bind one socket to a:port without SO_REUSEPORT, and close it again:
 * whether anyone else holds the port.  Our own sockets share the port with
 * SO_REUSEPORT, which lets a second steerdns (or any program of the same
 * user that sets it) bind beside a running one and silently take part of
 * its traffic; a socket without it conflicts with every holder.  Both keep
 * SO_REUSEADDR: over TCP so that connections of a previous run still in
 * TIME_WAIT do not block a restart (Linux still refuses a port with a
 * listener, so a second steerdns is found there), over UDP so that a
 * multicast responder sharing the port (avahi's mDNS on 5353 binds the
 * wildcard address with SO_REUSEADDR) does not block a unicast server on
 * one address.  Port 0: the kernel picks a free port, stored in *port.
 * Returns 0 or -errno. */
static int probe_port(const netaddr_t *a, uint16_t *port, int type)
{
    int fam = a->family == 4 ? AF_INET : AF_INET6;
    int fd = socket(fam, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    if ((fam == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        rc = -errno;
    struct sockaddr_storage ss;
    socklen_t sl = to_sockaddr(a, *port, &ss);
    if (rc == 0 && bind(fd, (struct sockaddr *)&ss, sl) != 0)
        rc = -errno;
    if (rc == 0 && *port == 0) {
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
            rc = -errno;
        else
            *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    close(fd);
    return rc;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void close_all(server_t *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        for (size_t k = 0; k < w->nsock; k++) {
            if (w->udp[k].fd >= 0)
                close(w->udp[k].fd);
            if (w->tcp[k].fd >= 0)
                close(w->tcp[k].fd);
            w->udp[k].fd = w->tcp[k].fd = -1;
        }
    }
}

/* The listen addresses this machine has: an address it does not have (or
 * IPv6 on a host without it) is skipped with a warning, as Knot DNS does;
 * any other failure is an error later, when binding. */
static size_t usable_listen(const snap_server_t *cfg, netaddr_t *out)
{
    size_t n = 0;
    for (size_t k = 0; k < cfg->nlisten; k++) {
        int fd = open_socket(&cfg->listen[k], 0, SOCK_DGRAM);
        if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) {
            char a[NETADDR_STRLEN];
            netaddr_format(&cfg->listen[k], false, a, sizeof(a));
            log_warn("listen address %s is not available on this host (%s): skipped", a,
                     strerror(-fd));
            continue;
        }
        if (fd >= 0)
            close(fd);
        out[n++] = cfg->listen[k];
    }
    return n;
}

/* "192.0.2.1:53 (UDP)", "[2001:db8::1]:53 (TCP)": where binding failed. */
static void format_endpoint(const netaddr_t *a, uint16_t port, int type, char *buf, size_t size)
{
    char s[NETADDR_STRLEN];
    netaddr_format(a, false, s, sizeof(s));
    snprintf(buf, size, "%s%s%s:%u (%s)", a->family == 6 ? "[" : "", s, a->family == 6 ? "]" : "",
             port, type == SOCK_DGRAM ? "UDP" : "TCP");
}

/* Bind every worker's sockets.  On failure, where names the address, port
 * and protocol that failed (empty when no address was usable). */
static int bind_all(server_t *srv, const snap_server_t *cfg, char *where, size_t wsize)
{
    uint16_t port = (uint16_t)cfg->port;
    netaddr_t use[SNAP_MAX_LISTEN];
    where[0] = '\0';
    size_t nuse = usable_listen(cfg, use);
    if (nuse == 0) {
        log_err("none of the listen addresses is available on this host");
        return -EADDRNOTAVAIL;
    }
    /* Refuse a port somebody already uses before our SO_REUSEPORT sockets
     * could share it (with port 0, the first probe picks the port). */
    for (size_t k = 0; k < nuse; k++) {
        static const int types[2] = {SOCK_DGRAM, SOCK_STREAM};
        for (int t = 0; t < 2; t++) {
            int rc = probe_port(&use[k], &port, types[t]);
            if (rc != 0) {
                format_endpoint(&use[k], port, types[t], where, wsize);
                return rc;
            }
        }
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        w->nsock = nuse;
        for (size_t k = 0; k < nuse; k++)
            w->udp[k].fd = w->tcp[k].fd = -1;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        for (size_t k = 0; k < nuse; k++) {
            int fd = open_socket(&use[k], port, SOCK_DGRAM);
            if (fd < 0) {
                format_endpoint(&use[k], port, SOCK_DGRAM, where, wsize);
                return fd;
            }
            if (port == 0)
                port = bound_port(fd); /* the first socket picks the port */
            w->udp[k].fd = fd;
            w->udp[k].family = use[k].family;
            w->udp[k].wildcard = is_wildcard(&use[k]);
            fd = open_socket(&use[k], port, SOCK_STREAM);
            if (fd < 0) {
                format_endpoint(&use[k], port, SOCK_STREAM, where, wsize);
                return fd;
            }
            w->tcp[k].fd = fd;
        }
    }
    srv->port = port;
    return 0;
}

/* ---- the epoch protocol ---- */

static inline snap_t *batch_enter(worker_t *w)
{
    server_t *srv = w->srv;
    /* Announce before loading: see server_passed for why this order
     * makes freeing safe (both sides use sequentially consistent
     * operations). */
    atomic_store(&w->epoch, atomic_load(&srv->epoch));
    return atomic_load(&srv->current);
}

static inline void batch_leave(worker_t *w)
{
    atomic_store_explicit(&w->epoch, EPOCH_IDLE, memory_order_release);
}

uint64_t server_publish(server_t *srv, snap_t *s, snap_t **old)
{
    *old = atomic_exchange(&srv->current, s);
    return atomic_fetch_add(&srv->epoch, 1) + 1;
}

bool server_passed(const server_t *srv, uint64_t epoch)
{
    /* A worker that still holds the old pointer loaded it before the
     * exchange, so it announced an epoch older than `epoch` before that
     * and keeps it until its batch ends. */
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uint64_t e = atomic_load(&srv->workers[i]->epoch);
        if (e != EPOCH_IDLE && e < epoch)
            return false;
    }
    return true;
}

snap_t *server_current(const server_t *srv)
{
    return atomic_load(&((server_t *)srv)->current);
}

/* ---- UDP ---- */

static void sockaddr_to_netaddr(const struct sockaddr_storage *ss, netaddr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        a->family = 4;
        a->bits = 32;
        memcpy(a->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        /* An IPv4-mapped source on a dual-stack socket is an IPv4 client. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            a->family = 4;
            a->bits = 32;
            memcpy(a->addr, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->family = 6;
            a->bits = 128;
            memcpy(a->addr, &s6->sin6_addr, 16);
        }
    }
}

/* The answer RRL slips: NOERROR with TC=1, the question and, when the
 * query had EDNS, our OPT record (RFC 6891 section 6.1.1); nothing to
 * amplify, and a real client retries over TCP.  Built over the answer
 * already in out, whose header and question it keeps. */
static size_t slip_answer(const answer_env_t *env, const wire_query_t *q, uint8_t *out)
{
    bool has_q = q->has_question;
    wire_write_header(out, q, false, true, 0, has_q ? 1 : 0, 0, 0, q->edns ? 1 : 0);
    size_t len = has_q ? q->question_end : WIRE_HEADER_LEN;
    if (q->edns)
        len += wire_write_opt(out + len, q, env->max_udp_payload, 0, env->ecs, 0);
    return len;
}

/* Copy the destination address of a received datagram into the control
 * data of its reply, so a wildcard socket answers from the address that was
 * asked.  Returns the control length. */
static size_t reply_pktinfo(const struct msghdr *rm, uint8_t *ctl)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)rm); c;
         c = CMSG_NXTHDR((struct msghdr *)rm, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            struct in_pktinfo out = {0};
            out.ipi_spec_dst = pi.ipi_addr;
            struct cmsghdr *o = (struct cmsghdr *)ctl;
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(out));
            memcpy(CMSG_DATA(o), &out, sizeof(out));
            return CMSG_SPACE(sizeof(out));
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            struct cmsghdr *o = (struct cmsghdr *)ctl;
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(o), &pi, sizeof(pi));
            return CMSG_SPACE(sizeof(pi));
        }
    }
    return 0;
}

static void udp_readable(uv_poll_t *h, int status, int events)
{
    udp_sock_t *us = h->data;
    worker_t *w = us->w;
    (void)events;
    if (status < 0)
        return;
    for (int round = 0; round < UDP_BATCHES_PER_WAKE; round++) {
        for (int i = 0; i < BATCH; i++) {
            w->riov[i].iov_base = w->rbuf[i];
            w->riov[i].iov_len = UDP_RBUF;
            struct msghdr *m = &w->rmsg[i].msg_hdr;
            m->msg_name = &w->raddr[i];
            m->msg_namelen = sizeof(w->raddr[i]);
            m->msg_iov = &w->riov[i];
            m->msg_iovlen = 1;
            m->msg_control = us->wildcard ? w->rctl[i] : NULL;
            m->msg_controllen = us->wildcard ? CMSG_SPACE_PKTINFO : 0;
            m->msg_flags = 0;
        }
        int n = recvmmsg(us->fd, w->rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        snap_t *s = batch_enter(w);
        const rrl_conf_t *rc = &s->server.rrl;
        uint32_t now_s = 0;
        if (rc->rate) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
            now_s = (uint32_t)ts.tv_sec;
        }
        int out = 0;
        for (int i = 0; i < n; i++) {
            struct msghdr *rm = &w->rmsg[i].msg_hdr;
            cnt_add(w, CIDX(udp_queries), 1);
            if (rm->msg_flags & MSG_TRUNC) {
                cnt_add(w, CIDX(dropped), 1);
                continue;
            }
            answer_client_t client;
            sockaddr_to_netaddr(&w->raddr[i], &client.addr);
            client.tcp = false;
            size_t len = answer_respond(&s->env, w->rbuf[i], w->rmsg[i].msg_len, &client,
                                        &w->txn, w->sbuf[out], UDP_SBUF);
            if (len == 0) {
                cnt_add(w, CIDX(dropped), 1);
                continue;
            }
            if (rc->rate) {
                rrl_verdict_t v = rrl_account(&w->rrl, rc, &client.addr, (rrl_kind_t)w->txn.rrl_kind,
                                              w->txn.rrl_name, w->txn.rrl_name_len,
                                              w->txn.q.qtype, now_s);
                if (v == RRL_DROP) {
                    cnt_add(w, CIDX(rrl_dropped), 1);
                    continue;
                }
                if (v == RRL_SLIP) {
                    /* An empty truncated answer: a real client retries
                     * over TCP, a victim gets nothing to amplify. */
                    cnt_add(w, CIDX(rrl_slipped), 1);
                    len = slip_answer(&s->env, &w->txn.q, w->sbuf[out]);
                    w->txn.tc = true;
                    w->txn.rcode = 0;
                }
            }
            cnt_add(w, CIDX(rcodes) + (w->txn.rcode < 24 ? w->txn.rcode : 23), 1);
            if (w->txn.tc)
                cnt_add(w, CIDX(truncated), 1);
            w->siov[out].iov_base = w->sbuf[out];
            w->siov[out].iov_len = len;
            struct msghdr *sm = &w->smsg[out].msg_hdr;
            sm->msg_name = &w->raddr[i];
            sm->msg_namelen = rm->msg_namelen;
            sm->msg_iov = &w->siov[out];
            sm->msg_iovlen = 1;
            sm->msg_flags = 0;
            if (us->wildcard) {
                size_t cl = reply_pktinfo(rm, w->sctl[out]);
                sm->msg_control = cl ? w->sctl[out] : NULL;
                sm->msg_controllen = cl;
            } else {
                sm->msg_control = NULL;
                sm->msg_controllen = 0;
            }
            out++;
        }
        batch_leave(w);
        int sent = 0;
        while (sent < out) {
            int r = sendmmsg(us->fd, w->smsg + sent, (unsigned)(out - sent), MSG_DONTWAIT);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                /* A full socket buffer or an unreachable peer: drop the
                 * rest of this batch (UDP). */
                if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    /* Skip the datagram that failed and go on. */
                    cnt_add(w, CIDX(send_errors), 1);
                    sent++;
                    continue;
                }
                cnt_add(w, CIDX(send_errors), (uint64_t)(out - sent));
                break;
            }
            sent += r;
        }
        cnt_add(w, CIDX(udp_answers), (uint64_t)sent);
        if (n < BATCH)
            return;
    }
}

/* ---- TCP ---- */

/* Take a free connection slot, or NULL when tcp.max_connections are open.
 * Any worker thread. */
static tcp_conn_t *conn_pop(server_t *srv)
{
    uint64_t h = atomic_load_explicit(&srv->conn_head, memory_order_acquire);
    for (;;) {
        uint32_t i = (uint32_t)h;
        if (i == 0)
            return NULL;
        tcp_conn_t *c = &srv->conns[i - 1];
        uint32_t next = atomic_load_explicit(&c->next_free, memory_order_relaxed);
        uint64_t nh = (((h >> 32) + 1) << 32) | next;
        /* Acquire: the slot's fields as the worker that freed it left them. */
        if (atomic_compare_exchange_weak_explicit(&srv->conn_head, &h, nh, memory_order_acquire,
                                                  memory_order_acquire))
            return c;
    }
}

/* Give a slot back (from its last close callback).  Any worker thread. */
static void conn_push(server_t *srv, tcp_conn_t *c)
{
    uint32_t idx = (uint32_t)(c - srv->conns) + 1;
    uint64_t h = atomic_load_explicit(&srv->conn_head, memory_order_relaxed);
    uint64_t nh;
    do {
        atomic_store_explicit(&c->next_free, (uint32_t)h, memory_order_relaxed);
        nh = (((h >> 32) + 1) << 32) | idx;
        /* Release: the next owner sees the slot closed. */
    } while (!atomic_compare_exchange_weak_explicit(&srv->conn_head, &h, nh, memory_order_release,
                                                    memory_order_relaxed));
}

static void conn_closed(uv_handle_t *h)
{
    tcp_conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    close(c->fd);
    c->fd = -1;
    worker_t *w = c->w;
    if (c->out) {
        w->bigbufs[w->nbig_free++] = c->out;
        c->out = NULL;
    }
    c->open = false;
    c->closing = false;
    conn_push(w->srv, c);
}

static void conn_close(tcp_conn_t *c)
{
    if (c->closing || !c->open)
        return;
    c->closing = true;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->poll, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void conn_timeout(uv_timer_t *t)
{
    tcp_conn_t *c = t->data;
    cnt_add(c->w, CIDX(tcp_timeouts), 1);
    conn_close(c);
}

/* (Re)start the idle timer: at accept, after each complete query read and
 * after a parked answer has been written out, never for a partial query. */
static void conn_touch(tcp_conn_t *c)
{
    uv_timer_start(&c->timer, conn_timeout, c->w->srv->idle_timeout_ms, 0);
}

static void conn_io(uv_poll_t *h, int status, int events);

/* Send len bytes of w->tcp_out; park what the socket does not take.
 * Returns false when the connection had to be closed. */
static bool conn_send(tcp_conn_t *c, const uint8_t *buf, size_t len)
{
    worker_t *w = c->w;
    size_t off = 0;
    while (off < len) {
        ssize_t r = send(c->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r > 0) {
            off += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(c);
        return false;
    }
    if (off == len)
        return true;
    /* The client is not reading fast enough: park the rest in a buffer of
     * the worker's fixed pool and stop reading until it drains.  With no
     * buffer left the slowest reader loses its connection: memory stays
     * bounded whatever the clients do. */
    if (w->nbig_free == 0) {
        cnt_add(w, CIDX(tcp_closed_slow), 1);
        conn_close(c);
        return false;
    }
    c->out = w->bigbufs[--w->nbig_free];
    memcpy(c->out, buf + off, len - off);
    c->outlen = len - off;
    c->outoff = 0;
    c->writing = true;
    uv_poll_start(&c->poll, UV_WRITABLE, conn_io);
    return true;
}

/* Answer every complete query in the input buffer. */
static void conn_process(tcp_conn_t *c)
{
    worker_t *w = c->w;
    size_t p = 0;
    snap_t *s = NULL;
    while (!c->writing && !c->closing && c->inlen - p >= 2) {
        size_t mlen = wire_get16(c->in + p);
        if (mlen == 0 || mlen > TCP_MAX_QUERY) {
            /* RFC 7766: a message we cannot hold; there is no way to
             * resynchronise the stream, so close it. */
            conn_close(c);
            break;
        }
        if (c->inlen - p < 2 + mlen)
            break;
        if (s == NULL)
            s = batch_enter(w);
        cnt_add(w, CIDX(tcp_queries), 1);
        answer_client_t client = {c->peer, true};
        size_t len = answer_respond(&s->env, c->in + p + 2, mlen, &client, &w->txn,
                                    w->tcp_out + 2, TCP_OUT - 2);
        p += 2 + mlen;
        c->queries++;
        /* A complete query: the connection is not idle (RFC 7766 section
         * 6.2.3); its next query has a whole idle timeout to arrive. */
        conn_touch(c);
        if (len > 0) {
            cnt_add(w, CIDX(rcodes) + (w->txn.rcode < 24 ? w->txn.rcode : 23), 1);
            wire_put16(w->tcp_out, (uint16_t)len);
            if (!conn_send(c, w->tcp_out, len + 2))
                break;
            cnt_add(w, CIDX(tcp_answers), 1);
        } else {
            cnt_add(w, CIDX(dropped), 1);
        }
        if (w->srv->max_queries && c->queries >= w->srv->max_queries) {
            /* The per-connection cap is reached: close once the answers
             * are out. */
            if (!c->writing)
                conn_close(c);
            break;
        }
    }
    if (s)
        batch_leave(w);
    if (!c->closing && p > 0) {
        memmove(c->in, c->in + p, c->inlen - p);
        c->inlen -= p;
    }
}

static void conn_io(uv_poll_t *h, int status, int events)
{
    tcp_conn_t *c = h->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writing && (events & UV_WRITABLE)) {
        while (c->outoff < c->outlen) {
            ssize_t r = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r > 0) {
                c->outoff += (size_t)r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_close(c);
            return;
        }
        c->w->bigbufs[c->w->nbig_free++] = c->out;
        c->out = NULL;
        c->writing = false;
        conn_touch(c);
        if (c->w->srv->max_queries && c->queries >= c->w->srv->max_queries) {
            conn_close(c);
            return;
        }
        uv_poll_start(&c->poll, UV_READABLE, conn_io);
        conn_process(c); /* queries that arrived while we were writing */
        return;
    }
    if (!(events & UV_READABLE) || c->writing)
        return;
    for (;;) {
        if (c->inlen == TCP_IN) {
            conn_process(c);
            if (c->closing || c->writing || c->inlen == TCP_IN)
                return;
        }
        ssize_t r = recv(c->fd, c->in + c->inlen, TCP_IN - c->inlen, MSG_DONTWAIT);
        if (r > 0) {
            /* Bytes alone do not restart the idle timer (conn_process
             * does, per complete query): a client dribbling a query that
             * never completes is closed after the idle timeout. */
            c->inlen += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* EOF or error: answer what is complete, then close. */
        conn_process(c);
        if (!c->writing)
            conn_close(c);
        return;
    }
    conn_process(c);
}

static void tcp_acceptable(uv_poll_t *h, int status, int events)
{
    tcp_listener_t *l = h->data;
    worker_t *w = l->w;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        tcp_conn_t *c = conn_pop(w->srv);
        if (c == NULL) {
            /* At the connection cap: refuse by closing at once. */
            close(fd);
            cnt_add(w, CIDX(tcp_rejected), 1);
            continue;
        }
        c->w = w; /* this worker's loop owns the connection until it closes */
        cnt_add(w, CIDX(tcp_accepted), 1);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* Bound what the kernel holds for a client that does not read:
         * with autotuning a loopback socket would buffer megabytes. */
        int sndbuf = TCP_SNDBUF;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        c->fd = fd;
        c->open = true;
        c->closing = false;
        c->writing = false;
        c->inlen = 0;
        c->queries = 0;
        c->out = NULL;
        sockaddr_to_netaddr(&ss, &c->peer);
        uv_poll_init_socket(&w->loop, &c->poll, fd);
        c->poll.data = c;
        uv_timer_init(&w->loop, &c->timer);
        c->timer.data = c;
        uv_poll_start(&c->poll, UV_READABLE, conn_io);
        conn_touch(c);
    }
}

/* ---- worker lifecycle ---- */

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_stop_cb(uv_async_t *a)
{
    worker_t *w = a->data;
    /* Close every handle; the loop then ends by itself. */
    uv_walk(&w->loop, walk_close, NULL);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static worker_t *worker_new(server_t *srv, unsigned index, size_t maxconns, uint32_t rrl_size)
{
    worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->srv = srv;
    w->index = index;
    atomic_init(&w->epoch, EPOCH_IDLE);
    /* Any worker may hold every connection, so it may need as many
     * parked-output buffers, up to its fixed 64. */
    w->nbig = maxconns < 64 ? maxconns : 64;
    w->bigbufs = calloc(w->nbig, sizeof(uint8_t *));
    if (w->bigbufs == NULL)
        abort();
    for (size_t i = 0; i < w->nbig; i++) {
        w->bigbufs[i] = malloc(TCP_OUT);
        if (w->bigbufs[i] == NULL)
            abort();
    }
    w->nbig_free = w->nbig;
    if (rrl_init(&w->rrl, rrl_size) != 0)
        abort();
    w->txn.rng = 0x9E3779B97F4A7C15ull * (index + 1);
    return w;
}

static void worker_free(worker_t *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nbig; i++)
        free(w->bigbufs[i]);
    free(w->bigbufs);
    rrl_free(&w->rrl);
    free(w);
}

int server_new(snap_t *s, server_t **out)
{
    server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -ENOMEM;
    unsigned n = s->server.workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)cpus : 1;
    }
    srv->nworkers = n;
    srv->idle_timeout_ms = s->server.tcp_idle_timeout_ms;
    srv->max_queries = s->server.tcp_max_queries;
    atomic_init(&srv->current, s);
    atomic_init(&srv->epoch, 1);
    srv->workers = calloc(n, sizeof(*srv->workers));
    if (srv->workers == NULL)
        abort();
    size_t maxconns = s->server.tcp_max_connections ? s->server.tcp_max_connections : 1;
    srv->nconns = maxconns;
    srv->conns = calloc(maxconns, sizeof(tcp_conn_t));
    if (srv->conns == NULL)
        abort();
    /* The free stack holds every slot, slot 0 on top. */
    for (size_t i = 0; i < maxconns; i++) {
        srv->conns[i].fd = -1;
        atomic_init(&srv->conns[i].next_free, i + 1 < maxconns ? (uint32_t)(i + 2) : 0);
    }
    atomic_init(&srv->conn_head, 1);
    for (unsigned i = 0; i < n; i++) {
        srv->workers[i] = worker_new(srv, i, maxconns, s->server.rrl_table_size);
        if (srv->workers[i] == NULL)
            abort();
    }
    int rc = 0;
    char where[NETADDR_STRLEN + 32];
    /* With port 0 the first socket picks a port that another program may
     * already hold for TCP, or on another address: try a few times. */
    for (int attempt = 0; attempt < 20; attempt++) {
        rc = bind_all(srv, &s->server, where, sizeof(where));
        if (rc == 0 || s->server.port != 0 || rc != -EADDRINUSE)
            break;
        close_all(srv);
    }
    if (rc != 0) {
        if (where[0])
            log_err("cannot listen on %s: %s%s", where, strerror(-rc),
                    rc == -EADDRINUSE ? " (another program, or another steerdns, uses this port)"
                                      : "");
        close_all(srv);
        for (unsigned i = 0; i < n; i++)
            worker_free(srv->workers[i]);
        free(srv->workers);
        free(srv->conns);
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

uint16_t server_port(const server_t *srv)
{
    return srv->port;
}

unsigned server_workers(const server_t *srv)
{
    return srv->nworkers;
}

int server_start(server_t *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->stop, worker_stop_cb);
        w->stop.data = w;
        for (size_t k = 0; k < w->nsock; k++) {
            w->udp[k].w = w;
            uv_poll_init_socket(&w->loop, &w->udp[k].poll, w->udp[k].fd);
            w->udp[k].poll.data = &w->udp[k];
            uv_poll_start(&w->udp[k].poll, UV_READABLE, udp_readable);
            w->tcp[k].w = w;
            uv_poll_init_socket(&w->loop, &w->tcp[k].poll, w->tcp[k].fd);
            w->tcp[k].poll.data = &w->tcp[k];
            uv_poll_start(&w->tcp[k].poll, UV_READABLE, tcp_acceptable);
        }
        int rc = uv_thread_create(&w->thread, worker_main, w);
        if (rc != 0) {
            log_err("cannot start worker %u: %s", i, uv_strerror(rc));
            return rc;
        }
        w->started = true;
    }
    return 0;
}

void server_counters(const server_t *srv, server_counters_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    uint64_t *dst = (uint64_t *)sum;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        for (size_t k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
            dst[k] += atomic_load_explicit(&w->counters.v[k], memory_order_relaxed);
    }
}

snap_t *server_free(server_t *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        if (w->started) {
            uv_async_send(&w->stop);
            uv_thread_join(&w->thread);
            uv_loop_close(&w->loop);
        }
    }
    /* Connections still open at stop had their handles closed by the
     * walk; their descriptors are closed here. */
    for (size_t k = 0; k < srv->nconns; k++)
        if (srv->conns[k].fd >= 0)
            close(srv->conns[k].fd);
    close_all(srv);
    snap_t *s = atomic_load(&srv->current);
    for (unsigned i = 0; i < srv->nworkers; i++)
        worker_free(srv->workers[i]);
    free(srv->workers);
    free(srv->conns);
    free(srv);
    return s;
}
