#!/usr/bin/env bash
# Set up and run campaign-guard: `bash scripts/run.sh [campaign-guard args...]` (default: `run`).
# Web receiver + worker in one process, embedded broker, SQLite state in ./.campaign-guard/, vendors in
# dry-run until their API keys are set (BOT_* variables; see README "Configuration").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv ""
if [[ $# -eq 0 ]]; then
    set -- run
fi
exec .venv/bin/campaign-guard "$@"
