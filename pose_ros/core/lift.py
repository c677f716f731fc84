"""2D keypoints -> 3D in the camera's optical frame (x right, y down, z forward, metres).

* :func:`depth_positions`: aligned depth back-projection, robust per joint (median of the
  valid depths in a window around the keypoint).
* :func:`pnp_positions`: the model's metric world landmarks placed in the camera frame by
  cv2.solvePnP against the 2D landmarks and K (distortion honoured: OpenCV's model for
  plumb_bob / rational_polynomial, undistorted normalised points for fisheye).
* :func:`body_frame`: the REP-155 body frame (origin mid-hip, x forward, z up).
"""
from __future__ import annotations

import cv2
import numpy as np
import transforms3d

from .camera import CameraModelError, PinholeCamera
from .imageconv import MAX_DEPTH, MIN_DEPTH
from .skeletons import Layout


def depth_positions(keypoints: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera,
                    window: int = 5, min_valid: int = 3, min_depth: float = MIN_DEPTH,
                    max_depth: float = MAX_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """Back-project keypoints with an aligned depth image.

    keypoints: (K, 2) pixels in the depth image (aligned: same size and intrinsics).
    depth_m: (H, W) float32 metres, NaN where invalid; values outside [min_depth, max_depth]
    metres are not real depths (e.g. 1e-40 m, 1 mm) and count as invalid. window: odd side of
    the square around each keypoint. Returns positions (K, 3) metres in the optical frame
    (NaN where unknown) and a (K,) bool mask.
    """
    h, w = depth_m.shape
    r = window // 2
    z = np.full(len(keypoints), np.nan)
    for i, (x, y) in enumerate(np.asarray(keypoints, np.float64)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < w and 0 <= yi < h):
            continue
        patch = depth_m[max(0, yi - r): yi + r + 1, max(0, xi - r): xi + r + 1]
        vals = patch[np.isfinite(patch) & (patch >= min_depth) & (patch <= max_depth)]
        if vals.size >= min_valid:
            z[i] = np.median(vals)
    ok = np.isfinite(z)
    pos = np.full((len(keypoints), 3), np.nan)
    if ok.any():
        pos[ok] = camera.backproject(np.asarray(keypoints)[ok], z[ok])
    return pos, ok


def pnp_positions(world: np.ndarray, keypoints: np.ndarray, weights: np.ndarray,
                  camera: PinholeCamera, min_weight: float = 0.5
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Place metric model-space landmarks in the camera frame with PnP.

    world: (K, 3) metres (hip-centred model space), keypoints: (K, 2) pixels, weights: (K,)
    visibility; only joints with weight >= min_weight are used (at least 6). Returns the
    positions (K, 3) in the optical frame and the translation (3,) of the model origin, or
    None when PnP has too few points or fails. Raises CameraModelError (never cv2.error) when
    OpenCV rejects the camera. Fisheye: PnP on cv2.fisheye-undistorted normalised points, K = I.
    """
    use = (np.asarray(weights) >= min_weight) & np.isfinite(keypoints).all(1) & np.isfinite(world).all(1)
    if use.sum() < 6:
        return None
    obj = np.ascontiguousarray(world[use], np.float64).reshape(-1, 1, 3)
    img = np.ascontiguousarray(keypoints[use], np.float64).reshape(-1, 1, 2)
    if camera.fisheye:  # OpenCV's PnP knows no fisheye model: PnP on undistorted normalised points
        img = camera.normalized(img).reshape(-1, 1, 2)
        finite = np.isfinite(img).all(axis=(1, 2))  # beyond the lens model's range: unusable
        if finite.sum() < 6:
            return None
        obj, img = np.ascontiguousarray(obj[finite]), np.ascontiguousarray(img[finite])
        K, D = np.eye(3), None
    else:  # pinhole / plumb_bob / rational_polynomial: OpenCV's own model
        K, D = camera.K, (camera.D if camera.distorted else None)
    try:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, D, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            return None
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvec, tvec)
    except cv2.error as exc:
        raise CameraModelError(f"solvePnP failed with {camera.describe()}: "
                               f"{str(exc).strip().splitlines()[-1]}; check the CameraInfo") from None
    if not np.isfinite(tvec).all():
        return None
    if tvec[2, 0] <= 0:
        return None  # behind the camera: a degenerate solution
    R, _ = cv2.Rodrigues(rvec)
    return (world @ R.T + tvec.reshape(1, 3)), tvec.reshape(3)


def body_frame(positions: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray] | None:
    """REP-155 body frame from 3D joints in any right-handed frame.

    Origin: mid-hip. z: up the spine (mid-hip -> mid-shoulder). y: to the person's left
    (right hip -> left hip, made orthogonal to z). x = y x z: forward (out of the chest).
    Returns (origin (3,), quaternion (4,) w, x, y, z) or None if the joints are missing.
    """
    try:
        lh, rh = layout.index("left_hip"), layout.index("right_hip")
        ls, rs = layout.index("left_shoulder"), layout.index("right_shoulder")
    except KeyError:
        return None
    p = np.asarray(positions, np.float64)
    if not np.isfinite(p[[lh, rh, ls, rs]]).all():
        return None
    origin = (p[lh] + p[rh]) / 2
    up = (p[ls] + p[rs]) / 2 - origin
    left = p[lh] - p[rh]
    if np.linalg.norm(up) < 1e-6 or np.linalg.norm(left) < 1e-6:
        return None
    z = up / np.linalg.norm(up)
    y = left - z * (left @ z)
    if np.linalg.norm(y) < 1e-6:
        return None
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.column_stack([x, y, z])
    return origin, transforms3d.quaternions.mat2quat(R)


# REP-155 "Kinematic Model of the Human" link names for the BlazePose joints it models;
# other joints keep their layout name (e.g. nose, left_heel): the REP has no link for them.
REP155_LINKS = {f"{side}_{part}": f"{side[0]}_{part}" for side in ("left", "right")
                for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}


def joint_frame_name(joint: str, body_id: int) -> str:
    """TF frame of one joint: REP-155 link name (``left_wrist`` -> ``l_wrist``) + ``_<id>``."""
    return f"{REP155_LINKS.get(joint, joint)}_{body_id}"


def in_body_frame(points: np.ndarray, origin: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """Points (N, 3) metres in the parent frame of a body frame (origin (3,), quat (4,) w, x,
    y, z, as returned by :func:`body_frame`) -> (N, 3) in the body frame (x forward, z up)."""
    R = transforms3d.quaternions.quat2mat(quat)  # parent <- body
    return (np.asarray(points, np.float64) - np.asarray(origin, np.float64)) @ R


# Keypoint.position_source values (mirror pose_ros/msg/Keypoint.msg)
SOURCE_NONE, SOURCE_DEPTH, SOURCE_MONOCULAR = 0, 1, 2


def person_positions(person, camera: PinholeCamera, depth_m: np.ndarray | None = None,
                     depth_window: int = 5, min_pnp_visibility: float = 0.5,
                     min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH
                     ) -> tuple[np.ndarray, np.ndarray]:
    """3D joints of one :class:`~pose_ros.core.pipeline.Person` in the optical frame.

    Depth back-projection where the aligned depth has valid pixels (SOURCE_DEPTH); the other
    joints from the model's world landmarks placed with PnP (SOURCE_MONOCULAR); NaN and
    SOURCE_NONE where neither works. Returns positions (K, 3) metres and sources (K,) uint8.
    """
    k = len(person.keypoints)
    pos = np.full((k, 3), np.nan)
    src = np.zeros(k, np.uint8)
    pnp = pnp_positions(person.world, person.keypoints, person.visibility, camera, min_pnp_visibility)
    if pnp is not None:
        pos[:] = pnp[0]
        src[:] = SOURCE_MONOCULAR
    if depth_m is not None:
        dpos, ok = depth_positions(person.keypoints, depth_m, camera, depth_window,
                                   min_depth=min_depth, max_depth=max_depth)
        pos[ok] = dpos[ok]
        src[ok] = SOURCE_DEPTH
    return pos, src
