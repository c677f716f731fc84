"""Round trip of pose_ros messages between two processes over DDS.

``roundtrip_demo`` (the default ``--role demo``) starts a second process in the ``echo``
role, publishes SkeletonArray / SmplBodyArray messages and a TFMessage, receives them back
and checks they are bit-identical (NaN positions, constants, 10/72-float arrays included).
``--role tf`` publishes TF frames until stopped (used by the tests).
"""
from __future__ import annotations

import argparse
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node

from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.msg import Keypoint, Skeleton, SkeletonArray, SmplBody, SmplBodyArray

from .qos import RESULT_QOS
from .run import run_node
from .tf import TfBroadcaster


def sample_skeletons(seq: int, frame_id: str = "camera_color_optical_frame") -> SkeletonArray:
    """Two BlazePose-33 persons with varied content: NaN where unknown, every source constant."""
    rng = np.random.default_rng(seq)
    msg = SkeletonArray()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000 + seq, 123_456_789
    for pid in range(2):
        sk = Skeleton(id=seq * 10 + pid, layout=BLAZEPOSE_33.name, score=float(rng.uniform(0.5, 1)))
        sk.roi.x_offset, sk.roi.y_offset, sk.roi.width, sk.roi.height = 10 + pid, 20, 300, 400
        for j, name in enumerate(BLAZEPOSE_33.names):
            kp = Keypoint(name=name, x=float(rng.uniform(0, 640)), y=float(rng.uniform(0, 480)),
                          score=float(rng.uniform()))
            source = j % 6  # cycles through SOURCE_NONE .. SOURCE_SMPL
            kp.position_source = source
            if source == Keypoint.SOURCE_NONE:
                kp.position.x = kp.position.y = kp.position.z = math.nan
            else:
                kp.position.x, kp.position.y, kp.position.z = rng.normal(size=3).tolist()
            sk.keypoints.append(kp)
        sk.body_pose.position.x = math.nan if pid else 1.5
        sk.body_pose.orientation.w = 1.0
        msg.skeletons.append(sk)
    return msg


def sample_smpl(seq: int, frame_id: str = "camera_color_optical_frame") -> SmplBodyArray:
    rng = np.random.default_rng(1000 + seq)
    msg = SmplBodyArray()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec = 1_700_000_000 + seq
    body = SmplBody(id=seq)
    body.betas = rng.normal(size=10).astype(np.float32)
    body.pose = rng.normal(scale=0.3, size=72).astype(np.float32)
    body.translation.x, body.translation.y, body.translation.z = 0.1, -0.2, 2.5
    body.fit_error = 0.0123
    msg.bodies.append(body)
    return msg


def sample_transforms(seq: int, node: Node) -> list[TransformStamped]:
    """A REP-155 tree: body_1 under the camera, the wrist frame l_wrist_1 under body_1."""
    out = []
    stamp = node.get_clock().now().to_msg()
    for j, (parent, child) in enumerate((("camera_color_optical_frame", "body_1"), ("body_1", "l_wrist_1"))):
        t = TransformStamped()
        t.header.stamp = stamp
        t.header.frame_id = parent
        t.child_frame_id = child
        t.transform.translation.x = 0.1 * (j + 1)
        t.transform.translation.z = 2.0 + 0.001 * seq
        t.transform.rotation.w = 1.0
        out.append(t)
    return out


def canonical(msg) -> tuple:
    """A message as nested tuples with every float as its IEEE bytes at the wire width.

    Two messages are equal on the wire iff their canonical forms are equal (NaN == NaN,
    float32 compared as float32). Raw CDR bytes cannot be compared: padding is undefined.
    """
    out = []
    for name, typ in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        base = typ.split("<")[-1].rstrip(">").split("[")[0]
        if base in ("float", "double"):
            fmt = "<f" if base == "float" else "<d"
            vals = np.atleast_1d(np.asarray(value, np.float32 if base == "float" else np.float64))
            out.append((name, b"".join(struct.pack(fmt, v) for v in vals)))
        elif hasattr(value, "get_fields_and_field_types"):
            out.append((name, canonical(value)))
        elif isinstance(value, (list, tuple)) and value and hasattr(value[0], "get_fields_and_field_types"):
            out.append((name, tuple(canonical(v) for v in value)))
        elif isinstance(value, np.ndarray):
            out.append((name, tuple(value.tolist())))
        else:
            out.append((name, value if not isinstance(value, list) else tuple(value)))
    return tuple(out)


class Echo(Node):
    """Republishes everything received on in/* to out/*, unchanged."""

    def __init__(self) -> None:
        super().__init__("pose_ros_echo")
        for name, typ in (("skeletons", SkeletonArray), ("smpl", SmplBodyArray)):
            pub = self.create_publisher(typ, f"out/{name}", RESULT_QOS)
            self.create_subscription(typ, f"in/{name}", pub.publish, RESULT_QOS)


class TfTalker(Node):
    def __init__(self, rate_hz: float = 20.0) -> None:
        super().__init__("pose_ros_tf_talker")
        self._tf = TfBroadcaster(self)
        self._seq = 0
        self.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        self._seq += 1
        self._tf.send(sample_transforms(self._seq, self))


def run_demo(count: int, timeout: float) -> int:
    env = dict(os.environ)
    echo = subprocess.Popen([sys.executable, "-m", "pose_ros.ros.roundtrip_demo", "--role", "echo"],
                            env=env)
    rclpy.init()
    node = rclpy.create_node("pose_ros_roundtrip_demo")
    received: dict[str, list] = {"skeletons": [], "smpl": []}
    pubs = {}
    for name, typ in (("skeletons", SkeletonArray), ("smpl", SmplBodyArray)):
        pubs[name] = node.create_publisher(typ, f"in/{name}", RESULT_QOS)
        node.create_subscription(typ, f"out/{name}", received[name].append, RESULT_QOS)
    try:
        t0 = time.monotonic()
        # Wait until both directions are matched (our writers and the echo's writers).
        while not (all(p.get_subscription_count() > 0 for p in pubs.values())
                   and node.count_publishers("out/skeletons") > 0
                   and node.count_publishers("out/smpl") > 0):
            rclpy.spin_once(node, timeout_sec=0.05)
            if time.monotonic() - t0 > timeout:
                print("roundtrip_demo: the echo process was not discovered; is DDS blocked?",
                      file=sys.stderr)
                return 1
        sent = {"skeletons": [], "smpl": []}
        t1 = time.monotonic()
        rtts = []
        for seq in range(count):
            sent["skeletons"].append(sample_skeletons(seq))
            sent["smpl"].append(sample_smpl(seq))
            ts = time.monotonic()
            # Re-send until the echo answers: the first messages may race the echo's own
            # reader matching. Duplicates are dropped below by sequence number.
            while (len(received["skeletons"]) <= seq or len(received["smpl"]) <= seq) and \
                    time.monotonic() - t1 < timeout:
                if len(received["skeletons"]) <= seq:
                    pubs["skeletons"].publish(sent["skeletons"][-1])
                if len(received["smpl"]) <= seq:
                    pubs["smpl"].publish(sent["smpl"][-1])
                deadline = time.monotonic() + 0.5
                while (len(received["skeletons"]) <= seq or len(received["smpl"]) <= seq) and \
                        time.monotonic() < deadline:
                    rclpy.spin_once(node, timeout_sec=0.01)
                for name in received:  # drop re-sent duplicates
                    del received[name][seq + 1:]
            rtts.append(time.monotonic() - ts)
        rtt = time.monotonic() - t1
        ok = True
        for name in sent:
            same = sum(canonical(a) == canonical(b)
                       for a, b in zip(sent[name], received[name], strict=False))
            print(f"{name}: sent {count}, received {len(received[name])}, bit-identical {same}")
            ok &= same == count
        kp = received["skeletons"][0].skeletons[0].keypoints[0] if received["skeletons"] else None
        if kp is not None:
            print(f"first keypoint: {kp.name} x={kp.x:.1f} y={kp.y:.1f} position="
                  f"({kp.position.x}, {kp.position.y}, {kp.position.z}) source={kp.position_source}")
        print(f"{count} message pairs round trip: median {np.median(rtts) * 1e3:.1f} ms, total "
              f"{rtt * 1e3:.0f} ms; "
              f"{'OK' if ok else 'MISMATCH'}")
        return 0 if ok else 1
    finally:
        node.destroy_node()
        rclpy.shutdown()
        echo.terminate()
        echo.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roundtrip_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("demo", "echo", "tf"), default="demo")
    parser.add_argument("--count", type=int, default=20, help="message pairs to send (demo)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds (demo)")
    args, ros_args = parser.parse_known_args(argv)
    if args.role == "demo":
        return run_demo(args.count, args.timeout)
    return run_node(Echo if args.role == "echo" else TfTalker, f"roundtrip_demo {args.role}",
                    [sys.argv[0], *ros_args])


if __name__ == "__main__":
    sys.exit(main())
