/*  hvn_http.c — a small read-only HTTP endpoint on libmicrohttpd.

    The one idea: everything a read-only endpoint never needs is refused
    before the handler runs, by one function, counted and logged the same
    way; the handler sees only a GET with a bounded set of arguments.

    Streams are libmicrohttpd callback responses. A stream with nothing to
    send suspends its connection (MHD_suspend_connection, from the server
    thread, under the endpoint's lock); hvn_http_wake takes the suspended
    ones off the list under the lock and resumes them after releasing it,
    so no thread ever waits on libmicrohttpd while holding the lock. A wake
    counter read before the stream's function is called closes the gap
    between "nothing to send" and the suspension.
*/
#include "hvn_http.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_CONNECTIONS 64           //  Default simultaneous connections
#define S_TIMEOUT_S 10             //  Default idle timeout
#define S_MEMORY_LIMIT (64 * 1024) //  Per-connection memory: request line and headers
#define S_LOG_MS 1000              //  At most one refusal line per second
#define S_STREAM_BLOCK 32768       //  Most bytes a stream writes per call

//  One open stream
typedef struct s_stream_t {
    struct _hvn_http_t *self;         //  The endpoint
    struct MHD_Connection *conn;      //  Its connection
    hvn_http_stream_fn *fn;           //  Writes its bytes
    hvn_http_stream_free_fn *free_fn; //  Frees state, or NULL
    void *state;                      //  For fn and free_fn
    bool suspended;                   //  Waiting for a wake (under lock)
    struct s_stream_t *prev, *next;   //  In the endpoint's list (under lock)
} s_stream_t;

struct _hvn_http_t {
    hvn_http_opts_t opts;           //  Copied options (address not kept)
    struct MHD_Daemon *daemon;      //  The server
    struct sockaddr_storage addr;   //  Where it listens
    uint16_t port;                  //  Its port
    atomic_uint_fast64_t requests;  //  Requests answered
    atomic_uint_fast64_t refused;   //  Refused before the handler
    atomic_uint_fast64_t status[6]; //  Answers by class (index status / 100)
    int64_t logged_ms;              //  Last refusal line (server thread only)
    uint64_t unlogged;              //  Refusals since (server thread only)
    pthread_mutex_t lock;           //  Guards streams, wakes and stopping
    s_stream_t *streams;            //  Open streams
    uint64_t stream_count;          //  How many
    uint64_t wakes;                 //  hvn_http_wake calls so far
    bool stopping;                  //  Streams end: the endpoint is going
};

//  Arguments being collected from a request
typedef struct {
    hvn_http_t *self;     //  The endpoint
    hvn_http_arg_t *args; //  Collected, up to max_args
    size_t count;         //  How many
    const char *refusal;  //  Why the request is refused, or NULL
} s_args_t;

// --------------------------------------------------------------------------
//  Replies

//  Returns nothing; frees what the reply held (a body or a stream's state).
static void s_reply_clear(hvn_http_reply_t *reply)
{
    free(reply->body);
    reply->body = NULL;
    if (reply->stream_free && reply->stream_state)
        reply->stream_free(reply->stream_state);
    reply->stream = NULL;
    reply->stream_free = NULL;
    reply->stream_state = NULL;
}

int hvn_http_reply_take(hvn_http_reply_t *reply, int status, const char *content_type, char *body,
                        size_t size)
{
    assert(reply);
    s_reply_clear(reply);
    reply->status = status;
    reply->content_type = content_type;
    reply->body = body;
    reply->size = size;
    return 0;
}

int hvn_http_reply_text(hvn_http_reply_t *reply, int status, const char *content_type,
                        const char *text)
{
    assert(reply && text);
    char *body = strdup(text);
    if (!body) {
        hvn_http_reply_take(reply, 500, "text/plain", NULL, 0);
        return -1;
    }
    return hvn_http_reply_take(reply, status, content_type, body, strlen(text));
}

int hvn_http_reply_stream(hvn_http_reply_t *reply, int status, const char *content_type,
                          hvn_http_stream_fn *fn, hvn_http_stream_free_fn *free_fn, void *state)
{
    assert(reply && fn);
    s_reply_clear(reply);
    reply->status = status;
    reply->content_type = content_type;
    reply->size = 0;
    reply->stream = fn;
    reply->stream_free = free_fn;
    reply->stream_state = state;
    return 0;
}

// --------------------------------------------------------------------------
//  Streams

//  Returns the bytes written into buf, 0 after suspending the connection
//  until a wake, or MHD_CONTENT_READER_END_OF_STREAM (the
//  MHD_ContentReaderCallback).
static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_stream_t *stream = cls;
    hvn_http_t *self = stream->self;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        bool stopping = self->stopping;
        uint64_t wakes = self->wakes;
        pthread_mutex_unlock(&self->lock);
        if (stopping)
            return MHD_CONTENT_READER_END_OF_STREAM;
        long n = stream->fn(stream->state, buf, max);
        if (n < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n > 0)
            return (ssize_t)(n > (long)max ? (long)max : n);
        pthread_mutex_lock(&self->lock);
        bool woken = self->wakes != wakes || self->stopping;
        if (!woken) {
            stream->suspended = true;
            MHD_suspend_connection(stream->conn);
        }
        pthread_mutex_unlock(&self->lock);
        if (!woken)
            return 0;
    }
}

//  Returns nothing; forgets a stream whose connection closed and frees it
//  (the MHD_ContentReaderFreeCallback).
static void s_stream_free(void *cls)
{
    s_stream_t *stream = cls;
    hvn_http_t *self = stream->self;
    pthread_mutex_lock(&self->lock);
    if (stream->prev)
        stream->prev->next = stream->next;
    else if (self->streams == stream)
        self->streams = stream->next;
    if (stream->next)
        stream->next->prev = stream->prev;
    self->stream_count--;
    pthread_mutex_unlock(&self->lock);
    if (stream->free_fn)
        stream->free_fn(stream->state);
    free(stream);
}

//  Returns a response that streams the reply's stream (and takes its
//  state), or NULL after freeing the state.
static struct MHD_Response *s_stream_response(hvn_http_t *self, struct MHD_Connection *conn,
                                              hvn_http_reply_t *reply)
{
    s_stream_t *stream = calloc(1, sizeof(*stream));
    if (!stream) {
        s_reply_clear(reply);
        return NULL;
    }
    *stream = (s_stream_t){.self = self,
                           .conn = conn,
                           .fn = reply->stream,
                           .free_fn = reply->stream_free,
                           .state = reply->stream_state};
    reply->stream = NULL;
    reply->stream_free = NULL;
    reply->stream_state = NULL;
    pthread_mutex_lock(&self->lock);
    stream->next = self->streams;
    if (self->streams)
        self->streams->prev = stream;
    self->streams = stream;
    self->stream_count++;
    pthread_mutex_unlock(&self->lock);
    //  From here on s_stream_free owns the stream, also on failure
    return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, S_STREAM_BLOCK, s_stream_read,
                                             stream, s_stream_free);
}

//  Returns the number of streams resumed; resumes every suspended stream.
static size_t s_resume_all(hvn_http_t *self, bool stopping)
{
    struct MHD_Connection *conns[256];
    size_t total = 0, count;
    do {
        count = 0;
        pthread_mutex_lock(&self->lock);
        self->wakes++;
        self->stopping |= stopping;
        for (s_stream_t *s = self->streams; s && count < 256; s = s->next)
            if (s->suspended) {
                s->suspended = false;
                conns[count++] = s->conn;
            }
        pthread_mutex_unlock(&self->lock);
        //  A suspended connection stays until resumed, and only the one
        //  who cleared its flag resumes it
        for (size_t i = 0; i < count; i++)
            MHD_resume_connection(conns[i]);
        total += count;
    } while (count == 256);
    return total;
}

void hvn_http_wake(hvn_http_t *self)
{
    assert(self);
    s_resume_all(self, false);
}

// --------------------------------------------------------------------------
//  Sending

//  Returns MHD_YES when the reply was queued on the connection; takes the
//  reply's body or stream.
static enum MHD_Result s_send(hvn_http_t *self, struct MHD_Connection *conn,
                              hvn_http_reply_t *reply)
{
    struct MHD_Response *response;
    if (reply->stream) {
        response = s_stream_response(self, conn, reply);
        if (!response)
            return MHD_NO;
        MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    } else {
        response = MHD_create_response_from_buffer(reply->size, reply->body ? reply->body : "",
                                                   reply->body ? MHD_RESPMEM_MUST_FREE
                                                               : MHD_RESPMEM_PERSISTENT);
        if (!response) {
            free(reply->body);
            return MHD_NO;
        }
    }
    if (reply->content_type)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
    for (const char *const *h = reply->headers; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(response, h[0], h[1]);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)reply->status, response);
    MHD_destroy_response(response);
    self->requests++;
    int klass = reply->status / 100;
    if (klass >= 1 && klass <= 5)
        self->status[klass]++;
    return rc;
}

//  Returns as s_send, after refusing a request with status and why (a
//  JSON error body), counted and logged at most once a second.
static enum MHD_Result s_refuse(hvn_http_t *self, struct MHD_Connection *conn, int status,
                                const char *why, const char *url)
{
    self->refused++;
    int64_t now = zclock_mono();
    if (now - self->logged_ms >= S_LOG_MS) {
        zsys_warning("http: refused a request (%s): %d %s (%" PRIu64 " more refused since the "
                     "last such line)",
                     url, status, why, self->unlogged);
        self->logged_ms = now;
        self->unlogged = 0;
    } else
        self->unlogged++;
    hvn_http_reply_t reply = {0};
    char *body = zsys_sprintf("{\"error\": \"%s\"}\n", why);
    hvn_http_reply_take(&reply, status, "application/json", body, body ? strlen(body) : 0);
    return s_send(self, conn, &reply);
}

// --------------------------------------------------------------------------
//  Requests

//  Returns MHD_YES to go on collecting query arguments (the
//  MHD_KeyValueIterator), MHD_NO once the request is to be refused.
static enum MHD_Result s_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    s_args_t *a = cls;
    if (!value)
        value = "";
    if (a->count >= a->self->opts.max_args) {
        a->refusal = "too many query arguments";
        return MHD_NO;
    }
    if (strlen(key) > a->self->opts.max_text || strlen(value) > a->self->opts.max_text) {
        a->refusal = "query argument too long";
        return MHD_NO;
    }
    a->args[a->count++] = (hvn_http_arg_t){key, value};
    return MHD_YES;
}

//  Returns the reason a request is refused before the handler, or NULL.
static const char *s_check(hvn_http_t *self, struct MHD_Connection *conn, const char *url,
                           const char *method, int *status)
{
    *status = 400;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *status = 405;
        return "only GET and HEAD are served";
    }
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if ((length && strcmp(length, "0") != 0) ||
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding")) {
        *status = 413;
        return "a request body is not accepted";
    }
    if (strlen(url) > self->opts.max_text)
        return "path too long";
    return NULL;
}

//  Returns MHD_YES when the request was answered (the
//  MHD_AccessHandlerCallback).
static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    hvn_http_t *self = cls;
    if (*req_cls) {
        *upload_data_size = 0; //  A body after the answer is discarded
        return MHD_YES;
    }
    *req_cls = self;
    int status;
    const char *why = s_check(self, conn, url, method, &status);
    if (why)
        return s_refuse(self, conn, status, why, url);
    hvn_http_arg_t args[HVN_HTTP_ARGS_MAX * 4];
    s_args_t collected = {self, args, 0, NULL};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, s_collect, &collected);
    if (collected.refusal)
        return s_refuse(self, conn, 400, collected.refusal, url);
    hvn_http_request_t request = {method, url, args, collected.count};
    hvn_http_reply_t reply = {.status = 404, .content_type = "application/json"};
    self->opts.fn(&request, &reply, self->opts.arg);
    if (reply.status == 404 && !reply.body && !reply.stream)
        hvn_http_reply_text(&reply, 404, "application/json", "{\"error\": \"not found\"}\n");
    return s_send(self, conn, &reply);
}

// --------------------------------------------------------------------------
//  Construction

//  Returns 0 after resolving ADDR:PORT into self->addr, or -1 with err.
static int s_resolve(hvn_http_t *self, const char *address, char *err, size_t err_size)
{
    char host[256];
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(address) >= sizeof(host)) {
        snprintf(err, err_size, "cannot listen on '%s': expected ADDR:PORT", address);
        return -1;
    }
    size_t len = (size_t)(colon - address);
    if (address[0] == '[' && len >= 2 && address[len - 1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)len - 2, address + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)len, address);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &found);
    if (rc != 0 || !found) {
        snprintf(err, err_size, "cannot listen on '%s': %s", address, gai_strerror(rc));
        return -1;
    }
    memcpy(&self->addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    return 0;
}

hvn_http_t *hvn_http_new(const hvn_http_opts_t *opts, char *err, size_t err_size)
{
    assert(opts && opts->address && opts->fn && err);
    hvn_http_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    self->opts = *opts;
    self->opts.address = NULL;
    pthread_mutex_init(&self->lock, NULL);
    if (!self->opts.max_args || self->opts.max_args > HVN_HTTP_ARGS_MAX * 4)
        self->opts.max_args = HVN_HTTP_ARGS_MAX;
    if (!self->opts.max_text)
        self->opts.max_text = HVN_HTTP_TEXT_MAX;
    if (s_resolve(self, opts->address, err, err_size) != 0) {
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    bool v6 = self->addr.ss_family == AF_INET6;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     (v6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    self->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&self->addr,
        MHD_OPTION_CONNECTION_LIMIT, opts->connections ? opts->connections : S_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s ? opts->timeout_s : S_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_MEMORY_LIMIT, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, err_size, "cannot listen on '%s': %s", opts->address,
                 errno ? strerror(errno) : "the address is in use or not this host's");
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    return self;
}

void hvn_http_destroy(hvn_http_t **self_p)
{
    assert(self_p);
    hvn_http_t *self = *self_p;
    if (!self)
        return;
    //  Suspended connections must be resumed before the daemon stops; the
    //  stopping flag ends every stream and keeps any from suspending again
    s_resume_all(self, true);
    MHD_stop_daemon(self->daemon);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

uint16_t hvn_http_port(hvn_http_t *self)
{
    assert(self);
    return self->port;
}

void hvn_http_stats(hvn_http_t *self, hvn_http_stats_t *out)
{
    assert(self && out);
    out->requests = self->requests;
    out->refused = self->refused;
    out->status_2xx = self->status[2];
    out->status_4xx = self->status[4];
    out->status_5xx = self->status[5];
    pthread_mutex_lock(&self->lock);
    out->streams = self->stream_count;
    pthread_mutex_unlock(&self->lock);
}
