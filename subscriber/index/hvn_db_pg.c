/*  hvn_db_pg.c — hvn_db's PostgreSQL backend, on libpq.

    Parameters go as text in libpq's parameter array (never into the SQL);
    PostgreSQL infers their types from the columns. A connection found
    broken is reset once per call and its statements prepared again, so a
    restarted server costs the writer one failed batch, which it retries.
*/
#include "hvn_db_backend.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hvn_db_conn_t base;           //  The last error (first: hvn_db reads it)
    PGconn *pg;                   //  The connection
    char *sql[HVN_DB_STMT_COUNT]; //  Each prepared slot's SQL, to prepare again
} s_conn_t;

//  Returns -1 after recording the connection's error (first line) after what.
static int s_fail(s_conn_t *conn, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn->pg);
    snprintf(conn->base.error, sizeof(conn->base.error), "%s: %s", what,
             msg && *msg ? msg : "failed");
    char *eol = strchr(conn->base.error, '\n');
    if (eol)
        *eol = '\0';
    return -1;
}

//  Returns nothing; the server's notices ("already exists, skipping") are
//  not errors and are not printed.
static void s_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

//  Returns nothing; closes a connection (NULL-safe).
static void s_close(void *arg)
{
    s_conn_t *conn = arg;
    if (!conn)
        return;
    PQfinish(conn->pg);
    for (int i = 0; i < HVN_DB_STMT_COUNT; i++)
        free(conn->sql[i]);
    free(conn);
}

//  Returns a connection to the server the URI names, or NULL with the reason.
static void *s_open(const char *target, bool readonly, char *err, size_t err_size)
{
    s_conn_t *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    conn->pg = PQconnectdb(target);
    if (!conn->pg || PQstatus(conn->pg) != CONNECTION_OK) {
        snprintf(err, err_size, "cannot connect to PostgreSQL: %s",
                 conn->pg ? PQerrorMessage(conn->pg) : "out of memory");
        char *eol = strchr(err, '\n');
        if (eol)
            *eol = '\0';
        s_close(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn->pg, s_notice, NULL);
    if (readonly) {
        PGresult *res = PQexec(conn->pg, "SET default_transaction_read_only = on");
        PQclear(res);
    }
    return conn;
}

//  Returns 0 when the connection is usable, resetting a broken one and
//  preparing its statements again; -1 otherwise.
static int s_alive(s_conn_t *conn)
{
    if (PQstatus(conn->pg) == CONNECTION_OK)
        return 0;
    PQreset(conn->pg);
    if (PQstatus(conn->pg) != CONNECTION_OK)
        return s_fail(conn, "reconnect", NULL);
    for (int i = 0; i < HVN_DB_STMT_COUNT; i++) {
        if (!conn->sql[i])
            continue;
        char name[16];
        snprintf(name, sizeof(name), "hvn%d", i);
        PGresult *res = PQprepare(conn->pg, name, conn->sql[i], 0, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            s_fail(conn, "prepare", res);
        PQclear(res);
        if (!ok)
            return -1;
    }
    return 0;
}

//  Returns 0 or -1 after running sql.
static int s_exec(void *arg, const char *sql)
{
    s_conn_t *conn = arg;
    if (s_alive(conn) != 0)
        return -1;
    PGresult *res = PQexec(conn->pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : s_fail(conn, "exec", res);
    PQclear(res);
    return rc;
}

//  Returns 0 or -1 after preparing sql as slot.
static int s_prepare(void *arg, hvn_db_stmt_t slot, const char *sql)
{
    s_conn_t *conn = arg;
    free(conn->sql[slot]);
    conn->sql[slot] = strdup(sql);
    if (!conn->sql[slot])
        return -1;
    char name[16];
    snprintf(name, sizeof(name), "hvn%d", (int)slot);
    PGresult *res = PQprepare(conn->pg, name, sql, 0, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : s_fail(conn, "prepare", res);
    PQclear(res);
    return rc;
}

//  Returns as hvn_db_backend_t.run says.
static int s_run(void *arg, int slot, const char *sql, const hvn_db_value_t *params, size_t count,
                 hvn_db_row_fn *fn, void *fn_arg)
{
    s_conn_t *conn = arg;
    if (count > HVN_DB_PARAMS_MAX || s_alive(conn) != 0)
        return -1;
    char numbers[HVN_DB_PARAMS_MAX][24];
    const char *values[HVN_DB_PARAMS_MAX];
    for (size_t i = 0; i < count; i++) {
        if (params[i].type == HVN_DB_INT) {
            snprintf(numbers[i], sizeof(numbers[i]), "%" PRId64, params[i].i);
            values[i] = numbers[i];
        } else
            values[i] = params[i].type == HVN_DB_TEXT ? params[i].s : NULL;
    }
    PGresult *res;
    if (slot >= 0) {
        char name[16];
        snprintf(name, sizeof(name), "hvn%d", slot);
        res = PQexecPrepared(conn->pg, name, (int)count, values, NULL, NULL, 0);
    } else
        res = PQexecParams(conn->pg, sql, (int)count, NULL, values, NULL, NULL, 0);
    int rc;
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK)
        rc = atoi(PQcmdTuples(res));
    else if (status == PGRES_TUPLES_OK) {
        int rows = PQntuples(res), columns = PQnfields(res);
        if (columns > HVN_DB_PARAMS_MAX)
            columns = HVN_DB_PARAMS_MAX;
        const char *row[HVN_DB_PARAMS_MAX];
        rc = rows;
        for (int r = 0; fn && r < rows; r++) {
            for (int c = 0; c < columns; c++)
                row[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
            if (fn((size_t)columns, row, fn_arg) != 0)
                break;
        }
    } else
        rc = s_fail(conn, "query", res);
    PQclear(res);
    return rc;
}

const hvn_db_backend_t hvn_db_pg_backend = {
    .name = "postgresql",
    .int_type = "BIGINT",
    .serial_pk = "BIGSERIAL PRIMARY KEY",
    .json_object = "json_build_object",
    HVN_DB_BACKEND_FUNCTIONS,
};
