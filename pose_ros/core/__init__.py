"""ROS-free core of pose_ros: numpy / OpenCV / onnxruntime; torch only for the torch backend.

Never imports rclpy.
"""
