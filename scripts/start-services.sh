#!/usr/bin/env bash
# Starts the local PostgreSQL, MariaDB and Redis the tests use, if they are
# not already answering. Safe to run repeatedly. Loopback only.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 3306 && [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
for i in $(seq 1 50); do
  up 5432 && up 3306 && up 6379 && exit 0
  sleep 0.2
done
echo "warning: not every test service answers (postgres 5432, mariadb 3306, redis 6379); tests that need one will say so" >&2
exit 0
