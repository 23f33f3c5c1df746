/*  hvn_names.h — the names the wire carries, and what each may hold.

    A host name is the part of a topic after '@' and of publisher_id after
    ':'; a service name is the part of publisher_id before ':'. Every room
    that takes one from a user or a peer checks it here, so the publisher,
    the broker (its decoder, its certificates' host metadata), hvn-keygen
    and the command lines agree on one rule (PROTOCOL.md sections 2, 3, 6):
    UTF-8, no control character (a byte below 0x20, or 0x7f) that could
    reach a terminal or a log, and the separators the formats need.
*/
#ifndef HVN_NAMES_H_INCLUDED
#define HVN_NAMES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  Longest host name: the longest topic, "compute_node.create@<host>",
//  fits its 255 bytes
#define HVN_HOST_MAX 235

//  Returns true when text[0..len) holds a control character: a byte below
//  0x20, or 0x7f.
bool hvn_names_has_control(const char *text, size_t len);

//  Returns NULL when host can be a publisher's host name: 1 to
//  HVN_HOST_MAX bytes of UTF-8 without '@' or a control character;
//  else what a host name must be (static text, for an error message).
const char *hvn_names_host_check(const char *host);

//  Returns NULL when service can be the service of publisher_id: 1 to 254
//  bytes of UTF-8 without ':' or a control character; else what it must be
//  (static text).
const char *hvn_names_service_check(const char *service);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
