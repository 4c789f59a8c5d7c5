/*
 * fuzz_config.c - libFuzzer target for the configuration loader: bytes ->
 * a snapshot or diagnostics, through the same snap_build as check, serve
 * and reload.  Never a crash, a hang or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolver/snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "/tmp/steerdns-fuzz-config-%d.yaml", (int)getpid());
    }
    /* Keep include/import from reading the machine's files. */
    if (memmem(data, size, "include", 7) || memmem(data, size, "import", 6))
        return 0;
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    diag_list_t d;
    diag_init(&d);
    snap_t *s = NULL;
    if (snap_build(path, &d, &s) == 0)
        snap_free(s);
    diag_clear(&d);
    return 0;
}
