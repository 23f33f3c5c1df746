/*  test_reliability.c — restarts and big fleets, with the real programs.

    hvn-broker, hvn-pub and hvn-sub run as processes on ipc:// endpoints.
    Each hvn-pub is kept alive by an open stdin, so a test can change its
    nodes at any moment, kill the broker under it and watch the state come
    back. The broker's view is read the way a late joiner reads it: a
    SNAPSHOT on the service socket, every item decoded with the wire
    decoder and compared with what the publishers were told ("the truth").
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "hvn_proto.h"

#define S_HB_MS 1000    //  Heartbeat interval of brokers and publishers here
#define S_WAIT_MS 20000 //  Longest wait for a fleet to show up anywhere
#define S_PUBS 5        //  Publishers of the restart test
#define S_NODES 4       //  Nodes per publisher of the restart test
#define S_GONE (-1)     //  Truth value of a deleted node

TestSuite(reliability, .timeout = 100);

// --------------------------------------------------------------------------
//  Helpers: nodes, publishers, snapshots

//  Returns nothing; uuid holds the uuid of node n of publisher p.
static void s_uuid(char uuid[HVN_UUID_STR_LEN + 1], int p, int n)
{
    snprintf(uuid, HVN_UUID_STR_LEN + 1, "00000000-0000-4000-8000-%04d%08d", p, n);
}

//  Returns nothing; hvn-pub `pub` (host cmp-<p>) was told node n's current
//  state, vcpus_used = value.
static void s_report(it_proc_t *pub, int p, int n, int64_t value)
{
    char uuid[HVN_UUID_STR_LEN + 1], host[32], line[2048];
    s_uuid(uuid, p, n);
    snprintf(host, sizeof(host), "cmp-%d", p);
    cr_assert_eq(it_write(pub, it_node_json(line, sizeof(line), p * 100000 + n + 1, uuid, host,
                                            value, 4096)),
                 0);
}

//  Returns nothing; hvn-pub `pub` was told node n of publisher p is gone.
static void s_remove(it_proc_t *pub, int p, int n)
{
    char uuid[HVN_UUID_STR_LEN + 1], line[128];
    s_uuid(uuid, p, n);
    snprintf(line, sizeof(line), "{\"uuid\": \"%s\", \"deleted\": true}\n", uuid);
    cr_assert_eq(it_write(pub, line), 0);
}

//  Returns a running hvn-pub for host cmp-<p>, connected to each endpoint
//  of the NULL-ended list, heartbeating every S_HB_MS; state_dir may be
//  NULL; with forget, --forget-missing.
static it_proc_t *s_pub_start(const char *const endpoints[], int p, const char *state_dir,
                              bool forget)
{
    char host[32];
    snprintf(host, sizeof(host), "cmp-%d", p);
    const char *argv[IT_MAX_ARGS] = {"hvn-pub", "--host",          host, "--heartbeat-ms",
                                     "1000",    "--flush-timeout", "60"};
    size_t n = 7;
    for (size_t i = 0; endpoints[i]; i++) {
        argv[n++] = "--connect";
        argv[n++] = endpoints[i];
    }
    if (state_dir) {
        argv[n++] = "--state-dir";
        argv[n++] = state_dir;
    }
    if (forget)
        argv[n++] = "--forget-missing";
    argv[n] = NULL;
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub, "cannot start hvn-pub");
    return pub;
}

//  Returns nothing; the publisher read its whole input and exited 0.
static void s_pub_finish(it_proc_t **pub_p)
{
    it_close_stdin(*pub_p);
    int code = it_wait(*pub_p, 60000);
    cr_assert_eq(code, 0, "hvn-pub exited with %d", code);
    it_stop(pub_p, SIGKILL, 1000);
}

//  What a snapshot held: per node uuid, its vcpus_used.
typedef struct {
    char (*uuid)[HVN_UUID_STR_LEN + 1]; //  Uuids of the items
    int64_t *value;                     //  Their vcpus_used
    int count;                          //  Items received
    int cap;                            //  Room in the arrays
    int64_t end_count;                  //  END's count
} s_snap_t;

//  Returns nothing; the snapshot's arrays are freed.
static void s_snap_free(s_snap_t *snap)
{
    free(snap->uuid);
    free(snap->value);
    memset(snap, 0, sizeof(*snap));
}

//  Returns 0 with *snap holding the broker's whole snapshot, or -1 when no
//  complete answer came within timeout_ms (or the broker is not there).
//  Every item is decoded: a bad one fails the test.
static int s_snapshot(const char *service, s_snap_t *snap, int timeout_ms)
{
    memset(snap, 0, sizeof(*snap));
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(dealer);
    zsock_set_linger(dealer, 0);
    zsock_set_rcvhwm(dealer, 0);
    cr_assert_eq(zsock_connect(dealer, "%s", service), 0);
    hvn_decoder_t *decoder = hvn_decoder_new();
    hvn_msg_t *msg = malloc(sizeof(*msg));
    cr_assert(decoder && msg);
    zstr_sendm(dealer, "SNAPSHOT");
    zstr_send(dealer, "");
    int64_t deadline = zclock_mono() + timeout_ms;
    int rc = -1;
    while (true) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0)
            break;
        zsock_set_rcvtimeo(dealer, (int)left);
        zmsg_t *reply = zmsg_recv(dealer);
        if (!reply)
            break;
        char *word = zmsg_popstr(reply);
        cr_assert_not_null(word);
        if (streq(word, "ITEM")) {
            cr_assert_eq(zmsg_size(reply), 3);
            zframe_t *t = zmsg_pop(reply), *h = zmsg_pop(reply), *b = zmsg_pop(reply);
            hvn_reason_t reason =
                hvn_decoder_decode(decoder, zframe_data(t), zframe_size(t), zframe_data(h),
                                   zframe_size(h), zframe_data(b), zframe_size(b), msg);
            cr_assert_eq(reason, HVN_OK, "snapshot item refused: %s", hvn_reason_str(reason));
            if (snap->count == snap->cap) {
                snap->cap = snap->cap ? snap->cap * 2 : 64;
                snap->uuid = realloc(snap->uuid, (size_t)snap->cap * sizeof(*snap->uuid));
                snap->value = realloc(snap->value, (size_t)snap->cap * sizeof(*snap->value));
                cr_assert(snap->uuid && snap->value);
            }
            snprintf(snap->uuid[snap->count], sizeof(snap->uuid[0]), "%s", msg->node.uuid);
            snap->value[snap->count++] = msg->node.vcpus_used;
            zframe_destroy(&t);
            zframe_destroy(&h);
            zframe_destroy(&b);
        } else if (streq(word, "ERROR")) {
            //  Over the broker's --max-snapshot-rate: no snapshot this time
            zstr_free(&word);
            zmsg_destroy(&reply);
            break;
        } else {
            cr_assert_str_eq(word, "END");
            zframe_t *body = zmsg_pop(reply);
            msgpack_unpacked result;
            cr_assert_eq(fx_unpack_frame(body, &result, NULL), MSGPACK_UNPACK_SUCCESS);
            msgpack_object *map = &result.data;
            for (uint32_t i = 0; i < map->via.map.size; i++)
                if (map->via.map.ptr[i].key.via.str.size == 5 &&
                    memcmp(map->via.map.ptr[i].key.via.str.ptr, "count", 5) == 0)
                    snap->end_count = map->via.map.ptr[i].val.via.i64;
            msgpack_unpacked_destroy(&result);
            zframe_destroy(&body);
            rc = 0;
        }
        zstr_free(&word);
        zmsg_destroy(&reply);
        if (rc == 0)
            break;
    }
    free(msg);
    hvn_decoder_destroy(&decoder);
    zsock_destroy(&dealer);
    if (rc == 0)
        cr_assert_eq(snap->end_count, snap->count, "END counts what was sent");
    return rc;
}

//  Returns 1 when snap holds exactly the live nodes of truth[p][n]
//  (pubs x nodes, S_GONE = deleted) with their values, else 0.
static int s_snap_equals(const s_snap_t *snap, int pubs, int nodes, int64_t truth[][S_NODES])
{
    int live = 0;
    for (int p = 0; p < pubs; p++)
        for (int n = 0; n < nodes; n++) {
            if (truth[p][n] == S_GONE)
                continue;
            live++;
            char uuid[HVN_UUID_STR_LEN + 1];
            s_uuid(uuid, p, n);
            int found = 0;
            for (int i = 0; i < snap->count && !found; i++)
                found = streq(snap->uuid[i], uuid) && snap->value[i] == truth[p][n];
            if (!found)
                return 0;
        }
    return snap->count == live;
}

//  Returns the ms it took until the broker's snapshot equals the truth
//  (checked as fast as snapshots come), or -1 after timeout_ms.
static int64_t s_wait_fleet(const char *service, int pubs, int nodes, int64_t truth[][S_NODES],
                            int timeout_ms)
{
    int64_t start = zclock_mono();
    while (zclock_mono() - start < timeout_ms) {
        s_snap_t snap;
        int equal =
            s_snapshot(service, &snap, 1000) == 0 && s_snap_equals(&snap, pubs, nodes, truth);
        s_snap_free(&snap);
        if (equal)
            return zclock_mono() - start;
        usleep(2000);
    }
    return -1;
}

//  Returns the value of a broker counter once it is at least `least`, or
//  fails the test after S_WAIT_MS.
static int64_t s_wait_stat(const char *service, const char *key, int64_t least)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    int64_t value;
    while ((value = it_broker_stat(service, key, 1000)) < least) {
        cr_assert_lt(zclock_mono(), deadline, "broker's %s stayed at %lld, expected %lld", key,
                     (long long)value, (long long)least);
        usleep(5000);
    }
    return value;
}

//  Returns nothing; hvn-sub --snapshot printed exactly the live nodes of
//  truth with their values (count lines, one per node, then it exited 0).
static void s_sub_snapshot_equals(it_env_t *env, int pubs, int64_t truth[][S_NODES])
{
    int live = 0;
    for (int p = 0; p < pubs; p++)
        for (int n = 0; n < S_NODES; n++)
            live += truth[p][n] != S_GONE;
    char count[16];
    snprintf(count, sizeof(count), "%d", live);
    const char *argv[] = {"hvn-sub",    "--connect",  env->backend, "--service",
                          env->service, "--snapshot", "--count",    count,
                          "--timeout",  "15",         NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_not_null(sub);
    int seen[S_PUBS][S_NODES] = {{0}};
    for (int i = 0; i < live; i++) {
        json_t *obj = it_next_json(sub, 15000);
        json_t *data = it_node_data(obj);
        const char *uuid = json_string_value(json_object_get(data, "uuid"));
        cr_assert_not_null(uuid);
        int p = -1, n = -1;
        cr_assert_eq(sscanf(uuid + 24, "%4d%8d", &p, &n), 2, "foreign uuid %s", uuid);
        cr_assert(p >= 0 && p < pubs && n >= 0 && n < S_NODES, "foreign uuid %s", uuid);
        cr_assert_neq(truth[p][n], S_GONE, "deleted node %s in the snapshot", uuid);
        cr_assert_eq(json_integer_value(json_object_get(data, "vcpus_used")), truth[p][n],
                     "node %s not current", uuid);
        cr_assert_eq(seen[p][n]++, 0, "node %s twice", uuid);
        json_decref(obj);
    }
    cr_assert_eq(it_wait(sub, 15000), 0, "hvn-sub --count did not exit 0");
    it_stop(&sub, SIGKILL, 1000);
}

// --------------------------------------------------------------------------
//  Broker restart

Test(reliability, a_broker_killed_and_restarted_has_its_whole_cache_back_within_a_heartbeat)
{
    it_env_t env;
    it_env_init(&env);
    const char *broker_args[] = {"--heartbeat-ms", "1000", NULL};
    it_broker_start(&env, broker_args);
    const char *endpoints[] = {env.frontend, NULL};
    it_proc_t *pubs[S_PUBS];
    int64_t truth[S_PUBS][S_NODES];
    for (int p = 0; p < S_PUBS; p++) {
        pubs[p] = s_pub_start(endpoints, p, NULL, false);
        for (int n = 0; n < S_NODES; n++)
            s_report(pubs[p], p, n, truth[p][n] = 1);
    }
    cr_assert_geq(s_wait_fleet(env.service, S_PUBS, S_NODES, truth, S_WAIT_MS), 0,
                  "the first broker never held the fleet");
    for (int p = 0; p < S_PUBS; p++)
        for (int n = 0; n < S_NODES; n++)
            s_report(pubs[p], p, n, truth[p][n] = 2);
    cr_assert_geq(s_wait_fleet(env.service, S_PUBS, S_NODES, truth, S_WAIT_MS), 0);

    //  kill -9 mid-stream; while the broker is away one node changes and
    //  one is deleted
    cr_assert_eq(it_stop(&env.broker, SIGKILL, 5000), 128 + SIGKILL);
    s_report(pubs[0], 0, 0, truth[0][0] = 5);
    s_remove(pubs[1], 1, 1);
    truth[1][1] = S_GONE;
    int64_t start = zclock_mono();
    it_broker_start(&env, broker_args);
    int64_t whole = s_wait_fleet(env.service, S_PUBS, S_NODES, truth, S_WAIT_MS);
    cr_assert_geq(whole, 0, "the restarted broker never got the fleet back");
    int64_t since_start = zclock_mono() - start;
    fprintf(stderr, "reliability: broker restarted, snapshot whole %lld ms after its start\n",
            (long long)since_start);
    cr_assert_leq(since_start, S_HB_MS, "whole after %lld ms, over one heartbeat interval",
                  (long long)since_start);
    cr_assert_eq(it_broker_stat(env.service, "refused", 2000), 0);

    //  A late joiner sees every live node, current, and no deleted one
    s_sub_snapshot_equals(&env, S_PUBS, truth);
    for (int p = 0; p < S_PUBS; p++)
        s_pub_finish(&pubs[p]);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
//  Publisher and subscriber restarts

Test(reliability, a_publisher_restarted_with_its_state_sends_no_second_create_and_loses_no_delete)
{
    it_env_t env;
    it_env_init(&env);
    it_broker_start(&env, NULL);
    char state_dir[300];
    snprintf(state_dir, sizeof(state_dir), "%s/state", env.dir);
    const char *endpoints[] = {env.frontend, NULL};
    it_proc_t *pub = s_pub_start(endpoints, 0, state_dir, true);
    for (int n = 0; n < 3; n++)
        s_report(pub, 0, n, 1);
    s_pub_finish(&pub);
    cr_assert_eq(s_wait_stat(env.service, "notifications", 3), 3);

    const char *sub_argv[] = {"hvn-sub", "--connect", env.backend, "--topic", "compute_node.",
                              "--count", "2",         "--timeout", "15",      NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0);

    //  The next run: node 0 as it was, node 1 changed, node 2 gone
    pub = s_pub_start(endpoints, 0, state_dir, true);
    s_report(pub, 0, 0, 1);
    s_report(pub, 0, 1, 9);
    it_write(pub, "\n"); //  End of the first round: node 2 was not in it
    s_pub_finish(&pub);

    char uuid[HVN_UUID_STR_LEN + 1];
    json_t *obj = it_next_json(sub, 15000);
    s_uuid(uuid, 0, 1);
    cr_assert_str_eq(json_string_value(json_object_get(obj, "event_type")), "compute_node.update");
    cr_assert_str_eq(json_string_value(json_object_get(it_node_data(obj), "uuid")), uuid);
    cr_assert_eq(json_integer_value(json_object_get(it_node_data(obj), "vcpus_used")), 9);
    json_decref(obj);
    obj = it_next_json(sub, 15000);
    s_uuid(uuid, 0, 2);
    cr_assert_str_eq(json_string_value(json_object_get(obj, "event_type")), "compute_node.delete");
    cr_assert_str_eq(json_string_value(json_object_get(it_node_data(obj), "uuid")), uuid);
    json_decref(obj);
    cr_assert_eq(it_wait(sub, 15000), 0);
    it_stop(&sub, SIGKILL, 1000);
    cr_assert_eq(it_broker_stat(env.service, "notifications", 2000), 5,
                 "three creates, then one update and one delete: no second create");
    int64_t truth[1][S_NODES] = {{1, 9, S_GONE, S_GONE}};
    cr_assert_geq(s_wait_fleet(env.service, 1, 3, truth, S_WAIT_MS), 0);
    it_env_fini(&env);
}

Test(reliability, a_publisher_restarted_without_its_state_has_its_old_nodes_pruned)
{
    it_env_t env;
    it_env_init(&env);
    it_broker_start(&env, NULL);
    const char *endpoints[] = {env.frontend, NULL};
    it_proc_t *pub = s_pub_start(endpoints, 0, NULL, false);
    int64_t truth[1][S_NODES];
    for (int n = 0; n < S_NODES; n++)
        s_report(pub, 0, n, truth[0][n] = 1);
    s_pub_finish(&pub);
    cr_assert_geq(s_wait_fleet(env.service, 1, S_NODES, truth, S_WAIT_MS), 0);

    //  No state: the next run knows only what it is told, nodes 0 and 1
    pub = s_pub_start(endpoints, 0, NULL, false);
    s_report(pub, 0, 0, truth[0][0] = 3);
    s_report(pub, 0, 1, truth[0][1] = 3);
    truth[0][2] = truth[0][3] = S_GONE;
    int64_t took = s_wait_fleet(env.service, 1, S_NODES, truth, S_WAIT_MS);
    cr_assert_geq(took, 0, "nodes the publisher no longer has stayed cached");
    cr_assert_leq(took, 2 * S_HB_MS + 1000, "pruned only after %lld ms", (long long)took);
    //  Nodes 2 and 3 at least; 0 and 1 too when the new run's first
    //  heartbeat, listing nothing yet, came before their creates
    cr_assert_geq(it_broker_stat(env.service, "pruned", 2000), 2);
    s_pub_finish(&pub);
    it_env_fini(&env);
}

Test(reliability, a_restarted_subscriber_gets_the_whole_fleet_from_its_snapshot)
{
    it_env_t env;
    it_env_init(&env);
    it_broker_start(&env, NULL);
    const char *endpoints[] = {env.frontend, NULL};
    int64_t truth[2][S_NODES];
    it_proc_t *pubs[2];
    for (int p = 0; p < 2; p++) {
        pubs[p] = s_pub_start(endpoints, p, NULL, false);
        for (int n = 0; n < S_NODES; n++)
            s_report(pubs[p], p, n, truth[p][n] = 1);
    }
    cr_assert_geq(s_wait_fleet(env.service, 2, S_NODES, truth, S_WAIT_MS), 0);

    //  A subscriber following live is killed; the fleet changes meanwhile
    const char *argv[] = {"hvn-sub",   "--connect",  env.backend, "--service",
                          env.service, "--snapshot", NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    json_decref(it_next_json(sub, 15000));
    cr_assert_eq(it_stop(&sub, SIGKILL, 5000), 128 + SIGKILL);
    s_report(pubs[0], 0, 3, truth[0][3] = 6);
    s_remove(pubs[1], 1, 0);
    truth[1][0] = S_GONE;
    cr_assert_geq(s_wait_fleet(env.service, 2, S_NODES, truth, S_WAIT_MS), 0);

    //  Its restart prints the whole fleet as it is now
    s_sub_snapshot_equals(&env, 2, truth);
    for (int p = 0; p < 2; p++)
        s_pub_finish(&pubs[p]);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
//  Two brokers

Test(reliability, a_publisher_on_two_brokers_resyncs_the_one_that_restarts)
{
    it_env_t a, b;
    it_env_init(&a);
    it_env_init(&b);
    const char *broker_args[] = {"--heartbeat-ms", "1000", NULL};
    it_broker_start(&a, broker_args);
    it_broker_start(&b, broker_args);
    const char *endpoints[] = {a.frontend, b.frontend, NULL};
    it_proc_t *pub = s_pub_start(endpoints, 0, NULL, false);
    int64_t truth[1][S_NODES];
    for (int n = 0; n < S_NODES; n++)
        s_report(pub, 0, n, truth[0][n] = 1);
    cr_assert_geq(s_wait_fleet(a.service, 1, S_NODES, truth, S_WAIT_MS), 0);
    cr_assert_geq(s_wait_fleet(b.service, 1, S_NODES, truth, S_WAIT_MS), 0);

    cr_assert_eq(it_stop(&a.broker, SIGKILL, 5000), 128 + SIGKILL);
    s_report(pub, 0, 2, truth[0][2] = 4);
    s_remove(pub, 0, 3);
    truth[0][3] = S_GONE;
    cr_assert_geq(s_wait_fleet(b.service, 1, S_NODES, truth, S_WAIT_MS), 0,
                  "the broker left running missed a change");
    int64_t start = zclock_mono();
    it_broker_start(&a, broker_args);
    cr_assert_geq(s_wait_fleet(a.service, 1, S_NODES, truth, S_WAIT_MS), 0);
    int64_t took = zclock_mono() - start;
    fprintf(stderr,
            "reliability: second broker restarted, snapshot whole %lld ms after its start\n",
            (long long)took);
    cr_assert_leq(took, S_HB_MS);
    s_pub_finish(&pub);
    it_env_fini(&a);
    it_env_fini(&b);
}

Test(reliability, a_dead_broker_does_not_stall_publishing_to_the_live_one)
{
    //  More notifications than a broker pipe holds (10 000): a pipe kept
    //  for the dead broker would fill and stop the publisher
    const int nodes = 10200;
    it_env_t a, b;
    it_env_init(&a);
    it_env_init(&b);
    const char *broker_args[] = {"--max-publisher-nodes", "20000", NULL};
    it_broker_start(&a, broker_args);
    it_broker_start(&b, broker_args);
    const char *endpoints[] = {a.frontend, b.frontend, NULL};
    it_proc_t *pub = s_pub_start(endpoints, 0, NULL, false);
    s_report(pub, 0, 0, 1);
    s_wait_stat(a.service, "cache_nodes", 1);
    s_wait_stat(b.service, "cache_nodes", 1);
    cr_assert_eq(it_stop(&a.broker, SIGKILL, 5000), 128 + SIGKILL);
    for (int n = 1; n < nodes; n++)
        s_report(pub, 0, n, 1);
    s_pub_finish(&pub);
    //  hvn-pub has exited once its messages are on their way; the broker
    //  may still be reading them
    cr_assert_eq(s_wait_stat(b.service, "cache_nodes", nodes), nodes);
    cr_assert_eq(it_broker_stat(b.service, "refused", 2000), 0);
    it_env_fini(&a);
    it_env_fini(&b);
}

// --------------------------------------------------------------------------
//  Big publishers, big snapshots

Test(reliability, big_publishers_heartbeat_and_a_big_snapshot_arrives_whole_and_fast)
{
    const int pubs = 4, nodes = 5000;
    it_env_t env;
    it_env_init(&env);
    it_broker_start(&env, NULL);
    const char *endpoints[] = {env.frontend, NULL};
    it_proc_t *pub[4];
    for (int p = 0; p < pubs; p++) {
        pub[p] = s_pub_start(endpoints, p, NULL, false);
        for (int n = 0; n < nodes; n++)
            s_report(pub[p], p, n, 1);
    }
    s_wait_stat(env.service, "cache_nodes", pubs * nodes);
    //  Every publisher's heartbeat lists 5 000 nodes (≈ 190 KB): accepted
    int64_t before = it_broker_stat(env.service, "heartbeats_in", 2000);
    s_wait_stat(env.service, "heartbeats_in", before + 2 * pubs);
    cr_assert_eq(it_broker_stat(env.service, "refused", 2000), 0);
    cr_assert_eq(it_broker_stat(env.service, "pruned", 2000), 0);

    int64_t start = zclock_mono();
    s_snap_t snap;
    cr_assert_eq(s_snapshot(env.service, &snap, 10000), 0, "no whole snapshot in 10 s");
    int64_t took = zclock_mono() - start;
    fprintf(stderr, "reliability: snapshot of %d nodes over ipc in %lld ms\n", snap.count,
            (long long)took);
    cr_assert_eq(snap.count, pubs * nodes);
    s_snap_free(&snap);
    cr_assert_leq(took, 5000);
    for (int p = 0; p < pubs; p++)
        s_pub_finish(&pub[p]);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
//  Options every publishing program shares

//  Returns the exit status of a program run with the NULL-ended argv.
static int s_run(const char *const argv[])
{
    it_proc_t *proc = it_spawn(argv, false, true, true);
    cr_assert_not_null(proc);
    int code = it_wait(proc, 10000);
    it_stop(&proc, SIGKILL, 1000);
    return code;
}

Test(reliability, every_publishing_program_takes_heartbeat_ms_and_publishers_take_two_connects)
{
    const char *broker[] = {"hvn-broker", "--heartbeat-ms", "500", "--help", NULL};
    const char *pub[] = {"hvn-pub", "--connect", "ipc:///tmp/a",   "--connect", "ipc:///tmp/b",
                         "--host",  "cmp-1",     "--heartbeat-ms", "500",       "--help",
                         NULL};
    const char *agent[] = {"hvn-agent", "--connect",    "ipc:///tmp/a",
                           "--connect", "ipc:///tmp/b", "--heartbeat-ms",
                           "500",       "--help",       NULL};
    cr_assert_eq(s_run(broker), 0);
    cr_assert_eq(s_run(pub), 0);
    cr_assert_eq(s_run(agent), 0);
    const char *bad_broker[] = {"hvn-broker", "--heartbeat-ms", "0", NULL};
    const char *bad_pub[] = {
        "hvn-pub", "--connect", "ipc:///tmp/a", "--host", "cmp-1", "--heartbeat-ms", "0", NULL};
    const char *bad_agent[] = {"hvn-agent",      "--connect", "ipc:///tmp/a",
                               "--heartbeat-ms", "0",         NULL};
    cr_assert_eq(s_run(bad_broker), 2);
    cr_assert_eq(s_run(bad_pub), 2);
    cr_assert_eq(s_run(bad_agent), 2);
}
