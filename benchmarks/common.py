"""Shared benchmark helpers: tables, the MediaPipe venv, a busy core."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from pose_ros.core.models.fetch import cache_root

HERE = Path(__file__).resolve().parent
MP_VENV = cache_root() / "bench-mediapipe"


def table(rows: list[list], header: list[str]) -> str:
    """A plain-text table (medians and ratios are printed with it)."""
    cols = [header, *[[str(c) for c in r] for r in rows]]
    width = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = [" | ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in cols]
    lines.insert(1, "-+-".join("-" * w for w in width))
    return "\n".join(lines)


def mediapipe_python() -> Path | None:
    """Python of the MediaPipe benchmark venv (created with pip on first use: mediapipe 0.10.14
    pins protobuf<5 and cannot share pose_ros's environment); None if it cannot be made."""
    py = MP_VENV / "bin" / "python"
    if not py.exists():
        print("creating the MediaPipe benchmark venv (one-off) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MP_VENV)], check=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "mediapipe==0.10.14",
                            "opencv-python-headless<5"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"MediaPipe venv failed: {r.stderr[-500:]}", file=sys.stderr)
            return None
    return py


def mediapipe_env() -> dict[str, str]:
    """Environment for MediaPipe processes: without our PYTHONPATH (ROS, pose_ros), quiet glog."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GLOG_minloglevel"] = "2"
    return env


@contextlib.contextmanager
def busy_core():
    """One other process keeping one core 100% busy (a busy loop, as another node on a robot's
    CPU would) for the duration of the block."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # let the scheduler settle
    try:
        yield
    finally:
        p.kill()
        p.wait()
