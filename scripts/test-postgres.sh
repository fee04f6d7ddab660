#!/usr/bin/env bash
# Start or stop a private, throw-away PostgreSQL cluster for tests (Debian's packages; no systemd, no Docker).
#
#   scripts/test-postgres.sh start DIR   create a cluster under DIR (first start only: initdb, a free loopback
#                                        port), start it, and print its URL (also written to DIR/postgres_url).
#                                        Running it again while the cluster is up just prints the URL; after
#                                        `stop` it restarts the same cluster (same port and data).
#   scripts/test-postgres.sh stop DIR    fast shutdown, waiting for the server to exit.
#
# The cluster listens on 127.0.0.1 only, with its socket in DIR, trust authentication for user postgres, and
# no fsync (its data is thrown away: durability is not what it tests). initdb and postgres refuse to run as
# root: as root they run as the `postgres` user, which then owns DIR (DIR's parents must let it through, as
# /tmp does).
set -euo pipefail

readonly START_BUDGET=60

die() {
    echo "test-postgres: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

# The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin).
server_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

ensure_installed() {
    server_bin >/dev/null && return 0
    echo "test-postgres: no PostgreSQL server in /usr/lib/postgresql; installing Debian's postgresql" >&2
    local sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >&2
    server_bin >/dev/null || die "apt-get did not provide /usr/lib/postgresql/*/bin/initdb"
}

# Run a server program as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

init_dir() {  # first start only: the port, the cluster
    local dir=$1
    mkdir -p "$dir/socket"
    echo "PORT=$(free_port)" >"$dir/cluster.env"
    if [[ "$(id -u)" -eq 0 ]]; then chown -R postgres: "$dir"; fi
    as_owner "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 ||
        { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed in $dir/data"; }
}

cmd_start() {
    local dir=$1 url
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    ensure_installed
    BIN=$(server_bin)
    [[ -f "$dir/cluster.env" ]] || init_dir "$dir"
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
    url="postgresql://postgres@127.0.0.1:$PORT/postgres"
    if as_owner "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "$url"
        return 0
    fi
    # cd: the server user may not be allowed into the caller's working directory
    (cd "$dir" && as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$START_BUDGET" \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $dir/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null) || { tail -n 40 "$dir/postgres.log" >&2; die "the cluster in $dir did not start"; }
    echo "$url" >"$dir/postgres_url"
    echo "$url"
}

cmd_stop() {
    local dir=$1
    [[ -f "$dir/cluster.env" ]] || die "$dir holds no cluster (no cluster.env)"
    BIN=$(server_bin) || die "no PostgreSQL server in /usr/lib/postgresql"
    if as_owner "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        (cd "$dir" && as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null)
    fi
    rm -f "$dir/postgres_url"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
esac
