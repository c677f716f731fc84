"""Multi-person BlazePose pipeline on real photos: detector decoding, landmarks against the
LiteRT-run original models and against MediaPipe's own published output, ONNX /
onnxruntime parity, batching, tracking, and the `pose-ros infer` command."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, photo
from pose_ros.core.engines import BackendUnavailableError, OnnxRuntimeEngine, TorchEngine
from pose_ros.core.models import blazepose as bp
from pose_ros.core.pipeline import PipelineConfig, PosePipeline, _onnx_for
from pose_ros.core.skeletons import BLAZEPOSE_33

# MediaPipe 0.10.14 `mediapipe.solutions.pose.Pose(static_image_mode=True,
# model_complexity=1)` on the same photos (run in a separate venv; mediapipe cannot share
# ours). Pixel x, y of nose, left/right shoulder, left/right elbow.
MEDIAPIPE_REF = {
    "astronaut": {0: (222.7, 128.0), 11: (306.2, 256.6), 12: (112.7, 240.0), 14: (64.6, 413.6)},
    "camera": {0: (247.0, 169.6), 11: (219.6, 169.1), 12: (104.7, 181.8), 14: (142.5, 302.3)},
}


@pytest.fixture(scope="module")
def pipes(models):
    out = {}
    for backend in ("litert", "torch", "onnxruntime"):
        out[backend] = PosePipeline(PipelineConfig(backend=backend, static_image_mode=True, max_persons=4,
                                                   detector_tiles=0, refine_passes=0))  # MediaPipe's path
    return out


def test_anchors_match_mediapipe_layout():
    a = bp.ssd_anchors()
    assert a.shape == (2254, 2)
    # stride 8: 28 x 28 x 2 anchors, row-major, two per cell
    np.testing.assert_allclose(a[0], a[1])
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28], rtol=1e-6)
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28], rtol=1e-6)
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14], rtol=1e-6)  # stride 16 starts
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7], rtol=1e-6)  # 3 layers of stride 32 merged


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 4, 2))
    kps[1] += 1.0
    out = bp.weighted_nms(boxes, kps, np.array([0.9, 0.3, 0.8]), 0.3)
    assert len(out) == 2
    box, kp, score = out[0]
    assert score == 0.9
    np.testing.assert_allclose(box, [0.25, 0, 10.25, 10])  # (0.9*0 + 0.3*1) / 1.2
    np.testing.assert_allclose(kp, 0.25)


def test_roi_from_points_geometry():
    roi = bp.roi_from_points(np.array([100.0, 200.0]), np.array([100.0, 100.0]))  # upright
    assert roi.size == pytest.approx(2 * 100 * bp.ROI_SCALE) and roi.angle == pytest.approx(0)
    roi = bp.roi_from_points(np.array([100.0, 200.0]), np.array([200.0, 200.0]))  # lying right
    assert roi.angle == pytest.approx(np.pi / 2)
    # the crop's top-centre maps to the scale-point side
    m = bp.crop_matrix(roi, 256)
    top_centre = m[:, :2] @ [128, 0] + m[:, 2]
    assert top_centre[0] > roi.cx + 100


def test_detector_finds_the_astronaut(pipes, astronaut):
    dets = pipes["onnxruntime"].detect(astronaut)
    assert len(dets) == 1 and dets[0].score > 0.8
    x0, y0, x1, y1 = dets[0].box
    assert 100 < x0 < x1 < 320 and 0 < y0 < y1 < 300  # upper body / head region
    hip_centre, scale_point = dets[0].keypoints[:2]
    nose = MEDIAPIPE_REF["astronaut"][0]
    assert hip_centre[1] > 450 and scale_point[1] < nose[1]  # hips below, scale point above head
    roi = bp.roi_from_detection(dets[0])
    assert roi.size > 512 and abs(roi.angle) < 0.5  # an upright body-sized crop


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_landmarks_match_litert_reference_and_mediapipe(pipes, name):
    img = photo(name)
    ref = pipes["litert"](img)
    assert len(ref) == 1
    for backend in ("torch", "onnxruntime"):
        got = pipes[backend](img)
        assert len(got) == 1
        d = np.linalg.norm(got[0].keypoints - ref[0].keypoints, axis=1)
        assert d.max() < 2.0 and d.mean() < 0.5, f"{backend}: max {d.max():.2f} mean {d.mean():.2f} px"
        np.testing.assert_allclose(got[0].world, ref[0].world, atol=5e-3)
        assert abs(got[0].score - ref[0].score) < 1e-3
    # MediaPipe's XNNPACK may run the model in fp16 on this CPU (AVX512-FP16; the model is
    # tagged reduced_precision_support), so allow a few pixels against its own output.
    errs = {BLAZEPOSE_33.names[j]: float(np.hypot(*(ref[0].keypoints[j] - xy)))
            for j, xy in MEDIAPIPE_REF[name].items()}
    assert max(errs.values()) < 5.0 and np.mean(list(errs.values())) < 3.0, errs


def test_world_landmarks_are_metric_and_hip_centred(pipes, camera):
    p = pipes["onnxruntime"](camera)[0]
    hips = p.world[[23, 24]].mean(0)
    assert np.linalg.norm(hips) < 0.05
    shoulder_width = np.linalg.norm(p.world[11] - p.world[12])
    assert 0.2 < shoulder_width < 0.6  # metres, a human
    assert p.world[0, 1] < p.world[23, 1]  # nose above hips (y down)


def test_onnx_export_matches_torch(models, tmp_path, astronaut):
    from pose_ros.core.models.tflite_import import load_tflite

    for name, size, outs in (("pose_detection.tflite", 224, ["Identity", "Identity_1"]),
                             ("pose_landmark_full.tflite", 256, ["Identity", "Identity_1", "Identity_4"])):
        onnx_path = _onnx_for(models[name], outs, (1, size, size, 3), tmp_path)
        import onnx

        m = onnx.load(str(onnx_path))
        assert m.opset_import[0].version >= 17
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        x = np.stack([cv2.resize(astronaut, (size, size))] * 3).astype(np.float32) / 255
        ort_out = OnnxRuntimeEngine(onnx_path)(x)  # batch of 3 through a dynamic axis
        torch_out = TorchEngine(load_tflite(models[name], outs))(x)
        for a, b in zip(ort_out, torch_out, strict=True):
            assert np.abs(a - b).max() <= 2e-5 * np.abs(b).max() + 1e-4


class CountingEngine:
    """A real engine that records the batch sizes it was called with."""

    def __init__(self, engine):
        self.engine, self.batches = engine, []
        self.name, self.device, self.output_names = engine.name, engine.device, engine.output_names

    def __call__(self, x):
        self.batches.append(len(x))
        return self.engine(x)

    def close(self):
        self.engine.close()


def tiled(k: int) -> np.ndarray:
    """k people side by side in rows of two (astronaut and its mirror image)."""
    a = photo("astronaut")
    pair = np.concatenate([np.ascontiguousarray(a[:, ::-1]), a], 1)
    rows = [pair] * ((k + 1) // 2)
    img = np.concatenate(rows, 0)
    if k % 2:
        img[-512:, :512] = 0
    return np.ascontiguousarray(img)


def test_multi_person_tiled_image_batched(pipes):
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8,
                                       detector_tiles=0))  # whole-image detections only
    pipe.landmarker = CountingEngine(pipe.landmarker)
    img = tiled(2)
    persons = pipe(img)
    assert len(persons) == 2
    assert pipe.landmarker.batches == [2] * 3  # both people in one call per pass (2 refinements)
    xs = sorted(p.keypoints[0, 0] for p in persons)
    assert xs[0] < 512 < xs[1]  # one per tile
    assert len({p.track_id for p in persons}) == 2


def test_detector_tiles_find_small_people(models):
    img = np.ascontiguousarray(np.concatenate([tiled(2)] * 2, 0))  # 4 people, 1024 x 1024
    whole = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8,
                                        detector_tiles=0))
    tiles = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8,
                                        detector_tiles=3, detector_pyramid=False))
    tiles.detector = CountingEngine(tiles.detector)
    tiles.landmarker = CountingEngine(tiles.landmarker)
    found = tiles(img)
    assert len(found) == 4 > len(whole(img))
    assert tiles.detector.batches == [1 + 9]  # whole image + 3 x 3 tiles in one call
    assert len(tiles.landmarker.batches) == 1 + tiles.cfg.refine_passes  # one call per pass
    quadrants = {(bool(p.keypoints[0, 0] > 512), bool(p.keypoints[0, 1] > 512)) for p in found}
    assert len(quadrants) == 4  # one nose per tile of the 2 x 2 photo grid


def test_tracking_keeps_ids_and_skips_detector(models):
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", detect_every=5, max_persons=2))
    base = photo("astronaut")
    ran, ids = [], []
    for t in range(8):
        frame = np.ascontiguousarray(np.roll(base, 3 * t, axis=1))  # person drifts right
        persons = pipe(frame, t / 30)  # frame stamps: a loaded CPU must not look like stale frames
        ran.append(pipe.detector_ran)
        ids.append([p.track_id for p in persons])
    assert ids == [[ids[0][0]]] * 8 and 1 <= ids[0][0] < 2**31  # one stable (random) id
    assert ran == [True, False, False, False, False, True, False, False]  # every 5th frame
    static = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True))
    static(base)
    static(base)
    assert static.detector_ran


def test_config_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        PipelineConfig(backend="cuda-magic").validate()
    with pytest.raises(ValueError, match="max_persons"):
        PipelineConfig(max_persons=0).validate()
    with pytest.raises(ValueError, match=r"\.tflite or \.onnx"):
        PipelineConfig(landmark_model=str(tmp_path / "missing.onnx")).validate()


def test_gpu_backends_fail_clearly_without_gpu(models):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailableError, match="TensorRT|CUDA"):
        PosePipeline(PipelineConfig(backend="tensorrt"))
    with pytest.raises(BackendUnavailableError, match="device:=cpu"):
        PosePipeline(PipelineConfig(backend="torch", device="cuda"))


def test_auto_backend_picks_a_cpu_backend(models, astronaut):
    pipe = PosePipeline(PipelineConfig(backend="auto", static_image_mode=True))
    assert pipe.backend in ("onnxruntime", "torch") and pipe.device == "cpu"
    assert len(pipe(astronaut)) == 1


def test_user_onnx_models(models, tmp_path, astronaut):
    det = _onnx_for(models["pose_detection.tflite"], ["Identity", "Identity_1"], (1, 224, 224, 3), tmp_path)
    lm = _onnx_for(models["pose_landmark_full.tflite"],
                   ["Identity", "Identity_1", "Identity_4", "Identity_3"], (1, 256, 256, 3), tmp_path)
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True,
                                       detector_model=str(det), landmark_model=str(lm)))
    assert len(pipe(astronaut)) == 1


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pose_ros.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=str(cwd))


def test_cli_infer_image_and_video(tmp_path, models):
    img_path = tmp_path / "astronaut.png"
    cv2.imwrite(str(img_path), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    vid_path = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(vid_path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for t in range(6):
        w.write(cv2.cvtColor(np.roll(photo("astronaut"), 4 * t, axis=1), cv2.COLOR_RGB2BGR))
    w.release()
    out = tmp_path / "out"
    r = run_cli("infer", str(img_path), str(vid_path), "--out", str(out), "--backend", "onnxruntime",
                "--coco", str(tmp_path / "coco.json"), "--json", str(tmp_path / "frames.json"),
                "--quiet", cwd=ROOT / "test")
    assert r.returncode == 0, r.stderr
    assert (out / "astronaut_pose.png").is_file()
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco) == 7 and all(len(c["keypoints"]) == 51 and c["category_id"] == 1 for c in coco)
    frames = json.loads((tmp_path / "frames.json").read_text())
    assert len(frames) == 7
    person = frames[0]["persons"][0]
    assert len(person["keypoints"]) == 33 and len(person["world"]) == 33
    assert person["keypoints"][0]["name"] == "nose"
    assert [f["persons"][0]["id"] for f in frames[1:]] == [frames[1]["persons"][0]["id"]] * 6


def test_cli_reports_missing_input(tmp_path):
    r = run_cli("infer", str(tmp_path / "nope.png"), cwd=ROOT / "test")
    assert r.returncode == 2 and "does not exist" in r.stderr
