#!/usr/bin/env python3
"""Check every TensorRT Python name pose_ros uses against TensorRT 10.x and 11.x from PyPI.

No GPU and no TensorRT libraries are needed (and the bindings cannot be imported here: the
libnvinfer wheels are not on PyPI). What is checked:

* ``tensorrt-stubs`` (10.x): the .pyi is parsed; each name must be a member of its class.
* ``tensorrt-cu12-bindings`` wheels (10.x, 11.x): pybind11 registers every class, method,
  property and enum value under its name as a NUL-terminated string in ``tensorrt.so``; each
  name must be one of those strings (a name check, not a class-membership check).

Usage: ``python scripts/check_tensorrt_api.py [--wheels DIR]`` (downloads the wheels with
``pip download --no-deps`` into DIR, default ~/.cache/pose_ros/trt_wheels). Exit status 1
when a name the code needs is missing from a version it supports.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

# (owner class in the stubs, name, versions that need it: "all" or "<10.12")
USED = [
    ("", "Logger", "all"), ("Logger", "WARNING", "all"),  # Logger.Severity.WARNING
    ("", "Builder", "all"), ("Builder", "create_network", "all"),
    ("Builder", "create_builder_config", "all"), ("Builder", "create_optimization_profile", "all"),
    ("Builder", "build_serialized_network", "all"),
    ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED", ">=10.12"),
    ("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "<11"),  # read only if present
    ("", "OnnxParser", "all"), ("OnnxParser", "parse", "all"), ("OnnxParser", "num_errors", "all"),
    ("OnnxParser", "get_error", "all"),
    ("IBuilderConfig", "set_memory_pool_limit", "all"), ("MemoryPoolType", "WORKSPACE", "all"),
    ("IBuilderConfig", "set_flag", "<10.12"), ("BuilderFlag", "FP16", "<10.12"),
    ("IBuilderConfig", "add_optimization_profile", "all"),
    ("IOptimizationProfile", "set_shape", "all"), ("INetworkDefinition", "get_input", "all"),
    ("", "Runtime", "all"), ("Runtime", "deserialize_cuda_engine", "all"),
    ("ICudaEngine", "create_execution_context", "all"), ("ICudaEngine", "get_tensor_name", "all"),
    ("ICudaEngine", "num_io_tensors", "all"), ("ICudaEngine", "get_tensor_mode", "all"),
    ("ICudaEngine", "get_tensor_dtype", "all"), ("TensorIOMode", "INPUT", "all"),
    ("DataType", "FLOAT", "all"), ("DataType", "HALF", "all"),
    ("IExecutionContext", "set_input_shape", "all"),
    ("IExecutionContext", "set_tensor_address", "all"),
    ("IExecutionContext", "get_tensor_shape", "all"),
    ("IExecutionContext", "execute_async_v3", "all"),
]
# names the code must NOT rely on (removed in 11); reported for information
REMOVED_IN_11 = [("Builder", "platform_has_fast_fp16"), ("BuilderFlag", "FP16"),
                 ("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH")]
WHEELS = ["tensorrt-stubs==10.13.0.35.1", "tensorrt-cu12-bindings==10.8.0.43",
          "tensorrt-cu12-bindings==10.12.0.36", "tensorrt-cu12-bindings==11.4.0.106"]


def needed(rule: str, version: tuple[int, int]) -> bool:
    if rule == "all":
        return True
    op, num = rule[:2] if rule[1] == "=" else rule[:1], rule.lstrip("<>=")
    ref = tuple(int(p) for p in num.split("."))
    return version < ref if op == "<" else version >= ref


def stub_members(pyi: str) -> dict[str, set[str]]:
    """{class name: member names} of a .pyi ('' = module level). Line-based (the published
    stubs are not valid Python for ast); members of nested classes also count for the outer
    class (Logger.Severity.WARNING counts as Logger.WARNING)."""
    out: dict[str, set[str]] = {"": set()}
    stack: list[tuple[int, str]] = []  # (indent, class name)
    for line in pyi.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "@")):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and indent <= stack[-1][0]:
            stack.pop()
        m = re.match(r"\s*(?:class|def)\s+([A-Za-z_]\w*)|\s*([A-Za-z_]\w*)\s*[:=]", line)
        if not m:
            continue
        name = m.group(1) or m.group(2)
        for owner in [""] if not stack else [c for _, c in stack]:
            out.setdefault(owner, set()).add(name)
        if line.lstrip().startswith("class "):
            stack.append((indent, name))
    return out


def so_has(data: bytes, name: str) -> bool:
    """pybind11 name strings end in NUL; the linker may share a string's tail with a longer
    one ("Logger" inside "ILogger"), so any NUL-terminated occurrence counts."""
    return name.encode() + b"\x00" in data


def fetch(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for spec in WHEELS:
        name = spec.split("==")[0].replace("-", "_")
        if not any(dest.glob(f"{name}-{spec.split('==')[1]}*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--disable-pip-version-check", "--only-binary=:all:",
                            "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
                            spec, "-d", str(dest)], check=False)
    return sorted(dest.glob("tensorrt*.whl"))


def check(wheel: Path) -> tuple[str, list[str], list[str]]:
    """(label, missing needed names, notes) for one wheel."""
    version_s = wheel.name.split("-")[1]
    version = tuple(int(p) for p in version_s.split(".")[:2])
    with zipfile.ZipFile(wheel) as zf:
        if "stubs" in wheel.name:
            members = stub_members(zf.read("tensorrt_bindings/tensorrt.pyi").decode())

            def has(owner: str, name: str) -> bool:
                return name in members.get(owner, set())
            label = f"tensorrt-stubs {version_s} (class members, .pyi)"
        else:
            data = zf.read("tensorrt_bindings/tensorrt.so")

            def has(owner: str, name: str) -> bool:
                return so_has(data, name) and (not owner or so_has(data, owner))
            label = f"tensorrt-cu12-bindings {version_s} (names in tensorrt.so)"
    missing = [f"{o + '.' if o else ''}{n}" for o, n, rule in USED
               if needed(rule, version) and not has(o, n)]
    notes = [f"{o}.{n} {'present' if has(o, n) else 'absent'}" for o, n in REMOVED_IN_11]
    return label, missing, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path,
                    default=Path.home() / ".cache" / "pose_ros" / "trt_wheels")
    args = ap.parse_args(argv)
    wheels = fetch(args.wheels)
    if not wheels:
        print("no TensorRT wheels could be downloaded", file=sys.stderr)
        return 2
    bad = 0
    for w in wheels:
        label, missing, notes = check(w)
        status = "OK" if not missing else "MISSING " + ", ".join(missing)
        print(f"{label}: {len(USED)} names used, {status}; {'; '.join(notes)}")
        bad += bool(missing)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
