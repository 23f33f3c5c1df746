/*  support_proc.h — the real programs as child processes, free ports,
    temporary directories and a broker's STATS: what the integration
    suites and the chaos program share. Criterion-free: a failure is a
    return value, never an assertion (support.h adds the suites' asserting
    layer on top).

    Children die with the test process (PR_SET_PDEATHSIG), and it_stop()
    reaps them, so no process outlives a test.
*/
#ifndef HVN_IT_SUPPORT_PROC_H_INCLUDED
#define HVN_IT_SUPPORT_PROC_H_INCLUDED

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

//  Returns the path of a built program ("hvn-broker") in a static buffer.
const char *it_bin(const char *name);

//  Starts a program. argv[0] is a program name (resolved with it_bin) or
//  a path (with a '/'), and the list ends with NULL. Its stdin is a pipe
//  (it_write) or /dev/null; its stdout and stderr are captured (it_read_*)
//  or this process's. Returns the process, or NULL.
it_proc_t *it_spawn(const char *const argv[], bool pipe_stdin, bool capture_stdout,
                    bool capture_stderr);

//  Starts a program as it_spawn does, with stdin and stdout on /dev/null
//  and stderr appended to the file log_path (created when missing).
//  Returns the process, or NULL with errno set.
it_proc_t *it_spawn_logged(const char *const argv[], const char *log_path);

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

//  Waits for the process to exit, at most timeout_ms (0: only looks).
//  Returns its exit status (0..255), 128+signal if killed by a signal, or
//  -1 on timeout.
int it_wait(it_proc_t *proc, int timeout_ms);

//  Sends sig (and SIGCONT, so that a stopped process acts on it) and
//  waits at most timeout_ms; then SIGKILL. Returns as it_wait does (before
//  the SIGKILL), frees the process and sets *proc_p to NULL. NULL-safe.
int it_stop(it_proc_t **proc_p, int sig, int timeout_ms);

//  Closes the process's stdin (end of input), waits at most timeout_ms for
//  it to exit and frees it (SIGKILL if it has not). Returns its exit status
//  as it_wait does.
int it_finish(it_proc_t **proc_p, int timeout_ms);

//  Sends SIGTERM and waits at most timeout_ms for the process to exit, its
//  exit status (as it_wait's) in *code. Returns all it wrote to stderr (a
//  heap string the caller frees); the process is not freed.
char *it_term_stderr(it_proc_t *proc, int timeout_ms, int *code);

//  Makes a new directory /tmp/<prefix>-XXXXXX and writes its path into
//  dir. Returns 0, or -1 with errno set.
int it_tempdir(char *dir, size_t size, const char *prefix);

//  Removes dir and everything under it. Returns nothing.
void it_tempdir_remove(const char *dir);

//  Returns a TCP port on 127.0.0.1 that was free a moment ago, or -1.
int it_port_free(void);

//  Asks the broker's service socket for STATS. Returns the value of the
//  integer counter `key`, or -1 when there is no answer in timeout_ms or
//  no such key (or it_stat_curve's certificates cannot be read).
int64_t it_broker_stat(const char *service, const char *key, int timeout_ms);

//  Makes it_broker_stat (and every wait on STATS) connect as a CURVE
//  client with this secret certificate to a broker whose public
//  certificate is server_cert; NULL, NULL: plain text again.
void it_stat_curve(const char *secret_cert, const char *server_cert);

//  Waits until the broker's STATS counts at least n in key. Returns 0, or
//  -1 after timeout_ms.
int it_wait_stat(const char *service, const char *key, int64_t n, int timeout_ms);

//  Waits until the broker counts at least n backend subscriptions.
//  Returns 0, or -1 after timeout_ms.
int it_wait_subscriptions(const char *service, int64_t n, int timeout_ms);

#endif
