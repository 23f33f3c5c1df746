/*  hvn_agent_libvirt.c — the hypervisor's view of this host, from libvirt.

    One read-only connection. Each read lists the active domains once and
    sums what virDomainGetInfo says of them; type and version come from the
    connection. libvirt's own error printing is silenced and its messages go
    to the agent's log instead, once per failure streak rather than every
    interval.
*/
#include "hvn_agent_libvirt.h"

#include <czmq.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

struct _hvn_agent_libvirt_t {
    char *uri;          //  Connection URI (owned)
    virConnectPtr conn; //  Open connection, or NULL until reconnected
    bool failing;       //  The last attempt failed and was logged
};

//  Swallows libvirt's errors; the caller logs virGetLastErrorMessage().
static void s_silent(void *data, virErrorPtr error)
{
    (void)data;
    (void)error;
}

//  Opens the connection when it is not open (or no longer alive). Returns
//  0 when it is open, -1 when it could not be opened (logged once).
static int s_connect(hvn_agent_libvirt_t *self)
{
    if (self->conn && virConnectIsAlive(self->conn) == 1)
        return 0;
    if (self->conn) {
        virConnectClose(self->conn);
        self->conn = NULL;
    }
    self->conn = virConnectOpenReadOnly(self->uri);
    if (!self->conn) {
        if (!self->failing)
            zsys_error("libvirt %s: cannot connect: %s", self->uri, virGetLastErrorMessage());
        self->failing = true;
        return -1;
    }
    if (self->failing)
        zsys_notice("libvirt %s: connected again", self->uri);
    self->failing = false;
    return 0;
}

//  Returns the new connection wrapper (connected when libvirt answered),
//  or NULL when out of memory.
hvn_agent_libvirt_t *hvn_agent_libvirt_new(const char *uri)
{
    assert(uri);
    virSetErrorFunc(NULL, s_silent);
    hvn_agent_libvirt_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->uri = strdup(uri);
    if (!self->uri) {
        hvn_agent_libvirt_destroy(&self);
        return NULL;
    }
    s_connect(self); //  A failure is logged; the next read tries again
    return self;
}

//  Closes and frees; NULL-safe.
void hvn_agent_libvirt_destroy(hvn_agent_libvirt_t **self_p)
{
    assert(self_p);
    hvn_agent_libvirt_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        virConnectClose(self->conn);
    free(self->uri);
    free(self);
    *self_p = NULL;
}

//  Returns 0 with the hypervisor's view in *out, or -1 (logged).
int hvn_agent_libvirt_read(hvn_agent_libvirt_t *self, hvn_agent_virt_t *out)
{
    assert(self && out);
    if (s_connect(self) != 0)
        return -1;
    hvn_agent_virt_t virt = {0};
    const char *type = virConnectGetType(self->conn);
    unsigned long version = 0;
    virDomainPtr *domains = NULL;
    int count = -1;
    uint64_t memory_kib = 0;
    if (type && virConnectGetVersion(self->conn, &version) == 0)
        count = virConnectListAllDomains(self->conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (count < 0) {
        if (!self->failing)
            zsys_error("libvirt %s: %s", self->uri, virGetLastErrorMessage());
        self->failing = true;
        return -1;
    }
    snprintf(virt.type, sizeof virt.type, "%s", type);
    virt.version = (int64_t)version;
    for (int i = 0; i < count; i++) {
        virDomainInfo info;
        //  A domain that stopped between the list and here is not counted
        if (virDomainGetInfo(domains[i], &info) == 0) {
            virt.running_vms++;
            virt.vcpus_used += info.nrVirtCpu;
            memory_kib += info.memory;
        }
        virDomainFree(domains[i]);
    }
    free(domains);
    virt.memory_mb_used = (int64_t)(memory_kib / 1024);
    self->failing = false;
    *out = virt;
    return 0;
}
