"""Backend selection and the GPU decisions, as pure functions (testable without a GPU).

Nothing here imports torch, onnxruntime, openvino or tensorrt at module level: :func:`probe`
looks at what is installed, :func:`plan` turns (backend, device, what is available) into an
ordered list of candidates, and the TensorRT helpers compute flags, profile shapes, chunks,
dtypes and cache keys that :class:`pose_ros.core.engines.TensorRTEngine` only applies.

``backend: auto`` is deterministic (no timing at start-up), per device:

* GPU: ``tensorrt`` > ``torch`` (CUDA) > ``onnxruntime`` (CUDA / TensorRT EP);
* CPU: ``onnxruntime`` > ``openvino`` > ``torch``: CPU time per inference, one thread, on the
  development machine (avx512 Xeon): landmarks 9.4 / 11.6 / 25.5 ms, detector 10.5 / 11.2 /
  25.5 ms (README, "Backends"); all three within 0.5 px of each other. ``openvino_bf16`` is
  never picked by ``auto``: it misses the 1 px parity bound (test_openvino.py).

With ``device: auto`` a machine with a usable GPU tries the GPU order, then the CPU order;
``device: cpu`` never uses a GPU; ``device: cuda`` never falls back to the CPU and fails at
start-up when there is no GPU.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "openvino_bf16", "tensorrt", "litert")
DEVICES = ("auto", "cpu", "cuda")
GPU_ORDER = ("tensorrt", "torch", "onnxruntime")
CPU_ORDER = ("onnxruntime", "openvino", "torch")  # measured: README "Backends"
CPU_ONLY = ("openvino", "openvino_bf16", "litert")
ORT_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class BackendUnavailableError(RuntimeError):
    """The requested backend / device cannot run on this machine (the message says the fix)."""


@dataclass(frozen=True)
class Available:
    """What this machine offers. gpu: a CUDA device is visible to the driver (or to torch).
    ort_providers: onnxruntime.get_available_providers() (empty if onnxruntime is missing)."""

    gpu: bool = False
    torch: bool = False
    torch_cuda: bool = False
    tensorrt: bool = False
    ort_providers: tuple[str, ...] = ()
    openvino: bool = False
    litert: bool = False

    @property
    def ort_gpu(self) -> bool:
        """onnxruntime was built with CUDA / TensorRT (decided by its providers, never by
        torch); whether a GPU is present is ``gpu``."""
        return any(p in self.ort_providers for p in ORT_GPU_PROVIDERS)


@dataclass(frozen=True)
class Choice:
    backend: str
    device: str

    def __str__(self) -> str:
        return f"{self.backend} on {self.device}"


def cuda_device_count() -> int:
    """CUDA devices seen by the driver (libcuda's cuInit + cuDeviceGetCount); 0 without a
    driver. Does not import torch."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return int(count.value)
    return 0


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def probe() -> Available:
    """Look at this machine. torch is imported only when a GPU is present and torch is
    installed (to ask torch.cuda); onnxruntime's providers come from onnxruntime itself."""
    gpu = cuda_device_count() > 0
    has_torch = _installed("torch")
    torch_cuda = False
    if gpu and has_torch:
        import torch

        torch_cuda = bool(torch.cuda.is_available())
    providers: tuple[str, ...] = ()
    if _installed("onnxruntime"):
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    return Available(gpu=gpu or torch_cuda, torch=has_torch, torch_cuda=torch_cuda,
                     tensorrt=_installed("tensorrt"), ort_providers=providers,
                     openvino=_installed("openvino"), litert=_installed("ai_edge_litert"))


_NO_GPU = ("device 'cuda' requested but no CUDA GPU is visible (no NVIDIA driver / device). "
           "Fix: use device:=cpu (or device:=auto), or run on a machine with an NVIDIA GPU and "
           "its driver.")


def _why_not(backend: str, device: str, a: Available) -> str | None:
    """None if ``backend`` can start on ``device`` (cpu / cuda) here, else the reason + fix."""
    if device == "cuda":
        if backend in CPU_ONLY:
            return f"backend '{backend}' runs on the CPU only. Fix: use device:=cpu or device:=auto"
        if not a.gpu:
            return _NO_GPU
        if backend == "tensorrt":
            if not a.tensorrt:
                return ("backend 'tensorrt' needs the TensorRT Python package. Fix: JetPack "
                        "ships it (python3-libnvinfer); desktop: pip install tensorrt")
            if not a.torch_cuda:
                return ("backend 'tensorrt' uses CUDA torch tensors as buffers. Fix: install a "
                        "CUDA build of torch (JetPack: NVIDIA's torch wheel)")
        if backend == "torch" and not a.torch_cuda:
            return ("backend 'torch' on cuda needs a CUDA build of torch (torch.cuda.is_available()"
                    " is False). Fix: install one (JetPack: NVIDIA's torch wheel) or use "
                    "device:=cpu")
        if backend == "onnxruntime" and not a.ort_gpu:
            return ("onnxruntime has no CUDA/TensorRT execution provider here "
                    f"(providers: {', '.join(a.ort_providers) or 'onnxruntime not installed'}); "
                    "Fix: pip install onnxruntime-gpu, or use device:=cpu")
        return None
    if backend == "tensorrt":
        return ("backend 'tensorrt' runs on a CUDA GPU only. Fix: use device:=cuda or "
                "device:=auto on a GPU machine, or another backend")
    need = {"torch": a.torch, "onnxruntime": bool(a.ort_providers), "openvino": a.openvino,
            "openvino_bf16": a.openvino, "litert": a.litert}
    pip = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino",
           "openvino_bf16": "openvino", "litert": "ai-edge-litert"}
    if not need[backend]:
        return f"backend '{backend}' is not installed. Fix: pip install {pip[backend]}"
    return None


def plan(backend: str, device: str, a: Available) -> list[Choice]:
    """Ordered start-up candidates for (backend, device) on a machine offering ``a``.

    An explicit backend gives one candidate; ``auto`` gives the fixed preference order (module
    docstring) filtered by what is installed. Raises ValueError for unknown names and
    BackendUnavailableError (with the fix) when nothing can run, e.g. device 'cuda' without a
    GPU or device 'cpu' with backend 'tensorrt'.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not a.gpu:
        raise BackendUnavailableError(_NO_GPU)
    if backend != "auto":
        if device == "auto":
            gpu_ok = backend not in CPU_ONLY and _why_not(backend, "cuda", a) is None
            device = "cuda" if gpu_ok or backend == "tensorrt" else "cpu"
        reason = _why_not(backend, device, a)
        if reason:
            raise BackendUnavailableError(reason)
        return [Choice(backend, device)]
    devices = {"cpu": ("cpu",), "cuda": ("cuda",), "auto": ("cuda", "cpu") if a.gpu else ("cpu",)}
    out = [Choice(b, d) for d in devices[device]
           for b in (GPU_ORDER if d == "cuda" else CPU_ORDER) if _why_not(b, d, a) is None]
    if not out:
        if device == "cuda":
            raise BackendUnavailableError(
                "device 'cuda': no GPU backend is installed. Fix: install TensorRT + CUDA torch, "
                "a CUDA build of torch, or onnxruntime-gpu; or use device:=cpu")
        raise BackendUnavailableError(
            "no CPU backend is installed. Fix: pip install onnxruntime (or openvino / torch)")
    return out


def start_first(candidates: Sequence[Choice], build: Callable[[Choice], object], what: str,
                log) -> tuple[object, Choice]:
    """Start the first candidate that works; one log line per failure saying why.

    build(choice) returns the engine or raises. Returns (engine, choice); raises
    BackendUnavailableError listing every reason when none starts."""
    reasons = []
    for i, c in enumerate(candidates):
        try:
            return build(c), c
        except Exception as exc:  # any start-up failure falls back (issue 8, item 5)
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            reasons.append(f"{c}: {reason}")
            nxt = f"; trying {candidates[i + 1]}" if i + 1 < len(candidates) else ""
            log.warning("backend auto (%s): %s failed to start (%s)%s", what, c, reason, nxt)
    raise BackendUnavailableError(f"no backend could start the {what} model: " + " | ".join(reasons))


# -- batch sizing / chunking -----------------------------------------------------------------
DEFAULT_IMAGE_SIZE = (1280, 720)  # (width, height) assumed for profile sizing before any frame


def detector_batch(tiles: int, width: int, height: int) -> int:
    """Detector inputs per frame: the whole image plus the tiles of
    :func:`pose_ros.core.models.blazepose.tile_rois` (same formula, counted without building
    ROIs): per axis ceil((length - side) / stride) + 1 centres, side = short / tiles * 1.5."""
    if tiles < 2:
        return 1
    side = min(width, height) / tiles * 1.5
    stride = side / 1.5

    def n(length: int) -> int:
        return 1 if length <= side else math.ceil((length - side) / stride) + 1

    return 1 + n(width) * n(height)


def landmark_batch(max_persons: int) -> int:
    """Landmark crops per frame at most: every track (<= max_persons) plus the detector's
    candidates (<= 2 x max_persons, see PosePipeline.detect)."""
    return 3 * max_persons


def profile_shapes(input_shape: Sequence[int], max_batch: int, opt_batch: int = 1
                   ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of a batch-dynamic input for a TensorRT optimisation profile."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    rest = tuple(int(d) for d in input_shape[1:])
    opt = min(max(opt_batch, 1), max_batch)
    return (1, *rest), (opt, *rest), (max_batch, *rest)


def ort_trt_profile_options(input_name: str, input_shape: Sequence[int], max_batch: int,
                            opt_batch: int = 1) -> dict[str, str]:
    """onnxruntime TensorRT EP options fixing the profile (so it never rebuilds inside the
    frame loop): trt_profile_min/opt/max_shapes as 'name:1x256x256x3'."""
    shapes = profile_shapes(input_shape, max_batch, opt_batch)
    fmt = [f"{input_name}:{'x'.join(str(d) for d in s)}" for s in shapes]
    return {"trt_profile_min_shapes": fmt[0], "trt_profile_opt_shapes": fmt[1],
            "trt_profile_max_shapes": fmt[2]}


def chunk_slices(n: int, max_batch: int) -> list[slice]:
    """Slices covering range(n) in order, each at most max_batch long (n = 0 -> [])."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]


def run_chunked(fn: Callable[[np.ndarray], list[np.ndarray]], x: np.ndarray, max_batch: int
                ) -> list[np.ndarray]:
    """fn over batches of at most max_batch items of x (axis 0), outputs concatenated in order."""
    parts = [fn(x[s]) for s in chunk_slices(len(x), max_batch)]
    if len(parts) == 1:
        return parts[0]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


# -- TensorRT decisions -----------------------------------------------------------------------
STRONGLY_TYPED_SINCE = (10, 12)  # weak typing (BuilderFlag.FP16) deprecated; removed in 11


def trt_version(version: str) -> tuple[int, int]:
    """'10.3.0.30' -> (10, 3)."""
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"cannot parse TensorRT version {version!r}")
    return int(m.group(1)), int(m.group(2))


def trt_precision_mode(version: str, fp16: bool = True) -> str:
    """'strongly_typed' (>= 10.12: network typed by an fp16 ONNX with fp32 I/O),
    'fp16_flag' (< 10.12: fp32 ONNX + BuilderFlag.FP16) or 'fp32'."""
    if not fp16:
        return "fp32"
    return "strongly_typed" if trt_version(version) >= STRONGLY_TYPED_SINCE else "fp16_flag"


def trt_network_flags(trt, mode: str) -> int:
    """create_network() flags: STRONGLY_TYPED for the strongly typed mode; EXPLICIT_BATCH only
    where it still exists (deprecated and ignored in 10, gone in 11)."""
    flags = 0
    ncf = trt.NetworkDefinitionCreationFlag
    if mode == "strongly_typed":
        flags |= 1 << int(ncf.STRONGLY_TYPED)
    elif hasattr(ncf, "EXPLICIT_BATCH"):
        flags |= 1 << int(ncf.EXPLICIT_BATCH)
    return flags


_TRT_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64,
               "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


def trt_numpy_dtype(dtype) -> type:
    """numpy dtype of a TensorRT DataType (by enum name: DataType.HALF -> float16)."""
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    if name not in _TRT_DTYPES:
        raise BackendUnavailableError(f"TensorRT output dtype {name} has no numpy equivalent")
    return _TRT_DTYPES[name]


def trt_cache_key(stem: str, onnx_sha256: str, gpu_name: str, trt_ver: str, max_batch: int,
                  mode: str) -> str:
    """Engine file stem: model + ONNX content + GPU + TensorRT version + profile + precision
    (an engine is only valid for the GPU and TensorRT version that built it)."""
    gpu = re.sub(r"[^A-Za-z0-9.-]+", "_", gpu_name).strip("_")
    return f"{stem}-{onnx_sha256[:16]}-{gpu}-trt{trt_ver}-b{max_batch}-{mode}"


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- cached artefacts ------------------------------------------------------------------------
def load_or_rebuild(path, load: Callable, build: Callable, what: str, log):
    """load(path) a cached artefact; if it is missing, build(path) first; if it exists but
    cannot be loaded (truncated, corrupt, built by another version), log one line, delete it,
    rebuild and load again. A second failure propagates (the build itself is broken)."""
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        try:
            return load(path)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("cached %s %s is unreadable (%s): deleted, rebuilding", what, path,
                        first[:200])
            path.unlink(missing_ok=True)
    build(path)
    return load(path)


def check_onnx(path) -> None:
    """Raise if ``path`` is not a complete, valid ONNX model (onnx.checker, full check)."""
    import onnx

    onnx.checker.check_model(str(path), full_check=False)


def write_fp16_onnx(src, dst) -> None:
    """An fp16 copy of an fp32 ONNX model with fp32 inputs / outputs (for TensorRT's strongly
    typed networks): onnxconverter-common's float16 converter with keep_io_types=True (Cast
    nodes at the graph inputs / outputs; ops without fp16 kernels stay fp32). Atomic write."""
    import warnings
    from pathlib import Path

    import onnx
    from onnxconverter_common import float16

    with warnings.catch_warnings():  # "the float32 number 6e-08 will be truncated": expected
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.checker.check_model(model)
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".part")
    onnx.save(model, str(tmp))
    tmp.replace(dst)
