/*
 * Throttle (FIFO counting semaphore) and perf counters defined from C.
 */
#include "test_util.h"

#include <math.h>

/* ---------------------------------------------------------------------------------------- */
/* Throttle                                                                                   */

static void test_throttle_basic(void) {
    osdkit_throttle *t = NULL;
    CHECK_EQ(osdkit_throttle_new(NULL, NULL, 10, &t), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "name");
    CHECK_EQ(osdkit_throttle_new(NULL, "basic", 10, NULL), -EINVAL);
    CHECK_EQ(osdkit_throttle_new(NULL, "basic", 10, &t), 0);
    CHECK(t != NULL);
    CHECK_EQ(osdkit_throttle_max(t), 10);
    CHECK_EQ(osdkit_throttle_current(t), 0);
    CHECK_EQ(osdkit_throttle_waiters(t), 0);

    CHECK_EQ(osdkit_throttle_get(t, 4), 0); /* no wait */
    CHECK_EQ(osdkit_throttle_current(t), 4);
    CHECK_EQ(osdkit_throttle_get_or_fail(t, 6), 0);
    CHECK_EQ(osdkit_throttle_current(t), 10);
    CHECK_EQ(osdkit_throttle_get_or_fail(t, 1), -EAGAIN);
    CHECK_CONTAINS(osdkit_last_error(), "basic");
    CHECK_EQ(osdkit_throttle_current(t), 10);

    double t0 = tu_now();
    CHECK_EQ(osdkit_throttle_get_timeout(t, 1, 0.2), -ETIMEDOUT);
    double waited = tu_now() - t0;
    CHECK(waited >= 0.19);
    CHECK(waited < 5.0);
    CHECK_EQ(osdkit_throttle_current(t), 10); /* nothing taken */
    /* The timed-out request left the line: get_or_fail(0) sees nobody waiting. */
    CHECK_EQ(osdkit_throttle_waiters(t), 0);
    CHECK_EQ(osdkit_throttle_get_or_fail(t, 0), 0);

    CHECK_EQ(osdkit_throttle_get_timeout(t, 1, -1.0), -EINVAL);
    CHECK_EQ(osdkit_throttle_get_timeout(t, 1, NAN), -EINVAL);

    CHECK_EQ(osdkit_throttle_take(t, 5), 0); /* may exceed max */
    CHECK_EQ(osdkit_throttle_current(t), 15);
    CHECK_EQ(osdkit_throttle_put(t, 15), 0);
    CHECK_EQ(osdkit_throttle_current(t), 0);
    CHECK_EQ(osdkit_throttle_get_timeout(t, 3, 1.0), 0);
    CHECK_EQ(osdkit_throttle_put(t, 3), 0);

    CHECK_EQ(osdkit_throttle_reset_max(t, 3), 0);
    CHECK_EQ(osdkit_throttle_max(t), 3);
    CHECK_EQ(osdkit_throttle_get(t, 3), 0);
    CHECK_EQ(osdkit_throttle_get_or_fail(t, 1), -EAGAIN);
    CHECK_EQ(osdkit_throttle_reset_max(t, 0), 0); /* unlimited */
    CHECK_EQ(osdkit_throttle_get_or_fail(t, 1000000), 0);
    CHECK_EQ(osdkit_throttle_get(t, 1000000), 0);
    CHECK_EQ(osdkit_throttle_put(t, 2000003), 0);
    CHECK_EQ(osdkit_throttle_current(t), 0);

    /* NULL handles. */
    CHECK_EQ(osdkit_throttle_get(NULL, 1), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "throttle");
    CHECK_EQ(osdkit_throttle_get_or_fail(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_throttle_get_timeout(NULL, 1, 1.0), -EINVAL);
    CHECK_EQ(osdkit_throttle_put(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_throttle_take(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_throttle_reset_max(NULL, 1), -EINVAL);
    CHECK_EQ(osdkit_throttle_current(NULL), -EINVAL);
    CHECK_EQ(osdkit_throttle_max(NULL), -EINVAL);
    CHECK_EQ(osdkit_throttle_waiters(NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "throttle");
    osdkit_throttle_free(NULL);
    osdkit_throttle_free(t);
    TU_PASS("throttle basics");
}

/* A waiter blocked in get is woken by put from another thread. */
typedef struct waiter_arg {
    osdkit_throttle *t;
    int id;
    int get_result;
    tu_counter *order;
} waiter_arg;

static void *waiter(void *p) {
    waiter_arg *a = (waiter_arg *)p;
    a->get_result = osdkit_throttle_get(a->t, 1);
    tu_counter_record(a->order, a->id);
    tu_sleep_ms(5);
    osdkit_throttle_put(a->t, 1);
    return NULL;
}

/* get_started from `perf dump throttle-<name> get_started`. */
static long get_started(osdkit_context *ctx, const char *name) {
    char req[256];
    snprintf(req, sizeof(req),
             "{\"prefix\":\"perf dump\",\"format\":\"json\",\"logger\":\"throttle-%s\",\"counter\":\"get_started\"}",
             name);
    int r = 0;
    char *reply = tu_execute(ctx, req, &r);
    CHECK_EQ(r, 0);
    const char *p = strstr(reply, "\"get_started\":");
    CHECK(p != NULL);
    long v = strtol(p + strlen("\"get_started\":"), NULL, 10);
    osdkit_string_free(reply);
    return v;
}

static void test_throttle_fifo(void) {
    enum { N = 5 };
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.7", dir);
    osdkit_throttle *t = NULL;
    CHECK_EQ(osdkit_throttle_new(ctx, "fifo", 1, &t), 0);
    CHECK_EQ(osdkit_throttle_get(t, 1), 0); /* full */
    tu_counter order;
    tu_counter_init(&order);
    pthread_t th[N];
    waiter_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i].t = t;
        args[i].id = i;
        args[i].get_result = -1;
        args[i].order = &order;
        CHECK_EQ(pthread_create(&th[i], NULL, waiter, &args[i]), 0);
        /* Wait until thread i has joined the line behind threads 0..i-1, so the order in
         * which they queued is known. */
        double deadline = tu_now() + 10.0;
        while (osdkit_throttle_waiters(t) < i + 1 && tu_now() < deadline) {
            tu_sleep_ms(2);
        }
        CHECK_EQ(osdkit_throttle_waiters(t), i + 1);
        /* get_started is counted before the waiter queues, so it is current by now. */
        CHECK_EQ(get_started(ctx, "fifo"), i + 2);
        /* Someone is queued: get_or_fail must not jump the line, even for 0 units. */
        CHECK_EQ(osdkit_throttle_get_or_fail(t, 0), -EAGAIN);
    }
    CHECK_EQ(tu_counter_get(&order), 0);
    CHECK_EQ(osdkit_throttle_put(t, 1), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].get_result, 1); /* each one waited */
    }
    CHECK_EQ(tu_counter_get(&order), N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(order.log[i], i);
    }
    CHECK_EQ(osdkit_throttle_current(t), 0);
    CHECK_EQ(osdkit_throttle_waiters(t), 0);

    /* Its counters are in perf dump. */
    int r = 0;
    char *dump = tu_execute(ctx, "{\"prefix\":\"perf dump\",\"format\":\"json\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_CONTAINS(dump, "\"throttle-fifo\"");
    osdkit_string_free(dump);
    osdkit_throttle_free(t);
    /* The logger leaves perf dump with the throttle. */
    dump = tu_execute(ctx, "{\"prefix\":\"perf dump\",\"format\":\"json\"}", &r);
    CHECK(strstr(dump, "\"throttle-fifo\"") == NULL);
    osdkit_string_free(dump);
    osdkit_context_free(ctx);
    tu_counter_destroy(&order);
    tu_rm_rf(dir);
    TU_PASS("throttle FIFO across threads");
}

/* ---------------------------------------------------------------------------------------- */
/* Perf counters                                                                              */

typedef struct incr_arg {
    osdkit_perf *pc;
    uint32_t counter, avg, tavg;
    int failures;
} incr_arg;

static void *incrementer(void *p) {
    incr_arg *a = (incr_arg *)p;
    for (int i = 0; i < 1000; i++) {
        a->failures += osdkit_perf_inc(a->pc, a->counter, 1) != 0;
        a->failures += osdkit_perf_inc(a->pc, a->avg, 2) != 0;
        a->failures += osdkit_perf_tinc_ns(a->pc, a->tavg, 1000) != 0;
    }
    return NULL;
}

static void test_perf(void) {
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.3", dir);
    CHECK_EQ(osdkit_context_start(ctx), 0);

    osdkit_perf_builder *b = NULL;
    CHECK_EQ(osdkit_perf_builder_new(NULL, &b), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_new("", &b), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_new("ctest", NULL), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_new("ctest", &b), 0);
    uint32_t counter = 99, gauge = 99, avg = 99, time_c = 99, tavg = 99;
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_COUNTER, "ops",
                                     "operations", "ops", 5, OSDKIT_UNIT_NONE, &counter),
             0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "in_flight", "ops in flight", NULL,
                                     0, OSDKIT_UNIT_NONE, &gauge),
             0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_LONGRUNAVG,
                                     "op_size", "op size", NULL, 0, OSDKIT_UNIT_BYTES, &avg),
             0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_TIME, "busy", "time spent busy", NULL,
                                     0, OSDKIT_UNIT_NONE, &time_c),
             0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_TIME | OSDKIT_PERFCOUNTER_LONGRUNAVG,
                                     "op_latency", "op latency", "lat", 8, OSDKIT_UNIT_NONE, &tavg),
             0);
    CHECK_EQ(counter, 0);
    CHECK_EQ(gauge, 1);
    CHECK_EQ(avg, 2);
    CHECK_EQ(time_c, 3);
    CHECK_EQ(tavg, 4);
    /* Bad additions are rejected without adding anything. */
    uint32_t bad = 77;
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_COUNTER, "x", "x", NULL, 0, 0, &bad),
             -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "type");
    CHECK_EQ(osdkit_perf_builder_add(b, 0x40, "x", "x", NULL, 0, 0, &bad), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "x", "x", NULL, 0, 7, &bad), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "unit");
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "", "x", NULL, 0, 0, &bad), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, NULL, "x", NULL, 0, 0, &bad), -EINVAL);
    CHECK_EQ(osdkit_perf_builder_add(NULL, OSDKIT_PERFCOUNTER_U64, "x", "x", NULL, 0, 0, &bad),
             -EINVAL);
    CHECK_EQ(bad, 77);
    /* NULL idx_out is allowed; the index is still assigned (5). */
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "spare", "unused", NULL, 0, 0, NULL),
             0);

    osdkit_perf *pc = NULL;
    CHECK_EQ(osdkit_perf_create(ctx, b, &pc), 0); /* consumes b */
    CHECK(pc != NULL);

    /* Two threads hammer the counters. */
    pthread_t th[2];
    incr_arg args[2];
    for (int i = 0; i < 2; i++) {
        args[i].pc = pc;
        args[i].counter = counter;
        args[i].avg = avg;
        args[i].tavg = tavg;
        args[i].failures = 0;
        CHECK_EQ(pthread_create(&th[i], NULL, incrementer, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].failures, 0);
    }
    uint64_t v = 0, sum = 0, count = 0;
    CHECK_EQ(osdkit_perf_get(pc, counter, &v), 0);
    CHECK_EQ(v, 2000);
    CHECK_EQ(osdkit_perf_read_avg(pc, avg, &sum, &count), 0);
    CHECK_EQ(sum, 4000);
    CHECK_EQ(count, 2000);
    CHECK_EQ(osdkit_perf_read_avg(pc, tavg, &sum, &count), 0);
    CHECK_EQ(sum, 2000000);
    CHECK_EQ(count, 2000);

    CHECK_EQ(osdkit_perf_set(pc, gauge, 42), 0);
    CHECK_EQ(osdkit_perf_dec(pc, gauge, 2), 0);
    CHECK_EQ(osdkit_perf_inc(pc, gauge, 5), 0);
    CHECK_EQ(osdkit_perf_get(pc, gauge, &v), 0);
    CHECK_EQ(v, 45);
    CHECK_EQ(osdkit_perf_tinc_ns(pc, time_c, 1500000000ULL), 0);
    CHECK_EQ(osdkit_perf_get(pc, time_c, &v), 0);
    CHECK_EQ(v, 1500000000ULL);

    /* Bad index / NULLs. */
    CHECK_EQ(osdkit_perf_inc(pc, 6, 1), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "out of range");
    CHECK_EQ(osdkit_perf_inc(pc, 1000000, 1), -EINVAL);
    CHECK_EQ(osdkit_perf_dec(pc, 6, 1), -EINVAL);
    CHECK_EQ(osdkit_perf_set(pc, 6, 1), -EINVAL);
    CHECK_EQ(osdkit_perf_tinc_ns(pc, 6, 1), -EINVAL);
    CHECK_EQ(osdkit_perf_get(pc, 6, &v), -EINVAL);
    CHECK_EQ(osdkit_perf_get(pc, counter, NULL), -EINVAL);
    CHECK_EQ(osdkit_perf_read_avg(pc, avg, NULL, &count), -EINVAL);
    CHECK_EQ(osdkit_perf_inc(NULL, 0, 1), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "perf");
    CHECK_EQ(osdkit_perf_inc(pc, 5, 1), 0); /* the spare one exists */

    /* perf dump shows the values. */
    int r = 0;
    char *dump = tu_execute(ctx, "{\"prefix\":\"perf dump\",\"format\":\"json\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_CONTAINS(dump, "\"ctest\":{");
    CHECK_CONTAINS(dump, "\"ops\":2000");
    CHECK_CONTAINS(dump, "\"in_flight\":45");
    CHECK_CONTAINS(dump, "\"op_size\":{\"avgcount\":2000,\"sum\":4000}");
    CHECK_CONTAINS(dump, "\"busy\":1.500000000");
    CHECK_CONTAINS(dump,
                   "\"op_latency\":{\"avgcount\":2000,\"sum\":0.002000000,\"avgtime\":0.000001000}");
    osdkit_string_free(dump);
    dump = tu_execute(ctx, "{\"prefix\":\"perf dump\",\"format\":\"json\",\"logger\":\"ctest\",\"counter\":\"ops\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_CONTAINS(dump, "{\"ctest\":{\"ops\":2000}}");
    osdkit_string_free(dump);
    dump = tu_execute(ctx, "{\"prefix\":\"perf schema\",\"format\":\"json\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_CONTAINS(dump, "op latency");
    CHECK_CONTAINS(dump, "\"nick\":\"lat\"");
    osdkit_string_free(dump);

    /* Freeing removes the logger from perf dump. */
    osdkit_perf_free(pc);
    dump = tu_execute(ctx, "{\"prefix\":\"perf dump\",\"format\":\"json\"}", &r);
    CHECK(strstr(dump, "\"ctest\"") == NULL);
    osdkit_string_free(dump);

    /* create consumes the builder even when it fails. */
    CHECK_EQ(osdkit_perf_builder_new("orphan", &b), 0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "x", "x", NULL, 0, 0, NULL), 0);
    pc = NULL;
    CHECK_EQ(osdkit_perf_create(NULL, b, &pc), -EINVAL);
    CHECK(pc == NULL);
    CHECK_EQ(osdkit_perf_create(ctx, NULL, &pc), -EINVAL);
    /* An unused builder is freed with builder_free. */
    CHECK_EQ(osdkit_perf_builder_new("unused", &b), 0);
    osdkit_perf_builder_free(b);
    osdkit_perf_builder_free(NULL);
    osdkit_perf_free(NULL);

    /* Counters may outlive their context. */
    CHECK_EQ(osdkit_perf_builder_new("survivor", &b), 0);
    CHECK_EQ(osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64, "x", "x", NULL, 0, 0, NULL), 0);
    CHECK_EQ(osdkit_perf_create(ctx, b, &pc), 0);
    osdkit_context_free(ctx);
    CHECK_EQ(osdkit_perf_inc(pc, 0, 3), 0);
    CHECK_EQ(osdkit_perf_get(pc, 0, &v), 0);
    CHECK_EQ(v, 3);
    osdkit_perf_free(pc);
    tu_rm_rf(dir);
    TU_PASS("perf counters");
}

int main(void) {
    test_throttle_basic();
    test_throttle_fifo();
    test_perf();
    return 0;
}
