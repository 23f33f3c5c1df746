/*  hvn_bridge.c — the RabbitMQ side of hvn-bridge (see hvn_bridge.h).

    The one idea: a ring of bodies in arrival order. The first `sent` of
    them have been published on the current connection, with delivery tags
    that follow each other (a confirm-mode channel numbers its publishes
    1, 2, 3, ...), so the body of a tag is found by subtraction. A confirm
    pops bodies from the head; a lost connection sets `sent` back to zero,
    and the next connection publishes the ring again from its head.
*/
#include "hvn_bridge.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define S_CHANNEL 1         //  The one channel
#define S_FRAME_MAX 131072  //  AMQP frame size asked for
#define S_LATENCIES 65536   //  Recent latencies kept (a power of two)
#define S_LOG_MS 1000       //  Drops are logged at most this often
#define S_SEND_TIMEOUT_S 10 //  A send blocked this long is a lost connection

//  One body waiting for its confirm
typedef struct {
    char *body;           //  The message body (owned)
    size_t size;          //  Its length
    uint64_t tag;         //  Delivery tag on this connection; 0 = not published on it
    int64_t since_us;     //  Monotonic µs when pushed
    bool resend;          //  Published before on an earlier connection, or nacked
    bool done;            //  Confirmed out of order; popped when it reaches the head
    uint8_t instance[16]; //  Publisher instance of the notification (or zeros)
    uint64_t seq;         //  Its seq (0 = not given)
} s_entry_t;

struct _hvn_bridge_t {
    const hvn_amqp_url_t *url; //  Where RabbitMQ is (borrowed)
    char *exchange;            //  Exchange name
    char *routing_key;         //  Routing key, and the default queue's name
    bool durable;              //  Exchange and queue durable
    size_t window;             //  Unconfirmed at most
    int heartbeat_s;           //  AMQP heartbeat, 0 = none
    int connect_timeout_ms;    //  Bound on each step of a connect
    int retry_min_ms;          //  Backoff bounds
    int retry_max_ms;
    s_entry_t *ring;              //  max_pending entries
    size_t capacity;              //  max_pending
    size_t head;                  //  Index of the oldest entry
    size_t count;                 //  Entries queued
    size_t sent;                  //  Entries from the head published on this connection
    uint64_t last_tag;            //  Last delivery tag used on this connection
    amqp_connection_state_t conn; //  NULL when not connected
    bool connected;               //  conn is set up and declared
    bool ever_connected;          //  A connection was made once
    bool blocked;                 //  connection.blocked in force
    size_t host_next;             //  Host of the URL to try next
    size_t round_failures;        //  Failed attempts in this round of hosts
    int backoff_ms;               //  Next backoff, before jitter
    int64_t retry_at;             //  Monotonic ms of the next attempt
    int64_t paused_until;         //  Monotonic ms: no publishing before (after a nack)
    int64_t drop_logged_ms;       //  Last drop log line
    uint64_t drops_unlogged;      //  Drops since
    uint32_t *latencies;          //  Ring of recent push → confirm µs
    uint64_t latency_count;       //  Latencies recorded in all
    hvn_bridge_stats_t stats;     //  Counters
};

// --------------------------------------------------------------------------
//  The ring

//  Returns the entry i places after the head.
static s_entry_t *s_at(hvn_bridge_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->capacity];
}

//  Returns nothing; frees the head entry's body and removes it.
static void s_pop(hvn_bridge_t *self)
{
    s_entry_t *entry = s_at(self, 0);
    free(entry->body);
    memset(entry, 0, sizeof(*entry));
    self->head = (self->head + 1) % self->capacity;
    self->count--;
    if (self->sent)
        self->sent--;
}

//  Returns nothing; records one confirm's latency.
static void s_latency(hvn_bridge_t *self, const s_entry_t *entry, int64_t now_us)
{
    int64_t us = now_us - entry->since_us;
    self->latencies[self->latency_count++ & (S_LATENCIES - 1)] = us < 0            ? 0
                                                                 : us > UINT32_MAX ? UINT32_MAX
                                                                                   : (uint32_t)us;
}

//  Returns the number of bodies confirmed: pops every confirmed entry at
//  the head.
static size_t s_pop_done(hvn_bridge_t *self)
{
    size_t popped = 0;
    while (self->count && s_at(self, 0)->done) {
        s_pop(self);
        popped++;
    }
    return popped;
}

//  Returns nothing; appends an entry (body, size, since_us, resend and
//  origin taken from it) at the tail, dropping the head first when the
//  ring is full (counted, logged at most once a second).
static void s_append(hvn_bridge_t *self, const s_entry_t *from)
{
    if (self->count == self->capacity) {
        s_pop(self);
        self->stats.dropped++;
        self->drops_unlogged++;
        int64_t now = zclock_mono();
        if (now - self->drop_logged_ms >= S_LOG_MS) {
            zsys_warning("bridge: %" PRIu64 " notifications kept unconfirmed (--max-pending): "
                         "dropped the oldest %" PRIu64 " (%" PRIu64 " dropped in all)",
                         (uint64_t)self->capacity, self->drops_unlogged, self->stats.dropped);
            self->drop_logged_ms = now;
            self->drops_unlogged = 0;
        }
    }
    s_entry_t *entry = s_at(self, self->count++);
    *entry = (s_entry_t){.body = from->body,
                         .size = from->size,
                         .since_us = from->since_us,
                         .resend = from->resend,
                         .seq = from->seq};
    memcpy(entry->instance, from->instance, 16);
}

// --------------------------------------------------------------------------
//  Confirms

//  Returns the entry of a delivery tag published on this connection, or
//  NULL (an entry dropped since, or a tag RabbitMQ should not have sent).
static s_entry_t *s_entry_of(hvn_bridge_t *self, uint64_t tag)
{
    if (self->sent == 0)
        return NULL;
    uint64_t first = s_at(self, 0)->tag;
    if (tag < first || tag - first >= self->sent)
        return NULL;
    return s_at(self, (size_t)(tag - first));
}

//  Returns the number of bodies confirmed by a basic.ack.
static size_t s_handle_ack(hvn_bridge_t *self, uint64_t tag, bool multiple)
{
    int64_t now_us = zclock_usecs();
    size_t confirmed = 0;
    if (multiple) {
        for (size_t i = 0; i < self->sent; i++) {
            s_entry_t *entry = s_at(self, i);
            if (entry->tag > tag)
                break;
            if (!entry->done) {
                entry->done = true;
                s_latency(self, entry, now_us);
                confirmed++;
            }
        }
    } else {
        s_entry_t *entry = s_entry_of(self, tag);
        if (entry && !entry->done) {
            entry->done = true;
            s_latency(self, entry, now_us);
            confirmed++;
        }
    }
    self->stats.confirmed += confirmed;
    s_pop_done(self);
    return confirmed;
}

//  Returns nothing; a basic.nack: RabbitMQ could not take these bodies.
//  Each goes to the tail to be published again, after a pause.
static void s_handle_nack(hvn_bridge_t *self, uint64_t tag, bool multiple)
{
    s_entry_t *again = calloc(self->sent ? self->sent : 1, sizeof(*again));
    if (!again) {
        zsys_error("bridge: out of memory");
        return;
    }
    size_t nacked = 0;
    for (size_t i = 0; i < self->sent; i++) {
        s_entry_t *entry = s_at(self, i);
        if (entry->tag > tag)
            break;
        if (entry->done || (!multiple && entry->tag != tag))
            continue;
        again[nacked++] = *entry;
        entry->done = true;
        entry->body = NULL;
    }
    self->stats.nacked += nacked;
    s_pop_done(self);
    //  Appended after the loop: appending may drop the head, which moves
    //  the entries the loop walks
    for (size_t i = 0; i < nacked; i++) {
        again[i].resend = true;
        s_append(self, &again[i]);
    }
    free(again);
    zsys_warning("bridge: RabbitMQ refused %zu notifications (basic.nack); publishing them again "
                 "in %d ms",
                 nacked, self->retry_min_ms);
    self->paused_until = zclock_mono() + self->retry_min_ms;
}

// --------------------------------------------------------------------------
//  Connection

//  Returns nothing; the connection is gone: unconfirmed bodies will be
//  published again on the next one, which is attempted at once (the next
//  host) or after a backoff.
static void s_drop_connection(hvn_bridge_t *self, bool was_connected)
{
    if (self->conn)
        amqp_destroy_connection(self->conn);
    self->conn = NULL;
    self->connected = false;
    self->blocked = false;
    self->sent = 0;
    self->last_tag = 0;
    //  Bodies confirmed out of order stay confirmed; the rest lose their tags
    size_t kept = 0;
    for (size_t i = 0; i < self->count; i++) {
        s_entry_t *entry = s_at(self, i);
        if (entry->done) {
            free(entry->body);
            continue;
        }
        if (entry->tag)
            entry->resend = true;
        entry->tag = 0;
        *s_at(self, kept++) = *entry;
    }
    for (size_t i = kept; i < self->count; i++)
        memset(s_at(self, i), 0, sizeof(s_entry_t));
    self->count = kept;
    if (was_connected) {
        self->stats.lost++;
        self->round_failures = 0;
        self->backoff_ms = self->retry_min_ms;
        self->retry_at = zclock_mono();
    }
}

//  Returns nothing; after a failed attempt, moves to the next host and
//  waits a jittered backoff once every host of the round has failed.
static void s_schedule_retry(hvn_bridge_t *self)
{
    self->stats.failures++;
    self->host_next = (self->host_next + 1) % self->url->host_count;
    self->round_failures++;
    int64_t now = zclock_mono();
    if (self->round_failures < self->url->host_count) {
        self->retry_at = now;
        return;
    }
    self->round_failures = 0;
    //  Jitter: between half and all of the backoff, so that many bridges
    //  restarted together do not reconnect in step
    int wait_ms = self->backoff_ms / 2 + (int)(random() % (self->backoff_ms / 2 + 1));
    self->retry_at = now + wait_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > self->retry_max_ms ? self->retry_max_ms : self->backoff_ms * 2;
}

//  Returns a static description of an RPC reply that is not normal.
static const char *s_reply_text(amqp_rpc_reply_t reply, char *buf, size_t size)
{
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NONE:
        return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = reply.reply.decoded;
            snprintf(buf, size, "RabbitMQ closed the connection: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = reply.reply.decoded;
            snprintf(buf, size, "RabbitMQ closed the channel: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else
            snprintf(buf, size, "unexpected method 0x%08x", reply.reply.id);
        return buf;
    default:
        return "normal";
    }
}

//  Returns 0 when the last RPC succeeded, or -1 after logging what failed.
static int s_check_rpc(hvn_bridge_t *self, const hvn_amqp_host_t *host, const char *what)
{
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(self->conn);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char buf[512];
    zsys_error("bridge: %s:%d: %s: %s", host->host, host->port, what,
               s_reply_text(reply, buf, sizeof(buf)));
    return -1;
}

//  Returns 0 after logging in, or -1 (logged). Asks for connection.blocked
//  notices, and for a connection.close rather than a silent close when the
//  login is refused, so the log can say so.
static int s_login(hvn_bridge_t *self, const hvn_amqp_host_t *host)
{
    amqp_table_entry_t caps[] = {
        {amqp_cstring_bytes("connection.blocked"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("authentication_failure_close"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
    };
    amqp_table_entry_t props[] = {
        {amqp_cstring_bytes("capabilities"),
         {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {2, caps}}},
        {amqp_cstring_bytes("connection_name"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("hvn-bridge")}},
    };
    amqp_table_t table = {2, props};
    amqp_rpc_reply_t reply =
        amqp_login_with_properties(self->conn, self->url->vhost, 0, S_FRAME_MAX, self->heartbeat_s,
                                   &table, AMQP_SASL_METHOD_PLAIN, host->user, host->password);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char buf[512];
    zsys_error("bridge: %s:%d: login as '%s' on virtual host '%s' refused: %s", host->host,
               host->port, host->user, self->url->vhost, s_reply_text(reply, buf, sizeof(buf)));
    return -1;
}

//  Returns 0 after declaring the exchange, the default queue and their
//  binding, as oslo.messaging's notifier does, or -1 (logged).
static int s_declare(hvn_bridge_t *self, const hvn_amqp_host_t *host)
{
    amqp_bytes_t exchange = amqp_cstring_bytes(self->exchange);
    amqp_bytes_t key = amqp_cstring_bytes(self->routing_key);
    amqp_exchange_declare(self->conn, S_CHANNEL, exchange, amqp_cstring_bytes("topic"), 0,
                          self->durable, 0, 0, amqp_empty_table);
    if (s_check_rpc(self, host, "declaring the exchange") != 0) {
        zsys_error("bridge: an exchange '%s' declared %s by its consumers needs %s", self->exchange,
                   self->durable ? "not durable" : "durable",
                   self->durable ? "no --durable" : "--durable");
        return -1;
    }
    amqp_queue_declare(self->conn, S_CHANNEL, key, 0, self->durable, 0, 0, amqp_empty_table);
    if (s_check_rpc(self, host, "declaring the default queue") != 0)
        return -1;
    amqp_queue_bind(self->conn, S_CHANNEL, key, exchange, key, amqp_empty_table);
    return s_check_rpc(self, host, "binding the default queue");
}

//  Returns 0 when connected to host, the channel in confirm mode and the
//  declarations made; -1 (logged) otherwise.
static int s_connect_to(hvn_bridge_t *self, const hvn_amqp_host_t *host)
{
    self->conn = amqp_new_connection();
    amqp_socket_t *socket = self->conn ? amqp_tcp_socket_new(self->conn) : NULL;
    if (!socket) {
        zsys_error("bridge: out of memory");
        return -1;
    }
    struct timeval timeout = {self->connect_timeout_ms / 1000,
                              (self->connect_timeout_ms % 1000) * 1000};
    amqp_set_handshake_timeout(self->conn, &timeout);
    amqp_set_rpc_timeout(self->conn, &timeout);
    int rc = amqp_socket_open_noblock(socket, host->host, host->port, &timeout);
    if (rc != AMQP_STATUS_OK) {
        zsys_error("bridge: cannot connect to %s:%d: %s", host->host, host->port,
                   amqp_error_string2(rc));
        return -1;
    }
    if (s_login(self, host) != 0)
        return -1;
    amqp_channel_open(self->conn, S_CHANNEL);
    if (s_check_rpc(self, host, "opening a channel") != 0)
        return -1;
    amqp_confirm_select(self->conn, S_CHANNEL);
    if (s_check_rpc(self, host, "confirm.select") != 0)
        return -1;
    if (s_declare(self, host) != 0)
        return -1;
    //  A send that RabbitMQ does not read for this long (it stopped reading
    //  when blocked, or the host is gone) fails instead of hanging
    struct timeval send_timeout = {S_SEND_TIMEOUT_S, 0};
    setsockopt(amqp_get_sockfd(self->conn), SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
               sizeof(send_timeout));
    return 0;
}

//  Returns nothing; makes one connection attempt, to the next host.
static void s_connect(hvn_bridge_t *self)
{
    const hvn_amqp_host_t *host = &self->url->hosts[self->host_next];
    if (s_connect_to(self, host) != 0) {
        s_drop_connection(self, false);
        s_schedule_retry(self);
        return;
    }
    self->connected = true;
    self->stats.connects++;
    if (self->ever_connected)
        self->stats.reconnects++;
    self->ever_connected = true;
    self->round_failures = 0;
    self->backoff_ms = self->retry_min_ms;
    zsys_info("bridge: connected to %s:%d, virtual host '%s': exchange '%s'%s, routing key '%s'; "
              "%zu notifications to publish",
              host->host, host->port, self->url->vhost, self->exchange,
              self->durable ? " (durable)" : "", self->routing_key, self->count);
}

// --------------------------------------------------------------------------
//  Publishing and reading

//  Returns nothing; publishes queued bodies while the window allows.
static void s_publish(hvn_bridge_t *self)
{
    if (self->blocked || zclock_mono() < self->paused_until)
        return;
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_CONTENT_ENCODING_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .content_encoding = amqp_cstring_bytes("utf-8"),
                                     .delivery_mode = 2};
    amqp_bytes_t exchange = amqp_cstring_bytes(self->exchange);
    amqp_bytes_t key = amqp_cstring_bytes(self->routing_key);
    while (self->connected && self->sent < self->count && self->sent < self->window) {
        s_entry_t *entry = s_at(self, self->sent);
        amqp_bytes_t body = {entry->size, entry->body};
        int rc = amqp_basic_publish(self->conn, S_CHANNEL, exchange, key, 0, 0, &props, body);
        if (rc != AMQP_STATUS_OK) {
            zsys_error("bridge: publishing failed: %s; reconnecting", amqp_error_string2(rc));
            s_drop_connection(self, true);
            return;
        }
        entry->tag = ++self->last_tag;
        self->sent++;
        self->stats.published++;
        if (entry->resend)
            self->stats.resent++;
    }
}

//  Returns nothing; answers a close from RabbitMQ and drops the connection.
static void s_handle_close(hvn_bridge_t *self, const amqp_frame_t *frame)
{
    amqp_bytes_t text = {0, NULL};
    unsigned code = 0;
    if (frame->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = frame->payload.method.decoded;
        code = m->reply_code;
        text = m->reply_text;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(self->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else {
        amqp_channel_close_t *m = frame->payload.method.decoded;
        code = m->reply_code;
        text = m->reply_text;
    }
    zsys_warning("bridge: RabbitMQ closed the %s: %u %.*s; reconnecting",
                 frame->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ? "connection"
                                                                          : "channel",
                 code, (int)text.len, (char *)text.bytes);
    s_drop_connection(self, true);
}

//  Returns the number of bodies confirmed by one frame; handles the others.
static size_t s_handle_frame(hvn_bridge_t *self, const amqp_frame_t *frame)
{
    if (frame->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (frame->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *m = frame->payload.method.decoded;
        return s_handle_ack(self, m->delivery_tag, m->multiple);
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *m = frame->payload.method.decoded;
        s_handle_nack(self, m->delivery_tag, m->multiple);
        return 0;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        amqp_connection_blocked_t *m = frame->payload.method.decoded;
        self->blocked = true;
        self->stats.blocked++;
        zsys_warning("bridge: RabbitMQ blocked publishing (%.*s); notifications wait",
                     (int)m->reason.len, (char *)m->reason.bytes);
        return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        self->blocked = false;
        zsys_info("bridge: RabbitMQ unblocked publishing; %zu notifications to publish",
                  self->count - self->sent);
        return 0;
    case AMQP_CONNECTION_CLOSE_METHOD:
    case AMQP_CHANNEL_CLOSE_METHOD:
        s_handle_close(self, frame);
        return 0;
    default:
        return 0;
    }
}

//  Returns the number of bodies confirmed by the frames that arrive within
//  timeout_ms (the first one waited for, the rest read while they last).
static size_t s_read(hvn_bridge_t *self, int timeout_ms)
{
    size_t confirmed = 0;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    while (self->connected) {
        amqp_frame_t frame;
        int rc = amqp_simple_wait_frame_noblock(self->conn, &frame, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            zsys_warning("bridge: connection lost: %s; reconnecting", amqp_error_string2(rc));
            s_drop_connection(self, true);
            break;
        }
        confirmed += s_handle_frame(self, &frame);
        if (self->conn)
            amqp_maybe_release_buffers(self->conn);
        tv = (struct timeval){0, 0};
    }
    return confirmed;
}

// --------------------------------------------------------------------------
//  API

hvn_bridge_t *hvn_bridge_new(const hvn_bridge_opts_t *opts)
{
    assert(opts);
    if (!opts->url || opts->url->host_count == 0 || !opts->exchange || !opts->routing_key) {
        zsys_error("bridge: a URL, an exchange and a routing key are required");
        return NULL;
    }
    hvn_bridge_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->url = opts->url;
    self->durable = opts->durable;
    self->capacity = opts->max_pending ? opts->max_pending : 100000;
    self->window = opts->window ? opts->window : 1000;
    self->heartbeat_s = opts->heartbeat_s < 0 ? 0 : opts->heartbeat_s ? opts->heartbeat_s : 10;
    self->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
    self->retry_min_ms = opts->retry_min_ms > 0 ? opts->retry_min_ms : 200;
    self->retry_max_ms = opts->retry_max_ms > 0 ? opts->retry_max_ms : 5000;
    if (self->retry_max_ms < self->retry_min_ms)
        self->retry_max_ms = self->retry_min_ms;
    self->backoff_ms = self->retry_min_ms;
    self->exchange = strdup(opts->exchange);
    self->routing_key = strdup(opts->routing_key);
    self->ring = calloc(self->capacity, sizeof(*self->ring));
    self->latencies = calloc(S_LATENCIES, sizeof(*self->latencies));
    if (!self->exchange || !self->routing_key || !self->ring || !self->latencies) {
        zsys_error("bridge: out of memory");
        hvn_bridge_destroy(&self);
        return NULL;
    }
    srandom((unsigned)(zclock_usecs() ^ getpid()));
    return self;
}

void hvn_bridge_destroy(hvn_bridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hvn_bridge_t *self = *self_p;
    if (self->conn && self->connected) {
        amqp_channel_close(self->conn, S_CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(self->conn, AMQP_REPLY_SUCCESS);
    }
    if (self->conn)
        amqp_destroy_connection(self->conn);
    if (self->ring)
        while (self->count)
            s_pop(self);
    free(self->ring);
    free(self->latencies);
    free(self->exchange);
    free(self->routing_key);
    free(self);
    *self_p = NULL;
}

int hvn_bridge_push(hvn_bridge_t *self, char **body_p, size_t size)
{
    static const uint8_t none[16] = {0};
    return hvn_bridge_push_from(self, body_p, size, none, 0);
}

int hvn_bridge_push_from(hvn_bridge_t *self, char **body_p, size_t size, const uint8_t instance[16],
                         uint64_t seq)
{
    assert(self && body_p && *body_p && instance);
    uint64_t dropped = self->stats.dropped;
    s_entry_t entry = {.body = *body_p, .size = size, .since_us = zclock_usecs(), .seq = seq};
    memcpy(entry.instance, instance, 16);
    s_append(self, &entry);
    *body_p = NULL;
    self->stats.received++;
    return self->stats.dropped > dropped ? 1 : 0;
}

size_t hvn_bridge_unconfirmed(hvn_bridge_t *self, hvn_bridge_origin_fn *fn, void *arg)
{
    assert(self && fn);
    size_t calls = 0;
    for (size_t i = 0; i < self->count; i++) {
        const s_entry_t *entry = s_at(self, i);
        if (!entry->done) {
            fn(entry->instance, entry->seq, arg);
            calls++;
        }
    }
    return calls;
}

size_t hvn_bridge_pump(hvn_bridge_t *self, int timeout_ms)
{
    assert(self);
    if (!self->connected && zclock_mono() >= self->retry_at)
        s_connect(self);
    if (!self->connected)
        return 0;
    s_publish(self);
    size_t confirmed = s_read(self, timeout_ms < 0 ? 0 : timeout_ms);
    s_publish(self);
    return confirmed;
}

size_t hvn_bridge_pending(hvn_bridge_t *self)
{
    assert(self);
    return self->count;
}

bool hvn_bridge_connected(hvn_bridge_t *self)
{
    assert(self);
    return self->connected;
}

bool hvn_bridge_busy(hvn_bridge_t *self)
{
    assert(self);
    return self->connected && self->count > 0;
}

//  Orders two latencies.
static int s_u32_compare(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void hvn_bridge_stats(hvn_bridge_t *self, hvn_bridge_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    out->pending = self->count;
    out->connected = self->connected ? 1 : 0;
    out->blocked_now = self->connected && self->blocked ? 1 : 0;
    size_t n = self->latency_count < S_LATENCIES ? (size_t)self->latency_count : S_LATENCIES;
    uint32_t *sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
    if (sorted) {
        memcpy(sorted, self->latencies, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), s_u32_compare);
        out->latency_p50_us = sorted[(n - 1) / 2];
        out->latency_p99_us = sorted[(n - 1) * 99 / 100];
        out->latency_max_us = sorted[n - 1];
        free(sorted);
    }
}
