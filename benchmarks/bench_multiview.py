"""Multi-camera fusion (pose_ros.core.multiview, issue 10 item 6): 3 cameras x 4 people.

Synthetic: 3 cameras (1280x960, f = 900 px) on a 4 m circle, 2 m high, looking at the middle;
4 standing people (synthetic3d.standing_body, BlazePose-33, random yaw, >= 0.8 m apart) per
frame; 2D = exact projection + Gaussian noise (sigma px); detection order shuffled per view.
Scenario "outliers": additionally 5 % of the joints of every view are 80 px off.

Rows: MultiViewFuser (association + confidence-weighted DLT + RANSAC over views), the same
without RANSAC, and the peer: plain unweighted cv2.triangulatePoints on the *best* camera pair
(chosen per person with the 3D truth: an upper bound for any two-camera method) given the
true association. Error = per-joint Euclidean error (mm) against the known 3D; ms/frame =
median CPU time (time.process_time: robust to other processes sharing the cores) of one frame
(all 4 people; the fuser includes the association).

    scripts/run.sh python benchmarks/bench_multiview.py [--frames 60]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import transforms3d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table

from pose_ros.core.camera import PinholeCamera
from pose_ros.core.geometry import Rigid
from pose_ros.core.multiview import Detection2D, MultiViewFuser, View
from pose_ros.core.synthetic3d import standing_body

CAM = PinholeCamera(1280, 960, np.array([[900.0, 0, 640], [0, 900, 480], [0, 0, 1]]), np.zeros(0))


def look_at(eye, target=(0.0, 0.0, 1.0)) -> Rigid:
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return Rigid(eye, transforms3d.quaternions.mat2quat(np.column_stack([x, np.cross(z, x), z])))


VIEWS = [View(f"cam{i}", CAM, look_at((4 * np.cos(a), 4 * np.sin(a), 2.0)))
         for i, a in enumerate(np.radians([0.0, 120.0, 240.0]))]


def frame(rng, noise_px: float, outliers: float):
    """-> truth [(33, 3)] x 4, detections per view (shuffled), orders per view."""
    people: list[np.ndarray] = []
    while len(people) < 4:
        xy = rng.uniform(-1.2, 1.2, 2)
        if all(np.linalg.norm(xy - p[0, :2]) > 0.8 for p in people):
            R = transforms3d.axangles.axangle2mat([0, 0, 1], rng.uniform(0, 2 * np.pi))
            people.append(standing_body() @ R.T + (*xy, 0.0))
    dets, orders = [], []
    for v in VIEWS:
        order = rng.permutation(4)
        row = []
        for k in order:
            kp = v.project(people[k]) + rng.normal(0, noise_px, (33, 2))
            bad = rng.random(33) < outliers
            kp[bad] += 80.0 * np.array([np.cos(t := rng.uniform(0, 2 * np.pi)), np.sin(t)])
            row.append(Detection2D(kp, np.ones(33)))
        dets.append(row)
        orders.append(order)
    return people, dets, orders


def cv2_best_pair(people, dets, orders) -> list[np.ndarray]:
    """Unweighted cv2.triangulatePoints per pair of views, true association; per person the pair
    with the smallest true error."""
    Ps = []
    for v in VIEWS:
        inv = v.world_from_camera.inverse()
        Ps.append(v.camera.K @ np.column_stack([inv.R, inv.t]))
    out = []
    for k, truth in enumerate(people):
        best = None
        for a, b in itertools.combinations(range(len(VIEWS)), 2):
            xa = dets[a][int(np.where(orders[a] == k)[0][0])].keypoints
            xb = dets[b][int(np.where(orders[b] == k)[0][0])].keypoints
            h = cv2.triangulatePoints(Ps[a], Ps[b], xa.T, xb.T)
            err = np.linalg.norm((h[:3] / h[3]).T - truth, axis=1)
            if best is None or err.mean() < best.mean():
                best = err
        out.append(best)
    return out


def fused_errors(fuser, people, dets, orders) -> tuple[list[np.ndarray], int]:
    """Per-person joint errors (NaN joints count as missing), number of association swaps."""
    out, swaps = [], 0
    for p in fuser.fuse(VIEWS, dets):
        who = {int(orders[v][d]) for v, d in p.members}
        swaps += len(who) != 1
        out.append(np.linalg.norm(p.positions - people[who.pop()], axis=1))
    return out, swaps


def run(frames: int, noise_px: float, outliers: float, seed: int = 0) -> list[list]:
    rng = np.random.default_rng(seed)
    data = [frame(rng, noise_px, outliers) for _ in range(frames)]
    rows, peer = [], None
    methods = [("MultiViewFuser (RANSAC)", MultiViewFuser()), ("MultiViewFuser (no RANSAC)", MultiViewFuser(ransac=False)),
               ("cv2.triangulatePoints, best pair", None)]
    results = []
    for name, fuser in methods:
        errs, times, swaps, people_found = [], [], 0, 0
        for people, dets, orders in data:
            t0 = time.process_time()
            if fuser is None:
                e = cv2_best_pair(people, dets, orders)
            else:
                e, s = fused_errors(fuser, people, dets, orders)
                swaps += s
            times.append(time.process_time() - t0)
            people_found += len(e)
            errs.extend(e)
        err = np.concatenate(errs) * 1e3
        found = np.isfinite(err)
        results.append((name, float(np.mean(err[found])), float(np.percentile(err[found], 95)),
                        float(np.median(times) * 1e3), swaps, people_found, float(found.mean())))
    peer = results[-1]
    for name, mean, p95, ms, swaps, found, joints in results:
        rows.append([f"sigma {noise_px:g} px" + (f", {outliers:.0%} outliers" if outliers else ""), name,
                     f"{mean:.1f}", f"{p95:.1f}", f"{mean / peer[1]:.2f}", f"{ms:.2f}", f"{ms / peer[3]:.1f}",
                     f"{found}/{4 * frames}", f"{joints:.1%}", swaps])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=60)
    args, _ = ap.parse_known_args()
    MultiViewFuser().fuse(VIEWS, frame(np.random.default_rng(9), 0, 0)[1])  # warm-up (scipy import)
    rows = run(args.frames, 2.0, 0.0) + run(args.frames, 2.0, 0.05, seed=1)
    print(f"\nMulti-camera fusion: 3 cameras x 4 people, {args.frames} frames per scenario "
          "(ratios vs cv2.triangulatePoints on the best pair with the true association)")
    print(table(rows, ["scenario", "method", "mean err mm", "p95 mm", "err / peer", "CPU ms/frame (median)",
                       "time / peer", "people", "joints", "swaps"]))


if __name__ == "__main__":
    main()
