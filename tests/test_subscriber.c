/*  test_subscriber.c — the client library against a stand-in publisher.

    The stand-in is an XPUB bound on an inproc:// endpoint (czmq sockets
    share one context). No sleeps: every test first waits until the
    subscriber's subscription has reached the XPUB, which is the moment a
    message sent can no longer be lost to the slow joiner.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <string.h>
#include <unistd.h>

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
    for (int i = 0; i < count; i++) {
        zframe_t *frame = zframe_recv(sock);
        cr_assert(frame, "no subscription arrived");
        cr_assert_geq(zframe_size(frame), 1);
        cr_assert_eq(zframe_data(frame)[0], 1, "not a subscribe message");
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
