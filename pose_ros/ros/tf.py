"""TF output: tf2_ros's broadcaster when the distro has it, else TFMessage on /tf directly.

Both put the same bytes on the wire (tf2_msgs/msg/TFMessage on /tf, reliable, depth 100),
so RViz and tf2 listeners cannot tell the difference.
"""
from __future__ import annotations

from collections.abc import Sequence

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node

from .qos import TF_QOS


class TfBroadcaster:
    """Send many transforms as one TFMessage per call."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._broadcaster = None
        self._pub = None
        try:
            from tf2_ros import TransformBroadcaster  # optional: full ROS distro only
        except ImportError:
            from tf2_msgs.msg import TFMessage  # distro or pose_ros's compat build

            self._tf_message = TFMessage
            self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
        else:
            self._broadcaster = TransformBroadcaster(node, qos=TF_QOS)

    @property
    def uses_tf2_ros(self) -> bool:
        return self._broadcaster is not None

    def destroy(self) -> None:
        """Release the /tf publisher (lifecycle cleanup)."""
        if self._pub is not None:
            self._node.destroy_publisher(self._pub)
        elif self._broadcaster is not None and hasattr(self._broadcaster, "pub_tf"):
            self._node.destroy_publisher(self._broadcaster.pub_tf)
        self._pub = self._broadcaster = None

    def send(self, transforms: Sequence[TransformStamped]) -> None:
        if not transforms:
            return
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(list(transforms))
        else:
            self._pub.publish(self._tf_message(transforms=list(transforms)))
