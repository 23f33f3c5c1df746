/*  test_broker_auth.c — the broker's certificate directories and its
    key-to-host map, without sockets: which certificates count, that a
    directory's changes are picked up, and that one ZAP handler per process
    is all there can be.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvn_auth.h"

static char dir[256], pubs[300], subs[300];

//  Returns 0; removes one entry (for nftw).
static int s_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void s_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hvn-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(pubs, sizeof(pubs), "%s/publishers", dir);
    snprintf(subs, sizeof(subs), "%s/subscribers", dir);
    cr_assert_eq(zsys_dir_create("%s", pubs), 0);
    cr_assert_eq(zsys_dir_create("%s", subs), 0);
}

static void s_teardown(void)
{
    nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(auth, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Returns a new certificate saved as <in>/<name> (and <name>_secret),
//  with metadata host when host is not NULL. The caller destroys it.
static zcert_t *s_cert(const char *in, const char *name, const char *host)
{
    zcert_t *cert = zcert_new();
    cr_assert_not_null(cert);
    if (host)
        zcert_set_meta(cert, "host", "%s", host);
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", in, name);
    cr_assert_eq(zcert_save(cert, path), 0);
    return cert;
}

Test(auth, publisher_keys_map_to_their_host_and_only_theirs)
{
    zcert_t *a = s_cert(pubs, "cmp-1.cert", "cmp-1");
    zcert_t *nohost = s_cert(pubs, "nohost.cert", NULL);
    zcert_t *badhost = s_cert(pubs, "bad.cert", "a@b");
    zcert_t *reader = s_cert(subs, "reader.cert", NULL);
    //  The same key twice: the first file counts, the copy is ignored
    char copy[400];
    snprintf(copy, sizeof(copy), "%s/cmp-1-copy.cert", pubs);
    cr_assert_eq(zcert_save_public(a, copy), 0);
    char error[256] = "";
    hvn_auth_t *auth = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_assert_not_null(auth, "%s", error);

    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1");
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1", "cached");
    cr_expect_null(hvn_auth_publisher_host(auth, zcert_public_txt(nohost)));
    cr_expect_null(hvn_auth_publisher_host(auth, zcert_public_txt(badhost)));
    cr_expect_null(hvn_auth_publisher_host(auth, zcert_public_txt(reader)),
                   "a subscriber key is no publisher");
    cr_expect_null(hvn_auth_publisher_host(auth, NULL));

    //  A certificate added later is found (the directory changed; it is
    //  looked at again at most once a second)
    zcert_t *b = s_cert(pubs, "cmp-2.cert", "cmp-2");
    const char *host = NULL;
    for (int64_t deadline = zclock_mono() + 5000; !host && zclock_mono() < deadline;
         zclock_sleep(20))
        host = hvn_auth_publisher_host(auth, zcert_public_txt(b));
    cr_expect_str_eq(host, "cmp-2");
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1");

    hvn_auth_stats_t stats;
    hvn_auth_stats(auth, &stats);
    cr_expect_eq(stats.allowed + stats.denied_publishers + stats.denied_subscribers, 0);
    hvn_auth_destroy(&auth);
    cr_expect_null(auth);
    zcert_destroy(&a);
    zcert_destroy(&b);
    zcert_destroy(&nohost);
    zcert_destroy(&badhost);
    zcert_destroy(&reader);
}

Test(auth, one_handler_per_process_and_directories_must_exist)
{
    char error[256] = "";
    hvn_auth_t *auth = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_assert_not_null(auth, "%s", error);
    hvn_auth_t *second = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_expect_null(second, "a second ZAP handler started");
    cr_expect(strstr(error, "ZAP") != NULL, "error: %s", error);
    hvn_auth_destroy(&auth);

    //  Once the first is gone, the endpoint is free again
    auth = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_expect_not_null(auth, "%s", error);
    hvn_auth_destroy(&auth);

    char missing[400];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    auth = hvn_auth_new(missing, subs, error, sizeof(error));
    cr_expect_null(auth);
    cr_expect(strstr(error, missing) != NULL, "error: %s", error);
    auth = hvn_auth_new(pubs, missing, error, sizeof(error));
    cr_expect_null(auth);
    cr_expect(strstr(error, "subscribers") != NULL, "error: %s", error);
}

Test(auth, a_removed_or_changed_certificate_takes_effect_at_the_next_refresh)
{
    zcert_t *a = s_cert(pubs, "cmp-1.cert", "cmp-1");
    zcert_t *b = s_cert(pubs, "cmp-2.cert", "cmp-2");
    zcert_t *reader = s_cert(subs, "reader.cert", NULL);
    zcert_t *other = s_cert(subs, "other.cert", NULL);
    char error[256] = "";
    hvn_auth_t *auth = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_assert_not_null(auth, "%s", error);
    cr_assert_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1");
    cr_assert_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(b)), "cmp-2");
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(reader)), 1);
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(other)), 1);
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(a)), 0,
                 "a publisher key is no subscriber");
    cr_expect_eq(hvn_auth_subscriber_known(auth, NULL), 0);
    cr_expect_eq(hvn_auth_subscriber_known(auth, ""), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 0, "nothing changed, nothing loaded");

    //  Removed: the next refresh forgets the key, cached answers included
    char path[400];
    snprintf(path, sizeof(path), "%s/cmp-1.cert", pubs);
    cr_assert_eq(remove(path), 0);
    snprintf(path, sizeof(path), "%s/reader.cert", subs);
    cr_assert_eq(remove(path), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_null(hvn_auth_publisher_host(auth, zcert_public_txt(a)));
    cr_expect_null(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "asked again");
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(b)), "cmp-2");
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(reader)), 0);
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(other)), 1);
    cr_expect_eq(hvn_auth_refresh(auth), 0);

    //  Changed: the same key bound to another host of the same length,
    //  installed with rename() as configuration management does (and no
    //  secret twin, which zcert_load would read instead)
    snprintf(path, sizeof(path), "%s/cmp-2.cert_secret", pubs);
    cr_assert_eq(remove(path), 0);
    zcert_t *b9 = zcert_new_from(zcert_public_key(b), zcert_secret_key(b));
    cr_assert_not_null(b9);
    zcert_set_meta(b9, "host", "%s", "cmp-9");
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s/cmp-2.cert.new", dir);
    cr_assert_eq(zcert_save_public(b9, tmp), 0);
    zcert_destroy(&b9);
    snprintf(path, sizeof(path), "%s/cmp-2.cert", pubs);
    cr_assert_eq(rename(tmp, path), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(b)), "cmp-9");

    //  Put back: found again (a lookup of an unknown key looks at once)
    snprintf(path, sizeof(path), "%s/cmp-1.cert", pubs);
    cr_assert_eq(zcert_save_public(a, path), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1");

    //  The directory gone: nobody is known; back: known again
    char moved[400];
    snprintf(moved, sizeof(moved), "%s/subscribers.old", dir);
    cr_assert_eq(rename(subs, moved), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(other)), 0);
    cr_assert_eq(rename(moved, subs), 0);
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(other)), 1);

    hvn_auth_destroy(&auth);
    zcert_destroy(&a);
    zcert_destroy(&b);
    zcert_destroy(&reader);
    zcert_destroy(&other);
}

//  Returns how many lines of the text in log hold what.
static int s_lines_with(FILE *log, const char *what)
{
    fflush(log);
    rewind(log);
    char line[1024];
    int count = 0;
    while (fgets(line, sizeof(line), log))
        count += strstr(line, what) != NULL;
    return count;
}

Test(auth, each_directory_is_read_once_for_the_handler_and_the_broker)
{
    zcert_t *a = s_cert(pubs, "cmp-1.cert", "cmp-1");
    zcert_t *reader = s_cert(subs, "reader.cert", NULL);
    FILE *log = tmpfile();
    cr_assert_not_null(log);
    zsys_set_logstream(log);
    char error[256] = "";
    hvn_auth_t *auth = hvn_auth_new(pubs, subs, error, sizeof(error));
    cr_assert_not_null(auth, "%s", error);
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(a)), "cmp-1");
    cr_expect_eq(hvn_auth_subscriber_known(auth, zcert_public_txt(reader)), 1);
    int publishers = s_lines_with(log, "publisher certificate(s) loaded");
    int subscribers = s_lines_with(log, "subscriber certificate(s) loaded");

    //  A change: read again, once
    zcert_t *b = s_cert(pubs, "cmp-2.cert", "cmp-2");
    cr_expect_eq(hvn_auth_refresh(auth), 1);
    cr_expect_str_eq(hvn_auth_publisher_host(auth, zcert_public_txt(b)), "cmp-2");
    cr_expect_eq(hvn_auth_refresh(auth), 0);
    int reloads = s_lines_with(log, "publisher certificate(s) loaded");
    hvn_auth_destroy(&auth);
    zsys_set_logstream(stderr);
    fclose(log);
    cr_expect_eq(publishers, 1, "the publishers' directory was read %d times", publishers);
    cr_expect_eq(subscribers, 1, "the subscribers' directory was read %d times", subscribers);
    cr_expect_eq(reloads, 2, "after one change, %d reads in all", reloads);
    zcert_destroy(&a);
    zcert_destroy(&b);
    zcert_destroy(&reader);
}
