/*
 * test_hardening.c - black-box tests of the defences: response rate
 * limiting over the wire (a flood from one prefix is limited, another
 * prefix is not, TCP still answers), the TCP per-connection query cap and
 * query size limit, slow readers that never read their answers, the
 * control socket's mode, dropping privileges to server.user, and check
 * refusing unknown users and groups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bb.h"

#define HEAD                                                                                     \
    "server:\n"                                                                                  \
    "  listen: [127.0.0.1]\n"                                                                    \
    "  port: 0\n"                                                                                \
    "  workers: 1\n"

#define ZONE                                                                                     \
    "zones:\n"                                                                                   \
    "  - origin: example.test\n"                                                                 \
    "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"                                        \
    "    ns: [ns1]\n"                                                                            \
    "    records:\n"                                                                             \
    "      ns1: \"A 192.0.2.1\"\n"                                                               \
    "      www: \"A 192.0.2.80\"\n"                                                              \
    "      big: [\"TXT " BIGTXT "\", \"TXT 1" BIGTXT "\", \"TXT 2" BIGTXT "\", \"TXT 3" BIGTXT "\"]\n"

#define BIGTXT                                                                                   \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* Send n queries (with EDNS) for name from source as fast as possible on
 * one socket; count answers with records, empty TC answers, and silence,
 * and the TC answers that are not NOERROR with the question and our OPT
 * record alone (RFC 6891 section 6.1.1). */
typedef struct flood {
    int full, slipped, other, bad_slip;
} flood_t;

static flood_t flood(const bb_t *b, const char *source, const char *name, int n)
{
    flood_t f = {0};
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons(b->port);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
        fail_msg("bind %s: %s", source, strerror(errno));
    connect(fd, (struct sockaddr *)&dst, sizeof(dst));
    uint8_t q[512], a[4096];
    for (int i = 0; i < n; i++) {
        size_t l = bb_build(name, "A", NULL, q, sizeof(q));
        send(fd, q, l, 0);
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 500) <= 0)
            break; /* no answer for 0.5 s after the last: the rest were dropped */
        ssize_t r = recv(fd, a, sizeof(a), 0);
        if (r < 12)
            continue;
        int an = (a[6] << 8) | a[7];
        if (an > 0)
            f.full++;
        else if (a[2] & 0x02) {
            f.slipped++;
            int qd = (a[4] << 8) | a[5], ns = (a[8] << 8) | a[9], ar = (a[10] << 8) | a[11];
            /* the question ends 4 bytes after its name; OPT is a root name, then type 41 */
            size_t qend = 12;
            while (qend < (size_t)r && a[qend] != 0)
                qend += (size_t)a[qend] + 1;
            qend += 5;
            bool opt = qend + 3 <= (size_t)r && a[qend] == 0 && a[qend + 1] == 0 && a[qend + 2] == 41;
            if ((a[3] & 0x0f) != 0 || qd != 1 || ns != 0 || ar != 1 || !opt)
                f.bad_slip++;
        } else
            f.other++;
    }
    close(fd);
    return f;
}

static void test_rrl(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "  control: @DIR@/ctl.sock\n"
                      "  rrl: {rate: 5, window: 2s, slip: 2}\n" ZONE);
    flood_t f = flood(&b, "127.0.0.1", "www.example.test.", 60);
    /* 5 per second (plus at most one more second's credit if the flood
     * straddles a second boundary); of the rest, every second one slips. */
    if (f.full < 5 || f.full > 10)
        fail_msg("flood from one prefix: expected 5-10 full answers, got %d", f.full);
    int limited = 60 - f.full;
    if (f.slipped < limited / 2 - 2 || f.slipped > limited / 2 + 2)
        fail_msg("flood: expected about %d truncated (slip 2), got %d", limited / 2, f.slipped);
    BB_EXPECT_INT("other answers", f.other, 0);
    BB_EXPECT_INT("slipped answers without NOERROR, the question and OPT", f.bad_slip, 0);
    /* Another /24 is not affected. */
    flood_t g = flood(&b, "127.0.9.1", "www.example.test.", 3);
    BB_EXPECT_INT("another prefix: full answers", g.full, 3);
    /* TCP is never limited. */
    bb_q_t o = {.tcp = true};
    for (int i = 0; i < 5; i++) {
        ldns_pkt *p = bb_query(&b, "www.example.test.", "A", &o);
        assert_non_null(p);
        BB_EXPECT_INT("TCP answer count while limited", ldns_pkt_ancount(p), 1);
        ldns_pkt_free(p);
    }
    /* The counters say so. */
    char out[8192];
    bb_control(&b, "status", out, sizeof(out));
    char want[64];
    snprintf(want, sizeof(want), "slipped=%d", f.slipped);
    if (strstr(out, "rrl rate=5/s") == NULL || strstr(out, want) == NULL)
        fail_msg("status: expected rrl counters with %s in\n%s", want, out);
    /* A slipped NXDOMAIN is a plain truncated NOERROR too (no rcode
     * without its SOA). */
    flood_t nx = flood(&b, "127.0.7.1", "nothing-here.example.test.", 40);
    if (nx.slipped == 0)
        fail_msg("NXDOMAIN flood: expected some truncated answers");
    BB_EXPECT_INT("slipped NXDOMAIN answers without NOERROR, the question and OPT", nx.bad_slip, 0);
    bb_stop(&b);
}

static void test_tcp_query_cap(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "  tcp: {max_queries: 3}\n" ZONE);
    int fd = bb_tcp_connect(&b);
    uint8_t all[2048];
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        uint8_t q[512];
        size_t l = bb_build("www.example.test.", "A", NULL, q, sizeof(q));
        all[off++] = (uint8_t)(l >> 8);
        all[off++] = (uint8_t)l;
        memcpy(all + off, q, l);
        off += l;
    }
    assert_int_equal(send(fd, all, off, 0), (ssize_t)off);
    int got = 0;
    uint8_t a[4096];
    while (bb_tcp_recv(fd, a, sizeof(a), 2000) > 0)
        got++;
    BB_EXPECT_INT("answers before the connection closed (max_queries 3)", got, 3);
    close(fd);
    bb_stop(&b);
}

/* A query for www.example.test padded to exactly size bytes with an
 * unknown EDNS option (ignored by the server, RFC 6891 section 6.1.2). */
static size_t padded_query(size_t size, uint8_t *out)
{
    bb_q_t o = {.no_edns = true};
    size_t p = bb_build("www.example.test.", "A", &o, out, size);
    size_t pad = size - p - 11 - 4; /* OPT RR header, option header */
    out[11] = 1;                    /* ARCOUNT */
    const uint8_t opt[] = {0, 0, 41, 0x10, 0x00, 0, 0, 0, 0,
                           (uint8_t)((pad + 4) >> 8), (uint8_t)(pad + 4),
                           0xfd, 0xe9, (uint8_t)(pad >> 8), (uint8_t)pad};
    memcpy(out + p, opt, sizeof(opt));
    p += sizeof(opt);
    memset(out + p, 'x', pad);
    return p + pad;
}

/* The documented query size limit holds over TCP: DNS messages of up to
 * 4096 bytes (the 2-byte length prefix is extra) are answered, a larger
 * one closes the connection. */
static void test_tcp_query_size(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD ZONE);
    static const size_t ok[] = {512, 4094, 4095, 4096};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint8_t q[4200], a[4096];
        size_t l = padded_query(ok[i], q);
        BB_EXPECT_INT("padded query size", l, ok[i]);
        int fd = bb_tcp_connect(&b);
        assert_true(bb_tcp_send(fd, q, l));
        int n = bb_tcp_recv(fd, a, sizeof(a), 2000);
        if (n < 12)
            fail_msg("a %zu-byte query over TCP: expected an answer, got none (%d)", ok[i], n);
        BB_EXPECT_INT("rcode of the padded query", a[3] & 0x0f, 0);
        BB_EXPECT_INT("answers to the padded query", (a[6] << 8) | a[7], 1);
        close(fd);
    }
    /* 4097 bytes: over the limit, the connection is closed unanswered. */
    uint8_t q[4200];
    size_t l = padded_query(4097, q);
    int fd = bb_tcp_connect(&b);
    (void)bb_tcp_send(fd, q, l); /* the server may close before it has all */
    if (!bb_tcp_closed_within(fd, 2000))
        fail_msg("a 4097-byte query over TCP: expected the connection closed, it stayed open");
    close(fd);
    bb_stop(&b);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void test_slow_readers(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "  control: @DIR@/ctl.sock\n"
                      "  tcp: {max_connections: 200, idle_timeout: 30s}\n" ZONE);
    long rss0 = rss_kb(b.pid);
    /* 80 clients each pipeline 300 queries with 1.7 KB answers and never
     * read: far more than socket buffers hold. */
    enum { NC = 80, NQ = 300 };
    int fds[NC];
    uint8_t q[512];
    size_t l = bb_build("big.example.test.", "TXT", NULL, q, sizeof(q));
    static uint8_t burst[NQ * 600];
    size_t off = 0;
    for (int i = 0; i < NQ; i++) {
        burst[off++] = (uint8_t)(l >> 8);
        burst[off++] = (uint8_t)l;
        memcpy(burst + off, q, l);
        off += l;
    }
    for (int i = 0; i < NC; i++) {
        fds[i] = bb_tcp_connect(&b);
        int small = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        /* Non-blocking send: whatever the server does not take is fine. */
        (void)send(fds[i], burst, off, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    /* The server stays responsive... */
    for (int i = 0; i < 20; i++) {
        ldns_pkt *p = bb_query(&b, "www.example.test.", "A", NULL);
        if (p == NULL)
            fail_msg("no UDP answer while %d TCP clients do not read", NC);
        ldns_pkt_free(p);
    }
    /* ... its memory stays bounded (the parked-answer pool is fixed)... */
    long rss1 = rss_kb(b.pid);
    if (rss1 - rss0 > 64 * 1024)
        fail_msg("RSS grew by %ld kB with slow readers (from %ld to %ld)", rss1 - rss0, rss0, rss1);
    /* ... and once the 64 parked buffers are taken, further slow readers
     * lose their connection. */
    char out[8192];
    bb_control(&b, "status", out, sizeof(out));
    const char *cs = strstr(out, "closed_slow=");
    if (cs == NULL || atoi(cs + strlen("closed_slow=")) < NC - 64)
        fail_msg("expected at least %d slow readers closed:\n%s", NC - 64, out);
    for (int i = 0; i < NC; i++)
        close(fds[i]);
    bb_stop(&b);
}

/* The control socket (status, explain) is the owner's only: 0600, a
 * socket, whatever the umask steerdns was started with. */
static void test_control_socket_mode(void **state)
{
    (void)state;
    bb_t b;
    bb_start(&b, HEAD "  control: @DIR@/ctl.sock\n" ZONE);
    char path[400];
    snprintf(path, sizeof(path), "%s/ctl.sock", b.dir);
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        fail_msg("%s is not a socket (mode %o)", path, (unsigned)st.st_mode);
    if ((st.st_mode & 07777) != 0600)
        fail_msg("control socket permissions: expected 0600, got 0%o", (unsigned)(st.st_mode & 07777));
    char out[4096];
    bb_control(&b, "status", out, sizeof(out));
    bb_expect_contains("status over the 0600 socket", out, "generation 1");
    bb_stop(&b);
}

static void test_user(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    bb_t b;
    bb_start(&b, HEAD "  user: nobody\n" ZONE);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)b.pid);
    FILE *f = fopen(path, "r");
    unsigned ruid = 0, euid = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2)
            break;
    fclose(f);
    if (ruid == 0 || euid == 0)
        fail_msg("still root after server.user: nobody (uid %u/%u)", ruid, euid);
    ldns_pkt *p = bb_query(&b, "www.example.test.", "A", NULL);
    BB_EXPECT_RCODE(p, "NOERROR");
    ldns_pkt_free(p);
    /* A reload still works as the user (the config is readable). */
    bb_stop(&b);

    /* An unknown user: refuse to start rather than keep root. */
    bb_prepare(&b, HEAD "  user: no-such-user-xyz\n" ZONE);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s serve -c %s > /dev/null 2>&1", STEERDNS_BIN, b.config);
    int st = system(cmd);
    BB_EXPECT_INT("serve with an unknown user: exit status", WEXITSTATUS(st), 1);
    bb_stop(&b);
}

/* check refuses what serve would: server.user and server.group must name
 * accounts of this host, and server.group needs server.user; each error at
 * its value, with the same message serve gives. */
static void test_user_group_check(void **state)
{
    (void)state;
    struct passwd *me = getpwuid(geteuid());
    struct group *mygroup = getgrgid(getegid());
    assert_non_null(me);
    assert_non_null(mygroup);
    char user[64], group[64];
    snprintf(user, sizeof(user), "%s", me->pw_name);
    snprintf(group, sizeof(group), "%s", mygroup->gr_name);
    char conf[4096];
    static const struct {
        const char *server; /* lines 5.. of the server section */
        const char *pos, *msg; /* expected diagnostic: FILE:pos: error: msg */
    } t[] = {
        {"  user: nosuchuserxyz\n", "5:9", "server.user: no such user 'nosuchuserxyz'"},
        {"  user: @ME@\n  group: nosuchgroupxyz\n",
         "6:10", "server.group: no such group 'nosuchgroupxyz'"},
        {"  group: @GROUP@\n",
         "5:10", "server.group: set without server.user (the group is applied only when dropping privileges to server.user)"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char section[256];
        snprintf(section, sizeof(section), "%s", t[i].server);
        char *m = strstr(section, "@ME@");
        if (m) {
            char rest[256];
            snprintf(rest, sizeof(rest), "%s", m + 4);
            snprintf(m, sizeof(section) - (size_t)(m - section), "%s%s", user, rest);
        }
        m = strstr(section, "@GROUP@");
        if (m) {
            char rest[256];
            snprintf(rest, sizeof(rest), "%s", m + 7);
            snprintf(m, sizeof(section) - (size_t)(m - section), "%s%s", group, rest);
        }
        snprintf(conf, sizeof(conf), HEAD "%s" ZONE, section);
        bb_t b;
        bb_prepare(&b, conf);
        char out[8192], want[512];
        snprintf(want, sizeof(want), "%s:%s: error: %s", b.config, t[i].pos, t[i].msg);
        const char *check[] = {"steerdns", "check", "-c", b.config, NULL};
        BB_EXPECT_INT("check: exit", bb_run(out, sizeof(out), check), 1);
        bb_expect_contains("check", out, want);
        bb_expect_contains("check", out, ": 1 error(s)");
        /* serve refuses the same file with the same words (as a log line
         * whose level says error). */
        const char *serve[] = {"steerdns", "serve", "-c", b.config, NULL};
        BB_EXPECT_INT("serve: exit", bb_run(out, sizeof(out), serve), 1);
        snprintf(want, sizeof(want), "error: %s:%s: %s", b.config, t[i].pos, t[i].msg);
        bb_expect_contains("serve", out, want);
        bb_stop(&b);
    }
    /* The user with its own group is fine for check. */
    snprintf(conf, sizeof(conf), HEAD "  user: %s\n  group: %s\n" ZONE, user, group);
    bb_t b;
    bb_prepare(&b, conf);
    char out[8192];
    const char *check[] = {"steerdns", "check", "-c", b.config, NULL};
    if (bb_run(out, sizeof(out), check) != 0)
        fail_msg("check with user %s and group %s: expected exit 0:\n%s", user, group, out);
    bb_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rrl),
        cmocka_unit_test(test_tcp_query_cap),
        cmocka_unit_test(test_tcp_query_size),
        cmocka_unit_test(test_slow_readers),
        cmocka_unit_test(test_control_socket_mode),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_user_group_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
