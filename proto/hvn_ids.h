/*  hvn_ids.h — message ids, instance ids and timestamps.

    Message ids are UUID4s cut from a per-thread pool of random bytes filled
    by one getrandom() call, because one syscall per id costs more than
    encoding and decoding a notification together. libuuid formats them.
*/
#ifndef HVN_IDS_H_INCLUDED
#define HVN_IDS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  Writes a fresh random UUID4 (16 raw bytes).
void hvn_uuid4_raw(uint8_t out[16]);

//  Writes a fresh random UUID4 as canonical lowercase text (37 bytes).
void hvn_uuid4_str(char out[37]);

//  Returns 0 with out holding the 16 bytes of `len` bytes of canonical UUID
//  text (36 bytes: hex digits of either case, dashes at 8, 13, 18 and 23),
//  or -1 when the text is not one. Accepts what libuuid's uuid_parse
//  accepts, without its strtoul per byte; out may be NULL to only check.
int hvn_uuid_parse(const char *text, size_t len, uint8_t *out);

//  Writes the current UTC time as "YYYY-MM-DD HH:MM:SS.ffffff" (27 bytes).
void hvn_timestamp_now(char out[27]);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
