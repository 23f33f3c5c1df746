/*  hvn_auth.h — who may connect to the broker, and as which host.

    With CURVE on, the broker's three sockets are CURVE servers and every
    handshake is put to the ZAP handler this module runs (RFC 27, in the
    broker's own ZeroMQ context, bound before any broker socket). Each
    socket names a ZAP domain; the domain picks the directory of public
    certificates a client key must be in:

        frontend (XSUB)  HVN_AUTH_PUBLISHERS   --publishers-dir
        backend  (XPUB)  HVN_AUTH_SUBSCRIBERS  --subscribers-dir
        service (ROUTER) HVN_AUTH_SERVICE      --subscribers-dir

    The service socket answers SNAPSHOT (the whole fleet's state) and
    STATS, which are a reader's business: publishers' keys are not let in.

    A publisher certificate names in its metadata the one host its key may
    publish as (`host`); one without it is refused at the handshake. The
    handler returns the client's public key (Z85 text) as the ZAP User-Id,
    which libzmq attaches to every message of that connection; the broker
    maps it back to the host with hvn_auth_publisher_host, cached.

    Each directory is read once into one store that the handler and the
    broker's thread share, and read again, once, when it changes: at a
    handshake (looked at once a second at most; at once for an unknown
    key, ten times a second at most), so a certificate added is honoured
    by the connections that follow. The broker also calls hvn_auth_refresh once a
    second, so that a certificate removed or changed takes effect on the
    connections already open: a removed publisher's messages find no host
    and are refused, a removed subscriber's service requests are refused
    (hvn_auth_subscriber_known). libzmq cannot refuse one peer's live
    traffic on the backend: a subscriber connected before its removal keeps
    receiving until it disconnects (docs/security.md). libzmq does not
    retry a client refused at the handshake; hvnotify's clients dial again
    by themselves (proto/hvn_redial.h).
*/
#ifndef HVN_AUTH_H_INCLUDED
#define HVN_AUTH_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_AUTH_PUBLISHERS "hvn.publishers"
#define HVN_AUTH_SUBSCRIBERS "hvn.subscribers"
#define HVN_AUTH_SERVICE "hvn.service"

typedef struct _hvn_auth_t hvn_auth_t;

//  Handshakes decided, as STATS reports them.
typedef struct {
    uint64_t allowed;            //  Handshakes let in, all domains
    uint64_t denied_publishers;  //  Frontend handshakes refused (unknown key, no host)
    uint64_t denied_subscribers; //  Backend and service handshakes refused
} hvn_auth_stats_t;

//  Starts the ZAP handler on the process's czmq context and loads the two
//  directories. Returns the handler, or NULL with a one-line reason in
//  error (a directory missing or unreadable, another ZAP handler already
//  bound). Call it before binding any CURVE server socket.
hvn_auth_t *hvn_auth_new(const char *publishers_dir, const char *subscribers_dir, char *error,
                         size_t error_size);

//  Stops the handler and frees; NULL-safe, sets *self_p to NULL. After
//  this, CURVE servers of the context accept any key: destroy the sockets
//  first.
void hvn_auth_destroy(hvn_auth_t **self_p);

//  Returns the host the publisher key (Z85 text, a ZAP User-Id) may
//  publish as, or NULL when the key is not a publisher's (or its
//  certificate names no host). The answer is cached per key: one string
//  compare when the same key asks again, one hash lookup for any key seen
//  before. The cache is emptied when hvn_auth_refresh loads the
//  publishers' directory again, so a removed key gets NULL and a changed
//  certificate its new host from then on. The string is owned by self
//  until then. Not thread-safe: the broker's thread only.
const char *hvn_auth_publisher_host(hvn_auth_t *self, const char *key);

//  Returns 1 when the subscriber key (Z85 text, a ZAP User-Id) is in the
//  subscribers' directory, else 0: one hash lookup for a listed key. Not
//  thread-safe: the broker's thread only.
int hvn_auth_subscriber_known(hvn_auth_t *self, const char *key);

//  Looks at both directories now and loads again one that changed since
//  its last load (a file added, removed, renamed or rewritten): what
//  hvn_auth_publisher_host and hvn_auth_subscriber_known answer follows
//  from then on. A look lists the directory and stats each entry, and
//  reads no certificate unless something changed. Returns 1 when a
//  directory was loaded again since the last call (by this call, or by
//  the handler at a handshake), else 0. Not thread-safe: the broker's
//  thread only, about once a second.
int hvn_auth_refresh(hvn_auth_t *self);

//  Copies the handshake counters into *out (read atomically).
void hvn_auth_stats(hvn_auth_t *self, hvn_auth_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
