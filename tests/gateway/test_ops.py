"""Operations routes: probes, metrics, OpenAPI, docs; Redis down; gunicorn end to end."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from cli import main as cli_main
from common.config import PROJECT_ROOT
from gateway.auth import KeyRing
from gateway.metrics import OUTCOMES_KEY
from gateway.schemas import BatchSchema, JobSchema
from tests.gateway.support import (
    CLOSED_URL,
    KEYS,
    auth,
    build_app,
    jpeg_bytes,
    make_settings,
)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def submit(client, owner="alice"):
    return client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                       headers=auth(owner), content_type="multipart/form-data")


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_is_503_without_workers(client):
    # DB 14 has no worker consuming any queue.
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["checks"]["redis"] == "ok"
    assert body["checks"]["missing"] == ["face", "cnn", "fasnet", "quality", "fusion"]  # defaults


def test_metrics_exposition_parses_and_counts(app, client, db):
    assert submit(client).status_code == 202
    client.get("/v1/jobs/unknown", headers=auth())
    db.hset(OUTCOMES_KEY, mapping={"quality:ok": 3, "quality:error": 1})
    db.hset("liveness:metrics:jobs", mapping={"done": 4, "decision:live": 3})
    db.hset("liveness:metrics:stages", mapping={"face_detections": 4})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    values = samples(response.get_data(as_text=True))
    assert values[("liveness_http_requests_total",
                   (("method", "POST"), ("route", "/v1/jobs"), ("status", "202")))] >= 1
    assert values[("liveness_http_requests_total", (("method", "GET"),
                   ("route", "/v1/jobs/<job_id>"), ("status", "404")))] >= 1
    assert ("liveness_http_request_duration_seconds_count",
            (("method", "POST"), ("route", "/v1/jobs"))) in values
    assert values[("liveness_redis_up", ())] == 1
    # A job sends its face stage and its tests together (nothing consumes them here).
    assert values[("liveness_queue_depth", (("queue", "face"),))] == 1
    assert values[("liveness_queue_depth", (("queue", "cnn"),))] == 1      # the defaults
    assert values[("liveness_queue_depth", (("queue", "fasnet"),))] == 1
    assert values[("liveness_queue_depth", (("queue", "quality"),))] == 1
    assert values[("liveness_queue_depth", (("queue", "depth3d"),))] == 0  # not a default
    assert values[("liveness_stage_runs_total", (("stage", "face_detections"),))] == 4
    assert values[("liveness_test_outcomes_total",
                   (("outcome", "ok"), ("test", "quality")))] == 3
    assert values[("liveness_jobs_finished_total", (("status", "done"),))] == 4
    assert values[("liveness_job_decisions_total", (("decision", "live"),))] == 3


def test_openapi_document_is_valid_and_covers_every_route(app, client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)  # OpenAPI 3.0 schema validation
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":  # the demo page's script and style
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    assert {"Job", "Batch", "Error", "JobAccepted"} <= set(spec["components"]["schemas"])


def test_real_answers_match_the_documented_schemas(client):
    job_id = submit(client).get_json()["id"]
    job = client.get(f"/v1/jobs/{job_id}", headers=auth()).get_json()
    assert JobSchema().validate(job) == {}  # unknown fields would be reported too
    batch = client.post("/v1/batches", headers=auth(), content_type="multipart/form-data",
                        data={"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")]}).get_json()
    assert BatchSchema().validate(batch) == {}


def test_docs_page_renders_offline(client):
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/batches", "/readyz", "/metrics"):
        assert f"<code>{path}</code>" in page
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page


@pytest.mark.timeout(60)
def test_redis_down_answers_503_not_a_hang(db):
    app = build_app(make_settings(redis_url=CLOSED_URL, broker_url=CLOSED_URL,
                                  result_backend=CLOSED_URL))
    client = app.test_client()
    for response in (submit(client), client.get("/v1/jobs/abc", headers=auth()),
                     client.delete("/v1/jobs/abc", headers=auth())):
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] in ("unavailable", "service_unavailable")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "unreachable" in ready.get_json()["checks"]["redis"]
    assert client.get("/healthz").status_code == 200
    metrics = samples(client.get("/metrics").get_data(as_text=True))
    assert metrics[("liveness_redis_up", ())] == 0


@pytest.mark.timeout(60)
def test_silent_redis_times_out_as_503(db):
    """A server that accepts connections but never answers must not hang a request."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        app = build_app(make_settings(redis_url=url, broker_url=url, result_backend=url,
                                      gateway_redis_timeout_s=0.5))
        response = app.test_client().get("/v1/jobs/abc", headers=auth())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"


def test_apikey_command_prints_a_working_key():
    result = CliRunner().invoke(cli_main, ["apikey", "carol"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.strip().splitlines())
    key, config = lines["key"].strip(), lines["hash"].strip()
    assert config.startswith("carol:")
    assert KeyRing(config).owner_of(key) == "carol"
    assert KeyRing(config).owner_of(key + "x") is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def gunicorn_url(db, tmp_path) -> Iterator[str]:
    """The documented command, two worker processes, Prometheus multiprocess mode."""
    port = _free_port()
    settings = make_settings()
    env = {**os.environ, "LIVENESS_REDIS_URL": settings.redis_url,
           "LIVENESS_BROKER_URL": settings.broker_url,
           "LIVENESS_RESULT_BACKEND": settings.result_backend,
           "LIVENESS_API_KEY_HASHES": settings.api_key_hashes,
           "LIVENESS_WEBHOOK_SECRET": settings.webhook_secret,
           "LIVENESS_IMAGE_KEYS": settings.image_keys,
           "LIVENESS_GATEWAY_BIND": f"127.0.0.1:{port}", "LIVENESS_GATEWAY_WORKERS": "2"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the config file's own default, as deployed
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    proc = subprocess.Popen([gunicorn, "-c", "gateway/gunicorn.conf.py", "gateway:create_app()"],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if _http(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.timeout(120)
def test_gunicorn_serves_the_app_and_sums_metrics_across_workers(gunicorn_url):
    n = 12
    for _ in range(n):
        status, _ = _http(gunicorn_url + "/v1/jobs/none", {"X-API-Key": KEYS["alice"]})
        assert status == 404
    status, text = _http(gunicorn_url + "/metrics")
    assert status == 200
    values = samples(text)
    key = ("liveness_http_requests_total",
           (("method", "GET"), ("route", "/v1/jobs/<job_id>"), ("status", "404")))
    assert values[key] == n  # whichever worker answered each request
    # Multiprocess exposition (summed from the workers' files) has no *_created samples.
    assert not [name for name, _ in values if name.endswith("_created")]


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (requests urllib would refuse to build) and parse the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("path", "header", "status", "code"), [
    ("/v1/jobs/" + "a" * 5000, "", 414, "uri_too_long"),            # the app's limit
    ("/v1/jobs/" + "a" * 9000, "", 414, "uri_too_long"),            # gunicorn's limit
    ("/v1/jobs/x", "Idempotency-Key: " + "k" * 10000, 431, "header_fields_too_large"),
    ("/v1/jobs/x", "X-Big: " + "k" * 20000, 431, "header_fields_too_large"),  # gunicorn's
    ("/v1/jobs/x", "Bad Header: x", 400, "bad_request"),             # malformed: gunicorn
])
def test_oversized_and_malformed_requests_get_json_errors(gunicorn_url, path, header, status,
                                                          code):
    extra = f"{header}\r\n" if header else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {KEYS['alice']}\r\n"
               f"{extra}Connection: close\r\n\r\n").encode()
    got, headers, body = _raw(gunicorn_url, request)
    assert got == status, body[:200]
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code
