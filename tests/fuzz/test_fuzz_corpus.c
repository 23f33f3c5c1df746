/*  test_fuzz_corpus.c — every fuzz corpus input through its harness, and
    each input a fuzzer found a defect with, as a case of its own.

    The harnesses abort when a property breaks, so a corpus input that
    would crash, leak (under --sanitize) or break a property fails here in
    every build, with or without clang and libFuzzer.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_fuzz.h"
#include "hvn_proto.h"

typedef int(s_harness_fn)(const uint8_t *data, size_t size);

//  Returns nothing; the file at path went through fn.
static void s_run_file(const char *path, s_harness_fn *fn)
{
    FILE *file = fopen(path, "rb");
    cr_assert(file, "cannot open %s", path);
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;
    do {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
            cr_assert(data);
        }
        n = fread(data + size, 1, cap - size, file);
        size += n;
    } while (n > 0);
    fclose(file);
    fn(data, size);
    free(data);
}

//  Returns nothing; tests/fuzz/<target>/<name> went through fn.
static void s_replay_one(const char *target, const char *name, s_harness_fn *fn)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s/%s", HVN_FUZZ_DIR, target, name);
    s_run_file(path, fn);
}

//  Returns the number of files of tests/fuzz/<target>/ run through fn.
static int s_replay(const char *target, s_harness_fn *fn)
{
    char dir_path[1024];
    snprintf(dir_path, sizeof(dir_path), "%s/%s", HVN_FUZZ_DIR, target);
    DIR *dir = opendir(dir_path);
    cr_assert(dir, "no corpus at %s", dir_path);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.')
            continue;
        s_replay_one(target, entry->d_name, fn);
        count++;
    }
    closedir(dir);
    return count;
}

Test(fuzz_corpus, decoder_inputs_hold_every_property)
{
    cr_assert_gt(s_replay("decoder", hvn_fuzz_decoder), 10);
}

Test(fuzz_corpus, json_node_inputs_hold_every_property)
{
    cr_assert_gt(s_replay("json_node", hvn_fuzz_json_node), 10);
}

Test(fuzz_corpus, end_inputs_hold_every_property)
{
    cr_assert_gt(s_replay("end", hvn_fuzz_end), 5);
}

//  Inputs a fuzz target found a defect with, each with what it broke.

Test(fuzz_findings, json_reason_for_a_key_with_a_newline_is_one_line)
{
    //  An unknown key, quoted in the reason, held a JSON-escaped newline:
    //  hvn-pub printed it raw, so one input line could forge more stderr
    //  lines
    static const char line[] = "{\"uuid\":\"5f0c3a52-8a4b-4c55-9d0e-2f1b6e7a9c01\",\"a\\nb\":1}";
    hvn_node_t node;
    char err[256];
    cr_assert_eq(hvn_json_parse_node(line, strlen(line), &node, NULL, err, sizeof(err)), -1);
    cr_assert_null(strchr(err, '\n'), "reason: %s", err);
    cr_assert_str_eq(err, "unknown field 'a?b'");
    s_replay_one("json_node", "finding-key-newline", hvn_fuzz_json_node);
}

Test(fuzz_findings, uuid_text_with_a_non_hex_high_digit_is_refused_without_ub)
{
    //  A non-hex digit in the high nibble of a byte made hvn_uuid_parse
    //  shift -1 left (undefined behaviour) before refusing the text
    static const char *const cases[] = {
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f\xc5\x9e\xcc\x9d\xcb\x9c\xca\x9b",
        "g1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4cz5",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(hvn_uuid_parse(cases[i], strlen(cases[i]), NULL), -1, "case %zu", i);
    s_replay_one("decoder", "finding-uuid-non-hex-high", hvn_fuzz_decoder);
}
