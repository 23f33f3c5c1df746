/*  hvn_index.h — the fleet index's writer: replica changes into tables.

        hvn_index_opts_t opts = { .db = db, .get = view_get, .arg = replica };
        hvn_index_t *index = hvn_index_new (&opts);
        //  in the replica's change callback:
        hvn_index_apply (index, event);
        //  after each hvn_replica_poll():
        int wait_ms = hvn_index_tick (index);
        hvn_index_destroy (&index);

    Changes are batched in memory: the uuids of the nodes that changed, and
    one event row per notification. A batch is written as one transaction
    as soon as no more input waits (hvn_index_eager) and 10 ms have passed
    since the last commit (a lone change is written at once, a stream in
    batches), at the latest commit_ms after its first change, and at once
    after a snapshot
    (which is applied by one replica poll, so one snapshot is always in one
    transaction: readers see the fleet before it or after it, never half).
    A changed node's row is written as the view holds it at commit time, so
    the table equals the view after every commit.

    After a snapshot, rows of nodes the view no longer holds are deleted;
    every change a snapshot made is recorded with source 'repair', never as
    a notification (a snapshot item's message_id is that of the notification
    the broker cached: when it is already recorded, no row is added).

    A failed commit is rolled back, logged (at most once a second) and
    retried with backoff (100 ms doubling to 5 s) while changes keep
    arriving: node changes are held as uuids (bounded by the fleet), event
    rows up to events_max, past which they are counted as dropped.

    A database that is no longer where it was opened (a SQLite file
    removed or replaced under the program; hvn_db_stale, checked before
    every commit and once a second) is an error: logged, counted
    (db_recreated), opened again (a new file and tables where it was
    removed), and the caller is told to take a new snapshot
    (hvn_index_resnapshot), from which every row is written again. The
    event rows held are written into the new file; what was committed to
    the removed one is gone with it.
*/
#ifndef HVN_INDEX_H_INCLUDED
#define HVN_INDEX_H_INCLUDED

#include "hvn_db.h"
#include "hvn_replica.h"

#define HVN_INDEX_COMMIT_BUCKETS 10 //  Commit latency histogram buckets (last: +Inf)

//  Returns the view's node of uuid, or NULL when the view lacks it.
typedef const hvn_replica_node_t *(hvn_index_get_fn)(const char *uuid, void *arg);

//  Returns nothing; told, after a commit, the uuid of a row it wrote or
//  deleted (at least once per such row).
typedef void(hvn_index_committed_fn)(const char *uuid, void *arg);

typedef struct {
    hvn_db_t *db;                      //  Where to write; borrowed, required
    hvn_index_get_fn *get;             //  The view (the replica's nodes); required
    void *arg;                         //  For get
    int commit_ms;                     //  Longest a change waits for its commit; 0 = 50
    int retention_days;                //  Events kept; 0 = forever
    size_t events_max;                 //  Event rows held while the database fails; 0 = 200 000
    hvn_index_committed_fn *committed; //  Told each uuid a commit wrote, or NULL
    void *committed_arg;               //  For committed
} hvn_index_opts_t;

typedef struct _hvn_index_t hvn_index_t;

//  Returns a writer, or NULL when out of memory. Options are copied.
hvn_index_t *hvn_index_new(const hvn_index_opts_t *opts);

//  Frees, dropping what was not committed. NULL-safe; sets *self_p to NULL.
void hvn_index_destroy(hvn_index_t **self_p);

//  Returns nothing; records one change of the replica's view (call it
//  from the hvn_replica_fn).
void hvn_index_apply(hvn_index_t *self, const hvn_replica_event_t *event);

//  Commits the batch when it is due (or a retry is), and expires old events
//  when that is due. Returns the ms until it should be called again (at
//  most 1000).
int hvn_index_tick(hvn_index_t *self);

//  Returns true when a batch waits, no retry is pending and the last commit
//  was at least 10 ms ago (or a snapshot's batch waits): a caller that
//  finds no more input waiting calls hvn_index_flush() at once, so that a
//  lone change is not held for commit_ms (under a steady stream, batches
//  still fill for up to commit_ms).
bool hvn_index_eager(hvn_index_t *self);

//  Commits the batch now. Returns 0 (also when nothing was pending) or -1
//  when the database failed (the batch is kept).
int hvn_index_flush(hvn_index_t *self);

//  Deletes event rows older than the retention now, in chunks. Returns the
//  number deleted, or -1 when the database failed.
int hvn_index_expire(hvn_index_t *self);

//  Returns nothing; records a notification that a broker's ring gave back
//  (REPLAY) for the time the index was not running: an event row, source
//  'notification', with its message id. compute_nodes is not touched (the
//  snapshot is newer). Such rows are written before the other rows of the
//  batch, so a snapshot item of the same message id (a repair row) is then
//  a duplicate, and a node a replayed delete removed gets no repair row.
void hvn_index_replayed(hvn_index_t *self, const hvn_msg_t *msg);

//  Returns nothing; counts notifications that were missed while the index
//  was not running and that no ring holds any more (the snapshot's repair
//  rows record what they changed).
void hvn_index_missed(hvn_index_t *self, uint64_t count);

//  Returns true once after the database was opened again (it was removed
//  or replaced): the caller then makes the view new from a snapshot (a new
//  replica), whose changes write every row again.
bool hvn_index_resnapshot(hvn_index_t *self);

typedef struct {
    uint64_t notifications;    //  Live notifications recorded
    uint64_t repairs;          //  Changes made by a snapshot, recorded as repairs
    uint64_t replayed;         //  Notifications recorded from a ring after a restart
    uint64_t replay_missed;    //  Notifications missed while down that no ring held
    uint64_t events_written;   //  Event rows added
    uint64_t events_duplicate; //  Event rows already present (same message_id)
    uint64_t events_dropped;   //  Event rows dropped past events_max
    uint64_t events_expired;   //  Event rows deleted by retention
    uint64_t rows_written;     //  compute_nodes rows inserted or updated
    uint64_t rows_deleted;     //  compute_nodes rows deleted
    uint64_t commits;          //  Transactions committed
    uint64_t db_errors;        //  Failed transactions and retention runs
    uint64_t db_recreated;     //  Times the database was found removed or replaced
    uint64_t commit_us_sum;    //  Time spent committing, microseconds
    uint64_t
        commit_buckets[HVN_INDEX_COMMIT_BUCKETS]; //  Commits by latency
                                                  //  (cumulative counts, hvn_index_commit_bounds)
    int64_t last_change_ms; //  Wall-clock ms of the last committed change; 0 none
    size_t pending_nodes;   //  Node changes not yet committed
    size_t pending_events;  //  Event rows not yet committed
    bool db_ok;             //  The last transaction succeeded
} hvn_index_stats_t;

//  Upper bounds of the commit latency buckets, seconds (the last +Inf).
extern const double hvn_index_commit_bounds[HVN_INDEX_COMMIT_BUCKETS];

//  Copies the counters into *out.
void hvn_index_stats(hvn_index_t *self, hvn_index_stats_t *out);

//  Returns a node's payload data (all fields, or for a delete id and uuid
//  only) as compact JSON, a heap string the caller frees, or NULL.
char *hvn_index_payload_json(const hvn_node_t *node, bool delete_payload);

#endif
