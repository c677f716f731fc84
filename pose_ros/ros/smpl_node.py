"""smpl_node: SkeletonArray (3D keypoints) in; SMPL bodies, mesh markers, joint TF and the
people_cloud out.

A thin adapter over :class:`pose_ros.core.smpl_track.SmplTracker` (warm start per track id,
state of vanished tracks dropped). Every output carries the skeletons' header (the image's
stamp and the skeletons' frame).

Topics (relative; launch remaps them into the camera's namespace):
  in  ``skeletons``      pose_ros/SkeletonArray (pose_node's output)
  out ``smpl``           pose_ros/SmplBodyArray (betas, pose, translation in header.frame_id)
      ``smpl_markers``   visualization_msgs/MarkerArray: one TRIANGLE_LIST mesh per person (ns
                         ``smpl_mesh``, id = track id, the track's colour), faces decimated by
                         ``mesh_decimation``
      ``people_cloud``   sensor_msgs/PointCloud2 (x, y, z float32): every mesh vertex of every
                         person, for Nav2 obstacle / voxel layers
      ``/tf``            ``smpl_<joint>_<id>`` (24 SMPL joints, e.g. ``smpl_left_knee_7``) as
                         children of the REP-155 ``body_<id>`` frame pose_node publishes; a
                         person without a body frame (hips / shoulders unknown) gets none
"""
from __future__ import annotations

if __name__ == "__main__":  # `python -m`: a Ctrl-C while the modules below import exits quietly
    from pose_ros.ros.run import quiet_sigint

    quiet_sigint()

import math
import sys
import time

import numpy as np

try:
    import torch
except ImportError:  # torch is optional for pose_ros, required for SMPL
    raise SystemExit("smpl_node needs torch (the SMPL forward model and fitter run on it): "
                     "pip install -r requirements/torch.txt (on Jetson: NVIDIA's torch wheel for "
                     "your JetPack), or start pose.launch.py without smpl:=true") from None
import transforms3d
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, TransformStamped
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core import lift
from pose_ros.core.draw import track_colour
from pose_ros.core.smpl import GENDERS, SMPL_JOINT_NAMES
from pose_ros.core.smpl_track import SmplTracker, decimate_faces, load_model
from pose_ros.msg import SkeletonArray, SmplBody, SmplBodyArray

from .cloud import xyz_cloud
from .qos import RESULT_QOS
from .run import run_node
from .tf import TfBroadcaster

#: skeletons input: reliable like pose_node's publisher, keep last 1 (fit the newest frame, never a backlog)
SKELETON_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)

#: name -> (default, description); declared in this order
PARAMS: dict[str, tuple[object, str]] = {
    "model_path": ("", "SMPL model: .pkl / .npz file or a folder with the official files; empty = "
                       "the built-in body (NOT SMPL: capsules in SMPL's array format)"),
    "gender": ("neutral", f"which official file in a model folder: {', '.join(GENDERS)}"),
    "cold_iters": (30, "Levenberg-Marquardt iterations for a new track"),
    "warm_iters": (8, "iterations for a track fitted in the previous frame (warm start)"),
    "max_fit_error": (0.15, "a fit with a larger mean joint residual (m) is published but not used as "
                            "the next frame's warm start"),
    "min_keypoint_score": (0.3, "keypoints below this score are ignored by the fit"),
    "min_keypoints": (6, "fit a person only with this many usable 3D keypoints"),
    "mesh_decimation": (4, "mesh markers keep about 1/N of the model's faces (1 = full mesh; SMPL has "
                           "13776 faces per person)"),
    "publish_mesh": (True, "publish the mesh markers on smpl_markers"),
    "publish_tf": (True, "publish smpl_<joint>_<id> frames under body_<id>"),
    "publish_people_cloud": (True, "publish the mesh vertices as a PointCloud2 on people_cloud"),
    "marker_lifetime": (0.5, "mesh marker lifetime, s"),
    "mesh_alpha": (0.8, "mesh marker opacity"),
    "log_throttle": (5.0, "minimum seconds between repeats of one kind of error message"),
    "torch_threads": (1, "torch CPU threads for fitting (a robot's CPU is shared: more threads than "
                         "free cores makes each fit slower, measured 10x with 2 threads on 2 busy cores)"),
}
_STATIC = {"model_path", "gender", "cold_iters", "warm_iters", "mesh_decimation", "torch_threads"}


def smpl_frame_name(joint: str, body_id: int) -> str:
    """TF frame of one SMPL joint of a person: ``smpl_<joint>_<id>`` (e.g. smpl_left_knee_7)."""
    return f"smpl_{joint}_{body_id}"


def _point(v) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


class SmplNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("smpl_node", **kwargs)
        for name, (default, desc) in PARAMS.items():
            d = ParameterDescriptor(description=desc, read_only=name in _STATIC)
            if name in ("cold_iters", "warm_iters", "mesh_decimation", "min_keypoints", "torch_threads"):
                d.integer_range = [IntegerRange(from_value=1, to_value=1000, step=1)]
            self.declare_parameter(name, default, d)
        self.p = {n: self.get_parameter(n).value for n in PARAMS}
        if self.p["gender"] not in GENDERS:
            raise ValueError(f"parameter gender={self.p['gender']!r} must be one of {list(GENDERS)}")
        self.add_on_set_parameters_callback(self._on_set)
        self._last_log: dict[str, float] = {}
        torch.set_num_threads(self.p["torch_threads"])
        t0 = time.monotonic()
        model = load_model(self.p["model_path"], self.p["gender"])  # raises with the fix in the text
        self.tracker = SmplTracker(model, cold_iters=self.p["cold_iters"], warm_iters=self.p["warm_iters"],
                                   max_fit_error=self.p["max_fit_error"])
        self.mesh_faces = decimate_faces(model.v_template.cpu().numpy(), self.tracker.faces,
                                         self.p["mesh_decimation"])
        self.get_logger().info(
            f"body model {model.arrays_source or 'builtin'} ({'NOT SMPL: built-in capsule body' if not self.p['model_path'] else model.gender}): "
            f"{model.v_template.shape[0]} vertices, {len(self.tracker.faces)} faces, mesh markers "
            f"{len(self.mesh_faces)} faces; loaded in {time.monotonic() - t0:.1f} s")
        self.pub_smpl = self.create_publisher(SmplBodyArray, "smpl", RESULT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "smpl_markers", RESULT_QOS)
        self.pub_cloud = self.create_publisher(PointCloud2, "people_cloud", RESULT_QOS)
        self.tf = TfBroadcaster(self)
        self.sub = self.create_subscription(SkeletonArray, "skeletons", self._on_skeletons, SKELETON_QOS)
        self._had_people = False
        self.stats = {"frames": 0, "bodies": 0, "errors": 0, "fit_ms": 0.0}

    def _on_set(self, params) -> SetParametersResult:
        for prm in params:
            if prm.name in PARAMS:
                self.p[prm.name] = prm.value
                if prm.name == "max_fit_error":
                    self.tracker.max_fit_error = prm.value
        return SetParametersResult(successful=True)

    def _log(self, kind: str, text: str) -> None:
        """A throttled error (per kind, ``log_throttle`` s)."""
        now = time.monotonic()
        if now - self._last_log.get(kind, -math.inf) < self.p["log_throttle"]:
            return
        self._last_log[kind] = now
        self.get_logger().error(text)

    # -- per frame ------------------------------------------------------------------------
    def _on_skeletons(self, msg: SkeletonArray) -> None:
        try:
            self._process(msg)
        except Exception as exc:  # one bad message never stops the node
            if not self.context.ok():
                return  # shutting down (SIGINT / SIGTERM): publishers are gone
            self.stats["errors"] += 1
            self._log(f"{type(exc).__name__}:{str(exc)[:60]}", f"smpl_node: skipping skeletons: "
                      f"{type(exc).__name__}: {exc}")

    def _usable(self, msg: SkeletonArray):
        """Group the fittable skeletons by layout: {names: [(skeleton, X (K,3), conf (K,))]}."""
        groups: dict[tuple[str, ...], list] = {}
        for sk in msg.skeletons:
            names = tuple(k.name for k in sk.keypoints)
            X = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints], np.float64)
            conf = np.array([k.score for k in sk.keypoints], np.float64).reshape(-1)
            conf = np.where(np.isfinite(conf) & (conf >= self.p["min_keypoint_score"]), np.clip(conf, 0, 1), 0.0)
            conf[~np.isfinite(X).all(1)] = 0.0
            if not any(n in SMPL_JOINT_NAMES for n in names):
                self._log(f"layout:{sk.layout}", f"smpl_node: skeleton layout {sk.layout!r} shares no joint "
                          "names with SMPL (e.g. left_hip, left_knee): not fitted")
                continue
            if int((conf > 0).sum()) < self.p["min_keypoints"]:
                continue  # no 3D for this person (e.g. no CameraInfo): nothing to fit
            groups.setdefault(names, []).append((sk, X, conf))
        return groups

    def _process(self, msg: SkeletonArray) -> None:
        header = msg.header
        t0 = time.perf_counter()
        out = SmplBodyArray(header=header)
        markers = MarkerArray()
        tfs: list[TransformStamped] = []
        clouds = []
        groups = self._usable(msg)
        # vanished tracks (and people without 3D this frame) start cold next time
        self.tracker.forget_except([sk.id for items in groups.values() for sk, _, _ in items])
        for names, items in groups.items():
            ids = [int(sk.id) for sk, _, _ in items]
            bodies = self.tracker.update(ids, names, np.stack([x for _, x, _ in items]),
                                         np.stack([c for _, _, c in items]), forget_others=False)
            for k, (sk, _, _) in enumerate(items):
                body = SmplBody(id=int(sk.id), betas=[float(v) for v in bodies.betas[k][:10]] +
                                [0.0] * max(0, 10 - bodies.betas.shape[1]),
                                pose=[float(v) for v in bodies.pose[k]], fit_error=float(bodies.fit_error[k]))
                body.translation.x, body.translation.y, body.translation.z = (float(v) for v in bodies.transl[k])
                out.bodies.append(body)
                if self.p["publish_mesh"]:
                    markers.markers.append(self._mesh_marker(header, int(sk.id), bodies.vertices[k]))
                if self.p["publish_tf"]:
                    tfs += self._joint_tf(header, sk, bodies.joint_transforms[k])
                clouds.append(bodies.vertices[k])
        self.pub_smpl.publish(out)
        if self.p["publish_mesh"]:
            if markers.markers:
                self.pub_markers.publish(markers)
            elif self._had_people:
                self.pub_markers.publish(MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)]))
        self._had_people = bool(out.bodies)
        if self.p["publish_people_cloud"]:  # also when empty: planners clear the people
            self.pub_cloud.publish(xyz_cloud(header, np.concatenate(clouds) if clouds else np.zeros((0, 3))))
        if tfs:
            self.tf.send(tfs)
        self.stats["frames"] += 1
        self.stats["bodies"] += len(out.bodies)
        self.stats["fit_ms"] = (time.perf_counter() - t0) * 1e3

    def _mesh_marker(self, header: Header, track_id: int, vertices: np.ndarray) -> Marker:
        """TRIANGLE_LIST of the decimated faces; vertices (V, 3) metres in header.frame_id."""
        life = self.p["marker_lifetime"]
        r, g, b = (c / 255.0 for c in track_colour(track_id))
        m = Marker(header=header, ns="smpl_mesh", id=track_id, type=Marker.TRIANGLE_LIST, action=Marker.ADD,
                   lifetime=Duration(sec=int(life), nanosec=int((life % 1) * 1e9)),
                   color=ColorRGBA(r=r, g=g, b=b, a=float(self.p["mesh_alpha"])))
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 1.0
        tri = vertices[self.mesh_faces].reshape(-1, 3).tolist()
        m.points = [Point(x=x, y=y, z=z) for x, y, z in tri]
        return m

    def _joint_tf(self, header: Header, sk, G: np.ndarray) -> list[TransformStamped]:
        """The 24 joint frames (G: 24 x 4 x 4, header.frame_id <- joint) under body_<id>."""
        bp = sk.body_pose
        origin = np.array([bp.position.x, bp.position.y, bp.position.z])
        quat = np.array([bp.orientation.w, bp.orientation.x, bp.orientation.y, bp.orientation.z])
        if not (np.isfinite(origin).all() and np.isfinite(quat).all()) or np.linalg.norm(quat) < 1e-6:
            return []  # no body frame: the joints would have no parent
        R_body = transforms3d.quaternions.quat2mat(quat / np.linalg.norm(quat))  # frame <- body
        local = lift.in_body_frame(G[:, :3, 3], origin, quat)
        parent = f"body_{sk.id}"
        out = []
        for j, name in enumerate(SMPL_JOINT_NAMES):
            t = TransformStamped(header=Header(stamp=header.stamp, frame_id=parent),
                                 child_frame_id=smpl_frame_name(name, sk.id))
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                float(v) for v in local[j])
            q = transforms3d.quaternions.mat2quat(R_body.T @ G[j, :3, :3])  # body <- joint
            t.transform.rotation.w, t.transform.rotation.x = float(q[0]), float(q[1])
            t.transform.rotation.y, t.transform.rotation.z = float(q[2]), float(q[3])
            out.append(t)
        return out


def main(argv: list[str] | None = None) -> int:
    return run_node(SmplNode, "smpl_node", argv)


if __name__ == "__main__":
    sys.exit(main())
