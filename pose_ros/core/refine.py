"""Second and third landmark passes for newly detected people, and a self-consistency score
(numpy, ROS-free).

The detector's crop of a person (from its two body keypoints) is not the crop the landmark
model works best on; in video MediaPipe crops each frame from the previous frame's auxiliary
landmarks. For a newly detected person :func:`refine` does the same on the one image:
pass 0 uses the detector crop, pass k + 1 the crop from pass k's auxiliary landmarks
(:meth:`LandmarkResult.next_roi`). Passes 1 .. ``passes`` are the candidates, each with its
*consistency*: the OKS of its skeleton against the previous pass's (scale: the previous
skeleton's box area; all 33 joints). A skeleton the model reproduces from its own crop is a
fixed point and is usually right; a skeleton that changes when re-cropped (limbs borrowed
from a neighbour, a crop drifting between two people) is not. The pipeline keeps the most
consistent candidate of each person and multiplies the person score by the consistency, so
unreliable skeletons rank last (COCO AP ranks detections by score across images).

Measured on ../shared/data/coco (4 images, 12 annotated people, detector_tiles 3 + pyramid,
benchmarks/bench_multiperson.py): COCO keypoint AP 0.467 with the detector crops only, 0.570
with one pass, 0.598 with two (the default), 0.601 with three. Re-cropping turns sub-pixel
backend differences into different crops: backend parity holds for ``passes`` 0 only.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .metrics import oks_matrix
from .models import blazepose as bp

REFINE_PASSES = 2  # landmark passes after the detector crop, for new candidates only


def consistency(prev: np.ndarray, cur: np.ndarray, sigmas: np.ndarray) -> float:
    """OKS in [0, 1] of skeleton ``cur`` against ``prev`` ((K, 2) px each, K = len(sigmas)),
    scale = the area (px^2) of ``prev``'s box; 1 = identical."""
    prev = np.asarray(prev, np.float64)[: len(sigmas), :2]
    cur = np.asarray(cur, np.float64)[: len(sigmas), :2]
    ext = np.ptp(prev, axis=0)
    area = max(float(ext[0] * ext[1]), 1.0)
    return float(oks_matrix(cur[None], prev[None], [area], sigmas)[0, 0])


def refine(landmarks: Callable[[np.ndarray, list[bp.Roi]], list[bp.LandmarkResult]],
           image: np.ndarray, first: list[bp.LandmarkResult], sigmas: np.ndarray,
           passes: int = REFINE_PASSES) -> list[list[tuple[bp.LandmarkResult, float]]]:
    """Re-crop each person of ``first`` (pass-0 results) ``passes`` times, all people of a
    pass in one batched ``landmarks(image, rois)`` call. Returns per person the list of
    (result of pass k, consistency with pass k - 1) for k = 1 .. passes; with ``passes`` 0
    the pass-0 result with consistency 1."""
    if passes <= 0:
        return [[(r, 1.0)] for r in first]
    out: list[list[tuple[bp.LandmarkResult, float]]] = [[] for _ in first]
    prev = list(first)
    for _ in range(passes):
        if not prev:
            break
        cur = landmarks(image, [r.next_roi() for r in prev])
        for i, (a, b) in enumerate(zip(prev, cur, strict=True)):
            out[i].append((b, consistency(a.keypoints[:, :2], b.keypoints[:, :2], sigmas)))
        prev = cur
    return out
