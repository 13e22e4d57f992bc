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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from celery import chord, group
from celery.result import denied_join_result
from kombu.exceptions import OperationalError

from common.challenge.store import (
    Challenge,
    ChallengeError,
    ChallengeStore,
    FrameTooLargeError,
)
from common.config import Settings
from common.egress import Resolver, check_callback_url, parse_allowlist, system_resolver
from common.errors import ImageError, LivenessError, ModelError
from common.imageio import decode_image
from common.jobstore import TERMINAL, IdempotencyConflictError, JobStore, new_id
from common.modelfolder import read_model_info
from common.outages import refusal_code
from common.profiles import ProfileCatalog, ProfileMismatchError, parse_key_profiles
from common.queueing import FACE_TASK, FINALIZE_TASK, LivenessCelery
from common.registry import FACE_QUEUE, TestRegistry, UnknownTestError
from common.result import JobView, LivenessResult

log = logging.getLogger(__name__)

__all__ = ["ExplainUnsupportedError", "IdempotencyConflictError", "JobService",
           "OverloadedError", "ProfileMismatchError", "StoreUnavailableError",
           "TestUnavailableError", "UnknownProfileError", "UnknownTestError", "job_view"]


def request_fingerprint(image: bytes, tests: Iterable[str], callback_url: str | None,
                        explain: bool = False, profile: str = "",
                        challenge_id: str | None = None,
                        frames: Iterable[bytes] = ()) -> str:
    """SHA-256 hex of what makes two submissions the same request."""
    digest = hashlib.sha256(image)
    if challenge_id:
        digest.update(b"\0challenge=" + challenge_id.encode())
        for frame in frames:
            digest.update(hashlib.sha256(frame).digest())
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


class ExplainUnsupportedError(LivenessError):
    """``explain=true`` for a job none of whose tests can explain its score (HTTP 422)."""

    code = "explain_unsupported"
    http_status = 422


class TestUnavailableError(LivenessError):
    """A registered test whose model code is not installed in this deployment (HTTP 422):
    its job could only end without that test's score."""

    __test__ = False  # not a pytest test class
    code = "test_unavailable"
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


def installed_models(models_dir: str | Path, tests: Iterable[str]
                     ) -> dict[str, tuple[str | None, str | None]]:
    """Test → (model name, version) from ``<models_dir>/<test>/model.json`` for the tests
    whose model folder this process can see (the gateway's image carries none: then
    the fusion pool checks the versions of every job's outcomes instead)."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for test in tests:
        info = read_model_info(Path(models_dir) / test)
        if info is not None:
            found[test] = (info.get("name"), info.get("version"))
    return found


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
    """Turn a job-store or broker outage into a typed 503 instead of a hang or a 500.

    An outage is any Redis error — unreachable, timing out, or up but refusing writes
    (``MISCONF``, ``NOREPLICAS``, ``OOM`` …: :mod:`common.outages`) — or a broker
    connection error: nothing the request could change, so the client retries later.
    """
    try:
        yield
    except (redis.RedisError, OperationalError) as exc:
        refused = refusal_code(exc)
        log.warning("job store or broker %s: %s: %s",
                    f"refuses writes ({refused})" if refused else "unavailable",
                    type(exc).__name__, exc)
        what = "refuses writes" if refused else "is unreachable"
        raise StoreUnavailableError(f"the job store or queue {what}; retry later") from exc


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
        #: Calibration profiles (``<models_dir>/profiles``), re-read when a file there
        #: changes; a malformed one stops the service at start (ModelError).
        self.profiles = ProfileCatalog(self.settings.models_dir)
        self.key_profiles = parse_key_profiles(self.settings.key_profiles)
        self._check_default_profiles()
        self.challenges = ChallengeStore(store.redis, self.settings)

    def _check_default_profiles(self) -> None:
        """Refuse to start (:class:`ModelError`) when ``LIVENESS_DEFAULT_PROFILE`` or a
        ``LIVENESS_KEY_PROFILES`` entry names a profile that does not exist, or one that
        does not fit the jobs it would decide: the default tests, and the models and
        fusion installed under the models folder where this process can see them."""
        profiles = self.profiles.all()
        named = {*self.key_profiles.values(), self.settings.default_profile} - {""}
        if named - set(profiles):
            raise ModelError(f"LIVENESS_DEFAULT_PROFILE / LIVENESS_KEY_PROFILES name profiles "
                             f"that are not in {self.settings.models_dir}/profiles: "
                             f"{', '.join(sorted(named - set(profiles)))}")
        defaults = self.resolve_tests(None)
        for name in sorted(named):
            profile = profiles[name]
            try:
                profile.check_tests(defaults, "the default tests (LIVENESS_DEFAULT_TESTS, "
                                    "else the registry's defaults) are")
                profile.check_models(installed_models(self.settings.models_dir,
                                                      profile.tests))
            except ProfileMismatchError as exc:
                raise ModelError(f"LIVENESS_DEFAULT_PROFILE / LIVENESS_KEY_PROFILES: "
                                 f"{exc.message}") from exc

    def resolve_profile(self, owner: str, requested: str | None,
                        tests: Iterable[str] | None = None) -> str:
        """The profile a job of ``owner`` uses: the request's, else the key's default,
        else the deployment's, else none (``""``). :class:`UnknownProfileError` (422)
        when it names no loaded profile; :class:`ProfileMismatchError` (422) when it was
        fitted on other ``tests`` than the job's."""
        name = requested or self.key_profiles.get(owner) or self.settings.default_profile
        if not name:
            return ""
        profiles = self.profiles.all()
        profile = profiles.get(name)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none (liveness calibrate writes them)"
            raise UnknownProfileError(f"unknown calibration profile {name[:64]!r}; known: "
                                      f"{known}")
        if tests is not None:
            origin = ("this job runs" if requested else
                      "this job (which names no profile, so gets its API key's or the "
                      "deployment's default) runs")
            profile.check_tests(tests, origin)
        return name

    def check_options(self, names: Iterable[str], explain: bool) -> None:
        """Refuse what a job could only answer badly (HTTP 422): a test whose model code
        is not installed (``test_unavailable``), and ``explain=true`` without a test that
        can explain its score (``explain_unsupported``)."""
        specs = [self.registry.get(n) for n in names]
        missing = [s.name for s in specs if s.scorer is None]
        if missing:
            raise TestUnavailableError(
                f"test(s) {', '.join(missing)} cannot score in this deployment: no model "
                "is installed for them (`liveness tests` lists what each test needs)")
        if explain and not any(s.explains for s in specs):
            able = [s.name for s in self.registry if s.explains and s.scorer is not None]
            raise ExplainUnsupportedError(
                f"explain=true needs a test that explains its score "
                f"({', '.join(able) or 'none is installed'}); this job runs "
                f"{', '.join(s.name for s in specs)}")

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
        challenge_id: str | None = None,
        frames: Sequence[bytes] = (),
    ) -> dict[str, Any]:
        """Validate, store and enqueue one image; the queued job dict.

        ``challenge_id`` and ``frames``: the answer to a colour-flash challenge (``POST
        /v1/challenges``), one frame per colour in order. The challenge is bound to this
        job (:class:`common.challenge.store.ChallengeError` subclasses when it is unknown,
        another key's, used, or answered too soon; released again when the submission
        fails), and the face stage checks the frames.

        With an ``idempotency_key`` already used by this owner for the same request
        (same image bytes, tests and callback URL), the existing job is returned and
        nothing is enqueued; for a different request, :class:`IdempotencyConflictError`
        (HTTP 409).
        """
        names = self.resolve_tests(tests)
        self.check_options(names, explain)
        profile_name = self.resolve_profile(owner, profile, names)
        if not _prechecked:  # a batch checks its callback and capacity once for all items
            self.check_callback(callback_url)
            self.check_capacity(names)
        decode_image(image_bytes, self.settings)  # typed ImageError on bad input
        if bool(challenge_id) != bool(frames):
            raise ChallengeError("a challenge is answered with its id ('challenge') and its "
                                 "frames ('frames'), both or neither")
        self.check_frames(frames)
        job_id = new_id()
        started = time.monotonic()
        created = time.time()
        # All or nothing: the job is written pending (short TTLs, a grace deadline),
        # enqueued, then confirmed. A failure at any step is answered 503 and erases what
        # was written; when Redis refuses even that, the deadline sweep erases the
        # pending job at its grace deadline, and workers never run it (common.jobstore).
        with _available():
            idem = None
            if idempotency_key:
                fingerprint = request_fingerprint(image_bytes, names, callback_url, explain,
                                                  profile_name, challenge_id, frames)
                existing = self.store.claim_idempotency(owner, idempotency_key, job_id,
                                                        fingerprint,
                                                        self.store.pending_ttl_s())
                if existing is not None:
                    return self._replay(owner, existing)
                idem = self.store.idem_key(owner, idempotency_key)
            challenge: Challenge | None = None
            try:
                if challenge_id:
                    challenge = self.challenges.claim(owner, challenge_id, job_id)
                    if len(frames) != len(challenge.colours):
                        raise ChallengeError(
                            f"challenge {challenge_id!r} has {len(challenge.colours)} "
                            f"colours; send one frame per colour, not {len(frames)}")
                record = self.store.create_job(
                    job_id, owner, image_bytes, names, callback_url, batch_id, idem, explain,
                    profile_name, pending=True, created=created,
                    challenge=challenge.job_field() if challenge else None,
                    frames=list(frames) or None)
                self._enqueue(job_id, names)
                # Past half the grace a worker may already have given up waiting.
                in_time = time.monotonic() - started < self.settings.submit_grace_s / 2
                if not (in_time and self.store.confirm_job(job_id, created)):
                    raise StoreUnavailableError("the submission could not be completed in "
                                                "time; retry later")
            except BaseException:
                self._discard(job_id, idem)
                if challenge_id:
                    self._release_challenge(challenge_id, job_id)
                raise
        record.pop("pending", None)
        return job_view(job_id, record)

    def _replay(self, owner: str, job_id: str) -> dict[str, Any]:
        """The job an ``Idempotency-Key`` already names; 503 while that submission is
        not confirmed — in progress, or failed and not erased yet — so the client
        retries and gets the job, or a new one once the failed submission is gone."""
        record = self.store.get_job(job_id)
        view = None if record is not None and record.get("pending") else self.get(owner, job_id)
        if view is None:
            raise StoreUnavailableError("a submission with this Idempotency-Key is in "
                                        "progress or failed moments ago; retry later")
        return view

    def _discard(self, job_id: str, idem: str | None) -> None:
        """Erase a failed submission (pending job, idempotency key) now if Redis lets
        us; else the deadline sweep does at the grace deadline, and the keys' short TTLs
        end the rest."""
        try:
            self.store.erase_pending(job_id, idem)
        except redis.RedisError as exc:
            log.warning("failed submission %s left for the deadline sweep (%s: %s)", job_id,
                        type(exc).__name__, exc)

    def _release_challenge(self, challenge_id: str, job_id: str) -> None:
        try:
            self.challenges.release(challenge_id, job_id)
        except redis.RedisError as exc:
            log.warning("challenge of failed submission %s not released (%s)", job_id,
                        type(exc).__name__)

    def _erase_jobs(self, job_ids: list[str]) -> None:
        """Best-effort erasure of jobs of a batch whose submission failed."""
        for job_id in job_ids:
            try:
                self.store.delete_job(job_id)
            except redis.RedisError as exc:
                log.warning("job %s of a failed batch submission not erased (%s)", job_id,
                            type(exc).__name__)

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
        # The gateway never waits for a task's result: without this, Celery's Redis
        # result backend would subscribe to every sent task's result channel, and an
        # outage of that connection would turn into "retry limit exceeded" errors.
        with denied_join_result():
            chord(stages, finalize, app=app).apply_async()

    def issue_challenge(self, owner: str) -> dict[str, Any]:
        """A new colour-flash challenge for ``owner`` (``POST /v1/challenges``)."""
        with _available():
            return self.challenges.issue(owner).public()

    def check_frames(self, frames: Sequence[bytes]) -> None:
        """Every challenge frame must be an image the service can read: the first bad
        one raises its :class:`ImageError` (its code and status), the message naming it."""
        for number, frame in enumerate(frames, 1):
            if len(frame) > self.settings.challenge_frame_max_bytes:
                raise FrameTooLargeError(
                    f"challenge frame {number} is larger than the limit of "
                    f"{self.settings.challenge_frame_max_bytes} bytes "
                    "(LIVENESS_CHALLENGE_FRAME_MAX_BYTES)")
            try:
                decode_image(frame, self.settings)
            except ImageError as exc:
                exc.message = f"challenge frame {number}: {exc.message}"
                exc.args = (exc.message,)
                raise

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
            if record and record.get("batch_id"):
                self.store.mark_deleted_in_batch(record["batch_id"], job_id)
        return True

    def delete_batch(self, owner: str, batch_id: str) -> bool:
        """Erase the owner's batch and every job of it now; False when unknown or not
        theirs."""
        with _available():
            record = self.store.get_batch(batch_id)
            if record is None or record.get("owner") != owner:
                return False
            self.store.delete_batch(batch_id)
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
        self.check_options(names, False)
        # an unknown or unfitting profile refuses the whole batch
        self.resolve_profile(owner, profile, names)
        self.check_callback(callback_url)
        self.check_capacity(names)
        batch_id = new_id()
        entries: list[dict[str, Any]] = []
        try:
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
        except Exception:
            # The client gets an error and no batch id: the jobs already submitted must not
            # run on unseen (erased now; if Redis refuses even that, they expire unseen).
            self._erase_jobs([e["job_id"] for e in entries if e["job_id"]])
            raise
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
            counts = {s: 0 for s in ("queued", "running", "done", "failed", "expired",
                                     "deleted", "error")}
            deleted = self.store.deleted_in_batch(batch_id)
            items = []
            for entry in record["items"]:
                item = {"name": entry["name"], "job_id": entry["job_id"], "status": "error",
                        "result": None, "error": entry["error"]}
                if entry["job_id"]:
                    job = self.store.get_job(entry["job_id"])
                    if job is None:
                        item["status"] = ("deleted" if entry["job_id"] in deleted
                                          else "expired")
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
