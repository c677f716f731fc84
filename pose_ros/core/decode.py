"""Decoders for heatmap, SimCC, 2.5D/volumetric and bottom-up (PAF) pose network outputs.

Every decoder is an object: settings in ``__init__``, a pure ``__call__`` over numpy arrays of
one image / one crop (no batch axis), returning dataclasses. Conventions:

* Heatmap pixel ``(row i, col j)`` is the point ``x = j, y = i`` in heatmap pixels; ``stride``
  (input pixels per heatmap pixel) maps to network-input pixels by ``x_in = x * stride``
  (mmpose's convention). Top-down crops go back to the image with :func:`crop_to_image`.
* Keypoint arrays are float64 ``(K, 2)`` ``(x, y)`` pixels, scores float64 ``(K,)``; a joint
  that was not found is NaN with score 0.
* Layouts and limbs come from :mod:`pose_ros.core.skeletons` as data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .skeletons import PAF_CHANNELS, Layout


class DecodeError(ValueError):
    """Network output that does not fit the decoder's settings (the message says how to fix it)."""


@dataclass
class Keypoints2D:
    """One person's 2D keypoints. xy: (K, 2) float64 pixels (x right, y down), NaN if missing;
    scores: (K,) float64 confidences (0 if missing); score: person score."""

    xy: np.ndarray
    scores: np.ndarray
    score: float = 0.0


@dataclass
class Keypoints3D:
    """One person's 3D keypoints. xyz: (K, 3) float64 (units: see the decoder: metres in the
    camera optical frame for 2.5D, voxels or grid units for volumetric); xy: (K, 2) pixels
    when the decoder had an image plane, else None; scores: (K,) float64."""

    xyz: np.ndarray
    scores: np.ndarray
    xy: np.ndarray | None = None


@dataclass
class Peaks:
    """Heatmap peaks of one joint type: xy (P, 2) float64 heatmap pixels, scores (P,)."""

    xy: np.ndarray
    scores: np.ndarray


@dataclass
class Person2D(Keypoints2D):
    """A person assembled by the bottom-up decoder: also ``peaks`` (K,) int64, the index of the
    joint's peak in that joint's :class:`Peaks` (-1 if missing), and ``n_parts``."""

    peaks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_parts: int = 0


def _check_maps(a: np.ndarray, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim:
        raise DecodeError(f"{what}: expected {ndim} dims, got shape {a.shape}; pass one image's "
                          "output without the batch axis (e.g. out[0])")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    return a


# ---------------------------------------------------------------------------------------------
# sub-pixel refinement
def parabola_offset(left, centre, right, log_domain: bool = False) -> np.ndarray:
    """Sub-pixel offset of a peak from three samples at -1, 0, +1 (arrays broadcast).

    Vertex of the parabola through the samples: ``0.5 * (l - r) / (l - 2c + r)``. Guarded: where
    the samples are not a strict maximum (curvature >= 0, non-finite) the offset is 0; it is
    clipped to [-0.5, 0.5] (a larger shift would mean the neighbour is the peak). With
    ``log_domain`` the fit is on log(values), exact for Gaussian peaks (values <= 0 give 0).
    """
    left, centre, right = (np.asarray(v, np.float64) for v in (left, centre, right))
    if log_domain:
        ok = (left > 0) & (centre > 0) & (right > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            left, centre, right = (np.where(ok, np.log(np.where(ok, v, 1.0)), 0.0)
                                   for v in (left, centre, right))
    den = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        off = 0.5 * (left - right) / den
    off = np.where((den < -1e-12) & np.isfinite(off), off, 0.0)
    if log_domain:
        off = np.where(ok, off, 0.0)
    return np.clip(off, -0.5, 0.5)


def refine_peaks(heatmap: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 log_domain: bool = False) -> np.ndarray:
    """(P, 2) sub-pixel (x, y) of integer peaks (rows, cols) of one (H, W) heatmap, per axis with
    :func:`parabola_offset`; peaks on the border keep their integer coordinate on that axis."""
    h, w = heatmap.shape
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    xy = np.stack([cols, rows], -1).astype(np.float64)
    c = heatmap[rows, cols]
    inx = (cols > 0) & (cols < w - 1)
    iny = (rows > 0) & (rows < h - 1)
    cl, cr = np.clip(cols - 1, 0, w - 1), np.clip(cols + 1, 0, w - 1)
    ru, rd = np.clip(rows - 1, 0, h - 1), np.clip(rows + 1, 0, h - 1)
    xy[:, 0] += np.where(inx, parabola_offset(heatmap[rows, cl], c, heatmap[rows, cr], log_domain), 0)
    xy[:, 1] += np.where(iny, parabola_offset(heatmap[ru, cols], c, heatmap[rd, cols], log_domain), 0)
    return xy


# ---------------------------------------------------------------------------------------------
# top-down single-person decoders
class HeatmapArgmax:
    """Per-joint argmax of K heatmaps + 3-point parabola sub-pixel refinement.

    refine: ``"parabola"`` (on the values, the classic formula), ``"log_parabola"`` (on log
    values, exact for Gaussian targets) or ``"none"``. stride: input pixels per heatmap pixel.
    threshold: joints whose peak value is below it are NaN (score kept).
    """

    def __init__(self, refine: str = "parabola", stride: float = 1.0, threshold: float = -np.inf):
        if refine not in ("parabola", "log_parabola", "none"):
            raise ValueError(f"refine must be 'parabola', 'log_parabola' or 'none', not {refine!r}")
        self.refine, self.stride, self.threshold = refine, float(stride), float(threshold)

    def __call__(self, heatmaps: np.ndarray) -> Keypoints2D:
        """heatmaps: (K, H, W) float. Returns (K, 2) input pixels and (K,) peak values."""
        hm = _check_maps(heatmaps, 3, "heatmaps (K, H, W)")
        k, h, w = hm.shape
        flat = hm.reshape(k, -1)
        idx = np.argmax(flat, axis=1)
        rows, cols = np.divmod(idx, w)
        scores = flat[np.arange(k), idx].astype(np.float64)
        xy = np.stack([cols, rows], -1).astype(np.float64)
        if self.refine != "none":
            for j in range(k):
                xy[j] = refine_peaks(hm[j], rows[j:j + 1], cols[j:j + 1],
                                     self.refine == "log_parabola")[0]
        xy *= self.stride
        xy[~(scores >= self.threshold) | ~np.isfinite(scores)] = np.nan
        return Keypoints2D(xy, scores, float(np.nanmean(scores)) if k else 0.0)


def _softmax(x: np.ndarray, axis) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


class SoftArgmax2D:
    """Integral (soft-argmax) decoding: expected (x, y) under softmax(beta * heatmap).

    beta: inverse temperature (large -> argmax; for heatmaps already normalised as probabilities
    use ``normalised=True``, which skips the softmax). stride: input pixels per heatmap pixel.
    Scores are the heatmaps' maxima.
    """

    def __init__(self, beta: float = 1.0, stride: float = 1.0, normalised: bool = False):
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta, self.stride, self.normalised = float(beta), float(stride), bool(normalised)

    def __call__(self, heatmaps: np.ndarray) -> Keypoints2D:
        """heatmaps: (K, H, W). Returns (K, 2) input pixels, (K,) max values."""
        hm = _check_maps(heatmaps, 3, "heatmaps (K, H, W)").astype(np.float64)
        k, h, w = hm.shape
        if self.normalised:
            p = hm / hm.sum(axis=(1, 2), keepdims=True)
        else:
            p = _softmax(self.beta * hm.reshape(k, -1), 1).reshape(k, h, w)
        x = (p.sum(axis=1) * np.arange(w)).sum(-1)
        y = (p.sum(axis=2) * np.arange(h)).sum(-1)
        scores = hm.reshape(k, -1).max(1)
        return Keypoints2D(np.stack([x, y], -1) * self.stride, scores, float(scores.mean()) if k else 0.0)


class SimCC:
    """RTMPose SimCC: per-joint argmax over 1D x and y classifications, divided by the split
    ratio (bins per input pixel; RTMPose uses 2.0). Score = min(max_x, max_y) (mmpose's
    ``get_simcc_maximum``); joints with score <= 0 are NaN."""

    def __init__(self, split_ratio: float = 2.0):
        if not split_ratio > 0:
            raise ValueError(f"split_ratio must be > 0, got {split_ratio}")
        self.split_ratio = float(split_ratio)

    def __call__(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> Keypoints2D:
        """simcc_x: (K, W * split_ratio), simcc_y: (K, H * split_ratio). Returns input pixels."""
        sx = _check_maps(simcc_x, 2, "simcc_x (K, Wx)")
        sy = _check_maps(simcc_y, 2, "simcc_y (K, Hy)")
        if sx.shape[0] != sy.shape[0]:
            raise DecodeError(f"simcc_x has {sx.shape[0]} joints but simcc_y {sy.shape[0]}: "
                              "pass the x and y outputs of the same model")
        ix, iy = sx.argmax(1), sy.argmax(1)
        k = np.arange(sx.shape[0])
        scores = np.minimum(sx[k, ix], sy[k, iy]).astype(np.float64)
        xy = np.stack([ix, iy], -1).astype(np.float64) / self.split_ratio
        xy[scores <= 0] = np.nan
        return Keypoints2D(xy, scores, float(scores.mean()) if len(k) else 0.0)


def crop_to_image(xy: np.ndarray, crop_matrix: np.ndarray) -> np.ndarray:
    """Map (..., 2) crop (network input) pixels back to the image.

    crop_matrix: 2 x 3 affine that took image pixels to crop pixels (what was given to
    cv2.warpAffine). Inverted with cv2.invertAffineTransform; NaN stays NaN."""
    m = np.asarray(crop_matrix, np.float64)
    if m.shape != (2, 3):
        raise DecodeError(f"crop_matrix must be 2 x 3 (cv2.warpAffine's matrix), got {m.shape}")
    inv = cv2.invertAffineTransform(m)
    xy = np.asarray(xy, np.float64)
    return xy @ inv[:, :2].T + inv[:, 2]


# ---------------------------------------------------------------------------------------------
# 3D: 2.5D and volumetric
def backproject(xy: np.ndarray, z: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """Pinhole back-projection: X = (x - cx) Z / fx, Y = (y - cy) Z / fy.

    xy: (K, 2) undistorted image pixels; z: (K,) depth along the optical axis (metres);
    camera_matrix: 3 x 3 K. Returns (K, 3) metres in the camera optical frame."""
    km = np.asarray(camera_matrix, np.float64)
    if km.shape != (3, 3) or not km[0, 0] > 0 or not km[1, 1] > 0:
        raise DecodeError(f"camera_matrix must be a 3 x 3 K with fx, fy > 0, got {km.tolist()}")
    xy = np.asarray(xy, np.float64)
    z = np.asarray(z, np.float64)
    x = (xy[:, 0] - km[0, 2]) * z / km[0, 0]
    y = (xy[:, 1] - km[1, 2]) * z / km[1, 1]
    return np.stack([x, y, z], -1)


class Heatmap25D:
    """2.5D decoding: per-joint (x, y) from heatmaps, depth = root depth + relative depth.

    camera_matrix: 3 x 3 K of the image the heatmap coordinates refer to (after ``stride`` and,
    for crops, after :func:`crop_to_image` — pass ``crop_matrix`` to do that here).
    depth_scale: metres per unit of the network's relative depth output.
    refine: as :class:`HeatmapArgmax`.
    """

    def __init__(self, camera_matrix: np.ndarray, stride: float = 1.0, depth_scale: float = 1.0,
                 refine: str = "parabola", crop_matrix: np.ndarray | None = None):
        self.k = np.asarray(camera_matrix, np.float64)
        backproject(np.zeros((1, 2)), np.ones(1), self.k)  # validates K
        self.argmax = HeatmapArgmax(refine=refine, stride=stride)
        self.depth_scale = float(depth_scale)
        self.crop_matrix = None if crop_matrix is None else np.asarray(crop_matrix, np.float64)

    def __call__(self, heatmaps: np.ndarray, rel_depth: np.ndarray, root_depth: float) -> Keypoints3D:
        """heatmaps: (K, H, W); rel_depth: (K,) per-joint depth relative to the root, or (K, H, W)
        depth maps read at each joint's integer peak; root_depth: metres (> 0).
        Returns xyz (K, 3) metres in the camera optical frame, xy (K, 2) image pixels."""
        if not root_depth > 0:
            raise DecodeError(f"root_depth must be > 0 metres, got {root_depth}")
        hm = _check_maps(heatmaps, 3, "heatmaps (K, H, W)")
        kp = self.argmax(hm)
        rel = np.asarray(rel_depth, np.float64)
        if rel.ndim == 3:
            if rel.shape != hm.shape:
                raise DecodeError(f"depth maps {rel.shape} must match heatmaps {hm.shape}")
            flat = hm.reshape(hm.shape[0], -1).argmax(1)
            rel = rel.reshape(hm.shape[0], -1)[np.arange(hm.shape[0]), flat]
        elif rel.shape != (hm.shape[0],):
            raise DecodeError(f"rel_depth must be (K,) or (K, H, W) with K = {hm.shape[0]}, "
                              f"got {rel.shape}")
        xy = kp.xy if self.crop_matrix is None else crop_to_image(kp.xy, self.crop_matrix)
        z = root_depth + self.depth_scale * rel
        return Keypoints3D(backproject(xy, z, self.k), kp.scores, xy)


class SoftArgmax3D:
    """Volumetric integral regression: expected (x, y, z) under softmax(beta * volume).

    volumes: (K, D, H, W) with axes (z, y, x). Output in voxel units (x = W index, y = H index,
    z = D index) mapped by ``origin + voxel_size * voxel`` (defaults: voxels). ``normalised``
    skips the softmax for volumes that already are probabilities."""

    def __init__(self, beta: float = 1.0, origin=(0.0, 0.0, 0.0), voxel_size: float = 1.0,
                 normalised: bool = False):
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta, self.normalised = float(beta), bool(normalised)
        self.origin = np.asarray(origin, np.float64).reshape(3)
        self.voxel_size = float(voxel_size)

    def __call__(self, volumes: np.ndarray) -> Keypoints3D:
        v = _check_maps(volumes, 4, "volumes (K, D, H, W)").astype(np.float64)
        k, d, h, w = v.shape
        if self.normalised:
            p = v / v.sum(axis=(1, 2, 3), keepdims=True)
        else:
            p = _softmax(self.beta * v.reshape(k, -1), 1).reshape(k, d, h, w)
        x = (p.sum(axis=(1, 2)) * np.arange(w)).sum(-1)
        y = (p.sum(axis=(1, 3)) * np.arange(h)).sum(-1)
        z = (p.sum(axis=(2, 3)) * np.arange(d)).sum(-1)
        xyz = self.origin + self.voxel_size * np.stack([x, y, z], -1)
        return Keypoints3D(xyz, v.reshape(k, -1).max(1))


# ---------------------------------------------------------------------------------------------
# bottom-up: peaks + part affinity fields
def find_peaks(heatmap: np.ndarray, threshold: float = 0.1, nms_size: int = 3,
               refine: str = "log_parabola") -> Peaks:
    """Local maxima of one (H, W) heatmap: value >= threshold and equal to the maximum of its
    nms_size x nms_size neighbourhood (scipy.ndimage.maximum_filter); plateaus keep one pixel.
    Sub-pixel refined (see :class:`HeatmapArgmax`). Sorted by score, highest first."""
    hm = np.asarray(heatmap, np.float64)
    from scipy.ndimage import maximum_filter  # lazy: keeps scipy out of the node's start-up

    mx = maximum_filter(hm, size=nms_size, mode="constant", cval=-np.inf)
    peak = (hm == mx) & (hm >= threshold)
    rows, cols = np.nonzero(peak)
    if len(rows) > 1:  # plateau: several equal pixels in one window -> keep the first
        keep, taken = [], np.zeros_like(peak)
        r = nms_size // 2
        for i, j in zip(rows, cols, strict=True):
            if not taken[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1].any():
                keep.append((i, j))
            taken[i, j] = True
        rows, cols = (np.array(v, np.int64) for v in zip(*keep, strict=True))
    scores = hm[rows, cols]
    order = np.argsort(-scores, kind="stable")
    rows, cols, scores = rows[order], cols[order], scores[order]
    xy = (refine_peaks(hm, rows, cols, refine == "log_parabola") if refine != "none"
          else np.stack([cols, rows], -1).astype(np.float64))
    return Peaks(xy.reshape(-1, 2), scores.astype(np.float64))


def _bilinear(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample (C, H, W) at (N, 2) points (x, y), bilinear, clamped to the border -> (N, C)."""
    _, h, w = field.shape
    x = np.clip(xy[:, 0], 0, w - 1)
    y = np.clip(xy[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(len(y), np.int64)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    f = field
    return (f[:, y0, x0] * (1 - fx) * (1 - fy) + f[:, y0, x1] * fx * (1 - fy)
             + f[:, y1, x0] * (1 - fx) * fy + f[:, y1, x1] * fx * fy).T


def limb_scores(paf_x: np.ndarray, paf_y: np.ndarray, a: np.ndarray, b: np.ndarray,
                n_samples: int = 10, paf_threshold: float = 0.05, min_above: float = 0.8,
                max_length: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose limb score for every candidate pair (a_i, b_j).

    paf_x, paf_y: (H, W) PAF components of this limb; a: (Na, 2), b: (Nb, 2) peak (x, y).
    The PAF is sampled (bilinear) at n_samples points evenly from a_i to b_j and dotted with the
    unit vector a_i -> b_j. score = mean(dot) + min(0.5 * max_length / |b_j - a_i| - 1, 0)
    (distance penalty; max_length defaults to the map height). A pair is valid when the fraction
    of samples with dot > paf_threshold is >= min_above and score > 0.
    Returns (Na, Nb) scores and a (Na, Nb) bool validity mask.
    """
    a = np.asarray(a, np.float64).reshape(-1, 2)
    b = np.asarray(b, np.float64).reshape(-1, 2)
    na, nb = len(a), len(b)
    scores = np.full((na, nb), -np.inf)
    valid = np.zeros((na, nb), bool)
    if na == 0 or nb == 0:
        return scores, valid
    field = np.stack([paf_x, paf_y]).astype(np.float64)
    max_len = float(paf_x.shape[0] if max_length is None else max_length)
    t = np.linspace(0.0, 1.0, n_samples)
    d = b[None, :, :] - a[:, None, :]  # (Na, Nb, 2)
    norm = np.linalg.norm(d, axis=-1)
    ok = norm >= 1e-6
    u = d / np.where(ok, norm, 1.0)[..., None]
    pts = a[:, None, None, :] + t[None, None, :, None] * d[:, :, None, :]  # (Na, Nb, S, 2)
    vec = _bilinear(field, pts.reshape(-1, 2)).reshape(na, nb, n_samples, 2)
    dots = (vec * u[:, :, None, :]).sum(-1)  # (Na, Nb, S)
    with np.errstate(divide="ignore"):
        penalty = np.minimum(0.5 * max_len / np.where(ok, norm, 1.0) - 1.0, 0.0)
    s = dots.mean(-1) + penalty
    scores = np.where(ok, s, -np.inf)
    valid = ok & (np.mean(dots > paf_threshold, axis=-1) >= min_above) & (scores > 0)
    return scores, valid


class PafDecoder:
    """OpenPose / trt_pose bottom-up decoding: heatmap peaks, PAF limb scores, per-limb optimal
    assignment (scipy.optimize.linear_sum_assignment), assembly into people.

    layout: the keypoint layout; its ``limbs`` are the PAF limbs in channel order.
    paf_channels: (L, 2) PAF channel indices (x, y) per limb; default ``PAF_CHANNELS[layout]`` if
        the layout has one (OpenPose's POSE_MAP_INDEX) else (2l, 2l + 1).
    peak_threshold, nms_size: peak detection (OpenPose: 0.05, 3).
    n_samples, paf_threshold, min_above: limb criterion (see :func:`limb_scores`).
    min_parts, min_score: drop people with fewer joints or a lower mean (peak + limb) score
        (OpenPose: 3, 0.4).
    stride: input pixels per heatmap pixel (output in input pixels).
    """

    def __init__(self, layout: Layout, paf_channels=None, peak_threshold: float = 0.1,
                 nms_size: int = 3, n_samples: int = 10, paf_threshold: float = 0.05,
                 min_above: float = 0.8, min_parts: int = 3, min_score: float = 0.4,
                 stride: float = 1.0, refine: str = "log_parabola"):
        self.layout = layout
        limbs = np.asarray(layout.limbs, np.int64).reshape(-1, 2)
        if paf_channels is None:
            paf_channels = PAF_CHANNELS.get(layout.name,
                                            [(2 * i, 2 * i + 1) for i in range(len(limbs))])
        ch = np.asarray(paf_channels, np.int64).reshape(-1, 2)
        if len(ch) != len(limbs):
            raise ValueError(f"paf_channels has {len(ch)} limbs but layout {layout.name} has "
                             f"{len(limbs)}; give one (x, y) channel pair per limb")
        self.limbs, self.paf_channels = limbs, ch
        self.peak_threshold, self.nms_size, self.refine = float(peak_threshold), int(nms_size), refine
        self.n_samples, self.paf_threshold = int(n_samples), float(paf_threshold)
        self.min_above, self.min_parts, self.min_score = float(min_above), int(min_parts), float(min_score)
        self.stride = float(stride)

    def peaks(self, heatmaps: np.ndarray) -> list[Peaks]:
        """Per-joint peaks of (K, H, W) heatmaps, in heatmap pixels."""
        return [find_peaks(h, self.peak_threshold, self.nms_size, self.refine) for h in heatmaps]

    def connections(self, peaks: list[Peaks], pafs: np.ndarray) -> list[np.ndarray]:
        """Per limb an (M, 3) array of (peak index a, peak index b, limb score), chosen by
        linear_sum_assignment over the valid candidate pairs (maximum total score)."""
        from scipy.optimize import linear_sum_assignment

        out = []
        h = pafs.shape[1]
        for (ja, jb), (cx, cy) in zip(self.limbs, self.paf_channels, strict=True):
            s, ok = limb_scores(pafs[cx], pafs[cy], peaks[ja].xy, peaks[jb].xy, self.n_samples,
                                self.paf_threshold, self.min_above, h)
            if not ok.any():
                out.append(np.zeros((0, 3)))
                continue
            cost = np.where(ok, -s, 1e6)
            ri, ci = linear_sum_assignment(cost)
            keep = ok[ri, ci]
            out.append(np.column_stack([ri[keep], ci[keep], s[ri, ci][keep]]))
        return out

    def __call__(self, heatmaps: np.ndarray, pafs: np.ndarray) -> list[Person2D]:
        """heatmaps: (K, H, W) part confidence maps (extra channels, e.g. OpenPose's background,
        are ignored); pafs: (C, H, W) PAF channels. Returns people sorted by score."""
        hm = _check_maps(heatmaps, 3, "heatmaps (K, H, W)")
        pf = _check_maps(pafs, 3, "pafs (2L, H, W)")
        k = len(self.layout)
        if hm.shape[0] < k:
            raise DecodeError(f"heatmaps have {hm.shape[0]} channels but layout {self.layout.name} "
                              f"has {k} joints; check the model spec's output layout")
        if pf.shape[0] <= self.paf_channels.max() or pf.shape[1:] != hm.shape[1:]:
            raise DecodeError(f"pafs {pf.shape} do not fit heatmaps {hm.shape} and "
                              f"{len(self.limbs)} limbs (need {self.paf_channels.max() + 1} "
                              "channels of the same size); check the model spec's output layout")
        peaks = self.peaks(hm[:k])
        conns = self.connections(peaks, pf)
        return self.assemble(peaks, conns)

    def assemble(self, peaks: list[Peaks], conns: list[np.ndarray]) -> list[Person2D]:
        """Join limb connections into people: a connection extends the person that already owns
        one of its joints; two people sharing no joint type are merged when a limb links them;
        otherwise it starts a new person. Then the min_parts / min_score filter."""
        k = len(self.layout)
        people: list[dict] = []  # joints (K,) peak idx, total score
        for (ja, jb), cn in zip(self.limbs, conns, strict=True):
            for ia, ib, s in cn:
                ia, ib = int(ia), int(ib)
                found = [p for p in people if p["j"][ja] == ia or p["j"][jb] == ib]
                if len(found) == 1:
                    p = found[0]
                    for jj, ii in ((ja, ia), (jb, ib)):
                        if p["j"][jj] < 0:
                            p["j"][jj] = ii
                            p["s"] += peaks[jj].scores[ii] + s
                elif len(found) == 2:
                    p1, p2 = found
                    if not ((p1["j"] >= 0) & (p2["j"] >= 0)).any():
                        m = p2["j"] >= 0
                        p1["j"][m] = p2["j"][m]
                        p1["s"] += p2["s"] + s
                        people = [q for q in people if q is not p2]
                else:
                    j = np.full(k, -1, np.int64)
                    j[ja], j[jb] = ia, ib
                    people.append({"j": j, "s": peaks[ja].scores[ia] + peaks[jb].scores[ib] + s})
        out = []
        for p in people:
            n = int((p["j"] >= 0).sum())
            if n < self.min_parts or p["s"] / n < self.min_score:
                continue
            xy = np.full((k, 2), np.nan)
            sc = np.zeros(k)
            for jj in np.nonzero(p["j"] >= 0)[0]:
                xy[jj] = peaks[jj].xy[p["j"][jj]] * self.stride
                sc[jj] = peaks[jj].scores[p["j"][jj]]
            out.append(Person2D(xy, sc, float(p["s"] / n), p["j"].copy(), n))
        out.sort(key=lambda q: -q.score)
        return out
