/*  hvn_service.h — the broker's service protocol (PROTOCOL.md section 5),
    both sides of it in one place.

    A client's DEALER asks the broker's ROUTER with a request word and its
    frames; the broker answers with a reply word and its frames:

      SNAPSHOT prefix            ->  ITEM topic header body (x n), END body
      REPLAY instance first last ->  ITEM topic header body (x n), END body
      STATS                      ->  STATS body
      (anything refused)         ->  ERROR why

    The words are the constants below, used by the broker and the clients
    alike. The two msgpack bodies, END and STATS, are encoded and decoded
    here and nowhere else: END by hvn_end_encode / hvn_end_decode (and the
    _replay pair for REPLAY's END), STATS from and into an hvn_stats_t, a
    table of (name, value) rows that the broker fills once and that STATS,
    its log line at exit and any other report walk. msgpack types never
    appear here.
*/
#ifndef HVN_SERVICE_H_INCLUDED
#define HVN_SERVICE_H_INCLUDED

#include "hvn_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

//  Request words
#define HVN_SERVICE_SNAPSHOT "SNAPSHOT" //  + prefix: the cached fleet under a topic prefix
#define HVN_SERVICE_REPLAY "REPLAY"     //  + instance, first, last: notifications from the ring
#define HVN_SERVICE_STATS "STATS"       //  The broker's counters

//  Reply words (STATS answers with its own word)
#define HVN_SERVICE_ITEM "ITEM"   //  + topic, header, body: one message, frames as received
#define HVN_SERVICE_END "END"     //  + body: the end of a SNAPSHOT's or a REPLAY's items
#define HVN_SERVICE_ERROR "ERROR" //  + why: the request was refused (text)

//  Returns true when the size bytes at data are exactly the word (one of
//  the constants above). data may be NULL when size is 0.
bool hvn_service_is(const void *data, size_t size, const char *word);

// --------------------------------------------------------------------------
//  END

#define HVN_END_PUBLISHERS_MAX 262144       //  Publisher seqs an END may name
#define HVN_END_MAX_SIZE (16 * 1024 * 1024) //  Largest END (and STATS) body, bytes

//  One publisher instance's last seq, as a snapshot's END names it
typedef struct {
    uint8_t instance[16]; //  Publisher instance id, raw UUID
    uint64_t seq;         //  Its last seq the broker had seen
} hvn_end_publisher_t;

//  What an END body says (PROTOCOL.md section 5). A SNAPSHOT's END fills
//  broker_id, count and the publishers; a REPLAY's END broker_id, count,
//  first and last.
typedef struct {
    char broker_id[HVN_STR_MAX + 1]; //  The broker instance, 1..255 bytes UTF-8
    uint64_t count;                  //  ITEMs the broker sent before the END
    size_t publisher_count;          //  SNAPSHOT: entries in publishers
    hvn_end_publisher_t *publishers; //  SNAPSHOT: array; decoded: heap, owned by the
                                     //  hvn_end_t, sorted by instance, no duplicates
    uint64_t first;                  //  REPLAY: first seq of the instance the ring holds
    uint64_t last;                   //  REPLAY: last one (0, 0 when it holds none)
} hvn_end_t;

//  Returns a SNAPSHOT's END body as heap bytes (the caller frees them) with
//  its size in *size: {"broker_id", "count", "publishers": {UUID text in
//  lowercase: seq, ...}}, the publishers in the array's order. Returns NULL
//  when out of memory or when broker_id is empty.
uint8_t *hvn_end_encode(const hvn_end_t *end, size_t *size);

//  Returns a REPLAY's END body as heap bytes (the caller frees them) with
//  its size in *size: {"broker_id", "count", "first", "last"}. Returns NULL
//  when out of memory or when broker_id is empty.
uint8_t *hvn_end_encode_replay(const hvn_end_t *end, size_t *size);

//  Decodes a SNAPSHOT's END body: a msgpack map with exactly one each of
//  "broker_id" (non-empty UTF-8 str), "count" (unsigned int) and
//  "publishers" (a map of UUID text, any case, to unsigned int; at most
//  HVN_END_PUBLISHERS_MAX entries, no instance twice); other keys are
//  ignored, nothing may follow the map. Returns HVN_OK with *out filled
//  (free with hvn_end_clear), or the reason it was refused (HVN_R_TOO_BIG,
//  _MSGPACK, _NOT_MAP, _MISSING_KEY, _WRONG_TYPE, _BAD_VALUE) with *out
//  empty. When detail is not NULL it is set to a static string naming the
//  part that was wrong ("publishers", "count", ...), or "" on success.
hvn_reason_t hvn_end_decode(const void *data, size_t size, hvn_end_t *out, const char **detail);

//  Decodes a REPLAY's END body: as hvn_end_decode, with "first" and "last"
//  (unsigned ints, first <= last) instead of "publishers". Returns HVN_OK
//  with *out filled, or the reason (detail as above) with *out empty.
hvn_reason_t hvn_end_decode_replay(const void *data, size_t size, hvn_end_t *out,
                                   const char **detail);

//  Frees the publishers an hvn_end_decode filled in and empties *end.
//  Safe on an empty or already cleared hvn_end_t.
void hvn_end_clear(hvn_end_t *end);

// --------------------------------------------------------------------------
//  REPLAY request: ["REPLAY", instance, first, last]

#define HVN_REPLAY_SPAN_MAX 4096 //  Widest range (last - first + 1) a REPLAY may ask
#define HVN_SEQ_TEXT_MAX 20      //  Digits of the largest uint64

//  What a REPLAY asks: an instance's seqs first..last, both included
typedef struct {
    uint8_t instance[16]; //  Publisher instance id, raw UUID
    uint64_t first;       //  First seq wanted
    uint64_t last;        //  Last seq wanted, first <= last
} hvn_replay_t;

//  Decodes the three frames after the word: the instance as UUID text (36
//  bytes, any case), first and last as decimal text (1 to 20 digits, no
//  sign, no space, at most 2^64 - 1), first <= last, and the range at
//  most HVN_REPLAY_SPAN_MAX seqs wide. Returns NULL with *out filled, or
//  a static text saying what was wrong (the ERROR reply's text), with *out
//  untouched.
const char *hvn_replay_decode(const void *instance, size_t instance_size, const void *first,
                              size_t first_size, const void *last, size_t last_size,
                              hvn_replay_t *out);

//  Returns nothing; instance holds the request's instance as lowercase UUID
//  text, first and last its seqs as decimal text (all NUL-terminated): the
//  three frames a client sends after the word.
void hvn_replay_text(const hvn_replay_t *request, char instance[37],
                     char first[HVN_SEQ_TEXT_MAX + 1], char last[HVN_SEQ_TEXT_MAX + 1]);

// --------------------------------------------------------------------------
//  STATS: a table of (name, value) rows

#define HVN_STATS_MAX 4096    //  Rows a STATS body may hold
#define HVN_STAT_NAME_MAX 255 //  Longest row name, bytes

//  What a row's value is
typedef enum {
    HVN_STAT_UINT = 1, //  A counter or a size: unsigned
    HVN_STAT_INT,      //  A signed figure (a gauge, a duration)
    HVN_STAT_TEXT      //  A name or an id
} hvn_stat_type_t;

//  One row. Strings are NUL-terminated and owned by the table.
typedef struct {
    const char *name;     //  1..HVN_STAT_NAME_MAX bytes of UTF-8
    hvn_stat_type_t type; //  Which of the values holds
    uint64_t uint;        //  HVN_STAT_UINT
    int64_t sint;         //  HVN_STAT_INT
    const char *text;     //  HVN_STAT_TEXT; NULL otherwise
} hvn_stat_t;

typedef struct _hvn_stats_t hvn_stats_t;

//  Returns a new, empty table, or NULL when out of memory.
hvn_stats_t *hvn_stats_new(void);

//  Destroys a table; NULL-safe, sets *self_p to NULL.
void hvn_stats_destroy(hvn_stats_t **self_p);

//  Empties the table, keeping its memory for the next fill.
void hvn_stats_clear(hvn_stats_t *self);

//  Append a row; name (and text) are copied. Each returns 0, or -1 when
//  out of memory, when the table is full or when name is not 1 to
//  HVN_STAT_NAME_MAX bytes.
int hvn_stats_add_uint(hvn_stats_t *self, const char *name, uint64_t value);
int hvn_stats_add_int(hvn_stats_t *self, const char *name, int64_t value);
int hvn_stats_add_text(hvn_stats_t *self, const char *name, const char *text);

//  Returns the number of rows.
size_t hvn_stats_size(const hvn_stats_t *self);

//  Returns row index (in the order added or decoded); owned by the table,
//  valid until it is cleared or changed.
const hvn_stat_t *hvn_stats_at(const hvn_stats_t *self, size_t index);

//  Returns the row called name, or NULL.
const hvn_stat_t *hvn_stats_find(const hvn_stats_t *self, const char *name);

//  Returns the STATS body of the table as heap bytes (the caller frees
//  them) with its size in *size: a msgpack map of each row's name to its
//  value, in row order. Returns NULL when out of memory.
uint8_t *hvn_stats_encode(const hvn_stats_t *self, size_t *size);

//  Replaces the table's rows with those of a STATS body: a msgpack map of
//  at most HVN_STATS_MAX entries, each name a str of 1..HVN_STAT_NAME_MAX
//  bytes of UTF-8 without NUL, no name twice, each value an int or a UTF-8
//  str without NUL; an entry whose value is of another type is left out
//  (a reader ignores what it does not know); nothing may follow the map.
//  Returns HVN_OK, or the reason it was refused (HVN_R_TOO_BIG, _MSGPACK,
//  _NOT_MAP, _WRONG_TYPE, _BAD_VALUE) with the table empty; detail as for
//  hvn_end_decode ("body", "name" or "text").
hvn_reason_t hvn_stats_decode(hvn_stats_t *self, const void *data, size_t size,
                              const char **detail);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
