/*
 * A monitor and three OSDs (mem store) hosted in this process, and a client: object round
 * trips, listing, xattrs, omap, an atomic multi-op request, async completions and their
 * thread, and errnos for bad arguments and missing objects.
 */
#include "test_util.h"

#include <unistd.h>

typedef struct names_seen {
    int n;
    char first[64];
} names_seen;

static int on_name(void *user, const char *name) {
    names_seen *s = (names_seen *)user;
    if (s->n == 0) {
        snprintf(s->first, sizeof(s->first), "%s", name);
    }
    s->n++;
    return 0;
}

static int stop_after_one(void *user, const char *name) {
    (void)name;
    ((names_seen *)user)->n++;
    return 1;
}

typedef struct completion {
    tu_counter done;
    int result;
    int on_worker; /* the completion ran on a msgr-worker-N thread */
} completion;

static void on_complete(void *user, int result) {
    completion *c = (completion *)user;
    char tname[32] = "";
    pthread_getname_np(pthread_self(), tname, sizeof(tname));
    pthread_mutex_lock(&c->done.mu);
    c->result = result;
    c->on_worker = strncmp(tname, "msgr-worker", 11) == 0;
    pthread_mutex_unlock(&c->done.mu);
    tu_counter_add(&c->done, 1);
}

static void test_bad_args(void) {
    osdkit_cluster *cl = NULL;
    osdkit_client *c = NULL;
    CHECK_EQ(osdkit_cluster_start(NULL, 3, "mem", &cl), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "dir");
    CHECK_EQ(osdkit_cluster_start("/tmp", 3, "mem", NULL), -EINVAL);
    CHECK_EQ(osdkit_cluster_start("/tmp", -1, "mem", &cl), -EINVAL);
    CHECK_EQ(osdkit_cluster_start("/tmp", 0, "mem", &cl), -EINVAL);
    CHECK_EQ(osdkit_cluster_start("/tmp", 3, "bogus", &cl), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "bogus");
    CHECK(cl == NULL);
    CHECK_EQ(osdkit_cluster_stop_osd(NULL, 0), -EINVAL);
    CHECK_EQ(osdkit_cluster_mon_addr(NULL, NULL, 0), -EINVAL);
    CHECK_EQ(osdkit_client_connect(NULL, NULL, &c), -EINVAL);
    CHECK_EQ(osdkit_client_connect("not an address", NULL, &c), -EINVAL);
    CHECK_EQ(osdkit_client_connect("v2:127.0.0.1:1/0", NULL, NULL), -EINVAL);
    CHECK(c == NULL);
    CHECK_EQ(osdkit_client_put(NULL, "data", "x", "a", 1), -EINVAL);
    CHECK_EQ(osdkit_op_list_remove(NULL), -EINVAL);
    osdkit_cluster_free(NULL);
    osdkit_client_free(NULL);
    osdkit_buffer_free(NULL);
    osdkit_names_free(NULL, 0);
    osdkit_op_list_free(NULL);
}

/* Size 2 on three OSDs: one killed (no mark-me-down) is marked down by its peers after the
 * grace, its objects are still served, and after its restart the cluster is clean again. */
static void test_replicated_failover(void) {
    const char *bad[] = {"osd_heartbeat_grace", NULL};
    const char *unknown[] = {"no_such_option", "1", NULL};
    const char *opts[] = {"osd_heartbeat_interval", "1", "osd_heartbeat_grace", "4",
                          "mon_osd_down_out_interval", "0", NULL};
    osdkit_cluster *cl = NULL;
    char dir[256];
    tu_mkdtemp(dir);
    CHECK_EQ(osdkit_cluster_start_opts(dir, 3, "mem", 2, bad, &cl), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "no value");
    CHECK(osdkit_cluster_start_opts(dir, 3, "mem", 2, unknown, &cl) < 0);
    CHECK_EQ(osdkit_cluster_start_opts(dir, 3, "mem", 4, opts, &cl), -EINVAL);
    CHECK(cl == NULL);
    CHECK_EQ(osdkit_cluster_start_opts(dir, 3, "mem", 2, opts, &cl), 0);
    CHECK_EQ(osdkit_cluster_wait_for_clean(NULL, 10), -EINVAL);
    CHECK_EQ(osdkit_cluster_osd_up(cl, 9), -ENOENT);
    CHECK_EQ(osdkit_cluster_wait_for_clean(cl, 30000), 0);
    char addr[128];
    CHECK(osdkit_cluster_mon_addr(cl, addr, sizeof(addr)) > 0);
    osdkit_client *c = NULL;
    CHECK_EQ(osdkit_client_connect(addr, NULL, &c), 0);
    for (int i = 0; i < 30; i++) {
        char oid[32];
        snprintf(oid, sizeof(oid), "r-%02d", i);
        CHECK_EQ(osdkit_client_put(c, "data", oid, oid, strlen(oid)), 0);
    }
    CHECK_EQ(osdkit_cluster_osd_up(cl, 1), 1);
    CHECK_EQ(osdkit_cluster_kill_osd(cl, 1), 0);
    CHECK_EQ(osdkit_cluster_kill_osd(cl, 1), -ENOENT);
    int waited = 0;
    while (osdkit_cluster_osd_up(cl, 1) == 1 && waited < 30000) {
        usleep(50 * 1000);
        waited += 50;
    }
    CHECK_EQ(osdkit_cluster_osd_up(cl, 1), 0);
    CHECK(waited >= 1000); /* the peers' reports, not an instant mark-me-down */
    for (int i = 0; i < 30; i++) {
        char oid[32];
        uint8_t *buf = NULL;
        size_t len = 0;
        snprintf(oid, sizeof(oid), "r-%02d", i);
        CHECK_EQ(osdkit_client_get(c, "data", oid, &buf, &len), 0);
        CHECK_EQ(len, strlen(oid));
        CHECK(memcmp(buf, oid, len) == 0);
        osdkit_buffer_free(buf);
    }
    CHECK_EQ(osdkit_cluster_start_osd(cl, 1), 0);
    CHECK_EQ(osdkit_cluster_wait_for_clean(cl, 60000), 0);
    CHECK_EQ(osdkit_cluster_osd_up(cl, 1), 1);
    /* Back to clean, the copies agree; bad arguments are refused. */
    CHECK_EQ(osdkit_cluster_scrub(cl, NULL, 1, 30000), 0);
    CHECK_EQ(osdkit_cluster_scrub(cl, "1.0", 0, 30000), 0);
    CHECK_EQ(osdkit_cluster_scrub(NULL, NULL, 1, 10), -EINVAL);
    CHECK_EQ(osdkit_cluster_scrub(cl, "not-a-pg", 1, 10), -EINVAL);
    CHECK_EQ(osdkit_cluster_scrub(cl, "1.999", 1, 10), -ENOENT);
    osdkit_client_free(c);
    osdkit_cluster_free(cl);
    tu_rm_rf(dir);
}

int main(void) {
    test_bad_args();

    char dir[256];
    tu_mkdtemp(dir);
    osdkit_cluster *cl = NULL;
    CHECK_EQ(osdkit_cluster_start(dir, 3, "mem", &cl), 0);
    CHECK(cl != NULL);
    CHECK_EQ(osdkit_cluster_num_osds(cl), 3);
    char addr[128];
    char tiny[4];
    CHECK_EQ(osdkit_cluster_mon_addr(cl, tiny, sizeof(tiny)), -ERANGE);
    int alen = osdkit_cluster_mon_addr(cl, addr, sizeof(addr));
    CHECK(alen > 0);
    CHECK_EQ((int)strlen(addr), alen);
    CHECK(strncmp(addr, "v2:127.0.0.1:", 13) == 0);

    osdkit_client *c = NULL;
    CHECK_EQ(osdkit_client_connect(addr, "osd.0", &c), -EINVAL); /* not a client name */
    CHECK_EQ(osdkit_client_connect(addr, "client.admin", &c), 0);
    CHECK(c != NULL);

    /* Round trips. */
    const char *hello = "hello, osd";
    CHECK_EQ(osdkit_client_put(c, "data", "obj-a", hello, strlen(hello)), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_EQ(osdkit_client_get(c, "data", "obj-a", &buf, &len), 0);
    CHECK_EQ(len, strlen(hello));
    CHECK(memcmp(buf, hello, len) == 0);
    osdkit_buffer_free(buf);
    uint64_t size = 0;
    int64_t mtime = 0;
    uint32_t nsec = 0;
    CHECK_EQ(osdkit_client_stat(c, "data", "obj-a", &size, &mtime, &nsec), 0);
    CHECK_EQ(size, strlen(hello));
    CHECK(mtime > 1600000000 && mtime <= (int64_t)time(NULL) + 5);
    CHECK(nsec < 1000000000u);
    CHECK_EQ(osdkit_client_stat(c, "data", "obj-a", NULL, NULL, NULL), 0);
    /* An empty object is a real, non-NULL buffer of length 0. */
    CHECK_EQ(osdkit_client_put(c, "data", "empty", NULL, 0), 0);
    buf = NULL;
    CHECK_EQ(osdkit_client_get(c, "data", "empty", &buf, &len), 0);
    CHECK(buf != NULL);
    CHECK_EQ(len, 0);
    osdkit_buffer_free(buf);

    /* Many objects, spread over the three OSDs, then listed both ways. */
    for (int i = 0; i < 20; i++) {
        char oid[32], val[32];
        snprintf(oid, sizeof(oid), "many-%02d", i);
        snprintf(val, sizeof(val), "value %d", i);
        CHECK_EQ(osdkit_client_put(c, "data", oid, val, strlen(val)), 0);
    }
    names_seen seen;
    memset(&seen, 0, sizeof(seen));
    CHECK_EQ(osdkit_client_list(c, "data", on_name, &seen), 22);
    CHECK_EQ(seen.n, 22);
    CHECK_STREQ(seen.first, "empty"); /* sorted */
    memset(&seen, 0, sizeof(seen));
    CHECK_EQ(osdkit_client_list(c, "data", stop_after_one, &seen), 1);
    CHECK_EQ(seen.n, 1);
    char **names = NULL;
    size_t count = 0;
    CHECK_EQ(osdkit_client_list_names(c, "data", &names, &count), 0);
    CHECK_EQ(count, 22);
    CHECK_STREQ(names[0], "empty");
    CHECK_STREQ(names[1], "many-00");
    CHECK_STREQ(names[21], "obj-a");
    osdkit_names_free(names, count);

    /* Xattrs and omap. */
    CHECK_EQ(osdkit_client_setxattr(c, "data", "obj-a", "owner", "me", 2), 0);
    CHECK_EQ(osdkit_client_getxattr(c, "data", "obj-a", "owner", &buf, &len), 0);
    CHECK_EQ(len, 2);
    CHECK(memcmp(buf, "me", 2) == 0);
    osdkit_buffer_free(buf);
    CHECK_EQ(osdkit_client_getxattr(c, "data", "obj-a", "nope", &buf, &len), -ENODATA);
    const char *keys[2] = {"k1", "k2"};
    const void *vals[2] = {"v1", "value two"};
    size_t lens[2] = {2, 9};
    CHECK_EQ(osdkit_client_omap_set(c, "data", "obj-a", keys, vals, lens, 2), 0);
    CHECK_EQ(osdkit_client_omap_get(c, "data", "obj-a", "k2", &buf, &len), 0);
    CHECK_EQ(len, 9);
    CHECK(memcmp(buf, "value two", 9) == 0);
    osdkit_buffer_free(buf);
    CHECK_EQ(osdkit_client_omap_get(c, "data", "obj-a", "k3", &buf, &len), -ENOENT);
    CHECK_EQ(osdkit_client_omap_set(c, "data", "obj-a", keys, vals, lens, 0), -EINVAL);
    CHECK_EQ(osdkit_client_omap_set(c, "data", "obj-a", NULL, vals, lens, 2), -EINVAL);

    /* Several ops as one: a failing last op leaves no trace. */
    osdkit_op_list *ops = osdkit_op_list_new();
    CHECK(ops != NULL);
    CHECK_EQ(osdkit_op_list_write_full(ops, "new data", 8), 1);
    CHECK_EQ(osdkit_op_list_setxattr(ops, "tag", "t", 1), 2);
    CHECK_EQ(osdkit_op_list_omap_set(ops, "om", "x", 1), 3);
    CHECK_EQ(osdkit_op_list_create(ops, 1), 4); /* exclusive: the object exists by now */
    CHECK_EQ(osdkit_client_operate(c, "data", "atomic", ops), -EEXIST);
    CHECK_EQ(osdkit_client_stat(c, "data", "atomic", NULL, NULL, NULL), -ENOENT);
    osdkit_op_list_free(ops);
    /* ... and on an existing object, a failed compare undoes the writes before it. */
    ops = osdkit_op_list_new();
    CHECK_EQ(osdkit_op_list_write_full(ops, "clobbered", 9), 1);
    CHECK_EQ(osdkit_op_list_cmpxattr_eq(ops, "owner", "someone else", 12), 2);
    CHECK_EQ(osdkit_client_operate(c, "data", "obj-a", ops), -ECANCELED);
    osdkit_op_list_free(ops);
    CHECK_EQ(osdkit_client_get(c, "data", "obj-a", &buf, &len), 0);
    CHECK_EQ(len, strlen(hello));
    CHECK(memcmp(buf, hello, len) == 0);
    osdkit_buffer_free(buf);
    /* A successful multi-op request applies every op. */
    ops = osdkit_op_list_new();
    CHECK_EQ(osdkit_op_list_create(ops, 1), 1);
    CHECK_EQ(osdkit_op_list_write_full(ops, "abc", 3), 2);
    CHECK_EQ(osdkit_op_list_append(ops, "def", 3), 3);
    CHECK_EQ(osdkit_op_list_setxattr(ops, "tag", "t", 1), 4);
    CHECK_EQ(osdkit_client_operate(c, "data", "atomic", ops), 0);
    CHECK_EQ(osdkit_client_operate(c, "data", "atomic", ops), -EEXIST); /* reusable; exclusive */
    osdkit_op_list_free(ops);
    CHECK_EQ(osdkit_client_get(c, "data", "atomic", &buf, &len), 0);
    CHECK_EQ(len, 6);
    CHECK(memcmp(buf, "abcdef", 6) == 0);
    osdkit_buffer_free(buf);
    osdkit_op_list *empty = osdkit_op_list_new();
    CHECK_EQ(osdkit_client_operate(c, "data", "atomic", empty), -EINVAL);
    CHECK_EQ(osdkit_client_operate(c, "data", "atomic", NULL), -EINVAL);
    osdkit_op_list_free(empty);

    /* Async writes: the completion runs once, on a messenger worker thread. */
    completion comp;
    memset(&comp, 0, sizeof(comp));
    tu_counter_init(&comp.done);
    CHECK_EQ(osdkit_client_put_async(c, "data", "async", "later", 5, on_complete, &comp), 0);
    CHECK_EQ(tu_counter_wait(&comp.done, 1, 30.0), 1);
    CHECK_EQ(comp.result, 0);
    CHECK(comp.on_worker);
    CHECK_EQ(osdkit_client_get(c, "data", "async", &buf, &len), 0);
    CHECK_EQ(len, 5);
    CHECK(memcmp(buf, "later", 5) == 0);
    osdkit_buffer_free(buf);
    ops = osdkit_op_list_new();
    CHECK_EQ(osdkit_op_list_create(ops, 1), 1);
    CHECK_EQ(osdkit_client_operate_async(c, "data", "async", ops, on_complete, &comp), 0);
    osdkit_op_list_free(ops); /* may go at once */
    CHECK_EQ(tu_counter_wait(&comp.done, 2, 30.0), 2);
    CHECK_EQ(comp.result, -EEXIST);
    /* Refused up front: the completion is not called. */
    CHECK_EQ(osdkit_client_put_async(c, "nopool", "x", "a", 1, on_complete, &comp), -ENOENT);
    CHECK_EQ(osdkit_client_put_async(c, "data", "x", "a", 1, NULL, &comp), -EINVAL);
    tu_sleep_ms(50);
    CHECK_EQ(tu_counter_get(&comp.done), 2);
    tu_counter_destroy(&comp.done);

    /* Missing things. */
    CHECK_EQ(osdkit_client_remove(c, "data", "obj-a"), 0);
    CHECK_EQ(osdkit_client_get(c, "data", "obj-a", &buf, &len), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "obj-a");
    CHECK_EQ(osdkit_client_stat(c, "data", "obj-a", &size, NULL, NULL), -ENOENT);
    CHECK_EQ(osdkit_client_remove(c, "data", "obj-a"), -ENOENT);
    CHECK_EQ(osdkit_client_get(c, "nopool", "obj-a", &buf, &len), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "nopool");
    CHECK_EQ(osdkit_client_list(c, "nopool", on_name, &seen), -ENOENT);

    /* Bad arguments on a live client. */
    CHECK_EQ(osdkit_client_get(c, NULL, "obj-a", &buf, &len), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "pool");
    CHECK_EQ(osdkit_client_get(c, "data", NULL, &buf, &len), -EINVAL);
    CHECK_EQ(osdkit_client_get(c, "data", "many-00", NULL, &len), -EINVAL);
    CHECK_EQ(osdkit_client_get(c, "data", "many-00", &buf, NULL), -EINVAL);
    CHECK_EQ(osdkit_client_put(c, "data", "x", NULL, 3), -EINVAL);
    CHECK_EQ(osdkit_client_list(c, "data", NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_client_list_names(c, "data", NULL, &count), -EINVAL);
    CHECK_EQ(osdkit_client_setxattr(c, "data", "x", NULL, "v", 1), -EINVAL);
    CHECK_EQ(osdkit_client_omap_get(c, "data", "x", NULL, &buf, &len), -EINVAL);

    /* An OSD stopped and started again (same memory store) still serves its objects. */
    CHECK_EQ(osdkit_cluster_stop_osd(cl, 7), -EINVAL);
    for (int id = 0; id < 3; id++) {
        CHECK_EQ(osdkit_cluster_stop_osd(cl, id), 0);
        CHECK_EQ(osdkit_cluster_stop_osd(cl, id), -ENOENT);
        CHECK_EQ(osdkit_cluster_start_osd(cl, id), 0);
        CHECK_EQ(osdkit_cluster_start_osd(cl, id), -EEXIST);
    }
    for (int i = 0; i < 20; i++) {
        char oid[32], val[32];
        snprintf(oid, sizeof(oid), "many-%02d", i);
        snprintf(val, sizeof(val), "value %d", i);
        CHECK_EQ(osdkit_client_get(c, "data", oid, &buf, &len), 0);
        CHECK_EQ(len, strlen(val));
        CHECK(memcmp(buf, val, len) == 0);
        osdkit_buffer_free(buf);
    }

    osdkit_client_free(c);
    osdkit_cluster_free(cl);
    tu_rm_rf(dir);
    test_replicated_failover();
    printf("test_client: ok\n");
    return 0;
}
