/*  bridge_support.h — what the bridge's integration suites share: starting
    hvn-bridge and the oslo.messaging listener, publishing through hvn-pub,
    and reading a process's log as it grows.
*/
#ifndef HVN_BRIDGE_SUPPORT_H_INCLUDED
#define HVN_BRIDGE_SUPPORT_H_INCLUDED

#include "rmq.h"
#include "support.h"

#include <jansson.h>
#include <stdbool.h>

//  Each suite runs one RabbitMQ, started before its first test and stopped
//  after its last (Criterion's report hooks, in bridge_support.c).

//  Returns nothing; *rmq is the suite's RabbitMQ (asserted running) and env
//  a fresh test environment with a broker started: a suite's .init.
void bt_setup(it_env_t *env, rmq_t *rmq);

//  Returns nothing; the environment of the last bt_setup is stopped and
//  removed: a suite's .fini.
void bt_teardown(void);

//  A process's stderr, as read so far
typedef struct {
    char *text; //  Heap, NUL-terminated
    size_t len; //  Bytes
} bt_log_t;

//  Returns true once the log of proc holds needle (reading more of it as
//  it comes), false after timeout_ms.
bool bt_log_wait(it_proc_t *proc, bt_log_t *log, const char *needle, int timeout_ms);

//  Returns nothing; reads what proc wrote since and frees nothing.
void bt_log_read(it_proc_t *proc, bt_log_t *log, int timeout_ms);

//  Returns the number of times needle occurs in the log.
size_t bt_log_count(const bt_log_t *log, const char *needle);

//  Returns nothing; frees the log's text.
void bt_log_free(bt_log_t *log);

//  Starts hvn-bridge on env's broker and rmq's RabbitMQ with extra
//  arguments (NULL-ended, may be NULL), its stderr captured into log, and
//  waits until it is connected to RabbitMQ and has its first snapshot.
it_proc_t *bt_bridge_start(it_env_t *env, const rmq_t *rmq, const char *const extra[],
                           bt_log_t *log);

//  Returns true once the bridge's counters (asked for with SIGUSR1) say
//  that RabbitMQ confirmed count notifications, false after timeout_ms.
bool bt_wait_confirmed(it_proc_t *bridge, bt_log_t *log, int count, int timeout_ms);

//  Starts the oslo.messaging NotificationListener (listener.py oslo) and
//  waits for its READY. Its stdout carries one JSON line per notification.
it_proc_t *bt_listener_start(const rmq_t *rmq, const char *exchange, const char *topic, int count,
                             int timeout_s, bool durable);

//  Reads count JSON lines from proc's stdout (each within timeout_ms of
//  the previous). Returns a JSON array of them (fewer on timeout).
json_t *bt_read_json_lines(it_proc_t *proc, int count, int timeout_ms);

//  Writes an hvn-pub input line for node number i (of host) with a given
//  vcpus_used into buf. Returns buf.
char *bt_node_line(char *buf, size_t size, int i, const char *host, int vcpus_used);

//  Returns the uuid of node number i (static storage, one per call site).
const char *bt_uuid(int i, char out[37]);

//  Starts hvn-pub for host on env's broker, its stdin piped.
it_proc_t *bt_pub_start(it_env_t *env, const char *host);

//  Writes creates of nodes from..to-1 of host to hvn-pub, pace_us apart
//  (load shaping, 0 = at once).
void bt_pub_nodes(it_proc_t *pub, const char *host, int from, int to, int pace_us);

//  Closes hvn-pub's input and asserts it exits 0 (everything sent).
void bt_pub_end(it_proc_t **pub_p);

//  Collects the oslo listener's JSON lines until count distinct message ids
//  were seen or timeout_ms passed. Returns the number of lines read (the
//  distinct ids in *distinct; message ids not in expect, when expect is not
//  NULL, are counted in *strangers).
size_t bt_collect(it_proc_t *listener, size_t count, int timeout_ms, size_t *distinct,
                  json_t *expect, size_t *strangers);

#endif
