"""smpl_node over real DDS (loopback): SmplBodyArray, the TRIANGLE_LIST mesh, the 24 SMPL joint
frames under body_<id> and the people_cloud, all stamped like the skeletons; warm start per
track and vanished tracks; bad input; and the whole chain pose_node -> smpl_node on a real photo
(outputs carry the image's stamp).

Oracle: skeletons made from a built-in body posed with a known, hand-written pose (elbow,
knee and hip angles, root turned to face the camera 3 m away): the fit must recover that body,
so the mesh, the cloud and the joint frames must land on the known mesh / joints."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
import torch
import transforms3d
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy.spatial import cKDTree
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core import lift
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.core.smpl import SMPL_JOINT_NAMES, SmplModel
from pose_ros.msg import Keypoint, Skeleton, SkeletonArray, SmplBodyArray
from pose_ros.ros.qos import RESULT_QOS, TF_QOS
from pose_ros.ros.smpl_node import SmplNode

FRAME = "camera_color_optical_frame"
J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
BUILTIN_FACES = 8832  # the built-in body's triangles (hand-checked: 4464 vertices)
BUILTIN_VERTS = 4464


def known_body(transl=(0.1, 0.2, 3.0)):
    """A built-in body in a hand-written pose, in the optical frame: root rotated pi about x
    (model y-up/z-forward -> optical y-down, facing the camera), left elbow 0.8 rad, right knee
    0.6 rad, left hip -0.4 rad, right shoulder 0.5 rad. Returns (vertices V x 3, joints 24 x 3)."""
    pose = torch.zeros(1, 72)
    pose[0, 0] = np.pi
    pose[0, 3 * J["left_elbow"] + 1] = -0.8
    pose[0, 3 * J["right_knee"] + 0] = 0.6
    pose[0, 3 * J["left_hip"] + 0] = -0.4
    pose[0, 3 * J["right_shoulder"] + 2] = 0.5
    out = SmplModel.builtin()(None, pose, torch.tensor([transl], dtype=torch.float32))
    return out.vertices[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64)


def skeleton_msg(joints: np.ndarray, track_id: int, header: Header) -> SkeletonArray:
    """BlazePose-33 keypoints at the SMPL joints of the same name (others NaN, score 0) and the
    REP-155 body pose computed from them."""
    pos = np.full((33, 3), np.nan)
    sk = Skeleton(id=track_id, layout="blazepose_33", score=0.9)
    for i, name in enumerate(BLAZEPOSE_33.names):
        kp = Keypoint(name=name, x=float("nan"), y=float("nan"), score=0.0)
        if name in J:
            pos[i] = joints[J[name]]
            kp.score = 0.95
            kp.position_source = Keypoint.SOURCE_MONOCULAR
        kp.position.x, kp.position.y, kp.position.z = (float(v) for v in pos[i])
        sk.keypoints.append(kp)
    origin, q = lift.body_frame(pos, BLAZEPOSE_33)
    sk.body_pose.position.x, sk.body_pose.position.y, sk.body_pose.position.z = (float(v) for v in origin)
    o = sk.body_pose.orientation
    o.w, o.x, o.y, o.z = (float(v) for v in q)
    return SkeletonArray(header=header, skeletons=[sk])


def decode_xyz(cloud: PointCloud2) -> np.ndarray:
    """The standard PointCloud2 layout read back: a numpy structured dtype from the fields."""
    names = [f.name for f in cloud.fields]
    assert names[:3] == ["x", "y", "z"] and all(f.datatype == 7 for f in cloud.fields[:3])  # FLOAT32
    dtype = np.dtype({"names": names[:3], "formats": ["<f4"] * 3,
                      "offsets": [f.offset for f in cloud.fields[:3]], "itemsize": cloud.point_step})
    arr = np.frombuffer(bytes(cloud.data), dtype=dtype, count=cloud.width * cloud.height)
    return np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float64)


class Rig:
    """SmplNode + a client in one context, spun by a background executor."""

    def __init__(self, namespace: str = "/", **params):
        base = {"log_throttle": 0.0}
        base.update(params)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = SmplNode(context=self.ctx, namespace=namespace,
                             parameter_overrides=[Parameter(k, value=v) for k, v in base.items()])
        c = self.client = rclpy.create_node("smpl_test_client", context=self.ctx, namespace=namespace)
        self.lock = threading.Lock()
        self.got: dict[str, list] = {k: [] for k in ("smpl", "markers", "cloud", "tf", "log")}
        c.create_subscription(SmplBodyArray, "smpl", self._keep("smpl"), RESULT_QOS)
        c.create_subscription(MarkerArray, "smpl_markers", self._keep("markers"), RESULT_QOS)
        c.create_subscription(PointCloud2, "people_cloud", self._keep("cloud"), RESULT_QOS)
        c.create_subscription(TFMessage, "/tf", self._keep("tf"), TF_QOS)
        c.create_subscription(Log, "/rosout", self._keep("log"),
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.pub = c.create_publisher(SkeletonArray, "skeletons", RESULT_QOS)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(c)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def _keep(self, key):
        def cb(msg):
            with self.lock:
                self.got[key].append(msg)
        return cb

    def header(self) -> Header:
        return Header(stamp=self.client.get_clock().now().to_msg(), frame_id=FRAME)

    def wait_for(self, header: Header, keys=("smpl", "markers", "cloud", "tf"), timeout=30.0) -> dict:
        """The first message of each key with this header's stamp."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = {}
                for k in keys:
                    for m in self.got[k]:
                        st = m.transforms[0].header.stamp if k == "tf" else (
                            m.markers[0].header.stamp if k == "markers" else m.header.stamp)
                        if st == header.stamp:
                            found[k] = m
                            break
                if len(found) == len(keys):
                    return found
            time.sleep(0.02)
        raise AssertionError(f"no {set(keys) - set(found)} with stamp {header.stamp}")

    def logged(self, text: str) -> bool:
        with self.lock:
            return any(text in m.msg and m.level >= Log.ERROR and m.name == "smpl_node" for m in self.got["log"])

    def close(self):
        self.executor.shutdown(timeout_sec=10)
        self.thread.join(timeout=10)
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.ctx)


@pytest.fixture(scope="module")
def rig():
    r = Rig(mesh_decimation=4)
    yield r
    r.close()


def test_outputs_land_on_the_known_body(rig):
    verts, joints = known_body()
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints, 7, h))
    got = rig.wait_for(h)
    # SmplBodyArray: the skeletons' header, the track id, a small residual
    smpl = got["smpl"]
    assert smpl.header.frame_id == FRAME and smpl.header.stamp == h.stamp
    (body,) = smpl.bodies
    assert body.id == 7 and len(body.pose) == 72 and len(body.betas) == 10
    assert body.fit_error < 0.02, body.fit_error
    # mesh marker: TRIANGLE_LIST, track colour, ~1/4 of the faces, every corner on the known mesh
    (m,) = got["markers"].markers
    assert (m.type, m.ns, m.id, m.header.frame_id) == (Marker.TRIANGLE_LIST, "smpl_mesh", 7, FRAME)
    from pose_ros.core.draw import track_colour

    assert np.allclose([m.color.r, m.color.g, m.color.b], np.array(track_colour(7)) / 255.0)
    tri = np.array([[p.x, p.y, p.z] for p in m.points]).reshape(-1, 3, 3)
    assert 0.8 * BUILTIN_FACES / 4 <= len(tri) <= 1.2 * BUILTIN_FACES / 4, len(tri)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert (area > 1e-8).all()  # no degenerate triangle
    # each triangle stays within one body part: no edge bridges two capsules (the decimated
    # built-in mesh's longest edge is 0.16 m at rest; a triangle of wrongly indexed vertices
    # spans parts, e.g. 0.30 m with the face indices off by one)
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    assert edges.max() < 0.2, edges.max()
    d_mesh, _ = cKDTree(verts).query(tri.reshape(-1, 3))
    assert np.median(d_mesh) < 0.02 and d_mesh.max() < 0.08, (np.median(d_mesh), d_mesh.max())
    # people_cloud: standard layout, every vertex of the body, on the known mesh
    cloud = got["cloud"]
    assert cloud.header.frame_id == FRAME and cloud.height == 1 and cloud.point_step in (12, 16)
    pts = decode_xyz(cloud)
    assert pts.shape == (BUILTIN_VERTS, 3)
    d_cloud, _ = cKDTree(verts).query(pts)
    assert np.median(d_cloud) < 0.02, np.median(d_cloud)
    # TF: 24 SMPL joint frames as children of body_7, at the known joints once composed with
    # the body frame (composition written here with transforms3d)
    tfs = {t.child_frame_id: t for t in got["tf"].transforms}
    assert {f"smpl_{n}_7" for n in SMPL_JOINT_NAMES} <= set(tfs)
    bp = skeleton_msg(joints, 7, h).skeletons[0].body_pose
    Rb = transforms3d.quaternions.quat2mat([bp.orientation.w, bp.orientation.x, bp.orientation.y,
                                            bp.orientation.z])
    ob = np.array([bp.position.x, bp.position.y, bp.position.z])
    for name in ("left_knee", "right_knee", "left_elbow", "right_wrist", "left_ankle", "pelvis"):
        t = tfs[f"smpl_{name}_7"]
        assert t.header.frame_id == "body_7" and t.header.stamp == h.stamp
        local = np.array([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z])
        assert np.linalg.norm(Rb @ local + ob - joints[J[name]]) < 0.03, name
    # the pelvis frame's orientation in the camera frame: the root's pi turn about x
    r = tfs["smpl_pelvis_7"].transform.rotation
    R = Rb @ transforms3d.quaternions.quat2mat([r.w, r.x, r.y, r.z])
    ang = np.arccos(np.clip((np.trace(R.T @ transforms3d.axangles.axangle2mat([1, 0, 0], np.pi)) - 1) / 2, -1, 1))
    assert ang < 0.15, ang


def test_warm_start_per_track_and_vanished_tracks_dropped(rig):
    _, joints = known_body()
    _, joints2 = known_body(transl=(-0.6, 0.1, 4.0))
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints, 11, h))
    rig.wait_for(h, ("smpl",))
    assert 11 in rig.node.tracker.tracks
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints, 11, h))  # same person again: warm start
    body = rig.wait_for(h, ("smpl",))["smpl"].bodies[0]
    assert body.fit_error < 0.02
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints2, 12, h))  # 11 left, 12 came
    got = rig.wait_for(h, ("smpl",))["smpl"]
    assert [b.id for b in got.bodies] == [12]
    assert rig.node.tracker.tracks == [12]  # 11's state is gone
    assert abs(got.bodies[0].translation.x - joints2[0, 0]) < 0.3  # placed at the new person


def test_bad_input_logged_and_node_keeps_working(rig):
    h = rig.header()
    bad = SkeletonArray(header=h, skeletons=[Skeleton(id=3, layout="mystery", keypoints=[
        Keypoint(name=n, score=1.0) for n in ("a", "b", "c")])])
    rig.pub.publish(bad)
    deadline = time.monotonic() + 10
    while not rig.logged("shares no joint names") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.logged("shares no joint names")
    # the message still gets an (empty) answer, and people vanish from the markers / cloud
    got = rig.wait_for(h, ("smpl", "cloud"))
    assert got["smpl"].bodies == [] and got["cloud"].width == 0
    with rig.lock:
        assert any(mk.action == Marker.DELETEALL for ma in rig.got["markers"] for mk in ma.markers
                   if mk.header.stamp == h.stamp)
    _, joints = known_body()
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints, 7, h))
    assert rig.wait_for(h, ("smpl",))["smpl"].bodies[0].fit_error < 0.02


def test_unseen_legs_are_straight_under_the_body(rig):
    """BlazePose's visibility is low below the hips (legs out of the picture): those keypoints
    (score 0.1 < min_keypoint_score, positions garbage) are ignored and the pose prior straightens
    the legs under the hips, also from a warm start with a bent knee -- the knee / ankle frames
    hang ~0.4 / ~0.8 m below the hip along the body frame's -z (REP-155, z up the spine)."""
    _, joints = known_body()  # right knee bent 0.6 rad, left hip -0.4 rad
    h = rig.header()
    rig.pub.publish(skeleton_msg(joints, 21, h))  # legs seen: the warm start has them bent
    first = np.array(rig.wait_for(h, ("smpl",))["smpl"].bodies[0].pose).reshape(24, 3)
    assert abs(first[J["right_knee"], 0] - 0.6) < 0.1
    h = rig.header()
    msg = skeleton_msg(joints, 21, h)
    rng = np.random.default_rng(1)
    for kp in msg.skeletons[0].keypoints:
        if kp.name.split("_", 1)[-1] in ("knee", "ankle", "heel", "foot_index"):
            kp.score = 0.1
            kp.position.x, kp.position.y, kp.position.z = (float(v) for v in rng.normal(0, 1, 3) + [0, 0, 3])
    rig.pub.publish(msg)
    got = rig.wait_for(h, ("smpl", "tf"))
    (body,) = got["smpl"].bodies
    assert body.fit_error < 0.02  # over the seen joints only
    pose = np.array(body.pose).reshape(24, 3)
    for n in ("left_hip", "right_hip", "left_knee", "right_knee"):
        assert np.linalg.norm(pose[J[n]]) < 0.05, (n, pose[J[n]])
    tfs = {t.child_frame_id: t for t in got["tf"].transforms}

    def at(name):  # joint position in body_21 (x forward, y left, z up)
        tr = tfs[f"smpl_{name}_21"].transform.translation
        return np.array([tr.x, tr.y, tr.z])

    for s in ("left", "right"):
        hip, knee, ankle = at(f"{s}_hip"), at(f"{s}_knee"), at(f"{s}_ankle")
        assert 0.3 < hip[2] - knee[2] < 0.45 and 0.7 < hip[2] - ankle[2] < 0.85, (s, hip, knee, ankle)
        assert np.linalg.norm((ankle - hip)[:2]) < 0.12, s  # straight down, not forwards / sideways


def test_full_mesh_without_decimation():
    # own namespace: the module's rig (mesh_decimation 4) is alive and listens on /skeletons
    r = Rig("/full", mesh_decimation=1, publish_tf=False, publish_people_cloud=False)
    try:
        _, joints = known_body()
        h = r.header()
        r.pub.publish(skeleton_msg(joints, 5, h))
        (m,) = r.wait_for(h, ("markers",))["markers"].markers
        assert len(m.points) == 3 * BUILTIN_FACES
        time.sleep(0.3)
        with r.lock:
            assert not r.got["cloud"] and not r.got["tf"]
    finally:
        r.close()


def body_file_with_extra_vertices(path, extra: int = 3):
    """A model file in the official layout (.npz): the built-in body plus ``extra`` vertices and
    one triangle riding on the pelvis (no effect on joints or the fit), so its vertex count
    (4464 + extra) tells which model a node or the CLI actually loaded."""
    from pose_ros.core.smpl import builtin_body

    d = builtin_body().to_dict()
    V = d["v_template"].shape[0]
    d["v_template"] = np.vstack([d["v_template"], [[0.0, -0.2, 0.15], [0.02, -0.2, 0.15], [0.0, -0.18, 0.15]][:extra]])
    d["shapedirs"] = np.concatenate([d["shapedirs"], np.zeros((extra, 3, 10))])
    d["posedirs"] = np.concatenate([d["posedirs"], np.zeros((extra, 3, 207))])
    d["J_regressor"] = np.hstack([d["J_regressor"], np.zeros((24, extra))])
    w = np.zeros((extra, 24))
    w[:, 0] = 1.0
    d["weights"] = np.vstack([d["weights"], w])
    d["f"] = np.vstack([d["f"], [[V, V + 1, V + 2]]]).astype(np.uint32)
    np.savez(path, **d)
    return V + extra


def test_model_path_parameter_loads_that_file(tmp_path):
    n_verts = body_file_with_extra_vertices(tmp_path / "SMPL_MALE.npz")
    # a folder + gender, as an official download is laid out
    r = Rig("/file", model_path=str(tmp_path), gender="male", publish_mesh=False, publish_tf=False)
    try:
        _, joints = known_body()
        h = r.header()
        r.pub.publish(skeleton_msg(joints, 4, h))
        got = r.wait_for(h, ("smpl", "cloud"))
        assert got["smpl"].bodies[0].fit_error < 0.02
        assert got["cloud"].width == n_verts == BUILTIN_VERTS + 3  # the file's mesh, not the built-in one
    finally:
        r.close()


def test_missing_model_file_names_the_fix(tmp_path):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        with pytest.raises(FileNotFoundError, match="smpl.is.tue.mpg.de"):
            SmplNode(context=ctx, parameter_overrides=[Parameter("model_path", value=str(tmp_path / "no.pkl"))])
    finally:
        rclpy.shutdown(context=ctx)


def test_pose_node_to_smpl_node_on_a_photo(models):
    """The chain on skimage's astronaut: smpl_node's outputs carry the image's stamp and frame."""
    from test_node import Harness

    h = Harness(publish_people_cloud=False)
    smpl = SmplNode(context=h.ctx)
    h.executor.add_node(smpl)
    got: list = []
    h.client.create_subscription(SmplBodyArray, "smpl", got.append, RESULT_QOS)
    meshes: list = []
    h.client.create_subscription(MarkerArray, "smpl_markers", meshes.append, RESULT_QOS)
    clouds: list = []
    h.client.create_subscription(PointCloud2, "people_cloud", clouds.append, RESULT_QOS)
    sent: list = []
    try:
        assert h.until(lambda: any(b.bodies for b in got), send=lambda: sent.append(h.send()), timeout=90)
        msg = next(b for b in got if b.bodies)
        assert msg.header.frame_id == FRAME
        assert msg.header.stamp in [s.stamp for s in sent]
        assert np.isfinite(msg.bodies[0].fit_error) and msg.bodies[0].fit_error < 0.1
        assert h.until(lambda: any(ma.markers and ma.markers[0].header.stamp == msg.header.stamp
                                   for ma in meshes), timeout=10)
        # the mesh vertices as people_cloud (pose_node's own cloud is off here), same stamp
        assert h.until(lambda: any(c.header.stamp == msg.header.stamp and c.width == BUILTIN_VERTS
                                   for c in clouds), timeout=10)
        # the 24 joint frames under pose_node's body_<id> of the same image stamp: a connected tree
        bid = msg.bodies[0].id

        def frames():
            with h.lock:
                return {t.child_frame_id: t for m in h.got["tf"] for t in m.transforms
                        if t.header.stamp == msg.header.stamp}

        assert h.until(lambda: {f"smpl_{n}_{bid}" for n in SMPL_JOINT_NAMES} | {f"body_{bid}"} <= set(frames()),
                       timeout=10)
        tf = frames()
        assert tf[f"body_{bid}"].header.frame_id == FRAME
        assert all(tf[f"smpl_{n}_{bid}"].header.frame_id == f"body_{bid}" for n in SMPL_JOINT_NAMES)
    finally:
        h.executor.remove_node(smpl)
        smpl.destroy_node()
        h.close()
