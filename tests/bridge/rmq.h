/*  rmq.h — the test run's own RabbitMQ (rabbit.sh), shared by the tests of
    one executable: started once before them (RMQ_SUITE in the test file
    sets the hooks up), stopped after.
*/
#ifndef HVN_RMQ_H_INCLUDED
#define HVN_RMQ_H_INCLUDED

#include <stdbool.h>

//  A RabbitMQ node of the test run
typedef struct {
    char dir[256]; //  Its temporary directory (data, logs, config)
    int port;      //  AMQP port on 127.0.0.1
    char url[128]; //  rabbit://guest:guest@127.0.0.1:PORT/
} rmq_t;

//  Starts a node in a new temp dir on free ports and waits until it
//  serves. Returns 0, or -1 (its log on stderr).
int rmq_start(rmq_t *rmq);

//  Starts the node of rmq again (after rmq_halt), same dir and ports.
//  Returns 0 or -1.
int rmq_resume(rmq_t *rmq);

//  Stops the node (and its epmd), keeping its dir. Returns 0 or -1.
int rmq_halt(rmq_t *rmq);

//  Stops the node and removes its dir. NULL-safe on a zeroed rmq.
void rmq_stop(rmq_t *rmq);

//  Runs rabbitmqctl with args (a shell-quoted string) on the node; its
//  output goes to out (a heap string the caller frees) when out is not
//  NULL. Returns its exit status.
int rmq_ctl(const rmq_t *rmq, const char *args, char **out);

//  Publishes the node of this executable's run in the environment (for
//  the tests' processes) / reads it back. rmq_get returns false when no
//  node runs.
void rmq_export(const rmq_t *rmq);
bool rmq_get(rmq_t *rmq);

//  The hooks a suite writes to share one node among its tests:
//      static rmq_t node;
//      ReportHook(PRE_ALL)(struct criterion_test_set *set) { rmq_start_shared(&node); }
//      ReportHook(POST_ALL)(struct criterion_global_stats *stats) { rmq_stop(&node); }
//  Starts the node and exports it (rmq_get finds it). Returns 0 or -1.
int rmq_start_shared(rmq_t *rmq);

#endif
