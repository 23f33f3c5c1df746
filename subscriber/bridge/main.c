/*  hvn-bridge — hvnotify's notifications onto RabbitMQ, in the form
    oslo.messaging's messagingv2 notifier writes, so that every OpenStack
    consumer of Nova notifications (Watcher, Ceilometer, any
    NotificationListener) hears compute_node.* unchanged.

    A replica of the fleet over one or more brokers (hvn_replica.h) hands
    over each live notification once, however many brokers carried it;
    each becomes a messagingv2 body (hvn_oslo.h), queued in the bridge
    (hvn_bridge.h) until RabbitMQ confirms it. When the replica repairs a
    loss with a snapshot, the nodes the snapshot changed are published with
    the notification that made them so (its own message id): the newest
    state of every node reaches RabbitMQ even when hvnotify lost some
    notification on the way.
*/
#include "hvn_amqp_url.h"
#include "hvn_bridge.h"
#include "hvn_opt.h"
#include "hvn_oslo.h"
#include "hvn_replica.h"

#include <czmq.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define S_NAME "hvn-bridge"
#define S_FLUSH_MS 5000 //  At exit, wait this long for the unconfirmed

// --------------------------------------------------------------------------
//  The command line

static const char *s_connect[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_service[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_url;
static const char *s_exchange = "nova";
static const char *s_topic = "versioned_notifications";
static bool s_durable;
static long s_max_pending = 100000;
static long s_window = 1000;
static bool s_fleet;
static const char *s_curve_secret;
static const char *s_server_key;

static const hvn_opt_t s_options[] = {
    {"connect", HVN_OPT_LIST, s_connect, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint, .help = "a broker's backend (XPUB); repeat for each broker",
     .default_text = "tcp://127.0.0.1:5562"},
    {"service", HVN_OPT_LIST, s_service, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint,
     .help = "that broker's service endpoint, paired with --connect by order",
     .default_text = "tcp://127.0.0.1:5563"},
    {"transport-url", HVN_OPT_STRING, &s_url, .metavar = "URL",
     .help = "RabbitMQ, as in nova.conf: rabbit://USER:PASS@HOST:PORT/VHOST\n"
             "(several USER:PASS@HOST:PORT comma-separated: tried in turn); required"},
    {"exchange", HVN_OPT_STRING, &s_exchange, .metavar = "NAME",
     .help = "the topic exchange (Nova's control_exchange)"},
    {"topic", HVN_OPT_STRING, &s_topic, .metavar = "NAME",
     .help = "the notification topic: routing key and default queue NAME.info"},
    {"durable", HVN_OPT_FLAG, &s_durable,
     .help = "declare the exchange and the default queue durable; must match\n"
             "the consumers' [oslo_messaging_rabbit] amqp_durable_queues"},
    {"max-pending", HVN_OPT_INT, &s_max_pending, .metavar = "N", .min = 1, .max = 100000000,
     .help = "notifications kept until RabbitMQ confirms them; past it the\n"
             "oldest are dropped (counted and logged)"},
    {"confirm-window", HVN_OPT_INT, &s_window, .metavar = "N", .min = 1, .max = 1000000,
     .help = "notifications published and not yet confirmed, at most"},
    {"fleet", HVN_OPT_FLAG, &s_fleet,
     .help = "at start, also publish the last notification of every node the\n"
             "brokers hold (default: only what happens from then on)"},
    {"curve-secret", HVN_OPT_PATH, &s_curve_secret, .metavar = "CERT",
     .help = "this subscriber's secret certificate (CURVE)"},
    {"server-key", HVN_OPT_PATH, &s_server_key, .metavar = "CERT",
     .help = "the brokers' public certificate (CURVE)"},
    {NULL}};

static const hvn_opt_program_t s_program = {
    .name = S_NAME,
    .summary = "Publish hvnotify notifications on RabbitMQ, as oslo.messaging does.",
    .epilogue = "Every notification goes to the exchange with routing key TOPIC.info, in\n"
                "oslo.messaging's messagingv2 form, and is kept until RabbitMQ confirms it;\n"
                "after a lost connection the unconfirmed ones are sent again (at least once).\n"
                "SIGUSR1 logs the counters; SIGINT/SIGTERM stop after up to 5 s of flushing.\n"
                "Exit status: 0 when stopped by a signal, 1 on failure, 2 on bad usage.",
    .options = s_options};

// --------------------------------------------------------------------------
//  One run

//  What a run holds
typedef struct {
    hvn_replica_t *replica;  //  The fleet, over every broker
    hvn_bridge_t *bridge;    //  RabbitMQ
    bool synced_once;        //  The first snapshot was applied
    uint64_t from_snapshots; //  Notifications published from repair snapshots
    uint64_t unforwardable;  //  Nodes a snapshot removed: no delete to publish
    uint64_t unrendered;     //  Notifications that could not be rendered
} s_run_t;

static volatile sig_atomic_t s_report_due; //  SIGUSR1 arrived

//  Returns nothing; the SIGUSR1 handler.
static void s_on_usr1(int sig)
{
    (void)sig;
    s_report_due = 1;
}

//  Returns nothing; queues one notification's messagingv2 body.
static void s_forward(s_run_t *run, const hvn_msg_t *msg)
{
    size_t size = 0;
    char *body = hvn_oslo_body(msg, &size);
    if (!body) {
        run->unrendered++;
        zsys_error("cannot render notification %s as JSON", msg->message_id);
        return;
    }
    hvn_bridge_push(run->bridge, &body, size);
}

//  Returns nothing; one change of the replica's view (the hvn_replica_fn).
static void s_on_change(const hvn_replica_event_t *event, void *arg)
{
    s_run_t *run = arg;
    switch (event->change) {
    case HVN_REPLICA_REPLACED:
        if (!run->synced_once)
            zsys_info("following %zu nodes", hvn_replica_size(run->replica));
        run->synced_once = true;
        return;
    case HVN_REPLICA_HEARTBEAT:
        return;
    default:
        break;
    }
    if (!event->from_snapshot) {
        s_forward(run, event->msg);
        return;
    }
    if (!run->synced_once && !s_fleet)
        return; //  The fleet as it was before the bridge started
    if (event->msg) {
        if (run->synced_once)
            run->from_snapshots++;
        s_forward(run, event->msg);
    } else if (event->node) {
        //  Deleted while notifications were lost: the delete itself is gone
        run->unforwardable++;
        zsys_warning("node %s (%s) is gone from the brokers, its delete notification was lost: "
                     "nothing to publish",
                     event->node->node.uuid, event->node->host);
    }
}

//  Returns nothing; logs the counters on one line.
static void s_report(s_run_t *run)
{
    hvn_bridge_stats_t b;
    hvn_bridge_stats(run->bridge, &b);
    hvn_replica_stats_t r;
    hvn_replica_stats(run->replica, &r);
    zsys_info("received %" PRIu64 ", published %" PRIu64 ", confirmed %" PRIu64 ", re-sent %" PRIu64
              ", dropped %" PRIu64 ", pending %" PRIu64 ", reconnects %" PRIu64 " (lost %" PRIu64
              ", failed attempts %" PRIu64 ", blocked %" PRIu64 ", nacked %" PRIu64
              "); confirm latency p50 %" PRIu64 " us, p99 %" PRIu64 " us, max %" PRIu64
              " us; from repairs %" PRIu64 ", unforwardable deletes %" PRIu64
              ", unrendered %" PRIu64 "; brokers: duplicates %" PRIu64 ", losses %" PRIu64
              ", repaired %" PRIu64,
              b.received, b.published, b.confirmed, b.resent, b.dropped, b.pending, b.reconnects,
              b.lost, b.failures, b.blocked, b.nacked, b.latency_p50_us, b.latency_p99_us,
              b.latency_max_us, run->from_snapshots, run->unforwardable, run->unrendered,
              r.duplicates, r.losses, r.repaired);
}

//  Returns nothing; follows the brokers until SIGINT/SIGTERM.
static void s_follow(s_run_t *run)
{
    while (true) {
        if (s_report_due) {
            s_report_due = 0;
            s_report(run);
        }
        bool busy = hvn_bridge_busy(run->bridge);
        if (hvn_replica_poll(run->replica, busy ? 0 : 100) < 0)
            break;
        hvn_bridge_pump(run->bridge, busy ? 2 : 0);
    }
}

//  Returns nothing; waits up to S_FLUSH_MS for RabbitMQ to confirm what is
//  still pending.
static void s_flush(s_run_t *run)
{
    int64_t deadline = zclock_mono() + S_FLUSH_MS;
    while (hvn_bridge_pending(run->bridge) && zclock_mono() < deadline)
        hvn_bridge_pump(run->bridge, 50);
    size_t left = hvn_bridge_pending(run->bridge);
    if (left)
        zsys_warning("stopping with %zu notifications not confirmed by RabbitMQ", left);
}

//  Returns the exit status: 0 after a signal, 1 on failure, 2 on bad usage.
int main(int argc, char *argv[])
{
    hvn_opt_parse(&s_program, argc, argv);
    if (!s_url)
        hvn_opt_fail(&s_program, "--transport-url is required");
    if (!s_curve_secret != !s_server_key)
        hvn_opt_fail(&s_program, "--curve-secret and --server-key go together");
    if (!s_connect[0])
        s_connect[0] = "tcp://127.0.0.1:5562";
    if (!s_service[0])
        s_service[0] = "tcp://127.0.0.1:5563";
    size_t brokers = 0, services = 0;
    while (s_connect[brokers])
        brokers++;
    while (s_service[services])
        services++;
    if (brokers != services)
        hvn_opt_fail(&s_program, "each --connect needs its --service (%zu and %zu given)", brokers,
                     services);
    char err[256];
    hvn_amqp_url_t *url = hvn_amqp_url_new(s_url, err, sizeof(err));
    if (!url)
        hvn_opt_fail(&s_program, "--transport-url: %s", err);
    char *routing_key = zsys_sprintf("%s.info", s_topic);

    zsys_set_logident(S_NAME);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zsys_init();
    struct sigaction usr1 = {.sa_handler = s_on_usr1};
    sigemptyset(&usr1.sa_mask);
    sigaction(SIGUSR1, &usr1, NULL);

    s_run_t run = {0};
    hvn_bridge_opts_t bopts = {.url = url,
                               .exchange = s_exchange,
                               .routing_key = routing_key,
                               .durable = s_durable,
                               .max_pending = (size_t)s_max_pending,
                               .window = (size_t)s_window};
    run.bridge = hvn_bridge_new(&bopts);
    hvn_replica_opts_t ropts = {.backends = s_connect,
                                .services = s_service,
                                .broker_count = brokers,
                                .curve_secret = s_curve_secret,
                                .curve_server = s_server_key,
                                .fn = s_on_change,
                                .arg = &run};
    run.replica = run.bridge ? hvn_replica_new(&ropts) : NULL;
    int code = 1;
    if (run.replica) {
        s_follow(&run);
        s_flush(&run);
        s_report(&run);
        code = 0;
    }
    hvn_replica_destroy(&run.replica);
    hvn_bridge_destroy(&run.bridge);
    hvn_amqp_url_destroy(&url);
    zstr_free(&routing_key);
    return code;
}
