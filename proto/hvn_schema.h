/*  hvn_schema.h — the compute-node payload schema, as one table.

    The Nova spec's ComputeNodePayload 1.0 SCHEMA (18 fields) is the table
    hvn_schema_fields[]: name, wire type, nullability, whether a change of the
    field alone triggers compute_node.update, and where the value lives in a
    hvn_node_t. Encoding, decoding, validation, diffing and JSON output all
    walk that table; no other file lists the fields again.

    Adding a field: one enum value, one hvn_node_t member, one table line, and
    a payload version bump (the fingerprint test fails until it is bumped).
*/
#ifndef HVN_SCHEMA_H_INCLUDED
#define HVN_SCHEMA_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

#define HVN_STR_MAX      255 //  Longest string value of any field, bytes
#define HVN_UUID_STR_LEN 36  //  Canonical UUID text, without the NUL
#define HVN_IP_STR_MAX   45  //  Longest IPv4/IPv6 text (INET6_ADDRSTRLEN - 1)

//  Payload names and versions, as they appear in the envelope
#define HVN_PAYLOAD_NAME         "ComputeNodePayload"
#define HVN_DELETE_PAYLOAD_NAME  "ComputeNodeDeletePayload"
#define HVN_PAYLOAD_NAMESPACE    "nova"
#define HVN_PAYLOAD_MAJOR        1
#define HVN_PAYLOAD_MINOR        0
#define HVN_DELETE_PAYLOAD_MAJOR 1
#define HVN_DELETE_PAYLOAD_MINOR 0

//  Wire type of a field
typedef enum {
    HVN_TYPE_INT = 1, //  msgpack int, within int64_t
    HVN_TYPE_STR,     //  msgpack str, at most the field's size - 1 bytes
    HVN_TYPE_UUID,    //  msgpack str, a UUID in canonical text form
    HVN_TYPE_IP       //  msgpack str, IPv4 or IPv6 address text
} hvn_type_t;

//  Fields of ComputeNodePayload, in the seed's order
typedef enum {
    HVN_F_ID = 0,
    HVN_F_UUID,
    HVN_F_HOST,
    HVN_F_VCPUS,
    HVN_F_MEMORY_MB,
    HVN_F_LOCAL_GB,
    HVN_F_VCPUS_USED,
    HVN_F_MEMORY_MB_USED,
    HVN_F_LOCAL_GB_USED,
    HVN_F_HYPERVISOR_TYPE,
    HVN_F_HYPERVISOR_VERSION,
    HVN_F_HYPERVISOR_HOSTNAME,
    HVN_F_FREE_RAM_MB,
    HVN_F_FREE_DISK_GB,
    HVN_F_CURRENT_WORKLOAD,
    HVN_F_RUNNING_VMS,
    HVN_F_DISK_AVAILABLE_LEAST,
    HVN_F_HOST_IP,
    HVN_F_COUNT
} hvn_field_id_t;

//  One compute node. A plain value: copy it, keep it on the stack.
//  A nullable field is nil when its bit (1u << HVN_F_x) is set in `nulls`;
//  its stored value is then ignored. Strings are NUL-terminated.
typedef struct {
    uint32_t nulls;                                //  Bit per field: 1 = nil
    int64_t id;                                    //  Nova's integer id
    char uuid[HVN_UUID_STR_LEN + 1];               //  Node uuid (key)
    char host[HVN_STR_MAX + 1];                    //  Service host, nullable
    int64_t vcpus;                                 //  Usable vCPUs
    int64_t memory_mb;                             //  RAM, MiB
    int64_t local_gb;                              //  Local disk, GiB
    int64_t vcpus_used;                            //  vCPUs given to guests
    int64_t memory_mb_used;                        //  RAM used, MiB
    int64_t local_gb_used;                         //  Disk used, GiB
    char hypervisor_type[HVN_STR_MAX + 1];         //  e.g. "QEMU"
    int64_t hypervisor_version;                    //  e.g. 7002000
    char hypervisor_hostname[HVN_STR_MAX + 1];     //  FQDN, nullable
    int64_t free_ram_mb;                           //  Nullable
    int64_t free_disk_gb;                          //  Nullable
    int64_t current_workload;                      //  Nullable
    int64_t running_vms;                           //  Nullable
    int64_t disk_available_least;                  //  Nullable
    char host_ip[HVN_IP_STR_MAX + 1];              //  Nullable
} hvn_node_t;

//  One line of the schema table
typedef struct {
    const char *name;      //  Key in nova_object.data
    hvn_type_t type;       //  Wire type
    bool nullable;         //  May be nil
    bool triggers_update;  //  A change alone sends compute_node.update
    bool in_delete;        //  Also in ComputeNodeDeletePayload
    size_t offset;         //  Where the value lives in hvn_node_t
    size_t size;           //  Its size there (string fields: buffer size)
} hvn_field_t;

//  The table: hvn_schema_fields[HVN_F_x] describes field x.
extern const hvn_field_t hvn_schema_fields[HVN_F_COUNT];

//  Returns the field id of `name` (not NUL-terminated, `len` bytes), or -1.
int hvn_schema_find(const char *name, size_t len);

//  Returns a 64-bit fingerprint of a payload's fields (names, types,
//  nullability, order). delete_payload selects ComputeNodeDeletePayload.
uint64_t hvn_schema_fingerprint(bool delete_payload);

//  Sets every field to zero/"" and every nullable field to nil.
void hvn_node_init(hvn_node_t *node);

//  Pointers into a node for field `f` (asserts the type matches).
int64_t *hvn_node_int(hvn_node_t *node, hvn_field_id_t f);
char *hvn_node_str(hvn_node_t *node, hvn_field_id_t f);

//  Set a value and clear the field's nil bit. set_str returns -1 when the
//  text does not fit the field, 0 otherwise.
void hvn_node_set_int(hvn_node_t *node, hvn_field_id_t f, int64_t value);
int hvn_node_set_str(hvn_node_t *node, hvn_field_id_t f, const char *value);

//  Make a nullable field nil (asserts it is nullable); is_null tests it.
void hvn_node_set_null(hvn_node_t *node, hvn_field_id_t f);
bool hvn_node_is_null(const hvn_node_t *node, hvn_field_id_t f);

//  Returns true when field f holds the same value (or both nil) in a and b.
bool hvn_node_field_equal(const hvn_node_t *a, const hvn_node_t *b, hvn_field_id_t f);

//  Returns true when a and b differ in at least one update-triggering field.
bool hvn_node_triggers_update(const hvn_node_t *a, const hvn_node_t *b);

//  Returns true when a and b hold the same value in every field.
bool hvn_node_equal(const hvn_node_t *a, const hvn_node_t *b);

//  Returns true when len bytes of text (NUL-terminated at len) are well
//  formed for string field f's type beyond being UTF-8: canonical UUID text
//  for uuid, IPv4 or IPv6 address text for host_ip; true for other fields.
bool hvn_field_text_valid(hvn_field_id_t f, const char *text, size_t len);

//  Checks a node's values: a non-nullable field not nil, uuid and host_ip
//  well formed, strings valid. Returns -1 (the bad field in *bad_field when
//  not NULL) or 0.
int hvn_node_validate(const hvn_node_t *node, hvn_field_id_t *bad_field);

//  Returns true when `len` bytes at s are well-formed UTF-8 without a NUL.
bool hvn_utf8_valid(const char *s, size_t len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
