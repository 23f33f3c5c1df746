/*  hvn_json.h — JSON in and out, with jansson, walking the schema table.

    Out: a decoded message rendered as the envelope every Nova versioned-
    notification consumer parses (priority, event_type, timestamp,
    publisher_id, message_id, payload{nova_object.*}).
    In: one JSON object describing a node, as hvn-pub reads it.
*/
#ifndef HVN_JSON_H_INCLUDED
#define HVN_JSON_H_INCLUDED

#include "hvn_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  Renders a decoded notification (create/update/delete) or heartbeat as
//  one line of compact JSON, no trailing newline. Returns a heap string the
//  caller frees with free(), or NULL when out of memory.
char *hvn_json_render(const hvn_msg_t *msg);

//  Renders a node as the JSON object hvn_json_parse_node reads: every field
//  of the schema table, in its order, under its payload name, null where the
//  node holds none. One line of compact JSON, no trailing newline. Returns
//  a heap string the caller frees with free(), or NULL when out of memory.
char *hvn_json_node(const hvn_node_t *node);

//  Parses one JSON object describing a node: payload field names as keys,
//  "uuid" required, non-nullable fields required unless `deleted` is true;
//  null allowed for nullable fields; unknown keys are an error.
//  {"uuid": "...", "deleted": true} sets *deleted. Returns 0, or -1 with a
//  one-line reason in err (naming the field) when the object is refused.
int hvn_json_parse_node(const char *text, size_t size, hvn_node_t *node,
                        bool *deleted, char *err, size_t err_size);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
