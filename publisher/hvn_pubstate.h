/*  hvn_pubstate.h — the publisher's state file: what it last sent for every
    live node, kept across restarts (PROTOCOL.md section 3: a node gets one
    create, ever, when the publisher keeps a state directory).

    <state_dir>/publisher-<host>.state holds the frames last sent for every
    live node, oldest first, as msgpack:
        {"format": "hvn-publisher-state", "version": 1, "host": str,
         "nodes": [[topic str, header bin, body bin], ...]}
    The frames keep the instance id and seq they were sent with: a resync
    after a restart re-sends them as they were, and a new instance never
    claims an old instance's seqs.

    Written whole to a temporary file, synced and renamed over the old one,
    so a crash leaves the old file or the new one, never half of either.
    Read back through the reader of untrusted msgpack and the wire decoder:
    a file that is not exactly what a publisher of this host writes (cut
    short, another host's, a body that does not decode, a node twice) is
    refused whole, and the publisher starts fresh. Internal to the
    publisher: not in libhvn's public headers, not exported.
*/
#ifndef HVN_PUBSTATE_H_INCLUDED
#define HVN_PUBSTATE_H_INCLUDED

#include "hvn_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_PUBSTATE_MAX (1024L * 1024 * 1024) //  Largest state file read, bytes

//  One node's last notification as the file keeps it: its three frames
typedef struct {
    const char *topic;     //  Frame 0, topic_size bytes (not NUL-terminated)
    size_t topic_size;     //  Its bytes
    const uint8_t *header; //  Frame 1, HVN_HEADER_SIZE bytes
    const uint8_t *body;   //  Frame 2
    size_t body_size;      //  Its bytes
} hvn_pubstate_node_t;

//  What a read found
typedef enum {
    HVN_PUBSTATE_OK,         //  Read whole; every node was passed on
    HVN_PUBSTATE_MISSING,    //  No file: a first start
    HVN_PUBSTATE_UNREADABLE, //  The file could not be read (errno text in *why)
    HVN_PUBSTATE_CORRUPT     //  Read, but not a good state file of this host (*why says how)
} hvn_pubstate_result_t;

//  Called by hvn_pubstate_read for each node of a good file, in file order
//  (oldest first): its frames (valid during the call) and their decoding, a
//  create or update of the host sent as a notification.
typedef void(hvn_pubstate_fn)(const hvn_pubstate_node_t *node, const hvn_msg_t *msg, void *arg);

//  Writes the count nodes, in order, as the state file of host at path:
//  the bytes go to "<path>.tmp", are synced, renamed over path, and
//  path's directory is synced so the rename lasts. Returns 0, or -1 with
//  errno set (the old file, if any, then left as it was).
int hvn_pubstate_write(const char *path, const char *host, const hvn_pubstate_node_t *nodes,
                       size_t count);

//  Reads the state file of host at path. Returns HVN_PUBSTATE_OK after
//  passing every node to fn; any other result calls fn for none of them,
//  with *why a one-line reason (static, or valid until the next call from
//  this thread) for UNREADABLE and CORRUPT.
hvn_pubstate_result_t hvn_pubstate_read(const char *path, const char *host, hvn_pubstate_fn *fn,
                                        void *arg, const char **why);

#ifdef __cplusplus
}
#endif
#endif
