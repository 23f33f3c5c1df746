/*  index_bench.c — hvn-index's writer and API against a bare SQLite loop.

        bench_index [--nodes N] [--updates U] [--dir DIR] [--db URI]
                    [--only freshness,ingest,resync,api,metrics,sustained]
                    [--rate R] [--seconds S] [--smoke]

    Ingest: the same stream (N creates, then U updates of random nodes) is
    written twice into fresh SQLite files in WAL mode with the same tables
    and indexes: once by a bare loop written here with SQLite alone
    (prepared upsert of the row plus an event row each, a transaction per
    50 ms), once by hvn-index's writer (hvn_index_apply per notification,
    hvn_index_tick after every 256, as after a replica poll). The ratio is
    the writer's rate over the bare loop's, in the same run.

    Resync: N nodes applied as one snapshot (one transaction), into the
    database that already holds them (a restart) and into an empty one.

    Freshness: hvn-broker and hvn-index as processes, a libhvn publisher in
    this process; each change reported is timed until a reader of the
    database (its own SQLite connection, polling every 0.5 ms) sees it.

    API: hvn-index's HTTP API in this process on the ingest's database:
    GET /v1/compute_nodes with one indexed filter and limit=100, and
    /metrics over the first 10 000 nodes, each timed over a loopback
    socket; p50 and p99 (and the first /metrics apart: it builds what the
    later ones may reuse).

    --db postgresql://... runs the writer's ingest, the resync and the API
    on that PostgreSQL database (its tables are dropped first) instead of
    SQLite files; those figures carry no target and no bare loop.
    Sustained (only when --only names it): hvn-broker and hvn-index as
    processes, 20 libhvn publishers of 50 nodes each in this process
    reporting changes at --rate notifications/s (20 000) for --seconds
    (60); every second a reader of the database counts the event rows
    (max(id)) against the notifications the publishers sent: the lag,
    its largest value, and at the end (after up to 60 s to catch up) the
    notifications never recorded.

    --only runs the named parts (and what they need: api and metrics fill
    their database as the resync does); every row printed ends with its
    target and whether it was met.
*/
#include "bench_common.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hvn_db.h"
#include "hvn_index.h"
#include "hvn_index_api.h"
#include "hvn_publisher.h"

#define S_BATCH_MS 50   //  Both variants: a transaction per 50 ms
#define S_POLL 256      //  Notifications per writer tick
#define S_API_GETS 1000 //  Requests timed
#define S_METRICS_GETS 20

static int nodes = 100000;   //  --nodes
static int updates = 200000; //  --updates
static const char *dir = "/tmp";
static const char *pg_uri = NULL; //  --db: PostgreSQL instead of SQLite files
static const char *only = NULL;   //  --only: the parts to run
static int rate = 20000;          //  --rate: notifications/s of the sustained part
static int seconds = 60;          //  --seconds: its length

static hvn_replica_node_t *view; //  The fleet (the replica's view)
static char (*message_ids)[37];  //  One per notification, shared by both variants
static int *targets;             //  Node of each notification

//  Returns nothing; ends the program when ok is false.
static void s_must(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_index: %s failed\n", what);
        exit(1);
    }
}

//  Returns the calling thread's CPU time in ns (user and system: SQLite's
//  reads and writes of tmpfs pages are system time of this thread).
static int64_t s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  A rate, by the wall clock and by the CPU time of the thread that did the work
typedef struct {
    double wall; //  Per wall-clock second
    double cpu;  //  Per CPU second
} s_rate_t;

// --------------------------------------------------------------------------
//  The stream

//  Returns nothing; makes the fleet, the message ids and the stream.
static void s_stream_make(void)
{
    view = calloc((size_t)nodes, sizeof(*view));
    int total = nodes + updates;
    message_ids = calloc((size_t)total, sizeof(*message_ids));
    targets = calloc((size_t)total, sizeof(*targets));
    s_must(view && message_ids && targets, "view && message_ids && targets");
    for (int i = 0; i < nodes; i++) {
        char host[32];
        snprintf(host, sizeof(host), "cmp-%06d", i);
        bc_node(&view[i].node, i, host);
        snprintf(view[i].host, sizeof(view[i].host), "%s", host);
        hvn_timestamp_now(view[i].timestamp);
    }
    for (int k = 0; k < total; k++) {
        hvn_uuid4_str(message_ids[k]);
        targets[k] = k < nodes ? k : (int)(random() % nodes);
    }
}

//  Returns the path of a fresh database file named name (static buffer).
static const char *s_fresh(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/bench-index-%d-%s.db", dir, (int)getpid(), name);
    char wal[600];
    unlink(path);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    return path;
}

// --------------------------------------------------------------------------
//  The bare loop: SQLite alone, the SQL written by hand

static const char *s_bare_ddl =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;"
    "PRAGMA wal_autocheckpoint = 16384;"
    "CREATE TABLE compute_nodes (id INTEGER NOT NULL, uuid TEXT PRIMARY KEY, host TEXT,"
    " vcpus INTEGER NOT NULL, memory_mb INTEGER NOT NULL, local_gb INTEGER NOT NULL,"
    " vcpus_used INTEGER NOT NULL, memory_mb_used INTEGER NOT NULL,"
    " local_gb_used INTEGER NOT NULL, hypervisor_type TEXT NOT NULL,"
    " hypervisor_version INTEGER NOT NULL, hypervisor_hostname TEXT, free_ram_mb INTEGER,"
    " free_disk_gb INTEGER, current_workload INTEGER, running_vms INTEGER,"
    " disk_available_least INTEGER, host_ip TEXT, created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL, publisher_id TEXT);"
    "CREATE INDEX n1 ON compute_nodes (host); CREATE INDEX n2 ON compute_nodes "
    "(hypervisor_hostname); CREATE INDEX n3 ON compute_nodes (running_vms);"
    "CREATE INDEX n4 ON compute_nodes (free_ram_mb); CREATE INDEX n5 ON compute_nodes "
    "(free_disk_gb); CREATE INDEX n6 ON compute_nodes (vcpus_used);"
    "CREATE TABLE compute_node_events (id INTEGER PRIMARY KEY, timestamp TEXT NOT NULL,"
    " event_type TEXT NOT NULL, uuid TEXT NOT NULL, host TEXT, message_id TEXT UNIQUE,"
    " seq INTEGER, instance TEXT, source TEXT NOT NULL, payload TEXT NOT NULL);"
    "CREATE INDEX e1 ON compute_node_events (timestamp);"
    "CREATE INDEX e2 ON compute_node_events (uuid);";

static const char *s_bare_upsert =
    "INSERT INTO compute_nodes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
    " ?14, ?15, ?16, ?17, ?18, ?19, ?19, ?20) ON CONFLICT (uuid) DO UPDATE SET"
    " id = ?1, host = ?3, vcpus = ?4, memory_mb = ?5, local_gb = ?6, vcpus_used = ?7,"
    " memory_mb_used = ?8, local_gb_used = ?9, hypervisor_type = ?10,"
    " hypervisor_version = ?11, hypervisor_hostname = ?12, free_ram_mb = ?13,"
    " free_disk_gb = ?14, current_workload = ?15, running_vms = ?16,"
    " disk_available_least = ?17, host_ip = ?18, updated_at = ?19, publisher_id = ?20";

static const char *s_bare_event =
    "INSERT INTO compute_node_events (timestamp, event_type, uuid, host, message_id, seq,"
    " instance, source, payload) VALUES (?, ?, ?, ?, ?, ?, ?, 'notification', ?)"
    " ON CONFLICT (message_id) DO NOTHING";

//  Returns the notifications per second of the bare loop.
static s_rate_t s_bare(void)
{
    sqlite3 *db;
    s_must(sqlite3_open(s_fresh("bare"), &db) == SQLITE_OK,
           "sqlite3_open(s_fresh('bare'), &db) == SQ");
    s_must(sqlite3_exec(db, s_bare_ddl, NULL, NULL, NULL) == SQLITE_OK,
           "sqlite3_exec(db, s_bare_ddl, NULL, NULL,");
    sqlite3_stmt *up, *ev;
    s_must(sqlite3_prepare_v2(db, s_bare_upsert, -1, &up, NULL) == SQLITE_OK,
           "sqlite3_prepare_v2(db, s_bare_upsert, -1");
    s_must(sqlite3_prepare_v2(db, s_bare_event, -1, &ev, NULL) == SQLITE_OK,
           "sqlite3_prepare_v2(db, s_bare_event, -1,");
    int total = nodes + updates;
    int64_t start = bc_now_ns(), cpu = s_cpu_ns(), batch = -1;
    for (int k = 0; k < total; k++) {
        if (batch < 0) {
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
            batch = bc_now_ns();
        }
        hvn_replica_node_t *n = &view[targets[k]];
        const hvn_node_t *d = &n->node;
        if (k >= nodes)
            n->node.vcpus_used++;
        for (int f = 0; f < HVN_F_COUNT; f++) { //  The columns in payload order
            const char *at = (const char *)d + hvn_schema_fields[f].offset;
            if (hvn_schema_fields[f].type == HVN_TYPE_INT)
                sqlite3_bind_int64(up, f + 1, *(const int64_t *)at);
            else
                sqlite3_bind_text(up, f + 1, at, -1, SQLITE_STATIC);
        }
        sqlite3_bind_text(up, 19, n->timestamp, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 20, "nova-compute:bench", -1, SQLITE_STATIC);
        s_must(sqlite3_step(up) == SQLITE_DONE, "sqlite3_step(up) == SQLITE_DONE");
        sqlite3_reset(up);
        char payload[4096];
        snprintf(payload, sizeof(payload),
                 "{\"id\":%ld,\"uuid\":\"%s\",\"host\":\"%s\",\"vcpus\":%ld,\"memory_mb\":%ld,"
                 "\"local_gb\":%ld,\"vcpus_used\":%ld,\"memory_mb_used\":%ld,"
                 "\"local_gb_used\":%ld,\"hypervisor_type\":\"%s\",\"hypervisor_version\":%ld,"
                 "\"hypervisor_hostname\":\"%s\",\"free_ram_mb\":%ld,\"free_disk_gb\":%ld,"
                 "\"current_workload\":%ld,\"running_vms\":%ld,\"disk_available_least\":%ld,"
                 "\"host_ip\":\"%s\"}",
                 (long)d->id, d->uuid, d->host, (long)d->vcpus, (long)d->memory_mb,
                 (long)d->local_gb, (long)d->vcpus_used, (long)d->memory_mb_used,
                 (long)d->local_gb_used, d->hypervisor_type, (long)d->hypervisor_version,
                 d->hypervisor_hostname, (long)d->free_ram_mb, (long)d->free_disk_gb,
                 (long)d->current_workload, (long)d->running_vms, (long)d->disk_available_least,
                 d->host_ip);
        sqlite3_bind_text(ev, 1, n->timestamp, -1, SQLITE_STATIC);
        sqlite3_bind_text(ev, 2, k < nodes ? "compute_node.create" : "compute_node.update", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(ev, 3, d->uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(ev, 4, n->host, -1, SQLITE_STATIC);
        sqlite3_bind_text(ev, 5, message_ids[k], -1, SQLITE_STATIC);
        sqlite3_bind_int64(ev, 6, k + 1);
        sqlite3_bind_text(ev, 7, "01010101-0101-0101-0101-010101010101", -1, SQLITE_STATIC);
        sqlite3_bind_text(ev, 8, payload, -1, SQLITE_STATIC);
        s_must(sqlite3_step(ev) == SQLITE_DONE, "sqlite3_step(ev) == SQLITE_DONE");
        sqlite3_reset(ev);
        if ((k & 255) == 255 && bc_now_ns() - batch >= S_BATCH_MS * 1000000LL) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            batch = -1;
        }
    }
    if (batch >= 0)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    s_rate_t rate = {total / ((bc_now_ns() - start) / 1e9), total / ((s_cpu_ns() - cpu) / 1e9)};
    sqlite3_finalize(up);
    sqlite3_finalize(ev);
    sqlite3_close(db);
    return rate;
}

// --------------------------------------------------------------------------
//  hvn-index's writer

//  Returns the view's node of uuid (its number is in the uuid's last 12 digits).
static const hvn_replica_node_t *s_get(const char *uuid, void *arg)
{
    (void)arg;
    long i = strtol(uuid + 24, NULL, 16);
    return i >= 0 && i < nodes && strcmp(view[i].node.uuid, uuid) == 0 ? &view[i] : NULL;
}

//  Returns nothing; gives the writer notification k as the replica would.
static void s_apply(hvn_index_t *index, int k, bool from_snapshot, bool update)
{
    static hvn_msg_t msg;
    hvn_replica_node_t *n = &view[targets[k]];
    if (update)
        n->node.vcpus_used++;
    msg.header.kind = HVN_KIND_NOTIFICATION;
    msg.header.seq = (uint64_t)k + 1;
    memset(msg.header.instance, 1, 16);
    n->seq = msg.header.seq; //  As the replica keeps them
    memset(n->instance, 1, 16);
    msg.event = k < nodes ? HVN_EVENT_CREATE : HVN_EVENT_UPDATE;
    msg.node = n->node;
    snprintf(msg.host, sizeof(msg.host), "%s", n->host);
    memcpy(msg.timestamp, n->timestamp, sizeof(msg.timestamp));
    snprintf(msg.publisher_id, sizeof(msg.publisher_id), "nova-compute:%.64s", n->host);
    memcpy(msg.message_id, message_ids[k], sizeof(msg.message_id));
    hvn_replica_event_t event = {k < nodes ? HVN_REPLICA_CREATED : HVN_REPLICA_UPDATED, n, &msg,
                                 from_snapshot};
    hvn_index_apply(index, &event);
}

//  Returns the notifications per second of hvn-index's writer into db.
static s_rate_t s_writer(hvn_db_t *db)
{
    hvn_index_opts_t opts = {.db = db, .get = s_get, .commit_ms = S_BATCH_MS};
    hvn_index_t *index = hvn_index_new(&opts);
    int total = nodes + updates;
    int64_t start = bc_now_ns(), cpu = s_cpu_ns();
    for (int k = 0; k < total; k++) {
        s_apply(index, k, false, k >= nodes);
        if ((k % S_POLL) == S_POLL - 1)
            hvn_index_tick(index);
    }
    s_must(hvn_index_flush(index) == 0, "hvn_index_flush(index) == 0");
    s_rate_t rate = {total / ((bc_now_ns() - start) / 1e9), total / ((s_cpu_ns() - cpu) / 1e9)};
    hvn_index_destroy(&index);
    return rate;
}

//  Returns the seconds to apply the whole fleet as one snapshot into db;
//  the CPU seconds it took in *cpu_s.
static double s_resync(hvn_db_t *db, double *cpu_s)
{
    hvn_index_opts_t opts = {.db = db, .get = s_get};
    hvn_index_t *index = hvn_index_new(&opts);
    int64_t start = bc_now_ns(), cpu = s_cpu_ns();
    for (int k = 0; k < nodes; k++)
        s_apply(index, k, true, false);
    hvn_replica_event_t replaced = {.change = HVN_REPLICA_REPLACED, .from_snapshot = true};
    hvn_index_apply(index, &replaced);
    s_must(hvn_index_flush(index) == 0, "hvn_index_flush(index) == 0");
    double s = (bc_now_ns() - start) / 1e9;
    *cpu_s = (s_cpu_ns() - cpu) / 1e9;
    hvn_index_destroy(&index);
    return s;
}

// --------------------------------------------------------------------------
//  The API

//  Returns the ms one GET of path took on port, or -1; the body's bytes in *size.
static double s_get_ms(int port, const char *path, size_t *size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t start = bc_now_ns();
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int len =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    ssize_t n;
    *size = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        *size += (size_t)n;
    close(fd);
    return (bc_now_ns() - start) / 1e6;
}

//  Returns nothing; prints the first, p50 and p99 of count GETs of path
//  (target_ms 0: none).
static void s_api(int port, const char *what, const char *path, int count, double target_ms)
{
    double *ms = calloc((size_t)count, sizeof(double));
    size_t size = 0;
    for (int i = 0; i < count; i++)
        ms[i] = s_get_ms(port, path, &size);
    double first = ms[0];
    double p50 = bc_median(ms, count); //  Sorts
    double p99 = bc_quantile(ms, count, 0.99);
    char target[32] = "(none)";
    if (target_ms > 0)
        snprintf(target, sizeof(target), "p99 <= %.0f ms", target_ms);
    printf("| %s%s | first %.2f ms, p50 %.2f ms, p99 %.2f ms over %d (%zu bytes) | %s | %s |\n",
           what, pg_uri ? ", PostgreSQL" : "", first, p50, p99, count, size, target,
           target_ms <= 0     ? ""
           : p99 <= target_ms ? "yes"
                              : "no");
    free(ms);
}

// --------------------------------------------------------------------------
//  Freshness, end to end

//  Returns the vcpus_used the reader sees for uuid, or -1.
static int64_t s_read_vcpus(sqlite3_stmt *stmt)
{
    int64_t v = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_reset(stmt);
    return v;
}

//  Returns the ms until the reader sees vcpus_used == want, or -1 after 5 s.
static double s_wait_visible(sqlite3 **db, sqlite3_stmt **stmt, const char *path, int64_t want,
                             int64_t since)
{
    while (bc_now_ns() - since < 5000000000LL) {
        if (!*stmt) {
            if (!*db && sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                sqlite3_close(*db);
                *db = NULL;
            }
            if (*db)
                sqlite3_prepare_v2(*db,
                                   "SELECT vcpus_used FROM compute_nodes WHERE host = "
                                   "'bench-fresh'",
                                   -1, stmt, NULL);
        }
        if (*stmt && s_read_vcpus(*stmt) == want)
            return (bc_now_ns() - since) / 1e6;
        usleep(500);
    }
    return -1;
}

//  A broker and hvn-index as processes, on ipc endpoints in a temp dir
typedef struct {
    char tmp[64];   //  The temp dir
    char fe[128];   //  The broker's frontend
    char be[128];   //  Its backend
    char svc[128];  //  Its service socket
    char path[128]; //  hvn-index's database
    pid_t broker;   //  The broker's pid
    pid_t index;    //  hvn-index's pid
} s_pair_t;

//  Returns nothing; starts the pair in a new temp dir named after what
//  (asserted started).
static void s_pair_start(s_pair_t *pair, const char *what)
{
    snprintf(pair->tmp, sizeof(pair->tmp), "%s/bench-%s-XXXXXX", dir, what);
    s_must(mkdtemp(pair->tmp) != NULL, "mkdtemp");
    snprintf(pair->fe, sizeof(pair->fe), "ipc://%s/fe", pair->tmp);
    snprintf(pair->be, sizeof(pair->be), "ipc://%s/be", pair->tmp);
    snprintf(pair->svc, sizeof(pair->svc), "ipc://%s/svc", pair->tmp);
    snprintf(pair->path, sizeof(pair->path), "%s/fleet.db", pair->tmp);
    const char *bargs[] = {"--frontend", pair->fe,  "--backend", pair->be,
                           "--service",  pair->svc, NULL};
    pair->broker = bc_spawn("hvn-broker", bargs);
    const char *iargs[] = {"--connect", pair->be,   "--service", pair->svc,
                           "--db",      pair->path, "--no-http", NULL};
    pair->index = bc_spawn("hvn-index", iargs);
    s_must(pair->broker > 0 && pair->index > 0, "starting the broker and hvn-index");
}

//  Returns nothing; stops the pair and removes its temp dir; the CPU
//  seconds each used go to cpu_s[0] (hvn-index) and cpu_s[1] (the
//  broker) when cpu_s is not NULL.
static void s_pair_stop(s_pair_t *pair, double *cpu_s)
{
    bc_stop(pair->index, SIGTERM, 5000, cpu_s ? &cpu_s[0] : NULL);
    bc_stop(pair->broker, SIGTERM, 5000, cpu_s ? &cpu_s[1] : NULL);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pair->tmp);
    s_must(system(cmd) == 0, "removing the temp dir");
}

//  Returns nothing; prints the p50 and p99 of count changes' freshness.
static void s_freshness(int count)
{
    s_pair_t pair;
    s_pair_start(&pair, "fresh");
    const char *path = pair.path;
    hvn_publisher_opts_t popts = {.endpoint = pair.fe, .host = "bench-fresh"};
    hvn_publisher_t *pub = hvn_publisher_new(&popts);
    s_must(pub != NULL, "starting a publisher");
    hvn_node_t node;
    bc_node(&node, 0, "bench-fresh");
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    node.vcpus_used = 1;
    hvn_publisher_report(pub, &node);
    s_must(s_wait_visible(&db, &stmt, path, 1, bc_now_ns()) >= 0, "the first report");
    double *ms = calloc((size_t)count, sizeof(double));
    int seen = 0;
    for (int i = 0; i < count; i++) {
        node.vcpus_used = 2 + i;
        int64_t start = bc_now_ns();
        hvn_publisher_report(pub, &node);
        double t = s_wait_visible(&db, &stmt, path, node.vcpus_used, start);
        if (t >= 0)
            ms[seen++] = t;
        usleep(10000 + (unsigned)(random() % 20000)); //  Changes at random phases of the batch
    }
    double p50 = bc_median(ms, seen);
    double p99 = bc_quantile(ms, seen, 0.99);
    printf("| freshness: report() on a host to visible to a database reader, %d changes | "
           "p50 %.1f ms, p99 %.1f ms, %d not seen in 5 s | p99 <= 100 ms | %s |\n",
           count, p50, p99, count - seen, p99 <= 100 && seen == count ? "yes" : "no");
    free(ms);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    hvn_publisher_destroy(&pub);
    s_pair_stop(&pair, NULL);
}

// --------------------------------------------------------------------------
//  Sustained rate

#define S_PUBS 20      //  Publishers (hosts) of the sustained part
#define S_PUB_NODES 50 //  Nodes each

//  Returns the highest event row id the reader db sees (0 none, -1 error).
static int64_t s_events_max(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int64_t id = -1;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM compute_node_events", -1, &stmt,
                           NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        id = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return id;
}

//  Returns the notifications the publishers sent so far.
static uint64_t s_sent(hvn_publisher_t **pubs)
{
    uint64_t sent = 0;
    for (int p = 0; p < S_PUBS; p++) {
        hvn_publisher_stats_t st;
        hvn_publisher_stats(pubs[p], &st);
        sent += st.sent;
    }
    return sent;
}

//  Returns nothing; prints how hvn-index keeps up with rate notifications/s.
static void s_sustained(void)
{
    s_pair_t pair;
    s_pair_start(&pair, "sustained");
    const char *path = pair.path, *fe = pair.fe;
    hvn_publisher_t *pubs[S_PUBS];
    static hvn_node_t fleet[S_PUBS * S_PUB_NODES];
    for (int p = 0; p < S_PUBS; p++) {
        char host[32];
        snprintf(host, sizeof(host), "bench-sus-%02d", p);
        hvn_publisher_opts_t popts = {.endpoint = fe, .host = host};
        pubs[p] = hvn_publisher_new(&popts);
        s_must(pubs[p] != NULL, "a publisher");
        for (int n = 0; n < S_PUB_NODES; n++)
            bc_node(&fleet[p * S_PUB_NODES + n], p * S_PUB_NODES + n, host);
    }
    //  The index is following once a first report is a row a reader sees
    sqlite3 *db = NULL;
    hvn_publisher_report(pubs[0], &fleet[0]);
    int64_t deadline = bc_now_ns() + 10000000000LL;
    while ((!db || s_events_max(db) < 1) && bc_now_ns() < deadline) {
        if (!db && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_close(db);
            db = NULL;
        }
        usleep(10000);
    }
    s_must(db && s_events_max(db) >= 1, "the index following");
    int64_t start = bc_now_ns(), next_sample = start + 1000000000LL;
    int64_t k = 0, max_lag = 0;
    double max_lag_s = 0;
    while (bc_now_ns() - start < (int64_t)seconds * 1000000000LL) {
        int64_t due = (int64_t)((double)(bc_now_ns() - start) / 1e9 * rate);
        for (; k < due; k++) {
            hvn_node_t *node = &fleet[k % (S_PUBS * S_PUB_NODES)];
            node->vcpus_used++;
            hvn_publisher_report(pubs[(k % (S_PUBS * S_PUB_NODES)) / S_PUB_NODES], node);
        }
        if (bc_now_ns() >= next_sample) {
            int64_t lag = (int64_t)s_sent(pubs) - s_events_max(db);
            if (lag > max_lag) {
                max_lag = lag;
                max_lag_s = (double)lag / rate;
            }
            next_sample += 1000000000LL;
        }
        usleep(1000);
    }
    double elapsed = (bc_now_ns() - start) / 1e9;
    uint64_t sent = s_sent(pubs);
    deadline = bc_now_ns() + 60000000000LL;
    int64_t recorded;
    while ((recorded = s_events_max(db)) < (int64_t)s_sent(pubs) && bc_now_ns() < deadline)
        usleep(100000);
    sent = s_sent(pubs);
    recorded = s_events_max(db);
    printf("| sustained: %d notifications/s asked for %d s, hvn-index on SQLite | %.0f/s sent "
           "(%" PRIu64 "), largest lag %" PRId64 " notifications (%.2f s at the rate), "
           "%" PRId64 " never recorded | lag bounded, none lost | %s |\n",
           rate, seconds, (double)sent / elapsed, sent, max_lag, max_lag_s,
           (int64_t)sent - recorded, recorded == (int64_t)sent ? "yes" : "no");
    sqlite3_close(db);
    for (int p = 0; p < S_PUBS; p++)
        hvn_publisher_destroy(&pubs[p]);
    double cpu[2] = {0, 0};
    s_pair_stop(&pair, cpu);
    printf("| sustained: CPU per notification, whole life of each process | hvn-index %.1f us, "
           "hvn-broker %.1f us (%.1f s and %.1f s for %" PRIu64 ") | | |\n",
           sent ? cpu[0] * 1e6 / (double)sent : 0.0, sent ? cpu[1] * 1e6 / (double)sent : 0.0,
           cpu[0], cpu[1], sent);
}

//  Returns true when part is to run (--only names it, or no --only).
static bool s_runs(const char *part)
{
    if (!only)
        return true;
    size_t len = strlen(part);
    for (const char *p = only; (p = strstr(p, part)) != NULL; p += len)
        if ((p == only || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            return true;
    return false;
}

//  Returns a fresh database for name: a new SQLite file, or the
//  PostgreSQL database emptied of the index's tables. Its target in
//  target.
static hvn_db_t *s_fresh_db(const char *name, char *target, size_t size)
{
    char err[512];
    if (pg_uri) {
        snprintf(target, size, "%s", pg_uri);
        hvn_db_t *db = hvn_db_open(pg_uri, false, err, sizeof(err));
        s_must(db != NULL, err);
        s_must(hvn_db_query(db,
                            "DROP TABLE IF EXISTS compute_nodes, compute_node_events, publishers, "
                            "hvn_meta",
                            NULL, 0, NULL, NULL) >= 0,
               "emptying the PostgreSQL database");
        hvn_db_destroy(&db);
    } else
        snprintf(target, size, "%s", s_fresh(name));
    hvn_db_t *db = hvn_db_open(target, false, err, sizeof(err));
    s_must(db != NULL, err);
    return db;
}

//  Returns nothing; prints the ingest's row(s).
static void s_ingest(hvn_db_t *db, const hvn_replica_node_t *initial)
{
    if (pg_uri) {
        s_rate_t writer = s_writer(db);
        printf("| ingest into PostgreSQL, %d nodes, %d notifications | hvn-index %.0f/s per CPU "
               "second of the writing thread, %.0f/s per wall-clock second | (none) | |\n",
               nodes, nodes + updates, writer.cpu, writer.wall);
        return;
    }
    s_rate_t bare = s_bare();
    memcpy(view, initial, (size_t)nodes * sizeof(*initial));
    s_rate_t writer = s_writer(db);
    printf("| ingest, %d nodes, %d notifications, per CPU second of the writing thread | "
           "hvn-index %.0f/s, bare SQLite loop %.0f/s, ratio %.2f | >= 0.8 | %s |\n",
           nodes, nodes + updates, writer.cpu, bare.cpu, writer.cpu / bare.cpu,
           writer.cpu / bare.cpu >= 0.8 ? "yes" : "no");
    printf("| the same, per wall-clock second | hvn-index %.0f/s, bare SQLite loop %.0f/s, "
           "ratio %.2f | | |\n",
           writer.wall, bare.wall, writer.wall / bare.wall);
}

int main(int argc, char *argv[])
{
    bool smoke = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--updates") == 0 && i + 1 < argc)
            updates = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            pg_uri = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            rate = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--smoke") == 0)
            smoke = true;
        else {
            fprintf(stderr, "usage: bench_index [--nodes N] [--updates U] [--dir DIR] [--db URI] "
                            "[--only freshness,ingest,resync,api,metrics,sustained] [--rate R] "
                            "[--seconds S] [--smoke]\n");
            return 2;
        }
    }
    if (smoke)
        nodes = 2000, updates = 2000;
    if (nodes < 1 || updates < 0 || rate < 1 || seconds < 1 ||
        (pg_uri && hvn_db_kind_of(pg_uri) != HVN_DB_POSTGRESQL))
        return 2;
    zsys_init();
    zsys_handler_set(NULL); //  SIGINT and SIGTERM end the benchmark
    zsys_set_logstream(NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_stream_make();
    printf("| benchmark | figure | target | met |\n|---|---|---|---|\n");

    if (s_runs("freshness") && !pg_uri)
        s_freshness(smoke ? 10 : 200);
    if (only && s_runs("sustained") && !pg_uri)
        s_sustained();
    if (only && !s_runs("ingest") && !s_runs("resync") && !s_runs("api") && !s_runs("metrics"))
        return 0;

    hvn_replica_node_t *initial = malloc((size_t)nodes * sizeof(*initial));
    memcpy(initial, view, (size_t)nodes * sizeof(*initial));
    char index_path[512];
    hvn_db_t *db = s_fresh_db("index", index_path, sizeof(index_path));
    if (s_runs("ingest"))
        s_ingest(db, initial);

    if (s_runs("resync") || s_runs("api")) {
        double restart_cpu, fresh_cpu;
        double fresh = 0, restart = 0;
        if (!s_runs("ingest")) { //  The API's database: the fleet, as a first fill
            s_resync(db, &fresh_cpu);
        }
        if (s_runs("resync")) {
            restart = s_resync(db, &restart_cpu);
            char target[512];
            hvn_db_t *empty = pg_uri ? NULL : s_fresh_db("resync", target, sizeof(target));
            if (pg_uri) { //  One database: the same tables emptied
                s_must(hvn_db_query(db, "DELETE FROM compute_nodes", NULL, 0, NULL, NULL) >= 0 &&
                           hvn_db_query(db, "DELETE FROM compute_node_events", NULL, 0, NULL,
                                        NULL) >= 0,
                       "emptying the tables");
                fresh = s_resync(db, &fresh_cpu);
            } else
                fresh = s_resync(empty, &fresh_cpu);
            hvn_db_destroy(&empty);
            printf("| resync of %d nodes (one transaction)%s | %.2f s (%.2f s CPU) into the same "
                   "rows, %.2f s (%.2f s CPU) into an empty database | %s | %s |\n",
                   nodes, pg_uri ? ", PostgreSQL" : "", restart, restart_cpu, fresh, fresh_cpu,
                   pg_uri ? "(none)" : "<= 3 s",
                   pg_uri                       ? ""
                   : restart <= 3 && fresh <= 3 ? "yes"
                                                : "no");
        }
    }
    hvn_db_destroy(&db);

    int port = it_port_free();
    char address[64];
    char err[512];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    hvn_index_api_opts_t aopts = {.address = address, .db_target = index_path};
    if (s_runs("api")) {
        hvn_index_api_t *api = hvn_index_api_new(&aopts, err, sizeof(err));
        s_must(api, "api");
        s_api(port, "GET /v1/compute_nodes?running_vms__gt=10&limit=100",
              "/v1/compute_nodes?running_vms__gt=10&limit=100", smoke ? 20 : S_API_GETS,
              pg_uri ? 0 : 10);
        hvn_index_api_destroy(&api);
    }

    if (s_runs("metrics")) { //  /metrics over 10 000 nodes: a database holding the first 10 000
        int metrics_nodes = nodes < 10000 ? nodes : 10000;
        int saved = nodes;
        nodes = metrics_nodes;
        char mpath[512];
        hvn_db_t *mdb = s_fresh_db("metrics", mpath, sizeof(mpath));
        double unused;
        s_resync(mdb, &unused);
        hvn_db_destroy(&mdb);
        nodes = saved;
        aopts.db_target = mpath;
        hvn_index_api_t *api = hvn_index_api_new(&aopts, err, sizeof(err));
        s_must(api, "api");
        char what[64];
        snprintf(what, sizeof(what), "GET /metrics, %d nodes", metrics_nodes);
        s_api(port, what, "/metrics", smoke ? 2 : S_METRICS_GETS, pg_uri ? 0 : 200);
        hvn_index_api_destroy(&api);
    }
    if (!pg_uri) {
        const char *names[] = {"bare", "index", "resync", "metrics"};
        for (size_t i = 0; i < 4; i++)
            s_fresh(names[i]);
    }
    free(initial);
    free(view);
    free(message_ids);
    free(targets);
    return 0;
}
