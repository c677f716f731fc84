"""Synthetic people and cameras for the 2D-to-3D lifter (numpy only; issue 10 item 3).

No 3D dataset can be downloaded, so the lifter learns from poses sampled over the SMPL 24-joint
tree (:mod:`pose_ros.core.smpl_joints`: the official kinematic tree and the built-in body's rest
joints) with anatomical joint-angle limits, plausible bone lengths and random cameras.

Stable API (``core/mvconsistency.py`` builds on it; keep the names and signatures):

* ``sample_poses(n, rng, names=BLAZEPOSE_33.names) -> SynthPoses``: ``keypoints`` (n, K, 3)
  float64 metres in the pose frame (y up, mid-hip of the keypoints at the origin), ``joints``
  (n, 24, 3) SMPL joints in the same frame, ``angles`` (n, 24, 3) local XYZ Euler angles
  (radians, R_local = Rz(c) Ry(b) Rx(a); row 0 is the global orientation), ``height`` (n,)
  stature in metres, ``bone_scale`` (n, 24) per-bone length factor (1 for the root).
* ``sample_cameras(n, rng, keypoints=None) -> SynthCameras``: ``K`` (n, 3, 3) px, ``R`` (n, 3, 3)
  and ``t`` (n, 3) with X_cam = R X_pose + t (optical frame: x right, y down, z forward; metres),
  ``size`` (n, 2) int (width, height) px. With ``keypoints`` the person fits the image and its
  mid-hip lands off-centre.
* ``to_camera(points (n, K, 3), cams) -> (n, K, 3)``, ``project(points_cam (n, K, 3), K) -> (n, K, 2)``
  px (pinhole, no distortion; NaN behind the camera).
* ``corrupt_2d(px (n, K, 2), rng, keep=(), noise=(0, 0.02), drop=(0, 0.08)) -> (px, conf)``:
  Gaussian noise with sigma a random fraction of each person's pixel height, and dropped joints
  (confidence 0, never the indices in ``keep``); conf (n, K) float64 in {0, 1}.
* ``sample_batch(n, rng, names) -> SynthBatch``: all of the above in one call.

Poses. Every joint's local rotation is XYZ Euler angles inside :data:`JOINT_LIMITS` (rest T-pose,
SMPL model frame: +x the body's left, y up, +z forward): knees and elbows are hinges (flexion
only), hips, shoulders and the spine have ranges after standard ROM tables (e.g. hip flexion
<= 120 deg, knee <= 140 deg, elbow <= 145 deg, shoulder elevation <= 80 deg above horizontal).
Each pose interpolates between a neutral stance (arms down) and a uniform sample inside the
limits by a random amount, so relaxed and extreme poses both occur; 25 % bend over (pelvis
tilted forward 17-92 deg, hips flexed back so the legs stay near vertical), 10 % sit (hips
flexed 70-105 deg). The global orientation is a uniform yaw about the vertical plus tilts of up
to ~12 deg. Body size: stature uniform in
:data:`HEIGHT_RANGE` (1.5-1.95 m) scales the built-in body (stature :data:`REST_HEIGHT`); each bone
length varies by a further factor in :data:`BONE_VARIATION` (+-8 %), equal on left and right.

Keypoints. Joints named like an SMPL joint (shoulders .. ankles, hips) are that joint, as in
``smpl.correspondences``; the others (face, hands, heels, toes) are :data:`VIRTUAL` points rigidly
attached to an SMPL joint (``foot_index`` to ``foot``, as in ``smpl.EXTRA_CORRESPONDENCES``), with
offsets in the rest frame scaled with the body.

Cameras. Image size from :data:`IMAGE_SIZES` (640x480 .. 1920x1080, portrait, square 2048), fx in 400-1500 px (square
pixels +-1 %), principal point near the centre, distance 2-8 m, elevation -10..40 deg (camera
above the hips: positive), roll +-5 deg; fx and distance are drawn so that the person's pixel
height is 30-90 % of the image height, and the mid-hip lands anywhere the person still fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import align_z_to
from .skeletons import BLAZEPOSE_33
from .smpl_joints import BUILTIN_JOINTS, NUM_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS

HEIGHT_RANGE = (1.50, 1.95)
BONE_VARIATION = 0.08
#: stature of the built-in body at rest, m: head joint + 0.22 m (crown) down to the ankle - 0.08 m (sole)
REST_HEIGHT = float(BUILTIN_JOINTS[15, 1] + 0.22 - (BUILTIN_JOINTS[7, 1] - 0.08))
IMAGE_SIZES = ((640, 480), (800, 600), (1024, 768), (1280, 720), (1280, 960), (1920, 1080),
               (720, 1280), (1024, 1024), (2048, 2048))
BEND_FRACTION, SIT_FRACTION = 0.25, 0.10
FX_RANGE = (400.0, 1500.0)
DISTANCE_RANGE = (2.0, 8.0)
ELEVATION_DEG = (-10.0, 40.0)
FIT_FRACTION = (0.30, 0.90)  # person's pixel height / image height

_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
# (low, high) radians per local axis (x, y, z); the root is sampled separately
_L = {
    "left_hip": ((-2.0, 0.4), (-0.6, 0.6), (-0.35, 0.8)),
    "left_knee": ((0.0, 2.4), (-0.1, 0.1), (-0.1, 0.1)),
    "left_ankle": ((-0.5, 0.8), (-0.25, 0.25), (-0.3, 0.3)),
    "left_foot": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "spine1": ((-0.15, 0.5), (-0.25, 0.25), (-0.2, 0.2)),
    "spine2": ((-0.15, 0.4), (-0.25, 0.25), (-0.2, 0.2)),
    "spine3": ((-0.15, 0.4), (-0.25, 0.25), (-0.2, 0.2)),
    "neck": ((-0.5, 0.6), (-0.6, 0.6), (-0.4, 0.4)),
    "head": ((-0.3, 0.4), (-0.3, 0.3), (-0.3, 0.3)),
    "left_collar": ((-0.1, 0.1), (-0.3, 0.3), (-0.15, 0.3)),
    "left_shoulder": ((-1.0, 1.0), (-1.6, 0.6), (-1.5, 1.4)),
    "left_elbow": ((-0.1, 0.1), (-2.5, 0.0), (-0.1, 0.1)),
    "left_wrist": ((-0.5, 0.5), (-0.5, 0.5), (-0.6, 0.6)),
    "left_hand": ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.3)),
}
_NEUTRAL = {"left_shoulder": (0.0, 0.0, -1.3)}  # arms down; everything else at 0


def _mirror(lim):  # left -> right: flip the y and z rotations (the x axis is the mirror normal)
    (ax, ay, az) = lim
    return (ax, (-ay[1], -ay[0]), (-az[1], -az[0]))


for _k in [k for k in _L if k.startswith("left_")]:
    _L["right_" + _k[5:]] = _mirror(_L[_k])
_NEUTRAL["right_shoulder"] = (0.0, 0.0, 1.3)

#: (24, 3, 2) joint-angle limits, radians (row 0, the root, is unused: zeros)
JOINT_LIMITS = np.zeros((NUM_JOINTS, 3, 2))
for _n, _lim in _L.items():
    JOINT_LIMITS[_J[_n]] = np.asarray(_lim)
NEUTRAL_ANGLES = np.zeros((NUM_JOINTS, 3))
for _n, _a in _NEUTRAL.items():
    NEUTRAL_ANGLES[_J[_n]] = _a
_unset = [n for n in SMPL_JOINT_NAMES[1:] if n not in _L]
if _unset:  # every joint below the root needs limits
    raise RuntimeError(f"synthpose: no joint limits for {_unset}")

#: keypoint name -> (SMPL joint, offset in the rest frame, metres before body scaling)
VIRTUAL: dict[str, tuple[str, tuple[float, float, float]]] = {
    "nose": ("head", (0.0, 0.035, 0.10)),
    "left_eye_inner": ("head", (0.015, 0.075, 0.085)),
    "left_eye": ("head", (0.035, 0.075, 0.08)),
    "left_eye_outer": ("head", (0.05, 0.075, 0.075)),
    "left_ear": ("head", (0.075, 0.045, 0.0)),
    "mouth_left": ("head", (0.025, -0.005, 0.09)),
    "left_pinky": ("left_wrist", (0.075, -0.005, -0.03)),
    "left_index": ("left_wrist", (0.09, -0.005, 0.02)),
    "left_thumb": ("left_wrist", (0.05, -0.01, 0.04)),
    "left_heel": ("left_ankle", (0.0, -0.09, -0.05)),
    "left_foot_index": ("left_foot", (0.01, -0.04, 0.09)),
}
for _k in [k for k in VIRTUAL if "left" in k]:
    _j, (_x, _y, _z) = VIRTUAL[_k]
    VIRTUAL[_k.replace("left", "right")] = (_j.replace("left", "right"), (-_x, _y, _z))

# bone-length factors are shared by a joint and its mirror image
_SYM = np.array([_J.get(n.replace("right_", "left_"), i) for i, n in enumerate(SMPL_JOINT_NAMES)])


@dataclass
class SynthPoses:
    """n sampled people (see the module docstring for shapes, frames and units)."""

    names: tuple[str, ...]
    keypoints: np.ndarray
    joints: np.ndarray
    angles: np.ndarray
    height: np.ndarray
    bone_scale: np.ndarray


@dataclass
class SynthCameras:
    """n cameras: K (n, 3, 3) px, R (n, 3, 3), t (n, 3) m (X_cam = R X_pose + t), size (n, 2) int."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    size: np.ndarray


@dataclass
class SynthBatch:
    """One training / validation batch: poses, cameras, camera-frame keypoints (n, K, 3) m,
    clean pixels (n, K, 2), noisy pixels (n, K, 2) and confidences (n, K) in {0, 1}."""

    poses: SynthPoses
    cameras: SynthCameras
    cam_points: np.ndarray
    px_clean: np.ndarray
    px: np.ndarray
    conf: np.ndarray


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) XYZ Euler angles (a, b, c) radians -> (..., 3, 3) rotations Rz(c) Ry(b) Rx(a)."""
    return _rz(angles[..., 2]) @ _ry(angles[..., 1]) @ _rx(angles[..., 0])


def keypoint_anchors(names) -> tuple[np.ndarray, np.ndarray]:
    """(SMPL joint index (K,) int, rest-frame offset (K, 3) m) of each keypoint name; ValueError
    for a name that is neither an SMPL joint nor in :data:`VIRTUAL`."""
    idx, off = [], []
    for n in names:
        if n in _J:
            idx.append(_J[n]), off.append((0.0, 0.0, 0.0))
        elif n in VIRTUAL:
            idx.append(_J[VIRTUAL[n][0]]), off.append(VIRTUAL[n][1])
        else:
            raise ValueError(f"synthpose cannot make keypoint {n!r}; it knows the SMPL joints and "
                             f"{', '.join(sorted(VIRTUAL))}")
    return np.array(idx), np.array(off, np.float64)


def forward_kinematics(angles: np.ndarray, bone_scale: np.ndarray, body_scale: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """SMPL joints of posed bodies: angles (n, 24, 3) local Euler (row 0: global), bone_scale
    (n, 24), body_scale (n,) -> (positions (n, 24, 3) m with the pelvis at the origin, global
    rotations (n, 24, 3, 3)). Bone j (parent -> j) has the built-in rest length times
    body_scale * bone_scale[j]."""
    n = len(angles)
    local = euler_to_matrix(angles)
    G = np.empty((n, NUM_JOINTS, 3, 3))
    P = np.empty((n, NUM_JOINTS, 3))
    G[:, 0], P[:, 0] = local[:, 0], 0.0
    for j in range(1, NUM_JOINTS):
        p = SMPL_PARENTS[j]
        bone = (BUILTIN_JOINTS[j] - BUILTIN_JOINTS[p])[None] * (body_scale * bone_scale[:, j])[:, None]
        P[:, j] = P[:, p] + np.einsum("nij,nj->ni", G[:, p], bone)
        G[:, j] = G[:, p] @ local[:, j]
    return P, G


def sample_poses(n: int, rng: np.random.Generator, names=BLAZEPOSE_33.names) -> SynthPoses:
    """n random people (see the module docstring); keypoints in ``names`` order."""
    names = tuple(names)
    lo, hi = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    u = rng.uniform(lo, hi, (n, NUM_JOINTS, 3))
    # how far from the neutral stance: per person, per body part (legs / torso+head / arms)
    part = np.zeros(NUM_JOINTS, int)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        part[j] = 0 if any(k in name for k in ("hip", "knee", "ankle", "foot")) else (
            2 if any(k in name for k in ("collar", "shoulder", "elbow", "wrist", "hand")) else 1)
    amount = rng.uniform(0.0, 1.0, (n, 3)) ** 0.7
    amount[:, 0] *= rng.uniform(0, 1, n) < 0.8  # 20 % standing straight (legs neutral)
    a = amount[:, part][..., None]
    angles = NEUTRAL_ANGLES + a * (u - NEUTRAL_ANGLES)
    # bending over (25 %): the pelvis tilts forward, the hips flex back so the legs stay upright
    kind = rng.uniform(0, 1, n)
    bend = kind < BEND_FRACTION
    theta = np.where(bend, rng.uniform(0.3, 1.6, n), 0.0)
    angles[:, 0] = 0.0
    angles[:, 0, 0] = theta
    for hip in ("left_hip", "right_hip"):
        angles[:, _J[hip], 0] -= theta * rng.uniform(0.6, 1.0, n)
    # sitting (10 %, chair or floor): both hips flexed 70-105 deg, knees anywhere in range
    sit = (kind >= BEND_FRACTION) & (kind < BEND_FRACTION + SIT_FRACTION)
    for hip, knee in (("left_hip", "left_knee"), ("right_hip", "right_knee")):
        angles[sit, _J[hip], 0] = rng.uniform(-1.85, -1.2, sit.sum())
        angles[sit, _J[knee], 0] = rng.uniform(0.0, 2.2, sit.sum())
    angles[:, 1:] = np.clip(angles[:, 1:], lo[1:], hi[1:])
    # global orientation: tilts about the horizontal axes, then yaw about the vertical
    tilt = rng.normal(0.0, 0.07, (n, 2)).clip(-0.21, 0.21)
    yaw = rng.uniform(-math.pi, math.pi, n)
    Rg = _ry(yaw) @ _rx(tilt[:, 0]) @ _rz(tilt[:, 1])
    height = rng.uniform(*HEIGHT_RANGE, n)
    f = rng.uniform(1 - BONE_VARIATION, 1 + BONE_VARIATION, (n, NUM_JOINTS))
    f = f[:, _SYM]  # left = right
    f[:, 0] = 1.0
    P, G = forward_kinematics(angles, f, height / REST_HEIGHT)
    P = np.einsum("nij,nkj->nki", Rg, P)
    G = Rg[:, None] @ G
    angles[:, 0] = _matrix_to_euler(G[:, 0])
    idx, off = keypoint_anchors(names)
    kp = P[:, idx] + np.einsum("nkij,kj->nki", G[:, idx], off) * (height / REST_HEIGHT)[:, None, None]
    if "left_hip" in names and "right_hip" in names:
        root = (kp[:, names.index("left_hip")] + kp[:, names.index("right_hip")]) / 2
    else:
        root = (P[:, _J["left_hip"]] + P[:, _J["right_hip"]]) / 2
    return SynthPoses(names, kp - root[:, None], P - root[:, None], angles, height, f)


def _matrix_to_euler(R: np.ndarray) -> np.ndarray:
    """(n, 3, 3) -> (n, 3) XYZ Euler angles with R = Rz(c) Ry(b) Rx(a)."""
    b = np.arcsin(np.clip(-R[:, 2, 0], -1, 1))
    a = np.arctan2(R[:, 2, 1], R[:, 2, 2])
    c = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    return np.stack([a, b, c], -1)


def sample_cameras(n: int, rng: np.random.Generator, keypoints: np.ndarray | None = None) -> SynthCameras:
    """n cameras looking at people whose mid-hip is at the pose-frame origin (y up); with
    ``keypoints`` (n, K, 3) each person's pixel height is 30-90 % of the image height and the
    mid-hip lands off-centre where the person still fits (else a 1.75 m person is assumed)."""
    sizes = np.asarray(IMAGE_SIZES)[rng.integers(0, len(IMAGE_SIZES), n)]
    w, h = sizes[:, 0].astype(float), sizes[:, 1].astype(float)
    if keypoints is not None:
        ext = keypoints[..., 1].max(1) - keypoints[..., 1].min(1)
        ext = np.maximum(ext, 0.3)
    else:
        ext = np.full(n, 1.75)
    d = rng.uniform(*DISTANCE_RANGE, n)
    f_lo = np.clip(FIT_FRACTION[0] * h * d / ext, *FX_RANGE)
    f_hi = np.clip(FIT_FRACTION[1] * h * d / ext, *FX_RANGE)
    fx = rng.uniform(f_lo, f_hi)
    fy = fx * rng.uniform(0.99, 1.01, n)
    cx = w / 2 + rng.normal(0, 0.01, n) * w
    cy = h / 2 + rng.normal(0, 0.01, n) * h
    K = np.zeros((n, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
    elev = np.radians(rng.uniform(*ELEVATION_DEG, n))
    az = rng.uniform(-math.pi, math.pi, n)
    target = np.zeros((n, 3))
    target[:, 1] = rng.uniform(-0.3, 0.3, n)
    C = target + d[:, None] * np.stack([np.cos(elev) * np.sin(az), np.sin(elev), np.cos(elev) * np.cos(az)], -1)
    zc = (target - C) / np.linalg.norm(target - C, axis=1, keepdims=True)
    xc = np.cross(zc, np.array([0.0, 1.0, 0.0]))
    xc /= np.linalg.norm(xc, axis=1, keepdims=True)
    yc = np.cross(zc, xc)
    R0 = np.stack([xc, yc, zc], 1)  # rows: camera axes in the pose frame
    roll = _rz(np.radians(rng.uniform(-5, 5, n)))
    # where the look-at point lands: anywhere the person (height hp px, width ~ hp / 2) fits
    hp = fy * ext / d
    mu = np.maximum(w / 2 - 0.3 * hp, 0)
    mv = np.maximum(h / 2 - 0.5 * hp, 0)
    u = cx + rng.uniform(-1, 1, n) * mu
    v = cy + rng.uniform(-1, 1, n) * mv
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones(n)], -1)
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    R = align_z_to(ray) @ roll @ R0
    t = -np.einsum("nij,nj->ni", R, C)
    return SynthCameras(K, R, t, sizes.astype(np.int64))


def to_camera(points: np.ndarray, cams: SynthCameras) -> np.ndarray:
    """Pose-frame points (n, K, 3) m -> camera optical frame (n, K, 3) m."""
    return np.einsum("nij,nkj->nki", cams.R, points) + cams.t[:, None]


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (n, K, 3) m -> pixels (n, K, 2) with intrinsics K (n, 3, 3) (pinhole,
    no distortion); NaN for points not in front of the camera."""
    z = points_cam[..., 2:3]
    m = points_cam[..., :2] / np.where(z > 0, z, np.nan)
    return np.einsum("nij,nkj->nki", K[:, :2, :2], m) + K[:, None, :2, 2]


def corrupt_2d(px: np.ndarray, rng: np.random.Generator, keep=(), noise=(0.0, 0.02),
               drop=(0.0, 0.08)) -> tuple[np.ndarray, np.ndarray]:
    """Noisy pixels and confidences: per person a noise sigma uniform in ``noise`` times the
    person's pixel height, and a drop rate uniform in ``drop`` (dropped: confidence 0, pixel
    kept); joints in ``keep`` (indices) are never dropped. Returns ((n, K, 2), (n, K))."""
    n, k = px.shape[:2]
    ph = np.nanmax(px[..., 1], 1) - np.nanmin(px[..., 1], 1)
    sigma = rng.uniform(*noise, n) * ph
    out = px + rng.normal(size=px.shape) * sigma[:, None, None]
    conf = (rng.uniform(size=(n, k)) >= rng.uniform(*drop, n)[:, None]).astype(np.float64)
    conf[:, list(keep)] = 1.0
    return out, conf


def sample_batch(n: int, rng: np.random.Generator, names=BLAZEPOSE_33.names, noise=(0.0, 0.02),
                 drop=(0.0, 0.08)) -> SynthBatch:
    """Poses, cameras, camera-frame keypoints, clean and corrupted pixels (hips never dropped)."""
    poses = sample_poses(n, rng, names)
    cams = sample_cameras(n, rng, poses.keypoints)
    pc = to_camera(poses.keypoints, cams)
    clean = project(pc, cams.K)
    keep = [i for i, nm in enumerate(poses.names) if nm in ("left_hip", "right_hip")]
    px, conf = corrupt_2d(clean, rng, keep, noise, drop)
    return SynthBatch(poses, cams, pc, clean, px, conf)
