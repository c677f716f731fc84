"""multiview_node: SkeletonArrays from N cameras' pose_nodes in; one fused, triangulated
SkeletonArray in a world frame, markers, TF and diagnostics out.

A thin adapter over :mod:`pose_ros.core.multiview` (StampGrouper groups the cameras' messages
by stamp, MultiViewFuser associates people across views and triangulates each joint with
confidence-weighted DLT + RANSAC) and :class:`pose_ros.core.fused_ids.FusedIds` (ids stable
over frames). Each camera may run on its own computer: DDS carries the skeletons, namespaces
keep them apart, TF says where each camera is.

Per camera ``<c>`` of ``cameras`` (absolute topics, ``{camera}`` = ``<c>``):
  in  ``skeletons`` template (default ``/{camera}/skeletons``): pose_ros/SkeletonArray, the 2D
      keypoints (Keypoint.x/y, raw image pixels; score = confidence) in the image's optical
      frame (header.frame_id) at the image stamp, as pose_node publishes them
      ``camera_info`` template (default ``/{camera}/color/camera_info``): that image's
      sensor_msgs/CameraInfo (K + D, or P with ``rectified``); the latest one is used
      TF: ``world_frame`` <- each skeleton header.frame_id, at the skeleton stamp (the latest
      transform, with a warning, when none is known at that stamp)
Out (relative):
  ``fused/skeletons``  pose_ros/SkeletonArray in ``world_frame``, stamped with the group's stamp
                       (the oldest stamp among the cameras fused); positions in metres,
                       position_source TRIANGULATED (NONE and NaN where a joint had fewer than
                       ``min_views`` consistent views); x, y NaN (no single image); score = the
                       mean confidence of the views used; roi empty. Published for every group
                       (empty when nobody is seen).
  ``fused/markers``    visualization_msgs/MarkerArray (limbs, joints, id label per person)
  ``/tf``              ``body_<id>`` (REP-155, child of world_frame) and ``tf_joints`` frames
                       under it, as pose_node; fused ids come from the same random id source
                       (never equal to a pose_node's)
  ``/diagnostics``     per-camera input rates, fused rate, last error
Errors a user can cause (no CameraInfo, no TF, empty frame_id, skeleton layouts that differ
between cameras) are throttled, name the topic / frame and the fix, and cost only that
camera's view: the others are still fused.
"""
from __future__ import annotations

if __name__ == "__main__":  # `python -m`: a Ctrl-C while the modules below import exits quietly
    from pose_ros.ros.run import quiet_sigint

    quiet_sigint()

import collections
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError, PinholeCamera
from pose_ros.core.fused_ids import FusedIds
from pose_ros.core.geometry import Rigid
from pose_ros.core.multiview import Detection2D, MultiViewFuser, StampGrouper, View
from pose_ros.core.pipeline import TrackIds
from pose_ros.core.skeletons import LAYOUTS, Layout
from pose_ros.msg import Keypoint, SkeletonArray

from . import convert
from .qos import INFO_QOS, RESULT_QOS
from .run import run_node
from .tf import TfBroadcaster
from .tf_lookup import TransformLookup

TF_WAIT_S = 0.05  # longest wait for a camera's transform at the skeleton stamp, s
INFO_GRACE_S = 1.0  # a camera's first CameraInfo may arrive after its first skeletons: no error yet

#: skeletons input: reliable like pose_node's publisher; a few frames deep (grouping waits for
#: the slowest camera)
SKELETON_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)

#: name -> (default, description, (min, max) or None, read_only); declared in this order
PARAMS: dict[str, tuple] = {
    "cameras": (["cam_a", "cam_b", "cam_c"], "camera namespaces (>= 2): camera c's skeletons and "
                "camera_info topics are the templates below with {camera} = c", None, True),
    "skeletons_topic": ("/{camera}/skeletons", "SkeletonArray topic of each camera ({camera} = its "
                        "namespace; pose_node in namespace c publishes /c/skeletons)", None, True),
    "camera_info_topic": ("/{camera}/color/camera_info", "CameraInfo topic of each camera's image "
                          "({camera} = its namespace)", None, True),
    "rectified": (False, "the cameras' images are rectified: use CameraInfo P (no distortion) instead "
                  "of K and D", None, True),
    "world_frame": ("world", "TF frame of the fused output; TF must connect it to every camera's "
                    "optical frame (header.frame_id of its skeletons)", None, False),
    "stamp_tolerance": (0.02, "s: skeletons of different cameras whose stamps differ by at most this "
                        "are one frame (free-running cameras: half a frame period)", (0.0, 1.0), True),
    "max_wait": (0.2, "s (stamp time): a frame set missing a camera is fused without it after this "
                 "long (a camera that stops publishing delays the output by max_wait)", (0.0, 10.0), True),
    "min_views": (2, "views needed to triangulate a joint (and to publish a person)", (2, 64), False),
    "min_confidence": (0.3, "keypoints with a lower score are not used", (0.0, 1.0), False),
    "inlier_px": (15.0, "RANSAC: a view whose reprojection error is below this many pixels supports "
                  "a joint", (0.1, 1000.0), False),
    "ransac": (True, "reject outlier views per joint (off: one weighted DLT over all views)", None, False),
    "match_px": (40.0, "association across views: largest median epipolar / reprojection distance, "
                 "px", (0.1, 10000.0), False),
    "min_common": (3, "association: joints two detections must share to be compared", (1, 133), False),
    "max_people": (32, "most fused people per frame", (1, 1000), False),
    "id_max_distance": (0.5, "m: a fused person none of whose 2D tracks continues keeps the id of the "
                        "previous person this near", (0.0, 100.0), False),
    "tf_joints": (["nose", "left_wrist", "right_wrist", "left_ankle", "right_ankle"],
                  "joints published as TF frames under body_<id> (as pose_node)", None, False),
    "publish_tf": (True, "publish body_<id> and the tf_joints frames on /tf", None, False),
    "publish_markers": (True, "publish RViz markers on fused/markers", None, False),
    "marker_lifetime": (0.5, "marker lifetime, s", (0.0, 10.0), False),
    "log_throttle": (5.0, "minimum seconds between repeats of one kind of error message",
                     (0.0, 600.0), False),
    "diagnostics_period": (1.0, "period of /diagnostics, s", (0.1, 60.0), True),
    "diagnostics_window": (5.0, "diagnostics judge the last N s", (0.5, 120.0), False),
}
FUSER_PARAMS = ("min_views", "min_confidence", "inlier_px", "ransac", "match_px", "min_common", "max_people")


def _descriptor(name: str) -> ParameterDescriptor:
    default, desc, rng, ro = PARAMS[name]
    d = ParameterDescriptor(description=desc, read_only=ro)
    if rng is not None and isinstance(default, int) and not isinstance(default, bool):
        d.integer_range = [IntegerRange(from_value=rng[0], to_value=rng[1], step=1)]
    elif rng is not None and isinstance(default, float):
        d.floating_point_range = [FloatingPointRange(from_value=rng[0], to_value=rng[1])]
    if isinstance(default, list):
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    return d


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


@dataclass
class FusedSkeleton:
    """A fused person in the shape :mod:`pose_ros.ros.convert` reads from a core Person.

    keypoints: (K, 2) NaN (a world-frame skeleton has no pixels); visibility: (K,) float fused
    confidence in [0, 1]; bbox: (4,) zeros (no image)."""

    track_id: int
    layout: Layout
    score: float
    visibility: np.ndarray
    keypoints: np.ndarray = field(default=None)
    bbox: np.ndarray = field(default_factory=lambda: np.zeros(4))

    def __post_init__(self) -> None:
        if self.keypoints is None:
            self.keypoints = np.full((len(self.layout.names), 2), np.nan)


@dataclass
class _Camera:
    name: str
    skeletons_topic: str
    info_topic: str
    model: PinholeCamera | None = None
    info_seen: bool = False
    first_t: float | None = None  # monotonic time of its first skeletons
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10000))
    received: int = 0
    used: int = 0


def _check(p: dict) -> str | None:
    """Why a set of parameter values cannot work, else None."""
    cams = p["cameras"]
    if len(cams) < 2 or any(not c.strip("/ ") for c in cams):
        return f"cameras={cams} must name at least 2 cameras (namespaces, e.g. ['cam_a', 'cam_b'])"
    if len({c.strip('/ ') for c in cams}) != len(cams):
        return f"cameras={cams} lists a camera twice"
    for t in ("skeletons_topic", "camera_info_topic"):
        if "{camera}" not in p[t]:
            return f"{t}={p[t]!r} has no {{camera}}: every camera would read the same topic"
    if not p["world_frame"].strip("/ "):
        return "world_frame is empty: name the fixed frame the cameras' TF hangs from (e.g. world, map)"
    if p["min_views"] > len(cams):
        return f"min_views={p['min_views']} is more than the {len(cams)} cameras"
    return None


class MultiviewNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("multiview_node", **kwargs)
        for name, (default, *_) in PARAMS.items():
            try:
                self.declare_parameter(name, default, _descriptor(name))
            except Exception as exc:  # rclpy's type / range exceptions: one line naming the parameter
                raise ValueError(f"parameter {name} is invalid: {exc} (default {default!r})") from exc
        self.p = {n: self.get_parameter(n).value for n in PARAMS}
        err = _check(self.p)
        if err:
            raise ValueError(f"bad parameter: {err}")
        self.add_on_set_parameters_callback(self._on_set)
        self._last_log: dict[str, float] = {}
        self._last_error = ""
        self.stats: collections.Counter = collections.Counter()
        self._events: collections.deque = collections.deque(maxlen=50000)  # (monotonic, kind)
        self._started = time.monotonic()
        names = [c.strip("/ ") for c in self.p["cameras"]]
        self.cams = {c: _Camera(c, self.p["skeletons_topic"].replace("{camera}", c),
                                self.p["camera_info_topic"].replace("{camera}", c)) for c in names}
        self.fuser = self._make_fuser(self.p)
        self.grouper = StampGrouper(names, self.p["stamp_tolerance"], self.p["max_wait"],
                                    min_cameras=self.p["min_views"])
        self.ids = FusedIds(TrackIds(), max_distance=self.p["id_max_distance"])
        # the fusion (inputs, grouping, timer) runs in one group; the TF listener's /tf
        # subscriptions in the default group, so a wait for TF never blocks /tf (threads=2)
        self._group = MutuallyExclusiveCallbackGroup()
        self.tf_lookup = TransformLookup(self)
        self.tf = TfBroadcaster(self)
        self.pub_skeletons = self.create_publisher(SkeletonArray, "fused/skeletons", RESULT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "fused/markers", RESULT_QOS)
        self._subs = []
        for cam in self.cams.values():
            self._subs.append(self.create_subscription(
                SkeletonArray, cam.skeletons_topic, lambda m, c=cam: self._on_skeletons(c, m), SKELETON_QOS,
                callback_group=self._group))
            self._subs.append(self.create_subscription(
                CameraInfo, cam.info_topic, lambda m, c=cam: self._on_info(c, m), INFO_QOS,
                callback_group=self._group))
        self._timer = self.create_timer(min(max(self.p["max_wait"] / 2, 0.01), 0.05), self._on_timer,
                                         callback_group=self._group)
        self._had_people = False
        self._newest: tuple[int, float] | None = None  # (newest skeleton stamp ns, monotonic arrival)
        self._start_diagnostics()
        self.get_logger().info(
            f"fusing {', '.join(c.skeletons_topic for c in self.cams.values())} into "
            f"'{self.p['world_frame']}' (fused/skeletons); CameraInfo from "
            f"{', '.join(c.info_topic for c in self.cams.values())}")

    def _world(self) -> str:
        return self.p["world_frame"].strip().lstrip("/")

    @staticmethod
    def _make_fuser(p: dict) -> MultiViewFuser:
        return MultiViewFuser(**{k: p[k] for k in FUSER_PARAMS})

    def _on_set(self, params) -> SetParametersResult:
        new = {**self.p, **{x.name: x.value for x in params if x.name in PARAMS}}
        err = _check(new)
        if err:
            return SetParametersResult(successful=False, reason=err)
        try:
            fuser = self._make_fuser(new)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.p, self.fuser = new, fuser
        self.ids.max_distance = new["id_max_distance"]
        return SetParametersResult(successful=True)

    # -- logging ---------------------------------------------------------------------------
    def _log(self, level: str, kind: str, text: str) -> None:
        """Log unless the same ``kind`` was logged less than ``log_throttle`` s ago (per kind:
        one camera's problem never hides another's)."""
        now = time.monotonic()
        if now - self._last_log.get(kind, -math.inf) < self.p["log_throttle"]:
            return
        self._last_log[kind] = now
        logger = self.get_logger()
        if level == "error":
            logger.error(text)
        else:
            logger.warning(text)

    def _error(self, kind: str, text: str) -> None:
        self.stats["errors"] += 1
        self.stats[f"error_{kind.split(':')[0]}"] += 1
        self._events.append((time.monotonic(), "bad"))
        self._last_error = text
        self._log("error", kind, text)

    # -- inputs ----------------------------------------------------------------------------
    def _on_info(self, cam: _Camera, msg: CameraInfo) -> None:
        cam.info_seen = True
        try:
            cam.model = convert.camera_from_info(msg, self.p["rectified"])
        except CameraModelError as exc:
            cam.model = None
            self._error(f"camera_info:{cam.name}", f"camera {cam.name}: unusable CameraInfo on "
                        f"{cam.info_topic}: {exc}")

    def _on_skeletons(self, cam: _Camera, msg: SkeletonArray) -> None:
        try:
            s = msg.header.stamp
            if s.sec < 0 or s.nanosec >= 10**9:
                self._error(f"stamp:{cam.name}", f"camera {cam.name}: skeletons on {cam.skeletons_topic} "
                            f"have an invalid stamp (sec={s.sec}, nanosec={s.nanosec})")
                return
            cam.received += 1
            cam.events.append(time.monotonic())
            if cam.first_t is None:
                cam.first_t = time.monotonic()
            if self._newest is None or stamp_ns(s) >= self._newest[0] or \
                    stamp_ns(s) < self._newest[0] - self.grouper.reset_ns:  # a bag loop resets it
                self._newest = (stamp_ns(s), time.monotonic())
            for group in self.grouper.push(cam.name, stamp_ns(s), msg):
                self._fuse(group)
        except Exception as exc:  # one bad message never stops the node
            if self.context.ok():
                self._error(f"internal:{type(exc).__name__}", f"multiview_node: skipping skeletons of "
                            f"{cam.name}: {type(exc).__name__}: {exc}")

    def _on_timer(self) -> None:
        """Emit frame sets that waited ``max_wait`` for a missing camera. Time is the stamp
        time of the newest skeletons plus the time since they arrived: independent of the
        cameras' inference latency and of clock offsets between computers."""
        if self._newest is None:
            return
        stamp, arrived = self._newest
        try:
            for group in self.grouper.poll(stamp + int((time.monotonic() - arrived) * 1e9)):
                self._fuse(group)
        except Exception as exc:
            if self.context.ok():
                self._error(f"internal:{type(exc).__name__}",
                            f"multiview_node: skipping a frame set: {type(exc).__name__}: {exc}")

    # -- one frame set ---------------------------------------------------------------------
    def _world_from(self, cam: _Camera, header) -> Rigid | None:
        """world_frame <- the camera's optical frame at the skeleton stamp (short wait), else the
        latest transform (throttled warning), else None (throttled error)."""
        world, frame = self._world(), header.frame_id
        t = self.tf_lookup.lookup(world, frame, stamp_ns(header.stamp), TF_WAIT_S)
        if t is not None:
            return t
        t = self.tf_lookup.lookup(world, frame)
        if t is not None:
            self.stats["tf_not_at_stamp"] += 1
            self._log("warning", f"tf_stamp:{cam.name}",
                      f"camera {cam.name}: no transform '{world}' <- '{frame}' at the skeleton stamp "
                      f"{stamp_ns(header.stamp) * 1e-9:.3f} s; using the latest one (check clocks and the "
                      "TF rate)")
            return t
        self._error(f"tf:{cam.name}", f"camera {cam.name}: no transform '{world}' <- '{frame}' (the "
                    f"frame_id of {cam.skeletons_topic}); its view is not fused. Publish the camera's "
                    f"pose, e.g. a static transform {world} -> {frame}")
        return None

    def _layout(self, group: dict) -> str | None:
        """The layout most skeletons of the group have (all views must share one)."""
        count = collections.Counter(sk.layout for m in group.values() for sk in m.skeletons)
        return count.most_common(1)[0][0] if count else None

    def _fuse(self, group: dict) -> None:
        msgs = [(self.cams[c], m) for c, m in group.items()]
        stamp = min((m.header.stamp for _, m in msgs), key=stamp_ns)
        out_header = Header(stamp=stamp, frame_id=self._world())
        layout_name = self._layout(group)
        layout = LAYOUTS.get(layout_name) if layout_name else None
        if layout_name and layout is None:
            self._error(f"layout:{layout_name}", f"skeleton layout {layout_name!r} is unknown; known: "
                        f"{', '.join(LAYOUTS)}")
        views, dets, src_ids = [], [], []
        for cam, msg in sorted(msgs, key=lambda x: x[0].name):
            if cam.model is None and not cam.info_seen and time.monotonic() - cam.first_t < INFO_GRACE_S:
                self.stats["waiting_for_camera_info"] += 1  # start-up: discovery of camera_info may lag
                continue
            if cam.model is None:
                self._error(f"camera_info:{cam.name}", f"camera {cam.name}: no CameraInfo received on "
                            f"{cam.info_topic}; its view is not fused (publish the camera's CameraInfo "
                            "there or set camera_info_topic)" if not cam.info_seen else
                            f"camera {cam.name}: CameraInfo on {cam.info_topic} is unusable; its view "
                            "is not fused")
                continue
            if not msg.header.frame_id:
                self._error(f"frame:{cam.name}", f"camera {cam.name}: skeletons on {cam.skeletons_topic} "
                            "have an empty header.frame_id; set the camera driver's frame_id")
                continue
            pose = self._world_from(cam, msg.header)
            if pose is None:
                continue
            people, ids = [], []
            for sk in msg.skeletons:
                if layout is None or sk.layout != layout.name or len(sk.keypoints) != len(layout.names):
                    self._error(f"layout:{cam.name}", f"camera {cam.name}: skeleton layout {sk.layout!r} "
                                f"({len(sk.keypoints)} keypoints) differs from the other cameras' "
                                f"{layout_name!r}; run every camera's pose_node with the same model")
                    continue
                xy = np.array([[k.x, k.y] for k in sk.keypoints], np.float64).reshape(-1, 2)
                conf = np.array([k.score for k in sk.keypoints], np.float64)
                seen = np.isfinite(xy).all(1) & np.isfinite(conf)
                people.append(Detection2D(np.where(seen[:, None], xy, np.nan),
                                          np.where(seen, np.clip(conf, 0.0, 1.0), 0.0)))
                ids.append(int(sk.id))
            views.append(View(cam.name, cam.model, pose))
            dets.append(people)
            src_ids.append(ids)
            cam.used += 1
        fused = []
        if len(views) >= self.p["min_views"] and layout is not None:
            fused = self.fuser.fuse(views, dets)
        elif len(views) < self.p["min_views"]:
            self.stats["too_few_views"] += 1
            self._log("warning", "too_few_views", f"only {len(views)} usable view(s) ({', '.join(v.name for v in views) or 'none'}) "
                      f"of {len(group)} received at {stamp_ns(stamp) * 1e-9:.3f} s; min_views="
                      f"{self.p['min_views']}: nobody fused")
        members = [[(views[v].name, src_ids[v][d]) for v, d in f.members] for f in fused]
        ids = self.ids.update(members, [f.positions for f in fused], stamp_ns(stamp) * 1e-9)
        persons = [FusedSkeleton(i, layout, float(f.score), np.asarray(f.confidence, np.float64))
                   for i, f in zip(ids, fused, strict=True)]
        positions = [np.asarray(f.positions, np.float64) for f in fused]
        sources = [np.where(np.isfinite(p).all(1), Keypoint.SOURCE_TRIANGULATED, Keypoint.SOURCE_NONE)
                   .astype(np.uint8) for p in positions]
        bodies = [lift.body_frame(p, layout) for p in positions]
        self.pub_skeletons.publish(convert.skeleton_array(out_header, persons, positions, sources, bodies))
        self.stats["fused"] += 1
        self.stats["persons"] = len(persons)
        self.stats["views"] = len(views)
        self._events.append((time.monotonic(), "fused"))
        if self.p["publish_markers"]:
            if persons:
                self.pub_markers.publish(convert.markers(out_header, persons, positions, 0.0,
                                                         self.p["marker_lifetime"], bodies))
            elif self._had_people:
                self.pub_markers.publish(convert.delete_all(out_header))
        self._had_people = bool(persons)
        if self.p["publish_tf"] and persons:
            self.tf.send(convert.transforms(out_header, persons, positions, bodies, self.p["tf_joints"]))

    # -- diagnostics -----------------------------------------------------------------------
    def _start_diagnostics(self) -> None:
        """diagnostic_updater's Updater when the distro has it, else our own publisher + timer."""
        period = self.p["diagnostics_period"]
        try:
            from diagnostic_updater import Updater  # a ROS package, not on PyPI

            self._updater = Updater(self, period=period)
        except (ImportError, TypeError):
            self._updater = None
        if self._updater is not None:
            self._updater.setHardwareID("multiview fusion")
            self._updater.add("multi-camera fusion", self._diagnostic_task)
        else:
            self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self._diag_timer = self.create_timer(period, self._publish_diagnostics)

    def _diagnostic_summary(self) -> tuple[bytes, str, dict]:
        now = time.monotonic()
        window = self.p["diagnostics_window"]
        recent = collections.Counter(k for t, k in list(self._events) if t >= now - window)
        rates = {c.name: sum(1 for t in list(c.events) if t >= now - window) / window for c in self.cams.values()}
        silent = [n for n, r in rates.items() if r == 0]
        if recent["bad"] and not recent["fused"]:
            level, msg = DiagnosticStatus.ERROR, f"nothing fused in the last {window:g} s: {self._last_error}"
        elif now - self._started >= window and len(silent) == len(rates):
            level, msg = DiagnosticStatus.WARN, f"no skeletons from any camera for {window:g} s"
        elif now - self._started >= window and silent:
            level, msg = DiagnosticStatus.WARN, f"no skeletons from {', '.join(silent)} for {window:g} s"
        elif recent["bad"]:
            level, msg = DiagnosticStatus.WARN, f"{recent['bad']} errors in the last {window:g} s: {self._last_error}"
        else:
            level, msg = DiagnosticStatus.OK, "ok"
        values = {f"input rate {n} (Hz)": f"{r:.1f}" for n, r in rates.items()}
        values.update({"fused rate (Hz)": f"{recent['fused'] / window:.1f}", "world frame": self.p["world_frame"],
                       "views in last frame set": self.stats["views"], "persons": self.stats["persons"],
                       "frame sets dropped (incomplete)": getattr(self.grouper, "dropped", 0),
                       "late messages": getattr(self.grouper, "late", 0),
                       f"errors (last {window:g} s)": recent["bad"], "last error": self._last_error})
        return level, msg, {k: str(v) for k, v in values.items()}

    def _diagnostic_task(self, stat):
        level, message, values = self._diagnostic_summary()
        stat.summary(level, message)
        for k, v in values.items():
            stat.add(k, v)
        return stat

    def _publish_diagnostics(self) -> None:
        level, message, values = self._diagnostic_summary()
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: multi-camera fusion", message=message,
                                  hardware_id="multiview fusion",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self.pub_diag.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                              status=[status]))


def main(argv: list[str] | None = None) -> int:
    return run_node(MultiviewNode, "multiview_node", argv, threads=2)


if __name__ == "__main__":
    sys.exit(main())
