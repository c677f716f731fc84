"""Write a TensorFlow Lite flatbuffer as an ONNX model directly (no torch).

The graph comes from :mod:`.tflite_graph` (the same parsing and weight folding the torch
importer uses); this module emits it with the ``onnx`` package's helper API:

  * NCHW inside: CONV_2D / DEPTHWISE_CONV_2D -> Conv (``group`` = channels for depthwise) with
    TF SAME padding as explicit, possibly asymmetric ``pads``; ADD -> Add; PAD -> Pad;
    MAX_POOL_2D -> MaxPool (explicit pads; padded cells never win, as in TF);
    RESIZE_BILINEAR -> Resize (linear, ``half_pixel`` or ``align_corners``);
    DEPTH_TO_SPACE -> DepthToSpace mode DCR (TF's channel order); CONCATENATION -> Concat;
    LOGISTIC -> Sigmoid; fused activations -> Relu / Clip(0, 6) / Clip(-1, 1) / Tanh.
  * RESHAPE keeps TFLite's NHWC memory order: Transpose to NHWC, Reshape, Transpose back.
  * Inputs and outputs in TFLite's layout (B x H x W x C float32, Transpose at the ends), a
    dynamic batch dimension ``batch``; the input is called ``input`` and the outputs keep the
    .tflite output names; only the selected outputs are kept (the graph is pruned).

Opset 17, IR version 8: loadable by onnxruntime >= 1.13, TensorRT 8.6 / 10 / 11 and OpenVINO.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .tflite_graph import ACT_NONE, ACT_RELU, ACT_RELU6, ACT_RELU_N1_TO_1, TFLiteGraph, parse_tflite

OPSET = 17
IR_VERSION = 8
FORMAT_VERSION = 1  # bump when the emitted graph changes (part of the pipeline's cache key)
INPUT_NAME = "input"


class _Builder:
    """Collects nodes and initialisers; names every intermediate tensor uniquely."""

    def __init__(self, helper, numpy_helper):
        self.h, self.nh = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, arr: np.ndarray, hint: str = "const") -> str:
        name = self.name(hint)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self.name(op.lower())
        self.nodes.append(self.h.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def act(self, x: str, act: int) -> str:
        if act == ACT_NONE:
            return x
        if act == ACT_RELU:
            return self.node("Relu", [x])
        if act in (ACT_RELU6, ACT_RELU_N1_TO_1):
            lo, hi = (0.0, 6.0) if act == ACT_RELU6 else (-1.0, 1.0)
            return self.node("Clip", [x, self.const(np.float32(lo), "clip_lo"),
                                      self.const(np.float32(hi), "clip_hi")])
        return self.node("Tanh", [x])


def graph_to_onnx(graph: TFLiteGraph, name: str = "tflite"):
    """:class:`TFLiteGraph` -> ``onnx.ModelProto`` (see the module docstring), checked."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if len(graph.inputs) != 1:
        raise ValueError(f"{name}: {len(graph.inputs)} inputs; the ONNX writer handles one")
    b = _Builder(helper, numpy_helper)
    env: dict[int, str] = {}

    def get(tid: int) -> str:
        if tid not in env:
            env[tid] = b.const(graph.constants[tid], f"c{tid}")
        return env[tid]

    in_shape = graph.shapes[graph.inputs[0]]
    x = INPUT_NAME
    env[graph.inputs[0]] = b.node("Transpose", [x], perm=[0, 3, 1, 2]) if len(in_shape) == 4 else x
    for s in graph.steps:
        p = s.params
        if s.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            y = b.node("Conv", [get(t) for t in s.inputs], strides=list(p["stride"]),
                       dilations=list(p["dilation"]), group=int(p["groups"]), pads=list(p["pads"]))
            y = b.act(y, p["act"])
        elif s.op == "ADD":
            y = b.act(b.node("Add", [get(t) for t in s.inputs]), p["act"])
        elif s.op == "PAD":
            pads = [r[0] for r in p["pads"]] + [r[1] for r in p["pads"]]
            y = b.node("Pad", [get(s.inputs[0]), b.const(np.array(pads, np.int64), "pads")])
        elif s.op == "MAX_POOL_2D":
            y = b.node("MaxPool", [get(s.inputs[0])], kernel_shape=list(p["kernel"]),
                       strides=list(p["stride"]), pads=list(p["pads"]))
            y = b.act(y, p["act"])
        elif s.op == "RESIZE_BILINEAR":
            scales = [1.0, 1.0] + [o / i for o, i in zip(p["size"], p["in_size"], strict=True)]
            mode = "align_corners" if p["align_corners"] else "half_pixel"
            y = b.node("Resize", [get(s.inputs[0]), "", b.const(np.array(scales, np.float32), "scales")],
                       mode="linear", coordinate_transformation_mode=mode)
        elif s.op == "DEPTH_TO_SPACE":
            y = b.node("DepthToSpace", [get(s.inputs[0])], blocksize=int(p["block"]), mode="DCR")
        elif s.op == "RESHAPE":
            x = get(s.inputs[0])
            if len(graph.shapes[s.inputs[0]]) == 4:
                x = b.node("Transpose", [x], perm=[0, 2, 3, 1])  # reshape follows NHWC memory order
            shape = np.array([-1, *p["shape"][1:]], np.int64)
            y = b.node("Reshape", [x, b.const(shape, "shape")])
            if len(p["shape"]) == 4:
                y = b.node("Transpose", [y], perm=[0, 3, 1, 2])
        elif s.op == "CONCATENATION":
            y = b.act(b.node("Concat", [get(t) for t in s.inputs], axis=int(p["axis"])), p["act"])
        elif s.op == "LOGISTIC":
            y = b.node("Sigmoid", [get(s.inputs[0])])
        else:  # pragma: no cover - rejected by the parser
            raise ValueError(f"{name}: no ONNX mapping for {s.op}")
        env[s.output] = y

    outputs = []
    for tid, out_name in zip(graph.outputs, graph.output_names, strict=True):
        shape = graph.shapes[tid]
        perm = [0, 2, 3, 1] if len(shape) == 4 else None
        if perm:
            b.node("Transpose", [get(tid)], out_name, perm=perm)
        else:
            b.node("Identity", [get(tid)], out_name)
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT,
                                                     ["batch", *shape[1:]]))
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *in_shape[1:]])]
    g = helper.make_graph(b.nodes, name, inputs, outputs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pose_ros.tflite_onnx", ir_version=IR_VERSION)
    model.doc_string = f"from {name} (sha256 {graph.sha256})"
    onnx.checker.check_model(model, full_check=True)
    return model


def tflite_to_onnx(tflite_path: str | Path, onnx_path: str | Path | None = None,
                   outputs: list[str] | None = None):
    """Convert ``tflite_path`` to ONNX; with ``onnx_path`` also write it (atomically).

    outputs: names of the .tflite outputs to keep (default: all), in this order.
    Returns the ``onnx.ModelProto``.
    """
    import onnx

    tflite_path = Path(tflite_path)
    model = graph_to_onnx(parse_tflite(tflite_path, outputs), tflite_path.name)
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = onnx_path.with_name(f"{onnx_path.name}.{os.getpid()}.tmp")  # no clash between processes
        onnx.save(model, str(tmp))
        tmp.replace(onnx_path)
    return model
