"""Helpers shared by the .tflite importer / ONNX writer tests (no torch here)."""
from __future__ import annotations

import numpy as np


def litert_outputs(path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The original .tflite through ai-edge-litert (the reference): output name -> array."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def patched_tflite(path, tmp_path, patch):
    """Copy of a .tflite with bytes changed through the flatbuffer's own offsets."""
    import tflite

    data = bytearray(path.read_bytes())
    model = tflite.Model.GetRootAsModel(data, 0)
    patch(model, data)
    out = tmp_path / ("patched_" + path.name)
    out.write_bytes(bytes(data))
    return out


def make_int8(model, data) -> None:
    """Patch: retype the first dense FLOAT16 weight as INT8 (a 'quantised' model)."""
    g = model.Subgraphs(0)
    for t in range(g.TensorsLength()):
        ten = g.Tensors(t)
        if ten.Type() == 1 and ten.Sparsity() is None:  # a dense FLOAT16 weight
            data[ten._tab.Pos + ten._tab.Offset(6)] = 9  # Tensor.type = INT8
            return
    raise AssertionError("no fp16 tensor")
