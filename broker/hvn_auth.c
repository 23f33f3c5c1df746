/*  hvn_auth.c — the broker's ZAP handler and the key-to-host map.

    Why not czmq's zauth: zauth (4.2.1, the Debian 12 version) holds one
    certificate store and ignores the ZAP domain of a request, so every key
    it knows is let in on every socket; and libzmq allows one ZAP handler per
    context (it is the socket bound to inproc://zeromq.zap.01), so two zauth
    actors with a directory each cannot run side by side. The broker needs a
    publishers' directory for its frontend and a subscribers' directory for
    the backend and service sockets, so this small handler does what zauth
    does, RFC 27 over a REP socket in an actor, choosing the store by domain.
    The stores are czmq zcertstores filled from the directories with
    zcert_load (the zcert format), reloaded when a directory changes.

    One more difference: zcertstore's own directory loader asserts when two
    files hold the same public key (a copied certificate would abort the
    broker); this loader keeps the first and logs the rest.
*/
#include "hvn_auth.h"
#include "hvn_codec.h"
#include "hvn_names.h"
#include "hvn_error.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_KEY_TEXT 40    //  Z85 text of a 32-byte key
#define S_RESCAN_MS 1000 //  Shortest time between two looks at a directory
#define S_FORCED_MS 100  //  Same, when the handler does not know a key
#define S_DEPTH_MAX 8    //  Subdirectories looked into (zdir reads them too)

//  One certificate directory, loaded into a store, reloaded on change.
typedef struct {
    char *path;           //  The directory
    zcertstore_t *store;  //  Its certificates, by public key text
    uint64_t fingerprint; //  What the directory looked like when loaded
    int64_t checked_ms;   //  When the directory was last looked at
    int64_t forced_ms;    //  When an unknown key last made the handler look
    zhashx_t *misses;     //  Broker's copies: key -> when it was last not found (ms)
    int missing;          //  The directory could not be read at the last look
    int need_host;        //  Publishers: a certificate must name a valid host
    const char *role;     //  "publisher" or "subscriber", for log lines
} s_certdir_t;

struct _hvn_auth_t {
    zactor_t *actor;               //  The ZAP handler
    s_certdir_t publishers;        //  Broker thread's own copies, for host lookups
    s_certdir_t subscribers;       //  and service requests
    zhashx_t *hosts;               //  Key text -> host (strdup'd), cache
    char last_key[S_KEY_TEXT + 1]; //  Key of the last lookup
    const char *last_host;         //  Its answer (owned by hosts), or NULL
    atomic_uint_fast64_t allowed;
    atomic_uint_fast64_t denied_publishers;
    atomic_uint_fast64_t denied_subscribers;
    int64_t last_log_ms; //  Actor: when a refusal was last logged
    uint64_t unlogged;   //  Actor: refusals since then not logged
    int bound;           //  Set by the actor: the ZAP endpoint was bound
    char error[256];     //  Set by the actor when it was not
};

// --------------------------------------------------------------------------
//  Certificate directories

//  Returns nothing; dir's store is empty (zcertstore_empty is draft API in
//  czmq 4.2.1: a fresh store instead; NULL only when out of memory, and
//  then lookups find nothing).
static void s_certdir_empty(s_certdir_t *dir)
{
    zcertstore_destroy(&dir->store);
    dir->store = zcertstore_new(NULL);
}

//  Returns a 64-bit mix of x (splitmix64's finalizer).
static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

//  Returns 0 with *sum grown by one term per entry under the directory
//  open as fd (closed here), -1 when it cannot be read. A term mixes the
//  entry's name, inode, size, mode and change and modification times to
//  the nanosecond, so a file added, removed, renamed, replaced or
//  rewritten in place changes the sum; terms are added, so the order
//  readdir returns them in does not matter.
static int s_fingerprint_fd(int fd, int depth, uint64_t *sum)
{
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return -1;
    }
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (streq(name, ".") || streq(name, ".."))
            continue;
        uint64_t term = 0xcbf29ce484222325ULL; //  FNV-1a over the name
        for (const char *c = name; *c; c++)
            term = (term ^ (uint8_t)*c) * 0x100000001b3ULL;
        struct stat st;
        if (fstatat(dirfd(dir), name, &st, 0) == 0) {
            term = s_mix(term ^ (uint64_t)st.st_ino);
            term = s_mix(term ^ (uint64_t)st.st_size ^ ((uint64_t)st.st_mode << 48));
            term = s_mix(term ^ (uint64_t)st.st_mtim.tv_sec * 1000000000u ^
                         (uint64_t)st.st_mtim.tv_nsec);
            term = s_mix(term ^ (uint64_t)st.st_ctim.tv_sec * 1000000000u ^
                         (uint64_t)st.st_ctim.tv_nsec);
            if (S_ISDIR(st.st_mode) && depth < S_DEPTH_MAX) {
                int sub = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (sub >= 0)
                    s_fingerprint_fd(sub, depth + 1, &term);
            }
        }
        *sum += s_mix(term);
    }
    closedir(dir);
    return 0;
}

//  Returns 0 with *out set to what the directory at path looks like now
//  (see s_fingerprint_fd), -1 when it cannot be read. Costs a readdir and
//  a stat per file; reads no file.
static int s_fingerprint(const char *path, uint64_t *out)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t sum = 1; //  Never 0, the value of a directory never loaded
    if (fd < 0 || s_fingerprint_fd(fd, 0, &sum) != 0)
        return -1;
    *out = sum;
    return 0;
}

//  Returns 1 when dir's store was loaded again (it holds the certificates
//  now in its directory, or nothing when the directory cannot be read),
//  0 when it was left as it was: the directory looked the same as at the
//  last load, or was looked at less than a second ago (force 0). force 0:
//  look unless the last look was less than a second ago; 1: look now; 2:
//  reload, changed or not. The look itself (s_fingerprint) reads no
//  certificate; only a change does.
static int s_certdir_refresh(s_certdir_t *dir, int force)
{
    //  A look lists the directory and stats each file: at most once a
    //  second, so a crowd of handshakes (every host reconnecting after a
    //  broker restart, or one client retrying with an unknown key) costs
    //  one look a second, not one each
    int64_t now = zclock_mono();
    if (!force && now - dir->checked_ms < S_RESCAN_MS)
        return 0;
    dir->checked_ms = now;
    //  Taken before the files are read: a change made while they are read
    //  shows at the next look, and is loaded then
    uint64_t fingerprint = 0;
    int readable = s_fingerprint(dir->path, &fingerprint) == 0;
    if (readable && force < 2 && !dir->missing && dir->fingerprint == fingerprint)
        return 0; //  Unchanged: no certificate read
    zdir_t *zdir = readable ? zdir_new(dir->path, NULL) : NULL;
    if (!zdir) {
        //  Gone or unreadable: nobody is let in until it is back
        if (dir->missing && force < 2)
            return 0; //  Said so already
        s_certdir_empty(dir);
        dir->missing = 1;
        dir->fingerprint = 0;
        zsys_warning("auth: %s certificate directory '%s' cannot be read: no %s is let in",
                     dir->role, dir->path, dir->role);
        return 1;
    }
    dir->missing = 0;
    s_certdir_empty(dir);
    zfile_t **files = zdir_flatten(zdir);
    size_t loaded = 0;
    for (size_t i = 0; files && files[i]; i++) {
        const char *name = zfile_filename(files[i], NULL);
        size_t len = strlen(name);
        if (!zfile_is_regular(files[i]) || (len >= 7 && streq(name + len - 7, "_secret")))
            continue; //  A secret file has no business here; its public twin is read
        zcert_t *cert = zcert_load(name);
        if (!cert) {
            zsys_warning("auth: '%s' is not a certificate, ignored", name);
            continue;
        }
        const char *host = zcert_meta(cert, "host");
        if (dir->need_host && hvn_names_host_check(host)) {
            zsys_warning("auth: publisher certificate '%s' names no valid host "
                         "(metadata host), ignored",
                         name);
            zcert_destroy(&cert);
        } else if (!dir->store) {
            zcert_destroy(&cert);
        } else if (zcertstore_lookup(dir->store, zcert_public_txt(cert))) {
            zsys_warning("auth: '%s' repeats a key already loaded from '%s', ignored", name,
                         dir->path);
            zcert_destroy(&cert);
        } else {
            zcertstore_insert(dir->store, &cert);
            loaded++;
        }
    }
    zdir_flatten_free(&files);
    dir->fingerprint = fingerprint;
    zdir_destroy(&zdir);
    zsys_info("auth: %zu %s certificate(s) loaded from '%s'", loaded, dir->role, dir->path);
    return 1;
}

//  Returns 0 with dir set up and loaded, -1 when it cannot be.
static int s_certdir_init(s_certdir_t *dir, const char *path, const char *role, int need_host)
{
    memset(dir, 0, sizeof(*dir));
    dir->path = strdup(path);
    dir->store = zcertstore_new(NULL); //  In memory: this module reads the directory
    dir->role = role;
    dir->need_host = need_host;
    if (!dir->path || !dir->store)
        return -1;
    s_certdir_refresh(dir, 2);
    return 0;
}

//  Returns nothing; frees what s_certdir_init made.
static void s_certdir_fini(s_certdir_t *dir)
{
    zhashx_destroy(&dir->misses);
    zcertstore_destroy(&dir->store);
    zstr_free(&dir->path);
}

//  Returns the certificate of key in dir (reloaded first when changed),
//  or NULL.
static zcert_t *s_certdir_lookup(s_certdir_t *dir, const char *key)
{
    s_certdir_refresh(dir, 0);
    return dir->store ? zcertstore_lookup(dir->store, key) : NULL;
}

// --------------------------------------------------------------------------
//  The ZAP handler actor

typedef struct {
    hvn_auth_t *auth;           //  Counters and the bind result
    const char *publishers_dir; //  Borrowed until the actor signals
    const char *subscribers_dir;
} s_actor_args_t;

//  Returns nothing; one ZAP request on rep is answered: 200 with the key
//  as User-Id when the key is in the directory of the request's domain,
//  400 otherwise (400 as well for anything but a well-formed CURVE
//  request: the broker's sockets speak nothing else).
static void s_zap_answer(hvn_auth_t *auth, zsock_t *rep, s_certdir_t *publishers,
                         s_certdir_t *subscribers)
{
    zmsg_t *request = zmsg_recv(rep);
    if (!request)
        return;
    char *version = zmsg_popstr(request);
    char *sequence = zmsg_popstr(request);
    char *domain = zmsg_popstr(request);
    char *address = zmsg_popstr(request);
    zframe_t *identity = zmsg_pop(request);
    char *mechanism = zmsg_popstr(request);
    zframe_t *credential = zmsg_pop(request);
    char key[S_KEY_TEXT + 1] = "";
    const char *status = "400", *text = "No access";
    s_certdir_t *dir = NULL;
    int publisher = domain && streq(domain, HVN_AUTH_PUBLISHERS);
    if (publisher)
        dir = publishers;
    else if (domain && (streq(domain, HVN_AUTH_SUBSCRIBERS) || streq(domain, HVN_AUTH_SERVICE)))
        dir = subscribers;
    if (version && streq(version, "1.0") && mechanism && streq(mechanism, "CURVE") && credential &&
        zframe_size(credential) == 32 && dir) {
        zmq_z85_encode(key, zframe_data(credential), 32);
        zcert_t *cert = s_certdir_lookup(dir, key);
        //  Not known: maybe added since the last look. libzmq does not
        //  retry a client refused here, so look now rather than refuse a
        //  new host for good; a flood of unknown keys gets such a look ten
        //  times a second at most
        int64_t now = zclock_mono();
        if (!cert && now - dir->forced_ms >= S_FORCED_MS) {
            dir->forced_ms = now;
            s_certdir_refresh(dir, 1);
            cert = dir->store ? zcertstore_lookup(dir->store, key) : NULL;
        }
        if (cert) {
            status = "200";
            text = "OK";
        }
    }
    if (streq(status, "200"))
        atomic_fetch_add(&auth->allowed, 1);
    else {
        atomic_fetch_add(publisher ? &auth->denied_publishers : &auth->denied_subscribers, 1);
        //  A refused client reconnects every 100 ms or so: one line a second
        int64_t now = zclock_mono();
        if (auth->last_log_ms && now - auth->last_log_ms < 1000)
            auth->unlogged++;
        else {
            zsys_warning("auth: %s refused on %s: %s key %s from %s (%" PRIu64
                         " refusals unlogged since last line)",
                         mechanism ? mechanism : "?", domain && *domain ? domain : "(no domain)",
                         dir ? dir->role : "client", key[0] ? key : "(none)",
                         address ? address : "?", auth->unlogged);
            auth->last_log_ms = now;
            auth->unlogged = 0;
        }
    }
    //  Reply: version, sequence, status, text, user id, metadata
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    zmsg_addstr(reply, sequence ? sequence : "");
    zmsg_addstr(reply, status);
    zmsg_addstr(reply, text);
    zmsg_addstr(reply, streq(status, "200") ? key : "");
    zmsg_addmem(reply, NULL, 0);
    zmsg_send(&reply, rep);
    zstr_free(&version);
    zstr_free(&sequence);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&mechanism);
    zframe_destroy(&identity);
    zframe_destroy(&credential);
    zmsg_destroy(&request);
}

//  Returns nothing; the actor: bind, signal, answer until $TERM.
static void s_zap_actor(zsock_t *pipe, void *arg)
{
    s_actor_args_t *args = arg;
    hvn_auth_t *auth = args->auth;
    s_certdir_t publishers, subscribers;
    int ok = s_certdir_init(&publishers, args->publishers_dir, "publisher", 1) == 0 &&
             s_certdir_init(&subscribers, args->subscribers_dir, "subscriber", 0) == 0;
    zsock_t *rep = ok ? zsock_new(ZMQ_REP) : NULL;
    if (!ok)
        snprintf(auth->error, sizeof(auth->error), "auth: out of memory");
    else if (!rep || zsock_bind(rep, S_ZAP_ENDPOINT) != 0)
        snprintf(auth->error, sizeof(auth->error),
                 "auth: cannot bind the ZAP handler (%s): another one runs in this process?",
                 zmq_strerror(zmq_errno()));
    else
        auth->bound = 1;
    zsock_signal(pipe, 0);
    zpoller_t *poller = auth->bound ? zpoller_new(pipe, rep, NULL) : NULL;
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == rep)
            s_zap_answer(auth, rep, &publishers, &subscribers);
        else {
            //  $TERM from zactor_destroy, or the context ending
            zmsg_t *msg = which == pipe ? zmsg_recv(pipe) : NULL;
            zmsg_destroy(&msg);
            break;
        }
    }
    zpoller_destroy(&poller);
    if (rep && auth->bound)
        zsock_unbind(rep, S_ZAP_ENDPOINT);
    zsock_destroy(&rep);
    s_certdir_fini(&publishers);
    s_certdir_fini(&subscribers);
}

// --------------------------------------------------------------------------
//  Public

//  Returns 0 when path is a directory this process can read, -1 with the
//  reason in error.
static int s_dir_check(const char *option, const char *path, char *error, size_t error_size)
{
    DIR *dir = path ? opendir(path) : NULL;
    if (!dir) {
        hvn_error_set(error, error_size, "%s '%s': %s", option, path ? path : "(none)",
                      strerror(errno));
        return -1;
    }
    closedir(dir);
    return 0;
}

//  Returns nothing; frees a cached host.
static void s_free_host(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Returns the running handler, or NULL with the reason in error.
hvn_auth_t *hvn_auth_new(const char *publishers_dir, const char *subscribers_dir, char *error,
                         size_t error_size)
{
    if (s_dir_check("publishers directory", publishers_dir, error, error_size) != 0 ||
        s_dir_check("subscribers directory", subscribers_dir, error, error_size) != 0)
        return NULL;
    hvn_auth_t *self = calloc(1, sizeof(*self));
    if (!self) {
        hvn_error_set(error, error_size, "out of memory");
        return NULL;
    }
    self->hosts = zhashx_new();
    if (!self->hosts || s_certdir_init(&self->publishers, publishers_dir, "publisher", 1) != 0 ||
        s_certdir_init(&self->subscribers, subscribers_dir, "subscriber", 0) != 0 ||
        !(self->publishers.misses = zhashx_new()) || !(self->subscribers.misses = zhashx_new())) {
        hvn_error_set(error, error_size, "out of memory");
        hvn_auth_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->hosts, s_free_host);
    s_actor_args_t args = {self, publishers_dir, subscribers_dir};
    self->actor = zactor_new(s_zap_actor, &args); //  Returns after the actor signals
    if (!self->actor || !self->bound) {
        hvn_error_set(error, error_size, "%s", self->error[0] ? self->error : "auth: cannot start");
        hvn_auth_destroy(&self);
        return NULL;
    }
    return self;
}

//  Returns nothing; the handler is stopped and everything freed.
void hvn_auth_destroy(hvn_auth_t **self_p)
{
    assert(self_p);
    hvn_auth_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->actor);
    zhashx_destroy(&self->hosts);
    s_certdir_fini(&self->publishers);
    s_certdir_fini(&self->subscribers);
    free(self);
    *self_p = NULL;
}

//  Returns 1 when the broker thread's copy dir was loaded again (see
//  s_certdir_refresh for force), with what was cached from its old
//  certificates forgotten: the keys not found, and for the publishers the
//  key-to-host map. Else 0.
static int s_refresh(hvn_auth_t *self, s_certdir_t *dir, int force)
{
    if (!s_certdir_refresh(dir, force))
        return 0;
    if (dir->misses)
        zhashx_purge(dir->misses);
    if (dir == &self->publishers) {
        zhashx_purge(self->hosts);
        self->last_key[0] = '\0';
        self->last_host = NULL;
    }
    return 1;
}

//  Returns the certificate of key in the broker thread's copy dir, or
//  NULL. A key the handler let in but this copy does not know was added
//  since this copy last looked: the directory is looked at now, whatever
//  the time since (else a new client's first requests would be refused).
//  A key still unknown after that (its certificate removed while its
//  connection stays open) gets such a look once a second at most, so its
//  messages cost hash lookups, not a directory listing each.
static zcert_t *s_lookup(hvn_auth_t *self, s_certdir_t *dir, const char *key)
{
    zcert_t *cert = dir->store ? zcertstore_lookup(dir->store, key) : NULL;
    if (cert)
        return cert;
    int64_t now = zclock_mono();
    int64_t missed = dir->misses ? (int64_t)(intptr_t)zhashx_lookup(dir->misses, key) : 0;
    if (missed && now - missed < S_RESCAN_MS)
        return NULL;
    s_refresh(self, dir, 1);
    cert = dir->store ? zcertstore_lookup(dir->store, key) : NULL;
    if (!cert && dir->misses)
        zhashx_update(dir->misses, key, (void *)(intptr_t)(now ? now : 1));
    return cert;
}

//  Returns the host bound to a publisher key, or NULL.
const char *hvn_auth_publisher_host(hvn_auth_t *self, const char *key)
{
    assert(self);
    if (!key)
        return NULL;
    if (self->last_host && strncmp(self->last_key, key, sizeof(self->last_key)) == 0)
        return self->last_host;
    const char *host = zhashx_lookup(self->hosts, key);
    if (!host) {
        zcert_t *cert = s_lookup(self, &self->publishers, key);
        const char *meta = cert ? zcert_meta(cert, "host") : NULL;
        if (!meta || hvn_names_host_check(meta))
            return NULL;
        char *copy = strdup(meta);
        if (!copy)
            return NULL;
        zhashx_insert(self->hosts, key, copy);
        host = copy;
    }
    snprintf(self->last_key, sizeof(self->last_key), "%s", key);
    self->last_host = host;
    return host;
}

//  Returns 1 when key is a subscriber's, else 0.
int hvn_auth_subscriber_known(hvn_auth_t *self, const char *key)
{
    assert(self);
    return key && *key && s_lookup(self, &self->subscribers, key) != NULL;
}

//  Returns 1 when either directory was loaded again, else 0.
int hvn_auth_refresh(hvn_auth_t *self)
{
    assert(self);
    int publishers = s_refresh(self, &self->publishers, 1);
    int subscribers = s_refresh(self, &self->subscribers, 1);
    return publishers || subscribers;
}

//  Returns nothing; *out holds the counters.
void hvn_auth_stats(hvn_auth_t *self, hvn_auth_stats_t *out)
{
    assert(self && out);
    out->allowed = atomic_load(&self->allowed);
    out->denied_publishers = atomic_load(&self->denied_publishers);
    out->denied_subscribers = atomic_load(&self->denied_subscribers);
}
