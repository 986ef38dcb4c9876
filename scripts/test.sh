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
echo "== PostgreSQL for the store tests (a throwaway cluster on 127.0.0.1)"
if [ -z "${DMP_BRIDGE_TEST_PG_DSN:-}" ]; then
  pg_env="$(bash scripts/postgres_for_tests.sh)"   # an assignment: a failure stops test.sh
  eval "$pg_env"
  trap 'bash scripts/postgres_for_tests.sh stop >/dev/null 2>&1 || true' EXIT
fi
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "$@"
