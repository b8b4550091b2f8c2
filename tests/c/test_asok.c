/*
 * Admin socket commands implemented in C, reached in-process, through the library's client,
 * and through a raw AF_UNIX client that checks the wire bytes (request + NUL; reply = 4-byte
 * big-endian length + payload).
 */
#include "test_util.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

typedef struct cmd_state {
    tu_counter calls;
    tu_counter drops;
    char last_args[256];
    char last_format[32];
    char last_prefix[64];
    osdkit_context *ctx; /* for callbacks that call back into the library */
} cmd_state;

static void state_init(cmd_state *s, osdkit_context *ctx) {
    memset(s, 0, sizeof(*s));
    tu_counter_init(&s->calls);
    tu_counter_init(&s->drops);
    s->ctx = ctx;
}

static void state_destroy(cmd_state *s) {
    tu_counter_destroy(&s->calls);
    tu_counter_destroy(&s->drops);
}

static void drop_cb(void *user) {
    cmd_state *s = (cmd_state *)user;
    tu_counter_add(&s->drops, 1);
}

/* Minimal JSON string extraction: the value of "key":"..." with \" and \\ unescaped. */
static int json_get_string(const char *json, const char *key, char *out, size_t outlen) {
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL) {
        return -1;
    }
    p += strlen(pat);
    size_t n = 0;
    while (*p != '\0' && *p != '"' && n + 1 < outlen) {
        if (*p == '\\' && p[1] != '\0') {
            p++;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    return *p == '"' ? (int)n : -1;
}

static void remember(cmd_state *s, const char *prefix, const char *args, const char *format) {
    snprintf(s->last_prefix, sizeof(s->last_prefix), "%s", prefix);
    snprintf(s->last_args, sizeof(s->last_args), "%s", args);
    snprintf(s->last_format, sizeof(s->last_format), "%s", format);
}

/* `echo name=msg,type=CephString`: replies with msg as-is. */
static int echo_cb(void *user, const char *prefix, const char *args_json, const char *format,
                   osdkit_asok_reply *reply) {
    cmd_state *s = (cmd_state *)user;
    remember(s, prefix, args_json, format);
    char msg[256];
    int n = json_get_string(args_json, "msg", msg, sizeof(msg));
    tu_counter_add(&s->calls, 1);
    if (n < 0) {
        const char *why = "missing msg";
        osdkit_asok_reply_set(reply, why, strlen(why));
        return -EINVAL;
    }
    return osdkit_asok_reply_set(reply, msg, (size_t)n);
}

/* A command that always fails with -ENOENT and a reason. */
static int fail_cb(void *user, const char *prefix, const char *args_json, const char *format,
                   osdkit_asok_reply *reply) {
    cmd_state *s = (cmd_state *)user;
    remember(s, prefix, args_json, format);
    tu_counter_add(&s->calls, 1);
    const char *why = "no such widget";
    CHECK_EQ(osdkit_asok_reply_set(reply, why, strlen(why)), 0);
    return -ENOENT;
}

/* Calls back into the library from the admin_socket thread: runs `echo` in-process. */
static int nested_cb(void *user, const char *prefix, const char *args_json, const char *format,
                     osdkit_asok_reply *reply) {
    cmd_state *s = (cmd_state *)user;
    (void)prefix;
    (void)args_json;
    (void)format;
    char *inner = NULL;
    int r = osdkit_asok_execute(s->ctx, "{\"prefix\":\"echo\",\"msg\":\"inner\"}", &inner);
    tu_counter_add(&s->calls, 1);
    if (r < 0) {
        osdkit_string_free(inner);
        return r;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), "nested:%s", inner);
    osdkit_string_free(inner);
    return osdkit_asok_reply_set(reply, buf, strlen(buf));
}

/* Unregisters itself from inside its own call (must not deadlock; drop runs after return). */
static int selfdestruct_cb(void *user, const char *prefix, const char *args_json,
                           const char *format, osdkit_asok_reply *reply) {
    cmd_state *s = (cmd_state *)user;
    (void)prefix;
    (void)args_json;
    (void)format;
    int r = osdkit_asok_unregister(s->ctx, "selfdestruct");
    CHECK_EQ(r, 0);
    /* drop must not have run yet: this call is still in flight. */
    CHECK_EQ(tu_counter_get(&s->drops), 0);
    tu_counter_add(&s->calls, 1);
    return osdkit_asok_reply_set(reply, "bye", 3);
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = (const char *)buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len) {
    char *p = (char *)buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Raw client: sends `req` plus its NUL, reads the 4-byte big-endian length and the payload.
 * Returns the payload (malloc'd, NUL-terminated) and its length in *len_out.
 */
static char *raw_request(const char *path, const char *req, uint32_t *len_out) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct timeval tv;
    tv.tv_sec = 5;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    CHECK(strlen(path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    CHECK_EQ(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    CHECK_EQ(write_all(fd, req, strlen(req) + 1), 0); /* + the NUL terminator */
    unsigned char hdr[4];
    CHECK_EQ(read_all(fd, hdr, 4), 0);
    uint32_t len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) |
                   (uint32_t)hdr[3];
    CHECK(len < (1u << 24));
    char *payload = (char *)malloc(len + 1);
    CHECK(payload != NULL);
    CHECK_EQ(read_all(fd, payload, len), 0);
    payload[len] = '\0';
    /* Nothing after the payload: the server closes the connection. */
    char extra;
    CHECK(read(fd, &extra, 1) == 0);
    close(fd);
    *len_out = len;
    return payload;
}

static void test_register_and_socket(void) {
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.0", dir);
    cmd_state echo, fail, dup, nested;
    state_init(&echo, ctx);
    state_init(&fail, ctx);
    state_init(&dup, ctx);
    state_init(&nested, ctx);

    /* NULL checks. */
    CHECK_EQ(osdkit_asok_register(NULL, "x", "", echo_cb, NULL, NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "ctx");
    CHECK_EQ(osdkit_asok_register(ctx, "x", "", NULL, NULL, NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "cb");
    CHECK_EQ(osdkit_asok_register(ctx, NULL, "", echo_cb, NULL, NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "descriptor");
    CHECK_EQ(osdkit_asok_unregister(ctx, NULL), -EINVAL);

    /* Before start. */
    CHECK_EQ(osdkit_asok_register(ctx, "echo name=msg,type=CephString", "echo a message",
                                  echo_cb, &echo, drop_cb),
             0);
    /* Duplicate: -EEXIST, and the rejected user's drop is never called. */
    CHECK_EQ(osdkit_asok_register(ctx, "echo name=msg,type=CephString", "again", echo_cb, &dup,
                                  drop_cb),
             -EEXIST);
    CHECK(strlen(osdkit_last_error()) > 0);
    CHECK_EQ(tu_counter_get(&dup.drops), 0);
    /* Bad descriptors: -EINVAL, no drop. */
    CHECK_EQ(osdkit_asok_register(ctx, "", "", echo_cb, &dup, drop_cb), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "no command word");
    CHECK_EQ(osdkit_asok_register(ctx, "bad type=CephString", "", echo_cb, &dup, drop_cb), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "name=");
    CHECK_EQ(osdkit_asok_register(ctx, "bad name=a,type=CephString tail", "", echo_cb, &dup,
                                  drop_cb),
             -EINVAL);
    CHECK_EQ(tu_counter_get(&dup.drops), 0);

    CHECK_EQ(osdkit_context_start(ctx), 0);
    const char *path = osdkit_context_asok_path(ctx);
    CHECK(path != NULL);

    /* After start. */
    CHECK_EQ(osdkit_asok_register(ctx, "failing", "always fails", fail_cb, &fail, drop_cb), 0);
    CHECK_EQ(osdkit_asok_register(ctx, "nested", "", nested_cb, &nested, drop_cb), 0);

    /* Through the library's client, over the real socket. */
    char *reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"echo\",\"msg\":\"hello\"}", &reply), 0);
    CHECK_STREQ(reply, "hello");
    osdkit_string_free(reply);
    CHECK_EQ(tu_counter_get(&echo.calls), 1);
    CHECK_STREQ(echo.last_prefix, "echo");
    CHECK_CONTAINS(echo.last_args, "\"msg\":\"hello\"");
    CHECK_STREQ(echo.last_format, "json-pretty"); /* Ceph's default */

    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(
                 path, "{\"prefix\":\"echo\",\"msg\":\"say \\\"hi\\\"\",\"format\":\"json\"}",
                 &reply),
             0);
    CHECK_STREQ(reply, "say \"hi\"");
    CHECK_STREQ(echo.last_format, "json");
    CHECK(strstr(echo.last_args, "format") == NULL); /* prefix and format are not arguments */
    CHECK(strstr(echo.last_args, "prefix") == NULL);
    osdkit_string_free(reply);

    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"failing\"}", &reply), 0);
    CHECK(strncmp(reply, "ERROR: (2) No such file or directory", 36) == 0);
    CHECK_CONTAINS(reply, "no such widget");
    osdkit_string_free(reply);
    CHECK_EQ(tu_counter_get(&fail.calls), 1);

    /* A callback that calls back into the library. */
    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"nested\"}", &reply), 0);
    CHECK_STREQ(reply, "nested:inner");
    osdkit_string_free(reply);
    CHECK_EQ(tu_counter_get(&nested.calls), 1);

    /* Raw wire bytes. */
    uint32_t len = 0;
    char *payload = raw_request(path, "{\"prefix\":\"0\"}", &len);
    CHECK_EQ(len, 1);
    CHECK_STREQ(payload, "2");
    free(payload);
    payload = raw_request(path, "{\"prefix\":\"echo\",\"msg\":\"on the wire\"}", &len);
    CHECK_EQ(len, 11);
    CHECK(memcmp(payload, "on the wire", 11) == 0);
    free(payload);
    payload = raw_request(path, "{\"prefix\":\"failing\"}", &len);
    CHECK_EQ(len, strlen(payload));
    CHECK(strncmp(payload, "ERROR: (2) No such file or directory", 36) == 0);
    free(payload);

    /* help lists the visible commands with their help text. */
    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"help\"}", &reply), 0);
    CHECK_CONTAINS(reply, "echo a message");
    CHECK_CONTAINS(reply, "always fails");
    osdkit_string_free(reply);

    /* In-process execution. */
    int r = 0;
    reply = tu_execute(ctx, "{\"prefix\":\"echo\",\"msg\":\"in-process\"}", &r);
    CHECK_EQ(r, 0);
    CHECK_STREQ(reply, "in-process");
    osdkit_string_free(reply);
    reply = tu_execute(ctx, "{\"prefix\":\"failing\"}", &r);
    CHECK_EQ(r, -ENOENT);
    CHECK(strncmp(reply, "ERROR: (2) No such file or directory", 36) == 0);
    CHECK_CONTAINS(reply, "no such widget");
    osdkit_string_free(reply);
    reply = tu_execute(ctx, "{\"prefix\":\"echo\"}", &r); /* missing argument reaches us */
    CHECK(r < 0);
    osdkit_string_free(reply);
    reply = NULL;
    CHECK_EQ(osdkit_asok_execute(ctx, "not json", &reply), -EINVAL);
    CHECK(reply != NULL); /* the same ERROR text the socket would send */
    CHECK(strcmp(reply, "ERROR: (22) Invalid argument\ninvalid json\n") == 0);
    osdkit_string_free(reply);
    reply = NULL;
    CHECK_EQ(osdkit_asok_execute(ctx, "{\"prefix\":\"echo\",\"msg\":\"x\"}", NULL), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "reply_out");
    CHECK_EQ(osdkit_asok_execute(NULL, "{}", &reply), -EINVAL);
    CHECK_EQ(osdkit_asok_reply_set(NULL, "x", 1), -EINVAL);

    /* Client errors. */
    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(NULL, "{}", &reply), -EINVAL);
    CHECK_CONTAINS(osdkit_last_error(), "path");
    CHECK_EQ(osdkit_asok_client_request(path, "{}", NULL), -EINVAL);
    char missing[512];
    snprintf(missing, sizeof(missing), "%s/nobody.asok", dir);
    r = osdkit_asok_client_request(missing, "{\"prefix\":\"0\"}", &reply);
    CHECK(r == -ENOENT || r == -ECONNREFUSED);
    CHECK(reply == NULL);

    /* Unregister: drop exactly once, then the command is gone. */
    CHECK_EQ(tu_counter_get(&fail.drops), 0);
    CHECK_EQ(osdkit_asok_unregister(ctx, "failing"), 0);
    CHECK_EQ(tu_counter_get(&fail.drops), 1);
    CHECK_EQ(osdkit_asok_unregister(ctx, "failing"), -ENOENT);
    CHECK_EQ(tu_counter_get(&fail.drops), 1);
    reply = tu_execute(ctx, "{\"prefix\":\"failing\"}", &r);
    CHECK(r < 0);
    CHECK(strncmp(reply, "ERROR:", 6) == 0);
    osdkit_string_free(reply);
    CHECK_EQ(tu_counter_get(&fail.calls), 3); /* socket, raw, in-process; none after unregister */
    /* The descriptor is free again. */
    CHECK_EQ(osdkit_asok_register(ctx, "failing", "", fail_cb, &fail, NULL), 0);
    CHECK_EQ(osdkit_asok_unregister(ctx, "failing"), 0);
    CHECK_EQ(tu_counter_get(&fail.drops), 1); /* NULL drop this time */

    /* Unregistering from inside its own call. */
    cmd_state self;
    state_init(&self, ctx);
    CHECK_EQ(osdkit_asok_register(ctx, "selfdestruct", "", selfdestruct_cb, &self, drop_cb), 0);
    reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(path, "{\"prefix\":\"selfdestruct\"}", &reply), 0);
    CHECK_STREQ(reply, "bye");
    osdkit_string_free(reply);
    CHECK_EQ(tu_counter_wait(&self.drops, 1, 5.0), 1);
    CHECK_EQ(tu_counter_get(&self.calls), 1);

    /* Freeing the context drops the commands still registered, once each. */
    CHECK_EQ(tu_counter_get(&echo.drops), 0);
    CHECK_EQ(tu_counter_get(&nested.drops), 0);
    osdkit_context_free(ctx);
    CHECK_EQ(tu_counter_get(&echo.drops), 1);
    CHECK_EQ(tu_counter_get(&nested.drops), 1);
    CHECK_EQ(tu_counter_get(&self.drops), 1);
    CHECK_EQ(tu_counter_get(&dup.drops), 0);

    state_destroy(&echo);
    state_destroy(&fail);
    state_destroy(&dup);
    state_destroy(&nested);
    state_destroy(&self);
    tu_rm_rf(dir);
    TU_PASS("asok register, socket, wire, execute, unregister");
}

/* Many requests from several threads at once, over the socket. */
typedef struct hammer_arg {
    const char *path;
    int id;
    int ok;
} hammer_arg;

static void *hammer(void *p) {
    hammer_arg *a = (hammer_arg *)p;
    for (int i = 0; i < 20; i++) {
        char req[128], want[64];
        snprintf(want, sizeof(want), "t%d-%d", a->id, i);
        snprintf(req, sizeof(req), "{\"prefix\":\"echo\",\"msg\":\"%s\"}", want);
        char *reply = NULL;
        if (osdkit_asok_client_request(a->path, req, &reply) == 0 && strcmp(reply, want) == 0) {
            a->ok++;
        }
        osdkit_string_free(reply);
    }
    return NULL;
}

static void test_concurrent_clients(void) {
    char dir[256];
    tu_mkdtemp(dir);
    osdkit_context *ctx = tu_context("osd.1", dir);
    cmd_state echo;
    state_init(&echo, ctx);
    CHECK_EQ(osdkit_asok_register(ctx, "echo name=msg,type=CephString", "", echo_cb, &echo,
                                  drop_cb),
             0);
    CHECK_EQ(osdkit_context_start(ctx), 0);
    pthread_t th[4];
    hammer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].path = osdkit_context_asok_path(ctx);
        args[i].id = i;
        args[i].ok = 0;
        CHECK_EQ(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].ok, 20);
    }
    CHECK_EQ(tu_counter_get(&echo.calls), 80);
    osdkit_context_free(ctx);
    CHECK_EQ(tu_counter_get(&echo.drops), 1);
    state_destroy(&echo);
    tu_rm_rf(dir);
    TU_PASS("concurrent clients");
}

int main(void) {
    test_register_and_socket();
    test_concurrent_clients();
    return 0;
}
