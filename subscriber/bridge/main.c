/*  hvn-bridge — hvnotify's notifications onto RabbitMQ, in the form
    oslo.messaging's messagingv2 notifier writes, so that every OpenStack
    consumer of Nova notifications (Watcher, Ceilometer, any
    NotificationListener) hears compute_node.* unchanged.

    A replica of the fleet over one or more brokers (hvn_replica.h) hands
    over each live notification once, however many brokers carried it;
    each becomes a messagingv2 body (hvn_oslo.h), queued in the bridge
    (hvn_bridge.h) until RabbitMQ confirms it. When the replica repairs a
    loss with a snapshot, the nodes the snapshot changed are published with
    the notification that made them so (its own message id): the newest
    state of every node reaches RabbitMQ even when hvnotify lost some
    notification on the way.

    With --state-file, the bridge keeps per publisher instance the seq up
    to which RabbitMQ confirmed everything (hvn_bridge_state.h), and a
    restarted bridge first asks the brokers' rings (REPLAY) for every
    notification after it: what went by while the bridge was stopped is
    published before the live stream goes on, and live notifications the
    replay already published are skipped.
*/
#include "hvn_amqp_url.h"
#include "hvn_bridge.h"
#include "hvn_bridge_metrics.h"
#include "hvn_bridge_state.h"
#include "hvn_opt.h"
#include "hvn_oslo.h"
#include "hvn_replica.h"
#include "hvn_subscriber.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define S_NAME "hvn-bridge"
#define S_FLUSH_MS 5000          //  At exit, wait this long for the unconfirmed
#define S_REPLAY_TIMEOUT_MS 5000 //  Wait for each REPLAY reply when resuming
#define S_RESUME_LOG_MAX 10      //  Instances with a hole logged one by one, at most
#define S_BACKPRESSURE_MS 10000  //  A resume waits at most this long for room in the queue
#define S_SAVE_FAIL_LOG_MS 60000 //  A failing state file is logged at most this often

// --------------------------------------------------------------------------
//  The command line

static const char *s_connect[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_service[HVN_REPLICA_BROKERS_MAX + 1];
static const char *s_url;
static const char *s_exchange = "nova";
static const char *s_topic = "versioned_notifications";
static bool s_durable;
static long s_max_pending = 100000;
static long s_window = 1000;
static bool s_fleet;
static const char *s_curve_secret;
static const char *s_server_key;
static const char *s_metrics;
static const char *s_state_file;

static const hvn_opt_t s_options[] = {
    {"connect", HVN_OPT_LIST, s_connect, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint, .help = "a broker's backend (XPUB); repeat for each broker",
     .default_text = "tcp://127.0.0.1:5562"},
    {"service", HVN_OPT_LIST, s_service, .metavar = "EP", .max = HVN_REPLICA_BROKERS_MAX,
     .check = hvn_opt_check_endpoint,
     .help = "that broker's service endpoint, paired with --connect by order",
     .default_text = "tcp://127.0.0.1:5563"},
    {"transport-url", HVN_OPT_STRING, &s_url, .metavar = "URL",
     .help = "RabbitMQ, as in nova.conf: rabbit://USER:PASS@HOST:PORT/VHOST\n"
             "(several USER:PASS@HOST:PORT comma-separated: tried in turn); required"},
    {"exchange", HVN_OPT_STRING, &s_exchange, .metavar = "NAME",
     .help = "the topic exchange (Nova's control_exchange)"},
    {"topic", HVN_OPT_STRING, &s_topic, .metavar = "NAME",
     .help = "the notification topic: routing key and default queue NAME.info"},
    {"durable", HVN_OPT_FLAG, &s_durable,
     .help = "declare the exchange and the default queue durable; must match\n"
             "the consumers' [oslo_messaging_rabbit] amqp_durable_queues"},
    {"max-pending", HVN_OPT_INT, &s_max_pending, .metavar = "N", .min = 1, .max = 100000000,
     .help = "notifications kept until RabbitMQ confirms them; past it the\n"
             "oldest are dropped (counted and logged)"},
    {"confirm-window", HVN_OPT_INT, &s_window, .metavar = "N", .min = 1, .max = 1000000,
     .help = "notifications published and not yet confirmed, at most"},
    {"state-file", HVN_OPT_PATH, &s_state_file, .metavar = "PATH",
     .help = "keep there, per publisher instance, the last notification RabbitMQ\n"
             "confirmed; at start, replay what was missed since from the brokers'\n"
             "rings (default: no state; a restart resumes from the present)"},
    {"fleet", HVN_OPT_FLAG, &s_fleet,
     .help = "at a start without state, also publish the last notification of\n"
             "every node the brokers hold (default: only what happens from then on)"},
    {"metrics", HVN_OPT_ADDRESS, &s_metrics, .metavar = "ADDR:PORT",
     .help = "serve the counters as Prometheus text on http://ADDR:PORT/metrics\n"
             "(refreshed every second)"},
    {"curve-secret", HVN_OPT_PATH, &s_curve_secret, .metavar = "CERT",
     .help = "this subscriber's secret certificate (CURVE)"},
    {"server-key", HVN_OPT_PATH, &s_server_key, .metavar = "CERT",
     .help = "the brokers' public certificate (CURVE)"},
    {NULL}};

static const hvn_opt_program_t s_program = {
    .name = S_NAME,
    .summary = "Publish hvnotify notifications on RabbitMQ, as oslo.messaging does.",
    .epilogue = "Every notification goes to the exchange with routing key TOPIC.info, in\n"
                "oslo.messaging's messagingv2 form, and is kept until RabbitMQ confirms it;\n"
                "after a lost connection the unconfirmed ones are sent again (at least once).\n"
                "With --state-file, a restart first publishes what went by while the bridge\n"
                "was stopped, as far as the brokers' rings (hvn-broker --ring-bytes) hold it.\n"
                "SIGUSR1 logs the counters; SIGINT/SIGTERM stop after up to 5 s of flushing.\n"
                "Exit status: 0 when stopped by a signal, 1 on failure, 2 on bad usage.",
    .options = s_options};

// --------------------------------------------------------------------------
//  One run

//  A snapshot item kept for a resume, in case the rings no longer hold
//  what came before it
typedef struct {
    uint8_t instance[16]; //  Its publisher instance
    uint64_t seq;         //  Its seq
    char *body;           //  Its messagingv2 body (heap)
    size_t size;          //  Bytes of body
} s_held_t;

//  What a run holds
typedef struct {
    hvn_replica_t *replica;        //  The fleet, over every broker
    hvn_bridge_t *bridge;          //  RabbitMQ
    hvn_bridge_state_t *state;     //  Progress per publisher instance; NULL without --state-file
    hvn_bridge_metrics_t *metrics; //  /metrics; NULL without --metrics
    size_t brokers;                //  Entries in s_connect and s_service
    bool synced_once;              //  The first snapshot was applied
    bool resuming;                 //  A state file was read: the first snapshot resumes
    zlistx_t *held;                //  s_held_t of the first snapshot, for the resume
    int64_t tick_ms;               //  Monotonic time of the next save and render
    uint64_t saved_sum;            //  Confirms, drops and marks at the last commit
    size_t saved_size;             //  Instances in the file at the last save
    bool dirty;                    //  The file says less than the state
    uint64_t marks;                //  Changes made to the state
    int64_t save_logged_ms;        //  Last failing save logged
    size_t holes_logged;           //  Instances with a hole logged at this resume
    hvn_bridge_figures_t counts;   //  The run's own counters (bridge and replica filled at read)
} s_run_t;

static volatile sig_atomic_t s_report_due; //  SIGUSR1 arrived

//  Returns nothing; the SIGUSR1 handler.
static void s_on_usr1(int sig)
{
    (void)sig;
    s_report_due = 1;
}

//  Returns nothing; frees a kept snapshot item (a zlistx destructor).
static void s_held_free(void **item_p)
{
    s_held_t *held = *item_p;
    if (held) {
        free(held->body);
        free(held);
    }
    *item_p = NULL;
}

//  Returns nothing; queues a rendered body, waiting a while for room when
//  a resume would otherwise push the oldest out of a full queue.
static void s_push(s_run_t *run, char **body_p, size_t size, const uint8_t instance[16],
                   uint64_t seq)
{
    if (run->resuming && hvn_bridge_pending(run->bridge) >= (size_t)s_max_pending) {
        int64_t deadline = zclock_mono() + S_BACKPRESSURE_MS;
        while (hvn_bridge_pending(run->bridge) >= (size_t)s_max_pending &&
               hvn_bridge_connected(run->bridge) && zclock_mono() < deadline && !zsys_interrupted)
            hvn_bridge_pump(run->bridge, 50);
    }
    hvn_bridge_push_from(run->bridge, body_p, size, instance, seq);
    if (run->state) {
        hvn_bridge_state_mark(run->state, instance, seq);
        run->marks++;
    }
}

//  Returns nothing; queues one notification's messagingv2 body.
static void s_forward(s_run_t *run, const hvn_msg_t *msg)
{
    size_t size = 0;
    char *body = hvn_oslo_body(msg, &size);
    if (!body) {
        run->counts.unrendered++;
        zsys_error("cannot render notification %s as JSON", msg->message_id);
        return;
    }
    s_push(run, &body, size, msg->header.instance, msg->header.seq);
}

// --------------------------------------------------------------------------
//  Resuming after a restart: what the state file says was not confirmed
//  yet, asked from the brokers' rings

//  Orders kept snapshot items by instance, then seq.
static int s_held_compare(const void *a, const void *b)
{
    const s_held_t *x = *(const s_held_t *const *)a, *y = *(const s_held_t *const *)b;
    int c = memcmp(x->instance, y->instance, 16);
    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

//  The kept snapshot items, sorted, while a resume runs
typedef struct {
    s_held_t **items; //  Sorted by instance, then seq
    size_t count;     //  Entries in items
} s_holds_t;

//  Returns the number of kept snapshot items of instance with first <= seq
//  <= last published now, in seq order (each published once).
static size_t s_publish_held(s_run_t *run, s_holds_t *holds, const uint8_t instance[16],
                             uint64_t first, uint64_t last)
{
    size_t lo = 0, hi = holds->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(holds->items[mid]->instance, instance, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t published = 0;
    for (size_t i = lo; i < holds->count && memcmp(holds->items[i]->instance, instance, 16) == 0;
         i++) {
        s_held_t *held = holds->items[i];
        if (!held->body || held->seq < first || held->seq > last ||
            hvn_bridge_state_covers(run->state, instance, held->seq))
            continue;
        s_push(run, &held->body, held->size, instance, held->seq);
        published++;
    }
    run->counts.resume_from_snapshot += published;
    return published;
}

//  One REPLAY's items, rendered, in seq order
typedef struct {
    s_run_t *run;    //  The run
    zlistx_t *items; //  s_held_t
} s_chunk_t;

//  Returns nothing; keeps one replayed item (an hvn_snapshot_fn).
static void s_chunk_item(const hvn_msg_t *msg, void *arg)
{
    s_chunk_t *chunk = arg;
    if (msg->header.kind != HVN_KIND_NOTIFICATION)
        return;
    s_held_t *held = calloc(1, sizeof(*held));
    if (held)
        held->body = hvn_oslo_body(msg, &held->size);
    if (!held || !held->body) {
        chunk->run->counts.unrendered++;
        zsys_error("cannot render notification %s as JSON", msg->message_id);
        free(held);
        return;
    }
    memcpy(held->instance, msg->header.instance, 16);
    held->seq = msg->header.seq;
    if (!zlistx_add_end(chunk->items, held)) {
        chunk->run->counts.unrendered++;
        zsys_error("out of memory: notification %s not replayed", msg->message_id);
        s_held_free((void **)&held);
    }
}

//  Returns 0 with the REPLAY answer of the first broker that gives one
//  (items in chunk, END in *end), or -1 when none did. A broker that does
//  not answer is not asked again during this resume (its subscriber goes).
static int s_replay(hvn_subscriber_t **subs, size_t count, const uint8_t instance[16],
                    uint64_t first, uint64_t last, s_chunk_t *chunk, hvn_end_t *end)
{
    for (size_t i = 0; i < count && !zsys_interrupted; i++) {
        if (!subs[i])
            continue;
        zlistx_purge(chunk->items);
        if (hvn_subscriber_replay(subs[i], instance, first, last, s_chunk_item, chunk, end,
                                  S_REPLAY_TIMEOUT_MS) >= 0)
            return 0;
        zsys_warning("resume: the service %s did not answer REPLAY: not asked again during "
                     "this resume",
                     s_service[i]);
        hvn_subscriber_destroy(&subs[i]);
    }
    zlistx_purge(chunk->items);
    return -1;
}

//  Returns nothing; logs a resume's hole of one instance (the first few
//  of a resume one by one).
static void s_log_hole(s_run_t *run, const uint8_t instance[16], uint64_t from, uint64_t ring_first,
                       size_t from_snapshot)
{
    if (run->holes_logged++ >= S_RESUME_LOG_MAX)
        return;
    char text[37];
    uuid_unparse_lower(instance, text);
    if (ring_first)
        zsys_warning("resume: publisher instance %s: seqs %" PRIu64 "..%" PRIu64
                     " are no longer in the brokers' rings (--ring-bytes); published the "
                     "newest notification of %zu of its nodes from the snapshot instead",
                     text, from, ring_first - 1, from_snapshot);
    else
        zsys_warning("resume: publisher instance %s: nothing after seq %" PRIu64
                     " is in the brokers' rings; published the newest notification of %zu of "
                     "its nodes from the snapshot instead",
                     text, from - 1, from_snapshot);
}

//  Returns nothing; publishes what the rings hold of one instance after
//  done, from the snapshot what they no longer hold.
static void s_resume_instance(s_run_t *run, hvn_subscriber_t **subs, s_holds_t *holds,
                              const uint8_t instance[16], uint64_t done)
{
    s_chunk_t chunk = {run, zlistx_new()};
    if (!chunk.items)
        return;
    zlistx_set_destructor(chunk.items, s_held_free);
    uint64_t next = done + 1;
    for (bool first = true; !zsys_interrupted; first = false) {
        uint64_t last = next + HVN_REPLAY_SPAN_MAX - 1;
        hvn_end_t end = {.count = 0};
        if (s_replay(subs, run->brokers, instance, next, last, &chunk, &end) != 0) {
            char text[37];
            uuid_unparse_lower(instance, text);
            size_t n = s_publish_held(run, holds, instance, next, UINT64_MAX);
            if (run->holes_logged++ < S_RESUME_LOG_MAX)
                zsys_warning("resume: no broker answered REPLAY of publisher instance %s from "
                             "seq %" PRIu64 "; published the newest notification of %zu of its "
                             "nodes from the snapshot",
                             text, next, n);
            break;
        }
        if (first && (end.first == 0 || end.first > next)) {
            //  A hole: the rings no longer reach back to next
            size_t n =
                s_publish_held(run, holds, instance, next, end.first ? end.first - 1 : UINT64_MAX);
            if (end.first)
                run->counts.resume_missed += end.first - next;
            if (end.first || n)
                s_log_hole(run, instance, next, end.first, n);
        }
        for (s_held_t *held = zlistx_first(chunk.items); held; held = zlistx_next(chunk.items)) {
            if (hvn_bridge_state_covers(run->state, instance, held->seq))
                continue;
            s_push(run, &held->body, held->size, instance, held->seq);
            run->counts.resumed++;
        }
        zlistx_purge(chunk.items);
        if (end.last == 0 || last >= end.last)
            break; //  Nothing further in the rings: the live stream goes on from here
        next = end.first > last + 1 ? end.first : last + 1;
    }
    zlistx_destroy(&chunk.items);
}

//  What a resume walks
typedef struct {
    uint8_t (*instances)[16]; //  Known instances
    uint64_t *done;           //  Their done
    size_t count;             //  Entries
} s_todo_t;

//  Returns nothing; gathers one instance to resume (an hvn_bridge_state_fn).
static void s_todo_add(const uint8_t instance[16], uint64_t done, void *arg)
{
    s_todo_t *todo = arg;
    memcpy(todo->instances[todo->count], instance, 16);
    todo->done[todo->count++] = done;
}

//  Returns nothing; after the first snapshot of a bridge that read a state
//  file: every known publisher instance is replayed from the brokers'
//  rings, from just after what RabbitMQ had confirmed.
static void s_resume(s_run_t *run)
{
    int64_t started = zclock_mono();
    size_t capacity = hvn_bridge_state_size(run->state);
    s_todo_t todo = {calloc(capacity ? capacity : 1, 16),
                     calloc(capacity ? capacity : 1, sizeof(uint64_t)), 0};
    s_holds_t holds = {calloc(zlistx_size(run->held) + 1, sizeof(s_held_t *)), 0};
    hvn_subscriber_t *subs[HVN_REPLICA_BROKERS_MAX] = {NULL};
    if (!todo.instances || !todo.done || !holds.items) {
        zsys_error("resume: out of memory: nothing replayed");
        goto done;
    }
    hvn_bridge_state_foreach(run->state, s_todo_add, &todo);
    for (s_held_t *held = zlistx_first(run->held); held; held = zlistx_next(run->held))
        holds.items[holds.count++] = held;
    qsort(holds.items, holds.count, sizeof(*holds.items), s_held_compare);
    const char *topics[] = {"compute_node."};
    for (size_t i = 0; i < run->brokers; i++) {
        //  For the service socket only: its SUB is never read
        hvn_subscriber_opts_t opts = {.endpoint = s_connect[i],
                                      .service = s_service[i],
                                      .topics = topics,
                                      .topic_count = 1,
                                      .curve_secret = s_curve_secret,
                                      .curve_server = s_server_key,
                                      .rcvhwm = 1,
                                      .replay_timeout_ms = -1};
        subs[i] = hvn_subscriber_new(&opts);
    }
    for (size_t i = 0; i < todo.count && !zsys_interrupted; i++)
        s_resume_instance(run, subs, &holds, todo.instances[i], todo.done[i]);
    if (run->holes_logged > S_RESUME_LOG_MAX)
        zsys_warning("resume: %zu more publisher instances had a hole or went unanswered "
                     "(not logged one by one)",
                     run->holes_logged - S_RESUME_LOG_MAX);
    zsys_info("resumed %zu publisher instances in %" PRId64 " ms: %" PRIu64
              " notifications replayed from the brokers' rings, %" PRIu64
              " missed that the rings no longer held, %" PRIu64 " nodes published from the "
              "snapshot in their place",
              todo.count, zclock_mono() - started, run->counts.resumed, run->counts.resume_missed,
              run->counts.resume_from_snapshot);
done:
    for (size_t i = 0; i < run->brokers; i++)
        hvn_subscriber_destroy(&subs[i]);
    free(holds.items);
    free(todo.instances);
    free(todo.done);
    zlistx_destroy(&run->held);
}

//  Returns nothing; an item of the first snapshot of a resuming bridge:
//  its instance is resumed, and the item kept in case the rings no longer
//  hold what led to it.
static void s_hold(s_run_t *run, const hvn_msg_t *msg)
{
    uint64_t done = 0;
    hvn_bridge_state_touch(run->state, msg->header.instance);
    if (hvn_bridge_state_done(run->state, msg->header.instance, &done) && msg->header.seq <= done)
        return; //  Published by an earlier run
    s_held_t *held = calloc(1, sizeof(*held));
    if (held) {
        held->body = hvn_oslo_body(msg, &held->size);
        memcpy(held->instance, msg->header.instance, 16);
        held->seq = msg->header.seq;
    }
    if (!held || !held->body || !zlistx_add_end(run->held, held)) {
        s_held_free((void **)&held);
        run->counts.unrendered++;
        zsys_error("cannot keep notification %s for the resume", msg->message_id);
    }
}

// --------------------------------------------------------------------------
//  The replica's changes

static void s_save(s_run_t *run, bool force);

//  Returns nothing; a live notification: forwarded, unless a resume has
//  yet to run (it will replay it) or has published it already.
static void s_on_live(s_run_t *run, const hvn_msg_t *msg)
{
    if (run->state) {
        if (run->resuming) {
            hvn_bridge_state_touch(run->state, msg->header.instance);
            return;
        }
        if (hvn_bridge_state_covers(run->state, msg->header.instance, msg->header.seq)) {
            run->counts.covered++;
            return;
        }
    }
    s_forward(run, msg);
}

//  Returns nothing; the first snapshot was applied: a resume runs.
static void s_on_first_sync(s_run_t *run)
{
    if (run->resuming) {
        s_resume(run);
        run->resuming = false;
    }
    zsys_info("following %zu nodes", hvn_replica_size(run->replica));
    run->synced_once = true;
    s_save(run, false); //  Where every publisher instance stands, at once
}

//  Returns nothing; one change of the replica's view (the hvn_replica_fn).
static void s_on_change(const hvn_replica_event_t *event, void *arg)
{
    s_run_t *run = arg;
    switch (event->change) {
    case HVN_REPLICA_REPLACED:
        if (!run->synced_once)
            s_on_first_sync(run);
        return;
    case HVN_REPLICA_HEARTBEAT:
        if (run->state && event->msg && event->msg->event == HVN_EVENT_HEARTBEAT)
            hvn_bridge_state_heard(run->state, event->msg->header.instance);
        return;
    default:
        break;
    }
    if (!event->from_snapshot) {
        s_on_live(run, event->msg);
        return;
    }
    if (!run->synced_once && event->msg && run->resuming) {
        s_hold(run, event->msg);
        return;
    }
    if (!run->synced_once && !s_fleet) {
        //  The fleet as it was before the bridge started: counts as done
        if (run->state && event->msg) {
            hvn_bridge_state_mark(run->state, event->msg->header.instance, event->msg->header.seq);
            run->marks++;
        }
        return;
    }
    if (event->msg) {
        if (run->synced_once)
            run->counts.from_repairs++;
        s_forward(run, event->msg);
    } else if (event->node) {
        //  Deleted while notifications were lost: the delete itself is gone
        run->counts.unforwardable++;
        zsys_warning("node %s (%s) is gone from the brokers, its delete notification was lost: "
                     "nothing to publish",
                     event->node->node.uuid, event->node->host);
    }
}

// --------------------------------------------------------------------------
//  Counters, state file, the loop

//  Returns nothing; fills *out with every figure of the run.
static void s_figures(s_run_t *run, hvn_bridge_figures_t *out)
{
    *out = run->counts;
    hvn_bridge_stats(run->bridge, &out->bridge);
    hvn_replica_stats(run->replica, &out->replica);
    out->state_instances = run->state ? hvn_bridge_state_size(run->state) : 0;
}

//  Returns nothing; logs the counters on one line.
static void s_report(s_run_t *run)
{
    hvn_bridge_figures_t f;
    s_figures(run, &f);
    const hvn_bridge_stats_t *b = &f.bridge;
    const hvn_replica_stats_t *r = &f.replica;
    zsys_info("received %" PRIu64 ", published %" PRIu64 ", confirmed %" PRIu64 ", re-sent %" PRIu64
              ", dropped %" PRIu64 ", pending %" PRIu64 ", reconnects %" PRIu64 " (lost %" PRIu64
              ", failed attempts %" PRIu64 ", blocked %" PRIu64 ", nacked %" PRIu64
              "); confirm latency p50 %" PRIu64 " us, p99 %" PRIu64 " us, max %" PRIu64
              " us; from repairs %" PRIu64 ", unforwardable deletes %" PRIu64
              ", unrendered %" PRIu64 "; brokers: duplicates %" PRIu64 ", losses %" PRIu64
              ", repaired %" PRIu64 "; resumed %" PRIu64 ", resume missed %" PRIu64
              ", resume from snapshot %" PRIu64 ", covered %" PRIu64 "; state: instances %" PRIu64
              ", saves %" PRIu64 ", failed saves %" PRIu64,
              b->received, b->published, b->confirmed, b->resent, b->dropped, b->pending,
              b->reconnects, b->lost, b->failures, b->blocked, b->nacked, b->latency_p50_us,
              b->latency_p99_us, b->latency_max_us, f.from_repairs, f.unforwardable, f.unrendered,
              r->duplicates, r->losses, r->repaired, f.resumed, f.resume_missed,
              f.resume_from_snapshot, f.covered, f.state_instances, f.state_saves,
              f.state_failures);
}

//  Returns nothing; a body not yet confirmed holds its instance's done
//  back (an hvn_bridge_origin_fn).
static void s_hold_back(const uint8_t instance[16], uint64_t seq, void *arg)
{
    hvn_bridge_state_hold(arg, instance, seq);
}

//  Returns nothing; moves each instance's done up to what RabbitMQ has
//  confirmed and replaces the state file, when anything changed since the
//  last save (or always when force is true).
static void s_save(s_run_t *run, bool force)
{
    if (!run->state || run->resuming)
        return;
    hvn_bridge_stats_t b;
    hvn_bridge_stats(run->bridge, &b);
    uint64_t sum = b.confirmed + b.dropped + run->marks;
    if (sum == run->saved_sum && !run->dirty && !force)
        return;
    run->saved_sum = sum;
    hvn_bridge_state_begin(run->state);
    hvn_bridge_unconfirmed(run->bridge, s_hold_back, run->state);
    if (hvn_bridge_state_commit(run->state) || hvn_bridge_state_size(run->state) != run->saved_size)
        run->dirty = true;
    if (!run->dirty && !force)
        return; //  The file would say the same
    if (hvn_bridge_state_save(run->state, s_state_file) == 0) {
        run->counts.state_saves++;
        run->saved_size = hvn_bridge_state_size(run->state);
        run->dirty = false;
        return;
    }
    run->counts.state_failures++;
    int64_t now = zclock_mono();
    if (!run->save_logged_ms || now - run->save_logged_ms >= S_SAVE_FAIL_LOG_MS) {
        zsys_error("cannot write the state file %s: %s (%" PRIu64 " failed writes)", s_state_file,
                   strerror(errno), run->counts.state_failures);
        run->save_logged_ms = now;
    }
}

//  Returns nothing; about once a second: the state file, /metrics.
static void s_tick(s_run_t *run)
{
    int64_t now = zclock_mono();
    if (now < run->tick_ms)
        return;
    run->tick_ms = now + HVN_BRIDGE_METRICS_REFRESH_MS;
    s_save(run, false);
    if (run->metrics) {
        hvn_bridge_figures_t f;
        s_figures(run, &f);
        hvn_bridge_metrics_update(run->metrics, &f);
    }
}

//  Returns nothing; follows the brokers until SIGINT/SIGTERM.
static void s_follow(s_run_t *run)
{
    while (true) {
        if (s_report_due) {
            s_report_due = 0;
            s_report(run);
        }
        s_tick(run);
        bool busy = hvn_bridge_busy(run->bridge);
        if (hvn_replica_poll(run->replica, busy ? 0 : 100) < 0)
            break;
        hvn_bridge_pump(run->bridge, busy ? 2 : 0);
    }
}

//  Returns nothing; waits up to S_FLUSH_MS for RabbitMQ to confirm what is
//  still pending.
static void s_flush(s_run_t *run)
{
    int64_t deadline = zclock_mono() + S_FLUSH_MS;
    while (hvn_bridge_pending(run->bridge) && zclock_mono() < deadline)
        hvn_bridge_pump(run->bridge, 50);
    size_t left = hvn_bridge_pending(run->bridge);
    if (left)
        zsys_warning("stopping with %zu notifications not confirmed by RabbitMQ%s", left,
                     run->state ? ": a restart replays them" : "");
}

//  Returns 0 after reading the state file (or finding none), -1 (logged)
//  when it cannot be used.
static int s_state_open(s_run_t *run)
{
    if (!s_state_file)
        return 0;
    run->state = hvn_bridge_state_new();
    run->held = zlistx_new();
    if (!run->state || !run->held) {
        zsys_error("out of memory");
        return -1;
    }
    zlistx_set_destructor(run->held, s_held_free);
    char err[512];
    int rc = hvn_bridge_state_load(run->state, s_state_file, err, sizeof(err));
    if (rc < 0) {
        zsys_error("--state-file: %s (remove it to start from the present)", err);
        return -1;
    }
    run->resuming = rc == 1;
    if (run->resuming)
        zsys_info("state file %s: %zu publisher instances; replaying what they sent since",
                  s_state_file, hvn_bridge_state_size(run->state));
    else
        zsys_info("no state file %s yet: starting from the present", s_state_file);
    //  Writable? Found out now rather than at the first save. Nothing is
    //  written before the first snapshot: an empty file would make every
    //  publisher instance look new at the next start (replayed from seq 1)
    if (hvn_bridge_state_probe(s_state_file) != 0) {
        zsys_error("--state-file: cannot write %s: %s", s_state_file, strerror(errno));
        return -1;
    }
    return 0;
}

//  Returns nothing; frees what a run holds.
static void s_run_close(s_run_t *run)
{
    hvn_bridge_metrics_destroy(&run->metrics);
    hvn_replica_destroy(&run->replica);
    hvn_bridge_destroy(&run->bridge);
    hvn_bridge_state_destroy(&run->state);
    zlistx_destroy(&run->held);
}

//  Returns the exit status: 0 after a signal, 1 on failure, 2 on bad usage.
int main(int argc, char *argv[])
{
    hvn_opt_parse(&s_program, argc, argv);
    if (!s_url)
        hvn_opt_fail(&s_program, "--transport-url is required");
    if (!s_curve_secret != !s_server_key)
        hvn_opt_fail(&s_program, "--curve-secret and --server-key go together");
    if (!s_connect[0])
        s_connect[0] = "tcp://127.0.0.1:5562";
    if (!s_service[0])
        s_service[0] = "tcp://127.0.0.1:5563";
    size_t brokers = 0, services = 0;
    while (s_connect[brokers])
        brokers++;
    while (s_service[services])
        services++;
    if (brokers != services)
        hvn_opt_fail(&s_program, "each --connect needs its --service (%zu and %zu given)", brokers,
                     services);
    char err[256];
    hvn_amqp_url_t *url = hvn_amqp_url_new(s_url, err, sizeof(err));
    if (!url)
        hvn_opt_fail(&s_program, "--transport-url: %s", err);
    char *routing_key = zsys_sprintf("%s.info", s_topic);

    zsys_set_logident(S_NAME);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zsys_init();
    struct sigaction usr1 = {.sa_handler = s_on_usr1};
    sigemptyset(&usr1.sa_mask);
    sigaction(SIGUSR1, &usr1, NULL);

    s_run_t run = {.brokers = brokers};
    int code = 1;
    if (s_state_open(&run) != 0)
        goto end;
    if (s_metrics && !(run.metrics = hvn_bridge_metrics_new(s_metrics, err, sizeof(err)))) {
        zsys_error("--metrics: %s", err);
        goto end;
    }
    hvn_bridge_opts_t bopts = {.url = url,
                               .exchange = s_exchange,
                               .routing_key = routing_key,
                               .durable = s_durable,
                               .max_pending = (size_t)s_max_pending,
                               .window = (size_t)s_window};
    run.bridge = hvn_bridge_new(&bopts);
    hvn_replica_opts_t ropts = {.backends = s_connect,
                                .services = s_service,
                                .broker_count = brokers,
                                .curve_secret = s_curve_secret,
                                .curve_server = s_server_key,
                                .fn = s_on_change,
                                .arg = &run};
    run.replica = run.bridge ? hvn_replica_new(&ropts) : NULL;
    if (run.replica) {
        s_follow(&run);
        s_flush(&run);
        s_save(&run, true);
        s_report(&run);
        code = 0;
    }
end:
    s_run_close(&run);
    hvn_amqp_url_destroy(&url);
    zstr_free(&routing_key);
    return code;
}
