/*  hvn_index.c — the fleet index's writer: replica changes into tables.

    The idea: a batch is a set of node uuids and a list of event rows; at
    commit time each uuid's row is made what the view holds (or deleted
    when the view lacks it), so the table can never drift from the view,
    whatever the batch folded together or a failed commit kept for later.
*/
#include "hvn_index.h"
#include "hvn_json_int.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define S_COMMIT_MS 50          //  Default longest wait of a change
#define S_EVENTS_MAX 200000     //  Default event rows held
#define S_RETRY_MIN_MS 100      //  First retry after a failed commit
#define S_RETRY_MAX_MS 5000     //  Longest wait between retries
#define S_LOG_MS 1000           //  At most one error line per second
#define S_EXPIRE_EVERY_MS 60000 //  Retention runs
#define S_EXPIRE_CHUNK 10000    //  Rows one retention statement deletes
#define S_TICK_MAX_MS 1000      //  Longest tick wait
#define S_CHECK_MS 1000         //  The database's file is checked at least this often
#define S_BULK_MIN 10000        //  Rows into an empty table from which its indexes are built after
#define S_GROUP_MS 10           //  Under a stream, commits at most this often

const double hvn_index_commit_bounds[HVN_INDEX_COMMIT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, HUGE_VAL};

//  One event row held until its commit
typedef struct {
    char timestamp[32];                    //  Notification (or repair) time
    const char *event_type;                //  Static name
    char uuid[HVN_UUID_STR_LEN + 1];       //  The node
    char *host;                            //  Publisher host (heap) or NULL
    char message_id[HVN_UUID_STR_LEN + 1]; //  "" for none
    uint64_t seq;                          //  0 for none
    char instance[HVN_UUID_STR_LEN + 1];   //  "" for none
    bool repair;                           //  Made by a snapshot
    bool replayed;                         //  Given back by a ring: written first
    bool lazy;                             //  A snapshot item's: payload from the view
    char *payload;                         //  JSON (heap); NULL while lazy
} s_event_t;

struct _hvn_index_t {
    hvn_index_opts_t opts;   //  Copied options
    zhashx_t *touched;       //  uuid -> publisher_id (heap text, "" unknown)
    zhashx_t *publishers;    //  Instance text -> uint64_t * last seq
    zhashx_t *replay_gone;   //  uuid -> "": deleted by a replayed notification
    s_event_t *events;       //  Event rows of the batch
    size_t event_count;      //  Rows held
    size_t event_alloc;      //  Rows allocated
    bool reconcile;          //  A snapshot was applied: delete rows it lacks
    bool resnapshot;         //  The database was made again: the caller takes a snapshot
    int64_t checked_at;      //  Monotonic ms of the last check of the database's file
    bool events_held;        //  compute_node_events had rows when this commit began
    int64_t first_ms;        //  Monotonic ms of the batch's first change
    int64_t committed_ms;    //  Monotonic ms of the last commit's end
    int64_t retry_at;        //  Monotonic ms of the next retry; 0 none
    int retry_ms;            //  Current backoff
    int64_t expire_at;       //  Monotonic ms of the next retention run
    int64_t logged_ms;       //  Monotonic ms of the last error line
    uint64_t unlogged;       //  Errors since that line
    hvn_index_stats_t stats; //  Counters
};

// --------------------------------------------------------------------------
//  Payload JSON
//
//  Every notification's event row carries its payload as JSON text, so this
//  runs once per notification: it writes the flat object straight into a
//  buffer from the schema table (a building and printing of a jansson tree
//  cost some 60 000 instructions a payload, as much as the row's SQL). Its
//  output is jansson's, byte for byte (test_index_db holds it against
//  hvn_json_node, which renders with jansson): compact, keys in schema
//  order, strings as UTF-8 with '"', '\\' and control characters escaped.

//  Returns the most bytes a payload can take, with its NUL.
static size_t s_payload_cap(void)
{
    size_t cap = 3; //  {} and NUL
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        //  "name":value, with a value of an int64, null, or a string whose
        //  every byte may become \u00XX
        size_t value = field->type == HVN_TYPE_INT ? 20 : HVNI_JSON_STRING_MAX(field->size);
        cap += strlen(field->name) + 4 + (value < 4 ? 4 : value);
    }
    return cap;
}

//  Returns at after writing the decimal text of v there.
static char *s_put_int(char *at, int64_t v)
{
    char digits[20];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int n = 0;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *at++ = '-';
    while (n)
        *at++ = digits[--n];
    return at;
}

char *hvn_index_payload_json(const hvn_node_t *node, bool delete_payload)
{
    assert(node);
    static size_t cap;
    if (!cap)
        cap = s_payload_cap();
    char *text = malloc(cap);
    if (!text)
        return NULL;
    char *at = text;
    *at++ = '{';
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (delete_payload && !field->in_delete)
            continue;
        if (at[-1] != '{')
            *at++ = ',';
        at = hvni_json_string(at, field->name, strlen(field->name));
        *at++ = ':';
        const char *value = (const char *)node + field->offset;
        if (hvn_node_is_null(node, (hvn_field_id_t)f)) {
            memcpy(at, "null", 4);
            at += 4;
        } else if (field->type == HVN_TYPE_INT)
            at = s_put_int(at, *(const int64_t *)value);
        else {
            size_t len = strnlen(value, field->size);
            if (!hvn_utf8_valid(value, len)) {
                free(text);
                return NULL;
            }
            at = hvni_json_string(at, value, len);
        }
    }
    *at++ = '}';
    *at = '\0';
    char *fit = realloc(text, (size_t)(at - text) + 1);
    return fit ? fit : text;
}

// --------------------------------------------------------------------------
//  Construction

//  Returns nothing; frees a zhashx item.
static void s_free_item(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

hvn_index_t *hvn_index_new(const hvn_index_opts_t *opts)
{
    assert(opts && opts->db && opts->get);
    hvn_index_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->opts = *opts;
    if (self->opts.commit_ms <= 0)
        self->opts.commit_ms = S_COMMIT_MS;
    if (self->opts.events_max == 0)
        self->opts.events_max = S_EVENTS_MAX;
    self->touched = zhashx_new();
    self->publishers = zhashx_new();
    self->replay_gone = zhashx_new();
    if (!self->touched || !self->publishers || !self->replay_gone) {
        hvn_index_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->touched, s_free_item);
    zhashx_set_destructor(self->publishers, s_free_item);
    self->retry_ms = S_RETRY_MIN_MS;
    self->stats.db_ok = true;
    return self;
}

//  Returns nothing; frees the batch's event rows.
static void s_events_clear(hvn_index_t *self)
{
    for (size_t i = 0; i < self->event_count; i++) {
        free(self->events[i].host);
        free(self->events[i].payload);
    }
    self->event_count = 0;
}

void hvn_index_destroy(hvn_index_t **self_p)
{
    assert(self_p);
    hvn_index_t *self = *self_p;
    if (!self)
        return;
    s_events_clear(self);
    free(self->events);
    zhashx_destroy(&self->touched);
    zhashx_destroy(&self->publishers);
    zhashx_destroy(&self->replay_gone);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Recording changes

//  Returns nothing; starts the batch's clock with its first change.
static void s_dirty(hvn_index_t *self)
{
    if (zhashx_size(self->touched) == 0 && self->event_count == 0 && !self->reconcile)
        self->first_ms = zclock_mono();
}

//  Returns nothing; logs a problem, at most once a second.
static void s_log_error(hvn_index_t *self, const char *what, const char *why)
{
    int64_t now = zclock_mono();
    if (now - self->logged_ms < S_LOG_MS) {
        self->unlogged++;
        return;
    }
    zsys_error("index: %s: %s (%" PRIu64 " more since the last such line)", what, why,
               self->unlogged);
    self->logged_ms = now;
    self->unlogged = 0;
}

//  Returns nothing; marks uuid's row to be written from the view.
static void s_touch(hvn_index_t *self, const char *uuid, const char *publisher_id)
{
    char *copy = strdup(publisher_id ? publisher_id : "");
    if (!copy) {
        s_log_error(self, "out of memory", uuid);
        return;
    }
    zhashx_update(self->touched, uuid, copy);
}

//  Returns nothing; remembers the last seq of a publisher instance.
static void s_publisher(hvn_index_t *self, const char *instance, uint64_t seq)
{
    uint64_t *last = zhashx_lookup(self->publishers, instance);
    if (last) {
        if (*last < seq)
            *last = seq;
        return;
    }
    last = malloc(sizeof(*last));
    if (!last)
        return;
    *last = seq;
    zhashx_insert(self->publishers, instance, last);
}

//  Returns a new event row of the batch, or NULL when held rows are at
//  their bound (counted) or memory ran out.
static s_event_t *s_event_add(hvn_index_t *self)
{
    if (self->event_count >= self->opts.events_max) {
        self->stats.events_dropped++;
        s_log_error(self, "event rows dropped", "the database has been failing too long");
        return NULL;
    }
    if (self->event_count == self->event_alloc) {
        size_t alloc = self->event_alloc ? self->event_alloc * 2 : 256;
        s_event_t *events = realloc(self->events, alloc * sizeof(*events));
        if (!events)
            return NULL;
        self->events = events;
        self->event_alloc = alloc;
    }
    s_event_t *e = &self->events[self->event_count++];
    memset(e, 0, sizeof(*e));
    return e;
}

//  Returns the event type name of a notification.
static const char *s_event_name(hvn_event_t event)
{
    return event == HVN_EVENT_CREATE   ? HVN_EVENT_CREATE_NAME
           : event == HVN_EVENT_UPDATE ? HVN_EVENT_UPDATE_NAME
                                       : HVN_EVENT_DELETE_NAME;
}

//  Returns nothing; records the event row of msg (a notification or a
//  snapshot item). A lazy one (a snapshot item's create or update, which
//  the view holds exactly until the commit that follows the snapshot) gets
//  its payload at commit, written by the database from the view's node.
static void s_event_of_msg(hvn_index_t *self, const hvn_msg_t *msg, bool repair, bool lazy)
{
    s_event_t *e = s_event_add(self);
    if (!e)
        return;
    snprintf(e->timestamp, sizeof(e->timestamp), "%s", msg->timestamp);
    e->event_type = s_event_name(msg->event);
    snprintf(e->uuid, sizeof(e->uuid), "%s", msg->node.uuid);
    e->host = strdup(msg->host);
    snprintf(e->message_id, sizeof(e->message_id), "%s", msg->message_id);
    e->seq = msg->header.seq;
    uuid_unparse_lower(msg->header.instance, e->instance);
    e->repair = repair;
    e->lazy = lazy && msg->event != HVN_EVENT_DELETE;
    if (!e->lazy)
        e->payload = hvn_index_payload_json(&msg->node, msg->event == HVN_EVENT_DELETE);
    s_publisher(self, e->instance, e->seq);
}

//  Returns nothing; records a deletion no notification announced.
static void s_event_removed(hvn_index_t *self, const char *uuid, int64_t id, const char *host)
{
    s_event_t *e = s_event_add(self);
    if (!e)
        return;
    hvn_db_timestamp(e->timestamp, 0);
    e->event_type = HVN_EVENT_DELETE_NAME;
    snprintf(e->uuid, sizeof(e->uuid), "%s", uuid);
    e->host = host ? strdup(host) : NULL;
    e->repair = true;
    hvn_node_t node;
    hvn_node_init(&node);
    hvn_node_set_int(&node, HVN_F_ID, id);
    hvn_node_set_str(&node, HVN_F_UUID, uuid);
    e->payload = hvn_index_payload_json(&node, true);
}

void hvn_index_apply(hvn_index_t *self, const hvn_replica_event_t *event)
{
    assert(self && event);
    if (event->change == HVN_REPLICA_HEARTBEAT)
        return;
    s_dirty(self);
    switch (event->change) {
    case HVN_REPLICA_CREATED:
    case HVN_REPLICA_UPDATED:
        s_touch(self, event->node->node.uuid, event->msg ? event->msg->publisher_id : NULL);
        if (event->msg)
            s_event_of_msg(self, event->msg, event->from_snapshot, event->from_snapshot);
        if (!event->from_snapshot)
            self->stats.notifications++;
        break;
    case HVN_REPLICA_DELETED:
        if (event->msg) {
            s_touch(self, event->msg->node.uuid, NULL);
            s_event_of_msg(self, event->msg, event->from_snapshot, false);
            self->stats.notifications++;
        } else if (event->node) {
            s_touch(self, event->node->node.uuid, NULL);
            s_event_removed(self, event->node->node.uuid, event->node->node.id, event->node->host);
        }
        break;
    case HVN_REPLICA_REPLACED:
        self->reconcile = true;
        break;
    default:
        break;
    }
}

void hvn_index_replayed(hvn_index_t *self, const hvn_msg_t *msg)
{
    assert(self && msg);
    s_dirty(self);
    size_t before = self->event_count;
    s_event_of_msg(self, msg, false, false);
    if (self->event_count == before)
        return;
    self->events[before].replayed = true;
    if (msg->event == HVN_EVENT_DELETE)
        zhashx_update(self->replay_gone, msg->node.uuid, "");
    else
        zhashx_delete(self->replay_gone, msg->node.uuid);
}

void hvn_index_missed(hvn_index_t *self, uint64_t count)
{
    assert(self);
    self->stats.replay_missed += count;
}

// --------------------------------------------------------------------------
//  Committing

//  A row of compute_nodes the view may lack
typedef struct {
    char uuid[HVN_UUID_STR_LEN + 1]; //  Its uuid
    int64_t id;                      //  Its id
    char *host;                      //  Its host (heap) or NULL
} s_row_t;

//  State of one reconcile scan
typedef struct {
    hvn_index_t *self; //  The writer
    zlist_t *gone;     //  s_row_t * the view lacks
    size_t columns;    //  Columns hvn_db_sql_nodes_select gives
    size_t rows;       //  Rows read
} s_scan_t;

//  Returns 0 after noting a row the view lacks, or leaving out of the
//  batch a row that already holds what the view does (the hvn_db_row_fn).
static int s_scan_row(size_t columns, const char *const *values, void *arg)
{
    s_scan_t *scan = arg;
    hvn_index_t *self = scan->self;
    const char *uuid = values[HVN_F_UUID];
    scan->rows++;
    if (columns != scan->columns || !uuid)
        return 0;
    const hvn_replica_node_t *node = self->opts.get(uuid, self->opts.arg);
    if (node) {
        const char *pid = zhashx_lookup(self->touched, uuid);
        if (pid && hvn_db_row_equal(values, columns, node, *pid ? pid : NULL))
            zhashx_delete(self->touched, uuid); //  Nothing to write
        return 0;
    }
    s_row_t *row = calloc(1, sizeof(*row));
    if (!row)
        return 0;
    snprintf(row->uuid, sizeof(row->uuid), "%s", uuid);
    row->id = values[HVN_F_ID] ? strtoll(values[HVN_F_ID], NULL, 10) : 0;
    row->host = values[HVN_F_HOST] ? strdup(values[HVN_F_HOST]) : NULL;
    zlist_append(scan->gone, row);
    return 0;
}

//  Returns the rows of compute_nodes after reading it whole: rows of nodes
//  the view lacks are added to gone, rows equal to the view leave the
//  batch (a snapshot after a restart writes only what changed); -1.
static long s_reconcile_scan(hvn_index_t *self, zlist_t *gone)
{
    char *sql = hvn_db_sql_nodes_select();
    s_scan_t scan = {self, gone, HVN_F_COUNT + 3, 0};
    int rc = sql && hvn_db_query(self->opts.db, sql, NULL, 0, s_scan_row, &scan) >= 0 ? 0 : -1;
    free(sql);
    return rc == 0 ? (long)scan.rows : -1;
}

//  Returns nothing; frees a list of s_row_t. NULL-safe.
static void s_gone_destroy(zlist_t **gone_p)
{
    if (!*gone_p)
        return;
    for (s_row_t *row = zlist_first(*gone_p); row; row = zlist_next(*gone_p)) {
        free(row->host);
        free(row);
    }
    zlist_destroy(gone_p);
}

//  Returns 0 after deleting the rows of nodes the view lacks (each
//  recorded as a repair, unless a replayed delete records it), or -1.
static int s_reconcile(hvn_index_t *self, zlist_t *gone, hvn_index_stats_t *st)
{
    for (s_row_t *row = zlist_first(gone); row; row = zlist_next(gone)) {
        if (hvn_db_delete_node(self->opts.db, row->uuid) != 0)
            return -1;
        st->rows_deleted++;
        if (!zhashx_lookup(self->replay_gone, row->uuid))
            s_event_removed(self, row->uuid, row->id, row->host);
    }
    return 0;
}

//  Returns 0 after writing the row of every node of the batch as the view
//  holds it (deleting it when the view lacks it), or -1.
static int s_write_rows(hvn_index_t *self, hvn_index_stats_t *st)
{
    hvn_db_t *db = self->opts.db;
    for (const char *pid = zhashx_first(self->touched); pid; pid = zhashx_next(self->touched)) {
        const char *uuid = zhashx_cursor(self->touched);
        const hvn_replica_node_t *node = self->opts.get(uuid, self->opts.arg);
        if (node ? hvn_db_upsert_node(db, node, *pid ? pid : NULL) : hvn_db_delete_node(db, uuid))
            return -1;
        if (node)
            st->rows_written++;
        else
            st->rows_deleted++;
    }
    return 0;
}

//  Returns the view's node that a lazy event records (the same instance
//  and seq), or NULL.
static const hvn_replica_node_t *s_lazy_node(hvn_index_t *self, const s_event_t *e)
{
    const hvn_replica_node_t *node = self->opts.get(e->uuid, self->opts.arg);
    char instance[HVN_UUID_STR_LEN + 1];
    if (!node || node->seq != e->seq)
        return NULL;
    uuid_unparse_lower(node->instance, instance);
    return strcmp(instance, e->instance) == 0 ? node : NULL;
}

//  Returns nothing; gives every lazy event of the batch its payload now,
//  from the view (after a failed commit: the view may change before the
//  retry).
static void s_events_render(hvn_index_t *self)
{
    for (size_t i = 0; i < self->event_count; i++) {
        s_event_t *e = &self->events[i];
        if (!e->lazy || e->payload)
            continue;
        const hvn_replica_node_t *node = s_lazy_node(self, e);
        e->payload = node ? hvn_index_payload_json(&node->node, false) : NULL;
        e->lazy = false;
    }
}

//  Returns 0 after adding the batch's event rows (replayed notifications
//  first: they precede the snapshot's repairs), or -1.
static int s_write_events(hvn_index_t *self, hvn_index_stats_t *st)
{
    for (size_t k = 0; k < 2 * self->event_count; k++) {
        const s_event_t *e = &self->events[k % self->event_count];
        if (e->replayed != (k < self->event_count))
            continue;
        hvn_db_event_t row = {e->timestamp,
                              e->event_type,
                              e->uuid,
                              e->host,
                              *e->message_id ? e->message_id : NULL,
                              (int64_t)e->seq,
                              *e->instance ? e->instance : NULL,
                              e->repair ? "repair" : "notification",
                              e->payload ? e->payload : "{}"};
        const hvn_replica_node_t *node = e->lazy ? s_lazy_node(self, e) : NULL;
        //  A snapshot item already recorded (after a restart, most are) is
        //  looked up rather than its payload written to be refused
        int known = node && self->events_held && *e->message_id
                        ? hvn_db_event_known(self->opts.db, e->message_id)
                        : 0;
        int added = known < 0 ? -1
                    : known   ? 0
                    : node    ? hvn_db_insert_event_node(self->opts.db, &row, &node->node)
                              : hvn_db_insert_event(self->opts.db, &row);
        if (added < 0)
            return -1;
        if (added) {
            st->events_written++;
            st->repairs += e->repair;
            st->replayed += e->replayed;
        } else
            st->events_duplicate++;
    }
    return 0;
}

//  Returns fn's result: fn(self, st) run with table's secondary indexes
//  dropped before and built after when bulk is set (a load of many rows
//  into an empty table: one sort per index instead of an insert per row).
static int s_bulk(hvn_index_t *self, hvn_index_stats_t *st, const char *table, bool bulk,
                  int (*fn)(hvn_index_t *, hvn_index_stats_t *))
{
    if (bulk && hvn_db_indexes(self->opts.db, table, false) != 0)
        return -1;
    int rc = fn(self, st);
    if (bulk && rc == 0)
        rc = hvn_db_indexes(self->opts.db, table, true);
    return rc;
}

//  Returns 0 after writing every held change into the open transaction,
//  or -1.
static int s_write(hvn_index_t *self, hvn_index_stats_t *st)
{
    hvn_db_t *db = self->opts.db;
    zlist_t *gone = NULL;
    long rows = -1; //  In compute_nodes before the batch, when a snapshot read them
    if (self->reconcile) {
        gone = zlist_new();
        rows = gone ? s_reconcile_scan(self, gone) : -1;
        if (rows < 0) {
            s_gone_destroy(&gone);
            return -1;
        }
    }
    bool bulk = rows == 0 && zhashx_size(self->touched) >= S_BULK_MIN;
    int rc = s_bulk(self, st, "compute_nodes", bulk, s_write_rows);
    if (rc == 0 && gone)
        rc = s_reconcile(self, gone, st);
    s_gone_destroy(&gone);
    int empty = rc == 0 ? hvn_db_empty(db, "compute_node_events") : -1;
    self->events_held = empty == 0;
    bulk = self->event_count >= S_BULK_MIN && empty == 1;
    if (rc == 0)
        rc = s_bulk(self, st, "compute_node_events", bulk, s_write_events);
    if (rc != 0)
        return -1;
    for (uint64_t *seq = zhashx_first(self->publishers); seq; seq = zhashx_next(self->publishers))
        if (hvn_db_publisher_seq(db, zhashx_cursor(self->publishers), *seq) != 0)
            return -1;
    return 0;
}

//  Returns nothing; counts a commit's latency.
static void s_commit_time(hvn_index_t *self, int64_t us)
{
    self->stats.commit_us_sum += (uint64_t)us;
    for (int i = 0; i < HVN_INDEX_COMMIT_BUCKETS; i++)
        if ((double)us / 1e6 <= hvn_index_commit_bounds[i])
            self->stats.commit_buckets[i]++;
}

//  Returns nothing; tells opts.committed every uuid the batch wrote (the
//  touched ones, and those a reconcile deleted, which have event rows).
static void s_tell_committed(hvn_index_t *self)
{
    for (void *p = zhashx_first(self->touched); p; p = zhashx_next(self->touched))
        self->opts.committed(zhashx_cursor(self->touched), self->opts.committed_arg);
    for (size_t i = 0; i < self->event_count; i++)
        if (!zhashx_lookup(self->touched, self->events[i].uuid))
            self->opts.committed(self->events[i].uuid, self->opts.committed_arg);
}

//  Returns 0 when the database is where it was opened, or was found gone
//  and opened again (the batch's node changes then wait for the new
//  snapshot); -1 when it is gone and cannot be opened again yet.
static int s_check_database(hvn_index_t *self)
{
    self->checked_at = zclock_mono();
    if (!hvn_db_stale(self->opts.db))
        return 0;
    char err[600];
    if (hvn_db_reopen(self->opts.db, err, sizeof(err)) != 0) {
        self->stats.db_errors++;
        self->stats.db_ok = false;
        s_log_error(self, "the database is gone and cannot be made again", err);
        return -1;
    }
    self->stats.db_recreated++;
    zsys_error("index: the database was removed or replaced under the index: made it again; "
               "every row is written again from a new snapshot (%" PRIu64 " times so far)",
               self->stats.db_recreated);
    zhashx_purge(self->touched);
    self->reconcile = false;
    self->resnapshot = true;
    return 0;
}

bool hvn_index_resnapshot(hvn_index_t *self)
{
    assert(self);
    bool due = self->resnapshot;
    self->resnapshot = false;
    return due;
}

int hvn_index_flush(hvn_index_t *self)
{
    assert(self);
    if (zhashx_size(self->touched) == 0 && self->event_count == 0 && !self->reconcile)
        return 0;
    s_check_database(self);
    int64_t started = zclock_usecs();
    hvn_index_stats_t st = self->stats; //  Counted only if the commit succeeds
    size_t held = self->event_count;
    int rc = hvn_db_begin(self->opts.db);
    if (rc == 0)
        rc = s_write(self, &st);
    if (rc == 0)
        rc = hvn_db_commit(self->opts.db);
    if (rc != 0) {
        const char *why = hvn_db_error(self->opts.db);
        char reason[512];
        snprintf(reason, sizeof(reason), "%s", why);
        hvn_db_rollback(self->opts.db);
        //  Rows a reconcile queued belong to the retried batch's reconcile
        for (size_t i = held; i < self->event_count; i++) {
            free(self->events[i].host);
            free(self->events[i].payload);
        }
        self->event_count = held;
        s_events_render(self);
        self->stats.db_errors++;
        self->stats.db_ok = false;
        self->retry_at = zclock_mono() + self->retry_ms;
        s_log_error(self, "commit failed, changes held for a retry", reason);
        self->retry_ms = self->retry_ms * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : self->retry_ms * 2;
        return -1;
    }
    if (self->opts.committed)
        s_tell_committed(self);
    st.commits++;
    self->committed_ms = zclock_mono();
    st.db_ok = true;
    st.last_change_ms = zclock_time();
    self->stats = st;
    s_commit_time(self, zclock_usecs() - started);
    if (self->retry_at)
        zsys_info("index: the database is writable again");
    self->retry_at = 0;
    self->retry_ms = S_RETRY_MIN_MS;
    zhashx_purge(self->touched);
    zhashx_purge(self->publishers);
    zhashx_purge(self->replay_gone);
    s_events_clear(self);
    self->reconcile = false;
    return 0;
}

int hvn_index_expire(hvn_index_t *self)
{
    assert(self);
    if (self->opts.retention_days <= 0)
        return 0;
    char cutoff[32];
    hvn_db_timestamp(cutoff, -(int64_t)self->opts.retention_days * 86400);
    int total = 0, deleted;
    do {
        deleted = hvn_db_events_expire(self->opts.db, cutoff, S_EXPIRE_CHUNK);
        if (deleted < 0) {
            self->stats.db_errors++;
            s_log_error(self, "expiring old events failed", hvn_db_error(self->opts.db));
            return -1;
        }
        total += deleted;
    } while (deleted == S_EXPIRE_CHUNK);
    self->stats.events_expired += (uint64_t)total;
    return total;
}

//  Returns the monotonic ms from which a batch may be committed as soon as
//  no input waits: S_GROUP_MS after the last commit, so that a stream is
//  written in batches rather than a transaction per few changes (each
//  transaction rewrites the pages it touched), while a lone change after a
//  quiet spell is committed at once. A snapshot's batch is never held.
static int64_t s_group_at(hvn_index_t *self)
{
    return self->reconcile ? 0 : self->committed_ms + S_GROUP_MS;
}

int hvn_index_tick(hvn_index_t *self)
{
    assert(self);
    int64_t now = zclock_mono();
    bool pending = zhashx_size(self->touched) || self->event_count || self->reconcile;
    if (pending) {
        bool due = self->retry_at ? now >= self->retry_at
                                  : self->reconcile || now - self->first_ms >= self->opts.commit_ms;
        if (due)
            hvn_index_flush(self);
    }
    if (now - self->checked_at >= S_CHECK_MS)
        s_check_database(self);
    if (!self->retry_at && now >= self->expire_at) {
        hvn_index_expire(self);
        self->expire_at = now + S_EXPIRE_EVERY_MS;
    }
    pending = zhashx_size(self->touched) || self->event_count || self->reconcile;
    int64_t wait = S_TICK_MAX_MS;
    if (pending && self->retry_at)
        wait = self->retry_at - now;
    else if (pending) {
        int64_t due = self->first_ms + self->opts.commit_ms, group = s_group_at(self);
        wait = (group < due ? group : due) - now;
    }
    return wait < 0 ? 0 : wait > S_TICK_MAX_MS ? S_TICK_MAX_MS : (int)wait;
}

bool hvn_index_eager(hvn_index_t *self)
{
    assert(self);
    return !self->retry_at &&
           (zhashx_size(self->touched) || self->event_count || self->reconcile) &&
           zclock_mono() >= s_group_at(self);
}

void hvn_index_stats(hvn_index_t *self, hvn_index_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    out->pending_nodes = zhashx_size(self->touched);
    out->pending_events = self->event_count;
}
