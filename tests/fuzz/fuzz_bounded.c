/*  fuzz_bounded.c — the harnesses' own msgpack pre-scan, an oracle beside
    the reader under test (proto/hvn_mpread.h).

    It checks, without recursion and without msgpack-c, that the first
    object is complete and that no array or map claims more elements than
    bytes remain. A body it passes can be handed to msgpack_unpack() (which
    allocates a container's elements as soon as it reads its header)
    without an allocation bomb, so the harnesses can compare the reader
    with msgpack-c on any input.
*/
#include "hvn_fuzz.h"

//  Returns the big-endian unsigned integer of n bytes at p.
static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | p[i];
    return value;
}

//  Returns true when the first msgpack object in data is complete and no
//  array or map in it claims more elements than bytes remain (each element
//  takes at least one byte), and, unless allow_trailing, nothing follows it.
//  Walks without recursion: `pending` counts the objects still to read.
bool hvn_fuzz_bounded(const void *bytes, size_t size, bool allow_trailing)
{
    const uint8_t *data = bytes;
    if (!data)
        return false;
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= size)
            return false;
        uint8_t c = data[pos++];
        pending--;
        //  Fast paths for what a notification is mostly made of. A fixint
        //  takes one byte for one object, so the bound below still holds
        if (c <= 0x7F || c >= 0xE0)
            continue;
        if (c >= 0xA0 && c <= 0xBF) { //  fixstr
            size_t n = c & 0x1F;
            if (n > size - pos)
                return false;
            pos += n;
            if (pending > size - pos)
                return false;
            continue;
        }
        uint64_t skip = 0;     //  Payload bytes after the header
        uint64_t children = 0; //  Objects that follow as elements
        size_t len_bytes = 0;  //  Bytes of a length field
        if (c == 0xC0 || c == 0xC2 || c == 0xC3)
            ; //  nil, false, true
        else if (c <= 0x8F)
            children = 2 * (uint64_t)(c & 0x0F);
        else if (c <= 0x9F)
            children = c & 0x0F;
        else if (c <= 0xBF)
            skip = c & 0x1F;
        else {
            // clang-format off
            switch (c) {
            case 0xC4: case 0xD9: len_bytes = 1; break; //  bin8, str8
            case 0xC5: case 0xDA: len_bytes = 2; break; //  bin16, str16
            case 0xC6: case 0xDB: len_bytes = 4; break; //  bin32, str32
            case 0xC7: len_bytes = 1; skip = 1; break;  //  ext8: + type byte
            case 0xC8: len_bytes = 2; skip = 1; break;  //  ext16
            case 0xC9: len_bytes = 4; skip = 1; break;  //  ext32
            case 0xCA: case 0xCE: case 0xD2: skip = 4; break;
            case 0xCB: case 0xCF: case 0xD3: skip = 8; break;
            case 0xCC: case 0xD0: skip = 1; break;
            case 0xCD: case 0xD1: skip = 2; break;
            case 0xD4: skip = 2; break; //  fixext 1..16: type + data
            case 0xD5: skip = 3; break;
            case 0xD6: skip = 5; break;
            case 0xD7: skip = 9; break;
            case 0xD8: skip = 17; break;
            case 0xDC: case 0xDE: len_bytes = 2; break; //  array16, map16
            case 0xDD: case 0xDF: len_bytes = 4; break; //  array32, map32
            default: return false; //  0xC1, never used
            }
            // clang-format on
            if (len_bytes > size - pos)
                return false;
            uint64_t n = s_be(data + pos, len_bytes);
            pos += len_bytes;
            if (c == 0xDC || c == 0xDD)
                children = n;
            else if (c == 0xDE || c == 0xDF)
                children = 2 * n;
            else
                skip += n;
        }
        if (skip > size - pos)
            return false;
        pos += (size_t)skip;
        pending += children;
        if (pending > size - pos)
            return false;
    }
    return allow_trailing || pos == size;
}
