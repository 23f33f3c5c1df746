/*  test_broker_state.c — the broker's state file: node and publisher
    instance bindings written, read back, and a file that is not one
    refused whole.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvn_proto.h"
#include "hvn_state.h"

static char dir[64];
static char path[128];

static void s_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hvn-state-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/broker.state", dir);
}

static void s_teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(state, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns nothing; frees an owners table and its items.
static void s_owners_free(hvn_idmap_t **owners)
{
    for (size_t i = 0; i < hvn_idmap_slots(*owners); i++)
        free(hvn_idmap_at(*owners, i));
    hvn_idmap_destroy(owners);
}

Test(state, bindings_are_written_and_read_back)
{
    hvn_cache_t *cache = hvn_cache_new();
    hvn_seqmap_t *seqmap = hvn_seqmap_new(16);
    hvn_idmap_t *owners = hvn_idmap_new();
    uint8_t node[16] = {1}, reserved[16] = {2}, instance[16] = {3};
    uint8_t header[HVN_HEADER_SIZE] = {1, 1};
    const char topic[] = "compute_node.update@cmp-017";
    cr_assert_eq(hvn_cache_put(cache, node, topic, strlen(topic), header, "\x80", 1), 1);
    cr_assert_eq(hvn_idmap_insert(owners, hvn_owner_new(reserved, "cmp-018", 7)), 0);
    cr_assert_eq(hvn_seqmap_bind(seqmap, instance, "cmp-017", 0, 1), 1);
    cr_assert_eq(hvn_seqmap_update(seqmap, instance, 42, 0, 1), 0);
    char error[256] = "";
    cr_assert_eq(hvn_state_save(path, cache, owners, seqmap, error, sizeof(error)), 0, "%s",
                 error);

    hvn_idmap_t *read_owners = hvn_idmap_new();
    hvn_seqmap_t *read_seqmap = hvn_seqmap_new(16);
    uint64_t clock = 0;
    cr_assert_eq(hvn_state_load(path, read_owners, read_seqmap, 0, &clock, error, sizeof(error)),
                 3, "%s", error);
    hvn_owner_t *owner = hvn_idmap_lookup(read_owners, node);
    cr_assert(owner && streq(owner->host, "cmp-017"));
    owner = hvn_idmap_lookup(read_owners, reserved);
    cr_assert(owner && streq(owner->host, "cmp-018"));
    cr_assert_str_eq(hvn_seqmap_host(read_seqmap, instance), "cmp-017");
    uint64_t seq = 0;
    cr_assert(hvn_seqmap_get(read_seqmap, instance, &seq));
    cr_assert_eq(seq, 42);
    cr_assert_eq(hvn_seqmap_bind(read_seqmap, instance, "cmp-019", 0, 2), 0, "still cmp-017's");

    s_owners_free(&read_owners);
    hvn_seqmap_destroy(&read_seqmap);
    s_owners_free(&owners);
    hvn_seqmap_destroy(&seqmap);
    hvn_cache_destroy(&cache);
}

Test(state, no_file_is_an_empty_state_and_a_bad_one_is_refused_whole)
{
    hvn_idmap_t *owners = hvn_idmap_new();
    hvn_seqmap_t *seqmap = hvn_seqmap_new(16);
    uint64_t clock = 0;
    char error[256] = "";
    cr_assert_eq(hvn_state_load(path, owners, seqmap, 0, &clock, error, sizeof(error)), 0);
    //  A valid node, then one whose host holds a control character
    static const char bad[] = "\x84\xa6" "format" "\xb0" "hvn-broker-state"
                              "\xa7" "version" "\x01"
                              "\xa5" "nodes" "\x92"
                              "\x92\xc4\x10" "AAAAAAAAAAAAAAAA" "\xa3" "cmp"
                              "\x92\xc4\x10" "BBBBBBBBBBBBBBBB" "\xa4" "cm\x1bp"
                              "\xa9" "instances" "\x90";
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(bad, 1, sizeof(bad) - 1, f);
    fclose(f);
    cr_assert_eq(hvn_state_load(path, owners, seqmap, 0, &clock, error, sizeof(error)), -1);
    cr_assert(strstr(error, "malformed node"), "%s", error);
    cr_assert_eq(hvn_idmap_size(owners), 0, "nothing added from a bad file");
    s_owners_free(&owners);
    hvn_seqmap_destroy(&seqmap);
}
