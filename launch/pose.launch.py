"""ros2 launch pose_ros pose.launch.py image:=/camera/color/image_raw camera_info:=... [...]"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("pose_ros")
    args = [
        DeclareLaunchArgument("image", default_value="/camera/color/image_raw",
                              description="colour image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/color/camera_info",
                              description="CameraInfo of the colour image"),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="subscribe to <image>/compressed (CompressedImage)"),
        DeclareLaunchArgument("depth", default_value="",
                              description="aligned depth image topic; empty = monocular 3D"),
        DeclareLaunchArgument("depth_camera_info", default_value="",
                              description="CameraInfo of the aligned depth image"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "pose.yaml"]),
                              description="pose_node parameter file"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto | torch | onnxruntime | tensorrt | litert"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("target_frame", default_value="",
                              description="frame for 3D output, markers and TF (empty: image frame)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz/pose.rviz"),
        DeclareLaunchArgument("demo", default_value="false",
                              description="start demo_source (a real photo as a camera) and listen to it"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="run pose_lifecycle_node (managed: configure + activate it "
                                          "with your lifecycle manager) instead of pose_node"),
        DeclareLaunchArgument("demo_source", default_value="astronaut",
                              description="demo_source's source: astronaut | camera | file | v4l2:N"),
    ]
    lc = LaunchConfiguration
    use_depth = PythonExpression(["'", lc("depth"), "' != ''"])
    overrides = {"backend": lc("backend"), "device": lc("device"), "target_frame": lc("target_frame"),
                 "use_compressed": lc("compressed"), "use_depth": use_depth}
    camera_remaps = [("image", lc("image")), ("image/compressed", [lc("image"), "/compressed"]),
                     ("camera_info", lc("camera_info")), ("depth/image", lc("depth")),
                     ("depth/camera_info", lc("depth_camera_info"))]
    plain = PythonExpression(["'", lc("demo"), "' != 'true' and '", lc("lifecycle"), "' != 'true'"])
    managed = PythonExpression(["'", lc("demo"), "' != 'true' and '", lc("lifecycle"), "' == 'true'"])
    pose = Node(
        package="pose_ros", executable="pose_node", name="pose_node", output="screen",
        parameters=[lc("params_file"), overrides], remappings=camera_remaps,
        condition=IfCondition(plain),
    )
    pose_managed = LifecycleNode(
        package="pose_ros", executable="pose_lifecycle_node", name="pose_node", namespace="",
        output="screen", parameters=[lc("params_file"), overrides], remappings=camera_remaps,
        condition=IfCondition(managed),
    )
    demo_pose = Node(  # demo:=true: listen to demo_source instead of a real camera
        package="pose_ros", executable="pose_node", name="pose_node", output="screen",
        parameters=[lc("params_file"), {"backend": lc("backend"), "device": lc("device"),
                                        "target_frame": lc("target_frame")}],
        remappings=[("image", "/demo/image"), ("camera_info", "/demo/camera_info")],
        condition=IfCondition(lc("demo")),
    )
    demo = Node(package="pose_ros", executable="demo_source", name="demo_source", output="screen",
                parameters=[{"source": lc("demo_source")}],
                remappings=[("image", "/demo/image"), ("camera_info", "/demo/camera_info")],
                condition=IfCondition(lc("demo")))
    rviz = Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", PathJoinSubstitution([share, "rviz", "pose.rviz"])],
                condition=IfCondition(lc("rviz")))
    return LaunchDescription([*args, pose, pose_managed, demo_pose, demo, rviz])
