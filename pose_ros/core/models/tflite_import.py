"""Import a TensorFlow Lite flatbuffer into a ``torch.nn.Module`` (the ``torch`` backend).

The flatbuffer is parsed by :mod:`.tflite_graph` (op set, weight folding, layouts: see there);
this module only runs that graph with torch. The module computes in NCHW (what cuDNN /
TensorRT prefer) and converts back only where NHWC semantics are observable (RESHAPE of a 4-D
activation, graph outputs). ``forward`` takes the model's inputs exactly as TFLite does
(B x H x W x C float32) and returns its outputs in TFLite's layout, so it can be compared
one-to-one with the LiteRT interpreter. Any batch size works.

Unsupported models raise :class:`UnsupportedModelError` naming the op and tensor.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tflite_graph import (
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    ACT_RELU_N1_TO_1,
    Step,
    TFLiteGraph,
    UnsupportedModelError,
    parse_tflite,
)

__all__ = ["TFLiteModule", "UnsupportedModelError", "load_tflite"]


def _fpad(pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) -> F.pad's (left, right, top, bottom)."""
    return (pads[1], pads[3], pads[0], pads[2])


class TFLiteModule(nn.Module):
    """A TFLite graph as a torch module (see the module docstring)."""

    def __init__(self, graph: TFLiteGraph):
        super().__init__()
        self.steps: list[Step] = graph.steps
        self.input_ids = graph.inputs
        self.output_ids = graph.outputs
        self.tensor_names = graph.names
        self.sha256 = graph.sha256
        self.output_names = graph.output_names
        self._const_keys: dict[int, str] = {}
        for tid, arr in graph.constants.items():
            key = f"c{tid}"
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(arr)), persistent=True)
            self._const_keys[tid] = key

    def _const(self, tid: int) -> torch.Tensor:
        return getattr(self, self._const_keys[tid])

    @staticmethod
    def _act(x: torch.Tensor, act: int) -> torch.Tensor:
        if act == ACT_NONE:
            return x
        if act == ACT_RELU:
            return F.relu(x)
        if act == ACT_RELU6:
            return F.relu6(x)
        if act == ACT_RELU_N1_TO_1:
            return torch.clamp(x, -1.0, 1.0)
        return torch.tanh(x)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[int, torch.Tensor] = {}
        for tid, x in zip(self.input_ids, inputs, strict=True):
            env[tid] = x.permute(0, 3, 1, 2) if x.dim() == 4 else x  # NHWC -> NCHW

        def get(tid: int) -> torch.Tensor:
            return env[tid] if tid in env else self._const(tid)

        for s in self.steps:
            p = s.params
            if s.op == "CONV_2D" or s.op == "DEPTHWISE_CONV_2D":
                x, pads = get(s.inputs[0]), p["pads"]
                conv_pad = (0, 0)
                if pads[:2] == pads[2:]:
                    conv_pad = pads[:2]  # symmetric: let the conv pad (no copy)
                else:
                    x = F.pad(x, _fpad(pads))  # TF's asymmetric SAME: explicit pad
                y = F.conv2d(x, self._const(s.inputs[1]),
                             self._const(s.inputs[2]) if len(s.inputs) > 2 else None,
                             stride=p["stride"], padding=conv_pad, dilation=p["dilation"],
                             groups=p["groups"])
                env[s.output] = self._act(y, p["act"])
            elif s.op == "ADD":
                env[s.output] = self._act(get(s.inputs[0]) + get(s.inputs[1]), p["act"])
            elif s.op == "PAD":
                env[s.output] = F.pad(get(s.inputs[0]), tuple(v for r in p["pads"][::-1] for v in r))
            elif s.op == "MAX_POOL_2D":
                x = get(s.inputs[0])
                if any(p["pads"]):
                    x = F.pad(x, _fpad(p["pads"]), value=float("-inf"))
                env[s.output] = self._act(F.max_pool2d(x, p["kernel"], p["stride"]), p["act"])
            elif s.op == "RESIZE_BILINEAR":
                env[s.output] = F.interpolate(get(s.inputs[0]), size=p["size"], mode="bilinear",
                                              align_corners=p["align_corners"])
            elif s.op == "DEPTH_TO_SPACE":
                x = get(s.inputs[0])
                b, c, h, w = x.shape
                bs = p["block"]
                # TF order (DCR): channel index = (i * bs + j) * C_out + c
                x = x.reshape(b, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
                env[s.output] = x.reshape(b, c // (bs * bs), h * bs, w * bs)
            elif s.op == "RESHAPE":
                x = get(s.inputs[0])
                if x.dim() == 4:
                    x = x.permute(0, 2, 3, 1)  # reshape follows NHWC memory order
                y = x.reshape(-1, *p["shape"][1:])
                env[s.output] = y.permute(0, 3, 1, 2) if y.dim() == 4 else y
            elif s.op == "CONCATENATION":
                env[s.output] = self._act(torch.cat([get(i) for i in s.inputs], dim=p["axis"]), p["act"])
            elif s.op == "LOGISTIC":
                env[s.output] = torch.sigmoid(get(s.inputs[0]))
            else:  # pragma: no cover - rejected by the parser
                raise UnsupportedModelError(s.op)
        outs = []
        for tid in self.output_ids:
            y = env[tid] if tid in env else self._const(tid)
            outs.append(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)
        return tuple(outs)


def load_tflite(path: str | Path, outputs: list[str] | None = None) -> TFLiteModule:
    """Read ``path`` (.tflite) and build the equivalent :class:`TFLiteModule` (float32, CPU).

    outputs: names of the graph outputs to keep (default: all, in the file's order). Ops that
    only feed dropped outputs are pruned, e.g. BlazePose's 256x256 segmentation head.
    """
    return TFLiteModule(parse_tflite(path, outputs)).eval()
