/*  bench_common.c — what the bench/ programs share. */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_STAMP_KEY "current_workload"

// --------------------------------------------------------------------------
//  Clocks and statistics

//  Returns CLOCK_MONOTONIC in ns.
int64_t bc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  Returns <0, 0, >0 as *a is below, equal to, above *b.
static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Returns the median of v[0..n), sorting v.
double bc_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

//  Returns the nearest-rank quantile q of sorted[0..n).
double bc_quantile(const double *sorted, int n, double q)
{
    if (n <= 0)
        return 0;
    long rank = (long)(q * n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

// --------------------------------------------------------------------------
//  Nodes and messages

//  Fills node i: every field set, long enough names for a ~600-byte body.
void bc_node(hvn_node_t *node, int i, const char *host)
{
    char text[HVN_STR_MAX + 1];
    hvn_node_init(node);
    node->id = 100000 + i;
    snprintf(node->uuid, sizeof(node->uuid), "5f3bb5bc-7f77-4fd2-9f4c-%012x", (unsigned)i);
    hvn_node_set_str(node, HVN_F_HOST, host);
    snprintf(text, sizeof(text), "cmp-%06d.example.org", i);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, text);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    node->hypervisor_version = 7002000;
    node->vcpus = 64;
    node->memory_mb = 262144;
    node->local_gb = 1800;
    node->vcpus_used = 12 + i % 50;
    node->memory_mb_used = 24576;
    node->local_gb_used = 120;
    hvn_node_set_int(node, HVN_F_RUNNING_VMS, 3 + i % 20);
    hvn_node_set_int(node, HVN_F_FREE_RAM_MB, 262144 - 24576);
    hvn_node_set_int(node, HVN_F_FREE_DISK_GB, 1800 - 120);
    hvn_node_set_int(node, HVN_F_CURRENT_WORKLOAD, 2);
    hvn_node_set_int(node, HVN_F_DISK_AVAILABLE_LEAST, 1600);
    snprintf(text, sizeof(text), "198.51.%d.%d", i / 256 % 256, i % 256);
    hvn_node_set_str(node, HVN_F_HOST_IP, text);
}

//  Returns the offset of the 8 stamp bytes in body, or 0 when absent.
static size_t s_stamp_find(const uint8_t *body, size_t size)
{
    size_t klen = strlen(S_STAMP_KEY);
    const uint8_t *key = memmem(body, size, S_STAMP_KEY, klen);
    if (!key)
        return 0;
    size_t at = (size_t)(key - body) + klen;
    if (at + 9 > size || body[at] != 0xcf)
        return 0;
    return at + 1;
}

//  Returns 0 with frames copied into out, -1 when out of memory.
static int s_msg_copy(const hvn_frames_t *frames, bc_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->topic, frames->topic, frames->topic_size + 1);
    out->topic_size = frames->topic_size;
    memcpy(out->header, frames->header, HVN_HEADER_SIZE);
    out->body = malloc(frames->body_size);
    if (!out->body)
        return -1;
    memcpy(out->body, frames->body, frames->body_size);
    out->body_size = frames->body_size;
    return 0;
}

//  Returns 0 with the notification in out, -1 on failure.
int bc_msg_notification(hvn_encoder_t *encoder, hvn_event_t event, const char *host,
                        const hvn_node_t *node, const uint8_t instance[16], bool stamp,
                        bc_msg_t *out)
{
    hvn_node_t copy = *node;
    if (stamp)
        hvn_node_set_int(&copy, HVN_F_CURRENT_WORKLOAD, BC_STAMP_PLACEHOLDER);
    hvn_envelope_t env = {.host = host};
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_NOTIFICATION, .seq = 1};
    memcpy(header.instance, instance, 16);
    hvn_frames_t frames;
    if (hvn_encoder_notification(encoder, event, &env, &copy, &header, &frames) != 0 ||
        s_msg_copy(&frames, out) != 0)
        return -1;
    if (stamp && (out->stamp_offset = s_stamp_find(out->body, out->body_size)) == 0) {
        bc_msg_free(out);
        return -1;
    }
    return 0;
}

//  Returns 0 with the heartbeat in out, -1 on failure.
int bc_msg_heartbeat(hvn_encoder_t *encoder, const char *host, const uint8_t instance[16],
                     bc_msg_t *out)
{
    hvn_envelope_t env = {.host = host};
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_HEARTBEAT};
    memcpy(header.instance, instance, 16);
    hvn_frames_t frames;
    if (hvn_encoder_heartbeat(encoder, &env, 1000, NULL, 0, &header, &frames) != 0)
        return -1;
    return s_msg_copy(&frames, out);
}

//  Writes seq big-endian at header bytes 2..9.
void bc_msg_set_seq(bc_msg_t *msg, uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        msg->header[2 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

//  Writes ns big-endian at the stamp offset.
void bc_msg_set_stamp(bc_msg_t *msg, int64_t ns)
{
    for (int i = 0; i < 8; i++)
        msg->body[msg->stamp_offset + i] = (uint8_t)((uint64_t)ns >> (56 - 8 * i));
}

//  Returns the stamp of a received body, or -1.
int64_t bc_body_stamp(const void *body, size_t size)
{
    size_t at = s_stamp_find(body, size);
    if (!at)
        return -1;
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | ((const uint8_t *)body)[at + i];
    return (int64_t)value;
}

//  Frees the body.
void bc_msg_free(bc_msg_t *msg)
{
    if (!msg)
        return;
    free(msg->body);
    msg->body = NULL;
}

// --------------------------------------------------------------------------
//  Processes

static char s_bin_dir[PATH_MAX];                          //  The running program's directory
static pthread_once_t s_bin_dir_once = PTHREAD_ONCE_INIT; //  Fills it once

//  Returns nothing; fills s_bin_dir from /proc/self/exe, "." when unknown.
static void s_bin_dir_init(void)
{
    ssize_t n = readlink("/proc/self/exe", s_bin_dir, sizeof(s_bin_dir) - 1);
    if (n <= 0) {
        snprintf(s_bin_dir, sizeof(s_bin_dir), ".");
        return;
    }
    s_bin_dir[n] = '\0';
    char *slash = strrchr(s_bin_dir, '/');
    if (slash)
        *slash = '\0';
}

//  Returns the running program's directory. Filled once for every thread:
//  the paired latency run spawns its two middles from two threads at once,
//  and two threads filling one buffer could each cut a '/' off it
//  (build/bench_proxy instead of build/bin/bench_proxy, which never starts).
const char *bc_bin_dir(void)
{
    pthread_once(&s_bin_dir_once, s_bin_dir_init);
    return s_bin_dir;
}

//  Returns the child's pid, or -1.
pid_t bc_spawn(const char *program, const char *const *args)
{
    char path[PATH_MAX + 64];
    if (strchr(program, '/'))
        snprintf(path, sizeof(path), "%s", program);
    else
        snprintf(path, sizeof(path), "%s/%s", bc_bin_dir(), program);
    const char *argv[32];
    int argc = 0;
    argv[argc++] = path;
    for (int i = 0; args[i] && argc < 31; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (!getenv("BENCH_VERBOSE")) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
            close(null);
        }
    }
    execv(path, (char *const *)argv);
    _exit(127);
}

//  Returns true when the child has ended, *code its exit code or 128 + signal.
bool bc_ended(pid_t pid, int *code)
{
    siginfo_t info = {0};
    if (pid <= 0 || waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid != pid)
        return false;
    *code = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
    return true;
}

//  Returns the child's wait status, or -1.
int bc_stop(pid_t pid, int sig, int timeout_ms, double *cpu_s)
{
    if (cpu_s)
        *cpu_s = 0;
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int status;
    struct rusage usage;
    int64_t deadline = bc_now_ns() + (int64_t)timeout_ms * 1000000;
    pid_t rc = 0;
    while (rc == 0 && bc_now_ns() < deadline) {
        rc = wait4(pid, &status, WNOHANG, &usage);
        if (rc == 0)
            usleep(2000);
    }
    if (rc == 0) {
        kill(pid, SIGKILL);
        rc = wait4(pid, &status, 0, &usage);
    }
    if (rc != pid)
        return -1;
    if (cpu_s)
        *cpu_s = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                 (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    return status;
}

//  Returns VmRSS of pid in KiB, or -1.
long bc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *file = fopen(path, "r");
    if (!file)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), file))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(file);
    return kib;
}

// --------------------------------------------------------------------------
//  The broker's STATS

//  Returns the unsigned value of key in a msgpack map, or 0.
static uint64_t s_map_u64(const msgpack_object *map, const char *key)
{
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        const msgpack_object *v = &map->via.map.ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0 && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return v->via.u64;
    }
    return 0;
}

//  Returns 0 with *out filled from a STATS body, -1 when it is no map.
int bc_stats_decode(const void *body, size_t size, bc_stats_t *out)
{
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    int rc = -1;
    if (msgpack_unpack_next(&result, body, size, NULL) == MSGPACK_UNPACK_SUCCESS &&
        result.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *map = &result.data;
        out->received = s_map_u64(map, "received");
        out->forwarded = s_map_u64(map, "forwarded");
        out->refused = s_map_u64(map, "refused");
        out->cache_nodes = s_map_u64(map, "cache_nodes");
        out->cache_bytes = s_map_u64(map, "cache_bytes");
        rc = 0;
    }
    msgpack_unpacked_destroy(&result);
    return rc;
}

//  Returns 0 with *out filled from one STATS reply, -1 otherwise.
int bc_broker_stats(void *ctx, const char *service, int timeout_ms, bc_stats_t *out)
{
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    if (!dealer)
        return -1;
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    int rc = -1;
    zmq_msg_t word, body;
    zmq_msg_init(&word);
    zmq_msg_init(&body);
    if (zmq_connect(dealer, service) == 0 && zmq_send(dealer, "STATS", 5, 0) == 5 &&
        zmq_msg_recv(&word, dealer, 0) >= 0 && zmq_msg_more(&word) &&
        zmq_msg_recv(&body, dealer, 0) >= 0)
        rc = bc_stats_decode(zmq_msg_data(&body), zmq_msg_size(&body), out);
    zmq_msg_close(&word);
    zmq_msg_close(&body);
    zmq_close(dealer);
    return rc;
}

//  Returns 0 once `nodes` are cached, -1 otherwise.
int bc_wait_cached(void *ctx, const char *service, int nodes, int timeout_ms)
{
    int64_t deadline = bc_now_ns() + (int64_t)timeout_ms * 1000000;
    bc_stats_t stats;
    while (bc_broker_stats(ctx, service, 10000, &stats) == 0 && stats.refused == 0 &&
           bc_now_ns() < deadline) {
        if (stats.cache_nodes >= (uint64_t)nodes)
            return 0;
        usleep(2000);
    }
    return -1;
}

//  Returns 0 after sending one create per node, -1 on failure.
int bc_fill(void *ctx, const char *prog, const char *frontend, const char *service, int nodes,
            int per_host, int step, int timeout_ms, uint8_t last_instance[16])
{
    void *sock = zmq_socket(ctx, ZMQ_XPUB);
    int one = 1, linger = 10000, timeout = 10000;
    zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &one, sizeof(one));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    char subscription[64];
    if (zmq_connect(sock, frontend) != 0 ||
        zmq_recv(sock, subscription, sizeof(subscription), 0) < 1) {
        fprintf(stderr, "%s: the broker's subscription did not arrive\n", prog);
        zmq_close(sock);
        return -1;
    }
    hvn_encoder_t *encoder = hvn_encoder_new();
    int rc = encoder ? 0 : -1;
    uint8_t instance[16];
    uint64_t seq = 0;
    for (int i = 0; i < nodes && rc == 0; i++) {
        if (i > 0 && i % step == 0 && bc_wait_cached(ctx, service, i - step, timeout_ms) != 0) {
            fprintf(stderr, "%s: the broker's cache did not catch up with %d nodes\n", prog,
                    i - step);
            rc = -1;
        }
        char host[32];
        snprintf(host, sizeof(host), "bench-h%03d", i / per_host);
        if (i % per_host == 0) {
            hvn_uuid4_raw(instance); //  One publisher instance per host
            seq = 0;
        }
        hvn_node_t node;
        bc_node(&node, i, host);
        hvn_envelope_t env = {.host = host};
        hvn_header_t header = {
            .version = HVN_WIRE_VERSION, .kind = HVN_KIND_NOTIFICATION, .seq = ++seq};
        memcpy(header.instance, instance, 16);
        hvn_frames_t f;
        if (hvn_encoder_notification(encoder, HVN_EVENT_CREATE, &env, &node, &header, &f) != 0 ||
            zmq_send(sock, f.topic, f.topic_size, ZMQ_SNDMORE) < 0 ||
            zmq_send(sock, f.header, HVN_HEADER_SIZE, ZMQ_SNDMORE) < 0 ||
            zmq_send(sock, f.body, f.body_size, 0) < 0)
            rc = -1;
    }
    if (last_instance && nodes > 0)
        memcpy(last_instance, instance, 16);
    hvn_encoder_destroy(&encoder);
    zmq_close(sock);
    return rc;
}

//  Returns nothing; one more message counted.
void bc_count_item(const hvn_msg_t *msg, void *arg)
{
    (void)msg;
    (*(long *)arg)++;
}

//  Returns 0 with the reply read up to its END, -1 when none came.
int bc_ask(void *ctx, const char *service, const char *const *request, int timeout_ms,
           bc_reply_t *out)
{
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_setsockopt(dealer, ZMQ_RCVHWM, &zero, sizeof(zero));
    *out = (bc_reply_t){0, 0, 0};
    bool end = false;
    if (zmq_connect(dealer, service) == 0) {
        int64_t start = bc_now_ns();
        for (size_t i = 0; request[i]; i++)
            zmq_send(dealer, request[i], strlen(request[i]), request[i + 1] ? ZMQ_SNDMORE : 0);
        zmq_msg_t part;
        zmq_msg_init(&part);
        bool first = true, last = false;
        while (zmq_msg_recv(&part, dealer, 0) >= 0) {
            out->bytes += (long)zmq_msg_size(&part);
            if (first) {
                const char *word = zmq_msg_data(&part);
                size_t size = zmq_msg_size(&part);
                out->items += hvn_service_is(word, size, HVN_SERVICE_ITEM);
                end = hvn_service_is(word, size, HVN_SERVICE_END);
                last = !hvn_service_is(word, size, HVN_SERVICE_ITEM);
            }
            first = !zmq_msg_more(&part);
            if (last && first)
                break;
        }
        zmq_msg_close(&part);
        out->seconds = (double)(bc_now_ns() - start) / 1e9;
    }
    zmq_close(dealer);
    return end ? 0 : -1;
}

//  Returns 0 with the broker answering STATS, -1 otherwise.
int bc_broker_start(bc_broker_t *broker, const char *prog, const char *name, void *ctx,
                    const char *const *extra)
{
    memset(broker, 0, sizeof(*broker));
    broker->pid = -1;
    snprintf(broker->dir, sizeof(broker->dir), "/tmp/hvn-bench-%s-XXXXXX", name);
    if (!mkdtemp(broker->dir)) {
        fprintf(stderr, "%s: mkdtemp: %s\n", prog, strerror(errno));
        broker->dir[0] = '\0';
        return -1;
    }
    snprintf(broker->frontend, sizeof(broker->frontend), "ipc://%s/fe", broker->dir);
    snprintf(broker->backend, sizeof(broker->backend), "ipc://%s/be", broker->dir);
    snprintf(broker->service, sizeof(broker->service), "ipc://%s/svc", broker->dir);
    const char *args[32] = {"--frontend", broker->frontend, "--backend", broker->backend,
                            "--service",  broker->service,  "--name",    "bench"};
    int argc = 8;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        args[argc++] = extra[i];
    args[argc] = NULL;
    broker->pid = bc_spawn("hvn-broker", args);
    bc_stats_t stats;
    if (broker->pid < 0 || bc_broker_stats(ctx, broker->service, 10000, &stats) != 0) {
        fprintf(stderr, "%s: the broker did not answer STATS\n", prog);
        return -1;
    }
    return 0;
}

//  Returns nothing; the broker is stopped and its directory gone.
void bc_broker_stop(bc_broker_t *broker, const char *prog)
{
    bc_stop(broker->pid, SIGTERM, 10000, NULL);
    broker->pid = -1;
    if (!broker->dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", broker->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "%s: could not remove %s\n", prog, broker->dir);
    broker->dir[0] = '\0';
}
