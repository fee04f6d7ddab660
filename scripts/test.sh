#!/usr/bin/env bash
# Run the test suite with a real RabbitMQ and a real PostgreSQL: `bash scripts/test.sh [pytest args...]`.
#
# Broker, first match wins:
#   1. BOT_TEST_AMQP_URL when set and non-empty;
#   2. RabbitMQ on 127.0.0.1:5672 (guest/guest) when it answers the AMQP header,
#      unless BOT_TEST_OWN_BROKER=1;
#   3. a private throw-away node (scripts/test-rabbitmq.sh) in a temporary directory, stopped on exit.
# PostgreSQL (the state store's and the outbox's `postgres` tests), first match wins:
#   1. BOT_TEST_POSTGRES_URL when set and non-empty (a server where the tests may create databases);
#   2. PostgreSQL on 127.0.0.1:5432 when user postgres connects to database postgres (trust auth),
#      unless BOT_TEST_OWN_POSTGRES=1;
#   3. a private throw-away cluster (scripts/test-postgres.sh) in a temporary directory, stopped on exit.
# promtool (Prometheus's rule and configuration checker, tests/test_ops_files.py): the machine's, else the
# one in Debian's `prometheus` package, unpacked into .venv/promtool (the server is neither installed nor
# started); under CI (CI set) a missing promtool fails the run instead of skipping its tests.
# The virtualenv .venv is created with python3.11 (or python3 >= 3.11) when missing (scripts/venv.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"

answers_amqp() {  # host port
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.settimeout(2)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        sys.exit(0 if s.recv(1) == b"\x01" else 1)
except OSError:
    sys.exit(1)
PY
}

readonly LOCAL_POSTGRES="postgresql://postgres@127.0.0.1:5432/postgres"

answers_postgres() {  # url
    .venv/bin/python - "$1" <<'PY' 2>/dev/null
import sys
import psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=2).close()
except psycopg.Error:
    sys.exit(1)
PY
}

OWN_DIR=""
OWN_PG_DIR=""
cleanup() {
    if [[ -n "$OWN_DIR" ]]; then
        bash "$ROOT/scripts/test-rabbitmq.sh" stop "$OWN_DIR" >&2 || true
        rm -rf "$OWN_DIR"
    fi
    if [[ -n "$OWN_PG_DIR" ]]; then
        bash "$ROOT/scripts/test-postgres.sh" stop "$OWN_PG_DIR" >&2 || true
        rm -rf "$OWN_PG_DIR"
    fi
}
trap cleanup EXIT

ensure_venv "[test]"

if [[ -n "${BOT_TEST_AMQP_URL:-}" ]]; then
    echo "test.sh: RabbitMQ from BOT_TEST_AMQP_URL" >&2
elif [[ "${BOT_TEST_OWN_BROKER:-}" != "1" ]] && answers_amqp 127.0.0.1 5672; then
    export BOT_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/"
    echo "test.sh: RabbitMQ on 127.0.0.1:5672" >&2
else
    OWN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/campaign-guard-rabbitmq.XXXXXX")
    started=$SECONDS
    BOT_TEST_AMQP_URL=$(bash "$ROOT/scripts/test-rabbitmq.sh" start "$OWN_DIR" | tail -n 1)
    export BOT_TEST_AMQP_URL
    echo "test.sh: private RabbitMQ at ${BOT_TEST_AMQP_URL#*@} ready in $((SECONDS - started)) s" >&2
fi

if [[ -n "${BOT_TEST_POSTGRES_URL:-}" ]]; then
    echo "test.sh: PostgreSQL from BOT_TEST_POSTGRES_URL" >&2
elif [[ "${BOT_TEST_OWN_POSTGRES:-}" != "1" ]] && answers_postgres "$LOCAL_POSTGRES"; then
    export BOT_TEST_POSTGRES_URL="$LOCAL_POSTGRES"
    echo "test.sh: PostgreSQL on 127.0.0.1:5432" >&2
else
    OWN_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/campaign-guard-postgres.XXXXXX")
    started=$SECONDS
    BOT_TEST_POSTGRES_URL=$(bash "$ROOT/scripts/test-postgres.sh" start "$OWN_PG_DIR" | tail -n 1)
    export BOT_TEST_POSTGRES_URL
    echo "test.sh: private PostgreSQL at ${BOT_TEST_POSTGRES_URL#*@} ready in $((SECONDS - started)) s" >&2
fi

ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    local dir="$ROOT/.venv/promtool" work
    if [[ ! -x "$dir/usr/bin/promtool" ]]; then
        command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || return 1
        work=$(mktemp -d "${TMPDIR:-/tmp}/campaign-guard-promtool.XXXXXX")
        if ! (cd "$work" && { apt-get download -qq prometheus 2>/dev/null ||
                { as_root apt-get update -qq && apt-get download -qq prometheus 2>/dev/null; }; }); then
            rm -rf "$work"
            return 1
        fi
        rm -rf "$dir"
        dpkg-deb -x "$work"/prometheus_*.deb "$dir"
        rm -rf "$work"
    fi
    export PATH="$dir/usr/bin:$PATH"
}
if ensure_promtool; then
    echo "test.sh: promtool $(command -v promtool)" >&2
elif [[ -n "${CI:-}" ]]; then
    echo "test.sh: FAILED: no promtool, and none could be unpacked from Debian's prometheus package" >&2
    exit 1
else
    echo "test.sh: no promtool (Debian: prometheus): its checks in tests/test_ops_files.py are skipped" >&2
fi

# No `exec`: the EXIT trap must still stop a private broker and cluster after pytest.
status=0
.venv/bin/pytest "$@" || status=$?
exit "$status"
