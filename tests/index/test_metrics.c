/*  test_metrics.c — the Prometheus text exposition writer (common/hvn_metrics). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hvn_metrics.h"

//  Returns the exposition's text (caller frees) and destroys it.
static char *s_take(hvn_metrics_t **m)
{
    size_t size;
    char *text = hvn_metrics_take(*m, &size);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), size);
    hvn_metrics_destroy(m);
    cr_assert_null(*m);
    return text;
}

//  Returns a new exposition with family name declared (type, help).
static hvn_metrics_t *s_family(const char *name, hvn_metric_type_t type, const char *help)
{
    hvn_metrics_t *m = hvn_metrics_new();
    cr_assert_not_null(m);
    hvn_metrics_family(m, name, type, help);
    return m;
}

//  Returns nothing; expects the exposition's text to be expected, and
//  destroys it.
static void s_expect_text(hvn_metrics_t **m, const char *expected)
{
    char *text = s_take(m);
    cr_expect_str_eq(text, expected);
    free(text);
}

Test(metrics, help_and_type_once_per_family_samples_follow)
{
    hvn_metrics_t *m = s_family("x_requests_total", HVN_METRIC_COUNTER, "Requests");
    hvn_metrics_sample(m, "x_requests_total", NULL, 3);
    hvn_metrics_family(m, "x_requests_total", HVN_METRIC_COUNTER, "Requests");
    hvn_metrics_sample(m, "x_requests_total", NULL, 4);
    s_expect_text(&m, "# HELP x_requests_total Requests\n# TYPE x_requests_total counter\n"
                      "x_requests_total 3\nx_requests_total 4\n");
}

Test(metrics, label_values_and_help_are_escaped)
{
    hvn_metrics_t *m = s_family("x_up", HVN_METRIC_GAUGE, "a \\ b\nc \"q\"");
    const char *labels[] = {"host", "a\"b\\c\nd", "uuid", "u", NULL};
    hvn_metrics_sample(m, "x_up", labels, 1);
    s_expect_text(&m, "# HELP x_up a \\\\ b\\nc \"q\"\n# TYPE x_up gauge\n"
                      "x_up{host=\"a\\\"b\\\\c\\nd\",uuid=\"u\"} 1\n");
}

Test(metrics, values_are_written_exactly)
{
    hvn_metrics_t *m = s_family("x_v", HVN_METRIC_GAUGE, "v");
    double values[] = {-3, 0.25, 1e20, INFINITY, -INFINITY, NAN, 9007199254740991.0};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        hvn_metrics_sample(m, "x_v", NULL, values[i]);
    s_expect_text(&m, "# HELP x_v v\n# TYPE x_v gauge\n"
                      "x_v -3\nx_v 0.25\nx_v 1e+20\nx_v +Inf\nx_v -Inf\nx_v NaN\n"
                      "x_v 9007199254740991\n");
}

Test(metrics, histogram_has_buckets_sum_and_count)
{
    hvn_metrics_t *m = s_family("x_seconds", HVN_METRIC_HISTOGRAM, "t");
    double bounds[] = {0.01, 0.1};
    uint64_t counts[] = {1, 3};
    hvn_metrics_histogram(m, "x_seconds", NULL, bounds, counts, 2, 0.5, 4);
    s_expect_text(&m, "# HELP x_seconds t\n# TYPE x_seconds histogram\n"
                      "x_seconds_bucket{le=\"0.01\"} 1\nx_seconds_bucket{le=\"0.1\"} 3\n"
                      "x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 0.5\nx_seconds_count 4\n");
}

Test(metrics, take_empties_for_the_next_scrape)
{
    hvn_metrics_t *m = s_family("x_a", HVN_METRIC_GAUGE, "a");
    size_t size;
    free(hvn_metrics_take(m, &size));
    hvn_metrics_family(m, "x_a", HVN_METRIC_GAUGE, "a"); //  Families start again
    s_expect_text(&m, "# HELP x_a a\n# TYPE x_a gauge\n");
}

Test(metrics, shared_label_set_and_integer_samples)
{
    const char *labels[] = {"uuid", "u\"1", "host", "h", NULL};
    char *set = hvn_metrics_labels(labels);
    cr_assert_str_eq(set, "{uuid=\"u\\\"1\",host=\"h\"}");
    hvn_metrics_t *m = s_family("x_vms", HVN_METRIC_GAUGE, "vms");
    hvn_metrics_sample_int(m, "x_vms", set, -9223372036854775807LL);
    hvn_metrics_sample_int(m, "x_vms", NULL, 3);
    s_expect_text(&m, "# HELP x_vms vms\n# TYPE x_vms gauge\n"
                      "x_vms{uuid=\"u\\\"1\",host=\"h\"} -9223372036854775807\nx_vms 3\n");
    free(set);
}
