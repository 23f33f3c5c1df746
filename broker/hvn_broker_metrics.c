/*  hvn_broker_metrics.c — hvn-broker's /metrics.

    One table walk per render: the row's name says its family, the list of
    gauges below its type. Rendering happens in the broker's thread;
    hvn_metrics_page hands each scrape the last text.
*/
#include "hvn_broker_metrics.h"
#include "hvn_metrics.h"
#include "hvn_metrics_page.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX "hvnotify_broker_"
#define S_REFUSED "refused."

//  Rows that are gauges (they go down too); every other unsigned row is a
//  counter
static const char *const s_gauges[] = {
    "cache_nodes",    "cache_bytes",        "subscriptions",    "publishers", "ring_entries",
    "ring_bytes",     "ring_max_bytes",     "ring_publishers",  "curve",      "snapshots_active",
    "snapshot_bytes", "snapshot_max_bytes", "subscriber_queue", NULL,
};

//  Durations: a row <stem>_us (microseconds in all) is the histogram
//  hvnotify_broker_<stem>_seconds, its _sum in seconds and its _count the
//  row named here (the answers timed); a row <stem>_last_us is the gauge
//  hvnotify_broker_<stem>_last_seconds
static const struct {
    const char *row;   //  The total's row
    const char *count; //  The row that counts what it timed
    const char *help;  //  The family's HELP
} s_durations[] = {
    {"snapshot_us", "snapshots",
     "Seconds from a SNAPSHOT request to its END, of the snapshots answered in full "
     "(STATS snapshot_us, snapshots)"},
    {"replay_us", "replays",
     "Seconds from a REPLAY request to its END, of the replays answered in full "
     "(STATS replay_us, replays)"},
    {NULL, NULL, NULL},
};
#define S_LAST_US "_last_us"

struct _hvn_broker_metrics_t {
    hvn_broker_t *broker;     //  Whose table is served (read in its thread only)
    hvn_stats_t *table;       //  Scratch table the broker fills
    hvn_metrics_page_t *page; //  The endpoint, serving the last text
    int64_t next_ms;          //  When the next render is due
};

//  Returns true when the row called name is a gauge.
static bool s_is_gauge(const char *name)
{
    for (size_t i = 0; s_gauges[i]; i++)
        if (strcmp(name, s_gauges[i]) == 0)
            return true;
    return false;
}

//  Returns nothing; out holds S_PREFIX, name with every byte outside
//  [a-zA-Z0-9_] made '_', and suffix.
static void s_metric_name(char *out, size_t size, const char *name, const char *suffix)
{
    int n = snprintf(out, size, "%s%s%s", S_PREFIX, name, suffix);
    size_t len = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
    for (size_t i = strlen(S_PREFIX); i < len; i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            out[i] = '_';
    }
}

//  Returns true when row is a duration (see s_durations), written as
//  such into m.
static bool s_duration(hvn_metrics_t *m, const hvn_stats_t *table, const hvn_stat_t *row)
{
    char name[HVN_STAT_NAME_MAX + 64], help[HVN_STAT_NAME_MAX + 64];
    size_t len = strlen(row->name);
    size_t last = strlen(S_LAST_US);
    if (row->type == HVN_STAT_UINT && len > last &&
        strcmp(row->name + len - last, S_LAST_US) == 0) {
        snprintf(name, sizeof(name), S_PREFIX "%.*s_last_seconds", (int)(len - last), row->name);
        snprintf(help, sizeof(help), "Seconds the last one took (STATS %s)", row->name);
        hvn_metrics_family(m, name, HVN_METRIC_GAUGE, help);
        hvn_metrics_sample(m, name, NULL, (double)row->uint / 1e6);
        return true;
    }
    for (size_t i = 0; s_durations[i].row; i++) {
        if (row->type != HVN_STAT_UINT || strcmp(row->name, s_durations[i].row) != 0)
            continue;
        const hvn_stat_t *count = hvn_stats_find(table, s_durations[i].count);
        snprintf(name, sizeof(name), S_PREFIX "%.*s_seconds", (int)(len - 3), row->name);
        hvn_metrics_family(m, name, HVN_METRIC_HISTOGRAM, s_durations[i].help);
        hvn_metrics_histogram(m, name, NULL, NULL, NULL, 0, (double)row->uint / 1e6,
                              count && count->type == HVN_STAT_UINT ? count->uint : 0);
        return true;
    }
    return false;
}

//  Returns the text of the table, or NULL when out of memory.
char *hvn_broker_metrics_render(const hvn_stats_t *table, size_t *size)
{
    assert(table && size);
    hvn_metrics_t *m = hvn_metrics_new();
    if (!m)
        return NULL;
    const char *info[16];
    size_t info_count = 0;
    char name[HVN_STAT_NAME_MAX + 64], help[HVN_STAT_NAME_MAX + 64];
    for (size_t i = 0; i < hvn_stats_size(table); i++) {
        const hvn_stat_t *row = hvn_stats_at(table, i);
        if (row->type == HVN_STAT_TEXT) {
            if (info_count + 2 < sizeof(info) / sizeof(info[0])) {
                info[info_count++] = row->name;
                info[info_count++] = row->text;
            }
        } else if (strncmp(row->name, S_REFUSED, strlen(S_REFUSED)) == 0) {
            const char *labels[] = {"reason", row->name + strlen(S_REFUSED), NULL};
            hvn_metrics_family(m, S_PREFIX "refused_total", HVN_METRIC_COUNTER,
                               "Messages refused, by reason (STATS refused.<reason>)");
            hvn_metrics_sample(m, S_PREFIX "refused_total", labels, (double)row->uint);
        } else if (strcmp(row->name, "refused") == 0)
            continue; //  The sum of the family above
        else if (s_duration(m, table, row))
            continue;
        else if (strcmp(row->name, "uptime_ms") == 0) {
            hvn_metrics_family(m, S_PREFIX "uptime_seconds", HVN_METRIC_GAUGE,
                               "Seconds since the broker started (STATS uptime_ms)");
            hvn_metrics_sample(m, S_PREFIX "uptime_seconds", NULL, (double)row->sint / 1000.0);
        } else {
            bool gauge = row->type == HVN_STAT_INT || s_is_gauge(row->name);
            s_metric_name(name, sizeof(name), row->name, gauge ? "" : "_total");
            snprintf(help, sizeof(help), "STATS %s", row->name);
            hvn_metrics_family(m, name, gauge ? HVN_METRIC_GAUGE : HVN_METRIC_COUNTER, help);
            hvn_metrics_sample(m, name, NULL,
                               row->type == HVN_STAT_INT ? (double)row->sint : (double)row->uint);
        }
    }
    info[info_count] = NULL;
    hvn_metrics_family(m, S_PREFIX "info", HVN_METRIC_GAUGE,
                       "The broker's identity (STATS text rows as labels); always 1");
    hvn_metrics_sample(m, S_PREFIX "info", info, 1);
    char *text = hvn_metrics_take(m, size);
    hvn_metrics_destroy(&m);
    return text;
}

//  Returns nothing; renders the broker's table when a render is due (the
//  broker's tick: runs in the broker's thread).
static void s_tick(hvn_broker_t *broker, void *arg)
{
    hvn_broker_metrics_t *self = arg;
    int64_t now = zclock_mono();
    if (now < self->next_ms)
        return;
    self->next_ms = now + HVN_BROKER_METRICS_REFRESH_MS;
    size_t size = 0;
    char *text = hvn_broker_stats_table(broker, self->table) == 0
                     ? hvn_broker_metrics_render(self->table, &size)
                     : NULL;
    hvn_metrics_page_set(self->page, text, size); //  NULL (out of memory): the last stays
}

//  Returns the endpoint, or NULL with the reason in err.
hvn_broker_metrics_t *hvn_broker_metrics_new(hvn_broker_t *broker, const char *address, char *err,
                                             size_t err_size)
{
    assert(broker && address);
    hvn_broker_metrics_t *self = calloc(1, sizeof(*self));
    if (!self || !(self->table = hvn_stats_new())) {
        snprintf(err, err_size, "out of memory");
        free(self);
        return NULL;
    }
    self->broker = broker;
    self->page = hvn_metrics_page_new(address, err, err_size);
    if (!self->page) {
        hvn_broker_metrics_destroy(&self);
        return NULL;
    }
    s_tick(broker, self); //  A first text before the first scrape
    hvn_broker_set_tick(broker, s_tick, self);
    return self;
}

//  Returns nothing; stops the endpoint, unhooks the tick, frees.
void hvn_broker_metrics_destroy(hvn_broker_metrics_t **self_p)
{
    assert(self_p);
    hvn_broker_metrics_t *self = *self_p;
    if (!self)
        return;
    hvn_metrics_page_destroy(&self->page);
    hvn_broker_set_tick(self->broker, NULL, NULL);
    hvn_stats_destroy(&self->table);
    free(self);
    *self_p = NULL;
}
