/*  hvn_subscriber.c — the client library: a validating SUB on the broker's
    backend, and the Clone pattern's snapshot on a DEALER to its service.

    The one idea: nothing reaches the caller that the decoder has not
    validated, and nothing is lost silently. Bad messages are counted by
    reason; per publisher instance the last seq is kept, so a drop anywhere
    (a full HWM, a broker restart, a late subscription) shows up as a gap
    and the caller knows to snapshot again.
*/
#include "hvn_subscriber.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define S_RCVHWM 100000                   //  Messages queued per pipe before libzmq drops
#define S_PRUNE_EVERY_MS (60 * 1000)      //  How often idle publishers are forgotten
#define S_PRUNE_IDLE_MS (3600 * 1000)     //  Silence after which a publisher is forgotten
#define S_SNAPSHOT_FRAMES 4               //  ["ITEM", topic, header, body]
#define S_END_MAX_SIZE (64 * 1024 * 1024) //  Largest END body accepted, bytes

//  What we know of one publisher instance
typedef struct {
    uint64_t snapshot_seq; //  Seq named by the last snapshot's END; 0 = none
    uint64_t last_seq;     //  Highest seq seen from it (notification or heartbeat)
    bool seen;             //  last_seq is known
    int64_t last_ms;       //  Monotonic time of its last message
} s_publisher_t;

struct _hvn_subscriber_t {
    zsock_t *sub;                    //  SUB on the broker backend(s)
    char *service;                   //  Broker service endpoint, or NULL
    char *host;                      //  Exact host filter, or NULL
    char *curve_secret;              //  Client certificate file, or NULL
    char *curve_server;              //  Broker public certificate file, or NULL
    char **topics;                   //  Subscribed prefixes (copies)
    size_t topic_count;              //  Entries in topics
    bool track_gaps;                 //  A prefix covers every notification
    hvn_decoder_t *decoder;          //  Validates every message
    hvn_rejects_t rejects;           //  Refusals by reason, rate-limited logs
    zhashx_t *publishers;            //  Instance uuid text -> s_publisher_t
    int64_t pruned_ms;               //  Monotonic time of the last prune
    char broker_id[HVN_STR_MAX + 1]; //  From the last snapshot's END
    hvn_subscriber_stats_t stats;    //  Counters (skipped ones live in rejects)
};

// --------------------------------------------------------------------------
//  Small helpers

//  Returns nothing; frees a zhashx item and nulls the pointer.
static void s_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

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
    zcert_t *client = zcert_load(self->curve_secret);
    zcert_t *server = zcert_load(self->curve_server);
    int rc = -1;
    if (!client)
        zsys_error("subscriber: cannot load certificate '%s'", self->curve_secret);
    else if (!server)
        zsys_error("subscriber: cannot load broker certificate '%s'", self->curve_server);
    else {
        zcert_apply(client, sock);
        zsock_set_curve_serverkey(sock, zcert_public_txt(server));
        rc = 0;
    }
    zcert_destroy(&client);
    zcert_destroy(&server);
    return rc;
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

//  Waits up to timeout_ms (-1 = forever) for input on handle. Returns 1 when
//  input is waiting, 0 on timeout, -1 when interrupted or the context ended.
static int s_wait(void *handle, int timeout_ms)
{
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
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, wait_ms);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR || zsys_interrupted)
            return -1;
    }
}

//  Returns the tracked state of a publisher instance; when create is true a
//  new entry is made for an unknown one (NULL when out of memory), else NULL.
static s_publisher_t *s_publisher(hvn_subscriber_t *self, const uint8_t instance[16], bool create)
{
    char key[HVN_UUID_STR_LEN + 1];
    uuid_unparse_lower(instance, key);
    s_publisher_t *pub = zhashx_lookup(self->publishers, key);
    if (!pub && create) {
        pub = calloc(1, sizeof(*pub));
        if (pub && zhashx_insert(self->publishers, key, pub) != 0) {
            free(pub);
            pub = NULL;
        }
    }
    return pub;
}

//  Returns nothing; forgets publishers silent for S_PRUNE_IDLE_MS, at most
//  once every S_PRUNE_EVERY_MS, so restarts do not grow the table forever.
static void s_prune(hvn_subscriber_t *self, int64_t now)
{
    if (now - self->pruned_ms < S_PRUNE_EVERY_MS)
        return;
    self->pruned_ms = now;
    zlist_t *idle = zlist_new();
    if (!idle)
        return;
    zlist_autofree(idle);
    for (s_publisher_t *pub = zhashx_first(self->publishers); pub;
         pub = zhashx_next(self->publishers))
        if (now - pub->last_ms > S_PRUNE_IDLE_MS)
            zlist_append(idle, (void *)zhashx_cursor(self->publishers));
    for (char *key = zlist_first(idle); key; key = zlist_next(idle))
        zhashx_delete(self->publishers, key);
    zlist_destroy(&idle);
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
    zsock_set_rcvhwm(self->sub, S_RCVHWM);
    if (s_apply_curve(self, self->sub) != 0)
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
    self->publishers = zhashx_new();
    if (!self->decoder || !self->publishers || s_copy_opts(self, opts) != 0) {
        zsys_error("subscriber: out of memory");
        hvn_subscriber_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->publishers, s_free_item);
    self->pruned_ms = zclock_mono();
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
    zsock_destroy(&self->sub);
    hvn_decoder_destroy(&self->decoder);
    zhashx_destroy(&self->publishers);
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
        s_publisher_t *pub = s_publisher(self, h->instance, self->track_gaps);
        if (pub) {
            pub->last_ms = zclock_mono();
            if (notification && h->seq <= pub->snapshot_seq) {
                self->stats.stale++;
                return false;
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

//  Reads one waiting message. Returns 1 when it is valid and wanted (*msg
//  filled), 0 when it was skipped, 2 when nothing was waiting, -1 when
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
        if (reason != HVN_OK)
            hvn_rejects_add(&self->rejects, reason, hvn_decoder_detail(self->decoder),
                            msg->topic[0] ? msg->topic : NULL);
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
    s_prune(self, start);
    while (true) {
        if (zsys_interrupted)
            return -1;
        int rc = s_read_live(self, handle, msg);
        if (rc == 1) {
            self->stats.received++;
            return 1;
        }
        if (rc < 0)
            return -1;
        int64_t now = zclock_mono();
        if (deadline >= 0 && now >= deadline)
            return 0;
        if (rc == 2) {
            rc = s_wait(handle, deadline < 0 ? -1 : (int)(deadline - now));
            if (rc <= 0)
                return rc;
        }
    }
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
    out->publishers = zhashx_size(self->publishers);
}
