/*  hvn_keygen.c — hvn-keygen: CURVE certificates for the broker, its
    publishers and its subscribers.

    Writes a czmq zcert pair, the format pyzmq's zmq.auth also reads and
    writes: PATH holds the public key (and the metadata), PATH_secret the
    public and secret keys, created mode 0600. A publisher certificate
    carries the one host it may publish as in its metadata (`host`); every
    certificate names its role (`role`). Existing files are kept unless
    --force.

    Exit 0 on success (or --help), 1 when the files cannot be written or
    exist, 2 on bad usage.
*/
#include "hvn_codec.h"
#include "hvn_names.h"
#include "hvn_opt.h"
#include "hvn_schema.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PROG "hvn-keygen"

//  Returns NULL when text can be a publisher certificate's host, else what
//  was expected: a host name of the wire that can also name a file.
static const char *s_check_host(const char *text)
{
    if (strchr(text, '/'))
        return "a host name without '/'";
    return hvn_names_host_check(text);
}

//  Returns the process exit status.
int main(int argc, char **argv)
{
    const char *host = NULL, *out = NULL;
    bool force = false;
    const hvn_opt_t options[] = {
        {.name = "host", .type = HVN_OPT_STRING, .dest = &host, .metavar = "HOST",
         .help = "publisher only, required: the one host this key may\n"
                 "publish as (written into the certificate's metadata)",
         .check = s_check_host},
        {.name = "out", .type = HVN_OPT_PATH, .dest = &out, .metavar = "PATH",
         .help = "public certificate file",
         .default_text = "./broker.cert, ./HOST.cert or ./subscriber.cert"},
        {.name = "force", .type = HVN_OPT_FLAG, .dest = &force,
         .help = "overwrite existing files"},
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = S_PROG,
        .operands = "broker|publisher|subscriber",
        .operands_min = 1,
        .operands_max = 1,
        .summary = "Create a CURVE certificate pair for hvnotify: PATH (public key and metadata)\n"
                   "and PATH_secret (both keys, mode 0600), in czmq's zcert format.",
        .epilogue =
            "Give the broker its own PATH_secret (hvn-broker --curve-secret) and every\n"
            "client the broker's public PATH (--server-key). Copy each publisher's and\n"
            "subscriber's public PATH into the broker's --publishers-dir or\n"
            "--subscribers-dir; the _secret file stays on the host it was made for.\n"
            "\n"
            "Exit status: 0 on success, 1 when a file exists (without --force) or cannot\n"
            "be written, 2 on bad usage.",
        .options = options,
    };
    const char *role = argv[hvn_opt_parse(&program, argc, argv)];
    if (!streq(role, "broker") && !streq(role, "publisher") && !streq(role, "subscriber"))
        hvn_opt_fail(&program, "role must be broker, publisher or subscriber, got '%s'", role);
    if (streq(role, "publisher") && !host)
        hvn_opt_fail(&program, "a publisher certificate needs --host");
    if (!streq(role, "publisher") && host)
        hvn_opt_fail(&program, "--host is for publisher certificates only");

    char path[4096], secret[4096 + 8];
    if (out)
        snprintf(path, sizeof(path), "%s", out);
    else
        snprintf(path, sizeof(path), "%s.cert", host ? host : role);
    snprintf(secret, sizeof(secret), "%s_secret", path);
    if (!force) {
        const char *exists = access(path, F_OK) == 0     ? path
                             : access(secret, F_OK) == 0 ? secret
                                                         : NULL;
        if (exists) {
            fprintf(stderr, S_PROG ": '%s' exists; not overwritten (use --force)\n", exists);
            return 1;
        }
    }

    zsys_set_logident(S_PROG);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, S_PROG ": cannot make a key pair\n");
        return 1;
    }
    zcert_set_meta(cert, "role", "%s", role);
    if (host)
        zcert_set_meta(cert, "host", "%s", host);
    //  The secret file must never exist with wider permissions, not even
    //  for a moment: create everything under umask 077, then open the
    //  public file to others.
    unlink(secret); //  An existing file keeps its mode when rewritten
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    zcert_destroy(&cert);
    if (rc != 0 || chmod(secret, 0600) != 0 || chmod(path, 0644) != 0) {
        fprintf(stderr, S_PROG ": cannot write '%s' and '%s': %s\n", path, secret, strerror(errno));
        return 1;
    }
    printf("%s\n%s\n", path, secret);
    return 0;
}
