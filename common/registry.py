"""The test registry: every liveness test declared once, found through entry points.

A test is a plug-in, as bob.pad's pipelines are: its package declares one
:class:`TestSpec` and ``pyproject.toml`` names it in the ``liveness.tests`` entry-point
group::

    [project.entry-points."liveness.tests"]
    quality = "workers.quality:SPEC"

Everything else derives from the registry: the Celery queues and routes and one score
task per test (:mod:`common.queueing`, :mod:`workers.tasks`), the models a worker
preloads, the pools ``liveness serve`` starts, the queues ``/readyz`` requires, the
Prometheus queue labels, the tests a job may ask for, ``liveness train <test>`` and the
e2e bench.
Any installed distribution may add tests (a ``*.dist-info/entry_points.txt`` on
``sys.path`` is enough), so a deployment's own test needs no edit of this project.

Specs name their scorer and trainer as ``"module:attribute"`` strings, so reading the
registry imports no model code: the gateway knows every test without loading
TensorFlow, and this module imports nothing from ``workers``.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from common.errors import LivenessError, ModelError

#: The entry-point group tests are registered in.
ENTRY_POINT_GROUP = "liveness.tests"
#: Queues of the job pipeline's own stages (not tests): the face stage and fusion.
FACE_QUEUE = "face"
FUSION_QUEUE = "fusion"
STAGE_QUEUES: tuple[str, ...] = (FACE_QUEUE, FUSION_QUEUE)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class TestSpec:
    """What a liveness test declares about itself, once.

    ``scorer`` is ``"module:Class"`` of a class with ``from_dir(folder) -> LivenessTest``
    (:class:`common.liveness_test.LivenessTest`), loaded from ``<models_dir>/<name>/``;
    ``None`` while the test's model code is not shipped (its pool runs and answers
    ``model_unavailable``). ``trainer`` is ``"module:attribute"`` of a ``click.Command``
    that becomes ``liveness train <name>``. Time limits in seconds; ``None`` uses the
    service-wide ``LIVENESS_TASK_SOFT_TIME_LIMIT_S`` / ``LIVENESS_TASK_TIME_LIMIT_S``.
    """

    __test__ = False  # not a pytest test class

    name: str
    description: str
    scorer: str | None
    queue: str = ""
    soft_time_limit_s: int | None = None
    time_limit_s: int | None = None
    default: bool = False
    trainer: str | None = None
    models_subdir: str = field(default="")
    #: The scorer can explain its score (``explain(image, face) -> PNG bytes``): jobs
    #: with ``explain=true`` need at least one such test.
    explains: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"test name {self.name!r}: lower-case letters, digits, '_'")
        if self.name in STAGE_QUEUES:
            raise ValueError(f"test name {self.name!r} is a pipeline stage's queue")
        if not self.queue:
            object.__setattr__(self, "queue", self.name)
        if not self.models_subdir:
            object.__setattr__(self, "models_subdir", self.name)
        for ref in (self.scorer, self.trainer):
            if ref is not None and ":" not in ref:
                raise ValueError(f"{self.name}: {ref!r} must be 'module:attribute'")

    @property
    def task_name(self) -> str:
        """The Celery task that runs this test: ``liveness.<name>.score``."""
        return f"liveness.{self.name}.score"

    def model_dir(self, models_dir: str | Path) -> Path:
        return Path(models_dir) / self.models_subdir


def load_reference(ref: str) -> Any:
    """Import ``"module:attribute"`` (dotted attributes allowed)."""
    module_name, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class TestRegistry:
    """An ordered set of :class:`TestSpec`, by name. Build with :meth:`discover`."""

    __test__ = False  # not a pytest test class

    def __init__(self, specs: Iterable[TestSpec]) -> None:
        self._specs: dict[str, TestSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"test {spec.name!r} is registered twice")
            self._specs[spec.name] = spec
        self._loaded: dict[tuple[str, Path], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> TestRegistry:
        """Every spec registered under ``group`` by the installed distributions.

        Sorted by name, so every process derives the same queues in the same order.
        """
        specs = []
        for ep in entry_points(group=group):
            spec = ep.load()
            if not isinstance(spec, TestSpec):
                raise TypeError(f"entry point {ep.name} = {ep.value} is not a TestSpec")
            if spec.name != ep.name:
                raise ValueError(f"entry point {ep.name!r} declares test {spec.name!r}")
            specs.append(spec)
        return cls(sorted(specs, key=lambda s: s.name))

    # --- lookups -------------------------------------------------------------------
    def __iter__(self) -> Iterator[TestSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def get(self, name: str) -> TestSpec:
        """The spec of test ``name``; :class:`UnknownTestError` when none is registered."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownTestError(
                f"unknown test {name!r}; known tests: {', '.join(self.names) or 'none'}"
            ) from None

    @property
    def defaults(self) -> tuple[str, ...]:
        """Tests a job runs when it names none (``default=True``)."""
        return tuple(s.name for s in self if s.default)

    @property
    def test_queues(self) -> tuple[str, ...]:
        """One queue per test (tests may share one), in registry order."""
        return tuple(dict.fromkeys(s.queue for s in self))

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue of the job pipeline: the face stage, each test's, then fusion."""
        return tuple(dict.fromkeys((FACE_QUEUE, *self.test_queues, FUSION_QUEUE)))

    def resolve(self, names: Iterable[str] | None, default: str = "") -> list[str]:
        """Validated, de-duplicated names in the given order.

        Empty ``names``: the comma-separated ``default`` (``LIVENESS_DEFAULT_TESTS``) or,
        when that is empty too, the specs marked ``default``. Unknown names raise
        :class:`UnknownTestError` listing every one of them.
        """
        picked = [n.strip() for n in (names or []) if n and n.strip()]
        if not picked:
            picked = [n.strip() for n in default.split(",") if n.strip()] or list(self.defaults)
        unknown = [n for n in picked if n not in self._specs]
        if unknown:
            raise UnknownTestError(
                f"unknown test(s) {', '.join(map(repr, unknown))}; "
                f"known tests: {', '.join(self.names)}"
            )
        return list(dict.fromkeys(picked))

    # --- loading ---------------------------------------------------------------------
    def load_scorer(self, name: str, models_dir: str | Path) -> Any:
        """Test ``name``'s scorer from ``<models_dir>/<name>/``, loaded once per process.

        Raises :class:`ModelError` when the test ships no model code yet, or its model
        folder is absent, unreadable or fails its SHA-256 check.
        """
        spec = self.get(name)
        key = (name, Path(models_dir).resolve())
        with self._lock:
            if key not in self._loaded:
                if spec.scorer is None:
                    raise ModelError(
                        f"no model for the {name!r} test ({spec.description}) is shipped yet; "
                        f"its pool runs but cannot score until its model code and the "
                        f"{spec.models_subdir}/ model folder are installed"
                    )
                cls = load_reference(spec.scorer)
                self._loaded[key] = cls.from_dir(spec.model_dir(models_dir))
            return self._loaded[key]

    def load_trainer(self, name: str) -> Any:
        """The ``click.Command`` that trains test ``name``; ``None`` when it has none."""
        spec = self.get(name)
        return None if spec.trainer is None else load_reference(spec.trainer)


class UnknownTestError(LivenessError):
    """A test name that no installed distribution registers (HTTP 422)."""

    code = "unknown_test"
    http_status = 422


_DEFAULT: TestRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> TestRegistry:
    """The process's registry, discovered from entry points on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TestRegistry.discover()
        return _DEFAULT


def reset_default_registry() -> None:
    """Forget the discovered registry (after ``sys.path`` gained a distribution)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None
