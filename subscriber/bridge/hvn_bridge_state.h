/*  hvn_bridge_state.h — how far hvn-bridge got, per publisher instance,
    kept in a small file so that a restarted bridge can replay what it
    missed from the brokers' rings.

        hvn_bridge_state_t *state = hvn_bridge_state_new ();
        hvn_bridge_state_load (state, path, err, sizeof err);   //  at start
        hvn_bridge_state_mark (state, instance, seq);           //  each notification queued
        hvn_bridge_state_begin (state);                         //  now and then:
        hvn_bridge_state_hold (state, instance, seq);           //    each one unconfirmed
        hvn_bridge_state_commit (state);
        hvn_bridge_state_save (state, path);                    //    temp file + rename
        hvn_bridge_state_destroy (&state);

    Per publisher instance (the 16-byte id of the message header) two
    figures: `done`, the seq up to which every notification of the
    instance has been dealt with — confirmed by RabbitMQ, dropped past
    --max-pending (counted), or older than the bridge's first start — and
    `marked`, the highest seq queued for RabbitMQ by this run. `done` is
    what the file keeps; it only moves up, at a commit: to `marked`, held
    back to just below the lowest seq still unconfirmed.

    The file is JSON (jansson), replaced atomically: written to PATH.tmp,
    synced, renamed over PATH, the directory synced. A kill -9 leaves the
    previous file or the new one, never a torn one. An instance not heard
    of for HVN_BRIDGE_STATE_FORGET_S is left out of the next save.

    Threading: one state, one thread at a time.
*/
#ifndef HVN_BRIDGE_STATE_H_INCLUDED
#define HVN_BRIDGE_STATE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVN_BRIDGE_STATE_FORGET_S 86400 //  Silent instances are forgotten after a day

typedef struct _hvn_bridge_state_t hvn_bridge_state_t;

//  Returns an empty state, or NULL when out of memory.
hvn_bridge_state_t *hvn_bridge_state_new(void);

//  Frees. NULL-safe; sets *self_p to NULL.
void hvn_bridge_state_destroy(hvn_bridge_state_t **self_p);

//  Reads the file at path into the state (its instances' `done`, and
//  `marked` equal to it). Returns 1 when it was read, 0 when there is no
//  such file (the state is left empty), -1 with a one-line reason in err
//  when it cannot be read or is not a state file (the state is then left
//  empty: a file is taken whole or not at all).
int hvn_bridge_state_load(hvn_bridge_state_t *self, const char *path, char *err, size_t err_size);

//  Replaces the file at path with the state, atomically. Returns 0, or -1
//  with errno set (the previous file is then untouched).
int hvn_bridge_state_save(hvn_bridge_state_t *self, const char *path);

//  Returns 0 when the file at path can be replaced (PATH.tmp can be
//  created in its directory; it is removed again), -1 with errno set.
int hvn_bridge_state_probe(const char *path);

//  Returns nothing; records that seq of instance was queued for RabbitMQ
//  (or is to count as dealt with): `marked` goes up to it. Makes the
//  instance known when it was not, and notes it as heard now.
void hvn_bridge_state_mark(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq);

//  Returns nothing; makes instance known (`done` 0: everything of it is
//  still to be dealt with) when it was not, and notes it as heard now.
void hvn_bridge_state_touch(hvn_bridge_state_t *self, const uint8_t instance[16]);

//  Returns nothing; notes a known instance as heard now (its heartbeat);
//  an unknown one is left unknown.
void hvn_bridge_state_heard(hvn_bridge_state_t *self, const uint8_t instance[16]);

//  Returns true when the instance is known and seq is not above its
//  `done` or `marked`: that notification was queued or dealt with before.
bool hvn_bridge_state_covers(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq);

//  Returns the instance's `done` in *done and true when it is known, else
//  false.
bool hvn_bridge_state_done(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t *done);

//  Returns nothing; starts a commit: each instance's candidate is its
//  `marked`.
void hvn_bridge_state_begin(hvn_bridge_state_t *self);

//  Returns nothing; seq of instance is not confirmed yet: the candidate of
//  that instance stays below it.
void hvn_bridge_state_hold(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq);

//  Returns the number of instances whose `done` moved up to their
//  candidate (it never moves down).
size_t hvn_bridge_state_commit(hvn_bridge_state_t *self);

//  Calls fn with every known instance and its `done`, in no particular
//  order; fn may mark, touch and hold, not forget. Returns the number of
//  calls.
typedef void(hvn_bridge_state_fn)(const uint8_t instance[16], uint64_t done, void *arg);
size_t hvn_bridge_state_foreach(hvn_bridge_state_t *self, hvn_bridge_state_fn *fn, void *arg);

//  Returns the number of instances known.
size_t hvn_bridge_state_size(hvn_bridge_state_t *self);

#endif
