/*  test_replica.c — the replica against real brokers: one of two brokers
    killed mid-stream, and a subscriber too slow to keep up.

    The two-broker case drives hvn-sub in lockstep with hvn-pub: one input
    line, one printed notification, so a lost or a doubled notification
    shows at the line where it happens. The slow-subscriber case runs two
    replicas in this process: one with a tiny receive queue that is not read
    while a burst passes the broker, one read all along.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_replica.h"

#define S_HOST "cmp-301"
#define S_LINE_MS 15000 //  Longest wait for one line
#define S_WAIT_MS 60000 //  Longest wait for a whole phase

TestSuite(replica, .timeout = 110);

//  Returns a node uuid for index i, in buf.
static const char *s_uuid(char *buf, size_t size, int i)
{
    snprintf(buf, size, "6f1c1e0a-4a7b-4b8e-9d7e-%012d", i);
    return buf;
}

//  Waits until a broker caches `nodes` nodes. Returns 0, or -1 on timeout.
static int s_wait_cached(const char *service, int64_t nodes)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (zclock_mono() < deadline) {
        if (it_broker_stat(service, "cache_nodes", 1000) == nodes)
            return 0;
        zclock_sleep(10);
    }
    return -1;
}

//  Returns the number after `label` in the exit report on text, or -1.
static long s_count_after(const char *text, const char *label)
{
    const char *report = text ? strstr(text, "received ") : NULL;
    const char *at = report ? strstr(report, label) : NULL;
    return at ? strtol(at + strlen(label), NULL, 10) : -1;
}

Test(replica, two_brokers_one_killed_every_notification_printed_once)
{
    enum { NODES = 4, ROUNDS = 30, KILL_AT = 12 };
    it_env_t a, b;
    const char *fast[] = {"--heartbeat-ms", "300", NULL};
    it_env_pair(&a, &b, fast);

    const char *sub_argv[] = {"hvn-sub",        "--snapshot", "--connect", a.backend,   "--service",
                              a.service,        "--connect",  b.backend,   "--service", b.service,
                              "--heartbeat-ms", "300",        "--timeout", "100",       NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, true);
    cr_assert_not_null(sub);
    cr_assert_eq(it_wait_subscriptions(a.service, 2, S_WAIT_MS), 0);
    cr_assert_eq(it_wait_subscriptions(b.service, 2, S_WAIT_MS), 0);

    const char *pub_argv[] = {"hvn-pub", "--connect", a.frontend,       "--connect", b.frontend,
                              "--host",  S_HOST,      "--heartbeat-ms", "300",       NULL};
    it_proc_t *pub = it_spawn(pub_argv, true, false, false);
    cr_assert_not_null(pub);
    zhashx_t *ids = zhashx_new();
    char uuid[64], line[2048];
    for (int n = 0; n < NODES; n++) {
        it_write(pub, it_node_json(line, sizeof(line), n + 1, s_uuid(uuid, sizeof(uuid), n), S_HOST,
                                   0, 1024));
        json_t *obj = it_next_json(sub, S_LINE_MS);
        it_expect_event(obj, "compute_node.create", uuid, 0, ids);
        json_decref(obj);
    }
    //  Both brokers hold the fleet: the publisher reaches both
    cr_assert_eq(s_wait_cached(a.service, NODES), 0);
    cr_assert_eq(s_wait_cached(b.service, NODES), 0);

    for (int r = 1; r <= ROUNDS; r++) {
        if (r == KILL_AT)
            cr_assert_eq(it_stop(&a.broker, SIGKILL, 5000), 128 + SIGKILL);
        for (int n = 0; n < NODES; n++) {
            it_write(pub, it_node_json(line, sizeof(line), n + 1, s_uuid(uuid, sizeof(uuid), n),
                                       S_HOST, r, 1024));
            json_t *obj = it_next_json(sub, S_LINE_MS);
            it_expect_event(obj, "compute_node.update", uuid, r, ids);
            json_decref(obj);
        }
    }
    //  Past the dead broker's silence (3 x 300 ms) and the repair it
    //  causes: a repair of a whole view prints nothing
    char extra[8192];
    cr_expect_eq(it_read_line(sub, extra, sizeof(extra), 2500), -1, "printed more: %s", extra);
    cr_assert_eq(zhashx_size(ids), NODES * (ROUNDS + 1));

    cr_expect_eq(it_finish(&pub, S_WAIT_MS), 0);
    //  At exit, the counters: the dead broker's silence, detected and repaired
    int code;
    char *err = it_term_stderr(sub, 10000, &code);
    cr_expect_eq(code, 0);
    long losses = s_count_after(err, "losses detected ");
    cr_expect_geq(losses, 1, "stderr: %s", err);
    cr_expect_eq(s_count_after(err, "repaired "), losses, "stderr: %s", err);
    cr_expect_eq(s_count_after(err, "refused "), 0, "stderr: %s", err);
    free(err);
    it_stop(&sub, SIGKILL, 1000);
    zhashx_destroy(&ids);
    it_env_fini(&a);
    it_env_fini(&b);
}

Test(replica, late_joiner_prints_the_cached_fleet_and_the_table_shows_it)
{
    enum { NODES = 3 };
    it_env_t env;
    it_env_init(&env);
    it_broker_start(&env, NULL);
    const char *pub_argv[] = {"hvn-pub", "--connect", env.frontend, "--host", S_HOST, NULL};
    it_proc_t *pub = it_spawn(pub_argv, true, false, false);
    cr_assert_not_null(pub);
    char uuid[64], line[2048];
    for (int n = 0; n < NODES; n++)
        it_write(pub, it_node_json(line, sizeof(line), n + 1, s_uuid(uuid, sizeof(uuid), n), S_HOST,
                                   n + 1, 1024));
    it_write(pub, "{\"uuid\": \"6f1c1e0a-4a7b-4b8e-9d7e-000000000000\", \"deleted\": true}\n");
    cr_assert_eq(it_finish(&pub, S_WAIT_MS), 0);
    cr_assert_eq(s_wait_cached(env.service, NODES - 1), 0);

    const char *sub_argv[] = {"hvn-sub",   "--snapshot", "--connect", env.backend,
                              "--service", env.service,  "--count",   "2",
                              "--timeout", "20",         NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, false);
    zhashx_t *ids = zhashx_new();
    for (int n = 0; n < NODES - 1; n++) {
        json_t *obj = it_next_json(sub, S_LINE_MS);
        json_t *data = json_object_get(json_object_get(obj, "payload"), "nova_object.data");
        const char *got = json_string_value(json_object_get(data, "uuid"));
        cr_assert_not_null(got);
        cr_assert_neq(strcmp(got, "6f1c1e0a-4a7b-4b8e-9d7e-000000000000"), 0, "deleted node");
        int index = atoi(got + strlen("6f1c1e0a-4a7b-4b8e-9d7e-"));
        it_expect_event(obj, "compute_node.create", got, index + 1, ids);
        json_decref(obj);
    }
    cr_expect_eq(it_wait(sub, S_WAIT_MS), 0, "hvn-sub did not exit after --count");
    it_stop(&sub, SIGKILL, 1000);

    //  Not a terminal: the table is printed once, at exit
    const char *table_argv[] = {"hvn-sub",   "--format",  "table",     "--connect", env.backend,
                                "--service", env.service, "--timeout", "1",         NULL};
    it_proc_t *table = it_spawn(table_argv, false, true, false);
    char *out = it_read_stdout(table, S_WAIT_MS);
    cr_expect_eq(it_wait(table, S_WAIT_MS), 0);
    it_stop(&table, SIGKILL, 1000);
    cr_assert(strstr(out, "HOST") && strstr(out, "VCPUS"), "no header: %s", out);
    cr_assert(strstr(out, "2/32") && strstr(out, "3/32"), "rows missing: %s", out);
    cr_assert_null(strstr(out, "1/32"), "the deleted node is shown: %s", out);
    cr_assert(strstr(out, "2 nodes"), "count: %s", out);
    cr_assert_null(strstr(out, "\033["), "escape codes off a terminal: %s", out);
    free(out);
    zhashx_destroy(&ids);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
//  A slow subscriber

//  Field-by-field comparison of two replicas' views, and of each against
//  the truth (every node at vcpus_used == rounds).
typedef struct {
    hvn_replica_t *other; //  The replica compared with
    int64_t vcpus_used;   //  What every node must hold
    int mismatches;       //  Nodes that differ
} s_compare_t;

//  Counts a node that differs from the other replica's or from the truth
//  (the hvn_replica_node_fn).
static int s_compare_node(const hvn_replica_node_t *node, void *arg)
{
    s_compare_t *cmp = arg;
    const hvn_replica_node_t *other = hvn_replica_get(cmp->other, node->node.uuid);
    if (!other || !hvn_node_equal(&node->node, &other->node) || node->seq != other->seq ||
        node->node.vcpus_used != cmp->vcpus_used || strcmp(node->host, S_HOST) != 0)
        cmp->mismatches++;
    return 0;
}

//  Returns true when replica holds exactly `nodes` nodes, each equal to
//  other's and at vcpus_used.
static bool s_equal(hvn_replica_t *replica, hvn_replica_t *other, size_t nodes, int64_t vcpus_used)
{
    if (hvn_replica_size(replica) != nodes || hvn_replica_size(other) != nodes)
        return false;
    s_compare_t cmp = {other, vcpus_used, 0};
    hvn_replica_foreach(replica, s_compare_node, &cmp);
    return cmp.mismatches == 0;
}

//  Returns a replica of env's broker with the given receive queue.
static hvn_replica_t *s_replica(it_env_t *env, int rcvhwm)
{
    const char *backends[] = {env->backend};
    const char *services[] = {env->service};
    hvn_replica_opts_t opts = {.backends = backends,
                               .services = services,
                               .broker_count = 1,
                               .rcvhwm = rcvhwm,
                               .snapshot_timeout_ms = 10000,
                               .heartbeat_ms = 500};
    hvn_replica_t *replica = hvn_replica_new(&opts);
    cr_assert_not_null(replica);
    return replica;
}

//  The burst: NODES creates, then ROUNDS changes of every node, written
//  to hvn-pub's stdin by a thread while the test reads the replicas.
typedef struct {
    it_proc_t *pub; //  hvn-pub, stdin piped
    int nodes;      //  Nodes
    int rounds;     //  Changes of each
    int failed;     //  Nonzero when a write failed
} s_burst_t;

//  Writes the whole burst; stdin stays open, so hvn-pub keeps running and
//  sending heartbeats.
static void *s_write_burst(void *arg)
{
    s_burst_t *burst = arg;
    char uuid[64], line[2048];
    for (int r = 0; r <= burst->rounds && !burst->failed; r++)
        for (int n = 0; n < burst->nodes && !burst->failed; n++)
            if (it_write(burst->pub,
                         it_node_json(line, sizeof(line), n + 1, s_uuid(uuid, sizeof(uuid), n),
                                      S_HOST, r, 1024)) != 0)
                burst->failed = 1;
    return NULL;
}

Test(replica, slow_subscriber_loses_sees_the_gap_and_repairs_while_others_keep_up)
{
    //  More notifications than the broker queues for one subscriber
    //  (100 000) plus the slow one's own queue
    enum { NODES = 500, ROUNDS = 300 };
    it_env_t env;
    it_env_init(&env);
    const char *hb[] = {"--heartbeat-ms", "500", NULL};
    it_broker_start(&env, hb);

    hvn_replica_t *slow = s_replica(&env, 10);
    hvn_replica_t *normal = s_replica(&env, 0);
    cr_assert_eq(it_wait_subscriptions(env.service, 4, S_WAIT_MS), 0);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (!(hvn_replica_synced(slow) && hvn_replica_synced(normal)) && zclock_mono() < deadline) {
        hvn_replica_poll(slow, 10);
        hvn_replica_poll(normal, 10);
    }
    cr_assert(hvn_replica_synced(slow) && hvn_replica_synced(normal));

    const char *pub_argv[] = {"hvn-pub", "--connect",      env.frontend, "--host",
                              S_HOST,    "--heartbeat-ms", "500",        NULL};
    it_proc_t *pub = it_spawn(pub_argv, true, false, false);
    cr_assert_not_null(pub);
    s_burst_t burst = {pub, NODES, ROUNDS, 0};
    pthread_t writer;
    cr_assert_eq(pthread_create(&writer, NULL, s_write_burst, &burst), 0);

    //  The slow replica is not read at all while the normal one follows
    //  the burst to its end
    deadline = zclock_mono() + S_WAIT_MS * 2;
    while (!s_equal(normal, normal, NODES, ROUNDS) && zclock_mono() < deadline)
        hvn_replica_poll(normal, 100);
    cr_assert(s_equal(normal, normal, NODES, ROUNDS), "the normal subscriber fell behind");
    cr_assert_geq(it_broker_stat(env.service, "uptime_ms", 5000), 0, "the broker is stalled");
    pthread_join(writer, NULL);
    cr_assert_eq(burst.failed, 0, "writing to hvn-pub failed");

    //  Now the slow one reads: it finds the gap and repairs
    deadline = zclock_mono() + S_WAIT_MS;
    while (!(hvn_replica_synced(slow) && s_equal(slow, normal, NODES, ROUNDS)) &&
           zclock_mono() < deadline)
        hvn_replica_poll(slow, 100);
    hvn_replica_stats_t st, nst;
    hvn_replica_stats(slow, &st);
    hvn_replica_stats(normal, &nst);
    cr_assert(s_equal(slow, normal, NODES, ROUNDS),
              "the slow replica is not the truth: %zu nodes, %lu received, %lu applied, %lu "
              "stale, %lu losses, normal applied %lu",
              hvn_replica_size(slow), (unsigned long)st.received, (unsigned long)st.applied,
              (unsigned long)st.stale, (unsigned long)st.losses, (unsigned long)nst.applied);
    cr_assert_gt(st.gaps, 0, "the slow subscriber lost nothing: the burst was too small");
    cr_assert_gt(st.missed, 0);
    cr_assert_geq(st.repairs, 1);
    cr_assert_eq(st.losses, st.repaired);
    cr_assert_eq(st.refused, 0);
    cr_assert_eq(nst.losses, 0, "the normal subscriber lost messages");
    cr_assert_eq(nst.refused, 0);
    cr_expect_eq(it_finish(&pub, S_WAIT_MS), 0, "hvn-pub failed");
    hvn_replica_destroy(&slow);
    hvn_replica_destroy(&normal);
    it_env_fini(&env);
}
