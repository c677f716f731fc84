"""Backend selection, batch sizing / chunking, TensorRT decisions and cached-artefact recovery
(issue 8, items 5, 6, 8, 9, 10, 14), all on the CPU."""
from __future__ import annotations

import ast
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pose_ros.core import backends as B
from pose_ros.core.backends import Available, BackendUnavailableError, Choice, plan
from pose_ros.core.models import blazepose as bp
from pose_ros.core.pipeline import (
    DETECTOR_OUTPUTS,
    HEATMAP_OUTPUT,
    LANDMARK_OUTPUTS,
    PipelineConfig,
    PosePipeline,
    _onnx_for,
)

ROOT = Path(__file__).resolve().parents[1]
LM_OUTS = LANDMARK_OUTPUTS + [HEATMAP_OUTPUT]

# -- item 9 / 10 / 8: the decision table -----------------------------------------------------
CPU_BOX = Available(torch=True, ort_providers=("CPUExecutionProvider",), openvino=True, litert=True)
ORT_ONLY = Available(ort_providers=("CPUExecutionProvider",))
GPU_BOX = Available(gpu=True, torch=True, torch_cuda=True, tensorrt=True, openvino=True, litert=True,
                    ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider",
                                   "CPUExecutionProvider"))
# a GPU, CPU-only torch and onnxruntime-gpu (a normal install): onnxruntime may use CUDA
CPU_TORCH_ORT_GPU = Available(gpu=True, torch=True, torch_cuda=False,
                              ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
# onnxruntime-gpu installed but no GPU / driver: its providers list CUDA, still no GPU
ORT_GPU_NO_GPU = Available(torch=True, ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))

E = "error"
# (machine, backend, device) -> expected candidates, or "error: <text in the message>"
TABLE = {
    # CPU-only machine with everything installed
    (CPU_BOX, "auto", "auto"): "onnxruntime/cpu openvino/cpu torch/cpu",
    (CPU_BOX, "auto", "cpu"): "onnxruntime/cpu openvino/cpu torch/cpu",
    (CPU_BOX, "auto", "cuda"): f"{E}: device:=cpu",
    (CPU_BOX, "torch", "auto"): "torch/cpu",
    (CPU_BOX, "torch", "cpu"): "torch/cpu",
    (CPU_BOX, "torch", "cuda"): f"{E}: no CUDA GPU",
    (CPU_BOX, "onnxruntime", "auto"): "onnxruntime/cpu",
    (CPU_BOX, "onnxruntime", "cuda"): f"{E}: no CUDA GPU",
    (CPU_BOX, "openvino", "auto"): "openvino/cpu",
    (CPU_BOX, "openvino_bf16", "cpu"): "openvino_bf16/cpu",
    (CPU_BOX, "tensorrt", "auto"): f"{E}: no CUDA GPU",
    (CPU_BOX, "tensorrt", "cpu"): f"{E}: CUDA GPU only",
    (CPU_BOX, "litert", "auto"): "litert/cpu",
    # onnxruntime only (no torch, no openvino)
    (ORT_ONLY, "auto", "auto"): "onnxruntime/cpu",
    (ORT_ONLY, "torch", "cpu"): f"{E}: pip install torch",
    (ORT_ONLY, "openvino", "auto"): f"{E}: pip install openvino",
    (ORT_ONLY, "litert", "cpu"): f"{E}: pip install ai-edge-litert",
    # GPU machine with everything
    (GPU_BOX, "auto", "auto"): ("tensorrt/cuda torch/cuda onnxruntime/cuda "
                                "onnxruntime/cpu openvino/cpu torch/cpu"),
    (GPU_BOX, "auto", "cuda"): "tensorrt/cuda torch/cuda onnxruntime/cuda",
    (GPU_BOX, "auto", "cpu"): "onnxruntime/cpu openvino/cpu torch/cpu",  # never TensorRT / CUDA
    (GPU_BOX, "torch", "auto"): "torch/cuda",
    (GPU_BOX, "torch", "cpu"): "torch/cpu",
    (GPU_BOX, "onnxruntime", "auto"): "onnxruntime/cuda",
    (GPU_BOX, "onnxruntime", "cpu"): "onnxruntime/cpu",
    (GPU_BOX, "tensorrt", "auto"): "tensorrt/cuda",
    (GPU_BOX, "tensorrt", "cpu"): f"{E}: CUDA GPU only",
    (GPU_BOX, "openvino", "auto"): "openvino/cpu",
    (GPU_BOX, "openvino", "cuda"): f"{E}: CPU only",
    (GPU_BOX, "litert", "cuda"): f"{E}: CPU only",
    # item 8: CPU torch + onnxruntime-gpu
    (CPU_TORCH_ORT_GPU, "auto", "auto"): "onnxruntime/cuda onnxruntime/cpu torch/cpu",
    (CPU_TORCH_ORT_GPU, "auto", "cuda"): "onnxruntime/cuda",
    (CPU_TORCH_ORT_GPU, "onnxruntime", "auto"): "onnxruntime/cuda",
    (CPU_TORCH_ORT_GPU, "torch", "auto"): "torch/cpu",
    (CPU_TORCH_ORT_GPU, "torch", "cuda"): f"{E}: CUDA build of torch",
    (CPU_TORCH_ORT_GPU, "tensorrt", "cuda"): f"{E}: TensorRT Python package",
    # onnxruntime-gpu without a GPU: providers alone never mean CUDA
    (ORT_GPU_NO_GPU, "auto", "auto"): "onnxruntime/cpu torch/cpu",
    (ORT_GPU_NO_GPU, "onnxruntime", "auto"): "onnxruntime/cpu",
    (ORT_GPU_NO_GPU, "onnxruntime", "cuda"): f"{E}: no CUDA GPU",
    # a GPU but no GPU-capable package
    (Available(gpu=True, ort_providers=("CPUExecutionProvider",)), "auto", "cuda"):
        f"{E}: no GPU backend is installed",
    (Available(gpu=True, ort_providers=("CPUExecutionProvider",)), "auto", "auto"): "onnxruntime/cpu",
    (Available(), "auto", "auto"): f"{E}: no CPU backend is installed",
}


@pytest.mark.parametrize("key", list(TABLE), ids=lambda k: f"{k[1]}-{k[2]}")
def test_plan_decision_table(key):
    machine, backend, device = key
    want = TABLE[key]
    if want.startswith(E):
        with pytest.raises(BackendUnavailableError, match=want.split(": ", 1)[1]):
            plan(backend, device, machine)
    else:
        got = " ".join(f"{c.backend}/{c.device}" for c in plan(backend, device, machine))
        assert got == want


def test_plan_covers_every_backend_and_device():
    """Every (backend, device) pair decides (candidates or a BackendUnavailableError with a
    fix) on every machine of the table; nothing else is raised."""
    machines = {k[0] for k in TABLE}
    for m in machines:
        for b in B.BACKENDS:
            for d in B.DEVICES:
                try:
                    out = plan(b, d, m)
                except BackendUnavailableError as exc:
                    assert "Fix: " in str(exc), str(exc)
                    continue
                assert out and all(c.device in ("cpu", "cuda") for c in out)
                if d == "cpu":
                    assert all(c.device == "cpu" and c.backend != "tensorrt" for c in out)
                if d == "cuda":
                    assert all(c.device == "cuda" for c in out)
    with pytest.raises(ValueError, match="backend must be one of"):
        plan("cuda-magic", "auto", CPU_BOX)
    with pytest.raises(ValueError, match="device must be one of"):
        plan("auto", "gpu", CPU_BOX)


def test_probe_on_this_machine():
    """This machine: no GPU; onnxruntime's own providers; openvino installed in the venv."""
    import onnxruntime

    a = B.probe()
    assert a.gpu is False and a.torch_cuda is False and a.ort_gpu is False
    assert a.ort_providers == tuple(onnxruntime.get_available_providers())
    assert a.openvino == (importlib.util.find_spec("openvino") is not None)
    assert B.cuda_device_count() == 0


def test_start_first_falls_back_with_one_line_each(caplog):
    cands = [Choice("tensorrt", "cuda"), Choice("torch", "cuda"), Choice("onnxruntime", "cpu")]

    def build(c):
        if c.backend == "tensorrt":
            raise RuntimeError("engine build failed: out of memory\nlong traceback text")
        if c.backend == "torch":
            raise ImportError("no module named torch")
        return f"engine {c}"

    log = logging.getLogger("test_fallback")
    with caplog.at_level(logging.WARNING, logger="test_fallback"):
        eng, choice = B.start_first(cands, build, "landmarks", log)
    assert eng == "engine onnxruntime on cpu" and choice == cands[2]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "tensorrt on cuda failed to start (RuntimeError: engine build failed: out of memory)" \
        in lines[0] and "trying torch on cuda" in lines[0] and "traceback" not in lines[0]
    assert "ImportError: no module named torch" in lines[1] and "landmarks" in lines[1]
    with pytest.raises(BackendUnavailableError, match="tensorrt on cuda: RuntimeError.*torch on cuda"):
        B.start_first(cands[:2], build, "detector", log)


# -- item 6: sizing and chunking -------------------------------------------------------------
@pytest.mark.parametrize("tiles,w,h,want", [
    (0, 1280, 720, 1), (4, 1280, 720, 29),  # issue 8: 29 detector inputs
    # side = 480 / 2 * 1.5 = 360, stride 240: x ceil(280 / 240) + 1 = 3, y ceil(120 / 240) + 1 = 2
    (2, 640, 480, 7),
    # side = 720 / 3 * 1.5 = 360, stride 240: x ceil(920 / 240) + 1 = 5, y ceil(360 / 240) + 1 = 3
    (3, 1280, 720, 16),
    (3, 720, 1280, 16),  # portrait: same count
])
def test_detector_batch_hand_computed(tiles, w, h, want):
    assert B.detector_batch(tiles, w, h) == want
    assert B.detector_batch(tiles, w, h) == 1 + (len(bp.tile_rois(w, h, tiles)) if tiles else 0)


def test_landmark_batch_bounds_the_pipeline(models, astronaut):
    """tracks (<= max_persons) + detector candidates (<= 2 x max_persons)."""
    assert B.landmark_batch(4) == 12
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", max_persons=1, detect_every=1))
    sizes = []
    real = pipe.landmarker

    class Spy:
        output_names = real.output_names

        def __call__(self, x):
            sizes.append(len(x))
            return real(x)

    pipe.landmarker = Spy()
    big = np.concatenate([astronaut, astronaut], axis=1)  # two people, max_persons 1
    for _ in range(3):
        pipe(big)
    assert max(sizes) <= B.landmark_batch(1) and max(sizes) >= 2


def test_profile_shapes_and_ort_trt_options():
    assert B.profile_shapes((1, 256, 256, 3), 12) == ((1, 256, 256, 3), (1, 256, 256, 3),
                                                      (12, 256, 256, 3))
    assert B.profile_shapes((1, 224, 224, 3), 29, opt_batch=50)[1] == (29, 224, 224, 3)
    assert B.ort_trt_profile_options("input", (1, 224, 224, 3), 29) == {
        "trt_profile_min_shapes": "input:1x224x224x3",
        "trt_profile_opt_shapes": "input:1x224x224x3",
        "trt_profile_max_shapes": "input:29x224x224x3"}
    with pytest.raises(ValueError):
        B.profile_shapes((1, 3), 0)


def test_chunk_slices():
    assert B.chunk_slices(0, 4) == []
    assert B.chunk_slices(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert B.chunk_slices(6, 3) == [slice(0, 3), slice(3, 6)]
    assert B.chunk_slices(2, 16) == [slice(0, 2)]


@pytest.fixture(scope="module")
def lm_onnx(models, tmp_path_factory):
    return _onnx_for(models["pose_landmark_full.tflite"], LM_OUTS, (1, 256, 256, 3),
                     tmp_path_factory.mktemp("onnx"))


def test_chunked_batches_equal_one_batch(lm_onnx):
    """A batch larger than the profile max runs in chunks (the TensorRT code path) and gives
    the outputs of one big batch (onnxruntime on the CPU, same chunking code)."""
    from pose_ros.core.engines import OnnxRuntimeEngine

    x = np.random.default_rng(1).random((7, 256, 256, 3), np.float32)
    eng = OnnxRuntimeEngine(lm_onnx, "cpu")
    whole = eng(x)
    chunked = B.run_chunked(eng, x, 3)
    assert [c.shape for c in chunked] == [w.shape for w in whole]
    for w, c in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(c, w, rtol=0, atol=1e-4 * max(1.0, float(np.abs(w).max())))
    # per item: item 5 of the batch alone == item 5 of the chunked batch
    alone = eng(x[5:6])
    np.testing.assert_allclose(chunked[0][5:6], alone[0], rtol=0, atol=1e-3)
    # the engine's own chunking (as with the TensorRT EP profile)
    eng._chunk, eng.max_batch = True, 3
    for w, c in zip(whole, eng(x), strict=True):
        np.testing.assert_allclose(c, w, rtol=0, atol=1e-4 * max(1.0, float(np.abs(w).max())))


def test_pipeline_derives_profile_sizes(models):
    calls = []
    import pose_ros.core.pipeline as P

    real = P.build_engine

    def spy(model, outputs, input_shape, backend, device, cache_dir=None, max_batch=16):
        calls.append((Path(model).name, max_batch))
        return real(model, outputs, input_shape, backend, device, cache_dir, max_batch)

    P.build_engine = spy
    try:
        PosePipeline(PipelineConfig(backend="onnxruntime", detector_tiles=4, max_persons=5,
                                    detector_pyramid=False))
        PosePipeline(PipelineConfig(backend="onnxruntime", detector_tiles=2, image_size=(640, 480)))
        PosePipeline(PipelineConfig(backend="onnxruntime", max_batch=8))
    finally:
        P.build_engine = real
    assert calls == [("pose_detection.tflite", 29), ("pose_landmark_full.tflite", 15),
                     ("pose_detection.tflite", 7), ("pose_landmark_full.tflite", 30),
                     ("pose_detection.tflite", 8), ("pose_landmark_full.tflite", 8)]


# -- item 5: TensorRT decisions ---------------------------------------------------------------
@pytest.mark.parametrize("version,fp16,mode", [
    ("10.3.0.30", True, "fp16_flag"),  # JetPack 6
    ("10.11.0.33", True, "fp16_flag"),
    ("10.12.0.36", True, "strongly_typed"),
    ("10.13.3.9", True, "strongly_typed"),
    ("11.4.0.106", True, "strongly_typed"),
    ("11.4.0.106", False, "fp32"),
])
def test_trt_precision_mode(version, fp16, mode):
    assert B.trt_precision_mode(version, fp16) == mode


def test_trt_network_flags():
    # enum values as in TensorRT 10 (EXPLICIT_BATCH = 0, STRONGLY_TYPED = 1); 11 has no EXPLICIT_BATCH
    trt10 = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1))
    trt11 = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    assert B.trt_network_flags(trt10, "fp16_flag") == 1
    assert B.trt_network_flags(trt10, "strongly_typed") == 2
    assert B.trt_network_flags(trt11, "strongly_typed") == 2
    assert B.trt_network_flags(trt11, "fp32") == 0
    with pytest.raises(ValueError):
        B.trt_version("eleven")


def test_trt_dtypes_and_cache_key():
    assert B.trt_numpy_dtype(SimpleNamespace(name="HALF")) is np.float16
    assert B.trt_numpy_dtype("DataType.FLOAT") is np.float32
    assert B.trt_numpy_dtype("DataType.INT32") is np.int32
    with pytest.raises(BackendUnavailableError, match="BF16"):
        B.trt_numpy_dtype("DataType.BF16")
    k = B.trt_cache_key("pose_landmark_full-abc", "0123456789abcdef" * 4, "NVIDIA GeForce RTX 4090",
                        "11.4.0.106", 12, "strongly_typed")
    assert k == "pose_landmark_full-abc-0123456789abcdef-NVIDIA_GeForce_RTX_4090-trt11.4.0.106-b12-strongly_typed"
    others = {B.trt_cache_key("m", "f" * 64, "Orin", "10.3.0.30", 12, "fp16_flag"),
              B.trt_cache_key("m", "f" * 64, "Orin", "10.3.0.31", 12, "fp16_flag"),
              B.trt_cache_key("m", "f" * 64, "Orin (nvgpu)", "10.3.0.30", 12, "fp16_flag"),
              B.trt_cache_key("m", "f" * 64, "Orin", "10.3.0.30", 13, "fp16_flag"),
              B.trt_cache_key("m", "e" * 64, "Orin", "10.3.0.30", 12, "fp16_flag")}
    assert len(others) == 5 and all("/" not in k and " " not in k for k in others)


def test_fp16_onnx_parity_with_fp32(lm_onnx, tmp_path, astronaut, camera):
    """The fp16 ONNX with fp32 I/O that TensorRT >= 10.12 builds from, validated on the CPU
    with onnxruntime: landmarks (256 px crop) within 0.5 px of fp32 (measured 0.25 px)."""
    pytest.importorskip("onnxconverter_common")  # pin for the lead: onnxconverter-common==1.16.0
    import onnx
    import onnxruntime as ort

    p16 = tmp_path / "lm.fp16.onnx"
    B.write_fp16_onnx(lm_onnx, p16)
    m = onnx.load(str(p16))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(v.type.tensor_type.elem_type == f32 for v in [*m.graph.input, *m.graph.output])
    kinds = [t.data_type for t in m.graph.initializer]
    assert kinds.count(f16) > 0.9 * len(kinds)
    x = np.stack([cv2.resize(img, (256, 256)) for img in (astronaut, camera)]).astype(np.float32) / 255
    run = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (lm_onnx, p16)}
    o32, o16 = (dict(zip([o.name for o in s.get_outputs()], s.run(None, {s.get_inputs()[0].name: x}),
                         strict=True)) for s in run.values())
    lm32, lm16 = o32["Identity"].reshape(2, 39, 5), o16["Identity"].reshape(2, 39, 5)
    err = np.abs(lm16[..., :2] - lm32[..., :2]).max()
    print(f"fp16 ONNX vs fp32 landmarks: max {err:.3f} px (256 px crop)")
    assert err < 0.5
    assert np.abs(o16["Identity_4"] - o32["Identity_4"]).max() < 0.01  # world, metres


def test_fp16_detector_onnx_gives_the_same_rois(models, tmp_path, astronaut, camera):
    """The detector half of the strongly typed path: the person ROI from the fp16 detector
    (fp32 I/O) within 0.5 px / 0.5 % of fp32 (measured: 0.04 px, 0.01 %). ROIs must agree
    closely: the landmark net amplifies ROI changes (a 0.08 px shift moved a wrist 21 px on
    camera.png in fp32 alone), so parity is checked per network on identical inputs."""
    pytest.importorskip("onnxconverter_common")  # pin for the lead: onnxconverter-common==1.16.0
    import onnxruntime as ort

    det = _onnx_for(models["pose_detection.tflite"], DETECTOR_OUTPUTS, (1, 224, 224, 3), tmp_path)
    B.write_fp16_onnx(det, tmp_path / "det16.onnx")
    sess = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
            for p in (det, tmp_path / "det16.onnx")]
    for img in (astronaut, camera):
        roi = bp.letterbox_roi(img.shape[1], img.shape[0])
        x = bp.detector_batch(img, [roi])
        rois = []
        for s in sess:
            boxes, scores = s.run(None, {s.get_inputs()[0].name: x})
            rois.append(bp.roi_from_detection(bp.decode_detections(boxes[0], scores[0], roi)[0]))
        a, b = rois
        print(f"fp16 detector ROI: centre {np.hypot(a.cx - b.cx, a.cy - b.cy):.3f} px, "
              f"size {abs(a.size - b.size) / a.size:.4%}")
        assert np.hypot(a.cx - b.cx, a.cy - b.cy) < 0.5 and abs(a.size - b.size) < 0.005 * a.size
        assert abs(a.angle - b.angle) < 0.01


# -- the TensorRT names the code uses (item 5) --------------------------------------------------
def _trt_checker():
    spec = importlib.util.spec_from_file_location("check_tensorrt_api", ROOT / "scripts" / "check_tensorrt_api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_tensorrt_name_in_the_code_is_checked():
    """Attributes the TensorRT engine reads from TensorRT objects are all in the checker's list."""
    chk = _trt_checker()
    checked = {n for _, n, _ in chk.USED} | {o for o, _, _ in chk.USED if o}
    trt_objects = {"trt", "builder", "network", "parser", "config", "profile", "ncf"}
    src = (ROOT / "pose_ros" / "core" / "engines.py").read_text()
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "TensorRTEngine")
    bsrc = ast.parse((ROOT / "pose_ros" / "core" / "backends.py").read_text())
    funcs = [n for n in bsrc.body if isinstance(n, ast.FunctionDef) and n.name.startswith("trt_")]
    used = set()
    for tree in (cls, *funcs):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self":
                if base.attr in ("trt", "engine", "context"):
                    used.add(node.attr)
            elif isinstance(base, ast.Name) and base.id in trt_objects:
                used.add(node.attr)
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "trt":
                used.add(node.attr)
    used -= {"__version__"}  # module attribute of the Python package (tensorrt/__init__.py)
    assert used, "the scan found nothing: it is broken"
    assert used <= checked, f"not checked against the TensorRT wheels: {sorted(used - checked)}"


@pytest.fixture(scope="module")
def trt_wheels(tmp_path_factory):
    d = Path(os.environ.get("POSE_ROS_TRT_WHEELS", Path.home() / ".cache" / "pose_ros" / "trt_wheels"))
    wheels = _trt_checker().fetch(d)
    if len(wheels) < 4:
        pytest.skip(f"TensorRT wheels not downloadable here ({len(wheels)} in {d})")
    return wheels


def test_tensorrt_names_exist_in_10_and_11(trt_wheels):
    """scripts/check_tensorrt_api.py (output quoted in the README) against the PyPI wheels:
    tensorrt-stubs 10.13 (class members) and the bindings 10.8, 10.12, 11.4 (names in the .so);
    platform_has_fast_fp16 / BuilderFlag.FP16 are gone in 11, which the code does not need."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_tensorrt_api.py"), "--wheels",
                        str(trt_wheels[0].parent)], capture_output=True, text=True, timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert sum("OK;" in line for line in lines) == 4
    v11 = next(line for line in lines if "11.4" in line)
    assert "platform_has_fast_fp16 absent" in v11 and "BuilderFlag.FP16 absent" in v11
    chk = _trt_checker()
    w11 = next(w for w in trt_wheels if "11.4" in w.name)
    chk.USED.append(("Builder", "platform_has_fast_fp16", "all"))  # the checker can fail
    try:
        assert "Builder.platform_has_fast_fp16" in chk.check(w11)[1]
    finally:
        chk.USED.pop()


# -- item 9 / 10: end to end -------------------------------------------------------------------
def test_auto_is_deterministic_and_reported_for_both_models(models, astronaut):
    from pose_ros.core import pipeline as P

    assert not hasattr(P, "median_ms"), "no timing in backend selection"
    want = plan("auto", "auto", B.probe())[0]
    for _ in range(2):
        pipe = PosePipeline(PipelineConfig(backend="auto", static_image_mode=True))
        assert pipe.choices == {"detector": want, "landmarks": want}
        assert pipe.backend_summary == f"detector: {want}, landmarks: {want}"
        assert pipe.detector.name == pipe.landmarker.name == want.backend
        assert len(pipe(astronaut)) == 1


def test_auto_falls_back_on_start_up_failure(models, caplog, monkeypatch):
    """The first CPU choice fails at start-up (here: a broken onnxruntime) -> the next one
    (openvino, or torch without it), one log line per model saying why."""
    import pose_ros.core.pipeline as P

    has_ov = importlib.util.find_spec("openvino") is not None
    monkeypatch.setattr(P, "probe", lambda: Available(torch=True, openvino=has_ov,
                                                      ort_providers=("CPUExecutionProvider",)))

    def broken(*a, **k):
        raise RuntimeError("onnxruntime: cannot create the session\nsecond line")

    monkeypatch.setattr(P, "OnnxRuntimeEngine", broken)
    with caplog.at_level(logging.WARNING, logger="pose_ros.core.pipeline"):
        pipe = PosePipeline(PipelineConfig(backend="auto", static_image_mode=True))
    nxt = "openvino" if has_ov else "torch"
    assert pipe.backend_summary == f"detector: {nxt} on cpu, landmarks: {nxt} on cpu"
    msgs = [r.getMessage() for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(msgs) == 2  # one per model
    assert all("onnxruntime on cpu failed to start (RuntimeError: onnxruntime: cannot create the "
               f"session); trying {nxt} on cpu" in m for m in msgs)


def _cli(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "pose_ros.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_device_cuda_without_gpu_fails_with_fix(tmp_path, astronaut):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    r = _cli("infer", str(img), "--device", "cuda", "--out", str(tmp_path / "out"))
    assert r.returncode != 0
    assert "no CUDA GPU" in r.stderr and "device:=cpu" in r.stderr
    r = _cli("infer", str(img), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    want = plan("auto", "cpu", B.probe())[0]
    assert f"detector: {want}, landmarks: {want}" in r.stderr


# -- item 14: corrupt cached artefacts ---------------------------------------------------------
@pytest.fixture
def cache(models, tmp_path):
    d = tmp_path / "cache"
    (d / "models").mkdir(parents=True)
    for name, path in models.items():
        shutil.copy(path, d / "models" / name)
    return d


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_truncated_cached_onnx_is_rebuilt(cache, backend, caplog, astronaut):
    if backend == "openvino" and importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino not installed")
    cfg = PipelineConfig(backend=backend, static_image_mode=True, cache_dir=str(cache))
    ref = PosePipeline(cfg)(astronaut)[0].keypoints
    files = sorted((cache / "onnx").glob("*.onnx"))
    assert len(files) == 2
    sizes = {f: f.stat().st_size for f in files}
    for f in files:
        f.write_bytes(f.read_bytes()[: sizes[f] // 2])  # an interrupted copy
    with caplog.at_level(logging.WARNING):
        got = PosePipeline(cfg)(astronaut)[0].keypoints
    msgs = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(msgs) == 2 and all("deleted, rebuilding" in m for m in msgs)
    assert {f: f.stat().st_size for f in files} == sizes
    np.testing.assert_allclose(got, ref, atol=1e-3)


def test_truncated_user_onnx_is_not_deleted(cache, tmp_path):
    det = _onnx_for(cache / "models" / "pose_detection.tflite", DETECTOR_OUTPUTS, (1, 224, 224, 3), tmp_path)
    lm = _onnx_for(cache / "models" / "pose_landmark_full.tflite", LM_OUTS, (1, 256, 256, 3), tmp_path)
    lm.write_bytes(lm.read_bytes()[:1000])
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own load error
        PosePipeline(PipelineConfig(backend="onnxruntime", detector_model=str(det), landmark_model=str(lm)))
    assert lm.stat().st_size == 1000


def test_load_or_rebuild_generic(tmp_path, caplog):
    """Missing -> build; corrupt -> one log line, delete, build, load; a broken build raises."""
    p = tmp_path / "a.onnx"
    built = []

    def build(path):
        built.append(path)
        path.write_text("good")

    def load(path):
        if path.read_text() != "good":
            raise ValueError("bad magic\nmore")
        return "loaded"

    log = logging.getLogger("test_lor")
    assert B.load_or_rebuild(p, load, build, "thing", log) == "loaded" and len(built) == 1
    assert B.load_or_rebuild(p, load, build, "thing", log) == "loaded" and len(built) == 1
    p.write_text("garbage")
    with caplog.at_level(logging.WARNING, logger="test_lor"):
        assert B.load_or_rebuild(p, load, build, "thing", log) == "loaded"
    assert len(built) == 2 and [r.getMessage() for r in caplog.records] == [
        f"cached thing {p} is unreadable (bad magic): deleted, rebuilding"]
    p.write_text("x")
    with pytest.raises(ValueError):
        B.load_or_rebuild(p, load, lambda q: q.write_text("still bad"), "thing", log)


def test_corrupt_tflite_says_corrupt_and_how_to_refetch(cache):
    from pose_ros.core.models import fetch

    f = cache / "models" / "pose_landmark_full.tflite"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(fetch.ModelNotAvailableError) as err:
        PosePipeline(PipelineConfig(cache_dir=str(cache)))
    msg = str(err.value)
    assert "pose_landmark_full.tflite" in msg and "was corrupt" in msg and "not found" not in msg
    assert "pose-ros fetch-models" in msg and "--wheel" in msg
    assert not f.exists()
    with pytest.raises(fetch.ModelNotAvailableError) as err:  # now it is simply missing
        PosePipeline(PipelineConfig(cache_dir=str(cache)))
    assert "not found" in str(err.value) and "--wheel" in str(err.value)


def test_cli_corrupt_cached_onnx_recovers(cache, tmp_path, astronaut):
    """The CLI used to print a 34-line protobuf traceback: now it rebuilds and runs."""
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    args = ("infer", str(img), "--backend", "onnxruntime", "--cache-dir", str(cache),
            "--out", str(tmp_path / "out"))
    assert _cli(*args).returncode == 0
    for f in (cache / "onnx").glob("*.onnx"):
        f.write_bytes(f.read_bytes()[:100])
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("deleted, rebuilding") == 2


# -- item 7: torch on CUDA ---------------------------------------------------------------------
def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (none on the development machines)")
def test_torch_cuda_matches_cpu_on_identical_crops(models, astronaut, camera):
    """The CUDA torch path runs fp32 (whole-network fp16 moved landmarks 2.7-7 px mean, 12-28 px
    max in the CPU half stand-in). Tolerance: landmarks within 1 px (256 px crop) of the CPU on
    the same crops, detector ROIs within 0.5 px."""
    cpu = PosePipeline(PipelineConfig(backend="torch", device="cpu", static_image_mode=True, max_persons=1))
    gpu = PosePipeline(PipelineConfig(backend="torch", device="cuda", static_image_mode=True, max_persons=1))
    assert gpu.landmarker.device == "cuda" and not gpu.landmarker.half
    for img in (astronaut, camera):
        roi = cpu(img)[0].roi
        x = bp.landmark_input(img, [roi])
        a = dict(zip(cpu.landmarker.output_names, cpu.landmarker(x), strict=True))["Identity"]
        b = dict(zip(gpu.landmarker.output_names, gpu.landmarker(x), strict=True))["Identity"]
        assert np.abs(a.reshape(-1, 5)[:33, :2] - b.reshape(-1, 5)[:33, :2]).max() < 1.0
        g = gpu(img)[0].roi
        assert np.hypot(g.cx - roi.cx, g.cy - roi.cy) < 0.5


# -- the node reports the choice; device:=cuda without a GPU is a start-up error ---------------
def test_node_logs_and_diagnoses_the_choice_per_model(models):
    from test_node import Harness

    h = Harness(backend="auto", device="cpu")
    try:
        want = plan("auto", "cpu", B.probe())[0]
        summary = f"detector: {want}, landmarks: {want}"
        assert h.node.pipeline.backend_summary == summary
        _, _, values = h.node._diagnostic_summary()
        assert values["backends"] == summary
    finally:
        h.close()


def test_node_device_cuda_without_gpu_exits_with_the_fix():
    r = subprocess.run([sys.executable, "-m", "pose_ros.ros.pose_node", "--ros-args", "-p", "device:=cuda"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "no CUDA GPU" in r.stderr and "device:=cpu" in r.stderr, r.stderr[-2000:]
