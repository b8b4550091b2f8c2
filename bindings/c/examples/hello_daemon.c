/*
 * hello_daemon: a small C daemon hosting an osdkit context.
 *
 *   hello_daemon RUN_DIR [SECONDS]
 *
 * It starts context `osd.0` with its admin socket in RUN_DIR, adds an admin command
 * `hello [who]`, a perf counter set `hello` and a timer that ticks twice a second, then runs
 * until SIGINT or SIGTERM (or for SECONDS). While it runs, try:
 *
 *   ceph daemon RUN_DIR/ceph-osd.0.asok hello world
 *   ceph daemon RUN_DIR/ceph-osd.0.asok perf dump hello
 *   ceph daemon RUN_DIR/ceph-osd.0.asok config set debug_osd 10
 *
 * Build against an installed osdkit:
 *   cc hello_daemon.c $(pkg-config --cflags --libs osdkit) -o hello_daemon
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
#include <time.h>

#include <osdkit.h>

/* Shared by the timer callback (timer thread) and the admin command (admin_socket thread). */
typedef struct hello_state {
    osdkit_context *ctx;
    osdkit_timer *timer;
    osdkit_perf *perf;
    uint32_t l_ticks;    /* counter: timer ticks */
    uint32_t l_greeted;  /* counter: hello commands */
    uint32_t l_tick_lat; /* time average: how late each tick ran */
    struct timespec next_due;
} hello_state;

enum { TICK_MS = 500 };

static double ts_diff(const struct timespec *a, const struct timespec *b) {
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static void tick(void *user);

static void schedule_tick(hello_state *st) {
    clock_gettime(CLOCK_MONOTONIC, &st->next_due);
    st->next_due.tv_nsec += TICK_MS * 1000000L;
    if (st->next_due.tv_nsec >= 1000000000L) {
        st->next_due.tv_sec += 1;
        st->next_due.tv_nsec -= 1000000000L;
    }
    /* The state outlives the timer, so no drop callback is needed. */
    int r = osdkit_timer_add_after(st->timer, TICK_MS / 1000.0, tick, st, NULL, NULL);
    if (r < 0 && r != -ESHUTDOWN) {
        fprintf(stderr, "hello_daemon: scheduling a tick: %s\n", osdkit_last_error());
    }
}

/* Runs on the timer thread. Calling back into the timer (to re-arm) is allowed here. */
static void tick(void *user) {
    hello_state *st = (hello_state *)user;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double late = ts_diff(&now, &st->next_due);
    osdkit_perf_tinc_ns(st->perf, st->l_tick_lat, late > 0 ? (uint64_t)(late * 1e9) : 0);
    osdkit_perf_inc(st->perf, st->l_ticks, 1);
    osdkit_log(st->ctx, "osd", 10, "tick");
    schedule_tick(st);
}

/* `hello name=who,type=CephString,req=false`: replies {"greeting":"hello, <who>","ticks":N}. */
static int hello_cmd(void *user, const char *prefix, const char *args_json, const char *format,
                     osdkit_asok_reply *reply) {
    hello_state *st = (hello_state *)user;
    (void)prefix;
    (void)format; /* a real command would pretty-print for "json-pretty" */
    char who[128] = "world";
    const char *p = strstr(args_json, "\"who\":\"");
    if (p != NULL) {
        p += strlen("\"who\":\"");
        size_t n = 0;
        /* Keep it simple: stop at a quote or backslash (no escape decoding in this example). */
        while (p[n] != '\0' && p[n] != '"' && p[n] != '\\' && n + 1 < sizeof(who)) {
            who[n] = p[n];
            n++;
        }
        who[n] = '\0';
    }
    uint64_t ticks = 0;
    osdkit_perf_get(st->perf, st->l_ticks, &ticks);
    osdkit_perf_inc(st->perf, st->l_greeted, 1);
    char out[256];
    int len = snprintf(out, sizeof(out), "{\"greeting\":\"hello, %s\",\"ticks\":%llu}", who,
                       (unsigned long long)ticks);
    return osdkit_asok_reply_set(reply, out, (size_t)len);
}

static int die(osdkit_context *ctx, const char *what, int r) {
    fprintf(stderr, "hello_daemon: %s failed: %s (%s)\n", what, strerror(-r), osdkit_last_error());
    osdkit_context_free(ctx);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s RUN_DIR [SECONDS]\n", argv[0]);
        return 2;
    }
    const char *run_dir = argv[1];
    double seconds = argc == 3 ? atof(argv[2]) : -1.0;

    /* Block the stop signals before the library starts threads, so that only sigwait below
     * receives them (threads inherit the mask). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    printf("hello_daemon: osdkit %s\n", osdkit_version());

    hello_state st;
    memset(&st, 0, sizeof(st));
    int r = osdkit_context_new("osd.0", NULL, &st.ctx);
    if (r < 0) {
        return die(NULL, "osdkit_context_new", r);
    }
    char log_file[4096];
    snprintf(log_file, sizeof(log_file), "%s/hello_daemon.log", run_dir);
    if ((r = osdkit_context_set_option(st.ctx, "run_dir", run_dir)) < 0 ||
        (r = osdkit_context_set_option(st.ctx, "log_file", log_file)) < 0) {
        return die(st.ctx, "osdkit_context_set_option", r);
    }

    /* Perf counters, shown by `perf dump`. */
    osdkit_perf_builder *b = NULL;
    if ((r = osdkit_perf_builder_new("hello", &b)) < 0) {
        return die(st.ctx, "osdkit_perf_builder_new", r);
    }
    osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_COUNTER, "ticks",
                            "timer ticks", "tick", 5, OSDKIT_UNIT_NONE, &st.l_ticks);
    osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_COUNTER, "greeted",
                            "hello commands served", NULL, 5, OSDKIT_UNIT_NONE, &st.l_greeted);
    osdkit_perf_builder_add(b, OSDKIT_PERFCOUNTER_TIME | OSDKIT_PERFCOUNTER_LONGRUNAVG,
                            "tick_lateness", "how late ticks ran", NULL, 5, OSDKIT_UNIT_NONE,
                            &st.l_tick_lat);
    if ((r = osdkit_perf_create(st.ctx, b, &st.perf)) < 0) { /* consumes b */
        return die(st.ctx, "osdkit_perf_create", r);
    }

    /* The admin command; `st` outlives the context, so no drop callback. */
    r = osdkit_asok_register(st.ctx, "hello name=who,type=CephString,req=false",
                             "say hello (and how many ticks so far)", hello_cmd, &st, NULL);
    if (r < 0) {
        return die(st.ctx, "osdkit_asok_register", r);
    }

    if ((r = osdkit_context_start(st.ctx)) < 0) {
        return die(st.ctx, "osdkit_context_start", r);
    }
    const char *asok = osdkit_context_asok_path(st.ctx);
    printf("hello_daemon: admin socket %s\n", asok ? asok : "(none)");
    printf("hello_daemon: try: ceph daemon %s hello world\n", asok ? asok : "?");
    fflush(stdout);

    if ((r = osdkit_timer_new(st.ctx, "hello", &st.timer)) < 0) {
        return die(st.ctx, "osdkit_timer_new", r);
    }
    schedule_tick(&st);

    /* Wait for SIGINT/SIGTERM, or the time limit. */
    int sig;
    if (seconds >= 0) {
        struct timespec limit;
        limit.tv_sec = (time_t)seconds;
        limit.tv_nsec = (long)((seconds - (double)limit.tv_sec) * 1e9);
        do {
            sig = sigtimedwait(&stop, NULL, &limit);
        } while (sig < 0 && errno == EINTR);
    } else {
        if (sigwait(&stop, &sig) != 0) {
            sig = -1;
        }
    }
    if (sig > 0) {
        printf("hello_daemon: got signal %d, stopping\n", sig);
    }

    /* Ask ourselves, in-process, before stopping. */
    char *reply = NULL;
    r = osdkit_asok_execute(st.ctx, "{\"prefix\":\"hello\",\"who\":\"shutdown\"}", &reply);
    printf("hello_daemon: hello -> %d %s\n", r, reply ? reply : "(null)");
    osdkit_string_free(reply);

    /* Stop the timer before freeing what its callback uses; then the context (which drops
     * the command) and the counters. */
    osdkit_timer_free(st.timer);
    uint64_t ticks = 0;
    osdkit_perf_get(st.perf, st.l_ticks, &ticks);
    osdkit_context_free(st.ctx);
    osdkit_perf_free(st.perf);
    printf("hello_daemon: %llu ticks, bye\n", (unsigned long long)ticks);
    return 0;
}
