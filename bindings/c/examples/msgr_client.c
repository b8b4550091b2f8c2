/*
 * msgr_client: a C program using the osdkit messenger's pull-style event queue. It connects to
 * an echo server (msgr_echo_server), sends COUNT messages one at a time and waits for each echo
 * (round trips), then COUNT at once (a burst), checks every echo byte for byte, and prints the
 * round-trip figures. The data segment of every message is lent from one buffer, without
 * copies (osdkit_message_set_data_borrowed); the program checks that the library released each
 * loan exactly once. Exits 0 when every echo came back intact.
 *
 *   msgr_client ADDR [COUNT [SIZE]]
 *
 * ADDR is what the server printed ("v2:127.0.0.1:PORT/NONCE"); COUNT defaults to 1000, SIZE
 * (data bytes per message) to 4096.
 *
 * Build against an installed osdkit:
 *   cc msgr_client.c $(pkg-config --cflags --libs osdkit) -o msgr_client
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <osdkit.h>

#define ECHO_REQUEST 0x7e01
#define ECHO_REPLY 0x7e02
#define EVENT_TIMEOUT_MS 10000

/* The lent data buffer and how many loans the library gave back (from any of its threads). */
typedef struct lender {
    uint8_t *buf;
    size_t len;
    pthread_mutex_t mu;
    unsigned long lent;
    unsigned long returned;
} lender;

/* osdkit_data_free_cb: only bookkeeping here (no osdkit calls, no blocking). */
static void loan_returned(void *user) {
    lender *l = (lender *)user;
    pthread_mutex_lock(&l->mu);
    l->returned++;
    pthread_mutex_unlock(&l->mu);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static osdkit_message *make_request(lender *l, uint64_t i) {
    osdkit_message *m = NULL;
    char front[48];
    if (osdkit_message_new(ECHO_REQUEST, &m) != 0) {
        return NULL;
    }
    int n = snprintf(front, sizeof(front), "echo %llu", (unsigned long long)i);
    if (osdkit_message_set_front(m, front, (size_t)n) != 0 || osdkit_message_set_tid(m, i) != 0 ||
        osdkit_message_set_data_borrowed(m, l->buf, l->len, loan_returned, l) != 0) {
        osdkit_message_free(m);
        return NULL;
    }
    pthread_mutex_lock(&l->mu);
    l->lent++;
    pthread_mutex_unlock(&l->mu);
    return m;
}

/* Checks an echo: type, tid `want` (any tid when `want` < 0), front and data intact. Returns
 * the tid, or -1 when anything is wrong. */
static long long check_reply(const osdkit_message *m, const lender *l, long long want) {
    uint64_t tid = 0;
    const uint8_t *p = NULL;
    size_t len = 0;
    char front[48];
    if (osdkit_message_type(m) != ECHO_REPLY || osdkit_message_tid(m, &tid) != 0) {
        return -1;
    }
    if (want >= 0 && tid != (uint64_t)want) {
        return -1;
    }
    int n = snprintf(front, sizeof(front), "echo %llu", (unsigned long long)tid);
    if (osdkit_message_front(m, &p, &len) != 0 || len != (size_t)n || memcmp(p, front, len) != 0) {
        return -1;
    }
    if (osdkit_message_data(m, &p, &len) != 0 || len != l->len || (len > 0 && memcmp(p, l->buf, len) != 0)) {
        return -1;
    }
    return (long long)tid;
}

/* The next event that is not a CONNECT; fails on a closed or refused connection. Returns 0 with
 * `*msg_out` owned by the caller, or -1. */
static int next_message(osdkit_messenger *m, osdkit_message **msg_out) {
    for (;;) {
        osdkit_event ev;
        memset(&ev, 0, sizeof(ev));
        int r = osdkit_messenger_next_event(m, EVENT_TIMEOUT_MS, &ev);
        if (r != 0) {
            fprintf(stderr, "msgr_client: waiting for an echo: %s\n", strerror(-r));
            return -1;
        }
        if (ev.kind == OSDKIT_EVENT_MESSAGE) {
            *msg_out = ev.msg;
            ev.msg = NULL; /* taken over */
            osdkit_event_clear(&ev);
            return 0;
        }
        int kind = ev.kind;
        osdkit_event_clear(&ev);
        if (kind != OSDKIT_EVENT_CONNECT) {
            fprintf(stderr, "msgr_client: the connection failed (event %d)\n", kind);
            return -1;
        }
    }
}

static int fail(const char *what, int r) {
    fprintf(stderr, "msgr_client: %s: %s (%s)\n", what, strerror(-r), osdkit_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s ADDR [COUNT [SIZE]]\n", argv[0]);
        return 2;
    }
    const char *addr = argv[1];
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    long size = argc > 3 ? strtol(argv[3], NULL, 10) : 4096;
    if (count < 1 || count > 10000000 || size < 0 || size > (64L << 20)) {
        fprintf(stderr, "msgr_client: COUNT must be 1..10000000 and SIZE 0..64 MiB\n");
        return 2;
    }

    lender l;
    memset(&l, 0, sizeof(l));
    pthread_mutex_init(&l.mu, NULL);
    l.len = (size_t)size;
    l.buf = (uint8_t *)malloc(l.len > 0 ? l.len : 1);
    double *rtt = (double *)malloc(sizeof(double) * (size_t)count);
    if (l.buf == NULL || rtt == NULL) {
        fprintf(stderr, "msgr_client: out of memory\n");
        return 1;
    }
    for (size_t j = 0; j < l.len; j++) {
        l.buf[j] = (uint8_t)(j * 31 + 7);
    }

    osdkit_context *ctx = NULL;
    osdkit_messenger *m = NULL;
    osdkit_connection *conn = NULL;
    int r = osdkit_context_new("client.echo", NULL, &ctx);
    if (r != 0) {
        return fail("osdkit_context_new", r);
    }
    if ((r = osdkit_context_set_option(ctx, "admin_socket", "")) != 0 ||
        (r = osdkit_context_set_option(ctx, "log_file", "")) != 0 || (r = osdkit_context_start(ctx)) != 0) {
        return fail("context setup", r);
    }
    if ((r = osdkit_messenger_new(ctx, "client.echo", OSDKIT_NONCE_RANDOM, &m)) != 0) {
        return fail("osdkit_messenger_new", r);
    }
    if ((r = osdkit_messenger_set_policy(m, "osd", OSDKIT_POLICY_LOSSY_CLIENT)) != 0 ||
        (r = osdkit_messenger_enable_event_queue(m)) != 0 || (r = osdkit_messenger_start(m)) != 0) {
        return fail("messenger setup", r);
    }

    /* Connect and wait for the handshake. */
    double t0 = now_s();
    if ((r = osdkit_messenger_connect(m, "osd", addr, &conn)) != 0) {
        return fail("osdkit_messenger_connect", r);
    }
    osdkit_event ev;
    memset(&ev, 0, sizeof(ev));
    if ((r = osdkit_messenger_next_event(m, EVENT_TIMEOUT_MS, &ev)) != 0) {
        return fail("waiting for the connection", r);
    }
    if (ev.kind != OSDKIT_EVENT_CONNECT) {
        fprintf(stderr, "msgr_client: could not connect to %s (event %d)\n", addr, ev.kind);
        return 1;
    }
    osdkit_event_clear(&ev);
    double connect_ms = (now_s() - t0) * 1e3;

    /* Round trips: one message in flight at a time. */
    int ok = 1;
    double sum = 0;
    for (long i = 0; i < count && ok; i++) {
        osdkit_message *req = make_request(&l, (uint64_t)i);
        osdkit_message *reply = NULL;
        if (req == NULL) {
            return fail("building a message", -ENOMEM);
        }
        double s = now_s();
        if ((r = osdkit_connection_send(conn, req)) != 0) {
            return fail("osdkit_connection_send", r);
        }
        if (next_message(m, &reply) != 0) {
            ok = 0;
            break;
        }
        rtt[i] = (now_s() - s) * 1e6;
        sum += rtt[i];
        if (check_reply(reply, &l, i) != i) {
            fprintf(stderr, "msgr_client: echo %ld is not what was sent\n", i);
            ok = 0;
        }
        osdkit_message_free(reply);
    }

    /* A burst: everything in flight at once; replies in order (one session). */
    double burst_s = 0;
    if (ok) {
        double s = now_s();
        for (long i = 0; i < count; i++) {
            osdkit_message *req = make_request(&l, (uint64_t)(count + i));
            if (req == NULL || (r = osdkit_connection_send(conn, req)) != 0) {
                return fail("sending the burst", req == NULL ? -ENOMEM : r);
            }
        }
        for (long i = 0; i < count && ok; i++) {
            osdkit_message *reply = NULL;
            if (next_message(m, &reply) != 0) {
                ok = 0;
                break;
            }
            if (check_reply(reply, &l, count + i) != count + i) {
                fprintf(stderr, "msgr_client: burst echo %ld is not what was sent\n", i);
                ok = 0;
            }
            osdkit_message_free(reply);
        }
        burst_s = now_s() - s;
    }

    osdkit_connection_free(conn);
    /* Shuts down and waits: afterwards no message holds a loan any more. */
    osdkit_messenger_free(m);
    osdkit_context_free(ctx);
    pthread_mutex_lock(&l.mu);
    unsigned long lent = l.lent, returned = l.returned;
    pthread_mutex_unlock(&l.mu);
    if (returned != lent) {
        fprintf(stderr, "msgr_client: %lu data loans made, %lu returned\n", lent, returned);
        ok = 0;
    }

    if (ok) {
        qsort(rtt, (size_t)count, sizeof(double), cmp_double);
        double mb = (double)count * (double)size * 2.0 / 1e6;
        printf("msgr_client: connected to %s in %.2f ms\n", addr, connect_ms);
        printf("msgr_client: %ld round trips of %ld data bytes: min %.1f us, avg %.1f us, p50 %.1f us, "
               "p99 %.1f us, max %.1f us\n",
               count, size, rtt[0], sum / (double)count, rtt[count / 2], rtt[(count * 99) / 100],
               rtt[count - 1]);
        printf("msgr_client: burst of %ld: %.1f ms, %.0f messages/s, %.1f MB/s both ways\n", count,
               burst_s * 1e3, (double)count / burst_s, mb / burst_s);
        printf("msgr_client: all %ld echoes intact; %lu data loans returned\n", 2 * count, returned);
    }
    pthread_mutex_destroy(&l.mu);
    free(rtt);
    free(l.buf);
    return ok ? 0 : 1;
}
