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

//  Returns a TCP port on 127.0.0.1 that was free a moment ago, or -1.
int bc_free_port(void);

//  The counters of a broker's STATS reply that the benchmarks read.
typedef struct {
    uint64_t received;    //  Messages read on the frontend
    uint64_t forwarded;   //  Messages sent on the backend
    uint64_t refused;     //  Messages refused
    uint64_t cache_nodes; //  Cached nodes
    uint64_t cache_bytes; //  The cache's heap bytes
} bc_stats_t;

//  Asks the broker's service endpoint for STATS with a DEALER of ctx.
//  Returns 0 with *out filled, -1 on timeout or a malformed reply.
int bc_broker_stats(void *ctx, const char *service, int timeout_ms, bc_stats_t *out);

#endif
