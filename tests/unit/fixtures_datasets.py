"""Tiny generated datasets in the exact on-disk layouts the managers read.

Used by ``test_datasets.py``; nothing here reads the shared data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np

SIZE = 64


def image(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """A distinct, compressible RGB uint8 image (smooth gradient plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 3 + seed * 7, yy * 3 + seed * 13, (xx + yy) * 2 + seed], axis=-1)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return ((base + noise) % 256).astype(np.uint8)


def write_image(path: Path, rgb: np.ndarray, quality: int = 85) -> Path:
    """Write ``rgb`` as JPEG or PNG by the extension of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params), path
    return path


TSV_HEADER = "path\tlabel\tattack_type\tsubject\tcollection\tsource_repo\tcommit\toriginal_path"


def make_folder(parent: Path, name: str = "set_a", tsv: str | None = "beside") -> Path:
    """A ``live/`` + ``spoof/`` folder; ``tsv`` is ``"beside"``, ``"inside"`` or ``None``.

    Rows (beside/inside TSV): 3 live (subjects s1, s1, s2; collection c1/c1/c2),
    2 spoof (print by s1 in c1, unknown by s2 in c2). Without a TSV the same files
    plus a nested spoof image and a non-image file are present.
    """
    root = parent / name
    rows = [
        ("live/a.jpg", "live", "none", "s1", "c1"),
        ("live/b.png", "live", "none", "s1", "c1"),
        ("live/c.jpg", "live", "none", "s2", "c2"),
        ("spoof/d.jpg", "spoof", "print", "s1", "c1"),
        ("spoof/e.png", "spoof", "unknown", "s2", "c2"),
    ]
    for i, (rel, *_rest) in enumerate(rows):
        write_image(root / rel, image(i))
    if tsv is None:
        write_image(root / "spoof" / "nested" / "f.jpg", image(10))
        (root / "live" / "notes.txt").write_text("not an image")
        return root
    lines = [TSV_HEADER] + [
        "\t".join([*row, "owner/repo", "abc123", f"orig/{row[0]}"]) for row in rows
    ]
    target = parent / f"{name}.tsv" if tsv == "beside" else root / "labels.tsv"
    target.write_text("\n".join(lines) + "\n")
    return root


#: (folder, subject, file stem, split) of the generated NUAA images.
NUAA_FILES = [
    ("ClientRaw", "0001", "0001_00_00_01_0", "train"),
    ("ClientRaw", "0001", "0001_00_00_01_4", "train"),
    ("ClientRaw", "0002", "0002_01_00_03_0", "test"),
    ("ImposterRaw", "0001", "0001_00_01_01_0", "train"),
    ("ImposterRaw", "0002", "0002_01_03_03_0", "test"),
    ("ImposterRaw", "0002", "0002_01_03_03_9", None),  # on disk, in no list
]


def make_nuaa(root: Path) -> Path:
    """NUAA raw layout with the four official lists (Windows separators, CRLF)."""
    lists: dict[str, list[str]] = {}
    for i, (folder, subject, stem, split) in enumerate(NUAA_FILES):
        write_image(root / folder / subject / f"{stem}.jpg", image(20 + i, 48, 64))
        if split is not None:
            prefix = "client" if folder == "ClientRaw" else "imposter"
            lists.setdefault(f"{prefix}_{split}_raw.txt", []).append(f"{subject}\\{stem}.jpg")
    # a listed image missing from this (partial) copy must be skipped, not crash
    lists["client_test_raw.txt"].append("0003\\0003_00_00_01_0.jpg")
    for name, entries in lists.items():
        (root / name).write_bytes(("\r\n".join(entries) + "\r\n").encode())
    return root


#: root-relative path -> (split, label, subject, attack_type) of the generated videos.
REPLAY_VIDEOS = {
    "train/real/client001_session01_webcam_authenticate_adverse_1.mov": (
        "train",
        1,
        "replay_attack_client001",
        "none",
    ),
    "train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse.mov": (
        "train",
        0,
        "replay_attack_client001",
        "print",
    ),
    "devel/attack/hand/attack_mobile_client003_session01_mobile_video_controlled.mov": (
        "devel",
        0,
        "replay_attack_client003",
        "mobile_video",
    ),
    "test/real/client005_session01_webcam_authenticate_controlled_2.mov": (
        "test",
        1,
        "replay_attack_client005",
        "none",
    ),
    "test/attack/hand/attack_highdef_client005_session01_highdef_photo_adverse.mov": (
        "test",
        0,
        "replay_attack_client005",
        "highdef_photo",
    ),
}


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB frames losslessly (PNG codec in a QuickTime container)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"png "), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def make_replay(root: Path, n_frames: int = 3) -> dict[str, list[np.ndarray]]:
    """Replay-Attack layout; returns the frames written per root-relative path."""
    written = {}
    for v, rel in enumerate(REPLAY_VIDEOS):
        frames = [image(100 + 10 * v + i, 32, 48) for i in range(n_frames)]
        write_video(root / rel, frames)
        written[rel] = frames
    (root / "enroll" / "train").mkdir(parents=True)  # present in the real archive; ignored
    return written


#: (client, session, shot) of the generated 3DMAD recordings.
MAD_RECORDINGS = [(1, 1, 1), (1, 3, 1), (8, 2, 1), (13, 1, 2), (13, 3, 5)]


def make_3dmad(root: Path, n_frames: int = 3, h: int = 24, w: int = 32) -> dict[str, np.ndarray]:
    """3DMAD layout (``session0N/Data/CC_SS_NN.hdf5``); returns Color_Data per path."""
    written = {}
    for r, (client, session, shot) in enumerate(MAD_RECORDINGS):
        rel = f"session{session:02d}/Data/{client:02d}_{session:02d}_{shot:02d}.hdf5"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = np.stack([image(200 + 10 * r + i, h, w) for i in range(n_frames)])
        color = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))  # frames x 3 x H x W
        depth = np.full((n_frames, 1, h, w), 800 + r, dtype=np.uint16)
        eyes = np.tile(np.array([[10, 8, 20, 8]], dtype=np.float64), (n_frames, 1))
        with h5py.File(path, "w") as f:
            f.create_dataset("Color_Data", data=color)
            f.create_dataset("Depth_Data", data=depth)
            f.create_dataset("Eye_Pos", data=eyes)
        written[rel] = color
    return written
