/*  hvn_cli.h — what the command-line programs share: option values and
    input lines, read one way everywhere.

    Not part of libhvn and not installed: a static library, hvncli, that
    hvn-pub, hvn-sub and hvn-agent link, and that the fuzz harness of
    hvn-pub's reader links too, so that it cuts lines exactly as hvn-pub
    does.
*/
#ifndef HVN_CLI_H_INCLUDED
#define HVN_CLI_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Returns 0 with *out set to the whole decimal number that is all of
//  text when it lies from min to max, -1 otherwise (empty, trailing bytes,
//  out of range). *out is not changed on failure.
int hvn_cli_parse_long(const char *text, long min, long max, long *out);

//  The same for an int.
int hvn_cli_parse_int(const char *text, int min, int max, int *out);

//  Returns 0 with *out set to the finite decimal number that is all of
//  text, -1 otherwise (empty, trailing bytes, overflow or underflow,
//  infinity, NaN). The caller checks the range. *out is not changed on
//  failure.
int hvn_cli_parse_double(const char *text, double *out);

//  Appends item to *list, a comma-separated list on the heap (NULL while
//  empty; the caller frees it). Returns 0, or -1 when item is empty, holds
//  a comma, or memory ran out, leaving *list as it was.
int hvn_cli_list_append(char **list, const char *item);

//  Returns the length of line[0..len) without its trailing '\n' and '\r'
//  bytes, each of which becomes a NUL.
size_t hvn_cli_line_trim(char *line, size_t len);

//  Returns true when line[0..len) holds nothing but white space.
bool hvn_cli_line_blank(const char *line, size_t len);

#endif
