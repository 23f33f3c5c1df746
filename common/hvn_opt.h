/*  hvn_opt.h — one command-line option table per program.

        const char *connect = "tcp://127.0.0.1:5562";
        long count = 0;
        const hvn_opt_t options[] = {
            {.name = "connect", .type = HVN_OPT_ENDPOINT, .dest = &connect,
             .metavar = "EP", .help = "the broker's backend"},
            {.name = "count", .type = HVN_OPT_INT, .dest = &count, .metavar = "N",
             .help = "stop after N notifications (0: never)", .min = 0, .max = 1000000},
            {.name = NULL}
        };
        const hvn_opt_program_t program = {
            .name = "hvn-sub", .summary = "Print hvnotify notifications.",
            .options = options };
        int first = hvn_opt_parse (&program, argc, argv);

    Every option is declared once, as data: its long name, its type, where
    its value goes, its range or choices, and its help line. The default is
    whatever the destination holds before parsing, so it is written once
    too, and --help prints it. From the table come the getopt_long
    parsing, --help, --version, the manual page (help2man reads --help) and
    one form of error for every bad value:

        hvn-sub: --count: expected a whole number from 0 to 1000000, got 'x' (try --help)

    with exit status 2. --help and --version print on stdout and exit 0.

    Declare tables with designated initializers (-Wextra warns about a
    positional one that leaves fields out). Not part of libhvn's API: the
    static library hvncommon, shared by the programs.
*/
#ifndef HVN_OPT_H_INCLUDED
#define HVN_OPT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

//  What an option takes, and what its destination points to
typedef enum {
    HVN_OPT_END = 0,   //  Ends the table ({.name = NULL})
    HVN_OPT_FLAG,      //  No value; bool *, set to true
    HVN_OPT_STRING,    //  Any non-empty text; const char ** (points into argv)
    HVN_OPT_PATH,      //  A non-empty path; const char **
    HVN_OPT_ENDPOINT,  //  A ZeroMQ endpoint (tcp://, ipc://, inproc://); const char **
    HVN_OPT_ADDRESS,   //  ADDR:PORT to listen on (IPv4, [IPv6] or a name); const char **
    HVN_OPT_URL,       //  A URL with a scheme (scheme://...); const char **
    HVN_OPT_INT,       //  A whole number from min to max; long *
    HVN_OPT_SIZE,      //  A byte count from min to max, with an optional
                       //  K, M or G suffix (powers of 1024); size_t *
    HVN_OPT_DOUBLE,    //  A decimal number from dmin to dmax; double *
    HVN_OPT_CHOICE,    //  One of choices ("json|table"); const char **
    HVN_OPT_LIST,      //  Repeatable text; each value is appended to a
                       //  NULL-terminated array of up to max_count
                       //  entries: const char *dest[max_count + 1]
} hvn_opt_type_t;

//  One option
typedef struct {
    const char *name;          //  Long name without "--"; NULL ends the table
    hvn_opt_type_t type;       //  What it takes
    void *dest;                //  Where its value goes (see the types)
    const char *metavar;       //  Its value's name in --help ("EP", "N")
    const char *help;          //  What it does; several lines may be
                               //  separated by '\n'
    long min, max;             //  HVN_OPT_INT / HVN_OPT_SIZE range (max 0: no
                               //  upper bound); HVN_OPT_LIST: max_count in max
    double dmin, dmax;         //  HVN_OPT_DOUBLE range, both inclusive
    const char *choices;       //  HVN_OPT_CHOICE: the words, '|'-separated
    //  Extra check of a value already of the right type: returns NULL when
    //  value is good, or what was expected ("a service name without ':'").
    const char *(*check)(const char *value);
    const char *default_text;  //  Shown as the default instead of the
                               //  destination's value (NULL: the value)
    bool hidden;               //  Accepted, but not shown in --help
} hvn_opt_t;

//  One program: its name, what it does, and its options
typedef struct {
    const char *name;        //  "hvn-sub": the prefix of every error line
    const char *operands;    //  Synopsis after [OPTION]... ("ROLE NAME"), or
                             //  NULL when it takes none
    size_t operands_min;     //  Fewest operands accepted
    size_t operands_max;     //  Most operands accepted
    const char *summary;     //  What the program does: the first paragraph
                             //  of --help and the manual's NAME line (its
                             //  first line)
    const char *epilogue;    //  Text after the options: behaviour, exit
                             //  status (may be NULL)
    const hvn_opt_t *options; //  The table, ended by {NULL}
} hvn_opt_program_t;

//  Parses argv against the program's table. Returns the index in argv of
//  the first operand (argc when there are none). On --help or --version
//  prints to stdout and exits 0; on any bad usage prints one line on
//  stderr and exits 2.
int hvn_opt_parse(const hvn_opt_program_t *program, int argc, char **argv);

//  Returns nothing; prints the program's --help text on out, defaults as
//  the destinations hold them now.
void hvn_opt_usage(const hvn_opt_program_t *program, FILE *out);

//  Returns true when the user gave option `name` on the command line in
//  the last hvn_opt_parse() of program.
bool hvn_opt_given(const hvn_opt_program_t *program, const char *name);

//  Returns NULL when value is one ZeroMQ endpoint (no ','), else what was
//  expected: the check of an HVN_OPT_LIST of endpoints.
const char *hvn_opt_check_endpoint(const char *value);

//  Never returns: prints "<program>: <message>" formatted like printf,
//  followed by " (try --help)", on stderr and exits 2. For the checks
//  that span several options ("--curve-secret needs --server-key").
void hvn_opt_fail(const hvn_opt_program_t *program, const char *format, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
