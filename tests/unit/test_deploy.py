"""The deployment files parse and describe the service the code implements.

No Docker engine, ``docker compose`` plugin, cluster or kubeconform is available here,
so the files are checked structurally with PyYAML: services, images, commands,
environment, health checks, probes, KEDA triggers and settings names.

The pools are the queues of the job pipeline as the test registry derives them
(``default_registry().queues``: face, one per test, fusion), so registering a test
without its compose service, Dockerfile, Deployment and ScaledObject fails here.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from common.config import PROJECT_ROOT, Settings
from common.registry import FACE_QUEUE, FUSION_QUEUE, default_registry
from common.sealing import new_key as new_image_key

REGISTRY = default_registry()
#: One worker pool per queue of the job pipeline: face, each test's queue, fusion.
POOLS: tuple[str, ...] = REGISTRY.queues
#: The worker entry point (``celery -A workers.worker worker -Q <queue>``).
WORKER_APP = "workers.worker"
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


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _worker_deployments(docs: list[dict]) -> dict[str, dict]:
    return {name: d for name, d in _by_kind(docs, "Deployment").items()
            if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"}


def test_pools_are_the_registry_queues():
    assert POOLS[0] == FACE_QUEUE and POOLS[-1] == FUSION_QUEUE
    assert set(REGISTRY.test_queues) <= set(POOLS)
    assert (PROJECT_ROOT / (WORKER_APP.replace(".", "/") + ".py")).is_file()


def test_every_registry_queue_has_its_deploy_files(compose, k8s_docs):
    """A queue (e.g. a newly registered test's) needs a pool in compose, Docker and k8s."""
    deployments = _by_kind(k8s_docs, "Deployment")
    scaled = _by_kind(k8s_docs, "ScaledObject")
    missing = []
    for pool in POOLS:
        if pool not in compose["services"]:
            missing.append(f"{pool}: no service in docker-compose.yml")
        if not (DOCKER / f"{pool}.Dockerfile").is_file():
            missing.append(f"{pool}: no deploy/docker/{pool}.Dockerfile")
        if f"liveness-{pool}" not in deployments:
            missing.append(f"{pool}: no Deployment liveness-{pool} in deploy/k8s/workers.yaml")
        if f"liveness-{pool}" not in scaled:
            missing.append(f"{pool}: no ScaledObject liveness-{pool} in deploy/k8s/keda.yaml")
    assert not missing, "queues of the registry without a worker pool:\n" + "\n".join(missing)


def test_no_pool_without_a_registry_queue(compose, k8s_docs):
    """Exactly one compose service, Deployment and ScaledObject per pool, none stale."""
    extra = set(compose["services"]) - {"redis", "gateway", *POOLS}
    assert not extra, f"compose services for queues the registry does not have: {extra}"
    pools = {f"liveness-{pool}" for pool in POOLS}
    for kind, names in (("worker Deployment", set(_worker_deployments(k8s_docs))),
                        ("ScaledObject", set(_by_kind(k8s_docs, "ScaledObject")))):
        assert names == pools, f"{kind}s not matching the registry queues: {names ^ pools}"
    dockerfiles = {p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile")}
    assert dockerfiles == {"gateway", *POOLS}, dockerfiles ^ {"gateway", *POOLS}


def test_compose_has_redis_gateway_and_one_service_per_pool(compose):
    services = compose["services"]
    assert set(services) == {"redis", "gateway", *POOLS}, (
        set(services) ^ {"redis", "gateway", *POOLS})
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
        check = " ".join(compose["services"][pool]["healthcheck"]["test"])
        assert f"-A {WORKER_APP} inspect ping -d {pool}@" in check, check


def _instructions(text: str) -> str:
    """The lower-cased lines that do something (comments dropped)."""
    return "\n".join(line for line in text.lower().splitlines() if not line.startswith("#"))


@pytest.mark.parametrize("name", ["gateway", *POOLS])
def test_each_image_carries_only_its_pool(name):
    dockerfile = DOCKER / f"{name}.Dockerfile"
    assert dockerfile.is_file(), f"no {dockerfile.relative_to(PROJECT_ROOT)}"
    text = dockerfile.read_text()
    assert re.search(r"^USER 10001$", text, re.M)            # non-root
    assert "HEALTHCHECK" in text
    lowered = _instructions(text)
    assert "tensorflow" not in lowered and "[cnn]" not in lowered  # serving uses LiteRT
    if name == "gateway":
        requirements = _instructions((DOCKER / "gateway-requirements.txt").read_text())
        for heavy in ("dlib", "opencv", "scikit", "tensorflow", "face_recognition"):
            assert heavy not in requirements and heavy not in lowered
        assert "--no-deps" in text
        assert re.findall(r"^COPY models\S*", text, re.M) == ["COPY models/profiles"]
    else:
        assert f"-Q {name} " in text                     # consumes only its own queue
        assert f"celery -A {WORKER_APP} worker -Q {name} " in text
        assert f"celery -A {WORKER_APP} inspect ping" in text
        assert ("COPY models/quality" in text) == (name == "quality")
        assert ("COPY models/cnn" in text) == (name == "cnn")
        if name == FACE_QUEUE:                             # pipeline stage: no model
            assert "COPY models" not in text
        if name == FUSION_QUEUE:                           # fusion: its model and profiles
            assert set(re.findall(r"^COPY (models\S*)", text, re.M)) <= {
                "models/fusion", "models/profiles"}
            assert "COPY models/profiles" in text
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
                         env={"PATH": "/usr/bin:/bin", "LIVENESS_API_KEY_HASHES": "",
                              "LIVENESS_WEBHOOK_SECRET": secrets.token_urlsafe(32),
                              "LIVENESS_IMAGE_KEYS": new_image_key()})
    assert out.returncode == 0, out.stderr[-2000:]


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
    deployment = _worker_deployments(k8s_docs).get(f"liveness-{pool}")
    assert deployment, f"no worker Deployment liveness-{pool} in deploy/k8s/workers.yaml"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith(f"face-liveness/{pool}:")
    assert f"celery -A {WORKER_APP} worker -Q {pool} " in " ".join(container["command"])
    for probe in ("readinessProbe", "livenessProbe"):
        check = " ".join(container[probe]["exec"]["command"])
        assert f"celery -A {WORKER_APP} inspect ping -d {pool}@" in check, check
    scaled = _by_kind(k8s_docs, "ScaledObject").get(f"liveness-{pool}")
    assert scaled, f"no ScaledObject liveness-{pool} in deploy/k8s/keda.yaml"
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"liveness-{pool}"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == pool
    assert int(trigger["metadata"]["listLength"]) > 0


def _required_queues(env: dict) -> tuple[str, ...]:
    """The queues ``/readyz`` requires: ``LIVENESS_REQUIRED_QUEUES`` or its default."""
    explicit = [q.strip() for q in env.get("LIVENESS_REQUIRED_QUEUES", "").split(",") if q.strip()]
    if explicit:
        return tuple(explicit)
    tests = REGISTRY.resolve(None, env.get("LIVENESS_DEFAULT_TESTS", ""))
    return tuple(dict.fromkeys((FACE_QUEUE, *(REGISTRY.get(t).queue for t in tests),
                                FUSION_QUEUE)))


def test_required_queues_have_an_always_on_pool(compose, k8s_docs):
    """``/readyz`` needs a worker on face, the default tests' queues and fusion."""
    config = _by_kind(k8s_docs, "ConfigMap")["liveness-config"]["data"]
    scaled = _by_kind(k8s_docs, "ScaledObject")
    for where, env in (("k8s", config), ("compose", compose["services"]["gateway"]["environment"])):
        required = _required_queues(env)
        assert {FACE_QUEUE, FUSION_QUEUE} <= set(required), (where, required)
        assert set(required) <= set(POOLS), (where, set(required) - set(POOLS))
        if where == "k8s":
            for queue in required:         # KEDA must not scale a required pool to zero
                assert int(scaled[f"liveness-{queue}"]["spec"]["minReplicaCount"]) >= 1, queue


def test_k8s_config_names_real_settings(k8s_docs):
    config = _by_kind(k8s_docs, "ConfigMap")["liveness-config"]["data"]
    secret = _by_kind(k8s_docs, "Secret")["liveness-secrets"]["stringData"]
    assert set(config) | set(secret) <= SETTING_VARS, (set(config) | set(secret)) - SETTING_VARS
    assert {"LIVENESS_API_KEY_HASHES", "LIVENESS_WEBHOOK_SECRET",
            "LIVENESS_IMAGE_KEYS"} <= set(secret)
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


# --- the settings the deployment files give (issue 15, item 8) ------------------------------
#
# No Docker engine or cluster here: the environment each container would get is computed
# from the files themselves — the image's ``ENV`` (its Dockerfile), then compose's
# ``environment`` (interpolated from the operator's shell as compose does) or the k8s
# ConfigMap and Secret its Deployment names in ``envFrom`` (then its ``env``) — and the
# service's real constructors are run under exactly that environment.

#: What the operator exports before ``docker compose up`` / writes into the k8s Secret.
OPERATOR_SECRETS = {
    "LIVENESS_API_KEY_HASHES": f"alice:{'ab' * 32}",
    "LIVENESS_WEBHOOK_SECRET": "operator-" + "0123456789abcdef" * 3,
    "LIVENESS_IMAGE_KEYS": "b3BlcmF0b3ItaW1hZ2Uta2V5LTAxMjM0NTY3ODlhYmM",
}
#: The images' working directory: a copy of this checkout's files (``COPY``).
IMAGE_WORKDIR = "/app"


class ComposeVariableMissingError(ValueError):
    """A ``${VAR:?message}`` / ``${VAR?message}`` variable has no value."""


_COMPOSE_VARIABLE = re.compile(r"""\$(?:
    (?P<escaped>\$)
  | (?P<named>[A-Za-z_][A-Za-z0-9_]*)
  | \{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}
  | (?P<invalid>)
)""", re.X)


def compose_interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` with compose's variable syntax replaced from ``env`` (the operator's shell).

    As the Compose Specification's "Interpolation" section defines it: ``$$`` is a literal
    ``$``; ``$VAR`` and ``${VAR}`` (unset: empty); ``${VAR:-default}`` (default when unset
    or empty), ``${VAR-default}`` (when unset); ``${VAR:?message}`` / ``${VAR?message}``
    (error when unset or empty / unset: :class:`ComposeVariableMissingError`);
    ``${VAR:+replacement}`` / ``${VAR+replacement}``. Nested ``${…}`` inside a default
    raises ``NotImplementedError`` (no deployment file here uses it).
    """

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        name = match["braced"]
        if name is None:
            raise ValueError(f"invalid interpolation format in {value!r}")
        op, arg = match["op"], match["arg"] or ""
        if op is None:
            return env.get(name, "")
        if "${" in arg:
            raise NotImplementedError(f"nested interpolation in {value!r}")
        given = env.get(name, "") != "" if op.startswith(":") else name in env
        if op.endswith("-"):
            return env[name] if given else compose_interpolate(arg, env)
        if op.endswith("?"):
            if not given:
                raise ComposeVariableMissingError(f"{name}: {arg}")
            return env[name]
        return compose_interpolate(arg, env) if given else ""

    return _COMPOSE_VARIABLE.sub(one, value)


def _interpolated(node: object, env: dict[str, str]) -> object:
    """Every string value of a parsed compose file interpolated (keys are not)."""
    if isinstance(node, str):
        return compose_interpolate(node, env)
    if isinstance(node, dict):
        return {k: _interpolated(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, env) for v in node]
    return node


def _image_env(image: str) -> dict[str, str]:
    """The ``LIVENESS_*`` variables the image's Dockerfile sets with ``ENV``, paths under
    the image's working directory mapped to this checkout."""
    name = image.split("/")[-1].split(":")[0]
    text = (DOCKER / f"{name}.Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return {k: _in_checkout(v) for k, v in env.items() if k.startswith("LIVENESS_")}


def _in_checkout(value: str) -> str:
    if value == IMAGE_WORKDIR or value.startswith(IMAGE_WORKDIR + "/"):
        return str(PROJECT_ROOT) + value[len(IMAGE_WORKDIR):]
    return value


def _service_environment(service: dict, shell: dict[str, str]) -> dict[str, str]:
    """A compose service's ``environment`` (mapping or list form) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] if "=" in item else (item, None) for item in raw)
    env = {}
    for key, value in raw.items():
        if value is None:                     # `KEY:` alone: taken from the shell, if set
            if key in shell:
                env[key] = shell[key]
        else:
            env[key] = str(value) if not isinstance(value, bool) else str(value).lower()
    return env


def compose_environments(shell: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each service's container environment as ``docker compose up`` gives it."""
    raw = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = _interpolated(raw, shell)["services"]  # type: ignore[index]
    return {name: {**_image_env(service["image"]), **_service_environment(service, shell)}
            for name, service in services.items() if name in ("gateway", *POOLS)}


def k8s_environments(docs: list[dict], secret_values: dict[str, str]
                     ) -> dict[str, dict[str, str]]:
    """Each Deployment's container environment: image ``ENV``, ``envFrom`` ConfigMaps and
    Secrets in order (the Secret's ``stringData`` with ``secret_values`` written over it,
    as the operator does), then the container's ``env``."""
    maps = {name: {k: str(v) for k, v in d.get("data", {}).items()}
            for name, d in _by_kind(docs, "ConfigMap").items()}
    secrets_ = {name: {k: str(v) for k, v in d.get("stringData", {}).items()}
                for name, d in _by_kind(docs, "Secret").items()}
    out = {}
    for name, deployment in _by_kind(docs, "Deployment").items():
        if name == "liveness-redis":
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = _image_env(container["image"])
        for ref in container.get("envFrom", []):
            if "configMapRef" in ref:
                env.update(maps[ref["configMapRef"]["name"]])
            if "secretRef" in ref:
                env.update({**secrets_[ref["secretRef"]["name"]], **secret_values})
        env.update({e["name"]: str(e["value"]) for e in container.get("env", [])
                    if "value" in e})
        out[name.removeprefix("liveness-")] = {k: _in_checkout(v) for k, v in env.items()}
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Building the apps must not reach anything (Redis need not answer): any name
    lookup other than loopback fails the test."""
    import socket

    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"building the service looked up {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


def _build_service(monkeypatch, env: dict[str, str], role: str) -> Settings:
    """``Settings.from_env()`` under exactly ``env``, then the gateway app (``role ==
    "gateway"``) or the worker pools' Celery app, as the containers build them."""
    from common.queueing import make_celery
    from gateway import create_app
    from workers.tasks import build_worker_app

    for key in [k for k in os.environ if k.startswith("LIVENESS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    if role == "gateway":
        create_app(settings)
        make_celery(settings)
    else:
        build_worker_app(settings)
    return settings


def _check_deadlines(where: str, settings: Settings) -> None:
    """The margins the deploy files' comments promise: a task still running is never
    redelivered, and a SIGKILLed worker's task is redelivered and can run to its hard
    limit before the job's deadline."""
    longest = max([settings.task_time_limit_s,
                   *(spec.time_limit_s for spec in REGISTRY if spec.time_limit_s)])
    assert settings.visibility_timeout_s > longest, where
    assert settings.job_deadline_s >= settings.visibility_timeout_s + longest, where


def test_compose_settings_build_the_gateway_and_every_pool(monkeypatch, no_network):
    environments = compose_environments(dict(OPERATOR_SECRETS))
    assert set(environments) == {"gateway", *POOLS}
    for name, env in environments.items():
        settings = _build_service(monkeypatch, env, name)
        _check_deadlines(f"compose {name}", settings)
        assert settings.webhook_secret == OPERATOR_SECRETS["LIVENESS_WEBHOOK_SECRET"], name
    assert environments["gateway"]["LIVENESS_API_KEY_HASHES"] == (
        OPERATOR_SECRETS["LIVENESS_API_KEY_HASHES"])


@pytest.mark.parametrize("missing", sorted(OPERATOR_SECRETS))
def test_compose_refuses_to_start_without_the_operators_secrets(missing):
    shell = {k: v for k, v in OPERATOR_SECRETS.items() if k != missing}
    with pytest.raises(ComposeVariableMissingError, match=f"^{missing}: set {missing}"):
        compose_environments(shell)
    with pytest.raises(ComposeVariableMissingError, match=f"^{missing}: "):
        compose_environments({**shell, missing: ""})


def test_k8s_settings_build_the_gateway_and_every_pool(monkeypatch, no_network, k8s_docs):
    environments = k8s_environments(k8s_docs, OPERATOR_SECRETS)
    assert set(environments) == {"gateway", *POOLS}
    for name, env in environments.items():
        settings = _build_service(monkeypatch, env, name)
        _check_deadlines(f"k8s {name}", settings)
        assert settings.webhook_secret == OPERATOR_SECRETS["LIVENESS_WEBHOOK_SECRET"], name


def test_k8s_shipped_secret_must_be_replaced(monkeypatch, no_network, k8s_docs):
    """The Secret's placeholder webhook secret is refused: nothing starts until the
    operator sets a real one."""
    from common.config import SettingsError

    environments = k8s_environments(k8s_docs, {})
    for name, env in environments.items():
        with pytest.raises(SettingsError, match=r"LIVENESS_WEBHOOK_SECRET is the placeholder"
                           r"|LIVENESS_IMAGE_KEYS: entry 1 is not"):
            _build_service(monkeypatch, env, name)


def test_compose_interpolation_follows_the_specification():
    env = {"SET": "v", "EMPTY": ""}
    assert compose_interpolate("$$HOSTNAME ${SET} $SET", env) == "$HOSTNAME v v"
    assert compose_interpolate("${UNSET}|${EMPTY}", env) == "|"
    assert compose_interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-d}", env) == (
        "d  d d")
    assert compose_interpolate("${SET:+r}${EMPTY:+r}${EMPTY+r}${UNSET+r}", env) == "rr"
    assert compose_interpolate("${EMPTY?m}", env) == ""
    for spec in ("${EMPTY:?no value}", "${UNSET?no value}", "${UNSET:?no value}"):
        with pytest.raises(ComposeVariableMissingError, match="no value"):
            compose_interpolate(spec, env)


def test_keda_targets_follow_the_measured_run_times(k8s_docs):
    """deploy/README.md's table: each pool's measured task run time, and the KEDA
    ``listLength`` it gives (the tasks one replica runs in 2 s); keda.yaml carries it."""
    table = re.findall(r"^\| (\w+) \| ([0-9.]+) ms \| (\d+) \|$",
                       (PROJECT_ROOT / "deploy/README.md").read_text(), re.M)
    measured = {pool: (float(ms), int(length)) for pool, ms, length in table}
    assert set(measured) == set(POOLS), measured
    scaled = {so["spec"]["scaleTargetRef"]["name"].removeprefix("liveness-"):
              int(so["spec"]["triggers"][0]["metadata"]["listLength"])
              for so in _by_kind(k8s_docs, "ScaledObject").values()}
    for pool, (ms, length) in measured.items():
        # the table rounds the run time to the millisecond
        assert int(2000 / (ms + 0.5)) <= length <= int(2000 / max(ms - 0.5, 0.1)), (
            pool, ms, length)
        assert scaled[pool] == length, (pool, scaled[pool], length)
