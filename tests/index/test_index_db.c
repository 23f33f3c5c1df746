/*  test_index_db.c — the fleet index's tables and writer, on SQLite.

    Each test opens a fresh database file in its own temp dir. The writer
    is fed hand-made replica events against a view kept in the test (a
    small table of nodes), and the tables are read back with SQLite's own
    API, not through the code under test.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvn_db.h"
#include "hvn_index.h"
#include "hvn_json.h"

#define S_UUID_A "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID_B "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_UUID_C "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define S_VIEW_MAX 8

static char dir[256];
static char path[300];
static hvn_db_t *db;
static sqlite3 *reader;
static hvn_replica_node_t view[S_VIEW_MAX]; //  The test's view of the fleet
static bool in_view[S_VIEW_MAX];
static uint64_t next_seq = 1;
static char last_mid[HVN_UUID_STR_LEN + 1]; //  The message id s_change used last

static void s_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hvn-index-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/fleet.db", dir);
    char err[512];
    db = hvn_db_open(path, false, err, sizeof(err));
    cr_assert(db, "open: %s", err);
    cr_assert_eq(sqlite3_open(path, &reader), SQLITE_OK);
    memset(in_view, 0, sizeof(in_view));
    next_seq = 1;
}

static void s_teardown(void)
{
    sqlite3_close(reader);
    hvn_db_destroy(&db);
    char *cmd = zsys_sprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    zstr_free(&cmd);
}

TestSuite(index_db, .init = s_setup, .fini = s_teardown, .timeout = 30);

// --------------------------------------------------------------------------
//  Helpers

//  Returns the first column of the first row of sql as an integer (-1 none).
static long long s_int(const char *sql)
{
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(reader, sql, -1, &stmt, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(reader));
    long long value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    return value;
}

//  Returns the first column of the first row of sql as text in buf ("" none).
static char *s_text(const char *sql, char *buf, size_t size)
{
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(reader, sql, -1, &stmt, NULL), SQLITE_OK, "%s", sql);
    buf[0] = '\0';
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        snprintf(buf, size, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return buf;
}

//  Returns a whole node with plausible values.
static hvn_replica_node_t s_node(const char *uuid, int64_t id, const char *host, int64_t vcpus_used)
{
    hvn_replica_node_t n;
    memset(&n, 0, sizeof(n));
    hvn_node_init(&n.node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(&n.node, (hvn_field_id_t)f, 100 + f);
    hvn_node_set_int(&n.node, HVN_F_ID, id);
    hvn_node_set_int(&n.node, HVN_F_VCPUS_USED, vcpus_used);
    hvn_node_set_null(&n.node, HVN_F_FREE_DISK_GB);
    hvn_node_set_str(&n.node, HVN_F_UUID, uuid);
    hvn_node_set_str(&n.node, HVN_F_HOST, host);
    hvn_node_set_str(&n.node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(&n.node, HVN_F_HYPERVISOR_HOSTNAME, "h.example.org");
    hvn_node_set_str(&n.node, HVN_F_HOST_IP, "192.0.2.1");
    snprintf(n.host, sizeof(n.host), "%s", host);
    snprintf(n.timestamp, sizeof(n.timestamp), "2026-12-06 10:00:%02u.000000", (unsigned)id % 60u);
    return n;
}

//  Returns the test view's node of uuid (the hvn_index_get_fn).
static const hvn_replica_node_t *s_get(const char *uuid, void *arg)
{
    (void)arg;
    for (int i = 0; i < S_VIEW_MAX; i++)
        if (in_view[i] && strcmp(view[i].node.uuid, uuid) == 0)
            return &view[i];
    return NULL;
}

//  Returns a writer on the test's database and view.
static hvn_index_t *s_index(int retention_days)
{
    hvn_index_opts_t opts = {.db = db, .get = s_get, .retention_days = retention_days};
    hvn_index_t *index = hvn_index_new(&opts);
    cr_assert(index);
    return index;
}

//  Returns nothing; gives the writer a change of the view: node (slot) now
//  is n (create/update) or leaves the view (delete), as a live
//  notification or a snapshot's.
//  Returns nothing; fills msg as the notification of what for node n, with
//  the next seq and a new message id.
static void s_fill(hvn_msg_t *msg, hvn_event_t what, const hvn_replica_node_t *n)
{
    memset(msg, 0, sizeof(*msg));
    msg->header.kind = HVN_KIND_NOTIFICATION;
    msg->header.seq = next_seq++;
    memset(msg->header.instance, 0x11, 16);
    msg->event = what;
    msg->node = n->node;
    snprintf(msg->host, sizeof(msg->host), "%s", n->host);
    snprintf(msg->timestamp, sizeof(msg->timestamp), "%s", n->timestamp);
    snprintf(msg->publisher_id, sizeof(msg->publisher_id), "nova-compute:%.64s", n->host);
    hvn_uuid4_str(msg->message_id);
}

static void s_change(hvn_index_t *index, int slot, hvn_event_t what, const hvn_replica_node_t *n,
                     bool from_snapshot)
{
    hvn_msg_t msg;
    s_fill(&msg, what, n);
    snprintf(last_mid, sizeof(last_mid), "%s", msg.message_id);
    hvn_replica_event_t event = {.msg = &msg, .from_snapshot = from_snapshot};
    if (what == HVN_EVENT_DELETE) {
        event.change = HVN_REPLICA_DELETED;
        event.node = in_view[slot] ? &view[slot] : NULL;
        hvn_index_apply(index, &event);
        in_view[slot] = false;
    } else {
        event.change = in_view[slot] ? HVN_REPLICA_UPDATED : HVN_REPLICA_CREATED;
        view[slot] = *n;
        in_view[slot] = true;
        event.node = &view[slot];
        hvn_index_apply(index, &event);
    }
}

// --------------------------------------------------------------------------
//  Tables

Test(index_db, compute_nodes_has_a_column_per_payload_field_then_three)
{
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(reader, "PRAGMA table_info(compute_nodes)", -1, &stmt, NULL),
                 SQLITE_OK);
    const char *extra[] = {"created_at", "updated_at", "publisher_id"};
    int i = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        const char *type = (const char *)sqlite3_column_text(stmt, 2);
        int notnull = sqlite3_column_int(stmt, 3);
        if (i < HVN_F_COUNT) {
            cr_expect_str_eq(name, hvn_schema_fields[i].name);
            cr_expect_str_eq(type, hvn_schema_fields[i].type == HVN_TYPE_INT ? "INTEGER" : "TEXT");
            if (i != HVN_F_UUID)
                cr_expect_eq(notnull, !hvn_schema_fields[i].nullable, "%s", name);
        } else
            cr_expect_str_eq(name, extra[i - HVN_F_COUNT]);
        i++;
    }
    sqlite3_finalize(stmt);
    cr_assert_eq(i, HVN_F_COUNT + 3);
}

Test(index_db, schema_version_row_and_wal_journal)
{
    char buf[64];
    cr_assert_str_eq(
        s_text("SELECT value FROM hvn_meta WHERE key = 'schema_version'", buf, sizeof(buf)), "1");
    cr_assert_str_eq(s_text("PRAGMA journal_mode", buf, sizeof(buf)), "wal");
    cr_assert_eq(s_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                       "name = 'compute_nodes_running_vms'"),
                 1);
}

Test(index_db, newer_schema_version_is_refused)
{
    cr_assert_eq(sqlite3_exec(reader,
                              "UPDATE hvn_meta SET value = '99' WHERE key = 'schema_version'", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    hvn_db_destroy(&db);
    char err[512];
    db = hvn_db_open(path, false, err, sizeof(err));
    cr_assert_null(db);
    cr_assert(strstr(err, "schema version is 99"), "%s", err);
}

Test(index_db, unwritable_path_is_a_clear_error)
{
    char err[512];
    hvn_db_t *bad = hvn_db_open("/nonexistent-dir/fleet.db", false, err, sizeof(err));
    cr_assert_null(bad);
    cr_assert(strstr(err, "/nonexistent-dir/fleet.db"), "%s", err);
}

Test(index_db, upsert_keeps_created_at_and_delete_removes)
{
    hvn_replica_node_t n = s_node(S_UUID_A, 1, "cmp-1", 4);
    cr_assert_eq(hvn_db_upsert_node(db, &n, "nova-compute:cmp-1"), 0);
    snprintf(n.timestamp, sizeof(n.timestamp), "2026-12-06 11:00:00.000000");
    hvn_node_set_int(&n.node, HVN_F_VCPUS_USED, 9);
    cr_assert_eq(hvn_db_upsert_node(db, &n, "nova-compute:cmp-1"), 0);
    char buf[64];
    cr_expect_str_eq(s_text("SELECT created_at FROM compute_nodes", buf, sizeof(buf)),
                     "2026-12-06 10:00:01.000000");
    cr_expect_str_eq(s_text("SELECT updated_at FROM compute_nodes", buf, sizeof(buf)),
                     "2026-12-06 11:00:00.000000");
    cr_expect_eq(s_int("SELECT vcpus_used FROM compute_nodes"), 9);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes WHERE free_disk_gb IS NULL"), 1);
    cr_assert_eq(hvn_db_delete_node(db, S_UUID_A), 0);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 0);
}

Test(index_db, sql_metacharacters_are_stored_verbatim)
{
    const char *hostile = "x'); DROP TABLE compute_nodes; --\"%_\\";
    hvn_replica_node_t n = s_node(S_UUID_A, 1, "cmp-1", 4);
    hvn_node_set_str(&n.node, HVN_F_HYPERVISOR_TYPE, hostile);
    cr_assert_eq(hvn_db_upsert_node(db, &n, hostile), 0);
    char buf[128];
    cr_expect_str_eq(s_text("SELECT hypervisor_type FROM compute_nodes", buf, sizeof(buf)),
                     hostile);
    cr_expect_str_eq(s_text("SELECT publisher_id FROM compute_nodes", buf, sizeof(buf)), hostile);
}

Test(index_db, event_with_a_known_message_id_is_not_added_twice)
{
    hvn_db_event_t e = {"2026-12-06 10:00:00.000000",
                        "compute_node.create",
                        S_UUID_A,
                        "cmp-1",
                        "3c6f8823-34ad-46c6-8043-be1a4faff487",
                        7,
                        NULL,
                        "notification",
                        "{}"};
    cr_assert_eq(hvn_db_insert_event(db, &e), 1);
    cr_assert_eq(hvn_db_insert_event(db, &e), 0);
    e.message_id = NULL;
    cr_assert_eq(hvn_db_insert_event(db, &e), 1);
    cr_assert_eq(hvn_db_insert_event(db, &e), 1); //  Rows without a message id are all kept
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events"), 3);
}

Test(index_db, publisher_seq_only_grows)
{
    const char *inst = "11111111-1111-1111-1111-111111111111";
    cr_assert_eq(hvn_db_publisher_seq(db, inst, 5), 0);
    cr_assert_eq(hvn_db_publisher_seq(db, inst, 3), 0);
    cr_expect_eq(s_int("SELECT seq FROM publishers"), 5);
    cr_assert_eq(hvn_db_publisher_seq(db, inst, 9), 0);
    cr_expect_eq(s_int("SELECT seq FROM publishers"), 9);
}

Test(index_db, upsert_sql_names_every_field_once)
{
    char *sql = hvn_db_sql_node_upsert();
    cr_assert(sql);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        char *col =
            zsys_sprintf(" %s = excluded.%s", hvn_schema_fields[f].name, hvn_schema_fields[f].name);
        cr_expect_eq(strstr(sql, col) != NULL, f != HVN_F_UUID, "%s", col);
        zstr_free(&col);
    }
    cr_expect(strstr(sql, "$21)"));
    free(sql);
}

// --------------------------------------------------------------------------
//  The writer

Test(index_db, create_update_delete_reach_the_tables_at_commit)
{
    hvn_index_t *index = s_index(0);
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1), b = s_node(S_UUID_B, 2, "cmp-2", 2);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    s_change(index, 1, HVN_EVENT_CREATE, &b, false);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 0, "nothing before the commit");
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 2);
    a.node.vcpus_used = 7;
    s_change(index, 0, HVN_EVENT_UPDATE, &a, false);
    s_change(index, 1, HVN_EVENT_DELETE, &b, false);
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_eq(s_int("SELECT vcpus_used FROM compute_nodes WHERE uuid = '" S_UUID_A "'"), 7);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'notification'"),
                 4);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE event_type = "
                       "'compute_node.delete' AND payload = '{\"id\":2,\"uuid\":\"" S_UUID_B
                       "\"}'"),
                 1);
    cr_expect_eq(s_int("SELECT seq FROM publishers"), 4);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.notifications, 4);
    cr_expect_eq(st.commits, 2);
    cr_expect_eq(st.events_written, 4);
    hvn_index_destroy(&index);
}

Test(index_db, snapshot_removes_rows_the_view_lacks_as_a_repair)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1), c = s_node(S_UUID_C, 3, "cmp-3", 3);
    cr_assert_eq(hvn_db_upsert_node(db, &c, NULL), 0); //  Left over from an earlier run
    hvn_index_t *index = s_index(0);
    s_change(index, 0, HVN_EVENT_CREATE, &a, true);
    hvn_replica_event_t replaced = {.change = HVN_REPLICA_REPLACED, .from_snapshot = true};
    hvn_index_apply(index, &replaced);
    cr_assert_eq(hvn_index_tick(index), 1000, "a snapshot commits at once");
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes WHERE uuid = '" S_UUID_A "'"), 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'repair' AND "
                       "event_type = 'compute_node.delete' AND uuid = '" S_UUID_C
                       "' AND message_id IS NULL"),
                 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'repair' AND "
                       "event_type = 'compute_node.create' AND uuid = '" S_UUID_A "'"),
                 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'notification'"),
                 0);
    hvn_index_destroy(&index);
}

Test(index_db, snapshot_item_already_recorded_adds_no_event)
{
    hvn_index_t *index = s_index(0);
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    cr_assert_eq(hvn_index_flush(index), 0);
    //  The same notification again, as a snapshot item after a restart
    hvn_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    char mid[64];
    s_text("SELECT message_id FROM compute_node_events", mid, sizeof(mid));
    snprintf(msg.message_id, sizeof(msg.message_id), "%.36s", mid);
    msg.event = HVN_EVENT_CREATE;
    msg.node = a.node;
    msg.header.seq = 1;
    snprintf(msg.timestamp, sizeof(msg.timestamp), "%s", a.timestamp);
    hvn_replica_event_t event = {HVN_REPLICA_CREATED, &view[0], &msg, true};
    hvn_index_apply(index, &event);
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events"), 1);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.events_duplicate, 1);
    hvn_index_destroy(&index);
}

Test(index_db, failed_commit_keeps_the_batch_and_a_retry_writes_it)
{
    hvn_index_t *index = s_index(0);
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    //  The events table goes away under the writer
    cr_assert_eq(
        sqlite3_exec(reader, "ALTER TABLE compute_node_events RENAME TO gone", NULL, NULL, NULL),
        SQLITE_OK);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    cr_assert_eq(hvn_index_flush(index), -1);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.db_errors, 1);
    cr_expect_not(st.db_ok);
    cr_expect_eq(st.pending_nodes, 1);
    cr_expect_eq(st.pending_events, 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 0, "rolled back whole");
    //  It comes back; the retry is due after the backoff
    cr_assert_eq(
        sqlite3_exec(reader, "ALTER TABLE gone RENAME TO compute_node_events", NULL, NULL, NULL),
        SQLITE_OK);
    int64_t deadline = zclock_mono() + 5000;
    while (zclock_mono() < deadline) {
        hvn_index_stats(index, &st);
        if (st.db_ok)
            break;
        zclock_sleep(hvn_index_tick(index));
    }
    cr_assert(st.db_ok);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events"), 1);
    hvn_index_destroy(&index);
}

Test(index_db, retention_deletes_only_old_events)
{
    hvn_db_event_t e = {"2000-01-01 00:00:00.000000",
                        "compute_node.create",
                        S_UUID_A,
                        "cmp-1",
                        NULL,
                        1,
                        NULL,
                        "notification",
                        "{}"};
    cr_assert_eq(hvn_db_insert_event(db, &e), 1);
    char now[32];
    e.timestamp = hvn_db_timestamp(now, 0);
    cr_assert_eq(hvn_db_insert_event(db, &e), 1);
    hvn_index_t *index = s_index(30);
    cr_assert_eq(hvn_index_expire(index), 1);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events"), 1);
    hvn_index_destroy(&index);
}

Test(index_db, payload_json_walks_the_schema)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    char *full = hvn_index_payload_json(&a.node, false);
    char *del = hvn_index_payload_json(&a.node, true);
    cr_assert(full && del);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        char *key = zsys_sprintf("\"%s\":", hvn_schema_fields[f].name);
        cr_expect(strstr(full, key), "%s", key);
        zstr_free(&key);
    }
    cr_expect(strstr(full, "\"free_disk_gb\":null"));
    cr_expect_str_eq(del, "{\"id\":1,\"uuid\":\"" S_UUID_A "\"}");
    free(full);
    free(del);
}

//  Returns nothing; fills the string field f of node with up to its size
//  - 1 bytes of random valid UTF-8: every control character, quotes,
//  backslashes, slashes and two-, three- and four-byte sequences.
static void s_random_text(hvn_node_t *node, int f, unsigned *seed)
{
    static const char *pieces[] = {"\"", "\\", "/", "a", "Z", "\x7f", "\xc3\xa9",
                                   "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "{}", ":,"};
    char text[HVN_STR_MAX + 1] = "";
    size_t len = 0, room = hvn_schema_fields[f].size - 1;
    int count = rand_r(seed) % 40;
    for (int i = 0; i < count; i++) {
        char one[2] = {(char)(1 + rand_r(seed) % 0x1f), 0};
        const char *piece = rand_r(seed) % 3 ? pieces[rand_r(seed) % 11] : one;
        if (len + strlen(piece) > room)
            break;
        memcpy(text + len, piece, strlen(piece) + 1);
        len += strlen(piece);
    }
    cr_assert_eq(hvn_node_set_str(node, (hvn_field_id_t)f, text), 0);
}

Test(index_db, payload_json_is_what_jansson_writes)
{
    static const int64_t ints[] = {0, 1, -1, 9, 10, -10, 4096, INT64_MAX, INT64_MIN, 7002000};
    unsigned seed = 7;
    for (int round = 0; round < 2000; round++) {
        hvn_node_t node;
        hvn_node_init(&node);
        for (int f = 0; f < HVN_F_COUNT; f++) {
            const hvn_field_t *field = &hvn_schema_fields[f];
            if (field->nullable && rand_r(&seed) % 4 == 0)
                continue; //  Left nil
            if (field->type == HVN_TYPE_INT)
                hvn_node_set_int(&node, (hvn_field_id_t)f,
                                 rand_r(&seed) % 2 ? ints[rand_r(&seed) % 10]
                                                   : (int64_t)rand_r(&seed) * rand_r(&seed));
            else
                s_random_text(&node, f, &seed);
        }
        char *fast = hvn_index_payload_json(&node, false);
        char *oracle = hvn_json_node(&node);
        cr_assert(fast && oracle);
        cr_assert_str_eq(fast, oracle, "round %d", round);
        free(fast);
        free(oracle);
    }
}

Test(index_db, payload_json_refuses_a_text_that_is_not_utf8)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    snprintf(a.node.hypervisor_type, sizeof(a.node.hypervisor_type), "QEMU\xff");
    cr_expect_null(hvn_index_payload_json(&a.node, false));
}

Test(index_db, eager_only_while_a_batch_waits_and_no_retry_is_pending)
{
    hvn_index_t *index = s_index(0);
    cr_expect_not(hvn_index_eager(index), "nothing waits");
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    cr_expect(hvn_index_eager(index));
    cr_assert_eq(
        sqlite3_exec(reader, "ALTER TABLE compute_node_events RENAME TO gone", NULL, NULL, NULL),
        SQLITE_OK);
    cr_assert_eq(hvn_index_flush(index), -1);
    cr_expect_not(hvn_index_eager(index), "a failed batch waits for its backoff");
    cr_assert_eq(
        sqlite3_exec(reader, "ALTER TABLE gone RENAME TO compute_node_events", NULL, NULL, NULL),
        SQLITE_OK);
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_not(hvn_index_eager(index), "committed");
    hvn_index_destroy(&index);
}

Test(index_db, a_stream_is_committed_in_batches_a_lone_change_at_once)
{
    hvn_index_t *index = s_index(0);
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    cr_expect(hvn_index_eager(index), "a lone change is committed at once");
    cr_assert_eq(hvn_index_flush(index), 0);
    int64_t committed = zclock_mono();
    hvn_replica_node_t b = s_node(S_UUID_B, 2, "cmp-2", 1);
    s_change(index, 1, HVN_EVENT_CREATE, &b, false);
    bool eager = hvn_index_eager(index);
    int wait_ms = hvn_index_tick(index);
    if (zclock_mono() - committed < 10)
        cr_expect_not(eager, "a change right after a commit waits to be batched");
    cr_expect_leq(wait_ms, 10, "and for no longer than the batching interval");
    while (!hvn_index_eager(index) && zclock_mono() - committed < 5000)
        usleep(1000);
    cr_expect_geq(zclock_mono() - committed, 10);
    cr_expect(hvn_index_eager(index), "then it is committed as soon as no input waits");
    hvn_index_destroy(&index);
}

// --------------------------------------------------------------------------
//  Restarts and a removed file

Test(index_db, a_snapshot_after_a_restart_writes_only_the_rows_that_changed)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1), b = s_node(S_UUID_B, 2, "cmp-2", 2);
    hvn_index_t *index = s_index(0);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    s_change(index, 1, HVN_EVENT_CREATE, &b, false);
    cr_assert_eq(hvn_index_flush(index), 0);
    hvn_index_destroy(&index);
    //  Restarted: an empty view, then the snapshot; b changed meanwhile
    memset(in_view, 0, sizeof(in_view));
    index = s_index(0);
    hvn_node_set_int(&b.node, HVN_F_VCPUS_USED, 7);
    s_change(index, 0, HVN_EVENT_CREATE, &a, true);
    s_change(index, 1, HVN_EVENT_CREATE, &b, true);
    hvn_replica_event_t replaced = {.change = HVN_REPLICA_REPLACED, .from_snapshot = true};
    hvn_index_apply(index, &replaced);
    cr_assert_eq(hvn_index_flush(index), 0);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.rows_written, 1, "only the row that changed is written");
    cr_expect_eq(st.rows_deleted, 0);
    cr_expect_eq(s_int("SELECT vcpus_used FROM compute_nodes WHERE uuid = '" S_UUID_B "'"), 7);
    cr_expect_eq(s_int("SELECT vcpus_used FROM compute_nodes WHERE uuid = '" S_UUID_A "'"), 1);
    hvn_index_destroy(&index);
}

Test(index_db, replayed_notifications_are_recorded_before_the_snapshots_repairs)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1), c = s_node(S_UUID_C, 3, "cmp-3", 3);
    cr_assert_eq(hvn_db_upsert_node(db, &c, NULL), 0); //  Written before the restart
    hvn_index_t *index = s_index(0);
    s_change(index, 0, HVN_EVENT_CREATE, &a, true); //  The snapshot: a, created while down
    char a_mid[HVN_UUID_STR_LEN + 1];
    snprintf(a_mid, sizeof(a_mid), "%s", last_mid);
    hvn_replica_event_t replaced = {.change = HVN_REPLICA_REPLACED, .from_snapshot = true};
    hvn_index_apply(index, &replaced);
    //  The ring gives back what happened while down: c deleted, a created
    hvn_msg_t msg;
    s_fill(&msg, HVN_EVENT_DELETE, &c);
    hvn_index_replayed(index, &msg);
    s_fill(&msg, HVN_EVENT_CREATE, &a);
    snprintf(msg.message_id, sizeof(msg.message_id), "%s", a_mid);
    hvn_index_replayed(index, &msg);
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'repair'"), 0,
                 "the notifications themselves explain every change");
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events WHERE source = 'notification' "
                       "AND event_type = 'compute_node.delete' AND uuid = '" S_UUID_C "'"),
                 1);
    char buf[64];
    cr_expect_str_eq(s_text("SELECT message_id FROM compute_node_events WHERE uuid = '" S_UUID_A
                            "' AND source = 'notification'",
                            buf, sizeof(buf)),
                     a_mid);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 1);
    cr_expect_eq(s_int("SELECT seq FROM publishers"), (long long)msg.header.seq);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.replayed, 2);
    cr_expect_eq(st.repairs, 0);
    hvn_index_destroy(&index);
}

Test(index_db, a_removed_file_is_stale_and_a_reopen_makes_it_again)
{
    cr_expect_not(hvn_db_stale(db));
    cr_assert_eq(unlink(path), 0);
    cr_expect(hvn_db_stale(db));
    char err[512];
    cr_assert_eq(hvn_db_reopen(db, err, sizeof(err)), 0, "%s", err);
    cr_expect_not(hvn_db_stale(db));
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    cr_assert_eq(hvn_db_upsert_node(db, &a, NULL), 0);
    sqlite3_close(reader); //  On the removed file: read the new one
    cr_assert_eq(sqlite3_open(path, &reader), SQLITE_OK);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 1);
}

Test(index_db, the_writer_notices_a_removed_file_makes_it_again_and_asks_for_a_snapshot)
{
    hvn_index_t *index = s_index(0);
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    s_change(index, 0, HVN_EVENT_CREATE, &a, false);
    cr_assert_eq(hvn_index_flush(index), 0);
    cr_expect_not(hvn_index_resnapshot(index));
    cr_assert_eq(unlink(path), 0);
    hvn_node_set_int(&a.node, HVN_F_VCPUS_USED, 2);
    s_change(index, 0, HVN_EVENT_UPDATE, &a, false);
    cr_assert_eq(hvn_index_flush(index), 0);
    hvn_index_stats_t st;
    hvn_index_stats(index, &st);
    cr_expect_eq(st.db_recreated, 1);
    cr_expect(hvn_index_resnapshot(index), "the caller is told to take a new snapshot");
    cr_expect_not(hvn_index_resnapshot(index), "once");
    sqlite3_close(reader);
    cr_assert_eq(sqlite3_open(path, &reader), SQLITE_OK);
    cr_expect_eq(s_int("SELECT count(*) FROM compute_node_events"), 1,
                 "the event row held goes into the new file");
    cr_expect_eq(s_int("SELECT count(*) FROM compute_nodes"), 0, "rows wait for the snapshot");
    hvn_index_destroy(&index);
}

Test(index_db, a_snapshot_items_payload_is_written_by_the_database_as_the_writer_would)
{
    hvn_replica_node_t a = s_node(S_UUID_A, 1, "cmp-1", 1);
    hvn_node_set_str(&a.node, HVN_F_HYPERVISOR_HOSTNAME, "q\"uote\\d\n\u00e9");
    hvn_index_t *index = s_index(0);
    s_change(index, 0, HVN_EVENT_CREATE, &a, true);
    view[0].seq = next_seq - 1; //  As the replica keeps them
    memset(view[0].instance, 0x11, 16);
    hvn_replica_event_t replaced = {.change = HVN_REPLICA_REPLACED, .from_snapshot = true};
    hvn_index_apply(index, &replaced);
    cr_assert_eq(hvn_index_flush(index), 0);
    char buf[2048];
    s_text("SELECT payload FROM compute_node_events", buf, sizeof(buf));
    char *want = hvn_index_payload_json(&a.node, false);
    json_error_t error;
    json_t *got_json = json_loads(buf, 0, &error), *want_json = json_loads(want, 0, &error);
    cr_assert_not_null(got_json, "%s", buf);
    cr_expect(json_equal(got_json, want_json), "%s != %s", buf, want);
    cr_expect(json_is_null(json_object_get(got_json, "free_disk_gb")));
    json_decref(got_json);
    json_decref(want_json);
    free(want);
    hvn_index_destroy(&index);
}
