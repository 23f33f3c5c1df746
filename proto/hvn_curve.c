/*  hvn_curve.c — a client socket made a CURVE client of the broker (see
    hvn_curve.h).
*/
#include "hvn_curve.h"

#include <string.h>

int hvn_curve_client_apply(zsock_t *sock, const char *secret_path, const char *server_path,
                           const char *who, char *host, size_t host_size)
{
    static const uint8_t zero[32] = {0};
    zcert_t *client = zcert_load(secret_path);
    zcert_t *server = zcert_load(server_path);
    int rc = -1;
    //  A public certificate loads too, with a secret key of zeros
    if (!client || memcmp(zcert_secret_key(client), zero, 32) == 0)
        zsys_error("%s: '%s' is not a readable secret certificate", who, secret_path);
    else if (!server)
        zsys_error("%s: cannot load broker certificate '%s'", who, server_path);
    else {
        if (host && host_size > 0) {
            const char *bound = zcert_meta(client, "host");
            snprintf(host, host_size, "%s", bound ? bound : "");
        }
        zcert_apply(client, sock);
        zsock_set_curve_serverkey(sock, zcert_public_txt(server));
        rc = 0;
    }
    zcert_destroy(&client);
    zcert_destroy(&server);
    return rc;
}
