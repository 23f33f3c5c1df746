/*  test_broker_limits.c — the broker's limits: the per-peer tables alone,
    then the broker in-process over inproc:// with small limits: topic
    length, nodes per host, subscriptions per subscriber and snapshot
    requests per second, each refused and counted.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "broker_harness.h"
#include "hvn_broker.h"
#include "hvn_limits.h"
#include "hvn_proto.h"

#define S_WAIT_MS 3000 //  Longest wait for anything in a test

// --------------------------------------------------------------------------
//  The tables

Test(sublimit, distinct_prefixes_per_peer_are_capped)
{
    hvn_sublimit_t *limit = hvn_sublimit_new(2);
    cr_assert_not_null(limit);
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.1", "a", 1), 1);
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.1", "b", 1), 1);
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.1", "c", 1), 0, "third prefix");
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.1", "a", 1), 1, "a again: no new slot");
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.2", "c", 1), 1, "another peer");
    cr_expect_eq(hvn_sublimit_total(limit), 4);
    cr_expect_eq(hvn_sublimit_peers(limit), 2);
    //  Prefixes are bytes, NUL included; longer than a topic is never applied
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.3", "\0x", 2), 1);
    char long_prefix[HVN_TOPIC_MAX + 1];
    memset(long_prefix, 'x', sizeof(long_prefix));
    cr_expect_eq(hvn_sublimit_subscribe(limit, "10.0.0.4", long_prefix, sizeof(long_prefix)), 0);
    hvn_sublimit_destroy(&limit);
    cr_expect_null(limit);
}

Test(sublimit, a_disconnect_frees_the_slots_nobody_holds)
{
    hvn_sublimit_t *limit = hvn_sublimit_new(2);
    cr_assert_eq(hvn_sublimit_subscribe(limit, "k1", "a", 1), 1);
    cr_assert_eq(hvn_sublimit_subscribe(limit, "k1", "b", 1), 1);
    cr_assert_eq(hvn_sublimit_subscribe(limit, "k2", "a", 1), 1);
    //  k1's connection goes: libzmq reports its prefixes without a peer
    hvn_sublimit_unsubscribe(limit, NULL, "a", 1);
    hvn_sublimit_unsubscribe(limit, NULL, "b", 1);
    cr_expect_eq(hvn_sublimit_total(limit), 1);
    //  b is held by nobody: k1 may take a new prefix; a is still held (by
    //  k2), so it stays in k1's set and k1 is at 2 again after c
    cr_expect_eq(hvn_sublimit_subscribe(limit, "k1", "c", 1), 1);
    cr_expect_eq(hvn_sublimit_subscribe(limit, "k1", "d", 1), 0);
    //  Reconnecting with the same prefixes never grows the count
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(hvn_sublimit_subscribe(limit, "k1", "a", 1), 1);
        hvn_sublimit_unsubscribe(limit, NULL, "a", 1);
    }
    cr_expect_eq(hvn_sublimit_subscribe(limit, "k1", "a", 1), 1);
    //  An explicit unsubscribe by the peer frees its slot at once
    hvn_sublimit_unsubscribe(limit, "k1", "c", 1);
    cr_expect_eq(hvn_sublimit_subscribe(limit, "k1", "e", 1), 1);
    //  Everything gone: no peer left
    hvn_sublimit_unsubscribe(limit, NULL, "a", 1);
    hvn_sublimit_unsubscribe(limit, NULL, "a", 1);
    hvn_sublimit_unsubscribe(limit, NULL, "e", 1);
    hvn_sublimit_unsubscribe(limit, NULL, "zz", 2); //  Never applied: ignored
    cr_expect_eq(hvn_sublimit_total(limit), 0);
    cr_expect_eq(hvn_sublimit_peers(limit), 0);
    hvn_sublimit_destroy(&limit);
}

Test(ratelimit, a_token_bucket_per_peer)
{
    hvn_ratelimit_t *limit = hvn_ratelimit_new(3);
    cr_assert_not_null(limit);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(hvn_ratelimit_take(limit, "p", 1000), 1, "burst %d", i);
    cr_expect_eq(hvn_ratelimit_take(limit, "p", 1000), 0, "bucket empty");
    cr_expect_eq(hvn_ratelimit_take(limit, "q", 1000), 1, "another peer has its own");
    cr_expect_eq(hvn_ratelimit_take(limit, "p", 1300), 0, "0.9 of a token after 300 ms");
    cr_expect_eq(hvn_ratelimit_take(limit, "p", 1334), 1, "one token after 334 ms");
    cr_expect_eq(hvn_ratelimit_peers(limit), 2);
    hvn_ratelimit_expire(limit, 1500);
    cr_expect_eq(hvn_ratelimit_peers(limit), 1, "q is full again, p is not");
    hvn_ratelimit_expire(limit, 3000);
    cr_expect_eq(hvn_ratelimit_peers(limit), 0, "full buckets are forgotten");
    hvn_ratelimit_destroy(&limit);
    cr_expect_null(limit);
}

// --------------------------------------------------------------------------
//  The broker, in-process, with small limits

static hvn_broker_t *broker;
static zsock_t *pub;    //  XPUB, connected to the frontend
static zsock_t *dealer; //  DEALER, connected to the service
static hvn_encoder_t *encoder;
static uint8_t instance[16];
static char endpoints[3][64];

static void s_setup(void)
{
    hvn_broker_config_t config;
    bh_config(&config, endpoints, "limits");
    config.max_topic_size = 40;
    config.max_publisher_nodes = 3;
    config.max_subscriptions = 2;
    config.max_snapshot_rate = 2;
    bh_start(&config, &broker, &pub, &dealer);
    zsock_set_rcvtimeo(dealer, 0);
    encoder = hvn_encoder_new();
    hvn_uuid4_raw(instance);
}

static void s_teardown(void)
{
    zsock_destroy(&pub);
    zsock_destroy(&dealer);
    hvn_encoder_destroy(&encoder);
    hvn_broker_destroy(&broker);
}

TestSuite(limits, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns nothing; the publisher sent an update of node n on host, with
//  seq n, and the broker has read it.
static void s_send_node(const char *host, int n)
{
    hvn_node_t node;
    bh_node(&node, n);
    hvn_envelope_t envelope = {.host = host};
    //  One instance per host (the broker binds an instance id to one host),
    //  its seq growing with every message
    static uint64_t seq;
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = ++seq};
    memcpy(header.instance, instance, 16);
    for (size_t i = 0; host[i]; i++)
        header.instance[i % 16] ^= (uint8_t)host[i];
    hvn_frames_t f;
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &envelope, &node, &header, &f),
                 0);
    uint64_t before = hvn_broker_stats(broker)->received;
    zmq_send(zsock_resolve(pub), f.topic, f.topic_size, ZMQ_SNDMORE);
    zmq_send(zsock_resolve(pub), f.header, HVN_HEADER_SIZE, ZMQ_SNDMORE);
    zmq_send(zsock_resolve(pub), f.body, f.body_size, 0);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (hvn_broker_stats(broker)->received == before) {
        cr_assert_lt(zclock_mono(), deadline, "message never read");
        hvn_broker_poll(broker, 2);
    }
}

Test(limits, a_topic_over_max_topic_size_is_refused)
{
    char host[64];
    memset(host, 'h', 30);
    host[30] = '\0'; //  "compute_node.update@" + 30 = 50 bytes > 40
    s_send_node(host, 1);
    const hvn_broker_stats_t *st = hvn_broker_stats(broker);
    cr_expect_eq(st->rejects.count[HVN_R_TOPIC], 1);
    cr_expect_eq(st->forwarded, 0);
    s_send_node("cmp-1", 2); //  20 + 5 bytes
    cr_expect_eq(st->forwarded, 1);
}

Test(limits, a_host_holds_at_most_max_publisher_nodes)
{
    for (int n = 1; n <= 3; n++)
        s_send_node("cmp-a", n);
    s_send_node("cmp-a", 4);
    const hvn_broker_stats_t *st = hvn_broker_stats(broker);
    cr_expect_eq(st->limited_nodes, 1);
    cr_expect_eq(st->rejects.count[HVN_R_OVER_LIMIT], 1);
    cr_expect_eq(hvn_broker_cache_nodes(broker), 3);
    cr_expect_eq(st->forwarded, 3);
    s_send_node("cmp-a", 2); //  A node it holds: still updated
    s_send_node("cmp-b", 4); //  Another host: its own count
    cr_expect_eq(st->forwarded, 5);
    cr_expect_eq(st->limited_nodes, 1);
    cr_expect_eq(hvn_broker_cache_nodes(broker), 4);
}

Test(limits, a_subscriber_past_max_subscriptions_gets_nothing_more)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    zsock_set_rcvtimeo(sub, 0);
    cr_assert_eq(zsock_connect(sub, "%s", endpoints[1]), 0);
    zsock_set_subscribe(sub, "compute_node.update@cmp-1");
    zsock_set_subscribe(sub, "compute_node.update@cmp-2");
    zsock_set_subscribe(sub, "compute_node.update@cmp-3");
    const hvn_broker_stats_t *st = hvn_broker_stats(broker);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (st->subscriptions + (int64_t)st->limited_subscriptions < 3) {
        cr_assert_lt(zclock_mono(), deadline, "subscriptions never seen");
        hvn_broker_poll(broker, 2);
    }
    cr_expect_eq(st->subscriptions, 2);
    cr_expect_eq(st->limited_subscriptions, 1);
    s_send_node("cmp-3", 3); //  Not applied: never delivered
    s_send_node("cmp-1", 1);
    bh_pump_until_readable(broker, sub);
    char *topic = zstr_recv(sub);
    cr_expect_str_eq(topic, "compute_node.update@cmp-1", "the refused prefix was applied");
    zstr_free(&topic);
    zsock_destroy(&sub);
    deadline = zclock_mono() + S_WAIT_MS;
    while (st->subscriptions != 0) {
        cr_assert_lt(zclock_mono(), deadline, "disconnect never counted");
        hvn_broker_poll(broker, 2);
    }
}

//  Returns the first frame of the next service reply (a heap string), its
//  remaining frames read and dropped.
static char *s_reply_word(void)
{
    bh_pump_until_readable(broker, dealer);
    zmsg_t *msg = zmsg_recv(dealer);
    cr_assert_not_null(msg);
    char *word = zmsg_popstr(msg);
    zmsg_destroy(&msg);
    return word;
}

Test(limits, snapshots_past_the_rate_are_answered_error)
{
    for (int i = 0; i < 3; i++) {
        zstr_sendm(dealer, "SNAPSHOT");
        zstr_send(dealer, "");
    }
    //  The refusal is answered at once, the snapshots from the loop: any order
    int ends = 0, errors = 0;
    for (int i = 0; i < 3; i++) {
        char *word = s_reply_word();
        ends += streq(word, "END");
        errors += streq(word, "ERROR");
        zstr_free(&word);
    }
    cr_expect_eq(ends, 2);
    cr_expect_eq(errors, 1);
    cr_expect_eq(hvn_broker_stats(broker)->limited_snapshots, 1);
    cr_expect_eq(hvn_broker_stats(broker)->snapshots, 2);
    //  After half a second the bucket has a token again
    bh_pump(broker, 600);
    zstr_sendm(dealer, "SNAPSHOT");
    zstr_send(dealer, "");
    char *word = s_reply_word();
    cr_expect_str_eq(word, "END");
    zstr_free(&word);
}

// --------------------------------------------------------------------------
//  Subscriptions over TCP: counted per connection

//  Returns nothing; runs self's loop for about ms milliseconds.
static void s_pump_broker(hvn_broker_t *self, int ms)
{
    int64_t until = zclock_mono() + ms;
    while (zclock_mono() < until)
        hvn_broker_poll(self, 1);
}

//  Returns a broker on loopback TCP (free ports) allowing max_subscriptions
//  prefixes per subscriber; *backend is its backend endpoint.
static hvn_broker_t *s_tcp_broker(size_t max_subscriptions, const char **backend)
{
    hvn_broker_config_t config;
    hvn_broker_config_defaults(&config);
    config.frontend = "tcp://127.0.0.1:*";
    config.backend = "tcp://127.0.0.1:*";
    config.service = "tcp://127.0.0.1:*";
    config.name = "limits-tcp";
    config.max_subscriptions = max_subscriptions;
    char error[256] = "";
    hvn_broker_t *self = hvn_broker_new(&config, error, sizeof(error));
    cr_assert_not_null(self, "%s", error);
    *backend = hvn_broker_endpoint(self, "backend");
    return self;
}

//  Returns a SUB connected to endpoint and subscribed to prefix.
static zsock_t *s_sub(const char *endpoint, const char *prefix)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    cr_assert_not_null(sub);
    cr_assert_eq(zsock_connect(sub, "%s", endpoint), 0, "%s", endpoint);
    zsock_set_subscribe(sub, prefix);
    return sub;
}

//  Returns nothing; runs the broker until it counts `subscriptions` (and
//  `limited` subscriptions not applied), asserted within S_WAIT_MS.
static void s_wait_subscriptions(hvn_broker_t *self, int64_t subscriptions, uint64_t limited)
{
    const hvn_broker_stats_t *st = hvn_broker_stats(self);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (st->subscriptions != subscriptions || st->limited_subscriptions != limited) {
        cr_assert_lt(zclock_mono(), deadline,
                     "subscriptions %" PRId64 " (want %" PRId64 "), limited %" PRIu64
                     " (want %" PRIu64 ")",
                     st->subscriptions, subscriptions, st->limited_subscriptions, limited);
        hvn_broker_poll(self, 2);
    }
}

Test(tcp_limits, a_prefix_subscribed_twice_costs_one_slot_and_is_freed_at_the_close)
{
    const char *backend;
    hvn_broker_t *self = s_tcp_broker(1, &backend);
    zsock_t *twice = s_sub(backend, "compute_node.");
    zsock_set_subscribe(twice, "compute_node.");
    s_wait_subscriptions(self, 1, 0);
    s_pump_broker(self, 100); //  Both subscribe messages read
    zsock_destroy(&twice);
    s_wait_subscriptions(self, 0, 0);
    //  The next honest subscriber from the same address gets its prefix
    zsock_t *honest = s_sub(backend, "hvn.");
    s_wait_subscriptions(self, 1, 0);
    zsock_destroy(&honest);
    s_wait_subscriptions(self, 0, 0);
    hvn_broker_destroy(&self);
}

Test(tcp_limits, an_unsubscribe_of_a_refused_prefix_takes_nothing_from_its_holder)
{
    const char *backend;
    hvn_broker_t *self = s_tcp_broker(1, &backend);
    zsock_t *first = s_sub(backend, "a");
    s_wait_subscriptions(self, 1, 0);
    //  Another address, one slot: "x" is applied, "a" refused, then the
    //  refused "a" unsubscribed
    const char *port = strrchr(backend, ':');
    char from_other[128];
    snprintf(from_other, sizeof(from_other), "tcp://127.0.0.2:0;127.0.0.1%s", port);
    zsock_t *other = s_sub(from_other, "x");
    s_wait_subscriptions(self, 2, 0);
    zsock_set_subscribe(other, "a");
    s_wait_subscriptions(self, 2, 1);
    zsock_set_unsubscribe(other, "a");
    s_pump_broker(self, 100);
    s_wait_subscriptions(self, 2, 1);
    zsock_destroy(&other);
    s_wait_subscriptions(self, 1, 1);
    zsock_destroy(&first);
    s_wait_subscriptions(self, 0, 1);
    hvn_broker_destroy(&self);
}
