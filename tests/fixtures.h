/*  fixtures.h — what the unit suites (and the fuzz corpus generator)
    build their inputs from: a compute node with every field set, a msgpack
    packer for bodies written by hand, and a fake broker service. Without
    Criterion: a failure is a return value, for the suite to assert.
*/
#ifndef HVN_FIXTURES_H_INCLUDED
#define HVN_FIXTURES_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>

#include "hvn_proto.h"

//  Returns nothing; node has every field set (nothing nil): the integers
//  1000 + their field's index, uuid, host, QEMU on cmp-017.example.org
//  at 192.0.2.17.
void fx_node_full(hvn_node_t *node, const char *uuid, const char *host);

//  Encodes a notification of node (its host in the envelope) with seq
//  from the instance whose 16 bytes are all `instance`. Returns 0 with
//  *frames set (owned by encoder, valid until its next use), or -1.
int fx_encode(hvn_encoder_t *encoder, hvn_event_t event, const hvn_node_t *node, uint64_t seq,
              uint8_t instance, hvn_frames_t *frames);

// --------------------------------------------------------------------------
//  A msgpack packer into a buffer, for the bodies a peer would send

extern msgpack_sbuffer fx_sbuf; //  What was packed
extern msgpack_packer fx_pk;    //  Packs into fx_sbuf

//  Returns nothing; fx_sbuf is empty and fx_pk packs into it (a suite's
//  .init).
void fx_pack_setup(void);

//  Returns nothing; frees fx_sbuf (a suite's .fini); safe to call twice.
void fx_pack_teardown(void);

//  Returns nothing; packs s as a msgpack str with pk.
void fx_pack_str(msgpack_packer *pk, const char *s);

//  Returns nothing; packs s as a msgpack str with fx_pk.
void fx_str(const char *s);

//  Returns the value of key (a str) in the msgpack map object map, or NULL
//  when map is no map or has no such key.
msgpack_object *fx_map_get(const msgpack_object *map, const char *key);

//  Returns what msgpack_unpack_next returns for the bytes of frame (off as
//  there: where the object ended, or NULL), result initialised here and
//  holding the object; its strs point into frame, which must outlive it.
msgpack_unpack_return fx_unpack_frame(zframe_t *frame, msgpack_unpacked *result, size_t *off);

//  Returns nothing; packs with pk the head of a map of `keys` entries
//  whose first two are "broker_id" (a str) and "count" (an unsigned int):
//  the first half of an END.
void fx_pack_head(msgpack_packer *pk, uint32_t keys, const char *broker_id, uint64_t count);

#define FX_INST1 "01010101-0101-0101-0101-010101010101" //  A publisher instance

//  Returns nothing; packs a snapshot's END with pk, each part good (kind 0)
//  or bad: id_kind 1 an int, 2 empty, 3 not UTF-8, 4 too long; count_kind
//  1 negative, 2 text, 3 five (not the items sent); pubs_kind (0: FX_INST1
//  at seq 3) 1 a negative seq, 2 a key not a UUID, 3 an array, 4 a seq as
//  text, 5 an instance twice, 6 a key not a string, 7 a short UUID, 8 an
//  empty map, 9 no publishers at all.
void fx_pack_end(msgpack_packer *pk, int id_kind, int count_kind, int pubs_kind);

// --------------------------------------------------------------------------
//  A fake broker service: a ROUTER in an actor that answers every request
//  with the same canned replies, in order, and records what was asked

typedef struct {
    char endpoint[64];  //  Where its ROUTER binds
    zlist_t *replies;   //  zmsg_t sent back to each request, in order
    volatile int mute;  //  Nonzero: requests get no answer
    volatile int asked; //  Requests received
    volatile int peers; //  Connections they came on (a new one each time the peer changes)
    char request[300];  //  The requests' frames, joined with '|'
} fx_service_t;

//  Returns 0 with svc empty, binding at endpoint once run, or -1 when out
//  of memory.
int fx_service_init(fx_service_t *svc, const char *endpoint);

//  Returns nothing; frees the canned replies (stop the actor first).
void fx_service_fini(fx_service_t *svc);

//  Returns the running service (zactor_destroy stops it), or NULL when out
//  of memory. It answers nothing when its endpoint could not be bound.
zactor_t *fx_service_run(fx_service_t *svc);

//  Returns nothing; the canned replies are gone.
void fx_service_clear(fx_service_t *svc);

//  Returns nothing; queues ["ITEM", topic, header, body] of frames.
void fx_service_item(fx_service_t *svc, const hvn_frames_t *frames);

//  Returns nothing; queues [word, body] (a raw body frame of size bytes).
void fx_service_reply(fx_service_t *svc, const char *word, const void *body, size_t size);

//  Returns nothing; queues a well-formed snapshot END: broker_id, count,
//  and n publishers' instances (UUID text) with their seqs.
void fx_service_end(fx_service_t *svc, const char *broker_id, uint64_t count, size_t n,
                    const char *const *instances, const uint64_t *seqs);

#endif
