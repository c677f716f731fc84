"""REP-155 frames, track ids, transform history and the world-landmark rotation, without DDS.

Oracles are independent of the code under test: quaternions and body-frame coordinates worked
out by hand (comments show the working), scipy's Slerp / Rotation for interpolation and
rotations, and a real photo rotated by OpenCV for the world landmarks.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import transforms3d
from scipy.spatial.transform import Rotation, Slerp
from std_msgs.msg import Header

from conftest import photo
from pose_ros.core import lift
from pose_ros.core.geometry import Rigid
from pose_ros.core.models.blazepose import Roi
from pose_ros.core.pipeline import Person, PipelineConfig, PosePipeline, TrackIds
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.ros import convert
from pose_ros.ros.tf_lookup import TfHistory, interpolate

L = BLAZEPOSE_33.index
OPTICAL = "camera_color_optical_frame"
# base_link (x forward, y left, z up) <- optical (x right, y down, z forward): the columns are
# the optical axes seen from base_link: x_opt = -y_base, y_opt = -z_base, z_opt = +x_base.
BASE_FROM_OPTICAL = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])


def facing_camera() -> np.ndarray:
    """(33, 3) metres, optical frame: an upright person 2 m in front of the camera, facing it
    (the person's left is the image's right, +x). Only the joints the tests use are set."""
    p = np.full((33, 3), np.nan)
    p[L("left_hip")], p[L("right_hip")] = [0.1, 0.0, 2.0], [-0.1, 0.0, 2.0]
    p[L("left_shoulder")], p[L("right_shoulder")] = [0.15, -0.5, 2.0], [-0.15, -0.5, 2.0]
    p[L("left_wrist")] = [0.3, -0.2, 1.9]  # 0.1 m in front of the hips, 0.3 left, 0.2 up
    p[L("nose")] = [0.0, -0.7, 1.95]  # the highest joint
    return p


def person(track_id: int = 7) -> Person:
    vis = np.ones(33, np.float32)
    return Person(track_id, np.zeros((33, 2), np.float32), np.zeros(33, np.float32), vis, vis,
                  np.zeros((33, 3), np.float32), 0.9, Roi(0, 0, 1, 0), np.zeros(4, np.float32))


def msg_quat(q) -> np.ndarray:
    """geometry_msgs Quaternion -> (x, y, z, w) as on the wire."""
    return np.array([q.x, q.y, q.z, q.w])


def same_rotation(q_xyzw: np.ndarray, expected_xyzw) -> bool:
    return np.allclose(q_xyzw, expected_xyzw, atol=1e-9) or np.allclose(q_xyzw, -np.asarray(expected_xyzw), atol=1e-9)


# -- (a) the quaternion on TF and Skeleton.body_pose ------------------------------------------
# Facing the camera in the optical frame: body x (forward, to the camera) = -z_cam, body z (up)
# = -y_cam, body y = z x x = (-y_cam) x (-z_cam) = +x_cam. R = [x y z] = [[0,1,0],[0,0,-1],
# [-1,0,0]]; trace 0 -> w = sqrt(1 + 0) / 2 = 0.5; x = (R21 - R12) / 4w = (0 + 1) / 2 = 0.5;
# y = (R02 - R20) / 4w = (0 + 1) / 2 = 0.5; z = (R10 - R01) / 4w = (0 - 1) / 2 = -0.5.
FACING_OPTICAL_XYZW = (0.5, 0.5, -0.5, 0.5)
# The same person in base_link (z up), facing the robot: body x = -x_base, z = +z_base,
# y = z x x = -y_base: a half turn about z -> (x, y, z, w) = (0, 0, 1, 0).
FACING_BASE_XYZW = (0.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize("frame", ["optical", "base_link"])
def test_tf_and_body_pose_quaternion_known_pose(frame):
    pos = facing_camera()
    expected = FACING_OPTICAL_XYZW
    if frame == "base_link":
        pos = pos @ BASE_FROM_OPTICAL.T + [0.0, 0.0, 1.2]
        expected = FACING_BASE_XYZW
    body = lift.body_frame(pos, BLAZEPOSE_33)
    header = Header(frame_id=frame)
    header.stamp.sec = 42
    tfs = convert.transforms(header, [person()], [pos], [body], ["left_wrist"])
    by_child = {t.child_frame_id: t for t in tfs}
    assert same_rotation(msg_quat(by_child["body_7"].transform.rotation), expected)
    sk = convert.skeleton_array(header, [person()], [pos], [np.zeros(33, np.uint8)], [body]).skeletons[0]
    assert same_rotation(msg_quat(sk.body_pose.orientation), expected)
    origin = [0.0, 0.0, 2.0] if frame == "optical" else [2.0, 0.0, 1.2]
    tr = by_child["body_7"].transform.translation
    np.testing.assert_allclose([tr.x, tr.y, tr.z], origin, atol=1e-12)
    np.testing.assert_allclose([sk.body_pose.position.x, sk.body_pose.position.y,
                                sk.body_pose.position.z], origin, atol=1e-12)


def test_joint_frames_are_children_of_the_body_frame():
    pos = facing_camera()
    header = Header(frame_id=OPTICAL)
    header.stamp.sec, header.stamp.nanosec = 42, 5
    body = lift.body_frame(pos, BLAZEPOSE_33)
    tfs = convert.transforms(header, [person(123456789)], [pos], [body],
                             ["nose", "left_wrist", "left_ankle"])  # the ankle is unknown (NaN)
    by_child = {t.child_frame_id: t for t in tfs}
    # REP-155 link names (left_wrist -> l_wrist); nose has no REP link and keeps its name
    assert set(by_child) == {"body_123456789", "l_wrist_123456789", "nose_123456789"}
    assert by_child["body_123456789"].header.frame_id == OPTICAL
    for child in ("l_wrist_123456789", "nose_123456789"):
        assert by_child[child].header.frame_id == "body_123456789"  # the REP's MUST
        assert by_child[child].header.stamp == header.stamp
    # the wrist relative to mid-hip (0, 0, 2) is d = (0.3, -0.2, -0.1) in the optical frame;
    # in the body frame: forward = d . (0, 0, -1) = 0.1, left = d . (1, 0, 0) = 0.3,
    # up = d . (0, -1, 0) = 0.2
    tr = by_child["l_wrist_123456789"].transform.translation
    np.testing.assert_allclose([tr.x, tr.y, tr.z], [0.1, 0.3, 0.2], atol=1e-12)
    # composing body_<id> and the joint frame (transforms3d) gives the optical position back
    for child, joint in (("l_wrist_123456789", "left_wrist"), ("nose_123456789", "nose")):
        b, j = by_child["body_123456789"].transform, by_child[child].transform
        R = transforms3d.quaternions.quat2mat([b.rotation.w, b.rotation.x, b.rotation.y, b.rotation.z])
        got = R @ [j.translation.x, j.translation.y, j.translation.z] + [
            b.translation.x, b.translation.y, b.translation.z]
        np.testing.assert_allclose(got, pos[L(joint)], atol=1e-12)


def test_no_body_frame_means_no_frames():
    pos = facing_camera()
    pos[L("left_hip")] = np.nan
    assert lift.body_frame(pos, BLAZEPOSE_33) is None
    assert convert.transforms(Header(frame_id=OPTICAL), [person()], [pos], [None], ["nose"]) == []


# -- item 21: the marker label sits above the head in optical and z-up frames ------------------
def label_and_head(frame_id: str, pos: np.ndarray, with_body: bool):
    body = lift.body_frame(pos, BLAZEPOSE_33) if with_body else None
    out = convert.markers(Header(frame_id=frame_id), [person()], [pos], 0.5, 0.5, [body])
    label = next(m for m in out.markers if m.ns == "labels")
    p = label.pose.position
    return np.array([p.x, p.y, p.z]), pos[L("nose")]


@pytest.mark.parametrize("with_body", [True, False])
def test_marker_label_above_the_head(with_body):
    # optical frame: up is -y
    label, head = label_and_head(OPTICAL, facing_camera(), with_body)
    np.testing.assert_allclose(label, head + [0, -0.15, 0], atol=1e-9)
    # z-up target frame (base_link): up is +z
    pos = facing_camera() @ BASE_FROM_OPTICAL.T + [0.0, 0.0, 1.2]
    label, head = label_and_head("base_link", pos, with_body)
    np.testing.assert_allclose(label, head + [0, 0, 0.15], atol=1e-9)


def test_marker_label_follows_a_leaning_person():
    # a person lying along +x of base_link (head towards +x): the spine is "up" for the label
    pos = facing_camera() @ BASE_FROM_OPTICAL.T  # upright, facing -x
    lying = pos @ transforms3d.euler.euler2mat(0, math.pi / 2, 0).T  # about y: z -> +x
    label, head = label_and_head("base_link", lying, True)
    np.testing.assert_allclose(label, head + [0.15, 0, 0], atol=1e-9)


# -- item 7: track ids -------------------------------------------------------------------
def test_track_ids_random_unique_and_injectable():
    a, b = TrackIds(), TrackIds()
    ids_a, ids_b = [a() for _ in range(1000)], [b() for _ in range(1000)]
    assert len(set(ids_a)) == 1000 and not set(ids_a) & set(ids_b)
    assert all(1 <= i < 2**31 for i in ids_a + ids_b)  # Marker.id is int32, Skeleton.id uint32
    assert [TrackIds(seed=3)() for _ in range(2)] == [TrackIds(seed=3)()] * 2  # seeded: reproducible
    assert ids_a[:5] != list(range(1, 6))


def test_two_pipelines_disjoint_stable_ids(models):
    base = photo("astronaut")
    pipes = [PosePipeline(PipelineConfig(backend="onnxruntime", detect_every=3)) for _ in range(2)]
    ids = [[], []]
    for t in range(5):
        frame = np.ascontiguousarray(np.roll(base, 4 * t, axis=1))
        for k, pipe in enumerate(pipes):
            ids[k].append([p.track_id for p in pipe(frame)])
    for k in range(2):  # one person, one id across frames (tracking and detector re-runs)
        assert ids[k] == [[ids[k][0][0]]] * 5
    assert ids[0][0][0] != ids[1][0][0]  # two cameras never share body_<id>
    pipes[0].reset()  # track lost (or a lifecycle reload): a new id, never the old one again
    assert pipes[0](base)[0].track_id != ids[0][0][0]
    injected = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True),
                            track_ids=iter([11, 12, 13]).__next__)
    assert [injected(base)[0].track_id for _ in range(3)] == [11, 12, 13]


# -- item 8: the transform history ------------------------------------------------------
S = 10**9


def test_history_interpolates_translation_and_rotation():
    hist = TfHistory()
    q0 = transforms3d.euler.euler2quat(0, 0, 0.2)
    q1 = transforms3d.euler.euler2quat(0, 0, 1.0)
    hist.add("odom", "base_link", 10 * S, Rigid(np.array([1.0, 0, 0]), q0))
    hist.add("odom", "base_link", 12 * S, Rigid(np.array([3.0, 2.0, 0]), q1))
    got = hist.lookup("odom", "base_link", 10 * S + S // 2)  # a quarter of the way
    np.testing.assert_allclose(got.t, [1.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(transforms3d.euler.quat2euler(got.q)[2], 0.4, atol=1e-12)  # 0.2 + 0.8 / 4
    # slerp against scipy on a general pair (shortest arc even when q1 is given as -q1)
    qa = transforms3d.euler.euler2quat(0.3, -0.7, 1.1)
    qb = -transforms3d.euler.euler2quat(-1.2, 0.4, 2.5)
    ref = Slerp([0, 1], Rotation.from_quat([qa[[1, 2, 3, 0]], qb[[1, 2, 3, 0]]]))(0.3)
    mine = interpolate(Rigid(np.zeros(3), qa), Rigid(np.zeros(3), qb), 0.3)
    assert (Rotation.from_quat(mine.q[[1, 2, 3, 0]]) * ref.inv()).magnitude() < 1e-9
    # exact stamps, no extrapolation, latest
    np.testing.assert_allclose(hist.lookup("odom", "base_link", 12 * S).t, [3, 2, 0])
    assert hist.lookup("odom", "base_link", 9 * S) is None  # older than the history
    assert hist.lookup("odom", "base_link", 13 * S) is None  # newer than the data (not yet)
    np.testing.assert_allclose(hist.lookup("odom", "base_link").t, [3, 2, 0])


def test_history_chain_static_and_cache():
    hist = TfHistory(cache_s=2.0)
    for k in range(31):  # base_link moves along x at 1 m/s in odom, samples every 0.1 s
        hist.add("odom", "base_link", 100 * S + k * S // 10, Rigid(np.array([0.1 * k, 0, 0]),
                                                                 np.array([1.0, 0, 0, 0])))
    hist.add("base_link", OPTICAL, 0, Rigid(np.array([0.2, 0, 1.0]),
                                           transforms3d.quaternions.mat2quat(BASE_FROM_OPTICAL)),
             static=True)  # stamp 0: static transforms hold at all times
    hist.add("odom", "map_marker", 0, Rigid(np.array([5.0, 0, 0]), np.array([1.0, 0, 0, 0])), static=True)
    # odom <- optical at t = 102.25 s: base at x = 2.25; a point 1 m ahead of the optical
    # frame (z_opt = 1) is 1 m ahead of base_link: (2.25 + 0.2 + 1, 0, 1.0)
    got = hist.lookup("odom", OPTICAL, 102 * S + S // 4)
    np.testing.assert_allclose(got.apply(np.array([[0.0, 0, 1]])), [[3.45, 0, 1.0]], atol=1e-12)
    # through the common ancestor odom: map_marker <- optical
    got = hist.lookup("map_marker", OPTICAL, 102 * S + S // 4)
    np.testing.assert_allclose(got.t, [2.25 + 0.2 - 5.0, 0, 1.0], atol=1e-12)
    # only the last 2 s are kept: 101.0 s is the oldest stamp left
    assert hist.lookup("odom", OPTICAL, 100 * S + S // 2) is None
    assert hist.lookup("odom", OPTICAL, 101 * S) is not None
    assert hist.lookup("odom", "nowhere", 102 * S) is None


# -- (b) world landmarks are rotated back by the ROI angle -----------------------------------
@pytest.mark.parametrize("code,angle_deg", [(cv2.ROTATE_90_CLOCKWISE, 90.0),
                                            (cv2.ROTATE_90_COUNTERCLOCKWISE, -90.0)])
def test_world_landmarks_rotate_with_the_person(models, code, angle_deg):
    """Turning the camera image by 90 degrees turns the person by 90 degrees about the optical
    axis: (x, y) -> (-y, x) for a clockwise turn (y down), i.e. +90 degrees about z. The
    world landmarks must follow (BlazePose predicts them in its rotated crop's axes)."""
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True))
    img = photo("astronaut")
    upright = pipe(img)[0]
    turned = pipe(np.ascontiguousarray(cv2.rotate(img, code)))[0]
    use = (upright.visibility > 0.5) & (turned.visibility > 0.5)
    assert use.sum() >= 10
    rot, _ = Rotation.align_vectors(turned.world[use], upright.world[use])  # turned <- upright
    err = (rot * Rotation.from_euler("z", angle_deg, degrees=True).inv()).magnitude()
    # measured: 7.3 deg (clockwise), 6.0 deg (counter-clockwise); ~90 without the ROI rotation
    assert math.degrees(err) < 20.0, f"world landmarks off by {math.degrees(err):.1f} deg"
