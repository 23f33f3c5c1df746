/*  test_service.c — the service protocol's words and bodies (hvn_service.h):
    END and REPLAY's END encoded as the broker packs them and decoded back,
    and STATS as a table of rows, encoded and decoded.

    Bodies the other side would send are built with msgpack-c's packer, so
    each case says in plain msgpack what is on the wire.
*/
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "fixtures.h"
#include "hvn_proto.h"

#define S_INST1 "01010101-0101-0101-0101-010101010101"
#define S_INST2 "02020202-0202-0202-0202-020202020202"

TestSuite(service, .init = fx_pack_setup, .fini = fx_pack_teardown, .timeout = 30);

Test(service, words_are_the_protocol_words)
{
    cr_assert(hvn_service_is("SNAPSHOT", 8, HVN_SERVICE_SNAPSHOT));
    cr_assert(hvn_service_is("REPLAY", 6, HVN_SERVICE_REPLAY));
    cr_assert(hvn_service_is("STATS", 5, HVN_SERVICE_STATS));
    cr_assert(hvn_service_is("ITEM", 4, HVN_SERVICE_ITEM));
    cr_assert(hvn_service_is("END", 3, HVN_SERVICE_END));
    cr_assert(hvn_service_is("ERROR", 5, HVN_SERVICE_ERROR));
    cr_assert_not(hvn_service_is("ENDS", 4, HVN_SERVICE_END));
    cr_assert_not(hvn_service_is("EN", 2, HVN_SERVICE_END));
    cr_assert_not(hvn_service_is("end", 3, HVN_SERVICE_END));
    cr_assert_not(hvn_service_is(NULL, 0, HVN_SERVICE_END));
}

Test(service, end_encodes_as_the_broker_always_packed_it)
{
    //  The broker's END before it was encoded here: count packed as an
    //  int64, the publishers in the seq map's order, UUIDs in lowercase
    hvn_end_publisher_t pubs[2];
    uuid_parse(S_INST2, pubs[0].instance);
    pubs[0].seq = 300;
    uuid_parse(S_INST1, pubs[1].instance);
    pubs[1].seq = UINT64_MAX;
    msgpack_pack_map(&fx_pk, 3);
    fx_str("broker_id");
    fx_str("b1");
    fx_str("count");
    msgpack_pack_int64(&fx_pk, 70000);
    fx_str("publishers");
    msgpack_pack_map(&fx_pk, 2);
    fx_str(S_INST2);
    msgpack_pack_uint64(&fx_pk, 300);
    fx_str(S_INST1);
    msgpack_pack_uint64(&fx_pk, UINT64_MAX);

    hvn_end_t end = {.broker_id = "b1", .count = 70000, .publisher_count = 2, .publishers = pubs};
    size_t size = 0;
    uint8_t *body = hvn_end_encode(&end, &size);
    cr_assert(body);
    cr_assert_eq(size, fx_sbuf.size);
    cr_assert_eq(memcmp(body, fx_sbuf.data, size), 0);

    hvn_end_t back;
    const char *detail = NULL;
    cr_assert_eq(hvn_end_decode(body, size, &back, &detail), HVN_OK);
    cr_assert_str_eq(detail, "");
    cr_assert_str_eq(back.broker_id, "b1");
    cr_assert_eq(back.count, 70000);
    cr_assert_eq(back.publisher_count, 2);
    cr_assert_eq(memcmp(back.publishers[0].instance, pubs[1].instance, 16), 0, "sorted");
    cr_assert_eq(back.publishers[0].seq, UINT64_MAX);
    cr_assert_eq(back.publishers[1].seq, 300);
    hvn_end_clear(&back);
    free(body);
}

Test(service, end_without_publishers_encodes_an_empty_map)
{
    hvn_end_t end = {.broker_id = "b1"};
    size_t size = 0;
    uint8_t *body = hvn_end_encode(&end, &size);
    cr_assert(body);
    hvn_end_t back;
    cr_assert_eq(hvn_end_decode(body, size, &back, NULL), HVN_OK);
    cr_assert_eq(back.count, 0);
    cr_assert_eq(back.publisher_count, 0);
    hvn_end_clear(&back);
    free(body);
    hvn_end_t nameless = {.count = 1};
    cr_assert_null(hvn_end_encode(&nameless, &size), "an END names its broker");
}

Test(service, replay_end_round_trips_and_is_not_a_snapshot_end)
{
    hvn_end_t end = {.broker_id = "b2", .count = 3, .first = 10, .last = 12};
    size_t size = 0;
    uint8_t *body = hvn_end_encode_replay(&end, &size);
    cr_assert(body);
    hvn_end_t back;
    const char *detail = NULL;
    cr_assert_eq(hvn_end_decode_replay(body, size, &back, &detail), HVN_OK);
    cr_assert_str_eq(back.broker_id, "b2");
    cr_assert_eq(back.count, 3);
    cr_assert_eq(back.first, 10);
    cr_assert_eq(back.last, 12);
    hvn_end_clear(&back);
    cr_assert_eq(hvn_end_decode(body, size, &back, &detail), HVN_R_MISSING_KEY);
    cr_assert_str_eq(detail, "publishers");
    free(body);

    fx_pack_head(&fx_pk, 4, "b2", 0);
    fx_str("first");
    msgpack_pack_uint64(&fx_pk, 0);
    fx_str("last");
    msgpack_pack_uint64(&fx_pk, 0);
    cr_assert_eq(hvn_end_decode_replay(fx_sbuf.data, fx_sbuf.size, &back, NULL), HVN_OK,
                 "0, 0: the ring holds none of that instance");
    hvn_end_clear(&back);
}

Test(service, replay_end_refusals_name_the_part)
{
    static const struct {
        const char *first_key; //  Key written where "first" goes
        int64_t first;         //  Its value
        const char *why;       //  The case
        hvn_reason_t reason;   //  Expected
        const char *detail;    //  Expected
    } cases[] = {
        {"first", 5, "first above last", HVN_R_BAD_VALUE, "first"},
        {"frist", 1, "first missing", HVN_R_MISSING_KEY, "first"},
        {"first", -1, "first negative", HVN_R_WRONG_TYPE, "first"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_sbuffer_clear(&fx_sbuf);
        fx_pack_head(&fx_pk, 4, "b2", 0);
        fx_str(cases[i].first_key);
        msgpack_pack_int64(&fx_pk, cases[i].first);
        fx_str("last");
        msgpack_pack_uint64(&fx_pk, 4);
        hvn_end_t back;
        const char *detail = NULL;
        cr_expect_eq(hvn_end_decode_replay(fx_sbuf.data, fx_sbuf.size, &back, &detail),
                     cases[i].reason, "%s", cases[i].why);
        cr_expect_str_eq(detail, cases[i].detail, "%s", cases[i].why);
        cr_expect_eq(back.first, 0, "%s: refused, empty", cases[i].why);
        hvn_end_clear(&back);
    }
}

Test(service, stats_table_encodes_every_row_in_order_and_decodes_back)
{
    hvn_stats_t *table = hvn_stats_new();
    cr_assert(table);
    cr_assert_eq(hvn_stats_add_uint(table, "received", 5), 0);
    cr_assert_eq(hvn_stats_add_uint(table, "refused.too_big", UINT64_MAX), 0);
    cr_assert_eq(hvn_stats_add_int(table, "subscriptions", -2), 0);
    cr_assert_eq(hvn_stats_add_int(table, "uptime_ms", 1234), 0);
    cr_assert_eq(hvn_stats_add_text(table, "broker_id", "b1"), 0);
    cr_assert_eq(hvn_stats_add_uint(table, "", 1), -1, "a row has a name");

    //  The body as the broker packed it by hand, map size counted
    msgpack_pack_map(&fx_pk, 5);
    fx_str("received");
    msgpack_pack_uint64(&fx_pk, 5);
    fx_str("refused.too_big");
    msgpack_pack_uint64(&fx_pk, UINT64_MAX);
    fx_str("subscriptions");
    msgpack_pack_int64(&fx_pk, -2);
    fx_str("uptime_ms");
    msgpack_pack_int64(&fx_pk, 1234);
    fx_str("broker_id");
    fx_str("b1");
    size_t size = 0;
    uint8_t *body = hvn_stats_encode(table, &size);
    cr_assert(body);
    cr_assert_eq(size, fx_sbuf.size);
    cr_assert_eq(memcmp(body, fx_sbuf.data, size), 0);

    hvn_stats_t *back = hvn_stats_new();
    const char *detail = NULL;
    cr_assert_eq(hvn_stats_decode(back, body, size, &detail), HVN_OK);
    cr_assert_str_eq(detail, "");
    cr_assert_eq(hvn_stats_size(back), 5);
    cr_assert_str_eq(hvn_stats_at(back, 0)->name, "received");
    cr_assert_eq(hvn_stats_at(back, 0)->type, HVN_STAT_UINT);
    cr_assert_eq(hvn_stats_at(back, 0)->uint, 5);
    cr_assert_eq(hvn_stats_find(back, "refused.too_big")->uint, UINT64_MAX);
    cr_assert_eq(hvn_stats_find(back, "subscriptions")->type, HVN_STAT_INT);
    cr_assert_eq(hvn_stats_find(back, "subscriptions")->sint, -2);
    cr_assert_eq(hvn_stats_find(back, "uptime_ms")->type, HVN_STAT_UINT, "a non-negative int");
    cr_assert_eq(hvn_stats_find(back, "uptime_ms")->uint, 1234);
    cr_assert_str_eq(hvn_stats_find(back, "broker_id")->text, "b1");
    cr_assert_null(hvn_stats_find(back, "forwarded"));
    free(body);
    hvn_stats_clear(table);
    cr_assert_eq(hvn_stats_size(table), 0);
    hvn_stats_destroy(&table);
    hvn_stats_destroy(&back);
    cr_assert_null(back);
    hvn_stats_destroy(&back);
}

Test(service, stats_decode_leaves_out_values_it_does_not_know)
{
    msgpack_pack_map(&fx_pk, 4);
    fx_str("ratio");
    msgpack_pack_double(&fx_pk, 0.5);
    fx_str("flags");
    msgpack_pack_array(&fx_pk, 1);
    msgpack_pack_true(&fx_pk);
    fx_str("received");
    msgpack_pack_uint64(&fx_pk, 7);
    fx_str("none");
    msgpack_pack_nil(&fx_pk);
    hvn_stats_t *table = hvn_stats_new();
    cr_assert_eq(hvn_stats_decode(table, fx_sbuf.data, fx_sbuf.size, NULL), HVN_OK);
    cr_assert_eq(hvn_stats_size(table), 1);
    cr_assert_eq(hvn_stats_find(table, "received")->uint, 7);
    hvn_stats_destroy(&table);
}

Test(service, stats_decode_refusals_leave_the_table_empty)
{
    static const struct {
        const char *why;     //  The case
        const char *bytes;   //  The body
        size_t size;         //  Its bytes
        hvn_reason_t reason; //  Expected
        const char *detail;  //  Expected
    } cases[] = {
        {"not msgpack", "\xc1", 1, HVN_R_MSGPACK, "body"},
        {"empty", "", 0, HVN_R_MSGPACK, "body"},
        {"truncated", "\x81\xa1x", 3, HVN_R_MSGPACK, "body"},
        {"trailing bytes", "\x80\xc0", 2, HVN_R_MSGPACK, "body"},
        {"huge map claim", "\xdf\xff\xff\xff\xff", 5, HVN_R_MSGPACK, "body"},
        {"an array", "\x91\x01", 2, HVN_R_NOT_MAP, "body"},
        {"a name not a str", "\x81\x01\x01", 3, HVN_R_WRONG_TYPE, "name"},
        {"an empty name", "\x81\xa0\x01", 3, HVN_R_BAD_VALUE, "name"},
        {"a name with NUL", "\x81\xa2x\0\x01", 5, HVN_R_BAD_VALUE, "name"},
        {"a name twice", "\x82\xa1x\x01\xa1x\x02", 7, HVN_R_BAD_VALUE, "name"},
        {"text not UTF-8", "\x81\xa1x\xa1\xff", 5, HVN_R_BAD_VALUE, "text"},
    };
    hvn_stats_t *table = hvn_stats_new();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hvn_stats_add_uint(table, "left", 1);
        const char *detail = NULL;
        cr_expect_eq(hvn_stats_decode(table, cases[i].bytes, cases[i].size, &detail),
                     cases[i].reason, "%s", cases[i].why);
        cr_expect_str_eq(detail, cases[i].detail, "%s", cases[i].why);
        cr_expect_eq(hvn_stats_size(table), 0, "%s", cases[i].why);
    }
    hvn_stats_destroy(&table);
}
