"""Every model file a worker loads is pinned by its SHA-256 and checked (issue 15.21):
each shipped model folder, with any of its files tampered with, is refused — weight
files, model.json itself (a hand-edited threshold, ``"files": {}``) — and so are the
face stage's model files."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from common.config import PROJECT_ROOT, Settings
from common.errors import ModelError
from common.fusion import load_fusion
from common.modelfolder import MANIFEST, manifest_digest, pin_model_folder, read_model_folder
from common.queueing import make_celery
from common.registry import TestRegistry, default_registry
from workers.tasks import verify_models

SHIPPED = ("cnn", "fasnet", "quality", "fusion")


def _load(models: Path, name: str) -> object:
    """Load ``models/<name>`` the way its pool does (a fresh registry: no cache)."""
    if name == "fusion":
        return load_fusion(models)
    registry = TestRegistry(list(default_registry()))
    return registry.load_scorer(name, models)


def _flip(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for name in SHIPPED:
        shutil.copytree(PROJECT_ROOT / "models" / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_folder_loads_and_every_tampered_file_is_refused(models: Path,
                                                                     name: str) -> None:
    folder = models / name
    _load(models, name)  # as shipped
    doc = json.loads((folder / MANIFEST).read_text())
    for weight in doc["files"]:  # a weight file changed by one bit
        original = (folder / weight).read_bytes()
        _flip(folder / weight)
        with pytest.raises(ModelError, match=f"{weight}: SHA-256"):
            _load(models, name)
        (folder / weight).write_bytes(original)
    # model.json edited by hand: a threshold, or the file list emptied
    edited = {**doc, "info": {**doc["info"], "threshold": 0.01}}
    (folder / MANIFEST).write_text(json.dumps(edited, indent=1))
    with pytest.raises(ModelError, match="does not match its manifest_sha256"):
        _load(models, name)
    if doc["files"]:
        (folder / MANIFEST).write_text(json.dumps({**doc, "files": {}}, indent=1))
        with pytest.raises(ModelError, match="does not match its manifest_sha256"):
            _load(models, name)
    unsealed = {k: v for k, v in doc.items() if k != "manifest_sha256"}
    (folder / MANIFEST).write_text(json.dumps(unsealed, indent=1))
    with pytest.raises(ModelError, match="has no manifest_sha256"):
        _load(models, name)


@pytest.mark.parametrize(("name", "weight"), [("cnn", "model.tflite"),
                                              ("fasnet", "model.tflite"),
                                              ("quality", "weights.npz")])
def test_a_weight_file_the_manifest_does_not_list_is_never_loaded(models: Path, name: str,
                                                                  weight: str) -> None:
    """Issue 15.21's reproduction: ``"files": {}`` (even re-digested) and a swapped weight
    file used to load unchecked."""
    folder = models / name
    doc = json.loads((folder / MANIFEST).read_text())
    doc["files"] = {}
    doc["manifest_sha256"] = manifest_digest(doc)
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1))
    _flip(folder / weight)
    with pytest.raises(ModelError, match=f"does not list {weight}"):
        _load(models, name)


def test_a_worker_refuses_to_start_on_a_tampered_folder(models: Path) -> None:
    settings = dataclasses.replace(Settings(), models_dir=models)
    app = make_celery(settings)
    verify_models(app, ["face", "cnn", "quality", "fusion"])  # as shipped: fine
    fusion = models / "fusion" / MANIFEST
    doc = json.loads(fusion.read_text())
    doc["params"]["retry_band"] = 0.0
    fusion.write_text(json.dumps(doc, indent=1))
    with pytest.raises(ModelError, match=r"fusion/model\.json"):
        verify_models(app, ["fusion"])
    pin_model_folder(models / "fusion")  # a deliberate change, re-pinned: accepted
    verify_models(app, ["fusion"])
    assert read_model_folder(models / "fusion")["params"]["retry_band"] == 0.0


def test_the_face_models_are_pinned(tmp_path: Path, monkeypatch) -> None:
    from common.faces import blazeface, detectors
    from common.faces.blazeface import PINNED_SHA256, model_dir, pinned_model

    for file in PINNED_SHA256:
        assert pinned_model(file).is_file()
    copy = tmp_path / "data"
    shutil.copytree(model_dir(), copy)
    monkeypatch.setattr(blazeface, "model_dir", lambda: copy)
    detectors.check_detector("blazeface")  # the copy is intact
    for file in PINNED_SHA256:
        original = (copy / file).read_bytes()
        _flip(copy / file, offset=len(original) // 2)
        with pytest.raises(ModelError, match=f"{file}: SHA-256 .* is not the pinned"):
            detectors.check_detector("blazeface")
        with pytest.raises(ModelError, match=file):
            pinned_model(file)
        (copy / file).write_bytes(original)
