/*  hvn_encoder.h — an HVN/1 message's three frames from a node or a
    heartbeat.

    One reused buffer per encoder (one encoder per thread): a warm encoder
    does not allocate. The payload's fields come from the schema table.
*/
#ifndef HVN_ENCODER_H_INCLUDED
#define HVN_ENCODER_H_INCLUDED

#include "hvn_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  The three frames of an encoded message. body is owned by the encoder and
//  valid until its next call.
typedef struct {
    char topic[HVN_TOPIC_MAX + 1]; //  NUL-terminated
    size_t topic_size;             //  Without the NUL
    uint8_t header[HVN_HEADER_SIZE];
    const uint8_t *body;
    size_t body_size;
} hvn_frames_t;

//  What goes around a payload. NULL timestamp/message_id: now / a fresh UUID4.
typedef struct {
    const char *service;    //  publisher_id = service ":" host; NULL = nova-compute
    const char *host;       //  Required; no '@', 1..HVN_STR_MAX bytes
    const char *timestamp;  //  NULL = now
    const char *message_id; //  NULL = fresh
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
int hvn_encoder_notification(hvn_encoder_t *self, hvn_event_t event, const hvn_envelope_t *env,
                             const hvn_node_t *node, const hvn_header_t *header, hvn_frames_t *out);

//  Encodes a publisher heartbeat listing `count` node uuids (canonical text).
//  The header's kind is set to HVN_KIND_HEARTBEAT here.
//  Returns 0, or -1 on invalid input.
int hvn_encoder_heartbeat(hvn_encoder_t *self, const hvn_envelope_t *env, int64_t interval_ms,
                          const char *const *uuids, size_t count, const hvn_header_t *header,
                          hvn_frames_t *out);

//  Encodes a broker heartbeat: topic hvn.broker@<name>. The header's kind
//  is set to HVN_KIND_HEARTBEAT here.
//  Returns 0, or -1 on invalid input.
int hvn_encoder_broker_heartbeat(hvn_encoder_t *self, const char *name, const char *broker_id,
                                 int64_t interval_ms, const hvn_header_t *header,
                                 hvn_frames_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
