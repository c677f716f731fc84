"""Camera model (core/camera.py, lift.py, imageconv.py depth/yuv, convert.py camera parts)
against independent oracles: hand-computed distortion formulas with literal values,
cv2.projectPoints / cv2.fisheye.projectPoints, rectified P, binning + roi with known rays,
and every misleading-input message of issue 7 item 18."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import transforms3d
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError, PinholeCamera
from pose_ros.core.imageconv import DepthInvalidError, ImageFormatError, depth_to_metres, image_array
from pose_ros.ros.convert import camera_from_info, check_camera_matches, check_depth_aligned

K640 = [500.0, 0, 320, 0, 510.0, 240, 0, 0, 1]
PLUMB = [-0.2, 0.05, 0.001, -0.002, 0.01]  # k1 k2 p1 p2 k3


def plumb_bob_by_hand(X, Y, Z, fx, fy, cx, cy, k1, k2, p1, p2, k3, k4=0.0, k5=0.0, k6=0.0):
    """The plumb_bob / rational_polynomial formula as written in the CameraInfo docs / OpenCV."""
    x, y = X / Z, Y / Z
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return fx * xd + cx, fy * yd + cy


def equidistant_by_hand(X, Y, Z, fx, fy, cx, cy, k1, k2, k3, k4):
    """Kannala-Brandt / ROS `equidistant`: theta_d = theta (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8)."""
    x, y = X / Z, Y / Z
    r = math.hypot(x, y)
    th = math.atan(r)
    thd = th * (1 + k1 * th ** 2 + k2 * th ** 4 + k3 * th ** 6 + k4 * th ** 8)
    return fx * thd / r * x + cx, fy * thd / r * y + cy


# -- distortion models ---------------------------------------------------------------------
def test_plumb_bob_matches_hand_computed_pixel():
    cam = PinholeCamera.from_camera_info(640, 480, K640, PLUMB, "plumb_bob")
    # literal values, computed once with plain arithmetic from the formula above
    px = cam.project(np.array([[0.3, -0.2, 2.0]]))[0]
    np.testing.assert_allclose(px, [394.42398668359374, 189.38616405515626], atol=1e-9)
    assert abs(px[0] - 395.0) > 0.5  # the undistorted pinhole pixel is (395, 189): D matters
    # more points: the formula and OpenCV agree with the model
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-0.8, 0.8, 20), rng.uniform(-0.6, 0.6, 20), rng.uniform(1, 4, 20)])
    ours = cam.project(pts)
    hand = np.array([plumb_bob_by_hand(*p, 500, 510, 320, 240, *PLUMB) for p in pts])
    cv, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                              np.array(K640).reshape(3, 3), np.array(PLUMB))
    np.testing.assert_allclose(ours, hand, atol=1e-9)
    np.testing.assert_allclose(ours, cv.reshape(-1, 2), atol=1e-9)
    # back-projection of the hand-computed pixel gives the ray it came from
    ray = cam.normalized(np.array([[394.42398668359374, 189.38616405515626]]))[0]
    np.testing.assert_allclose(ray, [0.15, -0.1], atol=1e-9)
    back = cam.backproject(hand, pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-7)


def test_rational_polynomial_against_formula_and_opencv():
    D = [0.3, -0.1, 0.0005, -0.001, 0.02, 0.5, -0.05, 0.01]  # k1 k2 p1 p2 k3 k4 k5 k6
    cam = PinholeCamera.from_camera_info(640, 480, K640, D, "rational_polynomial")
    pts = np.array([[0.5, 0.4, 1.5], [-0.7, 0.2, 2.0], [0.1, -0.6, 1.2]])
    hand = np.array([plumb_bob_by_hand(*p, 500, 510, 320, 240, *D) for p in pts])
    cv, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                              np.array(K640).reshape(3, 3), np.array(D))
    np.testing.assert_allclose(cam.project(pts), hand, atol=1e-9)
    np.testing.assert_allclose(hand, cv.reshape(-1, 2), atol=1e-9)
    # k4..k6 matter: the 5-coefficient model differs by pixels
    five = PinholeCamera.from_camera_info(640, 480, K640, D[:5], "plumb_bob")
    assert np.abs(five.project(pts) - hand).max() > 5
    np.testing.assert_allclose(cam.backproject(hand, pts[:, 2]), pts, atol=1e-7)


def test_equidistant_fisheye_against_formula_and_cv2_fisheye():
    K = [300.0, 0, 640, 0, 300.0, 480, 0, 0, 1]
    D = [0.05, -0.01, 0.002, -0.0005]
    cam = PinholeCamera.from_camera_info(1280, 960, K, D, "equidistant")
    assert cam.fisheye
    px = cam.project(np.array([[0.4, 0.3, 1.0]]))[0]
    np.testing.assert_allclose(px, [752.422134841244, 564.3166011309329], atol=1e-9)  # literal, by hand
    pts = np.array([[0.4, 0.3, 1.0], [-1.5, 0.8, 1.0], [0.2, -2.5, 1.0], [0.01, 0.02, 3.0]])
    hand = np.array([equidistant_by_hand(*p, 300, 300, 640, 480, *D) for p in pts])
    cv, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                      np.array(K).reshape(3, 3), np.array(D))
    np.testing.assert_allclose(cam.project(pts), hand, atol=1e-9)
    np.testing.assert_allclose(hand, cv.reshape(-1, 2), atol=1e-6)
    # the plumb_bob model with the same numbers is a different camera (wide angles differ a lot)
    wrong = PinholeCamera.from_camera_info(1280, 960, K, D, "plumb_bob")
    assert np.abs(wrong.project(pts) - hand).max() > 50
    np.testing.assert_allclose(cam.normalized(hand), pts[:, :2] / pts[:, 2:], atol=1e-7)


def test_rectified_uses_p_and_ignores_d():
    # image_proc: image_rect with the raw CameraInfo (D != 0); P differs from K
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=PLUMB, k=K640,
                      p=[450.0, 0, 330, 0, 0, 455.0, 235, 0, 0, 0, 1, 0])
    rect = camera_from_info(info, rectified=True)
    raw = camera_from_info(info, rectified=False)
    pt = np.array([[0.3, -0.2, 2.0]])
    np.testing.assert_allclose(rect.project(pt)[0], [450 * 0.15 + 330, 455 * -0.1 + 235], atol=1e-9)
    np.testing.assert_allclose(rect.normalized(np.array([[397.5, 189.5]]))[0], [0.15, -0.1], atol=1e-12)
    np.testing.assert_allclose(raw.project(pt)[0], [394.42398668359374, 189.38616405515626], atol=1e-9)
    assert not rect.distorted and rect.rectified and raw.distorted
    # rectified input without P: a specific message
    with pytest.raises(CameraModelError, match="rectified input needs CameraInfo P"):
        camera_from_info(CameraInfo(width=640, height=480, k=K640, d=PLUMB), rectified=True)


def test_binning_and_roi_known_pixel_to_known_ray():
    # sensor 1280x960, fx=1000 fy=1010 cx=640 cy=480; roi 800x600 at (100, 50); binning 2
    info = CameraInfo(width=1280, height=960, k=[1000.0, 0, 640, 0, 1010.0, 480, 0, 0, 1], d=[0.0] * 5,
                      distortion_model="plumb_bob", binning_x=2, binning_y=2)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 50, 800, 600
    cam = camera_from_info(info)
    assert (cam.width, cam.height) == (400, 300)  # expected image size: cropped, then binned
    check_camera_matches(cam, 400, 300, "image")  # binned streams are accepted
    with pytest.raises(CameraModelError, match="roi 800x600 at \\(100, 50\\), binning 2x2"):
        check_camera_matches(cam, 1280, 960, "image")
    # binned pixel (270, 215) is full-resolution pixel (640, 480): the optical axis
    np.testing.assert_allclose(cam.normalized(np.array([[270.0, 215.0]]))[0], [0, 0], atol=1e-12)
    # binned pixel (0, 0) is full-resolution (100, 50): ray ((100-640)/1000, (50-480)/1010)
    np.testing.assert_allclose(cam.normalized(np.array([[0.0, 0.0]]))[0], [-0.54, -430 / 1010], atol=1e-12)
    # the same for P on a rectified stream
    info.p = [900.0, 0, 600, 0, 0, 900.0, 500, 0, 0, 0, 1, 0]
    rect = camera_from_info(info, rectified=True)
    np.testing.assert_allclose(rect.normalized(np.array([[0.0, 0.0]]))[0], [-500 / 900, -450 / 900],
                               atol=1e-12)
    with pytest.raises(CameraModelError, match="not inside"):
        info.roi.x_offset = 600
        camera_from_info(info)


# -- 3D paths use the right model ----------------------------------------------------------
def _known_pose(world_seed=0):
    rng = np.random.default_rng(world_seed)
    world = rng.normal(scale=0.3, size=(33, 3))
    R = transforms3d.euler.euler2mat(0.1, -0.3, 0.05)
    t = np.array([0.2, -0.1, 2.5])
    return world, world @ R.T + t, t


@pytest.mark.parametrize("kind", ["fisheye", "rational", "rectified"])
def test_pnp_recovers_known_pose_per_model(kind):
    world, true, t = _known_pose()
    if kind == "fisheye":
        K, D = np.array([[300.0, 0, 640], [0, 300.0, 480], [0, 0, 1]]), np.array([0.05, -0.01, 0.002, -0.0005])
        cam = PinholeCamera.from_camera_info(1280, 960, K.ravel(), D, "equidistant")
        px, _ = cv2.fisheye.projectPoints(true.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    elif kind == "rational":
        K, D = np.array(K640).reshape(3, 3), np.array([0.3, -0.1, 0.0005, -0.001, 0.02, 0.5, -0.05, 0.01])
        cam = PinholeCamera.from_camera_info(640, 480, K.ravel(), D, "rational_polynomial")
        px, _ = cv2.projectPoints(true.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    else:  # the image is rectified: pinhole with P, D of the raw camera must be ignored
        info = CameraInfo(width=640, height=480, d=PLUMB, k=K640, distortion_model="plumb_bob",
                          p=[450.0, 0, 330, 0, 0, 455.0, 235, 0, 0, 0, 1, 0])
        cam = camera_from_info(info, rectified=True)
        P = np.array(info.p).reshape(3, 4)[:, :3]
        h = true @ P.T
        px = h[:, :2] / h[:, 2:]
    pos, trans = lift.pnp_positions(world, px.reshape(-1, 2), np.ones(33), cam)
    np.testing.assert_allclose(pos, true, atol=1e-4)
    np.testing.assert_allclose(trans, t, atol=1e-4)


def test_depth_backprojection_uses_the_distortion_model():
    cam = PinholeCamera.from_camera_info(640, 480, K640, PLUMB, "plumb_bob")
    depth = np.full((480, 640), 2.0, np.float32)
    kp = np.array([[394.42398668359374, 189.38616405515626]])  # hand-computed image of (0.3, -0.2, 2)
    pos, ok = lift.depth_positions(kp, depth, cam, window=3)
    assert ok.all()
    np.testing.assert_allclose(pos[0], [0.3, -0.2, 2.0], atol=1e-7)


# -- item 18: specific messages ------------------------------------------------------------
@pytest.mark.parametrize("k, d, text", [
    ([math.nan] + K640[1:], PLUMB, "K contains NaN/inf"),
    ([500.0, 0, 320, 0, math.inf, 240, 0, 0, 1], PLUMB, "K contains NaN/inf"),
    ([0.0] * 9, [], "camera not calibrated"),
    (K640, [math.nan, 0, 0, 0, 0], "D contains NaN/inf"),
    ([1e-9, 0, 320, 0, 1e-9, 240, 0, 0, 1], PLUMB, "implausible focal lengths"),
    ([1e12, 0, 320, 0, 1e12, 240, 0, 0, 1], PLUMB, "implausible focal lengths"),
    ([500.0, 0, 1e7, 0, 510.0, 240, 0, 0, 1], PLUMB, "principal point"),
    ([500.0, 0, 320, 0, 510.0, -5e4, 0, 0, 1], PLUMB, "principal point"),
    ([500.0, 0, 320, 0, 510.0, 240, 0, 0, 0], PLUMB, "last row"),
    (K640, [0.1, 0.2, 0.3], "D has 3 coefficients"),
])
def test_bad_intrinsics_have_specific_messages(k, d, text):
    with pytest.raises(CameraModelError, match=text) as exc:
        PinholeCamera.from_camera_info(640, 480, k, d, "plumb_bob")
    if "NaN" in text:
        assert "calibrated" not in str(exc.value) and "coefficients" not in str(exc.value)


def test_distortion_model_names_and_counts():
    K = [300.0, 0, 320, 0, 300.0, 240, 0, 0, 1]
    with pytest.raises(CameraModelError, match="equidistant needs 4"):
        PinholeCamera.from_camera_info(640, 480, K, [0.1, 0, 0, 0, 0], "equidistant")
    with pytest.raises(CameraModelError, match="'kannala_brandt' unsupported"):
        PinholeCamera.from_camera_info(640, 480, K, [0.1, 0, 0, 0], "kannala_brandt")
    # an unknown model name with all-zero D is just a pinhole camera
    assert not PinholeCamera.from_camera_info(640, 480, K, [0.0] * 4, "kannala_brandt").distorted


def test_extreme_but_valid_intrinsics_never_raise_cv2_error():
    # the extremes the range check lets through still project / undistort / PnP cleanly
    world, true, _ = _known_pose()
    for f in (0.005 * 640 + 1e-6, 1000 * 640 - 1):
        for D in ([0.0] * 5, PLUMB):
            cam = PinholeCamera.from_camera_info(640, 480, [f, 0, 320, 0, f, 240, 0, 0, 1], D)
            px = cam.project(true)
            assert px.shape == (33, 2)
            cam.normalized(px)
            lift.pnp_positions(world, px, np.ones(33), cam)  # may be None, never cv2.error
    behind = PinholeCamera.from_camera_info(640, 480, K640, PLUMB).project(np.array([[0.1, 0.1, -1.0]]))
    assert np.isnan(behind).all()


def test_odd_width_yuv422_is_a_format_error():
    data = bytes(5 * 2 * 2)
    for enc in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2"):
        with pytest.raises(ImageFormatError, match="odd width \\(5\\)"):
            image_array(enc, 5, 2, 10, False, data)
    assert image_array("yuyv", 4, 2, 8, False, bytes(16)).shape == (2, 4, 2)


# -- depth plausibility ----------------------------------------------------------------------
def test_depth_plausible_range():
    with pytest.raises(DepthInvalidError, match="plausible range \\[0.1, 20\\] m"):
        depth_to_metres("32FC1", np.full((4, 4), 1e-40, np.float32))
    with pytest.raises(DepthInvalidError, match="plausible range"):
        depth_to_metres("32FC1", np.full((4, 4), 0.001, np.float32))  # 1 mm
    with pytest.raises(DepthInvalidError, match="no valid pixels"):
        depth_to_metres("16UC1", np.zeros((4, 4), np.uint16))
    mixed = np.full((4, 4), 2.0, np.float32)
    mixed[0, 0], mixed[0, 1], mixed[0, 2] = 1e-40, 0.001, 5000.0 / 1000 * 10  # 1e-40 m, 1 mm, 50 m
    d = depth_to_metres("32FC1", mixed)
    assert np.isnan(d[0, :3]).all() and d[1, 1] == 2.0
    assert np.isfinite(depth_to_metres("32FC1", mixed, 0.0001, 100.0)[0, 1:3]).all()
    # depth_positions: implausible values in the window are not depths
    cam = PinholeCamera.from_camera_info(64, 48, [50.0, 0, 32, 0, 50.0, 24, 0, 0, 1], [])
    raw = np.full((48, 64), 0.001, np.float32)
    raw[:, 40:] = 1.5
    pos, ok = lift.depth_positions(np.array([[10.0, 10.0], [50.0, 10.0]]), raw, cam, window=5)
    assert ok.tolist() == [False, True] and pos[1, 2] == pytest.approx(1.5)


# -- item 9: depth alignment rules (convert.check_depth_aligned) ------------------------------
def _info(k, w=640, h=480, frame="cam_color_optical"):
    return CameraInfo(header=Header(frame_id=frame), width=w, height=h, k=k, d=[0.0] * 5,
                      distortion_model="plumb_bob", p=[*k[:3], 0, *k[3:6], 0, *k[6:], 0])


def _depth(w=640, h=480, frame="cam_color_optical"):
    return Image(header=Header(frame_id=frame), width=w, height=h, encoding="16UC1", step=2 * w)


def test_depth_alignment_rules():
    colour = camera_from_info(_info(K640))
    check_depth_aligned(colour, "cam_color_optical", _depth(), _info(K640))  # aligned
    check_depth_aligned(colour, "cam_color_optical", _depth(), None)  # no depth CameraInfo: size+frame
    k_close = [503.0, 0, 322, 0, 513.0, 241, 0, 0, 1]  # within 1 % / 6.4 px
    check_depth_aligned(colour, "cam_color_optical", _depth(), _info(k_close))
    d435_depth = [385.0, 0, 320, 0, 385.0, 240, 0, 0, 1]  # a RealSense depth imager's own K
    with pytest.raises(CameraModelError, match="not aligned.*fx=385.0.*aligned_depth_to_color"):
        check_depth_aligned(colour, "cam_color_optical", _depth(), _info(d435_depth))
    with pytest.raises(CameraModelError, match="frame_id 'cam_depth_optical'.*aligned_depth_to_color"):
        check_depth_aligned(colour, "cam_color_optical", _depth(frame="cam_depth_optical"), _info(K640))
    with pytest.raises(CameraModelError, match="depth image is 320x240 but the colour image is 640x480"):
        check_depth_aligned(colour, "cam_color_optical", _depth(320, 240), None)
    with pytest.raises(CameraModelError, match="depth CameraInfo: .*NaN"):
        check_depth_aligned(colour, "cam_color_optical", _depth(), _info([math.nan] + K640[1:]))
