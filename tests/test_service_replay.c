/*  test_service_replay.c — a REPLAY request's frames (hvn_service.h):
    what the broker accepts and the text it refuses the rest with.
*/
#include <criterion/criterion.h>
#include <string.h>

#include "hvn_proto.h"

#define S_INST "0a0b0c0d-0e0f-4011-8213-141516171819"

//  Returns hvn_replay_decode's answer for three text frames.
static const char *s_decode(const char *instance, const char *first, const char *last,
                            hvn_replay_t *out)
{
    return hvn_replay_decode(instance, strlen(instance), first, strlen(first), last, strlen(last),
                             out);
}

Test(replay_request, uuid_and_decimal_seqs_are_read)
{
    hvn_replay_t request;
    cr_assert_null(s_decode(S_INST, "5", "4100", &request));
    cr_expect_eq(request.first, 5);
    cr_expect_eq(request.last, 4100);
    cr_expect_eq(request.instance[0], 0x0a);
    cr_expect_eq(request.instance[15], 0x19);
    //  Any case of UUID text; a single seq
    cr_assert_null(s_decode("0A0B0C0D-0E0F-4011-8213-141516171819", "7", "7", &request));
    cr_expect_eq(request.instance[0], 0x0a);
    cr_expect_eq(request.first, 7);
}

Test(replay_request, text_of_a_request_decodes_to_it)
{
    hvn_replay_t request = {.first = 18446744073709547520ULL, .last = UINT64_MAX};
    memset(request.instance, 0xab, 16);
    char instance[37], first[HVN_SEQ_TEXT_MAX + 1], last[HVN_SEQ_TEXT_MAX + 1];
    hvn_replay_text(&request, instance, first, last);
    cr_expect_str_eq(last, "18446744073709551615");
    cr_expect_str_eq(instance, "abababab-abab-abab-abab-abababababab");
    hvn_replay_t back;
    cr_assert_null(s_decode(instance, first, last, &back));
    cr_expect_eq(back.first, request.first);
    cr_expect_eq(back.last, request.last);
    cr_expect(memcmp(back.instance, request.instance, 16) == 0);
}

Test(replay_request, bad_requests_are_refused_with_a_reason)
{
    hvn_replay_t request = {.first = 99};
    const char *cases[][3] = {
        {"not-a-uuid", "1", "2"},
        {"0a0b0c0d-0e0f-4011-8213-14151617181", "1", "2"},
        {"0a0b0c0d-0e0f-4011-8213-14151617181x", "1", "2"},
        {"0a0b0c0d+0e0f-4011-8213-141516171819", "1", "2"},
        {S_INST, "", "2"},
        {S_INST, "1", ""},
        {S_INST, "-1", "2"},
        {S_INST, "+1", "2"},
        {S_INST, " 1", "2"},
        {S_INST, "1x", "2"},
        {S_INST, "0x10", "20"},
        {S_INST, "1", "18446744073709551616"},
        {S_INST, "1", "000000000000000000001"},
        {S_INST, "9", "8"},
        {S_INST, "1", "4097"},
        {S_INST, "0", "18446744073709551615"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = s_decode(cases[i][0], cases[i][1], cases[i][2], &request);
        cr_expect_not_null(why, "case %zu (%s %s %s) accepted", i, cases[i][0], cases[i][1],
                           cases[i][2]);
        if (why)
            cr_expect_eq(strncmp(why, "REPLAY: ", 8), 0, "%s", why);
    }
    cr_expect_eq(request.first, 99, "a refused request leaves *out alone");
    cr_assert_null(s_decode(S_INST, "1", "4096", &request), "4096 seqs is the widest");
    //  A NUL inside the UUID frame
    char with_nul[36];
    memcpy(with_nul, S_INST, 36);
    with_nul[8] = '\0';
    cr_expect_not_null(hvn_replay_decode(with_nul, 36, "1", 1, "2", 1, &request));
}
