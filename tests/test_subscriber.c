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

#include "fixtures.h"
#include "hvn_subscriber.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID2 "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_HOST "cmp-017"
#define S_WAIT_MS 2000 //  Longest any step may take

static hvn_encoder_t *encoder;
static zsock_t *xpub;
static hvn_subscriber_t *sub; //  The test's subscriber, destroyed by the teardown
static fx_service_t fake;     //  The fake broker service, freed by the teardown
static char endpoint[64];
static int endpoint_seq;

//  Returns the counters of the test's subscriber.
static hvn_subscriber_stats_t s_stats(void)
{
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    return stats;
}

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
    hvn_subscriber_destroy(&sub);
    fx_service_fini(&fake);
    fx_pack_teardown();
    zsock_destroy(&xpub);
    hvn_encoder_destroy(&encoder);
}

TestSuite(subscriber, .init = s_setup, .fini = s_teardown, .timeout = 30);

// --------------------------------------------------------------------------
//  Helpers

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
    fx_node_full(&node, uuid, host);
    hvn_frames_t frames;
    cr_assert_eq(fx_encode(encoder, event, &node, seq, instance, &frames), 0);
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
    sub = s_subscriber(NULL, 0, NULL);
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
    fx_node_full(&expected, S_UUID, S_HOST);
    cr_assert(hvn_node_equal(&msg.node, &expected));

    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.received, 1);
    cr_assert_eq(stats.skipped_total, 0);
    hvn_subscriber_destroy(&sub);
    cr_assert_null(sub);
}

Test(subscriber, heartbeat_is_delivered_with_its_kind)
{
    sub = s_subscriber(NULL, 0, NULL);
    s_publish_heartbeat(S_HOST, 7, 0x01);
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_HEARTBEAT);
    cr_assert_eq(msg.header.kind, HVN_KIND_HEARTBEAT);
    cr_assert_eq(msg.header.seq, 7);
    cr_assert_eq(msg.interval_ms, 10000);
    cr_assert_eq(msg.node_count, 1);
}

Test(subscriber, malformed_messages_are_skipped_and_counted_by_reason)
{
    sub = s_subscriber(NULL, 0, NULL);
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

    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.skipped[HVN_R_FRAMES], 2);
    cr_assert_eq(stats.skipped[HVN_R_MSGPACK], 1);
    cr_assert_eq(stats.skipped[HVN_R_HEADER_VERSION], 1);
    cr_assert_eq(stats.skipped_total, 4);
    cr_assert_eq(stats.received, 1);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0, "a refused message was returned");
}

Test(subscriber, topic_prefix_selects_messages)
{
    const char *topics[] = {"compute_node.delete"};
    sub = s_subscriber(topics, 1, NULL);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_DELETE, S_UUID2, S_HOST, 2, 0x01);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_DELETE);
    cr_assert_str_eq(msg.node.uuid, S_UUID2);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0);
}

Test(subscriber, several_prefixes_are_all_subscribed)
{
    const char *topics[] = {"compute_node.create", "compute_node.delete"};
    sub = s_subscriber(topics, 2, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 2, 0x01);
    s_publish(HVN_EVENT_DELETE, S_UUID, S_HOST, 3, 0x01);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_CREATE);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_eq(msg.event, HVN_EVENT_DELETE);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 50), 0);
}

Test(subscriber, host_filter_is_exact)
{
    sub = s_subscriber(NULL, 0, "cmp-01");
    s_publish(HVN_EVENT_UPDATE, S_UUID, "cmp-017", 1, 0x01); //  Shares the prefix
    s_publish(HVN_EVENT_UPDATE, S_UUID2, "cmp-01", 1, 0x02);

    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    cr_assert_str_eq(msg.host, "cmp-01");
    cr_assert_str_eq(msg.node.uuid, S_UUID2);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.filtered, 1);
    cr_assert_eq(stats.received, 1);
}

Test(subscriber, recv_returns_zero_on_timeout)
{
    sub = s_subscriber(NULL, 0, NULL);
    hvn_msg_t msg;
    int64_t start = zclock_mono();
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 100), 0);
    int64_t elapsed = zclock_mono() - start;
    cr_assert_geq(elapsed, 95);
    cr_assert_lt(elapsed, 1000);
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, 0), 0);
}

Test(subscriber, recv_returns_minus_one_when_interrupted)
{
    sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    zsys_interrupted = 1;
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, -1), -1);
    zsys_interrupted = 0;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
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
    sub = hvn_subscriber_new(&opts);
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
    sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 2, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 5, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID2, S_HOST, 9, 0x02); //  First of its instance
    hvn_msg_t msg;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
    cr_assert_eq(stats.publishers, 2);
}

Test(subscriber, heartbeat_ahead_of_last_seq_counts_a_gap)
{
    sub = s_subscriber(NULL, 0, NULL);
    s_publish(HVN_EVENT_CREATE, S_UUID, S_HOST, 1, 0x01);
    s_publish_heartbeat(S_HOST, 1, 0x01); //  Nothing lost
    s_publish_heartbeat(S_HOST, 3, 0x01); //  2 and 3 lost
    hvn_msg_t msg;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 4, 0x01); //  Next after the heartbeat
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
}

Test(subscriber, narrow_subscription_tracks_no_gaps)
{
    const char *topics[] = {"compute_node.update"};
    sub = s_subscriber(topics, 1, NULL);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 1, 0x01);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 5, 0x01); //  2..4 were creates
    hvn_msg_t msg;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.gaps, 0);
}

// --------------------------------------------------------------------------
//  Snapshot: a fake broker service (a ROUTER in an actor) answers the first
//  request with canned replies

#define S_INSTANCE1 "01010101-0101-0101-0101-010101010101"
#define S_INSTANCE2 "02020202-0202-0202-0202-020202020202"

//  Returns nothing; prepares an empty fake with a fresh endpoint, and an
//  empty fx_pk for the bodies it sends back.
static void s_fake_init(void)
{
    char service[64];
    cr_assert_eq(fx_service_init(&fake, s_new_endpoint(service, sizeof(service))), 0);
    fx_pack_setup(); //  For a body the fake sends back
}

//  Returns nothing; frees the canned replies.
static void s_fake_free(void)
{
    fx_service_fini(&fake);
}

//  Returns nothing; packs with fx_pk one pair of a map: the str key and
//  the unsigned value.
static void s_pack_key_u64(const char *key, uint64_t value)
{
    fx_str(key);
    msgpack_pack_uint64(&fx_pk, value);
}

//  Returns nothing; packs with fx_pk one pair of a map: the str key and
//  the str value.
static void s_pack_key_str(const char *key, const char *value)
{
    fx_str(key);
    fx_str(value);
}

//  Queues ["ITEM", topic, header, body] of an encoded notification.
static void s_fake_item(hvn_event_t event, const char *uuid, const char *host, uint64_t seq,
                        uint8_t instance)
{
    hvn_frames_t fr = s_encode(event, uuid, host, seq, instance);
    fx_service_item(&fake, &fr);
}

//  Queues an END of count items that names S_INSTANCE1 at seq.
static void s_fake_end1(uint64_t count, uint64_t seq)
{
    const char *instances[] = {S_INSTANCE1};
    fx_service_end(&fake, "b1", count, 1, instances, &seq);
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
    zactor_t *actor = fx_service_run(&fake);
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
    fx_service_end(&fake, "b1", 2, 2, instances, seqs);
    sub = s_client(NULL, 0, NULL);
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
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.snapshots, 1);
}

Test(subscriber, live_messages_covered_by_the_snapshot_are_skipped)
{
    s_fake_init();
    s_fake_end1(0, 3);
    sub = s_client(NULL, 0, NULL);
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
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.stale, 2);
    cr_assert_eq(stats.received, 2);
    cr_assert_eq(stats.gaps, 0);
}

Test(subscriber, jump_past_the_snapshot_seq_counts_a_gap)
{
    s_fake_init();
    s_fake_end1(0, 3);
    sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 0);
    s_publish(HVN_EVENT_UPDATE, S_UUID, S_HOST, 6, 0x01);
    hvn_msg_t msg;
    cr_assert_eq(hvn_subscriber_recv(sub, &msg, S_WAIT_MS), 1);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
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
    s_fake_end1(3, 2);
    sub = s_client(NULL, 0, NULL);

    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 1);
    cr_assert_str_eq(items.uuids[0], S_UUID2);
    hvn_subscriber_stats_t stats = s_stats();
    cr_assert_eq(stats.skipped[HVN_R_MSGPACK], 1);
    cr_assert_eq(stats.skipped[HVN_R_FRAMES], 1);
}

Test(subscriber, snapshot_items_pass_the_topic_and_host_filters)
{
    s_fake_init();
    s_fake_item(HVN_EVENT_CREATE, S_UUID, "cmp-001", 1, 0x01);
    s_fake_item(HVN_EVENT_UPDATE, S_UUID2, "cmp-001", 2, 0x01);
    s_fake_item(HVN_EVENT_UPDATE, S_UUID, "cmp-002", 1, 0x02);
    fx_service_end(&fake, "b1", 3, 0, NULL, NULL);
    const char *topics[] = {"compute_node.update"};
    sub = s_client(topics, 1, "cmp-001");
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 1);
    cr_assert_str_eq(items.uuids[0], S_UUID2);
}

Test(subscriber, end_with_unknown_keys_and_uppercase_uuid_is_accepted)
{
    s_fake_init();
    msgpack_pack_map(&fx_pk, 4);
    fx_pack_str(&fx_pk, "future");
    msgpack_pack_array(&fx_pk, 0);
    fx_pack_str(&fx_pk, "publishers");
    msgpack_pack_map(&fx_pk, 1);
    s_pack_key_u64("0D9A1B6C-3E2F-4A5B-8C7D-6E5F4A3B2C1D", 9);
    s_pack_key_u64("count", 0);
    s_pack_key_str("broker_id", "b2");
    fx_service_reply(&fake, HVN_SERVICE_END, fx_sbuf.data, fx_sbuf.size);
    sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), 0);
    uuid_t raw;
    cr_assert_eq(uuid_parse(S_UUID2, raw), 0);
    cr_assert_eq(hvn_subscriber_snapshot_seq(sub, raw), 9);
    cr_assert_str_eq(hvn_subscriber_broker_id(sub), "b2");
}

//  A malformed END body, built by one case of unreadable_end_fails_the_snapshot.
typedef void(s_end_builder_fn)(msgpack_packer *pk);

//  Returns nothing; packs an array where the map should be.
static void s_end_not_a_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}

//  Returns nothing; packs a good END with a nil after it.
static void s_end_trailing_bytes(msgpack_packer *pk)
{
    fx_pack_end(pk, 0, 0, 0);
    msgpack_pack_nil(pk);
}

//  Returns nothing; packs the head of a map that claims far more pairs
//  than follow.
static void s_end_huge_map_claim(msgpack_packer *pk)
{
    //  A map32 header claiming 2^32-1 pairs, and nothing after it
    msgpack_pack_map(pk, 0xFFFFFFFFu);
}

//  Returns nothing; asserts that a snapshot whose END is the body packed
//  since s_fake_init fails, and applies neither seqs nor a broker id (name
//  says what is wrong with the body); frees the fake.
static void s_assert_end_fails(const char *name)
{
    fx_service_reply(&fake, HVN_SERVICE_END, fx_sbuf.data, fx_sbuf.size);
    fx_pack_teardown();
    if (!sub)
        sub = s_client(NULL, 0, NULL);
    hvn_subscriber_opts_t opts = {.endpoint = endpoint, .service = fake.endpoint};
    hvn_subscriber_t *client = hvn_subscriber_new(&opts);
    cr_assert(client);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(client, "", &items, S_WAIT_MS), -1, "accepted: %s", name);
    cr_assert_eq(hvn_subscriber_snapshot_seq(client, s_inst1), 0, "applied: %s", name);
    cr_assert_str_eq(hvn_subscriber_broker_id(client), "", "applied: %s", name);
    hvn_subscriber_destroy(&client);
    s_fake_free();
}

Test(subscriber, malformed_end_fails_the_snapshot)
{
    //  Each case built by fx_pack_end and its kinds
    static const struct {
        const char *name;
        int broker_id_kind, count_kind, pubs_kind;
    } cases[] = {
        {"negative seq", 0, 0, 1},
        {"key not a uuid", 0, 0, 2},
        {"publishers an array", 0, 0, 3},
        {"seq as text", 0, 0, 4},
        {"publisher twice", 0, 0, 5},
        {"broker_id an int", 1, 0, 0},
        {"count negative", 0, 1, 0},
        {"count as text", 0, 2, 0},
        {"count not the items sent", 0, 3, 8},
        {"publishers missing", 0, 0, 9},
    };
    sub = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s_fake_init();
        fx_pack_end(&fx_pk, cases[i].broker_id_kind, cases[i].count_kind, cases[i].pubs_kind);
        s_assert_end_fails(cases[i].name);
    }
}

Test(subscriber, unreadable_end_fails_the_snapshot)
{
    //  Each case built by its function
    static const struct {
        const char *name;
        s_end_builder_fn *build;
    } cases[] = {
        {"not a map", s_end_not_a_map},
        {"trailing bytes", s_end_trailing_bytes},
        {"huge map claim", s_end_huge_map_claim},
    };
    sub = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s_fake_init();
        cases[i].build(&fx_pk);
        s_assert_end_fails(cases[i].name);
    }
}

Test(subscriber, error_reply_fails_the_snapshot)
{
    s_fake_init();
    fx_service_reply(&fake, "ERROR", "unknown request", 15);
    sub = s_client(NULL, 0, NULL);
    s_items_t items = {0};
    cr_assert_eq(s_snapshot_via_fake(sub, "", &items, S_WAIT_MS), -1);
}

Test(subscriber, snapshot_without_an_answer_times_out)
{
    s_fake_init(); //  Nothing binds its endpoint
    sub = s_client(NULL, 0, NULL);
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

Test(subscriber, requests_share_one_connection_until_a_reply_does_not_come)
{
    s_fake_init();
    s_fake_item(HVN_EVENT_CREATE, S_UUID, "cmp-001", 3, 0x01);
    s_fake_end1(1, 3);
    sub = s_client(NULL, 0, NULL);
    zactor_t *actor = fx_service_run(&fake);
    cr_assert(actor);
    s_items_t items = {0};
    cr_assert_eq(hvn_subscriber_snapshot(sub, "", s_collect, &items, S_WAIT_MS), 1);
    cr_assert_geq(hvn_subscriber_snapshot(sub, "", s_collect, &items, S_WAIT_MS), 0);
    cr_expect_eq(fake.asked, 2);
    cr_expect_eq(fake.peers, 1, "the second request went on the first one's connection");
    fake.mute = 1;
    cr_assert_eq(hvn_subscriber_snapshot(sub, "", s_collect, &items, 100), -1);
    fake.mute = 0;
    cr_assert_geq(hvn_subscriber_snapshot(sub, "", s_collect, &items, S_WAIT_MS), 0);
    cr_expect_eq(fake.asked, 4);
    cr_expect_eq(fake.peers, 2, "after a reply that did not come, a new connection: a late "
                                "reply is never read as the next request's");
    zactor_destroy(&actor);
}

Test(subscriber, stats_request_returns_the_counters_as_json)
{
    s_fake_init();
    msgpack_pack_map(&fx_pk, 2);
    s_pack_key_u64("received", 5);
    s_pack_key_str("broker_id", "b1");
    fx_service_reply(&fake, HVN_SERVICE_STATS, fx_sbuf.data, fx_sbuf.size);
    sub = s_client(NULL, 0, NULL);
    zactor_t *actor = fx_service_run(&fake);
    char *json = hvn_subscriber_stats_request(sub, S_WAIT_MS);
    zactor_destroy(&actor);
    cr_assert_str_eq(fake.request, "STATS");
    cr_assert(json);
    cr_assert_str_eq(json, "{\"broker_id\":\"b1\",\"received\":5}");
    free(json);
}
