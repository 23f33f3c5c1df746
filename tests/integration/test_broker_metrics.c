/*  test_broker_metrics.c — hvn-broker --metrics: every STATS counter as
    Prometheus text, read with a real parser (python3-prometheus-client),
    and a bad --metrics refused at start; hvn-agent --metrics the same way.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <czmq.h>

static it_env_t env;
static int port;

//  Starts a broker serving /metrics on a free port.
static void s_setup(void)
{
    it_env_init(&env);
    port = it_free_port();
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    const char *extra[] = {"--metrics", address, "--heartbeat-ms", "3600000", NULL};
    it_broker_start(&env, extra);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(broker_metrics, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  Publishes count notifications of host cmp-601 through hvn-pub. Returns
//  its exit status.
static int s_publish(int count)
{
    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", "cmp-601", NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    char line[2048], uuid[64];
    for (int i = 0; i < count; i++) {
        snprintf(uuid, sizeof(uuid), "7b1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b%04x", i);
        it_write(pub, it_node_json(line, sizeof(line), i + 1, uuid, "cmp-601", i, 1024));
    }
    int code = it_finish(&pub, 30000);
    return code;
}

Test(broker_metrics, every_stats_counter_is_served_as_prometheus_text)
{
    cr_assert_eq(s_publish(5), 0);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    const char *argv[] = {"/usr/bin/python3",
                          HVN_SOURCE_DIR "/tests/integration/clients/hvn_broker_metrics_check.py",
                          env.frontend, env.service, port_text, NULL};
    it_proc_t *check = it_spawn(argv, false, true, true);
    char *out = it_read_stdout(check, 30000);
    int code = it_wait(check, 5000);
    char *err = it_read_stderr(check, 1000);
    cr_expect_eq(code, 0, "check: %s%s", out, err);
    cr_expect(strstr(out, "STATS counters is in /metrics with its value"), "%s", out);
    free(out);
    free(err);
    it_stop(&check, SIGKILL, 1000);
}

Test(broker_metrics, a_bad_or_busy_metrics_address_is_refused_at_start)
{
    const char *bad[] = {"--metrics", "nowhere", NULL};
    const char *argv[] = {"hvn-broker", bad[0], bad[1], NULL};
    it_proc_t *broker = it_spawn(argv, false, false, true);
    cr_expect_eq(it_wait(broker, 5000), 2);
    it_stop(&broker, SIGKILL, 1000);
    //  The port the running broker serves on: cannot be bound twice
    char address[64], dir_fe[320], dir_be[320], dir_svc[320];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    snprintf(dir_fe, sizeof(dir_fe), "%s2", env.frontend);
    snprintf(dir_be, sizeof(dir_be), "%s2", env.backend);
    snprintf(dir_svc, sizeof(dir_svc), "%s2", env.service);
    const char *busy[] = {"hvn-broker", "--frontend", dir_fe,    "--backend", dir_be,
                          "--service",  dir_svc,      "--metrics", address,   NULL};
    broker = it_spawn(busy, false, false, true);
    cr_expect_eq(it_wait(broker, 5000), 1);
    char *err = it_read_stderr(broker, 1000);
    cr_expect(strstr(err, "--metrics"), "%s", err);
    free(err);
    it_stop(&broker, SIGKILL, 1000);
}

Test(broker_metrics, hvn_agent_serves_its_publisher_counters_as_prometheus_text)
{
    if (access(it_bin("hvn-agent"), X_OK) != 0)
        cr_skip_test("hvn-agent is not built");
    int agent_port = it_free_port();
    char address[64], state[300], url[96];
    snprintf(address, sizeof(address), "127.0.0.1:%d", agent_port);
    snprintf(state, sizeof(state), "%s/agent", env.dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", agent_port);
    const char *argv[] = {"hvn-agent", "--connect", env.frontend, "--state-dir", state,
                          "--host",    "cmp-602",   "--metrics",  address,       NULL};
    it_proc_t *agent = it_spawn(argv, false, false, true);
    //  Its node reaches the broker: one notification sent
    int64_t deadline = zclock_mono() + 20000;
    while (it_broker_stat(env.service, "notifications", 1000) < 1 && zclock_mono() < deadline)
        zclock_sleep(20);
    cr_assert_geq(it_broker_stat(env.service, "notifications", 1000), 1);
    //  Parsed with prometheus_client: every family typed, the counters there
    const char *check =
        "import sys, urllib.request\n"
        "from prometheus_client.parser import text_string_to_metric_families as parse\n"
        "text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()\n"
        "samples = {s.name: (f.type, s.value) for f in parse(text) for s in f.samples}\n"
        "assert samples['hvnotify_agent_sent_total'] == ('counter', 1.0), samples\n"
        "assert samples['hvnotify_agent_creates_total'] == ('counter', 1.0), samples\n"
        "assert samples['hvnotify_agent_nodes'] == ('gauge', 1.0), samples\n"
        "assert samples['hvnotify_agent_reports_total'][1] >= 1, samples\n"
        "print('agent metrics', len(samples))\n";
    const char *py[] = {"/usr/bin/python3", "-c", check, url, NULL};
    it_proc_t *proc = it_spawn(py, false, true, true);
    char *out = it_read_stdout(proc, 20000);
    int code = it_wait(proc, 5000);
    char *err = it_read_stderr(proc, 1000);
    cr_expect_eq(code, 0, "%s%s", out, err);
    cr_expect(strstr(out, "agent metrics 16"), "%s", out);
    free(out);
    free(err);
    it_stop(&proc, SIGKILL, 1000);
    cr_expect_eq(it_stop(&agent, SIGTERM, 10000), 0);
}
