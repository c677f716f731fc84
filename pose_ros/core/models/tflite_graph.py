"""Read a TensorFlow Lite flatbuffer into a small, framework-free graph description.

Shared by the two back ends that turn a .tflite into something runnable:
:mod:`.tflite_import` (a ``torch.nn.Module``) and :mod:`.tflite_onnx` (an ONNX model, no
torch). Needs only numpy and the pure-Python ``tflite`` schema bindings.

Op set (MediaPipe's BlazePose detector and landmark models): CONV_2D, DEPTHWISE_CONV_2D, ADD,
PAD, RESHAPE, DEPTH_TO_SPACE, RESIZE_BILINEAR, MAX_POOL_2D, CONCATENATION, LOGISTIC, plus the
constant ops DEQUANTIZE (fp16 weights) and DENSIFY (CSR-sparse weights), which are folded into
float32 constants here.

Layout of the result: activations are described in NCHW (what cuDNN / TensorRT / ONNX prefer);
TFLite's NHWC parameters are converted once here:
  * conv weights: OIHW float32 (depthwise: (C*M) x 1 x kH x kW with ``groups = C``);
  * ADD constants: broadcastable against NCHW (4-D constants transposed, 1-D -> C x 1 x 1);
  * padding: ``pads = (top, left, bottom, right)`` in pixels (TF SAME padding can be
    asymmetric: bottom/right may exceed top/left); PAD: ``(before, after)`` per NCHW dim;
  * CONCATENATION axis: NCHW axis.
RESHAPE keeps TFLite's target shape: it follows NHWC memory order, so a back end must go to
NHWC, reshape, and come back (the detector's anchors depend on it). Graph inputs and outputs
stay in TFLite's layout (B x H x W x C); any batch size.

Anything else (other ops, int8-quantised weights, block-sparse weights, legacy bilinear
resize) raises :class:`UnsupportedModelError` naming the op and tensor.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class UnsupportedModelError(ValueError):
    """The .tflite file uses something this importer does not implement."""


# TFLite enums (schema.fbs), kept here so a reader need not open the schema.
_TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4
_PAD_SAME, _PAD_VALID = 0, 1
_SPARSE_VECTOR_CLASSES = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "RESHAPE", "DEPTH_TO_SPACE",
                 "RESIZE_BILINEAR", "MAX_POOL_2D", "CONCATENATION", "LOGISTIC", "DEQUANTIZE",
                 "DENSIFY")


@dataclass
class Step:
    """One operator: ``op`` (TFLite name), tensor ids in / out, layout-converted ``params``."""

    op: str
    inputs: list[int]
    output: int
    params: dict = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """A parsed, pruned TFLite graph (see the module docstring for layouts).

    steps: operators in execution order. constants: tensor id -> float32 (or int) array, only
    those the steps read. inputs / outputs: tensor ids (outputs in the order asked for).
    shapes: tensor id -> TFLite (NHWC) shape with the file's batch (1). names: tensor id ->
    TFLite tensor name. sha256: hex digest of the .tflite bytes.
    """

    steps: list[Step]
    constants: dict[int, np.ndarray]
    inputs: list[int]
    outputs: list[int]
    shapes: dict[int, tuple[int, ...]]
    names: dict[int, str]
    sha256: str

    @property
    def output_names(self) -> list[str]:
        return [self.names[t] for t in self.outputs]


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


def _spatial_pads(o, shape: tuple[int, ...], k: tuple[int, int], stride: tuple[int, int],
                  dil: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) for a conv / pool with options ``o`` on an NHWC ``shape``."""
    if o.Padding() != _PAD_SAME:
        return (0, 0, 0, 0)
    ph = _same_pads(shape[1], k[0], stride[0], dil[0])
    pw = _same_pads(shape[2], k[1], stride[1], dil[1])
    return (ph[0], pw[0], ph[1], pw[1])


def _nhwc_axis_to_nchw(axis: int, rank: int) -> int:
    axis = axis % rank
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis] if rank == 4 else axis


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


def _read_tensors(tfl, model, g) -> tuple[dict, dict, dict]:
    """Shapes, names and (dequantised later) constant buffers of every tensor."""
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
    return shapes, names, consts


def _step(tfl, op, name: str, ins: list[int], out: int, shapes: dict, names: dict,
          consts: dict) -> Step:
    """One non-constant operator -> :class:`Step` (converts its constants in ``consts``)."""
    rank_out = len(shapes[out])
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = _options(tfl, op, "Conv2DOptions" if name == "CONV_2D" else "DepthwiseConv2DOptions")
        w = consts[ins[1]].astype(np.float32)
        dil = (o.DilationHFactor(), o.DilationWFactor())
        stride = (o.StrideH(), o.StrideW())
        if name == "CONV_2D":
            weight, groups = w.transpose(0, 3, 1, 2), 1  # OHWI -> OIHW
        else:
            weight, groups = w.transpose(3, 0, 1, 2), shapes[ins[0]][3]  # 1HW(C*M) -> (C*M)1HW
        consts[ins[1]] = np.ascontiguousarray(weight)
        if len(ins) > 2:
            consts[ins[2]] = consts[ins[2]].astype(np.float32)
        pads = _spatial_pads(o, shapes[ins[0]], weight.shape[2:], stride, dil)
        return Step(name, ins, out, dict(stride=stride, dilation=dil, groups=groups, pads=pads,
                                         act=o.FusedActivationFunction()))
    if name == "ADD":
        for t in ins:  # constant NHWC operands must broadcast against NCHW activations
            if t in consts and rank_out == 4 and consts[t].ndim == 4:
                consts[t] = consts[t].transpose(0, 3, 1, 2).astype(np.float32)
            elif t in consts and rank_out == 4 and consts[t].ndim == 1:
                consts[t] = consts[t].reshape(-1, 1, 1).astype(np.float32)
        return Step(name, ins, out, dict(act=_options(tfl, op, "AddOptions").FusedActivationFunction()))
    if name == "PAD":
        pads = [tuple(int(v) for v in r) for r in consts[ins[1]]]
        if len(pads) == 4:  # NHWC -> NCHW
            pads = [pads[0], pads[3], pads[1], pads[2]]
        return Step(name, ins[:1], out, dict(pads=tuple(pads)))
    if name == "MAX_POOL_2D":
        o = _options(tfl, op, "Pool2DOptions")
        k, st = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        return Step(name, ins, out, dict(kernel=k, stride=st,
                                         pads=_spatial_pads(o, shapes[ins[0]], k, st, (1, 1)),
                                         act=o.FusedActivationFunction()))
    if name == "RESIZE_BILINEAR":
        o = _options(tfl, op, "ResizeBilinearOptions")
        if not (o.HalfPixelCenters() or o.AlignCorners()):
            raise UnsupportedModelError(
                f"RESIZE_BILINEAR {names[out]!r} uses legacy (asymmetric) sampling")
        return Step(name, ins[:1], out, dict(size=tuple(int(v) for v in consts[ins[1]]),
                                             in_size=shapes[ins[0]][1:3],
                                             align_corners=bool(o.AlignCorners())))
    if name == "DEPTH_TO_SPACE":
        return Step(name, ins, out, dict(block=_options(tfl, op, "DepthToSpaceOptions").BlockSize()))
    if name == "RESHAPE":
        return Step(name, ins[:1], out, dict(shape=shapes[out]))
    if name == "CONCATENATION":
        o = _options(tfl, op, "ConcatenationOptions")
        return Step(name, ins, out, dict(axis=_nhwc_axis_to_nchw(o.Axis(), rank_out),
                                         act=o.FusedActivationFunction()))
    if name == "LOGISTIC":
        return Step(name, ins, out)
    raise UnsupportedModelError(
        f"operator {name} (tensor {names[out]!r}) is not supported by the TFLite importer; "
        f"supported: {', '.join(SUPPORTED_OPS)}")


def parse_tflite(path: str | Path, outputs: list[str] | None = None) -> TFLiteGraph:
    """Read ``path`` (.tflite) into a :class:`TFLiteGraph`.

    outputs: names of the graph outputs to keep (default: all, in the file's order). Ops that
    only feed dropped outputs are pruned, e.g. BlazePose's 256x256 segmentation head.
    Raises UnsupportedModelError (op / tensor named) or ValueError (unknown output name).
    """
    tfl = _tflite()
    path = Path(path)
    data = path.read_bytes()
    model = tfl.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"{path.name}: {model.SubgraphsLength()} subgraphs (need 1)")
    g = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    shapes, names, consts = _read_tensors(tfl, model, g)

    steps: list[Step] = []
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
        elif name == "DENSIFY":
            consts[out] = consts[ins[0]]  # already densified when read
        else:
            try:
                steps.append(_step(tfl, op, name, ins, out, shapes, names, consts))
            except UnsupportedModelError as exc:
                raise UnsupportedModelError(f"{path.name}: {exc}") from None

    out_ids = [int(v) for v in g.OutputsAsNumpy()]
    if outputs is not None:
        by_name = {names[t]: t for t in out_ids}
        missing = [n for n in outputs if n not in by_name]
        if missing:
            raise ValueError(f"{path.name} has no output(s) {missing}; outputs: {list(by_name)}")
        out_ids = [by_name[n] for n in outputs]
    needed = set(out_ids)
    kept: list[Step] = []
    for s in reversed(steps):  # dead-code elimination, back to front
        if s.output in needed:
            kept.append(s)
            needed.update(s.inputs)
    steps = kept[::-1]
    used = {t for s in steps for t in s.inputs} | set(out_ids)
    constants = {t: a.astype(np.float32) if a.dtype == np.float16 else a
                 for t, a in consts.items() if t in used}
    return TFLiteGraph(steps, constants, [int(v) for v in g.InputsAsNumpy()], out_ids, shapes, names,
                       hashlib.sha256(data).hexdigest())
