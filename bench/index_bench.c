/*  index_bench.c — hvn-index's writer and API against a bare SQLite loop.

        bench_index [--nodes N] [--updates U] [--dir DIR] [--smoke]

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
    socket; p50 and p99.
*/
#include "bench_common.h"

#include <arpa/inet.h>
#include <czmq.h>
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
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;"
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
        sqlite3_bind_int64(up, 1, d->id);
        sqlite3_bind_text(up, 2, d->uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 3, d->host, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 4, d->vcpus);
        sqlite3_bind_int64(up, 5, d->memory_mb);
        sqlite3_bind_int64(up, 6, d->local_gb);
        sqlite3_bind_int64(up, 7, d->vcpus_used);
        sqlite3_bind_int64(up, 8, d->memory_mb_used);
        sqlite3_bind_int64(up, 9, d->local_gb_used);
        sqlite3_bind_text(up, 10, d->hypervisor_type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 11, d->hypervisor_version);
        sqlite3_bind_text(up, 12, d->hypervisor_hostname, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 13, d->free_ram_mb);
        sqlite3_bind_int64(up, 14, d->free_disk_gb);
        sqlite3_bind_int64(up, 15, d->current_workload);
        sqlite3_bind_int64(up, 16, d->running_vms);
        sqlite3_bind_int64(up, 17, d->disk_available_least);
        sqlite3_bind_text(up, 18, d->host_ip, -1, SQLITE_STATIC);
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

//  Returns nothing; prints p50 and p99 of count GETs of path.
static void s_api(int port, const char *what, const char *path, int count, double target_ms)
{
    double *ms = calloc((size_t)count, sizeof(double));
    size_t size = 0;
    for (int i = 0; i < count; i++)
        ms[i] = s_get_ms(port, path, &size);
    double p50 = bc_median(ms, count); //  Sorts
    double p99 = bc_quantile(ms, count, 0.99);
    printf("| %s | p50 %.2f ms, p99 %.2f ms (%zu bytes) | p99 <= %.0f ms | %s |\n", what, p50, p99,
           size, target_ms, p99 <= target_ms ? "yes" : "no");
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

//  Returns nothing; prints the p50 and p99 of count changes' freshness.
static void s_freshness(int count)
{
    char tmp[] = "/tmp/bench-fresh-XXXXXX";
    s_must(mkdtemp(tmp) != NULL, "mkdtemp");
    char fe[128], be[128], svc[128], path[128];
    snprintf(fe, sizeof(fe), "ipc://%s/fe", tmp);
    snprintf(be, sizeof(be), "ipc://%s/be", tmp);
    snprintf(svc, sizeof(svc), "ipc://%s/svc", tmp);
    snprintf(path, sizeof(path), "%s/fleet.db", tmp);
    const char *bargs[] = {"--frontend", fe, "--backend", be, "--service", svc, NULL};
    pid_t broker = bc_spawn("hvn-broker", bargs);
    const char *iargs[] = {"--connect", be, "--service", svc, "--db", path, "--no-http", NULL};
    pid_t index = bc_spawn("hvn-index", iargs);
    hvn_publisher_opts_t popts = {.endpoint = fe, .host = "bench-fresh"};
    hvn_publisher_t *pub = hvn_publisher_new(&popts);
    s_must(broker > 0 && index > 0 && pub, "starting the broker, hvn-index and a publisher");
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
    bc_stop(index, SIGTERM, 5000, NULL);
    bc_stop(broker, SIGTERM, 5000, NULL);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    s_must(system(cmd) == 0, "removing the temp dir");
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
        else if (strcmp(argv[i], "--smoke") == 0)
            smoke = true;
        else {
            fprintf(stderr, "usage: bench_index [--nodes N] [--updates U] [--dir DIR] [--smoke]\n");
            return 2;
        }
    }
    if (smoke)
        nodes = 2000, updates = 2000;
    if (nodes < 1 || updates < 0)
        return 2;
    zsys_init();
    zsys_handler_set(NULL); //  SIGINT and SIGTERM end the benchmark
    zsys_set_logstream(NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_stream_make();
    printf("| benchmark | figure | target | met |\n|---|---|---|---|\n");

    s_freshness(smoke ? 10 : 200);

    hvn_replica_node_t *initial = malloc((size_t)nodes * sizeof(*initial));
    memcpy(initial, view, (size_t)nodes * sizeof(*initial));
    s_rate_t bare = s_bare();
    memcpy(view, initial, (size_t)nodes * sizeof(*initial));
    char err[512];
    const char *path = s_fresh("index");
    char index_path[512];
    snprintf(index_path, sizeof(index_path), "%s", path);
    hvn_db_t *db = hvn_db_open(index_path, false, err, sizeof(err));
    s_must(db != NULL, "opening the index's database");
    s_rate_t writer = s_writer(db);
    printf("| ingest, %d nodes, %d notifications, per CPU second of the writing thread | "
           "hvn-index %.0f/s, bare SQLite loop %.0f/s, ratio %.2f | >= 0.8 | %s |\n",
           nodes, nodes + updates, writer.cpu, bare.cpu, writer.cpu / bare.cpu,
           writer.cpu / bare.cpu >= 0.8 ? "yes" : "no");
    printf("| the same, per wall-clock second | hvn-index %.0f/s, bare SQLite loop %.0f/s, "
           "ratio %.2f | | |\n",
           writer.wall, bare.wall, writer.wall / bare.wall);

    double restart_cpu, fresh_cpu;
    double restart = s_resync(db, &restart_cpu);
    hvn_db_t *empty = hvn_db_open(s_fresh("resync"), false, err, sizeof(err));
    double fresh = s_resync(empty, &fresh_cpu);
    hvn_db_destroy(&empty);
    printf("| resync of %d nodes (one transaction) | %.2f s (%.2f s CPU) into the same rows, "
           "%.2f s (%.2f s CPU) into an empty database | <= 3 s | %s |\n",
           nodes, restart, restart_cpu, fresh, fresh_cpu,
           restart <= 3 && fresh <= 3 ? "yes" : "no");
    hvn_db_destroy(&db);

    int port = bc_free_port();
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    hvn_index_api_opts_t aopts = {.address = address, .db_target = index_path};
    hvn_index_api_t *api = hvn_index_api_new(&aopts, err, sizeof(err));
    s_must(api, "api");
    s_api(port, "GET /v1/compute_nodes?running_vms__gt=10&limit=100",
          "/v1/compute_nodes?running_vms__gt=10&limit=100", smoke ? 20 : S_API_GETS, 10);
    hvn_index_api_destroy(&api);

    //  /metrics over 10 000 nodes: a database holding the first 10 000
    int metrics_nodes = nodes < 10000 ? nodes : 10000;
    int saved = nodes;
    nodes = metrics_nodes;
    hvn_db_t *mdb = hvn_db_open(s_fresh("metrics"), false, err, sizeof(err));
    char mpath[512];
    snprintf(mpath, sizeof(mpath), "%s", s_fresh("metrics"));
    hvn_db_destroy(&mdb);
    mdb = hvn_db_open(mpath, false, err, sizeof(err));
    double unused;
    s_resync(mdb, &unused);
    hvn_db_destroy(&mdb);
    nodes = saved;
    aopts.db_target = mpath;
    api = hvn_index_api_new(&aopts, err, sizeof(err));
    s_must(api, "api");
    char what[64];
    snprintf(what, sizeof(what), "GET /metrics, %d nodes", metrics_nodes);
    s_api(port, what, "/metrics", smoke ? 2 : S_METRICS_GETS, 200);
    hvn_index_api_destroy(&api);
    const char *names[] = {"bare", "index", "resync", "metrics"};
    for (size_t i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s", s_fresh(names[i]));
    }
    free(initial);
    free(view);
    free(message_ids);
    free(targets);
    return 0;
}
