#!/usr/bin/env bash
# Installs what dmp-bridge needs into ./.venv, on a fresh Debian machine or this one.
# Safe to run again: it reinstalls the Python packages only when pyproject.toml changed.
# Usage: scripts/bootstrap.sh [test]   ("test" adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-}"
need_apt=()
python_ok() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if ! python_ok; then
  need_apt+=(python3 python3-venv python3-pip)
fi
if [ "$extra" = "test" ]; then
  # The card tests use real components: pcscd with the vpcd virtual reader, SoftHSM2, and
  # what pyscard needs to compile; the dashboard tests drive Debian's Chromium.
  for pkg in pcscd libpcsclite-dev swig gcc vsmartcard-vpcd softhsm2 opensc iproute2 \
             util-linux chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
  if ! python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(
      os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
    need_apt+=(python3-dev)
  fi
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Il manque ${need_apt[*]} : relancez en root (ou avec sudo)." >&2
    exit 1
  fi
  echo "Installation des paquets Debian : ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-${extra:-run}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installation des paquets Python dans .venv (journal : .venv/pip-install.log)…"
  target="."
  [ "$extra" = "test" ] && target=".[test,carte]"
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e "$target"; } > .venv/pip-install.log 2>&1; then
    tail -n 30 .venv/pip-install.log >&2
    echo "L'installation des paquets Python a échoué (voir .venv/pip-install.log)." >&2
    exit 1
  fi
  .venv/bin/python -c 'import bridge, connectors, mappings, service, aiohttp, lxml, signxml' 
  echo "$want" > "$stamp"
fi
# Bytecode of the project's own modules, as a wheel install has it: without it (an editable
# install where PYTHONDONTWRITEBYTECODE is set) every start compiles ~170 modules (≈ 0.7 s, and
# the garbage of the compiler stays in the process's memory). Quick when nothing changed.
.venv/bin/python -m compileall -q bridge connectors mappings service >/dev/null
