#!/usr/bin/env bash
# make images: every image of the stack (deploy/docker/*.Dockerfile), tagged as
# docker-compose.yml names them. The base is python:3.11-slim (and redis:7-alpine) when
# they are present or can be pulled; otherwise local ones built from Debian's packages
# (deploy/local-base/build.sh). Writes the bases it used to .cache/images.env (read by
# `make fleet`; append it to .env for docker compose) and prints every image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/ensure-docker.sh >/dev/null
available() { docker image inspect "$1" >/dev/null 2>&1 || timeout 60 docker pull -q "$1" >/dev/null 2>&1; }
if [ -n "${LIVENESS_BASE_IMAGE:-}" ]; then
  base="$LIVENESS_BASE_IMAGE"; redis="${LIVENESS_REDIS_IMAGE:-redis:7-alpine}"
elif available python:3.11-slim && available redis:7-alpine; then
  base=python:3.11-slim; redis=redis:7-alpine
else
  echo "images: python:3.11-slim / redis:7-alpine cannot be pulled: using local bases from Debian's packages"
  if ! docker image inspect face-liveness/python:3.11-local >/dev/null 2>&1 \
      || ! docker image inspect face-liveness/redis:7-local >/dev/null 2>&1; then
    bash deploy/local-base/build.sh
  fi
  base=face-liveness/python:3.11-local; redis=face-liveness/redis:7-local
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
for name in gateway face quality cnn fasnet depth3d fusion; do
  echo "images: building face-liveness/$name:$version on $base"
  docker build -q --build-arg "BASE_IMAGE=$base" -t "face-liveness/$name:$version" \
      -f "deploy/docker/$name.Dockerfile" . >/dev/null
done
mkdir -p .cache
printf 'LIVENESS_BASE_IMAGE=%s\nLIVENESS_REDIS_IMAGE=%s\n' "$base" "$redis" > .cache/images.env
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' \
  | grep -E "^face-liveness/(gateway|face|quality|cnn|fasnet|depth3d|fusion):$version|^${redis}|^${base}\s" \
  | sort
