"""pose_node: camera images in; skeletons, TF, RViz markers, debug image, diagnostics out.

A thin adapter over :class:`pose_ros.core.pipeline.PosePipeline`: subscriptions pair each
image with its CameraInfo (and optional aligned depth) by stamp, a worker thread always
processes the newest frame (frames arriving while it is busy are dropped and counted, never
queued), and the results are converted to messages by :mod:`pose_ros.ros.convert`.
"""
from __future__ import annotations

import collections
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
from rclpy.time import Time
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError
from pose_ros.core.draw import draw_persons
from pose_ros.core.engines import BACKENDS, DEVICES
from pose_ros.core.imageconv import ImageFormatError
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.msg import SkeletonArray

from . import convert
from .qos import RESULT_QOS, SENSOR_QOS
from .run import run_node
from .tf import TfBroadcaster
from .tf_lookup import TransformLookup


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
    Param("use_compressed", False, "subscribe to image/compressed (CompressedImage) instead of image", True),
    Param("use_depth", False, "subscribe to depth/image + depth/camera_info (aligned to the colour image)", True),
    Param("max_persons", 4, "most persons tracked per frame", range=(1, 16)),
    Param("min_detection_score", 0.5, "person detector score threshold", range=(0.0, 1.0)),
    Param("min_presence", 0.5, "drop a person (lose a track) below this presence score", range=(0.0, 1.0)),
    Param("min_keypoint_score", 0.5, "joints below this visibility are not drawn in markers", range=(0.0, 1.0)),
    Param("static_image_mode", False, "run the detector on every frame (no tracking)"),
    Param("detect_every", 15, "while tracking, re-run the detector every N frames for newcomers", range=(1, 300)),
    Param("detector_tiles", 0, "0: detect on the whole image (MediaPipe); 2-4: also on an NxN grid of "
          "overlapping tiles, in the same batch (small / many people)", range=(0, 4)),
    Param("sync_tolerance", 0.05, "max |image stamp - CameraInfo/depth stamp| to pair them, s", range=(0.0, 1.0)),
    Param("depth_window", 5, "side of the per-joint depth window, px (median of valid depths)", range=(1, 31)),
    Param("target_frame", "", "express 3D output, markers and TF in this frame (empty: the image frame)"),
    Param("tf_joints", ["nose", "left_wrist", "right_wrist", "left_ankle", "right_ankle"],
          "joints published as TF frames <joint>_<id> (besides body_<id>)"),
    Param("publish_tf", True, "publish body_<id> and <joint>_<id> on /tf"),
    Param("publish_markers", True, "publish RViz markers on `markers`"),
    Param("publish_debug_image", True, "publish the annotated image on `debug_image` (only computed when subscribed)"),
    Param("marker_lifetime", 0.5, "marker lifetime, s: stale people vanish", range=(0.0, 10.0)),
    Param("diagnostics_period", 1.0, "period of /diagnostics, s", read_only=True, range=(0.1, 60.0)),
    Param("log_throttle", 5.0, "minimum seconds between repeats of one error message", range=(0.0, 600.0)),
)
_PARAM = {p.name: p for p in PARAMS}


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
    return d


@dataclass
class _Frame:
    msg: object  # Image or CompressedImage
    received: float  # monotonic


class _PoseLogic:
    """Everything pose_node does, mixed into an rclpy Node (PoseNode) or a LifecycleNode
    (LifecyclePoseNode). ``_setup`` loads the model and creates the ROS entities,
    ``_teardown`` undoes it; frames are processed only while ``_active``."""

    pipeline: PosePipeline | None = None
    _active = False
    _busy = False  # the worker is processing a frame
    _worker: threading.Thread | None = None

    def _declare_params(self) -> None:
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self.add_on_set_parameters_callback(self._validate)
        v = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        err = self._check(v)
        if err:
            raise ValueError(f"pose_node: bad parameter: {err}")
        self.p = v
        self._cond = threading.Condition()
        self._pending: _Frame | None = None
        self.stats = collections.Counter()

    def _make_pipeline(self) -> PosePipeline:
        v = self.p
        cfg = PipelineConfig(max_persons=v["max_persons"], min_detection_score=v["min_detection_score"],
                             min_presence=v["min_presence"], static_image_mode=v["static_image_mode"],
                             detect_every=v["detect_every"], detector_tiles=v["detector_tiles"],
                             backend=v["backend"], device=v["device"],
                             detector_model=v["detector_model"] or None,
                             landmark_model=v["landmark_model"] or None, cache_dir=v["cache_dir"] or None)
        t0 = time.monotonic()
        pipeline = PosePipeline(cfg)
        self.get_logger().info(f"model loaded in {time.monotonic() - t0:.1f} s: backend "
                               f"{pipeline.backend} on {pipeline.device}")
        return pipeline

    def _setup(self) -> None:
        v = self.p
        self.pipeline = self._make_pipeline()
        ent = self._entities = []
        # inputs
        if v["use_compressed"]:
            ent.append(self.create_subscription(CompressedImage, "image/compressed", self._on_image, SENSOR_QOS))
        else:
            ent.append(self.create_subscription(Image, "image", self._on_image, SENSOR_QOS))
        ent.append(self.create_subscription(CameraInfo, "camera_info", self._on_info, SENSOR_QOS))
        self._infos: collections.deque[CameraInfo] = collections.deque(maxlen=30)
        self._depths: collections.deque[Image] = collections.deque(maxlen=5)
        self._depth_infos: collections.deque[CameraInfo] = collections.deque(maxlen=30)
        if v["use_depth"]:
            ent.append(self.create_subscription(Image, "depth/image", self._on_depth, SENSOR_QOS))
            ent.append(self.create_subscription(CameraInfo, "depth/camera_info",
                                                lambda m: self._depth_infos.append(m), SENSOR_QOS))
        # outputs
        self.pub_skeletons = self.create_publisher(SkeletonArray, "skeletons", RESULT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "markers", RESULT_QOS)
        self.pub_debug = self.create_publisher(Image, "debug_image", SENSOR_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        ent += [self.pub_skeletons, self.pub_markers, self.pub_debug, self.pub_diag]
        self.tf = TfBroadcaster(self)
        self.tf_lookup = TransformLookup(self)
        # state
        self._pending = None
        self._running = True
        self._had_people = False
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=100)
        # per frame: convert input, pipeline, 3D, build + publish outputs (ms)
        self._stage_ms: collections.deque[tuple] = collections.deque(maxlen=100)
        self._t_stats = time.monotonic()
        self._last_stats = collections.Counter()
        ent.append(self.create_timer(v["diagnostics_period"], self._publish_diagnostics))
        self._worker = threading.Thread(target=self._work, name="pose_worker", daemon=True)
        self._worker.start()

    def _teardown(self) -> None:
        self._active = False
        self._running = False
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
            if p.choices and value not in p.choices:
                return f"{name} must be one of {list(p.choices)}, got {value!r}"
            if name == "tf_joints":
                bad = [j for j in value if j not in BLAZEPOSE_33.names]
                if bad:
                    return f"tf_joints has unknown joints {bad}; known: {list(BLAZEPOSE_33.names)}"
            if name == "depth_window" and value % 2 == 0:
                return f"depth_window must be odd, got {value}"
            if name == "detector_tiles" and value == 1:
                return "detector_tiles must be 0 (off) or 2..4"
            if name == "target_frame" and value.strip() != value:
                return "target_frame must not have leading/trailing spaces"
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
        with self._cond:
            self.stats["received"] += 1
            if self._pending is not None:
                self.stats["dropped"] += 1  # newest wins: the older frame is never processed
            self._pending = _Frame(msg, time.monotonic())
            self._cond.notify()

    def _on_info(self, msg: CameraInfo) -> None:
        with self._cond:
            self._infos.append(msg)
            self._cond.notify()

    def _on_depth(self, msg: Image) -> None:
        with self._cond:
            self._depths.append(msg)
            self._cond.notify()

    @staticmethod
    def _nearest(msgs, stamp: Time, tol: float):
        best, best_dt = None, None
        for m in list(msgs):
            dt = abs((Time.from_msg(m.header.stamp) - stamp).nanoseconds) * 1e-9
            if dt <= tol and (best_dt is None or dt < best_dt):
                best, best_dt = m, dt
        return best

    def _error(self, key: str, text: str) -> None:
        self.stats["bad_frames"] += 1
        self.stats[f"error_{key}"] += 1
        self.get_logger().error(text, throttle_duration_sec=self.p["log_throttle"])

    # -- worker -------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            with self._cond:
                while self._pending is None and self._running:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                frame, self._pending = self._pending, None
                stamp = Time.from_msg(frame.msg.header.stamp)
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
                if not self._active or self.pipeline is None:
                    continue  # deactivated meanwhile
                self._busy = True
            try:
                self._process(frame, info)
            except (ImageFormatError, CameraModelError, ValueError) as exc:
                self._error(type(exc).__name__, f"skipping frame: {exc}")
            except Exception as exc:  # keep running whatever happens, but say it loudly
                if not self.context.ok():
                    return  # shutting down (e.g. SIGTERM): publishers are gone
                self._error("internal", f"skipping frame, unexpected {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

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
        camera = convert.camera_from_info(info)
        if isinstance(msg, CompressedImage):
            rgb = convert.compressed_to_rgb(msg)
        else:
            rgb = convert.image_to_rgb(msg)
        convert.check_camera_matches(camera, rgb.shape[1], rgb.shape[0], "image")
        depth = self._depth_for(header, camera, rgb.shape) if self.p["use_depth"] else None
        t1 = time.perf_counter()
        persons = self.pipeline(rgb)
        t2 = time.perf_counter()
        positions, sources = [], []
        for person in persons:
            pos, src = lift.person_positions(person, camera, depth, self.p["depth_window"])
            positions.append(pos)
            sources.append(src)
        out_header = header
        target = self.p["target_frame"]
        if target and target != header.frame_id:
            to_target = self.tf_lookup.lookup(target, header.frame_id)
            if to_target is None:
                self.get_logger().warning(
                    f"no transform from '{header.frame_id}' to target_frame '{target}'; "
                    "publishing in the image frame", throttle_duration_sec=self.p["log_throttle"])
                self.stats["missing_tf"] += 1
            else:
                positions = [to_target.apply(p) for p in positions]
                out_header = type(header)(stamp=header.stamp, frame_id=target)
        bodies = [lift.body_frame(p, person.layout) for p, person in zip(positions, persons, strict=True)]
        t3 = time.perf_counter()
        self.pub_skeletons.publish(convert.skeleton_array(out_header, persons, positions, sources, bodies))
        now = self.get_clock().now()
        self._latency_ms.append((now - Time.from_msg(header.stamp)).nanoseconds * 1e-6)
        self.stats["processed"] += 1
        self.stats["persons"] = len(persons)
        if self.p["publish_markers"]:
            if persons:
                self.pub_markers.publish(convert.markers(out_header, persons, positions,
                                                         self.p["min_keypoint_score"],
                                                         self.p["marker_lifetime"]))
            elif self._had_people:
                self.pub_markers.publish(convert.delete_all(out_header))
        self._had_people = bool(persons)
        if self.p["publish_tf"] and persons:
            self.tf.send(convert.transforms(out_header, persons, positions, bodies, self.p["tf_joints"]))
        if self.p["publish_debug_image"] and self.pub_debug.get_subscription_count() > 0:
            self.stats["debug_images"] += 1
            self.pub_debug.publish(convert.rgb_to_image(draw_persons(rgb, persons), header))
        t4 = time.perf_counter()
        self._stage_ms.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3))

    def _depth_for(self, header, camera, shape):
        stamp = Time.from_msg(header.stamp)
        dmsg = self._nearest(self._depths, stamp, self.p["sync_tolerance"])
        if dmsg is None:
            self.get_logger().warning("no depth image within sync_tolerance of the colour image; "
                                   "using monocular 3D", throttle_duration_sec=self.p["log_throttle"])
            self.stats["no_depth"] += 1
            return None
        if (dmsg.width, dmsg.height) != (shape[1], shape[0]):
            raise ValueError(f"depth image is {dmsg.width}x{dmsg.height} but the colour image is "
                             f"{shape[1]}x{shape[0]}; use a depth image aligned to the colour camera "
                             "(e.g. aligned_depth_to_color)")
        depth = convert.depth_to_m(dmsg)
        if not np.isfinite(depth).any():
            self._error("depth_invalid", "depth image has no valid pixels (all 0 / NaN / inf); "
                                         "using monocular 3D for this frame")
            return None
        return depth

    # -- diagnostics ---------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self.pipeline is None:
            return
        now = time.monotonic()
        dt = max(now - self._t_stats, 1e-6)
        rate_in = (self.stats["received"] - self._last_stats["received"]) / dt
        rate_out = (self.stats["processed"] - self._last_stats["processed"]) / dt
        self._t_stats, self._last_stats = now, collections.Counter(self.stats)
        lat = float(np.median(self._latency_ms)) if self._latency_ms else float("nan")
        level = DiagnosticStatus.OK
        message = "ok"
        if self.stats["received"] and not self.stats["processed"]:
            level, message = DiagnosticStatus.ERROR, "receiving images but producing nothing (see log)"
        elif self.stats["bad_frames"] > self._bad_reported:
            level, message = DiagnosticStatus.WARN, "some frames were skipped (see log)"
        self._bad_reported = self.stats["bad_frames"]
        values = {"input rate (Hz)": f"{rate_in:.1f}", "processed rate (Hz)": f"{rate_out:.1f}",
                  "dropped frames": self.stats["dropped"], "bad frames": self.stats["bad_frames"],
                  "latency median (ms)": f"{lat:.1f}", "backend": self.pipeline.backend,
                  "device": self.pipeline.device, "persons": self.stats["persons"]}
        if self._stage_ms:
            med = np.median(np.array(self._stage_ms), axis=0)
            for name, ms in zip(("convert", "pipeline", "3d", "outputs"), med, strict=True):
                values[f"{name} median (ms)"] = f"{ms:.1f}"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: pose estimation",
                                  message=message, hardware_id=self.pipeline.device,
                                  values=[KeyValue(key=k, value=str(x)) for k, x in values.items()])
        self.pub_diag.publish(DiagnosticArray(header=type(DiagnosticArray().header)(
            stamp=self.get_clock().now().to_msg()), status=[status]))

    _bad_reported = 0


class PoseNode(_PoseLogic, Node):
    """pose_node: starts working as soon as it is constructed."""

    def __init__(self, **kwargs) -> None:
        Node.__init__(self, "pose_node", **kwargs)
        self._declare_params()
        self._setup()
        self._active = True

    def destroy_node(self) -> None:
        self._teardown()
        Node.destroy_node(self)


class LifecyclePoseNode(_PoseLogic, LifecycleNode):
    """pose_node as a managed (lifecycle) node: configure loads the model and creates the
    topics, activate starts processing, deactivate stops it (and frees GPU memory: the model
    is reloaded on the next activate), cleanup / shutdown release everything."""

    def __init__(self, **kwargs) -> None:
        LifecycleNode.__init__(self, "pose_node", **kwargs)
        self._declare_params()

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
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        with self._cond:
            self._pending = None
            while self._busy:
                self._cond.wait(0.05)
        if self.pipeline is not None and self.pipeline.device == "cuda":
            self.pipeline.close()  # free GPU memory while inactive
            self.pipeline = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._teardown()
        LifecycleNode.destroy_node(self)


def main(argv: list[str] | None = None) -> int:
    return run_node(PoseNode, "pose_node", argv, threads=2)


def main_lifecycle(argv: list[str] | None = None) -> int:
    """`ros2 run pose_ros pose_lifecycle_node`: unconfigured until a lifecycle manager (or
    `ros2 lifecycle set /pose_node configure` / `activate`) moves it on."""
    return run_node(LifecyclePoseNode, "pose_node", argv, threads=2)


if __name__ == "__main__":
    sys.exit(main())
