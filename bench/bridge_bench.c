/*  bridge_bench.c — hvn-bridge's RabbitMQ side against a bare rabbitmq-c
    publisher, same RabbitMQ, same run.

        build/bin/bench_bridge [--count N] [--runs R] [--window W]
                               [--transport-url URL] [--smoke]

    Baseline: a bare rabbitmq-c loop that publishes pre-rendered messagingv2
    bodies (the very bodies the bridge writes) in confirm mode, at most W
    unconfirmed, reading the acks as they come: what RabbitMQ itself costs.
    Bridge: the same notifications handed to the bridge as the replica hands
    them (decoded messages): rendered to messagingv2 (hvn_oslo_body),
    queued, published and confirmed by hvn_bridge with the same window, in
    hvn-bridge's own loop shape (a batch in, then a pump). Runs alternate;
    the median rates and their ratio are printed.

    Latency: notifications handed over one per millisecond; the bridge's
    push → confirm p50/p99 against the bare loop's publish → ack, same pace.

    Without --transport-url, a RabbitMQ of its own is started in a temp dir
    (tests/bridge/rabbit.sh) and stopped after.
*/
#include "hvn_bridge.h"
#include "hvn_oslo.h"
#include "rmq.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXCHANGE "hvn_bench"
#define S_KEY "hvn_bench.info"
#define S_BATCH 256 //  Messages the replica hands over per poll, about

//  One run's settings
typedef struct {
    const hvn_amqp_url_t *url; //  Where RabbitMQ is
    size_t count;              //  Notifications per run
    size_t window;             //  Unconfirmed at most
} s_bench_t;

// --------------------------------------------------------------------------
//  The notifications

//  Returns nothing; fills msg with a decoded update of node i, message id
//  unique to i, made by the project's own encoder and decoder.
static void s_message(hvn_msg_t *msg, size_t i)
{
    static hvn_encoder_t *enc;
    static hvn_decoder_t *dec;
    if (!enc) {
        enc = hvn_encoder_new();
        dec = hvn_decoder_new();
    }
    hvn_node_t node;
    memset(&node, 0, sizeof(node));
    hvn_node_init(&node);
    node.id = (int64_t)i;
    snprintf(node.uuid, sizeof(node.uuid), "6f0a8c2e-4b1d-4e5f-9a7b-%012u", (unsigned)(i % 1000));
    node.vcpus = 64;
    node.vcpus_used = (int64_t)(i % 64);
    node.memory_mb = 262144;
    node.local_gb = 2000;
    snprintf(node.hypervisor_type, sizeof(node.hypervisor_type), "QEMU");
    char message_id[37];
    snprintf(message_id, sizeof(message_id), "5a1b2c3d-4e5f-4a6b-8c7d-%012u",
             (unsigned)(i % 1000000000));
    hvn_envelope_t env = {.host = "cmp-bench", .message_id = message_id};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = i + 1};
    hvn_frames_t frames;
    if (hvn_encoder_notification(enc, HVN_EVENT_UPDATE, &env, &node, &header, &frames) != 0 ||
        hvn_decoder_decode(dec, frames.topic, frames.topic_size, frames.header, HVN_HEADER_SIZE,
                           frames.body, frames.body_size, msg) != HVN_OK) {
        fprintf(stderr, "bench_bridge: cannot make notification %zu\n", i);
        exit(1);
    }
}

// --------------------------------------------------------------------------
//  The bare rabbitmq-c publisher

//  Returns a connection with channel 1 in confirm mode and the exchange,
//  queue and binding declared as the bridge does, or exits.
static amqp_connection_state_t s_bare_connect(const hvn_amqp_url_t *url)
{
    const hvn_amqp_host_t *host = &url->hosts[0];
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (amqp_socket_open(socket, host->host, host->port) != AMQP_STATUS_OK ||
        amqp_login(conn, url->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, host->user,
                   host->password)
                .reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "bench_bridge: cannot connect to RabbitMQ\n");
        exit(1);
    }
    amqp_channel_open(conn, 1);
    amqp_confirm_select(conn, 1);
    amqp_exchange_declare(conn, 1, amqp_cstring_bytes(S_EXCHANGE), amqp_cstring_bytes("topic"), 0,
                          0, 0, 0, amqp_empty_table);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(S_KEY), 0, 0, 0, 0, amqp_empty_table);
    amqp_queue_bind(conn, 1, amqp_cstring_bytes(S_KEY), amqp_cstring_bytes(S_EXCHANGE),
                    amqp_cstring_bytes(S_KEY), amqp_empty_table);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "bench_bridge: cannot declare\n");
        exit(1);
    }
    return conn;
}

//  Returns nothing; empties the bench's queue, so runs do not pile up.
static void s_purge(amqp_connection_state_t conn)
{
    amqp_queue_purge(conn, 1, amqp_cstring_bytes(S_KEY));
}

//  Returns the highest delivery tag acknowledged by the frames that arrive
//  within timeout_ms (at least `acked`, the highest so far).
static uint64_t s_bare_acks(amqp_connection_state_t conn, uint64_t acked, int timeout_ms,
                            int64_t *sent_us, int64_t *latencies, size_t *latency_count)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_frame_t frame;
    while (amqp_simple_wait_frame_noblock(conn, &frame, &tv) == AMQP_STATUS_OK) {
        if (frame.frame_type == AMQP_FRAME_METHOD &&
            frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = frame.payload.method.decoded;
            uint64_t upto = ack->delivery_tag; //  RabbitMQ confirms in order here
            if (latencies)
                for (uint64_t t = acked + 1; t <= upto; t++)
                    latencies[(*latency_count)++] = zclock_usecs() - sent_us[t - 1];
            if (upto > acked)
                acked = upto;
        }
        amqp_maybe_release_buffers(conn);
        tv = (struct timeval){0, 0};
    }
    return acked;
}

//  Returns the properties the bare loop publishes with: those of the
//  bridge's messages (JSON, UTF-8, persistent).
static amqp_basic_properties_t s_bare_props(void)
{
    return (amqp_basic_properties_t){._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_CONTENT_ENCODING_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .content_encoding = amqp_cstring_bytes("utf-8"),
                                     .delivery_mode = 2};
}

//  Returns the bare loop's rate (messages per second) for the bodies.
static double s_bare_run(const s_bench_t *bench, char **bodies)
{
    amqp_connection_state_t conn = s_bare_connect(bench->url);
    amqp_basic_properties_t props = s_bare_props();
    int64_t start = zclock_usecs();
    uint64_t sent = 0, acked = 0;
    while (acked < bench->count) {
        while (sent < bench->count && sent - acked < bench->window) {
            amqp_bytes_t body = {strlen(bodies[sent]), bodies[sent]};
            amqp_basic_publish(conn, 1, amqp_cstring_bytes(S_EXCHANGE), amqp_cstring_bytes(S_KEY),
                               0, 0, &props, body);
            sent++;
        }
        acked = s_bare_acks(conn, acked, 2, NULL, NULL, NULL);
    }
    double seconds = (double)(zclock_usecs() - start) / 1e6;
    s_purge(conn);
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return (double)bench->count / seconds;
}

// --------------------------------------------------------------------------
//  The bridge

//  Returns a bridge connected to the bench's exchange, or exits.
static hvn_bridge_t *s_bridge(const s_bench_t *bench)
{
    hvn_bridge_opts_t opts = {.url = bench->url,
                              .exchange = S_EXCHANGE,
                              .routing_key = S_KEY,
                              .window = bench->window,
                              .max_pending = bench->count + 1};
    hvn_bridge_t *bridge = hvn_bridge_new(&opts);
    for (int i = 0; bridge && i < 100 && !hvn_bridge_connected(bridge); i++)
        hvn_bridge_pump(bridge, 10);
    if (!bridge || !hvn_bridge_connected(bridge)) {
        fprintf(stderr, "bench_bridge: the bridge cannot connect\n");
        exit(1);
    }
    return bridge;
}

//  Returns the bridge's rate (messages per second) for the messages.
static double s_bridge_run(const s_bench_t *bench, const hvn_msg_t *msgs)
{
    hvn_bridge_t *bridge = s_bridge(bench);
    int64_t start = zclock_usecs();
    size_t handed = 0;
    while (handed < bench->count || hvn_bridge_pending(bridge)) {
        for (size_t n = 0; n < S_BATCH && handed < bench->count; n++, handed++) {
            size_t size;
            char *body = hvn_oslo_body(&msgs[handed], &size);
            hvn_bridge_push(bridge, &body, size);
        }
        hvn_bridge_pump(bridge, hvn_bridge_busy(bridge) ? 2 : 0);
    }
    double seconds = (double)(zclock_usecs() - start) / 1e6;
    hvn_bridge_destroy(&bridge);
    amqp_connection_state_t conn = s_bare_connect(bench->url);
    s_purge(conn);
    amqp_destroy_connection(conn);
    return (double)bench->count / seconds;
}

// --------------------------------------------------------------------------
//  Latency at a steady pace

//  Orders two int64_t.
static int s_compare(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  Returns nothing; the bare loop's publish → ack latency, one message per
//  millisecond, p50 and p99 in µs.
static void s_bare_latency(const s_bench_t *bench, char **bodies, size_t count, int64_t *p50,
                           int64_t *p99)
{
    amqp_connection_state_t conn = s_bare_connect(bench->url);
    amqp_basic_properties_t props = s_bare_props();
    int64_t *sent_us = calloc(count, sizeof(int64_t));
    int64_t *latencies = calloc(count, sizeof(int64_t));
    size_t latency_count = 0;
    uint64_t acked = 0;
    int64_t next = zclock_usecs();
    for (size_t i = 0; i < count; i++) {
        while (zclock_usecs() < next)
            acked = s_bare_acks(conn, acked, 0, sent_us, latencies, &latency_count);
        sent_us[i] = zclock_usecs();
        amqp_bytes_t body = {strlen(bodies[i]), bodies[i]};
        amqp_basic_publish(conn, 1, amqp_cstring_bytes(S_EXCHANGE), amqp_cstring_bytes(S_KEY), 0, 0,
                           &props, body);
        next += 1000;
    }
    while (acked < count)
        acked = s_bare_acks(conn, acked, 10, sent_us, latencies, &latency_count);
    qsort(latencies, latency_count, sizeof(int64_t), s_compare);
    *p50 = latencies[(latency_count - 1) / 2];
    *p99 = latencies[(latency_count - 1) * 99 / 100];
    s_purge(conn);
    amqp_destroy_connection(conn);
    free(sent_us);
    free(latencies);
}

//  Returns nothing; the bridge's push → confirm latency, one notification
//  per millisecond, p50 and p99 in µs.
static void s_bridge_latency(const s_bench_t *bench, const hvn_msg_t *msgs, size_t count,
                             int64_t *p50, int64_t *p99)
{
    hvn_bridge_t *bridge = s_bridge(bench);
    int64_t next = zclock_usecs();
    for (size_t i = 0; i < count; i++) {
        //  Between two notifications the confirms are read as they come,
        //  as the bare loop does
        while (zclock_usecs() < next)
            hvn_bridge_pump(bridge, 0);
        size_t size;
        char *body = hvn_oslo_body(&msgs[i], &size);
        hvn_bridge_push(bridge, &body, size);
        hvn_bridge_pump(bridge, 0);
        next += 1000;
    }
    while (hvn_bridge_pending(bridge))
        hvn_bridge_pump(bridge, 10);
    hvn_bridge_stats_t stats;
    hvn_bridge_stats(bridge, &stats);
    *p50 = (int64_t)stats.latency_p50_us;
    *p99 = (int64_t)stats.latency_p99_us;
    hvn_bridge_destroy(&bridge);
    amqp_connection_state_t conn = s_bare_connect(bench->url);
    s_purge(conn);
    amqp_destroy_connection(conn);
}

//  Orders two doubles.
static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  Returns 0 after printing the table, 1 on failure, 2 on bad usage.
int main(int argc, char *argv[])
{
    size_t count = 20000, runs = 3, window = 1000;
    const char *url_text = NULL;
    bool smoke = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            smoke = true;
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--transport-url") && i + 1 < argc)
            url_text = argv[++i];
        else {
            fprintf(stderr, "usage: bench_bridge [--count N] [--runs R] [--window W] "
                            "[--transport-url URL] [--smoke]\n");
            return 2;
        }
    }
    if (smoke)
        count = 200, runs = 1;
    if (count == 0 || runs == 0 || runs > 99 || window == 0)
        return 2;
    zsys_init();
    zsys_set_logstream(stderr);
    rmq_t rmq = {0};
    if (!url_text) {
        if (rmq_start(&rmq) != 0) {
            fprintf(stderr, "bench_bridge: cannot start RabbitMQ\n");
            return 1;
        }
        url_text = rmq.url;
    }
    char err[256];
    hvn_amqp_url_t *url = hvn_amqp_url_new(url_text, err, sizeof(err));
    if (!url) {
        fprintf(stderr, "bench_bridge: --transport-url: %s\n", err);
        rmq_stop(&rmq);
        return 2;
    }
    s_bench_t bench = {url, count, window};
    hvn_msg_t *msgs = calloc(count, sizeof(*msgs));
    char **bodies = calloc(count, sizeof(*bodies));
    for (size_t i = 0; i < count; i++) {
        s_message(&msgs[i], i);
        bodies[i] = hvn_oslo_body(&msgs[i], NULL);
    }
    printf("bench_bridge: %zu notifications (%zu-byte bodies), window %zu, %zu runs each\n", count,
           strlen(bodies[0]), window, runs);
    double bare[99], bridged[99];
    for (size_t r = 0; r < runs; r++) {
        bare[r] = s_bare_run(&bench, bodies);
        bridged[r] = s_bridge_run(&bench, msgs);
        printf("  run %zu: bare rabbitmq-c %.0f msg/s, bridge %.0f msg/s\n", r + 1, bare[r],
               bridged[r]);
    }
    qsort(bare, runs, sizeof(double), s_compare_double);
    qsort(bridged, runs, sizeof(double), s_compare_double);
    printf("throughput (median): bare %.0f msg/s, bridge %.0f msg/s, ratio %.2f\n", bare[runs / 2],
           bridged[runs / 2], bridged[runs / 2] / bare[runs / 2]);
    size_t paced = smoke ? 100 : (count < 3000 ? count : 3000);
    int64_t bare50, bare99, br50, br99;
    s_bare_latency(&bench, bodies, paced, &bare50, &bare99);
    s_bridge_latency(&bench, msgs, paced, &br50, &br99);
    printf("latency at 1000/s (%zu): bare publish->ack p50 %" PRId64 " us p99 %" PRId64
           " us; bridge push->confirm p50 %" PRId64 " us p99 %" PRId64 " us\n",
           paced, bare50, bare99, br50, br99);
    for (size_t i = 0; i < count; i++)
        free(bodies[i]);
    free(bodies);
    free(msgs);
    hvn_amqp_url_destroy(&url);
    rmq_stop(&rmq);
    return 0;
}
