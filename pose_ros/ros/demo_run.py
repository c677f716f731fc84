"""`make demo` without ROS launch: demo_source + pose_node as processes (the same
parameters the launch file uses), every output recorded to MCAP, an annotated image and a
3D skeleton plot written, a short summary printed; exits by itself.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from pose_ros.core.skeletons import get_layout
from pose_ros.msg import SkeletonArray, SmplBodyArray

from .mcap_record import McapRecorder
from .qos import RESULT_QOS, SENSOR_QOS, TF_QOS


def mesh_triangles(markers: MarkerArray | None) -> list[tuple[np.ndarray, tuple]]:
    """(T x 3 x 3 triangle corners in the marker frame, RGB colour) per TRIANGLE_LIST marker."""
    out = []
    for m in (markers.markers if markers is not None else []):
        if m.type == m.TRIANGLE_LIST and m.points:
            tri = np.array([[p.x, p.y, p.z] for p in m.points]).reshape(-1, 3, 3)
            out.append((tri, (m.color.r, m.color.g, m.color.b)))
    return out


def plot_3d(msg: SkeletonArray, path: Path, meshes: MarkerArray | None = None) -> None:
    """Skeletons (and smpl_node's mesh markers, same optical frame) in one 3D plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    for sk in msg.skeletons:
        layout = get_layout(sk.layout)
        p = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
        ok = np.isfinite(p).all(1)
        # optical frame (x right, y down, z forward) -> plot axes (x right, z forward, up)
        xs, ys, zs = p[:, 0], p[:, 2], -p[:, 1]
        for (a, b), c in zip(layout.limbs, layout.limb_colors(), strict=True):
            if ok[a] and ok[b]:
                ax.plot([xs[a], xs[b]], [ys[a], ys[b]], [zs[a], zs[b]], color=c / 255.0, lw=2)
        ax.scatter(xs[ok], ys[ok], zs[ok], s=8, color="k")
        ax.text(xs[ok][0], ys[ok][0], zs[ok].max() + 0.1, f"id {sk.id}")
    ax.set_xlabel("x right (m)")
    ax.set_ylabel("z forward (m)")
    ax.set_zlabel("up (m)")
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    for tri, colour in mesh_triangles(meshes):
        # optical -> plot axes as for the joints: (x, z, -y)
        ax.add_collection3d(Poly3DCollection(tri[..., [0, 2, 1]] * [1, 1, -1], facecolor=colour,
                                             edgecolor="none", alpha=0.35))
    ax.set_title(f"pose_ros 3D skeletons{' + SMPL mesh' if mesh_triangles(meshes) else ''} in "
                 f"{msg.header.frame_id}")
    pts = np.array([[k.position.x, k.position.z, -k.position.y] for sk in msg.skeletons
                    for k in sk.keypoints if np.isfinite(k.position.z)])
    if len(pts):
        c, r = pts.mean(0), max(np.ptp(pts, 0).max() / 2, 0.5)
        ax.set_xlim(c[0] - r, c[0] + r)
        ax.set_ylim(c[1] - r, c[1] + r)
        ax.set_zlim(c[2] - r, c[2] + r)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default="astronaut", help="demo_source source (photo, file, v4l2:N)")
    ap.add_argument("--rate", type=float, default=15.0, help="demo_source rate, Hz")
    ap.add_argument("--seconds", type=float, default=8.0, help="how long to record after the first result")
    ap.add_argument("--out", default="out", help="output folder")
    ap.add_argument("--no-smpl", action="store_true", help="do not start smpl_node (mesh, SMPL bodies)")
    ap.add_argument("--params", default=str(Path(__file__).resolve().parents[2] / "config" / "pose.yaml"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    params = ["--params-file", args.params] if Path(args.params).is_file() else []
    procs = [
        subprocess.Popen([sys.executable, "-m", "pose_ros.ros.demo_source", "--ros-args",
                          "-p", f"source:={args.source}", "-p", f"rate:={args.rate}"], env=env),
        # with smpl_node the mesh is the people_cloud (as pose.launch.py smpl:=true decides)
        subprocess.Popen([sys.executable, "-m", "pose_ros.ros.pose_node", "--ros-args", *params,
                          *([] if args.no_smpl else ["-p", "publish_people_cloud:=false"])], env=env),
    ]
    rclpy.init()
    node = rclpy.create_node("pose_ros_demo_recorder")
    topics = {"image": (Image, SENSOR_QOS), "camera_info": (CameraInfo, SENSOR_QOS),
              "skeletons": (SkeletonArray, RESULT_QOS), "markers": (MarkerArray, RESULT_QOS),
              "debug_image": (Image, SENSOR_QOS), "/diagnostics": (DiagnosticArray, QoSProfile(depth=10))}
    from tf2_msgs.msg import TFMessage

    topics["/tf"] = (TFMessage, TF_QOS)
    if not args.no_smpl:
        procs.append(subprocess.Popen([sys.executable, "-m", "pose_ros.ros.smpl_node"], env=env))
        topics.update(smpl=(SmplBodyArray, RESULT_QOS), smpl_markers=(MarkerArray, RESULT_QOS))
    topics["people_cloud"] = (PointCloud2, RESULT_QOS)
    rec = McapRecorder(node, out / "demo.mcap", topics)
    last: dict[str, object] = {}
    for name, cls, qos in (("skeletons", SkeletonArray, RESULT_QOS), ("smpl_markers", MarkerArray, RESULT_QOS),
                           ("smpl", SmplBodyArray, RESULT_QOS), ("debug_image", Image, SENSOR_QOS),
                           ("diag", DiagnosticArray, QoSProfile(depth=10))):
        topic = "/diagnostics" if name == "diag" else name
        node.create_subscription(cls, topic, lambda m, n=name: last.__setitem__(n, m), qos)
    t_start = time.monotonic()
    first = None
    try:
        print("demo: starting demo_source and pose_node (model load takes a few seconds) ...")
        while True:
            rclpy.spin_once(node, timeout_sec=0.05)
            if any(p.poll() is not None for p in procs):
                print("demo: a node exited early; see its log above", file=sys.stderr)
                return 1
            # smpl_node imports torch: on a busy CPU it can start after pose_node's first result
            if first is None and "skeletons" in last and (args.no_smpl or "smpl" in last):
                first = time.monotonic()
                print(f"demo: first skeletons{'' if args.no_smpl else ' and SMPL bodies'} after "
                      f"{first - t_start:.1f} s; recording {args.seconds:.0f} s")
            if first is not None and time.monotonic() - first > args.seconds:
                break
            if first is None and time.monotonic() - t_start > 120:
                print(f"demo: no skeletons{'' if args.no_smpl else ' / SMPL bodies'} within 120 s", file=sys.stderr)
                return 1
    finally:
        rec.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    import cv2

    if "debug_image" in last:
        m = last["debug_image"]
        rgb = np.frombuffer(m.data, np.uint8).reshape(m.height, m.width, 3)
        cv2.imwrite(str(out / "demo_annotated.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    sk = last["skeletons"]
    plot_3d(sk, out / "demo_skeleton3d.png", last.get("smpl_markers"))
    diag = {kv.key: kv.value for kv in last["diag"].status[0].values} if "diag" in last else {}
    node.destroy_node()
    rclpy.shutdown()
    print("\n== pose_ros demo summary ==")
    print(f"source: {args.source} at {args.rate:.0f} Hz -> pose_node ({diag.get('backend', '?')} on "
          f"{diag.get('device', '?')})")
    print(f"people in the last frame: {len(sk.skeletons)}; ids {[s.id for s in sk.skeletons]}")
    for s in sk.skeletons:
        k = {kp.name: kp for kp in s.keypoints}
        nose = k["nose"]
        print(f"  id {s.id}: score {s.score:.2f}, nose at ({nose.x:.0f}, {nose.y:.0f}) px, "
              f"{nose.position.z:.2f} m from the camera (source {nose.position_source})")
    if not args.no_smpl:
        bodies = last["smpl"].bodies if "smpl" in last else []
        print(f"SMPL (smpl_node, built-in body): {len(bodies)} bodies in the last message"
              + "".join(f"; id {b.id} fit error {b.fit_error * 1e3:.0f} mm" for b in bodies)
              + f"; mesh triangles plotted: {sum(len(t) for t, _ in mesh_triangles(last.get('smpl_markers')))}")
    print(f"rates: input {diag.get('input rate (Hz)', '?')} Hz, processed "
          f"{diag.get('processed rate (Hz)', '?')} Hz, dropped {diag.get('dropped frames', '?')}, "
          f"latency median {diag.get('latency median (ms)', '?')} ms")
    print(f"recorded {sum(rec.counts.values())} messages: "
          + ", ".join(f"{t} {n}" for t, n in rec.counts.items()))
    mb = (out / "demo.mcap").stat().st_size / 1e6
    print(f"files: {out / 'demo.mcap'} ({mb:.0f} MB, zstd chunks; open in Foxglove), "
          f"{out / 'demo_annotated.png'}, "
          f"{out / 'demo_skeleton3d.png'}")
    return 0 if sk.skeletons else 1


if __name__ == "__main__":
    sys.exit(main())
