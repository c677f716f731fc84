"""ROS message <-> pose_ros.core conversion (no algorithms here)."""
from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, TransformStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core.camera import CameraModelError, PinholeCamera
from pose_ros.core.draw import track_colour
from pose_ros.core.geometry import Rigid
from pose_ros.core.imageconv import decode_compressed, depth_to_metres, image_array, to_rgb8
from pose_ros.msg import Keypoint, Skeleton, SkeletonArray


def camera_from_info(msg: CameraInfo) -> PinholeCamera:
    return PinholeCamera.from_camera_info(msg.width, msg.height, msg.k, msg.d, msg.distortion_model)


def camera_info_msg(camera: PinholeCamera, header: Header) -> CameraInfo:
    """CameraInfo for a pinhole camera (R = identity, P = [K | 0]: an unrectified monocular camera)."""
    msg = CameraInfo(header=header, width=camera.width, height=camera.height,
                     distortion_model=camera.distortion_model or "plumb_bob")
    msg.d = [float(v) for v in camera.D]
    msg.k = camera.K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([camera.K, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def image_to_rgb(msg: Image) -> np.ndarray:
    arr = image_array(msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian), msg.data)
    return np.ascontiguousarray(to_rgb8(msg.encoding, arr))


def compressed_to_rgb(msg) -> np.ndarray:
    return decode_compressed(msg.data, msg.format)


def depth_to_m(msg: Image) -> np.ndarray:
    arr = image_array(msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian), msg.data)
    return depth_to_metres(msg.encoding, arr)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def check_camera_matches(camera: PinholeCamera, width: int, height: int, what: str) -> None:
    if (camera.width, camera.height) != (width, height):
        raise CameraModelError(f"{what} is {width}x{height} but its CameraInfo says "
                               f"{camera.width}x{camera.height}; they must describe the same stream")


def _pose_msg(origin: np.ndarray | None, quat: np.ndarray | None) -> Pose:
    pose = Pose()
    if origin is None:
        pose.position.x = pose.position.y = pose.position.z = math.nan
        pose.orientation.w = math.nan
        return pose
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in origin)
    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in quat)
    return pose


def skeleton_array(header: Header, persons, positions, sources, body_frames) -> SkeletonArray:
    """persons: core Person list; positions: per person (K, 3) metres in header.frame_id (NaN
    unknown); sources: per person (K,) uint8; body_frames: per person (origin, quat) or None."""
    out = SkeletonArray(header=header)
    for p, pos, src, body in zip(persons, positions, sources, body_frames, strict=True):
        sk = Skeleton(id=int(p.track_id), layout=p.layout.name, score=float(p.score))
        x0, y0, x1, y1 = (float(v) for v in p.bbox)
        sk.roi.x_offset, sk.roi.y_offset = int(max(x0, 0)), int(max(y0, 0))
        sk.roi.width, sk.roi.height = int(max(x1 - x0, 0)), int(max(y1 - y0, 0))
        for j, name in enumerate(p.layout.names):
            kp = Keypoint(name=name, x=float(p.keypoints[j, 0]), y=float(p.keypoints[j, 1]),
                          score=float(p.visibility[j]), position_source=int(src[j]))
            kp.position.x, kp.position.y, kp.position.z = (float(v) for v in pos[j])
            sk.keypoints.append(kp)
        sk.body_pose = _pose_msg(*(body if body is not None else (None, None)))
        out.skeletons.append(sk)
    return out


def _point(v) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def markers(header: Header, persons, positions, min_score: float, lifetime_s: float) -> MarkerArray:
    """Limb LINE_LIST, joint SPHERE_LIST and an id label per person, coloured per track id."""
    out = MarkerArray()
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    for p, pos in zip(persons, positions, strict=True):
        r, g, b = (c / 255.0 for c in track_colour(p.track_id))
        colour = ColorRGBA(r=r, g=g, b=b, a=1.0)
        ok = np.isfinite(pos).all(1) & (p.visibility >= min_score)
        if not ok.any():
            continue
        limbs = Marker(header=header, ns="limbs", id=int(p.track_id), type=Marker.LINE_LIST,
                       action=Marker.ADD, lifetime=life, color=colour)
        limbs.pose.orientation.w = 1.0
        limbs.scale.x = 0.02
        for a, b2 in p.layout.limbs:
            if ok[a] and ok[b2]:
                limbs.points += [_point(pos[a]), _point(pos[b2])]
        joints = Marker(header=header, ns="joints", id=int(p.track_id), type=Marker.SPHERE_LIST,
                        action=Marker.ADD, lifetime=life, color=colour)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = 0.04
        joints.points = [_point(v) for v in pos[ok]]
        label = Marker(header=header, ns="labels", id=int(p.track_id), type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, lifetime=life, color=colour, text=f"id {p.track_id}")
        top = pos[ok][np.argmin(pos[ok][:, 1])]  # highest joint (y down in optical frames)
        label.pose.position = _point(top - np.array([0, 0.15, 0]))
        label.pose.orientation.w = 1.0
        label.scale.z = 0.1
        out.markers += [m for m in (limbs, joints, label) if m.type != Marker.LINE_LIST or m.points]
    return out


def delete_all(header: Header) -> MarkerArray:
    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])


def transforms(header: Header, persons, positions, body_frames, joints: list[str]) -> list[TransformStamped]:
    """body_<id> (REP-155) and <joint>_<id> frames, children of header.frame_id."""
    out = []
    for p, pos, body in zip(persons, positions, body_frames, strict=True):
        if body is not None:
            t = TransformStamped(header=header, child_frame_id=f"body_{p.track_id}")
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                float(v) for v in body[0])
            q = body[1]
            t.transform.rotation.w, t.transform.rotation.x = float(q[0]), float(q[1])
            t.transform.rotation.y, t.transform.rotation.z = float(q[2]), float(q[3])
            out.append(t)
        for name in joints:
            j = p.layout.index(name)
            if np.isfinite(pos[j]).all():
                t = TransformStamped(header=header, child_frame_id=f"{name}_{p.track_id}")
                t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                    float(v) for v in pos[j])
                t.transform.rotation.w = 1.0
                out.append(t)
    return out


def rigid_from_msg(tf) -> Rigid:
    """geometry_msgs/Transform -> Rigid."""
    tr, q = tf.translation, tf.rotation
    return Rigid(np.array([tr.x, tr.y, tr.z]), np.array([q.w, q.x, q.y, q.z]))
