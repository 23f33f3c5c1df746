/*  test_broker_service.c — the broker in-process, over inproc:// sockets.

    The test drives the broker's loop itself (hvn_broker_poll) between its
    own sends and receives, so every case is deterministic and needs no
    process or port. A raw XPUB plays the publisher, a SUB the subscriber
    and a DEALER the snapshot/stats client, as PROTOCOL.md describes them.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "broker_harness.h"
#include "fixtures.h"
#include "hvn_broker.h"
#include "hvn_proto.h"

#define S_WAIT_MS 3000 //  Longest wait for anything in a test

static hvn_broker_t *broker;
static zsock_t *pub;    //  XPUB, connected to the frontend
static zsock_t *dealer; //  DEALER, connected to the service
static hvn_encoder_t *encoder;
static uint8_t instance[16]; //  The test publisher's instance id
static char hosts[16][64];   //  Hosts the test published as, first one first
static int nhosts;           //  How many

//  Returns nothing; out is the instance id the test uses for host: the
//  first host named in a test gets `instance`, each other one its own
//  (the broker binds an instance id to one host).
static void s_instance_for(const char *host, uint8_t out[16])
{
    int i = 0;
    while (i < nhosts && strcmp(hosts[i], host) != 0)
        i++;
    if (i == nhosts) {
        cr_assert_lt(nhosts, 16);
        snprintf(hosts[nhosts++], sizeof(hosts[0]), "%s", host);
    }
    memcpy(out, instance, 16);
    out[0] ^= (uint8_t)i;
}
static char endpoints[3][64];

//  Returns nothing; a broker on fresh inproc endpoints, a publisher whose
//  subscription from the broker has arrived, and a service client.
static void s_setup(void)
{
    hvn_broker_config_t config;
    bh_config(&config, endpoints, "test-broker");
    bh_start(&config, &broker, &pub, &dealer);
    encoder = hvn_encoder_new();
    hvn_uuid4_raw(instance);
    nhosts = 0;
}

//  Returns nothing; everything closed, the broker destroyed.
static void s_teardown(void)
{
    zsock_destroy(&pub);
    zsock_destroy(&dealer);
    hvn_encoder_destroy(&encoder);
    hvn_broker_destroy(&broker);
    cr_assert_null(broker);
}

TestSuite(broker, .init = s_setup, .fini = s_teardown, .timeout = 30);

// --------------------------------------------------------------------------
//  Helpers: messages, subscribers, requests

//  Returns the frames of a notification about node n (uuid ...00n, host
//  cmp-00n, vcpus `vcpus`) with the given kind, and a header carrying
//  instance id (NULL: the test's instance for the host) and seq; valid
//  until the next encode.
static hvn_frames_t s_note_from(hvn_event_t event, int n, uint8_t kind, const uint8_t *id,
                                uint64_t seq, int vcpus)
{
    hvn_node_t node;
    bh_node(&node, n);
    node.vcpus = vcpus;
    char host[32];
    snprintf(host, sizeof(host), "cmp-%03d", n);
    hvn_envelope_t envelope = {.host = host};
    hvn_header_t header = {.kind = kind, .seq = seq};
    if (id)
        memcpy(header.instance, id, 16);
    else
        s_instance_for(host, header.instance);
    hvn_frames_t frames;
    cr_assert_eq(hvn_encoder_notification(encoder, event, &envelope, &node, &header, &frames), 0);
    return frames;
}

//  Returns the frames of a notification about node n (uuid ...00n, host
//  cmp-00n) with the given kind and seq; valid until the next encode.
static hvn_frames_t s_note(hvn_event_t event, int n, uint8_t kind, uint64_t seq, int vcpus)
{
    return s_note_from(event, n, kind, NULL, seq, vcpus);
}

//  Returns nothing; sends count frames as one message from the publisher.
static void s_send_raw(const void *const data[], const size_t sizes[], int count)
{
    for (int i = 0; i < count; i++)
        cr_assert_geq(
            zmq_send(zsock_resolve(pub), data[i], sizes[i], i + 1 < count ? ZMQ_SNDMORE : 0), 0);
}

//  Returns nothing; sends the three frames from the publisher.
static void s_send(const hvn_frames_t *frames)
{
    const void *data[] = {frames->topic, frames->header, frames->body};
    size_t sizes[] = {frames->topic_size, HVN_HEADER_SIZE, frames->body_size};
    s_send_raw(data, sizes, 3);
}

//  Returns a SUB on the backend subscribed to prefix, once the broker has
//  counted its subscription.
static zsock_t *s_subscriber(const char *prefix)
{
    int64_t before = hvn_broker_stats(broker)->subscriptions;
    zsock_t *sub = zsock_new(ZMQ_SUB);
    zsock_set_rcvtimeo(sub, 0);
    cr_assert_eq(zsock_connect(sub, "%s", endpoints[1]), 0);
    zsock_set_subscribe(sub, prefix);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (hvn_broker_stats(broker)->subscriptions == before) {
        cr_assert_lt(zclock_mono(), deadline, "subscription never counted");
        hvn_broker_poll(broker, 2);
    }
    return sub;
}

//  Returns the next message on sock after running the broker until one
//  arrives (the caller destroys it).
static zmsg_t *s_recv(zsock_t *sock)
{
    bh_pump_until_readable(broker, sock);
    zmsg_t *msg = zmsg_recv(sock);
    cr_assert_not_null(msg);
    return msg;
}

//  Returns 1 when the frame holds exactly size bytes equal to data.
static int s_frame_eq(zframe_t *frame, const void *data, size_t size)
{
    return frame && zframe_size(frame) == size && memcmp(zframe_data(frame), data, size) == 0;
}

//  Returns the value of key in a msgpack map (asserted a map), or NULL.
static msgpack_object *s_get(msgpack_object *map, const char *key)
{
    cr_assert_eq(map->type, MSGPACK_OBJECT_MAP);
    return fx_map_get(map, key);
}

//  Returns the integer value of key in the broker's STATS reply.
static int64_t s_stat(const char *key)
{
    zstr_send(dealer, "STATS");
    zmsg_t *reply = s_recv(dealer);
    cr_assert_eq(zmsg_size(reply), 2);
    char *word = zmsg_popstr(reply);
    cr_assert_str_eq(word, "STATS");
    zstr_free(&word);
    zframe_t *body = zmsg_pop(reply);
    msgpack_unpacked result;
    size_t off = 0;
    cr_assert_eq(fx_unpack_frame(body, &result, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, zframe_size(body));
    msgpack_object *value = s_get(&result.data, key);
    cr_assert_not_null(value, "STATS has no '%s'", key);
    cr_assert(value->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    int64_t v = value->via.i64;
    msgpack_unpacked_destroy(&result);
    zframe_destroy(&body);
    zmsg_destroy(&reply);
    return v;
}

//  A snapshot as received: the ITEM messages and the END body's fields.
typedef struct {
    zmsg_t *items[64];      //  ["ITEM", topic, header, body] each
    int count;              //  Items received
    int64_t end_count;      //  END's count
    char broker_id[64];     //  END's broker_id
    uint64_t publisher_seq; //  END's seq of the test publisher; 0 = absent
    int publishers;         //  Entries in END's publishers map
} s_snapshot_t;

//  Returns nothing; snap holds the broker's snapshot under prefix.
static void s_snapshot(const char *prefix, s_snapshot_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    zstr_sendm(dealer, "SNAPSHOT");
    zstr_send(dealer, prefix);
    while (true) {
        zmsg_t *msg = s_recv(dealer);
        char *word = zmsg_popstr(msg);
        if (streq(word, "ITEM")) {
            zstr_free(&word);
            cr_assert_eq(zmsg_size(msg), 3);
            cr_assert_lt(snap->count, 64);
            snap->items[snap->count++] = msg;
            continue;
        }
        cr_assert_str_eq(word, "END");
        zstr_free(&word);
        zframe_t *body = zmsg_pop(msg);
        msgpack_unpacked result;
        cr_assert_eq(fx_unpack_frame(body, &result, NULL), MSGPACK_UNPACK_SUCCESS);
        snap->end_count = s_get(&result.data, "count")->via.i64;
        msgpack_object *id = s_get(&result.data, "broker_id");
        snprintf(snap->broker_id, sizeof(snap->broker_id), "%.*s", (int)id->via.str.size,
                 id->via.str.ptr);
        msgpack_object *pubs = s_get(&result.data, "publishers");
        snap->publishers = (int)pubs->via.map.size;
        char text[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(instance, text);
        msgpack_object *seq = s_get(pubs, text);
        snap->publisher_seq = seq ? seq->via.u64 : 0;
        msgpack_unpacked_destroy(&result);
        zframe_destroy(&body);
        zmsg_destroy(&msg);
        return;
    }
}

//  Returns nothing; the snapshot's ITEM messages are destroyed.
static void s_snapshot_free(s_snapshot_t *snap)
{
    for (int i = 0; i < snap->count; i++)
        zmsg_destroy(&snap->items[i]);
}

//  Returns nothing; runs the broker's loop a little, so that what was sent
//  is taken, then takes a snapshot of everything into *snap.
static void s_snapshot_settled(s_snapshot_t *snap)
{
    bh_pump(broker, 20);
    s_snapshot("", snap);
}

// --------------------------------------------------------------------------
//  Forwarding and refusals

Test(broker, forwards_a_valid_notification_byte_for_byte)
{
    zsock_t *sub = s_subscriber("compute_node.");
    hvn_frames_t f = s_note(HVN_EVENT_CREATE, 1, HVN_KIND_NOTIFICATION, 1, 8);
    s_send(&f);
    zmsg_t *msg = s_recv(sub);
    cr_assert_eq(zmsg_size(msg), 3);
    cr_assert(s_frame_eq(zmsg_first(msg), f.topic, f.topic_size));
    cr_assert(s_frame_eq(zmsg_next(msg), f.header, HVN_HEADER_SIZE));
    cr_assert(s_frame_eq(zmsg_next(msg), f.body, f.body_size));
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("received"), 1);
    cr_assert_eq(s_stat("forwarded"), 1);
    cr_assert_eq(s_stat("refused"), 0);
    zsock_destroy(&sub);
}

Test(broker, refuses_what_a_peer_should_not_send_and_goes_on)
{
    zsock_t *sub = s_subscriber("compute_node.");
    static char big[70000];
    static const char *hundred[100];
    static size_t hundred_sizes[100];
    for (int i = 0; i < 100; i++) {
        hundred[i] = "x";
        hundred_sizes[i] = 1;
    }
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 2, HVN_KIND_NOTIFICATION, 1, 8);
    const void *one[] = {f.topic};
    size_t one_sizes[] = {f.topic_size};
    s_send_raw(one, one_sizes, 1);
    s_send_raw((const void *const *)hundred, hundred_sizes, 100);
    const void *empty[] = {"", "", ""};
    size_t empty_sizes[] = {0, 0, 0};
    s_send_raw(empty, empty_sizes, 3);
    const void *garbage[] = {f.topic, f.header, "\xc1\xc1"};
    size_t garbage_sizes[] = {f.topic_size, HVN_HEADER_SIZE, 2};
    s_send_raw(garbage, garbage_sizes, 3);
    const void *huge[] = {f.topic, f.header, big};
    size_t huge_sizes[] = {f.topic_size, HVN_HEADER_SIZE, sizeof(big)};
    s_send_raw(huge, huge_sizes, 3);
    s_send(&f); //  And then a good one

    zmsg_t *msg = s_recv(sub);
    cr_assert(s_frame_eq(zmsg_last(msg), f.body, f.body_size), "only the valid one arrives");
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("received"), 6);
    cr_assert_eq(s_stat("refused"), 5);
    cr_assert_eq(s_stat("refused.frames"), 2);
    cr_assert_eq(s_stat("refused.header_size"), 1);
    cr_assert_eq(s_stat("refused.msgpack"), 1);
    cr_assert_eq(s_stat("refused.too_big"), 1);
    cr_assert_eq(s_stat("forwarded"), 1);
    zsock_destroy(&sub);
}

Test(broker, a_publisher_posing_as_a_broker_is_refused)
{
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t f;
    cr_assert_eq(hvn_encoder_broker_heartbeat(encoder, "evil", "x", 1000, &header, &f), 0);
    s_send(&f);
    bh_pump(broker, 20);
    cr_assert_eq(s_stat("refused.not_authorized"), 1);
}

Test(broker, publisher_heartbeats_are_forwarded_and_counted)
{
    zsock_t *sub = s_subscriber("hvn.heartbeat@");
    hvn_header_t header = {.seq = 0};
    s_instance_for("cmp-001", header.instance);
    hvn_envelope_t envelope = {.host = "cmp-001"};
    hvn_frames_t f;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &envelope, 10000, NULL, 0, &header, &f), 0);
    s_send(&f);
    zmsg_t *msg = s_recv(sub);
    cr_assert(s_frame_eq(zmsg_first(msg), f.topic, f.topic_size));
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("heartbeats_in"), 1);
    zsock_destroy(&sub);
}

Test(broker, subscriptions_are_counted_up_and_down)
{
    cr_assert_eq(s_stat("subscriptions"), 0);
    zsock_t *a = s_subscriber("compute_node.");
    zsock_t *b = s_subscriber("compute_node."); //  Same prefix: still counted
    cr_assert_eq(s_stat("subscriptions"), 2);
    zsock_destroy(&a);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (hvn_broker_stats(broker)->subscriptions != 1) {
        cr_assert_lt(zclock_mono(), deadline, "unsubscription never counted");
        hvn_broker_poll(broker, 2);
    }
    zsock_destroy(&b);
}

// --------------------------------------------------------------------------
//  Cache, sync and snapshot

Test(broker, snapshot_returns_the_cached_frames_exactly_and_end_counts_them)
{
    hvn_frames_t f = s_note(HVN_EVENT_CREATE, 1, HVN_KIND_NOTIFICATION, 1, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_CREATE, 2, HVN_KIND_NOTIFICATION, 2, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 3, 16);
    s_send(&f);
    uint8_t topic[HVN_TOPIC_MAX], header[HVN_HEADER_SIZE], body[2048];
    memcpy(topic, f.topic, f.topic_size);
    memcpy(header, f.header, HVN_HEADER_SIZE);
    cr_assert_lt(f.body_size, sizeof(body));
    memcpy(body, f.body, f.body_size);
    size_t topic_size = f.topic_size, body_size = f.body_size;

    s_snapshot_t snap;
    s_snapshot_settled(&snap);
    cr_assert_eq(snap.count, 2);
    cr_assert_eq(snap.end_count, 2);
    cr_assert_str_eq(snap.broker_id, hvn_broker_id(broker));
    cr_assert_eq(snap.publisher_seq, 3);
    s_snapshot_free(&snap);

    s_snapshot("compute_node.update", &snap);
    cr_assert_eq(snap.count, 1);
    cr_assert_eq(snap.end_count, 1);
    zmsg_t *item = snap.items[0];
    cr_assert(s_frame_eq(zmsg_first(item), topic, topic_size));
    cr_assert(s_frame_eq(zmsg_next(item), header, HVN_HEADER_SIZE));
    cr_assert(s_frame_eq(zmsg_next(item), body, body_size));
    s_snapshot_free(&snap);
    cr_assert_eq(s_stat("snapshots"), 2);
    cr_assert_eq(s_stat("cache_nodes"), 2);
    cr_assert_gt(s_stat("cache_bytes"), 2 * (int64_t)body_size);
}

Test(broker, a_delete_removes_the_node_from_the_cache)
{
    hvn_frames_t f = s_note(HVN_EVENT_CREATE, 1, HVN_KIND_NOTIFICATION, 1, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_DELETE, 1, HVN_KIND_NOTIFICATION, 2, 8);
    s_send(&f);
    s_snapshot_t snap;
    s_snapshot_settled(&snap);
    cr_assert_eq(snap.count, 0);
    cr_assert_eq(snap.publisher_seq, 2);
    s_snapshot_free(&snap);
    cr_assert_eq(s_stat("cache_nodes"), 0);
}

Test(broker, a_sync_refreshes_the_cache_and_is_not_forwarded)
{
    zsock_t *sub = s_subscriber("compute_node.");
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 5, HVN_KIND_SYNC, 41, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 6, HVN_KIND_NOTIFICATION, 42, 8);
    s_send(&f);
    zmsg_t *msg = s_recv(sub);
    cr_assert(s_frame_eq(zmsg_first(msg), f.topic, f.topic_size), "the sync came through");
    zmsg_destroy(&msg);
    s_snapshot_t snap;
    s_snapshot("", &snap);
    cr_assert_eq(snap.count, 2);
    s_snapshot_free(&snap);
    cr_assert_eq(s_stat("syncs"), 1);
    cr_assert_eq(s_stat("forwarded"), 1);
    zsock_destroy(&sub);
}

Test(broker, an_older_sync_does_not_overwrite_a_newer_update)
{
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 7, HVN_KIND_NOTIFICATION, 10, 32);
    s_send(&f);
    uint8_t body[2048];
    size_t body_size = f.body_size;
    memcpy(body, f.body, body_size);
    f = s_note(HVN_EVENT_UPDATE, 7, HVN_KIND_SYNC, 9, 8);
    s_send(&f);
    s_snapshot_t snap;
    s_snapshot_settled(&snap);
    cr_assert_eq(snap.count, 1);
    cr_assert(s_frame_eq(zmsg_last(snap.items[0]), body, body_size));
    cr_assert_eq(snap.publisher_seq, 10);
    s_snapshot_free(&snap);
    cr_assert_eq(s_stat("syncs_stale"), 1);
}

//  Returns the frames of an update of node n (host cmp-00n) whose header
//  carries instance `id` and `seq`, vcpus `vcpus`; valid until the next
//  encode. For messages a hostile host makes up.
static hvn_frames_t s_note_with(int n, const uint8_t id[16], uint64_t seq, int vcpus)
{
    return s_note_from(HVN_EVENT_UPDATE, n, HVN_KIND_NOTIFICATION, id, seq, vcpus);
}

//  Returns the seq in the header of a snapshot's only item of node n.
static uint64_t s_cached_seq(int n)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "compute_node.update@cmp-%03d", n);
    s_snapshot_t snap;
    s_snapshot(prefix, &snap);
    cr_assert_eq(snap.count, 1);
    zmsg_first(snap.items[0]);
    zframe_t *header = zmsg_next(snap.items[0]);
    hvn_header_t decoded;
    cr_assert_eq(hvn_header_unpack(zframe_data(header), zframe_size(header), &decoded), HVN_OK);
    s_snapshot_free(&snap);
    return decoded.seq;
}

Test(broker, an_instance_id_belongs_to_the_host_that_used_it_first)
{
    zsock_t *sub = s_subscriber("compute_node.");
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 1, 8); //  cmp-001's
    s_send(&f);
    zmsg_t *msg = s_recv(sub);
    zmsg_destroy(&msg);
    //  cmp-002 sends about its own node under cmp-001's instance, with the
    //  highest seq: were it forwarded, every replica would drop cmp-001's
    //  next updates as stale
    f = s_note_with(2, instance, UINT64_MAX, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 2, 16);
    s_send(&f);
    msg = s_recv(sub);
    cr_assert(s_frame_eq(zmsg_last(msg), f.body, f.body_size), "the forgery was not forwarded");
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("refused.not_authorized"), 1);
    s_snapshot_t snap;
    s_snapshot("", &snap);
    cr_assert_eq(snap.count, 1, "cmp-002's node is not cached either");
    cr_assert_eq(snap.publisher_seq, 2, "END carries cmp-001's real last seq");
    s_snapshot_free(&snap);
    zsock_destroy(&sub);
}

Test(broker, a_seq_that_jumps_absurdly_far_is_refused)
{
    zsock_t *sub = s_subscriber("compute_node.");
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 1, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, UINT64_MAX, 8);
    s_send(&f);
    uint8_t fresh[16]; //  A new instance starting at an absurd seq
    hvn_uuid4_raw(fresh);
    f = s_note_with(2, fresh, UINT64_C(1) << 62, 8);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 1000000, 4); //  A plain gap
    s_send(&f);
    for (int i = 0; i < 2; i++) {
        zmsg_t *msg = s_recv(sub);
        zmsg_destroy(&msg);
    }
    cr_assert_eq(s_stat("refused.bad_value"), 2);
    cr_assert_eq(s_stat("forwarded"), 2);
    cr_assert_eq(s_cached_seq(1), 1000000);
    zsock_destroy(&sub);
}

Test(broker, a_replayed_older_notification_changes_neither_cache_nor_subscribers)
{
    zsock_t *sub = s_subscriber("compute_node.");
    hvn_frames_t f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 2, 1);
    uint8_t topic[HVN_TOPIC_MAX], header[HVN_HEADER_SIZE], body[2048];
    size_t topic_size = f.topic_size, body_size = f.body_size;
    memcpy(topic, f.topic, topic_size);
    memcpy(header, f.header, HVN_HEADER_SIZE);
    memcpy(body, f.body, body_size);
    s_send(&f);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 3, 2);
    s_send(&f);
    const void *replay[] = {topic, header, body}; //  Seq 2 (vcpus 1) again
    size_t replay_sizes[] = {topic_size, HVN_HEADER_SIZE, body_size};
    s_send_raw(replay, replay_sizes, 3);
    f = s_note(HVN_EVENT_UPDATE, 1, HVN_KIND_NOTIFICATION, 4, 2);
    s_send(&f);
    for (uint64_t seq = 2; seq <= 4; seq++) {
        zmsg_t *msg = s_recv(sub);
        zmsg_first(msg);
        zframe_t *h = zmsg_next(msg);
        hvn_header_t decoded;
        cr_assert_eq(hvn_header_unpack(zframe_data(h), zframe_size(h), &decoded), HVN_OK);
        cr_assert_eq(decoded.seq, seq, "the replay was forwarded");
        zmsg_destroy(&msg);
    }
    cr_assert_eq(s_stat("refused.stale"), 1);
    cr_assert_eq(s_cached_seq(1), 4);
    zsock_destroy(&sub);
}

// --------------------------------------------------------------------------
//  Publisher heartbeats: pruning, size

//  Returns the frames of an update of node n on host `host` from the test
//  publisher with `seq`; valid until the next encode.
static hvn_frames_t s_note_on(const char *host, int n, uint64_t seq)
{
    hvn_node_t node;
    bh_node(&node, n);
    hvn_envelope_t envelope = {.host = host};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    s_instance_for(host, header.instance);
    hvn_frames_t frames;
    cr_assert_eq(
        hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &envelope, &node, &header, &frames), 0);
    return frames;
}

//  Returns nothing; the test publisher's heartbeat for host, at seq,
//  listing the nodes numbered first .. first + count - 1, was sent.
static void s_heartbeat(const char *host, uint64_t seq, int first, int count)
{
    char(*text)[HVN_UUID_STR_LEN + 1] = calloc((size_t)count + 1, sizeof(*text));
    const char **uuids = calloc((size_t)count + 1, sizeof(char *));
    cr_assert(text && uuids);
    for (int i = 0; i < count; i++) {
        snprintf(text[i], sizeof(text[i]), "00000000-0000-4000-8000-%012d", first + i);
        uuids[i] = text[i];
    }
    hvn_header_t header = {.seq = seq};
    s_instance_for(host, header.instance);
    hvn_envelope_t envelope = {.host = host};
    hvn_frames_t f;
    cr_assert_eq(
        hvn_encoder_heartbeat(encoder, &envelope, 10000, uuids, (size_t)count, &header, &f), 0);
    s_send(&f);
    free(text);
    free(uuids);
}

Test(broker, a_heartbeat_prunes_the_cached_nodes_its_publisher_no_longer_has)
{
    zsock_t *sub = s_subscriber("hvn.heartbeat@");
    for (int n = 1; n <= 3; n++) {
        hvn_frames_t f = s_note_on("cmp-a", n, (uint64_t)n);
        s_send(&f);
    }
    hvn_frames_t f = s_note_on("cmp-b", 4, 4);
    s_send(&f);
    s_heartbeat("cmp-a", 4, 2, 1); //  Lists node 2 only
    zmsg_t *msg = s_recv(sub);     //  Forwarded after the prune
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("pruned"), 2);
    s_snapshot_t snap;
    s_snapshot("", &snap);
    cr_assert_eq(snap.count, 2, "node 2 of cmp-a and node 4 of cmp-b");
    s_snapshot_free(&snap);
    zsock_destroy(&sub);
}

Test(broker, a_heartbeat_spares_what_its_publisher_sent_after_it)
{
    hvn_frames_t f = s_note_on("cmp-a", 1, 7);
    s_send(&f);
    s_heartbeat("cmp-a", 6, 1, 0); //  Made before seq 7 went out
    bh_pump(broker, 20);
    cr_assert_eq(s_stat("heartbeats_in"), 1);
    cr_assert_eq(s_stat("pruned"), 0);
    cr_assert_eq(s_stat("cache_nodes"), 1);
}

Test(broker, a_late_heartbeat_of_a_gone_instance_keeps_its_successors_nodes)
{
    uint8_t old[16], young[16];
    memcpy(old, instance, 16);
    hvn_frames_t f = s_note_on("cmp-a", 1, 1);
    s_send(&f);
    hvn_uuid4_raw(young); //  The publisher restarted without its state
    memcpy(instance, young, 16);
    f = s_note_on("cmp-a", 2, 1);
    s_send(&f);
    memcpy(instance, old, 16);
    s_heartbeat("cmp-a", 1, 1, 1); //  The old instance's last word, late
    bh_pump(broker, 20);
    cr_assert_eq(s_stat("pruned"), 0);
    memcpy(instance, young, 16);
    s_heartbeat("cmp-a", 1, 2, 1); //  The new one lists node 2 only
    bh_pump(broker, 20);
    cr_assert_eq(s_stat("pruned"), 1);
    s_snapshot_t snap;
    s_snapshot("", &snap);
    cr_assert_eq(snap.count, 1);
    s_snapshot_free(&snap);
}

Test(broker, a_heartbeat_of_five_thousand_nodes_passes_and_a_notification_that_size_does_not)
{
    zsock_t *sub = s_subscriber("hvn.heartbeat@");
    for (int n = 1; n <= 5000; n++) {
        hvn_frames_t f = s_note_on("cmp-big", n, (uint64_t)n);
        s_send(&f);
    }
    s_heartbeat("cmp-big", 5000, 1, 5000);
    zmsg_t *msg = s_recv(sub);
    cr_assert_gt(zframe_size(zmsg_last(msg)), HVN_MAX_MSG_SIZE,
                 "bigger than a notification may be");
    zmsg_destroy(&msg);
    cr_assert_eq(s_stat("heartbeats_in"), 1);
    cr_assert_eq(s_stat("refused"), 0);
    cr_assert_eq(s_stat("pruned"), 0);
    cr_assert_eq(s_stat("cache_nodes"), 5000);

    //  A notification body of that size is still refused
    static uint8_t body[200000];
    hvn_frames_t f = s_note_on("cmp-big", 1, 5001);
    const void *data[] = {f.topic, f.header, body};
    size_t sizes[] = {f.topic_size, HVN_HEADER_SIZE, sizeof(body)};
    s_send_raw(data, sizes, 3);
    //  And so is a heartbeat listing more nodes than the default limit
    s_heartbeat("cmp-big", 5000, 1, HVN_HEARTBEAT_NODES_MAX + 1);
    bh_pump(broker, 50);
    cr_assert_eq(s_stat("refused.too_big"), 2);
    cr_assert_eq(s_stat("heartbeats_in"), 1);
    zsock_destroy(&sub);
}

//  Returns when the broker caches `nodes` nodes, sent half for each of two
//  hosts (one host may not hold more than max_publisher_nodes).
static void s_fill_two_hosts(int nodes)
{
    for (int n = 1; n <= nodes; n++) {
        hvn_frames_t f = s_note_on(n <= nodes / 2 ? "cmp-many" : "cmp-many-2", n, (uint64_t)n);
        s_send(&f);
    }
    int64_t deadline = zclock_mono() + 10 * S_WAIT_MS;
    while (hvn_broker_cache_nodes(broker) < (size_t)nodes) {
        cr_assert_lt(zclock_mono(), deadline, "cache never filled");
        hvn_broker_poll(broker, 2);
    }
}

Test(broker, a_big_snapshot_arrives_whole_while_forwarding_goes_on)
{
    const int nodes = 20000;
    s_fill_two_hosts(nodes);
    zsock_t *sub = s_subscriber("compute_node.");
    zstr_sendm(dealer, "SNAPSHOT");
    zstr_send(dealer, "");
    hvn_broker_poll(broker, 50); //  The request is taken, a first slice sent
    hvn_frames_t f = s_note_on("cmp-many", 1, (uint64_t)nodes + 1);
    s_send(&f);
    zmsg_t *live = s_recv(sub);
    zmsg_destroy(&live);
    cr_assert_eq(hvn_broker_stats(broker)->snapshots, 0,
                 "the live update went out before the snapshot ended");
    int items = 0;
    int64_t end_count = -1;
    while (end_count < 0) {
        zmsg_t *msg = s_recv(dealer);
        char *word = zmsg_popstr(msg);
        if (streq(word, "ITEM"))
            items++;
        else {
            cr_assert_str_eq(word, "END");
            zframe_t *body = zmsg_pop(msg);
            msgpack_unpacked result;
            cr_assert_eq(fx_unpack_frame(body, &result, NULL), MSGPACK_UNPACK_SUCCESS);
            end_count = s_get(&result.data, "count")->via.i64;
            char text[HVN_UUID_STR_LEN + 1];
            uuid_unparse_lower(instance, text);
            cr_assert_eq(s_get(s_get(&result.data, "publishers"), text)->via.u64,
                         (uint64_t)nodes / 2, "seqs as at the request (cmp-many's last)");
            msgpack_unpacked_destroy(&result);
            zframe_destroy(&body);
        }
        zstr_free(&word);
        zmsg_destroy(&msg);
    }
    cr_assert_eq(items, nodes);
    cr_assert_eq(end_count, nodes);
    cr_assert_eq(s_stat("snapshots"), 1);
    cr_assert_eq(s_stat("snapshots_failed"), 0);
    zsock_destroy(&sub);
}

Test(broker, a_client_gone_mid_snapshot_is_counted_and_the_broker_goes_on)
{
    const int nodes = 20000; //  More than the service queue holds for one client
    s_fill_two_hosts(nodes);
    int64_t deadline = zclock_mono() + 10 * S_WAIT_MS;
    zsock_t *client = zsock_new(ZMQ_DEALER);
    cr_assert_eq(zsock_connect(client, "%s", endpoints[2]), 0);
    zstr_sendm(client, "SNAPSHOT");
    zstr_send(client, "");
    while (hvn_broker_stats(broker)->snapshots_failed == 0 &&
           hvn_broker_stats(broker)->snapshots == 0) {
        cr_assert_lt(zclock_mono(), deadline, "the snapshot never started");
        hvn_broker_poll(broker, 2);
        if (client && zsock_events(client) & ZMQ_POLLIN)
            zsock_destroy(&client); //  Gone after the first items arrived
    }
    cr_assert_null(client, "the client left before the end");
    cr_assert_eq(hvn_broker_stats(broker)->snapshots_failed, 1);
    cr_assert_eq(hvn_broker_stats(broker)->snapshots, 0);
    s_snapshot_t snap;
    s_snapshot("compute_node.create", &snap); //  Others are served (no creates here)
    cr_assert_eq(snap.end_count, 0);
    cr_assert_eq(hvn_broker_stats(broker)->snapshots, 1);
    s_snapshot_free(&snap);
}

Test(broker, one_subscriber_gets_at_most_a_quarter_of_the_snapshot_slots_and_memory)
{
    //  More than a client's queue holds (10 001 over inproc, with the
    //  client's own queue of 1): none can end
    s_fill_two_hosts(20000);
    enum { S_CLIENTS = 20 };
    zsock_t *clients[S_CLIENTS];
    for (int i = 0; i < S_CLIENTS; i++) {
        clients[i] = zsock_new(ZMQ_DEALER);
        zsock_set_rcvhwm(clients[i], 1);
        cr_assert_eq(zsock_connect(clients[i], "%s", endpoints[2]), 0);
        zstr_sendm(clients[i], "SNAPSHOT");
        zstr_send(clients[i], "");
        //  Within --max-snapshot-rate (10 a second, bursts of 10)
        bh_pump(broker, i < 9 ? 5 : 110);
    }
    bh_pump(broker, 50);
    int refused = 0;
    for (int i = 0; i < S_CLIENTS; i++) {
        if (!(zsock_events(clients[i]) & ZMQ_POLLIN))
            continue;
        zmsg_t *reply = zmsg_recv(clients[i]);
        char *word = zmsg_popstr(reply);
        if (streq(word, "ERROR")) {
            char *why = zmsg_popstr(reply);
            cr_expect(strstr(why, "too many snapshots in progress for this subscriber"), "%s", why);
            refused++;
            zstr_free(&why);
        }
        zstr_free(&word);
        zmsg_destroy(&reply);
    }
    //  Over inproc every client is one peer (no address)
    cr_expect_geq(refused, S_CLIENTS - 16);
    cr_expect_eq(s_stat("snapshots_active"), S_CLIENTS - refused);
    cr_expect_eq(s_stat("limited_snapshots"), refused);
    cr_expect_leq(s_stat("snapshot_bytes"), s_stat("snapshot_max_bytes") / 4);
    cr_expect_gt(s_stat("snapshot_bytes"), 0);
    for (int i = 0; i < S_CLIENTS; i++)
        zsock_destroy(&clients[i]);
}

// --------------------------------------------------------------------------
//  Service requests, heartbeat, start-up

Test(broker, stats_names_every_counter_and_refusal_reason)
{
    const char *keys[] = {"received",      "forwarded",   "syncs",       "heartbeats_in",
                          "refused",       "cache_nodes", "cache_bytes", "snapshots",
                          "subscriptions", "publishers",  "uptime_ms"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_geq(s_stat(keys[i]), 0);
    for (int r = HVN_OK + 1; r < HVN_R_COUNT; r++) {
        char key[64];
        snprintf(key, sizeof(key), "refused.%s", hvn_reason_str((hvn_reason_t)r));
        cr_assert_eq(s_stat(key), 0);
    }
}

Test(broker, malformed_or_unknown_requests_get_an_error)
{
    zstr_send(dealer, "HELLO");
    zmsg_t *reply = s_recv(dealer);
    char *word = zmsg_popstr(reply);
    cr_assert_str_eq(word, "ERROR");
    zstr_free(&word);
    zmsg_destroy(&reply);

    zstr_send(dealer, "SNAPSHOT"); //  Without its prefix frame
    reply = s_recv(dealer);
    word = zmsg_popstr(reply);
    cr_assert_str_eq(word, "ERROR");
    zstr_free(&word);
    zmsg_destroy(&reply);

    zstr_sendx(dealer, "STATS", "extra", NULL);
    reply = s_recv(dealer);
    word = zmsg_popstr(reply);
    cr_assert_str_eq(word, "ERROR");
    zstr_free(&word);
    zmsg_destroy(&reply);

    cr_assert_eq(s_stat("service_refused"), 3);
}

Test(broker, heartbeats_on_the_backend_with_its_id)
{
    //  The suite's broker heartbeats every 10 s; this one every 20 ms
    hvn_broker_config_t config;
    char fast_endpoints[3][64];
    bh_config(&config, fast_endpoints, "hb-test");
    config.heartbeat_ms = 20;
    hvn_broker_t *fast = hvn_broker_new(&config, NULL, 0);
    cr_assert_not_null(fast);
    zsock_t *sub = zsock_new_sub(fast_endpoints[1], "hvn.broker@");
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (!(zsock_events(sub) & ZMQ_POLLIN)) {
        cr_assert_lt(zclock_mono(), deadline, "no heartbeat");
        hvn_broker_poll(fast, 5);
    }
    zmsg_t *msg = zmsg_recv(sub);
    zframe_t *topic = zmsg_first(msg), *header = zmsg_next(msg), *body = zmsg_next(msg);
    hvn_decoder_t *decoder = hvn_decoder_new();
    hvn_msg_t decoded;
    cr_assert_eq(hvn_decoder_decode(decoder, zframe_data(topic), zframe_size(topic),
                                    zframe_data(header), zframe_size(header), zframe_data(body),
                                    zframe_size(body), &decoded),
                 HVN_OK);
    cr_assert_eq(decoded.event, HVN_EVENT_BROKER);
    cr_assert_str_eq(decoded.topic, "hvn.broker@hb-test");
    cr_assert_eq(decoded.header.kind, HVN_KIND_HEARTBEAT);
    cr_assert_eq(decoded.header.seq, 0);
    cr_assert_str_eq(decoded.publisher_id, hvn_broker_id(fast));
    cr_assert_eq(decoded.interval_ms, 20);
    char text[HVN_UUID_STR_LEN + 1];
    uuid_unparse_lower(decoded.header.instance, text);
    cr_assert_str_eq(text, hvn_broker_id(fast));
    hvn_decoder_destroy(&decoder);
    zmsg_destroy(&msg);
    zsock_destroy(&sub);
    hvn_broker_destroy(&fast);
}

Test(broker, each_start_has_a_fresh_id_and_a_taken_endpoint_is_named)
{
    hvn_broker_config_t config;
    char other_endpoints[3][64];
    bh_config(&config, other_endpoints, "other");
    config.backend = endpoints[1]; //  Taken by the suite's broker
    char error[256] = "";
    hvn_broker_t *other = hvn_broker_new(&config, error, sizeof(error));
    cr_assert_null(other);
    cr_assert(strstr(error, endpoints[1]), "error does not name the endpoint: %s", error);
    cr_assert(strstr(error, "backend"), "error does not name the socket: %s", error);

    //  A closed socket's inproc name is released asynchronously: new names
    bh_config(&config, other_endpoints, "other");
    other = hvn_broker_new(&config, error, sizeof(error));
    cr_assert_not_null(other, "%s", error);
    cr_assert_str_neq(hvn_broker_id(other), hvn_broker_id(broker));
    hvn_broker_destroy(&other);
}

Test(broker, a_bad_name_is_refused)
{
    cr_assert_eq(hvn_broker_name_valid("ok-name"), 1);
    cr_assert_eq(hvn_broker_name_valid("a@b"), 0);
    cr_assert_eq(hvn_broker_name_valid(""), 0);
    cr_assert_eq(hvn_broker_name_valid(NULL), 0);
}
