/*  test_broker_ring.c — the broker's replay ring (hvn_ring.h): entries
    kept by (instance, seq), ranges read in seq order, the oldest evicted
    when the bytes run out, and what it refuses to keep.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hvn_codec.h"
#include "hvn_ring.h"

static const uint8_t s_inst_a[16] = {0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0x41, 0xa1,
                                     0x81, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1};
static const uint8_t s_inst_b[16] = {0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0x42, 0xb2,
                                     0x82, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2};

//  Returns what hvn_ring_put returns for a notification of instance and
//  seq whose body is body_size bytes of the seq's low byte.
static int s_put(hvn_ring_t *ring, const uint8_t *instance, uint64_t seq, size_t body_size)
{
    uint8_t header[HVN_HEADER_SIZE] = {1, 1};
    for (int i = 0; i < 8; i++)
        header[2 + i] = (uint8_t)(seq >> (56 - 8 * i));
    memcpy(header + 10, instance, 16);
    uint8_t body[4096];
    cr_assert(body_size <= sizeof(body));
    memset(body, (int)(seq & 0xff), body_size);
    char topic[64];
    snprintf(topic, sizeof(topic), "compute_node.update@host-%llu", (unsigned long long)seq);
    return hvn_ring_put(ring, instance, seq, topic, strlen(topic), header, body, body_size);
}

//  What a walk collected
typedef struct {
    uint64_t seqs[64]; //  Seqs seen, in order
    size_t count;      //  How many
    int stop_after;    //  Return -1 after this many (0: never)
} s_walk_t;

//  Returns 0 to go on, -1 to stop; checks the item's bytes against its seq.
static int s_collect(const hvn_ring_item_t *item, void *arg)
{
    s_walk_t *walk = arg;
    char topic[64];
    snprintf(topic, sizeof(topic), "compute_node.update@host-%llu", (unsigned long long)item->seq);
    cr_expect_eq(item->topic_size, strlen(topic));
    cr_expect(memcmp(item->topic, topic, item->topic_size) == 0);
    cr_expect(memcmp(item->header + 10, item->instance, 16) == 0);
    for (size_t i = 0; i < item->body_size; i++)
        cr_expect_eq(item->body[i], (uint8_t)(item->seq & 0xff));
    walk->seqs[walk->count++] = item->seq;
    return walk->stop_after && (int)walk->count >= walk->stop_after ? -1 : 0;
}

Test(ring, range_is_read_in_seq_order_between_first_and_last)
{
    hvn_ring_t *ring = hvn_ring_new(1 << 20);
    cr_assert(ring);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        cr_assert_eq(s_put(ring, s_inst_a, seq, 100), 1);
        cr_assert_eq(s_put(ring, s_inst_b, seq * 2, 100), 1);
    }
    s_walk_t walk = {.count = 0};
    cr_assert_eq(hvn_ring_foreach(ring, s_inst_a, 3, 6, s_collect, &walk), 4);
    uint64_t expected[] = {3, 4, 5, 6};
    cr_assert_arr_eq(walk.seqs, expected, sizeof(expected));
    //  Instance b holds the even seqs 2..20: 5..9 holds 6 and 8
    walk = (s_walk_t){.count = 0};
    cr_assert_eq(hvn_ring_foreach(ring, s_inst_b, 5, 9, s_collect, &walk), 2);
    cr_expect_eq(walk.seqs[0], 6);
    cr_expect_eq(walk.seqs[1], 8);
    uint64_t first, last;
    cr_expect_eq(hvn_ring_span(ring, s_inst_b, &first, &last), 10);
    cr_expect_eq(first, 2);
    cr_expect_eq(last, 20);
    cr_expect_eq(hvn_ring_size(ring), 20);
    cr_expect_eq(hvn_ring_instances(ring), 2);
    hvn_ring_destroy(&ring);
    cr_expect_null(ring);
    hvn_ring_destroy(&ring);
}

Test(ring, unknown_instance_and_empty_ranges_hold_nothing)
{
    hvn_ring_t *ring = hvn_ring_new(1 << 20);
    cr_assert_eq(s_put(ring, s_inst_a, 5, 10), 1);
    s_walk_t walk = {.count = 0};
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_b, 1, 100, s_collect, &walk), 0);
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 6, 100, s_collect, &walk), 0);
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 1, 4, s_collect, &walk), 0);
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 6, 5, s_collect, &walk), 0);
    uint64_t first = 9, last = 9;
    cr_expect_eq(hvn_ring_span(ring, s_inst_b, &first, &last), 0);
    cr_expect_eq(first, 0);
    cr_expect_eq(last, 0);
    hvn_ring_destroy(&ring);
}

Test(ring, oldest_entries_are_evicted_when_the_bytes_run_out)
{
    //  Room for about ten 1000-byte bodies
    hvn_ring_t *ring = hvn_ring_new(10 * 1200);
    for (uint64_t seq = 1; seq <= 100; seq++)
        cr_assert_eq(s_put(ring, seq % 2 ? s_inst_a : s_inst_b, seq, 1000), 1);
    cr_expect_leq(hvn_ring_bytes(ring), hvn_ring_max_bytes(ring));
    size_t held = hvn_ring_size(ring);
    cr_expect(held >= 8 && held <= 10, "held %zu", held);
    cr_expect_eq(hvn_ring_evicted(ring), 100 - held);
    //  What is left is the newest, and each instance's span says so
    uint64_t first, last;
    size_t a = hvn_ring_span(ring, s_inst_a, &first, &last);
    cr_expect_eq(last, 99);
    cr_expect_eq(first, 99 - 2 * (a - 1));
    s_walk_t walk = {.count = 0};
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 1, 100, s_collect, &walk), (long)a);
    cr_expect_eq(walk.seqs[0], first);
    hvn_ring_destroy(&ring);
}

Test(ring, an_instance_whose_entries_are_all_evicted_is_forgotten)
{
    hvn_ring_t *ring = hvn_ring_new(4 * 1200);
    cr_assert_eq(s_put(ring, s_inst_a, 1, 1000), 1);
    for (uint64_t seq = 1; seq <= 10; seq++)
        cr_assert_eq(s_put(ring, s_inst_b, seq, 1000), 1);
    cr_expect_eq(hvn_ring_instances(ring), 1);
    uint64_t first, last;
    cr_expect_eq(hvn_ring_span(ring, s_inst_a, &first, &last), 0);
    //  It may come back with higher seqs
    cr_expect_eq(s_put(ring, s_inst_a, 2, 10), 1);
    cr_expect_eq(hvn_ring_span(ring, s_inst_a, &first, &last), 1);
    hvn_ring_destroy(&ring);
}

Test(ring, seqs_not_above_the_newest_and_entries_larger_than_the_ring_are_not_kept)
{
    hvn_ring_t *ring = hvn_ring_new(2000);
    cr_assert_eq(s_put(ring, s_inst_a, 7, 10), 1);
    cr_expect_eq(s_put(ring, s_inst_a, 7, 10), 0);
    cr_expect_eq(s_put(ring, s_inst_a, 3, 10), 0);
    cr_expect_eq(s_put(ring, s_inst_a, 4000, 4000), 0);
    cr_expect_eq(hvn_ring_size(ring), 1);
    hvn_ring_destroy(&ring);

    ring = hvn_ring_new(0);
    cr_expect_eq(s_put(ring, s_inst_a, 1, 0), 0);
    cr_expect_eq(hvn_ring_size(ring), 0);
    hvn_ring_destroy(&ring);
}

Test(ring, a_walk_stops_when_its_function_says_so)
{
    hvn_ring_t *ring = hvn_ring_new(1 << 20);
    for (uint64_t seq = 1; seq <= 10; seq++)
        s_put(ring, s_inst_a, seq, 5);
    s_walk_t walk = {.count = 0, .stop_after = 3};
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 1, 10, s_collect, &walk), -1);
    cr_expect_eq(walk.count, 3);
    hvn_ring_destroy(&ring);
}

Test(ring, many_entries_of_one_instance_grow_and_wrap_its_queue)
{
    hvn_ring_t *ring = hvn_ring_new(300 * (100 + 200));
    for (uint64_t seq = 1; seq <= 5000; seq++)
        cr_assert_eq(s_put(ring, s_inst_a, seq, 100), 1);
    uint64_t first, last;
    size_t held = hvn_ring_span(ring, s_inst_a, &first, &last);
    cr_expect_eq(last, 5000);
    cr_expect_eq(last - first + 1, held);
    s_walk_t walk = {.count = 0};
    cr_expect_eq(hvn_ring_foreach(ring, s_inst_a, 4990, 4999, s_collect, &walk), 10);
    for (size_t i = 0; i < 10; i++)
        cr_expect_eq(walk.seqs[i], 4990 + i);
    hvn_ring_destroy(&ring);
}
