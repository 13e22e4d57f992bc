"""The 3D-depth liveness test (its model code arrives with a later issue).

Registered as the ``depth3d`` test; until its scorer ships, the pool runs and every
task answers ``model_unavailable``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="depth3d",
    description="the VRN + VoxNet 3D mask test",
    scorer=None,
)
