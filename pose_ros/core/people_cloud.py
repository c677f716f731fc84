"""Body-surface points for planners (the ``people_cloud`` PointCloud2), ROS-free.

Without SMPL: points on capsules around the skeleton's limbs (:func:`skeleton_surface_points`);
with SMPL the mesh vertices are the surface (smpl_node). All points are in the frame of the
3D joints given (metres), float32.
"""
from __future__ import annotations

import numpy as np

from .skeletons import Layout

#: default capsule radius around a limb, m (a forearm is ~0.04, a thigh ~0.08: one radius
#: that keeps a robot's costmap off the whole limb)
DEFAULT_RADIUS = 0.08
#: default spacing of points along and around a capsule, m (a 5 cm voxel layer sees every limb)
DEFAULT_SPACING = 0.05


def capsule_points(a: np.ndarray, b: np.ndarray, radius: float, spacing: float = DEFAULT_SPACING
                   ) -> np.ndarray:
    """Points on the surface of the capsule of ``radius`` (m) around segment a-b.

    a, b: (3,) endpoints (metres). Rings of points around the axis every ``spacing`` metres
    along the cylinder, plus rings on the two hemispherical caps (their poles included), each
    ring with points about ``spacing`` apart. Every point is exactly ``radius`` from the
    segment. Returns (N, 3) float64.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    u = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    # an orthonormal basis (u, e1, e2) around the axis
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    n_around = max(6, int(np.ceil(2 * np.pi * radius / spacing)))
    phi = np.arange(n_around) * (2 * np.pi / n_around)
    ring = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2  # (n, 3) unit
    pts = []
    # 1. cylinder: rings at t in [0, length]
    n_along = max(2, int(np.ceil(length / spacing)) + 1)
    for t in np.linspace(0.0, length, n_along):
        pts.append(a + t * u + radius * ring)
    # 2. caps: rings at polar angles (the equator is the cylinder's end ring), and the poles
    n_polar = max(1, int(np.ceil(0.5 * np.pi * radius / spacing)))
    for k in range(1, n_polar):
        th = 0.5 * np.pi * k / n_polar  # from the equator towards the pole
        for end, sign in ((a, -1.0), (b, 1.0)):
            pts.append(end + sign * radius * np.sin(th) * u + radius * np.cos(th) * ring)
    pts.append(np.stack([a - radius * u, b + radius * u]))
    return np.concatenate(pts)


def skeleton_surface_points(positions: np.ndarray, layout: Layout, ok: np.ndarray | None = None,
                            radius: float = DEFAULT_RADIUS, spacing: float = DEFAULT_SPACING
                            ) -> np.ndarray:
    """Capsule surface points around every limb of one skeleton whose two joints are usable.

    positions: (K, 3) metres in any frame (NaN unknown); layout: its keypoint layout (limbs);
    ok: (K,) bool joints to use (default: finite ones). Returns (N, 3) float32 in that frame.
    """
    p = np.asarray(positions, np.float64)
    use = np.isfinite(p).all(1) if ok is None else (np.asarray(ok, bool) & np.isfinite(p).all(1))
    parts = [capsule_points(p[i], p[j], radius, spacing) for i, j in layout.limbs if use[i] and use[j]]
    return (np.concatenate(parts) if parts else np.zeros((0, 3))).astype(np.float32)
