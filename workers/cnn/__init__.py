"""The CNN liveness test on the face crop (its model code arrives with a later issue).

Registered as the ``cnn`` test; until its scorer ships, the pool runs and every task
answers ``model_unavailable``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="cnn",
    description="the ResNet50 face-crop CNN",
    scorer=None,
)
