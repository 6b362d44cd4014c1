#!/usr/bin/env bash
# Install (from Debian's packages) and start a throwaway PostgreSQL server on 127.0.0.1:55432
# for the storage tests, then print the URL to export as MADOGUCHI_TEST_PG_URL.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG_DIR=${PG_DIR:-/tmp/madoguchi-pg}
PG_PORT=${PG_PORT:-55432}
if ! "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR" 2>/dev/null || true
  RUN="runuser -u postgres --"
  [ "$(id -u)" = "0" ] || RUN=""
  $RUN "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  $RUN "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" \
    -l "$PG_DIR/server.log" -w start >/dev/null
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
