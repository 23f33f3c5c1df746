/*  hvn_index_replay.h — what hvn-index missed while it was not running,
    asked of the brokers' replay rings.

        hvn_index_replay_t *replay = hvn_index_replay_new (&opts, db);
        //  after the replica's first snapshot, before the writer commits it:
        hvn_index_replay_run (replay, replica, index);
        hvn_index_replay_destroy (&replay);

    The database records, per publisher instance, the last seq the index
    wrote (the publishers table). hvn_index_replay_new reads it before the
    first snapshot's batch is committed. After that snapshot, for each
    instance whose snapshot END seq is beyond the recorded one, the seqs in
    between are asked of a broker's ring with REPLAY (at most
    HVN_REPLAY_SPAN_MAX per request; each broker in turn until one holds
    them all), and each notification is handed to the writer
    (hvn_index_replayed: an event row with its message id, compute_nodes
    untouched). Seqs no ring holds any more are counted
    (hvn_index_missed) and logged: the snapshot's repair rows are then the
    record of what they changed. An instance the snapshot did not name is
    asked up to the newest seq a ring holds of it.
*/
#ifndef HVN_INDEX_REPLAY_H_INCLUDED
#define HVN_INDEX_REPLAY_H_INCLUDED

#include "hvn_db.h"
#include "hvn_index.h"
#include "hvn_replica.h"

typedef struct {
    const char *const *backends; //  Broker backend endpoints; required
    const char *const *services; //  Their service endpoints, paired by order; required
    size_t broker_count;         //  Entries in each
    const char *curve_secret;    //  Client certificate file; NULL = plain
    const char *curve_server;    //  Broker's public certificate file
    int timeout_ms;              //  Wait for each REPLAY's reply; 0 = 2000
} hvn_index_replay_opts_t;

typedef struct _hvn_index_replay_t hvn_index_replay_t;

//  Returns what db had recorded of each publisher instance (borrowing
//  opts' strings), or NULL when the table cannot be read (logged) or
//  memory ran out.
hvn_index_replay_t *hvn_index_replay_new(const hvn_index_replay_opts_t *opts, hvn_db_t *db);

//  Frees. NULL-safe; sets *self_p to NULL.
void hvn_index_replay_destroy(hvn_index_replay_t **self_p);

//  Returns the notifications handed to index after asking the rings for
//  everything the replica's last snapshot covers beyond what was recorded
//  (see above); the seqs no broker held are counted in index's stats.
int hvn_index_replay_run(hvn_index_replay_t *self, hvn_replica_t *replica, hvn_index_t *index);

#endif
