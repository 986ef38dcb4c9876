#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole suite: lint, types, layering, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
echo "== ruff"
.venv/bin/ruff check bridge connectors mappings service tests scripts benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== import-linter (layers of DESIGN.md §3)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "$@"
