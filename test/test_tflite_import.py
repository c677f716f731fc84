"""The TFLite importer reproduces LiteRT on both BlazePose models, and rejects what it
cannot run with an error that names the problem.

Tolerances: weights are the same fp16 values widened to fp32 in both runtimes, so outputs
differ only by fp32 accumulation order (XNNPACK vs oneDNN): measured 2.2e-6 of the output
range on the detector, 3.2e-6 on landmarks. We allow 2e-5 of each output's range, and 5e-4
for the segmentation logits (a long upsampling chain with a range of ~1600).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from tflite_helpers import litert_outputs, make_int8
from tflite_helpers import patched_tflite as _patched

from pose_ros.core.models.tflite_import import UnsupportedModelError, load_tflite


@pytest.mark.parametrize("name,size,scale", [("pose_detection.tflite", 224, (2.0, -1.0)),
                                             ("pose_landmark_full.tflite", 256, (1.0, 0.0))])
def test_importer_matches_litert_on_real_photo(models, astronaut, name, size, scale):
    x = (cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
         * scale[0] + scale[1])[None]
    ref = litert_outputs(models[name], x)
    module = load_tflite(models[name])
    with torch.inference_mode():
        outs = module(torch.from_numpy(x))
    assert module.output_names == list(ref)
    for out_name, got in zip(module.output_names, outs, strict=True):
        r = ref[out_name]
        assert got.shape == r.shape, out_name
        rel = 5e-4 if out_name == "Identity_2" and "landmark" in name else 2e-5
        err = np.abs(got.numpy() - r).max()
        assert err <= rel * np.abs(r).max() + 1e-5, f"{name}:{out_name} max err {err}"


def test_batched_input_matches_single(models, astronaut, camera):
    module = load_tflite(models["pose_landmark_full.tflite"], ["Identity", "Identity_4"])
    xs = np.stack([cv2.resize(im, (256, 256)) for im in (astronaut, camera)]).astype(np.float32) / 255
    with torch.inference_mode():
        both = module(torch.from_numpy(xs))
        one = module(torch.from_numpy(xs[1:]))
    for b, o in zip(both, one, strict=True):
        np.testing.assert_allclose(b[1:].numpy(), o.numpy(), rtol=1e-4, atol=1e-3)


def test_output_pruning_drops_unused_heads(models):
    full = load_tflite(models["pose_landmark_full.tflite"])
    pruned = load_tflite(models["pose_landmark_full.tflite"], ["Identity", "Identity_1", "Identity_4"])
    assert len(pruned.steps) < len(full.steps)
    assert not any(s.op == "RESIZE_BILINEAR" and s.params["size"] == (256, 256) for s in pruned.steps)
    with pytest.raises(ValueError, match="no output"):
        load_tflite(models["pose_landmark_full.tflite"], ["nope"])


def test_unsupported_op_is_named(models, tmp_path):
    import tflite

    def make_logistic_tanh(model, data):
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            if code.BuiltinCode() == tflite.BuiltinOperator.LOGISTIC:
                tab = code._tab
                for field in (4, 10):  # deprecated_builtin_code (int8), builtin_code (int32)
                    off = tab.Offset(field)
                    if off:
                        data[tab.Pos + off] = tflite.BuiltinOperator.TANH
                return
        raise AssertionError("no LOGISTIC op")

    bad = _patched(models["pose_landmark_full.tflite"], tmp_path, make_logistic_tanh)
    with pytest.raises(UnsupportedModelError, match="operator TANH"):
        load_tflite(bad)


def test_quantised_weights_are_rejected(models, tmp_path):
    bad = _patched(models["pose_detection.tflite"], tmp_path, make_int8)
    with pytest.raises(UnsupportedModelError, match="quantised"):
        load_tflite(bad)


def test_torch_engine_is_eager_without_deprecation_warnings(models, astronaut):
    """No TorchScript (torch.jit.trace / freeze warn as deprecated since torch 2.13)."""
    import warnings

    from pose_ros.core.pipeline import build_engine

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng = build_engine(models["pose_detection.tflite"], ["Identity", "Identity_1"], (1, 224, 224, 3),
                           "torch", "cpu")
        x = (cv2.resize(astronaut, (224, 224)).astype(np.float32) / 127.5 - 1.0)[None]
        boxes, scores = eng(x)
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)
                and ("jit" in str(w.message) or "TorchScript" in str(w.message))]
    ref = litert_outputs(models["pose_detection.tflite"], x)
    assert np.abs(scores - ref["Identity_1"]).max() <= 2e-5 * np.abs(ref["Identity_1"]).max() + 1e-5
