/*  hvn_index_page.h — hvn-index's live fleet page and its change stream.

        GET /               the page (HTML; its CSS and JavaScript at
                            /page.css and /page.js), compiled into the
                            program from subscriber/index/www/
        GET /v1/stream      Server-Sent Events, first "hello":
                            {"seq": N, "fields": [names], "rows": [[values],
                            ...]}, every row as of message N; then
                            "changes" at most every batch_ms: {"seq": N,
                            "rows": [[values], ...], "deleted": [uuid, ...]};
                            "reload" when one batch would exceed batch_max
                            rows (after a snapshot): open a new stream

    A row is the payload's fields in schema order, then updated_at (the
    last notification's timestamp); "fields" names them. Changes carry
    whole rows, so a page never needs anything but its stream.

    The writer's thread feeds the stream: hvn_index_page_changed() for each
    uuid a commit wrote (so a change is in the database before it is on
    the stream), hvn_index_page_tick() from its loop, which turns the uuids
    into one message from the view, keeps the rows it sent (for the next
    stream's hello) and appends the message to a ring bounded in messages
    and bytes. Each stream reads the ring from the HTTP thread at its own
    pace; one that falls behind the ring's oldest message is ended (the
    page reconnects and starts again). The writer never waits for a
    client.
*/
#ifndef HVN_INDEX_PAGE_H_INCLUDED
#define HVN_INDEX_PAGE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hvn_http.h"
#include "hvn_index.h"

typedef struct {
    int batch_ms;         //  Shortest time between two messages; 0 = 100
    int keepalive_ms;     //  A comment line after this long without one; 0 = 10 000
    size_t batch_max;     //  Nodes one message holds, past which "reload"; 0 = 2000
    size_t ring_messages; //  Messages the ring holds; 0 = 256
    size_t ring_bytes;    //  Bytes the ring holds; 0 = 16 MiB
    size_t streams_max;   //  Streams open at once, past which 503; 0 = 16
} hvn_index_page_opts_t;

typedef struct _hvn_index_page_t hvn_index_page_t;

//  Returns the page, or NULL when out of memory. opts may be NULL (all
//  defaults).
hvn_index_page_t *hvn_index_page_new(const hvn_index_page_opts_t *opts);

//  Frees. Call after the HTTP endpoint that served it stopped. NULL-safe;
//  sets *self_p to NULL.
void hvn_index_page_destroy(hvn_index_page_t **self_p);

//  Returns nothing; gives the endpoint whose streams the writer wakes
//  (borrowed; before the writer's first tick).
void hvn_index_page_attach(hvn_index_page_t *self, hvn_http_t *http);

//  Returns nothing; notes that uuid's row was committed (writer's thread).
void hvn_index_page_changed(hvn_index_page_t *self, const char *uuid);

//  Appends a message when one is due: the noted uuids as the view holds
//  them now (get returns NULL: deleted). Writer's thread. Returns the ms
//  until it should be called again.
int hvn_index_page_tick(hvn_index_page_t *self, hvn_index_get_fn *get, void *arg);

//  Returns true when the request was the page's (reply set), false to let
//  the API answer it. HTTP thread.
bool hvn_index_page_serve(hvn_index_page_t *self, const hvn_http_request_t *request,
                          hvn_http_reply_t *reply);

typedef struct {
    uint64_t messages;        //  Messages appended
    uint64_t nodes_sent;      //  Rows in them
    uint64_t reloads;         //  "reload" messages
    uint64_t streams_opened;  //  Streams served
    uint64_t streams_dropped; //  Ended for falling behind the ring
    uint64_t streams_refused; //  Refused past streams_max
    size_t streams;           //  Open now
    size_t ring_bytes;        //  Bytes held by the ring now
} hvn_index_page_stats_t;

//  Copies the counters into *out (any thread).
void hvn_index_page_stats(hvn_index_page_t *self, hvn_index_page_stats_t *out);

#endif
