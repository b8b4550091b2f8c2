/*
 * The librados-shaped client against a monitor and three OSDs (mem store) hosted in this
 * process: a handle configured by option and by conf file, pools, an ioctx's object calls,
 * xattrs and omap with iterators, listing with a resumable cursor, compound write and read
 * ops (atomic, reusable), completions with and without callbacks (and their thread), errnos
 * for bad arguments and missing things; then a replicated pool across an OSD kill.
 */
#include "test_util.h"

#include <unistd.h>

typedef struct cb_seen {
    tu_counter done;
    int rval_in_cb;      /* osdkit_completion_get_return_value inside the callback */
    int complete_in_cb;  /* osdkit_completion_is_complete inside the callback (0: not yet) */
    int on_worker;       /* ran on a msgr-worker-N thread */
} cb_seen;

static void on_complete(osdkit_completion *comp, void *user) {
    cb_seen *s = (cb_seen *)user;
    char tname[32] = "";
    pthread_getname_np(pthread_self(), tname, sizeof(tname));
    pthread_mutex_lock(&s->done.mu);
    s->rval_in_cb = osdkit_completion_get_return_value(comp);
    s->complete_in_cb = osdkit_completion_is_complete(comp);
    s->on_worker = strncmp(tname, "msgr-worker", 11) == 0;
    pthread_mutex_unlock(&s->done.mu);
    tu_counter_add(&s->done, 1);
}

/* A connected handle on the hosted cluster, by `mon_host`. */
static osdkit_rados *connect_to(osdkit_cluster *cl) {
    char addr[128];
    CHECK(osdkit_cluster_mon_addr(cl, addr, sizeof(addr)) > 0);
    osdkit_rados *r = NULL;
    CHECK_EQ(osdkit_rados_create(NULL, &r), 0);
    CHECK_EQ(osdkit_rados_conf_set(r, "mon_host", addr), 0);
    CHECK_EQ(osdkit_rados_connect(r), 0);
    return r;
}

static void test_bad_args(void) {
    osdkit_cluster *cl = NULL;
    osdkit_rados *r = NULL;
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

    CHECK_EQ(osdkit_rados_create("osd.0", &r), -EINVAL); /* not a client name */
    CHECK_EQ(osdkit_rados_create(NULL, NULL), -EINVAL);
    CHECK(r == NULL);
    CHECK_EQ(osdkit_rados_create("client.bad", &r), 0);
    CHECK_EQ(osdkit_rados_conf_set(r, "no_such_option", "1"), -ENOENT);
    CHECK_EQ(osdkit_rados_conf_set(r, "rados_osd_op_timeout", "soon"), -EINVAL);
    CHECK_EQ(osdkit_rados_conf_set(r, NULL, "1"), -EINVAL);
    CHECK_EQ(osdkit_rados_conf_read_file(r, "/nonexistent/osdkit.conf"), -ENOENT);
    char val[64], tiny[2];
    CHECK_EQ(osdkit_rados_conf_get(r, "no_such_option", val, sizeof(val)), -ENOENT);
    CHECK_EQ(osdkit_rados_conf_set(r, "rados_osd_op_timeout", "7"), 0);
    CHECK_EQ(osdkit_rados_conf_get(r, "rados_osd_op_timeout", tiny, sizeof(tiny)), -ERANGE);
    CHECK(osdkit_rados_conf_get(r, "rados_osd_op_timeout", val, sizeof(val)) > 0);
    CHECK(val[0] == '7');
    /* Not connected: pool and ioctx calls say so. */
    osdkit_ioctx *io = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "data", &io), -ENOTCONN);
    CHECK_EQ(osdkit_rados_pool_lookup(r, "data"), -ENOTCONN);
    CHECK_EQ(osdkit_rados_pool_create(r, "p"), -ENOTCONN);
    /* mon_host unset: a clear error, not a hang. */
    CHECK_EQ(osdkit_rados_connect(r), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "mon_host");
    osdkit_rados_shutdown(r);

    CHECK_EQ(osdkit_ioctx_write_full(NULL, "o", "a", 1), -EINVAL);
    CHECK_EQ(osdkit_write_op_remove(NULL), -EINVAL);
    CHECK_EQ(osdkit_read_op_stat(NULL, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_completion_wait(NULL), -EINVAL);
    CHECK_EQ(osdkit_completion_is_complete(NULL), -EINVAL);
    CHECK_EQ(osdkit_completion_create(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_kv_iter_size(NULL), -EINVAL);
    CHECK_EQ(osdkit_list_next(NULL, NULL), -EINVAL);
    osdkit_completion *c = NULL;
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_completion_wait(c), -EINVAL); /* never given to a call: would hang */
    CHECK_EQ(osdkit_completion_get_return_value(c), -EINPROGRESS);
    CHECK_EQ(osdkit_completion_is_complete(c), 0);
    osdkit_completion_release(c);
    osdkit_cluster_free(NULL);
    osdkit_rados_shutdown(NULL);
    osdkit_ioctx_destroy(NULL);
    osdkit_write_op_free(NULL);
    osdkit_read_op_free(NULL);
    osdkit_completion_release(NULL);
    osdkit_kv_iter_end(NULL);
    osdkit_list_close(NULL);
}

static void test_conf_file(osdkit_cluster *cl, const char *dir) {
    char addr[128], path[512];
    CHECK(osdkit_cluster_mon_addr(cl, addr, sizeof(addr)) > 0);
    snprintf(path, sizeof(path), "%s/client.conf", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "[global]\nmon_host = %s\n[client.reader]\nrados_osd_op_timeout = 12\n", addr);
    fclose(f);
    osdkit_rados *r = NULL;
    CHECK_EQ(osdkit_rados_create("client.reader", &r), 0);
    CHECK_EQ(osdkit_rados_conf_read_file(r, path), 0);
    char val[32];
    CHECK(osdkit_rados_conf_get(r, "rados_osd_op_timeout", val, sizeof(val)) > 0);
    CHECK(strncmp(val, "12", 2) == 0);
    CHECK_EQ(osdkit_rados_connect(r), 0);
    CHECK_EQ(osdkit_rados_connect(r), -EISCONN);
    CHECK_EQ(osdkit_rados_conf_read_file(r, path), -EISCONN);
    CHECK(osdkit_rados_pool_lookup(r, "data") > 0);
    osdkit_rados_shutdown(r);
}

static void test_pools(osdkit_rados *r) {
    CHECK_EQ(osdkit_rados_pool_lookup(r, "extra"), -ENOENT);
    CHECK_EQ(osdkit_rados_pool_create(r, "extra"), 0);
    CHECK_EQ(osdkit_rados_pool_create(r, "extra"), -EEXIST);
    int64_t id = osdkit_rados_pool_lookup(r, "extra");
    CHECK(id > 0);
    /* Listing: "data\0extra\0\0"; a short buffer gets the size and nothing written. */
    char small[4] = {'x', 'x', 'x', 'x'};
    int need = osdkit_rados_pool_list(r, small, sizeof(small));
    CHECK_EQ(need, (int)(strlen("data") + strlen("extra") + 3));
    CHECK(small[0] == 'x');
    char buf[256];
    CHECK_EQ(osdkit_rados_pool_list(r, buf, sizeof(buf)), need);
    int seen_data = 0, seen_extra = 0;
    for (const char *p = buf; *p; p += strlen(p) + 1) {
        seen_data += strcmp(p, "data") == 0;
        seen_extra += strcmp(p, "extra") == 0;
    }
    CHECK_EQ(seen_data, 1);
    CHECK_EQ(seen_extra, 1);
    /* An ioctx right after the create works (the create waited for the map). */
    osdkit_ioctx *io = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "extra", &io), 0);
    CHECK_EQ(osdkit_ioctx_get_id(io), id);
    char name[16];
    CHECK_EQ(osdkit_ioctx_get_pool_name(io, name, sizeof(name)), 5);
    CHECK_STREQ(name, "extra");
    CHECK_EQ(osdkit_ioctx_write_full(io, "in-extra", "x", 1), 0);
    osdkit_ioctx_destroy(io);
    CHECK_EQ(osdkit_rados_pool_delete(r, "extra"), 0);
    CHECK_EQ(osdkit_rados_pool_delete(r, "extra"), -ENOENT);
    CHECK_EQ(osdkit_rados_pool_lookup(r, "extra"), -ENOENT);
    CHECK_EQ(osdkit_ioctx_create(r, "extra", &io), -ENOENT);
}

static void test_objects(osdkit_ioctx *io) {
    const char *hello = "hello, osd";
    char buf[64];
    CHECK_EQ(osdkit_ioctx_write_full(io, "obj-a", hello, strlen(hello)), 0);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, sizeof(buf), 0), (int)strlen(hello));
    CHECK(memcmp(buf, hello, strlen(hello)) == 0);
    /* Ranged reads: a window, past the end, a short buffer. */
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, 3, 7), 3);
    CHECK(memcmp(buf, "osd", 3) == 0);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, sizeof(buf), 100), 0);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, 5, 0), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    /* write at an offset, append, truncate. */
    CHECK_EQ(osdkit_ioctx_write(io, "obj-a", "HELLO", 5, 0), 0);
    CHECK_EQ(osdkit_ioctx_append(io, "obj-a", "!!", 2), 0);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, sizeof(buf), 0), 12);
    CHECK(memcmp(buf, "HELLO, osd!!", 12) == 0);
    uint64_t size = 0;
    int64_t mtime = 0;
    uint32_t nsec = 0;
    CHECK_EQ(osdkit_ioctx_stat(io, "obj-a", &size, &mtime, &nsec), 0);
    CHECK_EQ(size, 12);
    CHECK(mtime > 1600000000 && mtime <= (int64_t)time(NULL) + 5);
    CHECK(nsec < 1000000000u);
    CHECK_EQ(osdkit_ioctx_trunc(io, "obj-a", 5), 0);
    CHECK_EQ(osdkit_ioctx_stat(io, "obj-a", &size, NULL, NULL), 0);
    CHECK_EQ(size, 5);
    CHECK_EQ(osdkit_ioctx_write(io, "sparse", "z", 1, 4), 0); /* a hole reads as zeros */
    CHECK_EQ(osdkit_ioctx_read(io, "sparse", buf, sizeof(buf), 0), 5);
    CHECK(memcmp(buf, "\0\0\0\0z", 5) == 0);

    /* Xattrs. */
    CHECK_EQ(osdkit_ioctx_setxattr(io, "obj-a", "owner", "me", 2), 0);
    CHECK_EQ(osdkit_ioctx_setxattr(io, "obj-a", "tier", "gold", 4), 0);
    CHECK_EQ(osdkit_ioctx_getxattr(io, "obj-a", "tier", buf, sizeof(buf)), 4);
    CHECK(memcmp(buf, "gold", 4) == 0);
    CHECK_EQ(osdkit_ioctx_getxattr(io, "obj-a", "tier", buf, 2), -ERANGE);
    CHECK_EQ(osdkit_ioctx_getxattr(io, "obj-a", "nope", buf, sizeof(buf)), -ENODATA);
    osdkit_kv_iter *it = NULL;
    CHECK_EQ(osdkit_ioctx_getxattrs(io, "obj-a", &it), 0);
    CHECK_EQ(osdkit_kv_iter_size(it), 2);
    const char *k = NULL, *v = NULL;
    size_t vlen = 0;
    CHECK_EQ(osdkit_kv_iter_next(it, &k, &v, &vlen), 0);
    CHECK_STREQ(k, "owner");
    CHECK_EQ(vlen, 2);
    CHECK(memcmp(v, "me", 2) == 0);
    CHECK_EQ(osdkit_kv_iter_next(it, &k, &v, &vlen), 0);
    CHECK_STREQ(k, "tier");
    CHECK_EQ(osdkit_kv_iter_next(it, &k, &v, &vlen), 0);
    CHECK(k == NULL && v == NULL && vlen == 0); /* the end */
    osdkit_kv_iter_end(it);
    CHECK_EQ(osdkit_ioctx_rmxattr(io, "obj-a", "tier"), 0);
    CHECK_EQ(osdkit_ioctx_getxattr(io, "obj-a", "tier", buf, sizeof(buf)), -ENODATA);

    /* Omap: set, read by page and by key, remove. */
    const char *keys[3] = {"k1", "k2", "k3"};
    const char *vals[3] = {"v1", "value two", "3"};
    size_t lens[3] = {2, 9, 1};
    CHECK_EQ(osdkit_ioctx_omap_set(io, "obj-a", keys, vals, lens, 3), 0);
    CHECK_EQ(osdkit_ioctx_omap_get_vals(io, "obj-a", "k1", 10, &it), 0);
    CHECK_EQ(osdkit_kv_iter_size(it), 2);
    CHECK_EQ(osdkit_kv_iter_next(it, &k, &v, &vlen), 0);
    CHECK_STREQ(k, "k2");
    CHECK_EQ(vlen, 9);
    CHECK(memcmp(v, "value two", 9) == 0);
    osdkit_kv_iter_end(it);
    const char *want[2] = {"k3", "k9"};
    CHECK_EQ(osdkit_ioctx_omap_get_vals_by_keys(io, "obj-a", want, 2, &it), 0);
    CHECK_EQ(osdkit_kv_iter_size(it), 1);
    osdkit_kv_iter_end(it);
    CHECK_EQ(osdkit_ioctx_omap_rm_keys(io, "obj-a", keys, 2), 0);
    CHECK_EQ(osdkit_ioctx_omap_get_vals(io, "obj-a", NULL, 10, &it), 0);
    CHECK_EQ(osdkit_kv_iter_size(it), 1);
    osdkit_kv_iter_end(it);
    CHECK_EQ(osdkit_ioctx_omap_set(io, "obj-a", NULL, vals, lens, 2), -EINVAL);

    /* Missing things. */
    CHECK_EQ(osdkit_ioctx_read(io, "nope", buf, sizeof(buf), 0), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "nope");
    CHECK_EQ(osdkit_ioctx_stat(io, "nope", &size, NULL, NULL), -ENOENT);
    CHECK_EQ(osdkit_ioctx_remove(io, "sparse"), 0);
    CHECK_EQ(osdkit_ioctx_remove(io, "sparse"), -ENOENT);
    CHECK_EQ(osdkit_ioctx_getxattrs(io, "nope", &it), -ENOENT);

    /* Bad arguments on a live handle. */
    CHECK_EQ(osdkit_ioctx_read(io, NULL, buf, sizeof(buf), 0), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "oid");
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", NULL, 4, 0), -EINVAL);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, (size_t)1 << 40, 0), -EINVAL);
    CHECK_EQ(osdkit_ioctx_write_full(io, "x", NULL, 3), -EINVAL);
    CHECK_EQ(osdkit_ioctx_setxattr(io, "x", NULL, "v", 1), -EINVAL);
    CHECK_EQ(osdkit_ioctx_getxattrs(io, "obj-a", NULL), -EINVAL);
}

static void test_listing(osdkit_ioctx *io) {
    /* 40 fresh objects in a fresh pool, listed whole, then again in two halves through a
     * cursor handed from one listing to another. */
    for (int i = 0; i < 40; i++) {
        char oid[32];
        snprintf(oid, sizeof(oid), "many-%02d", i);
        CHECK_EQ(osdkit_ioctx_write_full(io, oid, oid, strlen(oid)), 0);
    }
    int seen[40];
    memset(seen, 0, sizeof(seen));
    osdkit_list_ctx *l = NULL;
    CHECK_EQ(osdkit_ioctx_list_open(io, &l), 0);
    const char *name = NULL;
    int n = 0, r;
    char cursor[128] = "";
    while ((r = osdkit_list_next(l, &name)) == 0) {
        int i = -1;
        CHECK_EQ(sscanf(name, "many-%d", &i), 1);
        CHECK(i >= 0 && i < 40);
        seen[i]++;
        if (++n == 17) {
            CHECK(osdkit_list_get_cursor(l, cursor, sizeof(cursor)) > 0);
        }
    }
    CHECK_EQ(r, -ENOENT);
    CHECK_EQ(osdkit_list_next(l, &name), -ENOENT); /* stays at the end */
    char endpos[16];
    CHECK_EQ(osdkit_list_get_cursor(l, endpos, sizeof(endpos)), 3);
    CHECK_STREQ(endpos, "end");
    osdkit_list_close(l);
    CHECK_EQ(n, 40);
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(seen[i], 1);
    }
    /* Resume after the 17th: the remaining 23, each once. */
    CHECK_EQ(osdkit_ioctx_list_open(io, &l), 0);
    CHECK_EQ(osdkit_list_seek(l, cursor), 0);
    int rest = 0;
    while (osdkit_list_next(l, &name) == 0) {
        int i = -1;
        CHECK_EQ(sscanf(name, "many-%d", &i), 1);
        seen[i]++;
        rest++;
    }
    CHECK_EQ(rest, 23);
    int twice = 0;
    for (int i = 0; i < 40; i++) {
        twice += seen[i] == 2;
    }
    CHECK_EQ(twice, 23);
    CHECK_EQ(osdkit_list_seek(l, "not a cursor"), -EINVAL);
    CHECK_EQ(osdkit_list_seek(l, "end"), 0);
    CHECK_EQ(osdkit_list_next(l, &name), -ENOENT);
    osdkit_list_close(l);
}

static void test_compound_ops(osdkit_ioctx *io) {
    const char *hello = "hello";
    CHECK_EQ(osdkit_ioctx_write_full(io, "base", hello, 5), 0);
    CHECK_EQ(osdkit_ioctx_setxattr(io, "base", "owner", "me", 2), 0);

    /* A failing last op leaves no trace. */
    osdkit_write_op *w = osdkit_write_op_new();
    CHECK(w != NULL);
    const char *k = "om";
    const char *v = "x";
    size_t l1 = 1;
    CHECK_EQ(osdkit_write_op_write_full(w, "new data", 8), 1);
    CHECK_EQ(osdkit_write_op_setxattr(w, "tag", "t", 1), 2);
    CHECK_EQ(osdkit_write_op_omap_set(w, &k, &v, &l1, 1), 3);
    CHECK_EQ(osdkit_write_op_create(w, 1), 4); /* exclusive: exists by the time it runs */
    CHECK_EQ(osdkit_write_op_operate(w, io, "atomic"), -EEXIST);
    CHECK_EQ(osdkit_ioctx_stat(io, "atomic", NULL, NULL, NULL), -ENOENT);
    osdkit_write_op_free(w);
    /* On an existing object, a failed compare undoes the writes before it. */
    w = osdkit_write_op_new();
    CHECK_EQ(osdkit_write_op_write_full(w, "clobbered", 9), 1);
    CHECK_EQ(osdkit_write_op_cmpxattr(w, "owner", OSDKIT_CMPXATTR_OP_EQ, "someone", 7), 2);
    CHECK_EQ(osdkit_write_op_cmpxattr(w, "owner", 99, "x", 1), -EINVAL);
    CHECK_EQ(osdkit_write_op_operate(w, io, "base"), -ECANCELED);
    osdkit_write_op_free(w);
    char buf[32];
    CHECK_EQ(osdkit_ioctx_read(io, "base", buf, sizeof(buf), 0), 5);
    CHECK(memcmp(buf, hello, 5) == 0);
    /* A successful one applies every op, and may be sent again. */
    w = osdkit_write_op_new();
    CHECK_EQ(osdkit_write_op_create(w, 1), 1);
    CHECK_EQ(osdkit_write_op_write_full(w, "abc", 3), 2);
    CHECK_EQ(osdkit_write_op_append(w, "def", 3), 3);
    CHECK_EQ(osdkit_write_op_setxattr(w, "tag", "t", 1), 4);
    CHECK_EQ(osdkit_write_op_omap_set(w, &k, &v, &l1, 1), 5);
    CHECK_EQ(osdkit_write_op_operate(w, io, "atomic"), 0);
    CHECK_EQ(osdkit_write_op_operate(w, io, "atomic"), -EEXIST); /* reusable; exclusive */
    osdkit_write_op_free(w);
    w = osdkit_write_op_new();
    CHECK_EQ(osdkit_write_op_operate(w, io, "atomic"), -EINVAL); /* empty */
    CHECK_EQ(osdkit_write_op_zero(w, 1, 1), 1);
    CHECK_EQ(osdkit_write_op_truncate(w, 5), 2);
    CHECK_EQ(osdkit_write_op_rmxattr(w, "tag"), 3);
    CHECK_EQ(osdkit_write_op_omap_rm_keys(w, &k, 1), 4);
    CHECK_EQ(osdkit_write_op_operate(w, io, "atomic"), 0);
    osdkit_write_op_free(w);

    /* A compound read: data, stat, xattrs, omap, all from one request. */
    osdkit_read_op *rd = osdkit_read_op_new();
    CHECK(rd != NULL);
    size_t got = 99;
    int prval[4] = {1, 1, 1, 1};
    uint64_t size = 0;
    osdkit_kv_iter *xattrs = NULL, *omap = NULL;
    unsigned char more = 9;
    CHECK_EQ(osdkit_read_op_read(rd, 0, sizeof(buf), buf, &got, &prval[0]), 1);
    CHECK_EQ(osdkit_read_op_stat(rd, &size, NULL, NULL, &prval[1]), 2);
    CHECK_EQ(osdkit_read_op_getxattrs(rd, &xattrs, &prval[2]), 3);
    CHECK_EQ(osdkit_read_op_omap_get_vals(rd, NULL, 10, &omap, &more, &prval[3]), 4);
    CHECK_EQ(osdkit_read_op_operate(rd, io, "atomic"), 0);
    CHECK_EQ(got, 5);
    CHECK(memcmp(buf, "a\0cde", 5) == 0);
    CHECK_EQ(size, 5);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(prval[i], 0);
    }
    CHECK_EQ(osdkit_kv_iter_size(xattrs), 0); /* "tag" was removed */
    CHECK_EQ(osdkit_kv_iter_size(omap), 0);
    CHECK_EQ(more, 0);
    osdkit_kv_iter_end(xattrs);
    osdkit_kv_iter_end(omap);
    /* On a missing object: the errno, every prval has it, no iterators. */
    CHECK_EQ(osdkit_read_op_operate(rd, io, "nope"), -ENOENT);
    CHECK_EQ(prval[0], -ENOENT);
    CHECK_EQ(prval[3], -ENOENT);
    CHECK(xattrs == NULL && omap == NULL);
    CHECK_EQ(got, 0);
    osdkit_read_op_free(rd);
    /* A read guarded by a comparison. */
    rd = osdkit_read_op_new();
    CHECK_EQ(osdkit_read_op_cmpxattr(rd, "owner", OSDKIT_CMPXATTR_OP_EQ, "me", 2), 1);
    CHECK_EQ(osdkit_read_op_read(rd, 0, 2, buf, &got, NULL), 2);
    CHECK_EQ(osdkit_read_op_operate(rd, io, "base"), 0);
    CHECK_EQ(got, 2);
    osdkit_read_op_free(rd);
    rd = osdkit_read_op_new();
    CHECK_EQ(osdkit_read_op_cmpxattr(rd, "owner", OSDKIT_CMPXATTR_OP_EQ, "you", 3), 1);
    CHECK_EQ(osdkit_read_op_operate(rd, io, "base"), -ECANCELED);
    osdkit_read_op_free(rd);
}

static void test_aio(osdkit_ioctx *io) {
    /* A completion with a callback: the return value is there inside it, and the completion
     * is marked complete only after it returned; it ran on a messenger worker. */
    cb_seen s;
    memset(&s, 0, sizeof(s));
    tu_counter_init(&s.done);
    osdkit_completion *c = NULL;
    CHECK_EQ(osdkit_completion_create(on_complete, &s, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_write_full(io, "async", c, "later", 5), 0);
    CHECK_EQ(osdkit_ioctx_aio_write_full(io, "async", c, "again", 5), -EINVAL); /* one call each */
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_is_complete(c), 1);
    CHECK_EQ(osdkit_completion_get_return_value(c), 0);
    CHECK_EQ(tu_counter_get(&s.done), 1);
    CHECK_EQ(s.rval_in_cb, 0);
    CHECK_EQ(s.complete_in_cb, 0);
    CHECK(s.on_worker);
    osdkit_completion_release(c);

    /* Without a callback: a read into the caller's buffer returns the bytes read. */
    char buf[16];
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_read(io, "async", c, buf, sizeof(buf), 2), 0);
    CHECK_EQ(osdkit_completion_wait_timeout(c, 30000), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), 3);
    CHECK(memcmp(buf, "ter", 3) == 0);
    osdkit_completion_release(c);

    /* Many in flight at once, each its own completion, released before it completes. */
    enum { N = 32 };
    cb_seen many;
    memset(&many, 0, sizeof(many));
    tu_counter_init(&many.done);
    for (int i = 0; i < N; i++) {
        char oid[32];
        snprintf(oid, sizeof(oid), "aio-%02d", i);
        osdkit_completion *ci = NULL;
        CHECK_EQ(osdkit_completion_create(on_complete, &many, &ci), 0);
        CHECK_EQ(osdkit_ioctx_aio_append(io, oid, ci, oid, strlen(oid)), 0);
        osdkit_completion_release(ci); /* the library keeps its own reference */
    }
    CHECK_EQ(tu_counter_wait(&many.done, N, 30.0), N);
    CHECK_EQ(osdkit_ioctx_read(io, "aio-31", buf, sizeof(buf), 0), 6);

    /* aio stat and remove, and errors through completions. */
    uint64_t size = 0;
    int64_t sec = 0;
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_stat(io, "async", c, &size, &sec, NULL), 0);
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), 0);
    CHECK_EQ(size, 5);
    CHECK(sec > 1600000000);
    osdkit_completion_release(c);
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_remove(io, "async", c), 0);
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), 0);
    osdkit_completion_release(c);
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_read(io, "async", c, buf, sizeof(buf), 0), 0);
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), -ENOENT);
    osdkit_completion_release(c);

    /* Compound ops through completions. */
    osdkit_write_op *w = osdkit_write_op_new();
    CHECK_EQ(osdkit_write_op_create(w, 1), 1);
    CHECK_EQ(osdkit_write_op_write_full(w, "xyz", 3), 2);
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_write_op_aio_operate(w, io, c, "aio-op"), 0);
    osdkit_write_op_free(w); /* may go at once */
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), 0);
    osdkit_completion_release(c);
    osdkit_read_op *rd = osdkit_read_op_new();
    size_t got = 0;
    int prval = 1;
    CHECK_EQ(osdkit_read_op_read(rd, 1, sizeof(buf), buf, &got, &prval), 1);
    CHECK_EQ(osdkit_completion_create(NULL, NULL, &c), 0);
    CHECK_EQ(osdkit_read_op_aio_operate(rd, io, c, "aio-op"), 0);
    osdkit_read_op_free(rd);
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(osdkit_completion_get_return_value(c), 0);
    CHECK_EQ(got, 2);
    CHECK_EQ(prval, 0);
    CHECK(memcmp(buf, "yz", 2) == 0);
    osdkit_completion_release(c);

    /* Refused up front: the completion is untouched and can still be used. */
    CHECK_EQ(osdkit_completion_create(on_complete, &s, &c), 0);
    CHECK_EQ(osdkit_ioctx_aio_write(io, NULL, c, "a", 1, 0), -EINVAL);
    CHECK_EQ(osdkit_ioctx_aio_write(io, "x", NULL, "a", 1, 0), -EINVAL);
    CHECK_EQ(osdkit_ioctx_aio_read(io, "x", c, NULL, 4, 0), -EINVAL);
    CHECK_EQ(osdkit_completion_is_complete(c), 0);
    CHECK_EQ(osdkit_ioctx_aio_write(io, "x", c, "a", 1, 0), 0);
    CHECK_EQ(osdkit_completion_wait(c), 0);
    CHECK_EQ(tu_counter_get(&s.done), 2);
    osdkit_completion_release(c);
    tu_counter_destroy(&s.done);
    tu_counter_destroy(&many.done);
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
    osdkit_rados *r = connect_to(cl);
    osdkit_ioctx *io = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "data", &io), 0);
    for (int i = 0; i < 30; i++) {
        char oid[32];
        snprintf(oid, sizeof(oid), "r-%02d", i);
        CHECK_EQ(osdkit_ioctx_write_full(io, oid, oid, strlen(oid)), 0);
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
        char oid[32], buf[32];
        snprintf(oid, sizeof(oid), "r-%02d", i);
        CHECK_EQ(osdkit_ioctx_read(io, oid, buf, sizeof(buf), 0), (int)strlen(oid));
        CHECK(memcmp(buf, oid, strlen(oid)) == 0);
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
    osdkit_ioctx_destroy(io);
    osdkit_rados_shutdown(r);
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

    test_conf_file(cl, dir);
    osdkit_rados *r = connect_to(cl);
    test_pools(r);
    osdkit_ioctx *io = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "nopool", &io), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "nopool");
    CHECK_EQ(osdkit_ioctx_create(r, "data", &io), 0);
    test_objects(io);
    test_compound_ops(io);
    test_aio(io);
    CHECK_EQ(osdkit_rados_pool_create(r, "listing"), 0);
    osdkit_ioctx *lio = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "listing", &lio), 0);
    test_listing(lio);
    osdkit_ioctx_destroy(lio);

    /* OSDs stopped and started again (same memory store) still serve their objects. */
    CHECK_EQ(osdkit_cluster_stop_osd(cl, 7), -EINVAL);
    for (int id = 0; id < 3; id++) {
        CHECK_EQ(osdkit_cluster_stop_osd(cl, id), 0);
        CHECK_EQ(osdkit_cluster_stop_osd(cl, id), -ENOENT);
        CHECK_EQ(osdkit_cluster_start_osd(cl, id), 0);
        CHECK_EQ(osdkit_cluster_start_osd(cl, id), -EEXIST);
    }
    char buf[32];
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, sizeof(buf), 0), 5);
    CHECK(memcmp(buf, "HELLO", 5) == 0);

    /* After shutdown, an ioctx still open fails cleanly instead of crashing. */
    osdkit_rados_shutdown(r);
    CHECK_EQ(osdkit_ioctx_read(io, "obj-a", buf, sizeof(buf), 0), -ESHUTDOWN);
    osdkit_ioctx_destroy(io);
    osdkit_cluster_free(cl);
    tu_rm_rf(dir);
    test_replicated_failover();
    printf("test_rados: ok\n");
    return 0;
}
