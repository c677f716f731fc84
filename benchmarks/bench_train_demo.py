"""Training demo, full length (issue 11 item 3): `pose-ros train-demo` for CPM and OpenPose on
synthetic people, a wall-clock budget split 1 : 2 between CPM and OpenPose (default 9
minutes, 2 CPU threads), PCK@0.2 on 64 held-out synthetic images per family, trained vs the same net
untrained. OpenPose also reports the heatmap joint rate and the mean PAF line integral along
the true limbs. Writes loss_curves.png / checkpoints / summary.json to --train-out.

  python benchmarks/bench_train_demo.py [--train-minutes 9] [--train-out DIR]
"""
from __future__ import annotations

import argparse
import tempfile

from common import table

from pose_ros.core.train_demo import FAMILIES, run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-minutes", type=float, default=9.0, help="total budget, both families")
    ap.add_argument("--train-out", help="output folder (default: a temporary one)")
    args, _ = ap.parse_known_args()  # run_all.py passes every benchmark the same argv
    with tempfile.TemporaryDirectory() as tmp:
        res = run_demo(FAMILIES, args.train_minutes, args.train_out or tmp, progress=False)
        rows = []
        for r in res:
            extra = ", ".join(f"{k} {r.untrained[k]:.2f} -> {r.trained[k]:.2f}" for k in r.trained if k != "pck")
            rows.append([r.config.family, r.steps, f"{r.seconds:.0f}", f"{r.losses[0]:.4f}",
                         f"{r.losses[-20:].mean():.4f}", f"{r.pck_untrained:.3f}", f"{r.pck_trained:.3f}",
                         extra or "-"])
        print(table(rows, ["family", "steps", "s", "loss step 1", "loss last 20", "PCK@0.2 untrained",
                           "PCK@0.2 trained", "other"]))


if __name__ == "__main__":
    main()
