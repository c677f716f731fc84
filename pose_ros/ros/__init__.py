"""Thin rclpy adapters over pose_ros.core: nodes, message conversion, markers, TF."""
