/*  main.c — hvn-broker, the command: options in, broker run, exit code out.

    Exit 0 after SIGINT/SIGTERM (or --help), 1 when the broker cannot start
    (a bind fails), 2 on bad usage. Logs go to stderr through czmq's zsys,
    one line per event.
*/
#include "hvn_broker.h"
#include "hvn_broker_metrics.h"
#include "hvn_opt.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

//  Returns NULL when name can name a broker, else what was expected.
static const char *s_check_name(const char *name)
{
    return hvn_broker_name_valid(name) ? NULL : "1 to 244 bytes of UTF-8 without '@'";
}

//  Returns nothing; config holds the command line's settings, or the
//  process has exited (0 after --help, 2 on bad usage).
static void s_parse_args(int argc, char **argv, hvn_broker_config_t *config,
                         const char **metrics)
{
    size_t max_msg_size = config->max_msg_size;
    size_t ring_bytes = config->ring_bytes;
    long subscriber_hwm = 100000;
    size_t subscriber_bytes = config->subscriber_bytes;
    size_t snapshot_bytes = config->snapshot_bytes;
    long snapshot_stall_ms = (long)config->snapshot_stall_ms;
    long max_nodes = (long)config->max_publisher_nodes;
    long max_topic = (long)config->max_topic_size;
    long max_subs = (long)config->max_subscriptions;
    long snapshot_rate = (long)config->max_snapshot_rate;
    long heartbeat_ms = (long)config->heartbeat_ms;
    long backlog = config->listen_backlog;
    const hvn_opt_t options[] = {
        {.name = "frontend", .type = HVN_OPT_ENDPOINT, .dest = &config->frontend, .metavar = "EP",
         .help = "bind the XSUB socket publishers connect to here"},
        {.name = "backend", .type = HVN_OPT_ENDPOINT, .dest = &config->backend, .metavar = "EP",
         .help = "bind the XPUB socket subscribers connect to here"},
        {.name = "service", .type = HVN_OPT_ENDPOINT, .dest = &config->service, .metavar = "EP",
         .help = "bind the ROUTER socket for SNAPSHOT, REPLAY and STATS here"},
        {.name = "name", .type = HVN_OPT_STRING, .dest = &config->name, .metavar = "NAME",
         .help = "broker name in its heartbeat topic hvn.broker@NAME", .check = s_check_name,
         .default_text = "the short host name"},
        {.name = "max-msg-size", .type = HVN_OPT_SIZE, .dest = &max_msg_size, .metavar = "BYTES",
         .help = "largest notification body accepted; larger ones are\nrefused and counted",
         .min = 1, .max = HVN_BROKER_MSG_SIZE_MAX},
        {.name = "max-publisher-nodes", .type = HVN_OPT_INT, .dest = &max_nodes, .metavar = "N",
         .help = "most nodes one publisher may list in its heartbeat;\n"
         "heartbeat bodies are accepted up to 4096 + 40 * N bytes;\n"
         "also the most nodes cached per host: a create past it\n"
         "is refused (limited_nodes)",
         .min = 1, .max = HVN_BROKER_PUBLISHER_NODES_MAX},
        {.name = "max-topic-size", .type = HVN_OPT_INT, .dest = &max_topic, .metavar = "BYTES",
         .help = "longest topic accepted", .min = 1,
         .max = 255},
        {.name = "max-subscriptions", .type = HVN_OPT_INT, .dest = &max_subs, .metavar = "N",
         .help = "distinct topic prefixes one subscriber (CURVE key, else\n"
         "IP address) may hold; one more is not applied\n(limited_subscriptions)",
         .min = 1, .max = HVN_BROKER_SUBSCRIPTIONS_MAX},
        {.name = "max-snapshot-rate", .type = HVN_OPT_INT, .dest = &snapshot_rate, .metavar = "N",
         .help = "snapshot requests a second per subscriber; more are\nanswered ERROR "
         "(limited_snapshots)",
         .min = 1, .max = HVN_BROKER_SNAPSHOT_RATE_MAX},
        {.name = "ring-bytes", .type = HVN_OPT_SIZE, .dest = &ring_bytes, .metavar = "BYTES",
         .help = "memory for the notifications forwarded last, which\n"
         "REPLAY answers from (the oldest go first); 0 keeps none",
         .min = 0, .max = HVN_BROKER_RING_BYTES_MAX},
        {.name = "subscriber-hwm", .type = HVN_OPT_INT, .dest = &subscriber_hwm, .metavar = "N",
         .help = "messages queued for one subscriber before the backend\n"
         "drops its excess (it sees a seq gap and repairs); fewer\n"
         "when --subscriber-bytes says so",
         .min = 1, .max = HVN_BROKER_SUBSCRIBER_HWM_MAX},
        {.name = "subscriber-bytes", .type = HVN_OPT_SIZE, .dest = &subscriber_bytes,
         .metavar = "BYTES",
         .help = "most memory one subscriber that does not read can pin:\n"
         "its queue holds at most BYTES / the largest message\n"
         "forwarded (the larger of the body and heartbeat limits,\n"
         "at least 8 KiB, + 537): 2 653 messages with the defaults",
         .min = HVN_BROKER_SUBSCRIBER_BYTES_MIN, .max = HVN_BROKER_SUBSCRIBER_BYTES_MAX},
        {.name = "snapshot-bytes", .type = HVN_OPT_SIZE, .dest = &snapshot_bytes,
         .metavar = "BYTES",
         .help = "most memory the snapshots being served may hold queued\n"
         "for their clients, all together; one subscriber gets at\n"
         "most a quarter of it and 16 of the 64 slots; a request\n"
         "past it is answered ERROR (limited_snapshots)",
         .min = HVN_BROKER_SNAPSHOT_BYTES_MIN, .max = HVN_BROKER_SNAPSHOT_BYTES_MAX},
        {.name = "snapshot-stall-ms", .type = HVN_OPT_INT, .dest = &snapshot_stall_ms,
         .metavar = "MS",
         .help = "a snapshot client that takes nothing for this long is\n"
         "cut and what was queued for it freed (snapshots_stalled)",
         .min = 1, .max = HVN_BROKER_SNAPSHOT_STALL_MAX},
        {.name = "heartbeat-ms", .type = HVN_OPT_INT, .dest = &heartbeat_ms, .metavar = "MS",
         .help = "interval of the broker's heartbeat",
         .min = 1, .max = HVN_BROKER_HEARTBEAT_MAX},
        {.name = "listen-backlog", .type = HVN_OPT_INT, .dest = &backlog, .metavar = "N",
         .help = "connections each socket's listen queue holds before they\n"
         "are accepted: a fleet reconnects at once after a restart,\n"
         "and a SYN past the queue waits 1 s or more to be retried\n"
         "(the kernel caps it at net.core.somaxconn: 60-hvn-broker.conf\n"
         "in sysctl.d raises that to match)",
         .min = 1, .max = HVN_BROKER_LISTEN_BACKLOG_MAX},
        {.name = "metrics", .type = HVN_OPT_ADDRESS, .dest = metrics, .metavar = "ADDR:PORT",
         .help = "serve the STATS counters as Prometheus text on\n"
         "http://ADDR:PORT/metrics (refreshed every second)",
         .default_text = "off"},
        {.name = "curve-secret", .type = HVN_OPT_PATH, .dest = &config->curve_secret, .metavar = "CERT",
         .help = "turn CURVE on: the broker's secret certificate\n"
         "(hvn-keygen broker); needs the two directories below"},
        {.name = "publishers-dir", .type = HVN_OPT_PATH, .dest = &config->publishers_dir, .metavar = "DIR",
         .help = "publishers' public certificates; each names in its\n"
         "metadata the one host its key may publish as"},
        {.name = "subscribers-dir", .type = HVN_OPT_PATH, .dest = &config->subscribers_dir, .metavar = "DIR",
         .help = "subscribers' public certificates (backend and service\nsockets)"},
        {.name = "state-file", .type = HVN_OPT_PATH, .dest = &config->state_file, .metavar = "PATH",
         .help = "keep which host each node and publisher instance\n"
         "belongs to in this file, so a restart does not forget\nit (written within a second of a change)"},
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = "hvn-broker",
        .summary = "Forward hvnotify compute-node notifications from publishers to subscribers,\n"
                   "validating each one, and keep the last state of every node for late joiners.",
        .epilogue =
            "With CURVE on, a client whose key is in neither directory, or that speaks\n"
            "plain text, is refused at the handshake; a publisher's message for a host\n"
            "other than its key's is dropped and counted (refused.not_authorized).\n"
            "\n"
            "Runs in the foreground and logs to stderr. SIGINT or SIGTERM stops it\n"
            "cleanly. Exit status: 0 after a signal, 1 when it cannot start (an endpoint\n"
            "cannot be bound), 2 on bad usage.",
        .options = options,
    };
    hvn_opt_parse(&program, argc, argv);
    config->max_msg_size = max_msg_size;
    config->ring_bytes = ring_bytes;
    config->subscriber_hwm = (int)subscriber_hwm;
    config->subscriber_bytes = subscriber_bytes;
    config->snapshot_bytes = snapshot_bytes;
    config->snapshot_stall_ms = snapshot_stall_ms;
    config->max_publisher_nodes = (size_t)max_nodes;
    config->max_topic_size = (size_t)max_topic;
    config->max_subscriptions = (size_t)max_subs;
    config->max_snapshot_rate = (uint32_t)snapshot_rate;
    config->heartbeat_ms = heartbeat_ms;
    config->listen_backlog = (int)backlog;
    int curve = !!config->curve_secret + !!config->publishers_dir + !!config->subscribers_dir;
    if (curve != 0 && curve != 3)
        hvn_opt_fail(&program,
                     "CURVE needs --curve-secret, --publishers-dir and --subscribers-dir together");
}

//  Returns nothing; the soft limit on open files is raised to the hard one:
//  every connected publisher and subscriber holds a descriptor, and the
//  usual soft limit (1024) would refuse the thousandth host. Logs the room.
static void s_files_limit_raise(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    zsys_info("open files limit %llu: room for about %llu connected hosts and subscribers",
              (unsigned long long)limit.rlim_cur,
              (unsigned long long)(limit.rlim_cur > 64 ? limit.rlim_cur - 64 : 0));
}

//  Returns the process exit status.
int main(int argc, char **argv)
{
    hvn_broker_config_t config;
    hvn_broker_config_defaults(&config);
    const char *metrics_address = NULL;
    s_parse_args(argc, argv, &config, &metrics_address);

    zsys_set_logident("hvn-broker");
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zsys_init();
    s_files_limit_raise();

    char error[512] = "";
    hvn_broker_t *broker = hvn_broker_new(&config, error, sizeof(error));
    if (!broker) {
        zsys_error("%s", error);
        return 1;
    }
    hvn_broker_metrics_t *metrics = NULL;
    if (metrics_address &&
        !(metrics = hvn_broker_metrics_new(broker, metrics_address, error, sizeof(error)))) {
        zsys_error("--metrics: %s", error);
        hvn_broker_destroy(&broker);
        return 1;
    }
    int rc = hvn_broker_run(broker);
    hvn_broker_metrics_destroy(&metrics);
    hvn_broker_destroy(&broker);
    return rc == 0 ? 0 : 1;
}
