"""The W-IQA image-quality liveness test (Galbally, Marcel & Fierrez 2014).

Registered as the ``quality`` test (``pyproject.toml``, group ``liveness.tests``). A
default test since 2026-12-07: alone it barely tells live from attack on collections it
never saw, but fused with ``cnn`` and ``fasnet`` it lowers the held-out mean HTER, the
fusion's criterion (``models/fusion/MODEL_CARD.md``), so the fusion recommends it.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="quality",
    description="W-IQA: 25 image-quality measures and a shrinkage LDA",
    scorer="workers.quality.scorer:QualityTest",
    default=True,
    trainer="workers.quality.cli:train_quality",
)
