# Sourced by run.sh and test.sh: `ensure_venv EXTRAS` makes .venv with Python >= 3.11 and installs the
# package (editable, with EXTRAS such as "[test]") when pyproject.toml changed since the last install.
# On a fresh Debian/Ubuntu the interpreter may lack ensurepip: python3.X-venv is then installed with apt.

pick_python() {
    local candidate
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "campaign-guard: need Python >= 3.11 (python3.11 or python3)" >&2
    return 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

ensure_venv() {
    local extras=${1:-} python stamp=".venv/.campaign-guard-installed${1:-}"
    if [[ ! -x .venv/bin/python ]]; then
        python=$(pick_python)
        if ! "$python" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            local version
            version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            echo "campaign-guard: installing python${version}-venv (ensurepip is missing)" >&2
            as_root apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" ||
                as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            "$python" -m venv .venv
        fi
    fi
    if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
        .venv/bin/python -m pip install -q -e ".${extras}"
        touch "$stamp"
    fi
}
