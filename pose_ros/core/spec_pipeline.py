"""Bring-your-own pose models: a YAML *model spec* -> a pipeline with PosePipeline's contract.

A spec names the model family, the ONNX file, the input size and normalisation, the output
tensors and the keypoint layout (limbs as data), e.g.::

    family: topdown_heatmap          # openpose_paf | topdown_heatmap | simcc | yolo_pose
    model: hrnet_w32_256x192.onnx    # relative to the spec file (or absolute)
    keypoints: coco_17               # a known layout, or {names, limbs[, paf_channels]}
                                     # or {topology: human_pose.json} (trt_pose)
                                     # or {layout: openpose_18, paf_channels: sequential}
    input: {width: 192, height: 256, layout: NCHW, color: RGB, scale: 255.0,
            mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
    outputs: {heatmaps: output}      # a tensor name or {name: ..., channels: [start, stop]}
    decoder: {}                      # family options (see FAMILY_DECODER)
    detector: blazepose              # top-down only: blazepose or the path of a yolo_pose spec

Families (network input pixels -> image pixels through one 2 x 3 affine per input):

* ``openpose_paf`` (OpenPose COCO-18 / BODY_25, trt_pose): whole image letterboxed into the
  input; outputs ``heatmaps`` (K[+background], h, w) and ``pafs`` (2L, h, w); grouped by
  :class:`pose_ros.core.decode.PafDecoder`.
* ``topdown_heatmap`` (HRNet, ViTPose, SimpleBaseline): one crop per person from the person
  detector (BlazePose's, or a yolo_pose spec's boxes); ``heatmaps`` (K, h, w) decoded by
  :class:`~pose_ros.core.decode.HeatmapArgmax` (3-point parabola refinement).
* ``simcc`` (RTMPose): crops as above; ``simcc_x`` (K, Wx), ``simcc_y`` (K, Hy) decoded by
  :class:`~pose_ros.core.decode.SimCC`; split ratio Wx / input width unless given.
* ``yolo_pose`` (YOLOv8/11-pose export): whole image letterboxed; ``detections`` (5 + 3K, N)
  or (N, 5 + 3K) rows (cx, cy, w, h, score, K x (x, y, conf)) in input pixels; score
  threshold, then non-maximum suppression with cv2.dnn.NMSBoxes.

Heatmap / PAF maps go from map pixels to input pixels by the per-axis stride (input size / map
size; decode.py's convention x_in = x_map * stride). What spec models give: 2D keypoints and
per-joint scores only. :class:`~pose_ros.core.pipeline.Person` fields the families do not
have are NaN: ``z`` (K,), ``presence`` (K,), ``world`` (K, 3). So the node's monocular 3D
(PnP of world landmarks) is not available: spec models get 3D only from an aligned depth image
(``use_depth``); without depth the 3D positions are NaN (position_source NONE).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .decode import HeatmapArgmax, PafDecoder, SimCC, crop_to_image
from .models import blazepose as bp
from .skeletons import LAYOUTS, PAF_CHANNELS, Layout

log = logging.getLogger(__name__)

FAMILIES = ("openpose_paf", "topdown_heatmap", "simcc", "yolo_pose")
# the output tensors each family needs
FAMILY_OUTPUTS = {"openpose_paf": ("heatmaps", "pafs"), "topdown_heatmap": ("heatmaps",),
                  "simcc": ("simcc_x", "simcc_y"), "yolo_pose": ("detections",)}
# decoder options each family accepts, with defaults
FAMILY_DECODER: dict[str, dict[str, object]] = {
    "openpose_paf": {"peak_threshold": 0.1, "nms_size": 3, "n_samples": 10, "paf_threshold": 0.05,
                     "min_above": 0.8, "min_parts": 3, "min_score": 0.4},
    "topdown_heatmap": {"refine": "parabola", "min_score": 0.0, "crop_scale": 1.25},
    "simcc": {"split_ratio": 0.0, "min_score": 0.0, "crop_scale": 1.25},
    "yolo_pose": {"score_threshold": 0.25, "iou_threshold": 0.45, "keypoint_dims": 3,
                  "crop_scale": 1.25},
}
TOP_DOWN = ("topdown_heatmap", "simcc")
ONNX_BACKENDS = ("onnxruntime", "openvino", "openvino_bf16", "tensorrt")
_TOP_KEYS = {"family", "model", "keypoints", "input", "outputs", "decoder", "detector", "name"}
_INPUT_KEYS = {"width", "height", "layout", "color", "scale", "mean", "std", "pad_value"}


class SpecError(ValueError):
    """A model spec that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class OutputRef:
    """One output tensor, optionally a channel range [start, stop) of it (OpenPose's single
    ``net_output`` holds heatmaps, background and PAFs)."""

    name: str
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class InputSpec:
    """Network input: width, height (pixels), layout NCHW / NHWC, colour order RGB / BGR;
    value = (pixel / scale - mean) / std per channel (in the spec's colour order)."""

    width: int
    height: int
    layout: str = "NCHW"
    color: str = "RGB"
    scale: float = 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    pad_value: int = 0


@dataclass
class ModelSpec:
    """A validated model spec (see the module docstring). ``source``: the YAML file."""

    family: str
    model: Path
    layout: Layout
    input: InputSpec
    outputs: dict[str, OutputRef]
    output_layout: str = "NCHW"
    decoder: dict = field(default_factory=dict)
    paf_channels: tuple[tuple[int, int], ...] | None = None
    detector: str | ModelSpec | None = None
    source: Path | None = None
    name: str = ""


def _err(src, msg: str) -> SpecError:
    return SpecError(f"model spec {src}: {msg}")


def _snake(name: str) -> str:
    return str(name).strip().replace("-", "_").replace(" ", "_").lower()


def _layout_from(src, kp, base: Path) -> tuple[Layout, tuple | None]:
    """The keypoint layout of a spec's ``keypoints`` entry and its PAF channel pairs (or None)."""
    if isinstance(kp, str):
        if kp not in LAYOUTS:
            raise _err(src, f"keypoints: unknown layout {kp!r}; use one of {', '.join(LAYOUTS)} or "
                       "give {names: [...], limbs: [[a, b], ...]} or {topology: human_pose.json}")
        return LAYOUTS[kp], PAF_CHANNELS.get(kp)
    if not isinstance(kp, dict):
        raise _err(src, "keypoints must be a layout name or a mapping with names + limbs or topology")
    unknown = set(kp) - {"names", "limbs", "paf_channels", "topology", "name", "layout"}
    if unknown:
        raise _err(src, f"keypoints: unknown key(s) {sorted(unknown)}; known: layout, names, limbs, "
                   "paf_channels, topology, name")
    paf = kp.get("paf_channels")
    if paf == "sequential":  # limb l in channels (2l, 2l + 1) (train-demo exports use the layout default)
        paf = None
        sequential = True
    else:
        sequential = False
    if "layout" in kp:  # a known layout, e.g. with its own PAF channel order
        lay, known_paf = _layout_from(src, kp["layout"], base)
        names, limbs, name = lay.names, lay.limbs, lay.name
        paf = paf if paf is not None or sequential else known_paf
    elif "topology" in kp:  # trt_pose human_pose.json: keypoints names + 1-based skeleton
        path = (base / kp["topology"]).expanduser()
        try:
            topo = json.loads(path.read_text())
            names = tuple(_snake(n) for n in topo["keypoints"])
            limbs = tuple((int(a) - 1, int(b) - 1) for a, b in topo["skeleton"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _err(src, f"keypoints.topology {path}: cannot read a trt_pose topology "
                       f"(json with 'keypoints' and 1-based 'skeleton'): {exc}") from None
        # trt_pose: PAF channel 2k is the y (row) component, 2k + 1 the x (column) component
        paf = paf if paf is not None or sequential else tuple((2 * k + 1, 2 * k) for k in range(len(limbs)))
        name = kp.get("name", str(topo.get("supercategory", "trt_pose")) + f"_{len(names)}")
    else:
        if "names" not in kp or "limbs" not in kp:
            raise _err(src, "keypoints mapping needs 'names' (list) and 'limbs' (list of pairs)")
        names = tuple(_snake(n) for n in kp["names"])
        idx = {n: i for i, n in enumerate(names)}
        limbs = []
        for pair in kp["limbs"]:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise _err(src, f"keypoints.limbs: {pair!r} is not a pair [a, b]")
            ab = []
            for j in pair:
                if isinstance(j, str):
                    if _snake(j) not in idx:
                        raise _err(src, f"keypoints.limbs: joint {j!r} is not in names {list(names)}")
                    ab.append(idx[_snake(j)])
                else:
                    ab.append(int(j))
            limbs.append(tuple(ab))
        limbs = tuple(limbs)
        name = kp.get("name", f"custom_{len(names)}")
    if len(set(names)) != len(names):
        raise _err(src, f"keypoints: duplicate joint names in {list(names)}")
    for a, b in limbs:
        if not (0 <= a < len(names) and 0 <= b < len(names)):
            raise _err(src, f"keypoints: limb ({a}, {b}) indexes past the {len(names)} joints "
                       "(indices are 0-based; topology json skeletons are 1-based)")
    if sequential:
        paf = tuple((2 * i, 2 * i + 1) for i in range(len(limbs)))
    if paf is not None:
        paf = tuple((int(x), int(y)) for x, y in paf)
        if len(paf) != len(limbs):
            raise _err(src, f"keypoints.paf_channels has {len(paf)} pairs for {len(limbs)} limbs")
    return Layout(str(name), names, limbs), paf


def _output_ref(src, key: str, v) -> OutputRef:
    if isinstance(v, str):
        return OutputRef(v)
    if isinstance(v, dict) and isinstance(v.get("name"), str):
        ch = v.get("channels")
        if ch is None:
            return OutputRef(v["name"])
        if not (isinstance(ch, (list, tuple)) and len(ch) == 2 and 0 <= int(ch[0]) < int(ch[1])):
            raise _err(src, f"outputs.{key}.channels must be [start, stop) with 0 <= start < stop, "
                       f"got {ch!r}")
        return OutputRef(v["name"], int(ch[0]), int(ch[1]))
    raise _err(src, f"outputs.{key} must be a tensor name or {{name: ..., channels: [start, stop]}}, "
               f"got {v!r}")


def parse_spec(data: dict, source: str | Path = "<dict>", base: Path | None = None) -> ModelSpec:
    """Validate a spec mapping (as read from YAML). base: folder relative paths refer to.
    Raises SpecError naming the key and the fix."""
    src = source
    base = Path(base) if base is not None else Path(".")
    if not isinstance(data, dict):
        raise _err(src, "must be a YAML mapping (family, model, keypoints, input, outputs)")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(src, f"unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
    family = data.get("family")
    if family not in FAMILIES:
        raise _err(src, f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    for key in ("model", "keypoints", "input", "outputs"):
        if key not in data:
            raise _err(src, f"missing required key {key!r}")
    model = (base / str(data["model"])).expanduser()
    if model.suffix != ".onnx":
        raise _err(src, f"model must be an .onnx file (TensorRT engines are built from it with "
                   f"backend tensorrt), got {model.name}")
    if not model.is_file():
        raise _err(src, f"model file {model} does not exist (relative paths are relative to "
                   "the spec file)")
    layout, paf = _layout_from(src, data["keypoints"], base)

    inp = data["input"]
    if not isinstance(inp, dict):
        raise _err(src, "input must be a mapping with width and height")
    bad = set(inp) - _INPUT_KEYS
    if bad:
        raise _err(src, f"input: unknown key(s) {sorted(bad)}; known: {', '.join(sorted(_INPUT_KEYS))}")
    try:
        w, h = int(inp["width"]), int(inp["height"])
    except (KeyError, TypeError, ValueError):
        raise _err(src, "input.width and input.height (pixels, integers) are required") from None
    if w < 1 or h < 1:
        raise _err(src, f"input size must be positive, got {w} x {h}")
    lay = str(inp.get("layout", "NCHW")).upper()
    color = str(inp.get("color", "RGB")).upper()
    if lay not in ("NCHW", "NHWC"):
        raise _err(src, f"input.layout must be NCHW or NHWC, got {lay!r}")
    if color not in ("RGB", "BGR"):
        raise _err(src, f"input.color must be RGB or BGR, got {color!r}")

    def triple(key, default):
        v = inp.get(key, default)
        v = [v] * 3 if isinstance(v, (int, float)) else list(v)
        if len(v) != 3:
            raise _err(src, f"input.{key} must be one number or three (per channel), got {v!r}")
        return tuple(float(x) for x in v)

    mean, std = triple("mean", 0.0), triple("std", 1.0)
    if min(std) <= 0:
        raise _err(src, f"input.std must be > 0, got {std}")
    scale = float(inp.get("scale", 255.0))
    if scale <= 0:
        raise _err(src, f"input.scale must be > 0 (pixels are divided by it), got {scale}")
    ispec = InputSpec(w, h, lay, color, scale, mean, std, int(inp.get("pad_value", 0)))

    outs = data["outputs"]
    if not isinstance(outs, dict):
        raise _err(src, f"outputs must be a mapping of {', '.join(FAMILY_OUTPUTS[family])} to tensor names")
    out_layout = str(outs.get("layout", "NCHW")).upper()
    if out_layout not in ("NCHW", "NHWC"):
        raise _err(src, f"outputs.layout (of map outputs) must be NCHW or NHWC, got {out_layout!r}")
    need = FAMILY_OUTPUTS[family]
    bad = set(outs) - set(need) - {"layout"}
    if bad:
        raise _err(src, f"outputs: key(s) {sorted(bad)} are not outputs of family {family}; it "
                   f"needs {', '.join(need)}")
    missing = [k for k in need if k not in outs]
    if missing:
        raise _err(src, f"outputs: family {family} needs {', '.join(need)}; missing {', '.join(missing)}")
    refs = {k: _output_ref(src, k, outs[k]) for k in need}

    dec = dict(FAMILY_DECODER[family])
    given = data.get("decoder") or {}
    if not isinstance(given, dict):
        raise _err(src, "decoder must be a mapping of options")
    bad = set(given) - set(dec)
    if bad:
        raise _err(src, f"decoder: unknown option(s) {sorted(bad)} for {family}; known: "
                   f"{', '.join(dec)}")
    for k, v in given.items():
        dec[k] = type(dec[k])(v)
    if family == "topdown_heatmap" and dec["refine"] not in ("parabola", "log_parabola", "none"):
        raise _err(src, f"decoder.refine must be parabola, log_parabola or none, got {dec['refine']!r}")
    if family == "yolo_pose" and dec["keypoint_dims"] not in (2, 3):
        raise _err(src, f"decoder.keypoint_dims must be 2 (x, y) or 3 (x, y, conf), got {dec['keypoint_dims']}")
    if family == "openpose_paf" and paf is None:
        paf = tuple((2 * i, 2 * i + 1) for i in range(len(layout.limbs)))
    if family == "openpose_paf" and not layout.limbs:
        raise _err(src, "openpose_paf needs the layout's limbs (one PAF pair per limb)")

    det = data.get("detector")
    if det is not None and family not in TOP_DOWN:
        raise _err(src, f"detector: only top-down families ({', '.join(TOP_DOWN)}) use a person "
                   f"detector; {family} finds people itself")
    if family in TOP_DOWN:
        det = "blazepose" if det in (None, "", "blazepose") else det
        if det != "blazepose":
            det_spec = load_spec(base / str(det))
            if det_spec.family != "yolo_pose":
                raise _err(src, f"detector spec {det} must be of family yolo_pose (its boxes are "
                           f"used), got {det_spec.family}")
            det = det_spec
    return ModelSpec(family, model, layout, ispec, refs, out_layout, dec, paf, det,
                     Path(source) if source != "<dict>" else None, str(data.get("name", "")))


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML model spec (relative paths inside are relative to its folder)."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise SpecError(f"model spec {path} does not exist; examples: config/models/*.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"model spec {path} is not valid YAML: {exc}") from None
    return parse_spec(data, path, path.parent)


# ------------------------------------------------------------------------------------------
# geometry: one 2 x 3 affine image -> network input per input
def letterbox_matrix(width: int, height: int, in_w: int, in_h: int) -> np.ndarray:
    """2 x 3 affine image -> input: uniform scale min(in_w / width, in_h / height), centred
    (padding split between both sides, as ultralytics' letterbox)."""
    s = min(in_w / width, in_h / height)
    return np.array([[s, 0.0, (in_w - width * s) / 2], [0.0, s, (in_h - height * s) / 2]])


def roi_matrix(roi: bp.Roi, in_w: int, in_h: int) -> np.ndarray:
    """2 x 3 affine image -> input of a rotated square ROI into an in_w x in_h crop: the ROI's
    side spans the crop's shorter side, centres coincide, the ROI's rotation is undone (the
    person is upright in the crop). Inverse of a crop -> image map like bp.crop_matrix."""
    a = bp.rotation(roi.angle) * (roi.size / min(in_w, in_h))  # crop -> image (linear part)
    t = np.array([roi.cx, roi.cy]) - a @ np.array([in_w / 2, in_h / 2])
    return cv2.invertAffineTransform(np.hstack([a, t[:, None]]))


def box_roi(box: np.ndarray, scale: float = 1.25) -> bp.Roi:
    """Upright square ROI around an (x0, y0, x1, y1) box: side = scale x the longer side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return bp.Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, 0.0)


def preprocess(image: np.ndarray, matrices: list[np.ndarray], inp: InputSpec) -> np.ndarray:
    """RGB uint8 (H, W, 3) image -> float32 batch (B, 3, h, w) or (B, h, w, 3) by the spec:
    one cv2.warpAffine per matrix (bilinear, constant pad_value border), colour order,
    (pixel / scale - mean) / std."""
    out = np.empty((len(matrices), inp.height, inp.width, 3), np.float32)
    for i, m in enumerate(matrices):
        out[i] = cv2.warpAffine(image, m, (inp.width, inp.height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(inp.pad_value,) * 3)
    if inp.color == "BGR":
        out = out[..., ::-1]
    out = (out / inp.scale - np.array(inp.mean, np.float32)) / np.array(inp.std, np.float32)
    if inp.layout == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out, np.float32)


# ------------------------------------------------------------------------------------------
# decoding (one network input each; pure functions of the outputs)
def _select(outputs: dict[str, np.ndarray], ref: OutputRef, maps: bool, layout: str) -> np.ndarray:
    """The (B, C, ...) array of one output ref (channels first; NHWC maps transposed)."""
    a = np.asarray(outputs[ref.name], np.float32)
    if maps and layout == "NHWC" and a.ndim == 4:
        a = a.transpose(0, 3, 1, 2)
    if ref.start is not None:
        if a.shape[1] < ref.stop:
            raise SpecError(f"output {ref.name} has {a.shape[1]} channels, the spec asks for "
                            f"[{ref.start}, {ref.stop})")
        a = a[:, ref.start:ref.stop]
    return a


def decode_yolo(det: np.ndarray, k: int, opts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's YOLO-pose rows -> (boxes (N, 4) x0 y0 x1 y1, scores (N,), keypoints (N, K, 2),
    keypoint scores (N, K)) in input pixels after the score threshold and cv2.dnn.NMSBoxes.
    det: (5 + dims K, N) (ultralytics' export) or (N, 5 + dims K)."""
    dims = int(opts["keypoint_dims"])
    c = 5 + dims * k
    det = np.asarray(det, np.float32)
    if det.ndim != 2 or c not in det.shape:
        raise SpecError(f"yolo_pose output {det.shape} does not fit {k} keypoints x {dims} values + "
                        f"5 box values = {c} per row; check keypoints / decoder.keypoint_dims")
    rows = det.T if det.shape[0] == c and det.shape[1] != c else det
    keep = rows[:, 4] >= opts["score_threshold"]
    rows = rows[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    idx = cv2.dnn.NMSBoxes(np.stack([cx - w / 2, cy - h / 2, w, h], -1).tolist(),
                           rows[:, 4].tolist(), float(opts["score_threshold"]),
                           float(opts["iou_threshold"])) if len(rows) else []
    idx = np.asarray(idx, np.int64).reshape(-1)
    kp = rows[idx, 5:].reshape(-1, k, dims)
    ks = kp[..., 2] if dims == 3 else np.ones(kp.shape[:2], np.float32)
    return boxes[idx], rows[idx, 4], kp[..., :2].astype(np.float64), ks.astype(np.float64)


class SpecPipeline:
    """A model spec's network behind PosePipeline's interface: ``__call__(rgb) -> list[Person]``,
    ``reset``, ``close``, ``timings``, ``backend_summary``, ``detector_ran``. Not thread-safe.

    Persons: keypoints (K, 2) float32 image pixels (NaN: not found), visibility (K,) float32 the
    decoder's joint scores clipped to [0, 1], z / presence (K,) and world (K, 3) NaN (the family
    has none), score the person score, roi the crop (top-down) or keypoint box square, bbox
    (x0, y0, x1, y1) of the found keypoints, layout the spec's. Track ids: greedy IoU > 0.3
    matching to the previous frame's boxes (new ids every frame in static_image_mode).
    """

    def __init__(self, spec: ModelSpec | str | Path, config=None, progress: bool = False,
                 track_ids: Callable[[], int] | None = None):
        from .pipeline import PipelineConfig, TrackIds

        self.spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
        self.cfg = config or PipelineConfig()
        self.cfg.validate()
        self.choices: dict = {}
        self.engine, self.batched = self._engine(self.spec, "model")
        self._check_outputs(self.spec, self.engine)
        self.det_pipeline: SpecPipeline | None = None
        self._det = None  # a PosePipeline holding only the BlazePose detector (its detect())
        if self.spec.family in TOP_DOWN:
            if isinstance(self.spec.detector, ModelSpec):
                self.det_pipeline = SpecPipeline(self.spec.detector, self.cfg, track_ids=lambda: 0)
                self.choices["detector"] = self.det_pipeline.choices["model"]
            else:
                from .pipeline import PosePipeline

                self._det = PosePipeline.__new__(PosePipeline)  # no landmark model loaded
                self._det.cfg, self._det.detector = self.cfg, self._blazepose_detector()
        self.backend = self.engine.name
        self.device = self.engine.device
        self.backend_summary = ", ".join(f"{k}: {c}" for k, c in self.choices.items())
        self.layout = self.spec.layout
        self._new_id = track_ids if track_ids is not None else TrackIds()
        self._prev: list[tuple[int, np.ndarray]] = []
        self.timings: dict[str, float] = {}
        self.detector_ran = False
        k = len(self.layout)
        f = self.spec.family
        d = self.spec.decoder
        if f == "openpose_paf":
            self._paf = PafDecoder(self.layout, self.spec.paf_channels, d["peak_threshold"],
                                   d["nms_size"], d["n_samples"], d["paf_threshold"], d["min_above"],
                                   d["min_parts"], d["min_score"], stride=1.0)
        elif f == "topdown_heatmap":
            self._hm = HeatmapArgmax(d["refine"], 1.0, d["min_score"])
        self._k = k

    # -- loading ------------------------------------------------------------------------
    def _engine(self, spec: ModelSpec, what: str):
        from .backends import Choice, plan, probe, start_first
        from .pipeline import build_engine

        backend, device = self.cfg.backend, self.cfg.device
        if backend != "auto" and backend not in ONNX_BACKENDS:
            raise SpecError(f"backend {backend!r} cannot run the ONNX model of spec "
                            f"{spec.source or spec.model}; use backend auto, "
                            f"{', '.join(ONNX_BACKENDS)}")
        inp = spec.input
        shape = (1, 3, inp.height, inp.width) if inp.layout == "NCHW" else (1, inp.height, inp.width, 3)
        batch_dim = _onnx_batch_dim(spec.model)
        if batch_dim is not None and batch_dim > 1:
            raise SpecError(f"{spec.model.name}: fixed batch {batch_dim}; export it with batch 1 "
                            "or a dynamic batch axis")
        batched = batch_dim is None
        max_batch = (self.cfg.max_batch or max(1, self.cfg.max_persons)) if batched else 1
        cands = [c for c in plan(backend, device, probe()) if c.backend in ONNX_BACKENDS]
        if not cands:
            raise SpecError("no installed backend runs ONNX here; pip install onnxruntime or openvino")

        def build(c: Choice):
            return build_engine(spec.model, [], shape, c.backend, c.device, self.cfg.cache_dir,
                                max_batch)
        if backend != "auto":
            eng, ch = build(cands[0]), cands[0]
        else:
            eng, ch = start_first(cands, build, f"{spec.family} {what}", log)
        self.choices[what] = ch
        return eng, batched

    @staticmethod
    def _check_outputs(spec: ModelSpec, engine) -> None:
        names = list(engine.output_names)
        for key, ref in spec.outputs.items():
            if ref.name not in names:
                raise SpecError(f"model spec {spec.source or ''}: outputs.{key} = {ref.name!r} is not "
                                f"an output of {spec.model.name}; its outputs are {names}")

    def _blazepose_detector(self):
        from .backends import detector_batch, probe
        from .models.fetch import require_models
        from .pipeline import DETECTOR_OUTPUTS, build_engine, select_engine

        path = require_models(self.cfg.cache_dir)["pose_detection.tflite"] if not self.cfg.detector_model \
            else Path(self.cfg.detector_model)
        w, h = self.cfg.image_size or (1280, 720)
        mb = self.cfg.max_batch or detector_batch(self.cfg.detector_tiles, w, h)
        shape = (1, bp.DETECTOR_SIZE, bp.DETECTOR_SIZE, 3)

        def build(c):
            return build_engine(path, DETECTOR_OUTPUTS, shape, c.backend, c.device, self.cfg.cache_dir, mb)
        eng, self.choices["detector"] = select_engine(build, self.cfg.backend, self.cfg.device,
                                                      "detector", probe())
        return eng

    def reset(self) -> None:
        """Forget the previous frame's people (track ids restart)."""
        self._prev = []

    def close(self) -> None:
        self.engine.close()
        if self._det is not None:
            self._det.detector.close()
        if self.det_pipeline is not None:
            self.det_pipeline.close()

    # -- running ----------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.batched or len(batch) == 1:
            outs = self.engine(batch)
        else:  # a batch-1 export: one call per input
            per = [self.engine(batch[i:i + 1]) for i in range(len(batch))]
            outs = [np.concatenate([p[j] for p in per]) for j in range(len(per[0]))]
        return dict(zip(self.engine.output_names, outs, strict=True))

    def rois(self, image: np.ndarray) -> list[bp.Roi]:
        """Top-down families: one ROI per person from the detector (best first, at most
        max_persons)."""
        if self.det_pipeline is not None:
            boxes, _ = self.det_pipeline.boxes(image)
            return [box_roi(b, self.spec.decoder["crop_scale"]) for b in boxes[: self.cfg.max_persons]]
        dets = self._det.detect(image)
        return [bp.roi_from_detection(d) for d in dets[: self.cfg.max_persons]]

    def boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """yolo_pose: person boxes (N, 4) x0 y0 x1 y1 image pixels and scores (N,), best first."""
        people = self._whole_image(image)
        return (np.array([p[3] for p in people]).reshape(-1, 4),
                np.array([p[2] for p in people], np.float64))

    def _whole_image(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]:
        """Bottom-up / yolo families: [(xy (K, 2) image px, scores (K,), person score, box)]."""
        inp = self.spec.input
        h, w = image.shape[:2]
        m = letterbox_matrix(w, h, inp.width, inp.height)
        out = self._run(preprocess(image, [m], inp))
        people = []
        if self.spec.family == "yolo_pose":
            det = _select(out, self.spec.outputs["detections"], False, "NCHW")[0]
            boxes, scores, kp, ks = decode_yolo(det, self._k, self.spec.decoder)
            for b, s, xy, sc in zip(boxes, scores, kp, ks, strict=True):
                corners = crop_to_image(b.reshape(2, 2), m).reshape(4)
                people.append((crop_to_image(xy, m), sc, float(s), corners))
            people.sort(key=lambda p: -p[2])
            return people
        hm = _select(out, self.spec.outputs["heatmaps"], True, self.spec.output_layout)[0]
        pf = _select(out, self.spec.outputs["pafs"], True, self.spec.output_layout)[0]
        stride = np.array([inp.width / hm.shape[2], inp.height / hm.shape[1]])
        for p in self._paf(hm, pf):
            xy = crop_to_image(p.xy * stride, m)
            people.append((xy, p.scores, float(p.score), None))
        return people

    def _top_down(self, image: np.ndarray, rois: list[bp.Roi]):
        inp = self.spec.input
        if not rois:
            return []
        mats = [roi_matrix(r, inp.width, inp.height) for r in rois]
        out = self._run(preprocess(image, mats, inp))
        people = []
        d = self.spec.decoder
        if self.spec.family == "topdown_heatmap":
            hms = _select(out, self.spec.outputs["heatmaps"], True, self.spec.output_layout)
            stride = np.array([inp.width / hms.shape[3], inp.height / hms.shape[2]])
            for hm, m, r in zip(hms, mats, rois, strict=True):
                kp = self._hm(hm[: self._k])
                people.append((crop_to_image(kp.xy * stride, m), kp.scores, r))
        else:
            sx = _select(out, self.spec.outputs["simcc_x"], False, "NCHW")
            sy = _select(out, self.spec.outputs["simcc_y"], False, "NCHW")
            ratio = d["split_ratio"] or sx.shape[-1] / inp.width
            dec = SimCC(ratio)
            for x, y, m, r in zip(sx, sy, mats, rois, strict=True):
                kp = dec(x[: self._k], y[: self._k])
                xy = kp.xy.copy()
                xy[kp.scores < d["min_score"]] = np.nan
                people.append((crop_to_image(xy, m), kp.scores, r))
        return people

    def __call__(self, image: np.ndarray) -> list:
        """RGB uint8 (H, W, 3) image -> persons (:class:`~pose_ros.core.pipeline.Person`, the
        spec's layout), best first, at most max_persons."""
        from .pipeline import Person

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}")
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        t_det = 0.0
        raw = []  # (xy, scores, person score, roi or None)
        if self.spec.family in TOP_DOWN:
            self.detector_ran = True
            rois = self.rois(image)
            t_det = time.perf_counter() - t0
            for xy, sc, roi in self._top_down(image, rois):
                ok = np.isfinite(xy).all(1)
                raw.append((xy, sc, float(np.mean(np.clip(sc[ok], 0, 1))) if ok.any() else 0.0, roi))
        else:
            self.detector_ran = False
            raw = [(xy, sc, s, None) for xy, sc, s, _ in self._whole_image(image)]
        k = self._k
        persons = []
        for xy, sc, score, roi in sorted(raw, key=lambda r: -r[2]):
            ok = np.isfinite(xy).all(1)
            if not ok.any():
                continue
            p = xy[ok]
            bbox = np.array([max(p[:, 0].min(), 0), max(p[:, 1].min(), 0),
                             min(p[:, 0].max(), w), min(p[:, 1].max(), h)], np.float32)
            if roi is None:
                roi = box_roi(bbox, 1.0)
            vis = np.where(ok, np.clip(np.nan_to_num(sc), 0.0, 1.0), 0.0).astype(np.float32)
            persons.append(Person(0, xy.astype(np.float32), np.full(k, np.nan, np.float32), vis,
                                  np.full(k, np.nan, np.float32), np.full((k, 3), np.nan, np.float32),
                                  float(score), roi, bbox, self.layout))
        if self.spec.family in TOP_DOWN and len(persons) > 1:
            # the BlazePose detector's whole-image + tile candidates overlap: one person can be
            # cropped twice. Merge by skeleton similarity / containment (core.dedupe), then cap.
            from .dedupe import dedupe
            from .metrics import layout_sigmas

            picks = dedupe([p.keypoints for p in persons], [p.bbox for p in persons],
                           [p.score for p in persons], [False] * len(persons),
                           layout_sigmas(self.layout), self.cfg.max_persons,
                           [p.visibility for p in persons])
            persons = [persons[i] for i, _ in picks]
        persons = persons[: self.cfg.max_persons]
        self._assign_ids(persons)
        self.timings = {"detector_ms": t_det * 1e3,
                        "landmarks_ms": (time.perf_counter() - t0 - t_det) * 1e3,
                        "total_ms": (time.perf_counter() - t0) * 1e3, "persons": len(persons)}
        return persons

    def _assign_ids(self, persons: list) -> None:
        prev = [] if self.cfg.static_image_mode else list(self._prev)
        for p in persons:  # best first
            best, best_iou = None, 0.3
            for i, (_, box) in enumerate(prev):
                iou = bp.box_iou(p.bbox[None].astype(np.float64), box[None].astype(np.float64))[0, 0]
                if iou > best_iou:
                    best, best_iou = i, iou
            p.track_id = prev.pop(best)[0] if best is not None else self._new_id()
        self._prev = [(p.track_id, p.bbox.copy()) for p in persons]


def _onnx_batch_dim(path: Path) -> int | None:
    """The fixed batch size of an ONNX model's first input, or None when dynamic."""
    import onnx

    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return int(dim[0].dim_value) if len(dim) and dim[0].HasField("dim_value") else None


def make_pipeline(cfg=None, progress: bool = False, track_ids: Callable[[], int] | None = None):
    """The pipeline the node and the CLI run: :class:`SpecPipeline` when ``cfg.model_spec``
    names a spec file, else BlazePose's :class:`~pose_ros.core.pipeline.PosePipeline`."""
    from .pipeline import PipelineConfig, PosePipeline

    cfg = cfg or PipelineConfig()
    spec = getattr(cfg, "model_spec", None)
    if spec:
        return SpecPipeline(spec, cfg, progress, track_ids)
    return PosePipeline(cfg, progress, track_ids)
