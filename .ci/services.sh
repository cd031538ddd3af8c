#!/usr/bin/env bash
# Makes sure the servers the tests talk to run on 127.0.0.1: Redis (6379) for the BullMQ queue and
# PostgreSQL (5432) for the keyv PostgreSQL store. Installs them from Debian's packages if missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then apt-get update -qq; need_apt_update=0; fi
  apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null; then apt_install redis-server; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/redis-6379.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "redis: $(redis-cli -h 127.0.0.1 -p 6379 ping)"

if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
# The tests use the database `test`; create it where a fresh server lacks it.
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  su postgres -c "psql -c 'create database test'" >/dev/null 2>&1 || psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
fi
echo "postgres: $(pg_isready -h 127.0.0.1 -p 5432)"
