/*  hvn_schema.c — the compute-node payload schema, as one table.

    hvn_schema_fields[] is the one place the 18 fields of ComputeNodePayload
    are listed. Everything else here (init, accessors, equality, the update
    trigger, validation, the fingerprint) walks that table, so a new field is
    one line here plus a payload version bump.
*/
#include "hvn_schema.h"
#include "hvn_ids.h"

#include <arpa/inet.h>
#include <assert.h>
#include <string.h>

_Static_assert(HVN_F_COUNT <= 32, "hvn_node_t.nulls has one bit per field");

//  Where member m lives in hvn_node_t, and its size there
#define S_AT(m) offsetof(hvn_node_t, m), sizeof(((hvn_node_t *)0)->m)

// --------------------------------------------------------------------------
//  The table. Columns: name, type, nullable, triggers_update, in_delete,
//  offset, size.

const hvn_field_t hvn_schema_fields[HVN_F_COUNT] = {
    [HVN_F_ID] = {"id", HVN_TYPE_INT, false, false, true, S_AT(id)},
    [HVN_F_UUID] = {"uuid", HVN_TYPE_UUID, false, false, true, S_AT(uuid)},
    [HVN_F_HOST] = {"host", HVN_TYPE_STR, true, false, false, S_AT(host)},
    [HVN_F_VCPUS] = {"vcpus", HVN_TYPE_INT, false, true, false, S_AT(vcpus)},
    [HVN_F_MEMORY_MB] = {"memory_mb", HVN_TYPE_INT, false, true, false, S_AT(memory_mb)},
    [HVN_F_LOCAL_GB] = {"local_gb", HVN_TYPE_INT, false, true, false, S_AT(local_gb)},
    [HVN_F_VCPUS_USED] = {"vcpus_used", HVN_TYPE_INT, false, true, false, S_AT(vcpus_used)},
    [HVN_F_MEMORY_MB_USED] = {"memory_mb_used", HVN_TYPE_INT, false, false, false,
                              S_AT(memory_mb_used)},
    [HVN_F_LOCAL_GB_USED] = {"local_gb_used", HVN_TYPE_INT, false, true, false,
                             S_AT(local_gb_used)},
    [HVN_F_HYPERVISOR_TYPE] = {"hypervisor_type", HVN_TYPE_STR, false, false, false,
                               S_AT(hypervisor_type)},
    [HVN_F_HYPERVISOR_VERSION] = {"hypervisor_version", HVN_TYPE_INT, false, false, false,
                                  S_AT(hypervisor_version)},
    [HVN_F_HYPERVISOR_HOSTNAME] = {"hypervisor_hostname", HVN_TYPE_STR, true, true, false,
                                   S_AT(hypervisor_hostname)},
    [HVN_F_FREE_RAM_MB] = {"free_ram_mb", HVN_TYPE_INT, true, false, false, S_AT(free_ram_mb)},
    [HVN_F_FREE_DISK_GB] = {"free_disk_gb", HVN_TYPE_INT, true, false, false, S_AT(free_disk_gb)},
    [HVN_F_CURRENT_WORKLOAD] = {"current_workload", HVN_TYPE_INT, true, true, false,
                                S_AT(current_workload)},
    [HVN_F_RUNNING_VMS] = {"running_vms", HVN_TYPE_INT, true, true, false, S_AT(running_vms)},
    [HVN_F_DISK_AVAILABLE_LEAST] = {"disk_available_least", HVN_TYPE_INT, true, true, false,
                                    S_AT(disk_available_least)},
    [HVN_F_HOST_IP] = {"host_ip", HVN_TYPE_IP, true, false, false, S_AT(host_ip)},
};

// --------------------------------------------------------------------------
//  Lookup and fingerprint

//  Returns the field id of `name` (len bytes), or -1 when no field has it.
int hvn_schema_find(const char *name, size_t len)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const char *fname = hvn_schema_fields[f].name;
        if (len > 0 && fname[0] == name[0] && strlen(fname) == len && memcmp(fname, name, len) == 0)
            return f;
    }
    return -1;
}

//  Returns hash folded with `len` bytes at data (FNV-1a 64).
static uint64_t s_fnv1a(uint64_t hash, const void *data, size_t len)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

//  Returns the FNV-1a 64 of each field's name (with its NUL), type and
//  nullability, in table order; only the in_delete fields for the delete
//  payload.
uint64_t hvn_schema_fingerprint(bool delete_payload)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        if (delete_payload && !field->in_delete)
            continue;
        uint8_t type = (uint8_t)field->type;
        uint8_t nullable = field->nullable ? 1 : 0;
        hash = s_fnv1a(hash, field->name, strlen(field->name) + 1);
        hash = s_fnv1a(hash, &type, 1);
        hash = s_fnv1a(hash, &nullable, 1);
    }
    return hash;
}

// --------------------------------------------------------------------------
//  Accessors

//  Returns nothing; the node is all zero/"" with every nullable field nil.
void hvn_node_init(hvn_node_t *node)
{
    assert(node);
    memset(node, 0, sizeof(*node));
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].nullable)
            node->nulls |= 1u << f;
}

//  Returns a pointer to int field f of node.
int64_t *hvn_node_int(hvn_node_t *node, hvn_field_id_t f)
{
    assert(f < HVN_F_COUNT && hvn_schema_fields[f].type == HVN_TYPE_INT);
    return (int64_t *)((char *)node + hvn_schema_fields[f].offset);
}

//  Returns a pointer to the buffer of string field f of node.
char *hvn_node_str(hvn_node_t *node, hvn_field_id_t f)
{
    assert(f < HVN_F_COUNT && hvn_schema_fields[f].type != HVN_TYPE_INT);
    return (char *)node + hvn_schema_fields[f].offset;
}

//  Returns a read-only pointer to int field f of node.
static const int64_t *s_cint(const hvn_node_t *node, int f)
{
    return (const int64_t *)((const char *)node + hvn_schema_fields[f].offset);
}

//  Returns a read-only pointer to string field f of node.
static const char *s_cstr(const hvn_node_t *node, int f)
{
    return (const char *)node + hvn_schema_fields[f].offset;
}

//  Returns nothing; field f holds value and is not nil.
void hvn_node_set_int(hvn_node_t *node, hvn_field_id_t f, int64_t value)
{
    *hvn_node_int(node, f) = value;
    node->nulls &= ~(1u << f);
}

//  Returns -1 when value does not fit field f (node unchanged), else 0.
int hvn_node_set_str(hvn_node_t *node, hvn_field_id_t f, const char *value)
{
    char *dest = hvn_node_str(node, f);
    size_t len = strlen(value);
    if (len >= hvn_schema_fields[f].size)
        return -1;
    memcpy(dest, value, len + 1);
    node->nulls &= ~(1u << f);
    return 0;
}

//  Returns nothing; nullable field f is nil.
void hvn_node_set_null(hvn_node_t *node, hvn_field_id_t f)
{
    assert(f < HVN_F_COUNT && hvn_schema_fields[f].nullable);
    node->nulls |= 1u << f;
}

//  Returns true when nullable field f of node is nil.
bool hvn_node_is_null(const hvn_node_t *node, hvn_field_id_t f)
{
    assert(f < HVN_F_COUNT);
    return hvn_schema_fields[f].nullable && (node->nulls & (1u << f)) != 0;
}

// --------------------------------------------------------------------------
//  Comparison

//  Returns true when field f is equal (or nil) in both nodes.
bool hvn_node_field_equal(const hvn_node_t *a, const hvn_node_t *b, hvn_field_id_t f)
{
    bool a_nil = hvn_node_is_null(a, f);
    bool b_nil = hvn_node_is_null(b, f);
    if (a_nil || b_nil)
        return a_nil == b_nil;
    const hvn_field_t *field = &hvn_schema_fields[f];
    if (field->type == HVN_TYPE_INT)
        return *s_cint(a, f) == *s_cint(b, f);
    return strncmp(s_cstr(a, f), s_cstr(b, f), field->size) == 0;
}

//  Returns true when a triggers_update field differs between a and b.
bool hvn_node_triggers_update(const hvn_node_t *a, const hvn_node_t *b)
{
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (hvn_schema_fields[f].triggers_update && !hvn_node_field_equal(a, b, f))
            return true;
    return false;
}

//  Returns true when every field is equal in a and b.
bool hvn_node_equal(const hvn_node_t *a, const hvn_node_t *b)
{
    for (int f = 0; f < HVN_F_COUNT; f++)
        if (!hvn_node_field_equal(a, b, f))
            return false;
    return true;
}

// --------------------------------------------------------------------------
//  Validation

//  Returns true when len bytes at s are well-formed UTF-8 (no overlongs, no
//  surrogates, nothing above U+10FFFF) and contain no NUL.
bool hvn_utf8_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    //  Fast path: eight ASCII bytes, none zero, at a time
    while (i + 8 <= len) {
        uint64_t word;
        memcpy(&word, p + i, 8);
        if ((word & 0x8080808080808080ULL) ||
            ((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL))
            break;
        i += 8;
    }
    //  Fewer than eight left, all before them ASCII: the last eight bytes
    //  (or the last four and the first four of a shorter text) as whole
    //  words, overlapping what was checked
    if (i + 8 > len && i < len) {
        if (len >= 8) {
            uint64_t word;
            memcpy(&word, p + len - 8, 8);
            if (!(word & 0x8080808080808080ULL) &&
                !((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL))
                return true;
        } else if (len >= 4) {
            uint32_t head, tail;
            memcpy(&head, p, 4);
            memcpy(&tail, p + len - 4, 4);
            uint32_t both = head | tail;
            if (!(both & 0x80808080u) && !((head - 0x01010101u) & ~head & 0x80808080u) &&
                !((tail - 0x01010101u) & ~tail & 0x80808080u))
                return true;
        }
    }
    while (i < len) {
        uint8_t c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else
            return false;
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

//  Returns true when len bytes at text are a dotted quad in the form
//  inet_pton(AF_INET) accepts: four parts of 1 to 3 decimal digits, each at
//  most 255 and without a leading zero. A shortcut for the usual host_ip:
//  whatever it does not accept still goes to inet_pton, so it can only
//  answer sooner, never otherwise.
static bool s_dotted_quad(const char *text, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && (i >= len || text[i++] != '.'))
            return false;
        unsigned value = 0;
        size_t start = i;
        while (i < len && i - start < 3 && text[i] >= '0' && text[i] <= '9')
            value = value * 10 + (unsigned)(text[i++] - '0');
        if (i == start || value > 255 || (text[start] == '0' && i - start > 1))
            return false;
    }
    return i == len;
}

//  Returns true when text is a canonical UUID (uuid), an IPv4 or IPv6
//  address (host_ip), or is any other field's text.
bool hvn_field_text_valid(hvn_field_id_t f, const char *text, size_t len)
{
    hvn_type_t type = hvn_schema_fields[f].type;
    if (type == HVN_TYPE_UUID)
        return hvn_uuid_parse(text, len, NULL) == 0;
    if (type == HVN_TYPE_IP) {
        unsigned char addr[sizeof(struct in6_addr)];
        return s_dotted_quad(text, len) || inet_pton(AF_INET, text, addr) == 1 ||
               inet_pton(AF_INET6, text, addr) == 1;
    }
    return true;
}

//  Returns true when string field f of node is well formed for its type.
static bool s_str_valid(const hvn_node_t *node, int f)
{
    const hvn_field_t *field = &hvn_schema_fields[f];
    const char *value = s_cstr(node, f);
    const char *end = memchr(value, '\0', field->size);
    if (!end)
        return false;
    size_t len = (size_t)(end - value);
    return hvn_utf8_valid(value, len) && hvn_field_text_valid((hvn_field_id_t)f, value, len);
}

//  Returns 0 when every field is well formed, else -1 with the first bad
//  field in *bad_field (when not NULL).
int hvn_node_validate(const hvn_node_t *node, hvn_field_id_t *bad_field)
{
    for (int f = 0; f < HVN_F_COUNT; f++) {
        const hvn_field_t *field = &hvn_schema_fields[f];
        bool nil = (node->nulls & (1u << f)) != 0;
        bool ok = true;
        if (nil)
            ok = field->nullable;
        else if (field->type != HVN_TYPE_INT)
            ok = s_str_valid(node, f);
        if (!ok) {
            if (bad_field)
                *bad_field = (hvn_field_id_t)f;
            return -1;
        }
    }
    return 0;
}
