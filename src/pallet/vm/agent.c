/*
 * pallet guest agent: PID 1 of a pallet VM once the init script has mounted
 * the container's root filesystem at /newroot.
 *
 * It speaks the framed protocol described in docs/vm.md over one virtio-serial
 * port: every frame is an 8-byte header (type, flags, 16-bit process id and
 * 32-bit payload length, big endian) followed by the payload.  The host sends
 * process specs, stdin, signals, files and shares; the agent answers with
 * READY, STARTED, stdout/stderr data and EXIT frames, in order.
 *
 * Built statically by pallet when it makes the initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define ROOT "/newroot"
#define MAXPROC 64
#define MAXPAYLOAD (1u << 20)

enum {
    /* host -> guest */
    F_SPEC = 'S', F_STDIN = 'I', F_SIGNAL = 'K', F_WINSIZE = 'W', F_FILE = 'F',
    F_SHARE = 'V', F_MOUNT = 'M', F_QUIT = 'Q',
    /* guest -> host */
    F_READY = 'R', F_STARTED = 'P', F_STDOUT = 'O', F_STDERR = 'E', F_EXIT = 'X',
};

struct proc {
    int used, id;
    pid_t pid;
    int in, out, err; /* our ends; -1 when closed */
    int tty;
};

static int port = -1;
static int pidns = 0; /* the container's own PID namespace exists (made for process 0) */
static struct proc procs[MAXPROC];
extern char **environ;

static void die(const char *what) {
    fprintf(stderr, "pallet-agent: %s: %s\n", what, strerror(errno));
    sync();
    reboot(RB_POWER_OFF);
    _exit(1);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                poll(&pf, 1, -1);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pf = {fd, POLLIN, 0};
            poll(&pf, 1, -1);
            continue;
        }
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void send_frame(int type, int id, const void *data, uint32_t len) {
    unsigned char h[8] = {(unsigned char)type, 0, (unsigned char)(id >> 8), (unsigned char)id,
                          (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    if (write_all(port, h, 8) < 0 || (len && write_all(port, data, len) < 0)) die("write port");
}

static void send_str(int type, int id, const char *s) { send_frame(type, id, s, (uint32_t)strlen(s)); }

static struct proc *find_id(int id) {
    for (int i = 0; i < MAXPROC; i++)
        if (procs[i].used && procs[i].id == id) return &procs[i];
    return NULL;
}

static void mkdir_p(char *path, mode_t mode) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, mode);
            *p = '/';
        }
    }
    mkdir(path, mode);
}

/* Drain a child's pipe (non-blocking) into frames; close it on EOF. */
static void pump(struct proc *p, int *fd, int type, int final) {
    char buf[16384];
    for (;;) {
        ssize_t r = read(*fd, buf, sizeof buf);
        if (r > 0) {
            send_frame(type, p->id, buf, (uint32_t)r);
            if (!final) return;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN && !final) return;
        /* EOF, EIO (tty hung up) or nothing more to read after exit */
        close(*fd);
        if (p->in == *fd) p->in = -1;
        *fd = -1;
        return;
    }
}

static void child_fail(int errfd, const char *fmt, const char *arg, int code) {
    dprintf(errfd, fmt, arg);
    _exit(code);
}

/* Spec payload: NUL-terminated fields, each a one-letter tag then the value:
 *   a<arg>  e<KEY=VALUE>  c<cwd>  u<uid>  g<gid>  G<extra gid>  t<1 for a tty>  */
static void spawn(int id, char *data, uint32_t len) {
    char *argv[256], *envp[512];
    gid_t groups[64];
    int argc = 0, envc = 0, ngroups = 0, tty = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    const char *cwd = "/";
    for (char *f = data; f < data + len; f += strlen(f) + 1) {
        switch (f[0]) {
        case 'a': if (argc < 255) argv[argc++] = f + 1; break;
        case 'e': if (envc < 511) envp[envc++] = f + 1; break;
        case 'c': cwd = f + 1; break;
        case 'u': uid = (uid_t)strtoul(f + 1, NULL, 10); break;
        case 'g': gid = (gid_t)strtoul(f + 1, NULL, 10); break;
        case 'G': if (ngroups < 64) groups[ngroups++] = (gid_t)strtoul(f + 1, NULL, 10); break;
        case 't': tty = f[1] == '1'; break;
        }
    }
    argv[argc] = NULL;
    envp[envc] = NULL;
    struct proc *p = NULL;
    for (int i = 0; i < MAXPROC; i++)
        if (!procs[i].used) { p = &procs[i]; break; }
    if (!p || argc == 0) {
        send_str(F_STDERR, id, argc ? "pallet-agent: too many processes\n" : "pallet-agent: no command\n");
        send_str(F_EXIT, id, "126");
        return;
    }
    int in[2], out[2], err[2], master = -1, slave = -1;
    if (tty) {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) die("openpt");
        slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        if (slave < 0) die("open pts");
        in[0] = out[1] = err[1] = slave;
        in[1] = out[0] = master;
        err[0] = -1;
    } else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        die("pipe");
    }
    /* The container's process is PID 1 of its own PID namespace, as with runc: signals
     * without a handler do not kill it, orphans are its to reap, and `ps` shows the
     * container's processes only.  exec sessions are forked into the same namespace. */
    if (id == 0 && !pidns && unshare(CLONE_NEWPID) == 0) pidns = 1;
    pid_t pid = fork();
    if (pid < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "pallet-agent: cannot start the process: %s\n", strerror(errno));
        send_str(F_STDERR, id, msg);
        send_str(F_EXIT, id, "126");
        if (tty) { close(master); close(slave); }
        else { close(in[0]); close(in[1]); close(out[0]); close(out[1]); close(err[0]); close(err[1]); }
        return;
    }
    if (pid == 0) {
        if (id == 0 && pidns)
            mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        setsid();
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (tty) ioctl(0, TIOCSCTTY, 0);
        if (chroot(ROOT) < 0) child_fail(2, "pallet-agent: chroot: %s\n", strerror(errno), 126);
        if (chdir(cwd) < 0) {
            if (errno == ENOENT) {
                char tmp[4096];
                snprintf(tmp, sizeof tmp, "%s", cwd);
                mkdir_p(tmp, 0755);
            }
            if (chdir(cwd) < 0) child_fail(2, "pallet-agent: chdir to cwd (\"%s\") set in config.json failed\n", cwd, 126);
        }
        if (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
            child_fail(2, "pallet-agent: setting user: %s\n", strerror(errno), 126);
        environ = envp;
        execvp(argv[0], argv);
        if (errno == ENOENT)
            child_fail(2, "exec: \"%s\": executable file not found in $PATH\n", argv[0], 127);
        child_fail(2, "exec: \"%s\": permission denied\n", argv[0], 126);
    }
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->id = id;
    p->pid = pid;
    p->tty = tty;
    if (tty) {
        close(slave);
        p->in = master;
        p->out = dup(master);
        p->err = -1;
    } else {
        close(in[0]); close(out[1]); close(err[1]);
        p->in = in[1]; p->out = out[0]; p->err = err[0];
    }
    if (p->out >= 0) fcntl(p->out, F_SETFL, O_NONBLOCK);
    if (p->err >= 0) fcntl(p->err, F_SETFL, O_NONBLOCK);
    char num[32];
    snprintf(num, sizeof num, "%d", (int)pid);
    send_str(F_STARTED, id, num);
}

static void reap(void) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < MAXPROC; i++) {
            struct proc *p = &procs[i];
            if (!p->used || p->pid != pid) continue;
            if (p->out >= 0) pump(p, &p->out, F_STDOUT, 1);
            if (p->err >= 0) pump(p, &p->err, F_STDERR, 1);
            if (p->in >= 0) close(p->in);
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            char num[16];
            snprintf(num, sizeof num, "%d", code);
            send_str(F_EXIT, p->id, num);
            p->used = 0;
        }
    }
}

static void write_file(char *data, uint32_t len) {
    /* payload: path NUL mode NUL content */
    char *path = data, *mode = path + strlen(path) + 1;
    if (mode >= data + len) return;
    char *content = mode + strlen(mode) + 1;
    char full[4096];
    snprintf(full, sizeof full, ROOT "%s", path);
    char *slash = strrchr(full, '/');
    if (slash && slash != full) { *slash = 0; mkdir_p(full, 0755); *slash = '/'; }
    unlink(full);
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)strtoul(mode, NULL, 8));
    if (fd < 0) return;
    write_all(fd, content, (size_t)(data + len - content));
    close(fd);
}

static void share(char *data, uint32_t len) {
    /* payload: tag NUL target NUL "ro"|"rw" */
    char *tag = data, *target = tag + strlen(tag) + 1;
    if (target >= data + len) return;
    char *ro = target + strlen(target) + 1;
    char full[4096];
    snprintf(full, sizeof full, ROOT "%s", target);
    mkdir_p(full, 0755);
    unsigned long flags = (ro < data + len && strcmp(ro, "ro") == 0) ? MS_RDONLY : 0;
    if (mount(tag, full, "virtiofs", flags, NULL) < 0)
        fprintf(stderr, "pallet-agent: mount %s on %s: %s\n", tag, target, strerror(errno));
}

/* payload: fstype NUL source NUL target NUL comma-separated options.  The flags among
 * the options (ro, nosuid, nodev, noexec, remount) become mount flags, the rest data.
 * An empty fstype with "remount,ro" on "/" makes the container's root read-only. */
static void do_mount(char *data, uint32_t len) {
    char *fstype = data, *source = fstype + strlen(fstype) + 1;
    if (source >= data + len) return;
    char *target = source + strlen(source) + 1;
    if (target >= data + len) return;
    static char none[1];
    char *opts = target + strlen(target) + 1;
    if (opts > data + len) opts = none;
    char full[4096], rest[1024] = "";
    snprintf(full, sizeof full, ROOT "%s", target);
    unsigned long flags = 0;
    for (char *o = strtok(opts, ","); o; o = strtok(NULL, ",")) {
        if (!strcmp(o, "ro")) flags |= MS_RDONLY;
        else if (!strcmp(o, "nosuid")) flags |= MS_NOSUID;
        else if (!strcmp(o, "nodev")) flags |= MS_NODEV;
        else if (!strcmp(o, "noexec")) flags |= MS_NOEXEC;
        else if (!strcmp(o, "remount")) flags |= MS_REMOUNT;
        else if (strcmp(o, "rw") && strlen(rest) + strlen(o) + 2 < sizeof rest) {
            if (rest[0]) strcat(rest, ",");
            strcat(rest, o);
        }
    }
    if (!(flags & MS_REMOUNT)) mkdir_p(full, 0755);
    if (mount(fstype[0] ? source : NULL, full, fstype[0] ? fstype : NULL, flags, rest[0] ? rest : NULL) < 0)
        fprintf(stderr, "pallet-agent: mount %s on %s: %s\n", fstype[0] ? fstype : "(remount)", target, strerror(errno));
}

static void quit(void) {
    kill(-1, SIGKILL);
    sync();
    reboot(RB_POWER_OFF);
    _exit(0);
}

/* pallet-agent --modules DIR " group group ": load DIR/NAME.ko for each "group:NAME" line of
 * DIR/order whose group is listed, in order, from this one process (no insmod per module). */
static int load_modules(const char *dir, const char *want) {
    char path[4096], line[256], key[260];
    snprintf(path, sizeof path, "%s/order", dir);
    FILE *f = fopen(path, "r");
    if (!f) { perror("pallet-agent: modules order"); return 1; }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        snprintf(key, sizeof key, " %s ", line);
        if (!strstr(want, key)) continue;
        snprintf(path, sizeof path, "%s/%s.ko", dir, colon + 1);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0)
            if (errno != EEXIST) fprintf(stderr, "pallet-agent: module %s: %s\n", colon + 1, strerror(errno));
        if (fd >= 0) close(fd);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--modules")) return load_modules(argv[2], argv[3]);
    if (argc < 2) { fprintf(stderr, "usage: pallet-agent PORT\n"); return 2; }
    port = open(argv[1], O_RDWR | O_CLOEXEC);
    if (port < 0) die("open port");
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGPIPE);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd");
    struct utsname u;
    uname(&u);
    send_str(F_READY, 0, u.release);
    char *buf = malloc(MAXPAYLOAD + 1);
    if (!buf) die("malloc");
    for (;;) {
        struct pollfd pfd[2 + 2 * MAXPROC];
        struct proc *who[2 + 2 * MAXPROC];
        int n = 0;
        pfd[n++] = (struct pollfd){port, POLLIN, 0};
        pfd[n++] = (struct pollfd){sfd, POLLIN, 0};
        for (int i = 0; i < MAXPROC; i++) {
            struct proc *p = &procs[i];
            if (!p->used) continue;
            if (p->out >= 0) { who[n] = p; pfd[n++] = (struct pollfd){p->out, POLLIN, 0}; }
            if (p->err >= 0) { who[n] = p; pfd[n++] = (struct pollfd){p->err, POLLIN, 0}; }
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        for (int i = 2; i < n; i++) {
            if (!pfd[i].revents) continue;
            struct proc *p = who[i];
            if (!p->used) continue;
            if (pfd[i].fd == p->out) pump(p, &p->out, F_STDOUT, 0);
            else if (pfd[i].fd == p->err) pump(p, &p->err, F_STDERR, 0);
        }
        if (pfd[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            reap();
        }
        if (pfd[0].revents & (POLLHUP | POLLERR) && !(pfd[0].revents & POLLIN)) {
            usleep(10000); /* host side not connected (yet): wait for it */
            continue;
        }
        if (!(pfd[0].revents & POLLIN)) continue;
        unsigned char h[8];
        if (read_all(port, h, 8) < 0) continue;
        int type = h[0], id = (h[2] << 8) | h[3];
        uint32_t len = ((uint32_t)h[4] << 24) | ((uint32_t)h[5] << 16) | ((uint32_t)h[6] << 8) | h[7];
        if (len > MAXPAYLOAD) die("frame too large");
        if (len && read_all(port, buf, len) < 0) die("read port");
        buf[len] = 0;
        struct proc *p;
        switch (type) {
        case F_SPEC: spawn(id, buf, len); break;
        case F_STDIN:
            if ((p = find_id(id)) && p->in >= 0) {
                if (len == 0) {
                    if (p->tty) { char eot = 4; write_all(p->in, &eot, 1); }
                    else { close(p->in); p->in = -1; }
                } else {
                    write_all(p->in, buf, len);
                }
            }
            break;
        case F_SIGNAL:
            if ((p = find_id(id))) kill(p->pid, atoi(buf));
            break;
        case F_WINSIZE:
            if ((p = find_id(id)) && p->tty) {
                struct winsize ws = {0};
                unsigned rows = 0, cols = 0;
                sscanf(buf, "%u %u", &rows, &cols);
                ws.ws_row = (unsigned short)rows;
                ws.ws_col = (unsigned short)cols;
                ioctl(p->in, TIOCSWINSZ, &ws);
            }
            break;
        case F_FILE: write_file(buf, len); break;
        case F_SHARE: share(buf, len); break;
        case F_MOUNT: do_mount(buf, len); break;
        case F_QUIT: quit(); break;
        }
    }
}
