"""Camera intrinsics from a ROS camera_calibration YAML file (ROS-free).

The format camera_calibration / camera_info_manager write (``ost.yaml``)::

    image_width: 640
    image_height: 480
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .camera import CameraModelError, PinholeCamera


def _matrix(doc: dict, key: str, n: int | None, path) -> list | None:
    m = doc.get(key)
    if m is None:
        return None
    data = m.get("data") if isinstance(m, dict) else m
    if not isinstance(data, list) or (n is not None and len(data) != n):
        raise CameraModelError(f"{path}: {key}.data must be a list of {n or 'N'} numbers, got {data!r}")
    return data


def camera_from_yaml(path, rectified: bool = False) -> PinholeCamera:
    """PinholeCamera from a camera_calibration YAML file.

    rectified: the images are rectified (use projection_matrix, ignore the distortion).
    Raises CameraModelError naming the missing / bad field.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CameraModelError(f"cannot read camera info {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise CameraModelError(f"{path} is not a camera_calibration YAML mapping")
    for key in ("image_width", "image_height", "camera_matrix"):
        if key not in doc:
            raise CameraModelError(f"{path} has no {key!r}: not a ROS camera_calibration file "
                                   "(image_width, image_height, camera_matrix, distortion_model, ...)")
    k = _matrix(doc, "camera_matrix", 9, path)
    d = _matrix(doc, "distortion_coefficients", None, path) or []
    p = _matrix(doc, "projection_matrix", 12, path)
    return PinholeCamera.from_camera_info(int(doc["image_width"]), int(doc["image_height"]), k,
                                          np.asarray(d, np.float64),
                                          doc.get("distortion_model", "plumb_bob") or "plumb_bob",
                                          p=p, rectified=rectified)


def camera_from_focal(width: int, height: int, fx: float, fy: float | None = None,
                      cx: float | None = None, cy: float | None = None) -> PinholeCamera:
    """Undistorted camera from focal lengths (px) and principal point (default: image centre)."""
    fy = fx if fy is None else fy
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    return PinholeCamera.from_camera_info(width, height, [fx, 0, cx, 0, fy, cy, 0, 0, 1], [])
