/*  test_cli.c — every program: --help tells, bad usage exits 2 with one line. */
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

TestSuite(cli, .timeout = 30);

//  Runs a program to completion with stdout and stderr captured. Returns
//  its exit status; *err receives its stderr (caller frees).
static int s_run(const char *const argv[], char **err, char **out)
{
    it_proc_t *proc = it_spawn(argv, false, true, true);
    cr_assert_not_null(proc);
    int code = it_wait(proc, 10000);
    *err = it_read_stderr(proc, 1000);
    if (out)
        *out = it_read_stdout(proc, 1000);
    it_stop(&proc, SIGKILL, 1000);
    return code;
}

typedef struct {
    const char *argv[8]; //  Program and arguments, NULL-ended
    const char *names;   //  What the error line must mention
} s_bad_case_t;

Test(cli, bad_usage_exits_2_naming_the_problem)
{
    static s_bad_case_t cases[] = {
        {{"hvn-broker", "--bogus", NULL}, "bogus"},
        {{"hvn-broker", "--max-msg-size", "lots", NULL}, "max-msg-size"},
        {{"hvn-broker", "--max-msg-size", "0", NULL}, "max-msg-size"},
        {{"hvn-broker", "--heartbeat-ms", "-5", NULL}, "heartbeat-ms"},
        {{"hvn-pub", "--host", "cmp-1", NULL}, "connect"},
        {{"hvn-pub", "--connect", "tcp://127.0.0.1:1", NULL}, "host"},
        {{"hvn-pub", "--connect", "tcp://127.0.0.1:1", "--host", "a@b", NULL}, "host"},
        {{"hvn-pub", "--connect", "tcp://127.0.0.1:1", "--host", "h", "--heartbeat-ms", "x",
          NULL},
         "heartbeat-ms"},
        {{"hvn-sub", "--count", "-1", NULL}, "count"},
        {{"hvn-sub", "--timeout", "soon", NULL}, "timeout"},
        {{"hvn-sub", "--format", "xml", NULL}, "format"},
        {{"hvn-sub", "stray", NULL}, "stray"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s_bad_case_t *bad = &cases[i];
        char *err = NULL;
        int code = s_run(bad->argv, &err, NULL);
        cr_expect_eq(code, 2, "%s %s: exit %d", bad->argv[0], bad->argv[1], code);
        cr_expect(strstr(err, bad->names) != NULL, "%s: stderr does not name '%s': %s",
                  bad->argv[0], bad->names, err);
        free(err);
    }
}

Test(cli, help_exits_0_and_lists_every_option)
{
    struct {
        const char *program;
        const char *options[8];
    } programs[] = {
        {"hvn-broker",
         {"--frontend", "--backend", "--service", "--name", "--max-msg-size", "--heartbeat-ms",
          NULL}},
        {"hvn-pub", {"--connect", "--host", "--service", "--state-dir", NULL}},
        {"hvn-sub", {"--connect", "--topic", "--count", "--timeout", "--format", NULL}},
    };
    for (size_t p = 0; p < sizeof(programs) / sizeof(programs[0]); p++) {
        const char *argv[] = {programs[p].program, "--help", NULL};
        char *err = NULL, *out = NULL;
        cr_expect_eq(s_run(argv, &err, &out), 0, "%s --help", programs[p].program);
        for (size_t o = 0; programs[p].options[o]; o++)
            cr_expect(strstr(out, programs[p].options[o]) != NULL, "%s --help lacks %s",
                      programs[p].program, programs[p].options[o]);
        free(err);
        free(out);
    }
}

Test(cli, broker_bind_failure_is_one_clear_line)
{
    const char *argv[] = {"hvn-broker", "--frontend", "tcp://256.1.1.1:1", NULL};
    char *err = NULL;
    int code = s_run(argv, &err, NULL);
    cr_expect_neq(code, 0);
    cr_expect(strstr(err, "256.1.1.1") != NULL, "stderr does not name the endpoint: %s", err);
    free(err);
}
