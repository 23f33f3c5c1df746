/*  fuzz_decoder.c — the HVN/1 decoder against hostile frames.

    The broker and every subscriber decode with one decoder reused message
    after message, so an input holds several messages and they all go
    through the same decoder and the same hvn_msg_t. Whatever the bytes:

    - the answer is HVN_OK or a named reason, with a bounded detail, and a
      fresh decoder gives the same answer (nothing leaks from one message
      into the next); a body it reads passes the msgpack pre-scan, even
      when the decoder skipped it, and no body makes it allocate more
      than libFuzzer's malloc limit;
    - an accepted message is what the decoder promises: topic and host
      NUL-terminated and matching the frames, the header kind fits the
      event, a create or update carries a valid node, heartbeat uuids are
      readable;
    - it renders as JSON that parses back (hvn-sub's output);
    - the broker's part: a publisher may not speak as hvn.broker, the node
      uuid keys the last-value cache, which stores the frames byte for byte
      up to a number of nodes per host, and a publisher heartbeat prunes
      the nodes of its host it no longer lists; the cache's host index
      agrees with its entries throughout;
    - a notification encoded again from what was decoded decodes to the
      same node.
*/
#include "hvn_fuzz.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "hvn_cache.h"
#include "hvn_proto.h"
#include "hvn_seqmap.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define S_NODES_MAX 4     //  Nodes per host the cache takes, as --max-publisher-nodes
#define S_INSTANCES_MAX 8 //  Publisher instances the seq map tracks

//  Body limits the selector byte picks from: a subscriber's, two tiny ones,
//  and a default broker's (which takes publisher heartbeats that large)
static const size_t s_limits[4] = {HVN_MAX_MSG_SIZE, 16, 64,
                                   HVN_HEARTBEAT_SIZE_MAX(HVN_HEARTBEAT_NODES_MAX)};

//  State of one input
typedef struct {
    hvn_decoder_t *decoder;  //  Reused for every message, as on a socket
    hvn_encoder_t *encoder;  //  For the round trip
    hvn_cache_t *cache;      //  The broker's last-value cache
    hvn_seqmap_t *seqmap;    //  The broker's publisher instances
    uint64_t instances_seen; //  Clock of instance appearances, as the broker's
    size_t max_size;         //  Body limit in force
    hvn_msg_t msg;           //  Reused for every message
    hvn_msg_t fresh;         //  A fresh decoder's answer
    hvn_msg_t again;         //  The round trip's answer
} s_state_t;

//  Returns true when the two decodes of one message agree on everything the
//  message's kind fills.
static bool s_msg_same(const hvn_msg_t *a, const hvn_msg_t *b)
{
    if (a->event != b->event || memcmp(&a->header, &b->header, sizeof(a->header)) != 0 ||
        strcmp(a->topic, b->topic) != 0 || strcmp(a->host, b->host) != 0 ||
        strcmp(a->timestamp, b->timestamp) != 0 || strcmp(a->publisher_id, b->publisher_id) != 0 ||
        strcmp(a->message_id, b->message_id) != 0 || a->payload_major != b->payload_major ||
        a->payload_minor != b->payload_minor || a->interval_ms != b->interval_ms ||
        a->node_count != b->node_count || !hvn_node_equal(&a->node, &b->node))
        return false;
    return a->node_count == 0 || memcmp(a->nodes, b->nodes, a->node_count * 16) == 0;
}

//  Returns nothing; aborts unless an accepted message is what the decoder
//  promises.
static void s_check_accepted(const hvn_msg_t *msg, const void *topic, size_t topic_size)
{
    S_CHECK(strlen(msg->topic) == topic_size && memcmp(msg->topic, topic, topic_size) == 0);
    const char *at = strchr(msg->topic, '@');
    S_CHECK(at && strcmp(at + 1, msg->host) == 0 && msg->host[0] != '\0');
    S_CHECK(hvn_event_name(msg->event) != NULL);
    size_t event_len = (size_t)(at - msg->topic);
    S_CHECK(strlen(hvn_event_name(msg->event)) == event_len &&
            memcmp(hvn_event_name(msg->event), msg->topic, event_len) == 0);
    S_CHECK(strlen(msg->timestamp) == HVN_TIMESTAMP_LEN);
    bool notification = msg->event == HVN_EVENT_CREATE || msg->event == HVN_EVENT_UPDATE ||
                        msg->event == HVN_EVENT_DELETE;
    if (notification) {
        S_CHECK(msg->header.kind == HVN_KIND_NOTIFICATION || msg->header.kind == HVN_KIND_SYNC);
        //  libuuid agrees with the decoder's own UUID parser
        uuid_t raw;
        uint8_t own[16];
        S_CHECK(uuid_parse(msg->message_id, raw) == 0);
        S_CHECK(uuid_parse(msg->node.uuid, raw) == 0);
        S_CHECK(hvn_uuid_parse(msg->node.uuid, strlen(msg->node.uuid), own) == 0);
        S_CHECK(memcmp(raw, own, 16) == 0);
        if (msg->event != HVN_EVENT_DELETE)
            S_CHECK(hvn_node_validate(&msg->node, NULL) == 0);
    } else {
        S_CHECK(msg->header.kind == HVN_KIND_HEARTBEAT && msg->interval_ms >= 0);
        S_CHECK(msg->event == HVN_EVENT_HEARTBEAT || msg->node_count == 0);
    }
}

//  Returns nothing; aborts unless the message renders as JSON that parses
//  back into an object.
static void s_check_render(const hvn_msg_t *msg)
{
    char *text = hvn_json_render(msg);
    S_CHECK(text);
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    S_CHECK(root && json_is_object(root));
    json_decref(root);
    free(text);
}

//  What a walk of the cache saw
typedef struct {
    const char *host;           //  Host whose entries are counted
    const hvn_msg_t *heartbeat; //  When not NULL: count the entries its
                                //  prune removes
    hvn_seqmap_newer_t *newer;  //  For that prune
    size_t entries;             //  Entries walked
    size_t of_host;             //  Entries whose topic names host
    size_t doomed;              //  Of those, not listed and not newer
} s_walk_t;

//  Returns true when the heartbeat lists key.
static bool s_listed(const hvn_msg_t *heartbeat, const uint8_t *key)
{
    for (size_t i = 0; i < heartbeat->node_count; i++)
        if (memcmp(heartbeat->nodes[i], key, 16) == 0)
            return true;
    return false;
}

//  Returns 0 after counting one cache entry.
static int s_walk_entry(const hvn_cache_item_t *item, void *arg)
{
    s_walk_t *walk = arg;
    walk->entries++;
    const char *at = memchr(item->topic, '@', item->topic_size);
    S_CHECK(at);
    size_t host_len = item->topic_size - (size_t)(at + 1 - item->topic);
    if (host_len != strlen(walk->host) || memcmp(at + 1, walk->host, host_len) != 0)
        return 0;
    walk->of_host++;
    const hvn_msg_t *heartbeat = walk->heartbeat;
    if (!heartbeat || s_listed(heartbeat, item->key))
        return 0;
    hvn_header_t cached;
    S_CHECK(hvn_header_unpack(item->header, HVN_HEADER_SIZE, &cached) == HVN_OK);
    bool newer = memcmp(cached.instance, heartbeat->header.instance, 16) == 0
                     ? cached.seq > heartbeat->header.seq
                     : hvn_seqmap_newer(cached.instance, walk->newer);
    if (!newer)
        walk->doomed++;
    return 0;
}

//  Returns what a walk of the cache saw, after aborting unless the cache's
//  counts (all entries, entries of the host) agree with it.
static s_walk_t s_cache_walk(s_state_t *state, const hvn_msg_t *heartbeat,
                             hvn_seqmap_newer_t *newer)
{
    const hvn_msg_t *msg = &state->msg;
    s_walk_t walk = {.host = msg->host, .heartbeat = heartbeat, .newer = newer};
    S_CHECK(hvn_cache_foreach(state->cache, "", 0, s_walk_entry, &walk) == (long)walk.entries);
    S_CHECK(walk.entries == hvn_cache_size(state->cache));
    S_CHECK(walk.of_host == hvn_cache_host_size(state->cache, msg->host));
    return walk;
}

//  Returns nothing; a publisher heartbeat prunes the cached nodes of its
//  host, as the broker's does. Aborts unless exactly the entries neither
//  listed nor newer than the heartbeat went.
static void s_broker_prune(s_state_t *state)
{
    const hvn_msg_t *msg = &state->msg;
    //  An instance not known yet is the newest there is
    hvn_seqmap_newer_t newer;
    hvn_seqmap_newer_init(&newer, state->seqmap, msg->header.instance);
    s_walk_t before = s_cache_walk(state, msg, &newer);
    size_t removed =
        hvn_cache_prune(state->cache, msg->host, msg->nodes, msg->node_count, msg->header.instance,
                        msg->header.seq, hvn_seqmap_newer, &newer);
    S_CHECK(removed == before.doomed);
    s_walk_t after = s_cache_walk(state, msg, &newer);
    S_CHECK(after.doomed == 0 && after.entries + removed == before.entries);
}

//  Returns nothing; does with an accepted message what the broker does:
//  refuses hvn.broker from a publisher; a heartbeat prunes the cached nodes
//  of its host it does not list; a delete removes the node's entry; a
//  create or update of a node the cache does not hold is refused when its
//  host has S_NODES_MAX nodes, else stored; a notification's seq is
//  tracked per instance. Aborts unless the cache then holds the exact
//  frames and its host index agrees with its entries.
static void s_broker_store(s_state_t *state, const void *topic, size_t topic_size,
                           const void *header, const void *body, size_t body_size)
{
    const hvn_msg_t *msg = &state->msg;
    if (msg->event == HVN_EVENT_BROKER)
        return;
    if (msg->event == HVN_EVENT_HEARTBEAT) {
        hvn_seqmap_touch(state->seqmap, msg->header.instance, msg->interval_ms, 0);
        s_broker_prune(state);
        return;
    }
    uint8_t key[16];
    S_CHECK(hvn_uuid_parse(msg->node.uuid, strlen(msg->node.uuid), key) == 0);
    hvn_cache_item_t item;
    if (msg->event == HVN_EVENT_DELETE) {
        hvn_cache_delete(state->cache, key);
        S_CHECK(!hvn_cache_lookup(state->cache, key, &item));
    } else if (hvn_cache_host_size(state->cache, msg->host) < S_NODES_MAX ||
               hvn_cache_lookup(state->cache, key, &item)) {
        S_CHECK(hvn_cache_put(state->cache, key, topic, topic_size, header, body, body_size) >= 0);
        S_CHECK(hvn_cache_lookup(state->cache, key, &item));
        S_CHECK(item.topic_size == topic_size && memcmp(item.topic, topic, topic_size) == 0);
        S_CHECK(memcmp(item.header, header, HVN_HEADER_SIZE) == 0);
        S_CHECK(item.body_size == body_size && memcmp(item.body, body, body_size) == 0);
    } else
        return; //  Refused: over the host's node limit
    s_cache_walk(state, NULL, NULL);
    hvn_seqmap_update(state->seqmap, msg->header.instance, msg->header.seq, 0,
                      ++state->instances_seen);
}

//  Returns 0 with frames encoded again from the accepted message, or -1
//  when the encoder refuses it. The encoder is stricter than the decoder
//  (no empty service, no ':' in it), so a refusal is not a finding.
static int s_encode_again(s_state_t *state, hvn_frames_t *frames)
{
    const hvn_msg_t *msg = &state->msg;
    if (msg->event == HVN_EVENT_BROKER)
        return hvn_encoder_broker_heartbeat(state->encoder, msg->host, msg->publisher_id,
                                            msg->interval_ms, &msg->header, frames);
    char service[HVN_STR_MAX + 1];
    snprintf(service, sizeof(service), "%s", msg->publisher_id);
    char *colon = strchr(service, ':');
    S_CHECK(colon);
    *colon = '\0';
    hvn_envelope_t env = {.service = service,
                          .host = msg->host,
                          .timestamp = msg->timestamp,
                          .message_id = msg->message_id};
    if (msg->event != HVN_EVENT_HEARTBEAT)
        return hvn_encoder_notification(state->encoder, msg->event, &env, &msg->node, &msg->header,
                                        frames);
    char(*text)[HVN_UUID_STR_LEN + 1] = calloc(msg->node_count + 1, sizeof(*text));
    const char **uuids = calloc(msg->node_count + 1, sizeof(*uuids));
    S_CHECK(text && uuids);
    for (size_t i = 0; i < msg->node_count; i++) {
        uuid_unparse_lower(msg->nodes[i], text[i]);
        uuids[i] = text[i];
    }
    int rc = hvn_encoder_heartbeat(state->encoder, &env, msg->interval_ms, uuids, msg->node_count,
                                   &msg->header, frames);
    free(uuids);
    free(text);
    return rc;
}

//  Returns nothing; encodes an accepted message again from what was
//  decoded and aborts unless that decodes to the same content.
static void s_round_trip(s_state_t *state)
{
    const hvn_msg_t *msg = &state->msg;
    hvn_msg_t *again = &state->again;
    hvn_frames_t frames;
    if (s_encode_again(state, &frames) != 0)
        return;
    //  msg->nodes lives in the decoder, which the next decode reuses
    uint8_t(*nodes)[16] = malloc((msg->node_count + 1) * 16);
    S_CHECK(nodes);
    if (msg->node_count)
        memcpy(nodes, msg->nodes, msg->node_count * 16);
    hvn_reason_t reason =
        hvn_decoder_decode(state->decoder, frames.topic, frames.topic_size, frames.header,
                           HVN_HEADER_SIZE, frames.body, frames.body_size, again);
    //  The body limit may be below what the encoder wrote
    if (frames.body_size > state->max_size)
        S_CHECK(reason == HVN_R_TOO_BIG);
    else
        S_CHECK(reason == HVN_OK);
    if (reason != HVN_OK) {
        free(nodes);
        return;
    }
    S_CHECK(again->event == msg->event && strcmp(again->host, msg->host) == 0 &&
            strcmp(again->publisher_id, msg->publisher_id) == 0 &&
            again->header.kind == msg->header.kind && again->header.seq == msg->header.seq &&
            memcmp(again->header.instance, msg->header.instance, 16) == 0);
    switch (msg->event) {
    case HVN_EVENT_CREATE:
    case HVN_EVENT_UPDATE:
        S_CHECK(hvn_node_equal(&again->node, &msg->node));
        S_CHECK(strcmp(again->message_id, msg->message_id) == 0);
        break;
    case HVN_EVENT_DELETE:
        S_CHECK(again->node.id == msg->node.id && strcmp(again->node.uuid, msg->node.uuid) == 0);
        break;
    case HVN_EVENT_HEARTBEAT:
        S_CHECK(again->node_count == msg->node_count && again->interval_ms == msg->interval_ms);
        S_CHECK(msg->node_count == 0 || memcmp(again->nodes, nodes, msg->node_count * 16) == 0);
        break;
    default:
        S_CHECK(again->interval_ms == msg->interval_ms);
        break;
    }
    free(nodes);
}

//  Returns nothing; one message through every check.
static void s_one(s_state_t *state, const uint8_t *topic, size_t topic_size, const uint8_t *header,
                  size_t header_size, const uint8_t *body, size_t body_size)
{
    hvn_msg_t *msg = &state->msg;
    hvn_reason_t reason = hvn_decoder_decode(state->decoder, topic, topic_size, header, header_size,
                                             body, body_size, msg);
    S_CHECK(reason >= HVN_OK && reason < HVN_R_COUNT);
    S_CHECK(strcmp(hvn_reason_str(reason), "unknown") != 0);
    const char *detail = hvn_decoder_detail(state->decoder);
    S_CHECK(detail && strlen(detail) < 96);
    S_CHECK(reason == HVN_OK || detail[0] != '\0');
    //  A body the decoder read past msgpack was one the pre-scan passes,
    //  however the decoder chose to skip it
    bool body_read = reason == HVN_OK || reason == HVN_R_NOT_MAP || reason == HVN_R_MISSING_KEY ||
                     reason == HVN_R_WRONG_TYPE || reason == HVN_R_BAD_VALUE ||
                     reason == HVN_R_PAYLOAD_VERSION || reason == HVN_R_TOPIC_MISMATCH;
    S_CHECK(!body_read || hvn_fuzz_bounded(body, body_size, true));

    //  A fresh decoder agrees, refusal detail included
    hvn_decoder_t *fresh = hvn_decoder_new();
    S_CHECK(fresh);
    hvn_decoder_set_max_size(fresh, state->max_size);
    memset(&state->fresh, 0, sizeof(state->fresh));
    hvn_reason_t fresh_reason = hvn_decoder_decode(fresh, topic, topic_size, header, header_size,
                                                   body, body_size, &state->fresh);
    S_CHECK(fresh_reason == reason);
    S_CHECK(strcmp(hvn_decoder_detail(fresh), detail) == 0);
    if (reason == HVN_OK)
        S_CHECK(s_msg_same(msg, &state->fresh));
    hvn_decoder_destroy(&fresh);
    if (reason != HVN_OK)
        return;

    s_check_accepted(msg, topic, topic_size);
    s_check_render(msg);
    s_broker_store(state, topic, topic_size, header, body, body_size);
    s_round_trip(state);
}

//  Returns the next n-byte big-endian size at *pos (advancing it), or
//  SIZE_MAX when the input ends first.
static size_t s_take_size(const uint8_t *data, size_t size, size_t *pos, int n)
{
    if (size - *pos < (size_t)n)
        return SIZE_MAX;
    size_t value = 0;
    for (int i = 0; i < n; i++)
        value = value << 8 | data[(*pos)++];
    return value;
}

//  Returns the length of the next frame, at most what is left, and
//  advances *pos past it; *at receives where it starts.
static size_t s_take_frame(const uint8_t *data, size_t size, size_t *pos, size_t want,
                           const uint8_t **at)
{
    size_t left = size - *pos;
    size_t len = want < left ? want : left;
    *at = data + *pos;
    *pos += len;
    return len;
}

//  Returns 0 after running every message of the input through the checks.
int hvn_fuzz_decoder(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_state_t *state = calloc(1, sizeof(*state));
    S_CHECK(state);
    state->decoder = hvn_decoder_new();
    state->encoder = hvn_encoder_new();
    state->cache = hvn_cache_new();
    state->seqmap = hvn_seqmap_new(S_INSTANCES_MAX);
    S_CHECK(state->decoder && state->encoder && state->cache && state->seqmap);
    state->max_size = s_limits[data[0] & 3];
    hvn_decoder_set_max_size(state->decoder, state->max_size);

    size_t pos = 1;
    while (pos < size) {
        const uint8_t *topic, *header, *body;
        size_t want = s_take_size(data, size, &pos, 1);
        size_t topic_size = s_take_frame(data, size, &pos, want, &topic);
        want = s_take_size(data, size, &pos, 1);
        size_t header_size = s_take_frame(data, size, &pos, want, &header);
        want = s_take_size(data, size, &pos, 2);
        size_t body_size = s_take_frame(data, size, &pos, want == 0xFFFF ? SIZE_MAX : want, &body);
        s_one(state, topic, topic_size, header, header_size, body, body_size);
    }
    hvn_seqmap_destroy(&state->seqmap);
    hvn_cache_destroy(&state->cache);
    hvn_encoder_destroy(&state->encoder);
    hvn_decoder_destroy(&state->decoder);
    free(state);
    return 0;
}

//  Returns the bytes of one framed message written to out, or 0 when a
//  frame does not fit the framing.
size_t hvn_fuzz_frame(uint8_t *out, const void *topic, size_t topic_size, const void *header,
                      size_t header_size, const void *body, size_t body_size, int last)
{
    if (topic_size > 255 || header_size > 255 || (!last && body_size >= 0xFFFF))
        return 0;
    size_t pos = 0;
    out[pos++] = (uint8_t)topic_size;
    memcpy(out + pos, topic, topic_size);
    pos += topic_size;
    out[pos++] = (uint8_t)header_size;
    memcpy(out + pos, header, header_size);
    pos += header_size;
    size_t coded = last ? 0xFFFF : body_size;
    out[pos++] = (uint8_t)(coded >> 8);
    out[pos++] = (uint8_t)coded;
    memcpy(out + pos, body, body_size);
    return pos + body_size;
}

#ifdef HVN_FUZZ_LIBFUZZER
//  libFuzzer's entry point. Returns 0.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return hvn_fuzz_decoder(data, size);
}
#endif
