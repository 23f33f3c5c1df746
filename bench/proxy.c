/*  proxy.c — bench_proxy FRONTEND BACKEND [HWM]: the ceiling the broker is
    measured against. A bare zmq_proxy between an XSUB (publishers connect)
    and an XPUB (subscribers connect), every option at libzmq's default
    (high water marks 1000), no validation, no cache. With HWM, the XSUB's
    receive and the XPUB's send high water marks are HWM instead: given
    the broker's (100 000), it queues what the broker queues and drops
    nothing the broker would not.

    It installs no signal handler: SIGTERM's default action ends it at once
    (a handler around zmq_proxy can be missed, see DESIGN.md).
*/
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

//  Returns 0 never (zmq_proxy runs until the process is killed), 1 when a
//  socket cannot be bound, 2 on bad usage.
int main(int argc, char **argv)
{
    int hwm = argc == 4 ? atoi(argv[3]) : 0;
    if ((argc != 3 && argc != 4) || (argc == 4 && hwm <= 0)) {
        fprintf(stderr, "usage: bench_proxy FRONTEND BACKEND [HWM]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *frontend = zmq_socket(ctx, ZMQ_XSUB);
    void *backend = zmq_socket(ctx, ZMQ_XPUB);
    if (hwm > 0 && (zmq_setsockopt(frontend, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
                    zmq_setsockopt(backend, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0)) {
        fprintf(stderr, "bench_proxy: cannot set HWM: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    if (zmq_bind(frontend, argv[1]) != 0 || zmq_bind(backend, argv[2]) != 0) {
        fprintf(stderr, "bench_proxy: cannot bind: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    zmq_proxy(frontend, backend, NULL);
    fprintf(stderr, "bench_proxy: proxy ended: %s\n", zmq_strerror(zmq_errno()));
    return 1;
}
