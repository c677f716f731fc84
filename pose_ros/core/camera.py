"""Pinhole camera from sensor_msgs/CameraInfo fields (ROS-free): x = f X / Z + c.

Pixels: x right, y down; 3D: the camera's optical frame (x right, y down, z forward), metres.
Distortion ``D`` (plumb_bob / rational_polynomial: OpenCV's k1 k2 p1 p2 k3 [k4 k5 k6]) is
honoured through cv2.undistortPoints / cv2.projectPoints. Rectified pipelines
(image_rect, D all zero) work the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class CameraModelError(ValueError):
    """CameraInfo that cannot describe a usable pinhole camera."""


@dataclass(frozen=True)
class PinholeCamera:
    """width, height: px. K: 3 x 3 intrinsics. D: (N,) distortion (N = 0, 4, 5, 8, 12, 14)."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"

    @classmethod
    def from_camera_info(cls, width: int, height: int, k, d, distortion_model: str = "plumb_bob"
                         ) -> PinholeCamera:
        K = np.asarray(k, np.float64).reshape(3, 3)
        D = np.asarray(d, np.float64).reshape(-1)
        if width <= 0 or height <= 0:
            raise CameraModelError(f"CameraInfo has zero size ({width}x{height})")
        if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CameraModelError("camera not calibrated: CameraInfo K has fx/fy <= 0 (all zeros?); "
                                   "calibrate the camera or publish its intrinsics")
        if D.size and distortion_model not in ("plumb_bob", "rational_polynomial", ""):
            raise CameraModelError(f"distortion model {distortion_model!r} unsupported; "
                                   "use plumb_bob or rational_polynomial (or a rectified image)")
        if D.size not in (0, 4, 5, 8, 12, 14) or not np.isfinite(D).all():
            raise CameraModelError(f"CameraInfo D has {D.size} coefficients; need 0, 4, 5, 8, 12 or 14")
        return cls(int(width), int(height), K, D, distortion_model)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def distorted(self) -> bool:
        return bool(self.D.size and np.any(self.D != 0))

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) -> undistorted normalised image coordinates (N, 2): X/Z, Y/Z."""
        pts = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if not self.distorted:
            return ((pts.reshape(-1, 2) - (self.cx, self.cy)) / (self.fx, self.fy))
        return cv2.undistortPoints(pts, self.K, self.D).reshape(-1, 2)

    def backproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) with depth Z (N,) in metres -> 3D points (N, 3) in the optical frame."""
        xy = self.normalized(pixels)
        z = np.asarray(depth, np.float64).reshape(-1)
        return np.column_stack([xy * z[:, None], z])

    def project(self, points: np.ndarray) -> np.ndarray:
        """3D points (N, 3) in the optical frame -> pixels (N, 2) (with distortion)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if not self.distorted:
            return pts[:, :2] / pts[:, 2:3] * (self.fx, self.fy) + (self.cx, self.cy)
        out, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.D)
        return out.reshape(-1, 2)


def default_camera(width: int, height: int, hfov_deg: float = 60.0) -> PinholeCamera:
    """Plausible intrinsics for an uncalibrated webcam / photo: centred, square pixels."""
    f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    return PinholeCamera(width, height, K, np.zeros(5))
