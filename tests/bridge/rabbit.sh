#!/bin/sh
# rabbit.sh — a RabbitMQ of the test run's own, in a temporary directory.
#   rabbit.sh start DIR NODE_PORT DIST_PORT EPMD_PORT   start, wait until it serves
#   rabbit.sh ctl DIR ARGS...                           rabbitmqctl on that node
#   rabbit.sh stop DIR                                  stop it and its epmd
# With HVN_TEST_OWNER=PID in the environment, start also leaves a watcher that
# stops the node if process PID ends without stopping it.
# Everything (node name, data, logs, config, Erlang cookie, epmd port) lives in
# DIR, so the run needs no RabbitMQ set up on the machine, and leaves none running.
# Runs as root: the server scripts are called directly, not through the
# wrapper that switches to the rabbitmq user.
set -e
RMQ=/usr/lib/rabbitmq/bin
cmd=$1
dir=$2
shift 2

env_of() {
    . "$dir/env"
    export HOME="$dir" RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT ERL_EPMD_PORT
    export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/pid"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
}

case "$cmd" in
start)
    if [ ! -f "$dir/env" ]; then
        mkdir -p "$dir/mnesia" "$dir/log"
        cat > "$dir/env" <<END
RABBITMQ_NODENAME=hvnt$$@localhost
RABBITMQ_NODE_PORT=$1
RABBITMQ_DIST_PORT=$2
ERL_EPMD_PORT=$3
END
        # loopback_users: the tests log in as guest; the node listens on 127.0.0.1 only
        printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$1" \
            > "$dir/rabbitmq.conf"
        echo '[].' > "$dir/enabled_plugins"
        : > "$dir/rabbitmq-env.conf"
    fi
    env_of
    setsid "$RMQ/rabbitmq-server" > "$dir/log/server.out" 2>&1 < /dev/null &
    if ! "$RMQ/rabbitmqctl" -q wait --timeout 90 "$dir/pid" > "$dir/log/wait.out" 2>&1; then
        echo "rabbit.sh: RabbitMQ did not start; its output:" >&2
        tail -n 30 "$dir/log/server.out" "$dir/log/wait.out" >&2
        exit 1
    fi
    # HVN_TEST_OWNER: the pid of the run that owns this node. Should it die
    # without stopping the node (killed at a timeout), a watcher stops it;
    # the watcher ends by itself once the node is stopped (no pid file).
    if [ -n "${HVN_TEST_OWNER:-}" ]; then
        setsid sh -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2/pid" ]; do sleep 1; done
                      if [ -f "$2/pid" ]; then "$3" stop "$2"; fi' \
            watcher "$HVN_TEST_OWNER" "$dir" "$(cd "$(dirname "$0")" && pwd)/rabbit.sh" < /dev/null > /dev/null 2>&1 &
    fi
    ;;
ctl)
    env_of
    exec "$RMQ/rabbitmqctl" -q "$@"
    ;;
stop)
    [ -f "$dir/env" ] || exit 0
    env_of
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        "$RMQ/rabbitmqctl" -q stop "$dir/pid" > /dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    # The epmd this node started listens on ERL_EPMD_PORT: stop that one only
    epmd -kill > /dev/null 2>&1 || true
    ;;
*)
    echo "usage: rabbit.sh start|ctl|stop DIR ..." >&2
    exit 2
    ;;
esac
