/*  support.c — process control for the integration suites (see support.h). */
#include "support.h"
#include "hvn_proto.h"

#include <criterion/criterion.h>
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

void it_env_init(it_env_t *env)
{
    memset(env, 0, sizeof(*env));
    snprintf(env->dir, sizeof(env->dir), "/tmp/hvn-it-XXXXXX");
    cr_assert_not_null(mkdtemp(env->dir), "mkdtemp: %s", strerror(errno));
    snprintf(env->frontend, sizeof(env->frontend), "ipc://%s/frontend", env->dir);
    snprintf(env->backend, sizeof(env->backend), "ipc://%s/backend", env->dir);
    snprintf(env->service, sizeof(env->service), "ipc://%s/service", env->dir);
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

void it_env_fini(it_env_t *env)
{
    it_stop(&env->broker, SIGTERM, 5000);
    it_stat_curve(NULL, NULL);
    if (env->dir[0])
        nftw(env->dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    env->dir[0] = '\0';
}

const char *it_bin(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", HVN_BIN_DIR, name);
    return path;
}

//  Makes a pipe whose `keep` end is close-on-exec and non-blocking.
//  Returns 0 or -1.
static int s_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC);
}

it_proc_t *it_spawn(const char *const argv[], bool pipe_stdin, bool capture_stdout,
                    bool capture_stderr)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if ((pipe_stdin && s_pipe(in)) || (capture_stdout && s_pipe(out)) ||
        (capture_stderr && s_pipe(err)))
        return NULL;

    const char *args[IT_MAX_ARGS + 1];
    size_t n = 0;
    args[n++] = strchr(argv[0], '/') ? argv[0] : strdup(it_bin(argv[0]));
    for (size_t i = 1; argv[i] && n < IT_MAX_ARGS; i++)
        args[n++] = argv[i];
    args[n] = NULL;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return NULL;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (pipe_stdin)
            dup2(in[0], STDIN_FILENO);
        else {
            int null = open("/dev/null", O_RDONLY);
            dup2(null, STDIN_FILENO);
        }
        if (capture_stdout)
            dup2(out[1], STDOUT_FILENO);
        if (capture_stderr)
            dup2(err[1], STDERR_FILENO);
        execv(args[0], (char *const *)args);
        fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    if (args[0] != argv[0])
        free((void *)args[0]);

    it_proc_t *proc = calloc(1, sizeof(*proc));
    cr_assert_not_null(proc);
    proc->pid = pid;
    proc->stdin_fd = pipe_stdin ? in[1] : -1;
    proc->stdout_fd = capture_stdout ? out[0] : -1;
    proc->stderr_fd = capture_stderr ? err[0] : -1;
    if (pipe_stdin)
        close(in[0]);
    if (capture_stdout)
        close(out[1]);
    if (capture_stderr)
        close(err[1]);
    return proc;
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
    if (proc->stdin_fd >= 0)
        close(proc->stdin_fd);
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
    char *text = malloc(cap);
    cr_assert_not_null(text);
    int64_t deadline = s_now_ms() + timeout_ms;
    while (fd >= 0) {
        int64_t left = deadline - s_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        if (len + 1024 > cap) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
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
    char *text = malloc(proc->len + strlen(rest) + 1);
    cr_assert_not_null(text);
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
        code = it_wait(proc, timeout_ms);
        if (code < 0) {
            kill(proc->pid, SIGKILL);
            it_wait(proc, 5000);
        }
    }
    else
        code = s_exit_code(proc->status);
    if (proc->stdin_fd >= 0)
        close(proc->stdin_fd);
    if (proc->stdout_fd >= 0)
        close(proc->stdout_fd);
    if (proc->stderr_fd >= 0)
        close(proc->stderr_fd);
    free(proc);
    *proc_p = NULL;
    return code;
}

it_proc_t *it_broker_start(it_env_t *env, const char *const extra[])
{
    const char *argv[IT_MAX_ARGS + 1] = {"hvn-broker",     "--frontend", env->frontend,
                                         "--backend",      env->backend, "--service",
                                         env->service,     "--name",     "it-broker"};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i] && n < IT_MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    it_proc_t *broker = it_spawn(argv, false, false, false);
    cr_assert_not_null(broker, "cannot start hvn-broker");
    int64_t deadline = s_now_ms() + 10000;
    while (it_broker_stat(env->service, "uptime_ms", 200) < 0) {
        cr_assert(it_wait(broker, 0) < 0, "hvn-broker exited at start");
        cr_assert(s_now_ms() < deadline, "hvn-broker does not answer STATS");
    }
    env->broker = broker;
    return broker;
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

int64_t it_broker_stat(const char *service, const char *key, int timeout_ms)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (!dealer)
        return -1;
    if (s_stat_secret[0]) {
        zcert_t *client = zcert_load(s_stat_secret);
        zcert_t *server = zcert_load(s_stat_server);
        cr_assert(client && server, "cannot load %s or %s", s_stat_secret, s_stat_server);
        zcert_apply(client, dealer);
        zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
        zcert_destroy(&client);
        zcert_destroy(&server);
    }
    if (zsock_connect(dealer, "%s", service) != 0) {
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

int it_wait_subscriptions(const char *service, int64_t n, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    while (s_now_ms() < deadline) {
        if (it_broker_stat(service, "subscriptions", 500) >= n)
            return 0;
        usleep(5000);
    }
    return -1;
}

int it_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    cr_assert(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
    close(fd);
    return ntohs(addr.sin_port);
}

char *it_node_json(char *buf, size_t size, int64_t id, const char *uuid, const char *host,
                   int64_t vcpus_used, int64_t memory_mb_used)
{
    //  The values; the line's keys, order and form come from the schema
    //  table through hvn_json_node
    static const struct {
        hvn_field_id_t field; //  An int field
        int64_t value;        //  Its value in every node
    } ints[] = {{HVN_F_VCPUS, 32},
                {HVN_F_MEMORY_MB, 131072},
                {HVN_F_LOCAL_GB, 900},
                {HVN_F_LOCAL_GB_USED, 120},
                {HVN_F_HYPERVISOR_VERSION, 7002000},
                {HVN_F_FREE_DISK_GB, 780},
                {HVN_F_CURRENT_WORKLOAD, 0},
                {HVN_F_RUNNING_VMS, 3},
                {HVN_F_DISK_AVAILABLE_LEAST, 700}};
    hvn_node_t node;
    hvn_node_init(&node);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        hvn_node_set_int(&node, ints[i].field, ints[i].value);
    hvn_node_set_int(&node, HVN_F_ID, id);
    hvn_node_set_int(&node, HVN_F_VCPUS_USED, vcpus_used);
    hvn_node_set_int(&node, HVN_F_MEMORY_MB_USED, memory_mb_used);
    hvn_node_set_int(&node, HVN_F_FREE_RAM_MB, 131072 - memory_mb_used);
    char hostname[HVN_STR_MAX + 1];
    snprintf(hostname, sizeof(hostname), "%s.example.org", host);
    hvn_node_set_str(&node, HVN_F_UUID, uuid);
    hvn_node_set_str(&node, HVN_F_HOST, host);
    hvn_node_set_str(&node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(&node, HVN_F_HYPERVISOR_HOSTNAME, hostname);
    hvn_node_set_str(&node, HVN_F_HOST_IP, "192.0.2.17");
    char *json = hvn_json_node(&node);
    cr_assert(json, "node %s does not render", uuid);
    cr_assert_lt(strlen(json) + 1, size, "it_node_json: buffer too small");
    snprintf(buf, size, "%s\n", json);
    free(json);
    return buf;
}
