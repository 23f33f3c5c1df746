/*  hvn_pub_opt.h — the option rows the publisher programs share.

    hvn-pub and hvn-agent both publish to brokers' frontends as one host,
    with CURVE when asked: these rows of their option tables (hvn_opt.h)
    say so once, each program giving its own help where the two differ.

        const char *connect[HVN_PUB_CONNECT_MAX + 1] = {NULL};
        const hvn_opt_t options[] = {
            hvn_pub_opt_connect(connect, "broker frontend; repeatable"),
            hvn_pub_opt_curve_secret(&args->curve_secret),
            ...

    Header only, for the programs (they link hvncommon); the publisher
    library itself never includes it.
*/
#ifndef HVN_PUB_OPT_H_INCLUDED
#define HVN_PUB_OPT_H_INCLUDED

#include "hvn_opt.h"
#include "hvn_publisher.h"

#define HVN_PUB_CONNECT_MAX 16 //  Most --connect

//  Returns the --connect row: broker frontends, repeatable, into dest
//  (HVN_PUB_CONNECT_MAX + 1 entries, NULL-ended); help says what the
//  program does with them.
static inline hvn_opt_t hvn_pub_opt_connect(const char **dest, const char *help)
{
    return (hvn_opt_t){.name = "connect", .type = HVN_OPT_LIST, .dest = dest, .metavar = "EP",
                       .help = help, .max = HVN_PUB_CONNECT_MAX, .check = hvn_opt_check_endpoint};
}

//  Returns the --host row: the host name in topics, into *dest; help and
//  default_text (NULL: none shown) as the program says them.
static inline hvn_opt_t hvn_pub_opt_host(const char **dest, const char *help,
                                         const char *default_text)
{
    return (hvn_opt_t){.name = "host", .type = HVN_OPT_STRING, .dest = dest, .metavar = "HOST",
                       .help = help, .check = hvn_names_host_check, .default_text = default_text};
}

//  Returns the --curve-secret row: the host's secret certificate, into
//  *dest; it goes with --server-key.
static inline hvn_opt_t hvn_pub_opt_curve_secret(const char **dest)
{
    return (hvn_opt_t){.name = "curve-secret", .type = HVN_OPT_PATH, .dest = dest,
                       .metavar = "CERT",
                       .help = "this host's secret certificate (hvn-keygen publisher\n"
                               "--host HOST): connect with CURVE; needs --server-key"};
}

//  Returns the --server-key row: the broker's public certificate, into
//  *dest.
static inline hvn_opt_t hvn_pub_opt_server_key(const char **dest)
{
    return (hvn_opt_t){.name = "server-key", .type = HVN_OPT_PATH, .dest = dest,
                       .metavar = "CERT", .help = "the broker's public certificate"};
}

#endif
