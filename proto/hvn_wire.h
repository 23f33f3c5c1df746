/*  hvn_wire.h — the HVN/1 message as it travels: three frames.

    frame 0  topic   "<event_type>@<host>", 1..255 bytes
    frame 1  header  26 bytes: version, kind, seq (u64 BE), instance id (16)
    frame 2  body    msgpack map (envelope + payload, or a heartbeat)

    The sizes, kinds, events and refusal reasons both sides of the wire
    share, the header's 26 bytes and the topic's two parts. The bodies are
    the encoder's (hvn_encoder.h) and the decoder's (hvn_decoder.h).
*/
#ifndef HVN_WIRE_H_INCLUDED
#define HVN_WIRE_H_INCLUDED

#include "hvn_schema.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_WIRE_VERSION 1
#define HVN_HEADER_SIZE 26
#define HVN_TOPIC_MAX 255
#define HVN_TIMESTAMP_LEN 26   //  "YYYY-MM-DD HH:MM:SS.ffffff"
#define HVN_MAX_MSG_SIZE 65536 //  Default body limit, bytes

//  Publisher heartbeats list every node uuid (38 msgpack bytes each), so
//  they are bounded by nodes per publisher rather than by the notification
//  limit: a default broker accepts a heartbeat of up to
//  HVN_HEARTBEAT_NODES_MAX nodes, HVN_HEARTBEAT_SIZE_MAX(nodes) bytes.
#define HVN_HEARTBEAT_NODES_MAX 10000
#define HVN_HEARTBEAT_SIZE_MAX(nodes) (4096 + 40 * (size_t)(nodes))
#define HVN_DEFAULT_SERVICE "nova-compute"

//  Event types and topic prefixes
#define HVN_EVENT_CREATE_NAME "compute_node.create"
#define HVN_EVENT_UPDATE_NAME "compute_node.update"
#define HVN_EVENT_DELETE_NAME "compute_node.delete"
#define HVN_EVENT_HEARTBEAT_NAME "hvn.heartbeat"
#define HVN_EVENT_BROKER_NAME "hvn.broker"

//  Header kinds
typedef enum { HVN_KIND_NOTIFICATION = 1, HVN_KIND_HEARTBEAT = 2, HVN_KIND_SYNC = 3 } hvn_kind_t;

//  What a message is about (the topic's part before '@')
typedef enum {
    HVN_EVENT_NONE = 0,
    HVN_EVENT_CREATE,    //  compute_node.create
    HVN_EVENT_UPDATE,    //  compute_node.update
    HVN_EVENT_DELETE,    //  compute_node.delete
    HVN_EVENT_HEARTBEAT, //  hvn.heartbeat (a publisher's)
    HVN_EVENT_BROKER     //  hvn.broker (a broker's heartbeat)
} hvn_event_t;

//  Why a message was refused. HVN_OK is not a refusal.
typedef enum {
    HVN_OK = 0,
    HVN_R_FRAMES,          //  Not exactly 3 frames
    HVN_R_TOPIC,           //  Topic empty, over 255 bytes, or without '@'
    HVN_R_HEADER_SIZE,     //  Header not 26 bytes
    HVN_R_HEADER_VERSION,  //  Header version not 1
    HVN_R_HEADER_KIND,     //  Kind not 1..3, or not matching the event
    HVN_R_TOO_BIG,         //  Body over the size limit
    HVN_R_MSGPACK,         //  Body not valid msgpack, or trailing bytes
    HVN_R_NOT_MAP,         //  Body (or a nested object) not a map
    HVN_R_MISSING_KEY,     //  A required key is absent
    HVN_R_WRONG_TYPE,      //  A value of the wrong msgpack type, or nil where not nullable
    HVN_R_BAD_VALUE,       //  Well typed but malformed (uuid, ip, timestamp, length)
    HVN_R_UNKNOWN_EVENT,   //  event_type not one we know
    HVN_R_PAYLOAD_VERSION, //  Payload major version unknown
    HVN_R_TOPIC_MISMATCH,  //  event_type or host disagrees with the topic
    HVN_R_NOT_AUTHORIZED,  //  Host not the one bound to the sender's key
    HVN_R_OVER_LIMIT,      //  Past a receiver's limit (e.g. nodes per host)
    HVN_R_STALE,           //  Not newer than what the receiver has from its instance (a replay)
    HVN_R_COUNT
} hvn_reason_t;

//  Returns a short, stable, snake_case name for a reason ("too_big").
const char *hvn_reason_str(hvn_reason_t reason);

//  Frame 1
typedef struct {
    uint8_t version;      //  HVN_WIRE_VERSION
    uint8_t kind;         //  hvn_kind_t
    uint64_t seq;         //  Per publisher instance; 0 = none yet
    uint8_t instance[16]; //  Publisher (or broker) instance id, raw UUID
} hvn_header_t;

//  Writes a header's 26 wire bytes.
void hvn_header_pack(const hvn_header_t *header, uint8_t out[HVN_HEADER_SIZE]);

//  Reads 26 wire bytes. Returns HVN_OK or HVN_R_HEADER_SIZE/_VERSION/_KIND.
hvn_reason_t hvn_header_unpack(const void *data, size_t size, hvn_header_t *out);

//  Splits a topic into event and host. Returns HVN_OK or HVN_R_TOPIC.
//  host_out may be NULL; it receives the NUL-terminated host.
hvn_reason_t hvn_topic_parse(const void *topic, size_t size, hvn_event_t *event,
                             char host_out[HVN_TOPIC_MAX + 1]);

//  Returns the event type name ("compute_node.update"), or NULL.
const char *hvn_event_name(hvn_event_t event);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
