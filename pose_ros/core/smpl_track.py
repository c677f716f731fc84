"""SMPL bodies per tracked person: warm-started fitting, posed meshes, mesh decimation, mesh files.

What ``smpl_node`` and ``pose-ros infer --smpl`` share (ROS-free; torch + numpy):

* :class:`SmplTracker` fits :class:`~pose_ros.core.smpl.SmplFitter` to each person's 3D
  keypoints, warm-started from the previous fit of the same track id (state of tracks that
  vanished is dropped), and poses the mesh (:class:`TrackedBodies`).
* :func:`decimate_faces`: a coarser face set over the same vertices (vertex clustering on the
  rest mesh, computed once), for RViz markers (full SMPL: 13776 faces per person).
* :func:`write_obj` / :func:`write_ply`: one mesh per file (Wavefront OBJ, ASCII PLY).

Frames: everything is in the keypoints' frame (e.g. the camera optical frame, metres).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .smpl import SMPL_JOINT_NAMES, SmplFit, SmplFitter, SmplModel, SmplModelError


def load_model(model_path: str = "", gender: str = "neutral") -> SmplModel:
    """The official SMPL model at ``model_path`` (.pkl / .npz / folder), or the built-in body
    (NOT SMPL) when ``model_path`` is empty or 'builtin'. Raises FileNotFoundError /
    SmplModelError with the fix in the message."""
    if not model_path or model_path == "builtin":
        return SmplModel.builtin()
    return SmplModel.from_file(model_path, gender)


@dataclass
class TrackedBodies:
    """Fitted bodies of one frame, in the keypoints' frame (metres), one row per person.

    ids: (B,) int track ids (input order); betas: (B, NB); pose: (B, 72) axis-angle, radians,
    root first; transl: (B, 3); fit_error: (B,) mean weighted joint residual, m (NaN: no
    usable keypoints); joints: (B, 24, 3); joint_transforms: (B, 24, 4, 4) joint frames
    (rotation: frame <- joint, translation = joint position); vertices: (B, V, 3) float32;
    warm: (B,) bool, True where the fit started from the previous frame of the track.
    """

    ids: np.ndarray
    betas: np.ndarray
    pose: np.ndarray
    transl: np.ndarray
    fit_error: np.ndarray
    joints: np.ndarray
    joint_transforms: np.ndarray
    vertices: np.ndarray
    warm: np.ndarray


class SmplTracker:
    """Fit SMPL per track id with a warm start from that track's previous frame.

    model: :class:`SmplModel`; cold_iters / warm_iters: Levenberg-Marquardt iterations
    without / with a previous fit; max_fit_error: a fit worse than this (metres) is not kept
    as a warm start (the next frame starts cold). Fitters are made per keypoint layout.
    """

    def __init__(self, model: SmplModel, cold_iters: int = 30, warm_iters: int = 8,
                 max_fit_error: float = 0.15) -> None:
        self.model = model
        self.cold_iters, self.warm_iters = cold_iters, warm_iters
        self.max_fit_error = max_fit_error
        self._fitters: dict[tuple[str, ...], SmplFitter] = {}
        self._prev: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 vertex indices of the model's triangles."""
        return self.model.faces.cpu().numpy()

    @property
    def tracks(self) -> list[int]:
        """Track ids with a warm start for the next frame."""
        return sorted(self._prev)

    def reset(self) -> None:
        self._prev.clear()

    def fitter(self, layout_names) -> SmplFitter:
        key = tuple(layout_names)
        if key not in self._fitters:
            self._fitters[key] = SmplFitter(self.model, key, cold_iters=self.cold_iters,
                                            warm_iters=self.warm_iters)
        return self._fitters[key]

    def forget_except(self, ids) -> None:
        """Drop the warm starts of every track not in ``ids`` (vanished people)."""
        keep = {int(i) for i in ids}
        self._prev = {i: v for i, v in self._prev.items() if i in keep}

    def update(self, ids, layout_names, keypoints: np.ndarray, confidence: np.ndarray,
               with_vertices: bool = True, forget_others: bool = True) -> TrackedBodies:
        """Fit this frame's persons and (``forget_others``) forget the tracks not in it.

        ids: (B,) track ids; layout_names: the keypoint layout's names (N); keypoints: (B, N, 3)
        metres (NaN unknown); confidence: (B, N) in [0, 1].
        """
        ids = np.asarray(ids, np.int64).reshape(-1)
        X = np.asarray(keypoints, np.float64)
        c = np.asarray(confidence, np.float64)
        B = len(ids)
        if X.shape[:1] != (B,) or c.shape != X.shape[:2]:
            raise ValueError(f"keypoints must be B x N x 3 and confidence B x N for B={B} ids, got "
                             f"{X.shape} and {c.shape}")
        if forget_others:
            self.forget_except(ids)
        dt = self.model.v_template.dtype
        nb = self.model.num_betas
        if B == 0:
            z = np.zeros
            return TrackedBodies(ids=ids, betas=z((0, nb)), pose=z((0, 72)), transl=z((0, 3)),
                                 fit_error=z(0), joints=z((0, 24, 3)), joint_transforms=z((0, 24, 4, 4)),
                                 vertices=z((0, self.model.v_template.shape[0], 3), np.float32),
                                 warm=z(0, bool))
        fitter = self.fitter(layout_names)
        betas = torch.zeros(B, nb, dtype=dt)
        pose = torch.zeros(B, 72, dtype=dt)
        transl = torch.zeros(B, 3, dtype=dt)
        err = torch.full((B,), float("nan"), dtype=dt)
        warm = np.array([int(i) in self._prev for i in ids], bool)
        Xt, ct = torch.as_tensor(X, dtype=dt), torch.as_tensor(c, dtype=dt)
        for sel, is_warm in ((np.flatnonzero(warm), True), (np.flatnonzero(~warm), False)):
            if not len(sel):
                continue
            init = None
            if is_warm:
                prev = [self._prev[int(ids[k])] for k in sel]
                init = SmplFit(betas=torch.stack([p[0] for p in prev]), pose=torch.stack([p[1] for p in prev]),
                               transl=torch.stack([p[2] for p in prev]), joints=torch.empty(0),
                               fit_error=torch.empty(0), iterations=0)
            fit = fitter.fit(Xt[sel], ct[sel], init=init)
            idx = torch.as_tensor(sel)
            betas[idx], pose[idx], transl[idx], err[idx] = fit.betas, fit.pose, fit.transl, fit.fit_error
        for k, i in enumerate(ids.tolist()):
            e = float(err[k])
            if np.isfinite(e) and e <= self.max_fit_error:
                self._prev[i] = (betas[k].clone(), pose[k].clone(), transl[k].clone())
            else:
                self._prev.pop(i, None)
        with torch.no_grad():
            out = self.model(betas, pose, transl)
        return TrackedBodies(
            ids=ids, betas=betas.numpy(), pose=pose.numpy(), transl=transl.numpy(), fit_error=err.numpy(),
            joints=out.joints.numpy(), joint_transforms=out.joint_transforms.numpy(),
            vertices=(out.vertices.numpy().astype(np.float32) if with_vertices
                      else np.zeros((B, 0, 3), np.float32)),
            warm=warm)


def _cluster_faces(vertices: np.ndarray, faces: np.ndarray, cell: float) -> np.ndarray:
    """Vertex clustering: one representative vertex (the first) per cubic cell of side
    ``cell`` metres; faces re-indexed to representatives; degenerate (repeated or collinear
    corners: area <= 1e-10 m^2 on the rest mesh) and duplicate faces dropped."""
    keys = np.floor(vertices / cell).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    f = first[inverse.reshape(-1)][faces]
    t = vertices[f]
    area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]) & (area > 1e-10)]
    _, keep = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return f[np.sort(keep)]


def decimate_faces(vertices: np.ndarray, faces: np.ndarray, factor: int) -> np.ndarray:
    """A coarser triangle set over the same vertices, with about ``len(faces) / factor`` faces.

    vertices: (V, 3) rest-pose vertices (metres); faces: (F, 3) int. Vertex clustering on the
    rest mesh (cell size found by bisection): the result indexes only original vertices, so it
    is computed once and reused for every posed mesh of the model. ``factor`` 1 returns the
    faces unchanged. Returns (F', 3) int64, F' ~ F / factor, no degenerate triangle.
    """
    faces = np.asarray(faces, np.int64)
    if factor < 1:
        raise ValueError(f"mesh decimation factor must be >= 1, got {factor}")
    if factor == 1:
        return faces
    target = len(faces) / factor
    v = np.asarray(vertices, np.float64)
    lo, hi = 1e-4, float(np.ptp(v, axis=0).max())
    best = _cluster_faces(v, faces, hi)
    for _ in range(25):
        mid = (lo * hi) ** 0.5
        f = _cluster_faces(v, faces, mid)
        if len(f) > target:
            lo = mid
        else:
            hi, best = mid, f
        if abs(len(f) - target) <= 0.05 * target:
            return f
    return best


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, comment: str = "") -> Path:
    """Wavefront OBJ: ``v x y z`` lines (metres) and ``f i j k`` (1-based) triangles."""
    path = Path(path)
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces, np.int64)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """ASCII PLY: float x y z vertices (metres) and uchar-counted int vertex_indices faces."""
    path = Path(path)
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    head = ["ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x",
            "property float y", "property float z", f"element face {len(f)}",
            "property list uchar int vertex_indices", "end_header"]
    body = [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(head + body) + "\n")
    return path


class SmplExporter:
    """``pose-ros infer --smpl``: fit each person of a frame (warm start along a video's track)
    and write one mesh file per person.

    out_dir: folder of the mesh files; mesh_format: 'obj' or 'ply'; min_score: keypoints with a
    lower visibility are ignored; min_keypoints: usable 3D keypoints needed to fit a person.
    """

    def __init__(self, model_path: str = "", gender: str = "neutral", out_dir: str | Path = ".",
                 mesh_format: str = "obj", min_score: float = 0.2, min_keypoints: int = 6) -> None:
        if mesh_format not in ("obj", "ply"):
            raise ValueError(f"mesh format must be obj or ply, got {mesh_format!r}")
        self.tracker = SmplTracker(load_model(model_path, gender))
        self.model_name = str(model_path) if model_path and model_path != "builtin" else "builtin (NOT SMPL)"
        self.out_dir, self.mesh_format = Path(out_dir), mesh_format
        self.min_score, self.min_keypoints = min_score, min_keypoints

    def reset(self) -> None:
        """A new file: no warm start carries over."""
        self.tracker.reset()

    def export(self, stem: str, frame: int, persons, positions) -> list[dict | None]:
        """Fit and write meshes for one frame.

        persons: core Person list; positions: per person (K, 3) metres in the camera optical
        frame (NaN unknown). Returns per person a JSON-ready dict (model, betas, pose axis-angle
        radians root first, transl m, fit_error_m, warm, mesh file, vertex / face counts) or
        None when the person has fewer than ``min_keypoints`` usable 3D keypoints.
        """
        out: list[dict | None] = [None] * len(persons)
        groups: dict[tuple[str, ...], list[int]] = {}
        conf = []
        for k, (p, pos) in enumerate(zip(persons, positions, strict=True)):
            c = np.where(np.asarray(p.visibility, np.float64) >= self.min_score,
                         np.clip(np.asarray(p.visibility, np.float64), 0, 1), 0.0)
            c[~np.isfinite(np.asarray(pos, np.float64)).all(1)] = 0.0
            conf.append(c)
            if int((c > 0).sum()) >= self.min_keypoints:
                groups.setdefault(tuple(p.layout.names), []).append(k)
        self.tracker.forget_except([persons[k].track_id for ks in groups.values() for k in ks])
        faces = self.tracker.faces
        for names, ks in groups.items():
            bodies = self.tracker.update([persons[k].track_id for k in ks], names,
                                         np.stack([positions[k] for k in ks]), np.stack([conf[k] for k in ks]),
                                         forget_others=False)
            for j, k in enumerate(ks):
                self.out_dir.mkdir(parents=True, exist_ok=True)
                path = self.out_dir / f"{stem}_{frame:05d}_id{persons[k].track_id}_smpl.{self.mesh_format}"
                if self.mesh_format == "obj":
                    write_obj(path, bodies.vertices[j], faces, f"pose_ros SMPL fit, model {self.model_name}\n"
                              "metres, camera optical frame (x right, y down, z forward)")
                else:
                    write_ply(path, bodies.vertices[j], faces)
                out[k] = {"model": self.model_name,
                          "betas": [round(float(v), 6) for v in bodies.betas[j]],
                          "pose": [round(float(v), 6) for v in bodies.pose[j]],
                          "transl": [round(float(v), 6) for v in bodies.transl[j]],
                          "fit_error_m": round(float(bodies.fit_error[j]), 6), "warm": bool(bodies.warm[j]),
                          "mesh": str(path), "vertices": int(bodies.vertices.shape[1]), "faces": len(faces)}
        return out


__all__ = ["SMPL_JOINT_NAMES", "SmplExporter", "SmplModelError", "SmplTracker", "TrackedBodies", "decimate_faces",
           "load_model", "write_obj", "write_ply"]
