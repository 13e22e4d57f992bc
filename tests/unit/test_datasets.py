"""Dataset managers, HDF5 cache, layout detection and group-disjoint splits."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from common.datasets import (
    CachedDataset,
    FolderDataset,
    Mad3dDataset,
    NuaaDataset,
    ReplayAttackDataset,
    Sample,
    attack_family,
    detect_kind,
    group_disjoint_split,
    groups,
    leave_one_group_out,
    open_dataset,
)
from common.datasets.base import even_indices
from common.errors import DatasetError
from tests.unit.fixtures_datasets import (
    MAD_RECORDINGS,
    NUAA_FILES,
    REPLAY_VIDEOS,
    make_3dmad,
    make_folder,
    make_nuaa,
    make_replay,
    write_image,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_file(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("folder"), "set_a", tsv="beside")


@pytest.fixture(scope="module")
def nuaa_root(tmp_path_factory) -> Path:
    return make_nuaa(tmp_path_factory.mktemp("nuaa"))


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("replay")
    return root, make_replay(root, n_frames=3)


@pytest.fixture(scope="module")
def mad(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("3dmad")
    return root, make_3dmad(root, n_frames=3)


# --------------------------------------------------------------------------- helpers


def test_sample_is_frozen_and_splits_key() -> None:
    s = Sample("train/real/v.mov#frame=12", 1, "none", "x", "c", "train")
    assert (s.path, s.frame, s.is_live) == ("train/real/v.mov", 12, True)
    assert Sample("live/a.jpg", 0, "print", "x", "c", "all").frame is None
    with pytest.raises(AttributeError):
        s.label = 0  # type: ignore[misc]


def test_even_indices_spread_and_clip() -> None:
    assert even_indices(10, 3) == [0, 4, 9]  # 4.5 rounds to even
    assert even_indices(3, 10) == [0, 1, 2]
    assert even_indices(0, 5) == []


def test_attack_family_groups_replay_species() -> None:
    assert attack_family("mobile_video") == "replay"
    assert attack_family("highdef_photo") == "replay"
    assert attack_family("print") == "print"
    assert attack_family("mask") == "mask"
    assert attack_family("weird") == "weird"


# --------------------------------------------------------------------------- folder


def test_folder_with_tsv_beside(folder_root: Path) -> None:
    ds = FolderDataset(folder_root)
    assert ds.tsv == folder_root.parent / "set_a.tsv"
    assert ds.name == "set_a"
    samples = ds.samples()
    assert [s.key for s in samples] == [
        "live/a.jpg",
        "live/b.png",
        "live/c.jpg",
        "spoof/d.jpg",
        "spoof/e.png",
    ]
    assert [s.label for s in samples] == [1, 1, 1, 0, 0]
    assert [s.attack_type for s in samples] == ["none"] * 3 + ["print", "unknown"]
    assert [s.subject for s in samples] == ["s1", "s1", "s2", "s1", "s2"]
    assert [s.collection for s in samples] == ["c1", "c1", "c2", "c1", "c2"]
    assert {s.split for s in samples} == {"all"}
    assert ds.samples("all") == samples
    assert ds.samples("train") == []


def test_folder_bytes_are_the_original_files(folder_root: Path) -> None:
    ds = FolderDataset(folder_root)
    for s in ds.samples():
        assert ds.read_bytes(s) == (folder_root / s.key).read_bytes()
        img = ds.read_image(s)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        # an independent decoder agrees (JPEG decoders may round differently by a level)
        diff = np.abs(img.astype(int) - _decode_file(folder_root / s.key))
        assert diff.max() <= (0 if s.key.endswith(".png") else 2)


def test_undecodable_file_raises_dataset_error(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "broken", tsv=None)
    (root / "live" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    ds = FolderDataset(root)
    bad = next(s for s in ds.samples() if s.key == "live/a.jpg")
    with pytest.raises(DatasetError, match=r"live/a\.jpg"):
        ds.read_image(bad)
    out = ds.build_cache(tmp_path / "broken.h5", progress=False)  # bytes are cached as they are
    with CachedDataset(out) as cache:
        i = [s.key for s in cache.samples].index("live/a.jpg")
        assert cache.bytes(i) == (root / "live" / "a.jpg").read_bytes()
        with pytest.raises(DatasetError, match=r"live/a\.jpg"):
            cache[i]


def test_folder_labels_tsv_inside_with_split_column(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "set_b", tsv=None)
    (root / "labels.tsv").write_text(
        "path\tlabel\tsplit\n"
        "live/a.jpg\tlive\ttrain\n"
        "spoof\\d.jpg\tspoof\ttest\n"  # Windows separator accepted
    )
    ds = FolderDataset(root)
    assert ds.tsv == root / "labels.tsv"
    samples = ds.samples()
    assert [(s.key, s.label, s.attack_type, s.split) for s in samples] == [
        ("live/a.jpg", 1, "none", "train"),
        ("spoof/d.jpg", 0, "unknown", "test"),
    ]
    assert {s.subject for s in samples} == {s.collection for s in samples} == {"set_b"}
    assert [s.key for s in ds.samples("test")] == ["spoof/d.jpg"]


def test_folder_without_tsv_uses_subfolders(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "set_c", tsv=None)
    samples = FolderDataset(root).samples()
    by_key = {s.key: s for s in samples}
    assert sorted(by_key) == [
        "live/a.jpg",
        "live/b.png",
        "live/c.jpg",
        "spoof/d.jpg",
        "spoof/e.png",
        "spoof/nested/f.jpg",
    ]  # notes.txt is ignored, nested images are found
    assert all(
        s.label == 1 and s.attack_type == "none" for k, s in by_key.items() if k.startswith("live/")
    )
    assert all(
        s.label == 0 and s.attack_type == "unknown"
        for k, s in by_key.items()
        if k.startswith("spoof/")
    )
    assert {s.subject for s in samples} == {s.collection for s in samples} == {"set_c"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("path\tlabel\nlive/a.jpg\tmaybe\n", "not live/spoof"),
        ("path\tlabel\nlive/zzz.jpg\tlive\n", "missing"),
        ("path\tlabel\n../outside.jpg\tlive\n", "relative"),
        ("file\tlabel\nlive/a.jpg\tlive\n", "columns"),
        ("path\tlabel\tattack_type\nlive/a.jpg\tlive\tprint\n", "contradicts"),
        ("path\tlabel\tsplit\nlive/a.jpg\tlive\tvalidation\n", "split"),
    ],
)
def test_folder_tsv_errors(tmp_path: Path, body: str, message: str) -> None:
    root = make_folder(tmp_path, "bad", tsv=None)
    (tmp_path / "bad.tsv").write_text(body)
    with pytest.raises(DatasetError, match=message):
        FolderDataset(root).samples()


def test_folder_without_tsv_needs_both_subfolders(tmp_path: Path) -> None:
    write_image(tmp_path / "only_live" / "live" / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="spoof/"):
        FolderDataset(tmp_path / "only_live")
    with pytest.raises(DatasetError, match="does not exist"):
        FolderDataset(tmp_path / "nowhere")


# --------------------------------------------------------------------------- NUAA


def test_nuaa_labels_subjects_and_official_splits(nuaa_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        ds = NuaaDataset(nuaa_root)
        samples = ds.samples()
    assert "missing" in caplog.text  # the listed-but-absent 0003 image
    assert ds.variant == "raw"
    expected = {
        f"{folder}/{subject}/{stem}.jpg": (folder, subject, split)
        for folder, subject, stem, split in NUAA_FILES
    }
    assert sorted(s.key for s in samples) == sorted(expected)
    for s in samples:
        folder, subject, split = expected[s.key]
        assert s.label == (1 if folder == "ClientRaw" else 0)
        assert s.attack_type == ("none" if folder == "ClientRaw" else "print")
        assert s.subject == f"nuaa_{subject}"
        assert s.collection == "nuaa"
        assert s.split == (split or "all")
    assert Counter(s.split for s in samples) == {"train": 3, "test": 2, "all": 1}
    assert {s.key for s in ds.samples("train")} == {
        k for k, v in expected.items() if v[2] == "train"
    }


def test_nuaa_bytes_identical_and_split_lists_optional(nuaa_root: Path, tmp_path: Path) -> None:
    ds = NuaaDataset(nuaa_root)
    for s in ds.samples():
        assert ds.read_bytes(s) == (nuaa_root / s.key).read_bytes()
    bare = make_nuaa(tmp_path / "bare")
    for lst in bare.glob("*.txt"):
        lst.unlink()
    assert {s.split for s in NuaaDataset(bare).samples()} == {"all"}


def test_nuaa_rejects_other_layouts(folder_root: Path) -> None:
    with pytest.raises(DatasetError, match="not a NUAA folder"):
        NuaaDataset(folder_root)


# --------------------------------------------------------------------------- Replay-Attack


def test_replay_attack_labels_species_subjects_splits(replay) -> None:
    root, _ = replay
    ds = ReplayAttackDataset(root, frames_per_video=2)
    samples = ds.samples()
    assert len(samples) == 2 * len(REPLAY_VIDEOS)
    for s in samples:
        split, label, subject, attack_type = REPLAY_VIDEOS[s.path]
        assert (s.split, s.label, s.subject, s.attack_type) == (split, label, subject, attack_type)
        assert s.collection == "replay_attack"
        assert s.frame in (0, 2)  # 2 of 3 frames, evenly: first and last
    assert {s.split for s in ds.samples("devel")} == {"devel"}
    assert len(ds.samples("test")) == 4


def test_replay_attack_frames_are_lossless_png(replay) -> None:
    root, written = replay
    ds = ReplayAttackDataset(root, frames_per_video=5)  # more than the 3 frames there
    samples = ds.samples()
    assert len(samples) == 3 * len(REPLAY_VIDEOS)
    for s in samples:
        data = ds.read_bytes(s)
        assert data.startswith(PNG_SIGNATURE)
        expected = written[s.path][s.frame]
        np.testing.assert_array_equal(ds.read_image(s), expected)
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decoded[:, :, ::-1], expected)


def test_replay_attack_frame_index_is_exact_with_inter_frame_codec(tmp_path: Path) -> None:
    """With a predictive codec (MPEG-4 part 2) frame N must be the N-th decoded frame."""
    rel = "train/real/client002_session01_webcam_authenticate_adverse_1.mov"
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (48, 32))
    assert writer.isOpened()
    for i in range(12):
        writer.write(np.full((32, 48, 3), 20 * i, np.uint8))
    writer.release()
    cap, sequential = cv2.VideoCapture(str(path)), []
    while (frame := cap.read())[0]:
        sequential.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
    cap.release()
    ds = ReplayAttackDataset(tmp_path, frames_per_video=4)
    assert [s.frame for s in ds.samples()] == [0, 4, 7, 11]
    for s in reversed(ds.samples()):  # out of order on purpose
        np.testing.assert_array_equal(ds.read_image(s), sequential[s.frame])


def test_replay_attack_bad_arguments(replay, folder_root: Path) -> None:
    with pytest.raises(ValueError, match="frames_per_video"):
        ReplayAttackDataset(replay[0], frames_per_video=0)
    with pytest.raises(DatasetError, match="Replay-Attack"):
        ReplayAttackDataset(folder_root)
    ds = ReplayAttackDataset(replay[0], frames_per_video=1)
    still = Sample("train/real/x.mov", 1, "none", "s", "c", "train")
    with pytest.raises(DatasetError, match="frame"):
        ds.read_bytes(still)


# --------------------------------------------------------------------------- 3DMAD


def test_3dmad_labels_subjects_and_subject_disjoint_splits(mad) -> None:
    root, written = mad
    ds = Mad3dDataset(root, frames_per_video=2)
    samples = ds.samples()
    assert len(samples) == 2 * len(MAD_RECORDINGS)
    assert {s.path for s in samples} == set(written)
    want_split = {1: "train", 8: "devel", 13: "test"}
    for s in samples:
        client, session, _ = (int(t) for t in Path(s.path).stem.split("_"))
        assert s.subject == f"3dmad_{client:02d}"
        assert s.split == want_split[client]
        assert s.label == (0 if session == 3 else 1)
        assert s.attack_type == ("mask" if session == 3 else "none")
        assert s.collection == "3dmad"
    per_split = {sp: {s.subject for s in ds.samples(sp)} for sp in ("train", "devel", "test")}
    assert per_split == {"train": {"3dmad_01"}, "devel": {"3dmad_08"}, "test": {"3dmad_13"}}


def test_3dmad_frames_match_color_data(mad) -> None:
    root, written = mad
    ds = Mad3dDataset(root, frames_per_video=3)
    for s in ds.samples():
        expected = written[s.path][s.frame].transpose(1, 2, 0)  # 3xHxW planes -> HxWx3
        assert ds.read_bytes(s).startswith(PNG_SIGNATURE)
        np.testing.assert_array_equal(ds.read_image(s), expected)


def test_3dmad_flat_data_folder_and_missing_color(tmp_path: Path) -> None:
    flat = tmp_path / "Data"
    flat.mkdir()
    with h5py.File(flat / "02_03_01.hdf5", "w") as f:
        f.create_dataset("Color_Data", data=np.zeros((2, 3, 8, 8), np.uint8))
    samples = Mad3dDataset(tmp_path, frames_per_video=4).samples()
    assert [(s.key, s.label, s.split) for s in samples] == [
        ("Data/02_03_01.hdf5#frame=0", 0, "train"),
        ("Data/02_03_01.hdf5#frame=1", 0, "train"),
    ]
    with h5py.File(flat / "09_01_01.hdf5", "w") as f:
        f.create_dataset("Depth_Data", data=np.zeros((2, 1, 8, 8), np.uint16))
    with pytest.raises(DatasetError, match="Color_Data"):
        Mad3dDataset(tmp_path).samples()


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_of_stills(folder_root: Path, tmp_path: Path) -> None:
    ds = FolderDataset(folder_root)
    out = ds.build_cache(tmp_path / "cache.h5", progress=False)
    with CachedDataset(out) as cache:
        assert len(cache) == 5
        assert cache.samples == ds.samples()
        np.testing.assert_array_equal(cache.labels, [1, 1, 1, 0, 0])
        assert cache.name == "set_a" and Path(cache.root) == folder_root.resolve()
        for i, s in enumerate(ds.samples()):
            assert cache.bytes(i) == (folder_root / s.key).read_bytes()
            img, sample = cache[i]
            assert sample == s
            np.testing.assert_array_equal(img, ds.read_image(s))
        _, s_last = cache[-1]
        assert s_last.key == "spoof/e.png"
        with pytest.raises(IndexError):
            cache[5]
    with h5py.File(out, "r") as f:
        assert f.attrs["dataset"] == "set_a"
        assert f.attrs["kind"] == "folder"
        assert f["image"].dtype.metadata["vlen"] == np.uint8


def test_cache_rebuild_skipped_when_matching(folder_root: Path, tmp_path: Path, monkeypatch):
    ds = FolderDataset(folder_root)
    out = ds.build_cache(tmp_path / "cache.h5", progress=False)

    def fail(_sample):
        raise AssertionError("rebuilt although the cache matches")

    fresh = FolderDataset(folder_root)
    monkeypatch.setattr(fresh, "read_bytes", fail)
    assert fresh.build_cache(out, progress=False) == out  # skipped: nothing read
    with pytest.raises(AssertionError, match="rebuilt"):
        fresh.build_cache(out, progress=False, force=True)
    assert len(CachedDataset(out)) == 5  # the failed forced build left the cache intact
    assert not list(tmp_path.glob(".*.tmp"))


def test_cache_rebuilt_when_samples_change(tmp_path: Path) -> None:
    root = make_folder(tmp_path, "grow", tsv=None)
    out = FolderDataset(root).build_cache(tmp_path / "grow.h5", progress=False)
    assert len(CachedDataset(out)) == 6
    write_image(root / "live" / "z.jpg", np.full((64, 64, 3), 90, np.uint8))
    FolderDataset(root).build_cache(out, progress=False)
    with CachedDataset(out) as cache:
        assert len(cache) == 7
        assert "live/z.jpg" in [s.key for s in cache.samples]


def test_cache_of_split_and_of_video_frames(replay, tmp_path: Path) -> None:
    root, written = replay
    ds = ReplayAttackDataset(root, frames_per_video=3)
    out = ds.build_cache(tmp_path / "replay_test.h5", split="test", progress=False)
    with CachedDataset(out) as cache:
        assert cache.samples == ds.samples("test")
        assert cache.attrs["split"] == "test"
        for i, s in enumerate(cache.samples):
            img, _ = cache[i]
            np.testing.assert_array_equal(img, written[s.path][s.frame])
    with pytest.raises(DatasetError, match="no samples"):
        FolderDataset(make_folder(tmp_path, "x", tsv="beside")).build_cache(
            tmp_path / "none.h5", split="train", progress=False
        )


def test_cached_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        CachedDataset(tmp_path / "absent.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(DatasetError, match="not a dataset cache"):
        CachedDataset(tmp_path / "other.h5")


def test_cached_dataset_opens_lazily_and_closes(folder_root: Path, tmp_path: Path) -> None:
    out = FolderDataset(folder_root).build_cache(tmp_path / "c.h5", progress=False)
    cache = CachedDataset(out)
    assert cache._file is None  # metadata only until an image is read
    cache.bytes(0)
    assert cache._file is not None
    cache.close()
    assert cache._file is None
    assert cache.bytes(1) == (folder_root / "live/b.png").read_bytes()  # reopens
    cache.close()


# --------------------------------------------------------------------------- open_dataset


def test_open_dataset_detects_every_layout(folder_root, nuaa_root, replay, mad, tmp_path):
    plain = make_folder(tmp_path, "plain", tsv=None)
    inside = make_folder(tmp_path, "inside", tsv="inside")
    cases = [
        (folder_root, "folder", FolderDataset),
        (plain, "folder", FolderDataset),
        (inside, "folder", FolderDataset),
        (nuaa_root, "nuaa", NuaaDataset),
        (replay[0], "replay_attack", ReplayAttackDataset),
        (mad[0], "3dmad", Mad3dDataset),
    ]
    for path, kind, cls in cases:
        assert detect_kind(path) == kind
        ds = open_dataset(path, frames_per_video=1)
        assert type(ds) is cls and ds.kind == kind
        assert len(ds.samples()) > 0
    assert open_dataset(replay[0], frames_per_video=1).frames_per_video == 1


def test_open_dataset_errors(tmp_path: Path, folder_root: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty"):
        open_dataset(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    write_image(tmp_path / "half" / "spoof" / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="no live/"):
        open_dataset(tmp_path / "half")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.md").write_text("hello")
    with pytest.raises(DatasetError, match="cannot tell the layout"):
        open_dataset(tmp_path / "junk")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        open_dataset(tmp_path / "file.txt")
    with pytest.raises(DatasetError, match="not a NUAA folder"):
        open_dataset(folder_root, kind="nuaa")
    with pytest.raises(ValueError, match="kind"):
        open_dataset(folder_root, kind="casia")
    with pytest.raises(ValueError, match="split"):
        open_dataset(folder_root).samples("validation")


# --------------------------------------------------------------------------- splits


def _many_samples() -> list[Sample]:
    out = []
    for c in range(4):
        for subj in range(3):
            for k in range(2):
                out.append(
                    Sample(
                        f"c{c}/s{subj}/{k}.jpg",
                        k % 2,
                        "none" if k % 2 else "print",
                        f"c{c}_s{subj}",
                        f"c{c}",
                        "all",
                    )
                )
    return out


def test_groups_feed_sklearn_group_splitters() -> None:
    samples = _many_samples()
    g = groups(samples, by="subject")
    assert g.shape == (24,) and len(set(g)) == 12
    for train_idx, test_idx in GroupKFold(n_splits=3).split(np.zeros(len(g)), groups=g):
        assert not set(g[train_idx]) & set(g[test_idx])
    with pytest.raises(ValueError, match="by"):
        groups(samples, by="label")


def test_leave_one_group_out_holds_out_each_collection_once() -> None:
    samples = _many_samples()
    folds = list(leave_one_group_out(samples, by="collection"))
    assert sorted(name for name, _, _ in folds) == ["c0", "c1", "c2", "c3"]
    for name, train_idx, test_idx in folds:
        assert {samples[i].collection for i in test_idx} == {name}
        assert name not in {samples[i].collection for i in train_idx}
        assert sorted([*train_idx, *test_idx]) == list(range(len(samples)))


def test_group_disjoint_split_keeps_groups_whole_and_is_seeded() -> None:
    samples = _many_samples()
    train_idx, test_idx = group_disjoint_split(samples, by="subject", test_size=0.25, seed=3)
    train_groups = {samples[i].subject for i in train_idx}
    test_groups = {samples[i].subject for i in test_idx}
    assert not train_groups & test_groups
    assert len(test_groups) == 3 and len(train_groups) == 9  # 25 % of 12 subjects
    assert sorted([*train_idx, *test_idx]) == list(range(len(samples)))
    again = group_disjoint_split(samples, by="subject", test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[1], test_idx)
    other = [group_disjoint_split(samples, by="subject", seed=s)[1] for s in range(5)]
    assert len({tuple(t) for t in other}) > 1  # the seed matters
    one_group = [s for s in samples if s.collection == "c0"]
    with pytest.raises(ValueError, match="two distinct"):
        group_disjoint_split(one_group, by="collection")
