"""Inference backends behind one small interface.

An engine is a callable: ``engine(x) -> list[np.ndarray]`` where ``x`` is a float32 batch
in the network's input layout (B x H x W x C for the BlazePose networks) and the outputs
come back as float32 numpy arrays in the network's output order.

Backends:
  * ``torch``       eager torch module (CPU; CUDA in fp32 unless half=True).
  * ``onnxruntime`` ONNX (written from the .tflite by models.tflite_onnx without torch;
                    opset 17, dynamic batch) through onnxruntime's CPU, CUDA or TensorRT
                    execution providers (the TensorRT EP with a fixed optimisation profile).
  * ``openvino``    the same ONNX through OpenVINO on the CPU (fp32; ``openvino_bf16``:
                    OpenVINO's bf16 inference precision).
  * ``tensorrt``    native TensorRT engine built from the same ONNX (fp16), cached and keyed
                    by ONNX sha256 + GPU name + TensorRT version; rebuilt when stale or
                    unreadable. GPU-only; not runnable on the development machines.
  * ``litert``      the original .tflite through ai-edge-litert (the parity reference; CPU).
Which backend ``auto`` picks, in a fixed order per device, is decided in
:mod:`pose_ros.core.backends` (no timing at start-up).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is optional: imported only by the torch / TensorRT engines
    import torch

from .backends import (  # noqa: F401  re-exported; the selection logic lives in backends.py
    BACKENDS,
    DEVICES,
    BackendUnavailableError,
    ort_trt_profile_options,
    run_chunked,
)

log = logging.getLogger(__name__)


class Engine:
    """Base class: ``name`` (backend), ``device``, ``__call__(x) -> list of outputs``."""

    name = "engine"
    device = "cpu"
    output_names: list[str] = []

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release accelerator memory (the node calls this on deactivate)."""


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return device  # never needs torch
    try:
        import torch  # only torch-based backends resolve a GPU device through torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise BackendUnavailableError("device 'cuda' here needs torch (not installed); use "
                                      "device:=cpu or install a CUDA build of torch") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "device 'cuda' requested but torch sees no CUDA GPU; use device:=cpu or install a "
            "CUDA build of torch (JetPack: NVIDIA's torch wheel)")
    return device


class TorchEngine(Engine):
    """An eager ``torch.nn.Module`` run under ``torch.inference_mode`` (no TorchScript:
    ``torch.jit.trace`` / ``freeze`` are deprecated upstream). Imports torch only here."""

    name = "torch"

    def __init__(self, module: torch.nn.Module, device: str = "cpu", half: bool | None = None):
        import torch  # OMP_WAIT_POLICY=PASSIVE is set by pose_ros.core (shared robot CPU)

        self._torch = torch
        self.device = resolve_device(device)
        if self.device == "cpu" and torch.get_num_threads() > cpu_threads():
            torch.set_num_threads(cpu_threads())  # the cores this process may use, at most 4
        # fp32 by default, on CUDA too: whole-network fp16 moved landmarks by 2-5 px mean,
        # 14-18 px max (CPU half stand-in, issue 8 item 7); the fast GPU path is TensorRT,
        # whose fp16 ONNX stays within 0.3 px (test_engines.py). half=True opts in.
        self.half = bool(half)
        module = module.to(self.device).eval()
        if self.half:
            module = module.half()
        self.output_names = list(getattr(module, "output_names", []))
        self.module = module
        self._dtype = torch.float16 if self.half else torch.float32

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device, self._dtype)
            return [o.float().cpu().numpy() for o in self.module(t)]

    def close(self) -> None:
        self.module = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


def cpu_threads(limit: int = 4) -> int:
    """Threads for one network on the CPU: the cores this process may run on (cgroup / taskset
    affinity, not the machine's count), at most ``limit`` (the BlazePose networks stop scaling
    beyond ~4 threads)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        usable = os.cpu_count() or 1
    return max(1, min(limit, usable))


def ort_session_options(threads: int | None = None, spinning: bool = False):
    """onnxruntime SessionOptions for a CPU shared with other nodes (a robot's).

    onnxruntime's default thread pool spins while it waits for work; when another process
    holds a core, the spinning threads steal the time the working ones need. Measured here
    (2 cores, landmark network, batch 1, median ms): quiet 1 thread 10.7, 2 threads spinning
    17-23, 2 threads not spinning 11; one core busy: 2 threads spinning 36, not spinning
    11-19. So: no spinning, ``threads`` (default :func:`cpu_threads`) intra-op threads, one
    inter-op thread, sequential execution (the BlazePose graphs are chains). ``spinning=True``
    restores onnxruntime's default pool behaviour (benchmarks compare the two).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or cpu_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = "1" if spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return so


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, device: str = "cpu", threads: int | None = None,
                 trt_cache: Path | None = None, input_shape: Sequence[int] | None = None,
                 max_batch: int = 16):
        """device: 'cpu' or 'cuda' (CUDA / TensorRT EP: whether they exist is decided by
        onnxruntime.get_available_providers(), not by torch). input_shape (1, H, W, C) and
        max_batch fix the TensorRT EP's optimisation profile; larger batches run in chunks."""
        import onnxruntime as ort

        if device not in ("cpu", "cuda"):
            raise ValueError(f"OnnxRuntimeEngine device must be 'cpu' or 'cuda', got {device!r}")
        self.device = device
        self.max_batch = max_batch
        self._chunk = False
        available = ort.get_available_providers()
        if self.device == "cuda":
            wanted: list = []
            if "TensorrtExecutionProvider" in available:
                opts = {"trt_fp16_enable": True, "trt_engine_cache_enable": True}
                if trt_cache is not None:
                    trt_cache.mkdir(parents=True, exist_ok=True)
                    opts["trt_engine_cache_path"] = str(trt_cache)
                if input_shape is not None:
                    opts.update(ort_trt_profile_options(_onnx_input_name(onnx_path), input_shape,
                                                        max_batch))
                    self._chunk = True
                wanted.append(("TensorrtExecutionProvider", opts))
            if "CUDAExecutionProvider" in available:
                wanted.append("CUDAExecutionProvider")
            if not wanted:
                raise BackendUnavailableError(
                    "onnxruntime has no CUDA/TensorRT execution provider here; install "
                    "onnxruntime-gpu or use device:=cpu")
            providers = [*wanted, "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(onnx_path), ort_session_options(threads),
                                            providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, np.float32)
        if self._chunk and len(x) > self.max_batch:  # stay inside the TensorRT EP profile
            return run_chunked(self._run, x, self.max_batch)
        return self._run(x)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})

    def close(self) -> None:
        self.session = None


class LiteRTEngine(Engine):
    """The original .tflite through ai-edge-litert (batch 1 models: loops over the batch)."""

    name = "litert"

    def __init__(self, tflite_path: Path, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailableError("backend 'litert' needs `pip install ai-edge-litert`") from exc
        self.interp = Interpreter(model_path=str(tflite_path), num_threads=threads)
        self.interp.allocate_tensors()
        self._in = self.interp.get_input_details()[0]["index"]
        self._outs = self.interp.get_output_details()
        self.output_names = [d["name"] for d in self._outs]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        per_item = []
        for item in np.ascontiguousarray(x, np.float32):
            self.interp.set_tensor(self._in, item[None])
            self.interp.invoke()
            per_item.append([self.interp.get_tensor(d["index"]).copy() for d in self._outs])
        return [np.concatenate([p[i] for p in per_item]) for i in range(len(self._outs))]


def _onnx_input_name(onnx_path: Path) -> str:
    import onnx

    return onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name


class OpenVinoEngine(Engine):
    """The same ONNX through OpenVINO on the CPU.

    precision 'f32' (default: same numbers as onnxruntime within float rounding) or 'bf16'
    (OpenVINO's reduced inference precision where the CPU has native bf16, e.g. avx512_bf16 /
    AMX; backend name ``openvino_bf16``; parity bound measured and tested: README). The batch
    dimension stays dynamic.
    """

    device = "cpu"

    def __init__(self, onnx_path: Path, precision: str = "f32", threads: int | None = None):
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailableError("backend 'openvino' needs `pip install openvino`") from exc
        if precision not in ("f32", "bf16"):
            raise ValueError(f"OpenVINO precision must be 'f32' or 'bf16', got {precision!r}")
        self.name = "openvino" if precision == "f32" else "openvino_bf16"
        core = ov.Core()
        model = core.read_model(str(onnx_path))
        # a shared robot CPU: latency mode, the same thread budget as onnxruntime, no pinning
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads or cpu_threads()),
                  "ENABLE_CPU_PINNING": False}
        self.compiled = core.compile_model(model, "CPU", config)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # ov.Type
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # f32 / bf16
        if "bf16" in self.precision:
            log.warning("OpenVINO bf16: landmarks measured up to 23 px (256 px crop) off fp32 "
                        "on the test photos (bound: 1 px); use backend openvino (fp32) for real use")
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        res = self.request.infer([np.ascontiguousarray(x, np.float32)])
        return [np.array(res[o], np.float32) for o in self.compiled.outputs]

    def close(self) -> None:
        self.request = None
        self.compiled = None


class TensorRTEngine(Engine):
    """Native TensorRT from an ONNX file, engine cached on disk (GPU only; not runnable on the
    CPU-only development machines).

    Every decision is a pure function in :mod:`pose_ros.core.backends` (tested on CPU):
    precision mode by TensorRT version (>= 10.12: strongly typed network from an fp16 ONNX with
    fp32 I/O; older: BuilderFlag.FP16), network flags, profile shapes (1, 1, max_batch), cache
    key (ONNX sha256 + GPU + TensorRT version + profile + mode), output dtypes, chunking of
    batches larger than the profile. The calls below are the documented TensorRT 10 / 11 API
    (names checked against both wheels: scripts/check_tensorrt_api.py): Builder, OnnxParser,
    IBuilderConfig.set_memory_pool_limit, build_serialized_network, Runtime.
    deserialize_cuda_engine, IExecutionContext.set_input_shape / set_tensor_address /
    execute_async_v3, with torch CUDA tensors as buffers on one CUDA stream.
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(self, onnx_path: Path, cache_dir: Path, input_shape: Sequence[int],
                 max_batch: int = 16, fp16: bool = True):
        from .backends import (
            check_onnx,
            file_sha256,
            load_or_rebuild,
            trt_cache_key,
            trt_numpy_dtype,
            trt_precision_mode,
            write_fp16_onnx,
        )

        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailableError("backend 'tensorrt' needs the TensorRT Python package "
                                          "(JetPack ships it; desktop: pip install tensorrt)") from exc
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError("backend 'tensorrt' needs a CUDA GPU and CUDA torch")
        self.trt = trt
        self.torch = torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.mode = trt_precision_mode(trt.__version__, fp16)
        self.max_batch = max_batch
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        onnx_sha = file_sha256(onnx_path)
        build_onnx = Path(onnx_path)
        if self.mode == "strongly_typed":  # fp16 weights and activations, fp32 I/O
            build_onnx = cache_dir / f"{Path(onnx_path).stem}-{onnx_sha[:16]}.fp16.onnx"
            load_or_rebuild(build_onnx, check_onnx, lambda p: write_fp16_onnx(onnx_path, p),
                            "fp16 ONNX", log)
        key = trt_cache_key(Path(onnx_path).stem, onnx_sha, torch.cuda.get_device_name(0),
                            trt.__version__, max_batch, self.mode)
        self.engine_path = cache_dir / f"{key}.engine"
        self.engine = load_or_rebuild(self.engine_path, self._deserialize,
                                      lambda p: self._build(build_onnx, p, input_shape),
                                      "TensorRT engine", log)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = [n for n in names if n != self.input_name]
        self._torch_dtypes = {n: getattr(torch, np.dtype(trt_numpy_dtype(
            self.engine.get_tensor_dtype(n))).name) for n in self.output_names}
        self.stream = torch.cuda.Stream()

    def _deserialize(self, path: Path):
        engine = self.trt.Runtime(self.logger).deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendUnavailableError("deserialize_cuda_engine returned None")
        return engine

    def _build(self, onnx_path: Path, engine_path: Path, input_shape: Sequence[int]) -> None:
        from .backends import profile_shapes, trt_network_flags

        trt = self.trt
        log.warning("building TensorRT engine %s (%s; one-off, can take minutes)",
                    engine_path.name, self.mode)
        builder = trt.Builder(self.logger)
        network = builder.create_network(trt_network_flags(trt, self.mode))
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailableError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if self.mode == "fp16_flag":  # TensorRT < 10.12 only (the flag is gone in 11)
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape(network.get_input(0).name, *profile_shapes(input_shape, self.max_batch))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailableError(f"TensorRT failed to build an engine from {onnx_path}")
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = engine_path.with_name(engine_path.name + ".part")
        tmp.write_bytes(bytes(serialized))
        tmp.replace(engine_path)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return run_chunked(self._run, np.ascontiguousarray(x, np.float32), self.max_batch)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        torch = self.torch
        with torch.cuda.stream(self.stream):  # copies and execution on one stream
            inp = torch.from_numpy(x).to("cuda", non_blocking=True)
            if not self.context.set_input_shape(self.input_name, tuple(inp.shape)):
                raise RuntimeError(f"TensorRT rejected input shape {tuple(inp.shape)} "
                                   f"(profile max batch {self.max_batch})")
            self.context.set_tensor_address(self.input_name, inp.data_ptr())
            outs = []
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._torch_dtypes[name], device="cuda")
                self.context.set_tensor_address(name, out.data_ptr())
                outs.append(out)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            host = [o.float().to("cpu", non_blocking=False) for o in outs]
        self.stream.synchronize()
        return [h.numpy() for h in host]

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.torch.cuda.empty_cache()


def median_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)
