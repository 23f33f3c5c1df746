/*  hvn_instances.c — publisher instances a subscriber or replica tracks. */

#include "hvn_instances.h"

#include <assert.h>
#include <czmq.h>
#include <uuid/uuid.h>

#include "hvn_proto.h"

#define S_PRUNE_EVERY_MS (60 * 1000)  //  How often idle instances are looked for
#define S_PRUNE_IDLE_MS (3600 * 1000) //  Silence after which one is forgotten

struct _hvn_instances_t {
    zhashx_t *table;   //  Instance as UUID text -> entry
    size_t entry_size; //  Bytes of an entry
    int64_t pruned_ms; //  Monotonic ms of the last prune
};

//  Returns nothing; frees an entry.
static void s_entry_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

hvn_instances_t *hvn_instances_new(size_t entry_size)
{
    assert(entry_size >= sizeof(int64_t));
    hvn_instances_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->table = zhashx_new();
    if (!self->table) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->table, s_entry_free);
    self->entry_size = entry_size;
    self->pruned_ms = zclock_mono();
    return self;
}

void hvn_instances_destroy(hvn_instances_t **self_p)
{
    assert(self_p);
    if (!*self_p)
        return;
    zhashx_destroy(&(*self_p)->table);
    free(*self_p);
    *self_p = NULL;
}

void *hvn_instances_get(hvn_instances_t *self, const uint8_t instance[16], bool create)
{
    char key[HVN_UUID_STR_LEN + 1];
    uuid_unparse_lower(instance, key);
    void *entry = zhashx_lookup(self->table, key);
    if (!entry && create) {
        entry = calloc(1, self->entry_size);
        if (entry && zhashx_insert(self->table, key, entry) != 0) {
            free(entry);
            entry = NULL;
        }
    }
    return entry;
}

void hvn_instances_prune(hvn_instances_t *self, int64_t now)
{
    if (now - self->pruned_ms < S_PRUNE_EVERY_MS)
        return;
    self->pruned_ms = now;
    zlist_t *idle = zlist_new();
    if (!idle)
        return;
    zlist_autofree(idle);
    for (const int64_t *heard = zhashx_first(self->table); heard; heard = zhashx_next(self->table))
        if (now - *heard > S_PRUNE_IDLE_MS)
            zlist_append(idle, (void *)zhashx_cursor(self->table));
    for (char *key = zlist_first(idle); key; key = zlist_next(idle))
        zhashx_delete(self->table, key);
    zlist_destroy(&idle);
}

size_t hvn_instances_size(hvn_instances_t *self)
{
    return zhashx_size(self->table);
}
