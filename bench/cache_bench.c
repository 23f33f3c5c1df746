/*  cache_bench.c — a fleet of 100 000 nodes in hvn-broker's cache.

    Starts build/bin/hvn-broker, sends it one compute_node.create per node
    (100 hosts of 1 000 nodes, ~600-byte bodies) and waits until STATS says
    every node is cached. Then:

      cache bytes/node   STATS cache_bytes / cache_nodes (the heap the cache
                         holds, allocator overhead included), and the growth
                         of the broker's RSS over the fill / nodes
      snapshot           a late joiner's whole snapshot, timed from request
                         to END: through hvn_subscriber_snapshot (every item
                         validated and decoded, as an application gets it)
                         and through a bare DEALER (the transfer alone);
                         each the median of --runs

    Output: rows of the table bench/run prints.
*/
#include "bench_common.h"

#include <hvn_subscriber.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_HOSTS_MAX 1000
#define S_MAX_RUNS 15
#define S_FILL_MS 120000 //  Longest wait for the cache to fill
#define S_FILL_STEP 2000 //  Creates sent before waiting for the cache

//  Returns 0 once the broker's STATS say at least `nodes` are cached, -1
//  on a refusal, no answer or after S_FILL_MS.
static int s_wait_cached(void *ctx, const char *service, int nodes)
{
    int64_t deadline = bc_now_ns() + (int64_t)S_FILL_MS * 1000000;
    bc_stats_t stats;
    while (bc_broker_stats(ctx, service, 10000, &stats) == 0 && stats.refused == 0 &&
           bc_now_ns() < deadline) {
        if (stats.cache_nodes >= (uint64_t)nodes)
            return 0;
        usleep(2000);
    }
    return -1;
}

//  Returns 0 after sending one create per node, -1 on failure. Sends in
//  steps of S_FILL_STEP and waits for the broker's cache to catch up before
//  each next step, so that its frontend queue never holds more than a step:
//  the RSS growth is then the cache's, not a backlog's (glibc keeps freed
//  memory, and a backlog of 100 000 messages would stay in the RSS).
static int s_fill(void *ctx, const char *frontend, const char *service, int nodes, int per_host)
{
    void *sock = zmq_socket(ctx, ZMQ_XPUB);
    int one = 1, linger = 10000;
    zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &one, sizeof(one));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    int timeout = 10000;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    char subscription[64];
    if (zmq_connect(sock, frontend) != 0 ||
        zmq_recv(sock, subscription, sizeof(subscription), 0) < 1) {
        fprintf(stderr, "bench_cache: the broker's subscription did not arrive\n");
        zmq_close(sock);
        return -1;
    }
    hvn_encoder_t *encoder = hvn_encoder_new();
    int rc = 0;
    uint8_t instance[16];
    uint64_t seq = 0;
    for (int i = 0; i < nodes && rc == 0; i++) {
        if (i > 0 && i % S_FILL_STEP == 0 && s_wait_cached(ctx, service, i - S_FILL_STEP) != 0)
            rc = -1;
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
    hvn_encoder_destroy(&encoder);
    zmq_close(sock);
    return rc;
}

//  Counts snapshot items.
static void s_count_item(const hvn_msg_t *msg, void *arg)
{
    (void)msg;
    (*(long *)arg)++;
}

//  Returns the seconds a library snapshot of everything took, or -1.
static double s_snapshot_library(const char *backend, const char *service, int nodes)
{
    hvn_subscriber_opts_t opts = {.endpoint = backend, .service = service};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    if (!sub)
        return -1;
    long count = 0;
    int64_t start = bc_now_ns();
    int items = hvn_subscriber_snapshot(sub, "", s_count_item, &count, 30000);
    double seconds = (double)(bc_now_ns() - start) / 1e9;
    hvn_subscriber_destroy(&sub);
    if (items != nodes || count != nodes) {
        fprintf(stderr, "bench_cache: library snapshot gave %d items (%ld passed), not %d\n", items,
                count, nodes);
        return -1;
    }
    return seconds;
}

//  Returns the seconds a bare DEALER took to receive every ITEM and the
//  END, or -1.
static double s_snapshot_dealer(void *ctx, const char *service, int nodes)
{
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, timeout = 30000, hwm = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    zmq_setsockopt(dealer, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    double seconds = -1;
    long items = 0;
    if (zmq_connect(dealer, service) == 0) {
        int64_t start = bc_now_ns();
        zmq_send(dealer, "SNAPSHOT", 8, ZMQ_SNDMORE);
        zmq_send(dealer, "", 0, 0);
        zmq_msg_t part;
        zmq_msg_init(&part);
        bool first = true, end = false;
        while (zmq_msg_recv(&part, dealer, 0) >= 0) {
            if (first) {
                if (zmq_msg_size(&part) == 4 && memcmp(zmq_msg_data(&part), "ITEM", 4) == 0)
                    items++;
                else if (zmq_msg_size(&part) == 3 && memcmp(zmq_msg_data(&part), "END", 3) == 0)
                    end = true;
            }
            first = !zmq_msg_more(&part);
            if (end && first)
                break;
        }
        zmq_msg_close(&part);
        if (end && items == nodes)
            seconds = (double)(bc_now_ns() - start) / 1e9;
        else
            fprintf(stderr, "bench_cache: DEALER snapshot got %ld items%s\n", items,
                    end ? "" : " and no END");
    }
    zmq_close(dealer);
    return seconds;
}

//  Returns 0 when everything was measured, 1 when not, 2 on bad usage.
int main(int argc, char **argv)
{
    int nodes = 100000, runs = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--smoke") == 0) {
            nodes = 2000;
            runs = 1;
        } else {
            fprintf(stderr, "usage: bench_cache [--nodes N] [--runs N] [--smoke]\n");
            return 2;
        }
    }
    int per_host = nodes < 1000 ? nodes : 1000;
    if (nodes < 1 || nodes / per_host > S_HOSTS_MAX || runs < 1 || runs > S_MAX_RUNS) {
        fprintf(stderr, "bench_cache: --nodes 1..%d, --runs 1..%d\n", S_HOSTS_MAX * 1000,
                S_MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char dir[] = "/tmp/hvn-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_cache: mkdtemp");
        return 1;
    }
    char frontend[128], backend[128], service[128];
    snprintf(frontend, sizeof(frontend), "ipc://%s/fe", dir);
    snprintf(backend, sizeof(backend), "ipc://%s/be", dir);
    snprintf(service, sizeof(service), "ipc://%s/svc", dir);
    //  The replay ring (--ring-bytes, its own bound) is left out: this
    //  measures what the cache costs per node.
    const char *args[] = {"--frontend", frontend, "--backend",    backend, "--service", service,
                          "--name",     "bench",  "--ring-bytes", "0",     NULL};
    pid_t pid = bc_spawn("hvn-broker", args);
    void *ctx = zmq_ctx_new();
    bc_stats_t stats = {0};
    int rc = 1;
    if (pid < 0 || bc_broker_stats(ctx, service, 10000, &stats) != 0) {
        fprintf(stderr, "bench_cache: the broker did not answer STATS\n");
        goto done;
    }
    long rss_before = bc_rss_kib(pid);
    int64_t fill_start = bc_now_ns();
    if (s_fill(ctx, frontend, service, nodes, per_host) != 0)
        goto done;
    int64_t deadline = bc_now_ns() + (int64_t)S_FILL_MS * 1000000;
    while (bc_broker_stats(ctx, service, 10000, &stats) == 0 &&
           stats.cache_nodes < (uint64_t)nodes && stats.refused == 0 && bc_now_ns() < deadline)
        usleep(20000);
    double fill_s = (double)(bc_now_ns() - fill_start) / 1e9;
    if (stats.cache_nodes != (uint64_t)nodes || stats.refused) {
        fprintf(stderr, "bench_cache: cache holds %llu nodes (refused %llu), not %d\n",
                (unsigned long long)stats.cache_nodes, (unsigned long long)stats.refused, nodes);
        goto done;
    }
    long rss_after = bc_rss_kib(pid);
    double per_node = (double)stats.cache_bytes / (double)stats.cache_nodes;
    double rss_per_node = (double)(rss_after - rss_before) * 1024.0 / nodes;
    printf("| cache, %d nodes, ring off: bytes/node (STATS; RSS growth) | %.0f (RSS %.0f) | | | ≤ "
           "1024 | %s "
           "|\n",
           nodes, per_node, rss_per_node, per_node <= 1024 && rss_per_node <= 1024 ? "yes" : "no");
    double lib[S_MAX_RUNS], raw[S_MAX_RUNS];
    int nlib = 0, nraw = 0;
    for (int r = 0; r < runs; r++) {
        double s = s_snapshot_library(backend, service, nodes);
        if (s >= 0)
            lib[nlib++] = s;
        s = s_snapshot_dealer(ctx, service, nodes);
        if (s >= 0)
            raw[nraw++] = s;
    }
    double m = nlib > 0 ? bc_median(lib, nlib) : -1;
    double d = nraw > 0 ? bc_median(raw, nraw) : -1;
    printf("| snapshot of %d nodes, s: hvn_subscriber_snapshot (bare DEALER) | %.3f (%.3f) | | "
           "| ≤ 1 | %s |\n",
           nodes, m, d, m >= 0 && m <= 1.0 ? "yes" : "no");
    rc = nlib == runs && nraw == runs ? 0 : 1;
    fprintf(stderr, "bench_cache: filled %d nodes in %.2f s; RSS %ld -> %ld KiB\n", nodes, fill_s,
            rss_before, rss_after);
done:
    bc_stop(pid, SIGTERM, 10000, NULL);
    zmq_ctx_term(ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_cache: could not remove %s\n", dir);
    return rc;
}
