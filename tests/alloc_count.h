/*  alloc_count.h — heap allocations counted per thread, for the benchmarks
    (bench/) and the suites that assert a path does not allocate.

    A program linking alloc_count.c gets its malloc, calloc and realloc from
    there (ELF interposition: the calls of libhvn, libczmq, libzmq and libc
    land there too), which forward them to glibc's __libc_* functions and
    count those a thread makes between alloc_count_start() and
    alloc_count_stop(). Under AddressSanitizer, which owns malloc, nothing
    is defined or counted and ALLOC_COUNTING is 0.
*/
#ifndef ALLOC_COUNT_H_INCLUDED
#define ALLOC_COUNT_H_INCLUDED

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOC_COUNTING 0
#endif
#endif
#ifndef ALLOC_COUNTING
#define ALLOC_COUNTING 1
#endif

//  Sets the calling thread's count to 0 and counts its allocations from now.
void alloc_count_start(void);

//  Stops counting on the calling thread. Returns the allocations it made
//  since alloc_count_start() (0 when ALLOC_COUNTING is 0).
unsigned long alloc_count_stop(void);

#endif
