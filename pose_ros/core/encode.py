"""Training targets for heatmap, SimCC, PAF and volumetric pose networks (numpy, ROS-free).

Same pixel convention as :mod:`pose_ros.core.decode`: heatmap pixel (row i, col j) is the point
(x = j, y = i); keypoints are given in heatmap pixels (divide input pixels by the stride first).
People are ``(N, K, 2)`` float arrays; missing joints are NaN (or masked by ``visible``).
"""
from __future__ import annotations

import numpy as np


def _people(points: np.ndarray, visible: np.ndarray | None, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(points, np.float64)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[-1] != dims:
        raise ValueError(f"keypoints must be (K, {dims}) or (N, K, {dims}), got {np.shape(points)}")
    vis = np.isfinite(p).all(-1)
    if visible is not None:
        v = np.asarray(visible, bool)
        vis &= v.reshape(p.shape[:2]) if v.size == vis.size else v
    return p, vis


def gaussian_heatmaps(keypoints: np.ndarray, size: tuple[int, int], sigma: float = 2.0,
                      visible: np.ndarray | None = None) -> np.ndarray:
    """K Gaussian belief maps: exp(-|p - c|^2 / (2 sigma^2)) at every pixel centre p, the
    maximum over people (so close people keep separate peaks).

    keypoints: (K, 2) or (N, K, 2) heatmap pixels (x, y); size: (H, W); sigma in heatmap pixels;
    visible: optional (K,) / (N, K) bool. Returns (K, H, W) float32 in [0, 1]."""
    p, vis = _people(keypoints, visible)
    h, w = size
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    out = np.zeros((p.shape[1], h, w), np.float64)
    for n in range(p.shape[0]):
        for k in np.nonzero(vis[n])[0]:
            gx = np.exp(-((xs - p[n, k, 0]) ** 2) / (2 * sigma**2))
            gy = np.exp(-((ys - p[n, k, 1]) ** 2) / (2 * sigma**2))
            np.maximum(out[k], gy[:, None] * gx[None, :], out=out[k])
    return out.astype(np.float32)


def paf_fields(keypoints: np.ndarray, limbs, size: tuple[int, int], width: float = 1.0,
               visible: np.ndarray | None = None) -> np.ndarray:
    """Part affinity fields: for limb l of a person with joints a -> b, the unit vector
    (b - a) / |b - a| at every pixel p with 0 <= (p - a) . u <= |b - a| and perpendicular
    distance |(p - a) x u| <= width; zero elsewhere; averaged over the people whose limb covers a
    pixel (OpenPose).

    keypoints: (K, 2) / (N, K, 2) heatmap pixels; limbs: (L, 2) joint index pairs; size (H, W);
    width: half-width of the band in heatmap pixels. Returns (2L, H, W) float32, channels
    (2l, 2l + 1) = (x, y) of limb l."""
    p, vis = _people(keypoints, visible)
    limbs = np.asarray(limbs, np.int64).reshape(-1, 2)
    h, w = size
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((2 * len(limbs), h, w), np.float64)
    for li, (ja, jb) in enumerate(limbs):
        acc = np.zeros((2, h, w))
        cnt = np.zeros((h, w))
        for n in range(p.shape[0]):
            if not (vis[n, ja] and vis[n, jb]):
                continue
            a, b = p[n, ja], p[n, jb]
            d = b - a
            length = np.hypot(*d)
            if length < 1e-9:
                continue
            u = d / length
            rx, ry = gx - a[0], gy - a[1]
            along = rx * u[0] + ry * u[1]
            perp = np.abs(rx * u[1] - ry * u[0])
            m = (along >= 0) & (along <= length) & (perp <= width)
            acc[0][m] += u[0]
            acc[1][m] += u[1]
            cnt[m] += 1
        nz = cnt > 0
        out[2 * li][nz] = acc[0][nz] / cnt[nz]
        out[2 * li + 1][nz] = acc[1][nz] / cnt[nz]
    return out.astype(np.float32)


def simcc_targets(keypoints: np.ndarray, size: tuple[int, int], split_ratio: float = 2.0,
                  sigma: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """RTMPose SimCC labels of one person: 1D Gaussians over W * split_ratio x-bins and
    H * split_ratio y-bins centred at x * split_ratio, y * split_ratio.

    keypoints: (K, 2) input pixels; size: (H, W) input size; sigma in bins.
    Returns (K, Wx) and (K, Hy) float32 (peak 1; NaN joints give zero rows)."""
    p = np.asarray(keypoints, np.float64).reshape(-1, 2)
    h, w = size
    bx = np.arange(int(round(w * split_ratio)), dtype=np.float64)
    by = np.arange(int(round(h * split_ratio)), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tx = np.exp(-((bx[None] - p[:, :1] * split_ratio) ** 2) / (2 * sigma**2))
        ty = np.exp(-((by[None] - p[:, 1:] * split_ratio) ** 2) / (2 * sigma**2))
    return np.nan_to_num(tx).astype(np.float32), np.nan_to_num(ty).astype(np.float32)


def volumetric_targets(points: np.ndarray, shape: tuple[int, int, int], sigma: float = 1.5) -> np.ndarray:
    """3D Gaussian targets: (K, D, H, W) volumes with axes (z, y, x), peak 1 at each joint.

    points: (K, 3) voxel coordinates (x, y, z); shape: (D, H, W); sigma in voxels."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    d, h, w = shape
    out = np.zeros((len(p), d, h, w), np.float32)
    for k, (x, y, z) in enumerate(p):
        if not np.isfinite([x, y, z]).all():
            continue
        gx = np.exp(-((np.arange(w) - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((np.arange(h) - y) ** 2) / (2 * sigma**2))
        gz = np.exp(-((np.arange(d) - z) ** 2) / (2 * sigma**2))
        out[k] = gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    return out
