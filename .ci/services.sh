#!/usr/bin/env bash
# Starts each local service the test suite needs when it is not already running, and installs the
# Debian packages the tests use (promtool, a Prometheus server, Alertmanager and Chromium). Safe to run repeatedly.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! up 6379; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! up 1883; then
  echo "starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
fi

# test/ops runs promtool and amtool on ops/, and a real Prometheus and Alertmanager against a test server.
# The packages' own daemons are not used (the tests start theirs on free ports with temporary data).
missing=()
for tool in promtool prometheus; do command -v "$tool" >/dev/null 2>&1 || missing+=(prometheus); done
for tool in amtool prometheus-alertmanager; do
  command -v "$tool" >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
done
# The browser tests drive Debian's Chromium with playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "installing ${packages}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

for _ in $(seq 1 30); do
  up 5432 && break
  sleep 1
done
up 5432 || { echo "PostgreSQL did not come up" >&2; exit 1; }

# Accepting TCP is not yet serving ("the database system is starting up"). The tests create and drop their
# own databases (i3xd_test_<run>_…) through this admin connection, so it must be able to.
PG_ADMIN_URL="${I3XD_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v psql >/dev/null 2>&1; then
  for _ in $(seq 1 30); do
    psql "$PG_ADMIN_URL" -tAc "SELECT 1" >/dev/null 2>&1 && break
    sleep 1
  done
  psql "$PG_ADMIN_URL" -tAc "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user" | grep -qx t ||
    { echo "PostgreSQL at ${PG_ADMIN_URL} does not let the tests create databases" >&2; exit 1; }
fi
