/*  test_publisher.c — the embeddable publisher, seen from a broker's seat.

    Each test binds a SUB (subscribed to everything) where a broker's
    frontend would be, lets a publisher connect to it, and decodes what
    arrives with the project's decoder. A SUB's subscription reaches the
    publisher's XPUB exactly as a broker's XSUB subscription does. Tests
    wait on messages (receive with a timeout), never on sleeps; the first
    heartbeat is the handshake that says the publisher saw the subscription.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "alloc_count.h"
#include "hvn_publisher.h"

#define S_HOST "cmp-017"
#define S_RECV_MS 3000   //  Longest wait for a message that must come
#define S_SILENCE_MS 200 //  How long "nothing more arrives" is watched

// --------------------------------------------------------------------------
//  Helpers

//  One received message: its frames and their decoding
typedef struct {
    hvn_msg_t msg;                   //  Decoded
    char topic[HVN_TOPIC_MAX + 1];   //  Frame 0
    size_t topic_size;               //  Its size
    uint8_t header[HVN_HEADER_SIZE]; //  Frame 1
    uint8_t *body;                   //  Frame 2 (heap)
    size_t body_size;                //  Its size
} s_rx_t;

//  What a test holds, freed by the suite's teardown (Criterion runs each
//  test in a process of its own, these start empty)
static zsock_t *sub;         //  The broker's seat
static hvn_publisher_t *pub; //  The publisher under test
static s_rx_t rx;            //  The last message received

static hvn_decoder_t *decoder;

//  Returns nothing; makes the suite's decoder.
static void s_setup(void)
{
    decoder = hvn_decoder_new();
    cr_assert(decoder);
}

//  Returns nothing; frees what the test held and the suite's decoder.
static void s_teardown(void)
{
    free(rx.body);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    hvn_decoder_destroy(&decoder);
}

TestSuite(publisher, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns a fresh inproc endpoint, unique in this process.
static const char *s_endpoint(void)
{
    static char endpoint[64];
    static int counter;
    snprintf(endpoint, sizeof(endpoint), "inproc://publisher-%d-%d", getpid(), ++counter);
    return endpoint;
}

//  Returns a SUB bound at endpoint, subscribed to everything; rcvhwm,
//  when not 0, is its receive high water mark, set before it binds as a
//  broker does.
static zsock_t *s_broker_new_hwm(const char *endpoint, int rcvhwm)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    cr_assert(sub);
    if (rcvhwm)
        zsock_set_rcvhwm(sub, rcvhwm);
    zsock_set_rcvtimeo(sub, S_RECV_MS);
    cr_assert_eq(zsock_bind(sub, "%s", endpoint), 0, "bind %s", endpoint);
    zsock_set_subscribe(sub, "");
    return sub;
}

//  Returns a SUB bound at endpoint, subscribed to everything.
static zsock_t *s_broker_new(const char *endpoint)
{
    return s_broker_new_hwm(endpoint, 0);
}

//  Returns a publisher connected to endpoint; heartbeat_ms 0 = default.
static hvn_publisher_t *s_publisher_new(const char *endpoint, int heartbeat_ms)
{
    hvn_publisher_opts_t opts = {
        .endpoint = endpoint, .host = S_HOST, .heartbeat_ms = heartbeat_ms, .linger_ms = 1000};
    hvn_publisher_t *pub = hvn_publisher_new(&opts);
    cr_assert(pub);
    return pub;
}

//  Returns true with the next message in *rx, false when none came in time.
static bool s_recv(zsock_t *sub, s_rx_t *rx)
{
    zmsg_t *msg = zmsg_recv(sub);
    if (!msg)
        return false;
    cr_assert_eq(zmsg_size(msg), 3);
    zframe_t *topic = zmsg_first(msg);
    zframe_t *header = zmsg_next(msg);
    zframe_t *body = zmsg_next(msg);
    hvn_reason_t reason =
        hvn_decoder_decode(decoder, zframe_data(topic), zframe_size(topic), zframe_data(header),
                           zframe_size(header), zframe_data(body), zframe_size(body), &rx->msg);
    cr_assert_eq(reason, HVN_OK, "decode: %s (%s)", hvn_reason_str(reason),
                 hvn_decoder_detail(decoder));
    rx->topic_size = zframe_size(topic);
    memcpy(rx->topic, zframe_data(topic), rx->topic_size);
    rx->topic[rx->topic_size] = 0;
    memcpy(rx->header, zframe_data(header), HVN_HEADER_SIZE);
    free(rx->body);
    rx->body_size = zframe_size(body);
    rx->body = malloc(rx->body_size);
    memcpy(rx->body, zframe_data(body), rx->body_size);
    zmsg_destroy(&msg);
    return true;
}

//  Receives until a message of `kind` arrives (others skipped); fails the
//  test when none comes.
static void s_expect_kind(zsock_t *sub, uint8_t kind, s_rx_t *rx)
{
    while (true) {
        cr_assert(s_recv(sub, rx), "no message of kind %d arrived", kind);
        if (rx->msg.header.kind == kind)
            return;
    }
}

//  Receives the next notification (heartbeats skipped) and checks its
//  event and seq.
static void s_expect(zsock_t *sub, hvn_event_t event, uint64_t seq, s_rx_t *rx)
{
    s_expect_kind(sub, HVN_KIND_NOTIFICATION, rx);
    cr_assert_eq(rx->msg.event, event, "event %d, expected %d (seq %lu)", rx->msg.event, event,
                 (unsigned long)rx->msg.header.seq);
    cr_assert_eq(rx->msg.header.seq, seq, "seq %lu, expected %lu",
                 (unsigned long)rx->msg.header.seq, (unsigned long)seq);
}

//  Checks that no notification arrives for a little while.
static void s_expect_silence(zsock_t *sub)
{
    zsock_set_rcvtimeo(sub, S_SILENCE_MS);
    s_rx_t rx = {0};
    while (s_recv(sub, &rx))
        cr_assert_eq(rx.msg.header.kind, HVN_KIND_HEARTBEAT, "unexpected %s", rx.topic);
    free(rx.body);
    zsock_set_rcvtimeo(sub, S_RECV_MS);
}

//  Fills a node with every field set (nothing nil); n varies the uuid.
static void s_node(hvn_node_t *node, int n)
{
    hvn_node_init(node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, 100 + f);
    char uuid[HVN_UUID_STR_LEN + 1];
    snprintf(uuid, sizeof(uuid), "5f0c3a52-8a4b-4c55-9d0e-%012d", n);
    hvn_node_set_str(node, HVN_F_UUID, uuid);
    hvn_node_set_str(node, HVN_F_HOST, S_HOST);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, "cmp-017.example.org");
    hvn_node_set_str(node, HVN_F_HOST_IP, "192.0.2.17");
}

//  Returns nothing; node is s_node's number n, reported to the test's
//  publisher.
static void s_reported(hvn_node_t *node, int n)
{
    s_node(node, n);
    hvn_publisher_report(pub, node);
}

//  Returns the endpoint of a publisher started with no broker there yet,
//  node (s_node 1) reported to it.
static const char *s_unheard(hvn_node_t *node)
{
    const char *endpoint = s_endpoint();
    pub = s_publisher_new(endpoint, 0);
    s_reported(node, 1);
    return endpoint;
}

//  Returns the counters of the test's publisher.
static hvn_publisher_stats_t s_stats(void)
{
    hvn_publisher_stats_t stats;
    hvn_publisher_stats(pub, &stats);
    return stats;
}

//  Changes field f of node to a new valid value (round varies it).
static void s_change(hvn_node_t *node, hvn_field_id_t f, int round)
{
    char text[64];
    switch (hvn_schema_fields[f].type) {
    case HVN_TYPE_INT:
        hvn_node_set_int(node, f, *hvn_node_int(node, f) + 7);
        break;
    case HVN_TYPE_IP:
        snprintf(text, sizeof(text), "198.51.100.%d", round % 250 + 1);
        hvn_node_set_str(node, f, text);
        break;
    case HVN_TYPE_STR:
        snprintf(text, sizeof(text), "changed-%d-%d", f, round);
        hvn_node_set_str(node, f, text);
        break;
    case HVN_TYPE_UUID:
        cr_assert_fail("a uuid change makes another node");
    }
}

//  Binds a broker (sub; rcvhwm as in s_broker_new_hwm), starts a publisher
//  (pub) connected to it and waits for the first heartbeat (in rx): the
//  publisher has seen the subscription.
static void s_start_hwm(int heartbeat_ms, int rcvhwm)
{
    const char *endpoint = s_endpoint();
    sub = s_broker_new_hwm(endpoint, rcvhwm);
    pub = s_publisher_new(endpoint, heartbeat_ms);
    s_expect_kind(sub, HVN_KIND_HEARTBEAT, &rx);
    cr_assert_eq(rx.msg.header.seq, 0);
    cr_assert_eq(rx.msg.node_count, 0);
}

//  Returns nothing; s_start_hwm with the default receive high water mark.
static void s_start(int heartbeat_ms)
{
    s_start_hwm(heartbeat_ms, 0);
}

//  Returns nothing; s_start(0), node (s_node 1) reported.
static void s_started(hvn_node_t *node)
{
    s_start(0);
    s_reported(node, 1);
}

//  Returns nothing; s_started, and node's create received (in rx).
static void s_created(hvn_node_t *node)
{
    s_started(node);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
}

//  Returns nothing; dir (a mkdtemp template) is made, endpoint is an ipc
//  endpoint in it where sub is bound and pub connects (no heartbeat
//  awaited).
static void s_start_ipc(char *dir, char *endpoint, size_t size)
{
    cr_assert(mkdtemp(dir));
    snprintf(endpoint, size, "ipc://%s/frontend", dir);
    sub = s_broker_new(endpoint);
    pub = s_publisher_new(endpoint, 0);
}

//  Returns nothing; the socket file of s_start_ipc and its dir are gone.
static void s_ipc_remove(const char *dir)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/frontend", dir);
    unlink(path);
    rmdir(dir);
}

//  Returns true when the heartbeat lists uuid.
static bool s_heartbeat_lists(const hvn_msg_t *msg, const char *uuid)
{
    uuid_t raw;
    cr_assert_eq(uuid_parse(uuid, raw), 0);
    for (size_t i = 0; i < msg->node_count; i++)
        if (memcmp(msg->nodes[i], raw, 16) == 0)
            return true;
    return false;
}

// --------------------------------------------------------------------------
//  Create, update, delete

Test(publisher, create_sent_once_when_a_node_is_first_reported)
{
    s_start(0);
    hvn_node_t node;
    s_node(&node, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);

    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    cr_assert_str_eq(rx.topic, "compute_node.create@" S_HOST);
    cr_assert(hvn_node_equal(&rx.msg.node, &node));
    cr_assert_str_eq(rx.msg.publisher_id, "nova-compute:" S_HOST);
    s_expect_silence(sub);

    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.reports, 3);
    cr_assert_eq(stats.creates, 1);
    cr_assert_eq(stats.sent, 1);
    cr_assert_eq(stats.nodes, 1);
}

Test(publisher, destroy_nulls_the_pointer_and_a_second_destroy_does_nothing)
{
    s_start(0);
    hvn_publisher_destroy(&pub);
    cr_assert_null(pub);
    hvn_publisher_destroy(&pub);
}

Test(publisher, update_sent_when_vcpus_used_changes)
{
    hvn_node_t node;
    s_started(&node);
    node.vcpus_used = 3;
    hvn_publisher_report(pub, &node);

    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    s_expect(sub, HVN_EVENT_UPDATE, 2, &rx);
    cr_assert_str_eq(rx.topic, "compute_node.update@" S_HOST);
    cr_assert_eq(rx.msg.node.vcpus_used, 3);
    cr_assert(hvn_node_equal(&rx.msg.node, &node));
}

Test(publisher, update_sent_when_any_trigger_field_alone_changes_and_carries_all_fields)
{
    hvn_node_t node;
    s_created(&node);

    uint64_t seq = 1;
    int triggers = 0;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        if (!hvn_schema_fields[f].triggers_update)
            continue;
        triggers++;
        s_change(&node, f, f);
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);
        s_expect(sub, HVN_EVENT_UPDATE, ++seq, &rx);
        cr_assert(hvn_node_equal(&rx.msg.node, &node), "update after %s lacks the current state",
                  hvn_schema_fields[f].name);
        //  A nullable trigger field going nil is a change too
        if (hvn_schema_fields[f].nullable) {
            hvn_node_set_null(&node, f);
            cr_assert_eq(hvn_publisher_report(pub, &node), 0);
            s_expect(sub, HVN_EVENT_UPDATE, ++seq, &rx);
            cr_assert(hvn_node_is_null(&rx.msg.node, f));
            cr_assert(hvn_node_equal(&rx.msg.node, &node));
        }
    }
    cr_assert_eq(triggers, 9, "the seed names 9 update-triggering fields");
}

Test(publisher, nothing_sent_when_a_non_trigger_field_alone_changes)
{
    hvn_node_t node;
    s_created(&node);

    uint64_t seq = 1;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        if (hvn_schema_fields[f].triggers_update || f == HVN_F_UUID)
            continue;
        s_change(&node, f, f);
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);
        //  The next message is the update a trigger field causes, with the
        //  very next seq, and it carries the non-trigger value too.
        node.vcpus_used++;
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);
        s_expect(sub, HVN_EVENT_UPDATE, ++seq, &rx);
        cr_assert(hvn_node_equal(&rx.msg.node, &node), "%s change not carried",
                  hvn_schema_fields[f].name);
    }
    //  The last update can arrive before the actor counts it: wait for idle
    cr_assert_eq(hvn_publisher_flush(pub, 10000), 0);
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.updates, seq - 1);
}

Test(publisher, delete_sent_on_remove_and_the_node_is_forgotten)
{
    hvn_node_t node;
    s_started(&node);
    cr_assert_eq(hvn_publisher_remove(pub, node.uuid), 0);
    cr_assert_eq(hvn_publisher_remove(pub, node.uuid), -1, "removed twice");
    hvn_publisher_report(pub, &node);

    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    s_expect(sub, HVN_EVENT_DELETE, 2, &rx);
    cr_assert_str_eq(rx.topic, "compute_node.delete@" S_HOST);
    cr_assert_str_eq(rx.msg.node.uuid, node.uuid);
    cr_assert_eq(rx.msg.node.id, node.id);
    s_expect(sub, HVN_EVENT_CREATE, 3, &rx);
    cr_assert(hvn_node_equal(&rx.msg.node, &node));
}

Test(publisher, remove_of_an_unknown_uuid_is_refused)
{
    pub = s_publisher_new(s_endpoint(), 0);
    cr_assert_eq(hvn_publisher_remove(pub, "5f0c3a52-8a4b-4c55-9d0e-000000000009"), -1);
    cr_assert_eq(hvn_publisher_remove(pub, "not a uuid"), -1);
}

Test(publisher, invalid_node_is_refused_and_not_held)
{
    pub = s_publisher_new(s_endpoint(), 0);
    hvn_node_t node;
    s_node(&node, 1);
    hvn_node_set_str(&node, HVN_F_UUID, "not-a-uuid");
    cr_assert_eq(hvn_publisher_report(pub, &node), -1);
    s_node(&node, 1);
    node.nulls |= 1u << HVN_F_VCPUS; //  Not nullable
    cr_assert_eq(hvn_publisher_report(pub, &node), -1);
    s_node(&node, 1);
    memset(node.uuid, 'a', sizeof(node.uuid)); //  Not terminated
    cr_assert_eq(hvn_publisher_report(pub, &node), -1);

    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.nodes, 0);
    cr_assert_eq(stats.pending, 0);
    hvn_publisher_set_linger(pub, 0);
}

// --------------------------------------------------------------------------
//  Order, seq, the broker's absence

Test(publisher, seqs_count_from_one_in_call_order_across_nodes)
{
    s_start(0);
    hvn_node_t a, b, c;
    s_node(&a, 1);
    s_node(&b, 2);
    s_node(&c, 3);
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &b);
    a.running_vms++;
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &c);
    hvn_publisher_remove(pub, b.uuid);

    uint8_t instance[16];
    const struct {
        hvn_event_t event;
        const char *uuid;
    } expected[] = {{HVN_EVENT_CREATE, a.uuid},
                    {HVN_EVENT_CREATE, b.uuid},
                    {HVN_EVENT_UPDATE, a.uuid},
                    {HVN_EVENT_CREATE, c.uuid},
                    {HVN_EVENT_DELETE, b.uuid}};
    for (size_t i = 0; i < 5; i++) {
        s_expect(sub, expected[i].event, i + 1, &rx);
        cr_assert_str_eq(rx.msg.node.uuid, expected[i].uuid);
        if (i == 0)
            memcpy(instance, rx.msg.header.instance, 16);
        cr_assert_arr_eq(rx.msg.header.instance, instance, 16, "one instance id");
    }
}

Test(publisher, nothing_sent_before_the_subscription_and_everything_after_in_order)
{
    const char *endpoint = s_endpoint();
    pub = s_publisher_new(endpoint, 0);
    hvn_node_t a, b;
    s_node(&a, 1);
    s_node(&b, 2);
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &b);
    a.local_gb_used++;
    hvn_publisher_report(pub, &a);
    hvn_publisher_remove(pub, b.uuid);

    cr_assert_eq(hvn_publisher_flush(pub, 100), -1, "no broker, yet flushed");
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.sent, 0);
    cr_assert_eq(stats.pending, 4);
    cr_assert_eq(stats.broker, 0);

    sub = s_broker_new(endpoint);
    //  Resync (nothing sent yet, so nothing to resend), heartbeat, queue
    cr_assert(s_recv(sub, &rx));
    cr_assert_eq(rx.msg.header.kind, HVN_KIND_HEARTBEAT);
    cr_assert_eq(rx.msg.header.seq, 0);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    cr_assert_str_eq(rx.msg.node.uuid, a.uuid);
    s_expect(sub, HVN_EVENT_CREATE, 2, &rx);
    cr_assert_str_eq(rx.msg.node.uuid, b.uuid);
    s_expect(sub, HVN_EVENT_UPDATE, 3, &rx);
    cr_assert(hvn_node_equal(&rx.msg.node, &a));
    s_expect(sub, HVN_EVENT_DELETE, 4, &rx);
    cr_assert_eq(hvn_publisher_flush(pub, S_RECV_MS), 0);
    stats = s_stats();
    cr_assert_eq(stats.pending, 0);
    cr_assert_eq(stats.broker, 1);
}

Test(publisher, queued_updates_of_a_node_coalesce_into_the_latest_state)
{
    hvn_node_t node;
    const char *endpoint = s_unheard(&node);
    for (int i = 0; i < 3; i++) {
        node.vcpus_used++;
        hvn_publisher_report(pub, &node);
    }
    node.free_ram_mb = 12345; //  Not a trigger: rides along
    hvn_publisher_report(pub, &node);

    sub = s_broker_new(endpoint);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    s_expect(sub, HVN_EVENT_UPDATE, 2, &rx);
    cr_assert(hvn_node_equal(&rx.msg.node, &node));
    s_expect_silence(sub);
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.coalesced, 2);
    cr_assert_eq(stats.updates, 1);
}

Test(publisher, queued_create_carries_non_trigger_changes_made_before_it_was_sent)
{
    hvn_node_t node;
    const char *endpoint = s_unheard(&node);
    node.memory_mb_used = 4242;
    hvn_publisher_report(pub, &node);

    sub = s_broker_new(endpoint);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    cr_assert_eq(rx.msg.node.memory_mb_used, 4242);
    s_expect_silence(sub);
}

Test(publisher, destroy_sends_what_is_queued)
{
    hvn_node_t node;
    s_started(&node);
    hvn_publisher_destroy(&pub);

    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
}

Test(publisher, destroy_without_a_broker_waits_no_longer_than_linger)
{
    hvn_publisher_opts_t opts = {.endpoint = s_endpoint(), .host = S_HOST, .linger_ms = 200};
    pub = hvn_publisher_new(&opts);
    cr_assert(pub);
    hvn_node_t node;
    s_reported(&node, 1);
    int64_t start = zclock_mono();
    hvn_publisher_destroy(&pub);
    int64_t took = zclock_mono() - start;
    cr_assert(took >= 150 && took < 2000, "destroy took %ld ms", (long)took);
}

Test(publisher, new_refuses_bad_options)
{
    hvn_publisher_opts_t opts = {.endpoint = "inproc://x", .host = "a@b"};
    cr_assert_null(hvn_publisher_new(&opts));
    opts.host = "";
    cr_assert_null(hvn_publisher_new(&opts));
    opts.host = S_HOST;
    opts.endpoint = NULL;
    cr_assert_null(hvn_publisher_new(&opts));
    opts.endpoint = "nonsense://x";
    cr_assert_null(hvn_publisher_new(&opts));
    opts.endpoint = "inproc://x";
    opts.curve_secret = "/etc/hvn/client.cert";
    cr_assert_null(hvn_publisher_new(&opts), "CURVE is not supported yet");
}

// --------------------------------------------------------------------------
//  Resync and heartbeats

//  Reports a then b, updates a, and receives the three notifications into
//  sent[0..2] (frames kept for byte comparison).
static void s_send_three(zsock_t *sub, hvn_publisher_t *pub, hvn_node_t *a, hvn_node_t *b,
                         s_rx_t sent[3])
{
    s_node(a, 1);
    s_node(b, 2);
    hvn_publisher_report(pub, a);
    hvn_publisher_report(pub, b);
    a->current_workload = 9;
    hvn_publisher_report(pub, a);
    s_expect(sub, HVN_EVENT_CREATE, 1, &sent[0]);
    s_expect(sub, HVN_EVENT_CREATE, 2, &sent[1]);
    s_expect(sub, HVN_EVENT_UPDATE, 3, &sent[2]);
}

//  Receives the resync that follows a subscription: b's create (seq 2) then
//  a's update (seq 3), byte for byte but for kind 3; then a heartbeat.
static void s_expect_resync(zsock_t *sub, s_rx_t sent[3])
{
    s_rx_t rx = {0};
    const s_rx_t *expected[] = {&sent[1], &sent[2]};
    for (int i = 0; i < 2; i++) {
        s_expect_kind(sub, HVN_KIND_SYNC, &rx);
        cr_assert_eq(rx.msg.header.seq, expected[i]->msg.header.seq, "sync %d seq %lu", i,
                     (unsigned long)rx.msg.header.seq);
        cr_assert_str_eq(rx.topic, expected[i]->topic);
        cr_assert_eq(rx.body_size, expected[i]->body_size);
        cr_assert_arr_eq(rx.body, expected[i]->body, rx.body_size);
        uint8_t header[HVN_HEADER_SIZE];
        memcpy(header, expected[i]->header, HVN_HEADER_SIZE);
        header[1] = HVN_KIND_SYNC;
        cr_assert_arr_eq(rx.header, header, HVN_HEADER_SIZE);
    }
    cr_assert(s_recv(sub, &rx));
    cr_assert_eq(rx.msg.header.kind, HVN_KIND_HEARTBEAT, "heartbeat right after the syncs");
    cr_assert_eq(rx.msg.header.seq, 3);
    cr_assert_eq(rx.msg.node_count, 2);
    free(rx.body);
}

Test(publisher, resync_on_resubscribe_resends_last_states_as_kind_3_with_original_seqs)
{
    s_start(0);
    hvn_node_t a, b;
    s_rx_t sent[3];
    memset(sent, 0, sizeof(sent));
    s_send_three(sub, pub, &a, &b, sent);

    //  The broker goes away and comes back
    zsock_set_unsubscribe(sub, "");
    zsock_set_subscribe(sub, "");
    s_expect_resync(sub, sent);

    //  Notifications continue with the next seq
    a.vcpus_used++;
    hvn_publisher_report(pub, &a);
    s_expect(sub, HVN_EVENT_UPDATE, 4, &rx);
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.syncs, 2);
    cr_assert_eq(stats.resyncs, 2);
    for (int i = 0; i < 3; i++)
        free(sent[i].body);
}

Test(publisher, resync_after_a_broker_restart_on_the_same_endpoint)
{
    char dir[] = "/tmp/test_publisher.XXXXXX", endpoint[128];
    s_start_ipc(dir, endpoint, sizeof(endpoint));
    hvn_node_t a, b;
    s_rx_t sent[3];
    memset(sent, 0, sizeof(sent));
    s_send_three(sub, pub, &a, &b, sent);

    zsock_destroy(&sub);
    sub = s_broker_new(endpoint); //  The publisher reconnects by itself
    s_expect_resync(sub, sent);

    for (int i = 0; i < 3; i++)
        free(sent[i].body);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_ipc_remove(dir);
}

Test(publisher, a_broker_gone_is_noticed_and_what_changes_meanwhile_waits_for_the_next)
{
    char dir[] = "/tmp/test_publisher.XXXXXX", endpoint[128];
    s_start_ipc(dir, endpoint, sizeof(endpoint));
    hvn_node_t node;
    s_reported(&node, 1);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);

    //  The connection breaks: the broker's subscription goes with it
    zsock_destroy(&sub);
    hvn_publisher_stats_t stats;
    int64_t deadline = zclock_mono() + S_RECV_MS;
    do {
        zclock_sleep(5);
        stats = s_stats();
        cr_assert_lt(zclock_mono(), deadline, "the publisher still thinks a broker is there");
    } while (stats.broker);
    node.vcpus_used++;
    cr_assert_eq(hvn_publisher_report(pub, &node), 0);
    cr_assert_eq(hvn_publisher_flush(pub, S_SILENCE_MS), -1, "held, not sent into the void");

    //  The next broker gets the resync, then the update
    sub = s_broker_new(endpoint);
    s_expect_kind(sub, HVN_KIND_SYNC, &rx);
    s_expect(sub, HVN_EVENT_UPDATE, 2, &rx);
    cr_assert_eq(rx.msg.node.vcpus_used, node.vcpus_used);
    cr_assert_eq(hvn_publisher_flush(pub, S_RECV_MS), 0);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_ipc_remove(dir);
}

Test(publisher, heartbeat_lists_the_announced_nodes_and_the_last_seq)
{
    s_start(50);
    hvn_node_t a, b;
    s_node(&a, 1);
    s_node(&b, 2);
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &b);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    s_expect(sub, HVN_EVENT_CREATE, 2, &rx);
    s_expect_kind(sub, HVN_KIND_HEARTBEAT, &rx);
    cr_assert_str_eq(rx.topic, "hvn.heartbeat@" S_HOST);
    cr_assert_eq(rx.msg.header.seq, 2);
    cr_assert_eq(rx.msg.interval_ms, 50);
    cr_assert_eq(rx.msg.node_count, 2);
    cr_assert(s_heartbeat_lists(&rx.msg, a.uuid) && s_heartbeat_lists(&rx.msg, b.uuid));

    hvn_publisher_remove(pub, a.uuid);
    s_expect(sub, HVN_EVENT_DELETE, 3, &rx);
    s_expect_kind(sub, HVN_KIND_HEARTBEAT, &rx);
    cr_assert_eq(rx.msg.header.seq, 3);
    cr_assert_eq(rx.msg.node_count, 1);
    cr_assert(s_heartbeat_lists(&rx.msg, b.uuid));
}

// --------------------------------------------------------------------------
//  Cost of a report that changes nothing

#if ALLOC_COUNTING && !defined(__SANITIZE_UNDEFINED__)
Test(publisher, report_of_an_unchanged_node_does_not_allocate)
{
    pub = s_publisher_new(s_endpoint(), 0);
    hvn_node_t nodes[64];
    for (int i = 0; i < 64; i++) {
        s_reported(&nodes[i], i);
    }
    alloc_count_start();
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < 64; i++)
            hvn_publisher_report(pub, &nodes[i]);
    unsigned long allocations = alloc_count_stop();
    cr_assert_eq(allocations, 0, "%lu allocations", allocations);
    hvn_publisher_set_linger(pub, 0);
}
#endif

Test(publisher, report_of_an_unchanged_node_is_cheap)
{
    enum { NODES = 1000, ROUNDS = 1000 };
    pub = s_publisher_new(s_endpoint(), 0);
    hvn_node_t *nodes = malloc(NODES * sizeof(hvn_node_t));
    for (int i = 0; i < NODES; i++) {
        s_reported(&nodes[i], i);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < NODES; i++)
            hvn_publisher_report(pub, &nodes[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (NODES * ROUNDS);
    cr_log_info("report() of an unchanged node: %.1f ns", ns);
    //  The target is 100 ns; this bound only catches a gross regression
    //  on a loaded or instrumented machine.
    cr_assert_lt(ns, 5000.0);
    free(nodes);
    hvn_publisher_set_linger(pub, 0);
}

// --------------------------------------------------------------------------
//  The state directory

#define S_STATE_FILE "publisher-" S_HOST ".state"

//  Returns a fresh directory (heap), removed by s_tmpdir_remove.
static char *s_tmpdir(void)
{
    char *dir = strdup("/tmp/test_publisher.XXXXXX");
    cr_assert(mkdtemp(dir));
    return dir;
}

//  Removes a directory made by s_tmpdir and everything in it; frees dir.
static void s_tmpdir_remove(char *dir)
{
    zdir_t *tree = zdir_new(dir, NULL);
    if (tree) {
        zdir_remove(tree, true);
        zdir_destroy(&tree);
    }
    free(dir);
}

//  Returns the state file's path in dir (heap).
static char *s_state_path(const char *dir)
{
    return zsys_sprintf("%s/" S_STATE_FILE, dir);
}

//  Starts a publisher keeping its state in dir, connected to a fresh
//  broker, and receives its resync up to the heartbeat: the syncs land in
//  syncs[0..*count) (at most max), the heartbeat in *heartbeat.
static void s_start_state(const char *dir, zsock_t **sub, hvn_publisher_t **pub, s_rx_t *syncs,
                          size_t max, size_t *count, s_rx_t *heartbeat)
{
    const char *endpoint = s_endpoint();
    *sub = s_broker_new(endpoint);
    hvn_publisher_opts_t opts = {
        .endpoint = endpoint, .host = S_HOST, .state_dir = dir, .linger_ms = 2000};
    *pub = hvn_publisher_new(&opts);
    cr_assert(*pub);
    *count = 0;
    while (true) {
        cr_assert(s_recv(*sub, heartbeat), "no heartbeat after the resync");
        if (heartbeat->msg.header.kind == HVN_KIND_HEARTBEAT)
            break;
        cr_assert_eq(heartbeat->msg.header.kind, HVN_KIND_SYNC, "%s before the heartbeat",
                     heartbeat->topic);
        cr_assert_lt(*count, max);
        s_rx_t *slot = &syncs[(*count)++];
        *slot = *heartbeat;
        slot->body = malloc(heartbeat->body_size);
        memcpy(slot->body, heartbeat->body, heartbeat->body_size);
    }
}

//  Frees the bodies of count received messages.
static void s_rx_free(s_rx_t *rx, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(rx[i].body);
        rx[i].body = NULL;
    }
}

//  Checks that a sync is the notification `sent`, byte for byte but kind.
static void s_assert_sync_of(const s_rx_t *sync, const s_rx_t *sent)
{
    uint8_t header[HVN_HEADER_SIZE];
    memcpy(header, sent->header, HVN_HEADER_SIZE);
    header[1] = HVN_KIND_SYNC;
    cr_assert_arr_eq(sync->header, header, HVN_HEADER_SIZE, "sync header");
    cr_assert_str_eq(sync->topic, sent->topic);
    cr_assert_eq(sync->body_size, sent->body_size);
    cr_assert_arr_eq(sync->body, sent->body, sync->body_size, "sync body");
}

//  Runs a publisher with state in dir that sends a create for nodes 1..n
//  (frames in sent[0..n), when given) and stops.
static void s_run_creates(const char *dir, int n, s_rx_t *sent)
{
    zsock_t *sub;
    hvn_publisher_t *pub;
    s_rx_t syncs[1], heartbeat = {0};
    size_t count;
    s_start_state(dir, &sub, &pub, syncs, 1, &count, &heartbeat);
    cr_assert_eq(count, 0);
    for (int i = 1; i <= n; i++) {
        hvn_node_t node;
        s_node(&node, i);
        hvn_publisher_report(pub, &node);
    }
    for (int i = 1; i <= n; i++) {
        s_rx_t rx = {0};
        s_expect(sub, HVN_EVENT_CREATE, i, sent ? &sent[i - 1] : &rx);
        free(rx.body);
    }
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    free(heartbeat.body);
}

Test(publisher, restart_with_state_sends_no_second_create_and_updates_only_on_trigger_change)
{
    char *dir = s_tmpdir();
    s_rx_t sent[3];
    memset(sent, 0, sizeof(sent));
    hvn_node_t a, b, c;
    s_node(&a, 1);
    s_node(&b, 2);
    s_node(&c, 3);

    //  First run: create a, create b, update b
    s_rx_t syncs[4], heartbeat = {0};
    memset(syncs, 0, sizeof(syncs));
    size_t count;
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    cr_assert_eq(count, 0);
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &b);
    b.vcpus_used++;
    hvn_publisher_report(pub, &b);
    s_expect(sub, HVN_EVENT_CREATE, 1, &sent[0]);
    s_expect(sub, HVN_EVENT_CREATE, 2, &sent[1]);
    s_expect(sub, HVN_EVENT_UPDATE, 3, &sent[2]);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    char *path = s_state_path(dir);
    cr_assert(zsys_file_exists(path), "no state file");

    //  Second run: the broker gets the first run's last frames as syncs
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    cr_assert_eq(count, 2);
    s_assert_sync_of(&syncs[0], &sent[0]);
    s_assert_sync_of(&syncs[1], &sent[2]);
    cr_assert_eq(heartbeat.msg.header.seq, 0);
    cr_assert_eq(heartbeat.msg.node_count, 2);
    cr_assert(s_heartbeat_lists(&heartbeat.msg, a.uuid) &&
              s_heartbeat_lists(&heartbeat.msg, b.uuid));
    cr_assert(memcmp(heartbeat.msg.header.instance, sent[0].msg.header.instance, 16) != 0,
              "a new run has a new instance id");

    hvn_publisher_report(pub, &a); //  As sent: nothing
    b.memory_mb_used += 100;       //  Not a trigger: nothing
    hvn_publisher_report(pub, &b);
    b.running_vms++; //  A trigger: update, carrying both
    hvn_publisher_report(pub, &b);
    hvn_publisher_report(pub, &c); //  New: create

    s_expect(sub, HVN_EVENT_UPDATE, 1, &rx);
    cr_assert(hvn_node_equal(&rx.msg.node, &b));
    s_expect(sub, HVN_EVENT_CREATE, 2, &rx);
    cr_assert_str_eq(rx.msg.node.uuid, c.uuid);
    s_expect_silence(sub);
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_eq(stats.creates, 1);
    cr_assert_eq(stats.nodes, 3);

    free(heartbeat.body);
    s_rx_free(sent, 3);
    s_rx_free(syncs, count);
    free(path);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_tmpdir_remove(dir);
}

Test(publisher, forget_missing_deletes_nodes_not_reported_since_the_restart)
{
    char *dir = s_tmpdir();
    s_run_creates(dir, 3, NULL);

    s_rx_t syncs[4], heartbeat = {0};
    memset(syncs, 0, sizeof(syncs));
    size_t count;
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    cr_assert_eq(count, 3);
    hvn_node_t a, b, c;
    s_node(&a, 1);
    s_node(&b, 2);
    s_node(&c, 3);
    hvn_publisher_report(pub, &a);
    hvn_publisher_report(pub, &c);
    cr_assert_eq(hvn_publisher_forget_missing(pub), 1);
    cr_assert_eq(hvn_publisher_forget_missing(pub), 0, "already forgotten");

    s_expect(sub, HVN_EVENT_DELETE, 1, &rx);
    cr_assert_str_eq(rx.msg.node.uuid, b.uuid);
    s_expect_silence(sub);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_rx_free(syncs, count);

    //  A third run knows a and c only
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    cr_assert_eq(count, 2);
    cr_assert_eq(heartbeat.msg.node_count, 2);
    cr_assert(s_heartbeat_lists(&heartbeat.msg, a.uuid) &&
              s_heartbeat_lists(&heartbeat.msg, c.uuid));
    hvn_publisher_report(pub, &b);
    s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
    cr_assert_str_eq(rx.msg.node.uuid, b.uuid);

    free(heartbeat.body);
    s_rx_free(syncs, count);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_tmpdir_remove(dir);
}

Test(publisher, missing_state_file_means_a_fresh_start_and_the_directory_is_made)
{
    char *dir = s_tmpdir();
    char *nested = zsys_sprintf("%s/a/b", dir);
    s_run_creates(nested, 2, NULL);
    char *path = s_state_path(nested);
    cr_assert(zsys_file_exists(path));
    free(path);
    free(nested);
    s_tmpdir_remove(dir);
}

Test(publisher, unusable_state_directory_is_refused)
{
    char *dir = s_tmpdir();
    char *file = zsys_sprintf("%s/file", dir);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fclose(f);
    char *under = zsys_sprintf("%s/state", file);
    hvn_publisher_opts_t opts = {.endpoint = s_endpoint(), .host = S_HOST, .state_dir = under};
    cr_assert_null(hvn_publisher_new(&opts));
    free(under);
    free(file);
    s_tmpdir_remove(dir);
}

//  Returns the bytes of a file (heap) and its size.
static uint8_t *s_slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    uint8_t *data = malloc(*size + 16);
    cr_assert_eq(fread(data, 1, *size, f), *size);
    fclose(f);
    return data;
}

//  Writes bytes to a file.
static void s_spit(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

//  Returns a state file (sbuffer data, caller frees) with the given
//  version, host and the nodes of a valid file, each listed `repeat` times.
static char *s_state_variant(const uint8_t *valid, size_t valid_size, int version, const char *host,
                             int repeat, size_t *size)
{
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    cr_assert_eq(msgpack_unpack_next(&result, (const char *)valid, valid_size, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *nodes = NULL;
    for (uint32_t i = 0; i < result.data.via.map.size; i++)
        if (strncmp(result.data.via.map.ptr[i].key.via.str.ptr, "nodes", 5) == 0)
            nodes = &result.data.via.map.ptr[i].val;
    cr_assert(nodes);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "format", 6);
    msgpack_pack_str_with_body(&pk, "hvn-publisher-state", 19);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_int(&pk, version);
    msgpack_pack_str_with_body(&pk, "host", 4);
    msgpack_pack_str_with_body(&pk, host, strlen(host));
    msgpack_pack_str_with_body(&pk, "nodes", 5);
    msgpack_pack_array(&pk, nodes->via.array.size * repeat);
    for (uint32_t i = 0; i < nodes->via.array.size; i++)
        for (int r = 0; r < repeat; r++)
            msgpack_pack_object(&pk, nodes->via.array.ptr[i]);
    msgpack_unpacked_destroy(&result);
    *size = sbuf.size;
    return sbuf.data;
}

Test(publisher, corrupt_or_foreign_state_file_means_a_fresh_start)
{
    char *dir = s_tmpdir();
    s_run_creates(dir, 2, NULL);
    char *path = s_state_path(dir);
    size_t valid_size;
    uint8_t *valid = s_slurp(path, &valid_size);

    enum { GARBAGE, EMPTY, CUT, TRAILING, BAD_BODY, VERSION, HOST, TWICE, VARIANTS };
    for (int variant = 0; variant < VARIANTS; variant++) {
        size_t size = valid_size;
        uint8_t *data = malloc(valid_size + 16);
        memcpy(data, valid, valid_size);
        char *packed = NULL;
        if (variant == GARBAGE)
            size = (size_t)snprintf((char *)data, valid_size, "not a state file\n");
        else if (variant == EMPTY)
            size = 0;
        else if (variant == CUT)
            size = valid_size / 2;
        else if (variant == TRAILING)
            data[size++] = 0xc0;
        else if (variant == BAD_BODY) {
            uint8_t *key = memmem(data, size, "priority", 8);
            cr_assert(key);
            key[0] = 'q'; //  A required key goes missing
        } else
            packed = s_state_variant(valid, valid_size, variant == VERSION ? 2 : 1,
                                     variant == HOST ? "cmp-018" : S_HOST, variant == TWICE ? 2 : 1,
                                     &size);
        s_spit(path, packed ? (uint8_t *)packed : data, size);
        free(packed);
        free(data);

        zsock_t *sub;
        hvn_publisher_t *pub;
        s_rx_t syncs[4], heartbeat = {0};
        size_t count;
        s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
        cr_assert_eq(count, 0, "variant %d: syncs from a bad file", variant);
        cr_assert_eq(heartbeat.msg.node_count, 0, "variant %d", variant);
        hvn_node_t node;
        s_node(&node, 1);
        hvn_publisher_report(pub, &node);
        s_rx_t rx = {0};
        s_expect(sub, HVN_EVENT_CREATE, 1, &rx);
        free(rx.body);
        free(heartbeat.body);
        hvn_publisher_destroy(&pub);
        zsock_destroy(&sub);
    }
    free(valid);
    free(path);
    s_tmpdir_remove(dir);
}

Test(publisher, state_file_is_replaced_atomically_and_holds_the_last_state_of_live_nodes)
{
    char *dir = s_tmpdir();
    s_run_creates(dir, 3, NULL);
    s_rx_t syncs[4], heartbeat = {0};
    size_t count;
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    s_rx_free(syncs, count);
    hvn_publisher_remove(pub, "5f0c3a52-8a4b-4c55-9d0e-000000000002");
    hvn_node_t node;
    s_node(&node, 3);
    node.vcpus = 1;
    hvn_publisher_report(pub, &node);
    hvn_publisher_forget_missing(pub); //  Node 1
    s_expect(sub, HVN_EVENT_DELETE, 1, &rx);
    s_expect(sub, HVN_EVENT_UPDATE, 2, &rx);
    s_expect(sub, HVN_EVENT_DELETE, 3, &rx);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);

    char *tmp = zsys_sprintf("%s/" S_STATE_FILE ".tmp", dir);
    cr_assert_not(zsys_file_exists(tmp), "temporary file left behind");
    s_start_state(dir, &sub, &pub, syncs, 4, &count, &heartbeat);
    cr_assert_eq(count, 1);
    cr_assert_eq(syncs[0].msg.event, HVN_EVENT_UPDATE);
    cr_assert(hvn_node_equal(&syncs[0].msg.node, &node));
    s_rx_free(syncs, count);
    free(heartbeat.body);
    free(tmp);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&sub);
    s_tmpdir_remove(dir);
}

// --------------------------------------------------------------------------
//  Back-pressure

Test(publisher, nothing_is_lost_when_the_broker_reads_slower_than_the_publisher_sends)
{
    enum { NODES = 25000 }; //  Over the publisher's send HWM plus the reader's
    //  The reader's HWM is set before it binds, as a broker does
    s_start_hwm(0, 100);
    hvn_node_t node;
    for (int i = 0; i < NODES; i++) {
        s_node(&node, i);
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);
    }
    cr_assert_eq(hvn_publisher_flush(pub, 300), -1, "the pipe cannot hold everything");
    hvn_publisher_stats_t stats = s_stats();
    cr_assert_gt(stats.pending, 0);

    for (int i = 0; i < NODES; i++) {
        s_expect(sub, HVN_EVENT_CREATE, (uint64_t)i + 1, &rx);
        s_node(&node, i);
        cr_assert_str_eq(rx.msg.node.uuid, node.uuid);
    }
    cr_assert_eq(hvn_publisher_flush(pub, S_RECV_MS), 0);
}

Test(publisher, a_full_pipe_does_not_make_the_actor_spin)
{
    enum { NODES = 15000 };
    //  Heartbeats fall due all along, each listing over 10000 nodes
    s_start_hwm(20, 100);
    hvn_node_t node;
    for (int i = 0; i < NODES; i++) {
        s_reported(&node, i);
    }
    cr_assert_eq(hvn_publisher_flush(pub, 100), -1, "the pipe should be full by now");

    //  Nobody reads for half a second: the actor retries on its timer
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    cr_assert_eq(hvn_publisher_flush(pub, 500), -1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    double ms = (cpu1.tv_sec - cpu0.tv_sec) * 1e3 + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e6;
    cr_log_info("CPU while stalled for 500 ms: %.1f ms", ms);
    cr_assert_lt(ms, 50.0, "the actor spins: %.1f ms of CPU in 500 ms", ms);

    hvn_publisher_set_linger(pub, 0);
}

//  Reads and drops everything at endpoint until told to stop.
static void s_drain(zsock_t *pipe, void *args)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    assert(sub);
    zsock_set_subscribe(sub, "");
    int rc = zsock_bind(sub, "%s", (const char *)args);
    assert(rc == 0);
    (void)rc;
    zpoller_t *poller = zpoller_new(pipe, sub, NULL);
    zsock_signal(pipe, 0);
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which != sub)
            break;
        zmsg_t *msg = zmsg_recv(sub);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&sub);
}

Test(publisher, destroy_right_after_a_burst_of_changes_stops_the_actor_cleanly)
{
    //  Every change of a lone node empties and refills the queue: each
    //  refill is a wake-up on the actor's pipe, and the pipe fills up.
    //  Destroy must still stop the actor before it frees what the actor uses.
    for (int round = 0; round < 5; round++) {
        char endpoint[64];
        snprintf(endpoint, sizeof endpoint, "%s", s_endpoint());
        zactor_t *drain = zactor_new(s_drain, endpoint);
        hvn_publisher_t *pub = s_publisher_new(endpoint, 0);
        hvn_node_t node;
        s_node(&node, 1);
        hvn_publisher_report(pub, &node);
        cr_assert_eq(hvn_publisher_flush(pub, S_RECV_MS), 0);
        for (int i = 0; i < 200000; i++) {
            node.vcpus_used = i % 2 ? 3 : 4;
            cr_assert_eq(hvn_publisher_report(pub, &node), 0);
        }
        hvn_publisher_set_linger(pub, 0);
        hvn_publisher_destroy(&pub);
        cr_assert_null(pub);
        zactor_destroy(&drain);
    }
}

//  Returns the highest notification seq read from sub until it reaches
//  want or the deadline passes. Only headers are read: a heartbeat listing
//  tens of thousands of nodes is over a decoder's default body limit.
static uint64_t s_read_until_seq(zsock_t *sub, uint64_t want, int64_t deadline)
{
    uint64_t top = 0;
    while (top < want && zclock_mono() < deadline) {
        zmsg_t *msg = zmsg_recv(sub);
        if (!msg)
            continue;
        cr_assert_eq(zmsg_size(msg), 3);
        zmsg_first(msg);
        zframe_t *frame = zmsg_next(msg);
        hvn_header_t header;
        cr_assert_eq(hvn_header_unpack(zframe_data(frame), zframe_size(frame), &header), HVN_OK);
        if (header.kind == HVN_KIND_NOTIFICATION && header.seq > top)
            top = header.seq;
        zmsg_destroy(&msg);
    }
    return top;
}

Test(publisher, a_broker_that_stops_reading_does_not_hold_up_the_other)
{
    enum { NODES = 40000 }; //  Several times what one stuck pipe holds
    char dir[] = "/tmp/hvn-stall-XXXXXX";
    cr_assert(mkdtemp(dir));
    char stuck_ep[64], live_ep[64], both[160];
    snprintf(stuck_ep, sizeof stuck_ep, "ipc://%s/stuck", dir);
    snprintf(live_ep, sizeof live_ep, "ipc://%s/live", dir);
    snprintf(both, sizeof both, "%s,%s", stuck_ep, live_ep);

    //  The stuck broker subscribes and then never reads
    zsock_t *stuck = zsock_new(ZMQ_SUB);
    zsock_set_rcvhwm(stuck, 10);
    cr_assert_eq(zsock_bind(stuck, "%s", stuck_ep), 0);
    zsock_set_subscribe(stuck, "");
    zsock_t *live = s_broker_new(live_ep);
    zsock_set_rcvtimeo(live, 100);

    hvn_publisher_opts_t opts = {
        .endpoint = both, .host = S_HOST, .linger_ms = 1000, .stall_ms = 300};
    pub = hvn_publisher_new(&opts);
    cr_assert(pub);
    //  Both brokers hear from it, so both are subscribed; then the stuck
    //  one stops reading
    zsock_set_rcvtimeo(stuck, S_RECV_MS);
    cr_assert(s_recv(stuck, &rx), "the stuck broker never heard from the publisher");
    cr_assert(s_recv(live, &rx) || s_recv(live, &rx), "the live broker never heard from it");
    hvn_node_t node;
    for (int i = 0; i < NODES; i++) {
        s_node(&node, i);
        cr_assert_eq(hvn_publisher_report(pub, &node), 0);
    }
    uint64_t top = s_read_until_seq(live, NODES, zclock_mono() + 15000);
    hvn_publisher_stats_t stats = s_stats();
    cr_log_info("reconnects %llu, last seq at the live broker %llu",
                (unsigned long long)stats.reconnects, (unsigned long long)top);
    cr_assert_eq(top, NODES, "the live broker got up to seq %llu of %d", (unsigned long long)top,
                 NODES);
    cr_assert_geq(stats.reconnects, 1);

    hvn_publisher_set_linger(pub, 0);
    hvn_publisher_destroy(&pub);
    zsock_destroy(&live);
    zsock_destroy(&stuck);
    char path[128];
    snprintf(path, sizeof path, "%s/stuck", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/live", dir);
    unlink(path);
    rmdir(dir);
}

Test(publisher, new_refuses_a_stall_below_minus_one)
{
    hvn_publisher_opts_t opts = {.endpoint = "inproc://x", .host = S_HOST, .stall_ms = -2};
    cr_assert_null(hvn_publisher_new(&opts));
}
