/*  hvn_metrics.h — Prometheus text exposition (format 0.0.4), written by hand.

        hvn_metrics_t *m = hvn_metrics_new ();
        hvn_metrics_family (m, "hvnotify_index_commits_total", HVN_METRIC_COUNTER,
                            "Transactions committed");
        hvn_metrics_sample (m, "hvnotify_index_commits_total", NULL, 42);
        const char *labels[] = { "host", "cmp-017", NULL };
        hvn_metrics_family (m, "hvnotify_compute_node_running_vms", HVN_METRIC_GAUGE, "...");
        hvn_metrics_sample (m, "hvnotify_compute_node_running_vms", labels, 3);
        size_t size;
        char *text = hvn_metrics_take (m, &size);   //  serve with HVN_METRICS_CONTENT_TYPE
        hvn_metrics_destroy (&m);

    The format's rules are kept here so callers cannot break them: a
    family's HELP and TYPE lines are written once (declaring a family again
    is a no-op, and its samples must follow it), HELP text escapes '\' and
    newlines, label values escape '\', '"' and newlines, a counter's name
    ends in _total (asserted), values are written exactly (integers as
    integers, +Inf, -Inf, NaN). A histogram is written from its cumulative
    buckets, with _bucket{le=...}, _sum and _count.

    Not part of libhvn: in the static library hvncommon.
*/
#ifndef HVN_METRICS_H_INCLUDED
#define HVN_METRICS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define HVN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

//  A family's type
typedef enum {
    HVN_METRIC_COUNTER = 1, //  Only goes up; name ends in _total
    HVN_METRIC_GAUGE,       //  Any value
    HVN_METRIC_HISTOGRAM    //  Buckets, sum and count
} hvn_metric_type_t;

typedef struct _hvn_metrics_t hvn_metrics_t;

//  Returns an empty exposition, or NULL when out of memory.
hvn_metrics_t *hvn_metrics_new(void);

//  Frees. NULL-safe; sets *self_p to NULL.
void hvn_metrics_destroy(hvn_metrics_t **self_p);

//  Returns nothing; starts family name (its HELP and TYPE lines) unless it
//  was already started. name must be a valid metric name.
void hvn_metrics_family(hvn_metrics_t *self, const char *name, hvn_metric_type_t type,
                        const char *help);

//  Returns nothing; writes one sample of family name (started before).
//  labels: NULL, or name/value pairs ended by NULL (values escaped here).
void hvn_metrics_sample(hvn_metrics_t *self, const char *name, const char *const *labels,
                        double value);

//  Returns a label set's text, {name="value",...} with the values escaped,
//  for samples of many families that share it (a heap string the caller
//  frees), or NULL when out of memory or a name is not valid.
char *hvn_metrics_labels(const char *const *labels);

//  Returns nothing; writes one sample of family name with a label set made
//  by hvn_metrics_labels (NULL: none) and an integer value.
void hvn_metrics_sample_int(hvn_metrics_t *self, const char *name, const char *label_set,
                            int64_t value);

//  Returns nothing; writes a histogram family's samples: count bounds
//  (the last may be +Inf, which is added when missing), their cumulative
//  counts, the sum of the observations and their number.
void hvn_metrics_histogram(hvn_metrics_t *self, const char *name, const char *const *labels,
                           const double *bounds, const uint64_t *cumulative, size_t count,
                           double sum, uint64_t observations);

//  Returns the text written so far (a heap string the caller frees, its
//  length in *size) and empties the exposition, or NULL when memory ran
//  out at any point.
char *hvn_metrics_take(hvn_metrics_t *self, size_t *size);

#endif
