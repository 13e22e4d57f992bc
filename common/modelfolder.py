"""Model folders: ``model.json`` plus weight files, each pinned by its SHA-256.

A trained model of any test (and the fusion model) is a folder::

    models/<test>/
      model.json      {"format", "format_version", "info": {name, version, threshold, …},
                       "params": {…}, "files": {"weights.npz": "<sha256 hex>", …}}
      weights.npz     the fitted numbers (also .json, .keras or .tflite files)
      MODEL_CARD.md   data, metrics, licence (not hashed: prose)

Weight files are plain data — never pickle — so loading a model cannot run code:
``.npz`` files are read with ``allow_pickle=False``. Every file listed under ``files``
is hashed when the folder is read; a missing file or a hash mismatch (a truncated
copy, a hand-edited or swapped file) raises :class:`~common.errors.ModelError` naming
the file, which the worker turns into a start-up error.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError

MANIFEST = "model.json"
#: Weight-file types a model folder may list (pickle-based formats are refused).
WEIGHT_SUFFIXES: tuple[str, ...] = (".json", ".npz", ".keras", ".tflite")


def sha256_file(path: str | Path) -> str:
    """Lower-case hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_name(name: str) -> None:
    if Path(name).name != name or name in ("", ".", "..", MANIFEST):
        raise ModelError(f"weight file name {name!r} must be a plain file name in the folder")
    if Path(name).suffix not in WEIGHT_SUFFIXES:
        raise ModelError(f"weight file {name!r} must end with one of {WEIGHT_SUFFIXES}")


def write_model_folder(folder: str | Path, manifest: Mapping[str, Any],
                       weights: Mapping[str, bytes]) -> Path:
    """Write ``weights`` (file name → bytes) and ``model.json`` listing their SHA-256.

    ``manifest`` must not contain ``files``: it is computed here. Returns the path of
    ``model.json``. Files the folder held before and that are not named are left alone.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name, data in weights.items():
        _check_name(name)
        (folder / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    doc = {**manifest, "files": files}
    path = folder / MANIFEST
    path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    return path


def read_model_folder(folder: str | Path) -> dict[str, Any]:
    """The verified manifest of a model folder (or of the ``model.json`` path given).

    Raises :class:`ModelError` when ``model.json`` is absent or unreadable, lists no
    ``files``, or a listed file is missing, of a refused type, or has another SHA-256.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"no model file at {path}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable model file: {exc}") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        raise ModelError(f"{path} lists no weight files ('files': name → sha256)")
    for name, expected in files.items():
        _check_name(name)
        weight = path.parent / name
        if not weight.is_file():
            raise ModelError(f"{path.parent}: weight file {name} listed in model.json is missing")
        actual = sha256_file(weight)
        if actual != str(expected).lower():
            raise ModelError(
                f"{weight}: SHA-256 {actual[:16]}… does not match model.json "
                f"({str(expected)[:16]}…); the file is corrupt or not the one trained"
            )
    return doc


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """``arrays`` (name → array-like or number) as the bytes of an ``.npz`` file."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """An ``.npz`` file as name → array, refusing pickled object arrays."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable .npz weight file: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
