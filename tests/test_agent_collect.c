/*  test_agent_collect.c — hvn-agent's collectors against fixtures.

    Every collector reads from a path or a function it is given, so these
    tests write fixture /proc files into a temporary directory and pass a
    fake statvfs. The libvirt tests use libvirt's test:///default driver,
    which needs no hypervisor.
*/
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "hvn_agent_collect.h"
#ifdef HVN_HAVE_LIBVIRT
#include "hvn_agent_libvirt.h"
#endif

#define S_GIB (1024ULL * 1024 * 1024)

static char s_dir[64]; //  This test's temporary directory

//  Makes this test's temporary directory.
static void s_setup(void)
{
    strcpy(s_dir, "/tmp/hvn-agent-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

//  Removes it with everything in it.
static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

//  Writes text to s_dir/name. Returns the file's path, in a static buffer
//  that the next call reuses.
static const char *s_fixture(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
    return path;
}

TestSuite(agent, .init = s_setup, .fini = s_teardown);

// --------------------------------------------------------------------------
//  Memory

Test(agent, meminfo_total_used_and_whether_estimated_are_read)
{
    static const struct {
        const char *name; //  What the case is about
        const char *text; //  The meminfo file
        int64_t total_mb; //  The total_mb it must give
        int64_t used_mb;  //  The used_mb it must give
        bool estimated;   //  Whether used_mb must be an estimate
    } cases[] = {
        {"used from MemAvailable",
         "MemTotal:       16318480 kB\n"
         "MemFree:         1000000 kB\n"
         "MemAvailable:   10000000 kB\n"
         "Buffers:          200000 kB\n"
         "Cached:          3000000 kB\n"
         "HugePages_Total:       0\n",
         16318480 / 1024, (16318480 - 10000000) / 1024, false},
        {"no MemAvailable: estimated from free, buffers and cached",
         "MemTotal:        8192000 kB\n"
         "MemFree:         1024000 kB\n"
         "Buffers:          102400 kB\n"
         "Cached:          2048000 kB\n",
         8000, (8192000 - 1024000 - 102400 - 2048000) / 1024, true},
        {"a garbage line among good ones is skipped",
         "MemTotal: 2048 kB\n"
         "Broken line without colon\n"
         "MemAvailable: junk kB\n"
         "MemAvailable: 1024 kB\n",
         2, 1, false},
        {"available above total gives zero used", "MemTotal: 2048 kB\nMemAvailable: 4096 kB\n", 2,
         0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hvn_meminfo_t mem;
        const char *path = s_fixture("meminfo", cases[i].text);
        cr_assert_eq(hvn_agent_meminfo_read(path, &mem), 0, "%s", cases[i].name);
        cr_expect_eq(mem.total_mb, cases[i].total_mb, "%s", cases[i].name);
        cr_expect_eq(mem.used_mb, cases[i].used_mb, "%s", cases[i].name);
        cr_expect_eq(mem.estimated, cases[i].estimated, "%s", cases[i].name);
    }
}

Test(agent, meminfo_garbage_is_refused)
{
    hvn_meminfo_t mem;
    const char *path = s_fixture("garbage", "\x01\x02 not meminfo at all\n::::\n\n");
    cr_expect_eq(hvn_agent_meminfo_read(path, &mem), -1);
    path = s_fixture("bad-total", "MemTotal: lots kB\nMemAvailable: 100 kB\n");
    cr_expect_eq(hvn_agent_meminfo_read(path, &mem), -1);
    path = s_fixture("negative", "MemTotal: -5 kB\n");
    cr_expect_eq(hvn_agent_meminfo_read(path, &mem), -1);
    path = s_fixture("huge", "MemTotal: 99999999999999999999999 kB\n");
    cr_expect_eq(hvn_agent_meminfo_read(path, &mem), -1);
    cr_expect_eq(hvn_agent_meminfo_read("/nonexistent/meminfo", &mem), -1);
}

Test(agent, real_meminfo_parses)
{
    hvn_meminfo_t mem;
    cr_assert_eq(hvn_agent_meminfo_read(HVN_AGENT_MEMINFO, &mem), 0);
    cr_expect_gt(mem.total_mb, 0);
    cr_expect_leq(mem.used_mb, mem.total_mb);
}

// --------------------------------------------------------------------------
//  Disk

//  A fake file system: /instances is 500 GiB with 120 GiB used and 360 GiB
//  available to unprivileged users; / is 20 GiB, half used; /denied fails.
static int s_fake_statvfs(const char *path, struct statvfs *st)
{
    memset(st, 0, sizeof *st);
    st->f_bsize = 4096;
    st->f_frsize = 4096;
    if (strcmp(path, "/instances") == 0) {
        st->f_blocks = 500 * S_GIB / 4096;
        st->f_bfree = 380 * S_GIB / 4096;
        st->f_bavail = 360 * S_GIB / 4096;
        return 0;
    }
    if (strcmp(path, "/") == 0) {
        st->f_blocks = 20 * S_GIB / 4096;
        st->f_bfree = 10 * S_GIB / 4096 + 7; //  Not a whole GiB: rounds down
        st->f_bavail = 9 * S_GIB / 4096;
        return 0;
    }
    errno = strcmp(path, "/denied") == 0 ? EACCES : ENOENT;
    return -1;
}

Test(agent, disk_sizes_in_gib_from_statvfs)
{
    hvn_disk_t disk;
    cr_assert_eq(hvn_agent_disk_read("/instances", s_fake_statvfs, &disk), 0);
    cr_expect_eq(disk.local_gb, 500);
    cr_expect_eq(disk.local_gb_used, 120);
    cr_expect_eq(disk.disk_available_least, 360);
    cr_expect_not(disk.fell_back);
}

Test(agent, disk_falls_back_to_root_when_instances_path_is_absent)
{
    hvn_disk_t disk;
    cr_assert_eq(hvn_agent_disk_read("/var/lib/nova/instances", s_fake_statvfs, &disk), 0);
    cr_expect(disk.fell_back);
    cr_expect_eq(disk.local_gb, 20);
    cr_expect_eq(disk.local_gb_used, 9); //  10 GiB minus 7 blocks, rounded down
    cr_expect_eq(disk.disk_available_least, 9);
}

Test(agent, disk_error_other_than_absent_is_reported)
{
    hvn_disk_t disk;
    cr_expect_eq(hvn_agent_disk_read("/denied", s_fake_statvfs, &disk), -1);
    cr_expect_eq(errno, EACCES);
}

Test(agent, disk_with_inconsistent_counts_never_goes_negative)
{
    struct statvfs st = {.f_frsize = 4096, .f_blocks = 10, .f_bfree = 50, .f_bavail = 40};
    hvn_disk_t disk;
    hvn_agent_disk_from_statvfs(&st, &disk);
    cr_expect_eq(disk.local_gb_used, 0);
    cr_expect_geq(disk.disk_available_least, 0);
}

// --------------------------------------------------------------------------
//  Network

static const char *s_route =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "wlan0\t00000000\t010AA8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    "down0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth1\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";

Test(agent, default_route_is_the_lowest_metric_route_that_is_up)
{
    char ifname[16];
    const char *path = s_fixture("route", s_route);
    cr_assert_eq(hvn_agent_default_route_if(path, ifname, sizeof ifname), 0);
    cr_expect_str_eq(ifname, "eth1");
}

Test(agent, no_default_route_is_reported)
{
    char ifname[16];
    const char *path =
        s_fixture("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
                           "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
    cr_expect_eq(hvn_agent_default_route_if(path, ifname, sizeof ifname), -1);
    path = s_fixture("empty", "");
    cr_expect_eq(hvn_agent_default_route_if(path, ifname, sizeof ifname), -1);
    cr_expect_eq(hvn_agent_default_route_if("/nonexistent", ifname, sizeof ifname), -1);
}

Test(agent, ipv6_default_route_skips_lo_and_reject_routes)
{
    const char *path = s_fixture(
        "ipv6_route",
        "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     ens3\n");
    char ifname[16];
    cr_assert_eq(hvn_agent_default_route6_if(path, ifname, sizeof ifname), 0);
    cr_expect_str_eq(ifname, "ens3");
}

Test(agent, host_ip_is_the_address_of_the_default_route_interface)
{
    const char *path =
        s_fixture("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
                           "lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n");
    char ip[64];
    cr_assert_eq(hvn_agent_host_ip(path, NULL, ip, sizeof ip), 0);
    cr_expect_str_eq(ip, "127.0.0.1");
}

Test(agent, host_ip_of_an_interface_without_address_is_none)
{
    const char *path =
        s_fixture("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
                           "nosuch9\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n");
    char ip[64];
    cr_expect_eq(hvn_agent_host_ip(path, NULL, ip, sizeof ip), -1);
    cr_expect_eq(hvn_agent_host_ip(NULL, NULL, ip, sizeof ip), -1);
}

// --------------------------------------------------------------------------
//  Identity

Test(agent, derived_uuid_is_stable_and_name_based)
{
    char a[37], b[37], c[37];
    hvn_agent_uuid_derive("3d1219c7c4c5404aaa1f6d2a48adfda4", "cmp-017.example.org", a);
    hvn_agent_uuid_derive("3d1219c7c4c5404aaa1f6d2a48adfda4", "cmp-017.example.org", b);
    hvn_agent_uuid_derive("3d1219c7c4c5404aaa1f6d2a48adfda4", "cmp-018.example.org", c);
    cr_expect_str_eq(a, b);
    cr_expect_str_neq(a, c);
    uuid_t raw;
    cr_assert_eq(uuid_parse(a, raw), 0);
    cr_expect_eq(raw[6] >> 4, 5, "a version 5 (SHA-1, name-based) uuid");
    //  Pinned: the namespace and the name's layout must never change, or
    //  every deployed node would get a new uuid
    cr_expect_str_eq(a, "f29860ab-bd84-5ad8-addc-4020c2a60b44");
}

Test(agent, uuid_is_derived_once_then_read_from_the_state_dir)
{
    const char *machine_id = s_fixture("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
    char expected[37], first[37], again[37];
    hvn_agent_uuid_derive("3d1219c7c4c5404aaa1f6d2a48adfda4", "cmp-017", expected);
    cr_assert_eq(hvn_agent_uuid_load(s_dir, machine_id, "cmp-017", first), 1);
    cr_expect_str_eq(first, expected);
    //  A renamed host keeps its uuid: it is read, not derived again
    cr_assert_eq(hvn_agent_uuid_load(s_dir, machine_id, "renamed", again), 0);
    cr_expect_str_eq(again, first);
}

Test(agent, uuid_file_from_an_older_run_is_kept_whatever_its_case)
{
    //  Written by hand or by an older agent: upper case, no newline
    s_fixture("node-uuid", "6A8C1D4E-0F2B-4C3D-9E8F-7A6B5C4D3E2F");
    char got[37];
    cr_assert_eq(hvn_agent_uuid_load(s_dir, "/nonexistent/machine-id", "cmp-017", got), 0);
    cr_expect_str_eq(got, "6a8c1d4e-0f2b-4c3d-9e8f-7a6b5c4d3e2f");
}

Test(agent, corrupt_uuid_file_is_derived_again)
{
    char machine_id[128];
    strcpy(machine_id, s_fixture("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n"));
    s_fixture("node-uuid", "this is not a uuid\n");
    char expected[37], got[37];
    hvn_agent_uuid_derive("3d1219c7c4c5404aaa1f6d2a48adfda4", "cmp-017", expected);
    cr_assert_eq(hvn_agent_uuid_load(s_dir, machine_id, "cmp-017", got), 1);
    cr_expect_str_eq(got, expected);
    s_fixture("node-uuid", "00000000-0000-0000-0000-000000000000\n");
    cr_assert_eq(hvn_agent_uuid_load(s_dir, machine_id, "cmp-017", got), 1);
    cr_expect_str_eq(got, expected);
}

Test(agent, uuid_without_machine_id_is_random_but_kept)
{
    char first[37], again[37];
    cr_assert_eq(hvn_agent_uuid_load(s_dir, "/nonexistent/machine-id", "cmp-017", first), 1);
    cr_assert_eq(hvn_agent_uuid_load(s_dir, "/nonexistent/machine-id", "cmp-017", again), 0);
    cr_expect_str_eq(first, again);
}

Test(agent, uuid_in_an_unwritable_state_dir_fails)
{
    const char *machine_id = s_fixture("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
    char got[37];
    cr_expect_eq(hvn_agent_uuid_load("/nonexistent/state", machine_id, "cmp-017", got), -1);
}

Test(agent, forgotten_uuid_file_is_gone)
{
    const char *machine_id = s_fixture("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
    char got[37];
    cr_assert_eq(hvn_agent_uuid_load(s_dir, machine_id, "cmp-017", got), 1);
    cr_assert_eq(hvn_agent_uuid_forget(s_dir), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/node-uuid", s_dir);
    cr_expect_neq(access(path, F_OK), 0);
    cr_expect_eq(hvn_agent_uuid_forget(s_dir), 0, "forgetting twice is fine");
}

Test(agent, node_id_is_positive_and_follows_the_uuid)
{
    int64_t id = hvn_agent_node_id("f29860ab-bd84-5ad8-addc-4020c2a60b44");
    cr_expect_gt(id, 0);
    cr_expect_lt(id, (int64_t)1 << 53);
    cr_expect_eq(id, hvn_agent_node_id("F29860AB-BD84-5AD8-ADDC-4020C2A60B44"));
    cr_expect_neq(id, hvn_agent_node_id("e29860ab-bd84-5ad8-addc-4020c2a60b44"));
    cr_expect_eq(hvn_agent_node_id("ffffffff-ffff-ffff-ffff-ffffffffffff"), ((int64_t)1 << 53) - 1);
    cr_expect_eq(hvn_agent_node_id("00000000-0000-0000-0000-000000000000"), 1);
    cr_expect_eq(hvn_agent_node_id("not a uuid"), -1);
}

// --------------------------------------------------------------------------
//  The whole node

//  Fills sources and identity for the collect tests
static void s_sources(hvn_agent_sources_t *src, hvn_agent_identity_t *ident)
{
    static char meminfo[128], route[128];
    snprintf(meminfo, sizeof meminfo, "%s",
             s_fixture("meminfo", "MemTotal: 16777216 kB\nMemAvailable: 4194304 kB\n"));
    snprintf(route, sizeof route, "%s",
             s_fixture("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
                                "lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n"));
    *src = (hvn_agent_sources_t){.meminfo_path = meminfo,
                                 .instances_path = "/instances",
                                 .statvfs_fn = s_fake_statvfs,
                                 .route_path = route,
                                 .route6_path = "/nonexistent"};
    *ident = (hvn_agent_identity_t){.host = "cmp-017",
                                    .hypervisor_hostname = "cmp-017.example.org",
                                    .uuid = "f29860ab-bd84-5ad8-addc-4020c2a60b44"};
    ident->id = hvn_agent_node_id(ident->uuid);
}

Test(agent, collected_node_without_libvirt_is_valid_and_derives_free_values)
{
    hvn_agent_sources_t src;
    hvn_agent_identity_t ident;
    s_sources(&src, &ident);
    hvn_node_t node;
    cr_assert_eq(hvn_agent_collect(&src, &ident, NULL, &node), 0);
    cr_expect_eq(hvn_node_validate(&node, NULL), 0);
    cr_expect_str_eq(node.uuid, ident.uuid);
    cr_expect_eq(node.id, ident.id);
    cr_expect_str_eq(node.host, "cmp-017");
    cr_expect_str_eq(node.hypervisor_hostname, "cmp-017.example.org");
    cr_expect_eq(node.vcpus, sysconf(_SC_NPROCESSORS_ONLN));
    cr_expect_eq(node.memory_mb, 16384);
    cr_expect_eq(node.memory_mb_used, 12288);
    cr_expect_eq(node.free_ram_mb, 4096);
    cr_expect_eq(node.local_gb, 500);
    cr_expect_eq(node.local_gb_used, 120);
    cr_expect_eq(node.free_disk_gb, 380);
    cr_expect_eq(node.disk_available_least, 360);
    cr_expect_str_eq(node.hypervisor_type, "none");
    cr_expect_eq(node.hypervisor_version, 0);
    cr_expect_eq(node.vcpus_used, 0);
    cr_expect(hvn_node_is_null(&node, HVN_F_RUNNING_VMS));
    cr_expect(hvn_node_is_null(&node, HVN_F_CURRENT_WORKLOAD));
    cr_expect_str_eq(node.host_ip, "127.0.0.1");
}

Test(agent, collected_node_takes_guests_from_the_hypervisor_view)
{
    hvn_agent_sources_t src;
    hvn_agent_identity_t ident;
    s_sources(&src, &ident);
    hvn_agent_virt_t virt = {.type = "QEMU",
                             .version = 7002000,
                             .running_vms = 3,
                             .vcpus_used = 10,
                             .memory_mb_used = 6144};
    hvn_node_t node;
    cr_assert_eq(hvn_agent_collect(&src, &ident, &virt, &node), 0);
    cr_expect_eq(hvn_node_validate(&node, NULL), 0);
    cr_expect_str_eq(node.hypervisor_type, "QEMU");
    cr_expect_eq(node.hypervisor_version, 7002000);
    cr_expect_eq(node.running_vms, 3);
    cr_expect_eq(node.vcpus_used, 10);
    cr_expect_eq(node.memory_mb_used, 6144);
    cr_expect_eq(node.free_ram_mb, 16384 - 6144);
}

Test(agent, collect_fails_when_memory_cannot_be_read_or_the_disk_measured)
{
    for (int broken = 0; broken < 2; broken++) {
        hvn_agent_sources_t src;
        hvn_agent_identity_t ident;
        s_sources(&src, &ident);
        if (broken == 0)
            src.meminfo_path = "/nonexistent/meminfo";
        else
            src.instances_path = "/denied";
        hvn_node_t node;
        cr_expect_eq(hvn_agent_collect(&src, &ident, NULL, &node), -1, "case %d", broken);
    }
}

Test(agent, this_host_has_a_name_and_cpus)
{
    char fqdn[256], host[256];
    cr_assert_eq(hvn_agent_fqdn(fqdn, sizeof fqdn), 0);
    cr_assert_eq(hvn_agent_short_host(host, sizeof host), 0);
    cr_expect_null(strchr(host, '.'));
    cr_expect_eq(strncmp(fqdn, host, strlen(host)), 0, "%s starts with %s", fqdn, host);
    cr_expect_eq(hvn_agent_online_cpus(), sysconf(_SC_NPROCESSORS_ONLN));
}

// --------------------------------------------------------------------------
//  libvirt

#ifdef HVN_HAVE_LIBVIRT
Test(agent, libvirt_test_driver_gives_domains_and_hypervisor)
{
    hvn_agent_libvirt_t *lv = hvn_agent_libvirt_new("test:///default");
    cr_assert_not_null(lv);
    hvn_agent_virt_t virt;
    cr_assert_eq(hvn_agent_libvirt_read(lv, &virt), 0);
    //  test:///default: one running domain "test", 2 vCPUs, 2 GiB
    cr_expect_str_eq(virt.type, "TEST");
    cr_expect_gt(virt.version, 0);
    cr_expect_eq(virt.running_vms, 1);
    cr_expect_eq(virt.vcpus_used, 2);
    cr_expect_eq(virt.memory_mb_used, 2048);
    hvn_agent_libvirt_destroy(&lv);
    cr_expect_null(lv);
    hvn_agent_libvirt_destroy(&lv);
}

Test(agent, libvirt_unreachable_uri_fails_each_read_and_keeps_trying)
{
    hvn_agent_libvirt_t *lv = hvn_agent_libvirt_new("test:///nonexistent/file.xml");
    cr_assert_not_null(lv);
    hvn_agent_virt_t virt = {.running_vms = 42};
    cr_expect_eq(hvn_agent_libvirt_read(lv, &virt), -1);
    cr_expect_eq(hvn_agent_libvirt_read(lv, &virt), -1);
    cr_expect_eq(virt.running_vms, 42, "a failed read leaves *out alone");
    hvn_agent_libvirt_destroy(&lv);
}
#endif
