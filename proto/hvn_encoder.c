/*  hvn_encoder.c — an HVN/1 message's three frames, encoded.

    The encoder packs into one reused buffer, with msgpack-c's own packer
    (pack_template.h) writing into it inline, so a warm encoder does not
    allocate. The constant runs of a body (keys, the payload's names) are
    packed once per encoder and copied as bytes; the payload's fields come
    from hvn_schema_fields[], each value checked as it is packed.
*/
#include "hvn_encoder.h"
#include "hvn_ids.h"
#include "hvn_wire_int.h"

#include <assert.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)
#define S_PAYLOAD_VERSION S_STR(HVN_PAYLOAD_MAJOR) "." S_STR(HVN_PAYLOAD_MINOR)
#define S_DELETE_VERSION S_STR(HVN_DELETE_PAYLOAD_MAJOR) "." S_STR(HVN_DELETE_PAYLOAD_MINOR)
#define S_PRIORITY "INFO"

//  Returns true when len bytes at s are a UUID in canonical text; raw (when
//  not NULL) receives its 16 bytes.
static bool s_uuid_valid(const char *s, size_t len, uint8_t *raw)
{
    return hvn_uuid_parse(s, len, raw) == 0;
}

// --------------------------------------------------------------------------
//  Encoder

//  The body being encoded: a buffer the encoder keeps and msgpack-c's
//  packer writes into. The packer is msgpack-c's own pack_template.h (the
//  one msgpack_pack_*() are built from), instantiated below with an append
//  that copies into this buffer inline, instead of calling the packer's
//  write callback (msgpack_sbuffer_write) once per header and per value.
typedef struct {
    char *data;  //  Bytes; never NULL once the encoder exists
    size_t size; //  Bytes written
    size_t cap;  //  Bytes allocated
} s_body_t;

#define S_BODY_INIT 2048 //  Bytes to start with; a notification takes 600 to 1 500
#define S_RUN_SHORT 32   //  A constant run this short is copied as this many bytes

//  Returns 0 with room for len more bytes in body, -1 when out of memory.
static int s_body_grow(s_body_t *body, size_t len)
{
    size_t cap = body->cap ? body->cap : S_BODY_INIT;
    while (cap - body->size < len) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *grown = realloc(body->data, cap);
    if (!grown)
        return -1;
    body->data = grown;
    body->cap = cap;
    return 0;
}

//  Returns 0 after appending len bytes at data to body, -1 when out of
//  memory.
static inline int s_body_append(s_body_t *body, const void *data, size_t len)
{
    if (len > body->cap - body->size && s_body_grow(body, len) != 0)
        return -1;
    memcpy(body->data + body->size, data, len);
    body->size += len;
    return 0;
}

//  s_pk_str, s_pk_map, s_pk_int64 ...: msgpack_pack_str, _map, _int64 ...
//  writing into an s_body_t. The template's timestamp packer calls
//  msgpack_pack_ext by name; it is pointed at this instance's s_pk_ext.
#define msgpack_pack_inline_func(name) static inline __attribute__((always_inline)) int s_pk##name
#define msgpack_pack_user s_body_t *
#define msgpack_pack_append_buffer(user, buf, len) return s_body_append(user, buf, len)
#define msgpack_pack_ext s_pk_ext
#include <msgpack/pack_template.h>
#undef msgpack_pack_ext

//  The constant runs of a notification body. msgpack-c packs each of them
//  once per encoder; a notification then appends them as bytes, so that a
//  body costs one buffer write per run instead of two per key and value.
enum {
    S_FR_HEAD,                         //  + event - CREATE: {6 keys, "priority": "INFO",
                                       //  "event_type": <event>, then the key "timestamp"
    S_FR_PUBLISHER_ID = S_FR_HEAD + 3, //  The key "publisher_id"
    S_FR_MESSAGE_ID,                   //  The key "message_id"
    S_FR_PAYLOAD,                      //  "payload": {4 keys, name, namespace, version, then
                                       //  "nova_object.data": and its map header
    S_FR_PAYLOAD_DELETE,               //  The same for ComputeNodeDeletePayload
    S_FR_FIELD,                        //  + f: the key of field f
    S_FR_COUNT = S_FR_FIELD + HVN_F_COUNT
};

struct _hvn_encoder_t {
    s_body_t body;                   //  Body, reused: emptied, never freed, between messages
    s_body_t runs;                   //  The constant runs, back to back
    uint32_t run_at[S_FR_COUNT + 1]; //  Run i is runs.data[run_at[i] .. run_at[i + 1])
};

//  Returns the packer's status (0 = ok) after packing len bytes as a str.
static inline int s_pack_mem(s_body_t *pk, const char *s, size_t len)
{
    int rc = s_pk_str(pk, len);
    return rc | s_pk_str_body(pk, s, len);
}

//  Returns the packer's status (0 = ok) after packing a C string.
static int s_pack_cstr(s_body_t *pk, const char *s)
{
    return s_pack_mem(pk, s, strlen(s));
}

//  Returns the packer's status after packing a string literal.
#define S_PACK_LIT(pk, lit) s_pack_mem(pk, lit, sizeof(lit) - 1)

//  Returns the packer's status after packing the payload map's constant
//  part: its header, name, namespace, version and the data map's header.
static int s_pack_payload_head(s_body_t *pk, bool is_delete)
{
    size_t count = 0;
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (!is_delete || hvn_schema_fields[f].in_delete)
            count++;
    int rc = s_pack_cstr(pk, "payload");
    rc |= s_pk_map(pk, 4);
    rc |= s_pack_cstr(pk, "nova_object.name");
    rc |= s_pack_cstr(pk, is_delete ? HVN_DELETE_PAYLOAD_NAME : HVN_PAYLOAD_NAME);
    rc |= s_pack_cstr(pk, "nova_object.namespace");
    rc |= s_pack_cstr(pk, HVN_PAYLOAD_NAMESPACE);
    rc |= s_pack_cstr(pk, "nova_object.version");
    rc |= s_pack_cstr(pk, is_delete ? S_DELETE_VERSION : S_PAYLOAD_VERSION);
    rc |= s_pack_cstr(pk, "nova_object.data");
    return rc | s_pk_map(pk, count);
}

//  Returns 0 with every constant run packed into self->runs, -1 when out of
//  memory.
static int s_runs_pack(hvn_encoder_t *self)
{
    s_body_t *pk = &self->runs;
    int rc = 0;
    for (int i = 0; i < S_FR_COUNT; i++) {
        self->run_at[i] = (uint32_t)pk->size;
        if (i < S_FR_PUBLISHER_ID) {
            rc |= s_pk_map(pk, 6);
            rc |= s_pack_cstr(pk, "priority");
            rc |= s_pack_cstr(pk, S_PRIORITY);
            rc |= s_pack_cstr(pk, "event_type");
            rc |= s_pack_cstr(pk, hvn_event_name((hvn_event_t)(HVN_EVENT_CREATE + i)));
            rc |= s_pack_cstr(pk, "timestamp");
        } else if (i == S_FR_PUBLISHER_ID)
            rc |= s_pack_cstr(pk, "publisher_id");
        else if (i == S_FR_MESSAGE_ID)
            rc |= s_pack_cstr(pk, "message_id");
        else if (i == S_FR_PAYLOAD || i == S_FR_PAYLOAD_DELETE)
            rc |= s_pack_payload_head(pk, i == S_FR_PAYLOAD_DELETE);
        else
            rc |= s_pack_cstr(pk, hvn_schema_fields[i - S_FR_FIELD].name);
    }
    self->run_at[S_FR_COUNT] = (uint32_t)pk->size;
    return rc == 0 ? 0 : -1;
}

//  Returns the buffer's status (0 = ok) after appending constant run i. A
//  short run (every key) is copied as S_RUN_SHORT bytes, a constant size
//  the compiler copies inline, when the body has that much room: the runs
//  buffer has as many bytes after its last run.
static inline int s_pack_run(hvn_encoder_t *self, int i)
{
    s_body_t *body = &self->body;
    const char *run = self->runs.data + self->run_at[i];
    size_t len = self->run_at[i + 1] - self->run_at[i];
    if (len <= S_RUN_SHORT && body->cap - body->size >= S_RUN_SHORT) {
        memcpy(body->data + body->size, run, S_RUN_SHORT);
        body->size += len;
        return 0;
    }
    return s_body_append(body, run, len);
}

//  Returns a new encoder, or NULL when out of memory.
hvn_encoder_t *hvn_encoder_new(void)
{
    hvn_encoder_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    if (s_body_grow(&self->body, S_BODY_INIT) != 0 || s_body_grow(&self->runs, S_BODY_INIT) != 0 ||
        s_runs_pack(self) != 0 || s_body_grow(&self->runs, S_RUN_SHORT) != 0)
        hvn_encoder_destroy(&self);
    return self;
}

//  Returns nothing; frees the encoder and nulls *self_p. NULL-safe.
void hvn_encoder_destroy(hvn_encoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->body.data);
    free((*self_p)->runs.data);
    free(*self_p);
    *self_p = NULL;
}

//  Returns the length of name when it is a usable host or broker name:
//  1..HVN_STR_MAX bytes of UTF-8 without '@' or a control character; 0
//  otherwise.
static size_t s_name_len(const char *name)
{
    if (!name)
        return 0;
    size_t len = strnlen(name, HVN_STR_MAX + 1);
    if (len < 1 || len > HVN_STR_MAX || memchr(name, '@', len) || !hvn_utf8_valid(name, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7F)
            return 0;
    return len;
}

//  Returns 0 with the topic "<event>@<host>" in out, or -1 when too long.
static int s_topic_build(hvn_frames_t *out, const char *event_name, const char *host, size_t hlen)
{
    size_t elen = strlen(event_name);
    if (elen + 1 + hlen > HVN_TOPIC_MAX)
        return -1;
    memcpy(out->topic, event_name, elen);
    out->topic[elen] = '@';
    memcpy(out->topic + elen + 1, host, hlen);
    out->topic[elen + 1 + hlen] = '\0';
    out->topic_size = elen + 1 + hlen;
    return 0;
}

//  What an envelope gives a message, once checked
typedef struct {
    const char *service;            //  env->service or the default
    size_t service_len;             //  Its length
    size_t host_len;                //  strlen(env->host)
    char ts[HVN_TIMESTAMP_LEN + 1]; //  The timestamp to send
} s_env_t;

//  Returns 0 when env is usable for a message, with e filled; -1 otherwise.
static int s_envelope_check(const hvn_envelope_t *env, s_env_t *e)
{
    if (!env || (e->host_len = s_name_len(env->host)) == 0)
        return -1;
    e->service = env->service ? env->service : HVN_DEFAULT_SERVICE;
    size_t slen = strnlen(e->service, HVN_STR_MAX + 1);
    if (slen == 0 || memchr(e->service, ':', slen) || !hvn_utf8_valid(e->service, slen) ||
        slen + 1 + e->host_len > HVN_STR_MAX)
        return -1;
    e->service_len = slen;
    if (env->timestamp) {
        size_t tlen = strnlen(env->timestamp, HVN_TIMESTAMP_LEN + 1);
        if (!hvni_timestamp_valid(env->timestamp, tlen))
            return -1;
        memcpy(e->ts, env->timestamp, HVN_TIMESTAMP_LEN + 1);
    } else
        hvn_timestamp_now(e->ts);
    if (env->message_id &&
        !s_uuid_valid(env->message_id, strnlen(env->message_id, HVN_UUID_STR_LEN + 1), NULL))
        return -1;
    return 0;
}

//  Returns the packer's status after packing "<service>:<host>".
static int s_pack_publisher_id(s_body_t *pk, const s_env_t *e, const char *host)
{
    int rc = s_pk_str(pk, e->service_len + 1 + e->host_len);
    rc |= s_pk_str_body(pk, e->service, e->service_len);
    rc |= s_pk_str_body(pk, ":", 1);
    return rc | s_pk_str_body(pk, host, e->host_len);
}

//  Returns the packer's status after packing nova_object.data's keys and
//  values for node (its map header is part of the payload's run), or -1
//  when a value is not what hvn_node_validate accepts: the node is checked
//  as it is packed, each string measured once.
static int s_pack_data(hvn_encoder_t *self, const hvn_node_t *node, bool delete_payload)
{
    s_body_t *pk = &self->body;
    int rc = 0;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (delete_payload && !field->in_delete)
            continue;
        rc |= s_pack_run(self, S_FR_FIELD + f);
        const char *value = (const char *)node + field->offset;
        if (node->nulls & (1u << f)) {
            if (!field->nullable)
                return -1;
            rc |= s_pk_nil(pk);
        } else if (field->type == HVN_TYPE_INT)
            rc |= s_pk_int64(pk, *(const int64_t *)value);
        else {
            //  UUID and IP texts pass their own check only as ASCII
            //  without NUL, so only free text needs the UTF-8 check
            size_t len = strnlen(value, field->size);
            if (len == field->size ||
                !(field->type == HVN_TYPE_STR ? hvn_utf8_valid(value, len)
                                              : hvn_field_text_valid(f, value, len)))
                return -1;
            rc |= s_pack_mem(pk, value, len);
        }
    }
    return rc;
}

//  Returns 0 with out->body pointing at the encoder's buffer, or -1 when
//  packing failed (out of memory, or an invalid node).
static int s_finish(hvn_encoder_t *self, int rc, const hvn_header_t *header, uint8_t kind,
                    hvn_frames_t *out)
{
    if (rc != 0)
        return -1;
    hvn_header_t h = *header;
    h.version = HVN_WIRE_VERSION;
    h.kind = kind;
    hvn_header_pack(&h, out->header);
    out->body = (const uint8_t *)self->body.data;
    out->body_size = self->body.size;
    return 0;
}

//  Returns 0 with the notification's frames in out, or -1 when the event,
//  kind (must be notification or sync), envelope or node is invalid. A
//  delete sends, and so checks, only id and uuid.
int hvn_encoder_notification(hvn_encoder_t *self, hvn_event_t event, const hvn_envelope_t *env,
                             const hvn_node_t *node, const hvn_header_t *header, hvn_frames_t *out)
{
    assert(self && node && header && out);
    s_env_t e;
    char message_id[HVN_UUID_STR_LEN + 1];
    if (!hvni_is_notification(event) || s_envelope_check(env, &e) != 0)
        return -1;
    if (header->kind != HVN_KIND_NOTIFICATION && header->kind != HVN_KIND_SYNC)
        return -1;
    bool is_delete = event == HVN_EVENT_DELETE;
    if (s_topic_build(out, hvn_event_name(event), env->host, e.host_len) != 0)
        return -1;
    if (env->message_id)
        memcpy(message_id, env->message_id, sizeof(message_id));
    else
        hvn_uuid4_str(message_id);

    s_body_t *pk = &self->body;
    pk->size = 0;
    int rc = s_pack_run(self, S_FR_HEAD + (event - HVN_EVENT_CREATE));
    rc |= s_pack_mem(pk, e.ts, HVN_TIMESTAMP_LEN);
    rc |= s_pack_run(self, S_FR_PUBLISHER_ID);
    rc |= s_pack_publisher_id(pk, &e, env->host);
    rc |= s_pack_run(self, S_FR_MESSAGE_ID);
    rc |= s_pack_mem(pk, message_id, HVN_UUID_STR_LEN);
    rc |= s_pack_run(self, is_delete ? S_FR_PAYLOAD_DELETE : S_FR_PAYLOAD);
    rc |= s_pack_data(self, node, is_delete);
    return s_finish(self, rc, header, header->kind, out);
}

//  Returns 0 with a publisher heartbeat's frames in out (kind is always
//  heartbeat, whatever header->kind says), or -1 on invalid input.
int hvn_encoder_heartbeat(hvn_encoder_t *self, const hvn_envelope_t *env, int64_t interval_ms,
                          const char *const *uuids, size_t count, const hvn_header_t *header,
                          hvn_frames_t *out)
{
    assert(self && header && out);
    s_env_t e;
    if (interval_ms < 0 || (count > 0 && !uuids) || s_envelope_check(env, &e) != 0)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (!uuids[i] || !s_uuid_valid(uuids[i], strnlen(uuids[i], HVN_UUID_STR_LEN + 1), NULL))
            return -1;
    if (s_topic_build(out, HVN_EVENT_HEARTBEAT_NAME, env->host, e.host_len) != 0)
        return -1;

    s_body_t *pk = &self->body;
    pk->size = 0;
    int rc = s_pk_map(pk, 4);
    rc |= S_PACK_LIT(pk, "publisher_id");
    rc |= s_pack_publisher_id(pk, &e, env->host);
    rc |= S_PACK_LIT(pk, "timestamp");
    rc |= s_pack_mem(pk, e.ts, HVN_TIMESTAMP_LEN);
    rc |= S_PACK_LIT(pk, "interval_ms");
    rc |= s_pk_int64(pk, interval_ms);
    rc |= S_PACK_LIT(pk, "nodes");
    rc |= s_pk_array(pk, count);
    for (size_t i = 0; i < count; i++)
        rc |= s_pack_mem(pk, uuids[i], HVN_UUID_STR_LEN);
    return s_finish(self, rc, header, HVN_KIND_HEARTBEAT, out);
}

//  Returns 0 with a broker heartbeat's frames in out (kind heartbeat), or
//  -1 on invalid input.
int hvn_encoder_broker_heartbeat(hvn_encoder_t *self, const char *name, const char *broker_id,
                                 int64_t interval_ms, const hvn_header_t *header, hvn_frames_t *out)
{
    assert(self && header && out);
    char ts[HVN_TIMESTAMP_LEN + 1];
    size_t nlen = s_name_len(name);
    if (interval_ms < 0 || nlen == 0 || !broker_id)
        return -1;
    size_t blen = strnlen(broker_id, HVN_STR_MAX + 1);
    if (blen == 0 || blen > HVN_STR_MAX || !hvn_utf8_valid(broker_id, blen))
        return -1;
    if (s_topic_build(out, HVN_EVENT_BROKER_NAME, name, nlen) != 0)
        return -1;
    hvn_timestamp_now(ts);

    s_body_t *pk = &self->body;
    pk->size = 0;
    int rc = s_pk_map(pk, 3);
    rc |= S_PACK_LIT(pk, "broker_id");
    rc |= s_pack_mem(pk, broker_id, blen);
    rc |= S_PACK_LIT(pk, "timestamp");
    rc |= s_pack_mem(pk, ts, HVN_TIMESTAMP_LEN);
    rc |= S_PACK_LIT(pk, "interval_ms");
    rc |= s_pk_int64(pk, interval_ms);
    return s_finish(self, rc, header, HVN_KIND_HEARTBEAT, out);
}
