/*  hvn_publisher.h — the publisher a hypervisor host embeds.

        hvn_publisher_opts_t opts = { .endpoint = "tcp://broker:5561", .host = "cmp-017" };
        hvn_publisher_t *pub = hvn_publisher_new (&opts);
        hvn_publisher_report (pub, &node);      //  as often as you like
        hvn_publisher_remove (pub, node.uuid);  //  node gone
        hvn_publisher_destroy (&pub);           //  flushes, bounded

    report() only touches memory: it compares the node with the last state
    sent and, when the seed's rules say so, queues a create or an update for
    the publisher's background actor, which owns the socket. The socket is an
    XPUB connected to the broker's frontend; nothing is sent until the
    broker's subscription has arrived, so nothing goes into the void, and
    while the broker is away the latest state of every node waits.

    Threading: one publisher may be used from one thread at a time (report,
    remove and flush are serialized internally, so several threads may share
    it, but they then contend on one lock).

    The queue: events wait in one FIFO across nodes, so notifications go out
    in the order of the calls that produced them. A node has at most one
    queued update: a later change replaces its state (counted as coalesced),
    and a queued create or update always carries the node as last reported.
    The queue holds at most HVN_PUBLISHER_QUEUE_MAX events; past that,
    report() and remove() refuse with -1 (counted in `refused`, logged at
    most once a second) and change nothing, so the caller's next report of
    the same state is not lost, only later.

    State directory: with opts.state_dir, the frames last sent for every
    live node are kept in <state_dir>/publisher-<host>.state (msgpack,
    replaced atomically after each batch of sends). A restarted publisher
    loads it: a node known there gets no second create, and its next report
    sends an update only when an update-triggering field differs from the
    state sent before. A missing, unreadable or corrupt file is logged and
    means a fresh start.
*/
#ifndef HVN_PUBLISHER_H_INCLUDED
#define HVN_PUBLISHER_H_INCLUDED

#include "hvn_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_PUBLISHER_QUEUE_MAX 1000000 //  Queued events before refusing

typedef struct {
    const char *endpoint;     //  Broker frontend(s), comma-separated; required
    const char *host;         //  This host's name, as in topics; required
    const char *service;      //  publisher_id prefix; NULL = "nova-compute"
    const char *state_dir;    //  Keep last-sent state here; NULL = none
    int heartbeat_ms;         //  Heartbeat interval; 0 = 10000
    int linger_ms;            //  Longest destroy() waits to flush; 0 = 5000
    const char *curve_secret; //  This host's secret certificate (hvn-keygen publisher
                              //  --host HOST): its metadata host must be `host`, or the
                              //  broker refuses what is sent; NULL = plain text
    const char *curve_server; //  Broker's public certificate file; with curve_secret
    int stall_ms;             //  With several brokers: when none has taken a message
                              //  for this long, reconnect to all of them (so that one
                              //  broker that stopped reading cannot hold up the
                              //  others); 0 = 5000, -1 = never
} hvn_publisher_opts_t;

typedef struct _hvn_publisher_t hvn_publisher_t;

//  Creates a publisher and starts its actor. Returns NULL (logged) when the
//  options are invalid or the socket cannot be set up. The options are
//  copied; the caller keeps ownership of its strings.
hvn_publisher_t *hvn_publisher_new(const hvn_publisher_opts_t *opts);


//  Flushes what is pending (at most linger_ms), stops the actor, frees.
//  NULL-safe and idempotent; sets *self_p to NULL.
void hvn_publisher_destroy(hvn_publisher_t **self_p);

//  Reports the current state of a node (copied). Queues compute_node.create
//  the first time a uuid is seen, compute_node.update when an update-
//  triggering field changed since the last state queued, nothing otherwise.
//  Never blocks on the network; a report of an unchanged node takes the
//  lock, one map lookup and one comparison, and does not allocate.
//  Returns 0, or -1 when the node is invalid (see hvn_node_validate) or the
//  queue is full (nothing changed then).
int hvn_publisher_report(hvn_publisher_t *self, const hvn_node_t *node);

//  Queues compute_node.delete for a node and forgets it (a later report of
//  the uuid is a new create). Returns 0, or -1 when the uuid is not a node
//  this publisher holds or the queue is full.
int hvn_publisher_remove(hvn_publisher_t *self, const char *uuid);

//  Waits until everything queued has been sent to a broker, at most
//  timeout_ms (-1 = forever). Returns 0 when flushed, -1 on timeout.
int hvn_publisher_flush(hvn_publisher_t *self, int timeout_ms);

//  Ends the first round after a restart: queues compute_node.delete for
//  every node loaded from the state directory that has not been reported
//  (nor removed) since this publisher started, and forgets them. Call it
//  once, after the first report of all current nodes. Returns the number of
//  deletes queued, or -1 when the queue filled up (the rest stay held).
int hvn_publisher_forget_missing(hvn_publisher_t *self);

//  Changes how long destroy() waits to flush, in ms (0 = not at all: what
//  is still queued is dropped without a log line, for callers that have
//  already reported it).
void hvn_publisher_set_linger(hvn_publisher_t *self, int linger_ms);

//  Counters of a publisher
typedef struct {
    uint64_t reports;    //  report() calls
    uint64_t sent;       //  Notifications sent (last seq)
    uint64_t creates;    //  compute_node.create sent
    uint64_t updates;    //  compute_node.update sent
    uint64_t deletes;    //  compute_node.delete sent
    uint64_t syncs;      //  Kind-3 resends
    uint64_t heartbeats; //  Heartbeats sent
    uint64_t coalesced;  //  Queued states replaced before they were sent
    uint64_t nodes;      //  Nodes currently held
    uint64_t pending;    //  Queued or being sent, not yet sent
    uint64_t refused;    //  report()/remove() refused: queue full
    uint64_t dropped;    //  Notifications that could not be encoded (or stored): logged, lost
    uint64_t resyncs;    //  Broker subscriptions answered by a resync
    uint64_t broker;     //  1 while a broker's subscription is held
    uint64_t reconnects; //  Reconnects to every broker after a stall (stall_ms)
    uint64_t denials;    //  Handshakes a broker refused: this host's CURVE key not
                         //  installed there yet, or CURVE on one side only
    uint64_t redials;    //  Refusing brokers dialled again: 1 s after a refusal,
                         //  doubling to 30 s, jittered (libzmq never does)
} hvn_publisher_stats_t;

//  Copies the publisher's counters into *out.
void hvn_publisher_stats(hvn_publisher_t *self, hvn_publisher_stats_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
