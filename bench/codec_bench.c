/*  codec_bench.c — what one notification costs to encode, and to decode
    and validate, on one thread.

      encode            hvn_encoder_notification of a compute_node.update as
                        the publisher's actor calls it: fresh timestamp and
                        message id (from the per-thread random pool)
      decode+validate   hvn_decoder_decode of those three frames: header,
                        topic, msgpack, every key, type and value checked,
                        the node copied out; what the broker and every
                        subscriber do per message

    ns per operation (the thread's CPU time, CLOCK_THREAD_CPUTIME_ID, around
    a loop of N operations, after a warm-up of N/10: time the thread spent
    preempted by other work on a busy machine is not counted) and heap allocations per operation
   (malloc, calloc and realloc counted by tests/alloc_count.c while the loop runs, as in report_bench.c;
   "n/a" under AddressSanitizer). Each figure is the median of --runs runs. Output: rows of the
   table bench/run prints.
*/
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_RUNS 15

//  What the loops work on
typedef struct {
    hvn_encoder_t *encoder; //  Encodes
    hvn_decoder_t *decoder; //  Decodes
    hvn_node_t node;        //  The node encoded
    hvn_frames_t frames;    //  Its last encoding
    hvn_msg_t msg;          //  The last decode
} s_bench_t;

//  Returns 0 after `count` encodes of the node, -1 when one failed.
static int s_encode(s_bench_t *self, long count)
{
    hvn_envelope_t env = {.host = "bench-p0"};
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_NOTIFICATION};
    for (long i = 0; i < count; i++) {
        header.seq = (uint64_t)i + 1;
        if (hvn_encoder_notification(self->encoder, HVN_EVENT_UPDATE, &env, &self->node, &header,
                                     &self->frames) != 0)
            return -1;
    }
    return 0;
}

//  Returns 0 after `count` decodes of the last encoding, -1 when one was
//  refused.
static int s_decode(s_bench_t *self, long count)
{
    const hvn_frames_t *f = &self->frames;
    for (long i = 0; i < count; i++) {
        hvn_reason_t rc = hvn_decoder_decode(self->decoder, f->topic, f->topic_size, f->header,
                                             HVN_HEADER_SIZE, f->body, f->body_size, &self->msg);
        if (rc != HVN_OK) {
            fprintf(stderr, "bench_codec: refused: %s (%s)\n", hvn_reason_str(rc),
                    hvn_decoder_detail(self->decoder));
            return -1;
        }
    }
    return 0;
}

//  Returns the calling thread's CPU time in ns.
static int64_t s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  Returns 0 with ns and allocations per operation of one timed loop.
static int s_time(s_bench_t *self, int (*fn)(s_bench_t *, long), long count, double *ns,
                  double *allocs)
{
    if (fn(self, count / 10 + 1) != 0)
        return -1;
    alloc_count_start();
    int64_t start = s_cpu_ns();
    int rc = fn(self, count);
    int64_t elapsed = s_cpu_ns() - start;
    unsigned long n = alloc_count_stop();
    *ns = (double)elapsed / (double)count;
    *allocs = (double)n / (double)count;
    return rc;
}

//  Returns 0 when every run worked, 1 when one failed, 2 on bad usage.
int main(int argc, char **argv)
{
    long count = 200000;
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            count = atol(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--smoke") == 0) {
            count = 2000;
            runs = 1;
        } else {
            fprintf(stderr, "usage: bench_codec [--iterations N] [--runs N] [--smoke]\n");
            return 2;
        }
    }
    if (count < 1 || runs < 1 || runs > S_MAX_RUNS) {
        fprintf(stderr, "bench_codec: --iterations must be positive, --runs 1..%d\n", S_MAX_RUNS);
        return 2;
    }
    static s_bench_t self;
    self.encoder = hvn_encoder_new();
    self.decoder = hvn_decoder_new();
    if (!self.encoder || !self.decoder)
        return 1;
    bc_node(&self.node, 17, "bench-p0");
    double enc[S_MAX_RUNS], dec[S_MAX_RUNS], sum[S_MAX_RUNS], enc_alloc[S_MAX_RUNS],
        dec_alloc[S_MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        if (s_time(&self, s_encode, count, &enc[r], &enc_alloc[r]) != 0 ||
            s_time(&self, s_decode, count, &dec[r], &dec_alloc[r]) != 0) {
            fprintf(stderr, "bench_codec: a run failed\n");
            return 1;
        }
        sum[r] = enc[r] + dec[r];
    }
    size_t body = self.frames.body_size;
    double e = bc_median(enc, runs), d = bc_median(dec, runs), s = bc_median(sum, runs);
    char ea[32] = "n/a", da[32] = "n/a";
    if (ALLOC_COUNTING) {
        snprintf(ea, sizeof(ea), "%.2f", bc_median(enc_alloc, runs));
        snprintf(da, sizeof(da), "%.2f", bc_median(dec_alloc, runs));
    }
    printf("| encode, CPU ns/op (allocations/op), %zu-byte body | %.0f (%s) | | | | |\n", body, e,
           ea);
    printf("| decode+validate, CPU ns/op (allocations/op) | %.0f (%s) | | | | |\n", d, da);
    printf("| encode + decode+validate, CPU ns/op | %.0f | | | ≤ 1000 | %s |\n", s,
           s <= 1000 ? "yes" : "no");
    hvn_encoder_destroy(&self.encoder);
    hvn_decoder_destroy(&self.decoder);
    return 0;
}
