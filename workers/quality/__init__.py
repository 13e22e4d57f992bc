"""The W-IQA image-quality liveness test (Galbally, Marcel & Fierrez 2014).

Registered as the ``quality`` test (``pyproject.toml``, group ``liveness.tests``). Not a
default test: on collections it never saw it does not improve the fused figures
(``models/fusion/MODEL_CARD.md``); a job asks for it with ``tests=quality``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="quality",
    description="W-IQA: 25 image-quality measures and a shrinkage LDA",
    scorer="workers.quality.scorer:QualityTest",
    trainer="workers.quality.cli:train_quality",
)
