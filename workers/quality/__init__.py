"""The W-IQA image-quality liveness test (Galbally, Marcel & Fierrez 2014).

Registered as the ``quality`` test (``pyproject.toml``, group ``liveness.tests``).
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="quality",
    description="W-IQA: 25 image-quality measures and a shrinkage LDA",
    scorer="workers.quality.scorer:QualityTest",
    default=True,
    trainer="workers.quality.cli:train_quality",
)
