/*  test_once.c — each notification once across brokers, in plain mode.

    hvn-sub without --snapshot on two brokers that both forward every
    notification: it drops what it already printed (same publisher
    instance, seq not above the last printed), so each notification is
    printed once, while both brokers are up and after one is killed
    mid-stream. Driven in lockstep with hvn-pub: one input line, one printed
    notification, so a doubled one shows at the line where it happens.
    bench/once_runs.sh runs this many times over.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HOST "cmp-501"
#define S_LINE_MS 15000
#define S_WAIT_MS 30000

TestSuite(once, .timeout = 100);

Test(once, plain_subscriber_on_two_brokers_prints_each_notification_once)
{
    enum { NODES = 3, ROUNDS = 8, KILL_AT = 4 };
    it_env_t a, b;
    const char *fast[] = {"--heartbeat-ms", "300", NULL};
    it_env_pair(&a, &b, fast);
    const char *sub_argv[] = {"hvn-sub",   "--connect", a.backend, "--connect", b.backend,
                              "--service", a.service,   "--timeout", "60",      NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, true);
    cr_assert_eq(it_wait_subscriptions(a.service, 1, S_WAIT_MS), 0);
    cr_assert_eq(it_wait_subscriptions(b.service, 1, S_WAIT_MS), 0);
    const char *pub_argv[] = {"hvn-pub", "--connect", a.frontend,       "--connect", b.frontend,
                              "--host",  S_HOST,      "--heartbeat-ms", "300",       NULL};
    it_proc_t *pub = it_spawn(pub_argv, true, false, false);
    zhashx_t *ids = zhashx_new();
    char uuid[64], line[2048];
    for (int r = 0; r <= ROUNDS; r++) {
        if (r == KILL_AT)
            cr_assert_eq(it_stop(&a.broker, SIGKILL, 5000), 128 + SIGKILL);
        for (int n = 0; n < NODES; n++) {
            snprintf(uuid, sizeof(uuid), "6f1c1e0a-4a7b-4b8e-9d7e-%012d", n);
            it_write(pub, it_node_json(line, sizeof(line), n + 1, uuid, S_HOST, r, 1024));
            json_t *obj = it_next_json(sub, S_LINE_MS);
            it_expect_event(obj, r ? "compute_node.update" : "compute_node.create", uuid, r, ids);
            json_decref(obj);
        }
        if (r == 0) {
            //  Both brokers forward before one is killed
            int64_t deadline = zclock_mono() + S_WAIT_MS;
            while ((it_broker_stat(a.service, "forwarded", 1000) < NODES ||
                    it_broker_stat(b.service, "forwarded", 1000) < NODES) &&
                   zclock_mono() < deadline)
                zclock_sleep(10);
        }
    }
    //  The other broker's copies of the last ones come too: never printed
    char extra[8192];
    cr_expect_eq(it_read_line(sub, extra, sizeof(extra), 1000), -1, "printed more: %s", extra);
    cr_expect_eq(zhashx_size(ids), NODES * (ROUNDS + 1));
    cr_expect_eq(it_finish(&pub, S_WAIT_MS), 0);
    int code;
    char *err = it_term_stderr(sub, 10000, &code);
    cr_expect_eq(code, 0);
    //  The exit report: "... lost 0 in 0 seq gaps; ... N duplicates dropped"
    const char *dups = strstr(err, " duplicates dropped");
    const char *start = dups;
    while (start && start > err && start[-1] >= '0' && start[-1] <= '9')
        start--;
    cr_expect(dups && start < dups && strtol(start, NULL, 10) >= 1,
              "the other broker's copies were not dropped: %s", err);
    cr_expect(strstr(err, "lost 0 in 0 seq gaps"), "stderr: %s", err);
    free(err);
    it_stop(&sub, SIGKILL, 1000);
    zhashx_destroy(&ids);
    it_env_fini(&a);
    it_env_fini(&b);
}
