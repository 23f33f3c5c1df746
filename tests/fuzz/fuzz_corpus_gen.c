/*  fuzz_corpus_gen.c — writes the fuzz targets' seed corpora and
    dictionaries.

    Usage: fuzz_corpus_gen DIR   (DIR is tests/fuzz in the source tree)

    Every seed is made by the real encoder (messages) or by jansson from a
    real node (JSON lines), valid ones first and then near-valid ones: one
    thing changed, so the fuzzer starts next to every refusal path. The
    dictionaries are the keys and words of the formats, packed as they
    appear on the wire. Seeds are deterministic except the broker
    heartbeat's timestamp, which the encoder always takes from the clock.
*/
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "hvn_fuzz.h"
#include "hvn_proto.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_UUID2 "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d"
#define S_MSGID "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
#define S_TS "2024-05-06 07:08:09.123456"
#define S_HOST "cmp-017"

static const char *s_dir; //  Output directory

//  Exits with a message after a failed step.
static void s_die(const char *what)
{
    fprintf(stderr, "fuzz_corpus_gen: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

//  Returns nothing; writes size bytes to DIR/sub/name.
static void s_write(const char *sub, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", s_dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        s_die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", s_dir, sub, name);
    FILE *file = fopen(path, "wb");
    if (!file || fwrite(data, 1, size, file) != size || fclose(file) != 0)
        s_die(path);
}

//  Returns a stream writing into *text (its length in *size), or dies.
static FILE *s_memstream(char **text, size_t *size)
{
    FILE *out = open_memstream(text, size);
    if (!out)
        s_die("open_memstream");
    return out;
}

//  Returns nothing; writes word, packed as a msgpack str, as one
//  dictionary entry.
static void s_dict_str(FILE *out, const char *word)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, strlen(word));
    msgpack_pack_str_body(&pk, word, strlen(word));
    fputc('"', out);
    for (size_t k = 0; k < sbuf.size; k++) {
        unsigned char c = (unsigned char)sbuf.data[k];
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\')
            fprintf(out, "\\x%02X", c);
        else
            fputc(c, out);
    }
    fputs("\"\n", out);
    msgpack_sbuffer_destroy(&sbuf);
}

// --------------------------------------------------------------------------
//  Nodes

//  Returns nothing; node has every nullable field nil.
static void s_node_nulls(hvn_node_t *node, const char *uuid)
{
    fx_node_full(node, uuid, S_HOST);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].nullable)
            hvn_node_set_null(node, f);
}

//  Returns nothing; node has the longest strings, extreme integers and an
//  IPv6 address.
static void s_node_extreme(hvn_node_t *node, const char *uuid)
{
    char longest[HVN_STR_MAX + 1];
    memset(longest, 'x', HVN_STR_MAX);
    longest[HVN_STR_MAX] = '\0';
    fx_node_full(node, uuid, S_HOST);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        if (hvn_schema_fields[f].type == HVN_TYPE_STR)
            hvn_node_set_str(node, f, longest);
        else if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, f % 2 ? INT64_MAX : INT64_MIN);
    }
    hvn_node_set_str(node, HVN_F_HOST_IP, "2001:db8::ffff:192.0.2.1");
}

// --------------------------------------------------------------------------
//  Decoder seeds

//  One message's three frames, owned copies
typedef struct {
    char topic[HVN_TOPIC_MAX + 1];       //  Frame 0
    size_t topic_size;                   //  Its bytes
    uint8_t header[HVN_HEADER_SIZE + 1]; //  Frame 1 (+1: room for a too-long one)
    size_t header_size;                  //  Its bytes
    uint8_t *body;                       //  Frame 2, heap
    size_t body_size;                    //  Its bytes
} s_msg_t;

static hvn_encoder_t *s_encoder; //  Makes every message

//  Returns nothing; msg holds a copy of the encoded frames.
static void s_keep(s_msg_t *msg, const hvn_frames_t *frames)
{
    memcpy(msg->topic, frames->topic, frames->topic_size);
    msg->topic_size = frames->topic_size;
    memcpy(msg->header, frames->header, HVN_HEADER_SIZE);
    msg->header_size = HVN_HEADER_SIZE;
    msg->body = malloc(frames->body_size + 1);
    if (!msg->body)
        s_die("malloc");
    memcpy(msg->body, frames->body, frames->body_size);
    msg->body_size = frames->body_size;
}

//  Returns nothing; msg is a notification of node.
static void s_notification(s_msg_t *msg, hvn_event_t event, uint8_t kind, uint64_t seq,
                           const hvn_node_t *node)
{
    hvn_envelope_t env = {.host = S_HOST, .timestamp = S_TS, .message_id = S_MSGID};
    hvn_header_t header = {.kind = kind, .seq = seq, .instance = {0x42, 0x17}};
    hvn_frames_t frames;
    if (hvn_encoder_notification(s_encoder, event, &env, node, &header, &frames) != 0)
        s_die("encode notification");
    s_keep(msg, &frames);
}

//  Returns nothing; msg is a publisher heartbeat listing count uuids.
static void s_heartbeat(s_msg_t *msg, const char *const *uuids, size_t count)
{
    hvn_envelope_t env = {.host = S_HOST, .timestamp = S_TS};
    hvn_header_t header = {.seq = 7, .instance = {0x42, 0x17}};
    hvn_frames_t frames;
    if (hvn_encoder_heartbeat(s_encoder, &env, 10000, uuids, count, &header, &frames) != 0)
        s_die("encode heartbeat");
    s_keep(msg, &frames);
}

//  Returns nothing; writes the messages, framed for hvn_fuzz_decoder after
//  the selector byte, as decoder/name.
static void s_write_msgs(const char *name, uint8_t selector, s_msg_t *msgs, size_t count)
{
    size_t cap = 1;
    for (size_t i = 0; i < count; i++)
        cap += HVN_FUZZ_FRAME_MAX(msgs[i].body_size);
    uint8_t *out = malloc(cap);
    if (!out)
        s_die("malloc");
    size_t size = 0;
    out[size++] = selector;
    for (size_t i = 0; i < count; i++) {
        size_t n =
            hvn_fuzz_frame(out + size, msgs[i].topic, msgs[i].topic_size, msgs[i].header,
                           msgs[i].header_size, msgs[i].body, msgs[i].body_size, i + 1 == count);
        if (n == 0)
            s_die(name);
        size += n;
    }
    s_write("decoder", name, out, size);
    free(out);
    for (size_t i = 0; i < count; i++)
        free(msgs[i].body);
}

//  Returns nothing; writes one message as decoder/name.
static void s_write_msg(const char *name, uint8_t selector, s_msg_t *msg)
{
    s_write_msgs(name, selector, msg, 1);
}

//  Returns nothing; writes the valid decoder seeds.
static void s_decoder_valid(void)
{
    hvn_node_t node;
    s_msg_t msgs[4];
    const char *uuids[] = {S_UUID, S_UUID2, "00000000-0000-0000-0000-000000000000"};

    fx_node_full(&node, S_UUID, S_HOST);
    s_notification(&msgs[0], HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    s_write_msg("create", 0, &msgs[0]);
    s_node_nulls(&node, S_UUID);
    s_notification(&msgs[0], HVN_EVENT_UPDATE, HVN_KIND_NOTIFICATION, 2, &node);
    s_write_msg("update-nulls", 0, &msgs[0]);
    s_node_extreme(&node, S_UUID2);
    s_notification(&msgs[0], HVN_EVENT_UPDATE, HVN_KIND_NOTIFICATION, UINT64_MAX, &node);
    s_write_msg("update-extreme", 0, &msgs[0]);
    fx_node_full(&node, S_UUID, S_HOST);
    s_notification(&msgs[0], HVN_EVENT_DELETE, HVN_KIND_NOTIFICATION, 3, &node);
    s_write_msg("delete", 0, &msgs[0]);
    s_notification(&msgs[0], HVN_EVENT_CREATE, HVN_KIND_SYNC, 1, &node);
    s_write_msg("sync", 0, &msgs[0]);
    s_heartbeat(&msgs[0], uuids, 3);
    s_write_msg("heartbeat", 0, &msgs[0]);
    s_heartbeat(&msgs[0], NULL, 0);
    s_write_msg("heartbeat-empty", 0, &msgs[0]);

    hvn_header_t header = {.seq = 0, .instance = {0x99}};
    hvn_frames_t frames;
    if (hvn_encoder_broker_heartbeat(s_encoder, "broker-1", "hvn-broker:4f1c", 5000, &header,
                                     &frames) != 0)
        s_die("encode broker heartbeat");
    s_keep(&msgs[0], &frames);
    s_write_msg("broker-heartbeat", 0, &msgs[0]);

    //  A node's life through one decoder and one cache
    fx_node_full(&node, S_UUID, S_HOST);
    s_notification(&msgs[0], HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    hvn_node_set_int(&node, HVN_F_VCPUS_USED, 12);
    s_notification(&msgs[1], HVN_EVENT_UPDATE, HVN_KIND_NOTIFICATION, 2, &node);
    s_heartbeat(&msgs[2], uuids, 1);
    s_notification(&msgs[3], HVN_EVENT_DELETE, HVN_KIND_NOTIFICATION, 3, &node);
    s_write_msgs("life", 0, msgs, 4);

    //  A heartbeat (seq 7) listing neither node: the one sent before it is
    //  pruned, the one sent after it (seq 9) stays
    fx_node_full(&node, S_UUID, S_HOST);
    s_notification(&msgs[0], HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    fx_node_full(&node, S_UUID2, S_HOST);
    s_notification(&msgs[1], HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 9, &node);
    s_heartbeat(&msgs[2], NULL, 0);
    s_write_msgs("prune", 0, msgs, 3);

    //  More nodes of one host than the harness's cache takes
    s_msg_t many[6];
    for (int i = 0; i < 6; i++) {
        char uuid[HVN_UUID_STR_LEN + 1];
        snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012d", i + 1);
        fx_node_full(&node, uuid, S_HOST);
        s_notification(&many[i], HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, (uint64_t)i + 1, &node);
    }
    s_write_msgs("many-nodes", 0, many, 6);
}

//  Returns nothing; writes the near-valid decoder seeds, one thing wrong.
static void s_decoder_near(void)
{
    hvn_node_t node;
    s_msg_t msg;
    fx_node_full(&node, S_UUID, S_HOST);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.body_size--;
    s_write_msg("near-body-truncated", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.body[msg.body_size++] = 0xC0; //  A trailing nil
    s_write_msg("near-body-trailing", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.header[0] = HVN_WIRE_VERSION + 1;
    s_write_msg("near-header-version", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.header[1] = HVN_KIND_HEARTBEAT;
    s_write_msg("near-header-kind", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.header_size = HVN_HEADER_SIZE - 1;
    s_write_msg("near-header-short", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    msg.topic_size--; //  Host "cmp-01": not publisher_id's
    s_write_msg("near-topic-host", 0, &msg);

    s_notification(&msg, HVN_EVENT_UPDATE, HVN_KIND_NOTIFICATION, 1, &node);
    memcpy(msg.topic, HVN_EVENT_CREATE_NAME, strlen(HVN_EVENT_CREATE_NAME));
    s_write_msg("near-topic-event", 0, &msg);

    s_notification(&msg, HVN_EVENT_CREATE, HVN_KIND_NOTIFICATION, 1, &node);
    s_write_msg("near-too-big", 2, &msg); //  Body limit 64 bytes
}

//  Returns nothing; writes the decoder dictionary: every key and fixed word
//  of a body as a msgpack str, and the topics' event names.
static void s_decoder_dict(void)
{
    static const char *const words[] = {"priority",
                                        "INFO",
                                        "event_type",
                                        "timestamp",
                                        "publisher_id",
                                        "message_id",
                                        "payload",
                                        "nova_object.name",
                                        "nova_object.namespace",
                                        "nova_object.version",
                                        "nova_object.data",
                                        HVN_PAYLOAD_NAME,
                                        HVN_DELETE_PAYLOAD_NAME,
                                        HVN_PAYLOAD_NAMESPACE,
                                        "1.0",
                                        "interval_ms",
                                        "nodes",
                                        "broker_id",
                                        HVN_EVENT_CREATE_NAME,
                                        HVN_EVENT_UPDATE_NAME,
                                        HVN_EVENT_DELETE_NAME,
                                        HVN_EVENT_HEARTBEAT_NAME,
                                        HVN_EVENT_BROKER_NAME,
                                        S_TS,
                                        S_UUID,
                                        "192.0.2.17",
                                        "::1"};
    size_t nwords = sizeof(words) / sizeof(words[0]);
    char *text = NULL;
    size_t size = 0;
    FILE *out = s_memstream(&text, &size);
    fprintf(out, "# HVN/1 bodies: keys and words as msgpack str, event names as in topics.\n"
                 "# Written by fuzz_corpus_gen.\n");
    for (size_t i = 0; i < nwords + HVN_F_COUNT; i++) {
        const char *word = i < nwords ? words[i] : hvn_schema_fields[i - nwords].name;
        s_dict_str(out, word);
    }
    for (hvn_event_t e = HVN_EVENT_CREATE; hvn_event_name(e); e++)
        fprintf(out, "\"%s@\"\n", hvn_event_name(e)); //  As a topic starts
    if (fclose(out) != 0)
        s_die("memstream");
    s_write(".", "decoder.dict", text, size);
    free(text);
}

// --------------------------------------------------------------------------
//  JSON node seeds

//  Returns node as the JSON object hvn-pub reads (new reference): the
//  schema table's rendering, hvn_json_node, parsed.
static json_t *s_node_json(const hvn_node_t *node)
{
    char *text = hvn_json_node(node);
    if (!text)
        s_die("hvn_json_node");
    json_t *obj = json_loads(text, 0, NULL);
    free(text);
    if (!obj)
        s_die("json_loads");
    return obj;
}

//  Returns nothing; writes the objects, one per line, as json_node/name;
//  a NULL is a blank line. Consumes the references.
static void s_write_lines(const char *name, json_t **objs, size_t count, const char *eol)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = s_memstream(&text, &size);
    for (size_t i = 0; i < count; i++) {
        if (!objs[i]) {
            fprintf(out, "  %s", eol);
            continue;
        }
        char *line = json_dumps(objs[i], JSON_COMPACT | JSON_ENCODE_ANY);
        if (!line)
            s_die("json_dumps");
        fprintf(out, "%s%s", line, eol);
        free(line);
        json_decref(objs[i]);
    }
    if (fclose(out) != 0)
        s_die("memstream");
    s_write("json_node", name, text, size);
    free(text);
}

//  Returns nothing; writes one object as a line.
static void s_write_line(const char *name, json_t *obj)
{
    s_write_lines(name, &obj, 1, "\n");
}

//  Returns a full node's JSON object (new reference).
static json_t *s_full_json(void)
{
    hvn_node_t node;
    fx_node_full(&node, S_UUID, S_HOST);
    return s_node_json(&node);
}

//  Returns nothing; writes the valid JSON seeds.
static void s_json_valid(void)
{
    hvn_node_t node;
    json_t *objs[4];
    s_write_line("full", s_full_json());
    s_node_nulls(&node, S_UUID);
    s_write_line("nulls", s_node_json(&node));
    s_node_extreme(&node, S_UUID2);
    s_write_line("extreme", s_node_json(&node));

    json_t *gone = json_pack("{s:s, s:b}", "uuid", S_UUID, "deleted", 1);
    if (!gone)
        s_die("json_pack");
    s_write_line("deleted", gone);

    //  A session: report, change, delete, blank lines and CRLF between
    objs[0] = s_full_json();
    objs[1] = s_full_json();
    json_object_set_new(objs[1], "vcpus_used", json_integer(12));
    objs[2] = NULL;
    objs[3] = json_pack("{s:s, s:b}", "uuid", S_UUID, "deleted", 1);
    if (!objs[3])
        s_die("json_pack");
    s_write_lines("session-crlf", objs, 4, "\r\n");
}

//  Returns nothing; writes the near-valid JSON seeds, one thing wrong.
static void s_json_near(void)
{
    json_t *obj = s_full_json();
    json_object_set_new(obj, "vcpu", json_integer(1));
    s_write_line("near-unknown-key", obj);

    obj = s_full_json();
    json_object_del(obj, "memory_mb");
    s_write_line("near-missing", obj);

    obj = s_full_json();
    json_object_set_new(obj, "vcpus", json_string("8"));
    s_write_line("near-wrong-type", obj);

    obj = s_full_json();
    json_object_set_new(obj, "vcpus", json_null());
    s_write_line("near-null", obj);

    obj = s_full_json();
    json_object_set_new(obj, "uuid", json_string("5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c0"));
    s_write_line("near-bad-uuid", obj);

    obj = s_full_json();
    json_object_set_new(obj, "host_ip", json_string("192.0.2.256"));
    s_write_line("near-bad-ip", obj);

    obj = s_full_json();
    json_object_set_new(obj, "host", json_stringn("cmp\000017", 7));
    s_write_line("near-nul", obj);

    char longer[HVN_STR_MAX + 2];
    memset(longer, 'x', HVN_STR_MAX + 1);
    longer[HVN_STR_MAX + 1] = '\0';
    obj = s_full_json();
    json_object_set_new(obj, "hypervisor_type", json_string(longer));
    s_write_line("near-too-long", obj);

    obj = json_pack("{s:s, s:i}", "uuid", S_UUID, "deleted", 1);
    s_write_line("near-deleted-int", obj);

    obj = json_array();
    json_array_append_new(obj, s_full_json());
    s_write_line("near-array", obj);
}

//  Returns nothing; writes the JSON dictionary: every key, quoted.
static void s_json_dict(void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = s_memstream(&text, &size);
    fprintf(out, "# hvn-pub input: the payload's keys and JSON words.\n"
                 "# Written by fuzz_corpus_gen.\n");
    for (int f = 0; f < HVN_F_COUNT; f++)
        fprintf(out, "\"\\\"%s\\\"\"\n", hvn_schema_fields[f].name);
    fprintf(out, "\"\\\"deleted\\\"\"\n\"true\"\n\"false\"\n\"null\"\n\"\\\\u0000\"\n"
                 "\"\\\"" S_UUID "\\\"\"\n\"\\\"::ffff:10.0.0.1\\\"\"\n");
    if (fclose(out) != 0)
        s_die("memstream");
    s_write(".", "json_node.dict", text, size);
    free(text);
}

// --------------------------------------------------------------------------
//  END seeds

//  How an END seed departs from what a broker sends
typedef enum {
    S_END_PLAIN = 0,  //  As a broker packs it
    S_END_EXTRA_KEY,  //  An unknown key too (ignored)
    S_END_NO_COUNT,   //  "count" left out
    S_END_NEG_COUNT,  //  count -1
    S_END_EMPTY_ID,   //  broker_id ""
    S_END_PUBS_ARRAY, //  publishers an array of uuids
    S_END_SEQ_STR,    //  A seq as a str
    S_END_KEY_INT,    //  An integer key in the root map
    S_END_TRAILING,   //  A nil after the map
    S_END_DUP_COUNT   //  "count" twice
} s_end_shape_t;

//  Returns nothing; packs a msgpack str.
static void s_pack_str(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str(pk, strlen(text));
    msgpack_pack_str_body(pk, text, strlen(text));
}

//  Returns nothing; writes an END naming count uuids (seq i + 1 each) as
//  end/name, shaped as asked.
static void s_end(const char *name, s_end_shape_t shape, const char *broker_id,
                  const char *const *uuids, size_t count)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    size_t keys = 3 +
                  (shape == S_END_EXTRA_KEY || shape == S_END_KEY_INT || shape == S_END_DUP_COUNT) -
                  (shape == S_END_NO_COUNT);
    msgpack_pack_map(&pk, keys);
    s_pack_str(&pk, "broker_id");
    s_pack_str(&pk, shape == S_END_EMPTY_ID ? "" : broker_id);
    if (shape != S_END_NO_COUNT) {
        s_pack_str(&pk, "count");
        if (shape == S_END_NEG_COUNT)
            msgpack_pack_int64(&pk, -1);
        else
            msgpack_pack_uint64(&pk, 2);
    }
    if (shape == S_END_DUP_COUNT) {
        s_pack_str(&pk, "count");
        msgpack_pack_uint64(&pk, 3);
    }
    if (shape == S_END_EXTRA_KEY) {
        s_pack_str(&pk, "generation");
        msgpack_pack_uint64(&pk, 1);
    }
    if (shape == S_END_KEY_INT) {
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_nil(&pk);
    }
    s_pack_str(&pk, "publishers");
    if (shape == S_END_PUBS_ARRAY)
        msgpack_pack_array(&pk, count);
    else
        msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < count; i++) {
        s_pack_str(&pk, uuids[i]);
        if (shape == S_END_SEQ_STR)
            s_pack_str(&pk, "1");
        else if (shape != S_END_PUBS_ARRAY)
            msgpack_pack_uint64(&pk, i == 1 ? UINT64_MAX : i + 1);
    }
    if (shape == S_END_TRAILING)
        msgpack_pack_nil(&pk);
    s_write("end", name, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
}

//  Returns nothing; writes the END seeds, valid and near-valid.
static void s_end_seeds(void)
{
    const char *uuids[] = {S_UUID2, S_UUID, "00000000-0000-0000-0000-000000000000"};
    const char *upper[] = {"5F0C3A52-8A4B-4C55-9D0E-2F1B6E7A9C01"};
    const char *dup[] = {S_UUID, "5F0C3A52-8A4B-4C55-9D0E-2F1B6E7A9C01"};
    const char *bad[] = {"5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c0g"};
    s_end("empty", S_END_PLAIN, "hvn-broker:4f1c", NULL, 0);
    s_end("one", S_END_PLAIN, "hvn-broker:4f1c", uuids, 1);
    s_end("three", S_END_PLAIN, "hvn-broker:4f1c", uuids, 3);
    s_end("upper-case", S_END_PLAIN, "b", upper, 1);
    s_end("extra-key", S_END_EXTRA_KEY, "hvn-broker:4f1c", uuids, 2);
    s_end("near-no-count", S_END_NO_COUNT, "hvn-broker:4f1c", uuids, 1);
    s_end("near-negative-count", S_END_NEG_COUNT, "hvn-broker:4f1c", uuids, 1);
    s_end("near-empty-id", S_END_EMPTY_ID, "", uuids, 1);
    s_end("near-publishers-array", S_END_PUBS_ARRAY, "hvn-broker:4f1c", uuids, 2);
    s_end("near-seq-str", S_END_SEQ_STR, "hvn-broker:4f1c", uuids, 1);
    s_end("near-int-key", S_END_KEY_INT, "hvn-broker:4f1c", uuids, 1);
    s_end("near-trailing", S_END_TRAILING, "hvn-broker:4f1c", uuids, 1);
    s_end("near-dup-count", S_END_DUP_COUNT, "hvn-broker:4f1c", uuids, 1);
    s_end("near-dup-instance", S_END_PLAIN, "hvn-broker:4f1c", dup, 2);
    s_end("near-bad-uuid", S_END_PLAIN, "hvn-broker:4f1c", bad, 1);
}

//  Returns nothing; writes the END dictionary: its keys as msgpack str and
//  the type bytes of its values.
static void s_end_dict(void)
{
    static const char text[] = "# Snapshot END bodies: keys as msgpack str, value headers.\n"
                               "# Written by fuzz_corpus_gen.\n";
    char *out_text = NULL;
    size_t size = 0;
    FILE *out = s_memstream(&out_text, &size);
    fputs(text, out);
    static const char *const words[] = {"broker_id", "count", "publishers", S_UUID};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        s_dict_str(out, words[i]);
    }
    //  uint64, map16, map32, str8
    fputs("\"\\xCF\"\n\"\\xDE\"\n\"\\xDF\"\n\"\\xD9\"\n", out);
    if (fclose(out) != 0)
        s_die("memstream");
    s_write(".", "end.dict", out_text, size);
    free(out_text);
}

//  Returns 0 after writing every seed and dictionary under argv[1].
int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_corpus_gen DIR\n");
        return 2;
    }
    s_dir = argv[1];
    s_encoder = hvn_encoder_new();
    if (!s_encoder)
        s_die("hvn_encoder_new");
    s_decoder_valid();
    s_decoder_near();
    s_decoder_dict();
    s_json_valid();
    s_json_near();
    s_json_dict();
    s_end_seeds();
    s_end_dict();
    hvn_encoder_destroy(&s_encoder);
    return 0;
}
