"""ROS-free core of pose_ros: numpy / torch / OpenCV only (never imports rclpy)."""
