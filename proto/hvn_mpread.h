/*  hvn_mpread.h — untrusted msgpack, read one way: into a flat array of
    tokens. Internal to proto/ (hvni_: not libhvn's API, not exported).

    Every msgpack body a peer sends (a notification or heartbeat, a
    snapshot's END, STATS) and every file the publisher reads back goes
    through hvni_mp_read(): msgpack-c's own parser (the unpack_template.h
    msgpack_unpack() is built from) with callbacks that write one token per
    object into an array the caller keeps, in document order, a container
    followed by its elements. A token is written per object the parser has
    read, never per element a container's header claims, so a few hostile
    bytes claiming four billion elements cannot make it allocate: it holds
    at most one token per body byte. The same parser means the same
    refusals as msgpack_unpack(): a parse error, an incomplete body, over
    32 nested containers, an ext of length 0, and bytes after the object.
*/
#ifndef HVN_MPREAD_H_INCLUDED
#define HVN_MPREAD_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A token's type: msgpack_object_type's, by the same names
typedef enum {
    HVNI_MP_NIL,
    HVNI_MP_BOOLEAN,
    HVNI_MP_POSITIVE_INTEGER, //  An int >= 0, signed or not on the wire
    HVNI_MP_NEGATIVE_INTEGER,
    HVNI_MP_FLOAT32,
    HVNI_MP_FLOAT64,
    HVNI_MP_STR,
    HVNI_MP_BIN,
    HVNI_MP_ARRAY,
    HVNI_MP_MAP,
    HVNI_MP_EXT
} hvni_mp_type_t;

//  One msgpack object. A map's tokens are its header, then key and value
//  of each pair in turn; an array's its header, then each element.
typedef struct {
    hvni_mp_type_t type; //  As msgpack_unpack would type the object
    uint32_t size;       //  str, bin: bytes; array: elements; map: pairs; ext: data bytes
    uint32_t span;       //  Tokens this object and its elements take
    union {
        const char *ptr; //  str, bin: its bytes, in the body read (not NUL-terminated)
        uint64_t u64;    //  POSITIVE_INTEGER
        int64_t i64;     //  NEGATIVE_INTEGER
    };
} hvni_mp_tok_t;

//  Returns the token after t and all its elements.
static inline const hvni_mp_tok_t *hvni_mp_next(const hvni_mp_tok_t *t)
{
    return t + t->span;
}

//  A token array, kept and reused by its owner (one per thread)
typedef struct {
    hvni_mp_tok_t *tok; //  Grown (doubling) when a body has more objects
    uint32_t count;     //  Tokens written by the last read
    uint32_t cap;       //  Tokens allocated
} hvni_mp_t;

//  Returns 0 with self an empty array holding room for a notification's
//  tokens, or -1 when out of memory (self then empty too).
int hvni_mp_init(hvni_mp_t *self);

//  Returns nothing; the tokens' memory is freed. Safe on an empty array.
void hvni_mp_release(hvni_mp_t *self);

//  Returns the root token of the one msgpack object that is exactly the
//  size bytes at data, or NULL when msgpack_unpack() would not return
//  MSGPACK_UNPACK_SUCCESS with all of them read (not msgpack, incomplete,
//  bytes after the object, too deep), or when out of memory. The tokens
//  point into data: valid while data is and until the next read. An array
//  grown past what a 16 KiB body takes is given back at the next read.
const hvni_mp_tok_t *hvni_mp_read(hvni_mp_t *self, const void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
