"""2D-to-3D lifting network, numpy inference (no torch at runtime; issue 10 item 3).

Network: Martinez et al. 2017 ("A simple yet effective baseline for 3d human pose estimation"):
Linear(2 J_in -> W) + BN + ReLU, then residual blocks of 2 x [Linear(W -> W), BN, ReLU, dropout]
with a skip connection around each block, then Linear(W -> 3 J_out). The torch model is
``lifter_train.LifterNet``; at export every BatchNorm is folded into the linear layer before it,
so inference here is matmuls, additions and ReLUs.

Joints. The input joints are a keypoint layout's (``names_in`` in the checkpoint: all 33
BlazePose joints for ``lifter_blazepose33.npz``, the 17 COCO joints for a ``--joints-in coco_17``
model); any other layout is matched by joint name, missing joints count as dropped. The output
is root-relative 3D of ``names_out`` (the same joints as the input), metres, root = mid-hip (mean
of left_hip and right_hip), axes of the camera's optical frame (x right, y down, z forward).

Input normalisation (:func:`normalise`), the same in training and inference, so one model
serves any camera: pixels -> undistorted normalised camera coordinates (K^-1, distortion from
the camera model) -> bearing vectors rotated by the minimal rotation Rv that takes the viewing
ray through the 2D mid-hip onto the optical axis (a virtual camera looking straight at the
person: off-centre people look like centred ones) -> perspective division (the mid-hip lands
on (0, 0)) -> divided by the RMS distance of the used joints from the mid-hip (scale-free) ->
joints with confidence < ``min_confidence`` set to (0, 0). The network predicts the pose in the
virtual camera's axes; :meth:`Lifter.lift` rotates it back by Rv^T.

Checkpoint (.npz, no pickles): ``w_in``, ``b_in``, ``w_<block>_<layer>``, ``b_<block>_<layer>``,
``w_out``, ``b_out`` (float16 or float32; weights (in, out)), ``meta``: a JSON string with
``names_in``, ``names_out``, ``width``, ``blocks``, ``normalisation`` and the training record
(command, seed, steps, validation MPJPE / PA-MPJPE).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .camera import PinholeCamera
from .geometry import align_z_to

NORMALISATION = "ray_rotated_rms_v1"
DATA_DIR = Path(__file__).resolve().parent / "data"
#: default checkpoint per keypoint layout (shipped with the package)
DEFAULT_MODELS = {"blazepose_33": "lifter_blazepose33.npz", "coco_17": "lifter_coco17.npz"}
DEFAULT_MIN_CONFIDENCE = 0.1


class LifterError(ValueError):
    """A missing, unreadable or incompatible lifter checkpoint, or unusable input."""


def default_model_path(layout_name: str = "blazepose_33") -> Path:
    """The shipped checkpoint for a layout (:data:`DEFAULT_MODELS`); layouts without one (or
    whose file is absent) use the BlazePose-33 model, joints matched by name."""
    path = DATA_DIR / DEFAULT_MODELS.get(layout_name, DEFAULT_MODELS["blazepose_33"])
    return path if path.is_file() else DATA_DIR / DEFAULT_MODELS["blazepose_33"]


def ray_to_axis(m_root: np.ndarray) -> np.ndarray:
    """(B, 2) normalised coordinates of the root -> (B, 3, 3) minimal rotations Rv taking the
    ray through the root onto the optical axis (0, 0, 1)."""
    r = np.concatenate([m_root, np.ones((len(m_root), 1))], 1)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    return np.transpose(align_z_to(r), (0, 2, 1))


def normalise(m: np.ndarray, conf: np.ndarray, hips: tuple[int, int],
              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Network input from normalised camera coordinates (see the module docstring).

    m: (B, K, 2) undistorted normalised coordinates X/Z, Y/Z; conf: (B, K); hips: indices of
    left_hip, right_hip (always used for the root). Returns (x (B, 2 K) float32, Rv (B, 3, 3)).
    """
    m = np.asarray(m, np.float64)
    B, K = m.shape[:2]
    use = (np.asarray(conf) >= min_confidence) & np.isfinite(m).all(-1)
    root = (m[:, hips[0]] + m[:, hips[1]]) / 2
    Rv = ray_to_axis(root)
    b = np.concatenate([np.nan_to_num(m), np.ones((B, K, 1))], -1) @ np.transpose(Rv, (0, 2, 1))
    p = b[..., :2] / b[..., 2:3]
    p[~use] = 0.0
    n = np.maximum(use.sum(1), 1)
    s = np.sqrt((p ** 2).sum((1, 2)) / n)
    p /= np.maximum(s, 1e-9)[:, None, None]
    return p.reshape(B, 2 * K).astype(np.float32), Rv


def targets(points_cam: np.ndarray, hips: tuple[int, int], Rv: np.ndarray) -> np.ndarray:
    """Training targets: camera-frame joints (B, J, 3) m -> root-relative joints in the virtual
    camera's axes (B, J, 3) m (root: mean of the two ``hips`` joints)."""
    rel = points_cam - (points_cam[:, hips[0]] + points_cam[:, hips[1]])[:, None] / 2
    return np.einsum("bij,bkj->bki", Rv, rel)


class Lifter:
    """A loaded lifter (numpy). names_in / names_out: joint names; meta: the checkpoint's
    metadata dict; layers: list of (W (in, out) float32, b (out,) float32)."""

    def __init__(self, meta: dict, tensors: dict[str, np.ndarray], source: str = "") -> None:
        self.meta, self.source = meta, source
        self.names_in = tuple(meta["names_in"])
        self.names_out = tuple(meta["names_out"])
        self.blocks = int(meta["blocks"])
        self.min_confidence = float(meta.get("min_confidence", DEFAULT_MIN_CONFIDENCE))
        f32 = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        self.w_in, self.b_in = f32["w_in"], f32["b_in"]
        self.res = [[(f32[f"w_{i}_{j}"], f32[f"b_{i}_{j}"]) for j in range(2)] for i in range(self.blocks)]
        self.w_out, self.b_out = f32["w_out"], f32["b_out"]
        if self.w_in.shape[0] != 2 * len(self.names_in) or self.w_out.shape[1] != 3 * len(self.names_out):
            raise LifterError(f"{source}: layer shapes {self.w_in.shape} / {self.w_out.shape} do not match "
                              f"{len(self.names_in)} input / {len(self.names_out)} output joints")
        for need in ("left_hip", "right_hip"):
            if need not in self.names_in or need not in self.names_out:
                raise LifterError(f"{source}: the lifter's joints must include {need} (the root is the mid-hip)")
        self.hips_in = (self.names_in.index("left_hip"), self.names_in.index("right_hip"))

    @classmethod
    def load(cls, path: str | Path) -> Lifter:
        """Read a checkpoint written by ``pose-ros train-lifter``. Raises LifterError naming the
        problem (missing file, not an .npz, missing arrays, wrong normalisation)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise LifterError(f"lifter checkpoint {path} not found: train one with `pose-ros train-lifter "
                              f"--out {path}` or leave lifter_model empty for the shipped "
                              f"{default_model_path()}")
        try:
            with np.load(path, allow_pickle=False) as z:
                tensors = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile / numpy errors for a file that is not an .npz
            raise LifterError(f"{path} is not a lifter checkpoint (.npz): {type(exc).__name__}: {exc}") from None
        if "meta" not in tensors:
            raise LifterError(f"{path} has no 'meta' entry: not written by `pose-ros train-lifter`")
        try:
            meta = json.loads(str(tensors.pop("meta")))
            blocks = int(meta["blocks"])
            need = ["w_in", "b_in", "w_out", "b_out"] + [f"{c}_{i}_{j}" for i in range(blocks)
                                                         for j in range(2) for c in "wb"]
            meta["names_in"], meta["names_out"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LifterError(f"{path}: unreadable metadata ({type(exc).__name__}: {exc})") from None
        missing = [k for k in need if k not in tensors]
        if missing:
            raise LifterError(f"{path} lacks arrays {missing}: not a complete lifter checkpoint")
        if meta.get("normalisation") != NORMALISATION:
            raise LifterError(f"{path} uses input normalisation {meta.get('normalisation')!r}; this "
                              f"version needs {NORMALISATION!r}: retrain with `pose-ros train-lifter`")
        return cls(meta, tensors, str(path))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Network: x (B, 2 J_in) float32 normalised input -> (B, 3 J_out) float32 metres."""
        h = np.maximum(np.asarray(x, np.float32) @ self.w_in + self.b_in, 0.0)
        for (w1, b1), (w2, b2) in self.res:
            r = np.maximum(h @ w1 + b1, 0.0)
            h = h + np.maximum(r @ w2 + b2, 0.0)
        return h @ self.w_out + self.b_out

    def lift_normalised(self, m: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """m: (B, J_in, 2) undistorted normalised coordinates in ``names_in`` order, conf: (B, J_in)
        -> (B, J_out, 3) float64 root-relative metres in the camera's axes."""
        x, Rv = normalise(m, conf, self.hips_in, self.min_confidence)
        y = self.forward(x).astype(np.float64).reshape(len(x), -1, 3)
        return np.einsum("bji,bkj->bki", Rv, y)  # Rv^T y

    def lift(self, keypoints: np.ndarray, confidence: np.ndarray, camera: PinholeCamera,
             names) -> np.ndarray | None:
        """One person: keypoints (K, 2) px of the image ``camera`` describes, confidence (K,),
        names: the layout's K joint names (or a Layout) -> (J_out, 3) float64 root-relative
        metres in the camera's optical-frame axes, ``names_out`` order; None when a hip is
        missing / not finite or fewer than 6 input joints are usable."""
        names = tuple(getattr(names, "names", names))
        kp = np.asarray(keypoints, np.float64).reshape(-1, 2)
        conf = np.asarray(confidence, np.float64).reshape(-1)
        if len(kp) != len(names) or len(conf) != len(names):
            raise LifterError(f"{len(kp)} keypoints / {len(conf)} confidences for {len(names)} joint names")
        idx = np.array([names.index(n) if n in names else -1 for n in self.names_in])
        m = np.full((len(idx), 2), np.nan)
        c = np.zeros(len(idx))
        ok = idx >= 0
        m[ok] = camera.normalized(kp[idx[ok]])
        c[ok] = conf[idx[ok]]
        c[~np.isfinite(m).all(1)] = 0.0
        if not np.isfinite(m[list(self.hips_in)]).all() or (c >= self.min_confidence).sum() < 6:
            return None
        return self.lift_normalised(m[None], c[None])[0]


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> Lifter:
    return Lifter.load(path)


def load_cached(path: str | Path) -> Lifter:
    """:meth:`Lifter.load` once per file (reloaded when the file changes)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return Lifter.load(p)  # raises the helpful error
    return _cached(str(p.resolve()), p.stat().st_mtime)
