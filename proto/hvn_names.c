/*  hvn_names.c — the names the wire carries (see hvn_names.h). */
#include "hvn_names.h"
#include "hvn_schema.h"

#include <string.h>

bool hvn_names_has_control(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return true;
    return false;
}

const char *hvn_names_host_check(const char *host)
{
    size_t len = host ? strlen(host) : 0;
    if (len > 0 && len <= HVN_HOST_MAX && !strchr(host, '@') && hvn_utf8_valid(host, len) &&
        !hvn_names_has_control(host, len))
        return NULL;
    return "a host name of 1 to 235 bytes of UTF-8 without '@' or control characters";
}

const char *hvn_names_service_check(const char *service)
{
    size_t len = service ? strlen(service) : 0;
    if (len > 0 && len < HVN_STR_MAX && !strchr(service, ':') && hvn_utf8_valid(service, len) &&
        !hvn_names_has_control(service, len))
        return NULL;
    return "a service name of UTF-8 without ':' or control characters";
}
