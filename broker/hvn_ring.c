/*  hvn_ring.c — the broker's replay ring.

    Two indexes kept in step: a list of every entry, oldest first (what
    eviction walks), and per publisher instance a circular array of its
    entries in seq order (what a range reads). An instance whose last entry
    is evicted is removed from the table at once, so the table never holds
    more instances than the ring holds entries.
*/
#include "hvn_ring.h"
#include "hvn_codec.h"
#include "hvn_idmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct _s_entry_t s_entry_t;
typedef struct _s_stream_t s_stream_t;

//  One kept notification
struct _s_entry_t {
    s_entry_t *newer;   //  The next entry put, or NULL for the newest
    s_stream_t *stream; //  Its instance's queue
    uint64_t seq;       //  Its seq
    size_t topic_size;  //  Bytes of topic at data
    size_t body_size;   //  Bytes of body after the header
    uint8_t data[];     //  Topic, header (HVN_HEADER_SIZE), body
};

//  One publisher instance's entries, oldest first
struct _s_stream_t {
    uint8_t instance[HVN_ID_SIZE]; //  Instance id; first, as hvn_idmap needs
    s_entry_t **entries;           //  Circular array of cap slots
    size_t head;                   //  Slot of the oldest entry
    size_t count;                  //  Entries held
    size_t cap;                    //  Slots allocated (a power of two)
};

struct _hvn_ring_t {
    hvn_idmap_t *streams; //  Instance -> s_stream_t (owned)
    s_entry_t *oldest;    //  Next entry to evict, or NULL
    s_entry_t *newest;    //  Last entry put, or NULL
    size_t bytes;         //  What the entries take, bytes
    size_t max_bytes;     //  Bound on bytes
    size_t size;          //  Entries held
    uint64_t evicted;     //  Entries evicted so far
};

//  Returns the bytes an entry of these sizes is charged: its allocation
//  and its slot in its stream.
static size_t s_charge(size_t topic_size, size_t body_size)
{
    return sizeof(s_entry_t) + topic_size + HVN_HEADER_SIZE + body_size + sizeof(s_entry_t *);
}

//  Returns the stream's i-th entry (0 = oldest).
static s_entry_t *s_stream_at(const s_stream_t *stream, size_t i)
{
    return stream->entries[(stream->head + i) & (stream->cap - 1)];
}

//  Returns a new ring, or NULL when out of memory.
hvn_ring_t *hvn_ring_new(size_t max_bytes)
{
    hvn_ring_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->streams = hvn_idmap_new();
    if (!self->streams) {
        free(self);
        return NULL;
    }
    self->max_bytes = max_bytes;
    return self;
}

//  Returns nothing; every entry and stream freed.
void hvn_ring_destroy(hvn_ring_t **self_p)
{
    assert(self_p);
    hvn_ring_t *self = *self_p;
    if (!self)
        return;
    while (self->oldest) {
        s_entry_t *entry = self->oldest;
        self->oldest = entry->newer;
        free(entry);
    }
    for (size_t i = 0; i < hvn_idmap_slots(self->streams); i++) {
        s_stream_t *stream = hvn_idmap_at(self->streams, i);
        if (stream) {
            free(stream->entries);
            free(stream);
        }
    }
    hvn_idmap_destroy(&self->streams);
    free(self);
    *self_p = NULL;
}

//  Returns nothing; the oldest entry is gone, and its stream too when it
//  was that stream's last.
static void s_evict(hvn_ring_t *self)
{
    s_entry_t *entry = self->oldest;
    assert(entry);
    s_stream_t *stream = entry->stream;
    assert(stream->count > 0 && s_stream_at(stream, 0) == entry);
    stream->head = (stream->head + 1) & (stream->cap - 1);
    stream->count--;
    if (stream->count == 0) {
        hvn_idmap_remove(self->streams, stream->instance);
        free(stream->entries);
        free(stream);
    }
    self->oldest = entry->newer;
    if (!self->oldest)
        self->newest = NULL;
    self->bytes -= s_charge(entry->topic_size, entry->body_size);
    self->size--;
    self->evicted++;
    free(entry);
}

//  Returns the instance's stream, made when absent, with room for one more
//  entry; NULL when out of memory.
static s_stream_t *s_stream_room(hvn_ring_t *self, const uint8_t instance[16])
{
    s_stream_t *stream = hvn_idmap_lookup(self->streams, instance);
    if (!stream) {
        stream = calloc(1, sizeof(*stream));
        if (!stream)
            return NULL;
        memcpy(stream->instance, instance, HVN_ID_SIZE);
        if (hvn_idmap_insert(self->streams, stream) != 0) {
            free(stream);
            return NULL;
        }
    }
    if (stream->count < stream->cap)
        return stream;
    size_t cap = stream->cap ? stream->cap * 2 : 16;
    s_entry_t **grown = malloc(cap * sizeof(*grown));
    if (!grown) {
        if (stream->count == 0) {
            hvn_idmap_remove(self->streams, instance);
            free(stream);
        }
        return NULL;
    }
    for (size_t i = 0; i < stream->count; i++)
        grown[i] = s_stream_at(stream, i);
    free(stream->entries);
    stream->entries = grown;
    stream->head = 0;
    stream->cap = cap;
    return stream;
}

//  Returns 1 when kept, 0 when not, -1 when out of memory.
int hvn_ring_put(hvn_ring_t *self, const uint8_t instance[16], uint64_t seq, const void *topic,
                 size_t topic_size, const uint8_t *header, const void *body, size_t body_size)
{
    assert(self && instance && topic && header && (body || body_size == 0));
    size_t charge = s_charge(topic_size, body_size);
    if (charge > self->max_bytes)
        return 0;
    const s_stream_t *known = hvn_idmap_lookup(self->streams, instance);
    if (known && s_stream_at(known, known->count - 1)->seq >= seq)
        return 0;
    while (self->bytes + charge > self->max_bytes)
        s_evict(self);
    s_entry_t *entry = malloc(sizeof(*entry) + topic_size + HVN_HEADER_SIZE + body_size);
    s_stream_t *stream = entry ? s_stream_room(self, instance) : NULL;
    if (!stream) {
        free(entry);
        return -1;
    }
    *entry = (s_entry_t){.stream = stream, .seq = seq, .topic_size = topic_size,
                         .body_size = body_size};
    memcpy(entry->data, topic, topic_size);
    memcpy(entry->data + topic_size, header, HVN_HEADER_SIZE);
    if (body_size)
        memcpy(entry->data + topic_size + HVN_HEADER_SIZE, body, body_size);
    stream->entries[(stream->head + stream->count) & (stream->cap - 1)] = entry;
    stream->count++;
    if (self->newest)
        self->newest->newer = entry;
    else
        self->oldest = entry;
    self->newest = entry;
    self->bytes += charge;
    self->size++;
    return 1;
}

//  Returns the entries held for instance, and their seq span.
size_t hvn_ring_span(const hvn_ring_t *self, const uint8_t instance[16], uint64_t *first,
                     uint64_t *last)
{
    assert(self && instance && first && last);
    const s_stream_t *stream = hvn_idmap_lookup(self->streams, instance);
    *first = *last = 0;
    if (!stream)
        return 0;
    *first = s_stream_at(stream, 0)->seq;
    *last = s_stream_at(stream, stream->count - 1)->seq;
    return stream->count;
}

//  Returns the index in stream of its first entry with a seq >= seq
//  (count when none).
static size_t s_lower_bound(const s_stream_t *stream, uint64_t seq)
{
    size_t low = 0, high = stream->count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (s_stream_at(stream, mid)->seq < seq)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

//  Returns the entries visited, or -1 when fn stopped the walk.
long hvn_ring_foreach(const hvn_ring_t *self, const uint8_t instance[16], uint64_t first,
                      uint64_t last, hvn_ring_fn *fn, void *arg)
{
    assert(self && instance && fn);
    const s_stream_t *stream = hvn_idmap_lookup(self->streams, instance);
    if (!stream || first > last)
        return 0;
    long visited = 0;
    for (size_t i = s_lower_bound(stream, first); i < stream->count; i++) {
        const s_entry_t *entry = s_stream_at(stream, i);
        if (entry->seq > last)
            break;
        hvn_ring_item_t item = {
            .instance = stream->instance,
            .seq = entry->seq,
            .topic = (const char *)entry->data,
            .topic_size = entry->topic_size,
            .header = entry->data + entry->topic_size,
            .body = entry->data + entry->topic_size + HVN_HEADER_SIZE,
            .body_size = entry->body_size,
        };
        if (fn(&item, arg) != 0)
            return -1;
        visited++;
    }
    return visited;
}

//  Returns the bytes held.
size_t hvn_ring_bytes(const hvn_ring_t *self)
{
    assert(self);
    return self->bytes;
}

//  Returns the bound.
size_t hvn_ring_max_bytes(const hvn_ring_t *self)
{
    assert(self);
    return self->max_bytes;
}

//  Returns the entries held.
size_t hvn_ring_size(const hvn_ring_t *self)
{
    assert(self);
    return self->size;
}

//  Returns the instances with an entry.
size_t hvn_ring_instances(const hvn_ring_t *self)
{
    assert(self);
    return hvn_idmap_size(self->streams);
}

//  Returns the entries evicted so far.
uint64_t hvn_ring_evicted(const hvn_ring_t *self)
{
    assert(self);
    return self->evicted;
}
