/*  hvn_wire_int.h — small checks the wire's files share (hvn_wire.c,
    hvn_encoder.c, hvn_decoder.c), inline because the decoder runs them on
    every message. Internal to proto/ (hvni_: not libhvn's API).
*/
#ifndef HVN_WIRE_INT_H_INCLUDED
#define HVN_WIRE_INT_H_INCLUDED

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hvn_wire.h"

//  Returns the eight bytes at p as a word.
static inline uint64_t hvni_word(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

//  Returns true when the n bytes at a and b are the same: memcmp() == 0 for
//  the short keys and names a body is made of, inline instead of a call,
//  reading no byte outside either run.
static inline bool hvni_same(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        //  The last word, then those before it (the first three without a
        //  loop: a body's keys and names are up to 24 bytes), differences
        //  gathered in one word
        uint64_t diff = hvni_word(a + n - 8) ^ hvni_word(b + n - 8);
        if (n > 8)
            diff |= hvni_word(a) ^ hvni_word(b);
        if (n > 16)
            diff |= hvni_word(a + 8) ^ hvni_word(b + 8);
        for (size_t i = 16; i + 8 < n; i += 8)
            diff |= hvni_word(a + i) ^ hvni_word(b + i);
        return diff == 0;
    }
    if (n >= 4) {
        uint32_t x, y, u, v;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return x == y && u == v;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

//  Returns true for the three notification events.
static inline bool hvni_is_notification(hvn_event_t event)
{
    return event == HVN_EVENT_CREATE || event == HVN_EVENT_UPDATE || event == HVN_EVENT_DELETE;
}

//  Returns the length of event's name (hvn_event_name), 0 for none; event
//  must be an hvn_event_t value.
static inline size_t hvni_event_len(hvn_event_t event)
{
    static const uint8_t lens[] = {
        [HVN_EVENT_NONE] = 0,
        [HVN_EVENT_CREATE] = sizeof(HVN_EVENT_CREATE_NAME) - 1,
        [HVN_EVENT_UPDATE] = sizeof(HVN_EVENT_UPDATE_NAME) - 1,
        [HVN_EVENT_DELETE] = sizeof(HVN_EVENT_DELETE_NAME) - 1,
        [HVN_EVENT_HEARTBEAT] = sizeof(HVN_EVENT_HEARTBEAT_NAME) - 1,
        [HVN_EVENT_BROKER] = sizeof(HVN_EVENT_BROKER_NAME) - 1,
    };
    return lens[event];
}

//  Returns true when len bytes at s are "YYYY-MM-DD HH:MM:SS.ffffff" with
//  plausible ranges.
static inline bool hvni_timestamp_valid(const char *s, size_t len)
{
    //  The bytes of four words (0-7, 8-15, 16-23, 18-25) that are digits
    static const uint64_t digit_at[4] = {0x00FFFF00FFFFFFFFULL, 0xFFFF00FFFF00FFFFULL,
                                         0xFFFFFFFF00FFFF00ULL, 0xFFFFFFFFFFFF00FFULL};
    static const uint8_t word_at[4] = {0, 8, 16, 18};
    if (len != HVN_TIMESTAMP_LEN || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.')
        return false;
    //  Eight bytes at a time: a byte below 0x80 is a digit when adding
    //  0x80 - '0' sets its top bit and adding 0x7F - '9' does not (no carry
    //  leaves a byte once the top bits are cleared)
    const uint64_t top = 0x8080808080808080ULL;
    uint64_t bad = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, s + word_at[i], 8);
        w = le64toh(w);
        uint64_t low = w & ~top;
        uint64_t digit = (low + 0x5050505050505050ULL) & ~(low + 0x4646464646464646ULL);
        bad |= (w | ~digit) & top & digit_at[i];
    }
    if (bad)
        return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0');
    int minute = (s[14] - '0') * 10 + (s[15] - '0');
    int second = (s[17] - '0') * 10 + (s[18] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 &&
           second <= 60;
}

#endif
