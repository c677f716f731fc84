"""Tracking on the shared two-person video (../shared/data/video/demo_skeleton.mp4, 1920x1080,
28 fps, 72 frames, two people walking towards each other): PosePipeline in tracking mode with
the frame times as stamps. Reports per setting: persons per frame, distinct public ids (2 is
perfect), id jumps (an id whose keypoints moved more than 10 % of the box diagonal per frame
since it was last seen: the id went to another person), distinct crop lineages (what ids would
have been before core/track.py: a new id whenever the crop tracking lost a person), jitter
(median frame-to-frame keypoint acceleration, px/frame^2, smoothing on vs off) and ms/frame.
``refine_passes=0`` shows the crowded profile without re-cropping new detections: a leg crop of
one person survives de-duplication there and is held tentative by Tracker.NESTED_MIN_HITS.
Skips cleanly without the data.

    scripts/run.sh python benchmarks/bench_tracking.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from common import table

from pose_ros.core.pipeline import PipelineConfig, PosePipeline

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def frames(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out, fps


def run(video: list[np.ndarray], fps: float, **cfg) -> list:
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", **cfg))
    hints: list[int] = []
    update = pipe.tracker.update

    def spy(obs, t):
        hints.extend(o.hint for o in obs)
        return update(obs, t)

    pipe.tracker.update = spy
    per_frame, t0 = [], time.perf_counter()
    for n, rgb in enumerate(video):
        per_frame.append([(p.track_id, p.keypoints[:33].copy(), p.bbox.copy()) for p in pipe(rgb, n / fps)])
    ms = (time.perf_counter() - t0) * 1e3 / len(video)
    pipe.close()
    ids = [i for f in per_frame for i, _, _ in f]
    last: dict[int, tuple[int, np.ndarray, float]] = {}  # id -> (frame, keypoints, box diagonal)
    jumps = 0
    for n, f in enumerate(per_frame):
        for i, kp, box in f:
            if i in last:
                m, k, diag = last[i]
                jumps += float(np.mean(np.linalg.norm(kp - k, axis=1))) > 0.1 * diag * (n - m)
            last[i] = (n, kp, float(np.hypot(*(box[2:] - box[:2]))))
    tracks: dict[int, list[np.ndarray]] = {}
    for f in per_frame:
        for i, kp, _ in f:
            tracks.setdefault(i, []).append(kp)
    acc = [np.linalg.norm(np.diff(np.stack(k), 2, axis=0), axis=-1).ravel() for k in tracks.values() if len(k) > 2]
    jitter = float(np.median(np.concatenate(acc))) if acc else float("nan")
    counts = [len(f) for f in per_frame]
    return [cfg_name(cfg), f"{np.mean(counts):.2f} ({min(counts)}-{max(counts)})", len(set(ids)), jumps,
            len(set(hints)), f"{jitter:.2f}", f"{ms:.0f}"]


def cfg_name(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items()) or "defaults"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=SHARED)
    args, _ = ap.parse_known_args()
    path = args.data / "video" / "demo_skeleton.mp4"
    if not path.exists():
        print(f"skipped: no {path}")
        return
    video, fps = frames(path)
    rows = [run(video, fps), run(video, fps, smoothing=False), run(video, fps, refine_passes=0),
            run(video, fps, detector_tiles=0), run(video, fps, detector_tiles=0, detect_every=5)]
    print(f"\nTracking on {path.name} ({len(video)} frames, {fps:.0f} fps, 2 people)")
    print(table(rows, ["setting", "persons/frame (min-max)", "distinct ids", "id jumps",
                       "crop lineages", "jitter px/frame^2", "ms/frame"]))


if __name__ == "__main__":
    main()
