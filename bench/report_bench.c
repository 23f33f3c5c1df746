/*  report_bench.c — what hvn_publisher_report() costs the caller.

    Prints, for each case, nanoseconds per call and heap allocations per
    call made on the calling thread:
      unchanged          the same node again: the path a driver polling
                         every few seconds takes almost always
      unchanged-10k      10 000 nodes, each reported again in turn
      changed            an update-triggering field differs every call, no
                         broker (the queued update is replaced: coalesced)
      changed-broker     the same with a broker (an inproc XSUB that drains)
                         taking every update, so the actor sends as it goes

    Allocations are counted by the malloc, calloc and realloc that
    tests/alloc_count.c defines in this program (ELF interposition: libhvn's and
    libc's calls land there too) and forwards to glibc's __libc_* entry
    points, counting only while the measuring thread has counting switched
    on. Built with sanitizers, the counter is left out (ASan owns malloc)
    and shows "n/a".

    --probe CASE runs only CASE between two getppid() calls, so that
        strace -f -o trace bench_report --probe unchanged
    shows what the loop itself asks of the kernel (bench/syscalls.sh).
*/
#include "bench_common.h"

#include <hvn_publisher.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_RUNS 15 //  --runs at most

// --------------------------------------------------------------------------
//  A broker stand-in: an XSUB that subscribes to everything and drains

//  Actor: binds the endpoint given in args, subscribes, discards messages
//  until told to stop.
static void s_sink(zsock_t *pipe, void *args)
{
    zsock_t *xsub = zsock_new(ZMQ_XSUB);
    assert(xsub);
    zsock_set_rcvhwm(xsub, 0);
    int rc = zsock_bind(xsub, "%s", (const char *)args);
    assert(rc == 0);
    (void)rc;
    zframe_t *subscribe = zframe_new("\x01", 1);
    zframe_send(&subscribe, xsub, 0);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, xsub, NULL);
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which != xsub)
            break;
        zmsg_t *msg = zmsg_recv(xsub);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&xsub);
}

// --------------------------------------------------------------------------
//  Cases

//  Clock of the measured loops: the wall clock (CLOCK_MONOTONIC) for the
//  one-line-per-case output, the thread's CPU time for --runs (the table
//  bench/run prints), where preemption by other work on a busy machine
//  must not count.
static clockid_t s_clock = CLOCK_MONOTONIC;

//  Returns s_clock in ns.
static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(s_clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  One case's result
typedef struct {
    double ns_per_call;     //  Wall time per report()
    double allocs_per_call; //  Heap allocations per report(), calling thread
} s_result_t;

//  Reports nodes[i % count] iterations times; when change is true, flips
//  vcpus_used first, so every call is an update. Returns the cost.
static s_result_t s_measure(hvn_publisher_t *pub, hvn_node_t *nodes, int count, long iterations,
                            bool change, bool probe)
{
    if (probe)
        syscall(SYS_getppid); //  Start marker for strace
    alloc_count_start();
    int64_t start = s_now_ns();
    for (long i = 0; i < iterations; i++) {
        hvn_node_t *node = &nodes[i % count];
        if (change)
            node->vcpus_used ^= 1;
        if (hvn_publisher_report(pub, node) != 0) {
            fprintf(stderr, "bench_report: report refused at call %ld\n", i);
            exit(1);
        }
    }
    int64_t elapsed = s_now_ns() - start;
    unsigned long allocs = alloc_count_stop();
    if (probe)
        syscall(SYS_getppid); //  End marker
    return (s_result_t){(double)elapsed / iterations, (double)allocs / iterations};
}

//  Runs one case by name, printing its line unless quiet; *out (when not
//  NULL) receives the cost. Returns 0, or -1 when the name is unknown.
static int s_run_case(const char *name, long iterations, bool probe, bool quiet, s_result_t *out)
{
    bool broker = streq(name, "changed-broker");
    int count = streq(name, "unchanged-10k") ? 10000 : 1;
    bool change = streq(name, "changed") || broker;
    if (!streq(name, "unchanged") && count == 1 && !change)
        return -1;

    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://bench-%s", name);
    zactor_t *sink = broker ? zactor_new(s_sink, endpoint) : NULL;
    hvn_publisher_opts_t opts = {.endpoint = endpoint, .host = "bench", .linger_ms = 1};
    hvn_publisher_t *pub = hvn_publisher_new(&opts);
    assert(pub);
    hvn_node_t *nodes = calloc(count, sizeof *nodes);
    assert(nodes);
    for (int i = 0; i < count; i++) {
        bc_node(&nodes[i], i, "bench");
        hvn_publisher_report(pub, &nodes[i]); //  The create, not measured
    }
    if (broker)
        hvn_publisher_flush(pub, 5000);
    s_measure(pub, nodes, count, iterations / 10 + 1, change, false); //  Warm-up
    s_result_t r = s_measure(pub, nodes, count, iterations, change, probe);

    hvn_publisher_stats_t stats;
    hvn_publisher_stats(pub, &stats);
    char allocs[32] = "n/a";
    if (ALLOC_COUNTING)
        snprintf(allocs, sizeof allocs, "%.3f", r.allocs_per_call);
    if (out)
        *out = r;
    if (!quiet)
        printf("%-16s %10ld calls %9.1f ns/call %8s allocs/call  (updates sent %llu, coalesced "
               "%llu)\n",
               name, iterations, r.ns_per_call, allocs, (unsigned long long)stats.updates,
               (unsigned long long)stats.coalesced);
    hvn_publisher_set_linger(pub, 0);
    hvn_publisher_destroy(&pub);
    zactor_destroy(&sink);
    free(nodes);
    return 0;
}

//  Runs the unchanged, changed and changed-broker cases `runs` times each
//  and prints a table row per case: the median ns and allocations per
//  call. Returns 0.
static int s_table(long iterations, int runs)
{
    static const struct {
        const char *name, *label;
        double target_ns; //  0 = no target
    } cases[] = {
        {"unchanged", "report() unchanged node, CPU ns/call (allocations/call)", 100},
        {"changed", "report() changed node, no broker, CPU ns/call (allocations/call)", 0},
        {"changed-broker", "report() changed node, broker draining, CPU ns/call (allocations/call)",
         0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double ns[S_MAX_RUNS], allocs[S_MAX_RUNS];
        for (int r = 0; r < runs; r++) {
            s_result_t res = {0};
            s_run_case(cases[c].name, iterations, false, true, &res);
            ns[r] = res.ns_per_call;
            allocs[r] = res.allocs_per_call;
        }
        double n = bc_median(ns, runs), a = bc_median(allocs, runs);
        char alloc_text[32] = "n/a";
        if (ALLOC_COUNTING)
            snprintf(alloc_text, sizeof alloc_text, "%.3f", a);
        if (cases[c].target_ns > 0)
            printf("| %s | %.1f (%s) | | | ≤ %.0f, no allocation | %s |\n", cases[c].label, n,
                   alloc_text, cases[c].target_ns,
                   n <= cases[c].target_ns && ALLOC_COUNTING && a == 0 ? "yes" : "no");
        else
            printf("| %s | %.1f (%s) | | | | |\n", cases[c].label, n, alloc_text);
    }
    return 0;
}

//  Returns 0, 1 on a failed case, 2 on bad usage.
int main(int argc, char **argv)
{
    long iterations = 2000000;
    const char *probe = NULL;
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--iterations") && i + 1 < argc)
            iterations = atol(argv[++i]);
        else if (streq(argv[i], "--probe") && i + 1 < argc)
            probe = argv[++i];
        else if (streq(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_report [--iterations N] [--probe CASE] [--runs N]\n");
            return 2;
        }
    }
    if (iterations < 1 || runs < 0 || runs > S_MAX_RUNS) {
        fprintf(stderr, "bench_report: --iterations must be positive, --runs 1..%d\n", S_MAX_RUNS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); //  Each case's line as it ends
    zsys_init();
    zsys_set_logstream(stderr);
    if (probe) {
        if (s_run_case(probe, iterations, true, false, NULL) != 0) {
            fprintf(stderr, "bench_report: unknown case %s\n", probe);
            return 2;
        }
        return 0;
    }
    if (runs > 0) {
        s_clock = CLOCK_THREAD_CPUTIME_ID;
        return s_table(iterations, runs);
    }
    const char *cases[] = {"unchanged", "unchanged-10k", "changed", "changed-broker"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_run_case(cases[i], iterations, false, false, NULL);
    return 0;
}
