/*  support.c — the integration suites' Criterion layer (see support.h) over
    support_proc.c.
*/
#include "support.h"
#include "hvn_proto.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void it_env_init(it_env_t *env)
{
    memset(env, 0, sizeof(*env));
    cr_assert_eq(it_tempdir(env->dir, sizeof(env->dir), "hvn-it"), 0, "mkdtemp: %s",
                 strerror(errno));
    snprintf(env->frontend, sizeof(env->frontend), "ipc://%s/frontend", env->dir);
    snprintf(env->backend, sizeof(env->backend), "ipc://%s/backend", env->dir);
    snprintf(env->service, sizeof(env->service), "ipc://%s/service", env->dir);
}

void it_env_fini(it_env_t *env)
{
    it_stop(&env->broker, SIGTERM, 5000);
    it_stat_curve(NULL, NULL);
    it_tempdir_remove(env->dir);
    env->dir[0] = '\0';
}

it_proc_t *it_broker_start(it_env_t *env, const char *const extra[])
{
    const char *argv[IT_MAX_ARGS + 1] = {"hvn-broker", "--frontend", env->frontend,
                                         "--backend",  env->backend, "--service",
                                         env->service, "--name",     "it-broker"};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i] && n < IT_MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    it_proc_t *broker = it_spawn(argv, false, false, false);
    cr_assert_not_null(broker, "cannot start hvn-broker");
    int64_t deadline = zclock_mono() + 10000;
    while (it_broker_stat(env->service, "uptime_ms", 200) < 0) {
        cr_assert(it_wait(broker, 0) < 0, "hvn-broker exited at start");
        cr_assert(zclock_mono() < deadline, "hvn-broker does not answer STATS");
    }
    env->broker = broker;
    return broker;
}

static it_env_t *s_suite_env; //  The environment it_env_teardown stops

void it_env_setup(it_env_t *env)
{
    it_env_init(env);
    it_broker_start(env, NULL);
    s_suite_env = env;
}

void it_env_teardown(void)
{
    if (s_suite_env)
        it_env_fini(s_suite_env);
    s_suite_env = NULL;
}

void it_env_pair(it_env_t *a, it_env_t *b, const char *const extra[])
{
    it_env_init(a);
    it_env_init(b);
    it_broker_start(a, extra);
    it_broker_start(b, extra);
}

int it_free_port(void)
{
    int port = it_port_free();
    cr_assert(port > 0, "no free port on 127.0.0.1: %s", strerror(errno));
    return port;
}

json_t *it_next_json(it_proc_t *proc, int timeout_ms)
{
    char line[8192];
    cr_assert(it_read_line(proc, line, sizeof(line), timeout_ms) > 0, "no line from hvn-sub");
    json_error_t error;
    json_t *obj = json_loads(line, 0, &error);
    cr_assert_not_null(obj, "hvn-sub printed non-JSON: %s", line);
    return obj;
}

json_t *it_node_data(json_t *obj)
{
    json_t *data = json_object_get(json_object_get(obj, "payload"), "nova_object.data");
    cr_assert_not_null(data);
    return data;
}

void it_expect_event(json_t *obj, const char *event, const char *uuid, int64_t vcpus_used,
                     zhashx_t *ids)
{
    json_t *data = it_node_data(obj);
    cr_assert_str_eq(json_string_value(json_object_get(obj, "event_type")), event);
    cr_assert_str_eq(json_string_value(json_object_get(data, "uuid")), uuid);
    cr_assert_eq(json_integer_value(json_object_get(data, "vcpus_used")), vcpus_used,
                 "%s: vcpus_used", uuid);
    const char *id = json_string_value(json_object_get(obj, "message_id"));
    cr_assert_not_null(id);
    cr_assert_eq(zhashx_insert(ids, id, (void *)1), 0, "message %s printed twice", id);
}

char *it_node_json(char *buf, size_t size, int64_t id, const char *uuid, const char *host,
                   int64_t vcpus_used, int64_t memory_mb_used)
{
    //  The values; the line's keys, order and form come from the schema
    //  table through hvn_json_node
    static const struct {
        hvn_field_id_t field; //  An int field
        int64_t value;        //  Its value in every node
    } ints[] = {{HVN_F_VCPUS, 32},
                {HVN_F_MEMORY_MB, 131072},
                {HVN_F_LOCAL_GB, 900},
                {HVN_F_LOCAL_GB_USED, 120},
                {HVN_F_HYPERVISOR_VERSION, 7002000},
                {HVN_F_FREE_DISK_GB, 780},
                {HVN_F_CURRENT_WORKLOAD, 0},
                {HVN_F_RUNNING_VMS, 3},
                {HVN_F_DISK_AVAILABLE_LEAST, 700}};
    hvn_node_t node;
    hvn_node_init(&node);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        hvn_node_set_int(&node, ints[i].field, ints[i].value);
    hvn_node_set_int(&node, HVN_F_ID, id);
    hvn_node_set_int(&node, HVN_F_VCPUS_USED, vcpus_used);
    hvn_node_set_int(&node, HVN_F_MEMORY_MB_USED, memory_mb_used);
    hvn_node_set_int(&node, HVN_F_FREE_RAM_MB, 131072 - memory_mb_used);
    char hostname[HVN_STR_MAX + 1];
    snprintf(hostname, sizeof(hostname), "%s.example.org", host);
    hvn_node_set_str(&node, HVN_F_UUID, uuid);
    hvn_node_set_str(&node, HVN_F_HOST, host);
    hvn_node_set_str(&node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(&node, HVN_F_HYPERVISOR_HOSTNAME, hostname);
    hvn_node_set_str(&node, HVN_F_HOST_IP, "192.0.2.17");
    char *json = hvn_json_node(&node);
    cr_assert(json, "node %s does not render", uuid);
    cr_assert_lt(strlen(json) + 1, size, "it_node_json: buffer too small");
    snprintf(buf, size, "%s\n", json);
    free(json);
    return buf;
}

//  Returns the resident set of process pid in KiB (VmRSS), asserted found.
long it_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file, "no %s", path);
    long kib = -1;
    while (fgets(line, sizeof(line), file))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(file);
    cr_assert_gt(kib, 0, "no VmRSS in %s", path);
    return kib;
}
