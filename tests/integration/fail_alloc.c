/*  fail_alloc.c — a fault injector, preloaded (LD_PRELOAD) into a program
    under test, for the paths where memory runs out.

    Once the file named by HVN_FAIL_ALLOC_ARM exists, the first malloc of
    at least HVN_FAIL_ALLOC_MIN bytes made by a thread that is neither the
    program's main thread nor one of libzmq's (named ZMQbg/...) returns
    NULL; every other call, before and after, is glibc's. Not for a
    sanitizer build: AddressSanitizer owns malloc there.
*/
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);

static atomic_int s_fired; //  The one failure happened

//  Returns 1 when this call is the one to fail, else 0.
static int s_due(size_t size)
{
    if (atomic_load(&s_fired))
        return 0;
    const char *min = getenv("HVN_FAIL_ALLOC_MIN");
    const char *arm = getenv("HVN_FAIL_ALLOC_ARM");
    if (!min || !arm || size < strtoul(min, NULL, 10) || access(arm, F_OK) != 0)
        return 0;
    if (syscall(SYS_gettid) == getpid())
        return 0;
    char name[32] = "";
    prctl(PR_GET_NAME, name, 0, 0, 0);
    if (strncmp(name, "ZMQbg", 5) == 0)
        return 0;
    return atomic_exchange(&s_fired, 1) == 0;
}

//  Returns glibc's block, or NULL for the one call that is to fail.
void *malloc(size_t size)
{
    return s_due(size) ? NULL : __libc_malloc(size);
}
