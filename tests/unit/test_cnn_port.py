"""PyTorch checkpoints read without PyTorch (both layouts, generated here; code refused),
and the MobileNetV2 ImageNet port: scikit-image's coffee and cat photos come out as an
espresso/cup class and a cat class in the top 5."""

from __future__ import annotations

import io
import os
import pickle
import types
import zipfile

import numpy as np
import pytest
from skimage import data

from tests.torchfiles import install_fake_torch, pickle_state, state_of
from workers.cnn.imagenet_port import imagenet_centre_crop
from workers.torch_port import LEGACY_MAGIC, CheckpointError, load_state_dict


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    return install_fake_torch(monkeypatch)


def _state(fake: types.SimpleNamespace) -> tuple[dict, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {"conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
              "bn.bias": rng.normal(size=(4,)).astype(np.float32)}
    return state_of(arrays, fake), arrays


def test_zip_layout(tmp_path, fake_torch) -> None:
    state, arrays = _state(fake_torch)
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_state(state, fake_torch, legacy=False))
        for i, a in enumerate(arrays.values()):
            archive.writestr(f"archive/data/{i}", a.astype("<f4").tobytes())
    loaded = load_state_dict(path)
    assert list(loaded) == list(arrays)
    for k, a in arrays.items():
        np.testing.assert_array_equal(loaded[k], a)


def test_legacy_layout(tmp_path, fake_torch) -> None:
    state, arrays = _state(fake_torch)
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(pickle_state(state, fake_torch, legacy=True))
    pickle.dump([str(i) for i in range(len(arrays))], out, protocol=2)
    for a in arrays.values():
        out.write(int(a.size).to_bytes(8, "little") + a.astype("<f4").tobytes())
    path = tmp_path / "legacy.pth"
    path.write_bytes(out.getvalue())
    loaded = load_state_dict(path)
    for k, a in arrays.items():
        np.testing.assert_array_equal(loaded[k], a)
    path.write_bytes(out.getvalue()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(path)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_in_a_checkpoint_is_refused_not_run(tmp_path) -> None:
    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl",
                         pickle.dumps({"w": _Exploit(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="refused to load"):
        load_state_dict(path)
    assert not os.path.exists(marker)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_state_dict(tmp_path / "junk.pth")


# --- the port ------------------------------------------------------------------------------


def _photos() -> np.ndarray:
    """scikit-image's coffee and cat photos, ImageNet-cropped to 224 (uint8, (2, 224, 224, 3))."""
    return np.stack([imagenet_centre_crop(data.coffee()), imagenet_centre_crop(data.chelsea())])


ESPRESSO_OR_CUP = {967, 968, 504}  # espresso, cup, coffee mug
CATS = set(range(281, 286))        # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_mobilenet_v2_imagenet_port_top5() -> None:
    from workers.cnn.imagenet_port import mobilenet_v2_imagenet, torch_preprocess

    model = mobilenet_v2_imagenet(include_top=True)
    batch = torch_preprocess(_photos())
    probs = np.asarray(model(batch, training=False))
    coffee, cat = (set(np.argsort(-p)[:5].tolist()) for p in probs)
    assert coffee & ESPRESSO_OR_CUP, coffee
    assert cat & CATS, cat
    assert int(np.argmax(probs[0])) == 967  # espresso, as torchvision itself says


def test_efficientnet_lite0_imagenet_port_top5() -> None:
    from workers.cnn.efficientnet_lite import lite_preprocess
    from workers.cnn.imagenet_port import efficientnet_lite0_imagenet

    model = efficientnet_lite0_imagenet(include_top=True)
    batch = lite_preprocess(_photos())
    probs = np.asarray(model(batch, training=False))
    coffee, cat = (set(np.argsort(-p)[:5].tolist()) for p in probs)
    assert coffee & ESPRESSO_OR_CUP, coffee
    assert cat & CATS, cat
    assert int(np.argmax(probs[0])) == 967
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008  # EfficientNet-Lite0's 4.65 M parameters, all mapped
