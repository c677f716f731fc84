"""Multi-view consistency loss: weak supervision of a 2D-to-3D lifter without 3D labels (torch).

The project seed's formula, for a person seen by two calibrated cameras at the same instant:
rotate view 1's 3D pose into view 2 with the relative extrinsics, normalise its scale by a
chosen limb length to view 2's, project with view 2's K and take the (confidence-weighted)
squared error against view 2's 2D pose::

    X1  = P1 + T1                                  absolute pose in camera 1 (metres)
    s   = L_ref / ||X1[a] - X1[b]||                limb (a, b) scaled to the reference length
    X2  = R_21 (s X1) + t_21                       into camera 2 (x2 = R_21 x1 + t_21)
    u   = K2 (X2 / Z2)                             pinhole: u = fx X/Z + cx, v = fy Y/Z + cy
    L   = sum_j c2_j ||u_j - p2_j||^2 / sum_j c2_j (p2: view-2 2D keypoints, c2: their confidence)

Frames and units: camera optical frames (x right, y down, z forward), metres, pixels. ``pose1``
given to :func:`multiview_consistency_loss` is ABSOLUTE in camera 1. A lifter predicts
root-relative poses ``P1``; :func:`solve_translation` places them (``T1``: the translation
that best reprojects ``P1`` onto view 1's 2D, a weighted linear least-squares solve, exactly
homogeneous: scaling ``P1`` scales ``T1`` by the same factor).

Why the scale step, and which reference: one image fixes a pose only
up to a scaling about the camera centre (``s X1`` projects onto view 1 exactly like ``X1``).
Scaling about camera 1's centre to a reference limb length removes that unknown without
touching view 1's reprojection, so the loss is invariant to the global scale of ``pose1``.
By default :func:`symmetric_multiview_loss` uses the limb length of the lifter's own
prediction from view 2 (the seed's "view 2's"; a known or assumed length, e.g. a calibrated
person, can be passed instead as a number or (B,) tensor). Because the
baseline ``t_21`` is metric, the loss is zero only when the reference has the person's true
size (a lifter whose 2D input is scale-free cannot know that size, so the fine-tuning in
:mod:`pose_ros.core.mvfinetune` passes the length TRIANGULATED from the two views' 2D instead:
``ref_length``); it cannot be lowered by collapsing: as ``L_ref -> 0`` the whole pose shrinks onto
camera 1's centre and projects to ONE point in view 2, whose error is the full spread of view
2's 2D pose (test_mvconsistency.py::test_collapse_is_not_rewarded). Depths in view 2 are
clamped to ``min_depth`` so joints behind camera 2 give large, finite errors.

torch is imported inside the functions: importing this module needs only numpy.
"""
from __future__ import annotations

import numpy as np

# default limb for the scale normalisation: SMPL-24 pelvis (0) -> neck (12), the torso: long,
# rigid, and seen in almost every view (arms and legs bend and are often hidden)
DEFAULT_LIMB: tuple[int, int] = (0, 12)


class ConsistencyError(ValueError):
    """Inputs of the multi-view loss that do not fit together (the message says how)."""


def relative_extrinsics(R1, t1, R2, t2) -> tuple[np.ndarray, np.ndarray]:
    """Camera-1 -> camera-2 transform from two world -> camera extrinsics (numpy).

    R1, R2: (3, 3) rotations, t1, t2: (3,) metres, with ``x_cam = R x_world + t`` (OpenCV's
    rvec/tvec convention). Returns ``(R_21 (3, 3), t_21 (3,))`` with ``x2 = R_21 x1 + t_21``.
    """
    R1, R2 = np.asarray(R1, np.float64), np.asarray(R2, np.float64)
    t1, t2 = np.asarray(t1, np.float64).reshape(3), np.asarray(t2, np.float64).reshape(3)
    R21 = R2 @ R1.T
    return R21, t2 - R21 @ t1


def triangulate(kp1, kp2, K1, K2, R_21, t_21) -> np.ndarray:
    """Linear (DLT) triangulation in camera 1's frame (numpy, batched; no 3D labels needed).

    kp1, kp2: (B, J, 2) pixels; K1, K2: (3, 3) or (B, 3, 3); R_21 (3, 3) or (B, 3, 3), t_21 (3,)
    or (B, 3) metres with x2 = R_21 x1 + t_21. Returns (B, J, 3) metres in camera 1's frame
    (the smallest right singular vector of the 4 x 4 DLT system, as cv2.triangulatePoints).
    """
    kp1, kp2 = np.asarray(kp1, np.float64), np.asarray(kp2, np.float64)
    B, J = kp1.shape[:2]
    K1, K2 = (np.broadcast_to(np.asarray(k, np.float64), (B, 3, 3)) for k in (K1, K2))
    R = np.broadcast_to(np.asarray(R_21, np.float64), (B, 3, 3))
    t = np.broadcast_to(np.asarray(t_21, np.float64).reshape(-1, 3), (B, 3))
    P1 = K1 @ np.concatenate([np.broadcast_to(np.eye(3), (B, 3, 3)), np.zeros((B, 3, 1))], 2)  # B x 3 x 4
    P2 = K2 @ np.concatenate([R, t[:, :, None]], 2)
    rows = []
    for P, kp in ((P1, kp1), (P2, kp2)):
        rows.append(kp[..., 0:1] * P[:, None, 2] - P[:, None, 0])  # B x J x 4
        rows.append(kp[..., 1:2] * P[:, None, 2] - P[:, None, 1])
    A = np.stack(rows, 2)  # B x J x 4 x 4
    X = np.linalg.svd(A)[2][..., -1, :]  # B x J x 4
    return X[..., :3] / X[..., 3:4]


def _t(x, like):
    import torch

    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _batched(x, like, shape: tuple[int, ...], name: str):
    """x as a tensor of shape (B, *shape) (broadcasting one unbatched value over B)."""
    x = _t(x, like)
    if tuple(x.shape) == shape:
        x = x.expand(like.shape[0], *shape)
    if tuple(x.shape) != (like.shape[0], *shape):
        raise ConsistencyError(f"{name} must be {shape} or (B, *{shape}) with B = {like.shape[0]}, "
                               f"got {tuple(x.shape)}")
    return x


def _check_pose(pose, name: str):
    if pose.ndim != 3 or pose.shape[-1] != 3:
        raise ConsistencyError(f"{name} must be (B, J, 3) metres, got {tuple(pose.shape)}")


def _conf(conf, kp):
    import torch

    if conf is None:
        return torch.ones(kp.shape[:2], dtype=kp.dtype, device=kp.device)
    conf = _t(conf, kp)
    if tuple(conf.shape) != tuple(kp.shape[:2]):
        raise ConsistencyError(f"confidence must be (B, J) = {tuple(kp.shape[:2])}, got {tuple(conf.shape)}")
    return conf


def _end(pose, a):
    """Joint a of poses (B, J, 3): an index, or a tuple of indices (their mean, e.g. the mid-hip)."""
    if isinstance(a, (tuple, list)):
        return pose[:, list(a)].mean(1)
    return pose[:, a]


def limb_length(pose, limb=DEFAULT_LIMB):
    """Length (B,) of limb (a, b) of poses (B, J, 3), same unit as the poses. Each end is a joint
    index or a tuple of indices whose mean is the end (``((l_hip, r_hip), (l_sho, r_sho))``: the
    torso of a layout without pelvis / neck joints, see :func:`torso_limb`). A LIST of limbs
    gives the sum of their lengths (a steadier scale than one limb: :func:`body_limbs`)."""
    if isinstance(limb, list):
        return sum(limb_length(pose, one) for one in limb)
    a, b = limb
    return (_end(pose, a) - _end(pose, b)).norm(dim=-1)


def body_limbs(names) -> list:
    """The torso (:func:`torso_limb`) plus both upper arms, forearms, thighs and shins of a layout,
    by joint names (a list for :func:`limb_length`: their summed length)."""
    names = tuple(names)
    out = [torso_limb(names)]
    for side in ("left", "right"):
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle")):
            if f"{side}_{a}" in names and f"{side}_{b}" in names:
                out.append((names.index(f"{side}_{a}"), names.index(f"{side}_{b}")))
    return out


def torso_limb(names) -> tuple:
    """The torso limb of a keypoint layout by joint names: pelvis -> neck when both exist (SMPL),
    else mid-hip -> mid-shoulder ((left_hip, right_hip), (left_shoulder, right_shoulder))."""
    names = tuple(names)
    if "pelvis" in names and "neck" in names:
        return names.index("pelvis"), names.index("neck")
    try:
        return ((names.index("left_hip"), names.index("right_hip")),
                (names.index("left_shoulder"), names.index("right_shoulder")))
    except ValueError:
        raise ConsistencyError("no torso in this layout (needs pelvis + neck or left/right hip and "
                               "shoulder joints): pass limb=(a, b) explicitly") from None


def project(points, K, min_depth: float = 1e-2):
    """Pinhole projection: points (B, J, 3) camera frame, metres; K (3, 3) or (B, 3, 3) ->
    pixels (B, J, 2) (``u = fx X/Z + s Y/Z + cx``, ``v = fy Y/Z + cy``; Z clamped to min_depth)."""
    K = _batched(K, points, (3, 3), "K")
    z = points[..., 2:].clamp(min=min_depth)
    xy1 = points / z  # B x J x 3, last coordinate ignored
    return (xy1[..., :2] @ K[:, :2, :2].transpose(1, 2)) + K[:, None, :2, 2]


def _weighted_mse(pred, kp, conf, K, units: str, reduction: str):
    res = pred - kp  # B x J x 2 pixels
    if units == "normalized":  # image-plane units (x / z), comparable across intrinsics
        res = res / K[:, None, [0, 1], [0, 1]]
    elif units != "px":
        raise ConsistencyError(f"units must be 'px' or 'normalized', not {units!r}")
    sq = (res ** 2).sum(-1)  # B x J
    if reduction == "mean":
        return (conf * sq).sum() / conf.sum().clamp(min=1e-12)
    if reduction == "none":
        return (conf * sq).sum(1) / conf.sum(1).clamp(min=1e-12)
    raise ConsistencyError(f"reduction must be 'mean' or 'none', not {reduction!r}")


def solve_translation(pose_rel, K, kp, conf=None):
    """Place root-relative poses in a camera: the translation that best reprojects them.

    pose_rel: (B, J, 3) metres, camera-aligned axes, any origin (e.g. the pelvis); K: (3, 3) or
    (B, 3, 3) of that camera (no skew); kp: (B, J, 2) pixels; conf: (B, J) weights (0 = unseen).
    Returns T (B, 3) metres with ``pose_rel + T`` the absolute pose in the camera frame.
    Minimises the algebraic error sum_j c_j [(X_j + tx) - x_j (Z_j + tz)]^2 + [same for y], with
    x_j = (u_j - cx) / fx (a 3 x 3 linear solve, as SPIN's estimate_translation; differentiable).
    Scaling pose_rel by s scales T by s.
    """
    import torch

    _check_pose(pose_rel, "pose_rel")
    K = _batched(K, pose_rel, (3, 3), "K")
    kp = _t(kp, pose_rel)
    conf = _conf(conf, kp)
    x = (kp[..., 0] - K[:, None, 0, 2]) / K[:, None, 0, 0]  # B x J normalised image coordinates
    y = (kp[..., 1] - K[:, None, 1, 2]) / K[:, None, 1, 1]
    X, Y, Z = pose_rel.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # rows [1, 0, -x] t = x Z - X and [0, 1, -y] t = y Z - Y, per joint
    A = torch.cat([torch.stack([one, zero, -x], -1), torch.stack([zero, one, -y], -1)], 1)  # B x 2J x 3
    b = torch.cat([x * Z - X, y * Z - Y], 1)  # B x 2J
    w = torch.cat([conf, conf], 1)  # B x 2J
    AtW = A.transpose(1, 2) * w[:, None, :]  # B x 3 x 2J
    return torch.linalg.solve(AtW @ A, (AtW @ b[..., None]))[..., 0]


def multiview_consistency_loss(pose1, R_21, t_21, K2, kp2_2d, conf2=None, limb=DEFAULT_LIMB,
                               ref_length=None, units: str = "px", reduction: str = "mean",
                               min_depth: float = 1e-2, eps: float = 1e-8):
    """View 1's 3D pose, moved into view 2, against view 2's 2D pose (the seed's formula).

    pose1: (B, J, 3) float tensor, ABSOLUTE in camera 1's optical frame, metres (for a lifter's
    root-relative output use ``P1 + solve_translation(P1, K1, kp1, conf1)[:, None]``).
    R_21: (3, 3) or (B, 3, 3), t_21: (3,) or (B, 3) metres: x2 = R_21 x1 + t_21.
    K2: (3, 3) or (B, 3, 3) view-2 intrinsics (pixels). kp2_2d: (B, J, 2) view-2 keypoints,
    pixels; conf2: (B, J) weights (None: all 1; 0 drops a joint). limb: joint indices (a, b)
    whose length is normalised (an end may be a tuple of indices: their mean); ref_length: the reference length in metres, a number or (B,)
    (e.g. :func:`limb_length` of the lifter's view-2 prediction; required).
    units: ``"px"`` (squared pixels) or ``"normalized"`` (residuals divided by fx, fy: image-plane
    units, comparable across cameras). reduction: ``"mean"`` (scalar) or ``"none"`` ((B,)).
    Returns sum_j c_j ||pi(K2, R_21 s X1 + t_21)_j - p_j||^2 / sum_j c_j with
    s = ref_length / ||X1[a] - X1[b]||; differentiable in every tensor input.
    """

    _check_pose(pose1, "pose1")
    if ref_length is None:
        raise ConsistencyError("ref_length is required: the limb length (metres) view 1's pose is scaled to, "
                               "e.g. limb_length(pose2_pred, limb) or a known length such as 0.5")
    R = _batched(R_21, pose1, (3, 3), "R_21")
    t = _batched(t_21, pose1, (3,), "t_21")
    K2 = _batched(K2, pose1, (3, 3), "K2")
    kp2 = _t(kp2_2d, pose1)
    if tuple(kp2.shape) != (*pose1.shape[:2], 2):
        raise ConsistencyError(f"kp2_2d must be (B, J, 2) = {(*pose1.shape[:2], 2)}, got {tuple(kp2.shape)}")
    conf2 = _conf(conf2, kp2)
    ref = _t(ref_length, pose1)
    ref = ref.expand(pose1.shape[0]) if ref.ndim == 0 else ref.reshape(pose1.shape[0])
    # 1. scale about camera 1's centre (view 1's projection is unchanged) to the reference limb
    s = ref / limb_length(pose1, limb).clamp(min=eps)  # B
    x1 = pose1 * s[:, None, None]  # B x J x 3
    # 2. into camera 2
    x2 = x1 @ R.transpose(1, 2) + t[:, None, :]  # B x J x 3
    # 3. project with K2 and compare with view 2's 2D pose
    uv = project(x2, K2, min_depth)
    return _weighted_mse(uv, kp2, conf2, K2, units, reduction)


def reprojection_loss(pose, K, kp, conf=None, units: str = "px", reduction: str = "mean",
                      min_depth: float = 1e-2):
    """Own-view term: absolute poses (B, J, 3) in a camera projected with its K (3, 3) / (B, 3, 3)
    against that view's keypoints kp (B, J, 2) pixels, weights conf (B, J); same units and
    reductions as :func:`multiview_consistency_loss`."""
    K = _batched(K, pose, (3, 3), "K")
    kp = _t(kp, pose)
    return _weighted_mse(project(pose, K, min_depth), kp, _conf(conf, kp), K, units, reduction)


def symmetric_multiview_loss(rel1, rel2, kp1, kp2, K1, K2, R_21, t_21, conf1=None, conf2=None,
                             limb=DEFAULT_LIMB, units: str = "normalized",
                             reprojection_weight: float = 0.0, detach_ref: bool = False,
                             reduction: str = "mean", ref_length=None):
    """Both directions of the loss for two root-relative predictions of one person.

    rel1, rel2: (B, J, 3) root-relative lifter outputs from view 1 and view 2 (metres, each in its
    own camera's axes); kp1, kp2: (B, J, 2) pixels; K1, K2: (3, 3) or (B, 3, 3); R_21 (3, 3) or
    (B, 3, 3), t_21 (3,) or (B, 3): x2 = R_21 x1 + t_21 (the reverse is derived). Each pose is
    placed by :func:`solve_translation` in its own view, scaled to the OTHER view's predicted
    limb length, moved into the other view and compared with its 2D pose:
    ``0.5 (L_12 + L_21) + reprojection_weight * 0.5 (own-view reprojection errors)``.
    detach_ref: stop gradients through the reference lengths. reduction: ``"mean"`` (a scalar)
    or ``"none"`` (per person, (B,)). ref_length: a known reference for both directions instead
    (metres, number or (B,), e.g. the limb triangulated from the two views' 2D, :func:`triangulate`).
    """
    _check_pose(rel1, "rel1")
    _check_pose(rel2, "rel2")
    R = _batched(R_21, rel1, (3, 3), "R_21")
    t = _batched(t_21, rel1, (3,), "t_21")
    R_12 = R.transpose(1, 2)
    t_12 = -(R_12 @ t[..., None])[..., 0]
    x1 = rel1 + solve_translation(rel1, K1, kp1, conf1)[:, None]
    x2 = rel2 + solve_translation(rel2, K2, kp2, conf2)[:, None]
    l1, l2 = limb_length(rel1, limb), limb_length(rel2, limb)
    if detach_ref:
        l1, l2 = l1.detach(), l2.detach()
    if ref_length is not None:
        l1 = l2 = ref_length
    loss = 0.5 * (multiview_consistency_loss(x1, R, t, K2, kp2, conf2, limb, l2, units, reduction)
                  + multiview_consistency_loss(x2, R_12, t_12, K1, kp1, conf1, limb, l1, units, reduction))
    if reprojection_weight:
        loss = loss + reprojection_weight * 0.5 * (reprojection_loss(x1, K1, kp1, conf1, units, reduction)
                                                   + reprojection_loss(x2, K2, kp2, conf2, units, reduction))
    return loss
