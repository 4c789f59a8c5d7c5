/*
 * control.c - the control channel (see control.h).
 */
#include "resolver/control.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

#define CONTROL_LINE 4096
#define CONTROL_MAX_REPLY (16u * 1024u * 1024u)

struct control {
    uv_loop_t *loop;
    uv_pipe_t listener;
    char *path;
    control_fn fn;
    void *arg;
    int open; /* connections not yet closed */
    bool stopping;
};

typedef struct conn {
    uv_pipe_t pipe;
    control_t *ctl;
    char line[CONTROL_LINE];
    size_t len;
    char *reply;
    size_t rlen, rcap;
    uv_write_t wreq;
    bool answered;
} conn_t;

static void reply_line(void *ctx, const char *line)
{
    conn_t *c = ctx;
    size_t n = strlen(line);
    if (c->rlen + n + 1 > CONTROL_MAX_REPLY)
        return;
    if (c->rlen + n + 2 > c->rcap) {
        size_t cap = c->rcap ? c->rcap * 2 : 4096;
        while (cap < c->rlen + n + 2)
            cap *= 2;
        char *r = realloc(c->reply, cap);
        if (r == NULL)
            return;
        c->reply = r;
        c->rcap = cap;
    }
    memcpy(c->reply + c->rlen, line, n);
    c->rlen += n;
    c->reply[c->rlen++] = '\n';
}

static void conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->ctl->open--;
    free(c->reply);
    free(c);
}

static void written(uv_write_t *req, int status)
{
    (void)status;
    conn_t *c = req->data;
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    buf->base = c->line + c->len;
    buf->len = sizeof(c->line) - 1 - c->len;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = s->data;
    if (c->answered)
        return;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    char *nl = strchr(c->line, '\n');
    if (nl == NULL && c->len < sizeof(c->line) - 1)
        return;
    if (nl)
        *nl = '\0';
    c->answered = true;
    uv_read_stop(s);
    trace_t t = {reply_line, c};
    c->ctl->fn(c->ctl->arg, c->line, &t);
    uv_buf_t out = uv_buf_init(c->reply ? c->reply : (char *)"", (unsigned)c->rlen);
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &out, 1, written) != 0)
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    control_t *ctl = server->data;
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->ctl = ctl;
    uv_pipe_init(ctl->loop, &c->pipe, 0);
    c->pipe.data = c;
    ctl->open++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

int control_start(uv_loop_t *loop, const char *path, control_fn fn, void *arg, control_t **out)
{
    control_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->fn = fn;
    c->arg = arg;
    c->path = strdup(path);
    /* A socket file left by a previous run that did not stop cleanly:
     * replace it, unless another server still answers there. */
    if (control_request(path, NULL, NULL) == 0) {
        log_err("control socket %s: another server is listening there", path);
        free(c->path);
        free(c);
        return -EADDRINUSE;
    }
    unlink(path);
    uv_pipe_init(loop, &c->listener, 0);
    c->listener.data = c;
    /* The socket file is created 0600 (srw-------): only its owner (and
     * root) may ask for status or explain.  Connecting needs write
     * permission only.  No other thread runs yet when serve starts it, so
     * changing the process umask for the bind is safe. */
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&c->listener, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->listener, 16, on_connection);
    if (rc != 0) {
        log_err("control socket %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&c->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(c->path);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    control_t *c = arg;
    /* The control channel owns every pipe of the main loop. */
    if (h->type == UV_NAMED_PIPE && h != (uv_handle_t *)&c->listener && !uv_is_closing(h))
        uv_close(h, conn_closed);
}

void control_stop(control_t *c)
{
    if (c == NULL)
        return;
    uv_walk(c->loop, close_walk, c);
    uv_close((uv_handle_t *)&c->listener, NULL);
    unlink(c->path);
    free(c->path);
    free(c);
}

int control_request(const char *path, const char *line, bool *error_reply)
{
    if (error_reply)
        *error_reply = false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        close(fd);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (line == NULL) {
        /* Probe only: something listens here. */
        close(fd);
        return 0;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char msg[CONTROL_LINE];
    snprintf(msg, sizeof(msg), "%s\n", line);
    if (write(fd, msg, strlen(msg)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    char buf[65536];
    ssize_t r;
    /* How much of "error:" the current line has matched so far; -1 once
     * it cannot (the line started otherwise). */
    static const char err[] = "error:";
    int match = 0;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        fwrite(buf, 1, (size_t)r, stdout);
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n')
                match = 0;
            else if (match >= 0 && (size_t)match < sizeof(err) - 1)
                match = buf[i] == err[match] ? match + 1 : -1;
            if ((size_t)match == sizeof(err) - 1 && error_reply)
                *error_reply = true;
        }
    }
    close(fd);
    return 0;
}
