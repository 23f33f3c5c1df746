/*  hvn_broker_metrics.h — hvn-broker's /metrics: the STATS table as
    Prometheus text, served over HTTP (hvn-broker --metrics ADDR:PORT).

    The exposition is made from the same table STATS and the log line at
    exit walk (hvn_broker_stats_table), so a new counter appears in all
    three at once: each unsigned row is a counter hvnotify_broker_<name>_total,
    except the figures that go down as well as up (cache, subscriptions,
    publishers, ring, curve, uptime), which are gauges; the refusals by
    reason are one counter family with a `reason` label; the durations
    (snapshot_us, replay_us: microseconds in all) are histograms
    hvnotify_broker_snapshot_seconds and _replay_seconds, their _count the
    snapshots and replays answered in full (only the +Inf bucket), and the
    last one's (snapshot_last_us, replay_last_us) gauges
    hvnotify_broker_snapshot_last_seconds and _replay_last_seconds; the
    text rows make one hvnotify_broker_info gauge with them as labels.

    The broker is single-threaded and the HTTP endpoint has a thread of its
    own: the broker's loop renders the text (at most once a second, from
    its tick) under a mutex, and a scrape hands out the latest copy.

    Part of the hvn-broker program, not of the broker's core: it builds on
    common/ (hvn_http.h, hvn_metrics.h).
*/
#ifndef HVN_BROKER_METRICS_H_INCLUDED
#define HVN_BROKER_METRICS_H_INCLUDED

#include "hvn_broker.h"

#include <stddef.h>

#define HVN_BROKER_METRICS_REFRESH_MS 1000 //  Render at most this often

typedef struct _hvn_broker_metrics_t hvn_broker_metrics_t;

//  Returns the Prometheus text of a STATS table (a heap string the caller
//  frees, its length in *size), or NULL when out of memory.
char *hvn_broker_metrics_render(const hvn_stats_t *table, size_t *size);

//  Listens on address (ADDR:PORT) and serves GET /metrics with the text
//  of broker's table, rendered now and then from the broker's loop (it
//  sets itself as the broker's tick). Returns the endpoint, or NULL with a
//  one-line reason in err.
hvn_broker_metrics_t *hvn_broker_metrics_new(hvn_broker_t *broker, const char *address, char *err,
                                             size_t err_size);

//  Stops serving and frees; NULL-safe, sets *self_p to NULL. Call before
//  destroying the broker.
void hvn_broker_metrics_destroy(hvn_broker_metrics_t **self_p);

#endif
