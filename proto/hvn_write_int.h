/*  hvn_write_int.h — a whole buffer written to a file descriptor: what the
    publisher's state file (hvn_pubstate) and the broker's (hvn_state) are
    written with. Internal to proto/ (hvni_: not libhvn's API, not
    exported).
*/
#ifndef HVN_WRITE_INT_H_INCLUDED
#define HVN_WRITE_INT_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Returns 0 when all size bytes of data were written to fd (short writes
//  and EINTR retried), -1 with errno set.
int hvni_write_all(int fd, const void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
