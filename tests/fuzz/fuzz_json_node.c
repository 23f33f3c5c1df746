/*  fuzz_json_node.c — hvn-pub's JSON node reader against hostile lines.

    The input is what hvn-pub could read on standard input: it is cut into
    lines and trimmed by hvn-pub's own functions (hvn_cli.h: at '\n',
    trailing '\n' and '\r' removed, blank lines skipped), and each line goes to
    hvn_json_parse_node(), the function hvn-pub hands every line to. Its
    {"uuid": ..., "deleted": true} form is parsed there too. Whatever the
    bytes:

    - a refusal comes with a one-line reason without control characters
      (hvn-pub prints it to stderr), also when the reason buffer is tiny,
      and the answer does not depend on the buffer;
    - an accepted node is valid, and the publisher can send it: it encodes
      as a create (or, deleted, as a delete) that decodes to the same node.
*/
#include "hvn_fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "hvn_cli.h"
#include "hvn_proto.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define S_HOST "fuzz-host"
#define S_TS "2024-05-06 07:08:09.123456"
#define S_MSGID "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"

//  Returns nothing; aborts unless an accepted node encodes as the
//  notification hvn-pub's publisher would send and decodes back to it.
static void s_round_trip(const hvn_node_t *node, bool deleted)
{
    hvn_encoder_t *encoder = hvn_encoder_new();
    hvn_decoder_t *decoder = hvn_decoder_new();
    hvn_msg_t *msg = calloc(1, sizeof(*msg));
    S_CHECK(encoder && decoder && msg);
    hvn_event_t event = deleted ? HVN_EVENT_DELETE : HVN_EVENT_CREATE;
    hvn_envelope_t env = {.host = S_HOST, .timestamp = S_TS, .message_id = S_MSGID};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 1};
    hvn_node_t sent = *node;
    if (deleted) {
        //  The publisher deletes by uuid: what it sends is the node it
        //  last reported, here one with only the uuid
        hvn_node_init(&sent);
        memcpy(sent.uuid, node->uuid, sizeof(sent.uuid));
    }
    hvn_frames_t frames;
    S_CHECK(hvn_encoder_notification(encoder, event, &env, &sent, &header, &frames) == 0);
    hvn_reason_t reason =
        hvn_decoder_decode(decoder, frames.topic, frames.topic_size, frames.header, HVN_HEADER_SIZE,
                           frames.body, frames.body_size, msg);
    S_CHECK(reason == HVN_OK && msg->event == event);
    if (deleted)
        S_CHECK(strcmp(msg->node.uuid, node->uuid) == 0);
    else
        S_CHECK(hvn_node_equal(&msg->node, node));
    free(msg);
    hvn_decoder_destroy(&decoder);
    hvn_encoder_destroy(&encoder);
}

//  Returns nothing; one line through the reader and every check.
static void s_line(const char *line, size_t len)
{
    hvn_node_t node;
    bool deleted = true;
    char err[256];
    memset(err, 0x55, sizeof(err));
    int rc = hvn_json_parse_node(line, len, &node, &deleted, err, sizeof(err));
    S_CHECK(rc == 0 || rc == -1);

    //  The same answer with a tiny reason buffer, and with none
    hvn_node_t other;
    char small[8];
    memset(small, 0x55, sizeof(small));
    S_CHECK(hvn_json_parse_node(line, len, &other, NULL, small, sizeof(small)) == rc);
    S_CHECK(hvn_json_parse_node(line, len, &other, NULL, NULL, 0) == rc);

    if (rc != 0) {
        S_CHECK(memchr(err, '\0', sizeof(err)) && err[0] != '\0');
        S_CHECK(memchr(small, '\0', sizeof(small)));
        for (const char *c = err; *c; c++)
            S_CHECK((unsigned char)*c >= 0x20 && *c != 0x7F);
        return;
    }
    S_CHECK(hvn_node_equal(&node, &other));
    hvn_field_id_t bad;
    S_CHECK(hvn_node_validate(&node, &bad) == 0);
    s_round_trip(&node, deleted);
}

//  Returns 0 after every line of the input went through the checks.
int hvn_fuzz_json_node(const uint8_t *data, size_t size)
{
    //  Each line a NUL-terminated copy, as getline() gives hvn-pub, trimmed
    //  in place by the same functions
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) + 1 : size - pos;
        char *line = malloc(len + 1);
        S_CHECK(line);
        memcpy(line, data + pos, len);
        line[len] = '\0';
        pos += len;
        len = hvn_cli_line_trim(line, len);
        if (!hvn_cli_line_blank(line, len))
            s_line(line, len);
        free(line);
    }
    return 0;
}

#ifdef HVN_FUZZ_LIBFUZZER
//  libFuzzer's entry point. Returns 0.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return hvn_fuzz_json_node(data, size);
}
#endif
