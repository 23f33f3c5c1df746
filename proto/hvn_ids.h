/*  hvn_ids.h — message ids, instance ids and timestamps.

    Message ids are UUID4s cut from a per-thread pool of random bytes filled
    by one getrandom() call, because one syscall per id costs more than
    encoding and decoding a notification together. libuuid formats them.
*/
#ifndef HVN_IDS_H_INCLUDED
#define HVN_IDS_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Writes a fresh random UUID4 (16 raw bytes).
void hvn_uuid4_raw(uint8_t out[16]);

//  Writes a fresh random UUID4 as canonical lowercase text (37 bytes).
void hvn_uuid4_str(char out[37]);

//  Writes the current UTC time as "YYYY-MM-DD HH:MM:SS.ffffff" (27 bytes).
void hvn_timestamp_now(char out[27]);

#ifdef __cplusplus
}
#endif
#endif
