/*
 * One monitor and two OSDs hosted in this process, each made from one conf file with its own
 * admin socket (libosd's shape): callbacks, states, one name per process, a failed start and
 * why, stop and start again, I/O through a client reading the same conf, signal_all.
 */
#include "test_util.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_active(void *user) { tu_counter_add((tu_counter *)user, 1); }

typedef struct io_seen {
    tu_counter done;
    int failures;
    uint64_t bytes;
    int flags;
} io_seen;

static void on_io(int result, uint64_t length, int flags, void *user) {
    io_seen *s = (io_seen *)user;
    pthread_mutex_lock(&s->done.mu);
    if (result < 0) {
        s->failures++;
    }
    s->bytes += length;
    s->flags = flags;
    pthread_mutex_unlock(&s->done.mu);
    tu_counter_add(&s->done, 1);
}

int main(void) {
    char dir[256], conf[512];
    tu_mkdtemp(dir);
    snprintf(conf, sizeof(conf), "%s/osdkit.conf", dir);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    fprintf(f,
            "[global]\nmon_host = v2:127.0.0.1:%d\nrun_dir = %s/run\nlog_file =\n"
            "[mon]\nmon_data = %s/$name\n[osd]\nosd_objectstore = mem\n",
            free_port(), dir, dir);
    fclose(f);
    tu_counter active;
    tu_counter_init(&active);

    /* Bad arguments. */
    osdkit_osd *bad = NULL;
    osdkit_osd_args oa;
    memset(&oa, 0, sizeof(oa));
    oa.id = -1;
    CHECK_EQ(osdkit_osd_new(&oa, &bad), -EINVAL);
    CHECK_EQ(osdkit_osd_new(NULL, &bad), -EINVAL);
    const char *odd[] = {"osd_heartbeat_grace", NULL};
    oa.id = 9;
    oa.options = odd;
    CHECK_EQ(osdkit_osd_new(&oa, &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK_EQ(osdkit_osd_state(NULL, NULL, 0), -EINVAL);
    CHECK_EQ(osdkit_signal_all(SIGKILL), -EINVAL);
    osdkit_osd_free(NULL);
    osdkit_mon_free(NULL);

    /* The monitor. */
    osdkit_mon_args ma;
    memset(&ma, 0, sizeof(ma));
    ma.id = "a";
    ma.conf = conf;
    ma.on_active = on_active;
    ma.user = &active;
    osdkit_mon *mon = NULL;
    CHECK_EQ(osdkit_mon_new(&ma, &mon), 0);
    CHECK_EQ(osdkit_mon_state(mon, NULL, 0), OSDKIT_STATE_NEW);
    CHECK_EQ(osdkit_mon_wait_active(mon, 10), -ENODEV);
    CHECK_EQ(osdkit_mon_start(mon), 0);
    CHECK_EQ(osdkit_mon_wait_active(mon, 30000), 0);
    CHECK_EQ(tu_counter_get(&active), 1);
    CHECK_EQ(osdkit_mon_start(mon), -EEXIST);
    char addr[128];
    CHECK(osdkit_mon_addr(mon, addr, sizeof(addr)) > 0);
    CHECK(strncmp(addr, "v2:127.0.0.1:", 13) == 0);

    /* Two OSDs, one name once. */
    memset(&oa, 0, sizeof(oa));
    oa.conf = conf;
    oa.on_active = on_active;
    oa.user = &active;
    osdkit_osd *osd[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        oa.id = i;
        CHECK_EQ(osdkit_osd_new(&oa, &osd[i]), 0);
    }
    osdkit_osd *dup = NULL;
    oa.id = 0;
    CHECK_EQ(osdkit_osd_new(&oa, &dup), -EEXIST);
    CHECK_CONTAINS(osdkit_last_error(), "osd.0");
    /* As in Ceph, an OSD must exist in the map before it boots: the start says so. */
    CHECK_EQ(osdkit_osd_start(osd[0]), -ENOENT);
    CHECK_CONTAINS(osdkit_last_error(), "osd.0 does not exist in the osdmap");
    CHECK_EQ(osdkit_osd_state(osd[0], NULL, 0), OSDKIT_STATE_FAILED);
    char out[16], st[128];
    CHECK_EQ(osdkit_mon_command(mon, "{\"prefix\": \"osd create\", \"id\": 0}", out, sizeof(out), st, sizeof(st)), 0);
    CHECK(strcmp(out, "0") == 0);
    CHECK_EQ(osdkit_mon_command(mon, "{\"prefix\": \"osd create\"}", out, sizeof(out), NULL, 0), 0);
    CHECK(strcmp(out, "1") == 0);
    CHECK_EQ(osdkit_mon_command(mon, "{\"prefix\": \"no such\"}", NULL, 0, st, sizeof(st)), -EINVAL);
    CHECK_CONTAINS(st, "unknown command");
    CHECK_EQ(osdkit_mon_command(mon, "{\"prefix\": \"osd dump\"}", out, sizeof(out), NULL, 0), -ERANGE);
    CHECK_EQ(osdkit_mon_command(mon, NULL, NULL, 0, NULL, 0), -EINVAL);
    CHECK_EQ(osdkit_mon_command(NULL, "{}", NULL, 0, NULL, 0), -EINVAL);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(osdkit_osd_start(osd[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(osdkit_osd_wait_active(osd[i], 30000), 0);
        CHECK_EQ(osdkit_osd_state(osd[i], NULL, 0), OSDKIT_STATE_ACTIVE);
    }
    CHECK_EQ(tu_counter_get(&active), 3);

    /* Its admin socket, by Ceph's name, answers. */
    char asok[512], want[512];
    CHECK(osdkit_osd_asok_path(osd[1], asok, sizeof(asok)) > 0);
    snprintf(want, sizeof(want), "%s/run/ceph-osd.1.asok", dir);
    CHECK_STREQ(asok, want);
    char *reply = NULL;
    CHECK_EQ(osdkit_asok_client_request(asok, "{\"prefix\": \"status\"}", &reply), 0);
    CHECK_CONTAINS(reply, "\"whoami\": 1");
    osdkit_string_free(reply);

    /* A client from the same conf writes and reads. */
    osdkit_rados *r = NULL;
    CHECK_EQ(osdkit_rados_create(NULL, &r), 0);
    CHECK_EQ(osdkit_rados_conf_read_file(r, conf), 0);
    CHECK_EQ(osdkit_rados_connect(r), 0);
    CHECK_EQ(osdkit_rados_pool_create(r, "p"), 0);
    osdkit_ioctx *io = NULL;
    CHECK_EQ(osdkit_ioctx_create(r, "p", &io), 0);
    CHECK_EQ(osdkit_ioctx_write_full(io, "obj", "hosted", 6), 0);

    char buf[64];
    /* Direct I/O on osd.0, no network hop: objects it is primary for are written and read
     * through its op queue; others get -ENXIO. */
    char mine[40][32];
    int n_mine = 0;
    for (int i = 0; i < 40; i++) {
        char oid[32];
        snprintf(oid, sizeof(oid), "direct-%d", i);
        int w = osdkit_osd_write(osd[0], "p", oid, 0, strlen(oid), oid, OSDKIT_IO_STABLE, NULL, NULL);
        if (w == -ENXIO) {
            continue;
        }
        CHECK_EQ(w, (int)strlen(oid));
        snprintf(mine[n_mine++], sizeof(mine[0]), "%s", oid);
    }
    CHECK(n_mine >= 2 && n_mine < 40);
    for (int i = 0; i < n_mine; i++) {
        CHECK_EQ(osdkit_ioctx_read(io, mine[i], buf, sizeof(buf), 0), (int)strlen(mine[i]));
        CHECK(memcmp(buf, mine[i], strlen(mine[i])) == 0);
    }
    CHECK_EQ(osdkit_osd_read(osd[0], "p", mine[0], 0, sizeof(buf), buf, 0, NULL, NULL), (int)strlen(mine[0]));
    CHECK_EQ(osdkit_osd_write(osd[0], "p", mine[0], 0, 1, "x", 0, NULL, NULL), -EINVAL); /* no flags */
    CHECK_EQ(osdkit_osd_write(osd[0], "p", mine[0], 0, 1, "x", 8, NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_osd_read(osd[0], "p", mine[0], 0, 4, buf, OSDKIT_IO_STABLE, NULL, NULL), -EINVAL);
    CHECK_EQ(osdkit_osd_read(osd[0], NULL, mine[0], 0, 4, buf, 0, NULL, NULL), -EINVAL);
    /* Async: each completion once, on a library thread, with the flags asked for. */
    io_seen s;
    memset(&s, 0, sizeof(s));
    tu_counter_init(&s.done);
    for (int i = 0; i < n_mine; i++) {
        CHECK_EQ(osdkit_osd_write(osd[0], "p", mine[i], 0, 4, "ASYN", OSDKIT_IO_UNSTABLE | OSDKIT_IO_STABLE, on_io, &s), 0);
    }
    CHECK_EQ(tu_counter_wait(&s.done, n_mine, 30.0), n_mine);
    CHECK_EQ(s.failures, 0);
    CHECK_EQ(s.bytes, (uint64_t)(4 * n_mine));
    CHECK_EQ(s.flags, OSDKIT_IO_UNSTABLE | OSDKIT_IO_STABLE);
    char rbuf[16];
    CHECK_EQ(osdkit_osd_read(osd[0], "p", mine[1], 0, sizeof(rbuf), rbuf, 0, on_io, &s), 0);
    CHECK_EQ(tu_counter_wait(&s.done, n_mine + 1, 30.0), n_mine + 1);
    CHECK(memcmp(rbuf, "ASYN", 4) == 0);
    CHECK_EQ(osdkit_osd_truncate(osd[0], "p", mine[1], 2, OSDKIT_IO_STABLE, NULL, NULL), 0);
    CHECK_EQ(osdkit_ioctx_read(io, mine[1], buf, sizeof(buf), 0), 2);
    CHECK_EQ(osdkit_osd_read(osd[0], "nopool", mine[1], 0, 4, buf, 0, NULL, NULL), -ENOENT);
    tu_counter_destroy(&s.done);

    /* Stop one and start it again. */
    CHECK_EQ(osdkit_osd_shutdown(osd[1]), 0);
    CHECK_EQ(osdkit_osd_join(osd[1], 30000), OSDKIT_STATE_STOPPED);
    CHECK_EQ(osdkit_osd_asok_path(osd[1], asok, sizeof(asok)), -ENOENT);
    CHECK_EQ(osdkit_osd_read(osd[1], "p", "obj", 0, 4, buf, 0, NULL, NULL), -ENODEV);
    CHECK_EQ(osdkit_osd_start(osd[1]), 0);
    CHECK_EQ(osdkit_osd_wait_active(osd[1], 30000), 0);
    CHECK_EQ(osdkit_ioctx_read(io, "obj", buf, sizeof(buf), 0), 6);
    CHECK(memcmp(buf, "hosted", 6) == 0);

    /* A start that cannot work: FAILED, and why. */
    const char *bad_addr[] = {"public_addr", "not-an-address", NULL};
    oa.id = 2;
    oa.options = bad_addr;
    oa.on_active = NULL;
    CHECK_EQ(osdkit_osd_new(&oa, &bad), 0);
    CHECK_EQ(osdkit_osd_start(bad), -EINVAL);
    char why[256];
    CHECK_EQ(osdkit_osd_state(bad, why, sizeof(why)), OSDKIT_STATE_FAILED);
    CHECK_CONTAINS(why, "public_addr");
    char tiny[4];
    CHECK_EQ(osdkit_osd_state(bad, tiny, sizeof(tiny)), -ERANGE);
    CHECK_EQ(osdkit_osd_wait_active(bad, 1000), -EIO);
    osdkit_osd_free(bad);

    /* SIGTERM to every hosted daemon. */
    osdkit_ioctx_destroy(io);
    osdkit_rados_shutdown(r);
    CHECK_EQ(osdkit_signal_all(SIGHUP), 3);
    CHECK_EQ(osdkit_signal_all(SIGTERM), 3);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(osdkit_osd_join(osd[i], 30000), OSDKIT_STATE_STOPPED);
    }
    CHECK_EQ(osdkit_mon_join(mon, 30000), OSDKIT_STATE_STOPPED);
    for (int i = 0; i < 2; i++) {
        osdkit_osd_free(osd[i]);
    }
    osdkit_mon_free(mon);
    /* Freed: the name can be hosted again. */
    oa.id = 0;
    oa.options = NULL;
    CHECK_EQ(osdkit_osd_new(&oa, &dup), 0);
    osdkit_osd_free(dup);
    tu_counter_destroy(&active);
    tu_rm_rf(dir);
    printf("test_hosting: ok\n");
    return 0;
}
