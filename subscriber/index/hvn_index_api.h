/*  hvn_index_api.h — hvn-index's read-only HTTP API and /metrics.

        GET /v1/compute_nodes?running_vms__gt=0&sort=-free_ram_mb&limit=100
        GET /v1/compute_nodes/<uuid>
        GET /v1/events?since=2026-12-06&event_type=compute_node.create
        GET /metrics        Prometheus text exposition
        GET /healthz        200 when the replica is live and the database
                            writable, else 503 with why

    Served from hvn_http's thread with a database connection of its own
    (read-only; in WAL mode SQLite readers and the writer never block each
    other). Filters, sort keys and their values are checked against the
    schema table and bound as parameters: an unknown field or operator, or
    a value of the wrong type, is a 400 with a JSON error naming it.

    The main thread hands over the replica's and the writer's counters with
    hvn_index_api_publish(); the API thread reads its copy under a mutex.
*/
#ifndef HVN_INDEX_API_H_INCLUDED
#define HVN_INDEX_API_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "hvn_index.h"
#include "hvn_index_page.h"
#include "hvn_replica.h"

#define HVN_INDEX_API_LIMIT 1000      //  Default rows of one answer
#define HVN_INDEX_API_LIMIT_MAX 10000 //  Most rows of one answer

typedef struct {
    const char *address;    //  ADDR:PORT to listen on; required
    const char *db_target;  //  The database the writer writes; required
    hvn_index_page_t *page; //  Serves / and /v1/stream (borrowed), or NULL
} hvn_index_api_opts_t;

//  What the main thread publishes
typedef struct {
    bool synced;                 //  The replica is live (snapshot applied, no repair pending)
    hvn_replica_stats_t replica; //  Its counters
    hvn_index_stats_t index;     //  The writer's counters
} hvn_index_api_status_t;

typedef struct _hvn_index_api_t hvn_index_api_t;

//  Opens a read-only connection and listens. Returns NULL with a one-line
//  reason in err when either fails.
hvn_index_api_t *hvn_index_api_new(const hvn_index_api_opts_t *opts, char *err, size_t err_size);

//  Stops serving and frees. NULL-safe; sets *self_p to NULL.
void hvn_index_api_destroy(hvn_index_api_t **self_p);

//  Returns nothing; makes status what /healthz and /metrics report.
void hvn_index_api_publish(hvn_index_api_t *self, const hvn_index_api_status_t *status);

//  Returns the port the API listens on.
uint16_t hvn_index_api_port(hvn_index_api_t *self);

#endif
