/*  support.h — start and stop the real programs for integration tests:
    the Criterion layer (it asserts) over support_proc.h (processes, ports,
    temporary directories, STATS), which the chaos program shares.

    Every test gets its own temporary directory; endpoints are ipc:// sockets
    inside it (or tcp on a free loopback port), so suites run in parallel
    without colliding. Children die with the test process (PR_SET_PDEATHSIG),
    and it_stop() reaps them, so no process outlives a test.
*/
#ifndef HVN_IT_SUPPORT_H_INCLUDED
#define HVN_IT_SUPPORT_H_INCLUDED

#include "support_proc.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char dir[256];      //  Temporary directory of this test
    char frontend[300]; //  Broker endpoints
    char backend[300];
    char service[300];
    it_proc_t *broker; //  Running broker, or NULL
} it_env_t;

//  Makes a temp dir and ipc endpoints in it. Asserts on failure.
void it_env_init(it_env_t *env);

//  Stops the broker if running and removes the temp dir.
void it_env_fini(it_env_t *env);

//  Returns nothing; env is initialised (it_env_init) with a broker started
//  (it_broker_start, no extra arguments), and is the environment
//  it_env_teardown stops: a suite's .init calls it.
void it_env_setup(it_env_t *env);

//  Returns nothing; stops and removes the environment of the last
//  it_env_setup (it_env_fini): a suite's .fini.
void it_env_teardown(void);

//  Starts hvn-broker on env's endpoints with extra arguments (NULL-ended,
//  may be NULL) and waits until its service socket answers STATS.
it_proc_t *it_broker_start(it_env_t *env, const char *const extra[]);

//  Makes two environments, a and b, and starts a broker in each with extra
//  arguments (as it_broker_start): two brokers a subscriber may follow.
void it_env_pair(it_env_t *a, it_env_t *b, const char *const extra[]);

//  Writes one hvn-pub input line (with its newline) for a whole node with
//  plausible values. Returns buf.
char *it_node_json(char *buf, size_t size, int64_t id, const char *uuid, const char *host,
                   int64_t vcpus_used, int64_t memory_mb_used);

//  Returns a free TCP port on 127.0.0.1 (it_port_free; asserts there is one).
int it_free_port(void);

//  Returns the next stdout line of proc (hvn-sub) parsed as JSON (the
//  caller decrefs); fails the test when no line comes within timeout_ms or
//  it is not JSON.
json_t *it_next_json(it_proc_t *proc, int timeout_ms);

//  Returns payload.nova_object.data of a notification printed by hvn-sub;
//  fails the test when it has none.
json_t *it_node_data(json_t *obj);

//  Asserts that obj is notification `event` of node uuid with vcpus_used,
//  and that its message_id was not seen before (ids collects them).
void it_expect_event(json_t *obj, const char *event, const char *uuid, int64_t vcpus_used,
                     zhashx_t *ids);

//  Returns the resident set of process pid in KiB (VmRSS), asserted found.
long it_rss_kib(pid_t pid);

#endif
