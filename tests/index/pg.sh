#!/bin/sh
# pg.sh — a throwaway PostgreSQL cluster for the tests, in a directory of
# their own, on a loopback port, as a dedicated user (PostgreSQL refuses to
# run as root).
#   pg.sh start DIR PORT   initdb in DIR/pg, start it; prints its URI
#   pg.sh stop DIR         stops it (immediate) and removes DIR/pg
#   pg.sh down DIR         stops it (immediate), keeping its data
#   pg.sh up DIR PORT      starts it again
# As root, the cluster runs as the user hvn-test-pg, made when missing.
# With HVN_TEST_OWNER=PID in the environment, start and up also leave a
# watcher that stops the cluster if process PID ends without stopping it.
set -eu
bin=/usr/lib/postgresql/15/bin
user=hvn-test-pg
cmd=$1 dir=$2
data=$dir/pg/data

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

case $cmd in
start)
  port=$3
  if [ "$(id -u)" = 0 ]; then
    id "$user" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
    chmod o+x "$dir"
  fi
  mkdir -p "$dir/pg"
  [ "$(id -u)" = 0 ] && chown "$user" "$dir/pg"
  as_owner "$bin/initdb" -D "$data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 \
    >"$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log" >&2; exit 1; }
  "$0" up "$dir" "$port"
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
  ;;
up)
  port=$3
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/pg/server.log" -w -t 30 \
    -o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
    start >/dev/null || { cat "$dir/pg/server.log" >&2; exit 1; }
  # HVN_TEST_OWNER: the pid of the test that owns this cluster. Should it
  # die without stopping the cluster (killed at a timeout), a watcher stops
  # it; the watcher ends by itself once the cluster is down.
  if [ -n "${HVN_TEST_OWNER:-}" ]; then
    setsid sh -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2/postmaster.pid" ]; do sleep 1; done
                  if [ -f "$2/postmaster.pid" ]; then "$3" stop "$4"; fi' \
      watcher "$HVN_TEST_OWNER" "$data" "$(cd "$(dirname "$0")" && pwd)/pg.sh" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  ;;
down)
  as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
  ;;
stop)
  if [ -d "$data" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir/pg"
  ;;
*)
  echo "usage: pg.sh start DIR PORT | stop DIR | down DIR | up DIR PORT" >&2
  exit 2
  ;;
esac
