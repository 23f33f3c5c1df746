/*  main.c — hvn-broker, the command: options in, broker run, exit code out.

    Exit 0 after SIGINT/SIGTERM (or --help), 1 when the broker cannot start
    (a bind fails), 2 on bad usage. Logs go to stderr through czmq's zsys,
    one line per event.
*/
#include "hvn_broker.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PROG "hvn-broker"

//  Returns nothing; prints the usage text on `out`.
static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: " S_PROG " [OPTION]...\n"
            "Forward hvnotify compute-node notifications from publishers to subscribers,\n"
            "validating each one, and keep the last state of every node for late joiners.\n"
            "\n"
            "  --frontend EP        bind the XSUB socket publishers connect to here\n"
            "                       (default " HVN_BROKER_FRONTEND ")\n"
            "  --backend EP         bind the XPUB socket subscribers connect to here\n"
            "                       (default " HVN_BROKER_BACKEND ")\n"
            "  --service EP         bind the ROUTER socket for SNAPSHOT and STATS here\n"
            "                       (default " HVN_BROKER_SERVICE ")\n"
            "  --name NAME          broker name in its heartbeat topic hvn.broker@NAME\n"
            "                       (default: the short host name)\n"
            "  --max-msg-size BYTES largest notification body accepted, 1 to %d\n"
            "                       (default %d); larger ones are refused and counted\n"
            "  --max-publisher-nodes N\n"
            "                       most nodes one publisher may list in its heartbeat,\n"
            "                       1 to %d (default %d); heartbeat bodies are\n"
            "                       accepted up to 4096 + 40 * N bytes (default %zu);\n"
            "                       also the most nodes cached per host: a create past\n"
            "                       it is refused (limited_nodes)\n"
            "  --max-topic-size BYTES longest topic accepted, 1 to 255 (default 255)\n"
            "  --max-subscriptions N distinct topic prefixes one subscriber (CURVE key,\n"
            "                       else IP address) may hold, 1 to %d (default %d);\n"
            "                       one more is not applied (limited_subscriptions)\n"
            "  --max-snapshot-rate N snapshot requests a second per subscriber, 1 to %d\n"
            "                       (default %d); more are answered ERROR\n"
            "                       (limited_snapshots)\n"
            "  --heartbeat-ms MS    interval of the broker's heartbeat, 1 to %d\n"
            "                       (default %d)\n"
            "  --curve-secret CERT  turn CURVE on: the broker's secret certificate\n"
            "                       (hvn-keygen broker); needs the two directories below\n"
            "  --publishers-dir DIR publishers' public certificates; each names in its\n"
            "                       metadata the one host its key may publish as\n"
            "  --subscribers-dir DIR subscribers' public certificates (backend and\n"
            "                       service sockets)\n"
            "  --help               show this help and exit\n"
            "\n"
            "With CURVE on, a client whose key is in neither directory, or that speaks\n"
            "plain text, is refused at the handshake; a publisher's message for a host\n"
            "other than its key's is dropped and counted (refused.not_authorized).\n"
            "\n"
            "Runs in the foreground and logs to stderr. SIGINT or SIGTERM stops it\n"
            "cleanly. Exit status: 0 after a signal, 1 when it cannot start (an endpoint\n"
            "cannot be bound), 2 on bad usage.\n",
            HVN_BROKER_MSG_SIZE_MAX, HVN_MAX_MSG_SIZE, HVN_BROKER_PUBLISHER_NODES_MAX,
            HVN_BROKER_PUBLISHER_NODES,
            hvn_broker_heartbeat_size_max(HVN_BROKER_PUBLISHER_NODES, HVN_MAX_MSG_SIZE),
            HVN_BROKER_SUBSCRIPTIONS_MAX, HVN_BROKER_SUBSCRIPTIONS, HVN_BROKER_SNAPSHOT_RATE_MAX,
            HVN_BROKER_SNAPSHOT_RATE, HVN_BROKER_HEARTBEAT_MAX, HVN_BROKER_HEARTBEAT_MS);
}

//  Returns nothing; prints "hvn-broker: <message>" on stderr and exits 2.
static void s_bad_usage(const char *option, const char *what, const char *value)
{
    fprintf(stderr, S_PROG ": %s: %s, got '%s' (try --help)\n", option, what, value);
    exit(2);
}

//  Returns the value of text as a whole number from 1 to max; exits 2
//  naming the option when it is not one.
static int64_t s_parse_count(const char *option, const char *text, int64_t max)
{
    char what[96];
    snprintf(what, sizeof(what), "expected a whole number from 1 to %" PRId64, max);
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > max)
        s_bad_usage(option, what, text);
    return (int64_t)value;
}

//  Returns text when it is a non-empty endpoint; exits 2 naming the option
//  otherwise.
static const char *s_parse_endpoint(const char *option, const char *text)
{
    if (!*text)
        s_bad_usage(option, "expected an endpoint such as tcp://127.0.0.1:5561", text);
    return text;
}

//  Returns text when it is a non-empty path; exits 2 naming the option
//  otherwise.
static const char *s_parse_path(const char *option, const char *text)
{
    if (!*text)
        s_bad_usage(option, "expected a path", text);
    return text;
}

//  Returns nothing; config holds the command line's settings, or the
//  process has exited (0 after --help, 2 on bad usage).
static void s_parse_args(int argc, char **argv, hvn_broker_config_t *config)
{
    enum {
        O_FRONTEND = 1,
        O_BACKEND,
        O_SERVICE,
        O_NAME,
        O_MAX_MSG,
        O_MAX_NODES,
        O_MAX_TOPIC,
        O_MAX_SUBS,
        O_SNAPSHOT_RATE,
        O_HEARTBEAT,
        O_CURVE_SECRET,
        O_PUBLISHERS_DIR,
        O_SUBSCRIBERS_DIR,
        O_HELP
    };
    static const struct option options[] = {
        {"frontend", required_argument, NULL, O_FRONTEND},
        {"backend", required_argument, NULL, O_BACKEND},
        {"service", required_argument, NULL, O_SERVICE},
        {"name", required_argument, NULL, O_NAME},
        {"max-msg-size", required_argument, NULL, O_MAX_MSG},
        {"max-publisher-nodes", required_argument, NULL, O_MAX_NODES},
        {"max-topic-size", required_argument, NULL, O_MAX_TOPIC},
        {"max-subscriptions", required_argument, NULL, O_MAX_SUBS},
        {"max-snapshot-rate", required_argument, NULL, O_SNAPSHOT_RATE},
        {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
        {"curve-secret", required_argument, NULL, O_CURVE_SECRET},
        {"publishers-dir", required_argument, NULL, O_PUBLISHERS_DIR},
        {"subscribers-dir", required_argument, NULL, O_SUBSCRIBERS_DIR},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_FRONTEND:
            config->frontend = s_parse_endpoint("--frontend", optarg);
            break;
        case O_BACKEND:
            config->backend = s_parse_endpoint("--backend", optarg);
            break;
        case O_SERVICE:
            config->service = s_parse_endpoint("--service", optarg);
            break;
        case O_NAME:
            if (!hvn_broker_name_valid(optarg))
                s_bad_usage("--name", "expected 1 to 244 bytes of UTF-8 without '@'", optarg);
            config->name = optarg;
            break;
        case O_MAX_MSG:
            config->max_msg_size =
                (size_t)s_parse_count("--max-msg-size", optarg, HVN_BROKER_MSG_SIZE_MAX);
            break;
        case O_MAX_NODES:
            config->max_publisher_nodes = (size_t)s_parse_count("--max-publisher-nodes", optarg,
                                                                HVN_BROKER_PUBLISHER_NODES_MAX);
            break;
        case O_MAX_TOPIC:
            config->max_topic_size = (size_t)s_parse_count("--max-topic-size", optarg, 255);
            break;
        case O_MAX_SUBS:
            config->max_subscriptions =
                (size_t)s_parse_count("--max-subscriptions", optarg, HVN_BROKER_SUBSCRIPTIONS_MAX);
            break;
        case O_SNAPSHOT_RATE:
            config->max_snapshot_rate = (uint32_t)s_parse_count("--max-snapshot-rate", optarg,
                                                                HVN_BROKER_SNAPSHOT_RATE_MAX);
            break;
        case O_HEARTBEAT:
            config->heartbeat_ms =
                s_parse_count("--heartbeat-ms", optarg, HVN_BROKER_HEARTBEAT_MAX);
            break;
        case O_CURVE_SECRET:
            config->curve_secret = s_parse_path("--curve-secret", optarg);
            break;
        case O_PUBLISHERS_DIR:
            config->publishers_dir = s_parse_path("--publishers-dir", optarg);
            break;
        case O_SUBSCRIBERS_DIR:
            config->subscribers_dir = s_parse_path("--subscribers-dir", optarg);
            break;
        case 'h':
        case O_HELP:
            s_usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, S_PROG ": %s: missing value (try --help)\n", argv[optind - 1]);
            exit(2);
        default:
            fprintf(stderr, S_PROG ": unknown option '%s' (try --help)\n", argv[optind - 1]);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_PROG ": unexpected argument '%s' (try --help)\n", argv[optind]);
        exit(2);
    }
    int curve = !!config->curve_secret + !!config->publishers_dir + !!config->subscribers_dir;
    if (curve != 0 && curve != 3) {
        fprintf(stderr, S_PROG ": CURVE needs --curve-secret, --publishers-dir and "
                               "--subscribers-dir together (try --help)\n");
        exit(2);
    }
}

//  Returns the process exit status.
int main(int argc, char **argv)
{
    hvn_broker_config_t config;
    hvn_broker_config_defaults(&config);
    s_parse_args(argc, argv, &config);

    zsys_set_logident(S_PROG);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zsys_init();

    char error[512] = "";
    hvn_broker_t *broker = hvn_broker_new(&config, error, sizeof(error));
    if (!broker) {
        zsys_error("%s", error);
        return 1;
    }
    int rc = hvn_broker_run(broker);
    hvn_broker_destroy(&broker);
    return rc == 0 ? 0 : 1;
}
