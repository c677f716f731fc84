"""Score any pose pipeline (BlazePose or a model spec) on a COCO-format keypoint folder.

``evaluate_coco(pipe, images_dir, annotations)`` runs the pipeline on every image listed in the
annotation json (static: tracks reset per image), writes COCO keypoint results (every layout
mapped to COCO-17 by joint name) and scores them:

* COCO keypoint AP / AR (:func:`pose_ros.core.metrics.coco_keypoint_eval`, identical to
  pycocotools' COCOeval ``iouType="keypoints"``);
* PCK@alpha (default 0.2): per ground-truth person (not crowd, >= 1 labelled joint) the
  detection with the highest OKS (one-to-one, scipy linear_sum_assignment; unmatched people
  count as misses on every labelled joint); reference length = the longer side of the box of
  the person's labelled keypoints (:func:`pose_ros.core.metrics.reference_length` "bbox").
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import metrics
from .skeletons import COCO_17, mapping


def coco_result(person, image_id: int) -> dict:
    """One person as a COCO result: COCO-17 (x, y, v) with v = the joint's visibility; joints
    the model did not find (NaN) are (0, 0, 0); score = person score x mean COCO visibility
    (as ``pose-ros infer --coco``). Raises ValueError for layouts lacking COCO joints."""
    idx = mapping(person.layout, COCO_17)
    if (idx < 0).any():
        missing = [n for n, i in zip(COCO_17.names, idx, strict=True) if i < 0]
        raise ValueError(f"layout {person.layout.name} lacks the COCO-17 joints {missing}; COCO "
                         "scoring needs all 17 (name the model's joints as COCO does)")
    xy = np.asarray(person.keypoints, np.float64)[idx]
    v = np.asarray(person.visibility, np.float64)[idx]
    ok = np.isfinite(xy).all(1)
    xy = np.where(ok[:, None], xy, 0.0)
    v = np.where(ok, v, 0.0)
    kps = np.column_stack([xy, v]).round(3).reshape(-1).tolist()
    return {"image_id": int(image_id), "category_id": 1, "keypoints": kps,
            "score": round(float(person.score) * float(np.mean(v)), 5)}


def pck_matched(gt: dict, results: list[dict], alpha: float = 0.2) -> tuple[float, int]:
    """PCK@alpha of COCO results against the COCO ground truth (see the module docstring).
    Returns (PCK over all labelled joints, number of ground-truth people counted)."""
    by_img: dict[int, list] = {}
    for r in results:
        by_img.setdefault(int(r["image_id"]), []).append(r)
    gts = []
    ids = {int(i["id"]) for i in gt["images"]}
    for a in gt["annotations"]:
        if a.get("iscrowd", 0) or a.get("num_keypoints", 1) == 0 or a["image_id"] not in ids:
            continue
        g = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        if not (g[:, 2] > 0).any():
            continue
        gts.append((a, g))
    pred = np.full((len(gts), 17, 2), np.nan)
    for img in ids:
        gi = [i for i, (a, _) in enumerate(gts) if a["image_id"] == img]
        dts = by_img.get(img, [])
        if not gi or not dts:
            continue
        sim = np.array([[metrics.oks(np.asarray(d["keypoints"]).reshape(-1, 3), gts[i][1],
                                     gts[i][0].get("area", 0.0), gt_bbox=gts[i][0].get("bbox"))
                         for d in dts] for i in gi])
        rows, cols = linear_sum_assignment(-sim)
        for r, c in zip(rows, cols, strict=True):
            if sim[r, c] > 0:
                d = np.asarray(dts[c]["keypoints"], np.float64).reshape(-1, 3)
                pred[gi[r]] = np.where(d[:, 2:] > 0, d[:, :2], np.nan)
    if not gts:
        return float("nan"), 0
    g2 = np.stack([g[:, :2] for _, g in gts])
    vis = np.stack([g[:, 2] > 0 for _, g in gts])
    ref = metrics.reference_length(g2, "bbox", visible=vis)
    value, _ = metrics.pck(pred, g2, ref, alpha, vis)
    return value, len(gts)


def evaluate_coco(pipe, images_dir: str | Path, annotations: str | Path, progress: bool = True,
                  limit: int | None = None, alpha: float = 0.2) -> tuple[dict, list[dict]]:
    """Run ``pipe`` (RGB uint8 image -> persons) on the annotated images of a COCO folder.
    Returns ({"images", "people", "detections", AP, AP50, ..., ARl, f"PCK@{alpha}"}, results)."""
    import cv2
    from tqdm import tqdm

    ann = Path(annotations)
    try:
        gt = json.loads(ann.read_text())
        images = sorted(gt["images"], key=lambda i: i["id"])
        gt["annotations"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{ann}: not a COCO keypoint annotation file (json with images and "
                         f"annotations): {exc}") from None
    if limit:
        images = images[:limit]
        keep = {i["id"] for i in images}
        gt = dict(gt, images=images, annotations=[a for a in gt["annotations"] if a["image_id"] in keep])
    results: list[dict] = []
    for im in tqdm(images, unit="image", desc="eval", disable=not progress):
        path = Path(images_dir) / im["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {path} (listed in {ann}); --coco-dir must be the "
                                    "folder holding the annotation's file_name entries")
        if hasattr(pipe, "reset"):
            pipe.reset()
        persons = pipe(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        results += [coco_result(p, im["id"]) for p in persons]
    stats = metrics.coco_keypoint_eval(gt, results)
    pck_value, n_people = pck_matched(gt, results, alpha)
    out = {"images": len(images), "people": n_people, "detections": len(results), **stats,
           f"PCK@{alpha:g}": pck_value}
    return out, results


def format_report(stats: dict) -> str:
    """Lines for the terminal: counts, AP / AR (pycocotools' ten numbers) and PCK."""
    lines = [f"images {stats['images']}, ground-truth people {stats['people']}, "
             f"detections {stats['detections']}"]
    lines += [f"{k:>8s} {v:.4f}" for k, v in stats.items() if k not in ("images", "people", "detections")]
    return "\n".join(lines)
