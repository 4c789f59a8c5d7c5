/*
 * main.c - the steerdns command line: serve, check, --help, --version.
 *
 * `serve` builds the first snapshot, binds the sockets, starts the workers
 * and then runs the main libuv loop, which owns the control plane: signals
 * (SIGHUP reloads, SIGTERM/SIGINT stop), snapshot builds in the thread pool,
 * and freeing retired snapshots once every worker has passed them.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/log.h"
#include "resolver/server.h"
#include "resolver/snap.h"

#define RETIRE_MAX 64

typedef struct retired {
    snap_t *snap;
    uint64_t epoch;
} retired_t;

typedef struct app {
    uv_loop_t *loop;
    const char *config;
    server_t *srv;
    uv_signal_t sighup, sigterm, sigint;
    uv_timer_t reclaim;
    uv_work_t work;
    bool building, again, stopping;
    /* The build in the thread pool fills these. */
    snap_t *built;
    diag_list_t build_diags;
    int build_rc;
    uint64_t generation;
    retired_t retired[RETIRE_MAX];
    size_t nretired;
} app_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: steerdns <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve -c FILE     serve the configuration in FILE (foreground, logs to stderr)\n"
            "  check -c FILE     validate FILE and everything it names; print every problem as\n"
            "                    file:line:column: message; exit 0 when valid, 1 otherwise\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   the main configuration file\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n"
            "\n"
            "signals (serve): SIGHUP reloads the configuration (an invalid one is refused and\n"
            "the running one keeps serving); SIGTERM and SIGINT stop.\n");
}

static void print_diags(const diag_list_t *d, FILE *f)
{
    diag_print(d, f);
}

static void log_diags(const diag_list_t *d)
{
    char line[2048];
    for (size_t i = 0; i < d->n; i++) {
        diag_format(&d->items[i], line, sizeof(line));
        if (d->items[i].severity == DIAG_ERROR)
            log_err("%s", line);
        else
            log_warn("%s", line);
    }
}

/* ---- reload ---- */

static void build_work(uv_work_t *req)
{
    app_t *app = req->data;
    diag_init(&app->build_diags);
    app->built = NULL;
    app->build_rc = snap_build(app->config, &app->build_diags, &app->built);
}

static void reclaim_cb(uv_timer_t *t);

static void retire(app_t *app, snap_t *old, uint64_t epoch)
{
    if (app->nretired == RETIRE_MAX) {
        /* Cannot happen in practice (a batch lasts microseconds); wait for
         * the oldest rather than leak. */
        while (!server_passed(app->srv, app->retired[0].epoch))
            uv_sleep(1);
    }
    if (app->nretired == RETIRE_MAX) {
        snap_free(app->retired[0].snap);
        memmove(app->retired, app->retired + 1, (RETIRE_MAX - 1) * sizeof(retired_t));
        app->nretired--;
    }
    app->retired[app->nretired++] = (retired_t){old, epoch};
    uv_timer_start(&app->reclaim, reclaim_cb, 5, 5);
}

static void reclaim_cb(uv_timer_t *t)
{
    app_t *app = t->data;
    size_t k = 0;
    for (size_t i = 0; i < app->nretired; i++) {
        if (server_passed(app->srv, app->retired[i].epoch))
            snap_free(app->retired[i].snap);
        else
            app->retired[k++] = app->retired[i];
    }
    app->nretired = k;
    if (k == 0)
        uv_timer_stop(t);
}

static void start_build(app_t *app);

static void build_done(uv_work_t *req, int status)
{
    app_t *app = req->data;
    app->building = false;
    if (status == UV_ECANCELED || app->stopping) {
        snap_free(app->built);
        diag_clear(&app->build_diags);
        return;
    }
    snap_t *cur = server_current(app->srv);
    if (app->build_rc != 0) {
        log_diags(&app->build_diags);
        log_err("reload of %s failed with %zu error(s); still serving generation %llu",
                app->config, app->build_diags.errors, (unsigned long long)cur->generation);
    } else {
        log_diags(&app->build_diags);
        snap_t *s = app->built;
        s->generation = ++app->generation;
        if (!snap_same_listeners(cur, s))
            log_warn("reload: listen addresses, port and workers take effect only after a restart");
        snap_t *old;
        uint64_t epoch = server_publish(app->srv, s, &old);
        retire(app, old, epoch);
        log_info("reloaded %s: generation %llu, %zu zone(s), built in %zu ms", app->config,
                 (unsigned long long)s->generation, zones_count(s->zones), s->build_ms);
    }
    app->built = NULL;
    diag_clear(&app->build_diags);
    if (app->again) {
        app->again = false;
        start_build(app);
    }
}

static void start_build(app_t *app)
{
    if (app->building) {
        /* A SIGHUP during a build: build again once this one is done, so
         * the newest file is the one that ends up served. */
        app->again = true;
        return;
    }
    app->building = true;
    app->work.data = app;
    uv_queue_work(app->loop, &app->work, build_work, build_done);
}

static void on_sighup(uv_signal_t *h, int sig)
{
    (void)sig;
    app_t *app = h->data;
    log_info("SIGHUP: reloading %s", app->config);
    start_build(app);
}

static void on_stop(uv_signal_t *h, int sig)
{
    app_t *app = h->data;
    log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    app->stopping = true;
    uv_signal_stop(&app->sighup);
    uv_signal_stop(&app->sigterm);
    uv_signal_stop(&app->sigint);
    uv_stop(app->loop);
}

static int cmd_serve(const char *config)
{
    diag_list_t d;
    diag_init(&d);
    snap_t *s = NULL;
    int rc = snap_build(config, &d, &s);
    log_diags(&d);
    if (rc != 0) {
        log_err("%s: %zu error(s); not serving", config, d.errors);
        diag_clear(&d);
        return 1;
    }
    diag_clear(&d);
    log_set_level((log_level_t)s->server.log_level);
    signal(SIGPIPE, SIG_IGN);

    app_t app = {0};
    app.config = config;
    app.loop = uv_default_loop();
    app.generation = 1;
    s->generation = 1;
    if (server_new(s, &app.srv) != 0) {
        snap_free(s);
        return 1;
    }
    if (server_start(app.srv) != 0) {
        snap_free(server_free(app.srv));
        return 1;
    }
    uv_signal_init(app.loop, &app.sighup);
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sighup.data = app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sighup, on_sighup, SIGHUP);
    uv_signal_start(&app.sigterm, on_stop, SIGTERM);
    uv_signal_start(&app.sigint, on_stop, SIGINT);
    uv_timer_init(app.loop, &app.reclaim);
    app.reclaim.data = &app;

    log_info("serving %zu zone(s) from %s on port %u with %u worker(s), generation 1",
             zones_count(s->zones), config, server_port(app.srv), server_workers(app.srv));
    /* The ready line: tests and scripts read the port from it. */
    printf("steerdns ready port=%u workers=%u\n", server_port(app.srv), server_workers(app.srv));
    fflush(stdout);

    uv_run(app.loop, UV_RUN_DEFAULT);

    /* Stopping: let a build in the thread pool finish (it cannot be
     * interrupted), then close every handle. */
    uv_timer_stop(&app.reclaim);
    uv_close((uv_handle_t *)&app.sighup, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.reclaim, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT);
    snap_t *last = server_free(app.srv);
    snap_free(last);
    for (size_t i = 0; i < app.nretired; i++)
        snap_free(app.retired[i].snap);
    uv_loop_close(app.loop);
    log_info("stopped");
    return 0;
}

static int cmd_check(const char *config)
{
    diag_list_t d;
    diag_init(&d);
    snap_t *s = NULL;
    int rc = snap_build(config, &d, &s);
    print_diags(&d, stdout);
    if (rc != 0) {
        printf("%s: %zu error(s)\n", config, d.errors);
        diag_clear(&d);
        return 1;
    }
    printf("%s: ok (%zu zone(s), %zu name(s))\n", config, zones_count(s->zones),
           zones_node_count(s->zones));
    diag_clear(&d);
    snap_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("steerdns %s\n", STEERDNS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind++];
    /* Options may also follow the command: steerdns check -c FILE. */
    int sub_argc = argc - optind + 1;
    char **sub_argv = argv + optind - 1;
    optind = 1;
    while ((c = getopt_long(sub_argc, sub_argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("steerdns %s\n", STEERDNS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "check") == 0) {
        if (config == NULL) {
            fprintf(stderr, "steerdns %s: give the configuration file with -c FILE\n", cmd);
            return 2;
        }
        return strcmp(cmd, "serve") == 0 ? cmd_serve(config) : cmd_check(config);
    }
    fprintf(stderr, "steerdns: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
