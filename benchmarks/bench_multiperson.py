"""Multi-person detection on ../shared/data/coco: COCO keypoint AP (core.metrics.coco_keypoint_eval,
identical to pycocotools) in static mode for detector_tiles 0 (pose_node) / 2 / 3 / 3 + pyramid
without refinement (before) / 3 + pyramid (the PipelineConfig default) / 4 + pyramid / the
default with max_persons 4, with a per-image breakdown: detections, people found (a ground
truth matched one-to-one at OKS >= 0.5) and their OKS, poor detections (a real person nobody
found, with bad keypoints: OKS 0.1-0.5) and fragments (matching nobody but lying mostly inside
an annotated person's box: pieces of a person reported as another person). Skips cleanly
without the data.

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
    """Static-mode COCO AP of one setting and per image: annotated people (kp > 0), detections,
    people found (one-to-one, OKS >= 0.5) with their OKS, poor (a detection whose best OKS,
    0.1-0.5, is with a person nobody found: a real person with bad keypoints), fragments (no
    such person, box > 70 % inside an annotated person's) and the image's AP."""
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, **cfg))
    results, rows = [], []
    for image_id, rgb in images.items():
        persons = pipe(rgb)
        res = [coco_keypoint_result(p, image_id) for p in persons]
        results += res
        anns = [a for a in gt["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0]
        sim = np.array([[oks(r["keypoints"], a["keypoints"], a["area"]) for a in anns] for r in res]).reshape(len(res), len(anns))
        found: dict[int, float] = {}
        for d in np.argsort([-r["score"] for r in res]):  # greedy by score, as COCOeval
            free = [g for g in range(len(anns)) if g not in found and sim[d, g] >= 0.5]
            if free:
                g = max(free, key=lambda g: sim[d, g])
                found[g] = float(sim[d, g])
        matched = {d for d in range(len(res)) if any(sim[d, g] == v for g, v in found.items())}
        poor = fragments = 0
        for d, p in enumerate(persons):
            if d in matched:
                continue
            if any(g not in found and sim[d, g] >= 0.1 for g in range(len(anns))):
                poor += 1
            elif any(contained(p.bbox, a["bbox"]) > 0.7 for a in gt["annotations"] if a["image_id"] == image_id):
                fragments += 1
        sub = {"images": [i for i in gt["images"] if i["id"] == image_id], "annotations": anns}
        ap = coco_keypoint_eval(sub, res)["AP"] if res else 0.0
        rows.append([image_id, len(anns), len(persons), len(found),
                     " ".join(f"{v:.2f}" for v in sorted(found.values(), reverse=True)), poor, fragments,
                     f"{ap:.3f}"])
    pipe.close()
    return coco_keypoint_eval(gt, results)["AP"], rows, results


SETTINGS = [  # (name, PipelineConfig overrides)
    ("detector_tiles 0 (whole image only)", {"detector_tiles": 0}),
    ("detector_tiles 2", {"detector_tiles": 2, "detector_pyramid": False}),
    ("detector_tiles 3", {"detector_tiles": 3, "detector_pyramid": False}),
    ("3 + pyramid, refine_passes 0 (before)", {"detector_tiles": 3, "detector_pyramid": True, "refine_passes": 0}),
    ("3 + pyramid (default)", {}),
    ("4 + pyramid", {"detector_tiles": 4, "detector_pyramid": True}),
    ("default, max_persons 4 (before)", {"max_persons": 4}),
]


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
    print(f"PipelineConfig defaults: detector_tiles {d.detector_tiles}, pyramid {d.detector_pyramid}, "
          f"refine_passes {d.refine_passes}, max_persons {d.max_persons}")
    summary = []
    for name, cfg in SETTINGS:
        ap_all, rows, _ = evaluate(gt, images, **{**cfg, **extra})
        print(f"\n{name}: COCO keypoint AP {ap_all:.3f}")
        print(table(rows, ["image", "annotated (kp > 0)", "detections", "found (OKS >= .5)",
                           "OKS of found", "poor", "fragments", "AP (image)"]))
        summary.append([name, f"{ap_all:.3f}", sum(r[2] for r in rows), sum(r[3] for r in rows),
                        sum(r[5] for r in rows), sum(r[6] for r in rows)])
    print(f"\nCOCO keypoint AP on {coco} ({len(gt['annotations'])} annotated persons, "
          f"{sum(a['num_keypoints'] > 0 for a in gt['annotations'])} with keypoints)")
    print(table(summary, ["setting", "AP", "detections", "found", "poor", "fragments"]))


if __name__ == "__main__":
    main()
