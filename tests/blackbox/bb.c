/*
 * bb.c - the black-box harness (see bb.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STEERDNS_BIN
#error "STEERDNS_BIN must name the steerdns binary"
#endif

/* Sanitizer builds start and stop slower: the deadlines are generous,
 * and only ever waited out when something is wrong. */
#define READY_DEADLINE_MS 20000
#define STOP_DEADLINE_MS 20000

long long bb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool bb_have_ipv6(void)
{
    static int have = -1;
    if (have < 0) {
        int fd = socket(AF_INET6, SOCK_DGRAM, 0);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        have = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
            close(fd);
        if (!have)
            fprintf(stderr, "note: no IPv6 loopback on this host: IPv6 transport checks skipped\n");
    }
    return have;
}

pid_t bb_spawn(const char *const *args, int *out_fd)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(STEERDNS_BIN, (char *const *)args);
        _exit(127);
    }
    close(pfd[1]);
    *out_fd = pfd[0];
    return pid;
}

bool bb_tcp_closed_within(int fd, int ms)
{
    long long deadline = bb_now_ms() + ms;
    while (bb_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - bb_now_ms())) > 0) {
            char c;
            ssize_t r = recv(fd, &c, 1, 0);
            if (r == 0 || (r < 0 && errno == ECONNRESET))
                return true;
            if (r > 0)
                return false;
        }
    }
    return false;
}

int bb_run(char *out, size_t size, const char *const *args)
{
    int fd;
    pid_t pid = bb_spawn(args, &fd);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fd, out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void bb_control(const bb_t *b, const char *cmd, char *out, size_t size)
{
    out[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.90s/ctl.sock", b->dir);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        snprintf(out, size, "(control socket: %s)", strerror(errno));
        return;
    }
    char line[512];
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(fd, line, strlen(line)) < 0)
        fail_msg("control write: %s", strerror(errno));
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fd, out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
}

void bb_expect_contains(const char *what, const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("%s: expected to find\n  %s\nin\n%s", what, needle, text);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t r = fread(buf, 1, (size_t)n, f);
    buf[r] = '\0';
    fclose(f);
    return buf;
}

/* Replace @DIR@ and @SHARED@ in text. */
static char *expand(const bb_t *b, const char *text)
{
    size_t cap = strlen(text) * 2 + 4096, o = 0;
    char *out = malloc(cap);
    for (const char *p = text; *p;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (strncmp(p, "@DIR@", 5) == 0) {
            rep = b->dir;
            skip = 5;
        } else if (strncmp(p, "@SHARED@", 8) == 0) {
            rep = STEERDNS_SHARED;
            skip = 8;
        }
        if (rep) {
            size_t rl = strlen(rep);
            if (o + rl + 1 >= cap) {
                cap = (o + rl) * 2 + 1;
                out = realloc(out, cap);
            }
            memcpy(out + o, rep, rl);
            o += rl;
            p += skip;
        } else {
            if (o + 2 >= cap) {
                cap *= 2;
                out = realloc(out, cap);
            }
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

void bb_write(const bb_t *b, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", b->dir, rel);
    /* Create intermediate folders. */
    for (char *s = path + strlen(b->dir) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(path, 0755);
            *s = '/';
        }
    }
    char *body = expand(b, text);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fputs(body, f);
    fclose(f);
    /* Atomic replace: a reload never reads half a file. */
    rename(tmp, path);
    free(body);
}

void bb_prepare(bb_t *b, const char *config_text)
{
    memset(b, 0, sizeof(*b));
    b->pid = -1;
    b->out_fd = -1;
    snprintf(b->dir, sizeof(b->dir), "/tmp/steerdns-bb-XXXXXX");
    if (mkdtemp(b->dir) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(b->config, sizeof(b->config), "%s/steerdns.yaml", b->dir);
    snprintf(b->log, sizeof(b->log), "%s/server.log", b->dir);
    bb_write(b, "steerdns.yaml", config_text);
}

static void dump_log(const bb_t *b)
{
    char *log = read_file(b->log);
    fprintf(stderr, "---- server log (%s) ----\n%s---- end of log ----\n", b->log, log);
    free(log);
}

/* Servers started and not yet stopped: a failing check jumps out of its
 * test before bb_stop, so these are killed (by PID) when the test program
 * exits, and no server outlives its test. */
#define BB_MAX_LIVE 64
static pid_t live[BB_MAX_LIVE];

static void kill_live(void)
{
    for (int i = 0; i < BB_MAX_LIVE; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

static void track(pid_t pid, bool add)
{
    static bool registered;
    if (!registered) {
        atexit(kill_live);
        registered = true;
    }
    for (int i = 0; i < BB_MAX_LIVE; i++)
        if (add ? live[i] == 0 : live[i] == pid) {
            live[i] = add ? pid : 0;
            return;
        }
}

void bb_launch(bb_t *b)
{
    int out[2];
    if (pipe(out) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(out[1], 1);
        dup2(logfd, 2);
        close(out[0]);
        close(out[1]);
        close(logfd);
        execl(STEERDNS_BIN, "steerdns", "serve", "-c", b->config, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    b->pid = pid;
    track(pid, true);
    b->out_fd = out[0];
    char line[512];
    size_t len = 0;
    long long deadline = bb_now_ms() + READY_DEADLINE_MS;
    for (;;) {
        long long left = deadline - bb_now_ms();
        if (left <= 0) {
            dump_log(b);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            track(pid, false);
            b->pid = -1;
            fail_msg("steerdns did not become ready within %d ms", READY_DEADLINE_MS);
        }
        struct pollfd pfd = {b->out_fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(b->out_fd, line + len, sizeof(line) - 1 - len);
        if (r <= 0) {
            int st;
            waitpid(pid, &st, 0);
            track(pid, false);
            b->pid = -1;
            dump_log(b);
            fail_msg("steerdns exited before it was ready (status %d)", WEXITSTATUS(st));
        }
        len += (size_t)r;
        line[len] = '\0';
        char *p = strstr(line, "steerdns ready port=");
        if (p && strchr(p, '\n')) {
            b->port = (uint16_t)atoi(p + strlen("steerdns ready port="));
            return;
        }
    }
}

void bb_start(bb_t *b, const char *config_text)
{
    bb_prepare(b, config_text);
    bb_launch(b);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void bb_stop(bb_t *b)
{
    if (b->pid > 0) {
        track(b->pid, false);
        kill(b->pid, SIGTERM);
        long long deadline = bb_now_ms() + STOP_DEADLINE_MS;
        int st = 0;
        pid_t r;
        while ((r = waitpid(b->pid, &st, WNOHANG)) == 0 && bb_now_ms() < deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (r == 0) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
            dump_log(b);
            fail_msg("steerdns did not stop within %d ms of SIGTERM", STOP_DEADLINE_MS);
        }
        b->pid = -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            dump_log(b);
            fail_msg("steerdns exited with status %d (signal %d) after SIGTERM",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        }
    }
    if (b->out_fd >= 0)
        close(b->out_fd);
    b->out_fd = -1;
    if (getenv("BB_KEEP") == NULL)
        nftw(b->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int bb_log_count(const bb_t *b, const char *needle)
{
    char *log = read_file(b->log);
    int n = 0;
    for (char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

bool bb_log_wait(const bb_t *b, const char *needle, int n, int deadline_ms)
{
    long long deadline = bb_now_ms() + deadline_ms;
    while (bb_now_ms() < deadline) {
        if (bb_log_count(b, needle) >= n)
            return true;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return bb_log_count(b, needle) >= n;
}

bool bb_reload(bb_t *b, const char *config_text, bool want_ok)
{
    int ok0 = bb_log_count(b, "info: reloaded ");
    int bad0 = bb_log_count(b, "failed with");
    bb_write(b, "steerdns.yaml", config_text);
    kill(b->pid, SIGHUP);
    long long deadline = bb_now_ms() + READY_DEADLINE_MS;
    while (bb_now_ms() < deadline) {
        int ok = bb_log_count(b, "info: reloaded ") - ok0;
        int bad = bb_log_count(b, "failed with") - bad0;
        if (ok > 0 || bad > 0) {
            if ((ok > 0) != want_ok)
                dump_log(b);
            return (ok > 0) == want_ok;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    dump_log(b);
    return false;
}

/* ---- queries ---- */

size_t bb_build(const char *name, const char *type, const bb_q_t *o, uint8_t *out, size_t size)
{
    bb_q_t def = {0};
    if (o == NULL)
        o = &def;
    memset(out, 0, 12);
    uint16_t id = (uint16_t)(rand() & 0xFFFF);
    out[0] = (uint8_t)(id >> 8);
    out[1] = (uint8_t)id;
    out[2] = o->rd ? 0x01 : 0x00;
    out[5] = 1; /* QDCOUNT */
    size_t p = 12;
    ldns_rdf *dn = NULL;
    if (ldns_str2rdf_dname(&dn, name) != LDNS_STATUS_OK)
        fail_msg("bad test name %s", name);
    memcpy(out + p, ldns_rdf_data(dn), ldns_rdf_size(dn));
    p += ldns_rdf_size(dn);
    ldns_rdf_deep_free(dn);
    uint16_t t = (uint16_t)ldns_get_rr_type_by_name(type);
    if (t == 0 && strcmp(type, "TYPE0") != 0)
        fail_msg("bad test type %s", type);
    out[p++] = (uint8_t)(t >> 8);
    out[p++] = (uint8_t)t;
    out[p++] = 0;
    out[p++] = 1; /* IN */
    if (!o->no_edns) {
        out[11] = 1; /* ARCOUNT */
        uint16_t udp = o->udp_size ? o->udp_size : 1232;
        uint8_t opt[128];
        size_t ol = 0;
        if (o->ecs) {
            char addr[64];
            snprintf(addr, sizeof(addr), "%s", o->ecs);
            char *slash = strchr(addr, '/');
            int bits = slash ? atoi(slash + 1) : -1;
            if (slash)
                *slash = '\0';
            uint8_t a[16] = {0};
            int fam = strchr(addr, ':') ? 2 : 1;
            if (inet_pton(fam == 1 ? AF_INET : AF_INET6, addr, a) != 1)
                fail_msg("bad ECS %s", o->ecs);
            if (bits < 0)
                bits = fam == 1 ? 32 : 128;
            size_t alen = ((size_t)bits + 7) / 8;
            opt[ol++] = 0;
            opt[ol++] = 8;
            opt[ol++] = 0;
            opt[ol++] = (uint8_t)(4 + alen);
            opt[ol++] = 0;
            opt[ol++] = (uint8_t)fam;
            opt[ol++] = (uint8_t)bits;
            opt[ol++] = 0;
            memcpy(opt + ol, a, alen);
            ol += alen;
        }
        if (o->extra_opt_code) {
            opt[ol++] = (uint8_t)(o->extra_opt_code >> 8);
            opt[ol++] = (uint8_t)o->extra_opt_code;
            opt[ol++] = 0;
            opt[ol++] = 4;
            memcpy(opt + ol, "abcd", 4);
            ol += 4;
        }
        out[p++] = 0; /* root */
        out[p++] = 0;
        out[p++] = 41;
        out[p++] = (uint8_t)(udp >> 8);
        out[p++] = (uint8_t)udp;
        out[p++] = 0;
        out[p++] = o->edns_version;
        out[p++] = o->do_bit ? 0x80 : 0;
        out[p++] = 0;
        out[p++] = (uint8_t)(ol >> 8);
        out[p++] = (uint8_t)ol;
        memcpy(out + p, opt, ol);
        p += ol;
    }
    if (p > size)
        fail_msg("query too large");
    return p;
}

static int client_socket(const bb_t *b, const bb_q_t *o, int type, struct sockaddr_storage *srv,
                         socklen_t *srvlen)
{
    bool v6 = o && o->source && strchr(o->source, ':');
    int fd = socket(v6 ? AF_INET6 : AF_INET, type, 0);
    if (fd < 0)
        fail_msg("socket: %s", strerror(errno));
    memset(srv, 0, sizeof(*srv));
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)srv;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(b->port);
        inet_pton(AF_INET6, "::1", &s6->sin6_addr);
        *srvlen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)srv;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(b->port);
        inet_pton(AF_INET, "127.0.0.1", &s4->sin_addr);
        *srvlen = sizeof(*s4);
    }
    if (o && o->source) {
        struct sockaddr_storage src;
        memset(&src, 0, sizeof(src));
        socklen_t sl;
        if (v6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
            s6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, o->source, &s6->sin6_addr);
            sl = sizeof(*s6);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
            s4->sin_family = AF_INET;
            inet_pton(AF_INET, o->source, &s4->sin_addr);
            sl = sizeof(*s4);
        }
        if (bind(fd, (struct sockaddr *)&src, sl) != 0)
            fail_msg("bind %s: %s", o->source, strerror(errno));
    }
    return fd;
}

int bb_raw_udp(const bb_t *b, const void *msg, size_t len, uint8_t *ans, size_t anssize,
               int timeout_ms)
{
    struct sockaddr_storage srv;
    socklen_t sl;
    int fd = client_socket(b, NULL, SOCK_DGRAM, &srv, &sl);
    if (connect(fd, (struct sockaddr *)&srv, sl) != 0)
        fail_msg("connect: %s", strerror(errno));
    if (send(fd, msg, len, 0) != (ssize_t)len)
        fail_msg("send: %s", strerror(errno));
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = -1;
    if (poll(&pfd, 1, timeout_ms) > 0)
        n = (int)recv(fd, ans, anssize, 0);
    close(fd);
    return n;
}

int bb_tcp_connect(const bb_t *b)
{
    struct sockaddr_storage srv;
    socklen_t sl;
    int fd = client_socket(b, NULL, SOCK_STREAM, &srv, &sl);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&srv, sl) != 0)
        fail_msg("tcp connect: %s", strerror(errno));
    return fd;
}

bool bb_tcp_send(int fd, const void *msg, size_t len)
{
    uint8_t buf[65537];
    buf[0] = (uint8_t)(len >> 8);
    buf[1] = (uint8_t)len;
    memcpy(buf + 2, msg, len);
    return send(fd, buf, len + 2, MSG_NOSIGNAL) == (ssize_t)(len + 2);
}

static bool read_full(int fd, uint8_t *buf, size_t n, long long deadline)
{
    size_t got = 0;
    while (got < n) {
        long long left = deadline - bb_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

int bb_tcp_recv(int fd, uint8_t *buf, size_t size, int timeout_ms)
{
    long long deadline = bb_now_ms() + timeout_ms;
    uint8_t l[2];
    if (!read_full(fd, l, 2, deadline))
        return -1;
    size_t n = ((size_t)l[0] << 8) | l[1];
    if (n > size)
        return -1;
    if (!read_full(fd, buf, n, deadline))
        return -1;
    return (int)n;
}

ldns_pkt *bb_query(const bb_t *b, const char *name, const char *type, const bb_q_t *o)
{
    uint8_t q[1024], a[65536];
    size_t qlen = bb_build(name, type, o, q, sizeof(q));
    int n = -1;
    if (o && o->tcp) {
        struct sockaddr_storage srv;
        socklen_t sl;
        int fd = client_socket(b, o, SOCK_STREAM, &srv, &sl);
        if (connect(fd, (struct sockaddr *)&srv, sl) == 0 && bb_tcp_send(fd, q, qlen))
            n = bb_tcp_recv(fd, a, sizeof(a), 2000);
        close(fd);
    } else {
        for (int attempt = 0; attempt < 2 && n < 0; attempt++) {
            struct sockaddr_storage srv;
            socklen_t sl;
            int fd = client_socket(b, o, SOCK_DGRAM, &srv, &sl);
            if (connect(fd, (struct sockaddr *)&srv, sl) != 0)
                fail_msg("connect: %s", strerror(errno));
            send(fd, q, qlen, 0);
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, 1000) > 0)
                n = (int)recv(fd, a, sizeof(a), 0);
            close(fd);
        }
    }
    if (n < 0)
        return NULL;
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, a, (size_t)n) != LDNS_STATUS_OK)
        fail_msg("answer to %s %s does not parse", name, type);
    if (ldns_pkt_id(p) != (uint16_t)((q[0] << 8) | q[1]))
        fail_msg("answer ID mismatch");
    return p;
}

const char *bb_rcode(const ldns_pkt *p)
{
    static char buf[32];
    if (p == NULL)
        return "TIMEOUT";
    unsigned rc = ldns_pkt_get_rcode(p);
    /* ldns folds the extended rcode of the OPT record in for BADVERS. */
    if (ldns_pkt_edns_extended_rcode(p))
        rc |= (unsigned)ldns_pkt_edns_extended_rcode(p) << 4;
    switch (rc) {
    case 0:
        return "NOERROR";
    case 1:
        return "FORMERR";
    case 2:
        return "SERVFAIL";
    case 3:
        return "NXDOMAIN";
    case 4:
        return "NOTIMP";
    case 5:
        return "REFUSED";
    case 16:
        return "BADVERS";
    default:
        snprintf(buf, sizeof(buf), "RCODE%u", rc);
        return buf;
    }
}

void bb_rdata(const ldns_rr_list *l, char *out, size_t size)
{
    out[0] = '\0';
    size_t o = 0;
    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
        ldns_rr *rr = ldns_rr_list_rr(l, i);
        for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
            char *s = ldns_rdf2str(ldns_rr_rdf(rr, k));
            int w = snprintf(out + o, size - o, "%s%s", (i || k) ? (k ? " " : ", ") : "", s);
            free(s);
            if (w > 0 && (size_t)w < size - o)
                o += (size_t)w;
        }
    }
}

void bb_ecs(const ldns_pkt *p, char *out, size_t size)
{
    out[0] = '\0';
    ldns_rdf *d = ldns_pkt_edns_data(p);
    if (d == NULL)
        return;
    const uint8_t *b = ldns_rdf_data(d);
    size_t n = ldns_rdf_size(d), i = 0;
    while (i + 4 <= n) {
        uint16_t code = (uint16_t)((b[i] << 8) | b[i + 1]);
        uint16_t len = (uint16_t)((b[i + 2] << 8) | b[i + 3]);
        if (code == 8 && len >= 4 && i + 4 + len <= n) {
            int fam = (b[i + 4] << 8) | b[i + 5];
            uint8_t a[16] = {0};
            memcpy(a, b + i + 8, len - 4u > 16 ? 16 : len - 4u);
            char as[64];
            inet_ntop(fam == 1 ? AF_INET : AF_INET6, a, as, sizeof(as));
            snprintf(out, size, "%s/%u/%u", as, b[i + 6], b[i + 7]);
            return;
        }
        i += 4u + len;
    }
}
