/*  hvn_error.h — the broker's reasons for the caller: a function that can
    fail takes (char *error, size_t error_size) and writes one line there
    saying why. error may be NULL, or error_size 0, when the caller does not
    want it.
*/
#ifndef HVN_ERROR_H_INCLUDED
#define HVN_ERROR_H_INCLUDED

#include <stddef.h>

//  Writes the printf-style reason into error when error is not NULL and
//  error_size is not 0 (cut to fit, always terminated). Returns nothing.
void hvn_error_set(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
