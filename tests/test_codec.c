/*  test_codec.c — the HVN/1 codec: round trips, and every refusal reason
    produced by a crafted message.

    Bad bodies are made by encoding a good message, unpacking it into a
    msgpack_object tree, changing one thing (a key removed, a value replaced,
    an unknown key added) and packing it again with msgpack-c's packer.
    Paths in this file use '/' because payload keys contain dots.
*/
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "fixtures.h"
#include "hvn_proto.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID2 "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_MSGID "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
#define S_TS "2024-05-06 07:08:09.123456"
#define S_HOST "cmp-017"

static hvn_encoder_t *encoder;
static hvn_decoder_t *decoder;

static void s_setup(void)
{
    encoder = hvn_encoder_new();
    decoder = hvn_decoder_new();
    cr_assert(encoder && decoder);
}

static void s_teardown(void)
{
    hvn_encoder_destroy(&encoder);
    hvn_decoder_destroy(&decoder);
}

TestSuite(codec, .init = s_setup, .fini = s_teardown);

static const hvn_envelope_t s_env = {NULL, S_HOST, S_TS, S_MSGID};

//  Encodes a notification of node; returns the frames.
static hvn_frames_t s_encode(hvn_event_t event, const hvn_node_t *node, uint8_t kind)
{
    hvn_header_t header = {.kind = kind, .seq = 42};
    memset(header.instance, 0xAB, 16);
    hvn_frames_t frames;
    cr_assert_eq(hvn_encoder_notification(encoder, event, &s_env, node, &header, &frames), 0);
    return frames;
}

static hvn_reason_t s_decode_frames(const hvn_frames_t *fr, hvn_msg_t *msg)
{
    return hvn_decoder_decode(decoder, fr->topic, fr->topic_size, fr->header, HVN_HEADER_SIZE,
                              fr->body, fr->body_size, msg);
}

// --------------------------------------------------------------------------
//  Body surgery

typedef struct {
    msgpack_zone zone;    //  Holds the tree
    msgpack_object root;  //  The body as objects
    msgpack_sbuffer sbuf; //  Repacked body
    hvn_frames_t frames;  //  Frames of the original message
} body_t;

static body_t *s_body_of(hvn_frames_t frames)
{
    body_t *body = calloc(1, sizeof(*body));
    msgpack_zone_init(&body->zone, 4096);
    msgpack_sbuffer_init(&body->sbuf);
    //  The tree points into the body bytes: keep a copy that outlives them
    char *copy = msgpack_zone_malloc(&body->zone, frames.body_size);
    memcpy(copy, frames.body, frames.body_size);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(copy, frames.body_size, &off, &body->zone, &body->root),
                 MSGPACK_UNPACK_SUCCESS);
    body->frames = frames;
    return body;
}

static body_t *s_body(hvn_event_t event)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    return s_body_of(s_encode(event, &node, HVN_KIND_NOTIFICATION));
}

static void s_body_free(body_t *body)
{
    msgpack_zone_destroy(&body->zone);
    msgpack_sbuffer_destroy(&body->sbuf);
    free(body);
}

//  Returns the map entry at '/'-separated path, or NULL.
static msgpack_object_kv *s_find(body_t *body, const char *path)
{
    msgpack_object *map = &body->root;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    msgpack_object_kv *kv = NULL;
    for (char *save, *key = strtok_r(buf, "/", &save); key; key = strtok_r(NULL, "/", &save)) {
        if (!map || map->type != MSGPACK_OBJECT_MAP)
            return NULL;
        kv = NULL;
        for (uint32_t i = 0; i < map->via.map.size; i++) {
            msgpack_object *k = &map->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
                memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
                kv = &map->via.map.ptr[i];
        }
        if (!kv)
            return NULL;
        map = &kv->val;
    }
    return kv;
}

static msgpack_object *s_map_at(body_t *body, const char *path)
{
    if (!path || !*path)
        return &body->root;
    msgpack_object_kv *kv = s_find(body, path);
    cr_assert(kv, "no %s", path);
    return &kv->val;
}

static void s_set(body_t *body, const char *path, msgpack_object value)
{
    msgpack_object_kv *kv = s_find(body, path);
    cr_assert(kv, "no %s", path);
    kv->val = value;
}

static void s_remove(body_t *body, const char *path)
{
    msgpack_object_kv *kv = s_find(body, path);
    cr_assert(kv, "no %s", path);
    char parent[256];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    msgpack_object *map = slash ? (*slash = '\0', s_map_at(body, parent)) : &body->root;
    size_t index = (size_t)(kv - map->via.map.ptr);
    memmove(kv, kv + 1, (map->via.map.size - index - 1) * sizeof(*kv));
    map->via.map.size--;
}

static void s_add(body_t *body, const char *map_path, msgpack_object key, msgpack_object value)
{
    msgpack_object *map = s_map_at(body, map_path);
    uint32_t n = map->via.map.size;
    msgpack_object_kv *grown = msgpack_zone_malloc(&body->zone, (n + 1) * sizeof(*grown));
    memcpy(grown, map->via.map.ptr, n * sizeof(*grown));
    grown[n].key = key;
    grown[n].val = value;
    map->via.map.ptr = grown;
    map->via.map.size = n + 1;
}

static msgpack_object s_str(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object s_uint(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

static msgpack_object s_float(double v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};
    o.via.f64 = v;
    return o;
}

static msgpack_object s_nil(void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    return o;
}

//  Repacks the tree and decodes it with the original topic and header.
static hvn_reason_t s_decode_body(body_t *body, hvn_msg_t *msg)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(&body->sbuf);
    msgpack_packer_init(&pk, &body->sbuf, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_object(&pk, body->root), 0);
    return hvn_decoder_decode(decoder, body->frames.topic, body->frames.topic_size,
                              body->frames.header, HVN_HEADER_SIZE, body->sbuf.data,
                              body->sbuf.size, msg);
}

//  Decodes raw body bytes with a valid update topic and header.
static hvn_reason_t s_decode_raw(const void *data, size_t size)
{
    hvn_header_t header = {.version = 1, .kind = HVN_KIND_NOTIFICATION, .seq = 1};
    uint8_t wire[HVN_HEADER_SIZE];
    hvn_header_pack(&header, wire);
    const char *topic = HVN_EVENT_UPDATE_NAME "@" S_HOST;
    hvn_msg_t msg;
    return hvn_decoder_decode(decoder, topic, strlen(topic), wire, sizeof(wire), data, size, &msg);
}

//  Decodes body after replacing the value at path; returns the reason.
static hvn_reason_t s_with_value(hvn_event_t event, const char *path, msgpack_object value)
{
    body_t *body = s_body(event);
    s_set(body, path, value);
    hvn_msg_t msg;
    hvn_reason_t rc = s_decode_body(body, &msg);
    s_body_free(body);
    return rc;
}

static hvn_reason_t s_without(hvn_event_t event, const char *path)
{
    body_t *body = s_body(event);
    s_remove(body, path);
    hvn_msg_t msg;
    hvn_reason_t rc = s_decode_body(body, &msg);
    s_body_free(body);
    return rc;
}

#define S_DATA "payload/nova_object.data/"

// --------------------------------------------------------------------------
//  Round trips

Test(codec, round_trips_every_field)
{
    hvn_node_t node, back;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    cr_assert_str_eq(fr.topic, "compute_node.update@cmp-017");
    cr_assert_eq(fr.topic_size, strlen(fr.topic));
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    back = msg.node;
    for (int f = 0; f < HVN_F_COUNT; f++)
        cr_assert(hvn_node_field_equal(&node, &back, f), "field %s", hvn_schema_fields[f].name);
    cr_assert(hvn_node_equal(&node, &back));
    cr_assert_eq(msg.event, HVN_EVENT_UPDATE);
    cr_assert_str_eq(msg.host, S_HOST);
    cr_assert_str_eq(msg.topic, "compute_node.update@cmp-017");
    cr_assert_str_eq(msg.timestamp, S_TS);
    cr_assert_str_eq(msg.message_id, S_MSGID);
    cr_assert_str_eq(msg.publisher_id, "nova-compute:cmp-017");
    cr_assert_eq(msg.payload_major, 1);
    cr_assert_eq(msg.payload_minor, 0);
    cr_assert_eq(msg.header.seq, 42);
    cr_assert_eq(msg.header.kind, HVN_KIND_NOTIFICATION);
    cr_assert_eq(msg.header.instance[15], 0xAB);
}

Test(codec, round_trips_nulls_of_every_nullable_field)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].nullable)
            hvn_node_set_null(&node, f);
    hvn_frames_t fr = s_encode(HVN_EVENT_CREATE, &node, HVN_KIND_NOTIFICATION);
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    for (int f = 0; f < HVN_F_COUNT; f++)
        cr_assert_eq(hvn_node_is_null(&msg.node, f), hvn_schema_fields[f].nullable, "field %s",
                     hvn_schema_fields[f].name);
    cr_assert(hvn_node_equal(&node, &msg.node));
}

Test(codec, round_trips_max_length_strings_and_extreme_ints)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    char longest[HVN_STR_MAX + 1];
    memset(longest, 'x', HVN_STR_MAX);
    longest[HVN_STR_MAX] = '\0';
    for (int f = 0; f < HVN_F_COUNT; f++) {
        if (hvn_schema_fields[f].type == HVN_TYPE_STR)
            cr_assert_eq(hvn_node_set_str(&node, f, longest), 0);
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(&node, f, f % 2 ? INT64_MAX : INT64_MIN);
    }
    const char *ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    cr_assert_eq(strlen(ip), HVN_IP_STR_MAX);
    cr_assert_eq(hvn_node_set_str(&node, HVN_F_HOST_IP, ip), 0);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_SYNC);
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert(hvn_node_equal(&node, &msg.node));
    cr_assert_eq(msg.header.kind, HVN_KIND_SYNC);
}

Test(codec, delete_carries_id_and_uuid_only)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_DELETE, &node, HVN_KIND_NOTIFICATION);
    body_t *body = s_body_of(fr);
    msgpack_object *data = s_map_at(body, "payload/nova_object.data");
    cr_assert_eq(data->via.map.size, 2);
    cr_assert(s_find(body, S_DATA "id") && s_find(body, S_DATA "uuid"));
    msgpack_object *name = s_map_at(body, "payload/nova_object.name");
    cr_assert_eq(name->via.str.size, strlen(HVN_DELETE_PAYLOAD_NAME));
    hvn_msg_t msg;
    cr_assert_eq(s_decode_body(body, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_eq(msg.event, HVN_EVENT_DELETE);
    cr_assert_eq(msg.node.id, node.id);
    cr_assert_str_eq(msg.node.uuid, S_UUID);
    s_body_free(body);
}

//  The bodies of a create and a delete, byte for byte as the encoder has
//  always written them: msgpack-c's packer, keys in the protocol's order,
//  every integer in its shortest form.
static const char *const s_create_hex =
    "86a87072696f72697479a4494e464faa6576656e745f74797065b3636f6d7075"
    "74655f6e6f64652e637265617465a974696d657374616d70ba323032342d3035"
    "2d30362030373a30383a30392e313233343536ac7075626c69736865725f6964"
    "b46e6f76612d636f6d707574653a636d702d303137aa6d6573736167655f6964"
    "d92461316232633364342d653566362d346137622d386339642d306531663261"
    "336234633564a77061796c6f616484b06e6f76615f6f626a6563742e6e616d65"
    "b2436f6d707574654e6f64655061796c6f6164b56e6f76615f6f626a6563742e"
    "6e616d657370616365a46e6f7661b36e6f76615f6f626a6563742e7665727369"
    "6f6ea3312e30b06e6f76615f6f626a6563742e64617461de0012a26964cd03e8"
    "a475756964d92435663063336135322d386134622d346335352d396430652d32"
    "6631623665376139633031a4686f7374a7636d702d303137a57663707573fba9"
    "6d656d6f72795f6d62cd012ca86c6f63616c5f6762ce00011170aa7663707573"
    "5f75736564cf000000012a05f200ae6d656d6f72795f6d625f75736564cd03ef"
    "ad6c6f63616c5f67625f75736564cd03f0af68797065727669736f725f747970"
    "65a451454d55b268797065727669736f725f76657273696f6ecd03f2b3687970"
    "65727669736f725f686f73746e616d65b3636d702d3031372e6578616d706c65"
    "2e6f7267ab667265655f72616d5f6d62c0ac667265655f6469736b5f6762cd03"
    "f5b063757272656e745f776f726b6c6f6164cd03f6ab72756e6e696e675f766d"
    "73cd03f7b46469736b5f617661696c61626c655f6c65617374cd03f8a7686f73"
    "745f6970aa3139322e302e322e3137";

static const char *const s_delete_hex =
    "86a87072696f72697479a4494e464faa6576656e745f74797065b3636f6d7075"
    "74655f6e6f64652e64656c657465a974696d657374616d70ba323032342d3035"
    "2d30362030373a30383a30392e313233343536ac7075626c69736865725f6964"
    "b46e6f76612d636f6d707574653a636d702d303137aa6d6573736167655f6964"
    "d92461316232633364342d653566362d346137622d386339642d306531663261"
    "336234633564a77061796c6f616484b06e6f76615f6f626a6563742e6e616d65"
    "b8436f6d707574654e6f646544656c6574655061796c6f6164b56e6f76615f6f"
    "626a6563742e6e616d657370616365a46e6f7661b36e6f76615f6f626a656374"
    "2e76657273696f6ea3312e30b06e6f76615f6f626a6563742e6461746182a269"
    "64cd03e8a475756964d92435663063336135322d386134622d346335352d3964"
    "30652d326631623665376139633031";

//  Returns the bytes of hex text in out (at most cap), their count.
static size_t s_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; hex[0] && hex[1] && n < cap; hex += 2)
        sscanf(hex, "%2hhx", &out[n++]);
    return n;
}

Test(codec, encoder_writes_the_pinned_wire_bytes)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    node.vcpus = -5;
    node.memory_mb = 300;
    node.local_gb = 70000;
    node.vcpus_used = 5000000000LL;
    hvn_node_set_null(&node, HVN_F_FREE_RAM_MB);
    const struct {
        hvn_event_t event;
        const char *hex;
    } cases[] = {{HVN_EVENT_CREATE, s_create_hex}, {HVN_EVENT_DELETE, s_delete_hex}};
    for (size_t i = 0; i < 2; i++) {
        const char *hex = cases[i].hex;
        uint8_t want[1024];
        size_t size = s_unhex(hex, want, sizeof(want));
        cr_assert_eq(size * 2, strlen(hex));
        hvn_frames_t fr = s_encode(cases[i].event, &node, HVN_KIND_NOTIFICATION);
        cr_assert_eq(fr.body_size, size, "event %d", cases[i].event);
        cr_assert_arr_eq(fr.body, want, size, "event %d", cases[i].event);
    }
}

//  Every key of a notification's envelope, as s_find and s_without name it
static const char *const s_envelope_keys[] = {"priority",
                                              "event_type",
                                              "timestamp",
                                              "publisher_id",
                                              "message_id",
                                              "payload",
                                              "payload/nova_object.name",
                                              "payload/nova_object.namespace",
                                              "payload/nova_object.version",
                                              "payload/nova_object.data"};

Test(codec, create_carries_all_eighteen_fields_and_the_envelope)
{
    body_t *body = s_body(HVN_EVENT_CREATE);
    cr_assert_eq(body->root.via.map.size, 6);
    for (size_t i = 0; i < sizeof(s_envelope_keys) / sizeof(s_envelope_keys[0]); i++)
        cr_assert(s_find(body, s_envelope_keys[i]), "missing %s", s_envelope_keys[i]);
    cr_assert_eq(s_map_at(body, "payload/nova_object.data")->via.map.size, HVN_F_COUNT);
    msgpack_object *version = s_map_at(body, "payload/nova_object.version");
    cr_assert_eq(version->via.str.size, 3);
    cr_assert(memcmp(version->via.str.ptr, "1.0", 3) == 0);
    s_body_free(body);
}

Test(codec, fresh_timestamp_and_message_id_when_envelope_leaves_them_null)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_envelope_t env = {.service = "svc", .host = S_HOST};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 1};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &env, &node, &header, &fr), 0);
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_str_eq(msg.publisher_id, "svc:cmp-017");
    cr_assert_eq(strlen(msg.message_id), 36);
    cr_assert_eq(strlen(msg.timestamp), 26);
}

Test(codec, node_uuid_holds_the_nodes_bytes_and_is_zero_after_a_heartbeat)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    uuid_t raw;
    cr_assert_eq(uuid_parse(S_UUID, raw), 0);
    hvn_msg_t msg;
    memset(&msg, 0x5A, sizeof(msg));
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_arr_eq(msg.node_uuid, raw, 16);
    memset(msg.node_uuid, 0x5A, sizeof(msg.node_uuid));
    fr = s_encode(HVN_EVENT_DELETE, &node, HVN_KIND_SYNC);
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_arr_eq(msg.node_uuid, raw, 16);
    //  The same message again: a heartbeat leaves no node's bytes behind
    const char *uuids[] = {S_UUID2};
    hvn_header_t header = {.kind = 0, .seq = 9};
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 10000, uuids, 1, &header, &fr), 0);
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    static const uint8_t zero[16] = {0};
    cr_assert_arr_eq(msg.node_uuid, zero, 16);
}

Test(codec, round_trips_publisher_heartbeat)
{
    const char *uuids[] = {S_UUID, S_UUID2};
    hvn_header_t header = {.kind = 0, .seq = 9};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 10000, uuids, 2, &header, &fr), 0);
    cr_assert_str_eq(fr.topic, "hvn.heartbeat@cmp-017");
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_eq(msg.event, HVN_EVENT_HEARTBEAT);
    cr_assert_eq(msg.header.kind, HVN_KIND_HEARTBEAT);
    cr_assert_eq(msg.header.seq, 9);
    cr_assert_eq(msg.interval_ms, 10000);
    cr_assert_eq(msg.node_count, 2);
    char text[37];
    uuid_unparse_lower(msg.nodes[1], text);
    cr_assert_str_eq(text, S_UUID2);
    cr_assert_str_eq(msg.publisher_id, "nova-compute:cmp-017");
}

Test(codec, heartbeat_grows_its_node_array)
{
    enum { N = 1000 };
    static char texts[N][37];
    const char *uuids[N];
    for (int i = 0; i < N; i++) {
        hvn_uuid4_str(texts[i]);
        uuids[i] = texts[i];
    }
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 5, uuids, N, &header, &fr), 0);
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_eq(msg.node_count, N);
    char text[37];
    uuid_unparse_lower(msg.nodes[N - 1], text);
    cr_assert_str_eq(text, texts[N - 1]);
}

Test(codec, round_trips_broker_heartbeat)
{
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_broker_heartbeat(encoder, "b1", "broker-id-7", 250, &header, &fr), 0);
    cr_assert_str_eq(fr.topic, "hvn.broker@b1");
    hvn_msg_t msg;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    cr_assert_eq(msg.event, HVN_EVENT_BROKER);
    cr_assert_str_eq(msg.publisher_id, "broker-id-7");
    cr_assert_eq(msg.interval_ms, 250);
    cr_assert_eq(msg.header.seq, 0);
}

Test(codec, encoder_refuses_invalid_input)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION};
    hvn_frames_t fr;
    hvn_envelope_t env = s_env;
    env.host = "a@b";
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &env, &node, &header, &fr),
                 -1);
    env.host = "";
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &env, &node, &header, &fr),
                 -1);
    env = s_env;
    env.timestamp = "yesterday";
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &env, &node, &header, &fr),
                 -1);
    cr_assert_eq(
        hvn_encoder_notification(encoder, HVN_EVENT_HEARTBEAT, &s_env, &node, &header, &fr), -1);
    header.kind = HVN_KIND_HEARTBEAT;
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &s_env, &node, &header, &fr),
                 -1);
    header.kind = HVN_KIND_NOTIFICATION;
    strcpy(node.uuid, "not-a-uuid");
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &s_env, &node, &header, &fr),
                 -1);
    const char *bad[] = {"nope"};
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 10, bad, 1, &header, &fr), -1);
    cr_assert_eq(hvn_encoder_broker_heartbeat(encoder, "x@y", "id", 10, &header, &fr), -1);
}

Test(codec, header_is_big_endian)
{
    hvn_header_t header = {.version = 1, .kind = 3, .seq = 0x0102030405060708ULL};
    for (int i = 0; i < 16; i++)
        header.instance[i] = (uint8_t)(0xF0 + i);
    uint8_t wire[HVN_HEADER_SIZE];
    hvn_header_pack(&header, wire);
    const uint8_t expect[10] = {1, 3, 1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_arr_eq(wire, expect, 10);
    cr_assert_eq(wire[10], 0xF0);
    cr_assert_eq(wire[25], 0xFF);
    hvn_header_t back;
    cr_assert_eq(hvn_header_unpack(wire, sizeof(wire), &back), HVN_OK);
    cr_assert_eq(back.seq, header.seq);
    cr_assert_arr_eq(back.instance, header.instance, 16);
}

// --------------------------------------------------------------------------
//  Every refusal reason

Test(codec, header_of_wrong_size_version_or_kind_is_refused)
{
    uint8_t wire[HVN_HEADER_SIZE + 1] = {1, 1};
    hvn_header_t h;
    cr_assert_eq(hvn_header_unpack(wire, 25, &h), HVN_R_HEADER_SIZE);
    cr_assert_eq(hvn_header_unpack(wire, 27, &h), HVN_R_HEADER_SIZE);
    wire[0] = 2;
    cr_assert_eq(hvn_header_unpack(wire, 26, &h), HVN_R_HEADER_VERSION);
    wire[0] = 1;
    wire[1] = 0;
    cr_assert_eq(hvn_header_unpack(wire, 26, &h), HVN_R_HEADER_KIND);
    wire[1] = 4;
    cr_assert_eq(hvn_header_unpack(wire, 26, &h), HVN_R_HEADER_KIND);

    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    hvn_msg_t msg;
    cr_assert_eq(hvn_decoder_decode(decoder, fr.topic, fr.topic_size, fr.header, 25, fr.body,
                                    fr.body_size, &msg),
                 HVN_R_HEADER_SIZE);
    cr_assert_str_eq(hvn_decoder_detail(decoder), "header");
    //  The header is checked before the topic
    cr_assert_eq(hvn_decoder_decode(decoder, "", 0, fr.header, 25, fr.body, fr.body_size, &msg),
                 HVN_R_HEADER_SIZE);
    fr.header[0] = 9;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_HEADER_VERSION);
    fr.header[0] = 1;
    fr.header[1] = 7;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_HEADER_KIND);
}

Test(codec, kind_must_agree_with_the_event)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    hvn_msg_t msg;
    fr.header[1] = HVN_KIND_HEARTBEAT;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_HEADER_KIND);
    hvn_header_t header = {0};
    cr_assert_eq(hvn_encoder_broker_heartbeat(encoder, "b", "id", 5, &header, &fr), 0);
    fr.header[1] = HVN_KIND_NOTIFICATION;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_HEADER_KIND);
    fr.header[1] = HVN_KIND_SYNC;
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_HEADER_KIND);
}

Test(codec, malformed_topics_are_refused)
{
    char longest[HVN_TOPIC_MAX + 2];
    memset(longest, 'h', sizeof(longest));
    memcpy(longest, "hvn.broker@", 11);
    struct {
        const char *topic;
        size_t size;
    } cases[] = {
        {"", 0},
        {"compute_node.update", 19},
        {"@cmp", 4},
        {"compute_node.update@", 20},
        {"compute_node.update@a@b", 23},
        {"compute_node.update@cm\0p", 24},
        {"compute_node.update@\xff\xfe", 22},
        {longest, HVN_TOPIC_MAX + 1},
    };
    hvn_event_t event;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(hvn_topic_parse(cases[i].topic, cases[i].size, &event, NULL), HVN_R_TOPIC,
                     "case %zu", i);
        hvn_msg_t msg;
        uint8_t wire[HVN_HEADER_SIZE];
        hvn_header_t header = {.version = 1, .kind = 2};
        hvn_header_pack(&header, wire);
        cr_assert_eq(hvn_decoder_decode(decoder, cases[i].topic, cases[i].size, wire, sizeof(wire),
                                        "\x80", 1, &msg),
                     HVN_R_TOPIC, "case %zu", i);
        cr_assert_str_eq(hvn_decoder_detail(decoder), "topic");
    }
    char host[HVN_TOPIC_MAX + 1];
    cr_assert_eq(hvn_topic_parse(longest, HVN_TOPIC_MAX, &event, host), HVN_OK);
    cr_assert_eq(event, HVN_EVENT_BROKER);
    cr_assert_eq(strlen(host), HVN_TOPIC_MAX - 11);
}

Test(codec, unknown_event_is_refused)
{
    hvn_event_t event = HVN_EVENT_CREATE;
    cr_assert_eq(hvn_topic_parse("compute_node.resize@h", 21, &event, NULL), HVN_OK);
    cr_assert_eq(event, HVN_EVENT_NONE);
    uint8_t wire[HVN_HEADER_SIZE];
    hvn_header_t header = {.version = 1, .kind = 1};
    hvn_header_pack(&header, wire);
    hvn_msg_t msg;
    cr_assert_eq(hvn_decoder_decode(decoder, "compute_node.updatex@h", 22, wire, sizeof(wire),
                                    "\x80", 1, &msg),
                 HVN_R_UNKNOWN_EVENT);
}

Test(codec, body_over_the_limit_is_too_big)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    hvn_msg_t msg;
    hvn_decoder_set_max_size(decoder, fr.body_size);
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_OK);
    hvn_decoder_set_max_size(decoder, fr.body_size - 1);
    cr_assert_eq(s_decode_frames(&fr, &msg), HVN_R_TOO_BIG);
}

Test(codec, trailing_bytes_and_garbage_are_msgpack_errors)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    uint8_t *longer = malloc(fr.body_size + 1);
    memcpy(longer, fr.body, fr.body_size);
    longer[fr.body_size] = 0xC0;
    cr_assert_eq(s_decode_raw(longer, fr.body_size + 1), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw(longer, fr.body_size - 1), HVN_R_MSGPACK, "truncated");
    free(longer);
    cr_assert_eq(s_decode_raw("", 0), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw("\xc1", 1), HVN_R_MSGPACK);
    //  An array header claiming four billion elements, in six bytes
    cr_assert_eq(s_decode_raw("\xdd\xff\xff\xff\xff\xc0", 6), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw("\xdf\x7f\xff\xff\xff\xc0\xc0", 7), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw("\xdb\xff\xff\xff\xff", 5), HVN_R_MSGPACK);
    //  Small container counts short of their elements, and just over, still refused
    cr_assert_eq(s_decode_raw("\xde\x00\x40\xc0", 4), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw("\xde\x00\x41\xc0", 4), HVN_R_MSGPACK);
    cr_assert_eq(s_decode_raw("\x81\xa1x\xdc\x00\x10\xc0\xc0", 8), HVN_R_MSGPACK);
    //  A well-formed body with a small array32 is msgpack, just not ours
    cr_assert_eq(s_decode_raw("\x81\xa1x\xdd\x00\x00\x00\x02\xc0\xc0", 10), HVN_R_MISSING_KEY);
    cr_assert_eq(s_decode_raw("\x81\xa1x\xde", 4), HVN_R_MSGPACK, "count cut off");
}

Test(codec, deeply_nested_garbage_is_refused_without_crashing)
{
    enum { DEPTH = 60000 };
    uint8_t *deep = malloc(DEPTH + 16);
    size_t n = 0;
    deep[n++] = 0x81; //  {"x": [[[[...nil...]]]]}
    deep[n++] = 0xA1;
    deep[n++] = 'x';
    for (int i = 0; i < DEPTH; i++)
        deep[n++] = 0x91;
    deep[n++] = 0xC0;
    cr_assert_eq(s_decode_raw(deep, n), HVN_R_MSGPACK);
    free(deep);
}

Test(codec, body_or_nested_object_not_a_map_is_refused)
{
    cr_assert_eq(s_decode_raw("\x93\x01\x02\x03", 4), HVN_R_NOT_MAP);
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "payload", s_uint(1)), HVN_R_NOT_MAP);
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "payload/nova_object.data", s_str("x")),
                 HVN_R_NOT_MAP);
}

Test(codec, every_missing_envelope_key_is_refused)
{
    for (size_t i = 0; i < sizeof(s_envelope_keys) / sizeof(s_envelope_keys[0]); i++)
        cr_assert_eq(s_without(HVN_EVENT_UPDATE, s_envelope_keys[i]), HVN_R_MISSING_KEY, "%s",
                     s_envelope_keys[i]);
}

Test(codec, every_missing_data_field_is_refused_and_named)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        char path[128], detail[128];
        snprintf(path, sizeof(path), S_DATA "%s", hvn_schema_fields[f].name);
        cr_assert_eq(s_without(HVN_EVENT_UPDATE, path), HVN_R_MISSING_KEY, "%s", path);
        snprintf(detail, sizeof(detail), "payload.nova_object.data.%s", hvn_schema_fields[f].name);
        cr_assert_str_eq(hvn_decoder_detail(decoder), detail);
        if (hvn_schema_fields[f].in_delete)
            cr_assert_eq(s_without(HVN_EVENT_DELETE, path), HVN_R_MISSING_KEY, "%s", path);
    }
}

Test(codec, wrong_types_and_nil_where_not_nullable_are_refused)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        char path[128];
        snprintf(path, sizeof(path), S_DATA "%s", field->name);
        msgpack_object wrong = field->type == HVN_TYPE_INT ? s_str("12") : s_uint(12);
        cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, path, wrong), HVN_R_WRONG_TYPE, "%s", path);
        cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, path, s_float(1.5)), HVN_R_WRONG_TYPE, "%s",
                     path);
        cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, path, s_nil()),
                     field->nullable ? HVN_OK : HVN_R_WRONG_TYPE, "%s", path);
    }
    const char *strs[] = {"priority",
                          "event_type",
                          "timestamp",
                          "publisher_id",
                          "message_id",
                          "payload/nova_object.name",
                          "payload/nova_object.namespace",
                          "payload/nova_object.version"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, strs[i], s_uint(1)), HVN_R_WRONG_TYPE, "%s",
                     strs[i]);
}

Test(codec, malformed_values_are_refused)
{
    char too_long[HVN_STR_MAX + 2];
    memset(too_long, 'y', HVN_STR_MAX + 1);
    too_long[HVN_STR_MAX + 1] = '\0';
    struct {
        const char *path;
        msgpack_object value;
    } cases[] = {
        {S_DATA "uuid", s_str("5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c0")},
        {S_DATA "uuid", s_str("5f0c3a52x8a4b-4c55-9d0e-2f1b6e7a9c01")},
        {S_DATA "host_ip", s_str("300.1.1.1")},
        {S_DATA "host_ip", s_str("cmp-017")},
        {S_DATA "host", s_str(too_long)},
        {S_DATA "host", s_str("bad\xc3\x28utf8")},
        {S_DATA "vcpus", s_uint((uint64_t)INT64_MAX + 1)},
        {"timestamp", s_str("2024-05-06T07:08:09.123456")},
        {"timestamp", s_str("2024-05-06 07:08:09.12345")},
        {"timestamp", s_str("2024-13-06 07:08:09.123456")},
        {"message_id", s_str("not-a-uuid")},
        {"priority", s_str("ERROR")},
        {"publisher_id", s_str("no-colon")},
        {"payload/nova_object.version", s_str("1")},
        {"payload/nova_object.version", s_str("1.")},
        {"payload/nova_object.version", s_str("1.x")},
        {"payload/nova_object.version", s_str("a.0")},
        {"payload/nova_object.version", s_str("1.0.0")},
        {"payload/nova_object.name", s_str(HVN_DELETE_PAYLOAD_NAME)},
        {"payload/nova_object.namespace", s_str("neutron")},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, cases[i].path, cases[i].value), HVN_R_BAD_VALUE,
                     "case %zu: %s", i, cases[i].path);
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, S_DATA "vcpus", s_uint(INT64_MAX)), HVN_OK);
    cr_assert_eq(
        s_with_value(HVN_EVENT_DELETE, "payload/nova_object.name", s_str(HVN_PAYLOAD_NAME)),
        HVN_R_BAD_VALUE);
}

//  Returns true when the 26 bytes at t are a timestamp the protocol admits,
//  checked character by character (the decoder checks words of eight).
static bool s_timestamp_reference(const char *t)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd.dddddd";
    for (int i = 0; i < 26; i++)
        if (shape[i] == 'd' ? t[i] < '0' || t[i] > '9' : t[i] != shape[i])
            return false;
    int month = (t[5] - '0') * 10 + t[6] - '0', day = (t[8] - '0') * 10 + t[9] - '0';
    int hour = (t[11] - '0') * 10 + t[12] - '0', minute = (t[14] - '0') * 10 + t[15] - '0';
    int second = (t[17] - '0') * 10 + t[18] - '0';
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 &&
           second <= 60;
}

Test(codec, timestamp_check_matches_the_reference_for_every_byte_at_every_position)
{
    static const char *const bases[] = {S_TS, "1999-12-31 23:59:60.999999",
                                        "2000-10-20 19:50:59.000000"};
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        for (int at = 0; at < 26; at++) {
            for (int c = 1; c < 256; c++) {
                char text[27];
                memcpy(text, bases[b], 27);
                text[at] = (char)c;
                msgpack_object value = {.type = MSGPACK_OBJECT_STR};
                value.via.str.ptr = text;
                value.via.str.size = 26;
                hvn_reason_t want = s_timestamp_reference(text) ? HVN_OK : HVN_R_BAD_VALUE;
                cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "timestamp", value), want,
                             "base %zu, byte %d at %d", b, c, at);
            }
        }
    }
}

Test(codec, duplicate_keys_are_refused)
{
    body_t *body = s_body(HVN_EVENT_UPDATE);
    s_add(body, "payload/nova_object.data", s_str("vcpus"), s_uint(3));
    hvn_msg_t msg;
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_BAD_VALUE);
    s_body_free(body);
    body = s_body(HVN_EVENT_UPDATE);
    s_add(body, "", s_str("priority"), s_str("INFO"));
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_BAD_VALUE);
    s_body_free(body);
}

Test(codec, unknown_major_version_is_refused_and_any_minor_accepted)
{
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "payload/nova_object.version", s_str("2.0")),
                 HVN_R_PAYLOAD_VERSION);
    cr_assert_eq(s_with_value(HVN_EVENT_DELETE, "payload/nova_object.version", s_str("0.9")),
                 HVN_R_PAYLOAD_VERSION);
    body_t *body = s_body(HVN_EVENT_UPDATE);
    s_set(body, "payload/nova_object.version", s_str("1.7"));
    hvn_msg_t msg;
    cr_assert_eq(s_decode_body(body, &msg), HVN_OK);
    cr_assert_eq(msg.payload_major, 1);
    cr_assert_eq(msg.payload_minor, 7);
    s_body_free(body);
}

Test(codec, unknown_keys_are_ignored_at_every_level)
{
    body_t *body = s_body(HVN_EVENT_UPDATE);
    msgpack_object nested = s_map_at(body, "payload")[0];
    s_add(body, "", s_str("future_key"), nested);
    s_add(body, "", s_uint(7), s_str("non-string key"));
    s_add(body, "payload", s_str("nova_object.changes"), s_str("x"));
    s_add(body, "payload/nova_object.data", s_str("numa_topology"), s_float(2.5));
    hvn_msg_t msg;
    cr_assert_eq(s_decode_body(body, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    cr_assert(hvn_node_equal(&node, &msg.node));
    s_body_free(body);
    body = s_body(HVN_EVENT_DELETE);
    //  A delete ignores payload fields that are not in it, even malformed
    s_add(body, "payload/nova_object.data", s_str("vcpus"), s_str("many"));
    cr_assert_eq(s_decode_body(body, &msg), HVN_OK, "%s", hvn_decoder_detail(decoder));
    s_body_free(body);
}

Test(codec, an_empty_key_after_the_last_field_is_an_unknown_key)
{
    //  After the last field the decoder's guess of the next key is past the
    //  table; an empty key must not match that guess
    for (int e = HVN_EVENT_CREATE; e <= HVN_EVENT_DELETE; e++) {
        body_t *body = s_body((hvn_event_t)e);
        s_add(body, "payload/nova_object.data", s_str(""), s_uint(1));
        s_add(body, "payload/nova_object.data", s_str(""), s_uint(2));
        hvn_msg_t msg;
        cr_assert_eq(s_decode_body(body, &msg), HVN_OK, "event %d: %s", e,
                     hvn_decoder_detail(decoder));
        s_body_free(body);
    }
}

Test(codec, event_type_or_host_disagreeing_with_topic_is_refused)
{
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "event_type", s_str(HVN_EVENT_CREATE_NAME)),
                 HVN_R_TOPIC_MISMATCH);
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "publisher_id", s_str("nova-compute:cmp-018")),
                 HVN_R_TOPIC_MISMATCH);
    cr_assert_str_eq(hvn_decoder_detail(decoder), "publisher_id");
    //  The host is what follows the first ':'
    cr_assert_eq(s_with_value(HVN_EVENT_UPDATE, "publisher_id", s_str("a:b:cmp-017")),
                 HVN_R_TOPIC_MISMATCH);
    const char *uuids[] = {S_UUID};
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 10, uuids, 1, &header, &fr), 0);
    hvn_msg_t msg;
    cr_assert_eq(hvn_decoder_decode(decoder, "hvn.heartbeat@other", 19, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_R_TOPIC_MISMATCH);
}

Test(codec, malformed_heartbeats_are_refused)
{
    const char *uuids[] = {S_UUID};
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &s_env, 10, uuids, 1, &header, &fr), 0);
    body_t *body = s_body_of(fr);
    hvn_msg_t msg;
    cr_assert_eq(s_decode_body(body, &msg), HVN_OK);
    msgpack_object *nodes = s_map_at(body, "nodes");
    nodes->via.array.ptr[0] = s_str("zzz");
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_BAD_VALUE);
    nodes->via.array.ptr[0] = s_uint(1);
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_WRONG_TYPE);
    s_set(body, "nodes", s_str("x"));
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_WRONG_TYPE);
    s_remove(body, "nodes");
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_MISSING_KEY);
    s_set(body, "interval_ms", s_str("10"));
    cr_assert_eq(s_decode_body(body, &msg), HVN_R_WRONG_TYPE);
    s_body_free(body);
}

Test(codec, random_corruption_never_crashes_and_never_passes_garbage)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    size_t size = fr.body_size;
    uint8_t *copy = malloc(size);
    srand(1234);
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, fr.body, size);
        int flips = 1 + rand() % 4;
        for (int i = 0; i < flips; i++)
            copy[rand() % size] = (uint8_t)rand();
        size_t cut = round % 3 == 0 ? (size_t)rand() % size : size;
        hvn_msg_t msg;
        hvn_reason_t rc = hvn_decoder_decode(decoder, fr.topic, fr.topic_size, fr.header,
                                             HVN_HEADER_SIZE, copy, cut, &msg);
        if (rc == HVN_OK)
            cr_assert_eq(hvn_node_validate(&msg.node, NULL), 0);
    }
    free(copy);
}

Test(codec, every_reason_has_a_distinct_name)
{
    for (int a = 0; a < HVN_R_COUNT; a++) {
        const char *name = hvn_reason_str(a);
        cr_assert(name && *name, "reason %d", a);
        cr_assert_str_neq(name, "unknown");
        for (int b = 0; b < a; b++)
            cr_assert_str_neq(name, hvn_reason_str(b));
    }
    cr_assert_str_eq(hvn_reason_str(HVN_R_TOO_BIG), "too_big");
    cr_assert_str_eq(hvn_reason_str(HVN_R_COUNT), "unknown");
}

Test(codec, event_names_match_the_protocol)
{
    cr_assert_str_eq(hvn_event_name(HVN_EVENT_CREATE), "compute_node.create");
    cr_assert_str_eq(hvn_event_name(HVN_EVENT_UPDATE), "compute_node.update");
    cr_assert_str_eq(hvn_event_name(HVN_EVENT_DELETE), "compute_node.delete");
    cr_assert_str_eq(hvn_event_name(HVN_EVENT_HEARTBEAT), "hvn.heartbeat");
    cr_assert_str_eq(hvn_event_name(HVN_EVENT_BROKER), "hvn.broker");
    cr_assert_null(hvn_event_name(HVN_EVENT_NONE));
}

// --------------------------------------------------------------------------
//  Ids, timestamps, refusal counting

static int s_cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

Test(ids, uuid4_is_canonical_version_4_and_unique)
{
    enum { N = 20000 };
    static uint8_t seen[N][16];
    for (int i = 0; i < N; i++) {
        char text[37];
        hvn_uuid4_str(text);
        cr_assert_eq(strlen(text), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                cr_assert_eq(text[k], '-');
            else
                cr_assert(strchr("0123456789abcdef", text[k]), "%s", text);
        }
        cr_assert_eq(text[14], '4', "%s", text);
        cr_assert(strchr("89ab", text[19]), "%s", text);
        cr_assert_eq(uuid_parse(text, seen[i]), 0);
        char back[37];
        uuid_unparse_lower(seen[i], back);
        cr_assert_str_eq(back, text);
    }
    qsort(seen, N, 16, s_cmp16);
    for (int i = 1; i < N; i++)
        cr_assert_neq(memcmp(seen[i - 1], seen[i], 16), 0, "duplicate uuid");
}

Test(ids, timestamp_is_utc_with_six_fraction_digits)
{
    char ts[27];
    hvn_timestamp_now(ts);
    cr_assert_eq(strlen(ts), 26);
    const char *shape = "dddd-dd-dd dd:dd:dd.dddddd";
    for (int i = 0; i < 26; i++)
        if (shape[i] == 'd')
            cr_assert(ts[i] >= '0' && ts[i] <= '9', "%s", ts);
        else
            cr_assert_eq(ts[i], shape[i], "%s", ts);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char year[16];
    snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);
    cr_assert(strncmp(ts, year, 4) == 0, "%s", ts);
}

Test(rejects, counts_every_refusal_and_rate_limits_logging)
{
    hvn_rejects_t rejects;
    hvn_rejects_init(&rejects, "test");
    for (int i = 0; i < 1000; i++)
        hvn_rejects_add(&rejects, HVN_R_MSGPACK, "body", "compute_node.update@\nforged");
    hvn_rejects_add(&rejects, HVN_R_TOPIC, NULL, NULL);
    cr_assert_eq(rejects.count[HVN_R_MSGPACK], 1000);
    cr_assert_eq(rejects.count[HVN_R_TOPIC], 1);
    cr_assert_eq(rejects.suppressed[HVN_R_MSGPACK], 999);
    cr_assert_eq(rejects.suppressed[HVN_R_TOPIC], 0);
    cr_assert_eq(hvn_rejects_total(&rejects), 1001);
}

Test(codec, uuid_parse_accepts_and_refuses_what_libuuid_does)
{
    static const char *const cases[] = {
        "5f3bb5bc-7f77-4fd2-9f4c-00000000002a",
        "5F3BB5BC-7F77-4FD2-9F4C-ABCDEFabcdef",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "5f3bb5bc-7f77-4fd2-9f4c-00000000002",
        "5f3bb5bc-7f77-4fd2-9f4c-00000000002aa",
        "5f3bb5bc07f77-4fd2-9f4c-00000000002a",
        "5f3bb5bc-7f77-4fd2-9f4c-00000000002g",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000000 a",
        "g f3bb5bc-7f77-4fd2-9f4c-00000000002a",
        "5f3bb5bc-7f77-4fd2-9f4c:00000000002a",
        "",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000/002a",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000:002a",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000@002a",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000`002a",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000G002a",
        "5f3bb5bc-7f77-4fd2-9f4c-0000000\xff"
        "002a",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uuid_t expected;
        uint8_t got[16];
        int want = uuid_parse(cases[i], expected);
        int rc = hvn_uuid_parse(cases[i], strlen(cases[i]), got);
        cr_assert_eq(rc, want, "case %zu: '%s'", i, cases[i]);
        if (rc == 0)
            cr_assert_arr_eq(got, expected, 16, "case %zu", i);
    }
    cr_assert_eq(hvn_uuid_parse(NULL, 36, NULL), -1);
    //  Every byte value at every position of a valid text
    for (int at = 0; at < 36; at++) {
        for (int c = 1; c < 256; c++) {
            char text[37] = "5f3bb5bc-7f77-4fd2-9f4c-ABCDEFabcdef";
            text[at] = (char)c;
            uuid_t expected;
            uint8_t got[16];
            int want = uuid_parse(text, expected);
            int rc = hvn_uuid_parse(text, 36, got);
            cr_assert_eq(rc, want, "byte %d at %d", c, at);
            if (rc == 0)
                cr_assert_arr_eq(got, expected, 16, "byte %d at %d", c, at);
        }
    }
}

Test(codec, a_host_with_a_control_character_is_refused_both_ways)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    hvn_frames_t fr = s_encode(HVN_EVENT_UPDATE, &node, HVN_KIND_NOTIFICATION);
    //  The same message with an escape sequence in the topic's host, as a
    //  hostile publisher would send it: it would reach hvn-sub's terminal
    char topic[HVN_TOPIC_MAX];
    memcpy(topic, fr.topic, fr.topic_size);
    topic[fr.topic_size - 4] = '\x1b'; //  cmp\x1b017
    hvn_msg_t msg;
    cr_assert_eq(hvn_decoder_decode(decoder, topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_R_TOPIC);
    topic[fr.topic_size - 4] = '\n';
    cr_assert_eq(hvn_decoder_decode(decoder, topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_R_TOPIC);
    topic[fr.topic_size - 4] = '\x7f';
    cr_assert_eq(hvn_decoder_decode(decoder, topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_R_TOPIC);
    //  And the encoder never makes one
    hvn_envelope_t envelope = {.host = "cmp\x1b[2J\nfake-row"};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 1};
    cr_assert_neq(
        hvn_encoder_notification(encoder, HVN_EVENT_UPDATE, &envelope, &node, &header, &fr), 0);
}
