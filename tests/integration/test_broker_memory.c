/*  test_broker_memory.c — peers that never read cannot make the broker
    hold memory without bound.

    Snapshot clients that ask and never read: what the broker queues for
    them is bounded by --snapshot-bytes (a quarter of it per peer), a
    client that takes nothing for --snapshot-stall-ms is cut and counted
    as stalled, and an honest hvn-sub --snapshot from another address is
    served meanwhile. A subscriber that never reads while valid updates
    padded with unknown keys stream through: its queue pins at most
    --subscriber-bytes. The broker's resident size (VmRSS) is the measure,
    as an operator would see it.
*/
#include "support.h"

#include "hvn_proto.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define S_MIB 1024L //  KiB in a MiB, for VmRSS figures

static it_env_t env;

static void s_setup(void)
{
    it_env_init(&env);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(memory, .init = s_setup, .fini = s_teardown, .timeout = 90);

//  Returns a raw XPUB on the broker's frontend, once the broker's
//  subscription has arrived (nothing sent is lost to the slow joiner).
static zsock_t *s_raw_publisher(void)
{
    zsock_t *pub = zsock_new(ZMQ_XPUB);
    cr_assert_not_null(pub);
    zsock_set_sndhwm(pub, 0);
    zsock_set_linger(pub, 5000);
    cr_assert_eq(zsock_connect(pub, "%s", env.frontend), 0);
    zsock_set_rcvtimeo(pub, 10000);
    zframe_t *sub = zframe_recv(pub);
    cr_assert_not_null(sub, "no subscription from the broker");
    zframe_destroy(&sub);
    return pub;
}

//  Returns nothing; sends a valid notification of node n (create or
//  update) with seq, its body padded with an unknown top-level key of
//  `padding` bytes (a reader ignores unknown keys, PROTOCOL.md section 3).
static void s_send_padded(zsock_t *pub, hvn_encoder_t *enc, hvn_event_t event, int n, uint64_t seq,
                          size_t padding)
{
    hvn_node_t node;
    hvn_node_init(&node);
    node.id = n;
    snprintf(node.uuid, sizeof(node.uuid), "00000000-0000-4000-8000-%012d", n);
    snprintf(node.hypervisor_type, sizeof(node.hypervisor_type), "QEMU");
    node.vcpus = 8;
    node.vcpus_used = (int64_t)(seq % 8);
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    memset(header.instance, 0x5a, sizeof(header.instance));
    hvn_envelope_t envelope = {.host = "cmp-017"};
    hvn_frames_t f;
    cr_assert_eq(hvn_encoder_notification(enc, event, &envelope, &node, &header, &f), 0);
    cr_assert_eq(f.body[0], 0x86, "the body is a map of six keys");
    static const char key[] = "\xa9x-padding"; //  fixstr of 9 bytes
    size_t size = f.body_size + sizeof(key) - 1 + 5 + padding;
    uint8_t *body = malloc(size);
    cr_assert_not_null(body);
    memcpy(body, f.body, f.body_size);
    body[0] = 0x87;
    uint8_t *w = body + f.body_size;
    memcpy(w, key, sizeof(key) - 1);
    w += sizeof(key) - 1;
    *w++ = 0xdb; //  str 32
    *w++ = (uint8_t)(padding >> 24);
    *w++ = (uint8_t)(padding >> 16);
    *w++ = (uint8_t)(padding >> 8);
    *w++ = (uint8_t)padding;
    memset(w, 'x', padding);
    void *handle = zsock_resolve(pub);
    cr_assert_eq(zmq_send(handle, f.topic, f.topic_size, ZMQ_SNDMORE), (int)f.topic_size);
    cr_assert_eq(zmq_send(handle, f.header, HVN_HEADER_SIZE, ZMQ_SNDMORE), HVN_HEADER_SIZE);
    cr_assert_eq(zmq_send(handle, body, size, 0), (int)size);
    free(body);
}

//  Returns the broker's counter key once it is at least n (asserted within
//  timeout_ms).
static int64_t s_wait_stat(const char *key, int64_t n, int timeout_ms)
{
    int64_t value = -1;
    for (int64_t deadline = zclock_mono() + timeout_ms; zclock_mono() < deadline;) {
        value = it_broker_stat(env.service, key, 2000);
        if (value >= n)
            return value;
        zclock_sleep(20);
    }
    cr_assert_geq(value, n, "%s is %lld, expected at least %lld", key, (long long)value,
                  (long long)n);
    return value;
}

#define S_NODES 2000        //  Cached nodes: a snapshot of about 5.8 MB
#define S_NODE_PADDING 2048 //  Bytes of unknown key in each
#define S_ABUSERS 64        //  Snapshot clients that never read: every slot there is

Test(memory, snapshot_clients_that_never_read_hold_bounded_memory_and_leave_room_for_others)
{
    //  tcp: the abusers connect from 127.0.0.2, the honest client from
    //  127.0.0.1, two peers as the broker counts them
    int port = it_free_port();
    snprintf(env.service, sizeof(env.service), "tcp://127.0.0.1:%d", port);
    const char *extra[] = {
        "--max-snapshot-rate", "1000", "--snapshot-stall-ms", "3000", "--ring-bytes", "0", NULL};
    it_broker_start(&env, extra);
    hvn_encoder_t *enc = hvn_encoder_new();
    zsock_t *pub = s_raw_publisher();
    for (int n = 1; n <= S_NODES; n++)
        s_send_padded(pub, enc, HVN_EVENT_CREATE, n, (uint64_t)n, S_NODE_PADDING);
    s_wait_stat("cache_nodes", S_NODES, 20000);
    long before = it_rss_kib(env.broker->pid);

    zsock_t *abusers[S_ABUSERS];
    for (int i = 0; i < S_ABUSERS; i++) {
        abusers[i] = zsock_new(ZMQ_DEALER);
        cr_assert_not_null(abusers[i]);
        zsock_set_rcvhwm(abusers[i], 1);
        zsock_set_rcvbuf(abusers[i], 4096);
        cr_assert_eq(zsock_connect(abusers[i], "tcp://127.0.0.2:0;127.0.0.1:%d", port), 0);
        zstr_sendm(abusers[i], "SNAPSHOT");
        zstr_send(abusers[i], "");
    }
    //  Every request answered: served slowly (and perhaps already cut for
    //  stalling, on a slow machine), or refused (ERROR, unread)
    int64_t active = 0, limited = 0, stalled = 0;
    for (int64_t deadline = zclock_mono() + 20000; zclock_mono() < deadline;) {
        active = it_broker_stat(env.service, "snapshots_active", 2000);
        limited = it_broker_stat(env.service, "limited_snapshots", 2000);
        stalled = it_broker_stat(env.service, "snapshots_stalled", 2000);
        if (active + limited + stalled >= S_ABUSERS)
            break;
        zclock_sleep(50);
    }
    const int64_t admitted = S_ABUSERS - limited;
    zclock_sleep(500); //  What the admitted ones can take is queued by now
    long held = it_rss_kib(env.broker->pid);
    int64_t reserved = it_broker_stat(env.service, "snapshot_bytes", 2000);
    int64_t budget = it_broker_stat(env.service, "snapshot_max_bytes", 2000);

    //  An honest client from another address is served in full meanwhile
    const char *sub_argv[] = {"hvn-sub",   "--connect",  env.backend, "--service",
                              env.service, "--snapshot", "--count",   "2000",
                              "--timeout", "20",         NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, true);
    cr_assert_not_null(sub);
    char *out = it_read_stdout(sub, 30000);
    int code = it_wait(sub, 10000);
    char *err = it_read_stderr(sub, 1000);
    size_t lines = 0;
    for (const char *p = strchr(out, '\n'); p; p = strchr(p + 1, '\n'))
        lines++;
    fprintf(stderr,
            "memory: broker VmRSS %ld KiB, %ld with %d snapshot clients that never read "
            "(%lld in progress holding %lld bytes of %lld, %lld refused); honest client: "
            "exit %d, %zu lines\n",
            before, held, S_ABUSERS, (long long)active, (long long)reserved, (long long)budget,
            (long long)limited, code, lines);
    cr_expect_eq(code, 0, "hvn-sub --snapshot failed: %s", err);
    cr_expect_eq(lines, S_NODES);
    cr_expect_lt(admitted, S_ABUSERS, "one peer took every snapshot slot");
    cr_expect_leq(reserved, budget / 4 + 2 * S_NODES * (S_NODE_PADDING + 1024));
#ifndef __SANITIZE_ADDRESS__
    //  Before: every client's queue held the whole snapshot, 64 x 5.8 MB
    cr_expect_lt(held - before, 48 * S_MIB, "snapshot clients that never read hold %ld KiB",
                 held - before);
#endif
    free(out);
    free(err);
    it_stop(&sub, SIGKILL, 1000);

    //  The stall: the admitted ones end, those that took nothing cut and
    //  counted apart, their queues freed. (How many count as stalled rather
    //  than served depends on how much of a snapshot the kernel's and
    //  libzmq's buffers on both sides took in before the client stopped
    //  reading: at least one, here.)
    int64_t in_progress = -1;
    for (int64_t deadline = zclock_mono() + 20000; zclock_mono() < deadline;) {
        in_progress = it_broker_stat(env.service, "snapshots_active", 2000);
        if (in_progress == 0)
            break;
        zclock_sleep(50);
    }
    cr_expect_eq(in_progress, 0, "snapshots of clients that never read still in progress");
    stalled = it_broker_stat(env.service, "snapshots_stalled", 2000);
    cr_expect_geq(stalled, 1, "no client that never read was cut");
    cr_expect_leq(stalled, admitted);
    cr_expect_geq(it_broker_stat(env.service, "snapshots", 2000), 1);
    zclock_sleep(1500); //  libzmq frees in its own thread; the broker trims after
    long after = it_rss_kib(env.broker->pid);
    fprintf(stderr, "memory: %lld stalled snapshots cut; broker VmRSS %ld KiB after\n",
            (long long)stalled, after);
#ifndef __SANITIZE_ADDRESS__
    cr_expect_lt(after - before, 16 * S_MIB, "the stalled snapshots' memory was not freed");
#endif
    for (int i = 0; i < S_ABUSERS; i++)
        zsock_destroy(&abusers[i]);
    zsock_destroy(&pub);
    hvn_encoder_destroy(&enc);
}

#define S_UPDATES 3000         //  Updates of one node: the cache holds one
#define S_UPDATE_PADDING 32768 //  Bytes of unknown key in each: 96 MB in all

Test(memory, a_subscriber_that_never_reads_pins_at_most_subscriber_bytes)
{
    //  Small heartbeats (100 nodes), so notifications are the largest
    //  message: a queue of 16 MiB / 66 073 bytes = 253 messages
    const char *extra[] = {
        "--subscriber-bytes", "16M", "--max-publisher-nodes", "100", "--ring-bytes", "0", NULL};
    it_broker_start(&env, extra);
    cr_expect_eq(it_broker_stat(env.service, "subscriber_queue", 2000), 253);
    zsock_t *stuck = zsock_new(ZMQ_SUB);
    cr_assert_not_null(stuck);
    zsock_set_rcvhwm(stuck, 1);
    zsock_set_rcvbuf(stuck, 4096);
    cr_assert_eq(zsock_connect(stuck, "%s", env.backend), 0);
    zsock_set_subscribe(stuck, "");
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    hvn_encoder_t *enc = hvn_encoder_new();
    zsock_t *pub = s_raw_publisher();
    s_send_padded(pub, enc, HVN_EVENT_CREATE, 1, 1, 0);
    s_wait_stat("forwarded", 1, 10000);
    long before = it_rss_kib(env.broker->pid);
    //  In batches the broker forwards before the next: what the broker
    //  holds is then what the stuck queue pins, not a backlog of its input
    for (int i = 2; i <= S_UPDATES + 1; i++) {
        s_send_padded(pub, enc, HVN_EVENT_UPDATE, 1, (uint64_t)i, S_UPDATE_PADDING);
        if (i % 100 == 0 || i == S_UPDATES + 1)
            s_wait_stat("forwarded", i, 30000);
    }
    long held = it_rss_kib(env.broker->pid);
    zsock_destroy(&stuck);
    //  The close is seen, libzmq frees the queue, the broker trims
    for (int64_t deadline = zclock_mono() + 10000; zclock_mono() < deadline;) {
        if (it_broker_stat(env.service, "subscriptions", 2000) == 0)
            break;
        zclock_sleep(20);
    }
    zclock_sleep(1500);
    long after = it_rss_kib(env.broker->pid);
    fprintf(stderr,
            "memory: broker VmRSS %ld KiB, %ld after %d updates of %d bytes to a subscriber "
            "that never reads, %ld after it closed\n",
            before, held, S_UPDATES, S_UPDATE_PADDING, after);
    cr_expect_eq(it_broker_stat(env.service, "refused", 2000), 0, "padded updates refused");
#ifndef __SANITIZE_ADDRESS__
    //  Before: the queue took all of them (100 000 messages), 96 MB
    cr_expect_lt(held - before, 32 * S_MIB, "a subscriber that never reads pins %ld KiB",
                 held - before);
    cr_expect_lt(after - before, 8 * S_MIB, "its queue was not freed at its close");
#endif
    zsock_destroy(&pub);
    hvn_encoder_destroy(&enc);
}
