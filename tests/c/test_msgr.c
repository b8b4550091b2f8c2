/*
 * The messenger through the C ABI: two messengers in one process over loopback. Echo through
 * dispatcher callbacks (chain order, pass-through, threads, fast dispatch, send to self), the
 * same through the pull-style event queue, zero-copy data buffers released exactly once,
 * mark-down, refused and reset connections, shutdown and free from inside a callback, and
 * bad arguments.
 */
#include "test_util.h"

#define T_PING 0x7101
#define T_PONG 0x7102
#define T_OTHER 0x7103
#define T_FAST 0x7104
#define T_SELF 0x7105

#define WAIT_S 20.0

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static osdkit_context *msgr_context(const char *name, const char *dir) {
    osdkit_context *ctx = tu_context(name, dir);
    CHECK_EQ(osdkit_context_set_option(ctx, "admin_socket", ""), 0);
    CHECK_EQ(osdkit_context_start(ctx), 0);
    return ctx;
}

static int on_thread(const char *want_prefix) {
    char name[32];
    memset(name, 0, sizeof(name));
    if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0) {
        return 0;
    }
    return strncmp(name, want_prefix, strlen(want_prefix)) == 0;
}

/* Payload of message `i`: data length (large from 1000 on) and pattern. */
static size_t data_len(int i) { return i >= 1000 ? (size_t)(256 * 1024 + i) : (size_t)((i % 5) * 4096 + i * 3); }
static uint8_t data_byte(int i, size_t j) { return (uint8_t)((size_t)i * 7 + j); }

/* A PING (or `type`) numbered `i`: front "ping <i>", middle "mid", data pattern, tid i. */
static osdkit_message *make_msg(uint16_t type, int i) {
    osdkit_message *m = NULL;
    char front[32];
    CHECK_EQ(osdkit_message_new(type, &m), 0);
    CHECK(m != NULL);
    int n = snprintf(front, sizeof(front), "ping %d", i);
    CHECK_EQ(osdkit_message_set_front(m, front, (size_t)n), 0);
    CHECK_EQ(osdkit_message_set_middle(m, "mid", 3), 0);
    size_t len = data_len(i);
    uint8_t *d = (uint8_t *)malloc(len + 1);
    CHECK(d != NULL);
    for (size_t j = 0; j < len; j++) {
        d[j] = data_byte(i, j);
    }
    CHECK_EQ(osdkit_message_set_data(m, d, len), 0);
    free(d); /* set_data copied it */
    CHECK_EQ(osdkit_message_set_tid(m, (uint64_t)i), 0);
    return m;
}

/* True if `m` is intact message `i` (front, middle, data, tid) of type `type`. */
static int msg_ok(const osdkit_message *m, int type, int i) {
    const uint8_t *p = NULL;
    size_t len = 0;
    char want[32];
    uint64_t tid = 99999;
    if (osdkit_message_type(m) != type) {
        return 0;
    }
    if (osdkit_message_tid(m, &tid) != 0 || tid != (uint64_t)i) {
        return 0;
    }
    int n = snprintf(want, sizeof(want), "ping %d", i);
    if (osdkit_message_front(m, &p, &len) != 0 || len != (size_t)n || memcmp(p, want, len) != 0) {
        return 0;
    }
    if (osdkit_message_middle(m, &p, &len) != 0 || len != 3 || memcmp(p, "mid", 3) != 0) {
        return 0;
    }
    if (osdkit_message_data(m, &p, &len) != 0 || len != data_len(i)) {
        return 0;
    }
    if (len == 0 && p != NULL) {
        return 0;
    }
    for (size_t j = 0; j < len; j++) {
        if (p[j] != data_byte(i, j)) {
            return 0;
        }
    }
    return 1;
}

/* Index of a "ping <i>" message, or -1. */
static int msg_index(const osdkit_message *m) {
    const uint8_t *p = NULL;
    size_t len = 0;
    char buf[32];
    int i = -1;
    if (osdkit_message_front(m, &p, &len) != 0 || len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (sscanf(buf, "ping %d", &i) != 1) {
        return -1;
    }
    return i;
}

static void wait_connected(const osdkit_connection *c) {
    double deadline = tu_now() + WAIT_S;
    while (osdkit_connection_is_connected(c) != 1 && tu_now() < deadline) {
        tu_sleep_ms(5);
    }
    CHECK_EQ(osdkit_connection_is_connected(c), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* A peer with dispatcher callbacks                                                           */

typedef struct peer {
    osdkit_context *ctx;
    osdkit_messenger *m;
    char addr[128];
    tu_counter connects, accepts, resets, refused;
    tu_counter pings;    /* server: PINGs echoed */
    tu_counter pongs;    /* client: PONGs received intact; log = their tids */
    tu_counter others;   /* second dispatcher: messages the first passed on */
    tu_counter fast;     /* fast-dispatched on a worker thread */
    tu_counter selfmsg;  /* sent to self, delivered without a connection */
    tu_counter drops;    /* dispatcher drop callbacks */
    tu_counter bad;      /* anything wrong seen inside a callback */
    int accepted_type;   /* peer type of the accepted connection */
    osdkit_connection *accepted; /* clone of the last accepted connection */
    int shutdown_inside; /* on T_SELF: shut the messenger down from inside the callback */
    int free_inside;     /* on T_SELF: free the messenger from inside the callback */
    int inside_rc;
} peer;

static void peer_init(peer *p) {
    memset(p, 0, sizeof(*p));
    tu_counter_init(&p->connects);
    tu_counter_init(&p->accepts);
    tu_counter_init(&p->resets);
    tu_counter_init(&p->refused);
    tu_counter_init(&p->pings);
    tu_counter_init(&p->pongs);
    tu_counter_init(&p->others);
    tu_counter_init(&p->fast);
    tu_counter_init(&p->selfmsg);
    tu_counter_init(&p->drops);
    tu_counter_init(&p->bad);
    p->inside_rc = 12345;
}

static void peer_destroy(peer *p) {
    osdkit_connection_free(p->accepted);
    p->accepted = NULL;
    tu_counter_destroy(&p->connects);
    tu_counter_destroy(&p->accepts);
    tu_counter_destroy(&p->resets);
    tu_counter_destroy(&p->refused);
    tu_counter_destroy(&p->pings);
    tu_counter_destroy(&p->pongs);
    tu_counter_destroy(&p->others);
    tu_counter_destroy(&p->fast);
    tu_counter_destroy(&p->selfmsg);
    tu_counter_destroy(&p->drops);
    tu_counter_destroy(&p->bad);
}

static void bad_unless(peer *p, int ok) {
    if (!ok) {
        tu_counter_add(&p->bad, 1);
    }
}

static void peer_drop(void *user) { tu_counter_add(&((peer *)user)->drops, 1); }

/* First dispatcher: echoes PINGs (the received message itself goes back as the PONG, no
 * copy), takes T_SELF, passes everything else on. */
static int first_on_message(void *user, osdkit_message *msg) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch"));
    int ty = osdkit_message_type(msg);
    if (ty == T_SELF) {
        osdkit_connection *c = NULL;
        bad_unless(p, osdkit_message_connection(msg, &c) == -ENOENT && c == NULL);
        bad_unless(p, msg_ok(msg, T_SELF, 7));
        osdkit_message_free(msg);
        if (p->shutdown_inside) {
            p->inside_rc = osdkit_messenger_shutdown(p->m);
        } else if (p->free_inside) {
            osdkit_messenger_free(p->m);
            p->m = NULL;
            p->inside_rc = 0;
        }
        tu_counter_add(&p->selfmsg, 1);
        return OSDKIT_DISPATCH_HANDLED;
    }
    if (ty != T_PING) {
        return OSDKIT_DISPATCH_PASS;
    }
    int i = msg_index(msg);
    bad_unless(p, msg_ok(msg, T_PING, i));
    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_message_connection(msg, &c), 0);
    CHECK(c != NULL);
    bad_unless(p, osdkit_connection_peer_type(c) == OSDKIT_ENTITY_TYPE_CLIENT);
    CHECK_EQ(osdkit_message_set_type(msg, T_PONG), 0);
    CHECK_EQ(osdkit_connection_send(c, msg), 0); /* consumed */
    osdkit_connection_free(c);
    tu_counter_add(&p->pings, 1);
    return OSDKIT_DISPATCH_HANDLED;
}

/* Second dispatcher: counts what the first passed on; receives PONGs on the client. */
static int second_on_message(void *user, osdkit_message *msg) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch"));
    int ty = osdkit_message_type(msg);
    if (ty == T_PONG) {
        int i = msg_index(msg);
        bad_unless(p, msg_ok(msg, T_PONG, i));
        tu_counter_record(&p->pongs, i);
    } else if (ty == T_OTHER) {
        tu_counter_add(&p->others, 1);
    } else {
        return OSDKIT_DISPATCH_PASS;
    }
    osdkit_message_free(msg);
    return OSDKIT_DISPATCH_HANDLED;
}

static void on_connect(void *user, const osdkit_connection *c) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch") && osdkit_connection_id(c) != 0);
    tu_counter_add(&p->connects, 1);
}

static void on_accept(void *user, const osdkit_connection *c) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch"));
    osdkit_connection *keep = NULL;
    CHECK_EQ(osdkit_connection_clone(c, &keep), 0);
    CHECK_EQ(osdkit_connection_id(keep), osdkit_connection_id(c));
    /* Only the main thread reads these, after waiting on `accepts` (its mutex orders them). */
    osdkit_connection_free(p->accepted);
    p->accepted = keep;
    p->accepted_type = osdkit_connection_peer_type(c);
    tu_counter_add(&p->accepts, 1);
}

static void on_reset(void *user, const osdkit_connection *c) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch") && c != NULL);
    tu_counter_add(&p->resets, 1);
}

static void on_refused(void *user, const osdkit_connection *c) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("ms_dispatch") && c != NULL);
    tu_counter_add(&p->refused, 1);
}

static int can_fast(void *user, uint16_t type) {
    (void)user;
    return type == T_FAST;
}

static void on_fast(void *user, osdkit_message *msg) {
    peer *p = (peer *)user;
    bad_unless(p, on_thread("msgr-worker-") && msg_ok(msg, T_FAST, 3));
    osdkit_message_free(msg);
    tu_counter_add(&p->fast, 1);
}

/* A started peer `name` (bound when `bind` is set) with both dispatchers. */
static void peer_start(peer *p, const char *name, const char *dir, int bind) {
    osdkit_dispatcher_ops first, second;
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    first.on_message = first_on_message;
    first.on_connect = on_connect;
    first.on_accept = on_accept;
    first.on_reset = on_reset;
    first.on_refused = on_refused;
    first.can_fast_dispatch = can_fast;
    first.on_fast_message = on_fast;
    second.on_message = second_on_message;

    p->ctx = msgr_context(name, dir);
    CHECK_EQ(osdkit_messenger_new(p->ctx, name, OSDKIT_NONCE_RANDOM, &p->m), 0);
    CHECK(p->m != NULL);
    /* Added tail then head: `first` must still be tried first. */
    CHECK_EQ(osdkit_messenger_add_dispatcher(p->m, &second, p, peer_drop), 0);
    CHECK_EQ(osdkit_messenger_add_dispatcher_head(p->m, &first, p, peer_drop), 0);
    if (bind) {
        CHECK_EQ(osdkit_messenger_bind(p->m, "127.0.0.1:0"), 0);
        int n = osdkit_messenger_get_addr(p->m, p->addr, sizeof(p->addr));
        CHECK(n > 0);
        CHECK_EQ((size_t)n, strlen(p->addr));
        CHECK(strncmp(p->addr, "v2:127.0.0.1:", 13) == 0);
    }
    CHECK_EQ(osdkit_messenger_start(p->m), 0);
    CHECK_EQ(osdkit_messenger_start(p->m), 0); /* idempotent */
}

/* Frees the messenger (drops run here) and the context. */
static void peer_stop(peer *p) {
    osdkit_messenger_free(p->m);
    p->m = NULL;
    osdkit_context_free(p->ctx);
    p->ctx = NULL;
}

/* ---------------------------------------------------------------------------------------- */

static void test_callback_echo(const char *dir) {
    peer srv, cli;
    peer_init(&srv);
    peer_init(&cli);
    peer_start(&srv, "osd.0", dir, 1);
    peer_start(&cli, "client.1", dir, 0);

    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c), 0);
    CHECK(c != NULL);
    char peer_addr[128];
    CHECK_EQ(osdkit_connection_peer_addr(c, peer_addr, sizeof(peer_addr)), (int)strlen(srv.addr));
    CHECK_STREQ(peer_addr, srv.addr);
    CHECK_EQ(osdkit_connection_peer_type(c), OSDKIT_ENTITY_TYPE_OSD);
    /* connect_to again: the same session. */
    osdkit_connection *again = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &again), 0);
    CHECK_EQ(osdkit_connection_id(again), osdkit_connection_id(c));
    osdkit_connection_free(again);

    /* Sent at once: they queue until the handshake is done. */
    const int n = 50;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(osdkit_connection_send(c, make_msg(T_PING, i)), 0);
    }
    CHECK_EQ(osdkit_connection_send(c, make_msg(T_OTHER, 1)), 0);
    CHECK_EQ(osdkit_connection_send(c, make_msg(T_FAST, 3)), 0);

    CHECK_EQ(tu_counter_wait(&cli.pongs, n, WAIT_S), n);
    CHECK_EQ(tu_counter_wait(&srv.others, 1, WAIT_S), 1);
    CHECK_EQ(tu_counter_wait(&srv.fast, 1, WAIT_S), 1);
    CHECK_EQ(tu_counter_get(&srv.pings), n);
    /* Lossless and in order: the PONGs came back as 0, 1, 2, ... */
    for (int i = 0; i < n; i++) {
        CHECK_EQ(cli.pongs.log[i], i);
    }
    CHECK_EQ(tu_counter_wait(&cli.connects, 1, WAIT_S), 1);
    CHECK_EQ(tu_counter_wait(&srv.accepts, 1, WAIT_S), 1);
    CHECK_EQ(srv.accepted_type, OSDKIT_ENTITY_TYPE_CLIENT);
    CHECK(srv.accepted != NULL);
    CHECK_EQ(osdkit_connection_is_connected(srv.accepted), 1);
    CHECK_EQ(osdkit_connection_is_connected(c), 1);
    /* The client's address as the server sees it is the client's announced one. */
    char accepted_addr[128];
    CHECK(osdkit_connection_peer_addr(srv.accepted, accepted_addr, sizeof(accepted_addr)) > 0);
    CHECK(strncmp(accepted_addr, "v2:", 3) == 0 || strncmp(accepted_addr, "any:", 4) == 0);

    /* The server may push to the client on the accepted connection. */
    osdkit_message *push = make_msg(T_PONG, 0);
    CHECK_EQ(osdkit_connection_send(srv.accepted, push), 0);
    CHECK_EQ(tu_counter_wait(&cli.pongs, n + 1, WAIT_S), n + 1);
    CHECK_EQ(osdkit_connection_send_keepalive(c), 0);

    /* Send to self: ms_local, then ms_dispatch, no connection. */
    CHECK_EQ(osdkit_messenger_send_to_self(srv.m, make_msg(T_SELF, 7)), 0);
    CHECK_EQ(tu_counter_wait(&srv.selfmsg, 1, WAIT_S), 1);

    char *json = NULL;
    CHECK_EQ(osdkit_messenger_dump_connections(cli.m, &json), 0);
    CHECK_CONTAINS(json, srv.addr);
    CHECK_CONTAINS(json, "\"connections\"");
    osdkit_string_free(json);

    CHECK_EQ(tu_counter_get(&srv.bad), 0);
    CHECK_EQ(tu_counter_get(&cli.bad), 0);
    CHECK_EQ(tu_counter_get(&srv.drops), 0);
    osdkit_connection_free(c);
    peer_stop(&cli);
    /* Each dispatcher's drop, exactly once, during free. */
    CHECK_EQ(tu_counter_get(&cli.drops), 2);
    peer_stop(&srv);
    CHECK_EQ(tu_counter_get(&srv.drops), 2);
    tu_sleep_ms(50);
    CHECK_EQ(tu_counter_get(&srv.drops), 2);
    CHECK_EQ(tu_counter_get(&cli.drops), 2);
    peer_destroy(&srv);
    peer_destroy(&cli);
    TU_PASS("echo through dispatcher callbacks");
}

/* ---------------------------------------------------------------------------------------- */
/* The pull-style event queue                                                                 */

typedef struct evserver {
    osdkit_messenger *m;
    int accepts, messages, others, last_rc, bad;
} evserver;

static void *evserver_main(void *arg) {
    evserver *s = (evserver *)arg;
    for (;;) {
        osdkit_event ev;
        memset(&ev, 0, sizeof(ev));
        int rc = osdkit_messenger_next_event(s->m, -1, &ev);
        if (rc != 0) {
            s->last_rc = rc;
            break;
        }
        switch (ev.kind) {
        case OSDKIT_EVENT_ACCEPT:
            if (ev.conn == NULL || ev.msg != NULL) {
                s->bad++;
            }
            s->accepts++;
            break;
        case OSDKIT_EVENT_MESSAGE:
            if (ev.conn == NULL || ev.msg == NULL || !msg_ok(ev.msg, T_PING, msg_index(ev.msg))) {
                s->bad++;
                break;
            }
            CHECK_EQ(osdkit_message_set_type(ev.msg, T_PONG), 0);
            CHECK_EQ(osdkit_connection_send(ev.conn, ev.msg), 0);
            ev.msg = NULL; /* consumed by the send */
            s->messages++;
            break;
        default:
            s->others++;
            break;
        }
        osdkit_event_clear(&ev);
        if (ev.kind != OSDKIT_EVENT_NONE || ev.msg != NULL || ev.conn != NULL) {
            s->bad++;
        }
    }
    return NULL;
}

static void test_event_queue(const char *dir) {
    osdkit_context *sctx = msgr_context("osd.1", dir);
    osdkit_context *cctx = msgr_context("client.2", dir);
    evserver s;
    memset(&s, 0, sizeof(s));
    CHECK_EQ(osdkit_messenger_new(sctx, "osd.1", 0, &s.m), 0);
    CHECK_EQ(osdkit_messenger_set_policy(s.m, "client", OSDKIT_POLICY_STATELESS_SERVER), 0);
    CHECK_EQ(osdkit_messenger_enable_event_queue(s.m), 0);
    CHECK_EQ(osdkit_messenger_enable_event_queue(s.m), 0);
    CHECK_EQ(osdkit_messenger_bind(s.m, "v2:127.0.0.1:0"), 0);
    char saddr[128];
    int alen = osdkit_messenger_get_addr(s.m, saddr, sizeof(saddr));
    CHECK(alen > 0);
    CHECK(strcmp(saddr + alen - 2, "/0") == 0); /* nonce 0 as asked */
    CHECK_EQ(osdkit_messenger_start(s.m), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, evserver_main, &s), 0);

    osdkit_messenger *cm = NULL;
    CHECK_EQ(osdkit_messenger_new(cctx, "client.2", 4294967295LL, &cm), 0);
    CHECK_EQ(osdkit_messenger_set_policy(cm, "osd", OSDKIT_POLICY_LOSSY_CLIENT), 0);
    CHECK_EQ(osdkit_messenger_enable_event_queue(cm), 0);
    CHECK_EQ(osdkit_messenger_start(cm), 0);
    CHECK_EQ(osdkit_messenger_enable_event_queue(cm), -EINVAL); /* after start */
    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(cm, "osd", saddr, &c), 0);
    const int n = 40;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(osdkit_connection_send(c, make_msg(T_PING, i)), 0);
    }
    int connects = 0, pongs = 0, next = 0;
    double deadline = tu_now() + WAIT_S;
    while ((connects < 1 || pongs < n) && tu_now() < deadline) {
        osdkit_event ev;
        memset(&ev, 0, sizeof(ev));
        int rc = osdkit_messenger_next_event(cm, 100, &ev);
        if (rc == -ETIMEDOUT) {
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK(ev.conn != NULL);
        CHECK_EQ(osdkit_connection_id(ev.conn), osdkit_connection_id(c));
        if (ev.kind == OSDKIT_EVENT_CONNECT) {
            CHECK(ev.msg == NULL);
            connects++;
        } else {
            CHECK_EQ(ev.kind, OSDKIT_EVENT_MESSAGE);
            CHECK(ev.msg != NULL);
            CHECK(msg_ok(ev.msg, T_PONG, next));
            /* Take the message over from the event before clearing it. */
            osdkit_message *mine = ev.msg;
            ev.msg = NULL;
            osdkit_message_free(mine);
            next++;
            pongs++;
        }
        osdkit_event_clear(&ev);
        osdkit_event_clear(&ev); /* harmless twice */
    }
    CHECK_EQ(connects, 1);
    CHECK_EQ(pongs, n);

    /* Idle: timeouts. */
    osdkit_event ev;
    memset(&ev, 0, sizeof(ev));
    double t0 = tu_now();
    CHECK_EQ(osdkit_messenger_next_event(cm, 60, &ev), -ETIMEDOUT);
    double waited = tu_now() - t0;
    CHECK(waited >= 0.055);
    CHECK(waited < 5.0);
    CHECK_EQ(osdkit_messenger_next_event(cm, 0, &ev), -ETIMEDOUT);
    CHECK(ev.msg == NULL && ev.conn == NULL && ev.kind == OSDKIT_EVENT_NONE);

    /* Shutting the server down wakes its blocked thread with -ESHUTDOWN, and the lossy client
     * session sees the fault as a RESET event. */
    CHECK_EQ(osdkit_messenger_shutdown(s.m), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(s.last_rc, -ESHUTDOWN);
    CHECK_EQ(s.accepts, 1);
    CHECK_EQ(s.messages, n);
    CHECK_EQ(s.bad, 0);
    CHECK_EQ(osdkit_messenger_next_event(s.m, 0, &ev), -ESHUTDOWN);
    int resets = 0;
    deadline = tu_now() + WAIT_S;
    while (resets == 0 && tu_now() < deadline) {
        int rc = osdkit_messenger_next_event(cm, 100, &ev);
        if (rc == -ETIMEDOUT) {
            continue;
        }
        CHECK_EQ(rc, 0);
        if (ev.kind == OSDKIT_EVENT_RESET) {
            CHECK(ev.conn != NULL && ev.msg == NULL);
            CHECK_EQ(osdkit_connection_id(ev.conn), osdkit_connection_id(c));
            resets++;
        }
        osdkit_event_clear(&ev);
    }
    CHECK_EQ(resets, 1);
    /* The lossy session is closed: sending fails. */
    CHECK_EQ(osdkit_connection_is_connected(c), 0);
    CHECK(osdkit_connection_send(c, make_msg(T_PING, 0)) < 0);

    /* Events left in the queue are discarded at shutdown (ASan would see a leak otherwise). */
    CHECK_EQ(osdkit_messenger_send_to_self(cm, make_msg(T_PING, 1)), 0);
    tu_sleep_ms(50);
    CHECK_EQ(osdkit_messenger_shutdown(cm), 0);
    CHECK_EQ(osdkit_messenger_next_event(cm, 1000, &ev), -ESHUTDOWN);
    CHECK_EQ(osdkit_messenger_send_to_self(cm, make_msg(T_PING, 2)), -ESHUTDOWN);
    osdkit_connection_free(c);
    osdkit_messenger_free(cm);
    osdkit_messenger_free(s.m);
    osdkit_context_free(cctx);
    osdkit_context_free(sctx);
    TU_PASS("echo through the event queue");
}

/* ---------------------------------------------------------------------------------------- */
/* Zero-copy data                                                                             */

typedef struct lent {
    uint8_t *buf;
    size_t len;
    tu_counter freed;
} lent;

static void lent_free(void *user) {
    lent *l = (lent *)user;
    tu_counter_add(&l->freed, 1);
}

static void lent_init(lent *l, size_t len, int i) {
    memset(l, 0, sizeof(*l));
    tu_counter_init(&l->freed);
    l->len = len;
    l->buf = (uint8_t *)malloc(len);
    CHECK(l->buf != NULL);
    for (size_t j = 0; j < len; j++) {
        l->buf[j] = data_byte(i, j);
    }
}

static void lent_destroy(lent *l) {
    free(l->buf);
    tu_counter_destroy(&l->freed);
}

static void test_zero_copy(const char *dir) {
    const uint8_t *p = NULL;
    size_t len = 0;

    /* Locally: the data segment is the caller's buffer itself; freed with the message. */
    lent a;
    lent_init(&a, 1000, 1);
    osdkit_message *m = NULL;
    CHECK_EQ(osdkit_message_new(T_PING, &m), 0);
    CHECK_EQ(osdkit_message_set_data_borrowed(m, a.buf, a.len, lent_free, &a), 0);
    CHECK_EQ(osdkit_message_data(m, &p, &len), 0);
    CHECK(p == a.buf);
    CHECK_EQ(len, a.len);
    /* A clone shares the buffer: released only when both are gone. */
    osdkit_message *m2 = NULL;
    CHECK_EQ(osdkit_message_clone(m, &m2), 0);
    CHECK_EQ(osdkit_message_data(m2, &p, &len), 0);
    CHECK(p == a.buf);
    osdkit_message_free(m);
    CHECK_EQ(tu_counter_get(&a.freed), 0);
    osdkit_message_free(m2);
    CHECK_EQ(tu_counter_get(&a.freed), 1);

    /* Replacing the data releases the old buffer at once. */
    CHECK_EQ(osdkit_message_new(T_PING, &m), 0);
    CHECK_EQ(osdkit_message_set_data_borrowed(m, a.buf, a.len, lent_free, &a), 0);
    CHECK_EQ(osdkit_message_set_data(m, "xy", 2), 0);
    CHECK_EQ(tu_counter_get(&a.freed), 2);
    CHECK_EQ(osdkit_message_data(m, &p, &len), 0);
    CHECK(p != a.buf && len == 2 && memcmp(p, "xy", 2) == 0);
    /* Failures leave the buffer the caller's: free_fn not called. */
    CHECK_EQ(osdkit_message_set_data_borrowed(m, NULL, 10, lent_free, &a), -EINVAL);
    CHECK_EQ(osdkit_message_set_data_borrowed(NULL, a.buf, a.len, lent_free, &a), -EINVAL);
    CHECK_EQ(tu_counter_get(&a.freed), 2);
    /* Empty borrowed data: still released exactly once. */
    CHECK_EQ(osdkit_message_set_data_borrowed(m, NULL, 0, lent_free, &a), 0);
    CHECK_EQ(osdkit_message_data(m, &p, &len), 0);
    CHECK(p == NULL && len == 0);
    osdkit_message_free(m);
    CHECK_EQ(tu_counter_get(&a.freed), 3);
    /* A message consumed by a failing send releases its buffer too. */
    CHECK_EQ(osdkit_message_new(T_PING, &m), 0);
    CHECK_EQ(osdkit_message_set_data_borrowed(m, a.buf, a.len, lent_free, &a), 0);
    CHECK_EQ(osdkit_connection_send(NULL, m), -EINVAL);
    CHECK_EQ(tu_counter_get(&a.freed), 4);
    lent_destroy(&a);

    /* Over the wire: the server echoes it back; released exactly once, after the peer
     * acknowledged it (lossless sessions keep it until then). */
    peer srv, cli;
    peer_init(&srv);
    peer_init(&cli);
    peer_start(&srv, "osd.2", dir, 1);
    peer_start(&cli, "client.3", dir, 0);
    lent b;
    const int idx = 1000;
    lent_init(&b, data_len(idx), idx);
    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c), 0);
    m = make_msg(T_PING, idx);
    CHECK_EQ(osdkit_message_set_data_borrowed(m, b.buf, b.len, lent_free, &b), 0);
    CHECK_EQ(osdkit_connection_send(c, m), 0);
    CHECK_EQ(tu_counter_wait(&cli.pongs, 1, WAIT_S), 1);
    CHECK_EQ(cli.pongs.log[0], idx);
    /* second_on_message checked the data against the pattern. */
    CHECK_EQ(tu_counter_get(&cli.bad), 0);
    CHECK_EQ(tu_counter_get(&srv.bad), 0);
    /* Keep traffic going so that the ack comes back, then the buffer is released. */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(osdkit_connection_send(c, make_msg(T_PING, i)), 0);
    }
    CHECK_EQ(tu_counter_wait(&cli.pongs, 4, WAIT_S), 4);
    CHECK_EQ(tu_counter_wait(&b.freed, 1, WAIT_S), 1);
    osdkit_connection_free(c);
    peer_stop(&cli);
    peer_stop(&srv);
    tu_sleep_ms(20);
    CHECK_EQ(tu_counter_get(&b.freed), 1);
    lent_destroy(&b);

    /* Queued and never sent (the messenger shut down first): released at shutdown. */
    peer_init(&cli);
    peer_start(&cli, "client.4", dir, 0);
    lent q;
    lent_init(&q, 4096, 2);
    /* Nothing listens on port 1: the message stays queued while the session retries. */
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", "v2:127.0.0.1:1/0", &c), 0);
    m = make_msg(T_PING, 2);
    CHECK_EQ(osdkit_message_set_data_borrowed(m, q.buf, q.len, lent_free, &q), 0);
    CHECK_EQ(osdkit_connection_send(c, m), 0);
    peer_stop(&cli);
    CHECK_EQ(tu_counter_get(&q.freed), 1);
    osdkit_connection_free(c);
    CHECK_EQ(tu_counter_get(&q.freed), 1);
    lent_destroy(&q);
    peer_destroy(&srv);
    peer_destroy(&cli);
    TU_PASS("zero-copy data, released exactly once");
}

/* ---------------------------------------------------------------------------------------- */
/* Mark down, refused, reset                                                                  */

static void test_mark_down(const char *dir) {
    peer srv, cli;
    peer_init(&srv);
    peer_init(&cli);
    peer_start(&srv, "osd.3", dir, 1);
    peer_start(&cli, "client.5", dir, 0);

    osdkit_connection *c1 = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c1), 0);
    wait_connected(c1);
    CHECK_EQ(osdkit_connection_mark_down(c1), 0);
    CHECK_EQ(osdkit_connection_is_connected(c1), 0);
    CHECK_EQ(osdkit_connection_send(c1, make_msg(T_PING, 0)), -ENOTCONN);
    CHECK_CONTAINS(osdkit_last_error(), "closed");

    /* A new session to the same peer works. */
    osdkit_connection *c2 = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c2), 0);
    CHECK(osdkit_connection_id(c2) != osdkit_connection_id(c1));
    CHECK_EQ(osdkit_connection_send(c2, make_msg(T_PING, 1)), 0);
    CHECK_EQ(tu_counter_wait(&cli.pongs, 1, WAIT_S), 1);
    /* Marked down by address. */
    CHECK_EQ(osdkit_messenger_mark_down(cli.m, srv.addr), 0);
    CHECK_EQ(osdkit_connection_send(c2, make_msg(T_PING, 2)), -ENOTCONN);

    /* mark_down_all. */
    osdkit_connection *c3 = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c3), 0);
    wait_connected(c3);
    CHECK_EQ(osdkit_messenger_mark_down_all(cli.m), 0);
    CHECK_EQ(osdkit_connection_send(c3, make_msg(T_PING, 3)), -ENOTCONN);
    /* mark_down delivers no RESET event. */
    tu_sleep_ms(100);
    CHECK_EQ(tu_counter_get(&cli.resets), 0);

    /* Server side marks the client down: the lossy client session resets. */
    CHECK_EQ(osdkit_messenger_set_policy(cli.m, "osd", OSDKIT_POLICY_LOSSY_CLIENT), 0);
    osdkit_connection *c4 = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", srv.addr, &c4), 0);
    CHECK_EQ(osdkit_connection_send(c4, make_msg(T_PING, 4)), 0);
    CHECK_EQ(tu_counter_wait(&cli.pongs, 2, WAIT_S), 2);
    CHECK_EQ(osdkit_messenger_mark_down_all(srv.m), 0);
    CHECK_EQ(tu_counter_wait(&cli.resets, 1, WAIT_S), 1);
    CHECK_EQ(osdkit_connection_send(c4, make_msg(T_PING, 5)), -ENOTCONN);

    CHECK_EQ(tu_counter_get(&cli.bad), 0);
    CHECK_EQ(tu_counter_get(&srv.bad), 0);
    osdkit_connection_free(c1);
    osdkit_connection_free(c2);
    osdkit_connection_free(c3);
    osdkit_connection_free(c4);
    peer_stop(&cli);
    peer_stop(&srv);
    peer_destroy(&srv);
    peer_destroy(&cli);
    TU_PASS("mark down, and sends on a closed connection fail");
}

static void test_refused(const char *dir) {
    /* An address nothing listens on: bind a messenger, note its port, free it. */
    osdkit_context *ctx = msgr_context("osd.9", dir);
    osdkit_messenger *gone = NULL;
    char addr[128];
    CHECK_EQ(osdkit_messenger_new(ctx, "osd.9", OSDKIT_NONCE_RANDOM, &gone), 0);
    CHECK_EQ(osdkit_messenger_bind(gone, "127.0.0.1:0"), 0);
    CHECK(osdkit_messenger_get_addr(gone, addr, sizeof(addr)) > 0);
    osdkit_messenger_free(gone);
    osdkit_context_free(ctx);

    peer cli;
    peer_init(&cli);
    peer_start(&cli, "client.6", dir, 0);
    CHECK_EQ(osdkit_messenger_set_policy(cli.m, "osd", OSDKIT_POLICY_LOSSY_CLIENT), 0);
    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(cli.m, "osd", addr, &c), 0);
    /* Queued, or already refused: the handshake runs in the background. */
    int rc = osdkit_connection_send(c, make_msg(T_PING, 0));
    CHECK(rc == 0 || rc == -ENOTCONN);
    CHECK_EQ(tu_counter_wait(&cli.refused, 1, WAIT_S), 1);
    CHECK_EQ(osdkit_connection_is_connected(c), 0);
    CHECK_EQ(osdkit_connection_send(c, make_msg(T_PING, 1)), -ENOTCONN);
    CHECK_EQ(tu_counter_get(&cli.connects), 0);
    CHECK_EQ(tu_counter_get(&cli.bad), 0);
    osdkit_connection_free(c);
    peer_stop(&cli);
    peer_destroy(&cli);
    TU_PASS("refused connection");
}

/* ---------------------------------------------------------------------------------------- */
/* Shutdown and free from inside a callback; after shutdown                                   */

static void test_inside_callbacks(const char *dir) {
    osdkit_dispatcher_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.on_message = first_on_message;

    /* Shutdown from inside on_message: does not wait for itself. */
    peer a;
    peer_init(&a);
    a.shutdown_inside = 1;
    a.ctx = msgr_context("osd.5", dir);
    CHECK_EQ(osdkit_messenger_new(a.ctx, "osd.5", OSDKIT_NONCE_RANDOM, &a.m), 0);
    CHECK_EQ(osdkit_messenger_add_dispatcher(a.m, &ops, &a, peer_drop), 0);
    CHECK_EQ(osdkit_messenger_start(a.m), 0);
    CHECK_EQ(osdkit_messenger_send_to_self(a.m, make_msg(T_SELF, 7)), 0);
    CHECK_EQ(tu_counter_wait(&a.selfmsg, 1, WAIT_S), 1);
    CHECK_EQ(a.inside_rc, 0);
    /* Shut down: no restart, no connect, no new dispatcher (its drop runs at once). */
    CHECK_EQ(osdkit_messenger_start(a.m), -ESHUTDOWN);
    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(a.m, "osd", "v2:127.0.0.1:1/0", &c), -ESHUTDOWN);
    CHECK(c == NULL);
    CHECK_EQ(osdkit_messenger_add_dispatcher(a.m, &ops, &a, peer_drop), -ESHUTDOWN);
    CHECK_EQ(tu_counter_get(&a.drops), 1);
    CHECK_EQ(osdkit_messenger_bind(a.m, "127.0.0.1:0"), -ESHUTDOWN);
    CHECK_EQ(osdkit_messenger_enable_event_queue(a.m), -ESHUTDOWN);
    CHECK_EQ(osdkit_messenger_shutdown(a.m), 0); /* idempotent */
    peer_stop(&a);
    /* The shutdown ran inside a callback, so the dispatch thread may still be returning from
     * it: the dispatcher's drop runs there, at most a moment later. */
    CHECK_EQ(tu_counter_wait(&a.drops, 2, WAIT_S), 2);
    CHECK_EQ(tu_counter_get(&a.bad), 0);
    peer_destroy(&a);

    /* Free from inside on_message: the drop runs after the callback returns. */
    peer b;
    peer_init(&b);
    b.free_inside = 1;
    b.ctx = msgr_context("osd.6", dir);
    CHECK_EQ(osdkit_messenger_new(b.ctx, "osd.6", OSDKIT_NONCE_RANDOM, &b.m), 0);
    CHECK_EQ(osdkit_messenger_add_dispatcher(b.m, &ops, &b, peer_drop), 0);
    CHECK_EQ(osdkit_messenger_start(b.m), 0);
    CHECK_EQ(osdkit_messenger_send_to_self(b.m, make_msg(T_SELF, 7)), 0);
    CHECK_EQ(tu_counter_wait(&b.selfmsg, 1, WAIT_S), 1);
    CHECK_EQ(tu_counter_wait(&b.drops, 1, WAIT_S), 1);
    CHECK(b.m == NULL);
    tu_sleep_ms(50);
    CHECK_EQ(tu_counter_get(&b.drops), 1);
    CHECK_EQ(tu_counter_get(&b.bad), 0);
    osdkit_context_free(b.ctx);
    peer_destroy(&b);

    /* A never-started messenger frees cleanly, dropping its dispatcher once. */
    peer d;
    peer_init(&d);
    d.ctx = msgr_context("osd.7", dir);
    CHECK_EQ(osdkit_messenger_new(d.ctx, "osd.7", OSDKIT_NONCE_RANDOM, &d.m), 0);
    CHECK_EQ(osdkit_messenger_add_dispatcher(d.m, &ops, &d, peer_drop), 0);
    CHECK_EQ(osdkit_messenger_send_to_self(d.m, make_msg(T_SELF, 7)), 0); /* queued, discarded */
    peer_stop(&d);
    CHECK_EQ(tu_counter_get(&d.drops), 1);
    CHECK_EQ(tu_counter_get(&d.selfmsg), 0);
    peer_destroy(&d);
    TU_PASS("shutdown and free from inside a callback");
}

/* ---------------------------------------------------------------------------------------- */
/* Bad arguments                                                                              */

static void test_bad_args(const char *dir) {
    osdkit_context *ctx = msgr_context("osd.8", dir);
    osdkit_messenger *m = NULL;
    osdkit_dispatcher_ops ops;
    memset(&ops, 0, sizeof(ops));
    ops.on_message = second_on_message;
    peer p;
    peer_init(&p);

    CHECK_EQ(osdkit_messenger_new(NULL, "osd.8", OSDKIT_NONCE_RANDOM, &m), -EINVAL);
    CHECK_EQ(osdkit_messenger_new(ctx, NULL, OSDKIT_NONCE_RANDOM, &m), -EINVAL);
    CHECK_EQ(osdkit_messenger_new(ctx, "nodot", OSDKIT_NONCE_RANDOM, &m), -EINVAL);
    CHECK_EQ(osdkit_messenger_new(ctx, "bogus.1", OSDKIT_NONCE_RANDOM, &m), -EINVAL);
    CHECK_EQ(osdkit_messenger_new(ctx, "osd.8", -2, &m), -EINVAL);
    CHECK_EQ(osdkit_messenger_new(ctx, "osd.8", 4294967296LL, &m), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "nonce");
    CHECK_EQ(osdkit_messenger_new(ctx, "osd.8", OSDKIT_NONCE_RANDOM, NULL), -EINVAL);
    CHECK(m == NULL);
    CHECK_EQ(osdkit_messenger_new(ctx, "osd.8", 1234, &m), 0);
    CHECK(m != NULL);

    char buf[128];
    CHECK_EQ(osdkit_messenger_get_addr(m, buf, sizeof(buf)), -ENOENT);
    CHECK_EQ(osdkit_messenger_bind(NULL, "127.0.0.1:0"), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind(m, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind(m, "not an address"), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "not an address");
    CHECK_EQ(osdkit_messenger_bind(m, "v1:127.0.0.1:0"), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind(m, "127.0.0.1:99999"), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind_port_range(m, "not an ip"), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind_port_range(m, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_bind(m, "127.0.0.1:0"), 0);
    int n = osdkit_messenger_get_addr(m, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK(strcmp(buf + n - 5, "/1234") == 0);
    char small[8];
    memset(small, 'z', sizeof(small));
    CHECK_EQ(osdkit_messenger_get_addr(m, small, sizeof(small)), -ERANGE);
    CHECK_EQ(small[0], 'z'); /* nothing written */
    CHECK_EQ(osdkit_messenger_get_addr(m, buf, (size_t)n), -ERANGE);
    CHECK_EQ(osdkit_messenger_get_addr(m, buf, (size_t)n + 1), n);
    CHECK_EQ(osdkit_messenger_get_addr(m, NULL, 128), -EINVAL);
    CHECK_EQ(osdkit_messenger_get_addr(NULL, buf, sizeof(buf)), -EINVAL);

    CHECK_EQ(osdkit_messenger_set_policy(m, "bogus", OSDKIT_POLICY_LOSSY_CLIENT), -EINVAL);
    CHECK_EQ(osdkit_messenger_set_policy(m, NULL, OSDKIT_POLICY_LOSSY_CLIENT), -EINVAL);
    CHECK_EQ(osdkit_messenger_set_policy(m, "osd", 99), -EINVAL);
    CHECK_EQ(osdkit_messenger_set_policy(NULL, "osd", OSDKIT_POLICY_LOSSY_CLIENT), -EINVAL);
    CHECK_EQ(osdkit_messenger_set_policy(m, "mon", OSDKIT_POLICY_LOSSY_CLIENT), 0);
    CHECK_EQ(osdkit_messenger_set_default_policy(m, 0), -EINVAL);
    CHECK_EQ(osdkit_messenger_set_default_policy(m, OSDKIT_POLICY_LOSSLESS_PEER), 0);

    /* Failed registration: drop is not called, user stays ours. */
    CHECK_EQ(osdkit_messenger_add_dispatcher(m, NULL, &p, peer_drop), -EINVAL);
    CHECK_EQ(osdkit_messenger_add_dispatcher(NULL, &ops, &p, peer_drop), -EINVAL);
    CHECK_EQ(osdkit_messenger_add_dispatcher_head(NULL, &ops, &p, peer_drop), -EINVAL);
    CHECK_EQ(tu_counter_get(&p.drops), 0);

    osdkit_event ev;
    memset(&ev, 0, sizeof(ev));
    CHECK_EQ(osdkit_messenger_next_event(m, 0, &ev), -EINVAL); /* queue not enabled */
    CHECK_CONTAINS(osdkit_last_error(), "event queue");
    CHECK_EQ(osdkit_messenger_next_event(NULL, 0, &ev), -EINVAL);
    CHECK_EQ(osdkit_messenger_enable_event_queue(NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_enable_event_queue(m), 0);
    CHECK_EQ(osdkit_messenger_next_event(m, 0, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_next_event(m, 0, &ev), -ETIMEDOUT);

    osdkit_connection *c = NULL;
    CHECK_EQ(osdkit_messenger_connect(m, "osd", "v2:127.0.0.1:1/0", &c), -EINVAL); /* not started */
    CHECK_EQ(osdkit_messenger_start(NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_start(m), 0);
    CHECK_EQ(osdkit_messenger_bind(m, "127.0.0.1:0"), -EINVAL); /* after start */
    CHECK_EQ(osdkit_messenger_connect(m, "bogus", "v2:127.0.0.1:1/0", &c), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "bogus");
    CHECK_EQ(osdkit_messenger_connect(m, NULL, "v2:127.0.0.1:1/0", &c), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(m, "osd", "nonsense", &c), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(m, "osd", "v1:127.0.0.1:6789/0", &c), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(m, "osd", NULL, &c), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(m, "osd", "v2:127.0.0.1:1/0", NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(NULL, "osd", "v2:127.0.0.1:1/0", &c), -EINVAL);
    CHECK(c == NULL);
    CHECK_EQ(osdkit_messenger_mark_down(m, "nonsense"), -EINVAL);
    CHECK_EQ(osdkit_messenger_mark_down(m, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_mark_down(m, "v2:127.0.0.1:2/0"), 0); /* no such session: fine */
    CHECK_EQ(osdkit_messenger_mark_down_all(NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_dump_connections(m, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_dump_connections(NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_send_to_self(m, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_send_to_self(NULL, make_msg(T_PING, 0)), -EINVAL); /* consumed */
    CHECK_EQ(osdkit_messenger_shutdown(NULL), -EINVAL);

    /* Messages. */
    osdkit_message *msg = NULL;
    const uint8_t *ptr = NULL;
    size_t len = 0;
    uint64_t tid = 0;
    CHECK_EQ(osdkit_message_new(1, NULL), -EINVAL);
    CHECK_EQ(osdkit_message_new(0xffff, &msg), 0);
    CHECK_EQ(osdkit_message_type(msg), 0xffff);
    CHECK_EQ(osdkit_message_priority(msg), OSDKIT_MSG_PRIO_DEFAULT);
    CHECK_EQ(osdkit_message_tid(msg, &tid), 0);
    CHECK_EQ(tid, 0);
    CHECK_EQ(osdkit_message_set_priority(msg, OSDKIT_MSG_PRIO_HIGH), 0);
    CHECK_EQ(osdkit_message_priority(msg), OSDKIT_MSG_PRIO_HIGH);
    CHECK_EQ(osdkit_message_set_tid(msg, 0x123456789abcULL), 0);
    CHECK_EQ(osdkit_message_tid(msg, &tid), 0);
    CHECK(tid == 0x123456789abcULL);
    CHECK_EQ(osdkit_message_set_type(msg, 42), 0);
    CHECK_EQ(osdkit_message_type(msg), 42);
    CHECK_EQ(osdkit_message_type(NULL), -EINVAL);
    CHECK_EQ(osdkit_message_priority(NULL), -EINVAL);
    CHECK_EQ(osdkit_message_tid(NULL, &tid), -EINVAL);
    CHECK_EQ(osdkit_message_tid(msg, NULL), -EINVAL);
    CHECK_EQ(osdkit_message_set_type(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_message_set_priority(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_message_set_tid(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_message_set_front(NULL, "a", 1), -EINVAL);
    CHECK_EQ(osdkit_message_set_front(msg, NULL, 5), -EINVAL);
    CHECK_EQ(osdkit_message_set_middle(msg, NULL, 5), -EINVAL);
    CHECK_EQ(osdkit_message_set_data(msg, NULL, 5), -EINVAL);
    CHECK_EQ(osdkit_message_set_front(msg, NULL, 0), 0);
    CHECK_EQ(osdkit_message_front(msg, &ptr, &len), 0);
    CHECK(ptr == NULL && len == 0);
    CHECK_EQ(osdkit_message_set_front(msg, "hello", 5), 0);
    CHECK_EQ(osdkit_message_front(msg, &ptr, &len), 0);
    CHECK(len == 5 && memcmp(ptr, "hello", 5) == 0);
    CHECK_EQ(osdkit_message_front(msg, NULL, &len), -EINVAL);
    CHECK_EQ(osdkit_message_front(msg, &ptr, NULL), -EINVAL);
    CHECK_EQ(osdkit_message_middle(NULL, &ptr, &len), -EINVAL);
    CHECK_EQ(osdkit_message_data(NULL, &ptr, &len), -EINVAL);
    CHECK_EQ(osdkit_message_connection(msg, &c), -ENOENT);
    CHECK_EQ(osdkit_message_connection(msg, NULL), -EINVAL);
    CHECK_EQ(osdkit_message_connection(NULL, &c), -EINVAL);
    CHECK_EQ(osdkit_message_clone(NULL, &msg), -EINVAL);
    CHECK_EQ(osdkit_message_clone(msg, NULL), -EINVAL);

    /* Connections. */
    CHECK_EQ(osdkit_connection_send(NULL, msg), -EINVAL); /* msg consumed */
    msg = NULL;
    CHECK_EQ(osdkit_connection_send(NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_messenger_connect(m, "osd", "v2:127.0.0.1:1/0", &c), 0);
    CHECK_EQ(osdkit_connection_send(c, NULL), -EINVAL);
    CHECK_EQ(osdkit_connection_mark_down(NULL), -EINVAL);
    CHECK_EQ(osdkit_connection_send_keepalive(NULL), -EINVAL);
    CHECK_EQ(osdkit_connection_is_connected(NULL), -EINVAL);
    CHECK_EQ(osdkit_connection_peer_type(NULL), -EINVAL);
    CHECK_EQ(osdkit_connection_id(NULL), -EINVAL);
    CHECK(osdkit_connection_id(c) > 0);
    CHECK_EQ(osdkit_connection_peer_addr(NULL, buf, sizeof(buf)), -EINVAL);
    CHECK_EQ(osdkit_connection_peer_addr(c, NULL, sizeof(buf)), -EINVAL);
    CHECK_EQ(osdkit_connection_peer_addr(c, small, sizeof(small)), -ERANGE);
    CHECK_EQ(osdkit_connection_peer_addr(c, buf, sizeof(buf)), (int)strlen("v2:127.0.0.1:1/0"));
    CHECK_STREQ(buf, "v2:127.0.0.1:1/0");
    CHECK_EQ(osdkit_connection_clone(NULL, &c), -EINVAL);
    CHECK_EQ(osdkit_connection_clone(c, NULL), -EINVAL);

    /* NULL is ignored by the release functions. */
    osdkit_connection_free(NULL);
    osdkit_message_free(NULL);
    osdkit_messenger_free(NULL);
    osdkit_event_clear(NULL);

    osdkit_connection_free(c);
    osdkit_messenger_free(m);
    osdkit_context_free(ctx);
    CHECK_EQ(tu_counter_get(&p.drops), 0);
    peer_destroy(&p);
    TU_PASS("bad arguments");
}

int main(void) {
    char dir[256];
    tu_mkdtemp(dir);
    test_bad_args(dir);
    test_callback_echo(dir);
    test_event_queue(dir);
    test_zero_copy(dir);
    test_mark_down(dir);
    test_refused(dir);
    test_inside_callbacks(dir);
    tu_rm_rf(dir);
    printf("all messenger tests passed\n");
    return 0;
}
