#!/usr/bin/env bash
# Start a local Redis when none answers on $LIVENESS_REDIS_URL's host/port (default
# 127.0.0.1:6379). Uses Debian's redis-server, installing it when root and missing.
set -euo pipefail
url="${LIVENESS_REDIS_URL:-redis://127.0.0.1:6379/0}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=6379

answers() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if answers; then echo "redis: answering on $host:$port"; exit 0; fi
case "$host" in 127.*|localhost) ;; *) echo "redis: nothing answers on $host:$port and it is not local" >&2; exit 1;; esac
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis: redis-server is not installed; run: sudo apt-get install redis-server" >&2; exit 1
  fi
fi
# Append-only persistence (records, results and queued messages survive a restart).
# The folder and its files are private to this user (job records, sealed images).
dir="${LIVENESS_REDIS_DIR:-/var/tmp/liveness-redis-$port}"; mkdir -p "$dir"; chmod 700 "$dir"
umask 077
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly yes \
  --appendfsync everysec --dir "$dir" --logfile "$dir/redis.log"
for _ in $(seq 1 50); do answers && { echo "redis: started on $host:$port"; exit 0; }; sleep 0.1; done
echo "redis: failed to start; see $dir/redis.log" >&2; exit 1
