/*  hvn_ring.h — the broker's replay ring (PROTOCOL.md section 5, REPLAY).

    The notifications the broker forwarded most recently, byte for byte as
    received (topic, header, body), bounded by bytes: a new one evicts the
    oldest until it fits. Each is indexed by (publisher instance, seq), so
    a client that saw a gap in an instance's seqs can ask for exactly the
    missing ones instead of a snapshot of the whole fleet.

    The one idea: eviction is first in, first out over all instances, and
    each instance's seqs only grow, so each instance's entries form a queue
    in seq order whose oldest entry is always the next one the ring evicts
    of that instance. A range is then a binary search and a walk.

    Items are copied into one allocation each (like hvn_cache, and for the
    same reason: a kept zmq_msg_t would pin libzmq's receive buffer).
*/
#ifndef HVN_RING_H_INCLUDED
#define HVN_RING_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_RING_BYTES (64 * 1024 * 1024) //  Default --ring-bytes

typedef struct _hvn_ring_t hvn_ring_t;

//  A view of one entry; valid until the ring next changes.
typedef struct {
    const uint8_t *instance; //  Publisher instance id, 16 raw bytes
    uint64_t seq;            //  Its seq
    const char *topic;       //  Frame 0, not NUL-terminated
    size_t topic_size;       //  Its bytes
    const uint8_t *header;   //  Frame 1, HVN_HEADER_SIZE bytes
    const uint8_t *body;     //  Frame 2
    size_t body_size;        //  Its bytes
} hvn_ring_item_t;

//  Called for each entry of a range by hvn_ring_foreach. Returns 0 to go
//  on, -1 to stop. It must not change the ring.
typedef int(hvn_ring_fn)(const hvn_ring_item_t *item, void *arg);

//  Returns a new, empty ring holding at most max_bytes (0: it keeps
//  nothing), or NULL when out of memory.
hvn_ring_t *hvn_ring_new(size_t max_bytes);

//  Destroys the ring and every entry; NULL-safe, sets *self_p to NULL.
void hvn_ring_destroy(hvn_ring_t **self_p);

//  Keeps a copy of one forwarded notification: topic (topic_size bytes),
//  header (HVN_HEADER_SIZE bytes) and body, as the entry (instance, seq),
//  evicting the oldest entries until it fits. Returns 1 when kept; 0 when
//  not: larger than the whole ring, or seq not above the instance's newest
//  entry (each instance's seqs only grow); -1 when out of memory (the ring
//  then holds what it held, less what was evicted).
int hvn_ring_put(hvn_ring_t *self, const uint8_t instance[16], uint64_t seq, const void *topic,
                 size_t topic_size, const uint8_t *header, const void *body, size_t body_size);

//  Returns the number of entries the ring holds for instance, with the
//  seqs of the oldest and newest in *first and *last (both 0 when none).
size_t hvn_ring_span(const hvn_ring_t *self, const uint8_t instance[16], uint64_t *first,
                     uint64_t *last);

//  Calls fn for each entry of instance with first <= seq <= last, in seq
//  order. Returns the number of entries fn was called for, or -1 when fn
//  stopped the walk.
long hvn_ring_foreach(const hvn_ring_t *self, const uint8_t instance[16], uint64_t first,
                      uint64_t last, hvn_ring_fn *fn, void *arg);

//  Returns the bytes the entries take (what max_bytes bounds).
size_t hvn_ring_bytes(const hvn_ring_t *self);

//  Returns the bound given to hvn_ring_new.
size_t hvn_ring_max_bytes(const hvn_ring_t *self);

//  Returns the number of entries held.
size_t hvn_ring_size(const hvn_ring_t *self);

//  Returns the number of publisher instances with an entry.
size_t hvn_ring_instances(const hvn_ring_t *self);

//  Returns the number of entries evicted since the ring was made.
uint64_t hvn_ring_evicted(const hvn_ring_t *self);

#ifdef __cplusplus
}
#endif
#endif
