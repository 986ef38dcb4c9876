#!/usr/bin/env bash
# Installs dmp-bridge if needed, then runs the demonstration against the embedded DMP simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dmp-bridge demo "$@"
