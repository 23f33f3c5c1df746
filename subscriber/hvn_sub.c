/*  hvn_sub.c — hvn-sub: follow compute-node notifications from a broker.

    One JSON object per line on stdout, the envelope every Nova versioned-
    notification consumer parses, flushed per line so `jq` and pipes see each
    message at once. Stops after --count messages, after --timeout seconds of
    silence, or on SIGINT/SIGTERM.
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvn_subscriber.h"

#define S_NAME "hvn-sub"
#define S_DEFAULT_CONNECT "tcp://127.0.0.1:5562"
#define S_DEFAULT_SERVICE "tcp://127.0.0.1:5563"
#define S_TIMEOUT_MAX_S 2000000.0 //  Longest --timeout, so milliseconds fit an int

//  Exit codes
#define S_EXIT_OK 0
#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2

typedef enum { S_FORMAT_JSON, S_FORMAT_TABLE } s_format_t;

//  The command line, parsed
typedef struct {
    char *endpoints;         //  --connect values joined with ',' (heap)
    const char *service;     //  --service
    const char **topics;     //  --topic values (heap array, strings in argv)
    size_t topic_count;      //  Entries in topics
    const char *host;        //  --host, or NULL
    bool snapshot;           //  --snapshot
    bool heartbeats;         //  --heartbeats
    long count;              //  --count; 0 = unlimited
    double timeout_s;        //  --timeout; 0 = none
    const char *timeout_arg; //  --timeout as given, for messages
    s_format_t format;       //  --format
} s_args_t;

//  Returns nothing; prints the usage text on out.
static void s_usage(FILE *out)
{
    fprintf(out, "Usage: " S_NAME " [OPTION]...\n"
                 "Follow compute-node notifications from an hvnotify broker; print one JSON\n"
                 "object per line (the Nova versioned-notification envelope) on stdout.\n"
                 "\n"
                 "  --connect EP     broker backend endpoint; repeat for several\n"
                 "                   (default " S_DEFAULT_CONNECT ")\n"
                 "  --service EP     broker service endpoint, for --snapshot\n"
                 "                   (default " S_DEFAULT_SERVICE ")\n"
                 "  --topic PREFIX   topic prefix to subscribe to, e.g. compute_node.update;\n"
                 "                   repeat for several (default: everything)\n"
                 "  --host HOST      only messages of this host (exact match)\n"
                 "  --snapshot       first print the broker's cached fleet, then follow live\n"
                 "  --count N        exit 0 after N messages\n"
                 "  --timeout S      give up after S seconds without a message: exit 0, or 1\n"
                 "                   when --count was given and not reached\n"
                 "  --format FORMAT  json (default) or table (a live view of the fleet)\n"
                 "  --heartbeats     print heartbeats too (default: notifications only)\n"
                 "  --help           print this help and exit\n"
                 "\n"
                 "Exit status: 0 on success (also on SIGINT/SIGTERM), 1 on failure,\n"
                 "2 on bad usage.\n");
}

//  Returns S_EXIT_USAGE after printing a one-line error naming the option.
static int s_bad_value(const char *option, const char *value, const char *expected)
{
    fprintf(stderr, S_NAME ": invalid value '%s' for --%s (%s)\n", value, option, expected);
    return S_EXIT_USAGE;
}

//  Returns 0 with *out set to the positive integer in text, -1 otherwise.
static int s_parse_count(const char *text, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value <= 0)
        return -1;
    *out = value;
    return 0;
}

//  Returns 0 with *out set to the positive number of seconds in text, -1
//  otherwise.
static int s_parse_seconds(const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(value) || value <= 0 || value > S_TIMEOUT_MAX_S)
        return -1;
    *out = value;
    return 0;
}

//  Returns 0 after appending endpoint to the comma-separated list, -1 when
//  it is empty or out of memory.
static int s_add_endpoint(s_args_t *args, const char *endpoint)
{
    if (!*endpoint)
        return -1;
    char *joined =
        args->endpoints ? zsys_sprintf("%s,%s", args->endpoints, endpoint) : strdup(endpoint);
    if (!joined)
        return -1;
    free(args->endpoints);
    args->endpoints = joined;
    return 0;
}

//  Returns -1 when the arguments are good (args filled), else the exit code:
//  S_EXIT_OK after --help, S_EXIT_USAGE after an error line on stderr.
static int s_parse_args(int argc, char *argv[], s_args_t *args)
{
    static const struct option options[] = {{"connect", required_argument, NULL, 'c'},
                                            {"service", required_argument, NULL, 's'},
                                            {"topic", required_argument, NULL, 't'},
                                            {"host", required_argument, NULL, 'H'},
                                            {"snapshot", no_argument, NULL, 'S'},
                                            {"count", required_argument, NULL, 'n'},
                                            {"timeout", required_argument, NULL, 'T'},
                                            {"format", required_argument, NULL, 'f'},
                                            {"heartbeats", no_argument, NULL, 'b'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    args->service = S_DEFAULT_SERVICE;
    args->topics = calloc((size_t)argc, sizeof(char *));
    if (!args->topics)
        return S_EXIT_FAIL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (s_add_endpoint(args, optarg) != 0)
                return s_bad_value("connect", optarg, "an endpoint such as tcp://host:5562");
            break;
        case 's':
            if (!*optarg)
                return s_bad_value("service", optarg, "an endpoint such as tcp://host:5563");
            args->service = optarg;
            break;
        case 't':
            if (strlen(optarg) > HVN_TOPIC_MAX)
                return s_bad_value("topic", optarg, "at most 255 bytes");
            args->topics[args->topic_count++] = optarg;
            break;
        case 'H':
            if (!*optarg || strchr(optarg, '@') || strlen(optarg) > HVN_STR_MAX)
                return s_bad_value("host", optarg, "a host name without '@'");
            args->host = optarg;
            break;
        case 'S':
            args->snapshot = true;
            break;
        case 'n':
            if (s_parse_count(optarg, &args->count) != 0)
                return s_bad_value("count", optarg, "a positive integer");
            break;
        case 'T':
            if (s_parse_seconds(optarg, &args->timeout_s) != 0)
                return s_bad_value("timeout", optarg, "a positive number of seconds");
            args->timeout_arg = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                args->format = S_FORMAT_JSON;
            else
                return s_bad_value("format", optarg, "json");
            break;
        case 'b':
            args->heartbeats = true;
            break;
        case 'h':
            s_usage(stdout);
            return S_EXIT_OK;
        case ':':
            fprintf(stderr, S_NAME ": option '%s' needs a value\n", argv[optind - 1]);
            return S_EXIT_USAGE;
        default:
            fprintf(stderr, S_NAME ": unknown option '%s' (try --help)\n", argv[optind - 1]);
            return S_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_NAME ": unexpected argument '%s' (try --help)\n", argv[optind]);
        return S_EXIT_USAGE;
    }
    if (!args->endpoints && s_add_endpoint(args, S_DEFAULT_CONNECT) != 0)
        return S_EXIT_FAIL;
    return -1;
}

// --------------------------------------------------------------------------
//  Output

//  Returns true when msg is one the user asked to see.
static bool s_wanted(const s_args_t *args, const hvn_msg_t *msg)
{
    if (msg->header.kind == HVN_KIND_HEARTBEAT)
        return args->heartbeats;
    return true;
}

//  Returns 0 after printing msg as one JSON line, -1 when it cannot be
//  rendered or written.
static int s_print_json(const hvn_msg_t *msg)
{
    char *text = hvn_json_render(msg);
    if (!text) {
        zsys_error("cannot render a message as JSON");
        return -1;
    }
    int rc = (fputs(text, stdout) == EOF || putchar('\n') == EOF || fflush(stdout) == EOF) ? -1 : 0;
    free(text);
    return rc;
}

// --------------------------------------------------------------------------
//  Main loop

//  Returns the exit code after following messages until --count, --timeout
//  or a signal.
static int s_follow(const s_args_t *args, hvn_subscriber_t *sub)
{
    long printed = 0;
    int64_t timeout_ms = (int64_t)llround(args->timeout_s * 1000);
    int64_t last_ms = zclock_mono();
    hvn_msg_t msg;
    while (!args->count || printed < args->count) {
        int wait_ms = -1;
        if (timeout_ms > 0) {
            int64_t left = last_ms + timeout_ms - zclock_mono();
            if (left <= 0)
                break;
            wait_ms = (int)left;
        }
        int rc = hvn_subscriber_recv(sub, &msg, wait_ms);
        if (rc < 0)
            return S_EXIT_OK; //  Interrupted: a clean stop
        if (rc == 0 || !s_wanted(args, &msg))
            continue;
        if (s_print_json(&msg) != 0)
            return S_EXIT_FAIL;
        printed++;
        last_ms = zclock_mono();
    }
    if (args->count && printed < args->count) {
        fprintf(stderr, S_NAME ": timed out after %s s: got %ld of %ld\n", args->timeout_arg,
                printed, args->count);
        return S_EXIT_FAIL;
    }
    return S_EXIT_OK;
}

int main(int argc, char *argv[])
{
    s_args_t args = {0};
    int code = s_parse_args(argc, argv, &args);
    if (code >= 0) {
        free(args.endpoints);
        free(args.topics);
        return code;
    }
    zsys_set_logident(S_NAME);
    zsys_set_logstream(stderr);

    hvn_subscriber_opts_t opts = {.endpoint = args.endpoints,
                                  .service = args.service,
                                  .topics = args.topics,
                                  .topic_count = args.topic_count,
                                  .host = args.host};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    if (!sub)
        code = S_EXIT_FAIL;
    else
        code = s_follow(&args, sub);
    hvn_subscriber_destroy(&sub);
    free(args.endpoints);
    free(args.topics);
    return code;
}
