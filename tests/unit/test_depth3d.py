"""The depth3d test's mesh backend: the canonical frame, the depth map and volume, the
signals, the classifiers, and a model folder scored as the pool scores it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage import data

from common.errors import ModelError
from common.estimator import ModelInfo
from common.faces import locate_face
from workers.depth3d.evaluate import TrainingConfig, features, fit_classifier, predict
from workers.depth3d.model import save_model_folder
from workers.depth3d.networks import build_classifier, build_voxnet
from workers.depth3d.reconstruct import canonical_points, reconstruct_mesh
from workers.depth3d.scorer import Depth3dTest
from workers.depth3d.signals import (
    SIGNALS,
    flatness,
    landmark_fit,
    mesh_signals,
    nose_relief,
    reference_shape,
    shape_deviation,
)
from workers.depth3d.volume import DEPTH_FAR, depth_map, occupancy, pack, unpack


@pytest.fixture(scope="module")
def astronaut():
    image = data.astronaut()
    face = locate_face(image)
    assert face.found
    return image, face, reconstruct_mesh(image, face)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def test_the_canonical_frame_removes_pose_size_and_position(astronaut) -> None:
    _, _, recon = astronaut
    moved = 3.7 * recon.image_points @ _rotation(0.4, -0.3, 0.9).T + np.array([50, -20, 7])
    again, iod = canonical_points(moved)
    np.testing.assert_allclose(again, recon.points, atol=1e-4)
    assert iod == pytest.approx(3.7 * recon.iod_px, rel=1e-5)
    assert np.linalg.norm(recon.points[263] - recon.points[33]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="468"):
        canonical_points(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="degenerate"):
        canonical_points(np.zeros((468, 3)))


def test_the_astronauts_reconstruction_is_a_face(astronaut) -> None:
    _image, face, recon = astronaut
    eyes = np.asarray(face.landmarks[:2])
    assert recon.iod_px == pytest.approx(np.linalg.norm(eyes[1] - eyes[0]) * 1.45, rel=0.35)
    assert nose_relief(recon.points) > 0.2  # the nose stands out of the cheeks
    assert recon.points[1, 2] < np.median(recon.points[:, 2])


def test_a_depth_map_and_its_volume(astronaut) -> None:
    _, _, recon = astronaut
    depth = depth_map(recon.points, 32)
    assert depth.shape == (32, 32) and depth.dtype == np.float32
    assert depth[0, 0] == DEPTH_FAR and depth[16, 16] < 0  # corner empty, nose near
    volume = occupancy(depth)
    assert volume.shape == (32, 32, 32)
    column = volume[16, 16]
    assert column[-1] == 1 and column[0] == 0 and np.all(np.diff(column) >= 0)
    assert not volume[0, 0].any()
    np.testing.assert_array_equal(unpack(pack(volume), volume.shape), volume)
    assert pack(volume).nbytes == 32**3 // 8
    flat = recon.points.copy()
    flat[:, 2] = 0.0
    assert np.allclose(depth_map(flat, 16)[depth_map(flat, 16) < DEPTH_FAR], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="points"):
        depth_map(np.full((5, 3), np.nan), 8)


def test_signals_tell_a_flat_face_from_the_reconstruction(astronaut) -> None:
    _image, _, recon = astronaut
    reference = reference_shape(recon.points[None])
    values = mesh_signals(recon.points, recon.image_points, reference)
    assert values.shape == (len(SIGNALS),) and np.all(np.isfinite(values))
    assert shape_deviation(recon.points, reference) == pytest.approx(0.0, abs=1e-5)
    flat = recon.points.copy()
    flat[:, 2] = 0.0
    assert nose_relief(flat) == pytest.approx(0.0, abs=1e-6)
    assert flatness(flat) < 1e-6 < flatness(recon.points)
    assert shape_deviation(flat, reference) > 0.05
    # the reference projected by an affine camera explains its own 2-D points exactly
    assert landmark_fit(np.column_stack([reference[:, :2] * 40 + 100, reference[:, 2]]),
                        reference) == pytest.approx(0.0, abs=1e-6)
    assert landmark_fit(recon.image_points, reference) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="finite"):
        reference_shape(np.full((2, 468, 3), np.nan))


def test_voxnets_volume_is_the_occupancy_rule(astronaut) -> None:
    _, _, recon = astronaut
    depth = depth_map(recon.points, 32)[None]
    model = build_voxnet(32)
    assert model.output_shape == (None, 1)
    inner = model.get_layer("occupancy")
    np.testing.assert_array_equal(np.asarray(inner(depth))[..., 0], occupancy(depth))
    names = [layer.name for layer in model.layers]
    conv1, conv2 = model.get_layer("conv1"), model.get_layer("conv2")
    assert conv1.filters == conv2.filters == 32
    assert conv1.kernel_size == (5, 5, 5) and conv1.strides == (2, 2, 2)
    assert conv2.kernel_size == (3, 3, 3) and model.get_layer("fc1").units == 128
    assert names.index("conv1") < names.index("conv2") < names.index("fc1")
    with pytest.raises(ValueError, match="unknown depth3d classifier"):
        build_classifier("pointnet", 32)


@pytest.mark.parametrize("kind", ["depthnet", "voxnet"])
def test_a_model_folder_scores_as_keras_does(tmp_path, astronaut, kind) -> None:
    """Fit on a few synthetic faces (the astronaut's mesh, its relief scaled: deep =
    bona fide, flattened = attack), write the folder, load it as the pool does."""
    image, face, recon = astronaut
    rng = np.random.default_rng(0)
    scales = np.concatenate([rng.uniform(0.9, 1.1, 12), rng.uniform(0.0, 0.2, 12)])
    points = np.stack([recon.points * np.array([1, 1, s], np.float32) for s in scales])
    image_points = np.repeat(recon.image_points[None], len(scales), axis=0)
    y = np.array([1] * 12 + [0] * 12)
    rows = np.ones(len(y), bool)
    depth, sig, reference = features(points, image_points, rows, 16)
    config = TrainingConfig(kind, 16, epochs=3)
    model = fit_classifier(config, depth, sig, y)
    info = ModelInfo(test="depth3d", name=f"mesh-{kind}16", version="test", threshold=0.5)
    params = {"backend": "mesh", "kind": kind, "side": 16, "signals": list(SIGNALS)}
    check = {"depth": depth[:4], "signals": sig[:4]}
    save_model_folder(tmp_path, model, reference, info, params,
                      check if kind == "depthnet" else {"depth": depth[:4]})
    test = Depth3dTest.from_dir(tmp_path)
    got_depth, got_sig = test.features(image, face)
    np.testing.assert_allclose(got_depth, depth_map(recon.points, 16), atol=1e-4)
    expected = predict(model, kind, got_depth[None], got_sig[None])[0]
    assert test.score(image, face) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ModelError, match="needs the face"):
        test.score(image, None)
    doc = json.loads((tmp_path / "model.json").read_text())
    doc["params"]["backend"] = "laser"
    bad = tmp_path / "bad"
    bad.mkdir()
    from common.modelfolder import write_model_folder

    write_model_folder(bad, {k: v for k, v in doc.items()
                             if k not in ("files", "manifest_sha256")},
                       {n: (tmp_path / n).read_bytes() for n in doc["files"]})
    with pytest.raises(ModelError, match="unknown reconstruction backend"):
        Depth3dTest.from_dir(bad)


def test_a_vrn_model_needs_its_weights(tmp_path, astronaut, monkeypatch) -> None:
    _, _, recon = astronaut
    points = np.stack([recon.points, recon.points * np.array([1, 1, 0], np.float32)])
    depth, sig, reference = features(points, np.stack([recon.image_points] * 2),
                                     np.ones(2, bool), 16)
    model = fit_classifier(TrainingConfig("voxnet", 16, 1), depth, sig, np.array([1, 0]))
    info = ModelInfo(test="depth3d", name="vrn-voxnet16", version="test", threshold=0.5)
    save_model_folder(tmp_path, model, reference, info,
                      {"backend": "vrn", "kind": "voxnet", "side": 16})
    monkeypatch.setenv("LIVENESS_VRN_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(ModelError, match="LIVENESS_VRN_WEIGHTS"):
        Depth3dTest.from_dir(tmp_path)
