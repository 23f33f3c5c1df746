/*  hvn_bridge_state.c — the bridge's per-instance progress (see
    hvn_bridge_state.h).

    The one idea: `done` is a floor under which nothing is owed to
    RabbitMQ. A commit may only raise it, to what was queued, minus what
    still waits for a confirm; so a file on disk never claims a
    notification that RabbitMQ has not taken.
*/
#include "hvn_bridge_state.h"
#include "hvn_write_int.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define S_FORMAT "hvn-bridge-state"
#define S_VERSION 1
#define S_FILE_MAX (64 * 1024 * 1024) //  A state file larger than this is refused

//  One publisher instance
typedef struct {
    uint8_t instance[16]; //  Its id, the table's key
    uint64_t done;        //  Everything up to this seq is dealt with (kept in the file)
    uint64_t marked;      //  Highest seq queued by this run (or done, when higher)
    uint64_t candidate;   //  What done becomes at the commit under way
    int64_t heard_s;      //  Wall-clock seconds when last heard (kept in the file)
} s_entry_t;

struct _hvn_bridge_state_t {
    zhashx_t *entries; //  16-byte instance -> s_entry_t (owned)
};

// --------------------------------------------------------------------------
//  The table: binary 16-byte keys

//  Returns a hash of a 16-byte key (random UUIDs: their bytes mixed).
static size_t s_key_hash(const void *key)
{
    const uint8_t *k = key;
    size_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < 16; i++)
        h = (h ^ k[i]) * 1099511628211ULL;
    return h;
}

//  Returns <0, 0 or >0 as memcmp of two 16-byte keys.
static int s_key_compare(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

//  Returns a heap copy of a 16-byte key, or NULL.
static void *s_key_dup(const void *key)
{
    void *copy = malloc(16);
    if (copy)
        memcpy(copy, key, 16);
    return copy;
}

//  Returns nothing; frees a key or an entry.
static void s_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

//  Returns the entry of instance, made (heard now) when create is true and
//  it is absent; NULL when absent or out of memory (logged).
static s_entry_t *s_entry(hvn_bridge_state_t *self, const uint8_t instance[16], bool create)
{
    s_entry_t *entry = zhashx_lookup(self->entries, instance);
    if (entry || !create)
        return entry;
    entry = calloc(1, sizeof(*entry));
    if (!entry || zhashx_insert(self->entries, instance, entry) != 0) {
        zsys_error("bridge: state: out of memory");
        free(entry);
        return NULL;
    }
    memcpy(entry->instance, instance, 16);
    entry->heard_s = (int64_t)time(NULL);
    return entry;
}

hvn_bridge_state_t *hvn_bridge_state_new(void)
{
    hvn_bridge_state_t *self = calloc(1, sizeof(*self));
    if (!self || !(self->entries = zhashx_new())) {
        free(self);
        return NULL;
    }
    zhashx_set_key_hasher(self->entries, s_key_hash);
    zhashx_set_key_comparator(self->entries, s_key_compare);
    zhashx_set_key_duplicator(self->entries, s_key_dup);
    zhashx_set_key_destructor(self->entries, s_free);
    zhashx_set_destructor(self->entries, s_free);
    return self;
}

void hvn_bridge_state_destroy(hvn_bridge_state_t **self_p)
{
    assert(self_p);
    hvn_bridge_state_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->entries);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Progress

void hvn_bridge_state_mark(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq)
{
    assert(self && instance);
    s_entry_t *entry = s_entry(self, instance, true);
    if (!entry)
        return;
    if (seq > entry->marked)
        entry->marked = seq;
    entry->heard_s = (int64_t)time(NULL);
}

void hvn_bridge_state_touch(hvn_bridge_state_t *self, const uint8_t instance[16])
{
    assert(self && instance);
    s_entry_t *entry = s_entry(self, instance, true);
    if (entry)
        entry->heard_s = (int64_t)time(NULL);
}

void hvn_bridge_state_heard(hvn_bridge_state_t *self, const uint8_t instance[16])
{
    assert(self && instance);
    s_entry_t *entry = s_entry(self, instance, false);
    if (entry)
        entry->heard_s = (int64_t)time(NULL);
}

bool hvn_bridge_state_covers(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq)
{
    assert(self && instance);
    const s_entry_t *entry = s_entry(self, instance, false);
    return entry && (seq <= entry->done || seq <= entry->marked);
}

bool hvn_bridge_state_done(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t *done)
{
    assert(self && instance && done);
    const s_entry_t *entry = s_entry(self, instance, false);
    *done = entry ? entry->done : 0;
    return entry != NULL;
}

void hvn_bridge_state_begin(hvn_bridge_state_t *self)
{
    assert(self);
    for (s_entry_t *entry = zhashx_first(self->entries); entry; entry = zhashx_next(self->entries))
        entry->candidate = entry->marked;
}

void hvn_bridge_state_hold(hvn_bridge_state_t *self, const uint8_t instance[16], uint64_t seq)
{
    assert(self && instance);
    s_entry_t *entry = seq ? s_entry(self, instance, false) : NULL;
    if (entry && seq - 1 < entry->candidate)
        entry->candidate = seq - 1;
}

size_t hvn_bridge_state_commit(hvn_bridge_state_t *self)
{
    assert(self);
    size_t moved = 0;
    for (s_entry_t *entry = zhashx_first(self->entries); entry; entry = zhashx_next(self->entries))
        if (entry->candidate > entry->done) {
            entry->done = entry->candidate;
            moved++;
        }
    return moved;
}

size_t hvn_bridge_state_foreach(hvn_bridge_state_t *self, hvn_bridge_state_fn *fn, void *arg)
{
    assert(self && fn);
    //  Gathered first: fn may add instances, which zhashx iteration does
    //  not survive (the entries themselves never move)
    size_t count = zhashx_size(self->entries), n = 0;
    s_entry_t **all = calloc(count ? count : 1, sizeof(*all));
    if (!all) {
        zsys_error("bridge: state: out of memory");
        return 0;
    }
    for (s_entry_t *entry = zhashx_first(self->entries); entry && n < count;
         entry = zhashx_next(self->entries))
        all[n++] = entry;
    for (size_t i = 0; i < n; i++)
        fn(all[i]->instance, all[i]->done, arg);
    free(all);
    return n;
}

size_t hvn_bridge_state_size(hvn_bridge_state_t *self)
{
    assert(self);
    return zhashx_size(self->entries);
}

// --------------------------------------------------------------------------
//  The file

//  Returns 0 after reading one instance's entry into the state, -1 with
//  the reason in err.
static int s_load_entry(hvn_bridge_state_t *self, const char *key, json_t *value, char *err,
                        size_t err_size)
{
    uuid_t instance;
    json_t *done = json_object_get(value, "done");
    json_t *heard = json_object_get(value, "heard");
    if (strlen(key) != 36 || uuid_parse(key, instance) != 0) {
        snprintf(err, err_size, "'%.40s' is not a publisher instance id", key);
        return -1;
    }
    if (!json_is_object(value) || !json_is_integer(done) || json_integer_value(done) < 0 ||
        !json_is_integer(heard) || json_integer_value(heard) < 0) {
        snprintf(err, err_size, "instance %s: expected {\"done\": seq, \"heard\": time}", key);
        return -1;
    }
    s_entry_t *entry = s_entry(self, instance, true);
    if (!entry) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    entry->done = entry->marked = (uint64_t)json_integer_value(done);
    entry->heard_s = (int64_t)json_integer_value(heard);
    return 0;
}

//  Returns 0 after reading a parsed file into the state, -1 with the
//  reason in err.
static int s_load_json(hvn_bridge_state_t *self, json_t *root, char *err, size_t err_size)
{
    json_t *format = json_object_get(root, "format");
    json_t *version = json_object_get(root, "version");
    json_t *instances = json_object_get(root, "instances");
    if (!json_is_object(root) || !json_is_string(format) ||
        strcmp(json_string_value(format), S_FORMAT) != 0) {
        snprintf(err, err_size, "not an %s file", S_FORMAT);
        return -1;
    }
    if (!json_is_integer(version) || json_integer_value(version) != S_VERSION) {
        snprintf(err, err_size, "version %lld is not known (this is version %d)",
                 json_is_integer(version) ? (long long)json_integer_value(version) : -1LL,
                 S_VERSION);
        return -1;
    }
    if (!json_is_object(instances)) {
        snprintf(err, err_size, "\"instances\" is not an object");
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(instances, key, value)
    {
        if (s_load_entry(self, key, value, err, err_size) != 0)
            return -1;
    }
    return 0;
}

int hvn_bridge_state_load(hvn_bridge_state_t *self, const char *path, char *err, size_t err_size)
{
    assert(self && path && err);
    FILE *file = fopen(path, "r");
    if (!file) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && st.st_size > S_FILE_MAX) {
        fclose(file);
        snprintf(err, err_size, "%s: larger than %d bytes", path, S_FILE_MAX);
        return -1;
    }
    json_error_t error;
    json_t *root = json_loadf(file, JSON_REJECT_DUPLICATES, &error);
    fclose(file);
    int rc = 1;
    if (!root) {
        snprintf(err, err_size, "%s: line %d: %s", path, error.line, error.text);
        rc = -1;
    } else {
        char reason[256] = "";
        if (s_load_json(self, root, reason, sizeof(reason)) != 0) {
            snprintf(err, err_size, "%s: %s", path, reason);
            rc = -1;
        }
    }
    json_decref(root);
    if (rc < 0)
        zhashx_purge(self->entries);
    return rc;
}

//  Returns the file's JSON text (a heap string), leaving out and
//  forgetting the instances silent for too long; NULL when out of memory.
static char *s_dump(hvn_bridge_state_t *self)
{
    int64_t now = (int64_t)time(NULL);
    json_t *root = json_pack("{s:s, s:i}", "format", S_FORMAT, "version", S_VERSION);
    json_t *instances = json_object();
    zlist_t *forget = zlist_new();
    bool ok = root && instances && forget && json_object_set(root, "instances", instances) == 0;
    for (s_entry_t *entry = zhashx_first(self->entries); ok && entry;
         entry = zhashx_next(self->entries)) {
        if (now - entry->heard_s > HVN_BRIDGE_STATE_FORGET_S) {
            ok = zlist_append(forget, entry->instance) == 0;
            continue;
        }
        char key[37];
        uuid_unparse_lower(entry->instance, key);
        json_t *value = json_pack("{s:I, s:I}", "done", (json_int_t)entry->done, "heard",
                                  (json_int_t)entry->heard_s);
        ok = value && json_object_set_new(instances, key, value) == 0;
    }
    char *text = ok ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    //  The forgotten go after the walk: deleting moves zhashx's cursor
    for (uint8_t *instance = forget ? zlist_first(forget) : NULL; ok && instance;
         instance = zlist_next(forget)) {
        uint8_t key[16];
        memcpy(key, instance, 16);
        zhashx_delete(self->entries, key);
    }
    zlist_destroy(&forget);
    json_decref(instances);
    json_decref(root);
    return text;
}

int hvn_bridge_state_probe(const char *path)
{
    assert(path);
    char *tmp = zsys_sprintf("%s.tmp", path);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int saved = errno;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    zstr_free(&tmp);
    errno = saved;
    return fd >= 0 ? 0 : -1;
}

int hvn_bridge_state_save(hvn_bridge_state_t *self, const char *path)
{
    assert(self && path);
    char *text = s_dump(self);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    int rc = hvni_replace_file(path, text, strlen(text), 0644);
    int saved = errno;
    free(text);
    errno = saved;
    return rc;
}
