/*  hvn_pubstate.c — the publisher's state file: written atomically, read
    back as untrusted bytes.

    Reading is two passes over the tokens of the file: the first checks the
    envelope and decodes every node (a file is good whole or not at all),
    the second hands the nodes to the caller. Nothing is passed on from a
    file that turns out bad half way.
*/
#include "hvn_pubstate.h"
#include "hvn_mpread.h"
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

#define S_FORMAT "hvn-publisher-state"
#define S_VERSION 1

typedef hvni_mp_tok_t s_tok_t;

// --------------------------------------------------------------------------
//  Writing

//  Returns the packer's status (0 = ok) after packing a C string as a str.
static int s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    int rc = msgpack_pack_str(pk, len);
    return rc | msgpack_pack_str_body(pk, s, len);
}

//  Returns 0 with the file's bytes in sbuf, -1 when out of memory.
static int s_pack(msgpack_sbuffer *sbuf, const char *host, const hvn_pubstate_node_t *nodes,
                  size_t count)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 4);
    rc |= s_pack_str(&pk, "format");
    rc |= s_pack_str(&pk, S_FORMAT);
    rc |= s_pack_str(&pk, "version");
    rc |= msgpack_pack_int(&pk, S_VERSION);
    rc |= s_pack_str(&pk, "host");
    rc |= s_pack_str(&pk, host);
    rc |= s_pack_str(&pk, "nodes");
    rc |= msgpack_pack_array(&pk, count);
    for (size_t i = 0; i < count; i++) {
        const hvn_pubstate_node_t *node = &nodes[i];
        rc |= msgpack_pack_array(&pk, 3);
        rc |= msgpack_pack_str(&pk, node->topic_size);
        rc |= msgpack_pack_str_body(&pk, node->topic, node->topic_size);
        rc |= msgpack_pack_bin(&pk, HVN_HEADER_SIZE);
        rc |= msgpack_pack_bin_body(&pk, node->header, HVN_HEADER_SIZE);
        rc |= msgpack_pack_bin(&pk, node->body_size);
        rc |= msgpack_pack_bin_body(&pk, node->body, node->body_size);
    }
    return rc == 0 ? 0 : -1;
}

//  Returns 0 after replacing the state file, -1 with errno set.
int hvn_pubstate_write(const char *path, const char *host, const hvn_pubstate_node_t *nodes,
                       size_t count)
{
    assert(path && host && (nodes || count == 0));
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    int rc = s_pack(&sbuf, host, nodes, count);
    if (rc != 0)
        errno = ENOMEM;
    else
        rc = hvni_replace_file(path, sbuf.data ? sbuf.data : "", sbuf.size, 0644);
    int saved = errno;
    msgpack_sbuffer_destroy(&sbuf);
    errno = saved;
    return rc;
}

// --------------------------------------------------------------------------
//  Reading

//  Returns a heap buffer with the whole file at path and its size in
//  *size, or NULL with errno set (EFBIG when over HVN_PUBSTATE_MAX).
static char *s_read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rbe");
    if (!file)
        return NULL;
    char *data = NULL;
    struct stat st;
    int saved = 0;
    if (fstat(fileno(file), &st) != 0)
        saved = errno;
    else if (st.st_size > HVN_PUBSTATE_MAX)
        saved = EFBIG;
    else if (!(data = malloc(st.st_size ? (size_t)st.st_size : 1)))
        saved = ENOMEM;
    else {
        *size = fread(data, 1, (size_t)st.st_size, file);
        if (*size != (size_t)st.st_size) {
            saved = ferror(file) ? EIO : EAGAIN;
            free(data);
            data = NULL;
        }
    }
    fclose(file);
    errno = saved;
    return data;
}

//  Returns the value of key in a map's tokens, or NULL.
static const s_tok_t *s_map_get(const s_tok_t *map, const char *key)
{
    size_t len = strlen(key);
    const s_tok_t *k = map + 1;
    for (uint32_t i = 0; i < map->size; i++, k = hvni_mp_next(hvni_mp_next(k)))
        if (k->type == HVNI_MP_STR && k->size == len && memcmp(k->ptr, key, len) == 0)
            return k + 1;
    return NULL;
}

//  Returns true when obj is the str text.
static bool s_is_str(const s_tok_t *obj, const char *text)
{
    return obj && obj->type == HVNI_MP_STR && obj->size == strlen(text) &&
           memcmp(obj->ptr, text, obj->size) == 0;
}

//  Returns NULL with the root's node list in *nodes, or what is wrong with
//  the file's envelope.
static const char *s_envelope(const s_tok_t *root, const char *host, const s_tok_t **nodes)
{
    if (root->type != HVNI_MP_MAP)
        return "not a map";
    const s_tok_t *version = s_map_get(root, "version");
    *nodes = s_map_get(root, "nodes");
    if (!s_is_str(s_map_get(root, "format"), S_FORMAT))
        return "not a publisher state file";
    if (!version || version->type != HVNI_MP_POSITIVE_INTEGER || version->u64 != S_VERSION)
        return "unknown version";
    if (!s_is_str(s_map_get(root, "host"), host))
        return "written for another host";
    if (!*nodes || (*nodes)->type != HVNI_MP_ARRAY)
        return "no node list";
    return NULL;
}

//  Returns NULL when one stored node (an array of its three frames) is a
//  valid create/update of host that was sent as a notification, with *node
//  its frames and msg their decoding; else what is wrong.
static const char *s_node(const s_tok_t *obj, const char *host, hvn_decoder_t *decoder,
                          hvn_msg_t *msg, hvn_pubstate_node_t *node)
{
    if (obj->type != HVNI_MP_ARRAY || obj->size != 3)
        return "a node is not an array of three frames";
    const s_tok_t *topic = obj + 1;
    const s_tok_t *header = hvni_mp_next(topic);
    const s_tok_t *body = hvni_mp_next(header);
    if (topic->type != HVNI_MP_STR || header->type != HVNI_MP_BIN || body->type != HVNI_MP_BIN)
        return "a node's frames have the wrong types";
    hvn_reason_t reason = hvn_decoder_decode(decoder, topic->ptr, topic->size, header->ptr,
                                             header->size, body->ptr, body->size, msg);
    if (reason != HVN_OK)
        return hvn_reason_str(reason);
    if (msg->header.kind != HVN_KIND_NOTIFICATION ||
        (msg->event != HVN_EVENT_CREATE && msg->event != HVN_EVENT_UPDATE))
        return "a node's last notification is not a create or update";
    if (strcmp(msg->host, host) != 0)
        return "a node was sent for another host";
    *node = (hvn_pubstate_node_t){.topic = topic->ptr,
                                  .topic_size = topic->size,
                                  .header = (const uint8_t *)header->ptr,
                                  .body = (const uint8_t *)body->ptr,
                                  .body_size = body->size};
    return NULL;
}

//  Orders node uuids (16 raw bytes each).
static int s_uuid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

//  Returns NULL after passing every node of the list to fn, in order, or
//  what is wrong with one (or that two are the same node), fn then called
//  for none: every node is checked before the first is passed on.
static const char *s_nodes(const s_tok_t *nodes, const char *host, hvn_pubstate_fn *fn, void *arg)
{
    hvn_decoder_t *decoder = hvn_decoder_new();
    hvn_msg_t *msg = malloc(sizeof(hvn_msg_t));
    uint8_t(*uuids)[16] = malloc((nodes->size ? nodes->size : 1) * (size_t)16);
    const char *error = decoder && msg && uuids ? NULL : "out of memory";
    hvn_pubstate_node_t node;
    const s_tok_t *obj = nodes + 1;
    for (uint32_t i = 0; i < nodes->size && !error; i++, obj = hvni_mp_next(obj))
        if (!(error = s_node(obj, host, decoder, msg, &node)))
            memcpy(uuids[i], msg->node_uuid, 16);
    if (!error && nodes->size > 1) {
        qsort(uuids, nodes->size, 16, s_uuid_cmp);
        for (uint32_t i = 1; i < nodes->size && !error; i++)
            if (memcmp(uuids[i - 1], uuids[i], 16) == 0)
                error = "a node is listed twice";
    }
    obj = nodes + 1;
    for (uint32_t i = 0; i < nodes->size && !error; i++, obj = hvni_mp_next(obj))
        if (s_node(obj, host, decoder, msg, &node) == NULL) //  As it was a moment ago
            fn(&node, msg, arg);
    free(uuids);
    free(msg);
    hvn_decoder_destroy(&decoder);
    return error;
}

//  Returns what the read found; fn got every node only with OK.
hvn_pubstate_result_t hvn_pubstate_read(const char *path, const char *host, hvn_pubstate_fn *fn,
                                        void *arg, const char **why)
{
    assert(path && host && fn && why);
    *why = "";
    size_t size = 0;
    char *data = s_read_file(path, &size);
    if (!data) {
        *why = strerror(errno);
        return errno == ENOENT ? HVN_PUBSTATE_MISSING : HVN_PUBSTATE_UNREADABLE;
    }
    hvni_mp_t tokens = {NULL, 0, 0};
    const s_tok_t *root = hvni_mp_read(&tokens, data, size);
    const s_tok_t *nodes = NULL;
    const char *error = NULL;
    if (!root)
        error = "not one whole msgpack object: not msgpack, cut short or followed by more bytes";
    else
        error = s_envelope(root, host, &nodes);
    if (!error)
        error = s_nodes(nodes, host, fn, arg);
    hvni_mp_release(&tokens);
    free(data);
    *why = error ? error : "";
    return error ? HVN_PUBSTATE_CORRUPT : HVN_PUBSTATE_OK;
}
