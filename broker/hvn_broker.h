/*  hvn_broker.h — the hvnotify broker: validate, cache, fan out.

    Publishers send into an XSUB frontend; every message is checked with
    the HVN/1 decoder and, when good, forwarded unchanged on the XPUB
    backend (notifications and publisher heartbeats) and/or kept in the
    last-value cache (creates, updates, syncs; deletes remove). A ROUTER
    service socket answers SNAPSHOT, REPLAY (from a ring of the notifications
    forwarded last, hvn_ring.h) and STATS. The broker heartbeats on the
    backend so subscribers can tell it is alive and when it restarted.

    One thread, one loop: poll, then hand each ready socket to its handler.
    hvn_broker_poll runs one wake-up, so tests drive the broker in their own
    thread over inproc:// without processes.
*/
#ifndef HVN_BROKER_H_INCLUDED
#define HVN_BROKER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hvn_reject.h"
#include "hvn_service.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_BROKER_FRONTEND "tcp://127.0.0.1:5561"
#define HVN_BROKER_BACKEND "tcp://127.0.0.1:5562"
#define HVN_BROKER_SERVICE "tcp://127.0.0.1:5563"
#define HVN_BROKER_HEARTBEAT_MS 10000
#define HVN_BROKER_MSG_SIZE_MAX (64 * 1024 * 1024)         //  Largest --max-msg-size
#define HVN_BROKER_HEARTBEAT_MAX 3600000                   //  Largest --heartbeat-ms
#define HVN_BROKER_PUBLISHER_NODES HVN_HEARTBEAT_NODES_MAX //  Default --max-publisher-nodes
#define HVN_BROKER_PUBLISHER_NODES_MAX 1000000             //  Largest --max-publisher-nodes
#define HVN_BROKER_SUBSCRIPTIONS 1000                      //  Default --max-subscriptions
#define HVN_BROKER_SUBSCRIPTIONS_MAX 1000000               //  Largest --max-subscriptions
#define HVN_BROKER_SNAPSHOT_RATE 10                        //  Default --max-snapshot-rate
#define HVN_BROKER_SNAPSHOT_RATE_MAX 100000                //  Largest --max-snapshot-rate
#define HVN_BROKER_LISTEN_BACKLOG 32768                    //  Default --listen-backlog
#define HVN_BROKER_LISTEN_BACKLOG_MAX 1000000              //  Largest --listen-backlog
#define HVN_BROKER_RING_BYTES (64 * 1024 * 1024)           //  Default --ring-bytes
#define HVN_BROKER_SUBSCRIBER_HWM_MAX 10000000          //  Largest --subscriber-hwm
#define HVN_BROKER_RING_BYTES_MAX (64LL * 1024 * 1024 * 1024) //  Largest --ring-bytes
#define HVN_BROKER_SUBSCRIBER_BYTES (1024LL * 1024 * 1024)    //  Default --subscriber-bytes
#define HVN_BROKER_SUBSCRIBER_BYTES_MIN (1024LL * 1024)       //  Smallest --subscriber-bytes
#define HVN_BROKER_SUBSCRIBER_BYTES_MAX (1024LL * 1024 * 1024 * 1024) //  Largest
#define HVN_BROKER_SNAPSHOT_BYTES (128LL * 1024 * 1024)               //  Default --snapshot-bytes
#define HVN_BROKER_SNAPSHOT_BYTES_MIN (1024LL * 1024)                 //  Smallest --snapshot-bytes
#define HVN_BROKER_SNAPSHOT_BYTES_MAX (64LL * 1024 * 1024 * 1024)     //  Largest --snapshot-bytes
#define HVN_BROKER_SNAPSHOT_STALL_MS 30000    //  Default --snapshot-stall-ms
#define HVN_BROKER_SNAPSHOT_STALL_MAX 3600000 //  Largest --snapshot-stall-ms

//  What the broker is told at start. Strings are borrowed for the duration
//  of hvn_broker_new only.
typedef struct {
    const char *frontend;        //  XSUB endpoint to bind, publishers connect
    const char *backend;         //  XPUB endpoint to bind, subscribers connect
    const char *service;         //  ROUTER endpoint to bind, snapshot and stats
    const char *name;            //  Broker name, topic hvn.broker@<name>; NULL = short host name
    size_t max_msg_size;         //  Largest notification body accepted, bytes
    size_t max_publisher_nodes;  //  Most nodes one publisher heartbeat may list;
                                 //  bounds the heartbeat body size, and the nodes
                                 //  cached per host (a create past it is refused)
    int64_t heartbeat_ms;        //  Broker heartbeat interval on the backend
    size_t max_topic_size;       //  Longest topic accepted, 1..255 bytes
    size_t max_subscriptions;    //  Distinct prefixes one subscriber may hold (hvn_limits.h)
    uint32_t max_snapshot_rate;  //  Snapshot requests a second per peer (hvn_limits.h)
    int listen_backlog;          //  ZMQ_BACKLOG of the three bound sockets: TCP
                                 //  connections waiting to be accepted (the
                                 //  kernel caps it at net.core.somaxconn)
    size_t ring_bytes;           //  Bytes of recent notifications kept for REPLAY; 0 = none
    int subscriber_hwm;          //  Messages queued per subscriber before the backend
                                 //  drops that subscriber's excess; 0 = 100 000
    size_t subscriber_bytes;     //  Bytes one subscriber's queue may pin: the queue is
                                 //  cut to subscriber_bytes / the largest message the
                                 //  broker forwards, when that is fewer than
                                 //  subscriber_hwm messages; 0 = the default
    size_t snapshot_bytes;       //  Bytes that snapshots being served may hold in the
                                 //  service socket's queues, all clients together (a
                                 //  quarter of it per client); 0 = the default
    int64_t snapshot_stall_ms;   //  A snapshot client that takes nothing this long is
                                 //  cut, and what was queued for it freed; 0 = default
    const char *curve_secret;    //  CURVE: the broker's secret certificate; NULL = plain text
    const char *publishers_dir;  //  CURVE: publishers' public certificates (with host)
    const char *subscribers_dir; //  CURVE: subscribers' public certificates
                                 //  All three or none; see hvn_auth.h
    const char *state_file;      //  Where node and publisher instance bindings survive a
                                 //  restart (hvn_state.h); NULL = kept in memory only
} hvn_broker_config_t;

//  Counters, as STATS reports them.
typedef struct {
    uint64_t received;              //  Messages read on the frontend, good or not
    uint64_t forwarded;             //  Messages sent on the backend (not counting our heartbeats)
    uint64_t notifications;         //  Kind 1 messages accepted
    uint64_t syncs;                 //  Kind 3 messages accepted (cached, not forwarded)
    uint64_t syncs_stale;           //  Syncs older than the cached entry, ignored
    uint64_t heartbeats_in;         //  Publisher heartbeats accepted
    uint64_t heartbeats_out;        //  Our own heartbeats sent
    uint64_t forward_errors;        //  Sends on the backend that failed
    uint64_t cache_errors;          //  Entries not stored for want of memory
    uint64_t snapshots;             //  Snapshots answered in full
    uint64_t snapshots_failed;      //  Snapshots cut short: client gone, or no memory
    uint64_t snapshots_stalled;     //  Snapshot clients cut: took nothing for snapshot_stall_ms
    uint64_t snapshot_us;           //  Microseconds the snapshots answered in full took in
                                    //  all, each from its request until
                                    //  its client took its END
    uint64_t snapshot_last_us;      //  The last one's
    uint64_t service_refused;       //  Malformed or unknown service requests
    uint64_t publishers_untracked;  //  Messages of instances the full seq map could not add
    uint64_t pruned;                //  Cached nodes removed: not in their publisher's heartbeat
    uint64_t limited_nodes;         //  New nodes refused: their host holds max_publisher_nodes
    uint64_t limited_subscriptions; //  Subscriptions not applied: peer at max_subscriptions
    uint64_t limited_snapshots;     //  Snapshot requests answered ERROR: peer over its rate,
                                    //  or no slot or snapshot_bytes left for it
    uint64_t handshakes_failed; //  CURVE on: handshakes failed before ZAP (plain text, wrong key)
    uint64_t accept_failed;     //  Connections libzmq could not accept (out of descriptors)
    uint64_t replays;           //  REPLAY requests answered in full
    uint64_t replay_items;      //  ITEMs those answers held
    uint64_t replays_short;     //  Answered with fewer ITEMs than the range (ring wrapped)
    uint64_t replays_failed;    //  Answers cut short: client gone or its queue full
    uint64_t replays_refused;   //  Malformed REPLAY requests answered ERROR
    uint64_t replay_us;         //  Microseconds the REPLAYs answered in full took in all
    uint64_t replay_last_us;    //  The last one's
    uint64_t ring_errors;       //  Notifications not kept in the ring for want of memory
    uint64_t subscribers_cut;   //  Backend connections cut: too many refused subscriptions
    int64_t subscriptions;      //  Active subscriptions on the backend
    hvn_rejects_t rejects;      //  Refused messages by reason
} hvn_broker_stats_t;

typedef struct _hvn_broker_t hvn_broker_t;

//  Returns nothing; *config holds the defaults (name NULL: the host name).
void hvn_broker_config_defaults(hvn_broker_config_t *config);

//  Returns 1 when name can name a broker (its heartbeat topic is valid),
//  else 0.
int hvn_broker_name_valid(const char *name);

//  Creates the broker and binds its three sockets. Returns the broker, or
//  NULL with a one-line reason in error (naming the endpoint and the errno
//  text when a bind fails). error may be NULL.
hvn_broker_t *hvn_broker_new(const hvn_broker_config_t *config, char *error, size_t error_size);

//  Destroys the broker, closing its sockets; NULL-safe, sets *self_p to NULL.
void hvn_broker_destroy(hvn_broker_t **self_p);

//  Waits at most max_wait_ms (shorter when a heartbeat is due) and handles
//  whatever is ready: a batch of messages per socket, the heartbeat timer.
//  Returns 0, or -1 when interrupted (zsys_interrupted) or on a fatal
//  socket error.
int hvn_broker_poll(hvn_broker_t *self, int max_wait_ms);

//  Runs until SIGINT/SIGTERM. Returns 0 when interrupted, -1 on a fatal
//  socket error.
int hvn_broker_run(hvn_broker_t *self);

//  Called by hvn_broker_run after every wake-up of its loop, in its thread
//  (so it may read the broker), e.g. to publish the counters elsewhere.
typedef void(hvn_broker_tick_fn)(hvn_broker_t *broker, void *arg);

//  Returns nothing; fn (NULL: none) is called after every wake-up of
//  hvn_broker_run.
void hvn_broker_set_tick(hvn_broker_t *self, hvn_broker_tick_fn *fn, void *arg);

//  Returns the broker instance id as UUID text; owned by the broker.
const char *hvn_broker_id(const hvn_broker_t *self);

//  Returns the endpoint a socket is bound to ("frontend", "backend" or
//  "service"), with any wildcard port resolved; owned by the broker.
const char *hvn_broker_endpoint(const hvn_broker_t *self, const char *which);

//  Returns the broker's counters; owned by the broker, live.
const hvn_broker_stats_t *hvn_broker_stats(const hvn_broker_t *self);

//  Fills table with the broker's counters and figures as rows, in the order
//  STATS reports them (the hvn_broker_stats_t counters, the refusals in all
//  and by reason, the cache, subscriptions, publishers, uptime, ids, CURVE).
//  Returns 0, or -1 when out of memory.
int hvn_broker_stats_table(const hvn_broker_t *self, hvn_stats_t *table);

//  Returns the largest publisher heartbeat body accepted, in bytes, for a
//  broker allowing max_publisher_nodes nodes per publisher and notification
//  bodies of max_msg_size bytes.
size_t hvn_broker_heartbeat_size_max(size_t max_publisher_nodes, size_t max_msg_size);

//  Returns the cache's node count and its memory estimate in bytes.
size_t hvn_broker_cache_nodes(const hvn_broker_t *self);
size_t hvn_broker_cache_bytes(const hvn_broker_t *self);

#ifdef __cplusplus
}
#endif
#endif
