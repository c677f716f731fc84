"""image -> persons: the multi-person top-down BlazePose pipeline shared by the CLI and the node.

Per frame (RGB uint8 H x W x 3 in, list of :class:`Person` out):
  1. Detector (only when needed): letterboxed 224x224 input, anchors + weighted NMS, one
     rotated ROI per person (up to ``max_persons``); with ``detector_tiles`` also overlapping
     tile grids in the same batch (small / many people), in tracking mode at most once per
     ``tile_scan_period`` seconds and at once after a track was lost.
  2. Landmarks: one warpAffine crop per ROI, *all persons in one batched call*, mapped back
     to image pixels; world landmarks in metres. Newly detected people are re-cropped from
     their own landmarks ``refine_passes`` times (:mod:`pose_ros.core.refine`).
  3. Tracking (``static_image_mode=False``): each person's next ROI comes from its own
     auxiliary landmarks, as in MediaPipe; the detector runs again only when a track is lost,
     when nobody is tracked, or every ``detect_every`` frames to pick up newcomers.
  4. Identities and smoothing: candidates are merged by :mod:`pose_ros.core.dedupe`; the
     public ids come from :class:`pose_ros.core.track.Tracker` (assignment, birth / death,
     re-identification, resets on time jumps) and keypoints / world landmarks are 1-Euro
     filtered per track (:meth:`PosePipeline.smooth_3d` does the same for lifted 3D positions).
"""
from __future__ import annotations

import collections
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import (
    DEFAULT_IMAGE_SIZE,
    Available,
    Choice,
    detector_batch,
    landmark_batch,
    load_or_rebuild,
    plan,
    probe,
    start_first,
)
from .dedupe import dedupe, default_rank, same_person
from .engines import (
    BACKENDS,
    BackendUnavailableError,  # noqa: F401  (re-exported for callers)
    Engine,
    LiteRTEngine,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TensorRTEngine,
    TorchEngine,
    resolve_device,
)
from .metrics import layout_sigmas
from .models import blazepose as bp
from .models.fetch import cache_root, require_models
from .refine import REFINE_PASSES, refine
from .skeletons import BLAZEPOSE_33, Layout
from .track import Observation, Tracker, torso_histogram
from .track import _validate as validate_tracking

log = logging.getLogger(__name__)

DETECTOR_OUTPUTS = ["Identity", "Identity_1"]  # boxes (2254 x 12), scores (2254 x 1)
LANDMARK_OUTPUTS = ["Identity", "Identity_1", "Identity_4"]  # landmarks, pose flag, world
MIN_SKELETON_IN_CROP = 0.3  # skeleton extent / crop side: real people 0.5-0.9, debris 0.1
# ... for a person tracked from the last frame: a crop 4.7x too large for its person gives 0.18;
# one frame of a tracked upper body whose guessed legs folded up gave 0.29 (presence 1.0)
TRACKED_MIN_SKELETON_IN_CROP = 0.2
LOST_SCAN_SPACING = 0.25  # x tile_scan_period: earliest tile scan after the last one for a lost track
HEATMAP_OUTPUT = "Identity_3"  # 64 x 64 x 39 (used for heatmap refinement)


def seen_box(keypoints: np.ndarray, visibility: np.ndarray, bbox: np.ndarray, least: int = 4) -> np.ndarray:
    """The box (4,) x0, y0, x1, y1 px of the keypoints (K, 2) px a person shows (visibility >
    0.5; ``bbox`` when fewer than ``least`` are): what the tracker compares. The landmark model
    also guesses the joints it cannot see (an upper body's legs, hundreds of px into whoever
    stands below), and those guesses change from crop to crop: measured on the 1080p load
    scene, a re-found person's box was 2.4x the lost track's (re-identification refuses > 1.6x)."""
    seen = np.asarray(keypoints)[np.asarray(visibility) > 0.5]
    if len(seen) < least:
        return bbox
    return np.r_[seen.min(0), seen.max(0)].astype(np.float32)


@dataclass
class PipelineConfig:
    """Settings of :class:`PosePipeline` (the node exposes them as parameters)."""

    max_persons: int = 10
    min_detection_score: float = bp.MIN_DETECTION_SCORE
    min_presence: float = bp.PRESENCE_THRESHOLD  # drop a person / lose a track below this
    # a newly detected person needs this presence (tracked people stay down to min_presence):
    # crops of background / of the gap between two people score ~0.5 for one frame
    min_birth_presence: float = 0.75
    static_image_mode: bool = False
    detect_every: int = 15  # frames between detector runs while tracking (newcomers)
    # >= 2: also detect on a grid of overlapping tiles (small people); 3 + pyramid measured best
    # on COCO (bench_multiperson.py)
    detector_tiles: int = 3
    detector_pyramid: bool = True  # with detector_tiles N: all grids 2 x 2 .. N x N (one batch)
    # tracking mode: the tile grids run at most once per this many seconds of image time (the
    # whole image on every detection frame); an empty room costs one tile scan per period, not
    # one per frame. 0: tiles on every detection frame. Static mode: every image, always.
    tile_scan_period: float = 1.0
    heatmap_refine: bool = True
    # landmark passes re-cropping each newly detected person from its own landmarks, ranked by
    # self-consistency (core/refine.py; COCO AP 0.47 -> 0.60); 0: MediaPipe's single pass
    refine_passes: int = REFINE_PASSES
    backend: str = "auto"
    device: str = "auto"
    detector_model: str | None = None  # .tflite / .onnx path; default: cached BlazePose
    landmark_model: str | None = None
    cache_dir: str | None = None
    # TensorRT optimisation profile max batch; 0: derived per network from max_persons,
    # detector_tiles and image_size (larger batches run in chunks)
    max_batch: int = 0
    image_size: tuple[int, int] | None = None  # expected (width, height); None: 1280 x 720
    # YAML model spec (pose_ros.core.spec_pipeline.make_pipeline); None: BlazePose
    model_spec: str | None = None
    # identities and smoothing (pose_ros.core.track; the node's parameters of the same names)
    track_min_hits: int = 1  # frames a new person must be seen before it is reported
    track_max_misses: int = 10  # frames a track survives unseen before it is lost
    track_reid_time: float = 5.0  # s a lost person can be re-identified (keeps the id)
    stale_after: float = 2.0  # s: a larger gap between frame stamps resets tracks and filters
    smoothing: bool = True  # 1-Euro filter on keypoints, world landmarks and 3D positions
    smoothing_min_cutoff: float = 1.0  # Hz
    smoothing_beta: float = 10.0  # Hz per (person size / s)
    smoothing_d_cutoff: float = 1.0  # Hz

    def validate(self) -> None:
        """Raise ValueError with the fix for settings a user can get wrong."""
        validate_tracking(self)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 1 <= self.max_persons <= 64:
            raise ValueError(f"max_persons must be in 1..64, got {self.max_persons}")
        for name in ("min_detection_score", "min_presence", "min_birth_presence"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.max_batch < 0:
            raise ValueError(f"max_batch must be 0 (derive) or >= 1, got {self.max_batch}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be (width, height) in pixels, got {self.image_size}")
        if not 0 <= self.refine_passes <= 4:
            raise ValueError(f"refine_passes must be in 0..4 (0: off), got {self.refine_passes}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if not 0 <= self.detector_tiles <= 4:
            raise ValueError(f"detector_tiles must be 0 (off) or 2..4, got {self.detector_tiles}")
        if not self.tile_scan_period >= 0:
            raise ValueError(f"tile_scan_period must be >= 0 s (0: tiles on every detection frame), "
                             f"got {self.tile_scan_period}")
        for name in ("detector_model", "landmark_model"):
            p = getattr(self, name)
            if p and (not Path(p).is_file() or Path(p).suffix not in (".tflite", ".onnx")):
                raise ValueError(f"{name} {p!r} must be an existing .tflite or .onnx file")


@dataclass
class Person:
    """One person in one image.

    keypoints: (33, 2) float32 pixel x, y in the input image (BlazePose-33 order).
    z: (33,) float32 relative depth in pixels (hip-centred, smaller = nearer), as MediaPipe.
    visibility, presence: (33,) float32 in [0, 1].
    world: (33, 3) float32 metres, origin mid-hip, axes parallel to the camera's optical frame
        (x right, y down, z forward), from the model (metric, up to the model's accuracy).
    score: person confidence in [0, 1]: the landmark model's presence flag, for a newly
        detected person times the self-consistency of its refined skeleton
        (:mod:`pose_ros.core.refine`). roi: the rotated crop used. bbox: (4,) float32
        x0, y0, x1, y1 of the landmarks, clipped to the image. track_id: stable while tracked.
    """

    track_id: int
    keypoints: np.ndarray
    z: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    roi: bp.Roi
    bbox: np.ndarray
    layout: Layout = field(default=BLAZEPOSE_33)


class TrackIds:
    """Source of new track ids: random in 1 .. 2**31 - 1, never repeated within the last
    ``MEMORY`` ids of one source.

    REP-155 wants body ids unique (two cameras = two pipelines must never both publish
    ``body_1``) and reasonably short; ids below 2**31 also fit
    visualization_msgs/Marker.id (int32) and Skeleton.id (uint32). Seeded from the OS
    (``secrets``) unless ``seed`` is given (tests). Call it for the next id.
    Memory is bounded: remembering every id ever issued grows without end (static mode issues
    one per person per frame: 8 people at 30 Hz are 20 M ids a day).
    """

    MAX_ID = 2**31 - 1
    MEMORY = 1 << 16  # ids remembered (and never repeated): far more than are ever alive

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(secrets.randbits(64) if seed is None else seed)
        self._issued: set[int] = set()
        self._order: collections.deque[int] = collections.deque()  # _issued, oldest first

    def __call__(self) -> int:
        while True:
            i = self._rng.randint(1, self.MAX_ID)
            if i not in self._issued:
                self._issued.add(i)
                self._order.append(i)
                if len(self._order) > self.MEMORY:
                    self._issued.discard(self._order.popleft())
                return i


@dataclass
class _Track:
    track_id: int
    roi: bp.Roi


def _model_paths(cfg: PipelineConfig) -> tuple[Path, Path]:
    if cfg.detector_model and cfg.landmark_model:
        return Path(cfg.detector_model), Path(cfg.landmark_model)
    have = require_models(cfg.cache_dir)
    return (Path(cfg.detector_model) if cfg.detector_model else have["pose_detection.tflite"],
            Path(cfg.landmark_model) if cfg.landmark_model else have["pose_landmark_full.tflite"])


def _onnx_for(tflite: Path, outputs: list[str], input_shape: tuple[int, ...], cache_dir) -> Path:
    """ONNX of a .tflite written directly from the flatbuffer (no torch), cached by content,
    outputs and the writer's format version. ``input_shape`` is unused (the batch is dynamic)."""
    from .models.tflite_onnx import FORMAT_VERSION, tflite_to_onnx

    key = hashlib.sha256(tflite.read_bytes() + ",".join(outputs).encode()
                         + f",onnx-format-{FORMAT_VERSION}".encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / "onnx" / f"{tflite.stem}-{key}.onnx"
    if not path.is_file():
        log.info("writing %s as ONNX (%s)", tflite.name, path)
        tflite_to_onnx(tflite, path, outputs)
    return path


def build_engine(model: Path, outputs: list[str], input_shape: tuple[int, ...], backend: str,
                 device: str, cache_dir=None, max_batch: int = 16) -> Engine:
    """One network on one backend and a concrete device ('cpu' / 'cuda'; not 'auto').

    input_shape: (1, H, W, C) of the network; max_batch: TensorRT profile size (larger
    batches run in chunks). A cached ONNX that cannot be loaded is deleted and rebuilt (one
    log line); a user-supplied .onnx is never deleted.
    """
    if backend == "litert":
        if model.suffix != ".tflite":
            raise ValueError(f"backend 'litert' runs .tflite files, got {model}")
        return LiteRTEngine(model)
    if backend == "torch":
        if model.suffix != ".tflite":
            raise ValueError(f"backend 'torch' imports .tflite files; for {model.name} use "
                             "backend onnxruntime, openvino or tensorrt")
        from .models.tflite_import import load_tflite

        return TorchEngine(load_tflite(model, outputs), resolve_device(device))

    def load(onnx_path: Path) -> Engine:
        if backend == "onnxruntime":
            return OnnxRuntimeEngine(onnx_path, device, trt_cache=cache_root(cache_dir) / "ort_trt",
                                     input_shape=input_shape, max_batch=max_batch)
        if backend in ("openvino", "openvino_bf16"):
            return OpenVinoEngine(onnx_path, "f32" if backend == "openvino" else "bf16")
        if backend == "tensorrt":
            return TensorRTEngine(onnx_path, cache_root(cache_dir) / "tensorrt", input_shape,
                                  max_batch)
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")

    if model.suffix == ".onnx":
        return load(model)
    onnx_path = _onnx_for(model, outputs, input_shape, cache_dir)
    return load_or_rebuild(onnx_path, load, lambda _p: _onnx_for(model, outputs, input_shape, cache_dir),
                           "ONNX model", log)


def select_engine(build, backend: str, device: str, what: str,
                  available: Available | None = None) -> tuple[Engine, Choice]:
    """Start ``what`` (detector / landmarks) on ``backend`` / ``device``.

    An explicit backend must start (its error propagates, with the fix). ``auto`` tries the
    fixed, deterministic order of :func:`pose_ros.core.backends.plan` and falls back on any
    start-up failure with one log line saying why. build(choice) -> Engine."""
    cands = plan(backend, device, available if available is not None else probe())
    if backend != "auto":
        return build(cands[0]), cands[0]
    return start_first(cands, build, what, log)


class PosePipeline:
    """Multi-person BlazePose (see the module docstring). Not thread-safe: one per thread."""

    def __init__(self, config: PipelineConfig | None = None, progress: bool = False,
                 track_ids: Callable[[], int] | None = None):
        """progress: show a progress bar while the networks are imported / exported / built
        (the first run exports ONNX or builds TensorRT engines, which takes seconds to minutes).
        track_ids: returns the id of each new track (default: a fresh :class:`TrackIds`,
        random and unique across pipelines, processes and restarts)."""
        self.cfg = config or PipelineConfig()
        self.cfg.validate()
        det_path, lm_path = _model_paths(self.cfg)
        lm_outputs = LANDMARK_OUTPUTS + ([HEATMAP_OUTPUT] if self.cfg.heatmap_refine else [])
        det_shape = (1, bp.DETECTOR_SIZE, bp.DETECTOR_SIZE, 3)
        lm_shape = (1, bp.LANDMARK_SIZE, bp.LANDMARK_SIZE, 3)

        w, h = self.cfg.image_size or DEFAULT_IMAGE_SIZE
        det_max = self.cfg.max_batch or 1 + sum(detector_batch(n, w, h) - 1 for n in self._grids())
        lm_max = self.cfg.max_batch or landmark_batch(self.cfg.max_persons)
        available = probe()
        self.choices: dict[str, Choice] = {}

        def make(model, outs, shape, max_batch, what):
            def build(c: Choice) -> Engine:
                return build_engine(model, outs, shape, c.backend, c.device, self.cfg.cache_dir,
                                    max_batch)
            eng, self.choices[what] = select_engine(build, self.cfg.backend, self.cfg.device,
                                                    what, available)
            return eng

        from tqdm import tqdm

        with tqdm(total=2, desc=f"loading models ({self.cfg.backend})", unit="net",
                  disable=not progress, leave=False) as bar:
            self.detector = make(det_path, DETECTOR_OUTPUTS, det_shape, det_max, "detector")
            bar.update(1)
            self.landmarker = make(lm_path, lm_outputs, lm_shape, lm_max, "landmarks")
            bar.update(1)
        self.backend = self.landmarker.name
        self.device = self.landmarker.device
        # e.g. "detector: openvino on cpu, landmarks: openvino on cpu" (CLI, node log, diagnostics)
        self.backend_summary = ", ".join(f"{k}: {c}" for k, c in self.choices.items())
        log.info("backend %s / device %s -> %s", self.cfg.backend, self.cfg.device,
                 self.backend_summary)
        self._tracks: list[_Track] = []
        self._new_id = track_ids if track_ids is not None else TrackIds()
        self._frames_since_detect = 0
        self._lost_last_frame = False
        self._last_tile_scan: float | None = None  # stamp (s) of the last frame with tile grids
        self.tiles_ran = False  # the last frame ran the tile grids
        self._lineage = 0  # keys of followed crops (hints for the tracker), not public ids
        # identities across frames; reads its settings from self.cfg on every frame
        self._sigmas = layout_sigmas(BLAZEPOSE_33)
        self.tracker = Tracker(self._new_id, self._sigmas, self.cfg)
        self.time_reset: str | None = None  # why the last frame reset all tracks, else None
        self.timings: dict[str, float] = {}
        self.detector_ran = False

    def reset(self) -> None:
        """Forget all tracks, identities and filters (next frame runs the detector)."""
        self._tracks = []
        self._lost_last_frame = False
        self._last_tile_scan = None
        self.tracker.reset()

    def close(self) -> None:
        for eng in (self.detector, self.landmarker):
            eng.close()

    def _grids(self) -> list[int]:
        """Tile grids the detector runs on besides the whole image: [] (detector_tiles 0),
        [N], or 2 .. N with ``detector_pyramid``."""
        n = self.cfg.detector_tiles
        return [] if n < 2 else list(range(2, n + 1)) if self.cfg.detector_pyramid else [n]

    # -- stages -------------------------------------------------------------------------
    def detect(self, image: np.ndarray, tiles: bool = True) -> list[bp.Detection]:
        """Person detections (best first): the whole image, plus overlapping tiles in the
        same batched call when ``detector_tiles`` >= 2 and ``tiles``."""
        h, w = image.shape[:2]
        rois = [bp.letterbox_roi(w, h)]
        for n in self._grids() if tiles else []:
            rois += bp.tile_rois(w, h, n)
        out = dict(zip(self.detector.output_names, self.detector(bp.detector_batch(image, rois)),
                       strict=True))
        per_input = [bp.decode_detections(out["Identity"][i], out["Identity_1"][i], roi,
                                          self.cfg.min_detection_score)
                     for i, roi in enumerate(rois)]
        # keep some spare candidates: duplicates left here are merged after the landmarks
        return bp.merge_detections(per_input, limit=2 * self.cfg.max_persons)

    def landmarks(self, image: np.ndarray, rois: list[bp.Roi]) -> list[bp.LandmarkResult]:
        if not rois:
            return []
        out = dict(zip(self.landmarker.output_names, self.landmarker(bp.landmark_input(image, rois)),
                       strict=True))
        return bp.decode_landmarks(out["Identity"], out["Identity_1"], out["Identity_4"],
                                   out.get(HEATMAP_OUTPUT), rois)

    # -- per frame ------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, stamp: float | None = None,
                 previous: float | None = None) -> list[Person]:
        """RGB uint8 (H, W, 3) image -> persons, best first. stamp: the image's time in s
        (e.g. header.stamp; default: the monotonic clock): a stamp earlier than the last one
        or more than ``stale_after`` s later resets tracks and filters (:attr:`time_reset`).
        previous: the stamp (s) of the camera's frame before this one when the caller skipped
        frames (a busy node): the stale gap is measured from it (see Tracker.check_time)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}")
        t0 = time.perf_counter()
        static = self.cfg.static_image_mode
        stamp = time.monotonic() if stamp is None else float(stamp)
        self.time_reset = None if static else self.tracker.check_time(stamp, previous)
        if self.time_reset:
            self._tracks, self._lost_last_frame, self._last_tile_scan = [], False, None
        tracks = [] if static else list(self._tracks)
        run_detector = (static or not tracks or self._lost_last_frame
                        or self._frames_since_detect + 1 >= self.cfg.detect_every)
        self.detector_ran = run_detector
        last_scan = self._last_tile_scan
        # the tiles: when a period has passed, or soon when a track was just lost (the tiles
        # may be what found that person; not sooner than a quarter period after the last
        # scan: debris a scan found and lost again must not trigger scan after scan)
        since = None if last_scan is None else stamp - last_scan
        period = self.cfg.tile_scan_period
        self.tiles_ran = run_detector and bool(self._grids()) and (
            static or since is None or not 0 <= since < period
            or (self._lost_last_frame and since >= LOST_SCAN_SPACING * period))
        t_det = 0.0
        if run_detector:
            td = time.perf_counter()
            if self.tiles_ran and not static:
                self._last_tile_scan = stamp
            # New candidates get id 0; duplicates of tracked people are resolved after the
            # landmarks (below), which is robust where detector boxes are not.
            tracks += [_Track(0, bp.roi_from_detection(d)) for d in self.detect(image, self.tiles_ran)]
            t_det = time.perf_counter() - td
            self._frames_since_detect = 0
        else:
            self._frames_since_detect += 1
        tl = time.perf_counter()
        results = self.landmarks(image, [t.roi for t in tracks])
        entries = self._refine_new(image, tracks, results)
        t_lm = time.perf_counter() - tl
        cands: list[tuple[int, Person, bp.Roi, float]] = []
        lost = False
        h, w = image.shape[:2]
        for trk, res, cons in entries:
            if res.score < self.cfg.min_presence:
                lost |= trk.track_id != 0
                continue
            # a new candidate must be more certain than a tracked person; in video also
            # self-consistent (core/refine.py): a skeleton that changes when re-cropped from
            # its own landmarks is not born (it can be found again on a later frame), while
            # static mode reports it with its low score (COCO AP ranks by score)
            if trk.track_id == 0 and res.score * (1.0 if static else cons) < self.cfg.min_birth_presence:
                continue
            kp = res.keypoints[: bp.NUM_BODY]
            least = TRACKED_MIN_SKELETON_IN_CROP if trk.track_id else MIN_SKELETON_IN_CROP
            if np.ptp(kp[:, :2], axis=0).max() < least * res.roi.size:
                lost |= trk.track_id != 0
                continue  # a skeleton squeezed into a corner of its crop: not a person
            bbox = np.array([max(kp[:, 0].min(), 0), max(kp[:, 1].min(), 0),
                             min(kp[:, 0].max(), w), min(kp[:, 1].max(), h)], np.float32)
            cands.append((trk.track_id, Person(trk.track_id, kp[:, :2].copy(), kp[:, 2].copy(),
                                               res.visibility[: bp.NUM_BODY],
                                               res.presence[: bp.NUM_BODY], res.world,
                                               res.score * cons, res.roi, bbox), res.next_roi(), cons))
        persons, next_tracks = self._dedupe(cands)
        persons = self._identify(image, persons, stamp)
        if not static:
            self._tracks = next_tracks
            self._lost_last_frame = lost
        self.timings = {"detector_ms": t_det * 1e3, "landmarks_ms": t_lm * 1e3, "tiles": self.tiles_ran,
                        "total_ms": (time.perf_counter() - t0) * 1e3, "persons": len(persons)}
        return persons

    def _refine_new(self, image: np.ndarray, tracks: list[_Track],
                    results: list[bp.LandmarkResult]) -> list[tuple[_Track, bp.LandmarkResult, float]]:
        """(crop, landmarks, consistency) per candidate: tracked crops as they are (1.0); each
        new detection that could be born is replaced by its ``refine_passes`` re-cropped passes
        with their self-consistency (:func:`pose_ros.core.refine.refine`); other new detections
        are dropped."""
        entries, new = [], []

        def body(r: bp.LandmarkResult):
            kp = r.keypoints[: bp.NUM_BODY, :2]
            return kp, np.r_[kp.min(0), kp.max(0)], r.visibility[: bp.NUM_BODY]

        followed = [body(r) for t, r in zip(tracks, results, strict=True)
                    if t.track_id != 0 and r.score >= self.cfg.min_presence]
        for trk, res in zip(tracks, results, strict=True):
            if trk.track_id != 0 or any(same_person(*body(res)[:2], *f[:2], self._sigmas, body(res)[2], f[2])
                                        for f in followed):
                entries.append((trk, res, 1.0))  # tracked, or a fresh detection of a tracked person
            elif (res.score >= self.cfg.min_birth_presence
                  and np.ptp(body(res)[0], axis=0).max() >= MIN_SKELETON_IN_CROP * res.roi.size):
                # only candidates that could be born as they are: re-cropping debris (presence
                # < min_birth_presence) can turn it into a confident "person" (a 150 x 35 px
                # desk edge on the two-person video)
                new.append((trk, res))
        passes = refine(self.landmarks, image, [r for _, r in new], self._sigmas, self.cfg.refine_passes)
        for (trk, _), refined in zip(new, passes, strict=True):
            entries += [(trk, r, c) for r, c in refined]
        return entries

    def _dedupe(self, cands: list[tuple[int, Person, bp.Roi, float]]) -> tuple[list[Person], list[_Track]]:
        """One result per person (:func:`pose_ros.core.dedupe.dedupe`: keypoint similarity
        and box containment; tracked crops kept; the more complete skeleton wins). A tracked
        person's crop lineage survives; new people get new lineage keys. At most
        ``max_persons``, applied after de-duplication."""
        if not cands:
            return [], []
        picks = dedupe([c[1].keypoints for c in cands], [c[1].bbox for c in cands],
                       [c[1].score for c in cands], [c[0] != 0 for c in cands], self._sigmas,
                       self.cfg.max_persons, [c[1].visibility for c in cands],
                       # new people: the most self-consistent skeleton (core/refine.py)
                       rank=[c[3] if c[0] == 0 and self.cfg.refine_passes else
                             default_rank(c[1].score, c[1].bbox) for c in cands])
        kept = [[cands[ident][0], cands[used][1], cands[used][2]] for used, ident in picks]
        kept = kept[: self.cfg.max_persons]
        for k in kept:
            if k[0] == 0:
                self._lineage += 1
                k[0] = self._lineage
            k[1].track_id = k[0]
        return [k[1] for k in kept], [_Track(k[0], k[2]) for k in kept]

    def _identify(self, image: np.ndarray, persons: list[Person], stamp: float) -> list[Person]:
        """Public ids from the tracker (static mode: a new id per person and image) and
        1-Euro-smoothed keypoints / world landmarks; people not yet born are left out."""
        if self.cfg.static_image_mode:
            for p in persons:
                p.track_id = self._new_id()
            return persons
        torso = [BLAZEPOSE_33.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
        obs = [Observation(p.keypoints, p.visibility > 0.5, seen_box(p.keypoints, p.visibility, p.bbox),
                           torso_histogram(image, p.keypoints[torso]), hint=p.track_id)
               for p in persons]
        out = []
        for p, tid in zip(persons, self.tracker.update(obs, stamp), strict=True):
            if tid == 0:
                continue
            p.track_id = tid
            size = float(np.hypot(p.bbox[2] - p.bbox[0], p.bbox[3] - p.bbox[1]))
            p.keypoints = self.tracker.smooth(tid, p.keypoints, "2d", max(size, 1.0)).astype(np.float32)
            p.world = self.tracker.smooth(tid, p.world, "world").astype(np.float32)
            out.append(p)
        return out

    def smooth_3d(self, persons: list[Person], positions: list[np.ndarray]) -> list[np.ndarray]:
        """1-Euro-smoothed 3D positions ((K, 3) m per person, NaN = unknown, any frame) of the
        last frame's persons (identity when ``smoothing`` is off or in static mode)."""
        if self.cfg.static_image_mode:
            return positions
        return [self.tracker.smooth(p.track_id, x, "3d") for p, x in zip(persons, positions, strict=True)]
