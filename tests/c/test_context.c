/*
 * Context life cycle through the C ABI: version, options (errors included), conf file, start,
 * the admin socket file, logging, NULL-argument checks.
 */
#include "test_util.h"

#include <sys/stat.h>

static void test_version(void) {
    char want[64];
    snprintf(want, sizeof(want), "%d.%d.%d", OSDKIT_VERSION_MAJOR, OSDKIT_VERSION_MINOR,
             OSDKIT_VERSION_PATCH);
    CHECK_STREQ(osdkit_version(), want);
    /* Static storage: the same pointer every time. */
    CHECK(osdkit_version() == osdkit_version());
    osdkit_string_free(NULL); /* ignored */
    TU_PASS("version");
}

static void test_null_arguments(void) {
    osdkit_context *ctx = NULL;
    CHECK_EQ(osdkit_context_new(NULL, NULL, &ctx), -EINVAL);
    CHECK(ctx == NULL);
    CHECK_CONTAINS(osdkit_last_error(), "name");
    CHECK_EQ(osdkit_context_new("osd.0", NULL, NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "out");
    CHECK_EQ(osdkit_context_set_option(NULL, "run_dir", "/tmp"), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "ctx");
    CHECK_EQ(osdkit_context_start(NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "ctx is NULL");
    CHECK(osdkit_context_asok_path(NULL) == NULL);
    CHECK_EQ(osdkit_context_shutdown(NULL), -EINVAL);
    CHECK_EQ(osdkit_log(NULL, "osd", 0, "x"), -EINVAL);
    osdkit_context_free(NULL); /* ignored */

    CHECK_EQ(osdkit_context_new("osd.0", NULL, &ctx), 0);
    CHECK_EQ(osdkit_context_set_option(ctx, NULL, "x"), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "key");
    CHECK_EQ(osdkit_context_set_option(ctx, "run_dir", NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "value");
    char buf[16];
    CHECK_EQ(osdkit_context_get_option(ctx, NULL, buf, sizeof(buf)), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "key");
    CHECK_EQ(osdkit_context_get_option(ctx, "run_dir", NULL, 100), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "buf");
    CHECK_EQ(osdkit_log(ctx, "osd", 0, NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "msg");
    osdkit_context_free(ctx);
    TU_PASS("null arguments");
}

static void test_options(void) {
    osdkit_context *ctx = NULL;
    CHECK_EQ(osdkit_context_new("osd.0", NULL, &ctx), 0);

    /* A bad entity name is -EINVAL. */
    osdkit_context *bad = NULL;
    CHECK_EQ(osdkit_context_new("not a name", NULL, &bad), -EINVAL);
    CHECK(bad == NULL);

    CHECK_EQ(osdkit_context_set_option(ctx, "run_dir", "/tmp/osdkit-run"), 0);
    char buf[256];
    int n = osdkit_context_get_option(ctx, "run_dir", buf, sizeof(buf));
    CHECK_EQ(n, (int)strlen("/tmp/osdkit-run"));
    CHECK_STREQ(buf, "/tmp/osdkit-run");

    /* Metavariables are expanded. */
    n = osdkit_context_get_option(ctx, "admin_socket", buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_STREQ(buf, "/tmp/osdkit-run/ceph-osd.0.asok");

    /* Exactly len + 1 fits; len does not (-ERANGE, nothing written). */
    char small[16];
    memset(small, 'Z', sizeof(small));
    CHECK_EQ(osdkit_context_get_option(ctx, "run_dir", small, 15), -ERANGE);
    CHECK_CONTAINS(osdkit_last_error(), "16");
    for (size_t i = 0; i < sizeof(small); i++) {
        CHECK_EQ(small[i], 'Z');
    }
    CHECK_EQ(osdkit_context_get_option(ctx, "run_dir", small, 16), 15);
    CHECK_STREQ(small, "/tmp/osdkit-run");
    CHECK_EQ(osdkit_context_get_option(ctx, "run_dir", small, 0), -ERANGE);

    /* Unknown keys. */
    CHECK_EQ(osdkit_context_get_option(ctx, "no_such_option", buf, sizeof(buf)), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "no_such_option");
    CHECK_EQ(osdkit_context_set_option(ctx, "no_such_option", "1"), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "no_such_option");

    /* Bad values, and the old value stays. */
    CHECK_EQ(osdkit_context_set_option(ctx, "heartbeat_interval", "seven"), -EINVAL);
    CHECK(strlen(osdkit_last_error()) > 0);
    CHECK_EQ(osdkit_context_get_option(ctx, "heartbeat_interval", buf, sizeof(buf)), 1);
    CHECK_STREQ(buf, "5");
    CHECK_EQ(osdkit_context_set_option(ctx, "log_to_file", "maybe"), -EINVAL);
    CHECK_EQ(osdkit_context_set_option(ctx, "heartbeat_interval", "7"), 0);
    CHECK_EQ(osdkit_context_get_option(ctx, "heartbeat_interval", buf, sizeof(buf)), 1);
    CHECK_STREQ(buf, "7");

    /* Not started: no socket path yet. */
    CHECK(osdkit_context_asok_path(ctx) == NULL);
    osdkit_context_free(ctx);
    TU_PASS("options");
}

static void test_conf_file(void) {
    char dir[256], conf[512], buf[512];
    tu_mkdtemp(dir);
    snprintf(conf, sizeof(conf), "%s/ceph.conf", dir);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    fprintf(f, "[global]\nheartbeat_interval = 11\n[osd]\nheartbeat_interval = 12\n");
    fclose(f);

    osdkit_context *ctx = NULL;
    CHECK_EQ(osdkit_context_new("osd.2", conf, &ctx), 0);
    CHECK_EQ(osdkit_context_get_option(ctx, "heartbeat_interval", buf, sizeof(buf)), 2);
    CHECK_STREQ(buf, "12");
    osdkit_context_free(ctx);

    ctx = NULL;
    CHECK_EQ(osdkit_context_new("client.admin", conf, &ctx), 0);
    CHECK_EQ(osdkit_context_get_option(ctx, "heartbeat_interval", buf, sizeof(buf)), 2);
    CHECK_STREQ(buf, "11");
    osdkit_context_free(ctx);

    snprintf(conf, sizeof(conf), "%s/missing.conf", dir);
    ctx = NULL;
    CHECK_EQ(osdkit_context_new("osd.2", conf, &ctx), -ENOENT);
    CHECK(ctx == NULL);
    tu_rm_rf(dir);
    TU_PASS("conf file");
}

static void test_start(void) {
    char dir[256], want[512], buf[512];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.0", dir);
    CHECK_EQ(osdkit_context_start(ctx), 0);
    CHECK_EQ(osdkit_context_start(ctx), 0); /* already started: no-op */

    const char *path = osdkit_context_asok_path(ctx);
    CHECK(path != NULL);
    snprintf(want, sizeof(want), "%s/ceph-osd.0.asok", dir);
    CHECK_STREQ(path, want);
    CHECK(osdkit_context_asok_path(ctx) == path); /* stable pointer */
    CHECK(osdkit_context_get_option(ctx, "admin_socket", buf, sizeof(buf)) > 0);
    CHECK_STREQ(buf, want);

    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_EQ(st.st_mode & 0777, 0600);

    /* A second daemon with the same socket path: -EEXIST, and the first keeps working. */
    osdkit_context *twin = tu_context("osd.0", dir);
    CHECK_EQ(osdkit_context_start(twin), -EEXIST);
    osdkit_context_free(twin);
    CHECK_EQ(stat(path, &st), 0);
    char *reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"0\"}", &reply), 0);
    CHECK_STREQ(reply, "2");
    osdkit_string_free(reply);

    /* Logging, then shutdown flushes the log and removes the socket. */
    CHECK_EQ(osdkit_log(ctx, "osd", 0, "hello from the C test"), 0);
    CHECK_EQ(osdkit_log(ctx, NULL, -1, "an error line"), 0);
    CHECK_EQ(osdkit_log(ctx, "no-such-subsys", 0, "falls back to none"), 0);
    CHECK_EQ(osdkit_context_shutdown(ctx), 0);
    CHECK_EQ(osdkit_context_shutdown(ctx), 0); /* idempotent */
    CHECK(stat(want, &st) != 0);

    char logpath[512];
    snprintf(logpath, sizeof(logpath), "%s/osd.0.log", dir);
    FILE *f = fopen(logpath, "r");
    CHECK(f != NULL);
    static char text[1 << 16];
    size_t got = fread(text, 1, sizeof(text) - 1, f);
    text[got] = '\0';
    fclose(f);
    CHECK_CONTAINS(text, "hello from the C test");
    CHECK_CONTAINS(text, "an error line");

    osdkit_context_free(ctx);
    tu_rm_rf(dir);
    TU_PASS("start");
}

static void test_no_asok(void) {
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("client.admin", dir);
    CHECK_EQ(osdkit_context_set_option(ctx, "admin_socket", ""), 0);
    CHECK_EQ(osdkit_context_start(ctx), 0);
    CHECK(osdkit_context_asok_path(ctx) == NULL);
    /* In-process commands still work without a socket. */
    int r = 0;
    char *reply = tu_execute(ctx, "{\"prefix\":\"0\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_STREQ(reply, "2");
    osdkit_string_free(reply);
    osdkit_context_free(ctx);
    tu_rm_rf(dir);
    TU_PASS("no admin socket");
}

int main(void) {
    test_version();
    test_null_arguments();
    test_options();
    test_conf_file();
    test_start();
    test_no_asok();
    return 0;
}
