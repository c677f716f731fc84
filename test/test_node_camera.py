"""pose_node's camera model over real DDS (issue 7 items 9, 10, 18): which intrinsics the 3D
uses (raw K + D vs rectified P, binning + roi), depth alignment against depth/camera_info,
implausible depth, and CameraInfo faults that keep the 2D skeletons.

Oracle: a flat wall at a known depth (1.8 m) turns each published 2D keypoint (u, v) into a
known 3D point: Z = 1.8 and (X, Y) = Z * ray(u, v), the ray computed here independently
(cv2.undistortPoints with K and D for a raw image, (u - cx') / fx' from P for a rectified one).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from test_node import FRAME, Harness

from conftest import photo
from pose_ros.core.camera import rectified_from_topic
from pose_ros.msg import Keypoint
from pose_ros.ros.convert import rgb_to_image
from pose_ros.ros.qos import SENSOR_QOS

Z = 1.8  # the wall, metres
K_RAW = [450.0, 0, 256, 0, 450.0, 256, 0, 0, 1]
D_RAW = [-0.3, 0.1, 0.001, -0.001, 0.0]
P_RECT = [400.0, 0, 250, 0, 0, 400.0, 260, 0, 0, 0, 1, 0]
REMAP = ["--ros-args", "-r", "image:=camera/image_rect"]


def info_msg(k=K_RAW, d=D_RAW, p=P_RECT, w=512, h=512, binning=0, roi=(0, 0, 0, 0)) -> CameraInfo:
    msg = CameraInfo(width=w, height=h, distortion_model="plumb_bob", k=list(k), d=list(d), p=list(p),
                     binning_x=binning, binning_y=binning)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = roi
    return msg


def wall(w=512, h=512, value=Z, encoding="16UC1") -> Image:
    if encoding == "16UC1":
        arr = np.full((h, w), round(value * 1000), np.uint16)
    else:
        arr = np.full((h, w), value, np.float32)
    return Image(height=h, width=w, encoding=encoding, step=w * arr.itemsize, data=arr.tobytes())


class Rig:
    """A Harness with the image topic remapped to camera/image_rect and a depth CameraInfo publisher."""

    def __init__(self, **params):
        self.h = Harness(cli_args=REMAP, use_depth=True, **params)
        self.h.pub_image = self.h.client.create_publisher(Image, "camera/image_rect", SENSOR_QOS)
        self.pub_dinfo = self.h.client.create_publisher(CameraInfo, "depth/camera_info", SENSOR_QOS)
        self.rgb = photo("astronaut")
        self.sent: set[tuple[int, int]] = set()

    def send(self, info, dinfo=None, depth=None, depth_frame=FRAME, image=None):
        h = self.h
        hd = h.header()
        info.header = hd
        h.pub_info.publish(info)
        dh = Header(stamp=hd.stamp, frame_id=depth_frame)
        if dinfo is not None:
            dinfo.header = dh
            self.pub_dinfo.publish(dinfo)
        if depth is not None:
            depth.header = dh
            h.pub_depth.publish(depth)
        if image is not None:
            image.header = hd
            h.pub_image.publish(image)
        else:
            h.pub_image.publish(rgb_to_image(self.rgb, hd))
        self.sent.add((hd.stamp.sec, hd.stamp.nanosec))

    def result(self, **send_kwargs):
        """The skeletons of a frame sent with these arguments (not of an earlier frame)."""
        self.sent = set()
        h = self.h

        def mine():
            with h.lock:
                for m in reversed(h.got["skeletons"]):
                    if (m.header.stamp.sec, m.header.stamp.nanosec) in self.sent:
                        return m
            return None
        assert h.until(lambda: mine() is not None, send=lambda: self.send(**send_kwargs), timeout=30), \
            "no skeletons for these frames"
        msg = mine()
        assert len(msg.skeletons) == 1
        return msg.skeletons[0]

    def logged(self, text, level=Log.ERROR, **send_kwargs) -> bool:
        since = self.h.count("log")
        return self.h.until(lambda: self.h.logged(text, level, since=since),
                            send=lambda: self.send(**send_kwargs), timeout=20)


# class-scoped: the two rigs share topic names on one DDS domain, so they must never run at once
@pytest.fixture(scope="class")
def rect_rig(models):  # rectified: auto, image remapped to camera/image_rect
    r = Rig()
    yield r
    r.h.close()


@pytest.fixture(scope="class")
def raw_rig(models):  # same topic, rectified:=false given as a YAML/CLI bool
    r = Rig(rectified=False)
    yield r
    r.h.close()


def pos(kp: Keypoint) -> np.ndarray:
    return np.array([kp.position.x, kp.position.y, kp.position.z])


def test_rectified_from_topic_names():
    assert rectified_from_topic("/camera/color/image_rect")
    assert rectified_from_topic("/cam/image_rect_color/compressed")
    assert rectified_from_topic("/stereo/left/rectified/image")
    assert not rectified_from_topic("/camera/color/image_raw")
    assert not rectified_from_topic("/direct_cam/image_raw")


class TestRectified:
    """rectified:=auto on camera/image_rect: P, binning + roi, depth checks."""

    def test_rectified_auto_uses_p_not_k_and_d(self, rect_rig):
        sk = rect_rig.result(info=info_msg(), dinfo=info_msg(), depth=wall())
        nose = sk.keypoints[0]
        assert nose.position_source == Keypoint.SOURCE_DEPTH
        expect = [(nose.x - 250) / 400 * Z, (nose.y - 260) / 400 * Z, Z]  # P: fx'=400, cx'=250, cy'=260
        np.testing.assert_allclose(pos(nose), expect, atol=1e-4)

    def test_binning_and_roi_stream_is_accepted_and_mapped(self, rect_rig):
        # sensor 1300x1100, roi 1024x1024 at (100, 50), binning 2: a 512x512 image
        big = dict(w=1300, h=1100, binning=2, roi=(100, 50, 1024, 1024),
                   k=[900.0, 0, 600, 0, 900.0, 500, 0, 0, 1], p=[800.0, 0, 600, 0, 0, 800.0, 500, 0, 0, 0, 1, 0])
        sk = rect_rig.result(info=info_msg(**big), dinfo=info_msg(**big), depth=wall())
        nose = sk.keypoints[0]
        assert nose.position_source == Keypoint.SOURCE_DEPTH
        # binned rectified intrinsics: fx' = 800 / 2, cx' = (600 - 100) / 2, cy' = (500 - 50) / 2
        np.testing.assert_allclose(pos(nose), [(nose.x - 250) / 400 * Z, (nose.y - 225) / 400 * Z, Z], atol=1e-4)

    def test_depth_alignment_is_checked_against_depth_camera_info(self, rect_rig):
        r = rect_rig
        other = info_msg(k=[300.0, 0, 256, 0, 300.0, 256, 0, 0, 1], p=[300.0, 0, 256, 0, 0, 300.0, 256, 0, 0, 0, 1, 0])
        assert r.logged("depth image is not aligned to the colour image", info=info_msg(), dinfo=other, depth=wall())
        assert r.h.logged("aligned_depth_to_color")
        sk = r.result(info=info_msg(), dinfo=other, depth=wall())
        assert sk.keypoints[0].position_source == Keypoint.SOURCE_MONOCULAR  # depth rejected, 3D kept
        assert r.logged("differs from the colour image's", info=info_msg(), dinfo=info_msg(), depth=wall(),
                        depth_frame="camera_depth_optical_frame")
        # no depth CameraInfo at all (as the older tests): used, with a throttled warning
        assert r.logged("depth alignment checked by size and frame_id only", Log.WARN, info=info_msg(),
                        depth=wall())
        sk = r.result(info=info_msg(), depth=wall())
        assert sk.keypoints[0].position_source == Keypoint.SOURCE_DEPTH

    def test_implausible_depth_is_not_used(self, rect_rig):
        r = rect_rig
        tiny = wall(value=1e-40, encoding="32FC1")
        assert r.logged("no pixel in the plausible range [0.1, 20] m", info=info_msg(), dinfo=info_msg(), depth=tiny)
        sk = r.result(info=info_msg(), dinfo=info_msg(), depth=wall(value=0.001, encoding="32FC1"))  # 1 mm
        assert sk.keypoints[0].position_source == Keypoint.SOURCE_MONOCULAR


class TestRaw:
    """rectified:=false (a bool) on the same topic: K + D, CameraInfo faults."""

    def test_raw_uses_k_and_d(self, raw_rig):
        sk = raw_rig.result(info=info_msg(), dinfo=info_msg(), depth=wall())
        off = []  # how far a pinhole model ignoring D would be, m
        for j in (0, 11, 12, 15):  # nose, shoulders, a wrist: various distances from the centre
            kp = sk.keypoints[j]
            if kp.position_source != Keypoint.SOURCE_DEPTH:
                continue
            ray = cv2.undistortPointsIter(np.array([[[kp.x, kp.y]]], np.float64), np.array(K_RAW).reshape(3, 3),
                                          np.array(D_RAW), None, None,
                                          (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))[0, 0]
            np.testing.assert_allclose(pos(kp), [ray[0] * Z, ray[1] * Z, Z], atol=1e-4)
            pinhole = [(kp.x - 256) / 450 * Z, (kp.y - 256) / 450 * Z]
            off.append(np.abs(pos(kp)[:2] - pinhole).max())
        assert sk.keypoints[0].position_source == Keypoint.SOURCE_DEPTH
        assert max(off) > 0.01  # ignoring D would be centimetres off at the shoulders

    @pytest.mark.parametrize("case, kwargs, text", [
        ("NaN in K", dict(k=[math.nan] + K_RAW[1:]), "K contains NaN/inf"),
        ("NaN in D", dict(d=[math.nan, 0, 0, 0, 0]), "D contains NaN/inf"),
        ("fx 1e-9", dict(k=[1e-9, 0, 256, 0, 1e-9, 256, 0, 0, 1]), "implausible focal lengths"),
        ("fx 1e12", dict(k=[1e12, 0, 256, 0, 1e12, 256, 0, 0, 1]), "implausible focal lengths"),
        ("cx far outside", dict(k=[450.0, 0, 1e7, 0, 450.0, 256, 0, 0, 1]), "principal point"),
    ])
    def test_camera_info_faults_keep_the_2d(self, raw_rig, case, kwargs, text):
        r = raw_rig
        assert r.logged(text, info=info_msg(**kwargs), dinfo=info_msg(), depth=wall())
        assert not r.h.logged("fx/fy <= 0") and not r.h.logged("coefficients")
        sk = r.result(info=info_msg(**kwargs), dinfo=info_msg(), depth=wall())
        nose = sk.keypoints[0]
        assert math.isfinite(nose.x) and math.isfinite(nose.y) and nose.score > 0.5  # 2D kept
        assert np.isnan(pos(nose)).all() and nose.position_source == Keypoint.SOURCE_NONE
        sk = r.result(info=info_msg(), dinfo=info_msg(), depth=wall())  # the next good frame has 3D again
        assert sk.keypoints[0].position_source == Keypoint.SOURCE_DEPTH

    def test_odd_width_yuyv_has_a_specific_message(self, raw_rig):
        odd = Image(height=4, width=5, encoding="yuyv", step=10, data=bytes(40))
        assert raw_rig.logged("odd width (5)", info=info_msg(w=5, h=4), image=odd)
        raw_rig.result(info=info_msg(), dinfo=info_msg(), depth=wall())  # still working

    def test_depth_range_parameters_are_validated(self, raw_rig):
        node = raw_rig.h.node
        try:
            res = node.set_parameters([Parameter("max_depth", value=5.0)])
            assert res[0].successful and node.p["max_depth"] == 5.0
            res = node.set_parameters([Parameter("min_depth", value=6.0)])  # above max_depth
            assert not res[0].successful and "must be smaller than max_depth" in res[0].reason
            assert node.p["min_depth"] == 0.1
        finally:
            node.set_parameters([Parameter("max_depth", value=20.0)])


@pytest.mark.parametrize("arg, rect", [("rectified:=true", True), ("rectified:=false", False),
                                        ("rectified:=auto", False), ("rectified:=True", True)])
def test_rectified_parameter_from_the_command_line(models, arg, rect):
    """`-p rectified:=true` arrives as a YAML bool: accepted like the string (topic `image`: auto = raw)."""
    import rclpy

    from pose_ros.ros.pose_node import PoseNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = PoseNode(context=ctx, cli_args=["--ros-args", "-p", arg, "-p", "backend:=onnxruntime"])
        assert node._rectified is rect
        node.destroy_node()
        with pytest.raises(ValueError, match="rectified must be one of"):
            PoseNode(context=ctx, cli_args=["--ros-args", "-p", "rectified:=maybe"])
    finally:
        rclpy.shutdown(context=ctx)
