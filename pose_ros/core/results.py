"""Result serialisation: COCO keypoint results and per-frame JSON."""
from __future__ import annotations

import numpy as np

from .skeletons import COCO_17, mapping


def coco_keypoint_result(person, image_id: int) -> dict:
    """One person as a COCO keypoint-detection result (BlazePose-33 mapped to COCO-17).

    keypoints: 17 x (x, y, v) with v = the landmark's visibility in [0, 1] (COCO's scorer
    ignores v of results; the person score ranks detections).
    """
    idx = mapping(person.layout, COCO_17)
    if (idx < 0).any():
        raise ValueError(f"layout {person.layout.name} lacks COCO joints")
    xy = person.keypoints[idx]
    v = person.visibility[idx]
    kps = np.column_stack([xy, v]).astype(float).round(3).reshape(-1).tolist()
    # person score x mean visibility of the COCO joints: ranks partial, occluded people lower
    score = float(person.score) * float(np.mean(v))
    return {"image_id": int(image_id), "category_id": 1, "keypoints": kps, "score": round(score, 5)}


def person_json(person) -> dict:
    """All 33 landmarks (x, y, z, visibility, presence), world landmarks (m), ROI, bbox."""
    return {
        "id": int(person.track_id),
        "layout": person.layout.name,
        "score": round(float(person.score), 5),
        "bbox": [round(float(v), 2) for v in person.bbox],
        "roi": {"cx": person.roi.cx, "cy": person.roi.cy, "size": person.roi.size,
                "angle": person.roi.angle},
        "keypoints": [
            {"name": n, "x": round(float(x), 2), "y": round(float(y), 2), "z": round(float(z), 2),
             "visibility": round(float(v), 4), "presence": round(float(p), 4)}
            for n, (x, y), z, v, p in zip(person.layout.names, person.keypoints, person.z,
                                          person.visibility, person.presence, strict=True)],
        "world": [[round(float(c), 4) for c in w] for w in person.world],
    }
