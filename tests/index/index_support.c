/*  index_support.c — what the hvn-index end-to-end suites share. */
#include "index_support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>

//  Returns the program's stdout as JSON, or NULL (see the header).
json_t *ix_stdout_json(const char *const argv[], int timeout_ms)
{
    it_proc_t *proc = it_spawn(argv, false, true, true);
    cr_assert_not_null(proc, "%s did not start", argv[0]);
    char *out = it_read_stdout(proc, timeout_ms);
    it_wait(proc, 5000);
    it_stop(&proc, SIGKILL, 1000);
    json_error_t error;
    json_t *json = out ? json_loads(out, 0, &error) : NULL;
    free(out);
    return json;
}
