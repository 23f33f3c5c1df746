/*  test_keygen.c — hvn-keygen's files, modes, metadata and exit codes, and
    that its certificates and pyzmq's (zmq.auth) are the same format.
*/
#include "support.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static it_env_t env;

static void s_setup(void)
{
    it_env_init(&env);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(keygen, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  Returns hvn-keygen's exit status for argv (NULL-ended, after the
//  program name); *err (when not NULL) gets its stderr, a heap string.
static int s_keygen(const char *const args[], char **err)
{
    const char *argv[IT_MAX_ARGS] = {"hvn-keygen"};
    size_t n = 1;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    it_proc_t *proc = it_spawn(argv, false, true, true);
    cr_assert_not_null(proc);
    int status = it_wait(proc, 10000);
    if (err)
        *err = it_read_stderr(proc, 1000);
    it_stop(&proc, SIGKILL, 1000);
    return status;
}

//  Returns the permission bits of path (asserted to exist).
static mode_t s_mode(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s missing", path);
    return st.st_mode & 0777;
}

Test(keygen, publisher_pair_with_host)
{
    char path[400], secret[420];
    snprintf(path, sizeof(path), "%s/cmp-017.cert", env.dir);
    snprintf(secret, sizeof(secret), "%s_secret", path);
    const char *args[] = {"publisher", "--host", "cmp-017", "--out", path, NULL};
    cr_assert_eq(s_keygen(args, NULL), 0);
    cr_expect_eq(s_mode(secret), 0600);
    cr_expect_eq(s_mode(path), 0644);

    zcert_t *pub = zcert_load(path); //  Tries path_secret first: load the public file alone
    cr_assert_not_null(pub);
    cr_expect_str_eq(zcert_meta(pub, "host"), "cmp-017");
    cr_expect_str_eq(zcert_meta(pub, "role"), "publisher");
    //  The public file holds no secret
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file);
    char text[4096];
    size_t len = fread(text, 1, sizeof(text) - 1, file);
    text[len] = '\0';
    fclose(file);
    cr_expect_null(strstr(text, "secret-key"), "public file has a secret: %s", text);
    zcert_t *both = zcert_load(secret);
    cr_assert_not_null(both);
    cr_expect_str_eq(zcert_public_txt(both), zcert_public_txt(pub));
    cr_expect_str_neq(zcert_secret_txt(both), "0000000000000000000000000000000000000000");
    zcert_destroy(&pub);
    zcert_destroy(&both);

    //  No overwrite without --force, and the files are untouched
    char *err = NULL;
    cr_expect_eq(s_keygen(args, &err), 1);
    cr_expect(strstr(err, "exists") != NULL, "stderr: %s", err);
    free(err);
    const char *forced[] = {"publisher", "--host", "cmp-018", "--out", path, "--force", NULL};
    cr_expect_eq(s_keygen(forced, NULL), 0);
    pub = zcert_load(path);
    cr_assert_not_null(pub);
    cr_expect_str_eq(zcert_meta(pub, "host"), "cmp-018");
    cr_expect_eq(s_mode(secret), 0600);
    zcert_destroy(&pub);
}

Test(keygen, bad_usage_exits_2)
{
    const char *no_host[] = {"publisher", NULL};
    const char *host_on_sub[] = {"subscriber", "--host", "x", NULL};
    const char *bad_host[] = {"publisher", "--host", "a@b", NULL};
    const char *bad_role[] = {"admin", NULL};
    const char *nothing[] = {NULL};
    const char *unknown[] = {"broker", "--frobnicate", NULL};
    const char *const *cases[] = {no_host, host_on_sub, bad_host, bad_role, nothing, unknown};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL;
        cr_expect_eq(s_keygen(cases[i], &err), 2, "case %zu", i);
        cr_expect(strlen(err) > 0 && strchr(err, '\n') == strrchr(err, '\n'),
                  "case %zu: one line expected: %s", i, err);
        free(err);
    }
    const char *help[] = {"--help", NULL};
    cr_expect_eq(s_keygen(help, NULL), 0);
}

Test(keygen, unwritable_place_exits_1)
{
    const char *args[] = {"broker", "--out", "/nonexistent/dir/broker.cert", NULL};
    cr_expect_eq(s_keygen(args, NULL), 1);
}

//  Returns 1 when Debian's Python has pyzmq (python3-zmq), else 0.
static int s_have_pyzmq(void)
{
    return system("/usr/bin/python3 -c 'import zmq.auth' >/dev/null 2>&1") == 0;
}

Test(keygen, same_format_as_pyzmq)
{
    if (!s_have_pyzmq())
        cr_skip_test("no /usr/bin/python3 with zmq.auth (python3-zmq)");
    //  pyzmq writes a pair, czmq (the broker) reads it
    char command[1200];
    snprintf(command, sizeof(command),
             "/usr/bin/python3 -c 'import sys, zmq.auth; "
             "pub, sec = zmq.auth.create_certificates(sys.argv[1], \"py\", "
             "metadata={\"host\": \"cmp-042\"}); "
             "print(zmq.auth.load_certificate(sec)[0].decode())' %s > %s/py.out",
             env.dir, env.dir);
    cr_assert_eq(system(command), 0, "pyzmq could not make a certificate");
    char path[400], out[420], key[64] = "";
    snprintf(out, sizeof(out), "%s/py.out", env.dir);
    FILE *file = fopen(out, "r");
    cr_assert_not_null(file);
    cr_assert_not_null(fgets(key, sizeof(key), file));
    fclose(file);
    key[strcspn(key, "\n")] = '\0';
    snprintf(path, sizeof(path), "%s/py.key_secret", env.dir);
    zcert_t *cert = zcert_load(path);
    cr_assert_not_null(cert, "czmq cannot load pyzmq's %s", path);
    cr_expect_str_eq(zcert_public_txt(cert), key);
    cr_expect_str_eq(zcert_meta(cert, "host"), "cmp-042");
    zcert_destroy(&cert);

    //  hvn-keygen writes, pyzmq reads both files
    snprintf(path, sizeof(path), "%s/sub.cert", env.dir);
    const char *args[] = {"subscriber", "--out", path, NULL};
    cr_assert_eq(s_keygen(args, NULL), 0);
    cert = zcert_load(path);
    cr_assert_not_null(cert);
    snprintf(command, sizeof(command),
             "/usr/bin/python3 -c 'import sys, zmq.auth; "
             "p, s = zmq.auth.load_certificate(sys.argv[1] + \"_secret\"); "
             "q, _ = zmq.auth.load_certificate(sys.argv[1]); "
             "assert s is not None and p == q == sys.argv[2].encode()' %s '%s'",
             path, zcert_public_txt(cert));
    cr_expect_eq(system(command), 0, "pyzmq cannot read hvn-keygen's %s", path);
    zcert_destroy(&cert);
}
