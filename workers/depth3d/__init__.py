"""The depth3d liveness test: single-image 3D face reconstruction classified in 3D.

Registered as the ``depth3d`` test; ``liveness train depth3d`` reconstructs every face
(the ``mesh`` backend), trains and validates the classifiers leave-one-collection-out and
writes ``models/depth3d/``. Without that folder its pool answers ``model_unavailable``.
"""

from common.registry import TestSpec

SPEC = TestSpec(
    name="depth3d",
    description="single-image 3D face reconstruction (Face Mesh, or VRN) classified by "
                "VoxNet or a depth-map network",
    scorer="workers.depth3d.scorer:Depth3dTest",
    trainer="workers.depth3d.cli:train_depth3d_command",
    # Set for the vrn backend, the slower one: its 192×192×200-volume network takes about
    # 0.5 s per face on 2 cores (bench/depth3d.py --vrn; the mesh backend 4 ms); both
    # limits stay below the deployment's visibility timeout (a redelivery must not race
    # a running task).
    soft_time_limit_s=20,
    time_limit_s=30,
)
