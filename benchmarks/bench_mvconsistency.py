"""Multi-view consistency fine-tuning of the lifter, no 3D labels (issue 10 item 4).

Weak start: the lifter trained with 3D labels (`pose-ros train-lifter`'s code, COCO-17 input,
width 256, 600 steps) on a biased camera distribution: cameras 5-10 degrees below the hips only
(the full distribution: -10..40 degrees). Then `pose-ros finetune-lifter`'s code on synthetic camera
pairs of the FULL distribution, using only 2D keypoints, K and extrinsics. MPJPE / PA-MPJPE (mm) on
2000 held-out synthetic people (full distribution; 3D labels only here), before and after:

* reference "triangulated" (the default): scale reference = limb lengths triangulated from the pair;
* reference "predicted": the seed's literal choice, the other view's predicted limb length;
* the shipped checkpoint (pose_ros/core/data/lifter_coco17.npz, trained on the full distribution)
  as the start, to show what the loss does to a lifter that is not weak.

  python benchmarks/bench_mvconsistency.py [--mv-steps 1200]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from common import table

from pose_ros.core.lifter import Lifter, default_model_path
from pose_ros.core.lifter_train import train
from pose_ros.core.mvfinetune import camera_elevations, finetune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mv-steps", type=int, default=1200, help="fine-tuning steps per row")
    args, _ = ap.parse_known_args()  # run_all.py passes every benchmark the same argv
    torch.set_num_threads(1)  # the machine is shared; 2 threads spin
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weak = Path(tmp) / "weak.npz"
        with camera_elevations(-10, -5):
            train(weak, steps=600, seed=0, joints_in="coco_17", width=256, pool=20000, progress=False, val_n=200)
        starts = [("weak (biased cameras)", weak, "triangulated"), ("weak (biased cameras)", weak, "predicted")]
        shipped = default_model_path("coco_17")
        if shipped.is_file():
            starts.append(("shipped lifter_coco17", shipped, "triangulated"))
        for name, path, ref in starts:
            _, rec = finetune(Lifter.load(path), steps=args.mv_steps, val_n=2000, reference=ref, progress=False)
            r = rec["finetune_multiview"]
            rows.append([name, ref, r["steps"], f"{r['seconds']:.0f}", f"{r['before']['mpjpe_mm']:.1f}",
                         f"{r['after']['mpjpe_mm']:.1f}", f"{r['before']['pa_mpjpe_mm']:.1f}",
                         f"{r['after']['pa_mpjpe_mm']:.1f}"])
    print(table(rows, ["start", "scale reference", "steps", "s", "MPJPE before", "MPJPE after",
                       "PA-MPJPE before", "PA-MPJPE after"]))


if __name__ == "__main__":
    main()
