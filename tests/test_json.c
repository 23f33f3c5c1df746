/*  test_json.c — the Nova envelope as JSON, and nodes read from JSON lines. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_proto.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"
#define S_MSGID "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
#define S_TS "2024-05-06 07:08:09.123456"

static hvn_encoder_t *encoder;
static hvn_decoder_t *decoder;

static void s_setup(void)
{
    encoder = hvn_encoder_new();
    decoder = hvn_decoder_new();
}

static void s_teardown(void)
{
    hvn_encoder_destroy(&encoder);
    hvn_decoder_destroy(&decoder);
}

TestSuite(json, .init = s_setup, .fini = s_teardown);

//  A valid node: ints 100+f, host nil, every other string set.
static void s_node(hvn_node_t *node)
{
    hvn_node_init(node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, 100 + f);
    hvn_node_set_str(node, HVN_F_UUID, S_UUID);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, "cmp-1.example.org");
    hvn_node_set_str(node, HVN_F_HOST_IP, "10.1.2.3");
}

//  Encodes and decodes event for node, then renders it as parsed JSON.
static json_t *s_rendered(hvn_event_t event, const hvn_node_t *node, char **text_out)
{
    hvn_envelope_t env = {NULL, "cmp-1", S_TS, S_MSGID};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 1};
    hvn_frames_t fr;
    cr_assert_eq(hvn_encoder_notification(encoder, event, &env, node, &header, &fr), 0);
    hvn_msg_t msg;
    cr_assert_eq(hvn_decoder_decode(decoder, fr.topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_OK);
    char *text = hvn_json_render(&msg);
    cr_assert_not_null(text);
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    cr_assert_not_null(root, "%s: %s", text, err.text);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return root;
}

static const char *s_str(json_t *obj, const char *key)
{
    json_t *value = json_object_get(obj, key);
    cr_assert(json_is_string(value), "key %s", key);
    return json_string_value(value);
}

Test(json, renders_the_nova_envelope_in_one_compact_line)
{
    hvn_node_t node;
    s_node(&node);
    char *text;
    json_t *root = s_rendered(HVN_EVENT_UPDATE, &node, &text);
    cr_assert_null(strchr(text, '\n'));
    cr_assert_null(strstr(text, ", "));
    cr_assert_null(strstr(text, "\": "));
    cr_assert(strncmp(text, "{\"priority\":\"INFO\",", 19) == 0, "%s", text);
    free(text);
    cr_assert_eq(json_object_size(root), 6);
    cr_assert_str_eq(s_str(root, "priority"), "INFO");
    cr_assert_str_eq(s_str(root, "event_type"), "compute_node.update");
    cr_assert_str_eq(s_str(root, "timestamp"), S_TS);
    cr_assert_str_eq(s_str(root, "publisher_id"), "nova-compute:cmp-1");
    cr_assert_str_eq(s_str(root, "message_id"), S_MSGID);
    json_t *payload = json_object_get(root, "payload");
    cr_assert_eq(json_object_size(payload), 4);
    cr_assert_str_eq(s_str(payload, "nova_object.name"), "ComputeNodePayload");
    cr_assert_str_eq(s_str(payload, "nova_object.namespace"), "nova");
    cr_assert_str_eq(s_str(payload, "nova_object.version"), "1.0");
    json_t *data = json_object_get(payload, "nova_object.data");
    cr_assert_eq(json_object_size(data), HVN_F_COUNT);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        json_t *value = json_object_get(data, field->name);
        cr_assert_not_null(value, "%s", field->name);
        if (hvn_node_is_null(&node, f))
            cr_assert(json_is_null(value), "%s", field->name);
        else if (field->type == HVN_TYPE_INT)
            cr_assert_eq(json_integer_value(value), 100 + f, "%s", field->name);
        else
            cr_assert_str_eq(json_string_value(value), hvn_node_str(&node, f));
    }
    cr_assert(json_is_null(json_object_get(data, "host")));
    json_decref(root);
}

Test(json, renders_a_delete_with_id_and_uuid_only)
{
    hvn_node_t node;
    s_node(&node);
    json_t *root = s_rendered(HVN_EVENT_DELETE, &node, NULL);
    json_t *payload = json_object_get(root, "payload");
    cr_assert_str_eq(s_str(payload, "nova_object.name"), "ComputeNodeDeletePayload");
    json_t *data = json_object_get(payload, "nova_object.data");
    cr_assert_eq(json_object_size(data), 2);
    cr_assert_eq(json_integer_value(json_object_get(data, "id")), 100);
    cr_assert_str_eq(s_str(data, "uuid"), S_UUID);
    json_decref(root);
}

Test(json, renders_heartbeats)
{
    const char *uuids[] = {S_UUID};
    hvn_envelope_t env = {NULL, "cmp-1", S_TS, NULL};
    hvn_header_t header = {.kind = HVN_KIND_HEARTBEAT};
    hvn_frames_t fr;
    hvn_msg_t msg;
    cr_assert_eq(hvn_encoder_heartbeat(encoder, &env, 10000, uuids, 1, &header, &fr), 0);
    cr_assert_eq(hvn_decoder_decode(decoder, fr.topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_OK);
    char *text = hvn_json_render(&msg);
    json_t *root = json_loads(text, 0, NULL);
    cr_assert_not_null(root, "%s", text);
    cr_assert_str_eq(s_str(root, "event_type"), "hvn.heartbeat");
    cr_assert_str_eq(s_str(root, "publisher_id"), "nova-compute:cmp-1");
    cr_assert_str_eq(s_str(root, "timestamp"), S_TS);
    cr_assert_eq(json_integer_value(json_object_get(root, "interval_ms")), 10000);
    json_t *nodes = json_object_get(root, "nodes");
    cr_assert_eq(json_array_size(nodes), 1);
    cr_assert_str_eq(json_string_value(json_array_get(nodes, 0)), S_UUID);
    json_decref(root);
    free(text);

    cr_assert_eq(hvn_encoder_broker_heartbeat(encoder, "b1", "bid", 500, &header, &fr), 0);
    cr_assert_eq(hvn_decoder_decode(decoder, fr.topic, fr.topic_size, fr.header, HVN_HEADER_SIZE,
                                    fr.body, fr.body_size, &msg),
                 HVN_OK);
    text = hvn_json_render(&msg);
    root = json_loads(text, 0, NULL);
    cr_assert_str_eq(s_str(root, "event_type"), "hvn.broker");
    cr_assert_str_eq(s_str(root, "broker_id"), "bid");
    cr_assert_eq(json_integer_value(json_object_get(root, "interval_ms")), 500);
    cr_assert_null(json_object_get(root, "nodes"));
    json_decref(root);
    free(text);
}

// --------------------------------------------------------------------------
//  Parsing nodes

static int s_parse(const char *text, hvn_node_t *node, bool *deleted, char *err)
{
    return hvn_json_parse_node(text, strlen(text), node, deleted, err, 256);
}

//  A full node line with `extra` spliced in before the closing brace.
static char *s_line(const char *extra)
{
    static char line[2048];
    snprintf(line, sizeof(line),
             "{\"id\": 7, \"uuid\": \"" S_UUID "\", \"host\": \"cmp-1\", \"vcpus\": 8, "
             "\"memory_mb\": 16384, \"local_gb\": 100, \"vcpus_used\": 2, "
             "\"memory_mb_used\": 2048, \"local_gb_used\": 10, \"hypervisor_type\": \"QEMU\", "
             "\"hypervisor_version\": 7002000, \"hypervisor_hostname\": null, "
             "\"free_ram_mb\": 14336, \"free_disk_gb\": 90, \"current_workload\": 0, "
             "\"running_vms\": 1, \"disk_available_least\": -5, \"host_ip\": \"10.0.0.1\"%s}",
             extra);
    return line;
}

Test(json, parses_a_full_node)
{
    hvn_node_t node;
    bool deleted = true;
    char err[256] = "";
    cr_assert_eq(s_parse(s_line(""), &node, &deleted, err), 0, "%s", err);
    cr_assert_not(deleted);
    cr_assert_eq(node.id, 7);
    cr_assert_str_eq(node.uuid, S_UUID);
    cr_assert_str_eq(node.host, "cmp-1");
    cr_assert_eq(node.memory_mb, 16384);
    cr_assert_eq(node.disk_available_least, -5);
    cr_assert(hvn_node_is_null(&node, HVN_F_HYPERVISOR_HOSTNAME));
    cr_assert_not(hvn_node_is_null(&node, HVN_F_RUNNING_VMS));
    cr_assert_eq(s_parse(s_line(", \"deleted\": false"), &node, &deleted, err), 0, "%s", err);
    cr_assert_not(deleted);
}

Test(json, absent_nullable_fields_are_nil)
{
    const char *text = "{\"id\": 1, \"uuid\": \"" S_UUID "\", \"vcpus\": 1, \"memory_mb\": 1, "
                       "\"local_gb\": 1, \"vcpus_used\": 0, \"memory_mb_used\": 0, "
                       "\"local_gb_used\": 0, \"hypervisor_type\": \"QEMU\", "
                       "\"hypervisor_version\": 1}";
    hvn_node_t node;
    char err[256] = "";
    cr_assert_eq(s_parse(text, &node, NULL, err), 0, "%s", err);
    for (int f = 0; f < HVN_F_COUNT; f++)
        cr_assert_eq(hvn_node_is_null(&node, f), hvn_schema_fields[f].nullable);
}

Test(json, a_delete_line_needs_only_the_uuid)
{
    hvn_node_t node;
    bool deleted = false;
    char err[256] = "";
    cr_assert_eq(s_parse("{\"uuid\": \"" S_UUID "\", \"deleted\": true}", &node, &deleted, err), 0,
                 "%s", err);
    cr_assert(deleted);
    cr_assert_str_eq(node.uuid, S_UUID);
    cr_assert_eq(node.id, 0);
    cr_assert_eq(
        s_parse("{\"id\": 4, \"uuid\": \"" S_UUID "\", \"deleted\": true}", &node, &deleted, err),
        0, "%s", err);
    cr_assert_eq(node.id, 4);
    cr_assert_eq(s_parse("{\"deleted\": true}", &node, &deleted, err), -1);
    cr_assert_str_eq(err, "missing required field 'uuid'");
}

Test(json, refusals_name_the_field)
{
    struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"[1, 2]", "not a JSON object"},
        {"42", "not a JSON object"},
        {"{\"uuid\": \"" S_UUID "\"}", "missing required field 'id'"},
        {"{\"uuid\": \"" S_UUID "\", \"deleted\": false}", "missing required field 'id'"},
        {"{\"uuid\": \"" S_UUID "\", \"deleted\": 1}", "field 'deleted': expected true or false"},
        {"{\"uuid\": \"" S_UUID "\", \"deleted\": true, \"foo\": 1}", "unknown field 'foo'"},
        {"{\"uuid\": 5, \"deleted\": true}", "field 'uuid': expected string"},
        {"{\"uuid\": \"nope\", \"deleted\": true}", "field 'uuid': not a valid UUID"},
        {"{\"uuid\": null, \"deleted\": true}", "field 'uuid': expected string, not null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hvn_node_t node;
        char err[256] = "";
        cr_assert_eq(s_parse(cases[i].text, &node, NULL, err), -1, "case %zu", i);
        cr_assert_str_eq(err, cases[i].err, "case %zu", i);
    }
}

Test(json, wrong_values_in_a_full_line_name_the_field)
{
    struct {
        const char *needle;
        const char *replacement;
        const char *err;
    } cases[] = {
        {"\"vcpus\": 8", "\"vcpus\": \"8\"", "field 'vcpus': expected integer"},
        {"\"vcpus\": 8", "\"vcpus\": 8.5", "field 'vcpus': expected integer"},
        {"\"memory_mb\": 16384, ", "", "missing required field 'memory_mb'"},
        {"\"host\": \"cmp-1\"", "\"host\": 3", "field 'host': expected string"},
        {"\"vcpus\": 8", "\"vcpus\": null", "field 'vcpus': expected integer, not null"},
        {"\"10.0.0.1\"", "\"10.0.0.256\"", "field 'host_ip': not a valid IP address"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[2048];
        const char *line = s_line("");
        const char *at = strstr(line, cases[i].needle);
        cr_assert_not_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - line), line, cases[i].replacement,
                 at + strlen(cases[i].needle));
        hvn_node_t node;
        char err[256] = "";
        cr_assert_eq(s_parse(text, &node, NULL, err), -1, "case %zu", i);
        cr_assert_str_eq(err, cases[i].err, "case %zu", i);
    }
    hvn_node_t node;
    char err[256] = "";
    cr_assert_eq(s_parse(s_line(", \"bogus_field\": 1"), &node, NULL, err), -1);
    cr_assert_str_eq(err, "unknown field 'bogus_field'");
    cr_assert_eq(s_parse(s_line(", \"vcpus\": 9"), &node, NULL, err), -1, "duplicate key");
    cr_assert_eq(s_parse("{\"id\": ", &node, NULL, err), -1);
    cr_assert(strncmp(err, "invalid JSON", 12) == 0, "%s", err);
}

Test(json, strings_longer_than_the_field_are_refused)
{
    char host[HVN_STR_MAX + 2];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char extra[512];
    snprintf(extra, sizeof(extra), "\"%s\"", host);
    char text[2048];
    const char *line = s_line("");
    const char *at = strstr(line, "\"cmp-1\"");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - line), line, extra, at + 7);
    hvn_node_t node;
    char err[256] = "";
    cr_assert_eq(s_parse(text, &node, NULL, err), -1);
    cr_assert_str_eq(err, "field 'host': longer than 255 bytes");
    cr_assert_eq(s_parse("{\"uuid\": \"a\\u0000b\", \"deleted\": true}", &node, NULL, err), -1);
    cr_assert_str_eq(err, "field 'uuid': contains a NUL character");
}

Test(json, a_parsed_node_survives_encode_decode_and_render)
{
    hvn_node_t node;
    char err[256] = "";
    cr_assert_eq(s_parse(s_line(""), &node, NULL, err), 0, "%s", err);
    json_t *root = s_rendered(HVN_EVENT_CREATE, &node, NULL);
    json_t *data = json_object_get(json_object_get(root, "payload"), "nova_object.data");
    char *text = json_dumps(data, JSON_COMPACT);
    hvn_node_t back;
    cr_assert_eq(s_parse(text, &back, NULL, err), 0, "%s", err);
    cr_assert(hvn_node_equal(&node, &back));
    free(text);
    json_decref(root);
}

Test(json, a_node_renders_as_the_line_hvn_pub_reads_every_field_in_table_order)
{
    hvn_node_t node, back;
    s_node(&node);
    hvn_node_set_null(&node, HVN_F_HOST_IP);
    char *text = hvn_json_node(&node);
    cr_assert(text);
    cr_assert_null(strchr(text, '\n'), "one line");
    bool deleted = true;
    char err[128] = "";
    cr_assert_eq(hvn_json_parse_node(text, strlen(text), &back, &deleted, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_not(deleted);
    cr_assert(hvn_node_equal(&node, &back), "the line reads back as the node");
    json_t *obj = json_loads(text, 0, NULL);
    cr_assert(obj);
    cr_assert_eq(json_object_size(obj), HVN_F_COUNT);
    cr_assert(json_is_null(json_object_get(obj, "host_ip")));
    const char *at = text;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        char key[64];
        snprintf(key, sizeof(key), "\"%s\":", hvn_schema_fields[f].name);
        const char *found = strstr(at, key);
        cr_assert(found, "%s missing or out of the table's order", hvn_schema_fields[f].name);
        at = found + strlen(key);
    }
    json_decref(obj);
    free(text);
}
