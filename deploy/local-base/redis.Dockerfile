# Debian's redis-server (7.0), run as the redis user with its data in /data: a stand-in
# for redis:7-alpine (built by build.sh).
ARG DEBIAN_IMAGE=face-liveness/debian:bookworm-local
FROM ${DEBIAN_IMAGE}
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
