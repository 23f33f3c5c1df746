/*  hvn_publisher.c — the publisher a hypervisor host embeds.

    Two halves share one mutex. The caller's half (report, remove, flush)
    touches only memory: a map of the nodes it holds and one FIFO queue of
    events to send. The actor's half owns the XPUB socket: it watches the
    broker's subscriptions, pops events, numbers, encodes and sends them,
    and keeps the frames last sent for every live node so that a broker
    that (re)subscribes can be resynced (PROTOCOL.md section 5).

    The idea it rests on: a node's newest queued event is the one place its
    unsent state lives. A report that changes nothing finds the node, sees
    it equal to the last report and returns; a burst of changes to one node
    collapses into one queued update that carries the node as it is now.
*/
#include "hvn_publisher.h"
#include "hvn_curve.h"
#include "hvn_names.h"

#include "hvn_pubstate.h"
#include "hvn_redial.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_HEARTBEAT_MS 10000
#define S_DEFAULT_LINGER_MS 5000
#define S_SNDHWM 10000       //  Messages queued per broker pipe
#define S_RETRY_MS 10        //  Retry interval while a pipe is full
#define S_STALL_MS 5000      //  Default stall_ms
#define S_STATE_BUSY_MS 1000 //  State save interval while draining

typedef struct _s_entry_t s_entry_t;
typedef struct _s_event_t s_event_t;

//  One queued notification
struct _s_event_t {
    s_event_t *next;   //  Next in the FIFO, or NULL
    s_entry_t *owner;  //  Node entry while this is its newest queued event
    hvn_event_t event; //  Create, update or delete
    hvn_node_t node;   //  State to send (delete: id and uuid)
};

//  One node the caller holds
struct _s_entry_t {
    hvn_node_t last;    //  Last state reported (or loaded from state_dir)
    s_event_t *pending; //  Its newest queued create/update, or NULL
    bool reported;      //  Reported since this publisher started
};

//  One encoded notification: waiting to be sent, or the last one sent for
//  a live node (kept for resync). The body follows the struct.
typedef struct {
    char uuid[HVN_UUID_STR_LEN + 1]; //  Node uuid (key of the sent map)
    hvn_event_t event;               //  Create, update or delete
    uint64_t stamp;                  //  When installed; resync order
    size_t topic_size;               //  Bytes of topic, without the NUL
    char topic[HVN_TOPIC_MAX + 1];   //  Frame 0
    uint8_t header[HVN_HEADER_SIZE]; //  Frame 1, seq as sent
    size_t body_size;                //  Bytes of body
    uint8_t body[];                  //  Frame 2
} s_sent_t;

//  Set by new(), read-only afterwards: any thread reads them without a lock
typedef struct {
    char *endpoint;       //  Broker frontend(s), comma-separated
    char *host;           //  Topic host, publisher_id host
    char *service;        //  publisher_id service
    char *state_dir;      //  Or NULL
    char *state_path;     //  <state_dir>/publisher-<host>.state, or NULL
    int heartbeat_ms;     //  Heartbeat interval
    int stall_ms;         //  Reconnect after a stall this long; -1 = never
    zlist_t *endpoints;   //  Each broker's endpoint, for reconnects
    uint8_t instance[16]; //  This instance's id, raw UUID
} s_config_t;

//  Shared by the caller's threads and the actor, under mutex
typedef struct {
    pthread_mutex_t mutex;       //  Guards this struct
    pthread_cond_t idle;         //  Broadcast when nothing is left to send
    zhashx_t *entries;           //  uuid -> s_entry_t, nodes held
    s_event_t *head;             //  Oldest queued event
    s_event_t *tail;             //  Newest queued event
    size_t queue_size;           //  Events in the queue
    bool in_flight;              //  Actor holds a popped event not yet sent
    int linger_ms;               //  How long destroy() waits to flush
    bool linger_quiet;           //  set_linger(0): drop without a log line
    int close_linger_ms;         //  ZMQ_LINGER of the socket at close
    int64_t refusal_logged;      //  Monotonic ms of the last refusal log
    hvn_publisher_stats_t stats; //  Counters (nodes, pending: computed)
} s_shared_t;

//  The actor thread's own: new() sets them up (the socket, the sent map from
//  the state file) before the thread starts, and from then on nothing else
//  touches them until destroy() has stopped it
typedef struct {
    zsock_t *pipe;              //  Actor command pipe
    zsock_t *xpub;              //  Connected to the broker frontend(s)
    void *xpub_handle;          //  Its libzmq socket
    hvn_redial_t *redial;       //  Dials a broker that refused the handshake again
    int64_t redial_at;          //  Monotonic ms of the next redial due, 0 = none
    zpoller_t *poller;          //  Pipe and xpub
    hvn_encoder_t *encoder;     //  Reused buffers
    zhashx_t *sent;             //  uuid -> s_sent_t, live nodes announced
    zhashx_t *subscriptions;    //  Subscribed topics (hex) the XPUB reported
    bool broker;                //  A subscription is held
    s_sent_t **sync;            //  Resync in progress: frames in send order
    size_t sync_count;          //  Entries in sync
    size_t sync_next;           //  Next one to send
    bool syncing;               //  Resync not finished
    bool heartbeat_due;         //  A heartbeat waits to go out
    s_sent_t *heartbeat;        //  Encoded heartbeat not yet sent, or NULL
    int64_t heartbeat_at;       //  Monotonic ms of the next heartbeat
    int64_t blocked_since;      //  Monotonic ms of the first refused send, 0 = none since
    bool heartbeat_warned;      //  Logged that heartbeats outgrew the limit
    s_sent_t *stalled;          //  Popped and encoded, not yet sent
    uint64_t seq;               //  Last seq used
    uint64_t stamp;             //  Last stamp given to a sent entry
    bool state_dirty;           //  Sent map changed since the state file
    int64_t state_written;      //  Monotonic ms of the last state write
    int64_t state_error_logged; //  Monotonic ms of the last write failure log
} s_actor_t;

struct _hvn_publisher_t {
    s_config_t cfg;    //  Read-only once made
    s_shared_t shared; //  Under shared.mutex
    s_actor_t own;     //  The actor thread's
    zactor_t *actor;   //  The network side; started by new(), stopped by destroy()
};

// --------------------------------------------------------------------------
//  Small helpers

//  Returns a heap copy of s (NULL for NULL); aborts when out of memory, as
//  czmq does.
static char *s_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    assert(copy);
    return copy;
}

//  Returns true when s holds a NUL within its first `size` bytes.
static bool s_terminated(const char *s, size_t size)
{
    return memchr(s, 0, size) != NULL;
}

//  Item destructor of the entries map.
static void s_entry_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Item destructor of the sent map.
static void s_sent_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Returns the absolute CLOCK_MONOTONIC time `ms` from now.
static struct timespec s_deadline(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

// --------------------------------------------------------------------------
//  The queue (caller side, under mutex)

//  Returns true, logging at most once a second, when the queue is full.
static bool s_queue_full(hvn_publisher_t *self)
{
    if (self->shared.queue_size < HVN_PUBLISHER_QUEUE_MAX)
        return false;
    self->shared.stats.refused++;
    int64_t now = zclock_mono();
    if (now - self->shared.refusal_logged >= 1000) {
        self->shared.refusal_logged = now;
        zsys_warning("publisher: queue full (%d events), %" PRIu64 " reports refused so far",
                     HVN_PUBLISHER_QUEUE_MAX, self->shared.stats.refused);
    }
    return true;
}

//  Appends an event of node to the queue; when owner is given, the event
//  becomes its newest. Wakes the actor when the queue was empty.
static void s_enqueue(hvn_publisher_t *self, hvn_event_t event, s_entry_t *owner,
                      const hvn_node_t *node)
{
    s_event_t *ev = malloc(sizeof(s_event_t));
    assert(ev);
    ev->next = NULL;
    ev->event = event;
    ev->node = *node;
    ev->owner = owner;
    if (owner) {
        if (owner->pending)
            owner->pending->owner = NULL;
        owner->pending = ev;
    }
    if (self->shared.tail)
        self->shared.tail->next = ev;
    else
        self->shared.head = ev;
    self->shared.tail = ev;
    if (self->shared.queue_size++ == 0)
        //  The pipe's send timeout is 0: if it is full, the actor has
        //  wake-ups enough to read.
        zsock_signal(self->actor, 0);
}

//  Returns the oldest queued event, detached from its node, or NULL.
static s_event_t *s_dequeue(hvn_publisher_t *self)
{
    s_event_t *ev = self->shared.head;
    if (!ev)
        return NULL;
    self->shared.head = ev->next;
    if (!self->shared.head)
        self->shared.tail = NULL;
    self->shared.queue_size--;
    if (ev->owner)
        ev->owner->pending = NULL;
    ev->owner = NULL;
    return ev;
}

//  Queues a delete of entry's node and forgets it (the entry is freed).
static void s_forget(hvn_publisher_t *self, s_entry_t *entry)
{
    if (entry->pending)
        entry->pending->owner = NULL;
    entry->pending = NULL;
    s_enqueue(self, HVN_EVENT_DELETE, NULL, &entry->last);
    char uuid[HVN_UUID_STR_LEN + 1];
    memcpy(uuid, entry->last.uuid, sizeof(uuid));
    zhashx_delete(self->shared.entries, uuid);
}

// --------------------------------------------------------------------------
//  The actor: sending

//  Returns a new s_sent_t holding frames, or NULL when out of memory.
static s_sent_t *s_sent_new(const hvn_frames_t *frames, hvn_event_t event, const char *uuid)
{
    s_sent_t *sent = malloc(sizeof(s_sent_t) + frames->body_size);
    if (!sent)
        return NULL;
    size_t len = strnlen(uuid, HVN_UUID_STR_LEN);
    memcpy(sent->uuid, uuid, len);
    sent->uuid[len] = 0;
    sent->event = event;
    sent->stamp = 0;
    sent->topic_size = frames->topic_size;
    memcpy(sent->topic, frames->topic, frames->topic_size + 1);
    memcpy(sent->header, frames->header, HVN_HEADER_SIZE);
    sent->body_size = frames->body_size;
    memcpy(sent->body, frames->body, frames->body_size);
    return sent;
}

//  Sends three frames without blocking. Returns 0 when sent, -1 when a
//  broker pipe is full (EAGAIN; nothing was sent, try again later) or the
//  socket failed (logged).
static int s_send(hvn_publisher_t *self, const char *topic, size_t topic_size,
                  const uint8_t *header, const uint8_t *body, size_t body_size)
{
    if (zmq_send(self->own.xpub_handle, topic, topic_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        if (errno != EAGAIN)
            zsys_error("publisher: send failed: %s", zmq_strerror(errno));
        else if (!self->own.blocked_since)
            self->own.blocked_since = zclock_mono();
        return -1;
    }
    self->own.blocked_since = 0;
    //  Once the first frame is in, the rest of the message always fits
    //  (libzmq checks the high water mark per whole message).
    if (zmq_send(self->own.xpub_handle, header, HVN_HEADER_SIZE, ZMQ_SNDMORE) == -1 ||
        zmq_send(self->own.xpub_handle, body, body_size, 0) == -1) {
        zsys_error("publisher: send failed mid-message: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

//  Returns 0 with the next notification's frames stamped with seq + 1 and
//  sent, or -1 when it could not go out yet.
static int s_send_notification(hvn_publisher_t *self, s_sent_t *msg)
{
    hvn_header_t header = {HVN_WIRE_VERSION, HVN_KIND_NOTIFICATION, self->own.seq + 1, {0}};
    memcpy(header.instance, self->cfg.instance, 16);
    hvn_header_pack(&header, msg->header);
    if (s_send(self, msg->topic, msg->topic_size, msg->header, msg->body, msg->body_size) != 0)
        return -1;
    self->own.seq++;
    return 0;
}

//  Returns an encoded notification of ev (seq filled in at send time), or
//  NULL when it cannot be encoded (logged; cannot happen for a node that
//  passed validation).
static s_sent_t *s_encode(hvn_publisher_t *self, const s_event_t *ev)
{
    hvn_envelope_t env = {self->cfg.service, self->cfg.host, NULL, NULL};
    hvn_header_t header = {HVN_WIRE_VERSION, HVN_KIND_NOTIFICATION, 0, {0}};
    memcpy(header.instance, self->cfg.instance, 16);
    hvn_frames_t frames;
    if (hvn_encoder_notification(self->own.encoder, ev->event, &env, &ev->node, &header, &frames) !=
        0) {
        zsys_error("publisher: cannot encode %s of node %.36s, dropped", hvn_event_name(ev->event),
                   ev->node.uuid);
        return NULL;
    }
    s_sent_t *msg = s_sent_new(&frames, ev->event, ev->node.uuid);
    if (!msg)
        zsys_error("publisher: out of memory, %s of node %.36s dropped", hvn_event_name(ev->event),
                   ev->node.uuid);
    return msg;
}

//  Keeps a sent notification as its node's last (create/update) or
//  forgets the node (delete; msg is freed).
static void s_install(hvn_publisher_t *self, s_sent_t *msg)
{
    if (msg->event == HVN_EVENT_DELETE) {
        zhashx_delete(self->own.sent, msg->uuid);
        free(msg);
    } else {
        msg->stamp = ++self->own.stamp;
        zhashx_update(self->own.sent, msg->uuid, msg);
    }
    self->own.state_dirty = true;
}

//  Returns a heartbeat listing the live nodes announced, with the last seq
//  used, or NULL when it cannot be encoded (logged).
static s_sent_t *s_heartbeat_encode(hvn_publisher_t *self)
{
    size_t count = zhashx_size(self->own.sent);
    const char **uuids = malloc((count ? count : 1) * sizeof(char *));
    assert(uuids);
    size_t n = 0;
    for (s_sent_t *msg = zhashx_first(self->own.sent); msg; msg = zhashx_next(self->own.sent))
        uuids[n++] = msg->uuid;
    hvn_envelope_t env = {self->cfg.service, self->cfg.host, NULL, NULL};
    hvn_header_t header = {HVN_WIRE_VERSION, HVN_KIND_HEARTBEAT, self->own.seq, {0}};
    memcpy(header.instance, self->cfg.instance, 16);
    hvn_frames_t frames;
    s_sent_t *msg = NULL;
    if (hvn_encoder_heartbeat(self->own.encoder, &env, self->cfg.heartbeat_ms, uuids, n, &header,
                              &frames) != 0)
        zsys_error("publisher: cannot encode a heartbeat");
    else {
        //  A default broker accepts heartbeats of HVN_HEARTBEAT_NODES_MAX
        //  nodes; past that it refuses every one, and subscribers see
        //  this publisher as silent.
        if ((n > HVN_HEARTBEAT_NODES_MAX ||
             frames.body_size > HVN_HEARTBEAT_SIZE_MAX(HVN_HEARTBEAT_NODES_MAX)) &&
            !self->own.heartbeat_warned) {
            self->own.heartbeat_warned = true;
            zsys_warning("publisher: a heartbeat listing %zu nodes is %zu bytes, more than a "
                         "default broker accepts (%d nodes, %zu bytes): brokers need "
                         "--max-publisher-nodes %zu or more",
                         n, frames.body_size, HVN_HEARTBEAT_NODES_MAX,
                         HVN_HEARTBEAT_SIZE_MAX(HVN_HEARTBEAT_NODES_MAX), n);
        }
        msg = s_sent_new(&frames, HVN_EVENT_HEARTBEAT, "");
    }
    free(uuids);
    return msg;
}

//  Drops a heartbeat that was due but not sent.
static void s_heartbeat_cancel(hvn_publisher_t *self)
{
    free(self->own.heartbeat);
    self->own.heartbeat = NULL;
    self->own.heartbeat_due = false;
}

//  Returns 0 when the heartbeat went out (or could not be encoded, logged),
//  -1 when a pipe is full. A heartbeat is encoded once, when it falls due,
//  and the same frames are retried: it describes the state at its seq, and
//  nothing else is sent before it.
static int s_send_heartbeat(hvn_publisher_t *self)
{
    if (!self->own.heartbeat)
        self->own.heartbeat = s_heartbeat_encode(self);
    const s_sent_t *msg = self->own.heartbeat;
    if (msg &&
        s_send(self, msg->topic, msg->topic_size, msg->header, msg->body, msg->body_size) != 0) {
        self->own.heartbeat_due = true; //  Retried on the short timer, not at once
        return -1;
    }
    s_heartbeat_cancel(self);
    self->own.heartbeat_at = zclock_mono() + self->cfg.heartbeat_ms;
    if (msg) {
        pthread_mutex_lock(&self->shared.mutex);
        self->shared.stats.heartbeats++;
        pthread_mutex_unlock(&self->shared.mutex);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  The actor: resync

//  qsort order of s_sent_t pointers: by stamp, the order they were sent.
static int s_stamp_cmp(const void *a, const void *b)
{
    const s_sent_t *x = *(s_sent_t *const *)a;
    const s_sent_t *y = *(s_sent_t *const *)b;
    return (x->stamp > y->stamp) - (x->stamp < y->stamp);
}

//  Starts (or restarts) a resync: every live node's last notification,
//  oldest first.
static void s_resync_start(hvn_publisher_t *self)
{
    free(self->own.sync);
    self->own.sync_count = zhashx_size(self->own.sent);
    self->own.sync = malloc((self->own.sync_count ? self->own.sync_count : 1) * sizeof(s_sent_t *));
    assert(self->own.sync);
    size_t n = 0;
    for (s_sent_t *msg = zhashx_first(self->own.sent); msg; msg = zhashx_next(self->own.sent))
        self->own.sync[n++] = msg;
    qsort(self->own.sync, n, sizeof(s_sent_t *), s_stamp_cmp);
    self->own.sync_next = 0;
    self->own.syncing = true;
    s_heartbeat_cancel(self);
}

//  Stops a resync, finished or not.
static void s_resync_stop(hvn_publisher_t *self)
{
    free(self->own.sync);
    self->own.sync = NULL;
    self->own.sync_count = self->own.sync_next = 0;
    self->own.syncing = false;
}

//  Sends what is left of a resync, then asks for a heartbeat. Returns 0
//  when done, -1 when a pipe is full (resumed later). The sent map does not
//  change meanwhile: the queue is not drained during a resync.
static int s_resync(hvn_publisher_t *self)
{
    uint64_t sent = 0;
    int rc = 0;
    while (self->own.sync_next < self->own.sync_count) {
        const s_sent_t *msg = self->own.sync[self->own.sync_next];
        uint8_t header[HVN_HEADER_SIZE];
        memcpy(header, msg->header, HVN_HEADER_SIZE);
        header[1] = HVN_KIND_SYNC;
        if (s_send(self, msg->topic, msg->topic_size, header, msg->body, msg->body_size) != 0) {
            rc = -1;
            break;
        }
        self->own.sync_next++;
        sent++;
    }
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.stats.syncs += sent;
    pthread_mutex_unlock(&self->shared.mutex);
    if (rc == 0) {
        s_resync_stop(self);
        self->own.heartbeat_due = true;
    }
    return rc;
}

// --------------------------------------------------------------------------
//  The actor: state file (defined further down)

static void s_state_write(hvn_publisher_t *self);

// --------------------------------------------------------------------------
//  The actor: draining the queue

//  Counts a notification sent.
static void s_count_sent(hvn_publisher_t *self, hvn_event_t event)
{
    self->shared.stats.sent = self->own.seq;
    if (event == HVN_EVENT_CREATE)
        self->shared.stats.creates++;
    else if (event == HVN_EVENT_UPDATE)
        self->shared.stats.updates++;
    else
        self->shared.stats.deletes++;
}

//  Sends queued events until the queue is empty or a pipe is full.
//  Returns 0 when the queue is empty, -1 when blocked.
static int s_drain(hvn_publisher_t *self)
{
    while (true) {
        if (self->own.stalled) {
            if (s_send_notification(self, self->own.stalled) != 0)
                return -1;
            s_sent_t *msg = self->own.stalled;
            self->own.stalled = NULL;
            hvn_event_t event = msg->event;
            s_install(self, msg);
            pthread_mutex_lock(&self->shared.mutex);
            s_count_sent(self, event);
        } else
            pthread_mutex_lock(&self->shared.mutex);

        s_event_t *ev = s_dequeue(self);
        self->shared.in_flight = ev != NULL;
        if (!ev)
            pthread_cond_broadcast(&self->shared.idle);
        pthread_mutex_unlock(&self->shared.mutex);
        if (!ev)
            return 0;
        self->own.stalled = s_encode(self, ev);
        if (!self->own.stalled) {
            pthread_mutex_lock(&self->shared.mutex);
            self->shared.stats.dropped++;
            pthread_mutex_unlock(&self->shared.mutex);
        }
        free(ev);
    }
}

//  With several brokers on one XPUB and ZMQ_XPUB_NODROP, one broker that
//  stops reading (hung, stopped, overloaded) refuses every send once its
//  pipe is full, for all brokers. After stall_ms of that, drops every
//  broker's connection and connects again: what sat in the pipes is lost
//  (subscribers see the seq gap and repair; the brokers' caches are
//  refreshed by the resync that each reconnected broker's subscription
//  brings), and a broker that does not answer the handshake gets no pipe
//  (ZMQ_IMMEDIATE) until it reads again.
static void s_unstall(hvn_publisher_t *self)
{
    if (self->cfg.stall_ms < 0 || zlist_size(self->cfg.endpoints) < 2 || !self->own.blocked_since ||
        zclock_mono() - self->own.blocked_since < self->cfg.stall_ms)
        return;
    zsys_warning("publisher: no broker took a message for %d ms; reconnecting to all %zu "
                 "(one that is not reading gets nothing until it reads again)",
                 self->cfg.stall_ms, zlist_size(self->cfg.endpoints));
    for (const char *ep = zlist_first(self->cfg.endpoints); ep;
         ep = zlist_next(self->cfg.endpoints))
        zmq_disconnect(self->own.xpub_handle, ep);
    for (const char *ep = zlist_first(self->cfg.endpoints); ep;
         ep = zlist_next(self->cfg.endpoints))
        if (zmq_connect(self->own.xpub_handle, ep) != 0)
            zsys_error("publisher: cannot connect again to '%s': %s", ep, zmq_strerror(errno));
    self->own.blocked_since = 0;
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.stats.reconnects++;
    pthread_mutex_unlock(&self->shared.mutex);
}

//  Does whatever can be done now: finish a resync, send a heartbeat when
//  due, drain the queue, save the state.
static void s_work(hvn_publisher_t *self)
{
    if (!self->own.broker)
        return;
    s_unstall(self);
    if (self->own.syncing && s_resync(self) != 0)
        return;
    if ((self->own.heartbeat_due || zclock_mono() >= self->own.heartbeat_at) &&
        s_send_heartbeat(self) != 0)
        return;
    //  A batch ends when the queue is empty; while a slow broker keeps it
    //  from emptying, the state is saved at most once a second.
    bool drained = s_drain(self) == 0;
    if (self->own.state_dirty && self->cfg.state_path &&
        (drained || zclock_mono() - self->own.state_written >= S_STATE_BUSY_MS))
        s_state_write(self);
}

//  Returns how long the actor may sleep, in ms (-1 = until an event).
static int s_timeout(hvn_publisher_t *self)
{
    int64_t now = zclock_mono();
    int64_t wait = -1;
    if (self->own.broker && (self->own.syncing || self->own.heartbeat_due || self->own.stalled))
        wait = S_RETRY_MS;
    else if (self->own.broker)
        wait = self->own.heartbeat_at > now ? self->own.heartbeat_at - now : 0;
    if (self->own.redial_at) {
        int64_t redial = self->own.redial_at > now ? self->own.redial_at - now : 0;
        if (wait < 0 || redial < wait)
            wait = redial;
    }
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

//  Reads the handshake events and dials a broker that refused this
//  publisher's key again when its backoff has passed (hvn_redial.h):
//  libzmq does not, so a host started before its certificate reached the
//  broker would never connect. Counts refusals and redials.
static void s_redial(hvn_publisher_t *self)
{
    int next = hvn_redial_tend(self->own.redial);
    self->own.redial_at = next < 0 ? 0 : zclock_mono() + next;
    hvn_redial_stats_t stats;
    hvn_redial_stats(self->own.redial, &stats);
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.stats.denials = stats.denials;
    self->shared.stats.redials = stats.redials;
    pthread_mutex_unlock(&self->shared.mutex);
}

// --------------------------------------------------------------------------
//  The actor: events

//  Handles the subscription messages an XPUB delivers. A subscribe (first
//  byte 1), even a duplicate (XPUB_VERBOSE), means a broker is there and
//  wants our state: resync. An unsubscribe (0) comes only when no pipe is
//  subscribed to that topic any more; with no topic left, no broker is.
static void s_handle_xpub(hvn_publisher_t *self)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    bool subscribed = false;
    while (zmq_msg_recv(&msg, self->own.xpub_handle, ZMQ_DONTWAIT) >= 0) {
        const uint8_t *data = zmq_msg_data(&msg);
        size_t size = zmq_msg_size(&msg);
        if (size == 0 || data[0] > 1 || zmq_msg_more(&msg))
            continue; //  Not a subscription message
        char key[2 * 255 + 2];
        size_t len = size - 1 > 255 ? 255 : size - 1;
        key[0] = 'T'; //  Keys are never empty
        for (size_t i = 0; i < len; i++)
            snprintf(key + 1 + 2 * i, 3, "%02x", data[1 + i]);
        key[1 + 2 * len] = 0;
        if (data[0] == 1) {
            zhashx_update(self->own.subscriptions, key, (void *)1);
            subscribed = true;
        } else
            zhashx_delete(self->own.subscriptions, key);
    }
    zmq_msg_close(&msg);

    bool present = zhashx_size(self->own.subscriptions) > 0;
    if (present && subscribed)
        s_resync_start(self);
    else if (!present && self->own.broker) {
        s_resync_stop(self);
        s_heartbeat_cancel(self);
    }
    if (present != self->own.broker || subscribed) {
        self->own.broker = present;
        pthread_mutex_lock(&self->shared.mutex);
        self->shared.stats.broker = present;
        if (subscribed)
            self->shared.stats.resyncs++;
        pthread_mutex_unlock(&self->shared.mutex);
    }
}

//  Handles a message on the actor pipe: a wake-up (work follows), STOP
//  (the owner waits for an acknowledgement) or $TERM. Returns the command
//  that ends the actor, or S_RUN.
typedef enum { S_RUN, S_STOP, S_TERM } s_pipe_cmd_t;

static s_pipe_cmd_t s_handle_pipe(hvn_publisher_t *self)
{
    zmsg_t *msg = zmsg_recv(self->own.pipe);
    if (!msg)
        return S_TERM;
    s_pipe_cmd_t cmd = S_RUN;
    if (zmsg_signal(msg) < 0) {
        char *command = zmsg_popstr(msg);
        if (command && streq(command, "STOP"))
            cmd = S_STOP;
        else if (command && streq(command, "$TERM"))
            cmd = S_TERM;
        free(command);
    }
    zmsg_destroy(&msg);
    return cmd;
}

//  The actor: owns the XPUB from here on. Signals are left to the
//  application's threads, so an interrupt never stops it half-way.
//  hvn_publisher_destroy() stops it with STOP, sent with a blocking send:
//  the pipe may be full of wake-ups, and zactor_destroy()'s own $TERM is
//  sent without waiting and would be lost. The acknowledgement of STOP is
//  the actor's last touch of self.
static void s_actor(zsock_t *pipe, void *args)
{
    hvn_publisher_t *self = args;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    self->own.pipe = pipe;
    zsock_t *monitor = hvn_redial_monitor(self->own.redial);
    self->own.poller = zpoller_new(pipe, self->own.xpub, monitor, NULL);
    assert(self->own.poller);
    zpoller_set_nonstop(self->own.poller, true);
    zsock_signal(pipe, 0);

    s_pipe_cmd_t cmd = S_RUN;
    while (cmd == S_RUN) {
        void *which = zpoller_wait(self->own.poller, s_timeout(self));
        if (which == pipe)
            cmd = s_handle_pipe(self);
        else if (which == self->own.xpub)
            s_handle_xpub(self);
        if (which == monitor || (self->own.redial_at && zclock_mono() >= self->own.redial_at))
            s_redial(self);
        if (cmd == S_RUN)
            s_work(self);
    }
    if (self->own.state_dirty && self->cfg.state_path)
        s_state_write(self);

    pthread_mutex_lock(&self->shared.mutex);
    int linger = self->shared.close_linger_ms;
    pthread_mutex_unlock(&self->shared.mutex);
    zsock_set_linger(self->own.xpub, linger);
    hvn_redial_destroy(&self->own.redial);
    zsock_destroy(&self->own.xpub);
    zpoller_destroy(&self->own.poller);
    if (cmd == S_STOP)
        zsock_signal(pipe, 0);
}

// --------------------------------------------------------------------------
//  The state file

//  <state_dir>/publisher-<host>.state: the frames last sent for every live
//  node, oldest first (hvn_pubstate.h says how they are kept).

//  Writes the sent map to the state file. A failure is logged (at most once
//  a minute) and retried after the next batch.
static void s_state_write(hvn_publisher_t *self)
{
    size_t count = zhashx_size(self->own.sent);
    s_sent_t **order = malloc((count ? count : 1) * sizeof(s_sent_t *));
    hvn_pubstate_node_t *nodes = malloc((count ? count : 1) * sizeof(hvn_pubstate_node_t));
    assert(order && nodes);
    size_t n = 0;
    for (s_sent_t *msg = zhashx_first(self->own.sent); msg; msg = zhashx_next(self->own.sent))
        order[n++] = msg;
    qsort(order, n, sizeof(s_sent_t *), s_stamp_cmp);
    for (size_t i = 0; i < n; i++)
        nodes[i] = (hvn_pubstate_node_t){.topic = order[i]->topic,
                                         .topic_size = order[i]->topic_size,
                                         .header = order[i]->header,
                                         .body = order[i]->body,
                                         .body_size = order[i]->body_size};
    self->own.state_written = zclock_mono();
    if (hvn_pubstate_write(self->cfg.state_path, self->cfg.host, nodes, n) == 0)
        self->own.state_dirty = false;
    else {
        int64_t now = zclock_mono();
        if (self->own.state_error_logged == 0 || now - self->own.state_error_logged >= 60000) {
            self->own.state_error_logged = now;
            zsys_warning("publisher: cannot save state to %s: %s (retried after each batch)",
                         self->cfg.state_path, strerror(errno));
        }
    }
    free(nodes);
    free(order);
}

//  Returns nothing; one node of a good state file joins the sent map (its
//  frames) and the entries (its state as last reported).
static void s_state_node(const hvn_pubstate_node_t *node, const hvn_msg_t *msg, void *arg)
{
    hvn_publisher_t *self = arg;
    hvn_frames_t frames = {
        .topic_size = node->topic_size, .body = node->body, .body_size = node->body_size};
    memcpy(frames.topic, node->topic, node->topic_size);
    frames.topic[node->topic_size] = '\0';
    memcpy(frames.header, node->header, HVN_HEADER_SIZE);
    s_sent_t *sent = s_sent_new(&frames, msg->event, msg->node.uuid);
    s_entry_t *entry = calloc(1, sizeof(s_entry_t));
    assert(sent && entry);
    sent->stamp = ++self->own.stamp;
    zhashx_insert(self->own.sent, sent->uuid, sent);
    entry->last = msg->node;
    zhashx_insert(self->shared.entries, sent->uuid, entry);
}

//  Loads the state file into entries and the sent map. Returns 0; a
//  missing, unreadable or bad file is logged and means a fresh start.
static int s_state_load(hvn_publisher_t *self)
{
    const char *why = "";
    switch (hvn_pubstate_read(self->cfg.state_path, self->cfg.host, s_state_node, self, &why)) {
    case HVN_PUBSTATE_OK:
        zsys_info("publisher: %zu nodes loaded from %s", zhashx_size(self->own.sent),
                  self->cfg.state_path);
        break;
    case HVN_PUBSTATE_MISSING:
        zsys_warning("publisher: no state file %s: fresh start, every node reported "
                     "gets a create",
                     self->cfg.state_path);
        break;
    case HVN_PUBSTATE_UNREADABLE:
        zsys_warning("publisher: cannot read state file %s: %s; fresh start", self->cfg.state_path,
                     why);
        break;
    case HVN_PUBSTATE_CORRUPT:
        zsys_warning("publisher: state file %s is corrupt (%s); fresh start, it will be "
                     "replaced",
                     self->cfg.state_path, why);
        break;
    }
    return 0;
}

//  Returns 0 with state_path set and the directory made (with its
//  parents), or -1 (logged) when it cannot be used.
static int s_state_open(hvn_publisher_t *self)
{
    if (zsys_dir_create("%s", self->cfg.state_dir) != 0 || access(self->cfg.state_dir, W_OK) != 0) {
        zsys_error("publisher: state directory %s cannot be used: %s", self->cfg.state_dir,
                   strerror(errno));
        return -1;
    }
    //  A host name is a file name here: keep it one path component
    char *name = s_strdup(self->cfg.host);
    for (char *c = name; *c; c++)
        if (*c == '/')
            *c = '_';
    self->cfg.state_path = zsys_sprintf("%s/publisher-%s.state", self->cfg.state_dir, name);
    assert(self->cfg.state_path);
    free(name);
    return s_state_load(self);
}

// --------------------------------------------------------------------------
//  Construction

//  Returns 0 when the options can work, -1 (logged) when not.
static int s_opts_check(const hvn_publisher_opts_t *opts)
{
    if (!opts->endpoint || !*opts->endpoint) {
        zsys_error("publisher: no endpoint");
        return -1;
    }
    const char *expected = hvn_names_host_check(opts->host);
    if (expected) {
        zsys_error("publisher: host must be %s", expected);
        return -1;
    }
    expected = opts->service ? hvn_names_service_check(opts->service) : NULL;
    if (expected ||
        (opts->service && strlen(opts->service) + 1 + strlen(opts->host) > HVN_STR_MAX)) {
        zsys_error("publisher: service must be %s, and service:host at most %d bytes",
                   expected ? expected : "shorter", HVN_STR_MAX);
        return -1;
    }
    if (opts->heartbeat_ms < 0 || opts->linger_ms < 0) {
        zsys_error("publisher: heartbeat_ms and linger_ms must not be negative");
        return -1;
    }
    if (opts->stall_ms < -1) {
        zsys_error("publisher: stall_ms must be -1 (never), 0 (default) or positive");
        return -1;
    }
    if (!opts->curve_secret != !opts->curve_server) {
        zsys_error("publisher: CURVE needs both a client and a broker certificate");
        return -1;
    }
    return 0;
}

//  Returns 0 after making xpub a CURVE client of the broker (before it
//  connects), or when no certificates are given; -1 (logged) when one
//  cannot be loaded or the client's has no secret key.
static int s_curve_apply(zsock_t *xpub, const hvn_publisher_opts_t *opts)
{
    if (!opts->curve_secret)
        return 0;
    char bound[HVN_STR_MAX + 1];
    if (hvn_curve_client_apply(xpub, opts->curve_secret, opts->curve_server, "publisher", bound,
                               sizeof(bound)) != 0)
        return -1;
    //  The broker refuses every message for a host other than the one the
    //  certificate names: say so now rather than leave it silent
    if (*bound && !streq(bound, opts->host))
        zsys_warning("publisher: certificate '%s' is bound to host '%s', not '%s': the "
                     "broker will refuse what this publisher sends",
                     opts->curve_secret, bound, opts->host);
    return 0;
}

//  Returns 0 with self->own.xpub set up, watched by self->own.redial and
//  connected, or -1 (logged).
static int s_xpub_new(hvn_publisher_t *self, const hvn_publisher_opts_t *opts)
{
    zsock_t *xpub = self->own.xpub = zsock_new(ZMQ_XPUB);
    if (!xpub) {
        zsys_error("publisher: cannot create a socket");
        return -1;
    }
    if (s_curve_apply(xpub, opts) != 0)
        return -1;
    //  See the broker's subscription again when it reconnects; refuse
    //  (EAGAIN) rather than drop when a pipe is full.
    zsock_set_xpub_verbose(xpub, 1);
    zsock_set_xpub_nodrop(xpub, 1);
    //  A broker's pipe exists only while it is connected. When the
    //  connection breaks the pipe ends, and with it the broker's
    //  subscription: with no broker left the XPUB hands up the
    //  unsubscription and the actor holds notifications in its queue until
    //  a broker subscribes again (then resyncs). Without it the pipe would
    //  outlive the connection, and once a dead broker's pipe filled up,
    //  ZMQ_XPUB_NODROP would stall publishing to every other broker too.
    zsock_set_immediate(xpub, 1);
    zsock_set_sndhwm(xpub, S_SNDHWM);
    //  libzmq 4.3 retries a broken connection every ZMQ_RECONNECT_IVL plus
    //  up to one more interval of jitter: with its default of 100 ms, a
    //  restarted broker is hit by every host within 200 ms, more SYNs than
    //  its listen queue holds. An interval of our own, drawn per publisher
    //  from 0.1 to 0.3 s, spreads the fleet over 0.6 s (three times
    //  thinner) and still brings every host back well within a heartbeat.
    zsock_set_reconnect_ivl(xpub, hvn_redial_reconnect_ivl());
    //  Watched before it connects, so that no refusal goes unseen
    self->own.redial = hvn_redial_new(xpub, "publisher", true);
    if (!self->own.redial)
        return -1;
    if (zsock_attach(xpub, self->cfg.endpoint, false) != 0) {
        zsys_error("publisher: cannot connect to '%s'", self->cfg.endpoint);
        return -1;
    }
    return 0;
}

//  Returns the endpoints of a comma-separated list, without zsock_attach's
//  '>' prefix, as a list that owns its strings.
static zlist_t *s_endpoints(const char *list)
{
    zlist_t *endpoints = zlist_new();
    assert(endpoints);
    zlist_autofree(endpoints);
    char *copy = s_strdup(list);
    char *save = NULL;
    for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
        zlist_append(endpoints, ep + (*ep == '>'));
    free(copy);
    return endpoints;
}

//  Frees everything but the actor.
static void s_free(hvn_publisher_t *self)
{
    while (self->shared.head) {
        s_event_t *ev = self->shared.head;
        self->shared.head = ev->next;
        free(ev);
    }
    free(self->own.stalled);
    free(self->own.heartbeat);
    free(self->own.sync);
    zhashx_destroy(&self->shared.entries);
    zhashx_destroy(&self->own.sent);
    zhashx_destroy(&self->own.subscriptions);
    hvn_encoder_destroy(&self->own.encoder);
    hvn_redial_destroy(&self->own.redial);
    zsock_destroy(&self->own.xpub);
    pthread_cond_destroy(&self->shared.idle);
    pthread_mutex_destroy(&self->shared.mutex);
    free(self->cfg.endpoint);
    zlist_destroy(&self->cfg.endpoints);
    free(self->cfg.host);
    free(self->cfg.service);
    free(self->cfg.state_dir);
    free(self->cfg.state_path);
    free(self);
}

//  Returns a running publisher, or NULL (logged) on bad options or a socket
//  or state directory that cannot be set up.
hvn_publisher_t *hvn_publisher_new(const hvn_publisher_opts_t *opts)
{
    assert(opts);
    if (s_opts_check(opts) != 0)
        return NULL;
    hvn_publisher_t *self = calloc(1, sizeof(hvn_publisher_t));
    assert(self);
    self->cfg.endpoint = s_strdup(opts->endpoint);
    self->cfg.host = s_strdup(opts->host);
    self->cfg.service = s_strdup(opts->service ? opts->service : HVN_DEFAULT_SERVICE);
    self->cfg.state_dir = s_strdup(opts->state_dir);
    self->cfg.heartbeat_ms = opts->heartbeat_ms ? opts->heartbeat_ms : S_DEFAULT_HEARTBEAT_MS;
    self->cfg.stall_ms = opts->stall_ms ? opts->stall_ms : S_STALL_MS;
    self->cfg.endpoints = s_endpoints(opts->endpoint);
    self->shared.linger_ms = opts->linger_ms ? opts->linger_ms : S_DEFAULT_LINGER_MS;
    hvn_uuid4_raw(self->cfg.instance);

    pthread_mutex_init(&self->shared.mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->shared.idle, &attr);
    pthread_condattr_destroy(&attr);

    self->shared.entries = zhashx_new();
    self->own.sent = zhashx_new();
    self->own.subscriptions = zhashx_new();
    self->own.encoder = hvn_encoder_new();
    assert(self->shared.entries && self->own.sent && self->own.subscriptions && self->own.encoder);
    zhashx_set_destructor(self->shared.entries, s_entry_free);
    zhashx_set_destructor(self->own.sent, s_sent_free);

    if (self->cfg.state_dir && s_state_open(self) != 0) {
        s_free(self);
        return NULL;
    }
    if (s_xpub_new(self, opts) != 0) {
        s_free(self);
        return NULL;
    }
    self->own.xpub_handle = zsock_resolve(self->own.xpub);
    //  The socket moves to the actor's thread; thread creation is the
    //  memory barrier libzmq asks for.
    self->actor = zactor_new(s_actor, self);
    assert(self->actor);
    zsock_set_sndtimeo(self->actor, 0);
    return self;
}

//  Returns nothing; flushes for at most linger_ms, gives the socket the rest
//  of it to get the bytes out, stops the actor and frees.
void hvn_publisher_destroy(hvn_publisher_t **self_p)
{
    assert(self_p);
    hvn_publisher_t *self = *self_p;
    if (!self)
        return;
    int64_t start = zclock_mono();
    pthread_mutex_lock(&self->shared.mutex);
    int linger = self->shared.linger_ms;
    bool quiet = self->shared.linger_quiet;
    pthread_mutex_unlock(&self->shared.mutex);

    if (hvn_publisher_flush(self, linger) != 0 && !quiet) {
        hvn_publisher_stats_t stats;
        hvn_publisher_stats(self, &stats);
        zsys_warning("publisher: %" PRIu64 " notifications left unsent after %d ms (%s)",
                     stats.pending, linger,
                     stats.broker ? "broker too slow" : "no broker subscribed");
    }
    int64_t remaining = linger - (zclock_mono() - start);
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.close_linger_ms = remaining > 0 ? (int)remaining : 0;
    pthread_mutex_unlock(&self->shared.mutex);

    zsock_set_sndtimeo(self->actor, -1);
    if (zstr_send(self->actor, "STOP") == 0)
        zsock_wait(self->actor);
    else
        //  Only a dead context refuses a blocking send; the actor is ending too
        zsys_error("publisher: cannot stop the actor: %s", zmq_strerror(zmq_errno()));
    zactor_destroy(&self->actor);
    s_free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  The caller's side

//  Returns 0 when a report that differs from the last one was handled,
//  -1 when the node is invalid or the queue is full.
static int s_report_changed(hvn_publisher_t *self, s_entry_t *entry, const hvn_node_t *node)
{
    if (hvn_node_validate(node, NULL) != 0)
        return -1;
    if (!entry) {
        if (s_queue_full(self))
            return -1;
        entry = calloc(1, sizeof(s_entry_t));
        assert(entry);
        entry->last = *node;
        entry->reported = true;
        zhashx_insert(self->shared.entries, node->uuid, entry);
        s_enqueue(self, HVN_EVENT_CREATE, entry, node);
        return 0;
    }
    if (hvn_node_triggers_update(&entry->last, node)) {
        if (entry->pending && entry->pending->event == HVN_EVENT_UPDATE) {
            entry->pending->node = *node;
            self->shared.stats.coalesced++;
        } else if (s_queue_full(self))
            return -1;
        else
            s_enqueue(self, HVN_EVENT_UPDATE, entry, node);
    } else if (entry->pending)
        //  Not worth a notification alone, but the queued one carries it
        entry->pending->node = *node;
    entry->last = *node;
    entry->reported = true;
    return 0;
}

//  Returns true when node holds the same values as the entry's last report.
//  Byte equality is the common case (a node built the same way each time)
//  and costs a memcmp; otherwise the fields are compared, and an equal node
//  becomes the stored copy so that the next identical report is cheap.
static bool s_unchanged(s_entry_t *entry, const hvn_node_t *node)
{
    if (memcmp(&entry->last, node, sizeof(hvn_node_t)) == 0)
        return true;
    if (!hvn_node_equal(&entry->last, node))
        return false;
    entry->last = *node;
    return true;
}

//  Returns 0 when the report was taken (queued or found unchanged), -1 when
//  the node is invalid or the queue is full.
int hvn_publisher_report(hvn_publisher_t *self, const hvn_node_t *node)
{
    assert(self && node);
    if (!s_terminated(node->uuid, sizeof(node->uuid)))
        return -1;
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.stats.reports++;
    s_entry_t *entry = zhashx_lookup(self->shared.entries, node->uuid);
    int rc = 0;
    if (entry && s_unchanged(entry, node))
        entry->reported = true; //  Nothing changed: the fast path
    else
        rc = s_report_changed(self, entry, node);
    pthread_mutex_unlock(&self->shared.mutex);
    return rc;
}

//  Returns 0 with a delete queued and the node forgotten, -1 when the node
//  is not held or the queue is full.
int hvn_publisher_remove(hvn_publisher_t *self, const char *uuid)
{
    assert(self && uuid);
    if (strnlen(uuid, HVN_UUID_STR_LEN + 1) > HVN_UUID_STR_LEN)
        return -1;
    pthread_mutex_lock(&self->shared.mutex);
    s_entry_t *entry = zhashx_lookup(self->shared.entries, uuid);
    int rc = -1;
    if (entry && !s_queue_full(self)) {
        s_forget(self, entry);
        rc = 0;
    }
    pthread_mutex_unlock(&self->shared.mutex);
    return rc;
}

//  Returns the number of deletes queued for loaded nodes not reported since
//  the start, or -1 when the queue filled up first.
int hvn_publisher_forget_missing(hvn_publisher_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->shared.mutex);
    //  Collect first: deleting while iterating a zhashx is not allowed
    zlistx_t *missing = zlistx_new();
    assert(missing);
    for (s_entry_t *entry = zhashx_first(self->shared.entries); entry;
         entry = zhashx_next(self->shared.entries))
        if (!entry->reported)
            zlistx_add_end(missing, entry);
    int count = 0;
    for (s_entry_t *entry = zlistx_first(missing); entry; entry = zlistx_next(missing)) {
        if (s_queue_full(self)) {
            count = -1;
            break;
        }
        s_forget(self, entry);
        count++;
    }
    pthread_mutex_unlock(&self->shared.mutex);
    zlistx_destroy(&missing);
    return count;
}

//  Returns 0 once the queue is empty and nothing is in flight, -1 when
//  timeout_ms passed first.
int hvn_publisher_flush(hvn_publisher_t *self, int timeout_ms)
{
    assert(self);
    struct timespec deadline = s_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&self->shared.mutex);
    while (self->shared.queue_size > 0 || self->shared.in_flight) {
        if (timeout_ms < 0)
            pthread_cond_wait(&self->shared.idle, &self->shared.mutex);
        else if (pthread_cond_timedwait(&self->shared.idle, &self->shared.mutex, &deadline) ==
                 ETIMEDOUT)
            break;
    }
    int rc = self->shared.queue_size > 0 || self->shared.in_flight ? -1 : 0;
    pthread_mutex_unlock(&self->shared.mutex);
    return rc;
}

//  Returns nothing; sets how long destroy() waits to flush.
void hvn_publisher_set_linger(hvn_publisher_t *self, int linger_ms)
{
    assert(self && linger_ms >= 0);
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.linger_ms = linger_ms;
    self->shared.linger_quiet = linger_ms == 0;
    pthread_mutex_unlock(&self->shared.mutex);
}

//  Returns nothing; copies the counters, with nodes and pending computed now.
void hvn_publisher_stats(hvn_publisher_t *self, hvn_publisher_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->shared.mutex);
    *out = self->shared.stats;
    out->nodes = zhashx_size(self->shared.entries);
    out->pending = self->shared.queue_size + (self->shared.in_flight ? 1 : 0);
    pthread_mutex_unlock(&self->shared.mutex);
}
