"""The OpenVINO backend (issue 8, item 13): same ONNX, fp32 by default; the bf16 mode is only
offered by ``auto`` if it meets the parity bound (landmarks within 1 px of fp32 on our photos)."""
from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core import backends as B
from pose_ros.core.pipeline import PipelineConfig, PosePipeline

pytest.importorskip("openvino")

PARITY_PX = 1.0  # issue 8: landmarks within 1 px of fp32


@pytest.fixture(scope="module")
def pipes(models):
    # refine_passes 0: parity of the networks on one crop (re-cropping turns sub-pixel backend
    # differences into different crops, core/refine.py)
    return {b: PosePipeline(PipelineConfig(backend=b, static_image_mode=True, max_persons=1, refine_passes=0))
            for b in ("onnxruntime", "openvino", "openvino_bf16")}


def _max_px(pipes, a, b, images) -> float:
    """Largest landmark distance (33 body points, image pixels) between two backends."""
    worst = 0.0
    for img in images:
        pa, pb = pipes[a](img), pipes[b](img)
        assert len(pa) == 1 and len(pb) == 1
        worst = max(worst, float(np.linalg.norm(pa[0].keypoints - pb[0].keypoints, axis=1).max()))
    return worst


def test_openvino_fp32_matches_onnxruntime(pipes, astronaut, camera):
    eng = pipes["openvino"].landmarker
    assert eng.name == "openvino" and eng.device == "cpu" and "f32" in eng.precision
    assert pipes["openvino"].detector.output_names == pipes["onnxruntime"].detector.output_names
    err = _max_px(pipes, "openvino", "onnxruntime", [astronaut, camera])
    print(f"openvino fp32 vs onnxruntime: max {err:.2f} px")
    assert err < 0.5 * PARITY_PX  # measured 0.48 px (camera), 0.13 px (astronaut)


def test_openvino_batches(pipes):
    """Dynamic batch: a batch of 5 gives each item's batch-of-1 outputs."""
    eng = pipes["openvino"].landmarker
    x = np.random.default_rng(2).random((5, 256, 256, 3), np.float32)
    whole = eng(x)
    for i in (0, 4):
        one = eng(x[i:i + 1])
        for w, o in zip(whole, one, strict=True):
            np.testing.assert_allclose(w[i:i + 1], o, rtol=0, atol=1e-3 * max(1.0, float(np.abs(o).max())))


def test_bf16_is_offered_by_auto_only_within_the_parity_bound(pipes, astronaut, camera):
    """bf16 vs fp32 OpenVINO on identical crops (the fp32 pipeline's ROIs), landmarks in the
    256 px crop. Measured on this CPU (avx512_bf16 / AMX): 3.1 px max on astronaut, 22.7 px on
    camera (through the whole pipeline: 12 and 74 px), far beyond 1 px, so ``auto`` never picks
    it: it stays an explicit opt-in (``openvino_bf16``). If a future OpenVINO meets the bound,
    this test fails until the fixed order in backends.CPU_ORDER is revisited."""
    from pose_ros.core.models import blazepose as bp

    f32, b16 = pipes["openvino"], pipes["openvino_bf16"]
    if "bf16" not in b16.landmarker.precision:
        pytest.skip(f"this CPU runs OpenVINO at {b16.landmarker.precision}, not bf16")
    err = 0.0
    for img in (astronaut, camera):
        x = bp.landmark_input(img, [f32(img)[0].roi])
        a = dict(zip(f32.landmarker.output_names, f32.landmarker(x), strict=True))["Identity"]
        b = dict(zip(b16.landmarker.output_names, b16.landmarker(x), strict=True))["Identity"]
        d = np.abs(a.reshape(-1, 5)[:33, :2] - b.reshape(-1, 5)[:33, :2])
        err = max(err, float(d.max()))
    print(f"openvino bf16 vs fp32 (same crops): max {err:.2f} px")
    if err > PARITY_PX:
        assert "openvino_bf16" not in B.CPU_ORDER and "openvino_bf16" not in B.GPU_ORDER
    else:
        pytest.fail(f"bf16 now meets the {PARITY_PX} px bound ({err:.2f} px): reconsider CPU_ORDER")


def test_bf16_explicit_use_warns(models, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        pipe = PosePipeline(PipelineConfig(backend="openvino_bf16", static_image_mode=True))
    if "bf16" in pipe.landmarker.precision:
        assert any("bf16" in r.getMessage() and "px" in r.getMessage() for r in caplog.records)
