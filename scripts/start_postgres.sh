#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the storage tests.
#
#   eval "$(scripts/start_postgres.sh)"      # installs if needed, starts, exports the URL
#   scripts/start_postgres.sh stop           # stops it (data kept for the next start)
#
# Idempotent: a second run finds the cluster initialised and running and only
# prints the URL again. Installs the Debian package `postgresql` when no
# server binaries are found (needs root or sudo). The cluster lives in
# $OPTICAL_MEMORY_PG_DIR (default /tmp/optical-memory-pg), listens on
# 127.0.0.1:$OPTICAL_MEMORY_PG_PORT (default 54329) only, and holds one
# database and one login role for the tests. Progress goes to stderr; stdout
# is exactly one line, the export of OPTICAL_MEMORY_TEST_PG_URL.
set -euo pipefail

PORT="${OPTICAL_MEMORY_PG_PORT:-54329}"
DATA="${OPTICAL_MEMORY_PG_DIR:-/tmp/optical-memory-pg}"
DB_USER="optical"
DB_PASS="optical"
DB_NAME="optical_memory"
URL="postgresql://${DB_USER}:${DB_PASS}@127.0.0.1:${PORT}/${DB_NAME}"

log() { echo "start_postgres: $*" >&2; }

find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

BINDIR="$(find_bindir)"
if [ -z "$BINDIR" ]; then
    log "no PostgreSQL server found; installing the Debian package"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)"
    if [ -z "$BINDIR" ]; then
        log "installing postgresql did not provide initdb"
        exit 1
    fi
fi

# The server refuses to run as root: run it as the `postgres` system user then.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DATA" postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

pg_running() { as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

if [ "${1:-start}" = "stop" ]; then
    if [ -f "$DATA/PG_VERSION" ] && pg_running; then
        as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >&2
    fi
    exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initialising a cluster in $DATA"
    mkdir -p "$DATA"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$DATA"; fi
    chmod 700 "$DATA"
    as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >&2
fi

if ! pg_running; then
    log "starting the server on 127.0.0.1:$PORT"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DATA -c max_connections=200" \
        start >&2
fi

psql_admin() { as_pg "$BINDIR/psql" -h "$DATA" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    log "creating role $DB_USER"
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    log "creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi

log "ready: $URL"
echo "export OPTICAL_MEMORY_TEST_PG_URL=$URL"
