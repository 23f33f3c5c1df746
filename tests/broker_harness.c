/*  broker_harness.c — see broker_harness.h. */
#include "broker_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

//  Returns nothing; config and endpoints are set.
void bh_config(hvn_broker_config_t *config, char endpoints[3][64], const char *name)
{
    static int run;
    run++;
    for (int i = 0; i < 3; i++)
        snprintf(endpoints[i], 64, "inproc://%s-%d-%d-%d", name, i, (int)getpid(), run);
    hvn_broker_config_defaults(config);
    config->frontend = endpoints[0];
    config->backend = endpoints[1];
    config->service = endpoints[2];
    config->name = name;
}

//  Returns nothing; the broker and its two sockets are up.
void bh_start(const hvn_broker_config_t *config, hvn_broker_t **broker, zsock_t **pub,
              zsock_t **dealer)
{
    char error[256] = "";
    *broker = hvn_broker_new(config, error, sizeof(error));
    cr_assert_not_null(*broker, "%s", error);
    *pub = zsock_new(ZMQ_XPUB);
    cr_assert_not_null(*pub);
    zsock_set_sndhwm(*pub, 0);
    cr_assert_eq(zsock_connect(*pub, "%s", config->frontend), 0);
    bh_pump_until_readable(*broker, *pub);
    zframe_t *subscription = zframe_recv(*pub);
    cr_assert_eq(zframe_size(subscription), 1);
    cr_assert_eq(zframe_data(subscription)[0], 1, "the broker subscribes to everything");
    zframe_destroy(&subscription);
    *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(*dealer);
    cr_assert_eq(zsock_connect(*dealer, "%s", config->service), 0);
}

//  Returns nothing; node n is set.
void bh_node(hvn_node_t *node, int n)
{
    hvn_node_init(node);
    node->id = n;
    snprintf(node->uuid, sizeof(node->uuid), "00000000-0000-4000-8000-%012d", n);
    snprintf(node->hypervisor_type, sizeof(node->hypervisor_type), "QEMU");
}

//  Returns nothing; the broker ran for ms.
void bh_pump(hvn_broker_t *broker, int ms)
{
    int64_t until = zclock_mono() + ms;
    while (zclock_mono() < until)
        hvn_broker_poll(broker, 1);
}

//  Returns nothing; sock is readable.
void bh_pump_until_readable(hvn_broker_t *broker, zsock_t *sock)
{
    int64_t deadline = zclock_mono() + BH_WAIT_MS;
    while (!(zsock_events(sock) & ZMQ_POLLIN)) {
        cr_assert_lt(zclock_mono(), deadline, "nothing arrived");
        hvn_broker_poll(broker, 2);
    }
}
