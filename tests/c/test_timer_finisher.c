/*
 * SafeTimer and Finisher through the C ABI: ordering, cancel, drop-exactly-once, callbacks that
 * call back into the library, shutdown semantics.
 */
#include "test_util.h"

#include <math.h>

/* ---------------------------------------------------------------------------------------- */
/* Timer                                                                                      */

typedef struct timer_fixture {
    osdkit_timer *t;
    tu_counter runs;  /* log of event ids, in run order */
    tu_counter drops; /* log of event ids, in drop order */
} timer_fixture;

typedef struct ev {
    timer_fixture *fx;
    int id;
    uint64_t timer_id;   /* set after add */
    struct ev *cancel;   /* event to cancel from inside this callback */
    int cancel_result;   /* what that cancel returned */
    int chain;           /* > 0: add another event (id + 1, chain - 1) from inside */
    int shutdown_inside; /* call osdkit_timer_shutdown from inside */
} ev;

static ev *ev_new(timer_fixture *fx, int id) {
    ev *e = (ev *)calloc(1, sizeof(ev));
    CHECK(e != NULL);
    e->fx = fx;
    e->id = id;
    e->cancel_result = 12345;
    return e;
}

static void ev_drop(void *user) {
    ev *e = (ev *)user;
    tu_counter_record(&e->fx->drops, e->id);
    free(e);
}

static void ev_run(void *user);

/* Adds `e`; its id goes to `*id_out` (may be NULL), never into `e`, which may already be freed by
 * the time add returns when the delay is short. */
static int ev_add_id(timer_fixture *fx, ev *e, double secs, uint64_t *id_out) {
    return osdkit_timer_add_after(fx->t, secs, ev_run, e, ev_drop, id_out);
}

static int ev_add(timer_fixture *fx, ev *e, double secs) {
    return ev_add_id(fx, e, secs, NULL);
}

static void ev_run(void *user) {
    ev *e = (ev *)user;
    if (e->cancel != NULL) {
        e->cancel_result = osdkit_timer_cancel(e->fx->t, e->cancel->timer_id);
        /* Report through the run log: 1000 + (-result). */
        tu_counter_record(&e->fx->runs, 1000 - e->cancel_result);
    }
    if (e->chain > 0) {
        ev *next = ev_new(e->fx, e->id + 1);
        next->chain = e->chain - 1;
        CHECK_EQ(ev_add(e->fx, next, 0.01), 0);
    }
    if (e->shutdown_inside) {
        CHECK_EQ(osdkit_timer_shutdown(e->fx->t), 0);
    }
    tu_counter_record(&e->fx->runs, e->id);
}

static void fixture_init(timer_fixture *fx, osdkit_context *ctx, const char *name) {
    memset(fx, 0, sizeof(*fx));
    tu_counter_init(&fx->runs);
    tu_counter_init(&fx->drops);
    CHECK_EQ(osdkit_timer_new(ctx, name, &fx->t), 0);
    CHECK(fx->t != NULL);
}

static void fixture_destroy(timer_fixture *fx) {
    osdkit_timer_free(fx->t);
    tu_counter_destroy(&fx->runs);
    tu_counter_destroy(&fx->drops);
}

static int sorted_contains(const int *log, int n, int id) {
    for (int i = 0; i < n; i++) {
        if (log[i] == id) {
            return 1;
        }
    }
    return 0;
}

static void test_timer_order(void) {
    timer_fixture fx;
    fixture_init(&fx, NULL, "order");
    /* 1..5 at the same delay run in the order added; 0 has a shorter delay and runs first.
     * The delays leave a second for the adds and the pending check, so none fires early. */
    for (int i = 1; i <= 5; i++) {
        CHECK_EQ(ev_add(&fx, ev_new(&fx, i), 2.0), 0);
    }
    CHECK_EQ(ev_add(&fx, ev_new(&fx, 0), 1.0), 0);
    CHECK_EQ(osdkit_timer_pending(fx.t), 6);
    CHECK_EQ(tu_counter_wait(&fx.runs, 6, 10.0), 6);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(fx.runs.log[i], i);
    }
    /* Each fired event's drop runs once, after its callback. */
    CHECK_EQ(tu_counter_wait(&fx.drops, 6, 5.0), 6);
    tu_sleep_ms(50);
    CHECK_EQ(tu_counter_get(&fx.drops), 6);
    CHECK_EQ(osdkit_timer_pending(fx.t), 0);

    /* Zero delay runs promptly. */
    CHECK_EQ(ev_add(&fx, ev_new(&fx, 7), 0.0), 0);
    CHECK_EQ(tu_counter_wait(&fx.runs, 7, 5.0), 7);
    fixture_destroy(&fx);
    TU_PASS("timer order");
}

static void test_timer_cancel(void) {
    timer_fixture fx;
    fixture_init(&fx, NULL, "cancel");
    ev *a = ev_new(&fx, 1);
    ev *b = ev_new(&fx, 2);
    uint64_t aid = 0, bid = 0;
    CHECK_EQ(ev_add_id(&fx, a, 30.0, &aid), 0);
    CHECK_EQ(ev_add_id(&fx, b, 0.01, &bid), 0);
    CHECK(aid != bid);

    CHECK_EQ(osdkit_timer_cancel(fx.t, aid), 0); /* a is freed by its drop now */
    CHECK_EQ(tu_counter_get(&fx.drops), 1);
    CHECK_EQ(fx.drops.log[0], 1);
    CHECK_EQ(osdkit_timer_cancel(fx.t, aid), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "not pending");
    CHECK_EQ(tu_counter_get(&fx.drops), 1);

    CHECK_EQ(tu_counter_wait(&fx.runs, 1, 5.0), 1);
    CHECK_EQ(fx.runs.log[0], 2);
    CHECK_EQ(tu_counter_wait(&fx.drops, 2, 5.0), 2);
    CHECK_EQ(osdkit_timer_cancel(fx.t, bid), -ENOENT); /* already ran */
    CHECK_EQ(osdkit_timer_cancel(fx.t, 999999), -ENOENT);

    /* Cancel from inside a callback: c cancels d (pending, 30 s away). */
    ev *c = ev_new(&fx, 3);
    ev *d = ev_new(&fx, 4);
    CHECK_EQ(ev_add_id(&fx, d, 30.0, &d->timer_id), 0); /* d cannot be gone yet */
    c->cancel = d;
    CHECK_EQ(ev_add(&fx, c, 0.01), 0);
    CHECK_EQ(tu_counter_wait(&fx.runs, 3, 5.0), 3);
    CHECK_EQ(fx.runs.log[1], 1000); /* cancel returned 0 */
    CHECK_EQ(fx.runs.log[2], 3);
    CHECK_EQ(tu_counter_wait(&fx.drops, 4, 5.0), 4);
    CHECK(sorted_contains(fx.drops.log, 4, 3));
    CHECK(sorted_contains(fx.drops.log, 4, 4));
    CHECK_EQ(osdkit_timer_pending(fx.t), 0);

    /* cancel_all. */
    for (int i = 10; i < 13; i++) {
        CHECK_EQ(ev_add(&fx, ev_new(&fx, i), 30.0), 0);
    }
    CHECK_EQ(osdkit_timer_pending(fx.t), 3);
    CHECK_EQ(osdkit_timer_cancel_all(fx.t), 0);
    CHECK_EQ(osdkit_timer_pending(fx.t), 0);
    CHECK_EQ(tu_counter_get(&fx.drops), 7);
    CHECK_EQ(tu_counter_get(&fx.runs), 3);
    fixture_destroy(&fx);
    TU_PASS("timer cancel");
}

static void test_timer_reentrant(void) {
    timer_fixture fx;
    fixture_init(&fx, NULL, "chain");
    /* Event 0 adds 1, which adds 2, which adds 3, from inside their callbacks. */
    ev *e = ev_new(&fx, 0);
    e->chain = 3;
    CHECK_EQ(ev_add(&fx, e, 0.01), 0);
    CHECK_EQ(tu_counter_wait(&fx.runs, 4, 10.0), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(fx.runs.log[i], i);
    }
    CHECK_EQ(tu_counter_wait(&fx.drops, 4, 5.0), 4);

    /* Shutdown from inside a callback: the later event never runs, but is dropped. */
    ev *s = ev_new(&fx, 10);
    s->shutdown_inside = 1;
    CHECK_EQ(ev_add(&fx, s, 0.01), 0);
    CHECK_EQ(ev_add(&fx, ev_new(&fx, 11), 0.5), 0);
    CHECK_EQ(tu_counter_wait(&fx.runs, 5, 5.0), 5);
    CHECK_EQ(fx.runs.log[4], 10);
    CHECK_EQ(tu_counter_wait(&fx.drops, 6, 5.0), 6);
    tu_sleep_ms(700);
    CHECK_EQ(tu_counter_get(&fx.runs), 5);
    fixture_destroy(&fx);
    TU_PASS("timer callbacks calling the timer");
}

static void test_timer_shutdown(void) {
    /* Shut down one timer and free another, each with 3 events pending. The events are due in
     * a second, so none fires before the shutdown or the free; the sleep at the end goes past
     * that deadline (once, for both timers) to see that none ran. */
    timer_fixture fx, ffx;
    fixture_init(&fx, NULL, "shutdown");
    fixture_init(&ffx, NULL, "free");
    double added = tu_now();
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ev_add(&fx, ev_new(&fx, i), 1.0), 0);
        CHECK_EQ(ev_add(&ffx, ev_new(&ffx, i), 1.0), 0);
    }
    CHECK_EQ(osdkit_timer_shutdown(fx.t), 0);
    CHECK_EQ(osdkit_timer_pending(fx.t), 0);
    CHECK_EQ(tu_counter_get(&fx.drops), 3);
    CHECK_EQ(osdkit_timer_shutdown(fx.t), 0); /* idempotent */

    /* Adding after shutdown: -ESHUTDOWN and the drop is called at once. */
    ev *late = ev_new(&fx, 9);
    CHECK_EQ(ev_add(&fx, late, 0.0), -ESHUTDOWN);
    CHECK_EQ(tu_counter_get(&fx.drops), 4);

    /* Freeing with pending events: none runs, each is dropped. */
    osdkit_timer_free(ffx.t);
    ffx.t = NULL;
    CHECK_EQ(tu_counter_get(&ffx.drops), 3);

    tu_sleep_until(added + 1.3);
    CHECK_EQ(tu_counter_get(&fx.runs), 0);
    CHECK_EQ(tu_counter_get(&ffx.runs), 0);
    fixture_destroy(&fx);
    fixture_destroy(&ffx);
    TU_PASS("timer shutdown");
}

static void count_drop(void *user) {
    tu_counter_add((tu_counter *)user, 1);
}

static void noop_cb(void *user) {
    (void)user;
}

static void test_timer_errors(void) {
    osdkit_timer *t = NULL;
    CHECK_EQ(osdkit_timer_new(NULL, NULL, &t), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "name");
    CHECK_EQ(osdkit_timer_new(NULL, "x", NULL), -EINVAL);
    CHECK_EQ(osdkit_timer_new(NULL, "x", &t), 0);
    tu_counter drops;
    tu_counter_init(&drops);
    uint64_t id = 0;
    CHECK_EQ(osdkit_timer_add_after(NULL, 1.0, noop_cb, &drops, count_drop, &id), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "timer");
    CHECK_EQ(osdkit_timer_add_after(t, 1.0, NULL, &drops, count_drop, &id), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "cb");
    CHECK_EQ(osdkit_timer_add_after(t, -1.0, noop_cb, &drops, count_drop, &id), -EINVAL);
    CHECK_EQ(osdkit_timer_add_after(t, INFINITY, noop_cb, &drops, count_drop, &id), -EINVAL);
    /* Rejected arguments: the caller keeps `user`, no drop. */
    CHECK_EQ(tu_counter_get(&drops), 0);
    /* NULL id_out and NULL drop are allowed. */
    CHECK_EQ(osdkit_timer_add_after(t, 0.0, noop_cb, NULL, NULL, NULL), 0);
    CHECK_EQ(osdkit_timer_cancel(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_timer_pending(NULL), -EINVAL);
    CHECK_EQ(osdkit_timer_shutdown(NULL), -EINVAL);
    osdkit_timer_free(NULL);
    osdkit_timer_free(t);
    tu_counter_destroy(&drops);
    TU_PASS("timer errors");
}

/* ---------------------------------------------------------------------------------------- */
/* Finisher                                                                                   */

typedef struct fin_fixture {
    osdkit_finisher *f;
    tu_counter started;
    tu_counter runs;
    tu_counter drops;
    int sleep_first_ms;
    int requeue; /* > 0: each callback queues another with r + 1 */
} fin_fixture;

static void fin_drop(void *user) {
    tu_counter_add(&((fin_fixture *)user)->drops, 1);
}

static void fin_cb(void *user, int r) {
    fin_fixture *fx = (fin_fixture *)user;
    tu_counter_add(&fx->started, 1);
    if (fx->sleep_first_ms > 0 && tu_counter_get(&fx->runs) == 0) {
        tu_sleep_ms(fx->sleep_first_ms);
    }
    if (fx->requeue > 0) {
        fx->requeue--;
        CHECK_EQ(osdkit_finisher_queue(fx->f, fin_cb, fx, fin_drop, r + 1), 0);
    }
    tu_counter_record(&fx->runs, r);
}

static void fin_init(fin_fixture *fx, osdkit_context *ctx, const char *name) {
    memset(fx, 0, sizeof(*fx));
    tu_counter_init(&fx->started);
    tu_counter_init(&fx->runs);
    tu_counter_init(&fx->drops);
    CHECK_EQ(osdkit_finisher_new(ctx, name, &fx->f), 0);
    CHECK(fx->f != NULL);
}

static void fin_destroy(fin_fixture *fx) {
    osdkit_finisher_free(fx->f);
    tu_counter_destroy(&fx->started);
    tu_counter_destroy(&fx->runs);
    tu_counter_destroy(&fx->drops);
}

static void test_finisher(void) {
    fin_fixture fx;
    fin_init(&fx, NULL, "fifo");
    fx.sleep_first_ms = 150;
    /* FIFO, with r passed through (negative ones too). */
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(osdkit_finisher_queue(fx.f, fin_cb, &fx, fin_drop, i - 5), 0);
    }
    /* wait_for_empty really waits (the first callback sleeps). */
    CHECK_EQ(osdkit_finisher_wait_for_empty(fx.f), 0);
    CHECK_EQ(tu_counter_get(&fx.runs), 20);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(fx.runs.log[i], i - 5);
    }
    CHECK_EQ(tu_counter_get(&fx.drops), 20);

    /* A callback queueing more work on its own finisher. */
    fx.requeue = 3;
    CHECK_EQ(osdkit_finisher_queue(fx.f, fin_cb, &fx, fin_drop, 100), 0);
    CHECK_EQ(tu_counter_wait(&fx.runs, 24, 5.0), 24);
    CHECK_EQ(osdkit_finisher_wait_for_empty(fx.f), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(fx.runs.log[20 + i], 100 + i);
    }
    CHECK_EQ(tu_counter_get(&fx.drops), 24);

    /* Errors. */
    CHECK_EQ(osdkit_finisher_queue(fx.f, NULL, &fx, fin_drop, 0), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "cb");
    CHECK_EQ(osdkit_finisher_queue(NULL, fin_cb, &fx, fin_drop, 0), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "finisher");
    CHECK_EQ(tu_counter_get(&fx.drops), 24);
    CHECK_EQ(osdkit_finisher_wait_for_empty(NULL), -EINVAL);
    CHECK_EQ(osdkit_finisher_stop(NULL), -EINVAL);
    osdkit_finisher *nf = NULL;
    CHECK_EQ(osdkit_finisher_new(NULL, NULL, &nf), -EINVAL);
    CHECK_EQ(osdkit_finisher_new(NULL, "x", NULL), -EINVAL);
    osdkit_finisher_free(NULL);
    fin_destroy(&fx);
    TU_PASS("finisher");
}

static void test_finisher_stop(void) {
    fin_fixture fx;
    fin_init(&fx, NULL, "stop");
    fx.sleep_first_ms = 2000;
    CHECK_EQ(osdkit_finisher_queue(fx.f, fin_cb, &fx, fin_drop, 0), 0);
    /* Once the first callback is in flight (it sleeps 2 s, ample time for the queueing and the
     * call to stop to happen while it runs), queue 5 more and stop. (Like
     * Ceph's, the worker takes the whole queue as one batch and a batch it has taken runs to
     * the end; so the 5 are queued only after the batch holding the first was taken.) */
    CHECK_EQ(tu_counter_wait(&fx.started, 1, 10.0), 1);
    for (int i = 1; i < 6; i++) {
        CHECK_EQ(osdkit_finisher_queue(fx.f, fin_cb, &fx, fin_drop, i), 0);
    }
    CHECK_EQ(osdkit_finisher_stop(fx.f), 0);
    /* stop waited for the callback in flight, and did not drain: the 5 queued never run, and
     * every item was dropped exactly once. */
    CHECK_EQ(tu_counter_get(&fx.runs), 1);
    CHECK_EQ(fx.runs.log[0], 0);
    CHECK_EQ(tu_counter_get(&fx.drops), 6);
    CHECK_EQ(osdkit_finisher_stop(fx.f), 0); /* idempotent */
    /* Queueing on a stopped finisher: the item never runs, and is still dropped once. */
    int qr = osdkit_finisher_queue(fx.f, fin_cb, &fx, fin_drop, 99);
    CHECK(qr == 0 || qr == -ESHUTDOWN);
    osdkit_finisher_free(fx.f);
    fx.f = NULL;
    CHECK_EQ(tu_counter_get(&fx.drops), 7);
    tu_sleep_ms(100);
    CHECK_EQ(tu_counter_get(&fx.runs), 1);
    fin_destroy(&fx);
    TU_PASS("finisher stop");
}

/* Timer and finisher made from a context show their counters in `perf dump`. */
static void test_with_context(void) {
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.5", dir);
    CHECK_EQ(osdkit_context_start(ctx), 0);
    timer_fixture tfx;
    fixture_init(&tfx, ctx, "ctest");
    fin_fixture ffx;
    fin_init(&ffx, ctx, "ctest");
    CHECK_EQ(ev_add(&tfx, ev_new(&tfx, 1), 0.0), 0);
    CHECK_EQ(osdkit_finisher_queue(ffx.f, fin_cb, &ffx, fin_drop, 7), 0);
    CHECK_EQ(tu_counter_wait(&tfx.runs, 1, 5.0), 1);
    CHECK_EQ(osdkit_finisher_wait_for_empty(ffx.f), 0);
    int r = 0;
    char *dump = tu_execute(ctx, "{\"prefix\":\"perf dump\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_CONTAINS(dump, "\"safe_timer-ctest\"");
    CHECK_CONTAINS(dump, "\"finisher-ctest\"");
    osdkit_string_free(dump);
    /* Handles made from a context outlive it (they must still be freed). */
    osdkit_context_free(ctx);
    CHECK_EQ(ev_add(&tfx, ev_new(&tfx, 2), 0.0), 0);
    CHECK_EQ(tu_counter_wait(&tfx.runs, 2, 5.0), 2);
    CHECK_EQ(osdkit_finisher_queue(ffx.f, fin_cb, &ffx, fin_drop, 8), 0);
    CHECK_EQ(osdkit_finisher_wait_for_empty(ffx.f), 0);
    CHECK_EQ(tu_counter_get(&ffx.runs), 2);
    fixture_destroy(&tfx);
    fin_destroy(&ffx);
    tu_rm_rf(dir);
    TU_PASS("timer and finisher with a context");
}

int main(void) {
    test_timer_order();
    test_timer_cancel();
    test_timer_reentrant();
    test_timer_shutdown();
    test_timer_errors();
    test_finisher();
    test_finisher_stop();
    test_with_context();
    return 0;
}
