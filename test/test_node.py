"""pose_node over real DDS (loopback): results against the core pipeline, markers, TF,
debug image on demand, parameters, target_frame, and every bad-input case (a clear error on
/rosout, the frame skipped, the node still working afterwards)."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
import yaml
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from conftest import ROOT, photo
from pose_ros.core.camera import default_camera
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.msg import Keypoint, SkeletonArray
from pose_ros.ros.convert import camera_info_msg, rgb_to_image
from pose_ros.ros.pose_node import PARAMS, PoseNode
from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS, TF_QOS
from pose_ros.ros.tf_lookup import TF_STATIC_QOS

FRAME = "camera_color_optical_frame"


def info_for(w: int, h: int, header: Header, k=None) -> CameraInfo:
    msg = camera_info_msg(default_camera(w, h), header)
    if k is not None:
        msg.k = list(k)
    return msg


class Harness:
    """A PoseNode and a client node in one context, spun by a background executor."""

    def __init__(self, cli_args: list[str] | None = None, **params):
        """params: pose_node parameters; cli_args: e.g. ["--ros-args", "-r", "image:=x"] (node only)."""
        base = {"backend": "onnxruntime", "static_image_mode": True, "log_throttle": 0.0}
        base.update(params)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = PoseNode(context=self.ctx, cli_args=cli_args,
                             parameter_overrides=[Parameter(k, value=v) for k, v in base.items()])
        self.client = rclpy.create_node("pose_test_client", context=self.ctx)
        self.lock = threading.Lock()
        self.got: dict[str, list] = {"skeletons": [], "markers": [], "tf": [], "log": [], "debug": []}
        c = self.client
        c.create_subscription(SkeletonArray, "skeletons", self._keep("skeletons"), RESULT_QOS)
        c.create_subscription(MarkerArray, "markers", self._keep("markers"), RESULT_QOS)
        c.create_subscription(TFMessage, "/tf", self._keep("tf"), TF_QOS)
        c.create_subscription(Log, "/rosout", self._keep("log"),
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.pub_image = c.create_publisher(Image, "image", SENSOR_QOS)
        self.pub_compressed = c.create_publisher(CompressedImage, "image/compressed", SENSOR_QOS)
        self.pub_info = c.create_publisher(CameraInfo, "camera_info", SENSOR_QOS)
        self.pub_depth = c.create_publisher(Image, "depth/image", SENSOR_QOS)
        self.pub_static = c.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(c)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.seq = 0

    def _keep(self, key):
        def cb(msg):
            with self.lock:
                self.got[key].append(msg)
        return cb

    def count(self, key) -> int:
        with self.lock:
            return len(self.got[key])

    def header(self, frame_id: str = FRAME) -> Header:
        self.seq += 1
        return Header(stamp=self.client.get_clock().now().to_msg(), frame_id=frame_id)

    def send(self, image=None, info=True, compressed=None, depth=None, frame_id=FRAME, k=None):
        """Publish one frame (with CameraInfo and optional depth of the same stamp)."""
        h = self.header(frame_id)
        rgb = photo("astronaut") if image is None else image
        w, hh = (image.width, image.height) if isinstance(image, Image) else (rgb.shape[1], rgb.shape[0])
        if info is not None:
            if isinstance(info, CameraInfo):
                info.header = h
                self.pub_info.publish(info)
            elif info:
                self.pub_info.publish(info_for(w, hh, h, k))
        if depth is not None:
            depth.header = h
            self.pub_depth.publish(depth)
        if compressed is not None:
            self.pub_compressed.publish(CompressedImage(header=h, format="jpeg", data=compressed))
        elif isinstance(image, Image):
            image.header = h
            self.pub_image.publish(image)
        else:
            self.pub_image.publish(rgb_to_image(rgb, h))
        return h

    def until(self, pred, send=None, timeout: float = 30.0, every: float = 0.3) -> bool:
        deadline = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < deadline:
            if pred():
                return True
            if send is not None and time.monotonic() - last > every:
                send()
                last = time.monotonic()
            time.sleep(0.02)
        return pred()

    def logged(self, text: str, level: int = Log.ERROR, since: int = 0) -> bool:
        """Did pose_node log ``text`` at ``level`` or above (in /rosout messages since index)?"""
        with self.lock:
            return any(text in m.msg and m.level >= level and m.name == "pose_node"
                       for m in self.got["log"][since:])

    def close(self):
        self.executor.shutdown(timeout_sec=10)  # stop spinning before anything is destroyed
        self.thread.join(timeout=10)
        self.node.destroy_node()  # stops the worker
        self.client.destroy_node()
        rclpy.shutdown(context=self.ctx)


@pytest.fixture(scope="module")
def harness(models):
    h = Harness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def reference(models):
    # the core pipeline with the node's own defaults for the detector (PARAMS, config/pose.yaml)
    node_defaults = {p.name: p.default for p in PARAMS if p.name in ("detector_tiles", "detector_pyramid")}
    return PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True,
                                       **node_defaults))(photo("astronaut"))


def fresh_skeletons(h: Harness, **send_kwargs) -> SkeletonArray:
    n = h.count("skeletons")
    assert h.until(lambda: h.count("skeletons") > n, send=lambda: h.send(**send_kwargs)), "no skeletons"
    with h.lock:
        return h.got["skeletons"][-1]


def test_skeletons_match_core_pipeline(harness, reference):
    msg = fresh_skeletons(harness)
    assert msg.header.frame_id == FRAME and len(msg.skeletons) == 1
    sk = msg.skeletons[0]
    assert sk.layout == "blazepose_33" and len(sk.keypoints) == 33
    ref = reference[0]
    for j in (0, 11, 12):  # nose, shoulders
        kp = sk.keypoints[j]
        assert math.hypot(kp.x - ref.keypoints[j, 0], kp.y - ref.keypoints[j, 1]) < 2.0, kp.name
    nose = sk.keypoints[0]
    assert nose.position_source == Keypoint.SOURCE_MONOCULAR
    assert 0.3 < nose.position.z < 2.0  # metres in front of the camera
    assert math.isfinite(sk.body_pose.orientation.w)
    assert sk.roi.width > 100 and sk.roi.height > 100


def test_markers_and_tf(harness):
    fresh_skeletons(harness)
    assert harness.until(lambda: harness.count("markers") > 0 and harness.count("tf") > 0,
                         send=harness.send, timeout=20)
    with harness.lock:
        markers = harness.got["markers"][-1].markers
    ns = {m.ns: m for m in markers}
    assert {"limbs", "joints", "labels"} <= set(ns)
    assert ns["limbs"].type == Marker.LINE_LIST and len(ns["limbs"].points) % 2 == 0
    assert ns["labels"].text.startswith("id ")
    pid = ns["joints"].id

    def parent_of() -> dict:  # child -> parent over every TFMessage so far
        with harness.lock:
            return {t.child_frame_id: t.header.frame_id for m in harness.got["tf"] for t in m.transforms}
    assert harness.until(lambda: f"nose_{pid}" in parent_of(), timeout=5)
    parents = parent_of()  # REP-155: body_<id> under the camera, joints under body_<id>
    assert parents[f"body_{pid}"] == FRAME and parents[f"nose_{pid}"] == f"body_{pid}"


def test_debug_image_only_when_subscribed(harness):
    node = harness.node
    fresh_skeletons(harness)
    fresh_skeletons(harness)
    assert node.stats["debug_images"] == 0
    sub = harness.client.create_subscription(Image, "debug_image", harness._keep("debug"), SENSOR_QOS)
    try:
        assert harness.until(lambda: harness.count("debug") > 0, send=harness.send, timeout=20)
        img = harness.got["debug"][-1]
        assert (img.width, img.height, img.encoding) == (512, 512, "rgb8")
    finally:
        harness.client.destroy_subscription(sub)


def test_parameters_validated(harness):
    node = harness.node
    res = node.set_parameters([Parameter("max_persons", value=0)])
    assert not res[0].successful
    res = node.set_parameters([Parameter("tf_joints", value=["nose", "tail"])])
    assert not res[0].successful and "tail" in res[0].reason
    res = node.set_parameters([Parameter("depth_window", value=4)])
    assert not res[0].successful and "odd" in res[0].reason
    res = node.set_parameters([Parameter("backend", value="torch")])  # read-only
    assert not res[0].successful
    res = node.set_parameters([Parameter("min_detection_score", value=0.6)])
    assert res[0].successful and node.pipeline.cfg.min_detection_score == 0.6
    node.set_parameters([Parameter("min_detection_score", value=0.5)])


def test_target_frame(harness):
    node = harness.node
    # a static transform base_link <- camera: camera 1.2 m above, looking forward
    t = TFMessage()
    from geometry_msgs.msg import TransformStamped

    tr = TransformStamped(header=Header(frame_id="base_link"), child_frame_id=FRAME)
    tr.transform.translation.z = 1.2
    tr.transform.rotation.w = 1.0
    t.transforms.append(tr)
    harness.pub_static.publish(t)
    node.set_parameters([Parameter("target_frame", value="base_link")])
    try:
        in_cam = None
        assert harness.until(lambda: node.tf_lookup.lookup("base_link", FRAME) is not None,
                             send=lambda: harness.pub_static.publish(t), timeout=10)
        msg = fresh_skeletons(harness)
        assert msg.header.frame_id == "base_link"
        in_cam = msg.skeletons[0].keypoints[0].position
        assert 1.2 + 0.2 < in_cam.z < 1.2 + 2.0  # shifted by the transform
        node.set_parameters([Parameter("target_frame", value="nowhere")])
        msg = fresh_skeletons(harness)
        assert msg.header.frame_id == FRAME  # falls back to the image frame
        assert harness.until(lambda: harness.logged("no transform from", Log.WARN), timeout=5)
    finally:
        node.set_parameters([Parameter("target_frame", value="")])


BAD_CASES = {
    "unknown encoding": (dict(image=Image(height=4, width=4, encoding="weird8", step=12, data=bytes(48))),
                         "unsupported image encoding"),
    "step too small": (dict(image=Image(height=4, width=4, encoding="rgb8", step=11, data=bytes(48))),
                       "step 11 is smaller"),
    "data too short": (dict(image=Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(40))),
                       "data has 40 bytes"),
    "zero size": (dict(image=Image(height=0, width=0, encoding="rgb8", step=0, data=b"")), "zero size"),
    "uncalibrated": (dict(k=[0.0] * 9), "camera not calibrated"),
    "missing CameraInfo": (dict(info=None), "no CameraInfo"),
    "size mismatch": (dict(info=info_for(640, 480, Header())), "CameraInfo says 640x480"),
    # an 8000x8000 image: the size limit is checked before the payload is touched, so the
    # test sends the header with a short payload (a real 192 MB frame over DDS is not a test)
    "8000x8000": (dict(image=Image(height=8000, width=8000, encoding="rgb8", step=24000, data=bytes(64))),
                  "exceeds the"),
    "empty frame_id": (dict(frame_id=""), "frame_id is empty"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_reported_and_skipped(harness, case):
    kwargs, text = BAD_CASES[case]
    before = harness.node.stats["bad_frames"]
    since = harness.count("log")
    if case == "missing CameraInfo":  # an image stamped far from any CameraInfo
        send = lambda: harness.send(info=None)  # noqa: E731
    else:
        send = lambda: harness.send(**kwargs)  # noqa: E731
    assert harness.until(lambda: harness.logged(text, since=since), send=send, timeout=20), \
        f"no error with {text!r}"
    assert harness.node.stats["bad_frames"] > before
    fresh_skeletons(harness)  # still working


def test_compressed_and_garbage(models):
    h = Harness(use_compressed=True)
    try:
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
        msg = fresh_skeletons(h, compressed=jpg.tobytes())
        assert len(msg.skeletons) == 1
        assert h.until(lambda: h.logged("could not be decoded"),
                       send=lambda: h.send(compressed=b"\xff\xd8garbage" * 20), timeout=20)
        fresh_skeletons(h, compressed=jpg.tobytes())
    finally:
        h.close()


def depth_msg(w: int, h: int, values_mm: np.ndarray | None = None, encoding="16UC1") -> Image:
    arr = np.full((h, w), 1800, np.uint16) if values_mm is None else values_mm
    return Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding,
                 step=arr.shape[1] * arr.itemsize, data=arr.tobytes())


def test_depth_backprojection_and_bad_depth(models):
    h = Harness(use_depth=True)
    try:
        def depth_nose():
            with h.lock:
                return [m.skeletons[0].keypoints[0] for m in h.got["skeletons"][-1:] if m.skeletons
                        and m.skeletons[0].keypoints[0].position_source == Keypoint.SOURCE_DEPTH]
        assert h.until(depth_nose, send=lambda: h.send(depth=depth_msg(512, 512)), timeout=30)
        nose = depth_nose()[0]
        assert nose.position.z == pytest.approx(1.8)  # a flat wall at 1800 mm
        # depth of a different size: error, frame skipped
        assert h.until(lambda: h.logged("depth image is 320x240"),
                       send=lambda: h.send(depth=depth_msg(320, 240)), timeout=20)
        # all-invalid depth (0, NaN, inf): error, monocular fallback for that frame
        bad = np.zeros((512, 512), np.float32)
        bad[:100] = np.nan
        bad[100:200] = np.inf
        n = h.count("skeletons")
        assert h.until(lambda: h.logged("no valid pixels"),
                       send=lambda: h.send(depth=depth_msg(512, 512, bad, "32FC1")), timeout=20)
        assert h.until(lambda: h.count("skeletons") > n, timeout=10)
        with h.lock:
            last = h.got["skeletons"][-1]
        assert last.skeletons[0].keypoints[0].position_source == Keypoint.SOURCE_MONOCULAR
    finally:
        h.close()


def test_pose_node_as_separate_process(ros_node, spawn, models):
    proc = spawn("-m", "pose_ros.ros.pose_node", "--ros-args", "-r", "__ns:=/proc",
                 "-p", "backend:=onnxruntime")
    got = []
    ros_node.create_subscription(SkeletonArray, "/proc/skeletons", got.append, RESULT_QOS)
    pub_i = ros_node.create_publisher(Image, "/proc/image", SENSOR_QOS)
    pub_c = ros_node.create_publisher(CameraInfo, "/proc/camera_info", SENSOR_QOS)
    rgb = photo("astronaut")
    ex = rclpy.executors.SingleThreadedExecutor(context=ros_node.context)
    ex.add_node(ros_node)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline and proc.poll() is None:
        h = Header(stamp=ros_node.get_clock().now().to_msg(), frame_id=FRAME)
        pub_c.publish(info_for(512, 512, h))
        pub_i.publish(rgb_to_image(rgb, h))
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
    ex.remove_node(ros_node)
    assert got, f"no skeletons from the pose_node process (alive={proc.poll() is None})"
    assert len(got[-1].skeletons) == 1


def test_yaml_matches_declared_parameters(harness):
    cfg = yaml.safe_load((ROOT / "config" / "pose.yaml").read_text())["/**"]["ros__parameters"]
    declared = {p.name: p.default for p in PARAMS}
    assert set(cfg) == set(declared)
    for k, v in cfg.items():
        assert v == declared[k], k
    builtin = {"use_sim_time", "start_type_description_service"}  # declared by rclpy itself
    # diagnostic_updater (present with a ROS distro) declares diagnostic_updater.period on the node
    node_params = {n for n in harness.node._parameters if not n.startswith("diagnostic_updater.")} - builtin
    assert node_params == set(declared)
    for p in PARAMS:
        assert harness.node.describe_parameter(p.name).description == p.description


# The launch file's tests live in test_launch_plan.py.


def test_rviz_config_lists_outputs():
    cfg = yaml.safe_load((ROOT / "rviz" / "pose.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/MarkerArray", "rviz_default_plugins/TF",
            "rviz_default_plugins/Image", "rviz_default_plugins/PointCloud2"} <= classes
    topics = {d.get("Topic", {}).get("Value") for d in displays}
    assert {"/markers", "/debug_image", "/smpl_markers", "/people_cloud"} <= topics  # smpl:=true outputs
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == FRAME


def test_demo_command(tmp_path, models):
    r = subprocess.run([sys.executable, "-m", "pose_ros.ros.demo_run", "--seconds", "3", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=str(ROOT / "test"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "people in the last frame: 1" in r.stdout
    plotted = re.search(r"mesh triangles plotted: (\d+)", r.stdout)  # smpl_node's mesh in the 3D plot
    assert plotted and int(plotted.group(1)) > 1000, r.stdout[-2000:]
    for f in ("demo.mcap", "demo_annotated.png", "demo_skeleton3d.png"):
        assert (tmp_path / f).stat().st_size > 1000, f
    from mcap_ros2.reader import read_ros2_messages

    topics = {m.channel.topic for m in read_ros2_messages(str(tmp_path / "demo.mcap"))}
    assert {"/skeletons", "/markers", "/tf", "/image", "/camera_info", "/smpl", "/smpl_markers"} <= topics


def test_lifecycle_node_transitions(models):
    from rclpy.lifecycle import TransitionCallbackReturn

    from pose_ros.ros.pose_node import LifecyclePoseNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = LifecyclePoseNode(context=ctx, namespace="/lc", parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("static_image_mode", value=True)])
    client = rclpy.create_node("lifecycle_client", context=ctx, namespace="/lc")
    got: list = []
    client.create_subscription(SkeletonArray, "skeletons", got.append, RESULT_QOS)
    pub_i = client.create_publisher(Image, "image", SENSOR_QOS)
    pub_c = client.create_publisher(CameraInfo, "camera_info", SENSOR_QOS)
    ex = MultiThreadedExecutor(num_threads=3, context=ctx)
    ex.add_node(node)
    ex.add_node(client)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()
    rgb = photo("astronaut")

    def pump(seconds: float) -> int:
        n = len(got)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            h = Header(stamp=client.get_clock().now().to_msg(), frame_id=FRAME)
            pub_c.publish(info_for(512, 512, h))
            pub_i.publish(rgb_to_image(rgb, h))
            time.sleep(0.1)
        return len(got) - n

    def subscribers(n: int) -> bool:  # the ROS graph updates asynchronously
        end = time.monotonic() + 10
        while client.count_subscribers("image") != n and time.monotonic() < end:
            time.sleep(0.05)
        return client.count_subscribers("image") == n

    try:
        assert node.pipeline is None and subscribers(0)  # unconfigured: no topics yet
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.pipeline is not None and subscribers(1)
        assert pump(1.5) == 0  # configured, not active: nothing is processed
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            pump(0.3)
        assert got and len(got[-1].skeletons) == 1
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        time.sleep(0.5)
        assert pump(1.5) == 0
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.pipeline is None and subscribers(0)
    finally:
        ex.shutdown(timeout_sec=10)
        thread.join(timeout=10)
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown(context=ctx)


def test_demo_source_plays_a_video_file(ros_node, spawn, tmp_path):
    path = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for t in range(5):
        w.write(np.full((240, 320, 3), 40 * t, np.uint8))
    w.release()
    spawn("-m", "pose_ros.ros.demo_source", "--ros-args", "-r", "__ns:=/vid", "-p", f"source:={path}",
          "-p", "rate:=30.0", "-p", "loop:=true", "-p", "frame_id:=webcam_optical")
    images, infos = [], []
    ros_node.create_subscription(Image, "/vid/image", images.append, SENSOR_QOS)
    ros_node.create_subscription(CameraInfo, "/vid/camera_info", infos.append, SENSOR_QOS)
    ex = rclpy.executors.SingleThreadedExecutor(context=ros_node.context)
    ex.add_node(ros_node)
    deadline = time.monotonic() + 30
    while (len(images) < 8 or not infos) and time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.05)
    ex.remove_node(ros_node)
    assert len(images) >= 8  # more frames than the clip has: it loops
    img, inf = images[-1], infos[-1]
    assert (img.width, img.height, img.encoding, img.header.frame_id) == (320, 240, "rgb8", "webcam_optical")
    assert inf.width == 320 and inf.k[0] > 0 and inf.k[2] == 160  # plausible, centred intrinsics
    levels = {np.frombuffer(m.data, np.uint8)[0] // 40 for m in images}
    assert len(levels) >= 3  # different video frames, not one still
