"""Bounded hypothesis fuzz of pose_node's inputs over real DDS: Image, CompressedImage,
CameraInfo and depth messages with arbitrary fields (negative and huge stamps, unknown
encodings, wrong sizes and steps, NaN / inf intrinsics, corrupted JPEG/PNG and crafted
headers). After every example the node must be alive and publish skeletons for the next good
frame. Deterministic (derandomize) and bounded: 2 x 80 examples, about 15 s."""
from __future__ import annotations

import math
import struct

import cv2
import pytest
from builtin_interfaces.msg import Time as TimeMsg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.msg import RegionOfInterest as Roi
from std_msgs.msg import Header
from test_node import FRAME, Harness, fresh_skeletons, info_for

from conftest import photo
from pose_ros.ros.convert import rgb_to_image

# no shrinking: a failing example waits 30 s for skeletons, so shrinking would take many minutes;
# derandomized, so a failure reproduces exactly
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

U32 = st.integers(0, 2**32 - 1)
stamps = st.one_of(
    st.none(),  # "now": the message is paired with frames
    st.builds(TimeMsg, sec=st.integers(-2**31, 2**31 - 1), nanosec=U32),
    st.builds(TimeMsg, sec=st.sampled_from([-1, 0, 2**31 - 1]), nanosec=st.sampled_from([0, 10**9, 2**32 - 1])),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([0.0, -1.0, 1e-300, 1e300, math.nan, math.inf, 500.0, 256.0]))
sizes = st.one_of(st.integers(0, 64), st.sampled_from([512, 4096, 65535, 2**31, 2**32 - 1]))
encodings = st.one_of(st.sampled_from(["rgb8", "bgr8", "rgba8", "mono8", "mono16", "16UC1", "32FC1", "yuv422",
                                       "uyvy", "yuyv", "8UC3", "bayer_rggb8", "", "RGB8", "jpeg"]),
                      st.text(max_size=12))


@st.composite
def images(draw) -> Image:
    w, h = draw(sizes), draw(sizes)
    return Image(width=w, height=h, encoding=draw(encodings), is_bigendian=draw(st.integers(0, 255)),
                 step=draw(st.one_of(sizes, st.just(min(w * 3, 2**32 - 1)))), data=draw(st.binary(max_size=4096)))


@st.composite
def infos(draw) -> CameraInfo:
    msg = CameraInfo(width=draw(st.one_of(sizes, st.just(512))), height=draw(st.one_of(sizes, st.just(512))),
                     distortion_model=draw(st.one_of(st.sampled_from(
                         ["plumb_bob", "rational_polynomial", "equidistant", ""]), st.text(max_size=20))),
                     binning_x=draw(U32), binning_y=draw(U32))
    msg.k = draw(st.lists(floats, min_size=9, max_size=9))
    msg.d = draw(st.lists(floats, max_size=14))
    msg.r = draw(st.lists(floats, min_size=9, max_size=9))
    msg.p = draw(st.lists(floats, min_size=12, max_size=12))
    msg.roi = Roi(x_offset=draw(U32), y_offset=draw(U32), width=draw(U32), height=draw(U32),
                  do_rectify=draw(st.booleans()))
    return msg


@st.composite
def depths(draw) -> Image:
    img = draw(images())
    img.encoding = draw(st.one_of(st.sampled_from(["16UC1", "32FC1", "mono16"]), encodings))
    return img


def _publish(h: Harness, pub, msg, stamp) -> None:
    msg.header = Header(stamp=stamp if stamp is not None else h.client.get_clock().now().to_msg(),
                        frame_id=FRAME)
    pub.publish(msg)


def _alive_and_publishing(h: Harness, **send) -> None:
    assert h.node._worker is not None and h.node._worker.is_alive()
    fresh_skeletons(h, **send)


@pytest.fixture(scope="module")
def raw(models):
    h = Harness(use_depth=True, log_throttle=30.0)
    yield h
    h.close()


@pytest.fixture(scope="module")
def compressed(models):
    h = Harness(use_compressed=True, log_throttle=30.0)
    yield h
    h.close()


@FUZZ
@given(kind=st.sampled_from(["image", "camera_info", "depth"]), image=images(), info=infos(), depth=depths(),
       stamp=stamps, paired=st.booleans())
def test_fuzz_raw_inputs(raw, kind, image, info, depth, stamp, paired):
    """One fuzzed message; a fuzzed image may come with a valid CameraInfo of its size and
    stamp (``paired``) so that decoding is reached, not only the CameraInfo check."""
    h = raw
    if stamp is None:
        stamp = h.client.get_clock().now().to_msg()
    header = Header(stamp=stamp, frame_id=FRAME)
    if kind == "image" and paired and 0 < image.width <= 4096 and 0 < image.height <= 4096:
        h.pub_info.publish(info_for(image.width, image.height, header))
    if kind == "depth" and paired:
        h.pub_info.publish(info_for(512, 512, header))
    msg, pub = {"image": (image, h.pub_image), "camera_info": (info, h.pub_info),
                "depth": (depth, h.pub_depth)}[kind]
    _publish(h, pub, msg, stamp)
    if kind != "image" and paired:  # the photo with the fuzzed CameraInfo / depth of its stamp
        h.pub_image.publish(rgb_to_image(photo("astronaut"), header))
    _alive_and_publishing(h)


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    return buf.tobytes()


def _png_small() -> bytes:
    ok, buf = cv2.imencode(".png", photo("astronaut")[:32, :32])
    return buf.tobytes()


JPEG, PNG = _jpeg(), _png_small()


@st.composite
def compressed_payloads(draw) -> bytes:
    base = draw(st.sampled_from([JPEG, PNG]))
    how = draw(st.sampled_from(["random", "truncate", "flip", "size"]))
    if how == "random":
        return draw(st.binary(max_size=2048))
    if how == "truncate":
        return base[:draw(st.integers(0, len(base)))]
    if how == "flip":
        b = bytearray(base)
        for _ in range(draw(st.integers(1, 20))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    # header claiming another size (JPEG SOF0 / PNG IHDR)
    w, h = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    b = bytearray(base)
    if base is JPEG:
        i = b.index(b"\xff\xc0")
        b[i + 5:i + 9] = struct.pack(">HH", h, w)
    else:
        b[16:24] = struct.pack(">II", w, h)
    return bytes(b)


@FUZZ
@given(data=compressed_payloads(), fmt=st.one_of(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8"]),
                                                 st.text(max_size=20)),
       info=st.one_of(st.none(), infos()), stamp=stamps)
def test_fuzz_compressed_inputs(compressed, data, fmt, info, stamp):
    h = compressed
    if stamp is None:
        stamp = h.client.get_clock().now().to_msg()
    if info is not None:
        _publish(h, h.pub_info, info, stamp)
    else:  # a valid CameraInfo of the photo's size: the payload reaches the decoder
        h.pub_info.publish(info_for(512, 512, Header(stamp=stamp, frame_id=FRAME)))
    _publish(h, h.pub_compressed, CompressedImage(format=fmt, data=data), stamp)
    _alive_and_publishing(h, compressed=JPEG)
