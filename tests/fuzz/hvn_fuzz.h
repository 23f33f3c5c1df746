/*  hvn_fuzz.h — the fuzz harnesses, one function per target.

    Each harness takes arbitrary bytes, runs them through the code a peer
    or a user can reach, and checks what must hold whatever the bytes
    (a refusal names a known reason, an accepted message survives a second
    decode, a round trip and a render). A broken property calls abort(), so
    libFuzzer reports it as a crash and the corpus replay test fails.

    The same functions serve the libFuzzer programs (fuzz_<target>, built
    with clang when HVN_FUZZ is on) and test_fuzz_corpus, which replays
    every input of tests/fuzz/<target>/ in the normal and sanitizer builds.
*/
#ifndef HVN_FUZZ_H_INCLUDED
#define HVN_FUZZ_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The message decoder and what the broker does with an accepted message.
//  Input: one selector byte (its low two bits pick the body limit: 64 KiB,
//  16, 64, or a default broker's heartbeat limit), then
//  messages of [topic size u8][topic][header size u8][header]
//  [body size u16 BE][body]; body size 0xFFFF, or any size past the
//  input's end, takes what is left. Returns 0.
int hvn_fuzz_decoder(const uint8_t *data, size_t size);

//  The JSON node reader of hvn-pub, one input line at a time. Input: text,
//  split into lines as hvn-pub splits standard input. Returns 0.
int hvn_fuzz_json_node(const uint8_t *data, size_t size);

//  The snapshot reply parser: the input is an END body, as a subscriber
//  receives it after a snapshot's ITEMs. Returns 0.
int hvn_fuzz_end(const uint8_t *data, size_t size);

//  Returns true when data begins with one complete msgpack object in which
//  no array or map claims more elements than bytes remain (each element
//  takes at least one byte), and, unless allow_trailing, nothing follows
//  it: then msgpack_unpack() may be asked about it. Never reads past size.
bool hvn_fuzz_bounded(const void *data, size_t size, bool allow_trailing);

//  Writes one message in the framing hvn_fuzz_decoder reads into out (room
//  for HVN_FUZZ_FRAME_MAX(body_size) bytes); last says the body runs to the
//  end of the input (any size), else it must be under 0xFFFF bytes.
//  Returns the bytes written, or 0 when a frame does not fit the framing.
#define HVN_FUZZ_FRAME_MAX(body_size) (1 + 255 + 1 + 255 + 2 + (body_size))
size_t hvn_fuzz_frame(uint8_t *out, const void *topic, size_t topic_size, const void *header,
                      size_t header_size, const void *body, size_t body_size, int last);

#ifdef __cplusplus
}
#endif
#endif
