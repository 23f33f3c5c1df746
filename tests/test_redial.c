/*  test_redial.c — a client socket refused at the handshake is dialled
    again, later each time, and gets in once it is let in.

    A CURVE server on ipc:// in a temporary directory, and a ZAP handler of
    the test's own (a REP on the ZAP endpoint, answered from the test's
    loop) that refuses or admits every key as the test says. The client is
    a PUSH watched by a redialer. The waits are drawn at random between
    half of the backoff and all of it, so the test checks what holds for
    any draw: the gap between refusals is at least half the backoff, and
    the time to the next redial right after a refusal at most all of it.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

#include "hvn_redial.h"

#define S_WAIT_MS 20000 //  Generous deadline for anything the test waits for

typedef struct {
    char dir[64];          //  Temporary directory
    char endpoint[128];    //  ipc:// endpoint in it
    zcert_t *server_cert;  //  The server's key pair
    zcert_t *client_cert;  //  The client's key pair
    zsock_t *zap;          //  REP bound to the ZAP endpoint
    zsock_t *server;       //  CURVE server (PULL)
    zsock_t *client;       //  CURVE client (PUSH)
    hvn_redial_t *redial;  //  Watching client
    bool allow;            //  What the ZAP handler answers
    int next;              //  Last return of hvn_redial_tend
    uint64_t seen_denials; //  Denials seen by s_step
    int64_t denied_at;     //  Monotonic ms when s_step saw the last denial
    int next_after_denial; //  hvn_redial_tend's return right after it
} s_fixture_t;

static s_fixture_t fx;

//  Returns nothing; a CURVE server bound at fx.endpoint is fx.server.
static void s_server_start(void)
{
    fx.server = zsock_new(ZMQ_PULL);
    cr_assert_not_null(fx.server);
    zcert_apply(fx.server_cert, fx.server);
    zsock_set_curve_server(fx.server, 1);
    zsock_set_zap_domain(fx.server, "test");
    cr_assert_eq(zsock_bind(fx.server, "%s", fx.endpoint), 0);
}

static void s_setup(void)
{
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/hvn-redial-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    snprintf(fx.endpoint, sizeof(fx.endpoint), "ipc://%s/server", fx.dir);
    fx.server_cert = zcert_new();
    fx.client_cert = zcert_new();
    fx.zap = zsock_new_rep("inproc://zeromq.zap.01");
    cr_assert(fx.server_cert && fx.client_cert && fx.zap);
    s_server_start();
    fx.client = zsock_new(ZMQ_PUSH);
    cr_assert_not_null(fx.client);
    zcert_apply(fx.client_cert, fx.client);
    zsock_set_curve_serverkey(fx.client, zcert_public_txt(fx.server_cert));
}

static void s_teardown(void)
{
    hvn_redial_destroy(&fx.redial);
    zsock_destroy(&fx.client);
    zsock_destroy(&fx.server);
    zsock_destroy(&fx.zap);
    zcert_destroy(&fx.server_cert);
    zcert_destroy(&fx.client_cert);
    char path[128];
    snprintf(path, sizeof(path), "%s/server", fx.dir);
    remove(path);
    remove(fx.dir);
}

TestSuite(redial, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  Returns nothing; answers every waiting ZAP request: 200 with fx.allow,
//  else 400.
static void s_zap_answer(void)
{
    while (zsock_events(fx.zap) & ZMQ_POLLIN) {
        zmsg_t *request = zmsg_recv(fx.zap);
        cr_assert_not_null(request);
        char *version = zmsg_popstr(request);
        char *sequence = zmsg_popstr(request);
        zmsg_t *reply = zmsg_new();
        zmsg_addstr(reply, "1.0");
        zmsg_addstr(reply, sequence ? sequence : "");
        zmsg_addstr(reply, fx.allow ? "200" : "400");
        zmsg_addstr(reply, fx.allow ? "OK" : "No access");
        zmsg_addstr(reply, "");
        zmsg_addmem(reply, NULL, 0);
        cr_assert_eq(zmsg_send(&reply, fx.zap), 0);
        free(version);
        free(sequence);
        zmsg_destroy(&request);
    }
}

//  Returns the redialer's counters after one turn of the loop: ZAP
//  requests answered, the redialer tended, a short wait for more. Notes
//  when a new denial was seen and what tend returned right after it.
static hvn_redial_stats_t s_step(void)
{
    s_zap_answer();
    fx.next = hvn_redial_tend(fx.redial);
    hvn_redial_stats_t stats;
    hvn_redial_stats(fx.redial, &stats);
    if (stats.denials != fx.seen_denials) {
        fx.seen_denials = stats.denials;
        fx.denied_at = zclock_mono();
        fx.next_after_denial = fx.next;
    }
    zpoller_t *poller = zpoller_new(fx.zap, hvn_redial_monitor(fx.redial), NULL);
    cr_assert_not_null(poller);
    zpoller_wait(poller, 5);
    zpoller_destroy(&poller);
    return stats;
}

//  Returns 0 once the redialer has counted n denials, -1 after S_WAIT_MS.
static int s_until_denials(uint64_t n)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (s_step().denials < n)
        if (zclock_mono() >= deadline)
            return -1;
    return 0;
}

//  Returns 0 once no endpoint is refusing (a handshake succeeded), -1 after
//  S_WAIT_MS.
static int s_until_accepted(void)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (s_step().refusing > 0)
        if (zclock_mono() >= deadline)
            return -1;
    return 0;
}

//  Returns nothing; the client is watched (redial as given) and connected.
static void s_client_connect(bool redial)
{
    fx.redial = hvn_redial_new(fx.client, "test", redial);
    cr_assert_not_null(fx.redial);
    cr_assert_eq(zsock_connect(fx.client, "%s", fx.endpoint), 0);
}

Test(redial, a_refused_endpoint_is_dialled_again_later_each_time_and_gets_in_when_allowed)
{
    s_client_connect(true);
    cr_assert_eq(s_until_denials(1), 0, "the refusal was not seen");
    cr_expect(fx.next_after_denial > 0 && fx.next_after_denial <= HVN_REDIAL_FIRST_MS,
              "first wait %d ms", fx.next_after_denial);
    int64_t first = fx.denied_at;
    cr_assert_eq(s_until_denials(2), 0, "not dialled again");
    cr_expect_geq(fx.denied_at - first, HVN_REDIAL_FIRST_MS / 2 - 10);
    cr_expect(fx.next_after_denial <= 2 * HVN_REDIAL_FIRST_MS, "second wait %d ms",
              fx.next_after_denial);
    int64_t second = fx.denied_at;
    cr_assert_eq(s_until_denials(3), 0, "not dialled a third time");
    cr_expect_geq(fx.denied_at - second, HVN_REDIAL_FIRST_MS - 10, "the wait did not double");

    fx.allow = true;
    cr_assert_eq(s_until_accepted(), 0, "not let in once allowed");
    hvn_redial_stats_t stats;
    hvn_redial_stats(fx.redial, &stats);
    cr_expect_eq(stats.denials, 3);
    cr_expect_geq(stats.redials, 3);
    cr_expect_eq(fx.next, -1, "a redial is still pending");
    //  The connection works
    zsock_set_rcvtimeo(fx.server, S_WAIT_MS);
    cr_assert_eq(zstr_send(fx.client, "hello"), 0);
    char *text = zstr_recv(fx.server);
    cr_expect_str_eq(text, "hello");
    zstr_free(&text);
}

Test(redial, two_refusing_endpoints_of_one_socket_both_get_in)
{
    //  A second server at another endpoint: each refusal disconnects one
    //  endpoint while the other's redial may have connected a new session
    char second[160];
    snprintf(second, sizeof(second), "ipc://%s/second", fx.dir);
    zsock_t *other = zsock_new(ZMQ_PULL);
    cr_assert_not_null(other);
    zcert_apply(fx.server_cert, other);
    zsock_set_curve_server(other, 1);
    cr_assert_eq(zsock_bind(other, "%s", second), 0);
    s_client_connect(true);
    cr_assert_eq(zsock_connect(fx.client, "%s", second), 0);
    cr_assert_eq(s_until_denials(6), 0, "both endpoints not refused three times");
    fx.allow = true;
    cr_assert_eq(s_until_accepted(), 0, "not both let in once allowed");
    //  Both connections work: PUSH deals to each in turn
    zsock_set_rcvtimeo(fx.server, S_WAIT_MS);
    zsock_set_rcvtimeo(other, S_WAIT_MS);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(zstr_send(fx.client, "hello"), 0);
    char *a = zstr_recv(fx.server);
    char *b = zstr_recv(other);
    cr_expect(a && b, "a connection was lost: %s, %s", a ? a : "-", b ? b : "-");
    zstr_free(&a);
    zstr_free(&b);
    zsock_destroy(&other);
    char path[160];
    snprintf(path, sizeof(path), "%s/second", fx.dir);
    remove(path);
}

Test(redial, a_handshake_that_succeeds_starts_the_backoff_again)
{
    s_client_connect(true);
    cr_assert_eq(s_until_denials(2), 0);
    fx.allow = true;
    cr_assert_eq(s_until_accepted(), 0);
    //  A new server at the same endpoint that refuses: libzmq reconnects
    //  (the old connection broke), the refusal comes, and the first wait is
    //  the shortest again, not the third (2 to 4 s)
    zsock_destroy(&fx.server);
    fx.allow = false;
    s_server_start();
    cr_assert_eq(s_until_denials(3), 0, "the new refusal was not seen");
    cr_expect(fx.next_after_denial > 0 && fx.next_after_denial <= HVN_REDIAL_FIRST_MS,
              "wait after a success: %d ms", fx.next_after_denial);
}

Test(redial, watching_only_counts_the_refusal_and_never_redials)
{
    s_client_connect(false);
    cr_assert_eq(s_until_denials(1), 0);
    cr_expect_eq(fx.next_after_denial, -1);
    hvn_redial_stats_t stats;
    hvn_redial_stats(fx.redial, &stats);
    cr_expect_eq(stats.redials, 0);
    cr_expect_eq(stats.refusing, 1);
}

Test(redial, destroy_is_null_safe_and_idempotent)
{
    hvn_redial_t *redial = NULL;
    hvn_redial_destroy(&redial);
    redial = hvn_redial_new(fx.client, "test", true);
    cr_assert_not_null(redial);
    hvn_redial_destroy(&redial);
    cr_expect_null(redial);
    hvn_redial_destroy(&redial);
}

Test(redial, destroy_logs_a_handshake_that_succeeded_after_the_last_tend)
{
    s_client_connect(true);
    cr_assert_eq(s_until_denials(1), 0);
    fx.allow = true;
    //  Tended until the redial; the handshake that follows is let in and
    //  carries a message to the server, but the redialer is not tended
    //  again: the success waits on its monitor
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (s_step().redials < 1)
        cr_assert(zclock_mono() < deadline, "no redial");
    zsock_set_sndtimeo(fx.client, S_WAIT_MS);
    cr_assert_eq(zstr_send(fx.client, "in"), 0);
    zsock_set_rcvtimeo(fx.server, 5);
    char *got = NULL;
    while (!got && zclock_mono() < deadline) {
        s_zap_answer();
        got = zstr_recv(fx.server);
    }
    cr_assert_str_eq(got ? got : "", "in", "the client did not get in");
    zstr_free(&got);

    FILE *log = tmpfile();
    cr_assert_not_null(log);
    zsys_set_logstream(log);
    hvn_redial_destroy(&fx.redial);
    zsys_set_logstream(stdout);
    char text[4096] = "";
    rewind(log);
    size_t len = fread(text, 1, sizeof(text) - 1, log);
    text[len] = '\0';
    fclose(log);
    cr_expect(strstr(text, "accepted the handshake after 1 refusal(s)") != NULL, "log: %s", text);
}

Test(redial, reconnect_intervals_of_a_fleet_are_drawn_apart_over_the_whole_range)
{
    //  A thousand publishers' intervals: each within the range, and
    //  together spread over all of it, a tenth of them in each tenth of it
    //  (100 expected in each; fewer than 50 is five standard deviations
    //  off), so that a restarted broker is not hit by every host at once
    int buckets[10] = {0};
    int span = HVN_RECONNECT_IVL_MAX_MS - HVN_RECONNECT_IVL_MIN_MS + 1;
    for (int i = 0; i < 1000; i++) {
        int ivl = hvn_redial_reconnect_ivl();
        cr_assert(ivl >= HVN_RECONNECT_IVL_MIN_MS && ivl <= HVN_RECONNECT_IVL_MAX_MS,
                  "interval %d ms out of range", ivl);
        buckets[(ivl - HVN_RECONNECT_IVL_MIN_MS) * 10 / span]++;
    }
    for (int b = 0; b < 10; b++)
        cr_expect_geq(buckets[b], 50, "tenth %d of the range drew %d of 1000", b, buckets[b]);
}
