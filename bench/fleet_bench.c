/*  fleet_bench.c — a fleet of hypervisor hosts on one hvn-broker: how long
    until the broker's cache is whole after they join, and again after the
    broker is killed (SIGKILL) and started again; the broker's RSS and CPU.

    Each simulated host is what PROTOCOL.md makes a publisher: one XPUB
    (ZMQ_XPUB_VERBOSE, ZMQ_IMMEDIATE) with one TCP connection to the
    broker's frontend and one node. When the broker's subscription arrives
    it sends its node's compute_node.create (kind 1, seq 1) the first time,
    the same frames as a sync (kind 3) every later time, then a heartbeat
    listing the node; every 10 s a heartbeat. Its reconnect interval is the
    publisher library's (hvn_redial_reconnect_ivl), or a fixed one
    (--reconnect-ivl). With --curve every host has a key of its own, its
    certificate naming its host as hvn-keygen's do.

    The hosts live in worker processes (this program again, with --worker),
    at most --per-process each: a host costs two file descriptors in its
    process (the socket's mailbox and its connection) and one in the
    broker's. The controller raises RLIMIT_NOFILE's soft limit to the hard
    one (as root, the hard one too when the broker needs more) and children
    inherit it.

    One case: start the broker, start the workers and let them build their
    sockets, then connect every host at once; poll STATS every 10 ms until
    cache_nodes is the fleet (the join). Wait a second, SIGKILL the broker,
    wait until it is gone (the kernel closes its connections, which takes
    seconds at 10 000: timed apart) and start it again on the same ports;
    poll until whole again (the restart, timed from the new start). The
    kernel's count of connections dropped at a full listen queue
    (TcpExt ListenOverflows, machine-wide) is read around each. A case's row gives the time until
   whole (and until 50 % and 99 % of it), the broker's CPU and its RSS; the RSS growth over the join
   divided by the hosts is the memory per connected host (its cache entry included, which STATS's
   cache_bytes gives apart).

    The baseline (--baseline) is the same case with libzmq's defaults: the
    broker's listen backlog 100 (--listen-backlog 100) and every host's
    reconnect interval 100 ms, libzmq's own jitter only.
*/
#include "bench_common.h"

#include <hvn_redial.h>

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define S_SIZES_MAX 8          //  Fleet sizes in one run
#define S_RUNS_MAX 9           //  Runs per case
#define S_WORKERS_MAX 64       //  Worker processes
#define S_PER_PROCESS 2500     //  Default hosts per worker
#define S_FD_SPARE 64          //  Descriptors a process needs besides its hosts'
#define S_POLL_MS 10           //  STATS polling interval
#define S_STATS_TIMEOUT_MS 250 //  One STATS request's wait
#define S_SETTLE_MS 1000       //  Pause between the join and the kill
#define S_SWEEP_MS 1000        //  Worker: every host's socket looked at
#define S_HEARTBEAT_MS 10000   //  A host's heartbeat interval
#define S_BASELINE_BACKLOG 100 //  libzmq's default ZMQ_BACKLOG
#define S_BASELINE_IVL 100     //  libzmq's default ZMQ_RECONNECT_IVL
#define S_HOST_FORMAT "fleet-%05d"

//  One message's frames, owned
typedef struct {
    char *topic;                     //  Frame 0
    size_t topic_size;               //  Its bytes
    uint8_t header[HVN_HEADER_SIZE]; //  Frame 1
    uint8_t *body;                   //  Frame 2
    size_t body_size;                //  Its bytes
} s_frames_t;

// --------------------------------------------------------------------------
//  The worker: a slice of the fleet in one process

//  One simulated host
typedef struct {
    void *sock;           //  Its XPUB
    bool announced;       //  Its create went out (later: syncs)
    int64_t heartbeat_at; //  Monotonic ns of its next heartbeat; 0 = none yet
    s_frames_t note;      //  Its node's create (kind rewritten for a sync)
    s_frames_t beat;      //  Its heartbeat
} s_host_t;

//  Returns 0 with frames copied into out, -1 when out of memory.
static int s_frames_copy(const hvn_frames_t *frames, s_frames_t *out)
{
    out->topic = malloc(frames->topic_size);
    out->body = malloc(frames->body_size);
    if (!out->topic || !out->body)
        return -1;
    memcpy(out->topic, frames->topic, frames->topic_size);
    out->topic_size = frames->topic_size;
    memcpy(out->header, frames->header, HVN_HEADER_SIZE);
    memcpy(out->body, frames->body, frames->body_size);
    out->body_size = frames->body_size;
    return 0;
}

//  Returns 0 after sending the three frames without waiting, -1 when the
//  socket refused them.
static int s_frames_send(void *sock, const s_frames_t *f)
{
    return zmq_send(sock, f->topic, f->topic_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                   zmq_send(sock, f->header, HVN_HEADER_SIZE, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                   zmq_send(sock, f->body, f->body_size, ZMQ_DONTWAIT) < 0
               ? -1
               : 0;
}

//  Returns 0 with host number g's messages encoded into h, -1 on failure.
static int s_host_encode(hvn_encoder_t *encoder, int g, s_host_t *h)
{
    char name[32];
    snprintf(name, sizeof(name), S_HOST_FORMAT, g);
    hvn_node_t node;
    bc_node(&node, g, name);
    hvn_envelope_t env = {.host = name};
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_NOTIFICATION, .seq = 1};
    hvn_uuid4_raw(header.instance);
    hvn_frames_t frames;
    if (hvn_encoder_notification(encoder, HVN_EVENT_CREATE, &env, &node, &header, &frames) != 0 ||
        s_frames_copy(&frames, &h->note) != 0)
        return -1;
    const char *uuids[1] = {node.uuid};
    if (hvn_encoder_heartbeat(encoder, &env, S_HEARTBEAT_MS, uuids, 1, &header, &frames) != 0 ||
        s_frames_copy(&frames, &h->beat) != 0)
        return -1;
    return 0;
}

//  Returns 0 with the host's CURVE keys set on its socket (its secret
//  certificate from dir, the broker's public key), -1 on failure.
static int s_host_curve(void *sock, int g, const char *dir, const uint8_t server[32])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" S_HOST_FORMAT ".cert_secret", dir, g);
    zcert_t *cert = zcert_load(path);
    if (!cert)
        return -1;
    int rc = zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key(cert), 32) |
             zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(cert), 32) |
             zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, 32);
    zcert_destroy(&cert);
    return rc == 0 ? 0 : -1;
}

//  Returns nothing; reads every subscription message waiting on host h
//  and, when the broker subscribed, sends its node (create the first
//  time, sync after) and a heartbeat. Counts into *subs and *sends.
static void s_host_service(s_host_t *h, uint64_t *subs, uint64_t *sends)
{
    bool again = true;
    while (again) {
        again = false;
        bool subscribed = false;
        uint32_t events = 0;
        size_t size = sizeof(events);
        while (zmq_getsockopt(h->sock, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN)) {
            uint8_t data[256];
            int n = zmq_recv(h->sock, data, sizeof(data), ZMQ_DONTWAIT);
            if (n >= 1 && data[0] == 1)
                subscribed = true;
        }
        if (!subscribed)
            break;
        (*subs)++;
        h->note.header[1] = h->announced ? HVN_KIND_SYNC : HVN_KIND_NOTIFICATION;
        if (s_frames_send(h->sock, &h->note) == 0 && s_frames_send(h->sock, &h->beat) == 0) {
            h->announced = true;
            (*sends)++;
        }
        h->heartbeat_at = bc_now_ns() + (int64_t)S_HEARTBEAT_MS * 1000000;
        again = true; //  A send may have taken the socket's wake-up
    }
}

//  Returns the worker's exit status. argv: FIRST COUNT FRONTEND IVL
//  [SERVER_KEY SECRETS_DIR]. Builds COUNT hosts (numbers FIRST...), says
//  "R" on stdout, connects them all when stdin says "G", serves them until
//  stdin closes, then says "D <subscriptions> <sends>" and exits.
static int s_worker(int argc, char **argv)
{
    if (argc != 4 && argc != 6)
        return 2;
    int first = atoi(argv[0]), count = atoi(argv[1]), ivl = atoi(argv[3]);
    const char *frontend = argv[2];
    uint8_t server[32];
    bool curve = argc == 6;
    if (count < 1 || (curve && !zmq_z85_decode(server, argv[4])))
        return 2;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if ((rlim_t)count * 2 + S_FD_SPARE > limit.rlim_cur) {
        fprintf(stderr, "bench_fleet: worker: %d hosts need %d descriptors, limit %llu\n", count,
                count * 2 + S_FD_SPARE, (unsigned long long)limit.rlim_cur);
        return 1;
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, count + 16);
    s_host_t *hosts = calloc((size_t)count, sizeof(*hosts));
    hvn_encoder_t *encoder = hvn_encoder_new();
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    int zero = 0, one = 1;
    for (int i = 0; i < count; i++) {
        s_host_t *h = &hosts[i];
        h->sock = zmq_socket(ctx, ZMQ_XPUB);
        int fd = -1;
        size_t fd_size = sizeof(fd);
        if (!h->sock || s_host_encode(encoder, first + i, h) != 0 ||
            (curve && s_host_curve(h->sock, first + i, argv[5], server) != 0) ||
            zmq_getsockopt(h->sock, ZMQ_FD, &fd, &fd_size) != 0) {
            fprintf(stderr, "bench_fleet: worker: cannot build host %d: %s\n", first + i,
                    zmq_strerror(errno));
            return 1;
        }
        zmq_setsockopt(h->sock, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
        zmq_setsockopt(h->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
        zmq_setsockopt(h->sock, ZMQ_LINGER, &zero, sizeof(zero));
        int reconnect = ivl > 0 ? ivl : hvn_redial_reconnect_ivl();
        zmq_setsockopt(h->sock, ZMQ_RECONNECT_IVL, &reconnect, sizeof(reconnect));
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    hvn_encoder_destroy(&encoder);
    if (write(1, "R\n", 2) != 2)
        return 1;
    char go = 0;
    if (read(0, &go, 1) != 1 || go != 'G')
        return 1;
    for (int i = 0; i < count; i++)
        if (zmq_connect(hosts[i].sock, frontend) != 0)
            return 1;

    uint64_t subs = 0, sends = 0;
    int64_t sweep_at = bc_now_ns() + (int64_t)S_SWEEP_MS * 1000000;
    bool running = true;
    while (running) {
        struct epoll_event events[256];
        int64_t now = bc_now_ns();
        int wait = sweep_at > now ? (int)((sweep_at - now) / 1000000) + 1 : 0;
        int n = epoll_wait(ep, events, 256, wait);
        for (int k = 0; k < n; k++) {
            if (events[k].data.u32 == UINT32_MAX) {
                char buf[16];
                if (read(0, buf, sizeof(buf)) <= 0)
                    running = false;
            } else
                s_host_service(&hosts[events[k].data.u32], &subs, &sends);
        }
        now = bc_now_ns();
        if (now < sweep_at)
            continue;
        //  A wake-up taken by a send, and the heartbeats that are due
        for (int i = 0; i < count; i++) {
            s_host_t *h = &hosts[i];
            s_host_service(h, &subs, &sends);
            if (h->heartbeat_at && now >= h->heartbeat_at) {
                s_frames_send(h->sock, &h->beat);
                h->heartbeat_at = now + (int64_t)S_HEARTBEAT_MS * 1000000;
            }
        }
        sweep_at = now + (int64_t)S_SWEEP_MS * 1000000;
    }
    char line[64];
    int len = snprintf(line, sizeof(line), "D %llu %llu\n", (unsigned long long)subs,
                       (unsigned long long)sends);
    if (write(1, line, (size_t)len) != len)
        return 1;
    for (int i = 0; i < count; i++) {
        zmq_close(hosts[i].sock);
        free(hosts[i].note.topic);
        free(hosts[i].note.body);
        free(hosts[i].beat.topic);
        free(hosts[i].beat.body);
    }
    free(hosts);
    close(ep);
    zmq_ctx_term(ctx);
    return 0;
}

// --------------------------------------------------------------------------
//  The controller: workers

//  One worker process
typedef struct {
    pid_t pid;   //  Its process
    int control; //  Its stdin: "G" starts it, closing stops it
    int result;  //  Its stdout
} s_worker_t;

//  Returns 0 with a worker started for hosts first..first+count-1, -1.
static int s_worker_start(s_worker_t *w, int first, int count, const char *frontend, int ivl,
                          const char *server_key, const char *secrets)
{
    //  Close-on-exec: a later worker or the broker holding this worker's
    //  stdin open would keep it from seeing the end of it
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    char path[4200], a_first[16], a_count[16], a_ivl[16];
    snprintf(path, sizeof(path), "%s/bench_fleet", bc_bin_dir());
    snprintf(a_first, sizeof(a_first), "%d", first);
    snprintf(a_count, sizeof(a_count), "%d", count);
    snprintf(a_ivl, sizeof(a_ivl), "%d", ivl);
    w->pid = fork();
    if (w->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        const char *argv[] = {path,  "--worker", a_first, a_count, frontend,
                              a_ivl, server_key, secrets, NULL};
        if (!server_key)
            argv[6] = NULL;
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    w->control = in[1];
    w->result = out[0];
    if (w->pid < 0) {
        close(w->control);
        close(w->result);
        return -1;
    }
    return 0;
}

//  Returns 0 when the worker's next line (read within timeout_ms) starts
//  with `word`, copying the line into line; -1 otherwise.
static int s_worker_line(s_worker_t *w, char word, char *line, size_t size, int timeout_ms)
{
    size_t at = 0;
    int64_t deadline = bc_now_ns() + (int64_t)timeout_ms * 1000000;
    while (at + 1 < size) {
        int64_t left = (deadline - bc_now_ns()) / 1000000;
        struct pollfd p = {.fd = w->result, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1 || read(w->result, line + at, 1) != 1)
            return -1;
        if (line[at] == '\n')
            break;
        at++;
    }
    line[at] = 0;
    return line[0] == word ? 0 : -1;
}

//  Returns 0 when the worker, stopped (stdin closed, then killed when it
//  has not ended within 10 s), reported and exited 0; -1 otherwise (logged).
//  Its subscriptions and sends are added to *subs and *sends, its CPU
//  seconds to *cpu_s.
static int s_worker_stop(s_worker_t *w, uint64_t *subs, uint64_t *sends, double *cpu_s)
{
    if (w->pid <= 0)
        return 0;
    close(w->control);
    char line[64];
    unsigned long long s = 0, d = 0;
    bool reported = s_worker_line(w, 'D', line, sizeof(line), 10000) == 0 &&
                    sscanf(line, "D %llu %llu", &s, &d) == 2;
    *subs += s;
    *sends += d;
    double cpu = 0;
    int status = bc_stop(w->pid, 0, 10000, &cpu);
    *cpu_s += cpu;
    close(w->result);
    w->pid = 0;
    if (reported && status == 0)
        return 0;
    fprintf(stderr, "bench_fleet: a worker %s (wait status %d)\n",
            reported ? "did not exit cleanly" : "did not report", status);
    return -1;
}

// --------------------------------------------------------------------------
//  The controller: the broker

//  What a case needs to know about the fleet and its keys
typedef struct {
    int hosts;           //  Fleet size
    int per_process;     //  Hosts per worker
    long backlog;        //  --listen-backlog; 0 = the broker's default
    int ivl;             //  Hosts' reconnect interval; 0 = the library's
    bool curve;          //  CURVE on
    const char *dir;     //  Temporary directory (certificates)
    const char *broker;  //  hvn-broker's path
    int timeout_s;       //  Longest wait for a whole cache
    char server_key[41]; //  CURVE: broker's public key, Z85
    zcert_t *client;     //  CURVE: the STATS client's certificate
} s_fleet_t;

//  One case's measurements
typedef struct {
    double join_s, join50_s, join99_s;          //  Whole (50 %, 99 %) after the join
    double restart_s, restart50_s, restart99_s; //  Same after the restart
    double up_s;                                //  Restart: first STATS answer
    double dead_s;                              //  Kill until the old broker was gone
    double overflows_join, overflows_restart;   //  SYNs the listen queues dropped
    double cpu_join_s, cpu_restart_s;           //  Broker CPU over each
    long rss_idle, rss_join, rss_restart;       //  Broker RSS, KiB
    double cache_bytes;                         //  STATS cache_bytes after the join
    double workers_cpu_s;                       //  Every worker's CPU
    uint64_t subs, sends;                       //  Workers' subscriptions seen, nodes sent
} s_result_t;

//  Returns the user + system CPU seconds pid has used so far, or -1.
static double s_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "r");
    if (!file)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, file);
    fclose(file);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

//  Returns the kernel's count of connections dropped because a listen
//  queue was full (TcpExt ListenOverflows, the whole machine's), or 0.
static uint64_t s_listen_overflows(void)
{
    FILE *file = fopen("/proc/net/netstat", "r");
    if (!file)
        return 0;
    char names[4096], values[4096];
    uint64_t found = 0;
    while (fgets(names, sizeof(names), file) && fgets(values, sizeof(values), file)) {
        if (strncmp(names, "TcpExt:", 7) != 0)
            continue;
        char *sn = NULL, *sv = NULL;
        char *n = strtok_r(names, " \n", &sn), *v = strtok_r(values, " \n", &sv);
        for (; n && v; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
            if (strcmp(n, "ListenOverflows") == 0)
                found = strtoull(v, NULL, 10);
    }
    fclose(file);
    return found;
}

//  Returns a DEALER of ctx connected to service (a CURVE client with the
//  fleet's keys), or NULL.
static void *s_stats_open(void *ctx, const s_fleet_t *fleet, const char *service)
{
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, ivl = 10;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    if (fleet->curve) {
        zcert_apply(fleet->client, dealer);
        zmq_setsockopt(dealer, ZMQ_CURVE_SERVERKEY, fleet->server_key, 40);
    }
    if (zmq_connect(dealer, service) != 0) {
        zmq_close(dealer);
        return NULL;
    }
    return dealer;
}

//  Returns 0 with the cached nodes, bytes and refusals of a STATS reply
//  read from dealer within wait_ms, 1 when none came yet, -1 on a
//  malformed one. A request is sent only when none is pending: under a
//  storm of handshakes a reply may take seconds, and the DEALER is kept
//  (a new one would wait behind every host's handshake for its own).
static int s_stats(void *dealer, bool *pending, int wait_ms, bc_stats_t *out)
{
    if (!*pending && zmq_send(dealer, "STATS", 5, ZMQ_DONTWAIT) == 5)
        *pending = true;
    zmq_pollitem_t item = {.socket = dealer, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, wait_ms) != 1)
        return 1;
    zmq_msg_t word, body;
    zmq_msg_init(&word);
    zmq_msg_init(&body);
    int rc = -1;
    if (zmq_msg_recv(&word, dealer, 0) >= 0 && zmq_msg_more(&word) &&
        zmq_msg_recv(&body, dealer, 0) >= 0) {
        *pending = false;
        rc = bc_stats_decode(zmq_msg_data(&body), zmq_msg_size(&body), out);
    }
    zmq_msg_close(&word);
    zmq_msg_close(&body);
    return rc;
}

//  Returns the broker's pid, started with the fleet's options on the
//  three endpoints, or -1.
static pid_t s_broker_start(const s_fleet_t *fleet, char endpoints[3][64])
{
    char backlog[24], secret[4200], pubs[4200], subs[4200];
    snprintf(backlog, sizeof(backlog), "%ld", fleet->backlog);
    snprintf(secret, sizeof(secret), "%s/broker.cert_secret", fleet->dir);
    snprintf(pubs, sizeof(pubs), "%s/publishers", fleet->dir);
    snprintf(subs, sizeof(subs), "%s/subscribers", fleet->dir);
    const char *args[20] = {"--frontend", endpoints[0], "--backend", endpoints[1],
                            "--service",  endpoints[2], "--name",    "fleet"};
    int n = 8;
    if (fleet->backlog > 0) {
        args[n++] = "--listen-backlog";
        args[n++] = backlog;
    }
    if (fleet->curve) {
        args[n++] = "--curve-secret";
        args[n++] = secret;
        args[n++] = "--publishers-dir";
        args[n++] = pubs;
        args[n++] = "--subscribers-dir";
        args[n++] = subs;
    }
    args[n] = NULL;
    return bc_spawn(fleet->broker, args);
}

//  Returns 0 once STATS says every host's node is cached, -1 after the
//  timeout, a refusal or the broker's end. *whole_s, *p50_s, *p99_s get
//  the seconds since start_ns at which all, half and 99 % were cached;
//  *up_s (when not NULL) when STATS first answered.
static int s_wait_whole(void *dealer, const s_fleet_t *fleet, pid_t broker, int64_t start_ns,
                        double *whole_s, double *p50_s, double *p99_s, double *up_s,
                        bc_stats_t *last)
{
    int64_t deadline = start_ns + (int64_t)fleet->timeout_s * 1000000000;
    uint64_t half = (uint64_t)fleet->hosts / 2, most = (uint64_t)fleet->hosts * 99 / 100;
    *p50_s = *p99_s = -1;
    int rc = -1, code;
    bool up = false, pending = false;
    while (bc_now_ns() < deadline && !bc_ended(broker, &code)) {
        bc_stats_t stats;
        int got = s_stats(dealer, &pending, S_POLL_MS, &stats);
        if (got < 0)
            break;
        if (got > 0)
            continue;
        double t = (double)(bc_now_ns() - start_ns) / 1e9;
        if (!up && up_s)
            *up_s = t;
        up = true;
        *last = stats;
        if (*p50_s < 0 && stats.cache_nodes >= half)
            *p50_s = t;
        if (*p99_s < 0 && stats.cache_nodes >= most)
            *p99_s = t;
        if (stats.refused) {
            fprintf(stderr, "bench_fleet: the broker refused %llu messages\n",
                    (unsigned long long)stats.refused);
            break;
        }
        if (stats.cache_nodes >= (uint64_t)fleet->hosts) {
            *whole_s = t;
            rc = 0;
            break;
        }
        usleep(S_POLL_MS * 1000);
    }
    if (rc != 0)
        fprintf(stderr, "bench_fleet: %d hosts: the cache held %llu nodes after %d s\n",
                fleet->hosts, (unsigned long long)last->cache_nodes, fleet->timeout_s);
    return rc;
}

//  Returns 0 with one case measured into *r, -1 on failure (logged).
static int s_case(const s_fleet_t *fleet, s_result_t *r)
{
    memset(r, 0, sizeof(*r));
    char endpoints[3][64];
    for (int i = 0; i < 3; i++)
        snprintf(endpoints[i], sizeof(endpoints[i]), "tcp://127.0.0.1:%d", it_port_free());
    void *ctx = zmq_ctx_new();
    int nworkers = (fleet->hosts + fleet->per_process - 1) / fleet->per_process;
    s_worker_t workers[S_WORKERS_MAX] = {{0}};
    int rc = -1;
    bc_stats_t stats = {0};
    char secrets[4200];
    snprintf(secrets, sizeof(secrets), "%s/secrets", fleet->dir);
    pid_t broker = s_broker_start(fleet, endpoints);
    void *dealer = s_stats_open(ctx, fleet, endpoints[2]);
    s_fleet_t none = *fleet; //  Whole at once: waits for the first answer
    none.hosts = 0;
    none.timeout_s = 30;
    double ignored;
    if (broker < 0 || !dealer ||
        s_wait_whole(dealer, &none, broker, bc_now_ns(), &ignored, &ignored, &ignored, NULL,
                     &stats) != 0) {
        fprintf(stderr, "bench_fleet: the broker did not answer STATS\n");
        goto done;
    }
    r->rss_idle = bc_rss_kib(broker);
    for (int w = 0; w < nworkers; w++) {
        int first = w * fleet->per_process;
        int count =
            fleet->hosts - first < fleet->per_process ? fleet->hosts - first : fleet->per_process;
        char line[16];
        if (s_worker_start(&workers[w], first, count, endpoints[0], fleet->ivl,
                           fleet->curve ? fleet->server_key : NULL, secrets) != 0 ||
            s_worker_line(&workers[w], 'R', line, sizeof(line), 120000) != 0) {
            fprintf(stderr, "bench_fleet: worker %d did not start\n", w);
            goto done;
        }
    }
    double cpu0 = s_cpu_s(broker);
    uint64_t overflows = s_listen_overflows();
    int64_t start = bc_now_ns();
    for (int w = 0; w < nworkers; w++)
        if (write(workers[w].control, "G", 1) != 1)
            goto done;
    if (s_wait_whole(dealer, fleet, broker, start, &r->join_s, &r->join50_s, &r->join99_s, NULL,
                     &stats) != 0)
        goto done;
    r->overflows_join = (double)(s_listen_overflows() - overflows);
    r->cpu_join_s = s_cpu_s(broker) - cpu0;
    r->rss_join = bc_rss_kib(broker);
    r->cache_bytes = (double)stats.cache_bytes;

    usleep(S_SETTLE_MS * 1000);
    overflows = s_listen_overflows();
    start = bc_now_ns();
    bc_stop(broker, SIGKILL, 10000, NULL);
    //  The restart is timed from the new broker's start: the kernel's
    //  teardown of the old one's connections and memory is apart
    r->dead_s = (double)(bc_now_ns() - start) / 1e9;
    zmq_close(dealer);
    start = bc_now_ns();
    broker = s_broker_start(fleet, endpoints);
    dealer = s_stats_open(ctx, fleet, endpoints[2]);
    if (broker < 0 || !dealer ||
        s_wait_whole(dealer, fleet, broker, start, &r->restart_s, &r->restart50_s, &r->restart99_s,
                     &r->up_s, &stats) != 0)
        goto done;
    r->overflows_restart = (double)(s_listen_overflows() - overflows);
    r->cpu_restart_s = s_cpu_s(broker);
    r->rss_restart = bc_rss_kib(broker);
    rc = 0;
done:
    for (int w = 0; w < nworkers; w++)
        if (s_worker_stop(&workers[w], &r->subs, &r->sends, &r->workers_cpu_s) != 0)
            rc = -1;
    if (broker > 0)
        bc_stop(broker, SIGTERM, 10000, NULL);
    if (dealer)
        zmq_close(dealer);
    zmq_ctx_term(ctx);
    return rc;
}

// --------------------------------------------------------------------------
//  The controller: keys, limits, the table

//  Returns 0 with a certificate pair written as path (public) and
//  path_secret, with metadata role (and host when not NULL), -1.
static int s_cert_write(const char *path, const char *role, const char *host, zcert_t **keep)
{
    zcert_t *cert = zcert_new();
    if (!cert)
        return -1;
    zcert_set_meta(cert, "role", "%s", role);
    if (host)
        zcert_set_meta(cert, "host", "%s", host);
    int rc = zcert_save(cert, path);
    if (keep)
        *keep = cert;
    else
        zcert_destroy(&cert);
    return rc;
}

//  Returns 0 with the fleet's certificates in fleet->dir: the broker's,
//  one per host (public in publishers/, secret in secrets/) and the STATS
//  client's (public in subscribers/); -1.
static int s_certs_make(s_fleet_t *fleet, int hosts)
{
    char path[4200], pub[4200], sec[4200];
    const char *subdirs[] = {"publishers", "subscribers", "secrets"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", fleet->dir, subdirs[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
    }
    zcert_t *broker = NULL;
    snprintf(path, sizeof(path), "%s/broker.cert", fleet->dir);
    if (s_cert_write(path, "broker", NULL, &broker) != 0)
        return -1;
    snprintf(fleet->server_key, sizeof(fleet->server_key), "%s", zcert_public_txt(broker));
    zcert_destroy(&broker);
    snprintf(path, sizeof(path), "%s/subscribers/bench.cert", fleet->dir);
    if (s_cert_write(path, "subscriber", NULL, &fleet->client) != 0)
        return -1;
    //  The STATS client's secret stays in memory; only its public part is
    //  the broker's business
    snprintf(path, sizeof(path), "%s/subscribers/bench.cert_secret", fleet->dir);
    unlink(path);
    for (int g = 0; g < hosts; g++) {
        char host[32];
        snprintf(host, sizeof(host), S_HOST_FORMAT, g);
        snprintf(path, sizeof(path), "%s/secrets/%s.cert", fleet->dir, host);
        snprintf(pub, sizeof(pub), "%s/publishers/%s.cert", fleet->dir, host);
        snprintf(sec, sizeof(sec), "%s/secrets/%s.cert_secret", fleet->dir, host);
        if (s_cert_write(path, "publisher", host, NULL) != 0 || rename(path, pub) != 0)
            return -1;
    }
    return 0;
}

//  Returns 0 when the soft limit on open files could be raised to cover
//  `needed` (to the hard limit, and past it when allowed), -1.
static int s_fd_limit(rlim_t needed)
{
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < needed) {
        struct rlimit more = {needed, needed};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return 0;
    }
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur >= needed ? 0 : -1;
}

//  Returns the median of field `off` (a double) over n results.
static double s_median_at(const s_result_t *results, int n, size_t off)
{
    double v[S_RUNS_MAX];
    for (int i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&results[i] + off);
    return bc_median(v, n);
}

#define S_MED(res, n, field) s_median_at(res, n, offsetof(s_result_t, field))

//  Returns the median RSS (KiB) of field `off` (a long) over n results.
static double s_median_rss(const s_result_t *results, int n, size_t off)
{
    double v[S_RUNS_MAX];
    for (int i = 0; i < n; i++)
        v[i] = (double)*(const long *)((const char *)&results[i] + off);
    return bc_median(v, n);
}

//  Returns nothing; prints a cell's text of one figure, its 50 % and 99 %.
static void s_cell_times(char *out, size_t size, const s_result_t *res, int n, size_t whole,
                         size_t p50, size_t p99)
{
    if (n == 0) {
        snprintf(out, size, "–");
        return;
    }
    snprintf(out, size, "%.2f (%.2f / %.2f)", s_median_at(res, n, whole), s_median_at(res, n, p50),
             s_median_at(res, n, p99));
}

//  Returns nothing; prints the rows of one fleet size and mode.
static void s_rows(int hosts, bool curve, const s_result_t *res, int n, const s_result_t *base,
                   int nb, bool baseline)
{
    const char *mode = curve ? "CURVE" : "plain";
    double target = curve ? 5.0 : 3.0;
    char a[96], b[96], ratio[32] = "";
    s_cell_times(a, sizeof(a), res, n, offsetof(s_result_t, join_s), offsetof(s_result_t, join50_s),
                 offsetof(s_result_t, join99_s));
    s_cell_times(b, sizeof(b), base, nb, offsetof(s_result_t, join_s),
                 offsetof(s_result_t, join50_s), offsetof(s_result_t, join99_s));
    if (n && nb)
        snprintf(ratio, sizeof(ratio), "%.2f", S_MED(res, n, join_s) / S_MED(base, nb, join_s));
    printf("| fleet of %d, %s: cache whole after the join, s (50 %% / 99 %%) | %s | %s | %s | | "
           "|\n",
           hosts, mode, a, baseline ? b : "", ratio);
    s_cell_times(a, sizeof(a), res, n, offsetof(s_result_t, restart_s),
                 offsetof(s_result_t, restart50_s), offsetof(s_result_t, restart99_s));
    s_cell_times(b, sizeof(b), base, nb, offsetof(s_result_t, restart_s),
                 offsetof(s_result_t, restart50_s), offsetof(s_result_t, restart99_s));
    ratio[0] = 0;
    if (n && nb)
        snprintf(ratio, sizeof(ratio), "%.2f",
                 S_MED(res, n, restart_s) / S_MED(base, nb, restart_s));
    bool met = n && S_MED(res, n, restart_s) <= target;
    printf("| fleet of %d, %s: whole after kill -9 + restart, s from the restart (50 %% / 99 %%) | "
           "%s | %s | %s | "
           "%s | %s |\n",
           hosts, mode, a, baseline ? b : "", ratio, hosts <= 10000 ? (curve ? "≤ 5" : "≤ 3") : "",
           hosts <= 10000 ? (met ? "yes" : "no") : "");
    if (n) {
        printf("| fleet of %d, %s: kill -9 until the old broker was gone; restart until STATS "
               "answered, s | %.3f; %.3f | | | | |\n",
               hosts, mode, S_MED(res, n, dead_s), S_MED(res, n, up_s));
        char dropped[64] = "";
        if (nb)
            snprintf(dropped, sizeof(dropped), "%.0f / %.0f", S_MED(base, nb, overflows_join),
                     S_MED(base, nb, overflows_restart));
        printf("| fleet of %d, %s: connections dropped at a full listen queue, join / restart | "
               "%.0f / %.0f | %s | | | |\n",
               hosts, mode, S_MED(res, n, overflows_join), S_MED(res, n, overflows_restart),
               dropped);
        double idle = s_median_rss(res, n, offsetof(s_result_t, rss_idle));
        double join = s_median_rss(res, n, offsetof(s_result_t, rss_join));
        double restart = s_median_rss(res, n, offsetof(s_result_t, rss_restart));
        double cache = S_MED(res, n, cache_bytes);
        printf("| fleet of %d, %s: broker RSS MiB after the join (after the restart) | %.0f (%.0f) "
               "| | | | |\n",
               hosts, mode, join / 1024, restart / 1024);
        printf("| fleet of %d, %s: broker KiB per connected host: RSS growth (cache entry) | "
               "%.1f (%.1f) | | | | |\n",
               hosts, mode, (join - idle) / hosts, cache / 1024 / hosts);
        printf("| fleet of %d, %s: broker CPU s, join / restart (all workers' CPU) | %.2f / %.2f "
               "(%.1f) | | | | |\n",
               hosts, mode, S_MED(res, n, cpu_join_s), S_MED(res, n, cpu_restart_s),
               S_MED(res, n, workers_cpu_s));
    }
}

//  Returns nothing; prints how to call the program on out.
static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench_fleet [--hosts N[,N...]] [--plain] [--curve] [--runs N]\n"
            "                   [--per-process N] [--backlog N] [--reconnect-ivl MS]\n"
            "                   [--baseline] [--timeout S] [--broker PATH] [--smoke]\n"
            "  --hosts          fleet sizes (default 1000,5000,10000)\n"
            "  --plain, --curve without CURVE, with (default: both)\n"
            "  --runs           runs per case, 1..%d (default 1)\n"
            "  --per-process    hosts per worker process (default %d)\n"
            "  --backlog        the broker's --listen-backlog (default: its own)\n"
            "  --reconnect-ivl  hosts' fixed ZMQ_RECONNECT_IVL (default: the publisher\n"
            "                   library's, hvn_redial_reconnect_ivl)\n"
            "  --baseline       also run each case with libzmq's defaults (backlog %d,\n"
            "                   reconnect interval %d ms) and print the ratio\n"
            "  --timeout        longest wait for a whole cache, s (default 60)\n"
            "  --smoke          50 hosts in 2 processes, plain and CURVE: checks that the\n"
            "                   benchmark works\n",
            S_RUNS_MAX, S_PER_PROCESS, S_BASELINE_BACKLOG, S_BASELINE_IVL);
}

//  Returns the number of sizes parsed from a comma-separated list, 0 when
//  one is not a number from 1 to 100000.
static int s_sizes(const char *text, int *sizes)
{
    int n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p && n < S_SIZES_MAX;
         p = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(p, &end, 10);
        if (*end || v < 1 || v > 100000) {
            n = 0;
            break;
        }
        sizes[n++] = (int)v;
    }
    free(copy);
    return n;
}

//  Returns 0 when every case was measured, 1 when not, 2 on bad usage.
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--worker") == 0)
        return s_worker(argc - 2, argv + 2);
    int sizes[S_SIZES_MAX] = {1000, 5000, 10000}, nsizes = 3, runs = 1;
    s_fleet_t fleet = {.per_process = S_PER_PROCESS, .timeout_s = 60, .broker = "hvn-broker"};
    bool plain = false, curve = false, baseline = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--hosts") == 0 && val && (nsizes = s_sizes(val, sizes)) > 0)
            i++;
        else if (strcmp(arg, "--runs") == 0 && val && (runs = atoi(val)) >= 1 && runs <= S_RUNS_MAX)
            i++;
        else if (strcmp(arg, "--per-process") == 0 && val && (fleet.per_process = atoi(val)) >= 1)
            i++;
        else if (strcmp(arg, "--backlog") == 0 && val && (fleet.backlog = atol(val)) >= 1)
            i++;
        else if (strcmp(arg, "--reconnect-ivl") == 0 && val && (fleet.ivl = atoi(val)) >= 1)
            i++;
        else if (strcmp(arg, "--timeout") == 0 && val && (fleet.timeout_s = atoi(val)) >= 1)
            i++;
        else if (strcmp(arg, "--broker") == 0 && val) {
            fleet.broker = val;
            i++;
        } else if (strcmp(arg, "--plain") == 0)
            plain = true;
        else if (strcmp(arg, "--curve") == 0)
            curve = true;
        else if (strcmp(arg, "--baseline") == 0)
            baseline = true;
        else if (strcmp(arg, "--smoke") == 0) {
            sizes[0] = 50;
            nsizes = 1;
            fleet.per_process = 25;
            fleet.timeout_s = 20;
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (!plain && !curve)
        plain = curve = true;
    int biggest = 0;
    for (int i = 0; i < nsizes; i++)
        biggest = sizes[i] > biggest ? sizes[i] : biggest;
    if ((biggest + fleet.per_process - 1) / fleet.per_process > S_WORKERS_MAX) {
        fprintf(stderr, "bench_fleet: at most %d worker processes: raise --per-process\n",
                S_WORKERS_MAX);
        return 2;
    }
    //  The broker holds a descriptor per host, a worker two per host
    rlim_t needed = (rlim_t)biggest + S_FD_SPARE;
    if ((rlim_t)fleet.per_process * 2 + S_FD_SPARE > needed)
        needed = (rlim_t)fleet.per_process * 2 + S_FD_SPARE;
    if (s_fd_limit(needed) != 0) {
        struct rlimit limit;
        getrlimit(RLIMIT_NOFILE, &limit);
        fprintf(stderr,
                "bench_fleet: %llu open files needed (a broker of %d hosts, workers of %d), "
                "the limit is %llu: lower --hosts or --per-process\n",
                (unsigned long long)needed, biggest, fleet.per_process,
                (unsigned long long)limit.rlim_max);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/hvn-bench-fleet-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_fleet: mkdtemp");
        return 1;
    }
    fleet.dir = dir;
    int status = 0;
    if (curve) {
        int64_t t0 = bc_now_ns();
        if (s_certs_make(&fleet, biggest) != 0) {
            fprintf(stderr, "bench_fleet: cannot write certificates in %s\n", dir);
            status = 1;
            goto done;
        }
        fprintf(stderr, "bench_fleet: %d host certificates made in %.1f s\n", biggest,
                (double)(bc_now_ns() - t0) / 1e9);
    }
    for (int m = 0; m < 2; m++) {
        if ((m == 0 && !plain) || (m == 1 && !curve))
            continue;
        fleet.curve = m == 1;
        for (int s = 0; s < nsizes; s++) {
            fleet.hosts = sizes[s];
            s_result_t res[S_RUNS_MAX], base[S_RUNS_MAX];
            int n = 0, nb = 0;
            for (int r = 0; r < runs; r++) {
                //  The baseline first in odd runs: neither always meets a
                //  machine the other has just warmed or loaded
                for (int k = 0; k < (baseline ? 2 : 1); k++) {
                    bool is_base = baseline && (k + r) % 2 == 0;
                    s_fleet_t c = fleet;
                    if (is_base) {
                        c.backlog = S_BASELINE_BACKLOG;
                        c.ivl = S_BASELINE_IVL;
                    }
                    s_result_t *out = is_base ? &base[nb] : &res[n];
                    if (s_case(&c, out) == 0)
                        is_base ? nb++ : n++;
                    else
                        status = 1;
                    fprintf(stderr,
                            "bench_fleet: %d hosts, %s%s: join %.2f s, restart %.2f s (up "
                            "%.2f s), listen queue drops %.0f / %.0f, subscriptions %llu, "
                            "sends %llu\n",
                            c.hosts, c.curve ? "CURVE" : "plain", is_base ? " (baseline)" : "",
                            out->join_s, out->restart_s, out->up_s, out->overflows_join,
                            out->overflows_restart, (unsigned long long)out->subs,
                            (unsigned long long)out->sends);
                }
            }
            s_rows(fleet.hosts, fleet.curve, res, n, base, nb, baseline);
        }
    }
done:
    zcert_destroy(&fleet.client);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fleet: could not remove %s\n", dir);
    return status;
}
