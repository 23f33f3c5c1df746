/*  test_schema.c — the schema table and the node operations that walk it.

    The fingerprints below pin ComputeNodePayload and ComputeNodeDeletePayload
    at the versions beside them: change a field's name, type, nullability or
    order and the pin fails until the payload version is bumped too.
*/
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_proto.h"

#define S_UUID "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01"

//  A node with every field set (nothing nil) and valid.
static void s_full_node(hvn_node_t *node)
{
    hvn_node_init(node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, 10 + f);
        else
            hvn_node_set_str(node, f, "text");
    hvn_node_set_str(node, HVN_F_UUID, S_UUID);
    hvn_node_set_str(node, HVN_F_HOST_IP, "2001:db8::17");
}

//  Changes field f of node to another valid value.
static void s_change(hvn_node_t *node, int f)
{
    if (hvn_schema_fields[f].type == HVN_TYPE_INT)
        hvn_node_set_int(node, f, *hvn_node_int(node, f) + 1);
    else if (f == HVN_F_UUID)
        hvn_node_set_str(node, f, "0d9a1b6c-3e2f-4a5b-8c7d-6e5f4a3b2c1d");
    else if (f == HVN_F_HOST_IP)
        hvn_node_set_str(node, f, "192.0.2.1");
    else
        hvn_node_set_str(node, f, "other");
}

Test(schema, payload_fingerprints_are_pinned_to_their_versions)
{
    cr_assert_eq(HVN_PAYLOAD_MAJOR, 1);
    cr_assert_eq(HVN_PAYLOAD_MINOR, 0);
    cr_assert_eq(hvn_schema_fingerprint(false), 0x8754144c90282cf3ULL,
                 "ComputeNodePayload changed: bump HVN_PAYLOAD_MINOR/MAJOR and update this "
                 "fingerprint");
    cr_assert_eq(HVN_DELETE_PAYLOAD_MAJOR, 1);
    cr_assert_eq(HVN_DELETE_PAYLOAD_MINOR, 0);
    cr_assert_eq(hvn_schema_fingerprint(true), 0xd9cd0358db42e761ULL,
                 "ComputeNodeDeletePayload changed: bump HVN_DELETE_PAYLOAD_MINOR/MAJOR and "
                 "update this fingerprint");
}

Test(schema, table_has_eighteen_well_formed_fields)
{
    cr_assert_eq(HVN_F_COUNT, 18);
    int in_delete = 0;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        cr_assert(field->name && *field->name, "field %d has no name", f);
        cr_assert(field->type >= HVN_TYPE_INT && field->type <= HVN_TYPE_IP);
        cr_assert_leq(field->offset + field->size, sizeof(hvn_node_t), "%s", field->name);
        if (field->type == HVN_TYPE_INT)
            cr_assert_eq(field->size, sizeof(int64_t), "%s", field->name);
        cr_assert_eq(hvn_schema_find(field->name, strlen(field->name)), f);
        if (field->in_delete) {
            in_delete++;
            cr_assert_not(field->nullable, "%s", field->name);
        }
    }
    cr_assert_eq(in_delete, 2);
    cr_assert(hvn_schema_fields[HVN_F_ID].in_delete && hvn_schema_fields[HVN_F_UUID].in_delete);
    cr_assert_eq(hvn_schema_fields[HVN_F_UUID].size, HVN_UUID_STR_LEN + 1);
}

Test(schema, update_triggers_are_the_nine_of_the_protocol)
{
    char joined[512] = "";
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].triggers_update) {
            strcat(joined, hvn_schema_fields[f].name);
            strcat(joined, " ");
        }
    cr_assert_str_eq(joined, "vcpus memory_mb local_gb vcpus_used local_gb_used "
                             "hypervisor_hostname current_workload running_vms "
                             "disk_available_least ");
}

Test(schema, each_trigger_field_alone_triggers_an_update_and_no_other_does)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        hvn_node_t a, b;
        s_full_node(&a);
        b = a;
        cr_assert_not(hvn_node_triggers_update(&a, &b));
        s_change(&b, f);
        cr_assert_not(hvn_node_field_equal(&a, &b, f), "%s", hvn_schema_fields[f].name);
        cr_assert_not(hvn_node_equal(&a, &b));
        cr_assert_eq(hvn_node_triggers_update(&a, &b), hvn_schema_fields[f].triggers_update, "%s",
                     hvn_schema_fields[f].name);
        if (hvn_schema_fields[f].nullable) {
            b = a;
            hvn_node_set_null(&b, f);
            cr_assert_eq(hvn_node_triggers_update(&a, &b), hvn_schema_fields[f].triggers_update,
                         "nil %s", hvn_schema_fields[f].name);
        }
    }
}

Test(schema, find_matches_whole_names_only)
{
    cr_assert_eq(hvn_schema_find("vcpus", 5), HVN_F_VCPUS);
    cr_assert_eq(hvn_schema_find("vcpus_used", 10), HVN_F_VCPUS_USED);
    cr_assert_eq(hvn_schema_find("vcpus_usedX", 10), HVN_F_VCPUS_USED);
    cr_assert_eq(hvn_schema_find("vcpu", 4), -1);
    cr_assert_eq(hvn_schema_find("", 0), -1);
    cr_assert_eq(hvn_schema_find("numa_topology", 13), -1);
    cr_assert_eq(hvn_schema_find("id\0xyz", 6), -1);
    cr_assert_eq(hvn_schema_find("id\0", 3), -1);
}

Test(schema, init_makes_every_nullable_field_nil)
{
    hvn_node_t node;
    memset(&node, 0x5A, sizeof(node));
    hvn_node_init(&node);
    for (int f = 0; f < HVN_F_COUNT; f++) {
        cr_assert_eq(hvn_node_is_null(&node, f), hvn_schema_fields[f].nullable, "%s",
                     hvn_schema_fields[f].name);
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            cr_assert_eq(*hvn_node_int(&node, f), 0);
        else
            cr_assert_str_eq(hvn_node_str(&node, f), "");
    }
}

Test(schema, setters_clear_nil_and_refuse_strings_that_do_not_fit)
{
    hvn_node_t node;
    hvn_node_init(&node);
    hvn_node_set_int(&node, HVN_F_RUNNING_VMS, 3);
    cr_assert_not(hvn_node_is_null(&node, HVN_F_RUNNING_VMS));
    cr_assert_eq(node.running_vms, 3);
    char longest[HVN_STR_MAX + 2];
    memset(longest, 'h', sizeof(longest));
    longest[HVN_STR_MAX + 1] = '\0';
    cr_assert_eq(hvn_node_set_str(&node, HVN_F_HOST, longest), -1);
    cr_assert(hvn_node_is_null(&node, HVN_F_HOST));
    longest[HVN_STR_MAX] = '\0';
    cr_assert_eq(hvn_node_set_str(&node, HVN_F_HOST, longest), 0);
    cr_assert_eq(strlen(node.host), HVN_STR_MAX);
    cr_assert_eq(hvn_node_set_str(&node, HVN_F_UUID, S_UUID "0"), -1);
    hvn_node_set_null(&node, HVN_F_HOST);
    cr_assert(hvn_node_is_null(&node, HVN_F_HOST));
}

Test(schema, nil_equals_nil_and_nothing_else)
{
    hvn_node_t a, b;
    s_full_node(&a);
    b = a;
    hvn_node_set_null(&a, HVN_F_FREE_RAM_MB);
    cr_assert_not(hvn_node_field_equal(&a, &b, HVN_F_FREE_RAM_MB));
    hvn_node_set_null(&b, HVN_F_FREE_RAM_MB);
    b.free_ram_mb = 999; //  Ignored while nil
    cr_assert(hvn_node_field_equal(&a, &b, HVN_F_FREE_RAM_MB));
    cr_assert(hvn_node_equal(&a, &b));
}

Test(schema, validate_accepts_a_good_node)
{
    hvn_node_t node;
    s_full_node(&node);
    cr_assert_eq(hvn_node_validate(&node, NULL), 0);
    hvn_node_init(&node);
    hvn_node_set_str(&node, HVN_F_UUID, S_UUID);
    cr_assert_eq(hvn_node_validate(&node, NULL), 0, "nullable fields may all be nil");
    hvn_node_set_str(&node, HVN_F_HOST_IP, "10.0.0.1");
    cr_assert_eq(hvn_node_validate(&node, NULL), 0);
}

Test(schema, validate_names_the_bad_field)
{
    struct {
        hvn_field_id_t field;
        const char *value;
    } cases[] = {
        {HVN_F_UUID, ""},
        {HVN_F_UUID, "5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9cXX"},
        {HVN_F_UUID, "5f0c3a528a4b4c559d0e2f1b6e7a9c01"},
        {HVN_F_HOST_IP, "10.0.0"},
        {HVN_F_HOST_IP, "::g"},
        {HVN_F_HOST_IP, ""},
        {HVN_F_HYPERVISOR_TYPE, "\xff"},
        {HVN_F_HOST, "\xc0\xaf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hvn_node_t node;
        s_full_node(&node);
        cr_assert_eq(hvn_node_set_str(&node, cases[i].field, cases[i].value), 0);
        hvn_field_id_t bad = HVN_F_COUNT;
        cr_assert_eq(hvn_node_validate(&node, &bad), -1, "case %zu", i);
        cr_assert_eq(bad, cases[i].field, "case %zu", i);
    }
    hvn_node_t node;
    s_full_node(&node);
    node.nulls |= 1u << HVN_F_VCPUS; //  Nil where not nullable
    hvn_field_id_t bad;
    cr_assert_eq(hvn_node_validate(&node, &bad), -1);
    cr_assert_eq(bad, HVN_F_VCPUS);
    s_full_node(&node);
    memset(node.host, 'x', sizeof(node.host)); //  Not terminated
    cr_assert_eq(hvn_node_validate(&node, &bad), -1);
    cr_assert_eq(bad, HVN_F_HOST);
}

Test(schema, utf8_check_refuses_malformed_sequences)
{
    cr_assert(hvn_utf8_valid("", 0));
    cr_assert(hvn_utf8_valid("plain", 5));
    cr_assert(hvn_utf8_valid("h\xc3\xa9t\xc3\xa9", 6));
    cr_assert(hvn_utf8_valid("\xf0\x9f\x98\x80", 4));
    cr_assert_not(hvn_utf8_valid("a\0b", 3));
    cr_assert_not(hvn_utf8_valid("\xc3", 1));
    cr_assert_not(hvn_utf8_valid("\xc0\x80", 2));
    cr_assert_not(hvn_utf8_valid("\xed\xa0\x80", 3));
    cr_assert_not(hvn_utf8_valid("\xf4\x90\x80\x80", 4));
    cr_assert_not(hvn_utf8_valid("\x80", 1));
    //  Every length up to 24, with a NUL, a stray continuation byte, a
    //  truncated sequence or a good two-byte one at every position
    for (size_t len = 1; len <= 24; len++) {
        for (size_t at = 0; at < len; at++) {
            char text[32];
            memset(text, 'a', sizeof(text));
            text[at] = '\0';
            cr_assert_not(hvn_utf8_valid(text, len), "NUL at %zu of %zu", at, len);
            text[at] = (char)0x80;
            cr_assert_not(hvn_utf8_valid(text, len), "0x80 at %zu of %zu", at, len);
            text[at] = (char)0xC3;
            if (at + 1 < len) {
                cr_assert_not(hvn_utf8_valid(text, at + 1), "0xC3 at the end, %zu", at + 1);
                text[at + 1] = (char)0xA9;
                cr_assert(hvn_utf8_valid(text, len), "U+00E9 at %zu of %zu", at, len);
            }
            memset(text, 'a', sizeof(text));
            cr_assert(hvn_utf8_valid(text, len), "ASCII, %zu", len);
        }
    }
}

//  Returns what host_ip's check answered before it had a shortcut for
//  dotted quads.
static bool s_inet_pton_valid(const char *text)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1;
}

Test(schema, host_ip_check_agrees_with_inet_pton)
{
    static const char *const cases[] = {
        "0.0.0.0",        "255.255.255.255", "192.0.2.17", "1.2.3.4",
        "256.1.1.1",      "01.2.3.4",        "1.2.3.04",   "1.2.3.4.",
        ".1.2.3.4",       "1..2.3",          "1.2.3",      "1.2.3.4.5",
        "1.2.3.4444",     "1234.1.1.1",      "00.1.1.1",   "1.2.3.-4",
        "1.2.3.4 ",       " 1.2.3.4",        "::1",        "2001:db8::1",
        "::ffff:1.2.3.4", "1.2.3.a",         "",           "999.999.999.999",
        "10.0.0.255",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(hvn_field_text_valid(HVN_F_HOST_IP, cases[i], strlen(cases[i])),
                     s_inet_pton_valid(cases[i]), "'%s'", cases[i]);
    //  Random texts of 3 to 5 parts of 0 to 4 digits (a leading zero now and
    //  then), mostly joined by dots
    srand(6);
    for (int n = 0; n < 200000; n++) {
        char text[32];
        size_t len = 0;
        int parts = 3 + rand() % 3;
        for (int p = 0; p < parts; p++) {
            if (p > 0)
                text[len++] = rand() % 16 ? '.' : ':';
            int digits = rand() % 5;
            for (int d = 0; d < digits; d++)
                text[len++] = (char)('0' + (d == 0 && rand() % 3 ? 1 + rand() % 2 : rand() % 10));
        }
        text[len] = '\0';
        cr_assert_eq(hvn_field_text_valid(HVN_F_HOST_IP, text, len), s_inet_pton_valid(text),
                     "'%s'", text);
    }
}
