/*  hvn_bridge.h — notifications onto RabbitMQ, confirmed, nothing lost.

        hvn_bridge_opts_t opts = { .url = url, .exchange = "nova",
                                   .routing_key = "versioned_notifications.info" };
        hvn_bridge_t *bridge = hvn_bridge_new (&opts);
        hvn_bridge_push (bridge, &body, size);   //  for each notification
        hvn_bridge_pump (bridge, 10);            //  in the caller's loop
        hvn_bridge_destroy (&bridge);

    The RabbitMQ side of hvn-bridge, with rabbitmq-c. One connection, one
    channel in confirm mode (confirm.select). On every connection it declares
    what oslo.messaging's notifier declares: the topic exchange, the default
    queue named after the routing key, and the binding between them, so a
    notification published before any consumer exists waits in that queue.

    Every body pushed waits in a queue until RabbitMQ acknowledges it (a
    basic.ack, which for a persistent message on a durable queue means "on
    disk"). Up to opts.window bodies are unconfirmed at once: confirms are
    waited for in batches, never one round trip per message. When the
    connection is lost (closed by RabbitMQ, its restart, a refused login, a
    heartbeat timeout, a send that stays blocked), everything unconfirmed is
    sent again on the next connection: delivery is at least once. The queue
    is bounded by opts.max_pending; past it the oldest body is dropped,
    counted and logged. Reconnects go through the URL's hosts in turn, with
    a jittered backoff doubling up to opts.retry_max_ms after each round.

    A connection.blocked (RabbitMQ's memory or disk alarm) stops publishing
    until connection.unblocked; bodies keep queueing meanwhile.

    Threading: one bridge, one thread at a time. Nothing here sleeps except
    hvn_bridge_pump(), at most its timeout (a TCP connect, a login and the
    declarations are bounded by the connect timeout each).
*/
#ifndef HVN_BRIDGE_H_INCLUDED
#define HVN_BRIDGE_H_INCLUDED

#include "hvn_amqp_url.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const hvn_amqp_url_t *url; //  Where RabbitMQ is; required, must outlive the bridge
    const char *exchange;      //  Exchange name; required ("nova")
    const char *routing_key;   //  Routing key and default queue; required
    bool durable;              //  Exchange and default queue durable
    size_t max_pending;        //  Bodies kept until confirmed; 0 = 100 000
    size_t window;             //  Unconfirmed at once; 0 = 1000
    int heartbeat_s;           //  AMQP heartbeat; 0 = 10, -1 = none
    int connect_timeout_ms;    //  TCP connect, login, each declaration; 0 = 5000
    int retry_min_ms;          //  First wait after a failed round; 0 = 200
    int retry_max_ms;          //  Longest wait; 0 = 5000
} hvn_bridge_opts_t;

typedef struct _hvn_bridge_t hvn_bridge_t;

//  Returns a bridge that connects at the first hvn_bridge_pump(), or NULL
//  (logged) on invalid options or when out of memory. The strings are
//  copied; the URL is borrowed.
hvn_bridge_t *hvn_bridge_new(const hvn_bridge_opts_t *opts);

//  Closes the connection and frees everything, unconfirmed bodies
//  included. NULL-safe; sets *self_p to NULL.
void hvn_bridge_destroy(hvn_bridge_t **self_p);

//  Takes ownership of *body_p (a heap buffer of size bytes, freed with
//  free()) and sets *body_p to NULL: it is queued for publishing. When
//  max_pending bodies are already queued, the oldest is dropped first.
//  Returns 0, or 1 when one was dropped to make room.
int hvn_bridge_push(hvn_bridge_t *self, char **body_p, size_t size);

//  As hvn_bridge_push, with the notification the body stands for: its
//  publisher instance (16 raw bytes) and seq, which
//  hvn_bridge_unconfirmed() hands back while the body waits. Returns as
//  hvn_bridge_push.
int hvn_bridge_push_from(hvn_bridge_t *self, char **body_p, size_t size, const uint8_t instance[16],
                         uint64_t seq);

//  Called for each body not yet confirmed, with what it was pushed from
//  (seq 0 and a zero instance for a plain hvn_bridge_push).
typedef void(hvn_bridge_origin_fn)(const uint8_t instance[16], uint64_t seq, void *arg);

//  Calls fn for every body queued and not yet confirmed by RabbitMQ, in
//  no particular order. Returns the number of calls.
size_t hvn_bridge_unconfirmed(hvn_bridge_t *self, hvn_bridge_origin_fn *fn, void *arg);

//  Connects when not connected and a retry is due, publishes what the
//  window allows, and reads RabbitMQ's confirms and other frames, waiting
//  up to timeout_ms for the first one (0: only what has arrived). Returns
//  the number of bodies newly confirmed.
size_t hvn_bridge_pump(hvn_bridge_t *self, int timeout_ms);

//  Returns the number of bodies queued: not yet published, or published
//  and not yet confirmed.
size_t hvn_bridge_pending(hvn_bridge_t *self);

//  Returns true when connected, with the channel in confirm mode and the
//  exchange, queue and binding declared.
bool hvn_bridge_connected(hvn_bridge_t *self);

//  Returns true when connected and there is something to publish or a
//  confirm to wait for: the caller should pump again soon.
bool hvn_bridge_busy(hvn_bridge_t *self);

typedef struct {
    uint64_t received;       //  Bodies pushed
    uint64_t published;      //  basic.publish calls, re-sends included
    uint64_t confirmed;      //  Bodies acknowledged by RabbitMQ (basic.ack)
    uint64_t resent;         //  Bodies published again (after a reconnect or a nack)
    uint64_t nacked;         //  Bodies refused by RabbitMQ (basic.nack), then re-sent
    uint64_t dropped;        //  Bodies dropped past max_pending
    uint64_t connects;       //  Connections made, the first included
    uint64_t reconnects;     //  Connections made after a loss
    uint64_t failures;       //  Connection attempts that failed
    uint64_t lost;           //  Connections lost
    uint64_t blocked;        //  connection.blocked received
    uint64_t pending;        //  Bodies queued now
    uint64_t latency_p50_us; //  push → confirm, over the last confirms
    uint64_t latency_p99_us; //  (up to 65536 of them); 0 before any
    uint64_t latency_max_us;
    uint64_t connected;   //  1 while connected and declared, else 0
    uint64_t blocked_now; //  1 while RabbitMQ blocks publishing, else 0
} hvn_bridge_stats_t;

//  Returns nothing; copies the counters into *out (the latencies are
//  computed now, over the recent confirms).
void hvn_bridge_stats(hvn_bridge_t *self, hvn_bridge_stats_t *out);

#endif
