/*  hvn_cli.c — option values and input lines of the command-line programs
    (see hvn_cli.h).
*/
#include "hvn_cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int hvn_cli_parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

int hvn_cli_parse_int(const char *text, int min, int max, int *out)
{
    long value;
    if (hvn_cli_parse_long(text, min, max, &value) != 0)
        return -1;
    *out = (int)value;
    return 0;
}

int hvn_cli_parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(value))
        return -1;
    *out = value;
    return 0;
}

int hvn_cli_list_append(char **list, const char *item)
{
    if (!*item || strchr(item, ','))
        return -1;
    size_t had = *list ? strlen(*list) : 0;
    size_t size = strlen(item) + 1;
    char *joined = malloc(had + (had ? 1 : 0) + size);
    if (!joined)
        return -1;
    if (had) {
        memcpy(joined, *list, had);
        joined[had++] = ',';
    }
    memcpy(joined + had, item, size);
    free(*list);
    *list = joined;
    return 0;
}

size_t hvn_cli_line_trim(char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return len;
}

bool hvn_cli_line_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)line[i]))
            return false;
    return true;
}
