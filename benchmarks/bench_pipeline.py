"""Pipeline benchmark: pose_ros vs MediaPipe's own BlazePose on the same frames, same machine.

  * latency: median per-frame ms over >= 100 frames at 640x480, tracking and static modes,
    for each CPU backend of ours and for `mediapipe.solutions.pose.Pose(model_complexity=1)`;
  * batching: landmark stage for k = 1, 2, 4, 8 persons in one call vs k single calls;
  * parity: mean landmark distance to MediaPipe (landmarks MediaPipe marks visible > 0.5);
  * COCO keypoint AP on ../shared/data/coco (if present), ours and MediaPipe, via pycocotools.

MediaPipe runs in its own venv (~/.cache/pose_ros/bench-mediapipe; created on first use with
pip) because mediapipe 0.10.14 pins protobuf<5. Use --no-mediapipe to skip it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from common import table
from tqdm import tqdm

from pose_ros.core.models import blazepose as bp
from pose_ros.core.models.fetch import cache_root
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.results import coco_keypoint_result
from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17, mapping

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MP_VENV = cache_root() / "bench-mediapipe"


def mediapipe_python() -> Path | None:
    py = MP_VENV / "bin" / "python"
    if not py.exists():
        print("creating the MediaPipe benchmark venv (one-off) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MP_VENV)], check=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "mediapipe==0.10.14",
                            "opencv-python-headless<5"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"MediaPipe venv failed: {r.stderr[-500:]}", file=sys.stderr)
            return None
    return py


def run_mediapipe(frames: np.ndarray, mode: str) -> dict | None:
    py = mediapipe_python()
    if py is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "f.npy", frames)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env["GLOG_minloglevel"] = "2"
        r = subprocess.run([str(py), str(Path(__file__).with_name("mediapipe_runner.py")),
                            str(Path(tmp) / "f.npy"), mode, str(Path(tmp) / "o.json")],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(f"MediaPipe run failed: {r.stderr[-800:]}", file=sys.stderr)
            return None
        return json.loads((Path(tmp) / "o.json").read_text())


def moving_person_frames(n: int) -> np.ndarray:
    """n 640x480 frames: the astronaut photo (a real person) drifting across a grey room."""
    person = cv2.resize(skimage.data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    frames = np.full((n, 480, 640, 3), 90, np.uint8)
    for i in range(n):
        x = int(120 + 80 * np.sin(2 * np.pi * i / n))
        frames[i, 80:480, x:x + 400] = person
    return frames


def time_ours(frames: np.ndarray, cfg: PipelineConfig) -> tuple[float, PosePipeline]:
    pipe = PosePipeline(cfg)
    for f in frames[:5]:  # warm-up, then start from a clean tracking state
        pipe(f)
    pipe.reset()
    ms = []
    for f in frames:
        t = time.perf_counter()
        pipe(f)
        ms.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ms)), pipe


def latency(n_frames: int, use_mp: bool) -> None:
    frames = moving_person_frames(n_frames)
    rows = []
    mp_ms = {}
    if use_mp:
        for mode in ("tracking", "static"):
            res = run_mediapipe(frames, mode)
            if res:
                mp_ms[mode] = float(np.median(res["ms"]))
    for mode in ("tracking", "static"):
        for backend in ("onnxruntime", "torch"):
            for maxp in (1, 4):
                cfg = PipelineConfig(backend=backend, static_image_mode=mode == "static", max_persons=maxp)
                med, _ = time_ours(frames, cfg)
                ratio = f"{med / mp_ms[mode]:.2f}x" if mode in mp_ms else "n/a"
                rows.append([mode, f"pose_ros {backend} (max_persons={maxp})", f"{med:.1f}", ratio])
        if mode in mp_ms:
            rows.append([mode, "MediaPipe 0.10.14 Pose(model_complexity=1)", f"{mp_ms[mode]:.1f}", "1.00x"])
    print(f"\nLatency, {n_frames} frames 640x480, one person, median ms per frame "
          f"(ratio = ours / MediaPipe, lower is better)")
    print(table(rows, ["mode", "pipeline", "median ms", "vs MediaPipe"]))


def batching() -> None:
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True))
    img = cv2.resize(skimage.data.astronaut(), (400, 400))
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[80:480, 120:520] = img
    roi = bp.roi_from_detection(pipe.detect(canvas)[0])
    rows = []
    single = None
    for k in (1, 2, 4, 8):
        rois = [bp.Roi(roi.cx + 2 * i, roi.cy, roi.size, roi.angle) for i in range(k)]
        batched = np.median([_t(lambda r=rois: pipe.landmarks(canvas, r)) for _ in range(15)])
        if k == 1:
            single = batched
        rows.append([k, f"{batched:.1f}", f"{k * single:.1f}", f"{batched / (k * single):.2f}"])
    print("\nBatching: landmark stage (crop + inference + decode) for k persons, onnxruntime CPU")
    print(table(rows, ["persons k", "one batched call ms", "k single calls ms", "ratio"]))


def tiled_photo(k: int, shift: int = 0) -> np.ndarray:
    """k people: the astronaut and its mirror image side by side, rows of two."""
    a = np.roll(skimage.data.astronaut(), shift, axis=1)
    pair = np.concatenate([np.ascontiguousarray(a[:, ::-1]), a], 1)
    return a if k == 1 else np.ascontiguousarray(np.concatenate([pair] * (k // 2), 0))


def scaling(n_frames: int = 60) -> None:
    """Whole pipeline, tracking mode, on tiled photos of k people (detector_tiles=3 so the
    detector can see them all; it runs on the first frame and every 15th)."""
    rows, single = [], None
    for k in (1, 2, 4, 8):
        frames = [tiled_photo(k, (i % 10) - 5) for i in range(n_frames)]
        pipe = PosePipeline(PipelineConfig(backend="onnxruntime", max_persons=8, detector_tiles=3))
        found = len(pipe(frames[0]))
        ms = []
        for f in frames[1:]:
            t = time.perf_counter()
            pipe(f)
            ms.append((time.perf_counter() - t) * 1e3)
        med = float(np.median(ms))
        single = med if k == 1 else single
        rows.append([k, found, f"{med:.1f}", f"{k * single:.1f}", f"{med / (k * single):.2f}"])
    print(f"\nScaling with people in view: tiled photos, tracking mode, onnxruntime CPU, median of "
          f"{n_frames - 1} frames (detector on every 15th)")
    print(table(rows, ["persons k", "found", "pipeline ms", "k x single ms", "ratio"]))


def _t(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def parity_and_ap(use_mp: bool) -> None:
    images: list[tuple[str, np.ndarray, int | None]] = [
        ("astronaut.png", skimage.data.astronaut(), None),
        ("camera.png", np.stack([skimage.data.camera()] * 3, -1), None)]
    gt = None
    coco_dir = SHARED / "coco"
    if (coco_dir / "test_coco.json").exists():
        gt = json.loads((coco_dir / "test_coco.json").read_text())
        for im in gt["images"]:
            bgr = cv2.imread(str(coco_dir / im["file_name"]))
            images.append((im["file_name"], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), im["id"]))
    ours = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8))
    ours_tiled = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8,
                                             detector_tiles=2))
    tiled_coco: list[dict] = []
    mp_res = None
    if use_mp:  # one run per image: MediaPipe sees exactly the image we see
        mp_res = {"landmarks": []}
        for _, im, _ in images:
            r = run_mediapipe(im[None], "static")
            mp_res["landmarks"].append(r["landmarks"][0] if r else None)
    rows, dists, ours_coco, mp_coco = [], [], [], []
    idx = mapping(BLAZEPOSE_33, COCO_17)
    for k, (name, im, image_id) in enumerate(tqdm(images, desc="parity", leave=False)):
        persons = ours(im)
        if image_id is not None:
            ours_coco += [coco_keypoint_result(p, image_id) for p in persons]
            tiled_coco += [coco_keypoint_result(p, image_id) for p in ours_tiled(im)]
        mp_lm = mp_res["landmarks"][k] if mp_res else None
        if mp_lm is not None:
            ref = np.array(mp_lm)
            if image_id is not None:
                kp = ref[idx]
                mp_coco.append({"image_id": image_id, "category_id": 1, "score": float(kp[:, 2].mean()),
                                "keypoints": kp.reshape(-1).tolist()})
        if mp_lm is None or not persons:
            rows.append([name, len(persons), "no" if mp_lm is None else "yes", "-", "-"])
            continue
        vis = ref[:, 2] > 0.5
        best = min(persons, key=lambda p: np.nanmean(np.linalg.norm(p.keypoints - ref[:, :2], axis=1)))
        d = np.linalg.norm(best.keypoints - ref[:, :2], axis=1)[vis]
        dists.append(d)
        rows.append([name, len(persons), "yes", f"{d.mean():.2f}", f"{np.median(d):.2f}"])
    print("\nParity with MediaPipe's own output (static mode; landmarks it marks visible > 0.5)")
    print(table(rows, ["image", "persons (ours)", "MediaPipe found", "mean px", "median px"]))
    if dists:
        all_d = np.concatenate(dists)
        print(f"overall: mean {all_d.mean():.2f} px, median {np.median(all_d):.2f} px over "
              f"{len(all_d)} landmarks in {len(dists)} images")
    if gt is not None:
        ap_rows = [["pose_ros (default: whole-image detector)", f"{coco_ap(gt, ours_coco):.3f}", len(ours_coco)],
                   ["pose_ros detector_tiles=2", f"{coco_ap(gt, tiled_coco):.3f}", len(tiled_coco)]]
        if mp_res:
            ap_rows.append(["MediaPipe (single person)", f"{coco_ap(gt, mp_coco):.3f}", len(mp_coco)])
        print(f"\nCOCO keypoint AP (OKS, pycocotools) on {coco_dir} "
              f"({len(gt['annotations'])} annotated persons)")
        print(table(ap_rows, ["method", "AP@[.5:.95]", "detections"]))


def coco_ap(gt: dict, results: list[dict]) -> float:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()), tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(gt, f)
        f.flush()
        coco = COCO(f.name)
        ev = COCOeval(coco, coco.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--no-mediapipe", action="store_true")
    args = ap.parse_args()
    use_mp = not args.no_mediapipe
    latency(args.frames, use_mp)
    batching()
    scaling()
    parity_and_ap(use_mp)


if __name__ == "__main__":
    main()
