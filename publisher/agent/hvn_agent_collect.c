/*  hvn_agent_collect.c — this host's compute node, read from the system.

    Small readers of /proc files, statvfs, getifaddrs and the host name, and
    hvn_agent_collect(), which puts their answers into one hvn_node_t the way
    Nova's resource tracker derives them (free_ram_mb = memory_mb -
    memory_mb_used, free_disk_gb = local_gb - local_gb_used). Every reader
    takes its source as a parameter so tests can point it at fixtures.
*/
#include "hvn_agent_collect.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MIB (1024LL * 1024)        //  Bytes in a MiB
#define S_GIB (1024LL * 1024 * 1024) //  Bytes in a GiB

// --------------------------------------------------------------------------
//  Memory

//  Parses one meminfo line "Key:   value kB". Returns 0 with the key (NUL-
//  terminated, in key) and the value in kB, or -1 when the line is not of
//  that shape or the value is not a non-negative number.
static int s_meminfo_line(const char *line, char *key, size_t key_size, int64_t *kb)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line || (size_t)(colon - line) >= key_size)
        return -1;
    memcpy(key, line, colon - line);
    key[colon - line] = '\0';

    const char *p = colon + 1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *end;
    long long value = strtoll(p, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' && *end != '\n' && strncmp(end, "kB", 2) != 0)
        return -1;
    *kb = value;
    return 0;
}

//  Reads a meminfo file. Returns 0, or -1 when it cannot be read or holds
//  no usable MemTotal.
int hvn_agent_meminfo_read(const char *path, hvn_meminfo_t *out)
{
    assert(path && out);
    FILE *file = fopen(path, "re");
    if (!file)
        return -1;
    int64_t total = -1, available = -1, free_kb = -1, buffers = 0, cached = 0;
    char line[256];
    while (fgets(line, sizeof line, file)) {
        char key[64];
        int64_t kb;
        if (s_meminfo_line(line, key, sizeof key, &kb) != 0)
            continue;
        if (streq(key, "MemTotal"))
            total = kb;
        else if (streq(key, "MemAvailable"))
            available = kb;
        else if (streq(key, "MemFree"))
            free_kb = kb;
        else if (streq(key, "Buffers"))
            buffers = kb;
        else if (streq(key, "Cached"))
            cached = kb;
    }
    fclose(file);
    if (total < 0)
        return -1;

    out->estimated = available < 0;
    if (available < 0)
        available = free_kb < 0 ? 0 : free_kb + buffers + cached;
    int64_t used = total - available;
    out->total_mb = total / 1024;
    out->used_mb = used > 0 ? used / 1024 : 0;
    return 0;
}

// --------------------------------------------------------------------------
//  Disk

//  Converts a statvfs result to GiB. Returns 0.
int hvn_agent_disk_from_statvfs(const struct statvfs *st, hvn_disk_t *out)
{
    uint64_t frsize = st->f_frsize ? st->f_frsize : st->f_bsize;
    uint64_t blocks = st->f_blocks;
    uint64_t bfree = st->f_bfree <= blocks ? st->f_bfree : blocks;
    uint64_t bavail = st->f_bavail <= blocks ? st->f_bavail : blocks;
    out->local_gb = (int64_t)(blocks * frsize / S_GIB);
    out->local_gb_used = (int64_t)((blocks - bfree) * frsize / S_GIB);
    out->disk_available_least = (int64_t)(bavail * frsize / S_GIB);
    return 0;
}

//  Measures the file system holding path (or "/" when path is absent).
//  Returns 0, or -1 with errno set.
int hvn_agent_disk_read(const char *path, hvn_statvfs_fn fn, hvn_disk_t *out)
{
    assert(path && out);
    if (!fn)
        fn = statvfs;
    struct statvfs st;
    out->fell_back = false;
    if (fn(path, &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            return -1;
        out->fell_back = true;
        if (fn("/", &st) != 0)
            return -1;
    }
    return hvn_agent_disk_from_statvfs(&st, out);
}

// --------------------------------------------------------------------------
//  Network

//  Copies src into dst of size bytes. Returns 0, or -1 when it does not fit.
static int s_copy(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (len >= size)
        return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

//  Reads one line of a route table: returns true with the interface and
//  metric of a usable default route in name and *metric, else false.
//  index counts the file's lines from 0.
typedef bool(s_route_fn)(const char *line, int index, char name[IF_NAMESIZE + 1],
                         unsigned long *metric);

//  Returns 0 with the interface of the lowest-metric default route of the
//  route table at path (its lines read by parse) in ifname, or -1 when the
//  file has none.
static int s_best_route(const char *path, s_route_fn *parse, char *ifname, size_t size)
{
    FILE *file = fopen(path, "re");
    if (!file)
        return -1;
    char line[512];
    char best[IF_NAMESIZE] = "";
    unsigned long best_metric = ULONG_MAX;
    bool found = false;
    char name[IF_NAMESIZE + 1];
    unsigned long metric;
    for (int index = 0; fgets(line, sizeof line, file); index++) {
        if (!parse(line, index, name, &metric) || strlen(name) >= IF_NAMESIZE)
            continue;
        if (!found || metric < best_metric) {
            strcpy(best, name);
            best_metric = metric;
            found = true;
        }
    }
    fclose(file);
    if (!found)
        return -1;
    return s_copy(ifname, size, best);
}

//  Returns true for a line of /proc/net/route that is an IPv4 default
//  route that is up (an s_route_fn).
static bool s_route4(const char *line, int index, char name[IF_NAMESIZE + 1], unsigned long *metric)
{
    if (index == 0) //  "Iface Destination Gateway Flags ..."
        return false;
    unsigned long dest, gateway, flags, refcnt, use, mask;
    if (sscanf(line, "%16s %lx %lx %lx %lu %lu %lu %lx", name, &dest, &gateway, &flags, &refcnt,
               &use, metric, &mask) != 8)
        return false;
    return dest == 0 && mask == 0 && (flags & RTF_UP);
}

//  Returns 0 with the interface of the lowest-metric IPv4 default route in
//  ifname, or -1 when the file has none.
int hvn_agent_default_route_if(const char *route_path, char *ifname, size_t size)
{
    assert(route_path && ifname);
    return s_best_route(route_path, s_route4, ifname, size);
}

//  Returns true for a line of /proc/net/ipv6_route that is an IPv6
//  default route that is up, not a reject route and not on lo (an
//  s_route_fn).
static bool s_route6(const char *line, int index, char name[IF_NAMESIZE + 1], unsigned long *metric)
{
    (void)index;
    char dest[33], src[33], next_hop[33];
    unsigned int dest_len, src_len;
    unsigned long refcnt, use, flags;
    if (sscanf(line, "%32s %x %32s %x %32s %lx %lx %lx %lx %16s", dest, &dest_len, src, &src_len,
               next_hop, metric, &refcnt, &use, &flags, name) != 10)
        return false;
    return dest_len == 0 && strspn(dest, "0") == 32 && (flags & RTF_UP) && !(flags & RTF_REJECT) &&
           !streq(name, "lo");
}

//  Returns 0 with the interface of the lowest-metric IPv6 default route in
//  ifname, or -1 when the file has none.
int hvn_agent_default_route6_if(const char *route6_path, char *ifname, size_t size)
{
    assert(route6_path && ifname);
    return s_best_route(route6_path, s_route6, ifname, size);
}

//  Returns true when addr is an IPv6 link-local address (fe80::/10).
static bool s_link_local6(const struct in6_addr *addr)
{
    return addr->s6_addr[0] == 0xfe && (addr->s6_addr[1] & 0xc0) == 0x80;
}

//  Returns 0 with the first address of family on ifname in out, or -1.
int hvn_agent_if_address(const char *ifname, int family, char *out, size_t size)
{
    assert(ifname && out);
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0)
        return -1;
    int rc = -1;
    for (struct ifaddrs *it = list; it && rc != 0; it = it->ifa_next) {
        if (!it->ifa_addr || it->ifa_addr->sa_family != family || !streq(it->ifa_name, ifname))
            continue;
        const void *addr;
        if (family == AF_INET)
            addr = &((const struct sockaddr_in *)(const void *)it->ifa_addr)->sin_addr;
        else {
            const struct in6_addr *a6 =
                &((const struct sockaddr_in6 *)(const void *)it->ifa_addr)->sin6_addr;
            if (s_link_local6(a6))
                continue;
            addr = a6;
        }
        if (inet_ntop(family, addr, out, size))
            rc = 0;
    }
    freeifaddrs(list);
    return rc;
}

//  Returns 0 with the host's address in out, or -1 when it has none.
int hvn_agent_host_ip(const char *route_path, const char *route6_path, char *out, size_t size)
{
    char ifname[IF_NAMESIZE];
    if (route_path && hvn_agent_default_route_if(route_path, ifname, sizeof ifname) == 0 &&
        hvn_agent_if_address(ifname, AF_INET, out, size) == 0)
        return 0;
    if (route6_path && hvn_agent_default_route6_if(route6_path, ifname, sizeof ifname) == 0 &&
        hvn_agent_if_address(ifname, AF_INET6, out, size) == 0)
        return 0;
    return -1;
}

// --------------------------------------------------------------------------
//  Names and CPUs

//  Returns 0 with gethostname() in name, or -1.
static int s_hostname(char *name, size_t size)
{
    if (gethostname(name, size) != 0)
        return -1;
    name[size - 1] = '\0';
    return name[0] ? 0 : -1;
}

//  Returns 0 with the FQDN in out, or -1 when gethostname() fails.
int hvn_agent_fqdn(char *out, size_t size)
{
    char name[HOST_NAME_MAX + 1];
    if (s_hostname(name, sizeof name) != 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_CANONNAME};
    struct addrinfo *info = NULL;
    int rc = -1;
    if (getaddrinfo(name, NULL, &hints, &info) == 0 && info && info->ai_canonname &&
        info->ai_canonname[0])
        rc = s_copy(out, size, info->ai_canonname);
    if (info)
        freeaddrinfo(info);
    if (rc != 0)
        rc = s_copy(out, size, name);
    return rc;
}

//  Returns 0 with the short host name in out, or -1.
int hvn_agent_short_host(char *out, size_t size)
{
    char name[HOST_NAME_MAX + 1];
    if (s_hostname(name, sizeof name) != 0)
        return -1;
    char *dot = strchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    return s_copy(out, size, name);
}

//  Returns the number of online CPUs, at least 1.
int64_t hvn_agent_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

// --------------------------------------------------------------------------
//  The whole node

//  Fills node from the sources. Returns 0, or -1 when memory or disk
//  cannot be read.
int hvn_agent_collect(const hvn_agent_sources_t *src, const hvn_agent_identity_t *ident,
                      const hvn_agent_virt_t *virt, hvn_node_t *node)
{
    assert(src && ident && node);
    const char *meminfo_path = src->meminfo_path ? src->meminfo_path : HVN_AGENT_MEMINFO;
    const char *instances = src->instances_path ? src->instances_path : HVN_AGENT_INSTANCES_PATH;

    hvn_meminfo_t mem;
    if (hvn_agent_meminfo_read(meminfo_path, &mem) != 0) {
        zsys_error("cannot read memory from %s", meminfo_path);
        return -1;
    }
    hvn_disk_t disk;
    if (hvn_agent_disk_read(instances, src->statvfs_fn, &disk) != 0) {
        zsys_error("cannot measure the disk of %s: %s", instances, strerror(errno));
        return -1;
    }

    hvn_node_init(node);
    node->id = ident->id;
    strcpy(node->uuid, ident->uuid);
    hvn_node_set_str(node, HVN_F_HOST, ident->host);
    if (ident->hypervisor_hostname[0])
        hvn_node_set_str(node, HVN_F_HYPERVISOR_HOSTNAME, ident->hypervisor_hostname);

    node->vcpus = hvn_agent_online_cpus();
    node->memory_mb = mem.total_mb;
    node->memory_mb_used = virt ? virt->memory_mb_used : mem.used_mb;
    node->local_gb = disk.local_gb;
    node->local_gb_used = disk.local_gb_used;
    hvn_node_set_int(node, HVN_F_DISK_AVAILABLE_LEAST, disk.disk_available_least);
    hvn_node_set_int(node, HVN_F_FREE_RAM_MB, node->memory_mb - node->memory_mb_used);
    hvn_node_set_int(node, HVN_F_FREE_DISK_GB, node->local_gb - node->local_gb_used);

    if (virt) {
        hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, virt->type);
        node->hypervisor_version = virt->version;
        node->vcpus_used = virt->vcpus_used;
        hvn_node_set_int(node, HVN_F_RUNNING_VMS, virt->running_vms);
    } else {
        hvn_node_set_str(node, HVN_F_HYPERVISOR_TYPE, HVN_AGENT_NO_HYPERVISOR);
        node->hypervisor_version = 0;
        node->vcpus_used = 0;
    }

    char ip[HVN_IP_STR_MAX + 1];
    if (hvn_agent_host_ip(src->route_path ? src->route_path : HVN_AGENT_ROUTE,
                          src->route6_path ? src->route6_path : HVN_AGENT_ROUTE6, ip,
                          sizeof ip) == 0)
        hvn_node_set_str(node, HVN_F_HOST_IP, ip);
    return 0;
}
