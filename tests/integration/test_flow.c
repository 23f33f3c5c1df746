/*  test_flow.c — notifications end to end: hvn-pub → hvn-broker → subscribers.

    The seed's rules seen from outside: for the input create A, same A, A with
    only memory_mb_used changed, A with vcpus_used changed, create B, delete
    A, a subscriber receives exactly create A, update A, create B, delete A,
    with seqs 1..4 — whether it is hvn-sub or a pyzmq client written from
    PROTOCOL.md alone.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define UUID_A "6f1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b1a01"
#define UUID_B "6f1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b1a02"

static it_env_t env;

static void s_setup(void)
{
    it_env_setup(&env);
}

TestSuite(flow, .init = s_setup, .fini = it_env_teardown, .timeout = 60);

//  Feeds the acceptance input to a new hvn-pub for host cmp-017 and
//  waits for it to exit. Returns its exit status.
static int s_publish_acceptance_input(void)
{
    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "cmp-017", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub);
    char line[2048];
    it_write(pub, it_node_json(line, sizeof(line), 1, UUID_A, "cmp-017", 4, 8192));
    it_write(pub, it_node_json(line, sizeof(line), 1, UUID_A, "cmp-017", 4, 8192));
    it_write(pub, it_node_json(line, sizeof(line), 1, UUID_A, "cmp-017", 4, 9000));
    it_write(pub, it_node_json(line, sizeof(line), 1, UUID_A, "cmp-017", 6, 9000));
    it_write(pub, it_node_json(line, sizeof(line), 2, UUID_B, "cmp-017", 0, 1024));
    it_write(pub, "{\"uuid\": \"" UUID_A "\", \"deleted\": true}\n");
    int code = it_finish(&pub, 30000);
    return code;
}

//  Asserts the envelope's event type and node uuid.
static void s_expect(json_t *obj, const char *event, const char *uuid)
{
    cr_expect_str_eq(json_string_value(json_object_get(obj, "event_type")), event);
    cr_expect_str_eq(json_string_value(json_object_get(it_node_data(obj), "uuid")), uuid);
    cr_expect_str_eq(json_string_value(json_object_get(obj, "priority")), "INFO");
    cr_expect_str_eq(json_string_value(json_object_get(obj, "publisher_id")),
                     "nova-compute:cmp-017");
}

Test(flow, hvn_sub_receives_exactly_create_update_create_delete)
{
    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--count", "4",
                          "--timeout", "20", NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0, "hvn-sub never subscribed");
    cr_assert_eq(s_publish_acceptance_input(), 0, "hvn-pub failed");

    json_t *m1 = it_next_json(sub, 10000), *m2 = it_next_json(sub, 10000);
    json_t *m3 = it_next_json(sub, 10000), *m4 = it_next_json(sub, 10000);
    s_expect(m1, "compute_node.create", UUID_A);
    s_expect(m2, "compute_node.update", UUID_A);
    s_expect(m3, "compute_node.create", UUID_B);
    s_expect(m4, "compute_node.delete", UUID_A);

    //  The update carries every field as it is now, memory_mb_used too
    cr_expect_eq(json_integer_value(json_object_get(it_node_data(m2), "vcpus_used")), 6);
    cr_expect_eq(json_integer_value(json_object_get(it_node_data(m2), "memory_mb_used")), 9000);
    cr_expect_eq(json_object_size(it_node_data(m2)), 18);
    cr_expect_eq(json_object_size(it_node_data(m1)), 18);
    //  A delete carries id and uuid only
    cr_expect_eq(json_object_size(it_node_data(m4)), 2);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(m4, "payload"),
                                                       "nova_object.name")),
                     "ComputeNodeDeletePayload");
    json_decref(m1);
    json_decref(m2);
    json_decref(m3);
    json_decref(m4);

    cr_expect_eq(it_wait(sub, 10000), 0, "hvn-sub did not exit 0 after --count");
    it_stop(&sub, SIGKILL, 1000);
}

Test(flow, pyzmq_client_from_the_protocol_sees_seqs_one_to_four)
{
    const char *argv[] = {"/usr/bin/python3", HVN_SOURCE_DIR "/tests/integration/clients/hvn_client.py",
                          env.backend, "4", NULL};
    it_proc_t *client = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0, "client never subscribed");
    cr_assert_eq(s_publish_acceptance_input(), 0, "hvn-pub failed");

    const char *expected[] = {
        //  The create may carry 8192 or, when the later report reached the
        //  publisher before the create left, 9000: only its prefix is fixed
        "compute_node.create 1 " UUID_A " ",
        "compute_node.update 2 " UUID_A " 9000",
        "compute_node.create 3 " UUID_B " 1024",
        "compute_node.delete 4 " UUID_A " -",
    };
    char line[512];
    for (size_t i = 0; i < 4; i++) {
        cr_assert(it_read_line(client, line, sizeof(line), 10000) > 0, "client line %zu", i);
        if (i == 0)
            cr_expect(strncmp(line, expected[0], strlen(expected[0])) == 0, "got %s", line);
        else
            cr_expect_str_eq(line, expected[i]);
    }
    cr_expect_eq(it_wait(client, 10000), 0);
    it_stop(&client, SIGKILL, 1000);
}

Test(flow, delete_subscriber_receives_deletes_only)
{
    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--topic",
                          "compute_node.delete", "--timeout", "20", NULL};
    it_proc_t *deletes = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    cr_assert_eq(s_publish_acceptance_input(), 0);

    //  The delete is the last message published and one pipe keeps order:
    //  had a create or update reached this subscriber, it would come first.
    json_t *first = it_next_json(deletes, 10000);
    s_expect(first, "compute_node.delete", UUID_A);
    json_decref(first);
    char line[8192];
    cr_expect_eq(it_read_line(deletes, line, sizeof(line), 300), -1,
                 "delete subscriber got more: %s", line);
    it_stop(&deletes, SIGTERM, 5000);
}

Test(flow, bad_input_line_is_named_skipped_and_the_rest_goes_out)
{
    const char *sub_argv[] = {"hvn-sub", "--connect", env.backend, "--count", "2",
                              "--timeout", "20", NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);

    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "cmp-017", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, true);
    char line[2048];
    it_write(pub, it_node_json(line, sizeof(line), 1, UUID_A, "cmp-017", 4, 8192));
    char bad[2048];
    it_node_json(bad, sizeof(bad), 2, UUID_B, "cmp-017", 0, 1024);
    char *vcpus = strstr(bad, "\"vcpus\":32");
    cr_assert_not_null(vcpus);
    memcpy(vcpus, "\"vcpus\":\"\"", 10); //  A string where an int goes
    it_write(pub, bad);
    it_write(pub, "this is not json\n");
    it_write(pub, it_node_json(line, sizeof(line), 2, UUID_B, "cmp-017", 0, 1024));
    it_close_stdin(pub);
    cr_expect_eq(it_wait(pub, 30000), 1, "hvn-pub should exit 1 after rejected lines");
    char *err = it_read_stderr(pub, 2000);
    cr_expect(strstr(err, "line 2") && strstr(err, "vcpus"), "stderr: %s", err);
    cr_expect(strstr(err, "line 3") != NULL, "stderr: %s", err);
    free(err);
    it_stop(&pub, SIGKILL, 1000);

    json_t *m1 = it_next_json(sub, 10000), *m2 = it_next_json(sub, 10000);
    s_expect(m1, "compute_node.create", UUID_A);
    s_expect(m2, "compute_node.create", UUID_B);
    json_decref(m1);
    json_decref(m2);
    it_stop(&sub, SIGKILL, 1000);
}

Test(flow, works_over_tcp_loopback)
{
    it_env_fini(&env);
    it_env_init(&env);
    int base = it_free_port();
    snprintf(env.frontend, sizeof(env.frontend), "tcp://127.0.0.1:%d", base);
    snprintf(env.backend, sizeof(env.backend), "tcp://127.0.0.1:%d", it_free_port());
    snprintf(env.service, sizeof(env.service), "tcp://127.0.0.1:%d", it_free_port());
    it_broker_start(&env, NULL);

    const char *argv[] = {"hvn-sub", "--connect", env.backend, "--count", "4",
                          "--timeout", "20", NULL};
    it_proc_t *sub = it_spawn(argv, false, true, false);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0);
    cr_assert_eq(s_publish_acceptance_input(), 0);
    for (int i = 0; i < 4; i++)
        json_decref(it_next_json(sub, 10000));
    cr_expect_eq(it_wait(sub, 10000), 0);
    it_stop(&sub, SIGKILL, 1000);
}
