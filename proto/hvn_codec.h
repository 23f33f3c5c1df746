/*  hvn_codec.h — the HVN/1 message: three frames, encoded and decoded.

    frame 0  topic   "<event_type>@<host>", 1..255 bytes
    frame 1  header  26 bytes: version, kind, seq (u64 BE), instance id (16)
    frame 2  body    msgpack map (envelope + payload, or a heartbeat)

    The decoder is paranoid: it checks the header first, bounds the body,
    checks every msgpack type before reading it, copies what it keeps into a
    fixed-size hvn_msg_t (no allocation per field) and names the first thing
    that was wrong as an hvn_reason_t. msgpack types never appear here.
*/
#ifndef HVN_CODEC_H_INCLUDED
#define HVN_CODEC_H_INCLUDED

#include "hvn_schema.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_WIRE_VERSION   1
#define HVN_HEADER_SIZE    26
#define HVN_TOPIC_MAX      255
#define HVN_TIMESTAMP_LEN  26      //  "YYYY-MM-DD HH:MM:SS.ffffff"
#define HVN_MAX_MSG_SIZE   65536   //  Default body limit, bytes

//  Publisher heartbeats list every node uuid (38 msgpack bytes each), so
//  they are bounded by nodes per publisher rather than by the notification
//  limit: a default broker accepts a heartbeat of up to
//  HVN_HEARTBEAT_NODES_MAX nodes, HVN_HEARTBEAT_SIZE_MAX(nodes) bytes.
#define HVN_HEARTBEAT_NODES_MAX 10000
#define HVN_HEARTBEAT_SIZE_MAX(nodes) (4096 + 40 * (size_t)(nodes))
#define HVN_DEFAULT_SERVICE "nova-compute"

//  Event types and topic prefixes
#define HVN_EVENT_CREATE_NAME    "compute_node.create"
#define HVN_EVENT_UPDATE_NAME    "compute_node.update"
#define HVN_EVENT_DELETE_NAME    "compute_node.delete"
#define HVN_EVENT_HEARTBEAT_NAME "hvn.heartbeat"
#define HVN_EVENT_BROKER_NAME    "hvn.broker"

//  Header kinds
typedef enum {
    HVN_KIND_NOTIFICATION = 1,
    HVN_KIND_HEARTBEAT = 2,
    HVN_KIND_SYNC = 3
} hvn_kind_t;

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
    HVN_R_FRAMES,           //  Not exactly 3 frames
    HVN_R_TOPIC,            //  Topic empty, over 255 bytes, or without '@'
    HVN_R_HEADER_SIZE,      //  Header not 26 bytes
    HVN_R_HEADER_VERSION,   //  Header version not 1
    HVN_R_HEADER_KIND,      //  Kind not 1..3, or not matching the event
    HVN_R_TOO_BIG,          //  Body over the size limit
    HVN_R_MSGPACK,          //  Body not valid msgpack, or trailing bytes
    HVN_R_NOT_MAP,          //  Body (or a nested object) not a map
    HVN_R_MISSING_KEY,      //  A required key is absent
    HVN_R_WRONG_TYPE,       //  A value of the wrong msgpack type, or nil where not nullable
    HVN_R_BAD_VALUE,        //  Well typed but malformed (uuid, ip, timestamp, length)
    HVN_R_UNKNOWN_EVENT,    //  event_type not one we know
    HVN_R_PAYLOAD_VERSION,  //  Payload major version unknown
    HVN_R_TOPIC_MISMATCH,   //  event_type or host disagrees with the topic
    HVN_R_NOT_AUTHORIZED,   //  Host not the one bound to the sender's key
    HVN_R_OVER_LIMIT,       //  Past a receiver's limit (e.g. nodes per host)
    HVN_R_STALE,            //  Not newer than what the receiver has from its instance (a replay)
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

//  A decoded message. Create/update fill all of `node`; delete fills id and
//  uuid only. Heartbeats fill interval_ms (and, for a publisher's, nodes).
typedef struct {
    hvn_header_t header;                        //  Frame 1
    hvn_event_t event;                          //  From the topic
    char topic[HVN_TOPIC_MAX + 1];              //  Frame 0
    char host[HVN_TOPIC_MAX + 1];               //  Topic part after '@'
    char timestamp[HVN_TIMESTAMP_LEN + 1];      //  Envelope timestamp
    char publisher_id[HVN_STR_MAX + 1];         //  publisher_id or broker_id
    char message_id[HVN_UUID_STR_LEN + 1];      //  Notifications only
    int payload_major;                          //  nova_object.version
    int payload_minor;
    hvn_node_t node;                            //  nova_object.data
    uint8_t node_uuid[16];                      //  node.uuid's 16 bytes (create/
                                                //  update/delete; zero otherwise)
    int64_t interval_ms;                        //  Heartbeats
    size_t node_count;                          //  Publisher heartbeat: uuids
    const uint8_t (*nodes)[16];                 //  Owned by the decoder; valid
                                                //  until its next decode
} hvn_msg_t;

//  The three frames of an encoded message. body is owned by the encoder and
//  valid until its next call.
typedef struct {
    char topic[HVN_TOPIC_MAX + 1];  //  NUL-terminated
    size_t topic_size;              //  Without the NUL
    uint8_t header[HVN_HEADER_SIZE];
    const uint8_t *body;
    size_t body_size;
} hvn_frames_t;

//  What goes around a payload. NULL timestamp/message_id: now / a fresh UUID4.
typedef struct {
    const char *service;     //  publisher_id = service ":" host; NULL = nova-compute
    const char *host;        //  Required; no '@', 1..HVN_STR_MAX bytes
    const char *timestamp;   //  NULL = now
    const char *message_id;  //  NULL = fresh
} hvn_envelope_t;

// --------------------------------------------------------------------------
//  Encoder: reusable buffers, one per thread.

typedef struct _hvn_encoder_t hvn_encoder_t;

//  Returns a new encoder, or NULL when out of memory.
hvn_encoder_t *hvn_encoder_new(void);

//  Destroys an encoder; NULL-safe, sets *self_p to NULL.
void hvn_encoder_destroy(hvn_encoder_t **self_p);

//  Encodes a create/update/delete notification of `node` into *out, with
//  the given header (kind, seq, instance; version is set here).
//  Returns 0, or -1 when the node or envelope is invalid.
int hvn_encoder_notification(hvn_encoder_t *self, hvn_event_t event,
                             const hvn_envelope_t *env, const hvn_node_t *node,
                             const hvn_header_t *header, hvn_frames_t *out);

//  Encodes a publisher heartbeat listing `count` node uuids (canonical text).
//  The header's kind is set to HVN_KIND_HEARTBEAT here.
//  Returns 0, or -1 on invalid input.
int hvn_encoder_heartbeat(hvn_encoder_t *self, const hvn_envelope_t *env,
                          int64_t interval_ms, const char *const *uuids,
                          size_t count, const hvn_header_t *header,
                          hvn_frames_t *out);

//  Encodes a broker heartbeat: topic hvn.broker@<name>. The header's kind
//  is set to HVN_KIND_HEARTBEAT here.
//  Returns 0, or -1 on invalid input.
int hvn_encoder_broker_heartbeat(hvn_encoder_t *self, const char *name,
                                 const char *broker_id, int64_t interval_ms,
                                 const hvn_header_t *header, hvn_frames_t *out);

// --------------------------------------------------------------------------
//  Decoder: validates three frames into an hvn_msg_t. Reusable, one per
//  thread; it keeps its token array between calls so a decode does not
//  allocate once warm.

typedef struct _hvn_decoder_t hvn_decoder_t;

//  Returns a new decoder (body limit HVN_MAX_MSG_SIZE), or NULL.
hvn_decoder_t *hvn_decoder_new(void);

//  Destroys a decoder; NULL-safe, sets *self_p to NULL.
void hvn_decoder_destroy(hvn_decoder_t **self_p);

//  Sets the largest body accepted, in bytes.
void hvn_decoder_set_max_size(hvn_decoder_t *self, size_t max_size);

//  Decodes and validates one message's three frames. Returns HVN_OK with
//  *out filled, or the first reason the message is refused.
hvn_reason_t hvn_decoder_decode(hvn_decoder_t *self,
                                const void *topic, size_t topic_size,
                                const void *header, size_t header_size,
                                const void *body, size_t body_size,
                                hvn_msg_t *out);

//  After a refusal: the key or part that was wrong ("payload.vcpus",
//  "topic"), for logs. Valid until the next decode.
const char *hvn_decoder_detail(const hvn_decoder_t *self);

//  Splits a topic into event and host. Returns HVN_OK or HVN_R_TOPIC.
//  host_out may be NULL; it receives the NUL-terminated host.
hvn_reason_t hvn_topic_parse(const void *topic, size_t size, hvn_event_t *event,
                             char host_out[HVN_TOPIC_MAX + 1]);

//  Returns the event type name ("compute_node.update"), or NULL.
const char *hvn_event_name(hvn_event_t event);

// --------------------------------------------------------------------------
//  msgpack guard

//  Returns true when data begins with one complete msgpack object in which
//  no array or map claims more elements than bytes remain (each element
//  takes at least one byte), so msgpack_unpack cannot be made to allocate
//  for elements that are not there. With allow_trailing false, also that
//  nothing follows the object. Walks without recursion; never reads past
//  size. Use it before msgpack_unpack on anything a peer sent.
bool hvn_msgpack_bounded(const void *data, size_t size, bool allow_trailing);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
