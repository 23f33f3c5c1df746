/*  hvn_write.c — see hvn_write_int.h. */
#include "hvn_write_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

//  Returns what hvn_write_int.h says.
int hvni_replace_file(const char *path, const void *data, size_t size, mode_t mode)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    const char *slash = strrchr(path, '/');
    char *dir = malloc(slash ? (size_t)(slash - path) + 2 : 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, len + 5, "%s.tmp", path);
    if (slash)
        snprintf(dir, (size_t)(slash - path) + 2, "%.*s", (int)(slash - path + (slash == path)),
                 path);
    else
        snprintf(dir, 2, ".");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    int rc = fd < 0 ? -1 : hvni_write_all(fd, data, size);
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        saved = errno;
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        saved = errno;
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    else {
        int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0) {
            fsync(dirfd);
            close(dirfd);
        }
    }
    free(tmp);
    free(dir);
    errno = saved;
    return rc;
}
