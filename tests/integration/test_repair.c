/*  test_repair.c — a seq gap repaired by REPLAY from the broker's ring, and
    by snapshot only when the ring no longer holds what is missing.

    Loss is made the way it happens: a subscriber that does not read while
    a burst passes the broker, whose per-subscriber queue (--subscriber-hwm)
    is small here so the burst stays small. hvn-pub is kept running after
    the burst so that its heartbeats, which carry its last seq, reveal a gap
    at the tail too.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_replica.h"
#include "hvn_subscriber.h"

#define S_HOST "cmp-401"
#define S_NODES 300
#define S_ROUNDS 10
#define S_WAIT_MS 60000

TestSuite(repair, .timeout = 110);

//  Returns a node uuid for index i, in buf.
static const char *s_uuid(char *buf, size_t size, int i)
{
    snprintf(buf, size, "6f1c1e0a-4a7b-4b8e-9d7e-%012d", i);
    return buf;
}

//  Starts a broker on env with a small per-subscriber queue and the given
//  --ring-bytes.
static void s_broker(it_env_t *env, const char *ring_bytes)
{
    it_env_init(env);
    const char *extra[] = {"--heartbeat-ms", "500",       "--subscriber-hwm", "500",
                           "--ring-bytes",   ring_bytes, NULL};
    it_broker_start(env, extra);
}

//  Returns hvn-pub, still running, after it published the burst (S_NODES
//  creates, then S_ROUNDS changes of each) and the broker counts every
//  notification it took: their number in *notifications.
static it_proc_t *s_burst(it_env_t *env, int64_t *notifications)
{
    const char *argv[] = {"hvn-pub", "--connect", env->frontend, "--host", S_HOST,
                          "--heartbeat-ms", "300", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub);
    char uuid[64], line[2048];
    for (int r = 0; r <= S_ROUNDS; r++)
        for (int n = 0; n < S_NODES; n++)
            cr_assert_eq(it_write(pub, it_node_json(line, sizeof(line), n + 1,
                                                    s_uuid(uuid, sizeof(uuid), n), S_HOST, r,
                                                    1024)),
                         0);
    //  Done when the broker's count stands still across a few heartbeats
    int64_t deadline = zclock_mono() + S_WAIT_MS, last = -1, now;
    while ((now = it_broker_stat(env->service, "notifications", 2000)) != last &&
           zclock_mono() < deadline) {
        last = now;
        zclock_sleep(700);
    }
    *notifications = now;
    cr_assert_geq(now, S_NODES * 2, "the burst did not pass the broker");
    return pub;
}

Test(repair, a_subscriber_that_lost_messages_gets_them_back_by_replay_and_no_snapshot)
{
    it_env_t env;
    s_broker(&env, "64M");
    hvn_subscriber_opts_t opts = {.endpoint = env.backend, .service = env.service, .rcvhwm = 10};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    cr_assert_not_null(sub);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    int64_t total;
    it_proc_t *pub = s_burst(&env, &total);

    //  Every seq, once, in order
    hvn_msg_t *msg = calloc(1, sizeof(*msg));
    uint64_t next = 1;
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while ((int64_t)next <= total && zclock_mono() < deadline)
        if (hvn_subscriber_recv(sub, msg, 500) == 1 && msg->header.kind == HVN_KIND_NOTIFICATION) {
            cr_assert_eq(msg->header.seq, next, "seq %lu after %lu",
                         (unsigned long)msg->header.seq, (unsigned long)next - 1);
            next++;
        }
    hvn_subscriber_stats_t st;
    hvn_subscriber_stats(sub, &st);
    cr_expect_eq((int64_t)next - 1, total, "%lu of %lld notifications", (unsigned long)next - 1,
                 (long long)total);
    cr_expect_geq(st.replays, 1, "nothing was lost: no REPLAY");
    cr_expect_gt(st.replayed, 0);
    cr_expect_eq(st.gaps, 0, "%lu gaps left", (unsigned long)st.gaps);
    cr_expect_eq(st.replays_short, 0);
    cr_expect_eq(st.snapshots, 0);
    fprintf(stderr, "repair: %lld notifications, %lu replays brought back %lu\n",
            (long long)total, (unsigned long)st.replays, (unsigned long)st.replayed);
    cr_expect_geq(it_broker_stat(env.service, "replays", 2000), 1);
    free(msg);
    hvn_subscriber_destroy(&sub);
    it_stop(&pub, SIGTERM, 5000);
    it_env_fini(&env);
}

//  Returns true when the replica holds exactly the burst's nodes, each at
//  its last round.
static bool s_is_truth(hvn_replica_t *replica)
{
    if (hvn_replica_size(replica) != S_NODES)
        return false;
    for (int n = 0; n < S_NODES; n++) {
        char uuid[64];
        const hvn_replica_node_t *node = hvn_replica_get(replica, s_uuid(uuid, sizeof(uuid), n));
        if (!node || node->node.vcpus_used != S_ROUNDS)
            return false;
    }
    return true;
}

//  Runs a replica with a tiny receive queue through the burst without
//  reading it, then reads until it is the truth; returns its counters.
static hvn_replica_stats_t s_slow_replica(const char *ring_bytes)
{
    it_env_t env;
    s_broker(&env, ring_bytes);
    const char *backends[] = {env.backend};
    const char *services[] = {env.service};
    hvn_replica_opts_t opts = {.backends = backends, .services = services, .broker_count = 1,
                               .rcvhwm = 10, .snapshot_timeout_ms = 10000, .heartbeat_ms = 500};
    hvn_replica_t *replica = hvn_replica_new(&opts);
    cr_assert_not_null(replica);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (!hvn_replica_synced(replica) && zclock_mono() < deadline)
        hvn_replica_poll(replica, 50);
    cr_assert(hvn_replica_synced(replica));
    int64_t total;
    it_proc_t *pub = s_burst(&env, &total);
    deadline = zclock_mono() + S_WAIT_MS;
    while (!(hvn_replica_synced(replica) && s_is_truth(replica)) && zclock_mono() < deadline)
        hvn_replica_poll(replica, 100);
    hvn_replica_stats_t st;
    hvn_replica_stats(replica, &st);
    cr_expect(s_is_truth(replica), "not the truth: %zu nodes, %lu applied, %lu losses",
              hvn_replica_size(replica), (unsigned long)st.applied, (unsigned long)st.losses);
    fprintf(stderr,
            "repair: ring %s: %lld notifications, %lu replays (%lu back, %lu short), %lu "
            "snapshots, %lu repairs\n",
            ring_bytes, (long long)total, (unsigned long)st.replays, (unsigned long)st.replayed,
            (unsigned long)st.replays_short, (unsigned long)st.snapshots,
            (unsigned long)st.repairs);
    hvn_replica_destroy(&replica);
    it_stop(&pub, SIGTERM, 5000);
    it_env_fini(&env);
    return st;
}

Test(repair, a_slow_replica_repairs_by_replay_and_ends_equal_to_the_truth)
{
    hvn_replica_stats_t st = s_slow_replica("64M");
    cr_expect_geq(st.replays, 1, "nothing was lost: no REPLAY");
    cr_expect_eq(st.repairs, 0, "a snapshot repaired what the ring held");
    cr_expect_eq(st.snapshots, 1, "only the first snapshot");
    cr_expect_eq(st.losses, 0);
}

Test(repair, a_replica_falls_back_to_a_snapshot_once_the_ring_has_wrapped)
{
    hvn_replica_stats_t st = s_slow_replica("32K");
    cr_expect_geq(st.replays_short, 1, "the REPLAY was not short");
    cr_expect_geq(st.repairs, 1, "no snapshot repaired the gap");
}
