"""people_cloud (PointCloud2 for planners): capsule points around the limbs, the message's
standard layout, and pose_node publishing it over real DDS on a real photo.

Oracle: the distance of a point to a segment, written here (clamped projection), and the
PointCloud2 read back through a numpy structured dtype built from the message's fields."""
from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from pose_ros.core.people_cloud import capsule_points, skeleton_surface_points
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.ros.cloud import xyz_cloud


def seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points p (N, 3) to segment a-b."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def decode_xyz(cloud) -> np.ndarray:
    names = [f.name for f in cloud.fields]
    assert names == ["x", "y", "z"] and [f.datatype for f in cloud.fields] == [7, 7, 7]  # FLOAT32
    assert [f.offset for f in cloud.fields] == [0, 4, 8] and not cloud.is_bigendian
    dtype = np.dtype({"names": names, "formats": ["<f4"] * 3, "offsets": [0, 4, 8],
                      "itemsize": cloud.point_step})
    assert cloud.row_step == cloud.point_step * cloud.width and len(cloud.data) == cloud.row_step * cloud.height
    arr = np.frombuffer(bytes(cloud.data), dtype=dtype)
    return np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float64)


def test_capsule_points_lie_on_the_capsule():
    a, b, r = np.array([0.1, -0.2, 2.0]), np.array([0.4, 0.3, 2.2]), 0.07
    pts = capsule_points(a, b, r, spacing=0.03)
    assert np.allclose(seg_dist(pts, a, b), r, atol=1e-9)
    # the whole capsule is covered: along the axis from -r to |ab| + r, all around it
    u = (b - a) / np.linalg.norm(b - a)
    t = (pts - a) @ u
    assert t.min() == pytest.approx(-r) and t.max() == pytest.approx(np.linalg.norm(b - a) + r)
    assert np.diff(np.sort(np.unique(np.round(t, 6)))).max() <= 0.03 + 1e-9
    side = pts[(t > 0) & (t < np.linalg.norm(b - a))] - a
    radial = side - np.outer(side @ u, u)
    ang = np.sort(np.arctan2(radial @ np.cross(u, [1, 0, 0]), radial @ np.cross(u, np.cross(u, [1, 0, 0]))))
    assert np.diff(np.concatenate([ang, [ang[0] + 2 * np.pi]])).max() < 2 * np.pi / 6 + 1e-6


def test_skeleton_points_skip_unusable_limbs():
    pos = np.full((33, 3), np.nan)
    names = BLAZEPOSE_33.names
    pos[names.index("left_shoulder")] = [0.2, -0.4, 3.0]
    pos[names.index("left_elbow")] = [0.3, -0.1, 3.0]
    pos[names.index("left_wrist")] = [0.35, 0.15, 2.9]
    ok = np.ones(33, bool)
    ok[names.index("left_wrist")] = False  # low visibility: its forearm is left out
    pts = skeleton_surface_points(pos, BLAZEPOSE_33, ok, radius=0.05)
    assert pts.dtype == np.float32 and len(pts) > 0
    d = seg_dist(pts.astype(np.float64), pos[names.index("left_shoulder")], pos[names.index("left_elbow")])
    assert np.allclose(d, 0.05, atol=1e-6)  # only the upper arm
    assert skeleton_surface_points(np.full((33, 3), np.nan), BLAZEPOSE_33).shape == (0, 3)


def test_cloud_message_layout():
    h = Header(frame_id="base_link")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    pts = np.array([[1.0, 2.0, 3.0], [np.nan, 0, 0], [-0.5, 0.25, 1e-3]])
    msg = xyz_cloud(h, pts)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("base_link", 12, 345)
    assert (msg.height, msg.width, msg.is_dense) == (1, 2, True)
    assert np.array_equal(decode_xyz(msg), np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 1e-3]], np.float32))
    assert xyz_cloud(h, np.zeros((0, 3))).width == 0


def test_pose_node_publishes_capsules_on_the_photo(models):
    """pose_node on skimage's astronaut: people_cloud stamped and framed like the image, every
    point `people_cloud_radius` from a limb of the skeleton published for the same image, and
    every drawn limb covered."""
    from sensor_msgs.msg import PointCloud2
    from test_node import FRAME, Harness

    from pose_ros.ros.qos import RESULT_QOS

    h = Harness(people_cloud_radius=0.06)
    clouds: list = []
    h.client.create_subscription(PointCloud2, "people_cloud", clouds.append, RESULT_QOS)
    try:
        sent: list = []

        def pair():
            for c in clouds:
                for s in h.got["skeletons"]:
                    if s.header.stamp == c.header.stamp and s.skeletons and c.width:
                        return c, s
            return None

        assert h.until(lambda: pair() is not None, send=lambda: sent.append(h.send()), timeout=90)
        cloud, skel = pair()
        assert cloud.header.frame_id == FRAME and cloud.header.stamp in [x.stamp for x in sent]
        pts = decode_xyz(cloud)
        sk = skel.skeletons[0]
        P = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
        vis = np.array([k.score for k in sk.keypoints]) >= 0.5  # min_keypoint_score default
        usable = [(a, b) for a, b in BLAZEPOSE_33.limbs if vis[a] and vis[b] and np.isfinite(P[[a, b]]).all()]
        assert len(usable) >= 8
        D = np.stack([seg_dist(pts, P[a], P[b]) for a, b in usable], 1)  # N x limbs
        on_some = (np.abs(D - 0.06) < 2e-4).any(1)  # float32 storage
        assert on_some.all(), (~on_some).sum()
        for j, (a, _b) in enumerate(usable):
            assert (np.abs(D[:, j] - 0.06) < 2e-4).sum() >= 12, BLAZEPOSE_33.names[a]
    finally:
        h.close()
