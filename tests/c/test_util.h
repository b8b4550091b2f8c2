/*
 * Tiny helpers shared by the C tests in tests/c/. Everything is `static inline` so a test that
 * does not use a helper compiles cleanly with -Wall -Wextra -Werror, as C11 and as C++17.
 */
#ifndef OSDKIT_TEST_UTIL_H
#define OSDKIT_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osdkit.h"

/* Fails the test: prints file:line, the expression and the library's last error, exits 1. */
#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s (osdkit_last_error: \"%s\")\n", __FILE__,  \
                    __LINE__, #cond, osdkit_last_error());                                      \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

/* Integer equality, printing both values on failure. */
#define CHECK_EQ(a, b)                                                                          \
    do {                                                                                        \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                         \
        if (check_a_ != check_b_) {                                                             \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld) (last error: \"%s\")\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_, osdkit_last_error());       \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

/* String equality. */
#define CHECK_STREQ(a, b)                                                                       \
    do {                                                                                        \
        const char *check_sa_ = (a), *check_sb_ = (b);                                          \
        if (check_sa_ == NULL || check_sb_ == NULL || strcmp(check_sa_, check_sb_) != 0) {      \
            fprintf(stderr, "%s:%d: CHECK_STREQ failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, \
                    __LINE__, #a, #b, check_sa_ ? check_sa_ : "(null)",                         \
                    check_sb_ ? check_sb_ : "(null)");                                          \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

/* `hay` contains `needle`. */
#define CHECK_CONTAINS(hay, needle)                                                             \
    do {                                                                                        \
        const char *check_h_ = (hay), *check_n_ = (needle);                                     \
        if (check_h_ == NULL || strstr(check_h_, check_n_) == NULL) {                           \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: %s contains \"%s\"; it is:\n%s\n",  \
                    __FILE__, __LINE__, #hay, check_n_, check_h_ ? check_h_ : "(null)");       \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static inline void tu_sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline double tu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until tu_now() reaches `t` (returns at once if it already has). */
static inline void tu_sleep_until(double t) {
    double left = t - tu_now();
    while (left > 0) {
        tu_sleep_ms((long)(left * 1000.0) + 1);
        left = t - tu_now();
    }
}

/* A fresh private directory under $TMPDIR (or /tmp); `buf` needs 256 bytes. */
static inline void tu_mkdtemp(char *buf) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0' || strlen(base) > 100) {
        base = "/tmp";
    }
    snprintf(buf, 256, "%s/osdkit-ctest-XXXXXX", base);
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline int tu_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf `dir`. */
static inline void tu_rm_rf(const char *dir) {
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A counter that callbacks bump from library threads, with a condition variable so the test
 * can wait (with a deadline) for it to reach a value. Also records an ordered log of ints.
 */
typedef struct tu_counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int log[64];
    int nlog;
} tu_counter;

static inline void tu_counter_init(tu_counter *c) {
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static inline void tu_counter_destroy(tu_counter *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static inline void tu_counter_add(tu_counter *c, int v) {
    pthread_mutex_lock(&c->mu);
    c->n += v;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Appends `v` to the log and bumps the count by one. */
static inline void tu_counter_record(tu_counter *c, int v) {
    pthread_mutex_lock(&c->mu);
    if (c->nlog < 64) {
        c->log[c->nlog++] = v;
    }
    c->n += 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline int tu_counter_get(tu_counter *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits until the count is >= `want`; returns the count (which is < want on timeout). */
static inline int tu_counter_wait(tu_counter *c, int want, double timeout_s) {
    double deadline = tu_now() + timeout_s;
    pthread_mutex_lock(&c->mu);
    while (c->n < want && tu_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec += 1;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* A context `name` with run_dir = `dir` and its log in `dir`, not started. */
static inline osdkit_context *tu_context(const char *name, const char *dir) {
    osdkit_context *ctx = NULL;
    char log[512];
    CHECK_EQ(osdkit_context_new(name, NULL, &ctx), 0);
    CHECK(ctx != NULL);
    CHECK_EQ(osdkit_context_set_option(ctx, "run_dir", dir), 0);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    CHECK_EQ(osdkit_context_set_option(ctx, "log_file", log), 0);
    return ctx;
}

/* Runs `json` in-process and returns the reply (free with osdkit_string_free); `*r` the code. */
static inline char *tu_execute(osdkit_context *ctx, const char *json, int *r) {
    char *reply = NULL;
    int rc = osdkit_asok_execute(ctx, json, &reply);
    if (r != NULL) {
        *r = rc;
    }
    CHECK(reply != NULL);
    return reply;
}

#define TU_PASS(name)                                                                           \
    do {                                                                                        \
        printf("ok %s\n", name);                                                                \
        fflush(stdout);                                                                         \
    } while (0)

#endif /* OSDKIT_TEST_UTIL_H */
