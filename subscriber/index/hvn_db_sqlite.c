/*  hvn_db_sqlite.c — hvn_db's SQLite backend.

    WAL journal, so readers (the sqlite3 shell, the HTTP API's own
    connection) never block the writer nor it them; synchronous=NORMAL,
    which in WAL mode loses nothing committed when the process dies (only
    an operating-system crash may lose the last commits). A busy reader is
    waited for up to five seconds. The writer keeps up to 256 MiB of pages
    in its cache (every event row lands at a random place in the message_id
    and uuid indexes, read at every batch) and checkpoints the WAL every
    64 MiB, so that pages a stream rewrites are copied once per checkpoint
    rather than once per few commits.

    Statements use $1.. parameters; SQLite numbers a $N parameter by its
    first appearance, so a prepared statement is checked once to number
    them as N, and an ad hoc one is bound by name. Ad hoc statements (the
    HTTP API's queries) are kept prepared, the S_CACHE most recently used
    by their SQL text, so a request of a shape seen before is not parsed
    and planned again.

    The file a connection opened is watched: stale() compares the device
    and inode the path names now with those it named at open, so a
    database file removed or replaced under a running program is noticed.
    Every connection keeps the WAL and shared-memory files when it closes
    (SQLITE_FCNTL_PERSIST_WAL; journal_size_limit truncates the WAL
    instead): a connection to a file that was removed must never delete,
    by name, the files of the database that replaced it.
*/
#include "hvn_db_backend.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_BUSY_MS 5000 //  Longest wait for a lock held by another connection
#define S_CACHE 16     //  Ad hoc statements kept prepared

//  One ad hoc statement kept prepared
typedef struct {
    char *sql;          //  Its text (heap), NULL for a free entry
    sqlite3_stmt *stmt; //  Prepared
    uint64_t used;      //  When it was last used (the connection's clock)
    bool busy;          //  Running now (a row callback may run another query)
} s_cached_t;

typedef struct {
    hvn_db_conn_t base;                     //  The last error (first: hvn_db reads it)
    sqlite3 *db;                            //  The connection
    sqlite3_stmt *stmts[HVN_DB_STMT_COUNT]; //  Prepared statements, by slot
    s_cached_t cache[S_CACHE];              //  Ad hoc statements, least recently used out
    uint64_t clock;                         //  Ad hoc statements run
    char *path;                             //  The file's path (heap)
    bool watched;                           //  dev and ino are those of the file opened
    dev_t dev;                              //  Its device at open
    ino_t ino;                              //  Its inode at open
} s_conn_t;

//  Returns -1 after recording the connection's error text prefixed by what.
static int s_fail(s_conn_t *conn, const char *what)
{
    snprintf(conn->base.error, sizeof(conn->base.error), "%s: %s", what, sqlite3_errmsg(conn->db));
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
    for (int i = 0; i < S_CACHE; i++) {
        sqlite3_finalize(conn->cache[i].stmt);
        free(conn->cache[i].sql);
    }
    sqlite3_close(conn->db);
    free(conn->path);
    free(conn);
}

//  Returns 0 or -1 after running sql (no parameters, rows ignored).
static int s_exec(void *arg, const char *sql)
{
    s_conn_t *conn = arg;
    char *msg = NULL;
    if (sqlite3_exec(conn->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(conn->base.error, sizeof(conn->base.error), "%s",
                 msg ? msg : sqlite3_errmsg(conn->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

//  Returns nothing; before SQLite's first use in the process, turns its
//  memory statistics off: they take a mutex on every allocation, and
//  nothing here reads them.
static void s_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); //  Refused (harmlessly) once SQLite is in use
}

//  Returns a connection to the file at target, or NULL with the reason.
static void *s_open(const char *target, bool readonly, char *err, size_t err_size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_setup);
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
    int persist = 1;
    sqlite3_file_control(conn->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    const char *setup = readonly ? "PRAGMA query_only = ON"
                                 : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                                   "PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 16384; "
                                   "PRAGMA journal_size_limit = 67108864";
    conn->path = strdup(target);
    if (!conn->path || s_exec(conn, setup) != 0) {
        snprintf(err, err_size, "cannot use %s: %s", target,
                 conn->path ? conn->base.error : "out of memory");
        s_close(conn);
        return NULL;
    }
    struct stat st;
    if (stat(target, &st) == 0 && S_ISREG(st.st_mode)) {
        conn->watched = true;
        conn->dev = st.st_dev;
        conn->ino = st.st_ino;
    }
    return conn;
}

//  Returns true when the path no longer names the file the connection
//  opened (removed, or replaced by another file).
static bool s_stale(void *arg)
{
    s_conn_t *conn = arg;
    if (!conn->watched)
        return false;
    struct stat st;
    if (stat(conn->path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR;
    return st.st_dev != conn->dev || st.st_ino != conn->ino;
}

//  Returns nothing; removes the WAL and shared-memory files at target's
//  path, which belong to a database file that is no longer there (a new
//  file must not be read through them).
static void s_discard(const char *target)
{
    char *wal = zsys_sprintf("%s-wal", target);
    char *shm = zsys_sprintf("%s-shm", target);
    if (wal)
        unlink(wal);
    if (shm)
        unlink(shm);
    zstr_free(&wal);
    zstr_free(&shm);
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
            snprintf(conn->base.error, sizeof(conn->base.error),
                     "prepare: parameters out of order");
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

//  Returns the cache entry of ad hoc sql, found or prepared now (evicting
//  the least recently used entry not running), or NULL (error set).
static s_cached_t *s_adhoc(s_conn_t *conn, const char *sql)
{
    s_cached_t *victim = NULL;
    conn->clock++;
    for (int i = 0; i < S_CACHE; i++) {
        s_cached_t *c = &conn->cache[i];
        if (c->busy)
            continue;
        if (c->sql && strcmp(c->sql, sql) == 0) {
            c->used = conn->clock;
            return c;
        }
        if (!victim || (victim->sql && (!c->sql || c->used < victim->used)))
            victim = c;
    }
    if (!victim) {
        snprintf(conn->base.error, sizeof(conn->base.error), "too many queries running at once");
        return NULL;
    }
    sqlite3_stmt *stmt = NULL;
    char *copy = strdup(sql);
    if (!copy) {
        snprintf(conn->base.error, sizeof(conn->base.error), "out of memory");
        return NULL;
    }
    if (sqlite3_prepare_v3(conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) !=
        SQLITE_OK) {
        free(copy);
        s_fail(conn, "prepare");
        return NULL;
    }
    sqlite3_finalize(victim->stmt);
    free(victim->sql);
    *victim = (s_cached_t){copy, stmt, conn->clock, false};
    return victim;
}

//  Returns as hvn_db_backend_t.run says.
static int s_run(void *arg, int slot, const char *sql, const hvn_db_value_t *params, size_t count,
                 hvn_db_row_fn *fn, void *fn_arg)
{
    s_conn_t *conn = arg;
    bool adhoc = slot < 0;
    s_cached_t *cached = adhoc ? s_adhoc(conn, sql) : NULL;
    sqlite3_stmt *stmt = adhoc ? (cached ? cached->stmt : NULL) : conn->stmts[slot];
    if (!stmt)
        return -1;
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
    if (cached)
        cached->busy = true;
    if (rc != 0)
        rc = s_fail(conn, "bind");
    else
        rc = s_steps(conn, stmt, fn, fn_arg);
    if (cached)
        cached->busy = false;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc;
}

const hvn_db_backend_t hvn_db_sqlite_backend = {
    .name = "sqlite",
    .int_type = "INTEGER",
    .serial_pk = "INTEGER PRIMARY KEY",
    .json_object = "json_object",
    HVN_DB_BACKEND_FUNCTIONS,
    .stale = s_stale,
    .discard = s_discard,
};
