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

    A second index groups the entries by host (the topic's part after '@'):
    one id table per host holding the same entry pointers, so a publisher's
    heartbeat is checked against its own nodes only, never the whole fleet.
    A host whose last entry goes is removed at once.
*/
#include "hvn_cache.h"
#include "hvn_idmap.h"

#include <assert.h>
#include <czmq.h>
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

//  The entries of one host
typedef struct {
    hvn_idmap_t *nodes; //  Node uuid -> s_entry_t (borrowed from the cache's map)
} s_host_t;

struct _hvn_cache_t {
    hvn_idmap_t *map;      //  Node uuid -> s_entry_t (owned)
    zhashx_t *hosts;       //  Host name -> s_host_t (owned)
    size_t entry_bytes;    //  Heap bytes of all entries, chunk headers included
    size_t host_bytes;     //  Heap bytes of the per-host index
    uint8_t (*listed)[16]; //  Prune: the heartbeat's uuids, sorted
    size_t listed_cap;     //  Entries allocated in listed
};

//  Heap cost of one host in the index besides its table (counted exactly
//  by hvn_idmap_bytes): its s_host_t, its zhashx item, key and slot, and
//  the chunk headers of the table's two blocks. An estimate from czmq's
//  and glibc's struct sizes.
#define S_HOST_OVERHEAD 128

//  Returns nothing; a host record and its table are freed.
static void s_host_destroy(void **item_p)
{
    s_host_t *host = *item_p;
    if (host) {
        hvn_idmap_destroy(&host->nodes);
        free(host);
    }
    *item_p = NULL;
}

//  Returns nothing; host holds the NUL-terminated host part of a topic
//  (after its first '@'; empty when it has none).
static void s_topic_host(const uint8_t *topic, size_t topic_size, char host[HVN_TOPIC_MAX + 1])
{
    const uint8_t *at = memchr(topic, '@', topic_size);
    size_t len = at ? topic_size - (size_t)(at + 1 - topic) : 0;
    if (len)
        memcpy(host, at + 1, len);
    host[len] = '\0';
}

//  Returns 0 with entry added to its host's table (made when new), or -1
//  when out of memory (nothing changed).
static int s_host_add(hvn_cache_t *self, const char *name, s_entry_t *entry)
{
    s_host_t *host = zhashx_lookup(self->hosts, name);
    if (!host) {
        host = calloc(1, sizeof(*host));
        if (!host || !(host->nodes = hvn_idmap_new())) {
            free(host);
            return -1;
        }
        zhashx_insert(self->hosts, name, host);
        self->host_bytes += S_HOST_OVERHEAD + hvn_idmap_bytes(host->nodes);
    }
    size_t before = hvn_idmap_bytes(host->nodes);
    if (hvn_idmap_insert(host->nodes, entry) != 0) {
        if (hvn_idmap_size(host->nodes) == 0) {
            self->host_bytes -= S_HOST_OVERHEAD + before;
            zhashx_delete(self->hosts, name);
        }
        return -1;
    }
    self->host_bytes += hvn_idmap_bytes(host->nodes) - before;
    return 0;
}

//  Returns nothing; the entry of key is out of its host's table, and a host
//  left empty is gone.
static void s_host_remove(hvn_cache_t *self, const char *name, const uint8_t *key)
{
    s_host_t *host = zhashx_lookup(self->hosts, name);
    if (!host)
        return;
    size_t before = hvn_idmap_bytes(host->nodes);
    hvn_idmap_remove(host->nodes, key);
    if (hvn_idmap_size(host->nodes) == 0) {
        self->host_bytes -= S_HOST_OVERHEAD + before;
        zhashx_delete(self->hosts, name);
    } else
        self->host_bytes -= before - hvn_idmap_bytes(host->nodes);
}

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
    self->hosts = zhashx_new();
    if (!self->map || !self->hosts) {
        hvn_idmap_destroy(&self->map);
        zhashx_destroy(&self->hosts);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->hosts, s_host_destroy);
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
    zhashx_destroy(&self->hosts);
    free(self->listed);
    free(self);
    *self_p = NULL;
}

//  Returns 1 for a new entry, 0 for a replaced one, -1 when out of memory.
//  An update of a node from the same topic (nearly every update) keeps the
//  entry's host and block: a lookup, a compare of the topic and a copy of
//  the header and body.
int hvn_cache_put(hvn_cache_t *self, const uint8_t key[16], const void *topic, size_t topic_size,
                  const uint8_t header[HVN_HEADER_SIZE], const void *body, size_t body_size)
{
    assert(self && key && topic && header && (body || body_size == 0));
    assert(topic_size >= 1 && topic_size <= HVN_TOPIC_MAX);
    assert(body_size <= UINT32_MAX);
    size_t need = sizeof(s_entry_t) + topic_size + body_size;
    s_entry_t *entry = hvn_idmap_lookup(self->map, key);
    if (entry) {
        size_t usable = malloc_usable_size(entry);
        if (usable >= need && usable <= 2 * need && entry->topic_size == topic_size &&
            memcmp(entry->data, topic, topic_size) == 0) {
            memcpy(entry->header, header, HVN_HEADER_SIZE);
            entry->body_size = (uint32_t)body_size;
            if (body_size)
                memcpy(entry->data + topic_size, body, body_size);
            return 0;
        }
    }
    char host[HVN_TOPIC_MAX + 1], old_host[HVN_TOPIC_MAX + 1];
    s_topic_host(topic, topic_size, host);
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
        if (s_host_add(self, host, entry) != 0) {
            hvn_idmap_remove(self->map, key);
            free(entry);
            return -1;
        }
        self->entry_bytes += s_block_bytes(entry);
    } else {
        s_topic_host(entry->data, entry->topic_size, old_host);
        int moved = strcmp(host, old_host) != 0;
        if (malloc_usable_size(entry) < need || malloc_usable_size(entry) > 2 * need) {
            size_t before = s_block_bytes(entry);
            s_entry_t *fresh = malloc(need);
            if (!fresh)
                return -1;
            memcpy(fresh->key, key, HVN_ID_SIZE);
            hvn_idmap_remove(self->map, key);
            int rc = hvn_idmap_insert(self->map, fresh);
            assert(rc == 0); //  The slot just freed is reused: no growth
            (void)rc;
            s_host_remove(self, old_host, key);
            free(entry);
            entry = fresh;
            self->entry_bytes += s_block_bytes(entry) - before;
            moved = 1;
        } else if (moved)
            s_host_remove(self, old_host, key);
        if (moved && s_host_add(self, host, entry) != 0) {
            //  Every entry is in its host's table, or not in the cache
            hvn_idmap_remove(self->map, key);
            self->entry_bytes -= s_block_bytes(entry);
            free(entry);
            return -1;
        }
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
    char host[HVN_TOPIC_MAX + 1];
    s_topic_host(entry->data, entry->topic_size, host);
    s_host_remove(self, host, key);
    self->entry_bytes -= s_block_bytes(entry);
    free(entry);
    return 1;
}

//  qsort and bsearch order of 16-byte keys.
static int s_key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HVN_ID_SIZE);
}

//  Returns 1 when the entry may be newer than the heartbeat's list: sent by
//  `instance` with a seq above `seq`, or sent by an instance that `newer`
//  says appeared after `instance`. Else 0.
static int s_sent_after(const s_entry_t *entry, const uint8_t instance[16], uint64_t seq,
                        hvn_cache_newer_fn *newer, void *arg)
{
    hvn_header_t header;
    if (hvn_header_unpack(entry->header, HVN_HEADER_SIZE, &header) != HVN_OK)
        return 0;
    if (memcmp(header.instance, instance, 16) == 0)
        return header.seq > seq;
    return newer && newer(header.instance, arg);
}

//  Returns the number of entries of host removed: those not listed and not
//  sent after the list.
size_t hvn_cache_prune(hvn_cache_t *self, const char *host, const uint8_t (*listed)[16],
                       size_t count, const uint8_t instance[16], uint64_t seq,
                       hvn_cache_newer_fn *newer, void *arg)
{
    assert(self && host && (listed || count == 0) && instance);
    s_host_t *record = zhashx_lookup(self->hosts, host);
    if (!record)
        return 0;
    if (count > self->listed_cap) {
        uint8_t(*grown)[16] = realloc(self->listed, count * sizeof(*grown));
        if (!grown)
            return 0; //  Nothing removed: pruning is a repair, never a loss
        self->listed = grown;
        self->listed_cap = count;
    }
    if (count) {
        memcpy(self->listed, listed, count * sizeof(*listed));
        qsort(self->listed, count, sizeof(*self->listed), s_key_cmp);
    }
    //  Collect first: removing the host's last entry destroys its table
    zlistx_t *doomed = zlistx_new();
    if (!doomed)
        return 0;
    hvn_idmap_t *nodes = record->nodes;
    for (size_t i = 0; i < hvn_idmap_slots(nodes); i++) {
        s_entry_t *entry = hvn_idmap_at(nodes, i);
        if (!entry ||
            (count && bsearch(entry->key, self->listed, count, sizeof(*self->listed), s_key_cmp)))
            continue;
        if (!s_sent_after(entry, instance, seq, newer, arg))
            zlistx_add_end(doomed, entry->key);
    }
    size_t removed = 0;
    for (uint8_t *key = zlistx_first(doomed); key; key = zlistx_next(doomed)) {
        uint8_t copy[HVN_ID_SIZE];
        memcpy(copy, key, HVN_ID_SIZE); //  The key lives in the entry it frees
        removed += (size_t)hvn_cache_delete(self, copy);
    }
    zlistx_destroy(&doomed);
    return removed;
}

//  Returns the number of entries of host.
size_t hvn_cache_host_size(const hvn_cache_t *self, const char *host)
{
    assert(self && host);
    s_host_t *record = zhashx_lookup(self->hosts, host);
    return record ? hvn_idmap_size(record->nodes) : 0;
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
    return self->entry_bytes + self->host_bytes + hvn_idmap_bytes(self->map) + sizeof(*self) +
           S_CHUNK_OVERHEAD + self->listed_cap * sizeof(*self->listed);
}
