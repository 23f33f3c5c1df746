/*  index_support.h — what the hvn-index end-to-end suites (it_index_*.c)
    share, over tests/integration/support.h.
*/
#ifndef INDEX_SUPPORT_H_INCLUDED
#define INDEX_SUPPORT_H_INCLUDED

#include "support.h"

#include <jansson.h>

//  Runs the program argv (as it_spawn does) and reads its stdout to the
//  end, at most timeout_ms. Returns what it printed parsed as JSON (the
//  caller decrefs), or NULL when that was nothing parsable.
json_t *ix_stdout_json(const char *const argv[], int timeout_ms);

#endif
