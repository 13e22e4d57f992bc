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

Nothing a worker loads escapes the check:

* the loader names the files it opens (``required``): each must be listed with its
  hash — a ``model.json`` that lists none (``"files": {}``) does not load a weight file
  unchecked;
* ``model.json`` itself carries ``manifest_sha256``, the SHA-256 of its own canonical
  JSON (sorted keys, no spaces) without that field, written by
  :func:`write_model_folder`: a hand-edited threshold, parameter or file list is refused
  as a corrupt file would be. A deliberate change is re-pinned with
  ``liveness models pin FOLDER`` (:func:`pin_model_folder`), which is what training does.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError

MANIFEST = "model.json"
#: The field of ``model.json`` that holds the SHA-256 of the rest of it.
MANIFEST_DIGEST = "manifest_sha256"
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
    doc = {k: v for k, v in {**manifest, "files": files}.items() if k != MANIFEST_DIGEST}
    doc = json.loads(json.dumps(doc, default=_json_default))  # plain JSON types
    doc[MANIFEST_DIGEST] = manifest_digest(doc)
    path = folder / MANIFEST
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def manifest_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 hex of ``doc``'s canonical JSON (sorted keys, no spaces, UTF-8), without
    its :data:`MANIFEST_DIGEST` field."""
    body = {k: v for k, v in doc.items() if k != MANIFEST_DIGEST}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def pin_model_folder(folder: str | Path) -> dict[str, str]:
    """Re-pin a model folder after a deliberate change: the SHA-256 of every weight file
    it lists, and the manifest's own digest. Returns weight file name → hash.

    Raises :class:`ModelError` when ``model.json`` is unreadable or lists a missing file.
    """
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable model file: {exc}") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        raise ModelError(f"{path} lists no weight files ('files': name → sha256)")
    pinned = {}
    for name in files:
        _check_name(name)
        weight = path.parent / name
        if not weight.is_file():
            raise ModelError(f"{path.parent}: weight file {name} listed in model.json is missing")
        pinned[name] = sha256_file(weight)
    doc["files"] = pinned
    doc[MANIFEST_DIGEST] = manifest_digest(doc)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return pinned


def read_model_folder(folder: str | Path, required: Iterable[str] = ()) -> dict[str, Any]:
    """The verified manifest of a model folder (or of the ``model.json`` path given).

    ``required``: the files the caller will load; each must be listed (with its hash).
    Raises :class:`ModelError` when ``model.json`` is absent or unreadable, does not match
    its own ``manifest_sha256`` (or has none), lists no ``files``, omits a required file,
    or a listed file is missing, of a refused type, or has another SHA-256.
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
    if not isinstance(doc, dict):
        raise ModelError(f"{path} is not a model file (a JSON object)")
    recorded = doc.get(MANIFEST_DIGEST)
    if not recorded:
        raise ModelError(f"{path} has no {MANIFEST_DIGEST}: it was not written by this "
                         "project's trainers (`liveness models pin FOLDER` pins a folder "
                         "you changed on purpose)")
    if manifest_digest(doc) != str(recorded).lower():
        raise ModelError(f"{path}: its content does not match its {MANIFEST_DIGEST}; the "
                         "file was edited or is corrupt (`liveness models pin FOLDER` "
                         "re-pins a deliberate change)")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ModelError(f"{path} lists no weight files ('files': name → sha256)")
    unlisted = [name for name in required if name not in files]
    if unlisted:
        raise ModelError(f"{path} does not list {', '.join(unlisted)} under 'files': every "
                         "file a model loads must be pinned by its SHA-256")
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


def require_format(doc: Mapping[str, Any], folder: str | Path, model_format: str,
                   version: int, what: str) -> None:
    """Raise :class:`ModelError` unless the manifest ``doc`` (of ``folder``) declares
    ``model_format`` at ``version``: a loader reads only the layout it was written for.
    ``what`` names the kind of model in the message (``cnn``, ``fasnet`` …)."""
    if doc.get("format") != model_format or doc.get("format_version") != version:
        raise ModelError(f"{folder}: not a {what} model folder of this version (format "
                         f"{doc.get('format')!r} v{doc.get('format_version')}; this code "
                         f"reads {model_format!r} v{version})")


def read_model_info(folder: str | Path) -> dict[str, Any] | None:
    """The ``info`` block of ``<folder>/model.json`` (name, version, threshold …) without
    verifying the weight files, or ``None`` when there is no readable manifest. For
    processes that only need to know which model is installed (the gateway); anything
    that loads weights uses :func:`read_model_folder`."""
    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    info = doc.get("info") if isinstance(doc, dict) else None
    return info if isinstance(info, dict) else None


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
