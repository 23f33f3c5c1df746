/*  hvn_mpread.c — untrusted msgpack into tokens, with msgpack-c's own
    parser.

    msgpack-c builds msgpack_unpack() by instantiating its unpack_template.h
    with callbacks that allocate msgpack_objects in a zone. Here the same
    template is instantiated with callbacks that append one hvni_mp_tok_t
    per object instead: the same parser, the same refusals (a parse error,
    an incomplete body, over 32 nested containers, an ext of length 0), no
    allocation once the token array is warm. An object is its token's index.

    It is instantiated twice, from one set of callbacks: s_mp_* checks for
    room before each token and grows the array, s_mq_* does not look, and
    reads only a body of no more bytes than the array has tokens (every
    object takes at least one byte). A body of up to S_TOKENS_KEEP bytes
    (every notification) gets that many tokens and the unchecked parser.
    Measured with callgrind on bench_codec: one checked instantiation for
    every body costs about 190 instructions more per notification decoded
    (6 % of this reader, 2 % of an encode and decode), so the second stays.
*/
#include "hvn_mpread.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>

#define S_TOKENS_INIT 256   //  Tokens to start with; a notification takes about 60
#define S_TOKENS_KEEP 16384 //  Tokens kept between reads (a 10 000-node heartbeat)

//  Returns 0 with room for a notification's tokens, -1 when out of memory.
int hvni_mp_init(hvni_mp_t *self)
{
    self->count = 0;
    self->tok = malloc(S_TOKENS_INIT * sizeof(hvni_mp_tok_t));
    self->cap = self->tok ? S_TOKENS_INIT : 0;
    return self->tok ? 0 : -1;
}

//  Returns nothing; the tokens are freed and the array empty.
void hvni_mp_release(hvni_mp_t *self)
{
    free(self->tok);
    self->tok = NULL;
    self->count = self->cap = 0;
}

//  Returns the index of a new token of type t, or -1 when out of memory.
//  Unless checked, the array is known to have room (see hvni_mp_read).
static inline int64_t s_tok_add(hvni_mp_t *u, hvni_mp_type_t t, bool checked)
{
    if (checked && u->count == u->cap) {
        if (u->cap > UINT32_MAX / 4)
            return -1;
        hvni_mp_tok_t *grown = realloc(u->tok, 2 * (size_t)u->cap * sizeof(hvni_mp_tok_t));
        if (!grown)
            return -1;
        u->tok = grown;
        u->cap *= 2;
    }
    hvni_mp_tok_t *tok = &u->tok[u->count];
    tok->type = t;
    tok->size = 0;
    tok->span = 1;
    return u->count++;
}

//  Returns 0 with *o a new integer token (typed as msgpack-c types it), or
//  -1 when out of memory.
static inline int s_tok_int(hvni_mp_t *u, int64_t d, uint32_t *o, bool checked)
{
    int64_t i = s_tok_add(u, d >= 0 ? HVNI_MP_POSITIVE_INTEGER : HVNI_MP_NEGATIVE_INTEGER, checked);
    if (i < 0)
        return -1;
    u->tok[i].i64 = d;
    *o = (uint32_t)i;
    return 0;
}

//  Returns 0 with *o a new token of type t and size n, or -1.
static inline int s_tok_sized(hvni_mp_t *u, hvni_mp_type_t t, uint32_t n, uint32_t *o, bool checked)
{
    int64_t i = s_tok_add(u, t, checked);
    if (i < 0)
        return -1;
    u->tok[i].size = n;
    *o = (uint32_t)i;
    return 0;
}

//  The callbacks unpack_template.h calls, one per kind of object, each as
//  msgpack-c's src/unpack.c types it (signed integers >= 0 are positive).
//  Each returns 0 with *o the object's new token, or < 0 to stop the parse.
//  A container's span is complete after its last element. msgpack-c
//  refuses an ext without its type byte (length 0) as a parse error.
//  Defined twice: P##_cb_* with CHECKED true grow the array when it is
//  full; with CHECKED false they do not look (the array has room).
// clang-format off
#define S_MP_CALLBACKS(P, CHECKED)                                                                 \
    static inline uint32_t P##_cb_root(hvni_mp_t *u) { (void)u; return 0; }                       \
    static inline int P##_cb_uint8(hvni_mp_t *u, uint8_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint16(hvni_mp_t *u, uint16_t d, uint32_t *o)                        \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint32(hvni_mp_t *u, uint32_t d, uint32_t *o)                        \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_uint64(hvni_mp_t *u, uint64_t d, uint32_t *o)                        \
    {                                                                                              \
        if (s_tok_sized(u, HVNI_MP_POSITIVE_INTEGER, 0, o, CHECKED) != 0)                   \
            return -1;                                                                             \
        u->tok[*o].u64 = d;                                                                        \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int P##_cb_int8(hvni_mp_t *u, int8_t d, uint32_t *o)                            \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int16(hvni_mp_t *u, int16_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int32(hvni_mp_t *u, int32_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_int64(hvni_mp_t *u, int64_t d, uint32_t *o)                          \
    { return s_tok_int(u, d, o, CHECKED); }                                                        \
    static inline int P##_cb_float(hvni_mp_t *u, float d, uint32_t *o)                            \
    { (void)d; return s_tok_sized(u, HVNI_MP_FLOAT32, 0, o, CHECKED); }                     \
    static inline int P##_cb_double(hvni_mp_t *u, double d, uint32_t *o)                          \
    { (void)d; return s_tok_sized(u, HVNI_MP_FLOAT64, 0, o, CHECKED); }                     \
    static inline int P##_cb_nil(hvni_mp_t *u, uint32_t *o)                                       \
    { return s_tok_sized(u, HVNI_MP_NIL, 0, o, CHECKED); }                                  \
    static inline int P##_cb_true(hvni_mp_t *u, uint32_t *o)                                      \
    { return s_tok_sized(u, HVNI_MP_BOOLEAN, 0, o, CHECKED); }                              \
    static inline int P##_cb_false(hvni_mp_t *u, uint32_t *o)                                     \
    { return s_tok_sized(u, HVNI_MP_BOOLEAN, 0, o, CHECKED); }                              \
    static inline int P##_cb_array(hvni_mp_t *u, unsigned int n, uint32_t *o)                     \
    { return s_tok_sized(u, HVNI_MP_ARRAY, n, o, CHECKED); }                                \
    static inline int P##_cb_array_item(hvni_mp_t *u, uint32_t *c, uint32_t o)                    \
    { (void)o; u->tok[*c].span = u->count - *c; return 0; }                                        \
    static inline int P##_cb_map(hvni_mp_t *u, unsigned int n, uint32_t *o)                       \
    { return s_tok_sized(u, HVNI_MP_MAP, n, o, CHECKED); }                                  \
    static inline int P##_cb_map_item(hvni_mp_t *u, uint32_t *c, uint32_t k, uint32_t v)          \
    { (void)k; (void)v; u->tok[*c].span = u->count - *c; return 0; }                               \
    static inline int P##_cb_str(hvni_mp_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        if (s_tok_sized(u, HVNI_MP_STR, l, o, CHECKED) != 0)                                \
            return -1;                                                                             \
        u->tok[*o].ptr = p;                                                                        \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int P##_cb_bin(hvni_mp_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        if (s_tok_sized(u, HVNI_MP_BIN, l, o, CHECKED) != 0)                                       \
            return -1;                                                                             \
        u->tok[*o].ptr = p;                                                                        \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int P##_cb_ext(hvni_mp_t *u, const char *b, const char *p, unsigned int l,      \
                                 uint32_t *o)                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        (void)p;                                                                                   \
        if (l == 0)                                                                                \
            return MSGPACK_UNPACK_PARSE_ERROR;                                                     \
        return s_tok_sized(u, HVNI_MP_EXT, l - 1, o, CHECKED);                              \
    }
// clang-format on

S_MP_CALLBACKS(s_mp, true)
S_MP_CALLBACKS(s_mq, false)

//  s_mp_*: the parser for any body, growing the tokens as it goes
#define msgpack_unpack_struct(name) struct s_mp##name
#define msgpack_unpack_func(ret, name) static inline ret s_mp##name
#define msgpack_unpack_callback(name) s_mp_cb##name
#define msgpack_unpack_object uint32_t
#define msgpack_unpack_user hvni_mp_t
#include <msgpack/unpack_define.h>
#include <msgpack/unpack_template.h>

//  s_mq_*: the same parser for a body of no more bytes than the array has
//  tokens (every msgpack object takes at least one byte)
#define msgpack_unpack_struct(name) struct s_mq##name
#define msgpack_unpack_func(ret, name) static inline ret s_mq##name
#define msgpack_unpack_callback(name) s_mq_cb##name
#define msgpack_unpack_object uint32_t
#define msgpack_unpack_user hvni_mp_t
#include <msgpack/unpack_template.h>

//  Returns the body's root token, or NULL when msgpack_unpack() would not
//  return MSGPACK_UNPACK_SUCCESS for it (not valid msgpack, incomplete,
//  bytes after the object, out of memory). Tokens stay valid until the
//  next read.
const hvni_mp_tok_t *hvni_mp_read(hvni_mp_t *self, const void *body, size_t size)
{
    if (!body || size == 0)
        return NULL; //  No object at all
    if (self->cap == 0 && hvni_mp_init(self) != 0)
        return NULL;
    if (self->cap > S_TOKENS_KEEP) { //  Give back what one large body took
        hvni_mp_tok_t *fewer = realloc(self->tok, S_TOKENS_INIT * sizeof(hvni_mp_tok_t));
        if (fewer) {
            self->tok = fewer;
            self->cap = S_TOKENS_INIT;
        }
    }
    //  A body of up to S_TOKENS_KEEP bytes gets a token per byte (kept), so
    //  that the parser need not check for room at every object
    if (size > self->cap && size <= S_TOKENS_KEEP) {
        uint32_t cap = self->cap;
        while (cap < size)
            cap *= 2;
        hvni_mp_tok_t *grown = realloc(self->tok, cap * sizeof(hvni_mp_tok_t));
        if (grown) {
            self->tok = grown;
            self->cap = cap;
        }
    }
    size_t offset = 0;
    int rc;
    if (size <= self->cap) {
        struct s_mq_context ctx;
        s_mq_init(&ctx);
        ctx.user = *self;
        ctx.user.count = 0;
        rc = s_mq_execute(&ctx, body, size, &offset);
        *self = ctx.user;
    } else {
        struct s_mp_context ctx;
        s_mp_init(&ctx);
        ctx.user = *self;
        ctx.user.count = 0;
        rc = s_mp_execute(&ctx, body, size, &offset);
        *self = ctx.user;
    }
    if (rc != 1 || offset != size)
        return NULL;
    return self->tok;
}
