/*  fuzz_end.c — the snapshot reply parser against hostile END bodies.

    A subscriber asking a broker for a snapshot gets ITEM messages (the
    message decoder's business) and one END, whose body hvn_end_decode()
    parses. The input is that body. Whatever the bytes:

    - the answer is HVN_OK or one of the reasons the parser names, with a
      detail; a refusal leaves the hvn_end_t empty;
    - an accepted END has a non-empty UTF-8 broker_id and publishers sorted
      by instance without duplicates, and packed again as a broker packs it
      decodes to the same;
    - the reader every peer-sent body goes through (hvni_mp_read) agrees
      with msgpack-c: it reads a body exactly when msgpack_unpack() reads
      it whole, asked only of bodies the harness's own pre-scan bounds.
*/
#include "hvn_fuzz.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "hvn_mpread.h"
#include "hvn_proto.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

//  Returns nothing; packs the END as the broker does into sbuf.
static void s_pack_end(const hvn_end_t *end, msgpack_sbuffer *sbuf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    size_t id_len = strlen(end->broker_id);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "broker_id", 9);
    msgpack_pack_str_with_body(&pk, end->broker_id, id_len);
    msgpack_pack_str_with_body(&pk, "count", 5);
    msgpack_pack_uint64(&pk, end->count);
    msgpack_pack_str_with_body(&pk, "publishers", 10);
    msgpack_pack_map(&pk, end->publisher_count);
    for (size_t i = 0; i < end->publisher_count; i++) {
        char text[HVN_UUID_STR_LEN + 1];
        uuid_unparse_lower(end->publishers[i].instance, text);
        msgpack_pack_str_with_body(&pk, text, HVN_UUID_STR_LEN);
        msgpack_pack_uint64(&pk, end->publishers[i].seq);
    }
}

//  Returns nothing; aborts unless an accepted END is what the parser
//  promises and survives being packed again.
static void s_check_accepted(const hvn_end_t *end, const char *detail)
{
    S_CHECK(detail && detail[0] == '\0');
    size_t id_len = strnlen(end->broker_id, sizeof(end->broker_id));
    S_CHECK(id_len > 0 && id_len < sizeof(end->broker_id));
    S_CHECK(hvn_utf8_valid(end->broker_id, id_len));
    S_CHECK(end->publisher_count <= HVN_END_PUBLISHERS_MAX);
    S_CHECK(end->publisher_count == 0 || end->publishers);
    for (size_t i = 1; i < end->publisher_count; i++)
        S_CHECK(memcmp(end->publishers[i - 1].instance, end->publishers[i].instance, 16) < 0);

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    s_pack_end(end, &sbuf);
    hvn_end_t again;
    const char *again_detail = NULL;
    S_CHECK(hvn_end_decode(sbuf.data, sbuf.size, &again, &again_detail) == HVN_OK);
    S_CHECK(strcmp(again.broker_id, end->broker_id) == 0 && again.count == end->count);
    S_CHECK(again.publisher_count == end->publisher_count);
    if (end->publisher_count)
        S_CHECK(memcmp(again.publishers, end->publishers,
                       end->publisher_count * sizeof(*end->publishers)) == 0);
    hvn_end_clear(&again);
    msgpack_sbuffer_destroy(&sbuf);
}

//  Returns nothing; aborts unless the reader reads what msgpack-c reads
//  whole, and nothing else.
static void s_check_reader(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    bool whole = hvn_fuzz_bounded(data, size, false);
    bool prefix = hvn_fuzz_bounded(data, size, true);
    S_CHECK(!whole || prefix);
    hvni_mp_t tokens = {NULL, 0, 0};
    bool read = hvni_mp_read(&tokens, data, size) != NULL;
    hvni_mp_release(&tokens);
    S_CHECK(!read || whole);
    msgpack_zone zone;
    S_CHECK(msgpack_zone_init(&zone, 4096));
    msgpack_object root;
    size_t offset = 0;
    //  Unbounded containers would make msgpack-c allocate for elements
    //  that are not there: only ask it about what the pre-scan passed
    if (prefix) {
        msgpack_unpack_return rc = msgpack_unpack((const char *)data, size, &offset, &zone, &root);
        if (rc == MSGPACK_UNPACK_SUCCESS)
            S_CHECK(whole && offset == size && read);
        else if (rc == MSGPACK_UNPACK_EXTRA_BYTES)
            S_CHECK(!whole && offset < size && !read);
        else if (rc != MSGPACK_UNPACK_NOMEM_ERROR)
            S_CHECK(!read);
    }
    msgpack_zone_destroy(&zone);
}

//  Returns 0 after the input, as an END body, went through every check.
int hvn_fuzz_end(const uint8_t *data, size_t size)
{
    hvn_end_t end;
    memset(&end, 0x5A, sizeof(end));
    const char *detail = NULL;
    hvn_reason_t reason = hvn_end_decode(data, size, &end, &detail);
    S_CHECK(reason == HVN_OK || reason == HVN_R_TOO_BIG || reason == HVN_R_MSGPACK ||
            reason == HVN_R_NOT_MAP || reason == HVN_R_MISSING_KEY || reason == HVN_R_WRONG_TYPE ||
            reason == HVN_R_BAD_VALUE);
    if (reason == HVN_OK)
        s_check_accepted(&end, detail);
    else
        S_CHECK(detail && detail[0] != '\0' && end.publisher_count == 0 && !end.publishers);
    hvn_end_clear(&end);
    hvn_end_clear(&end);
    S_CHECK(hvn_end_decode(data, size, &end, NULL) == reason);
    hvn_end_clear(&end);
    s_check_reader(data, size);
    return 0;
}

#ifdef HVN_FUZZ_LIBFUZZER
//  libFuzzer's entry point. Returns 0.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return hvn_fuzz_end(data, size);
}
#endif
