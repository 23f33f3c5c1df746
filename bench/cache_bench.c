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

//  Returns the seconds a library snapshot of everything took, or -1.
static double s_snapshot_library(const char *backend, const char *service, int nodes)
{
    hvn_subscriber_opts_t opts = {.endpoint = backend, .service = service};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    if (!sub)
        return -1;
    long count = 0;
    int64_t start = bc_now_ns();
    int items = hvn_subscriber_snapshot(sub, "", bc_count_item, &count, 30000);
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
    const char *request[] = {HVN_SERVICE_SNAPSHOT, "", NULL};
    bc_reply_t reply;
    int rc = bc_ask(ctx, service, request, 30000, &reply);
    if (rc == 0 && reply.items == nodes)
        return reply.seconds;
    fprintf(stderr, "bench_cache: DEALER snapshot got %ld items%s\n", reply.items,
            rc == 0 ? "" : " and no END");
    return -1;
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
    void *ctx = zmq_ctx_new();
    bc_broker_t broker;
    bc_stats_t stats = {0};
    int rc = 1;
    //  The replay ring (--ring-bytes, its own bound) is left out: this
    //  measures what the cache costs per node.
    const char *ring_off[] = {"--ring-bytes", "0", NULL};
    if (bc_broker_start(&broker, "bench_cache", "cache", ctx, ring_off) != 0)
        goto done;
    const char *service = broker.service;
    pid_t pid = broker.pid;
    long rss_before = bc_rss_kib(pid);
    int64_t fill_start = bc_now_ns();
    if (bc_fill(ctx, "bench_cache", broker.frontend, service, nodes, per_host, S_FILL_STEP,
                S_FILL_MS, NULL) != 0)
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
        double s = s_snapshot_library(broker.backend, service, nodes);
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
    bc_broker_stop(&broker, "bench_cache");
    zmq_ctx_term(ctx);
    return rc;
}
