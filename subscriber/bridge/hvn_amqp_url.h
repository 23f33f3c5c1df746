/*  hvn_amqp_url.h — the --transport-url of hvn-bridge, read as nova.conf
    writes it.

        rabbit://USER:PASS@HOST:PORT/VHOST
        rabbit://u1:p1@host1:5672,u2:p2@host2:5672/nova

    oslo.messaging's TransportURL form: one or more hosts, comma-separated,
    each with its own optional credentials and port; one virtual host for
    all. User, password and virtual host are percent-decoded (a '@', ':' or
    '/' in a password is written %40, %3A, %2F). A host without credentials
    uses the previous host's (guest/guest for the first); a missing port is
    5672; an empty or "/" path is the default virtual host "/". IPv6
    addresses go in brackets ([::1]:5672). Query parameters (?ssl=1) are
    refused: hvn-bridge speaks plain AMQP only.

    The parsed URL is plain data the caller reads; the parser is strict and
    says which part was wrong.
*/
#ifndef HVN_AMQP_URL_H_INCLUDED
#define HVN_AMQP_URL_H_INCLUDED

#include <stddef.h>

#define HVN_AMQP_URL_HOSTS_MAX 16 //  Hosts one URL may name
#define HVN_AMQP_URL_PORT 5672    //  AMQP's port, when none is given

//  One RabbitMQ host of the URL
typedef struct {
    char *host;     //  Name or address, without brackets (heap)
    int port;       //  1..65535
    char *user;     //  Decoded user name (heap)
    char *password; //  Decoded password (heap)
} hvn_amqp_host_t;

//  A parsed transport URL
typedef struct {
    hvn_amqp_host_t hosts[HVN_AMQP_URL_HOSTS_MAX]; //  Tried in this order
    size_t host_count;                             //  1..HVN_AMQP_URL_HOSTS_MAX
    char *vhost;                                   //  Decoded virtual host (heap)
} hvn_amqp_url_t;

//  Parses text. Returns a new URL the caller destroys, or NULL with a
//  one-line reason in err ("host 2: port '70000' is not from 1 to 65535")
//  when text is not a transport URL hvn-bridge can use, or memory ran out.
hvn_amqp_url_t *hvn_amqp_url_new(const char *text, char *err, size_t err_size);

//  Frees the URL. NULL-safe; sets *self_p to NULL.
void hvn_amqp_url_destroy(hvn_amqp_url_t **self_p);

#endif
