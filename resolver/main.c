/*
 * main.c - the steerdns command line: serve, check, explain, status.
 *
 * `serve` builds the first snapshot, binds the sockets, starts the workers
 * and the health poller, and then runs the main libuv loop, which owns the
 * control plane: signals (SIGHUP reloads, SIGTERM/SIGINT stop), snapshot
 * builds in the thread pool, the health poller's notifications (which run
 * the resolver plugins' controllers), the control socket, and freeing
 * retired snapshots once every worker has passed them.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/log.h"
#include "resolver/control.h"
#include "resolver/explain.h"
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
    health_t *health;
    control_t *control;
    uv_signal_t sighup, sigterm, sigint;
    uv_timer_t reclaim;
    uv_async_t health_async;
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
            "  explain -c FILE --client ADDR[/PREFIX] NAME [TYPE]\n"
            "                    why CLIENT gets its answer for NAME (default type A): what each\n"
            "                    geo source says, every candidate cluster with its state, the rule\n"
            "                    that chose, and the answer.  ADDR/PREFIX is sent as EDNS Client\n"
            "                    Subnet, a bare ADDR as the source address.  Asks the running\n"
            "                    server (server.control) for live states; --offline, or no server,\n"
            "                    builds the configuration here with no measurements.\n"
            "  status -c FILE    ask the running server (server.control) for its counters and the\n"
            "                    state of every server and cluster, with the reason for each\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   the main configuration file\n"
            "      --client C      explain: the client, ADDR or ADDR/PREFIX\n"
            "      --offline       explain: do not ask the running server\n"
            "      --control PATH  status, explain: the control socket (instead of reading -c)\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n"
            "\n"
            "signals (serve): SIGHUP reloads the configuration (an invalid one is refused and\n"
            "the running one keeps serving); SIGTERM and SIGINT stop.\n");
}

/* Diagnostics as log lines: the log level already says error or warning. */
static void log_diags(const diag_list_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const diag_t *x = &d->items[i];
        log_level_t lv = x->severity == DIAG_ERROR ? LOG_ERR : LOG_WARNING;
        if (x->file && x->line)
            log_msg(lv, "%s:%u:%u: %s", x->file, x->line, x->col, x->msg);
        else if (x->file)
            log_msg(lv, "%s: %s", x->file, x->msg);
        else
            log_msg(lv, "%s", x->msg);
    }
}

/* ---- health ---- */

static void health_notify(void *arg)
{
    /* Poller thread: hand over to the main loop. */
    uv_async_send((uv_async_t *)arg);
}

static void health_published(uv_async_t *a)
{
    app_t *app = a->data;
    snap_update_plugins(server_current(app->srv), health_clock_ms());
}

/* Make the poller measure snapshot s's servers (creating it the first time
 * a configuration has any). */
static int health_adopt(app_t *app, snap_t *s)
{
    if (s->topo == NULL) {
        if (app->health)
            health_apply(app->health, NULL);
        return 0;
    }
    if (app->health == NULL) {
        int rc = health_new(&app->health);
        if (rc != 0)
            return rc;
        health_set_notify(app->health, health_notify, &app->health_async);
        rc = health_apply(app->health, s->topo);
        if (rc == 0)
            rc = health_start(app->health);
        return rc;
    }
    return health_apply(app->health, s->topo);
}

/* ---- reload ---- */

static void build_work(uv_work_t *req)
{
    app_t *app = req->data;
    diag_init(&app->build_diags);
    app->built = NULL;
    app->build_rc = snap_build(app->config, &app->build_diags, &app->built);
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

static void retire(app_t *app, snap_t *old, uint64_t epoch)
{
    /* Cannot fill up in practice (a batch lasts microseconds); wait for the
     * oldest rather than leak. */
    while (app->nretired == RETIRE_MAX) {
        reclaim_cb(&app->reclaim);
        if (app->nretired == RETIRE_MAX)
            uv_sleep(1);
    }
    app->retired[app->nretired++] = (retired_t){old, epoch};
    uv_timer_start(&app->reclaim, reclaim_cb, 5, 5);
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
    log_diags(&app->build_diags);
    if (app->build_rc != 0) {
        log_err("reload of %s failed with %zu error(s); still serving generation %llu",
                app->config, app->build_diags.errors, (unsigned long long)cur->generation);
    } else {
        snap_t *s = app->built;
        s->generation = ++app->generation;
        if (!snap_same_listeners(cur, s))
            log_warn("reload: listen addresses, port and workers take effect only after a restart");
        /* The poller moves to the new topology first (carrying the states
         * of unchanged servers over); then the workers move. */
        int rc = health_adopt(app, s);
        if (rc != 0)
            log_err("reload: the health poller could not adopt the new topology: %s",
                    health_strerror(rc));
        /* Controllers carry on where the running configuration left
         * them, instead of starting with every client at home. */
        snap_adopt_plugins(s, cur);
        snap_update_plugins(s, health_clock_ms());
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
    uv_stop(app->loop);
}

/* ---- the control channel ---- */

static void control_cmd(void *arg, const char *line, const trace_t *t)
{
    app_t *app = arg;
    snap_t *s = server_current(app->srv);
    char cmd[32] = "", a1[256] = "", a2[512] = "", a3[64] = "";
    int n = sscanf(line, "%31s %255s %511s %63s", cmd, a1, a2, a3);
    if (n >= 1 && strcmp(cmd, "status") == 0) {
        server_counters_t c;
        server_counters(app->srv, &c);
        trace_printf(t, "steerdns %s: generation %llu from %s, %zu zone(s), port %u, %u worker(s)",
                     STEERDNS_VERSION, (unsigned long long)s->generation, s->path,
                     zones_count(s->zones), server_port(app->srv), server_workers(app->srv));
        trace_printf(t, "queries udp=%llu tcp=%llu answers udp=%llu tcp=%llu truncated=%llu dropped=%llu send_errors=%llu",
                     (unsigned long long)c.udp_queries, (unsigned long long)c.tcp_queries,
                     (unsigned long long)c.udp_answers, (unsigned long long)c.tcp_answers,
                     (unsigned long long)c.truncated, (unsigned long long)c.dropped,
                     (unsigned long long)c.send_errors);
        trace_printf(t, "rcodes NOERROR=%llu FORMERR=%llu SERVFAIL=%llu NXDOMAIN=%llu NOTIMP=%llu REFUSED=%llu BADVERS=%llu",
                     (unsigned long long)c.rcodes[0], (unsigned long long)c.rcodes[1],
                     (unsigned long long)c.rcodes[2], (unsigned long long)c.rcodes[3],
                     (unsigned long long)c.rcodes[4], (unsigned long long)c.rcodes[5],
                     (unsigned long long)c.rcodes[16]);
        trace_printf(t, "tcp accepted=%llu rejected=%llu timeouts=%llu closed_slow=%llu",
                     (unsigned long long)c.tcp_accepted, (unsigned long long)c.tcp_rejected,
                     (unsigned long long)c.tcp_timeouts, (unsigned long long)c.tcp_closed_slow);
        trace_printf(t, "rrl rate=%u/s dropped=%llu slipped=%llu", s->server.rrl.rate,
                     (unsigned long long)c.rrl_dropped, (unsigned long long)c.rrl_slipped);
        if (s->topo)
            health_status_write(app->health, s->topo, t);
        else
            trace_printf(t, "no clusters configured");
        return;
    }
    if (n >= 3 && strcmp(cmd, "explain") == 0) {
        explain_query(s, a1, a2, n >= 4 ? a3 : NULL, t);
        return;
    }
    trace_printf(t, "error: unknown command '%s' (status, explain CLIENT NAME [TYPE])", line);
}

/* After the sockets are bound: become server.user (and server.group, else
 * the user's group).  Running as root with a user configured and failing
 * to drop is fatal: never keep root by accident. */
static int drop_privileges(const snap_server_t *sv)
{
    if (sv->user == NULL)
        return 0;
    struct passwd *pw = getpwnam(sv->user);
    if (pw == NULL) {
        log_err("server.user: no such user '%s'", sv->user);
        return -ENOENT;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (sv->group) {
        struct group *gr = getgrnam(sv->group);
        if (gr == NULL) {
            log_err("server.group: no such group '%s'", sv->group);
            return -ENOENT;
        }
        gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        if (geteuid() == uid && getegid() == gid)
            return 0;
        log_err("server.user: cannot become '%s': not running as root (run as root, or as that user with CAP_NET_BIND_SERVICE)",
                sv->user);
        return -EPERM;
    }
    if (sv->control && chown(sv->control, uid, gid) != 0)
        log_warn("control socket %s: cannot hand it to %s: %s", sv->control, sv->user, strerror(errno));
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        log_err("server.user: cannot become '%s': %s", sv->user, strerror(errno));
        return -EPERM;
    }
    if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
        log_err("server.user: still able to regain root after dropping to '%s'", sv->user);
        return -EPERM;
    }
    log_info("running as user %s (uid %u, gid %u)", sv->user, (unsigned)uid, (unsigned)gid);
    return 0;
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
    uv_async_init(app.loop, &app.health_async, health_published);
    app.health_async.data = &app;
    if (server_new(s, &app.srv) != 0) {
        uv_close((uv_handle_t *)&app.health_async, NULL);
        uv_run(app.loop, UV_RUN_DEFAULT);
        snap_free(s);
        return 1;
    }
    rc = 0;
    if (s->server.control)
        rc = control_start(app.loop, s->server.control, control_cmd, &app, &app.control);
    if (rc == 0)
        rc = drop_privileges(&s->server);
    if (rc == 0)
        rc = health_adopt(&app, s);
    if (rc == 0)
        rc = server_start(app.srv);
    if (rc != 0) {
        log_err("cannot start: %s", rc < 0 ? strerror(-rc) : "error");
        health_stop(app.health);
        control_stop(app.control);
        uv_close((uv_handle_t *)&app.health_async, NULL);
        uv_run(app.loop, UV_RUN_DEFAULT);
        snap_free(server_free(app.srv));
        return 1;
    }
    snap_update_plugins(s, health_clock_ms());
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

    /* Stopping: a build in the thread pool cannot be interrupted; the loop
     * below runs until it is done, then every handle closes. */
    uv_signal_stop(&app.sighup);
    uv_timer_stop(&app.reclaim);
    uv_close((uv_handle_t *)&app.sighup, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.reclaim, NULL);
    control_stop(app.control);
    health_stop(app.health);
    uv_close((uv_handle_t *)&app.health_async, NULL);
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
    diag_print(&d, stdout);
    if (rc != 0) {
        printf("%s: %zu error(s)\n", config, d.errors);
        diag_clear(&d);
        return 1;
    }
    printf("%s: ok (%zu zone(s), %zu name(s), %zu resolver instance(s))\n", config,
           zones_count(s->zones), zones_node_count(s->zones), s->nplugins);
    geo_stats_t gs = {0};
    if (s->geo)
        geo_get_stats(s->geo, &gs);
    printf("snapshot: built in %zu ms; %.1f MiB in its arena (answers %.1f MiB), %.1f MiB of geo tables\n",
           s->build_ms, arena_footprint(s->arena) / 1048576.0, s->answers->bytes / 1048576.0,
           gs.total_bytes / 1048576.0);
    diag_clear(&d);
    snap_free(s);
    return 0;
}

static int cmd_explain(const char *config, const char *control, const char *client,
                       const char *name, const char *type, bool offline)
{
    char path[4096];
    if (!offline) {
        if (control == NULL && config && snap_read_control(config, path, sizeof(path)) == 0)
            control = path;
        if (control) {
            char line[1024];
            snprintf(line, sizeof(line), "explain %s %s%s%s", client, name, type ? " " : "",
                     type ? type : "");
            bool refused = false;
            if (control_request(control, line, &refused) == 0)
                return refused ? 2 : 0; /* bad client, name or type: a usage error */
            if (config == NULL) {
                fprintf(stderr, "steerdns explain: no server answers on %s\n", control);
                return 1;
            }
        }
    }
    if (config == NULL) {
        fprintf(stderr, "steerdns explain: give -c FILE (or --control PATH)\n");
        return 2;
    }
    diag_list_t d;
    diag_init(&d);
    snap_t *s = NULL;
    if (snap_build(config, &d, &s) != 0) {
        diag_print(&d, stderr);
        diag_clear(&d);
        return 1;
    }
    diag_clear(&d);
    s->generation = 0;
    printf("offline: built from %s; no server measured, every cluster is UNKNOWN (treated as idle)\n",
           config);
    trace_t t = TRACE_FILE(stdout);
    int rc = explain_query(s, client, name, type, &t);
    snap_free(s);
    return rc == 0 ? 0 : 2;
}

static int cmd_status(const char *config, const char *control)
{
    char path[4096];
    if (control == NULL) {
        if (config == NULL) {
            fprintf(stderr, "steerdns status: give -c FILE or --control PATH\n");
            return 2;
        }
        int rc = snap_read_control(config, path, sizeof(path));
        if (rc != 0) {
            fprintf(stderr, "steerdns status: %s sets no server.control socket\n", config);
            return 1;
        }
        control = path;
    }
    if (control_request(control, "status", NULL) != 0) {
        fprintf(stderr, "steerdns status: no server answers on %s\n", control);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_CLIENT = 256, OPT_OFFLINE, OPT_CONTROL };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"client", required_argument, NULL, OPT_CLIENT},
        {"offline", no_argument, NULL, OPT_OFFLINE},
        {"control", required_argument, NULL, OPT_CONTROL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *client = NULL, *control = NULL, *cmd = NULL;
    const char *pos[4] = {NULL};
    int npos = 0;
    bool offline = false;
    int c;
    /* Options may come before or after the command. */
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "-c:hV", opts, NULL)) == -1)
            break;
        switch (c) {
        case 1:
            if (cmd == NULL)
                cmd = optarg;
            else if (npos < 4)
                pos[npos++] = optarg;
            else {
                fprintf(stderr, "steerdns: too many arguments\n");
                return 2;
            }
            break;
        case 'c':
            config = optarg;
            break;
        case OPT_CLIENT:
            client = optarg;
            break;
        case OPT_OFFLINE:
            offline = true;
            break;
        case OPT_CONTROL:
            control = optarg;
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
    if (cmd == NULL) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "check") == 0) {
        if (config == NULL) {
            fprintf(stderr, "steerdns %s: give the configuration file with -c FILE\n", cmd);
            return 2;
        }
        if (npos) {
            fprintf(stderr, "steerdns %s: unexpected argument '%s'\n", cmd, pos[0]);
            return 2;
        }
        return strcmp(cmd, "serve") == 0 ? cmd_serve(config) : cmd_check(config);
    }
    if (strcmp(cmd, "explain") == 0) {
        if (client == NULL || npos < 1 || npos > 2) {
            fprintf(stderr, "usage: steerdns explain -c FILE --client ADDR[/PREFIX] NAME [TYPE]\n");
            return 2;
        }
        return cmd_explain(config, control, client, pos[0], npos > 1 ? pos[1] : NULL, offline);
    }
    if (strcmp(cmd, "status") == 0)
        return cmd_status(config, control);
    fprintf(stderr, "steerdns: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
