/*  hvn_agent_collect.h — this host's compute node, read from the system.

    The collectors behind hvn-agent. Each one takes its inputs as parameters
    (the path of a /proc file, a statvfs function) so that the tests can feed
    fixture files and a fake file system; hvn-agent passes the real ones.
    Nothing here talks to the network or to libvirt: hvn_agent_libvirt.h
    fills a hvn_agent_virt_t when the agent is built with libvirt, and
    hvn_agent_collect() merges it in.

    docs/agent.md lists every payload field and where its value comes from.
*/
#ifndef HVN_AGENT_COLLECT_H_INCLUDED
#define HVN_AGENT_COLLECT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "hvn_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HVN_AGENT_MEMINFO "/proc/meminfo"
#define HVN_AGENT_ROUTE "/proc/net/route"
#define HVN_AGENT_ROUTE6 "/proc/net/ipv6_route"
#define HVN_AGENT_INSTANCES_PATH "/var/lib/nova/instances"
#define HVN_AGENT_MACHINE_ID "/etc/machine-id"
#define HVN_AGENT_STATE_DIR "/var/lib/hvnotify"
#define HVN_AGENT_UUID_FILE "node-uuid" //  In the state directory
#define HVN_AGENT_NO_HYPERVISOR "none"  //  hypervisor_type without libvirt

// --------------------------------------------------------------------------
//  Memory: /proc/meminfo

//  What /proc/meminfo says, in MiB
typedef struct {
    int64_t total_mb; //  MemTotal
    int64_t used_mb;  //  MemTotal - MemAvailable, never below 0
    bool estimated;   //  No MemAvailable: MemFree + Buffers + Cached stood in
} hvn_meminfo_t;

//  Reads a meminfo file (normally HVN_AGENT_MEMINFO). Returns 0, or -1 when
//  the file cannot be read or holds no usable MemTotal. A line that does not
//  parse is skipped; without MemAvailable (kernels before 3.14) the free
//  memory is estimated from MemFree + Buffers + Cached.
int hvn_agent_meminfo_read(const char *path, hvn_meminfo_t *out);

// --------------------------------------------------------------------------
//  Disk: statvfs of the instances path

//  The statvfs(3) signature, so a test can pass a fake
typedef int (*hvn_statvfs_fn)(const char *path, struct statvfs *buf);

//  The disk where instances live, in GiB (rounded down, as Nova does)
typedef struct {
    int64_t local_gb;             //  f_blocks * f_frsize
    int64_t local_gb_used;        //  (f_blocks - f_bfree) * f_frsize
    int64_t disk_available_least; //  f_bavail * f_frsize
    bool fell_back;               //  The path did not exist; "/" was measured
} hvn_disk_t;

//  Measures the file system holding `path` with fn (NULL = statvfs). When
//  the path does not exist, measures "/" instead and sets fell_back.
//  Returns 0, or -1 when neither can be measured (errno set).
int hvn_agent_disk_read(const char *path, hvn_statvfs_fn fn, hvn_disk_t *out);

//  The same arithmetic on a statvfs result already at hand. Returns 0.
int hvn_agent_disk_from_statvfs(const struct statvfs *st, hvn_disk_t *out);

// --------------------------------------------------------------------------
//  Network: the address of the interface holding the default route

//  Finds the interface of the IPv4 default route (destination and mask 0,
//  route up; the lowest metric wins) in a file laid out as /proc/net/route.
//  Returns 0 with its name in ifname, or -1 when there is none.
int hvn_agent_default_route_if(const char *route_path, char *ifname, size_t size);

//  The same for IPv6 from a file laid out as /proc/net/ipv6_route (::/0,
//  up, not a reject route, not on lo). Returns 0 or -1.
int hvn_agent_default_route6_if(const char *route6_path, char *ifname, size_t size);

//  Writes the first address of `family` (AF_INET or AF_INET6; IPv6
//  link-local addresses skipped) held by interface ifname. Returns 0, or -1
//  when it holds none.
int hvn_agent_if_address(const char *ifname, int family, char *out, size_t size);

//  The host's address: the IPv4 address of the default route's interface,
//  else the IPv6 one. Either path may be NULL to skip that family.
//  Returns 0 with the text in out, or -1 when the host has no default route.
int hvn_agent_host_ip(const char *route_path, const char *route6_path, char *out, size_t size);

// --------------------------------------------------------------------------
//  Names and CPUs

//  Writes this host's fully qualified name: the canonical name getaddrinfo
//  gives for gethostname(), or gethostname() itself when that fails.
//  Returns 0, or -1 when even gethostname() fails.
int hvn_agent_fqdn(char *out, size_t size);

//  Writes this host's short name (gethostname() up to its first dot).
//  Returns 0 or -1.
int hvn_agent_short_host(char *out, size_t size);

//  Returns the number of online CPUs, at least 1.
int64_t hvn_agent_online_cpus(void);

// --------------------------------------------------------------------------
//  Identity: a node uuid that survives restarts

//  Writes the name-based (SHA-1, version 5) uuid of machine_id and hostname
//  under the project's fixed namespace, as canonical text. Returns 0.
int hvn_agent_uuid_derive(const char *machine_id, const char *hostname, char out[37]);

//  Reads the node uuid kept in state_dir/node-uuid. When the file is
//  missing or corrupt (logged), derives it from the machine id read at
//  machine_id_path (a random uuid when there is none, logged) and hostname,
//  and writes it atomically (temporary file, fsync, rename). Returns 0 when
//  it was read, 1 when it was derived and saved, -1 when it could not be
//  saved (errno set).
int hvn_agent_uuid_load(const char *state_dir, const char *machine_id_path, const char *hostname,
                        char out[37]);

//  Removes state_dir/node-uuid. Returns 0 (also when there was none) or -1.
int hvn_agent_uuid_forget(const char *state_dir);

//  Returns the node's integer id: the first 53 bits of its uuid, so a
//  positive integer that is stable with the uuid and exact in a JSON double.
//  Returns -1 when uuid does not parse.
int64_t hvn_agent_node_id(const char *uuid);

// --------------------------------------------------------------------------
//  The whole node

//  Where the collectors read from; a NULL member means the system default
typedef struct {
    const char *meminfo_path;   //  HVN_AGENT_MEMINFO
    const char *instances_path; //  HVN_AGENT_INSTANCES_PATH
    hvn_statvfs_fn statvfs_fn;  //  statvfs
    const char *route_path;     //  HVN_AGENT_ROUTE
    const char *route6_path;    //  HVN_AGENT_ROUTE6
} hvn_agent_sources_t;

//  What the agent knows about itself, fixed for its lifetime
typedef struct {
    char uuid[HVN_UUID_STR_LEN + 1];           //  Node uuid
    int64_t id;                                //  From the uuid
    char host[HVN_STR_MAX + 1];                //  Service host
    char hypervisor_hostname[HVN_STR_MAX + 1]; //  FQDN
} hvn_agent_identity_t;

//  What a hypervisor connection says (filled by hvn_agent_libvirt_read)
typedef struct {
    char type[HVN_STR_MAX + 1]; //  virConnectGetType, e.g. "QEMU"
    int64_t version;            //  virConnectGetVersion
    int64_t running_vms;        //  Active domains
    int64_t vcpus_used;         //  Sum of their vCPUs
    int64_t memory_mb_used;     //  Sum of their current memory, MiB
} hvn_agent_virt_t;

//  Fills node with this host's compute node: identity, CPUs, memory, disk,
//  address, and the hypervisor's view when virt is not NULL. Returns 0, or
//  -1 (logged) when memory or disk cannot be read.
int hvn_agent_collect(const hvn_agent_sources_t *src, const hvn_agent_identity_t *ident,
                      const hvn_agent_virt_t *virt, hvn_node_t *node);

#ifdef __cplusplus
}
#endif
#endif
