/*  test_bridge_resilience.c — hvn-bridge loses nothing when RabbitMQ does
    its worst: every connection closed in the middle of a burst, the server
    stopped for ten seconds and started again, publishing blocked by an
    alarm. A real RabbitMQ (one for the suite) and a real oslo.messaging
    listener, which must hear every notification of the burst.
*/
#include "bridge_support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static it_env_t env;
static rmq_t rmq;

static void s_setup(void)
{
    bt_setup(&env, &rmq);
}

TestSuite(resilience, .init = s_setup, .fini = bt_teardown, .timeout = 180);

#define S_PACE_US 2000 //  Between two notifications of a burst

//  Returns the bridge's exit status after SIGTERM, its log read to the end.
static int s_bridge_stop(it_proc_t **bridge_p, bt_log_t *log)
{
    kill((*bridge_p)->pid, SIGTERM);
    int code = it_wait(*bridge_p, 20000);
    bt_log_read(*bridge_p, log, 100);
    it_stop(bridge_p, SIGKILL, 1000);
    return code;
}

//  Returns the value of counter `name` in the bridge's last counters line
//  ("..., name N, ..."), or -1.
static long long s_counter(const bt_log_t *log, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s ", name);
    const char *last = NULL;
    for (const char *p = log->text; p && (p = strstr(p, key)); p += strlen(key))
        last = p;
    return last ? atoll(last + strlen(key)) : -1;
}

//  Returns nothing; asserts that the listener hears `count` distinct
//  notifications, and that the bridge confirmed them all.
static void s_expect_whole(it_proc_t *listener, it_proc_t **bridge_p, bt_log_t *log, int count)
{
    size_t distinct = 0, strangers = 0;
    size_t lines = bt_collect(listener, (size_t)count, 60000, &distinct, NULL, &strangers);
    cr_expect_eq(s_bridge_stop(bridge_p, log), 0);
    cr_expect_eq(distinct, (size_t)count, "heard %zu of %d (%zu lines); bridge: %s", distinct,
                 count, lines, log->text);
    cr_expect_eq(s_counter(log, "received"), count, "%s", log->text);
    cr_expect_eq(s_counter(log, "dropped"), 0, "%s", log->text);
    cr_expect_eq(s_counter(log, "pending"), 0, "%s", log->text);
    cr_expect_geq(s_counter(log, "confirmed"), count, "%s", log->text);
}

//  Returns a running `rabbit.sh ctl` with args (NULL-ended) on the node.
static it_proc_t *s_ctl_spawn(const char *const args[])
{
    const char *argv[IT_MAX_ARGS] = {"/bin/sh", HVN_SOURCE_DIR "/tests/bridge/rabbit.sh", "ctl",
                                     rmq.dir};
    size_t n = 4;
    for (size_t i = 0; args[i] && n < IT_MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    it_proc_t *ctl = it_spawn(argv, false, false, false);
    cr_assert_not_null(ctl);
    return ctl;
}

//  Returns nothing; runs rabbitmqctl with args and asserts it succeeded.
static void s_ctl(const char *args)
{
    char *out = NULL;
    cr_assert_eq(rmq_ctl(&rmq, args, &out), 0, "rabbitmqctl %s: %s", args, out);
    free(out);
}

//  Returns the bridge publishing with --topic topic, once it follows the
//  broker, its log in log; *listener an oslo listener on topic that ends
//  after count notifications or seconds.
static it_proc_t *s_start_on_topic(const char *topic, int count, int seconds, bt_log_t *log,
                                   it_proc_t **listener)
{
    *listener = bt_listener_start(&rmq, "nova", topic, count, seconds, false);
    const char *extra[] = {"--topic", topic, NULL};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, log);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    return bridge;
}

Test(resilience, burst_with_every_connection_closed_in_the_middle_arrives_whole)
{
    it_proc_t *listener = NULL;
    bt_log_t log = {0};
    it_proc_t *bridge = s_start_on_topic("hvn_burst", 1000000, 120, &log, &listener);

    //  The burst goes on while rabbitmqctl closes every connection, the
    //  bridge's and the listener's, and for a while after
    it_proc_t *pub = bt_pub_start(&env, "cmp-burst");
    bt_pub_nodes(pub, "cmp-burst", 0, 300, S_PACE_US);
    const char *close_args[] = {"close_all_connections", "hvn test", NULL};
    it_proc_t *closer = s_ctl_spawn(close_args);
    int n = 300;
    while (it_wait(closer, 0) < 0 && n < 20000) {
        bt_pub_nodes(pub, "cmp-burst", n, n + 10, S_PACE_US);
        n += 10;
    }
    cr_expect_eq(it_wait(closer, 10000), 0, "close_all_connections failed");
    it_stop(&closer, SIGKILL, 1000);
    bt_pub_nodes(pub, "cmp-burst", n, n + 300, S_PACE_US);
    n += 300;
    bt_pub_end(&pub);

    s_expect_whole(listener, &bridge, &log, n);
    cr_expect_geq(s_counter(&log, "lost"), 1, "the connection was not closed: %s", log.text);
    cr_expect(strstr(log.text, "CONNECTION_FORCED"), "%s", log.text);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&log);
}

Test(resilience, rabbitmq_stopped_ten_seconds_and_started_again_loses_nothing)
{
    //  Durable on both sides (a virtual host of its own): what RabbitMQ has
    //  confirmed is on disk and outlives the restart
    s_ctl("add_vhost hvn_durable");
    s_ctl("set_permissions -p hvn_durable guest '.*' '.*' '.*'");
    rmq_t durable = rmq;
    snprintf(durable.url, sizeof(durable.url), "rabbit://guest:guest@127.0.0.1:%d/hvn_durable",
             rmq.port);
    it_proc_t *listener =
        bt_listener_start(&durable, "nova", "versioned_notifications", 1000000, 150, true);
    const char *extra[] = {"--durable", NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &durable, extra, &log);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);

    it_proc_t *pub = bt_pub_start(&env, "cmp-restart");
    bt_pub_nodes(pub, "cmp-restart", 0, 200, S_PACE_US);
    int64_t stopped = zclock_mono();
    cr_assert_eq(rmq_halt(&rmq), 0, "RabbitMQ did not stop");
    //  Down: notifications keep coming, for ten seconds in all
    int n = 200;
    while (zclock_mono() - stopped < 10000) {
        bt_pub_nodes(pub, "cmp-restart", n, n + 10, 20000);
        n += 10;
    }
    cr_assert_eq(rmq_resume(&rmq), 0, "RabbitMQ did not start again");
    bt_pub_nodes(pub, "cmp-restart", n, n + 200, S_PACE_US);
    n += 200;
    bt_pub_end(&pub);

    s_expect_whole(listener, &bridge, &log, n);
    cr_expect_geq(s_counter(&log, "reconnects"), 1, "%s", log.text);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&log);
}

Test(resilience, blocked_publishing_waits_for_unblocked_and_loses_nothing)
{
    it_proc_t *listener = NULL;
    bt_log_t log = {0};
    it_proc_t *bridge = s_start_on_topic("hvn_blocked", 100, 90, &log, &listener);

    //  A memory alarm: RabbitMQ blocks every publishing connection
    s_ctl("set_vm_memory_high_watermark 0.000001");
    it_proc_t *pub = bt_pub_start(&env, "cmp-blocked");
    bt_pub_nodes(pub, "cmp-blocked", 0, 100, 0);
    bt_pub_end(&pub);
    bool blocked = bt_log_wait(bridge, &log, "blocked publishing", 20000);
    s_ctl("set_vm_memory_high_watermark 0.4");
    cr_expect(blocked, "connection.blocked not logged: %s", log.text);
    cr_expect(bt_log_wait(bridge, &log, "unblocked publishing", 20000), "%s", log.text);

    s_expect_whole(listener, &bridge, &log, 100);
    cr_expect_geq(s_counter(&log, "blocked"), 1, "%s", log.text);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&log);
}

//  Returns nothing; stops the bridge with SIGKILL (no flush, no last
//  save), its log read to the end.
static void s_bridge_kill(it_proc_t **bridge_p, bt_log_t *log)
{
    kill((*bridge_p)->pid, SIGKILL);
    it_wait(*bridge_p, 10000);
    bt_log_read(*bridge_p, log, 100);
    it_stop(bridge_p, SIGKILL, 1000);
}

Test(resilience, a_restarted_bridge_replays_from_the_ring_what_went_by_while_it_was_down)
{
    it_proc_t *listener = bt_listener_start(&rmq, "nova", "hvn_resume", 1000000, 170, false);
    char state[300];
    snprintf(state, sizeof(state), "%s/bridge.state", env.dir);
    const char *extra[] = {"--topic", "hvn_resume", "--state-file", state, NULL};
    bt_log_t first = {0}, second = {0}, third = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &first);
    cr_assert(strstr(first.text, "starting from the present"), "%s", first.text);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    it_proc_t *pub = bt_pub_start(&env, "cmp-resume");
    int n = 0;
    bt_pub_nodes(pub, "cmp-resume", n, n + 200, S_PACE_US);
    n += 200;

    //  SIGTERM while the publisher goes on; down for a while; started again
    kill(bridge->pid, SIGTERM);
    bt_pub_nodes(pub, "cmp-resume", n, n + 100, S_PACE_US);
    n += 100;
    cr_expect_eq(it_wait(bridge, 20000), 0, "exit status after SIGTERM");
    bt_log_read(bridge, &first, 100);
    it_stop(&bridge, SIGKILL, 1000);
    bt_pub_nodes(pub, "cmp-resume", n, n + 200, S_PACE_US);
    n += 200;
    bridge = bt_bridge_start(&env, &rmq, extra, &second);
    cr_expect(strstr(second.text, "state file"), "%s", second.text);
    cr_expect(strstr(second.text, "resumed 1 publisher instances"), "%s", second.text);
    cr_expect(strstr(second.text, " 0 missed that the rings no longer held"), "%s", second.text);
    bt_pub_nodes(pub, "cmp-resume", n, n + 200, S_PACE_US);
    n += 200;

    //  kill -9 while the publisher goes on: no flush, no last save
    s_bridge_kill(&bridge, &second);
    bt_pub_nodes(pub, "cmp-resume", n, n + 300, S_PACE_US);
    n += 300;
    bridge = bt_bridge_start(&env, &rmq, extra, &third);
    cr_expect(strstr(third.text, "resumed 1 publisher instances"), "%s", third.text);
    bt_pub_nodes(pub, "cmp-resume", n, n + 200, S_PACE_US);
    n += 200;
    bt_pub_end(&pub);

    //  Every notification heard: duplicates (after the kill -9) allowed
    size_t distinct = 0, strangers = 0;
    size_t lines = bt_collect(listener, (size_t)n, 60000, &distinct, NULL, &strangers);
    cr_expect_eq(s_bridge_stop(&bridge, &third), 0);
    cr_expect_eq(distinct, (size_t)n,
                 "heard %zu of %d (%zu lines); first: %s\nsecond: %s\nthird: %s", distinct, n,
                 lines, first.text, second.text, third.text);
    cr_expect_geq(s_counter(&third, "resumed"), 300, "%s", third.text);
    cr_expect_eq(s_counter(&third, "resume missed"), 0, "%s", third.text);
    cr_expect_eq(s_counter(&third, "dropped"), 0, "%s", third.text);
    cr_expect_eq(s_counter(&third, "pending"), 0, "%s", third.text);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&first);
    bt_log_free(&second);
    bt_log_free(&third);
}

Test(resilience, past_the_rings_window_a_restart_publishes_each_nodes_newest_from_the_snapshot)
{
    //  A ring of a few notifications only
    it_stop(&env.broker, SIGTERM, 5000);
    const char *ring[] = {"--ring-bytes", "16K", NULL};
    it_broker_start(&env, ring);
    it_proc_t *listener = bt_listener_start(&rmq, "nova", "hvn_window", 1000000, 120, false);
    char state[300];
    snprintf(state, sizeof(state), "%s/bridge.state", env.dir);
    const char *extra[] = {"--topic", "hvn_window", "--state-file", state, NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &log);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    it_proc_t *pub = bt_pub_start(&env, "cmp-window");
    bt_pub_nodes(pub, "cmp-window", 0, 50, S_PACE_US);
    cr_assert(bt_wait_confirmed(bridge, &log, 50, 20000), "not confirmed: %s", log.text);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0);

    //  200 creates while down: far more than the ring holds
    bt_pub_nodes(pub, "cmp-window", 50, 250, S_PACE_US);
    bt_log_free(&log);
    bridge = bt_bridge_start(&env, &rmq, extra, &log);
    bt_pub_end(&pub);
    cr_expect(strstr(log.text, "are no longer in the brokers' rings"), "%s", log.text);

    //  Each node's newest notification is its create: all are heard
    size_t distinct = 0, strangers = 0;
    bt_collect(listener, 250, 60000, &distinct, NULL, &strangers);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0);
    cr_expect_eq(distinct, 250, "heard %zu of 250: %s", distinct, log.text);
    cr_expect_gt(s_counter(&log, "resume missed"), 0, "%s", log.text);
    cr_expect_gt(s_counter(&log, "resume from snapshot"), 0, "%s", log.text);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&log);
}
