/*  hvn_oslo.c — the messagingv2 body (see hvn_oslo.h), written with
    jansson on top of the envelope hvn_json_render() already writes.
*/
#include "hvn_oslo.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_json_int.h"

void hvn_oslo_unique_id(const char *message_id, char out[33])
{
    size_t o = 0;
    for (const char *p = message_id; *p && o < 32; p++)
        if (isxdigit((unsigned char)*p))
            out[o++] = (char)tolower((unsigned char)*p);
    out[o] = '\0';
}

//  Returns the inner message (the envelope plus _unique_id) as a heap JSON
//  string, or NULL. The envelope is jansson's rendering of a JSON object;
//  the one key added goes before its closing brace, its value 32 hex
//  digits, which need no escaping (parsing the envelope back to add it
//  through jansson cost four times the rendering itself).
static char *s_inner(const hvn_msg_t *msg)
{
    char *envelope = hvn_json_render(msg);
    if (!envelope)
        return NULL;
    size_t len = strlen(envelope);
    if (len < 2 || envelope[0] != '{' || envelope[len - 1] != '}') {
        free(envelope);
        return NULL;
    }
    char unique_id[33];
    hvn_oslo_unique_id(msg->message_id, unique_id);
    static const char key[] = ",\"_unique_id\":\"";
    char *inner = realloc(envelope, len + sizeof(key) - 1 + 32 + 3);
    if (!inner) {
        free(envelope);
        return NULL;
    }
    snprintf(inner + len - 1, sizeof(key) - 1 + 32 + 4, "%s%s\"}", len > 2 ? key : key + 1,
             unique_id);
    return inner;
}

//  The outer object is written around the inner message, quoted as one
//  JSON string (hvni_json_string: jansson's own dump of it as a string
//  checked every character's UTF-8 again and cost more than rendering the
//  message; the inner text is jansson's rendering, valid UTF-8; the suite
//  compares the body jansson reads back with the inner text).
char *hvn_oslo_body(const hvn_msg_t *msg, size_t *size)
{
    if (msg->header.kind == HVN_KIND_HEARTBEAT || !msg->message_id[0])
        return NULL;
    char *inner = s_inner(msg);
    if (!inner)
        return NULL;
    static const char head[] = "{\"oslo.version\":\"2.0\",\"oslo.message\":";
    size_t inner_len = strlen(inner);
    char *body = malloc(sizeof(head) - 1 + HVNI_JSON_STRING_MAX(inner_len) + 2);
    if (body) {
        char *out = body;
        memcpy(out, head, sizeof(head) - 1);
        out = hvni_json_string(out + sizeof(head) - 1, inner, inner_len);
        memcpy(out, "}", 2);
        if (size)
            *size = (size_t)(out + 1 - body);
    }
    free(inner);
    return body;
}
