/*  replay_bench.c — repairing a gap by REPLAY against a snapshot of the
    whole fleet.

    Starts build/bin/hvn-broker (default --ring-bytes), fills its cache with
    one compute_node.create per node (100 hosts of 1 000 nodes, ~600-byte
    bodies; one publisher instance per host, seqs 1..1000), then, in the
    same run and back to back:

      snapshot   the whole fleet, as a subscriber repairing by snapshot
                 must take it: hvn_subscriber_snapshot (every item decoded
                 and validated), timed from request to END, and its bytes
                 on the wire (every frame of every reply, read by a bare
                 DEALER)
      replay G   the last G seqs of the last host's instance (G = 1, 10,
                 100, 1000), which the ring holds: hvn_subscriber_replay,
                 timed the same way, and its bytes

    Each figure is the median of --runs; the ratio is replay / snapshot,
    target ≤ 1 % in bytes and in time.
    Output: rows of a markdown table.
*/
#include "bench_common.h"

#include <hvn_subscriber.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_RUNS 15
#define S_FILL_MS 120000 //  Longest wait for the cache to fill
#define S_FILL_STEP 2000 //  Creates sent before waiting for the broker
#define S_PER_HOST 1000  //  Nodes (and seqs) per host

//  Returns the bytes of every frame of the reply to a request (frames
//  given, NULL-ended), read by a bare DEALER up to and with the END, or -1.
static long s_reply_bytes(void *ctx, const char *service, const char *const *request)
{
    bc_reply_t reply;
    return bc_ask(ctx, service, request, 30000, &reply) == 0 ? reply.bytes : -1;
}

//  Returns the seconds hvn_subscriber_snapshot took for the whole fleet,
//  or -1.
static double s_snapshot_time(hvn_subscriber_t *sub, int nodes)
{
    long count = 0;
    int64_t start = bc_now_ns();
    int items = hvn_subscriber_snapshot(sub, "", bc_count_item, &count, 30000);
    double seconds = (double)(bc_now_ns() - start) / 1e9;
    return items == nodes && count == nodes ? seconds : -1;
}

//  Returns the seconds hvn_subscriber_replay took for the last gap seqs of
//  instance, or -1 when it did not bring back all of them.
static double s_replay_time(hvn_subscriber_t *sub, const uint8_t instance[16], int gap)
{
    long count = 0;
    hvn_end_t end;
    int64_t start = bc_now_ns();
    int items = hvn_subscriber_replay(sub, instance, S_PER_HOST - gap + 1, S_PER_HOST,
                                      bc_count_item, &count, &end, 30000);
    double seconds = (double)(bc_now_ns() - start) / 1e9;
    return items == gap && end.count == (uint64_t)gap ? seconds : -1;
}

//  Returns 0 when everything was measured and met, 1 when not, 2 on bad
//  usage.
int main(int argc, char **argv)
{
    int nodes = 100000, runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--smoke") == 0) {
            nodes = 2000;
            runs = 1;
        } else {
            fprintf(stderr, "usage: bench_replay [--runs N] [--smoke]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > S_MAX_RUNS) {
        fprintf(stderr, "bench_replay: --runs 1..%d\n", S_MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *ctx = zmq_ctx_new();
    hvn_subscriber_t *sub = NULL;
    uint8_t instance[16];
    int rc = 1;
    bc_broker_t broker;
    if (bc_broker_start(&broker, "bench_replay", "replay", ctx, NULL) != 0)
        goto done;
    const char *service = broker.service;
    if (bc_fill(ctx, "bench_replay", broker.frontend, service, nodes, S_PER_HOST, S_FILL_STEP,
                S_FILL_MS, instance) != 0 ||
        bc_wait_cached(ctx, service, nodes, S_FILL_MS) != 0) {
        fprintf(stderr, "bench_replay: the cache did not fill\n");
        goto done;
    }
    hvn_subscriber_opts_t opts = {.endpoint = broker.backend, .service = service};
    sub = hvn_subscriber_new(&opts);
    const char *snapshot_request[] = {HVN_SERVICE_SNAPSHOT, "", NULL};
    long snapshot_bytes = sub ? s_reply_bytes(ctx, service, snapshot_request) : -1;
    double snapshot_s[S_MAX_RUNS];
    int nsnap = 0;
    for (int r = 0; r < runs; r++) {
        double s = s_snapshot_time(sub, nodes);
        if (s >= 0)
            snapshot_s[nsnap++] = s;
    }
    if (snapshot_bytes < 0 || nsnap != runs) {
        fprintf(stderr, "bench_replay: the snapshot failed\n");
        goto done;
    }
    double snapshot_median = bc_median(snapshot_s, nsnap);
    printf("| snapshot of %d nodes: bytes, ms | %ld | %.1f | | |\n", nodes, snapshot_bytes,
           snapshot_median * 1000);
    char text[37], first[HVN_SEQ_TEXT_MAX + 1], last[HVN_SEQ_TEXT_MAX + 1];
    static const int gaps[] = {1, 10, 100, 1000};
    bool met = true, measured = true;
    for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        hvn_replay_t request = {.first = S_PER_HOST - gaps[g] + 1, .last = S_PER_HOST};
        memcpy(request.instance, instance, 16);
        hvn_replay_text(&request, text, first, last);
        const char *replay_request[] = {HVN_SERVICE_REPLAY, text, first, last, NULL};
        long bytes = s_reply_bytes(ctx, service, replay_request);
        double replay_s[S_MAX_RUNS], ratio_s[S_MAX_RUNS];
        int n = 0;
        for (int r = 0; r < runs; r++) {
            //  Back to back with a snapshot, so each ratio is of one moment
            double snap = s_snapshot_time(sub, nodes);
            double s = s_replay_time(sub, instance, gaps[g]);
            if (s >= 0 && snap > 0) {
                replay_s[n] = s;
                ratio_s[n++] = s / snap;
            }
        }
        if (bytes < 0 || n != runs) {
            fprintf(stderr, "bench_replay: the replay of %d failed\n", gaps[g]);
            measured = false;
            continue;
        }
        double byte_ratio = (double)bytes / (double)snapshot_bytes;
        double time_ratio = bc_median(ratio_s, n);
        bool ok = byte_ratio <= 0.01 && time_ratio <= 0.01;
        met = met && ok;
        printf("| replay of a gap of %d: bytes, ms | %ld (%.4f %%) | %.3f (%.3f %%) | ≤ 1 %% | %s "
               "|\n",
               gaps[g], bytes, byte_ratio * 100, bc_median(replay_s, n) * 1000, time_ratio * 100,
               ok ? "yes" : "no");
    }
    rc = measured && (met || nodes < 100000) ? 0 : 1;
done:
    hvn_subscriber_destroy(&sub);
    bc_broker_stop(&broker, "bench_replay");
    zmq_ctx_term(ctx);
    return rc;
}
