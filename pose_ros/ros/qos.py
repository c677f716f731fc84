"""QoS profiles used by pose_ros nodes."""
from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

#: Camera input: best effort, keep last 1 -- always process the newest frame, never queue.
SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
)
#: CameraInfo input: best effort like the images, but a short history: under load a depth-1
#: queue loses the CameraInfo of a frame before the worker looks for it.
INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
)
#: Results (skeletons, markers, smpl): reliable so planners see every result, shallow queue.
RESULT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
)
#: /tf as tf2_ros.TransformBroadcaster publishes it (DynamicBroadcasterQoS).
TF_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
)
#: Annotated debug image: reliable (RViz's Image display and rqt default to reliable; a
#: reliable publisher also serves best-effort subscribers), keep last 1 (large messages).
DEBUG_IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
)
