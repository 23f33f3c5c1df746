/*  test_replay.c — REPLAY from the broker's ring, seen by a client written
    from PROTOCOL.md alone (pyzmq + msgpack): the ITEMs of a range are
    exactly the frames the broker forwarded, END says how many and what the
    ring holds, malformed requests are answered ERROR and counted.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_PREFIX "7a1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b"

static it_env_t env;

static void s_setup(void)
{
    it_env_setup(&env);
}

TestSuite(replay, .init = s_setup, .fini = it_env_teardown, .timeout = 60);

//  Publishes count notifications of host cmp-021 through a new hvn-pub (a
//  create each of count nodes: reports of one node may be folded into one
//  notification) and waits for it to exit. Returns its exit status.
static int s_publish(int count)
{
    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "cmp-021", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub);
    char line[2048];
    for (int i = 0; i < count; i++) {
        char uuid[64];
        snprintf(uuid, sizeof(uuid), "%s%04x", UUID_PREFIX, i);
        it_write(pub, it_node_json(line, sizeof(line), i + 1, uuid, "cmp-021", i, 4096));
    }
    int code = it_finish(&pub, 30000);
    return code;
}

Test(replay, pyzmq_client_from_the_protocol_replays_exactly_the_forwarded_frames)
{
    const char *argv[] = {"/usr/bin/python3",
                          HVN_SOURCE_DIR "/tests/integration/clients/hvn_replay_client.py",
                          env.backend, env.service, "40", "7", "31", NULL};
    it_proc_t *client = it_spawn(argv, false, true, true);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0, "client never subscribed");
    cr_assert_eq(s_publish(40), 0, "hvn-pub failed");
    char *out = it_read_stdout(client, 30000);
    int code = it_wait(client, 5000);
    char *err = it_read_stderr(client, 1000);
    cr_expect_eq(code, 0, "client: %s%s", out, err);
    cr_expect(strstr(out, "replayed 25 items exactly as forwarded; END 25 1 40"), "%s", out);
    cr_expect(strstr(out, "refused 6 bad requests"), "%s", out);
    free(out);
    free(err);
    it_stop(&client, SIGKILL, 1000);
    cr_expect_eq(it_broker_stat(env.service, "replays", 2000), 2);
    cr_expect_eq(it_broker_stat(env.service, "replay_items", 2000), 25);
    cr_expect_eq(it_broker_stat(env.service, "replays_refused", 2000), 6);
    cr_expect_eq(it_broker_stat(env.service, "ring_entries", 2000), 40);
}

Test(replay, a_small_ring_answers_what_it_still_holds_and_says_so)
{
    it_stop(&env.broker, SIGTERM, 5000);
    //  About 1 KiB a notification: 8 KiB holds the last few only
    const char *extra[] = {"--ring-bytes", "8K", NULL};
    it_broker_start(&env, extra);
    const char *argv[] = {"/usr/bin/python3",
                          HVN_SOURCE_DIR "/tests/integration/clients/hvn_client.py", env.backend,
                          "40", NULL};
    it_proc_t *client = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    cr_assert_eq(s_publish(40), 0);
    char *out = it_read_stdout(client, 30000);
    free(out);
    it_stop(&client, SIGKILL, 1000);
    int64_t held = it_broker_stat(env.service, "ring_entries", 2000);
    cr_expect(held > 0 && held < 40, "ring holds %lld", (long long)held);
    cr_expect_eq(it_broker_stat(env.service, "ring_evicted", 2000), 40 - held);
    cr_expect_leq(it_broker_stat(env.service, "ring_bytes", 2000), 8192);
}

Test(replay, ring_bytes_takes_a_size_and_refuses_anything_else)
{
    const char *bad[] = {"-1", "x", "100G", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = {"hvn-broker", "--ring-bytes", bad[i], NULL};
        it_proc_t *broker = it_spawn(argv, false, false, true);
        cr_expect_eq(it_wait(broker, 5000), 2, "--ring-bytes '%s'", bad[i]);
        char *err = it_read_stderr(broker, 1000);
        cr_expect(strstr(err, "--ring-bytes"), "%s", err);
        free(err);
        it_stop(&broker, SIGKILL, 1000);
    }
}
