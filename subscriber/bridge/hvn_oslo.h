/*  hvn_oslo.h — a notification in oslo.messaging's messagingv2 form.

    The body Nova's notifier would put on RabbitMQ for it (oslo.messaging
    _drivers/common.py serialize_msg):

        {"oslo.version": "2.0", "oslo.message": "<inner JSON, as a string>"}

    The inner message is the section 3 envelope exactly as hvn_json_render()
    writes it (message_id, publisher_id, event_type, priority, timestamp,
    payload) plus "_unique_id": the message id's 32 hex digits, so that the
    same notification always carries the same _unique_id.
*/
#ifndef HVN_OSLO_H_INCLUDED
#define HVN_OSLO_H_INCLUDED

#include "hvn_proto.h"

//  Returns the messagingv2 body of a decoded create/update/delete as a heap
//  string the caller frees (its length in *size), or NULL when msg is not a
//  notification with a message id, or memory ran out.
char *hvn_oslo_body(const hvn_msg_t *msg, size_t *size);

//  Returns nothing; writes the _unique_id of a canonical message id (its
//  hex digits, lower case, without dashes) into out.
void hvn_oslo_unique_id(const char *message_id, char out[33]);

#endif
