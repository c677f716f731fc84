"""Bring-your-own models through a YAML model spec (core/spec_pipeline.py) and `pose-ros eval`.

The ONNX models are built here with onnx.helper: either constant outputs that encode known
people (core/encode.py: Gaussian heatmaps, PAFs; YOLO rows by hand), or small graphs computed
from the input (a 1x1 conv that lights up red / blue dots drawn in the image) so that the
oracle for the crop geometry is where the dots were drawn."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from conftest import ROOT, photo
from pose_ros.core import encode
from pose_ros.core.pipeline import PipelineConfig
from pose_ros.core.skeletons import BODY_25, COCO_17, OPENPOSE_18, PAF_CHANNELS, TRT_POSE_18, Layout
from pose_ros.core.spec_pipeline import SpecError, SpecPipeline, load_spec, make_pipeline, parse_spec

MODELS_DIR = ROOT / "config" / "models"

# a standing figure, unit height ~1, by joint name (x right, y down)
TEMPLATE = {
    "nose": (0, -0.45), "neck": (0, -0.3), "right_shoulder": (-0.14, -0.3), "right_elbow": (-0.19, -0.1),
    "right_wrist": (-0.22, 0.08), "left_shoulder": (0.14, -0.3), "left_elbow": (0.19, -0.1),
    "left_wrist": (0.22, 0.08), "right_hip": (-0.09, 0.05), "right_knee": (-0.1, 0.28),
    "right_ankle": (-0.11, 0.5), "left_hip": (0.09, 0.05), "left_knee": (0.1, 0.28),
    "left_ankle": (0.11, 0.5), "right_eye": (-0.05, -0.5), "left_eye": (0.05, -0.5),
    "right_ear": (-0.11, -0.46), "left_ear": (0.11, -0.46), "mid_hip": (0, 0.05),
    "left_big_toe": (0.15, 0.56), "left_small_toe": (0.19, 0.55), "left_heel": (0.09, 0.54),
    "right_big_toe": (-0.15, 0.56), "right_small_toe": (-0.19, 0.55), "right_heel": (-0.09, 0.54),
}


def figure(layout: Layout, centre, height: float) -> np.ndarray:
    """(K, 2) image pixels of the template figure."""
    return np.array([TEMPLATE[n] for n in layout.names]) * height + np.asarray(centre, float)


def letterbox(xy, img_wh, in_wh):
    """Image pixels -> letterboxed input pixels, computed by hand: uniform scale, centred."""
    s = min(in_wh[0] / img_wh[0], in_wh[1] / img_wh[1])
    pad = ((in_wh[0] - img_wh[0] * s) / 2, (in_wh[1] - img_wh[1] * s) / 2)
    return np.asarray(xy, float) * s + pad


# ----------------------------------------------------------------------------- ONNX builders
def _image_input(h: int, w: int, nhwc: bool = False, batch="N"):
    shape = [batch, h, w, 3] if nhwc else [batch, 3, h, w]
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)


def _save(path: Path, nodes, inputs, outputs, inits) -> Path:
    g = helper.make_graph(nodes, "spec_test", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def constant_model(path: Path, outputs: dict[str, np.ndarray], h: int, w: int, nhwc=False,
                   batch="N") -> Path:
    """Outputs = the given constants (leading axis 1, broadcast over the batch): each output
    is const + 0 * mean(image) so the graph depends on its input."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["mz"])]
    inits = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    outs = []
    for i, (name, arr) in enumerate(outputs.items()):
        arr = np.asarray(arr, np.float32)
        inits += [numpy_helper.from_array(arr, f"c{i}"),
                  numpy_helper.from_array(np.array([-1] + [1] * (arr.ndim - 1), np.int64), f"s{i}")]
        nodes += [helper.make_node("Reshape", ["mz", f"s{i}"], [f"z{i}"]),
                  helper.make_node("Add", [f"c{i}", f"z{i}"], [name])]
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * arr.ndim))
    return _save(path, nodes, [_image_input(h, w, nhwc, batch)], outs, inits)


def dot_model(path: Path, h: int, w: int, k: int, family: str, stride: int = 2, batch="N") -> Path:
    """Top-down model computed from the input: map_red = R - G - B, map_blue = B - R - G (a
    1x1 conv); joints 0 .. k/2-1 read the red map, the rest the blue map. topdown_heatmap:
    heatmaps = every stride-th pixel of those maps (map pixel j = input pixel stride * j, the decoder's convention); simcc: simcc_x = max over rows, simcc_y =
    max over columns (split ratio 1)."""
    wconv = np.array([[1, -1, -1], [-1, -1, 1]], np.float32).reshape(2, 3, 1, 1)
    sel = np.array([0] * (k // 2) + [1] * (k - k // 2), np.int64)
    inits = [numpy_helper.from_array(wconv, "W"), numpy_helper.from_array(sel, "sel")]
    nodes = [helper.make_node("Conv", ["image", "W"], ["rb"])]
    if family == "topdown_heatmap":
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                  (("st", [0, 0]), ("en", [1 << 30, 1 << 30]), ("ax", [2, 3]), ("sp", [stride, stride]))]
        nodes += [helper.make_node("Slice", ["rb", "st", "en", "ax", "sp"], ["pooled"]),
                  helper.make_node("Gather", ["pooled", "sel"], ["heatmaps"], axis=1)]
        outs = [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [None] * 4)]
    else:
        nodes += [helper.make_node("ReduceMax", ["rb"], ["mx"], axes=[2], keepdims=0),
                  helper.make_node("ReduceMax", ["rb"], ["my"], axes=[3], keepdims=0),
                  helper.make_node("Gather", ["mx", "sel"], ["simcc_x"], axis=1),
                  helper.make_node("Gather", ["my", "sel"], ["simcc_y"], axis=1)]
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None] * 3)
                for n in ("simcc_x", "simcc_y")]
    return _save(path, nodes, [_image_input(h, w, batch=batch)], outs, inits)


def draw_dot(img: np.ndarray, xy, colour, sigma: float) -> None:
    """Blend a Gaussian dot of ``colour`` into img in place (peak exactly at xy)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * sigma**2))[..., None]
    img[:] = np.round(img * (1 - g) + np.asarray(colour, float) * g).astype(np.uint8)


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- model factories
def openpose_outputs(layout: Layout, people_in: list[np.ndarray], in_wh, stride: int) -> dict:
    """OpenPose-style single net_output (K heatmaps + background + PAFs in the layout's channel
    order) encoding people given in input pixels."""
    hw = (in_wh[1] // stride, in_wh[0] // stride)
    pts = np.stack(people_in) / stride
    hm = encode.gaussian_heatmaps(pts, hw, sigma=1.5)
    paf = encode.paf_fields(pts, layout.limbs, hw, width=1.0)
    ch = PAF_CHANNELS.get(layout.name, [(2 * i, 2 * i + 1) for i in range(len(layout.limbs))])
    pafs = np.zeros_like(paf)
    for li, (cx, cy) in enumerate(ch):
        pafs[cx], pafs[cy] = paf[2 * li], paf[2 * li + 1]
    bg = 1.0 - hm.max(0, keepdims=True)
    return {"net_output": np.concatenate([hm, bg, pafs])[None]}


def openpose_spec(tmp: Path, layout: Layout, people_img, img_wh, in_wh=(320, 320), stride=4) -> Path:
    people_in = [letterbox(p, img_wh, in_wh) for p in people_img]
    outs = openpose_outputs(layout, people_in, in_wh, stride)
    constant_model(tmp / f"op_{layout.name}.onnx", outs, in_wh[1], in_wh[0])
    k = len(layout)
    return write_spec(tmp / f"op_{layout.name}.yaml", {
        "family": "openpose_paf", "model": f"op_{layout.name}.onnx", "keypoints": layout.name,
        "input": {"width": in_wh[0], "height": in_wh[1], "color": "BGR", "scale": 256.0, "mean": 0.5},
        "outputs": {"heatmaps": {"name": "net_output", "channels": [0, k]},
                    "pafs": {"name": "net_output", "channels": [k + 1, k + 1 + 2 * len(layout.limbs)]}}})


def yolo_rows(people_in: list[np.ndarray], scores, k: int, pad_to: int = 12) -> np.ndarray:
    """(1, 5 + 3K, N) ultralytics-style rows: box around each person's keypoints, score,
    keypoints with conf 0.9; padded with zero-score rows."""
    rows = []
    for p, s in zip(people_in, scores, strict=True):
        x0, y0 = p.min(0) - 5
        x1, y1 = p.max(0) + 5
        rows.append(np.concatenate([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, s],
                                    np.column_stack([p, np.full(k, 0.9)]).ravel()]))
    rows += [np.zeros(5 + 3 * k)] * (pad_to - len(rows))
    return np.array(rows, np.float32).T[None]


def yolo_spec(tmp: Path, people_img, scores, img_wh, in_wh=(320, 256), name="yolo", layout=COCO_17) -> Path:
    k = len(layout)
    rows = yolo_rows([letterbox(p, img_wh, in_wh) for p in people_img], scores, k)
    constant_model(tmp / f"{name}.onnx", {"output0": rows}, in_wh[1], in_wh[0])
    return write_spec(tmp / f"{name}.yaml", {
        "family": "yolo_pose", "model": f"{name}.onnx", "keypoints": layout.name,
        "input": {"width": in_wh[0], "height": in_wh[1], "pad_value": 114},
        "outputs": {"detections": "output0"}})


def cfg(**kw) -> PipelineConfig:
    return PipelineConfig(backend="onnxruntime", static_image_mode=True, **kw)


def match(decoded: list, truth: list[np.ndarray]) -> list[float]:
    """Max keypoint error of each true person against its nearest decoded person."""
    errs = []
    for t in truth:
        e = [np.nanmax(np.linalg.norm(p.keypoints - t, axis=1)) for p in decoded]
        errs.append(min(e))
    return errs


# ----------------------------------------------------------------------------- tests: families
@pytest.mark.parametrize("layout", [OPENPOSE_18, BODY_25])
def test_openpose_paf_two_people_letterboxed(tmp_path, layout):
    img_wh = (320, 240)
    truth = [figure(layout, (95, 125), 170), figure(layout, (215, 120), 160)]
    pipe = SpecPipeline(openpose_spec(tmp_path, layout, truth, img_wh), cfg())
    people = pipe(np.zeros((240, 320, 3), np.uint8))
    assert len(people) == 2
    assert all(p.layout is pipe.layout and p.layout.name == layout.name for p in people)
    errs = match(people, truth)
    assert max(errs) < 0.5, errs  # image pixels (hm stride 4, letterbox scale 1)
    assert people[0].track_id != people[1].track_id
    # each person's joints all come from one true figure (grouping), and the NaN fields
    for p in people:
        assert np.isnan(p.world).all() and p.world.shape == (len(layout), 3)
        assert np.isnan(p.z).all() and np.isnan(p.presence).all()
        assert p.visibility.min() > 0.9


def test_trt_pose_topology_nhwc_outputs(tmp_path):
    """trt_pose: topology json (1-based skeleton), separate cmap / paf outputs with the y
    component first, outputs in NHWC, image stretched by letterbox with scale 0.5."""
    img_wh, in_wh, stride = (448, 448), (224, 224), 4
    truth = [figure(TRT_POSE_18, (130, 220), 300), figure(TRT_POSE_18, (320, 230), 280)]
    pts = np.stack([letterbox(p, img_wh, in_wh) for p in truth]) / stride
    hw = (56, 56)
    cmap = encode.gaussian_heatmaps(pts, hw, sigma=1.5)
    paf = encode.paf_fields(pts, TRT_POSE_18.limbs, hw, width=1.0)
    trt = np.empty_like(paf)
    trt[0::2], trt[1::2] = paf[1::2], paf[0::2]  # trt_pose: (y, x) per link
    constant_model(tmp_path / "trt.onnx", {"cmap": cmap.transpose(1, 2, 0)[None],
                                           "paf": trt.transpose(1, 2, 0)[None]}, 224, 224)
    shutil.copy(MODELS_DIR / "human_pose.json", tmp_path / "human_pose.json")
    spec = write_spec(tmp_path / "trt.yaml", {
        "family": "openpose_paf", "model": "trt.onnx",
        "keypoints": {"topology": "human_pose.json", "name": "trt_pose_18"},
        "input": {"width": 224, "height": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "outputs": {"heatmaps": "cmap", "pafs": "paf", "layout": "NHWC"}})
    s = load_spec(spec)
    assert s.layout.names == TRT_POSE_18.names and s.layout.limbs == TRT_POSE_18.limbs
    assert s.paf_channels == PAF_CHANNELS["trt_pose_18"]
    people = SpecPipeline(s, cfg())(np.zeros((448, 448, 3), np.uint8))
    assert len(people) == 2
    assert max(match(people, truth)) < 1.0  # 2 image px per heatmap... 8 image px per hm px


def test_yolo_pose_letterbox_threshold_and_nms(tmp_path):
    img_wh, in_wh = (640, 360), (320, 256)
    a, b = figure(COCO_17, (200, 180), 250), figure(COCO_17, (450, 170), 230)
    dup = a + 3.0  # a duplicate of a (IoU ~0.95) with a lower score: NMS drops it
    low = figure(COCO_17, (560, 200), 200)  # below the score threshold
    spec = yolo_spec(tmp_path, [b, a, dup, low], [0.8, 0.9, 0.7, 0.1], img_wh, in_wh)
    people = SpecPipeline(spec, cfg())(np.full((360, 640, 3), 50, np.uint8))
    assert len(people) == 2
    assert [round(p.score, 3) for p in people] == [0.9, 0.8]  # best first
    assert np.abs(people[0].keypoints - a).max() < 1e-3
    assert np.abs(people[1].keypoints - b).max() < 1e-3
    np.testing.assert_allclose(people[0].visibility, 0.9, atol=1e-6)


def topdown_dot_scene(tmp: Path):
    """The astronaut photo with a red dot (joints 0-7) and a blue dot (joints 8-16) drawn in,
    and a topdown_heatmap spec whose model lights them up: (image, red xy, blue xy, spec)."""
    img = photo("astronaut").copy()
    red, blue = (250.0, 190.0), (330.0, 300.0)
    draw_dot(img, red, (255, 0, 0), 25)
    draw_dot(img, blue, (0, 0, 255), 25)
    dot_model(tmp / "td.onnx", 256, 192, 17, "topdown_heatmap", stride=2)
    spec = write_spec(tmp / "td.yaml", {
        "family": "topdown_heatmap", "model": "td.onnx", "keypoints": "coco_17",
        "input": {"width": 192, "height": 256}, "outputs": {"heatmaps": "heatmaps"},
        "decoder": {"refine": "log_parabola"}})
    return img, red, blue, spec


def test_topdown_heatmap_blazepose_detector_astronaut(tmp_path, models):
    """BlazePose detector on a real photo -> rotated crop -> dot heatmaps -> back to the image:
    the decoded joints sit on the dots drawn in the photo."""
    img, red, blue, spec = topdown_dot_scene(tmp_path)
    pipe = make_pipeline(cfg(model_spec=str(spec), max_persons=1))
    assert isinstance(pipe, SpecPipeline) and "detector" in pipe.backend_summary
    people = pipe(img)
    assert len(people) == 1
    p = people[0]
    assert abs(p.roi.angle) > 0.05  # a rotated crop: the inverse map is exercised
    err_red = np.linalg.norm(p.keypoints[:8] - red, axis=1).max()
    err_blue = np.linalg.norm(p.keypoints[8:] - blue, axis=1).max()
    px = p.roi.size / 192  # image pixels per crop pixel
    # measured 0.96 / 0.12 image px (the photo under the red dot biases it), px = 6.7
    assert err_red < 0.25 * px and err_blue < 0.25 * px, (err_red, err_blue, px)


def test_simcc_with_yolo_detector_two_people_batch1_export(tmp_path):
    """simcc crops from a yolo_pose detector spec (two boxes -> two crops), and a model
    exported with a fixed batch of 1 (run one crop at a time)."""
    img = np.full((480, 640, 3), 90, np.uint8)
    dots = {"a": ((120.0, 180.0), (170.0, 330.0)), "b": ((470.0, 200.0), (520.0, 300.0))}
    for r, bl in dots.values():
        draw_dot(img, r, (255, 0, 0), 5)
        draw_dot(img, bl, (0, 0, 255), 5)
    # detector boxes (from keypoint-free rows: keypoints don't matter for the detector)
    box_a = figure(COCO_17, (150, 250), 280)
    box_b = figure(COCO_17, (495, 250), 260)
    yolo_spec(tmp_path, [box_a, box_b], [0.9, 0.8], (640, 480), (320, 240), name="det")
    dot_model(tmp_path / "sc.onnx", 256, 192, 17, "simcc", batch=1)
    spec = write_spec(tmp_path / "sc.yaml", {
        "family": "simcc", "model": "sc.onnx", "keypoints": "coco_17", "detector": "det.yaml",
        "input": {"width": 192, "height": 256}, "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
        "decoder": {"min_score": 0.3}})
    pipe = SpecPipeline(spec, cfg())
    assert not pipe.batched and pipe.det_pipeline is not None
    people = pipe(img)
    assert len(people) == 2
    for p in people:
        near = min(dots.values(), key=lambda d: np.hypot(*(p.keypoints[0] - d[0])))
        px = p.roi.size / 192  # split ratio 1: half a bin of rounding at most
        assert np.linalg.norm(p.keypoints[:8] - near[0], axis=1).max() <= 0.75 * px
        assert np.linalg.norm(p.keypoints[8:] - near[1], axis=1).max() <= 0.75 * px


def test_track_ids_follow_people_between_frames(tmp_path):
    img_wh = (320, 240)
    truth = [figure(OPENPOSE_18, (95, 125), 170), figure(OPENPOSE_18, (215, 120), 160)]
    pipe = SpecPipeline(openpose_spec(tmp_path, OPENPOSE_18, truth, img_wh),
                        PipelineConfig(backend="onnxruntime", static_image_mode=False))
    frame = np.zeros((240, 320, 3), np.uint8)
    first = {round(float(p.keypoints[1, 0])): p.track_id for p in pipe(frame)}
    second = {round(float(p.keypoints[1, 0])): p.track_id for p in pipe(frame)}
    assert first == second and len(set(first.values())) == 2
    pipe.reset()
    third = {round(float(p.keypoints[1, 0])): p.track_id for p in pipe(frame)}
    assert not set(third.values()) & set(first.values())


# ----------------------------------------------------------------------------- shipped specs
@pytest.mark.parametrize("name", sorted(p.name for p in MODELS_DIR.glob("*.yaml")))
def test_shipped_spec_runs_with_a_matching_model(tmp_path, name):
    """Each config/models/*.yaml, pointed at an ONNX model with the outputs it names (shapes
    of the real model family), loads and runs."""
    data = yaml.safe_load((MODELS_DIR / name).read_text())
    shutil.copy(MODELS_DIR / "human_pose.json", tmp_path / "human_pose.json")
    data["model"] = "m.onnx"
    if data.get("detector") == "blazepose":
        data["detector"] = "det.yaml"
        yolo_spec(tmp_path, [figure(COCO_17, (160, 120), 150)], [0.9], (320, 240), (320, 240), "det")
    inp = data["input"]
    w, h = inp["width"], inp["height"]
    fam, outs = data["family"], data["outputs"]
    k = {"coco_17": 17, "openpose_18": 18, "body_25": 25}.get(data["keypoints"], 18) \
        if isinstance(data["keypoints"], str) else 18
    if fam == "openpose_paf":
        layout = {"openpose_18": OPENPOSE_18, "body_25": BODY_25}.get(data["keypoints"], TRT_POSE_18) \
            if isinstance(data["keypoints"], str) else TRT_POSE_18
        stride = 8 if w > 300 else 4
        person = [letterbox(figure(layout, (160, 120), 170), (320, 240), (w, h))]
        if "net_output" in str(outs):
            arrays = openpose_outputs(layout, person, (w, h), stride)
        else:
            full = openpose_outputs(layout, person, (w, h), stride)["net_output"]
            arrays = {"cmap": full[:, :k], "paf": full[:, k + 1:]}
    elif fam == "yolo_pose":
        arrays = {"output0": yolo_rows([letterbox(figure(COCO_17, (160, 120), 170), (320, 240), (w, h))],
                                       [0.9], 17, pad_to=8400)}
    elif fam == "topdown_heatmap":
        arrays = {outs["heatmaps"]: encode.gaussian_heatmaps(
            figure(COCO_17, (w / 8, h / 8), h / 5), (h // 4, w // 4))[None]}
    else:
        tx, ty = encode.simcc_targets(figure(COCO_17, (w / 2, h / 2), h * 0.8), (h, w), 2.0)
        arrays = {outs["simcc_x"]: tx[None], outs["simcc_y"]: ty[None]}
    constant_model(tmp_path / "m.onnx", arrays, h, w)
    write_spec(tmp_path / name, data)
    spec = load_spec(tmp_path / name)
    assert spec.family == fam and len(spec.layout) == k
    people = SpecPipeline(spec, cfg())(np.zeros((240, 320, 3), np.uint8))
    assert len(people) == 1 and people[0].layout.name == spec.layout.name
    assert np.isfinite(people[0].keypoints).all()


# ----------------------------------------------------------------------------- validation
def _base(tmp_path) -> dict:
    constant_model(tmp_path / "y.onnx", {"output0": yolo_rows([figure(COCO_17, (50, 50), 40)], [0.9], 17)},
                   64, 64)
    return {"family": "yolo_pose", "model": "y.onnx", "keypoints": "coco_17",
            "input": {"width": 64, "height": 64}, "outputs": {"detections": "output0"}}


@pytest.mark.parametrize("change, message", [
    ({"family": "openpose"}, "family must be one of openpose_paf"),
    ({"modle": "x"}, "unknown key(s) ['modle']"),
    ({"model": "missing.onnx"}, "does not exist"),
    ({"model": "y.tflite"}, "must be an .onnx file"),
    ({"keypoints": "coco17"}, "unknown layout 'coco17'"),
    ({"keypoints": {"names": ["a", "b"], "limbs": [["a", "c"]]}}, "joint 'c' is not in names"),
    ({"keypoints": {"names": ["a", "b"], "limbs": [[0, 2]]}}, "indexes past the 2 joints"),
    ({"input": {"width": 64}}, "input.width and input.height"),
    ({"input": {"width": 64, "height": 64, "layout": "CHW"}}, "input.layout must be NCHW or NHWC"),
    ({"input": {"width": 64, "height": 64, "std": [1, 0, 1]}}, "input.std must be > 0"),
    ({"input": {"width": 64, "height": 64, "mean": [1, 2]}}, "one number or three"),
    ({"outputs": {"heatmaps": "output0"}}, "not outputs of family yolo_pose"),
    ({"outputs": {}}, "missing detections"),
    ({"decoder": {"iou": 0.5}}, "unknown option(s) ['iou']"),
    ({"detector": "blazepose"}, "only top-down families"),
])
def test_spec_errors_name_the_fix(tmp_path, change, message):
    data = _base(tmp_path)
    data.update(change)
    with pytest.raises(SpecError) as e:
        parse_spec(data, "bad.yaml", tmp_path)
    assert message in str(e.value) and "bad.yaml" in str(e.value)


def test_output_name_and_backend_errors(tmp_path):
    data = _base(tmp_path)
    data["outputs"] = {"detections": "output1"}
    with pytest.raises(SpecError, match=r"'output1' is not an output of y.onnx; its outputs are \['output0'\]"):
        SpecPipeline(parse_spec(data, "s.yaml", tmp_path), cfg())
    data["outputs"] = {"detections": "output0"}
    with pytest.raises(SpecError, match="backend 'litert' cannot run the ONNX model"):
        SpecPipeline(parse_spec(data, "s.yaml", tmp_path), PipelineConfig(backend="litert"))
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_openvino_runs_a_spec_model(tmp_path):
    pytest.importorskip("openvino")
    img_wh, in_wh = (640, 360), (320, 256)
    a = figure(COCO_17, (200, 180), 250)
    spec = yolo_spec(tmp_path, [a], [0.9], img_wh, in_wh)
    people = SpecPipeline(spec, PipelineConfig(backend="openvino", static_image_mode=True))(
        np.zeros((360, 640, 3), np.uint8))
    assert len(people) == 1 and np.abs(people[0].keypoints - a).max() < 1e-3


# ----------------------------------------------------------------------------- node over DDS
@pytest.mark.parametrize("family", ["openpose_paf", "yolo_pose"])
def test_spec_model_through_pose_node(tmp_path, family):
    """pose_node with model_spec: the spec model's people arrive as SkeletonArray over DDS in
    the spec's layout, 2D where encoded; 3D from the aligned depth (no monocular 3D: NaN world)."""
    from test_node import Harness, depth_msg

    from pose_ros.msg import Keypoint

    img_wh = (320, 240)
    if family == "openpose_paf":
        layout = OPENPOSE_18
        truth = [figure(layout, (95, 125), 170), figure(layout, (215, 120), 160)]
        spec = openpose_spec(tmp_path, layout, truth, img_wh)
        tol = 0.5
    else:
        layout = COCO_17
        truth = [figure(layout, (95, 125), 170), figure(layout, (215, 120), 160)]
        spec = yolo_spec(tmp_path, truth, [0.9, 0.8], img_wh)
        tol = 1e-3
    h = Harness(model_spec=str(spec), use_depth=True)
    try:
        frame = np.zeros((240, 320, 3), np.uint8)
        depth = depth_msg(320, 240, np.full((240, 320), 2500, np.uint16))
        got = []

        def done():
            with h.lock:
                got[:] = [m for m in h.got["skeletons"] if len(m.skeletons) == 2]
            return bool(got)
        assert h.until(done, send=lambda: h.send(image=frame, depth=depth), timeout=30)
        msg = got[-1]
        for sk in msg.skeletons:
            assert sk.layout == layout.name and [k.name for k in sk.keypoints] == list(layout.names)
        xy = [np.array([[k.x, k.y] for k in sk.keypoints]) for sk in msg.skeletons]
        for t in truth:
            assert min(np.abs(p - t).max() for p in xy) < tol
        kp = msg.skeletons[0].keypoints[layout.index("left_wrist")]
        assert kp.position_source == Keypoint.SOURCE_DEPTH and abs(kp.position.z - 2.5) < 1e-6
        assert math.isfinite(msg.skeletons[0].body_pose.orientation.w)
        # without depth: 2D kept, no 3D (spec models have no world landmarks for PnP)
        n = h.count("skeletons")

        def no_3d():
            with h.lock:
                new = [m for m in h.got["skeletons"][n:] if len(m.skeletons) == 2]
            return any(all(k.position_source == Keypoint.SOURCE_NONE and math.isnan(k.position.z)
                           for sk in m.skeletons for k in sk.keypoints) for m in new)
        assert h.until(no_3d, send=lambda: h.send(image=frame), timeout=20)
    finally:
        h.close()


# ----------------------------------------------------------------------------- pose-ros eval
def test_pose_ros_eval_on_a_synthetic_coco_folder(tmp_path, capsys):
    """`pose-ros eval` on 3 images written here: AP / AR equal pycocotools' COCOeval on the
    results it wrote, PCK@0.2 equals the hand count below."""
    import cv2
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from pose_ros.cli import main

    w, h = 320, 256
    p1, p2 = figure(COCO_17, (90, 130), 180), figure(COCO_17, (230, 125), 170)
    spec = yolo_spec(tmp_path, [p1, p2], [0.9, 0.6], (w, h), (w, h))  # same predictions every image
    img_dir = tmp_path / "images"
    img_dir.mkdir()

    def ann(aid, img, xy, labelled=None):
        v = np.full(17, 2) if labelled is None else np.where(labelled, 2, 0)
        kp = np.column_stack([np.where(v[:, None] > 0, xy, 0), v]).ravel()
        x0, y0 = xy[v > 0].min(0)
        x1, y1 = xy[v > 0].max(0)
        return {"id": aid, "image_id": img, "category_id": 1, "iscrowd": 0, "num_keypoints": int((v > 0).sum()),
                "keypoints": kp.round(2).tolist(), "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": float((x1 - x0) * (y1 - y0) * 0.6)}
    moved = p1.copy()
    moved[[9, 10]] += (0, 60)  # wrists 60 px off: misses at 0.2 x ~180 px
    labelled = np.ones(17, bool)
    labelled[[1, 2, 3, 4, 15]] = False  # 12 labelled joints
    far = figure(COCO_17, (160, 128), 120)
    far[:, 0] = far[:, 0] * 0.3 + 280  # squeezed to the right edge: matches no prediction
    anns = [ann(1, 1, p1), ann(2, 1, p2), ann(3, 2, moved, labelled), ann(4, 3, far)]
    images = []
    for i in (1, 2, 3):
        cv2.imwrite(str(img_dir / f"{i:06d}.png"), np.full((h, w, 3), 40 * i, np.uint8))
        images.append({"id": i, "file_name": f"{i:06d}.png", "width": w, "height": h})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.names),
                          "skeleton": [[a + 1, b + 1] for a, b in COCO_17.limbs]}]}
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    res_file = tmp_path / "results.json"
    rc = main(["eval", "--coco-dir", str(img_dir), "--annotations", str(tmp_path / "ann.json"),
               "--model-spec", str(spec), "--backend", "onnxruntime", "--results", str(res_file)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "eval" in err and "3/3" in err  # the tqdm progress bar
    printed = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:]}
    assert "images 3, ground-truth people 4, detections 6" in out
    # the results hold the model's keypoints (letterbox scale 1: input = image pixels)
    results = json.loads(res_file.read_text())
    assert len(results) == 6
    np.testing.assert_allclose(np.array(results[0]["keypoints"]).reshape(17, 3)[:, :2], p1, atol=1e-3)
    # pycocotools on the same results
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(results), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    capsys.readouterr()
    for name, value in zip(("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"),
                           ev.stats, strict=True):
        assert printed[name] == pytest.approx(value, abs=1e-4), name
    assert 0.3 < printed["AP"] < 0.95  # neither trivial nor perfect
    # PCK@0.2 by hand: image 1 all 34 hit; image 2 12 labelled, 2 wrists miss; image 3 17 miss
    assert printed["PCK@0.2"] == pytest.approx((34 + 10) / (34 + 12 + 17), abs=1e-4)


def test_tf_frames_skip_joints_a_spec_layout_lacks():
    """tf_joints name BlazePose joints; a spec layout without some of them (here no nose)
    still gets body_<id> and the joints it has."""
    from std_msgs.msg import Header

    from pose_ros.core import lift
    from pose_ros.core.models import blazepose as bp
    from pose_ros.core.pipeline import Person
    from pose_ros.ros import convert

    names = tuple(n for n in COCO_17.names if n != "nose")
    lay = Layout("no_nose", names, ())
    pos = np.array([[TEMPLATE[n][0], TEMPLATE[n][1], 2.0] for n in names])
    k = len(names)
    person = Person(7, pos[:, :2].astype(np.float32), np.full(k, np.nan), np.ones(k), np.full(k, np.nan),
                    np.full((k, 3), np.nan), 0.9, bp.Roi(0, 0, 1, 0), np.zeros(4, np.float32), lay)
    body = lift.body_frame(pos, lay)
    out = convert.transforms(Header(frame_id="cam"), [person], [pos], [body],
                             ["nose", "left_wrist", "right_ankle"])
    assert [t.child_frame_id for t in out] == ["body_7", "l_wrist_7", "r_ankle_7"]


def test_roi_matrix_matches_blazepose_crop():
    """roi_matrix (image -> crop) sends the rotated ROI's corners (bp.Roi.corners) to the
    crop's corners and warps the same pixels as BlazePose's own crop (bp.crop); a taller
    192 x 256 crop keeps the ROI square centred across its width."""
    import cv2

    from pose_ros.core.models import blazepose as bp
    from pose_ros.core.spec_pipeline import roi_matrix

    roi = bp.Roi(260.0, 240.0, 300.0, 0.4)
    m = roi_matrix(roi, 256, 256)
    corners = cv2.transform(roi.corners().reshape(-1, 1, 2).astype(np.float64), m).reshape(-1, 2)
    np.testing.assert_allclose(corners, [[0, 0], [256, 0], [256, 256], [0, 256]], atol=1e-3)  # corners are float32
    img = photo("astronaut")
    ours = cv2.warpAffine(img, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(ours.astype(int) - bp.crop(img, roi, 256).astype(int)).max() <= 1
    tall = roi_matrix(roi, 192, 256)
    c2 = cv2.transform(roi.corners().reshape(-1, 1, 2).astype(np.float64), tall).reshape(-1, 2)
    np.testing.assert_allclose(c2, [[0, 32], [192, 32], [192, 224], [0, 224]], atol=1e-3)


def test_pose_ros_infer_with_model_spec(tmp_path):
    """`pose-ros infer --model-spec`: the spec model's people in the COCO results and JSON."""
    import cv2

    from pose_ros.cli import main

    truth = figure(OPENPOSE_18, (95, 125), 170)
    spec = openpose_spec(tmp_path, OPENPOSE_18, [truth], (320, 240))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((240, 320, 3), np.uint8))
    rc = main(["infer", str(tmp_path / "a.png"), "--model-spec", str(spec), "--backend", "onnxruntime",
               "--out", str(tmp_path / "out"), "--coco", str(tmp_path / "c.json"),
               "--json", str(tmp_path / "f.json"), "--quiet"])
    assert rc == 0 and (tmp_path / "out" / "a_pose.png").is_file()
    res = json.loads((tmp_path / "c.json").read_text())
    coco_xy = np.array(res[0]["keypoints"]).reshape(17, 3)[:, :2]
    from pose_ros.core.skeletons import mapping
    np.testing.assert_allclose(coco_xy, truth[mapping(OPENPOSE_18, COCO_17)], atol=0.5)
    frames = json.loads((tmp_path / "f.json").read_text())
    assert frames[0]["persons"][0]["layout"] == "openpose_18"


def test_train_demo_export_runs_through_a_spec(tmp_path):
    """A `pose-ros train-demo` net exported to ONNX (export_onnx; untrained weights, seeded:
    the plumbing, not the accuracy) runs through a model spec. CPM as topdown_heatmap: the
    spec pipeline's joints equal torch's own output on BlazePose-style square crops (bp.crop)
    decoded by HeatmapArgmax and mapped back with bp.crop_matrix. OpenPose as openpose_paf
    with sequential PAF channels: loads and runs."""
    torch = pytest.importorskip("torch")
    from pose_ros.core.datasets import normalise_image
    from pose_ros.core.decode import HeatmapArgmax
    from pose_ros.core.models import blazepose as bp
    from pose_ros.core.train_demo import default_config, export_onnx, make_net

    torch.manual_seed(0)
    c = default_config("cpm", steps=0)
    net = make_net(c).eval()
    export_onnx(net, c, tmp_path / "cpm.onnx")
    s = c.input_size
    yolo_spec(tmp_path, [figure(COCO_17, (160, 130), 150)], [0.9], (320, 240), (320, 240), "det")
    spec = write_spec(tmp_path / "cpm.yaml", {
        "family": "topdown_heatmap", "model": "cpm.onnx", "keypoints": "coco_17", "detector": "det.yaml",
        "input": {"width": s, "height": s, "scale": 255.0, "mean": 0.5, "std": 1.0},
        "outputs": {"heatmaps": "heatmaps"}, "decoder": {"min_score": -1e9}})  # untrained: keep all
    img = photo("astronaut")[100:340, 100:420].copy()
    pipe = SpecPipeline(spec, cfg())
    people = pipe(img)
    assert len(people) == 1
    roi = people[0].roi
    with torch.no_grad():
        hm = net(torch.from_numpy(normalise_image(bp.crop(img, roi, s, cv2_border()))[None]))[-1][0].numpy()
    kp = HeatmapArgmax("parabola", stride=c.stride)(hm)
    m = bp.crop_matrix(roi, s)  # crop -> image
    expect = kp.xy @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(people[0].keypoints, expect, atol=0.05)

    o = default_config("openpose", steps=0)
    export_onnx(make_net(o).eval(), o, tmp_path / "op.onnx")
    spec = write_spec(tmp_path / "op.yaml", {
        "family": "openpose_paf", "model": "op.onnx",
        "keypoints": {"layout": "openpose_18", "paf_channels": "sequential"},
        "input": {"width": o.input_size, "height": o.input_size, "mean": 0.5},
        "outputs": {"heatmaps": "heatmaps", "pafs": "pafs"}})
    loaded = load_spec(spec)
    assert loaded.layout.name == "openpose_18" and loaded.paf_channels[1] == (2, 3)
    assert isinstance(SpecPipeline(loaded, cfg())(img), list)


def cv2_border():
    import cv2

    return cv2.BORDER_CONSTANT


def test_trained_train_demo_checkpoint_runs_through_a_spec(tmp_path):
    """Issue 11 item 4: a *trained* `train-demo` OpenPose net (short seeded training; the
    checkpoint saved, reloaded, exported to ONNX) runs through an openpose_paf spec with the
    layout's default PAF channel order (what train-demo writes), and the people it finds
    through the spec are where the synthetic figures were drawn."""
    pytest.importorskip("torch")
    from pose_ros.core.synth import render_scene
    from pose_ros.core.train_demo import default_config, export_onnx, load_checkpoint, save_checkpoint, train

    res = train(default_config("openpose", steps=150, val_size=16))
    assert res.trained["pck"] > res.untrained["pck"]  # it learned something
    net, c = load_checkpoint(save_checkpoint(res, tmp_path / "op.pt"))
    export_onnx(net.eval(), c, tmp_path / "op.onnx")
    spec = write_spec(tmp_path / "op.yaml", {
        "family": "openpose_paf", "model": "op.onnx", "keypoints": "openpose_18",
        "input": {"width": c.input_size, "height": c.input_size, "scale": 255.0, "mean": 0.5, "std": 1.0},
        "outputs": {"heatmaps": "heatmaps", "pafs": "pafs"}})
    rng = np.random.default_rng(7)
    hits = total = 0
    for _ in range(8):
        scene = render_scene(rng, OPENPOSE_18, (c.input_size, c.input_size), n_people=(1, 1))
        found = SpecPipeline(spec, cfg(max_persons=3))(scene.image)
        total += 1
        if found:
            gt = scene.keypoints[0]
            ok = np.isfinite(found[0].keypoints).all(1) & scene.visible[0]
            err = np.linalg.norm(found[0].keypoints[ok] - gt[ok], axis=1)
            hits += bool(ok.sum() >= 6 and np.median(err) < 0.2 * c.input_size)
    assert hits >= total // 2, (hits, total)
