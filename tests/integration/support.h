/*  support.h — start and stop the real programs for integration tests.

    Every test gets its own temporary directory; endpoints are ipc:// sockets
    inside it (or tcp on a free loopback port), so suites run in parallel
    without colliding. Children die with the test process (PR_SET_PDEATHSIG),
    and it_stop() reaps them, so no process outlives a test.
*/
#ifndef HVN_IT_SUPPORT_H_INCLUDED
#define HVN_IT_SUPPORT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IT_MAX_ARGS 32

typedef struct {
    pid_t pid;       //  Child process id, 0 once reaped
    int stdin_fd;    //  Write end of its stdin, -1 if not piped
    int stdout_fd;   //  Read end of its stdout, -1 if not captured
    int stderr_fd;   //  Read end of its stderr, -1 if not captured
    char buf[65536]; //  Unread stdout bytes
    size_t len;      //  How many
    int status;      //  waitpid status once reaped
} it_proc_t;

typedef struct {
    char dir[256];      //  Temporary directory of this test
    char frontend[300]; //  Broker endpoints
    char backend[300];
    char service[300];
    it_proc_t *broker;  //  Running broker, or NULL
} it_env_t;

//  Makes a temp dir and ipc endpoints in it. Asserts on failure.
void it_env_init(it_env_t *env);

//  Stops the broker if running and removes the temp dir.
void it_env_fini(it_env_t *env);

//  Path of a built program ("hvn-broker") in a static buffer.
const char *it_bin(const char *name);

//  Starts a program. argv[0] is a program name (resolved with it_bin) and
//  the list ends with NULL. Returns the process, or NULL.
it_proc_t *it_spawn(const char *const argv[], bool pipe_stdin, bool capture_stdout,
                    bool capture_stderr);

//  Writes all of text to the process's stdin. Returns 0 or -1.
int it_write(it_proc_t *proc, const char *text);

//  Closes the process's stdin (end of input).
void it_close_stdin(it_proc_t *proc);

//  Reads one stdout line (without the newline) into line. Returns its
//  length, or -1 on timeout or end of output.
int it_read_line(it_proc_t *proc, char *line, size_t size, int timeout_ms);

//  Reads everything the process wrote to stderr so far (after it exited,
//  all of it). Returns a heap string the caller frees.
char *it_read_stderr(it_proc_t *proc, int timeout_ms);

//  Reads everything the process writes to stdout until it closes it, at
//  most timeout_ms. Returns a heap string the caller frees.
char *it_read_stdout(it_proc_t *proc, int timeout_ms);

//  Waits for the process to exit, at most timeout_ms. Returns its exit
//  status (0..255), 128+signal if killed by a signal, or -1 on timeout.
int it_wait(it_proc_t *proc, int timeout_ms);

//  Sends sig and waits at most timeout_ms; then SIGKILL. Returns as
//  it_wait does (before the SIGKILL), frees the process. NULL-safe.
int it_stop(it_proc_t **proc_p, int sig, int timeout_ms);

//  Starts hvn-broker on env's endpoints with extra arguments (NULL-ended,
//  may be NULL) and waits until its service socket answers STATS.
it_proc_t *it_broker_start(it_env_t *env, const char *const extra[]);

//  Asks the broker's service socket for STATS. Returns the value of the
//  integer counter `key`, or -1 when there is no answer in timeout_ms or
//  no such key.
int64_t it_broker_stat(const char *service, const char *key, int timeout_ms);

//  Makes it_broker_stat (and so it_broker_start and it_wait_subscriptions)
//  connect as a CURVE client with this secret certificate to a broker whose
//  public certificate is server_cert; NULL, NULL: plain text again.
void it_stat_curve(const char *secret_cert, const char *server_cert);

//  Waits until the broker counts at least n backend subscriptions.
//  Returns 0, or -1 after timeout_ms.
int it_wait_subscriptions(const char *service, int64_t n, int timeout_ms);

//  Writes one hvn-pub input line (with its newline) for a whole node with
//  plausible values. Returns buf.
char *it_node_json(char *buf, size_t size, int64_t id, const char *uuid, const char *host,
                   int64_t vcpus_used, int64_t memory_mb_used);

//  Returns a free TCP port on 127.0.0.1.
int it_free_port(void);

#endif
