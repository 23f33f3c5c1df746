/*  test_subscriber.c — the client library against a stand-in publisher.

    The stand-in is an XPUB bound on an inproc:// endpoint (czmq sockets
    share one context). No sleeps: every test first waits until the
    subscriber's subscription has reached the XPUB, which is the moment a
    message sent can no longer be lost to the slow joiner.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "hvn_subscriber.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID2 "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_HOST "cmp-017"
#define S_WAIT_MS 2000 //  Longest any step may take

static hvn_encoder_t *encoder;
static zsock_t *xpub;
static char endpoint[64];
static int endpoint_seq;

//  Returns a fresh inproc endpoint name.
static const char *s_new_endpoint(char *buf, size_t size)
{
    snprintf(buf, size, "inproc://test-subscriber-%d-%d", (int)getpid(), ++endpoint_seq);
    return buf;
}

static void s_setup(void)
{
    encoder = hvn_encoder_new();
    cr_assert(encoder);
    xpub = zsock_new(ZMQ_XPUB);
    cr_assert(xpub);
    zsock_set_rcvtimeo(xpub, S_WAIT_MS);
    zsock_set_xpub_verbose(xpub, 1); //  Every subscriber's subscription, not just the first
    cr_assert_eq(zsock_bind(xpub, "%s", s_new_endpoint(endpoint, sizeof(endpoint))), 0);
}

static void s_teardown(void)
{
    zsock_destroy(&xpub);
    hvn_encoder_destroy(&encoder);
}

TestSuite(subscriber, .init = s_setup, .fini = s_teardown, .timeout = 30);

// --------------------------------------------------------------------------
//  Helpers

//  A node with every field set (nothing nil).
static void s_node(hvn_node_t *node, const char *uuid, const char *host)
{
    hvn_node_init(node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, 1000 + f);
    hvn_node_set_str(node, HVN_F_UUID, uuid);
    hvn_node_set_str(node, HVN_F_HOST, host);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, "cmp-017.example.org");
    hvn_node_set_str(node, HVN_F_HOST_IP, "192.0.2.17");
}

//  Waits for `count` subscription messages on sock: after that, the
//  subscriber is sure to see what is sent.
static void s_await_subscriptions(zsock_t *sock, int count)
{
    for (int i = 0; i < count;) {
        zframe_t *frame = zframe_recv(sock);
        cr_assert(frame, "no subscription arrived");
        cr_assert_geq(zframe_size(frame), 1);
        if (zframe_data(frame)[0] == 1)
            i++; //  Not an unsubscribe left by an earlier subscriber
        zframe_destroy(&frame);
    }
}

//  Sends count raw frames as one message.
static void s_send_raw(zsock_t *sock, const void *const *data, const size_t *size, int count)
{
    for (int i = 0; i < count; i++)
        cr_assert_eq(
            zmq_send(zsock_resolve(sock), data[i], size[i], i + 1 < count ? ZMQ_SNDMORE : 0),
            (int)size[i]);
}

//  Sends the three frames of an encoded message.
static void s_send_frames(zsock_t *sock, const hvn_frames_t *fr)
{
    const void *data[] = {fr->topic, fr->header, fr->body};
    size_t size[] = {fr->topic_size, HVN_HEADER_SIZE, fr->body_size};
    s_send_raw(sock, data, size, 3);
}

//  Encodes a notification of node `uuid` on `host` with seq from the
//  instance filled with byte `instance`.
static hvn_frames_t s_encode(hvn_event_t event, const char *uuid, const char *host, uint64_t seq,
                             uint8_t instance)
{
    hvn_node_t node;
    s_node(&node, uuid, host);
    hvn_envelope_t env = {.host = host};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    memset(header.instance, instance, 16);
    hvn_frames_t frames;
    cr_assert_eq(hvn_encoder_notification(encoder, event, &env, &node, &header, &frames), 0);
    return frames;
}

//  Sends a notification (see s_encode).
static void s_publish(hvn_event_t event, const char *uuid, const char *host, uint64_t seq,
                      uint8_t instance)
{
    hvn_frames_t frames = s_encode(event, uuid, host, seq, instance);
    s_send_frames(xpub, &frames);
}

//  Sends a publisher heartbeat carrying seq as the last seq used.
static void s_publish_heartbeat(const char *host, uint64_t seq, uint8_t instance)
{
    const char *uuids[] = {S_UUID};
    hvn_envelope_t env = {.host = host};
    hvn_header_t header = {.seq = seq};
    memset(header.instance, instance, 16);
    hvn_frames_t frames;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &env, 10000, uuids, 1, &header, &frames), 0);
    s_send_frames(xpub, &frames);
}

//  Returns a subscriber of the test's XPUB, after its subscriptions arrived.
static hvn_subscriber_t *s_subscriber(const char *const *topics, size_t topic_count,
                                      const char *host)
{
    hvn_subscriber_opts_t opts = {
        .endpoint = endpoint, .topics = topics, .topic_count = topic_count, .host = host};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    cr_assert(sub);
    s_await_subscriptions(xpub, topic_count ? (int)topic_count : 1);
    return sub;
}

// --------------------------------------------------------------------------
//  Live messages

Test(subscriber, valid_message_is_delivered_decoded)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0xAB);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_CREATE);
    cr_assert_eq(msg.header.kind, HVN_KIND_NOTIFICATION);
    cr_assert_eq(msg.header.seq, 1);
    cr_assert_eq(msg.header.instance[15], 0xAB);
    cr_assert_str_eq(msg.topic, "compute_node.create@" S_HOST);
    cr_assert_str_eq(msg.host, S_HOST);
    cr_assert_str_eq(msg.publisher_id, "nova-compute:" S_HOST);
    hvn_node_t expected;
    s_node(&expected, S_UUID, S_HOST);
    cr_assert(hvn_node_equal(&msg.node, &expected));

    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.received, 1);
    cr_assert_eq(stats.skipped_total, 0);
    hvn_subscriber_destroy(&sub);
    cr_assert_null(sub);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, heartbeat_is_delivered_with_its_kind)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    s_publish_heartbeat(S_HOST, 7, 0x01);
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_HEARTBEAT);
    cr_assert_eq(msg.header.kind, HVN_KIND_HEARTBEAT);
    cr_assert_eq(msg.header.seq, 7);
    cr_assert_eq(msg.interval_ms, 10000);
    cr_assert_eq(msg.node_count, 1);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, malformed_messages_are_skipped_and_counted_by_reason)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, S_UUID, S_HOST, 1, 0x01);

    //  Two frames, four frames
    const void *data[] = {fr.topic, fr.header, fr.body, "extra"};
    size_t size[] = {fr.topic_size, HVN_HEADER_SIZE, fr.body_size, 5};
    s_send_raw(xpub, data, size, 2);
    s_send_raw(xpub, data, size, 4);
    //  A body that is not msgpack (0xC1 is never used)
    const void *garbage[] = {fr.topic, fr.header, "\xC1\xC1\xC1"};
    size_t garbage_size[] = {fr.topic_size, HVN_HEADER_SIZE, 3};
    s_send_raw(xpub, garbage, garbage_size, 3);
    //  A header of version 2
    uint8_t header[HVN_HEADER_SIZE];
    memcpy(header, fr.header, HVN_HEADER_SIZE);
    header[0] = 2;
    const void *versioned[] = {fr.topic, header, fr.body};
    s_send_raw(xpub, versioned, size, 3);
    //  And a good one, which must still arrive
    s_send_frames(xpub, &fr);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_UPDATE);
    cr_assert_str_eq(msg.node.uuid, S_UUID);

    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.skipped[HVN_R_FRAMES], 2);
    cr_assert_eq(stats.skipped[HVN_R_MSGPACK], 1);
    cr_assert_eq(stats.skipped[HVN_R_HEADER_VERSION], 1);
    cr_assert_eq(stats.skipped_total, 4);
    cr_assert_eq(stats.received, 1);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0, "a refused message was returned");
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, topic_prefix_selects_messages)
{
    const char *topics[] = {"compute_node.delete"};
    hvn_subscriber_t *sub = s_subscriber(topics, 1, NULL);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_DELETE, S_UUID2, S_HOST, 2, 0x01);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_DELETE);
    cr_assert_str_eq(msg.node.uuid, S_UUID2);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, several_prefixes_are_all_subscribed)
{
    const char *topics[] = {"compute_node.create", "compute_node.delete"};
    hvn_subscriber_t *sub = s_subscriber(topics, 2, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 2, 0x01);
    s_publish(HVN_EVENT_DELETE, S_UUID, S_HOST, 3, 0x01);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_CREATE);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_DELETE);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, host_filter_is_exact)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, "cmp-01");
    s_publish(HVN_EVENT_UPDATE, S_UUID, "cmp-017", 1, 0x01); //  Shares the prefix
    s_publish(HVN_EVENT_UPDATE, S_UUID2, "cmp-01", 1, 0x02);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_str_eq(msg.host, "cmp-01");
    cr_assert_str_eq(msg.node.uuid, S_UUID2);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.filtered, 1);
    cr_assert_eq(stats.received, 1);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, recv_returns_zero_on_timeout)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    hvn_msg_t msg;
    int64_t start = zclock_mono();
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 100), 0);
    int64_t elapsed = zclock_mono() - start;
    cr_assert_geq(elapsed, 95);
    cr_assert_lt(elapsed, 1000);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 0), 0);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, recv_returns_minus_one_when_interrupted)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    zsys_interrupted = 1;
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, -1), -1);
    zsys_interrupted = 0;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, several_endpoints_are_all_followed)
{
    char second[64];
    zsock_t *other = zsock_new(ZMQ_XPUB);
    cr_assert(other);
    zsock_set_rcvtimeo(other, S_WAIT_MS);
    cr_assert_eq(zsock_bind(other, "%s", s_new_endpoint(second, sizeof(second))), 0);
    char *both = zsys_sprintf("%s,%s", endpoint, second);
    hvn_subscriber_opts_t opts = {.endpoint = both};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    cr_assert(sub);
    s_await_subscriptions(xpub, 1);
    s_await_subscriptions(other, 1);

    s_publish(HVN_EVENT_CREATE, S_UUID, "cmp-001", 1, 0x01);
    hvn_frames_t fr = s_encode(HVN_EVENT_CREATE, S_UUID2, "cmp-002", 1, 0x02);
    s_send_frames(other, &fr);
    hvn_msg_t msg;
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
        seen |= strcmp(msg.host, "cmp-001") == 0 ? 1 : 2;
    }
    cr_assert_eq(seen, 3);
    hvn_subscriber_destroy(&sub);
    zstr_free(&both);
    zsock_destroy(&other);
}

Test(subscriber, new_refuses_invalid_options)
{
    hvn_subscriber_opts_t none = {0};
    cr_assert_null(hvn_subscriber_new(&none));
    hvn_subscriber_opts_t empty = {.endpoint = ""};
    cr_assert_null(hvn_subscriber_new(&empty));
    hvn_subscriber_opts_t bad_host = {.endpoint = endpoint, .host = "a@b"};
    cr_assert_null(hvn_subscriber_new(&bad_host));
    hvn_subscriber_opts_t half_curve = {.endpoint = endpoint, .curve_secret = "x"};
    cr_assert_null(hvn_subscriber_new(&half_curve));
    hvn_subscriber_opts_t bad_endpoint = {.endpoint = "nonsense://"};
    cr_assert_null(hvn_subscriber_new(&bad_endpoint));
}

// --------------------------------------------------------------------------
//  Loss: seq gaps

Test(subscriber, seq_jump_counts_a_gap)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 2, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 5, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID2, S_HOST, 9, 0x02); //  First of its instance
    hvn_msg_t msg;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
    cr_assert_eq(stats.publishers, 2);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, heartbeat_ahead_of_last_seq_counts_a_gap)
{
    hvn_subscriber_t *sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish_heartbeat(S_HOST, 1, 0x01); //  Nothing lost
    s_publish_heartbeat(S_HOST, 3, 0x01); //  2 and 3 lost
    hvn_msg_t msg;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 4, 0x01); //  Next after the heartbeat
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, narrow_subscription_tracks_no_gaps)
{
    const char *topics[] = {"compute_node.update"};
    hvn_subscriber_t *sub = s_subscriber(topics, 1, NULL);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 5, 0x01); //  2..4 were creates
    hvn_msg_t msg;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.gaps, 0);
    hvn_subscriber_destroy(&sub);
}

// --------------------------------------------------------------------------
//  Snapshot: a fake broker service (a ROUTER in an actor) answers the first
//  request with canned replies

#define S_INSTANCE1 "01010101-0101-0101-0101-010101010101"
#define S_INSTANCE2 "02020202-0202-0202-0202-020202020202"

typedef struct {
    char endpoint[64]; //  Where the ROUTER binds
    zlist_t *replies;  //  zmsg_t to send back, in order
    char request[300]; //  What the client asked: frames joined with '|'
} s_fake_t;

//  The fake broker: binds, answers one request, waits for $TERM.
static void s_fake_broker(zsock_t *pipe, void *arg)
{
    s_fake_t *fake = arg;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int rc = router ? zsock_bind(router, "%s", fake->endpoint) : -1;
    zsock_signal(pipe, rc == 0 ? 0 : 1);
    if (rc != 0) {
        zsock_destroy(&router);
        return;
    }
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which != router)
            break; //  $TERM or interrupted
        zmsg_t *request = zmsg_recv(router);
        zframe_t *id = zmsg_pop(request);
        for (zframe_t *f = zmsg_first(request); f; f = zmsg_next(request)) {
            size_t len = strlen(fake->request);
            snprintf(fake->request + len, sizeof(fake->request) - len, "%s%.*s", len ? "|" : "",
                     (int)zframe_size(f), (const char *)zframe_data(f));
        }
        for (zmsg_t *reply = zlist_first(fake->replies); reply; reply = zlist_next(fake->replies)) {
            zmsg_t *copy = zmsg_dup(reply);
            zmsg_pushmem(copy, zframe_data(id), zframe_size(id));
            zmsg_send(&copy, router);
        }
        zframe_destroy(&id);
        zmsg_destroy(&request);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

static s_fake_t fake;

//  Returns nothing; prepares an empty fake with a fresh endpoint.
static void s_fake_init(void)
{
    memset(&fake, 0, sizeof(fake));
    s_new_endpoint(fake.endpoint, sizeof(fake.endpoint));
    fake.replies = zlist_new();
}

//  Returns nothing; frees the canned replies.
static void s_fake_free(void)
{
    zmsg_t *msg;
    while ((msg = zlist_pop(fake.replies)))
        zmsg_destroy(&msg);
    zlist_destroy(&fake.replies);
}

//  Queues ["ITEM", topic, header, body] of an encoded notification.
static void s_fake_item(hvn_event_t event, const char *uuid, const char *host, uint64_t seq,
                        uint8_t instance)
{
    hvn_frames_t fr = s_encode(event, uuid, host, seq, instance);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "ITEM");
    zmsg_addmem(msg, fr.topic, fr.topic_size);
    zmsg_addmem(msg, fr.header, HVN_HEADER_SIZE);
    zmsg_addmem(msg, fr.body, fr.body_size);
    zlist_append(fake.replies, msg);
}

//  Queues a reply of a word and one raw body frame.
static void s_fake_reply(const char *word, const void *body, size_t size)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, word);
    zmsg_addmem(msg, body, size);
    zlist_append(fake.replies, msg);
}

//  Packs a msgpack str.
static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

//  Queues a well-formed END: broker "b1", count, and n instance/seq pairs.
static void s_fake_end(uint64_t count, size_t n, const char *const *instances, const uint64_t *seqs)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    s_pack_str(&pk, "broker_id");
    s_pack_str(&pk, "b1");
    s_pack_str(&pk, "count");
    msgpack_pack_uint64(&pk, count);
    s_pack_str(&pk, "publishers");
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        s_pack_str(&pk, instances[i]);
        msgpack_pack_uint64(&pk, seqs[i]);
    }
    s_fake_reply("END", sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
}

//  Collects what the snapshot callback receives.
typedef struct {
    int calls;                           //  Items seen
    hvn_event_t events[8];               //  Their events
    char uuids[8][HVN_UUID_STR_LEN + 1]; //  Their node uuids
} s_items_t;

static void s_collect(const hvn_msg_t *msg, void *arg)
{
    s_items_t *items = arg;
    if (items->calls < 8) {
        items->events[items->calls] = msg->event;
        strcpy(items->uuids[items->calls], msg->node.uuid);
    }
    items->calls++;
}

//  Returns a subscriber of the test's XPUB and the fake's service.
static hvn_subscriber_t *s_client(const char *const *topics, size_t topic_count, const char *host)
{
    hvn_subscriber_opts_t opts = {.endpoint = endpoint,
                                  .service = fake.endpoint,
                                  .topics = topics,
                                  .topic_count = topic_count,
                                  .host = host};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    cr_assert(sub);
    s_await_subscriptions(xpub, topic_count ? (int)topic_count : 1);
    return sub;
}

//  Returns what a snapshot through the fake, as queued now, returns.
static int s_snapshot_via_fake(hvn_subscriber_t *sub, const char *prefix, s_items_t *items,
                               int timeout_ms)
{
    zactor_t *actor = zactor_new(s_fake_broker, &fake);
    cr_assert(actor);
    int rc = hvn_subscriber_snapshot(sub, prefix, s_collect, items, timeout_ms);
    zactor_destroy(&actor);
    return rc;
}

static const uint8_t s_inst1[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t s_inst2[16] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};

Test(subscriber, snapshot_delivers_items_and_remembers_end_seqs)
{
    s_fake_init();
    s_fake_item(HVN_EVENT_CREATE, S_UUID, "cmp-001", 3, 0x01);
    s_fake_item(HVN_EVENT_UPDATE, S_UUID2, "cmp-002", 7, 0x02);
    const char *instances[] = {S_INSTANCE1, S_INSTANCE2};
    uint64_t seqs[] = {3, 7};
    s_fake_end(2, 2, instances, seqs);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    cr_assert_str_eq(hvn_subscriber_broker_id(sub), "");

    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "compute_node.", &items, S_WAIT_MS), 2);
    cr_assert_str_eq(fake.request, "SNAPSHOT|compute_node.");
    cr_assert_eq(items.calls, 2);
    cr_assert_eq(items.events[0], HVN_EVENT_CREATE);
    cr_assert_str_eq(items.uuids[1], S_UUID2);
    cr_assert_eq(hvn_subscriber_snapshot_seq(sub, s_inst1), 3);
    cr_assert_eq(hvn_subscriber_snapshot_seq(sub, s_inst2), 7);
    cr_assert_str_eq(hvn_subscriber_broker_id(sub), "b1");
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.snapshots, 1);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, live_messages_covered_by_the_snapshot_are_skipped)
{
    s_fake_init();
    const char *instances[] = {S_INSTANCE1};
    uint64_t seqs[] = {3};
    s_fake_end(0, 1, instances, seqs);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    //  Queued in the SUB while the snapshot is taken: already in it
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 2, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 3, 0x01);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 0);
    //  Newer than the snapshot, and from a publisher it did not name
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 4, 0x01);
    s_publish(HVN_EVENT_CREATE, S_UUID2, S_HOST, 1, 0x02);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.header.seq, 4);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.header.instance[0], 0x02);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.stale, 2);
    cr_assert_eq(stats.received, 2);
    cr_assert_eq(stats.gaps, 0);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, jump_past_the_snapshot_seq_counts_a_gap)
{
    s_fake_init();
    const char *instances[] = {S_INSTANCE1};
    uint64_t seqs[] = {3};
    s_fake_end(0, 1, instances, seqs);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 0);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 6, 0x01);
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, bad_snapshot_items_are_counted_and_skipped)
{
    s_fake_init();
    hvn_frames_t fr = s_encode(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    zmsg_t *garbage = zmsg_new();
    zmsg_addstr(garbage, "ITEM");
    zmsg_addmem(garbage, fr.topic, fr.topic_size);
    zmsg_addmem(garbage, fr.header, HVN_HEADER_SIZE);
    zmsg_addmem(garbage, "\xC1", 1);
    zlist_append(fake.replies, garbage);
    zmsg_t *short_item = zmsg_new();
    zmsg_addstr(short_item, "ITEM");
    zmsg_addmem(short_item, fr.topic, fr.topic_size);
    zlist_append(fake.replies, short_item);
    s_fake_item(HVN_EVENT_CREATE, S_UUID2, S_HOST, 2, 0x01);
    const char *instances[] = {S_INSTANCE1};
    uint64_t seqs[] = {2};
    s_fake_end(3, 1, instances, seqs);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);

    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 1);
    cr_assert_str_eq(items.uuids[0], S_UUID2);
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.skipped[HVN_R_MSGPACK], 1);
    cr_assert_eq(stats.skipped[HVN_R_FRAMES], 1);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, snapshot_items_pass_the_topic_and_host_filters)
{
    s_fake_init();
    s_fake_item(HVN_EVENT_CREATE, S_UUID, "cmp-001", 1, 0x01);
    s_fake_item(HVN_EVENT_UPDATE, S_UUID2, "cmp-001", 2, 0x01);
    s_fake_item(HVN_EVENT_UPDATE, S_UUID, "cmp-002", 1, 0x02);
    s_fake_end(3, 0, NULL, NULL);
    const char *topics[] = {"compute_node.update"};
    hvn_subscriber_t *sub = s_client(topics, 1, "cmp-001");
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 1);
    cr_assert_str_eq(items.uuids[0], S_UUID2);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, end_with_unknown_keys_and_uppercase_uuid_is_accepted)
{
    s_fake_init();
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    s_pack_str(&pk, "future");
    msgpack_pack_array(&pk, 0);
    s_pack_str(&pk, "publishers");
    msgpack_pack_map(&pk, 1);
    s_pack_str(&pk, "0D9A1B6C-3E2F-4A5B-8C7D-6E5F4A3B2C1D");
    msgpack_pack_uint64(&pk, 9);
    s_pack_str(&pk, "count");
    msgpack_pack_int64(&pk, 0);
    s_pack_str(&pk, "broker_id");
    s_pack_str(&pk, "b2");
    s_fake_reply("END", sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 0);
    uuid_t raw;
    cr_assert_eq(uuid_parse(S_UUID2, raw), 0);
    cr_assert_eq(hvn_subscriber_snapshot_seq(sub, raw), 9);
    cr_assert_str_eq(hvn_subscriber_broker_id(sub), "b2");
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

//  A malformed END body, built by one case of the table below.
typedef void(s_end_builder_fn)(msgpack_packer *pk);

static void s_end_not_a_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}

//  Packs the three keys, each value chosen by the case.
static void s_end_with(msgpack_packer *pk, int broker_id_kind, int count_kind, int pubs_kind)
{
    msgpack_pack_map(pk, 3);
    s_pack_str(pk, "broker_id");
    if (broker_id_kind == 0)
        s_pack_str(pk, "b1");
    else
        msgpack_pack_int(pk, 5);
    s_pack_str(pk, "count");
    if (count_kind == 0)
        msgpack_pack_uint64(pk, 0);
    else if (count_kind == 1)
        msgpack_pack_int(pk, -1);
    else
        s_pack_str(pk, "0");
    s_pack_str(pk, "publishers");
    if (pubs_kind == 0) { //  uuid -> negative seq
        msgpack_pack_map(pk, 1);
        s_pack_str(pk, S_INSTANCE1);
        msgpack_pack_int(pk, -3);
    } else if (pubs_kind == 1) { //  not a uuid
        msgpack_pack_map(pk, 1);
        s_pack_str(pk, "not-a-uuid-not-a-uuid-not-a-uuid-xx");
        msgpack_pack_uint64(pk, 3);
    } else if (pubs_kind == 2) { //  an array
        msgpack_pack_array(pk, 0);
    } else if (pubs_kind == 3) { //  seq as text
        msgpack_pack_map(pk, 1);
        s_pack_str(pk, S_INSTANCE1);
        s_pack_str(pk, "3");
    } else if (pubs_kind == 4) { //  the same publisher twice
        msgpack_pack_map(pk, 2);
        s_pack_str(pk, S_INSTANCE1);
        msgpack_pack_uint64(pk, 3);
        s_pack_str(pk, S_INSTANCE1);
        msgpack_pack_uint64(pk, 4);
    } else { //  a good one
        msgpack_pack_map(pk, 1);
        s_pack_str(pk, S_INSTANCE1);
        msgpack_pack_uint64(pk, 3);
    }
}

static void s_end_negative_seq(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 0);
}
static void s_end_key_not_uuid(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 1);
}
static void s_end_publishers_array(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 2);
}
static void s_end_seq_as_text(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 3);
}
static void s_end_duplicate_publisher(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 4);
}
static void s_end_broker_id_int(msgpack_packer *pk)
{
    s_end_with(pk, 1, 0, 5);
}
static void s_end_count_negative(msgpack_packer *pk)
{
    s_end_with(pk, 0, 1, 5);
}
static void s_end_count_text(msgpack_packer *pk)
{
    s_end_with(pk, 0, 2, 5);
}
static void s_end_count_wrong(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    s_pack_str(pk, "broker_id");
    s_pack_str(pk, "b1");
    s_pack_str(pk, "count");
    msgpack_pack_uint64(pk, 5); //  No item was sent
    s_pack_str(pk, "publishers");
    msgpack_pack_map(pk, 0);
}
static void s_end_missing_publishers(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    s_pack_str(pk, "broker_id");
    s_pack_str(pk, "b1");
    s_pack_str(pk, "count");
    msgpack_pack_uint64(pk, 0);
}
static void s_end_trailing_bytes(msgpack_packer *pk)
{
    s_end_with(pk, 0, 0, 5);
    msgpack_pack_nil(pk);
}
static void s_end_huge_map_claim(msgpack_packer *pk)
{
    //  A map32 header claiming 2^32-1 pairs, and nothing after it
    msgpack_pack_map(pk, 0xFFFFFFFFu);
}

Test(subscriber, malformed_end_fails_the_snapshot)
{
    static const struct {
        const char *name;
        s_end_builder_fn *build;
    } cases[] = {
        {"not a map", s_end_not_a_map},
        {"negative seq", s_end_negative_seq},
        {"key not a uuid", s_end_key_not_uuid},
        {"publishers an array", s_end_publishers_array},
        {"seq as text", s_end_seq_as_text},
        {"publisher twice", s_end_duplicate_publisher},
        {"broker_id an int", s_end_broker_id_int},
        {"count negative", s_end_count_negative},
        {"count as text", s_end_count_text},
        {"count not the items sent", s_end_count_wrong},
        {"publishers missing", s_end_missing_publishers},
        {"trailing bytes", s_end_trailing_bytes},
        {"huge map claim", s_end_huge_map_claim},
    };
    hvn_subscriber_t *sub = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s_fake_init();
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init(&sbuf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        cases[i].build(&pk);
        s_fake_reply("END", sbuf.data, sbuf.size);
        msgpack_sbuffer_destroy(&sbuf);
        if (!sub)
            sub = s_client(NULL, 0, NULL);
        hvn_subscriber_opts_t opts = {.endpoint = endpoint, .service = fake.endpoint};
        hvn_subscriber_t *client = hvn_subscriber_new(&opts);
        cr_assert(client);
        s_items_t items = {0};
        cr_assert_eq(s_snapshot_via_fake(client, "", &items, S_WAIT_MS), -1, "accepted: %s",
                     cases[i].name);
        cr_assert_eq(hvn_subscriber_snapshot_seq(client, s_inst1), 0, "applied: %s", cases[i].name);
        cr_assert_str_eq(hvn_subscriber_broker_id(client), "", "applied: %s", cases[i].name);
        hvn_subscriber_destroy(&client);
        s_fake_free();
    }
    hvn_subscriber_destroy(&sub);
}

Test(subscriber, error_reply_fails_the_snapshot)
{
    s_fake_init();
    s_fake_reply("ERROR", "unknown request", 15);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), -1);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}

Test(subscriber, snapshot_without_an_answer_times_out)
{
    s_fake_init(); //  Nothing binds its endpoint
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    int64_t start = zclock_mono();
    cr_assert_eq(hvn_subscriber_snapshot(sub, "", s_collect, &items, 100), -1);
    cr_assert_geq(zclock_mono() - start, 95);
    hvn_subscriber_destroy(&sub);
    s_fake_free();

    hvn_subscriber_t *no_service = s_subscriber(NULL, 0, NULL);
    cr_assert_eq(hvn_subscriber_snapshot(no_service, "", s_collect, &items, 100), -1);
    hvn_subscriber_destroy(&no_service);
}

Test(subscriber, stats_request_returns_the_counters_as_json)
{
    s_fake_init();
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "received");
    msgpack_pack_uint64(&pk, 5);
    s_pack_str(&pk, "broker_id");
    s_pack_str(&pk, "b1");
    s_fake_reply("STATS", sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
    hvn_subscriber_t *sub = s_client(NULL, 0, NULL);
    zactor_t *actor = zactor_new(s_fake_broker, &fake);
    char *json = hvn_subscriber_stats_request(sub, S_WAIT_MS);
    zactor_destroy(&actor);
    cr_assert_str_eq(fake.request, "STATS");
    cr_assert(json);
    cr_assert_str_eq(json, "{\"broker_id\":\"b1\",\"received\":5}");
    free(json);
    hvn_subscriber_destroy(&sub);
    s_fake_free();
}
