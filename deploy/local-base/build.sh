#!/usr/bin/env bash
# Base images from Debian's packages, for machines that reach no container registry.
#
# debootstrap's a minimal Debian (the release of python:3.11-slim, bookworm: Python 3.11)
# with Python and Redis from Debian, imports it into Docker and builds on it:
#   face-liveness/python:3.11-local   Python 3.11 in a venv on the PATH (pip, python)
#   face-liveness/redis:7-local       Debian's redis-server, as the redis user, /data
# The host's trusted CA certificates are copied in, so pip inside the builds trusts what
# the host trusts (a TLS-inspecting proxy's CA included). Needs root, debootstrap and a
# running Docker engine; deploy/build-images.sh calls it when python:3.11-slim cannot be
# pulled. Environment: DEBIAN_RELEASE (bookworm), DEBIAN_MIRROR (deb.debian.org).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
release="${DEBIAN_RELEASE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
debian_tag="face-liveness/debian:${release}-local"

[ "$(id -u)" = 0 ] || { echo "local-base: run as root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "local-base: debootstrap $release from $mirror (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,redis-server \
    "$release" "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . | docker import - "$debian_tag" >/dev/null
docker build -q -t face-liveness/python:3.11-local --build-arg "DEBIAN_IMAGE=$debian_tag" \
    -f "$here/python.Dockerfile" "$here" >/dev/null
docker build -q -t face-liveness/redis:7-local --build-arg "DEBIAN_IMAGE=$debian_tag" \
    -f "$here/redis.Dockerfile" "$here" >/dev/null
echo "local-base: built $debian_tag, face-liveness/python:3.11-local, face-liveness/redis:7-local"
