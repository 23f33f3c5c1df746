/*  hvn_sub.c — hvn-sub: follow compute-node notifications from a broker.

    One JSON object per line on stdout, the envelope every Nova versioned-
    notification consumer parses, flushed per line so `jq` and pipes see each
    message at once. Stops after --count messages, after --timeout seconds of
    silence, or on SIGINT/SIGTERM.
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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
    char *endpoints;          //  --connect values joined with ',' (heap)
    const char *service;      //  --service
    const char **topics;      //  --topic values (heap array, strings in argv)
    size_t topic_count;       //  Entries in topics
    const char *host;         //  --host, or NULL
    bool snapshot;            //  --snapshot
    bool heartbeats;          //  --heartbeats
    long count;               //  --count; 0 = unlimited
    double timeout_s;         //  --timeout; 0 = none
    const char *timeout_arg;  //  --timeout as given, for messages
    s_format_t format;        //  --format
    const char *curve_secret; //  --curve-secret, NULL = plain text
    const char *server_key;   //  --server-key
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
                 "  --snapshot       first print the broker's cached fleet, then follow live;\n"
                 "                   take it again after a seq gap or a broker restart\n"
                 "  --count N        exit 0 after N messages printed (snapshot items count)\n"
                 "  --timeout S      stop after S seconds without a message printed: exit 0,\n"
                 "                   or 1 when --count was given and not reached; also the\n"
                 "                   wait for each snapshot reply (default 5 s)\n"
                 "  --format FORMAT  json (default) or table: one row per node, redrawn at most\n"
                 "                   once a second on a terminal, else printed once at exit\n"
                 "  --heartbeats     json: print heartbeats too (default: notifications only)\n"
                 "  --curve-secret CERT  this subscriber's secret certificate (hvn-keygen\n"
                 "                   subscriber): connect with CURVE; needs --server-key\n"
                 "  --server-key CERT    the broker's public certificate\n"
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
                                            {"curve-secret", required_argument, NULL, 'C'},
                                            {"server-key", required_argument, NULL, 'K'},
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
            else if (strcmp(optarg, "table") == 0)
                args->format = S_FORMAT_TABLE;
            else
                return s_bad_value("format", optarg, "json or table");
            break;
        case 'b':
            args->heartbeats = true;
            break;
        case 'C':
            args->curve_secret = optarg;
            break;
        case 'K':
            args->server_key = optarg;
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
    if (!args->curve_secret != !args->server_key) {
        fprintf(stderr, S_NAME ": --curve-secret and --server-key go together (try --help)\n");
        return S_EXIT_USAGE;
    }
    if (!args->endpoints && s_add_endpoint(args, S_DEFAULT_CONNECT) != 0)
        return S_EXIT_FAIL;
    return -1;
}

// --------------------------------------------------------------------------
//  The table: a replica of the fleet, one row per node

//  What the table shows of one node
typedef struct {
    char uuid[HVN_UUID_STR_LEN + 1];     //  Node uuid (the key)
    char host[HVN_STR_MAX + 1];          //  Payload host, else the topic's
    int64_t vcpus, vcpus_used;           //  vCPUs total / given to guests
    int64_t memory_mb, memory_mb_used;   //  RAM total / used, MiB
    int64_t local_gb, local_gb_used;     //  Disk total / used, GiB
    int64_t running_vms;                 //  -1 = unknown (nil)
    char changed[HVN_TIMESTAMP_LEN + 1]; //  Timestamp of the last change
} s_row_t;

//  Returns nothing; applies one notification to the replica (a delete
//  removes the row, create/update replace it).
static void s_table_apply(zhashx_t *rows, const hvn_msg_t *msg)
{
    if (msg->event == HVN_EVENT_DELETE) {
        zhashx_delete(rows, msg->node.uuid);
        return;
    }
    if (msg->event != HVN_EVENT_CREATE && msg->event != HVN_EVENT_UPDATE)
        return;
    s_row_t *row = zhashx_lookup(rows, msg->node.uuid);
    if (!row) {
        if (!(row = calloc(1, sizeof(*row))))
            return;
        snprintf(row->uuid, sizeof(row->uuid), "%s", msg->node.uuid);
        zhashx_insert(rows, row->uuid, row);
    }
    const hvn_node_t *node = &msg->node;
    bool host_null = hvn_node_is_null(node, HVN_F_HOST) || !node->host[0];
    snprintf(row->host, sizeof(row->host), "%s", host_null ? msg->host : node->host);
    row->vcpus = node->vcpus;
    row->vcpus_used = node->vcpus_used;
    row->memory_mb = node->memory_mb;
    row->memory_mb_used = node->memory_mb_used;
    row->local_gb = node->local_gb;
    row->local_gb_used = node->local_gb_used;
    row->running_vms = hvn_node_is_null(node, HVN_F_RUNNING_VMS) ? -1 : node->running_vms;
    snprintf(row->changed, sizeof(row->changed), "%s", msg->timestamp);
}

//  Returns <0, 0 or >0 as row a sorts before, with or after row b: by host,
//  then uuid.
static int s_row_compare(const void *a, const void *b)
{
    const s_row_t *ra = *(const s_row_t *const *)a;
    const s_row_t *rb = *(const s_row_t *const *)b;
    int rc = strcmp(ra->host, rb->host);
    return rc ? rc : strcmp(ra->uuid, rb->uuid);
}

//  Returns nothing; writes the table, sorted by host, on out.
static void s_table_print(zhashx_t *rows, FILE *out)
{
    size_t count = zhashx_size(rows);
    s_row_t **sorted = calloc(count ? count : 1, sizeof(*sorted));
    if (!sorted)
        return;
    size_t n = 0;
    for (s_row_t *row = zhashx_first(rows); row && n < count; row = zhashx_next(rows))
        sorted[n++] = row;
    qsort(sorted, n, sizeof(*sorted), s_row_compare);
    fprintf(out, "%-24s %11s %17s %15s %7s  %s\n", "HOST", "VCPUS", "RAM MIB", "DISK GIB", "VMS",
            "CHANGED (UTC)");
    for (size_t i = 0; i < n; i++) {
        const s_row_t *r = sorted[i];
        char vcpus[48], ram[48], disk[48], vms[24];
        snprintf(vcpus, sizeof(vcpus), "%" PRId64 "/%" PRId64, r->vcpus_used, r->vcpus);
        snprintf(ram, sizeof(ram), "%" PRId64 "/%" PRId64, r->memory_mb_used, r->memory_mb);
        snprintf(disk, sizeof(disk), "%" PRId64 "/%" PRId64, r->local_gb_used, r->local_gb);
        if (r->running_vms < 0)
            snprintf(vms, sizeof(vms), "-");
        else
            snprintf(vms, sizeof(vms), "%" PRId64, r->running_vms);
        fprintf(out, "%-24s %11s %17s %15s %7s  %.19s\n", r->host, vcpus, ram, disk, vms,
                r->changed);
    }
    fprintf(out, "%zu node%s\n", n, n == 1 ? "" : "s");
    fflush(out);
    free(sorted);
}

// --------------------------------------------------------------------------
//  Output

#define S_REDRAW_MS 1000 //  The live table is redrawn at most this often

//  One run of hvn-sub
typedef struct {
    const s_args_t *args;  //  The command line
    hvn_subscriber_t *sub; //  The client
    long shown;            //  Messages printed or applied
    int64_t last_ms;       //  Monotonic time of the last one
    bool failed;           //  Output could not be written
    zhashx_t *rows;        //  Table: node uuid -> s_row_t
    bool live;             //  Table on a TTY: redraw as it changes
    bool dirty;            //  Table: changed since the last draw
    int64_t drawn_ms;      //  Table: monotonic time of the last draw
} s_run_t;

//  Returns true when msg is one the user asked to see.
static bool s_wanted(const s_args_t *args, const hvn_msg_t *msg)
{
    if (msg->header.kind == HVN_KIND_HEARTBEAT)
        return args->heartbeats && args->format == S_FORMAT_JSON;
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

//  Returns nothing; redraws the live table when it changed and the last
//  draw is at least S_REDRAW_MS old (or force is set).
static void s_redraw(s_run_t *run, bool force)
{
    int64_t now = zclock_mono();
    if (!run->live || !run->dirty || (!force && now - run->drawn_ms < S_REDRAW_MS))
        return;
    fputs("\033[H\033[2J", stdout);
    s_table_print(run->rows, stdout);
    run->dirty = false;
    run->drawn_ms = now;
}

//  Returns nothing; shows one message (printed, or applied to the table)
//  unless --count is already reached.
static void s_show(s_run_t *run, const hvn_msg_t *msg)
{
    if (!s_wanted(run->args, msg) || (run->args->count && run->shown >= run->args->count))
        return;
    if (run->args->format == S_FORMAT_JSON) {
        if (s_print_json(msg) != 0)
            run->failed = true;
    } else {
        s_table_apply(run->rows, msg);
        run->dirty = true;
        s_redraw(run, false);
    }
    run->shown++;
    run->last_ms = zclock_mono();
}

//  Returns nothing; the snapshot callback.
static void s_show_item(const hvn_msg_t *msg, void *arg)
{
    s_show((s_run_t *)arg, msg);
}

// --------------------------------------------------------------------------
//  Main loop

//  Returns 0 after showing the broker's snapshot, -1 (on stderr) when it
//  failed.
static int s_snapshot(s_run_t *run)
{
    const s_args_t *args = run->args;
    //  One prefix can be asked of the broker; for several, ask for all and
    //  let the library keep what the topics select
    const char *prefix = args->topic_count == 1 ? args->topics[0] : "";
    int timeout_ms = args->timeout_s > 0 ? (int)llround(args->timeout_s * 1000) : 5000;
    int items = hvn_subscriber_snapshot(run->sub, prefix, s_show_item, run, timeout_ms);
    if (items < 0) {
        if (!zsys_interrupted)
            fprintf(stderr, S_NAME ": snapshot from %s failed\n", args->service);
        return -1;
    }
    zsys_info("snapshot of %d nodes from broker %s", items, hvn_subscriber_broker_id(run->sub));
    return 0;
}

//  Returns true when the view may be stale (a seq gap, or a broker that
//  restarted) and --snapshot asks to keep it whole. Takes msg, the message
//  just received, or NULL.
static bool s_resync_due(s_run_t *run, const hvn_msg_t *msg, uint64_t *gaps)
{
    if (!run->args->snapshot)
        return false;
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(run->sub, &stats);
    bool due = false;
    if (stats.gaps > *gaps) {
        zsys_warning("lost %" PRIu64 " notifications; taking a new snapshot", stats.missed);
        due = true;
    }
    *gaps = stats.gaps;
    const char *known = hvn_subscriber_broker_id(run->sub);
    if (msg && msg->event == HVN_EVENT_BROKER && *known && strcmp(msg->publisher_id, known)) {
        zsys_warning("broker restarted (now %s); taking a new snapshot", msg->publisher_id);
        due = true;
    }
    return due;
}

//  Returns the exit code after following messages until --count, --timeout
//  or a signal.
static int s_follow(s_run_t *run)
{
    const s_args_t *args = run->args;
    int64_t timeout_ms = (int64_t)llround(args->timeout_s * 1000);
    uint64_t gaps = 0;
    run->last_ms = zclock_mono();
    if (args->snapshot && s_snapshot(run) != 0)
        return zsys_interrupted ? S_EXIT_OK : S_EXIT_FAIL;
    s_resync_due(run, NULL, &gaps);
    hvn_msg_t msg;
    while (!run->failed && (!args->count || run->shown < args->count)) {
        int64_t now = zclock_mono();
        int64_t wait_ms = -1;
        if (timeout_ms > 0) {
            wait_ms = run->last_ms + timeout_ms - now;
            if (wait_ms <= 0)
                break;
        }
        if (run->live && run->dirty) {
            int64_t redraw_ms = run->drawn_ms + S_REDRAW_MS - now;
            wait_ms =
                wait_ms < 0 || redraw_ms < wait_ms ? (redraw_ms > 0 ? redraw_ms : 0) : wait_ms;
        }
        int rc = hvn_subscriber_recv(run->sub, &msg, (int)wait_ms);
        if (rc < 0)
            return S_EXIT_OK; //  Interrupted: a clean stop
        s_redraw(run, false);
        if (rc == 0)
            continue;
        s_show(run, &msg);
        //  A failed resync is not fatal: live messages still flow, and the
        //  next gap or broker change tries again
        if (s_resync_due(run, &msg, &gaps) && s_snapshot(run) != 0 && zsys_interrupted)
            return S_EXIT_OK;
    }
    if (run->failed)
        return S_EXIT_FAIL;
    if (args->count && run->shown < args->count) {
        fprintf(stderr, S_NAME ": timed out after %s s: got %ld of %ld\n", args->timeout_arg,
                run->shown, args->count);
        return S_EXIT_FAIL;
    }
    return S_EXIT_OK;
}

//  Returns nothing; says on stderr, once at exit, what was refused or lost,
//  when anything was.
static void s_report_losses(hvn_subscriber_t *sub)
{
    hvn_subscriber_stats_t stats;
    hvn_subscriber_stats(sub, &stats);
    if (stats.skipped_total || stats.gaps)
        zsys_warning("received %" PRIu64 ", refused %" PRIu64 ", lost %" PRIu64 " in %" PRIu64
                     " seq gaps",
                     stats.received, stats.skipped_total, stats.missed, stats.gaps);
}

//  Returns nothing; frees a table row.
static void s_free_row(void **row_p)
{
    free(*row_p);
    *row_p = NULL;
}

//  Returns the exit status: 0 on success or a signal, 1 on failure, 2 on
//  bad usage.
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
                                  .host = args.host,
                                  .curve_secret = args.curve_secret,
                                  .curve_server = args.server_key};
    s_run_t run = {.args = &args,
                   .live = args.format == S_FORMAT_TABLE && isatty(STDOUT_FILENO) == 1,
                   .dirty = true};
    run.sub = hvn_subscriber_new(&opts);
    if (args.format == S_FORMAT_TABLE && (run.rows = zhashx_new()))
        zhashx_set_destructor(run.rows, s_free_row);
    if (!run.sub || (args.format == S_FORMAT_TABLE && !run.rows))
        code = S_EXIT_FAIL;
    else {
        code = s_follow(&run);
        s_report_losses(run.sub);
        if (run.rows && run.live)
            s_redraw(&run, true);
        else if (run.rows)
            s_table_print(run.rows, stdout);
    }
    zhashx_destroy(&run.rows);
    hvn_subscriber_destroy(&run.sub);
    free(args.endpoints);
    free(args.topics);
    return code;
}
