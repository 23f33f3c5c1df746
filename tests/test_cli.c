/*  test_cli.c — option values and input lines as the programs read them
    (hvn_cli.h: hvn-pub, hvn-sub, hvn-agent, and hvn-pub's fuzz harness).
*/
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_cli.h"

Test(cli, long_is_the_whole_text_within_its_bounds)
{
    long value = -7;
    cr_assert_eq(hvn_cli_parse_long("42", 1, 100, &value), 0);
    cr_assert_eq(value, 42);
    cr_assert_eq(hvn_cli_parse_long("1", 1, 100, &value), 0);
    cr_assert_eq(hvn_cli_parse_long("100", 1, 100, &value), 0);
    cr_assert_eq(value, 100);
    char text[32];
    snprintf(text, sizeof(text), "%ld", LONG_MAX);
    cr_assert_eq(hvn_cli_parse_long(text, 1, LONG_MAX, &value), 0);
    cr_assert_eq(value, LONG_MAX);
}

Test(cli, long_refuses_what_is_not_one_and_keeps_the_old_value)
{
    static const char *const bad[] = {
        "", "0", "101", "-1", "12x", "x12", "1.5", "4 ", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long value = -7;
        cr_assert_eq(hvn_cli_parse_long(bad[i], 1, 100, &value), -1, "'%s' accepted", bad[i]);
        cr_assert_eq(value, -7);
    }
}

Test(cli, int_takes_int_bounds)
{
    int value = -7;
    cr_assert_eq(hvn_cli_parse_int("86400", 1, 86400, &value), 0);
    cr_assert_eq(value, 86400);
    cr_assert_eq(hvn_cli_parse_int("86401", 1, 86400, &value), -1);
    cr_assert_eq(hvn_cli_parse_int("2147483648", 1, INT_MAX, &value), -1);
    cr_assert_eq(value, 86400);
}

Test(cli, double_is_a_finite_number_and_the_whole_text)
{
    double value = -7;
    cr_assert_eq(hvn_cli_parse_double("1.5", &value), 0);
    cr_assert_float_eq(value, 1.5, 1e-12);
    cr_assert_eq(hvn_cli_parse_double("0", &value), 0);
    cr_assert_float_eq(value, 0.0, 1e-12);
    cr_assert_eq(hvn_cli_parse_double("-2e3", &value), 0);
    cr_assert_float_eq(value, -2000.0, 1e-9);
    static const char *const bad[] = {"", "inf", "nan", "1e999", "1e-400", "2s", "s2", "1.5 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        value = -7;
        cr_assert_eq(hvn_cli_parse_double(bad[i], &value), -1, "'%s' accepted", bad[i]);
        cr_assert_float_eq(value, -7.0, 1e-12);
    }
}

Test(cli, a_line_loses_its_trailing_newlines_and_carriage_returns)
{
    char line[] = "{\"a\": 1}\r\n";
    size_t len = hvn_cli_line_trim(line, strlen(line));
    cr_assert_eq(len, 8);
    cr_assert_str_eq(line, "{\"a\": 1}");

    char inner[] = "a\rb\n\n";
    cr_assert_eq(hvn_cli_line_trim(inner, strlen(inner)), 3);
    cr_assert_str_eq(inner, "a\rb");

    char only[] = "\r\n\n";
    cr_assert_eq(hvn_cli_line_trim(only, strlen(only)), 0);
    cr_assert_str_eq(only, "");

    char none[] = "x \t";
    cr_assert_eq(hvn_cli_line_trim(none, strlen(none)), 3);
}

Test(cli, a_blank_line_holds_only_white_space)
{
    cr_assert(hvn_cli_line_blank("", 0));
    cr_assert(hvn_cli_line_blank(" \t\r\v\f", 5));
    cr_assert_not(hvn_cli_line_blank(" x ", 3));
    cr_assert(hvn_cli_line_blank("  x", 2), "only the first len bytes count");
}

Test(cli, a_list_takes_items_one_by_one_and_refuses_empty_or_comma)
{
    char *list = NULL;
    cr_assert_eq(hvn_cli_list_append(&list, "tcp://a:1"), 0);
    cr_assert_str_eq(list, "tcp://a:1");
    cr_assert_eq(hvn_cli_list_append(&list, "ipc:///tmp/b"), 0);
    cr_assert_str_eq(list, "tcp://a:1,ipc:///tmp/b");
    cr_assert_eq(hvn_cli_list_append(&list, ""), -1);
    cr_assert_eq(hvn_cli_list_append(&list, "tcp://c:1,tcp://d:1"), -1);
    cr_assert_str_eq(list, "tcp://a:1,ipc:///tmp/b");
    free(list);

    list = NULL;
    cr_assert_eq(hvn_cli_list_append(&list, ","), -1);
    cr_assert_null(list);
}
