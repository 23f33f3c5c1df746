/*  hvn_idmap.c — a hash table keyed by 16-byte ids (UUIDs).

    Open addressing with linear probing over a power-of-two array of item
    pointers, at most 70 % full. Deletion shifts the rest of the probe run
    back instead of leaving tombstones, so a table that sees millions of
    create/delete cycles never degrades. Keys come from peers and need not
    be random (a publisher may number its nodes), so they are mixed before
    use rather than taken as the hash.
*/
#include "hvn_idmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_MIN_SLOTS                                                                                \
    4 //  Smallest table, slots (a power of two): small, since
      //  most hosts of the cache's host index hold one node

struct _hvn_idmap_t {
    void **slots; //  Item pointers; NULL = empty slot
    size_t mask;  //  Number of slots - 1
    size_t size;  //  Items held
};

//  Returns the 16 bytes at key mixed into a 64-bit hash (murmur3's finalizer
//  over both halves), so nearby keys land far apart.
static uint64_t s_hash(const uint8_t *key)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = a ^ (b * 0x9E3779B97F4A7C15ULL);
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

//  Returns the slot holding `key`, or the empty slot where it would go.
static size_t s_find(const hvn_idmap_t *self, const uint8_t *key)
{
    size_t i = (size_t)s_hash(key) & self->mask;
    while (self->slots[i] && memcmp(self->slots[i], key, HVN_ID_SIZE) != 0)
        i = (i + 1) & self->mask;
    return i;
}

//  Returns 0 with the table rebuilt over `nslots` slots, or -1 when out of
//  memory (the table is unchanged).
static int s_resize(hvn_idmap_t *self, size_t nslots)
{
    void **old = self->slots;
    size_t old_count = self->mask + 1;
    void **slots = calloc(nslots, sizeof(void *));
    if (!slots)
        return -1;
    self->slots = slots;
    self->mask = nslots - 1;
    for (size_t i = 0; old && i < old_count; i++)
        if (old[i])
            self->slots[s_find(self, old[i])] = old[i];
    free(old);
    return 0;
}

//  Returns a new, empty table, or NULL when out of memory.
hvn_idmap_t *hvn_idmap_new(void)
{
    hvn_idmap_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    if (s_resize(self, S_MIN_SLOTS) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

//  Returns nothing; the table is freed (its items are not).
void hvn_idmap_destroy(hvn_idmap_t **self_p)
{
    assert(self_p);
    if (!*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

//  Returns the item whose key is `key`, or NULL.
void *hvn_idmap_lookup(const hvn_idmap_t *self, const uint8_t key[HVN_ID_SIZE])
{
    assert(self && key);
    return self->slots[s_find(self, key)];
}

//  Returns 0 with the item added, or -1 when out of memory.
int hvn_idmap_insert(hvn_idmap_t *self, void *item)
{
    assert(self && item);
    size_t nslots = self->mask + 1;
    if ((self->size + 1) * 10 > nslots * 7 && s_resize(self, nslots * 2) != 0)
        return -1;
    size_t i = s_find(self, item);
    assert(self->slots[i] == NULL);
    self->slots[i] = item;
    self->size++;
    return 0;
}

//  Returns the removed item, or NULL when no item has that key.
void *hvn_idmap_remove(hvn_idmap_t *self, const uint8_t key[HVN_ID_SIZE])
{
    assert(self && key);
    size_t hole = s_find(self, key);
    void *item = self->slots[hole];
    if (!item)
        return NULL;
    self->slots[hole] = NULL;
    self->size--;
    //  Shift back every later item of the run whose home is not between
    //  the hole and its slot (cyclically), so no lookup stops early.
    size_t i = (hole + 1) & self->mask;
    while (self->slots[i]) {
        size_t home = (size_t)s_hash(self->slots[i]) & self->mask;
        int movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
        if (movable) {
            self->slots[hole] = self->slots[i];
            self->slots[i] = NULL;
            hole = i;
        }
        i = (i + 1) & self->mask;
    }
    return item;
}

//  Returns the number of items.
size_t hvn_idmap_size(const hvn_idmap_t *self)
{
    assert(self);
    return self->size;
}

//  Returns the number of slots.
size_t hvn_idmap_slots(const hvn_idmap_t *self)
{
    assert(self);
    return self->mask + 1;
}

//  Returns the item in slot `slot`, or NULL when the slot is empty.
void *hvn_idmap_at(const hvn_idmap_t *self, size_t slot)
{
    assert(self && slot <= self->mask);
    return self->slots[slot];
}

//  Returns the bytes of the table: its struct and its slot array.
size_t hvn_idmap_bytes(const hvn_idmap_t *self)
{
    assert(self);
    return sizeof(*self) + (self->mask + 1) * sizeof(void *);
}
