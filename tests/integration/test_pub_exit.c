/*  test_pub_exit.c — hvn-pub's exit status says whether everything was sent.

    A notification the publisher could not keep (no memory for it) is lost:
    the run did not do its job, and hvn-pub says so and exits 1. Memory
    running out is made to happen with a fault injector preloaded into
    hvn-pub (fail_alloc.c): one allocation of the publisher's thread fails,
    the first one large enough to hold a notification once it is armed.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static it_env_t env;

static void s_setup(void)
{
    it_env_init(&env);
    it_broker_start(&env, NULL);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(pub_exit, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  Returns the broker's notification count once it is at least n (asserted
//  within 10 s).
static int64_t s_wait_notifications(int64_t n)
{
    int64_t value = -1;
    for (int64_t deadline = zclock_mono() + 10000; zclock_mono() < deadline;) {
        value = it_broker_stat(env.service, "notifications", 2000);
        if (value >= n)
            break;
        zclock_sleep(20);
    }
    return value;
}

Test(pub_exit, a_notification_lost_for_want_of_memory_makes_hvn_pub_exit_1)
{
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test("the fault injector replaces malloc, which AddressSanitizer owns");
#endif
    char arm[512];
    snprintf(arm, sizeof(arm), "%s/fail-alloc-armed", env.dir);
    //  A notification's copy is its body (some 700 bytes) and its topic,
    //  header and uuid (some 330): nothing else the publisher's thread
    //  allocates between the arming and the second node is as large
    setenv("LD_PRELOAD", HVN_FAIL_ALLOC_LIB, 1);
    setenv("HVN_FAIL_ALLOC_ARM", arm, 1);
    setenv("HVN_FAIL_ALLOC_MIN", "800", 1);
    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "cmp-017", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, true);
    unsetenv("LD_PRELOAD");
    unsetenv("HVN_FAIL_ALLOC_ARM");
    unsetenv("HVN_FAIL_ALLOC_MIN");
    cr_assert_not_null(pub);
    char line[4096];
    it_node_json(line, sizeof(line), 1, "00000000-0000-4000-8000-00000000000a", "cmp-017", 1, 1024);
    cr_assert_eq(it_write(pub, line), 0);
    cr_assert_eq(s_wait_notifications(1), 1, "the first node was not published");
    FILE *file = fopen(arm, "w");
    cr_assert_not_null(file);
    fclose(file);
    it_node_json(line, sizeof(line), 2, "00000000-0000-4000-8000-00000000000b", "cmp-017", 2, 2048);
    cr_assert_eq(it_write(pub, line), 0);
    it_close_stdin(pub);
    int code = it_wait(pub, 20000);
    char *err = it_read_stderr(pub, 2000);
    cr_expect_eq(code, 1, "hvn-pub exit %d after a notification was lost: %s", code, err);
    cr_expect(strstr(err, "out of memory, compute_node.create of node "
                          "00000000-0000-4000-8000-00000000000b dropped"),
              "no log line for the lost notification: %s", err);
    cr_expect(strstr(err, "1 notification(s) could not be encoded and were not sent"),
              "no closing line: %s", err);
    cr_expect_eq(it_broker_stat(env.service, "notifications", 2000), 1);
    free(err);
    it_stop(&pub, SIGKILL, 1000);
}
