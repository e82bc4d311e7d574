#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for benchrun's shared-ledger tests and benchmarks.
#
#   eval "$(scripts/start_postgres.sh)"          # start; exports BENCHRUN_TEST_PG_URL and BENCHRUN_TEST_PG_DIR
#   scripts/start_postgres.sh stop "$BENCHRUN_TEST_PG_DIR"   # stop it and delete its files
#
# Needs Debian's `postgresql` package (apt-get install -y postgresql) or any PostgreSQL whose
# initdb/pg_ctl are on PATH or under /usr/lib/postgresql/*/bin. Root cannot run postgres, so as
# root the cluster belongs to the `postgres` user (created by the Debian package) via runuser.
# Authentication is `trust` on 127.0.0.1 only: a test cluster, never a real one.
# Prints only `export ...` lines on stdout; progress and errors go to stderr.
set -euo pipefail

find_bin() {
  local name=$1 d
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/$name" ]; then echo "$d/$name"; return 0; fi
  done
  return 1
}

as_owner() {  # run a command as the cluster owner
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = "stop" ]; then
  dir=${2:?usage: start_postgres.sh stop DIR}
  pg_ctl=$(find_bin pg_ctl) || { echo "start_postgres: pg_ctl not found" >&2; exit 1; }
  if [ -d "$dir/data" ]; then
    as_owner "$pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit 0
fi

initdb=$(find_bin initdb) || { echo "start_postgres: initdb not found; apt-get install -y postgresql" >&2; exit 1; }
pg_ctl=$(find_bin pg_ctl) || { echo "start_postgres: pg_ctl not found" >&2; exit 1; }
createdb=$(find_bin createdb) || { echo "start_postgres: createdb not found" >&2; exit 1; }

if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
  echo "start_postgres: running as root but there is no 'postgres' user to own the cluster" >&2
  exit 1
fi

dir=${BENCHRUN_PG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/benchrun-pg.XXXXXX")}
mkdir -p "$dir"
chmod 755 "$dir"
if [ "$(id -u)" = "0" ]; then chown postgres "$dir"; fi

port=${BENCHRUN_PG_PORT:-}
if [ -z "$port" ]; then  # a free port chosen by the kernel
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
fi
user=benchrun
db=benchrun

as_owner "$initdb" -D "$dir/data" --auth=trust --username="$user" --encoding=UTF8 --locale=C --no-instructions \
  >"$dir/initdb.log" 2>&1 || { echo "start_postgres: initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1; }
opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200"
if ! as_owner "$pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
  echo "start_postgres: the server did not start; log:" >&2
  cat "$dir/server.log" >&2 || true
  exit 1
fi
as_owner "$createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
echo "start_postgres: PostgreSQL listening on 127.0.0.1:$port (data in $dir)" >&2
echo "export BENCHRUN_TEST_PG_URL=postgresql+psycopg://$user@127.0.0.1:$port/$db"
echo "export BENCHRUN_TEST_PG_DIR=$dir"
