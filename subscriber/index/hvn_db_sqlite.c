/*  hvn_db_sqlite.c — hvn_db's SQLite backend.

    WAL journal, so readers (the sqlite3 shell, the HTTP API's own
    connection) never block the writer nor it them; synchronous=NORMAL,
    which in WAL mode loses nothing committed when the process dies (only
    an operating-system crash may lose the last commits). A busy reader is
    waited for up to five seconds. The writer keeps up to 64 MiB of pages
    in its cache: the indexes of a large fleet are read at every batch.

    Statements use $1.. parameters; SQLite numbers a $N parameter by its
    first appearance, so a prepared statement is checked once to number
    them as N, and an ad hoc one is bound by name.
*/
#include "hvn_db_backend.h"

#include <czmq.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BUSY_MS 5000 //  Longest wait for a lock held by another connection

typedef struct {
    sqlite3 *db;                            //  The connection
    sqlite3_stmt *stmts[HVN_DB_STMT_COUNT]; //  Prepared statements, by slot
    char error[512];                        //  Last error's text
} s_conn_t;

//  Returns -1 after recording the connection's error text prefixed by what.
static int s_fail(s_conn_t *conn, const char *what)
{
    snprintf(conn->error, sizeof(conn->error), "%s: %s", what, sqlite3_errmsg(conn->db));
    return -1;
}

//  Returns nothing; closes a connection (NULL-safe).
static void s_close(void *arg)
{
    s_conn_t *conn = arg;
    if (!conn)
        return;
    for (int i = 0; i < HVN_DB_STMT_COUNT; i++)
        sqlite3_finalize(conn->stmts[i]);
    sqlite3_close(conn->db);
    free(conn);
}

//  Returns 0 or -1 after running sql (no parameters, rows ignored).
static int s_exec(void *arg, const char *sql)
{
    s_conn_t *conn = arg;
    char *msg = NULL;
    if (sqlite3_exec(conn->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(conn->error, sizeof(conn->error), "%s", msg ? msg : sqlite3_errmsg(conn->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

//  Returns a connection to the file at target, or NULL with the reason.
static void *s_open(const char *target, bool readonly, char *err, size_t err_size)
{
    s_conn_t *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(target, &conn->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", target,
                 conn->db ? sqlite3_errmsg(conn->db) : "out of memory");
        s_close(conn);
        return NULL;
    }
    sqlite3_busy_timeout(conn->db, S_BUSY_MS);
    sqlite3_extended_result_codes(conn->db, 1);
    const char *setup = readonly ? "PRAGMA query_only = ON"
                                 : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                                   "PRAGMA cache_size = -65536";
    if (s_exec(conn, setup) != 0) {
        snprintf(err, err_size, "cannot use %s: %s", target, conn->error);
        s_close(conn);
        return NULL;
    }
    return conn;
}

//  Returns 0 or -1 after preparing sql into slot, its $N numbered as N.
static int s_prepare(void *arg, hvn_db_stmt_t slot, const char *sql)
{
    s_conn_t *conn = arg;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK)
        return s_fail(conn, "prepare");
    for (int i = 1; i <= sqlite3_bind_parameter_count(stmt); i++) {
        char name[16];
        snprintf(name, sizeof(name), "$%d", i);
        const char *found = sqlite3_bind_parameter_name(stmt, i);
        if (!found || strcmp(found, name) != 0) {
            sqlite3_finalize(stmt);
            snprintf(conn->error, sizeof(conn->error), "prepare: parameters out of order");
            return -1;
        }
    }
    sqlite3_finalize(conn->stmts[slot]);
    conn->stmts[slot] = stmt;
    return 0;
}

//  Returns 0 or -1 after binding value to parameter index i.
static int s_bind(sqlite3_stmt *stmt, int i, const hvn_db_value_t *value)
{
    switch (value->type) {
    case HVN_DB_INT:
        return sqlite3_bind_int64(stmt, i, value->i) == SQLITE_OK ? 0 : -1;
    case HVN_DB_TEXT:
        return sqlite3_bind_text(stmt, i, value->s, -1, SQLITE_STATIC) == SQLITE_OK ? 0 : -1;
    default:
        return sqlite3_bind_null(stmt, i) == SQLITE_OK ? 0 : -1;
    }
}

//  Returns the rows seen (or, without rows, the rows changed), or -1.
static int s_steps(s_conn_t *conn, sqlite3_stmt *stmt, hvn_db_row_fn *fn, void *arg)
{
    int rows = 0, rc;
    int columns = sqlite3_column_count(stmt);
    const char *values[HVN_DB_PARAMS_MAX];
    if (columns > HVN_DB_PARAMS_MAX)
        columns = HVN_DB_PARAMS_MAX;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        rows++;
        if (!fn)
            continue;
        for (int i = 0; i < columns; i++)
            values[i] = (const char *)sqlite3_column_text(stmt, i);
        if (fn((size_t)columns, values, arg) != 0)
            return rows;
    }
    if (rc != SQLITE_DONE)
        return s_fail(conn, "step");
    return columns == 0 ? sqlite3_changes(conn->db) : rows;
}

//  Returns as hvn_db_backend_t.run says.
static int s_run(void *arg, int slot, const char *sql, const hvn_db_value_t *params, size_t count,
                 hvn_db_row_fn *fn, void *fn_arg)
{
    s_conn_t *conn = arg;
    sqlite3_stmt *stmt = NULL;
    bool adhoc = slot < 0;
    if (adhoc) {
        if (sqlite3_prepare_v2(conn->db, sql, -1, &stmt, NULL) != SQLITE_OK)
            return s_fail(conn, "prepare");
    } else
        stmt = conn->stmts[slot];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        int index = (int)i + 1;
        if (adhoc) {
            char name[32];
            snprintf(name, sizeof(name), "$%zu", i + 1);
            index = sqlite3_bind_parameter_index(stmt, name);
        }
        rc = index > 0 ? s_bind(stmt, index, &params[i]) : -1;
    }
    if (rc != 0)
        rc = s_fail(conn, "bind");
    else
        rc = s_steps(conn, stmt, fn, fn_arg);
    if (adhoc)
        sqlite3_finalize(stmt);
    else {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
    return rc;
}

//  Returns the last error's text.
static const char *s_error(void *arg)
{
    return ((s_conn_t *)arg)->error;
}

const hvn_db_backend_t hvn_db_sqlite_backend = {
    .name = "sqlite",
    .int_type = "INTEGER",
    .serial_pk = "INTEGER PRIMARY KEY",
    .open = s_open,
    .close = s_close,
    .exec = s_exec,
    .prepare = s_prepare,
    .run = s_run,
    .error = s_error,
};
