"""deploy/k8s against the schemas of what applies it: every Kubernetes object against
the Kubernetes API's own OpenAPI schemas (``kubernetes-validate``, strict: an unknown
field is an error), every KEDA ScaledObject against KEDA's CRD model (``cloudcoil``'s
models of ``scaledobjects.keda.sh``: types checked, and nothing it does not know)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cloudcoil.models.keda.v1alpha1 as keda
import kubernetes_validate
import pytest
import yaml

from common.config import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy/k8s"
#: The Kubernetes release the manifests are checked against (the newest the validator
#: carries); `kubectl apply` of older clusters accepts the same objects.
VERSION = kubernetes_validate.latest_version()


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"
                              if "metadata" in doc else path.name, doc))
    return found


def kubernetes_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(n, d) for n, d in documents()
            if not d["apiVersion"].startswith("keda.sh/") and d.get("kind") != "Kustomization"]


def scaled_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(n, d) for n, d in documents() if d["apiVersion"].startswith("keda.sh/")]


def check_scaled_object(doc: dict[str, Any]) -> None:
    """KEDA's model must take ``doc`` and give all of it back (fields it does not know
    would be dropped: an unknown or misspelt field)."""
    model = keda.ScaledObject.model_validate(doc)
    back = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert back == doc, f"fields KEDA's ScaledObject does not have: {doc} != {back}"


def test_every_manifest_is_a_known_kind() -> None:
    kinds = {d["kind"] for _, d in documents()}
    assert kinds <= {"Namespace", "ConfigMap", "Secret", "Deployment", "Service",
                     "StatefulSet", "ScaledObject", "Kustomization", "PersistentVolumeClaim",
                     "NetworkPolicy", "PodDisruptionBudget"}, kinds
    assert scaled_objects() and kubernetes_objects()


@pytest.mark.parametrize(("name", "doc"), kubernetes_objects(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_kubernetes_objects_follow_the_api_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize(("name", "doc"), scaled_objects(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_scaled_objects_follow_kedas_crd(name: str, doc: dict[str, Any]) -> None:
    check_scaled_object(doc)


def test_the_validators_refuse_what_kubectl_would() -> None:
    deployment = next(d for _, d in kubernetes_objects() if d["kind"] == "Deployment")
    typo = copy.deepcopy(deployment)
    typo["spec"]["replica"] = 1                      # misspelt `replicas`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSION, strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, VERSION, strict=True)
    scaled = scaled_objects()[0][1]
    for broken in ({"minReplicaCount": "x"}, {"pollingIntervall": 5}):
        doc = copy.deepcopy(scaled)
        doc["spec"].update(broken)
        with pytest.raises((AssertionError, ValueError)):
            check_scaled_object(doc)


def test_the_kustomization_lists_files_that_exist() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert Path(K8S / "kustomization.yaml").is_file()
