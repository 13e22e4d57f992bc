"""The test registry: entry points, validation, defaults, queues, loading."""

from __future__ import annotations

import pytest

from common.config import Settings
from common.errors import ModelError
from common.queueing import make_celery
from common.registry import (
    FACE_QUEUE,
    FUSION_QUEUE,
    TestRegistry,
    TestSpec,
    UnknownTestError,
    default_registry,
)


def test_the_installed_tests_are_registered_through_entry_points():
    registry = default_registry()
    assert {"quality", "cnn", "fasnet", "depth3d"} <= set(registry.names)
    assert registry.defaults == ("cnn", "fasnet", "quality")  # what the shipped fusion recommends
    assert registry.queues[0] == FACE_QUEUE and registry.queues[-1] == FUSION_QUEUE
    assert set(registry.test_queues) == set(registry.names)


def test_spec_validation_and_derived_names():
    spec = TestSpec("eyes", "blink test", "pkg.mod:Cls")
    assert spec.queue == "eyes" and spec.task_name == "liveness.eyes.score"
    for bad in ("Eyes", "1eyes", "face", "fusion", ""):
        with pytest.raises(ValueError):
            TestSpec(bad, "x", None)
    with pytest.raises(ValueError, match="module:attribute"):
        TestSpec("eyes", "x", "no_colon")
    with pytest.raises(ValueError, match="twice"):
        TestRegistry([spec, spec])


def test_resolve_orders_dedupes_and_names_every_unknown_test():
    registry = default_registry()
    assert registry.resolve(["cnn", "quality", "cnn"]) == ["cnn", "quality"]
    assert registry.resolve([]) == ["cnn", "fasnet", "quality"]
    assert registry.resolve(None, default="depth3d, cnn") == ["depth3d", "cnn"]
    with pytest.raises(UnknownTestError, match="'nope', 'nada'") as info:
        registry.resolve(["nope", "quality", "nada"])
    assert info.value.http_status == 422


def test_a_test_without_model_code_is_unavailable_not_unknown(tmp_path):
    pending = TestSpec(name="mask3d", description="a 3D mask test", scorer=None)
    with pytest.raises(ModelError, match="no model for the 'mask3d' test"):
        TestRegistry([pending]).load_scorer("mask3d", tmp_path)
    with pytest.raises(ModelError, match="no model file"):
        default_registry().load_scorer("depth3d", tmp_path)  # empty models folder
    with pytest.raises(ModelError, match="no model file"):
        default_registry().load_scorer("quality", tmp_path)  # empty models folder


def test_celery_app_derives_queues_routes_and_limits_from_the_registry():
    spec = TestSpec("eyes", "blink test", "pkg.mod:Cls", soft_time_limit_s=5, time_limit_s=9)
    app = make_celery(Settings(), TestRegistry([spec]))
    assert [q.name for q in app.conf.task_queues] == [FACE_QUEUE, "eyes", FUSION_QUEUE]
    assert app.conf.task_routes["liveness.eyes.score"] == {"queue": "eyes"}
    from workers.tasks import register_tasks

    task = register_tasks(app).tasks["liveness.eyes.score"]
    assert (task.soft_time_limit, task.time_limit, task.test_name) == (5, 9, "eyes")


def test_a_plugin_distribution_adds_a_test(plugin_on_path):
    registry = default_registry()
    assert "brightness" in registry and registry.get("brightness").queue == "brightness"
    assert "brightness" in registry.queues and "brightness" not in registry.defaults
    test = registry.load_scorer("brightness", plugin_on_path.models_dir)
    assert test.info.name == "mean-brightness"
