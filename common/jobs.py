"""The job service the gateway calls: submit, read, wait for, erase jobs and batches.

A submission validates the image (:func:`common.imageio.decode_image`, so bad input
fails here with a typed :class:`~common.errors.ImageError` and never reaches a
worker), stores it once in the job store, and enqueues the job's pipeline::

    chord([liveness.face.locate, one liveness.<test>.score per test],
          liveness.fusion.finalize)

and its deadline in the job store (:meth:`JobStore.create_job`), which the fusion pool
sweeps (:mod:`workers.deadlines`). The face stage runs once per job and stores the face in the job
record; a test that needs the face waits for it there (:meth:`JobStore.wait_face`)
and never detects it again, a whole-image test runs at once. Fusion runs when every
task of the chord returned, so it always sees the stored face. Task messages carry the
job id only, and signatures are built by task name from the registry, so the gateway
never imports model code.

Ownership: every read checks the job's owner (the API-key id); another key's job is
indistinguishable from an unknown one (``None``), which the gateway answers with 404.
A broker or Redis outage raises :class:`StoreUnavailableError` (HTTP 503).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from celery import chord, group
from kombu.exceptions import OperationalError

from common.config import Settings
from common.egress import Resolver, check_callback_url, parse_allowlist, system_resolver
from common.errors import ImageError, LivenessError, ModelError
from common.imageio import decode_image
from common.jobstore import TERMINAL, IdempotencyConflictError, JobStore, new_id
from common.profiles import load_profiles, parse_key_profiles
from common.queueing import FACE_TASK, FINALIZE_TASK, LivenessCelery
from common.registry import FACE_QUEUE, TestRegistry, UnknownTestError
from common.result import JobView, LivenessResult

log = logging.getLogger(__name__)

__all__ = ["IdempotencyConflictError", "JobService", "OverloadedError", "StoreUnavailableError",
           "UnknownProfileError", "UnknownTestError", "job_view"]


def request_fingerprint(image: bytes, tests: Iterable[str], callback_url: str | None,
                        explain: bool = False, profile: str = "") -> str:
    """SHA-256 hex of what makes two submissions the same request."""
    digest = hashlib.sha256(image)
    digest.update(b"\0" + ",".join(tests).encode() + b"\0" + (callback_url or "").encode())
    if explain:
        digest.update(b"\0explain")
    if profile:
        digest.update(b"\0profile=" + profile.encode())
    return digest.hexdigest()


class UnknownProfileError(LivenessError):
    """A calibration profile that is not loaded (HTTP 422)."""

    code = "unknown_profile"
    http_status = 422


class OverloadedError(LivenessError):
    """A queue the job needs holds ``max_queue_depth`` messages already (HTTP 503)."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class StoreUnavailableError(LivenessError):
    """Redis (job store) or the broker cannot be reached (HTTP 503, retry after 2 s)."""

    code = "unavailable"
    http_status = 503
    headers = {"Retry-After": "2"}  # noqa: RUF012 - read-only class constant


def job_view(
    job_id: str, record: dict[str, Any] | None, status: str | None = None
) -> dict[str, Any]:
    """The public job dict (GET /v1/jobs/<id>, webhooks); result fields None until done."""
    record = record or {}
    result = record.get("result")
    return JobView(
        id=job_id,
        status=status or record.get("status") or "queued",
        created_at=record.get("created_at"),
        updated_at=record.get("updated_at"),
        tests=tuple(record.get("tests", ())),
        result=LivenessResult.from_dict(result) if result else None,
        error=record.get("error") or None,
        explanations=tuple(record.get("explanations", ())),
    ).to_dict()


@contextlib.contextmanager
def _available() -> Iterator[None]:
    """Turn connection failures into a typed 503 error instead of a hang or a 500."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
        log.warning("job store or broker unreachable: %s", exc)
        raise StoreUnavailableError("the job store or queue is unreachable; retry later") from exc


class JobService:
    """Jobs on top of a :class:`JobStore` and a producer Celery app (:func:`make_celery`).

    The tests a job may ask for are the app's registry's.
    """

    def __init__(self, store: JobStore, celery_app: LivenessCelery,
                 settings: Settings | None = None, resolver: Resolver = system_resolver,
                 queue_depths: Callable[[Iterable[str]], dict[str, int]] | None = None
                 ) -> None:
        self.store = store
        self.app = celery_app
        self.settings = settings or store.settings
        self.registry: TestRegistry = celery_app.test_registry
        self.resolver = resolver
        self.allowlist = parse_allowlist(self.settings.webhook_allowlist)
        #: Messages waiting per queue (``None``: the broker cannot say; no bound).
        self.queue_depths = queue_depths
        #: Calibration profiles (``<models_dir>/profiles``), read once; a malformed one
        #: stops the service at start (ModelError).
        self.profiles = load_profiles(self.settings.models_dir)
        self.key_profiles = parse_key_profiles(self.settings.key_profiles)
        named = {*self.key_profiles.values(), self.settings.default_profile} - {""}
        if named - set(self.profiles):
            raise ModelError(f"LIVENESS_DEFAULT_PROFILE / LIVENESS_KEY_PROFILES name profiles "
                             f"that are not in {self.settings.models_dir}/profiles: "
                             f"{', '.join(sorted(named - set(self.profiles)))}")

    def resolve_profile(self, owner: str, requested: str | None) -> str:
        """The profile a job of ``owner`` uses: the request's, else the key's default,
        else the deployment's, else none (``""``). :class:`UnknownProfileError` (422)
        when it names no loaded profile."""
        name = requested or self.key_profiles.get(owner) or self.settings.default_profile
        if name and name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none (liveness calibrate writes them)"
            raise UnknownProfileError(f"unknown calibration profile {name[:64]!r}; known: "
                                      f"{known}")
        return name or ""

    def check_capacity(self, tests: Iterable[str]) -> None:
        """Refuse new work (503 + ``Retry-After``) while a queue it needs is full.

        Bounded queues turn an overload into a clear, retryable answer instead of
        accepting work no worker will reach before the client gives up.
        """
        bound = self.settings.max_queue_depth
        if not bound or self.queue_depths is None:
            return
        queues = dict.fromkeys((FACE_QUEUE, *(self.registry.get(t).queue for t in tests)))
        with _available():
            full = [q for q, n in self.queue_depths(queues).items() if n >= bound]
        if full:
            raise OverloadedError(f"queue {', '.join(full)} holds {bound} or more waiting "
                                  "jobs; retry after the Retry-After delay")

    def check_callback(self, callback_url: str | None) -> None:
        """Refuse a callback URL that is not an allowed webhook target (HTTP 422)."""
        if callback_url:
            check_callback_url(callback_url, self.allowlist, self.resolver)

    # --- single jobs -----------------------------------------------------------------
    def resolve_tests(self, tests: Iterable[str] | None) -> list[str]:
        """Validated, de-duplicated test names in request order (default when empty)."""
        return self.registry.resolve(tests, self.settings.default_tests)

    def submit(
        self,
        owner: str,
        image_bytes: bytes,
        tests: Iterable[str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        batch_id: str | None = None,
        _prechecked: bool = False,
        explain: bool = False,
        profile: str | None = None,
    ) -> dict[str, Any]:
        """Validate, store and enqueue one image; the queued job dict.

        With an ``idempotency_key`` already used by this owner for the same request
        (same image bytes, tests and callback URL), the existing job is returned and
        nothing is enqueued; for a different request, :class:`IdempotencyConflictError`
        (HTTP 409).
        """
        names = self.resolve_tests(tests)
        profile_name = self.resolve_profile(owner, profile)
        if not _prechecked:  # a batch checks its callback and capacity once for all items
            self.check_callback(callback_url)
            self.check_capacity(names)
        decode_image(image_bytes, self.settings)  # typed ImageError on bad input
        job_id = new_id()
        with _available():
            idem = None
            if idempotency_key:
                fingerprint = request_fingerprint(image_bytes, names, callback_url, explain,
                                                  profile_name)
                existing = self.store.claim_idempotency(owner, idempotency_key, job_id,
                                                        fingerprint)
                if existing is not None:
                    view = self.get(owner, existing)
                    return view if view is not None else job_view(existing, None, "queued")
                idem = self.store.idem_key(owner, idempotency_key)
            record = self.store.create_job(
                job_id, owner, image_bytes, names, callback_url, batch_id, idem, explain,
                profile_name)
            try:
                self._enqueue(job_id, names)
            except Exception:
                self.store.delete_job(job_id)  # never leave a job no task will finish
                raise
        return job_view(job_id, record)

    def _enqueue(self, job_id: str, names: list[str]) -> None:
        # A task not started within the start timeout is dropped: the job then fails
        # ``no_worker`` at its deadline instead of running long after the client gave up.
        expires_s = self.settings.job_start_timeout_s
        app = self.app
        stages = group(
            app.signature(task, args=(job_id,), expires=expires_s, immutable=True)
            for task in (FACE_TASK, *(self.registry.get(name).task_name for name in names))
        )
        finalize = app.signature(FINALIZE_TASK, kwargs={"job_id": job_id}, immutable=True)
        chord(stages, finalize, app=app).apply_async()

    def get(self, owner: str, job_id: str) -> dict[str, Any] | None:
        """The job dict; ``status="expired"`` after result expiry; None if not the owner's."""
        with _available():
            record = self.store.get_job(job_id)
            if record is None:
                if self.store.expired_owner(job_id) == owner:
                    return job_view(job_id, None, "expired")
                return None
        if record.get("owner") != owner:
            return None
        return job_view(job_id, record)

    def get_explanation(self, owner: str, job_id: str, test: str) -> bytes | None:
        """The owner's job's explanation PNG of ``test``; None when unknown, not the
        owner's, not asked for, not (yet) made, or expired."""
        with _available():
            record = self.store.get_job(job_id)
            if record is None or record.get("owner") != owner:
                return None
            return self.store.get_explanation(job_id, test)

    def wait(self, owner: str, job_id: str, timeout_s: float) -> dict[str, Any] | None:
        """Like :meth:`get`, but first waits up to ``timeout_s`` for done/failed."""
        view = self.get(owner, job_id)
        if view is None or view["status"] in (*TERMINAL, "expired") or timeout_s <= 0:
            return view
        with _available():
            self.store.wait_done(job_id, timeout_s)
        return self.get(owner, job_id)

    def delete(self, owner: str, job_id: str) -> bool:
        """Erase every key of the owner's job now; False when unknown or not theirs."""
        with _available():
            record = self.store.get_job(job_id)
            if record is None:
                if self.store.expired_owner(job_id) != owner:
                    return False
            elif record.get("owner") != owner:
                return False
            self.store.delete_job(job_id)
        return True

    # --- batches ---------------------------------------------------------------------
    def create_batch(
        self,
        owner: str,
        items: list[tuple[str, bytes]],
        tests: Iterable[str] | None = None,
        callback_url: str | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        """One job per ``(name, bytes)`` item; an item's bad image is recorded, not fatal."""
        names = self.resolve_tests(tests)
        self.resolve_profile(owner, profile)  # an unknown profile refuses the whole batch
        self.check_callback(callback_url)
        self.check_capacity(names)
        batch_id = new_id()
        entries: list[dict[str, Any]] = []
        for name, data in items:
            try:
                job = self.submit(owner, data, names, callback_url, batch_id=batch_id,
                                  _prechecked=True, profile=profile)
                entries.append({"name": name, "job_id": job["id"], "error": None})
            except ImageError as exc:
                entries.append({"name": name, "job_id": None,
                                "error": f"{exc.code}: {exc.message}"})
        with _available():
            self.store.create_batch(batch_id, owner, entries)
        view = self.get_batch(owner, batch_id)
        assert view is not None
        return view

    def get_batch(self, owner: str, batch_id: str) -> dict[str, Any] | None:
        """Progress counts and per-image status/result/error; None if not the owner's.

        Each item's ``result`` is the stored ``LivenessResult.to_dict()`` (with
        ``missing_tests`` and ``timings``), which :func:`common.result.csv_row` turns into
        the row ``liveness score --out`` writes.
        """
        with _available():
            record = self.store.get_batch(batch_id)
            if record is None or record.get("owner") != owner:
                return None
            counts = {s: 0 for s in ("queued", "running", "done", "failed", "expired", "error")}
            items = []
            for entry in record["items"]:
                item = {"name": entry["name"], "job_id": entry["job_id"], "status": "error",
                        "result": None, "error": entry["error"]}
                if entry["job_id"]:
                    job = self.store.get_job(entry["job_id"])
                    if job is None:
                        item["status"] = "expired"
                    else:
                        item["status"] = job["status"]
                        item["result"] = job.get("result")
                        item["error"] = job.get("error") or None
                counts[item["status"]] = counts.get(item["status"], 0) + 1
                items.append(item)
        pending = counts["queued"] + counts["running"]
        return {
            "id": batch_id,
            "status": "running" if pending else "done",
            "created_at": record["created_at"],
            "total": len(items),
            "counts": counts,
            "items": items,
        }
