"""ROS message <-> pose_ros.core conversion (no algorithms here)."""
from __future__ import annotations

import math

import numpy as np
import transforms3d
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, TransformStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError, PinholeCamera, intrinsics_match
from pose_ros.core.draw import track_colour
from pose_ros.core.geometry import Rigid
from pose_ros.core.imageconv import (
    MAX_DEPTH,
    MIN_DEPTH,
    decode_compressed,
    depth_to_metres,
    image_array,
    to_rgb8,
)
from pose_ros.msg import Keypoint, Skeleton, SkeletonArray


def camera_from_info(msg: CameraInfo, rectified: bool = False) -> PinholeCamera:
    """The camera model of the image this CameraInfo describes: K + D for a raw image, P (no
    D) when ``rectified``; binning and roi applied (see pose_ros.core.camera)."""
    roi = msg.roi
    return PinholeCamera.from_camera_info(
        msg.width, msg.height, msg.k, msg.d, msg.distortion_model, p=msg.p,
        binning_x=msg.binning_x, binning_y=msg.binning_y,
        roi=(roi.x_offset, roi.y_offset, roi.width, roi.height), rectified=rectified)


def camera_info_msg(camera: PinholeCamera, header: Header) -> CameraInfo:
    """CameraInfo for a camera model's image (R = identity, P = [K | 0]: a monocular camera;
    binning and roi 0: the model's K already describes this image)."""
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


def depth_to_m(msg: Image, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH) -> np.ndarray:
    """Depth Image -> (H, W) float32 metres, NaN outside [min_depth, max_depth] or invalid."""
    arr = image_array(msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian), msg.data)
    return depth_to_metres(msg.encoding, arr, min_depth, max_depth)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def check_camera_matches(camera: PinholeCamera, width: int, height: int, what: str) -> None:
    """Raise CameraModelError unless the image (width x height px) has the size the camera
    model expects (CameraInfo width/height after roi and binning)."""
    if (camera.width, camera.height) != (width, height):
        how = ""
        if camera.binning != (1, 1) or camera.roi[:2] != (0, 0):
            how = (f" (roi {camera.roi[2]}x{camera.roi[3]} at ({camera.roi[0]}, {camera.roi[1]}), "
                   f"binning {camera.binning[0]}x{camera.binning[1]})")
        raise CameraModelError(f"{what} is {width}x{height} but its CameraInfo says "
                               f"{camera.width}x{camera.height}{how}; they must describe the same stream")


def check_depth_aligned(colour: PinholeCamera, colour_frame: str, depth_msg: Image,
                        depth_info: CameraInfo | None) -> None:
    """Raise CameraModelError unless the depth image is aligned to the colour image.

    Rules: the depth image has the colour image's size and frame_id (an aligned depth image
    is expressed in the colour camera's optical frame); with its CameraInfo (``depth_info``,
    None = not received: only size and frame are checked), the depth intrinsics (K, or P)
    after roi / binning equal the colour model's within 1 % (see core.camera.intrinsics_match).
    """
    fix = ("use a depth image aligned to the colour camera (RealSense: "
           "aligned_depth_to_color/image_raw + aligned_depth_to_color/camera_info)")
    if (depth_msg.width, depth_msg.height) != (colour.width, colour.height):
        raise CameraModelError(f"depth image is {depth_msg.width}x{depth_msg.height} but the colour "
                               f"image is {colour.width}x{colour.height}; {fix}")
    if depth_msg.header.frame_id != colour_frame:
        raise CameraModelError(f"depth image frame_id '{depth_msg.header.frame_id}' differs from the "
                               f"colour image's '{colour_frame}': the depth is in another camera's "
                               f"frame; {fix}")
    if depth_info is None:
        return
    try:
        models = [camera_from_info(depth_info, rectified=False)]
    except CameraModelError as exc:
        raise CameraModelError(f"depth CameraInfo: {exc}") from None
    try:
        models.append(camera_from_info(depth_info, rectified=True))
    except CameraModelError:
        pass  # no usable P: compare K only
    reasons = [intrinsics_match(colour, m) for m in models]
    if all(reasons):
        raise CameraModelError(f"depth image is not aligned to the colour image: depth CameraInfo "
                               f"has {reasons[0]} (colour); {fix}")


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


def label_up(frame_id: str, body) -> np.ndarray:
    """Unit "up" (3,) of a person in ``frame_id``: the body frame's z (REP-155: along the
    spine) when known, else the frame's convention: -y in optical frames (``*_optical*``,
    y down), +z otherwise (REP-103 body / world frames are z-up)."""
    if body is not None:
        return transforms3d.quaternions.quat2mat(body[1])[:, 2]
    return np.array([0.0, -1.0, 0.0]) if "optical" in frame_id else np.array([0.0, 0.0, 1.0])


def markers(header: Header, persons, positions, min_score: float, lifetime_s: float,
            body_frames=None) -> MarkerArray:
    """Limb LINE_LIST, joint SPHERE_LIST and an id label per person, coloured per track id.

    positions: per person (K, 3) metres in header.frame_id; body_frames: per person (origin,
    quat w, x, y, z) or None (see :func:`pose_ros.core.lift.body_frame`). The label floats
    0.15 m above the highest joint along the person's up direction (:func:`label_up`), so it
    sits above the head in optical (y-down) and z-up frames alike.
    """
    out = MarkerArray()
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    if body_frames is None:
        body_frames = [None] * len(persons)
    for p, pos, body in zip(persons, positions, body_frames, strict=True):
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
        up = label_up(header.frame_id, body)
        top = pos[ok][np.argmax(pos[ok] @ up)]  # the highest joint along the person's up
        label.pose.position = _point(top + 0.15 * up)
        label.pose.orientation.w = 1.0
        label.scale.z = 0.1
        out.markers += [m for m in (limbs, joints, label) if m.type != Marker.LINE_LIST or m.points]
    return out


def delete_all(header: Header) -> MarkerArray:
    return MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])


def _rotation(t: TransformStamped, q) -> None:
    """Write quaternion q = (w, x, y, z) (transforms3d order) into t's (x, y, z, w) fields."""
    t.transform.rotation.w, t.transform.rotation.x = float(q[0]), float(q[1])
    t.transform.rotation.y, t.transform.rotation.z = float(q[2]), float(q[3])


def transforms(header: Header, persons, positions, body_frames, joints: list[str]) -> list[TransformStamped]:
    """REP-155 TF frames per person: ``body_<id>`` (child of header.frame_id: mid-hip origin,
    x forward, z up) and, for each joint of ``joints`` (layout names) with a finite position,
    ``<link>_<id>`` as a child of ``body_<id>`` (the REP's MUST) with the joint's position in
    the body frame and the body frame's orientation. Link names follow the REP's kinematic
    model (``left_wrist`` -> ``l_wrist``; :func:`pose_ros.core.lift.joint_frame_name`).
    positions: per person (K, 3) metres in header.frame_id. No body frame (hips or shoulders
    unknown) = no frames for that person: joints need their parent.
    """
    out = []
    for p, pos, body in zip(persons, positions, body_frames, strict=True):
        if body is None:
            continue
        body_name = f"body_{p.track_id}"
        t = TransformStamped(header=header, child_frame_id=body_name)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in body[0])
        _rotation(t, body[1])
        out.append(t)
        have = [name for name in joints if name in p.layout.names]  # spec layouts lack some
        idx = [p.layout.index(name) for name in have]
        local = lift.in_body_frame(pos[idx], *body) if idx else np.zeros((0, 3))
        for name, xyz in zip(have, local, strict=True):
            if np.isfinite(xyz).all():
                t = TransformStamped(header=Header(stamp=header.stamp, frame_id=body_name),
                                     child_frame_id=lift.joint_frame_name(name, p.track_id))
                t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                    float(v) for v in xyz)
                t.transform.rotation.w = 1.0
                out.append(t)
    return out


def rigid_from_msg(tf) -> Rigid:
    """geometry_msgs/Transform -> Rigid."""
    tr, q = tf.translation, tf.rotation
    return Rigid(np.array([tr.x, tr.y, tr.z]), np.array([q.w, q.x, q.y, q.z]))
