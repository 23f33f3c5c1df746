/*  embed.c — publishing compute-node notifications from a hypervisor driver.

    A complete program to copy from: create a publisher, report a node as
    its state changes, remove it, destroy the publisher. Build it against an
    installed hvnotify:

        cc embed.c $(pkg-config --cflags --libs hvnotify) -o embed
        ./embed --connect tcp://127.0.0.1:5561

    or with CMake: find_package(hvnotify) and link hvnotify::hvn.

    It exits 0 within a few seconds whether a broker is there or not (the
    publisher keeps the latest state and sends when a broker subscribes);
    --require-broker makes a broker that never took the notifications exit 1.
*/
#include <hvn_publisher.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Sleeps ms milliseconds; in a driver this is the time between polls.
static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

//  Fills node with what a driver knows of its host. Real code reads these
//  from the hypervisor; the uuid must stay the same for the node's life.
static void s_describe_host(hvn_node_t *node)
{
    hvn_node_init(node); //  Every nullable field nil, the rest zero
    node->id = 17;
    strcpy(node->uuid, "5f3bb5bc-7f77-4fd2-9f4c-3e0e8a1c0017");
    hvn_node_set_str(node, HVN_F_HOST, "cmp-017");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, "cmp-017.example.org");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    node->hypervisor_version = 7002000;
    node->vcpus = 32;
    node->memory_mb = 131072;
    node->local_gb = 900;
    hvn_node_set_str(node, HVN_F_HOST_IP, "192.0.2.17");
}

//  Records the guests currently running; derived fields follow.
static void s_set_guests(hvn_node_t *node, int guests)
{
    node->vcpus_used = 4 * guests;
    node->memory_mb_used = 8192 * guests;
    node->local_gb_used = 40 * guests;
    hvn_node_set_int(node, HVN_F_RUNNING_VMS, guests);
    hvn_node_set_int(node, HVN_F_FREE_RAM_MB, node->memory_mb - node->memory_mb_used);
    hvn_node_set_int(node, HVN_F_FREE_DISK_GB, node->local_gb - node->local_gb_used);
    hvn_node_set_int(node, HVN_F_DISK_AVAILABLE_LEAST, node->local_gb - node->local_gb_used);
}

//  Returns 0 on success, 1 when the publisher could not start (or, with
//  --require-broker, when no broker took the notifications), 2 on bad usage.
int main(int argc, char **argv)
{
    const char *endpoint = "tcp://127.0.0.1:5561";
    int rounds = 5;
    int require_broker = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc)
            endpoint = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--require-broker") == 0)
            require_broker = 1;
        else {
            fprintf(stderr, "usage: embed [--connect EP] [--rounds N] [--require-broker]\n");
            return 2;
        }
    }

    //  One publisher per process, created once. The options are copied.
    //  czmq installs its own SIGINT/SIGTERM handlers when the publisher's
    //  socket is created; a program with handlers of its own calls
    //  zsys_handler_set(NULL) (from <czmq.h>) before this.
    hvn_publisher_opts_t opts = {
        .endpoint = endpoint,
        .host = "cmp-017", //  The host part of every topic
        .linger_ms = 1000, //  destroy() waits at most this long to flush
    };
    hvn_publisher_t *pub = hvn_publisher_new(&opts);
    if (!pub) {
        fprintf(stderr, "embed: cannot create a publisher for %s\n", endpoint);
        return 1;
    }

    //  Report as often as you like: the library diffs. The first report
    //  queues compute_node.create, a change of a watched field an update,
    //  an unchanged node nothing (and costs no allocation).
    hvn_node_t node;
    s_describe_host(&node);
    for (int round = 0; round < rounds; round++) {
        s_set_guests(&node, round);
        if (hvn_publisher_report(pub, &node) != 0)
            fprintf(stderr, "embed: node refused (invalid or queue full)\n");
        hvn_publisher_report(pub, &node); //  Unchanged: sends nothing
        s_sleep_ms(100);
    }

    //  The host leaves the fleet: compute_node.delete.
    hvn_publisher_remove(pub, node.uuid);

    //  Optional: wait for the broker to take everything (destroy() would
    //  wait up to linger_ms too).
    int flushed = hvn_publisher_flush(pub, 2000) == 0;
    hvn_publisher_stats_t stats;
    hvn_publisher_stats(pub, &stats);
    printf("embed: %s; %llu reports, %llu creates, %llu updates, %llu deletes sent\n",
           flushed ? "flushed to the broker" : "no broker took them",
           (unsigned long long)stats.reports, (unsigned long long)stats.creates,
           (unsigned long long)stats.updates, (unsigned long long)stats.deletes);

    hvn_publisher_destroy(&pub);
    return require_broker && !flushed ? 1 : 0;
}
