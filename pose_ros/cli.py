"""`pose-ros` command line: the ROS-free entry point to pose_ros.core.

  pose-ros fetch-models            download + cache the default BlazePose models
  pose-ros infer IMAGE|DIR|VIDEO   annotated images / video, COCO results, per-frame JSON
                                   (camera-frame 3D per joint: --camera-info / --fx ...)
  pose-ros eval3d DIR              3D errors per lifting mode on 3DHP-format ground truth
  pose-ros eval --coco-dir DIR --annotations FILE [--model-spec YAML]
                                   COCO keypoint AP / AR and PCK@0.2 of any model
  pose-ros train-demo [--family cpm|openpose|both] [--minutes M] [--out DIR] [--coco-dir DIR]
                                   CPM / OpenPose learn on synthetic people (needs torch)
  pose-ros train-lifter [--out FILE.npz] [--steps N] [--seed S] [--joints-in blazepose_33|coco_17]
                                   2D-to-3D lifter on synthetic people (needs torch)
  pose-ros finetune-lifter CKPT --out FILE.npz [--steps N] [--views V]
                                   multi-view consistency fine-tuning, no 3D labels (needs torch)
  pose-ros version
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from pose_ros.core.engines import BACKENDS, DEVICES

    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--max-persons", type=int, default=4)
    p.add_argument("--min-detection-score", type=float, default=0.5)
    p.add_argument("--static", action="store_true",
                   help="static-image mode: run the detector on every frame, no tracking")
    p.add_argument("--detect-every", type=int, default=15,
                   help="while tracking, re-run the detector every N frames for newcomers")
    p.add_argument("--detector-tiles", type=int, default=3,  # = PipelineConfig's default
                   help="also detect on grids of overlapping tiles 2x2 .. NxN (2-4; 0: whole image "
                        "only): small / many people (default 3)")
    p.add_argument("--refine-passes", type=int, default=2,  # = PipelineConfig's default
                   help="re-crop each newly detected person from its own landmarks N times and keep "
                        "the most self-consistent skeleton (0: MediaPipe's single pass; default 2)")
    p.add_argument("--detector-model", help="local .tflite/.onnx person detector (BlazePose I/O)")
    p.add_argument("--landmark-model", help="local .tflite/.onnx landmark model (BlazePose I/O)")
    p.add_argument("--cache-dir", help="model cache root (default ~/.cache/pose_ros or $POSE_ROS_CACHE)")


def _add_camera_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("camera intrinsics (3D output); default: 60 deg horizontal FOV, centred")
    g.add_argument("--camera-info", metavar="YAML", help="ROS camera_calibration YAML (image_width, "
                   "camera_matrix, distortion_model, distortion_coefficients, projection_matrix)")
    g.add_argument("--rectified", action="store_true",
                   help="the images are rectified: use the YAML's projection_matrix, no distortion")
    g.add_argument("--fx", type=float, help="focal length x, px")
    g.add_argument("--fy", type=float, help="focal length y, px (default: fx)")
    g.add_argument("--cx", type=float, help="principal point x, px (default: image centre)")
    g.add_argument("--cy", type=float, help="principal point y, px (default: image centre)")


def _add_3d_args(p: argparse.ArgumentParser) -> None:
    from pose_ros.core.compose3d import LIFTING_MODES, ORIENTATIONS

    _add_camera_args(p)
    g = p.add_argument_group("3D composition (camera-frame joints in --json)")
    g.add_argument("--lifting", default="auto", choices=LIFTING_MODES,
                   help="auto: ground_plane with --camera-to-floor, else world_landmarks")
    g.add_argument("--orientation", default="pnp", choices=ORIENTATIONS,
                   help="world-landmark rotation from PnP, or the model's corrected by the viewing ray")
    g.add_argument("--lifter-model", metavar="NPZ", default="", help="--lifting lifter: checkpoint from "
                   "`pose-ros train-lifter` (default: the shipped one)")
    g.add_argument("--camera-to-floor", metavar="X,Y,Z,QW,QX,QY,QZ",
                   help="pose of the camera's optical frame in a frame whose z=0 plane is the floor "
                   "(z up), metres + quaternion: enables the ground plane")


def _camera_for(args, width: int, height: int):
    """(PinholeCamera, description) for one image size from --camera-info / --fx.. / default."""
    from pose_ros.core.camera import default_camera
    from pose_ros.core.camera_yaml import camera_from_focal, camera_from_yaml

    if args.camera_info:
        cam = camera_from_yaml(args.camera_info, args.rectified)
        if (cam.width, cam.height) != (width, height):
            raise ValueError(f"--camera-info {args.camera_info} is for {cam.width}x{cam.height} images, "
                             f"this one is {width}x{height}: use the calibration of this resolution")
        return cam, "camera_info"
    if args.fx is not None:
        return camera_from_focal(width, height, args.fx, args.fy, args.cx, args.cy), "fx/fy/cx/cy"
    if any(v is not None for v in (args.fy, args.cx, args.cy)):
        raise ValueError("--fy/--cx/--cy need --fx")
    return default_camera(width, height), "assumed (60 deg horizontal FOV)"


def _parse_floor(text: str | None):
    import numpy as np

    from pose_ros.core.geometry import Rigid

    if not text:
        return None
    try:
        v = np.array([float(x) for x in text.replace(",", " ").split()])
    except ValueError:
        v = np.zeros(0)
    if v.size != 7 or not np.isfinite(v).all() or np.linalg.norm(v[3:]) < 1e-9:
        raise ValueError(f"--camera-to-floor needs 7 numbers x,y,z,qw,qx,qy,qz (quaternion not zero), "
                         f"got {text!r}")
    return Rigid(v[:3], v[3:] / np.linalg.norm(v[3:]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-ros", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the package version")
    f = sub.add_parser("fetch-models", help="download and cache the default BlazePose models")
    f.add_argument("--cache-dir")
    f.add_argument("--wheel", help="use an already downloaded mediapipe-0.10.14 wheel")
    f.add_argument("--quiet", action="store_true")
    i = sub.add_parser("infer", help="run pose estimation on images, folders or videos")
    i.add_argument("inputs", nargs="+", help="image files, folders of images, or video files")
    i.add_argument("--out", default="pose_out", help="folder for annotated images / videos")
    i.add_argument("--no-draw", action="store_true", help="do not write annotated media")
    i.add_argument("--coco", metavar="FILE",
                   help="write COCO keypoint results (BlazePose-33 mapped to COCO-17)")
    i.add_argument("--coco-annotations", metavar="FILE",
                   help="COCO ground-truth json: take image ids from it by file name")
    i.add_argument("--json", metavar="FILE", help="per-frame results: all 33 points + world landmarks")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_args(i)
    i.add_argument("--model-spec", metavar="YAML", help="your own ONNX model (config/models/*.yaml); "
                   "default BlazePose")
    _add_3d_args(i)
    g = i.add_argument_group("SMPL (fitted to the camera-frame 3D joints)")
    g.add_argument("--smpl", action="store_true", help="fit a body per person: parameters in --json "
                   "(`smpl`), one mesh per person in --out (<name>_<frame>_id<track>_smpl.obj)")
    g.add_argument("--smpl-model", metavar="PATH", default="", help="official SMPL .pkl / .npz or its "
                   "folder (default: the built-in body, which is NOT SMPL)")
    g.add_argument("--smpl-gender", default="neutral", choices=("neutral", "male", "female"))
    g.add_argument("--mesh-format", default="obj", choices=("obj", "ply"))
    e = sub.add_parser("eval3d", help="3D errors (absolute, MPJPE, PA-MPJPE, PCK3D) per lifting mode on "
                       "a folder with 3D ground truth in the MPI-INF-3DHP sample format")
    e.add_argument("folder", help="images + *.npz (imgname, S) [+ cameras*.pkl]")
    e.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--lifter-model", metavar="NPZ", default="", help="lifter rows: checkpoint from "
                   "`pose-ros train-lifter` (default: the shipped one)")
    _add_camera_args(e)
    _add_model_args(e)
    v = sub.add_parser("eval", help="COCO keypoint AP / AR and PCK@0.2 of BlazePose or a model spec "
                       "on a COCO-format folder")
    v.add_argument("--coco-dir", required=True, help="folder with the images (file_name entries)")
    v.add_argument("--annotations", required=True, metavar="FILE", help="COCO keypoint json")
    v.add_argument("--model-spec", metavar="YAML", help="your own ONNX model; default BlazePose")
    v.add_argument("--limit", type=int, help="only the first N images (by id)")
    v.add_argument("--results", metavar="FILE", help="also write the COCO results json")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_args(v)
    t = sub.add_parser("train-demo", help="train CPM / OpenPose on synthetic people (or a COCO "
                       "folder) on the CPU: loss curves, PCK@0.2 vs untrained (needs torch)")
    t.add_argument("--family", default="both", choices=("cpm", "openpose", "both"))
    t.add_argument("--minutes", type=float, help="wall-clock budget, split between the families")
    t.add_argument("--steps", type=int, help="steps per family (default 600, or unlimited with --minutes)")
    t.add_argument("--out", default="train_demo", help="folder for loss_curves.png, checkpoints, summary")
    t.add_argument("--coco-dir", help="train on a COCO folder (images + person_keypoints json)")
    t.add_argument("--coco-ann", metavar="FILE", help="the annotation json, if not found in --coco-dir")
    t.add_argument("--onnx", action="store_true", help="also export each net's last stage to ONNX")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    lt = sub.add_parser("train-lifter", help="train the 2D-to-3D lifter on synthetic people (needs torch)")
    lt.add_argument("--out", default="lifter.npz", help="checkpoint (.npz; the record goes to OUT.json)")
    lt.add_argument("--steps", type=int, default=16000, help="optimiser steps (batch 256)")
    lt.add_argument("--seed", type=int, default=0, help="training seed (validation uses seed + 1000)")
    lt.add_argument("--joints-in", default="blazepose_33", choices=("blazepose_33", "coco_17"))
    lt.add_argument("--width", type=int, default=512, help="hidden width")
    lt.add_argument("--quiet", action="store_true", help="no progress bar")
    # issue 10 item 4 (core/mvfinetune.py): multi-view consistency fine-tuning, no 3D labels
    from pose_ros.core.mvfinetune import add_arguments as _finetune_arguments
    _finetune_arguments(sub.add_parser("finetune-lifter", help="fine-tune a lifter with the multi-view consistency "
                                       "loss on synthetic camera pairs, no 3D labels (needs torch)"))
    return parser


def cmd_eval(args) -> int:
    from pose_ros.core.eval2d import evaluate_coco, format_report
    from pose_ros.core.pipeline import PipelineConfig
    from pose_ros.core.spec_pipeline import make_pipeline

    cfg = PipelineConfig(max_persons=args.max_persons, min_detection_score=args.min_detection_score,
                         static_image_mode=True, detector_tiles=args.detector_tiles, refine_passes=args.refine_passes,
                         backend=args.backend, device=args.device, detector_model=args.detector_model,
                         landmark_model=args.landmark_model, cache_dir=args.cache_dir,
                         model_spec=args.model_spec)
    pipe = make_pipeline(cfg, progress=not args.quiet)
    print(f"pose-ros: backend {args.backend}, device {args.device} -> {pipe.backend_summary}",
          file=sys.stderr)
    stats, results = evaluate_coco(pipe, args.coco_dir, args.annotations, not args.quiet, args.limit)
    if args.results:
        Path(args.results).write_text(json.dumps(results))
    print(format_report(stats))
    return 0


def _expand(inputs: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"input {item!r} does not exist")
    if not out:
        raise FileNotFoundError(f"no images or videos found in {inputs}")
    return out


def _frames(path: Path):
    """Yield (frame index, RGB uint8 image, fps or None) for an image or a video."""
    import cv2

    if path.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path}")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        idx = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield idx, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), fps
            idx += 1
        cap.release()
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        yield 0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None


def _frame_count(path: Path) -> int:
    import cv2

    if path.suffix.lower() in VIDEO_SUFFIXES:
        return int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
    return 1


def _image_id(path: Path, index: int, by_name: dict[str, int]) -> int:
    if path.name in by_name:
        return by_name[path.name]
    return int(path.stem) if path.stem.isdigit() else index


def cmd_infer(args) -> int:
    import cv2
    from tqdm import tqdm

    from pose_ros.core.compose3d import Composer3D
    from pose_ros.core.draw import draw_persons
    from pose_ros.core.pipeline import PipelineConfig
    from pose_ros.core.results import coco_keypoint_result, person_json
    from pose_ros.core.spec_pipeline import make_pipeline

    files = _expand(args.inputs)
    composer = Composer3D(args.lifting, orientation=args.orientation, lifter_model=args.lifter_model)
    floor = _parse_floor(args.camera_to_floor)
    smpl = None
    if args.smpl:
        from pose_ros.core.smpl_track import SmplExporter

        smpl = SmplExporter(args.smpl_model, args.smpl_gender, args.out, args.mesh_format)
    cfg = PipelineConfig(max_persons=args.max_persons, min_detection_score=args.min_detection_score,
                         static_image_mode=args.static, detect_every=args.detect_every,
                         detector_tiles=args.detector_tiles, refine_passes=args.refine_passes,
                         backend=args.backend, device=args.device,
                         detector_model=args.detector_model, landmark_model=args.landmark_model,
                         cache_dir=args.cache_dir, model_spec=args.model_spec)
    pipe = make_pipeline(cfg, progress=not args.quiet)  # BlazePose or --model-spec
    print(f"pose-ros: backend {args.backend}, device {args.device} -> {pipe.backend_summary}",
          file=sys.stderr)
    by_name: dict[str, int] = {}
    if args.coco_annotations:
        gt = json.loads(Path(args.coco_annotations).read_text())
        by_name = {im["file_name"]: im["id"] for im in gt["images"]}
    out_dir = Path(args.out)
    if not args.no_draw:
        out_dir.mkdir(parents=True, exist_ok=True)
    coco, frames_json = [], []
    total = sum(_frame_count(f) for f in files)
    bar = tqdm(total=total, unit="frame", disable=args.quiet, desc="pose")
    for n, path in enumerate(files):
        is_video = path.suffix.lower() in VIDEO_SUFFIXES
        pipe.reset()  # tracks never carry over between files
        if smpl is not None:
            smpl.reset()
        writer = None
        for idx, rgb, fps in _frames(path):
            persons = pipe(rgb)
            if args.coco:
                coco += [coco_keypoint_result(p, _image_id(path, n, by_name)) for p in persons]
            if args.json or smpl is not None:
                camera, cam_src = _camera_for(args, rgb.shape[1], rgb.shape[0])
                bodies = composer(persons, camera, None, floor)
                fits = (smpl.export(path.stem, idx, persons, [b.positions for b in bodies])
                        if smpl is not None else [None] * len(persons))
            if args.json:
                frames_json.append({"file": str(path), "frame": idx,
                                    "width": rgb.shape[1], "height": rgb.shape[0],
                                    "timings_ms": {k: round(v, 2) for k, v in pipe.timings.items()},
                                    "camera": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx,
                                               "cy": camera.cy, "source": cam_src},
                                    "persons": [{**person_json(p), "camera_3d": b.to_json(),
                                                 **({"smpl": f} if smpl is not None else {})}
                                                for p, b, f in zip(persons, bodies, fits, strict=True)]})
            if not args.no_draw:
                vis = cv2.cvtColor(draw_persons(rgb, persons), cv2.COLOR_RGB2BGR)
                if is_video:
                    if writer is None:
                        dst = out_dir / f"{path.stem}_pose.mp4"
                        writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (vis.shape[1], vis.shape[0]))
                    writer.write(vis)
                else:
                    cv2.imwrite(str(out_dir / f"{path.stem}_pose.png"), vis)
            bar.update(1)
            bar.set_postfix(persons=len(persons), ms=f"{pipe.timings['total_ms']:.0f}")
        if writer is not None:
            writer.release()
    bar.close()
    if args.coco:
        Path(args.coco).write_text(json.dumps(coco))
        print(f"pose-ros: {len(coco)} COCO results -> {args.coco}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(frames_json))
        print(f"pose-ros: {len(frames_json)} frames -> {args.json}", file=sys.stderr)
    if not args.no_draw:
        print(f"pose-ros: annotated output in {out_dir}/", file=sys.stderr)
    return 0


def cmd_eval3d(args) -> int:
    import cv2
    from tqdm import tqdm

    from pose_ros.core.eval3d import evaluate_folder, format_table, load_folder
    from pose_ros.core.pipeline import PipelineConfig, PosePipeline

    camera = None
    if args.camera_info or args.fx is not None:
        first = next(iter(sorted(Path(args.folder).glob("*.jpg")) + sorted(Path(args.folder).glob("*.png"))), None)
        im = cv2.imread(str(first)) if first else None
        if im is None:
            raise FileNotFoundError(f"no readable .jpg/.png image in {args.folder}")
        camera = _camera_for(args, im.shape[1], im.shape[0])[0]
    samples = load_folder(args.folder, camera)
    cfg = PipelineConfig(max_persons=args.max_persons, min_detection_score=args.min_detection_score,
                         static_image_mode=True, detector_tiles=args.detector_tiles, refine_passes=args.refine_passes,
                         backend=args.backend, device=args.device, detector_model=args.detector_model,
                         landmark_model=args.landmark_model, cache_dir=args.cache_dir)
    pipe = PosePipeline(cfg, progress=not args.quiet)
    persons = []
    for s in tqdm(samples, unit="frame", disable=args.quiet, desc="pose"):
        bgr = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        persons.append(pipe(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    if any(s.camera is None for s in samples):
        raise ValueError(f"{args.folder} has no cameras*.pkl for some frames: give --camera-info or --fx")
    from pose_ros.core.eval3d import MODES

    modes = [(label, {**kw, "lifter_model": args.lifter_model} if kw["mode"] == "lifter" else kw)
             for label, kw in MODES]
    results = evaluate_folder(samples, persons, modes)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "version":
            print("pose_ros 0.1.0")
        elif args.command == "fetch-models":
            from pose_ros.core.models.fetch import fetch_models

            for name, path in fetch_models(args.cache_dir, args.wheel, args.quiet).items():
                print(f"{name}: {path}")
        elif args.command == "infer":
            return cmd_infer(args)
        elif args.command == "eval3d":
            return cmd_eval3d(args)
        elif args.command == "eval":
            return cmd_eval(args)
        elif args.command == "train-lifter":
            from pose_ros.core.lifter_train import command_line, train

            train(args.out, args.steps, args.seed, args.joints_in, width=args.width, progress=not args.quiet,
                  command=command_line(argv), log=lambda m: print(f"pose-ros: {m}", file=sys.stderr))
        elif args.command == "finetune-lifter":
            from pose_ros.core.mvfinetune import run_cli

            return run_cli(args)
        elif args.command == "train-demo":
            from pose_ros.core.train_demo import FAMILIES, run_demo

            run_demo(FAMILIES if args.family == "both" else (args.family,), args.minutes, args.out,
                     args.coco_dir, args.coco_ann, args.onnx, not args.quiet, args.steps)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"pose-ros: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
