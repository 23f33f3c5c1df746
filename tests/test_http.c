/*  test_http.c — common's read-only HTTP endpoint (hvn_http.h): plain
    replies as before, and streams: bytes pushed from another thread reach
    a waiting client after hvn_http_wake, a stream ends when its function
    says so, a client that goes frees the stream's state, and the endpoint
    stops with streams still waiting. The client is a plain socket.
*/
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hvn_http.h"

//  What the test's streams send: one shared queue of text
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_queue[4096]; //  Text not yet taken by the stream
static bool s_end;         //  The stream is to end once the queue is empty
static atomic_int s_freed; //  Stream states freed
static const char *const s_headers[] = {"X-Test", "yes", NULL};

//  Returns the queued bytes copied into buf (taken), 0 when none, -1 at
//  the end (the hvn_http_stream_fn).
static long s_stream_fn(void *state, char *buf, size_t size)
{
    (void)state;
    pthread_mutex_lock(&s_lock);
    size_t n = strlen(s_queue);
    if (n > size)
        n = size;
    memcpy(buf, s_queue, n);
    memmove(s_queue, s_queue + n, strlen(s_queue) - n + 1);
    long rc = n ? (long)n : s_end ? -1 : 0;
    pthread_mutex_unlock(&s_lock);
    return rc;
}

//  Returns nothing; counts a freed state (the hvn_http_stream_free_fn).
static void s_stream_free(void *state)
{
    free(state);
    s_freed++;
}

//  Returns nothing; answers / with text and /stream with a stream.
static void s_serve(const hvn_http_request_t *req, hvn_http_reply_t *reply, void *arg)
{
    (void)arg;
    if (strcmp(req->path, "/") == 0) {
        hvn_http_reply_text(reply, 200, "text/plain", "hello\n");
        reply->headers = s_headers;
    } else if (strcmp(req->path, "/stream") == 0)
        hvn_http_reply_stream(reply, 200, "text/event-stream", s_stream_fn, s_stream_free,
                              malloc(16));
}

static hvn_http_t *http;

static void s_setup(void)
{
    s_queue[0] = 0;
    s_end = false;
    s_freed = 0;
    char err[256];
    hvn_http_opts_t opts = {.address = "127.0.0.1:0", .fn = s_serve};
    http = hvn_http_new(&opts, err, sizeof(err));
    cr_assert_not_null(http, "%s", err);
}

static void s_teardown(void)
{
    hvn_http_destroy(&http);
}

TestSuite(http, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns a socket that sent GET path to the endpoint.
static int s_get(const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(hvn_http_port(http))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    char request[256];
    int n = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    cr_assert_eq(write(fd, request, (size_t)n), n);
    return fd;
}

//  Returns true once what fd sent (appended to buf) holds text, false
//  after timeout_ms or when the peer closed.
static bool s_read_until(int fd, char *buf, size_t size, const char *text, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    size_t have = strlen(buf);
    while (!strstr(buf, text)) {
        int64_t left = deadline - zclock_mono();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0 || have + 1 >= size)
            return false;
        ssize_t n = read(fd, buf + have, size - have - 1);
        if (n <= 0)
            return false;
        have += (size_t)n;
        buf[have] = 0;
    }
    return true;
}

//  Returns a socket that sent GET path, once what it read back into buf
//  (size bytes, starting empty) holds text: asserted within 5 s.
static int s_get_until(const char *path, char *buf, size_t size, const char *text)
{
    int fd = s_get(path);
    buf[0] = 0;
    cr_assert(s_read_until(fd, buf, size, text, 5000), "GET %s, waiting for %s, got: %s", path,
              text, buf);
    return fd;
}

//  Returns nothing; queues text for the stream and wakes it.
static void s_push(const char *text, bool end)
{
    pthread_mutex_lock(&s_lock);
    strncat(s_queue, text, sizeof(s_queue) - strlen(s_queue) - 1);
    s_end = end;
    pthread_mutex_unlock(&s_lock);
    hvn_http_wake(http);
}

//  Returns the number of open streams the endpoint counts.
static uint64_t s_streams(void)
{
    hvn_http_stats_t stats;
    hvn_http_stats(http, &stats);
    return stats.streams;
}

Test(http, plain_replies_are_served_with_extra_headers)
{
    char buf[4096];
    int fd = s_get_until("/", buf, sizeof(buf), "hello\n");
    cr_expect(strstr(buf, "HTTP/1.1 200"));
    cr_expect(strstr(buf, "X-Test: yes"));
    close(fd);
}

Test(http, bytes_pushed_after_the_stream_waits_reach_the_client)
{
    char buf[8192];
    int fd = s_get_until("/stream", buf, sizeof(buf), "\r\n\r\n");
    cr_expect(strstr(buf, "text/event-stream"));
    cr_expect(strstr(buf, "Cache-Control: no-cache"));
    cr_expect_eq(s_streams(), 1);
    for (int i = 0; i < 20; i++) {
        char event[64];
        snprintf(event, sizeof(event), "data: %d\n\n", i);
        int64_t pushed = zclock_mono();
        s_push(event, false);
        cr_assert(s_read_until(fd, buf, sizeof(buf), event, 2000), "event %d never came", i);
        cr_expect_lt(zclock_mono() - pushed, 1000);
        zclock_sleep(i % 2 ? 0 : 20); //  Some pushes find the stream suspended, some not
    }
    close(fd);
}

Test(http, a_stream_ends_when_its_function_says_so)
{
    int fd = s_get("/stream");
    char buf[4096] = "";
    s_push("data: last\n\n", true);
    //  Chunked encoding: the last chunk is empty
    cr_assert(s_read_until(fd, buf, sizeof(buf), "0\r\n\r\n", 5000), "got: %s", buf);
    cr_expect(strstr(buf, "data: last"));
    close(fd);
    int64_t deadline = zclock_mono() + 5000;
    while (s_freed == 0 && zclock_mono() < deadline)
        zclock_sleep(10); //  The server thread frees it after the close; no handshake exists
    cr_expect_eq(s_freed, 1);
}

Test(http, a_client_that_goes_frees_its_stream)
{
    char buf[4096];
    int fd = s_get_until("/stream", buf, sizeof(buf), "\r\n\r\n");
    close(fd);
    //  A waiting connection notices its peer is gone when it writes again
    int64_t deadline = zclock_mono() + 5000;
    while (s_freed == 0 && zclock_mono() < deadline) {
        s_push(": ping\n\n", false);
        zclock_sleep(20);
    }
    cr_expect_eq(s_freed, 1);
    cr_expect_eq(s_streams(), 0);
}

Test(http, the_endpoint_stops_with_streams_waiting)
{
    int fds[3];
    for (int i = 0; i < 3; i++) {
        char buf[4096];
        fds[i] = s_get_until("/stream", buf, sizeof(buf), "\r\n\r\n");
    }
    int64_t started = zclock_mono();
    hvn_http_destroy(&http);
    cr_expect_lt(zclock_mono() - started, 5000);
    cr_expect_eq(s_freed, 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

Test(http, a_stream_reply_replaced_by_text_frees_its_state)
{
    hvn_http_reply_t reply = {.status = 404};
    hvn_http_reply_stream(&reply, 200, "text/event-stream", s_stream_fn, s_stream_free, malloc(16));
    hvn_http_reply_text(&reply, 500, "text/plain", "no\n");
    cr_expect_eq(s_freed, 1);
    cr_expect_null(reply.stream);
    free(reply.body);
}
