/*  hvn_write.c — see hvn_write_int.h. */
#include "hvn_write_int.h"

#include <errno.h>
#include <unistd.h>

//  Returns 0 with every byte written, -1 with errno set.
int hvni_write_all(int fd, const void *data, size_t size)
{
    const char *bytes = data;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, bytes + done, size - done);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            done += (size_t)n;
    }
    return 0;
}
