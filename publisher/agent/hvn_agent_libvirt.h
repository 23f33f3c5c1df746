/*  hvn_agent_libvirt.h — the hypervisor's view of this host, from libvirt.

    Built only when libvirt was found (HVN_HAVE_LIBVIRT). A read-only
    connection to one URI: the active domains (how many, their vCPUs and
    memory) and the hypervisor's type and version. The connection is opened
    again on the next read when it is not open or has dropped (libvirtd
    restarted); failures are logged once per streak, not on every read.
*/
#ifndef HVN_AGENT_LIBVIRT_H_INCLUDED
#define HVN_AGENT_LIBVIRT_H_INCLUDED

#include "hvn_agent_collect.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _hvn_agent_libvirt_t hvn_agent_libvirt_t;

//  Opens a read-only connection to uri (e.g. "qemu:///system",
//  "test:///default"). When libvirt does not answer yet, the failure is
//  logged and every read tries again, so a daemon started before libvirtd
//  catches up. Returns NULL only when out of memory. The uri is copied.
hvn_agent_libvirt_t *hvn_agent_libvirt_new(const char *uri);

//  Closes the connection and frees. NULL-safe; sets *self_p to NULL.
void hvn_agent_libvirt_destroy(hvn_agent_libvirt_t **self_p);

//  Reads the active domains and the hypervisor's type and version into
//  *out, reconnecting first when the connection dropped. Returns 0, or -1
//  (logged) when libvirt cannot answer; *out is then unchanged.
int hvn_agent_libvirt_read(hvn_agent_libvirt_t *self, hvn_agent_virt_t *out);

#ifdef __cplusplus
}
#endif
#endif
