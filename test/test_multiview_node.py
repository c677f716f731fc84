"""multiview_node (multi-camera fusion, ROS side) over real DDS, its launch plan, FusedIds.

Oracles: 3D joints chosen here, projected into three cameras of known K and pose with
cv2.projectPoints (not the code under test); the camera poses reach the node as real /tf_static
messages. The end-to-end test runs three pose_node processes (namespaced, as
multiview.launch.py plans them) on synthetic images whose dots (test_spec_models' dot model)
are drawn at the projections of two known 3D points."""
from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
import transforms3d
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from conftest import ROOT
from pose_ros.core.fused_ids import FusedIds
from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17
from pose_ros.msg import Keypoint, Skeleton, SkeletonArray
from pose_ros.ros import launch_plan
from pose_ros.ros.launch_plan import LaunchPlanError, plan_multiview
from pose_ros.ros.qos import RESULT_QOS, TF_QOS
from pose_ros.ros.tf_lookup import TF_STATIC_QOS

W, H = 640, 480
K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])


def retry_timing(fn, attempts: int = 3) -> None:
    """Run ``fn`` up to ``attempts`` times; re-raise the last AssertionError (scripted-timing tests)."""
    for i in range(attempts):
        try:
            fn()
            return
        except AssertionError:
            if i == attempts - 1:
                raise
            print(f"{fn.__name__}: attempt {i + 1} failed, retrying with a fresh rig")


# ------------------------------------------------------------------------------ the scene
def look_at(eye, target) -> tuple[np.ndarray, np.ndarray]:
    """world <- optical frame (R columns: x right, y down, z forward) of a camera at ``eye``
    looking at ``target``, world z up."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z]), np.asarray(eye, float)


def cameras(n: int = 3, radius: float = 3.5):
    """n cameras on a circle around the origin, 1.6 m high, looking at (0, 0, 1)."""
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.3
        out.append(look_at(np.array([radius * np.cos(a), radius * np.sin(a), 1.6]), [0.0, 0.0, 1.0]))
    return out


def project(R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """OpenCV's projection (the oracle): world (N, 3) -> pixels (N, 2) of camera (R, t) = world <- cam."""
    rvec, _ = cv2.Rodrigues(R.T)
    px, _ = cv2.projectPoints(np.asarray(X, np.float64).reshape(-1, 1, 3), rvec, -R.T @ t, K, np.zeros(5))
    return px.reshape(-1, 2)


# a standing COCO-17 person, metres (x forward, y left, z up), joints off a plane so depth matters
_FIG = {"nose": (0.1, 0, 1.62), "left_eye": (0.08, 0.03, 1.66), "right_eye": (0.08, -0.03, 1.66),
        "left_ear": (0.02, 0.08, 1.64), "right_ear": (0.02, -0.08, 1.64), "left_shoulder": (0, 0.19, 1.42),
        "right_shoulder": (0, -0.19, 1.42), "left_elbow": (0.05, 0.26, 1.12), "right_elbow": (-0.05, -0.26, 1.12),
        "left_wrist": (0.22, 0.24, 0.95), "right_wrist": (-0.1, -0.3, 0.86), "left_hip": (0, 0.11, 0.92),
        "right_hip": (0, -0.11, 0.92), "left_knee": (0.08, 0.12, 0.5), "right_knee": (-0.04, -0.12, 0.5),
        "left_ankle": (0.0, 0.13, 0.08), "right_ankle": (-0.12, -0.13, 0.1)}


def person(xy, yaw: float = 0.0) -> np.ndarray:
    """(17, 3) COCO-17 joints of the figure standing at xy (m), turned by yaw (rad)."""
    Rz = transforms3d.euler.euler2mat(0, 0, yaw)
    return np.array([_FIG[n] for n in COCO_17.names]) @ Rz.T + [xy[0], xy[1], 0.0]


TRUTH = [person((0.3, -0.4), 0.5), person((-0.5, 0.8), 2.0)]


def skeleton_msg(xy: np.ndarray, track_id: int, layout=COCO_17, score=0.9) -> Skeleton:
    sk = Skeleton(id=track_id, layout=layout.name, score=score)
    for name, (x, y) in zip(layout.names, xy, strict=True):
        sk.keypoints.append(Keypoint(name=name, x=float(x), y=float(y), score=score,
                                     position_source=Keypoint.SOURCE_NONE))
    return sk


def info_msg(header: Header) -> CameraInfo:
    return CameraInfo(header=header, width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=K.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                      p=np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist())


def static_tf(world: str, frames: dict[str, tuple[np.ndarray, np.ndarray]]) -> TFMessage:
    out = TFMessage()
    for child, (R, t) in frames.items():
        ts = TransformStamped(header=Header(frame_id=world), child_frame_id=child)
        ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = (float(v) for v in t)
        q = transforms3d.quaternions.mat2quat(R)
        ts.transform.rotation.w, ts.transform.rotation.x = float(q[0]), float(q[1])
        ts.transform.rotation.y, ts.transform.rotation.z = float(q[2]), float(q[3])
        out.transforms.append(ts)
    return out


_RUN = itertools.count()


class Rig:
    """A MultiviewNode and a client node (its fake cameras, /tf_static, listeners) in one
    context, spun by a background executor. Camera names are unique per rig."""

    def __init__(self, n_cams: int = 3, **params):
        tag = f"mv{os.getpid()}_{next(_RUN)}"
        self.names = [f"{tag}_{c}" for c in "abcde"[:n_cams]]
        self.world = f"{tag}_world"
        self.ns = f"/{tag}"
        base = {"cameras": self.names, "world_frame": self.world, "log_throttle": 1.0,
                "camera_info_topic": "/{camera}/color/camera_info", "diagnostics_period": 0.2}
        base.update(params)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        from pose_ros.ros.multiview_node import MultiviewNode

        self.node = MultiviewNode(context=self.ctx, namespace=self.ns,
                                  parameter_overrides=[Parameter(k, value=v) for k, v in base.items()])
        self.client = c = rclpy.create_node("mv_test_client", namespace=self.ns, context=self.ctx)
        self.lock = threading.Lock()
        self.got: dict[str, list] = {"skeletons": [], "markers": [], "tf": [], "log": [], "diag": []}
        c.create_subscription(SkeletonArray, "fused/skeletons", self._keep("skeletons"), RESULT_QOS)
        c.create_subscription(MarkerArray, "fused/markers", self._keep("markers"), RESULT_QOS)
        c.create_subscription(TFMessage, "/tf", self._keep("tf"), TF_QOS)
        c.create_subscription(DiagnosticArray, "/diagnostics", self._keep("diag"), 50)
        c.create_subscription(Log, "/rosout", self._keep("log"),
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.pub_sk = {n: c.create_publisher(SkeletonArray, f"/{n}/skeletons", RESULT_QOS) for n in self.names}
        self.pub_info = {n: c.create_publisher(CameraInfo, f"/{n}/color/camera_info", RESULT_QOS)
                         for n in self.names}
        self.pub_static = c.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self.cams = dict(zip(self.names, cameras(n_cams), strict=True))
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(c)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def frame(self, name: str) -> str:
        return f"{name}_color_optical_frame"

    def publish_tf(self, names) -> None:
        self.pub_static.publish(static_tf(self.world, {self.frame(n): self.cams[n] for n in names}))

    def _keep(self, key):
        def cb(msg):
            with self.lock:
                self.got[key].append(msg)
        return cb

    def send(self, names, truth=TRUTH, noise_px: float = 0.5, rng=None, layout=None, info=True, info_fn=None,
             stamp=None):
        """One frame from each camera in ``names``: the truth projected (OpenCV) + noise;
        returns the stamp (default now). layout: {camera: Layout} to publish another layout from a camera."""
        rng = rng or np.random.default_rng(0)
        stamp = stamp or self.client.get_clock().now().to_msg()
        for n in names:
            R, t = self.cams[n]
            h = Header(stamp=stamp, frame_id=self.frame(n))
            if info:
                self.pub_info[n].publish((info_fn or info_msg)(h))
            msg = SkeletonArray(header=h)
            for i, X in enumerate(truth):
                xy = project(R, t, X) + rng.normal(0, noise_px, (len(X), 2))
                lay = (layout or {}).get(n, COCO_17)
                if lay is not COCO_17:
                    xy = np.resize(xy, (len(lay.names), 2))
                msg.skeletons.append(skeleton_msg(xy, 100 + 10 * i + self.names.index(n), lay))
            self.pub_sk[n].publish(msg)
        return stamp

    def fused(self) -> list[SkeletonArray]:
        with self.lock:
            return list(self.got["skeletons"])

    def logs(self, text: str, level=Log.ERROR) -> list[Log]:
        with self.lock:
            return [m for m in self.got["log"] if text in m.msg and m.level >= level and m.name.endswith("multiview_node")]

    def diagnostics(self) -> list:
        """This rig's multiview_node statuses, oldest first."""
        with self.lock:
            return [st for m in self.got["diag"] for st in m.status
                    if st.name == "multiview_node: multi-camera fusion"
                    and any(kv.key == f"input rate {self.names[0]} (Hz)" for kv in st.values)]

    def until(self, pred, timeout=20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return pred()

    def close(self):
        self.executor.shutdown(timeout_sec=10)
        self.thread.join(timeout=10)
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.ctx)


def positions(sk: Skeleton) -> np.ndarray:
    return np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])


def match_truth(msg: SkeletonArray, truth=TRUTH) -> list[tuple[Skeleton, np.ndarray, float]]:
    """Each true person with its nearest fused skeleton and the max joint error (m)."""
    out = []
    for X in truth:
        errs = [(np.nanmax(np.linalg.norm(positions(sk) - X, axis=1)), sk) for sk in msg.skeletons]
        e, sk = min(errs, key=lambda x: x[0])
        out.append((sk, X, float(e)))
    return out


def stamp_ns(s) -> int:
    return s.sec * 10**9 + s.nanosec


# ------------------------------------------------------------------------------ node over DDS
def test_three_cameras_fuse_to_the_truth():
    """Two people seen by 3 cameras (0.5 px noise): fused joints within 2 cm of the truth, the
    input stamp, frame_id = world_frame, TRIANGULATED, ids stable over frames and distinct,
    body_<id> TF in the world frame at the mid-hip, markers in the world frame. id_max_distance
    0: the ids stay only because the cameras' 2D track ids continue."""
    rig = Rig(3, id_max_distance=0.0)
    try:
        rig.publish_tf(rig.names)
        rng = np.random.default_rng(1)
        stamps = []
        for _ in range(6):
            stamps.append(rig.send(rig.names, rng=rng))
            time.sleep(0.1)
        assert rig.until(lambda: len([m for m in rig.fused() if len(m.skeletons) == 2]) >= 4), rig.fused()
        outs = [m for m in rig.fused() if m.skeletons]
        sent = {stamp_ns(s) for s in stamps}
        ids = []
        print(f"3 views, 0.5 px noise: max joint error {max(e for m in outs for _, _, e in match_truth(m)) * 1e3:.1f} mm")
        for msg in outs:
            assert stamp_ns(msg.header.stamp) in sent  # the input stamp, not a new one
            assert msg.header.frame_id == rig.world
            assert len(msg.skeletons) == 2
            for sk, _, err in match_truth(msg):
                assert err < 0.02, err  # measured max 13 mm (max over 34 joints x frames)
                assert sk.layout == "coco_17" and [k.name for k in sk.keypoints] == list(COCO_17.names)
                assert all(k.position_source == Keypoint.SOURCE_TRIANGULATED for k in sk.keypoints)
                assert all(np.isnan(k.x) and np.isnan(k.y) for k in sk.keypoints)
                assert 0.85 < sk.score <= 0.9 + 1e-6  # the views' confidences
            ids.append(tuple(sk.id for sk, _, _ in match_truth(msg)))
        assert len(set(ids)) == 1 and len(set(ids[0])) == 2, ids  # stable and distinct
        assert not {100, 101, 102, 110, 111, 112} & set(ids[0])  # fused ids are new ids
        # TF: body_<id> (child of the world frame) at the mid-hip of each true person
        for pid, X in zip(ids[0], TRUTH, strict=True):
            assert rig.until(lambda p=pid: any(t.child_frame_id == f"body_{p}" for m in list(rig.got["tf"])
                                               for t in m.transforms), timeout=5)
            with rig.lock:
                body = [t for m in rig.got["tf"] for t in m.transforms if t.child_frame_id == f"body_{pid}"][-1]
            assert body.header.frame_id == rig.world
            tr = body.transform.translation
            mid_hip = (X[COCO_17.index("left_hip")] + X[COCO_17.index("right_hip")]) / 2
            assert np.linalg.norm([tr.x - mid_hip[0], tr.y - mid_hip[1], tr.z - mid_hip[2]]) < 0.02
            with rig.lock:
                joints = {t.child_frame_id: t.header.frame_id for m in rig.got["tf"] for t in m.transforms}
            assert joints.get(f"l_wrist_{pid}") == f"body_{pid}"  # REP-155 names, as pose_node
        with rig.lock:
            marks = [mk for m in rig.got["markers"] for mk in m.markers]
        assert marks and all(mk.header.frame_id == rig.world for mk in marks)
        assert {mk.ns for mk in marks} >= {"limbs", "joints", "labels"}
        assert rig.until(lambda: rig.diagnostics(), 5)
        st = rig.diagnostics()[-1]
        assert st.level == DiagnosticStatus.OK and st.message == "ok", st
        values = {kv.key: kv.value for kv in st.values}
        assert values["world frame"] == rig.world and values["persons"] == "2"
        assert all(float(values[f"input rate {n} (Hz)"]) > 0 for n in rig.names)
    finally:
        rig.close()


def test_one_camera_stops_still_fused_from_two():
    """Camera c stops: each frame set is fused from a and b after max_wait (stamps of the new
    frames, joints still within 2 cm)."""
    rig = Rig(3, max_wait=0.15, diagnostics_window=1.0)
    try:
        rig.publish_tf(rig.names)
        for _ in range(3):
            rig.send(rig.names)
            time.sleep(0.1)
        assert rig.until(lambda: any(len(m.skeletons) == 2 for m in rig.fused()))
        rng = np.random.default_rng(2)
        # c was sending 0.1 s ago (less than max_wait): the next frame set, without c, waits
        # for it and comes out after max_wait of stamp time, by the timer (no arrival follows)
        first = rig.send(rig.names[:2], rng=rng)
        assert rig.until(lambda: any(stamp_ns(m.header.stamp) == stamp_ns(first) for m in rig.fused()), 5)
        time.sleep(0.1)
        two = []
        for _ in range(5):
            two.append(rig.send(rig.names[:2], rng=rng))
            time.sleep(0.1)
        want = {stamp_ns(s) for s in two}
        assert rig.until(lambda: len({stamp_ns(m.header.stamp) for m in rig.fused()} & want) >= 4), \
            [stamp_ns(m.header.stamp) for m in rig.fused()]
        for msg in rig.fused():
            if stamp_ns(msg.header.stamp) in want:
                assert len(msg.skeletons) == 2
                for _, _, err in match_truth(msg):
                    assert err < 0.02, err
        # diagnostics (window 1 s) name the silent camera while a and b go on
        c = rig.names[2]

        def warned() -> bool:
            return any(st.level == DiagnosticStatus.WARN and st.message == f"no skeletons from {c} for 1 s"
                       for st in rig.diagnostics())
        deadline = time.monotonic() + 10
        while not warned() and time.monotonic() < deadline:
            rig.send(rig.names[:2], rng=rng)
            time.sleep(0.1)
        assert warned(), [st.message for st in rig.diagnostics()]
    finally:
        rig.close()


def test_camera_that_comes_back_is_fused_again():
    """c stops for 1 s (max_wait 0.4 s: it dropped out), then sends again (always the last of
    the three to arrive, e.g. the slowest computer): its frames join the fused sets again."""
    rig = Rig(3, max_wait=0.4)
    try:
        rig.publish_tf(rig.names)
        rng = np.random.default_rng(5)
        for names in [rig.names] * 3 + [rig.names[:2]] * 10 + [rig.names] * 6:
            rig.send(names, rng=rng)
            time.sleep(0.1)
        assert rig.until(lambda: rig.node.stats["fused"] >= 16, 5)
        time.sleep(0.3)
        assert rig.node.stats["views"] == 3, (rig.node.stats, rig.node.grouper.late)
    finally:
        rig.close()


def rectified_info(header: Header) -> CameraInfo:
    """A rectified stream's CameraInfo: K and D describe the raw sensor (here deliberately
    far off), P = [K | 0] the rectified image the keypoints are in."""
    msg = info_msg(header)
    msg.k = (K * [[1.3], [1.3], [1]]).reshape(-1).tolist()
    msg.d = [0.2, -0.1, 0.0, 0.0, 0.0]
    return msg


@pytest.mark.parametrize("rectified", [True, False])
def test_rectified_uses_p(rectified):
    """rectified:=true: CameraInfo P and no distortion (joints within 2 cm); rectified:=false
    reads K and D, which belong to the raw image: the fusion is then far off (or empty)."""
    rig = Rig(3, rectified=rectified)
    try:
        rig.publish_tf(rig.names)
        rng = np.random.default_rng(7)
        for _ in range(4):
            rig.send(rig.names, rng=rng, info_fn=rectified_info)
            time.sleep(0.1)
        assert rig.until(lambda: rig.node.stats["fused"] >= 3, 10)
        time.sleep(0.2)
        errs = [e for m in rig.fused() if m.skeletons for _, _, e in match_truth(m)]
        if rectified:
            assert errs and max(errs) < 0.02, errs
        else:
            assert not errs or min(errs) > 0.1, errs
    finally:
        rig.close()


def test_moving_camera_uses_tf_at_the_skeleton_stamp():
    """Camera a rides on a robot: its pose changes every frame and /tf runs ahead (the pose
    0.05 s later, 0.3 m further, is already known). Two cameras, so a wrong pose cannot be
    outvoted: the fused joints are right only with the transform at the skeleton stamp."""
    rig = Rig(2)
    a, b = rig.names
    try:
        rig.publish_tf([b])
        pub_tf = rig.client.create_publisher(TFMessage, "/tf", TF_QOS)
        R0, t0 = rig.cams[a]
        rng = np.random.default_rng(6)
        sent = []
        for k in range(10):  # 9 stamps checked, 4 needed: best-effort frames can be lost under load
            now = rig.client.get_clock().now()
            stamp = now.to_msg()
            shift = np.array([0.0, 0.3, 0.0]) * (k % 5)  # back and forth over 1.2 m
            rig.cams[a] = (R0, t0 + shift)
            msg = static_tf(rig.world, {rig.frame(a): (R0, t0 + shift)})
            ahead = static_tf(rig.world, {rig.frame(a): (R0, t0 + shift + [0.0, 0.3, 0.0])})
            msg.transforms[0].header.stamp = stamp
            ahead.transforms[0].header.stamp = (now + rclpy.duration.Duration(seconds=0.05)).to_msg()
            pub_tf.publish(msg)
            pub_tf.publish(ahead)
            time.sleep(0.02)
            h = {n: Header(stamp=stamp, frame_id=rig.frame(n)) for n in rig.names}
            for n in rig.names:
                rig.pub_info[n].publish(info_msg(h[n]))
                R, t = rig.cams[n]
                rig.pub_sk[n].publish(SkeletonArray(header=h[n], skeletons=[
                    skeleton_msg(project(R, t, X) + rng.normal(0, 0.3, (17, 2)), 20 + i) for i, X in enumerate(TRUTH)]))
            sent.append(stamp_ns(stamp))
            time.sleep(0.1)
        assert rig.until(lambda: len([m for m in rig.fused() if len(m.skeletons) == 2 and
                                      stamp_ns(m.header.stamp) in sent[1:]]) >= 4, 10), rig.fused()
        for msg in rig.fused():
            if stamp_ns(msg.header.stamp) in sent[1:] and msg.skeletons:
                for _, _, err in match_truth(msg):
                    assert err < 0.03, err  # two views, 0.3 px noise
        assert rig.node.stats["tf_not_at_stamp"] == 0
    finally:
        rig.close()


def test_old_stamps_and_staggered_cameras_still_group():
    """See _old_stamps_and_staggered_cameras_still_group. Up to 3 attempts, each with a fresh rig: the test's own publisher (rclpy
    executor in a background thread) was seen stalling for ~3 s on a quiet 2-core machine,
    which breaks the frame-set timing it scripts; the assertions are unchanged."""
    retry_timing(_old_stamps_and_staggered_cameras_still_group)


def _old_stamps_and_staggered_cameras_still_group():
    """Skeletons arrive 2 s after their stamp (inference latency, or another computer's clock
    2 s behind) and 40 ms apart per camera: every frame set is still fused from all three
    views (max_wait 1 s counts stamp time from the newest arrival, not this node's clock)."""
    rig = Rig(3, max_wait=1.0)
    try:
        rig.publish_tf(rig.names)
        rng = np.random.default_rng(4)
        sent = []
        for _ in range(5):
            stamp = rig.client.get_clock().now()
            stamp = (stamp - rclpy.duration.Duration(seconds=2.0)).to_msg()
            for n in rig.names:
                R, t = rig.cams[n]
                h = Header(stamp=stamp, frame_id=rig.frame(n))
                rig.pub_info[n].publish(info_msg(h))
                msg = SkeletonArray(header=h, skeletons=[
                    skeleton_msg(project(R, t, X) + rng.normal(0, 0.5, (17, 2)), 7 + i) for i, X in enumerate(TRUTH)])
                rig.pub_sk[n].publish(msg)
                time.sleep(0.04)
            sent.append(stamp_ns(stamp))
            time.sleep(0.1)
        # generous timeout: a loaded 2-core CI machine once delivered the last set after > 5 s
        assert rig.until(lambda: {stamp_ns(m.header.stamp) for m in rig.fused() if m.skeletons} >= set(sent[1:]), 20), \
            (sent, [stamp_ns(m.header.stamp) for m in rig.fused()])
        assert rig.node.stats["views"] == 3 and rig.node.grouper.dropped == 0
    finally:
        rig.close()


def test_bad_cameras_get_throttled_errors_and_the_others_go_on():
    """See _bad_cameras_get_throttled_errors_and_the_others_go_on. Up to 3 attempts, each with a fresh rig: the test's own publisher (rclpy
    executor in a background thread) was seen stalling for ~3 s on a quiet 2-core machine,
    which breaks the frame-set timing it scripts; the assertions are unchanged."""
    retry_timing(_bad_cameras_get_throttled_errors_and_the_others_go_on)


def _bad_cameras_get_throttled_errors_and_the_others_go_on():
    """Five cameras: c has no TF, d no CameraInfo, e publishes another layout. Each gets its own
    clear, throttled error naming the camera and the fix; a and b are still fused."""
    rig = Rig(5, log_throttle=1.0)
    a, b, c, d, e = rig.names
    try:
        rig.publish_tf([a, b, d, e])
        rng = np.random.default_rng(3)
        t0 = time.monotonic()
        stamps = []
        def all_logged():
            return (rig.logs("differs from the other cameras") and rig.logs("no CameraInfo received")
                    and rig.logs("no transform"))

        # 3 s of frames, longer (up to 15 s) if a loaded CI machine has not logged all three yet
        while time.monotonic() - t0 < 3.0 or (not all_logged() and time.monotonic() - t0 < 15.0):
            # d first, then the others with its stamp: one frame set (d sent last could come after
            # the set was complete without it on a fast machine, and be discarded as late)
            s = rig.send([d], rng=rng, info=False)
            rig.send([a, b, c, e], rng=rng, layout={e: BLAZEPOSE_33}, stamp=s)
            stamps.append(s)
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        assert rig.until(all_logged, 5)
        tf_err = rig.logs(f"camera {c}: no transform '{rig.world}' <- '{rig.frame(c)}'")
        info_err = rig.logs(f"camera {d}: no CameraInfo received on /{d}/color/camera_info")
        layout_err = rig.logs(f"camera {e}: skeleton layout 'blazepose_33' (33 keypoints) differs")
        assert tf_err and "static transform" in tf_err[0].msg
        assert info_err and "publish the camera's CameraInfo" in info_err[0].msg
        assert layout_err and "same model" in layout_err[0].msg
        # ~30 frame sets in 3 s, log_throttle 1 s: about 4 of each (unthrottled: ~30; slack for a
        # loaded machine stretching the processing)
        for errs in (tf_err, info_err, layout_err):  # once per log_throttle (1 s) at most, +slack
            assert 1 <= len(errs) <= elapsed + 3, (elapsed, [m.msg for m in errs])
        good = [m for m in rig.fused() if len(m.skeletons) == 2]
        assert len(good) >= 3  # a and b go on being fused (of ~30 frame sets; fewer on a loaded machine)
        for msg in good:
            for _, _, err in match_truth(msg):
                assert err < 0.03, err  # two views only
        # every frame set counts its errors (diagnostics), the log is throttled
        assert rig.node.stats["error_tf"] > len(tf_err) and rig.node.stats["error_camera_info"] > len(info_err)
        st = rig.diagnostics()[-1]
        assert st.level == DiagnosticStatus.WARN and "errors in the last" in st.message, st
    finally:
        rig.close()


def test_yaml_matches_declared_parameters():
    """config/multiview.yaml (the launch's default parameter file) lists every parameter the
    node declares, with its default; a node started with it declares exactly those."""
    from pose_ros.ros.multiview_node import PARAMS, MultiviewNode

    cfg = yaml.safe_load((ROOT / "config" / "multiview.yaml").read_text())["/**"]["ros__parameters"]
    assert set(cfg) == set(PARAMS)
    for k, v in cfg.items():
        assert v == PARAMS[k][0], k
    ctx = rclpy.Context()
    rclpy.init(args=["x", "--ros-args", "--params-file", str(ROOT / "config" / "multiview.yaml")], context=ctx)
    try:
        node = MultiviewNode(context=ctx)
        try:
            declared = {n for n in node._parameters if not n.startswith("diagnostic_updater.")}
            assert declared - {"use_sim_time", "start_type_description_service"} == set(PARAMS)
            assert node.p == {k: PARAMS[k][0] for k in PARAMS}
            for k in PARAMS:
                assert node.describe_parameter(k).description == PARAMS[k][1]
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_node_imports_no_torch():
    """torch is optional for users: the fusion node must not load it."""
    code = "import sys, pose_ros.ros.multiview_node; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_bad_parameters_name_the_fix():
    from pose_ros.ros.multiview_node import MultiviewNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        for params, word in (({"cameras": ["only_one"]}, "at least 2 cameras"),
                             ({"cameras": ["a", "a"]}, "twice"),
                             ({"min_views": 4}, "more than the 3 cameras"),
                             ({"skeletons_topic": "/skeletons"}, "no {camera}"),
                             ({"world_frame": ""}, "world_frame is empty")):
            with pytest.raises(ValueError, match=word):
                MultiviewNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        # at run time: refused with the reason, or applied to the fuser
        node = MultiviewNode(context=ctx, parameter_overrides=[Parameter("world_frame", value="/map")])
        try:
            bad = node.set_parameters([Parameter("min_views", value=4)])[0]
            assert not bad.successful and "more than the 3 cameras" in bad.reason
            assert node.set_parameters([Parameter("inlier_px", value=7.5)])[0].successful
            assert node.fuser.inlier_px == 7.5 and node.fuser.min_views == 2
            assert node._world() == "map"  # a leading slash is not part of a TF frame name
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_ctrl_c_exits_cleanly():
    """The installed executable (what `ros2 run` / launch start): SIGINT while importing and
    while spinning exits 0 without a traceback (test_shutdown's process-group Ctrl-C)."""
    import test_shutdown
    from test_shutdown import LIB, Proc, wait_mapped

    test_shutdown.COMMANDS.setdefault("multiview_exe", (str(LIB / "multiview_node"),))
    proc = Proc("multiview_exe")
    assert wait_mapped(proc, "numpy"), proc.text[-2000:]
    proc.assert_clean(proc.ctrl_c())
    proc = Proc("multiview_exe", "-p", "world_frame:=map")
    assert proc.wait_for("fusing", timeout=60), proc.text[-2000:]
    assert "into 'map'" in proc.text and "/cam_a/skeletons" in proc.text
    time.sleep(0.3)
    proc.assert_clean(proc.ctrl_c())


# ------------------------------------------------------------------------------ FusedIds
def test_fused_ids_follow_members_then_distance():
    issued = iter(range(1, 100))
    ids = FusedIds(lambda: next(issued), max_distance=0.5, keep_s=1.0)
    A, B = np.zeros((3, 3)), np.ones((3, 3)) * 3.0
    first = ids.update([[("a", 5), ("b", 7)], [("a", 6), ("b", 8)]], [A, B], 0.0)
    assert first == [1, 2]
    # same 2D tracks, people listed in the other order and moved 1 m (beyond max_distance)
    assert ids.update([[("a", 6)], [("b", 7), ("c", 1)]], [B + 1, A + 1], 0.1) == [2, 1]
    # every camera re-found person 1 under new 2D ids: nearest within 0.5 m keeps the id
    assert ids.update([[("a", 50), ("b", 51)]], [A + 1.2], 0.2) == [1]
    # untracked sources (id 0) and nobody near: a new id
    assert ids.update([[("a", 0), ("b", 0)]], [A + 10], 0.3) == [3]
    # a shared 2D track beats a nearer person (person 0 sits on id 3's spot); one-to-one
    assert ids.update([[("a", 50)], [("z", 9)]], [A + 10, A + 10.1], 0.4) == [1, 3]
    # forgotten after keep_s; a stamp going backwards forgets everything
    assert ids.update([[("a", 50)]], [A + 1.2], 2.0) == [4]
    assert ids.update([[("a", 50)]], [A + 1.2], 1.0) == [5]


# ------------------------------------------------------------------------------ launch plan
def _bools():
    return ("true", "false")


MV_YAML = "/share/config/multiview.yaml"


def test_multiview_plan_every_argument_combination():
    """cameras x image template x start_pose_nodes x params files x overrides x world_frame x
    rviz x rviz2 installed (512 cases): the node set, namespaces, remaps, parameters, written
    from the launch file's rules."""
    cases = errors = 0
    for cams, img, start, pfile, mvfile, override, world, rviz, have_rviz in itertools.product(
            ("cam_a,cam_b,cam_c", " /left/, right "), ("", "/{camera}/image_rect"), _bools(),
            ("", "/p.yaml"), ("", "/mv.yaml"), (False, True), ("", "map"), _bools(), (False, True)):
        args = {"cameras": cams, "start_pose_nodes": start, "rviz": rviz}
        if img:
            args["image"] = img
        if pfile:
            args["params_file"] = pfile
        if mvfile:
            args["multiview_params_file"] = mvfile
        if override:
            args.update(backend="onnxruntime", device="cpu")
        if world:
            args["world_frame"] = world
        cases += 1
        def avail(name: str, h: bool = have_rviz) -> bool:
            return h and name == "rviz2"

        if rviz == "true" and not have_rviz:
            with pytest.raises(LaunchPlanError, match="rviz2 is not installed"):
                plan_multiview(args, "/share/config/pose.yaml", "/share/rviz/multiview.rviz", avail, MV_YAML)
            errors += 1
            continue
        nodes = plan_multiview(args, "/share/config/pose.yaml", "/share/rviz/multiview.rviz", avail, MV_YAML)
        names = ["cam_a", "cam_b", "cam_c"] if cams.startswith("cam") else ["left", "right"]
        image = {n: (img or "/{camera}/color/image_raw").replace("{camera}", n) for n in names}
        info_tpl = "/{camera}/camera_info" if img else "/{camera}/color/camera_info"
        if rviz == "true":
            rv = nodes.pop()
            assert (rv.package, rv.executable, rv.namespace) == ("rviz2", "rviz2", "")
            assert rv.arguments == ("-d", "/share/rviz/multiview.rviz", "-f", world or "world")
        pose = [n for n in nodes if n.executable == "pose_node"]
        mv = nodes[-1]
        assert (mv.executable, mv.name, mv.namespace, mv.remappings) == ("multiview_node", "multiview_node", "", ())
        assert mv.parameters[-1] == {"cameras": names, "camera_info_topic": info_tpl, "world_frame": world or "world"}
        assert mv.parameters[:-1] == (("/mv.yaml",) if mvfile else (MV_YAML,))
        if start == "false":
            assert len(nodes) == 1
            continue
        assert len(nodes) == len(names) + 1
        assert [(n.namespace, n.name) for n in pose] == [(f"/{n}", "pose_node") for n in names]
        for n, node in zip(names, pose, strict=True):
            info = info_tpl.replace("{camera}", n)
            assert dict(node.remappings) == {"image": image[n], "camera_info": info}
            assert node.parameters[0] == (pfile or "/share/config/pose.yaml")
            want = {"use_compressed": False, "use_depth": False}
            if override:
                want.update(backend="onnxruntime", device="cpu")
            assert node.parameters[1] == want
    assert cases == 512 and errors == 128


@pytest.mark.parametrize("args,word", [
    ({"cameras": "cam_a"}, "at least 2"),
    ({"cameras": "cam_a,cam_a"}, "twice"),
    ({"cameras": "cam a,cam_b"}, "not a valid topic"),
    ({"image": "/camera/color/image_raw"}, "no {camera}"),
    ({"image": "{camera}/image_raw"}, "relative"),
    ({"image": "/{camera}/image_raw/compressed"}, "transport topic"),
    ({"world_frame": " "}, "world_frame"),
    ({"start_pose_nodes": "maybe"}, "true or false"),
    ({"camera": "a,b"}, "unknown launch arguments"),
])
def test_multiview_plan_mistakes_name_the_fix(args, word):
    with pytest.raises(LaunchPlanError, match=word):
        plan_multiview(args)


def test_multiview_topics_meet_in_rcl():
    """Real rcl resolution of the planned command lines: each namespaced pose_node publishes
    exactly the skeletons topic multiview_node's template names, and both read the same
    camera_info."""
    from test_launch_plan import resolve

    from pose_ros.ros.multiview_node import PARAMS

    nodes = plan_multiview({"cameras": "cam_a,cam_b"})
    mv = nodes[-1].parameters[-1]
    for node, cam in zip(nodes[:-1], mv["cameras"], strict=True):
        got = resolve(node, ["skeletons", "camera_info", "image"])
        assert got["skeletons"] == PARAMS["skeletons_topic"][0].replace("{camera}", cam)
        assert got["camera_info"] == mv["camera_info_topic"].replace("{camera}", cam)
        assert got["image"] == f"/{cam}/color/image_raw"
    assert PARAMS["camera_info_topic"][0] == mv["camera_info_topic"]  # the defaults agree


def test_multiview_launch_file_is_a_thin_shell():
    src = (ROOT / "launch" / "multiview.launch.py").read_text()
    calls = {ast.unparse(n.func) for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call)}
    assert {"launch_plan.plan_multiview", "OpaqueFunction", "DeclareLaunchArgument"} <= calls
    assert "launch_plan.MULTIVIEW_ARGS" in src
    assert all(a.description for a in launch_plan.MULTIVIEW_ARGS)
    assert (ROOT / "install" / "pose_ros" / "share" / "pose_ros" / "launch" / "multiview.launch.py").exists()
    # the RViz config shows what multiview_node publishes (root namespace) in the default world_frame
    cfg = yaml.safe_load((ROOT / "rviz" / "multiview.rviz").read_text())
    topics = {d.get("Topic", {}).get("Value") for d in cfg["Visualization Manager"]["Displays"]}
    assert "/fused/markers" in topics
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == launch_plan.MULTIVIEW_ARG_DEFAULTS["world_frame"]
    readme = (ROOT / "README.md").read_text()
    assert "ros2 launch pose_ros multiview.launch.py" in readme
    for a in launch_plan.MULTIVIEW_ARGS:
        assert f"`{a.name}`" in readme, a.name


def test_multiview_launch_file_generates_the_plan():
    """With a ROS distro (launch is not on PyPI: skipped here)."""
    pytest.importorskip("launch_ros", reason="ROS launch is not on PyPI: runs only with a ROS distro")
    pytest.importorskip("launch.actions")
    import importlib.util

    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location("mv_launch", ROOT / "launch" / "multiview.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ctx = LaunchContext()
    ctx.launch_configurations["cameras"] = "left,right"
    nodes = []
    for entity in mod.generate_launch_description().entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(ctx)
        elif isinstance(entity, OpaqueFunction):
            nodes = entity.execute(ctx)
    want = plan_multiview({"cameras": "left,right"}, "x")
    assert [n.node_executable for n in nodes] == [p.executable for p in want]
    for node, p in zip(nodes, want, strict=True):
        node._perform_substitutions(ctx)
        assert (node.expanded_remapping_rules or []) == list(p.remappings)  # launch_ros: None when none
        assert node.expanded_node_namespace == (p.namespace or "/")


def test_multiview_launch_file_runs(models):
    """`ros2 launch pose_ros multiview.launch.py cameras:=mv_a,mv_b` for real (LaunchService in
    the main thread; skipped without a ROS distro): one pose_node per camera namespace and the
    fusion node come up, and the fusion node subscribes to exactly what the pose_nodes publish."""
    pytest.importorskip("launch_ros", reason="ROS launch is not on PyPI: runs only with a ROS distro")
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node("mv_launch_probe", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    want_nodes = {"/mv_a/pose_node", "/mv_b/pose_node", "/multiview_node"}
    want_topics = {"/mv_a/skeletons", "/mv_b/skeletons"}
    seen: dict = {}
    ls = LaunchService()

    def watch():
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
            names = {f"{ns.rstrip('/')}/{n}" for n, ns in probe.get_node_names_and_namespaces()}
            subs = {t for t, _ in probe.get_subscriber_names_and_types_by_node("multiview_node", "/")} \
                if "/multiview_node" in names else set()
            pubs = set()
            for cam in ("mv_a", "mv_b"):
                if f"/{cam}/pose_node" in names:
                    pubs |= {t for t, _ in probe.get_publisher_names_and_types_by_node("pose_node", f"/{cam}")}
            seen.update(names=names, subs=subs, pubs=pubs)
            if want_nodes <= names and want_topics <= subs and want_topics <= pubs:
                seen["ok"] = True
                break
        ls.shutdown()

    ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(ROOT / "launch" / "multiview.launch.py")),
        launch_arguments=[("cameras", "mv_a,mv_b")])]))
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        rc = ls.run()
    finally:
        t.join(10)
        probe.destroy_node()
        rclpy.shutdown(context=ctx)
    assert seen.get("ok"), seen
    assert rc == 0


# ------------------------------------------------------------------------------ end to end
def command_line(p: launch_plan.NodePlan, tmp_path) -> list[str]:
    """What launch_ros runs for a NodePlan: the module, name, namespace, remaps, parameter
    files and dicts (a dict written to a parameter file, as launch_ros does)."""
    cmd = [sys.executable, "-m", f"pose_ros.ros.{p.executable}", "--ros-args",
           "-r", f"__node:={p.name}", "-r", f"__ns:={p.namespace or '/'}"]
    for src, dst in p.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    for i, prm in enumerate(p.parameters):
        if isinstance(prm, dict):
            f = tmp_path / f"{p.executable}_{p.namespace.strip('/') or 'root'}_{i}.yaml"
            f.write_text(yaml.safe_dump({"/**": {"ros__parameters": prm}}))
            prm = str(f)
        cmd += ["--params-file", prm]
    return cmd


def test_end_to_end_three_pose_nodes_and_fusion(tmp_path):
    """Three pose_node processes (namespaced, command lines from plan_multiview, a dot-model
    spec) see synthetic images of two 3D points from three known cameras; multiview_node (its
    own process) triangulates them: within 5 mm of the truth."""
    from test_spec_models import dot_model, draw_dot, write_spec, yolo_spec

    # the scene: red point (joints 0-7) and blue point (joints 8-16), world metres
    red, blue = np.array([0.2, -0.1, 1.4]), np.array([-0.15, 0.2, 0.9])
    cams = cameras(3)
    tag = f"e2e{os.getpid()}"
    names = [f"{tag}_{c}" for c in "abc"]
    world = f"{tag}_world"
    # one spec for every camera: a constant yolo box around the dots of all three views (a
    # tight crop: image px per heatmap px is the decoder's error scale), dot heatmaps
    dots = np.concatenate([project(R, t, np.stack([red, blue])) for R, t in cams])
    box = np.full((len(COCO_17.names), 2), dots.mean(0))
    box[0], box[1] = dots.min(0) - 40, dots.max(0) + 40
    yolo_spec(tmp_path, [box], [0.9], (W, H), (320, 256), name="det")
    dot_model(tmp_path / "td.onnx", 256, 192, 17, "topdown_heatmap", stride=2)
    spec = write_spec(tmp_path / "td.yaml", {
        "family": "topdown_heatmap", "model": "td.onnx", "keypoints": "coco_17", "detector": "det.yaml",
        "input": {"width": 192, "height": 256}, "outputs": {"heatmaps": "heatmaps"},
        "decoder": {"refine": "log_parabola", "min_score": 0.3}})
    pose_params = tmp_path / "pose.yaml"
    pose_params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model_spec": str(spec), "backend": "onnxruntime", "max_persons": 1, "publish_debug_image": False,
        "publish_people_cloud": False}}}))
    mv_params = tmp_path / "mv.yaml"
    mv_params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"max_wait": 1.0, "stamp_tolerance": 0.01}}}))
    plans = plan_multiview({"cameras": ",".join(names), "world_frame": world, "params_file": str(pose_params),
                            "multiview_params_file": str(mv_params)})
    assert [p.executable for p in plans] == ["pose_node"] * 3 + ["multiview_node"]
    images = []
    for R, t in cams:
        img = np.full((H, W, 3), 90, np.uint8)
        draw_dot(img, project(R, t, red)[0], (255, 0, 0), 6)
        draw_dot(img, project(R, t, blue)[0], (0, 0, 255), 6)
        images.append(img)
    logs = [tmp_path / f"proc{i}.log" for i in range(len(plans))]
    procs = [subprocess.Popen(command_line(p, tmp_path), cwd=str(ROOT / "test"), env=dict(os.environ),
                              stdout=open(f, "w"), stderr=subprocess.STDOUT) for p, f in zip(plans, logs, strict=True)]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("e2e_cameras", context=ctx)
    try:
        from sensor_msgs.msg import Image

        from pose_ros.ros.convert import rgb_to_image
        from pose_ros.ros.qos import SENSOR_QOS

        got: list[SkeletonArray] = []
        node.create_subscription(SkeletonArray, "/fused/skeletons", got.append, RESULT_QOS)
        pub_img = {n: node.create_publisher(Image, f"/{n}/color/image_raw", SENSOR_QOS) for n in names}
        pub_info = {n: node.create_publisher(CameraInfo, f"/{n}/color/camera_info", SENSOR_QOS) for n in names}
        node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS).publish(
            static_tf(world, {f"{n}_optical": c for n, c in zip(names, cams, strict=True)}))
        ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        deadline = time.monotonic() + 90
        sent: set[int] = set()
        last = 0.0
        while time.monotonic() < deadline and len([m for m in got if m.skeletons]) < 3:
            if time.monotonic() - last > 0.25:  # 4 Hz, one stamp for the three cameras
                last = time.monotonic()
                stamp = node.get_clock().now().to_msg()
                sent.add(stamp_ns(stamp))
                for n, img in zip(names, images, strict=True):
                    h = Header(stamp=stamp, frame_id=f"{n}_optical")
                    pub_info[n].publish(info_msg(h))
                    pub_img[n].publish(rgb_to_image(img, h))
            ex.spin_once(timeout_sec=0.02)
            assert all(p.poll() is None for p in procs), [f.read_text()[-2000:] for f in logs]
        full = [m for m in got if m.skeletons]
        assert len(full) >= 3, ("no fused skeletons", [f.read_text()[-1500:] for f in logs])
        errs = []
        for msg in full:
            assert stamp_ns(msg.header.stamp) in sent and msg.header.frame_id == world
            sk = msg.skeletons[0]
            X = positions(sk)
            assert all(k.position_source == Keypoint.SOURCE_TRIANGULATED for k in sk.keypoints)
            errs.append(max(np.linalg.norm(X[:8] - red, axis=1).max(), np.linalg.norm(X[8:] - blue, axis=1).max()))
        print(f"end-to-end 3D error: max {max(errs) * 1e3:.1f} mm over {len(errs)} frames")
        assert max(errs) < 0.005, errs  # measured 0.4 mm (2D decoding ~0.1 px, crops ~1.1 px per input px)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
