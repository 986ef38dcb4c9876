#!/usr/bin/env bash
# A throwaway PostgreSQL for the PostgresStore tests, listening only on 127.0.0.1.
#
#   eval "$(scripts/postgres_for_tests.sh)"    # sets DMP_BRIDGE_TEST_PG_DSN
#   scripts/postgres_for_tests.sh stop         # stops the server and removes its files
#
# Installs Debian's PostgreSQL when it is missing (as root), then initialises a cluster in a
# temporary folder owned by the `postgres` user (by the caller when not root), on a free port,
# with one database and one password-protected user. Safe to run twice: a cluster already
# running is reused and the same line is printed again. Only the `export …` line goes to
# stdout; everything else goes to stderr. The cluster runs with fsync off: it is for tests only.
set -euo pipefail

state_dir="${DMP_BRIDGE_PG_DIR:-${TMPDIR:-/tmp}/dmp-bridge-pg-$(id -u)}"
data_dir="$state_dir/data"
env_file="$state_dir/env"
log_file="$state_dir/server.log"
db_name="dmp_bridge_test"
db_user="dmp_bridge_test"

say() { echo "postgres_for_tests: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  owner="postgres"
else
  owner="$(id -un)"
fi

# Runs a command as the cluster's owner (PostgreSQL refuses to run as root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$owner" -- "$@")
  else
    (cd / && "$@")
  fi
}

find_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

# The server of a previous run is up and answers on its port (a killed one may leave its pid).
running() {
  [ -n "${bindir:-}" ] && [ -f "$data_dir/PG_VERSION" ] && [ -s "$state_dir/port" ] &&
    as_owner "$bindir/pg_ctl" status -D "$data_dir" >/dev/null 2>&1 &&
    "$bindir/pg_isready" -q -t 5 -h 127.0.0.1 -p "$(cat "$state_dir/port")" >/dev/null 2>&1
}

bindir="$(find_bindir)"

if [ "${1:-}" = "stop" ]; then
  if [ -n "$bindir" ] && [ -f "$data_dir/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" stop -D "$data_dir" -m fast -w >/dev/null 2>&1 || true
  fi
  rm -rf "$state_dir"
  say "stopped, $state_dir removed"
  exit 0
elif [ $# -gt 0 ]; then
  die "usage: $0 [stop]"
fi

# -- 1. the server binaries ------------------------------------------------------------------
if [ -z "$bindir" ]; then
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed: run this script as root once."
  say "installing Debian's postgresql…"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  bindir="$(find_bindir)"
  [ -n "$bindir" ] || die "postgresql installed, but no initdb/pg_ctl found"
fi
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 || die "no 'postgres' system user (the Debian package creates it)"
fi

# -- 2. reuse the cluster of a previous run --------------------------------------------------
if running && [ -s "$env_file" ]; then
  cat "$env_file"
  exit 0
fi

# Anything left over (a server killed with the machine, a half-made folder) is thrown away.
if [ -e "$state_dir" ]; then
  if [ -f "$data_dir/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" stop -D "$data_dir" -m immediate -w >/dev/null 2>&1 || true
  fi
  rm -rf "$state_dir"
fi
mkdir -m 0700 "$state_dir"
[ "$(id -u)" -eq 0 ] && chown "$owner:" "$state_dir"

# -- 3. a new cluster on a free loopback port ------------------------------------------------
port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

as_owner "$bindir/initdb" -D "$data_dir" -U postgres -E UTF8 --no-locale --no-sync \
  --auth-local=trust --auth-host=scram-sha-256 >"$state_dir/initdb.log" 2>&1 ||
  { cat "$state_dir/initdb.log" >&2; die "initdb failed"; }
# Loopback only; the Unix socket lives in our own 0700 folder (local trust reaches no one else).
cat >>"$data_dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
cat >"$data_dir/pg_hba.conf" <<EOF
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
EOF
as_owner "$bindir/pg_ctl" start -D "$data_dir" -l "$log_file" -w -t 30 >/dev/null ||
  { tail -n 20 "$log_file" >&2 || true; die "the server did not start"; }

psql_bin="$bindir/psql"
[ -x "$psql_bin" ] || psql_bin="psql"
as_owner "$psql_bin" -X -q -v ON_ERROR_STOP=1 -h "$state_dir" -p "$port" -U postgres -d postgres \
  >/dev/null <<EOF
CREATE ROLE $db_user LOGIN PASSWORD '$password';
CREATE DATABASE $db_name OWNER $db_user;
EOF

echo "$port" >"$state_dir/port"
line="export DMP_BRIDGE_TEST_PG_DSN=postgresql://$db_user:$password@127.0.0.1:$port/$db_name"
(umask 077 && echo "$line" >"$env_file")
say "PostgreSQL $(basename "$(dirname "$bindir")") ready on 127.0.0.1:$port ($state_dir)"
echo "$line"
