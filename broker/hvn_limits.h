/*  hvn_limits.h — per-peer limits of the broker: subscriptions held and
    snapshot requests per second.

    Who a peer is: its CURVE key (the ZAP User-Id) when CURVE is on, else
    its IP address (libzmq's Peer-Address; empty over ipc://, where every
    peer is one). Not the ROUTER routing id nor the connection: both are
    new on every reconnect (hvn-sub even opens a fresh service connection
    per snapshot), so a limit keyed by them would cost an abuser a
    reconnect, nothing more.

    Subscriptions. The backend XPUB runs in manual mode: every subscribe is
    handed to the broker, which applies it (ZMQ_SUBSCRIBE on the XPUB, for
    the connection it came from) or not. A peer may hold at most `max`
    distinct prefixes; one more is not applied, so that subscriber never
    receives what it asked for, and it is counted. What libzmq reports when
    a subscriber disconnects (one unsubscribe per prefix it held) carries
    no peer, so the module counts every applied prefix globally and keeps
    it in each peer's set until no connection at all holds it any more.
    A peer's count therefore never exceeds max and never grows on
    reconnects; it may include a prefix it dropped while another peer
    still holds the same prefix (the common "compute_node." costs one
    slot, once).

    Snapshots. A token bucket per peer: `rate` requests a second, bursts
    of `rate`. Buckets left full are forgotten; at most S_BUCKETS_MAX peers
    are tracked, the rest share one bucket.
*/
#ifndef HVN_LIMITS_H_INCLUDED
#define HVN_LIMITS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _hvn_sublimit_t hvn_sublimit_t;

//  Returns a subscription limiter allowing max distinct prefixes per
//  peer, or NULL when out of memory.
hvn_sublimit_t *hvn_sublimit_new(size_t max);

//  Frees; NULL-safe, sets *self_p to NULL.
void hvn_sublimit_destroy(hvn_sublimit_t **self_p);

//  Returns 1 when peer may subscribe to prefix (then recorded: the caller
//  applies it), 0 when that would take the peer past max (nothing
//  recorded), -1 when out of memory (nothing recorded).
int hvn_sublimit_subscribe(hvn_sublimit_t *self, const char *peer, const void *prefix, size_t size);

//  Returns nothing; one applied subscription to prefix is gone. peer is
//  the peer that unsubscribed, or NULL when libzmq reports a disconnect.
void hvn_sublimit_unsubscribe(hvn_sublimit_t *self, const char *peer, const void *prefix,
                              size_t size);

//  Connections. Over tcp:// and ipc:// the broker knows which connection a
//  subscribe came from (its file descriptor) and when a connection closes
//  (the backend's socket monitor), so the three calls below keep the count
//  exactly: a prefix a connection subscribes twice (libzmq passes both
//  messages in manual mode, and reports one unsubscribe at its close)
//  costs one slot, and a connection's close frees exactly what it held,
//  so the disconnect's own unsubscribes (which name no peer) are not
//  counted. A peer's slots are the distinct prefixes its open connections
//  hold. Use these, or the two calls above (inproc://, where a message
//  names no connection), not both on one limiter.
//
//  A connection is its descriptor `conn` and a `tag` that tells two
//  connections on one descriptor apart (the broker passes the address of
//  the connection's metadata, which lives as long as a message of it).
//  Messages of a connection already closed can still be read after its
//  close: they are stale, and change nothing.

//  Returns 1 when peer's connection conn (>= 0) may subscribe to prefix
//  (recorded: the caller applies it), 2 when conn holds it already (apply
//  it again, nothing is counted), 3 when the connection is closed (stale:
//  do not apply it), 0 when the peer is at max or the prefix is longer
//  than any topic (nothing recorded), -1 when out of memory.
int hvn_sublimit_subscribe_conn(hvn_sublimit_t *self, const char *peer, int conn, uintptr_t tag,
                                const void *prefix, size_t size);

//  Returns 1 when conn held prefix and now does not (counted down), 0 when
//  it did not hold it (a second unsubscribe, or one of a prefix never
//  applied): nothing changes.
int hvn_sublimit_unsubscribe_conn(hvn_sublimit_t *self, int conn, uintptr_t tag,
                                  const void *prefix, size_t size);

//  Returns how many subscriptions peer's connection conn (>= 0) has had
//  refused so far, this one included (libzmq keeps every prefix a
//  connection sent until it closes, refused or not: the broker cuts a
//  connection that keeps sending refused ones). 0 when out of memory or
//  when the connection is closed.
size_t hvn_sublimit_refused_conn(hvn_sublimit_t *self, const char *peer, int conn,
                                 uintptr_t tag);

//  Returns how many subscriptions of conn were released: the connection
//  closed. What is still read from it afterwards is stale.
size_t hvn_sublimit_closed(hvn_sublimit_t *self, int conn);

//  Returns how many subscriptions are applied, all peers together.
size_t hvn_sublimit_total(const hvn_sublimit_t *self);

//  Returns how many peers hold a subscription.
size_t hvn_sublimit_peers(const hvn_sublimit_t *self);

typedef struct _hvn_ratelimit_t hvn_ratelimit_t;

//  Returns a limiter of `rate` events per second per peer (bursts of
//  rate), or NULL when out of memory.
hvn_ratelimit_t *hvn_ratelimit_new(uint32_t rate);

//  Frees; NULL-safe, sets *self_p to NULL.
void hvn_ratelimit_destroy(hvn_ratelimit_t **self_p);

//  Returns 1 when peer may have one more event at now_ms (a token is
//  taken), 0 when its bucket is empty.
int hvn_ratelimit_take(hvn_ratelimit_t *self, const char *peer, int64_t now_ms);

//  Returns nothing; buckets full again at now_ms are forgotten.
void hvn_ratelimit_expire(hvn_ratelimit_t *self, int64_t now_ms);

//  Returns how many peers have a bucket.
size_t hvn_ratelimit_peers(const hvn_ratelimit_t *self);

#ifdef __cplusplus
}
#endif
#endif
