/*  chaos.c — does every replica end equal to the truth when things break?

    N publishers (libhvn, in this process) hold M nodes each and change them
    at random for T seconds, connected to one or two real hvn-broker
    processes on ipc:// endpoints in a temporary directory, while S
    subscribers follow the fleet. Meanwhile faults are injected at random:

      broker      SIGKILL of an hvn-broker process; restarted on the same
                  endpoints after a random down time (0 .. --down-ms)
      subscriber  a subscriber destroyed abruptly (its view is lost with it);
                  a new one created after a random down time
      publisher   a publisher flushed, destroyed and created again with the
                  same state directory (a new instance id), its live nodes
                  reported again and forget_missing() called; only while a
                  broker is up to flush to (otherwise deferred and counted)

    The truth is what this process told its publishers: every live node
    with its 18 fields as last reported, and which nodes are deleted. Every
    change alters at least one update-triggering field, so every report
    queues a notification that carries the whole node (PROTOCOL.md section
    3) and the truth is exactly what a correct fabric must deliver.

    At the end the faults and the changes stop, everything down is
    restarted, publishers flush, and the program waits (polling, up to
    --settle-ms) until every subscriber's replica is synced with no repair
    pending and its view equals the truth field for field (no node missing,
    none extra, none different), every broker's snapshot equals it too, and
    all this has held for four heartbeat intervals with no replica
    detecting a new loss (a fault made just before the end is noticed
    late). It prints a summary and exits 0 only when that happened (PASS)
    and, for every subscriber, the losses it detected equal the losses it
    repaired.

    The seed fixes the sequence of random choices (nodes, values, fault
    kinds and targets); their timing follows the clock, so two runs with
    one seed are alike, not identical.
*/
#include "hvn_opt.h"
#include "support_proc.h"
#include <hvn_publisher.h>
#include <hvn_replica.h>
#include <hvn_subscriber.h>

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PROG "chaos"
#define S_MAX_BROKERS 2
#define S_MAX_REPORT 10            //  Mismatches printed per view
#define S_EP_MAX 300               //  Endpoint text, bytes
#define S_SNAPSHOT_TIMEOUT_MS 2000 //  A replica's wait for each snapshot reply
#define S_PUB_LINGER_MS 3000       //  Longest a publisher restart waits to flush
#define S_BROKER_STOP_MS 30000     //  Longest wait for a broker to end when stopped

//  Fault kinds, in the order they are printed
typedef enum {
    S_FAULT_BROKER = 0,
    S_FAULT_STALL,
    S_FAULT_SUBSCRIBER,
    S_FAULT_PUBLISHER,
    S_FAULT_COUNT
} s_fault_t;

static const char *s_fault_names[S_FAULT_COUNT] = {"broker", "stall", "subscriber", "publisher"};

//  Command-line settings
typedef struct {
    int publishers;             //  Publishers in this process
    int nodes;                  //  Nodes per publisher
    int seconds;                //  Length of the chaos phase
    int brokers;                //  1 or 2 hvn-broker processes
    int subscribers;            //  Subscribers following the fleet
    uint64_t seed;              //  Random seed
    int heartbeat_ms;           //  Publishers' and brokers' heartbeat interval
    int rate;                   //  Node changes per second, all publishers
    int fault_ms;               //  Mean interval between faults
    int down_ms;                //  Longest down time of a killed component
    int settle_ms;              //  Longest wait for convergence at the end
    bool faults[S_FAULT_COUNT]; //  Kinds injected
    const char *broker_path;    //  hvn-broker program
    bool keep;                  //  Keep the temporary directory (broker logs)
    bool verbose;               //  Log every fault
} s_config_t;

//  One publisher and the nodes it owns
typedef struct {
    char host[32];        //  Topic host
    hvn_publisher_t *pub; //  NULL while restarting
    hvn_node_t *nodes;    //  config.nodes of them, as last reported
    int64_t up_at;        //  While down: when to create it again
    uint64_t sent_before; //  Notifications sent by destroyed instances
} s_publisher_t;

//  One hvn-broker process
typedef struct {
    char name[32];           //  --name
    char frontend[S_EP_MAX]; //  Endpoints, the same across restarts
    char backend[S_EP_MAX];
    char service[S_EP_MAX];
    char log_path[128]; //  Its stderr, appended across restarts
    it_proc_t *proc;    //  Its process; NULL while down
    bool stopped;       //  Stalled by SIGSTOP
    int64_t up_at;      //  While down: when to start it again
    int starts;         //  Times started
} s_broker_t;

//  One subscriber: a replica followed by its own thread
typedef struct {
    hvn_replica_t *replica;      //  NULL while down
    pthread_t thread;            //  Polls the replica while it is up
    pthread_mutex_t mutex;       //  Held by the thread while it polls
    atomic_bool stop;            //  Asks the thread to end
    atomic_int readers;          //  Main thread waiting for the mutex
    pthread_mutex_t last_mutex;  //  Guards last
    hvn_replica_stats_t last;    //  Counters after the thread's last poll
    hvn_replica_stats_t checked; //  Counters when its view was last compared
    int64_t up_at;               //  While down: when to create it again
    int starts;                  //  Times created
    uint64_t detected;           //  Losses detected by destroyed instances
    uint64_t repaired;           //  Losses repaired by destroyed instances
    uint64_t unfinished;         //  Detected but not repaired when destroyed
} s_subscriber_t;

//  The whole run
typedef struct {
    s_config_t config;                              //  Settings
    uint64_t rand;                                  //  PRNG state
    char dir[64];                                   //  Temporary directory
    char state_dir[96];                             //  Publishers' state directory
    char backends[S_MAX_BROKERS * (S_EP_MAX + 1)];  //  Comma-separated
    char frontends[S_MAX_BROKERS * (S_EP_MAX + 1)]; //  Comma-separated
    s_broker_t brokers[S_MAX_BROKERS];
    s_publisher_t *publishers;
    s_subscriber_t *subscribers;
    zhashx_t *truth;                //  uuid -> hvn_node_t: the live nodes (not owned)
    uint64_t faults[S_FAULT_COUNT]; //  Injected, by kind
    uint64_t deferred;              //  Publisher restarts deferred (no broker)
    uint64_t changes;               //  Reports made (creates, updates)
    uint64_t removes;               //  Removes made
    uint64_t refused;               //  Reports or removes refused (queue full)
    uint64_t crashes;               //  Brokers that exited without being killed
    int64_t last_fault;             //  Monotonic ms of the last fault
    int64_t max_stall;              //  Longest wait with nothing sent, a broker working
} s_chaos_t;

// --------------------------------------------------------------------------
//  Random numbers: splitmix64, so a seed gives the same choices everywhere

//  Returns the next 64 random bits.
static uint64_t s_rand(s_chaos_t *self)
{
    uint64_t z = (self->rand += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Returns a number from lo to hi, both included (lo <= hi).
static int64_t s_range(s_chaos_t *self, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(s_rand(self) % (uint64_t)(hi - lo + 1));
}

//  Returns true with probability percent / 100.
static bool s_chance(s_chaos_t *self, int percent)
{
    return s_range(self, 1, 100) <= percent;
}

// --------------------------------------------------------------------------
//  The truth: nodes and their values

//  Returns nothing; gives field f of node a new random value of its type
//  (nil now and then when the field is nullable).
static void s_field_randomize(s_chaos_t *self, hvn_node_t *node, hvn_field_id_t f)
{
    const hvn_field_t *field = &hvn_schema_fields[f];
    if (field->nullable && s_chance(self, 10)) {
        hvn_node_set_null(node, f);
        return;
    }
    char text[64];
    switch (field->type) {
    case HVN_TYPE_INT:
        hvn_node_set_int(node, f, s_range(self, 0, 1000000));
        break;
    case HVN_TYPE_IP:
        if (s_chance(self, 50))
            snprintf(text, sizeof(text), "192.0.2.%d", (int)s_range(self, 1, 254));
        else
            snprintf(text, sizeof(text), "2001:db8::%x", (unsigned)s_range(self, 1, 65535));
        hvn_node_set_str(node, f, text);
        break;
    default: //  Other strings (a uuid is never randomized)
        snprintf(text, sizeof(text), "v%" PRIx64 ".example.org", s_rand(self) & 0xffffff);
        hvn_node_set_str(node, f, text);
        break;
    }
}

//  Returns true for fields a change may touch: all but id, uuid and host,
//  which name the node and its publisher.
static bool s_field_mutable(hvn_field_id_t f)
{
    return f != HVN_F_ID && f != HVN_F_UUID && f != HVN_F_HOST;
}

//  Returns nothing; fills node with id, a uuid drawn from the PRNG, host,
//  and random values in every other field.
static void s_node_new(s_chaos_t *self, hvn_node_t *node, int64_t id, const char *host)
{
    hvn_node_init(node);
    hvn_node_set_int(node, HVN_F_ID, id);
    byte bytes[16];
    for (int i = 0; i < 16; i++)
        bytes[i] = (byte)s_rand(self);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; //  Version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; //  RFC 4122 variant
    zuuid_t *uuid = zuuid_new_from(bytes);
    assert(uuid);
    hvn_node_set_str(node, HVN_F_UUID, zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    hvn_node_set_str(node, HVN_F_HOST, host);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (s_field_mutable((hvn_field_id_t)f))
            s_field_randomize(self, node, (hvn_field_id_t)f);
}

//  Returns nothing; changes one to three random fields of node, at least
//  one of them update-triggering, so that the change is always sent.
static void s_node_change(s_chaos_t *self, hvn_node_t *node)
{
    hvn_node_t old = *node;
    do {
        int count = (int)s_range(self, 1, 3);
        for (int i = 0; i < count; i++) {
            hvn_field_id_t f = (hvn_field_id_t)s_range(self, 0, HVN_F_COUNT - 1);
            if (s_field_mutable(f))
                s_field_randomize(self, node, f);
        }
    } while (!hvn_node_triggers_update(&old, node));
}

// --------------------------------------------------------------------------
//  Brokers: real hvn-broker processes

//  Starts the broker's process (it binds the same endpoints as before).
//  Returns 0, or -1 (logged) when it cannot be started.
static int s_broker_start(s_chaos_t *self, s_broker_t *broker)
{
    char heartbeat[24];
    snprintf(heartbeat, sizeof(heartbeat), "%d", self->config.heartbeat_ms);
    const char *argv[] = {self->config.broker_path,
                          "--frontend",
                          broker->frontend,
                          "--backend",
                          broker->backend,
                          "--service",
                          broker->service,
                          "--name",
                          broker->name,
                          "--heartbeat-ms",
                          heartbeat,
                          NULL};
    broker->proc = it_spawn_logged(argv, broker->log_path);
    if (!broker->proc) {
        zsys_error(S_PROG ": cannot start %s (log %s): %s", argv[0], broker->log_path,
                   strerror(errno));
        return -1;
    }
    broker->starts++;
    return 0;
}

//  Kills the broker with sig (continuing it when stalled, so that a
//  SIGTERM is acted upon) and reaps it. Returns nothing.
static void s_broker_kill(s_broker_t *broker, int sig)
{
    it_stop(&broker->proc, sig, S_BROKER_STOP_MS);
    broker->stopped = false;
}

//  Returns nothing; counts (and logs) every broker that exited although
//  nobody killed it: a crash is a defect.
static void s_brokers_check(s_chaos_t *self)
{
    for (int b = 0; b < self->config.brokers; b++) {
        s_broker_t *broker = &self->brokers[b];
        int code = broker->proc ? it_wait(broker->proc, 0) : -1;
        if (code >= 0) {
            zsys_error(S_PROG ": %s exited by itself (exit code %d); see %s", broker->name, code,
                       broker->log_path);
            it_stop(&broker->proc, SIGKILL, 0);
            broker->up_at = zclock_mono();
            self->crashes++;
        }
    }
}

//  Returns the number of brokers running and not stalled.
static int s_brokers_up(s_chaos_t *self)
{
    int up = 0;
    for (int b = 0; b < self->config.brokers; b++)
        up += self->brokers[b].proc != NULL && !self->brokers[b].stopped;
    return up;
}

// --------------------------------------------------------------------------
//  Publishers: libhvn in this process

//  Creates the publisher's instance and reports its live nodes again (a
//  restart: the state directory spares known nodes a second create), then
//  ends its first round. Returns 0, or -1 (logged).
static int s_publisher_start(s_chaos_t *self, s_publisher_t *pub)
{
    hvn_publisher_opts_t opts = {.endpoint = self->frontends,
                                 .host = pub->host,
                                 .state_dir = self->state_dir,
                                 .heartbeat_ms = self->config.heartbeat_ms,
                                 .linger_ms = S_PUB_LINGER_MS};
    pub->pub = hvn_publisher_new(&opts);
    if (!pub->pub) {
        zsys_error(S_PROG ": cannot create publisher %s", pub->host);
        return -1;
    }
    for (int n = 0; n < self->config.nodes; n++)
        if (zhashx_lookup(self->truth, pub->nodes[n].uuid) &&
            hvn_publisher_report(pub->pub, &pub->nodes[n]) != 0) {
            zsys_error(S_PROG ": %s refused a node after its restart", pub->host);
            return -1;
        }
    if (hvn_publisher_forget_missing(pub->pub) < 0) {
        zsys_error(S_PROG ": %s: forget_missing failed", pub->host);
        return -1;
    }
    return 0;
}

//  Returns the notifications this publisher's current instance has sent.
static uint64_t s_publisher_sent(s_publisher_t *pub)
{
    if (!pub->pub)
        return 0;
    hvn_publisher_stats_t stats;
    hvn_publisher_stats(pub->pub, &stats);
    return stats.creates + stats.updates + stats.deletes;
}

//  Returns the notifications all publishers have sent, past instances
//  included; *pending (when not NULL) the ones queued, not yet sent.
static uint64_t s_sent_total(s_chaos_t *self, uint64_t *pending)
{
    uint64_t sent = 0, queued = 0;
    for (int p = 0; p < self->config.publishers; p++) {
        s_publisher_t *pub = &self->publishers[p];
        sent += pub->sent_before;
        if (pub->pub) {
            hvn_publisher_stats_t stats;
            hvn_publisher_stats(pub->pub, &stats);
            sent += stats.creates + stats.updates + stats.deletes;
            queued += stats.pending;
        }
    }
    if (pending)
        *pending = queued;
    return sent;
}

//  Destroys the publisher's instance after flushing it. Returns 0, or -1
//  when it could not flush (nothing is destroyed then).
static int s_publisher_stop(s_publisher_t *pub, int flush_ms)
{
    if (hvn_publisher_flush(pub->pub, flush_ms) != 0)
        return -1;
    pub->sent_before += s_publisher_sent(pub);
    hvn_publisher_destroy(&pub->pub);
    return 0;
}

//  Returns nothing; makes one random change to one node of a running
//  publisher: mostly an update, sometimes a delete, or a (re)create of a
//  deleted node with new values under the same uuid.
static void s_churn_one(s_chaos_t *self)
{
    s_publisher_t *pub = &self->publishers[s_range(self, 0, self->config.publishers - 1)];
    if (!pub->pub)
        return;
    hvn_node_t *node = &pub->nodes[s_range(self, 0, self->config.nodes - 1)];
    bool live = zhashx_lookup(self->truth, node->uuid) != NULL;
    if (live && s_chance(self, 5)) {
        if (hvn_publisher_remove(pub->pub, node->uuid) == 0) {
            zhashx_delete(self->truth, node->uuid);
            self->removes++;
        } else
            self->refused++;
        return;
    }
    if (!live && !s_chance(self, 30))
        return;
    hvn_node_t next = *node;
    s_node_change(self, &next);
    if (hvn_publisher_report(pub->pub, &next) == 0) {
        *node = next;
        if (!live)
            zhashx_insert(self->truth, node->uuid, node);
        self->changes++;
    } else
        self->refused++;
}

// --------------------------------------------------------------------------
//  Subscribers

//  Runs in the subscriber's thread: polls the replica until asked to stop
//  or interrupted. Returns NULL.
static void *s_subscriber_run(void *arg)
{
    s_subscriber_t *sub = (s_subscriber_t *)arg;
    while (!atomic_load(&sub->stop)) {
        pthread_mutex_lock(&sub->mutex);
        int rc = hvn_replica_poll(sub->replica, 20);
        hvn_replica_stats_t stats;
        hvn_replica_stats(sub->replica, &stats);
        pthread_mutex_unlock(&sub->mutex);
        pthread_mutex_lock(&sub->last_mutex);
        sub->last = stats;
        pthread_mutex_unlock(&sub->last_mutex);
        if (rc < 0)
            break;
        //  Let the main thread in when it waits to read the view
        while (atomic_load(&sub->readers) && !atomic_load(&sub->stop))
            sched_yield();
    }
    return NULL;
}

//  Creates the subscriber's replica, connected to every broker, and the
//  thread that follows it. Returns 0, or -1 (logged).
static int s_subscriber_start(s_chaos_t *self, s_subscriber_t *sub)
{
    const char *backends[S_MAX_BROKERS], *services[S_MAX_BROKERS];
    for (int b = 0; b < self->config.brokers; b++) {
        backends[b] = self->brokers[b].backend;
        services[b] = self->brokers[b].service;
    }
    hvn_replica_opts_t opts = {.backends = backends,
                               .services = services,
                               .broker_count = (size_t)self->config.brokers,
                               .snapshot_timeout_ms = S_SNAPSHOT_TIMEOUT_MS,
                               .heartbeat_ms = self->config.heartbeat_ms};
    sub->replica = hvn_replica_new(&opts);
    if (!sub->replica) {
        zsys_error(S_PROG ": cannot create a replica");
        return -1;
    }
    atomic_store(&sub->stop, false);
    memset(&sub->last, 0, sizeof(sub->last));
    if (pthread_create(&sub->thread, NULL, s_subscriber_run, sub) != 0) {
        zsys_error(S_PROG ": cannot start a subscriber thread");
        hvn_replica_destroy(&sub->replica);
        return -1;
    }
    sub->starts++;
    return 0;
}

//  Takes the subscriber's lock from its thread. Returns nothing.
static void s_subscriber_lock(s_subscriber_t *sub)
{
    atomic_fetch_add(&sub->readers, 1);
    pthread_mutex_lock(&sub->mutex);
    atomic_fetch_sub(&sub->readers, 1);
}

//  Destroys the subscriber's replica abruptly: its thread stops after the
//  poll in progress and the replica, with its view, is gone. Returns
//  nothing.
static void s_subscriber_kill(s_subscriber_t *sub)
{
    if (!sub->replica)
        return;
    atomic_store(&sub->stop, true);
    pthread_join(sub->thread, NULL);
    hvn_replica_stats_t stats;
    hvn_replica_stats(sub->replica, &stats);
    sub->detected += stats.losses;
    sub->repaired += stats.repaired;
    sub->unfinished += stats.losses - stats.repaired;
    hvn_replica_destroy(&sub->replica);
}

//  foreach callback: copies a node of the replica into a view.
static int s_view_copy(const hvn_replica_node_t *node, void *arg)
{
    zhashx_t *view = (zhashx_t *)arg;
    hvn_node_t *copy = malloc(sizeof(*copy));
    assert(copy);
    *copy = node->node;
    zhashx_update(view, copy->uuid, copy);
    return 0;
}

// --------------------------------------------------------------------------
//  Views and the comparison with the truth

//  Item destructor of a view.
static void s_view_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Snapshot callback: keeps a created or updated node in the view.
static void s_view_add(const hvn_msg_t *msg, void *arg)
{
    zhashx_t *view = (zhashx_t *)arg;
    if (msg->event != HVN_EVENT_CREATE && msg->event != HVN_EVENT_UPDATE)
        return;
    hvn_node_t *copy = malloc(sizeof(*copy));
    assert(copy);
    *copy = msg->node;
    zhashx_update(view, copy->uuid, copy);
}

//  Returns a new view (uuid -> hvn_node_t) of one broker's cache, from its
//  snapshot, or NULL when the broker does not answer.
static zhashx_t *s_view_of_broker(s_broker_t *broker)
{
    hvn_subscriber_opts_t opts = {.endpoint = broker->backend, .service = broker->service};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    if (!sub)
        return NULL;
    zhashx_t *view = zhashx_new();
    assert(view);
    zhashx_set_destructor(view, s_view_free);
    if (hvn_subscriber_snapshot(sub, "", s_view_add, view, 2000) < 0)
        zhashx_destroy(&view);
    hvn_subscriber_destroy(&sub);
    return view;
}

//  Returns true when uuid is one of the publishers' nodes, live or deleted.
static bool s_published(s_chaos_t *self, const char *uuid)
{
    for (int p = 0; p < self->config.publishers; p++)
        for (int n = 0; n < self->config.nodes; n++)
            if (streq(self->publishers[p].nodes[n].uuid, uuid))
                return true;
    return false;
}

//  Compares a view (uuid -> hvn_node_t) with the truth. Prints up to
//  S_MAX_REPORT differences under `name` when report is true. Returns the
//  number of differences: nodes missing, extra, or unequal.
static int s_view_compare(s_chaos_t *self, zhashx_t *view, const char *name, bool report)
{
    int diffs = 0;
    for (hvn_node_t *node = zhashx_first(view); node; node = zhashx_next(view)) {
        hvn_node_t *truth = zhashx_lookup(self->truth, node->uuid);
        if (!truth) {
            if (report && diffs < S_MAX_REPORT)
                printf("  %s: extra node %s (%s)\n", name, node->uuid,
                       s_published(self, node->uuid) ? "deleted" : "never published");
            diffs++;
            continue;
        }
        if (hvn_node_equal(node, truth))
            continue;
        if (report && diffs < S_MAX_REPORT) {
            printf("  %s: node %s differs in", name, node->uuid);
            for (int f = 0; f < HVN_F_COUNT; f++)
                if (!hvn_node_field_equal(node, truth, (hvn_field_id_t)f))
                    printf(" %s", hvn_schema_fields[f].name);
            printf("\n");
        }
        diffs++;
    }
    for (int p = 0; p < self->config.publishers; p++)
        for (int n = 0; n < self->config.nodes; n++) {
            const hvn_node_t *truth = &self->publishers[p].nodes[n];
            if (zhashx_lookup(self->truth, truth->uuid) && !zhashx_lookup(view, truth->uuid)) {
                if (report && diffs < S_MAX_REPORT)
                    printf("  %s: missing node %s\n", name, truth->uuid);
                diffs++;
            }
        }
    if (report && diffs > S_MAX_REPORT)
        printf("  %s: ... %d differences in all\n", name, diffs);
    return diffs;
}

//  Returns a new view (uuid -> hvn_node_t) of a subscriber's replica, and
//  in *settled whether the replica is synced with no repair pending (every
//  loss it detected repaired); sub->checked holds the replica's counters
//  read with the view. NULL while the subscriber is down.
static zhashx_t *s_view_of_subscriber(s_subscriber_t *sub, bool *settled)
{
    *settled = false;
    memset(&sub->checked, 0, sizeof(sub->checked));
    if (!sub->replica)
        return NULL;
    zhashx_t *view = zhashx_new();
    assert(view);
    zhashx_set_destructor(view, s_view_free);
    s_subscriber_lock(sub);
    hvn_replica_stats_t stats;
    hvn_replica_stats(sub->replica, &stats);
    *settled = hvn_replica_synced(sub->replica) && stats.losses == stats.repaired;
    sub->checked = stats;
    hvn_replica_foreach(sub->replica, s_view_copy, view);
    pthread_mutex_unlock(&sub->mutex);
    return view;
}

//  Compares every view with the truth: each subscriber's replica and, when
//  brokers is true, each broker's cache. Returns the number of views that
//  differ (a view that cannot be read, or a replica not settled, differs).
static int s_views_compare(s_chaos_t *self, bool brokers, bool report)
{
    int bad = 0;
    for (int s = 0; s < self->config.subscribers; s++) {
        char name[32];
        snprintf(name, sizeof(name), "subscriber %d", s);
        bool settled;
        zhashx_t *view = s_view_of_subscriber(&self->subscribers[s], &settled);
        if (!view) {
            if (report)
                printf("  %s: no replica\n", name);
            bad++;
            continue;
        }
        if (report && !settled)
            printf("  %s: replica not synced, or a repair pending\n", name);
        if (s_view_compare(self, view, name, report) != 0 || !settled)
            bad++;
        zhashx_destroy(&view);
    }
    for (int b = 0; b < self->config.brokers && brokers; b++) {
        zhashx_t *view = s_view_of_broker(&self->brokers[b]);
        if (!view) {
            if (report)
                printf("  %s: no snapshot\n", self->brokers[b].name);
            bad++;
            continue;
        }
        if (s_view_compare(self, view, self->brokers[b].name, report) != 0)
            bad++;
        zhashx_destroy(&view);
    }
    return bad;
}

// --------------------------------------------------------------------------
//  Faults

//  Injects one fault of a random kind into a random running target, and
//  schedules its restart. Returns nothing.
static void s_fault_inject(s_chaos_t *self, int64_t now)
{
    s_fault_t kinds[S_FAULT_COUNT];
    int count = 0;
    for (int k = 0; k < S_FAULT_COUNT; k++)
        if (self->config.faults[k])
            kinds[count++] = (s_fault_t)k;
    if (count == 0)
        return;
    s_fault_t kind = kinds[s_range(self, 0, count - 1)];
    int64_t up_at = now + s_range(self, 0, self->config.down_ms);
    if (kind == S_FAULT_BROKER) {
        s_broker_t *broker = &self->brokers[s_range(self, 0, self->config.brokers - 1)];
        if (!broker->proc)
            return;
        s_broker_kill(broker, SIGKILL);
        broker->up_at = up_at;
        if (self->config.verbose)
            zsys_info(S_PROG ": kill -9 %s, down %" PRId64 " ms", broker->name, up_at - now);
    } else if (kind == S_FAULT_STALL) {
        s_broker_t *broker = &self->brokers[s_range(self, 0, self->config.brokers - 1)];
        if (!broker->proc || broker->stopped)
            return;
        kill(broker->proc->pid, SIGSTOP);
        broker->stopped = true;
        broker->up_at = up_at;
        if (self->config.verbose)
            zsys_info(S_PROG ": kill -STOP %s, for %" PRId64 " ms", broker->name, up_at - now);
    } else if (kind == S_FAULT_SUBSCRIBER) {
        int index = (int)s_range(self, 0, self->config.subscribers - 1);
        s_subscriber_t *sub = &self->subscribers[index];
        if (!sub->replica)
            return;
        s_subscriber_kill(sub);
        sub->up_at = up_at;
        if (self->config.verbose)
            zsys_info(S_PROG ": subscriber %d destroyed, down %" PRId64 " ms", index, up_at - now);
    } else {
        s_publisher_t *pub = &self->publishers[s_range(self, 0, self->config.publishers - 1)];
        if (!pub->pub)
            return;
        if (s_brokers_up(self) == 0 || s_publisher_stop(pub, S_PUB_LINGER_MS) != 0) {
            self->deferred++;
            return;
        }
        pub->up_at = up_at;
        if (self->config.verbose)
            zsys_info(S_PROG ": publisher %s restarting, down %" PRId64 " ms", pub->host,
                      up_at - now);
    }
    self->faults[kind]++;
    self->last_fault = now;
}

//  Restarts every component whose down time is over (all of them when
//  force is true). Returns 0, or -1 when one cannot be started.
static int s_heal(s_chaos_t *self, int64_t now, bool force)
{
    for (int b = 0; b < self->config.brokers; b++) {
        s_broker_t *broker = &self->brokers[b];
        if (broker->stopped && (force || broker->up_at <= now)) {
            kill(broker->proc->pid, SIGCONT);
            broker->stopped = false;
        }
        if (!broker->proc && (force || broker->up_at <= now) && s_broker_start(self, broker))
            return -1;
    }
    for (int p = 0; p < self->config.publishers; p++) {
        s_publisher_t *pub = &self->publishers[p];
        if (!pub->pub && (force || pub->up_at <= now) && s_publisher_start(self, pub))
            return -1;
    }
    for (int s = 0; s < self->config.subscribers; s++) {
        s_subscriber_t *sub = &self->subscribers[s];
        if (!sub->replica && (force || sub->up_at <= now) && s_subscriber_start(self, sub))
            return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Set-up and tear-down

//  Creates the temporary directory, the truth, the brokers' endpoints.
//  Returns 0, or -1 (logged).
static int s_setup(s_chaos_t *self)
{
    if (it_tempdir(self->dir, sizeof(self->dir), "hvn-chaos") != 0) {
        zsys_error(S_PROG ": mkdtemp: %s", strerror(errno));
        return -1;
    }
    snprintf(self->state_dir, sizeof(self->state_dir), "%s/state", self->dir);
    if (mkdir(self->state_dir, 0700) != 0) {
        zsys_error(S_PROG ": mkdir %s: %s", self->state_dir, strerror(errno));
        return -1;
    }
    for (int b = 0; b < self->config.brokers; b++) {
        s_broker_t *broker = &self->brokers[b];
        snprintf(broker->name, sizeof(broker->name), "chaos-b%d", b);
        snprintf(broker->frontend, sizeof(broker->frontend), "ipc://%s/b%d-frontend", self->dir, b);
        snprintf(broker->backend, sizeof(broker->backend), "ipc://%s/b%d-backend", self->dir, b);
        snprintf(broker->service, sizeof(broker->service), "ipc://%s/b%d-service", self->dir, b);
        snprintf(broker->log_path, sizeof(broker->log_path), "%s/chaos-b%d.log", self->dir, b);
        strcat(self->frontends, b ? "," : "");
        strcat(self->frontends, broker->frontend);
        strcat(self->backends, b ? "," : "");
        strcat(self->backends, broker->backend);
    }
    self->truth = zhashx_new();
    self->publishers = calloc((size_t)self->config.publishers, sizeof(s_publisher_t));
    self->subscribers = calloc((size_t)self->config.subscribers, sizeof(s_subscriber_t));
    assert(self->truth && self->publishers && self->subscribers);
    for (int s = 0; s < self->config.subscribers; s++) {
        pthread_mutex_init(&self->subscribers[s].mutex, NULL);
        pthread_mutex_init(&self->subscribers[s].last_mutex, NULL);
    }
    for (int p = 0; p < self->config.publishers; p++) {
        s_publisher_t *pub = &self->publishers[p];
        snprintf(pub->host, sizeof(pub->host), "chaos-p%02d", p);
        pub->nodes = calloc((size_t)self->config.nodes, sizeof(hvn_node_t));
        assert(pub->nodes);
        for (int n = 0; n < self->config.nodes; n++) {
            hvn_node_t *node = &pub->nodes[n];
            s_node_new(self, node, (int64_t)p * self->config.nodes + n + 1, pub->host);
            zhashx_insert(self->truth, node->uuid, node);
        }
    }
    return 0;
}

//  Stops everything and frees. Returns nothing.
static void s_teardown(s_chaos_t *self)
{
    for (int s = 0; s < self->config.subscribers && self->subscribers; s++)
        s_subscriber_kill(&self->subscribers[s]);
    for (int s = 0; s < self->config.subscribers && self->subscribers; s++) {
        pthread_mutex_destroy(&self->subscribers[s].mutex);
        pthread_mutex_destroy(&self->subscribers[s].last_mutex);
    }
    for (int p = 0; p < self->config.publishers && self->publishers; p++) {
        s_publisher_t *pub = &self->publishers[p];
        if (pub->pub)
            hvn_publisher_set_linger(pub->pub, 0);
        hvn_publisher_destroy(&pub->pub);
        free(pub->nodes);
    }
    for (int b = 0; b < self->config.brokers; b++)
        s_broker_kill(&self->brokers[b], SIGTERM);
    free(self->publishers);
    free(self->subscribers);
    zhashx_destroy(&self->truth);
    if (!self->config.keep)
        it_tempdir_remove(self->dir);
}

// --------------------------------------------------------------------------
//  The run

//  Logs one line of progress: notifications sent and still queued by the
//  publishers, brokers up, and each replica's size and losses. Returns
//  nothing.
static void s_progress(s_chaos_t *self, int64_t elapsed_ms)
{
    uint64_t pending;
    uint64_t sent = s_sent_total(self, &pending);
    char line[1024];
    int len =
        snprintf(line, sizeof(line),
                 "%5.1f s: sent %" PRIu64 ", queued %" PRIu64 ", brokers working %d/%d; replicas",
                 elapsed_ms / 1000.0, sent, pending, s_brokers_up(self), self->config.brokers);
    for (int s = 0; s < self->config.subscribers && len < (int)sizeof(line) - 64; s++) {
        s_subscriber_t *sub = &self->subscribers[s];
        if (!sub->replica)
            len += snprintf(line + len, sizeof(line) - (size_t)len, " [down]");
        else {
            //  As of the thread's last poll: no waiting for one busy with a snapshot
            pthread_mutex_lock(&sub->last_mutex);
            hvn_replica_stats_t stats = sub->last;
            pthread_mutex_unlock(&sub->last_mutex);
            len += snprintf(line + len, sizeof(line) - (size_t)len,
                            " [%" PRIu64 " nodes, %" PRIu64 " applied, losses %" PRIu64 "/%" PRIu64
                            "]",
                            stats.nodes, stats.applied, stats.losses, stats.repaired);
        }
    }
    zsys_info(S_PROG ": %s", line);
}

//  Runs the chaos phase: changes at the configured rate, faults at random
//  intervals, restarts when their down time is over. Returns 0, or -1 when
//  interrupted or a component cannot be started.
static int s_run_chaos(s_chaos_t *self)
{
    int64_t start = zclock_mono();
    int64_t end = start + (int64_t)self->config.seconds * 1000;
    int64_t next_fault =
        start + s_range(self, self->config.fault_ms / 2, self->config.fault_ms * 3 / 2);
    int64_t last = start;
    double budget = 0;
    int64_t next_progress = start + 1000;
    uint64_t sent = 0;
    int64_t sent_at = start; //  When sent last grew, or no broker was working
    while (!zsys_interrupted) {
        int64_t now = zclock_mono();
        if (now >= end)
            return 0;
        if (s_heal(self, now, false) != 0)
            return -1;
        //  Changes owed since the last turn; a long fault (a flush) does
        //  not turn into a burst
        budget += (double)self->config.rate * (double)(now - last) / 1000.0;
        if (budget > self->config.rate / 10.0 + 1)
            budget = self->config.rate / 10.0 + 1;
        last = now;
        for (; budget >= 1; budget -= 1)
            s_churn_one(self);
        if (now >= next_fault) {
            s_fault_inject(self, now);
            next_fault =
                now + s_range(self, self->config.fault_ms / 2, self->config.fault_ms * 3 / 2);
        }
        s_brokers_check(self);
        //  While notifications wait and a broker works, some should go out
        uint64_t pending;
        uint64_t sent_now = s_sent_total(self, &pending);
        if (sent_now > sent || pending == 0 || s_brokers_up(self) == 0)
            sent_at = now;
        sent = sent_now;
        if (now - sent_at > self->max_stall)
            self->max_stall = now - sent_at;
        if (self->config.verbose && now >= next_progress) {
            s_progress(self, now - start);
            next_progress += 1000;
        }
        zclock_sleep(1); //  Pacing of the load, not synchronisation
    }
    return -1;
}

//  Waits until every broker answers STATS, at most until deadline.
//  Returns 0, or -1 on timeout or interrupt.
static int s_wait_brokers(s_chaos_t *self, int64_t deadline)
{
    for (int b = 0; b < self->config.brokers; b++)
        while (it_broker_stat(self->brokers[b].service, "uptime_ms", 200) < 0) {
            s_brokers_check(self);
            if (zsys_interrupted || zclock_mono() >= deadline)
                return -1;
        }
    return 0;
}

//  Returns the losses detected by every replica, killed ones included, as
//  of the last comparison of the views.
static uint64_t s_losses_checked(s_chaos_t *self)
{
    uint64_t losses = 0;
    for (int s = 0; s < self->config.subscribers; s++)
        losses += self->subscribers[s].checked.losses + self->subscribers[s].detected;
    return losses;
}

//  Waits until every view equals the truth and has gone on doing so, with
//  no replica detecting a new loss, for quiet_ms: a fault made just before
//  the end (a broker killed and started again by the heal) reaches a
//  replica only with the new broker's first heartbeat, or after three
//  intervals of silence, which may be after the views already agree. The
//  replicas are checked every 50 ms; once they agree, the brokers'
//  snapshots too, every 250 ms (a broker limits snapshot requests per
//  peer). At most until deadline. Returns 0 when they agreed (the verdict:
//  each subscriber's checked counters are from the last comparison), with
//  *agreed_at the monotonic time agreement began; -1 otherwise.
static int s_converge(s_chaos_t *self, int64_t deadline, int64_t quiet_ms, int64_t *agreed_at)
{
    int64_t agreed = -1;
    uint64_t losses = 0;
    while (!zsys_interrupted) {
        //  The replicas first: a broker's snapshot is asked for only when
        //  they all agree
        bool replicas = s_views_compare(self, false, false) == 0;
        bool agree = replicas && s_views_compare(self, true, false) == 0;
        int64_t now = zclock_mono();
        uint64_t seen = s_losses_checked(self);
        if (!agree)
            agreed = -1;
        else if (agreed < 0 || seen != losses)
            agreed = now;
        else if (now - agreed >= quiet_ms) {
            *agreed_at = agreed;
            return 0;
        }
        losses = seen;
        if (now >= deadline)
            return -1;
        zclock_sleep(replicas ? 250 : 50); //  Between checks of a condition that has no event
    }
    return -1;
}

// --------------------------------------------------------------------------
//  Options

//  Returns NULL when text lists fault kinds (comma-separated) or is
//  "none", else what was expected.
static const char *s_check_faults(const char *text)
{
    static const char *expected = "a list of broker, stall, subscriber, publisher, or none";
    if (streq(text, "none"))
        return NULL;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (k < S_FAULT_COUNT &&
               !(strlen(s_fault_names[k]) == len && strncmp(p, s_fault_names[k], len) == 0))
            k++;
        if (k == S_FAULT_COUNT)
            return expected;
        p += len;
        if (*p == ',' && *++p == '\0')
            return expected;
    }
    return NULL;
}

//  Returns nothing; sets the fault kinds from a list s_check_faults() took.
static void s_set_faults(s_config_t *config, const char *text)
{
    memset(config->faults, 0, sizeof(config->faults));
    for (const char *p = text; *p && !streq(text, "none");) {
        size_t len = strcspn(p, ",");
        for (int k = 0; k < S_FAULT_COUNT; k++)
            if (strlen(s_fault_names[k]) == len && strncmp(p, s_fault_names[k], len) == 0)
                config->faults[k] = true;
        p += len + (p[len] == ',');
    }
}

//  Returns the path of hvn-broker next to this program, in a static buffer.
static const char *s_default_broker(void)
{
    static char path[PATH_MAX];
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0)
        return "hvn-broker";
    self[len] = '\0';
    snprintf(path, sizeof(path), "%s/hvn-broker", dirname(self));
    return path;
}

//  Returns nothing; config holds the command line's settings, or the
//  process has exited (0 after --help, 2 on bad usage).
static void s_parse_args(int argc, char **argv, s_config_t *config)
{
    long publishers = 5, nodes = 20, seconds = 30, brokers = 1, subscribers = 3;
    long seed = (long)(((uint64_t)zclock_time() ^ ((uint64_t)getpid() << 32)) & INT64_MAX);
    long heartbeat_ms = 1000, rate = 500, fault_ms = 1500, down_ms = 2000, settle_ms = 30000;
    const char *faults = "broker,stall,subscriber,publisher";
    *config = (s_config_t){.broker_path = NULL};
    const hvn_opt_t options[] = {
        {.name = "publishers", .type = HVN_OPT_INT, .dest = &publishers, .metavar = "N",
         .help = "publishers in this process", .min = 1, .max = 1000},
        {.name = "nodes", .type = HVN_OPT_INT, .dest = &nodes, .metavar = "M",
         .help = "nodes per publisher", .min = 1, .max = 100000},
        {.name = "seconds", .type = HVN_OPT_INT, .dest = &seconds, .metavar = "T",
         .help = "length of the chaos phase", .min = 1, .max = 86400},
        {.name = "brokers", .type = HVN_OPT_INT, .dest = &brokers, .metavar = "N",
         .help = "hvn-broker processes", .min = 1, .max = S_MAX_BROKERS},
        {.name = "subscribers", .type = HVN_OPT_INT, .dest = &subscribers, .metavar = "S",
         .help = "subscribers following the fleet", .min = 1, .max = 100},
        {.name = "seed", .type = HVN_OPT_INT, .dest = &seed, .metavar = "X",
         .help = "random seed (printed)", .min = 0, .max = LONG_MAX,
         .default_text = "from the clock"},
        {.name = "heartbeat-ms", .type = HVN_OPT_INT, .dest = &heartbeat_ms, .metavar = "MS",
         .help = "heartbeat interval of publishers and brokers", .min = 10, .max = 600000},
        {.name = "rate", .type = HVN_OPT_INT, .dest = &rate, .metavar = "R",
         .help = "node changes per second, all publishers", .min = 1, .max = 1000000},
        {.name = "fault-ms", .type = HVN_OPT_INT, .dest = &fault_ms, .metavar = "MS",
         .help = "mean interval between faults", .min = 2, .max = 3600000},
        {.name = "down-ms", .type = HVN_OPT_INT, .dest = &down_ms, .metavar = "MS",
         .help = "longest down time of a killed component", .min = 0, .max = 3600000},
        {.name = "settle-ms", .type = HVN_OPT_INT, .dest = &settle_ms, .metavar = "MS",
         .help = "longest wait for convergence at the end", .min = 1, .max = 3600000},
        {.name = "faults", .type = HVN_OPT_STRING, .dest = &faults, .metavar = "LIST",
         .help = "kinds to inject, comma-separated: broker, stall,\n"
                 "subscriber, publisher, or none",
         .check = s_check_faults, .default_text = "all"},
        {.name = "broker", .type = HVN_OPT_PATH, .dest = &config->broker_path, .metavar = "PATH",
         .help = "hvn-broker program", .default_text = "next to this program"},
        {.name = "keep", .type = HVN_OPT_FLAG, .dest = &config->keep,
         .help = "keep the temporary directory (broker logs, publisher\n"
                 "state) and print it; kept anyway when the run fails"},
        {.name = "verbose", .type = HVN_OPT_FLAG, .dest = &config->verbose,
         .help = "log every fault, and progress every second"},
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = S_PROG,
        .summary = "Change compute nodes at random through libhvn publishers and real hvn-broker\n"
                   "processes while killing and restarting brokers, subscribers and publishers;\n"
                   "then check that every subscriber's view equals the truth, field for field.",
        .epilogue = "Exit status: 0 when every view equals the truth and every subscriber repaired\n"
                    "the losses it detected, 1 otherwise, 2 on bad usage.",
        .options = options,
    };
    hvn_opt_parse(&program, argc, argv);
    config->publishers = (int)publishers;
    config->nodes = (int)nodes;
    config->seconds = (int)seconds;
    config->brokers = (int)brokers;
    config->subscribers = (int)subscribers;
    config->seed = (uint64_t)seed;
    config->heartbeat_ms = (int)heartbeat_ms;
    config->rate = (int)rate;
    config->fault_ms = (int)fault_ms;
    config->down_ms = (int)down_ms;
    config->settle_ms = (int)settle_ms;
    s_set_faults(config, faults);
    config->seed &= INT64_MAX; //  Printable and accepted back by --seed
    if (!config->broker_path)
        config->broker_path = s_default_broker();
    if (access(config->broker_path, X_OK) != 0)
        hvn_opt_fail(&program, "--broker: expected an executable hvn-broker, got '%s'",
                     config->broker_path);
}

// --------------------------------------------------------------------------
//  Summary

//  Prints the summary. Returns true when the run passed: every view equal
//  to the truth and every subscriber's detected losses repaired.
static bool s_summary(s_chaos_t *self, int views_bad, int64_t converge_ms, int64_t since_fault_ms)
{
    const s_config_t *config = &self->config;
    uint64_t sent = s_sent_total(self, NULL);
    int live = (int)zhashx_size(self->truth);
    printf("chaos: seed %" PRIu64 "\n", config->seed);
    printf("publishers %d, nodes %d each (%d live at the end), brokers %d, subscribers %d\n",
           config->publishers, config->nodes, live, config->brokers, config->subscribers);
    printf("duration %d s, heartbeat %d ms, rate %d changes/s\n", config->seconds,
           config->heartbeat_ms, config->rate);
    printf("changes reported %" PRIu64 ", removes %" PRIu64 ", refused %" PRIu64
           ", notifications sent %" PRIu64 "\n",
           self->changes, self->removes, self->refused, sent);
    printf("faults:");
    for (int k = 0; k < S_FAULT_COUNT; k++)
        printf(" %s %" PRIu64, s_fault_names[k], self->faults[k]);
    printf(" (publisher restarts deferred, no broker: %" PRIu64 ")\n", self->deferred);
    printf("longest time notifications waited, none sent, a broker working: %" PRId64 " ms\n",
           self->max_stall);
    if (self->crashes)
        printf("brokers that exited by themselves: %" PRIu64 "\n", self->crashes);
    bool repaired_all = true;
    uint64_t total_detected = 0, total_repaired = 0;
    for (int s = 0; s < config->subscribers; s++) {
        s_subscriber_t *sub = &self->subscribers[s];
        hvn_replica_stats_t st = sub->checked; //  As the verdict saw them
        printf("subscriber %d: started %d times; last replica: losses detected %" PRIu64
               " (gaps %" PRIu64 " missing %" PRIu64 " notifications, stale heartbeats %" PRIu64
               ", broker restarts %" PRIu64 ", silences %" PRIu64 "), repaired %" PRIu64
               ", repair snapshots %" PRIu64 " (failed attempts %" PRIu64 "), applied %" PRIu64
               ", duplicates %" PRIu64 "\n",
               s, sub->starts, st.losses, st.gaps, st.missed, st.stale_heartbeats,
               st.broker_restarts, st.silences, st.repaired, st.repairs, st.repairs_failed,
               st.applied, st.duplicates);
        printf("subscriber %d: killed replicas: losses detected %" PRIu64 ", repaired %" PRIu64
               ", unfinished when killed %" PRIu64 "\n",
               s, sub->detected, sub->repaired, sub->unfinished);
        repaired_all = repaired_all && st.losses == st.repaired;
        total_detected += st.losses + sub->detected;
        total_repaired += st.repaired + sub->repaired;
    }
    printf("losses, all subscribers and replicas: detected %" PRIu64 ", repaired %" PRIu64 "\n",
           total_detected, total_repaired);
    if (converge_ms >= 0 && self->last_fault)
        printf("converged %" PRId64 " ms after changes stopped and all was restarted (%" PRId64
               " ms after the last fault)\n",
               converge_ms, since_fault_ms);
    else if (converge_ms >= 0)
        printf("converged %" PRId64 " ms after changes stopped (no fault injected)\n", converge_ms);
    else
        printf("did not converge within %d ms\n", config->settle_ms);
    bool pass = views_bad == 0 && repaired_all && self->crashes == 0;
    printf("%s\n", pass ? "PASS" : "FAIL");
    return pass;
}

//  Returns the process exit status.
int main(int argc, char **argv)
{
    s_chaos_t chaos = {0};
    s_parse_args(argc, argv, &chaos.config);
    zsys_set_logident(S_PROG);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zsys_init();
    chaos.rand = chaos.config.seed;
    setvbuf(stdout, NULL, _IOLBF, 0);

    int rc = s_setup(&chaos);
    if (rc == 0) {
        printf("chaos: seed %" PRIu64 ", directory %s\n", chaos.config.seed, chaos.dir);
        rc = s_heal(&chaos, 0, true);
    }
    if (rc == 0)
        rc = s_wait_brokers(&chaos, zclock_mono() + 10000);
    //  The chaos starts once every publisher has sent its creates
    for (int p = 0; p < chaos.config.publishers && rc == 0; p++)
        if (hvn_publisher_flush(chaos.publishers[p].pub, 10000) != 0) {
            zsys_error(S_PROG ": %s did not send its creates within 10 s",
                       chaos.publishers[p].host);
            rc = -1;
        }
    if (rc == 0)
        rc = s_run_chaos(&chaos);

    //  Quiesce: no more changes or faults; everything back; flush; wait
    int64_t converge_ms = -1, since_fault_ms = 0;
    int views_bad = -1;
    if (rc == 0) {
        int64_t deadline = zclock_mono() + chaos.config.settle_ms;
        rc = s_heal(&chaos, 0, true);
        if (rc == 0)
            rc = s_wait_brokers(&chaos, deadline);
        int64_t healed = zclock_mono();
        for (int p = 0; p < chaos.config.publishers && rc == 0; p++) {
            int64_t left = deadline - zclock_mono();
            if (hvn_publisher_flush(chaos.publishers[p].pub, left > 0 ? (int)left : 0) != 0)
                zsys_warning(S_PROG ": %s did not flush in time", chaos.publishers[p].host);
        }
        //  Quiet for four heartbeat intervals: long enough for a replica to
        //  hear a restarted broker's first heartbeat, or to find one silent
        int64_t quiet_ms = 4 * (int64_t)chaos.config.heartbeat_ms;
        int64_t agreed_at = 0;
        if (rc == 0 && s_converge(&chaos, deadline, quiet_ms, &agreed_at) == 0) {
            converge_ms = agreed_at - healed;
            since_fault_ms = agreed_at - chaos.last_fault;
            views_bad = 0;
        } else if (rc == 0)
            views_bad = s_views_compare(&chaos, true, true); //  Says which differ
    }
    bool pass = false;
    if (rc == 0)
        pass = s_summary(&chaos, views_bad, converge_ms, since_fault_ms);
    else
        printf("chaos: stopped early (interrupted or a component could not start)\n");
    if (!pass)
        chaos.config.keep = true; //  The broker logs tell what went wrong
    if (chaos.config.keep)
        printf("chaos: kept %s (broker logs, publisher state)\n", chaos.dir);
    s_teardown(&chaos);
    return pass ? 0 : 1;
}
