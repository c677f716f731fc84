#!/usr/bin/env python3
"""CPU cost of each installed CPU backend per network (batch 1, one thread): the measurement
behind ``backend: auto``'s fixed CPU order (pose_ros.core.backends.CPU_ORDER).

CPU time (time.process_time) rather than wall time: on a shared robot CPU what one node takes
from the others is its CPU time, and it is far less disturbed by other load than wall time.
Rounds are interleaved across backends. Usage: ``scripts/run.sh python
scripts/backend_cpu_cost.py [--rounds 40]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from pose_ros.core.engines import OnnxRuntimeEngine, OpenVinoEngine
from pose_ros.core.models.fetch import require_models
from pose_ros.core.pipeline import DETECTOR_OUTPUTS, HEATMAP_OUTPUT, LANDMARK_OUTPUTS, _onnx_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    models = require_models()
    nets = {"landmarks": ("pose_landmark_full.tflite", LANDMARK_OUTPUTS + [HEATMAP_OUTPUT], 256),
            "detector": ("pose_detection.tflite", DETECTOR_OUTPUTS, 224)}
    print("| network | " + " | ".join(("onnxruntime", "openvino", "openvino_bf16", "torch")) + " |")
    print("|---|---|---|---|---|")
    for net, (name, outs, size) in nets.items():
        onnx = _onnx_for(models[name], outs, (1, size, size, 3), None)
        engines = {"onnxruntime": OnnxRuntimeEngine(onnx, "cpu", threads=1)}
        if importlib.util.find_spec("openvino"):
            engines["openvino"] = OpenVinoEngine(onnx, "f32", threads=1)
            engines["openvino_bf16"] = OpenVinoEngine(onnx, "bf16", threads=1)
        if importlib.util.find_spec("torch"):
            import torch

            from pose_ros.core.engines import TorchEngine
            from pose_ros.core.models.tflite_import import load_tflite

            torch.set_num_threads(1)
            engines["torch"] = TorchEngine(load_tflite(models[name], outs), "cpu")
        x = np.random.default_rng(0).random((1, size, size, 3), np.float32)
        times: dict[str, list[float]] = {k: [] for k in engines}
        for eng in engines.values():
            for _ in range(3):
                eng(x)
        for _ in range(args.rounds):
            for k, eng in engines.items():
                t = time.process_time()
                eng(x)
                times[k].append(time.process_time() - t)
        cells = [f"{np.median(times[k]) * 1e3:.1f} ms" if k in times else "n/a"
                 for k in ("onnxruntime", "openvino", "openvino_bf16", "torch")]
        print(f"| {net} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
