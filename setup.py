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
    # the shipped 2D-to-3D lifter checkpoint (pose-ros train-lifter) and its training record
    package_data={"pose_ros.core": ["data/*.npz", "data/*.json"]},
    # The same ranges as requirements/distro.txt (test/test_requirements.py keeps them equal):
    # wide enough for the numpy of Ubuntu 22.04 / 24.04. Exact pins for the bare-machine venv are
    # in requirements/core.txt.
    install_requires=[
        "numpy>=1.21",
        "opencv-python-headless>=4.5.4,<5",
        "scipy>=1.8",
        "transforms3d>=0.3.1",
        "PyYAML>=5.4",
        "tqdm>=4.57",
        "flatbuffers>=1.12",
        "onnxruntime>=1.16",
        "onnx>=1.14",
        "tflite>=2.10",
        "scikit-image>=0.19",
        "matplotlib>=3.5",
        "mcap-ros2-support>=0.5",
    ],
    # torch is optional (the `torch` / `tensorrt` backends): >= 2.3 covers JetPack 6 (2.3-2.5)
    # and is the first torch that works with numpy 2
    # tensorrt: TensorRT itself comes from JetPack / NVIDIA; >= 10.12 needs the fp16 ONNX converter
    extras_require={"torch": ["torch>=2.3"], "tensorrt": ["onnxconverter-common>=1.14"]},
    entry_points={"console_scripts": ["pose-ros = pose_ros.cli:main"]},
)
