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
#include "hvn_schema.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PROG "hvn-keygen"

//  Returns nothing; prints the usage text on `out`.
static void s_usage(FILE *out)
{
    fprintf(out, "Usage: " S_PROG " broker|publisher|subscriber [OPTION]...\n"
                 "Create a CURVE certificate pair for hvnotify: PATH (public key and metadata)\n"
                 "and PATH_secret (both keys, mode 0600), in czmq's zcert format.\n"
                 "\n"
                 "  --host HOST   publisher only, required: the one host this key may publish\n"
                 "                as (written into the certificate's metadata)\n"
                 "  --out PATH    public certificate file (default: broker.cert, HOST.cert or\n"
                 "                subscriber.cert in the current directory)\n"
                 "  --force       overwrite existing files\n"
                 "  --help        show this help and exit\n"
                 "\n"
                 "Give the broker its own PATH_secret (hvn-broker --curve-secret) and every\n"
                 "client the broker's public PATH (--server-key). Copy each publisher's and\n"
                 "subscriber's public PATH into the broker's --publishers-dir or\n"
                 "--subscribers-dir; the _secret file stays on the host it was made for.\n"
                 "\n"
                 "Exit status: 0 on success, 1 when a file exists (without --force) or cannot\n"
                 "be written, 2 on bad usage.\n");
}

//  Returns nothing; prints "hvn-keygen: <message> (try --help)" and exits 2.
static void s_bad_usage(const char *message, const char *value)
{
    fprintf(stderr, S_PROG ": %s '%s' (try --help)\n", message, value);
    exit(2);
}

//  Returns 1 when host can be a publisher's host: the longest topic,
//  "compute_node.create@<host>", stays within 255 bytes; no '@', no control
//  bytes, UTF-8.
static int s_host_valid(const char *host)
{
    size_t len = strlen(host);
    if (len == 0 || len > HVN_TOPIC_MAX - strlen(HVN_EVENT_CREATE_NAME "@") || strchr(host, '@') ||
        strchr(host, '/') || !hvn_utf8_valid(host, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)host[i] < 0x20 || host[i] == 0x7F)
            return 0;
    return 1;
}

//  Returns the process exit status.
int main(int argc, char **argv)
{
    enum { O_HOST = 1, O_OUT, O_FORCE, O_HELP };
    static const struct option options[] = {
        {"host", required_argument, NULL, O_HOST},
        {"out", required_argument, NULL, O_OUT},
        {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *host = NULL, *out = NULL;
    int force = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_HOST:
            if (!s_host_valid(optarg))
                s_bad_usage("--host: expected 1 to 235 bytes of UTF-8 without '@', '/' or "
                            "control bytes, got",
                            optarg);
            host = optarg;
            break;
        case O_OUT:
            if (!*optarg)
                s_bad_usage("--out: expected a file path, got", optarg);
            out = optarg;
            break;
        case O_FORCE:
            force = 1;
            break;
        case 'h':
        case O_HELP:
            s_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, S_PROG ": %s: missing value (try --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, S_PROG ": unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, S_PROG ": missing role: broker, publisher or subscriber (try --help)\n");
        return 2;
    }
    if (optind + 1 < argc)
        s_bad_usage("unexpected argument", argv[optind + 1]);
    const char *role = argv[optind];
    if (!streq(role, "broker") && !streq(role, "publisher") && !streq(role, "subscriber"))
        s_bad_usage("role must be broker, publisher or subscriber, got", role);
    if (streq(role, "publisher") && !host) {
        fprintf(stderr, S_PROG ": a publisher certificate needs --host (try --help)\n");
        return 2;
    }
    if (!streq(role, "publisher") && host) {
        fprintf(stderr, S_PROG ": --host is for publisher certificates only (try --help)\n");
        return 2;
    }

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
