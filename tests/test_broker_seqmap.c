/*  test_broker_seqmap.c — the broker's map of publisher instance -> last seq,
    which feeds a snapshot's END frame, and the two bounds that keep it small.
*/
#include <criterion/criterion.h>
#include <string.h>

#include "hvn_seqmap.h"

static hvn_seqmap_t *map;

//  Returns nothing; each test starts with an empty map capped at 4.
static void s_setup(void)
{
    map = hvn_seqmap_new(4);
    cr_assert(map);
}

//  Returns nothing; the map is destroyed and its pointer nulled.
static void s_teardown(void)
{
    hvn_seqmap_destroy(&map);
    cr_assert_null(map);
}

TestSuite(seqmap, .init = s_setup, .fini = s_teardown);

//  Returns nothing; id holds 16 bytes all equal to n.
static void s_id(uint8_t id[16], int n)
{
    memset(id, n, 16);
}

Test(seqmap, keeps_the_highest_seq_of_each_instance)
{
    uint8_t a[16], b[16];
    s_id(a, 1);
    s_id(b, 2);
    cr_assert_eq(hvn_seqmap_update(map, a, 5, 0, 0), 0);
    cr_assert_eq(hvn_seqmap_update(map, a, 3, 0, 0), 0); //  An older sync
    cr_assert_eq(hvn_seqmap_update(map, b, 9, 0, 0), 0);
    uint64_t seq = 0;
    cr_assert_eq(hvn_seqmap_get(map, a, &seq), 1);
    cr_assert_eq(seq, 5);
    cr_assert_eq(hvn_seqmap_get(map, b, &seq), 1);
    cr_assert_eq(seq, 9);
    cr_assert_eq(hvn_seqmap_size(map), 2);
}

Test(seqmap, heartbeat_of_an_unknown_instance_adds_nothing)
{
    uint8_t a[16];
    s_id(a, 1);
    cr_assert_eq(hvn_seqmap_touch(map, a, 10000, 0), 0);
    uint64_t seq;
    cr_assert_eq(hvn_seqmap_get(map, a, &seq), 0);
    cr_assert_eq(hvn_seqmap_size(map), 0);
}

Test(seqmap, never_holds_more_than_its_cap)
{
    uint8_t id[16];
    for (int n = 1; n <= 4; n++) {
        s_id(id, n);
        cr_assert_eq(hvn_seqmap_update(map, id, 1, 0, 0), 0);
    }
    s_id(id, 5);
    cr_assert_eq(hvn_seqmap_update(map, id, 1, 0, 0), -1);
    cr_assert_eq(hvn_seqmap_size(map), 4);
    s_id(id, 4); //  Known instances still update
    cr_assert_eq(hvn_seqmap_update(map, id, 2, 0, 0), 0);
}

Test(seqmap, forgets_instances_silent_for_too_many_intervals)
{
    uint8_t quiet[16], chatty[16], slow[16];
    s_id(quiet, 1);
    s_id(chatty, 2);
    s_id(slow, 3);
    hvn_seqmap_update(map, quiet, 1, 0, 0);
    hvn_seqmap_update(map, chatty, 1, 0, 0);
    hvn_seqmap_update(map, slow, 1, 0, 0);
    hvn_seqmap_touch(map, slow, 60000, 0); //  Announces a long interval
    cr_assert_eq(hvn_seqmap_touch(map, chatty, 1000, 5000), 1);
    cr_assert_eq(hvn_seqmap_expire(map, 10000, 1000, 10), 0); //  Not yet 10 s silent
    cr_assert_eq(hvn_seqmap_expire(map, 10001, 1000, 10), 1); //  quiet is gone
    uint64_t seq;
    cr_assert_eq(hvn_seqmap_get(map, quiet, &seq), 0);
    cr_assert_eq(hvn_seqmap_get(map, chatty, &seq), 1);
    cr_assert_eq(hvn_seqmap_get(map, slow, &seq), 1);
    cr_assert_eq(hvn_seqmap_expire(map, 600001, 1000, 10), 2);
    cr_assert_eq(hvn_seqmap_size(map), 0);
}

Test(seqmap, an_absurd_announced_interval_does_not_keep_an_instance_forever)
{
    uint8_t id[16];
    s_id(id, 7);
    hvn_seqmap_update(map, id, 1, 0, 0);
    hvn_seqmap_touch(map, id, INT64_MAX, 0);
    cr_assert_eq(hvn_seqmap_expire(map, INT64_MAX / 2, 1000, 10), 1);
}

//  Returns 0; adds seq to the uint64_t at arg.
static int s_sum(const uint8_t instance[16], uint64_t seq, void *arg)
{
    (void)instance;
    *(uint64_t *)arg += seq;
    return 0;
}

Test(seqmap, walk_visits_every_instance)
{
    uint8_t id[16];
    for (int n = 1; n <= 3; n++) {
        s_id(id, n);
        hvn_seqmap_update(map, id, (uint64_t)n * 10, 0, 0);
    }
    uint64_t sum = 0;
    cr_assert_eq(hvn_seqmap_foreach(map, s_sum, &sum), 3);
    cr_assert_eq(sum, 60);
}

Test(seqmap, an_instance_keeps_the_clock_of_its_first_update)
{
    uint8_t a[16] = {1}, b[16] = {2};
    uint64_t since = 0;
    cr_assert_eq(hvn_seqmap_since(map, a, &since), 0);
    hvn_seqmap_update(map, a, 1, 0, 10);
    hvn_seqmap_update(map, a, 2, 0, 30);
    hvn_seqmap_update(map, b, 1, 0, 20);
    cr_assert_eq(hvn_seqmap_since(map, a, &since), 1);
    cr_assert_eq(since, 10);
    cr_assert_eq(hvn_seqmap_since(map, b, &since), 1);
    cr_assert_eq(since, 20);
}

Test(seqmap, an_instance_forgotten_after_its_last_update_comes_back_afresh)
{
    uint8_t a[16], b[16];
    s_id(a, 1);
    s_id(b, 2);
    cr_assert_eq(hvn_seqmap_update(map, b, 3, 5000, 1), 0);
    cr_assert_eq(hvn_seqmap_update(map, a, 7, 0, 2), 0); //  The last update: a
    cr_assert_eq(hvn_seqmap_expire(map, 10001, 1000, 10), 1);
    uint64_t seq = 0, since = 0;
    cr_assert_eq(hvn_seqmap_get(map, a, &seq), 0);
    cr_assert_eq(hvn_seqmap_update(map, a, 2, 10001, 3), 0);
    cr_assert_eq(hvn_seqmap_get(map, a, &seq), 1);
    cr_assert_eq(seq, 2); //  Not the 7 of the forgotten record
    cr_assert_eq(hvn_seqmap_since(map, a, &since), 1);
    cr_assert_eq(since, 3);
    cr_assert_eq(hvn_seqmap_update(map, b, 4, 10001, 4), 0);
    cr_assert_eq(hvn_seqmap_get(map, b, &seq), 1);
    cr_assert_eq(seq, 4);
    cr_assert_eq(hvn_seqmap_size(map), 2);
}
