/*  hvn_reject.h — counted, rate-limited refusals.

    Every program that reads messages from peers counts what it refuses by
    reason and logs each reason at most once a second (with how many were
    suppressed since), through czmq's zsys log.
*/
#ifndef HVN_REJECT_H_INCLUDED
#define HVN_REJECT_H_INCLUDED

#include "hvn_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Everything declared here is libhvn's public API (exported from libhvn.so)
#pragma GCC visibility push(default)

typedef struct {
    uint64_t count[HVN_R_COUNT];     //  Refusals by reason (index HVN_OK unused)
    int64_t last_log_ms[HVN_R_COUNT]; //  Monotonic time of the last log line
    uint64_t suppressed[HVN_R_COUNT]; //  Not logged since that line
    const char *who;                  //  Log prefix, e.g. "broker"
} hvn_rejects_t;

//  Zeroes the counters; who names the program in log lines.
void hvn_rejects_init(hvn_rejects_t *self, const char *who);

//  Counts one refusal and logs it unless this reason was logged in the
//  last second. detail and topic may be NULL.
void hvn_rejects_add(hvn_rejects_t *self, hvn_reason_t reason,
                     const char *detail, const char *topic);

//  Returns the total of all refusals.
uint64_t hvn_rejects_total(const hvn_rejects_t *self);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
