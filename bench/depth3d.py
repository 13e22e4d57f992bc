"""Benchmark: the depth3d test with the ``mesh`` backend, one thread.

Prints, for the shipped model (``models/depth3d``): the load time in a fresh process
(imports + models + first call) and the median milliseconds per face of
``Depth3dTest.score`` on scikit-image's astronaut with its located face (face stage
excluded) — reconstruction + classification, the issue's budget is 20 ms — and of its
parts: the Face Mesh pass and canonical frame, the depth map, the mesh signals, the
classifier (LiteRT, batch 1). With ``--vrn``, also the median seconds of one VRN
forward pass (the ``vrn`` backend's reconstruction, Keras, Keras's random initial
weights: the cost does not depend on their values) on a 192×192 crop.

Usage: python bench/depth3d.py [--repeat N] [--vrn]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skimage import data

from bench.timing import median_ms, scorer_load_seconds
from common.config import get_settings
from common.faces import locate_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--vrn", action="store_true", help="also time a VRN forward pass")
    args = parser.parse_args()
    if args.vrn:
        import numpy as np

        from workers.depth3d.vrn import build_vrn

        vrn = build_vrn()
        crop = np.random.default_rng(0).uniform(0, 1, (1, 192, 192, 3)).astype(np.float32)
        vrn(crop, training=False)
        vrn_ms = median_ms(lambda: vrn(crop, training=False), 5)
        print(f"vrn: {vrn_ms / 1000:.2f} s per 192×192 face (Keras, this machine's threads; "
              f"{vrn.count_params() / 1e6:.1f} M parameters)")
    folder = get_settings().models_dir / "depth3d"
    if not (folder / "model.json").is_file():
        print(f"no shipped model in {folder} (liveness train depth3d)")
        return
    from workers.depth3d.reconstruct import reconstruct_mesh
    from workers.depth3d.scorer import Depth3dTest
    from workers.depth3d.signals import mesh_signals
    from workers.depth3d.volume import depth_map

    load_s = scorer_load_seconds("workers.depth3d.scorer:Depth3dTest", folder)
    test = Depth3dTest.from_dir(folder)
    image = data.astronaut()
    face = locate_face(image)
    recon = reconstruct_mesh(image, face)
    depth, sig = test.features(image, face)
    score_ms = median_ms(lambda: test.score(image, face), args.repeat)
    mesh_ms = median_ms(lambda: reconstruct_mesh(image, face), args.repeat)
    map_ms = median_ms(lambda: depth_map(recon.points, test.side), args.repeat)
    signals_ms = median_ms(lambda: mesh_signals(recon.points, recon.image_points,
                                                test.reference), args.repeat)
    model_ms = median_ms(lambda: test.runner(depth[None], sig[None]), args.repeat)
    print(f"depth3d {test.info.name} {test.info.version} ({test.backend} backend): "
          f"{score_ms:.2f} ms per face (reconstruction + classification, one thread; face "
          f"stage excluded): Face Mesh + canonical frame {mesh_ms:.2f} ms, depth map "
          f"{map_ms:.2f} ms, signals {signals_ms:.2f} ms, {test.kind} {model_ms:.2f} ms; "
          f"load {load_s:.2f} s in a fresh process")


if __name__ == "__main__":
    main()
