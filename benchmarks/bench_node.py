"""pose_node benchmark over loopback DDS (pose_node in its own process, as users run it).

  * latency: image header stamp -> SkeletonArray received, at 640x480 and 1280x720, against
    the core pipeline alone on the same frames (the ROS overhead is the difference);
  * 60 Hz input for 10 s: processed rate, dropped frames, latency staying bounded (newest
    frame wins, nothing queues).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import rclpy
import skimage.data
from common import table
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from pose_ros.core.camera import default_camera
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.msg import SkeletonArray
from pose_ros.ros.convert import camera_info_msg, rgb_to_image
from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

NS = "/bench"


def frame(w: int, h: int, shift: int = 0) -> np.ndarray:
    s = int(h * 0.8)
    person = cv2.resize(skimage.data.astronaut(), (s, s), interpolation=cv2.INTER_AREA)
    img = np.full((h, w, 3), 90, np.uint8)
    x = (w - s) // 2 + shift
    img[h - s:, x:x + s] = person
    return img


def info(w: int, h: int, header: Header) -> CameraInfo:
    return camera_info_msg(default_camera(w, h), header)


class Bench:
    def __init__(self):
        self.node = rclpy.create_node("pose_bench")
        self.pub_i = self.node.create_publisher(Image, f"{NS}/image", SENSOR_QOS)
        self.pub_c = self.node.create_publisher(CameraInfo, f"{NS}/camera_info", SENSOR_QOS)
        self.lat: list[float] = []
        self.diag: dict[str, str] = {}
        self.node.create_subscription(SkeletonArray, f"{NS}/skeletons", self._on_sk, RESULT_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, QoSProfile(depth=10))

    def _on_sk(self, msg: SkeletonArray) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.lat.append((self.node.get_clock().now().nanoseconds * 1e-9 - stamp) * 1e3)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if "pose estimation" in st.name:
                self.diag = {kv.key: kv.value for kv in st.values}

    def publish(self, rgb: np.ndarray | tuple[Image, CameraInfo]) -> None:
        """Publish a frame; pre-built (Image, CameraInfo) pairs only get a new stamp."""
        if isinstance(rgb, tuple):
            img, inf = rgb
        else:
            img, inf = rgb_to_image(rgb, Header(frame_id="camera")), info(rgb.shape[1], rgb.shape[0], Header())
        stamp = self.node.get_clock().now().to_msg()
        img.header.stamp = inf.header.stamp = stamp
        inf.header.frame_id = "camera"
        self.pub_c.publish(inf)
        self.pub_i.publish(img)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.005)


def sequential_latency(b: Bench, w: int, h: int, n: int = 100) -> float:
    """One frame at a time (wait for its result): stamp -> received, median ms."""
    b.lat.clear()
    msgs = prebuilt(w, h, 20)
    for i in range(n + 5):
        got = len(b.lat)
        b.publish(msgs[i % len(msgs)])
        t0 = time.monotonic()
        while len(b.lat) == got and time.monotonic() - t0 < 2.0:
            rclpy.spin_once(b.node, timeout_sec=0.002)
    return float(np.median(b.lat[5:]))


def prebuilt(w: int, h: int, k: int) -> list[tuple[Image, CameraInfo]]:
    """k frames as ready messages, so the benchmark's own publishing costs little."""
    return [(rgb_to_image(frame(w, h, shift=i - k // 2), Header(frame_id="camera")), info(w, h, Header()))
            for i in range(k)]


def core_latency(w: int, h: int, n: int = 100) -> float:
    from bench_pipeline import node_detector_defaults

    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", **node_detector_defaults()))
    frames = [frame(w, h, shift=(i % 20) - 10) for i in range(n + 5)]
    ms = []
    for f in frames:
        t = time.perf_counter()
        pipe(f)
        ms.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ms[5:]))


def main() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pose_ros.ros.pose_node", "--ros-args",
                             "-r", f"__ns:={NS}", "-p", "backend:=onnxruntime"], env=dict(os.environ))
    rclpy.init()
    b = Bench()
    try:
        # wait for the node (model load) to answer
        t0 = time.monotonic()
        while not b.lat and time.monotonic() - t0 < 120:
            b.publish(frame(640, 480))
            b.spin_for(0.3)
        rows, stage_rows = [], []
        names = ("convert", "pipeline", "3d", "outputs")
        for w, h in ((640, 480), (1280, 720)):
            node_ms = sequential_latency(b, w, h)
            b.spin_for(1.2)  # a diagnostics message covering these frames (the node keeps 100)
            st = [float(b.diag.get(f"{n} median (ms)", "nan")) for n in names]
            core_ms = core_latency(w, h)
            rows.append([f"{w}x{h}", f"{core_ms:.1f}", f"{node_ms:.1f}", f"{node_ms - core_ms:.1f}",
                         f"{node_ms / core_ms:.2f}x"])
            stage_rows.append([f"{w}x{h}", *(f"{v:.1f}" for v in st), f"{node_ms - sum(st):.1f}"])
        print("\npose_node latency, one person, tracking mode, onnxruntime CPU (median ms; "
              "node = image stamp -> SkeletonArray received over DDS)")
        print(table(rows, ["input", "core pipeline", "pose_node", "ROS overhead", "node / core"]))
        print("\nWhere the node's time goes (median ms per stage inside pose_node, from its "
              "diagnostics; rest = image and result over DDS, executor wake-ups, CameraInfo pairing)")
        print(table(stage_rows, ["input", "image msg -> array", "pipeline", "3D", "messages + publish",
                                 "rest"]))

        # 60 Hz for 10 s
        b.lat.clear()
        b.spin_for(1.5)
        d0 = dict(b.diag)
        period, n = 1 / 60, 600
        msgs = prebuilt(640, 480, 40)
        t_start = time.monotonic()
        for i in range(n):
            b.publish(msgs[i % len(msgs)])
            next_t = t_start + (i + 1) * period
            while time.monotonic() < next_t:
                rclpy.spin_once(b.node, timeout_sec=max(0.0, min(0.002, next_t - time.monotonic())))
        elapsed = time.monotonic() - t_start
        b.spin_for(1.5)
        lat = np.array(b.lat)
        half = len(lat) // 2
        key = "dropped frames (total)" if "dropped frames (total)" in b.diag else "dropped frames"
        dropped = int(b.diag.get(key, 0)) - int(d0.get(key, 0))
        print(f"\n60 Hz input, 640x480, {n} frames in {elapsed:.1f} s:")
        print(table([[f"{n / elapsed:.1f}", f"{len(lat) / elapsed:.1f}", dropped,
                      b.diag.get("latency median (ms)", "?"),
                      f"{np.median(lat[:half]):.1f}", f"{np.median(lat[half:]):.1f}",
                      f"{np.percentile(lat, 95):.1f}", f"{lat.max():.1f}"]],
                    ["sent Hz", "processed Hz", "dropped (node)", "node-internal p50",
                     "received p50 1st half",
                     "p50 2nd half", "p95", "max"]))
        print("(bounded: the second half's latency is not higher than the first's -- no queue builds up)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        b.node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    main()
