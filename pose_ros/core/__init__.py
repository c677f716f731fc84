"""ROS-free core of pose_ros: numpy / OpenCV / onnxruntime; torch only for the torch backend.

Never imports rclpy.
"""
import os as _os

# A robot's CPU is shared with other nodes. OpenMP's default ACTIVE wait policy makes torch's
# threads spin between ops; with one core busy that collapsed the torch backend (2 threads:
# landmarks+detector 16 ms quiet -> 149-1231 ms with one busy core; PASSIVE: 26 ms; measured
# here). It only takes effect if set before torch is first imported, hence here; a user's own
# setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
