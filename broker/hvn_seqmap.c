/*  hvn_seqmap.c — the last sequence number of each publisher instance.

    One small heap record per instance in an hvn_idmap. Expiry walks the
    whole table, which the broker does once per heartbeat interval: with
    the size cap that is a bounded, cheap sweep, and the hot path (one
    lookup per message) never pays for it.
*/
#include "hvn_seqmap.h"
#include "hvn_idmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_INTERVAL_MAX_MS 86400000 //  Longest heartbeat interval believed, ms

typedef struct {
    uint8_t instance[HVN_ID_SIZE]; //  Publisher instance id; first, as hvn_idmap needs
    uint64_t seq;                  //  Highest seq seen from it
    int64_t last_seen_ms;          //  Monotonic time it was last heard from
    int64_t interval_ms;           //  Its announced heartbeat interval; 0 = unknown
    uint64_t since;                //  Caller's clock when it was added
    char host[];                   //  Host it belongs to; "" = not bound
} s_record_t;

struct _hvn_seqmap_t {
    hvn_idmap_t *map;     //  Instance id -> s_record_t (owned)
    size_t max_instances; //  Cap on map size
    s_record_t *last;     //  Record of the last update, or NULL: a publisher
                          //  sends in runs, so most updates skip the hash
};

//  Returns a new, empty map, or NULL when out of memory.
hvn_seqmap_t *hvn_seqmap_new(size_t max_instances)
{
    assert(max_instances > 0);
    hvn_seqmap_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->map = hvn_idmap_new();
    if (!self->map) {
        free(self);
        return NULL;
    }
    self->max_instances = max_instances;
    return self;
}

//  Returns nothing; the map and its records are freed.
void hvn_seqmap_destroy(hvn_seqmap_t **self_p)
{
    assert(self_p);
    hvn_seqmap_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < hvn_idmap_slots(self->map); i++)
        free(hvn_idmap_at(self->map, i));
    hvn_idmap_destroy(&self->map);
    free(self);
    *self_p = NULL;
}

//  Returns a new record of instance bound to host, added to the map, or
//  NULL when the map is full or memory is out.
static s_record_t *s_record_new(hvn_seqmap_t *self, const uint8_t instance[16], const char *host,
                                uint64_t since)
{
    if (hvn_idmap_size(self->map) >= self->max_instances)
        return NULL;
    size_t len = strnlen(host, 255);
    s_record_t *record = calloc(1, sizeof(*record) + len + 1);
    if (!record)
        return NULL;
    memcpy(record->instance, instance, HVN_ID_SIZE);
    memcpy(record->host, host, len);
    record->since = since;
    if (hvn_idmap_insert(self->map, record) != 0) {
        free(record);
        return NULL;
    }
    return record;
}

//  Returns 0 with the instance's seq raised to seq, or -1 when a new
//  instance does not fit.
int hvn_seqmap_update(hvn_seqmap_t *self, const uint8_t instance[16], uint64_t seq, int64_t now_ms,
                      uint64_t since)
{
    assert(self && instance);
    s_record_t *record = self->last;
    if (!record || memcmp(record->instance, instance, HVN_ID_SIZE) != 0)
        record = hvn_idmap_lookup(self->map, instance);
    if (!record) {
        record = s_record_new(self, instance, "", since);
        if (!record)
            return -1;
    }
    if (seq > record->seq)
        record->seq = seq;
    record->last_seen_ms = now_ms;
    self->last = record;
    return 0;
}

//  Returns 1 when the instance is (now) host's, 0 when another host's,
//  -1 when a new one does not fit.
int hvn_seqmap_bind(hvn_seqmap_t *self, const uint8_t instance[16], const char *host,
                    int64_t now_ms, uint64_t since)
{
    assert(self && instance && host);
    s_record_t *record = self->last;
    if (!record || memcmp(record->instance, instance, HVN_ID_SIZE) != 0)
        record = hvn_idmap_lookup(self->map, instance);
    if (!record) {
        record = s_record_new(self, instance, host, since);
        if (!record)
            return -1;
        record->last_seen_ms = now_ms;
    }
    self->last = record;
    //  A record added without a host (hvn_seqmap_update alone) is nobody's
    return !record->host[0] || strcmp(record->host, host) == 0 ? 1 : 0;
}

//  Returns the instance's host, or NULL.
const char *hvn_seqmap_host(const hvn_seqmap_t *self, const uint8_t instance[16])
{
    assert(self && instance);
    const s_record_t *record = hvn_idmap_lookup(self->map, instance);
    return record && record->host[0] ? record->host : NULL;
}

//  Returns 1 when the instance is known (and now alive), else 0.
int hvn_seqmap_touch(hvn_seqmap_t *self, const uint8_t instance[16], int64_t interval_ms,
                     int64_t now_ms)
{
    assert(self && instance);
    s_record_t *record = hvn_idmap_lookup(self->map, instance);
    if (!record)
        return 0;
    record->last_seen_ms = now_ms;
    //  A peer's word, so bounded: no overflow in expiry arithmetic
    if (interval_ms < 0)
        interval_ms = 0;
    record->interval_ms = interval_ms < S_INTERVAL_MAX_MS ? interval_ms : S_INTERVAL_MAX_MS;
    return 1;
}

//  Returns 1 with *seq set when the instance is known, else 0.
int hvn_seqmap_get(const hvn_seqmap_t *self, const uint8_t instance[16], uint64_t *seq)
{
    assert(self && instance && seq);
    const s_record_t *record = hvn_idmap_lookup(self->map, instance);
    if (!record)
        return 0;
    *seq = record->seq;
    return 1;
}

//  Returns 1 with *since set when the instance is known, else 0.
int hvn_seqmap_since(const hvn_seqmap_t *self, const uint8_t instance[16], uint64_t *since)
{
    assert(self && instance && since);
    const s_record_t *record = hvn_idmap_lookup(self->map, instance);
    if (!record)
        return 0;
    *since = record->since;
    return 1;
}

//  Returns nothing; *newer is set up.
void hvn_seqmap_newer_init(hvn_seqmap_newer_t *newer, const hvn_seqmap_t *self,
                           const uint8_t instance[16])
{
    assert(newer && self && instance);
    newer->seqmap = self;
    newer->since = UINT64_MAX;
    hvn_seqmap_since(self, instance, &newer->since);
}

//  Returns 1 when instance appeared after the reference, else 0.
int hvn_seqmap_newer(const uint8_t instance[16], void *arg)
{
    const hvn_seqmap_newer_t *newer = arg;
    uint64_t since;
    return hvn_seqmap_since(newer->seqmap, instance, &since) && since > newer->since;
}

//  Returns the number of instances forgotten.
size_t hvn_seqmap_expire(hvn_seqmap_t *self, int64_t now_ms, int64_t min_interval_ms, int intervals)
{
    assert(self && intervals > 0);
    size_t forgotten = 0;
    size_t slot = 0;
    while (slot < hvn_idmap_slots(self->map)) {
        s_record_t *record = hvn_idmap_at(self->map, slot);
        int64_t interval = min_interval_ms;
        if (record && record->interval_ms > interval)
            interval = record->interval_ms;
        if (record && now_ms - record->last_seen_ms > interval * intervals) {
            hvn_idmap_remove(self->map, record->instance);
            if (record == self->last)
                self->last = NULL;
            free(record);
            forgotten++;
            continue; //  Another record may have moved into this slot
        }
        slot++;
    }
    return forgotten;
}

//  Returns the number of instances handed to fn, or -1 when fn stopped.
long hvn_seqmap_foreach(const hvn_seqmap_t *self, hvn_seqmap_fn *fn, void *arg)
{
    assert(self && fn);
    long count = 0;
    for (size_t i = 0; i < hvn_idmap_slots(self->map); i++) {
        const s_record_t *record = hvn_idmap_at(self->map, i);
        if (!record)
            continue;
        if (fn(record->instance, record->seq, arg) != 0)
            return -1;
        count++;
    }
    return count;
}

//  Returns the number of instances held.
size_t hvn_seqmap_size(const hvn_seqmap_t *self)
{
    assert(self);
    return hvn_idmap_size(self->map);
}
