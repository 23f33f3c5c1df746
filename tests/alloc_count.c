/*  alloc_count.c — the counting malloc, calloc and realloc (alloc_count.h).
*/
#include "alloc_count.h"

#include <stddef.h>

static __thread int s_counting;         //  Count this thread's calls now
static __thread unsigned long s_allocs; //  Calls counted

#if ALLOC_COUNTING
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

//  Returns __libc_malloc's block, counted.
void *malloc(size_t size)
{
    if (s_counting)
        s_allocs++;
    return __libc_malloc(size);
}

//  Returns __libc_calloc's block, counted.
void *calloc(size_t count, size_t size)
{
    if (s_counting)
        s_allocs++;
    return __libc_calloc(count, size);
}

//  Returns __libc_realloc's block, counted.
void *realloc(void *ptr, size_t size)
{
    if (s_counting)
        s_allocs++;
    return __libc_realloc(ptr, size);
}
#endif

//  Returns nothing; the calling thread counts from 0.
void alloc_count_start(void)
{
    s_allocs = 0;
    s_counting = 1;
}

//  Returns the calling thread's count, which stops.
unsigned long alloc_count_stop(void)
{
    s_counting = 0;
    return s_allocs;
}
