"""pose_node: camera images in; skeletons, TF, RViz markers, debug image, diagnostics out.

A thin adapter over :class:`pose_ros.core.pipeline.PosePipeline`: subscriptions pair each
image with its CameraInfo (and optional aligned depth) by stamp, a worker thread always
processes the newest frame (frames arriving while it is busy are dropped and counted, never
queued), and the results are converted to messages by :mod:`pose_ros.ros.convert`.
"""
from __future__ import annotations

if __name__ == "__main__":  # `python -m`: a Ctrl-C while the modules below import exits quietly
    from pose_ros.ros.run import quiet_sigint

    quiet_sigint()

import collections
import difflib
import functools
import glob
import platform
import re
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError, PinholeCamera, rectified_from_topic
from pose_ros.core.compose3d import LIFTING_MODES, Composer3D
from pose_ros.core.draw import draw_persons
from pose_ros.core.engines import BACKENDS, DEVICES
from pose_ros.core.imageconv import MAX_DEPTH, MIN_DEPTH, ImageFormatError
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.core.spec_pipeline import make_pipeline
from pose_ros.msg import SkeletonArray

from . import convert
from .cloud import skeleton_cloud
from .qos import DEBUG_IMAGE_QOS, INFO_QOS, RESULT_QOS, SENSOR_QOS
from .run import run_node
from .tf import TfBroadcaster
from .tf_lookup import TransformLookup

TF_WAIT_S = 0.05  # longest wait for the target_frame transform at the image stamp, s


@dataclass(frozen=True)
class Param:
    """One node parameter: the catalogue below is the single source of truth (config/pose.yaml
    is tested against it)."""

    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple | None = None  # (min, max) for int / float
    choices: tuple | None = None


PARAMS: tuple[Param, ...] = (
    Param("backend", "auto", f"inference backend: {', '.join(BACKENDS)}", True, choices=BACKENDS),
    Param("device", "auto", f"inference device: {', '.join(DEVICES)}", True, choices=DEVICES),
    Param("detector_model", "", "local .tflite/.onnx detector (empty: cached BlazePose)", True),
    Param("landmark_model", "", "local .tflite/.onnx landmark model (empty: cached BlazePose)", True),
    Param("cache_dir", "", "model cache root (empty: ~/.cache/pose_ros or $POSE_ROS_CACHE)", True),
    Param("model_spec", "", "YAML model spec of your own ONNX model (config/models/*.yaml: OpenPose, "
          "trt_pose, HRNet, RTMPose, YOLO-pose); empty: BlazePose. 2D + depth 3D only", True),
    Param("use_compressed", False, "subscribe to image/compressed (CompressedImage) instead of image", True),
    Param("use_depth", False, "subscribe to depth/image + depth/camera_info (aligned to the colour image)", True),
    Param("max_persons", 10, "most persons tracked per frame (the cost follows the people in view)",
          range=(1, 16)),
    Param("min_detection_score", 0.5, "person detector score threshold", range=(0.0, 1.0)),
    Param("min_presence", 0.5, "drop a person (lose a track) below this presence score", range=(0.0, 1.0)),
    Param("min_birth_presence", 0.75, "a newly detected person needs this presence score (tracked people "
          "stay down to min_presence)", range=(0.0, 1.0)),
    Param("min_keypoint_score", 0.5, "joints below this visibility are not drawn in markers", range=(0.0, 1.0)),
    Param("static_image_mode", False, "run the detector on every frame (no tracking)"),
    Param("detect_every", 15, "while tracking, re-run the detector every N frames for newcomers", range=(1, 300)),
    Param("detector_tiles", 3, "0: detect on the whole image only (MediaPipe); 2-4: also on NxN grids of "
          "overlapping tiles in the same batch, at most once per tile_scan_period (small / many people: "
          "COCO AP 0.18 -> 0.60 with 3 + detector_pyramid)", range=(0, 4)),
    Param("tile_scan_period", 1.0, "s of image time between detector runs on the tile grids while tracking "
          "(the whole image on every detection frame); 0: on every detection frame", range=(0.0, 60.0)),
    Param("detector_pyramid", True, "with detector_tiles N: also the coarser grids 2x2 .. (N-1)x(N-1) "
          "(best COCO AP; more detector inputs on detection frames)"),
    Param("refine_passes", 2, "landmark passes re-cropping each newly detected person from its own "
          "landmarks; the most self-consistent skeleton is kept (COCO AP 0.47 -> 0.60 crowded profile; "
          "0: MediaPipe's single pass)", range=(0, 4)),
    Param("track_min_hits", 1, "frames a new person must be seen before it gets an id and is published",
          range=(1, 30)),
    Param("track_max_misses", 10, "frames a track survives unseen before it is lost", range=(0, 300)),
    Param("track_reid_time", 5.0, "s a lost person can be re-identified (pose, box, torso colour) and keep "
          "their id", range=(0.0, 600.0)),
    Param("stale_after", 2.0, "s: a larger gap between image stamps (or a stamp going backwards: bag "
          "replay, use_sim_time) resets tracks and filters", range=(0.0, 3600.0)),
    Param("smoothing", True, "1-Euro filter on 2D keypoints, world landmarks and 3D positions"),
    Param("smoothing_min_cutoff", 1.0, "1-Euro minimum cutoff, Hz (lower: less jitter when still)",
          range=(0.001, 100.0)),
    Param("smoothing_beta", 10.0, "1-Euro speed coefficient, Hz per (person size / s) (higher: less lag "
          "when moving)", range=(0.0, 1000.0)),
    Param("smoothing_d_cutoff", 1.0, "1-Euro cutoff of the speed estimate, Hz", range=(0.001, 100.0)),
    Param("sync_tolerance", 0.05, "max |image stamp - CameraInfo/depth stamp| to pair them, s", range=(0.0, 1.0)),
    Param("depth_window", 5, "side of the per-joint depth window, px (median of valid depths)", range=(1, 31)),
    Param("min_depth", MIN_DEPTH, "nearest plausible depth, m: smaller values (1e-40 m, 1 mm) are invalid pixels",
          range=(0.0, 10.0)),
    Param("max_depth", MAX_DEPTH, "farthest plausible depth, m: larger values are invalid pixels",
          range=(0.5, 1000.0)),
    Param("rectified", "auto", "camera model: true = the image is rectified (use CameraInfo P, ignore D); "
          "false = raw (K and D); auto = true when the resolved image topic has a word starting with "
          "'rect' (image_rect, image_rect_color)", True, choices=("auto", "true", "false")),
    Param("target_frame", "", "express 3D output, markers and TF in this frame (empty: the image frame)"),
    Param("lifting", "auto", "3D placement: world_landmarks (PnP), depth (aligned depth only), ground_plane "
          "(PnP scaled so the feet stand on floor_frame's z=0 plane), auto (ground_plane with a "
          "floor_frame, else world_landmarks; depth overrides per joint when use_depth), lifter (2D-to-3D "
          "network, scaled onto the floor with a floor_frame)", choices=LIFTING_MODES),
    Param("floor_frame", "", "TF frame whose z=0 plane is the floor, z up (e.g. base_footprint); empty: "
          "no ground plane"),
    Param("lifter_model", "", "lifter checkpoint (.npz from `pose-ros train-lifter`) for lifting: lifter; "
          "empty: the shipped one"),
    Param("tf_joints", ["nose", "left_wrist", "right_wrist", "left_ankle", "right_ankle"],
          "joints (BlazePose names) published as TF frames under body_<id>, named after REP-155's "
          "links where it has one: left_wrist -> l_wrist_<id>, nose -> nose_<id>"),
    Param("publish_tf", True, "publish body_<id> and <joint>_<id> on /tf"),
    Param("publish_markers", True, "publish RViz markers on `markers`"),
    Param("publish_people_cloud", True, "publish body-surface points (capsules around the limbs) as a "
          "PointCloud2 on `people_cloud` for planners (smpl:=true: smpl_node publishes the mesh instead)"),
    Param("people_cloud_radius", 0.08, "capsule radius around each limb in people_cloud, m", range=(0.01, 0.5)),
    Param("publish_debug_image", True, "publish the annotated image on `debug_image` (only computed when subscribed)"),
    Param("marker_lifetime", 0.5, "marker lifetime, s: stale people vanish", range=(0.0, 10.0)),
    Param("diagnostics_period", 1.0, "period of /diagnostics, s", read_only=True, range=(0.1, 60.0)),
    Param("log_throttle", 5.0, "minimum seconds between repeats of one kind of error message (changeable "
          "at run time)", range=(0.0, 600.0)),
    Param("diagnostics_window", 5.0, "diagnostics judge the last N s: skipped frames -> WARN, nothing "
          "produced -> ERROR, no images -> WARN", range=(0.5, 120.0)),
)
_PARAM = {p.name: p for p in PARAMS}
TRACKING_PARAMS = ("min_birth_presence", "detector_pyramid", "tile_scan_period", "refine_passes", "track_min_hits", "track_max_misses", "track_reid_time", "stale_after", "smoothing",
                   "smoothing_min_cutoff", "smoothing_beta", "smoothing_d_cutoff")  # -> PipelineConfig


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = f"one of {list(p.choices)}"
    if p.range is not None and isinstance(p.default, bool) is False:
        if isinstance(p.default, int):
            d.integer_range = [IntegerRange(from_value=p.range[0], to_value=p.range[1], step=1)]
        elif isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=p.range[0], to_value=p.range[1])]
    if isinstance(p.default, list):
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    if p.name == "rectified":  # `-p rectified:=true` / YAML `true` arrive as bools
        d.dynamic_typing = True
    return d


_BUILTIN_PARAMS = {"use_sim_time", "start_type_description_service"}  # declared by rclpy itself
_BUILTIN_PREFIXES = ("qos_overrides.", "diagnostic_updater.")


def _kind(default) -> str:
    return {bool: "a bool (true/false)", int: "an integer", float: "a float (e.g. 1.0)",
            str: "a string", list: "a list of strings"}[type(default)]


def _limits(p: Param) -> str:
    if p.choices:
        return f" in {list(p.choices)}"
    return f" in [{p.range[0]}, {p.range[1]}]" if p.range else ""


@functools.lru_cache(maxsize=8)
def device_name(device: str) -> str:
    """A human name of the inference device for diagnostics' hardware_id: the GPU model
    (NVIDIA driver's /proc entry) for cuda*, else the CPU model (/proc/cpuinfo), the board
    (/proc/device-tree/model, Jetson / Raspberry Pi) or platform.processor()."""
    def read(path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""
    if device.startswith("cuda") or device == "tensorrt":
        for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
            m = re.search(r"^Model:\s*(.+)$", read(info), re.M)
            if m:
                return m.group(1).strip()
    m = re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    if m:
        return m.group(2).strip()
    board = read("/proc/device-tree/model").strip("\x00\n ")
    return board or platform.processor() or platform.machine() or "unknown"


def stamp_ns(stamp, what: str = "message") -> int:
    """builtin_interfaces/Time -> int nanoseconds; ValueError (saying which message) for a
    stamp that is not a time (negative seconds, nanosec >= 1e9)."""
    if stamp.sec < 0 or stamp.nanosec >= 10**9:
        raise ValueError(f"{what} has an invalid header.stamp (sec={stamp.sec}, nanosec={stamp.nanosec}): "
                         "stamps must be non-negative with nanosec < 1e9; stamp messages with the "
                         "capture time (node.get_clock().now())")
    return stamp.sec * 10**9 + stamp.nanosec


@dataclass
class _Frame:
    msg: object  # Image or CompressedImage
    received: float  # monotonic
    previous: float | None = None  # stamp (s) of the camera's frame before this one, if valid


class _PoseLogic:
    """Everything pose_node does, mixed into an rclpy Node (PoseNode) or a LifecycleNode
    (LifecyclePoseNode). ``_setup`` loads the model and creates the ROS entities,
    ``_teardown`` undoes it; frames are processed only while ``_active``."""

    pipeline: PosePipeline | None = None
    _active = False
    _busy = False  # the worker is processing a frame
    _running = False  # the worker should run (between _setup and _teardown)
    _worker: threading.Thread | None = None

    def _declare_params(self) -> None:
        """Declare the catalogue; a misspelt, wrongly typed or invalid start-up parameter raises
        ValueError with one line that names it and says what is expected."""
        self._cond = threading.Condition()  # first: _teardown may run if construction fails
        self._pending: _Frame | None = None
        self._last_stamp: float | None = None  # stamp (s) of the last image received
        self.stats = collections.Counter()
        self._last_log: dict[str, float] = {}  # error kind -> monotonic time it was last logged
        # (monotonic time, 'received' | 'processed' | 'dropped' | 'bad') for the diagnostics window
        self._events: collections.deque[tuple[float, str]] = collections.deque(maxlen=50000)
        self._last_error = ""
        unknown = [n for n in self._parameter_overrides
                   if n not in _PARAM and n not in _BUILTIN_PARAMS and not n.startswith(_BUILTIN_PREFIXES)]
        if unknown:
            hints = [f"{n!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(n, _PARAM, 1))
                                 else "") for n in sorted(unknown)]
            raise ValueError(f"unknown parameter {', '.join(hints)}; known: {', '.join(_PARAM)}")
        for p in PARAMS:
            try:
                self.declare_parameter(p.name, p.default, _descriptor(p))
            except Exception as exc:  # rclpy's type / range exceptions
                given = self._parameter_overrides[p.name].value if p.name in self._parameter_overrides else None
                raise ValueError(f"parameter {p.name}={given!r} ({type(given).__name__}) is invalid: "
                                 f"expected {_kind(p.default)}{_limits(p)} (default {p.default!r})") from exc
        self.add_on_set_parameters_callback(self._validate)
        v = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        err = self._check(v)
        if err:
            raise ValueError(f"bad parameter: {err}")
        self.p = v

    def _make_pipeline(self) -> PosePipeline:
        v = self.p
        cfg = PipelineConfig(max_persons=v["max_persons"], min_detection_score=v["min_detection_score"],
                             min_presence=v["min_presence"], static_image_mode=v["static_image_mode"],
                             detect_every=v["detect_every"], detector_tiles=v["detector_tiles"],
                             backend=v["backend"], device=v["device"],
                             detector_model=v["detector_model"] or None,
                             landmark_model=v["landmark_model"] or None, cache_dir=v["cache_dir"] or None,
                             model_spec=v["model_spec"] or None, **{n: v[n] for n in TRACKING_PARAMS})
        t0 = time.monotonic()
        pipeline = make_pipeline(cfg)  # BlazePose, or the model_spec's network (spec_pipeline)
        self.get_logger().info(f"model loaded in {time.monotonic() - t0:.1f} s: backend "
                               f"{v['backend']}, device {v['device']} -> {pipeline.backend_summary}")
        return pipeline

    def _setup(self) -> None:
        v = self.p
        if self.pipeline is None:
            self.pipeline = self._make_pipeline()
        ent = self._entities = []
        # inputs
        if v["use_compressed"]:
            ent.append(self.create_subscription(CompressedImage, "image/compressed", self._on_image, SENSOR_QOS))
        else:
            ent.append(self.create_subscription(Image, "image", self._on_image, SENSOR_QOS))
        ent.append(self.create_subscription(CameraInfo, "camera_info", self._on_info, INFO_QOS))
        self._infos: collections.deque[CameraInfo] = collections.deque(maxlen=30)
        self._depths: collections.deque[Image] = collections.deque(maxlen=5)
        self._depth_infos: collections.deque[CameraInfo] = collections.deque(maxlen=30)
        if v["use_depth"]:
            ent.append(self.create_subscription(Image, "depth/image", self._on_depth, SENSOR_QOS))
            ent.append(self.create_subscription(CameraInfo, "depth/camera_info", self._on_depth_info, INFO_QOS))
        self._rectified = self._decide_rectified()
        # outputs
        # lifecycle publishers on the LifecycleNode (they publish only while active)
        make = getattr(self, "create_lifecycle_publisher", self.create_publisher)
        self.pub_skeletons = make(SkeletonArray, "skeletons", RESULT_QOS)
        self.pub_markers = make(MarkerArray, "markers", RESULT_QOS)
        self.pub_debug = make(Image, "debug_image", DEBUG_IMAGE_QOS)
        self.pub_cloud = make(PointCloud2, "people_cloud", RESULT_QOS)
        ent += [self.pub_skeletons, self.pub_markers, self.pub_debug, self.pub_cloud]
        self.tf = TfBroadcaster(self)
        self.tf_lookup = TransformLookup(self)
        # state
        self._pending = None
        self._running = True
        self._had_people = False
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=100)
        # per frame: convert input, pipeline, 3D, build + publish outputs (ms)
        self._stage_ms: collections.deque[tuple] = collections.deque(maxlen=100)
        self._worker = threading.Thread(target=self._work, name="pose_worker", daemon=True)
        self._worker.start()

    def _teardown(self) -> None:
        self._active = False
        self._running = False
        if not hasattr(self, "_cond"):
            return  # construction failed before anything was created
        with self._cond:
            self._pending = None
            self._cond.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5)
        self._worker = None
        for e in getattr(self, "_entities", []):
            if isinstance(e, Subscription):
                self.destroy_subscription(e)
            elif isinstance(e, Timer):
                self.destroy_timer(e)
            elif hasattr(self, "destroy_lifecycle_publisher"):
                self.destroy_lifecycle_publisher(e)
            else:
                self.destroy_publisher(e)
        self._entities = []
        if getattr(self, "tf", None) is not None:
            self.tf.destroy()
            self.tf_lookup.destroy()
            self.tf = self.tf_lookup = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    # -- parameters ---------------------------------------------------------------------
    def _check(self, values: dict) -> str | None:
        """Reason a set of parameter values is invalid, else None."""
        for name, value in values.items():
            p = _PARAM.get(name)
            if p is None:
                continue
            if name == "rectified":  # a bool (YAML true/false) or a string
                value = str(value).lower()
            if p.choices and value not in p.choices:
                return f"{name} must be one of {list(p.choices)}, got {value!r}"
            if name == "tf_joints":
                bad = [j for j in value if j not in BLAZEPOSE_33.names]
                if bad:
                    return f"tf_joints has unknown joints {bad}; known: {list(BLAZEPOSE_33.names)}"
            if name == "depth_window" and value % 2 == 0:
                return f"depth_window must be odd, got {value}"
            if name in ("min_depth", "max_depth"):
                both = {**getattr(self, "p", {}), **values}
                if both.get("min_depth", MIN_DEPTH) >= both.get("max_depth", MAX_DEPTH):
                    return (f"min_depth ({both.get('min_depth', MIN_DEPTH)}) must be smaller than "
                            f"max_depth ({both.get('max_depth', MAX_DEPTH)})")
            if name == "detector_tiles" and value == 1:
                return "detector_tiles must be 0 (off) or 2..4"
            if name == "target_frame" and value.strip() != value:
                return "target_frame must not have leading/trailing spaces"
            if name == "lifter_model" and value:
                from pose_ros.core.lifter import LifterError, load_cached

                try:
                    load_cached(value)
                except LifterError as exc:
                    return f"lifter_model: {exc}"
        return None

    def _validate(self, params) -> SetParametersResult:
        reason = self._check({p.name: p.value for p in params})
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if hasattr(self, "p"):
                self.p[prm.name] = prm.value
            if self.pipeline is not None and hasattr(self.pipeline.cfg, prm.name):
                setattr(self.pipeline.cfg, prm.name, prm.value)  # read per frame
        return SetParametersResult(successful=True)

    # -- inputs -------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        if not self._active:
            return
        now = time.monotonic()
        self._last_image_t = now
        try:  # staleness is judged on the camera's stream, not on the frames processed
            stamp = stamp_ns(msg.header.stamp) * 1e-9
        except ValueError:
            stamp = None  # reported when the frame is processed
        with self._cond:
            self.stats["received"] += 1
            self._events.append((now, "received"))
            if self._pending is not None:
                self._dropped()  # newest wins: the older frame is never processed
            self._pending = _Frame(msg, now, self._last_stamp)
            self._last_stamp = stamp
            self._cond.notify()

    def _on_info(self, msg: CameraInfo) -> None:
        if self._stamp_ok(msg, "CameraInfo", "camera_info"):
            with self._cond:
                self._infos.append(msg)
                self._cond.notify()

    def _on_depth(self, msg: Image) -> None:
        if self._stamp_ok(msg, "depth image", "depth/image"):
            with self._cond:
                self._depths.append(msg)
                self._cond.notify()

    def _stamp_ok(self, msg, what: str, topic: str) -> bool:
        """False (and a throttled error) for a message whose stamp cannot be a time."""
        try:
            stamp_ns(msg.header.stamp, f"{what} on {self.resolve_topic_name(topic)}")
            return True
        except ValueError as exc:
            self._error(f"stamp_{topic}", str(exc))
            return False

    @staticmethod
    def _nearest(msgs, stamp: int, tol: float):
        """The message in ``msgs`` whose header stamp is nearest to ``stamp`` (ns), within
        ``tol`` seconds, else None. Stamps were validated on arrival."""
        best, best_dt = None, None
        for m in list(msgs):
            dt = abs(stamp_ns(m.header.stamp) - stamp) * 1e-9
            if dt <= tol and (best_dt is None or dt < best_dt):
                best, best_dt = m, dt
        return best

    def _dropped(self) -> None:
        self.stats["dropped"] += 1
        self._events.append((time.monotonic(), "dropped"))

    def _error(self, key: str, text: str) -> None:
        """A message or frame that cannot be used: counted, remembered for diagnostics, logged."""
        self.stats["bad_frames"] += 1
        self.stats[f"error_{key}"] += 1
        self._events.append((time.monotonic(), "bad"))
        self._last_error = text
        self._log("error", key, text)

    def _log(self, level: str, kind: str, text: str) -> bool:
        """Log ``text`` unless the same ``kind`` was logged less than ``log_throttle`` s ago.

        Our own throttle, per kind: rclpy's throttle is per call site (one site would hide a
        second kind of error) and cannot change its period once used (log_throttle is a
        run-time parameter). Returns whether it was logged."""
        now = time.monotonic()
        last = self._last_log.get(kind)
        if last is not None and now - last < self.p["log_throttle"]:
            return False
        if len(self._last_log) > 1000:  # unbounded kinds (numbers in texts): forget old ones
            self._last_log.clear()
        self._last_log[kind] = now
        # one call site per severity: rclpy refuses a call site whose severity changes
        # ("Logger severity cannot be changed between calls")
        logger = self.get_logger()
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)
        return True

    # -- worker -------------------------------------------------------------------------
    def _work(self) -> None:
        """Worker thread: nothing a message can contain may end it (diagnostics report ERROR
        if it ends anyway)."""
        while self._running:
            try:
                self._work_once()
            except Exception as exc:  # a bug outside the per-frame try: log, keep going
                if not self.context.ok():
                    return  # shutting down (e.g. SIGTERM)
                self._error("internal_worker", f"pose worker: unexpected {type(exc).__name__}: {exc}")
                time.sleep(0.01)

    def _work_once(self) -> None:
        with self._cond:
            while self._pending is None and self._running:
                self._cond.wait(0.1)
            if not self._running:
                return
            frame, self._pending = self._pending, None
            try:
                stamp = stamp_ns(frame.msg.header.stamp, f"image on {self._image_topic()}")
            except ValueError as exc:
                self._error("stamp_image", f"skipping frame: {exc}")
                return
            # wait briefly for the CameraInfo of this stamp (it may arrive just after)
            deadline = time.monotonic() + max(self.p["sync_tolerance"], 0.05)
            tol = self.p["sync_tolerance"]
            info = self._nearest(self._infos, stamp, tol)
            # likewise for the aligned depth image (falls back to monocular without it)
            need_depth = self.p["use_depth"]
            while (info is None or (need_depth and self._nearest(self._depths, stamp, tol) is None)) \
                    and time.monotonic() < deadline and self._pending is None:
                self._cond.wait(0.01)
                info = self._nearest(self._infos, stamp, tol)
            if info is None and self._pending is not None:
                self._dropped()  # superseded while waiting for its CameraInfo: dropped, not bad
                return
            if not self._active or self.pipeline is None:
                return  # deactivated meanwhile
            self._busy = True
        try:
            self._process(frame, info)
        except Exception as exc:  # keep running whatever happens, with a specific message
            if not self.context.ok():
                self._running = False
                return  # shutting down (e.g. SIGTERM): publishers are gone
            expected = isinstance(exc, (ImageFormatError, CameraModelError, ValueError))
            text = f"skipping frame: {exc}" if expected else \
                f"skipping frame, unexpected {type(exc).__name__}: {exc}"
            # one throttle per kind of error: the message with its numbers masked
            self._error(f"{type(exc).__name__}:{re.sub(r'[0-9]+', '#', str(exc))[:200]}", text)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _image_topic(self) -> str:
        return self.resolve_topic_name("image/compressed" if self.p["use_compressed"] else "image")

    def _process(self, frame: _Frame, info: CameraInfo | None) -> None:
        msg = frame.msg
        header = msg.header
        if not header.frame_id:
            raise ValueError("image header.frame_id is empty; set the camera driver's frame_id "
                             "(3D output and TF need it)")
        if info is None:
            what = "no CameraInfo received" if not self._infos else (
                f"no CameraInfo within sync_tolerance={self.p['sync_tolerance']} s of the image stamp")
            raise ValueError(f"{what} on {self.resolve_topic_name('camera_info')}; publish the "
                             "camera's CameraInfo with the same stamps as its images")
        t0 = time.perf_counter()
        if isinstance(msg, CompressedImage):
            rgb = convert.compressed_to_rgb(msg)
        else:
            rgb = convert.image_to_rgb(msg)
        # CameraInfo / depth problems cost only the 3D: the 2D skeletons are still published
        camera = self._camera_for(info, rgb.shape)
        depth = self._depth_for(header, camera) if self.p["use_depth"] and camera is not None else None
        t1 = time.perf_counter()
        tracked = hasattr(self.pipeline, "tracker")  # identities + smoothing (core/track.py)
        persons = (self.pipeline(rgb, stamp_ns(header.stamp) * 1e-9, frame.previous) if tracked
                   else self.pipeline(rgb))
        if tracked and self.pipeline.time_reset:
            self.stats["time_resets"] += 1
            self._log("warning", "time_reset", f"tracks and filters reset: {self.pipeline.time_reset} "
                      "(bag replay, use_sim_time restart or a stalled camera)")
        t2 = time.perf_counter()
        positions, sources = self._positions(persons, camera, depth, header)
        if tracked:
            positions = self.pipeline.smooth_3d(persons, positions)
        out_header = header
        target = self.p["target_frame"]
        if target and target != header.frame_id:
            # at the image stamp (a short wait for /tf to catch up), else the latest transform
            to_target, at_stamp = self._lookup_at_stamp(target, header)
            if to_target is not None and not at_stamp:
                self._log(
                    "warning", "tf_not_at_stamp",
                    f"no transform '{target}' <- '{header.frame_id}' at the image stamp "
                    f"{stamp_ns(header.stamp) * 1e-9:.3f} s (waited {TF_WAIT_S * 1e3:.0f} ms); using the "
                    "latest one (check clocks and that /tf is published at the camera rate)")
            if to_target is None:
                self._log("warning", "missing_tf",
                          f"no transform from '{header.frame_id}' to target_frame '{target}'; "
                          "publishing in the image frame")
                self.stats["missing_tf"] += 1
            else:
                positions = [to_target.apply(p) for p in positions]
                out_header = type(header)(stamp=header.stamp, frame_id=target)
        bodies = [lift.body_frame(p, person.layout) for p, person in zip(positions, persons, strict=True)]
        t3 = time.perf_counter()
        self.pub_skeletons.publish(convert.skeleton_array(out_header, persons, positions, sources, bodies))
        now = self.get_clock().now()
        self._latency_ms.append((now.nanoseconds - stamp_ns(header.stamp)) * 1e-6)
        self.stats["processed"] += 1
        self._events.append((time.monotonic(), "processed"))
        self.stats["persons"] = len(persons)
        if self.p["publish_markers"]:
            if persons:
                self.pub_markers.publish(convert.markers(out_header, persons, positions,
                                                         self.p["min_keypoint_score"],
                                                         self.p["marker_lifetime"], bodies))
            elif self._had_people:
                self.pub_markers.publish(convert.delete_all(out_header))
        self._had_people = bool(persons)
        if self.p["publish_people_cloud"]:  # also when empty: planners clear the people
            self.pub_cloud.publish(skeleton_cloud(out_header, persons, positions, self.p["min_keypoint_score"],
                                                  self.p["people_cloud_radius"]))
        if self.p["publish_tf"] and persons:
            self.tf.send(convert.transforms(out_header, persons, positions, bodies, self.p["tf_joints"]))
        if self.p["publish_debug_image"] and self.pub_debug.get_subscription_count() > 0:
            self.stats["debug_images"] += 1
            self.pub_debug.publish(convert.rgb_to_image(draw_persons(rgb, persons), header))
        t4 = time.perf_counter()
        self._stage_ms.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3))

    # -- camera model, depth and 3D (CameraInfo problems cost only the 3D) ------------------
    def _decide_rectified(self) -> bool:
        """The `rectified` parameter; auto: from the resolved image topic's name."""
        mode = str(self.p["rectified"]).lower()
        topic = self.resolve_topic_name("image/compressed" if self.p["use_compressed"] else "image")
        rect = rectified_from_topic(topic) if mode == "auto" else mode == "true"
        self.get_logger().info(
            f"camera model for {topic}: " + ("rectified image: CameraInfo P, D ignored" if rect else
                                             "raw image: CameraInfo K and D")
            + f" (rectified:={mode}), binning and roi honoured")
        return rect

    def _on_depth_info(self, msg: CameraInfo) -> None:
        if self._stamp_ok(msg, "depth CameraInfo", "depth/camera_info"):
            with self._cond:
                self._depth_infos.append(msg)

    def _camera_for(self, info: CameraInfo, shape) -> PinholeCamera | None:
        """The camera model of this image (rgb ``shape`` (H, W, 3)), or None with a throttled
        error (the frame's 2D is still published, with NaN positions)."""
        try:
            camera = convert.camera_from_info(info, self._rectified)
            convert.check_camera_matches(camera, shape[1], shape[0], "image")
            return camera
        except CameraModelError as exc:
            self._error(f"camera:{str(exc)[:40]}", f"no 3D for this frame (2D published): {exc}")
            return None

    def _depth_for(self, header, camera: PinholeCamera) -> np.ndarray | None:
        """The aligned depth image of this frame as (H, W) float32 metres (NaN: invalid or
        outside [min_depth, max_depth]), or None: monocular 3D for this frame.

        Alignment rules (convert.check_depth_aligned): the depth image has the colour image's
        size and frame_id and, when its depth/camera_info (paired by stamp) arrived, the
        colour camera's intrinsics within 1 %. Without depth CameraInfo the depth is used
        with a throttled warning (only size and frame_id checked)."""
        tol = self.p["sync_tolerance"]
        dmsg = self._nearest(self._depths, stamp_ns(header.stamp), tol)
        if dmsg is None:
            self._log("warning", "no_depth", "no depth image within sync_tolerance of the colour image; "
                      "using monocular 3D")
            self.stats["no_depth"] += 1
            return None
        dinfo = self._nearest(self._depth_infos, stamp_ns(dmsg.header.stamp), tol)
        if dinfo is None:
            self.stats["no_depth_info"] += 1
            self._log("warning", "no_depth_info",
                      f"no CameraInfo on {self.resolve_topic_name('depth/camera_info')} with the depth "
                      "image's stamp: depth alignment checked by size and frame_id only (publish the "
                      "aligned depth's camera_info)")
        try:
            convert.check_depth_aligned(camera, header.frame_id, dmsg, dinfo)
            return convert.depth_to_m(dmsg, self.p["min_depth"], self.p["max_depth"])
        except (CameraModelError, ImageFormatError) as exc:
            self._error(f"depth:{str(exc)[:40]}", f"depth not used, monocular 3D for this frame: {exc}")
            return None

    def _lookup_at_stamp(self, target: str, header):
        """(target <- header.frame_id, True) at the image stamp after a short wait for /tf, else
        (the latest transform, False) counted in stats["tf_not_at_stamp"], else (None, False)."""
        t = self.tf_lookup.lookup(target, header.frame_id, stamp_ns(header.stamp), TF_WAIT_S)
        if t is not None:
            return t, True
        t = self.tf_lookup.lookup(target, header.frame_id)
        if t is not None:
            self.stats["tf_not_at_stamp"] += 1
        return t, False

    def _camera_to_floor(self, header):
        """Rigid floor_frame <- image frame at the image stamp (latest as a fallback, with a
        throttled warning), or None (no floor_frame, or no transform: ground plane unused)."""
        floor = self.p["floor_frame"]
        if not floor:
            return None
        t, _ = self._lookup_at_stamp(floor, header)
        if t is None:
            self.stats["missing_floor_tf"] += 1
            self._log("warning", "missing_floor_tf",
                      f"no transform from '{header.frame_id}' to floor_frame '{floor}'; ground plane "
                      "not used for this frame (publish the TF, or set floor_frame:='')")
        return t

    def _positions(self, persons, camera: PinholeCamera | None, depth, header=None):
        """Per person (K, 3) metres in the image's optical frame and (K,) uint8 sources; all
        NaN / SOURCE_NONE without a camera model or when the 3D step fails (throttled error,
        the 2D is kept)."""
        none = [(np.full((len(p.keypoints), 3), np.nan), np.zeros(len(p.keypoints), np.uint8))
                for p in persons]
        out = none
        if camera is not None:
            try:
                composer = Composer3D(self.p["lifting"], self.p["depth_window"], self.p["min_depth"],
                                      self.p["max_depth"], lifter_model=self.p["lifter_model"])
                bodies = composer(persons, camera, depth,
                                  self._camera_to_floor(header) if persons and header else None)
                out = [(b.positions, b.sources) for b in bodies]
            except Exception as exc:  # any 3D failure keeps the 2D
                self._error(f"3d:{type(exc).__name__}", "3D failed, 2D published with NaN positions: "
                            f"{type(exc).__name__}: {exc}")
                out = none
        return [o[0] for o in out], [o[1] for o in out]

    # -- diagnostics ---------------------------------------------------------------------
    def _start_diagnostics(self) -> None:
        """/diagnostics in every state (unconfigured and inactive too): diagnostic_updater's
        Updater when the distro has it, else our own publisher and timer, same content."""
        self._active_since = time.monotonic()
        self._last_image_t = 0.0
        period = self.p["diagnostics_period"]
        try:
            from diagnostic_updater import Updater  # a ROS package, not on PyPI

            self._updater = Updater(self, period=period)
        except (ImportError, TypeError):  # absent, or an old API without its own timer
            self._updater = None
        if self._updater is not None:
            self._updater.setHardwareID(self._hardware_id())
            self._updater.add(self._diagnostic_task_name(), self._diagnostic_task)
        else:
            self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self._diag_timer = self.create_timer(period, self._publish_diagnostics)

    # -- a second node with our name ------------------------------------------------------
    #: the graph is checked this often, this many times, after start-up (discovery is
    #: asynchronous: a node in another process shows up after a moment, a slow one later)
    NAME_CHECK_PERIOD = 2.0
    NAME_CHECKS = 3

    def _start_name_check(self) -> None:
        self._name_checks_left = self.NAME_CHECKS
        self._name_timer = self.create_timer(self.NAME_CHECK_PERIOD, self._check_unique_name)

    def _check_unique_name(self) -> None:
        """Warn (once) when another node in the graph has our fully-qualified name: both
        would process every frame and publish everything twice."""
        self._name_checks_left -= 1
        me = (self.get_name(), self.get_namespace())
        try:
            same = sum(1 for x in self.get_node_names_and_namespaces() if tuple(x) == me)
        except Exception:  # context shutting down
            same = 0
        if same > 1:
            fqn = self.get_fully_qualified_name()
            self.get_logger().warning(
                f"{same} nodes are named {fqn}: each processes every frame and publishes its own "
                "skeletons, markers and TF (everything twice). Give each a unique name or namespace: "
                f"`ros2 run pose_ros pose_node --ros-args -r __node:={self.get_name()}_2` or "
                "`ros2 launch pose_ros pose.launch.py namespace:=cam2`; or stop the other one")
        if same > 1 or self._name_checks_left <= 0:
            self._name_timer.cancel()

    def _diagnostic_task_name(self) -> str:
        """``pose estimation``, plus the namespace when there is one: two cameras' pose_nodes
        (/cam1/pose_node, /cam2/pose_node) must not share one /diagnostics status name
        (diagnostic_updater prefixes the bare node name)."""
        ns = self.get_namespace()
        return "pose estimation" if ns in ("", "/") else f"pose estimation in {ns}"

    def _state_label(self) -> str:
        machine = getattr(self, "_state_machine", None)  # LifecycleNode only
        return machine.current_state[1] if machine is not None else "active"

    def _hardware_id(self) -> str:
        device = self.pipeline.device if self.pipeline is not None else self.p["device"]
        return f"{device}: {device_name(device)}"

    def _diagnostic_summary(self) -> tuple[bytes, str, dict]:
        """(level, message, values) judged over the last ``diagnostics_window`` seconds."""
        now = time.monotonic()
        window = self.p["diagnostics_window"]
        recent = collections.Counter(k for t, k in list(self._events) if t >= now - window)
        topic = self._image_topic()
        state = self._state_label()
        worker = self._worker
        idle = now - max(self._last_image_t, self._active_since)
        if self._running and worker is not None and not worker.is_alive():
            level, message = DiagnosticStatus.ERROR, ("pose worker thread stopped: no frame will be "
                                                      "processed until the node restarts (see log)")
        elif not self._active:
            level, message = DiagnosticStatus.OK, f"{state}: not processing"
        elif recent["received"] and not recent["processed"] and recent["bad"]:
            level, message = DiagnosticStatus.ERROR, (f"receiving images but producing nothing in the "
                                                      f"last {window:g} s: {self._last_error}")
        elif idle >= window:
            level, message = DiagnosticStatus.WARN, f"no images on {topic} for {idle:.0f} s"
        elif recent["bad"]:
            level, message = DiagnosticStatus.WARN, (f"{recent['bad']} bad messages in the last "
                                                     f"{window:g} s: {self._last_error}")
        else:
            level, message = DiagnosticStatus.OK, "ok"
        lat = float(np.median(self._latency_ms)) if getattr(self, "_latency_ms", None) else float("nan")
        values = {"lifecycle state": state, "input topic": topic,
                  "input rate (Hz)": f"{recent['received'] / window:.1f}",
                  "processed rate (Hz)": f"{recent['processed'] / window:.1f}",
                  f"dropped frames (last {window:g} s)": recent["dropped"],
                  f"bad messages (last {window:g} s)": recent["bad"],
                  "dropped frames (total)": self.stats["dropped"], "bad messages (total)": self.stats["bad_frames"],
                  "last error": self._last_error, "latency median (ms)": f"{lat:.1f}",
                  "backend": self.pipeline.backend if self.pipeline is not None else "(not loaded)",
                  "device": self.pipeline.device if self.pipeline is not None else "(not loaded)",
                  "backends": self.pipeline.backend_summary if self.pipeline is not None else "(not loaded)",
                  "persons": self.stats["persons"]}
        tracker = getattr(self.pipeline, "tracker", None)  # tracking state: bounded (soak benchmark)
        if tracker is not None:
            values["tracks (active)"] = len(tracker.tracks)
            values["tracks (lost, re-identifiable)"] = len(tracker.lost)
        if getattr(self, "_stage_ms", None):
            med = np.median(np.array(self._stage_ms), axis=0)
            for name, ms in zip(("convert", "pipeline", "3d", "outputs"), med, strict=True):
                values[f"{name} median (ms)"] = f"{ms:.1f}"
        return level, message, {k: str(v) for k, v in values.items()}

    def _diagnostic_task(self, stat):
        """diagnostic_updater task: fills a DiagnosticStatusWrapper."""
        level, message, values = self._diagnostic_summary()
        self._updater.setHardwareID(self._hardware_id())
        stat.summary(level, message)
        for k, v in values.items():
            stat.add(k, v)
        return stat

    def _publish_diagnostics(self) -> None:
        level, message, values = self._diagnostic_summary()
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: {self._diagnostic_task_name()}",
                                  message=message, hardware_id=self._hardware_id(),
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self.pub_diag.publish(DiagnosticArray(header=type(DiagnosticArray().header)(
            stamp=self.get_clock().now().to_msg()), status=[status]))


class PoseNode(_PoseLogic, Node):
    """pose_node: starts working as soon as it is constructed."""

    def __init__(self, **kwargs) -> None:
        Node.__init__(self, "pose_node", **kwargs)
        self._declare_params()
        self._start_diagnostics()
        self._start_name_check()
        self._setup()
        self._active = True

    def destroy_node(self) -> None:
        self._teardown()
        Node.destroy_node(self)


class LifecyclePoseNode(_PoseLogic, LifecycleNode):
    """pose_node as a managed (lifecycle) node: configure loads the model and creates the
    topics (lifecycle publishers), activate starts processing (instant: the model is loaded),
    deactivate stops it and keeps the model, cleanup / shutdown release everything (GPU
    memory included). /diagnostics reports the lifecycle state in every state."""

    def __init__(self, **kwargs) -> None:
        LifecycleNode.__init__(self, "pose_node", **kwargs)
        self._declare_params()
        self._start_diagnostics()
        self._start_name_check()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._setup()
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.pipeline is None:
            try:
                self.pipeline = self._make_pipeline()
            except Exception as exc:
                self.get_logger().error(f"activate failed: {exc}")
                return TransitionCallbackReturn.FAILURE
        ret = super().on_activate(state)  # activates the lifecycle publishers
        if ret == TransitionCallbackReturn.SUCCESS:
            self._active_since = time.monotonic()
            self._active = True
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        with self._cond:
            self._pending = None
            while self._busy:
                self._cond.wait(0.05)
        return super().on_deactivate(state)  # the model stays loaded: activate is instant

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._teardown()
        LifecycleNode.destroy_node(self)


# One executor thread: callbacks only queue messages; the pose worker is its own thread. rclpy's
# MultiThreadedExecutor (2 threads) kept a core busy with its Python wait loop and took the GIL
# from the worker: pipeline median 85 ms in the node vs 10 ms (640x480, one person, measured
# with benchmarks/bench_load.py's client; the core pipeline alone: 8.5 ms).
def main(argv: list[str] | None = None) -> int:
    return run_node(PoseNode, "pose_node", argv, threads=1)


def main_lifecycle(argv: list[str] | None = None) -> int:
    """`ros2 run pose_ros pose_lifecycle_node`: unconfigured until a lifecycle manager (or
    `ros2 lifecycle set /pose_node configure` / `activate`) moves it on."""
    return run_node(LifecyclePoseNode, "pose_node", argv, threads=1)


if __name__ == "__main__":
    sys.exit(main())
