/*  hvn_seqmap.h — the last sequence number of each publisher instance.

    A snapshot's END frame tells the client, per publisher instance, the
    last seq the broker has seen, so the client can skip live messages the
    snapshot already covers (PROTOCOL.md section 5). Publisher instances
    come and go (every restart is a new one), so the map is bounded twice:
    an instance silent for a number of heartbeat intervals is forgotten, and
    the map never holds more than a fixed number of instances.

    Each instance also belongs to one host: the host of the first message
    that named it (hvn_seqmap_bind). An instance id is visible to anyone
    who reads a header or a snapshot's END, so without the binding one
    host could send under another's instance, with an absurd seq, and
    every replica would then drop the other host's real updates as stale.
*/
#ifndef HVN_SEQMAP_H_INCLUDED
#define HVN_SEQMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _hvn_seqmap_t hvn_seqmap_t;

//  Called for each instance by hvn_seqmap_foreach. Returns 0 to go on,
//  -1 to stop. It must not change the map.
typedef int(hvn_seqmap_fn)(const uint8_t instance[16], uint64_t seq, void *arg);

//  Returns a new map holding at most max_instances, or NULL when out of
//  memory.
hvn_seqmap_t *hvn_seqmap_new(size_t max_instances);

//  Destroys the map; NULL-safe, sets *self_p to NULL.
void hvn_seqmap_destroy(hvn_seqmap_t **self_p);

//  Records that `instance` used `seq` at now_ms: its seq becomes the higher
//  of the two, and it counts as alive. A new instance also keeps `since`,
//  the caller's clock when it first appeared (see hvn_seqmap_since).
//  Returns 0, or -1 when the instance is new and the map is full (or
//  memory is out): it is then not recorded.
int hvn_seqmap_update(hvn_seqmap_t *self, const uint8_t instance[16], uint64_t seq, int64_t now_ms,
                      uint64_t since);

//  Binds `instance` to `host` (NUL-terminated, up to 255 bytes) when the
//  instance is new: it is then recorded with seq 0, alive at now_ms,
//  `since` as in hvn_seqmap_update. Returns 1 when the instance belongs to
//  host (new or already), 0 when it belongs to another host (nothing
//  recorded), -1 when it is new and the map is full or memory is out.
int hvn_seqmap_bind(hvn_seqmap_t *self, const uint8_t instance[16], const char *host,
                    int64_t now_ms, uint64_t since);

//  Returns the host the instance is bound to (owned by the map, valid
//  until the instance is forgotten), or NULL when it is unknown or was
//  added by hvn_seqmap_update without a host.
const char *hvn_seqmap_host(const hvn_seqmap_t *self, const uint8_t instance[16]);

//  Returns 1 with *since set to the clock given by the update that added
//  the instance, or 0 when the instance is not known.
int hvn_seqmap_since(const hvn_seqmap_t *self, const uint8_t instance[16], uint64_t *since);

//  What hvn_seqmap_newer compares with: when a reference instance (a
//  heartbeat's) appeared
typedef struct {
    const hvn_seqmap_t *seqmap; //  Instances and when each appeared
    uint64_t since;             //  The reference instance's appearance
} hvn_seqmap_newer_t;

//  Returns nothing; *newer compares with instance's appearance in self, or
//  with the newest there is when instance is not known yet (no
//  notification since it appeared).
void hvn_seqmap_newer_init(hvn_seqmap_newer_t *newer, const hvn_seqmap_t *self,
                           const uint8_t instance[16]);

//  Returns 1 when instance appeared after the reference instance of arg
//  (an hvn_seqmap_newer_t), 0 when before or when it is not known
//  (forgotten: long silent). The test hvn_cache_prune takes.
int hvn_seqmap_newer(const uint8_t instance[16], void *arg);

//  Records that a known instance is alive at now_ms and heartbeats every
//  interval_ms. Returns 1 if the instance is known, 0 if not (nothing is
//  recorded: only notifications and syncs add instances).
int hvn_seqmap_touch(hvn_seqmap_t *self, const uint8_t instance[16], int64_t interval_ms,
                     int64_t now_ms);

//  Returns 1 with *seq set when the instance is known, else 0.
int hvn_seqmap_get(const hvn_seqmap_t *self, const uint8_t instance[16], uint64_t *seq);

//  Forgets every instance not heard from for `intervals` times its
//  heartbeat interval (at least min_interval_ms). Returns how many were
//  forgotten.
size_t hvn_seqmap_expire(hvn_seqmap_t *self, int64_t now_ms, int64_t min_interval_ms,
                         int intervals);

//  Calls fn for each instance. Returns the number visited, or -1 when fn
//  stopped the walk.
long hvn_seqmap_foreach(const hvn_seqmap_t *self, hvn_seqmap_fn *fn, void *arg);

//  Returns the number of instances held.
size_t hvn_seqmap_size(const hvn_seqmap_t *self);

#ifdef __cplusplus
}
#endif
#endif
