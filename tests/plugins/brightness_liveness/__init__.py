"""A test-only liveness test: mean brightness → P(live) (see ../README.md)."""

from common.registry import TestSpec

SPEC = TestSpec(
    name="brightness",
    description="test-only: mean brightness through a logistic curve",
    scorer="brightness_liveness.scorer:BrightnessTest",
    soft_time_limit_s=10,
    time_limit_s=20,
)
