/*  hvn_db.c — the fleet index's tables, written once for SQLite and
    PostgreSQL.

    The one idea: compute_nodes is the schema table turned into SQL. The
    DDL, the upsert and the binding walk hvn_schema_fields, so the columns
    are the payload's fields by construction. Every statement uses $1..
    parameters, which both SQLite and libpq accept, and goes to the backend
    named by the target.
*/
#include "hvn_db.h"
#include "hvn_db_backend.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  The columns after the payload's, in compute_nodes
#define S_EXTRA_COLUMNS "created_at, updated_at, publisher_id"

//  Fields with an index of their own: the ones operators filter on
static const hvn_field_id_t s_indexed[] = {HVN_F_HOST,         HVN_F_HYPERVISOR_HOSTNAME,
                                           HVN_F_RUNNING_VMS,  HVN_F_FREE_RAM_MB,
                                           HVN_F_FREE_DISK_GB, HVN_F_VCPUS_USED};

struct _hvn_db_t {
    const hvn_db_backend_t *backend; //  SQLite or PostgreSQL
    void *conn;                      //  The backend's connection, NULL while closed
    char *target;                    //  What was opened (heap), for a reopen
    hvn_db_kind_t kind;              //  Which
    bool readonly;                   //  Opened for reading only
    char closed[600];                //  Why it is closed, while conn is NULL
};

//  Returns the last error's text of a backend's connection.
static const char *s_conn_error(const void *conn)
{
    return ((const hvn_db_conn_t *)conn)->error;
}

// --------------------------------------------------------------------------
//  Generated SQL

//  Returns the column type of field f for backend.
static const char *s_column_type(const hvn_db_backend_t *backend, int f)
{
    return hvn_schema_fields[f].type == HVN_TYPE_INT ? backend->int_type : "TEXT";
}

//  Writes one generated statement into out for backend b
typedef void(s_sql_fn)(FILE *out, const hvn_db_backend_t *b);

//  Returns the text fn writes for backend b (heap), or NULL when out of
//  memory.
static char *s_sql(s_sql_fn *fn, const hvn_db_backend_t *b)
{
    char *sql = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&sql, &size);
    if (!out)
        return NULL;
    fn(out, b);
    if (fclose(out) != 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

//  Returns nothing; writes the CREATE TABLE of compute_nodes for backend.
static void s_nodes_table_sql(FILE *out, const hvn_db_backend_t *backend)
{
    fprintf(out, "CREATE TABLE IF NOT EXISTS compute_nodes (");
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "%s %s%s, ", hvn_schema_fields[f].name, s_column_type(backend, f),
                f == HVN_F_UUID                  ? " PRIMARY KEY"
                : !hvn_schema_fields[f].nullable ? " NOT NULL"
                                                 : "");
    fprintf(out, "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, publisher_id TEXT)");
}

//  Returns the CREATE TABLE of compute_nodes for a backend (heap), or NULL.
static char *s_nodes_table(const hvn_db_backend_t *backend)
{
    return s_sql(s_nodes_table_sql, backend);
}

char *hvn_db_sql_nodes_table(hvn_db_kind_t kind)
{
    return s_nodes_table(kind == HVN_DB_POSTGRESQL ? &hvn_db_pg_backend : &hvn_db_sqlite_backend);
}

//  Returns nothing; writes "<every payload field>, created_at, updated_at,
//  publisher_id": the columns of compute_nodes in table order.
static void s_node_columns(FILE *out)
{
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "%s, ", hvn_schema_fields[f].name);
    fprintf(out, S_EXTRA_COLUMNS);
}

//  Returns nothing; writes the upsert of a compute_nodes row (the same for
//  every backend).
static void s_node_upsert_sql(FILE *out, const hvn_db_backend_t *b)
{
    (void)b;
    fprintf(out, "INSERT INTO compute_nodes (");
    s_node_columns(out);
    fprintf(out, ") VALUES (");
    for (int i = 1; i <= HVN_F_COUNT + 3; i++)
        fprintf(out, "%s$%d", i > 1 ? ", " : "", i);
    fprintf(out, ") ON CONFLICT (uuid) DO UPDATE SET ");
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (f != HVN_F_UUID)
            fprintf(out, "%s = excluded.%s, ", hvn_schema_fields[f].name,
                    hvn_schema_fields[f].name);
    fprintf(out, "updated_at = excluded.updated_at, publisher_id = excluded.publisher_id");
}

char *hvn_db_sql_node_upsert(void)
{
    return s_sql(s_node_upsert_sql, &hvn_db_sqlite_backend);
}

//  Returns nothing; writes the SELECT of every compute_nodes column.
static void s_nodes_select_sql(FILE *out, const hvn_db_backend_t *b)
{
    (void)b;
    fprintf(out, "SELECT ");
    s_node_columns(out);
    fprintf(out, " FROM compute_nodes");
}

char *hvn_db_sql_nodes_select(void)
{
    return s_sql(s_nodes_select_sql, &hvn_db_sqlite_backend);
}

//  Returns true when text is the decimal form of value.
static bool s_int_equal(const char *text, int64_t value)
{
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    return errno == 0 && *text && !*end && parsed == value;
}

bool hvn_db_row_equal(const char *const *values, size_t columns, const hvn_replica_node_t *node,
                      const char *publisher_id)
{
    assert(values && node);
    if (columns != HVN_F_COUNT + 3)
        return false;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        const char *at = (const char *)&node->node + field->offset;
        if (hvn_node_is_null(&node->node, (hvn_field_id_t)f) != (values[f] == NULL))
            return false;
        if (!values[f])
            continue;
        if (field->type == HVN_TYPE_INT ? !s_int_equal(values[f], *(const int64_t *)at)
                                        : strcmp(values[f], at) != 0)
            return false;
    }
    const char *updated_at = values[HVN_F_COUNT + 1], *pid = values[HVN_F_COUNT + 2];
    return updated_at && strcmp(updated_at, node->timestamp) == 0 && !pid == !publisher_id &&
           (!pid || strcmp(pid, publisher_id) == 0);
}

//  Returns HVN_F_COUNT after filling values with node's fields, in schema
//  order (texts point into node).
static size_t s_field_values(const hvn_node_t *node, hvn_db_value_t *values)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        const char *at = (const char *)node + field->offset;
        if (hvn_node_is_null(node, (hvn_field_id_t)f))
            values[f] = (hvn_db_value_t){HVN_DB_NULL, 0, NULL};
        else if (field->type == HVN_TYPE_INT)
            values[f] = (hvn_db_value_t){HVN_DB_INT, *(const int64_t *)at, NULL};
        else
            values[f] = (hvn_db_value_t){HVN_DB_TEXT, 0, at};
    }
    return HVN_F_COUNT;
}

size_t hvn_db_node_values(const hvn_replica_node_t *node, const char *publisher_id,
                          hvn_db_value_t *values)
{
    size_t n = s_field_values(&node->node, values);
    values[n++] = (hvn_db_value_t){HVN_DB_TEXT, 0, node->timestamp}; //  created_at (insert)
    values[n++] = (hvn_db_value_t){HVN_DB_TEXT, 0, node->timestamp}; //  updated_at
    values[n++] = publisher_id ? (hvn_db_value_t){HVN_DB_TEXT, 0, publisher_id}
                               : (hvn_db_value_t){HVN_DB_NULL, 0, NULL};
    return n;
}

char *hvn_db_timestamp(char out[32], int64_t offset_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t secs = ts.tv_sec + offset_s;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%06d", date, (int)(ts.tv_nsec / 1000));
    return out;
}

// --------------------------------------------------------------------------
//  Opening

hvn_db_kind_t hvn_db_kind_of(const char *target)
{
    assert(target);
    return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0
               ? HVN_DB_POSTGRESQL
               : HVN_DB_SQLITE;
}

//  Returns 0 after storing the schema version's text in the string at arg
//  (the hvn_db_row_fn of the version query).
static int s_version_row(size_t columns, const char *const *values, void *arg)
{
    if (columns == 1 && values[0])
        snprintf(arg, 16, "%s", values[0]);
    return 0;
}

//  Returns 0 after creating (or dropping) the secondary indexes of table:
//  those of the fields operators filter on for compute_nodes, timestamp
//  and uuid for compute_node_events; -1.
static int s_indexes(hvn_db_t *self, const char *table, bool create)
{
    bool nodes = strcmp(table, "compute_nodes") == 0;
    static const char *event_columns[] = {"timestamp", "uuid"};
    size_t count = nodes ? sizeof(s_indexed) / sizeof(s_indexed[0]) : 2;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *column = nodes ? hvn_schema_fields[s_indexed[i]].name : event_columns[i];
        char *sql = create ? zsys_sprintf("CREATE INDEX IF NOT EXISTS %s_%s ON %s (%s)", table,
                                          column, table, column)
                           : zsys_sprintf("DROP INDEX IF EXISTS %s_%s", table, column);
        rc = sql ? self->backend->exec(self->conn, sql) : -1;
        zstr_free(&sql);
    }
    return rc;
}

//  Returns 0 after creating what is missing, -1 with the reason in err.
static int s_create(hvn_db_t *self, char *err, size_t err_size)
{
    const hvn_db_backend_t *b = self->backend;
    char *nodes = s_nodes_table(b);
    char *events = zsys_sprintf("CREATE TABLE IF NOT EXISTS compute_node_events ("
                                "id %s, timestamp TEXT NOT NULL, event_type TEXT NOT NULL, "
                                "uuid TEXT NOT NULL, host TEXT, message_id TEXT UNIQUE, seq %s, "
                                "instance TEXT, source TEXT NOT NULL, payload TEXT NOT NULL)",
                                b->serial_pk, b->int_type);
    char *publishers = zsys_sprintf("CREATE TABLE IF NOT EXISTS publishers ("
                                    "instance TEXT PRIMARY KEY, seq %s NOT NULL)",
                                    b->int_type);
    int rc = nodes && events && publishers ? 0 : -1;
    const char *ddl[] = {
        "CREATE TABLE IF NOT EXISTS hvn_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        nodes,
        events,
        publishers,
    };
    for (size_t i = 0; rc == 0 && i < sizeof(ddl) / sizeof(ddl[0]); i++)
        rc = b->exec(self->conn, ddl[i]);
    if (rc == 0)
        rc = s_indexes(self, "compute_nodes", true) == 0 &&
                     s_indexes(self, "compute_node_events", true) == 0
                 ? 0
                 : -1;
    zstr_free(&nodes);
    zstr_free(&events);
    zstr_free(&publishers);
    if (rc == 0) {
        char version[16];
        snprintf(version, sizeof(version), "%d", HVN_DB_SCHEMA_VERSION);
        hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, version}};
        rc = b->run(self->conn, -1,
                    "INSERT INTO hvn_meta (key, value) VALUES ('schema_version', $1) "
                    "ON CONFLICT (key) DO NOTHING",
                    v, 1, NULL, NULL) < 0
                 ? -1
                 : 0;
    }
    if (rc != 0)
        snprintf(err, err_size, "cannot create the tables: %s", s_conn_error(self->conn));
    return rc;
}

//  Returns 0 when the database's schema version is one this code reads,
//  -1 with the reason in err.
static int s_check_version(hvn_db_t *self, char *err, size_t err_size)
{
    char version[16] = "";
    if (self->backend->run(self->conn, -1,
                           "SELECT value FROM hvn_meta WHERE key = 'schema_version'", NULL, 0,
                           s_version_row, version) < 0) {
        snprintf(err, err_size, "cannot read the schema version: %s", s_conn_error(self->conn));
        return -1;
    }
    long found = atol(version);
    if (found > HVN_DB_SCHEMA_VERSION) {
        snprintf(err, err_size,
                 "the database's schema version is %ld, newer than this program's (%d)", found,
                 HVN_DB_SCHEMA_VERSION);
        return -1;
    }
    if (found < 1) {
        snprintf(err, err_size, "the database has no hvn-index tables");
        return -1;
    }
    return 0;
}

//  Returns nothing; writes the event insert whose payload the database
//  makes from the node's fields, bound as $9.. in schema order.
static void s_event_node_insert_sql(FILE *out, const hvn_db_backend_t *b)
{
    fprintf(out,
            "INSERT INTO compute_node_events (timestamp, event_type, uuid, host, message_id, "
            "seq, instance, source, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
            "CAST(%s(",
            b->json_object);
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "%s'%s', CAST($%d AS %s)", f ? ", " : "", hvn_schema_fields[f].name, 9 + f,
                s_column_type(b, f));
    fprintf(out, ") AS TEXT)) ON CONFLICT (message_id) DO NOTHING");
}

//  Returns 0 after preparing the statements the writer uses, or -1.
static int s_prepare(hvn_db_t *self)
{
    char *upsert = hvn_db_sql_node_upsert();
    char *event_node = s_sql(s_event_node_insert_sql, self->backend);
    const char *sql[HVN_DB_STMT_COUNT] = {
        [HVN_DB_STMT_UPSERT_NODE] = upsert,
        [HVN_DB_STMT_DELETE_NODE] = "DELETE FROM compute_nodes WHERE uuid = $1",
        [HVN_DB_STMT_INSERT_EVENT] =
            "INSERT INTO compute_node_events (timestamp, event_type, uuid, host, message_id, "
            "seq, instance, source, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (message_id) DO NOTHING",
        [HVN_DB_STMT_INSERT_EVENT_NODE] = event_node,
        [HVN_DB_STMT_EVENT_KNOWN] = "SELECT 1 FROM compute_node_events WHERE message_id = $1",
        [HVN_DB_STMT_PUBLISHER] =
            "INSERT INTO publishers (instance, seq) VALUES ($1, $2) ON CONFLICT (instance) "
            "DO UPDATE SET seq = excluded.seq WHERE publishers.seq < excluded.seq",
        [HVN_DB_STMT_EXPIRE] = "DELETE FROM compute_node_events WHERE id IN (SELECT id FROM "
                               "compute_node_events WHERE timestamp < $1 LIMIT $2)",
    };
    int rc = upsert && event_node ? 0 : -1;
    for (int i = 0; rc == 0 && i < HVN_DB_STMT_COUNT; i++)
        rc = self->backend->prepare(self->conn, (hvn_db_stmt_t)i, sql[i]);
    zstr_free(&upsert);
    zstr_free(&event_node);
    return rc;
}

//  Returns 0 after connecting to self->target and making the tables and
//  statements ready, or -1 with the reason in err (self->conn then NULL).
static int s_connect(hvn_db_t *self, char *err, size_t err_size)
{
    self->conn = self->backend->open(self->target, self->readonly, err, err_size);
    if (!self->conn)
        return -1;
    int rc = 0;
    if ((!self->readonly && s_create(self, err, err_size) != 0) ||
        s_check_version(self, err, err_size) != 0)
        rc = -1;
    else if (!self->readonly && s_prepare(self) != 0) {
        snprintf(err, err_size, "cannot prepare statements: %s", s_conn_error(self->conn));
        rc = -1;
    }
    if (rc != 0) {
        self->backend->close(self->conn);
        self->conn = NULL;
    }
    return rc;
}

hvn_db_t *hvn_db_open(const char *target, bool readonly, char *err, size_t err_size)
{
    assert(target && err);
    hvn_db_t *self = calloc(1, sizeof(*self));
    if (self)
        self->target = strdup(target);
    if (!self || !self->target) {
        free(self);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    self->kind = hvn_db_kind_of(target);
    self->backend = self->kind == HVN_DB_POSTGRESQL ? &hvn_db_pg_backend : &hvn_db_sqlite_backend;
    self->readonly = readonly;
    if (s_connect(self, err, err_size) != 0) {
        hvn_db_destroy(&self);
        return NULL;
    }
    return self;
}

void hvn_db_destroy(hvn_db_t **self_p)
{
    assert(self_p);
    hvn_db_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        self->backend->close(self->conn);
    free(self->target);
    free(self);
    *self_p = NULL;
}

bool hvn_db_stale(hvn_db_t *self)
{
    assert(self);
    return !self->conn || (self->backend->stale && self->backend->stale(self->conn));
}

int hvn_db_reopen(hvn_db_t *self, char *err, size_t err_size)
{
    assert(self && err);
    bool gone = hvn_db_stale(self);
    if (self->conn)
        self->backend->close(self->conn);
    self->conn = NULL;
    if (gone && !self->readonly && self->backend->discard)
        self->backend->discard(self->target);
    if (s_connect(self, err, err_size) != 0) {
        snprintf(self->closed, sizeof(self->closed), "the database is closed: %s", err);
        return -1;
    }
    return 0;
}

hvn_db_kind_t hvn_db_kind(hvn_db_t *self)
{
    assert(self);
    return self->kind;
}

const char *hvn_db_error(hvn_db_t *self)
{
    assert(self);
    return self->conn ? s_conn_error(self->conn) : self->closed;
}

//  Returns as the backend's exec does, or -1 while the database is closed.
static int s_exec(hvn_db_t *self, const char *sql)
{
    return self->conn ? self->backend->exec(self->conn, sql) : -1;
}

//  Returns as the backend's run does, or -1 while the database is closed.
static int s_run(hvn_db_t *self, int slot, const char *sql, const hvn_db_value_t *params,
                 size_t count, hvn_db_row_fn *fn, void *arg)
{
    return self->conn ? self->backend->run(self->conn, slot, sql, params, count, fn, arg) : -1;
}

// --------------------------------------------------------------------------
//  Writing

int hvn_db_begin(hvn_db_t *self)
{
    assert(self && !self->readonly);
    return s_exec(self, "BEGIN");
}

int hvn_db_commit(hvn_db_t *self)
{
    assert(self);
    return s_exec(self, "COMMIT");
}

int hvn_db_rollback(hvn_db_t *self)
{
    assert(self);
    return s_exec(self, "ROLLBACK");
}

int hvn_db_indexes(hvn_db_t *self, const char *table, bool create)
{
    assert(self && !self->readonly && table);
    assert(strcmp(table, "compute_nodes") == 0 || strcmp(table, "compute_node_events") == 0);
    return self->conn ? s_indexes(self, table, create) : -1;
}

//  Returns 1 (stopping) at the first row (the hvn_db_row_fn of a probe).
static int s_any_row(size_t columns, const char *const *values, void *arg)
{
    (void)columns;
    (void)values;
    *(bool *)arg = true;
    return 1;
}

int hvn_db_empty(hvn_db_t *self, const char *table)
{
    assert(self && table);
    assert(strcmp(table, "compute_nodes") == 0 || strcmp(table, "compute_node_events") == 0);
    char sql[80];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 1", table);
    bool any = false;
    return s_run(self, -1, sql, NULL, 0, s_any_row, &any) < 0 ? -1 : !any;
}

int hvn_db_upsert_node(hvn_db_t *self, const hvn_replica_node_t *node, const char *publisher_id)
{
    assert(self && node);
    hvn_db_value_t values[HVN_F_COUNT + 3];
    size_t n = hvn_db_node_values(node, publisher_id, values);
    return s_run(self, HVN_DB_STMT_UPSERT_NODE, NULL, values, n, NULL, NULL) < 0 ? -1 : 0;
}

int hvn_db_delete_node(hvn_db_t *self, const char *uuid)
{
    assert(self && uuid);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, uuid}};
    return s_run(self, HVN_DB_STMT_DELETE_NODE, NULL, v, 1, NULL, NULL) < 0 ? -1 : 0;
}

//  Returns s as a text value, or NULL when s is NULL.
static hvn_db_value_t s_text(const char *s)
{
    return s ? (hvn_db_value_t){HVN_DB_TEXT, 0, s} : (hvn_db_value_t){HVN_DB_NULL, 0, NULL};
}

#define S_EVENT_HEAD 8 //  Parameters of an event row before its payload

//  Returns S_EVENT_HEAD after filling v with an event row's values before
//  its payload ($1..$8 of both event inserts).
static size_t s_event_values(const hvn_db_event_t *e, hvn_db_value_t *v)
{
    const char *texts[] = {e->timestamp, e->event_type, e->uuid, e->host, e->message_id};
    for (size_t i = 0; i < 5; i++)
        v[i] = s_text(texts[i]);
    v[5] = e->seq ? (hvn_db_value_t){HVN_DB_INT, e->seq, NULL} : (hvn_db_value_t){HVN_DB_NULL};
    v[6] = s_text(e->instance);
    v[7] = s_text(e->source);
    return S_EVENT_HEAD;
}

int hvn_db_insert_event(hvn_db_t *self, const hvn_db_event_t *e)
{
    assert(self && e);
    hvn_db_value_t v[S_EVENT_HEAD + 1];
    size_t n = s_event_values(e, v);
    v[n++] = s_text(e->payload);
    return s_run(self, HVN_DB_STMT_INSERT_EVENT, NULL, v, n, NULL, NULL);
}

int hvn_db_insert_event_node(hvn_db_t *self, const hvn_db_event_t *e, const hvn_node_t *node)
{
    assert(self && e && node);
    hvn_db_value_t v[S_EVENT_HEAD + HVN_F_COUNT];
    size_t n = s_event_values(e, v);
    n += s_field_values(node, v + n);
    return s_run(self, HVN_DB_STMT_INSERT_EVENT_NODE, NULL, v, n, NULL, NULL);
}

int hvn_db_event_known(hvn_db_t *self, const char *message_id)
{
    assert(self && message_id);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, message_id}};
    return s_run(self, HVN_DB_STMT_EVENT_KNOWN, NULL, v, 1, NULL, NULL);
}

int hvn_db_publisher_seq(hvn_db_t *self, const char *instance, uint64_t seq)
{
    assert(self && instance);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, instance}, {HVN_DB_INT, (int64_t)seq, NULL}};
    return s_run(self, HVN_DB_STMT_PUBLISHER, NULL, v, 2, NULL, NULL) < 0 ? -1 : 0;
}

int hvn_db_events_expire(hvn_db_t *self, const char *timestamp, int limit)
{
    assert(self && timestamp);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, timestamp}, {HVN_DB_INT, limit, NULL}};
    return s_run(self, HVN_DB_STMT_EXPIRE, NULL, v, 2, NULL, NULL);
}

int hvn_db_query(hvn_db_t *self, const char *sql, const hvn_db_value_t *params, size_t count,
                 hvn_db_row_fn *fn, void *arg)
{
    assert(self && sql && count <= HVN_DB_PARAMS_MAX);
    return s_run(self, -1, sql, params, count, fn, arg);
}
