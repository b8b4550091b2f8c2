/*
 * hosted_osds: a C daemon hosting two OSDs of an existing cluster in its own process.
 *
 *   hosted_osds CONF PIDFILE [ID ID]
 *
 * CONF names the monitor (mon_host) and the OSDs' settings; the OSDs are osd.0 and osd.1
 * unless two ids are given, and must exist in the map (`osdkit osd create -c CONF 0`, as
 * Ceph's `ceph osd create`). The program daemonizes (the parent exits 0 only once both OSDs
 * are up in the map, or with the errno of what failed), writes PIDFILE, adds an admin command
 * `hosted` to the first OSD's admin socket, and runs until SIGTERM or SIGINT, which it
 * forwards to both OSDs (they mark themselves down) before it exits 0. While it runs:
 *
 *   ceph --admin-daemon RUN_DIR/ceph-osd.0.asok hosted
 *   ceph --admin-daemon RUN_DIR/ceph-osd.1.asok status
 *
 * Build against an installed osdkit:
 *   cc hosted_osds.c $(pkg-config --cflags --libs osdkit) -o hosted_osds
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <osdkit.h>

static int hosted_cmd(void *user, const char *prefix, const char *args_json, const char *format,
                      osdkit_asok_reply *reply) {
    (void)prefix;
    (void)args_json;
    (void)format;
    char text[128];
    int n = snprintf(text, sizeof(text), "{\"host_pid\": %ld, \"osds\": %d}", (long)getpid(), *(int *)user);
    return osdkit_asok_reply_set(reply, text, (size_t)n);
}

/* The child: hosts the OSDs, reports the start-up result on `ready_fd`, serves until a
 * signal. */
static int serve(const char *conf, const char *pidfile, const int ids[2], int ready_fd) {
    static int n_osds = 2;
    osdkit_osd *osd[2] = {NULL, NULL};
    int r = 0;
    for (int i = 0; i < 2 && r == 0; i++) {
        osdkit_osd_args a;
        memset(&a, 0, sizeof(a));
        a.id = ids[i];
        a.conf = conf;
        r = osdkit_osd_new(&a, &osd[i]);
        if (r == 0) {
            r = osdkit_osd_start(osd[i]);
        }
    }
    for (int i = 0; i < 2 && r == 0; i++) {
        r = osdkit_osd_wait_active(osd[i], 60000);
    }
    osdkit_context *ctx = NULL;
    if (r == 0) {
        r = osdkit_osd_context(osd[0], &ctx);
    }
    if (r == 0) {
        r = osdkit_asok_register(ctx, "hosted", "who hosts these OSDs", hosted_cmd, &n_osds, NULL);
    }
    if (r == 0) {
        FILE *f = fopen(pidfile, "w");
        if (f == NULL) {
            r = -errno;
        } else {
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        }
    }
    if (r < 0) {
        fprintf(stderr, "hosted_osds: failed to start: %s\n", osdkit_last_error());
    }
    int code = -r;
    if (write(ready_fd, &code, sizeof(code)) != (ssize_t)sizeof(code)) {
        r = r < 0 ? r : -EPIPE;
    }
    close(ready_fd);
    if (r == 0) {
        /* Signals were blocked before fork: wait for one here, on this thread. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        int sig = 0;
        sigwait(&set, &sig);
        fprintf(stderr, "hosted_osds: signal %d: stopping %d OSDs\n", sig, osdkit_signal_all(SIGTERM));
        for (int i = 0; i < 2; i++) {
            if (osdkit_osd_join(osd[i], 60000) != OSDKIT_STATE_STOPPED) {
                r = -EIO;
            }
        }
        unlink(pidfile);
    }
    osdkit_context_free(ctx);
    for (int i = 0; i < 2; i++) {
        osdkit_osd_free(osd[i]);
    }
    return r < 0 ? -r : 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: hosted_osds CONF PIDFILE [ID ID]\n");
        return 2;
    }
    int ids[2] = {0, 1};
    if (argc == 5) {
        ids[0] = atoi(argv[3]);
        ids[1] = atoi(argv[4]);
    }
    /* Block the stop signals in every thread the library will start. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        return 1;
    }
    /* Fork before the library starts any thread; the parent waits for the child's verdict. */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid > 0) {
        close(p[1]);
        int code = 0;
        ssize_t n = read(p[0], &code, sizeof(code));
        if (n != (ssize_t)sizeof(code)) {
            int st = 0;
            waitpid(pid, &st, 0);
            return WIFEXITED(st) && WEXITSTATUS(st) != 0 ? WEXITSTATUS(st) : 1;
        }
        return code;
    }
    close(p[0]);
    setsid();
    return serve(argv[1], argv[2], ids, p[1]);
}
