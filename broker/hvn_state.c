/*  hvn_state.c — the broker's bindings (node -> host, publisher instance
    -> host and seq) in a small msgpack file that survives a restart.

    Written whole each time (tens of bytes per node: a few MB for 100 000
    nodes), to a temporary file that is synced and renamed over the old
    one; read whole at start, checked entirely before anything is added.
*/
#include "hvn_state.h"
#include "hvn_error.h"
#include "hvn_schema.h"
#include "hvn_write_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FORMAT "hvn-broker-state"
#define S_VERSION 1
#define S_HOST_MAX 255 //  Longest host name, bytes

//  Returns a new owner item, or NULL when out of memory.
hvn_owner_t *hvn_owner_new(const uint8_t node[16], const char *host, size_t host_len)
{
    hvn_owner_t *owner = malloc(sizeof(*owner) + host_len + 1);
    if (!owner)
        return NULL;
    memcpy(owner->node, node, 16);
    memcpy(owner->host, host, host_len);
    owner->host[host_len] = '\0';
    return owner;
}

// --------------------------------------------------------------------------
//  Writing

//  Returns nothing; packs the C string s.
static void s_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

//  Returns nothing; packs [uuid bin 16, host str].
static void s_pack_node(msgpack_packer *pk, const uint8_t node[16], const char *host, size_t len)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_bin(pk, 16);
    msgpack_pack_bin_body(pk, node, 16);
    s_pack_str(pk, host, len);
}

//  Returns 0 after packing one cached node (counting it when pk is NULL).
static int s_cached_node(const hvn_cache_item_t *item, void *arg)
{
    void **ctx = arg; //  {packer or NULL, size_t *count}
    const char *at = memchr(item->topic, '@', item->topic_size);
    if (!at)
        return 0; //  The decoder checked every cached topic
    if (ctx[0])
        s_pack_node(ctx[0], item->key, at + 1, item->topic_size - (size_t)(at + 1 - item->topic));
    (*(size_t *)ctx[1])++;
    return 0;
}

//  What s_instance packs from.
typedef struct {
    const hvn_seqmap_t *seqmap; //  For each instance's host
    msgpack_packer *pk;         //  NULL: count only
    size_t count;               //  Instances with a host
} s_instances_t;

//  Returns 0 after packing one bound instance (or counting it).
static int s_instance(const uint8_t instance[16], uint64_t seq, void *arg)
{
    s_instances_t *walk = arg;
    const char *host = hvn_seqmap_host(walk->seqmap, instance);
    if (!host)
        return 0;
    walk->count++;
    if (walk->pk) {
        msgpack_pack_array(walk->pk, 3);
        msgpack_pack_bin(walk->pk, 16);
        msgpack_pack_bin_body(walk->pk, instance, 16);
        s_pack_str(walk->pk, host, strlen(host));
        msgpack_pack_uint64(walk->pk, seq);
    }
    return 0;
}

//  Returns the owners not in the cache, packing them when pk is not NULL.
static size_t s_owners(msgpack_packer *pk, const hvn_idmap_t *owners, const hvn_cache_t *cache)
{
    size_t count = 0;
    for (size_t i = 0; owners && i < hvn_idmap_slots(owners); i++) {
        const hvn_owner_t *owner = hvn_idmap_at(owners, i);
        hvn_cache_item_t item;
        if (!owner || hvn_cache_lookup(cache, owner->node, &item))
            continue;
        if (pk)
            s_pack_node(pk, owner->node, owner->host, strlen(owner->host));
        count++;
    }
    return count;
}

//  Returns 0 with the file replaced, -1 with the reason in error.
int hvn_state_save(const char *path, const hvn_cache_t *cache, const hvn_idmap_t *owners,
                   const hvn_seqmap_t *seqmap, char *error, size_t error_size)
{
    assert(path && cache && seqmap);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    size_t cached = 0;
    void *count_ctx[2] = {NULL, &cached};
    hvn_cache_foreach(cache, "", 0, s_cached_node, count_ctx);
    size_t nodes = cached + s_owners(NULL, owners, cache);
    s_instances_t walk = {seqmap, NULL, 0};
    hvn_seqmap_foreach(seqmap, s_instance, &walk);

    msgpack_pack_map(&pk, 4);
    s_pack_str(&pk, "format", 6);
    s_pack_str(&pk, S_FORMAT, strlen(S_FORMAT));
    s_pack_str(&pk, "version", 7);
    msgpack_pack_uint32(&pk, S_VERSION);
    s_pack_str(&pk, "nodes", 5);
    msgpack_pack_array(&pk, (uint32_t)nodes);
    size_t packed = 0;
    void *pack_ctx[2] = {&pk, &packed};
    hvn_cache_foreach(cache, "", 0, s_cached_node, pack_ctx);
    s_owners(&pk, owners, cache);
    s_pack_str(&pk, "instances", 9);
    msgpack_pack_array(&pk, (uint32_t)walk.count);
    walk.pk = &pk;
    walk.count = 0;
    hvn_seqmap_foreach(seqmap, s_instance, &walk);

    int rc = -1;
    if (!sbuf.data)
        hvn_error_set(error, error_size, "state file '%s': out of memory", path);
    else if (hvni_replace_file(path, sbuf.data, sbuf.size, 0600) != 0)
        hvn_error_set(error, error_size, "cannot write state file '%s': %s", path, strerror(errno));
    else
        rc = 0;
    msgpack_sbuffer_destroy(&sbuf);
    return rc;
}

// --------------------------------------------------------------------------
//  Reading

//  Returns 1 when o is a str equal to text.
static int s_str_is(const msgpack_object *o, const char *text)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(text) &&
           memcmp(o->via.str.ptr, text, o->via.str.size) == 0;
}

//  Returns 1 when o is a str that can be a host: 1..255 bytes of UTF-8,
//  no '@', no control character.
static int s_host_ok(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size < 1 || o->via.str.size > S_HOST_MAX)
        return 0;
    for (uint32_t i = 0; i < o->via.str.size; i++) {
        unsigned char c = (unsigned char)o->via.str.ptr[i];
        if (c < 0x20 || c == 0x7F || c == '@')
            return 0;
    }
    return hvn_utf8_valid(o->via.str.ptr, o->via.str.size);
}

//  Returns 1 when o is an array of `fields` entries starting with a bin of
//  16 bytes and a host (and, for 3, an unsigned seq).
static int s_entry_ok(const msgpack_object *o, uint32_t fields)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != fields)
        return 0;
    const msgpack_object *e = o->via.array.ptr;
    if (e[0].type != MSGPACK_OBJECT_BIN || e[0].via.bin.size != 16 || !s_host_ok(&e[1]))
        return 0;
    return fields == 2 || e[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

//  Returns the value of key in map o, or NULL.
static const msgpack_object *s_get(const msgpack_object *o, const char *key)
{
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (s_str_is(&o->via.map.ptr[i].key, key))
            return &o->via.map.ptr[i].val;
    return NULL;
}

//  Returns NULL when root is a valid state, else what is wrong with it.
static const char *s_check(const msgpack_object *root)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return "not a msgpack map";
    const msgpack_object *format = s_get(root, "format");
    const msgpack_object *version = s_get(root, "version");
    const msgpack_object *nodes = s_get(root, "nodes");
    const msgpack_object *instances = s_get(root, "instances");
    if (!format || !s_str_is(format, S_FORMAT))
        return "not an hvn-broker state file";
    if (!version || version->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        version->via.u64 != S_VERSION)
        return "unknown version";
    if (!nodes || nodes->type != MSGPACK_OBJECT_ARRAY || !instances ||
        instances->type != MSGPACK_OBJECT_ARRAY)
        return "no nodes or instances";
    for (uint32_t i = 0; i < nodes->via.array.size; i++)
        if (!s_entry_ok(&nodes->via.array.ptr[i], 2))
            return "a malformed node";
    for (uint32_t i = 0; i < instances->via.array.size; i++)
        if (!s_entry_ok(&instances->via.array.ptr[i], 3))
            return "a malformed instance";
    return NULL;
}

//  Returns the bytes of path (heap; *size set), NULL with errno set (ENOENT:
//  there is no file; EFBIG: larger than HVN_STATE_FILE_MAX).
static char *s_read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *data = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > HVN_STATE_FILE_MAX)
        errno = EFBIG;
    else if (fstat(fd, &st) == 0 && (data = malloc((size_t)st.st_size + 1)) != NULL) {
        size_t done = 0;
        while (done < (size_t)st.st_size) {
            ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        *size = done;
    }
    int err = errno;
    close(fd);
    errno = err;
    return data;
}

//  Returns the bindings read, 0 without a file, -1 with the reason in error.
long hvn_state_load(const char *path, hvn_idmap_t *owners, hvn_seqmap_t *seqmap, int64_t now_ms,
                    uint64_t *clock, char *error, size_t error_size)
{
    assert(path && owners && seqmap && clock);
    size_t size = 0;
    char *data = s_read_file(path, &size);
    if (!data) {
        if (errno == ENOENT)
            return 0;
        hvn_error_set(error, error_size, "cannot read state file '%s': %s", path, strerror(errno));
        return -1;
    }
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    size_t off = 0;
    const char *wrong = NULL;
    if (msgpack_unpack_next(&result, data, size, &off) != MSGPACK_UNPACK_SUCCESS || off != size)
        wrong = "not one msgpack object";
    else
        wrong = s_check(&result.data);
    long count = -1;
    if (wrong)
        hvn_error_set(error, error_size, "state file '%s': %s", path, wrong);
    else {
        count = 0;
        const msgpack_object *nodes = s_get(&result.data, "nodes");
        const msgpack_object *instances = s_get(&result.data, "instances");
        for (uint32_t i = 0; i < nodes->via.array.size; i++) {
            const msgpack_object *e = nodes->via.array.ptr[i].via.array.ptr;
            const uint8_t *node = (const uint8_t *)e[0].via.bin.ptr;
            if (hvn_idmap_lookup(owners, node))
                continue; //  Named twice: the first one holds
            hvn_owner_t *owner = hvn_owner_new(node, e[1].via.str.ptr, e[1].via.str.size);
            if (!owner || hvn_idmap_insert(owners, owner) != 0) {
                free(owner);
                break;
            }
            count++;
        }
        for (uint32_t i = 0; i < instances->via.array.size; i++) {
            const msgpack_object *e = instances->via.array.ptr[i].via.array.ptr;
            char host[S_HOST_MAX + 1];
            memcpy(host, e[1].via.str.ptr, e[1].via.str.size);
            host[e[1].via.str.size] = '\0';
            const uint8_t *instance = (const uint8_t *)e[0].via.bin.ptr;
            if (hvn_seqmap_bind(seqmap, instance, host, now_ms, ++*clock) == 1 &&
                hvn_seqmap_update(seqmap, instance, e[2].via.u64, now_ms, *clock) == 0)
                count++;
        }
    }
    msgpack_unpacked_destroy(&result);
    free(data);
    return count;
}
