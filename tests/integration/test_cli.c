/*  test_cli.c — every program: --help tells, bad usage exits 2 with one line. */
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
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
        {{"hvn-pub", "--connect", "tcp://127.0.0.1:1", "--host", "h", "--heartbeat-ms", "x", NULL},
         "heartbeat-ms"},
        {{"hvn-sub", "--count", "-1", NULL}, "count"},
        {{"hvn-sub", "--timeout", "soon", NULL}, "timeout"},
        {{"hvn-sub", "--format", "xml", NULL}, "format"},
        {{"hvn-sub", "stray", NULL}, "stray"},
        {{"hvn-sub", "--timeout", "0.0004", NULL}, "timeout"},
        {{"hvn-pub", "--connect", "tcp://127.0.0.1:1", "--host", "h", "--service", "a:b", NULL},
         "service"},
        {{"hvn-agent", "--connect", "tcp://127.0.0.1:1", "--interval", "0", NULL}, "interval"},
        {{"hvn-keygen", "admin", NULL}, "admin"},
        //  libzmq takes these, then retries them forever without a word
        {{"hvn-sub", "--connect", "tcp://256.1.1.1:1", NULL}, "--connect"},
        {{"hvn-sub", "--service", "tcp://127.0.0.1:99999", NULL}, "--service"},
        {{"hvn-pub", "--connect", "tcp://256.1.1.1:1", "--host", "h", NULL}, "--connect"},
        {{"hvn-agent", "--connect", "tcp://256.1.1.1:1", NULL}, "--connect"},
        {{"hvn-broker", "--frontend", "tcp://1.2.3.4.5:5561", NULL}, "--frontend"},
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

//  Returns the text of a file (caller frees), or NULL.
static char *s_slurp(const char *path)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return NULL;
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, file);
    text[n] = '\0';
    fclose(file);
    return text;
}

Test(cli, every_option_of_help_is_in_the_manual_page)
{
    const char *programs[] = {"hvn-broker", "hvn-pub", "hvn-sub", "hvn-agent", "hvn-keygen"};
    for (size_t p = 0; p < sizeof(programs) / sizeof(programs[0]); p++) {
        const char *argv[] = {programs[p], "--help", NULL};
        char *err = NULL, *out = NULL;
        cr_assert_eq(s_run(argv, &err, &out), 0, "%s --help", programs[p]);
        char path[4096];
        snprintf(path, sizeof(path), "%s/../man/%s.1", HVN_BIN_DIR, programs[p]);
        char *page = s_slurp(path);
        cr_assert_not_null(page, "no manual page %s", path);
        size_t options = 0;
        //  Each option line of --help starts "  --name"; help2man writes it "\-\-name"
        for (char *line = strstr(out, "\n  --"); line; line = strstr(line + 1, "\n  --")) {
            char name[64], roff[160];
            if (sscanf(line + 5, "%63[a-z0-9-]", name) != 1)
                continue;
            char *w = roff;
            w += sprintf(w, "\\-\\-");
            for (const char *c = name; *c; c++)
                w += *c == '-' ? sprintf(w, "\\-") : sprintf(w, "%c", *c);
            cr_expect(strstr(page, roff) != NULL, "%s.1 lacks --%s", programs[p], name);
            options++;
        }
        cr_expect_gt(options, 2, "%s: options read from --help", programs[p]);
        free(page);
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
