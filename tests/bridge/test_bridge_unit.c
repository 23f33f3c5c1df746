/*  test_bridge_unit.c — hvn-bridge's parts that need no server: the
    --transport-url parser, the messagingv2 body, the state file and the
    metrics text.
*/
#include "hvn_amqp_url.h"
#include "hvn_bridge_metrics.h"
#include "hvn_bridge_state.h"
#include "hvn_oslo.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Returns the parsed url; asserts it parses.
static hvn_amqp_url_t *s_parse(const char *text)
{
    char err[256] = "";
    hvn_amqp_url_t *url = hvn_amqp_url_new(text, err, sizeof(err));
    cr_assert_not_null(url, "%s: %s", text, err);
    return url;
}

//  Returns nothing; expects url's host i to be host:port, logged in as
//  user with password.
static void s_expect_host(const hvn_amqp_url_t *url, size_t i, const char *host, int port,
                          const char *user, const char *password)
{
    cr_assert_lt(i, url->host_count);
    cr_expect_str_eq(url->hosts[i].host, host, "host %zu", i);
    cr_expect_eq(url->hosts[i].port, port, "host %zu", i);
    cr_expect_str_eq(url->hosts[i].user, user, "host %zu", i);
    cr_expect_str_eq(url->hosts[i].password, password, "host %zu", i);
}

Test(amqp_url, nova_conf_form_with_defaults)
{
    hvn_amqp_url_t *url = s_parse("rabbit://nova:s3cret@rabbit1.example.org:5673/openstack");
    cr_assert_eq(url->host_count, 1);
    s_expect_host(url, 0, "rabbit1.example.org", 5673, "nova", "s3cret");
    cr_expect_str_eq(url->vhost, "openstack");
    hvn_amqp_url_destroy(&url);
    cr_expect_null(url);
    hvn_amqp_url_destroy(&url);

    url = s_parse("rabbit://localhost");
    s_expect_host(url, 0, "localhost", 5672, "guest", "guest");
    cr_expect_str_eq(url->vhost, "/");
    hvn_amqp_url_destroy(&url);

    url = s_parse("rabbit://u@h/");
    s_expect_host(url, 0, "h", 5672, "u", "");
    cr_expect_str_eq(url->vhost, "/");
    hvn_amqp_url_destroy(&url);
}

Test(amqp_url, several_hosts_each_with_credentials_or_the_previous_ones)
{
    hvn_amqp_url_t *url = s_parse("rabbit://a:pa@h1:5672,b:pb@h2:5673,h3/v");
    cr_assert_eq(url->host_count, 3);
    s_expect_host(url, 0, "h1", 5672, "a", "pa");
    s_expect_host(url, 1, "h2", 5673, "b", "pb");
    s_expect_host(url, 2, "h3", 5672, "b", "pb");
    hvn_amqp_url_destroy(&url);
}

Test(amqp_url, percent_escapes_ipv6_and_a_raw_at_in_the_password)
{
    hvn_amqp_url_t *url = s_parse("rabbit://us%3Aer:p%40ss%2Fw@[::1]:5672/%2F");
    s_expect_host(url, 0, "::1", 5672, "us:er", "p@ss/w");
    cr_expect_str_eq(url->vhost, "/");
    hvn_amqp_url_destroy(&url);
    url = s_parse("rabbit://u:p@ss@h");
    s_expect_host(url, 0, "h", 5672, "u", "p@ss");
    hvn_amqp_url_destroy(&url);
}

Test(amqp_url, refusals_name_the_part_and_never_the_password)
{
    struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"", "expected rabbit://"},
        {"localhost:5672", "expected rabbit://"},
        {"kafka://h", "scheme 'kafka'"},
        {"rabbit://", "no host"},
        {"rabbit:///vhost", "no host"},
        {"rabbit://u:secret@h:99999", "port '99999'"},
        {"rabbit://u:secret@h:", "':' without a port"},
        {"rabbit://u:secret@h:12x", "port '12x'"},
        {"rabbit://u:secret@::1:5672", "IPv6 address goes in brackets"},
        {"rabbit://u:secret@[::1", "'[' without ']'"},
        {"rabbit://u:secret@h1,,h2", "host 2 is empty"},
        {"rabbit://:secret@h", "empty user name"},
        {"rabbit://u:sec%2ret@h", "bad %-escape"},
        {"rabbit://u:secret@h/a/b", "holds a '/'"},
        {"rabbit://u:secret@h/%00", "virtual host"},
        {"rabbit://u:secret@h/?ssl=1", "query parameters"},
        {"rabbit://u:secret@h o/", "is not a host name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        hvn_amqp_url_t *url = hvn_amqp_url_new(cases[i].text, err, sizeof(err));
        cr_expect_null(url, "%s was accepted", cases[i].text);
        hvn_amqp_url_destroy(&url);
        cr_expect(strstr(err, cases[i].says), "%s: got '%s', expected '%s'", cases[i].text, err,
                  cases[i].says);
        cr_expect_null(strstr(err, "secret"), "%s: the password is in '%s'", cases[i].text, err);
    }
    char big[2048] = "rabbit://";
    for (int i = 0; i < 17; i++)
        strcat(big, i ? ",h" : "h");
    char err[256] = "";
    cr_expect_null(hvn_amqp_url_new(big, err, sizeof(err)));
    cr_expect(strstr(err, "more than 16 hosts"), "%s", err);
}

//  Returns a decoded update of a whole node, encoded by the project's own
//  encoder.
static void s_decoded_update(hvn_msg_t *msg)
{
    hvn_node_t node;
    memset(&node, 0, sizeof(node));
    hvn_node_init(&node);
    node.id = 7;
    snprintf(node.uuid, sizeof(node.uuid), "%s", "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d");
    node.vcpus = 16;
    node.memory_mb = 65536;
    node.local_gb = 500;
    snprintf(node.hypervisor_type, sizeof(node.hypervisor_type), "QEMU");
    hvn_encoder_t *enc = hvn_encoder_new();
    hvn_decoder_t *dec = hvn_decoder_new();
    hvn_envelope_t env = {.host = "cmp-7",
                          .timestamp = "2026-12-06 10:00:00.123456",
                          .message_id = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e"};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 1};
    hvn_frames_t frames;
    cr_assert_eq(hvn_encoder_notification(enc, HVN_EVENT_UPDATE, &env, &node, &header, &frames), 0);
    cr_assert_eq(hvn_decoder_decode(dec, frames.topic, frames.topic_size, frames.header,
                                    HVN_HEADER_SIZE, frames.body, frames.body_size, msg),
                 HVN_OK);
    hvn_encoder_destroy(&enc);
    hvn_decoder_destroy(&dec);
}

Test(oslo, body_is_version_2_with_the_envelope_as_a_json_string)
{
    hvn_msg_t msg;
    s_decoded_update(&msg);
    size_t size = 0;
    char *body = hvn_oslo_body(&msg, &size);
    cr_assert_not_null(body);
    cr_expect_eq(size, strlen(body));
    json_t *outer = json_loads(body, 0, NULL);
    cr_assert_not_null(outer);
    cr_expect_eq(json_object_size(outer), 2);
    cr_expect_str_eq(json_string_value(json_object_get(outer, "oslo.version")), "2.0");
    json_t *inner = json_loads(json_string_value(json_object_get(outer, "oslo.message")), 0, NULL);
    cr_assert_not_null(inner);
    cr_expect_str_eq(json_string_value(json_object_get(inner, "message_id")),
                     "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e");
    cr_expect_str_eq(json_string_value(json_object_get(inner, "_unique_id")),
                     "5a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4e");
    cr_expect_str_eq(json_string_value(json_object_get(inner, "event_type")),
                     "compute_node.update");
    cr_expect_str_eq(json_string_value(json_object_get(inner, "publisher_id")),
                     "nova-compute:cmp-7");
    cr_expect_str_eq(json_string_value(json_object_get(inner, "timestamp")),
                     "2026-12-06 10:00:00.123456");
    json_t *data = json_object_get(json_object_get(inner, "payload"), "nova_object.data");
    cr_expect_eq(json_integer_value(json_object_get(data, "vcpus")), 16);
    cr_expect_eq(json_object_size(data), 18);

    //  The same as the envelope hvn-sub prints, plus _unique_id
    char *envelope_text = hvn_json_render(&msg);
    json_t *envelope = json_loads(envelope_text, 0, NULL);
    json_object_del(inner, "_unique_id");
    cr_expect(json_equal(envelope, inner));
    free(envelope_text);
    json_decref(envelope);
    json_decref(inner);
    json_decref(outer);
    free(body);
}

//  The inner message is quoted into the body without jansson: every text
//  a field can hold must come back from a JSON parser byte for byte.
Test(oslo, texts_with_quotes_backslashes_controls_and_utf8_come_back_exactly)
{
    static const char *texts[] = {"a\"b",
                                  "back\\slash\\\\",
                                  "line\nbreak\ttab\x01\x1f",
                                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5",
                                  "</script>\\\"",
                                  "\\u0041 not an escape",
                                  ""};
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        hvn_msg_t msg;
        s_decoded_update(&msg);
        cr_assert_eq(hvn_node_set_str(&msg.node, HVN_F_HYPERVISOR_HOSTNAME, texts[t]), 0);
        char *body = hvn_oslo_body(&msg, NULL);
        cr_assert_not_null(body, "text %zu", t);
        json_error_t err;
        json_t *outer = json_loads(body, JSON_REJECT_DUPLICATES, &err);
        cr_assert_not_null(outer, "text %zu: %s", t, err.text);
        json_t *inner = json_loads(json_string_value(json_object_get(outer, "oslo.message")),
                                   JSON_REJECT_DUPLICATES, &err);
        cr_assert_not_null(inner, "text %zu: %s", t, err.text);
        json_t *data = json_object_get(json_object_get(inner, "payload"), "nova_object.data");
        cr_expect_str_eq(json_string_value(json_object_get(data, "hypervisor_hostname")), texts[t]);
        json_decref(inner);
        json_decref(outer);
        free(body);
    }
}

Test(oslo, a_text_that_is_not_utf8_gives_no_body)
{
    hvn_msg_t msg;
    s_decoded_update(&msg);
    cr_assert_eq(hvn_node_set_str(&msg.node, HVN_F_HYPERVISOR_HOSTNAME, "bad\xff\xfe"), 0);
    cr_expect_null(hvn_oslo_body(&msg, NULL));
    cr_expect_null(hvn_json_render(&msg));
}

Test(oslo, heartbeats_have_no_body)
{
    hvn_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    msg.header.kind = HVN_KIND_HEARTBEAT;
    cr_expect_null(hvn_oslo_body(&msg, NULL));
}

// --------------------------------------------------------------------------
//  The state file

static const uint8_t s_a[16] = {0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x40, 0x81,
                                0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09};
static const uint8_t s_b[16] = {0xb0, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x40, 0x81,
                                0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x0b};

//  Returns the done of instance in state; asserts it is known.
static uint64_t s_done(hvn_bridge_state_t *state, const uint8_t instance[16])
{
    uint64_t done = 0;
    cr_assert(hvn_bridge_state_done(state, instance, &done));
    return done;
}

static char s_dir[64]; //  The file cases' temporary directory

//  Returns nothing; s_dir is a fresh temporary directory.
static void s_dir_setup(void)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/hvn-bridge-state-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

//  Returns nothing; s_dir and every file in it are removed.
static void s_dir_teardown(void)
{
    DIR *dir = opendir(s_dir);
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) != NULL) {
        char path[sizeof(s_dir) + 256 + 2];
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", s_dir, entry->d_name);
            unlink(path);
        }
    }
    if (dir)
        closedir(dir);
    rmdir(s_dir);
}

//  Writes text into s_dir/name and returns the path in path.
static void s_write(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", s_dir, name);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

//  Returns a new state that loaded path; asserts the load returned
//  expected (1: read, 0: no file).
static hvn_bridge_state_t *s_loaded(const char *path, int expected)
{
    hvn_bridge_state_t *state = hvn_bridge_state_new();
    cr_assert_not_null(state);
    char err[256] = "";
    cr_assert_eq(hvn_bridge_state_load(state, path, err, sizeof(err)), expected, "%s: %s", path,
                 err);
    return state;
}

Test(state, done_stops_below_the_lowest_unconfirmed_seq_and_never_goes_down)
{
    hvn_bridge_state_t *state = hvn_bridge_state_new();
    cr_assert_not_null(state);
    for (uint64_t seq = 1; seq <= 10; seq++)
        hvn_bridge_state_mark(state, s_a, seq);
    cr_expect(hvn_bridge_state_covers(state, s_a, 10));
    cr_expect_not(hvn_bridge_state_covers(state, s_a, 11));
    cr_expect_not(hvn_bridge_state_covers(state, s_b, 1));

    hvn_bridge_state_begin(state);
    hvn_bridge_state_hold(state, s_a, 9); //  Still unconfirmed: 7 and 9
    hvn_bridge_state_hold(state, s_a, 7);
    cr_expect_eq(hvn_bridge_state_commit(state), 1);
    cr_expect_eq(s_done(state, s_a), 6);

    hvn_bridge_state_begin(state); //  All confirmed now
    cr_expect_eq(hvn_bridge_state_commit(state), 1);
    cr_expect_eq(s_done(state, s_a), 10);

    hvn_bridge_state_begin(state); //  An old seq sent again does not take done back
    hvn_bridge_state_hold(state, s_a, 3);
    cr_expect_eq(hvn_bridge_state_commit(state), 0);
    cr_expect_eq(s_done(state, s_a), 10);

    hvn_bridge_state_touch(state, s_b); //  Known, nothing of it dealt with
    cr_expect_eq(s_done(state, s_b), 0);
    cr_expect_eq(hvn_bridge_state_size(state), 2);
    hvn_bridge_state_destroy(&state);
    cr_expect_null(state);
    hvn_bridge_state_destroy(&state);
}

Test(state, saved_atomically_and_read_back_whole, .init = s_dir_setup, .fini = s_dir_teardown)
{
    char path[128], tmp[140];
    snprintf(path, sizeof(path), "%s/bridge.state", s_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    hvn_bridge_state_t *state = s_loaded(path, 0); //  No file yet
    hvn_bridge_state_mark(state, s_a, 41);
    hvn_bridge_state_mark(state, s_b, 7);
    hvn_bridge_state_begin(state);
    hvn_bridge_state_hold(state, s_b, 5);
    hvn_bridge_state_commit(state);
    cr_assert_eq(hvn_bridge_state_save(state, path), 0);
    cr_expect_neq(access(tmp, F_OK), 0, "the temporary file is left behind");
    hvn_bridge_state_destroy(&state);

    state = s_loaded(path, 1);
    cr_expect_eq(hvn_bridge_state_size(state), 2);
    cr_expect_eq(s_done(state, s_a), 41);
    cr_expect_eq(s_done(state, s_b), 4);
    cr_expect(hvn_bridge_state_covers(state, s_b, 4));
    cr_expect_not(hvn_bridge_state_covers(state, s_b, 5));
    hvn_bridge_state_destroy(&state);
}

Test(state, a_file_that_is_not_a_state_file_is_refused_whole, .init = s_dir_setup,
     .fini = s_dir_teardown)
{
    const struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"not json", "line 1"},
        {"{\"format\": \"other\", \"version\": 1, \"instances\": {}}", "not an hvn-bridge-state"},
        {"{\"format\": \"hvn-bridge-state\", \"version\": 9, \"instances\": {}}", "version 9"},
        {"{\"format\": \"hvn-bridge-state\", \"version\": 1, \"instances\": []}", "instances"},
        {"{\"format\": \"hvn-bridge-state\", \"version\": 1, \"instances\": "
         "{\"1a2b3c4d-5e6f-4081-92a3-b4c5d6e7f809\": {\"done\": 3, \"heard\": 1},"
         " \"nope\": {\"done\": 1, \"heard\": 1}}}",
         "'nope' is not a publisher instance id"},
        {"{\"format\": \"hvn-bridge-state\", \"version\": 1, \"instances\": "
         "{\"1a2b3c4d-5e6f-4081-92a3-b4c5d6e7f809\": {\"done\": -3, \"heard\": 1}}}",
         "expected {\"done\": seq"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[128];
        s_write("bad.state", cases[i].text, path, sizeof(path));
        hvn_bridge_state_t *state = hvn_bridge_state_new();
        char err[256] = "";
        cr_expect_eq(hvn_bridge_state_load(state, path, err, sizeof(err)), -1, "%s accepted",
                     cases[i].text);
        cr_expect(strstr(err, cases[i].says), "%s: got '%s'", cases[i].text, err);
        cr_expect(strstr(err, path), "%s: the path is not named in '%s'", cases[i].text, err);
        cr_expect_eq(hvn_bridge_state_size(state), 0, "%s: partly taken", cases[i].text);
        hvn_bridge_state_destroy(&state);
    }
}

Test(state, an_instance_silent_for_a_day_is_forgotten_at_the_next_save, .init = s_dir_setup,
     .fini = s_dir_teardown)
{
    char path[128];
    s_write("old.state",
            "{\"format\": \"hvn-bridge-state\", \"version\": 1, \"instances\": {"
            "\"1a2b3c4d-5e6f-4081-92a3-b4c5d6e7f809\": {\"done\": 3, \"heard\": 1000}}}",
            path, sizeof(path));
    hvn_bridge_state_t *state = s_loaded(path, 1);
    cr_expect_eq(s_done(state, s_a), 3);
    hvn_bridge_state_mark(state, s_b, 2); //  Heard now
    cr_assert_eq(hvn_bridge_state_save(state, path), 0);
    cr_expect_eq(hvn_bridge_state_size(state), 1);
    hvn_bridge_state_destroy(&state);
    state = s_loaded(path, 1);
    uint64_t done = 0;
    cr_expect_not(hvn_bridge_state_done(state, s_a, &done));
    cr_expect(hvn_bridge_state_done(state, s_b, &done));
    hvn_bridge_state_destroy(&state);
}

// --------------------------------------------------------------------------
//  The metrics text

Test(metrics, counters_end_in_total_and_every_family_is_typed)
{
    hvn_bridge_figures_t figures;
    memset(&figures, 0, sizeof(figures));
    figures.bridge.received = 12;
    figures.bridge.confirmed = 11;
    figures.bridge.pending = 1;
    figures.bridge.blocked_now = 1;
    figures.bridge.latency_p99_us = 2000000;
    figures.resumed = 5;
    size_t size = 0;
    char *text = hvn_bridge_metrics_render(&figures, &size);
    cr_assert_not_null(text);
    cr_expect_eq(size, strlen(text));
    const char *expect[] = {
        "# TYPE hvnotify_bridge_received_total counter\nhvnotify_bridge_received_total 12\n",
        "# TYPE hvnotify_bridge_confirmed_total counter\nhvnotify_bridge_confirmed_total 11\n",
        "# TYPE hvnotify_bridge_pending gauge\nhvnotify_bridge_pending 1\n",
        "# TYPE hvnotify_bridge_blocked gauge\nhvnotify_bridge_blocked 1\n",
        "hvnotify_bridge_resumed_total 5\n",
        "hvnotify_bridge_confirm_latency_seconds{quantile=\"0.99\"} 2\n",
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        cr_expect(strstr(text, expect[i]), "'%s' not in:\n%s", expect[i], text);
    //  Every sample's family has a TYPE line
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        if (*line != '#') {
            char family[128], needle[160];
            sscanf(line, "%127[a-z_]", family);
            snprintf(needle, sizeof(needle), "# TYPE %s ", family);
            cr_expect(strstr(text, needle), "%s has no TYPE", family);
        }
    }
    free(text);
}
