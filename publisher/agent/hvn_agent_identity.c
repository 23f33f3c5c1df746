/*  hvn_agent_identity.c — a node uuid that survives restarts.

    The uuid is a name-based (SHA-1) uuid of the machine id and the
    hypervisor hostname under a namespace fixed for this project, so the same
    machine with the same name always derives the same uuid. It is derived
    once and then kept in the state directory: renaming the host later does
    not change the node's identity, and a lost state file derives the same
    uuid again as long as neither input changed.
*/
#include "hvn_agent_collect.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

//  The namespace of every hvnotify node uuid (never change it: every
//  derived uuid would change with it)
static const char *s_namespace = "c3b2dbad-9658-4824-8add-04e39893bd14";

//  Writes the v5 uuid of "<machine_id>:<hostname>". Returns 0.
int hvn_agent_uuid_derive(const char *machine_id, const char *hostname, char out[37])
{
    assert(machine_id && hostname && out);
    uuid_t ns, uuid;
    int rc = uuid_parse(s_namespace, ns);
    assert(rc == 0);
    (void)rc;
    char name[512];
    int len = snprintf(name, sizeof name, "%s:%s", machine_id, hostname);
    if (len < 0 || (size_t)len >= sizeof name)
        len = (int)sizeof name - 1;
    uuid_generate_sha1(uuid, ns, name, (size_t)len);
    uuid_unparse_lower(uuid, out);
    return 0;
}

//  Reads the first line of path into buf, without its newline. Returns its
//  length, or -1 when the file cannot be read.
static int s_read_line(const char *path, char *buf, size_t size)
{
    FILE *file = fopen(path, "re");
    if (!file)
        return -1;
    char *got = fgets(buf, (int)size, file);
    fclose(file);
    if (!got)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return (int)strlen(buf);
}

//  Returns true when text is a canonical uuid other than the nil uuid.
static bool s_uuid_valid(const char *text)
{
    uuid_t uuid;
    return strlen(text) == HVN_UUID_STR_LEN && uuid_parse(text, uuid) == 0 && !uuid_is_null(uuid);
}

//  Writes text and a newline to path atomically: a temporary file beside
//  it, fsync, rename, fsync of the directory. Returns 0, or -1 with errno.
static int s_write_atomic(const char *dir, const char *path, const char *text)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        saved = ok ? errno : saved;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

//  Returns 0 when the uuid was read, 1 when derived and saved, -1 when it
//  could not be saved.
int hvn_agent_uuid_load(const char *state_dir, const char *machine_id_path, const char *hostname,
                        char out[37])
{
    assert(state_dir && machine_id_path && hostname && out);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", state_dir, HVN_AGENT_UUID_FILE) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char line[128];
    int len = s_read_line(path, line, sizeof line);
    if (len >= 0 && s_uuid_valid(line)) {
        uuid_t uuid;
        uuid_parse(line, uuid);
        uuid_unparse_lower(uuid, out);
        return 0;
    }
    if (len >= 0 || errno != ENOENT)
        zsys_warning("%s is unreadable or not a uuid; deriving the node uuid again", path);

    char machine_id[128];
    if (s_read_line(machine_id_path, machine_id, sizeof machine_id) > 0)
        hvn_agent_uuid_derive(machine_id, hostname, out);
    else {
        zsys_warning("no machine id in %s; this node gets a random uuid", machine_id_path);
        hvn_uuid4_str(out);
    }
    if (s_write_atomic(state_dir, path, out) != 0)
        return -1;
    return 1;
}

//  Returns 0 when state_dir holds no node uuid any more, -1 otherwise.
int hvn_agent_uuid_forget(const char *state_dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", state_dir, HVN_AGENT_UUID_FILE) >= (int)sizeof path)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

//  Returns the first 53 bits of the uuid as a positive integer, or -1.
int64_t hvn_agent_node_id(const char *uuid)
{
    uuid_t raw;
    if (!uuid || uuid_parse(uuid, raw) != 0)
        return -1;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = bits << 8 | raw[i];
    int64_t id = (int64_t)(bits >> 11);
    return id > 0 ? id : 1;
}
