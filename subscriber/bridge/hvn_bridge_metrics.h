/*  hvn_bridge_metrics.h — hvn-bridge's counters, on one line in the log and
    as Prometheus text on /metrics (hvn-bridge --metrics ADDR:PORT).

        hvn_bridge_metrics_t *metrics = hvn_bridge_metrics_new (address, err, sizeof err);
        hvn_bridge_figures_t figures;   //  filled by the run, about once a second
        hvn_bridge_metrics_update (metrics, &figures);
        hvn_bridge_metrics_destroy (&metrics);

    Every figure is one row of a table (its field, its metric name, counter
    or gauge, its help), which the exposition walks: a counter is
    hvnotify_bridge_<name>_total, a gauge hvnotify_bridge_<name>. The
    confirm latency is a gauge with a quantile label (0.5, 0.99, 1) over
    the recent confirms.

    The bridge's loop is single-threaded and the HTTP endpoint has a thread
    of its own: the loop renders the text (hvn_bridge_metrics_update) and
    a scrape hands out a copy of the latest one, under a mutex.

    Part of the hvn-bridge program; builds on common/ (hvn_http.h,
    hvn_metrics.h).
*/
#ifndef HVN_BRIDGE_METRICS_H_INCLUDED
#define HVN_BRIDGE_METRICS_H_INCLUDED

#include "hvn_bridge.h"
#include "hvn_replica.h"

#include <stddef.h>
#include <stdint.h>

#define HVN_BRIDGE_METRICS_REFRESH_MS 1000 //  The run renders about this often

//  Everything the counters line and /metrics show, gathered by the run
typedef struct {
    hvn_bridge_stats_t bridge;     //  The RabbitMQ side
    hvn_replica_stats_t replica;   //  The brokers' side
    uint64_t from_repairs;         //  Notifications published from repair snapshots
    uint64_t unforwardable;        //  Nodes gone with their delete lost: nothing to publish
    uint64_t unrendered;           //  Notifications that could not be rendered
    uint64_t resumed;              //  Notifications replayed from the rings at start
    uint64_t resume_missed;        //  Seqs the rings no longer held at start
    uint64_t resume_from_snapshot; //  Nodes published from the snapshot in their place
    uint64_t covered;              //  Live notifications already published at start, skipped
    uint64_t state_instances;      //  Publisher instances in the state
    uint64_t state_saves;          //  State file writes
    uint64_t state_failures;       //  State file writes that failed
} hvn_bridge_figures_t;

typedef struct _hvn_bridge_metrics_t hvn_bridge_metrics_t;

//  Returns the Prometheus text of the figures (a heap string the caller
//  frees, its length in *size), or NULL when out of memory.
char *hvn_bridge_metrics_render(const hvn_bridge_figures_t *figures, size_t *size);

//  Listens on address (ADDR:PORT) and serves GET /metrics: 503 until the
//  first update, then the latest text. Returns the endpoint, or NULL with
//  a one-line reason in err.
hvn_bridge_metrics_t *hvn_bridge_metrics_new(const char *address, char *err, size_t err_size);

//  Returns nothing; renders the figures into the text scrapes get (the
//  last text stays when memory is out).
void hvn_bridge_metrics_update(hvn_bridge_metrics_t *self, const hvn_bridge_figures_t *figures);

//  Stops serving and frees. NULL-safe; sets *self_p to NULL.
void hvn_bridge_metrics_destroy(hvn_bridge_metrics_t **self_p);

#endif
