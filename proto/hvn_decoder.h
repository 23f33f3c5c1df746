/*  hvn_decoder.h — three frames checked and read into an hvn_msg_t.

    The decoder is paranoid: it checks the header first, bounds the body,
    checks every msgpack type before reading it, copies what it keeps into a
    fixed-size hvn_msg_t (no allocation per field) and names the first thing
    that was wrong as an hvn_reason_t. msgpack types never appear here.
*/
#ifndef HVN_DECODER_H_INCLUDED
#define HVN_DECODER_H_INCLUDED

#include "hvn_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  A decoded message. Create/update fill all of `node`; delete fills id and
//  uuid only. Heartbeats fill interval_ms (and, for a publisher's, nodes).
typedef struct {
    hvn_header_t header;                   //  Frame 1
    hvn_event_t event;                     //  From the topic
    char topic[HVN_TOPIC_MAX + 1];         //  Frame 0
    char host[HVN_TOPIC_MAX + 1];          //  Topic part after '@'
    char timestamp[HVN_TIMESTAMP_LEN + 1]; //  Envelope timestamp
    char publisher_id[HVN_STR_MAX + 1];    //  publisher_id or broker_id
    char message_id[HVN_UUID_STR_LEN + 1]; //  Notifications only
    int payload_major;                     //  nova_object.version
    int payload_minor;
    hvn_node_t node;            //  nova_object.data
    uint8_t node_uuid[16];      //  node.uuid's 16 bytes (create/
                                //  update/delete; zero otherwise)
    int64_t interval_ms;        //  Heartbeats
    size_t node_count;          //  Publisher heartbeat: uuids
    const uint8_t (*nodes)[16]; //  Owned by the decoder; valid
                                //  until its next decode
} hvn_msg_t;

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
hvn_reason_t hvn_decoder_decode(hvn_decoder_t *self, const void *topic, size_t topic_size,
                                const void *header, size_t header_size, const void *body,
                                size_t body_size, hvn_msg_t *out);

//  After a refusal: the key or part that was wrong ("payload.vcpus",
//  "topic"), for logs. Valid until the next decode.
const char *hvn_decoder_detail(const hvn_decoder_t *self);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
