/*  hvn-sub: follow compute-node notifications from one or more brokers.

    One JSON object per line on stdout, the envelope every Nova versioned-
    notification consumer parses, flushed per line so `jq` and pipes see each
    message at once. Stops after --count messages, after --timeout seconds of
    silence, or on SIGINT/SIGTERM.

    With --snapshot or --format table, hvn-sub keeps a replica of the fleet
    (hvn_replica.h): the cached fleet first, then live changes, each
    notification once even through two brokers, losses detected and
    repaired by snapshot. Without them it is a plain subscriber.
*/
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvn_cli.h"
#include "hvn_opt.h"
#include "hvn_replica.h"
#include "hvn_subscriber.h"

#define S_NAME "hvn-sub"
#define S_DEFAULT_CONNECT "tcp://127.0.0.1:5562"
#define S_DEFAULT_SERVICE "tcp://127.0.0.1:5563"
#define S_TIMEOUT_MAX_S 2000000.0 //  Longest --timeout, so milliseconds fit an int
#define S_TIMEOUT_MIN_S 0.001     //  Shortest --timeout: the resolution is 1 ms
#define S_TOPICS_MAX 64           //  Most --topic

//  Exit codes
#define S_EXIT_OK 0
#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2

typedef enum { S_FORMAT_JSON, S_FORMAT_TABLE } s_format_t;

//  The command line, parsed
typedef struct {
    char *endpoints;          //  --connect values joined with ',' (heap)
    const char *backends[HVN_REPLICA_BROKERS_MAX + 1]; //  --connect values (in argv)
    size_t backend_count;                              //  Entries in backends
    const char *services[HVN_REPLICA_BROKERS_MAX + 1]; //  --service values (in argv)
    size_t service_count;                              //  Entries in services
    const char *topics[S_TOPICS_MAX + 1];              //  --topic values (in argv)
    size_t topic_count;                                //  Entries in topics
    const char *host;         //  --host, or NULL
    bool snapshot;            //  --snapshot
    bool heartbeats;          //  --heartbeats
    long count;               //  --count; 0 = unlimited
    double timeout_s;         //  --timeout; 0 = none
    s_format_t format;        //  --format
    long rcvhwm;              //  --rcvhwm; 0 = library default
    long heartbeat_ms;        //  --heartbeat-ms; 0 = replica default
    const char *curve_secret; //  --curve-secret, NULL = plain text
    const char *server_key;   //  --server-key
} s_args_t;

//  Returns NULL when text can follow --topic, else what was expected.
static const char *s_check_topic(const char *text)
{
    return strlen(text) <= HVN_TOPIC_MAX ? NULL : "a topic prefix of at most 255 bytes";
}

//  Returns NULL when text can follow --host, else what was expected.
static const char *s_check_host(const char *text)
{
    return !strchr(text, '@') && strlen(text) <= HVN_STR_MAX ? NULL
                                                             : "a host name without '@'";
}

//  Returns -1 when the endpoints pair up (args filled), else exits 2 after
//  an error line.
static int s_check_pairs(const hvn_opt_program_t *program, s_args_t *args)
{
    if (args->service_count == 0)
        args->services[args->service_count++] = S_DEFAULT_SERVICE;
    bool replica = args->snapshot || args->format == S_FORMAT_TABLE;
    if (replica && args->service_count != args->backend_count)
        hvn_opt_fail(program,
                     "%zu --connect but %zu --service: give one service per broker, in the "
                     "same order",
                     args->backend_count, args->service_count);
    return -1;
}

//  Returns -1 when the arguments are good (args filled), S_EXIT_FAIL when
//  memory ran out; exits 0 after --help, 2 after an error line on stderr.
static int s_parse_args(int argc, char *argv[], s_args_t *args)
{
    const char *format = "json";
    long count = 0, rcvhwm = 0, heartbeat_ms = 0;
    const hvn_opt_t options[] = {
        {.name = "connect", .type = HVN_OPT_LIST, .dest = args->backends, .metavar = "EP",
         .help = "broker backend endpoint; repeat for several brokers",
         .max = HVN_REPLICA_BROKERS_MAX, .check = hvn_opt_check_endpoint,
         .default_text = S_DEFAULT_CONNECT},
        {.name = "service", .type = HVN_OPT_LIST, .dest = args->services, .metavar = "EP",
         .help = "broker service endpoint, for --snapshot and --format\n"
                 "table; repeat, one per --connect, paired by order",
         .max = HVN_REPLICA_BROKERS_MAX, .check = hvn_opt_check_endpoint,
         .default_text = S_DEFAULT_SERVICE},
        {.name = "topic", .type = HVN_OPT_LIST, .dest = args->topics, .metavar = "PREFIX",
         .help = "topic prefix to follow, e.g. compute_node.update;\n"
                 "repeat for several (default: everything)",
         .max = S_TOPICS_MAX, .check = s_check_topic},
        {.name = "host", .type = HVN_OPT_STRING, .dest = &args->host, .metavar = "HOST",
         .help = "only messages of this host (exact match)", .check = s_check_host},
        {.name = "snapshot", .type = HVN_OPT_FLAG, .dest = &args->snapshot,
         .help = "keep a replica of the fleet: first print the broker's\n"
                 "cached nodes, then each live notification once (also\n"
                 "through two brokers); a seq gap, a heartbeat that\n"
                 "disagrees, a restarted or silent broker is repaired by a\n"
                 "new snapshot: the nodes it changed are printed as its\n"
                 "items, the nodes it removed are logged on stderr"},
        {.name = "count", .type = HVN_OPT_INT, .dest = &count, .metavar = "N",
         .help = "exit 0 after N messages printed (snapshot items count)", .min = 1,
         .default_text = "no limit"},
        {.name = "timeout", .type = HVN_OPT_DOUBLE, .dest = &args->timeout_s, .metavar = "S",
         .help = "stop after S seconds without a message printed: exit 0,\n"
                 "or 1 when --count was given and not reached; also the\n"
                 "wait for each snapshot reply (5 s when not given)",
         .dmin = S_TIMEOUT_MIN_S, .dmax = S_TIMEOUT_MAX_S, .default_text = "no timeout"},
        {.name = "format", .type = HVN_OPT_CHOICE, .dest = &format, .metavar = "FORMAT",
         .choices = "json|table",
         .help = "json or table: the replica's fleet, one row per node\n"
                 "(host, vCPUs, RAM, disk, VMs, last change), redrawn at\n"
                 "most 4 times a second on a terminal, else printed once\nat exit"},
        {.name = "heartbeats", .type = HVN_OPT_FLAG, .dest = &args->heartbeats,
         .help = "json: print heartbeats too (default: notifications only)"},
        {.name = "rcvhwm", .type = HVN_OPT_INT, .dest = &rcvhwm, .metavar = "N",
         .help = "messages queued per broker before the library drops;\n"
                 "a small value makes a slow reader lose messages, which\n"
                 "--snapshot then repairs",
         .min = 1, .max = INT32_MAX, .default_text = "100000"},
        {.name = "heartbeat-ms", .type = HVN_OPT_INT, .dest = &heartbeat_ms, .metavar = "N",
         .help = "broker heartbeat interval assumed until a broker\n"
                 "advertises its own; silence past three intervals is a\nloss",
         .min = 1, .max = INT32_MAX, .default_text = "10000"},
        {.name = "curve-secret", .type = HVN_OPT_PATH, .dest = &args->curve_secret,
         .metavar = "CERT",
         .help = "this subscriber's secret certificate (hvn-keygen\n"
                 "subscriber): connect with CURVE; needs --server-key"},
        {.name = "server-key", .type = HVN_OPT_PATH, .dest = &args->server_key,
         .metavar = "CERT", .help = "the broker's public certificate"},
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = S_NAME,
        .summary = "Follow compute-node notifications from hvnotify brokers; print one JSON\n"
                   "object per line (the Nova versioned-notification envelope) on stdout.",
        .epilogue = "At exit, when anything was refused, lost or repaired, the counters go to\n"
                    "stderr. Exit status: 0 on success (also on SIGINT/SIGTERM), 1 on failure\n"
                    "(a broker that cannot be reached or answered), 2 on bad usage.",
        .options = options,
    };
    hvn_opt_parse(&program, argc, argv);
    if (!args->curve_secret != !args->server_key)
        hvn_opt_fail(&program, "--curve-secret and --server-key go together");
    args->format = strcmp(format, "table") == 0 ? S_FORMAT_TABLE : S_FORMAT_JSON;
    args->count = count;
    args->rcvhwm = rcvhwm;
    args->heartbeat_ms = heartbeat_ms;
    if (!args->backends[0])
        args->backends[0] = S_DEFAULT_CONNECT;
    while (args->backends[args->backend_count]) {
        if (hvn_cli_list_append(&args->endpoints, args->backends[args->backend_count]) != 0)
            return S_EXIT_FAIL;
        args->backend_count++;
    }
    while (args->topics[args->topic_count])
        args->topic_count++;
    while (args->services[args->service_count])
        args->service_count++;
    return s_check_pairs(&program, args);
}

// --------------------------------------------------------------------------
//  The table: the replica's fleet, one row per node

#define S_REDRAW_MS 250 //  The live table is redrawn at most this often

//  Returns <0, 0 or >0 as node a sorts before, with or after node b: by
//  host, then uuid.
static int s_row_compare(const void *a, const void *b)
{
    const hvn_replica_node_t *na = *(const hvn_replica_node_t *const *)a;
    const hvn_replica_node_t *nb = *(const hvn_replica_node_t *const *)b;
    int rc = strcmp(na->host, nb->host);
    return rc ? rc : strcmp(na->node.uuid, nb->node.uuid);
}

//  The nodes of the view being collected for a draw
typedef struct {
    const hvn_replica_node_t **rows; //  Borrowed from the replica
    size_t count;                    //  Rows filled
    size_t size;                     //  Rows allocated
} s_rows_t;

//  Returns 0 after adding node to the rows (the hvn_replica_node_fn).
static int s_collect_row(const hvn_replica_node_t *node, void *arg)
{
    s_rows_t *rows = arg;
    if (rows->count < rows->size)
        rows->rows[rows->count++] = node;
    return 0;
}

//  Returns out: text with every control character (a byte below 0x20, or
//  0x7f) as '?', at most size - 1 bytes: what a peer named is printed,
//  never executed by the terminal.
static char *s_printable(char *out, size_t size, const char *text)
{
    size_t i = 0;
    for (; text[i] && i + 1 < size; i++)
        out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7F ? '?' : text[i];
    out[i] = '\0';
    return out;
}

//  Returns nothing; writes the replica's table, sorted by host, on out.
static void s_table_print(hvn_replica_t *replica, FILE *out)
{
    s_rows_t rows = {.size = hvn_replica_size(replica)};
    rows.rows = calloc(rows.size ? rows.size : 1, sizeof(*rows.rows));
    if (!rows.rows)
        return;
    hvn_replica_foreach(replica, s_collect_row, &rows);
    qsort(rows.rows, rows.count, sizeof(*rows.rows), s_row_compare);
    fprintf(out, "%-24s %11s %17s %15s %7s  %s\n", "HOST", "VCPUS", "RAM MIB", "DISK GIB", "VMS",
            "CHANGED (UTC)");
    for (size_t i = 0; i < rows.count; i++) {
        const hvn_replica_node_t *r = rows.rows[i];
        const hvn_node_t *n = &r->node;
        bool host_null = hvn_node_is_null(n, HVN_F_HOST) || !n->host[0];
        char vcpus[48], ram[48], disk[48], vms[24];
        snprintf(vcpus, sizeof(vcpus), "%" PRId64 "/%" PRId64, n->vcpus_used, n->vcpus);
        snprintf(ram, sizeof(ram), "%" PRId64 "/%" PRId64, n->memory_mb_used, n->memory_mb);
        snprintf(disk, sizeof(disk), "%" PRId64 "/%" PRId64, n->local_gb_used, n->local_gb);
        if (hvn_node_is_null(n, HVN_F_RUNNING_VMS))
            snprintf(vms, sizeof(vms), "-");
        else
            snprintf(vms, sizeof(vms), "%" PRId64, n->running_vms);
        char host[HVN_STR_MAX + 1], stamp[20];
        fprintf(out, "%-24s %11s %17s %15s %7s  %s\n",
                s_printable(host, sizeof(host), host_null ? r->host : n->host), vcpus, ram, disk,
                vms, s_printable(stamp, sizeof(stamp), r->timestamp));
    }
    fprintf(out, "%zu node%s\n", rows.count, rows.count == 1 ? "" : "s");
    fflush(out);
    free(rows.rows);
}

// --------------------------------------------------------------------------
//  Output

//  One run of hvn-sub
typedef struct {
    const s_args_t *args;   //  The command line
    hvn_subscriber_t *sub;  //  Plain mode: the client
    hvn_replica_t *replica; //  Replica mode: the fleet
    long shown;             //  Messages printed or applied
    int64_t last_ms;        //  Monotonic time of the last one
    bool failed;            //  Output could not be written
    bool table;             //  --format table
    bool live;              //  Table on a TTY: redraw as it changes
    bool dirty;             //  Table: changed since the last draw
    int64_t drawn_ms;       //  Table: monotonic time of the last draw
} s_run_t;

//  Returns true when a topic passes the --topic prefixes (none: all).
static bool s_topic_wanted(const s_args_t *args, const char *topic)
{
    if (args->topic_count == 0)
        return true;
    for (size_t i = 0; i < args->topic_count; i++)
        if (strncmp(topic, args->topics[i], strlen(args->topics[i])) == 0)
            return true;
    return false;
}

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
    s_table_print(run->replica, stdout);
    run->dirty = false;
    run->drawn_ms = now;
}

//  Returns nothing; shows one message (printed, or counted for the table)
//  unless --count is already reached.
static void s_show(s_run_t *run, const hvn_msg_t *msg)
{
    if (!s_wanted(run->args, msg) || (run->args->count && run->shown >= run->args->count))
        return;
    if (!run->table && s_print_json(msg) != 0)
        run->failed = true;
    run->shown++;
    run->last_ms = zclock_mono();
}

//  Returns nothing; a change of the replica's view (the hvn_replica_fn).
static void s_on_change(const hvn_replica_event_t *event, void *arg)
{
    s_run_t *run = arg;
    if (event->change == HVN_REPLICA_REPLACED) {
        zsys_info("snapshot applied: %zu nodes", hvn_replica_size(run->replica));
        run->dirty = true;
        return;
    }
    if (event->change != HVN_REPLICA_HEARTBEAT)
        run->dirty = true;
    if (!event->msg) {
        //  A node the snapshot no longer holds: deleted while messages were lost
        if (event->change == HVN_REPLICA_DELETED && event->node)
            zsys_info("node %s (%s) removed: the broker no longer holds it", event->node->node.uuid,
                      event->node->host);
        return;
    }
    if (s_topic_wanted(run->args, event->msg->topic))
        s_show(run, event->msg);
}

// --------------------------------------------------------------------------
//  Main loops

//  Returns the wait before the next --timeout check or redraw, in ms (-1 =
//  none), or 0 when --timeout has passed (*expired set).
static int64_t s_wait_ms(s_run_t *run, bool *expired)
{
    int64_t timeout_ms = (int64_t)llround(run->args->timeout_s * 1000);
    int64_t now = zclock_mono();
    int64_t wait_ms = -1;
    *expired = false;
    if (timeout_ms > 0) {
        wait_ms = run->last_ms + timeout_ms - now;
        if (wait_ms <= 0) {
            *expired = true;
            return 0;
        }
    }
    if (run->live && run->dirty) {
        int64_t redraw_ms = run->drawn_ms + S_REDRAW_MS - now;
        if (redraw_ms < 0)
            redraw_ms = 0;
        if (wait_ms < 0 || redraw_ms < wait_ms)
            wait_ms = redraw_ms;
    }
    return wait_ms > INT32_MAX ? INT32_MAX : wait_ms;
}

//  Returns the exit code once --count is reached, --timeout expired or
//  output failed.
static int s_finish(s_run_t *run)
{
    const s_args_t *args = run->args;
    if (run->failed)
        return S_EXIT_FAIL;
    if (args->count && run->shown < args->count) {
        fprintf(stderr, S_NAME ": timed out after %g s: got %ld of %ld\n", args->timeout_s,
                run->shown, args->count);
        return S_EXIT_FAIL;
    }
    return S_EXIT_OK;
}

//  Returns the exit code after following a plain subscriber until --count,
//  --timeout or a signal.
static int s_follow(s_run_t *run)
{
    const s_args_t *args = run->args;
    run->last_ms = zclock_mono();
    hvn_msg_t msg;
    while (!run->failed && (!args->count || run->shown < args->count)) {
        bool expired;
        int64_t wait_ms = s_wait_ms(run, &expired);
        if (expired)
            break;
        int rc = hvn_subscriber_recv(run->sub, &msg, (int)wait_ms);
        if (rc < 0)
            return S_EXIT_OK; //  Interrupted: a clean stop
        if (rc == 1)
            s_show(run, &msg);
    }
    return s_finish(run);
}

//  Returns the exit code after following the replica until --count,
//  --timeout or a signal.
static int s_follow_replica(s_run_t *run)
{
    const s_args_t *args = run->args;
    run->last_ms = zclock_mono();
    while (!run->failed && (!args->count || run->shown < args->count)) {
        bool expired;
        int64_t wait_ms = s_wait_ms(run, &expired);
        if (expired)
            break;
        if (hvn_replica_poll(run->replica, (int)wait_ms) < 0)
            return S_EXIT_OK; //  Interrupted: a clean stop
        s_redraw(run, false);
    }
    return s_finish(run);
}

//  Returns nothing; says on stderr, once at exit, what was refused or lost,
//  when anything was.
static void s_report_losses(s_run_t *run)
{
    if (run->sub) {
        hvn_subscriber_stats_t stats;
        hvn_subscriber_stats(run->sub, &stats);
        if (stats.skipped_total || stats.gaps || stats.replays || stats.duplicates)
            zsys_warning("received %" PRIu64 ", refused %" PRIu64 ", lost %" PRIu64 " in %" PRIu64
                         " seq gaps; %" PRIu64 " gaps repaired by REPLAY (%" PRIu64
                         " notifications), %" PRIu64 " duplicates dropped",
                         stats.received, stats.skipped_total, stats.missed, stats.gaps,
                         stats.replays, stats.replayed, stats.duplicates);
        return;
    }
    hvn_replica_stats_t st;
    hvn_replica_stats(run->replica, &st);
    if (st.refused || st.losses || st.repairs_failed)
        zsys_warning("received %" PRIu64 ", applied %" PRIu64 ", duplicates %" PRIu64
                     ", stale %" PRIu64 ", refused %" PRIu64 "; losses detected %" PRIu64
                     " (seq gaps %" PRIu64 " missing %" PRIu64 ", stale heartbeats %" PRIu64
                     ", broker restarts %" PRIu64 ", silences %" PRIu64 "), repaired %" PRIu64
                     " by %" PRIu64 " snapshots, %" PRIu64 " failed attempts; %" PRIu64
                     " gaps repaired by REPLAY",
                     st.received, st.applied, st.duplicates, st.stale, st.refused, st.losses,
                     st.gaps, st.missed, st.stale_heartbeats, st.broker_restarts, st.silences,
                     st.repaired, st.repairs, st.repairs_failed, st.replays);
}

//  Returns the client of this run (plain subscriber or replica), or -1
//  (logged) when it cannot be made.
static int s_open(s_run_t *run)
{
    const s_args_t *args = run->args;
    if (!args->snapshot && !run->table) {
        hvn_subscriber_opts_t opts = {.endpoint = args->endpoints,
                                      .service = args->services[0],
                                      .topics = args->topics,
                                      .topic_count = args->topic_count,
                                      .host = args->host,
                                      .curve_secret = args->curve_secret,
                                      .curve_server = args->server_key,
                                      .rcvhwm = (int)args->rcvhwm};
        run->sub = hvn_subscriber_new(&opts);
        return run->sub ? 0 : -1;
    }
    int timeout_ms = args->timeout_s > 0 ? (int)llround(args->timeout_s * 1000) : 5000;
    hvn_replica_opts_t opts = {.backends = args->backends,
                               .services = args->services,
                               .broker_count = args->backend_count,
                               .host = args->host,
                               .curve_secret = args->curve_secret,
                               .curve_server = args->server_key,
                               .rcvhwm = (int)args->rcvhwm,
                               .snapshot_timeout_ms = timeout_ms,
                               .heartbeat_ms = (int)args->heartbeat_ms,
                               .fn = s_on_change,
                               .arg = run};
    run->replica = hvn_replica_new(&opts);
    return run->replica ? 0 : -1;
}

//  Returns the exit status: 0 on success or a signal, 1 on failure, 2 on
//  bad usage.
int main(int argc, char *argv[])
{
    s_args_t args = {0};
    int code = s_parse_args(argc, argv, &args);
    if (code < 0) {
        zsys_set_logident(S_NAME);
        zsys_set_logstream(stderr);
        bool table = args.format == S_FORMAT_TABLE;
        s_run_t run = {.args = &args,
                       .table = table,
                       .live = table && isatty(STDOUT_FILENO) == 1,
                       .dirty = true};
        if (s_open(&run) != 0)
            code = S_EXIT_FAIL;
        else {
            code = run.replica ? s_follow_replica(&run) : s_follow(&run);
            s_report_losses(&run);
            if (run.table && run.live)
                s_redraw(&run, true);
            else if (run.table)
                s_table_print(run.replica, stdout);
        }
        hvn_replica_destroy(&run.replica);
        hvn_subscriber_destroy(&run.sub);
    }
    free(args.endpoints);
    return code;
}
