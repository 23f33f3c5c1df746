/*  rmq.c — the test run's own RabbitMQ, through rabbit.sh (see rmq.h). */
#include "rmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_SCRIPT HVN_SOURCE_DIR "/tests/bridge/rabbit.sh"

//  Returns the exit status of a shell command, -1 if it could not run.
static int s_run(const char *command, char **out)
{
    FILE *pipe = popen(command, "r");
    if (!pipe)
        return -1;
    size_t size = 0, len = 0;
    char *buf = NULL;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) {
        if (out) {
            char *more = realloc(buf, size = len + n + 1);
            if (!more)
                break;
            buf = more;
            memcpy(buf + len, chunk, n);
            len += n;
            buf[len] = '\0';
        }
    }
    int status = pclose(pipe);
    if (out)
        *out = buf ? buf : strdup("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

//  Returns a free TCP port on 127.0.0.1, or 0 (usable outside a test,
//  unlike it_free_port).
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

int rmq_start(rmq_t *rmq)
{
    memset(rmq, 0, sizeof(*rmq));
    snprintf(rmq->dir, sizeof(rmq->dir), "/tmp/hvn-rmq-XXXXXX");
    if (!mkdtemp(rmq->dir))
        return -1;
    int dist = s_free_port(), epmd = s_free_port();
    rmq->port = s_free_port();
    while (!dist || !epmd || !rmq->port || dist == rmq->port || epmd == rmq->port || epmd == dist)
        epmd = s_free_port(), dist = s_free_port(), rmq->port = s_free_port();
    snprintf(rmq->url, sizeof(rmq->url), "rabbit://guest:guest@127.0.0.1:%d/", rmq->port);
    //  The node is stopped by a watcher should this process end without
    //  stopping it (rabbit.sh)
    char owner[32];
    snprintf(owner, sizeof(owner), "%d", (int)getpid());
    setenv("HVN_TEST_OWNER", owner, 1);
    char command[512];
    snprintf(command, sizeof(command), "%s start %s %d %d %d", S_SCRIPT, rmq->dir, rmq->port, dist,
             epmd);
    return s_run(command, NULL) == 0 ? 0 : -1;
}

int rmq_resume(rmq_t *rmq)
{
    char command[512];
    snprintf(command, sizeof(command), "%s start %s", S_SCRIPT, rmq->dir);
    return s_run(command, NULL) == 0 ? 0 : -1;
}

int rmq_halt(rmq_t *rmq)
{
    char command[512];
    snprintf(command, sizeof(command), "%s stop %s", S_SCRIPT, rmq->dir);
    return s_run(command, NULL) == 0 ? 0 : -1;
}

void rmq_stop(rmq_t *rmq)
{
    if (!rmq->dir[0])
        return;
    rmq_halt(rmq);
    char command[512];
    snprintf(command, sizeof(command), "rm -rf '%s'", rmq->dir);
    s_run(command, NULL);
    rmq->dir[0] = '\0';
}

int rmq_ctl(const rmq_t *rmq, const char *args, char **out)
{
    char command[1024];
    snprintf(command, sizeof(command), "%s ctl %s %s 2>&1", S_SCRIPT, rmq->dir, args);
    return s_run(command, out);
}

void rmq_export(const rmq_t *rmq)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", rmq->port);
    setenv("HVN_RMQ_DIR", rmq->dir, 1);
    setenv("HVN_RMQ_PORT", port, 1);
}

bool rmq_get(rmq_t *rmq)
{
    const char *dir = getenv("HVN_RMQ_DIR"), *port = getenv("HVN_RMQ_PORT");
    if (!dir || !port)
        return false;
    memset(rmq, 0, sizeof(*rmq));
    snprintf(rmq->dir, sizeof(rmq->dir), "%s", dir);
    rmq->port = atoi(port);
    snprintf(rmq->url, sizeof(rmq->url), "rabbit://guest:guest@127.0.0.1:%d/", rmq->port);
    return true;
}

int rmq_start_shared(rmq_t *rmq)
{
    if (rmq_start(rmq) != 0)
        return -1;
    rmq_export(rmq);
    return 0;
}
