/*  hvn_metrics_page.c — see hvn_metrics_page.h. */
#include "hvn_metrics_page.h"

#include "hvn_http.h"
#include "hvn_metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _hvn_metrics_page_t {
    hvn_http_t *http;     //  The endpoint
    pthread_mutex_t lock; //  Guards text and size
    char *text;           //  Last exposition, or NULL
    size_t size;          //  Its bytes
};

//  Returns nothing; answers one request (the HTTP thread): /metrics with
//  a copy of the last text, 503 before the first one, else 404.
static void s_serve(const hvn_http_request_t *request, hvn_http_reply_t *reply, void *arg)
{
    hvn_metrics_page_t *self = arg;
    if (strcmp(request->path, "/metrics") != 0)
        return;
    pthread_mutex_lock(&self->lock);
    char *copy = self->text ? malloc(self->size + 1) : NULL;
    size_t size = self->size;
    if (copy)
        memcpy(copy, self->text, size + 1);
    bool rendered = self->text != NULL;
    pthread_mutex_unlock(&self->lock);
    if (copy)
        hvn_http_reply_take(reply, 200, HVN_METRICS_CONTENT_TYPE, copy, size);
    else
        hvn_http_reply_text(reply, rendered ? 500 : 503, "text/plain",
                            rendered ? "out of memory\n" : "not rendered yet\n");
}

hvn_metrics_page_t *hvn_metrics_page_new(const char *address, char *err, size_t err_size)
{
    assert(address && err);
    hvn_metrics_page_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    hvn_http_opts_t opts = {.address = address, .fn = s_serve, .arg = self};
    self->http = hvn_http_new(&opts, err, err_size);
    if (!self->http)
        hvn_metrics_page_destroy(&self);
    return self;
}

void hvn_metrics_page_destroy(hvn_metrics_page_t **self_p)
{
    assert(self_p);
    hvn_metrics_page_t *self = *self_p;
    if (!self)
        return;
    hvn_http_destroy(&self->http);
    free(self->text);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void hvn_metrics_page_set(hvn_metrics_page_t *self, char *text, size_t size)
{
    assert(self);
    if (!text)
        return;
    pthread_mutex_lock(&self->lock);
    free(self->text);
    self->text = text;
    self->size = size;
    pthread_mutex_unlock(&self->lock);
}
