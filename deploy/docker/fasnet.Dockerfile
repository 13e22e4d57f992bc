# Worker pool "fasnet": Minivision's pretrained MiniFASNet pair (workers/fasnet;
# models/fasnet/model.tflite, Apache-2.0 — its LICENSE and NOTICE are copied with it — run by
# LiteRT: serving needs no TensorFlow, only the conversion does). The core library's
# dependencies (pyproject.toml) plus Celery and redis-py; no Flask, no gunicorn. Consumes only
# the "fasnet" queue; scale with `docker compose up --scale fasnet=N` (compose) or its KEDA
# ScaledObject (deploy/k8s).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1 \
    LIVENESS_MODELS_DIR=/app/models
WORKDIR /app
# The dependencies first, in a layer every worker image shares (the instructions and
# files up to the next RUN are the same in each): a code change rebuilds only what follows.
COPY deploy/docker/worker-requirements.txt /tmp/requirements.txt
COPY pyproject.toml README.md LICENSE ./
RUN pip install -r /tmp/requirements.txt . && pip uninstall -y face-liveness \
 && useradd --uid 10001 --no-create-home liveness
COPY common ./common
COPY workers ./workers
RUN pip install --no-deps .
COPY models/fasnet ./models/fasnet
USER 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD celery -A workers.worker inspect ping -d "fasnet@$HOSTNAME" --timeout 5 >/dev/null
CMD ["sh", "-c", "exec celery -A workers.worker worker -Q fasnet -n fasnet@$HOSTNAME --concurrency ${LIVENESS_POOL_CONCURRENCY:-1} --loglevel INFO --without-gossip --without-mingle"]
