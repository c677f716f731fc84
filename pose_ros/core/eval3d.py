"""3D evaluation on a folder in the MPI-INF-3DHP sample format (ROS-free; ``pose-ros eval3d``).

Folder layout (as mmpose's tests/data/mpi_inf_3dhp):

* images named ``S<s>_Seq<q>_Cam<c>_<frame>.jpg``;
* one ``*.npz`` with ``imgname`` (N,) str, ``S`` (N, 17, 4) joints in the camera frame in
  metres + visibility, optionally ``part`` (N, 17, 3) pixels + visibility;
* optionally ``cameras*.pkl``: dict ``S<s>_Seq<q>_Cam<c>`` -> {``f`` (2, 1), ``c`` (2, 1) px,
  ``R`` (3, 3), ``T`` (3, 1) m with X_cam = R X_world + T; world y up, floor at y = 0}. Read
  with an unpickler that only accepts numpy arrays (no code runs).

Joint order (HP3D_17): head_top, neck, r_shoulder, r_elbow, r_wrist, l_shoulder, l_elbow,
l_wrist, r_hip, r_knee, r_ankle, l_hip, l_knee, l_ankle, root (pelvis), spine, head.
Scored: the 12 limb joints BlazePose shares (shoulders .. ankles); root-relative metrics use
the mid-hip of each pose (BlazePose has no pelvis joint).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics
from .camera import PinholeCamera
from .geometry import Rigid

HP3D_17 = ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
           "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
           "left_knee", "left_ankle", "root", "spine", "head")
SCORED = ("right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
          "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")
HIPS = (SCORED.index("left_hip"), SCORED.index("right_hip"))


@dataclass
class Sample:
    """One evaluation frame. gt: (12, 3) metres, camera frame, SCORED order; visible: (12,)
    bool; camera: intrinsics or None; camera_to_floor: floor (z up, z=0 floor) <- camera, or
    None; center: (2,) px of the person's box centre or None."""

    image: Path
    gt: np.ndarray
    visible: np.ndarray
    camera: PinholeCamera | None
    camera_to_floor: Rigid | None
    center: np.ndarray | None


class _NumpyOnly(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ValueError(f"camera file holds {module}.{name}: only numpy arrays are accepted")
        return super().find_class(module, name)


def load_cameras(path) -> dict:
    """The cameras pickle (numpy arrays only; anything else raises ValueError)."""
    with open(path, "rb") as f:
        cams = _NumpyOnly(f).load()
    if not isinstance(cams, dict):
        raise ValueError(f"{path}: expected a dict of cameras, got {type(cams).__name__}")
    return cams


def floor_from_extrinsics(R: np.ndarray, T: np.ndarray) -> Rigid:
    """camera_to_floor for X_cam = R X_world + T with world y up and the floor at y = 0: floor
    frame x = world x, y = -world z, z = world y (right-handed, z up)."""
    import transforms3d

    M = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # floor <- world
    Rw = np.asarray(R, np.float64).T  # world <- camera
    Rf = M @ Rw
    return Rigid(-(Rf @ np.asarray(T, np.float64).reshape(3)), transforms3d.quaternions.mat2quat(Rf))


def load_folder(folder, camera: PinholeCamera | None = None) -> list[Sample]:
    """Samples of a 3DHP-format folder (see the module docstring). ``camera``: intrinsics for
    every frame when the folder has no cameras pickle (e.g. from --fx/--camera-info).
    Raises FileNotFoundError / ValueError naming what is missing."""
    import cv2

    folder = Path(folder)
    npz = sorted(folder.glob("*.npz"))
    if not npz:
        raise FileNotFoundError(f"no .npz with 3D ground truth (imgname, S) in {folder}")
    data = np.load(npz[0], allow_pickle=False)
    for key in ("imgname", "S"):
        if key not in data.files:
            raise ValueError(f"{npz[0]} has no {key!r} array (have {data.files})")
    S = np.asarray(data["S"], np.float64)
    if S.ndim != 3 or S.shape[1:] != (17, 4):
        raise ValueError(f"{npz[0]}: S must be (N, 17, 4) camera-frame metres + visibility, got {S.shape}")
    pkl = sorted(folder.glob("cameras*.pkl"))
    cams = load_cameras(pkl[0]) if pkl else {}
    idx = [HP3D_17.index(n) for n in SCORED]
    out = []
    for n, name in enumerate(data["imgname"]):
        image = folder / Path(str(name)).name
        if not image.is_file():
            raise FileNotFoundError(f"{image} listed in {npz[0].name} is missing")
        key = "_".join(Path(str(name)).stem.split("_")[:3])
        cam, c2f = camera, None
        if key in cams:
            c = cams[key]
            im = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
            if im is None:
                raise ValueError(f"cannot read image {image}")
            h, w = im.shape[:2]
            f, cc = np.ravel(c["f"]), np.ravel(c["c"])
            cam = PinholeCamera.from_camera_info(w, h, [f[0], 0, cc[0], 0, f[1], cc[1], 0, 0, 1], [])
            if "R" in c and "T" in c:
                c2f = floor_from_extrinsics(c["R"], c["T"])
        center = np.asarray(data["center"][n], np.float64) if "center" in data.files else None
        out.append(Sample(image, S[n, idx, :3], S[n, idx, 3] > 0, cam, c2f, center))
    return out


def blazepose_to_scored(positions: np.ndarray, layout) -> np.ndarray:
    """(K, 3) joints of a BlazePose-33 (or any layout naming these joints) -> (12, 3) SCORED."""
    return np.asarray(positions, np.float64)[[layout.index(n) for n in SCORED]]


def score(preds: list[np.ndarray | None], samples: list[Sample], pck_threshold: float = 0.15) -> dict:
    """Metrics of predictions (each (12, 3) metres, camera frame, SCORED order; None: the
    person was not found) against ``samples``. Millimetres out: abs (absolute camera-frame
    error), mpjpe (mid-hip aligned), pa_mpjpe (Procrustes), pck3d (% within 150 mm, mid-hip
    aligned), found (frames with a prediction) / n."""
    have = [i for i, p in enumerate(preds) if p is not None and np.isfinite(p).all()]
    res = {"found": len(have), "n": len(samples)}
    if not have:
        return {**res, "abs": float("nan"), "mpjpe": float("nan"), "pa_mpjpe": float("nan"),
                "pck3d": float("nan")}
    P = np.stack([preds[i] for i in have]) * 1000
    G = np.stack([samples[i].gt for i in have]) * 1000
    V = np.stack([samples[i].visible for i in have])
    Pr, Gr = metrics.root_relative(P, HIPS), metrics.root_relative(G, HIPS)
    return {**res, "abs": metrics.absolute_error(P, G, V), "mpjpe": metrics.mpjpe(Pr, Gr, V),
            "pa_mpjpe": metrics.pa_mpjpe(P, G, V),
            "pck3d": 100 * metrics.pck3d(Pr, Gr, pck_threshold * 1000, V)}


def pick_person(persons, sample: Sample):
    """The detected person nearest the ground-truth box centre (or the first), or None."""
    if not persons:
        return None
    if sample.center is None:
        return persons[0]
    d = [np.linalg.norm((np.asarray(p.bbox[:2]) + p.bbox[2:]) / 2 - sample.center) for p in persons]
    return persons[int(np.argmin(d))]


#: (label, Composer3D keyword arguments) evaluated by :func:`evaluate_folder`
MODES = (("world_landmarks/pnp", {"mode": "world_landmarks", "orientation": "pnp"}),
         ("world_landmarks/ray", {"mode": "world_landmarks", "orientation": "ray"}),
         ("ground_plane/pnp", {"mode": "ground_plane", "orientation": "pnp"}),
         ("ground_plane/ray", {"mode": "ground_plane", "orientation": "ray"}),
         ("lifter", {"mode": "lifter", "use_floor": False}),
         ("lifter/ground_plane", {"mode": "lifter"}))


def evaluate_folder(samples: list[Sample], persons_per_sample: list[list], modes=MODES) -> dict:
    """Per mode label: :func:`score` of Composer3D's output for the picked person of each sample.
    persons_per_sample: the 2D pipeline's persons for each sample's image. Ground-plane labels
    also report ``on_floor``: frames where the floor was used (else PnP / translation fallback)."""
    from .compose3d import Composer3D

    out = {}
    for label, kw in modes:
        comp = Composer3D(**kw)
        preds, on_floor = [], 0
        for s, persons in zip(samples, persons_per_sample, strict=True):
            p = pick_person(persons, s)
            if p is None or s.camera is None:
                preds.append(None)
                continue
            body = comp.compose(p, s.camera, None, s.camera_to_floor)
            on_floor += body.mode.endswith("ground_plane")
            preds.append(blazepose_to_scored(body.positions, p.layout))
        out[label] = {**score(preds, samples), "on_floor": on_floor}
    return out


def format_table(results: dict) -> str:
    """Plain-text table of :func:`evaluate_folder`'s results."""
    lines = [f"{'mode':22s} {'abs mm':>8s} {'MPJPE':>8s} {'PA-MPJPE':>9s} {'PCK3D%':>7s} "
             f"{'found':>6s} {'floor':>6s}"]
    for label, r in results.items():
        lines.append(f"{label:22s} {r['abs']:8.1f} {r['mpjpe']:8.1f} {r['pa_mpjpe']:9.1f} "
                     f"{r['pck3d']:7.1f} {r['found']:>3d}/{r['n']:<2d} {r['on_floor']:>6d}")
    return "\n".join(lines)
