/*
 * fuzz_query.c - libFuzzer target for the whole query path: bytes in,
 * answer out, against a snapshot with static names, a CNAME chain, a
 * wildcard, a delegation with glue, an empty non-terminal and a large
 * RRset.  Any input must give a well-formed answer or nothing; never a
 * crash, a hang or a read out of bounds.  Every input is tried over UDP
 * and over TCP.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolver/answer.h"
#include "resolver/snap.h"

static snap_t *snap;

static const char config[] =
    "server: {listen: [127.0.0.1], port: 0, workers: 1}\n"
    "zones:\n"
    "  - origin: example.test\n"
    "    soa: \"ns1 hostmaster 1 3600 600 604800 120\"\n"
    "    ns: [ns1, ns2]\n"
    "    records:\n"
    "      ns1: [\"A 192.0.2.1\", \"AAAA 2001:db8::1\"]\n"
    "      ns2: \"A 192.0.2.2\"\n"
    "      www: [\"A 192.0.2.80\", \"AAAA 2001:db8::80\", \"TXT hello\"]\n"
    "      alias: \"CNAME www\"\n"
    "      chain: \"CNAME alias\"\n"
    "      loop1: \"CNAME loop2\"\n"
    "      loop2: \"CNAME loop1\"\n"
    "      \"*.wild\": \"A 192.0.2.99\"\n"
    "      a.b.ent: \"A 192.0.2.7\"\n"
    "      child: [\"NS ns1.child\", \"NS ns.other.net.\"]\n"
    "      ns1.child: \"A 192.0.2.53\"\n"
    "      mx: \"MX 10 mail\"\n"
    "      mail: \"A 192.0.2.25\"\n"
    "      big: [\"TXT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"TXT bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\", \"TXT cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"]\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[] = "/tmp/steerdns-fuzz-query-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0 || write(fd, config, sizeof(config) - 1) != (ssize_t)(sizeof(config) - 1))
        abort();
    close(fd);
    diag_list_t d;
    diag_init(&d);
    if (snap_build(path, &d, &snap) != 0) {
        diag_print(&d, stderr);
        abort();
    }
    diag_clear(&d);
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static answer_txn_t txn;
    static uint8_t out[65535];
    answer_client_t client = {.addr = {.family = 4, .bits = 32, .addr = {192, 0, 2, 200}}};
    for (int tcp = 0; tcp < 2; tcp++) {
        client.tcp = tcp;
        size_t n = answer_respond(&snap->env, data, size, &client, &txn, out, tcp ? 65535 : 4096);
        if (n > (tcp ? 65535u : 4096u))
            abort();
        if (n > 0 && (n < 12 || !(out[2] & 0x80)))
            abort(); /* every answer has a header with QR set */
        if (n > 0 && size >= 2 && (out[0] != data[0] || out[1] != data[1]))
            abort(); /* and the query's ID */
    }
    return 0;
}
