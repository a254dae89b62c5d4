#!/usr/bin/env bash
# Run the test suite on each metadata backend: SQLite (default), then PostgreSQL
# on a throw-away local cluster (scripts/pg-test-cluster.sh), with the connector tests' real
# services (Mosquitto, MariaDB, NATS, an OPC UA server: scripts/services.sh) running for both.
#
#   scripts/test.sh [PYTEST ARGS...]        e.g. scripts/test.sh -k sql
#   MANARA_TEST_BACKENDS=sqlite scripts/test.sh
#
# With CI=true a missing PostgreSQL or service is an error; otherwise that pass or those tests skip.
set -euo pipefail

cd "$(dirname "$0")/.."

BACKENDS="${MANARA_TEST_BACKENDS:-sqlite postgresql}"
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@")
failed=()
ran=()
status=0
# Make Ctrl-C / SIGTERM go through the EXIT trap (which stops the services and the PostgreSQL cluster).
trap 'exit 130' INT
trap 'exit 143' TERM

for backend in $BACKENDS; do
    case "$backend" in
        sqlite | postgresql) ;;
        *) echo "test.sh: unknown backend '$backend' in MANARA_TEST_BACKENDS (use: sqlite postgresql)" >&2; exit 2 ;;
    esac
done

note_result() {
    if [[ $2 -ne 0 ]]; then
        failed+=("$1 (pytest exit $2)")
        [[ $status -ne 0 ]] || status=$2
    fi
}

have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

# Document tests (tests/search/test_parse.py) need tesseract with Arabic and French data, and the
# DejaVu fonts to draw the Arabic PDFs and scans they read.
have_tesseract() {
    [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || return 1
    command -v tesseract >/dev/null || return 1
    local langs
    langs="$(tesseract --list-langs 2>&1)" || return 1
    grep -qx 'ara' <<<"$langs" && grep -qx 'fra' <<<"$langs"
}

ensure_tesseract() {
    have_tesseract && return 0
    if [[ "$(id -u)" -eq 0 ]]; then
        echo "test.sh: installing tesseract-ocr with Arabic and French data (apt-get)..."
        { apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                tesseract-ocr tesseract-ocr-ara tesseract-ocr-fra fonts-dejavu-core >/dev/null; } \
            || echo "test.sh: apt-get install tesseract-ocr tesseract-ocr-ara tesseract-ocr-fra failed" >&2
    fi
    if ! have_tesseract; then
        if [[ "${CI:-}" == "true" ]]; then
            echo "test.sh: ERROR: tesseract with 'ara' and 'fra' language data not found and could not be" \
                "installed; CI requires the OCR tests." >&2
            exit 1
        fi
        echo "tesseract not found: install tesseract-ocr tesseract-ocr-ara tesseract-ocr-fra to run the OCR tests"
    fi
}

run_sqlite() {
    echo "=== tests on SQLite ==="
    local rc=0
    env -u MANARA_TEST_DATABASE_URL "${PYTEST[@]}" || rc=$?
    ran+=(sqlite)
    note_result sqlite "$rc"
}

run_postgresql() {
    echo "=== tests on PostgreSQL ==="
    if ! have_pg && [[ "$(id -u)" -eq 0 ]]; then
        echo "test.sh: installing PostgreSQL (apt-get)..."
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
            || echo "test.sh: apt-get install postgresql failed" >&2
    fi
    if ! have_pg; then
        if [[ "${CI:-}" == "true" ]]; then
            echo "test.sh: ERROR: PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb)" \
                "and could not be installed; CI requires the PostgreSQL pass." >&2
            exit 1
        fi
        echo "PostgreSQL not found: install it with 'apt-get install postgresql' to run the suite on PostgreSQL"
        return 0
    fi

    local url rc=0
    bash scripts/pg-test-cluster.sh stop  # start from an empty cluster, even after an aborted run
    url="$(bash scripts/pg-test-cluster.sh start)"
    echo "test.sh: PostgreSQL test cluster at $url"
    MANARA_TEST_DATABASE_URL="$url" "${PYTEST[@]}" || rc=$?
    bash scripts/pg-test-cluster.sh stop || true
    ran+=(postgresql)
    note_result postgresql "$rc"
}

# Mosquitto, MariaDB, NATS and an asyncua OPC UA server for the connector tests (scripts/services.sh):
# started once, shared by both passes, stopped on exit.
start_services() {
    local lines line
    trap 'bash scripts/services.sh stop || true; bash scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
    lines="$(bash scripts/services.sh start)"
    for key in MQTT MYSQL NATS OPCUA; do
        line="$(grep "^MANARA_TEST_${key}_URL=" <<<"$lines" || true)"
        if [[ -n "$line" ]]; then
            export "${line?}"
            echo "test.sh: ${line}"
        elif [[ "${CI:-}" == "true" ]]; then
            echo "test.sh: ERROR: the ${key} test service could not be started; CI requires it (scripts/services.sh)" >&2
            exit 1
        else
            echo "test.sh: no ${key} test service: its tests skip (scripts/services.sh start says why)"
        fi
    done
}

ensure_tesseract
start_services

for backend in $BACKENDS; do
    "run_$backend"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "test.sh: FAILED on: ${failed[*]}" >&2
    exit "$status"
fi
echo "test.sh: all passes OK (${ran[*]:-none})"
