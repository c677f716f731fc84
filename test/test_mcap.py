"""McapRecorder (what `make demo` records with): zstd-compressed chunks large enough to hold
several camera frames, readable by the mcap tools (mcap reader + mcap-ros2-support decoder).

Real rclpy nodes over loopback DDS, real photos; the oracle is the frames we published.
"""
from __future__ import annotations

import numpy as np
import pytest
import rclpy
from mcap.reader import make_reader
from mcap_ros2.reader import read_ros2_messages
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from conftest import photo
from pose_ros.msg import SkeletonArray
from pose_ros.ros.convert import rgb_to_image
from pose_ros.ros.mcap_record import McapRecorder

N = 24
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=N, reliability=ReliabilityPolicy.RELIABLE)


def camera_frames(n: int) -> list[np.ndarray]:
    """n 480x640 RGB frames: the astronaut photo drifting 3 px a frame over a grey room, as a
    camera watching a slowly moving person would see it (no two frames equal)."""
    person = photo("astronaut")[:448, :448]
    frames = []
    for i in range(n):
        f = np.full((480, 640, 3), 90, np.uint8)
        f[32:480, 40 + 3 * i:488 + 3 * i] = person
        frames.append(f)
    return frames


def record(path, frames, **kwargs) -> dict[str, int]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        pub_node = rclpy.create_node("mcap_test_pub", context=ctx)
        rec_node = rclpy.create_node("mcap_test_rec", context=ctx)
        rec = McapRecorder(rec_node, path, {"image": (Image, QOS), "skeletons": (SkeletonArray, QOS)},
                           **kwargs)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(pub_node)
        ex.add_node(rec_node)
        pub_i = pub_node.create_publisher(Image, "image", QOS)
        pub_s = pub_node.create_publisher(SkeletonArray, "skeletons", QOS)
        for _ in range(200):  # discovery
            if pub_i.get_subscription_count() and pub_s.get_subscription_count():
                break
            ex.spin_once(timeout_sec=0.02)
        for i, f in enumerate(frames):
            h = Header(frame_id="camera")
            h.stamp.sec, h.stamp.nanosec = 100 + i, 0
            pub_i.publish(rgb_to_image(f, h))
            pub_s.publish(SkeletonArray(header=h))
            ex.spin_once(timeout_sec=0.0)
        for _ in range(1000):
            if rec.counts["image"] == len(frames) and rec.counts["skeletons"] == len(frames):
                break
            ex.spin_once(timeout_sec=0.02)
        rec.close()
        return dict(rec.counts)
    finally:
        rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    frames = camera_frames(N)
    path = tmp_path_factory.mktemp("mcap") / "rec.mcap"
    counts = record(path, frames)
    return path, frames, counts


def test_recording_reads_back_with_mcap_ros2(recorded):
    path, frames, counts = recorded
    assert counts == {"image": N, "skeletons": N}
    images = [m for m in read_ros2_messages(str(path)) if m.channel.topic == "/image"]
    skeletons = [m for m in read_ros2_messages(str(path)) if m.channel.topic == "/skeletons"]
    assert len(images) == N and len(skeletons) == N
    assert images[0].schema.name == "sensor_msgs/msg/Image"
    for m, f in zip(sorted(images, key=lambda m: m.ros_msg.header.stamp.sec), frames, strict=True):
        img = m.ros_msg
        assert (img.height, img.width, img.encoding) == (480, 640, "rgb8")
        np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(480, 640, 3), f)
    assert sorted(m.ros_msg.header.stamp.sec for m in skeletons) == list(range(100, 100 + N))


def test_recording_is_zstd_chunked_and_small(recorded):
    path, frames, _ = recorded
    with open(path, "rb") as fh:
        summary = make_reader(fh).get_summary()
    chunks = summary.chunk_indexes
    assert chunks and {c.compression for c in chunks} == {"zstd"}
    # several frames per chunk: what lets zstd find the repetition between frames
    assert summary.statistics.message_count / len(chunks) >= 4
    raw = sum(f.nbytes for f in frames)  # pixel bytes alone, without headers
    size = path.stat().st_size
    # measured here: 0.07 of the raw pixels (8 MiB zstd chunks); 1 MiB chunks (mcap's
    # default) 0.29; no compression 1.0
    assert size < 0.15 * raw, f"{size / 1e6:.1f} MB for {raw / 1e6:.1f} MB of frames"


def test_bad_compression_names_the_choices(tmp_path, ros_node):
    with pytest.raises(ValueError, match="lz4"):
        McapRecorder(ros_node, tmp_path / "x.mcap", {}, compression="gzip")
