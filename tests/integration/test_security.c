/*  test_security.c — the broker with CURVE on, as real processes.

    Keys are made with hvn-keygen: the broker's, a publisher's bound to
    cmp-017 and a subscriber's, both listed in the broker's directories,
    and an outsider of each kind that is not listed. A listed publisher and
    subscriber work, snapshot included; an unlisted publisher key, a
    plain-text publisher and a listed key publishing for another host
    deliver nothing; an unlisted or plain-text subscriber receives nothing.
    Each refusal moves its counter in STATS. A publisher or subscriber
    started before its certificate was installed is refused, then gets in
    once the certificate is in the broker's directory, without a restart.
    A publisher or subscriber whose certificate is removed while its
    connection stays open is refused from then on: the publisher's messages,
    the subscriber's service requests and new subscriptions.
*/
#include "support.h"

#include "hvn_publisher.h"
#include "hvn_subscriber.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static it_env_t env;
static char broker_cert[400], pub_secret[420], sub_secret[420];
static char rogue_pub_secret[420], rogue_sub_secret[420], other_pub_secret[420];

//  Returns nothing; path is env.dir + "/" + name.
static void s_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", env.dir, name);
}

//  Returns nothing; hvn-keygen made a certificate pair at out (asserted).
static void s_keygen(const char *role, const char *host, const char *out)
{
    const char *argv[] = {"hvn-keygen", role, "--out", out, host ? "--host" : NULL, host, NULL};
    it_proc_t *proc = it_spawn(argv, false, true, false);
    cr_assert_not_null(proc);
    cr_assert_eq(it_wait(proc, 10000), 0, "hvn-keygen %s failed", role);
    it_stop(&proc, SIGKILL, 1000);
}

//  Returns nothing; keys made, the broker started with CURVE on, and
//  it_broker_stat talking CURVE with the listed subscriber's key.
//  Returns nothing; a certificate pair for role (and host) made outside the
//  broker's directories: public certificate at path (env.dir/name),
//  secret at secret.
static void s_late_keygen(const char *name, const char *role, const char *host, char *path,
                          size_t path_size, char *secret, size_t secret_size)
{
    s_path(path, path_size, name);
    s_keygen(role, host, path);
    snprintf(secret, secret_size, "%s_secret", path);
}

//  Returns nothing; a certificate of role (and host) is made at name in
//  the suite's directory, its secret's path written into secret.
static void s_key(const char *name, const char *role, const char *host, char *secret, size_t size)
{
    char path[400];
    s_late_keygen(name, role, host, path, sizeof(path), secret, size);
}

static void s_setup(void)
{
    it_env_init(&env);
    char pubs[300], subs[300];
    s_path(pubs, sizeof(pubs), "publishers");
    s_path(subs, sizeof(subs), "subscribers");
    cr_assert_eq(mkdir(pubs, 0700), 0);
    cr_assert_eq(mkdir(subs, 0700), 0);
    s_path(broker_cert, sizeof(broker_cert), "broker.cert");
    s_keygen("broker", NULL, broker_cert);
    s_key("publishers/cmp-017.cert", "publisher", "cmp-017", pub_secret, sizeof(pub_secret));
    s_key("publishers/cmp-019.cert", "publisher", "cmp-019", other_pub_secret,
          sizeof(other_pub_secret));
    s_key("subscribers/reader.cert", "subscriber", NULL, sub_secret, sizeof(sub_secret));
    s_key("rogue-pub.cert", "publisher", "cmp-017", rogue_pub_secret, sizeof(rogue_pub_secret));
    s_key("rogue-sub.cert", "subscriber", NULL, rogue_sub_secret, sizeof(rogue_sub_secret));

    char secret[420];
    snprintf(secret, sizeof(secret), "%s_secret", broker_cert);
    it_stat_curve(sub_secret, broker_cert);
    const char *extra[] = {
        "--curve-secret", secret, "--publishers-dir", pubs, "--subscribers-dir", subs, NULL};
    it_broker_start(&env, extra);
}

static void s_teardown(void)
{
    it_env_fini(&env);
}

TestSuite(security, .init = s_setup, .fini = s_teardown, .timeout = 90);

//  Returns the exit status of hvn-pub publishing one node of `host` with
//  the given key (NULL: plain text), flushing for at most flush_s.
static int s_publish(const char *host, const char *uuid, const char *secret, const char *flush_s)
{
    const char *argv[IT_MAX_ARGS] = {"hvn-pub", "--connect",       env.frontend, "--host",
                                     host,      "--flush-timeout", flush_s};
    size_t n = 7;
    if (secret) {
        argv[n++] = "--curve-secret";
        argv[n++] = secret;
        argv[n++] = "--server-key";
        argv[n++] = broker_cert;
    }
    argv[n] = NULL;
    it_proc_t *pub = it_spawn(argv, true, false, true);
    cr_assert_not_null(pub);
    char line[2048];
    it_node_json(line, sizeof(line), 1, uuid, host, 2, 4096);
    cr_assert_eq(it_write(pub, line), 0);
    int status = it_finish(&pub, 30000);
    return status;
}

//  Returns a running hvn-sub with the given key (NULL: plain text) and
//  extra arguments (NULL-ended).
static it_proc_t *s_subscribe(const char *secret, const char *const extra[])
{
    const char *argv[IT_MAX_ARGS] = {"hvn-sub", "--connect", env.backend, "--service", env.service};
    size_t n = 5;
    if (secret) {
        argv[n++] = "--curve-secret";
        argv[n++] = secret;
        argv[n++] = "--server-key";
        argv[n++] = broker_cert;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    it_proc_t *sub = it_spawn(argv, false, true, true);
    cr_assert_not_null(sub);
    return sub;
}

//  Returns the broker's counter `key` (asserted present).
static int64_t s_stat(const char *key)
{
    int64_t value = it_broker_stat(env.service, key, 5000);
    cr_assert_geq(value, 0, "no STATS counter %s", key);
    return value;
}

//  Returns 0 once counter `key` is at least n, -1 after timeout_ms (a
//  deadline on the monotonic clock, STATS round trips included).
static int s_wait_stat(const char *key, int64_t n, int timeout_ms)
{
    for (int64_t deadline = zclock_mono() + timeout_ms; zclock_mono() < deadline;) {
        if (it_broker_stat(env.service, key, 2000) >= n)
            return 0;
        nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
    }
    return -1;
}

//  Returns the broker's counter `key` once it is at least n (waited for at
//  most S_STAT_MS), or its value then: what another process did is counted
//  when the broker has read it, not when that process has exited.
#define S_STAT_MS 20000
#define S_WAIT_MS 20000 //  For a line, a subscription: generous on a loaded machine
static int64_t s_stat_after(const char *key, int64_t n)
{
    s_wait_stat(key, n, S_STAT_MS);
    return s_stat(key);
}

//  Returns 0 once what proc writes to stderr from now on holds needle and
//  also (when not NULL) also, -1 after timeout_ms (a line the program logs
//  is the event waited for).
static int s_wait_stderr2(it_proc_t *proc, const char *needle, const char *also, int timeout_ms)
{
    size_t len = 0;
    char *text = calloc(1, 1);
    cr_assert_not_null(text);
    int64_t deadline = zclock_mono() + timeout_ms;
    int found = -1;
    while (found < 0 && zclock_mono() < deadline) {
        char *more = it_read_stderr(proc, 100);
        size_t add = strlen(more);
        text = realloc(text, len + add + 1);
        cr_assert_not_null(text);
        memcpy(text + len, more, add + 1);
        len += add;
        free(more);
        if (strstr(text, needle) && (!also || strstr(text, also)))
            found = 0;
    }
    free(text);
    return found;
}

//  Returns as s_wait_stderr2 with one needle.
static int s_wait_stderr(it_proc_t *proc, const char *needle, int timeout_ms)
{
    return s_wait_stderr2(proc, needle, NULL, timeout_ms);
}

//  Returns 0 once hvn-sub proc has logged that the broker's backend
//  refused its handshake, and with service its service too: its key
//  (plain false) or its plain text (plain true); -1 after S_STAT_MS.
static int s_wait_refused(it_proc_t *proc, bool plain, bool service)
{
    const char *format = plain ? "handshake with '%s' failed" : "'%s' refused the handshake";
    char backend[400], svc[400];
    snprintf(backend, sizeof(backend), format, env.backend);
    snprintf(svc, sizeof(svc), format, env.service);
    return s_wait_stderr2(proc, backend, service ? svc : NULL, S_STAT_MS);
}

//  Returns nothing; proc, still running (asserted), is stopped with
//  SIGTERM, a clean stop (asserted), and has printed nothing (asserted).
static void s_stop_silent(it_proc_t **proc_p, const char *what)
{
    bool up = it_wait(*proc_p, 0) < 0;
    cr_expect(up, "%s exited", what);
    if (up) {
        kill((*proc_p)->pid, SIGTERM);
        cr_expect_eq(it_wait(*proc_p, 10000), 0, "%s did not stop cleanly", what);
    }
    char *out = it_read_stdout(*proc_p, 5000);
    cr_expect_str_empty(out, "%s printed: %s", what, out);
    free(out);
    it_stop(proc_p, SIGKILL, 1000);
}

#define S_UUID_OK "10000000-0000-4000-8000-000000000017"
#define S_UUID_ROGUE "20000000-0000-4000-8000-000000000017"
#define S_UUID_PLAIN "30000000-0000-4000-8000-000000000017"
#define S_UUID_OTHER "40000000-0000-4000-8000-000000000018"

Test(security, listed_keys_publish_subscribe_and_snapshot)
{
    cr_assert_eq(s_stat("curve"), 1);
    const char *live_args[] = {"--count", "1", "--timeout", "30", NULL};
    it_proc_t *live = s_subscribe(sub_secret, live_args);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    char line[8192];
    cr_assert_gt(it_read_line(live, line, sizeof(line), S_WAIT_MS), 0, "no live line");
    cr_expect(strstr(line, S_UUID_OK) && strstr(line, "compute_node.create"), "got %s", line);
    cr_expect_eq(it_wait(live, 10000), 0);
    it_stop(&live, SIGTERM, 5000);

    const char *snap_args[] = {"--snapshot", "--count", "1", "--timeout", "30", NULL};
    it_proc_t *snap = s_subscribe(sub_secret, snap_args);
    cr_assert_gt(it_read_line(snap, line, sizeof(line), S_WAIT_MS), 0, "no snapshot line");
    cr_expect(strstr(line, S_UUID_OK) != NULL, "got %s", line);
    cr_expect_eq(it_wait(snap, 10000), 0);
    it_stop(&snap, SIGTERM, 5000);
    cr_expect_eq(s_stat("refused"), 0);
    cr_expect_geq(s_stat("snapshots"), 1);
    cr_expect_geq(s_stat("auth_allowed"), 3); //  Publisher, two subscribers, STATS
}

Test(security, refused_publishers_deliver_nothing)
{
    const char *args[] = {"--count", "1", "--timeout", "30", NULL};
    it_proc_t *sub = s_subscribe(sub_secret, args);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");

    //  A key not in the publishers' directory: refused at the handshake,
    //  so the broker's subscription never reaches it and it cannot flush
    int64_t denied = s_stat("auth_denied_publishers");
    cr_expect_eq(s_publish("cmp-017", S_UUID_ROGUE, rogue_pub_secret, "2"), 1);
    cr_expect_geq(s_stat_after("auth_denied_publishers", denied + 1), denied + 1,
                  "the unlisted publisher's handshake was not refused");
    //  Plain text: the handshake fails before ZAP, seen by the monitor
    int64_t failed = s_stat("handshakes_failed");
    cr_expect_eq(s_publish("cmp-017", S_UUID_PLAIN, NULL, "2"), 1);
    cr_expect_eq(s_wait_stat("handshakes_failed", failed + 1, S_STAT_MS), 0,
                 "the plain-text publisher's handshake was not counted");
    cr_expect_eq(s_stat("received"), 0);
    //  A listed key bound to cmp-017 publishing as cmp-018: connected, its
    //  messages read and refused; once that is counted, nothing of it
    //  was forwarded or cached
    cr_expect_eq(s_publish("cmp-018", S_UUID_OTHER, pub_secret, "20"), 0);
    cr_expect_geq(s_stat_after("refused.not_authorized", 1), 1);
    cr_expect_eq(s_stat("forwarded"), 0);
    cr_expect_eq(s_stat("cache_nodes"), 0);

    //  The one message the subscriber gets is the listed one's
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    char line[8192];
    cr_assert_gt(it_read_line(sub, line, sizeof(line), S_WAIT_MS), 0, "no line");
    cr_expect(strstr(line, S_UUID_OK) != NULL, "first message is not the listed one: %s", line);
    cr_expect_eq(it_wait(sub, 10000), 0);
    it_stop(&sub, SIGTERM, 5000);
    cr_expect_eq(s_stat("cache_nodes"), 1);
}

Test(security, refused_subscribers_receive_nothing)
{
    //  Each refused subscriber is seen refused (the broker's counters, its
    //  own log line) and stays up, --timeout far off, until the listed one
    //  has the notification it would have got too: a node in the cache
    //  before they start, which a snapshot let in would print
    const char *args[] = {"--count", "1", "--timeout", "60", NULL};
    const char *snap_args[] = {"--snapshot", "--count", "1", "--timeout", "60", NULL};
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    cr_assert_eq(s_stat_after("cache_nodes", 1), 1);
    int64_t denied = s_stat("auth_denied_subscribers");
    it_proc_t *refused[] = {s_subscribe(rogue_sub_secret, args),
                            s_subscribe(rogue_sub_secret, snap_args), s_subscribe(NULL, args),
                            s_subscribe(NULL, snap_args)};
    const char *listed_args[] = {"--count", "1", "--timeout", "60", NULL};
    it_proc_t *listed = s_subscribe(sub_secret, listed_args);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");
    cr_assert_eq(s_wait_stat("auth_denied_subscribers", denied + 2, S_STAT_MS), 0,
                 "the unlisted subscriber's handshakes were not refused");
    cr_assert_eq(s_wait_stat("handshakes_failed", 2, S_STAT_MS), 0,
                 "the plain-text subscribers' handshakes were not counted");
    for (size_t i = 0; i < 4; i++) {
        //  The live feed refused, and for the replicas the snapshot too
        cr_assert_eq(s_wait_refused(refused[i], i >= 2, i % 2), 0,
                     "refused subscriber %zu does not say it was refused", i);
    }

    cr_assert_eq(s_publish("cmp-017", "50000000-0000-4000-8000-000000000017", pub_secret, "20"), 0);
    char line[8192];
    cr_assert_gt(it_read_line(listed, line, sizeof(line), S_WAIT_MS), 0, "listed got nothing");
    cr_expect(strstr(line, "50000000-0000-4000-8000-000000000017") != NULL, "got %s", line);
    cr_expect_eq(it_wait(listed, 10000), 0);
    it_stop(&listed, SIGTERM, 5000);
    for (size_t i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof(what), "refused subscriber %zu", i);
        s_stop_silent(&refused[i], what);
    }
}

Test(security, curve_options_go_together)
{
    char dir[400];
    s_path(dir, sizeof(dir), "publishers");
    const char *argv[] = {"hvn-broker",
                          "--frontend",
                          "ipc:///nonexistent/f",
                          "--curve-secret",
                          broker_cert,
                          "--publishers-dir",
                          dir,
                          NULL};
    it_proc_t *broker = it_spawn(argv, false, false, true);
    cr_assert_not_null(broker);
    cr_expect_eq(it_wait(broker, 10000), 2);
    char *err = it_read_stderr(broker, 1000);
    cr_expect(strstr(err, "--subscribers-dir") != NULL, "stderr: %s", err);
    free(err);
    it_stop(&broker, SIGKILL, 1000);

    //  A directory that is not there: cannot start
    char secret[420];
    snprintf(secret, sizeof(secret), "%s_secret", broker_cert);
    const char *argv2[] = {"hvn-broker",
                           "--frontend",
                           "ipc:///nonexistent/f",
                           "--curve-secret",
                           secret,
                           "--publishers-dir",
                           "/nonexistent/pub",
                           "--subscribers-dir",
                           dir,
                           NULL};
    broker = it_spawn(argv2, false, false, true);
    cr_assert_not_null(broker);
    cr_expect_eq(it_wait(broker, 10000), 1);
    err = it_read_stderr(broker, 1000);
    cr_expect(strstr(err, "/nonexistent/pub") != NULL, "stderr: %s", err);
    free(err);
    it_stop(&broker, SIGKILL, 1000);

    //  Client halves without the other: usage
    const char *pub_argv[] = {"hvn-pub", "--connect",      env.frontend, "--host",
                              "cmp-017", "--curve-secret", pub_secret,   NULL};
    it_proc_t *pub = it_spawn(pub_argv, false, false, true);
    cr_expect_eq(it_wait(pub, 10000), 2);
    it_stop(&pub, SIGKILL, 1000);
    const char *sub_argv[] = {"hvn-sub",      "--connect", env.backend,
                              "--server-key", broker_cert, NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, false, true);
    cr_expect_eq(it_wait(sub, 10000), 2);
    it_stop(&sub, SIGKILL, 1000);
}

Test(security, hvn_agent_publishes_with_its_host_key)
{
    char state[400];
    s_path(state, sizeof(state), "agent-state");
    const char *argv[] = {
        "hvn-agent", "--connect",      env.frontend, "--once",       "--state-dir", state, "--host",
        "cmp-017",   "--curve-secret", pub_secret,   "--server-key", broker_cert,   NULL};
    it_proc_t *agent = it_spawn(argv, false, false, true);
    cr_assert_not_null(agent);
    cr_expect_eq(it_wait(agent, 30000), 0, "hvn-agent --once with CURVE failed");
    it_stop(&agent, SIGKILL, 1000);
    cr_expect_eq(s_stat_after("cache_nodes", 1), 1);
    cr_expect_eq(s_stat("refused"), 0);

    //  The same key for another host: delivered to the broker, refused there
    const char *other[] = {
        "hvn-agent", "--connect",      env.frontend, "--once",       "--state-dir", state, "--host",
        "cmp-018",   "--curve-secret", pub_secret,   "--server-key", broker_cert,   NULL};
    agent = it_spawn(other, false, false, true);
    cr_assert_not_null(agent);
    cr_expect_eq(it_wait(agent, 30000), 0);
    it_stop(&agent, SIGKILL, 1000);
    cr_expect_geq(s_stat_after("refused.not_authorized", 1), 1);
    cr_expect_eq(s_stat("cache_nodes"), 1);
}

Test(security, an_unreadable_certificate_is_a_clear_failure)
{
    char missing[400];
    s_path(missing, sizeof(missing), "missing.cert");
    const char *argv[] = {"hvn-pub",        "--connect", env.frontend,   "--host",    "cmp-017",
                          "--curve-secret", missing,     "--server-key", broker_cert, NULL};
    it_proc_t *pub = it_spawn(argv, true, false, true);
    cr_assert_not_null(pub);
    it_close_stdin(pub);
    cr_expect_eq(it_wait(pub, 10000), 1);
    char *err = it_read_stderr(pub, 1000);
    cr_expect(strstr(err, missing) != NULL, "stderr: %s", err);
    free(err);
    it_stop(&pub, SIGKILL, 1000);
    //  A public certificate alone (no _secret twin) is not a client key
    char public_only[400];
    s_path(public_only, sizeof(public_only), "public-only.cert");
    zcert_t *cert = zcert_load(broker_cert);
    cr_assert_not_null(cert);
    cr_assert_eq(zcert_save_public(cert, public_only), 0);
    zcert_destroy(&cert);
    const char *sub_argv[] = {"hvn-sub",   "--connect",    env.backend, "--curve-secret",
                              public_only, "--server-key", broker_cert, NULL};
    it_proc_t *sub = it_spawn(sub_argv, false, false, true);
    cr_expect_eq(it_wait(sub, 10000), 1);
    it_stop(&sub, SIGKILL, 1000);
}

//  Returns hvn-sub's exit status after its snapshot of the one node
//  S_UUID_OK, which must be cmp-017's (expected).
static int s_snapshot_owner(void)
{
    const char *args[] = {"--snapshot", "--count", "1", "--timeout", "30", NULL};
    it_proc_t *snap = s_subscribe(sub_secret, args);
    char line[8192];
    cr_assert_gt(it_read_line(snap, line, sizeof(line), S_WAIT_MS), 0, "no snapshot line");
    cr_expect(strstr(line, S_UUID_OK) && strstr(line, "nova-compute:cmp-017"),
              "the node changed hands: %s", line);
    int code = it_wait(snap, 10000);
    it_stop(&snap, SIGTERM, 5000);
    return code;
}

Test(security, a_host_cannot_take_over_another_hosts_node)
{
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    cr_assert_eq(s_stat_after("cache_nodes", 1), 1);
    //  cmp-019's own, listed key, its own topic host, but cmp-017's node:
    //  refused (counted) before the snapshot below is asked for
    cr_expect_eq(s_publish("cmp-019", S_UUID_OK, other_pub_secret, "20"), 0);
    cr_assert_geq(s_stat_after("refused.not_authorized", 1), 1);
    cr_expect_eq(s_snapshot_owner(), 0);
    //  A node of its own is fine
    cr_expect_eq(s_publish("cmp-019", S_UUID_OTHER, other_pub_secret, "20"), 0);
    cr_expect_eq(s_stat_after("cache_nodes", 2), 2);
}

Test(security, a_publisher_added_while_the_broker_runs_gets_in_with_its_first_message)
{
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    char secret[420];
    s_key("publishers/cmp-020.cert", "publisher", "cmp-020", secret, sizeof(secret));
    const char *args[] = {"--count", "1", "--timeout", "30", NULL};
    it_proc_t *sub = s_subscribe(sub_secret, args);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");
    cr_expect_eq(s_publish("cmp-020", "60000000-0000-4000-8000-000000000020", secret, "20"), 0);
    char line[8192];
    cr_assert_gt(it_read_line(sub, line, sizeof(line), S_WAIT_MS), 0, "the new host's create lost");
    cr_expect(strstr(line, "60000000-0000-4000-8000-000000000020") != NULL, "got %s", line);
    it_stop(&sub, SIGTERM, 5000);
    cr_expect_eq(s_stat("refused"), 0);
    cr_expect_eq(s_stat("cache_nodes"), 2);
}

// --------------------------------------------------------------------------
//  Keys installed after their client started

#define S_LATE_MS 60000 //  Generous: a redial comes 1 s after a refusal, then 2, 4...

//  Returns nothing; the public certificate at path is moved into the
//  broker's directory dir ("publishers" or "subscribers") with rename(), so
//  that it appears whole, as configuration management installs a file.
static void s_install(const char *path, const char *dir)
{
    const char *name = strrchr(path, '/') + 1;
    char to[600];
    snprintf(to, sizeof(to), "%s/%s/%s", env.dir, dir, name);
    cr_assert_eq(rename(path, to), 0, "cannot install %s", to);
}

Test(security, a_publisher_started_before_its_key_was_installed_gets_in_without_a_restart)
{
    //  The broker of a fresh deployment: no host key installed yet
    it_stop(&env.broker, SIGTERM, 10000);
    char empty[300], broker_secret[420];
    s_path(empty, sizeof(empty), "no-publishers");
    cr_assert_eq(mkdir(empty, 0700), 0);
    s_path(broker_secret, sizeof(broker_secret), "broker.cert_secret");
    char subs[300];
    s_path(subs, sizeof(subs), "subscribers");
    const char *extra[] = {"--curve-secret",
                           broker_secret,
                           "--publishers-dir",
                           empty,
                           "--subscribers-dir",
                           subs,
                           NULL};
    cr_assert_not_null(it_broker_start(&env, extra));

    char path[400], secret[420];
    s_late_keygen("late-pub.cert", "publisher", "cmp-021", path, sizeof(path), secret,
                  sizeof(secret));
    const char *args[] = {"--count", "1", "--timeout", "90", NULL};
    it_proc_t *sub = s_subscribe(sub_secret, args);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");
    int64_t denied = s_stat("auth_denied_publishers");

    //  hvn-pub waits for the broker as long as its flush timeout allows
    const char *argv[] = {"hvn-pub", "--connect",       env.frontend, "--host",
                          "cmp-021", "--flush-timeout", "90",         "--curve-secret",
                          secret,    "--server-key",    broker_cert,  NULL};
    it_proc_t *pub = it_spawn(argv, true, false, true);
    cr_assert_not_null(pub);
    char line[8192];
    it_node_json(line, sizeof(line), 21, "70000000-0000-4000-8000-000000000021", "cmp-021", 2,
                 4096);
    cr_assert_eq(it_write(pub, line), 0);
    it_close_stdin(pub);
    cr_assert_eq(s_wait_stat("auth_denied_publishers", denied + 1, 20000), 0,
                 "the publisher's key was not refused");
    cr_expect_eq(s_stat("received"), 0);

    s_install(path, "no-publishers");
    cr_assert_gt(it_read_line(sub, line, sizeof(line), S_LATE_MS), 0,
                 "the publisher never got in after its key was installed");
    cr_expect(strstr(line, "70000000-0000-4000-8000-000000000021") != NULL, "got %s", line);
    cr_expect_eq(it_wait(pub, 30000), 0, "hvn-pub did not flush");
    char *err = it_read_stderr(pub, 1000);
    cr_expect(strstr(err, "refused the handshake") && strstr(err, "accepted the handshake"),
              "hvn-pub's log does not tell the refusal and the recovery: %s", err);
    free(err);
    it_stop(&pub, SIGTERM, 5000);
    cr_expect_eq(it_wait(sub, 10000), 0);
    it_stop(&sub, SIGTERM, 5000);
    cr_expect_eq(s_stat("refused"), 0);
}

Test(security, a_subscriber_started_before_its_key_was_installed_gets_in_without_a_restart)
{
    //  A plain subscriber (hvn_subscriber_recv waits and redials) and one
    //  keeping a replica (hvn_replica_poll does), each with a key of its
    //  own: the broker counts subscriptions per key
    char live_path[400], live_key[420], snap_path[400], snap_key[420];
    s_late_keygen("late-live.cert", "subscriber", NULL, live_path, sizeof(live_path), live_key,
                  sizeof(live_key));
    s_late_keygen("late-snap.cert", "subscriber", NULL, snap_path, sizeof(snap_path), snap_key,
                  sizeof(snap_key));
    const char *live_args[] = {"--count", "1", "--timeout", "90", NULL};
    const char *snap_args[] = {"--snapshot", "--count", "1", "--timeout", "90", NULL};
    it_proc_t *live = s_subscribe(live_key, live_args);
    it_proc_t *snap = s_subscribe(snap_key, snap_args);
    char refused[400];
    snprintf(refused, sizeof(refused), "'%s' refused the handshake", env.backend);
    cr_assert_eq(s_wait_stderr(live, refused, 20000), 0, "the plain subscriber was not refused");
    cr_assert_eq(s_wait_stderr(snap, refused, 20000), 0, "the replica was not refused");
    cr_expect_geq(s_stat("auth_denied_subscribers"), 2);
    cr_expect_eq(s_stat("subscriptions"), 0, "a refused subscriber subscribed");

    s_install(live_path, "subscribers");
    s_install(snap_path, "subscribers");
    //  Counted per key and prefix: "" for the plain one, "compute_node."
    //  and "hvn." for the replica
    cr_assert_eq(it_wait_subscriptions(env.service, 3, S_LATE_MS), 0,
                 "the subscribers never got in after their keys were installed");
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    char line[8192];
    cr_assert_gt(it_read_line(live, line, sizeof(line), 20000), 0,
                 "the live subscriber got nothing");
    cr_expect(strstr(line, S_UUID_OK) != NULL, "got %s", line);
    cr_assert_gt(it_read_line(snap, line, sizeof(line), S_LATE_MS), 0, "the replica got nothing");
    cr_expect(strstr(line, S_UUID_OK) != NULL, "got %s", line);
    it_proc_t *subs[] = {live, snap};
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(it_wait(subs[i], 10000), 0, "subscriber %zu", i);
        it_stop(&subs[i], SIGTERM, 5000);
    }
}

//  Returns a subscriber of the broker's backend, a CURVE client with the
//  secret certificate at secret.
static hvn_subscriber_t *s_curve_subscriber(const char *secret)
{
    hvn_subscriber_opts_t opts = {
        .endpoint = env.backend, .curve_secret = secret, .curve_server = broker_cert};
    hvn_subscriber_t *sub = hvn_subscriber_new(&opts);
    cr_assert_not_null(sub);
    return sub;
}

//  Returns a publisher of host to the broker's frontend, a CURVE client
//  with the secret certificate at secret.
static hvn_publisher_t *s_curve_publisher(const char *host, const char *secret)
{
    hvn_publisher_opts_t opts = {.endpoint = env.frontend,
                                 .host = host,
                                 .curve_secret = secret,
                                 .curve_server = broker_cert};
    hvn_publisher_t *pub = hvn_publisher_new(&opts);
    cr_assert_not_null(pub);
    return pub;
}

Test(security, the_libraries_count_refusals_and_redials)
{
    char pub_path[400], pub_key[420], sub_path[400], sub_key[420];
    s_late_keygen("late-pub.cert", "publisher", "cmp-022", pub_path, sizeof(pub_path), pub_key,
                  sizeof(pub_key));
    s_late_keygen("late-sub.cert", "subscriber", NULL, sub_path, sizeof(sub_path), sub_key,
                  sizeof(sub_key));
    hvn_subscriber_t *sub = s_curve_subscriber(sub_key);
    hvn_publisher_t *pub = s_curve_publisher("cmp-022", pub_key);

    //  Both refused; the publisher's actor redials by itself, the
    //  subscriber while recv() waits
    hvn_msg_t *msg = calloc(1, sizeof(*msg));
    cr_assert_not_null(msg);
    hvn_subscriber_stats_t sub_stats = {0};
    int64_t deadline = zclock_mono() + 20000;
    while (sub_stats.redials < 1 && zclock_mono() < deadline) {
        cr_assert_eq(hvn_subscriber_recv(sub, msg, 100), 0, "a refused subscriber received");
        hvn_subscriber_stats(sub, &sub_stats);
    }
    cr_assert_geq(sub_stats.denials, 1);
    cr_assert_geq(sub_stats.redials, 1, "the subscriber did not dial again");
    hvn_publisher_stats_t pub_stats = {0};
    deadline = zclock_mono() + 20000;
    while (pub_stats.redials < 1 && zclock_mono() < deadline) {
        hvn_publisher_stats(pub, &pub_stats);
        nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
    }
    cr_assert_geq(pub_stats.denials, 1);
    cr_assert_geq(pub_stats.redials, 1, "the publisher did not dial again");
    cr_expect_eq(pub_stats.broker, 0);

    //  Installed: both get in, and the publisher's create reaches the subscriber
    s_install(sub_path, "subscribers");
    s_install(pub_path, "publishers");
    //  The subscriber redials only while it is used: recv() drives it. Once
    //  in, it may get the publisher's heartbeat before STATS shows it in
    deadline = zclock_mono() + S_LATE_MS;
    int64_t subscriptions;
    while ((subscriptions = it_broker_stat(env.service, "subscriptions", 2000)) < 1 &&
           zclock_mono() < deadline)
        cr_assert_geq(hvn_subscriber_recv(sub, msg, 100), 0);
    cr_assert_geq(subscriptions, 1, "the subscriber never got in");
    char line[2048];
    it_node_json(line, sizeof(line), 22, "80000000-0000-4000-8000-000000000022", "cmp-022", 2,
                 4096);
    hvn_node_t node;
    char why[256];
    cr_assert_eq(hvn_json_parse_node(line, strlen(line), &node, NULL, why, sizeof(why)), 0, "%s",
                 why);
    cr_assert_eq(hvn_publisher_report(pub, &node), 0);
    cr_assert_eq(hvn_publisher_flush(pub, S_LATE_MS), 0, "the publisher never got in");
    bool created = false; //  Heartbeats may come first
    deadline = zclock_mono() + 20000;
    while (!created && zclock_mono() < deadline)
        created = hvn_subscriber_recv(sub, msg, 100) == 1 && msg->event == HVN_EVENT_CREATE;
    cr_assert(created, "the create did not arrive");
    cr_expect_str_eq(msg->node.uuid, "80000000-0000-4000-8000-000000000022");
    hvn_publisher_stats(pub, &pub_stats);
    cr_expect_eq(pub_stats.broker, 1);
    free(msg);
    hvn_publisher_destroy(&pub);
    hvn_subscriber_destroy(&sub);
}

// --------------------------------------------------------------------------
//  Keys removed while their clients stay connected

#define S_REVOKE_MS 20000 //  The broker looks once a second; generous for a loaded machine

//  Returns nothing; the public certificate env.dir/dir/name is removed.
static void s_revoke(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s/%s", env.dir, dir, name);
    cr_assert_eq(remove(path), 0, "cannot remove %s", path);
}

//  Returns nothing; node (parsed from a hvn-pub input line) is reported
//  by pub and flushed to the broker (asserted).
static void s_report(hvn_publisher_t *pub, int64_t id, const char *uuid, const char *host,
                     int64_t vcpus)
{
    char line[2048], why[256];
    hvn_node_t node;
    it_node_json(line, sizeof(line), id, uuid, host, vcpus, 4096);
    cr_assert_eq(hvn_json_parse_node(line, strlen(line), &node, NULL, why, sizeof(why)), 0, "%s",
                 why);
    cr_assert_eq(hvn_publisher_report(pub, &node), 0);
    cr_assert_eq(hvn_publisher_flush(pub, 20000), 0, "not flushed");
}

//  Returns 1 once sub receives a create of uuid within timeout_ms, else 0;
//  *other is set when a create or update of avoid (may be NULL) came first.
static int s_recv_create(hvn_subscriber_t *sub, hvn_msg_t *msg, const char *uuid, const char *avoid,
                         bool *other, int timeout_ms)
{
    for (int64_t deadline = zclock_mono() + timeout_ms; zclock_mono() < deadline;) {
        if (hvn_subscriber_recv(sub, msg, 100) != 1 || msg->event == HVN_EVENT_BROKER)
            continue;
        if (avoid && streq(msg->node.uuid, avoid))
            *other = true;
        if (msg->event == HVN_EVENT_CREATE && streq(msg->node.uuid, uuid))
            return 1;
    }
    return 0;
}

Test(security, a_removed_publisher_key_is_refused_on_its_open_connection)
{
    char secret[420];
    s_key("publishers/cmp-030.cert", "publisher", "cmp-030", secret, sizeof(secret));
    hvn_subscriber_t *sub = s_curve_subscriber(sub_secret);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0, "subscriber not connected");
    hvn_publisher_t *pub = s_curve_publisher("cmp-030", secret);
    hvn_msg_t *msg = calloc(1, sizeof(*msg));
    cr_assert_not_null(msg);
    bool other = false;

    //  Listed: its create arrives
    const char *uuid = "a0000000-0000-4000-8000-000000000030";
    s_report(pub, 30, uuid, "cmp-030", 1);
    cr_assert(s_recv_create(sub, msg, uuid, NULL, &other, 20000), "the listed create was lost");
    int64_t refused = s_stat("refused.not_authorized");

    //  Removed while connected: its updates are refused, within a deadline
    s_revoke("publishers", "cmp-030.cert");
    int64_t vcpus = 2;
    int64_t deadline = zclock_mono() + S_REVOKE_MS;
    while (s_stat("refused.not_authorized") <= refused && zclock_mono() < deadline) {
        s_report(pub, 30, uuid, "cmp-030", vcpus++);
        nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
    }
    cr_assert_gt(s_stat("refused.not_authorized"), refused,
                 "the removed key's messages were still accepted");

    //  From then on nothing of it passes: a new node is refused (counted),
    //  and a listed host's create sent after it reaches the subscriber
    //  without it
    refused = s_stat("refused.not_authorized");
    const char *late = "b0000000-0000-4000-8000-000000000030";
    s_report(pub, 31, late, "cmp-030", 1);
    cr_assert_eq(s_wait_stat("refused.not_authorized", refused + 1, 20000), 0,
                 "the removed key's create was not refused");
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    cr_assert(s_recv_create(sub, msg, S_UUID_OK, late, &other, 20000),
              "the listed create was lost");
    cr_expect_not(other, "the removed key's create reached the subscriber");
    cr_expect_eq(s_stat("cache_nodes"), 2); //  The first create and cmp-017's

    free(msg);
    hvn_publisher_set_linger(pub, 0);
    hvn_publisher_destroy(&pub);
    hvn_subscriber_destroy(&sub);
}

//  Returns the first frame of the broker's answer to request (one frame,
//  then arg when not NULL) on dealer, as a heap string ("" when none came
//  in time); *why gets the second frame when not NULL.
static char *s_ask(zsock_t *dealer, const char *request, const char *arg, char **why)
{
    if (arg)
        cr_assert_eq(zstr_sendx(dealer, request, arg, NULL), 0);
    else
        cr_assert_eq(zstr_send(dealer, request), 0);
    zmsg_t *reply = zmsg_recv(dealer);
    char *word = reply ? zmsg_popstr(reply) : NULL;
    if (why)
        *why = reply ? zmsg_popstr(reply) : NULL;
    zmsg_destroy(&reply);
    return word ? word : strdup("");
}

Test(security,
     a_removed_subscriber_key_is_refused_service_and_subscriptions_on_its_open_connections)
{
    char secret[420];
    s_key("subscribers/watcher.cert", "subscriber", NULL, secret, sizeof(secret));
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);

    //  One connection, kept open, as a program polling STATS holds it
    zcert_t *cert = zcert_load(secret);
    zcert_t *server = zcert_load(broker_cert);
    cr_assert(cert && server);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(dealer);
    zcert_apply(cert, dealer);
    zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
    zsock_set_rcvtimeo(dealer, 10000);
    zsock_set_linger(dealer, 0);
    cr_assert_eq(zsock_connect(dealer, "%s", env.service), 0);
    char *word = s_ask(dealer, "STATS", NULL, NULL);
    cr_assert_str_eq(word, "STATS", "the listed key got no STATS");
    free(word);
    int64_t refused = s_stat("service_refused");
    //  And a live feed with the same key
    zsock_t *live = zsock_new(ZMQ_SUB);
    cr_assert_not_null(live);
    zcert_apply(cert, live);
    zsock_set_curve_serverkey(live, zcert_public_txt(server));
    zsock_set_linger(live, 0);
    zsock_set_subscribe(live, "compute_node.");
    cr_assert_eq(zsock_connect(live, "%s", env.backend), 0);
    cr_assert_eq(it_wait_subscriptions(env.service, 1, S_WAIT_MS), 0,
                 "the live feed not subscribed");
    int64_t limited = s_stat("limited_subscriptions");

    s_revoke("subscribers", "watcher.cert");
    char *why = NULL;
    word = NULL;
    for (int64_t deadline = zclock_mono() + S_REVOKE_MS; zclock_mono() < deadline;) {
        free(word);
        zstr_free(&why);
        word = s_ask(dealer, "STATS", NULL, &why);
        if (!streq(word, "STATS"))
            break;
        nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
    }
    cr_expect_str_eq(word, "ERROR", "the removed key still gets STATS");
    cr_expect(why && strstr(why, "--subscribers-dir"), "why: %s", why ? why : "(none)");
    free(word);
    zstr_free(&why);
    word = s_ask(dealer, "SNAPSHOT", "", NULL);
    cr_expect_str_eq(word, "ERROR", "the removed key still gets a snapshot");
    free(word);
    cr_expect_geq(s_stat("service_refused"), refused + 2);
    //  The live feed keeps its subscription (libzmq cannot close one XPUB
    //  peer, docs/security.md) but gets no new one
    zsock_set_subscribe(live, "hvn.");
    cr_expect_eq(s_wait_stat("limited_subscriptions", limited + 1, 20000), 0,
                 "the removed key's new subscription was not refused");
    cr_expect_eq(s_stat("subscriptions"), 1);
    zsock_destroy(&live);

    //  A new connection with that key gets no snapshot: refused at the
    //  handshake, or at the request while the handshake's view of the
    //  directory is still under a second old; the replica says so, and
    //  stays up without printing anything
    const char *args[] = {"--snapshot", "--count", "1", "--timeout", "60", NULL};
    it_proc_t *snap = s_subscribe(secret, args);
    cr_expect_eq(s_wait_stderr(snap, "no broker answered the snapshot", S_STAT_MS), 0,
                 "the removed key's snapshot was not refused");
    s_stop_silent(&snap, "the removed key's replica");

    zsock_destroy(&dealer);
    zcert_destroy(&cert);
    zcert_destroy(&server);
}

//  Returns nothing; the broker was stopped with sig and started again,
//  CURVE on as in s_setup, keeping its bindings in the file at state.
static void s_broker_restart(int sig, const char *state)
{
    it_stop(&env.broker, sig, 5000);
    char pubs[300], subs[300], secret[420];
    s_path(pubs, sizeof(pubs), "publishers");
    s_path(subs, sizeof(subs), "subscribers");
    snprintf(secret, sizeof(secret), "%s_secret", broker_cert);
    const char *extra[] = {"--curve-secret",    secret, "--publishers-dir", pubs,
                           "--subscribers-dir", subs,   "--state-file",     state, NULL};
    it_broker_start(&env, extra);
}

Test(security, a_node_stays_its_hosts_across_a_broker_restart)
{
    char state[400];
    s_path(state, sizeof(state), "broker.state");
    s_broker_restart(SIGTERM, state);
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    cr_assert_eq(s_stat_after("cache_nodes", 1), 1);
    //  The binding reaches the file within a second of the create: the
    //  node's 16 raw uuid bytes appear in it
    uint8_t raw[16];
    for (int i = 0, j = 0; i < 16; j++)
        if (S_UUID_OK[j] != '-') {
            unsigned byte;
            sscanf(S_UUID_OK + j, "%2x", &byte);
            raw[i++] = (uint8_t)byte;
            j++;
        }
    for (int64_t deadline = zclock_mono() + 5000;;) {
        cr_assert_lt(zclock_mono(), deadline, "the node never reached the state file");
        char buf[4096];
        FILE *f = fopen(state, "rb");
        size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
        if (f)
            fclose(f);
        if (n >= 16 && memmem(buf, n, raw, 16))
            break;
        nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
    }
    //  kill -9 while cmp-017 is away; cmp-019 then creates cmp-017's node
    s_broker_restart(SIGKILL, state);
    cr_assert_eq(s_stat("cache_nodes"), 0);
    cr_expect_eq(s_publish("cmp-019", S_UUID_OK, other_pub_secret, "20"), 0);
    cr_assert_geq(s_stat_after("refused.not_authorized", 1), 1);
    cr_expect_eq(s_stat("cache_nodes"), 0, "the forgery was cached");
    //  cmp-017 comes back: the node is its own, and every snapshot says so
    cr_assert_eq(s_publish("cmp-017", S_UUID_OK, pub_secret, "20"), 0);
    cr_assert_eq(s_stat_after("cache_nodes", 1), 1);
    s_snapshot_owner();
}
