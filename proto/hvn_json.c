/*  hvn_json.c — JSON in and out, with jansson, walking the schema table.

    Out: the Nova versioned-notification envelope, so a consumer that already
    parses Nova's notifications reads ours unchanged. In: one node per JSON
    object, as hvn-pub reads it, strict about names and types because a typo
    in a script should be an error, not a silently missing field.
*/
#include "hvn_json.h"
#include "hvn_json_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

// --------------------------------------------------------------------------
//  Out

//  Returns nothing; sets key in obj to value, remembering a failure (NULL
//  value or set refused) in *failed.
//  The keys are the envelope's and the schema table's names, ASCII: jansson
//  need not check them.
static void s_set(json_t *obj, const char *key, json_t *value, bool *failed)
{
    if (!value || json_object_set_new_nocheck(obj, key, value) != 0)
        *failed = true;
}

//  Returns a new JSON string of the len bytes at text, or NULL when they
//  are not UTF-8. hvn_utf8_valid() checks it once, in a fraction of what
//  jansson's own check of every character costs.
static json_t *s_string(const char *text, size_t len)
{
    return hvn_utf8_valid(text, len) ? json_stringn_nocheck(text, len) : NULL;
}

//  Returns s_string() of a NUL-terminated text.
static json_t *s_text(const char *text)
{
    return s_string(text, strlen(text));
}

//  Returns nova_object.data for node as a new JSON object (only the
//  in_delete fields for a delete), or NULL.
static json_t *s_render_data(const hvn_node_t *node, bool delete_payload)
{
    json_t *data = json_object();
    bool failed = !data;
    for (int f = 0; f < HVN_F_COUNT && !failed; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (delete_payload && !field->in_delete)
            continue;
        const char *value = (const char *)node + field->offset;
        json_t *item;
        if (hvn_node_is_null(node, f))
            item = json_null();
        else if (field->type == HVN_TYPE_INT)
            item = json_integer(*(const int64_t *)value);
        else
            item = s_string(value, strnlen(value, field->size));
        s_set(data, field->name, item, &failed);
    }
    if (failed) {
        json_decref(data);
        return NULL;
    }
    return data;
}

//  Returns the envelope of a create/update/delete as a new JSON object, or
//  NULL.
static json_t *s_render_notification(const hvn_msg_t *msg)
{
    bool is_delete = msg->event == HVN_EVENT_DELETE;
    char version[32];
    snprintf(version, sizeof(version), "%d.%d", msg->payload_major, msg->payload_minor);
    json_t *root = json_object();
    json_t *payload = json_object();
    bool failed = !root || !payload;
    if (!failed) {
        s_set(root, "priority", s_text("INFO"), &failed);
        s_set(root, "event_type", s_text(hvn_event_name(msg->event)), &failed);
        s_set(root, "timestamp", s_text(msg->timestamp), &failed);
        s_set(root, "publisher_id", s_text(msg->publisher_id), &failed);
        s_set(root, "message_id", s_text(msg->message_id), &failed);
        s_set(payload, "nova_object.name",
              s_text(is_delete ? HVN_DELETE_PAYLOAD_NAME : HVN_PAYLOAD_NAME), &failed);
        s_set(payload, "nova_object.namespace", s_text(HVN_PAYLOAD_NAMESPACE), &failed);
        s_set(payload, "nova_object.version", s_text(version), &failed);
        s_set(payload, "nova_object.data", s_render_data(&msg->node, is_delete), &failed);
        s_set(root, "payload", json_incref(payload), &failed);
    }
    json_decref(payload);
    if (failed) {
        json_decref(root);
        return NULL;
    }
    return root;
}

//  Returns a heartbeat (publisher's or broker's) as a new JSON object, or
//  NULL.
static json_t *s_render_heartbeat(const hvn_msg_t *msg)
{
    bool is_broker = msg->event == HVN_EVENT_BROKER;
    json_t *root = json_object();
    bool failed = !root;
    if (failed)
        return NULL;
    s_set(root, "event_type", s_text(hvn_event_name(msg->event)), &failed);
    s_set(root, is_broker ? "broker_id" : "publisher_id", s_text(msg->publisher_id), &failed);
    s_set(root, "timestamp", s_text(msg->timestamp), &failed);
    s_set(root, "interval_ms", json_integer(msg->interval_ms), &failed);
    if (!is_broker) {
        json_t *nodes = json_array();
        for (size_t i = 0; nodes && i < msg->node_count; i++) {
            char text[HVN_UUID_STR_LEN + 1];
            snprintf(text, sizeof(text),
                     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     msg->nodes[i][0], msg->nodes[i][1], msg->nodes[i][2], msg->nodes[i][3],
                     msg->nodes[i][4], msg->nodes[i][5], msg->nodes[i][6], msg->nodes[i][7],
                     msg->nodes[i][8], msg->nodes[i][9], msg->nodes[i][10], msg->nodes[i][11],
                     msg->nodes[i][12], msg->nodes[i][13], msg->nodes[i][14], msg->nodes[i][15]);
            if (json_array_append_new(nodes, s_text(text)) != 0)
                failed = true;
        }
        s_set(root, "nodes", nodes, &failed);
    }
    if (failed) {
        json_decref(root);
        return NULL;
    }
    return root;
}

//  Returns the message as one line of compact JSON (caller frees), or NULL
//  when out of memory or the message's event is none.
char *hvn_json_render(const hvn_msg_t *msg)
{
    json_t *root = NULL;
    if (msg->event == HVN_EVENT_CREATE || msg->event == HVN_EVENT_UPDATE ||
        msg->event == HVN_EVENT_DELETE)
        root = s_render_notification(msg);
    else if (msg->event == HVN_EVENT_HEARTBEAT || msg->event == HVN_EVENT_BROKER)
        root = s_render_heartbeat(msg);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

//  Returns the node as one line of compact JSON (caller frees), or NULL
//  when out of memory.
char *hvn_json_node(const hvn_node_t *node)
{
    json_t *data = s_render_data(node, false);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    return text;
}

// --------------------------------------------------------------------------
//  In

//  Returns -1 after writing the formatted reason into err (when there is
//  room). Control characters, which a quoted key or jansson's excerpt of
//  the input can carry, become '?': the reason stays one line of text.
static int s_error(char *err, size_t err_size, const char *format, ...)
{
    if (err && err_size > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(err, err_size, format, args);
        va_end(args);
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7F)
                *c = '?';
    }
    return -1;
}

//  Returns 0 with field f of node set from value, or -1 with err naming the
//  field.
static int s_parse_field(hvn_node_t *node, int f, json_t *value, char *err, size_t err_size)
{
    const hvn_field_t *field = &hvn_schema_fields[f];
    const char *expected = field->type == HVN_TYPE_INT ? "integer" : "string";
    if (json_is_null(value)) {
        if (!field->nullable)
            return s_error(err, err_size, "field '%s': expected %s, not null", field->name,
                           expected);
        hvn_node_set_null(node, f);
        return 0;
    }
    if (field->type == HVN_TYPE_INT) {
        if (!json_is_integer(value))
            return s_error(err, err_size, "field '%s': expected integer", field->name);
        hvn_node_set_int(node, f, (int64_t)json_integer_value(value));
        return 0;
    }
    if (!json_is_string(value))
        return s_error(err, err_size, "field '%s': expected string", field->name);
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    if (strlen(text) != len)
        return s_error(err, err_size, "field '%s': contains a NUL character", field->name);
    if (len >= field->size)
        return s_error(err, err_size, "field '%s': longer than %zu bytes", field->name,
                       field->size - 1);
    hvn_node_set_str(node, f, text);
    return 0;
}

//  Returns 0 when obj's keys are all payload fields or "deleted", with
//  *deleted set; -1 with err naming the offending key.
static int s_parse_keys(json_t *obj, bool *deleted, char *err, size_t err_size)
{
    const char *key;
    json_t *value;
    *deleted = false;
    json_object_foreach(obj, key, value)
    {
        if (strcmp(key, "deleted") == 0) {
            if (!json_is_boolean(value))
                return s_error(err, err_size, "field 'deleted': expected true or false");
            *deleted = json_is_true(value);
        } else if (hvn_schema_find(key, strlen(key)) < 0)
            return s_error(err, err_size, "unknown field '%.64s'", key);
    }
    return 0;
}

//  Returns 0 with node (and *deleted) filled from one JSON object, or -1
//  with a one-line reason naming the field in err.
int hvn_json_parse_node(const char *text, size_t size, hvn_node_t *node, bool *deleted, char *err,
                        size_t err_size)
{
    json_error_t jerr;
    bool is_deleted = false;
    json_t *obj =
        json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!obj)
        return s_error(err, err_size, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
    int rc = 0;
    if (!json_is_object(obj))
        rc = s_error(err, err_size, "not a JSON object");
    if (rc == 0)
        rc = s_parse_keys(obj, &is_deleted, err, err_size);
    hvn_node_t parsed;
    hvn_node_init(&parsed);
    for (int f = 0; f < HVN_F_COUNT && rc == 0; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        json_t *value = json_object_get(obj, field->name);
        if (value)
            rc = s_parse_field(&parsed, f, value, err, err_size);
        else if (f == HVN_F_UUID || (!field->nullable && !is_deleted))
            rc = s_error(err, err_size, "missing required field '%s'", field->name);
    }
    hvn_field_id_t bad;
    if (rc == 0 && hvn_node_validate(&parsed, &bad) != 0) {
        const hvn_field_t *field = &hvn_schema_fields[bad];
        rc = s_error(err, err_size, "field '%s': %s", field->name,
                     field->type == HVN_TYPE_UUID ? "not a valid UUID"
                     : field->type == HVN_TYPE_IP ? "not a valid IP address"
                                                  : "invalid value");
    }
    json_decref(obj);
    if (rc == 0) {
        *node = parsed;
        if (deleted)
            *deleted = is_deleted;
    }
    return rc;
}

// --------------------------------------------------------------------------
//  A JSON string, written without jansson

//  Returns what hvn_json_int.h says.
char *hvni_json_string(char *at, const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    *at++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *at++ = (char)c;
            continue;
        }
        *at++ = '\\';
        const char *named = c == '"'    ? "\""
                            : c == '\\' ? "\\"
                            : c == '\b' ? "b"
                            : c == '\f' ? "f"
                            : c == '\n' ? "n"
                            : c == '\r' ? "r"
                            : c == '\t' ? "t"
                                        : NULL;
        if (named) {
            *at++ = *named;
            continue;
        }
        memcpy(at, "u00", 3);
        at[3] = hex[c >> 4];
        at[4] = hex[c & 15];
        at += 5;
    }
    *at++ = '"';
    return at;
}
