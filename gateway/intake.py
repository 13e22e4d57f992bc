"""Turn HTTP request bodies into what :class:`common.jobs.JobService` takes.

Only the transport is checked here (JSON syntax, base64, field types, callback URL,
zip structure and sizes); image content is validated by the job service through
:func:`common.imageio.decode_image`, so the CLI, the gateway and the workers refuse
bad images with the same codes. Uploads are held in memory only: nothing is written
to disk (see :class:`MemoryRequest`).
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import Request, request
from werkzeug.datastructures import FileStorage

from common.config import Settings
from common.profiles import valid_name
from gateway.errors import ApiError

_ZIP_MAGIC = b"PK\x03\x04"
#: The fields of ``POST /v1/jobs`` (both body styles).
_JOB_FIELDS = {"image", "tests", "callback_url", "explain", "profile", "challenge", "frames"}
_MAX_NAME = 255


class MemoryRequest(Request):
    """A request whose multipart files stay in memory (werkzeug spools > 500 KB to disk).

    The body size is bounded by ``max_content_length``, so memory is bounded too.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> io.BytesIO:
        return io.BytesIO()


@dataclass
class Submission:
    """One job's options, parsed from either body style."""

    image: bytes = b""
    tests: list[str] | None = None
    callback_url: str | None = None
    explain: bool = False
    profile: str | None = None
    challenge: str | None = None
    frames: list[bytes] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def job_body_limit(settings: Settings) -> int:
    """Largest ``POST /v1/jobs`` body: a base64 image of the largest size, a challenge's
    frames of the largest size, plus slack."""
    frames = settings.challenge_length * settings.challenge_frame_max_bytes
    return (settings.max_image_bytes + frames) * 4 // 3 + 1_048_576


def decode_base64(text: str, name: str = "image") -> bytes:
    """Standard or URL-safe base64, padding optional, whitespace and a data-URL prefix ok;
    ``name`` is the field the error message names."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_base64", f"'{name}' is not valid base64: {exc}") from exc


def parse_tests(value: Any) -> list[str] | None:
    """A list of test names from a JSON list or a comma-separated string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        raise ApiError(400, "invalid_request",
                       "'tests' must be a list of test names or a comma-separated string")
    return [n for n in names if n] or None


def parse_explain(value: Any) -> bool:
    """``explain``: JSON true/false, or the strings true/false/1/0 (default false);
    anything else is a 400 ``invalid_explain``."""
    if value is None or value is False or value is True:
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ApiError(400, "invalid_explain", "'explain' must be true or false")


def parse_profile(value: Any) -> str | None:
    """``profile``: a calibration profile name (1–64 of letters, digits, ``_ . -``), or
    absent; anything else is a 400 ``invalid_profile`` (an unknown name is a 422)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not valid_name(value):
        raise ApiError(400, "invalid_profile", "'profile' must be a profile name: 1–64 "
                       "letters, digits, '_', '.' or '-' (GET /v1/profiles lists them)")
    return value


def validate_callback_url(value: Any) -> str | None:
    """An absolute ``http``/``https`` URL without credentials, or ``None``.

    Credentials in the URL would be stored with the job and sent in clear; the result
    is authenticated by the HMAC signature instead. Where the URL may point (public
    addresses only, unless allow-listed) is checked by the job service on submission
    (:mod:`common.egress`, HTTP 422 ``callback_url_refused``) and again on delivery.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise ApiError(422, "invalid_callback_url",
                       "'callback_url' must be a string of at most 2048 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ApiError(422, "invalid_callback_url", f"'callback_url' is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, "invalid_callback_url",
                       "'callback_url' must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ApiError(422, "invalid_callback_url",
                       "'callback_url' must not contain credentials; verify the "
                       "X-Liveness-Signature header instead")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ApiError(422, "invalid_callback_url", "'callback_url' contains whitespace")
    return value


def parse_challenge(value: Any) -> str | None:
    """``challenge``: a challenge id string or absent; anything that cannot be an id
    POST /v1/challenges issued is a 422 ``unknown_challenge``, as an unknown id is."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(422, "unknown_challenge", "'challenge' must be the id POST "
                       "/v1/challenges returned")
    return value


def _too_many_frames(count: int, settings: Settings) -> ApiError:
    return ApiError(422, "invalid_challenge", f"{count} frames sent; a challenge has "
                    f"{settings.challenge_length} colours: send one frame per colour")


def _json_frames(value: Any, settings: Settings) -> list[bytes]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "invalid_request", "'frames' must be a list of base64 images")
    if len(value) > settings.challenge_length:
        raise _too_many_frames(len(value), settings)
    return [decode_base64(v, f"challenge frame {n}") for n, v in enumerate(value, 1)]


def _multipart_frames(settings: Settings) -> list[bytes]:
    uploads = request.files.getlist("frames")
    if len(uploads) > settings.challenge_length:
        raise _too_many_frames(len(uploads), settings)
    return [_read_upload(u, settings.challenge_frame_max_bytes) for u in uploads]


def validate_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > 255 or not value.isprintable() or not value.isascii():
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1-255 printable ASCII characters")
    return value


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the JSON body is empty")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "the JSON body must be an object")
    return data


def _is_json() -> bool:
    return request.mimetype == "application/json" or request.mimetype.endswith("+json")


def _read_upload(upload: FileStorage, limit: int) -> bytes:
    """The file's bytes; at most ``limit + 1`` are read (enough to know it is too big)."""
    return upload.stream.read(limit + 1)


def _refuse_unknown_fields(known: set[str]) -> None:
    """400 ``unknown_field`` for a multipart part the operation does not define.

    The OpenAPI schemas allow no other fields; a part with an unknown (or empty) name is
    most likely a client bug, so it is refused rather than silently ignored.
    """
    names = set(request.form.keys()) | set(request.files.keys())
    unknown = sorted(names - known)
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        raise ApiError(400, "unknown_field", f"unknown multipart field(s) {shown}; this "
                       f"operation takes {', '.join(sorted(known))}")


def parse_job_request(settings: Settings) -> Submission:
    """``POST /v1/jobs``: multipart field ``image`` or JSON ``{"image": base64, …}``."""
    if _is_json():
        data = _json_body()
        unknown = sorted(set(data) - _JOB_FIELDS)
        if unknown:
            shown = ", ".join(repr(str(n)[:40]) for n in unknown[:5])
            raise ApiError(400, "unknown_field", f"unknown field(s) {shown}; this operation "
                           f"takes {', '.join(sorted(_JOB_FIELDS))}")
        image = data.get("image")
        if image is None:
            raise ApiError(400, "missing_image", "the JSON body has no 'image' (base64) field")
        if not isinstance(image, str):
            raise ApiError(400, "invalid_request", "'image' must be a base64 string")
        return Submission(
            image=decode_base64(image),
            tests=parse_tests(data.get("tests")),
            callback_url=validate_callback_url(data.get("callback_url")),
            explain=parse_explain(data.get("explain")),
            profile=parse_profile(data.get("profile")),
            challenge=parse_challenge(data.get("challenge")),
            frames=_json_frames(data.get("frames"), settings),
        )
    if request.mimetype == "multipart/form-data":
        _refuse_unknown_fields(_JOB_FIELDS)
        uploads = request.files.getlist("image")
        if not uploads:
            raise ApiError(400, "missing_image",
                           "the multipart body has no file field named 'image'")
        if len(uploads) > 1:
            raise ApiError(400, "invalid_request", "send one 'image' file per job (several "
                           "images: POST /v1/batches)")
        upload = uploads[0]
        return Submission(
            image=_read_upload(upload, settings.max_image_bytes),
            tests=parse_tests(",".join(request.form.getlist("tests"))),
            callback_url=validate_callback_url(request.form.get("callback_url")),
            explain=parse_explain(request.form.get("explain")),
            profile=parse_profile(request.form.get("profile")),
            challenge=parse_challenge(request.form.get("challenge")),
            frames=_multipart_frames(settings),
        )
    raise ApiError(415, "unsupported_media_type",
                   "send multipart/form-data with an 'image' file, or application/json "
                   "with a base64 'image'")


@dataclass
class BatchRequest:
    items: list[tuple[str, bytes]]
    tests: list[str] | None
    callback_url: str | None
    profile: str | None = None


def _too_many(settings: Settings, count: int) -> ApiError:
    return ApiError(413, "too_many_items",
                    f"the batch has {count} images; the limit is {settings.max_batch_items}")


def read_zip(data: bytes, settings: Settings) -> list[tuple[str, bytes]]:
    """Entries of a zip as ``(name, bytes)`` with zip-bomb guards.

    Directories and macOS resource forks are skipped. The entry count, every entry's
    size and the total uncompressed size are bounded *while* decompressing (declared
    sizes can lie): an entry is never inflated past ``max_image_bytes + 1`` bytes, so a
    too-large entry becomes a per-item ``image_too_large``, not memory exhaustion.
    Non-image entries are told by content (magic number), like single uploads, and get
    a per-item ``not_an_image``; an entry that cannot be read (encrypted, unknown
    compression, corrupt) is passed on as empty bytes (per-item ``empty_image``).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError) as exc:
        raise ApiError(400, "invalid_archive", f"the zip archive cannot be read: {exc}") from exc
    entries = [i for i in infos
               if not i.is_dir() and not i.filename.startswith("__MACOSX/")
               and not posixpath.basename(i.filename).startswith("._")]
    if len(entries) > settings.max_batch_items:
        raise _too_many(settings, len(entries))
    if not entries:
        raise ApiError(422, "empty_batch", "the zip archive contains no files")
    declared = sum(i.file_size for i in entries)
    if declared > settings.max_zip_bytes:
        raise ApiError(413, "archive_too_large",
                       f"the zip expands to {declared} bytes; the limit is "
                       f"{settings.max_zip_bytes}")
    total = 0
    items: list[tuple[str, bytes]] = []
    for info in entries:
        try:
            with archive.open(info) as handle:
                content = handle.read(settings.max_image_bytes + 1)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error,
                EOFError, ValueError):
            content = b""  # encrypted, unknown compression or corrupt: reported per item
        total += len(content)
        if total > settings.max_zip_bytes:
            raise ApiError(413, "archive_too_large",
                           f"the zip expands to more than {settings.max_zip_bytes} bytes")
        items.append((info.filename[:_MAX_NAME], content))
    return items


def parse_batch_request(settings: Settings) -> BatchRequest:
    """``POST /v1/batches``: multipart ``images`` files (or one zip), or a zip body."""
    if request.mimetype in ("application/zip", "application/x-zip-compressed"):
        return BatchRequest(read_zip(request.get_data(), settings), None, None)
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       "send multipart/form-data with 'images' files (or one zip in "
                       "'archive'), or an application/zip body")
    _refuse_unknown_fields({"images", "archive", "tests", "callback_url", "profile"})
    tests = parse_tests(",".join(request.form.getlist("tests")))
    callback_url = validate_callback_url(request.form.get("callback_url"))
    profile = parse_profile(request.form.get("profile"))
    uploads = request.files.getlist("images")
    archives = request.files.getlist("archive")
    if len(archives) > 1 or (archives and uploads):
        raise ApiError(400, "invalid_request", "send either 'images' files or one 'archive' zip")
    if not archives and len(uploads) == 1:
        head = uploads[0].stream.read(4)
        uploads[0].stream.seek(0)
        if head == _ZIP_MAGIC:
            archives, uploads = uploads, []
    if archives:
        data = archives[0].stream.read(settings.max_batch_bytes + 1)
        return BatchRequest(read_zip(data, settings), tests, callback_url, profile)
    if not uploads:
        raise ApiError(400, "missing_image",
                       "the multipart body has no 'images' files and no 'archive'")
    if len(uploads) > settings.max_batch_items:
        raise _too_many(settings, len(uploads))
    items = [
        ((upload.filename or f"image_{n}")[:_MAX_NAME], _read_upload(upload,
                                                                    settings.max_image_bytes))
        for n, upload in enumerate(uploads, 1)
    ]
    return BatchRequest(items, tests, callback_url, profile)
