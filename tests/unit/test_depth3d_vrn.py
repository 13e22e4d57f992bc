"""The depth3d test's ``vrn`` backend: VRN builds at the paper's sizes, and weights
written in the documented layout (a PyTorch state dict, generated here with random
values) load into it and reproduce the network they came from; files that do not fit
are refused naming the mismatch. No real VRN weights can be obtained here."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ModelError
from tests.torchfiles import install_fake_torch, write_zip_checkpoint
from workers.depth3d.volume import DEPTH_FAR
from workers.depth3d.vrn import (
    build_vrn,
    load_vrn_weights,
    parameter_shapes,
    volume_depth_map,
)

SMALL = {"features": 16, "stacks": 2, "depth": 2, "volume_depth": 12, "input_side": 32}


def _random_state(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Random tensors in the documented layout (PyTorch shapes, load order)."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in parameter_shapes(model):
        values = rng.normal(0, 0.2, size=shape).astype(np.float32)
        if name.endswith("running_var"):
            values = np.abs(values) + 0.5
        state[f"module.{name}"] = values
    return state


def _exported_state(model) -> dict[str, np.ndarray]:
    """A Keras VRN's own weights written out in PyTorch's layout (the inverse of the
    loader's conversion): batch norms as (weight, bias, running_mean, running_var),
    convolution kernels (kh, kw, a, b) → (b, a, kh, kw)."""
    import keras

    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            state.update({f"{layer.name}.weight": gamma, f"{layer.name}.bias": beta,
                          f"{layer.name}.running_mean": mean,
                          f"{layer.name}.running_var": var + 0.5})
            layer.set_weights([gamma, beta, mean, var + 0.5])  # make the variance count
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kernel, bias = layer.get_weights()
            state[f"{layer.name}.weight"] = np.transpose(kernel, (3, 2, 0, 1)).copy()
            state[f"{layer.name}.bias"] = bias
    return state


def test_vrn_has_the_papers_shape() -> None:
    model = build_vrn()
    assert model.input_shape == (None, 192, 192, 3)
    assert model.output_shape == (None, 192, 192, 200)
    shapes = dict(parameter_shapes(model))
    assert shapes[next(iter(shapes))] == (64, 3, 7, 7)  # the 7×7 stride-2 stem
    assert list(shapes.values())[-2] == (256, 200, 4, 4)  # transposed conv (in, out, kh, kw)
    with pytest.raises(ValueError, match="divisible"):
        build_vrn(input_side=100)


def test_weights_in_the_documented_layout_load_and_reproduce_the_network(
        tmp_path, monkeypatch) -> None:
    fake = install_fake_torch(monkeypatch)
    source = build_vrn(**SMALL)  # Keras's own random initialisation
    state = _exported_state(source)
    path = write_zip_checkpoint(tmp_path / "vrn_unguided.pth", state, fake)
    loaded = build_vrn(**SMALL)
    assert load_vrn_weights(loaded, path) == len(state)
    x = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(source(x, training=False))
    got = np.asarray(loaded(x, training=False))
    assert got.shape == (2, 32, 32, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(got) > 0.05  # the random weights reach the output


def test_files_that_do_not_fit_are_refused(tmp_path, monkeypatch) -> None:
    fake = install_fake_torch(monkeypatch)
    model = build_vrn(**SMALL)
    state = _random_state(model)
    short = dict(list(state.items())[:-1])
    with pytest.raises(ModelError, match="tensors, the network has"):
        load_vrn_weights(model, write_zip_checkpoint(tmp_path / "short.pth", short, fake))
    keys = list(state)
    swapped = dict(state)
    swapped[keys[0]], swapped[keys[2]] = state[keys[2]], state[keys[0]]
    with pytest.raises(ModelError, match="expects"):
        load_vrn_weights(model, write_zip_checkpoint(tmp_path / "swapped.pth", swapped, fake))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pth"):
        load_vrn_weights(model, tmp_path / "junk.pth")


def test_a_volume_becomes_the_classifiers_depth_map() -> None:
    """A half-ball facing the camera: deepest at the rim, nearest in the middle."""
    n, d = 64, 40
    yy, xx = np.mgrid[:n, :n]
    r2 = ((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 24.0**2
    front = np.where(r2 < 1, 20 - 16 * np.sqrt(np.clip(1 - r2, 0, 1)), d)
    volume = (np.arange(d)[None, None, :] >= front[..., None]).astype(np.float32)
    depth = volume_depth_map(volume, 32)
    assert depth.shape == (32, 32) and depth.dtype == np.float32
    assert depth[0, 0] == DEPTH_FAR  # no face in the corner
    assert depth[16, 16] < depth[16, 6] < DEPTH_FAR  # the centre is nearer than the rim
    empty = volume_depth_map(np.zeros((8, 8, 4)), 16)
    assert np.all(empty == DEPTH_FAR)
