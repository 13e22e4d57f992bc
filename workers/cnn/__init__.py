"""The CNN liveness test on the face crop: Keras backbones (ImageNet-initialised where the
weights ship offline), a head trained on cached features at two crop scales.

Registered as the ``cnn`` test; ``liveness train cnn`` writes its model folder
(``models/cnn/``). Without that folder its pool answers ``model_unavailable``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="cnn",
    description="face-crop CNN: frozen ImageNet backbone at two crop scales, linear head",
    scorer="workers.cnn.scorer:CnnTest",
    default=True,
    trainer="workers.cnn.cli:train_cnn_command",
    explains=True,  # Grad-CAM PNG (explain=true)
)
