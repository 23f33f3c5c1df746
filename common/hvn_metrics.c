/*  hvn_metrics.c — Prometheus text exposition (format 0.0.4), written by hand.

    A growing buffer and the set of families already started: that set is
    what keeps HELP and TYPE to once per family.
*/
#include "hvn_metrics.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _hvn_metrics_t {
    char *text;        //  Written so far (heap)
    size_t size;       //  Bytes written
    size_t alloc;      //  Bytes allocated
    bool failed;       //  Memory ran out at some point
    zhashx_t *started; //  Family names already started
};

hvn_metrics_t *hvn_metrics_new(void)
{
    hvn_metrics_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->started = zhashx_new();
    if (!self->started) {
        free(self);
        return NULL;
    }
    return self;
}

void hvn_metrics_destroy(hvn_metrics_t **self_p)
{
    assert(self_p);
    hvn_metrics_t *self = *self_p;
    if (!self)
        return;
    free(self->text);
    zhashx_destroy(&self->started);
    free(self);
    *self_p = NULL;
}

//  Returns nothing; appends len bytes of s.
static void s_put(hvn_metrics_t *self, const char *s, size_t len)
{
    if (self->failed)
        return;
    if (self->size + len + 1 > self->alloc) {
        size_t alloc = self->alloc ? self->alloc : 4096;
        while (self->size + len + 1 > alloc)
            alloc *= 2;
        char *text = realloc(self->text, alloc);
        if (!text) {
            self->failed = true;
            return;
        }
        self->text = text;
        self->alloc = alloc;
    }
    memcpy(self->text + self->size, s, len);
    self->size += len;
    self->text[self->size] = '\0';
}

//  Returns nothing; appends a NUL-terminated string.
static void s_puts(hvn_metrics_t *self, const char *s)
{
    s_put(self, s, strlen(s));
}

//  Returns nothing; appends s with '\\' and newline escaped, and '"' too
//  when quote is set (label values).
static void s_escaped(hvn_metrics_t *self, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *escape = *s == '\\'           ? "\\\\"
                             : *s == '\n'         ? "\\n"
                             : quote && *s == '"' ? "\\\""
                                                  : NULL;
        if (!escape)
            continue;
        s_put(self, run, (size_t)(s - run));
        s_puts(self, escape);
        run = s + 1;
    }
    s_put(self, run, (size_t)(s - run));
}

//  Returns nothing; appends a value as the format writes it.
static void s_value(hvn_metrics_t *self, double value)
{
    char buf[40];
    if (isnan(value))
        snprintf(buf, sizeof(buf), "NaN");
    else if (isinf(value))
        snprintf(buf, sizeof(buf), value > 0 ? "+Inf" : "-Inf");
    else if (value == floor(value) && fabs(value) < 9007199254740992.0)
        snprintf(buf, sizeof(buf), "%.0f", value);
    else
        snprintf(buf, sizeof(buf), "%.17g", value);
    s_puts(self, buf);
}

//  Returns true when name is a valid metric or label name.
static bool s_name_valid(const char *name, bool label)
{
    if (!name || !*name || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || (!label && *p == ':')))
            return false;
    return true;
}

void hvn_metrics_family(hvn_metrics_t *self, const char *name, hvn_metric_type_t type,
                        const char *help)
{
    assert(self && name && help);
    size_t len = strlen(name);
    if (!s_name_valid(name, false) ||
        (type == HVN_METRIC_COUNTER && (len <= 6 || strcmp(name + len - 6, "_total") != 0))) {
        assert(!"a metric name is valid, and a counter's ends in _total");
        self->failed = true; //  Nothing is served rather than a broken exposition
        return;
    }
    if (zhashx_lookup(self->started, name))
        return;
    zhashx_insert(self->started, name, (void *)1);
    s_puts(self, "# HELP ");
    s_puts(self, name);
    s_puts(self, " ");
    s_escaped(self, help, false);
    s_puts(self, "\n# TYPE ");
    s_puts(self, name);
    s_puts(self, type == HVN_METRIC_COUNTER ? " counter\n"
                 : type == HVN_METRIC_GAUGE ? " gauge\n"
                                            : " histogram\n");
}

//  Returns nothing; appends name, then the labels and an extra one (may be
//  NULL) in braces.
static void s_series(hvn_metrics_t *self, const char *name, const char *suffix,
                     const char *const *labels, const char *extra_name, const char *extra_value)
{
    s_puts(self, name);
    s_puts(self, suffix);
    bool any = (labels && labels[0]) || extra_name;
    if (!any)
        return;
    s_puts(self, "{");
    bool first = true;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (!s_name_valid(labels[i], true)) {
            assert(!"a label name is valid");
            self->failed = true;
        }
        s_puts(self, first ? "" : ",");
        s_puts(self, labels[i]);
        s_puts(self, "=\"");
        s_escaped(self, labels[i + 1], true);
        s_puts(self, "\"");
        first = false;
    }
    if (extra_name) {
        s_puts(self, first ? "" : ",");
        s_puts(self, extra_name);
        s_puts(self, "=\"");
        s_puts(self, extra_value);
        s_puts(self, "\"");
    }
    s_puts(self, "}");
}

void hvn_metrics_sample(hvn_metrics_t *self, const char *name, const char *const *labels,
                        double value)
{
    assert(self && name && zhashx_lookup(self->started, name));
    s_series(self, name, "", labels, NULL, NULL);
    s_puts(self, " ");
    s_value(self, value);
    s_puts(self, "\n");
}

char *hvn_metrics_labels(const char *const *labels)
{
    hvn_metrics_t scratch = {0}; //  Only its buffer is used
    s_series(&scratch, "", "", labels, NULL, NULL);
    if (scratch.failed) {
        free(scratch.text);
        return NULL;
    }
    return scratch.text ? scratch.text : strdup("");
}

//  Returns the length of " <value>\n" written backwards from the end of
//  buf (24 bytes): a sample's value, without printf's cost per call (a
//  /metrics of 10 000 nodes writes 140 000 of them).
static size_t s_int_text(char buf[24], int64_t value)
{
    char *at = buf + 24;
    *--at = '\n';
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *--at = '-';
    *--at = ' ';
    return (size_t)(buf + 24 - at);
}

void hvn_metrics_sample_int(hvn_metrics_t *self, const char *name, const char *label_set,
                            int64_t value)
{
    assert(self && name);
    char number[24];
    size_t len = s_int_text(number, value);
    s_puts(self, name);
    if (label_set)
        s_puts(self, label_set);
    s_put(self, number + sizeof(number) - len, len);
}

void hvn_metrics_histogram(hvn_metrics_t *self, const char *name, const char *const *labels,
                           const double *bounds, const uint64_t *cumulative, size_t count,
                           double sum, uint64_t observations)
{
    assert(self && name && zhashx_lookup(self->started, name));
    for (size_t i = 0; i < count; i++) {
        char le[40];
        if (isinf(bounds[i]))
            snprintf(le, sizeof(le), "+Inf");
        else
            snprintf(le, sizeof(le), "%g", bounds[i]);
        s_series(self, name, "_bucket", labels, "le", le);
        s_puts(self, " ");
        s_value(self, (double)cumulative[i]);
        s_puts(self, "\n");
    }
    if (count == 0 || !isinf(bounds[count - 1])) {
        s_series(self, name, "_bucket", labels, "le", "+Inf");
        s_puts(self, " ");
        s_value(self, (double)observations);
        s_puts(self, "\n");
    }
    s_series(self, name, "_sum", labels, NULL, NULL);
    s_puts(self, " ");
    s_value(self, sum);
    s_puts(self, "\n");
    s_series(self, name, "_count", labels, NULL, NULL);
    s_puts(self, " ");
    s_value(self, (double)observations);
    s_puts(self, "\n");
}

char *hvn_metrics_take(hvn_metrics_t *self, size_t *size)
{
    assert(self && size);
    char *text = self->failed ? NULL : self->text;
    if (!text && !self->failed)
        text = strdup("");
    if (self->failed)
        free(self->text);
    *size = text ? self->size : 0;
    self->text = NULL;
    self->size = self->alloc = 0;
    self->failed = false;
    zhashx_purge(self->started);
    return text;
}
