/*  hvn_replica.c — a replica of the fleet over one or more brokers.

    The one idea: the view is only trusted while every seq of every
    publisher instance has been applied in order. Anything that says
    otherwise (a seq jump, a heartbeat whose node list disagrees, a broker
    that restarted or fell silent) is a counted detection, and the answer
    is always the same: a snapshot that replaces the view.

    A snapshot is applied item by item into the view, each node marked with
    the snapshot's generation; once its END arrived whole, the nodes not
    marked are removed and the END's seqs become the publishers' applied
    seqs. Live messages queued meanwhile are then applied or skipped by seq.
*/
#include "hvn_replica.h"
#include "hvn_instances.h"
#include "hvn_subscriber.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define S_SNAPSHOT_TIMEOUT_MS 5000 //  Default wait for each snapshot reply
#define S_HEARTBEAT_MS 10000       //  Broker interval assumed until advertised
#define S_SILENT_INTERVALS 3       //  Intervals of silence that make a loss
#define S_BACKOFF_MIN_MS 200       //  First retry of a failed repair
#define S_BACKOFF_MAX_MS 5000      //  Longest wait between repair attempts
#define S_BATCH 256                //  Messages read from one link per turn
#define S_SIGNAL_CHECK_MS 100      //  Longest poll between checks for a signal
#define S_SETTLE_MS 1000           //  A restarted broker's cache refills from resyncs meanwhile
#define S_LOG_MS 1000              //  Detections logged at most this often

//  One broker: its backend subscriber and its service endpoint
typedef struct {
    hvn_subscriber_t *sub;           //  SUB on its backend
    char broker_id[HVN_STR_MAX + 1]; //  Its instance, "" until known
    int64_t interval_ms;             //  Its heartbeat interval
    int64_t heard_ms;                //  Monotonic time of its last message
    bool silent;                     //  Silence detected, nothing heard since
    int64_t restarted_ms;            //  When a new broker_id was seen; 0 = never
} s_link_t;

//  One publisher instance (an hvn_instances_t entry: heard_ms first)
typedef struct {
    int64_t heard_ms;             //  Monotonic time of its last message
    char host[HVN_TOPIC_MAX + 1]; //  Its host
    uint64_t applied;             //  Last seq applied (or known covered)
    uint64_t snapshot_seq;        //  Seq the last snapshot named; 0 = none
    bool known;                   //  applied is meaningful
    int64_t heartbeat_ms;         //  Monotonic time of its last heartbeat, 0 = none
} s_publisher_t;

//  One node of the view
typedef struct {
    hvn_replica_node_t pub; //  What callers see
    uint64_t generation;    //  Snapshot that last confirmed it
} s_entry_t;

struct _hvn_replica_t {
    s_link_t links[HVN_REPLICA_BROKERS_MAX]; //  One per broker
    size_t link_count;                       //  Entries in links
    size_t turn;                             //  Link read first on the next pass
    char *host;                              //  Exact host filter, or NULL
    int snapshot_timeout_ms;                 //  Wait for each snapshot reply
    int64_t default_interval_ms;             //  Broker interval until advertised
    hvn_replica_fn *fn;                      //  Change callback, or NULL
    void *arg;                               //  For fn
    zhashx_t *nodes;                         //  uuid -> s_entry_t (owned)
    zhashx_t *hosts;                         //  host -> zhashx_t uuid -> s_entry_t
    hvn_instances_t *publishers;             //  Instance -> s_publisher_t
    uint64_t generation;                     //  Of the snapshot being applied
    bool synced;                             //  A snapshot has been applied
    bool repair_due;                         //  A snapshot is wanted
    int64_t repair_at;                       //  Not before this monotonic time
    int64_t backoff_ms;                      //  Wait after the next failure
    uint64_t pending;                        //  Detections the next snapshot covers
    bool pending_stale;                      //  One of them is a stale heartbeat
    int64_t stale_repair_ms;                 //  Last repair for a stale heartbeat
    int64_t logged_ms;                       //  Last detection logged
    uint64_t unlogged;                       //  Detections since, not logged
    hvn_msg_t msg;                           //  Scratch for live messages
    hvn_replica_stats_t stats;               //  Counters (some summed at read)
};

// --------------------------------------------------------------------------
//  Small helpers

//  Returns nothing; frees a zhashx item.
static void s_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Returns nothing; destroys a host's index (a zhashx of borrowed entries).
static void s_free_index(void **item_p)
{
    zhashx_t *index = *item_p;
    zhashx_destroy(&index);
    *item_p = NULL;
}

//  Returns nothing; tells the caller about one change.
static void s_emit(hvn_replica_t *self, hvn_replica_change_t change, const s_entry_t *entry,
                   const hvn_msg_t *msg, bool from_snapshot)
{
    if (!self->fn)
        return;
    hvn_replica_event_t event = {change, entry ? &entry->pub : NULL, msg, from_snapshot};
    self->fn(&event, self->arg);
}

//  Returns the tracked state of a publisher instance, made when absent
//  (NULL only when out of memory).
static s_publisher_t *s_publisher(hvn_replica_t *self, const uint8_t instance[16])
{
    return hvn_instances_get(self->publishers, instance, true);
}

// --------------------------------------------------------------------------
//  The view

//  Returns nothing; adds entry to its host's index.
static void s_index_add(hvn_replica_t *self, s_entry_t *entry)
{
    zhashx_t *index = zhashx_lookup(self->hosts, entry->pub.host);
    if (!index) {
        index = zhashx_new();
        if (!index)
            return;
        if (zhashx_insert(self->hosts, entry->pub.host, index) != 0) {
            zhashx_destroy(&index);
            return;
        }
    }
    zhashx_update(index, entry->pub.node.uuid, entry);
}

//  Returns nothing; removes entry from its host's index (an emptied index
//  goes at once).
static void s_index_remove(hvn_replica_t *self, s_entry_t *entry)
{
    zhashx_t *index = zhashx_lookup(self->hosts, entry->pub.host);
    if (!index)
        return;
    zhashx_delete(index, entry->pub.node.uuid);
    if (zhashx_size(index) == 0)
        zhashx_delete(self->hosts, entry->pub.host);
}

//  Returns true when the node already holds exactly what msg carries.
static bool s_entry_same(const s_entry_t *entry, const hvn_msg_t *msg)
{
    return entry->pub.seq == msg->header.seq &&
           memcmp(entry->pub.instance, msg->header.instance, 16) == 0 &&
           strcmp(entry->pub.host, msg->host) == 0 && hvn_node_equal(&entry->pub.node, &msg->node);
}

//  Returns nothing; makes the view's node of msg (a create or update) what
//  msg carries and tells the caller, unless nothing changed.
static void s_upsert(hvn_replica_t *self, const hvn_msg_t *msg, bool from_snapshot)
{
    s_entry_t *entry = zhashx_lookup(self->nodes, msg->node.uuid);
    bool created = entry == NULL;
    if (created) {
        entry = calloc(1, sizeof(*entry));
        if (!entry || zhashx_insert(self->nodes, msg->node.uuid, entry) != 0) {
            zsys_error("replica: out of memory");
            free(entry);
            return;
        }
    } else if (s_entry_same(entry, msg) ||
               (from_snapshot && entry->pub.seq > msg->header.seq &&
                memcmp(entry->pub.instance, msg->header.instance, 16) == 0)) {
        //  Nothing new, or a broker behind the other: the view is newer
        entry->generation = self->generation;
        return;
    } else if (strcmp(entry->pub.host, msg->host) != 0)
        s_index_remove(self, entry);
    entry->pub.node = msg->node;
    snprintf(entry->pub.host, sizeof(entry->pub.host), "%s", msg->host);
    memcpy(entry->pub.instance, msg->header.instance, 16);
    entry->pub.seq = msg->header.seq;
    snprintf(entry->pub.timestamp, sizeof(entry->pub.timestamp), "%s", msg->timestamp);
    entry->generation = self->generation;
    s_index_add(self, entry);
    s_emit(self, created ? HVN_REPLICA_CREATED : HVN_REPLICA_UPDATED, entry, msg, from_snapshot);
}

//  Returns nothing; removes a node from the view after telling the caller.
static void s_remove(hvn_replica_t *self, s_entry_t *entry, const hvn_msg_t *msg,
                     bool from_snapshot)
{
    s_emit(self, HVN_REPLICA_DELETED, entry, msg, from_snapshot);
    s_index_remove(self, entry);
    char uuid[HVN_UUID_STR_LEN + 1];
    snprintf(uuid, sizeof(uuid), "%s", entry->pub.node.uuid);
    zhashx_delete(self->nodes, uuid);
}

// --------------------------------------------------------------------------
//  Detections and repairs

//  Returns nothing; counts one detection, logs it (rate-limited) and
//  schedules a repair, not before not_before, or joins the pending one.
static void s_detect(hvn_replica_t *self, uint64_t *counter, int64_t not_before, const char *what,
                     const char *where)
{
    (*counter)++;
    self->stats.losses++;
    self->pending++;
    int64_t now = zclock_mono();
    if (now - self->logged_ms >= S_LOG_MS) {
        zsys_warning("replica: %s (%s); %s (%" PRIu64 " losses detected, %" PRIu64
                     " repaired, %" PRIu64 " unlogged)",
                     what, where, self->repair_due ? "a repair is pending" : "repairing",
                     self->stats.losses, self->stats.repaired, self->unlogged);
        self->logged_ms = now;
        self->unlogged = 0;
    } else
        self->unlogged++;
    if (!self->repair_due) {
        self->repair_due = true;
        self->repair_at = not_before > now ? not_before : now;
    }
}

//  State of one snapshot being applied
typedef struct {
    hvn_replica_t *self; //  The replica
    uint64_t items;      //  Items applied
} s_snapshot_t;

//  Returns nothing; applies one snapshot item (the hvn_snapshot_fn).
static void s_snapshot_item(const hvn_msg_t *msg, void *arg)
{
    s_snapshot_t *snap = arg;
    hvn_replica_t *self = snap->self;
    if (msg->event != HVN_EVENT_CREATE && msg->event != HVN_EVENT_UPDATE)
        return;
    if (self->host && strcmp(msg->host, self->host) != 0)
        return;
    s_upsert(self, msg, true);
    snap->items++;
}

//  Orders END publisher entries by instance (for bsearch).
static int s_end_compare(const void *a, const void *b)
{
    return memcmp(((const hvn_end_publisher_t *)a)->instance,
                  ((const hvn_end_publisher_t *)b)->instance, 16);
}

//  Returns true when the snapshot's broker had not yet seen the seq that
//  made this node what the view holds (it is behind another broker), so
//  its lacking the node proves nothing.
static bool s_newer_than(const hvn_end_t *end, const s_entry_t *entry)
{
    if (end->publisher_count == 0)
        return false; //  bsearch must not be given a NULL array
    hvn_end_publisher_t key;
    memcpy(key.instance, entry->pub.instance, 16);
    const hvn_end_publisher_t *named =
        bsearch(&key, end->publishers, end->publisher_count, sizeof(key), s_end_compare);
    return named && named->seq < entry->pub.seq;
}

//  Returns nothing; after a whole snapshot: the END's seqs become the
//  applied ones (unless the view is already further), nodes the snapshot
//  lacked leave the view.
static void s_snapshot_finish(hvn_replica_t *self, s_link_t *link)
{
    const hvn_end_t *end = hvn_subscriber_end(link->sub);
    for (size_t i = 0; i < end->publisher_count; i++) {
        s_publisher_t *pub = s_publisher(self, end->publishers[i].instance);
        if (!pub)
            continue;
        if (!pub->known || pub->applied < end->publishers[i].seq)
            pub->applied = end->publishers[i].seq;
        pub->known = true;
        pub->snapshot_seq = end->publishers[i].seq;
        pub->heard_ms = zclock_mono();
    }
    snprintf(link->broker_id, sizeof(link->broker_id), "%s", end->broker_id);
    zlist_t *gone = zlist_new();
    if (gone) {
        for (s_entry_t *entry = zhashx_first(self->nodes); entry; entry = zhashx_next(self->nodes))
            if (entry->generation != self->generation && !s_newer_than(end, entry))
                zlist_append(gone, entry);
        for (s_entry_t *entry = zlist_first(gone); entry; entry = zlist_next(gone))
            s_remove(self, entry, NULL, true);
        zlist_destroy(&gone);
    }
    s_emit(self, HVN_REPLICA_REPLACED, NULL, NULL, true);
}

//  Returns how late a snapshot asks a link: 0 first, 1 for a broker that
//  has just restarted (its cache may still be refilling), 2 for a silent one.
static int s_link_rank(const s_link_t *link, int64_t now)
{
    if (link->silent)
        return 2;
    return link->restarted_ms && now - link->restarted_ms < 3 * link->interval_ms ? 1 : 0;
}

//  Returns the links in the order a snapshot asks them: by rank, then the
//  most recently heard first, so a dead broker is asked last.
static void s_link_order(hvn_replica_t *self, size_t order[])
{
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->link_count; i++)
        order[i] = i;
    for (size_t i = 1; i < self->link_count; i++)
        for (size_t j = i; j > 0; j--) {
            const s_link_t *a = &self->links[order[j - 1]], *b = &self->links[order[j]];
            int ra = s_link_rank(a, now), rb = s_link_rank(b, now);
            bool swap = ra > rb || (ra == rb && b->heard_ms > a->heard_ms);
            if (!swap)
                break;
            size_t t = order[j - 1];
            order[j - 1] = order[j];
            order[j] = t;
        }
}

//  Returns 0 after a snapshot from one of the brokers replaced the view, -1
//  when none answered whole (counted; the repair is rescheduled).
static int s_snapshot(hvn_replica_t *self)
{
    size_t order[HVN_REPLICA_BROKERS_MAX];
    s_link_order(self, order);
    for (size_t i = 0; i < self->link_count && !zsys_interrupted; i++) {
        s_link_t *link = &self->links[order[i]];
        s_snapshot_t snap = {self, 0};
        self->generation++;
        int rc = hvn_subscriber_snapshot(link->sub, "", s_snapshot_item, &snap,
                                         self->snapshot_timeout_ms);
        if (rc < 0) {
            self->stats.repairs_failed++;
            continue;
        }
        s_snapshot_finish(self, link);
        self->synced = true;
        self->stats.snapshots++;
        if (self->pending) {
            self->stats.repairs++;
            self->stats.repaired += self->pending;
            if (self->pending_stale)
                self->stale_repair_ms = zclock_mono();
            zsys_info("replica: view repaired from broker %s: %" PRIu64 " nodes (%" PRIu64
                      " losses detected, %" PRIu64 " repaired)",
                      link->broker_id, (uint64_t)zhashx_size(self->nodes), self->stats.losses,
                      self->stats.repaired);
        }
        self->pending = 0;
        self->pending_stale = false;
        self->repair_due = false;
        self->backoff_ms = S_BACKOFF_MIN_MS;
        return 0;
    }
    if (zsys_interrupted)
        return -1;
    self->repair_due = true;
    self->repair_at = zclock_mono() + self->backoff_ms;
    zsys_warning("replica: no broker answered the snapshot; retrying in %" PRId64 " ms",
                 self->backoff_ms);
    self->backoff_ms =
        self->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff_ms * 2;
    return -1;
}

// --------------------------------------------------------------------------
//  Live messages

//  Returns true when the heartbeat's node list names exactly the nodes the
//  view holds for its host.
static bool s_heartbeat_matches(hvn_replica_t *self, const hvn_msg_t *msg)
{
    zhashx_t *index = zhashx_lookup(self->hosts, msg->host);
    size_t held = index ? zhashx_size(index) : 0;
    if (held != msg->node_count)
        return false;
    for (size_t i = 0; i < msg->node_count; i++) {
        char uuid[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(msg->nodes[i], uuid);
        if (!index || !zhashx_lookup(index, uuid))
            return false;
    }
    return true;
}

//  Returns nothing; a publisher's heartbeat: its seq may reveal a gap, its
//  node list a stale view.
static void s_handle_heartbeat(hvn_replica_t *self, const hvn_msg_t *msg, int64_t now)
{
    s_publisher_t *pub = s_publisher(self, msg->header.instance);
    if (!pub)
        return;
    snprintf(pub->host, sizeof(pub->host), "%s", msg->host);
    pub->heartbeat_ms = now;
    pub->heard_ms = now;
    uint64_t seq = msg->header.seq;
    if (!pub->known) {
        pub->known = true;
        pub->applied = seq;
    } else if (seq > pub->applied) {
        self->stats.missed += seq - pub->applied;
        pub->applied = seq;
        s_detect(self, &self->stats.gaps, now, "seq gap before a heartbeat", msg->host);
        return;
    } else if (seq < pub->applied)
        return; //  An older heartbeat, from a broker behind the other
    if (!s_heartbeat_matches(self, msg)) {
        int64_t interval = msg->interval_ms > 0 ? msg->interval_ms : S_HEARTBEAT_MS;
        int64_t not_before = self->stale_repair_ms ? self->stale_repair_ms + interval : now;
        s_detect(self, &self->stats.stale_heartbeats, not_before,
                 "heartbeat disagrees with the view", msg->host);
        self->pending_stale = true;
    }
}

//  Returns nothing; a broker's heartbeat: its interval, and a restart.
static void s_handle_broker(hvn_replica_t *self, s_link_t *link, const hvn_msg_t *msg)
{
    if (msg->interval_ms > 0)
        link->interval_ms = msg->interval_ms;
    if (link->broker_id[0] && strcmp(link->broker_id, msg->publisher_id) != 0) {
        //  Its cache refills as publishers resync: snapshot a moment later,
        //  from another broker when there is one
        int64_t now = zclock_mono();
        int64_t settle = link->interval_ms < S_SETTLE_MS ? link->interval_ms : S_SETTLE_MS;
        link->restarted_ms = now;
        s_detect(self, &self->stats.broker_restarts, now + settle, "broker restarted",
                 msg->publisher_id);
    }
    snprintf(link->broker_id, sizeof(link->broker_id), "%s", msg->publisher_id);
}

//  Returns nothing; a create, update or delete: applied once, in seq order.
static void s_handle_notification(hvn_replica_t *self, const hvn_msg_t *msg, int64_t now)
{
    if (msg->header.kind != HVN_KIND_NOTIFICATION)
        return; //  Syncs are the broker's business
    s_publisher_t *pub = s_publisher(self, msg->header.instance);
    if (!pub)
        return;
    pub->heard_ms = now;
    uint64_t seq = msg->header.seq;
    if (pub->known && seq <= pub->applied) {
        if (seq <= pub->snapshot_seq)
            self->stats.stale++;
        else
            self->stats.duplicates++;
        return;
    }
    uint64_t expected = pub->known ? pub->applied + 1 : 1;
    snprintf(pub->host, sizeof(pub->host), "%s", msg->host);
    pub->known = true;
    pub->applied = seq;
    if (seq > expected) {
        self->stats.missed += seq - expected;
        s_detect(self, &self->stats.gaps, now, "seq gap", msg->host);
    }
    self->stats.applied++;
    if (msg->event == HVN_EVENT_DELETE) {
        s_entry_t *entry = zhashx_lookup(self->nodes, msg->node.uuid);
        if (entry)
            s_remove(self, entry, msg, false);
        else
            s_emit(self, HVN_REPLICA_DELETED, NULL, msg, false);
    } else
        s_upsert(self, msg, false);
}

//  Returns nothing; one valid live message from link.
static void s_handle(hvn_replica_t *self, s_link_t *link, const hvn_msg_t *msg)
{
    int64_t now = zclock_mono();
    link->heard_ms = now;
    if (link->silent) {
        link->silent = false;
        zsys_info("replica: broker %s is heard again", link->broker_id);
    }
    if (msg->event == HVN_EVENT_BROKER) {
        s_handle_broker(self, link, msg);
        s_emit(self, HVN_REPLICA_HEARTBEAT, NULL, msg, false);
        return;
    }
    if (self->host && strcmp(msg->host, self->host) != 0)
        return;
    if (msg->event == HVN_EVENT_HEARTBEAT) {
        s_handle_heartbeat(self, msg, now);
        s_emit(self, HVN_REPLICA_HEARTBEAT, NULL, msg, false);
    } else
        s_handle_notification(self, msg, now);
}

//  Returns nothing; a link silent past three of its intervals is a loss.
//  A link with input queued is not judged: its reader was away, not the
//  broker.
static void s_check_silence(hvn_replica_t *self, int64_t now)
{
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        if (link->silent || now - link->heard_ms <= S_SILENT_INTERVALS * link->interval_ms ||
            (zsock_events(hvn_subscriber_socket(link->sub)) & ZMQ_POLLIN))
            continue;
        link->silent = true;
        s_detect(self, &self->stats.silences, now, "broker silent",
                 link->broker_id[0] ? link->broker_id : "unknown");
    }
}

//  Returns the monotonic time of the next thing due without input: a
//  repair or a silence.
static int64_t s_next_due(hvn_replica_t *self)
{
    int64_t due = INT64_MAX;
    if (self->repair_due)
        due = self->repair_at;
    for (size_t i = 0; i < self->link_count; i++) {
        const s_link_t *link = &self->links[i];
        int64_t at = link->heard_ms + S_SILENT_INTERVALS * link->interval_ms + 1;
        if (!link->silent && at < due)
            due = at;
    }
    return due;
}

//  Returns the number of messages handled from the links now waiting (at
//  most S_BATCH per link), or -1 when interrupted.
static int s_drain(hvn_replica_t *self)
{
    int handled = 0;
    for (size_t n = 0; n < self->link_count; n++) {
        s_link_t *link = &self->links[(self->turn + n) % self->link_count];
        zsock_t *sock = hvn_subscriber_socket(link->sub);
        for (int i = 0; i < S_BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
            int rc = hvn_subscriber_recv(link->sub, &self->msg, 0);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                s_handle(self, link, &self->msg);
                handled++;
            }
        }
    }
    self->turn = (self->turn + 1) % self->link_count;
    return handled;
}

//  Returns 1 when a link has input, 0 after wait_ms (-1 = forever), -1
//  when interrupted.
static int s_wait(hvn_replica_t *self, int64_t wait_ms)
{
    zmq_pollitem_t items[HVN_REPLICA_BROKERS_MAX];
    for (size_t i = 0; i < self->link_count; i++)
        items[i] = (zmq_pollitem_t){zsock_resolve(hvn_subscriber_socket(self->links[i].sub)), 0,
                                    ZMQ_POLLIN, 0};
    //  A signal that lands just before the poll does not interrupt it: the
    //  caller's loop checks for one at least this often
    if (wait_ms < 0 || wait_ms > S_SIGNAL_CHECK_MS)
        wait_ms = S_SIGNAL_CHECK_MS;
    int rc = zmq_poll(items, (int)self->link_count, (long)wait_ms);
    if (rc < 0)
        return zsys_interrupted || errno != EINTR ? -1 : 0;
    return rc > 0 ? 1 : 0;
}

// --------------------------------------------------------------------------
//  Construction

//  Returns true when the options can make a replica; logs why not.
static bool s_opts_valid(const hvn_replica_opts_t *opts)
{
    if (opts->broker_count == 0 || opts->broker_count > HVN_REPLICA_BROKERS_MAX ||
        !opts->backends || !opts->services) {
        zsys_error("replica: between 1 and %d brokers (backend and service) are required",
                   HVN_REPLICA_BROKERS_MAX);
        return false;
    }
    for (size_t i = 0; i < opts->broker_count; i++)
        if (!opts->backends[i] || !*opts->backends[i] || !opts->services[i] ||
            !*opts->services[i] || strchr(opts->backends[i], ',') ||
            strchr(opts->services[i], ',')) {
            zsys_error("replica: broker %zu needs one backend and one service endpoint", i);
            return false;
        }
    return true;
}

//  Returns a replica subscribed to every broker, or NULL (logged).
hvn_replica_t *hvn_replica_new(const hvn_replica_opts_t *opts)
{
    assert(opts);
    if (!s_opts_valid(opts))
        return NULL;
    hvn_replica_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->nodes = zhashx_new();
    self->hosts = zhashx_new();
    self->publishers = hvn_instances_new(sizeof(s_publisher_t));
    self->host = opts->host ? strdup(opts->host) : NULL;
    if (!self->nodes || !self->hosts || !self->publishers || (opts->host && !self->host)) {
        zsys_error("replica: out of memory");
        hvn_replica_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->nodes, s_free_item);
    zhashx_set_destructor(self->hosts, s_free_index);
    self->snapshot_timeout_ms =
        opts->snapshot_timeout_ms > 0 ? opts->snapshot_timeout_ms : S_SNAPSHOT_TIMEOUT_MS;
    self->default_interval_ms = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : S_HEARTBEAT_MS;
    self->fn = opts->fn;
    self->arg = opts->arg;
    self->repair_due = true; //  The first snapshot
    self->backoff_ms = S_BACKOFF_MIN_MS;
    int64_t now = zclock_mono();
    self->repair_at = now;
    const char *topics[] = {"compute_node.", "hvn."};
    for (size_t i = 0; i < opts->broker_count; i++) {
        hvn_subscriber_opts_t sub_opts = {.endpoint = opts->backends[i],
                                          .service = opts->services[i],
                                          .topics = topics,
                                          .topic_count = 2,
                                          .curve_secret = opts->curve_secret,
                                          .curve_server = opts->curve_server,
                                          .rcvhwm = opts->rcvhwm};
        s_link_t *link = &self->links[i];
        link->sub = hvn_subscriber_new(&sub_opts);
        link->interval_ms = self->default_interval_ms;
        link->heard_ms = now;
        self->link_count++;
        if (!link->sub) {
            hvn_replica_destroy(&self);
            return NULL;
        }
    }
    return self;
}

//  Returns nothing; closes and frees everything, sets *self_p to NULL.
void hvn_replica_destroy(hvn_replica_t **self_p)
{
    assert(self_p);
    hvn_replica_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->link_count; i++)
        hvn_subscriber_destroy(&self->links[i].sub);
    zhashx_destroy(&self->hosts); //  Borrows the entries: goes first
    zhashx_destroy(&self->nodes);
    hvn_instances_destroy(&self->publishers);
    free(self->host);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Running

//  Returns the number of live messages handled, or -1 when interrupted.
//  Returns early after a batch of messages or an applied snapshot.
int hvn_replica_poll(hvn_replica_t *self, int timeout_ms)
{
    assert(self);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    int handled = 0;
    while (!zsys_interrupted) {
        int64_t now = zclock_mono();
        hvn_instances_prune(self->publishers, now);
        if (self->repair_due && now >= self->repair_at) {
            if (s_snapshot(self) == 0)
                return handled;
            continue;
        }
        int rc = s_drain(self);
        if (rc < 0)
            return -1;
        handled += rc;
        now = zclock_mono();
        s_check_silence(self, now);
        if (rc > 0 || now >= deadline)
            return handled;
        int64_t until = s_next_due(self);
        for (size_t i = 0; i < self->link_count; i++) {
            //  A backend that refused the handshake is dialled again
            int redial = hvn_subscriber_redial(self->links[i].sub);
            if (redial >= 0 && now + redial < until)
                until = now + redial;
        }
        if (until > deadline)
            until = deadline;
        if (s_wait(self, until > now ? until - now : 0) < 0)
            return -1;
    }
    return -1;
}

//  Returns 0 when a snapshot was applied, -1 when none answered.
int hvn_replica_sync(hvn_replica_t *self)
{
    assert(self);
    return s_snapshot(self);
}

// --------------------------------------------------------------------------
//  Reading the view

//  Returns the node of that uuid, or NULL.
const hvn_replica_node_t *hvn_replica_get(hvn_replica_t *self, const char *uuid)
{
    assert(self && uuid);
    s_entry_t *entry = zhashx_lookup(self->nodes, uuid);
    return entry ? &entry->pub : NULL;
}

//  Returns the number of nodes visited. The entries are gathered first:
//  zhashx iteration does not survive a lookup, and fn may call get.
size_t hvn_replica_foreach(hvn_replica_t *self, hvn_replica_node_fn *fn, void *arg)
{
    assert(self && fn);
    size_t count = zhashx_size(self->nodes);
    s_entry_t **entries = calloc(count ? count : 1, sizeof(*entries));
    if (!entries) {
        zsys_error("replica: out of memory");
        return 0;
    }
    size_t n = 0;
    for (s_entry_t *entry = zhashx_first(self->nodes); entry && n < count;
         entry = zhashx_next(self->nodes))
        entries[n++] = entry;
    size_t visited = 0;
    while (visited < n)
        if (fn(&entries[visited++]->pub, arg) != 0)
            break;
    free(entries);
    return visited;
}

//  Returns the seq the last snapshot's END named for the instance, or 0.
uint64_t hvn_replica_snapshot_seq(hvn_replica_t *self, const uint8_t instance[16])
{
    assert(self && instance);
    s_publisher_t *pub = hvn_instances_get(self->publishers, instance, false);
    return pub ? pub->snapshot_seq : 0;
}

//  Returns the number of nodes in the view.
size_t hvn_replica_size(hvn_replica_t *self)
{
    assert(self);
    return zhashx_size(self->nodes);
}

//  Returns true when synced and no repair is pending.
bool hvn_replica_synced(hvn_replica_t *self)
{
    assert(self);
    return self->synced && !self->repair_due;
}

//  Returns nothing; copies the counters into *out.
void hvn_replica_stats(hvn_replica_t *self, hvn_replica_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    out->nodes = zhashx_size(self->nodes);
    out->publishers = hvn_instances_size(self->publishers);
    for (size_t i = 0; i < self->link_count; i++) {
        hvn_subscriber_stats_t sub;
        hvn_subscriber_stats(self->links[i].sub, &sub);
        out->received += sub.received;
        out->refused += sub.skipped_total;
        out->stale += sub.stale;
        out->denials += sub.denials;
        out->redials += sub.redials;
        out->replays += sub.replays;
        out->replayed += sub.replayed;
        out->replays_short += sub.replays_short;
        out->replays_failed += sub.replays_failed;
        out->duplicates += sub.duplicates;
    }
}
