/*  hvn_cache.h — the broker's last-value cache (PROTOCOL.md section 5).

    One entry per live compute node, keyed by the node's uuid: the three
    frames (topic, header, body) of the last create or update the broker
    accepted for it, byte for byte as received, so a snapshot hands a late
    joiner exactly what it would have seen live. A delete removes the entry.

    The cache copies the bytes into one allocation per node. It does not
    keep the received zmq_msg_t: libzmq receives into shared 8 KiB batch
    buffers, and one kept message would pin its whole buffer.

    Entries are also indexed by host (the topic's part after '@'), so that
    a publisher's heartbeat can prune the nodes of its host that it no
    longer lists (PROTOCOL.md section 4) without a walk of the whole cache.
*/
#ifndef HVN_CACHE_H_INCLUDED
#define HVN_CACHE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hvn_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _hvn_cache_t hvn_cache_t;

//  A view of one entry; valid until the cache next changes.
typedef struct {
    const uint8_t *key;    //  Node uuid, 16 raw bytes
    const char *topic;     //  Frame 0, not NUL-terminated
    size_t topic_size;     //  1..HVN_TOPIC_MAX
    const uint8_t *header; //  Frame 1, HVN_HEADER_SIZE bytes
    const uint8_t *body;   //  Frame 2
    size_t body_size;      //  Bytes at body
} hvn_cache_item_t;

//  Called for each entry by hvn_cache_foreach. Returns 0 to go on, -1 to
//  stop the walk. It must not change the cache.
typedef int(hvn_cache_fn)(const hvn_cache_item_t *item, void *arg);

//  Returns a new, empty cache, or NULL when out of memory.
hvn_cache_t *hvn_cache_new(void);

//  Destroys the cache and every entry; NULL-safe, sets *self_p to NULL.
void hvn_cache_destroy(hvn_cache_t **self_p);

//  Stores a copy of the three frames as the entry of `key`, replacing any
//  entry it had. topic_size is 1..HVN_TOPIC_MAX; header is
//  HVN_HEADER_SIZE bytes (both asserted: the caller has validated them).
//  Returns 1 when the entry was new, 0 when it replaced one, or -1 when out
//  of memory (the cache is then unchanged).
int hvn_cache_put(hvn_cache_t *self, const uint8_t key[16], const void *topic, size_t topic_size,
                  const uint8_t header[HVN_HEADER_SIZE], const void *body, size_t body_size);

//  Removes the entry of `key`. Returns 1 if there was one, 0 if not.
int hvn_cache_delete(hvn_cache_t *self, const uint8_t key[16]);

//  Called by hvn_cache_prune for an unlisted entry sent by another
//  publisher instance than the heartbeat's. Returns 1 when that instance
//  is newer than the heartbeat's (its entry is kept), 0 when it is older.
typedef int(hvn_cache_newer_fn)(const uint8_t instance[16], void *arg);

//  Removes the entries of `host` whose uuid is not among the `count` raw
//  uuids at listed (a publisher heartbeat's node list), except those that
//  may be newer than the list: whose header carries `instance` and a seq
//  above `seq` (sent after the heartbeat), or carries an instance that
//  `newer` says came after `instance` (so a late heartbeat of an instance
//  that is gone cannot remove the nodes of its successor). newer may be
//  NULL: every other instance is then older. Returns the number of entries
//  removed.
size_t hvn_cache_prune(hvn_cache_t *self, const char *host, const uint8_t (*listed)[16],
                       size_t count, const uint8_t instance[16], uint64_t seq,
                       hvn_cache_newer_fn *newer, void *arg);

//  Returns the number of entries whose topic names `host`.
size_t hvn_cache_host_size(const hvn_cache_t *self, const char *host);

//  Returns 1 with *item describing the entry of `key`, or 0 if it has none.
int hvn_cache_lookup(const hvn_cache_t *self, const uint8_t key[16], hvn_cache_item_t *item);

//  Calls fn for each entry whose topic starts with the prefix_size bytes at
//  prefix (0 bytes: every entry), in no particular order. Returns the
//  number of entries passed to fn, or -1 when fn stopped the walk.
long hvn_cache_foreach(const hvn_cache_t *self, const void *prefix, size_t prefix_size,
                       hvn_cache_fn *fn, void *arg);

//  Returns the number of entries.
size_t hvn_cache_size(const hvn_cache_t *self);

//  Returns the bytes of memory the cache holds: every entry as the heap
//  allocates it (usable size plus the allocator's chunk header), the hash
//  table's slots and the cache object itself.
size_t hvn_cache_bytes(const hvn_cache_t *self);

#ifdef __cplusplus
}
#endif
#endif
