/*  broker_harness.h — a broker for the broker's unit suites, in the test's
    own process and thread: on fresh inproc endpoints, its loop run by the
    test (bh_pump), with a publisher's XPUB and a service DEALER connected.
    Asserts (Criterion).
*/
#ifndef HVN_BROKER_HARNESS_H_INCLUDED
#define HVN_BROKER_HARNESS_H_INCLUDED

#include <czmq.h>

#include "hvn_broker.h"

#define BH_WAIT_MS 3000 //  Longest wait for something the broker must send

//  Returns nothing; config holds the broker's defaults, named name, on
//  fresh inproc endpoints written into endpoints (frontend, backend,
//  service), unique in this process.
void bh_config(hvn_broker_config_t *config, char endpoints[3][64], const char *name);

//  Returns nothing; *broker runs config, *pub is an XPUB on its frontend
//  that has received the broker's subscription to everything, *dealer a
//  DEALER on its service.
void bh_start(const hvn_broker_config_t *config, hvn_broker_t **broker, zsock_t **pub,
              zsock_t **dealer);

//  Returns nothing; node is the smallest valid node numbered n: id n, uuid
//  00000000-0000-4000-8000-<n in 12 digits>, hypervisor QEMU.
void bh_node(hvn_node_t *node, int n);

//  Returns nothing; runs the broker's loop for about ms milliseconds.
void bh_pump(hvn_broker_t *broker, int ms);

//  Returns nothing; runs the broker's loop until sock is readable
//  (asserted within BH_WAIT_MS).
void bh_pump_until_readable(hvn_broker_t *broker, zsock_t *sock);

#endif
