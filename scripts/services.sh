#!/usr/bin/env bash
# The real services the connector tests talk to, on loopback, thrown away after the run:
# Mosquitto (MQTT), MariaDB (the sql source's MySQL dialect), NATS with JetStream (the event bus)
# and an asyncua OPC UA server simulating a controller (scripts/opcua_test_server.py).
#
#   scripts/services.sh start    # install what is missing (apt-get, as root), start, print KEY=VALUE lines
#   scripts/services.sh stop     # stop them and delete their data
#
# `start` prints one MANARA_TEST_<SERVICE>_URL=... line per service that runs; a service that cannot be
# installed or started is named on stderr and left out (scripts/test.sh fails on that under CI=true).
# Environment: MANARA_SERVICES_DIR (default /tmp/manara-services); ports MANARA_TEST_MQTT_PORT (18830),
# MANARA_TEST_MYSQL_PORT (33069), MANARA_TEST_NATS_PORT (42229), MANARA_TEST_OPCUA_PORT (48400).
set -euo pipefail

cd "$(dirname "$0")/.."
DIR="${MANARA_SERVICES_DIR:-/tmp/manara-services}"
DIR="$(realpath -m "$DIR")"
case "$DIR" in
    / | /tmp | /root | /home | /var | /usr | /etc) echo "services: refusing MANARA_SERVICES_DIR='$DIR'" >&2; exit 2 ;;
esac
MQTT_PORT="${MANARA_TEST_MQTT_PORT:-18830}"
MYSQL_PORT="${MANARA_TEST_MYSQL_PORT:-33069}"
NATS_PORT="${MANARA_TEST_NATS_PORT:-42229}"
OPCUA_PORT="${MANARA_TEST_OPCUA_PORT:-48400}"
PYTHON="${PYTHON:-.venv/bin/python}"

say() { echo "services: $*" >&2; }

wait_port() {  # wait_port PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

install_missing() {
    local want=()
    command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || want+=(mosquitto)
    [[ -x /usr/sbin/mariadbd ]] || want+=(mariadb-server)
    command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]] || want+=(nats-server)
    [[ ${#want[@]} -eq 0 ]] && return 0
    if [[ "$(id -u)" -ne 0 ]]; then
        say "not root: cannot install ${want[*]} (apt-get install ${want[*]})"
        return 0
    fi
    say "installing ${want[*]} (apt-get)..."
    # policy-rc.d keeps the packages' own system services from starting: ours run on loopback only
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && created=1; fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null; } \
        || say "apt-get install ${want[*]} failed"
    [[ $created -eq 1 ]] && rm -f $policy
    return 0
}

start_mosquitto() {
    local bin=/usr/sbin/mosquitto
    [[ -x $bin ]] || { say "mosquitto not installed"; return 1; }
    mkdir -p "$DIR/mosquitto"
    cat >"$DIR/mosquitto/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $DIR/mosquitto/
autosave_interval 1
max_queued_messages 1000000
pid_file $DIR/mosquitto/mosquitto.pid
log_dest file $DIR/mosquitto/mosquitto.log
user $(id -un)
EOF
    "$bin" -c "$DIR/mosquitto/mosquitto.conf" -d
    wait_port "$MQTT_PORT" 10 || { say "mosquitto did not start (log: $DIR/mosquitto/mosquitto.log)"; return 1; }
    echo "MANARA_TEST_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT"
}

start_mariadb() {
    [[ -x /usr/sbin/mariadbd ]] || { say "mariadb-server not installed"; return 1; }
    local d="$DIR/mariadb"
    mkdir -p "$d"
    if [[ ! -d "$d/data/mysql" ]]; then
        mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$d/data" \
            --auth-root-authentication-method=normal --skip-test-db >"$d/install.log" 2>&1 \
            || { say "mariadb-install-db failed (log: $d/install.log)"; return 1; }
    fi
    nohup /usr/sbin/mariadbd --no-defaults --user="$(id -un)" --datadir="$d/data" --socket="$d/mysqld.sock" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --pid-file="$d/mariadb.pid" --log-error="$d/error.log" \
        --innodb-buffer-pool-size=64M --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci >/dev/null 2>&1 &
    wait_port "$MYSQL_PORT" 30 || { say "mariadbd did not start (log: $d/error.log)"; return 1; }
    mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e "
        CREATE DATABASE IF NOT EXISTS manara_test CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'manara'@'127.0.0.1' IDENTIFIED BY 'manara';
        GRANT ALL ON *.* TO 'manara'@'127.0.0.1';" \
        || { say "could not create the MariaDB test user"; return 1; }
    echo "MANARA_TEST_MYSQL_URL=mysql+pymysql://manara:manara@127.0.0.1:$MYSQL_PORT/manara_test"
}

start_nats() {
    local bin
    bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
    [[ -x $bin ]] || { say "nats-server not installed"; return 1; }
    mkdir -p "$DIR/nats"
    nohup "$bin" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DIR/nats/store" -P "$DIR/nats/nats.pid" \
        -l "$DIR/nats/nats.log" >/dev/null 2>&1 &
    wait_port "$NATS_PORT" 10 || { say "nats-server did not start (log: $DIR/nats/nats.log)"; return 1; }
    echo "MANARA_TEST_NATS_URL=nats://127.0.0.1:$NATS_PORT"
}

start_opcua() {
    [[ -f scripts/opcua_test_server.py ]] || { say "scripts/opcua_test_server.py missing"; return 1; }
    "$PYTHON" -c "import asyncua" 2>/dev/null || { say "asyncua not installed (pip install -e '.[dev]')"; return 1; }
    mkdir -p "$DIR/opcua"
    nohup "$PYTHON" scripts/opcua_test_server.py --port "$OPCUA_PORT" --pidfile "$DIR/opcua/opcua.pid" \
        >"$DIR/opcua/opcua.log" 2>&1 &
    wait_port "$OPCUA_PORT" 30 || { say "OPC UA test server did not start (log: $DIR/opcua/opcua.log)"; return 1; }
    echo "MANARA_TEST_OPCUA_URL=opc.tcp://127.0.0.1:$OPCUA_PORT/manara/"
}

stop_pidfile() {  # stop_pidfile FILE: TERM, then KILL after 10 s
    local pid i
    [[ -f $1 ]] || return 0
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_all() {
    stop_pidfile "$DIR/mosquitto/mosquitto.pid"
    stop_pidfile "$DIR/mariadb/mariadb.pid"
    stop_pidfile "$DIR/nats/nats.pid"
    stop_pidfile "$DIR/opcua/opcua.pid"
    rm -rf "$DIR"
}

case "${1:-}" in
    start)
        stop_all  # an aborted run may have left them: start from empty
        install_missing
        mkdir -p "$DIR"
        start_mosquitto || true
        start_mariadb || true
        start_nats || true
        start_opcua || true
        ;;
    stop) stop_all ;;
    *) echo "usage: scripts/services.sh start|stop" >&2; exit 2 ;;
esac
