"""`colcon test` (launch_testing): ros2 launch pose_ros pose.launch.py for real.

Runs for the plain camera path (this test publishes the camera: a real photo + CameraInfo),
compressed:=true (JPEG), lifecycle:=true (this test drives configure / activate through the
lifecycle services) and demo:=true; each must deliver skeletons with a person, and after
launch's shutdown (SIGINT) every process must have exited with 0.

Registered by CMakeLists.txt with add_launch_test when launch_testing_ament_cmake is found;
by hand: `launch_test test/launch/test_pose_launch.py`. pytest (`make test`) does not collect
this folder (pytest.ini: norecursedirs).
"""
import os
import threading
import time
import unittest

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
import rclpy
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

CASES = ["camera", "compressed", "lifecycle", "demo"]
ARGS = {"camera": {}, "compressed": {"compressed": "true"}, "lifecycle": {"lifecycle": "true"},
        "demo": {"demo": "true"}}


@pytest.mark.launch_test
@launch_testing.parametrize("case", CASES)
def generate_test_description(case):
    launch_file = os.path.join(get_package_share_directory("pose_ros"), "launch", "pose.launch.py")
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file),
                                 launch_arguments=list(ARGS[case].items())),
        launch_testing.actions.ReadyToTest(),
    ])


def _astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[..., :3])


class TestSkeletonsArrive(unittest.TestCase):

    def test_skeletons_with_a_person(self, case):
        import cv2
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from std_msgs.msg import Header

        from pose_ros.core.camera import default_camera
        from pose_ros.msg import SkeletonArray
        from pose_ros.ros.convert import camera_info_msg, rgb_to_image

        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        node = rclpy.create_node("launch_test_probe", context=ctx)
        got = []
        node.create_subscription(SkeletonArray, "/skeletons", got.append,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        pub_image = node.create_publisher(Image, "/camera/color/image_raw", best_effort)
        pub_jpeg = node.create_publisher(CompressedImage, "/camera/color/image_raw/compressed", best_effort)
        pub_info = node.create_publisher(CameraInfo, "/camera/color/camera_info", best_effort)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                executor.spin_once(timeout_sec=0.05)

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        try:
            rgb = _astronaut()
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            if case == "lifecycle":
                cli = node.create_client(ChangeState, "/pose_node/change_state")
                self.assertTrue(cli.wait_for_service(timeout_sec=60))
                for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
                    fut = cli.call_async(ChangeState.Request(transition=Transition(id=tid)))
                    deadline = time.monotonic() + 120
                    while not fut.done() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.assertTrue(fut.done() and fut.result().success, f"transition {tid}")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(m.skeletons for m in got):
                if case != "demo":
                    h = Header(stamp=node.get_clock().now().to_msg(), frame_id="camera_color_optical_frame")
                    pub_info.publish(camera_info_msg(default_camera(rgb.shape[1], rgb.shape[0]), h))
                    if case == "compressed":
                        pub_jpeg.publish(CompressedImage(header=h, format="jpeg", data=jpeg))
                    else:
                        pub_image.publish(rgb_to_image(rgb, h))
                time.sleep(0.2)
            self.assertTrue(any(m.skeletons for m in got), f"no skeletons with a person ({case})")
        finally:
            stop.set()
            spinner.join(5)
            node.destroy_node()
            rclpy.shutdown(context=ctx)


@launch_testing.post_shutdown_test()
class TestCleanShutdown(unittest.TestCase):

    def test_exit_codes_and_no_traceback(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)  # every node exited 0 after SIGINT
        for out in proc_output:
            text = out.text.decode(errors="replace")
            self.assertNotIn("Traceback", text)
            self.assertNotIn("KeyboardInterrupt", text)
