/*  test_replica.c — the fleet replica against in-process fake brokers.

    A fake broker is an XPUB bound on inproc:// (its backend) and a ROUTER
    in an actor (its service) that answers every SNAPSHOT with the replies
    the test queued, or stays mute. The test thread only changes the queued
    replies while the replica is not polling, so the actor never reads them
    while they change. Every test waits for the replica's subscriptions to
    reach the XPUBs before it publishes: no sleeps.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "fixtures.h"
#include "hvn_replica.h"

#define S_UUID_A "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID_B "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_UUID_C "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define S_INST1 "01010101-0101-0101-0101-010101010101"
#define S_INST2 "02020202-0202-0202-0202-020202020202"
#define S_HOST1 "cmp-001"
#define S_HOST2 "cmp-002"
#define S_WAIT_MS 10000   //  Longest any step may take
#define S_SNAPSHOT_MS 500 //  Replica's wait for a snapshot reply
#define S_EVENTS_MAX 64

//  One fake broker
typedef struct {
    char backend[64]; //  XPUB endpoint
    zsock_t *xpub;    //  Its backend
    fx_service_t svc; //  Its service: answers every SNAPSHOT with svc.replies
    zactor_t *actor;  //  The service, running
} s_broker_t;

//  What the change callback saw
typedef struct {
    hvn_replica_change_t change;
    char uuid[HVN_UUID_STR_LEN + 1];
    bool from_snapshot;
    bool has_msg;
    uint64_t seq;
} s_event_t;

static hvn_encoder_t *encoder;
static hvn_replica_t *replica; //  The test's replica, destroyed by the teardown
static s_broker_t brokers[2];
static s_event_t events[S_EVENTS_MAX];
static int event_count;
static int endpoint_seq;

// --------------------------------------------------------------------------
//  The fake brokers

static void s_setup(void)
{
    encoder = hvn_encoder_new();
    cr_assert(encoder);
    event_count = 0;
    for (int i = 0; i < 2; i++) {
        s_broker_t *b = &brokers[i];
        memset(b, 0, sizeof(*b));
        snprintf(b->backend, sizeof(b->backend), "inproc://replica-%d-%d-pub", (int)getpid(),
                 ++endpoint_seq);
        char service[64];
        snprintf(service, sizeof(service), "inproc://replica-%d-%d-svc", (int)getpid(),
                 endpoint_seq);
        b->xpub = zsock_new(ZMQ_XPUB);
        cr_assert(b->xpub);
        zsock_set_rcvtimeo(b->xpub, S_WAIT_MS);
        zsock_set_xpub_verbose(b->xpub, 1);
        cr_assert_eq(zsock_bind(b->xpub, "%s", b->backend), 0);
        cr_assert_eq(fx_service_init(&b->svc, service), 0);
        b->actor = fx_service_run(&b->svc);
        cr_assert(b->actor);
    }
}

static void s_teardown(void)
{
    hvn_replica_destroy(&replica);
    for (int i = 0; i < 2; i++) {
        zactor_destroy(&brokers[i].actor);
        zsock_destroy(&brokers[i].xpub);
        fx_service_fini(&brokers[i].svc);
    }
    hvn_encoder_destroy(&encoder);
}

TestSuite(replica, .init = s_setup, .fini = s_teardown, .timeout = 60);

// --------------------------------------------------------------------------
//  Messages

//  A node with every field set; vcpus_used varies per version.
static void s_node(hvn_node_t *node, const char *uuid, const char *host, int64_t vcpus_used)
{
    fx_node_full(node, uuid, host);
    hvn_node_set_int(node, HVN_F_VCPUS_USED, vcpus_used);
}

//  Returns the encoded notification; instance is 16 bytes of one value.
static hvn_frames_t s_encode(hvn_event_t event, const char *uuid, const char *host, uint64_t seq,
                             uint8_t instance, int64_t vcpus_used)
{
    hvn_node_t node;
    s_node(&node, uuid, host, vcpus_used);
    hvn_frames_t frames;
    cr_assert_eq(fx_encode(encoder, event, &node, seq, instance, &frames), 0);
    return frames;
}

//  Sends three frames on a broker's backend.
static void s_send_frames(s_broker_t *broker, const hvn_frames_t *fr)
{
    zsock_t *sock = broker->xpub;
    cr_assert_eq(zmq_send(zsock_resolve(sock), fr->topic, fr->topic_size, ZMQ_SNDMORE),
                 (int)fr->topic_size);
    cr_assert_eq(zmq_send(zsock_resolve(sock), fr->header, HVN_HEADER_SIZE, ZMQ_SNDMORE),
                 HVN_HEADER_SIZE);
    cr_assert_eq(zmq_send(zsock_resolve(sock), fr->body, fr->body_size, 0), (int)fr->body_size);
}

//  Publishes a notification through a broker.
static void s_publish(s_broker_t *broker, hvn_event_t event, const char *uuid, const char *host,
                      uint64_t seq, uint8_t instance, int64_t vcpus_used)
{
    hvn_frames_t fr = s_encode(event, uuid, host, seq, instance, vcpus_used);
    s_send_frames(broker, &fr);
}

//  Publishes a publisher heartbeat listing count uuids, seq = last used.
static void s_heartbeat(s_broker_t *broker, const char *host, uint64_t seq, uint8_t instance,
                        const char *const *uuids, size_t count, int64_t interval_ms)
{
    hvn_envelope_t env = {.host = host};
    hvn_header_t header = {.seq = seq};
    memset(header.instance, instance, 16);
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &env, interval_ms, uuids, count, &header, &fr), 0);
    s_send_frames(broker, &fr);
}

//  Publishes a broker heartbeat naming broker_id.
static void s_broker_heartbeat(s_broker_t *broker, const char *broker_id, int64_t interval_ms)
{
    hvn_header_t header = {0};
    memset(header.instance, 0xEE, 16);
    hvn_frames_t fr;
    cr_assert_eq(
        hvn_encoder_broker_heartbeat(encoder, "fake", broker_id, interval_ms, &header, &fr), 0);
    s_send_frames(broker, &fr);
}

//  Queues ["ITEM", ...] of a notification in a broker's snapshot.
static void s_item(s_broker_t *broker, hvn_event_t event, const char *uuid, const char *host,
                   uint64_t seq, uint8_t instance, int64_t vcpus_used)
{
    hvn_frames_t fr = s_encode(event, uuid, host, seq, instance, vcpus_used);
    fx_service_item(&broker->svc, &fr);
}

//  Queues the END: broker_id, count, and n instance/seq pairs.
static void s_end(s_broker_t *broker, const char *broker_id, uint64_t count, size_t n,
                  const char *const *instances, const uint64_t *seqs)
{
    fx_service_end(&broker->svc, broker_id, count, n, instances, seqs);
}

//  Queues the END of a snapshot of two items from broker_id: S_INST1 at
//  seq1, S_INST2 at seq2.
static void s_end_two(s_broker_t *broker, const char *broker_id, uint64_t seq1, uint64_t seq2)
{
    const char *instances[] = {S_INST1, S_INST2};
    uint64_t seqs[] = {seq1, seq2};
    s_end(broker, broker_id, 2, 2, instances, seqs);
}

// --------------------------------------------------------------------------
//  The replica under test

//  Records every change.
static void s_record(const hvn_replica_event_t *event, void *arg)
{
    (void)arg;
    if (event->change == HVN_REPLICA_HEARTBEAT || event_count >= S_EVENTS_MAX)
        return;
    s_event_t *e = &events[event_count++];
    e->change = event->change;
    e->from_snapshot = event->from_snapshot;
    e->has_msg = event->msg != NULL;
    e->uuid[0] = '\0';
    if (event->node)
        snprintf(e->uuid, sizeof(e->uuid), "%s", event->node->node.uuid);
    else if (event->msg)
        snprintf(e->uuid, sizeof(e->uuid), "%s", event->msg->node.uuid);
    e->seq = event->node ? event->node->seq : 0;
}

//  Waits until a broker's XPUB has seen `count` subscriptions.
static void s_await_subscriptions(s_broker_t *broker, int count)
{
    for (int i = 0; i < count;) {
        zframe_t *frame = zframe_recv(broker->xpub);
        cr_assert(frame, "no subscription arrived");
        if (zframe_size(frame) > 0 && zframe_data(frame)[0] == 1)
            i++;
        zframe_destroy(&frame);
    }
}

//  Returns a replica of the first `links` fake brokers, subscribed.
static hvn_replica_t *s_replica(size_t links, int heartbeat_ms)
{
    const char *backends[2] = {brokers[0].backend, brokers[1].backend};
    const char *services[2] = {brokers[0].svc.endpoint, brokers[1].svc.endpoint};
    hvn_replica_opts_t opts = {.backends = backends,
                               .services = services,
                               .broker_count = links,
                               .snapshot_timeout_ms = S_SNAPSHOT_MS,
                               .heartbeat_ms = heartbeat_ms,
                               .fn = s_record};
    hvn_replica_t *replica = hvn_replica_new(&opts);
    cr_assert(replica);
    for (size_t i = 0; i < links; i++)
        s_await_subscriptions(&brokers[i], 2); //  compute_node. and hvn.
    return replica;
}

//  Polls until cond holds, at most S_WAIT_MS; asserts it then.
#define S_POLL_UNTIL(replica, cond)                                                                \
    do {                                                                                           \
        int64_t until_ = zclock_mono() + S_WAIT_MS;                                                \
        while (!(cond) && zclock_mono() < until_)                                                  \
            hvn_replica_poll((replica), 20);                                                       \
        cr_assert((cond), "never true: %s", #cond);                                                \
    } while (0)

//  Returns the replica's counters.
static hvn_replica_stats_t s_stats(hvn_replica_t *replica)
{
    hvn_replica_stats_t stats;
    hvn_replica_stats(replica, &stats);
    return stats;
}

//  Returns the index of the first recorded event of change for uuid (NULL:
//  any), or -1.
static int s_find_event(hvn_replica_change_t change, const char *uuid)
{
    for (int i = 0; i < event_count; i++)
        if (events[i].change == change && (!uuid || strcmp(events[i].uuid, uuid) == 0))
            return i;
    return -1;
}

//  Queues broker 0's snapshot: A (inst1 seq 3) and B (inst2 seq 7).
static void s_fleet_ab(s_broker_t *broker)
{
    fx_service_clear(&broker->svc);
    s_item(broker, HVN_EVENT_CREATE, S_UUID_A, S_HOST1, 3, 0x01, 1);
    s_item(broker, HVN_EVENT_UPDATE, S_UUID_B, S_HOST2, 7, 0x02, 2);
    s_end_two(broker, "b1", 3, 7);
}

// --------------------------------------------------------------------------
//  Cases

//  Returns nothing; replica follows the first `links` brokers, each of
//  whose snapshots is the fleet of A and B (s_fleet_ab), and is synced.
static void s_synced_on(size_t links)
{
    for (size_t b = 0; b < links; b++)
        s_fleet_ab(&brokers[b]);
    replica = s_replica(links, 0);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
}

//  Returns nothing; s_synced_on broker 0.
static void s_synced_ab(void)
{
    s_synced_on(1);
}

//  Returns nothing; s_synced_on both brokers.
static void s_synced_ab2(void)
{
    s_synced_on(2);
}

Test(replica, first_snapshot_fills_the_view_and_live_skips_what_it_held)
{
    s_fleet_ab(&brokers[0]);
    replica = s_replica(1, 0);
    //  Queued while the snapshot is taken: the first already in it
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 3, 0x01, 1);
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 4, 0x01, 9);
    S_POLL_UNTIL(replica, s_stats(replica).applied == 1);

    cr_assert(hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 2);
    const hvn_replica_node_t *a = hvn_replica_get(replica, S_UUID_A);
    cr_assert(a);
    cr_assert_eq(a->seq, 4);
    cr_assert_eq(a->node.vcpus_used, 9);
    cr_assert_str_eq(a->host, S_HOST1);
    cr_assert_eq(a->instance[0], 0x01);
    const hvn_replica_node_t *b = hvn_replica_get(replica, S_UUID_B);
    cr_assert(b);
    cr_assert_eq(b->seq, 7);
    cr_assert_null(hvn_replica_get(replica, S_UUID_C));

    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.snapshots, 1);
    cr_assert_eq(stats.stale, 1);
    cr_assert_eq(stats.losses, 0);
    cr_assert_eq(stats.repairs, 0);
    //  Created twice by the snapshot, replaced, then updated live
    cr_assert_eq(event_count, 4);
    cr_assert_eq(events[0].change, HVN_REPLICA_CREATED);
    cr_assert(events[0].from_snapshot && events[0].has_msg);
    cr_assert_eq(events[2].change, HVN_REPLICA_REPLACED);
    cr_assert_eq(events[3].change, HVN_REPLICA_UPDATED);
    cr_assert_not(events[3].from_snapshot);
    cr_assert_eq(events[3].seq, 4);
    hvn_replica_destroy(&replica);
    cr_assert_null(replica);
}

Test(replica, live_delete_removes_the_node_and_create_adds_one)
{
    s_synced_ab();
    s_publish(&brokers[0], HVN_EVENT_DELETE, S_UUID_A, S_HOST1, 4, 0x01, 0);
    s_publish(&brokers[0], HVN_EVENT_CREATE, S_UUID_C, S_HOST2, 8, 0x02, 5);
    S_POLL_UNTIL(replica, s_stats(replica).applied == 2);
    cr_assert_null(hvn_replica_get(replica, S_UUID_A));
    cr_assert(hvn_replica_get(replica, S_UUID_C));
    cr_assert_eq(hvn_replica_size(replica), 2);
    int deleted = s_find_event(HVN_REPLICA_DELETED, S_UUID_A);
    cr_assert_geq(deleted, 0);
    cr_assert(events[deleted].has_msg && !events[deleted].from_snapshot);
    cr_assert_geq(s_find_event(HVN_REPLICA_CREATED, S_UUID_C), 0);
    cr_assert_eq(s_stats(replica).losses, 0);
}

Test(replica, seq_gap_is_detected_and_a_snapshot_replaces_the_view)
{
    s_synced_ab();
    //  The broker's truth now: A at seq 6, B deleted, C created
    fx_service_clear(&brokers[0].svc);
    s_item(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 6, 0x01, 6);
    s_item(&brokers[0], HVN_EVENT_CREATE, S_UUID_C, S_HOST2, 9, 0x02, 3);
    s_end_two(&brokers[0], "b1", 6, 9);
    event_count = 0;
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 6, 0x01, 6); //  4, 5 lost
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 1);

    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.gaps, 1);
    cr_assert_eq(stats.missed, 2);
    cr_assert_eq(stats.losses, 1);
    cr_assert_eq(stats.repaired, 1);
    cr_assert_eq(stats.snapshots, 2);
    cr_assert_eq(hvn_replica_size(replica), 2);
    cr_assert_null(hvn_replica_get(replica, S_UUID_B));
    cr_assert_eq(hvn_replica_get(replica, S_UUID_C)->seq, 9);
    int gone = s_find_event(HVN_REPLICA_DELETED, S_UUID_B);
    cr_assert_geq(gone, 0);
    cr_assert(events[gone].from_snapshot && !events[gone].has_msg);
    cr_assert_geq(s_find_event(HVN_REPLICA_CREATED, S_UUID_C), 0);
    cr_assert_geq(s_find_event(HVN_REPLICA_REPLACED, NULL), 0);
    //  A was already at seq 6: the snapshot changed nothing there
    cr_assert_eq(s_find_event(HVN_REPLICA_UPDATED, S_UUID_A), 0, "the live update only");
}

Test(replica, detections_while_a_repair_is_pending_join_it)
{
    s_synced_ab();
    int asked = brokers[0].svc.asked;
    brokers[0].svc.mute = 1; //  The repair cannot complete yet
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 5, 0x01, 5);
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_B, S_HOST2, 9, 0x02, 5);
    S_POLL_UNTIL(replica, s_stats(replica).gaps == 2);
    cr_assert_eq(s_stats(replica).repaired, 0);
    cr_assert_not(hvn_replica_synced(replica));
    S_POLL_UNTIL(replica, s_stats(replica).repairs_failed >= 2);
    cr_assert_eq(s_stats(replica).losses, 2);

    fx_service_clear(&brokers[0].svc); //  Safe: the service answers nothing while mute
    s_item(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 5, 0x01, 5);
    s_item(&brokers[0], HVN_EVENT_UPDATE, S_UUID_B, S_HOST2, 9, 0x02, 5);
    s_end_two(&brokers[0], "b1", 5, 9);
    brokers[0].svc.mute = 0;
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.repairs, 1, "one repair for both gaps");
    cr_assert_eq(stats.repaired, 2);
    cr_assert_eq(stats.losses, stats.repaired);
    cr_assert_geq(stats.repairs_failed, 2);
    //  Failed attempts back off: far fewer requests than polls
    cr_assert_lt(brokers[0].svc.asked - asked, 30);
}

Test(replica, first_snapshot_failing_is_retried_until_a_broker_answers)
{
    brokers[0].svc.mute = 1;
    s_fleet_ab(&brokers[0]);
    replica = s_replica(1, 0);
    S_POLL_UNTIL(replica, s_stats(replica).repairs_failed >= 1);
    cr_assert_not(hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 0);
    brokers[0].svc.mute = 0;
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 2);
    cr_assert_eq(s_stats(replica).losses, 0);
}

Test(replica, heartbeat_naming_a_node_the_view_lacks_is_stale_and_repaired)
{
    s_synced_ab();
    //  Agrees: inst1 applied up to 3, host 1 holds A only
    const char *just_a[] = {S_UUID_A};
    s_heartbeat(&brokers[0], S_HOST1, 3, 0x01, just_a, 1, 10000);
    const char *a_and_c[] = {S_UUID_A, S_UUID_C};
    s_heartbeat(&brokers[0], S_HOST1, 3, 0x01, a_and_c, 2, 10000);
    S_POLL_UNTIL(replica, s_stats(replica).stale_heartbeats == 1);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.repairs, 1);
    cr_assert_eq(stats.repaired, 1);
    cr_assert_eq(stats.gaps, 0);
}

Test(replica, heartbeat_missing_a_held_node_is_stale)
{
    s_synced_ab();
    s_heartbeat(&brokers[0], S_HOST2, 7, 0x02, NULL, 0, 10000);
    S_POLL_UNTIL(replica, s_stats(replica).stale_heartbeats == 1);
}

Test(replica, heartbeat_is_compared_only_once_its_seq_is_applied)
{
    s_synced_ab();
    //  Older than the view (a broker behind): not compared
    s_heartbeat(&brokers[0], S_HOST1, 2, 0x01, NULL, 0, 10000);
    //  Ahead of the view: a gap, not a stale list
    s_heartbeat(&brokers[0], S_HOST2, 9, 0x02, NULL, 0, 10000);
    S_POLL_UNTIL(replica, s_stats(replica).gaps == 1);
    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.missed, 2);
    cr_assert_eq(stats.stale_heartbeats, 0);
}

Test(replica, unrepairable_stale_heartbeat_repairs_at_most_once_per_interval)
{
    s_fleet_ab(&brokers[0]); //  The broker never learns of C
    replica = s_replica(1, 0);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    const char *a_and_c[] = {S_UUID_A, S_UUID_C};
    s_heartbeat(&brokers[0], S_HOST1, 3, 0x01, a_and_c, 2, 600);
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 1);
    int64_t repaired_at = zclock_mono();
    s_heartbeat(&brokers[0], S_HOST1, 3, 0x01, a_and_c, 2, 600);
    S_POLL_UNTIL(replica, s_stats(replica).stale_heartbeats == 2);
    cr_assert_eq(s_stats(replica).repairs, 1, "not before the interval");
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 2);
    cr_assert_geq(zclock_mono() - repaired_at, 550);
}

Test(replica, new_broker_id_is_a_restart_and_repaired)
{
    s_synced_ab();
    s_broker_heartbeat(&brokers[0], "b1", 10000); //  The one the snapshot named
    s_broker_heartbeat(&brokers[0], "b1-restarted", 10000);
    S_POLL_UNTIL(replica, s_stats(replica).broker_restarts == 1);
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 1);
    //  The snapshot still names b1, which the replica now takes as the link's
    cr_assert_eq(s_stats(replica).broker_restarts, 1);
}

Test(replica, silent_broker_is_a_loss_once_per_silence)
{
    s_fleet_ab(&brokers[0]);
    replica = s_replica(1, 100);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    S_POLL_UNTIL(replica, s_stats(replica).silences == 1);
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 1);
    hvn_replica_poll(replica, 500); //  Still silent: no second detection
    cr_assert_eq(s_stats(replica).silences, 1);
    s_broker_heartbeat(&brokers[0], "b1", 100); //  Heard again; silence can be seen anew
    S_POLL_UNTIL(replica, s_stats(replica).silences == 2);
}

Test(replica, notification_from_both_brokers_is_applied_once)
{
    s_synced_ab2();
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 4, 0x01, 4);
    s_publish(&brokers[1], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 4, 0x01, 4);
    S_POLL_UNTIL(replica, s_stats(replica).applied + s_stats(replica).duplicates == 2);
    //  Lost on broker 0's path, delivered by broker 1: nothing is missing
    s_publish(&brokers[1], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 5, 0x01, 5);
    S_POLL_UNTIL(replica, s_stats(replica).applied == 2);
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 6, 0x01, 6);
    s_publish(&brokers[1], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 6, 0x01, 6);
    S_POLL_UNTIL(replica, s_stats(replica).applied + s_stats(replica).duplicates == 5);
    hvn_replica_stats_t stats = s_stats(replica);
    cr_assert_eq(stats.applied, 3);
    cr_assert_eq(stats.duplicates, 2);
    cr_assert_eq(stats.losses, 0, "a copy one broker lost came through the other");
    cr_assert_eq(hvn_replica_get(replica, S_UUID_A)->seq, 6);
}

Test(replica, snapshot_asks_the_services_in_turn)
{
    brokers[0].svc.mute = 1;
    s_fleet_ab(&brokers[1]);
    replica = s_replica(2, 0);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 2);
    cr_assert_geq(brokers[0].svc.asked + brokers[1].svc.asked, 1);
    cr_assert_eq(brokers[1].svc.asked, 1);
}

//  Counts the nodes foreach visits.
static int s_count_node(const hvn_replica_node_t *node, void *arg)
{
    (*(int *)arg)++;
    return node->seq == 0; //  Never: every node has a seq
}

Test(replica, foreach_visits_every_node_and_host_filter_keeps_one_host)
{
    s_synced_ab();
    int count = 0;
    cr_assert_eq(hvn_replica_foreach(replica, s_count_node, &count), 2);
    cr_assert_eq(count, 2);
    hvn_replica_destroy(&replica);

    const char *backends[] = {brokers[0].backend};
    const char *services[] = {brokers[0].svc.endpoint};
    hvn_replica_opts_t opts = {.backends = backends,
                               .services = services,
                               .broker_count = 1,
                               .host = S_HOST2,
                               .snapshot_timeout_ms = S_SNAPSHOT_MS};
    replica = hvn_replica_new(&opts);
    cr_assert(replica);
    s_await_subscriptions(&brokers[0], 2);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 1);
    cr_assert(hvn_replica_get(replica, S_UUID_B));
    //  Another host's heartbeat is not this replica's business
    s_heartbeat(&brokers[0], S_HOST1, 3, 0x01, NULL, 0, 10000);
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_B, S_HOST2, 8, 0x02, 8);
    S_POLL_UNTIL(replica, s_stats(replica).applied == 1);
    cr_assert_eq(s_stats(replica).losses, 0);
}

Test(replica, invalid_options_are_refused)
{
    const char *backends[] = {"inproc://x", NULL};
    const char *services[] = {"inproc://y", "inproc://z"};
    hvn_replica_opts_t opts = {.backends = backends, .services = services, .broker_count = 0};
    cr_assert_null(hvn_replica_new(&opts));
    opts.broker_count = 2;
    cr_assert_null(hvn_replica_new(&opts));
    opts.broker_count = HVN_REPLICA_BROKERS_MAX + 1;
    cr_assert_null(hvn_replica_new(&opts));
}

Test(replica, snapshot_from_a_broker_behind_the_other_does_not_turn_the_view_back)
{
    s_synced_ab2();
    //  Broker 0 delivers A at seq 4 and C at seq 5; broker 1 has seen only seq 4
    s_publish(&brokers[0], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 4, 0x01, 4);
    s_publish(&brokers[0], HVN_EVENT_CREATE, S_UUID_C, S_HOST1, 5, 0x01, 5);
    S_POLL_UNTIL(replica, s_stats(replica).applied == 2);
    fx_service_clear(&brokers[1].svc);
    s_item(&brokers[1], HVN_EVENT_UPDATE, S_UUID_A, S_HOST1, 4, 0x01, 4);
    s_item(&brokers[1], HVN_EVENT_UPDATE, S_UUID_B, S_HOST2, 7, 0x02, 2);
    s_end_two(&brokers[1], "b1-new", 3, 7);
    brokers[0].svc.mute = 1;
    s_broker_heartbeat(&brokers[1], "b1-other", 10000);
    s_broker_heartbeat(&brokers[1], "b1-new", 10000);
    S_POLL_UNTIL(replica, s_stats(replica).repairs == 1);
    cr_assert_eq(hvn_replica_get(replica, S_UUID_A)->seq, 4);
    cr_assert(hvn_replica_get(replica, S_UUID_C), "C is newer than that snapshot");
    //  Broker 1 catches up: already applied
    s_publish(&brokers[1], HVN_EVENT_CREATE, S_UUID_C, S_HOST1, 5, 0x01, 5);
    S_POLL_UNTIL(replica, s_stats(replica).duplicates == 1);
    cr_assert_eq(s_stats(replica).applied, 2);
}

Test(replica, silent_broker_is_seen_while_the_other_keeps_talking)
{
    s_fleet_ab(&brokers[0]);
    s_fleet_ab(&brokers[1]);
    replica = s_replica(2, 100);
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
    int64_t until = zclock_mono() + S_WAIT_MS;
    while (s_stats(replica).silences == 0 && zclock_mono() < until) {
        s_broker_heartbeat(&brokers[1], "b1", 100); //  Broker 1 never quiet
        hvn_replica_poll(replica, 10);
    }
    cr_assert_eq(s_stats(replica).silences, 1, "broker 0's silence was not seen");
}

Test(replica, sync_takes_a_snapshot_at_once_and_reports_failure)
{
    s_fleet_ab(&brokers[0]);
    replica = s_replica(1, 0);
    cr_assert_eq(hvn_replica_sync(replica), 0);
    cr_assert(hvn_replica_synced(replica));
    cr_assert_eq(hvn_replica_size(replica), 2);
    brokers[0].svc.mute = 1;
    cr_assert_eq(hvn_replica_sync(replica), -1);
    cr_assert_not(hvn_replica_synced(replica), "a failed sync leaves a repair pending");
    cr_assert_eq(s_stats(replica).repairs_failed, 1);
    cr_assert_eq(hvn_replica_size(replica), 2, "the view is kept");
    brokers[0].svc.mute = 0;
    S_POLL_UNTIL(replica, hvn_replica_synced(replica));
}

Test(replica, snapshot_naming_no_publisher_removes_what_it_lacks)
{
    s_synced_ab();
    fx_service_clear(&brokers[0].svc);
    s_end(&brokers[0], "b2", 0, 0, NULL, NULL); //  A broker that knows nothing yet
    cr_assert_eq(hvn_replica_sync(replica), 0);
    cr_assert_eq(hvn_replica_size(replica), 0);
}
