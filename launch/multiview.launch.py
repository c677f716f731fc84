"""ros2 launch pose_ros multiview.launch.py [cameras:=cam_a,cam_b,cam_c] [world_frame:=world] [...]

Multi-camera fusion: one namespaced pose_node per camera (start_pose_nodes:=true) and
multiview_node, which triangulates their skeletons into world_frame. A thin shell: every
decision is made by pose_ros.ros.launch_plan.plan_multiview(), tested without a ROS distro.
`--show-args` lists the arguments with their descriptions.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from pose_ros.ros import launch_plan


def _nodes(context, *args, **kwargs):
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory("pose_ros")
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_plan.MULTIVIEW_ARGS}
    plans = launch_plan.plan_multiview(values, params_file_default=os.path.join(share, "config", "pose.yaml"),
                                       rviz_config=os.path.join(share, "rviz", "multiview.rviz"),
                                       package_available=launch_plan.package_available,
                                       multiview_params_default=os.path.join(share, "config", "multiview.yaml"))
    return [Node(package=p.package, executable=p.executable, name=p.name, namespace=p.namespace,
                 output="screen", parameters=list(p.parameters), remappings=list(p.remappings),
                 arguments=list(p.arguments))
            for p in plans]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
         for a in launch_plan.MULTIVIEW_ARGS]
        + [OpaqueFunction(function=_nodes)])
