#!/usr/bin/env bash
# Throw-away PostgreSQL cluster on loopback, for the test suite.
#
#   scripts/pg-test-cluster.sh start   # init (if needed) + start, print the URL
#   scripts/pg-test-cluster.sh url     # print the URL
#   scripts/pg-test-cluster.sh stop    # stop and delete the cluster
#
# Environment: MANARA_PG_DIR (default /tmp/manara-pg), MANARA_PG_PORT (default 54329).
# PostgreSQL refuses to run as root: as root, the server runs as the system user
# `postgres` (created if missing). Auth is `trust` for the superuser `manara`.
set -euo pipefail

PG_DIR="${MANARA_PG_DIR:-/tmp/manara-pg}"
PG_PORT="${MANARA_PG_PORT:-54329}"
die() { echo "pg-test-cluster: $*" >&2; exit 1; }

[[ -n "$PG_DIR" ]] || die "MANARA_PG_DIR is empty"
PG_DIR="$(realpath -m "$PG_DIR")"
case "$PG_DIR" in
    / | /tmp | /root | /home | /var | /usr | /etc) die "refusing to use MANARA_PG_DIR='$PG_DIR'" ;;
esac
DATA="$PG_DIR/data"
LOG="$PG_DIR/postgres.log"
MARKER="$PG_DIR/.manara-pg-test"

find_bindir() {
    local initdb
    initdb="$(ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$initdb" ]]; then
        dirname "$initdb"
    elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        return 1
    fi
}

# Run a PostgreSQL binary, as `postgres` when we are root. Runs from $PG_DIR so
# that the server user never needs access to the caller's working directory.
as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

ensure_pg_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        useradd -r -M -s /usr/sbin/nologin postgres
    fi
}

own_dir() {
    if [[ "$(id -u)" -eq 0 ]]; then
        chown -R postgres: "$PG_DIR"
    fi
}

current_port() {
    if [[ -f "$PG_DIR/port" ]]; then cat "$PG_DIR/port"; else echo "$PG_PORT"; fi
}

url() {
    echo "postgresql+psycopg://manara@127.0.0.1:$(current_port)/postgres"
}

# wait_ready SECONDS: poll pg_isready on the loopback port.
wait_ready() {
    local port i
    port="$(current_port)"
    for ((i = 0; i < $1 * 2; i++)); do
        if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U manara -d postgres; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

cmd_start() {
    BIN="$(find_bindir)" || die "PostgreSQL server binaries not found (apt-get install postgresql)"
    ensure_pg_user

    if [[ -d "$PG_DIR" && ! -f "$MARKER" && -n "$(ls -A "$PG_DIR" 2>/dev/null)" ]]; then
        die "$PG_DIR exists and was not created by this script; refusing to touch it"
    fi
    mkdir -p "$PG_DIR"
    touch "$MARKER"
    own_dir

    if is_running; then
        if wait_ready 10; then
            echo "pg-test-cluster: reusing running cluster in $DATA" >&2
            url
            return 0
        fi
        # A postmaster that died uncleanly (or a zombie pid) makes pg_ctl report
        # "running" forever: the cluster is throw-away, so recreate it.
        echo "pg-test-cluster: cluster in $DATA is unresponsive; recreating it" >&2
        as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 5 >/dev/null 2>&1 || true
        rm -rf "$DATA"
    fi
    if ! is_running; then
        if [[ ! -f "$DATA/PG_VERSION" ]]; then
            rm -rf "$DATA"
            as_pg "$BIN/initdb" -D "$DATA" --auth=trust -U manara -E UTF8 --locale=C --no-sync \
                >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
            cat >>"$DATA/postgresql.conf" <<EOF

# --- manara throw-away test cluster ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DATA'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
            echo "$PG_PORT" >"$PG_DIR/port"
            own_dir
        fi
        # A cluster left over from a crash may keep a stale pid file: pg_ctl handles it.
        as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 30 >/dev/null \
            || { tail -n 30 "$LOG" >&2 || true; die "pg_ctl start failed (log: $LOG)"; }
    fi

    if wait_ready 30; then
        url
        return 0
    fi
    tail -n 30 "$LOG" >&2 || true
    die "server not ready on 127.0.0.1:$(current_port) after 30 s (log: $LOG)"
}

cmd_stop() {
    [[ -d "$PG_DIR" ]] || return 0
    [[ -f "$MARKER" ]] || die "$PG_DIR was not created by this script; refusing to delete it"
    if BIN="$(find_bindir)" && is_running; then
        as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null || true
    fi
    rm -rf "$PG_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) url ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
