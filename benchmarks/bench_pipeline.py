"""Pipeline benchmark: pose_ros vs MediaPipe's own BlazePose on the same frames, same machine.

  * latency: median per-frame ms over >= 100 frames at 640x480, tracking and static modes,
    for each CPU backend of ours and for `mediapipe.solutions.pose.Pose(model_complexity=1)`,
    on a quiet CPU and again with one core busy (another process in a busy loop), including
    onnxruntime with its default spinning thread pool for comparison;
  * batching: landmark stage for k = 1, 2, 4, 8 persons in one call vs k single calls;
  * parity: mean landmark distance to MediaPipe (landmarks MediaPipe marks visible > 0.5);
  * COCO keypoint AP on ../shared/data/coco (if present), ours and MediaPipe, via pycocotools.

MediaPipe runs in its own venv (~/.cache/pose_ros/bench-mediapipe; created on first use with
pip) because mediapipe 0.10.14 pins protobuf<5. Use --no-mediapipe to skip it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from common import busy_core, mediapipe_env, mediapipe_python, table
from tqdm import tqdm

from pose_ros.core.backends import BackendUnavailableError
from pose_ros.core.engines import ort_session_options
from pose_ros.core.models import blazepose as bp
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.results import coco_keypoint_result
from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17, mapping

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
QUIET_TARGET, BUSY_TARGET = 0.5, 0.7  # x MediaPipe, tracking, one person (issue 8, item 12)


def run_mediapipe(frames: np.ndarray, mode: str) -> dict | None:
    py = mediapipe_python()
    if py is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "f.npy", frames)
        env = mediapipe_env()
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


# (label, PipelineConfig backend, onnxruntime thread pool spinning)
VARIANTS = [
    ("auto", "auto", False),
    ("onnxruntime", "onnxruntime", False),
    ("onnxruntime, spinning pool (onnxruntime's default; before)", "onnxruntime", True),
    ("openvino", "openvino", False),
    ("openvino_bf16", "openvino_bf16", False),
    ("torch", "torch", False),
]


def node_detector_defaults() -> dict:
    """pose_node's detection defaults (its parameter catalogue), which the latency tables
    measure (PipelineConfig has the same defaults; test_tile_scan.py checks them)."""
    from pose_ros.ros.pose_node import PARAMS

    return {p.name: p.default for p in PARAMS
            if p.name in ("detector_tiles", "detector_pyramid", "tile_scan_period", "max_persons")}


def make_pipeline(backend: str, spinning: bool, **cfg) -> PosePipeline:
    pipe = PosePipeline(PipelineConfig(backend=backend, **{**node_detector_defaults(), **cfg}))
    if spinning:  # the same ONNX files, sessions with onnxruntime's spinning thread pool
        import onnxruntime as ort

        for eng in (pipe.detector, pipe.landmarker):
            eng.session = ort.InferenceSession(eng.session._model_path, ort_session_options(spinning=True),
                                               providers=["CPUExecutionProvider"])
    return pipe


def time_ours(frames: np.ndarray, pipe: PosePipeline, budget_s: float) -> list[float]:
    """ms per frame, from a clean tracking state, stopping early after ``budget_s`` seconds
    (so a slow variant cannot take minutes)."""
    pipe.reset()
    ms: list[float] = []
    end = time.monotonic() + budget_s
    for f in frames:
        t = time.perf_counter()
        pipe(f)
        ms.append((time.perf_counter() - t) * 1e3)
        if time.monotonic() > end:
            break
    return ms


def latency_rows(frames: np.ndarray, mode: str, use_mp: bool, rounds: int, variants=VARIANTS) -> list[list]:
    """One row per variant (+ MediaPipe) for one mode. A shared machine's load drifts, so
    every variant and MediaPipe run once per round, in turn, and the medians pool all rounds."""
    pipes, rows = {}, []
    for label, backend, spinning in variants:
        try:
            pipe = make_pipeline(backend, spinning, static_image_mode=mode == "static")
        except (BackendUnavailableError, ImportError, ValueError) as exc:
            rows.append([mode, f"pose_ros {label}", "n/a", str(exc).split(";")[0][:60]])
            continue
        for f in frames[:5]:  # warm-up
            pipe(f)
        pipes[label if backend != "auto" else f"auto -> {pipe.backend}"] = pipe
    ms: dict[str, list[float]] = {name: [] for name in pipes}
    mp: list[float] = []
    for _ in range(rounds):
        if use_mp:
            res = run_mediapipe(frames, mode)
            mp += res["ms"][5:] if res else []
        for name, pipe in pipes.items():
            ms[name] += time_ours(frames, pipe, budget_s=6.0)
    mp_ms = float(np.median(mp)) if mp else None
    for name, pipe in pipes.items():
        med = float(np.median(ms[name]))
        rows.append([mode, f"pose_ros {name}", f"{med:.1f}", f"{med / mp_ms:.2f}x" if mp_ms else "n/a"])
        pipe.close()
    if mp_ms:
        rows.append([mode, "MediaPipe 0.10.14 Pose(model_complexity=1)", f"{mp_ms:.1f}", "1.00x"])
    return rows


def latency(n_frames: int, use_mp: bool, rounds: int) -> None:
    """Quiet CPU (tracking and static) and one core busy (tracking); ours and MediaPipe are
    measured in the same conditions, in turn."""
    frames = moving_person_frames(n_frames)
    defaults = ", ".join(f"{k}={v}" for k, v in node_detector_defaults().items())
    head = ["mode", f"pipeline (pose_node defaults: {defaults})", "median ms", "vs MediaPipe"]
    rows = (latency_rows(frames, "tracking", use_mp, rounds)
            + latency_rows(frames, "static", use_mp, rounds, VARIANTS[:2]))
    print(f"\nLatency, no extra load: {n_frames} frames 640x480, one person, median ms per frame over "
          f"{rounds} rounds (ratio = ours / MediaPipe, lower is better; target tracking <= {QUIET_TARGET}x)")
    print(table(rows, head))
    with busy_core():
        rows = latency_rows(frames, "tracking", use_mp, rounds)
    print(f"\nLatency, one core busy (another process in a busy loop): {n_frames} frames 640x480, "
          f"one person, tracking, {rounds} rounds (target <= {BUSY_TARGET}x)")
    print(table(rows, head))


def batching() -> None:
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, detector_tiles=0))
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
    ours = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8,
                                       detector_tiles=0))
    ours_tiled = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8))
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
        ap_rows = [["pose_ros node default (whole-image detector)", f"{coco_ap(gt, ours_coco):.3f}", len(ours_coco)],
                   ["pose_ros detector_tiles=3 + pyramid (CLI default)", f"{coco_ap(gt, tiled_coco):.3f}", len(tiled_coco)]]
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
    ap.add_argument("--rounds", type=int, default=3, help="latency: runs of each variant, in turn")
    ap.add_argument("--parts", default="latency,batching,scaling,parity",
                    help="comma-separated subset of latency,batching,scaling,parity")
    args, _ = ap.parse_known_args()
    use_mp = not args.no_mediapipe
    parts = {"latency": lambda: latency(args.frames, use_mp, args.rounds), "batching": batching, "scaling": scaling,
             "parity": lambda: parity_and_ap(use_mp)}
    for name in args.parts.split(","):
        parts[name]()


if __name__ == "__main__":
    main()
