/*  hvn_replica.h — a replica of the fleet, kept whole by the Clone pattern.

        const char *backends[] = { "tcp://b1:5562", "tcp://b2:5562" };
        const char *services[] = { "tcp://b1:5563", "tcp://b2:5563" };
        hvn_replica_opts_t opts = { .backends = backends, .services = services,
                                    .broker_count = 2, .fn = on_change };
        hvn_replica_t *replica = hvn_replica_new (&opts);
        while (hvn_replica_poll (replica, 1000) >= 0) { ... }
        hvn_replica_destroy (&replica);

    One link per broker: a subscriber on its backend (all node events and
    heartbeats) and its service endpoint, paired by order. The replica
    subscribes, takes a snapshot, then applies live notifications, skipping
    what the snapshot held (PROTOCOL.md section 5). A notification that
    reaches it through both brokers is applied once: per publisher instance
    the last applied seq is kept, and a seq not above it is a duplicate.

    A seq gap is first repaired by REPLAY from the broker's ring, by the
    link's subscriber (hvn_subscriber.h): the missing notifications arrive
    in order before the one that revealed the gap, and no loss is counted
    (stats.replays). What the ring no longer holds is a loss as below.

    Every loss is detected and repaired. Four detections, each counted:
      - a seq gap: a notification (or a publisher heartbeat) beyond the next
        seq expected from its publisher instance;
      - a stale heartbeat: once the replica has applied a publisher instance
        up to the seq its heartbeat carries, the heartbeat's node list and
        the nodes the replica holds for that host differ;
      - a broker restart: a broker heartbeat names a broker_id other than
        the one that link knew;
      - silence: nothing at all from a broker for more than three of its
        advertised heartbeat intervals.
    Each schedules a repair: a fresh snapshot (the service endpoints asked
    in turn, the most recently heard broker first, until one answers) that
    replaces the view. Detections made while a repair is pending join it; a
    failed repair is retried with backoff; a stale heartbeat that a snapshot
    cannot cure is not acted upon more than once per heartbeat interval.
    stats.losses counts detections; stats.repaired the detections that a
    completed snapshot has since covered, so the two are equal whenever no
    repair is pending.

    The caller learns every change of the view through opts.fn, called from
    hvn_replica_poll(). Threading: one replica, one thread at a time.
*/
#ifndef HVN_REPLICA_H_INCLUDED
#define HVN_REPLICA_H_INCLUDED

#include "hvn_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_REPLICA_BROKERS_MAX 8 //  Links one replica may have

//  One node of the view: the last create/update applied for it
typedef struct {
    hvn_node_t node;                       //  nova_object.data as last applied
    char host[HVN_TOPIC_MAX + 1];          //  The topic's host (the publisher's)
    uint8_t instance[16];                  //  Publisher instance that sent it
    uint64_t seq;                          //  Its seq
    char timestamp[HVN_TIMESTAMP_LEN + 1]; //  Its envelope timestamp: the last change
} hvn_replica_node_t;

//  What changed
typedef enum {
    HVN_REPLICA_CREATED = 1, //  A node entered the view
    HVN_REPLICA_UPDATED,     //  A node of the view changed
    HVN_REPLICA_DELETED,     //  A node left the view (or a delete for one it lacked)
    HVN_REPLICA_REPLACED,    //  A snapshot was applied: the view is the broker's
    HVN_REPLICA_HEARTBEAT    //  A heartbeat (publisher or broker) arrived
} hvn_replica_change_t;

//  One change, valid only for the duration of the callback
typedef struct {
    hvn_replica_change_t change;    //  What happened
    const hvn_replica_node_t *node; //  CREATED/UPDATED: the node now; DELETED: as it
                                    //  was, or NULL when the view lacked it; else NULL
    const hvn_msg_t *msg;           //  The live message or snapshot item behind it;
                                    //  NULL for a node a snapshot removed, and REPLACED
    bool from_snapshot;             //  The change was made by a snapshot
} hvn_replica_event_t;

typedef void(hvn_replica_fn)(const hvn_replica_event_t *event, void *arg);

typedef struct {
    const char *const *backends; //  Broker backend endpoints, one per broker; required
    const char *const *services; //  Broker service endpoints, paired with backends by order
    size_t broker_count;         //  Entries in each, 1..HVN_REPLICA_BROKERS_MAX
    const char *host;            //  Only this host's nodes (exact); NULL = all
    const char *curve_secret;    //  Client certificate file; NULL = plain
    const char *curve_server;    //  Broker's public certificate file
    int rcvhwm;                  //  SUB receive high water mark; 0 = library default
    int snapshot_timeout_ms;     //  Wait for each snapshot reply; 0 = 5000
    int heartbeat_ms;            //  Broker interval assumed until one advertises; 0 = 10000
    hvn_replica_fn *fn;          //  Told of every change; NULL = nobody
    void *arg;                   //  For fn
} hvn_replica_opts_t;

typedef struct _hvn_replica_t hvn_replica_t;

//  Connects and subscribes to every broker; the first snapshot is taken by
//  the first hvn_replica_poll(). Returns NULL (logged) on invalid options or
//  when a socket cannot be set up. Options are copied.
hvn_replica_t *hvn_replica_new(const hvn_replica_opts_t *opts);

//  Closes everything and frees. NULL-safe; sets *self_p to NULL.
void hvn_replica_destroy(hvn_replica_t **self_p);

//  Waits up to timeout_ms (-1 = forever; 0 = only what is due now) for live
//  messages or a due snapshot, and handles them, calling opts.fn for each
//  change. Returns after one batch of messages (at most a few hundred per
//  broker) or one applied snapshot, or at the timeout: the number of live
//  messages handled (0 after a snapshot or a quiet timeout), or -1 when
//  interrupted (czmq's SIGINT/SIGTERM handler set zsys_interrupted).
int hvn_replica_poll(hvn_replica_t *self, int timeout_ms);

//  Takes a snapshot now (as a repair would) and returns 0 when one was
//  applied, -1 when no service answered (a repair is then scheduled).
int hvn_replica_sync(hvn_replica_t *self);

//  Returns the node with this uuid (canonical text), or NULL. The node is
//  owned by the replica; valid until the next poll or sync.
const hvn_replica_node_t *hvn_replica_get(hvn_replica_t *self, const char *uuid);

//  Calls fn for every node of the view, in no particular order; stops when
//  fn returns nonzero. Returns the number of nodes visited. fn may call
//  hvn_replica_get (of any replica) but must not poll or sync this one.
typedef int(hvn_replica_node_fn)(const hvn_replica_node_t *node, void *arg);
size_t hvn_replica_foreach(hvn_replica_t *self, hvn_replica_node_fn *fn, void *arg);

//  Returns the seq that the last applied snapshot's END named for a
//  publisher instance (16 raw bytes): what the view covers of it, so a
//  consumer that recorded a lower seq before a restart knows which seqs
//  it missed (and may REPLAY them). 0 when the snapshot did not name it.
uint64_t hvn_replica_snapshot_seq(hvn_replica_t *self, const uint8_t instance[16]);

//  Returns the number of nodes in the view.
size_t hvn_replica_size(hvn_replica_t *self);

//  Returns true once a snapshot has been applied and no repair is pending.
bool hvn_replica_synced(hvn_replica_t *self);

typedef struct {
    uint64_t nodes;            //  Nodes in the view
    uint64_t publishers;       //  Publisher instances tracked
    uint64_t received;         //  Valid live messages, all links
    uint64_t applied;          //  Live notifications applied to the view
    uint64_t duplicates;       //  Notifications already applied (the other broker's copy)
    uint64_t stale;            //  Live notifications the last snapshot already held
    uint64_t refused;          //  Invalid messages and snapshot items, skipped
    uint64_t gaps;             //  Detections: seq gaps
    uint64_t missed;           //  Notifications lost in those gaps
    uint64_t stale_heartbeats; //  Detections: heartbeats disagreeing with the view
    uint64_t broker_restarts;  //  Detections: a new broker_id
    uint64_t silences;         //  Detections: a broker silent past three intervals
    uint64_t losses;           //  All detections (the four above)
    uint64_t repaired;         //  Detections covered by a completed repair
    uint64_t replays;          //  Seq gaps repaired by REPLAY from a broker's ring, all
                               //  links (these are not losses: no snapshot needed)
    uint64_t replayed;         //  Notifications those REPLAYs brought back
    uint64_t replays_short;    //  REPLAYs short of the gap (ring wrapped): a snapshot repairs
    uint64_t replays_failed;   //  REPLAYs not answered: a snapshot repairs
    uint64_t repairs;          //  Repair snapshots completed
    uint64_t repairs_failed;   //  Snapshot attempts that failed (no answer, bad reply)
    uint64_t snapshots;        //  Snapshots applied, the first included
    uint64_t denials;          //  Backend handshakes refused, all links
                               //  (see hvn_subscriber_redial)
    uint64_t redials;          //  Refusing backends dialled again, all links
} hvn_replica_stats_t;

//  Copies the counters into *out.
void hvn_replica_stats(hvn_replica_t *self, hvn_replica_stats_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
