"""Multi-person detection on ../shared/data/coco: COCO keypoint AP (core.metrics.coco_keypoint_eval,
identical to pycocotools) for detector_tiles 0 / 2 / 3 / 3 + pyramid (default) / 4 + pyramid in
static mode, with a per-image breakdown:
detections, people found (a ground truth matched at OKS >= 0.5) and fragments (detections
that match no ground truth at OKS >= 0.5 but lie mostly inside an annotated person's box:
pieces of a person reported as another person). Skips cleanly without the data.

    scripts/run.sh python benchmarks/bench_multiperson.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from common import table

from pose_ros.core.metrics import coco_keypoint_eval, oks
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.results import coco_keypoint_result

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def contained(box_xyxy: np.ndarray, gt_xywh) -> float:
    """Fraction of box (x0, y0, x1, y1) inside the COCO box (x, y, w, h)."""
    x, y, w, h = gt_xywh
    ix = max(0.0, min(box_xyxy[2], x + w) - max(box_xyxy[0], x))
    iy = max(0.0, min(box_xyxy[3], y + h) - max(box_xyxy[1], y))
    area = max((box_xyxy[2] - box_xyxy[0]) * (box_xyxy[3] - box_xyxy[1]), 1e-9)
    return float(ix * iy / area)


def evaluate(gt: dict, images: dict[int, np.ndarray], **cfg) -> tuple[float, list[list], list[dict]]:
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, **cfg))
    results, rows = [], []
    for image_id, rgb in images.items():
        persons = pipe(rgb)
        res = [coco_keypoint_result(p, image_id) for p in persons]
        results += res
        anns = [a for a in gt["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0]
        found, fragments = set(), 0
        for p, r in zip(persons, res, strict=True):
            s = [oks(r["keypoints"], a["keypoints"], a["area"]) for a in anns]
            best = int(np.argmax(s)) if s else -1
            if best >= 0 and s[best] >= 0.5:
                found.add(best)
            elif any(contained(p.bbox, a["bbox"]) > 0.7 for a in gt["annotations"] if a["image_id"] == image_id):
                fragments += 1
        sub = {"images": [i for i in gt["images"] if i["id"] == image_id], "annotations": anns}
        ap = coco_keypoint_eval(sub, res)["AP"] if res else 0.0
        rows.append([image_id, len(anns), len(persons), len(found), fragments, f"{ap:.3f}"])
    pipe.close()
    return coco_keypoint_eval(gt, results)["AP"], rows, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--max-persons", type=int, default=None, help="default: PipelineConfig's")
    args, _ = ap.parse_known_args()
    coco = args.data / "coco"
    if not (coco / "test_coco.json").exists():
        print(f"skipped: no {coco / 'test_coco.json'}")
        return
    gt = json.loads((coco / "test_coco.json").read_text())
    images = {im["id"]: cv2.cvtColor(cv2.imread(str(coco / im["file_name"])), cv2.COLOR_BGR2RGB)
              for im in gt["images"]}
    extra = {} if args.max_persons is None else {"max_persons": args.max_persons}
    d = PipelineConfig()
    summary = []
    for tiles, pyramid in ((0, False), (2, False), (3, False), (3, True), (4, True)):
        ap_all, rows, _ = evaluate(gt, images, detector_tiles=tiles, detector_pyramid=pyramid, **extra)
        name = f"detector_tiles {tiles}" + (", pyramid" if pyramid else "") + (
            " (default)" if (tiles, pyramid) == (d.detector_tiles, d.detector_pyramid) else "")
        print(f"\n{name}: COCO keypoint AP {ap_all:.3f}")
        print(table(rows, ["image", "annotated (kp > 0)", "detections", "found (OKS >= .5)",
                           "fragments", "AP (image)"]))
        summary.append([name, f"{ap_all:.3f}", sum(r[2] for r in rows), sum(r[3] for r in rows),
                        sum(r[4] for r in rows)])
    print(f"\nCOCO keypoint AP on {coco} ({len(gt['annotations'])} annotated persons, "
          f"{sum(a['num_keypoints'] > 0 for a in gt['annotations'])} with keypoints)")
    print(table(summary, ["setting", "AP", "detections", "found", "fragments"]))


if __name__ == "__main__":
    main()
