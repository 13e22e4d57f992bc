"""The fasnet liveness test: Minivision's pretrained MiniFASNet pair (Apache-2.0) on two
context crops of the face stage's face, ported to Keras and served as one TFLite model.

Registered as the ``fasnet`` test; ``liveness train fasnet`` ports, converts, evaluates
and writes its model folder (``models/fasnet/``). Without that folder its pool answers
``model_unavailable``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="fasnet",
    description="pretrained MiniFASNetV2 + MiniFASNetV1SE (Minivision, Apache-2.0) on "
                "crops at 2.7× and 4× the face box",
    scorer="workers.fasnet.scorer:FasnetTest",
    default=True,
    trainer="workers.fasnet.cli:train_fasnet_command",
)
