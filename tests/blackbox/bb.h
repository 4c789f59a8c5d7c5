/*
 * bb.h - the black-box test harness: run the real steerdns binary on an
 * ephemeral loopback port with a temporary configuration and talk to it
 * over the wire (UDP and TCP) with ldns as the client.
 *
 * bb_start writes the configuration into a fresh temporary folder, starts
 * `steerdns serve`, and waits (with a deadline, never a fixed sleep) for the
 * ready line that names the port.  bb_stop sends SIGTERM to that PID only
 * and checks the exit status.  Every failing check prints what was expected
 * and what came back.
 */
#ifndef STEERDNS_TESTS_BB_H
#define STEERDNS_TESTS_BB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ldns/ldns.h>

typedef struct bb {
    pid_t pid;
    uint16_t port;
    char dir[256];    /* temporary folder holding the config */
    char config[320]; /* path of the main config file */
    char log[320];    /* the server's stderr */
    int out_fd;       /* the server's stdout (ready line) */
} bb_t;

/* Write a file (path relative to the test's folder). */
void bb_write(const bb_t *b, const char *rel, const char *text);

/* Prepare a folder and write the main config text, without starting.  In
 * every text written (bb_write too), @DIR@ stands for the folder and
 * @SHARED@ for the shared test data folder. */
void bb_prepare(bb_t *b, const char *config_text);

/* Start the server on the prepared folder; fails the test when it does not
 * become ready within the deadline. */
void bb_launch(bb_t *b);

/* bb_prepare + bb_launch. */
void bb_start(bb_t *b, const char *config_text);

/* SIGTERM, wait for a clean exit (status 0), remove the folder. */
void bb_stop(bb_t *b);

/* Replace the config and send SIGHUP; wait until the log says the reload
 * succeeded (want_ok) or failed.  Returns true when it did what was
 * wanted. */
bool bb_reload(bb_t *b, const char *config_text, bool want_ok);

/* Count occurrences of a string in the server's log so far. */
int bb_log_count(const bb_t *b, const char *needle);
/* Wait until the log holds needle at least n times (deadline ms). */
bool bb_log_wait(const bb_t *b, const char *needle, int n, int deadline_ms);

/* Query options. */
typedef struct bb_q {
    bool tcp;
    bool no_edns;      /* no OPT record */
    uint16_t udp_size; /* EDNS payload size (default 1232) */
    uint8_t edns_version;
    bool do_bit;
    bool rd;
    const char *ecs;   /* "198.18.0.0/24" */
    const char *source; /* client source address, e.g. "127.0.1.1" */
    uint16_t extra_opt_code; /* an unknown option to add, 0 = none */
} bb_q_t;

/* Send a query and parse the answer; NULL on timeout (1 s, one retry). */
ldns_pkt *bb_query(const bb_t *b, const char *name, const char *type, const bb_q_t *o);

/* Raw exchange: send bytes, return the answer length (or -1 on timeout
 * after timeout_ms). */
int bb_raw_udp(const bb_t *b, const void *msg, size_t len, uint8_t *ans, size_t anssize,
               int timeout_ms);

/* Build the wire form of a query (for raw tests); returns the length. */
size_t bb_build(const char *name, const char *type, const bb_q_t *o, uint8_t *out, size_t size);

/* TCP: connect to the server (blocking socket, 2 s timeouts). */
int bb_tcp_connect(const bb_t *b);
/* Send one framed message / read one framed message (-1 on EOF/timeout). */
bool bb_tcp_send(int fd, const void *msg, size_t len);
int bb_tcp_recv(int fd, uint8_t *buf, size_t size, int timeout_ms);

/* True when the server closed fd (EOF or reset, without sending anything)
 * within ms. */
bool bb_tcp_closed_within(int fd, int ms);

/* Run the steerdns binary with args (args[0] is the program name); capture
 * stdout and stderr into out; return the exit status (-1 on a signal). */
int bb_run(char *out, size_t size, const char *const *args);
/* Start it with stdout and stderr on a pipe (*out_fd, the read end);
 * returns its PID. */
pid_t bb_spawn(const char *const *args, int *out_fd);

/* Send one command line to the server's control socket (the config must
 * set `control: @DIR@/ctl.sock`) and read the reply into out. */
void bb_control(const bb_t *b, const char *cmd, char *out, size_t size);

/* True when this host has IPv6 loopback (::1); tests of IPv6 transport
 * are skipped without it. */
bool bb_have_ipv6(void);

/* Monotonic milliseconds, for deadlines. */
long long bb_now_ms(void);

/* Fail, printing both, unless text contains needle. */
void bb_expect_contains(const char *what, const char *text, const char *needle);

/* Answer helpers. */
const char *bb_rcode(const ldns_pkt *p);
/* The answer section's RDATA as one string "a b c" (presentation of each
 * RR's rdata, in order). */
void bb_rdata(const ldns_rr_list *l, char *out, size_t size);
/* The ECS option of a reply: "addr/source/scope", or "" */
void bb_ecs(const ldns_pkt *p, char *out, size_t size);

/* cmocka-friendly checks with expected/actual output. */
#define BB_EXPECT_RCODE(p, want)                                                                 \
    do {                                                                                          \
        const char *got_ = bb_rcode(p);                                                           \
        if (strcmp(got_, (want)) != 0) {                                                          \
            fail_msg("%s:%d: rcode: expected %s, got %s", __FILE__, __LINE__, (want), got_);      \
        }                                                                                         \
    } while (0)

#define BB_EXPECT_STR(what, got, want)                                                           \
    do {                                                                                          \
        if (strcmp((got), (want)) != 0)                                                           \
            fail_msg("%s:%d: %s: expected '%s', got '%s'", __FILE__, __LINE__, (what), (want),    \
                     (got));                                                                      \
    } while (0)

#define BB_EXPECT_INT(what, got, want)                                                           \
    do {                                                                                          \
        long long g_ = (long long)(got), w_ = (long long)(want);                                  \
        if (g_ != w_)                                                                             \
            fail_msg("%s:%d: %s: expected %lld, got %lld", __FILE__, __LINE__, (what), w_, g_);   \
    } while (0)

#endif
