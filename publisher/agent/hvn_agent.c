/*  hvn_agent.c — hvn-agent, the host daemon.

    Collects this host's compute node every interval and reports it through
    the publisher library, which diffs and sends only what the protocol says
    to send. The node's uuid is derived once and kept in the state directory,
    which the library also uses for its last-sent state, so a restarted agent
    continues the node instead of creating it again.

    Exit codes: 0 done (or stopped by SIGINT/SIGTERM after a flush), 1 a
    run-time failure (state directory, broker unreachable with --once,
    libvirt unreachable with --once), 2 bad usage.
*/
#include "hvn_agent_collect.h"
#include "hvn_http.h"
#include "hvn_metrics.h"
#include "hvn_pub_opt.h"
#ifdef HVN_HAVE_LIBVIRT
#include "hvn_agent_libvirt.h"
#endif

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NAME "hvn-agent"
#define S_FLUSH_MS 5000       //  Longest a --once or a shutdown waits for the broker
#define S_LINGER_MS 1000      //  What destroy() may add after that
#define S_DEFAULT_INTERVAL 60 //  Seconds, as Nova's resource periodic task
#define S_SLICE_MS 100        //  How often the wait checks for a signal

//  Command-line settings
typedef struct {
    char endpoint[2048];        //  --connect values, comma-joined
    const char *host;           //  --host, NULL = short host name
    const char *state_dir;      //  --state-dir
    const char *instances_path; //  --instances-path
    const char *libvirt_uri;    //  --libvirt-uri, NULL = no libvirt
    int interval_s;             //  --interval
    int heartbeat_ms;           //  --heartbeat-ms, 0 = library default
    bool once;                  //  --once
    bool decommission;          //  --decommission
    const char *curve_secret;   //  --curve-secret, NULL = plain text
    const char *server_key;     //  --server-key
    const char *metrics;        //  --metrics ADDR:PORT, NULL = no /metrics
} s_args_t;

//  The running agent
typedef struct {
    s_args_t args;               //  Settings
    hvn_agent_sources_t sources; //  Where the collectors read
    hvn_agent_identity_t ident;  //  Who this node is
    hvn_publisher_t *pub;        //  The library's publisher
    bool skipping;               //  The last collection failed (logged once)
    hvn_http_t *http;            //  --metrics: the /metrics endpoint, or NULL
#ifdef HVN_HAVE_LIBVIRT
    hvn_agent_libvirt_t *libvirt; //  Connection, when --libvirt-uri
#endif
} s_agent_t;

// --------------------------------------------------------------------------
//  Command line

//  Returns nothing; args hold the command line, or the process has exited
//  (0 after --help, 2 on bad usage).
static void s_parse_args(int argc, char **argv, s_args_t *args)
{
    const char *connect[HVN_PUB_CONNECT_MAX + 1] = {NULL};
    long interval_s = S_DEFAULT_INTERVAL, heartbeat_ms = 10000;
    *args = (s_args_t){.state_dir = HVN_AGENT_STATE_DIR,
                       .instances_path = HVN_AGENT_INSTANCES_PATH};
    const hvn_opt_t options[] = {
        hvn_pub_opt_connect(connect, "broker frontend, e.g. tcp://broker:5561 (required);\n"
                                     "repeat to publish to several brokers at once"),
        hvn_pub_opt_host(&args->host, "host name in topics and payload", "the short host name"),
        {.name = "interval", .type = HVN_OPT_INT, .dest = &interval_s, .metavar = "SECONDS",
         .help = "seconds between reports", .min = 1, .max = 86400},
        {.name = "once", .type = HVN_OPT_FLAG, .dest = &args->once,
         .help = "report once, wait for the broker to take it, exit"},
        {.name = "state-dir", .type = HVN_OPT_PATH, .dest = &args->state_dir, .metavar = "DIR",
         .help = "node uuid and last-sent state"},
        {.name = "instances-path", .type = HVN_OPT_PATH, .dest = &args->instances_path,
         .metavar = "PATH", .help = "disk to measure (else /)"},
        {.name = "libvirt-uri", .type = HVN_OPT_STRING, .dest = &args->libvirt_uri,
         .metavar = "URI",
         .help = "read running VMs and the hypervisor from libvirt,\n"
                 "e.g. qemu:///system or test:///default",
         .default_text = "no libvirt"},
        {.name = "decommission", .type = HVN_OPT_FLAG, .dest = &args->decommission,
         .help = "send the delete of this host's node, forget it, exit"},
        {.name = "heartbeat-ms", .type = HVN_OPT_INT, .dest = &heartbeat_ms, .metavar = "MS",
         .help = "publisher heartbeat interval", .min = 1, .max = 3600000},
        hvn_pub_opt_curve_secret(&args->curve_secret),
        hvn_pub_opt_server_key(&args->server_key),
        {.name = "metrics", .type = HVN_OPT_ADDRESS, .dest = &args->metrics,
         .metavar = "ADDR:PORT",
         .help = "serve the publisher's counters as Prometheus text on\n"
                 "http://ADDR:PORT/metrics",
         .default_text = "off"},
        {.name = NULL},
    };
    const hvn_opt_program_t program = {
        .name = S_NAME,
        .summary = "Report this host's compute node to an hvn-broker every interval.",
        .epilogue = "Runs in the foreground and logs to stderr; SIGINT or SIGTERM flushes and\n"
                    "stops it. Exit status: 0 on success, 1 when it cannot run (state\n"
                    "directory, publisher, a broker that never took --once), 2 on bad usage.",
        .options = options,
    };
    hvn_opt_parse(&program, argc, argv);
    if (!connect[0])
        hvn_opt_fail(&program, "--connect is required");
    if (!args->curve_secret != !args->server_key)
        hvn_opt_fail(&program, "--curve-secret and --server-key go together");
#ifndef HVN_HAVE_LIBVIRT
    if (args->libvirt_uri)
        hvn_opt_fail(&program, "--libvirt-uri: this hvn-agent was built without libvirt");
#endif
    for (size_t i = 0; connect[i]; i++) {
        if (strlen(args->endpoint) + 1 + strlen(connect[i]) >= sizeof(args->endpoint))
            hvn_opt_fail(&program, "--connect: the endpoints are too long together");
        if (*args->endpoint)
            strcat(args->endpoint, ",");
        strcat(args->endpoint, connect[i]);
    }
    args->interval_s = (int)interval_s;
    args->heartbeat_ms = (int)heartbeat_ms;
}

// --------------------------------------------------------------------------
//  Start-up

//  Creates dir and its missing parents (mode 0750). Returns 0, or -1 with
//  errno set by the mkdir that failed.
static int s_mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash)
            *slash = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        if (!slash)
            return 0;
        *slash = '/';
    }
}

//  Makes sure the state directory exists and is writable. Returns 0, or -1
//  after printing why not.
static int s_check_state_dir(const char *dir)
{
    if (access(dir, F_OK) != 0 && s_mkdir_p(dir) != 0) {
        fprintf(stderr, S_NAME ": state directory %s cannot be created: %s\n", dir,
                strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, S_NAME ": state directory %s is not writable: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

//  Works out the node's uuid, id and names. Returns 0, or -1 (printed).
static int s_identify(s_agent_t *self)
{
    hvn_agent_identity_t *ident = &self->ident;
    if (hvn_agent_fqdn(ident->hypervisor_hostname, sizeof ident->hypervisor_hostname) != 0)
        ident->hypervisor_hostname[0] = '\0';
    if (self->args.host)
        snprintf(ident->host, sizeof ident->host, "%s", self->args.host);
    else if (hvn_agent_short_host(ident->host, sizeof ident->host) != 0) {
        fprintf(stderr, S_NAME ": cannot read this host's name; give --host\n");
        return -1;
    }
    const char *name = ident->hypervisor_hostname[0] ? ident->hypervisor_hostname : ident->host;
    int rc = hvn_agent_uuid_load(self->args.state_dir, HVN_AGENT_MACHINE_ID, name, ident->uuid);
    if (rc < 0) {
        fprintf(stderr, S_NAME ": cannot save the node uuid in %s: %s\n", self->args.state_dir,
                strerror(errno));
        return -1;
    }
    ident->id = hvn_agent_node_id(ident->uuid);
    zsys_info("node %s (id %" PRId64 ", host %s, %s)%s", ident->uuid, ident->id, ident->host, name,
              rc == 1 ? ", uuid derived now" : "");
    return 0;
}

//  Creates the publisher. Returns 0, or -1 (printed).
static int s_open_publisher(s_agent_t *self)
{
    hvn_publisher_opts_t opts = {
        .endpoint = self->args.endpoint,
        .host = self->ident.host,
        .state_dir = self->args.state_dir,
        .heartbeat_ms = self->args.heartbeat_ms,
        .linger_ms = S_LINGER_MS,
        .curve_secret = self->args.curve_secret,
        .curve_server = self->args.server_key,
    };
    self->pub = hvn_publisher_new(&opts);
    if (!self->pub) {
        fprintf(stderr, S_NAME ": cannot start a publisher to %s\n", self->args.endpoint);
        return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Collect and report

//  Collects the node. Returns 0, or -1 (logged) when a source failed.
static int s_collect(s_agent_t *self, hvn_node_t *node)
{
    const hvn_agent_virt_t *virt_p = NULL;
#ifdef HVN_HAVE_LIBVIRT
    hvn_agent_virt_t virt;
    if (self->libvirt) {
        if (hvn_agent_libvirt_read(self->libvirt, &virt) != 0)
            return -1;
        virt_p = &virt;
    }
#endif
    return hvn_agent_collect(&self->sources, &self->ident, virt_p, node);
}

//  Collects and reports once. Returns 0, or -1 (logged).
static int s_report(s_agent_t *self)
{
    hvn_node_t node;
    if (s_collect(self, &node) != 0) {
        if (!self->skipping)
            zsys_warning("no reports until the host's node can be collected again");
        self->skipping = true;
        return -1;
    }
    if (self->skipping)
        zsys_notice("the host's node is collected again");
    self->skipping = false;
    if (hvn_publisher_report(self->pub, &node) != 0) {
        hvn_field_id_t bad = HVN_F_COUNT;
        hvn_node_validate(&node, &bad);
        zsys_error("the publisher refused the node (field %s)",
                   bad < HVN_F_COUNT ? hvn_schema_fields[bad].name : "?");
        return -1;
    }
    return 0;
}

//  Waits for the broker to take everything queued. Returns 0, or -1 after
//  printing that it did not.
static int s_flush(s_agent_t *self)
{
    if (hvn_publisher_flush(self->pub, S_FLUSH_MS) == 0)
        return 0;
    fprintf(stderr, S_NAME ": the broker at %s did not take the notification within %d s\n",
            self->args.endpoint, S_FLUSH_MS / 1000);
    hvn_publisher_set_linger(self->pub, 0); //  Already waited long enough
    return -1;
}

//  After the first report: deletes the nodes of the saved state that this
//  host no longer has (a node uuid file that was lost and derived anew).
static void s_forget_missing(s_agent_t *self)
{
    int gone = hvn_publisher_forget_missing(self->pub);
    if (gone > 0)
        zsys_notice("%d node(s) of the saved state are gone; their deletes are queued", gone);
}

//  Sleeps ms milliseconds or until a signal. Returns true when interrupted.
static bool s_wait(int ms)
{
    for (int slept = 0; slept < ms && !zsys_interrupted; slept += S_SLICE_MS)
        zclock_sleep(ms - slept < S_SLICE_MS ? ms - slept : S_SLICE_MS);
    return zsys_interrupted != 0;
}

// --------------------------------------------------------------------------
//  /metrics

//  The publisher's counters as metrics: each a field of
//  hvn_publisher_stats_t and one line here
static const struct {
    const char *name;       //  Metric name
    size_t offset;          //  Where it lives in hvn_publisher_stats_t
    hvn_metric_type_t type; //  Counter or gauge
    const char *help;       //  HELP text
} s_metrics[] = {
#define S_COUNTER(field, help)                                                                     \
    {"hvnotify_agent_" #field "_total", offsetof(hvn_publisher_stats_t, field),                   \
     HVN_METRIC_COUNTER, help}
#define S_GAUGE(field, help)                                                                       \
    {"hvnotify_agent_" #field, offsetof(hvn_publisher_stats_t, field), HVN_METRIC_GAUGE, help}
    S_COUNTER(reports, "report() calls"),
    S_COUNTER(sent, "Notifications sent (the last seq)"),
    S_COUNTER(creates, "compute_node.create sent"),
    S_COUNTER(updates, "compute_node.update sent"),
    S_COUNTER(deletes, "compute_node.delete sent"),
    S_COUNTER(syncs, "Kind-3 resends to a broker that subscribed"),
    S_COUNTER(heartbeats, "Heartbeats sent"),
    S_COUNTER(coalesced, "Queued states replaced before they were sent"),
    S_COUNTER(refused, "report()/remove() refused: queue full"),
    S_COUNTER(resyncs, "Broker subscriptions answered by a resync"),
    S_COUNTER(reconnects, "Reconnects to every broker after a stall"),
    S_COUNTER(denials, "Handshakes a broker refused (CURVE key not installed there)"),
    S_COUNTER(redials, "Refusing brokers dialled again"),
    S_GAUGE(nodes, "Nodes held"),
    S_GAUGE(pending, "Notifications queued or being sent"),
    S_GAUGE(broker, "1 while a broker's subscription is held"),
#undef S_COUNTER
#undef S_GAUGE
};

//  Returns nothing; answers GET /metrics with the publisher's counters
//  (hvn_publisher_stats may be called from any thread), else 404.
static void s_serve_metrics(const hvn_http_request_t *request, hvn_http_reply_t *reply, void *arg)
{
    s_agent_t *self = arg;
    if (strcmp(request->path, "/metrics") != 0)
        return;
    hvn_publisher_stats_t stats;
    hvn_publisher_stats(self->pub, &stats);
    hvn_metrics_t *m = hvn_metrics_new();
    for (size_t i = 0; m && i < sizeof(s_metrics) / sizeof(s_metrics[0]); i++) {
        uint64_t value = *(const uint64_t *)((const char *)&stats + s_metrics[i].offset);
        hvn_metrics_family(m, s_metrics[i].name, s_metrics[i].type, s_metrics[i].help);
        hvn_metrics_sample(m, s_metrics[i].name, NULL, (double)value);
    }
    size_t size = 0;
    char *text = m ? hvn_metrics_take(m, &size) : NULL;
    hvn_metrics_destroy(&m);
    if (text)
        hvn_http_reply_take(reply, 200, HVN_METRICS_CONTENT_TYPE, text, size);
    else
        hvn_http_reply_text(reply, 500, "text/plain", "out of memory\n");
}

// --------------------------------------------------------------------------
//  The three modes

//  Runs until SIGINT/SIGTERM. Returns the exit code.
static int s_run(s_agent_t *self)
{
    zsys_info("reporting to %s every %d s", self->args.endpoint, self->args.interval_s);
    bool reported = false;
    while (!zsys_interrupted) {
        if (s_report(self) == 0 && !reported) {
            reported = true;
            s_forget_missing(self);
        }
        if (s_wait(self->args.interval_s * 1000))
            break;
    }
    zsys_info("stopping: flushing to %s", self->args.endpoint);
    s_flush(self);
    return 0;
}

//  Reports once and waits for the broker. Returns the exit code.
static int s_once(s_agent_t *self)
{
    if (s_report(self) != 0) {
        fprintf(stderr, S_NAME ": could not collect this host's node%s\n",
                self->args.libvirt_uri ? " (is libvirt reachable?)" : "");
        return 1;
    }
    s_forget_missing(self);
    return s_flush(self) == 0 ? 0 : 1;
}

//  Sends the node's delete and forgets it. Returns the exit code.
static int s_decommission(s_agent_t *self)
{
    if (hvn_publisher_remove(self->pub, self->ident.uuid) != 0) {
        //  The library holds no saved state of this node (a state directory
        //  that was lost or never used): announce it so the delete has
        //  something to delete everywhere, then delete it.
        zsys_notice("no saved state of node %s; announcing it before its delete", self->ident.uuid);
        if (s_report(self) != 0 || hvn_publisher_remove(self->pub, self->ident.uuid) != 0) {
            fprintf(stderr, S_NAME ": cannot queue the delete of node %s\n", self->ident.uuid);
            return 1;
        }
    }
    s_forget_missing(self);
    if (s_flush(self) != 0)
        return 1;
    if (hvn_agent_uuid_forget(self->args.state_dir) != 0) {
        fprintf(stderr, S_NAME ": node %s deleted, but its uuid file in %s stays: %s\n",
                self->ident.uuid, self->args.state_dir, strerror(errno));
        return 1;
    }
    zsys_info("node %s decommissioned", self->ident.uuid);
    return 0;
}

//  Returns the exit code: 0 done, 1 run-time failure, 2 bad usage.
int main(int argc, char **argv)
{
    s_agent_t agent = {0};
    s_parse_args(argc, argv, &agent.args);

    zsys_init();
    zsys_set_logident(S_NAME);
    zsys_set_logstream(stderr);
    agent.sources.instances_path = agent.args.instances_path;

    hvn_disk_t disk;
    if (hvn_agent_disk_read(agent.args.instances_path, NULL, &disk) == 0 && disk.fell_back)
        zsys_notice("%s does not exist; measuring the disk of /", agent.args.instances_path);

    if (s_check_state_dir(agent.args.state_dir) != 0 || s_identify(&agent) != 0)
        return 1;
#ifdef HVN_HAVE_LIBVIRT
    if (agent.args.libvirt_uri) {
        agent.libvirt = hvn_agent_libvirt_new(agent.args.libvirt_uri);
        if (!agent.libvirt)
            return 1;
    }
#endif
    if (s_open_publisher(&agent) != 0)
        return 1;
    if (agent.args.metrics) {
        char err[256];
        hvn_http_opts_t opts = {.address = agent.args.metrics, .fn = s_serve_metrics, .arg = &agent};
        agent.http = hvn_http_new(&opts, err, sizeof(err));
        if (!agent.http) {
            fprintf(stderr, S_NAME ": --metrics: %s\n", err);
            hvn_publisher_destroy(&agent.pub);
            return 1;
        }
    }

    int rc;
    if (agent.args.decommission)
        rc = s_decommission(&agent);
    else if (agent.args.once)
        rc = s_once(&agent);
    else
        rc = s_run(&agent);

    hvn_http_destroy(&agent.http); //  Before the publisher it reads
    hvn_publisher_destroy(&agent.pub);
#ifdef HVN_HAVE_LIBVIRT
    hvn_agent_libvirt_destroy(&agent.libvirt);
#endif
    return rc;
}
