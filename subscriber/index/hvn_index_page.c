/*  hvn_index_page.c — hvn-index's live fleet page and its change stream.

    The one idea: the writer's thread and the HTTP thread share only a
    ring of finished messages, each numbered; a stream is a number (the
    next message it wants) and an offset into it. Appending evicts the
    oldest message, so the writer's cost never depends on a client, and a
    stream whose next message was evicted is ended: its page reconnects
    and reloads, which costs less than holding its backlog.
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
    bool reload;                  //  Too many noted: send "reload" (writer)
    int64_t sent_ms;              //  Monotonic ms of the last message (writer)
    pthread_mutex_t lock;         //  Guards what follows
    s_message_t *ring;            //  ring_messages slots; seq % ring_messages
    uint64_t first_seq;           //  Oldest message held
    uint64_t next_seq;            //  One past the newest
    size_t bytes;                 //  Bytes held
    hvn_index_page_stats_t stats; //  Counters
};

//  One open stream
typedef struct {
    hvn_index_page_t *page; //  Its page
    char hello[128];        //  Sent first
    size_t hello_at;        //  Bytes of hello sent
    uint64_t next_seq;      //  Next message it wants
    size_t offset;          //  Bytes of that message sent
} s_stream_t;

// --------------------------------------------------------------------------
//  Construction

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
    self->ring = calloc(o->ring_messages, sizeof(*self->ring));
    if (!self->pending || !self->ring) {
        hvn_index_page_destroy(&self);
        return NULL;
    }
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
    if (self->reload)
        return;
    if (zhashx_size(self->pending) >= self->opts.batch_max) {
        self->reload = true; //  A snapshot's worth: cheaper to refetch
        zhashx_purge(self->pending);
        return;
    }
    zhashx_insert(self->pending, uuid, (void *)"");
}

//  Returns the JSON row of a node as the API gives it (payload fields,
//  updated_at), or NULL.
static json_t *s_row(const hvn_replica_node_t *node)
{
    json_t *row = json_object();
    for (int f = 0; row && f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        const char *at = (const char *)&node->node + field->offset;
        json_t *value = hvn_node_is_null(&node->node, (hvn_field_id_t)f) ? json_null()
                        : field->type == HVN_TYPE_INT ? json_integer(*(const int64_t *)at)
                                                      : json_string(at);
        json_object_set_new(row, field->name, value);
    }
    if (row)
        json_object_set_new(row, "updated_at", json_string(node->timestamp));
    return row;
}

//  Returns the "changes" message of the pending uuids (a heap string), or
//  NULL when out of memory.
static char *s_changes(hvn_index_page_t *self, hvn_index_get_fn *get, void *arg, size_t *rows)
{
    json_t *nodes = json_array(), *deleted = json_array();
    for (void *item = zhashx_first(self->pending); item; item = zhashx_next(self->pending)) {
        const char *uuid = zhashx_cursor(self->pending);
        const hvn_replica_node_t *node = get(uuid, arg);
        if (node)
            json_array_append_new(nodes, s_row(node));
        else
            json_array_append_new(deleted, json_string(uuid));
    }
    *rows = json_array_size(nodes) + json_array_size(deleted);
    json_t *data = json_pack("{sIsoso}", "seq", (json_int_t)self->next_seq, "nodes", nodes,
                             "deleted", deleted);
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(data);
    char *message = text ? zsys_sprintf("event: changes\ndata: %s\n\n", text) : NULL;
    free(text);
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
    bool pending = self->reload || zhashx_size(self->pending) > 0;
    int64_t due = self->sent_ms + (pending ? self->opts.batch_ms : self->opts.keepalive_ms);
    if (now < due)
        return (int)(due - now);
    char *message;
    size_t rows = 0;
    if (self->reload) {
        message = zsys_sprintf("event: reload\ndata: {\"seq\":%" PRIu64 "}\n\n", self->next_seq);
        self->stats.reloads++;
    } else if (pending)
        message = s_changes(self, get, arg, &rows);
    else
        message = strdup(": keepalive\n\n");
    if (!message) //  Out of memory: the pages must reload
        return self->opts.batch_ms;
    self->stats.nodes_sent += rows;
    self->reload = false;
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
    size_t hello = strlen(stream->hello);
    if (stream->hello_at < hello) {
        size_t n = hello - stream->hello_at < size ? hello - stream->hello_at : size;
        memcpy(buf, stream->hello + stream->hello_at, n);
        stream->hello_at += n;
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
    free(stream);
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
    }
    pthread_mutex_unlock(&self->lock);
    if (full) {
        free(stream);
        hvn_http_reply_text(reply, 503, "application/json",
                            "{\"error\": \"too many streams are open\"}\n");
        return;
    }
    snprintf(stream->hello, sizeof(stream->hello),
             "retry: %d\nevent: hello\ndata: {\"seq\":%" PRIu64 "}\n\n", S_RETRY_MS,
             stream->next_seq);
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
