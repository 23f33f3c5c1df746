/*  hvn_index_page.c — hvn-index's live fleet page and its change stream.

    The one idea: the writer's thread and the HTTP thread share only a
    ring of finished messages, each numbered, and the rows as of the
    newest one; a stream is a number (the next message it wants) and an
    offset into it, and starts with the rows taken under the same lock as
    its number, so its page is exact without asking the database.
    Appending evicts the oldest message, so the writer's cost never
    depends on a client, and a stream whose next message was evicted is
    ended: its page reconnects and starts again, which costs less than
    holding its backlog.
*/
#include "hvn_index_page.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_index_www.h"

#define S_BATCH_MS 100
#define S_KEEPALIVE_MS 10000
#define S_BATCH_MAX 2000
#define S_RING_MESSAGES 256
#define S_RING_BYTES (16 * 1024 * 1024)
#define S_STREAMS_MAX 16
#define S_RETRY_MS 2000 //  The page's reconnect delay, given in the hello

//  One message of the ring
typedef struct {
    char *text;  //  SSE text (heap)
    size_t size; //  Its length
} s_message_t;

struct _hvn_index_page_t {
    hvn_index_page_opts_t opts;   //  Copied options
    hvn_http_t *http;             //  Whose streams to wake (borrowed)
    zhashx_t *pending;            //  uuid -> "" noted since the last message (writer)
    int64_t sent_ms;              //  Monotonic ms of the last message (writer)
    char *fields;                 //  JSON array of the row fields' names
    pthread_mutex_t lock;         //  Guards what follows
    zhashx_t *rows;               //  uuid -> JSON array text: the fleet as last sent
    size_t rows_bytes;            //  Their bytes
    s_message_t *ring;            //  ring_messages slots; seq % ring_messages
    uint64_t first_seq;           //  Oldest message held
    uint64_t next_seq;            //  One past the newest
    size_t bytes;                 //  Bytes held
    hvn_index_page_stats_t stats; //  Counters
};

//  One open stream
typedef struct {
    hvn_index_page_t *page; //  Its page
    char *hello;            //  Sent first (heap): the "hello" event, the rows
    size_t hello_size;      //  Its length
    size_t hello_at;        //  Bytes of hello sent
    uint64_t next_seq;      //  Next message it wants
    size_t offset;          //  Bytes of that message sent
} s_stream_t;

// --------------------------------------------------------------------------
//  Construction

//  Returns nothing; frees a zhashx item.
static void s_free_text(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

hvn_index_page_t *hvn_index_page_new(const hvn_index_page_opts_t *opts)
{
    hvn_index_page_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    if (opts)
        self->opts = *opts;
    hvn_index_page_opts_t *o = &self->opts;
    o->batch_ms = o->batch_ms > 0 ? o->batch_ms : S_BATCH_MS;
    o->keepalive_ms = o->keepalive_ms > 0 ? o->keepalive_ms : S_KEEPALIVE_MS;
    o->batch_max = o->batch_max ? o->batch_max : S_BATCH_MAX;
    o->ring_messages = o->ring_messages ? o->ring_messages : S_RING_MESSAGES;
    o->ring_bytes = o->ring_bytes ? o->ring_bytes : S_RING_BYTES;
    o->streams_max = o->streams_max ? o->streams_max : S_STREAMS_MAX;
    pthread_mutex_init(&self->lock, NULL);
    self->pending = zhashx_new();
    self->rows = zhashx_new();
    self->ring = calloc(o->ring_messages, sizeof(*self->ring));
    json_t *names = json_array();
    for (int f = 0; names && f < HVN_F_COUNT; f++)
        json_array_append_new(names, json_string(hvn_schema_fields[f].name));
    json_array_append_new(names, json_string("updated_at"));
    self->fields = names ? json_dumps(names, JSON_COMPACT) : NULL;
    json_decref(names);
    if (!self->pending || !self->rows || !self->ring || !self->fields) {
        hvn_index_page_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->rows, s_free_text);
    self->first_seq = self->next_seq = 1;
    self->sent_ms = zclock_mono();
    return self;
}

void hvn_index_page_destroy(hvn_index_page_t **self_p)
{
    assert(self_p);
    hvn_index_page_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->ring && i < self->opts.ring_messages; i++)
        free(self->ring[i].text);
    free(self->ring);
    zhashx_destroy(&self->pending);
    zhashx_destroy(&self->rows);
    free(self->fields);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void hvn_index_page_attach(hvn_index_page_t *self, hvn_http_t *http)
{
    assert(self);
    self->http = http;
}

// --------------------------------------------------------------------------
//  The writer's side

void hvn_index_page_changed(hvn_index_page_t *self, const char *uuid)
{
    assert(self && uuid);
    zhashx_insert(self->pending, uuid, (void *)""); //  Bounded by the fleet
}

//  Returns a node's row as a compact JSON array in the order of
//  self->fields (payload fields, updated_at), a heap string, or NULL.
static char *s_row(const hvn_replica_node_t *node)
{
    json_t *row = json_array();
    for (int f = 0; row && f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        const char *at = (const char *)&node->node + field->offset;
        json_t *value = hvn_node_is_null(&node->node, (hvn_field_id_t)f) ? json_null()
                        : field->type == HVN_TYPE_INT ? json_integer(*(const int64_t *)at)
                                                      : json_string(at);
        json_array_append_new(row, value);
    }
    if (row)
        json_array_append_new(row, json_string(node->timestamp));
    char *text = row ? json_dumps(row, JSON_COMPACT) : NULL;
    json_decref(row);
    return text;
}

//  Returns the "changes" message of the pending uuids (a heap string; or
//  a "reload" one past batch_max), or NULL when out of memory. Makes
//  self->rows what the message says (under the lock).
static char *s_changes(hvn_index_page_t *self, hvn_index_get_fn *get, void *arg, size_t *count)
{
    char *message = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&message, &size);
    if (!out)
        return NULL;
    bool reload = zhashx_size(self->pending) > self->opts.batch_max;
    fprintf(out, "event: changes\ndata: {\"seq\":%" PRIu64 ",\"rows\":[", self->next_seq);
    zlist_t *deleted = zlist_new();
    size_t rows = 0;
    pthread_mutex_lock(&self->lock);
    for (void *item = zhashx_first(self->pending); item; item = zhashx_next(self->pending)) {
        const char *uuid = zhashx_cursor(self->pending);
        const hvn_replica_node_t *node = get(uuid, arg);
        char *text = node ? s_row(node) : NULL;
        char *old = zhashx_lookup(self->rows, uuid);
        self->rows_bytes -= old ? strlen(old) : 0;
        if (text) {
            fprintf(out, "%s%s", rows++ ? "," : "", text);
            self->rows_bytes += strlen(text);
            zhashx_update(self->rows, uuid, text);
        } else {
            zhashx_delete(self->rows, uuid);
            if (deleted)
                zlist_append(deleted, (void *)uuid);
        }
    }
    pthread_mutex_unlock(&self->lock);
    fprintf(out, "],\"deleted\":[");
    size_t gone = 0;
    for (const char *uuid = deleted ? zlist_first(deleted) : NULL; uuid;
         uuid = zlist_next(deleted)) {
        json_t *text = json_string(uuid);
        char *quoted = text ? json_dumps(text, JSON_ENCODE_ANY) : NULL;
        fprintf(out, "%s%s", gone++ ? "," : "", quoted ? quoted : "null");
        free(quoted);
        json_decref(text);
    }
    zlist_destroy(&deleted);
    fprintf(out, "]}\n\n");
    fclose(out);
    *count = rows + gone;
    if (reload) {
        free(message);
        self->stats.reloads++;
        *count = 0;
        message = zsys_sprintf("event: reload\ndata: {\"seq\":%" PRIu64 "}\n\n", self->next_seq);
    }
    return message;
}

//  Returns nothing; appends message (taken) to the ring, evicting the
//  oldest messages past its bounds, and wakes the streams.
static void s_append(hvn_index_page_t *self, char *message)
{
    size_t size = strlen(message);
    size_t slots = self->opts.ring_messages;
    pthread_mutex_lock(&self->lock);
    while (self->first_seq < self->next_seq && (self->next_seq - self->first_seq >= slots ||
                                                self->bytes + size > self->opts.ring_bytes)) {
        s_message_t *old = &self->ring[self->first_seq % slots];
        self->bytes -= old->size;
        free(old->text);
        *old = (s_message_t){NULL, 0};
        self->first_seq++;
    }
    self->ring[self->next_seq % slots] = (s_message_t){message, size};
    self->next_seq++;
    self->bytes += size;
    self->stats.messages++;
    self->stats.ring_bytes = self->bytes;
    pthread_mutex_unlock(&self->lock);
    if (self->http)
        hvn_http_wake(self->http);
}

int hvn_index_page_tick(hvn_index_page_t *self, hvn_index_get_fn *get, void *arg)
{
    assert(self && get);
    int64_t now = zclock_mono();
    bool pending = zhashx_size(self->pending) > 0;
    int64_t due = self->sent_ms + (pending ? self->opts.batch_ms : self->opts.keepalive_ms);
    if (now < due)
        return (int)(due - now);
    size_t rows = 0;
    char *message = pending ? s_changes(self, get, arg, &rows) : strdup(": keepalive\n\n");
    if (!message) //  Out of memory: try again
        return self->opts.batch_ms;
    self->stats.nodes_sent += rows;
    zhashx_purge(self->pending);
    self->sent_ms = now;
    s_append(self, message);
    return self->opts.batch_ms;
}

// --------------------------------------------------------------------------
//  The HTTP side

//  Returns the bytes of the stream's next text copied into buf, 0 when it
//  is up to date, -1 when it fell behind the ring (the
//  hvn_http_stream_fn).
static long s_stream_read(void *state, char *buf, size_t size)
{
    s_stream_t *stream = state;
    hvn_index_page_t *self = stream->page;
    if (stream->hello) {
        size_t n = stream->hello_size - stream->hello_at;
        n = n < size ? n : size;
        memcpy(buf, stream->hello + stream->hello_at, n);
        stream->hello_at += n;
        if (stream->hello_at == stream->hello_size) {
            free(stream->hello); //  The rows are held once, not per stream
            stream->hello = NULL;
        }
        return (long)n;
    }
    long written = 0;
    pthread_mutex_lock(&self->lock);
    if (stream->next_seq < self->first_seq) {
        self->stats.streams_dropped++;
        written = -1;
    }
    while (written >= 0 && (size_t)written < size && stream->next_seq < self->next_seq) {
        const s_message_t *m = &self->ring[stream->next_seq % self->opts.ring_messages];
        size_t n = m->size - stream->offset;
        if (n > size - (size_t)written)
            n = size - (size_t)written;
        memcpy(buf + written, m->text + stream->offset, n);
        written += (long)n;
        stream->offset += n;
        if (stream->offset == m->size) {
            stream->next_seq++;
            stream->offset = 0;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return written;
}

//  Returns nothing; frees a stream (the hvn_http_stream_free_fn).
static void s_stream_free(void *state)
{
    s_stream_t *stream = state;
    pthread_mutex_lock(&stream->page->lock);
    stream->page->stats.streams--;
    pthread_mutex_unlock(&stream->page->lock);
    free(stream->hello);
    free(stream);
}

//  Returns the stream's first event (a heap string of *size bytes): its
//  seq, the fields' names and every row as of seq; or NULL. Under the lock.
static char *s_hello(hvn_index_page_t *self, uint64_t seq, size_t *size)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "retry: %d\nevent: hello\ndata: {\"seq\":%" PRIu64 ",",
                     S_RETRY_MS, seq);
    size_t fields = strlen(self->fields);
    size_t total = (size_t)n + fields + 32 + self->rows_bytes + zhashx_size(self->rows);
    char *text = malloc(total);
    if (!text)
        return NULL;
    char *at = text;
    at += sprintf(at, "%s\"fields\":%s,\"rows\":[", head, self->fields);
    for (char *row = zhashx_first(self->rows); row; row = zhashx_next(self->rows)) {
        size_t len = strlen(row);
        memcpy(at, row, len);
        at += len;
        *at++ = ',';
    }
    if (at[-1] == ',')
        at--;
    at += sprintf(at, "]}\n\n");
    *size = (size_t)(at - text);
    return text;
}

//  Returns nothing; answers GET /v1/stream.
static void s_serve_stream(hvn_index_page_t *self, hvn_http_reply_t *reply)
{
    s_stream_t *stream = calloc(1, sizeof(*stream));
    if (!stream) {
        hvn_http_reply_text(reply, 500, "application/json", "{\"error\": \"out of memory\"}\n");
        return;
    }
    stream->page = self;
    pthread_mutex_lock(&self->lock);
    bool full = self->stats.streams >= self->opts.streams_max;
    if (full)
        self->stats.streams_refused++;
    else {
        self->stats.streams++;
        self->stats.streams_opened++;
        stream->next_seq = self->next_seq;
        stream->hello = s_hello(self, stream->next_seq, &stream->hello_size);
    }
    pthread_mutex_unlock(&self->lock);
    if (full || !stream->hello) {
        if (full)
            free(stream);
        else
            s_stream_free(stream);
        hvn_http_reply_text(reply, 503, "application/json",
                            full ? "{\"error\": \"too many streams are open\"}\n"
                                 : "{\"error\": \"out of memory\"}\n");
        return;
    }
    hvn_http_reply_stream(reply, 200, "text/event-stream", s_stream_read, s_stream_free, stream);
}

//  Returns the content type of an embedded file's name.
static const char *s_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".png") == 0)
        return "image/png";
    return "application/octet-stream";
}

//  The page's headers: nothing but its own files may run or load
static const char *const s_page_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options",
    "nosniff",
    "Referrer-Policy",
    "no-referrer",
    NULL};

bool hvn_index_page_serve(hvn_index_page_t *self, const hvn_http_request_t *request,
                          hvn_http_reply_t *reply)
{
    assert(self && request && reply);
    if (strcmp(request->path, "/v1/stream") == 0) {
        s_serve_stream(self, reply);
        return true;
    }
    const char *name = strcmp(request->path, "/") == 0 ? "index.html" : request->path + 1;
    for (const hvn_index_www_t *file = hvn_index_www; file->name; file++) {
        if (request->path[0] != '/' || strcmp(file->name, name) != 0)
            continue;
        char *body = malloc(file->size + 1);
        if (!body) {
            hvn_http_reply_text(reply, 500, "text/plain", "out of memory\n");
            return true;
        }
        memcpy(body, file->data, file->size);
        hvn_http_reply_take(reply, 200, s_content_type(file->name), body, file->size);
        reply->headers = s_page_headers;
        return true;
    }
    return false;
}

void hvn_index_page_stats(hvn_index_page_t *self, hvn_index_page_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    pthread_mutex_unlock(&self->lock);
}
