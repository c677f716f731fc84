"""What ``launch/pose.launch.py`` starts, as plain Python (no rclpy, no launch at import time).

The launch file is a thin shell: it declares :data:`ARGS`, and an ``OpaqueFunction`` turns
the evaluated argument strings into :class:`NodePlan` objects with :func:`plan` and then into
``launch_ros`` actions. Every decision (which nodes, remaps, parameters per argument
combination) lives here so that it is tested without a ROS distro (test/test_launch_plan.py).

Rules:
* a remap is passed only when its target is known: an empty target (``-r depth/image:=``)
  makes rcl refuse to start the node;
* ``camera_info`` defaults to the image's sibling topic (image_transport's convention:
  ``/camera/color/image_raw`` -> ``/camera/color/camera_info``), likewise ``depth_camera_info``;
* ``namespace`` puts every node (and its relative outputs ``skeletons``, ``markers``,
  ``debug_image``) under it, so several cameras run side by side;
* ``backend`` / ``device`` / ``target_frame`` override ``params_file`` only when given;
* a user mistake (``rviz:=true`` without rviz2, ``demo:=true`` with ``depth:=``, a bad
  boolean) raises :class:`LaunchPlanError` naming the fix, before any node is started.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

PACKAGE = "pose_ros"
NODE_NAME = "pose_node"


@dataclass(frozen=True)
class LaunchArg:
    """One ``ros2 launch`` argument: ``kind`` is ``bool``, ``choice`` (one of ``choices``),
    ``topic`` (empty = unset) or ``str``."""

    name: str
    default: str
    description: str
    kind: str = "str"
    choices: tuple[str, ...] = ()


ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("image", "/camera/color/image_raw", "colour image topic (sensor_msgs/Image); with "
              "compressed:=true its /compressed sibling is used", "topic"),
    LaunchArg("camera_info", "", "CameraInfo of the colour image (empty: the image's sibling "
              "<image namespace>/camera_info)", "topic"),
    LaunchArg("compressed", "false", "subscribe to <image>/compressed (CompressedImage)", "bool"),
    LaunchArg("depth", "", "aligned depth image topic (empty: monocular 3D)", "topic"),
    LaunchArg("depth_camera_info", "", "CameraInfo of the aligned depth image (empty: the depth "
              "image's sibling <depth namespace>/camera_info)", "topic"),
    LaunchArg("namespace", "", "namespace of the nodes and their outputs (one per camera, e.g. "
              "cam_left); empty: none"),
    LaunchArg("params_file", "", "pose_node parameter file (empty: the package's config/pose.yaml)"),
    LaunchArg("backend", "", "override params_file: auto | onnxruntime | openvino | openvino_bf16 | "
              "torch | tensorrt | litert (empty: keep params_file's)"),
    LaunchArg("device", "", "override params_file: auto | cpu | cuda (empty: keep params_file's)"),
    LaunchArg("target_frame", "", "override params_file: frame for 3D output, markers and TF "
              "(empty: keep params_file's, whose default is the image frame)"),
    LaunchArg("lifecycle", "false", "run pose_lifecycle_node (managed: configure + activate it with "
              "your lifecycle manager or `ros2 lifecycle set`) instead of pose_node", "bool"),
    LaunchArg("demo", "false", "also start demo_source (a real photo as a camera) and listen to it "
              "instead of image/camera_info", "bool"),
    LaunchArg("demo_source", "astronaut", "demo_source's source: astronaut | camera | "
              "<image or video file> | v4l2:N"),
    LaunchArg("rviz", "false", "start RViz with rviz/pose.rviz (needs rviz2 installed)", "bool"),
    LaunchArg("smpl", "false", "also start smpl_node (same namespace): SMPL bodies on smpl, mesh markers "
              "on smpl_markers, joint TF and the mesh as people_cloud (pose_node's capsule cloud off)",
              "bool"),
    LaunchArg("smpl_model", "", "smpl_node's model_path: official SMPL .pkl / .npz or its folder "
              "(empty: the built-in body, which is NOT SMPL)"),
)
ARG_DEFAULTS: dict[str, str] = {a.name: a.default for a in ARGS}

#: the absolute topics rviz/pose.rviz displays (remapped into a namespace)
RVIZ_TOPICS = ("markers", "smpl_markers", "people_cloud", "debug_image")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class LaunchPlanError(ValueError):
    """A launch argument mistake; the message says how to fix it."""


@dataclass(frozen=True)
class NodePlan:
    """One node to start: what ``launch_ros.actions.Node`` / ``LifecycleNode`` receive.

    ``parameters`` is a list of parameter files (str paths) and dicts, applied in order;
    ``remappings`` pairs (from, to), never with an empty side."""

    package: str
    executable: str
    name: str
    namespace: str = ""
    lifecycle: bool = False
    remappings: tuple[tuple[str, str], ...] = ()
    parameters: tuple = ()
    arguments: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def parse_bool(name: str, value: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, any case) -> bool, else LaunchPlanError."""
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise LaunchPlanError(f"launch argument {name}:={value!r} must be true or false")


_NAME_RE = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def check_topic(name: str, value: str) -> str:
    """Return ``value`` stripped if it is a plausible ROS topic name (letters, digits, ``_``,
    ``/`` separated tokens that do not start with a digit), else raise LaunchPlanError. rcl
    is the final judge; this catches typos (spaces, ``//``, ``-``) with a readable message."""
    v = value.strip()
    if not _NAME_RE.match(v):
        raise LaunchPlanError(f"launch argument {name}:={value!r} is not a valid topic name "
                              "(e.g. /camera/color/image_raw)")
    return v


def sibling_camera_info(image_topic: str) -> str:
    """image_transport's convention: the CameraInfo of ``<ns>/<image>`` is ``<ns>/camera_info``.

    ``/camera/color/image_raw`` -> ``/camera/color/camera_info``; ``image_raw`` ->
    ``camera_info``; ``/image`` -> ``/camera_info``. A trailing ``/compressed`` (a transport
    topic) is not part of the image's name and is dropped first."""
    t = image_topic.strip().rstrip("/")
    if not t:
        raise LaunchPlanError("image topic is empty")
    if t.endswith("/compressed"):
        t = t[: -len("/compressed")]
    head, sep, _ = t.rpartition("/")
    return f"{head}{sep}camera_info" if sep else "camera_info"


def normalize_namespace(value: str) -> str:
    """``cam1`` / ``/cam1/`` -> ``/cam1``; empty stays empty."""
    v = value.strip().strip("/")
    if not v:
        return ""
    check_topic("namespace", v)
    return "/" + v


def plan(args: dict[str, str], params_file_default: str = "", rviz_config: str = "",
         package_available: Callable[[str], bool] | None = None) -> list[NodePlan]:
    """The nodes ``pose.launch.py`` starts for these argument strings.

    Args:
        args: launch argument name -> string value, as ``ros2 launch`` gives them; missing
            names take :data:`ARG_DEFAULTS`; unknown names raise LaunchPlanError.
        params_file_default: path of the package's config/pose.yaml (used when
            ``params_file`` is empty).
        rviz_config: path of rviz/pose.rviz.
        package_available: ``name -> bool`` (the launch file passes an ament_index lookup);
            consulted only for ``rviz:=true``.
    """
    unknown = set(args) - set(ARG_DEFAULTS)
    if unknown:
        raise LaunchPlanError(f"unknown launch arguments {sorted(unknown)}; known: {sorted(ARG_DEFAULTS)}")
    a = {**ARG_DEFAULTS, **{k: ("" if v is None else str(v)) for k, v in args.items()}}
    flags = {x.name: parse_bool(x.name, a[x.name]) for x in ARGS if x.kind == "bool"}
    ns = normalize_namespace(a["namespace"])
    demo, lifecycle, compressed = flags["demo"], flags["lifecycle"], flags["compressed"]
    depth = a["depth"].strip()
    depth_info = a["depth_camera_info"].strip()

    if flags["rviz"] and not (package_available is not None and package_available("rviz2")):
        raise LaunchPlanError("rviz:=true but rviz2 is not installed (it is optional for pose_ros): "
                              "install it (e.g. apt install ros-$ROS_DISTRO-rviz2) or drop rviz:=true "
                              "and run rviz2 on another machine")
    if demo and (compressed or depth or depth_info):
        raise LaunchPlanError("demo:=true publishes raw colour images only: drop compressed:=true, "
                              "depth:= and depth_camera_info:= (or drop demo:=true to use a camera)")
    if depth_info and not depth:
        raise LaunchPlanError("depth_camera_info:= is set but depth:= is not; set depth:= to the "
                              "aligned depth image topic")

    remaps: list[tuple[str, str]] = []
    if demo:
        # relative: demo_source and pose_node share the namespace (two demos never mix)
        remaps += [("image", "demo/image"), ("camera_info", "demo/camera_info")]
    else:
        image = check_topic("image", a["image"])
        if image.endswith("/compressed"):
            raise LaunchPlanError(f"image:={image} names a transport topic; give the base image "
                                  f"topic ({image[: -len('/compressed')]}) and compressed:=true")
        info = a["camera_info"].strip()
        info = check_topic("camera_info", info) if info else sibling_camera_info(image)
        remaps.append(("image/compressed", f"{image}/compressed") if compressed else ("image", image))
        remaps.append(("camera_info", info))
        if depth:
            depth = check_topic("depth", depth)
            dinfo = check_topic("depth_camera_info", depth_info) if depth_info else sibling_camera_info(depth)
            remaps += [("depth/image", depth), ("depth/camera_info", dinfo)]

    overrides: dict[str, object] = {"use_compressed": compressed, "use_depth": bool(depth)}
    if flags["smpl"]:
        overrides["publish_people_cloud"] = False  # smpl_node publishes the mesh as people_cloud
    for key in ("backend", "device", "target_frame"):
        if a[key].strip():
            overrides[key] = a[key].strip()
    params_file = a["params_file"].strip() or params_file_default
    parameters = tuple(p for p in (params_file, overrides) if p)

    nodes = [NodePlan(PACKAGE, "pose_lifecycle_node" if lifecycle else "pose_node", NODE_NAME, ns,
                      lifecycle, tuple(remaps), parameters)]
    if demo:
        nodes.append(NodePlan(PACKAGE, "demo_source", "demo_source", ns, False,
                              (("image", "demo/image"), ("camera_info", "demo/camera_info")),
                              ({"source": a["demo_source"].strip() or "astronaut"},)))
    if flags["smpl"]:
        # reads pose_node's relative `skeletons` in the same namespace; outputs relative too
        nodes.append(NodePlan(PACKAGE, "smpl_node", "smpl_node", ns, False, (),
                              ({"model_path": a["smpl_model"].strip()},)))
    if flags["rviz"]:
        # pose.rviz shows /markers, /smpl_markers, /people_cloud and /debug_image: point them at
        # this namespace's outputs
        rv = tuple((f"/{t}", f"{ns}/{t}") for t in RVIZ_TOPICS) if ns else ()
        nodes.append(NodePlan("rviz2", "rviz2", "rviz2", ns, False, rv, (),
                              ("-d", rviz_config) if rviz_config else ()))
    for n in nodes:
        for src, dst in n.remappings:
            if not src or not dst:  # cannot happen by construction; never hand rcl an empty rule
                raise LaunchPlanError(f"internal: empty remap {src!r}:={dst!r} for {n.name}")
    return nodes


def package_available(name: str) -> bool:
    """True if the ROS package ``name`` is in the ament index (AMENT_PREFIX_PATH)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix(name)
    except (PackageNotFoundError, ValueError, LookupError):
        return False
    return True


# -- launch/multiview.launch.py: N cameras -> multiview_node ----------------------------------
MULTIVIEW_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("cameras", "cam_a,cam_b,cam_c", "comma-separated camera namespaces (at least 2): camera "
              "<c>'s pose_node publishes /<c>/skeletons, which multiview_node fuses"),
    LaunchArg("image", "/{camera}/color/image_raw", "image topic of each camera, {camera} = its namespace; "
              "its sibling <image namespace>/camera_info is the CameraInfo pose_node and multiview_node read"),
    LaunchArg("world_frame", "world", "TF frame of the fused skeletons, markers and body frames (TF "
              "must connect it to every camera's optical frame)"),
    LaunchArg("start_pose_nodes", "true", "also start one pose_node per camera in its namespace (false: "
              "they run elsewhere, e.g. one per camera computer with pose.launch.py namespace:=<c>)", "bool"),
    LaunchArg("params_file", "", "pose_node parameter file (empty: the package's config/pose.yaml)"),
    LaunchArg("multiview_params_file", "", "multiview_node parameter file (empty: the package's "
              "config/multiview.yaml)"),
    LaunchArg("backend", "", "override params_file for every pose_node (empty: keep params_file's)"),
    LaunchArg("device", "", "override params_file for every pose_node (empty: keep params_file's)"),
    LaunchArg("rviz", "false", "start RViz with rviz/multiview.rviz, fixed frame world_frame (needs rviz2)",
              "bool"),
)
MULTIVIEW_ARG_DEFAULTS: dict[str, str] = {a.name: a.default for a in MULTIVIEW_ARGS}


def parse_cameras(value: str) -> list[str]:
    """``cam_a, /cam_b/ ,cam_c`` -> ``['cam_a', 'cam_b', 'cam_c']``: namespaces without slashes,
    in order; LaunchPlanError for fewer than 2, a duplicate or an invalid name."""
    cams = [c.strip().strip("/") for c in value.split(",") if c.strip().strip("/")]
    for c in cams:
        check_topic("cameras", c)
    if len(cams) < 2:
        raise LaunchPlanError(f"cameras:={value!r} names {len(cams)} camera(s); multi-view fusion needs at "
                              "least 2, e.g. cameras:=cam_a,cam_b,cam_c")
    dup = sorted({c for c in cams if cams.count(c) > 1})
    if dup:
        raise LaunchPlanError(f"cameras:={value!r} lists {dup} twice; each camera needs its own namespace")
    return cams


def plan_multiview(args: dict[str, str], params_file_default: str = "", rviz_config: str = "",
                   package_available: Callable[[str], bool] | None = None,
                   multiview_params_default: str = "") -> list[NodePlan]:
    """The nodes ``multiview.launch.py`` starts: with ``start_pose_nodes`` one pose_node per
    camera (namespace ``/<camera>``, image ``image`` with ``{camera}`` filled in, its sibling
    camera_info), then one ``multiview_node`` (root namespace) with parameters ``cameras``,
    ``camera_info_topic`` (the sibling of ``image``, ``{camera}`` kept) and ``world_frame``.

    Args: ``args`` as for :func:`plan` (names of :data:`MULTIVIEW_ARGS`);
    ``params_file_default``: config/pose.yaml (pose_nodes' parameters when ``params_file`` is empty);
    ``rviz_config``, ``package_available``: as for :func:`plan` (``rviz:=true`` adds rviz2 with
    ``-d rviz_config -f world_frame``); ``multiview_params_default``: config/multiview.yaml (used
    when ``multiview_params_file`` is empty).
    """
    unknown = set(args) - set(MULTIVIEW_ARG_DEFAULTS)
    if unknown:
        raise LaunchPlanError(f"unknown launch arguments {sorted(unknown)}; known: "
                              f"{sorted(MULTIVIEW_ARG_DEFAULTS)}")
    a = {**MULTIVIEW_ARG_DEFAULTS, **{k: ("" if v is None else str(v)) for k, v in args.items()}}
    cams = parse_cameras(a["cameras"])
    start = parse_bool("start_pose_nodes", a["start_pose_nodes"])
    rviz = parse_bool("rviz", a["rviz"])
    if rviz and not (package_available is not None and package_available("rviz2")):
        raise LaunchPlanError("rviz:=true but rviz2 is not installed (it is optional for pose_ros): "
                              "install it (e.g. apt install ros-$ROS_DISTRO-rviz2) or drop rviz:=true")
    world = a["world_frame"].strip().lstrip("/")
    if not world:
        raise LaunchPlanError("world_frame:= is empty; name the fixed frame the cameras' TF hangs from "
                              "(e.g. world, map, base_link)")
    template = a["image"].strip()
    if "{camera}" not in template:
        raise LaunchPlanError(f"image:={template!r} has no {{camera}}: every camera would read the same "
                              "topic; e.g. image:=/{camera}/color/image_raw")
    images = [check_topic("image", template.replace("{camera}", c)) for c in cams]
    for c, img in zip(cams, images, strict=True):
        if img.endswith("/compressed"):
            raise LaunchPlanError(f"image:={template} gives the transport topic {img} for {c}; give the "
                                  "base image topic")
    infos = [sibling_camera_info(img) for img in images]
    if not all(i.startswith("/") for i in infos):
        raise LaunchPlanError(f"image:={template!r} is relative; give an absolute topic (e.g. "
                              "/{camera}/color/image_raw) so multiview_node finds each camera_info")
    nodes: list[NodePlan] = []
    if start:
        overrides: dict[str, object] = {"use_compressed": False, "use_depth": False}
        for key in ("backend", "device"):
            if a[key].strip():
                overrides[key] = a[key].strip()
        params_file = a["params_file"].strip() or params_file_default
        parameters = tuple(p for p in (params_file, overrides) if p)
        for c, img, info in zip(cams, images, infos, strict=True):
            nodes.append(NodePlan(PACKAGE, "pose_node", NODE_NAME, "/" + c, False,
                                  (("image", img), ("camera_info", info)), parameters))
    mv = {"cameras": cams, "camera_info_topic": sibling_camera_info(template), "world_frame": world}
    mv_file = a["multiview_params_file"].strip() or multiview_params_default
    nodes.append(NodePlan(PACKAGE, "multiview_node", "multiview_node", "", False, (),
                          tuple(p for p in (mv_file, mv) if p)))
    if rviz:
        nodes.append(NodePlan("rviz2", "rviz2", "rviz2", "", False, (), (),
                              (("-d", rviz_config) if rviz_config else ()) + ("-f", world)))
    return nodes
