"""Shared test fixtures. Every test talks DDS over loopback only.

scripts/run.sh (what `make test` uses) already sets the loopback environment; the
defaults below keep a bare `pytest` run on loopback too.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_loopback.xml"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "SYSTEM_DEFAULT")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


@pytest.fixture
def ros_node(request):
    """An rclpy context + node for the test, torn down afterwards."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"test_{request.node.name[:40].replace('[', '_').replace(']', '_')}"
                             .replace("-", "_"), context=ctx)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def spin_until(node, predicate, timeout: float = 15.0) -> bool:
    """Spin ``node`` until ``predicate()`` is true or ``timeout`` seconds pass."""
    import rclpy

    executor = rclpy.executors.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.05)
        return True
    finally:
        executor.remove_node(node)


@pytest.fixture
def spawn():
    """Start Python modules as separate processes (same environment); killed afterwards."""
    procs: list[subprocess.Popen] = []

    def _spawn(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, *args], env=dict(os.environ), cwd=str(ROOT / "test"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def models():
    """The default BlazePose .tflite files (fetched from PyPI by the environment step)."""
    from pose_ros.core.models.fetch import fetch_models

    return fetch_models(quiet=True)


def photo(name: str):
    """scikit-image's real photos as RGB uint8 (camera.png is grey: replicated to 3 channels)."""
    import numpy as np
    import skimage.data

    img = getattr(skimage.data, name)()
    return np.ascontiguousarray(np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3])


@pytest.fixture(scope="session")
def astronaut():
    return photo("astronaut")


@pytest.fixture(scope="session")
def camera():
    return photo("camera")
