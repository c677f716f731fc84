"""A TFMessage published on /tf by one process is received by another."""
from __future__ import annotations

from tf2_msgs.msg import TFMessage

from conftest import spin_until
from pose_ros.ros.qos import TF_QOS


def test_tf_between_processes(ros_node, spawn):
    talker = spawn("-m", "pose_ros.ros.roundtrip_demo", "--role", "tf")
    edges: set[tuple[str, str]] = set()
    ros_node.create_subscription(
        TFMessage, "/tf", lambda m: edges.update((t.header.frame_id, t.child_frame_id) for t in m.transforms),
        TF_QOS)
    want = {("camera_color_optical_frame", "body_1"), ("body_1", "l_wrist_1")}
    assert spin_until(ros_node, lambda: want <= edges, timeout=30), \
        f"got {edges}; talker alive={talker.poll() is None}"


def test_tf2_msgs_is_wire_compatible():
    # Same type name and field as the real tf2_msgs: the type hash follows from these.
    assert TFMessage.get_fields_and_field_types() == {
        "transforms": "sequence<geometry_msgs/TransformStamped>"}
    assert TFMessage.__module__.startswith("tf2_msgs.msg")
