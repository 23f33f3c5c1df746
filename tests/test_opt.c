/*  test_opt.c — the option table: values by type, the one error line,
    --help from the table. hvn_opt_parse() exits on --help and bad usage,
    so each case runs it in a child process and reads what it printed.
*/
#include "hvn_opt.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  What the table under test fills
static bool s_flag;
static const char *s_endpoint;
static long s_count;
static size_t s_bytes;
static double s_seconds;
static const char *s_format;
static const char *s_topics[4];
static const char *s_name;

//  Returns NULL when text has no ':', else what was expected.
static const char *s_no_colon(const char *text)
{
    return strchr(text, ':') ? "a name without ':'" : NULL;
}

static const hvn_opt_t s_options[] = {
    {.name = "flag", .type = HVN_OPT_FLAG, .dest = &s_flag, .help = "a flag"},
    {.name = "connect", .type = HVN_OPT_ENDPOINT, .dest = &s_endpoint, .metavar = "EP",
     .help = "where to connect"},
    {.name = "count", .type = HVN_OPT_INT, .dest = &s_count, .metavar = "N", .help = "how many",
     .min = 1, .max = 100},
    {.name = "ring", .type = HVN_OPT_SIZE, .dest = &s_bytes, .metavar = "BYTES",
     .help = "how much", .min = 1024, .max = 1L << 32},
    {.name = "timeout", .type = HVN_OPT_DOUBLE, .dest = &s_seconds, .metavar = "S",
     .help = "how long", .dmin = 0.001, .dmax = 60},
    {.name = "format", .type = HVN_OPT_CHOICE, .dest = &s_format, .choices = "json|table",
     .help = "how to print"},
    {.name = "topic", .type = HVN_OPT_LIST, .dest = s_topics, .metavar = "PREFIX",
     .help = "what to follow", .max = 3},
    {.name = "service", .type = HVN_OPT_STRING, .dest = &s_name, .metavar = "NAME",
     .help = "a name", .check = s_no_colon},
    {.name = NULL},
};

static const hvn_opt_program_t s_program = {
    .name = "prog", .summary = "Test the option table.", .options = s_options};

//  Returns the exit status of hvn_opt_parse() on argv in a child (0 when
//  it returned), with what it printed on stdout and stderr in out and err
//  (each up to size bytes, NUL-ended).
static int s_parse(const char *const argv[], char *out, char *err, size_t size)
{
    int out_pipe[2], err_pipe[2];
    cr_assert_eq(pipe(out_pipe), 0);
    cr_assert_eq(pipe(err_pipe), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        int argc = 0;
        while (argv[argc])
            argc++;
        hvn_opt_parse(&s_program, argc, (char **)argv);
        fflush(stdout);
        _exit(0);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    ssize_t n = read(out_pipe[0], out, size - 1);
    out[n > 0 ? n : 0] = '\0';
    n = read(err_pipe[0], err, size - 1);
    err[n > 0 ? n : 0] = '\0';
    //  A sanitizer's own lines at the child's exit ("==pid==...") are not
    //  the program's
    char *sanitizer = strncmp(err, "==", 2) == 0 ? err : strstr(err, "\n==");
    if (sanitizer)
        sanitizer[sanitizer == err ? 0 : 1] = '\0';
    close(out_pipe[0]);
    close(err_pipe[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TestSuite(opt, .timeout = 10);

Test(opt, values_land_in_their_destinations)
{
    char *argv[] = {"prog",     "--flag",   "--connect", "tcp://127.0.0.1:5561", "--count",
                    "42",       "--ring",   "64M",       "--timeout",            "0.5",
                    "--format", "table",    "--topic",   "a",                    "--topic",
                    "b",        "--service", "nova",     NULL};
    int first = hvn_opt_parse(&s_program, 18, argv);
    cr_assert_eq(first, 18);
    cr_expect(s_flag);
    cr_expect_str_eq(s_endpoint, "tcp://127.0.0.1:5561");
    cr_expect_eq(s_count, 42);
    cr_expect_eq(s_bytes, 64u << 20);
    cr_expect_float_eq(s_seconds, 0.5, 1e-9);
    cr_expect_str_eq(s_format, "table");
    cr_expect_str_eq(s_topics[0], "a");
    cr_expect_str_eq(s_topics[1], "b");
    cr_expect_null(s_topics[2]);
    cr_expect_str_eq(s_name, "nova");
    cr_expect(hvn_opt_given(&s_program, "count"));
}

Test(opt, every_bad_value_is_one_line_naming_the_option_and_exit_2)
{
    struct {
        const char *argv[4];
        const char *says;
    } cases[] = {
        {{"prog", "--count", "0", NULL}, "--count: expected a whole number from 1 to 100, got '0'"},
        {{"prog", "--count", "7x", NULL}, "--count"},
        {{"prog", "--ring", "1", NULL}, "--ring: expected a byte count"},
        {{"prog", "--ring", "99G", NULL}, "--ring"},
        {{"prog", "--timeout", "0.0004", NULL}, "--timeout: expected a number from 0.001 to 60"},
        {{"prog", "--timeout", "nan", NULL}, "--timeout"},
        {{"prog", "--format", "xml", NULL}, "--format: expected one of json|table, got 'xml'"},
        {{"prog", "--connect", "localhost:1", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://a:1,tcp://b:1", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://256.1.1.1:1", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://127.0.0.1:65536", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://127.0.0.1", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://[::1:5561", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--connect", "tcp://10.0.0.300;127.0.0.1:1", NULL}, "--connect: expected"},
        {{"prog", "--connect", "tcp://host name:1", NULL}, "--connect: expected one endpoint"},
        {{"prog", "--service", "a:b", NULL}, "--service: expected a name without ':'"},
        {{"prog", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"prog", "--count", NULL}, "--count: missing value"},
        {{"prog", "stray", NULL}, "unexpected argument 'stray'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[4096], err[4096];
        int code = s_parse(cases[i].argv, out, err, sizeof(out));
        cr_expect_eq(code, 2, "case %zu: exit %d", i, code);
        cr_expect(strncmp(err, "prog: ", 6) == 0, "case %zu: %s", i, err);
        cr_expect(strstr(err, cases[i].says) != NULL, "case %zu: %s", i, err);
        cr_expect(strstr(err, "(try --help)\n") != NULL, "case %zu: %s", i, err);
        cr_expect_eq(strchr(err, '\n'), strrchr(err, '\n'), "case %zu: one line: %s", i, err);
    }
}

Test(opt, every_endpoint_libzmq_takes_passes_the_endpoint_check)
{
    const char *good[] = {"tcp://127.0.0.1:5561",
                          "tcp://*:5561",
                          "tcp://127.0.0.1:*",
                          "tcp://[::1]:5561",
                          "tcp://::1:5561",
                          "tcp://broker-1.example:5561",
                          "tcp://eth0:5561",
                          "tcp://127.0.0.2:0;127.0.0.1:5561",
                          "ipc:///tmp/hvn.sock",
                          "inproc://broker",
                          NULL};
    for (size_t i = 0; good[i]; i++)
        cr_expect_null(hvn_opt_check_endpoint(good[i]), "%s refused", good[i]);
    const char *bad[] = {"tcp://256.1.1.1:1",
                         "tcp://1.2.3:5561",
                         "tcp://127.0.0.1:",
                         "tcp://[fe80::zz]:1",
                         "tcp://127.0.0.1:-1",
                         "ipc:///tmp/a-path-longer-than-a-unix-socket-address-holds-which-is-"
                         "one-hundred-and-seven-bytes-at-most-on-linux-and-some",
                         NULL};
    for (size_t i = 0; bad[i]; i++)
        cr_expect_not_null(hvn_opt_check_endpoint(bad[i]), "%s taken", bad[i]);
}

Test(opt, a_list_takes_no_more_than_its_bound)
{
    const char *argv[] = {"prog", "--topic", "a", "--topic", "b", "--topic", "c",
                          "--topic", "d", NULL};
    char out[4096], err[4096];
    cr_expect_eq(s_parse(argv, out, err, sizeof(out)), 2);
    cr_expect(strstr(err, "--topic: at most 3") != NULL, "%s", err);
}

Test(opt, help_lists_every_option_with_its_range_and_default)
{
    s_count = 7;
    s_format = "json";
    const char *argv[] = {"prog", "--help", NULL};
    char out[8192], err[4096];
    cr_assert_eq(s_parse(argv, out, err, sizeof(out)), 0);
    for (const hvn_opt_t *option = s_options; option->name; option++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", option->name);
        cr_expect(strstr(out, flag) != NULL, "--help lacks %s", flag);
    }
    cr_expect(strstr(out, "(1 to 100; default 7)") != NULL, "%s", out);
    cr_expect(strstr(out, "(default json)") != NULL, "%s", out);
    cr_expect(strstr(out, "--version") != NULL);
    cr_expect_str_empty(err);
}

Test(opt, version_prints_the_program_and_exits_0)
{
    const char *argv[] = {"prog", "--version", NULL};
    char out[4096], err[4096];
    cr_assert_eq(s_parse(argv, out, err, sizeof(out)), 0);
    cr_expect(strncmp(out, "prog (hvnotify) ", 16) == 0, "%s", out);
}
