/*
 * asok_host RUN_DIR: a C program hosting an osdkit context, for the Python CLI-compat tests
 * (python/tests drive it with the real `ceph daemon` CLI).
 *
 * Starts context `osd.0` with run_dir = RUN_DIR and log_file = RUN_DIR/osd.0.log, registers
 * `echo name=msg,type=CephString` (reply: the msg text as-is), prints the admin socket path on
 * stdout as one line, then serves until stdin reaches EOF, frees everything and exits 0.
 * Built by scripts/c-tests.sh to target/ctests/asok_host.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osdkit.h"

/* The value of "msg" in args_json ({"msg":"..."}), JSON string escapes decoded (\uXXXX kept
 * for ASCII only). Returns a malloc'd string or NULL. */
static char *json_msg(const char *json) {
    const char *p = strstr(json, "\"msg\":\"");
    if (p == NULL) {
        return NULL;
    }
    p += strlen("\"msg\":\"");
    char *out = (char *)malloc(strlen(p) + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t n = 0;
    while (*p != '\0' && *p != '"') {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            unsigned v = 0;
            if (sscanf(p + 1, "%4x", &v) == 1 && v > 0 && v < 0x80) {
                out[n++] = (char)v;
                p += 4;
            } else {
                out[n++] = '?';
                p += strlen(p) >= 5 ? 4 : 0;
            }
            break;
        }
        case '\0': out[n] = '\0'; return out;
        default: out[n++] = *p; break; /* \" \\ \/ */
        }
        p++;
    }
    out[n] = '\0';
    return out;
}

static int echo_cb(void *user, const char *prefix, const char *args_json, const char *format,
                   osdkit_asok_reply *reply) {
    (void)user;
    (void)prefix;
    (void)format;
    char *msg = json_msg(args_json);
    if (msg == NULL) {
        const char *why = "echo: no msg";
        osdkit_asok_reply_set(reply, why, strlen(why));
        return -EINVAL;
    }
    int r = osdkit_asok_reply_set(reply, msg, strlen(msg));
    free(msg);
    return r;
}

static int fail(osdkit_context *ctx, const char *what, int r) {
    fprintf(stderr, "asok_host: %s: %s (%d)\n", what, osdkit_last_error(), r);
    osdkit_context_free(ctx);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s RUN_DIR\n", argv[0]);
        return 2;
    }
    const char *run_dir = argv[1];
    osdkit_context *ctx = NULL;
    int r = osdkit_context_new("osd.0", NULL, &ctx);
    if (r < 0) {
        return fail(NULL, "osdkit_context_new", r);
    }
    size_t loglen = strlen(run_dir) + sizeof("/osd.0.log");
    char *log = (char *)malloc(loglen);
    if (log == NULL) {
        return fail(ctx, "malloc", -ENOMEM);
    }
    snprintf(log, loglen, "%s/osd.0.log", run_dir);
    r = osdkit_context_set_option(ctx, "run_dir", run_dir);
    if (r == 0) {
        r = osdkit_context_set_option(ctx, "log_file", log);
    }
    free(log);
    if (r < 0) {
        return fail(ctx, "osdkit_context_set_option", r);
    }
    r = osdkit_asok_register(ctx, "echo name=msg,type=CephString", "echo back the message",
                             echo_cb, NULL, NULL);
    if (r < 0) {
        return fail(ctx, "osdkit_asok_register", r);
    }
    r = osdkit_context_start(ctx);
    if (r < 0) {
        return fail(ctx, "osdkit_context_start", r);
    }
    const char *path = osdkit_context_asok_path(ctx);
    if (path == NULL) {
        return fail(ctx, "osdkit_context_asok_path", -ENOENT);
    }
    printf("%s\n", path);
    fflush(stdout);

    char buf[256];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR)) {
            break;
        }
    }
    osdkit_context_free(ctx);
    return 0;
}
