/*  hvn_decoder.c — three frames checked and read into an hvn_msg_t.

    The body is read into tokens by hvni_mp_read() (hvn_mpread.h: msgpack-c's
    own parser, one flat token per object, no allocation once warm), then
    walked only as deep as the message goes (envelope, payload, data),
    checking every object's type before reading it and bounding every
    string by its destination. The payload's fields come from
    hvn_schema_fields[]: a map whose keys come in the table's order, as our
    encoder writes them, is read in one pass; any other is searched.
*/
#include "hvn_decoder.h"
#include "hvn_ids.h"
#include "hvn_mpread.h"
#include "hvn_wire_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PRIORITY "INFO"
#define S_DETAIL_MAX 96 //  Longest detail path
#define S_DATA_PATH "payload.nova_object.data."

//  A body's object: a token of hvn_mpread.h
typedef hvni_mp_tok_t s_tok_t;

//  Returns true when len bytes at s are a UUID in canonical text; raw (when
//  not NULL) receives its 16 bytes.
static bool s_uuid_valid(const char *s, size_t len, uint8_t *raw)
{
    return hvn_uuid_parse(s, len, raw) == 0;
}

// --------------------------------------------------------------------------
//  Decoder

struct _hvn_decoder_t {
    size_t max_size;                   //  Largest body accepted, bytes
    hvni_mp_t tokens;                  //  The last body's objects; kept between decodes
    char detail[S_DETAIL_MAX];         //  Where the last refusal was found
    uint8_t (*nodes)[16];              //  Publisher heartbeat uuids, grown on demand
    size_t nodes_cap;                  //  Entries allocated in nodes
    uint8_t name_len[HVN_F_COUNT];     //  strlen of each schema field's name
    uint8_t order[HVN_F_COUNT];        //  The payload's fields, in table order
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
    if (hvni_mp_init(&self->tokens) != 0) {
        free(self);
        return NULL;
    }
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
    hvni_mp_release(&self->tokens);
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

//  Returns reason, after recording prefix+name as the refusal's detail.
//  Out of line and marked cold: the checks that call it stay compact.
static __attribute__((cold, noinline)) hvn_reason_t s_fail(hvn_decoder_t *self, hvn_reason_t reason,
                                                           const char *prefix, const char *name)
{
    snprintf(self->detail, sizeof(self->detail), "%s%s", prefix, name ? name : "");
    return reason;
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
    return keys[k].len == key->size && hvni_same(keys[k].name, key->ptr, keys[k].len);
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
        for (; i < n && key->type == HVNI_MP_STR && s_key_is(key, keys, (int)i); i++) {
            idx->value[i] = key + 1;
            key = hvni_mp_next(key + 1);
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
    for (uint32_t i = 0; i < map->size; i++, key = hvni_mp_next(hvni_mp_next(key))) {
        if (key->type != HVNI_MP_STR)
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
        idx->value[k] = hvni_mp_next(key);
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
    if (obj->type != HVNI_MP_STR)
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
    if (obj->type != HVNI_MP_STR)
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
    if (obj->type == HVNI_MP_NEGATIVE_INTEGER) {
        *value = obj->i64;
        return HVN_OK;
    }
    if (obj->type != HVNI_MP_POSITIVE_INTEGER)
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
    if (value->type != HVNI_MP_STR)
        return s_fail(self, HVN_R_WRONG_TYPE, prefix, key);
    if (value->size != len || !hvni_same(value->ptr, expected, len))
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
    if (rc == HVN_OK && !hvni_timestamp_valid(out->timestamp, value->size))
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
    if (rest != self->host_len || !hvni_same(colon + 1, out->host, rest))
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
    if (value->type != HVNI_MP_STR)
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
    if (value->type == HVNI_MP_NIL) {
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
        for (; i < expected; i++, key = hvni_mp_next(key + 1)) {
            int f = order[i];
            if (key->type != HVNI_MP_STR || key->size != self->name_len[f] ||
                !hvni_same(hvn_schema_fields[f].name, key->ptr, key->size) ||
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
    for (uint32_t i = 0; i < data->size; i++, key = hvni_mp_next(hvni_mp_next(key))) {
        if (key->type != HVNI_MP_STR)
            continue;
        //  Try the field after the last one before searching the table
        //  (past the last field there is no guess: an empty key must not
        //  match one)
        int f = hint;
        if (hint >= HVN_F_COUNT || self->name_len[hint] != key->size ||
            !hvni_same(hvn_schema_fields[hint].name, key->ptr, key->size))
            f = hvn_schema_find(key->ptr, key->size);
        hint = f + 1;
        if (f < 0 || (delete_payload && !hvn_schema_fields[f].in_delete))
            continue;
        if (slots[f])
            return s_fail(self, HVN_R_BAD_VALUE, S_DATA_PATH, hvn_schema_fields[f].name);
        slots[f] = hvni_mp_next(key);
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
    hvn_reason_t rc = s_expect_str(self, root, S_K_PRIORITY, "", S_PRIORITY, sizeof(S_PRIORITY) - 1,
                                   HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_expect_str(self, root, S_K_EVENT_TYPE, "", hvn_event_name(out->event),
                          hvni_event_len(out->event), HVN_R_TOPIC_MISMATCH);
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
    if (payload->type != HVNI_MP_MAP)
        return s_fail(self, HVN_R_NOT_MAP, "", "payload");
    s_index_t idx;
    s_index_build(&idx, payload, s_payload_keys, S_P_COUNT);
    rc = s_read_version(self, &idx, is_delete ? HVN_DELETE_PAYLOAD_MAJOR : HVN_PAYLOAD_MAJOR, out);
    if (rc == HVN_OK)
        rc = s_expect_str(self, &idx, S_P_NAME, "payload.",
                          is_delete ? HVN_DELETE_PAYLOAD_NAME : HVN_PAYLOAD_NAME,
                          is_delete ? sizeof(HVN_DELETE_PAYLOAD_NAME) - 1
                                    : sizeof(HVN_PAYLOAD_NAME) - 1,
                          HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_expect_str(self, &idx, S_P_NAMESPACE, "payload.", HVN_PAYLOAD_NAMESPACE,
                          sizeof(HVN_PAYLOAD_NAMESPACE) - 1, HVN_R_BAD_VALUE);
    if (rc == HVN_OK)
        rc = s_require(self, &idx, S_P_DATA, "payload.", &value);
    if (rc != HVN_OK)
        return rc;
    if (value->type != HVNI_MP_MAP)
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
    if (nodes->type != HVNI_MP_ARRAY)
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
    for (size_t i = 0; i < count; i++, item = hvni_mp_next(item)) {
        if (item->type != HVNI_MP_STR)
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
    if (hvni_is_notification(event))
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
    self->host_len = topic_size - hvni_event_len(out->event) - 1;
    if (s_kind_matches(out->event, out->header.kind) != HVN_OK)
        return s_fail(self, HVN_R_HEADER_KIND, "header", NULL);
    if (body_size > self->max_size)
        return s_fail(self, HVN_R_TOO_BIG, "body", NULL);
    if (!body || body_size == 0)
        return s_fail(self, HVN_R_MSGPACK, "body", NULL);

    const s_tok_t *root = hvni_mp_read(&self->tokens, body, body_size);
    if (!root)
        return s_fail(self, HVN_R_MSGPACK, "body", NULL);
    if (root->type != HVNI_MP_MAP)
        return s_fail(self, HVN_R_NOT_MAP, "body", NULL);

    if (out->event == HVN_EVENT_CREATE || out->event == HVN_EVENT_UPDATE)
        out->node.nulls = 0;
    else
        hvn_node_init(&out->node);
    if (!hvni_is_notification(out->event))
        memset(out->node_uuid, 0, sizeof(out->node_uuid));
    s_index_t idx;
    s_index_build(&idx, root, s_root_keys, S_K_ROOT_COUNT);
    if (hvni_is_notification(out->event))
        return s_read_notification(self, &idx, out);
    if (out->event == HVN_EVENT_HEARTBEAT)
        return s_read_heartbeat(self, &idx, out);
    return s_read_broker(self, &idx, out);
}
