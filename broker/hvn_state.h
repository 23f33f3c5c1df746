/*  hvn_state.h — what the broker keeps across its own restart: which host
    each node and each publisher instance belongs to.

    With CURVE on, a node belongs to the host that holds it in the cache
    until that host deletes it, and a publisher instance id to the host
    that used it first (with its last seq). Both live in memory; without
    this file a broker restarted while a host is down would let another
    host take that host's node uuids (and its instance ids, with their
    seqs) before it comes back. The broker writes the file (--state-file)
    at most once a second when a binding changed, by a temporary file
    renamed over it, so a kill -9 leaves the last complete one; it reads it
    at start. Nodes named in the file that the cache does not hold again
    yet stay bound to their host (hvn_owner_t items) until that host sends
    them, deletes them, or leaves them out of its heartbeat.

    The file is msgpack:
        {"format": "hvn-broker-state", "version": 1,
         "nodes": [[uuid bin 16, host str], ...],
         "instances": [[instance bin 16, host str, last seq uint], ...]}
*/
#ifndef HVN_STATE_H_INCLUDED
#define HVN_STATE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hvn_cache.h"
#include "hvn_idmap.h"
#include "hvn_seqmap.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_STATE_FILE_MAX (256L * 1024 * 1024) //  Largest state file read, bytes

//  A node bound to a host by the state file, not in the cache yet: an
//  hvn_idmap item (heap, freed by the map's owner with free()).
typedef struct {
    uint8_t node[16]; //  Node uuid, raw; first, as hvn_idmap needs
    char host[];      //  The host it belongs to, NUL-terminated
} hvn_owner_t;

//  Returns a new owner item of node for host, or NULL when out of memory.
hvn_owner_t *hvn_owner_new(const uint8_t node[16], const char *host, size_t host_len);

//  Writes the bindings to path: every cached node (its topic's host),
//  every node of owners not in the cache, every instance the seq map has
//  bound to a host with its seq. owners may be NULL. Returns 0, or -1 with
//  a one-line reason in error (the old file is then unchanged).
int hvn_state_save(const char *path, const hvn_cache_t *cache, const hvn_idmap_t *owners,
                   const hvn_seqmap_t *seqmap, char *error, size_t error_size);

//  Reads path: its nodes go into owners (each an hvn_owner_t), its
//  instances into seqmap (bound to their host at now_ms, with their seq;
//  *clock counts up once per instance, as hvn_seqmap_bind's since).
//  Returns the number of bindings read (0 when the file does not exist),
//  or -1 with a one-line reason in error when it cannot be read or is not
//  a valid state file (nothing is then added).
long hvn_state_load(const char *path, hvn_idmap_t *owners, hvn_seqmap_t *seqmap, int64_t now_ms,
                    uint64_t *clock, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif
#endif
