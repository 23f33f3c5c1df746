/*  hvn_wire.c — what both sides of the wire share: the names of events
    and refusal reasons, the header's 26 bytes and the topic's two parts.
*/
#include "hvn_wire.h"
#include "hvn_wire_int.h"

#include <endian.h>
#include <string.h>

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

//  Returns the event type name, or NULL for HVN_EVENT_NONE or out of range.
const char *hvn_event_name(hvn_event_t event)
{
    if ((unsigned)event >= S_EVENT_COUNT)
        return NULL;
    return s_event_names[event];
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
        if (hvni_event_len((hvn_event_t)e) == len && hvni_same(s_event_names[e], name, len))
            return (hvn_event_t)e;
    return HVN_EVENT_NONE;
}

//  Returns HVN_OK (an unknown event gives *event = HVN_EVENT_NONE) or
//  HVN_R_TOPIC when the topic is not "<event>@<host>" in 1..255 bytes of
//  UTF-8 with exactly one '@' and no control character (a byte below 0x20,
//  or 0x7f: a host name reaches terminals and logs).
hvn_reason_t hvn_topic_parse(const void *topic, size_t size, hvn_event_t *event,
                             char host_out[HVN_TOPIC_MAX + 1])
{
    const char *text = topic;
    if (!topic || size == 0 || size > HVN_TOPIC_MAX || !hvn_utf8_valid(text, size))
        return HVN_R_TOPIC;
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7F)
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
