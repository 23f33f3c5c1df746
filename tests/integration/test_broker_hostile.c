/*  test_broker_hostile.c — the broker against a raw ZeroMQ peer.

    A publisher that is not hvnotify's sends every malformed message of
    PROTOCOL.md section 6, each followed by a valid one: the broker stays up,
    counts each refusal by reason, and a subscriber receives exactly the
    valid messages, in order. Thousands of malformed messages interleaved
    with valid ones: exactly the valid ones arrive and the broker's memory
    stays flat. And SIGTERM stops the broker under full load.
*/
#include "fixtures.h"
#include "support.h"

#include "hvn_proto.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static it_env_t env;

static void s_setup(void)
{
    it_env_setup(&env);
}

TestSuite(hostile, .init = s_setup, .fini = it_env_teardown, .timeout = 60);

//  A raw XPUB on the broker's frontend, returned once the broker's
//  subscription has arrived (so nothing sent is lost to the slow joiner).
static zsock_t *s_raw_publisher(void)
{
    zsock_t *pub = zsock_new(ZMQ_XPUB);
    cr_assert_not_null(pub);
    zsock_set_sndhwm(pub, 0);
    zsock_set_linger(pub, 2000);
    cr_assert_eq(zsock_connect(pub, "%s", env.frontend), 0);
    zsock_set_rcvtimeo(pub, 10000);
    zframe_t *sub = zframe_recv(pub);
    cr_assert_not_null(sub, "no subscription from the broker");
    cr_assert_eq(zframe_data(sub)[0], 1);
    zframe_destroy(&sub);
    return pub;
}

//  A valid create for node `n` with the given seq.
static void s_valid(hvn_encoder_t *enc, uint64_t seq, hvn_frames_t *out)
{
    hvn_node_t node;
    hvn_node_init(&node);
    node.id = (int64_t)seq;
    snprintf(node.uuid, sizeof(node.uuid), "00000000-0000-4000-8000-%012llu",
             (unsigned long long)seq);
    snprintf(node.hypervisor_type, sizeof(node.hypervisor_type), "QEMU");
    node.vcpus = 8;
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    hvn_envelope_t envelope = {.host = "cmp-017"};
    cr_assert_eq(hvn_encoder_notification(enc, HVN_EVENT_CREATE, &envelope, &node, &header, out),
                 0);
}

//  Sends frames (count of them) as one multipart message.
static void s_send(zsock_t *pub, const void *const data[], const size_t sizes[], size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int flags = i + 1 < count ? ZMQ_SNDMORE : 0;
        cr_assert(zmq_send(zsock_resolve(pub), data[i], sizes[i], flags) >= 0);
    }
}

//  Sends a well-formed message from encoded frames, with the topic, header
//  and body replaceable.
static void s_send3(zsock_t *pub, const void *topic, size_t tsize, const void *header, size_t hsize,
                    const void *body, size_t bsize)
{
    const void *data[] = {topic, header, body};
    size_t sizes[] = {tsize, hsize, bsize};
    s_send(pub, data, sizes, 3);
}

typedef enum { MUT_DROP_PAYLOAD, MUT_VCPUS_STRING, MUT_MAJOR_2 } s_mutation_t;

//  Re-packs a valid body with one defect into sbuf.
static void s_mutate(const hvn_frames_t *frames, s_mutation_t mutation, msgpack_sbuffer *sbuf)
{
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    cr_assert_eq(msgpack_unpack_next(&result, (const char *)frames->body, frames->body_size, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    msgpack_object *root = &result.data;
    msgpack_object *payload = fx_map_get(root, "payload");
    cr_assert_not_null(payload);
    if (mutation == MUT_DROP_PAYLOAD) {
        for (uint32_t i = 0; i < root->via.map.size; i++)
            if (&root->via.map.ptr[i].val == payload) {
                root->via.map.ptr[i] = root->via.map.ptr[root->via.map.size - 1];
                root->via.map.size--;
                break;
            }
    } else if (mutation == MUT_VCPUS_STRING) {
        msgpack_object *vcpus = fx_map_get(fx_map_get(payload, "nova_object.data"), "vcpus");
        cr_assert_not_null(vcpus);
        vcpus->type = MSGPACK_OBJECT_STR;
        vcpus->via.str.ptr = "many";
        vcpus->via.str.size = 4;
    } else {
        msgpack_object *version = fx_map_get(payload, "nova_object.version");
        cr_assert_not_null(version);
        version->via.str.ptr = "2.0";
        version->via.str.size = 3;
    }
    msgpack_sbuffer_init(sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *root);
    msgpack_unpacked_destroy(&result);
}

Test(hostile, every_malformed_message_is_refused_and_every_valid_one_arrives)
{
    //  Each defect, with the reason it must be counted under
    const char *reasons[] = {"frames",         "frames",        "frames",      "topic",
                             "topic",          "topic",         "header_size", "header_version",
                             "header_kind",    "too_big",       "msgpack",     "not_map",
                             "msgpack",        "missing_key",   "wrong_type",  "payload_version",
                             "topic_mismatch", "topic_mismatch"};
    const size_t defects = sizeof(reasons) / sizeof(reasons[0]);
    const size_t valid = defects + 1;

    char count[16];
    snprintf(count, sizeof(count), "%zu", valid);
    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--count",
                          count,     "--timeout", "20",        NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);

    zsock_t *pub = s_raw_publisher();
    hvn_encoder_t *enc = hvn_encoder_new();
    char ids[64][HVN_UUID_STR_LEN + 1];
    hvn_frames_t f;
    uint64_t seq = 0;
    char *big = calloc(1, 70000);
    char long_topic[300];
    memset(long_topic, 'x', sizeof(long_topic));
    memcpy(long_topic, "compute_node.create@", 20);

    for (size_t d = 0; d <= defects; d++) {
        //  The defect (built from a fresh valid message)
        s_valid(enc, 1000 + d, &f);
        uint8_t header[HVN_HEADER_SIZE];
        memcpy(header, f.header, sizeof(header));
        msgpack_sbuffer sbuf = {0};
        switch (d) {
        case 0: {
            const void *data[] = {f.topic};
            size_t sizes[] = {f.topic_size};
            s_send(pub, data, sizes, 1);
            break;
        }
        case 1: {
            const void *data[] = {f.topic, f.header};
            size_t sizes[] = {f.topic_size, HVN_HEADER_SIZE};
            s_send(pub, data, sizes, 2);
            break;
        }
        case 2: {
            const void *data[] = {f.topic, f.header, f.body, "extra"};
            size_t sizes[] = {f.topic_size, HVN_HEADER_SIZE, f.body_size, 5};
            s_send(pub, data, sizes, 4);
            break;
        }
        case 3:
            s_send3(pub, "", 0, header, sizeof(header), f.body, f.body_size);
            break;
        case 4:
            s_send3(pub, long_topic, 256, header, sizeof(header), f.body, f.body_size);
            break;
        case 5:
            s_send3(pub, "compute_node.create", 19, header, sizeof(header), f.body, f.body_size);
            break;
        case 6:
            s_send3(pub, f.topic, f.topic_size, header, 25, f.body, f.body_size);
            break;
        case 7:
            header[0] = 2;
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), f.body, f.body_size);
            break;
        case 8:
            header[1] = 9;
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), f.body, f.body_size);
            break;
        case 9:
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), big, 70000);
            break;
        case 10:
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), "\xc1\xc1\xc1", 3);
            break;
        case 11:
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), "\x92\x01\x02", 3);
            break;
        case 12: {
            uint8_t *trailing = malloc(f.body_size + 1);
            memcpy(trailing, f.body, f.body_size);
            trailing[f.body_size] = 0xc0;
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), trailing, f.body_size + 1);
            free(trailing);
            break;
        }
        case 13:
        case 14:
        case 15:
            s_mutate(&f,
                     d == 13   ? MUT_DROP_PAYLOAD
                     : d == 14 ? MUT_VCPUS_STRING
                               : MUT_MAJOR_2,
                     &sbuf);
            s_send3(pub, f.topic, f.topic_size, header, sizeof(header), sbuf.data, sbuf.size);
            msgpack_sbuffer_destroy(&sbuf);
            break;
        case 16:
            s_send3(pub, "compute_node.update@cmp-017", 27, header, sizeof(header), f.body,
                    f.body_size);
            break;
        case 17:
            s_send3(pub, "compute_node.create@cmp-018", 27, header, sizeof(header), f.body,
                    f.body_size);
            break;
        default:
            break; //  After the last defect: only the valid one
        }
        //  Then a valid message
        s_valid(enc, ++seq, &f);
        hvn_msg_t msg;
        hvn_decoder_t *dec = hvn_decoder_new();
        cr_assert_eq(hvn_decoder_decode(dec, f.topic, f.topic_size, f.header, HVN_HEADER_SIZE,
                                        f.body, f.body_size, &msg),
                     HVN_OK);
        snprintf(ids[d], sizeof(ids[d]), "%s", msg.message_id);
        hvn_decoder_destroy(&dec);
        s_send3(pub, f.topic, f.topic_size, f.header, HVN_HEADER_SIZE, f.body, f.body_size);
    }

    char line[8192];
    for (size_t i = 0; i < valid; i++) {
        cr_assert(it_read_line(sub, line, sizeof(line), 10000) > 0, "valid message %zu lost", i);
        json_t *obj = json_loads(line, 0, NULL);
        cr_assert_not_null(obj);
        cr_expect_str_eq(json_string_value(json_object_get(obj, "message_id")), ids[i]);
        json_decref(obj);
    }
    cr_expect_eq(it_wait(sub, 10000), 0);
    it_stop(&sub, SIGKILL, 1000);

    cr_expect_eq(it_broker_stat(env.service, "refused", 2000), (int64_t)defects);
    for (size_t d = 0; d < defects; d++) {
        char key[64];
        snprintf(key, sizeof(key), "refused.%s", reasons[d]);
        cr_expect_gt(it_broker_stat(env.service, key, 2000), 0, "%s not counted", key);
    }
    cr_expect_eq(it_wait(env.broker, 0), -1, "the broker died");
    free(big);
    hvn_encoder_destroy(&enc);
    zsock_destroy(&pub);
}

static atomic_bool s_sending;

//  Thread: sends valid messages as fast as it can until s_sending is false.
static void *s_blast(void *arg)
{
    zsock_t *pub = arg;
    hvn_encoder_t *enc = hvn_encoder_new();
    hvn_frames_t f;
    for (uint64_t seq = 1; atomic_load(&s_sending); seq++) {
        s_valid(enc, seq % 1000 + 1, &f);
        const void *data[] = {f.topic, f.header, f.body};
        size_t sizes[] = {f.topic_size, HVN_HEADER_SIZE, f.body_size};
        for (size_t i = 0; i < 3; i++)
            zmq_send(zsock_resolve(pub), data[i], sizes[i],
                     (i < 2 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    }
    hvn_encoder_destroy(&enc);
    return NULL;
}

Test(hostile, sigterm_stops_the_broker_under_full_load)
{
    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--timeout", "20", NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    zsock_t *pub = s_raw_publisher();
    zsock_set_linger(pub, 0);
    atomic_store(&s_sending, true);
    pthread_t thread;
    pthread_create(&thread, NULL, s_blast, pub);

    //  Load is flowing once the subscriber prints
    char line[8192];
    cr_assert(it_read_line(sub, line, sizeof(line), 10000) > 0, "no traffic through the broker");
    cr_expect_eq(it_stop(&env.broker, SIGTERM, 5000), 0, "broker did not stop cleanly on SIGTERM");

    atomic_store(&s_sending, false);
    pthread_join(thread, NULL);
    zsock_destroy(&pub);
    it_stop(&sub, SIGTERM, 5000);
}

#define S_NODE_SET 100 //  Valid messages cycle over this many nodes: the cache stays small

//  A valid create or update of node seq % S_NODE_SET with the given seq.
static void s_valid_cycled(hvn_encoder_t *enc, uint64_t seq, hvn_frames_t *out)
{
    hvn_node_t node;
    hvn_node_init(&node);
    node.id = (int64_t)(seq % S_NODE_SET);
    snprintf(node.uuid, sizeof(node.uuid), "00000000-0000-4000-8000-%012llu",
             (unsigned long long)(seq % S_NODE_SET));
    snprintf(node.hypervisor_type, sizeof(node.hypervisor_type), "QEMU");
    node.vcpus = (int64_t)(seq % 64);
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    hvn_envelope_t envelope = {.host = "cmp-017"};
    cr_assert_eq(hvn_encoder_notification(enc,
                                          seq <= S_NODE_SET ? HVN_EVENT_CREATE : HVN_EVENT_UPDATE,
                                          &envelope, &node, &header, out),
                 0);
}

//  Sends malformed message number i: one of a dozen defects, most with
//  random bytes, built from the valid frames f.
static void s_send_malformed(zsock_t *pub, size_t i, const hvn_frames_t *f, uint8_t *scratch,
                             size_t scratch_size)
{
    uint8_t header[HVN_HEADER_SIZE];
    memcpy(header, f->header, sizeof(header));
    size_t n = (size_t)rand() % scratch_size;
    for (size_t b = 0; b < n; b++)
        scratch[b] = (uint8_t)rand();
    switch (i % 12) {
    case 0: {
        const void *data[] = {f->topic};
        size_t sizes[] = {f->topic_size};
        s_send(pub, data, sizes, 1);
        break;
    }
    case 1: {
        const void *data[] = {f->topic, f->header, f->body, scratch, scratch};
        size_t sizes[] = {f->topic_size, HVN_HEADER_SIZE, f->body_size, n, n / 2};
        s_send(pub, data, sizes, 5);
        break;
    }
    case 2:
        s_send3(pub, scratch, n % 300, header, sizeof(header), f->body, f->body_size);
        break;
    case 3: //  A header of any size but the right one
        s_send3(pub, f->topic, f->topic_size, scratch, n % 40 == HVN_HEADER_SIZE ? 25 : n % 40,
                f->body, f->body_size);
        break;
    case 4:
        header[0] = (uint8_t)(2 + rand() % 250);
        s_send3(pub, f->topic, f->topic_size, header, sizeof(header), f->body, f->body_size);
        break;
    case 5:
        s_send3(pub, f->topic, f->topic_size, header, sizeof(header), scratch, n);
        break;
    case 6: {
        //  The valid body cut short at a random point
        size_t cut = f->body_size ? (size_t)rand() % f->body_size : 0;
        s_send3(pub, f->topic, f->topic_size, header, sizeof(header), f->body, cut);
        break;
    }
    case 7: {
        //  The valid body with a few bytes flipped, sent under another
        //  host's topic: whatever the flips, publisher_id and the payload
        //  still name cmp-017 at least once, so it is refused
        size_t len = f->body_size < scratch_size ? f->body_size : scratch_size;
        memcpy(scratch, f->body, len);
        for (int k = 0; k < 3; k++)
            scratch[(size_t)rand() % len] ^= (uint8_t)(1 + rand() % 255);
        s_send3(pub, "compute_node.update@cmp-999", 27, header, sizeof(header), scratch, len);
        break;
    }
    case 8:
        s_send3(pub, "compute_node.create@cmp-018", 27, header, sizeof(header), f->body,
                f->body_size);
        break;
    case 9:
        s_send3(pub, "hvn.broker@evil", 15, header, sizeof(header), f->body, f->body_size);
        break;
    case 10:
        s_send3(pub, f->topic, f->topic_size, header, sizeof(header), "\x92\x01\x02", 3);
        break;
    default: {
        const void *data[] = {scratch};
        size_t sizes[] = {n};
        s_send(pub, data, sizes, 1);
        break;
    }
    }
}

#define S_BATCH 500 //  Rounds sent before their valid messages are read back

//  Returns nothing; sends rounds of (malformed, valid) pairs from seq
//  *next on, in batches, reading each batch's valid messages from sub
//  before the next (so the queues, and the broker's memory, see the same
//  backlog every batch), asserting that exactly these arrive, in order.
static void s_hostile_rounds(zsock_t *pub, it_proc_t *sub, hvn_encoder_t *enc, uint64_t *next,
                             size_t rounds)
{
    char(*ids)[HVN_UUID_STR_LEN + 1] = calloc(S_BATCH, sizeof(*ids));
    uint8_t *scratch = malloc(4096);
    cr_assert(ids && scratch);
    hvn_decoder_t *dec = hvn_decoder_new();
    hvn_msg_t *msg = malloc(sizeof(*msg));
    hvn_frames_t f;
    char line[8192];
    for (size_t done = 0; done < rounds; done += S_BATCH) {
        size_t batch = rounds - done < S_BATCH ? rounds - done : S_BATCH;
        for (size_t r = 0; r < batch; r++) {
            s_valid_cycled(enc, *next, &f);
            s_send_malformed(pub, done + r, &f, scratch, 4096);
            s_valid_cycled(enc, *next, &f); //  The encoder's buffers were reused above
            cr_assert_eq(hvn_decoder_decode(dec, f.topic, f.topic_size, f.header, HVN_HEADER_SIZE,
                                            f.body, f.body_size, msg),
                         HVN_OK);
            snprintf(ids[r], sizeof(ids[r]), "%s", msg->message_id);
            s_send3(pub, f.topic, f.topic_size, f.header, HVN_HEADER_SIZE, f.body, f.body_size);
            (*next)++;
        }
        for (size_t r = 0; r < batch; r++) {
            cr_assert(it_read_line(sub, line, sizeof(line), 20000) > 0, "valid message %zu lost",
                      done + r);
            json_t *obj = json_loads(line, 0, NULL);
            cr_assert_not_null(obj);
            const char *id = json_string_value(json_object_get(obj, "message_id"));
            cr_assert(id && streq(id, ids[r]), "message %zu: expected %s, got %s", done + r, ids[r],
                      line);
            json_decref(obj);
        }
    }
    free(msg);
    hvn_decoder_destroy(&dec);
    free(scratch);
    free(ids);
}

Test(hostile, thousands_of_malformed_messages_leave_exactly_the_valid_ones_and_flat_memory)
{
    //  A broker with one malloc arena: glibc's per-thread arenas (libzmq's
    //  I/O thread allocates what the broker's thread frees) make RSS wander
    //  by megabytes from run to run, which would hide a leak or fake one
    it_stop(&env.broker, SIGTERM, 5000);
    setenv("MALLOC_ARENA_MAX", "1", 1);
    //  The replay ring grows by design up to --ring-bytes: a small one is
    //  full within the warm-up, so what is measured after it is flat
    const char *extra[] = {"--ring-bytes", "1M", NULL};
    it_broker_start(&env, extra);
    unsetenv("MALLOC_ARENA_MAX");
    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--timeout", "30", NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    zsock_t *pub = s_raw_publisher();
    hvn_encoder_t *enc = hvn_encoder_new();
    srand(17);
    uint64_t seq = 1;
    //  After a warm-up (queues and the allocator at the size this traffic
    //  needs), four times as much again may not grow the broker by more
    //  than 4 MiB: RSS wanders by about 1.3 MiB either way over 500 000
    //  messages here without a trend, and a leak of 50 bytes a message
    //  would add 4 MiB over the 80 000 measured
#ifndef __SANITIZE_ADDRESS__
    const size_t warmup = 10000, rounds = 20000;
#else
    //  Memory is not measured under AddressSanitizer (see below), and its
    //  broker is several times slower: fewer rounds check the exactness
    const size_t warmup = 1000, rounds = 2000;
#endif
    s_hostile_rounds(pub, sub, enc, &seq, warmup);
    long before = it_rss_kib(env.broker->pid);
    s_hostile_rounds(pub, sub, enc, &seq, rounds);
    s_hostile_rounds(pub, sub, enc, &seq, rounds);
    long after = it_rss_kib(env.broker->pid);
    fprintf(stderr, "hostile: broker VmRSS %ld KiB after %zu rounds, %ld KiB after %zu more\n",
            before, warmup, after, 2 * rounds);
#ifndef __SANITIZE_ADDRESS__
    //  (Under AddressSanitizer freed memory is held in quarantine: RSS grows
    //  by design, and only the exactness below is checked.)
    cr_expect_leq(after, before + 4096, "broker grew from %ld to %ld KiB", before, after);
#endif
    //  Every malformed message refused, every valid one forwarded
    const int64_t total = (int64_t)(warmup + 2 * rounds);
    cr_expect_eq(it_broker_stat(env.service, "forwarded", 2000), total);
    cr_expect_eq(it_broker_stat(env.service, "refused", 2000), total);
    cr_expect_eq(it_broker_stat(env.service, "cache_nodes", 2000), S_NODE_SET);
    cr_expect_eq(it_wait(env.broker, 0), -1, "the broker died");
    hvn_encoder_destroy(&enc);
    zsock_destroy(&pub);
    it_stop(&sub, SIGTERM, 5000);
}

//  Returns the line tests/integration/clients/hostile_peer.py printed for
//  `mode` with its arguments (NULL-ended), in line (asserted), after the
//  script exited.
static void s_hostile_peer(char *line, size_t size, const char *const args[])
{
    const char *argv[IT_MAX_ARGS] = {"/usr/bin/python3",
                                     HVN_SOURCE_DIR "/tests/integration/clients/hostile_peer.py"};
    size_t n = 2;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    it_proc_t *peer = it_spawn(argv, false, true, false);
    cr_assert_not_null(peer);
    cr_assert_gt(it_read_line(peer, line, size, 20000), 0, "hostile_peer.py said nothing");
    cr_expect_eq(it_wait(peer, 10000), 0);
    it_stop(&peer, SIGKILL, 1000);
}

Test(hostile, refused_subscriptions_cost_the_broker_bounded_memory)
{
    long before = it_rss_kib(env.broker->pid);
    char line[256];
    //  Longer than any topic: never received (libzmq drops the connection
    //  at the first one); it cost 60 MB for 30 before
    const char *big[] = {"subscribe", env.backend, "30", "60000", NULL};
    s_hostile_peer(line, sizeof(line), big);
    cr_expect_str_eq(line, "disconnected", "a 60 kB subscription was taken");
    long after_big = it_rss_kib(env.broker->pid);
    //  20 000 distinct prefixes of 240 bytes: the first 1 000 applied, the
    //  connection cut soon after the 64th refused one (160 MB before)
    const char *many[] = {"subscribe", env.backend, "20000", "240", NULL};
    s_hostile_peer(line, sizeof(line), many);
    cr_expect_str_eq(line, "disconnected", "a subscriber sending refused prefixes was not cut");
    int64_t cut = -1;
    for (int64_t deadline = zclock_mono() + 20000; zclock_mono() < deadline && cut < 1;)
        cut = it_broker_stat(env.service, "subscribers_cut", 2000);
    cr_expect_geq(cut, 1);
    long after_many = it_rss_kib(env.broker->pid);
    //  Twice more: what each attempt held is freed at its cut and reused,
    //  so the broker does not grow with the attacks (how much one attempt
    //  gets in before the cut depends on how fast the broker reads)
#ifdef __SANITIZE_ADDRESS__
    int rounds = 0; //  Too slow to be cut in time; and no figure to read
#else
    int rounds = 2;
#endif
    for (int i = 0; i < rounds; i++) {
        s_hostile_peer(line, sizeof(line), many);
        cr_expect_str_eq(line, "disconnected");
    }
    //  libzmq frees a cut connection's state in its own thread, and the
    //  broker hands freed memory back within a second of a disconnect:
    //  wait (bounded) for the figure to come down rather than read it once
    long after_again = it_rss_kib(env.broker->pid);
    for (int64_t deadline = zclock_mono() + 5000;
         after_again - after_many >= 32 * 1024 && zclock_mono() < deadline;) {
        zclock_sleep(50);
        after_again = it_rss_kib(env.broker->pid);
    }
    fprintf(stderr,
            "hostile: broker VmRSS %ld KiB, %ld after 30 x 60 kB, %ld after 20 000 x 240 B, "
            "%ld after the same twice again\n",
            before, after_big, after_many, after_again);
#ifndef __SANITIZE_ADDRESS__
    //  (AddressSanitizer's quarantine keeps freed memory: no figure then)
    cr_expect_lt(after_big - before, 8 * 1024, "60 kB subscriptions kept");
    cr_expect_lt(after_again - after_many, 32 * 1024, "memory not freed at the cut");
#endif
    //  Each cut connection's slots are free again
    int64_t subscriptions = -1;
    for (int64_t deadline = zclock_mono() + 10000; zclock_mono() < deadline;) {
        subscriptions = it_broker_stat(env.service, "subscriptions", 2000);
        if (subscriptions == 0)
            break;
        zclock_sleep(20);
    }
    cr_expect_eq(subscriptions, 0);
}

Test(hostile, connections_past_the_open_files_limit_are_counted_and_logged)
{
    //  A broker of its own, with 64 descriptors, on TCP (libzmq 4.3.4
    //  aborts on an ipc:// accept that fails for want of descriptors)
    it_stop(&env.broker, SIGTERM, 5000);
    snprintf(env.frontend, sizeof(env.frontend), "tcp://127.0.0.1:%d", it_free_port());
    snprintf(env.backend, sizeof(env.backend), "tcp://127.0.0.1:%d", it_free_port());
    snprintf(env.service, sizeof(env.service), "tcp://127.0.0.1:%d", it_free_port());
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "ulimit -n 64 && exec %s --frontend %s --backend %s --service %s --name fds",
             it_bin("hvn-broker"), env.frontend, env.backend, env.service);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    it_proc_t *broker = it_spawn(argv, false, false, true);
    cr_assert_not_null(broker);
    cr_assert_geq(it_wait_subscriptions(env.service, 0, 10000), 0, "broker not up");
    //  150 connections at once, held for two seconds
    snprintf(cmd, sizeof(cmd),
             "import time, zmq\n"
             "c = zmq.Context()\n"
             "socks = [c.socket(zmq.DEALER) for i in range(150)]\n"
             "for s in socks: s.connect('%s')\n"
             "time.sleep(2)\n"
             "for s in socks: s.close(linger=0)\n",
             env.frontend);
    const char *py[] = {"/usr/bin/python3", "-c", cmd, NULL};
    it_proc_t *flood = it_spawn(py, false, false, false);
    cr_assert_not_null(flood);
    cr_expect_eq(it_wait(flood, 20000), 0);
    it_stop(&flood, SIGKILL, 1000);
    //  The broker took the rest once the flood closed, and says what happened
    int64_t failed = -1;
    for (int64_t deadline = zclock_mono() + 10000; zclock_mono() < deadline && failed <= 0;)
        failed = it_broker_stat(env.service, "accept_failed", 1000);
    cr_expect_gt(failed, 0, "accept failures not counted");
    kill(broker->pid, SIGTERM);
    it_wait(broker, 5000);
    char *log = it_read_stderr(broker, 1000);
    it_stop(&broker, SIGKILL, 1000);
    cr_expect(log && strstr(log, "cannot accept a connection on the frontend"), "no log line: %s",
              log ? log : "");
    free(log);
}
