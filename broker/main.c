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

//  Returns the option table's row of a whole number from 1 to max, into
//  *dest (a long; its value now is the default).
static hvn_opt_t s_count(const char *name, long *dest, const char *metavar, long max,
                         const char *help)
{
    return (hvn_opt_t){.name = name, .type = HVN_OPT_INT, .dest = dest, .metavar = metavar,
                       .help = help, .min = 1, .max = max};
}

//  Returns the option table's row of a byte count from min to max (K, M
//  or G suffix allowed), into *dest (its value now is the default).
static hvn_opt_t s_bytes(const char *name, size_t *dest, long min, long max, const char *help)
{
    return (hvn_opt_t){.name = name, .type = HVN_OPT_SIZE, .dest = dest, .metavar = "BYTES",
                       .help = help, .min = min, .max = max};
}

//  Returns the option table's row of a path, into *dest (NULL: not given).
static hvn_opt_t s_path(const char *name, const char **dest, const char *metavar,
                        const char *help)
{
    return (hvn_opt_t){.name = name, .type = HVN_OPT_PATH, .dest = dest, .metavar = metavar,
                       .help = help};
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
        s_bytes("max-msg-size", &max_msg_size, 1, HVN_BROKER_MSG_SIZE_MAX,
                "largest notification body accepted; larger ones are\nrefused and counted"),
        s_count("max-publisher-nodes", &max_nodes, "N", HVN_BROKER_PUBLISHER_NODES_MAX,
                "most nodes one publisher may list in its heartbeat;\n"
                "heartbeat bodies are accepted up to 4096 + 40 * N bytes;\n"
                "also the most nodes cached per host: a create past it\n"
                "is refused (limited_nodes)"),
        s_count("max-topic-size", &max_topic, "BYTES", 255, "longest topic accepted"),
        s_count("max-subscriptions", &max_subs, "N", HVN_BROKER_SUBSCRIPTIONS_MAX,
                "distinct topic prefixes one subscriber (CURVE key, else\n"
                "IP address) may hold; one more is not applied\n(limited_subscriptions)"),
        s_count("max-snapshot-rate", &snapshot_rate, "N", HVN_BROKER_SNAPSHOT_RATE_MAX,
                "snapshot requests a second per subscriber; more are\nanswered ERROR "
                "(limited_snapshots)"),
        s_bytes("ring-bytes", &ring_bytes, 0, HVN_BROKER_RING_BYTES_MAX,
                "memory for the notifications forwarded last, which\n"
                "REPLAY answers from (the oldest go first); 0 keeps none"),
        s_count("subscriber-hwm", &subscriber_hwm, "N", HVN_BROKER_SUBSCRIBER_HWM_MAX,
                "messages queued for one subscriber before the backend\n"
                "drops its excess (it sees a seq gap and repairs); fewer\n"
                "when --subscriber-bytes says so"),
        s_bytes("subscriber-bytes", &subscriber_bytes, HVN_BROKER_SUBSCRIBER_BYTES_MIN,
                HVN_BROKER_SUBSCRIBER_BYTES_MAX,
                "most memory one subscriber that does not read can pin:\n"
                "its queue holds at most BYTES / the largest message\n"
                "forwarded (the larger of the body and heartbeat limits,\n"
                "at least 8 KiB, + 537): 2 653 messages with the defaults"),
        s_bytes("snapshot-bytes", &snapshot_bytes, HVN_BROKER_SNAPSHOT_BYTES_MIN,
                HVN_BROKER_SNAPSHOT_BYTES_MAX,
                "most memory the snapshots being served may hold queued\n"
                "for their clients, all together; one subscriber gets at\n"
                "most a quarter of it and 16 of the 64 slots; a request\n"
                "past it is answered ERROR (limited_snapshots)"),
        s_count("snapshot-stall-ms", &snapshot_stall_ms, "MS", HVN_BROKER_SNAPSHOT_STALL_MAX,
                "a snapshot client that takes nothing for this long is\n"
                "cut and what was queued for it freed (snapshots_stalled)"),
        s_count("heartbeat-ms", &heartbeat_ms, "MS", HVN_BROKER_HEARTBEAT_MAX,
                "interval of the broker's heartbeat"),
        s_count("listen-backlog", &backlog, "N", HVN_BROKER_LISTEN_BACKLOG_MAX,
                "connections each socket's listen queue holds before they\n"
                "are accepted: a fleet reconnects at once after a restart,\n"
                "and a SYN past the queue waits 1 s or more to be retried\n"
                "(the kernel caps it at net.core.somaxconn: 60-hvn-broker.conf\n"
                "in sysctl.d raises that to match)"),
        {.name = "metrics", .type = HVN_OPT_ADDRESS, .dest = metrics, .metavar = "ADDR:PORT",
         .help = "serve the STATS counters as Prometheus text on\n"
         "http://ADDR:PORT/metrics (refreshed every second)",
         .default_text = "off"},
        s_path("curve-secret", &config->curve_secret, "CERT",
               "turn CURVE on: the broker's secret certificate\n"
               "(hvn-keygen broker); needs the two directories below"),
        s_path("publishers-dir", &config->publishers_dir, "DIR",
               "publishers' public certificates; each names in its\n"
               "metadata the one host its key may publish as"),
        s_path("subscribers-dir", &config->subscribers_dir, "DIR",
               "subscribers' public certificates (backend and service\nsockets)"),
        s_path("state-file", &config->state_file, "PATH",
               "keep which host each node and publisher instance\n"
               "belongs to in this file, so a restart does not forget\n"
               "it (written within a second of a change)"),
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
