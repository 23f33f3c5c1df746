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

    Each directory is loaded into one store, shared by the handler's thread
    (is this key let in?) and the broker's (which host is this key?): a
    certificate is read once per change of its directory, by whichever
    thread finds the change first, not once per thread. A load reads the
    files into a new store without holding the lock lookups take, then
    swaps it in, so neither thread waits on the other's disk reads.
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
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_KEY_TEXT 40    //  Z85 text of a 32-byte key
#define S_RESCAN_MS 1000 //  Shortest time between two looks at a directory
#define S_FORCED_MS 100  //  Same, when the handler does not know a key
#define S_DEPTH_MAX 8    //  Subdirectories looked into (zdir reads them too)

//  One certificate directory, loaded into a store, reloaded on change;
//  shared by the handler's thread and the broker's.
typedef struct {
    char *path;                 //  The directory
    const char *role;           //  "publisher" or "subscriber", for log lines
    int need_host;              //  Publishers: a certificate must name a valid host
    int ready;                  //  The mutexes are initialised
    pthread_mutex_t load;       //  One look (and load) at a time; guards the next three
    uint64_t fingerprint;       //  What the directory looked like when loaded
    int64_t checked_ms;         //  When the directory was last looked at
    int missing;                //  The directory could not be read at the last look
    pthread_mutex_t lock;       //  Guards store: a lookup moves the hash's cursor
    zcertstore_t *store;        //  Its certificates, by public key text
    atomic_uint_fast64_t loads; //  Times a load replaced the store
    int64_t forced_ms;          //  Handler's: when an unknown key last made it look
    zhashx_t *misses;           //  Broker's: key -> when it was last not found (ms)
    uint64_t seen_loads;        //  Broker's: loads when its caches were last emptied
} s_certdir_t;

struct _hvn_auth_t {
    zactor_t *actor;               //  The ZAP handler
    s_certdir_t publishers;        //  The publishers' directory (handler and broker)
    s_certdir_t subscribers;       //  The subscribers' directory (handler and broker)
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

//  Returns nothing; store (NULL: a new empty one, and when out of memory
//  none, so that lookups find nothing) replaces dir's store, which is
//  destroyed: the one moment a load holds the lock lookups take.
static void s_certdir_swap(s_certdir_t *dir, zcertstore_t *store)
{
    if (!store)
        store = zcertstore_new(NULL); //  (zcertstore_empty is draft API in czmq 4.2.1)
    pthread_mutex_lock(&dir->lock);
    zcertstore_t *old = dir->store;
    dir->store = store;
    pthread_mutex_unlock(&dir->lock);
    atomic_fetch_add(&dir->loads, 1);
    zcertstore_destroy(&old);
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

//  Returns a new store holding the certificates of the directory zdir
//  (publishers' only with a valid host, a key repeated only once), with
//  their number in *loaded; NULL when out of memory.
static zcertstore_t *s_certdir_read(s_certdir_t *dir, zdir_t *zdir, size_t *loaded)
{
    zcertstore_t *store = zcertstore_new(NULL); //  In memory: this module reads the directory
    zfile_t **files = store ? zdir_flatten(zdir) : NULL;
    *loaded = 0;
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
        } else if (zcertstore_lookup(store, zcert_public_txt(cert))) {
            zsys_warning("auth: '%s' repeats a key already loaded from '%s', ignored", name,
                         dir->path);
            zcert_destroy(&cert);
        } else {
            zcertstore_insert(store, &cert);
            (*loaded)++;
        }
    }
    zdir_flatten_free(&files);
    return store;
}

//  Returns 1 when dir's store was loaded again (it holds the certificates
//  now in its directory, or nothing when the directory cannot be read),
//  0 when it was left as it was: the directory looked the same as at the
//  last load, or was looked at less than a second ago (force 0), or the
//  other thread is looking at it right now (force 0: what it finds serves
//  this one too). force 0: look unless the last look was less than a
//  second ago; 1: look now (waiting for the other thread's look); 2:
//  reload, changed or not. The look itself (s_fingerprint) reads no
//  certificate; only a change does.
static int s_certdir_refresh(s_certdir_t *dir, int force)
{
    if (force)
        pthread_mutex_lock(&dir->load);
    else if (pthread_mutex_trylock(&dir->load) != 0)
        return 0;
    //  A look lists the directory and stats each file: at most once a
    //  second, so a crowd of handshakes (every host reconnecting after a
    //  broker restart, or one client retrying with an unknown key) costs
    //  one look a second, not one each
    int64_t now = zclock_mono();
    if (!force && now - dir->checked_ms < S_RESCAN_MS) {
        pthread_mutex_unlock(&dir->load);
        return 0;
    }
    dir->checked_ms = now;
    //  Taken before the files are read: a change made while they are read
    //  shows at the next look, and is loaded then
    uint64_t fingerprint = 0;
    int readable = s_fingerprint(dir->path, &fingerprint) == 0;
    int loaded = 1;
    zdir_t *zdir = NULL;
    if (readable && force < 2 && !dir->missing && dir->fingerprint == fingerprint)
        loaded = 0; //  Unchanged: no certificate read
    else if (!readable || !(zdir = zdir_new(dir->path, NULL))) {
        //  Gone or unreadable: nobody is let in until it is back
        if (dir->missing && force < 2)
            loaded = 0; //  Said so already
        else {
            s_certdir_swap(dir, NULL);
            dir->missing = 1;
            dir->fingerprint = 0;
            zsys_warning("auth: %s certificate directory '%s' cannot be read: no %s is let in",
                         dir->role, dir->path, dir->role);
        }
    } else {
        dir->missing = 0;
        size_t count = 0;
        s_certdir_swap(dir, s_certdir_read(dir, zdir, &count));
        dir->fingerprint = fingerprint;
        zdir_destroy(&zdir);
        zsys_info("auth: %zu %s certificate(s) loaded from '%s'", count, dir->role, dir->path);
    }
    pthread_mutex_unlock(&dir->load);
    return loaded;
}

//  Returns 0 with dir set up and loaded, -1 when it cannot be.
static int s_certdir_init(s_certdir_t *dir, const char *path, const char *role, int need_host)
{
    memset(dir, 0, sizeof(*dir));
    pthread_mutex_init(&dir->load, NULL);
    pthread_mutex_init(&dir->lock, NULL);
    dir->ready = 1;
    dir->path = strdup(path);
    dir->role = role;
    dir->need_host = need_host;
    dir->misses = zhashx_new();
    if (!dir->path || !dir->misses)
        return -1;
    s_certdir_refresh(dir, 2);
    dir->seen_loads = atomic_load(&dir->loads);
    return dir->store ? 0 : -1;
}

//  Returns nothing; frees what s_certdir_init made (both threads are done
//  with dir).
static void s_certdir_fini(s_certdir_t *dir)
{
    zhashx_destroy(&dir->misses);
    zcertstore_destroy(&dir->store);
    zstr_free(&dir->path);
    if (dir->ready) {
        pthread_mutex_destroy(&dir->load);
        pthread_mutex_destroy(&dir->lock);
        dir->ready = 0;
    }
}

//  Returns 1 when key is in dir's store, with the host its certificate
//  names copied into host (when not NULL: HVN_HOST_MAX + 1 bytes; "" when
//  it names none), else 0.
static int s_certdir_find(s_certdir_t *dir, const char *key, char *host)
{
    pthread_mutex_lock(&dir->lock);
    zcert_t *cert = dir->store ? zcertstore_lookup(dir->store, key) : NULL;
    if (cert && host) {
        const char *meta = zcert_meta(cert, "host");
        snprintf(host, HVN_HOST_MAX + 1, "%s", meta && strlen(meta) <= HVN_HOST_MAX ? meta : "");
    }
    pthread_mutex_unlock(&dir->lock);
    return cert != NULL;
}

// --------------------------------------------------------------------------
//  The ZAP handler actor

//  Returns nothing; one ZAP request on rep is answered: 200 with the key
//  as User-Id when the key is in the directory of the request's domain,
//  400 otherwise (400 as well for anything but a well-formed CURVE
//  request: the broker's sockets speak nothing else).
static void s_zap_answer(hvn_auth_t *auth, zsock_t *rep)
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
        dir = &auth->publishers;
    else if (domain && (streq(domain, HVN_AUTH_SUBSCRIBERS) || streq(domain, HVN_AUTH_SERVICE)))
        dir = &auth->subscribers;
    if (version && streq(version, "1.0") && mechanism && streq(mechanism, "CURVE") && credential &&
        zframe_size(credential) == 32 && dir) {
        zmq_z85_encode(key, zframe_data(credential), 32);
        s_certdir_refresh(dir, 0); //  Reloaded first when changed
        int known = s_certdir_find(dir, key, NULL);
        //  Not known: maybe added since the last look. libzmq does not
        //  retry a client refused here, so look now rather than refuse a
        //  new host for good; a flood of unknown keys gets such a look ten
        //  times a second at most
        int64_t now = zclock_mono();
        if (!known && now - dir->forced_ms >= S_FORCED_MS) {
            dir->forced_ms = now;
            s_certdir_refresh(dir, 1);
            known = s_certdir_find(dir, key, NULL);
        }
        if (known) {
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
    hvn_auth_t *auth = arg;
    zsock_t *rep = zsock_new(ZMQ_REP);
    if (!rep || zsock_bind(rep, S_ZAP_ENDPOINT) != 0)
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
            s_zap_answer(auth, rep);
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
    //  Each directory is read here, once; the handler shares the stores
    if (!self->hosts || s_certdir_init(&self->publishers, publishers_dir, "publisher", 1) != 0 ||
        s_certdir_init(&self->subscribers, subscribers_dir, "subscriber", 0) != 0) {
        hvn_error_set(error, error_size, "out of memory");
        hvn_auth_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->hosts, s_free_host);
    self->actor = zactor_new(s_zap_actor, self); //  Returns after the actor signals
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

//  Returns 1 when dir was loaded again since the broker's thread last
//  asked, by either thread (see s_certdir_refresh for force), with what
//  that thread cached from its old certificates forgotten: the keys not
//  found, and for the publishers the key-to-host map. Else 0.
static int s_refresh(hvn_auth_t *self, s_certdir_t *dir, int force)
{
    s_certdir_refresh(dir, force);
    uint64_t loads = atomic_load(&dir->loads);
    if (loads == dir->seen_loads)
        return 0;
    dir->seen_loads = loads;
    zhashx_purge(dir->misses);
    if (dir == &self->publishers) {
        zhashx_purge(self->hosts);
        self->last_key[0] = '\0';
        self->last_host = NULL;
    }
    return 1;
}

//  Returns 1 when key is in dir, with the host its certificate names in
//  host (when not NULL), else 0; the broker's thread. A key the handler
//  let in is in the store the handler looked it up in, unless its
//  certificate was removed since. A key not there is looked for again
//  after a look at the directory now, whatever the time since the last
//  (a certificate added while the handler was not asked: a connection
//  that stayed open); a key still unknown after that (its certificate
//  removed while its connection stays open) gets such a look once a
//  second at most, so its messages cost hash lookups, not a directory
//  listing each.
static int s_lookup(hvn_auth_t *self, s_certdir_t *dir, const char *key, char *host)
{
    if (s_certdir_find(dir, key, host))
        return 1;
    int64_t now = zclock_mono();
    int64_t missed = (int64_t)(intptr_t)zhashx_lookup(dir->misses, key);
    if (missed && now - missed < S_RESCAN_MS)
        return 0;
    s_refresh(self, dir, 1);
    if (s_certdir_find(dir, key, host))
        return 1;
    zhashx_update(dir->misses, key, (void *)(intptr_t)(now ? now : 1));
    return 0;
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
        char meta[HVN_HOST_MAX + 1];
        if (!s_lookup(self, &self->publishers, key, meta) || hvn_names_host_check(meta))
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
    return key && *key && s_lookup(self, &self->subscribers, key, NULL);
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
