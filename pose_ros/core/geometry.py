"""Rigid transforms (ROS-free): translation (3,) metres + unit quaternion (4,) w, x, y, z."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import transforms3d


@dataclass(frozen=True)
class Rigid:
    """x_parent = R(q) x_child + t: the pose of the child frame in the parent frame."""

    t: np.ndarray
    q: np.ndarray

    @classmethod
    def identity(cls) -> Rigid:
        return cls(np.zeros(3), np.array([1.0, 0, 0, 0]))

    @property
    def R(self) -> np.ndarray:
        return transforms3d.quaternions.quat2mat(self.q)

    def __matmul__(self, other: Rigid) -> Rigid:
        """self @ other: first other, then self (parent <- self.child == other.parent <- child)."""
        return Rigid(self.R @ other.t + self.t, transforms3d.quaternions.qmult(self.q, other.q))

    def inverse(self) -> Rigid:
        qi = transforms3d.quaternions.qinverse(self.q)
        return Rigid(-(transforms3d.quaternions.quat2mat(qi) @ self.t), qi)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the child frame -> parent frame (NaN rows stay NaN)."""
        return np.asarray(points, np.float64) @ self.R.T + self.t


def align_z_to(r: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors -> (n, 3, 3) minimal rotations taking (0, 0, 1) to each r (Rodrigues
    about z x r; identity for r = z)."""
    axis = np.cross(np.array([0.0, 0.0, 1.0]), r)
    s = np.linalg.norm(axis, axis=1)
    c = r[:, 2]
    k = axis / np.maximum(s, 1e-12)[:, None]
    Kx = np.zeros((len(r), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx[:, 1, 0], Kx[:, 2, 0], Kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    return np.eye(3) + s[:, None, None] * Kx + (1 - c)[:, None, None] * (Kx @ Kx)
