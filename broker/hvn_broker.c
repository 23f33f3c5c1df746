/*  hvn_broker.c — the hvnotify broker: validate, cache, fan out.

    The one idea: a notification is forwarded as the very zmq_msg_t parts
    it arrived in. The broker decodes each message once to check it and to
    learn its node, seq and kind, then moves the parts to the backend
    (zmq_msg_send takes them over) — no re-encoding, no copy. Only the cache
    copies, and only the bytes (see hvn_cache.h for why not the messages).

    Nothing a peer sends can stop the broker: every message is received
    part by part into zmq_msg_t's, at most three are kept, extra parts are
    drained, and every refusal is counted by reason and logged at most once
    a second (hvn_rejects_t). High water marks are set on purpose per
    socket; the comments at each say why.

    Sections: helpers, the four handlers, the loop, construction.
*/
#include "hvn_broker.h"
#include "hvn_auth.h"
#include "hvn_cache.h"
#include "hvn_codec.h"
#include "hvn_error.h"
#include "hvn_ids.h"
#include "hvn_limits.h"
#include "hvn_ring.h"
#include "hvn_seqmap.h"
#include "hvn_state.h"
#include "hvn_service.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uuid/uuid.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

//  Messages handled per socket per wake-up: big enough that a busy frontend
//  costs one poll per thousand messages, small enough that the service and
//  the timer still get their turn within a millisecond or two.
#define S_BATCH_FRONTEND 1024
#define S_BATCH_BACKEND 1024
#define S_BATCH_SERVICE 64
#define S_BATCH_MONITOR 1024

//  Longest sleep in zmq_poll. A signal interrupts the poll anyway; the bound
//  makes sure zsys_interrupted is seen even if the signal went elsewhere.
#define S_POLL_MAX_MS 250

//  CURVE on: how often the certificate directories are looked at, so that
//  a certificate removed or changed takes effect on open connections
#define S_AUTH_REFRESH_MS 1000

//  Backend XPUB: up to this many messages queue for one subscriber before
//  XPUB drops that subscriber's excess. A drop shows up to it as a seq gap,
//  and it re-snapshots. The default 1000 drops during ordinary bursts
//  (9-15 % measured through a bare proxy at full speed); 100 000 rides
//  out a burst of the whole fleet at once. ZMQ_XPUB_NODROP is not used:
//  with it one slow subscriber would stall every other one (libzmq #4469).
//  libzmq bounds a queue in messages only, so what one subscriber that
//  never reads can pin is the queue times the largest message forwarded:
//  --subscriber-bytes cuts the queue to fit (s_subscriber_queue).
#define S_BACKEND_SNDHWM 100000
//  What one queued message costs libzmq beyond its bytes: three 64-byte
//  msg_t slots and the allocator's bookkeeping. A small message received
//  without copy (ZMQ_ZERO_COPY_RECV, on by default) may keep its whole
//  receive buffer alive: S_RECV_BUFFER (libzmq's 8 KiB batch) is the least
//  a queued message is counted for.
#define S_MSG_OVERHEAD 256
#define S_RECV_BUFFER 8192

//  Frontend XSUB: publishers' messages queue here while the loop is busy (a
//  large snapshot, a burst), rather than being dropped at the publishers'
//  XPUBs. Same size and reasoning as the backend.
#define S_FRONTEND_RCVHWM 100000

//  Service ROUTER: a snapshot is served in slices from the loop, so that
//  forwarding never waits for a big one; each slice stops at the client's
//  high water mark (ZMQ_ROUTER_MANDATORY makes a full queue EAGAIN, never a
//  silent drop) and resumes when the client has read some. libzmq counts
//  the queue in messages: what it holds for one client is at most
//  S_SERVICE_SNDHWM times the largest item sent to it, and that is what a
//  snapshot is counted for against --snapshot-bytes (s_snapjob_reserve).
//  After END the snapshot still counts until the client's connection has
//  nothing left to send (SIOCOUTQ 0), and a client that takes nothing for
//  --snapshot-stall-ms is cut: libzmq frees what it queued for it.
#define S_SERVICE_SNDHWM 10000
#define S_SNAPSHOT_SLICE 2048     //  Items sent per snapshot per wake-up
#define S_SNAPSHOTS_MAX 64        //  Snapshots in progress at once
#define S_SNAPSHOT_SHARE 4        //  One peer: at most 1/4 of the slots and the bytes
#define S_SNAPSHOT_RETRY_MS 2     //  Poll wait while every snapshot waits for its client
#define S_ITEM_OVERHEAD 320       //  Four msg_t slots and two heap blocks per ITEM
#define S_TRIM_DELAY_MS 100       //  libzmq frees a cut connection's queue in its own thread
#define S_TRIM_EVERY_MS 1000      //  Freed memory handed back at most this often

//  Frames larger than this are not even received: libzmq drops the peer's
//  connection. It is a guard against a peer making the broker allocate
//  gigabytes; anything between the body limit and this is received, then
//  refused as too_big and counted.
#define S_FRAME_HARD_MIN (16 * 1024 * 1024)
#define S_CONTROL_FRAME_MAX 65536 //  Service requests
//  Subscriptions: one byte, then a prefix no longer than a topic. libzmq
//  keeps every prefix a subscriber sends (manual mode: to unsubscribe it
//  at the close) whether the broker applies it or not, so a frame much
//  longer is not received at all: libzmq drops the connection. The limit
//  also applies to the handshake, whose CURVE INITIATE (vouch and
//  metadata) is about 300 bytes: 1 KiB leaves it room.
#define S_SUBSCRIPTION_FRAME_MAX 1024
//  Refused subscriptions a backend connection may send before the broker
//  cuts it (each one stays in libzmq's memory until the close)
#define S_REFUSED_PER_CONN 64
#define S_BACKEND_RCVBUF 65536 //  Kernel receive buffer of a subscriber's connection
#define S_BACKEND_RCVHWM 256   //  Subscriptions queued from one subscriber

//  Publisher instances tracked for the END frame's seq map, and how many
//  of their heartbeat intervals of silence make the broker forget one.
#define S_SEQMAP_MAX 262144
#define S_SEQMAP_INTERVALS 10

//  Largest step a publisher instance's seq may take from one message to the
//  next the broker sees: 2^40 notifications, 127 days at 100 000 a second,
//  so a legitimate gap (the broker away while a publisher kept counting)
//  always fits, and 2^64 - 1 sent as a poison never does.
#define S_SEQ_JUMP_MAX (UINT64_C(1) << 40)

//  --state-file: written at most this often when a binding changed, and
//  this often when only seqs moved
#define S_STATE_SAVE_MS 1000
#define S_STATE_SEQS_MS 30000

#define S_LOG_INTERVAL_MS 1000 //  Rate-limited log lines: at most one a second
#define S_PARTS_KEPT 3         //  Parts of a message kept; the rest are drained
#define S_SERVICE_PARTS 5      //  Parts of a service request kept: id, REPLAY and its three

//  A log line that repeats at most once a second, counting the rest.
typedef struct {
    int64_t last_ms;     //  Monotonic time of the last line
    uint64_t suppressed; //  Events since that line not logged
    int logged;          //  Nonzero once a line has been written
} s_ratelog_t;

//  A snapshot being served: the keys of the nodes it covers, taken when it
//  was asked for, and the publishers' seqs at that moment. Each node is
//  sent as it is when its turn comes (or skipped if deleted meanwhile):
//  whatever changed after the request also reaches the client live, with a
//  seq above the END's, so applying both ends in the current state.
typedef struct _s_snapjob_t s_snapjob_t;
struct _s_snapjob_t {
    s_snapjob_t *next;              //  Next snapshot in progress, or NULL
    uint8_t *id;                    //  Client's routing id
    size_t id_size;                 //  Its bytes
    char prefix[HVN_TOPIC_MAX + 1]; //  Prefix as printable text, for logs
    uint8_t (*keys)[16];            //  Node uuids to send
    size_t count;                   //  Keys held
    size_t next_key;                //  Next one to send
    long sent;                      //  Items sent
    hvn_end_publisher_t *publishers; //  The publishers' seqs at the request, for END
    size_t publisher_count;          //  Entries in publishers
    size_t publishers_cap;           //  Entries allocated
    int64_t blocked_ms;             //  Since when the client's queue is full; 0 = not
    int64_t asked_us;               //  When it was asked for (zclock_usecs)
    char *peer;                     //  Who asked (hvn_limits.h), for its share
    int fd;                         //  The request's connection (ZMQ_SRCFD); -1 unknown
    size_t item_max;                //  Largest ITEM cost seen for it, bytes
    size_t end_size;                //  What its END will cost, about, bytes
    size_t reserved;                //  Bytes it counts for against snapshot_bytes
    int64_t ended_ms;               //  When END was queued; 0 = not yet
    int outq;                       //  Bytes its connection's kernel queue held; -1 unread
};

struct _hvn_broker_t {
    zsock_t *frontend;                 //  XSUB, bound; publishers connect
    zsock_t *backend;                  //  XPUB, bound; subscribers connect
    zsock_t *service;                  //  ROUTER, bound; snapshot and stats
    zmq_pollitem_t items[6];           //  The three sockets' libzmq handles, then the monitors
    int nitems;                        //  Items polled: 6
    zsock_t *monitor[3];               //  PAIRs reading the sockets' events (s_handle_monitor)
    int track_conns;                   //  Backend not inproc: subscriptions counted per connection
    char *endpoint[3];                 //  Resolved bound endpoints, same order
    char name[HVN_TOPIC_MAX + 1];      //  Broker name, hvn.broker@<name>
    char id[HVN_UUID_STR_LEN + 1];     //  Instance id as UUID text
    uint8_t instance[16];              //  Instance id, fresh per start
    size_t max_msg_size;               //  Largest notification body accepted, bytes
    size_t max_heartbeat_size;         //  Largest publisher heartbeat body accepted, bytes
    size_t max_publisher_nodes;        //  Most nodes a publisher heartbeat may list
    int64_t heartbeat_ms;              //  Our heartbeat interval
    int64_t started_ms;                //  Monotonic start time
    int64_t now_ms;                    //  Monotonic time of this wake-up
    int64_t next_heartbeat_ms;         //  When our next heartbeat is due
    hvn_decoder_t *decoder;            //  Validates every frontend message
    hvn_encoder_t *encoder;            //  Encodes our heartbeats
    hvn_msg_t msg;                     //  The message being handled, decoded
    zmq_msg_t parts[S_SERVICE_PARTS];  //  Its frames as received (a service request's too)
    const uint8_t *data[S_PARTS_KEPT]; //  Their bytes, read once per message
    size_t size[S_PARTS_KEPT];         //  Their sizes, same
    uint8_t key[16];                   //  Node uuid of self->msg, raw; when has_key
    int has_key;                       //  Nonzero when key holds the node's uuid
    int moved;                         //  Nonzero when its parts went to the backend
    hvn_cache_t *cache;                //  Node uuid -> last create/update frames
    hvn_seqmap_t *seqmap;              //  Publisher instance -> last seq
    hvn_ring_t *ring;                  //  Notifications forwarded last, for REPLAY
    s_ratelog_t log_replay;            //  Replays cut short, ring errors
    hvn_auth_t *auth;                  //  CURVE on: ZAP handler and key -> host; else NULL
    int64_t next_auth_ms;              //  CURVE on: when the key directories are looked at
    hvn_sublimit_t *sublimit;          //  Subscriptions per peer (backend, manual XPUB)
    hvn_ratelimit_t *snaplimit;        //  Snapshot requests per second per peer
    size_t max_topic_size;             //  Longest topic accepted
    s_ratelog_t log_limits;            //  Limits hit
    s_ratelog_t log_handshakes;        //  Handshakes failed before ZAP
    s_ratelog_t log_accept;            //  Connections libzmq could not accept
    hvn_broker_stats_t stats;          //  Counters, as STATS reports them
    hvn_stats_t *report;               //  The counters as rows, for STATS and the log
    char *state_path;                  //  --state-file, or NULL: bindings kept in memory only
    hvn_idmap_t *owners;               //  Nodes the state file binds, not in the cache yet
    int bindings_dirty;                //  A node or instance binding changed since the save
    int seqs_dirty;                    //  An instance's seq moved since the save
    int64_t saved_ms;                  //  When the state file was last written
    s_ratelog_t log_state;             //  State file errors
    s_ratelog_t log_service;           //  Refused service requests
    s_ratelog_t log_snapshot;          //  Snapshots served or cut short
    s_ratelog_t log_untracked;         //  Instances the seq map had no room for
    s_ratelog_t log_trouble;           //  Forward and cache errors
    s_ratelog_t log_pruned;            //  Nodes pruned on a heartbeat
    s_snapjob_t *snapshots;            //  Snapshots in progress, oldest first
    size_t snapshots_active;           //  How many
    size_t snapshot_bytes_max;         //  --snapshot-bytes
    size_t snapshot_reserved;          //  What the snapshots in progress count for
    int64_t snapshot_stall_ms;         //  --snapshot-stall-ms
    int subscriber_queue;              //  Backend SNDHWM: messages per subscriber
    int64_t trim_ms;                   //  When to hand freed memory back; 0 = not due
    int64_t trimmed_ms;                //  When it was last handed back
    uint64_t instances_seen;           //  Clock of publisher appearances, for the seq map
    hvn_broker_tick_fn *tick;          //  Called after each wake-up of hvn_broker_run, or NULL
    void *tick_arg;                    //  For tick
};

enum { S_FRONTEND = 0, S_BACKEND = 1, S_SERVICE = 2, S_MONITOR = 3 };

//  A uint64 counter of the stats struct and its name in STATS: the rows
//  hvn_broker_stats_table() starts with, so that a counter is a field of
//  hvn_broker_stats_t and one line here; STATS and the log line at exit
//  walk the table.
static const struct {
    const char *name; //  Key in the STATS map
    size_t offset;    //  Where it lives in hvn_broker_stats_t
} s_counters[] = {
    {"received", offsetof(hvn_broker_stats_t, received)},
    {"forwarded", offsetof(hvn_broker_stats_t, forwarded)},
    {"notifications", offsetof(hvn_broker_stats_t, notifications)},
    {"syncs", offsetof(hvn_broker_stats_t, syncs)},
    {"syncs_stale", offsetof(hvn_broker_stats_t, syncs_stale)},
    {"heartbeats_in", offsetof(hvn_broker_stats_t, heartbeats_in)},
    {"heartbeats_out", offsetof(hvn_broker_stats_t, heartbeats_out)},
    {"forward_errors", offsetof(hvn_broker_stats_t, forward_errors)},
    {"cache_errors", offsetof(hvn_broker_stats_t, cache_errors)},
    {"snapshots", offsetof(hvn_broker_stats_t, snapshots)},
    {"snapshots_failed", offsetof(hvn_broker_stats_t, snapshots_failed)},
    {"snapshots_stalled", offsetof(hvn_broker_stats_t, snapshots_stalled)},
    {"snapshot_us", offsetof(hvn_broker_stats_t, snapshot_us)},
    {"snapshot_last_us", offsetof(hvn_broker_stats_t, snapshot_last_us)},
    {"service_refused", offsetof(hvn_broker_stats_t, service_refused)},
    {"publishers_untracked", offsetof(hvn_broker_stats_t, publishers_untracked)},
    {"pruned", offsetof(hvn_broker_stats_t, pruned)},
    {"limited_nodes", offsetof(hvn_broker_stats_t, limited_nodes)},
    {"limited_subscriptions", offsetof(hvn_broker_stats_t, limited_subscriptions)},
    {"limited_snapshots", offsetof(hvn_broker_stats_t, limited_snapshots)},
    {"handshakes_failed", offsetof(hvn_broker_stats_t, handshakes_failed)},
    {"accept_failed", offsetof(hvn_broker_stats_t, accept_failed)},
    {"replays", offsetof(hvn_broker_stats_t, replays)},
    {"replay_items", offsetof(hvn_broker_stats_t, replay_items)},
    {"replays_short", offsetof(hvn_broker_stats_t, replays_short)},
    {"replays_failed", offsetof(hvn_broker_stats_t, replays_failed)},
    {"replays_refused", offsetof(hvn_broker_stats_t, replays_refused)},
    {"replay_us", offsetof(hvn_broker_stats_t, replay_us)},
    {"replay_last_us", offsetof(hvn_broker_stats_t, replay_last_us)},
    {"ring_errors", offsetof(hvn_broker_stats_t, ring_errors)},
    {"subscribers_cut", offsetof(hvn_broker_stats_t, subscribers_cut)},
};
#define S_COUNTERS (sizeof(s_counters) / sizeof(s_counters[0]))

// --------------------------------------------------------------------------
//  Helpers

//  Returns nothing; the time since since_us (zclock_usecs) is added to
//  *total_us and kept in *last_us: how long one answer took.
static void s_took(uint64_t *total_us, uint64_t *last_us, int64_t since_us)
{
    int64_t took = zclock_usecs() - since_us;
    *last_us = took > 0 ? (uint64_t)took : 0;
    *total_us += *last_us;
}

//  Returns 1 when the caller should log this event now (and how many were
//  suppressed since the last line in *suppressed), 0 when it was counted as
//  suppressed instead.
static int s_ratelog_due(s_ratelog_t *self, int64_t now_ms, uint64_t *suppressed)
{
    if (self->logged && now_ms - self->last_ms < S_LOG_INTERVAL_MS) {
        self->suppressed++;
        return 0;
    }
    *suppressed = self->suppressed;
    self->suppressed = 0;
    self->last_ms = now_ms;
    self->logged = 1;
    return 1;
}

//  Returns nothing; out holds up to out_size - 1 bytes of a frame as
//  printable text (other bytes as '?'), for log lines.
static void s_frame_text(char *out, size_t out_size, zmq_msg_t *frame)
{
    const unsigned char *data = zmq_msg_data(frame);
    size_t size = zmq_msg_size(frame);
    size_t i = 0;
    for (; i < size && i + 1 < out_size; i++)
        out[i] = data[i] >= 0x20 && data[i] < 0x7F ? (char)data[i] : '?';
    out[i] = '\0';
}

//  Returns 1 when frame holds exactly the text `word`, else 0.
static int s_frame_is(zmq_msg_t *frame, const char *word)
{
    size_t len = strlen(word);
    return zmq_msg_size(frame) == len && memcmp(zmq_msg_data(frame), word, len) == 0;
}

//  Returns the number of parts of the next message on `handle`, the first
//  max of them in parts[] (the caller closes them), the rest
//  received and dropped; 0 when no message is waiting; -1 on a socket error
//  (errno set; parts[] then holds nothing to close).
static int s_recv_parts_max(void *handle, zmq_msg_t *parts, int max)
{
    int count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *part = count < max ? &parts[count] : &extra;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, handle, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(part);
            for (int i = 0; i < count && i < max; i++)
                zmq_msg_close(&parts[i]);
            errno = err;
            return count == 0 && err == EAGAIN ? 0 : -1;
        }
        more = zmq_msg_more(part);
        if (part == &extra)
            zmq_msg_close(&extra);
        count++;
    }
    return count;
}

//  Returns as s_recv_parts_max, keeping S_PARTS_KEPT parts.
static int s_recv_parts(void *handle, zmq_msg_t *parts)
{
    return s_recv_parts_max(handle, parts, S_PARTS_KEPT);
}

//  Returns nothing; closes the kept parts of a message of `count` parts.
//  A part already moved by zmq_msg_send is empty, and closing it is a no-op.
static void s_close_parts(zmq_msg_t *parts, int count)
{
    for (int i = 0; i < count && i < S_PARTS_KEPT; i++)
        zmq_msg_close(&parts[i]);
}

//  Returns 0 when the frame was queued, -1 when not (errno: EHOSTUNREACH,
//  the client is gone; EAGAIN, its queue is full).
static int s_send(void *handle, const void *data, size_t size, int more)
{
    return zmq_send(handle, data, size, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0 ? -1 : 0;
}

//  Returns nothing; counts one refused frontend message and logs it
//  (rate-limited) with its topic.
static void s_refuse(hvn_broker_t *self, hvn_reason_t reason, const char *detail)
{
    char topic[HVN_TOPIC_MAX + 1];
    s_frame_text(topic, sizeof(topic), &self->parts[0]);
    hvn_rejects_add(&self->stats.rejects, reason, detail, topic[0] ? topic : NULL);
}

//  Returns nothing; logs a trouble line (forward or cache error),
//  rate-limited.
static void s_trouble(hvn_broker_t *self, const char *what)
{
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_trouble, self->now_ms, &suppressed))
        zsys_error("%s (forward errors %" PRIu64 ", cache errors %" PRIu64 ", %" PRIu64
                   " such lines suppressed)",
                   what, self->stats.forward_errors, self->stats.cache_errors, suppressed);
}

//  Returns who sent frame, for per-peer limits (see hvn_limits.h): its
//  CURVE key when CURVE is on, else its IP address, else "" (ipc://).
//  The string belongs to the frame.
static const char *s_peer(zmq_msg_t *frame)
{
    const char *peer = zmq_msg_gets(frame, "User-Id");
    if (!peer || !*peer)
        peer = zmq_msg_gets(frame, "Peer-Address");
    return peer ? peer : "";
}

//  Returns nothing; a limit was hit: logged, rate-limited, with its
//  counter's total.
static void s_limit_log(hvn_broker_t *self, const char *what, const char *peer, uint64_t total)
{
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_limits, self->now_ms, &suppressed))
        zsys_warning("limit: %s (peer '%s'; %" PRIu64 " so far, %" PRIu64
                     " limit lines suppressed since last line)",
                     what, peer, total, suppressed);
}

//  Returns nothing; the memory libzmq frees for a connection that closed
//  or was cut (its queue) goes back to the system soon, at most once a
//  second: glibc keeps freed memory in its arenas otherwise, and the
//  broker's resident size would stay at its peak.
static void s_trim_soon(hvn_broker_t *self)
{
    if (self->trim_ms)
        return;
    self->trim_ms = self->now_ms + S_TRIM_DELAY_MS;
    if (self->trim_ms < self->trimmed_ms + S_TRIM_EVERY_MS)
        self->trim_ms = self->trimmed_ms + S_TRIM_EVERY_MS;
}

//  Returns nothing; freed memory is handed back when it is due.
static void s_trim(hvn_broker_t *self)
{
    if (!self->trim_ms || self->now_ms < self->trim_ms)
        return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    //  The next no sooner than a second from now
    self->trim_ms = 0;
    self->trimmed_ms = self->now_ms;
}

// --------------------------------------------------------------------------
//  Frontend: validate, cache, forward

//  Returns 1 when the notification or sync in self->msg is no newer than
//  the cached entry of the same node from the same publisher instance
//  (a replay, or a sync of a state already overtaken), else 0. The cache
//  keeps each node's newest message by (instance, seq).
static int s_is_stale(hvn_broker_t *self, const uint8_t key[16])
{
    hvn_cache_item_t item;
    hvn_header_t cached;
    if (!hvn_cache_lookup(self->cache, key, &item))
        return 0;
    if (hvn_header_unpack(item.header, HVN_HEADER_SIZE, &cached) != HVN_OK)
        return 0;
    if (memcmp(cached.instance, self->msg.header.instance, 16) != 0)
        return 0;
    if (cached.seq > self->msg.header.seq && self->msg.header.kind == HVN_KIND_SYNC)
        self->stats.syncs_stale++;
    return cached.seq >= self->msg.header.seq;
}

//  Returns nothing; the cache reflects the notification or sync in
//  self->msg: a create/update stored as received, a delete removed; one
//  no newer than the node's cached message (same instance) changes nothing.
static void s_cache_store(hvn_broker_t *self)
{
    if (!self->has_key)
        return; //  The decoder checked the uuid; unreachable in practice
    if (s_is_stale(self, self->key))
        return;
    //  Whatever the state file bound this node to, the cache says it now
    if (hvn_idmap_size(self->owners))
        free(hvn_idmap_remove(self->owners, self->key));
    if (self->msg.event == HVN_EVENT_DELETE) {
        if (hvn_cache_delete(self->cache, self->key))
            self->bindings_dirty = 1;
        return;
    }
    int rc = hvn_cache_put(self->cache, self->key, self->data[0], self->size[0], self->data[1],
                           self->data[2], self->size[2]);
    if (rc < 0) {
        self->stats.cache_errors++;
        s_trouble(self, "cache: out of memory, a node was not stored");
    } else if (rc == 1)
        self->bindings_dirty = 1;
}

//  Returns 1 when the message in self->msg was refused (counted, logged)
//  for what its header's publisher instance says, else 0 (the instance is
//  then bound to the message's host, or the map had no room: counted as
//  untracked by s_track_seq). An instance belongs to the host that named
//  it first: another host using it is not_authorized. A notification
//  whose seq is not above its instance's last is a replay (stale); a seq
//  more than S_SEQ_JUMP_MAX past the instance's last is refused as
//  bad_value, so that no single message can make every replica take the
//  instance's next S_SEQ_JUMP_MAX real messages for duplicates.
static int s_instance_refused(hvn_broker_t *self)
{
    const hvn_header_t *header = &self->msg.header;
    size_t known = hvn_seqmap_size(self->seqmap);
    int bound = hvn_seqmap_bind(self->seqmap, header->instance, self->msg.host, self->now_ms,
                                self->instances_seen + 1);
    if (bound < 0)
        return 0;
    if (hvn_seqmap_size(self->seqmap) != known)
        self->bindings_dirty = 1;
    char detail[HVN_TOPIC_MAX + 128];
    char text[HVN_UUID_STR_LEN + 1];
    uuid_unparse_lower(header->instance, text);
    if (bound == 0) {
        snprintf(detail, sizeof(detail), "publisher instance %s belongs to host '%s'", text,
                 hvn_seqmap_host(self->seqmap, header->instance));
        s_refuse(self, HVN_R_NOT_AUTHORIZED, detail);
        return 1;
    }
    self->instances_seen++; //  The clock only has to grow as instances appear
    uint64_t last = 0;
    hvn_seqmap_get(self->seqmap, header->instance, &last);
    if (header->kind == HVN_KIND_NOTIFICATION && header->seq <= last) {
        snprintf(detail, sizeof(detail), "seq %" PRIu64 " of instance %s, last %" PRIu64,
                 header->seq, text, last);
        s_refuse(self, HVN_R_STALE, detail);
        return 1;
    }
    if (header->seq > last && header->seq - last > S_SEQ_JUMP_MAX) {
        snprintf(detail, sizeof(detail), "seq %" PRIu64 " jumps past instance %s's last %" PRIu64,
                 header->seq, text, last);
        s_refuse(self, HVN_R_BAD_VALUE, detail);
        return 1;
    }
    return 0;
}

//  Returns nothing; the seq map holds the message's seq for its instance.
static void s_track_seq(hvn_broker_t *self)
{
    const hvn_header_t *header = &self->msg.header;
    self->seqs_dirty = 1;
    if (hvn_seqmap_update(self->seqmap, header->instance, header->seq, self->now_ms,
                          ++self->instances_seen) == 0)
        return;
    self->stats.publishers_untracked++;
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_untracked, self->now_ms, &suppressed))
        zsys_warning("seq map full (%zu publisher instances): instance of '%s' not tracked "
                     "(%" PRIu64 " total, %" PRIu64 " suppressed since last line)",
                     hvn_seqmap_size(self->seqmap), self->msg.topic,
                     self->stats.publishers_untracked, suppressed);
}

//  Returns 1 when the body of the message in self->parts is over its limit:
//  max_heartbeat_size for a publisher heartbeat's topic, max_msg_size for
//  anything else. Checked before decoding, so an oversized body costs no
//  parse.
static int s_too_big(hvn_broker_t *self)
{
    size_t size = self->size[2];
    if (size <= self->max_msg_size)
        return 0;
    static const char prefix[] = HVN_EVENT_HEARTBEAT_NAME "@";
    size_t len = sizeof(prefix) - 1;
    int heartbeat = self->size[0] > len && memcmp(self->data[0], prefix, len) == 0;
    return !heartbeat || size > self->max_heartbeat_size;
}

//  Returns nothing; the cached nodes of the heartbeat's host that it does
//  not list are removed (PROTOCOL.md section 4), unless its publisher
//  instance sent them after the heartbeat's seq. A delete lost while the
//  broker was away, or a publisher restarted without its state, would
//  otherwise leave a node in every snapshot forever.
static void s_prune_owners(hvn_broker_t *self);

static void s_prune(hvn_broker_t *self)
{
    const hvn_msg_t *msg = &self->msg;
    if (hvn_idmap_size(self->owners))
        s_prune_owners(self);
    //  An instance not known yet (no notification since this broker
    //  started) is the newest there is.
    hvn_seqmap_newer_t newer;
    hvn_seqmap_newer_init(&newer, self->seqmap, msg->header.instance);
    size_t removed =
        hvn_cache_prune(self->cache, msg->host, msg->nodes, msg->node_count, msg->header.instance,
                        msg->header.seq, hvn_seqmap_newer, &newer);
    if (!removed)
        return;
    self->stats.pruned += removed;
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_pruned, self->now_ms, &suppressed))
        zsys_info("cache: %zu node(s) of host '%s' pruned: not in its heartbeat (%" PRIu64
                  " total, %" PRIu64 " such lines suppressed)",
                  removed, msg->host, self->stats.pruned, suppressed);
}

//  Returns nothing; the nodes the state file bound to the heartbeat's host
//  that the heartbeat does not list are that host's no more (as a pruned
//  cache entry would be). The list goes into a table first: the
//  heartbeat's uuids are 16-byte items as hvn_idmap wants them.
static void s_prune_owners(hvn_broker_t *self)
{
    const hvn_msg_t *msg = &self->msg;
    hvn_idmap_t *listed = hvn_idmap_new();
    for (size_t i = 0; listed && i < msg->node_count; i++)
        if (!hvn_idmap_lookup(listed, msg->nodes[i]) &&
            hvn_idmap_insert(listed, (void *)msg->nodes[i]) != 0)
            hvn_idmap_destroy(&listed);
    if (!listed)
        return; //  Out of memory: the bindings stay, which is the safe side
    size_t slot = 0;
    while (slot < hvn_idmap_slots(self->owners)) {
        hvn_owner_t *owner = hvn_idmap_at(self->owners, slot);
        if (owner && streq(owner->host, msg->host) && !hvn_idmap_lookup(listed, owner->node)) {
            free(hvn_idmap_remove(self->owners, owner->node));
            self->bindings_dirty = 1;
            continue; //  Another item may have moved into this slot
        }
        slot++;
    }
    hvn_idmap_destroy(&listed);
}

//  Returns nothing; the three parts are moved to the backend (or counted
//  as a forward error).
static void s_forward(hvn_broker_t *self)
{
    void *backend = self->items[S_BACKEND].socket;
    zmq_msg_t *parts = self->parts;
    if (zmq_msg_send(&parts[0], backend, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&parts[1], backend, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&parts[2], backend, ZMQ_DONTWAIT) < 0) {
        self->stats.forward_errors++;
        s_trouble(self, "backend: a message could not be forwarded");
        return;
    }
    self->stats.forwarded++;
    self->moved = 1;
}

//  Returns nothing; the notification in self->parts is kept in the replay
//  ring (a copy of its bytes), or counted as a ring error when memory is
//  out.
static void s_ring_keep(hvn_broker_t *self)
{
    if (hvn_ring_put(self->ring, self->msg.header.instance, self->msg.header.seq, self->data[0],
                     self->size[0], self->data[1], self->data[2], self->size[2]) >= 0)
        return;
    self->stats.ring_errors++;
    s_trouble(self, "ring: out of memory, a notification was not kept for REPLAY");
}

//  Returns 1 when the message in self->msg was refused (counted, logged)
//  because its sender's key is not bound to the message's host, or the
//  node it is about is cached for another host; else 0. The key is the
//  connection's ZAP User-Id, attached by libzmq to every frame; hvn_auth
//  caches the key's host, so this is a map lookup, a cache lookup and a few
//  string compares per message. The decoder has already checked that
//  publisher_id's host is the topic's; it is compared again here so this
//  check does not lean on that one.
static int s_key_refused(hvn_broker_t *self)
{
    const char *key = zmq_msg_gets(&self->parts[0], "User-Id");
    const char *host = hvn_auth_publisher_host(self->auth, key);
    const char *colon = strchr(self->msg.publisher_id, ':');
    char detail[HVN_TOPIC_MAX + 96];
    if (host && streq(host, self->msg.host) && colon && streq(colon + 1, host)) {
        //  A node the cache holds for another host is that host's: the key
        //  of one host may not update, sync or delete it (nodes are keyed
        //  by uuid alone, so this is what keeps a host from taking over
        //  another's node). A deleted node is nobody's any more.
        hvn_cache_item_t item;
        if (!self->has_key)
            return 0;
        if (!hvn_cache_lookup(self->cache, self->key, &item)) {
            //  Not cached: the state file may still bind it (a restart
            //  while its host was away)
            const hvn_owner_t *owner = hvn_idmap_lookup(self->owners, self->key);
            if (!owner || streq(owner->host, host))
                return 0;
            snprintf(detail, sizeof(detail), "node %s belongs to host '%s', not '%s'",
                     self->msg.node.uuid, owner->host, host);
            s_refuse(self, HVN_R_NOT_AUTHORIZED, detail);
            return 1;
        }
        const char *at = memchr(item.topic, '@', item.topic_size);
        size_t owner_len = at ? item.topic_size - (size_t)(at + 1 - item.topic) : 0;
        if (at && owner_len == strlen(host) && memcmp(at + 1, host, owner_len) == 0)
            return 0;
        snprintf(detail, sizeof(detail), "node %s belongs to host '%.*s', not '%s'",
                 self->msg.node.uuid, (int)owner_len, at ? at + 1 : "", host);
        s_refuse(self, HVN_R_NOT_AUTHORIZED, detail);
        return 1;
    }
    if (!host)
        snprintf(detail, sizeof(detail), "key %.40s is bound to no host", key ? key : "(none)");
    else
        snprintf(detail, sizeof(detail), "key of host '%s' sent for host '%s'", host,
                 streq(host, self->msg.host) ? (colon ? colon + 1 : "") : self->msg.host);
    s_refuse(self, HVN_R_NOT_AUTHORIZED, detail);
    return 1;
}

//  Returns 1 when the create, update or sync in self->msg is for a node
//  the cache does not hold while its host already has max_publisher_nodes
//  (refused, counted as over_limit and limited_nodes), else 0. One host
//  cannot fill the broker's memory with made-up nodes; updates of the
//  nodes it has, deletes and heartbeats still pass.
static int s_node_limited(hvn_broker_t *self)
{
    if (self->msg.header.kind == HVN_KIND_HEARTBEAT || self->msg.event == HVN_EVENT_DELETE)
        return 0;
    //  A node the cache holds first: one table lookup, where the host's
    //  count would hash the host name
    hvn_cache_item_t item;
    if (self->has_key && hvn_cache_lookup(self->cache, self->key, &item))
        return 0;
    if (hvn_cache_host_size(self->cache, self->msg.host) < self->max_publisher_nodes)
        return 0;
    self->stats.limited_nodes++;
    s_refuse(self, HVN_R_OVER_LIMIT, "host holds --max-publisher-nodes nodes");
    return 1;
}

//  Returns nothing; one received message of nparts parts (in self->parts)
//  is refused, or accepted and forwarded and/or cached by its kind.
static void s_accept(hvn_broker_t *self, int nparts)
{
    if (nparts != 3) {
        char detail[32];
        snprintf(detail, sizeof(detail), "%d frames", nparts);
        s_refuse(self, HVN_R_FRAMES, detail);
        return;
    }
    for (int i = 0; i < S_PARTS_KEPT; i++) {
        self->data[i] = zmq_msg_data(&self->parts[i]);
        self->size[i] = zmq_msg_size(&self->parts[i]);
    }
    if (self->size[0] > self->max_topic_size && self->size[0] <= HVN_TOPIC_MAX) {
        s_refuse(self, HVN_R_TOPIC, "longer than --max-topic-size");
        return;
    }
    if (s_too_big(self)) {
        s_refuse(self, HVN_R_TOO_BIG, "body");
        return;
    }
    hvn_reason_t reason =
        hvn_decoder_decode(self->decoder, self->data[0], self->size[0], self->data[1],
                           self->size[1], self->data[2], self->size[2], &self->msg);
    if (reason != HVN_OK) {
        s_refuse(self, reason, hvn_decoder_detail(self->decoder));
        return;
    }
    //  The node's uuid as a key for the checks and the cache: its 16 bytes,
    //  which the decoder kept when it checked the text (every notification
    //  and sync carries a node; a heartbeat none)
    self->has_key = self->msg.header.kind != HVN_KIND_HEARTBEAT;
    if (self->has_key)
        memcpy(self->key, self->msg.node_uuid, sizeof(self->key));
    if (self->msg.event == HVN_EVENT_BROKER) {
        //  Only a broker speaks as a broker: a publisher sending its
        //  heartbeat topic could fake a broker restart to every subscriber
        s_refuse(self, HVN_R_NOT_AUTHORIZED, "hvn.broker topic from a publisher");
        return;
    }
    if (self->auth && s_key_refused(self))
        return;
    if (s_instance_refused(self))
        return;
    if (s_node_limited(self))
        return;
    switch (self->msg.header.kind) {
    case HVN_KIND_NOTIFICATION:
        self->stats.notifications++;
        s_cache_store(self);
        s_track_seq(self);
        s_ring_keep(self); //  Before the parts move to the backend
        s_forward(self);
        break;
    case HVN_KIND_HEARTBEAT:
        if (self->msg.node_count > self->max_publisher_nodes) {
            s_refuse(self, HVN_R_TOO_BIG, "nodes");
            return;
        }
        self->stats.heartbeats_in++;
        s_prune(self);
        hvn_seqmap_touch(self->seqmap, self->msg.header.instance, self->msg.interval_ms,
                         self->now_ms);
        s_forward(self);
        break;
    case HVN_KIND_SYNC:
        self->stats.syncs++;
        s_cache_store(self);
        s_track_seq(self);
        break;
    default:
        assert(0 && "decoder accepted an unknown kind");
    }
}

//  Returns 0 after handling up to a batch of frontend messages, -1 on a
//  fatal socket error.
static int s_handle_frontend(hvn_broker_t *self)
{
    for (int n = 0; n < S_BATCH_FRONTEND && !zsys_interrupted; n++) {
        int nparts = s_recv_parts(self->items[S_FRONTEND].socket, self->parts);
        if (nparts <= 0)
            return nparts == 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
        self->stats.received++;
        self->moved = 0;
        s_accept(self, nparts);
        //  zmq_msg_send empties what it sends: nothing left to close
        if (!self->moved)
            s_close_parts(self->parts, nparts);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Backend: count subscriptions

//  Returns 1 when descriptor fd is a connection accepted on the endpoint
//  of socket `which` (same address family, same TCP port or ipc path),
//  else 0. A guard before cutting it: the descriptor comes from a
//  message's metadata, and must not name anything else of the process.
static int s_own_conn(const hvn_broker_t *self, int which, int fd)
{
    struct sockaddr_storage local, remote;
    socklen_t local_len = sizeof(local), remote_len = sizeof(remote);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 ||
        getpeername(fd, (struct sockaddr *)&remote, &remote_len) != 0)
        return 0;
    const char *endpoint = self->endpoint[which];
    if (local.ss_family == AF_UNIX && strncmp(endpoint, "ipc://", 6) == 0) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&local;
        return strncmp(un->sun_path, endpoint + 6, sizeof(un->sun_path)) == 0;
    }
    if ((local.ss_family != AF_INET && local.ss_family != AF_INET6) ||
        strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    const char *colon = strrchr(endpoint, ':');
    int port = ntohs(local.ss_family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
                                                : ((struct sockaddr_in6 *)&local)->sin6_port);
    return colon && atoi(colon + 1) == port;
}

//  Returns nothing; the backend connection on descriptor fd, which keeps
//  sending subscriptions the broker refuses, is cut (counted, logged):
//  libzmq keeps each of them until the connection closes, and offers no
//  call to close one peer of an XPUB, so the broker shuts the socket down
//  (the descriptor stays libzmq's) and libzmq closes the connection as if
//  the peer had (its subscriptions are released then, s_handle_monitor).
//  SIGPIPE is ignored (hvn_broker_new): a write to it fails with EPIPE.
static void s_cut_subscriber(hvn_broker_t *self, int fd, const char *peer)
{
    if (!s_own_conn(self, S_BACKEND, fd) || shutdown(fd, SHUT_RDWR) != 0)
        return;
    self->stats.subscribers_cut++;
    s_limit_log(self, "subscriber connection cut: it kept sending subscriptions that are refused",
                peer, self->stats.subscribers_cut);
}

//  Returns nothing; one (un)subscription read on the backend is applied
//  or refused. The XPUB is in manual mode: it hands over every subscribe
//  and unsubscribe, including those libzmq makes up for a subscriber that
//  disconnected (these name no peer and are already applied), and applies
//  to the connection of the last one read only what the broker tells it
//  to. Anything else an XSUB peer may send up is ignored.
static void s_subscription(hvn_broker_t *self, zmq_msg_t *frame)
{
    const uint8_t *data = zmq_msg_data(frame);
    size_t size = zmq_msg_size(frame);
    if (size < 1 || data[0] > 1)
        return;
    void *backend = self->items[S_BACKEND].socket;
    const char *peer = s_peer(frame);
    //  A frame libzmq made up for a disconnect has no metadata, names no
    //  peer and no connection
    int from_peer = zmq_msg_gets(frame, "Socket-Type") != NULL;
    int conn = self->track_conns && from_peer ? zmq_msg_get(frame, ZMQ_SRCFD) : -1;
    //  The connection's metadata lives as long as a message of it: its
    //  address tells this connection from a later one on the descriptor
    uintptr_t tag = (uintptr_t)zmq_msg_gets(frame, "Socket-Type");
    if (data[0] == 0) {
        //  libzmq ignores this for a disconnect's unsubscribe (no last
        //  connection then)
        zmq_setsockopt(backend, ZMQ_UNSUBSCRIBE, data + 1, size - 1);
        if (conn >= 0)
            hvn_sublimit_unsubscribe_conn(self->sublimit, conn, tag, data + 1, size - 1);
        else if (!self->track_conns)
            hvn_sublimit_unsubscribe(self->sublimit, from_peer ? peer : NULL, data + 1,
                                     size - 1);
        //  else: the connection's close (s_handle_monitor) released it
    } else if (self->auth && !hvn_auth_subscriber_known(self->auth, peer)) {
        //  The handshake let the key in; its certificate was removed since,
        //  with this connection still open: it gets no new prefix
        self->stats.limited_subscriptions++;
        s_limit_log(self, "subscription from a key no longer in --subscribers-dir not applied",
                    peer, self->stats.limited_subscriptions);
    } else {
        int rc = conn >= 0 ? hvn_sublimit_subscribe_conn(self->sublimit, peer, conn, tag,
                                                         data + 1, size - 1)
                           : hvn_sublimit_subscribe(self->sublimit, peer, data + 1, size - 1);
        if (rc == 3) {
            //  Read after its connection closed: nothing to apply
        } else if (rc == 1 || rc == 2) {
            if (zmq_setsockopt(backend, ZMQ_SUBSCRIBE, data + 1, size - 1) != 0 && rc == 1) {
                if (conn >= 0)
                    hvn_sublimit_unsubscribe_conn(self->sublimit, conn, tag, data + 1,
                                                  size - 1);
                else
                    hvn_sublimit_unsubscribe(self->sublimit, peer, data + 1, size - 1);
            }
        } else {
            self->stats.limited_subscriptions++;
            s_limit_log(self,
                        size - 1 > HVN_TOPIC_MAX
                            ? "subscription longer than any topic not applied"
                            : "subscription past --max-subscriptions not applied",
                        peer, self->stats.limited_subscriptions);
            //  Once: what libzmq had read before the cut still arrives
            if (conn >= 0 &&
                hvn_sublimit_refused_conn(self->sublimit, peer, conn, tag) ==
                    S_REFUSED_PER_CONN + 1)
                s_cut_subscriber(self, conn, peer);
        }
    }
    self->stats.subscriptions = (int64_t)hvn_sublimit_total(self->sublimit);
}

//  Returns 0 after reading up to a batch of (un)subscriptions, -1 on a
//  fatal socket error.
static int s_handle_backend(hvn_broker_t *self)
{
    for (int n = 0; n < S_BATCH_BACKEND && !zsys_interrupted; n++) {
        int nparts = s_recv_parts(self->items[S_BACKEND].socket, self->parts);
        if (nparts <= 0)
            return nparts == 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
        if (nparts == 1)
            s_subscription(self, &self->parts[0]);
        s_close_parts(self->parts, nparts);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Service: SNAPSHOT and STATS

//  Where a snapshot is going, for s_send_item.
typedef struct {
    void *handle;   //  The ROUTER
    const void *id; //  Client's routing id
    size_t id_size; //  Its size
    int err;        //  errno of the send that failed, 0 = none
} s_snapshot_t;

//  Returns 0 when the ITEM message is queued, -1 when it could not be.
static int s_send_item(const hvn_cache_item_t *item, void *arg)
{
    s_snapshot_t *snap = arg;
    if (s_send(snap->handle, snap->id, snap->id_size, 1) || s_send(snap->handle, HVN_SERVICE_ITEM, strlen(HVN_SERVICE_ITEM), 1) ||
        s_send(snap->handle, item->topic, item->topic_size, 1) ||
        s_send(snap->handle, item->header, HVN_HEADER_SIZE, 1) ||
        s_send(snap->handle, item->body, item->body_size, 0)) {
        snap->err = errno;
        return -1;
    }
    return 0;
}

//  Returns 0 after appending one publisher's seq to the snapshot's END
//  list, -1 when out of memory.
static int s_snapjob_add_publisher(const uint8_t instance[16], uint64_t seq, void *arg)
{
    s_snapjob_t *job = arg;
    if (job->publisher_count == job->publishers_cap) {
        size_t cap = job->publishers_cap ? job->publishers_cap * 2 : 16;
        hvn_end_publisher_t *grown = realloc(job->publishers, cap * sizeof(*grown));
        if (!grown)
            return -1;
        job->publishers = grown;
        job->publishers_cap = cap;
    }
    hvn_end_publisher_t *pub = &job->publishers[job->publisher_count++];
    memcpy(pub->instance, instance, 16);
    pub->seq = seq;
    return 0;
}

//  Returns 0 when the reply [id, word, body] is queued, -1 when not.
static int s_reply(hvn_broker_t *self, zmq_msg_t *id, const char *word, const void *body,
                   size_t body_size)
{
    void *service = self->items[S_SERVICE].socket;
    if (s_send(service, zmq_msg_data(id), zmq_msg_size(id), 1) ||
        s_send(service, word, strlen(word), 1) || s_send(service, body, body_size, 0))
        return -1;
    return 0;
}

//  Returns nothing; a snapshot's memory is freed.
static void s_snapjob_free(s_snapjob_t *job)
{
    free(job->id);
    free(job->keys);
    free(job->publishers);
    free(job->peer);
    free(job);
}

//  Returns what one ITEM of a topic and a body of these sizes costs in the
//  service socket's queue, bytes: its four frames and libzmq's bookkeeping.
static size_t s_item_cost(size_t topic_size, size_t body_size)
{
    return strlen(HVN_SERVICE_ITEM) + topic_size + HVN_HEADER_SIZE + body_size + S_ITEM_OVERHEAD;
}

//  Returns 0 after appending the item's key to the snapshot's keys (and
//  raising its largest item), -1 when out of memory.
static int s_snapjob_add_key(const hvn_cache_item_t *item, void *arg)
{
    s_snapjob_t *job = arg;
    if ((job->count & (job->count - 1)) == 0) { //  0, 1, 2, 4 ...: grow
        size_t cap = job->count ? job->count * 2 : 64;
        uint8_t(*grown)[16] = realloc(job->keys, cap * sizeof(*grown));
        if (!grown)
            return -1;
        job->keys = grown;
    }
    memcpy(job->keys[job->count++], item->key, 16);
    size_t cost = s_item_cost(item->topic_size, item->body_size);
    if (cost > job->item_max)
        job->item_max = cost;
    return 0;
}

//  Returns the bytes a snapshot counts for: the most libzmq can hold for
//  its client at once (the queue's S_SERVICE_SNDHWM messages, each as
//  large as its largest item; fewer when it has fewer), and its END.
static size_t s_snapjob_cost(const s_snapjob_t *job)
{
    size_t items = job->count < S_SERVICE_SNDHWM ? job->count : S_SERVICE_SNDHWM;
    return items * job->item_max + job->end_size;
}

//  Returns nothing; the snapshot counts for what s_snapjob_cost says now
//  (its largest item may have grown since the request).
static void s_snapjob_reserve(hvn_broker_t *self, s_snapjob_t *job)
{
    size_t cost = s_snapjob_cost(job);
    self->snapshot_reserved = self->snapshot_reserved - job->reserved + cost;
    job->reserved = cost;
}

//  Returns nothing; the client's connection is cut (a job's fd, checked to
//  be one of the service socket's connections), so that libzmq frees what
//  it queued for it; the memory goes back to the system soon after.
static void s_snapjob_cut(hvn_broker_t *self, s_snapjob_t *job)
{
    if (job->fd >= 0 && s_own_conn(self, S_SERVICE, job->fd) && shutdown(job->fd, SHUT_RDWR) == 0)
        s_trim_soon(self);
}

//  Returns nothing; a snapshot that could not be finished is counted,
//  logged (rate-limited) and freed. err: errno of the failed send, or 0
//  for a client that took nothing for snapshot_stall_ms (then cut).
static void s_snapjob_fail(hvn_broker_t *self, s_snapjob_t *job, int err)
{
    char why[96];
    if (err == 0) {
        self->stats.snapshots_stalled++;
        s_snapjob_cut(self, job);
        snprintf(why, sizeof(why), "client took nothing for %" PRId64 " ms: cut",
                 self->snapshot_stall_ms);
    } else {
        self->stats.snapshots_failed++;
        snprintf(why, sizeof(why), "%s", err == EHOSTUNREACH ? "client gone" : zmq_strerror(err));
    }
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_snapshot, self->now_ms, &suppressed))
        zsys_warning("service: snapshot under prefix '%s' for '%s' cut short after %ld of %zu "
                     "items%s: %s (%" PRIu64 " stalled, %" PRIu64 " failed, %" PRIu64
                     " unlogged since last line)",
                     job->prefix, job->peer, job->sent, job->count, job->ended_ms ? " and END" : "",
                     why, self->stats.snapshots_stalled, self->stats.snapshots_failed, suppressed);
    self->snapshot_reserved -= job->reserved;
    s_snapjob_free(job);
}

//  Returns NULL when peer may have one more snapshot of cost bytes in
//  progress, else why not. The slots and snapshot_bytes are shared, but no
//  peer takes more than 1/S_SNAPSHOT_SHARE of either, so that one abuser
//  leaves the rest to the others; a lone snapshot always goes, whatever
//  its cost.
static const char *s_snapshot_refused(const hvn_broker_t *self, const char *peer, size_t cost)
{
    size_t jobs = 0, bytes = 0;
    for (const s_snapjob_t *job = self->snapshots; job; job = job->next)
        if (streq(job->peer, peer)) {
            jobs++;
            bytes += job->reserved;
        }
    if (self->snapshots_active >= S_SNAPSHOTS_MAX)
        return "too many snapshots in progress";
    if (jobs >= S_SNAPSHOTS_MAX / S_SNAPSHOT_SHARE ||
        (jobs > 0 && bytes + cost > self->snapshot_bytes_max / S_SNAPSHOT_SHARE))
        return "too many snapshots in progress for this subscriber: try again later";
    if (self->snapshots_active > 0 && self->snapshot_reserved + cost > self->snapshot_bytes_max)
        return "snapshot memory (--snapshot-bytes) in use: try again later";
    return NULL;
}

//  Returns nothing; the client's snapshot request is queued: the keys
//  under prefix and the publishers' seqs are taken now, the items go out
//  from the loop (s_handle_snapshots). No slot or memory left for it
//  (s_snapshot_refused) is an ERROR reply, counted and logged as a limit;
//  so is no memory at all.
static void s_serve_snapshot(hvn_broker_t *self, zmq_msg_t *id, zmq_msg_t *command,
                             zmq_msg_t *prefix)
{
    const char *peer = s_peer(command);
    const char *why = "out of memory";
    s_snapjob_t *job = calloc(1, sizeof(*job));
    if (job) {
        job->asked_us = zclock_usecs();
        s_frame_text(job->prefix, sizeof(job->prefix), prefix);
        job->id_size = zmq_msg_size(id);
        job->id = malloc(job->id_size ? job->id_size : 1);
        job->peer = strdup(peer);
        //  Over inproc:// no descriptor (-1): the job ends with its END
        job->fd = zmq_msg_get(command, ZMQ_SRCFD);
        job->outq = -1;
        if (job->id && job->peer &&
            hvn_seqmap_foreach(self->seqmap, s_snapjob_add_publisher, job) >= 0 &&
            hvn_cache_foreach(self->cache, zmq_msg_data(prefix), zmq_msg_size(prefix),
                              s_snapjob_add_key, job) >= 0) {
            memcpy(job->id, zmq_msg_data(id), job->id_size);
            job->end_size = 128 + job->publisher_count * 64;
            why = s_snapshot_refused(self, peer, s_snapjob_cost(job));
            if (!why) {
                s_snapjob_reserve(self, job);
                s_snapjob_t **tail = &self->snapshots;
                while (*tail)
                    tail = &(*tail)->next;
                *tail = job;
                self->snapshots_active++;
                return;
            }
        }
        s_snapjob_free(job);
    }
    if (streq(why, "out of memory"))
        self->stats.snapshots_failed++;
    else {
        self->stats.limited_snapshots++;
        s_limit_log(self, why, peer, self->stats.limited_snapshots);
    }
    s_reply(self, id, HVN_SERVICE_ERROR, why, strlen(why));
}

//  Returns 0 when the END frame went out, -1 when not (errno set).
static int s_snapjob_end(hvn_broker_t *self, s_snapjob_t *job)
{
    hvn_end_t end = {.count = (uint64_t)job->sent,
                     .publisher_count = job->publisher_count,
                     .publishers = job->publishers};
    snprintf(end.broker_id, sizeof(end.broker_id), "%s", self->id);
    size_t size;
    uint8_t *body = hvn_end_encode(&end, &size);
    if (!body) {
        errno = ENOMEM;
        return -1;
    }
    void *service = self->items[S_SERVICE].socket;
    int rc = s_send(service, job->id, job->id_size, 1) ||
                     s_send(service, HVN_SERVICE_END, strlen(HVN_SERVICE_END), 1) ||
                     s_send(service, body, size, 0)
                 ? -1
                 : 0;
    int err = errno;
    free(body);
    errno = err;
    return rc;
}

//  Returns nothing; a snapshot taken in full by its client is counted,
//  logged (rate-limited) and freed.
static void s_snapjob_served(hvn_broker_t *self, s_snapjob_t *job)
{
    self->stats.snapshots++;
    s_took(&self->stats.snapshot_us, &self->stats.snapshot_last_us, job->asked_us);
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_snapshot, self->now_ms, &suppressed))
        zsys_info("service: snapshot of %ld nodes under prefix '%s' served (%" PRIu64
                  " snapshots, %" PRIu64 " unlogged since last line)",
                  job->sent, job->prefix, self->stats.snapshots, suppressed);
    self->snapshot_reserved -= job->reserved;
    s_snapjob_free(job);
}

//  Returns 1 when the snapshot, whose END is queued, is finished: its
//  client took everything (its connection has no byte left to send; the
//  look waits for a wake-up after END, when libzmq's thread has written
//  what it could), its connection closed, or it took nothing more for
//  snapshot_stall_ms (cut). Else 0: it still counts against
//  snapshot_bytes.
static int s_snapjob_drain(hvn_broker_t *self, s_snapjob_t *job)
{
    int queued = 0;
    if (job->fd < 0 || ioctl(job->fd, SIOCOUTQ, &queued) != 0 ||
        (queued == 0 && self->now_ms > job->ended_ms)) {
        s_snapjob_served(self, job);
        return 1;
    }
    //  A client that reads moves its queue (libzmq refills it from what
    //  it holds); one that does not leaves it as it is
    if (queued != job->outq) {
        job->outq = queued;
        job->blocked_ms = self->now_ms;
        return 0;
    }
    if (self->now_ms - job->blocked_ms > self->snapshot_stall_ms) {
        s_snapjob_fail(self, job, 0);
        return 1;
    }
    return 0;
}

//  Returns 1 when the snapshot is finished (taken, or failed: counted),
//  0 when it goes on at a later wake-up. At most a slice of items is sent;
//  a full client queue stops the slice until the client reads.
static int s_snapjob_step(hvn_broker_t *self, s_snapjob_t *job)
{
    if (job->ended_ms)
        return s_snapjob_drain(self, job);
    s_snapshot_t snap = {self->items[S_SERVICE].socket, job->id, job->id_size, 0};
    long sent_before = job->sent;
    for (int n = 0; n < S_SNAPSHOT_SLICE && job->next_key < job->count; n++) {
        hvn_cache_item_t item;
        if (!hvn_cache_lookup(self->cache, job->keys[job->next_key], &item)) {
            job->next_key++; //  Deleted since the request; the delete goes out live
            continue;
        }
        size_t cost = s_item_cost(item.topic_size, item.body_size);
        if (cost > job->item_max) { //  Updated since the request
            job->item_max = cost;
            s_snapjob_reserve(self, job);
        }
        if (s_send_item(&item, &snap) != 0)
            break;
        job->next_key++;
        job->sent++;
    }
    if (snap.err == 0 && job->next_key == job->count && s_snapjob_end(self, job) != 0)
        snap.err = errno;
    if (snap.err == EAGAIN) {
        //  The stall is counted from the last item the client took room for
        if (!job->blocked_ms || job->sent != sent_before)
            job->blocked_ms = self->now_ms;
        else if (self->now_ms - job->blocked_ms > self->snapshot_stall_ms) {
            s_snapjob_fail(self, job, 0);
            return 1;
        }
        return 0;
    }
    if (snap.err) {
        s_snapjob_fail(self, job, snap.err);
        return 1;
    }
    job->blocked_ms = 0;
    if (job->next_key < job->count)
        return 0;
    job->ended_ms = self->now_ms;
    return s_snapjob_drain(self, job);
}

//  Returns nothing; every snapshot in progress got one slice (or a look at
//  its client's connection), and those finished are gone.
static void s_handle_snapshots(hvn_broker_t *self)
{
    s_snapjob_t **link = &self->snapshots;
    while (*link) {
        s_snapjob_t *job = *link;
        s_snapjob_t *next = job->next;
        if (s_snapjob_step(self, job)) {
            *link = next;
            self->snapshots_active--;
        } else
            link = &job->next;
    }
}

//  Returns nothing; the service connection on descriptor fd closed: the
//  snapshots it asked for have no client any more (one whose END is
//  queued is finished at the next look, the others fail at their next
//  send), and the descriptor is not theirs to cut.
static void s_snapshots_closed(hvn_broker_t *self, int fd)
{
    for (s_snapjob_t *job = self->snapshots; job; job = job->next)
        if (job->fd == fd)
            job->fd = -1;
}

//  Returns 1 when a snapshot in progress can send now (its client's queue
//  was not full last time), else 0.
static int s_snapshots_ready(const hvn_broker_t *self)
{
    for (const s_snapjob_t *job = self->snapshots; job; job = job->next)
        if (!job->blocked_ms)
            return 1;
    return 0;
}

//  Returns 0 with table holding the broker's counters and figures, in the
//  order STATS reports them, or -1 when out of memory.
int hvn_broker_stats_table(const hvn_broker_t *self, hvn_stats_t *table)
{
    assert(self && table);
    const hvn_rejects_t *rejects = &self->stats.rejects;
    hvn_stats_clear(table);
    int rc = 0;
    for (size_t i = 0; i < S_COUNTERS; i++)
        rc |= hvn_stats_add_uint(
            table, s_counters[i].name,
            *(const uint64_t *)((const char *)&self->stats + s_counters[i].offset));
    rc |= hvn_stats_add_uint(table, "refused", hvn_rejects_total(rejects));
    for (int r = HVN_OK + 1; r < HVN_R_COUNT; r++) {
        char key[64];
        snprintf(key, sizeof(key), "refused.%s", hvn_reason_str((hvn_reason_t)r));
        rc |= hvn_stats_add_uint(table, key, rejects->count[r]);
    }
    rc |= hvn_stats_add_uint(table, "cache_nodes", hvn_cache_size(self->cache));
    rc |= hvn_stats_add_uint(table, "cache_bytes", hvn_cache_bytes(self->cache));
    rc |= hvn_stats_add_int(table, "subscriptions", self->stats.subscriptions);
    rc |= hvn_stats_add_uint(table, "publishers", hvn_seqmap_size(self->seqmap));
    rc |= hvn_stats_add_uint(table, "ring_entries", hvn_ring_size(self->ring));
    rc |= hvn_stats_add_uint(table, "ring_bytes", hvn_ring_bytes(self->ring));
    rc |= hvn_stats_add_uint(table, "ring_max_bytes", hvn_ring_max_bytes(self->ring));
    rc |= hvn_stats_add_uint(table, "ring_publishers", hvn_ring_instances(self->ring));
    rc |= hvn_stats_add_uint(table, "ring_evicted", hvn_ring_evicted(self->ring));
    rc |= hvn_stats_add_uint(table, "snapshots_active", self->snapshots_active);
    rc |= hvn_stats_add_uint(table, "snapshot_bytes", self->snapshot_reserved);
    rc |= hvn_stats_add_uint(table, "snapshot_max_bytes", self->snapshot_bytes_max);
    rc |= hvn_stats_add_uint(table, "subscriber_queue", (uint64_t)self->subscriber_queue);
    rc |= hvn_stats_add_int(table, "uptime_ms", zclock_mono() - self->started_ms);
    rc |= hvn_stats_add_text(table, "broker_id", self->id);
    rc |= hvn_stats_add_text(table, "name", self->name);
    hvn_auth_stats_t auth = {0, 0, 0};
    if (self->auth)
        hvn_auth_stats(self->auth, &auth);
    rc |= hvn_stats_add_uint(table, "curve", self->auth ? 1 : 0);
    rc |= hvn_stats_add_uint(table, "auth_allowed", auth.allowed);
    rc |= hvn_stats_add_uint(table, "auth_denied_publishers", auth.denied_publishers);
    rc |= hvn_stats_add_uint(table, "auth_denied_subscribers", auth.denied_subscribers);
    return rc ? -1 : 0;
}

//  Returns nothing; the client gets ["STATS", msgpack map of counters], or
//  ["ERROR", why] when out of memory.
static void s_serve_stats(hvn_broker_t *self, zmq_msg_t *id)
{
    size_t size = 0;
    uint8_t *body = NULL;
    if (hvn_broker_stats_table(self, self->report) == 0)
        body = hvn_stats_encode(self->report, &size);
    if (body)
        s_reply(self, id, HVN_SERVICE_STATS, body, size);
    else
        s_reply(self, id, HVN_SERVICE_ERROR, "out of memory", 13);
    free(body);
}

//  Returns nothing; the client gets ["ERROR", why]; counted and logged
//  (rate-limited).
static void s_serve_error(hvn_broker_t *self, zmq_msg_t *id, zmq_msg_t *command, const char *why)
{
    char text[64];
    s_frame_text(text, sizeof(text), command);
    self->stats.service_refused++;
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_service, self->now_ms, &suppressed))
        zsys_warning("service: refused request '%s': %s (%" PRIu64 " total, %" PRIu64
                     " suppressed since last line)",
                     text, why, self->stats.service_refused, suppressed);
    s_reply(self, id, HVN_SERVICE_ERROR, why, strlen(why));
}

//  Returns 0 when the ITEM message of a ring entry is queued, -1 when not
//  (the hvn_ring_fn of a REPLAY; arg is an s_snapshot_t).
static int s_send_ring_item(const hvn_ring_item_t *item, void *arg)
{
    hvn_cache_item_t view = {.key = NULL,
                             .topic = item->topic,
                             .topic_size = item->topic_size,
                             .header = item->header,
                             .body = item->body,
                             .body_size = item->body_size};
    return s_send_item(&view, arg);
}

//  Returns nothing; a REPLAY answered: the ring's entries of the instance
//  in the range as ITEMs, in seq order, then END with their count and the
//  instance's span in the ring now. A malformed request is answered ERROR
//  (counted, logged rate-limited); an answer the client cannot take is
//  cut short, counted and logged.
static void s_serve_replay(hvn_broker_t *self, zmq_msg_t *parts, int nparts)
{
    int64_t asked_us = zclock_usecs();
    hvn_replay_t request;
    const char *why = "REPLAY takes three frames: instance, first, last";
    if (nparts == 5)
        why = hvn_replay_decode(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                                zmq_msg_data(&parts[3]), zmq_msg_size(&parts[3]),
                                zmq_msg_data(&parts[4]), zmq_msg_size(&parts[4]), &request);
    if (why) {
        self->stats.replays_refused++;
        s_serve_error(self, &parts[0], &parts[1], why);
        return;
    }
    s_snapshot_t snap = {self->items[S_SERVICE].socket, zmq_msg_data(&parts[0]),
                         zmq_msg_size(&parts[0]), 0};
    long sent = hvn_ring_foreach(self->ring, request.instance, request.first, request.last,
                                 s_send_ring_item, &snap);
    hvn_end_t end = {.count = sent > 0 ? (uint64_t)sent : 0};
    snprintf(end.broker_id, sizeof(end.broker_id), "%s", self->id);
    hvn_ring_span(self->ring, request.instance, &end.first, &end.last);
    size_t size = 0;
    uint8_t *body = sent >= 0 ? hvn_end_encode_replay(&end, &size) : NULL;
    if (!body || s_reply(self, &parts[0], HVN_SERVICE_END, body, size) != 0) {
        self->stats.replays_failed++;
        uint64_t suppressed;
        if (s_ratelog_due(&self->log_replay, self->now_ms, &suppressed))
            zsys_warning("service: replay of seqs %" PRIu64 "..%" PRIu64 " cut short: %s (%" PRIu64
                         " cut short, %" PRIu64 " unlogged since last line)",
                         request.first, request.last,
                         !body ? (sent < 0 ? zmq_strerror(snap.err) : "out of memory")
                               : zmq_strerror(errno),
                         self->stats.replays_failed, suppressed);
        free(body);
        return;
    }
    free(body);
    self->stats.replays++;
    s_took(&self->stats.replay_us, &self->stats.replay_last_us, asked_us);
    self->stats.replay_items += end.count;
    if (end.count < request.last - request.first + 1)
        self->stats.replays_short++;
}

//  Returns nothing; one request of nparts parts (routing id first) is
//  answered.
static void s_serve(hvn_broker_t *self, int nparts)
{
    zmq_msg_t *parts = self->parts;
    if (nparts < 2)
        return; //  A ROUTER always gives id + frames; nothing to answer
    //  The handshake let the key in; its certificate may have been removed
    //  since, with this connection still open
    if (self->auth && !hvn_auth_subscriber_known(self->auth, zmq_msg_gets(&parts[1], "User-Id"))) {
        s_serve_error(self, &parts[0], &parts[1], "key not in --subscribers-dir any more");
        return;
    }
    if (s_frame_is(&parts[1], HVN_SERVICE_SNAPSHOT)) {
        const char *peer = s_peer(&parts[1]);
        if (!hvn_ratelimit_take(self->snaplimit, peer, self->now_ms)) {
            self->stats.limited_snapshots++;
            s_limit_log(self, "snapshot request over --max-snapshot-rate answered ERROR", peer,
                        self->stats.limited_snapshots);
            const char *why = "snapshot rate limit: try again later";
            s_reply(self, &parts[0], HVN_SERVICE_ERROR, why, strlen(why));
        } else if (nparts == 3 && zmq_msg_size(&parts[2]) <= HVN_TOPIC_MAX)
            s_serve_snapshot(self, &parts[0], &parts[1], &parts[2]);
        else
            s_serve_error(self, &parts[0], &parts[1],
                          "SNAPSHOT takes one frame: a topic prefix of at most 255 bytes");
    } else if (s_frame_is(&parts[1], HVN_SERVICE_REPLAY)) {
        s_serve_replay(self, parts, nparts);
    } else if (s_frame_is(&parts[1], HVN_SERVICE_STATS)) {
        if (nparts == 2)
            s_serve_stats(self, &parts[0]);
        else
            s_serve_error(self, &parts[0], &parts[1], "STATS takes no frames");
    } else
        s_serve_error(self, &parts[0], &parts[1], "unknown request");
}

//  Returns 0 after answering up to a batch of requests, -1 on a fatal
//  socket error.
static int s_handle_service(hvn_broker_t *self)
{
    for (int n = 0; n < S_BATCH_SERVICE && !zsys_interrupted; n++) {
        int nparts = s_recv_parts_max(self->items[S_SERVICE].socket, self->parts, S_SERVICE_PARTS);
        if (nparts <= 0)
            return nparts == 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
        s_serve(self, nparts);
        for (int i = 0; i < nparts && i < S_SERVICE_PARTS; i++)
            zmq_msg_close(&self->parts[i]);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Timer: our heartbeat, forgetting silent publishers

//  Returns nothing; a broker heartbeat went out on the backend and silent
//  publisher instances are forgotten.
static void s_handle_timer(hvn_broker_t *self)
{
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_HEARTBEAT, .seq = 0};
    memcpy(header.instance, self->instance, 16);
    hvn_frames_t frames;
    void *backend = self->items[S_BACKEND].socket;
    if (hvn_encoder_broker_heartbeat(self->encoder, self->name, self->id, self->heartbeat_ms,
                                     &header, &frames) == 0 &&
        s_send(backend, frames.topic, frames.topic_size, 1) == 0 &&
        s_send(backend, frames.header, HVN_HEADER_SIZE, 1) == 0 &&
        s_send(backend, frames.body, frames.body_size, 0) == 0)
        self->stats.heartbeats_out++;
    else {
        self->stats.forward_errors++;
        s_trouble(self, "backend: our heartbeat could not be sent");
    }
    hvn_ratelimit_expire(self->snaplimit, self->now_ms);
    size_t forgotten =
        hvn_seqmap_expire(self->seqmap, self->now_ms, self->heartbeat_ms, S_SEQMAP_INTERVALS);
    if (forgotten)
        zsys_info("forgot %zu publisher instance(s) silent for %d heartbeat intervals "
                  "(%zu known)",
                  forgotten, S_SEQMAP_INTERVALS, hvn_seqmap_size(self->seqmap));
    self->next_heartbeat_ms += self->heartbeat_ms;
    if (self->next_heartbeat_ms <= self->now_ms)
        self->next_heartbeat_ms = self->now_ms + self->heartbeat_ms;
}

// --------------------------------------------------------------------------
//  Monitors: handshakes that fail before ZAP is asked

//  Returns nothing; one connection libzmq could not accept (errno err:
//  out of file descriptors, most often) is counted and logged,
//  rate-limited. libzmq retries the accept at once, so while descriptors
//  are short this fires as fast as it can spin; the log line and the
//  counter are how an operator sees it.
static void s_accept_failed(hvn_broker_t *self, const char *where, uint32_t err)
{
    self->stats.accept_failed++;
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_accept, self->now_ms, &suppressed))
        zsys_error("cannot accept a connection on the %s: %s (%" PRIu64 " so far, %" PRIu64
                   " suppressed since last line; raise the open files limit, ulimit -n)",
                   where, strerror((int)err), self->stats.accept_failed, suppressed);
}

//  Returns nothing; the events reported on monitor `which` (a batch) are
//  handled. A backend connection closed releases the subscriptions it
//  held (hvn_sublimit_closed). An accept that failed is counted and
//  logged. A handshake that failed before ZAP (CURVE on: a client that
//  speaks plain text to a CURVE socket, holds a wrong broker key or does
//  not speak ZMTP; libzmq drops it before any ZAP request, so auth_denied_*
//  does not see it) is counted and logged, rate-limited.
static void s_handle_monitor(hvn_broker_t *self, int which)
{
    static const char *const names[3] = {"frontend", "backend", "service"};
    void *handle = self->items[S_MONITOR + which].socket;
    for (int n = 0; n < S_BATCH_MONITOR; n++) {
        zmq_msg_t parts[S_PARTS_KEPT];
        int nparts = s_recv_parts(handle, parts);
        if (nparts <= 0)
            return;
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&parts[0]) == 6) {
            memcpy(&event, zmq_msg_data(&parts[0]), 2);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&parts[0]) + 2, 4);
        }
        char peer[64] = "";
        if (nparts >= 2)
            s_frame_text(peer, sizeof(peer), &parts[1]);
        s_close_parts(parts, nparts);
        if (event == ZMQ_EVENT_DISCONNECTED && which == S_BACKEND) {
            //  What libzmq queued for the subscriber is freed now
            s_trim_soon(self);
            if (self->track_conns) {
                hvn_sublimit_closed(self->sublimit, (int)value);
                self->stats.subscriptions = (int64_t)hvn_sublimit_total(self->sublimit);
            }
            continue;
        }
        if (event == ZMQ_EVENT_DISCONNECTED && which == S_SERVICE) {
            s_snapshots_closed(self, (int)value);
            continue;
        }
        if (event == ZMQ_EVENT_ACCEPT_FAILED) {
            s_accept_failed(self, names[which], value);
            continue;
        }
        if (!(event & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)))
            continue;
        self->stats.handshakes_failed++;
        uint64_t suppressed;
        if (s_ratelog_due(&self->log_handshakes, self->now_ms, &suppressed))
            zsys_warning("auth: handshake failed on the %s (libzmq error 0x%" PRIx32
                         ", on %s): plain text or a wrong broker key? (%" PRIu64 " so far, %" PRIu64
                         " suppressed since last line)",
                         names[which], value, peer, self->stats.handshakes_failed, suppressed);
    }
}

// --------------------------------------------------------------------------
//  The state file

//  Returns nothing; with --state-file, the bindings are written when one
//  changed (at most once every S_STATE_SAVE_MS), when only seqs moved
//  (every S_STATE_SEQS_MS), or at once when `now` is set and anything
//  changed. A failure is logged (rate-limited) and retried next time.
static void s_state_save(hvn_broker_t *self, int now)
{
    if (!self->state_path || !(self->bindings_dirty || self->seqs_dirty))
        return;
    int64_t since = self->now_ms - self->saved_ms;
    if (!now && since < (self->bindings_dirty ? S_STATE_SAVE_MS : S_STATE_SEQS_MS))
        return;
    char error[512];
    self->saved_ms = self->now_ms;
    if (hvn_state_save(self->state_path, self->cache, self->owners, self->seqmap, error,
                       sizeof(error)) == 0) {
        self->bindings_dirty = self->seqs_dirty = 0;
        return;
    }
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_state, self->now_ms, &suppressed))
        zsys_error("%s (%" PRIu64 " such lines suppressed)", error, suppressed);
}

// --------------------------------------------------------------------------
//  The loop

//  Returns 0 after one wake-up, -1 when interrupted or on a fatal error.
int hvn_broker_poll(hvn_broker_t *self, int max_wait_ms)
{
    assert(self);
    int64_t wait = self->next_heartbeat_ms - zclock_mono();
    if (wait > max_wait_ms)
        wait = max_wait_ms;
    if (self->snapshots)
        wait = s_snapshots_ready(self)      ? 0
               : wait < S_SNAPSHOT_RETRY_MS ? wait
                                            : S_SNAPSHOT_RETRY_MS;
    if (wait < 0)
        wait = 0;
    int rc = zmq_poll(self->items, self->nitems, (long)wait);
    if (zsys_interrupted)
        return -1;
    if (rc < 0 && errno != EINTR) {
        zsys_error("poll failed: %s", zmq_strerror(errno));
        return -1;
    }
    self->now_ms = zclock_mono();
    //  Monitors first: a backend connection's close is seen before a new
    //  connection that reuses its descriptor sends anything
    for (int i = S_MONITOR; i < self->nitems; i++)
        if (self->items[i].revents & ZMQ_POLLIN)
            s_handle_monitor(self, i - S_MONITOR);
    if ((self->items[S_FRONTEND].revents & ZMQ_POLLIN) && s_handle_frontend(self) != 0)
        return -1;
    if ((self->items[S_BACKEND].revents & ZMQ_POLLIN) && s_handle_backend(self) != 0)
        return -1;
    if ((self->items[S_SERVICE].revents & ZMQ_POLLIN) && s_handle_service(self) != 0)
        return -1;
    if (self->snapshots)
        s_handle_snapshots(self);
    if (self->now_ms >= self->next_heartbeat_ms)
        s_handle_timer(self);
    s_state_save(self, 0);
    s_trim(self);
    if (self->auth && self->now_ms >= self->next_auth_ms) {
        //  A certificate removed or changed takes effect on open connections
        hvn_auth_refresh(self->auth);
        self->next_auth_ms = self->now_ms + S_AUTH_REFRESH_MS;
    }
    return zsys_interrupted ? -1 : 0;
}

//  Returns nothing; logs one line with every row of the broker's table
//  ("received 5, forwarded 4, ..."), as STATS would report it.
static void s_log_stopping(hvn_broker_t *self, const char *why)
{
    char line[4096];
    size_t len = 0;
    line[0] = '\0';
    if (hvn_broker_stats_table(self, self->report) == 0)
        for (size_t i = 0; i < hvn_stats_size(self->report) && len < sizeof(line); i++) {
            const hvn_stat_t *row = hvn_stats_at(self->report, i);
            const char *sep = i ? ", " : "";
            int n = row->type == HVN_STAT_UINT
                        ? snprintf(line + len, sizeof(line) - len, "%s%s %" PRIu64, sep,
                                   row->name, row->uint)
                    : row->type == HVN_STAT_INT
                        ? snprintf(line + len, sizeof(line) - len, "%s%s %" PRId64, sep,
                                   row->name, row->sint)
                        : snprintf(line + len, sizeof(line) - len, "%s%s %s", sep, row->name,
                                   row->text);
            len += n > 0 ? (size_t)n : 0;
        }
    zsys_info("broker %s stopping %s: %s", self->id, why, line);
}

//  Returns nothing; sets the function called after each wake-up.
void hvn_broker_set_tick(hvn_broker_t *self, hvn_broker_tick_fn *fn, void *arg)
{
    assert(self);
    self->tick = fn;
    self->tick_arg = arg;
}

//  Returns 0 when stopped by a signal, -1 on a fatal socket error.
int hvn_broker_run(hvn_broker_t *self)
{
    assert(self);
    zsys_info("broker %s started: name %s, frontend %s, backend %s, service %s, "
              "max-msg-size %zu, max-publisher-nodes %zu (heartbeats up to %zu bytes), "
              "max-topic-size %zu, heartbeat-ms %" PRId64 ", ring-bytes %zu, subscriber "
              "queue %d messages, snapshot-bytes %zu, snapshot-stall-ms %" PRId64,
              self->id, self->name, self->endpoint[S_FRONTEND], self->endpoint[S_BACKEND],
              self->endpoint[S_SERVICE], self->max_msg_size, self->max_publisher_nodes,
              self->max_heartbeat_size, self->max_topic_size, self->heartbeat_ms,
              hvn_ring_max_bytes(self->ring), self->subscriber_queue, self->snapshot_bytes_max,
              self->snapshot_stall_ms);
    while (hvn_broker_poll(self, S_POLL_MAX_MS) == 0)
        if (self->tick)
            self->tick(self, self->tick_arg);
    int rc = zsys_interrupted ? 0 : -1;
    s_log_stopping(self, rc == 0 ? "on signal" : "on error");
    return rc;
}

// --------------------------------------------------------------------------
//  Construction

//  Returns nothing; fills defaults.
void hvn_broker_config_defaults(hvn_broker_config_t *config)
{
    assert(config);
    memset(config, 0, sizeof(*config));
    config->frontend = HVN_BROKER_FRONTEND;
    config->backend = HVN_BROKER_BACKEND;
    config->service = HVN_BROKER_SERVICE;
    config->max_msg_size = HVN_MAX_MSG_SIZE;
    config->max_publisher_nodes = HVN_BROKER_PUBLISHER_NODES;
    config->heartbeat_ms = HVN_BROKER_HEARTBEAT_MS;
    config->max_topic_size = HVN_TOPIC_MAX;
    config->max_subscriptions = HVN_BROKER_SUBSCRIPTIONS;
    config->max_snapshot_rate = HVN_BROKER_SNAPSHOT_RATE;
    config->listen_backlog = HVN_BROKER_LISTEN_BACKLOG;
    config->ring_bytes = HVN_BROKER_RING_BYTES;
    config->subscriber_bytes = HVN_BROKER_SUBSCRIBER_BYTES;
    config->snapshot_bytes = HVN_BROKER_SNAPSHOT_BYTES;
    config->snapshot_stall_ms = HVN_BROKER_SNAPSHOT_STALL_MS;
}

//  Returns 1 when our heartbeat could be encoded with this name, else 0.
int hvn_broker_name_valid(const char *name)
{
    if (!name)
        return 0;
    hvn_encoder_t *encoder = hvn_encoder_new();
    if (!encoder)
        return 0;
    hvn_header_t header = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t frames;
    int ok = hvn_encoder_broker_heartbeat(encoder, name, "00000000-0000-4000-8000-000000000000",
                                          1000, &header, &frames) == 0;
    hvn_encoder_destroy(&encoder);
    return ok;
}

//  Returns 0 when sock is bound to endpoint (its resolved endpoint stored
//  in self->endpoint[which]), -1 with the reason in error.
static int s_bind(hvn_broker_t *self, int which, zsock_t *sock, const char *role,
                  const char *endpoint, char *error, size_t error_size)
{
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        hvn_error_set(error, error_size, "cannot bind %s to %s: %s", role, endpoint,
                      zmq_strerror(zmq_errno()));
        return -1;
    }
    self->endpoint[which] = zsock_last_endpoint(sock);
    if (!self->endpoint[which])
        self->endpoint[which] = strdup(endpoint);
    self->items[which].socket = zsock_resolve(sock);
    self->items[which].events = ZMQ_POLLIN;
    return self->endpoint[which] ? 0 : -1;
}

//  Returns 0 when CURVE is off, or when it is on with the ZAP handler
//  running and the three sockets made CURVE servers of their domains
//  (nothing bound yet, so no connection can come in unauthenticated); -1
//  with the reason in error.
static int s_curve_apply(hvn_broker_t *self, const hvn_broker_config_t *config, char *error,
                         size_t error_size)
{
    if (!config->curve_secret)
        return 0;
    zcert_t *cert = zcert_load(config->curve_secret);
    static const uint8_t zero[32] = {0};
    if (!cert || memcmp(zcert_secret_key(cert), zero, 32) == 0) {
        hvn_error_set(error, error_size, "--curve-secret '%s': not a readable secret certificate",
                      config->curve_secret);
        zcert_destroy(&cert);
        return -1;
    }
    self->auth = hvn_auth_new(config->publishers_dir, config->subscribers_dir, error, error_size);
    if (!self->auth) {
        zcert_destroy(&cert);
        return -1;
    }
    zsock_t *socks[3] = {self->frontend, self->backend, self->service};
    const char *domains[3] = {HVN_AUTH_PUBLISHERS, HVN_AUTH_SUBSCRIBERS, HVN_AUTH_SERVICE};
    for (int i = 0; i < 3; i++) {
        zcert_apply(cert, socks[i]);
        zsock_set_curve_server(socks[i], 1);
        zsock_set_zap_domain(socks[i], domains[i]);
    }
    zsys_info("CURVE on: broker key %s, publishers from '%s', subscribers from '%s'",
              zcert_public_txt(cert), config->publishers_dir, config->subscribers_dir);
    zcert_destroy(&cert);
    return 0;
}

//  Returns 0 with a monitor on each socket (before anything is bound, so
//  no connection goes unseen), -1 with the reason in error. Every socket
//  reports accepts that failed; the backend its connections' closes (the
//  subscriptions they held are released then); with CURVE on, every
//  socket its handshakes that failed before ZAP.
static int s_monitors_open(hvn_broker_t *self, char *error, size_t error_size)
{
    zsock_t *socks[3] = {self->frontend, self->backend, self->service};
    for (int i = 0; i < 3; i++) {
        int events = ZMQ_EVENT_ACCEPT_FAILED;
        if (i == S_BACKEND || i == S_SERVICE)
            events |= ZMQ_EVENT_DISCONNECTED;
        if (self->auth)
            events |= ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
        char endpoint[96];
        //  Named by the instance id: a destroyed broker's names are
        //  released asynchronously, and the next may get its address
        snprintf(endpoint, sizeof(endpoint), "inproc://hvn-broker-monitor-%s-%d", self->id, i);
        self->monitor[i] = zsock_new(ZMQ_PAIR);
        if (!self->monitor[i] ||
            zmq_socket_monitor(zsock_resolve(socks[i]), endpoint, events) != 0 ||
            zsock_connect(self->monitor[i], "%s", endpoint) != 0) {
            hvn_error_set(error, error_size, "cannot monitor the sockets: %s",
                          zmq_strerror(zmq_errno()));
            return -1;
        }
        //  A lost close would leave its subscriptions counted
        zsock_set_rcvhwm(self->monitor[i], 0);
        self->items[S_MONITOR + i].socket = zsock_resolve(self->monitor[i]);
        self->items[S_MONITOR + i].events = ZMQ_POLLIN;
    }
    self->nitems = 6;
    return 0;
}

//  Returns nothing; the three sockets will listen with room for backlog
//  connections not yet accepted. libzmq's default, 100, is far too few
//  when thousands of publishers reconnect at once after a broker restart:
//  the kernel drops the SYNs past it and each host waits out TCP's
//  retransmission timer (1 s, then 3 s, 7 s...) before it tries again. The
//  kernel silently caps the backlog at net.core.somaxconn: said once here.
static void s_backlog_apply(hvn_broker_t *self, int backlog)
{
    zsock_set_backlog(self->frontend, backlog);
    zsock_set_backlog(self->backend, backlog);
    zsock_set_backlog(self->service, backlog);
    FILE *file = fopen("/proc/sys/net/core/somaxconn", "r");
    int cap = 0;
    if (file && fscanf(file, "%d", &cap) == 1 && cap > 0 && cap < backlog)
        zsys_notice("listen backlog %d is capped at %d by the kernel (net.core.somaxconn): "
                    "raise that to %d for the whole backlog (dist/sysctl/60-hvn-broker.conf)",
                    backlog, cap, backlog);
    if (file)
        fclose(file);
}

//  Returns the backend's high water mark: --subscriber-hwm messages, or
//  fewer when that many of the largest message the broker forwards (a
//  notification of max_msg_size, or a publisher heartbeat of
//  max_heartbeat_size, with its topic and libzmq's bookkeeping) would
//  pin more than --subscriber-bytes. libzmq has no bound in bytes; this
//  is its only way to one. Logged when it cuts the queue.
static int s_subscriber_queue(const hvn_broker_t *self, const hvn_broker_config_t *config)
{
    size_t hwm = config->subscriber_hwm > 0 ? (size_t)config->subscriber_hwm : S_BACKEND_SNDHWM;
    size_t budget =
        config->subscriber_bytes ? config->subscriber_bytes : (size_t)HVN_BROKER_SUBSCRIBER_BYTES;
    size_t body = self->max_heartbeat_size > self->max_msg_size ? self->max_heartbeat_size
                                                                : self->max_msg_size;
    if (body < S_RECV_BUFFER)
        body = S_RECV_BUFFER;
    size_t largest = HVN_TOPIC_MAX + HVN_HEADER_SIZE + body + S_MSG_OVERHEAD;
    size_t fits = budget / largest ? budget / largest : 1;
    if (fits < hwm) {
        zsys_info("backend: a subscriber's queue holds %zu messages, not %zu: %zu of the "
                  "largest (%zu bytes) fit in --subscriber-bytes %zu",
                  fits, hwm, fits, largest, budget);
        hwm = fits;
    }
    return (int)hwm;
}

//  Returns 0 with the three sockets made and bound, -1 with the reason in
//  error.
static int s_sockets_open(hvn_broker_t *self, const hvn_broker_config_t *config, char *error,
                          size_t error_size)
{
    self->frontend = zsock_new(ZMQ_XSUB);
    self->backend = zsock_new(ZMQ_XPUB);
    self->service = zsock_new(ZMQ_ROUTER);
    if (!self->frontend || !self->backend || !self->service) {
        hvn_error_set(error, error_size, "cannot create sockets: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    size_t hard = self->max_heartbeat_size * 4;
    zsock_set_rcvhwm(self->frontend, S_FRONTEND_RCVHWM);
    zsock_set_maxmsgsize(self->frontend, (int)(hard > S_FRAME_HARD_MIN ? hard : S_FRAME_HARD_MIN));
    self->subscriber_queue = s_subscriber_queue(self, config);
    zsock_set_sndhwm(self->backend, self->subscriber_queue);
    zsock_set_xpub_verboser(self->backend, 1);
    //  Manual: the broker applies each subscription itself, within its
    //  per-subscriber limit (s_subscription)
    zsock_set_xpub_manual(self->backend, 1);
    zsock_set_maxmsgsize(self->backend, S_SUBSCRIPTION_FRAME_MAX);
    //  What one subscriber can have sent ahead of the broker's reading
    //  (and so into libzmq's memory before it is cut): a small kernel
    //  buffer and a short queue. Subscriptions are few and small; the
    //  peer waits, nothing is dropped.
    zsock_set_rcvbuf(self->backend, S_BACKEND_RCVBUF);
    zsock_set_rcvhwm(self->backend, S_BACKEND_RCVHWM);
    zsock_set_sndhwm(self->service, S_SERVICE_SNDHWM);
    zsock_set_router_mandatory(self->service, 1);
    zsock_set_maxmsgsize(self->service, S_CONTROL_FRAME_MAX);
    s_backlog_apply(self, config->listen_backlog);
    if (s_curve_apply(self, config, error, error_size) != 0 ||
        s_monitors_open(self, error, error_size) != 0)
        return -1;
    //  Over inproc:// a message names no connection (ZMQ_SRCFD is -1)
    self->track_conns = strncmp(config->backend, "inproc://", 9) != 0;
    if (s_bind(self, S_FRONTEND, self->frontend, "frontend", config->frontend, error, error_size) !=
            0 ||
        s_bind(self, S_BACKEND, self->backend, "backend", config->backend, error, error_size) !=
            0 ||
        s_bind(self, S_SERVICE, self->service, "service", config->service, error, error_size) != 0)
        return -1;
    //  Subscribe to everything upstream: the broker caches every node.
    //  XSUB keeps the subscription and sends it to each publisher that
    //  connects, which is how a publisher learns the broker is there.
    if (zmq_send(self->items[S_FRONTEND].socket, "\x01", 1, 0) != 1) {
        hvn_error_set(error, error_size, "cannot subscribe the frontend: %s",
                      zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

//  Returns 0 with self->name set to config's name or the short host name,
//  -1 with the reason in error.
static int s_name_set(hvn_broker_t *self, const char *name, char *error, size_t error_size)
{
    char host[HVN_TOPIC_MAX + 1] = "";
    if (!name) {
        if (gethostname(host, sizeof(host) - 1) != 0)
            strcpy(host, "localhost");
        host[strcspn(host, ".")] = '\0';
        name = host;
    }
    if (!hvn_broker_name_valid(name)) {
        hvn_error_set(error, error_size,
                      "invalid broker name '%s' (1 to 244 bytes of UTF-8, no '@' or control bytes)",
                      name);
        return -1;
    }
    snprintf(self->name, sizeof(self->name), "%s", name);
    return 0;
}

//  Returns the bound broker, or NULL with the reason in error.
hvn_broker_t *hvn_broker_new(const hvn_broker_config_t *config, char *error, size_t error_size)
{
    assert(config && config->frontend && config->backend && config->service);
    if (!config->curve_secret != !config->publishers_dir ||
        !config->curve_secret != !config->subscribers_dir) {
        hvn_error_set(
            error, error_size,
            "CURVE needs all of curve-secret, publishers-dir and subscribers-dir, or none");
        return NULL;
    }
    if (config->max_msg_size < 1 || config->max_msg_size > HVN_BROKER_MSG_SIZE_MAX ||
        config->heartbeat_ms < 1 || config->heartbeat_ms > HVN_BROKER_HEARTBEAT_MAX ||
        config->max_publisher_nodes < 1 ||
        config->max_publisher_nodes > HVN_BROKER_PUBLISHER_NODES_MAX ||
        config->max_topic_size < 1 || config->max_topic_size > HVN_TOPIC_MAX ||
        config->max_subscriptions < 1 || config->max_subscriptions > HVN_BROKER_SUBSCRIPTIONS_MAX ||
        config->max_snapshot_rate < 1 || config->max_snapshot_rate > HVN_BROKER_SNAPSHOT_RATE_MAX ||
        config->listen_backlog < 1 || config->listen_backlog > HVN_BROKER_LISTEN_BACKLOG_MAX ||
        (unsigned long long)config->ring_bytes > (unsigned long long)HVN_BROKER_RING_BYTES_MAX ||
        (unsigned long long)config->snapshot_bytes >
            (unsigned long long)HVN_BROKER_SNAPSHOT_BYTES_MAX ||
        (unsigned long long)config->subscriber_bytes >
            (unsigned long long)HVN_BROKER_SUBSCRIBER_BYTES_MAX ||
        config->snapshot_stall_ms < 0 ||
        config->snapshot_stall_ms > HVN_BROKER_SNAPSHOT_STALL_MAX) {
        hvn_error_set(error, error_size,
                      "max-msg-size, heartbeat-ms, max-publisher-nodes, max-topic-size, "
                      "max-subscriptions, max-snapshot-rate, listen-backlog, ring-bytes, "
                      "snapshot-bytes, snapshot-stall-ms or subscriber-bytes out of range");
        return NULL;
    }
    //  A connection the broker shut down (s_cut_subscriber) or that broke
    //  fails a write with EPIPE, which libzmq handles; the signal would
    //  end the process
    signal(SIGPIPE, SIG_IGN);
    hvn_broker_t *self = calloc(1, sizeof(*self));
    if (!self) {
        hvn_error_set(error, error_size, "out of memory");
        return NULL;
    }
    self->nitems = 3; //  The monitors join them (s_monitors_open)
    self->max_msg_size = config->max_msg_size;
    self->max_publisher_nodes = config->max_publisher_nodes;
    self->max_heartbeat_size =
        hvn_broker_heartbeat_size_max(config->max_publisher_nodes, config->max_msg_size);
    self->heartbeat_ms = config->heartbeat_ms;
    self->max_topic_size = config->max_topic_size;
    self->snapshot_bytes_max =
        config->snapshot_bytes ? config->snapshot_bytes : (size_t)HVN_BROKER_SNAPSHOT_BYTES;
    self->snapshot_stall_ms =
        config->snapshot_stall_ms ? config->snapshot_stall_ms : HVN_BROKER_SNAPSHOT_STALL_MS;
    hvn_rejects_init(&self->stats.rejects, "broker");
    hvn_uuid4_raw(self->instance);
    uuid_unparse_lower(self->instance, self->id);
    self->report = hvn_stats_new();
    self->decoder = hvn_decoder_new();
    self->encoder = hvn_encoder_new();
    self->cache = hvn_cache_new();
    self->seqmap = hvn_seqmap_new(S_SEQMAP_MAX);
    self->ring = hvn_ring_new(config->ring_bytes);
    self->sublimit = hvn_sublimit_new(config->max_subscriptions);
    self->snaplimit = hvn_ratelimit_new(config->max_snapshot_rate);
    self->owners = hvn_idmap_new();
    if (config->state_file)
        self->state_path = strdup(config->state_file);
    if (!self->report || !self->decoder || !self->encoder || !self->cache || !self->seqmap ||
        !self->ring || !self->sublimit || !self->snaplimit || !self->owners ||
        (config->state_file && !self->state_path)) {
        hvn_error_set(error, error_size, "out of memory");
        hvn_broker_destroy(&self);
        return NULL;
    }
    if (self->state_path) {
        long read = hvn_state_load(self->state_path, self->owners, self->seqmap, zclock_mono(),
                                   &self->instances_seen, error, error_size);
        if (read < 0) {
            hvn_broker_destroy(&self);
            return NULL;
        }
        zsys_info("state file '%s': %zu node and %zu publisher instance binding(s) read",
                  self->state_path, hvn_idmap_size(self->owners), hvn_seqmap_size(self->seqmap));
    }
    //  Each kind's own limit is checked before decoding (s_too_big)
    hvn_decoder_set_max_size(self->decoder, self->max_heartbeat_size);
    if (s_name_set(self, config->name, error, error_size) != 0 ||
        s_sockets_open(self, config, error, error_size) != 0) {
        hvn_broker_destroy(&self);
        return NULL;
    }
    self->started_ms = self->now_ms = zclock_mono();
    self->next_heartbeat_ms = self->started_ms; //  First heartbeat at once
    return self;
}

//  Returns nothing; sockets closed, everything freed.
void hvn_broker_destroy(hvn_broker_t **self_p)
{
    assert(self_p);
    hvn_broker_t *self = *self_p;
    if (!self)
        return;
    if (self->cache && self->seqmap && self->owners) {
        self->now_ms = zclock_mono();
        s_state_save(self, 1); //  What changed since the last save
    }
    zsock_t *socks[3] = {self->frontend, self->backend, self->service};
    for (int i = 0; i < 3; i++)
        if (self->monitor[i]) {
            zmq_socket_monitor(zsock_resolve(socks[i]), NULL, 0);
            zsock_destroy(&self->monitor[i]);
        }
    zsock_destroy(&self->frontend);
    zsock_destroy(&self->backend);
    zsock_destroy(&self->service);
    hvn_auth_destroy(&self->auth); //  After the sockets: without it, CURVE lets anyone in
    hvn_sublimit_destroy(&self->sublimit);
    hvn_ratelimit_destroy(&self->snaplimit);
    for (int i = 0; i < 3; i++)
        zstr_free(&self->endpoint[i]);
    hvn_decoder_destroy(&self->decoder);
    hvn_encoder_destroy(&self->encoder);
    hvn_cache_destroy(&self->cache);
    hvn_seqmap_destroy(&self->seqmap);
    if (self->owners)
        for (size_t i = 0; i < hvn_idmap_slots(self->owners); i++)
            free(hvn_idmap_at(self->owners, i));
    hvn_idmap_destroy(&self->owners);
    free(self->state_path);
    hvn_ring_destroy(&self->ring);
    while (self->snapshots) {
        s_snapjob_t *job = self->snapshots;
        self->snapshots = job->next;
        s_snapjob_free(job);
    }
    hvn_stats_destroy(&self->report);
    free(self);
    *self_p = NULL;
}

//  Returns the instance id text.
const char *hvn_broker_id(const hvn_broker_t *self)
{
    assert(self);
    return self->id;
}

//  Returns the resolved endpoint of "frontend", "backend" or "service".
const char *hvn_broker_endpoint(const hvn_broker_t *self, const char *which)
{
    assert(self && which);
    if (streq(which, "frontend"))
        return self->endpoint[S_FRONTEND];
    if (streq(which, "backend"))
        return self->endpoint[S_BACKEND];
    assert(streq(which, "service"));
    return self->endpoint[S_SERVICE];
}

//  Returns the live counters.
const hvn_broker_stats_t *hvn_broker_stats(const hvn_broker_t *self)
{
    assert(self);
    return &self->stats;
}

//  Returns the heartbeat body limit: room for max_publisher_nodes uuids,
//  never less than the notification limit.
size_t hvn_broker_heartbeat_size_max(size_t max_publisher_nodes, size_t max_msg_size)
{
    size_t size = HVN_HEARTBEAT_SIZE_MAX(max_publisher_nodes);
    return size > max_msg_size ? size : max_msg_size;
}

//  Returns the number of cached nodes.
size_t hvn_broker_cache_nodes(const hvn_broker_t *self)
{
    assert(self);
    return hvn_cache_size(self->cache);
}

//  Returns the cache's memory estimate, bytes.
size_t hvn_broker_cache_bytes(const hvn_broker_t *self)
{
    assert(self);
    return hvn_cache_bytes(self->cache);
}
