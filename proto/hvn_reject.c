/*  hvn_reject.c — counted, rate-limited refusals.

    A peer that sends garbage at full speed must not flood the log: each
    reason is logged at most once a second, and the line says how many of
    that reason went unlogged since the previous line. Counting is exact.
*/
#include "hvn_reject.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <string.h>

#define S_LOG_INTERVAL_MS 1000 //  At most one line per reason per interval
#define S_LOG_TEXT_MAX 160     //  Longest detail or topic quoted in a line

//  Returns nothing; dest holds src (at most S_LOG_TEXT_MAX bytes) with every
//  control byte replaced by '?', so a peer cannot forge or split log lines.
static void s_sanitize(char *dest, size_t dest_size, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dest_size; i++) {
        unsigned char c = (unsigned char)src[i];
        dest[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    dest[i] = '\0';
}

//  Returns nothing; all counters are zero.
void hvn_rejects_init(hvn_rejects_t *self, const char *who)
{
    assert(self);
    memset(self, 0, sizeof(*self));
    self->who = who ? who : "hvn";
}

//  Returns nothing; counts the refusal and logs it when this reason has not
//  been logged in the last second.
void hvn_rejects_add(hvn_rejects_t *self, hvn_reason_t reason, const char *detail,
                     const char *topic)
{
    assert(self);
    if (reason <= HVN_OK || reason >= HVN_R_COUNT)
        return;
    self->count[reason]++;
    int64_t now = zclock_mono();
    if (self->count[reason] > 1 && now - self->last_log_ms[reason] < S_LOG_INTERVAL_MS) {
        self->suppressed[reason]++;
        return;
    }
    char clean_detail[S_LOG_TEXT_MAX + 1];
    char clean_topic[S_LOG_TEXT_MAX + 1];
    s_sanitize(clean_detail, sizeof(clean_detail), detail);
    s_sanitize(clean_topic, sizeof(clean_topic), topic);
    zsys_warning("%s: refused a message: %s%s%s%s%s%s (%" PRIu64 " total, %" PRIu64
                 " suppressed since last line)",
                 self->who, hvn_reason_str(reason), detail ? " at '" : "", clean_detail,
                 detail ? "'" : "", topic ? " topic " : "", clean_topic, self->count[reason],
                 self->suppressed[reason]);
    self->last_log_ms[reason] = now;
    self->suppressed[reason] = 0;
}

//  Returns the number of refusals of every reason together.
uint64_t hvn_rejects_total(const hvn_rejects_t *self)
{
    uint64_t total = 0;
    for (int r = HVN_OK + 1; r < HVN_R_COUNT; r++)
        total += self->count[r];
    return total;
}
