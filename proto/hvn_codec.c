/*  hvn_codec.c — the HVN/1 message: three frames, encoded and decoded.

    The encoder packs into one reused buffer, with msgpack-c's own packer
    (pack_template.h) writing into it inline, so a warm encoder does not
    allocate. The decoder runs msgpack-c's own parser (the
    unpack_template.h msgpack_unpack() is built from) with callbacks that
    write one flat token per object into an array it keeps, instead of a
    tree of msgpack_objects in a zone, then walks only the depth it knows
    (envelope, payload, data), checking every object's type before reading
    it and bounding every string by its destination. Both walk
    hvn_schema_fields[] for the payload fields.

    A token is written per object the parser has read, never per element a
    container's header claims, so six hostile bytes cannot make the decoder
    allocate: it holds at most one token per body byte. msgpack_unpack(),
    which allocates a whole array or map as soon as it reads its header,
    decodes only END bodies here, behind hvn_msgpack_bounded(), which checks
    without recursion that every container's count fits in the bytes that
    remain.
*/
#include "hvn_codec.h"
#include "hvn_ids.h"

#include <assert.h>
#include <endian.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)
#define S_PAYLOAD_VERSION S_STR(HVN_PAYLOAD_MAJOR) "." S_STR(HVN_PAYLOAD_MINOR)
#define S_DELETE_VERSION S_STR(HVN_DELETE_PAYLOAD_MAJOR) "." S_STR(HVN_DELETE_PAYLOAD_MINOR)
#define S_PRIORITY "INFO"
#define S_TOKENS_INIT 256   //  Decoder tokens; a notification takes about 60
#define S_TOKENS_KEEP 16384 //  Tokens kept between decodes (a 10 000-node heartbeat)
#define S_DETAIL_MAX 96     //  Longest detail path
#define S_DATA_PATH "payload.nova_object.data."

//  Returns the eight bytes at p as a word.
static inline uint64_t s_word(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

//  Returns true when the n bytes at a and b are the same: memcmp() == 0 for
//  the short keys and names a body is made of, inline instead of a call,
//  reading no byte outside either run.
static inline bool s_same(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        //  The last word, then those before it (the first three without a
        //  loop: a body's keys and names are up to 24 bytes), differences
        //  gathered in one word
        uint64_t diff = s_word(a + n - 8) ^ s_word(b + n - 8);
        if (n > 8)
            diff |= s_word(a) ^ s_word(b);
        if (n > 16)
            diff |= s_word(a + 8) ^ s_word(b + 8);
        for (size_t i = 16; i + 8 < n; i += 8)
            diff |= s_word(a + i) ^ s_word(b + i);
        return diff == 0;
    }
    if (n >= 4) {
        uint32_t x, y, u, v;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return x == y && u == v;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

// --------------------------------------------------------------------------
//  Names

static const char *const s_reason_names[HVN_R_COUNT] = {
    [HVN_OK] = "ok",
    [HVN_R_FRAMES] = "frames",
    [HVN_R_TOPIC] = "topic",
    [HVN_R_HEADER_SIZE] = "header_size",
    [HVN_R_HEADER_VERSION] = "header_version",
    [HVN_R_HEADER_KIND] = "header_kind",
    [HVN_R_TOO_BIG] = "too_big",
    [HVN_R_MSGPACK] = "msgpack",
    [HVN_R_NOT_MAP] = "not_map",
    [HVN_R_MISSING_KEY] = "missing_key",
    [HVN_R_WRONG_TYPE] = "wrong_type",
    [HVN_R_BAD_VALUE] = "bad_value",
    [HVN_R_UNKNOWN_EVENT] = "unknown_event",
    [HVN_R_PAYLOAD_VERSION] = "payload_version",
    [HVN_R_TOPIC_MISMATCH] = "topic_mismatch",
    [HVN_R_NOT_AUTHORIZED] = "not_authorized",
    [HVN_R_OVER_LIMIT] = "over_limit",
    [HVN_R_STALE] = "stale",
};

//  Returns the snake_case name of reason, or "unknown" when out of range.
const char *hvn_reason_str(hvn_reason_t reason)
{
    if ((int)reason < 0 || reason >= HVN_R_COUNT || !s_reason_names[reason])
        return "unknown";
    return s_reason_names[reason];
}

static const char *const s_event_names[] = {
    [HVN_EVENT_NONE] = NULL,
    [HVN_EVENT_CREATE] = HVN_EVENT_CREATE_NAME,
    [HVN_EVENT_UPDATE] = HVN_EVENT_UPDATE_NAME,
    [HVN_EVENT_DELETE] = HVN_EVENT_DELETE_NAME,
    [HVN_EVENT_HEARTBEAT] = HVN_EVENT_HEARTBEAT_NAME,
    [HVN_EVENT_BROKER] = HVN_EVENT_BROKER_NAME,
};
#define S_EVENT_COUNT (sizeof(s_event_names) / sizeof(s_event_names[0]))
#define S_LEN(lit) (sizeof(lit) - 1)
static const size_t s_event_lens[S_EVENT_COUNT] = {
    [HVN_EVENT_CREATE] = S_LEN(HVN_EVENT_CREATE_NAME),
    [HVN_EVENT_UPDATE] = S_LEN(HVN_EVENT_UPDATE_NAME),
    [HVN_EVENT_DELETE] = S_LEN(HVN_EVENT_DELETE_NAME),
    [HVN_EVENT_HEARTBEAT] = S_LEN(HVN_EVENT_HEARTBEAT_NAME),
    [HVN_EVENT_BROKER] = S_LEN(HVN_EVENT_BROKER_NAME),
};

//  Returns the event type name, or NULL for HVN_EVENT_NONE or out of range.
const char *hvn_event_name(hvn_event_t event)
{
    if ((unsigned)event >= S_EVENT_COUNT)
        return NULL;
    return s_event_names[event];
}

//  Returns true for the three notification events.
static bool s_is_notification(hvn_event_t event)
{
    return event == HVN_EVENT_CREATE || event == HVN_EVENT_UPDATE || event == HVN_EVENT_DELETE;
}

// --------------------------------------------------------------------------
//  Header and topic

//  Returns nothing; out holds the header's 26 wire bytes.
void hvn_header_pack(const hvn_header_t *header, uint8_t out[HVN_HEADER_SIZE])
{
    uint64_t seq = htobe64(header->seq);
    out[0] = header->version;
    out[1] = header->kind;
    memcpy(out + 2, &seq, 8);
    memcpy(out + 10, header->instance, 16);
}

//  Returns HVN_OK with *out filled, or HVN_R_HEADER_SIZE/_VERSION/_KIND.
hvn_reason_t hvn_header_unpack(const void *data, size_t size, hvn_header_t *out)
{
    const uint8_t *bytes = data;
    if (size != HVN_HEADER_SIZE || !data)
        return HVN_R_HEADER_SIZE;
    if (bytes[0] != HVN_WIRE_VERSION)
        return HVN_R_HEADER_VERSION;
    if (bytes[1] < HVN_KIND_NOTIFICATION || bytes[1] > HVN_KIND_SYNC)
        return HVN_R_HEADER_KIND;
    uint64_t seq;
    memcpy(&seq, bytes + 2, 8);
    out->version = bytes[0];
    out->kind = bytes[1];
    out->seq = be64toh(seq);
    memcpy(out->instance, bytes + 10, 16);
    return HVN_OK;
}

//  Returns the event whose name is len bytes at name, or HVN_EVENT_NONE.
static hvn_event_t s_event_find(const char *name, size_t len)
{
    for (size_t e = 1; e < S_EVENT_COUNT; e++)
        if (s_event_lens[e] == len && s_same(s_event_names[e], name, len))
            return (hvn_event_t)e;
    return HVN_EVENT_NONE;
}

//  Returns HVN_OK (an unknown event gives *event = HVN_EVENT_NONE) or
//  HVN_R_TOPIC when the topic is not "<event>@<host>" in 1..255 bytes of
//  UTF-8 with exactly one '@' and no NUL.
hvn_reason_t hvn_topic_parse(const void *topic, size_t size, hvn_event_t *event,
                             char host_out[HVN_TOPIC_MAX + 1])
{
    const char *text = topic;
    if (!topic || size == 0 || size > HVN_TOPIC_MAX || !hvn_utf8_valid(text, size))
        return HVN_R_TOPIC;
    const char *at = memchr(text, '@', size);
    if (!at || at == text || at == text + size - 1)
        return HVN_R_TOPIC;
    size_t event_len = (size_t)(at - text);
    size_t host_len = size - event_len - 1;
    if (memchr(at + 1, '@', host_len))
        return HVN_R_TOPIC;
    if (event)
        *event = s_event_find(text, event_len);
    if (host_out) {
        memcpy(host_out, at + 1, host_len);
        host_out[host_len] = '\0';
    }
    return HVN_OK;
}

//  Returns true when len bytes at s are "YYYY-MM-DD HH:MM:SS.ffffff" with
//  plausible ranges.
static bool s_timestamp_valid(const char *s, size_t len)
{
    //  The bytes of four words (0-7, 8-15, 16-23, 18-25) that are digits
    static const uint64_t digit_at[4] = {0x00FFFF00FFFFFFFFULL, 0xFFFF00FFFF00FFFFULL,
                                         0xFFFFFFFF00FFFF00ULL, 0xFFFFFFFFFFFF00FFULL};
    static const uint8_t word_at[4] = {0, 8, 16, 18};
    if (len != HVN_TIMESTAMP_LEN || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.')
        return false;
    //  Eight bytes at a time: a byte below 0x80 is a digit when adding
    //  0x80 - '0' sets its top bit and adding 0x7F - '9' does not (no carry
    //  leaves a byte once the top bits are cleared)
    const uint64_t top = 0x8080808080808080ULL;
    uint64_t bad = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, s + word_at[i], 8);
        w = le64toh(w);
        uint64_t low = w & ~top;
        uint64_t digit = (low + 0x5050505050505050ULL) & ~(low + 0x4646464646464646ULL);
        bad |= (w | ~digit) & top & digit_at[i];
    }
    if (bad)
        return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0');
    int minute = (s[14] - '0') * 10 + (s[15] - '0');
    int second = (s[17] - '0') * 10 + (s[18] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 &&
           second <= 60;
}

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
//  1..HVN_STR_MAX bytes of UTF-8 without '@'; 0 otherwise.
static size_t s_name_len(const char *name)
{
    if (!name)
        return 0;
    size_t len = strnlen(name, HVN_STR_MAX + 1);
    if (len < 1 || len > HVN_STR_MAX || memchr(name, '@', len) || !hvn_utf8_valid(name, len))
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
        if (!s_timestamp_valid(env->timestamp, tlen))
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
    if (!s_is_notification(event) || s_envelope_check(env, &e) != 0)
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

// --------------------------------------------------------------------------
//  Decoder

//  One msgpack object of a body, as msgpack-c's own parser (its
//  unpack_template.h) reports it: the body becomes an array of these in
//  document order, a container followed by its elements, instead of a tree
//  of msgpack_objects in a zone.
typedef struct {
    msgpack_object_type type; //  As msgpack_unpack would type the object
    uint32_t size;            //  str: bytes; array: elements; map: pairs
    uint32_t span;            //  Tokens this object and its elements take
    union {
        const char *ptr; //  str: its bytes, in the body
        uint64_t u64;    //  POSITIVE_INTEGER
        int64_t i64;     //  NEGATIVE_INTEGER
    };
} s_tok_t;

//  Returns the token after t and all its elements.
static inline const s_tok_t *s_tok_next(const s_tok_t *t)
{
    return t + t->span;
}

//  What the parser's callbacks fill: the decoder's token array
typedef struct {
    s_tok_t *tok;   //  Grown (doubling) when a body has more objects
    uint32_t count; //  Tokens written by this parse
    uint32_t cap;   //  Tokens allocated
} s_tokens_t;

struct _hvn_decoder_t {
    size_t max_size;               //  Largest body accepted, bytes
    s_tokens_t tokens;             //  The last body's objects; kept between decodes
    char detail[S_DETAIL_MAX];     //  Where the last refusal was found
    uint8_t (*nodes)[16];          //  Publisher heartbeat uuids, grown on demand
    size_t nodes_cap;              //  Entries allocated in nodes
    uint8_t name_len[HVN_F_COUNT]; //  strlen of each schema field's name
    uint8_t order[HVN_F_COUNT];    //  The payload's fields, in table order
    uint8_t delete_order[HVN_F_COUNT]; //  The delete payload's, in table order
    uint32_t delete_count;             //  Fields in delete_order
    uint32_t delete_mask;              //  Bit per field in delete_order
    size_t host_len;                   //  Bytes of the topic's host, this decode
};

//  Returns a new decoder with the default body limit, or NULL.
hvn_decoder_t *hvn_decoder_new(void)
{
    hvn_decoder_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->tokens.tok = malloc(S_TOKENS_INIT * sizeof(s_tok_t));
    if (!self->tokens.tok) {
        free(self);
        return NULL;
    }
    self->tokens.cap = S_TOKENS_INIT;
    self->max_size = HVN_MAX_MSG_SIZE;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        self->name_len[f] = (uint8_t)strlen(hvn_schema_fields[f].name);
        self->order[f] = (uint8_t)f;
        if (hvn_schema_fields[f].in_delete) {
            self->delete_order[self->delete_count++] = (uint8_t)f;
            self->delete_mask |= 1u << f;
        }
    }
    return self;
}

//  Returns nothing; frees the decoder and nulls *self_p. NULL-safe.
void hvn_decoder_destroy(hvn_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hvn_decoder_t *self = *self_p;
    free(self->tokens.tok);
    free(self->nodes);
    free(self);
    *self_p = NULL;
}

//  Returns nothing; bodies over max_size bytes are refused from now on.
void hvn_decoder_set_max_size(hvn_decoder_t *self, size_t max_size)
{
    assert(self);
    self->max_size = max_size;
}

//  Returns the path of what the last refusal found wrong ("" after HVN_OK).
const char *hvn_decoder_detail(const hvn_decoder_t *self)
{
    assert(self);
    return self->detail;
}

// --------------------------------------------------------------------------
//  msgpack-c's parser with callbacks that write tokens
//
//  msgpack-c builds msgpack_unpack() by instantiating its unpack_template.h
//  with callbacks that allocate msgpack_objects in a zone. The decoder
//  instantiates the same template with callbacks that append one s_tok_t
//  per object instead: the same parser, the same refusals (a parse error,
//  an incomplete body, over 32 nested containers, an ext of length 0), no
//  allocation once the token array is warm. An object is its token's index.

//  Returns the index of a new token of type t, or -1 when out of memory.
//  Unless checked, the array is known to have room (see s_tokenize).
static inline int64_t s_tok_add(s_tokens_t *u, msgpack_object_type t, bool checked)
{
    if (checked && u->count == u->cap) {
        if (u->cap > UINT32_MAX / 4)
            return -1;
        s_tok_t *grown = realloc(u->tok, 2 * (size_t)u->cap * sizeof(s_tok_t));
        if (!grown)
            return -1;
        u->tok = grown;
        u->cap *= 2;
    }
    s_tok_t *tok = &u->tok[u->count];
    tok->type = t;
    tok->size = 0;
    tok->span = 1;
    return u->count++;
}

//  Returns 0 with *o a new integer token (typed as msgpack-c types it), or
//  -1 when out of memory.
static inline int s_tok_int(s_tokens_t *u, int64_t d, uint32_t *o, bool checked)
{
    int64_t i = s_tok_add(
        u, d >= 0 ? MSGPACK_OBJECT_POSITIVE_INTEGER : MSGPACK_OBJECT_NEGATIVE_INTEGER, checked);
    if (i < 0)
        return -1;
    u->tok[i].i64 = d;
    *o = (uint32_t)i;
    return 0;
}

//  Returns 0 with *o a new token of type t and size n, or -1.
static inline int s_tok_sized(s_tokens_t *u, msgpack_object_type t, uint32_t n, uint32_t *o,
                              bool checked)
{
    int64_t i = s_tok_add(u, t, checked);
    if (i < 0)
        return -1;
    u->tok[i].size = n;
    *o = (uint32_t)i;
    return 0;
}

//  The callbacks unpack_template.h calls, one per kind of object, each as
//  msgpack-c's src/unpack.c types it (signed integers >= 0 are positive).
//  Each returns 0 with *o the object's new token, or < 0 to stop the parse.
//  A container's span is complete after its last element. msgpack-c
//  refuses an ext without its type byte (length 0) as a parse error.
//  Defined twice: P##_cb_* with CHECKED true grow the array when it is
//  full; with CHECKED false they do not look (the array has room).
// clang-format off
#define S_MP_CALLBACKS(P, CHECKED)                                                                 \
    static inline uint32_t P##_cb_root(s_tokens_t *u) { (void)u; return 0; }                       \
    static inline int P##_cb_uint8(s_tokens_t *u, uint8_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint16(s_tokens_t *u, uint16_t d, uint32_t *o)                        \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint32(s_tokens_t *u, uint32_t d, uint32_t *o)                        \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint64(s_tokens_t *u, uint64_t d, uint32_t *o)                        \
    {                                                                                              \
        if (s_tok_sized(u, MSGPACK_OBJECT_POSITIVE_INTEGER, 0, o, CHECKED) != 0)                   \
            return -1;                                                                             \
        u->tok[*o].u64 = d;                                                                        \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int P##_cb_int8(s_tokens_t *u, int8_t d, uint32_t *o)                            \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int16(s_tokens_t *u, int16_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int32(s_tokens_t *u, int32_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int64(s_tokens_t *u, int64_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_float(s_tokens_t *u, float d, uint32_t *o)                            \
    { (void)d; return s_tok_sized(u, MSGPACK_OBJECT_FLOAT32, 0, o, CHECKED); }                     \
    static inline int P##_cb_double(s_tokens_t *u, double d, uint32_t *o)                          \
    { (void)d; return s_tok_sized(u, MSGPACK_OBJECT_FLOAT64, 0, o, CHECKED); }                     \
    static inline int P##_cb_nil(s_tokens_t *u, uint32_t *o)                                       \
    { return s_tok_sized(u, MSGPACK_OBJECT_NIL, 0, o, CHECKED); }                                  \
    static inline int P##_cb_true(s_tokens_t *u, uint32_t *o)                                      \
    { return s_tok_sized(u, MSGPACK_OBJECT_BOOLEAN, 0, o, CHECKED); }                              \
    static inline int P##_cb_false(s_tokens_t *u, uint32_t *o)                                     \
    { return s_tok_sized(u, MSGPACK_OBJECT_BOOLEAN, 0, o, CHECKED); }                              \
    static inline int P##_cb_array(s_tokens_t *u, unsigned int n, uint32_t *o)                     \
    { return s_tok_sized(u, MSGPACK_OBJECT_ARRAY, n, o, CHECKED); }                                \
    static inline int P##_cb_array_item(s_tokens_t *u, uint32_t *c, uint32_t o)                    \
    { (void)o; u->tok[*c].span = u->count - *c; return 0; }                                        \
    static inline int P##_cb_map(s_tokens_t *u, unsigned int n, uint32_t *o)                       \
    { return s_tok_sized(u, MSGPACK_OBJECT_MAP, n, o, CHECKED); }                                  \
    static inline int P##_cb_map_item(s_tokens_t *u, uint32_t *c, uint32_t k, uint32_t v)          \
    { (void)k; (void)v; u->tok[*c].span = u->count - *c; return 0; }                               \
    static inline int P##_cb_str(s_tokens_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        if (s_tok_sized(u, MSGPACK_OBJECT_STR, l, o, CHECKED) != 0)                                \
            return -1;                                                                             \
        u->tok[*o].ptr = p;                                                                        \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int P##_cb_bin(s_tokens_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    { (void)b; (void)p; return s_tok_sized(u, MSGPACK_OBJECT_BIN, l, o, CHECKED); }                \
    static inline int P##_cb_ext(s_tokens_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        (void)p;                                                                                   \
        if (l == 0)                                                                                \
            return MSGPACK_UNPACK_PARSE_ERROR;                                                     \
        return s_tok_sized(u, MSGPACK_OBJECT_EXT, l - 1, o, CHECKED);                              \
    }
// clang-format on

S_MP_CALLBACKS(s_mp, true)
S_MP_CALLBACKS(s_mq, false)

//  s_mp_*: the parser for any body, growing the tokens as it goes
#define msgpack_unpack_struct(name) struct s_mp##name
#define msgpack_unpack_func(ret, name) static inline ret s_mp##name
#define msgpack_unpack_callback(name) s_mp_cb##name
#define msgpack_unpack_object uint32_t
#define msgpack_unpack_user s_tokens_t
#include <msgpack/unpack_define.h>
#include <msgpack/unpack_template.h>

//  s_mq_*: the same parser for a body of no more bytes than the array has
//  tokens (every msgpack object takes at least one byte)
#define msgpack_unpack_struct(name) struct s_mq##name
#define msgpack_unpack_func(ret, name) static inline ret s_mq##name
#define msgpack_unpack_callback(name) s_mq_cb##name
#define msgpack_unpack_object uint32_t
#define msgpack_unpack_user s_tokens_t
#include <msgpack/unpack_template.h>

//  Returns the body's root token, or NULL when msgpack_unpack() would not
//  return MSGPACK_UNPACK_SUCCESS for it (not valid msgpack, incomplete,
//  bytes after the object, out of memory). Tokens stay valid until the
//  next decode.
static const s_tok_t *s_tokenize(hvn_decoder_t *self, const void *body, size_t size)
{
    if (self->tokens.cap > S_TOKENS_KEEP) { //  Give back what one large body took
        s_tok_t *fewer = realloc(self->tokens.tok, S_TOKENS_INIT * sizeof(s_tok_t));
        if (fewer) {
            self->tokens.tok = fewer;
            self->tokens.cap = S_TOKENS_INIT;
        }
    }
    //  A body of up to S_TOKENS_KEEP bytes gets a token per byte (kept), so
    //  that the parser need not check for room at every object
    if (size > self->tokens.cap && size <= S_TOKENS_KEEP) {
        uint32_t cap = self->tokens.cap;
        while (cap < size)
            cap *= 2;
        s_tok_t *grown = realloc(self->tokens.tok, cap * sizeof(s_tok_t));
        if (grown) {
            self->tokens.tok = grown;
            self->tokens.cap = cap;
        }
    }
    size_t offset = 0;
    int rc;
    if (size <= self->tokens.cap) {
        struct s_mq_context ctx;
        s_mq_init(&ctx);
        ctx.user = self->tokens;
        ctx.user.count = 0;
        rc = s_mq_execute(&ctx, body, size, &offset);
        self->tokens = ctx.user;
    } else {
        struct s_mp_context ctx;
        s_mp_init(&ctx);
        ctx.user = self->tokens;
        ctx.user.count = 0;
        rc = s_mp_execute(&ctx, body, size, &offset);
        self->tokens = ctx.user;
    }
    if (rc != 1 || offset != size)
        return NULL;
    return self->tokens.tok;
}

//  Returns reason, after recording prefix+name as the refusal's detail.
//  Out of line and marked cold: the checks that call it stay compact.
static __attribute__((cold, noinline)) hvn_reason_t s_fail(hvn_decoder_t *self, hvn_reason_t reason,
                                                           const char *prefix, const char *name)
{
    snprintf(self->detail, sizeof(self->detail), "%s%s", prefix, name ? name : "");
    return reason;
}

//  Returns the big-endian unsigned integer of n bytes at p.
static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | p[i];
    return value;
}

//  Returns true when the first msgpack object in data is complete and no
//  array or map in it claims more elements than bytes remain (each element
//  takes at least one byte), and, unless allow_trailing, nothing follows it.
//  Walks without recursion: `pending` counts the objects still to read.
bool hvn_msgpack_bounded(const void *bytes, size_t size, bool allow_trailing)
{
    const uint8_t *data = bytes;
    if (!data)
        return false;
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= size)
            return false;
        uint8_t c = data[pos++];
        pending--;
        //  Fast paths for what a notification is mostly made of. A fixint
        //  takes one byte for one object, so the bound below still holds
        if (c <= 0x7F || c >= 0xE0)
            continue;
        if (c >= 0xA0 && c <= 0xBF) { //  fixstr
            size_t n = c & 0x1F;
            if (n > size - pos)
                return false;
            pos += n;
            if (pending > size - pos)
                return false;
            continue;
        }
        uint64_t skip = 0;     //  Payload bytes after the header
        uint64_t children = 0; //  Objects that follow as elements
        size_t len_bytes = 0;  //  Bytes of a length field
        if (c == 0xC0 || c == 0xC2 || c == 0xC3)
            ; //  nil, false, true
        else if (c <= 0x8F)
            children = 2 * (uint64_t)(c & 0x0F);
        else if (c <= 0x9F)
            children = c & 0x0F;
        else if (c <= 0xBF)
            skip = c & 0x1F;
        else {
            // clang-format off
            switch (c) {
            case 0xC4: case 0xD9: len_bytes = 1; break; //  bin8, str8
            case 0xC5: case 0xDA: len_bytes = 2; break; //  bin16, str16
            case 0xC6: case 0xDB: len_bytes = 4; break; //  bin32, str32
            case 0xC7: len_bytes = 1; skip = 1; break;  //  ext8: + type byte
            case 0xC8: len_bytes = 2; skip = 1; break;  //  ext16
            case 0xC9: len_bytes = 4; skip = 1; break;  //  ext32
            case 0xCA: case 0xCE: case 0xD2: skip = 4; break;
            case 0xCB: case 0xCF: case 0xD3: skip = 8; break;
            case 0xCC: case 0xD0: skip = 1; break;
            case 0xCD: case 0xD1: skip = 2; break;
            case 0xD4: skip = 2; break; //  fixext 1..16: type + data
            case 0xD5: skip = 3; break;
            case 0xD6: skip = 5; break;
            case 0xD7: skip = 9; break;
            case 0xD8: skip = 17; break;
            case 0xDC: case 0xDE: len_bytes = 2; break; //  array16, map16
            case 0xDD: case 0xDF: len_bytes = 4; break; //  array32, map32
            default: return false; //  0xC1, never used
            }
            // clang-format on
            if (len_bytes > size - pos)
                return false;
            uint64_t n = s_be(data + pos, len_bytes);
            pos += len_bytes;
            if (c == 0xDC || c == 0xDD)
                children = n;
            else if (c == 0xDE || c == 0xDF)
                children = 2 * n;
            else
                skip += n;
        }
        if (skip > size - pos)
            return false;
        pos += (size_t)skip;
        pending += children;
        if (pending > size - pos)
            return false;
    }
    return allow_trailing || pos == size;
}

//  A key the decoder looks for, and its length
typedef struct {
    const char *name; //  The key
    size_t len;       //  strlen(name)
} s_key_t;
#define S_KEY(lit)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

//  Keys of the body's top-level map (notifications and both heartbeats)
enum {
    S_K_PRIORITY,
    S_K_EVENT_TYPE,
    S_K_TIMESTAMP,
    S_K_PUBLISHER_ID,
    S_K_MESSAGE_ID,
    S_K_PAYLOAD,
    S_K_NODES,
    S_K_INTERVAL_MS,
    S_K_BROKER_ID,
    S_K_ROOT_COUNT
};
static const s_key_t s_root_keys[S_K_ROOT_COUNT] = {
    S_KEY("priority"),     S_KEY("event_type"),  S_KEY("timestamp"),
    S_KEY("publisher_id"), S_KEY("message_id"),  S_KEY("payload"),
    S_KEY("nodes"),        S_KEY("interval_ms"), S_KEY("broker_id"),
};

//  Keys of the payload map
enum { S_P_NAME, S_P_NAMESPACE, S_P_VERSION, S_P_DATA, S_P_COUNT };
static const s_key_t s_payload_keys[S_P_COUNT] = {
    S_KEY("nova_object.name"),
    S_KEY("nova_object.namespace"),
    S_KEY("nova_object.version"),
    S_KEY("nova_object.data"),
};

#define S_INDEX_MAX S_K_ROOT_COUNT //  Most keys one index looks for

//  Where a map's known keys are, found in one pass over the map
typedef struct {
    const s_key_t *keys;               //  The keys looked for
    const s_tok_t *value[S_INDEX_MAX]; //  Each key's value; NULL = absent
    uint32_t dup;                      //  Bit k: key k occurs more than once
} s_index_t;

//  Returns true when token key is the string keys[k].
static inline bool s_key_is(const s_tok_t *key, const s_key_t *keys, int k)
{
    return keys[k].len == key->size && s_same(keys[k].name, key->ptr, keys[k].len);
}

//  Returns nothing; idx holds where each of the count keys is in map. One
//  pass: each entry's key is compared with the key after the last one
//  found first (a writer like ours sends them in this order), then with
//  each key. Keys that are not strings or not known are ignored.
static void s_index_build(s_index_t *idx, const s_tok_t *map, const s_key_t *keys, int count)
{
    idx->keys = keys;
    idx->dup = 0;
    //  Keys in the table's order, each once (a writer like ours): no search
    const s_tok_t *key = map + 1;
    uint32_t n = map->size;
    if (n <= (uint32_t)count) {
        uint32_t i = 0;
        for (; i < n && key->type == MSGPACK_OBJECT_STR && s_key_is(key, keys, (int)i); i++) {
            idx->value[i] = key + 1;
            key = s_tok_next(key + 1);
        }
        if (i == n) {
            for (; i < (uint32_t)count; i++)
                idx->value[i] = NULL;
            return;
        }
        key = map + 1;
    }
    for (int k = 0; k < count; k++)
        idx->value[k] = NULL;
    int next = 0;
    for (uint32_t i = 0; i < map->size; i++, key = s_tok_next(s_tok_next(key))) {
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        int k = next;
        if (k >= count || !s_key_is(key, keys, k)) {
            for (k = 0; k < count && !s_key_is(key, keys, k); k++)
                ;
            if (k == count)
                continue;
        }
        if (idx->value[k])
            idx->dup |= 1u << k;
        idx->value[k] = s_tok_next(key);
        next = k + 1;
    }
}

//  Returns HVN_OK with *value set to key k's value, or HVN_R_MISSING_KEY /
//  HVN_R_BAD_VALUE (duplicate key), detail prefix+key.
static hvn_reason_t s_require(hvn_decoder_t *self, const s_index_t *idx, int k, const char *prefix,
                              const s_tok_t **value)
{
    if (idx->value[k] && !(idx->dup & (1u << k))) {
        *value = idx->value[k];
        return HVN_OK;
    }
    return s_fail(self, idx->value[k] ? HVN_R_BAD_VALUE : HVN_R_MISSING_KEY, prefix,
                  idx->keys[k].name);
}

//  Returns HVN_OK with the string copied (NUL-terminated) into dest, or
//  HVN_R_WRONG_TYPE (not a str) or HVN_R_BAD_VALUE (does not fit, holds a
//  NUL or is not UTF-8). Detail is prefix+name.
static hvn_reason_t s_copy_str(hvn_decoder_t *self, const s_tok_t *obj, char *dest,
                               size_t dest_size, const char *prefix, const char *name)
{
    if (obj->type != MSGPACK_OBJECT_STR)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, name);
    size_t len = obj->size;
    if (len >= dest_size || !hvn_utf8_valid(obj->ptr, len))
        return s_fail(self, HVN_R_BAD_VALUE, prefix, name);
    memcpy(dest, obj->ptr, len);
    dest[len] = '\0';
    return HVN_OK;
}

//  Returns what s_copy_str returns, without checking UTF-8: for a value
//  whose own check follows and admits only ASCII digits, hex digits and
//  punctuation (a timestamp, a UUID), so that a NUL or any byte over 0x7F
//  is refused there, as the same HVN_R_BAD_VALUE with the same detail.
static hvn_reason_t s_copy_ascii(hvn_decoder_t *self, const s_tok_t *obj, char *dest,
                                 size_t dest_size, const char *prefix, const char *name)
{
    if (obj->type != MSGPACK_OBJECT_STR)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, name);
    size_t len = obj->size;
    if (len >= dest_size)
        return s_fail(self, HVN_R_BAD_VALUE, prefix, name);
    memcpy(dest, obj->ptr, len);
    dest[len] = '\0';
    return HVN_OK;
}

//  Returns HVN_OK with *value, or HVN_R_WRONG_TYPE (not an int) or
//  HVN_R_BAD_VALUE (above INT64_MAX). Detail is prefix+name.
static hvn_reason_t s_get_int(hvn_decoder_t *self, const s_tok_t *obj, int64_t *value,
                              const char *prefix, const char *name)
{
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *value = obj->i64;
        return HVN_OK;
    }
    if (obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, name);
    if (obj->u64 > (uint64_t)INT64_MAX)
        return s_fail(self, HVN_R_BAD_VALUE, prefix, name);
    *value = (int64_t)obj->u64;
    return HVN_OK;
}

//  Returns HVN_OK when key k is the string `expected` (len bytes), else the
//  reason (missing, wrong type, or `mismatch` when a string of another
//  value).
static hvn_reason_t s_expect_str(hvn_decoder_t *self, const s_index_t *idx, int k,
                                 const char *prefix, const char *expected, size_t len,
                                 hvn_reason_t mismatch)
{
    const s_tok_t *value = NULL;
    const char *key = idx->keys[k].name;
    hvn_reason_t rc = s_require(self, idx, k, prefix, &value);
    if (rc != HVN_OK)
        return rc;
    if (value->type != MSGPACK_OBJECT_STR)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, key);
    if (value->size != len || !s_same(value->ptr, expected, len))
        return s_fail(self, mismatch, prefix, key);
    return HVN_OK;
}

//  Returns HVN_OK with out->timestamp filled from map["timestamp"].
static hvn_reason_t s_read_timestamp(hvn_decoder_t *self, const s_index_t *idx, hvn_msg_t *out)
{
    const s_tok_t *value = NULL;
    hvn_reason_t rc = s_require(self, idx, S_K_TIMESTAMP, "", &value);
    if (rc == HVN_OK)
        rc = s_copy_ascii(self, value, out->timestamp, sizeof(out->timestamp), "", "timestamp");
    if (rc == HVN_OK && !s_timestamp_valid(out->timestamp, value->size))
        rc = s_fail(self, HVN_R_BAD_VALUE, "", "timestamp");
    return rc;
}

//  Returns HVN_OK with out->publisher_id filled from map["publisher_id"],
//  whose host part (after the first ':') must be the topic's host.
static hvn_reason_t s_read_publisher_id(hvn_decoder_t *self, const s_index_t *idx, hvn_msg_t *out)
{
    const s_tok_t *value = NULL;
    hvn_reason_t rc = s_require(self, idx, S_K_PUBLISHER_ID, "", &value);
    if (rc == HVN_OK)
        rc = s_copy_str(self, value, out->publisher_id, sizeof(out->publisher_id), "",
                        "publisher_id");
    if (rc != HVN_OK)
        return rc;
    //  Neither text holds a NUL (UTF-8 checked): lengths and bytes decide
    const char *id = out->publisher_id;
    const char *colon = memchr(id, ':', value->size);
    if (!colon)
        return s_fail(self, HVN_R_BAD_VALUE, "", "publisher_id");
    size_t rest = value->size - (size_t)(colon + 1 - id);
    if (rest != self->host_len || !s_same(colon + 1, out->host, rest))
        return s_fail(self, HVN_R_TOPIC_MISMATCH, "", "publisher_id");
    return HVN_OK;
}

//  Returns HVN_OK with out->interval_ms from map["interval_ms"] (>= 0).
static hvn_reason_t s_read_interval(hvn_decoder_t *self, const s_index_t *idx, hvn_msg_t *out)
{
    const s_tok_t *value = NULL;
    hvn_reason_t rc = s_require(self, idx, S_K_INTERVAL_MS, "", &value);
    if (rc == HVN_OK)
        rc = s_get_int(self, value, &out->interval_ms, "", "interval_ms");
    if (rc == HVN_OK && out->interval_ms < 0)
        rc = s_fail(self, HVN_R_BAD_VALUE, "", "interval_ms");
    return rc;
}

//  Returns HVN_OK with out->payload_major/minor from a "M.m" version, or
//  HVN_R_BAD_VALUE (malformed) / HVN_R_PAYLOAD_VERSION (major not known).
static hvn_reason_t s_read_version(hvn_decoder_t *self, const s_index_t *payload, int known_major,
                                   hvn_msg_t *out)
{
    static const char *const prefix = "payload.";
    const s_tok_t *value = NULL;
    hvn_reason_t rc = s_require(self, payload, S_P_VERSION, prefix, &value);
    if (rc != HVN_OK)
        return rc;
    if (value->type != MSGPACK_OBJECT_STR)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, "nova_object.version");
    const char *p = value->ptr;
    size_t len = value->size;
    long parts[2] = {0, 0};
    size_t pos = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = pos;
        while (pos < len && p[pos] >= '0' && p[pos] <= '9' && pos - start < 6)
            parts[part] = parts[part] * 10 + (p[pos++] - '0');
        if (pos == start || (part == 0 && (pos >= len || p[pos++] != '.')))
            return s_fail(self, HVN_R_BAD_VALUE, prefix, "nova_object.version");
    }
    if (pos != len)
        return s_fail(self, HVN_R_BAD_VALUE, prefix, "nova_object.version");
    if (parts[0] != known_major)
        return s_fail(self, HVN_R_PAYLOAD_VERSION, prefix, "nova_object.version");
    out->payload_major = (int)parts[0];
    out->payload_minor = (int)parts[1];
    return HVN_OK;
}

//  Returns HVN_OK after storing field f's value (its token) in node and
//  setting its bit in *nulls when it is nil (the caller clears it before),
//  or the reason it is refused (detail the field's path). The node uuid's
//  16 bytes land in uuid_raw.
static inline hvn_reason_t s_read_field(hvn_decoder_t *self, int f, const s_tok_t *value,
                                        hvn_node_t *node, uint32_t *nulls, uint8_t *uuid_raw)
{
    const hvn_field_t *field = &hvn_schema_fields[f];
    char *at = (char *)node + field->offset;
    hvn_reason_t rc = HVN_OK;
    if (value->type == MSGPACK_OBJECT_NIL) {
        if (!field->nullable)
            return s_fail(self, HVN_R_WRONG_TYPE, S_DATA_PATH, field->name);
        *nulls |= 1u << f;
        if (field->type != HVN_TYPE_INT)
            at[0] = '\0';
        return HVN_OK;
    }
    if (field->type == HVN_TYPE_INT)
        rc = s_get_int(self, value, (int64_t *)at, S_DATA_PATH, field->name);
    else if (field->type == HVN_TYPE_STR)
        //  s_copy_str checks UTF-8 and length, all a free text needs
        rc = s_copy_str(self, value, at, field->size, S_DATA_PATH, field->name);
    else {
        //  What the type asks beyond that (uuid, ip) is checked here, not
        //  by a second pass of hvn_node_validate; the node's uuid (the
        //  schema's only one) is kept as its 16 bytes too
        bool valid;
        if (field->type == HVN_TYPE_UUID) {
            rc = s_copy_ascii(self, value, at, field->size, S_DATA_PATH, field->name);
            valid = rc != HVN_OK || hvn_uuid_parse(at, value->size, uuid_raw) == 0;
        } else {
            rc = s_copy_str(self, value, at, field->size, S_DATA_PATH, field->name);
            valid = rc != HVN_OK || hvn_field_text_valid(f, at, value->size);
        }
        if (!valid)
            rc = s_fail(self, HVN_R_BAD_VALUE, S_DATA_PATH, field->name);
    }
    return rc;
}

//  Returns HVN_OK with out->node filled from nova_object.data (every field
//  of the payload, or only the in_delete ones), checked against the schema.
static hvn_reason_t s_read_data(hvn_decoder_t *self, const s_tok_t *data, bool delete_payload,
                                hvn_msg_t *out)
{
    //  The nil bits are kept here and stored on the way out: a store to
    //  node->nulls per field would be reloaded after every string copy
    hvn_node_t *node = &out->node;
    uint32_t nulls = node->nulls;
    hvn_reason_t rc = HVN_OK;

    //  A writer like ours sends exactly the payload's fields, in table
    //  order, each valid: then they are read in one pass over the map, each
    //  as its key is passed. At the first key out of that order or the
    //  first refusal, the general path below reads the map again from the
    //  start, with its own order of checks and its first refusal
    const uint8_t *order = delete_payload ? self->delete_order : self->order;
    uint32_t expected = delete_payload ? self->delete_count : HVN_F_COUNT;
    if (data->size == expected) {
        uint32_t fast = nulls & (delete_payload ? ~self->delete_mask : 0);
        const s_tok_t *key = data + 1;
        uint32_t i = 0;
        for (; i < expected; i++, key = s_tok_next(key + 1)) {
            int f = order[i];
            if (key->type != MSGPACK_OBJECT_STR || key->size != self->name_len[f] ||
                !s_same(hvn_schema_fields[f].name, key->ptr, key->size) ||
                s_read_field(self, f, key + 1, node, &fast, out->node_uuid) != HVN_OK)
                break;
        }
        if (i == expected) {
            node->nulls = fast;
            return HVN_OK;
        }
        self->detail[0] = '\0';
    }

    const s_tok_t *slots[HVN_F_COUNT] = {NULL};
    int hint = 0;
    const s_tok_t *key = data + 1;
    for (uint32_t i = 0; i < data->size; i++, key = s_tok_next(s_tok_next(key))) {
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        //  Try the field after the last one before searching the table
        //  (past the last field there is no guess: an empty key must not
        //  match one)
        int f = hint;
        if (hint >= HVN_F_COUNT || self->name_len[hint] != key->size ||
            !s_same(hvn_schema_fields[hint].name, key->ptr, key->size))
            f = hvn_schema_find(key->ptr, key->size);
        hint = f + 1;
        if (f < 0 || (delete_payload && !hvn_schema_fields[f].in_delete))
            continue;
        if (slots[f])
            return s_fail(self, HVN_R_BAD_VALUE, S_DATA_PATH, hvn_schema_fields[f].name);
        slots[f] = s_tok_next(key);
    }
    for (int f = 0; f < HVN_F_COUNT && rc == HVN_OK; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (delete_payload && !field->in_delete)
            continue;
        if (!slots[f])
            rc = s_fail(self, HVN_R_MISSING_KEY, S_DATA_PATH, field->name);
        else {
            nulls &= ~(1u << f);
            rc = s_read_field(self, f, slots[f], node, &nulls, out->node_uuid);
        }
    }
    node->nulls = nulls;
    return rc;
}

//  Returns HVN_OK with a create/update/delete notification body in out.
static hvn_reason_t s_read_notification(hvn_decoder_t *self, const s_index_t *root, hvn_msg_t *out)
{
    bool is_delete = out->event == HVN_EVENT_DELETE;
    const s_tok_t *value = NULL;
    hvn_reason_t rc =
        s_expect_str(self, root, S_K_PRIORITY, "", S_PRIORITY, S_LEN(S_PRIORITY), HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_expect_str(self, root, S_K_EVENT_TYPE, "", hvn_event_name(out->event),
                          s_event_lens[out->event], HVN_R_TOPIC_MISMATCH);
    if (rc == HVN_OK)
        rc = s_read_timestamp(self, root, out);
    if (rc == HVN_OK)
        rc = s_read_publisher_id(self, root, out);
    if (rc == HVN_OK)
        rc = s_require(self, root, S_K_MESSAGE_ID, "", &value);
    if (rc == HVN_OK)
        rc = s_copy_ascii(self, value, out->message_id, sizeof(out->message_id), "", "message_id");
    if (rc == HVN_OK && !s_uuid_valid(out->message_id, value->size, NULL))
        rc = s_fail(self, HVN_R_BAD_VALUE, "", "message_id");
    if (rc != HVN_OK)
        return rc;

    const s_tok_t *payload = NULL;
    if ((rc = s_require(self, root, S_K_PAYLOAD, "", &payload)) != HVN_OK)
        return rc;
    if (payload->type != MSGPACK_OBJECT_MAP)
        return s_fail(self, HVN_R_NOT_MAP, "", "payload");
    s_index_t idx;
    s_index_build(&idx, payload, s_payload_keys, S_P_COUNT);
    rc = s_read_version(self, &idx, is_delete ? HVN_DELETE_PAYLOAD_MAJOR : HVN_PAYLOAD_MAJOR, out);
    if (rc == HVN_OK)
        rc = s_expect_str(self, &idx, S_P_NAME, "payload.",
                          is_delete ? HVN_DELETE_PAYLOAD_NAME : HVN_PAYLOAD_NAME,
                          is_delete ? S_LEN(HVN_DELETE_PAYLOAD_NAME) : S_LEN(HVN_PAYLOAD_NAME),
                          HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_expect_str(self, &idx, S_P_NAMESPACE, "payload.", HVN_PAYLOAD_NAMESPACE,
                          S_LEN(HVN_PAYLOAD_NAMESPACE), HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_require(self, &idx, S_P_DATA, "payload.", &value);
    if (rc != HVN_OK)
        return rc;
    if (value->type != MSGPACK_OBJECT_MAP)
        return s_fail(self, HVN_R_NOT_MAP, "payload.", "nova_object.data");
    return s_read_data(self, value, is_delete, out);
}

//  Returns HVN_OK with a publisher heartbeat in out; the node uuids land in
//  the decoder's array, grown (doubling) when too small.
static hvn_reason_t s_read_heartbeat(hvn_decoder_t *self, const s_index_t *root, hvn_msg_t *out)
{
    const s_tok_t *nodes = NULL;
    hvn_reason_t rc = s_read_publisher_id(self, root, out);
    if (rc == HVN_OK)
        rc = s_read_timestamp(self, root, out);
    if (rc == HVN_OK)
        rc = s_read_interval(self, root, out);
    if (rc == HVN_OK)
        rc = s_require(self, root, S_K_NODES, "", &nodes);
    if (rc != HVN_OK)
        return rc;
    if (nodes->type != MSGPACK_OBJECT_ARRAY)
        return s_fail(self, HVN_R_WRONG_TYPE, "", "nodes");
    size_t count = nodes->size;
    if (count > self->nodes_cap) {
        size_t cap = self->nodes_cap ? self->nodes_cap : 64;
        while (cap < count)
            cap *= 2;
        uint8_t(*grown)[16] = realloc(self->nodes, cap * sizeof(*grown));
        if (!grown)
            return s_fail(self, HVN_R_MSGPACK, "", "nodes (out of memory)");
        self->nodes = grown;
        self->nodes_cap = cap;
    }
    const s_tok_t *item = nodes + 1;
    for (size_t i = 0; i < count; i++, item = s_tok_next(item)) {
        if (item->type != MSGPACK_OBJECT_STR)
            return s_fail(self, HVN_R_WRONG_TYPE, "", "nodes");
        if (!s_uuid_valid(item->ptr, item->size, self->nodes[i]))
            return s_fail(self, HVN_R_BAD_VALUE, "", "nodes");
    }
    out->nodes = (const uint8_t(*)[16])self->nodes;
    out->node_count = count;
    return HVN_OK;
}

//  Returns HVN_OK with a broker heartbeat in out (broker_id in publisher_id).
static hvn_reason_t s_read_broker(hvn_decoder_t *self, const s_index_t *root, hvn_msg_t *out)
{
    const s_tok_t *value = NULL;
    hvn_reason_t rc = s_require(self, root, S_K_BROKER_ID, "", &value);
    if (rc == HVN_OK)
        rc = s_copy_str(self, value, out->publisher_id, sizeof(out->publisher_id), "", "broker_id");
    if (rc == HVN_OK && out->publisher_id[0] == '\0')
        rc = s_fail(self, HVN_R_BAD_VALUE, "", "broker_id");
    if (rc == HVN_OK)
        rc = s_read_timestamp(self, root, out);
    if (rc == HVN_OK)
        rc = s_read_interval(self, root, out);
    return rc;
}

//  Returns HVN_OK or HVN_R_HEADER_KIND: notifications travel as kind 1 or
//  3, heartbeats as kind 2.
static hvn_reason_t s_kind_matches(hvn_event_t event, uint8_t kind)
{
    if (s_is_notification(event))
        return kind == HVN_KIND_NOTIFICATION || kind == HVN_KIND_SYNC ? HVN_OK : HVN_R_HEADER_KIND;
    return kind == HVN_KIND_HEARTBEAT ? HVN_OK : HVN_R_HEADER_KIND;
}

//  Returns HVN_OK with *out filled, or the first reason to refuse the
//  message, checked in order: header, topic, kind, size, msgpack, body.
hvn_reason_t hvn_decoder_decode(hvn_decoder_t *self, const void *topic, size_t topic_size,
                                const void *header, size_t header_size, const void *body,
                                size_t body_size, hvn_msg_t *out)
{
    assert(self && out);
    //  Clear what a refusal or another event leaves unset; create/update
    //  write every field of the node, so only the others pay for its init
    out->event = HVN_EVENT_NONE;
    out->topic[0] = out->host[0] = '\0';
    out->timestamp[0] = out->publisher_id[0] = out->message_id[0] = '\0';
    out->payload_major = out->payload_minor = 0;
    out->interval_ms = 0;
    out->node_count = 0;
    out->nodes = NULL;
    self->detail[0] = '\0';

    hvn_reason_t rc = hvn_header_unpack(header, header_size, &out->header);
    if (rc != HVN_OK)
        return s_fail(self, rc, "header", NULL);
    if (hvn_topic_parse(topic, topic_size, &out->event, out->host) != HVN_OK)
        return s_fail(self, HVN_R_TOPIC, "topic", NULL);
    memcpy(out->topic, topic, topic_size);
    out->topic[topic_size] = '\0';
    if (out->event == HVN_EVENT_NONE)
        return s_fail(self, HVN_R_UNKNOWN_EVENT, "topic", NULL);
    self->host_len = topic_size - s_event_lens[out->event] - 1;
    if (s_kind_matches(out->event, out->header.kind) != HVN_OK)
        return s_fail(self, HVN_R_HEADER_KIND, "header", NULL);
    if (body_size > self->max_size)
        return s_fail(self, HVN_R_TOO_BIG, "body", NULL);
    if (!body || body_size == 0)
        return s_fail(self, HVN_R_MSGPACK, "body", NULL);

    const s_tok_t *root = s_tokenize(self, body, body_size);
    if (!root)
        return s_fail(self, HVN_R_MSGPACK, "body", NULL);
    if (root->type != MSGPACK_OBJECT_MAP)
        return s_fail(self, HVN_R_NOT_MAP, "body", NULL);

    if (out->event == HVN_EVENT_CREATE || out->event == HVN_EVENT_UPDATE)
        out->node.nulls = 0;
    else
        hvn_node_init(&out->node);
    if (!s_is_notification(out->event))
        memset(out->node_uuid, 0, sizeof(out->node_uuid));
    s_index_t idx;
    s_index_build(&idx, root, s_root_keys, S_K_ROOT_COUNT);
    if (s_is_notification(out->event))
        return s_read_notification(self, &idx, out);
    if (out->event == HVN_EVENT_HEARTBEAT)
        return s_read_heartbeat(self, &idx, out);
    return s_read_broker(self, &idx, out);
}
