"""ros2 launch pose_ros pose.launch.py [image:=/camera/color/image_raw] [namespace:=cam1] [...]

A thin shell: every decision (nodes, remaps, parameters per argument combination) is made by
pose_ros.ros.launch_plan.plan(), which is tested without a ROS distro. `--show-args` lists
the arguments with their descriptions.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from pose_ros.ros import launch_plan


def _nodes(context, *args, **kwargs):
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory("pose_ros")
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_plan.ARGS}
    plans = launch_plan.plan(values, params_file_default=os.path.join(share, "config", "pose.yaml"),
                             rviz_config=os.path.join(share, "rviz", "pose.rviz"),
                             package_available=launch_plan.package_available)
    actions = []
    for p in plans:
        cls = LifecycleNode if p.lifecycle else Node
        actions.append(cls(package=p.package, executable=p.executable, name=p.name,
                           namespace=p.namespace, output="screen", parameters=list(p.parameters),
                           remappings=list(p.remappings), arguments=list(p.arguments)))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
         for a in launch_plan.ARGS]
        + [OpaqueFunction(function=_nodes)])
