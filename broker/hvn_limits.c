/*  hvn_limits.c — subscriptions per peer and snapshot requests per second.

    Prefixes are bytes (a subscription may hold NUL); the tables key them by
    their hex text, which costs nothing that matters at the rate peers
    subscribe.
*/
#include "hvn_limits.h"
#include "hvn_codec.h"

#include <assert.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define S_BUCKETS_MAX 65536 //  Peers with a snapshot bucket of their own
#define S_OVERFLOW_PEER "\x01overflow"

struct _hvn_sublimit_t {
    size_t max;        //  Distinct prefixes per peer
    size_t total;      //  Applied subscriptions, all peers
    zhashx_t *applied; //  Prefix hex -> count of applied subscriptions (uintptr_t)
    zhashx_t *peers;   //  Peer -> zhashx set of prefix hex (-> holders, _conn calls)
    zhashx_t *conns;   //  Connection fd text -> s_conn_t (the _conn calls)
};

//  What one connection holds (the _conn calls).
typedef struct {
    char *peer;         //  The peer it belongs to
    zhashx_t *prefixes; //  Prefix hex -> 1
    size_t refused;     //  Subscriptions it had refused
    uintptr_t tag;      //  Tells it from another connection on its descriptor
    int closed;         //  Closed: what is still read from it is stale
} s_conn_t;

//  Returns nothing; destroys a connection's record.
static void s_conn_destroy(void **item_p)
{
    s_conn_t *conn = *item_p;
    if (conn) {
        zhashx_destroy(&conn->prefixes);
        free(conn->peer);
        free(conn);
    }
    *item_p = NULL;
}

//  Returns nothing; hex holds the hex text of prefix (2 * size + 1 bytes).
static void s_hex(char *hex, const void *prefix, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *bytes = prefix;
    for (size_t i = 0; i < size; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * size] = '\0';
}

//  Returns nothing; destroys a peer's set.
static void s_set_destroy(void **item_p)
{
    zhashx_t *set = *item_p;
    zhashx_destroy(&set);
    *item_p = NULL;
}

hvn_sublimit_t *hvn_sublimit_new(size_t max)
{
    hvn_sublimit_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->max = max;
    self->applied = zhashx_new();
    self->peers = zhashx_new();
    self->conns = zhashx_new();
    if (!self->applied || !self->peers || !self->conns) {
        hvn_sublimit_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->peers, s_set_destroy);
    zhashx_set_destructor(self->conns, s_conn_destroy);
    return self;
}

void hvn_sublimit_destroy(hvn_sublimit_t **self_p)
{
    assert(self_p);
    hvn_sublimit_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->conns);
    zhashx_destroy(&self->applied);
    zhashx_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

int hvn_sublimit_subscribe(hvn_sublimit_t *self, const char *peer, const void *prefix, size_t size)
{
    assert(self && peer);
    if (size > HVN_TOPIC_MAX)
        return 0; //  Longer than any topic: can never match, never applied
    char hex[2 * HVN_TOPIC_MAX + 1];
    s_hex(hex, prefix, size);
    zhashx_t *set = zhashx_lookup(self->peers, peer);
    if (!set || !zhashx_lookup(set, hex)) {
        if (set && zhashx_size(set) >= self->max)
            return 0;
        if (!set) {
            if (self->max == 0)
                return 0;
            set = zhashx_new();
            if (!set || zhashx_insert(self->peers, peer, set) != 0) {
                zhashx_destroy(&set);
                return -1;
            }
        }
        if (zhashx_insert(set, hex, (void *)1) != 0)
            return -1;
    }
    uintptr_t count = (uintptr_t)zhashx_lookup(self->applied, hex);
    zhashx_update(self->applied, hex, (void *)(count + 1));
    self->total++;
    return 1;
}

void hvn_sublimit_unsubscribe(hvn_sublimit_t *self, const char *peer, const void *prefix,
                              size_t size)
{
    assert(self);
    if (size > HVN_TOPIC_MAX)
        return;
    char hex[2 * HVN_TOPIC_MAX + 1];
    s_hex(hex, prefix, size);
    uintptr_t count = (uintptr_t)zhashx_lookup(self->applied, hex);
    if (count == 0)
        return; //  Never applied (refused, or unsubscribed twice)
    self->total--;
    if (count > 1)
        zhashx_update(self->applied, hex, (void *)(count - 1));
    else
        zhashx_delete(self->applied, hex);
    //  The peer that said so drops it from its set; when nobody holds the
    //  prefix any more, every peer does (a disconnect names no peer)
    zlistx_t *drop = zlistx_new();
    if (!drop)
        return;
    for (zhashx_t *set = zhashx_first(self->peers); set; set = zhashx_next(self->peers)) {
        const char *name = zhashx_cursor(self->peers);
        if (count > 1 && !(peer && streq(peer, name)))
            continue;
        zhashx_delete(set, hex);
        if (zhashx_size(set) == 0)
            zlistx_add_end(drop, (void *)name);
    }
    for (const char *name = zlistx_first(drop); name; name = zlistx_next(drop)) {
        char *copy = strdup(name); //  The key dies with the item
        if (copy) {
            zhashx_delete(self->peers, copy);
            free(copy);
        }
    }
    zlistx_destroy(&drop);
}

//  Returns nothing; the count of hex in table goes up by one (from 0: added).
static int s_count_up(zhashx_t *table, const char *hex)
{
    uintptr_t count = (uintptr_t)zhashx_lookup(table, hex);
    if (count == 0)
        return zhashx_insert(table, hex, (void *)1);
    zhashx_update(table, hex, (void *)(count + 1));
    return 0;
}

//  Returns nothing; the count of hex in table goes down by one (at 0: gone).
static void s_count_down(zhashx_t *table, const char *hex)
{
    uintptr_t count = (uintptr_t)zhashx_lookup(table, hex);
    if (count > 1)
        zhashx_update(table, hex, (void *)(count - 1));
    else if (count == 1)
        zhashx_delete(table, hex);
}

//  Returns nothing; one holder of hex (a connection of peer) is gone.
static void s_release(hvn_sublimit_t *self, const char *peer, const char *hex)
{
    s_count_down(self->applied, hex);
    self->total--;
    zhashx_t *set = zhashx_lookup(self->peers, peer);
    if (set) {
        s_count_down(set, hex);
        if (zhashx_size(set) == 0)
            zhashx_delete(self->peers, peer);
    }
}

//  Returns the record of connection (conn, tag) of peer, made when there is
//  none (the record of an earlier connection on the descriptor is released
//  and replaced), or NULL when out of memory.
static s_conn_t *s_conn_get(hvn_sublimit_t *self, const char *peer, int conn, uintptr_t tag)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", conn);
    s_conn_t *rec = zhashx_lookup(self->conns, key);
    if (rec && (rec->tag != tag || strcmp(rec->peer, peer) != 0)) {
        hvn_sublimit_closed(self, conn);
        zhashx_delete(self->conns, key);
        rec = NULL;
    }
    if (rec)
        return rec;
    rec = calloc(1, sizeof(*rec));
    if (!rec)
        return NULL;
    rec->peer = strdup(peer);
    rec->prefixes = zhashx_new();
    rec->tag = tag;
    if (!rec->peer || !rec->prefixes || zhashx_insert(self->conns, key, rec) != 0) {
        void *item = rec;
        s_conn_destroy(&item);
        return NULL;
    }
    return rec;
}

size_t hvn_sublimit_refused_conn(hvn_sublimit_t *self, const char *peer, int conn, uintptr_t tag)
{
    assert(self && peer && conn >= 0);
    s_conn_t *rec = s_conn_get(self, peer, conn, tag);
    return rec && !rec->closed ? ++rec->refused : 0;
}

int hvn_sublimit_subscribe_conn(hvn_sublimit_t *self, const char *peer, int conn, uintptr_t tag,
                                const void *prefix, size_t size)
{
    assert(self && peer && conn >= 0);
    if (size > HVN_TOPIC_MAX)
        return 0;
    char hex[2 * HVN_TOPIC_MAX + 1];
    s_hex(hex, prefix, size);
    s_conn_t *rec = s_conn_get(self, peer, conn, tag);
    if (!rec)
        return -1;
    if (rec->closed)
        return 3;
    if (zhashx_lookup(rec->prefixes, hex))
        return 2;
    zhashx_t *set = zhashx_lookup(self->peers, peer);
    if ((!set || !zhashx_lookup(set, hex)) && (set ? zhashx_size(set) : 0) >= self->max)
        return 0;
    if (!set) {
        set = zhashx_new();
        if (!set || zhashx_insert(self->peers, peer, set) != 0) {
            zhashx_destroy(&set);
            return -1;
        }
    }
    if (zhashx_insert(rec->prefixes, hex, (void *)1) != 0)
        return -1;
    if (s_count_up(set, hex) != 0 || s_count_up(self->applied, hex) != 0) {
        zhashx_delete(rec->prefixes, hex);
        return -1;
    }
    self->total++;
    return 1;
}

int hvn_sublimit_unsubscribe_conn(hvn_sublimit_t *self, int conn, uintptr_t tag,
                                  const void *prefix, size_t size)
{
    assert(self && conn >= 0);
    if (size > HVN_TOPIC_MAX)
        return 0;
    char hex[2 * HVN_TOPIC_MAX + 1];
    s_hex(hex, prefix, size);
    char key[16];
    snprintf(key, sizeof(key), "%d", conn);
    s_conn_t *rec = zhashx_lookup(self->conns, key);
    if (!rec || rec->tag != tag || !zhashx_lookup(rec->prefixes, hex))
        return 0;
    zhashx_delete(rec->prefixes, hex);
    s_release(self, rec->peer, hex);
    return 1;
}

size_t hvn_sublimit_closed(hvn_sublimit_t *self, int conn)
{
    assert(self);
    char key[16];
    snprintf(key, sizeof(key), "%d", conn);
    s_conn_t *rec = zhashx_lookup(self->conns, key);
    if (!rec)
        return 0;
    size_t released = 0;
    for (void *one = zhashx_first(rec->prefixes); one; one = zhashx_next(rec->prefixes)) {
        s_release(self, rec->peer, zhashx_cursor(rec->prefixes));
        released++;
    }
    zhashx_purge(rec->prefixes);
    rec->closed = 1; //  Kept until the descriptor's next connection
    return released;
}

size_t hvn_sublimit_total(const hvn_sublimit_t *self)
{
    assert(self);
    return self->total;
}

size_t hvn_sublimit_peers(const hvn_sublimit_t *self)
{
    assert(self);
    return zhashx_size(self->peers);
}

// --------------------------------------------------------------------------
//  Token buckets

typedef struct {
    double tokens;   //  Requests it may still make now
    int64_t last_ms; //  When tokens was computed
} s_bucket_t;

struct _hvn_ratelimit_t {
    uint32_t rate;   //  Tokens a second, and the bucket size
    zhashx_t *peers; //  Peer -> s_bucket_t (owned)
};

//  Returns nothing; frees a bucket.
static void s_bucket_destroy(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

hvn_ratelimit_t *hvn_ratelimit_new(uint32_t rate)
{
    hvn_ratelimit_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->rate = rate;
    self->peers = zhashx_new();
    if (!self->peers) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->peers, s_bucket_destroy);
    return self;
}

void hvn_ratelimit_destroy(hvn_ratelimit_t **self_p)
{
    assert(self_p);
    hvn_ratelimit_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

//  Returns nothing; bucket holds the tokens it has at now_ms.
static void s_refill(const hvn_ratelimit_t *self, s_bucket_t *bucket, int64_t now_ms)
{
    if (now_ms > bucket->last_ms) {
        bucket->tokens += (double)(now_ms - bucket->last_ms) * self->rate / 1000.0;
        if (bucket->tokens > self->rate)
            bucket->tokens = self->rate;
        bucket->last_ms = now_ms;
    }
}

int hvn_ratelimit_take(hvn_ratelimit_t *self, const char *peer, int64_t now_ms)
{
    assert(self && peer);
    s_bucket_t *bucket = zhashx_lookup(self->peers, peer);
    if (!bucket) {
        if (zhashx_size(self->peers) >= S_BUCKETS_MAX)
            peer = S_OVERFLOW_PEER;
        bucket = zhashx_lookup(self->peers, peer);
    }
    if (!bucket) {
        bucket = malloc(sizeof(*bucket));
        if (!bucket)
            return 0; //  Out of memory: refuse rather than serve unbounded
        bucket->tokens = self->rate;
        bucket->last_ms = now_ms;
        if (zhashx_insert(self->peers, peer, bucket) != 0) {
            free(bucket);
            return 0;
        }
    }
    s_refill(self, bucket, now_ms);
    if (bucket->tokens < 1.0)
        return 0;
    bucket->tokens -= 1.0;
    return 1;
}

void hvn_ratelimit_expire(hvn_ratelimit_t *self, int64_t now_ms)
{
    assert(self);
    zlistx_t *full = zlistx_new();
    if (!full)
        return;
    zlistx_set_destructor(full, (zlistx_destructor_fn *)zstr_free);
    for (s_bucket_t *bucket = zhashx_first(self->peers); bucket;
         bucket = zhashx_next(self->peers)) {
        s_refill(self, bucket, now_ms);
        if (bucket->tokens >= self->rate)
            zlistx_add_end(full, strdup(zhashx_cursor(self->peers)));
    }
    for (const char *peer = zlistx_first(full); peer; peer = zlistx_next(full))
        if (peer)
            zhashx_delete(self->peers, peer);
    zlistx_destroy(&full);
}

size_t hvn_ratelimit_peers(const hvn_ratelimit_t *self)
{
    assert(self);
    return zhashx_size(self->peers);
}
