/*  hvn_redial.h — a client socket's endpoints dialled again after a refused
    handshake.

    libzmq 4.3 ends a connection whose handshake failed with a protocol
    error — a CURVE key the broker's ZAP handler refused (its certificate
    is not installed yet), or a security mechanism the server does not
    speak — and never dials that endpoint again. A publisher or subscriber
    started before its certificate reached the broker would stay cut off
    until restarted. (A connection that breaks during the handshake, a
    broker that went away, is retried by libzmq itself.)

    A redialer watches one client socket through libzmq's socket monitor.
    For each endpoint refused that way it disconnects and connects the
    endpoint again after a backoff: 1 s, doubling to 30 s, each wait drawn
    between half of it and all of it, so that refused hosts do not come
    back in step. A handshake that succeeds resets the backoff. Each
    refusal is counted and logged, at most once a second per socket.

    The socket's owner drives it from the socket's thread: hvn_redial_tend()
    reads the monitor's events and redials what is due; call it when
    hvn_redial_monitor() is readable and when the time it returned has
    come. Used by the publisher's XPUB and the subscriber's SUB.
*/
#ifndef HVN_REDIAL_H_INCLUDED
#define HVN_REDIAL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_REDIAL_FIRST_MS 1000      //  First wait before dialling a refused endpoint again
#define HVN_REDIAL_MAX_MS 30000       //  Longest wait
#define HVN_RECONNECT_IVL_MIN_MS 100  //  Shortest reconnect interval drawn
#define HVN_RECONNECT_IVL_MAX_MS 300  //  Longest reconnect interval drawn

typedef struct _hvn_redial_t hvn_redial_t;

//  Counters of a redialer
typedef struct {
    uint64_t denials;  //  Handshakes that failed and that libzmq does not retry
    uint64_t redials;  //  Endpoints disconnected and connected again
    uint64_t refusing; //  Endpoints whose last handshake failed, now
} hvn_redial_stats_t;

//  Starts monitoring sock (a zsock_t or a libzmq socket, not connected yet:
//  events of connections made before are not seen). who prefixes log lines
//  ("publisher"); the string must outlive the redialer. With redial false,
//  refusals are only counted and logged (a socket used for one request,
//  which a redial would not resend). Returns the redialer, or NULL (logged)
//  when the monitor cannot be set up.
hvn_redial_t *hvn_redial_new(void *sock, const char *who, bool redial);

//  Handles the monitor's waiting events (counted and logged, no redial
//  comes of them), stops monitoring and frees; call it before the socket
//  is destroyed. NULL-safe, sets *self_p to NULL.
void hvn_redial_destroy(hvn_redial_t **self_p);

//  Returns the monitor's PAIR socket, to poll for input (owned by self).
zsock_t *hvn_redial_monitor(hvn_redial_t *self);

//  Handles the monitor's waiting events and dials again every endpoint
//  whose wait has passed. Returns the ms until the next redial is due, or
//  -1 when none is.
int hvn_redial_tend(hvn_redial_t *self);

//  Returns a reconnect interval for one client socket, in ms, drawn at
//  random from HVN_RECONNECT_IVL_MIN_MS to HVN_RECONNECT_IVL_MAX_MS (both
//  included), to set as its ZMQ_RECONNECT_IVL before it connects.
int hvn_redial_reconnect_ivl(void);

//  Copies the counters into *out.
void hvn_redial_stats(hvn_redial_t *self, hvn_redial_stats_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
