"""Drawing skeletons on images (layout-driven: limbs and colours come from the layout)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .skeletons import Layout

_TRACK_COLOURS = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                           (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230)], np.uint8)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable RGB colour per track id."""
    return tuple(int(v) for v in _TRACK_COLOURS[track_id % len(_TRACK_COLOURS)])


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, layout: Layout,
                  min_score: float = 0.5, label: str | None = None,
                  colour: Sequence[int] | None = None) -> np.ndarray:
    """Draw one skeleton in place on an RGB uint8 image and return it.

    keypoints: (K, 2) pixel x, y in the image; scores: (K,) in [0, 1] -- joints below
    ``min_score`` and limbs touching them are not drawn.
    """
    h, w = image.shape[:2]
    thick = max(1, round(max(h, w) / 320))
    ok = np.isfinite(keypoints).all(1) & (scores >= min_score)
    pts = np.round(np.nan_to_num(keypoints) * 16).astype(np.int64)  # 4-bit sub-pixel shift
    for (a, b), c in zip(layout.limbs, layout.limb_colors(), strict=True):
        if ok[a] and ok[b]:
            cv2.line(image, tuple(pts[a]), tuple(pts[b]), tuple(int(v) for v in c), thick,
                     cv2.LINE_AA, shift=4)
    jc = tuple(int(v) for v in (colour if colour is not None else (255, 255, 255)))
    for i in np.nonzero(ok)[0]:
        cv2.circle(image, tuple(pts[i]), (thick + 1) * 16, jc, -1, cv2.LINE_AA, shift=4)
    if label and ok.any():
        x, y = keypoints[ok].min(0)
        cv2.putText(image, label, (int(x), max(int(y) - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, jc, thick, cv2.LINE_AA)
    return image


def draw_persons(image: np.ndarray, persons, min_score: float = 0.5) -> np.ndarray:
    """Draw every :class:`~pose_ros.core.pipeline.Person` (skeleton, ROI box, id) on a copy."""
    out = image.copy()
    for p in persons:
        col = track_colour(p.track_id)
        corners = np.round(p.roi.corners() * 16).astype(np.int64)
        cv2.polylines(out, [corners], True, col, 1, cv2.LINE_AA, shift=4)
        draw_skeleton(out, p.keypoints, p.visibility, p.layout, min_score,
                      label=f"id {p.track_id} {p.score:.2f}", colour=col)
    return out
