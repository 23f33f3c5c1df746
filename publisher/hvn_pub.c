/*  hvn_pub.c — hvn-pub: publish compute nodes read as JSON lines on stdin.

    One JSON object per line, payload field names as keys, or
    {"uuid": "...", "deleted": true}. Each line is handed to the publisher
    library, which diffs it against the last state and sends create, update
    or delete as the protocol says. A bad line is reported on stderr and
    skipped; the rest still goes out. At end of input everything is flushed.

    The way to publish from scripts and non-C hypervisor stacks, and the way
    the integration tests drive the publisher as a black box.
*/
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_cli.h"
#include "hvn_pub_opt.h"

#define S_PROG "hvn-pub"
#define S_DEFAULT_FLUSH_S 30.0
#define S_INTERRUPT_FLUSH_MS 5000 //  Longest flush after SIGINT/SIGTERM

#define S_EXIT_OK 0
#define S_EXIT_FAIL 1

//  What the command line asked for
typedef struct {
    char *endpoint;           //  --connect values, comma-joined (heap)
    const char *host;         //  --host
    const char *service;      //  --service, or NULL
    const char *state_dir;    //  --state-dir, or NULL
    int heartbeat_ms;         //  --heartbeat-ms, or 0 = library default
    int flush_ms;             //  --flush-timeout, in ms
    const char *curve_secret; //  --curve-secret, or NULL
    const char *server_key;   //  --server-key, or NULL
    bool forget_missing;      //  --forget-missing
    bool example;             //  --example
} s_args_t;

// --------------------------------------------------------------------------
//  Command line

//  Returns nothing; args hold the command line, or the process has exited
//  (0 after --help, 2 on bad usage).
static void s_parse_args(int argc, char **argv, s_args_t *args)
{
    const char *connect[HVN_PUB_CONNECT_MAX + 1] = {NULL};
    long heartbeat_ms = 10000;
    double flush_s = S_DEFAULT_FLUSH_S;
    memset(args, 0, sizeof(*args));
    const hvn_opt_t options[] = {
        hvn_pub_opt_connect(connect,
                            "broker frontend to connect to (e.g. tcp://127.0.0.1:5561);\n"
                            "repeat for several brokers; required"),
        hvn_pub_opt_host(&args->host, "this host's name, as in topics and publisher_id; required",
                         NULL),
        {.name = "service", .type = HVN_OPT_STRING, .dest = &args->service, .metavar = "NAME",
         .help = "publisher_id prefix", .check = hvn_names_service_check,
         .default_text = HVN_DEFAULT_SERVICE},
        {.name = "state-dir", .type = HVN_OPT_PATH, .dest = &args->state_dir, .metavar = "DIR",
         .help = "keep the last state sent in DIR, so that a later run\n"
                 "sends no second create for the nodes it already sent"},
        {.name = "forget-missing", .type = HVN_OPT_FLAG, .dest = &args->forget_missing,
         .help = "with --state-dir: the input up to its first blank line\n"
                 "(or its end) is the whole fleet of this host; a node\n"
                 "the state directory holds that is not in it is gone,\n"
                 "and compute_node.delete is sent for it"},
        {.name = "example", .type = HVN_OPT_FLAG, .dest = &args->example,
         .help = "print one input line for a node of --host (every payload\n"
                 "field, from the schema table; a fresh uuid) and exit"},
        {.name = "heartbeat-ms", .type = HVN_OPT_INT, .dest = &heartbeat_ms, .metavar = "MS",
         .help = "heartbeat interval while connected", .min = 1, .max = INT_MAX},
        {.name = "flush-timeout", .type = HVN_OPT_DOUBLE, .dest = &flush_s, .metavar = "S",
         .help = "at end of input, wait at most S seconds for a broker\nto take everything",
         .dmin = 0, .dmax = INT_MAX / 1000},
        hvn_pub_opt_curve_secret(&args->curve_secret),
        hvn_pub_opt_server_key(&args->server_key),
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = S_PROG,
        .summary =
            "Publish compute-node notifications read as JSON lines on standard input.\n"
            "\n"
            "Each line is one JSON object: a compute node with the payload's field names\n"
            "as keys (uuid and every non-nullable field required, null allowed where the\n"
            "schema allows it), or {\"uuid\": \"...\", \"deleted\": true} for a node that is\n"
            "gone. Blank lines are ignored (but see --forget-missing). The first report\n"
            "of a uuid sends compute_node.create, a later one compute_node.update when\n"
            "an update-triggering field changed, nothing otherwise; a deletion sends\n"
            "compute_node.delete. A bad line is reported on stderr and skipped.",
        .epilogue = "SIGINT or SIGTERM stops reading; what was read is flushed for at most\n"
                    "min(S, 5) seconds.\n"
                    "\n"
                    "Exit status: 0 when every line was accepted and everything was sent,\n"
                    "1 when a line was rejected, a message could not be sent or the flush\n"
                    "timed out, 2 on bad usage.",
        .options = options,
    };
    hvn_opt_parse(&program, argc, argv);
    if (args->example)
        return; //  Needs nothing else
    if (!connect[0])
        hvn_opt_fail(&program, "--connect is required");
    if (!args->host)
        hvn_opt_fail(&program, "--host is required");
    if (args->service && strlen(args->service) + 1 + strlen(args->host) > HVN_STR_MAX)
        hvn_opt_fail(&program, "--service and --host: service:host is over %d bytes",
                     HVN_STR_MAX);
    if (!args->curve_secret != !args->server_key)
        hvn_opt_fail(&program, "--curve-secret and --server-key go together");
    if (args->forget_missing && !args->state_dir)
        hvn_opt_fail(&program, "--forget-missing needs --state-dir");
    for (size_t i = 0; connect[i]; i++)
        if (hvn_cli_list_append(&args->endpoint, connect[i]) != 0)
            hvn_opt_fail(&program, "out of memory");
    args->heartbeat_ms = (int)heartbeat_ms;
    args->flush_ms = (int)lround(flush_s * 1000);
}

// --------------------------------------------------------------------------
//  --example

//  Returns the exit status after printing one input line: a node of host
//  (when given) with a fresh uuid, every other field by its type in the
//  schema table (0, "example", a documentation address).
static int s_example(const char *host)
{
    hvn_node_t node;
    hvn_node_init(&node);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (field->type == HVN_TYPE_INT)
            hvn_node_set_int(&node, f, 0);
        else if (field->type == HVN_TYPE_IP)
            hvn_node_set_str(&node, f, "192.0.2.1");
        else if (field->type == HVN_TYPE_STR)
            hvn_node_set_str(&node, f, "example");
    }
    if (host)
        hvn_node_set_str(&node, HVN_F_HOST, host);
    char uuid[HVN_UUID_STR_LEN + 1];
    hvn_uuid4_str(uuid);
    hvn_node_set_str(&node, HVN_F_UUID, uuid);
    char *line = hvn_json_node(&node);
    if (!line) {
        fprintf(stderr, S_PROG ": out of memory\n");
        return S_EXIT_FAIL;
    }
    printf("%s\n", line);
    free(line);
    return S_EXIT_OK;
}

// --------------------------------------------------------------------------
//  Input

//  Handles one input line. Returns 0 when it was accepted, -1 when it was
//  rejected (one stderr line said why).
static int s_handle_line(hvn_publisher_t *pub, const char *line, size_t len, size_t lineno,
                         int flush_ms)
{
    hvn_node_t node;
    bool deleted = false;
    char err[256];
    if (hvn_json_parse_node(line, len, &node, &deleted, err, sizeof(err)) != 0) {
        fprintf(stderr, S_PROG ": line %zu: %s\n", lineno, err);
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = deleted ? hvn_publisher_remove(pub, node.uuid) : hvn_publisher_report(pub, &node);
        if (rc == 0)
            return 0;
        if (deleted) {
            hvn_publisher_stats_t stats;
            hvn_publisher_stats(pub, &stats);
            if (stats.pending < HVN_PUBLISHER_QUEUE_MAX) {
                fprintf(stderr, S_PROG ": line %zu: field 'uuid': no node %s was reported\n",
                        lineno, node.uuid);
                return -1;
            }
        }
        hvn_field_id_t bad;
        if (!deleted && hvn_node_validate(&node, &bad) != 0) {
            fprintf(stderr, S_PROG ": line %zu: field '%s': invalid value\n", lineno,
                    hvn_schema_fields[bad].name);
            return -1;
        }
        //  The queue is full: let the broker take some, then try again
        hvn_publisher_flush(pub, flush_ms);
    }
    fprintf(stderr, S_PROG ": line %zu: queue full, node %s not published\n", lineno, node.uuid);
    return -1;
}

//  Ends the first round (--forget-missing): deletes are queued for the
//  nodes of the previous run not reported since the start. Returns 0, or
//  -1 when the queue was full (reported on stderr).
static int s_forget_missing(hvn_publisher_t *pub, int flush_ms)
{
    int gone = hvn_publisher_forget_missing(pub);
    for (int attempt = 0; gone < 0 && attempt < 2; attempt++) {
        hvn_publisher_flush(pub, flush_ms);
        gone = hvn_publisher_forget_missing(pub);
    }
    if (gone < 0) {
        fprintf(stderr, S_PROG ": queue full, nodes gone since the last run not all deleted\n");
        return -1;
    }
    if (gone > 0)
        zsys_info("%d node(s) of the last run not reported: deleted", gone);
    return 0;
}

//  Reads stdin to its end (or an interrupt). With forget, the first blank
//  line (or the end) ends the first round. Returns the number of lines
//  rejected (and 1 for a round end that failed).
static size_t s_read_input(hvn_publisher_t *pub, int flush_ms, bool forget)
{
    char *line = NULL;
    size_t capacity = 0;
    size_t lineno = 0;
    size_t rejected = 0;
    while (!zsys_interrupted) {
        errno = 0;
        ssize_t len = getline(&line, &capacity, stdin);
        if (len < 0) {
            if (errno == EINTR && !zsys_interrupted) {
                clearerr(stdin);
                continue;
            }
            if (errno && errno != EINTR)
                fprintf(stderr, S_PROG ": reading standard input: %s\n", strerror(errno));
            break;
        }
        lineno++;
        len = (ssize_t)hvn_cli_line_trim(line, (size_t)len);
        if (hvn_cli_line_blank(line, (size_t)len)) {
            if (forget && s_forget_missing(pub, flush_ms) != 0)
                rejected++;
            forget = false;
            continue;
        }
        if (s_handle_line(pub, line, len, lineno, flush_ms) != 0)
            rejected++;
    }
    free(line);
    if (forget && !zsys_interrupted && s_forget_missing(pub, flush_ms) != 0)
        rejected++;
    return rejected;
}

// --------------------------------------------------------------------------

//  Returns the exit status: 0 all sent, 1 a line rejected or not all sent,
//  2 bad usage.
int main(int argc, char **argv)
{
    s_args_t args;
    s_parse_args(argc, argv, &args);
    if (args.example)
        return s_example(args.host);
    //  zsys_init installs the SIGINT/SIGTERM handler that sets
    //  zsys_interrupted; log lines go to stderr, stdout is for --help.
    zsys_init();
    zsys_set_logident(S_PROG);
    zsys_set_logstream(stderr);

    hvn_publisher_opts_t opts = {.endpoint = args.endpoint,
                                 .host = args.host,
                                 .service = args.service,
                                 .state_dir = args.state_dir,
                                 .heartbeat_ms = args.heartbeat_ms,
                                 .curve_secret = args.curve_secret,
                                 .curve_server = args.server_key};
    hvn_publisher_t *pub = hvn_publisher_new(&opts);
    if (!pub) {
        fprintf(stderr, S_PROG ": cannot start the publisher (see the log line above)\n");
        zstr_free(&args.endpoint);
        return S_EXIT_FAIL;
    }

    size_t rejected = s_read_input(pub, args.flush_ms, args.forget_missing);
    int flush_ms = args.flush_ms;
    if (zsys_interrupted && flush_ms > S_INTERRUPT_FLUSH_MS)
        flush_ms = S_INTERRUPT_FLUSH_MS;
    int status = rejected ? S_EXIT_FAIL : S_EXIT_OK;
    if (hvn_publisher_flush(pub, flush_ms) != 0) {
        hvn_publisher_stats_t stats;
        hvn_publisher_stats(pub, &stats);
        if (stats.broker == 0 && stats.resyncs == 0)
            fprintf(stderr,
                    S_PROG ": broker not reachable at %s%s: %" PRIu64 " notifications not sent\n",
                    args.endpoint,
                    stats.denials ? " (it refused this host's key: is its certificate in the "
                                    "broker's --publishers-dir?)"
                                  : "",
                    stats.pending);
        else
            fprintf(stderr,
                    S_PROG ": broker at %s did not take everything in %.1f s: %" PRIu64
                           " notifications not sent\n",
                    args.endpoint, flush_ms / 1000.0, stats.pending);
        hvn_publisher_set_linger(pub, 0);
        status = S_EXIT_FAIL;
    }
    //  A notification that could not be encoded was logged and lost: the
    //  run did not do its job
    hvn_publisher_stats_t stats;
    hvn_publisher_stats(pub, &stats);
    if (stats.dropped) {
        fprintf(stderr, S_PROG ": %" PRIu64 " notification(s) could not be encoded and were not "
                               "sent (see the log lines above)\n",
                stats.dropped);
        status = S_EXIT_FAIL;
    }
    //  Flushed: destroy gives the socket the rest of the linger, so the
    //  bytes leave the process before it exits.
    hvn_publisher_destroy(&pub);
    zstr_free(&args.endpoint);
    return status;
}
