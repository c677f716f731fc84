"""Start-up benchmark, warm model cache (every process measured from its spawn):

  * CLI: one `pose-ros infer PHOTO --out DIR` process (default settings, backend auto) until it
    exits, against one MediaPipe process doing the same work (read the photo, BlazePose
    model_complexity=1, draw, write: mediapipe_infer.py) -- median of --runs each;
  * pose_node: process start -> first SkeletonArray received over loopback DDS while this
    process publishes a 640x480 camera stream at 30 Hz -- median of --runs.
Targets (issue 8, item 11): CLI <= 1.2x the MediaPipe process; node <= 2 s.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from common import HERE, mediapipe_env, mediapipe_python, table

CLI_TARGET = 1.2  # x MediaPipe's process
NODE_TARGET_S = 2.0
WARM_UP_S = 4.0  # the stream runs this long before the first node starts (as a camera would)


def cli_command(photo: Path, out: Path) -> list[str]:
    exe = shutil.which("pose-ros")
    base = [exe] if exe else [sys.executable, "-m", "pose_ros.cli"]
    return [*base, "infer", str(photo), "--out", str(out), "--quiet"]


def wall(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-800:]}")
    return dt, r.stderr


def cli_rows(runs: int, use_mp: bool) -> tuple[list[list], float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.jpg"
        cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
        cmd = cli_command(photo, Path(tmp) / "ours")
        _, log = wall(cmd)  # warm the model cache (and the OS file cache)
        backend = re.search(r"backend[s]?[: ]+(.+)", log)
        py = mediapipe_python() if use_mp else None
        mp_cmd = [str(py), str(HERE / "mediapipe_infer.py"), str(photo), str(Path(tmp) / "mp")] if py else None
        if mp_cmd:
            wall(mp_cmd, mediapipe_env())
        ours_s, mp_s = [], []
        for _ in range(runs):  # in turn: a shared machine's load drifts
            ours_s.append(wall(cmd)[0])
            if mp_cmd:
                mp_s.append(wall(mp_cmd, mediapipe_env())[0])
        ours = float(np.median(ours_s))
        mp = float(np.median(mp_s)) if mp_s else None
    chosen = backend.group(1).split("->")[-1].strip() if backend else "auto"
    label = f"pose-ros infer photo.jpg (auto: {chosen})"
    rows = [[label, f"{ours:.2f}", f"{ours / mp:.2f}x" if mp else "n/a", f"<= {CLI_TARGET}x"]]
    if mp:
        rows.append(["MediaPipe 0.10.14 process (read, infer, draw, write)", f"{mp:.2f}", "1.00x", ""])
    return rows, mp


def node_first_skeleton(runs: int, params: tuple[str, ...] = ()) -> tuple[np.ndarray, str]:
    """Per run (rows): seconds from pose_node's spawn to [the first SkeletonArray received,
    the end of its model load (the stamp of its "model loaded in" log line), the model load
    itself (what that line says)]; and the backends it chose.
    params: extra ``-p name:=value`` node parameters."""
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from pose_ros.core.camera import default_camera
    from pose_ros.msg import SkeletonArray
    from pose_ros.ros.convert import camera_info_msg, rgb_to_image
    from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

    ns = "/startup_bench"
    person = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    rgb = np.full((480, 640, 3), 90, np.uint8)
    rgb[96:480, 128:512] = person
    img = rgb_to_image(rgb, Header(frame_id="camera"))
    info = camera_info_msg(default_camera(640, 480), Header(frame_id="camera"))
    rclpy.init()
    node = rclpy.create_node("startup_bench")
    pub_i = node.create_publisher(Image, f"{ns}/image", SENSOR_QOS)
    pub_c = node.create_publisher(CameraInfo, f"{ns}/camera_info", SENSOR_QOS)
    got: list[float] = []  # wall-clock receive times (the node's log stamps are wall clock)
    node.create_subscription(SkeletonArray, f"{ns}/skeletons",
                             lambda m: got.append(time.time()) if m.skeletons else None, RESULT_QOS)
    runs_s, backend = [], "?"

    def stream(seconds: float, t0: float) -> None:
        """Publish the 30 Hz stream and spin until ``got`` or for ``seconds`` from t0."""
        next_pub = time.monotonic()
        while time.monotonic() - t0 < seconds and not got:
            if time.monotonic() >= next_pub:
                img.header.stamp = info.header.stamp = node.get_clock().now().to_msg()
                pub_c.publish(info)
                pub_i.publish(img)
                next_pub += 1 / 30
            rclpy.spin_once(node, timeout_sec=0.005)

    try:
        stream(WARM_UP_S, time.monotonic())  # the camera has been running for a while
        for _ in range(runs):
            got.clear()
            t0, t0_wall = time.monotonic(), time.time()
            proc = subprocess.Popen([sys.executable, "-m", "pose_ros.ros.pose_node", "--ros-args",
                                     "-r", f"__ns:={ns}", *params], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            while not got and time.monotonic() - t0 < 120 and proc.poll() is None:
                stream(0.5, time.monotonic())
            proc.terminate()
            out = proc.communicate(timeout=20)[0]
            if not got:
                raise RuntimeError(f"pose_node gave no skeletons: {out[-800:]}")
            m = re.search(r"\[([0-9.]+)\] \[[^]]*pose_node\]: model loaded in ([0-9.]+) s: .*?-> (.*)", out)
            if m:
                backend = m.group(3).strip()
            runs_s.append([got[0] - t0_wall, float(m.group(1)) - t0_wall if m else np.nan,
                           float(m.group(2)) if m else np.nan])
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return np.array(runs_s), backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="processes per measurement (median)")
    ap.add_argument("--no-mediapipe", action="store_true")
    args, _ = ap.parse_known_args()
    rows, mp = cli_rows(args.runs, not args.no_mediapipe)
    node_runs, backend = node_first_skeleton(args.runs)
    first, loaded, load = np.median(node_runs, axis=0)
    rows += [["pose_node: spawn -> first SkeletonArray received", f"{first:.2f}",
              f"{first / mp:.2f}x" if mp else "n/a", f"<= {NODE_TARGET_S:.0f} s"],
             ["  imports, rclpy, parameters (spawn -> model load starts)", f"{loaded - load:.2f}", "", ""],
             ["  model load (node log: 'model loaded in', 0.1 s steps)", f"{load:.1f}", "", ""],
             ["  subscribe, discovery, first frame (model loaded -> received)", f"{first - loaded:.2f}",
              "", ""]]
    print(f"\nStart-up, warm model cache, median wall seconds of {args.runs} processes each "
          "(ratio = / MediaPipe process, lower is better)")
    print(table(rows, ["process", "median s", "vs MediaPipe", "target"]))
    print(f"pose_node runs: {', '.join(f'{t:.2f}' for t in node_runs[:, 0])} s; backends: {backend}")


if __name__ == "__main__":
    main()
