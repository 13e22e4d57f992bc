# Worker pool "depth3d": the 3D-mask test pool. Its model is not shipped yet, so each task records a model_unavailable outcome; the 3D issue adds its runtime (and models/depth3d) to this image only.
# The core library's dependencies (pyproject.toml) plus Celery and redis-py; no Flask, no
# gunicorn, no TensorFlow. Consumes only the "depth3d" queue; scale with
# `docker compose up --scale depth3d=N` (compose) or its KEDA ScaledObject (deploy/k8s).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1 \
    LIVENESS_MODELS_DIR=/app/models
WORKDIR /app
COPY deploy/docker/worker-requirements.txt /tmp/requirements.txt
COPY pyproject.toml README.md LICENSE ./
COPY common ./common
COPY workers ./workers
# face_recognition itself is not needed: the optional dlib detectors (common/faces/) call
# dlib with its model files.
RUN pip install -r /tmp/requirements.txt . && useradd --uid 10001 --no-create-home liveness
# models/depth3d arrives with the 3D issue: COPY it here (or mount it at /app/models/depth3d).
USER 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD celery -A workers.worker inspect ping -d "depth3d@$HOSTNAME" --timeout 5 >/dev/null
CMD ["sh", "-c", "exec celery -A workers.worker worker -Q depth3d -n depth3d@$HOSTNAME --concurrency ${LIVENESS_POOL_CONCURRENCY:-1} --loglevel INFO --without-gossip --without-mingle"]
