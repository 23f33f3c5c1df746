/*  test_bridge.c — hvn-bridge end to end: hvn-pub → hvn-broker → hvn-bridge
    → a real RabbitMQ (started once for the suite) → a real oslo.messaging
    NotificationListener, and what RabbitMQ holds in between.
*/
#include "bridge_support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static it_env_t env;
static rmq_t rmq;

static void s_setup(void)
{
    bt_setup(&env, &rmq);
}

TestSuite(bridge, .init = s_setup, .fini = bt_teardown, .timeout = 90);

//  Feeds host's hvn-pub a create, an update and a delete of node n and
//  waits for it to exit 0.
static void s_publish_create_update_delete(const char *host, int n)
{
    const char *argv[] = {"hvn-pub", "--connect", env.frontend, "--host", host, NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub);
    char line[2048], uuid[37];
    it_write(pub, bt_node_line(line, sizeof(line), n, host, 2));
    it_write(pub, bt_node_line(line, sizeof(line), n, host, 5));
    snprintf(line, sizeof(line), "{\"uuid\": \"%s\", \"deleted\": true}\n", bt_uuid(n, uuid));
    it_write(pub, line);
    it_close_stdin(pub);
    cr_assert_eq(it_wait(pub, 30000), 0, "hvn-pub failed");
    it_stop(&pub, SIGKILL, 1000);
}

//  Returns the exit status of the bridge after SIGTERM, its log read to
//  the end into log.
static int s_bridge_stop(it_proc_t **bridge_p, bt_log_t *log)
{
    kill((*bridge_p)->pid, SIGTERM);
    int code = it_wait(*bridge_p, 15000);
    bt_log_read(*bridge_p, log, 100);
    it_stop(bridge_p, SIGKILL, 1000);
    return code;
}

//  Returns the rabbitmqctl listing (args) of the suite's node; asserts it ran.
static char *s_ctl(const char *args)
{
    char *out = NULL;
    int code = rmq_ctl(&rmq, args, &out);
    cr_assert_eq(code, 0, "rabbitmqctl %s: %s", args, out);
    return out;
}

//  Returns nothing; expects the rabbitmqctl listing (args) to hold line.
static void s_ctl_expect(const char *args, const char *line)
{
    char *out = s_ctl(args);
    cr_expect(strstr(out, line), "rabbitmqctl %s: no '%s' in: %s", args, line, out);
    free(out);
}

Test(bridge, oslo_listener_hears_create_update_delete_as_on_the_hvnotify_wire)
{
    it_proc_t *listener = bt_listener_start(&rmq, "nova", "versioned_notifications", 3, 60, false);
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, NULL, &log);
    const char *sub_argv[] = {"hvn-sub", "--connect", env.backend, "--count",
                              "3",       "--timeout", "30",        NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, true, false);
    //  The bridge's replica subscribes to two prefixes, hvn-sub to one
    cr_assert_eq(it_wait_subscriptions(env.service, 3, 10000), 0, "no subscriptions");
    s_publish_create_update_delete("cmp-017", 1);

    json_t *wire = bt_read_json_lines(sub, 3, 20000);
    json_t *heard = bt_read_json_lines(listener, 3, 30000);
    cr_assert_eq(json_array_size(wire), 3, "hvn-sub got %zu", json_array_size(wire));
    cr_assert_eq(json_array_size(heard), 3, "the listener got %zu; bridge log: %s",
                 json_array_size(heard), log.text);
    const char *events[] = {"compute_node.create", "compute_node.update", "compute_node.delete"};
    for (size_t i = 0; i < 3; i++) {
        //  The listener's executor runs endpoints on a thread pool: match by message id
        json_t *w = json_array_get(wire, i), *h = NULL;
        for (size_t j = 0; j < 3 && !h; j++)
            if (json_equal(json_object_get(json_array_get(heard, j), "message_id"),
                           json_object_get(w, "message_id")))
                h = json_array_get(heard, j);
        cr_assert_not_null(h, "notification %zu (%s) not heard", i,
                           json_string_value(json_object_get(w, "message_id")));
        cr_expect_str_eq(json_string_value(json_object_get(w, "event_type")), events[i]);
        const char *keys[] = {"message_id", "publisher_id", "event_type", "priority", "timestamp"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            cr_expect(json_equal(json_object_get(w, keys[k]), json_object_get(h, keys[k])),
                      "notification %zu: %s differs: %s vs %s", i, keys[k],
                      json_string_value(json_object_get(w, keys[k])),
                      json_string_value(json_object_get(h, keys[k])));
        cr_expect(json_equal(json_object_get(w, "payload"), json_object_get(h, "payload")),
                  "notification %zu: payload differs", i);
    }
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(heard, 0), "publisher_id")),
                     "nova-compute:cmp-017");
    json_decref(wire);
    json_decref(heard);
    cr_expect_eq(it_wait(listener, 20000), 0, "the listener did not finish");
    cr_expect_eq(it_wait(sub, 10000), 0);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0, "bridge exit status; log: %s", log.text);
    cr_expect(strstr(log.text, "received 3, published 3, confirmed 3, re-sent 0, dropped 0"),
              "counters: %s", log.text);
    it_stop(&sub, SIGKILL, 1000);
    it_stop(&listener, SIGKILL, 1000);
    bt_log_free(&log);
}

Test(bridge, body_and_properties_are_oslo_messagingv2_and_wait_in_the_default_queue)
{
    //  Nobody consumes yet: the default queue the bridge declares keeps it
    const char *extra[] = {"--topic", "hvn_form", NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &log);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    s_publish_create_update_delete("cmp-020", 2);
    cr_assert(bt_wait_confirmed(bridge, &log, 3, 20000), "not confirmed: %s", log.text);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0);
    cr_assert(strstr(log.text, "confirmed 3,"), "counters: %s", log.text);

    s_ctl_expect("list_exchanges name type durable auto_delete", "nova\ttopic\tfalse\tfalse");
    s_ctl_expect("list_bindings source_name destination_name routing_key",
                 "nova\thvn_form.info\thvn_form.info");

    const char *argv[] = {"/usr/bin/python3",
                          HVN_SOURCE_DIR "/tests/bridge/listener.py",
                          "raw",
                          rmq.url,
                          "hvn_form.info",
                          "3",
                          "20",
                          NULL};
    it_proc_t *raw = it_spawn(argv, false, true, false);
    char line[8192];
    cr_assert(it_read_line(raw, line, sizeof(line), 30000) >= 0);
    cr_assert_str_eq(line, "READY");
    json_t *got = bt_read_json_lines(raw, 3, 20000);
    cr_assert_eq(json_array_size(got), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_array_get(got, i);
        json_t *props = json_object_get(m, "properties");
        cr_expect_str_eq(json_string_value(json_object_get(props, "content_type")),
                         "application/json");
        cr_expect_str_eq(json_string_value(json_object_get(props, "content_encoding")), "utf-8");
        cr_expect_eq(json_integer_value(json_object_get(props, "delivery_mode")), 2);
        json_t *body = json_loads(json_string_value(json_object_get(m, "body")), 0, NULL);
        cr_assert_not_null(body);
        cr_expect_eq(json_object_size(body), 2);
        cr_expect_str_eq(json_string_value(json_object_get(body, "oslo.version")), "2.0");
        const char *inner_text = json_string_value(json_object_get(body, "oslo.message"));
        cr_assert_not_null(inner_text, "oslo.message is not a JSON string");
        json_t *inner = json_loads(inner_text, 0, NULL);
        cr_assert_not_null(inner);
        cr_expect_eq(json_object_size(inner), 7, "inner keys: %s", inner_text);
        const char *keys[] = {"message_id", "publisher_id", "event_type", "priority",
                              "timestamp",  "payload",      "_unique_id"};
        for (size_t k = 0; k < 7; k++)
            cr_expect_not_null(json_object_get(inner, keys[k]), "no %s", keys[k]);
        //  _unique_id: the message id's 32 hex digits
        char expected[37] = "";
        size_t o = 0;
        for (const char *p = json_string_value(json_object_get(inner, "message_id")); p && *p; p++)
            if (*p != '-')
                expected[o++] = *p;
        expected[o] = '\0';
        cr_expect_eq(o, 32);
        cr_expect_str_eq(json_string_value(json_object_get(inner, "_unique_id")), expected);
        cr_expect_str_eq(json_string_value(json_object_get(inner, "priority")), "INFO");
        json_decref(inner);
        json_decref(body);
    }
    json_decref(got);
    cr_expect_eq(it_wait(raw, 10000), 0);
    it_stop(&raw, SIGKILL, 1000);
    bt_log_free(&log);
}

Test(bridge, durable_declares_a_durable_exchange_and_queue)
{
    const char *extra[] = {"--durable", "--exchange",  "nova_durable",
                           "--topic",   "hvn_durable", NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &log);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0);
    s_ctl_expect("list_exchanges name type durable auto_delete",
                 "nova_durable\ttopic\ttrue\tfalse");
    s_ctl_expect("list_queues name durable auto_delete", "hvn_durable.info\ttrue\tfalse");
    bt_log_free(&log);
}

Test(bridge, refused_login_is_logged_retried_and_never_fatal)
{
    char url[160];
    snprintf(url, sizeof(url), "rabbit://guest:wrong@127.0.0.1:%d/", rmq.port);
    const char *argv[] = {"hvn-bridge", "--connect",       env.backend, "--service",
                          env.service,  "--transport-url", url,         NULL};
    it_proc_t *bridge = it_spawn(argv, false, false, true);
    bt_log_t log = {0};
    cr_assert(bt_log_wait(bridge, &log, "refused", 20000), "log: %s", log.text);
    cr_expect(strstr(log.text, "login as 'guest' on virtual host '/' refused"), "log: %s",
              log.text);
    cr_expect(strstr(log.text, "ACCESS_REFUSED"), "log: %s", log.text);
    cr_expect_null(strstr(log.text, "wrong"), "the password is logged: %s", log.text);
    //  Retried, with backoff, and the bridge is still up
    log.text[0] = '\0';
    log.len = 0;
    cr_assert(bt_log_wait(bridge, &log, "refused", 20000), "not retried: %s", log.text);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0, "log: %s", log.text);
    cr_expect(strstr(log.text, "failed attempts"), "log: %s", log.text);
    bt_log_free(&log);
}

Test(bridge, bad_usage_exits_2_with_one_line_naming_the_option)
{
    struct {
        const char *url;
        const char *says;
    } cases[] = {
        {"amqp://guest:guest@localhost:5672/", "scheme 'amqp' is not supported"},
        {"rabbit://guest:guest@localhost:0/", "port '0' is not from 1 to 65535"},
        {"rabbit://guest:guest@/", "no host name"},
        {"rabbit://guest:guest@h1,/", "host 2 is empty"},
        {"rabbit://guest:guest@h1/?ssl=1", "query parameters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[] = {"hvn-bridge", "--transport-url", cases[i].url, NULL};
        it_proc_t *bridge = it_spawn(argv, false, false, true);
        cr_expect_eq(it_wait(bridge, 5000), 2, "%s", cases[i].url);
        char *err = it_read_stderr(bridge, 100);
        cr_expect(strstr(err, "hvn-bridge: --transport-url: ") && strstr(err, cases[i].says),
                  "%s: %s", cases[i].url, err);
        free(err);
        it_stop(&bridge, SIGKILL, 1000);
    }
    const char *argv[] = {"hvn-bridge", NULL};
    it_proc_t *bridge = it_spawn(argv, false, false, true);
    cr_expect_eq(it_wait(bridge, 5000), 2);
    char *err = it_read_stderr(bridge, 100);
    cr_expect(strstr(err, "--transport-url is required"), "%s", err);
    free(err);
    it_stop(&bridge, SIGKILL, 1000);
}

Test(bridge, past_max_pending_the_oldest_are_dropped_counted_and_logged)
{
    //  Nothing listens on this port: nothing is ever confirmed
    char url[160];
    snprintf(url, sizeof(url), "rabbit://guest:guest@127.0.0.1:%d/", it_free_port());
    const char *argv[] = {"hvn-bridge",      "--connect", env.backend,     "--service", env.service,
                          "--transport-url", url,         "--max-pending", "5",         NULL};
    it_proc_t *bridge = it_spawn(argv, false, false, true);
    bt_log_t log = {0};
    cr_assert(bt_log_wait(bridge, &log, "following", 20000), "%s", log.text);
    cr_expect(bt_log_wait(bridge, &log, "cannot connect to 127.0.0.1:", 20000), "%s", log.text);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    it_proc_t *pub = bt_pub_start(&env, "cmp-full");
    bt_pub_nodes(pub, "cmp-full", 0, 8, 0);
    bt_pub_end(&pub);
    bool received = false;
    for (int i = 0; i < 80 && !received; i++) {
        kill(bridge->pid, SIGUSR1);
        received = bt_log_wait(bridge, &log, "received 8,", 250);
    }
    cr_assert(received, "%s", log.text);
    cr_expect(strstr(log.text, "received 8, published 0, confirmed 0, re-sent 0, dropped 3, "
                               "pending 5"),
              "%s", log.text);
    cr_expect(strstr(log.text, "5 notifications kept unconfirmed (--max-pending): dropped the "
                               "oldest"),
              "%s", log.text);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0);
    cr_expect(strstr(log.text, "stopping with 5 notifications not confirmed"), "%s", log.text);
    bt_log_free(&log);
}

Test(bridge, metrics_are_prometheus_text_read_by_a_real_parser)
{
    int port = it_free_port();
    char address[64], url[96];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    const char *extra[] = {"--topic", "hvn_metrics", "--metrics", address, NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &log);
    cr_assert_eq(it_wait_subscriptions(env.service, 2, 10000), 0);
    s_publish_create_update_delete("cmp-030", 3);
    cr_assert(bt_wait_confirmed(bridge, &log, 3, 20000), "not confirmed: %s", log.text);

    //  Parsed with prometheus_client; the text is rendered every second, so
    //  the check reads it until the counters have caught up
    const char *check =
        "import sys, time, urllib.request\n"
        "from prometheus_client.parser import text_string_to_metric_families as parse\n"
        "for attempt in range(100):\n"
        "    text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()\n"
        "    families = list(parse(text))\n"
        "    samples = {s.name + str(sorted(s.labels.items())): (f.type, s.value)\n"
        "               for f in families for s in f.samples}\n"
        "    if samples.get('hvnotify_bridge_confirmed_total[]', (0, 0))[1] >= 3:\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "def value(name, kind):\n"
        "    got = samples[name + '[]']\n"
        "    assert got[0] == kind, (name, got)\n"
        "    return got[1]\n"
        "assert value('hvnotify_bridge_received_total', 'counter') == 3, samples\n"
        "assert value('hvnotify_bridge_published_total', 'counter') == 3, samples\n"
        "assert value('hvnotify_bridge_confirmed_total', 'counter') == 3, samples\n"
        "assert value('hvnotify_bridge_dropped_total', 'counter') == 0, samples\n"
        "assert value('hvnotify_bridge_resent_total', 'counter') == 0, samples\n"
        "assert value('hvnotify_bridge_reconnects_total', 'counter') == 0, samples\n"
        "assert value('hvnotify_bridge_pending', 'gauge') == 0, samples\n"
        "assert value('hvnotify_bridge_connected', 'gauge') == 1, samples\n"
        "assert value('hvnotify_bridge_blocked', 'gauge') == 0, samples\n"
        "p99 = samples[\"hvnotify_bridge_confirm_latency_seconds[('quantile', '0.99')]\"]\n"
        "assert p99[0] == 'gauge' and 0 < p99[1] < 60, p99\n"
        "for f in families:\n"
        "    assert f.documentation, f.name\n"
        "    assert f.type in ('counter', 'gauge'), (f.name, f.type)\n"
        "print('bridge metrics', len(families))\n";
    const char *py[] = {"/usr/bin/python3", "-c", check, url, NULL};
    it_proc_t *proc = it_spawn(py, false, true, true);
    char *out = it_read_stdout(proc, 30000);
    int code = it_wait(proc, 5000);
    char *err = it_read_stderr(proc, 1000);
    cr_expect_eq(code, 0, "%s%s", out, err);
    cr_expect(strstr(out, "bridge metrics"), "%s", out);
    free(out);
    free(err);
    it_stop(&proc, SIGKILL, 1000);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0, "bridge exit status; log: %s", log.text);
    bt_log_free(&log);
}

Test(bridge, a_bad_or_busy_metrics_address_is_refused_at_start)
{
    const char *bad[] = {"hvn-bridge", "--transport-url", rmq.url, "--metrics", "nowhere", NULL};
    it_proc_t *proc = it_spawn(bad, false, false, true);
    cr_expect_eq(it_wait(proc, 10000), 2);
    char *err = it_read_stderr(proc, 1000);
    cr_expect(strstr(err, "--metrics"), "%s", err);
    free(err);
    it_stop(&proc, SIGKILL, 1000);

    //  A port another bridge serves: exit 1, naming --metrics
    int port = it_free_port();
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    const char *extra[] = {"--topic", "hvn_busy", "--metrics", address, NULL};
    bt_log_t log = {0};
    it_proc_t *bridge = bt_bridge_start(&env, &rmq, extra, &log);
    const char *busy[] = {"hvn-bridge",      "--connect", env.backend, "--service", env.service,
                          "--transport-url", rmq.url,     "--metrics", address,     NULL};
    proc = it_spawn(busy, false, false, true);
    cr_expect_eq(it_wait(proc, 10000), 1);
    err = it_read_stderr(proc, 1000);
    cr_expect(strstr(err, "--metrics"), "%s", err);
    free(err);
    it_stop(&proc, SIGKILL, 1000);
    cr_expect_eq(s_bridge_stop(&bridge, &log), 0, "bridge exit status; log: %s", log.text);
    bt_log_free(&log);
}
