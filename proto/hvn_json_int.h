/*  hvn_json_int.h — a text written as a JSON string, as jansson writes
    one: what the index's payloads and the bridge's message bodies are
    written with where building a jansson tree per notification would cost
    more than the rest of their work. Internal to proto/ (hvni_: not
    libhvn's API, not exported).
*/
#ifndef HVN_JSON_INT_H_INCLUDED
#define HVN_JSON_INT_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The most bytes hvni_json_string writes for a text of len bytes
#define HVNI_JSON_STRING_MAX(len) (6 * (len) + 2)

//  Returns at after writing len bytes of text (valid UTF-8: the caller
//  checks) there as a JSON string: quoted, '"' and '\' escaped with a
//  backslash, control characters as \b \f \n \r \t or \u00XX, everything
//  else as it is (jansson's compact output, byte for byte). Writes at most
//  HVNI_JSON_STRING_MAX(len) bytes, no NUL.
char *hvni_json_string(char *at, const char *text, size_t len);

#ifdef __cplusplus
}
#endif
#endif
