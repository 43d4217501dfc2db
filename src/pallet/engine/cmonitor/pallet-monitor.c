/*
 * pallet-monitor: the small parent of one detached container (like conmon).
 *
 * Usage: pallet-monitor ARGS_FILE SYNC_FD [PID OUT_FD ERR_FD IN_FD MASTER_FD]
 *
 * With the last five, the first instance is already created (by the process that
 * exec'd this one, a child subreaper, so the container's pid 1 is our child): its pid,
 * the read ends of its stdout/stderr pipes, the write end of its stdin pipe and its
 * pty master, -1 for those it has not.  Restarts use the create command.
 *
 * ARGS_FILE has one directive per line, fields separated by TAB:
 *   create  ARGV...    runtime command that creates the container (runc-compatible)
 *   start   ARGV...    runtime command that starts it
 *   execfifo PATH      start by reading the runtime's exec FIFO instead (what `runc start` does,
 *                      for runtimes that keep one there and the spec has no poststart hooks)
 *   delete  ARGV...    runtime command that deletes it (between restarts)
 *   exit    ARGV...    command exec'd when the container is finally done (cleanup)
 *   log     PATH       json-file log (Docker's format)
 *   status  PATH       monitor.json, rewritten atomically on each change of state
 *   pidfile PATH       where the runtime writes the container's pid
 *   stopfile PATH      exists when a user stopped the container (no restart then)
 *   tty     0|1        the runtime sends a pty master on a console socket
 *   stdin   0|1        keep a stdin pipe open
 *   restart POLICY MAX COUNT
 *   seq     N          last sequence number the engine has merged
 *   attach  NAME       abstract unix socket on which `attach`/`start -i` send the container's
 *                      stdin (EOF from the client closes a non-tty stdin, like Docker's StdinOnce)
 *
 * It becomes a child subreaper so that the container's pid 1 is its child,
 * copies stdout/stderr (or the pty) into the log, writes its state reports
 * (status, pid, exit code, times, restart count) and, when the container is
 * done, execs the exit command.  On SYNC_FD it writes the first report (or an
 * error) and closes it: the CLI returns as soon as it reads EOF there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#define MAXARGS 64
#define MAX_LINE (16 * 1024)

struct cmd { char *argv[MAXARGS]; int n; };

static struct cmd c_create, c_start, c_delete, c_exit;
static char *log_path, *status_path, *pid_path, *stop_path, *attach_name, *fifo_path;
static int tty, keep_stdin, max_retry, restart_count;
static long seq;
static char policy[32] = "no";

static char *xstrdup(const char *s) { char *p = strdup(s); if (!p) _exit(125); return p; }

static void parse_args_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror("pallet-monitor: args"); exit(125); }
    char *line = NULL; size_t cap = 0; ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = 0;
        char *fields[MAXARGS + 1]; int nf = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, "\t", &save); t && nf < MAXARGS; t = strtok_r(NULL, "\t", &save))
            fields[nf++] = t;
        if (nf == 0) continue;
        struct cmd *c = NULL;
        if (!strcmp(fields[0], "create")) c = &c_create;
        else if (!strcmp(fields[0], "start")) c = &c_start;
        else if (!strcmp(fields[0], "delete")) c = &c_delete;
        else if (!strcmp(fields[0], "exit")) c = &c_exit;
        if (c) {
            for (int i = 1; i < nf && c->n < MAXARGS - 1; i++) c->argv[c->n++] = xstrdup(fields[i]);
            c->argv[c->n] = NULL;
        } else if (nf >= 2 && !strcmp(fields[0], "log")) log_path = xstrdup(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "status")) status_path = xstrdup(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "pidfile")) pid_path = xstrdup(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "execfifo")) fifo_path = xstrdup(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "stopfile")) stop_path = xstrdup(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "tty")) tty = atoi(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "stdin")) keep_stdin = atoi(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "seq")) seq = atol(fields[1]);
        else if (nf >= 2 && !strcmp(fields[0], "attach")) attach_name = xstrdup(fields[1]);
        else if (nf >= 4 && !strcmp(fields[0], "restart")) {
            snprintf(policy, sizeof policy, "%s", fields[1]);
            max_retry = atoi(fields[2]);
            restart_count = atoi(fields[3]);
        }
    }
    free(line);
    fclose(f);
}

static long long now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return; }
        p += w; n -= (size_t)w;
    }
}

/* -- json-file log ------------------------------------------------------------ */

static int log_fd = -1;
struct stream { const char *name; char buf[MAX_LINE]; size_t len; };
static struct stream s_out = { "stdout", {0}, 0 }, s_err = { "stderr", {0}, 0 };

static size_t utf8_len(const unsigned char *p, size_t n) {
    /* length of a valid UTF-8 sequence at p, 0 if invalid */
    unsigned char c = p[0];
    size_t need; unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { need = 2; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { need = 3; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { need = 4; min = 0x10000; }
    else return 0;
    if (n < need) return 0;
    unsigned cp = c & (0xFF >> (need + 1));
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return need;
}

static void emit_record(const char *stream, const char *data, size_t n) {
    if (log_fd < 0) return;
    size_t cap = n * 6 + 128;
    char *out = malloc(cap);
    if (!out) return;
    size_t o = 0;
    o += (size_t)sprintf(out + o, "{\"log\":\"");
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; i++; }
        else if (c == '\n') { out[o++] = '\\'; out[o++] = 'n'; i++; }
        else if (c == '\r') { out[o++] = '\\'; out[o++] = 'r'; i++; }
        else if (c == '\t') { out[o++] = '\\'; out[o++] = 't'; i++; }
        else if (c < 0x20) { o += (size_t)sprintf(out + o, "\\u%04x", c); i++; }
        else if (c < 0x80) { out[o++] = (char)c; i++; }
        else {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i++; }
            else { memcpy(out + o, p + i, k); o += k; i += k; }
        }
    }
    long long t = now_ns();
    time_t secs = (time_t)(t / 1000000000LL);
    struct tm tm; gmtime_r(&secs, &tm);
    char ts[40]; strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    o += (size_t)sprintf(out + o, "\",\"stream\":\"%s\",\"time\":\"%s.%09lldZ\"}\n", stream, ts, t % 1000000000LL);
    write_all(log_fd, out, o);
    free(out);
}

static void log_data(struct stream *s, const char *data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->buf[s->len++] = data[i];
        if (data[i] == '\n' || s->len == MAX_LINE) {
            emit_record(s->name, s->buf, s->len);
            s->len = 0;
        }
    }
}

static void log_flush(struct stream *s) {
    if (s->len) { emit_record(s->name, s->buf, s->len); s->len = 0; }
}

/* -- reports -------------------------------------------------------------------- */

static void report(const char *status, int pid, long long pid_start, int exit_code,
                   long long started, long long finished, int sync_fd) {
    char doc[512];
    seq++;
    int n = snprintf(doc, sizeof doc,
                     "{\"seq\": %ld, \"status\": \"%s\", \"pid\": %d, \"pid_start\": %lld, \"exit_code\": %d, "
                     "\"started_at\": %lld, \"finished_at\": %lld, \"restart_count\": %d, \"error\": \"\"}",
                     seq, status, pid, pid_start, exit_code, started, finished, restart_count);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", status_path, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        write_all(fd, doc, (size_t)n);
        close(fd);
        rename(tmp, status_path);
    }
    if (sync_fd >= 0) write_all(sync_fd, doc, (size_t)n);
}

static void sync_error(int sync_fd, const char *msg, int code) {
    char doc[1024];
    int n = snprintf(doc, sizeof doc, "{\"error\": \"%s\", \"code\": %d}", msg, code);
    write_all(sync_fd, doc, (size_t)n);
    close(sync_fd);
}

/* /proc/PID/stat read into buf: a pointer to the fields after the command (state first) */
static char *proc_stat(int pid, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return NULL;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] && p[2] ? p + 2 : NULL;
}

static long long pid_start_time(int pid) {
    char buf[1024];
    char *p = proc_stat(pid, buf, sizeof buf);
    /* fields after the command: state(3) ... starttime(22) -> 20th token from here */
    for (int i = 0; i < 19 && p; i++) { p = strchr(p, ' '); if (p) p++; }
    return p ? atoll(p) : 0;
}

/* the process has ended (gone, or a zombie not yet reaped) */
static int pid_gone(int pid) {
    char buf[1024];
    char *p = proc_stat(pid, buf, sizeof buf);
    return !p || *p == 'Z' || *p == 'X';
}

/* -- processes ------------------------------------------------------------------- */

static int run_cmd(struct cmd *c, int in, int out, int err) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        sigset_t all; sigemptyset(&all); sigprocmask(SIG_SETMASK, &all, NULL);
        if (in >= 0) dup2(in, 0);
        if (out >= 0) dup2(out, 1);
        if (err >= 0) dup2(err, 2);
        execv(c->argv[0], c->argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) { if (errno != EINTR) return -1; }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* start: let the created process go by reading its exec FIFO, then remove the FIFO
 * (the runtime's state is "running" from then on); 0 on success */
static int fifo_start(int pid) {
    int fd = open(fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char c;
    int rc = -1;
    for (int i = 0; i < 300; i++) { /* 30 s, checking the process between waits */
        int n = poll(&p, 1, 100);
        if (n > 0) { if (read(fd, &c, 1) == 1) rc = 0; break; }
        if (n < 0 && errno != EINTR) break;
        if (pid_gone(pid)) break;
    }
    close(fd);
    if (rc == 0) unlink(fifo_path);
    return rc;
}

static int read_pid(void) {
    char buf[32] = {0};
    int fd = open(pid_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atoi(buf) : -1;
}

static int recv_fd(int sock) {
    int conn = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    char data[4096];
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { data, sizeof data };
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov; msg.msg_iovlen = 1;
    msg.msg_control = ctl; msg.msg_controllen = sizeof ctl;
    int fd = -1;
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) >= 0) {
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    }
    close(conn);
    return fd;
}

static int attach_listen(void) {
    if (!attach_name) return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(attach_name);
    if (n > sizeof sa.sun_path - 2) n = sizeof sa.sun_path - 2;
    memcpy(sa.sun_path + 1, attach_name, n); /* abstract: sun_path[0] == 0 */
    if (bind(s, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0 ||
        listen(s, 4) < 0) { close(s); return -1; }
    return s;
}

static int stopped_by_user(void) { return stop_path && access(stop_path, F_OK) == 0; }

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: pallet-monitor ARGS_FILE SYNC_FD [PID OUT ERR IN MASTER]\n"); return 125; }
    parse_args_file(argv[1]);
    int sync_fd = atoi(argv[2]);
    fcntl(sync_fd, F_SETFD, FD_CLOEXEC);
    int adopt[5] = { -1, -1, -1, -1, -1 }; /* pid, stdout, stderr, stdin, pty master */
    if (argc >= 8)
        for (int i = 0; i < 5; i++) {
            adopt[i] = atoi(argv[3 + i]);
            if (i && adopt[i] >= 0) fcntl(adopt[i], F_SETFD, FD_CLOEXEC);
        }
    if (!c_create.n || !c_start.n || !status_path || !pid_path) { sync_error(sync_fd, "bad monitor arguments", 125); return 125; }
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigset_t mask; sigemptyset(&mask); sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (log_path) log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    long backoff = 100;
    int first = 1;
    int asock = (keep_stdin || tty) ? attach_listen() : -1, aclient = -1;

    for (;;) {
        int out_r = -1, out_w = -1, err_r = -1, err_w = -1, in_r = devnull, in_w = -1;
        int sock = -1, master = -1;
        char sockdir[64] = "", sockpath[128] = "";
        struct cmd create = c_create;
        char *extra[3];
        int adopted = first && adopt[0] > 0;
        if (adopted) {
            out_r = adopt[1]; err_r = adopt[2]; in_w = adopt[3]; master = adopt[4];
        } else if (tty) {
            snprintf(sockdir, sizeof sockdir, "/tmp/pallet-mon-XXXXXX");
            if (!mkdtemp(sockdir)) { if (first) sync_error(sync_fd, "cannot make console socket", 125); return 125; }
            snprintf(sockpath, sizeof sockpath, "%s/c.sock", sockdir);
            sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_un sa = { .sun_family = AF_UNIX };
            snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
            if (bind(sock, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(sock, 1) < 0) {
                if (first) sync_error(sync_fd, "cannot listen on console socket", 125);
                return 125;
            }
            /* insert --console-socket PATH before the container id (the last argument) */
            extra[0] = create.argv[create.n - 1];
            create.argv[create.n - 1] = "--console-socket";
            create.argv[create.n] = sockpath;
            create.argv[create.n + 1] = extra[0];
            create.argv[create.n + 2] = NULL;
            create.n += 2;
        } else {
            int p1[2], p2[2];
            if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0) return 125;
            out_r = p1[0]; out_w = p1[1]; err_r = p2[0]; err_w = p2[1];
            if (keep_stdin) {
                int p3[2];
                if (pipe2(p3, O_CLOEXEC) < 0) return 125;
                in_r = p3[0]; in_w = p3[1];
            }
        }
        int rc = 0, pid = adopt[0];
        if (!adopted) {
            unlink(pid_path);
            rc = run_cmd(&create, in_r, tty ? devnull : out_w, tty ? devnull : err_w);
            if (out_w >= 0) close(out_w);
            if (err_w >= 0) close(err_w);
            if (in_r != devnull) close(in_r);
            pid = rc == 0 ? read_pid() : -1;
        }
        if (pid > 0 && tty && !adopted) {
            master = recv_fd(sock);
            close(sock);
            unlink(sockpath);
            rmdir(sockdir);
        }
        long long started = now_ns(); /* before start: the process may write at once */
        if (pid > 0 && !first && stopped_by_user()) {
            /* stopped while restarting: never start the instance just created */
            if (c_delete.n) run_cmd(&c_delete, devnull, devnull, devnull);
            kill(pid, SIGKILL);
            if (tty && master >= 0) { close(master); master = -1; }
            if (out_r >= 0) close(out_r);
            if (err_r >= 0) close(err_r);
            report("exited", 0, 0, 137, started, now_ns(), -1);
            break;
        }
        if (pid > 0 && (fifo_path ? fifo_start(pid) : run_cmd(&c_start, devnull, devnull, devnull)) != 0) {
            kill(pid, SIGKILL);
            pid = -1;
        }
        if (pid <= 0) {
            if (tty && sock >= 0) { close(sock); unlink(sockpath); rmdir(sockdir); }
            if (out_r >= 0) close(out_r);
            if (err_r >= 0) close(err_r);
            if (first) { sync_error(sync_fd, "OCI runtime create failed", rc == 127 ? 127 : 125); return 1; }
            report("exited", 0, 0, 125, 0, now_ns(), -1);
            break;
        }
        long long pstart = pid_start_time(pid);
        report("running", pid, pstart, 0, started, 0, first ? sync_fd : -1);
        if (first) { close(sync_fd); first = 0; }

        /* pump output until the container exits and its streams close */
        int status = -1;
        long long deadline = 0;
        struct pollfd fds[6];
        int fd_out = tty ? master : out_r, fd_err = tty ? -1 : err_r;
        for (;;) {
            int nf = 0;
            fds[nf++] = (struct pollfd){ sfd, POLLIN, 0 };
            int i_out = -1, i_err = -1, i_as = -1, i_ac = -1;
            if (fd_out >= 0) { i_out = nf; fds[nf++] = (struct pollfd){ fd_out, POLLIN, 0 }; }
            if (fd_err >= 0) { i_err = nf; fds[nf++] = (struct pollfd){ fd_err, POLLIN, 0 }; }
            int streams = nf;
            if (asock >= 0) { i_as = nf; fds[nf++] = (struct pollfd){ asock, POLLIN, 0 }; }
            if (aclient >= 0) { i_ac = nf; fds[nf++] = (struct pollfd){ aclient, POLLIN, 0 }; }
            if (status >= 0 && (streams == 1 || now_ns() > deadline)) break;
            int r = poll(fds, (nfds_t)nf, status >= 0 ? 50 : 1000);
            if (r < 0 && errno != EINTR) break;
            if (fds[0].revents) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) > 0) {}
            }
            /* reap: the container's pid 1 and any orphan that was re-parented to us */
            for (;;) {
                int st; pid_t w = waitpid(-1, &st, WNOHANG);
                if (w <= 0) break;
                if (w == pid) {
                    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                    deadline = now_ns() + 2000000000LL;
                }
            }
            char buf[65536];
            if (i_as >= 0 && fds[i_as].revents) {
                int c = accept4(asock, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) { if (aclient >= 0) close(aclient); aclient = c; }
            }
            if (i_ac >= 0 && fds[i_ac].revents) {
                ssize_t n = read(aclient, buf, sizeof buf);
                int target = tty ? master : in_w;
                if (n > 0 && target >= 0) write_all(target, buf, (size_t)n);
                else if (n <= 0) {
                    close(aclient); aclient = -1;
                    if (!tty && in_w >= 0) { close(in_w); in_w = -1; }
                }
            }
            if (i_out >= 0 && fds[i_out].revents) {
                ssize_t n = read(fd_out, buf, sizeof buf);
                if (n > 0) log_data(&s_out, buf, (size_t)n);
                else if (n == 0 || (errno != EINTR && errno != EAGAIN)) { close(fd_out); fd_out = -1; }
            }
            if (i_err >= 0 && fds[i_err].revents) {
                ssize_t n = read(fd_err, buf, sizeof buf);
                if (n > 0) log_data(&s_err, buf, (size_t)n);
                else if (n == 0 || (errno != EINTR && errno != EAGAIN)) { close(fd_err); fd_err = -1; }
            }
        }
        if (fd_out >= 0) close(fd_out);
        if (fd_err >= 0) close(fd_err);
        if (in_w >= 0) close(in_w);
        log_flush(&s_out);
        log_flush(&s_err);
        long long finished = now_ns();
        int restart = !stopped_by_user() && (
            !strcmp(policy, "always") || !strcmp(policy, "unless-stopped") ||
            (!strcmp(policy, "on-failure") && status != 0 && (max_retry == 0 || restart_count < max_retry)));
        report(restart ? "restarting" : "exited", 0, 0, status, started, finished, -1);
        if (!restart) break;
        if (c_delete.n) run_cmd(&c_delete, devnull, devnull, devnull);
        backoff = (finished - started) > 10000000000LL ? 100 : (backoff * 2 > 60000 ? 60000 : backoff * 2);
        for (long waited = 0; waited < backoff && !stopped_by_user(); waited += 50) sleep_ms(50);
        if (stopped_by_user()) {
            report("exited", 0, 0, status, started, finished, -1);
            break;
        }
        restart_count++;
    }
    if (log_fd >= 0) close(log_fd);
    if (aclient >= 0) close(aclient);
    if (asock >= 0) close(asock);
    if (c_exit.n) {
        sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
        execv(c_exit.argv[0], c_exit.argv);
    }
    return 0;
}
