/*  hvn-index: the fleet as tables, in SQLite or PostgreSQL.

    A replica of the fleet (hvn_replica.h: snapshot, live, each notification
    once through several brokers, losses repaired) feeds the writer
    (hvn_index.h), which keeps compute_nodes equal to the view and records
    every notification in compute_node_events. After the first snapshot,
    what was missed while the program was not running is asked of the
    brokers' rings (hvn_index_replay.h) before that snapshot's batch is
    committed. A database file removed or replaced under the program is
    made again, and a new replica's snapshot writes every row into it.
    The loop is: poll the
    replica until the writer's next commit is due, then tick the writer;
    while a batch waits, poll without waiting, and commit as soon as no
    input is left and 10 ms have passed since the last commit (a group
    commit: a lone change is written at once, a stream in batches of 10 ms
    up to --commit-ms).
*/
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_db.h"
#include "hvn_index.h"
#include "hvn_index_api.h"
#include "hvn_index_page.h"
#include "hvn_index_replay.h"
#include "hvn_opt.h"
#include "hvn_replica.h"

#define S_NAME "hvn-index"
#define S_DEFAULT_DB "/var/lib/hvnotify/fleet.db"

//  The command line; defaults are the initial values
static const char *s_connect[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_service[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_db = NULL;
static const char *s_state_dir = NULL;
static const char *s_http = "127.0.0.1:8780";
static bool s_no_http = false;
static long s_retention_days = 30;
static long s_commit_ms = 50;
static long s_heartbeat_ms = 0;
static const char *s_curve_secret = NULL;
static const char *s_server_key = NULL;

static const hvn_opt_t s_options[] = {
    {"connect", HVN_OPT_LIST, s_connect, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint, .default_text = "tcp://127.0.0.1:5562",
     .help = "broker backend endpoint; repeat for several brokers"},
    {"service", HVN_OPT_LIST, s_service, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint, .default_text = "tcp://127.0.0.1:5563",
     .help = "broker service endpoint, one per --connect, paired by order"},
    {"db", HVN_OPT_STRING, &s_db, .metavar = "TARGET",
     .default_text = S_DEFAULT_DB " (or fleet.db under --state-dir)",
     .help = "the database: a SQLite file path, or a postgresql:// URI"},
    {"state-dir", HVN_OPT_PATH, &s_state_dir, .metavar = "DIR",
     .help = "directory of the default SQLite database"},
    {"http", HVN_OPT_ADDRESS, &s_http, .metavar = "ADDR:PORT",
     .help = "where the read-only HTTP API and /metrics listen"},
    {"no-http", HVN_OPT_FLAG, &s_no_http, .help = "serve no HTTP"},
    {"events-retention", HVN_OPT_INT, &s_retention_days, .metavar = "DAYS", .min = 0, .max = 36500,
     .help = "delete event rows older than DAYS (0: keep them all)"},
    {"commit-ms", HVN_OPT_INT, &s_commit_ms, .metavar = "MS", .min = 1, .max = 10000,
     .help = "longest a change waits for its transaction"},
    {"heartbeat-ms", HVN_OPT_INT, &s_heartbeat_ms, .metavar = "MS", .min = 0, .max = 3600000,
     .help = "broker heartbeat interval assumed until one advertises (0: 10000)"},
    {"curve-secret", HVN_OPT_PATH, &s_curve_secret, .metavar = "CERT",
     .help = "this subscriber's secret certificate (CURVE)"},
    {"server-key", HVN_OPT_PATH, &s_server_key, .metavar = "CERT",
     .help = "the broker's public certificate (CURVE)"},
    {NULL}};

static const hvn_opt_program_t s_program = {
    .name = S_NAME,
    .summary = "Keep every compute node in SQLite or PostgreSQL, queryable in SQL, over HTTP\n"
               "and as Prometheus metrics.",
    .epilogue = "Tables: compute_nodes (one row per live node), compute_node_events (one row\n"
                "per notification), publishers, hvn_meta. See docs/index.md.\n"
                "Exit status: 0 when stopped by SIGINT/SIGTERM, 1 on a fatal error, 2 on bad\n"
                "usage.",
    .options = s_options};

//  What runs
typedef struct {
    hvn_replica_opts_t ropts;            //  How the replica is made (again)
    hvn_index_replay_opts_t replay_opts; //  How the rings are asked
    hvn_replica_t *replica;              //  The fleet
    hvn_index_t *index;                  //  Its writer
    hvn_db_t *db;                        //  The writer's connection
    hvn_index_replay_t *replay;          //  What the database had recorded, until replayed
    bool replay_due;                     //  The replica's first snapshot was applied
    hvn_replica_stats_t retired;         //  Counters of the replicas replaced so far
    hvn_index_api_t *api;                //  The HTTP API, or NULL
    hvn_index_page_t *page;              //  The live page (with the API), or NULL
} s_run_t;

//  Returns the view's node of uuid (the hvn_index_get_fn).
static const hvn_replica_node_t *s_view_get(const char *uuid, void *arg)
{
    return hvn_replica_get(((s_run_t *)arg)->replica, uuid);
}

//  Returns nothing; hands a committed row to the live page (the
//  hvn_index_committed_fn).
static void s_committed(const char *uuid, void *arg)
{
    hvn_index_page_changed((hvn_index_page_t *)arg, uuid);
}

//  Returns nothing; hands a change of the view to the writer (the
//  hvn_replica_fn).
static void s_on_change(const hvn_replica_event_t *event, void *arg)
{
    s_run_t *run = arg;
    if (run->index)
        hvn_index_apply(run->index, event);
    if (event->change == HVN_REPLICA_REPLACED) {
        zsys_info("snapshot applied: %zu nodes", hvn_replica_size(run->replica));
        run->replay_due = run->replay != NULL;
    }
}

//  Returns 0 after making the replica, and reading what the database had
//  recorded for the replay after its first snapshot; -1 (logged).
static int s_replica_start(s_run_t *run)
{
    run->replay = hvn_index_replay_new(&run->replay_opts, run->db);
    run->replay_due = false;
    run->replica = hvn_replica_new(&run->ropts);
    return run->replica ? 0 : -1;
}

//  Returns nothing; checks the options that span several.
static void s_check_args(size_t *brokers)
{
    size_t connects = 0, services = 0;
    while (s_connect[connects])
        connects++;
    while (s_service[services])
        services++;
    if (connects == 0 && services == 0) {
        s_connect[0] = "tcp://127.0.0.1:5562";
        s_service[0] = "tcp://127.0.0.1:5563";
        connects = services = 1;
    }
    if (connects != services)
        hvn_opt_fail(&s_program, "give one --service per --connect (%zu --connect, %zu --service)",
                     connects, services);
    if (!s_curve_secret != !s_server_key)
        hvn_opt_fail(&s_program, "--curve-secret and --server-key go together");
    *brokers = connects;
}

//  Returns 0 when everything was set up, -1 (logged) otherwise.
static int s_start(s_run_t *run, size_t brokers, const char *target)
{
    char err[600];
    run->db = hvn_db_open(target, false, err, sizeof(err));
    if (!run->db) {
        zsys_error("%s", err);
        return -1;
    }
    run->ropts = (hvn_replica_opts_t){.backends = s_connect,
                                      .services = s_service,
                                      .broker_count = brokers,
                                      .curve_secret = s_curve_secret,
                                      .curve_server = s_server_key,
                                      .heartbeat_ms = (int)s_heartbeat_ms,
                                      .fn = s_on_change,
                                      .arg = run};
    run->replay_opts = (hvn_index_replay_opts_t){.backends = s_connect,
                                                 .services = s_service,
                                                 .broker_count = brokers,
                                                 .curve_secret = s_curve_secret,
                                                 .curve_server = s_server_key};
    if (s_replica_start(run) != 0)
        return -1;
    if (!s_no_http && !(run->page = hvn_index_page_new(NULL)))
        return -1;
    hvn_index_opts_t iopts = {.db = run->db,
                              .get = s_view_get,
                              .arg = run,
                              .commit_ms = (int)s_commit_ms,
                              .retention_days = (int)s_retention_days,
                              .committed = run->page ? s_committed : NULL,
                              .committed_arg = run->page};
    run->index = hvn_index_new(&iopts);
    if (!run->index)
        return -1;
    if (!s_no_http) {
        hvn_index_api_opts_t aopts = {.address = s_http, .db_target = target, .page = run->page};
        run->api = hvn_index_api_new(&aopts, err, sizeof(err));
        if (!run->api) {
            zsys_error("%s", err);
            return -1;
        }
        zsys_info("indexing into %s; HTTP on %s", target, s_http);
    } else
        zsys_info("indexing into %s", target);
    return 0;
}

//  Returns nothing; hands the counters to the HTTP API.
static void s_publish(s_run_t *run)
{
    hvn_index_api_status_t status = {.synced = hvn_replica_synced(run->replica)};
    hvn_replica_stats(run->replica, &status.replica);
    status.replica.losses += run->retired.losses; //  Counters never go back
    status.replica.repaired += run->retired.repaired;
    hvn_index_stats(run->index, &status.index);
    hvn_index_api_publish(run->api, &status);
}

//  Returns 0 after replacing the replica by a new one, whose first
//  snapshot writes every row again (the database was made again); -1.
static int s_resnapshot(s_run_t *run)
{
    hvn_replica_stats_t st;
    hvn_replica_stats(run->replica, &st);
    run->retired.losses += st.losses;
    run->retired.repaired += st.repaired;
    hvn_replica_destroy(&run->replica);
    hvn_index_replay_destroy(&run->replay);
    return s_replica_start(run);
}

//  Returns nothing; follows the fleet until interrupted.
static void s_follow(s_run_t *run)
{
    while (!zsys_interrupted) {
        int wait_ms = hvn_index_tick(run->index);
        if (hvn_index_resnapshot(run->index) && s_resnapshot(run) != 0)
            break;
        if (run->api)
            s_publish(run);
        if (run->page) {
            int page_ms = hvn_index_page_tick(run->page, s_view_get, run);
            wait_ms = page_ms < wait_ms ? page_ms : wait_ms;
        }
        //  A batch waiting: take what input waits, and commit when there is none
        bool eager = hvn_index_eager(run->index);
        int handled = hvn_replica_poll(run->replica, eager ? 0 : wait_ms);
        if (handled < 0)
            break;
        if (run->replay_due) { //  Before the first snapshot's batch is committed
            hvn_index_replay_run(run->replay, run->replica, run->index);
            hvn_index_replay_destroy(&run->replay);
            run->replay_due = false;
        }
        if (handled == 0 && (eager || hvn_index_eager(run->index)))
            hvn_index_flush(run->index);
    }
    hvn_index_flush(run->index);
    hvn_index_stats_t st;
    hvn_index_stats(run->index, &st);
    zsys_info("index: %" PRIu64 " notifications, %" PRIu64 " event rows and %" PRIu64
              " node rows written in %" PRIu64 " commits (%.1f ms committing on average), "
              "%" PRIu64 " repairs, %" PRIu64 " event rows dropped, %" PRIu64 " database errors",
              st.notifications, st.events_written, st.rows_written, st.commits,
              st.commits ? (double)st.commit_us_sum / 1000.0 / (double)st.commits : 0.0,
              st.repairs, st.events_dropped, st.db_errors);
}

int main(int argc, char *argv[])
{
    zsys_init();
    zsys_set_logident(S_NAME);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    hvn_opt_parse(&s_program, argc, argv);
    size_t brokers;
    s_check_args(&brokers);
    char target[4096];
    if (s_db)
        snprintf(target, sizeof(target), "%s", s_db);
    else if (s_state_dir)
        snprintf(target, sizeof(target), "%s/fleet.db", s_state_dir);
    else
        snprintf(target, sizeof(target), "%s", S_DEFAULT_DB);
    s_run_t run = {0};
    int code = s_start(&run, brokers, target) == 0 ? 0 : 1;
    if (code == 0)
        s_follow(&run);
    hvn_index_api_destroy(&run.api);
    hvn_index_page_destroy(&run.page);
    hvn_index_destroy(&run.index);
    hvn_index_replay_destroy(&run.replay);
    hvn_replica_destroy(&run.replica);
    hvn_db_destroy(&run.db);
    return code;
}
