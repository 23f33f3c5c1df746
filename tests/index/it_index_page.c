/*  it_index_page.c — hvn-index's live page in a real browser: hvn-pub →
    hvn-broker → hvn-index, and Debian's headless chromium (through
    chromedriver) on the page, driven by tests/index/check_page.py.

    The page's totals and cells must equal the database; a host named
    '<script>…</script>' is text; a change sent through hvn-pub changes the
    node's cell within a second, a removal takes it away within a second.
    check_page.py asks for each change on its stdout ("send <json>"); this
    test writes it to hvn-pub and answers "sent".
*/
#include "index_support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define S_NODES 200 //  The fleet's size

static it_env_t env;
static char db_path[512];

static void s_setup(void)
{
    it_env_init(&env);
    it_broker_start(&env, NULL);
    snprintf(db_path, sizeof(db_path), "%s/fleet.db", env.dir);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(index_page, .init = s_setup, .fini = s_teardown, .timeout = 100);

//  Returns the number of rows GET /v1/compute_nodes answers on port, or -1.
static int s_rows(int port)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/compute_nodes?limit=10000", port);
    const char *argv[] = {"/usr/bin/curl", "-sf", url, NULL};
    json_t *answer = ix_stdout_json(argv, 10000);
    int rows = answer ? (int)json_array_size(json_object_get(answer, "compute_nodes")) : -1;
    json_decref(answer);
    return rows;
}

//  Returns nothing; reports the generated fleet (fleet_gen.py) to hvn-pub.
static void s_report_fleet(it_proc_t *pub)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", S_NODES);
    const char *argv[] = {HVN_PYTHON,      HVN_SOURCE_DIR "/tests/index/fleet_gen.py",
                          "--nodes",       count,
                          "--script-host", NULL};
    it_proc_t *gen = it_spawn(argv, false, true, true);
    cr_assert_not_null(gen);
    char line[4096];
    int lines = 0;
    while (it_read_line(gen, line, sizeof(line), 10000) >= 0) {
        strncat(line, "\n", sizeof(line) - strlen(line) - 1);
        cr_assert_eq(it_write(pub, line), 0);
        lines++;
    }
    cr_assert_eq(lines, S_NODES);
    it_wait(gen, 5000);
    it_stop(&gen, SIGKILL, 1000);
}

Test(index_page, the_page_equals_the_database_and_follows_it_live)
{
    int port = it_free_port();
    char http[64];
    snprintf(http, sizeof(http), "127.0.0.1:%d", port);
    const char *index_argv[] = {"hvn-index", "--connect", env.backend, "--service", env.service,
                                "--db",      db_path,     "--http",    http,        NULL};
    it_proc_t *index = it_spawn(index_argv, false, false, false);
    cr_assert_not_null(index);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, 10000), 0, "hvn-index never subscribed");
    int64_t deadline = zclock_mono() + 10000; //  and its first snapshot was served
    while (it_broker_stat(env.service, "snapshots", 2000) < 1 && zclock_mono() < deadline)
        zclock_sleep(10);
    const char *pub_argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "page-pub", NULL};
    it_proc_t *pub = it_spawn(pub_argv, true, false, false);
    cr_assert_not_null(pub);
    s_report_fleet(pub);
    deadline = zclock_mono() + 15000;
    while (s_rows(port) != S_NODES) {
        cr_assert_lt(zclock_mono(), deadline, "the index never held the fleet");
        zclock_sleep(50); //  Polling the API: there is no handshake to wait on
    }
    char url[128];
    snprintf(url, sizeof(url), "http://%s/", http);
    const char *check_argv[] = {HVN_PYTHON, HVN_SOURCE_DIR "/tests/index/check_page.py", url,
                                db_path, NULL};
    it_proc_t *check = it_spawn(check_argv, true, true, false);
    cr_assert_not_null(check);
    char line[8192], verdict[8192] = "";
    while (!*verdict && it_read_line(check, line, sizeof(line), 60000) >= 0) {
        if (strncmp(line, "send ", 5) == 0) {
            strncat(line, "\n", sizeof(line) - strlen(line) - 1);
            int rc = it_write(pub, line + 5);
            it_write(check, rc == 0 ? "sent\n" : "hvn-pub is gone\n");
        } else
            snprintf(verdict, sizeof(verdict), "%s", line);
    }
    //  check_page.py closes its browser before it answers; let it finish
    int code = it_wait(check, 30000);
    cr_assert_str_eq(verdict, "ok", "check_page.py: %s", *verdict ? verdict : "no verdict");
    cr_expect_eq(code, 0, "check_page.py failed");
    it_stop(&check, SIGKILL, 1000);
    it_stop(&pub, SIGTERM, 5000);
    it_stop(&index, SIGTERM, 5000);
}
