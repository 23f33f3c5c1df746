/*  support_proc.c — child processes, ports, temporary directories and
    STATS for the integration suites and chaos (see support_proc.h).
*/
#include "support_proc.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

//  Returns milliseconds on a monotonic clock.
static int64_t s_now_ms(void)
{
    return zclock_mono();
}

//  Returns p, which must not be NULL: out of memory ends a test program.
static void *s_need(void *p)
{
    if (!p) {
        fputs("support: out of memory\n", stderr);
        abort();
    }
    return p;
}

const char *it_bin(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", HVN_BIN_DIR, name);
    return path;
}

//  Returns the pid of a child running argv (argv[0] resolved with it_bin
//  when it holds no '/'), its descriptors 0, 1 and 2 being fds[0..2] (-1:
//  this process's own), or -1. The child dies with this process.
static pid_t s_fork_exec(const char *const argv[], const int fds[3])
{
    const char *args[IT_MAX_ARGS + 1];
    char *path = strchr(argv[0], '/') ? NULL : strdup(it_bin(argv[0]));
    size_t n = 0;
    args[n++] = path ? path : argv[0];
    for (size_t i = 1; argv[i] && n < IT_MAX_ARGS; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1); //  The parent died before the line above
        for (int i = 0; i < 3; i++)
            if (fds[i] >= 0)
                dup2(fds[i], i);
        execv(args[0], (char *const *)args);
        fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    free(path);
    return pid;
}

//  Returns a new process record of pid with the parent's ends of its
//  pipes (-1: none).
static it_proc_t *s_proc_new(pid_t pid, int stdin_fd, int stdout_fd, int stderr_fd)
{
    it_proc_t *proc = s_need(calloc(1, sizeof(*proc)));
    proc->pid = pid;
    proc->stdin_fd = stdin_fd;
    proc->stdout_fd = stdout_fd;
    proc->stderr_fd = stderr_fd;
    return proc;
}

//  Returns nothing; closes fd unless it is -1.
static void s_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

it_proc_t *it_spawn(const char *const argv[], bool pipe_stdin, bool capture_stdout,
                    bool capture_stderr)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int null = -1;
    pid_t pid = -1;
    if ((!pipe_stdin || pipe2(in, O_CLOEXEC) == 0) &&
        (!capture_stdout || pipe2(out, O_CLOEXEC) == 0) &&
        (!capture_stderr || pipe2(err, O_CLOEXEC) == 0) &&
        (pipe_stdin || (null = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)) {
        int fds[3] = {pipe_stdin ? in[0] : null, out[1], err[1]};
        pid = s_fork_exec(argv, fds);
    }
    s_close(null);
    s_close(in[0]);
    s_close(out[1]);
    s_close(err[1]);
    if (pid < 0) {
        s_close(in[1]);
        s_close(out[0]);
        s_close(err[0]);
        return NULL;
    }
    return s_proc_new(pid, in[1], out[0], err[0]);
}

it_proc_t *it_spawn_logged(const char *const argv[], const char *log_path)
{
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return NULL;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {null, null, log};
    pid_t pid = null >= 0 ? s_fork_exec(argv, fds) : -1;
    int error = errno;
    s_close(null);
    close(log);
    errno = error;
    return pid < 0 ? NULL : s_proc_new(pid, -1, -1, -1);
}

int it_write(it_proc_t *proc, const char *text)
{
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t rc = write(proc->stdin_fd, text + done, len - done);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        done += (size_t)rc;
    }
    return 0;
}

void it_close_stdin(it_proc_t *proc)
{
    s_close(proc->stdin_fd);
    proc->stdin_fd = -1;
}

int it_read_line(it_proc_t *proc, char *line, size_t size, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    while (true) {
        char *nl = memchr(proc->buf, '\n', proc->len);
        if (nl) {
            size_t n = (size_t)(nl - proc->buf);
            size_t copy = n < size - 1 ? n : size - 1;
            memcpy(line, proc->buf, copy);
            line[copy] = '\0';
            memmove(proc->buf, nl + 1, proc->len - n - 1);
            proc->len -= n + 1;
            return (int)copy;
        }
        int64_t left = deadline - s_now_ms();
        if (left <= 0 || proc->stdout_fd < 0 || proc->len == sizeof(proc->buf))
            return -1;
        struct pollfd pfd = {.fd = proc->stdout_fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t got = read(proc->stdout_fd, proc->buf + proc->len, sizeof(proc->buf) - proc->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        proc->len += (size_t)got;
    }
}

//  Reads from fd until end of output or timeout. Returns a heap string.
static char *s_read_all(int fd, int timeout_ms)
{
    size_t cap = 4096, len = 0;
    char *text = s_need(malloc(cap));
    int64_t deadline = s_now_ms() + timeout_ms;
    while (fd >= 0) {
        int64_t left = deadline - s_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        if (len + 1024 > cap) {
            cap *= 2;
            text = s_need(realloc(text, cap));
        }
        ssize_t got = read(fd, text + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    text[len] = '\0';
    return text;
}

char *it_read_stderr(it_proc_t *proc, int timeout_ms)
{
    return s_read_all(proc->stderr_fd, timeout_ms);
}

char *it_read_stdout(it_proc_t *proc, int timeout_ms)
{
    //  Lines already buffered by it_read_line come first
    char *rest = s_read_all(proc->stdout_fd, timeout_ms);
    char *text = s_need(malloc(proc->len + strlen(rest) + 1));
    memcpy(text, proc->buf, proc->len);
    strcpy(text + proc->len, rest);
    proc->len = 0;
    free(rest);
    return text;
}

//  Translates a waitpid status. Returns 0..255 or 128 + signal.
static int s_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int it_wait(it_proc_t *proc, int timeout_ms)
{
    if (proc->pid == 0)
        return s_exit_code(proc->status);
    int64_t deadline = s_now_ms() + timeout_ms;
    while (true) {
        pid_t rc = waitpid(proc->pid, &proc->status, WNOHANG);
        if (rc == proc->pid) {
            proc->pid = 0;
            return s_exit_code(proc->status);
        }
        if (rc < 0 && errno != EINTR)
            return -1;
        if (s_now_ms() >= deadline)
            return -1;
        usleep(2000);
    }
}

int it_stop(it_proc_t **proc_p, int sig, int timeout_ms)
{
    if (!proc_p || !*proc_p)
        return -1;
    it_proc_t *proc = *proc_p;
    int code = -1;
    if (proc->pid) {
        kill(proc->pid, sig);
        kill(proc->pid, SIGCONT); //  A stopped process acts on sig once continued
        code = it_wait(proc, timeout_ms);
        if (code < 0) {
            kill(proc->pid, SIGKILL);
            it_wait(proc, 5000);
        }
    } else
        code = s_exit_code(proc->status);
    s_close(proc->stdin_fd);
    s_close(proc->stdout_fd);
    s_close(proc->stderr_fd);
    free(proc);
    *proc_p = NULL;
    return code;
}

int it_finish(it_proc_t **proc_p, int timeout_ms)
{
    it_close_stdin(*proc_p);
    int code = it_wait(*proc_p, timeout_ms);
    it_stop(proc_p, SIGKILL, 1000);
    return code;
}

char *it_term_stderr(it_proc_t *proc, int timeout_ms, int *code)
{
    if (proc->pid)
        kill(proc->pid, SIGTERM);
    *code = it_wait(proc, timeout_ms);
    return it_read_stderr(proc, 2000);
}

int it_tempdir(char *dir, size_t size, const char *prefix)
{
    int n = snprintf(dir, size, "/tmp/%s-XXXXXX", prefix);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

//  nftw callback: removes one entry. Returns 0 to go on.
static int s_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void it_tempdir_remove(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int it_port_free(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

//  Finds integer `key` in a msgpack map. Returns 0 with *value, or -1.
static int s_map_int(const msgpack_object *map, const char *key, int64_t *value)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return -1;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != klen ||
            memcmp(kv->key.via.str.ptr, key, klen) != 0)
            continue;
        if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            *value = (int64_t)kv->val.via.u64;
            return 0;
        }
        if (kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *value = kv->val.via.i64;
            return 0;
        }
        return -1;
    }
    return -1;
}

static char s_stat_secret[512]; //  it_stat_curve's certificates; "" = plain text
static char s_stat_server[512];

void it_stat_curve(const char *secret_cert, const char *server_cert)
{
    snprintf(s_stat_secret, sizeof(s_stat_secret), "%s", secret_cert ? secret_cert : "");
    snprintf(s_stat_server, sizeof(s_stat_server), "%s", server_cert ? server_cert : "");
}

//  Returns 0 when dealer is a CURVE client as it_stat_curve asked (or
//  plain text was asked), -1 when the certificates cannot be read.
static int s_stat_secure(zsock_t *dealer)
{
    if (!s_stat_secret[0])
        return 0;
    zcert_t *client = zcert_load(s_stat_secret);
    zcert_t *server = zcert_load(s_stat_server);
    int rc = client && server ? 0 : -1;
    if (rc == 0) {
        zcert_apply(client, dealer);
        zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
    } else
        fprintf(stderr, "support: cannot load %s or %s\n", s_stat_secret, s_stat_server);
    zcert_destroy(&client);
    zcert_destroy(&server);
    return rc;
}

int64_t it_broker_stat(const char *service, const char *key, int timeout_ms)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (!dealer)
        return -1;
    if (s_stat_secure(dealer) != 0 || zsock_connect(dealer, "%s", service) != 0) {
        zsock_destroy(&dealer);
        return -1;
    }
    zsock_set_linger(dealer, 0);
    zsock_set_rcvtimeo(dealer, timeout_ms);
    int64_t value = -1;
    zstr_send(dealer, "STATS");
    zmsg_t *reply = zmsg_recv(dealer);
    if (reply && zmsg_size(reply) == 2) {
        char *word = zmsg_popstr(reply);
        zframe_t *body = zmsg_pop(reply);
        if (word && streq(word, "STATS") && body) {
            msgpack_unpacked result;
            msgpack_unpacked_init(&result);
            if (msgpack_unpack_next(&result, (const char *)zframe_data(body), zframe_size(body),
                                    NULL) == MSGPACK_UNPACK_SUCCESS &&
                s_map_int(&result.data, key, &value) != 0)
                value = -1;
            msgpack_unpacked_destroy(&result);
        }
        free(word);
        zframe_destroy(&body);
    }
    zmsg_destroy(&reply);
    zsock_destroy(&dealer);
    return value;
}

int it_wait_stat(const char *service, const char *key, int64_t n, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    while (s_now_ms() < deadline) {
        if (it_broker_stat(service, key, 500) >= n)
            return 0;
        usleep(5000);
    }
    return -1;
}

int it_wait_subscriptions(const char *service, int64_t n, int timeout_ms)
{
    return it_wait_stat(service, "subscriptions", n, timeout_ms);
}
