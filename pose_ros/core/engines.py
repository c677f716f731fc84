"""Inference backends behind one small interface.

An engine is a callable: ``engine(x) -> list[np.ndarray]`` where ``x`` is a float32 batch
in the network's input layout (B x H x W x C for the BlazePose networks) and the outputs
come back as float32 numpy arrays in the network's output order.

Backends:
  * ``torch``       eager torch module (CPU; CUDA with fp16 weights/activations).
  * ``onnxruntime`` ONNX (exported from the torch module, opset 17, dynamic batch) through
                    onnxruntime's CPU, CUDA or TensorRT execution providers.
  * ``tensorrt``    native TensorRT engine built from the same ONNX (fp16), cached and keyed
                    by ONNX sha256 + GPU name + TensorRT version; rebuilt when stale or
                    unreadable. GPU-only; not runnable on the development machines.
  * ``litert``      the original .tflite through ai-edge-litert (the parity reference; CPU).
``auto`` picks tensorrt > torch-cuda > the faster of torch / onnxruntime on CPU (measured
at start-up on a dummy batch).
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt", "litert")
DEVICES = ("auto", "cpu", "cuda")


class BackendUnavailableError(RuntimeError):
    """The requested backend / device cannot run on this machine."""


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
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            "device 'cuda' requested but torch sees no CUDA GPU; use device:=cpu or install a "
            "CUDA build of torch (JetPack: NVIDIA's torch wheel)")
    return device


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, module: torch.nn.Module, device: str = "cpu", half: bool | None = None,
                 example: np.ndarray | None = None):
        self.device = resolve_device(device)
        self.half = (self.device == "cuda") if half is None else half
        module = module.to(self.device).eval()
        if self.half:
            module = module.half()
        self.output_names = list(getattr(module, "output_names", []))
        self.module = module
        self._dtype = torch.float16 if self.half else torch.float32
        # On CPU a frozen TorchScript trace runs ~20% faster than eager (measured here).
        if self.device == "cpu" and example is not None:
            try:
                with torch.inference_mode():
                    traced = torch.jit.trace(module, (torch.from_numpy(example),), check_trace=False)
                    self.module = torch.jit.freeze(traced.eval())
            except Exception as exc:  # TorchScript is deprecated upstream: eager still works
                log.warning("TorchScript trace failed (%s); running eager", exc)

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device, self._dtype)
        return [o.float().cpu().numpy() for o in self.module(t)]

    def close(self) -> None:
        self.module = None
        if self.device == "cuda":
            torch.cuda.empty_cache()


def export_onnx(module: torch.nn.Module, path: Path, input_shape: Sequence[int],
                dynamic_batch: bool = True, opset: int = 17) -> Path:
    """Export a torch module with one NHWC input to ONNX (legacy TorchScript exporter:
    deterministic, no extra dependencies). Writes atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    names = list(getattr(module, "output_names", [])) or None
    dyn = None
    if dynamic_batch:
        dyn = {"input": {0: "batch"}}
        for n in names or []:
            dyn[n] = {0: "batch"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.cpu().float().eval(), (torch.zeros(*input_shape),), str(tmp),
                          input_names=["input"], output_names=names, opset_version=opset,
                          dynamic_axes=dyn, dynamo=False, do_constant_folding=True)
    import onnx

    onnx.checker.check_model(str(tmp))
    tmp.replace(path)
    return path


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, device: str = "cpu", threads: int | None = None,
                 trt_cache: Path | None = None):
        import onnxruntime as ort

        self.device = resolve_device(device) if device != "cpu" else "cpu"
        available = ort.get_available_providers()
        if self.device == "cuda":
            wanted: list = []
            if "TensorrtExecutionProvider" in available:
                opts = {"trt_fp16_enable": True, "trt_engine_cache_enable": True}
                if trt_cache is not None:
                    trt_cache.mkdir(parents=True, exist_ok=True)
                    opts["trt_engine_cache_path"] = str(trt_cache)
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
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), so, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})

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


class TensorRTEngine(Engine):
    """Native TensorRT (fp16) from an ONNX file, engine cached on disk.

    Written against TensorRT 8.6/10's documented Python API (Builder, OnnxParser,
    IBuilderConfig.set_memory_pool_limit, Runtime.deserialize_cuda_engine,
    IExecutionContext.set_input_shape / set_tensor_address / execute_async_v3) with torch
    CUDA tensors as buffers. Not runnable on the CPU-only development machines.
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(self, onnx_path: Path, cache_dir: Path, input_shape: Sequence[int],
                 max_batch: int = 8, fp16: bool = True):
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailableError("backend 'tensorrt' needs the TensorRT Python package "
                                          "(JetPack ships it; desktop: pip install tensorrt)") from exc
        if not torch.cuda.is_available():
            raise BackendUnavailableError("backend 'tensorrt' needs a CUDA GPU")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        onnx_hash = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
        gpu = torch.cuda.get_device_name(0).replace(" ", "_")
        key = f"{Path(onnx_path).stem}-{onnx_hash}-{gpu}-trt{trt.__version__}-b{max_batch}-{'fp16' if fp16 else 'fp32'}"
        self.engine_path = Path(cache_dir) / f"{key}.engine"
        self.engine = self._load() or self._build(onnx_path, input_shape, max_batch, fp16)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = [n for n in names if n != self.input_name]
        self.stream = torch.cuda.Stream()

    def _load(self):
        if not self.engine_path.is_file():
            return None
        try:
            runtime = self.trt.Runtime(self.logger)
            engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        except Exception as exc:  # corrupt or built by another TensorRT
            log.warning("TensorRT engine %s unreadable (%s); rebuilding", self.engine_path, exc)
            engine = None
        if engine is None:
            self.engine_path.unlink(missing_ok=True)
        return engine

    def _build(self, onnx_path: Path, input_shape: Sequence[int], max_batch: int, fp16: bool):
        trt = self.trt
        log.warning("building TensorRT engine %s (one-off, can take minutes)", self.engine_path.name)
        builder = trt.Builder(self.logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailableError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if fp16 and builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        shape = tuple(input_shape[1:])
        profile.set_shape(network.get_input(0).name, (1, *shape), (1, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailableError(f"TensorRT failed to build an engine from {onnx_path}")
        self.engine_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.engine_path.with_suffix(".part")
        tmp.write_bytes(bytes(serialized))
        tmp.replace(self.engine_path)
        return trt.Runtime(self.logger).deserialize_cuda_engine(bytes(serialized))

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        inp = torch.from_numpy(np.ascontiguousarray(x, np.float32)).cuda()
        self.context.set_input_shape(self.input_name, tuple(inp.shape))
        self.context.set_tensor_address(self.input_name, inp.data_ptr())
        outs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return [o.cpu().numpy() for o in outs]

    def close(self) -> None:
        self.context = None
        self.engine = None
        torch.cuda.empty_cache()


def median_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)
