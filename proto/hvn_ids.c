/*  hvn_ids.c — message ids, instance ids and timestamps.

    A UUID4 is 16 random bytes with the version and variant bits set. The
    bytes come from a per-thread pool refilled by one getrandom() call every
    256 ids, because a syscall per id costs more than encoding and decoding
    a notification together. A forked child drops its inherited pool, so
    parent and child never hand out the same ids.
*/
#include "hvn_ids.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define S_POOL_SIZE 4096 //  Random bytes per refill

static __thread uint8_t s_pool[S_POOL_SIZE];      //  Random bytes of this thread
static __thread size_t s_pool_used = S_POOL_SIZE; //  Bytes handed out; full = refill
static __thread time_t s_ts_second = (time_t)-1;  //  Second cached in s_ts_prefix
static __thread char s_ts_prefix[20];             //  "YYYY-MM-DD HH:MM:SS"
static pthread_once_t s_atfork_once = PTHREAD_ONCE_INIT;

//  Returns nothing; the forked child's pool is stale and must be refilled.
static void s_atfork_child(void)
{
    s_pool_used = S_POOL_SIZE;
}

//  Returns nothing; registers s_atfork_child once per process.
static void s_atfork_register(void)
{
    pthread_atfork(NULL, NULL, s_atfork_child);
}

//  Returns nothing; fills len bytes at buf from the kernel or aborts (an id
//  that is not random would be worse than no process at all).
static void s_random_fill(uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t rc = getrandom(buf + done, len - done, 0);
        if (rc > 0)
            done += (size_t)rc;
        else if (rc < 0 && errno != EINTR)
            break;
    }
    if (done == len)
        return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && done < len) {
        ssize_t rc = read(fd, buf + done, len - done);
        if (rc > 0)
            done += (size_t)rc;
        else if (rc < 0 && errno != EINTR)
            break;
    }
    if (fd >= 0)
        close(fd);
    if (done < len) {
        fprintf(stderr, "hvn: no source of random bytes\n");
        abort();
    }
}

//  Returns nothing; out holds 16 random bytes with UUID4 version/variant.
void hvn_uuid4_raw(uint8_t out[16])
{
    if (s_pool_used + 16 > S_POOL_SIZE) {
        pthread_once(&s_atfork_once, s_atfork_register);
        s_random_fill(s_pool, S_POOL_SIZE);
        s_pool_used = 0;
    }
    memcpy(out, s_pool + s_pool_used, 16);
    memset(s_pool + s_pool_used, 0, 16);
    s_pool_used += 16;
    out[6] = (uint8_t)((out[6] & 0x0F) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);
}

//  Each byte's value as a hex digit with bit 8 set; 0 for a byte that is
//  not one
static const uint16_t s_hex_digit[256] = {
    ['0'] = 0x100, ['1'] = 0x101, ['2'] = 0x102, ['3'] = 0x103, ['4'] = 0x104, ['5'] = 0x105,
    ['6'] = 0x106, ['7'] = 0x107, ['8'] = 0x108, ['9'] = 0x109, ['a'] = 0x10A, ['b'] = 0x10B,
    ['c'] = 0x10C, ['d'] = 0x10D, ['e'] = 0x10E, ['f'] = 0x10F, ['A'] = 0x10A, ['B'] = 0x10B,
    ['C'] = 0x10C, ['D'] = 0x10D, ['E'] = 0x10E, ['F'] = 0x10F,
};

//  Where each of the 16 bytes starts in UUID text
static const uint8_t s_uuid_pos[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};

//  Returns nothing; out holds a fresh UUID4 as lowercase text and a NUL,
//  the text uuid_unparse_lower() writes (the test compares them), digit by
//  digit from a table: the library's formatter cost as much as the rest of
//  the message id.
void hvn_uuid4_str(char out[37])
{
    static const char hex[16] = "0123456789abcdef";
    uint8_t raw[16];
    hvn_uuid4_raw(raw);
    for (int i = 0; i < 16; i++) {
        out[s_uuid_pos[i]] = hex[raw[i] >> 4];
        out[s_uuid_pos[i] + 1] = hex[raw[i] & 0x0F];
    }
    out[8] = out[13] = out[18] = out[23] = '-';
    out[36] = '\0';
}

#define S_BYTES(c) (0x0101010101010101ULL * (c)) //  c in every byte

//  Returns the eight bytes at p as a word, the first in its low byte; with
//  half = true, the four at p then the four at p + 5 (a dash between).
static inline uint64_t s_word_le(const char *p, bool half)
{
    uint64_t w;
    if (half) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 5, 4);
        return le32toh(a) | (uint64_t)le32toh(b) << 32;
    }
    memcpy(&w, p, 8);
    return le64toh(w);
}

//  Returns 0 when the eight characters in w are hex digits, else not 0.
//  A byte below 0x80 is a digit when adding 0x80 - '0' sets its top bit
//  and adding 0x7F - '9' does not (with the top bits cleared no sum
//  carries into the next byte); a letter likewise, 'a'..'f' once its 0x20
//  bit is set.
static inline uint64_t s_not_hex8(uint64_t w)
{
    const uint64_t top = S_BYTES(0x80);
    uint64_t low = w & ~top;
    uint64_t digit = (low + S_BYTES(0x80 - '0')) & ~(low + S_BYTES(0x7F - '9'));
    uint64_t lower = low | S_BYTES(0x20);
    uint64_t letter = (lower + S_BYTES(0x80 - 'a')) & ~(lower + S_BYTES(0x7F - 'f'));
    return (w & top) | (~(digit | letter) & top);
}

//  Returns 0 with the bytes in out (when not NULL), -1 when not UUID text.
//  The 32 digits are checked as four words of eight (0-7, 9-12 with
//  14-17, 19-22 with 24-27, 28-35), then converted through the table.
int hvn_uuid_parse(const char *text, size_t len, uint8_t *out)
{
    if (!text || len != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
        text[23] != '-')
        return -1;
    uint64_t bad = s_not_hex8(s_word_le(text, false)) | s_not_hex8(s_word_le(text + 9, true)) |
                   s_not_hex8(s_word_le(text + 19, true)) | s_not_hex8(s_word_le(text + 28, false));
    if (bad)
        return -1;
    if (out) {
        const uint8_t *p = (const uint8_t *)text;
        for (int i = 0; i < 16; i++)
            out[i] =
                (uint8_t)(s_hex_digit[p[s_uuid_pos[i]]] << 4 | s_hex_digit[p[s_uuid_pos[i] + 1]]);
    }
    return 0;
}

//  Returns nothing; writes value as `width` decimal digits at out.
static void s_digits(char *out, long value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

//  Returns nothing; out holds "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) and a NUL.
void hvn_timestamp_now(char out[27])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != s_ts_second) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        s_digits(s_ts_prefix, (tm.tm_year + 1900L) % 10000, 4);
        s_ts_prefix[4] = '-';
        s_digits(s_ts_prefix + 5, tm.tm_mon + 1L, 2);
        s_ts_prefix[7] = '-';
        s_digits(s_ts_prefix + 8, tm.tm_mday, 2);
        s_ts_prefix[10] = ' ';
        s_digits(s_ts_prefix + 11, tm.tm_hour, 2);
        s_ts_prefix[13] = ':';
        s_digits(s_ts_prefix + 14, tm.tm_min, 2);
        s_ts_prefix[16] = ':';
        s_digits(s_ts_prefix + 17, tm.tm_sec, 2);
        s_ts_second = now.tv_sec;
    }
    memcpy(out, s_ts_prefix, 19);
    out[19] = '.';
    s_digits(out + 20, now.tv_nsec / 1000, 6);
    out[26] = '\0';
}
