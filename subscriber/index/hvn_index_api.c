/*  hvn_index_api.c — hvn-index's read-only HTTP API and /metrics.

    The one idea: a request's filters and sort keys are names looked up in
    the schema table (plus created_at and updated_at), never text copied
    into SQL; the SQL is assembled from the table's names and $N
    placeholders, and every value a client sent is a bound parameter of
    the column's type.
*/
#include "hvn_index_api.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_cli.h"
#include "hvn_db.h"
#include "hvn_http.h"
#include "hvn_metrics.h"

#define S_COLUMNS (HVN_F_COUNT + 2) //  Payload fields, created_at, updated_at
#define S_SORTS_MAX 8               //  Sort keys of one request
#define S_FILTERS_MAX 32            //  Filters of one request
#define S_JSON "application/json"
#define S_GAUGES_CACHE_MAX (64 * 1024 * 1024) //  Largest per-node gauges text kept

struct _hvn_index_api_t {
    hvn_http_t *http;              //  The endpoint
    hvn_db_t *db;                  //  Read-only connection (API thread only)
    pthread_mutex_t lock;          //  Guards status
    hvn_index_api_status_t status; //  As last published
    bool published;                //  Status was published at least once
    hvn_index_page_t *page;        //  The live page, or NULL
    char *gauges;                  //  The per-node gauges as last written (heap), or NULL
    size_t gauges_size;            //  Their bytes
    int64_t gauges_version;        //  The database's data_version they were read at
};

//  A query being assembled
typedef struct {
    char *sql;                                //  The SQL (open_memstream)
    size_t size;                              //  Its length
    FILE *out;                                //  Writes into sql
    hvn_db_value_t params[HVN_DB_PARAMS_MAX]; //  Bound values
    size_t count;                             //  How many
    char error[512];                          //  Why the request is refused
    char *owned[HVN_DB_PARAMS_MAX];           //  Heap values params point into
    size_t owned_count;                       //  How many
} s_query_t;

//  Returns nothing; frees a query's SQL and the values it owns.
static void s_query_free(s_query_t *q)
{
    free(q->sql);
    q->sql = NULL;
    for (size_t i = 0; i < q->owned_count; i++)
        free(q->owned[i]);
    q->owned_count = 0;
}

// --------------------------------------------------------------------------
//  Columns

//  Returns the name of column c (a payload field, created_at, updated_at).
static const char *s_column_name(int c)
{
    return c < HVN_F_COUNT    ? hvn_schema_fields[c].name
           : c == HVN_F_COUNT ? "created_at"
                              : "updated_at";
}

//  Returns true when column c holds integers.
static bool s_column_int(int c)
{
    return c < HVN_F_COUNT && hvn_schema_fields[c].type == HVN_TYPE_INT;
}

//  Returns true when column c may hold SQL NULL.
static bool s_column_nullable(int c)
{
    return c < HVN_F_COUNT && c != HVN_F_UUID && hvn_schema_fields[c].nullable;
}

//  Returns the column named name (len bytes), or -1.
static int s_column_find(const char *name, size_t len)
{
    int f = hvn_schema_find(name, len);
    if (f >= 0)
        return f;
    for (int c = HVN_F_COUNT; c < S_COLUMNS; c++)
        if (strlen(s_column_name(c)) == len && memcmp(s_column_name(c), name, len) == 0)
            return c;
    return -1;
}

// --------------------------------------------------------------------------
//  Replies

//  Returns nothing; answers a JSON value (taken) with status.
static void s_reply_json(hvn_http_reply_t *reply, int status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(value);
    if (!text) {
        hvn_http_reply_text(reply, 500, S_JSON, "{\"error\": \"out of memory\"}");
        return;
    }
    hvn_http_reply_take(reply, status, S_JSON, text, strlen(text));
}

//  Returns nothing; answers {"error": message} with status.
static void s_reply_error(hvn_http_reply_t *reply, int status, const char *message)
{
    s_reply_json(reply, status, json_pack("{s:s}", "error", message));
}

// --------------------------------------------------------------------------
//  Assembling queries

//  Returns the $N of a new parameter, or 0 (error set) when there are too many.
static size_t s_param(s_query_t *q, hvn_db_value_t value)
{
    if (q->count >= HVN_DB_PARAMS_MAX) {
        snprintf(q->error, sizeof(q->error), "too many filters");
        return 0;
    }
    q->params[q->count++] = value;
    return q->count;
}

//  Returns 0 with *value the parameter of text for column c, or -1 (error
//  set) when text is not of the column's type.
static int s_typed(s_query_t *q, int c, const char *text, hvn_db_value_t *value)
{
    if (s_column_int(c)) {
        long v;
        if (hvn_cli_parse_long(text, LONG_MIN, LONG_MAX, &v) != 0) {
            snprintf(q->error, sizeof(q->error), "'%s' takes a whole number, not '%.64s'",
                     s_column_name(c), text);
            return -1;
        }
        *value = (hvn_db_value_t){HVN_DB_INT, v, NULL};
    } else {
        if (!hvn_utf8_valid(text, strlen(text))) {
            snprintf(q->error, sizeof(q->error), "'%s' takes UTF-8 text", s_column_name(c));
            return -1;
        }
        *value = (hvn_db_value_t){HVN_DB_TEXT, 0, text};
    }
    return 0;
}

//  Returns 0 after adding the condition of one filter argument, or -1.
static int s_filter(s_query_t *q, const char *key, const char *text)
{
    static const char *ops[][2] = {{"", "="},   {"gt", ">"},  {"ge", ">="},
                                   {"lt", "<"}, {"le", "<="}, {"ne", "<>"}};
    const char *split = strstr(key, "__");
    size_t len = split ? (size_t)(split - key) : strlen(key);
    int c = s_column_find(key, len);
    if (c < 0) {
        snprintf(q->error, sizeof(q->error), "unknown filter field '%.*s'", (int)len, key);
        return -1;
    }
    const char *op = split ? split + 2 : "";
    const char *sql_op = NULL;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(op, ops[i][0]) == 0)
            sql_op = ops[i][1];
    if (!sql_op || (split && !*op)) {
        snprintf(q->error, sizeof(q->error), "unknown operator '%.32s' in '%.64s'", op, key);
        return -1;
    }
    bool nullable = c < HVN_F_COUNT && hvn_schema_fields[c].nullable;
    if (nullable && strcmp(text, "null") == 0 && (!*op || strcmp(op, "ne") == 0)) {
        fprintf(q->out, " AND %s IS %sNULL", s_column_name(c), *op ? "NOT " : "");
        return 0;
    }
    hvn_db_value_t value;
    if (s_typed(q, c, text, &value) != 0)
        return -1;
    size_t n = s_param(q, value);
    if (!n)
        return -1;
    fprintf(q->out, " AND %s %s $%zu", s_column_name(c), sql_op, n);
    return 0;
}

//  One sort key
typedef struct {
    int column; //  Which
    bool desc;  //  Descending (nulls last), else ascending (nulls first)
} s_sort_t;

//  Marker values being read
typedef struct {
    char *values[S_SORTS_MAX + 1]; //  The marker row's sort key values (heap; NULL: null)
    bool found;                    //  The row exists
} s_marker_t;

//  Returns 0 after copying the marker row's values (the hvn_db_row_fn).
static int s_marker_row(size_t columns, const char *const *values, void *arg)
{
    s_marker_t *m = arg;
    m->found = true;
    for (size_t i = 0; i < columns && i <= S_SORTS_MAX; i++)
        m->values[i] = values[i] ? strdup(values[i]) : NULL;
    return 1;
}

//  Returns "SELECT <first>, <columns> FROM compute_nodes<tail>" (heap;
//  first may be NULL), or NULL when out of memory.
static char *s_select_sql(const char *first, const char *const *columns, size_t count,
                          const char *tail)
{
    char *sql = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&sql, &size);
    if (!out)
        return NULL;
    fprintf(out, "SELECT %s", first ? first : "");
    for (size_t i = 0; i < count; i++)
        fprintf(out, "%s%s", first || i ? ", " : "", columns[i]);
    fprintf(out, " FROM compute_nodes%s", tail);
    if (fclose(out) != 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

//  Returns 0 after adding the condition "after the marker row in this
//  order" (keys ends with uuid), or -1.
static int s_marker(hvn_db_t *db, s_query_t *q, const char *marker, const s_sort_t *keys,
                    size_t count)
{
    const char *names[S_SORTS_MAX + 1];
    for (size_t i = 0; i < count; i++)
        names[i] = s_column_name(keys[i].column);
    char *sql = s_select_sql(NULL, names, count, " WHERE uuid = $1");
    if (!sql)
        return -1;
    s_marker_t m = {0};
    hvn_db_value_t v = {HVN_DB_TEXT, 0, marker};
    int rc = hvn_db_query(db, sql, &v, 1, s_marker_row, &m);
    free(sql);
    if (rc < 0 || !m.found) {
        snprintf(q->error, sizeof(q->error),
                 rc < 0 ? "the database failed" : "marker '%s' not found", marker);
        return -1;
    }
    rc = 0;
    fprintf(q->out, " AND (");
    for (size_t i = 0; i < count && rc == 0; i++) {
        fprintf(q->out, "%s(", i ? " OR " : "");
        for (size_t j = 0; j <= i && rc == 0; j++) {
            const char *name = s_column_name(keys[j].column);
            const char *mv = m.values[j];
            size_t n = 0;
            hvn_db_value_t value;
            if (mv) {
                rc = s_typed(q, keys[j].column, mv, &value);
                n = rc == 0 ? s_param(q, value) : 0;
                rc = n ? 0 : -1;
            }
            if (rc != 0)
                break;
            fprintf(q->out, "%s", j ? " AND " : "");
            if (j < i && mv) //  Equal on the earlier keys
                fprintf(q->out, "%s = $%zu", name, n);
            else if (j < i)
                fprintf(q->out, "%s IS NULL", name);
            else if (!keys[j].desc && mv) //  After, ascending, nulls first
                fprintf(q->out, "%s > $%zu", name, n);
            else if (!keys[j].desc)
                fprintf(q->out, "%s IS NOT NULL", name);
            else if (mv) //  After, descending, nulls last
                fprintf(q->out, "(%s < $%zu OR %s IS NULL)", name, n, name);
            else
                fprintf(q->out, "1 = 0");
        }
        fprintf(q->out, ")");
    }
    fprintf(q->out, ")");
    for (size_t i = 0; i <= S_SORTS_MAX; i++) //  The parameters point into them
        if (m.values[i])
            q->owned[q->owned_count++] = m.values[i];
    return rc;
}

// --------------------------------------------------------------------------
//  GET /v1/compute_nodes

//  Rows being rendered
typedef struct {
    json_t *array; //  The rows as objects
} s_rows_t;

//  Node rows being gathered: each row is one JSON object the database
//  wrote (json_object / json_build_object), so the values keep the
//  columns' types without a conversion here
typedef struct {
    FILE *out;    //  Writes into text
    char *text;   //  The objects so far, comma-separated (open_memstream)
    size_t size;  //  Its length
    size_t count; //  Objects
} s_objects_t;

//  Returns 0 after adding one row's object (the hvn_db_row_fn).
static int s_object_row(size_t columns, const char *const *values, void *arg)
{
    s_objects_t *objects = arg;
    if (columns == 1 && values[0]) {
        if (objects->count++)
            fputc(',', objects->out);
        fputs(values[0], objects->out);
    }
    return 0;
}

//  Returns nothing; answers 200 with before, the objects and after as the
//  body, or 500 when memory ran out. Frees the objects' text.
static void s_reply_objects(hvn_http_reply_t *reply, const char *before, s_objects_t *objects,
                            const char *after)
{
    bool failed = fclose(objects->out) != 0;
    size_t len = strlen(before) + objects->size + strlen(after);
    char *body = failed ? NULL : malloc(len + 1);
    if (body)
        snprintf(body, len + 1, "%s%s%s", before, objects->text ? objects->text : "", after);
    free(objects->text);
    if (!body)
        s_reply_error(reply, 500, "out of memory");
    else
        hvn_http_reply_take(reply, 200, S_JSON, body, len);
}

//  Returns nothing; writes "SELECT <a JSON object of every column> FROM
//  compute_nodes WHERE 1 = 1", the object made by the database.
static void s_select_nodes(FILE *out, hvn_db_kind_t kind)
{
    fprintf(out, "SELECT %s(", kind == HVN_DB_POSTGRESQL ? "json_build_object" : "json_object");
    for (int c = 0; c < S_COLUMNS; c++)
        fprintf(out, "%s'%s', %s", c ? ", " : "", s_column_name(c), s_column_name(c));
    fprintf(out, ") FROM compute_nodes WHERE 1 = 1");
}

//  Returns 0 after reading sort, limit and marker, and adding every
//  filter to q; -1 (error set) on a bad argument.
static int s_nodes_args(const hvn_http_request_t *req, s_query_t *q, s_sort_t *keys,
                        size_t *key_count, long *limit, const char **marker)
{
    size_t filters = 0;
    for (size_t i = 0; i < req->arg_count; i++) {
        const char *key = req->args[i].key, *value = req->args[i].value;
        if (strcmp(key, "limit") == 0) {
            if (hvn_cli_parse_long(value, 1, HVN_INDEX_API_LIMIT_MAX, limit) != 0) {
                snprintf(q->error, sizeof(q->error), "'limit' takes a whole number from 1 to %d",
                         HVN_INDEX_API_LIMIT_MAX);
                return -1;
            }
        } else if (strcmp(key, "marker") == 0) {
            if (hvn_uuid_parse(value, strlen(value), NULL) != 0) {
                snprintf(q->error, sizeof(q->error), "'marker' takes a uuid");
                return -1;
            }
            *marker = value;
        } else if (strcmp(key, "sort") == 0) {
            bool desc = value[0] == '-';
            int c = s_column_find(value + desc, strlen(value + desc));
            if (c < 0) {
                snprintf(q->error, sizeof(q->error), "unknown sort field '%.64s'", value + desc);
                return -1;
            }
            if (*key_count >= S_SORTS_MAX) {
                snprintf(q->error, sizeof(q->error), "too many sort keys");
                return -1;
            }
            keys[(*key_count)++] = (s_sort_t){c, desc};
        } else if (++filters > S_FILTERS_MAX) {
            snprintf(q->error, sizeof(q->error), "too many filters");
            return -1;
        } else if (s_filter(q, key, value) != 0)
            return -1;
    }
    bool has_uuid = false;
    for (size_t i = 0; i < *key_count; i++)
        has_uuid |= keys[i].column == HVN_F_UUID;
    if (!has_uuid) //  Unique last key: a total order for paging
        keys[(*key_count)++] = (s_sort_t){HVN_F_UUID, false};
    return 0;
}

//  Returns true with q's SQL text opened for writing; false after
//  answering 500 when memory ran out.
static bool s_query_open(s_query_t *q, hvn_http_reply_t *reply)
{
    q->out = open_memstream(&q->sql, &q->size);
    if (!q->out)
        s_reply_error(reply, 500, "out of memory");
    return q->out != NULL;
}

//  Returns nothing; answers GET /v1/compute_nodes.
static void s_get_nodes(hvn_index_api_t *self, const hvn_http_request_t *req,
                        hvn_http_reply_t *reply)
{
    s_query_t q = {0};
    if (!s_query_open(&q, reply))
        return;
    s_select_nodes(q.out, hvn_db_kind(self->db));
    s_sort_t keys[S_SORTS_MAX + 1];
    size_t key_count = 0;
    long limit = HVN_INDEX_API_LIMIT;
    const char *marker = NULL;
    int rc = s_nodes_args(req, &q, keys, &key_count, &limit, &marker);
    if (rc == 0 && marker)
        rc = s_marker(self->db, &q, marker, keys, key_count);
    size_t n = rc == 0 ? s_param(&q, (hvn_db_value_t){HVN_DB_INT, limit, NULL}) : 0;
    if (rc == 0 && n) {
        fprintf(q.out, " ORDER BY ");
        //  Where nulls go is said only for a column that may hold them: a
        //  key or an index of a NOT NULL column then serves the order as is
        //  (PostgreSQL keeps nulls last in its B-trees, SQLite first)
        for (size_t i = 0; i < key_count; i++)
            fprintf(q.out, "%s%s %s%s", i ? ", " : "", s_column_name(keys[i].column),
                    keys[i].desc ? "DESC" : "ASC",
                    !s_column_nullable(keys[i].column) ? ""
                    : keys[i].desc                     ? " NULLS LAST"
                                                       : " NULLS FIRST");
        fprintf(q.out, " LIMIT $%zu", n);
    }
    fclose(q.out);
    if (rc != 0 || !n) {
        s_reply_error(reply, 400, q.error);
        s_query_free(&q);
        return;
    }
    s_objects_t objects = {0};
    objects.out = open_memstream(&objects.text, &objects.size);
    if (!objects.out)
        s_reply_error(reply, 500, "out of memory");
    else if (hvn_db_query(self->db, q.sql, q.params, q.count, s_object_row, &objects) < 0) {
        zsys_error("api: query failed: %s", hvn_db_error(self->db));
        fclose(objects.out);
        free(objects.text);
        s_reply_error(reply, 503, "the database failed");
    } else
        s_reply_objects(reply, "{\"compute_nodes\":[", &objects, "]}");
    s_query_free(&q);
}

//  Returns nothing; answers GET /v1/compute_nodes/<uuid>.
static void s_get_node(hvn_index_api_t *self, const char *uuid, hvn_http_reply_t *reply)
{
    if (hvn_uuid_parse(uuid, strlen(uuid), NULL) != 0) {
        s_reply_error(reply, 400, "not a uuid");
        return;
    }
    char *sql = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&sql, &size);
    if (!out) {
        s_reply_error(reply, 500, "out of memory");
        return;
    }
    s_select_nodes(out, hvn_db_kind(self->db));
    fprintf(out, " AND uuid = $1");
    fclose(out);
    s_objects_t objects = {0};
    objects.out = open_memstream(&objects.text, &objects.size);
    hvn_db_value_t v = {HVN_DB_TEXT, 0, uuid};
    int rc = objects.out ? hvn_db_query(self->db, sql, &v, 1, s_object_row, &objects) : -1;
    free(sql);
    if (rc < 0 || objects.count == 0) {
        if (objects.out)
            fclose(objects.out);
        free(objects.text);
        if (rc < 0)
            s_reply_error(reply, 503, "the database failed");
        else
            s_reply_error(reply, 404, "no such compute node");
    } else
        s_reply_objects(reply, "{\"compute_node\":", &objects, "}");
}

// --------------------------------------------------------------------------
//  GET /v1/events

#define S_EVENT_COLUMNS 10 //  Columns of an event row, in s_event_names order

static const char *s_event_names[S_EVENT_COLUMNS] = {
    "id",         "timestamp", "event_type", "uuid",   "host",
    "message_id", "seq",       "instance",   "source", "payload"};

//  Returns 0 after adding one event row (the hvn_db_row_fn).
static int s_event_row(size_t columns, const char *const *values, void *arg)
{
    s_rows_t *rows = arg;
    json_t *obj = json_object();
    for (size_t c = 0; obj && c < columns && c < S_EVENT_COLUMNS; c++) {
        json_t *value;
        if (!values[c])
            value = json_null();
        else if (c == 0 || c == 6)
            value = json_integer(strtoll(values[c], NULL, 10));
        else if (c == 9) {
            json_error_t error;
            value = json_loads(values[c], 0, &error);
            if (!value)
                value = json_string(values[c]);
        } else
            value = json_string(values[c]);
        json_object_set_new(obj, s_event_names[c], value);
    }
    json_array_append_new(rows->array, obj);
    return 0;
}

//  Returns true when text looks like (a prefix of) a notification timestamp.
static bool s_timestamp_valid(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > HVN_TIMESTAMP_LEN)
        return false;
    return strspn(text, "0123456789-: .") == len;
}

//  Returns 0 after adding one events argument to q, or -1 (error set).
static int s_events_arg(s_query_t *q, const char *key, const char *value, long *limit)
{
    static const struct {
        const char *key;    //  Argument
        const char *clause; //  Its condition, %zu the parameter
    } args[] = {{"since", " AND timestamp >= $%zu"},
                {"until", " AND timestamp < $%zu"},
                {"event_type", " AND event_type = $%zu"},
                {"host", " AND host = $%zu"},
                {"uuid", " AND uuid = $%zu"},
                {"source", " AND source = $%zu"},
                {"after", " AND id > $%zu"}};
    if (strcmp(key, "limit") == 0) {
        if (hvn_cli_parse_long(value, 1, HVN_INDEX_API_LIMIT_MAX, limit) == 0)
            return 0;
        snprintf(q->error, sizeof(q->error), "'limit' takes a whole number from 1 to %d",
                 HVN_INDEX_API_LIMIT_MAX);
        return -1;
    }
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
        if (strcmp(key, args[i].key) != 0)
            continue;
        hvn_db_value_t v = {HVN_DB_TEXT, 0, value};
        long id;
        if ((i <= 1 && !s_timestamp_valid(value)) ||
            (i == 6 && hvn_cli_parse_long(value, 0, LONG_MAX, &id) != 0) ||
            !hvn_utf8_valid(value, strlen(value))) {
            snprintf(q->error, sizeof(q->error), "bad value for '%s'", key);
            return -1;
        }
        if (i == 6)
            v = (hvn_db_value_t){HVN_DB_INT, id, NULL};
        size_t n = s_param(q, v);
        if (!n)
            return -1;
        fprintf(q->out, args[i].clause, n);
        return 0;
    }
    snprintf(q->error, sizeof(q->error), "unknown filter field '%.64s'", key);
    return -1;
}

//  Returns nothing; answers GET /v1/events.
static void s_get_events(hvn_index_api_t *self, const hvn_http_request_t *req,
                         hvn_http_reply_t *reply)
{
    s_query_t q = {0};
    if (!s_query_open(&q, reply))
        return;
    fprintf(q.out, "SELECT ");
    for (int c = 0; c < S_EVENT_COLUMNS; c++)
        fprintf(q.out, "%s%s", c ? ", " : "", s_event_names[c]);
    fprintf(q.out, " FROM compute_node_events WHERE 1 = 1");
    long limit = HVN_INDEX_API_LIMIT;
    int rc = 0;
    if (req->arg_count > S_FILTERS_MAX) {
        snprintf(q.error, sizeof(q.error), "too many filters");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < req->arg_count; i++)
        rc = s_events_arg(&q, req->args[i].key, req->args[i].value, &limit);
    size_t n = rc == 0 ? s_param(&q, (hvn_db_value_t){HVN_DB_INT, limit, NULL}) : 0;
    if (n)
        fprintf(q.out, " ORDER BY id LIMIT $%zu", n);
    fclose(q.out);
    if (!n) {
        s_reply_error(reply, 400, q.error);
        free(q.sql);
        return;
    }
    s_rows_t rows = {json_array()};
    if (hvn_db_query(self->db, q.sql, q.params, q.count, s_event_row, &rows) < 0) {
        json_decref(rows.array);
        s_reply_error(reply, 503, "the database failed");
    } else
        s_reply_json(reply, 200, json_pack("{s:o}", "events", rows.array));
    free(q.sql);
}

// --------------------------------------------------------------------------
//  GET /metrics and /healthz

//  One node's gauges: its label set and its integer fields
typedef struct {
    char *labels;                //  {uuid=..,host=..,hypervisor_hostname=..} (heap)
    int64_t values[HVN_F_COUNT]; //  By position among the integer fields
    uint32_t nulls;              //  Bit per position: nil
} s_gauge_row_t;

//  Node rows being collected for the per-node gauges
typedef struct {
    s_gauge_row_t *rows; //  Collected
    size_t count;        //  How many
    size_t alloc;        //  Allocated
    bool failed;         //  Out of memory
} s_gauges_t;

//  Returns 0 after keeping one row (the hvn_db_row_fn): uuid, host,
//  hypervisor_hostname, then the integer fields.
static int s_gauge_row(size_t columns, const char *const *values, void *arg)
{
    s_gauges_t *g = arg;
    if (g->count == g->alloc) {
        size_t alloc = g->alloc ? g->alloc * 2 : 1024;
        s_gauge_row_t *rows = realloc(g->rows, alloc * sizeof(*rows));
        if (!rows) {
            g->failed = true;
            return 1;
        }
        g->rows = rows;
        g->alloc = alloc;
    }
    s_gauge_row_t *row = &g->rows[g->count];
    const char *labels[] = {"uuid",
                            values[0] ? values[0] : "",
                            "host",
                            values[1] ? values[1] : "",
                            "hypervisor_hostname",
                            values[2] ? values[2] : "",
                            NULL};
    row->labels = hvn_metrics_labels(labels);
    if (!row->labels) {
        g->failed = true;
        return 1;
    }
    row->nulls = 0;
    for (size_t c = 3; c < columns && c - 3 < HVN_F_COUNT; c++) {
        if (values[c])
            row->values[c - 3] = strtoll(values[c], NULL, 10);
        else
            row->nulls |= 1u << (c - 3);
    }
    g->count++;
    return 0;
}

//  Returns 0 after writing a gauge per integer payload field, a sample per
//  node, and the number of nodes; -1 when the database failed.
static int s_node_gauges(hvn_index_api_t *self, hvn_metrics_t *m)
{
    int ints[HVN_F_COUNT], count = 0;
    const char *names[HVN_F_COUNT];
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT) {
            names[count] = hvn_schema_fields[f].name;
            ints[count++] = f;
        }
    //  Table order: no index walk
    char *sql = s_select_sql("uuid, host, hypervisor_hostname", names, (size_t)count, "");
    if (!sql)
        return -1;
    s_gauges_t g = {0};
    int rc = hvn_db_query(self->db, sql, NULL, 0, s_gauge_row, &g);
    free(sql);
    if (g.failed)
        rc = -1;
    for (int i = 0; rc >= 0 && i < count; i++) {
        char name[128], help[160];
        snprintf(name, sizeof(name), "hvnotify_compute_node_%s", hvn_schema_fields[ints[i]].name);
        snprintf(help, sizeof(help), "The compute node's %s, as last reported",
                 hvn_schema_fields[ints[i]].name);
        hvn_metrics_family(m, name, HVN_METRIC_GAUGE, help);
        for (size_t r = 0; r < g.count; r++)
            if (!(g.rows[r].nulls & (1u << i)))
                hvn_metrics_sample_int(m, name, g.rows[r].labels, g.rows[r].values[i]);
    }
    if (rc >= 0) {
        hvn_metrics_family(m, "hvnotify_index_nodes", HVN_METRIC_GAUGE,
                           "Compute nodes in the compute_nodes table");
        hvn_metrics_sample(m, "hvnotify_index_nodes", NULL, (double)g.count);
    }
    for (size_t r = 0; r < g.count; r++)
        free(g.rows[r].labels);
    free(g.rows);
    return rc < 0 ? -1 : 0;
}

//  Returns nothing; writes one counter family with its one sample.
static void s_counter(hvn_metrics_t *m, const char *name, const char *help, uint64_t value)
{
    hvn_metrics_family(m, name, HVN_METRIC_COUNTER, help);
    hvn_metrics_sample(m, name, NULL, (double)value);
}

//  Returns nothing; writes one gauge family with its one sample.
static void s_gauge(hvn_metrics_t *m, const char *name, const char *help, double value)
{
    hvn_metrics_family(m, name, HVN_METRIC_GAUGE, help);
    hvn_metrics_sample(m, name, NULL, value);
}

//  Returns nothing; writes the index's own counters.
static void s_own_metrics(hvn_index_api_t *self, hvn_metrics_t *m, bool db_read)
{
    pthread_mutex_lock(&self->lock);
    hvn_index_api_status_t st = self->status;
    pthread_mutex_unlock(&self->lock);
    const hvn_index_stats_t *ix = &st.index;
    s_gauge(m, "hvnotify_index_synced",
            "1 when the replica is live (snapshot applied, no "
            "repair pending)",
            st.synced);
    s_gauge(m, "hvnotify_index_database_up", "1 when the last transaction and read succeeded",
            ix->db_ok && db_read);
    s_counter(m, "hvnotify_index_notifications_applied_total",
              "Live notifications applied to the index", ix->notifications);
    s_counter(m, "hvnotify_index_losses_detected_total",
              "Losses the replica detected (seq gaps, stale heartbeats, broker restarts, silences)",
              st.replica.losses);
    s_counter(m, "hvnotify_index_losses_repaired_total",
              "Detected losses a completed snapshot has since repaired", st.replica.repaired);
    s_counter(m, "hvnotify_index_repair_changes_total",
              "Event rows recording a change a repair made without its notification", ix->repairs);
    s_counter(m, "hvnotify_index_events_written_total", "Event rows added", ix->events_written);
    s_counter(m, "hvnotify_index_events_dropped_total",
              "Event rows dropped while the database failed too long", ix->events_dropped);
    s_counter(m, "hvnotify_index_events_expired_total", "Event rows deleted by retention",
              ix->events_expired);
    s_counter(m, "hvnotify_index_replayed_total",
              "Notifications missed while the index was not running, recorded from a broker's ring",
              ix->replayed);
    s_counter(m, "hvnotify_index_replay_missed_total",
              "Notifications missed while the index was not running that no ring held any more "
              "(recorded as repairs)",
              ix->replay_missed);
    s_counter(m, "hvnotify_index_commits_total", "Transactions committed", ix->commits);
    s_counter(m, "hvnotify_index_database_errors_total", "Failed transactions and retention runs",
              ix->db_errors);
    s_counter(m, "hvnotify_index_database_recreated_total",
              "Times the database file was found removed or replaced and made again",
              ix->db_recreated);
    hvn_metrics_family(m, "hvnotify_index_commit_duration_seconds", HVN_METRIC_HISTOGRAM,
                       "Time to write and commit one batch");
    hvn_metrics_histogram(m, "hvnotify_index_commit_duration_seconds", NULL,
                          hvn_index_commit_bounds, ix->commit_buckets, HVN_INDEX_COMMIT_BUCKETS,
                          (double)ix->commit_us_sum / 1e6, ix->commits);
    double age = ix->last_change_ms ? (double)(zclock_time() - ix->last_change_ms) / 1e3 : -1;
    s_gauge(m, "hvnotify_index_last_change_age_seconds",
            "Seconds since the last committed change (-1: none yet)", age);
    s_gauge(m, "hvnotify_index_pending_changes", "Node changes not yet committed",
            (double)ix->pending_nodes);
    hvn_http_stats_t hs;
    hvn_http_stats(self->http, &hs);
    s_counter(m, "hvnotify_index_http_requests_total", "HTTP requests answered", hs.requests);
    s_counter(m, "hvnotify_index_http_refused_total",
              "HTTP requests refused before handling (method, body, size, arguments)", hs.refused);
}

//  Returns 0 after storing SQLite's data_version in the int64_t at arg
//  (the hvn_db_row_fn).
static int s_version_row(size_t columns, const char *const *values, void *arg)
{
    if (columns == 1 && values[0])
        *(int64_t *)arg = strtoll(values[0], NULL, 10);
    return 1;
}

//  Returns the version of the database as this connection sees it, which
//  changes whenever another connection commits (SQLite's data_version),
//  or -1 when there is none (PostgreSQL) or it cannot be read.
static int64_t s_data_version(hvn_index_api_t *self)
{
    int64_t version = -1;
    if (hvn_db_kind(self->db) == HVN_DB_SQLITE &&
        hvn_db_query(self->db, "PRAGMA data_version", NULL, 0, s_version_row, &version) < 0)
        version = -1;
    return version;
}

//  Returns 0 when self->gauges holds the per-node gauges of the database
//  as it is now: kept from the last scrape when nothing was committed
//  since (SQLite), else written again; -1 when the database failed.
static int s_gauges(hvn_index_api_t *self)
{
    int64_t version = s_data_version(self);
    if (self->gauges && version >= 0 && version == self->gauges_version)
        return 0;
    free(self->gauges);
    self->gauges = NULL;
    hvn_metrics_t *m = hvn_metrics_new();
    int rc = m ? s_node_gauges(self, m) : -1;
    if (rc == 0)
        self->gauges = hvn_metrics_take(m, &self->gauges_size);
    hvn_metrics_destroy(&m);
    self->gauges_version = version;
    return self->gauges ? 0 : -1;
}

//  Returns nothing; answers GET /metrics: the per-node gauges (see
//  s_gauges), then the index's own series, written now.
static void s_get_metrics(hvn_index_api_t *self, hvn_http_reply_t *reply)
{
    bool db_read = s_gauges(self) == 0;
    hvn_metrics_t *m = hvn_metrics_new();
    if (m)
        s_own_metrics(self, m, db_read);
    size_t own_size = 0;
    char *own = m ? hvn_metrics_take(m, &own_size) : NULL;
    hvn_metrics_destroy(&m);
    size_t gauges_size = self->gauges ? self->gauges_size : 0;
    char *text = own ? malloc(gauges_size + own_size + 1) : NULL;
    if (!text) {
        free(own);
        hvn_http_reply_text(reply, 500, "text/plain", "out of memory\n");
        return;
    }
    if (gauges_size)
        memcpy(text, self->gauges, gauges_size);
    memcpy(text + gauges_size, own, own_size + 1);
    free(own);
    if (self->gauges_size > S_GAUGES_CACHE_MAX) { //  Not kept: memory over speed
        free(self->gauges);
        self->gauges = NULL;
    }
    hvn_http_reply_take(reply, 200, HVN_METRICS_CONTENT_TYPE, text, gauges_size + own_size);
}

//  Returns nothing; answers GET /healthz.
static void s_get_health(hvn_index_api_t *self, hvn_http_reply_t *reply)
{
    pthread_mutex_lock(&self->lock);
    hvn_index_api_status_t st = self->status;
    bool published = self->published;
    pthread_mutex_unlock(&self->lock);
    json_t *why = json_array();
    if (!published || !st.synced)
        json_array_append_new(why, json_string("the replica is not live (no snapshot yet, or a "
                                               "repair is pending)"));
    if (published && !st.index.db_ok)
        json_array_append_new(why, json_string("the database is not writable"));
    if (hvn_db_query(self->db, "SELECT 1", NULL, 0, NULL, NULL) < 0)
        json_array_append_new(why, json_string("the database cannot be read"));
    bool ok = json_array_size(why) == 0;
    s_reply_json(reply, ok ? 200 : 503,
                 json_pack("{s:s,s:o}", "status", ok ? "ok" : "unavailable", "reasons", why));
}

// --------------------------------------------------------------------------
//  Dispatch

//  Returns nothing; opens the database again when it is no longer where it
//  was opened (the writer makes it again) or a reopen failed before.
static void s_check_database(hvn_index_api_t *self)
{
    if (!hvn_db_stale(self->db))
        return;
    char err[600];
    free(self->gauges); //  Of the file that went
    self->gauges = NULL;
    if (hvn_db_reopen(self->db, err, sizeof(err)) == 0)
        zsys_info("api: the database was removed or replaced; reading the new one");
}

//  Returns nothing; answers one request (the hvn_http_fn).
static void s_serve(const hvn_http_request_t *req, hvn_http_reply_t *reply, void *arg)
{
    hvn_index_api_t *self = arg;
    const char *one = "/v1/compute_nodes/";
    s_check_database(self);
    if (strcmp(req->path, "/v1/compute_nodes") == 0)
        s_get_nodes(self, req, reply);
    else if (strncmp(req->path, one, strlen(one)) == 0)
        s_get_node(self, req->path + strlen(one), reply);
    else if (strcmp(req->path, "/v1/events") == 0)
        s_get_events(self, req, reply);
    else if (strcmp(req->path, "/metrics") == 0)
        s_get_metrics(self, reply);
    else if (strcmp(req->path, "/healthz") == 0)
        s_get_health(self, reply);
    else if (self->page)
        hvn_index_page_serve(self->page, req, reply);
}

hvn_index_api_t *hvn_index_api_new(const hvn_index_api_opts_t *opts, char *err, size_t err_size)
{
    assert(opts && opts->address && opts->db_target);
    hvn_index_api_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->db = hvn_db_open(opts->db_target, true, err, err_size);
    if (self->db) {
        hvn_http_opts_t hopts = {.address = opts->address, .fn = s_serve, .arg = self};
        self->http = hvn_http_new(&hopts, err, err_size);
    }
    self->page = opts->page;
    if (self->http && self->page)
        hvn_index_page_attach(self->page, self->http);
    if (!self->http) {
        hvn_index_api_destroy(&self);
        return NULL;
    }
    return self;
}

void hvn_index_api_destroy(hvn_index_api_t **self_p)
{
    assert(self_p);
    hvn_index_api_t *self = *self_p;
    if (!self)
        return;
    hvn_http_destroy(&self->http);
    hvn_db_destroy(&self->db);
    free(self->gauges);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void hvn_index_api_publish(hvn_index_api_t *self, const hvn_index_api_status_t *status)
{
    assert(self && status);
    pthread_mutex_lock(&self->lock);
    self->status = *status;
    self->published = true;
    pthread_mutex_unlock(&self->lock);
}

uint16_t hvn_index_api_port(hvn_index_api_t *self)
{
    assert(self);
    return hvn_http_port(self->http);
}
