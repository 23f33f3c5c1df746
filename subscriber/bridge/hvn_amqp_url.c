/*  hvn_amqp_url.c — the --transport-url parser (see hvn_amqp_url.h).

    The URL is cut in three: scheme, the host list (up to the first '/'),
    and the path (the virtual host). The host list is split on commas, and
    each host on its last '@' (a password's raw '@' would be ambiguous
    otherwise, so only the last one separates), then its credentials on
    the first ':'.
*/
#include "hvn_amqp_url.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SCHEME "rabbit://"

//  Returns nothing; writes the reason of a refusal into err.
static void s_fail(char *err, size_t err_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void s_fail(char *err, size_t err_size, const char *format, ...)
{
    if (!err || err_size == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_size, format, args);
    va_end(args);
}

//  Returns the value of one hex digit, or -1.
static int s_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

//  Returns a heap copy of text[0..len) with %XX sequences decoded, or NULL
//  when a '%' is not followed by two hex digits, the result would hold a
//  NUL or a control character, or memory ran out.
static char *s_decode(const char *text, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)text[i];
        if (c == '%') {
            int hi = i + 2 < len ? s_hex(text[i + 1]) : -1;
            int lo = i + 2 < len ? s_hex(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f) {
            free(out);
            return NULL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

//  Returns 0 after parsing "host[:port]" or "[v6]:port" of text[0..len)
//  into h, -1 (err set) when it is not one.
static int s_parse_hostport(const char *text, size_t len, hvn_amqp_host_t *h, size_t n, char *err,
                            size_t err_size)
{
    const char *end = text + len;
    const char *host = text, *host_end, *colon = NULL;
    if (len && *text == '[') {
        host = text + 1;
        host_end = memchr(host, ']', len - 1);
        if (!host_end) {
            s_fail(err, err_size, "host %zu: '[' without ']'", n);
            return -1;
        }
        if (host_end + 1 < end) {
            if (host_end[1] != ':') {
                s_fail(err, err_size, "host %zu: unexpected text after ']'", n);
                return -1;
            }
            colon = host_end + 1;
        }
    } else {
        colon = memchr(text, ':', len);
        host_end = colon ? colon : end;
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
            s_fail(err, err_size, "host %zu: an IPv6 address goes in brackets ([::1]:5672)", n);
            return -1;
        }
    }
    if (host_end == host) {
        s_fail(err, err_size, "host %zu: no host name", n);
        return -1;
    }
    for (const char *p = host; p < host_end; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-._:%", *p)) {
            s_fail(err, err_size, "host %zu: '%.*s' is not a host name or address", n,
                   (int)(host_end - host), host);
            return -1;
        }
    h->port = HVN_AMQP_URL_PORT;
    if (colon) {
        const char *digits = colon + 1;
        long port = 0;
        if (digits == end) {
            s_fail(err, err_size, "host %zu: ':' without a port", n);
            return -1;
        }
        for (const char *p = digits; p < end; p++) {
            if (!isdigit((unsigned char)*p) || port > 65535) {
                port = -1;
                break;
            }
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535) {
            s_fail(err, err_size, "host %zu: port '%.*s' is not from 1 to 65535", n,
                   (int)(end - digits), digits);
            return -1;
        }
        h->port = (int)port;
    }
    h->host = strndup(host, (size_t)(host_end - host));
    if (!h->host) {
        s_fail(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

//  Returns 0 after parsing one "[user[:pass]@]host[:port]" of text[0..len)
//  into h (the n-th host, from 1), taking prev's credentials when it has
//  none; -1 (err set) otherwise.
static int s_parse_host(const char *text, size_t len, hvn_amqp_host_t *h,
                        const hvn_amqp_host_t *prev, size_t n, char *err, size_t err_size)
{
    if (len == 0) {
        s_fail(err, err_size, "host %zu is empty", n);
        return -1;
    }
    const char *at = NULL;
    for (const char *p = text; p < text + len; p++)
        if (*p == '@')
            at = p;
    const char *hostport = at ? at + 1 : text;
    if (s_parse_hostport(hostport, (size_t)(text + len - hostport), h, n, err, err_size) != 0)
        return -1;
    if (!at) {
        h->user = strdup(prev ? prev->user : "guest");
        h->password = strdup(prev ? prev->password : "guest");
    } else {
        const char *colon = memchr(text, ':', (size_t)(at - text));
        const char *user_end = colon ? colon : at;
        if (user_end == text) {
            s_fail(err, err_size, "host %zu: empty user name before '@'", n);
            return -1;
        }
        h->user = s_decode(text, (size_t)(user_end - text));
        h->password = colon ? s_decode(colon + 1, (size_t)(at - colon - 1)) : strdup("");
        if (!h->user || !h->password) {
            s_fail(err, err_size, "host %zu: bad %%-escape or control character in the %s", n,
                   h->user ? "password" : "user name");
            return -1;
        }
    }
    if (!h->user || !h->password) {
        s_fail(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

hvn_amqp_url_t *hvn_amqp_url_new(const char *text, char *err, size_t err_size)
{
    if (!text || strncmp(text, S_SCHEME, strlen(S_SCHEME)) != 0) {
        const char *sep = text ? strstr(text, "://") : NULL;
        if (sep)
            s_fail(err, err_size, "scheme '%.*s' is not supported (rabbit:// only)",
                   (int)(sep - text), text);
        else
            s_fail(err, err_size, "expected rabbit://USER:PASS@HOST:PORT/VHOST");
        return NULL;
    }
    if (strpbrk(text, "?#")) {
        s_fail(err, err_size, "query parameters and fragments ('?', '#') are not supported");
        return NULL;
    }
    hvn_amqp_url_t *self = calloc(1, sizeof(*self));
    if (!self) {
        s_fail(err, err_size, "out of memory");
        return NULL;
    }
    const char *hosts = text + strlen(S_SCHEME);
    const char *slash = strchr(hosts, '/');
    const char *hosts_end = slash ? slash : hosts + strlen(hosts);
    if (hosts_end == hosts) {
        s_fail(err, err_size, "no host (rabbit://USER:PASS@HOST:PORT/VHOST)");
        goto failed;
    }
    for (const char *p = hosts; p <= hosts_end;) {
        const char *comma = memchr(p, ',', (size_t)(hosts_end - p));
        const char *item_end = comma ? comma : hosts_end;
        if (self->host_count == HVN_AMQP_URL_HOSTS_MAX) {
            s_fail(err, err_size, "more than %d hosts", HVN_AMQP_URL_HOSTS_MAX);
            goto failed;
        }
        hvn_amqp_host_t *h = &self->hosts[self->host_count++];
        const hvn_amqp_host_t *prev = self->host_count > 1 ? h - 1 : NULL;
        if (s_parse_host(p, (size_t)(item_end - p), h, prev, self->host_count, err, err_size) != 0)
            goto failed;
        p = item_end + 1;
    }
    const char *vhost = slash ? slash + 1 : "";
    if (strchr(vhost, '/')) {
        s_fail(err, err_size, "virtual host '%s' holds a '/' (write it %%2F)", vhost);
        goto failed;
    }
    self->vhost = *vhost ? s_decode(vhost, strlen(vhost)) : strdup("/");
    if (!self->vhost) {
        s_fail(err, err_size, "virtual host: bad %%-escape or control character");
        goto failed;
    }
    return self;
failed:
    hvn_amqp_url_destroy(&self);
    return NULL;
}

void hvn_amqp_url_destroy(hvn_amqp_url_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hvn_amqp_url_t *self = *self_p;
    for (size_t i = 0; i < self->host_count; i++) {
        free(self->hosts[i].host);
        free(self->hosts[i].user);
        free(self->hosts[i].password);
    }
    free(self->vhost);
    free(self);
    *self_p = NULL;
}
