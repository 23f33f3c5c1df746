/*  test_pubstate.c — the publisher's state file (publisher/hvn_pubstate.h):
    written atomically, read back whole or not at all.

    Files are written to a fresh temporary directory per case; the bad ones
    are built from a good one, one fault each.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hvn_proto.h"
#include "hvn_pubstate.h"

#define S_HOST "cmp-017"
#define S_NODES 3

static char dir[256];  //  This case's directory
static char path[512]; //  Its state file
static hvn_encoder_t *encoder;
static hvn_frames_t frames[S_NODES]; //  Encoded creates of nodes 1..3
static uint8_t *bodies[S_NODES];     //  Their bodies, copied out of the encoder

static void s_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hvn-pubstate-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/publisher-" S_HOST ".state", dir);
    encoder = hvn_encoder_new();
    cr_assert(encoder);
    for (int i = 0; i < S_NODES; i++) {
        hvn_node_t node;
        hvn_node_init(&node);
        for (int f = 0; f < HVN_F_COUNT; f++)
            if (hvn_schema_fields[f].type == HVN_TYPE_INT)
                hvn_node_set_int(&node, f, 10 * i + f);
        char uuid[HVN_UUID_STR_LEN + 1];
        snprintf(uuid, sizeof(uuid), "5f0c3a52-8a4b-4c55-9d0e-%012d", i + 1);
        hvn_node_set_str(&node, HVN_F_UUID, uuid);
        hvn_node_set_str(&node, HVN_F_HOST, S_HOST);
        hvn_node_set_str(&node, HVN_F_HYPERVISOR_TYPE, "QEMU");
        hvn_envelope_t env = {.host = S_HOST};
        hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = (uint64_t)i + 1};
        cr_assert_eq(
            hvn_encoder_notification(encoder, HVN_EVENT_CREATE, &env, &node, &header, &frames[i]),
            0);
        bodies[i] = malloc(frames[i].body_size);
        memcpy(bodies[i], frames[i].body, frames[i].body_size);
        frames[i].body = bodies[i];
    }
}

static void s_teardown(void)
{
    for (int i = 0; i < S_NODES; i++)
        free(bodies[i]);
    hvn_encoder_destroy(&encoder);
    char *cmd = zsys_sprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    zstr_free(&cmd);
}

TestSuite(pubstate, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns the state file's node for frames f.
static hvn_pubstate_node_t s_node_of(const hvn_frames_t *f)
{
    return (hvn_pubstate_node_t){.topic = f->topic,
                                 .topic_size = f->topic_size,
                                 .header = f->header,
                                 .body = f->body,
                                 .body_size = f->body_size};
}

//  Returns 0 after writing the first count nodes (in the order given by
//  order, or 0, 1, 2 ...) as the state file of host.
static int s_write(const char *host, const int *order, size_t count)
{
    hvn_pubstate_node_t nodes[8] = {{0}};
    for (size_t i = 0; i < count; i++)
        nodes[i] = s_node_of(&frames[order ? order[i] : (int)i]);
    return hvn_pubstate_write(path, host, nodes, count);
}

//  What a read passed on
typedef struct {
    int count;             //  Nodes passed
    char uuid[8][37];      //  Their node uuids, in order
    uint8_t header[8][26]; //  Their headers
    int64_t vcpus[8];      //  Their vcpus, as decoded
} s_seen_t;

//  Records one node a read passed on.
static void s_collect(const hvn_pubstate_node_t *node, const hvn_msg_t *msg, void *arg)
{
    s_seen_t *seen = arg;
    cr_assert_lt(seen->count, 8);
    snprintf(seen->uuid[seen->count], 37, "%s", msg->node.uuid);
    memcpy(seen->header[seen->count], node->header, HVN_HEADER_SIZE);
    seen->vcpus[seen->count] = msg->node.vcpus;
    seen->count++;
}

//  Returns the whole file at path (heap) and its size.
static uint8_t *s_slurp(size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    uint8_t *data = malloc(1 << 20);
    *size = fread(data, 1, 1 << 20, f);
    fclose(f);
    return data;
}

//  Replaces the file at path with size bytes.
static void s_spit(const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

Test(pubstate, written_nodes_read_back_in_order_with_their_frames)
{
    static const int order[S_NODES] = {2, 0, 1};
    cr_assert_eq(s_write(S_HOST, order, S_NODES), 0);
    s_seen_t seen = {0};
    const char *why = NULL;
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_OK);
    cr_assert_str_eq(why, "");
    cr_assert_eq(seen.count, S_NODES);
    for (int i = 0; i < S_NODES; i++) {
        char uuid[37];
        snprintf(uuid, sizeof(uuid), "5f0c3a52-8a4b-4c55-9d0e-%012d", order[i] + 1);
        cr_assert_str_eq(seen.uuid[i], uuid, "oldest first, as written");
        cr_assert_eq(memcmp(seen.header[i], frames[order[i]].header, HVN_HEADER_SIZE), 0,
                     "the header as sent, seq and instance included");
        cr_assert_eq(seen.vcpus[i], 10 * order[i] + HVN_F_VCPUS);
    }
}

Test(pubstate, an_empty_list_is_a_good_file)
{
    cr_assert_eq(s_write(S_HOST, NULL, 0), 0);
    s_seen_t seen = {0};
    const char *why = NULL;
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_OK);
    cr_assert_eq(seen.count, 0);
}

Test(pubstate, write_replaces_the_file_and_leaves_no_temporary_behind)
{
    cr_assert_eq(s_write(S_HOST, NULL, S_NODES), 0);
    cr_assert_eq(s_write(S_HOST, NULL, 1), 0);
    char *tmp = zsys_sprintf("%s.tmp", path);
    cr_assert_not(zsys_file_exists(tmp));
    zstr_free(&tmp);
    s_seen_t seen = {0};
    const char *why = NULL;
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_OK);
    cr_assert_eq(seen.count, 1, "the second write's nodes only");
}

Test(pubstate, a_failed_write_leaves_the_old_file_as_it_was)
{
    cr_assert_eq(s_write(S_HOST, NULL, S_NODES), 0);
    size_t before_size;
    uint8_t *before = s_slurp(&before_size);
    //  The temporary file cannot be made: a directory is in its way
    char *tmp = zsys_sprintf("%s.tmp", path);
    cr_assert_eq(mkdir(tmp, 0700), 0);
    cr_assert_eq(s_write(S_HOST, NULL, 1), -1);
    cr_assert_eq(rmdir(tmp), 0);
    zstr_free(&tmp);
    size_t after_size;
    uint8_t *after = s_slurp(&after_size);
    cr_assert_eq(after_size, before_size);
    cr_assert_eq(memcmp(after, before, before_size), 0);
    free(before);
    free(after);
}

Test(pubstate, a_missing_file_is_a_first_start_and_an_unreadable_one_says_why)
{
    s_seen_t seen = {0};
    const char *why = NULL;
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_MISSING);
    cr_assert_eq(mkdir(path, 0700), 0); //  A directory where the file should be
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_UNREADABLE);
    cr_assert_str_neq(why, "");
    cr_assert_eq(seen.count, 0);
}

//  Returns a state file (heap, *size bytes) with the given format, version
//  and host, and the nodes of frames listed by index (-1 ends the list).
static char *s_variant(const char *format, int version, const char *host, const int *list,
                       size_t *size)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    size_t n = 0;
    while (list[n] >= 0)
        n++;
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "format", 6);
    msgpack_pack_str_with_body(&pk, format, strlen(format));
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_int(&pk, version);
    msgpack_pack_str_with_body(&pk, "host", 4);
    msgpack_pack_str_with_body(&pk, host, strlen(host));
    msgpack_pack_str_with_body(&pk, "nodes", 5);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const hvn_frames_t *f = &frames[list[i]];
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, f->topic, f->topic_size);
        msgpack_pack_bin_with_body(&pk, f->header, HVN_HEADER_SIZE);
        msgpack_pack_bin_with_body(&pk, f->body, f->body_size);
    }
    *size = sbuf.size;
    return sbuf.data;
}

Test(pubstate, a_bad_file_is_refused_whole_and_says_why)
{
    cr_assert_eq(s_write(S_HOST, NULL, S_NODES), 0);
    size_t good_size;
    uint8_t *good = s_slurp(&good_size);
    static const int all[] = {0, 1, 2, -1}, twice[] = {0, 1, 0, -1};
    static const struct {
        const char *name; //  The fault
        const char *why;  //  What the read says
    } cases[] = {
        {"garbage", "not one whole msgpack object"},
        {"empty", "not one whole msgpack object"},
        {"cut", "not one whole msgpack object"},
        {"trailing", "not one whole msgpack object"},
        {"not a map", "not a map"},
        {"format", "not a publisher state file"},
        {"version", "unknown version"},
        {"host", "written for another host"},
        {"bad body", "missing_key"},
        {"twice", "a node is listed twice"},
        {"sync", "a node's last notification is not a create or update"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const char *name = cases[c].name;
        uint8_t *data = malloc(good_size + 16);
        memcpy(data, good, good_size);
        size_t size = good_size;
        char *packed = NULL;
        if (strcmp(name, "garbage") == 0)
            size = (size_t)snprintf((char *)data, good_size, "not a state file\n");
        else if (strcmp(name, "empty") == 0)
            size = 0;
        else if (strcmp(name, "cut") == 0)
            size = good_size / 2;
        else if (strcmp(name, "trailing") == 0)
            data[size++] = 0xc0;
        else if (strcmp(name, "not a map") == 0) {
            data[0] = 0x90; //  An empty array
            size = 1;
        } else if (strcmp(name, "bad body") == 0) {
            uint8_t *key = memmem(data, size, "priority", 8);
            cr_assert(key);
            key[0] = 'q'; //  A required key of the first node goes missing
        } else if (strcmp(name, "sync") == 0) {
            uint8_t *kind = memmem(data, size, frames[2].header, HVN_HEADER_SIZE);
            cr_assert(kind);
            kind[1] = HVN_KIND_SYNC;
        } else
            packed =
                s_variant(strcmp(name, "format") == 0 ? "hvn-other-state" : "hvn-publisher-state",
                          strcmp(name, "version") == 0 ? 2 : 1,
                          strcmp(name, "host") == 0 ? "cmp-018" : S_HOST,
                          strcmp(name, "twice") == 0 ? twice : all, &size);
        s_spit(packed ? (uint8_t *)packed : data, size);
        free(packed);
        free(data);
        s_seen_t seen = {0};
        const char *why = NULL;
        cr_expect_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_CORRUPT,
                     "%s", name);
        cr_expect(why && strstr(why, cases[c].why), "%s: said '%s'", name, why ? why : "");
        cr_expect_eq(seen.count, 0, "%s: nodes passed on from a bad file", name);
    }
    free(good);
}

Test(pubstate, a_node_of_another_host_is_refused)
{
    //  Frames that decode well but were sent for another host
    hvn_node_t node;
    hvn_node_init(&node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(&node, f, f);
    hvn_node_set_str(&node, HVN_F_UUID, "5f0c3a52-8a4b-4c55-9d0e-000000000009");
    hvn_node_set_str(&node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_envelope_t env = {.host = "cmp-018"};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = 9};
    hvn_frames_t other;
    cr_assert_eq(hvn_encoder_notification(encoder, HVN_EVENT_CREATE, &env, &node, &header, &other),
                 0);
    hvn_pubstate_node_t nodes[2] = {s_node_of(&frames[0]), s_node_of(&other)};
    cr_assert_eq(hvn_pubstate_write(path, S_HOST, nodes, 2), 0);
    s_seen_t seen = {0};
    const char *why = NULL;
    cr_assert_eq(hvn_pubstate_read(path, S_HOST, s_collect, &seen, &why), HVN_PUBSTATE_CORRUPT);
    cr_assert_str_eq(why, "a node was sent for another host");
    cr_assert_eq(seen.count, 0, "not even the good first node");
}
