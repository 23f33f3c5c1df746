/*  fabric_bench.c — hvn-broker against a bare zmq_proxy, in the same run.

    For each case and each run, the same publisher threads send the same
    pre-encoded notifications (~600-byte bodies over 1 000 nodes, header seq
    rewritten per send) first through one middle, then through the other
    (the order alternates between runs), to the same subscriber threads:

      forward N→M   N publishers send as fast as they can, M subscribers
                    count what arrives; rate = messages delivered to all
                    subscribers / (last arrival − start); loss = 1 −
                    delivered / (sent × M)
      latency       one publisher at a steady rate, the send time
                    (CLOCK_MONOTONIC, the same clock in every process) in
                    each body; one-way p50/p99/p99.9 at the subscriber. The
                    broker's and the proxy's chains run at the same time,
                    paced by one clock (a publisher and a subscriber each),
                    so that other load on the machine hits both alike

    Each forwarding case also prints the middle's CPU time (user + system,
    every thread, from wait4 when it exits, start-up included) per message
    sent: what the broker's work costs, whatever else the machine is doing.

    The middles are separate processes: build/bin/hvn-broker (validation,
    cache, seq tracking on, its own high water marks) and bench/proxy.c
    (libzmq defaults: HWM 1000, which drops under a burst). Publishers are
    XPUBs with ZMQ_XPUB_NODROP, so a publisher waits instead of dropping and
    every loss counted is the middle's or the subscriber's queue's. Before
    a run starts, each publisher sends heartbeats until every subscriber has
    seen one from it: the handshake that says every path is connected.

    Every figure printed is the median over the runs; a ratio is the median
    of the per-run ratios (broker ÷ proxy, the two measured back to back).
    Output: rows of the table bench/run prints.
*/
#include "bench_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_NODES 1000         //  Distinct nodes (and bodies) across publishers
#define S_MAX_PUBS 8         //  Publishers at most
#define S_MAX_SUBS 8         //  Subscribers at most
#define S_HANDSHAKE_MS 15000 //  Longest wait for every path to connect
#define S_RUN_MAX_MS 120000  //  Longest a run may take
#define S_MAX_RUNS 15
#define S_STARTS 3 //  Tries of a run whose middle could not bind its endpoints

//  Returns true when a and b are the same text.
static bool s_streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

typedef enum { S_BROKER = 0, S_PROXY = 1 } s_middle_t;
static const char *const s_middle_names[] = {"hvn-broker", "zmq_proxy"};

//  One run's shared state
typedef struct {
    int npubs;            //  Publisher threads
    int nsubs;            //  Subscriber threads
    long per_pub;         //  Messages each publisher sends
    double rate;          //  Messages per second per publisher; 0 = flat out
    char frontend[256];   //  Middle's XSUB endpoint
    char backend[256];    //  Middle's XPUB endpoint
    atomic_int ready;     //  (subscriber, publisher) pairs connected
    atomic_int go;        //  Publishers may start
    atomic_int pubs_done; //  Every publisher has sent everything
    atomic_int subs_done; //  Every subscriber has finished
    int64_t t_go;         //  When the publishers were let go, ns
} s_run_t;

//  A publisher thread
typedef struct {
    s_run_t *run;   //  The run
    int index;      //  0..npubs-1, host bench-p<index>
    bc_msg_t *msgs; //  Its pre-encoded notifications
    int nmsgs;      //  How many
    bc_msg_t ping;  //  Its heartbeat, the handshake
    long sent;      //  Notifications sent
    int failed;     //  Nonzero when a send failed
} s_pub_t;

//  A subscriber thread
typedef struct {
    s_run_t *run;    //  The run
    long received;   //  Notifications received
    int64_t last_ns; //  Arrival of the last one
    uint32_t seen;   //  Publishers whose heartbeat arrived (bits)
    double *lat;     //  One-way latencies, µs (latency runs)
    long nlat;       //  Entries in lat
    long lat_cap;    //  Room in lat
} s_sub_t;

//  What one run of one middle measured
typedef struct {
    double rate;           //  Delivered messages per second, all subscribers
    double loss;           //  Fraction of (sent × subscribers) not delivered
    double p50, p99, p999; //  Latency, µs (latency runs)
    double cpu_us; //  The middle's CPU (all its threads, its whole life) per message sent, µs
    int ok;        //  Nonzero when the run completed
    int restart;   //  Nonzero when the middle exited (code 1: cannot bind) before connecting
} s_result_t;

//  Two runs started together: the latency case runs the broker's and the
//  proxy's at the same time, paced by one clock, so that whatever else the
//  machine does lands on both alike
typedef struct {
    pthread_mutex_t lock; //  Guards the rest
    pthread_cond_t cond;  //  Signalled when t_go is set or a run failed
    int ready;            //  Runs connected
    int failed;           //  A run could not connect
    int64_t t_go;         //  The common start, ns; 0 = not yet
} s_gate_t;

//  Options
static struct {
    int runs;          //  Runs per case
    long messages;     //  Messages per forwarding case, all publishers
    long lat_messages; //  Messages per latency case
    double lat_rate;   //  Latency case rate, messages per second
    bool tcp, ipc;     //  Transports
    const char *only;  //  One case by name, or NULL
    int idle_ms;       //  Quiet time after the last send that ends a run
    char tmpdir[64];   //  ipc endpoints live here
    int proxy_hwm;     //  The proxy's high water marks; 0 = libzmq's default
} s_opt = {5, 200000, 20000, 10000, true, true, NULL, 1000, "", 0};

// --------------------------------------------------------------------------
//  Threads

//  Returns nothing; sends the three frames of msg (blocking: NODROP).
//  const_body: the body is not changed while libzmq holds it.
static int s_send_msg(void *sock, bc_msg_t *msg, int flags, bool const_body)
{
    if (zmq_send(sock, msg->topic, msg->topic_size, ZMQ_SNDMORE | flags) < 0 ||
        zmq_send(sock, msg->header, HVN_HEADER_SIZE, ZMQ_SNDMORE | flags) < 0)
        return -1;
    if (const_body)
        return zmq_send_const(sock, msg->body, msg->body_size, flags) < 0 ? -1 : 0;
    return zmq_send(sock, msg->body, msg->body_size, flags) < 0 ? -1 : 0;
}

//  Returns NULL; one publisher: handshake, then its share of the run.
static void *s_pub_main(void *arg)
{
    s_pub_t *self = arg;
    s_run_t *run = self->run;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_XPUB);
    int one = 1, linger = 5000;
    zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &one, sizeof(one));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(sock, run->frontend) != 0) {
        self->failed = 1;
        goto done;
    }
    int64_t deadline = bc_now_ns() + (int64_t)S_HANDSHAKE_MS * 1000000;
    while (!atomic_load(&run->go) && !atomic_load(&run->subs_done) && bc_now_ns() < deadline) {
        char sub[256];
        while (zmq_recv(sock, sub, sizeof(sub), ZMQ_DONTWAIT) >= 0)
            ; //  Subscriptions: libzmq keeps them, nothing to do
        s_send_msg(sock, &self->ping, ZMQ_DONTWAIT, false);
        usleep(2000);
    }
    if (!atomic_load(&run->go))
        goto done;
    bool latency = run->rate > 0;
    int64_t period = latency ? (int64_t)(1e9 / run->rate) : 0;
    for (long i = 0; i < run->per_pub; i++) {
        bc_msg_t *msg = &self->msgs[i % self->nmsgs];
        bc_msg_set_seq(msg, (uint64_t)i + 1);
        if (latency) {
            int64_t due = run->t_go + i * period;
            struct timespec ts = {due / 1000000000, due % 1000000000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
            bc_msg_set_stamp(msg, bc_now_ns());
        }
        if (s_send_msg(sock, msg, 0, !latency) != 0) {
            self->failed = 1;
            break;
        }
        self->sent++;
    }
done:
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return NULL;
}

//  Returns the publisher index of a heartbeat topic "hvn.heartbeat@bench-pN",
//  or -1.
static int s_ping_index(const char *topic, size_t size)
{
    static const char prefix[] = HVN_EVENT_HEARTBEAT_NAME "@bench-p";
    size_t plen = sizeof(prefix) - 1;
    if (size <= plen || size > plen + 2 || memcmp(topic, prefix, plen) != 0)
        return -1;
    int index = 0;
    for (size_t i = plen; i < size; i++) {
        if (topic[i] < '0' || topic[i] > '9')
            return -1;
        index = index * 10 + (topic[i] - '0');
    }
    return index < S_MAX_PUBS ? index : -1;
}

//  Returns NULL; one subscriber: marks the handshake, then counts (and
//  times) notifications until all arrived or the line went quiet.
static void *s_sub_main(void *arg)
{
    s_sub_t *self = arg;
    s_run_t *run = self->run;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect(sock, run->backend);
    long expected = run->per_pub * run->npubs;
    zmq_msg_t parts[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&parts[i]);
    int64_t start = bc_now_ns();
    int64_t quiet_since = 0;
    while (self->received < expected) {
        int64_t now = bc_now_ns();
        if (now - start > (int64_t)S_RUN_MAX_MS * 1000000)
            break;
        if (!atomic_load(&run->go) && now - start > (int64_t)S_HANDSHAKE_MS * 1000000)
            break;
        if (atomic_load(&run->pubs_done)) {
            if (!quiet_since)
                quiet_since = now;
            if (now - quiet_since > (int64_t)s_opt.idle_ms * 1000000)
                break;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) <= 0)
            continue;
        //  Drain what is there without polling again
        while (self->received < expected) {
            int n = 0, more = 1;
            while (more) {
                zmq_msg_t *part = &parts[n < 3 ? n : 2];
                if (zmq_msg_recv(part, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0)
                    break;
                more = zmq_msg_more(part);
                n++;
            }
            if (n == 0)
                break;
            quiet_since = 0;
            if (n != 3 || zmq_msg_size(&parts[1]) != HVN_HEADER_SIZE)
                continue;
            const uint8_t *header = zmq_msg_data(&parts[1]);
            if (header[1] == HVN_KIND_HEARTBEAT) {
                int index = s_ping_index(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
                if (index >= 0 && !(self->seen & (1u << index))) {
                    self->seen |= 1u << index;
                    atomic_fetch_add(&run->ready, 1);
                }
                continue;
            }
            if (header[1] != HVN_KIND_NOTIFICATION)
                continue;
            int64_t arrived = bc_now_ns();
            self->received++;
            self->last_ns = arrived;
            if (self->lat && self->nlat < self->lat_cap) {
                int64_t stamp = bc_body_stamp(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]));
                if (stamp > 0)
                    self->lat[self->nlat++] = (double)(arrived - stamp) / 1000.0;
            }
        }
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&parts[i]);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return NULL;
}

// --------------------------------------------------------------------------
//  One run

//  Returns the middle's pid, or -1; endpoints written into run and service.
static pid_t s_middle_start(s_middle_t middle, const char *transport, int serial, s_run_t *run,
                            char *service, size_t service_size)
{
    if (s_streq(transport, "tcp")) {
        snprintf(run->frontend, sizeof(run->frontend), "tcp://127.0.0.1:%d", it_port_free());
        snprintf(run->backend, sizeof(run->backend), "tcp://127.0.0.1:%d", it_port_free());
        snprintf(service, service_size, "tcp://127.0.0.1:%d", it_port_free());
    } else {
        snprintf(run->frontend, sizeof(run->frontend), "ipc://%s/fe-%d", s_opt.tmpdir, serial);
        snprintf(run->backend, sizeof(run->backend), "ipc://%s/be-%d", s_opt.tmpdir, serial);
        snprintf(service, service_size, "ipc://%s/svc-%d", s_opt.tmpdir, serial);
    }
    if (middle == S_PROXY) {
        char hwm[16];
        snprintf(hwm, sizeof(hwm), "%d", s_opt.proxy_hwm);
        const char *args[] = {run->frontend, run->backend, s_opt.proxy_hwm ? hwm : NULL, NULL};
        return bc_spawn("bench_proxy", args);
    }
    const char *args[] = {"--frontend", run->frontend, "--backend", run->backend, "--service",
                          service,      "--name",      "bench",     NULL};
    return bc_spawn("hvn-broker", args);
}

//  Returns true with *t_go the common start once both runs of the gate are
//  connected, false when the other could not connect.
static bool s_gate_pass(s_gate_t *gate, bool connected, int64_t *t_go)
{
    pthread_mutex_lock(&gate->lock);
    if (!connected)
        gate->failed = 1;
    else if (++gate->ready == 2)
        gate->t_go = bc_now_ns();
    pthread_cond_broadcast(&gate->cond);
    while (!gate->t_go && !gate->failed)
        pthread_cond_wait(&gate->cond, &gate->lock);
    bool go = gate->t_go != 0 && connected;
    *t_go = gate->t_go;
    pthread_mutex_unlock(&gate->lock);
    return go;
}

//  Returns what one run of `middle` measured (ok = 0 when it failed). With
//  a gate, starts together with the gate's other run.
static s_result_t s_run_once(s_middle_t middle, const char *transport, int npubs, int nsubs,
                             long per_pub, double rate, bc_msg_t msgs[][S_NODES], int nmsgs,
                             bc_msg_t *pings, s_gate_t *gate)
{
    //  The paired latency run starts both middles from two threads at once:
    //  each needs endpoints of its own
    static atomic_int serial = 0;
    s_result_t result = {0};
    s_run_t run = {.npubs = npubs, .nsubs = nsubs, .per_pub = per_pub, .rate = rate};
    char service[256];
    pid_t pid = s_middle_start(middle, transport, atomic_fetch_add(&serial, 1), &run, service,
                               sizeof(service));
    if (pid < 0)
        return result;
    s_pub_t pubs[S_MAX_PUBS] = {{0}};
    s_sub_t subs[S_MAX_SUBS] = {{0}};
    pthread_t pub_threads[S_MAX_PUBS], sub_threads[S_MAX_SUBS];
    for (int s = 0; s < nsubs; s++) {
        subs[s].run = &run;
        if (rate > 0) {
            subs[s].lat_cap = per_pub * npubs;
            subs[s].lat = malloc(sizeof(double) * (size_t)subs[s].lat_cap);
        }
        pthread_create(&sub_threads[s], NULL, s_sub_main, &subs[s]);
    }
    for (int p = 0; p < npubs; p++) {
        pubs[p] =
            (s_pub_t){.run = &run, .index = p, .msgs = msgs[p], .nmsgs = nmsgs, .ping = pings[p]};
        pthread_create(&pub_threads[p], NULL, s_pub_main, &pubs[p]);
    }
    //  A middle that could not start (or died) fails the run at once
    int64_t deadline = bc_now_ns() + (int64_t)S_HANDSHAKE_MS * 1000000;
    int code = 0;
    bool ended = false;
    while (atomic_load(&run.ready) < npubs * nsubs && bc_now_ns() < deadline &&
           !(ended = bc_ended(pid, &code)))
        usleep(1000);
    bool connected = atomic_load(&run.ready) >= npubs * nsubs;
    bool paths = connected;
    if (gate)
        connected = s_gate_pass(gate, connected, &run.t_go);
    else if (connected)
        run.t_go = bc_now_ns();
    if (connected)
        atomic_store(&run.go, 1);
    else
        atomic_store(&run.subs_done, 1); //  Publishers give up their handshake
    long sent = 0;
    int failed = 0;
    for (int p = 0; p < npubs; p++) {
        pthread_join(pub_threads[p], NULL);
        sent += pubs[p].sent;
        failed |= pubs[p].failed;
    }
    atomic_store(&run.pubs_done, 1);
    long received = 0;
    int64_t last = run.t_go;
    for (int s = 0; s < nsubs; s++) {
        pthread_join(sub_threads[s], NULL);
        received += subs[s].received;
        if (subs[s].last_ns > last)
            last = subs[s].last_ns;
    }
    atomic_store(&run.subs_done, 1);
    if (middle == S_BROKER && connected) {
        void *ctx = zmq_ctx_new();
        bc_stats_t stats;
        if (bc_broker_stats(ctx, service, 5000, &stats) == 0 && stats.refused > 0) {
            fprintf(stderr, "bench_fabric: the broker refused %llu messages\n",
                    (unsigned long long)stats.refused);
            failed = 1;
        }
        zmq_ctx_term(ctx);
    }
    double cpu_s = 0;
    bc_stop(pid, SIGTERM, 5000, &cpu_s);
    //  A TCP port that was free when picked can be taken by any connect on
    //  the machine (the other chain's among them) before the middle binds it
    result.restart = ended && code == 1;
    if (ended)
        fprintf(stderr,
                "bench_fabric: %s over %s: the middle ended (exit code %d) before every "
                "path connected\n",
                s_middle_names[middle], transport, code);
    else if (!paths)
        fprintf(stderr, "bench_fabric: %s over %s: not every path connected within %d ms\n",
                s_middle_names[middle], transport, S_HANDSHAKE_MS);
    else if (!connected)
        fprintf(stderr, "bench_fabric: %s over %s: the run beside it did not connect\n",
                s_middle_names[middle], transport);
    if (connected && !failed && received > 0 && last > run.t_go) {
        result.ok = 1;
        result.rate = (double)received / ((double)(last - run.t_go) / 1e9);
        result.loss = 1.0 - (double)received / ((double)sent * nsubs);
        result.cpu_us = cpu_s * 1e6 / (double)sent;
        if (rate > 0 && subs[0].nlat > 0) {
            bc_median(subs[0].lat, (int)subs[0].nlat); //  Sorts
            result.p50 = bc_quantile(subs[0].lat, (int)subs[0].nlat, 0.50);
            result.p99 = bc_quantile(subs[0].lat, (int)subs[0].nlat, 0.99);
            result.p999 = bc_quantile(subs[0].lat, (int)subs[0].nlat, 0.999);
        }
    }
    for (int s = 0; s < nsubs; s++)
        free(subs[s].lat);
    return result;
}

//  One side of a paired run, for its thread
typedef struct {
    s_middle_t middle;         //  Which middle
    const char *transport;     //  tcp or ipc
    long per_pub;              //  Messages to send
    double rate;               //  Their rate
    bc_msg_t (*msgs)[S_NODES]; //  Its own messages (written in place while sent)
    int nmsgs;                 //  How many
    bc_msg_t *pings;           //  Its heartbeat
    s_gate_t *gate;            //  Shared with the other side
    s_result_t result;         //  What it measured
} s_side_t;

//  Returns NULL; runs one side of a paired run.
static void *s_side_main(void *arg)
{
    s_side_t *side = arg;
    side->result = s_run_once(side->middle, side->transport, 1, 1, side->per_pub, side->rate,
                              side->msgs, side->nmsgs, side->pings, side->gate);
    return NULL;
}

//  Returns nothing; res[S_BROKER] and res[S_PROXY] hold one latency run of
//  each middle, both running at once, paced by the same clock.
static void s_run_paired(const char *transport, long per_pub, double rate, bc_msg_t msgs[][S_NODES],
                         int nmsgs, bc_msg_t *pings, s_result_t res[2])
{
    s_gate_t gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    s_side_t sides[2];
    pthread_t threads[2];
    for (int m = 0; m < 2; m++) {
        //  Messages and heartbeat of publisher m: each side writes its own
        sides[m] = (s_side_t){.middle = (s_middle_t)m,
                              .transport = transport,
                              .per_pub = per_pub,
                              .rate = rate,
                              .msgs = msgs + m,
                              .nmsgs = nmsgs,
                              .pings = pings + m,
                              .gate = &gate};
        pthread_create(&threads[m], NULL, s_side_main, &sides[m]);
    }
    for (int m = 0; m < 2; m++) {
        pthread_join(threads[m], NULL);
        res[m] = sides[m].result;
    }
    pthread_mutex_destroy(&gate.lock);
    pthread_cond_destroy(&gate.cond);
}

// --------------------------------------------------------------------------
//  Cases

//  Returns 0 with every publisher's messages and heartbeat built.
static int s_build(int npubs, bool stamp, bc_msg_t msgs[][S_NODES], int *nmsgs, bc_msg_t *pings)
{
    hvn_encoder_t *encoder = hvn_encoder_new();
    *nmsgs = S_NODES / npubs;
    int rc = 0;
    for (int p = 0; p < npubs && rc == 0; p++) {
        char host[32];
        snprintf(host, sizeof(host), "bench-p%d", p);
        uint8_t instance[16];
        hvn_uuid4_raw(instance);
        rc |= bc_msg_heartbeat(encoder, host, instance, &pings[p]);
        for (int i = 0; i < *nmsgs && rc == 0; i++) {
            hvn_node_t node;
            bc_node(&node, p * *nmsgs + i, host);
            rc |= bc_msg_notification(encoder, HVN_EVENT_UPDATE, host, &node, instance, stamp,
                                      &msgs[p][i]);
        }
    }
    hvn_encoder_destroy(&encoder);
    return rc;
}

//  Returns nothing; frees what s_build made.
static void s_unbuild(int npubs, bc_msg_t msgs[][S_NODES], int nmsgs, bc_msg_t *pings)
{
    for (int p = 0; p < npubs; p++) {
        bc_msg_free(&pings[p]);
        for (int i = 0; i < nmsgs; i++)
            bc_msg_free(&msgs[p][i]);
    }
}

//  Returns "412 000" style text of a rate in buf.
static const char *s_rate_text(char *buf, size_t size, double rate)
{
    long r = (long)(rate + 0.5);
    if (r >= 1000000)
        snprintf(buf, size, "%ld %03ld %03ld", r / 1000000, r / 1000 % 1000, r % 1000);
    else if (r >= 1000)
        snprintf(buf, size, "%ld %03ld", r / 1000, r % 1000);
    else
        snprintf(buf, size, "%ld", r);
    return buf;
}

//  Returns 0 when every run of both middles completed; prints the case's
//  table row.
static int s_case(const char *name, const char *transport, int npubs, int nsubs, long total,
                  double rate)
{
    static bc_msg_t msgs[S_MAX_PUBS][S_NODES];
    bc_msg_t pings[S_MAX_PUBS];
    int nmsgs;
    //  A latency case runs both middles at once, each with a publisher of
    //  its own: two sets of messages
    if (s_build(rate > 0 ? 2 : npubs, rate > 0, msgs, &nmsgs, pings) != 0) {
        fprintf(stderr, "bench_fabric: cannot encode the messages\n");
        return -1;
    }
    long per_pub = total / npubs;
    double v[2][6][S_MAX_RUNS], ratio[3][S_MAX_RUNS]; //  [middle][metric][run]
    int n = 0, failed = 0;
    for (int r = 0; r < s_opt.runs; r++) {
        s_result_t res[2];
        for (int start = 1;; start++) {
            if (rate > 0)
                s_run_paired(transport, per_pub, rate, msgs, nmsgs, pings, res);
            else
                for (int k = 0; k < 2; k++) {
                    s_middle_t middle = (s_middle_t)((r + k) % 2);
                    res[middle] = s_run_once(middle, transport, npubs, nsubs, per_pub, rate, msgs,
                                             nmsgs, pings, NULL);
                }
            if (!(res[0].restart || res[1].restart) || start == S_STARTS)
                break;
            fprintf(stderr, "bench_fabric: %s, %s: run %d again with new endpoints\n", name,
                    transport, r);
        }
        if (!res[0].ok || !res[1].ok) {
            failed++;
            continue;
        }
        for (int m = 0; m < 2; m++) {
            v[m][0][n] = res[m].rate;
            v[m][1][n] = res[m].loss * 100;
            v[m][2][n] = res[m].p50;
            v[m][3][n] = res[m].p99;
            v[m][4][n] = res[m].p999;
            v[m][5][n] = res[m].cpu_us;
        }
        ratio[0][n] = res[0].rate / res[1].rate;
        ratio[1][n] = res[1].p99 > 0 ? res[0].p99 / res[1].p99 : 0;
        ratio[2][n] = res[1].cpu_us > 0 ? res[0].cpu_us / res[1].cpu_us : 0;
        if (getenv("BENCH_VERBOSE"))
            fprintf(stderr,
                    "%s %s run %d: broker %.0f/s loss %.2f%% p99 %.1f cpu %.2f | proxy %.0f/s "
                    "loss %.2f%% p99 %.1f cpu %.2f\n",
                    name, transport, r, res[0].rate, res[0].loss * 100, res[0].p99, res[0].cpu_us,
                    res[1].rate, res[1].loss * 100, res[1].p99, res[1].cpu_us);
        n++;
    }
    s_unbuild(rate > 0 ? 2 : npubs, msgs, nmsgs, pings);
    if (n == 0) {
        printf("| %s, %s | failed | failed | | | |\n", name, transport);
        return -1;
    }
    double med[2][6];
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 6; k++)
            med[m][k] = bc_median(v[m][k], n);
    char hwm[64] = ""; //  Says so when the proxy runs with other HWMs
    if (s_opt.proxy_hwm)
        snprintf(hwm, sizeof(hwm), " (proxy's HWMs %d)", s_opt.proxy_hwm);
    char a[32], b[32];
    if (rate > 0) {
        double r99 = bc_median(ratio[1], n);
        printf(
            "| latency µs p50 / p99 / p99.9, %s, %.0f msg/s | %.0f / %.0f / %.0f | %.0f / %.0f / "
            "%.0f | p99 %.2f | ≤ 1.2 | %s |\n",
            transport, rate, med[0][2], med[0][3], med[0][4], med[1][2], med[1][3], med[1][4], r99,
            r99 <= 1.2 ? "yes" : "no");
    } else {
        double r = bc_median(ratio[0], n);
        printf("| %s, %s%s: msg/s delivered (loss) | %s (%.1f %%) | %s (%.1f %%) | %.2f | ≥ 0.9 | "
               "%s |\n",
               name, transport, hwm, s_rate_text(a, sizeof(a), med[0][0]), med[0][1],
               s_rate_text(b, sizeof(b), med[1][0]), med[1][1], r, r >= 0.9 ? "yes" : "no");
    }
    if (rate == 0)
        printf("| %s, %s%s: middle's CPU µs per message | %.2f | %.2f | %.2f | | |\n", name,
               transport, hwm, med[0][5], med[1][5], bc_median(ratio[2], n));
    fflush(stdout);
    return failed ? -1 : 0;
}

//  Returns 0 when every case ran, 1 when one failed, 2 on bad usage.
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (s_streq(argv[i], "--runs") && i + 1 < argc)
            s_opt.runs = atoi(argv[++i]);
        else if (s_streq(argv[i], "--messages") && i + 1 < argc)
            s_opt.messages = atol(argv[++i]);
        else if (s_streq(argv[i], "--latency-messages") && i + 1 < argc)
            s_opt.lat_messages = atol(argv[++i]);
        else if (s_streq(argv[i], "--rate") && i + 1 < argc)
            s_opt.lat_rate = atof(argv[++i]);
        else if (s_streq(argv[i], "--transport") && i + 1 < argc) {
            const char *t = argv[++i];
            s_opt.tcp = s_streq(t, "tcp") || s_streq(t, "both");
            s_opt.ipc = s_streq(t, "ipc") || s_streq(t, "both");
        } else if (s_streq(argv[i], "--case") && i + 1 < argc)
            s_opt.only = argv[++i];
        else if (s_streq(argv[i], "--proxy-hwm") && i + 1 < argc)
            s_opt.proxy_hwm = atoi(argv[++i]);
        else if (s_streq(argv[i], "--smoke")) {
            s_opt.runs = 1;
            s_opt.messages = 4000;
            s_opt.lat_messages = 200;
            s_opt.lat_rate = 2000;
            s_opt.idle_ms = 300;
        } else {
            fprintf(stderr, "usage: bench_fabric [--runs N] [--messages N] [--latency-messages N] "
                            "[--rate MSG_PER_S] [--transport tcp|ipc|both] "
                            "[--case 1-1|4-1|1-4|latency] [--proxy-hwm N] [--smoke]\n");
            return 2;
        }
    }
    if (s_opt.runs < 1 || s_opt.runs > S_MAX_RUNS || s_opt.messages < 4 || s_opt.lat_messages < 1 ||
        s_opt.lat_rate <= 0 || (!s_opt.tcp && !s_opt.ipc) || s_opt.proxy_hwm < 0) {
        fprintf(stderr, "bench_fabric: option out of range (runs 1..%d)\n", S_MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(s_opt.tmpdir, sizeof(s_opt.tmpdir), "/tmp/hvn-bench-XXXXXX");
    if (!mkdtemp(s_opt.tmpdir)) {
        perror("bench_fabric: mkdtemp");
        return 1;
    }
    static const struct {
        const char *key, *name;
        int npubs, nsubs;
    } cases[] = {
        {"1-1", "forward 1→1", 1, 1},
        {"4-1", "forward 4→1", 4, 1},
        {"1-4", "forward 1→4", 1, 4},
    };
    int rc = 0;
    const char *transports[2] = {s_opt.tcp ? "tcp" : NULL, s_opt.ipc ? "ipc" : NULL};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int t = 0; t < 2; t++)
            if (transports[t] && (!s_opt.only || s_streq(s_opt.only, cases[c].key)))
                rc |= s_case(cases[c].name, transports[t], cases[c].npubs, cases[c].nsubs,
                             s_opt.messages, 0) != 0;
    for (int t = 0; t < 2; t++)
        if (transports[t] && (!s_opt.only || s_streq(s_opt.only, "latency")))
            rc |= s_case("latency", transports[t], 1, 1, s_opt.lat_messages, s_opt.lat_rate) != 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_opt.tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fabric: could not remove %s\n", s_opt.tmpdir);
    return rc;
}
