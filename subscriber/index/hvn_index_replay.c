/*  hvn_index_replay.c — what hvn-index missed while it was not running,
    asked of the brokers' replay rings.

    The one idea: the seqs of a publisher instance are consecutive, so
    "what was missed" is a range per instance — from the seq the database
    recorded to the one the first snapshot covers — and a ring answers a
    range. Each range is asked in chunks of at most HVN_REPLAY_SPAN_MAX;
    a bitmap per chunk counts each seq once across brokers, so what no
    broker holds is an exact count.
*/
#include "hvn_index_replay.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "hvn_service.h"
#include "hvn_subscriber.h"

#define S_TIMEOUT_MS 2000 //  Default wait for a REPLAY's reply

//  One publisher instance as the database recorded it
typedef struct {
    uint8_t instance[16]; //  Raw UUID
    uint64_t seq;         //  Last seq written
} s_followed_t;

struct _hvn_index_replay_t {
    hvn_index_replay_opts_t opts;                    //  Copied (strings borrowed)
    s_followed_t *followed;                          //  As recorded at start
    size_t count;                                    //  Entries in followed
    size_t alloc;                                    //  Allocated
    hvn_subscriber_t *subs[HVN_REPLICA_BROKERS_MAX]; //  One per broker, made when first asked
    bool tried[HVN_REPLICA_BROKERS_MAX];             //  subs[i] was attempted
};

//  One chunk being asked
typedef struct {
    hvn_index_t *index;                   //  Where the notifications go
    const uint8_t *instance;              //  Whose
    uint64_t first;                       //  First seq of the chunk
    uint64_t last;                        //  Last seq of the chunk
    uint8_t got[HVN_REPLAY_SPAN_MAX / 8]; //  Bit per seq received
    uint64_t count;                       //  Distinct seqs received
} s_chunk_t;

// --------------------------------------------------------------------------
//  What was recorded

//  Returns 0 after keeping one publishers row (the hvn_db_row_fn); 1 to
//  stop when memory ran out.
static int s_followed_row(size_t columns, const char *const *values, void *arg)
{
    hvn_index_replay_t *self = arg;
    s_followed_t f;
    if (columns < 2 || !values[0] || !values[1] ||
        hvn_uuid_parse(values[0], strlen(values[0]), f.instance) != 0)
        return 0;
    f.seq = strtoull(values[1], NULL, 10);
    if (self->count == self->alloc) {
        size_t alloc = self->alloc ? self->alloc * 2 : 64;
        s_followed_t *grown = realloc(self->followed, alloc * sizeof(*grown));
        if (!grown)
            return 1;
        self->followed = grown;
        self->alloc = alloc;
    }
    self->followed[self->count++] = f;
    return 0;
}

hvn_index_replay_t *hvn_index_replay_new(const hvn_index_replay_opts_t *opts, hvn_db_t *db)
{
    assert(opts && db && opts->backends && opts->services);
    assert(opts->broker_count >= 1 && opts->broker_count <= HVN_REPLICA_BROKERS_MAX);
    hvn_index_replay_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->opts = *opts;
    if (self->opts.timeout_ms <= 0)
        self->opts.timeout_ms = S_TIMEOUT_MS;
    if (hvn_db_query(db, "SELECT instance, seq FROM publishers", NULL, 0, s_followed_row, self) <
        0) {
        zsys_error("index: cannot read the publishers recorded: %s", hvn_db_error(db));
        hvn_index_replay_destroy(&self);
    }
    return self;
}

void hvn_index_replay_destroy(hvn_index_replay_t **self_p)
{
    assert(self_p);
    hvn_index_replay_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < HVN_REPLICA_BROKERS_MAX; i++)
        hvn_subscriber_destroy(&self->subs[i]);
    free(self->followed);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Asking the rings

//  Returns broker i's subscriber, made at the first call (NULL when it
//  cannot be made). It never receives: its receive queue is one message.
static hvn_subscriber_t *s_sub(hvn_index_replay_t *self, size_t i)
{
    if (!self->tried[i]) {
        self->tried[i] = true;
        const char *topics[] = {"compute_node."};
        hvn_subscriber_opts_t opts = {.endpoint = self->opts.backends[i],
                                      .service = self->opts.services[i],
                                      .topics = topics,
                                      .topic_count = 1,
                                      .curve_secret = self->opts.curve_secret,
                                      .curve_server = self->opts.curve_server,
                                      .rcvhwm = 1,
                                      .replay_timeout_ms = -1};
        self->subs[i] = hvn_subscriber_new(&opts);
    }
    return self->subs[i];
}

//  Returns nothing; hands one replayed notification of the chunk to the
//  writer, once per seq (the hvn_snapshot_fn).
static void s_item(const hvn_msg_t *msg, void *arg)
{
    s_chunk_t *c = arg;
    uint64_t seq = msg->header.seq;
    if (msg->header.kind != HVN_KIND_NOTIFICATION || seq < c->first || seq > c->last ||
        memcmp(msg->header.instance, c->instance, 16) != 0)
        return;
    uint64_t bit = seq - c->first;
    if (c->got[bit / 8] & (1u << (bit % 8)))
        return;
    c->got[bit / 8] |= (uint8_t)(1u << (bit % 8));
    c->count++;
    hvn_index_replayed(c->index, msg);
}

//  What the brokers said of one instance's seqs
typedef struct {
    bool answered;   //  Some broker answered
    uint64_t oldest; //  Oldest seq a ring holds (0: none said)
    uint64_t newest; //  Newest seq a ring holds (0: none said)
} s_held_t;

//  Returns nothing; asks each broker in turn for the chunk until one held
//  all of it (c->count says how many seqs came), and fills *held.
static void s_ask(hvn_index_replay_t *self, s_chunk_t *c, s_held_t *held)
{
    *held = (s_held_t){false, 0, 0};
    uint64_t span = c->last - c->first + 1;
    for (size_t i = 0; i < self->opts.broker_count && c->count < span; i++) {
        hvn_subscriber_t *sub = s_sub(self, i);
        hvn_end_t end = {.count = 0};
        if (!sub || hvn_subscriber_replay(sub, c->instance, c->first, c->last, s_item, c, &end,
                                          self->opts.timeout_ms) < 0)
            continue;
        held->answered = true;
        if (end.last > held->newest)
            held->newest = end.last;
        if (end.first && (!held->oldest || end.first < held->oldest))
            held->oldest = end.first;
        hvn_end_clear(&end);
    }
}

//  Returns the notifications handed over for one instance: the seqs after
//  the recorded one up to target (0: up to the newest a ring holds), chunk
//  by chunk; what no ring holds is counted and logged.
static uint64_t s_instance(hvn_index_replay_t *self, hvn_index_t *index, const s_followed_t *f,
                           uint64_t target)
{
    s_chunk_t *c = malloc(sizeof(*c)); //  The bitmap is large for a stack
    if (!c)
        return 0;
    uint64_t handed = 0, missed = 0, first = f->seq + 1;
    bool open_ended = target == 0, answered = false;
    while ((open_ended || first <= target) && !zsys_interrupted) {
        *c = (s_chunk_t){.index = index, .instance = f->instance, .first = first};
        c->last = first + HVN_REPLAY_SPAN_MAX - 1;
        if (!open_ended && c->last > target)
            c->last = target;
        s_held_t held;
        s_ask(self, c, &held);
        answered |= held.answered;
        if (open_ended) { //  Nothing named the instance: up to what a ring holds of it
            target = held.newest;
            open_ended = false;
            if (target < first)
                break;
            if (c->last > target)
                c->last = target;
        }
        handed += c->count;
        missed += c->last - first + 1 - c->count;
        first = c->last + 1;
        if (!held.answered) { //  No broker answers: the rest is missed too
            missed += first <= target ? target - first + 1 : 0;
            break;
        }
        if (c->count == 0 && held.oldest > first) { //  Evicted up to the ring's oldest
            uint64_t to = held.oldest - 1 < target ? held.oldest - 1 : target;
            missed += to >= first ? to - first + 1 : 0;
            first = to + 1;
        }
    }
    if (missed) {
        char text[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(f->instance, text);
        zsys_warning("index: %" PRIu64 " notifications of publisher %s (seqs %" PRIu64 "..%" PRIu64
                     ") were missed while the index was not running and %s; the "
                     "snapshot's repair rows record what they changed",
                     missed, text, f->seq + 1, target,
                     answered ? "no broker's ring holds them any more"
                              : "no broker answered the REPLAY");
        hvn_index_missed(index, missed);
    }
    free(c);
    return handed;
}

int hvn_index_replay_run(hvn_index_replay_t *self, hvn_replica_t *replica, hvn_index_t *index)
{
    assert(self && replica && index);
    uint64_t handed = 0;
    for (size_t i = 0; i < self->count && !zsys_interrupted; i++) {
        const s_followed_t *f = &self->followed[i];
        uint64_t target = hvn_replica_snapshot_seq(replica, f->instance);
        if (target != 0 && target <= f->seq)
            continue; //  The snapshot covers nothing it had not recorded
        handed += s_instance(self, index, f, target);
    }
    for (size_t i = 0; i < HVN_REPLICA_BROKERS_MAX; i++)
        hvn_subscriber_destroy(&self->subs[i]);
    memset(self->tried, 0, sizeof(self->tried));
    if (handed)
        zsys_info("index: %" PRIu64 " notifications missed while not running recorded from the "
                  "brokers' rings",
                  handed);
    return (int)handed;
}
