/*  hvn_subscriber.c — the client library: a validating SUB on the broker's
    backend, and the Clone pattern's snapshot on a DEALER to its service.

    The one idea: nothing reaches the caller that the decoder has not
    validated, and nothing is lost silently. Bad messages are counted by
    reason; per publisher instance the last seq is kept, so a drop anywhere
    (a full HWM, a broker restart, a late subscription) shows up as a gap.
    A gap is repaired by REPLAY from the broker's ring where it can be: the
    missing messages and the one that revealed the gap wait in a queue that
    recv() empties before it reads the socket again. What the ring cannot
    give back stays a gap, and the caller knows to snapshot again.
*/
#include "hvn_subscriber.h"
#include "hvn_curve.h"

#include "hvn_instances.h"
#include "hvn_redial.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define S_RCVHWM 100000       //  Messages queued per pipe before libzmq drops
#define S_SNAPSHOT_FRAMES 4   //  ["ITEM", topic, header, body]
#define S_SIGNAL_CHECK_MS 100 //  Longest poll between checks for a signal
#define S_REPLAY_TIMEOUT_MS 1000 //  Default wait for a REPLAY's reply in recv()
#define S_REPLAY_BACKOFF_MS 5000 //  No REPLAY from recv() this long after one failed

//  What we know of one publisher instance
typedef struct {
    int64_t last_ms;       //  Monotonic time of its last message (first: hvn_instances_t)
    uint64_t snapshot_seq; //  Seq named by the last snapshot's END; 0 = none
    uint64_t last_seq;     //  Highest seq seen from it (notification or heartbeat)
    bool seen;             //  last_seq is known
    uint64_t delivered;    //  Highest notification seq delivered (or skipped as filtered)
    bool delivered_seen;   //  delivered is known
} s_publisher_t;

//  A connection to the service: a DEALER, and a watch on its handshake
typedef struct {
    zsock_t *dealer;       //  Connected to the service
    hvn_redial_t *refusal; //  Counts a refused handshake (no redial)
} s_service_t;

struct _hvn_subscriber_t {
    zsock_t *sub;                    //  SUB on the broker backend(s)
    hvn_redial_t *redial;            //  Dials a backend that refused the handshake again
    char *service;                   //  Broker service endpoint, or NULL
    char *host;                      //  Exact host filter, or NULL
    char *curve_secret;              //  Client certificate file, or NULL
    char *curve_server;              //  Broker public certificate file, or NULL
    char **topics;                   //  Subscribed prefixes (copies)
    size_t topic_count;              //  Entries in topics
    bool track_gaps;                 //  A prefix covers every notification
    int rcvhwm;                      //  SUB receive high water mark
    hvn_decoder_t *decoder;          //  Validates every message
    hvn_rejects_t rejects;           //  Refusals by reason, rate-limited logs
    hvn_instances_t *publishers;     //  Instance -> s_publisher_t
    char broker_id[HVN_STR_MAX + 1]; //  From the last snapshot's END
    hvn_end_t end;                   //  The last snapshot's END, kept whole
    hvn_subscriber_stats_t stats;    //  Counters (skipped ones live in rejects)
    int replay_timeout_ms;           //  Wait for a REPLAY in recv(); -1 = no REPLAY
    int64_t replay_after_ms;         //  No REPLAY from recv() before this (after a failure)
    zlist_t *pending;                //  zmsg_t (topic, header, body) recv() delivers first
    s_service_t kept;                //  Left open by the last whole reply; dealer NULL: none
};

static void s_service_close(s_service_t *svc);

// --------------------------------------------------------------------------
//  Small helpers

//  Returns a heap copy of s, or NULL when s is NULL.
static char *s_strdup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

//  Returns 0 after making sock a CURVE client of the broker, or when no
//  certificates are configured; -1 (logged) when a certificate is unusable.
static int s_apply_curve(hvn_subscriber_t *self, zsock_t *sock)
{
    if (!self->curve_secret)
        return 0;
    return hvn_curve_client_apply(sock, self->curve_secret, self->curve_server, "subscriber",
                                  NULL, 0);
}

//  Returns nothing; closes the first count parts.
static void s_close_parts(zmq_msg_t *parts, int count)
{
    for (int i = 0; i < count; i++)
        zmq_msg_close(&parts[i]);
}

//  Receives one whole message into parts (at most max; further frames are
//  received and closed at once). The first frame is received with flags.
//  Returns the number of frames (the caller closes min(n, max) parts), 0
//  when none was waiting (EAGAIN), or -1 with errno set.
static int s_recv_parts(void *handle, zmq_msg_t *parts, int max, int flags)
{
    int count = 0;
    zmq_msg_t extra;
    while (true) {
        zmq_msg_t *part = count < max ? &parts[count] : &extra;
        zmq_msg_init(part);
        int rc;
        do
            rc = zmq_msg_recv(part, handle, count == 0 ? flags : 0);
        while (rc == -1 && errno == EINTR && count > 0);
        if (rc == -1) {
            int err = errno;
            zmq_msg_close(part);
            s_close_parts(parts, count < max ? count : max);
            errno = err;
            return err == EAGAIN && count == 0 ? 0 : -1;
        }
        count++;
        bool more = zmq_msg_more(part);
        if (part == &extra)
            zmq_msg_close(&extra);
        if (!more)
            return count;
    }
}

//  Waits up to timeout_ms (-1 = forever) for input on one of count
//  libzmq sockets. Returns 1 when input is waiting, 0 on timeout, -1 when
//  interrupted or the context ended.
static int s_wait(void *const *handles, int count, int timeout_ms)
{
    assert(count <= 3);
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    while (true) {
        if (zsys_interrupted)
            return -1;
        long wait_ms = -1;
        if (deadline >= 0) {
            wait_ms = (long)(deadline - zclock_mono());
            if (wait_ms < 0)
                wait_ms = 0;
        }
        //  A signal that lands between the check above and the poll does
        //  not interrupt it: wait in slices so that it is seen soon anyway
        bool sliced = wait_ms < 0 || wait_ms > S_SIGNAL_CHECK_MS;
        if (sliced)
            wait_ms = S_SIGNAL_CHECK_MS;
        zmq_pollitem_t items[3];
        for (int i = 0; i < count; i++)
            items[i] = (zmq_pollitem_t){handles[i], 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(items, count, wait_ms);
        if (rc > 0)
            return 1;
        if (rc == 0 && sliced)
            continue;
        if (rc == 0)
            return 0;
        if (errno != EINTR || zsys_interrupted)
            return -1;
    }
}

//  Returns true when a subscribed prefix covers topic (no topics: all).
static bool s_topic_wanted(const hvn_subscriber_t *self, const char *topic)
{
    if (self->topic_count == 0)
        return true;
    for (size_t i = 0; i < self->topic_count; i++)
        if (strncmp(topic, self->topics[i], strlen(self->topics[i])) == 0)
            return true;
    return false;
}

//  Returns the tracked state of a publisher instance; when create is true a
//  new entry is made for an unknown one (NULL when out of memory), else NULL.
static s_publisher_t *s_publisher(hvn_subscriber_t *self, const uint8_t instance[16], bool create)
{
    return hvn_instances_get(self->publishers, instance, create);
}

// --------------------------------------------------------------------------
//  Construction

//  Returns true when the options can make a subscriber; logs why not.
static bool s_opts_valid(const hvn_subscriber_opts_t *opts)
{
    if (!opts->endpoint || !*opts->endpoint) {
        zsys_error("subscriber: an endpoint is required");
        return false;
    }
    if (opts->host &&
        (!*opts->host || strchr(opts->host, '@') || strlen(opts->host) > HVN_STR_MAX)) {
        zsys_error("subscriber: invalid host filter '%s'", opts->host);
        return false;
    }
    for (size_t i = 0; i < opts->topic_count; i++)
        if (!opts->topics || !opts->topics[i] || strlen(opts->topics[i]) > HVN_TOPIC_MAX) {
            zsys_error("subscriber: topic prefix %zu is missing or too long", i);
            return false;
        }
    if (!opts->curve_secret != !opts->curve_server) {
        zsys_error("subscriber: CURVE needs both a client and a broker certificate");
        return false;
    }
    return true;
}

//  Returns 0 after copying opts into self, -1 when out of memory.
static int s_copy_opts(hvn_subscriber_t *self, const hvn_subscriber_opts_t *opts)
{
    self->service = s_strdup_opt(opts->service);
    self->host = s_strdup_opt(opts->host);
    self->curve_secret = s_strdup_opt(opts->curve_secret);
    self->curve_server = s_strdup_opt(opts->curve_server);
    if ((opts->service && !self->service) || (opts->host && !self->host) ||
        (opts->curve_secret && !self->curve_secret) || (opts->curve_server && !self->curve_server))
        return -1;
    if (opts->topic_count == 0)
        self->track_gaps = true;
    self->topics = calloc(opts->topic_count + 1, sizeof(char *));
    if (!self->topics)
        return -1;
    for (size_t i = 0; i < opts->topic_count; i++) {
        if (!(self->topics[i] = strdup(opts->topics[i])))
            return -1;
        self->topic_count++;
        //  "", "c", ..., "compute_node." see every notification
        if (strncmp(HVN_EVENT_CREATE_NAME, opts->topics[i], strlen(opts->topics[i])) == 0 &&
            strlen(opts->topics[i]) <= strlen("compute_node."))
            self->track_gaps = true;
    }
    return 0;
}

//  Returns 0 with the SUB socket connected and subscribed, -1 (logged).
static int s_open_sub(hvn_subscriber_t *self, const char *endpoint)
{
    self->sub = zsock_new(ZMQ_SUB);
    if (!self->sub) {
        zsys_error("subscriber: cannot create a SUB socket");
        return -1;
    }
    //  Past the HWM libzmq drops silently; seq gaps then tell, but a deep
    //  queue rides out bursts in the first place
    zsock_set_rcvhwm(self->sub, self->rcvhwm);
    if (s_apply_curve(self, self->sub) != 0)
        return -1;
    //  Watched before it connects, so that no refusal goes unseen
    self->redial = hvn_redial_new(self->sub, "subscriber", true);
    if (!self->redial)
        return -1;
    if (self->topic_count == 0)
        zsock_set_subscribe(self->sub, "");
    for (size_t i = 0; i < self->topic_count; i++)
        zsock_set_subscribe(self->sub, self->topics[i]);
    if (zsock_attach(self->sub, endpoint, false) != 0) {
        zsys_error("subscriber: cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

//  Returns a connected, subscribed subscriber, or NULL (logged).
hvn_subscriber_t *hvn_subscriber_new(const hvn_subscriber_opts_t *opts)
{
    assert(opts);
    if (!s_opts_valid(opts))
        return NULL;
    hvn_subscriber_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    hvn_rejects_init(&self->rejects, "subscriber");
    self->decoder = hvn_decoder_new();
    self->publishers = hvn_instances_new(sizeof(s_publisher_t));
    if (!self->decoder || !self->publishers || s_copy_opts(self, opts) != 0) {
        zsys_error("subscriber: out of memory");
        hvn_subscriber_destroy(&self);
        return NULL;
    }
    self->rcvhwm = opts->rcvhwm > 0 ? opts->rcvhwm : S_RCVHWM;
    self->replay_timeout_ms = opts->replay_timeout_ms ? opts->replay_timeout_ms
                                                      : S_REPLAY_TIMEOUT_MS;
    self->pending = zlist_new();
    if (!self->pending) {
        hvn_subscriber_destroy(&self);
        return NULL;
    }
    if (s_open_sub(self, opts->endpoint) != 0)
        hvn_subscriber_destroy(&self);
    return self;
}

//  Returns nothing; closes and frees everything, sets *self_p to NULL.
void hvn_subscriber_destroy(hvn_subscriber_t **self_p)
{
    assert(self_p);
    hvn_subscriber_t *self = *self_p;
    if (!self)
        return;
    hvn_redial_destroy(&self->redial);
    zsock_destroy(&self->sub);
    s_service_close(&self->kept);
    while (self->pending && zlist_size(self->pending)) {
        zmsg_t *queued = zlist_pop(self->pending);
        zmsg_destroy(&queued);
    }
    zlist_destroy(&self->pending);
    hvn_decoder_destroy(&self->decoder);
    hvn_instances_destroy(&self->publishers);
    hvn_end_clear(&self->end);
    for (size_t i = 0; self->topics && i < self->topic_count; i++)
        free(self->topics[i]);
    free(self->topics);
    free(self->service);
    free(self->host);
    free(self->curve_secret);
    free(self->curve_server);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Live messages

//  Returns true when a decoded live message should reach the caller: not
//  already covered by a snapshot, and of the wanted host. Keeps the
//  per-publisher seqs and counts gaps on the way.
static bool s_accept(hvn_subscriber_t *self, const hvn_msg_t *msg)
{
    const hvn_header_t *h = &msg->header;
    bool notification = h->kind == HVN_KIND_NOTIFICATION || h->kind == HVN_KIND_SYNC;
    if (notification || msg->event == HVN_EVENT_HEARTBEAT) {
        s_publisher_t *pub =
            s_publisher(self, h->instance, self->track_gaps || h->kind == HVN_KIND_NOTIFICATION);
        if (pub) {
            pub->last_ms = zclock_mono();
            if (notification && h->seq <= pub->snapshot_seq) {
                self->stats.stale++;
                return false;
            }
            if (h->kind == HVN_KIND_NOTIFICATION) {
                //  Another broker's copy, or one a REPLAY delivered already
                if (pub->delivered_seen && h->seq <= pub->delivered) {
                    self->stats.duplicates++;
                    return false;
                }
                pub->delivered = h->seq;
                pub->delivered_seen = true;
            }
            //  A heartbeat carries the last seq used, a notification the
            //  next one; syncs resend old seqs and say nothing about loss
            uint64_t expected = pub->last_seq + (h->kind == HVN_KIND_HEARTBEAT ? 0 : 1);
            if (self->track_gaps && h->kind != HVN_KIND_SYNC) {
                if (pub->seen && h->seq > expected) {
                    self->stats.gaps++;
                    self->stats.missed += h->seq - expected;
                }
                if (!pub->seen || h->seq > pub->last_seq)
                    pub->last_seq = h->seq;
                pub->seen = true;
            }
        }
    }
    if (self->host && strcmp(msg->host, self->host) != 0) {
        self->stats.filtered++;
        return false;
    }
    return true;
}

//  Returns true with the missing seqs in *first..*last when the decoded
//  live message reveals a gap that recv() should repair by REPLAY now: a
//  notification beyond the next seq of its instance, or a heartbeat above
//  its last seq, with gaps tracked, a service known, no REPLAY failure in
//  the last S_REPLAY_BACKOFF_MS, and the host wanted.
static bool s_gap_to_replay(hvn_subscriber_t *self, const hvn_msg_t *msg, uint64_t *first,
                            uint64_t *last)
{
    const hvn_header_t *h = &msg->header;
    if (self->replay_timeout_ms < 0 || !self->service || !self->track_gaps)
        return false;
    if (h->kind != HVN_KIND_NOTIFICATION && msg->event != HVN_EVENT_HEARTBEAT)
        return false;
    if (self->host && strcmp(msg->host, self->host) != 0)
        return false;
    s_publisher_t *pub = s_publisher(self, h->instance, false);
    if (!pub || !pub->seen || h->seq == 0 || h->seq <= pub->last_seq)
        return false;
    if (h->kind == HVN_KIND_NOTIFICATION && h->seq <= pub->snapshot_seq)
        return false;
    uint64_t end = h->kind == HVN_KIND_HEARTBEAT ? h->seq : h->seq - 1;
    if (end <= pub->last_seq || zclock_mono() < self->replay_after_ms)
        return false;
    if (end - pub->last_seq > HVN_REPLAY_SPAN_MAX) {
        self->stats.replays_short++; //  Wider than a REPLAY may ask: a snapshot's job
        return false;
    }
    *first = pub->last_seq + 1;
    *last = end;
    return true;
}

static int s_repair(hvn_subscriber_t *self, const uint8_t instance[16], uint64_t first,
                    uint64_t last, zmq_msg_t *live);

//  Reads one message recv() queued (a replayed one, or the live one that
//  revealed their gap). Returns 1 when it is valid and wanted (*msg
//  filled), 0 when it was skipped, 2 when none is queued.
static int s_read_pending(hvn_subscriber_t *self, hvn_msg_t *msg)
{
    zmsg_t *queued = zlist_pop(self->pending);
    if (!queued)
        return 2;
    zframe_t *topic = zmsg_first(queued);
    zframe_t *header = zmsg_next(queued);
    zframe_t *body = zmsg_next(queued);
    hvn_reason_t reason = hvn_decoder_decode(self->decoder, zframe_data(topic), zframe_size(topic),
                                             zframe_data(header), zframe_size(header),
                                             zframe_data(body), zframe_size(body), msg);
    int result = 0;
    if (reason != HVN_OK)
        hvn_rejects_add(&self->rejects, reason, hvn_decoder_detail(self->decoder),
                        msg->topic[0] ? msg->topic : NULL);
    else if (s_accept(self, msg))
        result = 1;
    zmsg_destroy(&queued);
    return result;
}

//  Reads one waiting message. Returns 1 when it is valid and wanted (*msg
//  filled), 0 when it was skipped (or queued behind the REPLAY that
//  repairs the gap it revealed), 2 when nothing was waiting, -1 when
//  interrupted or the context ended.
static int s_read_live(hvn_subscriber_t *self, void *handle, hvn_msg_t *msg)
{
    zmq_msg_t parts[3];
    int count = s_recv_parts(handle, parts, 3, ZMQ_DONTWAIT);
    if (count == 0)
        return 2;
    if (count < 0)
        return errno == EINTR && !zsys_interrupted ? 2 : -1;
    int result = 0;
    if (count != 3)
        hvn_rejects_add(&self->rejects, HVN_R_FRAMES, "frames", NULL);
    else {
        hvn_reason_t reason =
            hvn_decoder_decode(self->decoder, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                               zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]),
                               zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), msg);
        uint64_t first, last;
        if (reason != HVN_OK)
            hvn_rejects_add(&self->rejects, reason, hvn_decoder_detail(self->decoder),
                            msg->topic[0] ? msg->topic : NULL);
        else if (s_gap_to_replay(self, msg, &first, &last) &&
                 s_repair(self, msg->header.instance, first, last, parts) == 0)
            result = 0; //  Queued after what the REPLAY brought back
        else if (s_accept(self, msg))
            result = 1;
    }
    s_close_parts(parts, count < 3 ? count : 3);
    return result;
}

//  Returns 1 with *msg filled, 0 on timeout, -1 when interrupted.
int hvn_subscriber_recv(hvn_subscriber_t *self, hvn_msg_t *msg, int timeout_ms)
{
    assert(self && msg);
    int64_t start = zclock_mono();
    int64_t deadline = timeout_ms < 0 ? -1 : start + timeout_ms;
    void *handle = zsock_resolve(self->sub);
    hvn_instances_prune(self->publishers, start);
    while (true) {
        if (zsys_interrupted)
            return -1;
        int rc = s_read_pending(self, msg);
        if (rc == 2)
            rc = s_read_live(self, handle, msg);
        if (rc == 1) {
            self->stats.received++;
            return 1;
        }
        if (rc < 0)
            return -1;
        //  Nothing waiting: a moment to dial a refusing backend again
        int next = rc == 2 ? hvn_subscriber_redial(self) : -1;
        int64_t now = zclock_mono();
        if (deadline >= 0 && now >= deadline)
            return 0;
        if (rc == 2) {
            int64_t wait = deadline < 0 ? -1 : deadline - now;
            if (next >= 0 && (wait < 0 || next < wait))
                wait = next;
            void *handles[2] = {handle, zsock_resolve(hvn_redial_monitor(self->redial))};
            if (s_wait(handles, 2, (int)wait) < 0)
                return -1;
        }
    }
}

//  Returns the ms until the next redial is due, or -1 when none is.
int hvn_subscriber_redial(hvn_subscriber_t *self)
{
    assert(self);
    return hvn_redial_tend(self->redial);
}

//  Returns the SUB socket (a zsock_t owned by the subscriber).
void *hvn_subscriber_socket(hvn_subscriber_t *self)
{
    assert(self);
    return self->sub;
}

//  Returns nothing; copies the counters into *out.
void hvn_subscriber_stats(hvn_subscriber_t *self, hvn_subscriber_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    for (int r = 0; r < HVN_R_COUNT; r++)
        out->skipped[r] = self->rejects.count[r];
    out->skipped_total = hvn_rejects_total(&self->rejects);
    out->publishers = hvn_instances_size(self->publishers);
    hvn_redial_stats_t redial;
    hvn_redial_stats(self->redial, &redial);
    out->denials = redial.denials;
    out->redials = redial.redials;
}

//  Returns nothing; makes the END's seqs the ones recv() skips up to, and
//  the starting point of gap counting.
static void s_end_apply(hvn_subscriber_t *self, const hvn_end_t *end)
{
    int64_t now = zclock_mono();
    for (size_t i = 0; i < end->publisher_count; i++) {
        const hvn_end_publisher_t *named = &end->publishers[i];
        s_publisher_t *pub = s_publisher(self, named->instance, true);
        if (!pub)
            continue;
        pub->snapshot_seq = named->seq;
        if (!pub->seen || pub->last_seq < named->seq)
            pub->last_seq = named->seq;
        pub->seen = true;
        pub->last_ms = now;
    }
    snprintf(self->broker_id, sizeof(self->broker_id), "%s", end->broker_id);
}

// --------------------------------------------------------------------------
//  Snapshot

//  State of one snapshot request
typedef struct {
    hvn_subscriber_t *self; //  The subscriber
    hvn_snapshot_fn *fn;    //  Called per item
    void *arg;              //  For fn
    uint64_t items;         //  ITEM messages received, valid or not
    int delivered;          //  Items passed to fn
    hvn_msg_t msg;          //  Decoded item
} s_snapshot_t;

//  Returns nothing; decodes one ITEM reply (parts after the word) and
//  passes it to the callback when valid and wanted.
static void s_snapshot_item(zmq_msg_t *parts, int count, void *arg)
{
    s_snapshot_t *snap = arg;
    hvn_subscriber_t *self = snap->self;
    snap->items++;
    if (count != S_SNAPSHOT_FRAMES) {
        hvn_rejects_add(&self->rejects, HVN_R_FRAMES, "snapshot item", NULL);
        return;
    }
    hvn_msg_t *msg = &snap->msg;
    hvn_reason_t reason = hvn_decoder_decode(
        self->decoder, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), zmq_msg_data(&parts[2]),
        zmq_msg_size(&parts[2]), zmq_msg_data(&parts[3]), zmq_msg_size(&parts[3]), msg);
    if (reason != HVN_OK) {
        hvn_rejects_add(&self->rejects, reason, hvn_decoder_detail(self->decoder),
                        msg->topic[0] ? msg->topic : NULL);
        return;
    }
    if (!s_topic_wanted(self, msg->topic))
        return;
    if (self->host && strcmp(msg->host, self->host) != 0) {
        self->stats.filtered++;
        return;
    }
    snap->fn(msg, snap->arg);
    snap->delivered++;
}

//  Returns the number of items delivered after a good END, or -1 when the
//  END is malformed or disagrees with the items received.
static int s_snapshot_end(zmq_msg_t *parts, int count, void *arg)
{
    s_snapshot_t *snap = arg;
    hvn_subscriber_t *self = snap->self;
    hvn_end_t end;
    const char *detail = "frames";
    hvn_reason_t reason = HVN_R_FRAMES;
    int rc = -1;
    if (count == 2)
        reason = hvn_end_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &end, &detail);
    if (reason != HVN_OK)
        zsys_warning("subscriber: snapshot: malformed END from '%s' (%s: %s)", self->service,
                     hvn_reason_str(reason), detail);
    else if (end.count != snap->items)
        zsys_warning("subscriber: snapshot: END counts %" PRIu64 " items, %" PRIu64 " arrived",
                     end.count, snap->items);
    else {
        s_end_apply(self, &end);
        self->stats.snapshots++;
        rc = snap->delivered;
        hvn_end_clear(&self->end);
        self->end = end; //  Kept: hvn_subscriber_end() hands it out
        return rc;
    }
    if (reason == HVN_OK)
        hvn_end_clear(&end);
    return rc;
}

//  Returns nothing; closes what s_service_open opened.
static void s_service_close(s_service_t *svc)
{
    hvn_redial_destroy(&svc->refusal);
    zsock_destroy(&svc->dealer);
}

//  Returns 0 with svc holding a DEALER connected to the service, or -1
//  (logged). The connection the last whole reply left open is taken again:
//  a repair then costs its round trip, not a connection and a handshake
//  (with CURVE, the most of a small REPLAY's time).
static int s_service_open(hvn_subscriber_t *self, s_service_t *svc)
{
    *svc = self->kept;
    self->kept = (s_service_t){0};
    if (svc->dealer)
        return 0;
    if (!self->service) {
        zsys_error("subscriber: no service endpoint configured");
        return -1;
    }
    svc->dealer = zsock_new(ZMQ_DEALER);
    if (!svc->dealer)
        return -1;
    zsock_set_rcvhwm(svc->dealer, 0); //  A whole fleet's snapshot must fit: never drop it
    zsock_set_linger(svc->dealer, 0);
    if (s_apply_curve(self, svc->dealer) != 0 ||
        !(svc->refusal = hvn_redial_new(svc->dealer, "subscriber", false)) ||
        zsock_attach(svc->dealer, self->service, false) != 0) {
        zsys_error("subscriber: cannot connect to service '%s'", self->service);
        s_service_close(svc);
        return -1;
    }
    return 0;
}

//  Returns nothing; keeps the connection for the next request when its
//  reply came whole (nothing of it can arrive later), else closes it.
static void s_service_done(hvn_subscriber_t *self, s_service_t *svc, bool whole)
{
    if (whole && !self->kept.dealer) {
        self->kept = *svc;
        *svc = (s_service_t){0};
    }
    s_service_close(svc);
}

//  Returns the number of reply frames received into parts (at most max),
//  0 on timeout, -1 when interrupted, refused at the handshake or on a
//  socket error (logged). While it waits, a refusing backend is dialled
//  again as in recv().
static int s_service_recv(hvn_subscriber_t *self, s_service_t *svc, zmq_msg_t *parts, int max,
                          int timeout_ms)
{
    void *handles[3] = {zsock_resolve(svc->dealer), zsock_resolve(hvn_redial_monitor(svc->refusal)),
                        zsock_resolve(hvn_redial_monitor(self->redial))};
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    while (true) {
        int count = s_recv_parts(handles[0], parts, max, ZMQ_DONTWAIT);
        if (count > 0)
            return count;
        if (count < 0 && (errno != EINTR || zsys_interrupted))
            return -1;
        //  A service that refused this key never answers: no use waiting
        hvn_redial_tend(svc->refusal);
        hvn_redial_stats_t refusal;
        hvn_redial_stats(svc->refusal, &refusal);
        if (refusal.denials)
            return -1;
        int next = hvn_subscriber_redial(self);
        int64_t now = zclock_mono();
        if (deadline >= 0 && now >= deadline) {
            zsys_warning("subscriber: service '%s' did not answer within %d ms", self->service,
                         timeout_ms);
            return 0;
        }
        int64_t wait = deadline < 0 ? -1 : deadline - now;
        if (next >= 0 && (wait < 0 || next < wait))
            wait = next;
        if (s_wait(handles, 3, (int)wait) < 0)
            return -1;
    }
}

//  Returns true when frame holds exactly the bytes of word.
static bool s_frame_is(zmq_msg_t *frame, const char *word)
{
    size_t len = strlen(word);
    return zmq_msg_size(frame) == len && memcmp(zmq_msg_data(frame), word, len) == 0;
}

//  Returns nothing; logs an ERROR reply from the broker, cleaned.
static void s_service_error(hvn_subscriber_t *self, zmq_msg_t *parts, int count)
{
    char why[128] = "";
    if (count >= 2) {
        size_t len = zmq_msg_size(&parts[1]);
        const char *data = zmq_msg_data(&parts[1]);
        size_t i = 0;
        for (; i < len && i + 1 < sizeof(why); i++)
            why[i] = (unsigned char)data[i] < 0x20 || data[i] == 0x7F ? '?' : data[i];
        why[i] = '\0';
    }
    zsys_warning("subscriber: service '%s' refused the request: %s", self->service, why);
}

//  Called for each ITEM of a reply with its frames (the word first).
typedef void(s_item_fn)(zmq_msg_t *parts, int count, void *arg);

//  Called for the END of a reply with its frames (the word first); returns
//  the request's result.
typedef int(s_end_fn)(zmq_msg_t *parts, int count, void *arg);

//  Returns what end returned for the reply's END, or -1 when none came: no
//  answer in time, an ERROR or a reply of another word (logged). Each ITEM
//  before it goes to item.
static int s_service_reply(hvn_subscriber_t *self, s_service_t *svc, s_item_fn *item, s_end_fn *end,
                           void *arg, int timeout_ms)
{
    int rc = -1;
    while (true) {
        zmq_msg_t parts[S_SNAPSHOT_FRAMES];
        int count = s_service_recv(self, svc, parts, S_SNAPSHOT_FRAMES, timeout_ms);
        if (count <= 0)
            break;
        bool done = true;
        if (s_frame_is(&parts[0], HVN_SERVICE_ITEM)) {
            item(parts, count, arg);
            done = false;
        } else if (s_frame_is(&parts[0], HVN_SERVICE_END))
            rc = end(parts, count, arg);
        else if (s_frame_is(&parts[0], HVN_SERVICE_ERROR))
            s_service_error(self, parts, count);
        else
            zsys_warning("subscriber: service '%s' sent an unknown reply", self->service);
        s_close_parts(parts, count < S_SNAPSHOT_FRAMES ? count : S_SNAPSHOT_FRAMES);
        if (done)
            break;
    }
    return rc;
}

//  Returns the number of items passed to fn, or -1 (see the header).
int hvn_subscriber_snapshot(hvn_subscriber_t *self, const char *prefix, hvn_snapshot_fn *fn,
                            void *arg, int timeout_ms)
{
    assert(self && fn);
    if (!prefix)
        prefix = "";
    if (strlen(prefix) > HVN_TOPIC_MAX) {
        zsys_error("subscriber: snapshot prefix longer than %d bytes", HVN_TOPIC_MAX);
        return -1;
    }
    s_service_t svc;
    if (s_service_open(self, &svc) != 0)
        return -1;
    s_snapshot_t *snap = calloc(1, sizeof(*snap)); //  hvn_msg_t is large
    int rc = -1;
    if (snap && zsock_send(svc.dealer, "ss", HVN_SERVICE_SNAPSHOT, prefix) == 0) {
        *snap = (s_snapshot_t){.self = self, .fn = fn, .arg = arg};
        rc = s_service_reply(self, &svc, s_snapshot_item, s_snapshot_end, snap, timeout_ms);
    }
    free(snap);
    s_service_done(self, &svc, rc >= 0);
    return rc;
}

// --------------------------------------------------------------------------
//  Replay

//  A REPLAY being read
typedef struct {
    hvn_subscriber_t *self; //  Whose
    s_item_fn *fn;          //  Called for each ITEM
    void *arg;              //  For fn
    uint64_t items;         //  ITEMs received
    hvn_end_t *end;         //  Its END, once decoded
} s_replay_t;

//  Returns nothing; one ITEM counted and passed on (an s_item_fn over an
//  s_replay_t).
static void s_replay_item(zmq_msg_t *parts, int count, void *arg)
{
    s_replay_t *replay = arg;
    replay->fn(parts, count, replay->arg);
    replay->items++;
}

//  Returns the number of ITEMs received when END is good and counts them
//  (*replay->end filled), else -1 (logged): an s_end_fn over an
//  s_replay_t.
static int s_replay_end(zmq_msg_t *parts, int count, void *arg)
{
    s_replay_t *replay = arg;
    const char *detail = "frames";
    hvn_reason_t reason = count == 2
                              ? hvn_end_decode_replay(zmq_msg_data(&parts[1]),
                                                      zmq_msg_size(&parts[1]), replay->end, &detail)
                              : HVN_R_FRAMES;
    if (reason != HVN_OK)
        zsys_warning("subscriber: replay: malformed END from '%s' (%s: %s)", replay->self->service,
                     hvn_reason_str(reason), detail);
    else if (replay->end->count != replay->items)
        zsys_warning("subscriber: replay: END counts %" PRIu64 " items, %" PRIu64 " arrived",
                     replay->end->count, replay->items);
    else
        return (int)replay->items;
    return -1;
}

//  Returns the number of ITEMs received after a good END (*end filled),
//  or -1 when there is no service, no answer, an ERROR, or a malformed
//  END or one whose count disagrees with the ITEMs (logged).
static int s_replay_request(hvn_subscriber_t *self, const uint8_t instance[16], uint64_t first,
                            uint64_t last, s_item_fn *fn, void *arg, hvn_end_t *end,
                            int timeout_ms)
{
    hvn_replay_t request = {.first = first, .last = last};
    memcpy(request.instance, instance, 16);
    char text[HVN_UUID_STR_LEN + 1], first_text[HVN_SEQ_TEXT_MAX + 1],
        last_text[HVN_SEQ_TEXT_MAX + 1];
    hvn_replay_text(&request, text, first_text, last_text);
    s_service_t svc;
    if (s_service_open(self, &svc) != 0)
        return -1;
    int rc = -1;
    s_replay_t replay = {.self = self, .fn = fn, .arg = arg, .end = end};
    if (zsock_send(svc.dealer, "ssss", HVN_SERVICE_REPLAY, text, first_text, last_text) == 0)
        rc = s_service_reply(self, &svc, s_replay_item, s_replay_end, &replay, timeout_ms);
    s_service_done(self, &svc, rc >= 0);
    return rc;
}

//  Returns nothing; one ITEM's frames appended to a zlist of zmsg_t
//  (topic, header, body), or counted as refused when it is not four
//  frames or memory is out (an s_item_fn).
static void s_item_keep(zmq_msg_t *parts, int count, void *arg)
{
    hvn_subscriber_t *self = ((void **)arg)[0];
    zlist_t *items = ((void **)arg)[1];
    zmsg_t *copy = count == S_SNAPSHOT_FRAMES ? zmsg_new() : NULL;
    for (int i = 1; copy && i < S_SNAPSHOT_FRAMES; i++)
        if (zmsg_addmem(copy, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])) != 0)
            zmsg_destroy(&copy);
    if (!copy || zlist_append(items, copy) != 0) {
        zmsg_destroy(&copy);
        hvn_rejects_add(&self->rejects, HVN_R_FRAMES, "replay item", NULL);
    }
}

//  Returns 0 when the REPLAY of first..last was answered: its items and
//  then the live message (its three frames in live) wait in the pending
//  queue, whole or short (counted); -1 when it was not (counted, and no
//  REPLAY from recv() for S_REPLAY_BACKOFF_MS): the live message is then
//  handled as it is.
static int s_repair(hvn_subscriber_t *self, const uint8_t instance[16], uint64_t first,
                    uint64_t last, zmq_msg_t *live)
{
    zlist_t *items = zlist_new();
    zmsg_t *copy = zmsg_new();
    hvn_end_t end = {.count = 0};
    void *arg[2] = {self, items};
    int got = -1;
    if (items && copy)
        got = s_replay_request(self, instance, first, last, s_item_keep, arg, &end,
                               self->replay_timeout_ms);
    for (int i = 0; got >= 0 && i < 3; i++)
        if (zmsg_addmem(copy, zmq_msg_data(&live[i]), zmq_msg_size(&live[i])) != 0)
            got = -1;
    if (got >= 0 && zlist_append(items, copy) == 0) {
        copy = NULL;
        zmsg_t *queued;
        while ((queued = zlist_pop(items)))
            zlist_append(self->pending, queued);
        self->stats.replayed += end.count;
        if (end.count >= last - first + 1)
            self->stats.replays++;
        else
            self->stats.replays_short++;
    } else {
        got = -1;
        self->stats.replays_failed++;
        self->replay_after_ms = zclock_mono() + S_REPLAY_BACKOFF_MS;
    }
    zmsg_destroy(&copy);
    while (items && zlist_size(items)) {
        zmsg_t *item = zlist_pop(items);
        zmsg_destroy(&item);
    }
    zlist_destroy(&items);
    return got >= 0 ? 0 : -1;
}

//  Returns the number of items passed to fn, or -1.
int hvn_subscriber_replay(hvn_subscriber_t *self, const uint8_t instance[16], uint64_t first,
                          uint64_t last, hvn_snapshot_fn *fn, void *arg, hvn_end_t *end,
                          int timeout_ms)
{
    assert(self && instance && fn && first <= last);
    s_snapshot_t *snap = calloc(1, sizeof(*snap)); //  hvn_msg_t is large
    if (!snap)
        return -1;
    *snap = (s_snapshot_t){.self = self, .fn = fn, .arg = arg};
    hvn_end_t got = {.count = 0};
    int rc = s_replay_request(self, instance, first, last, s_snapshot_item, snap, &got, timeout_ms);
    if (rc >= 0)
        rc = snap->delivered;
    if (end)
        *end = got;
    free(snap);
    return rc;
}

//  Returns the last snapshot's seq for the instance, or 0.
uint64_t hvn_subscriber_snapshot_seq(hvn_subscriber_t *self, const uint8_t instance[16])
{
    assert(self && instance);
    s_publisher_t *pub = s_publisher(self, instance, false);
    return pub ? pub->snapshot_seq : 0;
}

//  Returns the last snapshot's broker_id, or "".
const char *hvn_subscriber_broker_id(hvn_subscriber_t *self)
{
    assert(self);
    return self->broker_id;
}

//  Returns the last snapshot's END (empty before one).
const hvn_end_t *hvn_subscriber_end(hvn_subscriber_t *self)
{
    assert(self);
    return &self->end;
}

// --------------------------------------------------------------------------
//  Broker stats

//  Returns a heap JSON text of a STATS body (an object of each row's name
//  to its number or text, keys sorted), or NULL when the body is refused
//  (logged) or out of memory.
static char *s_stats_json(hvn_subscriber_t *self, const void *data, size_t size)
{
    hvn_stats_t *table = hvn_stats_new();
    json_t *json = json_object();
    const char *detail = "body";
    hvn_reason_t reason = table ? hvn_stats_decode(table, data, size, &detail) : HVN_R_TOO_BIG;
    if (reason != HVN_OK)
        zsys_warning("subscriber: service '%s' sent a malformed STATS reply (%s: %s)",
                     self->service, hvn_reason_str(reason), detail);
    for (size_t i = 0; json && reason == HVN_OK && i < hvn_stats_size(table); i++) {
        const hvn_stat_t *row = hvn_stats_at(table, i);
        json_t *value = row->type == HVN_STAT_TEXT ? json_string(row->text)
                        : row->type == HVN_STAT_INT ? json_integer((json_int_t)row->sint)
                        : row->uint > INT64_MAX     ? json_real((double)row->uint)
                                                    : json_integer((json_int_t)row->uint);
        if (json_object_set_new(json, row->name, value) != 0) {
            json_decref(json);
            json = NULL;
        }
    }
    char *text = json && reason == HVN_OK ? json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(json);
    hvn_stats_destroy(&table);
    return text;
}

//  Returns the broker's counters as heap JSON text, or NULL.
char *hvn_subscriber_stats_request(hvn_subscriber_t *self, int timeout_ms)
{
    assert(self);
    s_service_t svc;
    if (s_service_open(self, &svc) != 0)
        return NULL;
    char *text = NULL;
    if (zsock_send(svc.dealer, "s", HVN_SERVICE_STATS) == 0) {
        zmq_msg_t parts[2];
        int count = s_service_recv(self, &svc, parts, 2, timeout_ms);
        if (count > 0) {
            bool stats = count == 2 && s_frame_is(&parts[0], HVN_SERVICE_STATS);
            if (stats)
                text = s_stats_json(self, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]));
            if (s_frame_is(&parts[0], HVN_SERVICE_ERROR))
                s_service_error(self, parts, count);
            else if (!stats)
                zsys_warning("subscriber: service '%s' sent a malformed STATS reply",
                             self->service);
            s_close_parts(parts, count < 2 ? count : 2);
        }
    }
    s_service_done(self, &svc, text != NULL);
    return text;
}
