"""Import a TensorFlow Lite flatbuffer into a ``torch.nn.Module``.

Generic over the op set MediaPipe's BlazePose detector and landmark models use:
CONV_2D, DEPTHWISE_CONV_2D, ADD, PAD, RESHAPE, DEPTH_TO_SPACE, RESIZE_BILINEAR,
MAX_POOL_2D, CONCATENATION, LOGISTIC, plus the constant ops DEQUANTIZE (fp16 weights) and
DENSIFY (CSR-sparse weights), which are folded into float32 constants at import time.

Layout: TFLite tensors are NHWC; the module computes in NCHW (what cuDNN / TensorRT / ONNX
prefer) and converts back only where NHWC semantics are observable (RESHAPE of a 4-D
activation, graph outputs). ``forward`` takes the model's inputs exactly as TFLite does
(B x H x W x C float32) and returns its outputs in TFLite's layout, so it can be compared
one-to-one with the LiteRT interpreter. Any batch size works.

Anything else (other ops, int8-quantised weights, block-sparse weights, legacy bilinear
resize) raises :class:`UnsupportedModelError` naming the op and tensor.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class UnsupportedModelError(ValueError):
    """The .tflite file uses something this importer does not implement."""


# TFLite enums (schema.fbs), kept here so a reader need not open the schema.
_TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6, _ACT_TANH = 0, 1, 2, 3, 4
_PAD_SAME, _PAD_VALID = 0, 1
_SPARSE_VECTOR_CLASSES = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}


@dataclass
class _Step:
    op: str
    inputs: list[int]
    output: int
    params: dict = field(default_factory=dict)


def _tflite():
    try:
        import tflite  # flatbuffer schema bindings (pure Python)
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError("reading .tflite files needs the `tflite` package: pip install tflite") from exc
    return tflite


def _options(tfl, op, cls_name: str):
    opts = getattr(tfl, cls_name)()
    table = op.BuiltinOptions()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF 'SAME' padding for one spatial dim: (before, after); after may exceed before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nhwc_axis_to_nchw(axis: int, rank: int) -> int:
    axis = axis % rank
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis] if rank == 4 else axis


class TFLiteModule(nn.Module):
    """A TFLite graph as a torch module (see the module docstring)."""

    def __init__(self, steps: list[_Step], constants: dict[int, np.ndarray], inputs: list[int],
                 outputs: list[int], ranks: dict[int, int], names: dict[int, str], sha256: str):
        super().__init__()
        self.steps = steps
        self.input_ids = inputs
        self.output_ids = outputs
        self.ranks = ranks
        self.tensor_names = names
        self.sha256 = sha256
        self.output_names = [names[i] for i in outputs]
        self._const_keys: dict[int, str] = {}
        for tid, arr in constants.items():
            key = f"c{tid}"
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(arr)), persistent=True)
            self._const_keys[tid] = key

    def _const(self, tid: int) -> torch.Tensor:
        return getattr(self, self._const_keys[tid])

    @staticmethod
    def _act(x: torch.Tensor, act: int) -> torch.Tensor:
        if act == _ACT_NONE:
            return x
        if act == _ACT_RELU:
            return F.relu(x)
        if act == _ACT_RELU6:
            return F.relu6(x)
        if act == _ACT_RELU_N1_TO_1:
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
                x = get(s.inputs[0])
                if p["pad"] is not None:
                    x = F.pad(x, p["pad"])
                y = F.conv2d(x, self._const(s.inputs[1]),
                             self._const(s.inputs[2]) if len(s.inputs) > 2 else None,
                             stride=p["stride"], padding=p["conv_pad"], dilation=p["dilation"],
                             groups=p["groups"])
                env[s.output] = self._act(y, p["act"])
            elif s.op == "ADD":
                env[s.output] = self._act(get(s.inputs[0]) + get(s.inputs[1]), p["act"])
            elif s.op == "PAD":
                env[s.output] = F.pad(get(s.inputs[0]), p["pad"])
            elif s.op == "MAX_POOL_2D":
                x = get(s.inputs[0])
                if p["pad"] is not None:
                    x = F.pad(x, p["pad"], value=float("-inf"))
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
            else:  # pragma: no cover - rejected at import
                raise UnsupportedModelError(s.op)
        outs = []
        for tid in self.output_ids:
            y = env[tid] if tid in env else self._const(tid)
            outs.append(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)
        return tuple(outs)


def _read_sparse_vector(tfl, dm, which: str) -> np.ndarray:
    typ = getattr(dm, f"Array{which}Type")()
    if typ not in _SPARSE_VECTOR_CLASSES:
        raise UnsupportedModelError(f"sparse index vector type {typ}")
    vec = getattr(tfl, _SPARSE_VECTOR_CLASSES[typ])()
    table = getattr(dm, f"Array{which}")()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def _densify(tfl, tensor, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """TFLite sparse tensor (DENSE / SPARSE_CSR dims, no blocks) -> dense array."""
    sp = tensor.Sparsity()
    order = sp.TraversalOrderAsNumpy().tolist()
    if sp.BlockMapLength() or order != list(range(len(shape))):
        raise UnsupportedModelError(
            f"block-sparse or re-ordered sparse tensor {tensor.Name().decode()!r}")
    dense = np.zeros(shape, values.dtype)
    # Walk the dims; `pos` = position within the level's compressed storage.
    pos = np.zeros(1, np.int64)
    coords: list[np.ndarray] = []
    for d in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(d)
        if dm.Format() == 0:  # DENSE
            n = dm.DenseSize()
            coords = [np.repeat(c, n) for c in coords]
            coords.append(np.tile(np.arange(n), len(pos)))
            pos = (pos[:, None] * n + np.arange(n)[None, :]).reshape(-1)
        else:  # SPARSE_CSR
            seg = _read_sparse_vector(tfl, dm, "Segments")
            ind = _read_sparse_vector(tfl, dm, "Indices")
            counts = seg[pos + 1] - seg[pos]
            new_pos = np.concatenate([np.arange(seg[p], seg[p + 1]) for p in pos]) if len(pos) else pos
            coords = [np.repeat(c, counts) for c in coords]
            coords.append(ind[new_pos])
            pos = new_pos
    dense[tuple(coords)] = values[pos]
    return dense


def load_tflite(path: str | Path, outputs: list[str] | None = None) -> TFLiteModule:
    """Read ``path`` (.tflite) and build the equivalent :class:`TFLiteModule` (float32, CPU).

    outputs: names of the graph outputs to keep (default: all, in the file's order). Ops that
    only feed dropped outputs are pruned, e.g. BlazePose's 256x256 segmentation head.
    """
    tfl = _tflite()
    path = Path(path)
    data = path.read_bytes()
    model = tfl.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"{path.name}: {model.SubgraphsLength()} subgraphs (need 1)")
    g = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}

    shapes: dict[int, tuple[int, ...]] = {}
    names: dict[int, str] = {}
    consts: dict[int, np.ndarray] = {}
    for t in range(g.TensorsLength()):
        ten = g.Tensors(t)
        shapes[t] = tuple(int(v) for v in ten.ShapeAsNumpy()) if ten.ShapeLength() else ()
        names[t] = ten.Name().decode()
        buf = model.Buffers(ten.Buffer())
        if buf is not None and buf.DataLength() > 0:
            if ten.Type() not in _TENSOR_DTYPES:
                raise UnsupportedModelError(f"tensor {names[t]!r} has TFLite type {ten.Type()}")
            if ten.Type() in (3, 9) and ten.Sparsity() is None:
                raise UnsupportedModelError(
                    f"tensor {names[t]!r} holds int8/uint8 (quantised) weights; only float32 / "
                    "float16 models are supported (use the float model)")
            raw = np.frombuffer(buf.DataAsNumpy().tobytes(), _TENSOR_DTYPES[ten.Type()])
            if ten.Sparsity() is not None:
                consts[t] = _densify(tfl, ten, raw, shapes[t])
            else:
                consts[t] = raw.reshape(shapes[t]) if shapes[t] else raw

    def rank(t: int) -> int:
        return len(shapes[t])

    steps: list[_Step] = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = [int(v) for v in op.InputsAsNumpy() if v >= 0]
        out = int(op.OutputsAsNumpy()[0])
        if name == "DEQUANTIZE":
            if ins[0] not in consts:
                raise UnsupportedModelError(f"DEQUANTIZE of a non-constant tensor {names[ins[0]]!r}")
            consts[out] = consts[ins[0]].astype(np.float32)
            continue
        if name == "DENSIFY":
            consts[out] = consts[ins[0]]  # already densified when read
            continue
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = _options(tfl, op, "Conv2DOptions" if name == "CONV_2D" else "DepthwiseConv2DOptions")
            w = consts[ins[1]].astype(np.float32)
            dil = (o.DilationHFactor(), o.DilationWFactor())
            stride = (o.StrideH(), o.StrideW())
            if name == "CONV_2D":
                weight, groups = w.transpose(0, 3, 1, 2), 1  # OHWI -> OIHW
            else:
                cin = shapes[ins[0]][3]
                weight, groups = w.transpose(3, 0, 1, 2), cin  # 1HW(C*M) -> (C*M)1HW
            kh, kw = weight.shape[2:]
            pad, conv_pad = None, (0, 0)
            if o.Padding() == _PAD_SAME:
                ph = _same_pads(shapes[ins[0]][1], kh, stride[0], dil[0])
                pw = _same_pads(shapes[ins[0]][2], kw, stride[1], dil[1])
                if ph[0] == ph[1] and pw[0] == pw[1]:
                    conv_pad = (ph[0], pw[0])  # symmetric: let the conv pad (no copy)
                else:
                    pad = (pw[0], pw[1], ph[0], ph[1])  # TF's asymmetric SAME: explicit pad
            consts[ins[1]] = np.ascontiguousarray(weight)
            if len(ins) > 2:
                consts[ins[2]] = consts[ins[2]].astype(np.float32)
            steps.append(_Step(name, ins, out, dict(stride=stride, dilation=dil, groups=groups,
                                                    pad=pad, conv_pad=conv_pad,
                                                    act=o.FusedActivationFunction())))
        elif name == "ADD":
            o = _options(tfl, op, "AddOptions")
            for t in ins:  # constant NHWC operands must broadcast against NCHW activations
                if t in consts and rank(out) == 4 and consts[t].ndim == 4:
                    consts[t] = consts[t].transpose(0, 3, 1, 2).astype(np.float32)
                elif t in consts and rank(out) == 4 and consts[t].ndim == 1:
                    consts[t] = consts[t].reshape(-1, 1, 1).astype(np.float32)
            steps.append(_Step(name, ins, out, dict(act=o.FusedActivationFunction())))
        elif name == "PAD":
            pads = consts[ins[1]].astype(int)
            if rank(ins[0]) == 4:  # NHWC pads -> F.pad order (W, H, C, N) on NCHW
                fp = (*pads[2], *pads[1], *pads[3], *pads[0])
            else:
                fp = tuple(v for r in pads[::-1] for v in r)
            steps.append(_Step(name, ins[:1], out, dict(pad=tuple(int(v) for v in fp))))
        elif name == "MAX_POOL_2D":
            o = _options(tfl, op, "Pool2DOptions")
            k, st = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
            pad = None
            if o.Padding() == _PAD_SAME:
                ph = _same_pads(shapes[ins[0]][1], k[0], st[0], 1)
                pw = _same_pads(shapes[ins[0]][2], k[1], st[1], 1)
                pad = (pw[0], pw[1], ph[0], ph[1]) if any(ph + pw) else None
            steps.append(_Step(name, ins, out, dict(kernel=k, stride=st, pad=pad,
                                                    act=o.FusedActivationFunction())))
        elif name == "RESIZE_BILINEAR":
            o = _options(tfl, op, "ResizeBilinearOptions")
            if not (o.HalfPixelCenters() or o.AlignCorners()):
                raise UnsupportedModelError(
                    f"RESIZE_BILINEAR {names[out]!r} uses legacy (asymmetric) sampling")
            size = tuple(int(v) for v in consts[ins[1]])
            steps.append(_Step(name, ins[:1], out, dict(size=size, align_corners=bool(o.AlignCorners()))))
        elif name == "DEPTH_TO_SPACE":
            o = _options(tfl, op, "DepthToSpaceOptions")
            steps.append(_Step(name, ins, out, dict(block=o.BlockSize())))
        elif name == "RESHAPE":
            steps.append(_Step(name, ins[:1], out, dict(shape=shapes[out])))
        elif name == "CONCATENATION":
            o = _options(tfl, op, "ConcatenationOptions")
            steps.append(_Step(name, ins, out, dict(axis=_nhwc_axis_to_nchw(o.Axis(), rank(out)),
                                                    act=o.FusedActivationFunction())))
        elif name == "LOGISTIC":
            steps.append(_Step(name, ins, out))
        else:
            raise UnsupportedModelError(
                f"{path.name}: operator {name} (tensor {names[out]!r}) is not supported by the "
                "TFLite importer; supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, PAD, RESHAPE, "
                "DEPTH_TO_SPACE, RESIZE_BILINEAR, MAX_POOL_2D, CONCATENATION, LOGISTIC, "
                "DEQUANTIZE, DENSIFY")

    out_ids = [int(v) for v in g.OutputsAsNumpy()]
    if outputs is not None:
        by_name = {names[t]: t for t in out_ids}
        missing = [n for n in outputs if n not in by_name]
        if missing:
            raise ValueError(f"{path.name} has no output(s) {missing}; outputs: {list(by_name)}")
        out_ids = [by_name[n] for n in outputs]
    needed = set(out_ids)
    kept: list[_Step] = []
    for s in reversed(steps):  # dead-code elimination, back to front
        if s.output in needed:
            kept.append(s)
            needed.update(s.inputs)
    steps = kept[::-1]
    used = {t for s in steps for t in s.inputs} | set(out_ids)
    constants = {t: a.astype(np.float32) if a.dtype == np.float16 else a
                 for t, a in consts.items() if t in used}
    ranks = {t: len(s) for t, s in shapes.items()}
    module = TFLiteModule(steps, constants, [int(v) for v in g.InputsAsNumpy()], out_ids, ranks, names,
                          hashlib.sha256(data).hexdigest())
    return module.eval()
