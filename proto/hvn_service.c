/*  hvn_service.c — the service protocol's words and bodies: END and STATS,
    encoded and decoded.

    The bodies are small and rare (one per request), so they are packed with
    msgpack-c's own packer into a heap buffer handed to the caller, and read
    back through hvni_mp_read() (hvn_mpread.h), the reader every peer-sent
    body goes through. STATS is a table of rows that the broker fills and
    that the encoder, the decoder and every report walk: a counter is a
    row, never a hand-counted size.
*/
#include "hvn_service.h"
#include "hvn_ids.h"
#include "hvn_mpread.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

//  Returns true when the size bytes at data are exactly word.
bool hvn_service_is(const void *data, size_t size, const char *word)
{
    assert(word);
    size_t len = strlen(word);
    return size == len && (len == 0 || memcmp(data, word, len) == 0);
}

// --------------------------------------------------------------------------
//  Packing into a heap buffer

//  Returns the packer's status (0 = ok) after packing the C string s as a
//  msgpack str.
static int s_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    int rc = msgpack_pack_str(pk, len);
    return rc | msgpack_pack_str_body(pk, s, len);
}

//  Returns the buffer's bytes (now the caller's) with their size in *size,
//  or NULL (the buffer freed) when packing ran out of memory. sbuffer's
//  write fails only then, and the packer remembers nothing of it, so a
//  body is good when every pack returned 0: rc is their OR.
static uint8_t *s_pack_finish(msgpack_sbuffer *sbuf, int rc, size_t *size)
{
    if (rc != 0 || !sbuf->data) {
        msgpack_sbuffer_destroy(sbuf);
        return NULL;
    }
    *size = sbuf->size;
    return (uint8_t *)msgpack_sbuffer_release(sbuf);
}

//  Returns the packer's status after packing the END's common part: a map
//  header of `entries` and the broker_id and count pairs.
static int s_pack_end_head(msgpack_packer *pk, const hvn_end_t *end, uint32_t entries)
{
    int rc = msgpack_pack_map(pk, entries);
    rc |= s_pack_cstr(pk, "broker_id");
    rc |= s_pack_cstr(pk, end->broker_id);
    rc |= s_pack_cstr(pk, "count");
    return rc | msgpack_pack_uint64(pk, end->count);
}

//  Returns a SNAPSHOT's END body (heap), or NULL.
uint8_t *hvn_end_encode(const hvn_end_t *end, size_t *size)
{
    assert(end && size);
    if (end->broker_id[0] == '\0' || (end->publisher_count && !end->publishers))
        return NULL;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    int rc = s_pack_end_head(&pk, end, 3);
    rc |= s_pack_cstr(&pk, "publishers");
    rc |= msgpack_pack_map(&pk, (uint32_t)end->publisher_count);
    for (size_t i = 0; i < end->publisher_count; i++) {
        char text[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(end->publishers[i].instance, text);
        rc |= msgpack_pack_str(&pk, HVN_UUID_STR_LEN);
        rc |= msgpack_pack_str_body(&pk, text, HVN_UUID_STR_LEN);
        rc |= msgpack_pack_uint64(&pk, end->publishers[i].seq);
    }
    return s_pack_finish(&sbuf, rc, size);
}

//  Returns a REPLAY's END body (heap), or NULL.
uint8_t *hvn_end_encode_replay(const hvn_end_t *end, size_t *size)
{
    assert(end && size);
    if (end->broker_id[0] == '\0')
        return NULL;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    int rc = s_pack_end_head(&pk, end, 4);
    rc |= s_pack_cstr(&pk, "first");
    rc |= msgpack_pack_uint64(&pk, end->first);
    rc |= s_pack_cstr(&pk, "last");
    rc |= msgpack_pack_uint64(&pk, end->last);
    return s_pack_finish(&sbuf, rc, size);
}

// --------------------------------------------------------------------------
//  END, decoded

//  Returns the reason, with *detail set to what, for a refused END.
static hvn_reason_t s_end_fail(hvn_reason_t reason, const char *what, const char **detail)
{
    if (detail)
        *detail = what;
    return reason;
}

//  A body's object: a token of hvn_mpread.h
typedef hvni_mp_tok_t s_tok_t;

//  Returns 1 and *value when map holds key exactly once, 0 when it holds
//  it not at all, -1 when more than once (ambiguous: refused). Keys that are
//  not strings are ignored like any unknown key.
static int s_map_get(const s_tok_t *map, const char *key, const s_tok_t **value)
{
    size_t klen = strlen(key);
    int found = 0;
    const s_tok_t *k = map + 1;
    for (uint32_t i = 0; i < map->size; i++, k = hvni_mp_next(hvni_mp_next(k))) {
        if (k->type == HVNI_MP_STR && k->size == klen && memcmp(k->ptr, key, klen) == 0) {
            if (found)
                return -1;
            *value = k + 1;
            found = 1;
        }
    }
    return found;
}

//  Orders publisher entries by instance id.
static int s_end_publisher_cmp(const void *a, const void *b)
{
    return memcmp(((const hvn_end_publisher_t *)a)->instance,
                  ((const hvn_end_publisher_t *)b)->instance, 16);
}

//  Returns HVN_OK after filling out->publishers from a msgpack map of UUID
//  text to seq, or the reason it is refused (detail "publishers").
static hvn_reason_t s_end_publishers(const s_tok_t *pubs, hvn_end_t *out)
{
    if (pubs->type != HVNI_MP_MAP)
        return HVN_R_WRONG_TYPE;
    uint32_t n = pubs->size;
    if (n > HVN_END_PUBLISHERS_MAX)
        return HVN_R_TOO_BIG;
    if (n == 0)
        return HVN_OK;
    out->publishers = calloc(n, sizeof(hvn_end_publisher_t));
    if (!out->publishers)
        return HVN_R_TOO_BIG;
    const s_tok_t *key = pubs + 1;
    for (uint32_t i = 0; i < n; i++, key = hvni_mp_next(hvni_mp_next(key))) {
        const s_tok_t *val = hvni_mp_next(key);
        if (key->type != HVNI_MP_STR || val->type != HVNI_MP_POSITIVE_INTEGER)
            return HVN_R_WRONG_TYPE;
        char text[HVN_UUID_STR_LEN + 1];
        if (key->size != HVN_UUID_STR_LEN)
            return HVN_R_BAD_VALUE;
        memcpy(text, key->ptr, HVN_UUID_STR_LEN);
        text[HVN_UUID_STR_LEN] = '\0';
        hvn_end_publisher_t *pub = &out->publishers[out->publisher_count];
        if (uuid_parse(text, pub->instance) != 0)
            return HVN_R_BAD_VALUE;
        pub->seq = val->u64;
        out->publisher_count++;
    }
    qsort(out->publishers, out->publisher_count, sizeof(hvn_end_publisher_t), s_end_publisher_cmp);
    for (size_t i = 1; i < out->publisher_count; i++)
        if (s_end_publisher_cmp(&out->publishers[i - 1], &out->publishers[i]) == 0)
            return HVN_R_BAD_VALUE; //  One instance named twice: which seq?
    return HVN_OK;
}

//  Returns HVN_OK with *value set to the root's key, or the reason it is
//  refused (missing, or there twice), detail the key.
static hvn_reason_t s_end_key(const s_tok_t *root, const char *key, const s_tok_t **value,
                              const char **detail)
{
    int found = s_map_get(root, key, value);
    if (found != 1)
        return s_end_fail(found ? HVN_R_BAD_VALUE : HVN_R_MISSING_KEY, key, detail);
    return HVN_OK;
}

//  Returns true when the len bytes at s are UTF-8 without NUL.
static bool s_text_valid(const char *s, size_t len)
{
    return hvn_utf8_valid(s, len) && !memchr(s, '\0', len);
}

//  Returns HVN_OK after copying the END's broker_id into out, or the reason
//  (detail "broker_id").
static hvn_reason_t s_end_broker_id(const s_tok_t *id, hvn_end_t *out, const char **detail)
{
    if (id->type != HVNI_MP_STR)
        return s_end_fail(HVN_R_WRONG_TYPE, "broker_id", detail);
    size_t len = id->size;
    if (len == 0 || len > HVN_STR_MAX || !s_text_valid(id->ptr, len))
        return s_end_fail(HVN_R_BAD_VALUE, "broker_id", detail);
    memcpy(out->broker_id, id->ptr, len);
    out->broker_id[len] = '\0';
    return HVN_OK;
}

//  Returns HVN_OK with *value the unsigned integer obj holds, or
//  HVN_R_WRONG_TYPE (detail what).
static hvn_reason_t s_end_uint(const s_tok_t *obj, uint64_t *value, const char *what,
                               const char **detail)
{
    if (obj->type != HVNI_MP_POSITIVE_INTEGER)
        return s_end_fail(HVN_R_WRONG_TYPE, what, detail);
    *value = obj->u64;
    return HVN_OK;
}

//  Returns HVN_OK after filling *out from a SNAPSHOT END's root map, or the
//  reason (detail set).
static hvn_reason_t s_end_read(const s_tok_t *root, hvn_end_t *out, const char **detail)
{
    const s_tok_t *id = NULL, *count = NULL, *pubs = NULL;
    hvn_reason_t reason = s_end_key(root, "broker_id", &id, detail);
    if (reason == HVN_OK)
        reason = s_end_key(root, "count", &count, detail);
    if (reason == HVN_OK)
        reason = s_end_key(root, "publishers", &pubs, detail);
    if (reason == HVN_OK)
        reason = s_end_broker_id(id, out, detail);
    if (reason == HVN_OK)
        reason = s_end_uint(count, &out->count, "count", detail);
    if (reason == HVN_OK && (reason = s_end_publishers(pubs, out)) != HVN_OK)
        s_end_fail(reason, "publishers", detail);
    return reason;
}

//  Returns HVN_OK after filling *out from a REPLAY END's root map, or the
//  reason (detail set).
static hvn_reason_t s_end_read_replay(const s_tok_t *root, hvn_end_t *out, const char **detail)
{
    const s_tok_t *id = NULL, *count = NULL, *first = NULL, *last = NULL;
    hvn_reason_t reason = s_end_key(root, "broker_id", &id, detail);
    if (reason == HVN_OK)
        reason = s_end_key(root, "count", &count, detail);
    if (reason == HVN_OK)
        reason = s_end_key(root, "first", &first, detail);
    if (reason == HVN_OK)
        reason = s_end_key(root, "last", &last, detail);
    if (reason == HVN_OK)
        reason = s_end_broker_id(id, out, detail);
    if (reason == HVN_OK)
        reason = s_end_uint(count, &out->count, "count", detail);
    if (reason == HVN_OK)
        reason = s_end_uint(first, &out->first, "first", detail);
    if (reason == HVN_OK)
        reason = s_end_uint(last, &out->last, "last", detail);
    if (reason == HVN_OK && out->first > out->last)
        reason = s_end_fail(HVN_R_BAD_VALUE, "first", detail);
    return reason;
}

//  Returns the root map of a service body read into tokens, or NULL with
//  *reason set (detail "body"): too big, not msgpack (also out of memory),
//  not a map.
static const s_tok_t *s_body_read(hvni_mp_t *tokens, const void *data, size_t size,
                                  hvn_reason_t *reason, const char **detail)
{
    const s_tok_t *root = NULL;
    if (size > HVN_END_MAX_SIZE)
        *reason = s_end_fail(HVN_R_TOO_BIG, "body", detail);
    else if (!(root = hvni_mp_read(tokens, data, size)))
        *reason = s_end_fail(HVN_R_MSGPACK, "body", detail);
    else if (root->type != HVNI_MP_MAP)
        *reason = s_end_fail(HVN_R_NOT_MAP, "body", detail);
    else
        return root;
    return NULL;
}

typedef hvn_reason_t(s_end_reader_fn)(const s_tok_t *root, hvn_end_t *out, const char **detail);

//  Returns HVN_OK with *out filled by read from the body's root map, or
//  the reason the END is refused.
static hvn_reason_t s_end_decode(const void *data, size_t size, hvn_end_t *out, const char **detail,
                                 s_end_reader_fn *read)
{
    assert(out);
    memset(out, 0, sizeof(*out));
    if (detail)
        *detail = "";
    hvni_mp_t tokens = {NULL, 0, 0};
    hvn_reason_t reason = HVN_OK;
    const s_tok_t *root = s_body_read(&tokens, data, size, &reason, detail);
    if (root)
        reason = read(root, out, detail);
    hvni_mp_release(&tokens);
    if (reason != HVN_OK)
        hvn_end_clear(out);
    return reason;
}

//  Returns HVN_OK with *out filled, or the reason the END is refused.
hvn_reason_t hvn_end_decode(const void *data, size_t size, hvn_end_t *out, const char **detail)
{
    return s_end_decode(data, size, out, detail, s_end_read);
}

//  Returns HVN_OK with *out filled, or the reason the END is refused.
hvn_reason_t hvn_end_decode_replay(const void *data, size_t size, hvn_end_t *out,
                                   const char **detail)
{
    return s_end_decode(data, size, out, detail, s_end_read_replay);
}

//  Returns nothing; frees the publishers and empties *end.
void hvn_end_clear(hvn_end_t *end)
{
    assert(end);
    free(end->publishers);
    memset(end, 0, sizeof(*end));
}

// --------------------------------------------------------------------------
//  REPLAY request

//  Returns true with *value set when the size bytes at data are a decimal
//  number of 1 to HVN_SEQ_TEXT_MAX digits that fits a uint64, else false.
static bool s_seq_text(const void *data, size_t size, uint64_t *value)
{
    const unsigned char *text = data;
    if (size < 1 || size > HVN_SEQ_TEXT_MAX)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        unsigned digit = text[i] - '0';
        if (n > (UINT64_MAX - digit) / 10)
            return false;
        n = n * 10 + digit;
    }
    *value = n;
    return true;
}

//  Returns NULL with *out filled, or why the request is refused.
const char *hvn_replay_decode(const void *instance, size_t instance_size, const void *first,
                              size_t first_size, const void *last, size_t last_size,
                              hvn_replay_t *out)
{
    assert(out);
    char text[HVN_UUID_STR_LEN + 1];
    hvn_replay_t request;
    if (instance_size != HVN_UUID_STR_LEN)
        return "REPLAY: instance is not UUID text";
    memcpy(text, instance, HVN_UUID_STR_LEN);
    text[HVN_UUID_STR_LEN] = '\0';
    if (uuid_parse(text, request.instance) != 0)
        return "REPLAY: instance is not UUID text";
    if (!s_seq_text(first, first_size, &request.first) ||
        !s_seq_text(last, last_size, &request.last))
        return "REPLAY: first and last are seqs in decimal text";
    if (request.first > request.last)
        return "REPLAY: first is above last";
    if (request.last - request.first >= HVN_REPLAY_SPAN_MAX)
        return "REPLAY: range wider than 4096 seqs";
    *out = request;
    return NULL;
}

//  Returns nothing; the request's three frames as text.
void hvn_replay_text(const hvn_replay_t *request, char instance[37],
                     char first[HVN_SEQ_TEXT_MAX + 1], char last[HVN_SEQ_TEXT_MAX + 1])
{
    assert(request && instance && first && last);
    uuid_unparse_lower(request->instance, instance);
    snprintf(first, HVN_SEQ_TEXT_MAX + 1, "%" PRIu64, request->first);
    snprintf(last, HVN_SEQ_TEXT_MAX + 1, "%" PRIu64, request->last);
}

// --------------------------------------------------------------------------
//  STATS table

struct _hvn_stats_t {
    hvn_stat_t *rows; //  Rows, in order; names and texts on the heap
    size_t count;     //  Rows held
    size_t cap;       //  Rows allocated
};

//  Returns a new, empty table, or NULL.
hvn_stats_t *hvn_stats_new(void)
{
    return calloc(1, sizeof(hvn_stats_t));
}

//  Returns nothing; frees the table and nulls *self_p. NULL-safe.
void hvn_stats_destroy(hvn_stats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hvn_stats_clear(*self_p);
    free((*self_p)->rows);
    free(*self_p);
    *self_p = NULL;
}

//  Returns nothing; the rows' strings are freed, the row array kept.
void hvn_stats_clear(hvn_stats_t *self)
{
    assert(self);
    for (size_t i = 0; i < self->count; i++) {
        free((char *)self->rows[i].name);
        free((char *)self->rows[i].text);
    }
    self->count = 0;
}

//  Returns a new row named by the len bytes at name (copied), or NULL when
//  out of memory, full or the name's length is out of range.
static hvn_stat_t *s_stats_row(hvn_stats_t *self, const char *name, size_t len,
                               hvn_stat_type_t type)
{
    if (len == 0 || len > HVN_STAT_NAME_MAX || self->count == HVN_STATS_MAX)
        return NULL;
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        hvn_stat_t *grown = realloc(self->rows, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        self->rows = grown;
        self->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy)
        return NULL;
    hvn_stat_t *row = &self->rows[self->count++];
    *row = (hvn_stat_t){.name = copy, .type = type};
    return row;
}

//  Returns 0 after appending an unsigned row, -1 when not.
int hvn_stats_add_uint(hvn_stats_t *self, const char *name, uint64_t value)
{
    assert(self && name);
    hvn_stat_t *row = s_stats_row(self, name, strnlen(name, HVN_STAT_NAME_MAX + 1), HVN_STAT_UINT);
    if (!row)
        return -1;
    row->uint = value;
    return 0;
}

//  Returns 0 after appending a signed row, -1 when not.
int hvn_stats_add_int(hvn_stats_t *self, const char *name, int64_t value)
{
    assert(self && name);
    hvn_stat_t *row = s_stats_row(self, name, strnlen(name, HVN_STAT_NAME_MAX + 1), HVN_STAT_INT);
    if (!row)
        return -1;
    row->sint = value;
    return 0;
}

//  Returns 0 after appending a text row (copies of name and text), -1 when
//  not.
int hvn_stats_add_text(hvn_stats_t *self, const char *name, const char *text)
{
    assert(self && name && text);
    char *copy = strdup(text);
    hvn_stat_t *row =
        copy ? s_stats_row(self, name, strnlen(name, HVN_STAT_NAME_MAX + 1), HVN_STAT_TEXT) : NULL;
    if (!row) {
        free(copy);
        return -1;
    }
    row->text = copy;
    return 0;
}

//  Returns the number of rows.
size_t hvn_stats_size(const hvn_stats_t *self)
{
    assert(self);
    return self->count;
}

//  Returns row index; the index must be below hvn_stats_size.
const hvn_stat_t *hvn_stats_at(const hvn_stats_t *self, size_t index)
{
    assert(self && index < self->count);
    return &self->rows[index];
}

//  Returns the row called name, or NULL.
const hvn_stat_t *hvn_stats_find(const hvn_stats_t *self, const char *name)
{
    assert(self && name);
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->rows[i].name, name) == 0)
            return &self->rows[i];
    return NULL;
}

//  Returns the STATS body (heap), or NULL when out of memory.
uint8_t *hvn_stats_encode(const hvn_stats_t *self, size_t *size)
{
    assert(self && size);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, (uint32_t)self->count);
    for (size_t i = 0; i < self->count; i++) {
        const hvn_stat_t *row = &self->rows[i];
        rc |= s_pack_cstr(&pk, row->name);
        if (row->type == HVN_STAT_UINT)
            rc |= msgpack_pack_uint64(&pk, row->uint);
        else if (row->type == HVN_STAT_INT)
            rc |= msgpack_pack_int64(&pk, row->sint);
        else
            rc |= s_pack_cstr(&pk, row->text);
    }
    return s_pack_finish(&sbuf, rc, size);
}

//  Orders rows by name, for finding one named twice.
static int s_row_cmp(const void *a, const void *b)
{
    return strcmp((*(const hvn_stat_t *const *)a)->name, (*(const hvn_stat_t *const *)b)->name);
}

//  Returns true when some name is in the table twice.
static bool s_stats_has_duplicate(const hvn_stats_t *self)
{
    if (self->count < 2)
        return false;
    const hvn_stat_t **sorted = malloc(self->count * sizeof(*sorted));
    if (!sorted)
        return true; //  Cannot tell: refused rather than risked
    for (size_t i = 0; i < self->count; i++)
        sorted[i] = &self->rows[i];
    qsort(sorted, self->count, sizeof(*sorted), s_row_cmp);
    bool twice = false;
    for (size_t i = 1; i < self->count && !twice; i++)
        twice = strcmp(sorted[i - 1]->name, sorted[i]->name) == 0;
    free(sorted);
    return twice;
}

//  Returns HVN_OK after appending the row of one STATS entry (or nothing,
//  for a value of a type it does not know), or the reason it is refused
//  (detail "name", or "text" for a text that is not UTF-8 without NUL).
static hvn_reason_t s_stats_entry(hvn_stats_t *self, const s_tok_t *key, const char **detail)
{
    const s_tok_t *val = hvni_mp_next(key);
    if (key->type != HVNI_MP_STR)
        return s_end_fail(HVN_R_WRONG_TYPE, "name", detail);
    size_t len = key->size;
    if (len == 0 || len > HVN_STAT_NAME_MAX || !s_text_valid(key->ptr, len))
        return s_end_fail(HVN_R_BAD_VALUE, "name", detail);
    hvn_stat_t *row = NULL;
    if (val->type == HVNI_MP_POSITIVE_INTEGER) {
        if ((row = s_stats_row(self, key->ptr, len, HVN_STAT_UINT)))
            row->uint = val->u64;
    } else if (val->type == HVNI_MP_NEGATIVE_INTEGER) {
        if ((row = s_stats_row(self, key->ptr, len, HVN_STAT_INT)))
            row->sint = val->i64;
    } else if (val->type == HVNI_MP_STR) {
        if (!s_text_valid(val->ptr, val->size))
            return s_end_fail(HVN_R_BAD_VALUE, "text", detail);
        char *text = strndup(val->ptr, val->size);
        if (text && (row = s_stats_row(self, key->ptr, len, HVN_STAT_TEXT)))
            row->text = text;
        else
            free(text);
    } else
        return HVN_OK; //  Not a value a row holds: left out
    return row ? HVN_OK : s_end_fail(HVN_R_TOO_BIG, "body", detail);
}

//  Returns HVN_OK with the table's rows those of the STATS body, or the
//  reason it is refused (the table then empty).
hvn_reason_t hvn_stats_decode(hvn_stats_t *self, const void *data, size_t size, const char **detail)
{
    assert(self);
    hvn_stats_clear(self);
    if (detail)
        *detail = "";
    hvni_mp_t tokens = {NULL, 0, 0};
    hvn_reason_t reason = HVN_OK;
    const s_tok_t *root = s_body_read(&tokens, data, size, &reason, detail);
    if (root && root->size > HVN_STATS_MAX)
        reason = s_end_fail(HVN_R_TOO_BIG, "body", detail);
    const s_tok_t *key = root ? root + 1 : NULL;
    for (uint32_t i = 0; reason == HVN_OK && i < root->size; i++) {
        reason = s_stats_entry(self, key, detail);
        key = hvni_mp_next(hvni_mp_next(key));
    }
    hvni_mp_release(&tokens);
    if (reason == HVN_OK && s_stats_has_duplicate(self))
        reason = s_end_fail(HVN_R_BAD_VALUE, "name", detail);
    if (reason != HVN_OK)
        hvn_stats_clear(self);
    return reason;
}
