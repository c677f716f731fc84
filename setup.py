"""`pip install .` -- the ROS-free core and the `pose-ros` command, without ROS.

ROS users build with colcon instead (CMakeLists.txt), which also generates pose_ros.msg.
"""
from setuptools import find_packages, setup

setup(
    name="pose_ros",
    version="0.1.0",
    description="Human pose estimation for robots: ROS-free core and CLI of pose_ros",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pose_ros", "pose_ros.*"]),
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8,<5",
        "scipy>=1.10",
        "transforms3d>=0.4",
        "torch>=2.1",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "flatbuffers>=23",
        "tflite>=2.10",
        "scikit-image>=0.21",
        "tqdm>=4.60",
        "PyYAML>=6",
    ],
    entry_points={"console_scripts": ["pose-ros = pose_ros.cli:main"]},
)
