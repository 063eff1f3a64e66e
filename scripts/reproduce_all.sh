#!/usr/bin/env bash
# Every results row, resumable; see scripts/reproduce_all.py (--smoke: every experiment's smoke run, as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" scripts/reproduce_all.py "$@"
