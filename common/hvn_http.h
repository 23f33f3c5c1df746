/*  hvn_http.h — a small read-only HTTP endpoint on libmicrohttpd.

        static void s_serve (const hvn_http_request_t *req, hvn_http_reply_t *reply, void *arg)
        {
            if (strcmp (req->path, "/healthz") == 0)
                hvn_http_reply_text (reply, 200, "text/plain", "ok\n");
        }
        hvn_http_opts_t opts = { .address = "127.0.0.1:8780", .fn = s_serve };
        hvn_http_t *http = hvn_http_new (&opts, err, sizeof err);
        ...
        hvn_http_destroy (&http);

    One libmicrohttpd daemon with its own thread: the handler is always
    called from that one thread, so it may keep a database connection of
    its own. Only GET and HEAD are served. Before the handler sees a
    request, the endpoint refuses, counts and logs (at most once a second)
    what a read-only API never needs: another method (405), a request body
    (413), more query arguments than max_args or a path or argument over
    max_text bytes (400). libmicrohttpd itself answers malformed requests
    and request lines or headers past its per-connection memory (400, 414,
    431), bounds connections and times idle ones out.

    Not part of libhvn: in the static library hvncommon, for hvn-index and
    every program that serves /metrics.
*/
#ifndef HVN_HTTP_H_INCLUDED
#define HVN_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVN_HTTP_ARGS_MAX 64   //  Default most query arguments of a request
#define HVN_HTTP_TEXT_MAX 1024 //  Default longest path, argument key or value

//  One query argument, percent-decoded by libmicrohttpd
typedef struct {
    const char *key;   //  Its name
    const char *value; //  Its value ("" when given without '=')
} hvn_http_arg_t;

//  A request, valid only during the handler's call
typedef struct {
    const char *method;         //  "GET" or "HEAD"
    const char *path;           //  The path, without the query
    const hvn_http_arg_t *args; //  Query arguments, in order (repeated keys repeat)
    size_t arg_count;           //  How many
} hvn_http_request_t;

//  Writes at most size bytes of a stream's next bytes into buf, from the
//  server thread. Returns how many it wrote, 0 when it has nothing now
//  (the connection then waits for hvn_http_wake), or -1 to end the stream.
typedef long(hvn_http_stream_fn)(void *state, char *buf, size_t size);

//  Frees a stream's state once its connection is closed, from the server
//  thread.
typedef void(hvn_http_stream_free_fn)(void *state);

//  What the handler answers. Untouched, it is a 404.
typedef struct {
    int status;                           //  HTTP status
    const char *content_type;             //  Static text
    char *body;                           //  Heap (malloc), freed by the endpoint
    size_t size;                          //  Bytes of body
    const char *const *headers;           //  Static {name, value, ..., NULL} pairs, or NULL
    hvn_http_stream_fn *stream;           //  Set by hvn_http_reply_stream (then no body)
    hvn_http_stream_free_fn *stream_free; //  Frees stream_state, or NULL
    void *stream_state;                   //  For stream and stream_free
} hvn_http_reply_t;

typedef void(hvn_http_fn)(const hvn_http_request_t *request, hvn_http_reply_t *reply, void *arg);

typedef struct {
    const char *address;  //  ADDR:PORT to listen on ([v6]:port, a name, port 0 = any)
    hvn_http_fn *fn;      //  Answers every accepted request; required
    void *arg;            //  For fn
    size_t max_args;      //  0 = HVN_HTTP_ARGS_MAX
    size_t max_text;      //  0 = HVN_HTTP_TEXT_MAX
    unsigned connections; //  Simultaneous connections; 0 = 64
    unsigned timeout_s;   //  Idle connection timeout; 0 = 10
} hvn_http_opts_t;

typedef struct _hvn_http_t hvn_http_t;

//  Listens and serves from a thread of its own. Returns NULL with a
//  one-line reason in err when the address is bad or cannot be bound.
hvn_http_t *hvn_http_new(const hvn_http_opts_t *opts, char *err, size_t err_size);

//  Stops serving (waits for the thread) and frees. NULL-safe; sets
//  *self_p to NULL.
void hvn_http_destroy(hvn_http_t **self_p);

//  Returns the port it listens on (useful with port 0).
uint16_t hvn_http_port(hvn_http_t *self);

typedef struct {
    uint64_t requests;   //  Requests answered, all statuses
    uint64_t refused;    //  Refused before the handler (method, body, size, args)
    uint64_t status_2xx; //  Answers by class
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t streams; //  Streams open now
} hvn_http_stats_t;

//  Copies the counters into *out (any thread).
void hvn_http_stats(hvn_http_t *self, hvn_http_stats_t *out);

//  Sets the reply to a copy of text. Returns 0, or -1 (a 500) when out of
//  memory.
int hvn_http_reply_text(hvn_http_reply_t *reply, int status, const char *content_type,
                        const char *text);

//  Sets the reply to take the heap string body (length size). Returns 0.
int hvn_http_reply_take(hvn_http_reply_t *reply, int status, const char *content_type, char *body,
                        size_t size);

//  Sets the reply to a stream: fn (see hvn_http_stream_fn) is called with
//  state until it returns -1 or the client goes; the endpoint then calls
//  free_fn (when not NULL) with state. Takes state, also when the reply is
//  never sent. Returns 0.
int hvn_http_reply_stream(hvn_http_reply_t *reply, int status, const char *content_type,
                          hvn_http_stream_fn *fn, hvn_http_stream_free_fn *free_fn, void *state);

//  Returns nothing; makes every stream that is waiting call its function
//  again soon. Any thread; never blocks on a client.
void hvn_http_wake(hvn_http_t *self);

#endif
