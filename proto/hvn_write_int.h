/*  hvn_write_int.h — a whole buffer written to a file descriptor, and a
    file replaced atomically: what the publisher's state file
    (hvn_pubstate), the broker's (hvn_state) and the bridge's are written
    with. Internal to proto/ (hvni_: not libhvn's API, not
    exported).
*/
#ifndef HVN_WRITE_INT_H_INCLUDED
#define HVN_WRITE_INT_H_INCLUDED

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Returns 0 when all size bytes of data were written to fd (short writes
//  and EINTR retried), -1 with errno set.
int hvni_write_all(int fd, const void *data, size_t size);

//  Returns 0 when path holds exactly the size bytes of data: they are
//  written to path.tmp (created with mode), synced, renamed over path, and
//  the directory synced so that the rename outlives a crash; -1 with
//  errno set and path untouched (path.tmp removed).
int hvni_replace_file(const char *path, const void *data, size_t size, mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
