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
    void *conn;                      //  The backend's connection
    hvn_db_kind_t kind;              //  Which
    bool readonly;                   //  Opened for reading only
};

// --------------------------------------------------------------------------
//  Generated SQL

//  Returns the column type of field f for backend.
static const char *s_column_type(const hvn_db_backend_t *backend, int f)
{
    return hvn_schema_fields[f].type == HVN_TYPE_INT ? backend->int_type : "TEXT";
}

//  Returns the CREATE TABLE of compute_nodes for a backend (heap), or NULL.
static char *s_nodes_table(const hvn_db_backend_t *backend)
{
    char *sql = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&sql, &size);
    if (!out)
        return NULL;
    fprintf(out, "CREATE TABLE IF NOT EXISTS compute_nodes (");
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "%s %s%s, ", hvn_schema_fields[f].name, s_column_type(backend, f),
                f == HVN_F_UUID                  ? " PRIMARY KEY"
                : !hvn_schema_fields[f].nullable ? " NOT NULL"
                                                 : "");
    fprintf(out, "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, publisher_id TEXT)");
    fclose(out);
    return sql;
}

char *hvn_db_sql_nodes_table(hvn_db_kind_t kind)
{
    return s_nodes_table(kind == HVN_DB_POSTGRESQL ? &hvn_db_pg_backend : &hvn_db_sqlite_backend);
}

char *hvn_db_sql_node_upsert(void)
{
    char *sql = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&sql, &size);
    if (!out)
        return NULL;
    fprintf(out, "INSERT INTO compute_nodes (");
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "%s, ", hvn_schema_fields[f].name);
    fprintf(out, S_EXTRA_COLUMNS ") VALUES (");
    for (int i = 1; i <= HVN_F_COUNT + 3; i++)
        fprintf(out, "%s$%d", i > 1 ? ", " : "", i);
    fprintf(out, ") ON CONFLICT (uuid) DO UPDATE SET ");
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (f != HVN_F_UUID)
            fprintf(out, "%s = excluded.%s, ", hvn_schema_fields[f].name,
                    hvn_schema_fields[f].name);
    fprintf(out, "updated_at = excluded.updated_at, publisher_id = excluded.publisher_id");
    fclose(out);
    return sql;
}

size_t hvn_db_node_values(const hvn_replica_node_t *node, const char *publisher_id,
                          hvn_db_value_t *values)
{
    size_t n = 0;
    for (int f = 0; f < HVN_F_COUNT; f++, n++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        const char *at = (const char *)&node->node + field->offset;
        if (hvn_node_is_null(&node->node, (hvn_field_id_t)f))
            values[n] = (hvn_db_value_t){HVN_DB_NULL, 0, NULL};
        else if (field->type == HVN_TYPE_INT)
            values[n] = (hvn_db_value_t){HVN_DB_INT, *(const int64_t *)at, NULL};
        else
            values[n] = (hvn_db_value_t){HVN_DB_TEXT, 0, at};
    }
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
        "CREATE INDEX IF NOT EXISTS compute_node_events_timestamp "
        "ON compute_node_events (timestamp)",
        "CREATE INDEX IF NOT EXISTS compute_node_events_uuid ON compute_node_events (uuid)",
    };
    for (size_t i = 0; rc == 0 && i < sizeof(ddl) / sizeof(ddl[0]); i++)
        rc = b->exec(self->conn, ddl[i]);
    for (size_t i = 0; rc == 0 && i < sizeof(s_indexed) / sizeof(s_indexed[0]); i++) {
        const char *name = hvn_schema_fields[s_indexed[i]].name;
        char *sql = zsys_sprintf("CREATE INDEX IF NOT EXISTS compute_nodes_%s "
                                 "ON compute_nodes (%s)",
                                 name, name);
        rc = sql ? b->exec(self->conn, sql) : -1;
        zstr_free(&sql);
    }
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
        snprintf(err, err_size, "cannot create the tables: %s", b->error(self->conn));
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
        snprintf(err, err_size, "cannot read the schema version: %s",
                 self->backend->error(self->conn));
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

//  Returns 0 after preparing the statements the writer uses, or -1.
static int s_prepare(hvn_db_t *self)
{
    char *upsert = hvn_db_sql_node_upsert();
    const char *sql[HVN_DB_STMT_COUNT] = {
        [HVN_DB_STMT_UPSERT_NODE] = upsert,
        [HVN_DB_STMT_DELETE_NODE] = "DELETE FROM compute_nodes WHERE uuid = $1",
        [HVN_DB_STMT_INSERT_EVENT] =
            "INSERT INTO compute_node_events (timestamp, event_type, uuid, host, message_id, "
            "seq, instance, source, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (message_id) DO NOTHING",
        [HVN_DB_STMT_PUBLISHER] =
            "INSERT INTO publishers (instance, seq) VALUES ($1, $2) ON CONFLICT (instance) "
            "DO UPDATE SET seq = excluded.seq WHERE publishers.seq < excluded.seq",
        [HVN_DB_STMT_EXPIRE] = "DELETE FROM compute_node_events WHERE id IN (SELECT id FROM "
                               "compute_node_events WHERE timestamp < $1 LIMIT $2)",
    };
    int rc = upsert ? 0 : -1;
    for (int i = 0; rc == 0 && i < HVN_DB_STMT_COUNT; i++)
        rc = self->backend->prepare(self->conn, (hvn_db_stmt_t)i, sql[i]);
    zstr_free(&upsert);
    return rc;
}

hvn_db_t *hvn_db_open(const char *target, bool readonly, char *err, size_t err_size)
{
    assert(target && err);
    hvn_db_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    self->kind = hvn_db_kind_of(target);
    self->backend = self->kind == HVN_DB_POSTGRESQL ? &hvn_db_pg_backend : &hvn_db_sqlite_backend;
    self->readonly = readonly;
    self->conn = self->backend->open(target, readonly, err, err_size);
    if (!self->conn) {
        free(self);
        return NULL;
    }
    if ((!readonly && s_create(self, err, err_size) != 0) ||
        s_check_version(self, err, err_size) != 0) {
        hvn_db_destroy(&self);
        return NULL;
    }
    if (!readonly && s_prepare(self) != 0) {
        snprintf(err, err_size, "cannot prepare statements: %s", self->backend->error(self->conn));
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
    self->backend->close(self->conn);
    free(self);
    *self_p = NULL;
}

hvn_db_kind_t hvn_db_kind(hvn_db_t *self)
{
    assert(self);
    return self->kind;
}

const char *hvn_db_error(hvn_db_t *self)
{
    assert(self);
    return self->backend->error(self->conn);
}

// --------------------------------------------------------------------------
//  Writing

int hvn_db_begin(hvn_db_t *self)
{
    assert(self && !self->readonly);
    return self->backend->exec(self->conn, "BEGIN");
}

int hvn_db_commit(hvn_db_t *self)
{
    assert(self);
    return self->backend->exec(self->conn, "COMMIT");
}

int hvn_db_rollback(hvn_db_t *self)
{
    assert(self);
    return self->backend->exec(self->conn, "ROLLBACK");
}

int hvn_db_upsert_node(hvn_db_t *self, const hvn_replica_node_t *node, const char *publisher_id)
{
    assert(self && node);
    hvn_db_value_t values[HVN_F_COUNT + 3];
    size_t n = hvn_db_node_values(node, publisher_id, values);
    return self->backend->run(self->conn, HVN_DB_STMT_UPSERT_NODE, NULL, values, n, NULL, NULL) < 0
               ? -1
               : 0;
}

int hvn_db_delete_node(hvn_db_t *self, const char *uuid)
{
    assert(self && uuid);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, uuid}};
    return self->backend->run(self->conn, HVN_DB_STMT_DELETE_NODE, NULL, v, 1, NULL, NULL) < 0 ? -1
                                                                                               : 0;
}

//  Returns s as a text value, or NULL when s is NULL.
static hvn_db_value_t s_text(const char *s)
{
    return s ? (hvn_db_value_t){HVN_DB_TEXT, 0, s} : (hvn_db_value_t){HVN_DB_NULL, 0, NULL};
}

int hvn_db_insert_event(hvn_db_t *self, const hvn_db_event_t *e)
{
    assert(self && e);
    hvn_db_value_t v[] = {
        s_text(e->timestamp),
        s_text(e->event_type),
        s_text(e->uuid),
        s_text(e->host),
        s_text(e->message_id),
        e->seq ? (hvn_db_value_t){HVN_DB_INT, e->seq, NULL} : (hvn_db_value_t){HVN_DB_NULL},
        s_text(e->instance),
        s_text(e->source),
        s_text(e->payload),
    };
    return self->backend->run(self->conn, HVN_DB_STMT_INSERT_EVENT, NULL, v, 9, NULL, NULL);
}

int hvn_db_publisher_seq(hvn_db_t *self, const char *instance, uint64_t seq)
{
    assert(self && instance);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, instance}, {HVN_DB_INT, (int64_t)seq, NULL}};
    return self->backend->run(self->conn, HVN_DB_STMT_PUBLISHER, NULL, v, 2, NULL, NULL) < 0 ? -1
                                                                                             : 0;
}

int hvn_db_events_expire(hvn_db_t *self, const char *timestamp, int limit)
{
    assert(self && timestamp);
    hvn_db_value_t v[] = {{HVN_DB_TEXT, 0, timestamp}, {HVN_DB_INT, limit, NULL}};
    return self->backend->run(self->conn, HVN_DB_STMT_EXPIRE, NULL, v, 2, NULL, NULL);
}

int hvn_db_query(hvn_db_t *self, const char *sql, const hvn_db_value_t *params, size_t count,
                 hvn_db_row_fn *fn, void *arg)
{
    assert(self && sql && count <= HVN_DB_PARAMS_MAX);
    return self->backend->run(self->conn, -1, sql, params, count, fn, arg);
}
