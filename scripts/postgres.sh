#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 + PostGIS 3 cluster for the test suite and print its URL.
#
#   eval "$(bash scripts/postgres.sh)"     # exports SKYGRID_TEST_POSTGRES_URL
#   bash scripts/postgres.sh stop          # stops the cluster and deletes its folder
#
# Installs Debian's postgresql-15-postgis-3 with apt-get when it is missing (needs root). The cluster lives
# under $SKYGRID_PG_DIR (default /tmp/skygrid-pg), owned by the postgres user, listens on 127.0.0.1 only on
# $SKYGRID_PG_PORT (default 54329) and trusts local connections: it is for tests, never for real data.
set -euo pipefail

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_DIR=${SKYGRID_PG_DIR:-/tmp/skygrid-pg}
PG_PORT=${SKYGRID_PG_PORT:-54329}
PG_DB=${SKYGRID_PG_DB:-skygrid_test}

say() { echo "postgres.sh: $*" >&2; }

run_as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install_packages() {
    if [ -x "$PG_BIN/initdb" ] && [ -f "/usr/share/postgresql/$PG_VERSION/extension/postgis.control" ]; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        say "PostgreSQL $PG_VERSION with PostGIS 3 is missing and installing it needs root (apt-get)"
        exit 1
    fi
    say "installing postgresql-$PG_VERSION-postgis-3 with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "postgresql-$PG_VERSION" "postgresql-$PG_VERSION-postgis-3" >&2
}

start_cluster() {
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
        run_as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >&2
    fi
    if ! run_as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        run_as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
            -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off" start >&2
    fi
}

create_database() {
    local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q)
    if ! "${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE $PG_DB" >&2
    fi
    "${psql[@]}" -d "$PG_DB" -c "CREATE EXTENSION IF NOT EXISTS postgis" >&2
}

stop_cluster() {
    if [ -f "$PG_DIR/data/PG_VERSION" ]; then
        run_as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >&2 || true
    fi
    rm -rf "$PG_DIR"
}

if [ "${1:-start}" = stop ]; then
    stop_cluster
    exit 0
fi
install_packages
start_cluster
create_database
echo "export SKYGRID_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB"
