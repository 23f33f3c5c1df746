/*  fixtures.c — the unit suites' inputs (see fixtures.h). */
#include "fixtures.h"

#include <string.h>

//  Returns nothing; node is full (see fixtures.h).
void fx_node_full(hvn_node_t *node, const char *uuid, const char *host)
{
    hvn_node_init(node);
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].type == HVN_TYPE_INT)
            hvn_node_set_int(node, f, 1000 + f);
    hvn_node_set_str(node, HVN_F_UUID, uuid);
    hvn_node_set_str(node, HVN_F_HOST, host);
    hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, "QEMU");
    hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, "cmp-017.example.org");
    hvn_node_set_str(node, HVN_F_HOST_IP, "192.0.2.17");
}

//  Returns 0 with *frames the notification, or -1.
int fx_encode(hvn_encoder_t *encoder, hvn_event_t event, const hvn_node_t *node, uint64_t seq,
              uint8_t instance, hvn_frames_t *frames)
{
    hvn_envelope_t env = {.host = node->host};
    hvn_header_t header = {.kind = HVN_KIND_NOTIFICATION, .seq = seq};
    memset(header.instance, instance, 16);
    return hvn_encoder_notification(encoder, event, &env, node, &header, frames);
}

// --------------------------------------------------------------------------
//  msgpack

msgpack_sbuffer fx_sbuf;
msgpack_packer fx_pk;

//  Returns nothing; fx_pk packs into an empty fx_sbuf.
void fx_pack_setup(void)
{
    msgpack_sbuffer_init(&fx_sbuf);
    msgpack_packer_init(&fx_pk, &fx_sbuf, msgpack_sbuffer_write);
}

//  Returns nothing; fx_sbuf is freed.
void fx_pack_teardown(void)
{
    msgpack_sbuffer_destroy(&fx_sbuf);
    msgpack_sbuffer_init(&fx_sbuf); //  A second teardown frees nothing twice
}

//  Returns nothing; s packed as a str.
void fx_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

//  Returns nothing; s packed as a str with fx_pk.
void fx_str(const char *s)
{
    fx_pack_str(&fx_pk, s);
}

//  Returns the value of key in map, or NULL.
msgpack_object *fx_map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == len &&
            memcmp(kv->key.via.str.ptr, key, len) == 0)
            return &kv->val;
    }
    return NULL;
}

//  Returns msgpack_unpack_next's answer for frame's bytes.
msgpack_unpack_return fx_unpack_frame(zframe_t *frame, msgpack_unpacked *result, size_t *off)
{
    msgpack_unpacked_init(result);
    return msgpack_unpack_next(result, (const char *)zframe_data(frame), zframe_size(frame), off);
}

//  Returns nothing; the head of an END packed.
void fx_pack_head(msgpack_packer *pk, uint32_t keys, const char *broker_id, uint64_t count)
{
    msgpack_pack_map(pk, keys);
    fx_pack_str(pk, "broker_id");
    fx_pack_str(pk, broker_id);
    fx_pack_str(pk, "count");
    msgpack_pack_uint64(pk, count);
}

//  Returns nothing; an END of the kinds given packed.
void fx_pack_end(msgpack_packer *pk, int id_kind, int count_kind, int pubs_kind)
{
    msgpack_pack_map(pk, pubs_kind == 9 ? 2 : 3);
    fx_pack_str(pk, "broker_id");
    if (id_kind == 0)
        fx_pack_str(pk, "b1");
    else if (id_kind == 1)
        msgpack_pack_int(pk, 5);
    else if (id_kind == 2)
        fx_pack_str(pk, "");
    else if (id_kind == 3) {
        msgpack_pack_str(pk, 2);
        msgpack_pack_str_body(pk, "\xff\xfe", 2);
    } else {
        char long_id[300];
        memset(long_id, 'b', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        fx_pack_str(pk, long_id);
    }
    fx_pack_str(pk, "count");
    if (count_kind == 0)
        msgpack_pack_uint64(pk, 0);
    else if (count_kind == 1)
        msgpack_pack_int(pk, -1);
    else if (count_kind == 2)
        fx_pack_str(pk, "0");
    else
        msgpack_pack_uint64(pk, 5);
    if (pubs_kind == 9)
        return;
    fx_pack_str(pk, "publishers");
    switch (pubs_kind) {
    case 0:
        msgpack_pack_map(pk, 1);
        fx_pack_str(pk, FX_INST1);
        msgpack_pack_uint64(pk, 3);
        break;
    case 1: //  Negative seq
        msgpack_pack_map(pk, 1);
        fx_pack_str(pk, FX_INST1);
        msgpack_pack_int(pk, -3);
        break;
    case 2: //  Not a uuid, right length
        msgpack_pack_map(pk, 1);
        fx_pack_str(pk, "not-a-uuid-not-a-uuid-not-a-uuid-xx");
        msgpack_pack_uint64(pk, 3);
        break;
    case 3: //  An array
        msgpack_pack_array(pk, 0);
        break;
    case 4: //  Seq as text
        msgpack_pack_map(pk, 1);
        fx_pack_str(pk, FX_INST1);
        fx_pack_str(pk, "3");
        break;
    case 5: //  The same instance twice, in two spellings
        msgpack_pack_map(pk, 2);
        fx_pack_str(pk, FX_INST1);
        msgpack_pack_uint64(pk, 3);
        fx_pack_str(pk, "01010101-0101-0101-0101-010101010101");
        msgpack_pack_uint64(pk, 4);
        break;
    case 6: //  Key not a string
        msgpack_pack_map(pk, 1);
        msgpack_pack_int(pk, 1);
        msgpack_pack_uint64(pk, 3);
        break;
    case 7: //  Short uuid
        msgpack_pack_map(pk, 1);
        fx_pack_str(pk, "01010101");
        msgpack_pack_uint64(pk, 3);
        break;
    default: //  None
        msgpack_pack_map(pk, 0);
        break;
    }
}

// --------------------------------------------------------------------------
//  The fake service

//  Returns 0 with svc empty, or -1.
int fx_service_init(fx_service_t *svc, const char *endpoint)
{
    memset(svc, 0, sizeof(*svc));
    snprintf(svc->endpoint, sizeof(svc->endpoint), "%s", endpoint);
    svc->replies = zlist_new();
    return svc->replies ? 0 : -1;
}

//  Returns nothing; the canned replies are gone.
void fx_service_clear(fx_service_t *svc)
{
    zmsg_t *msg;
    while ((msg = zlist_pop(svc->replies)))
        zmsg_destroy(&msg);
}

//  Returns nothing; svc is freed.
void fx_service_fini(fx_service_t *svc)
{
    if (svc->replies)
        fx_service_clear(svc);
    zlist_destroy(&svc->replies);
}

//  Returns nothing; the actor: binds, signals, answers until $TERM.
static void s_service_actor(zsock_t *pipe, void *arg)
{
    fx_service_t *svc = arg;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int rc = router ? zsock_bind(router, "%s", svc->endpoint) : -1;
    zsock_signal(pipe, rc == 0 ? 0 : 1);
    if (rc != 0) {
        zsock_destroy(&router);
        return;
    }
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    zframe_t *peer = NULL; //  The last request's connection
    while (zpoller_wait(poller, -1) == router) {
        zmsg_t *request = zmsg_recv(router);
        zframe_t *id = zmsg_pop(request);
        svc->asked++;
        if (!peer || !zframe_eq(peer, id)) {
            svc->peers++;
            zframe_destroy(&peer);
            peer = zframe_dup(id);
        }
        for (zframe_t *f = zmsg_first(request); f; f = zmsg_next(request)) {
            size_t len = strlen(svc->request);
            snprintf(svc->request + len, sizeof(svc->request) - len, "%s%.*s", len ? "|" : "",
                     (int)zframe_size(f), (const char *)zframe_data(f));
        }
        for (zmsg_t *reply = svc->mute ? NULL : zlist_first(svc->replies); reply;
             reply = zlist_next(svc->replies)) {
            zmsg_t *copy = zmsg_dup(reply);
            zmsg_pushmem(copy, zframe_data(id), zframe_size(id));
            zmsg_send(&copy, router);
        }
        zframe_destroy(&id);
        zmsg_destroy(&request);
    }
    zframe_destroy(&peer);
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

//  Returns the running service, or NULL.
zactor_t *fx_service_run(fx_service_t *svc)
{
    return zactor_new(s_service_actor, svc);
}

//  Returns nothing; an ITEM is queued.
void fx_service_item(fx_service_t *svc, const hvn_frames_t *frames)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, HVN_SERVICE_ITEM);
    zmsg_addmem(msg, frames->topic, frames->topic_size);
    zmsg_addmem(msg, frames->header, HVN_HEADER_SIZE);
    zmsg_addmem(msg, frames->body, frames->body_size);
    zlist_append(svc->replies, msg);
}

//  Returns nothing; a reply is queued.
void fx_service_reply(fx_service_t *svc, const char *word, const void *body, size_t size)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, word);
    zmsg_addmem(msg, body, size);
    zlist_append(svc->replies, msg);
}

//  Returns nothing; an END is queued.
void fx_service_end(fx_service_t *svc, const char *broker_id, uint64_t count, size_t n,
                    const char *const *instances, const uint64_t *seqs)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    fx_pack_head(&pk, 3, broker_id, count);
    fx_pack_str(&pk, "publishers");
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        fx_pack_str(&pk, instances[i]);
        msgpack_pack_uint64(&pk, seqs[i]);
    }
    fx_service_reply(svc, HVN_SERVICE_END, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
}
