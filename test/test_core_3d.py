"""ROS-free conversions and 3D: image encodings, pinhole camera, depth / PnP lifting, body
frame, rigid transforms."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import transforms3d

from pose_ros.core import lift
from pose_ros.core.camera import CameraModelError, PinholeCamera, default_camera
from pose_ros.core.geometry import Rigid
from pose_ros.core.imageconv import (
    ImageFormatError,
    decode_compressed,
    depth_to_metres,
    image_array,
    to_rgb8,
)
from pose_ros.core.skeletons import BLAZEPOSE_33


@pytest.fixture(scope="module")
def rgb(astronaut):
    return astronaut[:120, :160].copy()


def as_msg_bytes(arr: np.ndarray, pad: int = 0, big: bool = False) -> tuple[bytes, int]:
    rows = arr.reshape(arr.shape[0], -1)
    if big:
        rows = rows.astype(rows.dtype.newbyteorder(">"))
    raw = rows.view(np.uint8).reshape(arr.shape[0], -1)
    padded = np.zeros((arr.shape[0], raw.shape[1] + pad), np.uint8)
    padded[:, : raw.shape[1]] = raw
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize("enc,conv", [("rgb8", None), ("bgr8", cv2.COLOR_RGB2BGR),
                                      ("rgba8", cv2.COLOR_RGB2RGBA), ("bgra8", cv2.COLOR_RGB2BGRA)])
def test_colour_encodings_with_step_padding(rgb, enc, conv):
    src = rgb if conv is None else cv2.cvtColor(rgb, conv)
    data, step = as_msg_bytes(src, pad=7)
    arr = image_array(enc, 160, 120, step, False, data)
    np.testing.assert_array_equal(to_rgb8(enc, arr), rgb)


def test_zero_copy_when_unpadded(rgb):
    data = bytearray(rgb.tobytes())
    arr = image_array("rgb8", 160, 120, 480, False, data)
    assert np.shares_memory(arr, np.frombuffer(data, np.uint8))


def test_mono_and_16bit_endianness(rgb):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    data, step = as_msg_bytes(grey, pad=3)
    assert to_rgb8("mono8", image_array("mono8", 160, 120, step, False, data)).shape == (120, 160, 3)
    deep = grey.astype(np.uint16) * 257
    for big in (False, True):
        data, step = as_msg_bytes(deep, pad=2, big=big)
        arr = image_array("16UC1", 160, 120, step, big, data)
        np.testing.assert_array_equal(arr, deep)
        np.testing.assert_array_equal(to_rgb8("mono16", arr)[..., 0], grey)


def test_yuv422_uyvy(rgb):
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    uyvy = np.zeros((120, 160, 2), np.uint8)
    uyvy[..., 1] = yuv[..., 0]
    uyvy[:, 0::2, 0] = yuv[:, 0::2, 1]
    uyvy[:, 1::2, 0] = yuv[:, 0::2, 2]
    data, step = as_msg_bytes(uyvy)
    back = to_rgb8("yuv422", image_array("yuv422", 160, 120, step, False, data))
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 12  # chroma subsampled


@pytest.mark.parametrize("args,match", [
    (("weird8", 4, 4, 12, False, bytes(48)), "unsupported image encoding"),
    (("rgb8", 4, 4, 11, False, bytes(48)), "step 11 is smaller"),
    (("rgb8", 4, 4, 12, False, bytes(40)), "data has 40 bytes"),
    (("rgb8", 0, 4, 12, False, b""), "zero size"),
    (("mono8", 8000, 8000, 8000, False, bytes(8000 * 8000)), "exceeds"),
])
def test_bad_images_raise_clear_errors(args, match):
    with pytest.raises(ImageFormatError, match=match):
        image_array(*args)


def test_compressed(rgb):
    ok, jpg = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode_compressed(jpg.tobytes(), "png"), rgb)
    with pytest.raises(ImageFormatError, match="could not be decoded"):
        decode_compressed(b"\x00garbage" * 10, "jpeg")


def test_depth_units():
    mm = np.full((10, 10), 1500, np.uint16)
    mm[0, 0] = 0
    d = depth_to_metres("16UC1", mm)
    assert d[5, 5] == pytest.approx(1.5) and np.isnan(d[0, 0])
    m = np.full((10, 10), 2.0, np.float32)
    m[0, :3] = [np.nan, np.inf, 0.0]
    d = depth_to_metres("32FC1", m)
    assert np.isnan(d[0, :3]).all() and d[5, 5] == 2.0
    with pytest.raises(ImageFormatError, match="looks like millimetres"):
        depth_to_metres("32FC1", np.full((4, 4), 1500.0, np.float32))
    with pytest.raises(ImageFormatError, match="looks like metres"):
        depth_to_metres("16UC1", np.full((4, 4), 2, np.uint16))


def test_camera_roundtrip_with_distortion():
    K = [500.0, 0, 320, 0, 510.0, 240, 0, 0, 1]
    cam = PinholeCamera.from_camera_info(640, 480, K, [-0.2, 0.05, 0.001, -0.001, 0.0])
    pts = np.array([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.0], [0.0, 0.0, 1.0]])
    px = cam.project(pts)
    np.testing.assert_allclose(px[2], [320, 240])
    back = cam.backproject(px, pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-6)
    with pytest.raises(CameraModelError, match="not calibrated"):
        PinholeCamera.from_camera_info(640, 480, [0.0] * 9, [])
    with pytest.raises(CameraModelError, match="coefficients"):
        PinholeCamera.from_camera_info(640, 480, K, [0.1, 0.2, 0.3])


def test_depth_positions_median_and_fallback():
    cam = default_camera(64, 48)
    depth = np.full((48, 64), 2.0, np.float32)
    depth[20:23, 30:33] = 9.0  # a single outlier pixel cluster smaller than half the window
    depth[:, :6] = np.nan
    kps = np.array([[31.0, 21.0], [2.0, 10.0], [100.0, 10.0]])
    pos, ok = lift.depth_positions(kps, depth, cam, window=7)
    assert ok.tolist() == [True, False, False]
    assert pos[0, 2] == pytest.approx(2.0)  # median rejects the outlier
    np.testing.assert_allclose(cam.project(pos[:1]), kps[:1], atol=1e-6)


def test_pnp_recovers_pose_and_body_frame():
    rng = np.random.default_rng(0)
    world = rng.normal(scale=0.3, size=(33, 3))
    cam = PinholeCamera.from_camera_info(640, 480, [600.0, 0, 320, 0, 600.0, 240, 0, 0, 1],
                                         [0.05, -0.01, 0, 0, 0])
    R = transforms3d.euler.euler2mat(0.1, -0.3, 0.05)
    t = np.array([0.2, -0.1, 3.0])
    true = world @ R.T + t
    px = cam.project(true)
    pos, trans = lift.pnp_positions(world, px, np.ones(33), cam)
    np.testing.assert_allclose(pos, true, atol=1e-4)
    np.testing.assert_allclose(trans, t, atol=1e-4)
    # body frame: a person facing the camera, upright (optical frame: y down, z forward)
    p = np.full((33, 3), np.nan)
    L = BLAZEPOSE_33.index
    p[L("left_hip")], p[L("right_hip")] = [0.1, 0, 2], [-0.1, 0, 2]
    p[L("left_shoulder")], p[L("right_shoulder")] = [0.15, -0.5, 2], [-0.15, -0.5, 2]
    origin, q = lift.body_frame(p, BLAZEPOSE_33)
    Rb = transforms3d.quaternions.quat2mat(q)
    np.testing.assert_allclose(origin, [0, 0, 2])
    np.testing.assert_allclose(Rb[:, 0], [0, 0, -1], atol=1e-9)  # x forward: towards the camera
    np.testing.assert_allclose(Rb[:, 2], [0, -1, 0], atol=1e-9)  # z up
    np.testing.assert_allclose(Rb[:, 1], [1, 0, 0], atol=1e-9)   # y to the person's left


def test_rigid_compose_inverse():
    a = Rigid(np.array([1.0, 2, 3]), transforms3d.euler.euler2quat(0.1, 0.2, 0.3))
    b = Rigid(np.array([-1.0, 0.5, 0]), transforms3d.euler.euler2quat(-0.4, 0, 0.2))
    x = np.array([[0.3, -0.2, 1.0]])
    np.testing.assert_allclose((a @ b).apply(x), a.apply(b.apply(x)))
    np.testing.assert_allclose((a.inverse() @ a).apply(x), x, atol=1e-12)
