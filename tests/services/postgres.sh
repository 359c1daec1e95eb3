#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL 15 for the test suite, from scratch, on loopback.
#   tests/services/postgres.sh start   -> prints the SQLAlchemy URL on the last line
#   tests/services/postgres.sh stop
set -euo pipefail
PORT="${CHILDINDEX_TEST_PG_PORT:-55432}"
ROOT="${CHILDINDEX_TEST_PG_DIR:-/tmp/childindex-test-pg}"
PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
URL="postgresql+psycopg://postgres@127.0.0.1:${PORT}/childindex_test"
# Server settings: the suite's throwaway cluster needs no durability (fsync off); a benchmark wants
# the production setting (bench/databases.py passes "-c fsync=on -c shared_buffers=...").
OPTIONS="${CHILDINDEX_TEST_PG_OPTIONS:--c fsync=off}"

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_server() {
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "PostgreSQL server binaries not found; installing postgresql from Debian" >&2
    if [ "$(id -u)" = "0" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    else
      echo "need root (or an installed PostgreSQL) to run the PostgreSQL tests" >&2; exit 1
    fi
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
}

case "${1:-}" in
  start)
    install_server
    if [ -f "$ROOT/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$ROOT/data" status >/dev/null 2>&1; then
      echo "$URL"; exit 0
    fi
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    if [ "$(id -u)" = "0" ]; then chown postgres: "$ROOT"; fi
    as_pg "$PGBIN/initdb" -D "$ROOT/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$ROOT/data" -l "$ROOT/log" -w -t 60 \
      -o "-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c max_connections=200 $OPTIONS" start >/dev/null
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres childindex_test
    echo "$URL"
    ;;
  stop)
    if [ -d "$ROOT/data" ] && [ -n "$PGBIN" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$ROOT"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
