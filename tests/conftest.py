"""Fixtures every test folder may use: the test-only ``brightness`` plug-in test."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.config import PROJECT_ROOT
from common.registry import reset_default_registry

PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "brightness_liveness"


@dataclass(frozen=True)
class PluginInstall:
    """Where the plug-in is installed and a models folder that holds its model."""

    path: Path        # a sys.path / PYTHONPATH entry with the package and its dist-info
    models_dir: Path  # quality (the shipped model) + brightness

    def env(self) -> dict[str, str]:
        """Environment for a child process (worker, gateway, CLI) that sees the plug-in."""
        paths = [str(self.path), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {"PYTHONPATH": os.pathsep.join(paths), "LIVENESS_MODELS_DIR": str(self.models_dir)}


@pytest.fixture(scope="session")
def brightness_plugin(tmp_path_factory: pytest.TempPathFactory) -> PluginInstall:
    """Install ``tests/plugins/brightness_liveness`` as a distribution would be installed.

    A copy of the package plus ``brightness_liveness-1.0.dist-info`` whose
    ``entry_points.txt`` registers ``brightness = brightness_liveness:SPEC`` in the
    ``liveness.tests`` group — exactly what ``pip install`` of a plug-in writes.
    """
    root = tmp_path_factory.mktemp("plugin-site")
    shutil.copytree(PLUGIN_SOURCE, root / "brightness_liveness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    info = root / "brightness_liveness-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brightness-liveness\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[liveness.tests]\n"
                                           "brightness = brightness_liveness:SPEC\n")
    models = tmp_path_factory.mktemp("plugin-models")
    shutil.copytree(PROJECT_ROOT / "models" / "quality", models / "quality")
    sys.path.insert(0, str(root))
    try:
        from brightness_liveness.scorer import write_model

        write_model(models / "brightness")
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("brightness_liveness.scorer", None)
        sys.modules.pop("brightness_liveness", None)
    return PluginInstall(root, models)


@pytest.fixture
def plugin_on_path(brightness_plugin: PluginInstall,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginInstall]:
    """The plug-in importable and registered in this process for one test."""
    monkeypatch.syspath_prepend(str(brightness_plugin.path))
    reset_default_registry()
    yield brightness_plugin
    reset_default_registry()
