/*
 * test_server.c - black-box tests of the running server and the command
 * line: TCP idle timeout (also against a client dribbling bytes) and the
 * server-wide connection cap, refusing a port already in use, SIGHUP
 * reload (good and bad), SIGTERM, `check` with positioned errors, explain
 * exit status, master-file import, include, --help and --version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bb.h"

#define HEAD                                                                                     \
    "server:\n"                                                                                  \
    "  listen: [127.0.0.1]\n"                                                                    \
    "  port: 0\n"                                                                                \
    "  workers: 1\n"

static const char *zone_v(int v)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             HEAD "  tcp: {max_connections: 3, idle_timeout: 300ms}\n"
                  "zones:\n"
                  "  - origin: example.test\n"
                  "    soa: \"ns1 hostmaster %d 3600 600 604800 120\"\n"
                  "    ns: [ns1]\n"
                  "    records:\n"
                  "      ns1: \"A 192.0.2.1\"\n"
                  "      www: \"A 192.0.2.%d\"\n",
             v, v);
    return buf;
}

static char *www(const bb_t *b)
{
    static char out[256];
    ldns_pkt *p = bb_query(b, "www.example.test.", "A", NULL);
    if (p == NULL)
        return strcpy(out, "TIMEOUT");
    bb_rdata(ldns_pkt_answer(p), out, sizeof(out));
    ldns_pkt_free(p);
    return out;
}

static void test_tcp_idle_timeout(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, zone_v(10));
    int fd = bb_tcp_connect(&b);
    long long t0 = bb_now_ms();
    assert_true(bb_tcp_closed_within(fd, 5000));
    long long took = bb_now_ms() - t0;
    if (took < 250)
        fail_msg("idle connection closed after %lld ms, before the 300 ms timeout", took);
    close(fd);
    /* Activity keeps a connection open past the timeout. */
    fd = bb_tcp_connect(&b);
    for (int i = 0; i < 4; i++) {
        uint8_t q[512], a[4096];
        size_t l = bb_build("www.example.test.", "A", NULL, q, sizeof(q));
        assert_true(bb_tcp_send(fd, q, l));
        assert_true(bb_tcp_recv(fd, a, sizeof(a), 2000) > 0);
        struct timespec ts = {0, 150 * 1000 * 1000}; /* pacing below the timeout, not a wait for a result */
        nanosleep(&ts, NULL);
    }
    close(fd);
    bb_stop(&b);
}

/* A client that dribbles one byte of a never-complete query every 100 ms
 * (a slow-loris) is closed after the idle timeout: only a complete query
 * restarts the timer, not every byte. */
static void test_tcp_idle_timeout_dribble(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, zone_v(10));
    int fd = bb_tcp_connect(&b);
    long long t0 = bb_now_ms();
    /* A length prefix announcing 256 bytes, then one byte at a time. */
    const uint8_t len[2] = {0x01, 0x00};
    assert_int_equal(send(fd, len, 2, MSG_NOSIGNAL), 2);
    bool closed = false;
    for (int i = 0; i < 40 && !closed; i++) {
        uint8_t zero = 0;
        if (send(fd, &zero, 1, MSG_NOSIGNAL) != 1)
            break; /* the server is gone: closed_within says so below */
        /* 100 ms between bytes (the client's pace, not a wait for the
         * server): closed_within returns as soon as the server closes. */
        closed = bb_tcp_closed_within(fd, 100);
    }
    closed = closed || bb_tcp_closed_within(fd, 2000);
    long long took = bb_now_ms() - t0;
    if (!closed)
        fail_msg("a client sending one byte every 100 ms was still connected after %lld ms (idle_timeout 300ms)",
                 took);
    if (took < 250 || took > 1500)
        fail_msg("dribbling client closed after %lld ms: expected about 300 ms (the idle timeout)", took);
    close(fd);
    bb_stop(&b);
}

static void test_tcp_connection_cap(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, zone_v(10));
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = bb_tcp_connect(&b);
        uint8_t q[512], a[4096];
        size_t l = bb_build("www.example.test.", "A", NULL, q, sizeof(q));
        assert_true(bb_tcp_send(fds[i], q, l));
        assert_true(bb_tcp_recv(fds[i], a, sizeof(a), 2000) > 0);
    }
    /* The fourth is over the cap: closed at once. */
    int extra = bb_tcp_connect(&b);
    assert_true(bb_tcp_closed_within(extra, 2000));
    close(extra);
    /* Closing one frees its slot. */
    close(fds[0]);
    bool served = false;
    long long deadline = bb_now_ms() + 3000;
    while (!served && bb_now_ms() < deadline) {
        int fd = bb_tcp_connect(&b);
        uint8_t q[512], a[4096];
        size_t l = bb_build("www.example.test.", "A", NULL, q, sizeof(q));
        if (bb_tcp_send(fd, q, l) && bb_tcp_recv(fd, a, sizeof(a), 500) > 0)
            served = true;
        close(fd);
    }
    assert_true(served);
    close(fds[1]);
    close(fds[2]);
    bb_stop(&b);
}

/* tcp.max_connections is one cap over all workers, however the kernel
 * spreads connections over their SO_REUSEPORT sockets: N connections are
 * served, and while they are open every further one is closed at once. */
static void test_tcp_connection_cap_workers(void **state)
{
    (void)state;
    static const struct {
        int max, workers;
    } t[] = {{1, 4}, {3, 2}, {4, 4}};
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        char conf[512];
        snprintf(conf, sizeof(conf),
                 "server:\n"
                 "  listen: [127.0.0.1]\n"
                 "  port: 0\n"
                 "  workers: %d\n"
                 "  tcp: {max_connections: %d, idle_timeout: 30s}\n"
                 "zones:\n"
                 "  - {origin: example.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\"}}\n",
                 t[k].workers, t[k].max);
        bb_t b;
        bb_start(&b, conf);
        uint8_t q[512], a[4096];
        size_t l = bb_build("ns1.example.test.", "A", NULL, q, sizeof(q));
        int fds[8];
        for (int i = 0; i < t[k].max; i++) {
            fds[i] = bb_tcp_connect(&b);
            if (!bb_tcp_send(fds[i], q, l) || bb_tcp_recv(fds[i], a, sizeof(a), 2000) <= 0)
                fail_msg("max_connections %d, %d workers: connection %d of %d not served",
                         t[k].max, t[k].workers, i + 1, t[k].max);
        }
        /* Several extra connections, so that some would land on every
         * worker: each is over the cap. */
        for (int i = 0; i < 8; i++) {
            int extra = bb_tcp_connect(&b);
            if (!bb_tcp_closed_within(extra, 2000))
                fail_msg("max_connections %d, %d workers: connection %d was not closed",
                         t[k].max, t[k].workers, t[k].max + 1);
            close(extra);
        }
        /* The N are still served. */
        for (int i = 0; i < t[k].max; i++) {
            if (!bb_tcp_send(fds[i], q, l) || bb_tcp_recv(fds[i], a, sizeof(a), 2000) <= 0)
                fail_msg("max_connections %d: connection %d lost its service", t[k].max, i + 1);
            close(fds[i]);
        }
        bb_stop(&b);
    }
}

/* Run the binary like bb_run, but kill it (by PID) once it says ready or
 * has not exited within ms; returns its exit status, or -2 when it had to
 * be killed. */
static int run_deadline(char *out, size_t size, const char *const *args, int ms)
{
    int fd;
    pid_t pid = bb_spawn(args, &fd);
    size_t n = 0;
    long long deadline = bb_now_ms() + ms;
    bool killed = false;
    for (;;) {
        long long left = deadline - bb_now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        ssize_t r = read(fd, out + n, size - 1 - n);
        if (r <= 0 || (n += (size_t)r) + 1 >= size)
            break;
        out[n] = '\0';
        if (strstr(out, "steerdns ready")) {
            /* It is serving: it will not exit by itself. */
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
    }
    out[n] = '\0';
    close(fd);
    int st;
    waitpid(pid, &st, 0);
    if (killed)
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Prepare b for one worker on 127.0.0.1:port and run `serve` like
 * run_deadline (-2: it became ready and was killed). */
static int serve_on(bb_t *b, uint16_t port, char *out, size_t size)
{
    char conf[512];
    snprintf(conf, sizeof(conf),
             "server: {listen: [127.0.0.1], port: %u, workers: 1}\n"
             "zones:\n"
             "  - {origin: example.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\"}}\n",
             port);
    bb_prepare(b, conf);
    const char *args[] = {"steerdns", "serve", "-c", b->config, NULL};
    return run_deadline(out, size, args, 10000);
}

/* A second server on the port of a running one must not start (with
 * SO_REUSEPORT it would silently take half of the traffic): exit 1 and
 * name the address and port. */
static void test_port_in_use(void **state)
{
    (void)state;
    bb_t a, b;
    bb_start(&a, zone_v(10));
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "server:\n"
             "  listen: [127.0.0.1]\n"
             "  port: %u\n"
             "  workers: 2\n"
             "zones:\n"
             "  - {origin: example.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\"}}\n",
             a.port);
    bb_prepare(&b, conf);
    char out[8192];
    const char *args[] = {"steerdns", "serve", "-c", b.config, NULL};
    int st = run_deadline(out, sizeof(out), args, 10000);
    if (st == -2)
        fail_msg("a second server on port %u started instead of exiting:\n%s", a.port, out);
    BB_EXPECT_INT("second server on a port in use: exit", st, 1);
    if (strstr(out, "steerdns ready"))
        fail_msg("the second server said ready:\n%s", out);
    char want[128];
    /* (UDP sockets that share with SO_REUSEADDR are let be; the running
     * steerdns is found by its TCP listener) */
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u (TCP): Address already in use", a.port);
    bb_expect_contains("port in use", out, want);
    /* The first one still answers every query. */
    BB_EXPECT_STR("first server after the second was refused", www(&a), "192.0.2.10");

    /* A restart on the same port is not refused because of connections
     * the stopped server closed (TIME_WAIT). */
    int fd = bb_tcp_connect(&a);
    assert_true(bb_tcp_closed_within(fd, 5000)); /* the server closes it: idle timeout */
    close(fd);
    bb_stop(&a);
    bb_launch(&b);
    BB_EXPECT_INT("restarted on the same port", b.port, a.port);
    bb_stop(&b);

    /* Anyone's TCP listener on the port counts, even one that shares it
     * with SO_REUSEPORT. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    getsockname(l, (struct sockaddr *)&sa, &sl);
    st = serve_on(&b, ntohs(sa.sin_port), out, sizeof(out));
    close(l);
    if (st == -2)
        fail_msg("a server on a port with a TCP listener started instead of exiting:\n%s", out);
    BB_EXPECT_INT("server on a port with a TCP listener: exit", st, 1);
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u (TCP): Address already in use",
             ntohs(sa.sin_port));
    bb_expect_contains("TCP port in use", out, want);
    bb_stop(&b);

    /* A UDP socket that does not share the port blocks it; one that
     * shares it with SO_REUSEADDR on the wildcard address (avahi's mDNS
     * on 5353) does not. */
    for (int share = 0; share < 2; share++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        if (share)
            setsockopt(u, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in ua = {.sin_family = AF_INET};
        inet_pton(AF_INET, share ? "0.0.0.0" : "127.0.0.1", &ua.sin_addr);
        socklen_t ul = sizeof(ua);
        assert_int_equal(bind(u, (struct sockaddr *)&ua, sizeof(ua)), 0);
        getsockname(u, (struct sockaddr *)&ua, &ul);
        st = serve_on(&b, ntohs(ua.sin_port), out, sizeof(out));
        close(u);
        if (share) {
            BB_EXPECT_INT("beside a UDP socket that shares the port: started (killed once ready)", st, -2);
        } else {
            BB_EXPECT_INT("on a port with a UDP socket: exit", st, 1);
            snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u (UDP): Address already in use",
                     ntohs(ua.sin_port));
            bb_expect_contains("UDP port in use", out, want);
        }
        bb_stop(&b);
    }
}

static void test_reload(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, zone_v(10));
    BB_EXPECT_STR("www before reload", www(&b), "192.0.2.10");
    assert_true(bb_reload(&b, zone_v(11), true));
    BB_EXPECT_STR("www after a good reload", www(&b), "192.0.2.11");
    /* An invalid file is refused; the old configuration keeps serving. */
    assert_true(bb_reload(&b, HEAD "zones:\n  - origin: example.test\n    ns: [ns1]\n", false));
    BB_EXPECT_STR("www after a bad reload", www(&b), "192.0.2.11");
    assert_true(bb_log_count(&b, "has no SOA record") >= 1);
    assert_true(bb_reload(&b, "server: [this is\n", false));
    BB_EXPECT_STR("www after a syntax error", www(&b), "192.0.2.11");
    assert_true(bb_reload(&b, zone_v(12), true));
    BB_EXPECT_STR("www after the next good reload", www(&b), "192.0.2.12");
    bb_stop(&b);
}

static void test_check(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, zone_v(1));
    char out[16384];
    const char *good[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("check good: exit", bb_run(out, sizeof(out), good), 0);
    bb_expect_contains("check good", out, ": ok (1 zone(s)");

    /* Every error, each with its file:line:column. */
    bb_write(&b, "bad.yaml",
             "server:\n"                          /* 1 */
             "  port: 99999\n"                    /* 2 */
             "  colour: blue\n"                   /* 3 */
             "zones:\n"                           /* 4 */
             "  - origin: example.test\n"         /* 5 */
             "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n" /* 6 */
             "    ns: [ns1]\n"                    /* 7 */
             "    records:\n"                     /* 8 */
             "      www: [\"A 192.0.2.300\", \"AAAA 2001:db8::1\"]\n" /* 9 */
             "      alias: [\"CNAME www\", \"A 192.0.2.1\"]\n"       /* 10 */
             "      out.example.org.: \"A 192.0.2.1\"\n"            /* 11 */
             "      ttl: \"99999999999 A 192.0.2.1\"\n"              /* 12 */
             "  - origin: example.test\n"         /* 13 */
             "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"
             "    ns: [ns1]\n");
    char path[400];
    snprintf(path, sizeof(path), "%s/bad.yaml", b.dir);
    const char *bad[] = {"steerdns", "check", "-c", path, NULL};
    BB_EXPECT_INT("check bad: exit", bb_run(out, sizeof(out), bad), 1);
    char want[600];
    snprintf(want, sizeof(want), "%s:2:9: error: server.port: value '99999' out of range [0, 65535]", path);
    bb_expect_contains("port range", out, want);
    snprintf(want, sizeof(want), "%s:3:3: error: server: unknown key 'colour'", path);
    bb_expect_contains("unknown key", out, want);
    snprintf(want, sizeof(want), "%s:9:13: error: record 'A 192.0.2.300':", path);
    bb_expect_contains("bad A record", out, want);
    snprintf(want, sizeof(want), "%s:10:15: error: 'alias.example.test.' has a CNAME and other data", path);
    bb_expect_contains("CNAME and other data", out, want);
    snprintf(want, sizeof(want), "%s:11:7: error: zones[\"example.test\"].records: owner 'out.example.org.' is outside zone 'example.test.'", path);
    bb_expect_contains("out of zone", out, want);
    snprintf(want, sizeof(want), "%s:13:13: error: zone 'example.test.' is defined twice", path);
    bb_expect_contains("duplicate zone", out, want);

    /* serve refuses a bad file and never says ready. */
    const char *serve_bad[] = {"steerdns", "serve", "-c", path, NULL};
    BB_EXPECT_INT("serve bad: exit", bb_run(out, sizeof(out), serve_bad), 1);
    if (strstr(out, "ready"))
        fail_msg("serve printed ready for an invalid file:\n%s", out);

    const char *missing[] = {"steerdns", "check", "-c", "/nonexistent/x.yaml", NULL};
    BB_EXPECT_INT("check missing file: exit", bb_run(out, sizeof(out), missing), 1);
    bb_expect_contains("missing file", out, "/nonexistent/x.yaml: error: cannot open");
    bb_stop(&b);
}

/* explain: bad arguments are usage errors (exit 2), asked of a running
 * server as much as offline; good ones exit 0. */
static void test_explain_exit_status(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "  control: @DIR@/ctl.sock\n"
                      "zones:\n"
                      "  - {origin: example.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\", www: \"A 192.0.2.10\"}}\n");
    static const struct {
        const char *client, *name, *type;
        int want;
        const char *says;
    } t[] = {
        {"198.18.0.1", "www.example.test", NULL, 0, "192.0.2.10"},
        {"198.18.0.0/24", "www.example.test", "AAAA", 0, "answer: rcode NOERROR"},
        {"bogus", "www.example.test", NULL, 2, "error: client 'bogus' is not an address"},
        {"198.18.0.1", "www.example.test", "BOGUSTYPE", 2, "error: unknown type 'BOGUSTYPE'"},
    };
    for (int offline = 0; offline < 2; offline++) {
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            const char *args[10] = {"steerdns", "explain", "-c", b.config, "--client", t[i].client,
                                    t[i].name};
            int n = 7;
            if (t[i].type)
                args[n++] = t[i].type;
            if (offline)
                args[n++] = "--offline";
            args[n] = NULL;
            char out[16384], what[256];
            int st = bb_run(out, sizeof(out), args);
            snprintf(what, sizeof(what), "explain%s --client %s %s %s: exit", offline ? " --offline" : "",
                     t[i].client, t[i].name, t[i].type ? t[i].type : "");
            if (st != t[i].want)
                fail_msg("%s: expected %d, got %d; output:\n%s", what, t[i].want, st, out);
            bb_expect_contains(what, out, t[i].says);
            /* Asked of the running server, or built here. */
            if (offline)
                bb_expect_contains(what, out, "offline: built from");
            else if (strstr(out, "offline:"))
                fail_msg("%s: the running server was not asked:\n%s", what, out);
        }
    }
    bb_stop(&b);
}

static void test_help_version(void **state)
{
    (void)state;
    char out[4096];
    const char *v[] = {"steerdns", "--version", NULL};
    BB_EXPECT_INT("--version exit", bb_run(out, sizeof(out), v), 0);
    bb_expect_contains("--version", out, "steerdns ");
    const char *h[] = {"steerdns", "--help", NULL};
    BB_EXPECT_INT("--help exit", bb_run(out, sizeof(out), h), 0);
    bb_expect_contains("--help", out, "serve -c FILE");
    const char *x[] = {"steerdns", "frobnicate", NULL};
    BB_EXPECT_INT("unknown command exit", bb_run(out, sizeof(out), x), 2);
}

static void test_import_and_include(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, HEAD "zones:\n"
                        "  - import: legacy.zone\n"
                        "    origin: legacy.test\n"
                        "    records:\n"
                        "      extra: \"TXT added-in-yaml\"\n"
                        "  - include: zones.d/*.yaml\n");
    bb_write(&b, "legacy.zone",
             "$ORIGIN legacy.test.\n"
             "$TTL 600\n"
             "@   IN SOA ns1 hostmaster ( 2024010101 3600 600\n"
             "                            604800 300 )\n"
             "    IN NS ns1\n"
             "ns1 IN A 192.0.2.1\n"
             "www 120 IN A 192.0.2.80\n"
             "    IN AAAA 2001:db8::80\n");
    bb_write(&b, "zones.d/one.yaml",
             "origin: one.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords: {ns1: \"A 192.0.2.1\", www: \"A 192.0.2.11\"}\n");
    /* A resolver plugin in an included file: its YAML must outlive the
     * load (regression: it was freed with the loader's scratch). */
    bb_write(&b, "zones.d/two.yaml",
             "origin: two.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords: {ns1: \"A 192.0.2.1\", www: \"A 192.0.2.22\", app: {static: [192.0.2.23]}}\n");
    bb_launch(&b);
    struct {
        const char *name, *type, *want;
    } t[] = {
        {"www.legacy.test.", "A", "192.0.2.80"},
        {"www.legacy.test.", "AAAA", "2001:db8::80"},
        {"extra.legacy.test.", "TXT", "\"added-in-yaml\""},
        {"www.one.test.", "A", "192.0.2.11"},
        {"www.two.test.", "A", "192.0.2.22"},
        {"app.two.test.", "A", "192.0.2.23"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ldns_pkt *p = bb_query(&b, t[i].name, t[i].type, NULL);
        char got[256];
        bb_rdata(ldns_pkt_answer(p), got, sizeof(got));
        BB_EXPECT_STR(t[i].name, got, t[i].want);
        if (i == 0)
            BB_EXPECT_INT("TTL from the master file", ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)), 120);
        ldns_pkt_free(p);
    }
    bb_stop(&b);

    /* A broken master file: every bad line, with its line number. */
    bb_prepare(&b, HEAD "zones:\n  - import: broken.zone\n    origin: broken.test\n");
    bb_write(&b, "broken.zone",
             "$TTL 600\n"
             "@   IN SOA ns1 hostmaster 1 3600 600 604800 300\n"
             "    IN NS ns1\n"
             "ns1 IN A 192.0.2.1\n"
             "bad IN A 999.0.0.1\n"
             "ok  IN A 192.0.2.2\n"
             "bad2 IN BOGUSTYPE foo\n");
    char out[8192];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("check broken master file: exit", bb_run(out, sizeof(out), args), 1);
    char want[400];
    snprintf(want, sizeof(want), "%s/broken.zone:5:1: error:", b.dir);
    bb_expect_contains("bad A in master file", out, want);
    snprintf(want, sizeof(want), "%s/broken.zone:7:1: error:", b.dir);
    bb_expect_contains("bad type in master file", out, want);
    bb_stop(&b);
}

/* Listening on the wildcard addresses (the default): an answer comes from
 * the address that was asked (IP_PKTINFO), else a connected client would
 * never see it. */
static void test_wildcard_listen(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, "server: {port: 0, workers: 2}\n"
                 "zones:\n"
                 "  - {origin: w.test, soa: \"ns1 h 1 1 1 1 1\", ns: [ns1], records: {ns1: \"A 192.0.2.1\", www: \"A 192.0.2.2\"}}\n");
    const char *targets[] = {"127.0.0.1", "127.0.0.2", "127.3.4.5"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(b.port)};
        inet_pton(AF_INET, targets[i], &dst.sin_addr);
        /* Connected: the kernel drops a reply from any other address. */
        assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
        uint8_t q[512], a[512];
        size_t l = bb_build("www.w.test.", "A", NULL, q, sizeof(q));
        assert_int_equal(send(fd, q, l, 0), (ssize_t)l);
        struct pollfd p = {fd, POLLIN, 0};
        int ok = poll(&p, 1, 2000) > 0 && recv(fd, a, sizeof(a), 0) > 12;
        close(fd);
        if (!ok)
            fail_msg("no answer from %s: the reply must come from the address asked", targets[i]);
    }
    bb_stop(&b);
}

/* Configured size limits refuse oversized input with a clear error. */
static void test_config_limits(void **state)
{
    (void)state;
    bb_t b;
    bb_prepare(&b, HEAD "  max_config_bytes: 4096\n"
                        "  max_zones: 1\n"
                        "zones:\n"
                        "  - include: zones.d/*.yaml\n");
    char big[8192] = "origin: big.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords:\n";
    for (int i = 0; strlen(big) < 6000; i++) {
        char line[64];
        snprintf(line, sizeof(line), "  h%d: \"A 192.0.2.%d\"\n", i, i % 250);
        strcat(big, line);
    }
    bb_write(&b, "zones.d/a-big.yaml", big);
    bb_write(&b, "zones.d/b.yaml", "origin: b.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords: {ns1: \"A 192.0.2.1\"}\n");
    bb_write(&b, "zones.d/c.yaml", "origin: c.test\nsoa: \"ns1 h 1 1 1 1 1\"\nns: [ns1]\nrecords: {ns1: \"A 192.0.2.1\"}\n");
    char out[8192], want[600];
    const char *args[] = {"steerdns", "check", "-c", b.config, NULL};
    BB_EXPECT_INT("check with oversized input: exit", bb_run(out, sizeof(out), args), 1);
    snprintf(want, sizeof(want), "%s/zones.d/a-big.yaml: error: file larger than the limit of 4096 bytes", b.dir);
    bb_expect_contains("max_config_bytes", out, want);
    bb_expect_contains("max_zones", out, "more than 1 zones (the limit)");
    bb_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_idle_timeout),
        cmocka_unit_test(test_tcp_idle_timeout_dribble),
        cmocka_unit_test(test_tcp_connection_cap),
        cmocka_unit_test(test_tcp_connection_cap_workers),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_explain_exit_status),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_import_and_include),
        cmocka_unit_test(test_config_limits),
        cmocka_unit_test(test_wildcard_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
