/*  hvn_opt.c — one command-line option table per program (see hvn_opt.h).

    The table is turned into a getopt_long array at parse time; each value
    is checked by its type, then by the option's own check, and the first
    bad one ends the program with the one form of error. --help walks the
    same table, so what it says is what the parser accepts.
*/
#include "hvn_opt.h"
#include "hvn_cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifndef HVN_VERSION
#define HVN_VERSION "0"
#endif

#define S_OPTIONS_MAX 64 //  Options one program may declare
#define S_HELP_COLUMN 26 //  Where the help text starts in --help

//  Which options of which program were given (one program parses per process)
static const hvn_opt_program_t *s_given_program;
static bool s_given[S_OPTIONS_MAX];

//  ---------------------------------------------------------------------
//  Errors

void hvn_opt_fail(const hvn_opt_program_t *program, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", program->name);
    vfprintf(stderr, format, args);
    fprintf(stderr, " (try --help)\n");
    va_end(args);
    exit(2);
}

//  Never returns: the one error line for a bad value of option.
static void s_bad_value(const hvn_opt_program_t *program, const hvn_opt_t *option,
                        const char *what, const char *value)
{
    hvn_opt_fail(program, "--%s: expected %s, got '%s'", option->name, what, value);
}

//  ---------------------------------------------------------------------
//  Values by type

//  Returns true when text is an endpoint libzmq can take: a transport
//  and an address after "://".
static bool s_endpoint_valid(const char *text)
{
    static const char *transports[] = {"tcp://", "ipc://", "inproc://", "pgm://", "epgm://",
                                       "vmci://", "ws://", "wss://", "tipc://"};
    for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
        size_t len = strlen(transports[i]);
        if (strncmp(text, transports[i], len) == 0)
            return text[len] != '\0';
    }
    return false;
}

//  Longest ipc:// path: a Unix socket address's room, less its NUL
#define S_UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

//  Returns true when text (len bytes) is a TCP port libzmq takes: '*' or
//  a number from 0 to 65535.
static bool s_tcp_port_valid(const char *text, size_t len)
{
    char port[8];
    long number;
    if (len == 1 && text[0] == '*')
        return true;
    if (len == 0 || len >= sizeof(port))
        return false;
    memcpy(port, text, len);
    port[len] = '\0';
    return hvn_cli_parse_long(port, 0, 65535, &number) == 0;
}

//  Returns true when text (len bytes) is a TCP host libzmq can reach or
//  bind: '*', a valid IPv4 address (anything of digits and dots must be
//  one: libzmq takes tcp://256.1.1.1:1 and then retries it forever), an
//  IPv6 address in brackets, or a host or interface name.
static bool s_tcp_host_valid(const char *text, size_t len)
{
    char host[INET6_ADDRSTRLEN + 64];
    if (len == 0 || len >= sizeof(host))
        return false;
    memcpy(host, text, len);
    host[len] = '\0';
    if (strcmp(host, "*") == 0)
        return true;
    unsigned char addr[sizeof(struct in6_addr)];
    if (host[0] == '[') {
        if (len < 3 || host[len - 1] != ']')
            return false;
        host[len - 1] = '\0';
        host[strcspn(host, "%")] = '\0'; //  A zone (fe80::1%eth0) is libzmq's to check
        return inet_pton(AF_INET6, host + 1, addr) == 1;
    }
    if (strspn(host, "0123456789.") == len)
        return inet_pton(AF_INET, host, addr) == 1;
    if (strchr(host, ':'))
        return inet_pton(AF_INET6, host, addr) == 1;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)host[i]) && !strchr("-._", host[i]))
            return false;
    return true;
}

//  Returns true when text is HOST:PORT as s_tcp_host_valid and
//  s_tcp_port_valid take them.
static bool s_tcp_address_valid(const char *text, size_t len)
{
    const char *colon = NULL;
    for (const char *p = text; p < text + len; p++)
        if (*p == ':')
            colon = p;
    return colon && s_tcp_host_valid(text, (size_t)(colon - text)) &&
           s_tcp_port_valid(colon + 1, len - (size_t)(colon + 1 - text));
}

const char *hvn_opt_check_endpoint(const char *value)
{
    //  The libraries join several endpoints with ','
    if (!s_endpoint_valid(value) || strchr(value, ','))
        return "one endpoint such as tcp://127.0.0.1:5561";
    //  libzmq refuses a path longer than a socket address holds
    if (strncmp(value, "ipc://", 6) == 0 && strlen(value + 6) > S_UNIX_PATH_MAX)
        return "one endpoint such as ipc:///run/hvn/backend: a path of at most 107 bytes";
    if (strncmp(value, "tcp://", 6) != 0)
        return NULL;
    //  tcp://[SOURCE[:PORT];]HOST:PORT, SOURCE being the address to
    //  connect from
    const char *address = value + 6;
    const char *semicolon = strchr(address, ';');
    size_t source_len = semicolon ? (size_t)(semicolon - address) : 0;
    if ((semicolon && !s_tcp_address_valid(address, source_len) &&
         !s_tcp_host_valid(address, source_len)) ||
        !s_tcp_address_valid(semicolon ? semicolon + 1 : address,
                             strlen(semicolon ? semicolon + 1 : address)))
        return "one endpoint such as tcp://127.0.0.1:5561: a valid IPv4 address, [IPv6] "
               "address or host name, then a port from 0 to 65535";
    return NULL;
}

//  Returns true when text is ADDR:PORT with a port from 0 to 65535 and a
//  non-empty address ([v6] in brackets).
static bool s_address_valid(const char *text)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text)
        return false;
    if (text[0] == '[' && colon[-1] != ']')
        return false;
    long port;
    return hvn_cli_parse_long(colon + 1, 0, 65535, &port) == 0;
}

//  Returns true when text is "scheme://rest" with a scheme of letters,
//  digits, '+', '-' or '.' and a non-empty rest.
static bool s_url_valid(const char *text)
{
    const char *sep = strstr(text, "://");
    if (!sep || sep == text || !sep[3])
        return false;
    for (const char *p = text; p < sep; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
            !(*p >= '0' && *p <= '9') && *p != '+' && *p != '-' && *p != '.')
            return false;
    return true;
}

//  Returns true when value is one of the '|'-separated words of choices.
static bool s_choice_valid(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t word = bar ? (size_t)(bar - p) : strlen(p);
        if (word == len && strncmp(p, value, len) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

//  Returns 0 with *out set to text as a byte count (digits, then an
//  optional K, M or G for 1024, 1024², 1024³) from min to max; -1 if not.
static int s_parse_size(const char *text, long min, long max, size_t *out)
{
    size_t len = strlen(text);
    if (len == 0 || len > 32)
        return -1;
    char digits[33];
    memcpy(digits, text, len + 1);
    uint64_t unit = 1;
    switch (digits[len - 1]) {
    case 'K': case 'k': unit = 1024; break;
    case 'M': case 'm': unit = 1024 * 1024; break;
    case 'G': case 'g': unit = 1024 * 1024 * 1024; break;
    default: break;
    }
    if (unit != 1)
        digits[len - 1] = '\0';
    long value;
    if (hvn_cli_parse_long(digits, 0, LONG_MAX, &value) != 0)
        return -1;
    if ((uint64_t)value > (uint64_t)LONG_MAX / unit)
        return -1;
    long bytes = (long)((uint64_t)value * unit);
    if (bytes < min || (max > 0 && bytes > max))
        return -1;
    *out = (size_t)bytes;
    return 0;
}

//  Returns nothing; stores value into option's destination or ends the
//  program with the option's error.
static void s_store(const hvn_opt_program_t *program, const hvn_opt_t *option, const char *value)
{
    char what[128];
    switch (option->type) {
    case HVN_OPT_FLAG:
        *(bool *)option->dest = true;
        return;
    case HVN_OPT_STRING:
    case HVN_OPT_PATH:
        if (!*value)
            s_bad_value(program, option, option->type == HVN_OPT_PATH ? "a path" : "a value",
                        value);
        break;
    case HVN_OPT_ENDPOINT:
        if (hvn_opt_check_endpoint(value))
            s_bad_value(program, option, hvn_opt_check_endpoint(value), value);
        break;
    case HVN_OPT_ADDRESS:
        if (!s_address_valid(value))
            s_bad_value(program, option, "ADDR:PORT such as 127.0.0.1:8780", value);
        break;
    case HVN_OPT_URL:
        if (!s_url_valid(value))
            s_bad_value(program, option, "a URL such as scheme://host/path", value);
        break;
    case HVN_OPT_INT: {
        long number;
        long max = option->max > 0 ? option->max : LONG_MAX;
        if (hvn_cli_parse_long(value, option->min, max, &number) != 0) {
            if (option->max > 0)
                snprintf(what, sizeof(what), "a whole number from %ld to %ld", option->min, max);
            else
                snprintf(what, sizeof(what), "a whole number of at least %ld", option->min);
            s_bad_value(program, option, what, value);
        }
        if (option->check && option->check(value))
            s_bad_value(program, option, option->check(value), value);
        *(long *)option->dest = number;
        return;
    }
    case HVN_OPT_SIZE: {
        size_t bytes;
        if (s_parse_size(value, option->min, option->max, &bytes) != 0) {
            if (option->max > 0)
                snprintf(what, sizeof(what), "a byte count from %ld to %ld (K, M, G allowed)",
                         option->min, option->max);
            else
                snprintf(what, sizeof(what), "a byte count of at least %ld (K, M, G allowed)",
                         option->min);
            s_bad_value(program, option, what, value);
        }
        *(size_t *)option->dest = bytes;
        return;
    }
    case HVN_OPT_DOUBLE: {
        double number;
        if (hvn_cli_parse_double(value, &number) != 0 || number < option->dmin ||
            number > option->dmax) {
            snprintf(what, sizeof(what), "a number from %.10g to %.10g", option->dmin, option->dmax);
            s_bad_value(program, option, what, value);
        }
        if (option->check && option->check(value))
            s_bad_value(program, option, option->check(value), value);
        *(double *)option->dest = number;
        return;
    }
    case HVN_OPT_CHOICE:
        if (!s_choice_valid(option->choices, value)) {
            snprintf(what, sizeof(what), "one of %s", option->choices);
            s_bad_value(program, option, what, value);
        }
        break;
    case HVN_OPT_LIST: {
        if (!*value)
            s_bad_value(program, option, "a value", value);
        if (option->check && option->check(value))
            s_bad_value(program, option, option->check(value), value);
        const char **list = option->dest;
        long n = 0;
        while (list[n])
            n++;
        if (n >= option->max)
            hvn_opt_fail(program, "--%s: at most %ld allowed", option->name, option->max);
        list[n] = value;
        list[n + 1] = NULL;
        return;
    }
    case HVN_OPT_END:
        return;
    }
    if (option->check && option->check(value))
        s_bad_value(program, option, option->check(value), value);
    *(const char **)option->dest = value;
}

//  ---------------------------------------------------------------------
//  --help

//  Returns nothing; writes into buf the option's default as text, or ""
//  when it has none.
static void s_default_text(const hvn_opt_t *option, char *buf, size_t size)
{
    buf[0] = '\0';
    if (option->default_text) {
        snprintf(buf, size, "%s", option->default_text);
        return;
    }
    switch (option->type) {
    case HVN_OPT_INT:
        snprintf(buf, size, "%ld", *(const long *)option->dest);
        break;
    case HVN_OPT_SIZE:
        snprintf(buf, size, "%zu", *(const size_t *)option->dest);
        break;
    case HVN_OPT_DOUBLE:
        snprintf(buf, size, "%g", *(const double *)option->dest);
        break;
    case HVN_OPT_STRING:
    case HVN_OPT_PATH:
    case HVN_OPT_ENDPOINT:
    case HVN_OPT_ADDRESS:
    case HVN_OPT_URL:
    case HVN_OPT_CHOICE:
        if (*(const char **)option->dest)
            snprintf(buf, size, "%s", *(const char **)option->dest);
        break;
    default:
        break;
    }
}

//  Returns nothing; writes into buf what --help adds after an option's
//  text: its range, whether it repeats and its default, in parentheses
//  ("" when there is nothing to say).
static void s_suffix(const hvn_opt_t *option, char *buf, size_t size)
{
    char range[96] = "", def[256];
    if ((option->type == HVN_OPT_INT || option->type == HVN_OPT_SIZE) && option->max > 0)
        snprintf(range, sizeof(range), "%ld to %ld", option->min, option->max);
    else if (option->type == HVN_OPT_INT || option->type == HVN_OPT_SIZE)
        snprintf(range, sizeof(range), "at least %ld", option->min);
    else if (option->type == HVN_OPT_DOUBLE)
        snprintf(range, sizeof(range), "%.10g to %.10g", option->dmin, option->dmax);
    else if (option->type == HVN_OPT_LIST)
        snprintf(range, sizeof(range), "repeatable, up to %ld", option->max);
    s_default_text(option, def, sizeof(def));
    if (*range && *def)
        snprintf(buf, size, "(%s; default %s)", range, def);
    else if (*range || *def)
        snprintf(buf, size, "(%s%s%s)", range, *def ? "default " : "", def);
    else
        buf[0] = '\0';
}

//  Returns nothing; prints one option's entry of --help: the option and
//  its value's name, then its help from column S_HELP_COLUMN, wrapped
//  where the text has '\n', then its range and default.
static void s_print_option(const hvn_opt_t *option, FILE *out)
{
    char head[96];
    const char *metavar = option->metavar ? option->metavar : "VALUE";
    if (option->type == HVN_OPT_FLAG)
        snprintf(head, sizeof(head), "  --%s", option->name);
    else if (option->type == HVN_OPT_CHOICE && !option->metavar)
        snprintf(head, sizeof(head), "  --%s %s", option->name, option->choices);
    else
        snprintf(head, sizeof(head), "  --%s %s", option->name, metavar);
    size_t width = strlen(head);
    fputs(head, out);
    if (width + 1 >= S_HELP_COLUMN)
        fprintf(out, "\n%*s", S_HELP_COLUMN, "");
    else
        fprintf(out, "%*s", (int)(S_HELP_COLUMN - width), "");
    size_t column = S_HELP_COLUMN;
    for (const char *p = option->help ? option->help : ""; *p; p++) {
        fputc(*p, out);
        column++;
        if (*p == '\n') {
            fprintf(out, "%*s", S_HELP_COLUMN, "");
            column = S_HELP_COLUMN;
        }
    }
    char suffix[384];
    s_suffix(option, suffix, sizeof(suffix));
    if (*suffix && column + 1 + strlen(suffix) > 79)
        fprintf(out, "\n%*s%s\n", S_HELP_COLUMN, "", suffix);
    else if (*suffix)
        fprintf(out, "%s%s\n", column > S_HELP_COLUMN ? " " : "", suffix);
    else
        fputc('\n', out);
}

void hvn_opt_usage(const hvn_opt_program_t *program, FILE *out)
{
    fprintf(out, "Usage: %s [OPTION]...%s%s\n", program->name, program->operands ? " " : "",
            program->operands ? program->operands : "");
    fprintf(out, "%s\n\nOptions:\n", program->summary);
    for (const hvn_opt_t *option = program->options; option->name; option++)
        if (!option->hidden)
            s_print_option(option, out);
    fprintf(out, "  --help%*sshow this help and exit\n", S_HELP_COLUMN - 8, "");
    fprintf(out, "  --version%*sshow the version and exit\n", S_HELP_COLUMN - 11, "");
    if (program->epilogue)
        fprintf(out, "\n%s\n", program->epilogue);
}

//  ---------------------------------------------------------------------
//  Parsing

bool hvn_opt_given(const hvn_opt_program_t *program, const char *name)
{
    if (program != s_given_program)
        return false;
    for (size_t i = 0; program->options[i].name; i++)
        if (strcmp(program->options[i].name, name) == 0)
            return s_given[i];
    return false;
}

int hvn_opt_parse(const hvn_opt_program_t *program, int argc, char **argv)
{
    enum { O_HELP = 1, O_VERSION = 2, O_FIRST = 3 };
    struct option longopts[S_OPTIONS_MAX + 3];
    size_t count = 0;
    for (; program->options[count].name; count++) {
        if (count >= S_OPTIONS_MAX) {
            fprintf(stderr, "%s: too many options in the table\n", program->name);
            abort();
        }
        const hvn_opt_t *option = &program->options[count];
        longopts[count] = (struct option){option->name,
                                          option->type == HVN_OPT_FLAG ? no_argument
                                                                       : required_argument,
                                          NULL, O_FIRST + (int)count};
    }
    longopts[count] = (struct option){"help", no_argument, NULL, O_HELP};
    longopts[count + 1] = (struct option){"version", no_argument, NULL, O_VERSION};
    longopts[count + 2] = (struct option){NULL, 0, NULL, 0};

    s_given_program = program;
    memset(s_given, 0, sizeof(s_given));
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h' || opt == O_HELP) {
            hvn_opt_usage(program, stdout);
            exit(0);
        }
        if (opt == O_VERSION) {
            printf("%s (hvnotify) %s\n", program->name, HVN_VERSION);
            exit(0);
        }
        if (opt == ':')
            hvn_opt_fail(program, "%s: missing value", argv[optind - 1]);
        if (opt < O_FIRST || opt >= O_FIRST + (int)count)
            hvn_opt_fail(program, "unknown option '%s'", argv[optind - 1]);
        s_given[opt - O_FIRST] = true;
        s_store(program, &program->options[opt - O_FIRST], optarg);
    }
    size_t operands = (size_t)(argc - optind);
    if (operands > program->operands_max)
        hvn_opt_fail(program, "unexpected argument '%s'", argv[optind + (int)program->operands_max]);
    if (operands < program->operands_min)
        hvn_opt_fail(program, "missing %s", program->operands ? program->operands : "argument");
    return optind;
}
