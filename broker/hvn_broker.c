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
#include "hvn_cache.h"
#include "hvn_codec.h"
#include "hvn_ids.h"
#include "hvn_seqmap.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

//  Messages handled per socket per wake-up: big enough that a busy frontend
//  costs one poll per thousand messages, small enough that the service and
//  the timer still get their turn within a millisecond or two.
#define S_BATCH_FRONTEND 1024
#define S_BATCH_BACKEND 1024
#define S_BATCH_SERVICE 64

//  Longest sleep in zmq_poll. A signal interrupts the poll anyway; the bound
//  makes sure zsys_interrupted is seen even if the signal went elsewhere.
#define S_POLL_MAX_MS 250

//  Backend XPUB: up to this many messages queue for one subscriber before
//  XPUB drops that subscriber's excess. A drop shows up to it as a seq gap,
//  and it re-snapshots. The default 1000 drops during ordinary bursts
//  (9-15 % measured through a bare proxy at full speed); 100 000 rides
//  out a burst of the whole fleet at once, at a cost bounded by ~70 MB per
//  stuck subscriber. ZMQ_XPUB_NODROP is not used: with it one slow
//  subscriber would stall every other one (libzmq #4469).
#define S_BACKEND_SNDHWM 100000

//  Frontend XSUB: publishers' messages queue here while the loop is busy (a
//  large snapshot, a burst), rather than being dropped at the publishers'
//  XPUBs. Same size and reasoning as the backend.
#define S_FRONTEND_RCVHWM 100000

//  Service ROUTER: a snapshot of 100 000 nodes is 100 001 messages queued
//  at once; HWM counts whole messages. 250 000 holds two full snapshots in
//  flight per client. With ZMQ_ROUTER_MANDATORY a full queue is an error
//  (counted, the reply is cut short), never a silent truncation.
#define S_SERVICE_SNDHWM 250000

//  Frames larger than this are not even received: libzmq drops the peer's
//  connection. It is a guard against a peer making the broker allocate
//  gigabytes; anything between the body limit and this is received, then
//  refused as too_big and counted.
#define S_FRAME_HARD_MIN (16 * 1024 * 1024)
#define S_CONTROL_FRAME_MAX 65536 //  Subscriptions and service requests

//  Publisher instances tracked for the END frame's seq map, and how many
//  of their heartbeat intervals of silence make the broker forget one.
#define S_SEQMAP_MAX 262144
#define S_SEQMAP_INTERVALS 10

#define S_LOG_INTERVAL_MS 1000 //  Rate-limited log lines: at most one a second
#define S_PARTS_KEPT 3         //  Parts of a message kept; the rest are drained

//  A log line that repeats at most once a second, counting the rest.
typedef struct {
    int64_t last_ms;     //  Monotonic time of the last line
    uint64_t suppressed; //  Events since that line not logged
    int logged;          //  Nonzero once a line has been written
} s_ratelog_t;

struct _hvn_broker_t {
    zsock_t *frontend;             //  XSUB, bound; publishers connect
    zsock_t *backend;              //  XPUB, bound; subscribers connect
    zsock_t *service;              //  ROUTER, bound; snapshot and stats
    zmq_pollitem_t items[3];       //  The three sockets' libzmq handles, polled
    char *endpoint[3];             //  Resolved bound endpoints, same order
    char name[HVN_TOPIC_MAX + 1];  //  Broker name, hvn.broker@<name>
    char id[HVN_UUID_STR_LEN + 1]; //  Instance id as UUID text
    uint8_t instance[16];          //  Instance id, fresh per start
    size_t max_msg_size;           //  Largest body accepted, bytes
    int64_t heartbeat_ms;          //  Our heartbeat interval
    int64_t started_ms;            //  Monotonic start time
    int64_t now_ms;                //  Monotonic time of this wake-up
    int64_t next_heartbeat_ms;     //  When our next heartbeat is due
    hvn_decoder_t *decoder;        //  Validates every frontend message
    hvn_encoder_t *encoder;        //  Encodes our heartbeats
    hvn_msg_t msg;                 //  The message being handled, decoded
    zmq_msg_t parts[S_PARTS_KEPT]; //  Its frames as received
    hvn_cache_t *cache;            //  Node uuid -> last create/update frames
    hvn_seqmap_t *seqmap;          //  Publisher instance -> last seq
    msgpack_sbuffer sbuf;          //  Reply bodies (STATS, END)
    msgpack_packer pk;             //  Packs into sbuf
    hvn_broker_stats_t stats;      //  Counters, as STATS reports them
    s_ratelog_t log_service;       //  Refused service requests
    s_ratelog_t log_snapshot;      //  Snapshots served or cut short
    s_ratelog_t log_untracked;     //  Instances the seq map had no room for
    s_ratelog_t log_trouble;       //  Forward and cache errors
};

enum { S_FRONTEND = 0, S_BACKEND = 1, S_SERVICE = 2 };

//  A uint64 counter of the stats struct and its name in STATS: the table
//  that STATS walks, so a counter is added in one place.
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
    {"service_refused", offsetof(hvn_broker_stats_t, service_refused)},
    {"publishers_untracked", offsetof(hvn_broker_stats_t, publishers_untracked)},
};
#define S_COUNTERS (sizeof(s_counters) / sizeof(s_counters[0]))

// --------------------------------------------------------------------------
//  Helpers

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
//  S_PARTS_KEPT of them in parts[] (the caller closes them), the rest
//  received and dropped; 0 when no message is waiting; -1 on a socket error
//  (errno set; parts[] then holds nothing to close).
static int s_recv_parts(void *handle, zmq_msg_t *parts)
{
    int count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *part = count < S_PARTS_KEPT ? &parts[count] : &extra;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, handle, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(part);
            for (int i = 0; i < count && i < S_PARTS_KEPT; i++)
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

// --------------------------------------------------------------------------
//  Frontend: validate, cache, forward

//  Returns the value of one hex digit, or -1.
static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

//  Returns 0 with key holding the 16 bytes of canonical UUID text, or -1
//  when the text is not one. libuuid's uuid_parse does the same through
//  strtoul per byte: measured at 12 % of the broker's time at full load.
static int s_uuid_key(const char *text, uint8_t key[16])
{
    int out = 0;
    for (int i = 0; i < HVN_UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return -1;
            continue;
        }
        int hi = s_hex(text[i]), lo = s_hex(text[++i]);
        if (hi < 0 || lo < 0)
            return -1;
        key[out++] = (uint8_t)(hi << 4 | lo);
    }
    return text[HVN_UUID_STR_LEN] == '\0' ? 0 : -1;
}

//  Returns 1 when the sync in self->msg is no newer than the cached entry
//  of the same node from the same publisher instance, else 0.
static int s_sync_is_stale(hvn_broker_t *self, const uint8_t key[16])
{
    hvn_cache_item_t item;
    hvn_header_t cached;
    if (!hvn_cache_lookup(self->cache, key, &item))
        return 0;
    if (hvn_header_unpack(item.header, HVN_HEADER_SIZE, &cached) != HVN_OK)
        return 0;
    if (memcmp(cached.instance, self->msg.header.instance, 16) != 0)
        return 0;
    if (cached.seq > self->msg.header.seq)
        self->stats.syncs_stale++;
    return cached.seq >= self->msg.header.seq;
}

//  Returns nothing; the cache reflects the notification or sync in
//  self->msg: a create/update stored as received, a delete removed.
static void s_cache_store(hvn_broker_t *self)
{
    uint8_t key[16];
    if (s_uuid_key(self->msg.node.uuid, key) != 0)
        return; //  The decoder checked it; unreachable in practice
    if (self->msg.header.kind == HVN_KIND_SYNC && s_sync_is_stale(self, key))
        return;
    if (self->msg.event == HVN_EVENT_DELETE) {
        hvn_cache_delete(self->cache, key);
        return;
    }
    zmq_msg_t *parts = self->parts;
    if (hvn_cache_put(self->cache, key, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                      zmq_msg_data(&parts[1]), zmq_msg_data(&parts[2]),
                      zmq_msg_size(&parts[2])) < 0) {
        self->stats.cache_errors++;
        s_trouble(self, "cache: out of memory, a node was not stored");
    }
}

//  Returns nothing; the seq map holds the message's seq for its instance.
static void s_track_seq(hvn_broker_t *self)
{
    const hvn_header_t *header = &self->msg.header;
    if (hvn_seqmap_update(self->seqmap, header->instance, header->seq, self->now_ms) == 0)
        return;
    self->stats.publishers_untracked++;
    uint64_t suppressed;
    if (s_ratelog_due(&self->log_untracked, self->now_ms, &suppressed))
        zsys_warning("seq map full (%zu publisher instances): instance of '%s' not tracked "
                     "(%" PRIu64 " total, %" PRIu64 " suppressed since last line)",
                     hvn_seqmap_size(self->seqmap), self->msg.topic,
                     self->stats.publishers_untracked, suppressed);
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
    zmq_msg_t *parts = self->parts;
    hvn_reason_t reason = hvn_decoder_decode(
        self->decoder, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]),
        zmq_msg_size(&parts[1]), zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), &self->msg);
    if (reason != HVN_OK) {
        s_refuse(self, reason, hvn_decoder_detail(self->decoder));
        return;
    }
    if (self->msg.event == HVN_EVENT_BROKER) {
        //  Only a broker speaks as a broker: a publisher sending its
        //  heartbeat topic could fake a broker restart to every subscriber
        s_refuse(self, HVN_R_NOT_AUTHORIZED, "hvn.broker topic from a publisher");
        return;
    }
    switch (self->msg.header.kind) {
    case HVN_KIND_NOTIFICATION:
        self->stats.notifications++;
        s_cache_store(self);
        s_track_seq(self);
        s_forward(self);
        break;
    case HVN_KIND_HEARTBEAT:
        self->stats.heartbeats_in++;
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
        s_accept(self, nparts);
        s_close_parts(self->parts, nparts);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Backend: count subscriptions

//  Returns 0 after reading up to a batch of (un)subscriptions, -1 on a
//  fatal socket error.
static int s_handle_backend(hvn_broker_t *self)
{
    for (int n = 0; n < S_BATCH_BACKEND && !zsys_interrupted; n++) {
        int nparts = s_recv_parts(self->items[S_BACKEND].socket, self->parts);
        if (nparts <= 0)
            return nparts == 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
        const uint8_t *data = zmq_msg_data(&self->parts[0]);
        //  XPUB_VERBOSER passes every subscribe and unsubscribe, including
        //  those of a subscriber that disconnects: the count stays exact.
        //  Anything else an XSUB peer may send up is ignored.
        if (nparts == 1 && zmq_msg_size(&self->parts[0]) >= 1) {
            if (data[0] == 1)
                self->stats.subscriptions++;
            else if (data[0] == 0 && self->stats.subscriptions > 0)
                self->stats.subscriptions--;
        }
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
    if (s_send(snap->handle, snap->id, snap->id_size, 1) || s_send(snap->handle, "ITEM", 4, 1) ||
        s_send(snap->handle, item->topic, item->topic_size, 1) ||
        s_send(snap->handle, item->header, HVN_HEADER_SIZE, 1) ||
        s_send(snap->handle, item->body, item->body_size, 0)) {
        snap->err = errno;
        return -1;
    }
    return 0;
}

//  Returns 0 after packing one "uuid text": seq pair of the END map.
static int s_pack_publisher(const uint8_t instance[16], uint64_t seq, void *arg)
{
    msgpack_packer *pk = arg;
    char text[HVN_UUID_STR_LEN + 1];
    uuid_unparse_lower(instance, text);
    msgpack_pack_str(pk, HVN_UUID_STR_LEN);
    msgpack_pack_str_body(pk, text, HVN_UUID_STR_LEN);
    msgpack_pack_uint64(pk, seq);
    return 0;
}

//  Returns nothing; packs the string key (or value) s.
static void s_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

//  Returns 0 when the reply [id, word, sbuf] is queued, -1 when not.
static int s_reply(hvn_broker_t *self, zmq_msg_t *id, const char *word, const void *body,
                   size_t body_size)
{
    void *service = self->items[S_SERVICE].socket;
    if (s_send(service, zmq_msg_data(id), zmq_msg_size(id), 1) ||
        s_send(service, word, strlen(word), 1) || s_send(service, body, body_size, 0))
        return -1;
    return 0;
}

//  Returns nothing; the client gets every cached entry under prefix as an
//  ITEM, then END with the broker id, the count and the seq map — or, when
//  its queue fills or it is gone, as much as could be sent (counted).
static void s_serve_snapshot(hvn_broker_t *self, zmq_msg_t *id, zmq_msg_t *prefix)
{
    char prefix_text[HVN_TOPIC_MAX + 1];
    s_frame_text(prefix_text, sizeof(prefix_text), prefix);
    s_snapshot_t snap = {self->items[S_SERVICE].socket, zmq_msg_data(id), zmq_msg_size(id), 0};
    long count = hvn_cache_foreach(self->cache, zmq_msg_data(prefix), zmq_msg_size(prefix),
                                   s_send_item, &snap);
    if (count >= 0) {
        msgpack_sbuffer_clear(&self->sbuf);
        msgpack_pack_map(&self->pk, 3);
        s_pack_cstr(&self->pk, "broker_id");
        s_pack_cstr(&self->pk, self->id);
        s_pack_cstr(&self->pk, "count");
        msgpack_pack_int64(&self->pk, count);
        s_pack_cstr(&self->pk, "publishers");
        msgpack_pack_map(&self->pk, (uint32_t)hvn_seqmap_size(self->seqmap));
        hvn_seqmap_foreach(self->seqmap, s_pack_publisher, &self->pk);
        if (s_reply(self, id, "END", self->sbuf.data, self->sbuf.size) != 0)
            snap.err = errno;
    }
    uint64_t suppressed;
    if (snap.err == 0) {
        self->stats.snapshots++;
        if (s_ratelog_due(&self->log_snapshot, self->now_ms, &suppressed))
            zsys_info("service: snapshot of %ld nodes under prefix '%s' served (%" PRIu64
                      " snapshots, %" PRIu64 " unlogged since last line)",
                      count, prefix_text, self->stats.snapshots, suppressed);
        return;
    }
    self->stats.snapshots_failed++;
    if (s_ratelog_due(&self->log_snapshot, self->now_ms, &suppressed))
        zsys_warning("service: snapshot under prefix '%s' cut short: %s (%" PRIu64
                     " cut short, %" PRIu64 " unlogged since last line)",
                     prefix_text, snap.err == EAGAIN ? "client's queue is full" : "client gone",
                     self->stats.snapshots_failed, suppressed);
}

//  Returns nothing; the client gets ["STATS", msgpack map of counters].
static void s_serve_stats(hvn_broker_t *self, zmq_msg_t *id)
{
    msgpack_packer *pk = &self->pk;
    const hvn_rejects_t *rejects = &self->stats.rejects;
    msgpack_sbuffer_clear(&self->sbuf);
    msgpack_pack_map(pk, (uint32_t)(S_COUNTERS + 1 + (HVN_R_COUNT - 1) + 7));
    for (size_t i = 0; i < S_COUNTERS; i++) {
        s_pack_cstr(pk, s_counters[i].name);
        msgpack_pack_uint64(pk,
                            *(const uint64_t *)((const char *)&self->stats + s_counters[i].offset));
    }
    s_pack_cstr(pk, "refused");
    msgpack_pack_uint64(pk, hvn_rejects_total(rejects));
    for (int r = HVN_OK + 1; r < HVN_R_COUNT; r++) {
        char key[64];
        snprintf(key, sizeof(key), "refused.%s", hvn_reason_str((hvn_reason_t)r));
        s_pack_cstr(pk, key);
        msgpack_pack_uint64(pk, rejects->count[r]);
    }
    s_pack_cstr(pk, "cache_nodes");
    msgpack_pack_uint64(pk, hvn_cache_size(self->cache));
    s_pack_cstr(pk, "cache_bytes");
    msgpack_pack_uint64(pk, hvn_cache_bytes(self->cache));
    s_pack_cstr(pk, "subscriptions");
    msgpack_pack_int64(pk, self->stats.subscriptions);
    s_pack_cstr(pk, "publishers");
    msgpack_pack_uint64(pk, hvn_seqmap_size(self->seqmap));
    s_pack_cstr(pk, "uptime_ms");
    msgpack_pack_int64(pk, zclock_mono() - self->started_ms);
    s_pack_cstr(pk, "broker_id");
    s_pack_cstr(pk, self->id);
    s_pack_cstr(pk, "name");
    s_pack_cstr(pk, self->name);
    s_reply(self, id, "STATS", self->sbuf.data, self->sbuf.size);
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
    s_reply(self, id, "ERROR", why, strlen(why));
}

//  Returns nothing; one request of nparts parts (routing id first) is
//  answered.
static void s_serve(hvn_broker_t *self, int nparts)
{
    zmq_msg_t *parts = self->parts;
    if (nparts < 2)
        return; //  A ROUTER always gives id + frames; nothing to answer
    if (s_frame_is(&parts[1], "SNAPSHOT")) {
        if (nparts == 3 && zmq_msg_size(&parts[2]) <= HVN_TOPIC_MAX)
            s_serve_snapshot(self, &parts[0], &parts[2]);
        else
            s_serve_error(self, &parts[0], &parts[1],
                          "SNAPSHOT takes one frame: a topic prefix of at most 255 bytes");
    } else if (s_frame_is(&parts[1], "STATS")) {
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
        int nparts = s_recv_parts(self->items[S_SERVICE].socket, self->parts);
        if (nparts <= 0)
            return nparts == 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
        s_serve(self, nparts);
        s_close_parts(self->parts, nparts);
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
//  The loop

//  Returns 0 after one wake-up, -1 when interrupted or on a fatal error.
int hvn_broker_poll(hvn_broker_t *self, int max_wait_ms)
{
    assert(self);
    int64_t wait = self->next_heartbeat_ms - zclock_mono();
    if (wait > max_wait_ms)
        wait = max_wait_ms;
    if (wait < 0)
        wait = 0;
    int rc = zmq_poll(self->items, 3, (long)wait);
    if (zsys_interrupted)
        return -1;
    if (rc < 0 && errno != EINTR) {
        zsys_error("poll failed: %s", zmq_strerror(errno));
        return -1;
    }
    self->now_ms = zclock_mono();
    if ((self->items[S_FRONTEND].revents & ZMQ_POLLIN) && s_handle_frontend(self) != 0)
        return -1;
    if ((self->items[S_BACKEND].revents & ZMQ_POLLIN) && s_handle_backend(self) != 0)
        return -1;
    if ((self->items[S_SERVICE].revents & ZMQ_POLLIN) && s_handle_service(self) != 0)
        return -1;
    if (self->now_ms >= self->next_heartbeat_ms)
        s_handle_timer(self);
    return zsys_interrupted ? -1 : 0;
}

//  Returns 0 when stopped by a signal, -1 on a fatal socket error.
int hvn_broker_run(hvn_broker_t *self)
{
    assert(self);
    zsys_info("broker %s started: name %s, frontend %s, backend %s, service %s, "
              "max-msg-size %zu, heartbeat-ms %" PRId64,
              self->id, self->name, self->endpoint[S_FRONTEND], self->endpoint[S_BACKEND],
              self->endpoint[S_SERVICE], self->max_msg_size, self->heartbeat_ms);
    while (hvn_broker_poll(self, S_POLL_MAX_MS) == 0)
        ;
    int rc = zsys_interrupted ? 0 : -1;
    const hvn_broker_stats_t *st = &self->stats;
    zsys_info("broker %s stopping%s: received %" PRIu64 ", forwarded %" PRIu64 ", refused %" PRIu64
              ", syncs %" PRIu64 ", heartbeats in %" PRIu64 ", snapshots %" PRIu64
              ", cache %zu nodes / %zu bytes, publishers %zu, "
              "subscriptions %" PRId64 ", uptime %" PRId64 " ms",
              self->id, rc == 0 ? " on signal" : " on error", st->received, st->forwarded,
              hvn_rejects_total(&st->rejects), st->syncs, st->heartbeats_in, st->snapshots,
              hvn_cache_size(self->cache), hvn_cache_bytes(self->cache),
              hvn_seqmap_size(self->seqmap), st->subscriptions, zclock_mono() - self->started_ms);
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
    config->heartbeat_ms = HVN_BROKER_HEARTBEAT_MS;
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

//  Returns nothing; error (when not NULL) holds the formatted reason.
static void s_error(char *error, size_t error_size, const char *format, ...)
{
    if (!error || error_size == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
}

//  Returns 0 when sock is bound to endpoint (its resolved endpoint stored
//  in self->endpoint[which]), -1 with the reason in error.
static int s_bind(hvn_broker_t *self, int which, zsock_t *sock, const char *role,
                  const char *endpoint, char *error, size_t error_size)
{
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        s_error(error, error_size, "cannot bind %s to %s: %s", role, endpoint,
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

//  Returns 0 with the three sockets made and bound, -1 with the reason in
//  error.
static int s_sockets_open(hvn_broker_t *self, const hvn_broker_config_t *config, char *error,
                          size_t error_size)
{
    self->frontend = zsock_new(ZMQ_XSUB);
    self->backend = zsock_new(ZMQ_XPUB);
    self->service = zsock_new(ZMQ_ROUTER);
    if (!self->frontend || !self->backend || !self->service) {
        s_error(error, error_size, "cannot create sockets: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    size_t hard = self->max_msg_size * 4;
    zsock_set_rcvhwm(self->frontend, S_FRONTEND_RCVHWM);
    zsock_set_maxmsgsize(self->frontend, (int)(hard > S_FRAME_HARD_MIN ? hard : S_FRAME_HARD_MIN));
    zsock_set_sndhwm(self->backend, S_BACKEND_SNDHWM);
    zsock_set_xpub_verboser(self->backend, 1);
    zsock_set_maxmsgsize(self->backend, S_CONTROL_FRAME_MAX);
    zsock_set_sndhwm(self->service, S_SERVICE_SNDHWM);
    zsock_set_router_mandatory(self->service, 1);
    zsock_set_maxmsgsize(self->service, S_CONTROL_FRAME_MAX);
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
        s_error(error, error_size, "cannot subscribe the frontend: %s", zmq_strerror(zmq_errno()));
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
        s_error(error, error_size,
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
    if (config->curve_secret || config->publishers_dir || config->subscribers_dir) {
        s_error(error, error_size, "CURVE is not supported by this build yet");
        return NULL;
    }
    if (config->max_msg_size < 1 || config->max_msg_size > HVN_BROKER_MSG_SIZE_MAX ||
        config->heartbeat_ms < 1 || config->heartbeat_ms > HVN_BROKER_HEARTBEAT_MAX) {
        s_error(error, error_size, "max-msg-size or heartbeat-ms out of range");
        return NULL;
    }
    hvn_broker_t *self = calloc(1, sizeof(*self));
    if (!self) {
        s_error(error, error_size, "out of memory");
        return NULL;
    }
    self->max_msg_size = config->max_msg_size;
    self->heartbeat_ms = config->heartbeat_ms;
    hvn_rejects_init(&self->stats.rejects, "broker");
    hvn_uuid4_raw(self->instance);
    uuid_unparse_lower(self->instance, self->id);
    msgpack_sbuffer_init(&self->sbuf);
    msgpack_packer_init(&self->pk, &self->sbuf, msgpack_sbuffer_write);
    self->decoder = hvn_decoder_new();
    self->encoder = hvn_encoder_new();
    self->cache = hvn_cache_new();
    self->seqmap = hvn_seqmap_new(S_SEQMAP_MAX);
    if (!self->decoder || !self->encoder || !self->cache || !self->seqmap) {
        s_error(error, error_size, "out of memory");
        hvn_broker_destroy(&self);
        return NULL;
    }
    hvn_decoder_set_max_size(self->decoder, self->max_msg_size);
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
    zsock_destroy(&self->frontend);
    zsock_destroy(&self->backend);
    zsock_destroy(&self->service);
    for (int i = 0; i < 3; i++)
        zstr_free(&self->endpoint[i]);
    hvn_decoder_destroy(&self->decoder);
    hvn_encoder_destroy(&self->encoder);
    hvn_cache_destroy(&self->cache);
    hvn_seqmap_destroy(&self->seqmap);
    msgpack_sbuffer_destroy(&self->sbuf);
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
