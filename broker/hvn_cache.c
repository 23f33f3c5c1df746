/*  hvn_cache.c — the broker's last-value cache.

    Each node is one heap block: a 48-byte head (key, header, sizes) then the
    topic and body bytes. A ~600-byte update body makes a ~690-byte block;
    with its 8-byte table slot (at most 70 % full) that is ≈ 700 bytes per
    node, inside the 1 KiB target. An update of a node rewrites its block in
    place when the new frames fit the block the allocator gave (and do not
    leave more than half of it unused), which they nearly always do: updates
    of one node differ by a few bytes.

    Memory is counted with malloc_usable_size (glibc) plus the allocator's
    8-byte chunk header, so cache_bytes is what the heap really spends, not
    the sum of the payloads.
*/
#include "hvn_cache.h"
#include "hvn_idmap.h"

#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK_OVERHEAD 8 //  glibc malloc's header per allocation, bytes

typedef struct {
    uint8_t key[HVN_ID_SIZE];        //  Node uuid; first, as hvn_idmap needs
    uint8_t header[HVN_HEADER_SIZE]; //  Frame 1
    uint8_t topic_size;              //  Frame 0 bytes, 1..255
    uint32_t body_size;              //  Frame 2 bytes
    uint8_t data[];                  //  Topic, then body
} s_entry_t;

struct _hvn_cache_t {
    hvn_idmap_t *map;   //  Node uuid -> s_entry_t (owned)
    size_t entry_bytes; //  Heap bytes of all entries, chunk headers included
};

//  Returns the heap bytes one block at ptr really occupies.
static size_t s_block_bytes(void *ptr)
{
    return malloc_usable_size(ptr) + S_CHUNK_OVERHEAD;
}

//  Returns nothing; item describes entry.
static void s_item_fill(const s_entry_t *entry, hvn_cache_item_t *item)
{
    item->key = entry->key;
    item->topic = (const char *)entry->data;
    item->topic_size = entry->topic_size;
    item->header = entry->header;
    item->body = entry->data + entry->topic_size;
    item->body_size = entry->body_size;
}

//  Returns a new, empty cache, or NULL when out of memory.
hvn_cache_t *hvn_cache_new(void)
{
    hvn_cache_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->map = hvn_idmap_new();
    if (!self->map) {
        free(self);
        return NULL;
    }
    return self;
}

//  Returns nothing; every entry and the cache are freed.
void hvn_cache_destroy(hvn_cache_t **self_p)
{
    assert(self_p);
    hvn_cache_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < hvn_idmap_slots(self->map); i++)
        free(hvn_idmap_at(self->map, i));
    hvn_idmap_destroy(&self->map);
    free(self);
    *self_p = NULL;
}

//  Returns 1 for a new entry, 0 for a replaced one, -1 when out of memory.
int hvn_cache_put(hvn_cache_t *self, const uint8_t key[16], const void *topic, size_t topic_size,
                  const uint8_t header[HVN_HEADER_SIZE], const void *body, size_t body_size)
{
    assert(self && key && topic && header && (body || body_size == 0));
    assert(topic_size >= 1 && topic_size <= HVN_TOPIC_MAX);
    assert(body_size <= UINT32_MAX);
    size_t need = sizeof(s_entry_t) + topic_size + body_size;
    s_entry_t *entry = hvn_idmap_lookup(self->map, key);
    int is_new = entry == NULL;
    if (is_new) {
        entry = malloc(need);
        if (!entry)
            return -1;
        memcpy(entry->key, key, HVN_ID_SIZE);
        if (hvn_idmap_insert(self->map, entry) != 0) {
            free(entry);
            return -1;
        }
        self->entry_bytes += s_block_bytes(entry);
    } else if (malloc_usable_size(entry) < need || malloc_usable_size(entry) > 2 * need) {
        size_t before = s_block_bytes(entry);
        s_entry_t *fresh = malloc(need);
        if (!fresh)
            return -1;
        memcpy(fresh->key, key, HVN_ID_SIZE);
        hvn_idmap_remove(self->map, key);
        int rc = hvn_idmap_insert(self->map, fresh);
        assert(rc == 0); //  The slot just freed is reused: no growth
        (void)rc;
        free(entry);
        entry = fresh;
        self->entry_bytes += s_block_bytes(entry) - before;
    }
    memcpy(entry->header, header, HVN_HEADER_SIZE);
    entry->topic_size = (uint8_t)topic_size;
    entry->body_size = (uint32_t)body_size;
    memcpy(entry->data, topic, topic_size);
    if (body_size)
        memcpy(entry->data + topic_size, body, body_size);
    return is_new;
}

//  Returns 1 when the entry of key was removed, 0 when there was none.
int hvn_cache_delete(hvn_cache_t *self, const uint8_t key[16])
{
    assert(self && key);
    s_entry_t *entry = hvn_idmap_remove(self->map, key);
    if (!entry)
        return 0;
    self->entry_bytes -= s_block_bytes(entry);
    free(entry);
    return 1;
}

//  Returns 1 with *item filled when key has an entry, else 0.
int hvn_cache_lookup(const hvn_cache_t *self, const uint8_t key[16], hvn_cache_item_t *item)
{
    assert(self && key && item);
    const s_entry_t *entry = hvn_idmap_lookup(self->map, key);
    if (!entry)
        return 0;
    s_item_fill(entry, item);
    return 1;
}

//  Returns the number of entries handed to fn, or -1 when fn stopped.
long hvn_cache_foreach(const hvn_cache_t *self, const void *prefix, size_t prefix_size,
                       hvn_cache_fn *fn, void *arg)
{
    assert(self && fn && (prefix || prefix_size == 0));
    long count = 0;
    size_t slots = hvn_idmap_slots(self->map);
    for (size_t i = 0; i < slots; i++) {
        const s_entry_t *entry = hvn_idmap_at(self->map, i);
        if (!entry || entry->topic_size < prefix_size)
            continue;
        if (prefix_size && memcmp(entry->data, prefix, prefix_size) != 0)
            continue;
        hvn_cache_item_t item;
        s_item_fill(entry, &item);
        if (fn(&item, arg) != 0)
            return -1;
        count++;
    }
    return count;
}

//  Returns the number of entries.
size_t hvn_cache_size(const hvn_cache_t *self)
{
    assert(self);
    return hvn_idmap_size(self->map);
}

//  Returns the heap bytes of entries, table and cache object.
size_t hvn_cache_bytes(const hvn_cache_t *self)
{
    assert(self);
    return self->entry_bytes + hvn_idmap_bytes(self->map) + sizeof(*self) + S_CHUNK_OVERHEAD;
}
