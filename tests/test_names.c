/*  test_names.c — the host and service names of the wire: one rule for
    every room that takes one.
*/
#include "hvn_names.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(names, .timeout = 10);

Test(names, a_plain_host_name_is_accepted)
{
    cr_expect_null(hvn_names_host_check("cmp-017"));
    cr_expect_null(hvn_names_host_check("cmp-017.region-one.example.org"));
    cr_expect_null(hvn_names_host_check("h\xc3\xb4te")); //  UTF-8
}

Test(names, host_names_that_would_break_a_topic_or_a_terminal_are_refused)
{
    const char *bad[] = {"", "a@b", "cmp\x1b[2J", "cmp\nfake-row", "tab\there", "del\x7f",
                         "\xff\xfe"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not_null(hvn_names_host_check(bad[i]), "case %zu accepted", i);
    cr_expect_not_null(hvn_names_host_check(NULL));
}

Test(names, a_host_name_fits_the_longest_topic)
{
    char host[HVN_HOST_MAX + 2];
    memset(host, 'h', sizeof(host));
    host[HVN_HOST_MAX] = '\0';
    cr_expect_null(hvn_names_host_check(host));
    host[HVN_HOST_MAX] = 'h';
    host[HVN_HOST_MAX + 1] = '\0';
    cr_expect_not_null(hvn_names_host_check(host));
    cr_expect_eq(strlen("compute_node.create@") + HVN_HOST_MAX, 255);
}

Test(names, a_service_name_holds_no_colon_nor_control_characters)
{
    cr_expect_null(hvn_names_service_check("nova-compute"));
    cr_expect_not_null(hvn_names_service_check("a:b"));
    cr_expect_not_null(hvn_names_service_check(""));
    cr_expect_not_null(hvn_names_service_check("nova\r"));
}
