/*  hvn_redial.c — a client socket's endpoints dialled again after a refused
    handshake.

    The idea it rests on: libzmq's monitor names the endpoint of every
    handshake event as the socket was told to connect it, so the endpoint
    can be disconnected and connected again under that name.

    The disconnect comes at once, when the refusal is read, and the connect
    when the wait is over. libzmq 4.3 keeps a refused endpoint's entry, with
    a pointer to its ended (freed) session, until zmq_disconnect removes
    it, and zmq_disconnect ends the session at that address if the socket
    owns one. Removed at once, before this socket connects anything again,
    the pointer cannot have been reused by a new session of the socket, so
    the disconnect never ends another endpoint's live connection. A name
    the socket does not know is logged and never connected a second time.
*/
#include "hvn_redial.h"

#include "hvn_ids.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_LOG_MS 1000 //  At most one refusal line a second

//  The handshake failures that end a connection for good: the ZAP handler
//  refused the key (AUTH), or the peers disagree on the mechanism or break
//  ZMTP (PROTOCOL). A failure without detail (the connection broke during
//  the handshake) is retried by libzmq, like any broken connection.
#define S_FAILED_EVENTS (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

//  One endpoint whose last handshake failed
typedef struct {
    int64_t wait_ms;   //  Upper bound of the next wait
    int64_t due_ms;    //  Monotonic ms of the next redial; 0 = none pending
    uint64_t failures; //  Failed handshakes in a row
    bool lost;         //  The disconnect did not find it: not redialled
} s_endpoint_t;

struct _hvn_redial_t {
    void *handle;             //  The monitored libzmq socket
    zsock_t *monitor;         //  PAIR reading its events
    const char *who;          //  Log prefix
    bool redial;              //  Dial refused endpoints again (else only count)
    zhashx_t *endpoints;      //  Endpoint text -> s_endpoint_t
    hvn_redial_stats_t stats; //  Counters (refusing: computed)
    int64_t logged_ms;        //  Monotonic ms of the last refusal line
    uint64_t unlogged;        //  Refusals since then not logged
};

// --------------------------------------------------------------------------
//  Backoff

//  Returns a number drawn at random from low to high, both included.
static int64_t s_draw(int64_t low, int64_t high)
{
    uint8_t random[16];
    hvn_uuid4_raw(random); //  From the process's pool of random bytes
    uint32_t r;
    memcpy(&r, random, sizeof(r));
    return low + (int64_t)(r % (uint32_t)(high - low + 1));
}

//  Returns a wait drawn between half of bound_ms and all of it.
static int64_t s_jitter(int64_t bound_ms)
{
    return s_draw(bound_ms / 2, bound_ms);
}

int hvn_redial_reconnect_ivl(void)
{
    return (int)s_draw(HVN_RECONNECT_IVL_MIN_MS, HVN_RECONNECT_IVL_MAX_MS);
}

//  Returns nothing; ep's redial is set for later, and its next wait doubled.
static void s_schedule(s_endpoint_t *ep, int64_t now)
{
    if (ep->due_ms || ep->lost)
        return; //  One redial pending is enough
    ep->due_ms = now + s_jitter(ep->wait_ms);
    ep->wait_ms = ep->wait_ms * 2 > HVN_REDIAL_MAX_MS ? HVN_REDIAL_MAX_MS : ep->wait_ms * 2;
}

// --------------------------------------------------------------------------
//  Events

//  Returns nothing; one failed handshake on endpoint is counted, logged
//  (rate-limited) and its redial set.
static void s_failed(hvn_redial_t *self, const char *endpoint, uint16_t event, uint32_t value)
{
    s_endpoint_t *ep = zhashx_lookup(self->endpoints, endpoint);
    if (!ep) {
        ep = calloc(1, sizeof(*ep));
        assert(ep);
        ep->wait_ms = HVN_REDIAL_FIRST_MS;
        zhashx_insert(self->endpoints, endpoint, ep);
    }
    int64_t now = zclock_mono();
    ep->failures++;
    self->stats.denials++;
    if (self->redial && !ep->lost && zmq_disconnect(self->handle, endpoint) != 0 &&
        errno == ENOENT) {
        zsys_error("%s: '%s' is not a name this socket was connected with: cannot dial it again "
                   "(restart to reconnect it)",
                   self->who, endpoint);
        ep->lost = true;
    }
    if (self->redial)
        s_schedule(ep, now);
    if (now - self->logged_ms < S_LOG_MS && self->logged_ms) {
        self->unlogged++;
        return;
    }
    char next[64] = "";
    if (ep->due_ms)
        snprintf(next, sizeof(next), ", dialling again in %" PRId64 " ms", ep->due_ms - now);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        zsys_warning("%s: '%s' refused the handshake (ZAP status %" PRIu32
                     ": this key is not installed at the broker?); %" PRIu64 " in a row%s (%" PRIu64
                     " refusals not logged since the last line)",
                     self->who, endpoint, value, ep->failures, next, self->unlogged);
    else
        zsys_warning("%s: handshake with '%s' failed (libzmq protocol error 0x%" PRIx32
                     ": CURVE on one side only?); %" PRIu64 " in a row%s (%" PRIu64
                     " refusals not logged since the last line)",
                     self->who, endpoint, value, ep->failures, next, self->unlogged);
    self->logged_ms = now;
    self->unlogged = 0;
}

//  Returns nothing; a handshake that succeeded on endpoint ends its backoff.
static void s_succeeded(hvn_redial_t *self, const char *endpoint)
{
    s_endpoint_t *ep = zhashx_lookup(self->endpoints, endpoint);
    if (!ep)
        return;
    zsys_info("%s: '%s' accepted the handshake after %" PRIu64 " refusal(s)", self->who, endpoint,
              ep->failures);
    zhashx_delete(self->endpoints, endpoint);
}

//  Returns 1 after handling one waiting event, 0 when none was waiting.
static int s_event(hvn_redial_t *self)
{
    void *handle = zsock_resolve(self->monitor);
    zmq_msg_t head;
    zmq_msg_init(&head);
    if (zmq_msg_recv(&head, handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&head);
        return 0;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&head) == 6) {
        memcpy(&event, zmq_msg_data(&head), 2);
        memcpy(&value, (const uint8_t *)zmq_msg_data(&head) + 2, 4);
    }
    char endpoint[256] = "";
    bool whole = true; //  The endpoint frame fitted
    if (zmq_msg_more(&head)) {
        zmq_msg_t text;
        zmq_msg_init(&text);
        if (zmq_msg_recv(&text, handle, 0) >= 0) {
            size_t size = zmq_msg_size(&text);
            whole = size < sizeof(endpoint);
            if (whole)
                memcpy(endpoint, zmq_msg_data(&text), size);
        }
        //  The monitor sends two frames; more would be a libzmq change
        while (zmq_msg_more(&text) && zmq_msg_recv(&text, handle, 0) >= 0)
            ;
        zmq_msg_close(&text);
    }
    zmq_msg_close(&head);
    if (!*endpoint || !whole)
        return 1;
    if (event & S_FAILED_EVENTS)
        s_failed(self, endpoint, event, value);
    else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        s_succeeded(self, endpoint);
    return 1;
}

// --------------------------------------------------------------------------
//  Redials

//  Returns nothing; endpoint, disconnected when its refusal was read, is
//  connected again (or marked lost, logged, when it cannot be).
static void s_redial(hvn_redial_t *self, const char *endpoint, s_endpoint_t *ep)
{
    //  Connected again meanwhile by the socket's owner (the publisher's
    //  reconnect after a stall): that connection goes, or there would be two
    zmq_disconnect(self->handle, endpoint);
    if (zmq_connect(self->handle, endpoint) != 0) {
        zsys_error("%s: cannot connect again to '%s': %s", self->who, endpoint,
                   zmq_strerror(errno));
        ep->lost = true;
        return;
    }
    self->stats.redials++;
}

int hvn_redial_tend(hvn_redial_t *self)
{
    assert(self);
    //  Every waiting event first: a refused endpoint is disconnected
    //  before anything is connected (see the top of this file)
    while (s_event(self))
        ;
    int64_t now = zclock_mono();
    int64_t next = -1;
    for (s_endpoint_t *ep = zhashx_first(self->endpoints); ep; ep = zhashx_next(self->endpoints)) {
        if (!ep->due_ms)
            continue;
        if (ep->due_ms <= now) {
            ep->due_ms = 0;
            s_redial(self, zhashx_cursor(self->endpoints), ep);
        } else if (next < 0 || ep->due_ms - now < next)
            next = ep->due_ms - now;
    }
    return next > INT32_MAX ? INT32_MAX : (int)next;
}

// --------------------------------------------------------------------------
//  Construction

//  Returns nothing; frees an endpoint entry (zhashx destructor).
static void s_endpoint_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

hvn_redial_t *hvn_redial_new(void *sock, const char *who, bool redial)
{
    assert(sock && who);
    static atomic_uint_fast64_t counter;
    hvn_redial_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->handle = zsock_resolve(sock);
    self->who = who;
    self->redial = redial;
    self->endpoints = zhashx_new();
    self->monitor = zsock_new(ZMQ_PAIR);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "inproc://hvn-redial-%" PRIuFAST64,
             atomic_fetch_add(&counter, 1));
    int monitoring = -1;
    if (self->monitor) {
        //  libzmq's I/O thread blocks on a full monitor pipe: never let it
        //  fill (events are a few bytes, one per handshake)
        zsock_set_rcvhwm(self->monitor, 0);
        monitoring = zmq_socket_monitor(self->handle, endpoint,
                                        S_FAILED_EVENTS | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    }
    if (!self->endpoints || monitoring != 0 || zsock_connect(self->monitor, "%s", endpoint) != 0) {
        zsys_error("%s: cannot monitor the socket's handshakes: %s", who,
                   zmq_strerror(zmq_errno()));
        if (monitoring == 0)
            zmq_socket_monitor(self->handle, NULL, 0);
        zhashx_destroy(&self->endpoints);
        zsock_destroy(&self->monitor);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->endpoints, s_endpoint_free);
    return self;
}

void hvn_redial_destroy(hvn_redial_t **self_p)
{
    assert(self_p);
    hvn_redial_t *self = *self_p;
    if (!self)
        return;
    //  The events already waiting are read first, without a redial: a
    //  handshake that let the socket in just before its owner stopped still
    //  gets its log line
    self->redial = false;
    while (s_event(self))
        ;
    zmq_socket_monitor(self->handle, NULL, 0);
    zsock_destroy(&self->monitor);
    zhashx_destroy(&self->endpoints);
    free(self);
    *self_p = NULL;
}

zsock_t *hvn_redial_monitor(hvn_redial_t *self)
{
    assert(self);
    return self->monitor;
}

void hvn_redial_stats(hvn_redial_t *self, hvn_redial_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    out->refusing = zhashx_size(self->endpoints);
}
