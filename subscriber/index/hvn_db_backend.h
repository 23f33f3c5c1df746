/*  hvn_db_backend.h — what a database backend of hvn_db provides.

    Private to subscriber/index. A backend is a table of functions over its
    own connection object; hvn_db.c writes every statement once and hands
    it to whichever backend the target named.
*/
#ifndef HVN_DB_BACKEND_H_INCLUDED
#define HVN_DB_BACKEND_H_INCLUDED

#include "hvn_db.h"

//  Statements hvn_db prepares once per connection
typedef enum {
    HVN_DB_STMT_UPSERT_NODE = 0,
    HVN_DB_STMT_DELETE_NODE,
    HVN_DB_STMT_INSERT_EVENT,
    HVN_DB_STMT_INSERT_EVENT_NODE,
    HVN_DB_STMT_EVENT_KNOWN,
    HVN_DB_STMT_PUBLISHER,
    HVN_DB_STMT_EXPIRE,
    HVN_DB_STMT_COUNT
} hvn_db_stmt_t;

//  What every backend's connection begins with, so that hvn_db reads the
//  last error of either the same way
typedef struct {
    char error[512]; //  Last error's text, one line
} hvn_db_conn_t;

typedef struct {
    const char *name;        //  "sqlite", "postgresql"
    const char *int_type;    //  Column type of a 64-bit integer
    const char *serial_pk;   //  Column definition of an auto-numbered key
    const char *json_object; //  The function that makes a JSON object of name/value pairs
    //  Returns a connection (starting with an hvn_db_conn_t), or NULL with
    //  the reason in err.
    void *(*open)(const char *target, bool readonly, char *err, size_t err_size);
    //  Closes and frees a connection (NULL-safe).
    void (*close)(void *conn);
    //  Runs SQL without parameters or rows. Returns 0 or -1.
    int (*exec)(void *conn, const char *sql);
    //  Prepares statement slot from SQL. Returns 0 or -1.
    int (*prepare)(void *conn, hvn_db_stmt_t slot, const char *sql);
    //  Runs prepared slot (sql NULL) or sql once, with parameters; calls fn
    //  per row. Returns the rows seen, or for a statement without rows the
    //  rows it changed; -1 on error.
    int (*run)(void *conn, int slot, const char *sql, const hvn_db_value_t *params, size_t count,
               hvn_db_row_fn *fn, void *arg);
    //  Returns true when the database the connection opened is no longer
    //  at its target (a file removed or replaced); NULL: never.
    bool (*stale)(void *conn);
    //  Removes what a database no longer at target left beside it, before
    //  a new one is made there; NULL: nothing.
    void (*discard)(const char *target);
} hvn_db_backend_t;

//  The function slots every backend fills from its file's s_open, s_close,
//  s_exec, s_prepare and s_run (stale and discard are optional)
#define HVN_DB_BACKEND_FUNCTIONS                                                                   \
    .open = s_open, .close = s_close, .exec = s_exec, .prepare = s_prepare, .run = s_run

extern const hvn_db_backend_t hvn_db_sqlite_backend;
extern const hvn_db_backend_t hvn_db_pg_backend;

#endif
