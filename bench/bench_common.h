/*  bench_common.h — what the bench/ programs share: clocks, medians, the
    benchmark's compute nodes and their pre-encoded messages, child
    processes (hvn-broker, bench_proxy) and the broker's STATS.

    The messages are real HVN/1 notifications, encoded once by libhvn's
    encoder and then sent many times with only the header's seq (and, for
    latency, a send time in the body) rewritten in place, so that a sender
    costs a few hundred nanoseconds per message and is not what is measured.
*/
#ifndef BENCH_COMMON_H_INCLUDED
#define BENCH_COMMON_H_INCLUDED

#include <hvn_proto.h>

#include "../tests/alloc_count.h"
#include "../tests/integration/support_proc.h" //  it_port_free

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

//  The body's current_workload holds this placeholder until a sender
//  writes its send time there (an int64 packed as msgpack uint64: 0xcf and
//  8 big-endian bytes, still a valid value for the decoder).
#define BC_STAMP_PLACEHOLDER INT64_C(0x7ffffffffffffff0)

//  One pre-encoded message: three frames, owned.
typedef struct {
    char topic[HVN_TOPIC_MAX + 1];   //  Frame 0, NUL-terminated
    size_t topic_size;               //  Its bytes without the NUL
    uint8_t header[HVN_HEADER_SIZE]; //  Frame 1; seq at bytes 2..9
    uint8_t *body;                   //  Frame 2, heap
    size_t body_size;                //  Its bytes
    size_t stamp_offset;             //  Where the 8 stamp bytes are; 0 = none
} bc_msg_t;

//  Returns the monotonic clock in ns (the same clock in every process).
int64_t bc_now_ns(void);

//  Returns the median of n values (sorts v in place); 0 when n is 0.
double bc_median(double *v, int n);

//  Returns the value at quantile q (0..1) of n values sorted ascending.
double bc_quantile(const double *sorted, int n, double q);

//  Fills node number i of host `host`: a plausible compute node whose
//  notification body is about 600 bytes.
void bc_node(hvn_node_t *node, int i, const char *host);

//  Encodes a notification of node into *out (the caller frees with
//  bc_msg_free). With stamp, current_workload holds BC_STAMP_PLACEHOLDER
//  and stamp_offset says where. Returns 0, or -1 when encoding failed.
int bc_msg_notification(hvn_encoder_t *encoder, hvn_event_t event, const char *host,
                        const hvn_node_t *node, const uint8_t instance[16], bool stamp,
                        bc_msg_t *out);

//  Encodes an empty publisher heartbeat of host into *out. Returns 0 or -1.
int bc_msg_heartbeat(hvn_encoder_t *encoder, const char *host, const uint8_t instance[16],
                     bc_msg_t *out);

//  Writes seq into the message's header.
void bc_msg_set_seq(bc_msg_t *msg, uint64_t seq);

//  Writes a send time into the body (stamp_offset must be set).
void bc_msg_set_stamp(bc_msg_t *msg, int64_t ns);

//  Returns the send time in a received body, or -1 when it has none.
int64_t bc_body_stamp(const void *body, size_t size);

//  Frees the message's body; NULL-safe.
void bc_msg_free(bc_msg_t *msg);

//  Returns the directory of the running program (build/bin), static; safe to
//  call from several threads at once.
const char *bc_bin_dir(void);

//  Starts program (in bc_bin_dir() when it has no '/') with args, stdout and
//  stderr to /dev/null unless BENCH_VERBOSE is set. Returns its pid, or -1.
pid_t bc_spawn(const char *program, const char *const *args);

//  Returns true when the child pid has ended, with its exit code (or 128 +
//  the signal that ended it) in *code; it stays to be reaped by bc_stop.
bool bc_ended(pid_t pid, int *code);

//  Sends sig to pid and waits up to timeout_ms for it to end, then kills
//  it. Returns its wait status, or -1; *cpu_s (when not NULL) receives the
//  user + system CPU seconds the process used in its life.
int bc_stop(pid_t pid, int sig, int timeout_ms, double *cpu_s);

//  Returns the resident set size of pid in KiB, or -1.
long bc_rss_kib(pid_t pid);

//  The counters of a broker's STATS reply that the benchmarks read.
typedef struct {
    uint64_t received;    //  Messages read on the frontend
    uint64_t forwarded;   //  Messages sent on the backend
    uint64_t refused;     //  Messages refused
    uint64_t cache_nodes; //  Cached nodes
    uint64_t cache_bytes; //  The cache's heap bytes
} bc_stats_t;

//  Decodes a STATS body into *out (a counter it lacks reads 0). Returns 0,
//  or -1 when the body is not a msgpack map.
int bc_stats_decode(const void *body, size_t size, bc_stats_t *out);

//  Asks the broker's service endpoint for STATS with a DEALER of ctx.
//  Returns 0 with *out filled, -1 on timeout or a malformed reply.
int bc_broker_stats(void *ctx, const char *service, int timeout_ms, bc_stats_t *out);

//  Returns 0 once the broker's STATS say at least `nodes` are cached, -1
//  on a refusal, no answer or after timeout_ms.
int bc_wait_cached(void *ctx, const char *service, int nodes, int timeout_ms);

//  Sends one compute_node.create per node to the broker's frontend from an
//  XPUB of ctx: hosts bench-h000, bench-h001 ... of per_host nodes each,
//  one publisher instance per host, seqs from 1. It sends in steps of step
//  creates and waits (at most timeout_ms each) for the broker's cache to
//  catch up before the next, so that its frontend queue never holds more
//  than a step (glibc keeps freed memory: a backlog of 100 000 messages
//  would stay in the broker's RSS). The last step is not waited for.
//  last_instance (when not NULL) receives the last host's instance.
//  Returns 0, or -1 (said on stderr, after prog).
int bc_fill(void *ctx, const char *prog, const char *frontend, const char *service, int nodes,
            int per_host, int step, int timeout_ms, uint8_t last_instance[16]);

//  Counts one message into the long at arg (an hvn_subscriber callback).
void bc_count_item(const hvn_msg_t *msg, void *arg);

//  What a bare DEALER read of a reply up to its END (bc_ask)
typedef struct {
    long items;     //  ITEM messages
    long bytes;     //  Bytes of every frame of every message, END's too
    double seconds; //  From the request to the END
} bc_reply_t;

//  Sends request (its frames, NULL-ended) to the service endpoint from a
//  DEALER of ctx (no receive high water mark) and reads the reply up to
//  and with its END, waiting at most timeout_ms for each frame. Returns 0
//  with *out filled, -1 when no END came (an ERROR, or a timeout).
int bc_ask(void *ctx, const char *service, const char *const *request, int timeout_ms,
           bc_reply_t *out);

//  An hvn-broker of the benchmark's own, on ipc endpoints in a temporary
//  directory
typedef struct {
    char dir[64];       //  /tmp/hvn-bench-<name>-XXXXXX
    char frontend[128]; //  Its XSUB endpoint, in dir
    char backend[128];  //  Its XPUB endpoint
    char service[128];  //  Its ROUTER endpoint
    pid_t pid; //  The broker; -1 when not started
} bc_broker_t;

//  Makes the temporary directory of *broker, starts hvn-broker (from
//  bc_bin_dir(), --name bench and extra, NULL-ended, may be NULL) on
//  endpoints in it and waits until it answers STATS to a DEALER of ctx.
//  Returns 0, or -1 (said on stderr, after prog); bc_broker_stop it either
//  way.
int bc_broker_start(bc_broker_t *broker, const char *prog, const char *name, void *ctx,
                    const char *const *extra);

//  Stops the broker (SIGTERM, then SIGKILL after 10 s) and removes its
//  directory. Returns nothing.
void bc_broker_stop(bc_broker_t *broker, const char *prog);

#endif
