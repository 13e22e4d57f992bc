# Python 3.11 from Debian, in a venv on the PATH: `python` and `pip` behave as in the
# python:3.11-slim image the service's Dockerfiles expect (built by build.sh).
ARG DEBIAN_IMAGE=face-liveness/debian:bookworm-local
FROM ${DEBIAN_IMAGE}
RUN python3 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python"]
