"""Multi-camera fusion core (pose_ros/core/multiview.py): association, weighted DLT + RANSAC over
views, distortion, dropout, StampGrouper.

Oracles: the known 3D truth (synthetic3d.standing_body placed in a world frame), OpenCV
(cv2.triangulatePoints on K [R | t], cv2.projectPoints with the distortion coefficients to
make the 2D), never a round trip through the code under test.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import transforms3d

from pose_ros.core.camera import PinholeCamera
from pose_ros.core.geometry import Rigid
from pose_ros.core.multiview import Detection2D, MultiViewError, MultiViewFuser, StampGrouper, View
from pose_ros.core.synthetic3d import standing_body

K_MAT = np.array([[900.0, 0, 640], [0, 900, 480], [0, 0, 1]])
PINHOLE = PinholeCamera(1280, 960, K_MAT, np.zeros(0))
PLUMB_BOB = np.array([-0.28, 0.09, 0.0012, -0.0008, -0.012])  # a wide-angle webcam's k1 k2 p1 p2 k3
# noisy 2D (sigma = 2 px, 3 cameras 4 m away, f = 900 px): stated bounds on the joint error
NOISE_MEAN_MM, NOISE_MAX_MM = 12.0, 45.0


def look_at(eye, target=(0.0, 0.0, 1.0)) -> Rigid:
    """world_from_camera of an optical frame at eye looking at target (world z up)."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return Rigid(eye, transforms3d.quaternions.mat2quat(np.column_stack([x, np.cross(z, x), z])))


def rig(n=3, radius=4.0, height=2.0, camera=PINHOLE, start_deg=0.0, aim=(0.0, 0.0, 1.0)) -> list[View]:
    """n cameras evenly on a circle around the origin, looking at ``aim``."""
    angles = np.radians(start_deg + np.arange(n) * 360.0 / n)
    return [View(f"cam{i}", camera, look_at((radius * np.cos(a), radius * np.sin(a), height), aim))
            for i, a in enumerate(angles)]


def person(yaw_deg=0.0, x=0.0, y=0.0) -> np.ndarray:
    """(33, 3) BlazePose joints of a standing person on the floor (world z up), metres."""
    R = transforms3d.axangles.axangle2mat([0, 0, 1], np.radians(yaw_deg))
    return standing_body() @ R.T + (x, y, 0.0)


def cv2_pixels(view: View, pts: np.ndarray) -> np.ndarray:
    """Independent projection: cv2.projectPoints with the world->camera pose and K, D."""
    inv = view.world_from_camera.inverse()
    rvec = cv2.Rodrigues(inv.R)[0]
    D = view.camera.D if view.camera.D.size else np.zeros(5)
    px, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, inv.t.astype(np.float64), view.camera.K, D)
    return px.reshape(-1, 2)


def observe(views, people, noise_px=0.0, rng=None) -> list[list[Detection2D]]:
    rng = rng or np.random.default_rng(0)
    out = []
    for v in views:
        dets = []
        for p in people:
            kp = cv2_pixels(v, p) + rng.normal(0.0, noise_px, (len(p), 2)) * (noise_px > 0)
            dets.append(Detection2D(kp, np.ones(len(p))))
        out.append(dets)
    return out


def joint_error(fused, truth) -> np.ndarray:
    return np.linalg.norm(fused.positions - truth, axis=1)


def test_exact_2d_recovers_joints_to_sub_millimetre():
    views, truth = rig(), person(30.0, 0.3, -0.2)
    (p,) = MultiViewFuser().fuse(views, observe(views, [truth]))
    assert p.members == [(0, 0), (1, 0), (2, 0)]
    assert joint_error(p, truth).max() < 1e-3
    assert (p.n_views == 3).all()
    assert np.nanmax(p.reprojection_px) < 1e-3
    assert p.confidence == pytest.approx(np.ones(33)) and p.score == pytest.approx(1.0)


def test_two_views_equal_confidence_match_cv2_triangulate_points():
    """With 2 undistorted views and equal confidences the weighted DLT is OpenCV's DLT (the
    cameras differ: 900 px vs 600 px focal length, so the pixel scaling of the rows matters)."""
    other = np.array([[600.0, 0, 300], [0, 610, 250], [0, 0, 1]])
    a, b = rig(3, start_deg=20.0)[:2]  # 120 deg apart
    views, truth = [a, View("b", PinholeCamera(640, 480, other, np.zeros(0)), b.world_from_camera)], person(10.0)
    dets = observe(views, [truth], noise_px=3.0, rng=np.random.default_rng(4))
    (p,) = MultiViewFuser(ransac=False).fuse(views, dets)
    Ps = []
    for v in views:
        inv = v.world_from_camera.inverse()
        Ps.append(v.camera.K @ np.column_stack([inv.R, inv.t]))  # from Rigid.inverse, not the code under test
    h = cv2.triangulatePoints(Ps[0], Ps[1], dets[0][0].keypoints.T, dets[1][0].keypoints.T)
    oracle = (h[:3] / h[3]).T
    np.testing.assert_allclose(p.positions, oracle, atol=1e-6)
    assert 1e-3 < joint_error(p, truth).mean() < 0.05  # the noise is there, the answers agree


def test_confidence_weighting_prefers_the_confident_views():
    """A view with a biased keypoint and low confidence moves the point less than at full
    confidence (weighted vs unweighted DLT; the 3D truth is the oracle)."""
    views, truth = rig(3), person(0.0)
    dets = observe(views, [truth])
    dets[2][0].keypoints[0] += (8.0, 0.0)  # 8 px: inside inlier_px, so RANSAC keeps the view
    full = MultiViewFuser().fuse(views, dets)[0]
    dets[2][0].confidence[0] = 0.35
    low = MultiViewFuser().fuse(views, dets)[0]
    assert full.n_views[0] == low.n_views[0] == 3
    assert joint_error(low, truth)[0] < 0.6 * joint_error(full, truth)[0]


def test_noisy_2d_error_within_the_stated_bound():
    views, rng, errs = rig(), np.random.default_rng(1), []
    for trial in range(10):
        truth = person(rng.uniform(0, 360), *rng.uniform(-0.8, 0.8, 2))
        (p,) = MultiViewFuser().fuse(views, observe(views, [truth], noise_px=2.0, rng=rng))
        assert (p.n_views >= 2).all(), trial
        errs.append(joint_error(p, truth))
    errs = np.concatenate(errs) * 1e3
    print(f"sigma 2 px, 3 views: mean {errs.mean():.1f} mm, max {errs.max():.1f} mm")
    assert errs.mean() < NOISE_MEAN_MM and errs.max() < NOISE_MAX_MM


@pytest.mark.parametrize("ransac", [True, False])
def test_gross_outlier_in_one_view_rejected_by_ransac(ransac):
    views, truth = rig(), person(45.0)
    dets = observe(views, [truth], noise_px=1.0, rng=np.random.default_rng(2))
    bad = [0, 15, 27]  # nose, left wrist, left ankle
    dets[1][0].keypoints[bad] += (80.0, -30.0)
    (p,) = MultiViewFuser(ransac=ransac).fuse(views, dets)
    err = joint_error(p, truth)
    if ransac:
        assert err[bad].max() < 0.02, err[bad]
        assert (p.n_views[bad] == 2).all() and (np.delete(p.n_views, bad) == 3).all()
        assert p.reprojection_px[bad].max() < 3.0
    else:  # the plain DLT over all views is pulled off by the outlier
        assert err[bad].min() > 0.04, err[bad]
        assert (p.n_views[bad] == 3).all()


def test_two_view_disagreement_is_not_triangulated():
    """Two views only and one is 80 px off across the epipolar lines (vertical here: the cameras
    are level; a shift along them only moves the point in depth): no redundancy to tell which
    view is wrong, so the joint is NaN."""
    views, truth = rig(3, start_deg=30.0)[:2], person(0.0)
    dets = observe(views, [truth])
    dets[0][0].keypoints[5] += (0.0, 80.0)
    (p,) = MultiViewFuser().fuse(views, dets)
    assert np.isnan(p.positions[5]).all() and p.n_views[5] == 0 and np.isnan(p.reprojection_px[5])
    assert joint_error(p, truth)[np.arange(33) != 5].max() < 1e-3


def test_camera_dropping_out_still_fuses_from_two():
    views, truth = rig(), person(100.0)
    dets = observe(views, [truth])
    dets[2] = []  # camera 2 sees nobody (dropped frame / camera down)
    (p,) = MultiViewFuser().fuse(views, dets)
    assert p.members == [(0, 0), (1, 0)] and (p.n_views == 2).all()
    assert joint_error(p, truth).max() < 1e-3
    # and with the camera missing from the set altogether
    (q,) = MultiViewFuser().fuse(views[:2], dets[:2])
    np.testing.assert_allclose(q.positions, p.positions, atol=1e-9)


@pytest.mark.parametrize("n_seen", [3, 2])
@pytest.mark.parametrize("seed", range(6))
def test_people_in_all_views_with_shuffled_orders_are_associated(seed, n_seen):
    """4 people, every view lists them in a random order; n_seen = 2: the third camera
    delivers nothing, so only the epipolar distance can associate them."""
    rng = np.random.default_rng(seed)
    views = rig(3, start_deg=rng.uniform(0, 120))
    people = [person(rng.uniform(0, 360), x, y) for x, y in ((-0.9, 0.1), (0.1, 0.6), (0.9, -0.4), (0.0, -1.0))]
    dets = observe(views, people, noise_px=2.0, rng=rng)
    orders = []
    for i in range(len(views)):
        order = rng.permutation(len(people))
        dets[i] = [dets[i][k] for k in order]
        orders.append(order)
    dets = dets[:n_seen] + [[] for _ in views[n_seen:]]
    fused = MultiViewFuser().fuse(views, dets)
    assert len(fused) == len(people)
    swaps = 0
    for p in fused:
        who = {int(orders[v][d]) for v, d in p.members}  # the true person behind each member
        swaps += len(who) != 1
        assert len(p.members) == n_seen
        k = who.pop()
        assert np.nanmean(joint_error(p, people[k])) < 0.03  # right person (people are >= 0.9 m apart)
    assert swaps == 0


def test_association_uses_every_view_of_a_cluster():
    """B stands on camera 0's rays through A (a bigger person behind A: identical in view 0)
    and is seen only by camera 2, so in view 2 B satisfies the epipolar constraint with A's
    view-0 detection (better than A's own slightly noisy view-2 detection). Matching view 2
    against A's triangulation from views 0 + 1 tells them apart."""
    views, a, c = rig(), person(0.0, 0.2, 0.0), person(0.0, -0.2, 1.2)
    c0 = views[0].world_from_camera.t
    b = c0 + 1.25 * (a - c0)
    assert np.abs(cv2_pixels(views[0], b) - cv2_pixels(views[0], a)).max() < 1e-6
    dets = observe(views, [a, c])
    dets[2] = [Detection2D(cv2_pixels(views[2], b), np.ones(33)),  # B, listed first
               Detection2D(dets[2][0].keypoints + 0.5, np.ones(33))]  # A; C not seen by camera 2
    fused = MultiViewFuser().fuse(views, dets)
    assert [p.members for p in fused] == [[(0, 0), (1, 0), (2, 1)], [(0, 1), (1, 1)]]
    assert joint_error(fused[0], a).max() < 0.005 and (fused[0].n_views == 3).all()
    assert joint_error(fused[1], c).max() < 1e-3


def test_distorted_plumb_bob_cameras():
    wide = np.array([[520.0, 0, 640], [0, 520, 480], [0, 0, 1]])  # ~102 deg horizontal fov
    cam = PinholeCamera.from_camera_info(1280, 960, wide.ravel(), PLUMB_BOB, "plumb_bob")
    views = rig(camera=cam, aim=(0.0, 0.0, 2.2))  # the person is in the lower half: strong distortion
    truth = person(-20.0, 0.4, 0.2)
    dets = observe(views, [truth])  # cv2.projectPoints with D: the distorted pixels
    undistorted = rig(camera=PinholeCamera(1280, 960, wide, np.zeros(0)), aim=(0.0, 0.0, 2.2))
    shift = np.linalg.norm(dets[0][0].keypoints - cv2_pixels(undistorted[0], truth), axis=1).max()
    assert shift > 20.0  # the distortion is not negligible
    (p,) = MultiViewFuser().fuse(views, dets)
    assert joint_error(p, truth).max() < 1e-3 and (p.n_views == 3).all()
    assert np.nanmax(p.reprojection_px) < 1e-3  # raw pixels, distortion applied


def test_person_seen_in_one_view_is_not_fused():
    views, a, b = rig(), person(0.0, -0.8, 0.0), person(90.0, 0.9, 0.3)
    dets = observe(views, [a, b])
    dets[1] = dets[1][:1]
    dets[2] = dets[2][:1]  # b only in view 0
    fused = MultiViewFuser().fuse(views, dets)
    assert len(fused) == 1 and fused[0].members == [(0, 0), (1, 0), (2, 0)]
    assert joint_error(fused[0], a).max() < 1e-3
    # b in two views, min_views=3: not fused either
    dets = observe(views, [a, b])
    dets[2] = dets[2][:1]
    fused = MultiViewFuser(min_views=3).fuse(views, dets)
    assert [p.members for p in fused] == [[(0, 0), (1, 0), (2, 0)]]


def test_joints_seen_in_fewer_than_min_views_are_nan():
    views, truth = rig(), person(0.0)
    dets = observe(views, [truth])
    dets[0][0].confidence[7] = 0.0
    dets[1][0].confidence[7] = 0.2  # below min_confidence 0.3
    dets[0][0].keypoints[8] = np.nan
    dets[2][0].confidence[8] = 0.0
    (p,) = MultiViewFuser().fuse(views, dets)
    assert np.isnan(p.positions[7]).all() and p.n_views[7] == 0 and p.confidence[7] == 0
    assert np.isnan(p.positions[8]).all() and p.n_views[8] == 0
    assert p.n_views[9] == 3 and joint_error(p, truth)[9] < 1e-3
    dets[0][0].confidence[9] = 0.0  # joint 9 now in 2 views: enough for min_views 2, not 3
    assert MultiViewFuser().fuse(views, dets)[0].n_views[9] == 2
    (p3,) = MultiViewFuser(min_views=3).fuse(views, dets)
    assert np.isnan(p3.positions[9]).all() and p3.n_views[9] == 0 and p3.n_views[10] == 3


def test_max_people_and_bad_input():
    views = rig()
    people = [person(0, x, 0) for x in (-1.0, 0.0, 1.0)]
    assert len(MultiViewFuser(max_people=2).fuse(views, observe(views, people))) == 2
    with pytest.raises(MultiViewError, match="one list"):
        MultiViewFuser().fuse(views, observe(views, people)[:2])
    dets = observe(views, people)
    dets[1][0] = Detection2D(np.zeros((17, 2)), np.ones(17))
    with pytest.raises(MultiViewError, match="same skeleton layout"):
        MultiViewFuser().fuse(views, dets)
    broken = View("cam1", PINHOLE, Rigid(np.array([np.nan, 0, 0]), np.array([1.0, 0, 0, 0])))
    with pytest.raises(MultiViewError, match="cam1.*not a valid pose"):
        MultiViewFuser().fuse([views[0], broken, views[2]], observe(views, people))
    with pytest.raises(MultiViewError, match="at least 2 views"):
        MultiViewFuser(min_views=1)
    assert MultiViewFuser().fuse(views, [[], [], []]) == []


# -- StampGrouper --------------------------------------------------------------------------
MS = 1_000_000
CAMS = ["a", "b", "c"]


def test_grouper_groups_within_tolerance():
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.2)
    out = []
    for n in range(5):
        t = 1_000 * MS + n * 33 * MS
        for cam, jitter in zip(CAMS, (0, 6, -7), strict=True):  # within 10 ms of the first
            out += [(n, grp) for grp in g.push(cam, t + jitter * MS, (cam, n))]
    assert [n for n, _ in out] == list(range(5))
    for n, grp in out:
        assert grp == {c: (c, n) for c in CAMS}
    # 12 ms apart: beyond the tolerance, so c's frame does not join a and b's group; c moved
    # past it, so a + b are emitted without c, and c's frame starts the next group
    assert g.push("a", 2_000 * MS, 1) == [] and g.push("b", 2_000 * MS, 2) == []
    assert g.push("c", 2_012 * MS, 3) == [{"a": 1, "b": 2}]
    assert g.push("a", 2_019 * MS, 4) == [] and g.push("b", 2_021 * MS, 5) == [{"c": 3, "a": 4, "b": 5}]
    assert g.emitted == 7 and g.late == 0 and g.dropped == 0


def test_grouper_camera_dropping_out_does_not_stall():
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.1)
    emitted = []
    for n in range(30):
        t = n * 33 * MS
        for cam in CAMS if n < 10 else CAMS[:2]:  # c stops after 10 frames
            for grp in g.push(cam, t, n):
                emitted.append((set(grp), next(iter(grp.values())), n))
    frames = [f for _, f, _ in emitted]
    assert frames == sorted(frames) and frames[:10] == list(range(10))
    assert all(cams == {"a", "b"} for cams, f, _ in emitted if f >= 10)
    assert frames[-1] >= 27  # every frame after the dropout is fused, none lost
    assert set(range(10, 28)) <= set(frames)
    lag = [n - f for _, f, n in emitted if f >= 14]  # once c is known silent: no waiting at all
    assert max(lag) == 0


def test_grouper_camera_coming_back_is_waited_for_again():
    """c stops, then sends again, always arriving last (the slowest computer): its first frame
    back is late (a + b were already emitted without the silent camera), the next ones join."""
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.15)
    sizes = []
    for n in range(15):
        t = n * 100 * MS
        for cam in CAMS if n < 3 or n >= 9 else CAMS[:2]:
            sizes += [len(grp) for grp in g.push(cam, t, n)]
    assert sizes[:3] == [3, 3, 3] and sizes[-5:] == [3] * 5 and g.late == 1


def test_grouper_dropped_frame_does_not_wait_for_max_wait():
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=10.0)
    g.push("a", 0, "a0")
    g.push("b", 0, "b0")  # c's frame 0 is lost
    assert g.push("c", 33 * MS, "c1") == [{"a": "a0", "b": "b0"}]  # c moved on: group 0 is settled
    assert g.push("a", 33 * MS, "a1") == [] and g.push("b", 33 * MS, "b1") == [{"a": "a1", "b": "b1", "c": "c1"}]
    assert g.push("c", 1 * MS, "late") == [] and g.late == 1  # its group is gone
    # a camera missing from an emitted group delivers that frame afterwards: discarded, it
    # must not start an orphan group
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.1)
    g.push("a", 0, "a0")
    g.push("b", 0, "b0")
    assert g.poll(150 * MS) == [{"a": "a0", "b": "b0"}]
    assert g.push("c", 2 * MS, "c0") == [] and g.late == 1
    g.push("a", 33 * MS, "a1")
    g.push("b", 33 * MS, "b1")
    assert g.push("c", 33 * MS, "c1") == [{"a": "a1", "b": "b1", "c": "c1"}] and g.dropped == 0


def test_grouper_backwards_clock_resets_and_memory_is_bounded():
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.1, max_pending=8)
    for n in range(100):  # only "a": groups never reach min_cameras = 2
        assert g.push("a", 500_000 * MS + n * 33 * MS, n) == []
        assert len(g._pending) <= 8
    assert g.emitted == 0 and g.dropped >= 90
    # a very long max_wait: nothing settles or expires, max_pending bounds the memory
    slow = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=1e6, max_pending=8)
    for n in range(100):
        slow.push("a", n * 33 * MS, n)
    assert len(slow._pending) == 8 and slow.dropped == 92
    # bag loop / sim time restart: 500 s back
    assert g.push("a", 0, "a") == [] and g.resets == 1
    assert g.push("b", 0, "b") == [] and g.push("c", 2 * MS, "c") == [{"a": "a", "b": "b", "c": "c"}]
    # a small step back from one camera is a late message, not a reset
    assert g.push("a", -50 * MS, "old") == [] and g.resets == 1 and g.late == 1


def test_grouper_poll_emits_the_last_group_and_rejects_unknown_cameras():
    g = StampGrouper(CAMS, tolerance_s=0.010, max_wait_s=0.1)
    g.push("a", 0, 1)
    g.push("b", 0, 2)
    assert g.poll(50 * MS) == []
    assert g.poll(150 * MS) == [{"a": 1, "b": 2}]
    with pytest.raises(ValueError, match="unknown camera 'd'"):
        g.push("d", 0, 3)
