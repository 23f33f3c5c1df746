/*  hvn_metrics_page.h — an HTTP endpoint serving a program's last
    Prometheus exposition on GET /metrics.

        hvn_metrics_page_t *page = hvn_metrics_page_new ("127.0.0.1:9100", err, sizeof err);
        //  in the program's loop, about once a second:
        size_t size;
        char *text = hvn_metrics_take (m, &size);
        hvn_metrics_page_set (page, text, size);     //  takes text
        hvn_metrics_page_destroy (&page);

    The program renders in its own thread; the endpoint's thread (hvn_http)
    hands each scrape a copy of the latest text, taken under a mutex: 503
    before the first text, 404 for any other path.

    Not part of libhvn: in the static library hvncommon.
*/
#ifndef HVN_METRICS_PAGE_H_INCLUDED
#define HVN_METRICS_PAGE_H_INCLUDED

#include <stddef.h>

typedef struct _hvn_metrics_page_t hvn_metrics_page_t;

//  Returns the endpoint listening on address (ADDR:PORT), or NULL with the
//  reason in err.
hvn_metrics_page_t *hvn_metrics_page_new(const char *address, char *err, size_t err_size);

//  Stops the endpoint (no scrape runs past this) and frees. NULL-safe;
//  sets *self_p to NULL.
void hvn_metrics_page_destroy(hvn_metrics_page_t **self_p);

//  Returns nothing; text (a heap string of size bytes, taken) is what the
//  next scrapes get. NULL (a render that ran out of memory) keeps the last.
void hvn_metrics_page_set(hvn_metrics_page_t *self, char *text, size_t size);

#endif
