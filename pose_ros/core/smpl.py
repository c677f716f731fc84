"""SMPL body model: linear blend skinning, model-file loading and a built-in default body.

SMPL (Loper et al. 2015) maps shape ``betas`` (B x NB, NB = 10 for the official files) and pose
``theta`` (B x 72: axis-angle of 24 joints, root first, radians, each joint relative to its
parent) to a posed mesh:

  template -> + shape blend shapes -> joint regression -> + pose blend shapes (207 = 23 x 9
  rotation-matrix features) -> rigid transforms along the kinematic tree -> linear blend
  skinning -> V posed vertices (6890 for SMPL).

Coordinates are the model's own frame: metres, y up, +x towards the body's left, +z forwards
(the direction the body faces in the rest pose). Callers place the body in a camera or world
frame with ``transl`` and the root orientation (``theta[:, :3]``).

The ``lbs`` free functions work on torch tensors and take dtype and device from their inputs
(CPU or CUDA). :class:`SmplModel` is a thin ``nn.Module`` holding the arrays as buffers.

The official model files are licensed (https://smpl.is.tue.mpg.de) and do not ship with
pose_ros. :func:`load_smpl_arrays` reads them (``.pkl`` with chumpy / scipy.sparse objects,
through a restricted unpickler that needs neither chumpy nor trust in the file, or ``.npz``);
:func:`builtin_body` builds a light default body made of capsules in the same array format,
so everything works out of the box. The built-in body is NOT SMPL.
"""
from __future__ import annotations

import functools
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .smpl_joints import BUILTIN_JOINTS, NUM_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS

NUM_POSE_FEATURES = (NUM_JOINTS - 1) * 9  # 207
GENDERS = ("neutral", "male", "female")


# --------------------------------------------------------------------------------------------
# 1. Linear blend skinning as free functions over torch tensors
# --------------------------------------------------------------------------------------------

def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Per-vertex displacements of the shape blend shapes.

    betas: B x NB shape coefficients; shapedirs: V x 3 x NB (metres per unit beta).
    Returns B x V x 3 displacements in metres.
    """
    # B x NB, V x 3 x NB -> B x V x 3
    return torch.einsum("bl,mkl->bmk", betas, shapedirs)


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations as fixed linear combinations of vertices.

    J_regressor: J x V; vertices: B x V x 3 (metres). Returns B x J x 3 (metres).
    """
    # J x V, B x V x 3 -> B x J x 3
    return torch.einsum("bik,ji->bjk", vertices, J_regressor)


def batch_rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors (N x 3, radians) to rotation matrices (N x 3 x 3).

    R = I + a K + b K^2 with K = [r]_x, a = sin(t)/t, b = (1 - cos t)/t^2 = 2 sin^2(t/2)/t^2,
    t = |r|; Taylor terms near t = 0 keep values and gradients finite at the zero pose.
    """
    n = rot_vecs.shape[0]
    # 1. angle, with a safe value where it is (nearly) zero
    theta2 = (rot_vecs * rot_vecs).sum(dim=1)  # N
    small = theta2 < torch.finfo(rot_vecs.dtype).eps
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)  # N
    b = torch.where(small, 0.5 - theta2 / 24.0, 2.0 * torch.sin(0.5 * theta) ** 2 / safe2)
    # 2. skew-symmetric cross-product matrix K = [r]_x: N x 3 x 3
    rx, ry, rz = rot_vecs.unbind(dim=1)
    zeros = torch.zeros_like(rx)
    K = torch.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(n, 3, 3)
    # 3. R = I + a K + b K K: N x 3 x 3
    ident = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device).expand(n, 3, 3)
    return ident + a[:, None, None] * K + b[:, None, None] * torch.bmm(K, K)


def transform_mat(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Homogeneous transforms from rotations (N x 3 x 3) and translations (N x 3 x 1): N x 4 x 4."""
    return torch.cat([F.pad(R, [0, 0, 0, 1]), F.pad(t, [0, 0, 0, 1], value=1.0)], dim=2)


@functools.lru_cache(maxsize=8)
def _tree_levels(parents: tuple[int, ...]) -> tuple[list, list[int]]:
    """Joints grouped by depth: [root], then per level (joints, rows of their parents in the
    concatenated level order); ``order`` maps joint index -> row."""
    depth = [0] * len(parents)
    for i in range(1, len(parents)):
        depth[i] = depth[parents[i]] + 1
    row: dict[int, int] = {}
    levels: list = []
    for d in range(max(depth) + 1):
        joints = [i for i in range(len(parents)) if depth[i] == d]
        levels.append(joints if d == 0 else (joints, [row[parents[i]] for i in joints]))
        for i in joints:
            row[i] = len(row)
    return levels, [row[i] for i in range(len(parents))]


def batch_rigid_transform(rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pose the kinematic tree.

    rot_mats: B x J x 3 x 3 joint rotations relative to the parent (root: absolute);
    joints: B x J x 3 rest-pose joint locations (metres); parents: J int64, parents[0] = -1,
    parents[i] < i.

    Returns (posed_joints B x J x 3, rel_transforms B x J x 4 x 4, global_transforms
    B x J x 4 x 4): global_transforms are the joint frames in the model frame (rotation =
    accumulated rotation, translation = posed joint location); rel_transforms map rest-pose
    points to posed points (global transform composed with the inverse rest-pose offset),
    which is what skinning blends.
    """
    B, J = joints.shape[:2]
    # 1. joint offsets from the parent in the rest pose: B x J x 3 x 1
    joints = joints.unsqueeze(-1)
    rel_joints = joints.clone()
    rel_joints[:, 1:] = rel_joints[:, 1:] - joints[:, parents[1:]]
    # 2. local transforms: B x J x 4 x 4
    local = transform_mat(rot_mats.reshape(-1, 3, 3), rel_joints.reshape(-1, 3, 1)).reshape(B, J, 4, 4)
    # 3. chain along the tree, one batched matmul per tree level (SMPL: 8 levels, 24 joints)
    levels, order = _tree_levels(tuple(int(p) for p in parents.tolist()))
    chain = local[:, levels[0]]  # B x 1 x 4 x 4, rows in `order`
    for lv in levels[1:]:
        chain = torch.cat([chain, torch.matmul(chain[:, lv[1]], local[:, lv[0]])], dim=1)
    global_transforms = chain[:, order]  # B x J x 4 x 4, joint order
    posed_joints = global_transforms[:, :, :3, 3]  # B x J x 3
    # 4. remove the rest-pose joint location: T_rel = G * [I, -j; 0, 1]
    joints_homogen = F.pad(joints, [0, 0, 0, 1])  # B x J x 4 x 1 (w = 0)
    rel_transforms = global_transforms - F.pad(torch.matmul(global_transforms, joints_homogen),
                                               [3, 0, 0, 0, 0, 0, 0, 0])
    return posed_joints, rel_transforms, global_transforms


@dataclass
class SmplOutput:
    """Posed bodies, all in the model frame (metres) plus ``transl``.

    vertices: B x V x 3; joints: B x 24 x 3; joint_transforms: B x 24 x 4 x 4 (joint frames,
    rotation and translation, for TF); rotmats: B x 24 x 3 x 3 (local joint rotations).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_transforms: torch.Tensor
    rotmats: torch.Tensor


def lbs(betas: torch.Tensor, pose: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, posedirs: torch.Tensor, J_regressor: torch.Tensor,
        parents: torch.Tensor, lbs_weights: torch.Tensor, pose2rot: bool = True) -> SmplOutput:
    """Linear blend skinning.

    betas: B x NB; pose: B x (J*3) axis-angle (radians) if ``pose2rot`` else B x J x 3 x 3;
    v_template: V x 3 (metres); shapedirs: V x 3 x NB; posedirs: P x (V*3), P = (J-1)*9;
    J_regressor: J x V; parents: J int64; lbs_weights: V x J (rows sum to 1).
    Returns :class:`SmplOutput` (no translation applied).
    """
    B = max(betas.shape[0], pose.shape[0])
    dtype, device = v_template.dtype, v_template.device
    # 1. shape blend shapes: B x V x 3
    v_shaped = v_template + blend_shapes(betas, shapedirs)
    # 2. rest-pose joints: B x J x 3
    J = vertices2joints(J_regressor, v_shaped)
    # 3. pose blend shapes from rotation-matrix features: B x J x 3 x 3 -> B x P -> B x V x 3
    if pose2rot:
        rot_mats = batch_rodrigues(pose.reshape(-1, 3)).view(B, -1, 3, 3)
    else:
        rot_mats = pose.reshape(B, -1, 3, 3)
    ident = torch.eye(3, dtype=dtype, device=device)
    pose_feature = (rot_mats[:, 1:] - ident).reshape(B, -1)
    v_posed = v_shaped + torch.matmul(pose_feature, posedirs).view(B, -1, 3)
    # 4. rigid transforms along the tree: B x J x 3, B x J x 4 x 4
    J_posed, A, G = batch_rigid_transform(rot_mats, J, parents)
    # 5. skinning: (B x V x J) x (B x J x 16) -> B x V x 4 x 4
    W = lbs_weights.unsqueeze(0).expand(B, -1, -1)
    T = torch.matmul(W, A.reshape(B, -1, 16)).view(B, -1, 4, 4)
    # 6. apply to homogeneous rest-pose vertices: B x V x 3
    verts = torch.matmul(T[:, :, :3, :3], v_posed.unsqueeze(-1))[..., 0] + T[:, :, :3, 3]
    return SmplOutput(vertices=verts, joints=J_posed, joint_transforms=G, rotmats=rot_mats)


# --------------------------------------------------------------------------------------------
# 2. Model arrays and loading official files
# --------------------------------------------------------------------------------------------

class SmplModelError(ValueError):
    """A body-model file is missing, unreadable, unsafe or has unexpected arrays."""


class UnsafePickleError(SmplModelError, pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (it might run code)."""


EXPECTED_ARRAYS = (
    "v_template (V, 3) float, shapedirs (V, 3, NB) float, posedirs (V, 3, 207) or (V*3, 207) "
    "float, J_regressor (24, V) dense or scipy.sparse, weights (V, 24) float, "
    "kintree_table (2, 24) int, f (F, 3) int")


@dataclass
class SmplArrays:
    """A body model in numpy, the official SMPL array layout.

    v_template: V x 3 float64 (metres, model frame); shapedirs: V x 3 x NB; posedirs:
    (V*3) x 207 (row v*3+c); J_regressor: 24 x V dense; weights: V x 24 (rows sum to 1);
    parents: 24 int64 (parents[0] = -1); faces: F x 3 int64 (counter-clockwise seen from
    outside); gender: 'neutral' | 'male' | 'female'; source: file path or 'builtin'.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray
    gender: str = "neutral"
    source: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def kintree_table(self) -> np.ndarray:
        """2 x 24 as in the official files (root parent stored as 2**32 - 1)."""
        par = self.parents.astype(np.int64) % (2 ** 32)
        return np.stack([par, np.arange(NUM_JOINTS)]).astype(np.uint32)

    def to_dict(self) -> dict:
        """The official key names and layouts (posedirs V x 3 x 207): for np.savez / pickle."""
        return {"v_template": self.v_template, "shapedirs": self.shapedirs,
                "posedirs": self.posedirs.reshape(self.num_vertices, 3, -1),
                "J_regressor": self.J_regressor, "weights": self.weights,
                "kintree_table": self.kintree_table, "f": self.faces.astype(np.uint32)}


class _ChumpyStandIn:
    """Inert stand-in for a pickled chumpy object: keeps its state, runs nothing."""

    _qualname = "chumpy.?"

    def __init__(self, *args, **kwargs) -> None:
        self._state = {"args": args}

    def __setstate__(self, state) -> None:
        self._state = state if isinstance(state, dict) else {"state": state}

    def to_numpy(self) -> np.ndarray:
        x = self._state.get("x")
        if x is None:
            raise SmplModelError(
                f"pickled {self._qualname} holds no stored value (an unevaluated chumpy "
                "expression); convert the file once with chumpy (`x.r`) and save numpy arrays")
        return x.to_numpy() if isinstance(x, _ChumpyStandIn) else np.asarray(x)


class _SparseStandIn:
    """Inert stand-in for a pickled scipy.sparse matrix (state: data, indices, indptr, shape)."""

    _format = "csc"

    def __init__(self, *args, **kwargs) -> None:
        self._state: dict = {}

    def __setstate__(self, state) -> None:
        self._state = state if isinstance(state, dict) else {}

    def to_numpy(self) -> np.ndarray:
        import scipy.sparse as sp

        s = self._state
        shape = s.get("_shape", s.get("shape"))
        try:
            if self._format == "coo":
                coords = s.get("coords") or (s["row"], s["col"])
                m = sp.coo_matrix((s["data"], tuple(coords)), shape=shape)
            else:
                cls = sp.csc_matrix if self._format == "csc" else sp.csr_matrix
                m = cls((s["data"], s["indices"], s["indptr"]), shape=shape)
        except (KeyError, TypeError, ValueError) as e:
            raise SmplModelError(f"pickled scipy.sparse {self._format} matrix is malformed: {e}") from None
        return m.toarray()


def _stand_in(base: type, qualname: str, **attrs) -> type:
    return type(qualname.rsplit(".", 1)[-1], (base,), {"_qualname": qualname, **attrs})


def _numpy_global(name: str):
    import importlib

    for mod in ("numpy._core.multiarray", "numpy.core.multiarray", "numpy._core.numeric",
                "numpy.core.numeric"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"numpy has no {name}")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for SMPL model pickles that loads data, never code.

    Allowed globals: numpy array / dtype / scalar reconstruction, ``object``, ``set``,
    ``frozenset``, ``_codecs.encode`` (bytes in protocol-2 pickles), copyreg's plain-object reconstructor, chumpy classes (mapped to inert
    stand-ins keeping their state; chumpy need not be installed) and scipy.sparse csc / csr /
    coo matrices (mapped to stand-ins converted with scipy). Anything else raises
    :class:`UnsafePickleError` -- e.g. a pickle whose ``__reduce__`` calls ``os.system``.
    """

    _NUMPY = {"_reconstruct", "scalar", "_frombuffer"}
    _NUMPY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                      "numpy._core.numeric", "numpy"}
    _SPARSE_MODULES = {"scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                       "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo",
                       "scipy.sparse"}

    def find_class(self, module: str, name: str):
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles from Python 3
            import codecs

            return codecs.encode
        if module in ("__builtin__", "builtins") and name in ("object", "set", "frozenset"):
            return {"object": object, "set": set, "frozenset": frozenset}[name]
        if module in self._NUMPY_MODULES:
            if name == "ndarray":
                return np.ndarray
            if name == "dtype":
                return np.dtype
            if name in self._NUMPY:
                return _numpy_global(name)
        if module == "numpy" and name == "dtype":
            return np.dtype
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            return _stand_in(_ChumpyStandIn, f"{module}.{name}")
        if module in self._SPARSE_MODULES and name in (
                "csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"):
            return _stand_in(_SparseStandIn, f"{module}.{name}", _format=name[:3])
        raise UnsafePickleError(
            f"refusing to load global {module}.{name} from a model pickle: only numpy arrays, "
            "chumpy arrays and scipy.sparse matrices are allowed (the file may try to run code); "
            "if the file is trusted, re-save its arrays with numpy.savez and load the .npz")


def _to_numpy(value, key: str, path: str) -> np.ndarray:
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        try:
            value = value.to_numpy()
        except SmplModelError as e:
            raise SmplModelError(f"{path}: array {key!r}: {e}") from None
    elif hasattr(value, "toarray"):  # a real scipy.sparse matrix (e.g. from an .npz of objects)
        value = value.toarray()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise SmplModelError(f"{path}: array {key!r} is not numeric (dtype object)")
    return arr


def _read_raw(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        with path.open("rb") as f:
            data = RestrictedUnpickler(f, encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError,
            IndexError, KeyError, TypeError, AttributeError) as e:
        raise SmplModelError(
            f"cannot read body model {path} ({type(e).__name__}: {e}); the file is truncated, "
            f"corrupt or not an SMPL .pkl/.npz. Expected arrays: {EXPECTED_ARRAYS}") from None
    if not isinstance(data, dict):
        raise SmplModelError(f"{path}: expected a dict of arrays, got {type(data).__name__}. "
                             f"Expected arrays: {EXPECTED_ARRAYS}")
    return data


def arrays_from_dict(data: dict, source: str = "", gender: str = "neutral") -> SmplArrays:
    """Validate official-layout arrays (dict of numpy / chumpy / sparse) into :class:`SmplArrays`."""
    missing = [k for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                           "kintree_table", "f") if k not in data]
    if missing:
        raise SmplModelError(f"{source}: missing arrays {missing}. Expected arrays: {EXPECTED_ARRAYS}")
    a = {k: _to_numpy(data[k], k, source) for k in
         ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")}

    def bad(key: str, want: str):
        return SmplModelError(f"{source}: array {key!r} has shape {a[key].shape}, expected {want}. "
                              f"Expected arrays: {EXPECTED_ARRAYS}")

    v = a["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        raise bad("v_template", "(V, 3)")
    V = v.shape[0]
    sd = a["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3) or sd.shape[2] < 1:
        raise bad("shapedirs", f"({V}, 3, NB)")
    pd = a["posedirs"]
    if pd.shape == (V, 3, NUM_POSE_FEATURES):
        pd = pd.reshape(V * 3, NUM_POSE_FEATURES)
    elif pd.shape != (V * 3, NUM_POSE_FEATURES):
        raise bad("posedirs", f"({V}, 3, {NUM_POSE_FEATURES}) or ({V * 3}, {NUM_POSE_FEATURES})")
    if a["J_regressor"].shape != (NUM_JOINTS, V):
        raise bad("J_regressor", f"({NUM_JOINTS}, {V})")
    if a["weights"].shape != (V, NUM_JOINTS):
        raise bad("weights", f"({V}, {NUM_JOINTS})")
    if a["kintree_table"].shape != (2, NUM_JOINTS):
        raise bad("kintree_table", f"(2, {NUM_JOINTS})")
    f = a["f"]
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise bad("f", "(F, 3) integer")
    if f.size and (f.min() < 0 or f.max() >= V):
        raise SmplModelError(f"{source}: faces index vertices outside [0, {V})")
    parents = a["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    if any(not 0 <= parents[i] < i for i in range(1, NUM_JOINTS)):
        raise SmplModelError(f"{source}: kintree_table[0] must list each joint's parent before "
                             f"the joint (got {parents.tolist()})")
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        if not np.isfinite(a[key]).all():
            raise SmplModelError(f"{source}: array {key!r} holds NaN or inf")
    return SmplArrays(
        v_template=v.astype(np.float64), shapedirs=sd.astype(np.float64),
        posedirs=pd.astype(np.float64), J_regressor=a["J_regressor"].astype(np.float64),
        weights=a["weights"].astype(np.float64), parents=parents, faces=f.astype(np.int64),
        gender=gender, source=source)


_OFFICIAL_NAMES = {
    "neutral": ("SMPL_NEUTRAL", "basicmodel_neutral_lbs_10_207_0_v1.1.0",
                "basicModel_neutral_lbs_10_207_0_v1.0.0", "basicmodel_neutral_lbs_10_207_0_v1.0.0"),
    "male": ("SMPL_MALE", "basicmodel_m_lbs_10_207_0_v1.1.0", "basicModel_m_lbs_10_207_0_v1.0.0",
             "basicmodel_m_lbs_10_207_0_v1.0.0"),
    "female": ("SMPL_FEMALE", "basicmodel_f_lbs_10_207_0_v1.1.0",
               "basicModel_f_lbs_10_207_0_v1.0.0", "basicmodel_f_lbs_10_207_0_v1.0.0"),
}


def resolve_model_path(path: str | Path, gender: str = "neutral") -> Path:
    """A model file, or the file for ``gender`` in a folder (also its ``smpl/`` subfolder).

    Folder names tried: SMPL_NEUTRAL/MALE/FEMALE.{pkl,npz} (smplx layout) and the official
    basicmodel_{neutral,m,f}_lbs_10_207_0_v1.{0,1}.0.pkl.
    """
    if gender not in GENDERS:
        raise SmplModelError(f"gender must be one of {GENDERS}, got {gender!r}")
    p = Path(path).expanduser()
    if p.is_dir():
        tried = []
        for folder in (p, p / "smpl"):
            for stem in _OFFICIAL_NAMES[gender]:
                for ext in (".pkl", ".npz"):
                    cand = folder / (stem + ext)
                    tried.append(cand.name)
                    if cand.is_file():
                        return cand
        raise SmplModelError(
            f"no {gender} SMPL model in folder {p} (looked for {sorted(set(tried))}). Download "
            "SMPL from https://smpl.is.tue.mpg.de (licence required) or use the built-in body")
    if not p.is_file():
        raise FileNotFoundError(
            f"SMPL model file not found: {p}. Download SMPL from https://smpl.is.tue.mpg.de "
            "(licence required) and pass the .pkl / .npz (or its folder), or use the built-in body "
            "(model 'builtin')")
    return p


def load_smpl_arrays(path: str | Path, gender: str = "neutral") -> SmplArrays:
    """Read an SMPL model (.pkl or .npz, a file or a folder holding the official files).

    ``path == 'builtin'`` returns :func:`builtin_body`. Raises FileNotFoundError for a missing
    file, :class:`SmplModelError` for an unreadable / truncated / wrongly shaped one (the
    message names the expected arrays and shapes) and :class:`UnsafePickleError` for a pickle
    that asks for anything but numpy / chumpy / scipy.sparse objects.
    """
    if str(path) == "builtin":
        return builtin_body()
    p = resolve_model_path(path, gender)
    return arrays_from_dict(_read_raw(p), source=str(p), gender=gender)


# --------------------------------------------------------------------------------------------
# nn.Module
# --------------------------------------------------------------------------------------------

class SmplModel(nn.Module):
    """SMPL forward model holding the arrays as buffers (move with ``.to(device, dtype)``).

    forward(betas B x NB or None, pose B x 72 axis-angle (or B x 24 x 3 x 3 with
    ``pose2rot=False``) or None, transl B x 3 metres or None) -> :class:`SmplOutput` with
    vertices / joints / joint_transforms translated by ``transl``. Missing betas / pose are
    zeros; fewer betas than the model has are zero-padded.
    """

    def __init__(self, arrays: SmplArrays, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.arrays_source = arrays.source
        self.gender = arrays.gender
        self.num_betas = arrays.num_betas

        def buf(name, x, dt=dtype):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(x), dtype=dt),
                                 persistent=False)

        buf("v_template", arrays.v_template)
        buf("shapedirs", arrays.shapedirs)
        buf("posedirs", arrays.posedirs.T)  # 207 x (V*3)
        buf("J_regressor", arrays.J_regressor)
        buf("lbs_weights", arrays.weights)
        buf("parents", arrays.parents, torch.int64)
        buf("faces", arrays.faces, torch.int64)

    @classmethod
    def from_file(cls, path: str | Path, gender: str = "neutral",
                  dtype: torch.dtype = torch.float32) -> SmplModel:
        return cls(load_smpl_arrays(path, gender), dtype=dtype)

    @classmethod
    def builtin(cls, dtype: torch.dtype = torch.float32) -> SmplModel:
        return cls(builtin_body(), dtype=dtype)

    def forward(self, betas: torch.Tensor | None = None, pose: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, pose2rot: bool = True) -> SmplOutput:
        dt, dev = self.v_template.dtype, self.v_template.device
        B = next((t.shape[0] for t in (betas, pose, transl) if t is not None), 1)
        betas = (torch.zeros(B, self.num_betas, dtype=dt, device=dev) if betas is None
                 else betas.to(dev, dt))
        if betas.ndim != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must be B x <= {self.num_betas}, got {tuple(betas.shape)}")
        if betas.shape[1] < self.num_betas:
            betas = F.pad(betas, [0, self.num_betas - betas.shape[1]])
        if pose is None:
            pose = torch.zeros(B, NUM_JOINTS * 3, dtype=dt, device=dev)
            pose2rot = True
        pose = pose.to(dev, dt)
        want = (B, NUM_JOINTS * 3) if pose2rot else (B, NUM_JOINTS, 3, 3)
        if pose.shape[0] != B or pose.numel() != math.prod(want):
            kind = "axis-angle, radians" if pose2rot else "rotation matrices"
            raise ValueError(f"pose must be {want} ({kind}), got {tuple(pose.shape)}")
        out = lbs(betas, pose.reshape(want), self.v_template, self.shapedirs, self.posedirs,
                  self.J_regressor, self.parents, self.lbs_weights, pose2rot=pose2rot)
        if transl is not None:
            t = transl.to(dev, dt).reshape(B, 1, 3)
            out.vertices = out.vertices + t
            out.joints = out.joints + t
            G = out.joint_transforms.clone()
            G[:, :, :3, 3] = G[:, :, :3, 3] + t
            out.joint_transforms = G
        return out


# --------------------------------------------------------------------------------------------
# 3. Built-in default body (not SMPL): capsules around the SMPL bones
# --------------------------------------------------------------------------------------------

# BUILTIN_JOINTS (rest T-pose joints of the built-in body) live in smpl_joints.py (torch-free)

# one capsule per joint, starting at that joint: (end: joint index or offset from the start
# in metres, forward radius, side radius). Cross-sections are ellipses.
_BUILTIN_PARTS = {
    "pelvis": ("spine1", 0.105, 0.155),
    "left_hip": ("left_knee", 0.075, 0.075),
    "right_hip": ("right_knee", 0.075, 0.075),
    "spine1": ("spine2", 0.105, 0.145),
    "left_knee": ("left_ankle", 0.055, 0.055),
    "right_knee": ("right_ankle", 0.055, 0.055),
    "spine2": ("spine3", 0.11, 0.155),
    "left_ankle": ("left_foot", 0.045, 0.05),
    "right_ankle": ("right_foot", 0.045, 0.05),
    "spine3": ("neck", 0.10, 0.16),
    "left_foot": ((0.0, -0.01, 0.06), 0.03, 0.045),
    "right_foot": ((0.0, -0.01, 0.06), 0.03, 0.045),
    "neck": ("head", 0.05, 0.05),
    "left_collar": ("left_shoulder", 0.05, 0.05),
    "right_collar": ("right_shoulder", 0.05, 0.05),
    "head": ((0.0, 0.13, 0.0), 0.095, 0.08),
    "left_shoulder": ("left_elbow", 0.05, 0.05),
    "right_shoulder": ("right_elbow", 0.05, 0.05),
    "left_elbow": ("left_wrist", 0.04, 0.04),
    "right_elbow": ("right_wrist", 0.04, 0.04),
    "left_wrist": ("left_hand", 0.025, 0.045),
    "right_wrist": ("right_hand", 0.025, 0.045),
    "left_hand": ((0.07, -0.005, 0.0), 0.02, 0.04),
    "right_hand": ((-0.07, -0.005, 0.0), 0.02, 0.04),
}
BUILTIN_NUM_BETAS = 10
#: relative size change per unit beta[0] (uniform scale about the floor point under the pelvis)
BUILTIN_HEIGHT_PER_BETA = 0.06
#: relative radius change of every capsule per unit beta[1] (joints stay put)
BUILTIN_GIRTH_PER_BETA = 0.10


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def capsule_mesh(a: np.ndarray, b: np.ndarray, r_fwd: float, r_side: float, n_around: int = 16,
                 n_cap: int = 4, ring_spacing: float = 0.04) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """A closed capsule from ``a`` to ``b`` (metres) with an elliptical cross-section.

    Returns (vertices N x 3, faces M x 3 int64 with outward normals, axis points N x 3 (the
    closest point of the axis segment), t N (position along a -> b, 0..1, clipped), start-ring
    first vertex index, end-ring first vertex index). The start / end rings (n_around vertices
    each) are centred exactly on ``a`` / ``b``; cylinder rings every ~``ring_spacing`` metres
    between them let the skinning weights vary along the bone.
    """
    d = b - a
    length = float(np.linalg.norm(d))
    u = d / length
    ref = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = ref - ref.dot(u) * u
    e1 /= np.linalg.norm(e1)  # "forward" axis of the cross-section
    e2 = np.cross(u, e1)  # "side" axis
    r_cap = min(r_fwd, r_side)
    phi = 2.0 * np.pi * np.arange(n_around) / n_around
    ring_dir = np.cos(phi)[:, None] * (r_fwd * e1) + np.sin(phi)[:, None] * (r_side * e2)
    # rings from the start pole towards the end pole: (axial position in metres, radius scale)
    rings = []
    for k in range(1, n_cap + 1):  # start hemisphere, ending with the ring at a
        th = 0.5 * np.pi * k / n_cap
        rings.append((-r_cap * np.cos(th), np.sin(th)))
    n_seg = max(1, int(round(length / ring_spacing)))
    for k in range(1, n_seg):  # cylinder rings between a and b
        rings.append((length * k / n_seg, 1.0))
    end_ring = len(rings)
    for k in range(0, n_cap):  # end hemisphere, starting with the ring at b
        th = 0.5 * np.pi * k / n_cap
        rings.append((length + r_cap * np.sin(th), np.cos(th)))
    verts = [a - r_cap * u]
    for z, s in rings:
        verts.extend(a + z * u + s * ring_dir)
    verts.append(b + r_cap * u)
    verts = np.asarray(verts)
    n_rings = len(rings)
    faces = []
    ring = lambda i: 1 + i * n_around  # noqa: E731
    for j in range(n_around):  # start pole fan (pointing -u)
        faces.append((0, ring(0) + (j + 1) % n_around, ring(0) + j))
    for i in range(n_rings - 1):
        for j in range(n_around):
            p0, p1 = ring(i) + j, ring(i) + (j + 1) % n_around
            q0, q1 = ring(i + 1) + j, ring(i + 1) + (j + 1) % n_around
            faces.append((p0, p1, q1))
            faces.append((p0, q1, q0))
    last = len(verts) - 1
    for j in range(n_around):  # end pole fan
        faces.append((last, ring(n_rings - 1) + j, ring(n_rings - 1) + (j + 1) % n_around))
    faces = np.asarray(faces, np.int64)
    t = np.clip((verts - a) @ u / length, 0.0, 1.0)
    axis = a + t[:, None] * d
    return verts, faces, axis, t, ring(n_cap - 1), ring(end_ring)


def builtin_body() -> SmplArrays:
    """The built-in default body: NOT SMPL, a light capsule body in the SMPL array format.

    One capsule per SMPL joint along its bone (T-pose, arms along +-x); ~3100 vertices,
    ~6100 faces. Skinning weights blend smoothly with the parent joint near a capsule's start
    and with the child joint near its end; each joint is regressed as the mean of the ring of
    vertices centred on it. Shape directions: beta[0] height (uniform scale by
    ``BUILTIN_HEIGHT_PER_BETA`` per unit about the floor point under the pelvis), beta[1]
    girth (capsule radii scale by ``BUILTIN_GIRTH_PER_BETA`` per unit, joints fixed), the
    rest zero. posedirs are zero. Deterministic; built in a few milliseconds.
    """
    J = BUILTIN_JOINTS
    idx = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    floor = np.array([0.0, J[:, 1].min() - 0.06, 0.0])  # under the feet, a capsule radius below ankles
    verts, faces, weights, radial = [], [], [], []
    regress_rows: list[tuple[int, np.ndarray]] = []
    n0 = 0
    for j, name in enumerate(SMPL_JOINT_NAMES):
        end, r_fwd, r_side = _BUILTIN_PARTS[name]
        a = J[j]
        end_joint = idx[end] if isinstance(end, str) else None
        b = J[end_joint] if end_joint is not None else a + np.asarray(end)
        v, f, axis, t, start_ring, _ = capsule_mesh(a, b, r_fwd, r_side)
        w = np.zeros((len(v), NUM_JOINTS))
        w[:, j] = 1.0
        parent = SMPL_PARENTS[j]
        if parent >= 0:  # blend with the parent near the start: 50/50 at the joint
            wp = 0.5 * (1.0 - _smoothstep(t / 0.25))
            w[:, parent] += wp
            w[:, j] -= wp
        if end_joint is not None:  # and with the child near the end
            wc = 0.5 * _smoothstep((t - 0.75) / 0.25)
            w[:, end_joint] += wc
            w[:, j] -= wc
        verts.append(v)
        faces.append(f + n0)
        weights.append(w)
        radial.append(v - axis)
        regress_rows.append((j, n0 + start_ring + np.arange(16)))
        n0 += len(v)
    v_template = np.concatenate(verts)
    V = len(v_template)
    regress = np.zeros((NUM_JOINTS, V))
    for j, cols in regress_rows:
        regress[j, cols] = 1.0 / len(cols)
    shapedirs = np.zeros((V, 3, BUILTIN_NUM_BETAS))
    shapedirs[:, :, 0] = BUILTIN_HEIGHT_PER_BETA * (v_template - floor)
    shapedirs[:, :, 1] = BUILTIN_GIRTH_PER_BETA * np.concatenate(radial)
    return SmplArrays(
        v_template=v_template, shapedirs=shapedirs,
        posedirs=np.zeros((V * 3, NUM_POSE_FEATURES)), J_regressor=regress,
        weights=np.concatenate(weights), parents=np.asarray(SMPL_PARENTS, np.int64),
        faces=np.concatenate(faces), gender="neutral", source="builtin")


# --------------------------------------------------------------------------------------------
# 5. Fitting SMPL to 3D (and optionally 2D) keypoints
# --------------------------------------------------------------------------------------------

#: keypoint name -> (SMPL joint, weight) beyond identical names: BlazePose's foot_index lies
#: near SMPL's foot joint (ball of the foot)
EXTRA_CORRESPONDENCES = {"left_foot_index": ("left_foot", 0.5), "right_foot_index": ("right_foot", 0.5)}

# joint-angle limits on axis-angle components (SMPL frame, rest T-pose): knees flex about +x,
# the left elbow about -y, the right elbow about +y; (joint, component, sign): sign * value >= 0
_HINGE_LIMITS = ((4, 0, 1.0), (5, 0, 1.0), (18, 1, -1.0), (19, 1, 1.0))
# hinge joints barely rotate about their other axes
_HINGE_OFF_AXES = ((4, 1), (4, 2), (5, 1), (5, 2), (18, 0), (18, 2), (19, 0), (19, 2))


@dataclass
class SmplFit:
    """Fitted SMPL parameters for B persons, in the keypoints' frame (metres).

    betas: B x NB; pose: B x 72 axis-angle (radians, root orientation first, relative to the
    keypoint frame); transl: B x 3; joints: B x 24 x 3 fitted joint positions;
    fit_error: B mean confidence-weighted distance between fitted and observed keypoints
    (metres, over the keypoints with a correspondence and confidence > 0; NaN for a person
    with none); iterations:
    Levenberg-Marquardt iterations run.
    """

    betas: torch.Tensor
    pose: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    fit_error: torch.Tensor
    iterations: int


def correspondences(layout_names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoint indices M, SMPL joint indices M, weights M) for a keypoint layout: joints of
    the same name (shoulders, elbows, wrists, hips, knees, ankles for COCO-17 / BlazePose-33)
    plus :data:`EXTRA_CORRESPONDENCES`."""
    kp, sj, w = [], [], []
    for i, n in enumerate(layout_names):
        if n in SMPL_JOINT_NAMES:
            kp.append(i), sj.append(SMPL_JOINT_NAMES.index(n)), w.append(1.0)
        elif n in EXTRA_CORRESPONDENCES:
            name, weight = EXTRA_CORRESPONDENCES[n]
            kp.append(i), sj.append(SMPL_JOINT_NAMES.index(name)), w.append(weight)
    if len(kp) < 4:
        raise ValueError(f"keypoint layout shares fewer than 4 joints with SMPL: {list(layout_names)}")
    return np.array(kp), np.array(sj), np.array(w)


def right_jacobian_so3(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Right Jacobian of SO(3) (N x 3 -> N x 3 x 3): R(r + d) ~= R(r) exp([Jr(r) d]_x).

    Jr = I - (1 - cos t)/t^2 K + (t - sin t)/t^3 K^2, K = [r]_x, t = |r|.
    """
    n = rot_vecs.shape[0]
    theta2 = (rot_vecs * rot_vecs).sum(dim=1)
    small = theta2 < 1e-6
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    b = torch.where(small, 0.5 - theta2 / 24.0, 2.0 * torch.sin(0.5 * theta) ** 2 / safe2)
    c = torch.where(small, 1.0 / 6.0 - theta2 / 120.0, (theta - torch.sin(theta)) / (safe2 * theta))
    rx, ry, rz = rot_vecs.unbind(dim=1)
    zeros = torch.zeros_like(rx)
    K = torch.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(n, 3, 3)
    ident = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device).expand(n, 3, 3)
    return ident - b[:, None, None] * K + c[:, None, None] * torch.bmm(K, K)


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


class SmplFitter:
    """Batched fit of pose, shape, global orientation and translation to keypoints.

    model: a :class:`SmplModel` (only its joints are used: fitting never skins vertices);
    layout_names: the keypoint layout's joint names (e.g. ``COCO_17.names``).

    Energy per person (a sum of squared residuals):
    sum_k c_k w_k |J_k + t - X_k|^2 / sum_k c_k w_k (3D, metres^2)
    + ``reproj_weight`` * the same in pixels / fx through K (optional 2D term)
    + ``pose_weight`` |theta_body|^2 + ``limit_weight`` * (knee / elbow hinge limits: no
    hyper-extension, little rotation about the non-hinge axes) + ``shape_weight`` |beta|^2.
    Minimised per person with Levenberg-Marquardt on the analytic Jacobian of the kinematic
    chain (each person has its own damping and step acceptance, so batching does not couple
    people). Cold start: global orientation and translation from a weighted Kabsch alignment
    of the rest-pose torso (hips, shoulders) to the keypoints (scipy ``Rotation.align_vectors``).
    Warm start: pass the previous :class:`SmplFit` of the same track as ``init``.
    """

    def __init__(self, model: SmplModel, layout_names, pose_weight: float = 1e-5,
                 shape_weight: float = 1e-5, limit_weight: float = 1e-1,
                 reproj_weight: float = 1.0, cold_iters: int = 30, warm_iters: int = 8) -> None:
        self.model = model
        self.n_keypoints = len(layout_names)
        self.kp_idx, self.smpl_idx, self.kp_weight = correspondences(layout_names)
        self.pose_weight, self.shape_weight = pose_weight, shape_weight
        self.limit_weight, self.reproj_weight = limit_weight, reproj_weight
        self.cold_iters, self.warm_iters = cold_iters, warm_iters
        dev = model.v_template.device
        with torch.no_grad():
            # rest joints and their shape basis: 24 x 3, 24 x 3 x NB
            self.j_template = vertices2joints(model.J_regressor, model.v_template[None])[0]
            self.j_shapedirs = torch.einsum("jv,vkl->jkl", model.J_regressor, model.shapedirs)
        parents = [int(p) for p in model.parents.tolist()]
        # anc[k, j] = 1 if j is a proper ancestor of k (rotating j moves k); path = anc + self
        anc = np.zeros((NUM_JOINTS, NUM_JOINTS))
        for k in range(NUM_JOINTS):
            j = parents[k]
            while j >= 0:
                anc[k, j] = 1.0
                j = parents[j]
        path = anc + np.eye(NUM_JOINTS)
        path[:, 0] = 0.0  # the root's rest location enters directly, not through a rotation
        dt = model.v_template.dtype
        self._anc = torch.as_tensor(anc[self.smpl_idx], dtype=dt, device=dev)  # M x 24
        self._path = torch.as_tensor(path[self.smpl_idx], dtype=dt, device=dev)  # M x 24
        self._parent_of = torch.as_tensor([max(p, 0) for p in parents], device=dev)
        self._limit_idx = [3 * j + k for j, k, _ in _HINGE_LIMITS]
        self._limit_sign = torch.tensor([s for _, _, s in _HINGE_LIMITS], dtype=dt, device=dev)
        self._off_idx = [3 * j + k for j, k in _HINGE_OFF_AXES]

    def joints(self, betas: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Posed joints B x 24 x 3 (no translation): the same as ``model(...).joints``."""
        rest = self.j_template + torch.einsum("bl,jkl->bjk", betas, self.j_shapedirs)
        rot = batch_rodrigues(pose.reshape(-1, 3)).view(pose.shape[0], -1, 3, 3)
        return batch_rigid_transform(rot, rest, self.model.parents)[0]

    def joint_jacobian(self, betas: torch.Tensor, pose: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed joints B x 24 x 3 and the Jacobian of the observed joints (B x M x 3 x P,
        P = 72 pose + NB betas + 3 translation) -- analytic, no autograd."""
        B = pose.shape[0]
        rest = self.j_template + torch.einsum("bl,jkl->bjk", betas, self.j_shapedirs)
        aa = pose.reshape(-1, 3)
        rot = batch_rodrigues(aa).view(B, NUM_JOINTS, 3, 3)
        posed, _, G = batch_rigid_transform(rot, rest, self.model.parents)
        Rg = G[:, :, :3, :3]  # B x 24 x 3 x 3 joint frames
        # 1. rotations: a twist d of joint j turns its subtree by w = Rg_j Jr(r_j) d about p_j
        W = Rg @ right_jacobian_so3(aa).view(B, NUM_JOINTS, 3, 3)
        obs = posed[:, self.smpl_idx]  # B x M x 3
        lever = obs[:, :, None] - posed[:, None]  # B x M x 24 x 3
        d_rot = -_skew(lever) @ W[:, None]  # B x M x 24 x 3 x 3 (dp/dr_j = -[p_k - p_j]x W_j)
        d_rot = d_rot * self._anc[None, :, :, None, None]
        d_rot = d_rot.permute(0, 1, 3, 2, 4).reshape(B, len(self.smpl_idx), 3, NUM_JOINTS * 3)
        # 2. shape: p_k = p_0 + sum_{i on path} Rg_parent(i) (j_i - j_parent(i))
        S = self.j_shapedirs  # 24 x 3 x NB
        dS = S - S[self._parent_of]
        rotated = Rg[:, self._parent_of] @ dS[None]  # B x 24 x 3 x NB
        d_shape = S[0] + torch.einsum("mi,bian->bman", self._path, rotated)  # B x M x 3 x NB
        # 3. translation: identity
        d_t = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(B, len(self.smpl_idx), 3, 3)
        return posed, torch.cat([d_rot, d_shape, d_t], dim=-1)

    def _residuals(self, p: torch.Tensor, data: dict, with_jac: bool):
        """Residual vector B x R (energy = sum of squares) and its Jacobian B x R x P."""
        B, nb = p.shape[0], self.model.num_betas
        pose, betas, transl = p[:, :72], p[:, 72:72 + nb], p[:, 72 + nb:]
        if with_jac:
            posed, dJ = self.joint_jacobian(betas, pose)  # B x M x 3 x P
        else:
            posed, dJ = self.joints(betas, pose), None
        J = posed[:, self.smpl_idx] + transl[:, None]  # B x M x 3
        sw = data["sw"]  # B x M: sqrt(c_k w_k / sum)
        res = [((J - data["X"]) * sw[..., None]).reshape(B, -1)]
        jac = [(dJ * sw[..., None, None]).reshape(B, -1, p.shape[1])] if with_jac else []
        if data.get("x2") is not None:
            K = data["K"]
            z = J[..., 2].clamp_min(1e-3)
            uv = J[..., :2] / z[..., None] * K.diagonal()[:2] + K[:2, 2]
            s2 = data["sw2"][..., None]
            res.append(((uv - data["x2"]) / K[0, 0] * s2).reshape(B, -1))
            if with_jac:
                # d(u, v)/d(X, Y, Z) = f / Z [[1, 0, -X/Z], [0, 1, -Y/Z]]
                f = K.diagonal()[:2] / K[0, 0]
                dproj = torch.zeros(*J.shape[:2], 2, 3, dtype=J.dtype, device=J.device)
                dproj[..., 0, 0] = f[0] / z
                dproj[..., 1, 1] = f[1] / z
                dproj[..., :, 2] = -J[..., :2] * f / z[..., None] ** 2
                jac.append((dproj @ dJ * s2[..., None]).reshape(B, -1, p.shape[1]))
        P = p.shape[1]
        eye = torch.eye(P, dtype=p.dtype, device=p.device)
        # priors: body pose L2, hinge limits, off-axis rotations of hinges, shape L2
        wp, wl, ws = self.pose_weight ** 0.5, self.limit_weight ** 0.5, self.shape_weight ** 0.5
        lim = -pose[:, self._limit_idx] * self._limit_sign
        active = (lim > 0).to(p.dtype)
        res += [wp * pose[:, 3:], wl * lim * active, (0.1 * wl ** 2) ** 0.5 * pose[:, self._off_idx],
                ws * betas]
        if with_jac:
            jl = -(self._limit_sign * active)[..., None] * wl * eye[self._limit_idx]
            jac += [wp * eye[3:72].expand(B, -1, -1), jl,
                    (0.1 * wl ** 2) ** 0.5 * eye[self._off_idx].expand(B, -1, -1),
                    ws * eye[72:72 + nb].expand(B, -1, -1)]
        return torch.cat(res, 1), (torch.cat(jac, 1) if with_jac else None), J

    def _cold_start(self, X: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.spatial.transform import Rotation

        torso = [SMPL_JOINT_NAMES.index(n) for n in
                 ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "pelvis")]
        rest = self.j_template.detach().cpu().double().numpy()
        B = X.shape[0]
        orient, transl = np.zeros((B, 3)), np.zeros((B, 3))
        for b in range(B):
            seen = [k for k in range(len(self.smpl_idx)) if c[b, k] > 0]
            use = [k for k in seen if self.smpl_idx[k] in torso]
            if len(use) < 3:  # too few torso points: any observed points
                use = seen
            if not use:
                continue
            w = c[b, use]
            src, dst = rest[self.smpl_idx[use]], X[b, use]
            mu_s, mu_d = np.average(src, 0, w), np.average(dst, 0, w)
            rot = (Rotation.align_vectors(dst - mu_d, src - mu_s, weights=w)[0] if len(use) >= 3
                   else Rotation.identity())
            orient[b] = rot.as_rotvec()
            # the root rotates about the rest pelvis p: x' = R (x - p) + p + t
            p = rest[0]
            transl[b] = mu_d - rot.apply(mu_s - p) - p
        return orient, transl

    def fit(self, keypoints: torch.Tensor, confidence: torch.Tensor, init: SmplFit | None = None,
            keypoints_2d: torch.Tensor | None = None, K: torch.Tensor | None = None,
            iters: int | None = None) -> SmplFit:
        """Fit B persons.

        keypoints: B x N x 3 (metres, any right-handed frame, e.g. the camera optical frame;
        NaN allowed where confidence is 0); confidence: B x N in [0, 1]; init: warm start
        (the previous fit of the same people, same order); keypoints_2d: B x N x 2 pixels with
        K: 3 x 3 intrinsics (the 3D frame must then be the camera optical frame); iters:
        Levenberg-Marquardt iterations (default cold_iters / warm_iters).
        """
        dt, dev = self.model.v_template.dtype, self.model.v_template.device
        n_kp = self.n_keypoints
        if keypoints.ndim != 3 or keypoints.shape[1:] != (n_kp, 3) or confidence.shape != keypoints.shape[:2]:
            raise ValueError(f"keypoints must be B x {n_kp} x 3 and confidence B x {n_kp} for this "
                             f"layout, got {tuple(keypoints.shape)} and {tuple(confidence.shape)}")
        kp_idx = torch.as_tensor(self.kp_idx, device=dev)
        X = keypoints.to(dev, dt)[:, kp_idx]  # B x M x 3
        w = torch.as_tensor(self.kp_weight, dtype=dt, device=dev)
        c = confidence.to(dev, dt)[:, kp_idx].clamp(0, 1) * w
        c = torch.where(torch.isfinite(X).all(-1), c, torch.zeros_like(c))
        X = torch.nan_to_num(X)
        norm = c.sum(1, keepdim=True).clamp_min(1e-9)
        data = {"X": X, "sw": (c / norm).sqrt(), "x2": None}
        if keypoints_2d is not None and K is not None and self.reproj_weight > 0:
            x2 = keypoints_2d.to(dev, dt)[:, kp_idx]
            c2 = torch.where(torch.isfinite(x2).all(-1), c, torch.zeros_like(c))
            data.update(x2=torch.nan_to_num(x2), K=torch.as_tensor(K).to(dev, dt),
                        sw2=(self.reproj_weight * c2 / norm).sqrt())
        B, nb = X.shape[0], self.model.num_betas
        if B == 0:
            z = torch.zeros(0, dtype=dt, device=dev)
            return SmplFit(betas=z.reshape(0, nb), pose=z.reshape(0, 72), transl=z.reshape(0, 3),
                           joints=z.reshape(0, NUM_JOINTS, 3), fit_error=z, iterations=0)
        if init is None:
            o, t = self._cold_start(X.cpu().double().numpy(), c.cpu().double().numpy())
            p = torch.zeros(B, 72 + nb + 3, dtype=dt, device=dev)
            p[:, :3] = torch.as_tensor(o, dtype=dt, device=dev)
            p[:, 72 + nb:] = torch.as_tensor(t, dtype=dt, device=dev)
            n_iter = self.cold_iters if iters is None else iters
        else:
            p = torch.cat([init.pose, init.betas, init.transl], 1).to(dev, dt)
            n_iter = self.warm_iters if iters is None else iters
        with torch.no_grad():
            r, Jm, _ = self._residuals(p, data, True)
            E = (r * r).sum(1)
            lam = torch.full((B,), 1e-3, dtype=dt, device=dev)
            eye = torch.eye(p.shape[1], dtype=dt, device=dev)
            done = 0
            while done < n_iter:
                done += 1
                H = Jm.transpose(1, 2) @ Jm  # B x P x P
                g = (Jm.transpose(1, 2) @ r[..., None])[..., 0]
                damp = lam[:, None, None] * (H.diagonal(dim1=1, dim2=2)[..., None] * eye + 1e-9 * eye)
                step = torch.linalg.solve(H + damp, -g)
                p_new = p + step
                r_new, J_new, _ = self._residuals(p_new, data, True)
                E_new = (r_new * r_new).sum(1)
                ok = E_new < E
                okf = ok[:, None]
                p = torch.where(okf, p_new, p)
                r = torch.where(okf, r_new, r)
                Jm = torch.where(ok[:, None, None], J_new, Jm)
                E = torch.where(ok, E_new, E)
                lam = torch.where(ok, lam / 3.0, lam * 4.0).clamp(1e-9, 1e9)
                if float(step.abs().max()) < 1e-7:  # converged (every person)
                    break
            _, _, J = self._residuals(p, data, False)
            err = ((J - X).norm(dim=-1) * c).sum(1) / norm[:, 0]
            err = torch.where(c.sum(1) > 0, err, torch.full_like(err, float("nan")))
            pose, betas, transl = p[:, :72], p[:, 72:72 + nb], p[:, 72 + nb:]
            joints = self.joints(betas, pose) + transl[:, None]
        return SmplFit(betas=betas, pose=pose, transl=transl, joints=joints, fit_error=err,
                       iterations=done)


def synthetic_people(model: SmplModel, B: int, seed: int):
    """Plausible random SMPL parameters for tests and benchmarks (knees / elbows flexed the
    natural way, two shape components) and their joints in a camera-like frame (z 2..5 m
    ahead): (pose (B, 72), betas (B, 10), transl (B, 3), joints (B, 24, 3) metres), tensors of
    the model's dtype."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.2, (B, 72))
    pose[:, :3] = Rotation.random(B, random_state=seed).as_rotvec()
    pose[:, 12], pose[:, 15] = rng.uniform(0, 1.2, B), rng.uniform(0, 1.2, B)  # knees
    pose[:, 55], pose[:, 58] = -rng.uniform(0, 1.5, B), rng.uniform(0, 1.5, B)  # elbows
    betas = np.zeros((B, 10))
    betas[:, :2] = rng.normal(0, 1, (B, 2))
    transl = np.c_[rng.uniform(-1, 1, B), rng.uniform(-0.5, 0.5, B), rng.uniform(2, 5, B)]
    pose, betas, transl = (torch.tensor(a, dtype=model.v_template.dtype) for a in (pose, betas, transl))
    return pose, betas, transl, model(betas, pose, transl).joints
