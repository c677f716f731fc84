"""sensor_msgs/PointCloud2 of xyz points (the ``people_cloud`` topic).

``sensor_msgs_py.point_cloud2.create_cloud_xyz32`` where the distro has it; otherwise the same
layout packed with numpy: fields x, y, z FLOAT32 at offsets 0, 4, 8, count 1, point_step 12,
height 1, width N, little-endian, dense (no NaN points). Nav2's voxel / obstacle layers and
RViz read either.
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

XYZ_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("xyz")]


def _numpy_cloud(header: Header, points: np.ndarray) -> PointCloud2:
    data = np.ascontiguousarray(points, dtype="<f4")
    return PointCloud2(header=header, height=1, width=len(data), fields=list(XYZ_FIELDS),
                       is_bigendian=False, point_step=12, row_step=12 * len(data),
                       data=data.tobytes(), is_dense=True)


def xyz_cloud(header: Header, points: np.ndarray) -> PointCloud2:
    """points: (N, 3) metres in header.frame_id; non-finite rows are dropped."""
    pts = np.asarray(points, np.float32).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    try:
        from sensor_msgs_py.point_cloud2 import create_cloud_xyz32  # a ROS distro package
    except ImportError:
        return _numpy_cloud(header, pts)
    return create_cloud_xyz32(header, pts)


def skeleton_cloud(header: Header, persons, positions, min_score: float, radius: float) -> PointCloud2:
    """people_cloud without SMPL: points on capsules of ``radius`` m around every limb whose
    two joints have a finite position and visibility >= ``min_score``. persons: core Person
    list; positions: per person (K, 3) metres in header.frame_id."""
    from pose_ros.core.people_cloud import skeleton_surface_points

    parts = [skeleton_surface_points(pos, p.layout, np.asarray(p.visibility) >= min_score, radius)
             for p, pos in zip(persons, positions, strict=True)]
    return xyz_cloud(header, np.concatenate(parts) if parts else np.zeros((0, 3), np.float32))
