# The HTTP gateway: Flask + gunicorn. It validates uploads (Pillow, NumPy), stores them in
# Redis and enqueues Celery tasks by name, so it carries neither dlib, OpenCV, the models
# nor TensorFlow: `pip install --no-deps .` plus exactly the packages it imports. It reads
# the calibration profiles (models/profiles, JSON) to validate `profile=` and list them.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    LIVENESS_MODELS_DIR=/app/models
WORKDIR /app
COPY deploy/docker/gateway-requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
COPY pyproject.toml README.md LICENSE ./
COPY common ./common
COPY workers ./workers
COPY gateway ./gateway
COPY models/profiles ./models/profiles
RUN pip install --no-deps . && useradd --uid 10001 --no-create-home liveness
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "gateway:create_app()"]
