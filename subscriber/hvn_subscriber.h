/*  hvn_subscriber.h — the client library for consumers.

        const char *topics[] = { "compute_node." };
        hvn_subscriber_opts_t opts = { .endpoint = "tcp://broker:5562",
                                       .topics = topics, .topic_count = 1 };
        hvn_subscriber_t *sub = hvn_subscriber_new (&opts);
        hvn_msg_t msg;
        while (hvn_subscriber_recv (sub, &msg, 1000) == 1) { ... }
        hvn_subscriber_destroy (&sub);

    A SUB socket on the broker's backend, subscribed to topic prefixes.
    Every message is validated again; a bad one, from anywhere, is a counted,
    rate-limited skip, never an error returned to the caller.

    Late joiners (the Clone pattern, PROTOCOL.md section 5): create the
    subscriber (it subscribes at once), call hvn_subscriber_snapshot() to get
    the broker's cached fleet, then recv() live messages; recv() then skips
    every notification whose seq is not above the snapshot's seq for its
    publisher instance, so nothing is applied twice or out of order.

    Loss is seen, not hidden: per publisher instance the last seq is kept and
    a jump is a gap. With a service endpoint, recv() repairs a gap at once
    by REPLAY (PROTOCOL.md section 5): it asks the broker's ring for the
    missing seqs and delivers them, in seq order, before the message that
    revealed the gap (stats.replays, stats.replayed). What the ring no
    longer holds stays a gap (stats.gaps, stats.missed, and
    stats.replays_short when a REPLAY came back short): the answer to that
    is another snapshot. Gaps are only tracked when a subscribed prefix
    covers every notification ("", "compute_node." or a prefix of it),
    since a narrower subscription skips seqs by design.

    Each (publisher instance, seq) is delivered once: a notification whose
    seq is not above the last one delivered of its instance is dropped
    (stats.duplicates), so a subscriber connected to several brokers, which
    all forward the same notifications, hands each to the caller once.

    For a view of the fleet kept whole over one or more brokers (applied
    once each, losses detected and repaired), use hvn_replica.h, built on
    this subscriber.

    Threading: one subscriber, one thread at a time.
*/
#ifndef HVN_SUBSCRIBER_H_INCLUDED
#define HVN_SUBSCRIBER_H_INCLUDED

#include "hvn_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

typedef struct {
    const char *endpoint;      //  Broker backend(s), comma-separated; required
    const char *service;       //  Broker service endpoint; NULL = none
    const char *const *topics; //  Topic prefixes; none = everything
    size_t topic_count;        //  Number of topics
    const char *host;          //  Only this host's messages (exact); NULL = all
    const char *curve_secret;  //  Client certificate file; NULL = plain
    const char *curve_server;  //  Broker's public certificate file
    int rcvhwm;                //  Messages queued before libzmq drops; 0 = 100 000
    int replay_timeout_ms;     //  Wait for a REPLAY's reply when recv() repairs a gap;
                               //  0 = 1000, -1 = never repair by REPLAY
} hvn_subscriber_opts_t;

typedef struct _hvn_subscriber_t hvn_subscriber_t;

//  Connects and subscribes. Returns NULL (logged) on invalid options or
//  when the socket cannot be set up. Options are copied.
hvn_subscriber_t *hvn_subscriber_new(const hvn_subscriber_opts_t *opts);

//  Closes the sockets and frees. NULL-safe; sets *self_p to NULL.
void hvn_subscriber_destroy(hvn_subscriber_t **self_p);

//  Waits up to timeout_ms (-1 = forever) for the next valid message
//  (notifications and heartbeats; msg->header.kind tells which).
//  Returns 1 with *msg filled, 0 on timeout, -1 when interrupted (czmq's
//  SIGINT/SIGTERM handler set zsys_interrupted) or the context ended.
//  *msg is scratch space when 1 is not returned. msg->nodes stays valid until the next call.
int hvn_subscriber_recv(hvn_subscriber_t *self, hvn_msg_t *msg, int timeout_ms);

//  The SUB socket (a zsock_t, owned by the subscriber), for a caller's own
//  zpoller (then call recv with 0). Such a caller also calls
//  hvn_subscriber_redial() at least once a second.
void *hvn_subscriber_socket(hvn_subscriber_t *self);

//  A backend whose handshake failed for good — the broker refused this
//  subscriber's CURVE key (not installed in its --subscribers-dir yet), or
//  one side speaks CURVE and the other not — is not dialled again by
//  libzmq. The subscriber does it: 1 s after the refusal, then doubling to
//  30 s, each wait jittered; counted in stats.denials and
//  stats.redials. recv() does this while it waits; a caller that polls
//  hvn_subscriber_socket() itself calls this function instead, at least
//  once a second. Returns the ms until the next redial is due, or -1
//  when none is.
int hvn_subscriber_redial(hvn_subscriber_t *self);

//  Called once per snapshot item, with the decoded message (valid only for
//  the duration of the call).
typedef void(hvn_snapshot_fn)(const hvn_msg_t *msg, void *arg);

//  Asks the broker's service socket (opts.service: one DEALER connection,
//  kept open between requests while each reply comes whole, made again
//  after one that did not) for its cached nodes whose topic starts with prefix ("" or NULL = all; at
//  most HVN_TOPIC_MAX bytes), calls
//  fn for each valid item that also passes this subscriber's topics and host
//  filter (bad items are counted in stats.skipped and left out), and
//  remembers the END's per-publisher seqs so that recv() skips live messages
//  already covered. timeout_ms (-1 = forever) bounds the wait for each reply.
//  Returns the number of items passed to fn, or -1 when there is no service,
//  on timeout, when the service refused this subscriber's key at the
//  handshake (at once: a refused request is never answered), when
//  interrupted, when the broker answers ERROR, or when the END is malformed or its
//  count disagrees with the items received (items already passed to fn may then be incomplete:
//  snapshot again).
int hvn_subscriber_snapshot(hvn_subscriber_t *self, const char *prefix, hvn_snapshot_fn *fn,
                            void *arg, int timeout_ms);

//  Asks the broker's service socket for REPLAY of a publisher instance's
//  seqs first..last (first <= last, at most HVN_REPLAY_SPAN_MAX of them),
//  calls fn for each valid item that passes this subscriber's topics and
//  host filter, in seq order, and fills *end (when not NULL) with the END:
//  count, and the range of the instance's seqs the broker's ring holds now.
//  When end->count is below last - first + 1 the ring has wrapped: what is
//  missing takes a snapshot. The items do not change what recv() tracks;
//  recv() makes its own REPLAYs. timeout_ms as for hvn_subscriber_snapshot.
//  Returns the number of items passed to fn, or -1 as
//  hvn_subscriber_snapshot does.
int hvn_subscriber_replay(hvn_subscriber_t *self, const uint8_t instance[16], uint64_t first,
                          uint64_t last, hvn_snapshot_fn *fn, void *arg, hvn_end_t *end,
                          int timeout_ms);

//  Returns the seq that the last snapshot recorded for a publisher instance
//  (16 raw bytes), or 0 when the snapshot did not name it.
uint64_t hvn_subscriber_snapshot_seq(hvn_subscriber_t *self, const uint8_t instance[16]);

//  Returns the broker_id of the last snapshot's END, or "" before one. The
//  string is owned by the subscriber; valid until its next snapshot.
const char *hvn_subscriber_broker_id(hvn_subscriber_t *self);

//  Returns the last completed snapshot's END: broker_id, count and every
//  publisher instance's seq it named (publisher_count 0 and broker_id ""
//  before one). Owned by the subscriber; valid until its next snapshot.
const hvn_end_t *hvn_subscriber_end(hvn_subscriber_t *self);

//  Asks the broker's service socket for its counters (["STATS"]) and returns
//  them as one line of compact JSON, a heap string the caller frees, or NULL
//  when there is no service, on timeout, a refused handshake or a malformed
//  answer.
char *hvn_subscriber_stats_request(hvn_subscriber_t *self, int timeout_ms);

typedef struct {
    uint64_t received;             //  Valid messages delivered
    uint64_t skipped[HVN_R_COUNT]; //  Refused, by reason
    uint64_t skipped_total;        //  Sum of skipped
    uint64_t stale;                //  Live notifications already in a snapshot
    uint64_t filtered;             //  Valid but for another host (opts.host)
    uint64_t gaps;                 //  Seq jumps not repaired by REPLAY (each one or more lost)
    uint64_t missed;               //  Notifications lost in those jumps
    uint64_t duplicates;           //  Notifications of an (instance, seq) already delivered
    uint64_t replays;              //  Gaps recv() repaired by REPLAY, wholly
    uint64_t replayed;             //  Notifications recv() got back by REPLAY
    uint64_t replays_short;        //  REPLAYs the ring could not answer whole (wrapped)
    uint64_t replays_failed;       //  REPLAYs not answered (no service, timeout, ERROR)
    uint64_t snapshots;            //  Snapshots completed
    uint64_t publishers;           //  Publisher instances tracked
    uint64_t denials;              //  Backend handshakes refused (CURVE key not
                                   //  installed at the broker, or CURVE on one side only)
    uint64_t redials;              //  Refusing backends dialled again
} hvn_subscriber_stats_t;

//  Copies the counters into *out.
void hvn_subscriber_stats(hvn_subscriber_t *self, hvn_subscriber_stats_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
