/*  bridge_support.c — see bridge_support.h. */
#include "bridge_support.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_LISTENER HVN_SOURCE_DIR "/tests/bridge/listener.py"

static rmq_t s_node;       //  The suite's RabbitMQ, shared by its tests
static it_env_t *s_env;    //  The environment of the running test

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    rmq_start_shared(&s_node);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    rmq_stop(&s_node);
}

void bt_setup(it_env_t *env, rmq_t *rmq)
{
    cr_assert(rmq_get(rmq), "the suite's RabbitMQ did not start");
    it_env_init(env);
    it_broker_start(env, NULL);
    s_env = env;
}

void bt_teardown(void)
{
    if (s_env)
        it_env_fini(s_env);
    s_env = NULL;
}

//  Returns monotonic ms.
static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bt_log_read(it_proc_t *proc, bt_log_t *log, int timeout_ms)
{
    char *more = it_read_stderr(proc, timeout_ms);
    size_t n = strlen(more);
    char *text = realloc(log->text, log->len + n + 1);
    cr_assert_not_null(text);
    memcpy(text + log->len, more, n + 1);
    log->text = text;
    log->len += n;
    free(more);
}

bool bt_log_wait(it_proc_t *proc, bt_log_t *log, const char *needle, int timeout_ms)
{
    long long deadline = s_now_ms() + timeout_ms;
    while (!(log->text && strstr(log->text, needle))) {
        if (s_now_ms() >= deadline)
            return false;
        bt_log_read(proc, log, 50);
    }
    return true;
}

size_t bt_log_count(const bt_log_t *log, const char *needle)
{
    size_t count = 0;
    for (const char *p = log->text; p && (p = strstr(p, needle)); p += strlen(needle))
        count++;
    return count;
}

void bt_log_free(bt_log_t *log)
{
    free(log->text);
    log->text = NULL;
    log->len = 0;
}

bool bt_wait_confirmed(it_proc_t *bridge, bt_log_t *log, int count, int timeout_ms)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "confirmed %d, re-sent", count);
    long long deadline = s_now_ms() + timeout_ms;
    while (s_now_ms() < deadline) {
        kill(bridge->pid, SIGUSR1);
        if (bt_log_wait(bridge, log, needle, 250))
            return true;
    }
    return false;
}

it_proc_t *bt_bridge_start(it_env_t *env, const rmq_t *rmq, const char *const extra[],
                           bt_log_t *log)
{
    const char *argv[IT_MAX_ARGS] = {"hvn-bridge", "--connect",       env->backend, "--service",
                                     env->service, "--transport-url", rmq->url};
    size_t n = 7;
    for (size_t i = 0; extra && extra[i] && n < IT_MAX_ARGS - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    it_proc_t *bridge = it_spawn(argv, false, false, true);
    cr_assert_not_null(bridge);
    cr_assert(bt_log_wait(bridge, log, "connected to", 20000), "no connection: %s", log->text);
    cr_assert(bt_log_wait(bridge, log, "following", 20000), "no snapshot: %s", log->text);
    return bridge;
}

it_proc_t *bt_listener_start(const rmq_t *rmq, const char *exchange, const char *topic, int count,
                             int timeout_s, bool durable)
{
    char count_text[16], timeout_text[16];
    snprintf(count_text, sizeof(count_text), "%d", count);
    snprintf(timeout_text, sizeof(timeout_text), "%d", timeout_s);
    const char *argv[] = {"/usr/bin/python3",
                          S_LISTENER,
                          "oslo",
                          rmq->url,
                          exchange,
                          topic,
                          count_text,
                          timeout_text,
                          durable ? "durable" : NULL,
                          NULL};
    it_proc_t *listener = it_spawn(argv, false, true, false);
    cr_assert_not_null(listener);
    char line[256];
    cr_assert(it_read_line(listener, line, sizeof(line), 30000) >= 0, "listener did not start");
    cr_assert_str_eq(line, "READY");
    return listener;
}

json_t *bt_read_json_lines(it_proc_t *proc, int count, int timeout_ms)
{
    json_t *lines = json_array();
    static char line[65536];
    for (int i = 0; i < count; i++) {
        if (it_read_line(proc, line, sizeof(line), timeout_ms) < 0)
            break;
        json_error_t error;
        json_t *item = json_loads(line, 0, &error);
        cr_assert_not_null(item, "not JSON: %s", line);
        json_array_append_new(lines, item);
    }
    return lines;
}

const char *bt_uuid(int i, char out[37])
{
    snprintf(out, 37, "6f0a8c2e-4b1d-4e5f-9a7b-%012d", i);
    return out;
}

char *bt_node_line(char *buf, size_t size, int i, const char *host, int vcpus_used)
{
    char uuid[37];
    return it_node_json(buf, size, i, bt_uuid(i, uuid), host, vcpus_used, 4096);
}

it_proc_t *bt_pub_start(it_env_t *env, const char *host)
{
    const char *argv[] = {"hvn-pub", "--connect", env->frontend, "--host", host, NULL};
    it_proc_t *pub = it_spawn(argv, true, false, false);
    cr_assert_not_null(pub);
    return pub;
}

void bt_pub_nodes(it_proc_t *pub, const char *host, int from, int to, int pace_us)
{
    char line[2048];
    for (int i = from; i < to; i++) {
        cr_assert_eq(it_write(pub, bt_node_line(line, sizeof(line), i, host, 1)), 0);
        if (pace_us)
            usleep((useconds_t)pace_us);
    }
}

void bt_pub_end(it_proc_t **pub_p)
{
    it_close_stdin(*pub_p);
    cr_assert_eq(it_wait(*pub_p, 60000), 0, "hvn-pub failed");
    it_stop(pub_p, SIGKILL, 1000);
}

size_t bt_collect(it_proc_t *listener, size_t count, int timeout_ms, size_t *distinct,
                  json_t *expect, size_t *strangers)
{
    json_t *seen = json_object();
    size_t lines = 0;
    *strangers = 0;
    static char line[65536];
    while (json_object_size(seen) < count &&
           it_read_line(listener, line, sizeof(line), timeout_ms) >= 0) {
        json_t *item = json_loads(line, 0, NULL);
        cr_assert_not_null(item, "not JSON: %s", line);
        const char *id = json_string_value(json_object_get(item, "message_id"));
        cr_assert_not_null(id);
        if (expect && !json_object_get(expect, id))
            (*strangers)++;
        json_object_set_new(seen, id, json_true());
        json_decref(item);
        lines++;
    }
    *distinct = json_object_size(seen);
    json_decref(seen);
    return lines;
}
