/*  test_codec_end.c — the snapshot END body parser and the msgpack reader
    shared by every reader of peer-sent msgpack.

    END bodies are built with msgpack-c's packer, one malformation per case.
*/
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "fixtures.h"
#include "hvn_mpread.h"
#include "hvn_proto.h"

#define S_INST1 "01010101-0101-0101-0101-010101010101"
#define S_INST2 "02020202-0202-0202-0202-020202020202"

TestSuite(end, .init = fx_pack_setup, .fini = fx_pack_teardown, .timeout = 30);

//  Returns the reason hvn_end_decode gives for what was packed, with the
//  detail in *detail when not NULL; *end is cleared afterwards.
static hvn_reason_t s_decode(const char **detail)
{
    hvn_end_t end;
    hvn_reason_t reason = hvn_end_decode(fx_sbuf.data, fx_sbuf.size, &end, detail);
    if (reason != HVN_OK) {
        cr_assert_eq(end.publisher_count, 0);
        cr_assert_null(end.publishers);
    }
    hvn_end_clear(&end);
    return reason;
}

Test(end, decodes_broker_id_count_and_sorted_publishers)
{
    msgpack_pack_map(&fx_pk, 3);
    fx_str("broker_id");
    fx_str("b1");
    fx_str("count");
    msgpack_pack_int64(&fx_pk, 7);
    fx_str("publishers");
    msgpack_pack_map(&fx_pk, 2);
    fx_str(S_INST2);
    msgpack_pack_uint64(&fx_pk, 9);
    fx_str(S_INST1);
    msgpack_pack_uint64(&fx_pk, UINT64_MAX);
    hvn_end_t end;
    const char *detail = "unset";
    cr_assert_eq(hvn_end_decode(fx_sbuf.data, fx_sbuf.size, &end, &detail), HVN_OK);
    cr_assert_str_eq(detail, "");
    cr_assert_str_eq(end.broker_id, "b1");
    cr_assert_eq(end.count, 7);
    cr_assert_eq(end.publisher_count, 2);
    cr_assert_eq(end.publishers[0].instance[0], 0x01);
    cr_assert_eq(end.publishers[0].seq, UINT64_MAX);
    cr_assert_eq(end.publishers[1].instance[15], 0x02);
    cr_assert_eq(end.publishers[1].seq, 9);
    hvn_end_clear(&end);
    cr_assert_null(end.publishers);
    hvn_end_clear(&end); //  Twice is harmless
}

Test(end, unknown_keys_uppercase_uuids_and_no_publishers_are_accepted)
{
    msgpack_pack_map(&fx_pk, 4);
    fx_str("future");
    msgpack_pack_array(&fx_pk, 1);
    msgpack_pack_nil(&fx_pk);
    fx_str("publishers");
    msgpack_pack_map(&fx_pk, 1);
    fx_str("0D9A1B6C-3E2F-4A5B-8C7D-6E5F4A3B2C1D");
    msgpack_pack_uint64(&fx_pk, 0);
    fx_str("count");
    msgpack_pack_uint64(&fx_pk, 0);
    fx_str("broker_id");
    fx_str("b2");
    hvn_end_t end;
    cr_assert_eq(hvn_end_decode(fx_sbuf.data, fx_sbuf.size, &end, NULL), HVN_OK);
    uuid_t raw;
    uuid_parse("0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d", raw);
    cr_assert_eq(memcmp(end.publishers[0].instance, raw, 16), 0);
    hvn_end_clear(&end);

    msgpack_sbuffer_clear(&fx_sbuf);
    fx_pack_head(&fx_pk, 3, "b3", 0);
    fx_str("publishers");
    msgpack_pack_map(&fx_pk, 0);
    cr_assert_eq(hvn_end_decode(fx_sbuf.data, fx_sbuf.size, &end, NULL), HVN_OK);
    cr_assert_eq(end.publisher_count, 0);
    hvn_end_clear(&end);
}

//  One malformation of a part of an END body, as fx_pack_end builds it.
typedef struct {
    int kind;            //  fx_pack_end's kind for the part
    const char *name;    //  What is wrong with the part
    hvn_reason_t reason; //  What hvn_end_decode refuses it for
} s_bad_t;

//  Returns nothing; asserts that each of the count malformations of part
//  (0 broker_id, 1 count, 2 publishers), the other parts good, is refused
//  for its reason with the part's name as the detail.
static void s_assert_refused(int part, const s_bad_t *bad, size_t count)
{
    static const char *parts[] = {"broker_id", "count", "publishers"};
    for (size_t i = 0; i < count; i++) {
        int kinds[3] = {0, 0, 0};
        kinds[part] = bad[i].kind;
        msgpack_sbuffer_clear(&fx_sbuf);
        fx_pack_end(&fx_pk, kinds[0], kinds[1], kinds[2]);
        const char *detail = NULL;
        cr_assert_eq(s_decode(&detail), bad[i].reason, "%s", bad[i].name);
        cr_assert_str_eq(detail, parts[part], "%s", bad[i].name);
    }
}

Test(end, a_bad_broker_id_is_refused_naming_it)
{
    static const s_bad_t bad[] = {
        {1, "broker_id an int", HVN_R_WRONG_TYPE},
        {2, "broker_id empty", HVN_R_BAD_VALUE},
        {3, "broker_id not UTF-8", HVN_R_BAD_VALUE},
        {4, "broker_id too long", HVN_R_BAD_VALUE},
    };
    s_assert_refused(0, bad, sizeof(bad) / sizeof(bad[0]));
}

Test(end, a_bad_count_is_refused_naming_it)
{
    static const s_bad_t bad[] = {
        {1, "count negative", HVN_R_WRONG_TYPE},
        {2, "count as text", HVN_R_WRONG_TYPE},
    };
    s_assert_refused(1, bad, sizeof(bad) / sizeof(bad[0]));
}

Test(end, bad_publishers_are_refused_naming_them)
{
    static const s_bad_t bad[] = {
        {1, "negative seq", HVN_R_WRONG_TYPE},        {2, "key not a uuid", HVN_R_BAD_VALUE},
        {3, "publishers an array", HVN_R_WRONG_TYPE}, {4, "seq as text", HVN_R_WRONG_TYPE},
        {5, "instance twice", HVN_R_BAD_VALUE},       {6, "key not a string", HVN_R_WRONG_TYPE},
        {7, "short uuid", HVN_R_BAD_VALUE},
    };
    s_assert_refused(2, bad, sizeof(bad) / sizeof(bad[0]));
}

Test(end, missing_duplicate_and_non_map_roots_are_refused)
{
    const char *detail = NULL;
    fx_pack_head(&fx_pk, 2, "b1", 0);
    cr_assert_eq(s_decode(&detail), HVN_R_MISSING_KEY);
    cr_assert_str_eq(detail, "publishers");

    msgpack_sbuffer_clear(&fx_sbuf);
    fx_pack_head(&fx_pk, 4, "b1", 0);
    fx_str("count");
    msgpack_pack_uint64(&fx_pk, 1);
    fx_str("publishers");
    msgpack_pack_map(&fx_pk, 0);
    cr_assert_eq(s_decode(&detail), HVN_R_BAD_VALUE);
    cr_assert_str_eq(detail, "count");

    msgpack_sbuffer_clear(&fx_sbuf);
    msgpack_pack_array(&fx_pk, 1);
    msgpack_pack_int(&fx_pk, 1);
    cr_assert_eq(s_decode(&detail), HVN_R_NOT_MAP);
}

Test(end, garbage_trailing_bytes_and_huge_claims_are_msgpack_errors)
{
    hvn_end_t end;
    const char *detail = NULL;
    cr_assert_eq(hvn_end_decode("", 0, &end, &detail), HVN_R_MSGPACK);
    cr_assert_eq(hvn_end_decode(NULL, 0, &end, &detail), HVN_R_MSGPACK);
    cr_assert_eq(hvn_end_decode("\xc1", 1, &end, &detail), HVN_R_MSGPACK);
    cr_assert_eq(hvn_end_decode("\xdf\xff\xff\xff\xff", 5, &end, &detail), HVN_R_MSGPACK);
    cr_assert_str_eq(detail, "body");
    fx_pack_end(&fx_pk, 0, 0, 0);
    msgpack_pack_nil(&fx_pk);
    cr_assert_eq(s_decode(NULL), HVN_R_MSGPACK, "trailing nil");
    cr_assert_eq(hvn_end_decode(fx_sbuf.data, fx_sbuf.size - 2, &end, NULL), HVN_R_MSGPACK,
                 "truncated");
}

Test(end, publishers_over_the_limit_and_bodies_over_the_size_are_too_big)
{
    fx_pack_head(&fx_pk, 3, "b1", 0);
    fx_str("publishers");
    uint32_t n = HVN_END_PUBLISHERS_MAX + 1;
    msgpack_pack_map(&fx_pk, n);
    for (uint32_t i = 0; i < n; i++) {
        uuid_t raw = {0};
        memcpy(raw, &i, sizeof(i));
        char text[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(raw, text);
        fx_str(text);
        msgpack_pack_uint64(&fx_pk, i);
    }
    const char *detail = NULL;
    cr_assert_eq(s_decode(&detail), HVN_R_TOO_BIG);
    cr_assert_str_eq(detail, "publishers");

    size_t size = HVN_END_MAX_SIZE + 1;
    char *big = calloc(1, size);
    cr_assert(big);
    hvn_end_t end;
    cr_assert_eq(hvn_end_decode(big, size, &end, &detail), HVN_R_TOO_BIG);
    free(big);
}

Test(end, random_bytes_never_crash_and_never_pass)
{
    unsigned seed = 7;
    uint8_t buf[64];
    for (int round = 0; round < 20000; round++) {
        size_t size = (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < size; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        buf[0] = 0x83; //  A map of three, so the walk goes deeper than the root
        hvn_end_t end;
        hvn_reason_t reason = hvn_end_decode(buf, size, &end, NULL);
        hvn_end_clear(&end);
        cr_assert_neq(reason, HVN_OK);
    }
}

//  Returns true when the reader every peer-sent body goes through reads
//  the size bytes at data as one whole msgpack object.
static bool s_reads(const char *data, size_t size)
{
    hvni_mp_t tokens = {NULL, 0, 0};
    bool read = hvni_mp_read(&tokens, data, size) != NULL;
    hvni_mp_release(&tokens);
    return read;
}

Test(msgpack_reader, reads_one_whole_object_and_nothing_after_it)
{
    cr_assert(s_reads("\xc0", 1));
    cr_assert_not(s_reads("\xc0\xc0", 2), "trailing bytes");
    cr_assert_not(s_reads("", 0));
    cr_assert_not(s_reads(NULL, 0));
    cr_assert_not(s_reads("\x92\xc0", 2), "array short of an element");
    cr_assert(s_reads("\x92\xc0\xc0", 3));
    cr_assert_not(s_reads("\xdd\xff\xff\xff\xff\xc0", 6), "huge array claim");
    cr_assert_not(s_reads("\xdb\xff\xff\xff\xff", 5), "huge str claim");
    cr_assert_not(s_reads("\xc1", 1), "never-used byte");
    cr_assert(s_reads("\xa3"
                      "abc",
                      4));
    cr_assert_not(s_reads("\xa3"
                          "ab",
                          3));
}

Test(msgpack_reader, tokens_are_the_objects_in_document_order)
{
    //  {"a": [1, -2], "b": bin "xy"}
    static const char body[] = "\x82\xa1"
                               "a\x92\x01\xfe\xa1"
                               "b\xc4\x02xy";
    hvni_mp_t tokens = {NULL, 0, 0};
    const hvni_mp_tok_t *root = hvni_mp_read(&tokens, body, sizeof(body) - 1);
    cr_assert(root);
    cr_assert_eq(root->type, HVNI_MP_MAP);
    cr_assert_eq(root->size, 2);
    cr_assert_eq(root->span, 7);
    const hvni_mp_tok_t *array = root + 2;
    cr_assert_eq(array->type, HVNI_MP_ARRAY);
    cr_assert_eq(array->span, 3);
    cr_assert_eq(array[1].u64, 1);
    cr_assert_eq(array[2].type, HVNI_MP_NEGATIVE_INTEGER);
    cr_assert_eq(array[2].i64, -2);
    const hvni_mp_tok_t *bin = hvni_mp_next(hvni_mp_next(array));
    cr_assert_eq(bin->type, HVNI_MP_BIN);
    cr_assert_eq(bin->size, 2);
    cr_assert_eq(memcmp(bin->ptr, "xy", 2), 0);
    hvni_mp_release(&tokens);
}
