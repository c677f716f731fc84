"""launch/pose.launch.py: its decisions (pose_ros.ros.launch_plan) for EVERY documented argument
combination, the remap rules checked by real rcl (what `ros2 launch` passes on the command
line), and, where `launch` / `launch_ros` import (a ROS distro; not on PyPI, so skipped here),
the launch file run for real: plain camera path, compressed, lifecycle and demo."""
from __future__ import annotations

import ast
import itertools
import os
import threading
import time

import pytest
import rclpy

from conftest import ROOT
from pose_ros.ros import launch_plan
from pose_ros.ros.launch_plan import ARGS, LaunchPlanError, package_available, plan, sibling_camera_info

IMAGE = "/camera/color/image_raw"  # the documented default
CAM_INFO = "/my_cam/info"
DEPTH = "/camera/aligned_depth_to_color/image_raw"
DEPTH_INFO_SIBLING = "/camera/aligned_depth_to_color/camera_info"  # hand-written, not computed
DEPTH_INFO = "/other/depth_info"
PARAMS_DEFAULT = "/share/pose_ros/config/pose.yaml"
RVIZ_CFG = "/share/pose_ros/rviz/pose.rviz"


def ros_args(p: launch_plan.NodePlan) -> list[str]:
    """The node's command line as launch_ros.actions.Node builds it (name, namespace, remaps)."""
    out = ["--ros-args", "-r", f"__node:={p.name}", "-r", f"__ns:={p.namespace or '/'}"]
    for src, dst in p.remappings:
        out += ["-r", f"{src}:={dst}"]
    return out


def resolve(p: launch_plan.NodePlan, topics: list[str]) -> dict[str, str]:
    """Start a real rclpy node with ``p``'s command line in a fresh Context (rcl parses every
    rule exactly as for `ros2 launch`) and resolve ``topics`` through its remaps."""
    ctx = rclpy.Context()
    rclpy.init(args=["pose_node", *ros_args(p)], context=ctx)
    try:
        node = rclpy.create_node("placeholder_name", context=ctx)  # __node:= renames it
        try:
            out = {t: node.resolve_topic_name(t) for t in topics}
            out["__fqn"] = node.get_fully_qualified_name()
            return out
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


BOOLS = ("compressed", "lifecycle", "demo", "rviz", "smpl")


def combinations():
    """Every boolean argument x every topic argument set/unset x namespace x overrides x rviz2
    installed or not: 2^5 * 2^3 * 2 * 2 * 2 = 2048 cases."""
    for bools in itertools.product((False, True), repeat=len(BOOLS)):
        for info, depth, dinfo, ns, override, have_rviz in itertools.product((False, True), repeat=6):
            args = {k: ("true" if v else "false") for k, v in zip(BOOLS, bools, strict=True)}
            if info:
                args["camera_info"] = CAM_INFO
            if depth:
                args["depth"] = DEPTH
            if dinfo:
                args["depth_camera_info"] = DEPTH_INFO
            if ns:
                args["namespace"] = "cam_left"
            if override:
                args.update(backend="onnxruntime", device="cpu", target_frame="base_link")
            yield args, have_rviz


def expected_error(args: dict, have_rviz: bool) -> str | None:
    """The word the LaunchPlanError must contain, written from the README's rules."""
    if args["rviz"] == "true" and not have_rviz:
        return "rviz2"
    if args["demo"] == "true" and (args["compressed"] == "true" or "depth" in args
                                   or "depth_camera_info" in args):
        return "demo"
    if "depth_camera_info" in args and "depth" not in args:
        return "depth"
    return None


def test_every_argument_combination():
    cases = errors = 0
    for args, have_rviz in combinations():
        cases += 1
        err = expected_error(args, have_rviz)
        if err:
            with pytest.raises(LaunchPlanError, match=err):
                plan(args, PARAMS_DEFAULT, RVIZ_CFG, lambda name, h=have_rviz: h and name == "rviz2")
            errors += 1
            continue
        nodes = plan(args, PARAMS_DEFAULT, RVIZ_CFG, lambda name, h=have_rviz: h and name == "rviz2")
        comp, lc, demo, rviz, smpl = (args[k] == "true" for k in BOOLS)
        ns = "/cam_left" if "namespace" in args else ""
        # right node set
        want = [("pose_ros", "pose_lifecycle_node" if lc else "pose_node", "pose_node", lc)]
        if demo:
            want.append(("pose_ros", "demo_source", "demo_source", False))
        if smpl:
            want.append(("pose_ros", "smpl_node", "smpl_node", False))
        if rviz:
            want.append(("rviz2", "rviz2", "rviz2", False))
        assert [(n.package, n.executable, n.name, n.lifecycle) for n in nodes] == want, args
        assert all(n.namespace == ns for n in nodes)
        # no empty remap, ever
        for n in nodes:
            for src, dst in n.remappings:
                assert src.strip() and dst.strip(), (args, n)
        pose = nodes[0]
        remaps = dict(pose.remappings)
        if demo:
            assert remaps == {"image": "demo/image", "camera_info": "demo/camera_info"}
            assert dict(nodes[1].remappings) == remaps  # demo_source publishes what pose_node hears
        else:
            want_remaps = {"image/compressed" if comp else "image":
                           IMAGE + "/compressed" if comp else IMAGE,
                           "camera_info": CAM_INFO if "camera_info" in args else "/camera/color/camera_info"}
            if "depth" in args:
                want_remaps["depth/image"] = DEPTH
                want_remaps["depth/camera_info"] = DEPTH_INFO if "depth_camera_info" in args \
                    else DEPTH_INFO_SIBLING
            assert remaps == want_remaps, args
        # parameters: the params file, then only the overrides that were given
        assert pose.parameters[0] == PARAMS_DEFAULT
        want_params = {"use_compressed": comp, "use_depth": "depth" in args}
        if "backend" in args:
            want_params.update(backend="onnxruntime", device="cpu", target_frame="base_link")
        if smpl:  # smpl_node publishes people_cloud (the mesh): pose_node's capsules off
            want_params["publish_people_cloud"] = False
            sm = next(n for n in nodes if n.executable == "smpl_node")
            assert sm.remappings == () and sm.parameters == ({"model_path": ""},)
        assert pose.parameters[1] == want_params, args
        assert type(pose.parameters[1]["use_compressed"]) is bool
        if rviz:
            assert nodes[-1].arguments == ("-d", RVIZ_CFG)
            assert dict(nodes[-1].remappings) == ({"/markers": "/cam_left/markers",
                                                  "/smpl_markers": "/cam_left/smpl_markers",
                                                  "/people_cloud": "/cam_left/people_cloud",
                                                  "/debug_image": "/cam_left/debug_image"} if ns else {})
    assert cases == 2048 and 0 < errors < cases


def test_remaps_accepted_by_rcl():
    """Every distinct (namespace, remaps) the plan produces, parsed by real rcl the way
    `ros2 launch` passes it, resolves to the intended fully-qualified topics."""
    seen = set()
    for args, have_rviz in combinations():
        try:
            nodes = plan(args, PARAMS_DEFAULT, RVIZ_CFG, lambda name, h=have_rviz: h)
        except LaunchPlanError:
            continue
        for n in nodes:
            key = (n.name, n.namespace, n.remappings)
            if key in seen:
                continue
            seen.add(key)
            got = resolve(n, [src for src, _ in n.remappings] + ["skeletons"])
            ns = n.namespace
            assert got["__fqn"] == f"{ns}/{n.name}"
            assert got["skeletons"] == f"{ns}/skeletons"  # outputs follow the namespace
            for src, dst in n.remappings:
                assert got[src] == (dst if dst.startswith("/") else f"{ns}/{dst}"), (n, src)
    assert len(seen) >= 20


def test_empty_remap_is_what_rcl_refuses():
    """The old launch file passed `-r depth/image:=` when depth:= was not given: rcl refuses
    it, so the node died at start-up. The plan never produces such a rule (above)."""
    bad = launch_plan.NodePlan("pose_ros", "pose_node", "pose_node", "",
                               remappings=(("image", IMAGE), ("depth/image", "")))
    with pytest.raises(Exception, match="remap rule"):
        resolve(bad, ["image"])


def test_two_cameras_never_share_a_topic():
    left = plan({"namespace": "cam_left", "image": "/cam_left/color/image_raw"})[0]
    right = plan({"namespace": "/cam_right/", "image": "/cam_right/color/image_raw"})[0]
    outs = ["skeletons", "markers", "debug_image", "image", "camera_info"]
    a, b = resolve(left, outs), resolve(right, outs)
    assert a["__fqn"] == "/cam_left/pose_node" and b["__fqn"] == "/cam_right/pose_node"
    assert a["camera_info"] == "/cam_left/color/camera_info"
    assert b["camera_info"] == "/cam_right/color/camera_info"
    assert not set(a.values()) & set(b.values())
    # a relative image topic resolves inside the namespace
    rel = plan({"namespace": "cam_left", "image": "color/image_raw"})[0]
    r = resolve(rel, ["image", "camera_info"])
    assert r == {"image": "/cam_left/color/image_raw", "camera_info": "/cam_left/color/camera_info",
                 "__fqn": "/cam_left/pose_node"}


def test_smpl_node_reads_pose_nodes_skeletons():
    """smpl:=true: smpl_node in pose_node's namespace hears exactly the topic pose_node publishes
    (real rcl resolution), gets smpl_model as model_path, and only one node publishes people_cloud."""
    nodes = plan({"smpl": "true", "namespace": "cam_left", "smpl_model": " /models/smpl "})
    pose, sm = nodes
    assert (sm.executable, sm.namespace, sm.parameters) == ("smpl_node", "/cam_left",
                                                            ({"model_path": "/models/smpl"},))
    a, b = resolve(pose, ["skeletons"]), resolve(sm, ["skeletons", "people_cloud"])
    assert a["skeletons"] == b["skeletons"] == "/cam_left/skeletons"
    assert b["people_cloud"] == "/cam_left/people_cloud"
    assert pose.parameters[-1]["publish_people_cloud"] is False
    assert "publish_people_cloud" not in plan({"smpl": "false"})[0].parameters[-1]


@pytest.mark.parametrize("image,info", [
    ("/camera/color/image_raw", "/camera/color/camera_info"),
    ("/camera/camera/color/image_rect_raw", "/camera/camera/color/camera_info"),
    ("/zed/zed_node/rgb/image_rect_color", "/zed/zed_node/rgb/camera_info"),
    ("/oak/rgb/image_raw/compressed", "/oak/rgb/camera_info"),
    ("image_raw", "camera_info"),
    ("/image", "/camera_info"),
    ("color/image_raw/", "color/camera_info"),
])
def test_sibling_camera_info(image, info):
    assert sibling_camera_info(image) == info


@pytest.mark.parametrize("args,word", [
    ({"image": ""}, "image"),
    ({"image": "/camera/color image"}, "not a valid topic"),
    ({"image": "/camera//image"}, "not a valid topic"),
    ({"image": "/camera/1image"}, "not a valid topic"),
    ({"image": "/camera/color/image_raw/compressed"}, "compressed:=true"),
    ({"compressed": "maybe"}, "true or false"),
    ({"namespace": "cam-1"}, "not a valid topic"),
    ({"imgae": "/x"}, "unknown launch arguments"),
])
def test_user_mistakes_name_the_fix(args, word):
    with pytest.raises(LaunchPlanError, match=word):
        plan(args)


def test_booleans_accept_launch_spellings():
    for v in ("true", "True", "1", "yes", "on"):
        assert plan({"compressed": v})[0].parameters[-1]["use_compressed"] is True
    for v in ("false", "False", "0", "no", "off"):
        assert plan({"compressed": v})[0].parameters[-1]["use_compressed"] is False


def test_rviz_without_rviz2_fails_before_any_node():
    """rviz2 is optional (package.xml does not require it): rviz:=true without it is a clear
    error from the real ament index lookup, raised before any node is planned."""
    assert package_available("pose_ros")  # the index itself works (our install space)
    if package_available("rviz2"):
        pytest.skip("rviz2 is installed here")
    with pytest.raises(LaunchPlanError, match="rviz2 is not installed"):
        plan({"rviz": "true"}, package_available=package_available)
    assert [n.name for n in plan({"rviz": "false"}, package_available=package_available)] == ["pose_node"]
    xml = (ROOT / "package.xml").read_text()
    assert "<exec_depend>rviz2</exec_depend>" not in xml


def test_launch_file_is_a_thin_shell():
    """Without `launch` installed: the launch file parses, takes its arguments from
    launch_plan.ARGS and builds the nodes only through launch_plan.plan()."""
    src = (ROOT / "launch" / "pose.launch.py").read_text()
    tree = ast.parse(src)
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"launch_plan.plan", "OpaqueFunction", "DeclareLaunchArgument"} <= calls
    assert "launch_plan.ARGS" in src
    documented = {"image", "camera_info", "compressed", "depth", "depth_camera_info", "namespace",
                  "params_file", "backend", "device", "target_frame", "lifecycle", "demo",
                  "demo_source", "rviz", "smpl", "smpl_model"}
    assert {a.name for a in ARGS} == documented
    readme = (ROOT / "README.md").read_text()
    for name in documented:
        assert f"`{name}`" in readme, name
    assert all(a.description for a in ARGS)


# -- with a ROS distro: the launch file for real ---------------------------------------------
def _launch_modules():
    # launch_ros first: from the repo root, `import launch` alone would find the launch/ folder
    pytest.importorskip("launch_ros", reason="ROS launch is not on PyPI: runs only with a ROS distro")
    pytest.importorskip("launch.actions")


@pytest.mark.parametrize("args", [{}, {"namespace": "cam1", "compressed": "true"}, {"demo": "true"}])
def test_launch_file_generates_the_plan(args):
    """The OpaqueFunction evaluated in a real LaunchContext yields launch_ros Nodes whose
    command lines carry exactly the plan's remaps (none empty)."""
    _launch_modules()
    import importlib.util

    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location("pose_launch", ROOT / "launch" / "pose.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    ctx = LaunchContext()
    for k, v in args.items():
        ctx.launch_configurations[k] = v
    nodes = []
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(ctx)
        elif isinstance(entity, OpaqueFunction):
            nodes = entity.execute(ctx)
    want = plan(args, "x", "y", lambda n: False)
    assert [n.node_executable for n in nodes] == [p.executable for p in want]
    for node, p in zip(nodes, want, strict=True):
        node._perform_substitutions(ctx)
        assert node.expanded_remapping_rules == list(p.remappings)
        assert node.expanded_node_namespace == (p.namespace or "/")


class _Probe:
    """A client node in its own Context with its own executor in a background thread (the
    LaunchService must own the main thread)."""

    def __init__(self, ns: str = ""):
        from rclpy.executors import SingleThreadedExecutor

        from pose_ros.msg import SkeletonArray
        from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("launch_probe", namespace=ns or "/", context=self.ctx)
        self.got: list = []
        self.node.create_subscription(SkeletonArray, "skeletons", self.got.append, RESULT_QOS)
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.pub_image = self.node.create_publisher(Image, "/camera/color/image_raw", SENSOR_QOS)
        self.pub_jpeg = self.node.create_publisher(CompressedImage, "/camera/color/image_raw/compressed",
                                                   SENSOR_QOS)
        self.pub_info = self.node.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR_QOS)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self.stop.is_set() and self.ctx.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _camera_feed(probe: _Probe, compressed: bool, stop: threading.Event):
    import cv2
    from std_msgs.msg import Header

    from conftest import photo
    from pose_ros.core.camera import default_camera
    from pose_ros.ros.convert import camera_info_msg, rgb_to_image

    rgb = photo("astronaut")
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    from sensor_msgs.msg import CompressedImage

    while not stop.is_set():
        h = Header(stamp=probe.node.get_clock().now().to_msg(), frame_id="camera_color_optical_frame")
        probe.pub_info.publish(camera_info_msg(default_camera(rgb.shape[1], rgb.shape[0]), h))
        if compressed:
            probe.pub_jpeg.publish(CompressedImage(header=h, format="jpeg", data=jpeg))
        else:
            probe.pub_image.publish(rgb_to_image(rgb, h))
        stop.wait(0.2)


def _drive_lifecycle(probe: _Probe, stop: threading.Event):
    """configure then activate /pose_node through its lifecycle services."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    cli = probe.node.create_client(ChangeState, "/pose_node/change_state")
    for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        while not cli.wait_for_service(timeout_sec=0.5):
            if stop.is_set():
                return
        fut = cli.call_async(ChangeState.Request(transition=Transition(id=tid)))
        while not fut.done() and not stop.is_set():
            time.sleep(0.05)
        assert fut.result() is not None and fut.result().success, tid


@pytest.mark.parametrize("args", [{}, {"compressed": "true"}, {"lifecycle": "true"}, {"demo": "true"}],
                         ids=["camera", "compressed", "lifecycle", "demo"])
def test_launch_file_runs(args, models):
    """`ros2 launch pose_ros pose.launch.py <args>` for real: LaunchService.run in the main
    thread; the probe publishes a camera (except demo:=true), drives configure/activate for
    lifecycle:=true and waits for skeletons with a person."""
    _launch_modules()
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    launch_file = ROOT / "launch" / "pose.launch.py"
    probe = _Probe()
    stop = threading.Event()
    workers = []
    if args.get("demo") != "true":
        workers.append(threading.Thread(target=_camera_feed, args=(probe, args.get("compressed") == "true", stop),
                                        daemon=True))
    if args.get("lifecycle") == "true":
        workers.append(threading.Thread(target=_drive_lifecycle, args=(probe, stop), daemon=True))
    ls = LaunchService()
    result: dict = {}

    def watchdog():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(s.skeletons for s in probe.got):
            time.sleep(0.1)
        result["ok"] = any(s.skeletons for s in probe.got)
        ls.shutdown()

    ls.include_launch_description(LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file)),
                                 launch_arguments=list(args.items()))]))
    for w in workers:
        w.start()
    wd = threading.Thread(target=watchdog, daemon=True)
    wd.start()
    try:
        rc = ls.run()  # main thread
    finally:
        stop.set()
        probe.close()
    assert result.get("ok"), f"no skeletons with a person from the launched nodes ({args})"
    assert rc == 0


def test_launch_two_cameras(models):
    """Two launches side by side (namespace:=cam_a / cam_b, demo:=true each): both pose_nodes
    deliver skeletons on their own namespace's topic, and no process dies."""
    _launch_modules()
    from launch import LaunchDescription, LaunchService
    from launch.actions import GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    from pose_ros.msg import SkeletonArray
    from pose_ros.ros.qos import RESULT_QOS

    probe = _Probe()
    got = {"cam_a": [], "cam_b": []}
    for ns, sink in got.items():
        probe.node.create_subscription(SkeletonArray, f"/{ns}/skeletons", sink.append, RESULT_QOS)
    ls = LaunchService()
    result: dict = {}

    def watchdog():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(any(m.skeletons for m in v) for v in got.values()):
            time.sleep(0.1)
        result["ok"] = {k: any(m.skeletons for m in v) for k, v in got.items()}
        ls.shutdown()

    ls.include_launch_description(LaunchDescription([
        GroupAction([IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(ROOT / "launch" / "pose.launch.py")),
            launch_arguments=[("namespace", ns), ("demo", "true")])], scoped=True)
        for ns in got]))
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        rc = ls.run()
    finally:
        probe.close()
    assert result.get("ok") == {"cam_a": True, "cam_b": True}, result
    assert not probe.got  # nothing on the root namespace's /skeletons
    assert rc == 0


def test_pytest_ini_blocks_distro_launch_plugins(tmp_path):
    """A sourced distro registers pytest11 plugins named launch_testing and launch_ros whose
    hooks pytest 9 refuses (launch_testing: `pytest_pycollect_makemodule(path, parent)`;
    launch_testing_ros: the unknown hook `pytest_launch_collect_makemodule`). Installed here as
    two tiny distributions with exactly those hook signatures: `make test`'s pytest.ini must
    keep pytest working, and without its -p no: options pytest must fail as with the distro."""
    import subprocess
    import sys

    for dist, plugin, body in (
            ("launch_testing", "fake_launch_testing_hooks",
             "def pytest_pycollect_makemodule(path, parent):\n    return None\n"),
            ("launch_testing_ros", "fake_launch_testing_ros_entry",
             "def pytest_launch_collect_makemodule(path, parent, entrypoint):\n    return None\n")):
        (tmp_path / f"{plugin}.py").write_text(body)
        info = tmp_path / f"{dist}-0.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0\n")
        name = "launch_testing" if dist == "launch_testing" else "launch_ros"
        (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {plugin}\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [sys.executable, "-m", "pytest", "-q", "--co", "test/test_launch_plan.py::test_sibling_camera_info"]
    ok = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    bad = subprocess.run([*cmd, "-o", "addopts="], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "PluginValidationError" in bad.stdout + bad.stderr


# -- two cameras in one graph: names (item 19) and diagnostics --------------------------------
def _pose_node_in_context(namespace: str):
    """A real PoseNode in its own Context (as if in its own process), spun in the background."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pose_ros.ros.pose_node import PoseNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = PoseNode(context=ctx, namespace=namespace,
                    parameter_overrides=[Parameter("backend", value="onnxruntime"),
                                         Parameter("diagnostics_period", value=0.5)])
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    stop = threading.Event()

    def spin():
        while not stop.is_set() and ctx.ok():
            ex.spin_once(timeout_sec=0.05)

    t = threading.Thread(target=spin, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join(5)
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    return node, close


def test_duplicate_node_name_warns_and_namespaces_keep_cameras_apart(ros_node, models):
    """Two PoseNodes named /dup_<pid>/pose_node (real DDS, separate contexts): one of them
    warns on /rosout naming the duplicate and the fix. A third, in its own namespace, never
    warns, and its /diagnostics status name differs from the others'."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from conftest import spin_until

    pid = os.getpid()
    logs, diags = [], []
    ros_node.create_subscription(Log, "/rosout", logs.append,
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    nodes = [_pose_node_in_context(ns) for ns in (f"/dup_{pid}", f"/dup_{pid}", f"/solo_{pid}")]
    try:
        def warned(logger: str):
            return [m for m in logs if m.name == logger and m.level == Log.WARN and "nodes are named" in m.msg]

        assert spin_until(ros_node, lambda: warned(f"dup_{pid}.pose_node"), timeout=30)
        msg = warned(f"dup_{pid}.pose_node")[0].msg
        assert f"2 nodes are named /dup_{pid}/pose_node" in msg and "__node:=" in msg and "namespace:=" in msg
        # wait until every check of the solo node has run: it never warns
        checks = nodes[0][0].NAME_CHECK_PERIOD * nodes[0][0].NAME_CHECKS
        spin_until(ros_node, lambda: False, timeout=checks + 1.0)
        assert not warned(f"solo_{pid}.pose_node")
        names = {s.name for d in diags for s in d.status}
        assert f"pose_node: pose estimation in /solo_{pid}" in names, names
        assert f"pose_node: pose estimation in /dup_{pid}" in names, names
    finally:
        for _, close in nodes:
            close()
