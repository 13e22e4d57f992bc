#!/usr/bin/env bash
# A running Docker engine and a compose command, or a clear error. As root it installs
# Debian's docker.io and docker-compose when missing and starts dockerd when none answers
# (log: /var/log/liveness-dockerd.log). Prints the compose command to use.
set -euo pipefail
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "ensure-docker: no Docker engine answers; run as root to install/start one" >&2; exit 1; }
  if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null \
      && ! docker compose version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose >&2
  fi
  nohup dockerd >/var/log/liveness-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not start (see /var/log/liveness-dockerd.log)" >&2; exit 1; }
fi
if docker compose version >/dev/null 2>&1; then echo "docker compose"
elif command -v docker-compose >/dev/null; then echo "docker-compose"
else
  [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >&2
  command -v docker-compose >/dev/null || { echo "ensure-docker: no compose command" >&2; exit 1; }
  echo "docker-compose"
fi
