/*  test_index_page.c — the live page's change feed (hvn_index_page.h),
    without a network: the writer's side fed with uuids and a view of a few
    nodes, the HTTP side read through the stream functions the endpoint
    would call.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_index_page.h"

#define S_NODES 8

static hvn_replica_node_t s_view[S_NODES]; //  The view; a node with id 0 is absent

//  Returns the view's node of uuid, or NULL (the hvn_index_get_fn).
static const hvn_replica_node_t *s_get(const char *uuid, void *arg)
{
    (void)arg;
    for (int i = 0; i < S_NODES; i++)
        if (s_view[i].node.id && strcmp(s_view[i].node.uuid, uuid) == 0)
            return &s_view[i];
    return NULL;
}

//  Returns the uuid of view node i.
static const char *s_uuid(int i)
{
    static char uuids[S_NODES][40];
    snprintf(uuids[i], sizeof(uuids[i]), "6f1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b1a%02d", i);
    return uuids[i];
}

//  Returns nothing; puts node i in the view with host and vcpus_used.
static void s_put(int i, const char *host, int64_t vcpus_used)
{
    hvn_replica_node_t *n = &s_view[i];
    memset(n, 0, sizeof(*n));
    hvn_node_init(&n->node);
    hvn_node_set_int(&n->node, HVN_F_ID, i + 1);
    hvn_node_set_str(&n->node, HVN_F_UUID, s_uuid(i));
    hvn_node_set_str(&n->node, HVN_F_HOST, host);
    hvn_node_set_int(&n->node, HVN_F_VCPUS_USED, vcpus_used);
    snprintf(n->timestamp, sizeof(n->timestamp), "2026-12-06 10:00:00.000000");
}

//  Returns a page with tiny bounds: batches every ms, a ring of 4.
static hvn_index_page_t *s_page(void)
{
    memset(s_view, 0, sizeof(s_view));
    hvn_index_page_opts_t opts = {
        .batch_ms = 1, .batch_max = 3, .ring_messages = 4, .streams_max = 2};
    hvn_index_page_t *page = hvn_index_page_new(&opts);
    cr_assert_not_null(page);
    return page;
}

//  Returns nothing; ticks until a message was appended.
static void s_tick(hvn_index_page_t *page)
{
    hvn_index_page_stats_t before, after;
    hvn_index_page_stats(page, &before);
    do {
        zclock_sleep(2);
        hvn_index_page_tick(page, s_get, NULL);
        hvn_index_page_stats(page, &after);
    } while (after.messages == before.messages);
}

//  Returns a stream reply of GET /v1/stream.
static hvn_http_reply_t s_open(hvn_index_page_t *page)
{
    hvn_http_request_t req = {.method = "GET", .path = "/v1/stream"};
    hvn_http_reply_t reply = {.status = 404};
    cr_assert(hvn_index_page_serve(page, &req, &reply));
    return reply;
}

//  Returns what the stream has now (heap text; "" when nothing), or NULL
//  when it ended.
static char *s_read(hvn_http_reply_t *reply)
{
    char *text = calloc(1, 1 << 20);
    size_t have = 0;
    char buf[100]; //  Small reads: messages come in pieces
    long n;
    while ((n = reply->stream(reply->stream_state, buf, sizeof(buf))) > 0) {
        memcpy(text + have, buf, (size_t)n);
        have += (size_t)n;
    }
    if (n < 0) {
        free(text);
        return NULL;
    }
    return text;
}

Test(index_page, a_stream_starts_with_every_row_then_gets_the_changes)
{
    hvn_index_page_t *page = s_page();
    s_put(0, "cmp-0", 1);
    s_put(1, "cmp-1", 2);
    hvn_index_page_changed(page, s_uuid(0));
    hvn_index_page_changed(page, s_uuid(1));
    s_tick(page);
    hvn_http_reply_t reply = s_open(page);
    cr_assert_eq(reply.status, 200);
    char *text = s_read(&reply);
    cr_assert(strstr(text, "event: hello\ndata: {\"seq\":2,\"fields\":[\"id\",\"uuid\""), "%s",
              text);
    cr_expect(strstr(text, "\"cmp-0\"") && strstr(text, "\"cmp-1\""));
    free(text);
    //  An update and a removal
    s_put(0, "cmp-0", 7);
    memset(&s_view[1], 0, sizeof(s_view[1]));
    hvn_index_page_changed(page, s_uuid(0));
    hvn_index_page_changed(page, s_uuid(1));
    s_tick(page);
    text = s_read(&reply);
    cr_assert(strstr(text, "event: changes\ndata: {\"seq\":2,\"rows\":[[1,"), "%s", text);
    cr_expect(strstr(text, "\"deleted\":[\""
                           "6f1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b1a01\"]"),
              "%s", text);
    free(text);
    //  Up to date: nothing to send, the stream waits
    text = s_read(&reply);
    cr_expect_str_eq(text, "");
    free(text);
    //  A new stream's hello holds the rows as they are now
    hvn_http_reply_t second = s_open(page);
    text = s_read(&second);
    cr_expect(strstr(text, "\"cmp-0\"") && !strstr(text, "\"cmp-1\""), "%s", text);
    free(text);
    reply.stream_free(reply.stream_state);
    second.stream_free(second.stream_state);
    hvn_index_page_destroy(&page);
    cr_assert_null(page);
}

Test(index_page, a_stalled_stream_is_ended_and_never_holds_the_writer)
{
    hvn_index_page_t *page = s_page();
    hvn_http_reply_t reply = s_open(page);
    free(s_read(&reply));
    for (int i = 0; i < 10; i++) { //  More messages than the ring holds, none read
        s_put(0, "cmp-0", i);
        hvn_index_page_changed(page, s_uuid(0));
        s_tick(page);
    }
    hvn_index_page_stats_t stats;
    hvn_index_page_stats(page, &stats);
    cr_expect_eq(stats.messages, 10);
    cr_expect_null(s_read(&reply), "a stream behind the ring must end");
    hvn_index_page_stats(page, &stats);
    cr_expect_eq(stats.streams_dropped, 1);
    reply.stream_free(reply.stream_state);
    hvn_index_page_stats(page, &stats);
    cr_expect_eq(stats.streams, 0);
    hvn_index_page_destroy(&page);
}

Test(index_page, a_batch_past_its_bound_is_a_reload_and_the_rows_stay_exact)
{
    hvn_index_page_t *page = s_page();
    for (int i = 0; i < 5; i++) { //  batch_max is 3
        s_put(i, "cmp", i);
        hvn_index_page_changed(page, s_uuid(i));
    }
    hvn_http_reply_t reply = s_open(page);
    free(s_read(&reply));
    s_tick(page);
    char *text = s_read(&reply);
    cr_expect(strstr(text, "event: reload\n"), "%s", text);
    free(text);
    hvn_http_reply_t again = s_open(page);
    text = s_read(&again);
    for (int i = 0; i < 5; i++)
        cr_expect(strstr(text, s_uuid(i)), "row %d missing from the hello", i);
    free(text);
    reply.stream_free(reply.stream_state);
    again.stream_free(again.stream_state);
    hvn_index_page_destroy(&page);
}

Test(index_page, streams_past_the_bound_are_refused)
{
    hvn_index_page_t *page = s_page();
    hvn_http_reply_t a = s_open(page), b = s_open(page), c = s_open(page);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(b.status, 200);
    cr_expect_eq(c.status, 503);
    cr_expect_null(c.stream);
    free(c.body);
    a.stream_free(a.stream_state);
    b.stream_free(b.stream_state);
    hvn_index_page_destroy(&page);
}

Test(index_page, the_page_files_are_served_with_a_strict_policy)
{
    hvn_index_page_t *page = s_page();
    hvn_http_request_t req = {.method = "GET", .path = "/"};
    hvn_http_reply_t reply = {.status = 404};
    cr_assert(hvn_index_page_serve(page, &req, &reply));
    cr_expect_eq(reply.status, 200);
    cr_expect(strncmp(reply.body, "<!DOCTYPE html>", 15) == 0);
    cr_expect_str_eq(reply.headers[0], "Content-Security-Policy");
    cr_expect(strstr(reply.headers[1], "script-src 'self'"));
    free(reply.body);
    req.path = "/page.js";
    reply = (hvn_http_reply_t){.status = 404};
    cr_assert(hvn_index_page_serve(page, &req, &reply));
    cr_expect(strstr(reply.content_type, "javascript"));
    free(reply.body);
    req.path = "/v1/compute_nodes";
    cr_expect_not(hvn_index_page_serve(page, &req, &reply), "the API's paths are not the page's");
    req.path = "/../etc/passwd";
    cr_expect_not(hvn_index_page_serve(page, &req, &reply));
    hvn_index_page_destroy(&page);
}
