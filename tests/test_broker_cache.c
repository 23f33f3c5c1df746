/*  test_broker_cache.c — the broker's last-value cache and its id table.

    The cache is checked against what PROTOCOL.md section 5 asks of it
    (last frames per node, exactly as stored; deletes remove; prefix walks)
    and against the project's memory target (≤ 1 KiB per node for ~600-byte
    bodies), with its own byte count compared to what it holds. The id
    table is checked against a plain array model through many inserts and
    removals, with keys that are deliberately not random.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_cache.h"
#include "hvn_idmap.h"

#define S_HEADER_FILL 0x5A

static hvn_cache_t *cache;

//  Returns nothing; each test starts with an empty cache.
static void s_setup(void)
{
    cache = hvn_cache_new();
    cr_assert(cache);
}

//  Returns nothing; the cache is destroyed and its pointer nulled.
static void s_teardown(void)
{
    hvn_cache_destroy(&cache);
    cr_assert_null(cache);
}

TestSuite(cache, .init = s_setup, .fini = s_teardown);

//  Returns nothing; key holds 16 bytes numbered n (sequential, not random).
static void s_key(uint8_t key[16], uint32_t n)
{
    memset(key, 0, 16);
    memcpy(key + 12, &n, 4);
}

//  Returns what hvn_cache_put returns, for a node n with the given topic
//  and a body of body_size bytes filled with `fill`.
static int s_put(uint32_t n, const char *topic, size_t body_size, uint8_t fill)
{
    uint8_t key[16], header[HVN_HEADER_SIZE];
    s_key(key, n);
    memset(header, S_HEADER_FILL, sizeof(header));
    header[2] = fill;
    uint8_t *body = malloc(body_size ? body_size : 1);
    cr_assert(body);
    memset(body, fill, body_size);
    int rc = hvn_cache_put(cache, key, topic, strlen(topic), header, body, body_size);
    free(body);
    return rc;
}

Test(cache, new_entry_then_replacement)
{
    cr_assert_eq(s_put(1, "compute_node.create@cmp-001", 600, 'a'), 1);
    cr_assert_eq(s_put(1, "compute_node.update@cmp-001", 610, 'b'), 0);
    cr_assert_eq(hvn_cache_size(cache), 1);
}

Test(cache, lookup_returns_the_last_frames_exactly)
{
    s_put(7, "compute_node.create@cmp-007", 600, 'a');
    s_put(7, "compute_node.update@cmp-007", 590, 'b');
    uint8_t key[16];
    s_key(key, 7);
    hvn_cache_item_t item;
    cr_assert_eq(hvn_cache_lookup(cache, key, &item), 1);
    cr_assert_eq(item.topic_size, strlen("compute_node.update@cmp-007"));
    cr_assert_eq(memcmp(item.topic, "compute_node.update@cmp-007", item.topic_size), 0);
    cr_assert_eq(item.header[0], S_HEADER_FILL);
    cr_assert_eq(item.header[2], 'b');
    cr_assert_eq(item.body_size, 590);
    for (size_t i = 0; i < item.body_size; i++)
        cr_assert_eq(item.body[i], 'b');
    cr_assert_eq(memcmp(item.key, key, 16), 0);
}

Test(cache, lookup_of_an_absent_node_finds_nothing)
{
    uint8_t key[16];
    s_key(key, 99);
    hvn_cache_item_t item;
    cr_assert_eq(hvn_cache_lookup(cache, key, &item), 0);
}

Test(cache, delete_removes_the_entry_once)
{
    s_put(3, "compute_node.create@cmp-003", 100, 'x');
    uint8_t key[16];
    s_key(key, 3);
    cr_assert_eq(hvn_cache_delete(cache, key), 1);
    cr_assert_eq(hvn_cache_delete(cache, key), 0);
    hvn_cache_item_t item;
    cr_assert_eq(hvn_cache_lookup(cache, key, &item), 0);
    cr_assert_eq(hvn_cache_size(cache), 0);
}

Test(cache, a_growing_and_shrinking_body_is_stored_whole)
{
    uint8_t key[16];
    s_key(key, 5);
    hvn_cache_item_t item;
    size_t sizes[] = {10, 600, 4000, 20, 65536, 1, 0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t fill = (uint8_t)('a' + i);
        s_put(5, "compute_node.update@cmp-005", sizes[i], fill);
        cr_assert_eq(hvn_cache_lookup(cache, key, &item), 1);
        cr_assert_eq(item.body_size, sizes[i]);
        for (size_t j = 0; j < item.body_size; j++)
            cr_assert_eq(item.body[j], fill);
        cr_assert_eq(item.header[2], fill);
    }
    cr_assert_eq(hvn_cache_size(cache), 1);
}

//  Counts the items a walk visits, checking each topic has the prefix.
typedef struct {
    const char *prefix; //  Expected prefix
    int seen;           //  Items visited
    int stop_after;     //  Stop the walk after this many; 0 = never
} s_walk_t;

//  Returns 0 to go on, -1 once stop_after items were seen.
static int s_walk_fn(const hvn_cache_item_t *item, void *arg)
{
    s_walk_t *walk = arg;
    size_t len = strlen(walk->prefix);
    cr_assert_geq(item->topic_size, len);
    cr_assert_eq(memcmp(item->topic, walk->prefix, len), 0);
    walk->seen++;
    return walk->stop_after && walk->seen >= walk->stop_after ? -1 : 0;
}

//  Returns what hvn_cache_foreach returns for prefix.
static long s_walk(const char *prefix, s_walk_t *walk)
{
    walk->prefix = prefix;
    return hvn_cache_foreach(cache, prefix, strlen(prefix), s_walk_fn, walk);
}

Test(cache, prefix_walk_visits_exactly_the_matching_topics)
{
    for (uint32_t n = 0; n < 30; n++) {
        char topic[64];
        snprintf(topic, sizeof(topic), "compute_node.%s@cmp-%03u", n % 3 ? "update" : "create", n);
        s_put(n, topic, 50, 'z');
    }
    s_walk_t all = {0}, updates = {0}, one = {0}, none = {0};
    cr_assert_eq(s_walk("", &all), 30);
    cr_assert_eq(all.seen, 30);
    cr_assert_eq(s_walk("compute_node.update", &updates), 20);
    cr_assert_eq(s_walk("compute_node.create@cmp-003", &one), 1);
    cr_assert_eq(s_walk("compute_node.delete", &none), 0);
    cr_assert_eq(none.seen, 0);
}

Test(cache, prefix_longer_than_every_topic_matches_nothing)
{
    s_put(1, "a@b", 5, 'q');
    s_walk_t walk = {0};
    cr_assert_eq(s_walk("a@bc", &walk), 0);
}

Test(cache, walk_stops_when_the_callback_says_so)
{
    for (uint32_t n = 0; n < 10; n++)
        s_put(n, "compute_node.update@h", 5, 'q');
    s_walk_t walk = {.stop_after = 3};
    cr_assert_eq(s_walk("", &walk), -1);
    cr_assert_eq(walk.seen, 3);
}

Test(cache, bytes_grow_with_entries_and_return_when_they_go)
{
    size_t empty = hvn_cache_bytes(cache);
    cr_assert_gt(empty, 0);
    s_put(1, "compute_node.create@cmp-001", 600, 'a');
    size_t one = hvn_cache_bytes(cache);
    cr_assert_geq(one, empty + 600 + 26 + strlen("compute_node.create@cmp-001"));
    s_put(1, "compute_node.update@cmp-001", 100000, 'b');
    cr_assert_geq(hvn_cache_bytes(cache), empty + 100000);
    s_put(1, "compute_node.update@cmp-001", 600, 'c');
    cr_assert_lt(hvn_cache_bytes(cache), empty + 2000);
    uint8_t key[16];
    s_key(key, 1);
    hvn_cache_delete(cache, key);
    cr_assert_eq(hvn_cache_bytes(cache), empty);
}

Test(cache, a_hundred_thousand_nodes_fit_in_a_kibibyte_each)
{
    const uint32_t nodes = 100000;
    for (uint32_t n = 0; n < nodes; n++) {
        char topic[64];
        snprintf(topic, sizeof(topic), "compute_node.update@cmp-%05u", n);
        cr_assert_eq(s_put(n, topic, 600, (uint8_t)n), 1);
    }
    cr_assert_eq(hvn_cache_size(cache), nodes);
    size_t bytes = hvn_cache_bytes(cache);
    cr_assert_leq(bytes / nodes, 1024, "%zu bytes per node", bytes / nodes);
    //  Honest: at least the payload itself
    cr_assert_geq(bytes / nodes, 600 + 26 + 29);
    for (uint32_t n = 0; n < nodes; n += 2) {
        uint8_t key[16];
        s_key(key, n);
        cr_assert_eq(hvn_cache_delete(cache, key), 1);
    }
    cr_assert_eq(hvn_cache_size(cache), nodes / 2);
    for (uint32_t n = 1; n < nodes; n += 2) {
        uint8_t key[16];
        s_key(key, n);
        hvn_cache_item_t item;
        cr_assert_eq(hvn_cache_lookup(cache, key, &item), 1, "node %u lost", n);
        cr_assert_eq(item.body[0], (uint8_t)n);
    }
}

Test(cache, destroy_is_null_safe_and_idempotent)
{
    hvn_cache_t *other = NULL;
    hvn_cache_destroy(&other);
    other = hvn_cache_new();
    s_put(1, "a@b", 3, 'x');
    hvn_cache_destroy(&other);
    cr_assert_null(other);
    hvn_cache_destroy(&other);
}

// --------------------------------------------------------------------------
//  Pruning by a publisher heartbeat's node list

//  Returns what hvn_cache_put returns, for node n on `host` sent by
//  publisher instance `who` (16 bytes of that value) with `seq`.
static int s_put_from(uint32_t n, const char *host, uint8_t who, uint64_t seq)
{
    hvn_header_t h = {.version = HVN_WIRE_VERSION, .kind = HVN_KIND_NOTIFICATION, .seq = seq};
    memset(h.instance, who, 16);
    uint8_t key[16], header[HVN_HEADER_SIZE];
    s_key(key, n);
    hvn_header_pack(&h, header);
    char topic[64];
    snprintf(topic, sizeof(topic), "compute_node.update@%s", host);
    return hvn_cache_put(cache, key, topic, strlen(topic), header, "body", 4);
}

//  Returns 1 when node n is cached, else 0.
static int s_has(uint32_t n)
{
    uint8_t key[16];
    s_key(key, n);
    hvn_cache_item_t item;
    return hvn_cache_lookup(cache, key, &item);
}

Test(cache, prune_removes_the_hosts_nodes_not_listed_and_nothing_else)
{
    s_put_from(1, "cmp-a", 7, 1);
    s_put_from(2, "cmp-a", 7, 2);
    s_put_from(3, "cmp-a", 7, 3);
    s_put_from(4, "cmp-b", 8, 1);
    uint8_t listed[2][16], instance[16];
    s_key(listed[0], 3);
    s_key(listed[1], 1);
    memset(instance, 7, 16);
    cr_assert_eq(
        hvn_cache_prune(cache, "cmp-a", (const uint8_t(*)[16])listed, 2, instance, 3, NULL, NULL),
        1);
    cr_assert(s_has(1) && !s_has(2) && s_has(3) && s_has(4));
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-a"), 2);
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-b"), 1);
    //  The same list again removes nothing more
    cr_assert_eq(
        hvn_cache_prune(cache, "cmp-a", (const uint8_t(*)[16])listed, 2, instance, 3, NULL, NULL),
        0);
}

Test(cache, prune_spares_what_the_same_instance_sent_after_the_heartbeat)
{
    s_put_from(1, "cmp-a", 7, 5);  //  After the heartbeat's seq 4: spared
    s_put_from(2, "cmp-a", 7, 4);  //  At its seq, not listed: deleted since
    s_put_from(3, "cmp-a", 9, 50); //  Another (older) instance: gone
    uint8_t instance[16];
    memset(instance, 7, 16);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-a", NULL, 0, instance, 4, NULL, NULL), 2);
    cr_assert(s_has(1) && !s_has(2) && !s_has(3));
}

//  The newer callback of the tests: instance bytes of value 9 are newer
//  than the heartbeat's, any other older.
static int s_nines_are_newer(const uint8_t instance[16], void *arg)
{
    (void)arg;
    return instance[0] == 9;
}

Test(cache, prune_spares_the_nodes_of_a_newer_instance_and_not_of_an_older_one)
{
    s_put_from(1, "cmp-a", 9, 1); //  A successor's node: a late heartbeat keeps it
    s_put_from(2, "cmp-a", 5, 1); //  A predecessor's node, not listed: gone
    s_put_from(3, "cmp-a", 7, 9); //  Its own, after the heartbeat: kept
    uint8_t instance[16];
    memset(instance, 7, 16);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-a", NULL, 0, instance, 4, s_nines_are_newer, NULL), 1);
    cr_assert(s_has(1) && !s_has(2) && s_has(3));
}

Test(cache, an_empty_list_empties_the_host_and_an_unknown_host_is_a_no_op)
{
    for (uint32_t n = 0; n < 100; n++)
        s_put_from(n, "cmp-a", 7, n + 1);
    uint8_t instance[16];
    memset(instance, 7, 16);
    size_t full = hvn_cache_bytes(cache);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-x", NULL, 0, instance, 0, NULL, NULL), 0);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-a", NULL, 0, instance, 100, NULL, NULL), 100);
    cr_assert_eq(hvn_cache_size(cache), 0);
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-a"), 0);
    cr_assert_lt(hvn_cache_bytes(cache), full - 100 * 40, "entries and host index freed");
}

Test(cache, a_node_that_changes_host_is_pruned_by_its_new_host_only)
{
    s_put_from(1, "cmp-a", 7, 1);
    s_put_from(1, "cmp-b", 8, 1);
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-a"), 0);
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-b"), 1);
    uint8_t instance[16];
    memset(instance, 7, 16);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-a", NULL, 0, instance, 1, NULL, NULL), 0);
    cr_assert(s_has(1));
    memset(instance, 8, 16);
    cr_assert_eq(hvn_cache_prune(cache, "cmp-b", NULL, 0, instance, 1, NULL, NULL), 1);
    cr_assert(!s_has(1));
}

Test(cache, prune_keeps_the_host_index_exact_through_replacements_and_deletes)
{
    //  Bodies that grow make the cache move entries to new blocks: the
    //  host index must follow them.
    uint8_t listed[500][16], instance[16];
    memset(instance, 7, 16);
    for (uint32_t n = 0; n < 1000; n++)
        s_put_from(n, n % 2 ? "cmp-odd" : "cmp-even", 7, n + 1);
    for (uint32_t n = 0; n < 1000; n += 3)
        cr_assert_eq(s_put(n,
                           n % 2 ? "compute_node.update@cmp-odd" : "compute_node.update@cmp-even",
                           2000, 'z'),
                     0);
    for (uint32_t n = 0; n < 1000; n += 5) {
        uint8_t key[16];
        s_key(key, n);
        hvn_cache_delete(cache, key);
    }
    size_t count = 0;
    for (uint32_t n = 1; n < 1000; n += 2)
        if (n % 5 && n % 7)
            s_key(listed[count++], n);
    size_t before = hvn_cache_host_size(cache, "cmp-odd");
    size_t removed = hvn_cache_prune(cache, "cmp-odd", (const uint8_t(*)[16])listed, count,
                                     instance, 5000, NULL, NULL);
    cr_assert_eq(before - removed, count);
    for (uint32_t n = 1; n < 1000; n += 2)
        cr_assert_eq(s_has(n), n % 5 && n % 7, "node %u", n);
    cr_assert_eq(hvn_cache_host_size(cache, "cmp-even"), 500 - 100);
}

Test(cache, an_update_in_place_keeps_the_frames_and_the_host_index_exact)
{
    //  The same topic again, then a topic of the same length naming
    //  another host, then one naming the first host again
    static const char *const topics[] = {
        "compute_node.update@cmp-001", "compute_node.update@cmp-001", "compute_node.update@cmp-002",
        "compute_node.update@cmp-001", "compute_node.create@cmp-001"};
    static const char *const hosts[] = {"cmp-001", "cmp-001", "cmp-002", "cmp-001", "cmp-001"};
    cr_assert_eq(s_put(4, "compute_node.create@cmp-001", 600, 'a'), 1);
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        uint8_t fill = (uint8_t)('b' + i);
        cr_assert_eq(s_put(4, topics[i], 600 + i, fill), 0);
        uint8_t key[16];
        s_key(key, 4);
        hvn_cache_item_t item;
        cr_assert_eq(hvn_cache_lookup(cache, key, &item), 1);
        cr_assert_eq(item.topic_size, strlen(topics[i]));
        cr_assert_eq(memcmp(item.topic, topics[i], item.topic_size), 0);
        cr_assert_eq(item.header[2], fill);
        cr_assert_eq(item.body_size, 600 + i);
        for (size_t j = 0; j < item.body_size; j++)
            cr_assert_eq(item.body[j], fill);
        cr_assert_eq(hvn_cache_host_size(cache, hosts[i]), 1, "step %zu", i);
        cr_assert_eq(
            hvn_cache_host_size(cache, strcmp(hosts[i], "cmp-001") ? "cmp-001" : "cmp-002"), 0,
            "step %zu", i);
    }
    cr_assert_eq(hvn_cache_size(cache), 1);
}

// --------------------------------------------------------------------------
//  The id table under the cache

typedef struct {
    uint8_t key[16]; //  First, as the table requires
    int present;     //  In the table, per the model
} s_item_t;

Test(idmap, agrees_with_a_model_through_inserts_and_removals)
{
    enum { N = 5000 };
    static s_item_t items[N];
    hvn_idmap_t *map = hvn_idmap_new();
    cr_assert(map);
    for (uint32_t i = 0; i < N; i++) {
        s_key(items[i].key, i * 4096); //  Keys differing only in a few bits
        items[i].present = 0;
    }
    unsigned seed = 12345;
    size_t model_size = 0;
    for (int round = 0; round < 200000; round++) {
        seed = seed * 1103515245u + 12345u;
        s_item_t *item = &items[(seed >> 8) % N];
        if (item->present) {
            cr_assert_eq(hvn_idmap_remove(map, item->key), item);
            item->present = 0;
            model_size--;
        } else {
            cr_assert_null(hvn_idmap_lookup(map, item->key));
            cr_assert_eq(hvn_idmap_insert(map, item), 0);
            item->present = 1;
            model_size++;
        }
    }
    cr_assert_eq(hvn_idmap_size(map), model_size);
    for (int i = 0; i < N; i++)
        cr_assert_eq(hvn_idmap_lookup(map, items[i].key), items[i].present ? &items[i] : NULL,
                     "item %d", i);
    hvn_idmap_destroy(&map);
    cr_assert_null(map);
}

Test(idmap, walking_the_slots_while_removing_visits_every_item)
{
    enum { N = 1000 };
    static s_item_t items[N];
    hvn_idmap_t *map = hvn_idmap_new();
    for (uint32_t i = 0; i < N; i++) {
        s_key(items[i].key, i);
        items[i].present = 1;
        cr_assert_eq(hvn_idmap_insert(map, &items[i]), 0);
    }
    size_t slot = 0;
    while (slot < hvn_idmap_slots(map)) {
        s_item_t *item = hvn_idmap_at(map, slot);
        if (item && item->present) {
            hvn_idmap_remove(map, item->key);
            item->present = 0;
            continue;
        }
        slot++;
    }
    cr_assert_eq(hvn_idmap_size(map), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(items[i].present, 0, "item %d never seen", i);
    hvn_idmap_destroy(&map);
}
