/*  hvn_curve.h — a client socket made a CURVE client of the broker.

    Every client of the broker (publisher, subscriber, snapshot and stats
    requests) sets CURVE up the same way (PROTOCOL.md section 7): its own
    secret certificate, made by `hvn-keygen publisher|subscriber`, and the
    broker's public certificate. Both are czmq zcert files.
*/
#ifndef HVN_CURVE_H_INCLUDED
#define HVN_CURVE_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  Makes sock a CURVE client: this client's keys from the secret
//  certificate file secret_path, the broker's public key from the
//  certificate file server_path. Returns 0, or -1 (logged, prefixed with
//  who, e.g. "publisher") when either file is not a usable certificate;
//  sock is then unchanged. When host is not NULL it receives the secret
//  certificate's "host" metadata (the one host a publisher key may publish
//  as; "" when it has none), cut to host_size.
int hvn_curve_client_apply(zsock_t *sock, const char *secret_path, const char *server_path,
                           const char *who, char *host, size_t host_size);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
