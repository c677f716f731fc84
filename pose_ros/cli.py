"""`pose-ros` command line: the ROS-free entry point to pose_ros.core.

  pose-ros fetch-models            download + cache the default BlazePose models
  pose-ros infer IMAGE|DIR|VIDEO   annotated images / video, COCO results, per-frame JSON
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
    p.add_argument("--detector-tiles", type=int, default=0,
                   help="also detect on an NxN grid of overlapping tiles (2-4): small / many people")
    p.add_argument("--detector-model", help="local .tflite/.onnx person detector (BlazePose I/O)")
    p.add_argument("--landmark-model", help="local .tflite/.onnx landmark model (BlazePose I/O)")
    p.add_argument("--cache-dir", help="model cache root (default ~/.cache/pose_ros or $POSE_ROS_CACHE)")


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
    return parser


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

    from pose_ros.core.draw import draw_persons
    from pose_ros.core.pipeline import PipelineConfig, PosePipeline
    from pose_ros.core.results import coco_keypoint_result, person_json

    files = _expand(args.inputs)
    cfg = PipelineConfig(max_persons=args.max_persons, min_detection_score=args.min_detection_score,
                         static_image_mode=args.static, detect_every=args.detect_every,
                         detector_tiles=args.detector_tiles,
                         backend=args.backend, device=args.device,
                         detector_model=args.detector_model, landmark_model=args.landmark_model,
                         cache_dir=args.cache_dir)
    pipe = PosePipeline(cfg, progress=not args.quiet)
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
        writer = None
        for idx, rgb, fps in _frames(path):
            persons = pipe(rgb)
            if args.coco:
                coco += [coco_keypoint_result(p, _image_id(path, n, by_name)) for p in persons]
            if args.json:
                frames_json.append({"file": str(path), "frame": idx,
                                    "width": rgb.shape[1], "height": rgb.shape[0],
                                    "timings_ms": {k: round(v, 2) for k, v in pipe.timings.items()},
                                    "persons": [person_json(p) for p in persons]})
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
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"pose-ros: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
