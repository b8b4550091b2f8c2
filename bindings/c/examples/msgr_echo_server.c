/*
 * msgr_echo_server: a C program serving msgr2 with the osdkit messenger. Every ECHO_REQUEST
 * message it receives goes straight back on the connection it came on as an ECHO_REPLY: the
 * received message itself, its payload not copied.
 *
 *   msgr_echo_server [BIND_ADDR [ADDR_FILE]]
 *
 * BIND_ADDR defaults to 127.0.0.1:0 (any free port). The address clients connect to
 * ("v2:127.0.0.1:PORT/NONCE") is printed on stdout and, when ADDR_FILE is given, written there
 * too (atomically, so that a script can wait for the file). Runs until SIGINT or SIGTERM, then
 * prints what it served and exits 0. Try it with msgr_client:
 *
 *   msgr_echo_server 127.0.0.1:0 /tmp/echo.addr &
 *   msgr_client "$(cat /tmp/echo.addr)" 1000 4096
 *
 * The callbacks below run on the messenger's ms_dispatch thread, one at a time (see
 * osdkit_dispatcher_ops in osdkit.h).
 *
 * Build against an installed osdkit:
 *   cc msgr_echo_server.c $(pkg-config --cflags --libs osdkit) -o msgr_echo_server
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <osdkit.h>

#define ECHO_REQUEST 0x7e01
#define ECHO_REPLY 0x7e02

typedef struct echo_stats {
    pthread_mutex_t mu;
    unsigned long long messages;
    unsigned long long bytes;
    unsigned long long accepted;
    unsigned long long resets;
    unsigned long long send_errors;
} echo_stats;

static size_t payload_len(const osdkit_message *msg) {
    const uint8_t *p = NULL;
    size_t a = 0, b = 0, c = 0;
    osdkit_message_front(msg, &p, &a);
    osdkit_message_middle(msg, &p, &b);
    osdkit_message_data(msg, &p, &c);
    return a + b + c;
}

/* ms_dispatch: `msg` is ours unless we return OSDKIT_DISPATCH_PASS. */
static int echo_on_message(void *user, osdkit_message *msg) {
    echo_stats *st = (echo_stats *)user;
    if (osdkit_message_type(msg) != ECHO_REQUEST) {
        return OSDKIT_DISPATCH_PASS; /* not ours: the library logs and drops it */
    }
    osdkit_connection *conn = NULL;
    if (osdkit_message_connection(msg, &conn) != 0) {
        osdkit_message_free(msg);
        return OSDKIT_DISPATCH_HANDLED;
    }
    size_t len = payload_len(msg);
    osdkit_message_set_type(msg, ECHO_REPLY);
    /* The send consumes the message, whatever it returns. */
    int r = osdkit_connection_send(conn, msg);
    osdkit_connection_free(conn);
    pthread_mutex_lock(&st->mu);
    if (r == 0) {
        st->messages++;
        st->bytes += len;
    } else {
        st->send_errors++;
    }
    pthread_mutex_unlock(&st->mu);
    return OSDKIT_DISPATCH_HANDLED;
}

static void echo_on_accept(void *user, const osdkit_connection *conn) {
    echo_stats *st = (echo_stats *)user;
    char peer[128];
    if (osdkit_connection_peer_addr(conn, peer, sizeof(peer)) < 0) {
        snprintf(peer, sizeof(peer), "?");
    }
    fprintf(stderr, "msgr_echo_server: accepted connection %lld from %s\n",
            (long long)osdkit_connection_id(conn), peer);
    pthread_mutex_lock(&st->mu);
    st->accepted++;
    pthread_mutex_unlock(&st->mu);
}

static void echo_on_reset(void *user, const osdkit_connection *conn) {
    echo_stats *st = (echo_stats *)user;
    fprintf(stderr, "msgr_echo_server: connection %lld closed\n", (long long)osdkit_connection_id(conn));
    pthread_mutex_lock(&st->mu);
    st->resets++;
    pthread_mutex_unlock(&st->mu);
}

static int write_addr_file(const char *path, const char *addr) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -errno;
    }
    int ok = fprintf(f, "%s\n", addr) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return -(e != 0 ? e : EIO);
    }
    return 0;
}

static int fail(const char *what, int r) {
    fprintf(stderr, "msgr_echo_server: %s: %s (%s)\n", what, strerror(-r), osdkit_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *bind_addr = argc > 1 ? argv[1] : "127.0.0.1:0";
    const char *addr_file = argc > 2 ? argv[2] : NULL;
    if (argc > 3) {
        fprintf(stderr, "usage: %s [BIND_ADDR [ADDR_FILE]]\n", argv[0]);
        return 2;
    }

    /* Block the stop signals before any library thread exists (threads inherit the mask), so
     * that only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    echo_stats st;
    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.mu, NULL);

    osdkit_context *ctx = NULL;
    osdkit_messenger *m = NULL;
    int r = osdkit_context_new("osd.0", NULL, &ctx);
    if (r != 0) {
        return fail("osdkit_context_new", r);
    }
    /* No admin socket or log file for this example. */
    if ((r = osdkit_context_set_option(ctx, "admin_socket", "")) != 0 ||
        (r = osdkit_context_set_option(ctx, "log_file", "")) != 0 || (r = osdkit_context_start(ctx)) != 0) {
        return fail("context setup", r);
    }
    if ((r = osdkit_messenger_new(ctx, "osd.0", OSDKIT_NONCE_RANDOM, &m)) != 0) {
        return fail("osdkit_messenger_new", r);
    }
    /* Clients talk to us with a lossy client policy; we are their stateless server. */
    if ((r = osdkit_messenger_set_policy(m, "client", OSDKIT_POLICY_STATELESS_SERVER)) != 0) {
        return fail("osdkit_messenger_set_policy", r);
    }
    osdkit_dispatcher_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.on_message = echo_on_message;
    ops.on_accept = echo_on_accept;
    ops.on_reset = echo_on_reset;
    ops.on_remote_reset = echo_on_reset;
    /* `st` outlives the messenger: no drop callback needed. */
    if ((r = osdkit_messenger_add_dispatcher(m, &ops, &st, NULL)) != 0) {
        return fail("osdkit_messenger_add_dispatcher", r);
    }
    if ((r = osdkit_messenger_bind(m, bind_addr)) != 0) {
        return fail("osdkit_messenger_bind", r);
    }
    if ((r = osdkit_messenger_start(m)) != 0) {
        return fail("osdkit_messenger_start", r);
    }
    char addr[128];
    if ((r = osdkit_messenger_get_addr(m, addr, sizeof(addr))) < 0) {
        return fail("osdkit_messenger_get_addr", r);
    }
    printf("msgr_echo_server: listening on %s\n", addr);
    fflush(stdout);
    if (addr_file != NULL && (r = write_addr_file(addr_file, addr)) != 0) {
        return fail("writing the address file", r);
    }

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "msgr_echo_server: signal %d, stopping\n", sig);

    /* Shuts down, waits for the callback in flight. */
    osdkit_messenger_free(m);
    osdkit_context_free(ctx);
    printf("msgr_echo_server: echoed %llu messages (%llu payload bytes) on %llu connections; %llu closed, "
           "%llu send errors\n",
           st.messages, st.bytes, st.accepted, st.resets, st.send_errors);
    pthread_mutex_destroy(&st.mu);
    if (addr_file != NULL) {
        remove(addr_file);
    }
    return 0;
}
