"""The deployment files parse and describe the service the code implements.

No Docker engine, ``docker compose`` plugin, cluster or kubeconform is available here,
so the files are checked structurally with PyYAML: services, images, commands,
environment, health checks, probes, KEDA triggers and settings names.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from common.config import PROJECT_ROOT, Settings
from workers.celery_app import QUEUES

POOLS = ("quality", "cnn", "depth3d", "fusion")
DOCKER = PROJECT_ROOT / "deploy/docker"
K8S = PROJECT_ROOT / "deploy/k8s"
SETTING_VARS = {f"LIVENESS_{f.name.upper()}" for f in fields(Settings)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_pools_match_the_celery_queues():
    assert set(POOLS) == set(QUEUES)


def test_compose_has_redis_gateway_and_one_service_per_pool(compose):
    services = compose["services"]
    assert set(services) == {"redis", "gateway", *POOLS}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert "container_name" not in service      # `--scale` needs generated names
    for name in ("gateway", *POOLS):
        service = services[name]
        dockerfile = PROJECT_ROOT / service["build"]["dockerfile"]
        assert dockerfile.is_file() and dockerfile.parent == DOCKER
        assert service["image"].startswith(f"face-liveness/{name}:")
        env = service["environment"]
        assert {"LIVENESS_REDIS_URL", "LIVENESS_BROKER_URL"} <= set(env)
        assert set(env) <= SETTING_VARS, set(env) - SETTING_VARS
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    for pool in POOLS:                                # scalable: no fixed host port
        assert "ports" not in compose["services"][pool]
        assert f"ping -d {pool}@" in " ".join(compose["services"][pool]["healthcheck"]["test"])


def _instructions(text: str) -> str:
    """The lower-cased lines that do something (comments dropped)."""
    return "\n".join(line for line in text.lower().splitlines() if not line.startswith("#"))


@pytest.mark.parametrize("name", ["gateway", *POOLS])
def test_each_image_carries_only_its_pool(name):
    text = (DOCKER / f"{name}.Dockerfile").read_text()
    assert re.search(r"^USER 10001$", text, re.M)            # non-root
    assert "HEALTHCHECK" in text
    lowered = _instructions(text)
    assert "tensorflow" not in lowered
    if name == "gateway":
        requirements = _instructions((DOCKER / "gateway-requirements.txt").read_text())
        for heavy in ("dlib", "opencv", "scikit", "tensorflow", "face_recognition"):
            assert heavy not in requirements and heavy not in lowered
        assert "--no-deps" in text and "COPY models" not in text
    else:
        assert f"-Q {name} " in text                     # consumes only its own queue
        assert ("COPY models/quality" in text) == (name == "quality")
        assert "flask" not in (DOCKER / "worker-requirements.txt").read_text().lower()


def test_images_install_the_service_extra():
    """Every ``service`` requirement is in the gateway image; workers get the queue client."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    gateway = set(_instructions((DOCKER / "gateway-requirements.txt").read_text()).split())
    assert set(project["optional-dependencies"]["service"]) <= gateway
    worker = _instructions((DOCKER / "worker-requirements.txt").read_text())
    assert "celery[redis]" in worker and "redis" in worker


def test_gateway_imports_no_model_code():
    """The gateway image has no dlib/OpenCV/scikit: importing the app must not need them."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('dlib', 'cv2', 'skimage', 'sklearn', 'face_recognition', 'tensorflow',\n"
            "          'scipy', 'h5py', 'matplotlib', 'pywt'):\n"
            "    sys.modules[m] = None\n"
            "import gateway\n"
            "gateway.create_app()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, check=False,
                         env={"PATH": "/usr/bin:/bin", "LIVENESS_API_KEY_HASHES": ""})
    assert out.returncode == 0, out.stderr[-2000:]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml")
                                    if p.name != "kustomization.yaml")


def test_k8s_documents_are_well_formed(k8s_docs):
    assert k8s_docs
    for doc in k8s_docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"]["name"]
    deployments = _by_kind(k8s_docs, "Deployment")
    assert {f"liveness-{n}" for n in ("gateway", *POOLS)} <= set(deployments)
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        for container in spec["template"]["spec"]["containers"]:
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name
            assert container["readinessProbe"] and container["livenessProbe"], name


def test_gateway_probes_and_service(k8s_docs):
    gateway = _by_kind(k8s_docs, "Deployment")["liveness-gateway"]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = _by_kind(k8s_docs, "Service")["liveness-gateway"]
    assert service["spec"]["selector"].items() <= (
        gateway["spec"]["template"]["metadata"]["labels"].items())


@pytest.mark.parametrize("pool", POOLS)
def test_each_pool_has_a_worker_probe_and_a_keda_scaler_on_its_queue(k8s_docs, pool):
    deployment = _by_kind(k8s_docs, "Deployment")[f"liveness-{pool}"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert f"-Q {pool} " in " ".join(container["command"])
    assert f"ping -d {pool}@" in " ".join(container["livenessProbe"]["exec"]["command"])
    scaled = _by_kind(k8s_docs, "ScaledObject")[f"liveness-{pool}"]
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"liveness-{pool}"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == pool
    assert int(trigger["metadata"]["listLength"]) > 0


def test_k8s_config_names_real_settings(k8s_docs):
    config = _by_kind(k8s_docs, "ConfigMap")["liveness-config"]["data"]
    secret = _by_kind(k8s_docs, "Secret")["liveness-secrets"]["stringData"]
    assert set(config) | set(secret) <= SETTING_VARS, (set(config) | set(secret)) - SETTING_VARS
    assert {"LIVENESS_API_KEY_HASHES", "LIVENESS_WEBHOOK_SECRET"} <= set(secret)
    for deployment in _by_kind(k8s_docs, "Deployment").values():
        if deployment["metadata"]["name"] == "liveness-redis":
            continue
        refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "liveness-config"}} in refs
        assert {"secretRef": {"name": "liveness-secrets"}} in refs


def test_dockerignore_keeps_the_venv_out():
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    assert Path(PROJECT_ROOT / "deploy/ensure-redis.sh").is_file()
