#!/usr/bin/env bash
# Start or stop a private, throw-away RabbitMQ node for tests (no systemd, no Docker).
#
#   scripts/test-rabbitmq.sh start DIR   start a node with its data under DIR; print its AMQP URL
#                                        (also written to DIR/amqp_url). Running it again while the
#                                        node is up just prints the URL; after `stop` it restarts the
#                                        same node (same name, ports and data).
#   scripts/test-rabbitmq.sh stop DIR    SIGTERM the node, wait for it to exit, kill its private epmd.
#
# How and why: /work/shared/docs/rabbitmq.md ("Starting a throw-away node").
set -euo pipefail

readonly SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
readonly START_BUDGET=60
readonly STOP_BUDGET=30

die() {
    echo "test-rabbitmq: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

# True when a process exists and is not a zombie (a zombie still answers kill -0).
alive() {
    local pid=$1 state
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ "$state" != "Z" && "$state" != "X" ]]
}

# True when 127.0.0.1:$1 answers the AMQP 0-9-1 protocol header with a frame (type 1: Connection.Start).
amqp_answers() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.settimeout(2)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        sys.exit(0 if s.recv(1) == b"\x01" else 1)
except OSError:
    sys.exit(1)
PY
}

free_ports() {  # three distinct free loopback ports: AMQP, distribution, epmd
    python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

log_tail() {
    local dir=$1 f
    for f in "$dir/log/startup.log" "$dir"/log/*.log; do
        [[ -f "$f" ]] || continue
        echo "---- tail of $f" >&2
        tail -n 40 "$f" >&2
    done
}

# epmd outlives the node; ours listens on a private port, so killing it touches nobody else.
kill_epmd() {
    local epmd
    epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n 1 || true)
    if [[ -n "$epmd" ]]; then
        "$epmd" -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    fi
}

ensure_installed() {
    [[ -x "$SERVER" ]] && return 0
    echo "test-rabbitmq: $SERVER missing; installing Debian's rabbitmq-server" >&2
    local sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq rabbitmq-server >&2
    [[ -x "$SERVER" ]] || die "apt-get did not provide $SERVER"
}

# Exports the node's environment; the same for starting and stopping.
node_env() {
    local dir=$1
    # shellcheck disable=SC1091
    source "$dir/node.env"
    export HOME="$dir/home"
    export RABBITMQ_NODENAME="$NODE_NAME@localhost"
    export RABBITMQ_DIST_PORT="$DIST_PORT"
    export ERL_EPMD_PORT="$EPMD_PORT"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

init_dir() {  # first start only: pick the name and ports, write config and cookie
    local dir=$1 ports
    read -r -a ports <<<"$(free_ports)"
    mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
    cat >"$dir/node.env" <<EOF
NODE_NAME=cgtest-$(python3 -c 'import secrets; print(secrets.token_hex(4))')
AMQP_PORT=${ports[0]}
DIST_PORT=${ports[1]}
EPMD_PORT=${ports[2]}
EOF
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "${ports[0]}" >"$dir/rabbitmq.conf"
    echo '[].' >"$dir/enabled_plugins"
    # A cookie readable by others breaks every Erlang CLI call: create it 0400.
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16).upper(), end="")' >"$dir/home/.erlang.cookie")
    chmod 0400 "$dir/home/.erlang.cookie"
}

cmd_start() {
    local dir=$1 pid="" url deadline
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ -f "$dir/node.env" ]] || init_dir "$dir"
    node_env "$dir"
    url="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"

    [[ -f "$dir/launcher.pid" ]] && pid=$(cat "$dir/launcher.pid")
    if alive "$pid" && amqp_answers "$AMQP_PORT"; then
        echo "$url"
        return 0
    fi
    alive "$pid" && die "node $RABBITMQ_NODENAME (pid $pid) is running but not answering; run stop first"
    amqp_answers "$AMQP_PORT" && die "port $AMQP_PORT already answers AMQP but it is not our node"

    ensure_installed
    rm -f "$dir/amqp_url" "$RABBITMQ_PID_FILE"
    # Own session: the node survives this script and never gets the caller's terminal signals.
    setsid "$SERVER" </dev/null >>"$dir/log/startup.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/launcher.pid"

    deadline=$((SECONDS + START_BUDGET))
    until amqp_answers "$AMQP_PORT"; do
        if ! alive "$pid"; then
            log_tail "$dir"
            kill_epmd
            die "node $RABBITMQ_NODENAME exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$dir"
            kill -TERM -- "-$pid" 2>/dev/null || true  # its own process group, thanks to setsid
            kill_epmd
            die "node $RABBITMQ_NODENAME did not answer AMQP on 127.0.0.1:$AMQP_PORT within ${START_BUDGET}s"
        fi
        sleep 0.2
    done
    echo "$url" >"$dir/amqp_url"
    echo "$url"
}

cmd_stop() {
    local dir=$1 beam="" launcher="" pid deadline
    [[ -f "$dir/node.env" ]] || die "$dir holds no node (no node.env)"
    node_env "$dir"
    [[ -f "$RABBITMQ_PID_FILE" ]] && beam=$(cat "$RABBITMQ_PID_FILE")
    [[ -f "$dir/launcher.pid" ]] && launcher=$(cat "$dir/launcher.pid")
    # SIGTERM to the Erlang VM is a graceful shutdown; the launching shell then exits by itself.
    if alive "$beam"; then
        kill -TERM "$beam"
    elif alive "$launcher"; then
        kill -TERM "$launcher"
    fi
    deadline=$((SECONDS + STOP_BUDGET))
    for pid in $beam $launcher; do
        while alive "$pid"; do
            if ((SECONDS >= deadline)); then
                echo "test-rabbitmq: pid $pid ignored SIGTERM for ${STOP_BUDGET}s; SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    done
    kill_epmd
    rm -f "$dir/amqp_url" "$dir/launcher.pid"
    if amqp_answers "$AMQP_PORT"; then
        die "127.0.0.1:$AMQP_PORT still answers AMQP after stop"
    fi
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
esac
