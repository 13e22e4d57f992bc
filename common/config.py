"""Runtime settings, read from ``LIVENESS_*`` environment variables (12-factor).

Every setting has a documented default so a bare checkout runs; deployments
override by environment only. The table in README.md mirrors this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A ``LIVENESS_*`` variable has a value the service cannot use (its name is in the
    message)."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LIVENESS_{name}", default)


@dataclass(frozen=True)
class Settings:
    """All tunables of the core library. Build with :meth:`from_env`."""

    #: Uploads larger than this many bytes are refused (HTTP 413).
    max_image_bytes: int = 10_000_000
    #: Decoded images with more pixels than this are refused (decompression bombs).
    max_image_pixels: int = 40_000_000
    #: Images whose shorter side is below this are refused as too small.
    min_image_side: int = 64
    #: Face detector (``common/faces/detectors.py``): ``blazeface`` (MediaPipe BlazeFace
    #: short + full range, LiteRT; fastest and finds the most faces; ``blazeface_short`` /
    #: ``blazeface_full``: one of the two), ``mtcnn`` (needs the ``mtcnn`` extra), ``hog``
    #: or ``mmod`` (dlib, face_recognition's models).
    face_detector: str = "blazeface"
    #: The search passes run on a copy whose longer side is at most this; larger images
    #: are also searched in tiles of this side when nothing is found (small faces).
    face_detect_max_side: int = 640
    #: Images longer than this (pixels) are downscaled to it before the face stage, which
    #: bounds its time per image (the tiles pass over a larger image is not finer).
    face_search_max_side: int = 4032
    # --- capture checks (common/faces/capture.py; chosen on the live images of
    # ../shared/data: bench/face_coverage.py prints the percentiles and the pass rate) ---
    #: ``face_too_small`` below this longer side of the face box, original pixels.
    min_face_side: int = 64
    #: ``face_partial`` when an image edge cuts more than this fraction off the face
    #: region (cheek to cheek, eyebrows to chin, in the face's own frame) or off the
    #: detection box, from any side (``common/faces/framing.py``).
    max_face_cut: float = 0.35
    #: ``face_partial`` when a landmark (eyes, nose, mouth corners) lies closer to an
    #: image edge than this many inter-ocular distances (0: it must be in the image).
    min_edge_margin: float = 0.0
    #: ``face_turned`` above this absolute yaw or pitch, degrees.
    max_yaw_deg: float = 55.0
    max_pitch_deg: float = 40.0
    #: ``too_dark`` below this exposure: the 95th percentile luma (0-255) of the pixels
    #: around the face that are not skin (``common/faces/photometry.py``).
    min_exposure: float = 58.0
    #: ``backlit`` above this ratio of the surround's (75th percentile) to the skin's
    #: (median) luminance, linear light (``common/faces/photometry.py``).
    max_backlight: float = 35.0
    #: ``overexposed`` above this fraction of saturated (luma >= 250) face pixels.
    max_overexposed: float = 0.3
    #: ``too_blurry`` above this blur effect (Crete et al. 2007, 0 sharp - 1 blurred) of
    #: the aligned face crop.
    max_blur: float = 0.64
    #: Several faces: ``retry`` (the capture is refused with ``multiple_faces``) or
    #: ``largest`` (the largest face is judged; ``multiple_faces`` is only reported).
    multiple_faces: str = "retry"
    #: A second face counts when its side is at least this fraction of the largest's.
    multiple_faces_min_ratio: float = 0.6
    #: Folder holding one sub-folder per test with its model file and card.
    models_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "models")
    # --- service: job store, queues, webhooks (issue 3) ---
    #: Redis holding images, job records and results (the job store).
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Celery broker; ``amqp://...`` selects RabbitMQ.
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Celery result backend (chord bookkeeping only; results live in the job store).
    result_backend: str = "redis://127.0.0.1:6379/0"
    #: Seconds an uploaded image may live in Redis (backstop; deleted when the job ends).
    image_ttl_s: int = 900
    #: Keys that seal uploaded images and explanation images in Redis (AES-256-GCM,
    #: :mod:`common.sealing`): base64 of 32 bytes, comma-separated, the first seals and
    #: all open (rotation). Required by the gateway and every pool; keep it out of the
    #: Redis host's disk (environment, secret store). ``liveness image-key`` makes one;
    #: ``liveness serve`` makes one per run when it is unset.
    image_keys: str = ""
    #: Seconds between two rewrites of Redis's append-only file by the fusion pool
    #: (``BGREWRITEAOF`` when it grew), so that a finished or deleted job's sealed image
    #: leaves the disk within about this long; 0 turns it off.
    aof_rewrite_s: float = 60.0
    #: Seconds a finished job's result is kept (then GET answers ``expired``).
    result_ttl_s: int = 86400
    #: Seconds after a job's work starts (its first task) when fusion finishes it with
    #: whatever arrived; longer than one redelivery (``visibility_timeout_s``), so a
    #: killed worker's task is re-run before the deadline. A test that never ran or
    #: whose worker vanished then fails the job (``no_worker`` / ``worker_lost``).
    job_deadline_s: int = 120
    #: Seconds a job may wait for its first task to start before it fails ``no_worker``.
    job_start_timeout_s: int = 600
    #: Seconds between two sweeps of due deadlines by the fusion pool.
    deadline_sweep_s: float = 1.0
    #: Seconds a submission may take from writing its job (pending) to confirming it
    #: once its tasks are enqueued; a submission that failed on the way (Redis refusing
    #: writes …) is erased by the deadline sweep after this, and the gateway gives up
    #: confirming after half of it (503 ``unavailable``). Workers wait up to this for a
    #: pending job's confirmation.
    submit_grace_s: float = 30.0
    #: Seconds a test that needs the face waits for the face stage (then it records
    #: ``face_unavailable``); tests that need no face run alongside the face stage.
    face_stage_wait_s: float = 20.0
    #: Per-task soft time limit (the task records a ``timeout`` outcome).
    task_soft_time_limit_s: int = 30
    #: Per-task hard time limit (the worker process is killed).
    task_time_limit_s: int = 45
    #: Broker redelivery delay for unacknowledged tasks (above the longest task).
    visibility_timeout_s: int = 60
    #: Master secret of the webhook signatures (no usable default: the gateway and the
    #: worker pools refuse to start when it is empty, a placeholder or shorter than 32
    #: characters). Each API-key id signs with its own secret derived from it
    #: (``common.webhooks.tenant_secret``; ``liveness apikey ID`` prints it).
    webhook_secret: str = ""
    #: Seconds per webhook POST attempt.
    webhook_timeout_s: float = 5.0
    #: Webhook POST attempts before giving up (exponential backoff between them).
    webhook_attempts: int = 5
    #: Networks (CIDR, comma-separated) webhooks may reach although they are not public
    #: (loopback, private, link-local …; see ``common/egress.py``). Empty: public only.
    webhook_allowlist: str = ""
    #: Tests a job runs when the client names none (comma-separated); empty: the tests
    #: whose registry entry says ``default=True`` (today ``cnn``, ``fasnet`` and ``quality``).
    default_tests: str = ""
    #: Calibration profile (``<models_dir>/profiles/<name>.json``, ``liveness calibrate``)
    #: a job uses when neither the request nor its API key names one; empty: none (the
    #: fusion model's own threshold).
    default_profile: str = ""
    #: Which of the operating points the trained fusion ships decides (empty: its default,
    #: ``loco-bpcer<=10%/25%``; ``apcer<=5%`` and ``apcer<=1%`` are the strict ones; the
    #: fusion's model card shows each one's held-out APCER and BPCER).
    operating_point: str = ""
    #: Path of converted VRN weights (a PyTorch state dict, ``workers/depth3d/vrn.py``) for
    #: a depth3d model trained on the ``vrn`` backend; empty: none (the shipped depth3d
    #: model uses the ``mesh`` backend and needs no file).
    vrn_weights: str = ""
    #: Per-API-key default profiles, ``key-id=profile,…`` (before ``default_profile``).
    key_profiles: str = ""
    # --- HTTP gateway (issue 3) ---
    #: API keys as ``id:sha256hex`` pairs, comma-separated; the id owns the key's jobs.
    #: Only hashes are configured (``liveness apikey`` prints a new key and its line).
    api_key_hashes: str = ""
    #: Per-key limit on submissions and deletions (``POST``/``DELETE`` of ``/v1/jobs`` and
    #: ``/v1/batches``, one counter for both; ``limits`` syntax, ``;`` separates several).
    rate_limit: str = "120/minute"
    #: Per-key limit on reads (``GET`` of jobs and batches, long-polls included).
    read_rate_limit: str = "1200/minute"
    #: Rate-limit counters; empty means ``redis_url`` (shared by every gateway process).
    rate_limit_storage_url: str = ""
    #: Most messages waiting on one queue before submissions get 503 ``overloaded`` with
    #: ``Retry-After`` (0: unbounded). Checked on a Redis broker.
    max_queue_depth: int = 1000
    #: Most images one batch may carry (multipart files or zip entries).
    max_batch_items: int = 100
    #: Largest ``POST /v1/batches`` request body in bytes (HTTP 413 above).
    max_batch_bytes: int = 100_000_000
    #: Largest total uncompressed size of a batch zip (zip-bomb guard, HTTP 413 above).
    max_zip_bytes: int = 200_000_000
    #: Upper bound of ``GET /v1/jobs/<id>?wait=N`` (seconds).
    long_poll_max_s: int = 30
    #: Queues ``/readyz`` needs a consuming worker on (comma-separated); empty: the
    #: ``face`` stage, the default tests' queues and ``fusion``.
    required_queues: str = ""
    #: Seconds ``/readyz`` reuses its last answer (worker inspection costs a broadcast).
    readyz_cache_s: float = 5.0
    #: Connect/read timeout of the gateway's Redis calls: fail fast with 503, never hang.
    gateway_redis_timeout_s: float = 2.0
    #: Most Redis connections one gateway process opens to the job store (and as many
    #: to the rate-limit storage); a request waits for a free one, up to
    #: ``gateway_redis_timeout_s`` (then 503), instead of opening one per request.
    gateway_redis_connections: int = 50
    #: gunicorn listen address and worker processes.
    gateway_bind: str = "0.0.0.0:8000"
    gateway_workers: int = 2
    #: gunicorn worker class: ``gevent`` (one greenlet per connection: idle long-polls
    #: and slow uploads cost no thread, so thousands are held; bench/longpoll.py) or
    #: ``gthread`` (``gateway_threads`` threads per process: each long-poll or slow
    #: upload holds one).
    gateway_worker_class: str = "gevent"
    #: Most simultaneous connections one ``gevent`` gateway process holds (gunicorn's
    #: ``worker_connections``); the others wait in the listen backlog.
    gateway_connections: int = 1000
    #: Threads per process of the ``gthread`` worker class.
    gateway_threads: int = 8
    #: Serve the page where a person tries the service with their camera (``/demo``;
    #: ``/`` redirects to it). ``false``: both answer 404.
    demo_page: bool = True
    # --- colour-flash challenge (common/challenge; thresholds measured on simulated
    # frames: bench/challenge.py, README "Challenge-response") ---
    #: Colours per challenge (4-16), and how long the page shows each, milliseconds
    #: (the camera needs ~200 ms to deliver a frame lit by a new colour).
    challenge_length: int = 8
    challenge_step_ms: int = 400
    #: A challenge must be answered (its job submitted) within this many seconds.
    challenge_ttl_s: int = 120
    #: Largest challenge frame, bytes (the page sends 640-px JPEGs of ~30-80 KB).
    challenge_frame_max_bytes: int = 500_000
    #: The face's colour must follow the sequence with at least this correlation, and
    #: respond at least this strongly (the screen's light relative to the room's).
    challenge_min_correlation: float = 0.8
    challenge_min_response: float = 0.01

    @classmethod
    def from_env(cls) -> Settings:
        """Read every setting from ``LIVENESS_<NAME>`` (upper-case field name).

        Raises :class:`SettingsError` (a ``ValueError``) naming the variable whose value
        is not a number where one is expected, or is not one of the accepted values.
        """
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f"LIVENESS_{f.name.upper()}"
            raw = os.environ.get(name)
            if raw is None:
                continue
            if f.name == "models_dir":
                values[f.name] = Path(raw)
            elif f.type in ("bool", bool):
                flag = raw.strip().lower()
                if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise SettingsError(f"{name}={raw!r}: expected true or false")
                values[f.name] = flag in ("1", "true", "yes", "on")
            elif f.type in ("int", int, "float", float):
                kind = int if f.type in ("int", int) else float
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise SettingsError(f"{name}={raw!r}: expected "
                                        f"{'an integer' if kind is int else 'a number'}") from None
            else:
                values[f.name] = raw
        settings = cls(**values)  # type: ignore[arg-type]
        detectors = ("blazeface", "blazeface_short", "blazeface_full", "mtcnn", "hog", "mmod")
        if settings.face_detector not in detectors:
            raise SettingsError(f"LIVENESS_FACE_DETECTOR={settings.face_detector!r}: must be "
                                f"one of {', '.join(detectors)}")
        if settings.face_search_max_side < settings.face_detect_max_side:
            raise SettingsError("LIVENESS_FACE_SEARCH_MAX_SIDE must be at least "
                                "LIVENESS_FACE_DETECT_MAX_SIDE")
        if settings.multiple_faces not in ("retry", "largest"):
            raise SettingsError(f"LIVENESS_MULTIPLE_FACES={settings.multiple_faces!r}: must "
                                "be 'retry' or 'largest'")
        if settings.gateway_worker_class not in ("gevent", "gthread"):
            raise SettingsError(f"LIVENESS_GATEWAY_WORKER_CLASS="
                                f"{settings.gateway_worker_class!r}: must be 'gevent' or "
                                "'gthread'")
        if settings.submit_grace_s <= 0:
            raise SettingsError("LIVENESS_SUBMIT_GRACE_S must be a positive number of "
                                "seconds")
        if settings.job_deadline_s <= settings.visibility_timeout_s:
            raise SettingsError("LIVENESS_JOB_DEADLINE_S must exceed "
                                "LIVENESS_VISIBILITY_TIMEOUT_S (a killed worker's task is "
                                "redelivered after the latter)")
        if settings.image_keys.strip():
            from common.sealing import parse_keys

            parse_keys(settings.image_keys)  # SettingsError naming the bad entry
        if not 4 <= settings.challenge_length <= 16:
            raise SettingsError("LIVENESS_CHALLENGE_LENGTH must be 4-16 colours")
        if settings.challenge_step_ms < 100 or settings.challenge_ttl_s <= 0:
            raise SettingsError("LIVENESS_CHALLENGE_STEP_MS must be at least 100 and "
                                "LIVENESS_CHALLENGE_TTL_S positive")
        if settings.aof_rewrite_s < 0:
            raise SettingsError("LIVENESS_AOF_REWRITE_S must be 0 (off) or a positive number "
                                "of seconds")
        from common.egress import parse_allowlist
        from common.profiles import parse_key_profiles, valid_name

        try:
            parse_key_profiles(settings.key_profiles)
        except ValueError as exc:
            raise SettingsError(f"LIVENESS_KEY_PROFILES: {exc}") from None
        if settings.default_profile and not valid_name(settings.default_profile):
            raise SettingsError(f"LIVENESS_DEFAULT_PROFILE={settings.default_profile!r}: not "
                                "a profile name (letters, digits, _ . -)")

        try:
            parse_allowlist(settings.webhook_allowlist)
        except ValueError as exc:
            raise SettingsError(f"LIVENESS_WEBHOOK_ALLOWLIST: {exc}") from None
        return settings


def get_settings() -> Settings:
    """The process's settings (re-read each call so tests can monkeypatch env)."""
    return Settings.from_env()
