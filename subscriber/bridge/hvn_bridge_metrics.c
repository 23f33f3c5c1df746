/*  hvn_bridge_metrics.c — hvn-bridge's /metrics (see hvn_bridge_metrics.h).

    One table of figures: adding a counter to the exposition is one line.
*/
#include "hvn_bridge_metrics.h"
#include "hvn_metrics.h"
#include "hvn_metrics_page.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX "hvnotify_bridge_"

//  One figure: where it lives in hvn_bridge_figures_t and how it is shown
typedef struct {
    const char *name;       //  Metric name
    size_t offset;          //  Its uint64_t in hvn_bridge_figures_t
    hvn_metric_type_t type; //  Counter or gauge
    const char *help;       //  HELP text
} s_figure_t;

#define S_COUNTER(name, field, help)                                                               \
    {                                                                                              \
        S_PREFIX name "_total", offsetof(hvn_bridge_figures_t, field), HVN_METRIC_COUNTER, help    \
    }
#define S_GAUGE(name, field, help)                                                                 \
    {                                                                                              \
        S_PREFIX name, offsetof(hvn_bridge_figures_t, field), HVN_METRIC_GAUGE, help               \
    }

static const s_figure_t s_figures[] = {
    S_COUNTER("received", bridge.received, "Notifications queued for RabbitMQ"),
    S_COUNTER("published", bridge.published, "basic.publish calls, re-sends included"),
    S_COUNTER("confirmed", bridge.confirmed, "Notifications RabbitMQ acknowledged (basic.ack)"),
    S_COUNTER("resent", bridge.resent, "Notifications published again (reconnect or nack)"),
    S_COUNTER("nacked", bridge.nacked, "Notifications RabbitMQ refused (basic.nack), then re-sent"),
    S_COUNTER("dropped", bridge.dropped, "Notifications dropped past --max-pending"),
    S_COUNTER("connects", bridge.connects, "Connections to RabbitMQ made, the first included"),
    S_COUNTER("reconnects", bridge.reconnects, "Connections to RabbitMQ made after a loss"),
    S_COUNTER("connect_failures", bridge.failures, "Connection attempts that failed"),
    S_COUNTER("connections_lost", bridge.lost, "Connections to RabbitMQ lost"),
    S_COUNTER("blocks", bridge.blocked, "connection.blocked received from RabbitMQ"),
    S_GAUGE("pending", bridge.pending, "Notifications queued and not yet confirmed"),
    S_GAUGE("connected", bridge.connected, "1 while connected to RabbitMQ, else 0"),
    S_GAUGE("blocked", bridge.blocked_now, "1 while RabbitMQ blocks publishing, else 0"),
    S_COUNTER("brokers_received", replica.received, "Valid messages from the brokers"),
    S_COUNTER("duplicates", replica.duplicates,
              "Notifications already handed over (another broker's copy)"),
    S_COUNTER("losses", replica.losses, "Losses detected on the brokers' side"),
    S_COUNTER("repaired", replica.repaired, "Detected losses repaired by a snapshot"),
    S_COUNTER("replays", replica.replays, "Seq gaps repaired by REPLAY from a broker's ring"),
    S_COUNTER("replayed", replica.replayed, "Notifications those REPLAYs brought back"),
    S_COUNTER("snapshots", replica.snapshots, "Snapshots applied, the first included"),
    S_GAUGE("nodes", replica.nodes, "Nodes in the bridge's view of the fleet"),
    S_COUNTER("from_repairs", from_repairs, "Notifications published from repair snapshots"),
    S_COUNTER("unforwardable_deletes", unforwardable,
              "Nodes gone while their delete was lost: nothing to publish"),
    S_COUNTER("unrendered", unrendered, "Notifications that could not be rendered as JSON"),
    S_COUNTER("resumed", resumed, "Notifications replayed from the brokers' rings at start"),
    S_COUNTER("resume_missed", resume_missed,
              "Notifications missed while stopped that the rings no longer held"),
    S_COUNTER("resume_from_snapshot", resume_from_snapshot,
              "Nodes published from the snapshot in place of what the rings no longer held"),
    S_COUNTER("covered", covered, "Live notifications skipped: already published at start"),
    S_GAUGE("state_instances", state_instances, "Publisher instances in the state file"),
    S_COUNTER("state_saves", state_saves, "State file writes"),
    S_COUNTER("state_save_failures", state_failures, "State file writes that failed"),
};

#undef S_COUNTER
#undef S_GAUGE

struct _hvn_bridge_metrics_t {
    hvn_metrics_page_t *page; //  The endpoint, serving the last text
};

char *hvn_bridge_metrics_render(const hvn_bridge_figures_t *figures, size_t *size)
{
    assert(figures && size);
    hvn_metrics_t *m = hvn_metrics_new();
    if (!m)
        return NULL;
    for (size_t i = 0; i < sizeof(s_figures) / sizeof(s_figures[0]); i++) {
        const s_figure_t *f = &s_figures[i];
        uint64_t value = *(const uint64_t *)((const char *)figures + f->offset);
        hvn_metrics_family(m, f->name, f->type, f->help);
        hvn_metrics_sample(m, f->name, NULL, (double)value);
    }
    const char *name = S_PREFIX "confirm_latency_seconds";
    hvn_metrics_family(m, name, HVN_METRIC_GAUGE,
                       "Push to RabbitMQ's confirm, over the recent confirms (0 before any)");
    const struct {
        const char *quantile;
        uint64_t us;
    } latencies[] = {{"0.5", figures->bridge.latency_p50_us},
                     {"0.99", figures->bridge.latency_p99_us},
                     {"1", figures->bridge.latency_max_us}};
    for (size_t i = 0; i < sizeof(latencies) / sizeof(latencies[0]); i++) {
        const char *labels[] = {"quantile", latencies[i].quantile, NULL};
        hvn_metrics_sample(m, name, labels, (double)latencies[i].us / 1e6);
    }
    char *text = hvn_metrics_take(m, size);
    hvn_metrics_destroy(&m);
    return text;
}

hvn_bridge_metrics_t *hvn_bridge_metrics_new(const char *address, char *err, size_t err_size)
{
    assert(address && err);
    hvn_bridge_metrics_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    self->page = hvn_metrics_page_new(address, err, err_size);
    if (!self->page) {
        hvn_bridge_metrics_destroy(&self);
        return NULL;
    }
    return self;
}

void hvn_bridge_metrics_update(hvn_bridge_metrics_t *self, const hvn_bridge_figures_t *figures)
{
    assert(self && figures);
    size_t size = 0;
    char *text = hvn_bridge_metrics_render(figures, &size);
    hvn_metrics_page_set(self->page, text, size); //  NULL: the last stays
}

void hvn_bridge_metrics_destroy(hvn_bridge_metrics_t **self_p)
{
    assert(self_p);
    hvn_bridge_metrics_t *self = *self_p;
    if (!self)
        return;
    hvn_metrics_page_destroy(&self->page); //  No scrape runs past this
    free(self);
    *self_p = NULL;
}
