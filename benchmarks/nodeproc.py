"""Helpers for the load and soak benchmarks (bench_load.py, bench_soak.py) and
test/test_soak_short.py: a grid of real people, pose_node as its own process, /proc sampling.

Not a benchmark itself (run_all.py runs only bench_*.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import skimage.data

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ the scene
def _people() -> list[np.ndarray]:
    """Square RGB uint8 crops of real photos of people (scikit-image ships them): the
    astronaut (upper body) and the cameraman (head to knees), plus mirrored and recoloured
    variants so that neighbours differ in appearance (the tracker compares torso colours)."""
    astro = skimage.data.astronaut()  # (512, 512, 3)
    cam = np.repeat(skimage.data.camera()[..., None], 3, axis=2)  # (512, 512) grey -> RGB

    def hue(rgb: np.ndarray, shift: int) -> np.ndarray:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + shift) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    def tint(rgb: np.ndarray, bgr_gain: tuple[float, float, float]) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * np.array(bgr_gain[::-1], np.float32), 0, 255).astype(np.uint8)

    return [astro, tint(cam, (1.0, 0.8, 0.6)), hue(astro, 60)[:, ::-1], cam[:, ::-1],
            hue(astro, 120), tint(cam, (0.6, 0.9, 1.0))[:, ::-1], astro[:, ::-1],
            tint(cam, (0.7, 1.0, 0.7)), hue(astro, 30)]


@dataclass
class GridScene:
    """``rows`` x ``cols`` cells over a (height, width) image, one real person per occupied
    cell (``people``: which photo in each cell, default: cell i gets photo i), each swaying sideways (amplitude ``sway`` px, period ``period`` frames, its own
    phase) so the tracker has motion to follow. Frame n is deterministic.

    frame(n, occupied) -> RGB uint8 (height, width, 3); ``occupied``: cell indices (row-major)
    with a person (default: all). cell_of(x, y) -> the cell index of an image point."""

    width: int = 1920
    height: int = 1080
    rows: int = 3
    cols: int = 3
    sway: int = 20
    period: int = 90
    background: int = 90
    people: tuple[int, ...] | None = None  # which of the photos (index into _people()) per cell
    _crops: list[np.ndarray] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.cw, self.ch = self.width // self.cols, self.height // self.rows
        self.side = min(self.ch, self.cw - 2 * self.sway - 4)  # a person's square crop, px
        people = _people()
        which = self.people or range(self.rows * self.cols)
        self._crops = [cv2.resize(people[i % len(people)], (self.side, self.side), interpolation=cv2.INTER_AREA)
                       for i in which]

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    def offset(self, cell: int, n: int) -> tuple[int, int]:
        """Top-left (x, y) px of cell ``cell``'s person in frame ``n``."""
        r, c = divmod(cell, self.cols)
        dx = int(round(self.sway * np.sin(2 * np.pi * n / self.period + 0.7 * cell)))
        return c * self.cw + (self.cw - self.side) // 2 + dx, r * self.ch + (self.ch - self.side)

    def frame(self, n: int, occupied=None) -> np.ndarray:
        img = np.full((self.height, self.width, 3), self.background, np.uint8)
        for cell in range(self.cells) if occupied is None else occupied:
            x, y = self.offset(cell, n)
            img[y:y + self.side, x:x + self.side] = self._crops[cell]
        return img

    def cell_of(self, x: float, y: float) -> int:
        c = min(max(int(x // self.cw), 0), self.cols - 1)
        r = min(max(int(y // self.ch), 0), self.rows - 1)
        return r * self.cols + c


# ------------------------------------------------------------------------------ the node process
def node_command(namespace: str, params: dict | None = None) -> list[str]:
    """pose_node as users start it: the installed executable (`ros2 run pose_ros pose_node`
    runs that file) when the colcon install space has it, else `python -m`."""
    exe = ROOT / "install" / "pose_ros" / "lib" / "pose_ros" / "pose_node"
    base = [sys.executable, str(exe)] if exe.is_file() else [sys.executable, "-m", "pose_ros.ros.pose_node"]
    args = ["--ros-args", "-r", f"__ns:={namespace}"]
    for k, v in (params or {}).items():
        args += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    return [*base, *args]


def start_node(namespace: str, params: dict | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """Spawn pose_node (same environment: loopback DDS, this run's domain id); its output goes
    to ``log_path`` (or is discarded)."""
    if log_path is None:
        return subprocess.Popen(node_command(namespace, params), env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with open(log_path, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(node_command(namespace, params), env=dict(os.environ), stdout=out,
                                stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen) -> int | None:
    """SIGTERM, then SIGKILL after 15 s; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


@dataclass
class ProcSample:
    """One look at a process: resident memory (MiB), threads, open file descriptors."""

    rss_mib: float
    threads: int
    fds: int


def proc_sample(pid: int) -> ProcSample:
    """VmRSS and Threads from /proc/<pid>/status, the entries of /proc/<pid>/fd."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcSample(int(values["VmRSS"].split()[0]) / 1024.0, int(values["Threads"]),
                      len(os.listdir(f"/proc/{pid}/fd")))


# ------------------------------------------------------------------------------ the client
class Client:
    """A client node in this process: publishes Image + CameraInfo into ``namespace`` with
    the sensor QoS pose_node subscribes with, keeps every SkeletonArray (receive time, stamp,
    people) and the latest pose_node diagnostics. Call :meth:`spin_until` between publishes:
    publishing and receiving share this thread (measured here: with the executor spinning in
    a background thread while the main thread published, pose_node received only 0-26 of 30
    frames per second, with gaps over 2 s; spinning in the publishing thread, 23-28)."""

    def __init__(self, namespace: str, width: int, height: int):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        from pose_ros.core.camera import default_camera
        from pose_ros.msg import SkeletonArray
        from pose_ros.ros.convert import camera_info_msg
        from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("load_bench_client", context=self.ctx)
        self.ns = namespace.rstrip("/")
        self.pub_i = self.node.create_publisher(Image, f"{self.ns}/image", SENSOR_QOS)
        self.pub_c = self.node.create_publisher(CameraInfo, f"{self.ns}/camera_info", SENSOR_QOS)
        self.info = camera_info_msg(default_camera(width, height), Header(frame_id="camera"))
        self.lock = threading.Lock()
        # (received monotonic s, receive - stamp latency ms, stamp ns, [(id, cx, cy)])
        self.results: list[tuple[float, float, int, list[tuple[int, float, float]]]] = []
        self.diag: dict[str, str] = {}
        self.node.create_subscription(SkeletonArray, f"{self.ns}/skeletons", self._on_sk, RESULT_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, QoSProfile(depth=20))
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._image_type, self._header_type = Image, Header

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_sk(self, msg) -> None:
        now = self.now_ns()
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        # a person's place: mid-shoulder (BlazePose 11, 12), robust where the box is not
        # (an upper-body photo's guessed legs reach into the cell below)
        people = [(s.id, (s.keypoints[11].x + s.keypoints[12].x) / 2, (s.keypoints[11].y + s.keypoints[12].y) / 2)
                  for s in msg.skeletons]
        with self.lock:
            self.results.append((time.monotonic(), (now - stamp) * 1e-6, stamp, people))

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name.endswith(f"pose estimation in {self.ns}"):  # our node (diagnostic task name)
                with self.lock:
                    self.diag = {kv.key: kv.value for kv in st.values}

    def image_msg(self, rgb: np.ndarray):
        from pose_ros.ros.convert import rgb_to_image

        return rgb_to_image(rgb, self._header_type(frame_id="camera"))

    def publish(self, img, stamp_ns: int | None = None) -> int:
        """Stamp (``stamp_ns``, default now) and publish a prepared Image with its CameraInfo;
        the stamp in ns."""
        from builtin_interfaces.msg import Time

        ns = self.now_ns() if stamp_ns is None else int(stamp_ns)
        img.header.stamp = self.info.header.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
        self.pub_c.publish(self.info)
        self.pub_i.publish(img)
        return ns

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def received(self, stamp_ns: int) -> bool:
        with self.lock:
            return any(r[2] == stamp_ns for r in self.results[-5:])

    def spin_until(self, deadline: float, pred=None) -> bool:
        """Receive until time.monotonic() >= deadline or ``pred()`` is true; pred's value."""
        while time.monotonic() < deadline:
            if pred is not None and pred():
                return True
            self.executor.spin_once(timeout_sec=max(0.0, min(0.002, deadline - time.monotonic())))
        return bool(pred()) if pred is not None else False

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)
