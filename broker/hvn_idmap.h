/*  hvn_idmap.h — a hash table keyed by 16-byte ids (UUIDs).

    The broker keys two tables by a raw UUID: its cache (by node uuid) and
    its publisher instances (by instance id). Both store items that begin
    with their own 16-byte key, so the table holds only pointers: one slot
    is 8 bytes, and a lookup needs no second copy of the key.

    Items are owned by the caller; the table never frees them.
*/
#ifndef HVN_IDMAP_H_INCLUDED
#define HVN_IDMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_ID_SIZE 16 //  Bytes of a key

typedef struct _hvn_idmap_t hvn_idmap_t;

//  Returns a new, empty table, or NULL when out of memory.
hvn_idmap_t *hvn_idmap_new(void);

//  Destroys the table (not its items); NULL-safe, sets *self_p to NULL.
void hvn_idmap_destroy(hvn_idmap_t **self_p);

//  Returns the item whose key is `key`, or NULL.
void *hvn_idmap_lookup(const hvn_idmap_t *self, const uint8_t key[HVN_ID_SIZE]);

//  Adds `item`, whose first 16 bytes are its key; no item with that key
//  may be present (asserted). The table keeps the pointer, not the item.
//  Returns 0, or -1 when out of memory (the table is unchanged).
int hvn_idmap_insert(hvn_idmap_t *self, void *item);

//  Removes the item whose key is `key`. Returns it, or NULL if absent.
//  Removing may move another item into the freed slot (see hvn_idmap_at).
void *hvn_idmap_remove(hvn_idmap_t *self, const uint8_t key[HVN_ID_SIZE]);

//  Returns the number of items.
size_t hvn_idmap_size(const hvn_idmap_t *self);

//  Returns the number of slots; items are found with hvn_idmap_at.
size_t hvn_idmap_slots(const hvn_idmap_t *self);

//  Returns the item in slot `slot` (< hvn_idmap_slots), or NULL when the
//  slot is empty. To remove items while walking the slots, re-read the same
//  slot after a removal: the item that moved in has not been seen yet.
void *hvn_idmap_at(const hvn_idmap_t *self, size_t slot);

//  Returns the bytes the table itself occupies (not its items).
size_t hvn_idmap_bytes(const hvn_idmap_t *self);

#ifdef __cplusplus
}
#endif
#endif
