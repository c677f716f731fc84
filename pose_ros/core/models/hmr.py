"""HMR-style SMPL regressor head (Kanazawa et al. 2018; the SPIN / HMR2 head layout).

Image-encoder features (B x F, e.g. F = 2048 from a ResNet-50's pooled output) -> iterative
error feedback: ``n_iter`` times, ``[features, current params] -> MLP -> delta`` added to the
current params -> SMPL pose as 24 6D rotations (Zhou et al. 2019), shape betas, and a
weak-perspective camera (s, tx, ty). 6D -> rotation matrices by Gram-Schmidt, matrices ->
axis-angle through quaternions, so the output plugs into :mod:`pose_ros.core.smpl`.

No weights ship: :func:`load_checkpoint` loads a user's ``state_dict`` (layer names
fc1 / fc2 / decpose / decshape / deccam and buffers init_pose / init_shape / init_cam, as in
SPIN's regressor) and says exactly what does not match.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_JOINTS = 24
NUM_BETAS = 10


# ------------------------------------------------------------------------ rotation conversions

def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotations (... x 6) to rotation matrices (... x 3 x 3) by Gram-Schmidt.

    The 6 numbers are the first two columns of R flattened row-major, i.e.
    ``R[..., :, :2].reshape(..., 6)`` = (R00, R01, R10, R11, R20, R21) (SPIN's layout).
    b1 = a1/|a1|; b2 = (a2 - (b1.a2) b1)/|...|; b3 = b1 x b2; R = [b1 b2 b3] (columns).
    """
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (... x 3 x 3) to the 6D layout of :func:`rot6d_to_matrix` (... x 6)."""
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (... x 3 x 3) to unit quaternions (... x 4, w x y z, w >= 0).

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the
    one dividing by its largest |q_i|, so it stays accurate near 180 degrees.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4 |q_i|^2 for i = w, x, y, z: ... x 4
    q2 = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                      1 - m00 - m11 + m22], dim=-1)
    q_abs = q2.clamp_min(0).sqrt()  # 2 |q_i|
    # candidate quaternions, each scaled by 4 q_i: ... x 4 (choice) x 4 (w x y z)
    cand = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
    ], dim=-2)
    cand = cand / (2.0 * q_abs[..., None].clamp_min(torch.finfo(R.dtype).tiny ** 0.5))
    best = q_abs.argmax(dim=-1)  # ...
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (... x 3 x 3) to axis-angle vectors (... x 3, radians, angle in [0, pi])."""
    q = matrix_to_quaternion(R)
    w, v = q[..., 0], q[..., 1:]
    s = v.norm(dim=-1)  # sin(angle / 2)
    angle = 2.0 * torch.atan2(s, w)
    small = s < 1e-8
    # angle / sin(angle/2) -> 2 / w (= 2 at the identity) as s -> 0
    scale = torch.where(small, 2.0 / w.clamp_min(0.5), angle / torch.where(small, torch.ones_like(s), s))
    return v * scale[..., None]


# ------------------------------------------------------------------------------ camera

def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """HMR's weak-perspective camera: x = s * (X[:2] + (tx, ty)).

    points: B x N x 3 (SMPL model frame rotated into the camera by the root orientation,
    metres); cam: B x 3 (s, tx, ty). Returns B x N x 2 in normalised crop coordinates
    ([-1, 1] across the square crop, x right, y down). Pixels in the crop:
    (x + 1) * crop_size / 2.
    """
    return cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])


def weak_perspective_to_translation(cam: torch.Tensor, focal_length: float, crop_size: float
                                    ) -> torch.Tensor:
    """Camera translation (B x 3, metres) equivalent to ``cam`` under a pinhole camera.

    With focal length f (pixels) on a crop of ``crop_size`` pixels: t = (tx, ty, 2 f /
    (crop_size * s)); a point at depth 0 in the body frame then projects exactly where the
    weak-perspective camera puts it.
    """
    s = cam[:, 0].clamp_min(1e-9)
    return torch.stack([cam[:, 1], cam[:, 2], 2.0 * focal_length / (crop_size * s)], dim=-1)


# ------------------------------------------------------------------------------ the head

@dataclass
class HmrOutput:
    """Regressed SMPL parameters for B crops.

    pose: B x 72 axis-angle (radians, root first, root in the camera frame: x right, y down,
    z forward); rotmats: B x 24 x 3 x 3; pose6d: B x 144; betas: B x 10; cam: B x 3
    weak-perspective (s, tx, ty).
    """

    pose: torch.Tensor
    rotmats: torch.Tensor
    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor


class HmrCheckpointError(ValueError):
    """A checkpoint does not fit the head (names the mismatched tensors)."""


class HmrHead(nn.Module):
    """Regressor head with iterative error feedback.

    feat_dim: encoder feature size F; hidden: MLP width; n_iter: feedback iterations.
    forward(features B x F) -> :class:`HmrOutput`. The initial estimate (buffers init_pose,
    init_shape, init_cam) is identity joint rotations with the root turned 180 degrees about
    x (an upright body seen by a camera whose y axis points down), zero betas and
    cam (0.9, 0, 0); checkpoints overwrite them with their mean parameters.
    """

    def __init__(self, feat_dim: int = 2048, hidden: int = 1024, n_iter: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        self.feat_dim, self.hidden, self.n_iter = feat_dim, hidden, n_iter
        npose = NUM_JOINTS * 6
        self.fc1 = nn.Linear(feat_dim + npose + NUM_BETAS + 3, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(hidden, npose)
        self.decshape = nn.Linear(hidden, NUM_BETAS)
        self.deccam = nn.Linear(hidden, 3)
        for layer in (self.decpose, self.decshape, self.deccam):  # small first deltas
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
            nn.init.zeros_(layer.bias)
        rot = torch.eye(3).repeat(NUM_JOINTS, 1, 1)
        rot[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # 180 degrees about x
        self.register_buffer("init_pose", matrix_to_rot6d(rot).reshape(1, npose))
        self.register_buffer("init_shape", torch.zeros(1, NUM_BETAS))
        self.register_buffer("init_cam", torch.tensor([[0.9, 0.0, 0.0]]))

    def forward(self, features: torch.Tensor) -> HmrOutput:
        if features.ndim != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"features must be B x {self.feat_dim}, got {tuple(features.shape)}")
        B = features.shape[0]
        # 1. start from the mean parameters: B x 144, B x 10, B x 3
        pose6d = self.init_pose.expand(B, -1)
        betas = self.init_shape.expand(B, -1)
        cam = self.init_cam.expand(B, -1)
        # 2. iterative error feedback: [features, params] -> MLP -> delta
        for _ in range(self.n_iter):
            x = torch.cat([features, pose6d, betas, cam], dim=1)
            x = self.drop1(F.relu(self.fc1(x)))  # B x hidden
            x = self.drop2(F.relu(self.fc2(x)))
            pose6d = pose6d + self.decpose(x)
            betas = betas + self.decshape(x)
            cam = cam + self.deccam(x)
        # 3. 6D -> rotation matrices -> axis-angle: B x 24 x 3 x 3, B x 72
        rotmats = rot6d_to_matrix(pose6d.reshape(B, NUM_JOINTS, 6))
        pose = matrix_to_axis_angle(rotmats).reshape(B, NUM_JOINTS * 3)
        return HmrOutput(pose=pose, rotmats=rotmats, pose6d=pose6d, betas=betas, cam=cam)


class Hmr(nn.Module):
    """An image encoder (any module mapping B x 3 x H x W to B x F or B x F x 1 x 1) + head."""

    def __init__(self, encoder: nn.Module, head: HmrHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, images: torch.Tensor) -> HmrOutput:
        return self.head(self.encoder(images).flatten(1))


def _find_state_dict(obj) -> dict:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise HmrCheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    for key in ("state_dict", "model", "model_state_dict", "regressor"):
        if key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def load_checkpoint(module: nn.Module, path: str | Path, allow_extra: bool = False,
                    prefix: str | None = None) -> nn.Module:
    """Load a user checkpoint (a ``state_dict``, or a dict holding one under 'state_dict' /
    'model' / 'model_state_dict') into ``module`` (an :class:`HmrHead` or :class:`Hmr`).

    Leading 'module.' (DataParallel) is stripped; ``prefix`` (e.g. 'head.') selects and
    strips a sub-dict. Keys the module lacks are an error unless ``allow_extra`` (e.g. a
    checkpoint that also holds the encoder when loading only the head). Raises
    FileNotFoundError / :class:`HmrCheckpointError` naming missing, unexpected and
    wrongly shaped tensors. Loads with ``weights_only=True`` (no code from the file).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"HMR checkpoint not found: {p} (no weights ship with pose_ros; "
                                "train or convert a head and save its state_dict with torch.save)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise HmrCheckpointError(f"cannot read HMR checkpoint {p}: {type(e).__name__}: {e}") from None
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in _find_state_dict(obj).items()}
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    want = module.state_dict()
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs head {tuple(want[k].shape)}"
              for k in want if k in sd and tuple(sd[k].shape) != tuple(want[k].shape)]
    if missing or shapes or (unexpected and not allow_extra):
        head = module if isinstance(module, HmrHead) else getattr(module, "head", None)
        arch = (f" (head: feat_dim={head.feat_dim}, hidden={head.hidden}, 24 joints x 6D, "
                f"{NUM_BETAS} betas)") if isinstance(head, HmrHead) else ""

        def short(items):
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8})" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing {short(missing)}")
        if shapes:
            parts.append(f"shape mismatch {short(shapes)}")
        if unexpected and not allow_extra:
            parts.append(f"unexpected {short(unexpected)} (pass allow_extra=True or a prefix "
                         "to load a sub-module)")
        raise HmrCheckpointError(f"checkpoint {p} does not fit the HMR module{arch}: " + "; ".join(parts))
    module.load_state_dict({k: sd[k] for k in want}, strict=True)
    return module
