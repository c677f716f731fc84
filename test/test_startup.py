"""Start-up path (issue 8, item 11): with a warm cache a process only loads -- no ONNX export,
no timing runs, no files written -- and it imports no heavy module it does not use.

Real CLI processes on a real photo, observed with cProfile (which functions ran, and who called
the inference engines) and by the cache directory's contents; not timed (timing is in
benchmarks/bench_startup.py, `make bench`).
"""
from __future__ import annotations

import os
import pstats
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.special

from conftest import ROOT, photo
from pose_ros.core.models.blazepose import expit
from pose_ros.core.pipeline import PipelineConfig

# functions that write an ONNX file from the .tflite, or import it into torch
EXPORTERS = {"tflite_to_onnx", "graph_to_onnx", "export_onnx", "load_tflite"}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime ns)} of every file under root."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def profiled_cli(tmp: Path, cache: Path, image: Path, name: str) -> pstats.Stats:
    """`pose-ros infer IMAGE` (default settings) in a process under cProfile."""
    prof = tmp / f"{name}.prof"
    r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pose_ros.cli",
                        "infer", str(image), "--out", str(tmp / name), "--quiet",
                        "--cache-dir", str(cache)],
                       capture_output=True, text=True, timeout=600, cwd=str(ROOT / "test"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp / name / "astronaut_pose.png").is_file()
    return pstats.Stats(str(prof))


def called(stats: pstats.Stats) -> dict[tuple[str, str], int]:
    """{(file name, function name): call count} of everything the process ran."""
    return {(Path(f).name, fn): v[1] for (f, _line, fn), v in stats.stats.items()}


def engine_calls(stats: pstats.Stats) -> tuple[int, set[str]]:
    """(inference calls, names of the functions that made them): every Engine.__call__ in
    pose_ros/core/engines.py and who called it."""
    n, callers = 0, set()
    for (f, _line, fn), v in stats.stats.items():
        if Path(f).name == "engines.py" and Path(f).parent.name == "core" and fn == "__call__":
            n += v[1]
            callers |= {cfn for (_cf, _cl, cfn) in v[4]}
    return n, callers


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory, models):
    """The same `pose-ros infer` twice on one fresh cache: first cold (only the .tflite files),
    then warm. Returns (tmp, cache, snapshot after cold, cold stats, warm stats)."""
    tmp = tmp_path_factory.mktemp("startup")
    cache = tmp / "cache"
    (cache / "models").mkdir(parents=True)
    for p in models.values():
        shutil.copy2(p, cache / "models" / Path(p).name)
    image = tmp / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    cold = profiled_cli(tmp, cache, image, "cold")
    after_cold = snapshot(cache)
    warm = profiled_cli(tmp, cache, image, "warm")
    return tmp, cache, after_cold, cold, warm


def test_cold_start_exports_onnx(cold_and_warm):
    """The control: the first process writes the ONNX files and the profile shows it, so the
    warm-start checks below can see an export when one happens."""
    _, _, after_cold, cold, _ = cold_and_warm
    assert sum(1 for f in after_cold if f.startswith("onnx/") and f.endswith(".onnx")) == 2
    assert {fn for (_f, fn) in called(cold)} & EXPORTERS


def test_warm_start_does_no_export_and_writes_nothing(cold_and_warm):
    _, cache, after_cold, _, warm = cold_and_warm
    ran = {fn for (_f, fn) in called(warm)}
    assert not ran & EXPORTERS, f"warm start exported: {ran & EXPORTERS}"
    assert not any("export" in fn.lower() for (f, fn) in called(warm) if f.endswith(".py")
                   and "onnx" in f.lower()), "an ONNX exporter ran"
    assert snapshot(cache) == after_cold, "the warm start wrote or changed cache files"


def test_warm_start_runs_inference_only_for_the_photo(cold_and_warm):
    """No timing / benchmarking at start-up: every inference call comes from the pipeline's
    detect() or landmarks() on the photo (one frame: the detector once, the landmarks at most
    once per pass: the detector crops and ``refine_passes`` re-crops of new people); a start-up
    timing run would add calls from elsewhere."""
    _, _, _, _, warm = cold_and_warm
    n, callers = engine_calls(warm)
    stages = called(warm)
    assert stages[("pipeline.py", "detect")] == 1
    assert callers <= {"detect", "landmarks"}, f"inference called from {callers}"
    assert 1 <= n <= 2 + PipelineConfig().refine_passes
    assert not any(fn == "median_ms" for (_f, fn) in called(warm))


HEAVY = ("scipy.special", "matplotlib", "skimage", "torch")


@pytest.mark.parametrize("code", [
    # a whole `pose-ros infer photo` run (default backend), then what it had imported
    "from pose_ros.cli import main; assert main(sys.argv[1:]) == 0",
    # the node's module (rclpy, messages, core)
    "import pose_ros.ros.pose_node",
], ids=["cli-infer", "pose_node-import"])
def test_start_up_imports_no_heavy_unused_modules(code, tmp_path):
    """scipy.special (~0.2 s), matplotlib, skimage, torch are not needed to start the CLI or
    the node with an ONNX backend; they are imported only where used."""
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    prog = f"import sys; {code}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", prog, "infer", str(image), "--out", str(tmp_path / "o"),
                        "--quiet"], capture_output=True, text=True, timeout=300,
                       cwd=str(ROOT / "test"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_expit_matches_scipy():
    """blazepose.expit replaces scipy.special.expit (start-up cost): same values, dtype kept,
    no overflow at the extremes."""
    for dt in (np.float32, np.float64):
        x = np.concatenate([np.linspace(-800, 800, 40001), [-1e30, 1e30, 0.0]]).astype(dt)
        got, ref = expit(x), scipy.special.expit(x)
        assert got.dtype == dt
        # relative: within 32 ulps (measured <= 17); below the smallest normal number (subnormals) absolutely
        np.testing.assert_allclose(got, ref, rtol=32 * np.finfo(dt).eps, atol=np.finfo(dt).tiny)


# -- onnxruntime on a shared CPU (issue 8, item 12) -------------------------------------------
def test_onnxruntime_sessions_do_not_spin(models):
    """The sessions the pipeline really runs: no spinning thread pools (they collapse when
    another process holds a core), intra-op threads = usable cores (at most 4), one inter-op
    thread, sequential execution."""
    import os

    import onnxruntime as ort

    from pose_ros.core.pipeline import PipelineConfig, PosePipeline

    pipe = PosePipeline(PipelineConfig(backend="onnxruntime"))
    for eng in (pipe.detector, pipe.landmarker):
        so = eng.session.get_session_options()
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
        assert so.intra_op_num_threads == min(4, len(os.sched_getaffinity(0)))
        assert so.inter_op_num_threads == 1
        assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_cpu_threads_follow_the_affinity_mask():
    """A node pinned to one core (taskset, cgroups) gets one thread, not the machine's count."""
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from pose_ros.core.engines import cpu_threads; print(cpu_threads(), os.cpu_count())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(ROOT / "test"))
    assert r.returncode == 0, r.stderr[-2000:]
    threads, cores = map(int, r.stdout.split())
    assert threads == 1 and cores >= 1


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    """torch's OpenMP threads must not spin on a shared CPU: pose_ros.core sets
    OMP_WAIT_POLICY=PASSIVE before torch can be imported; an explicit user setting wins."""
    code = "import os, pose_ros.core; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
