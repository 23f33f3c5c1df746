/*  hvn_instances.h — publisher instances a subscriber or replica tracks
    (internal to libhvn, not installed).

    A table keyed by the 16-byte publisher instance id of the message
    header. Each entry is entry_size bytes, zeroed when made, and begins
    with an int64_t: the monotonic ms the instance was last heard, which
    the owner keeps up to date. Instances silent for an hour are forgotten,
    so that publisher restarts do not grow the table forever.
*/
#ifndef HVN_INSTANCES_H_INCLUDED
#define HVN_INSTANCES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hvn_instances_t hvn_instances_t;

//  Returns an empty table of entries of entry_size bytes (at least an
//  int64_t), or NULL when out of memory.
hvn_instances_t *hvn_instances_new(size_t entry_size);

//  Frees the table and its entries. NULL-safe; sets *self_p to NULL.
void hvn_instances_destroy(hvn_instances_t **self_p);

//  Returns the entry of instance; when create is true an unknown one gets a
//  new zeroed entry (NULL only when out of memory), else NULL.
void *hvn_instances_get(hvn_instances_t *self, const uint8_t instance[16], bool create);

//  Returns nothing; at most once a minute, forgets the instances last heard
//  more than an hour before now (monotonic ms).
void hvn_instances_prune(hvn_instances_t *self, int64_t now);

//  Returns the number of instances held.
size_t hvn_instances_size(hvn_instances_t *self);

#endif
