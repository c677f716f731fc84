"""The colcon install space holds both the generated messages and our own Python code,
and `pip install .` builds the ROS-free core and the `pose-ros` command."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

from conftest import ROOT

INSTALL = ROOT / "install" / "pose_ros"


def test_msg_and_core_import_from_install_space():
    code = ("import pose_ros.msg, pose_ros.core, pose_ros.ros, pose_ros.cli;"
            "print(pose_ros.msg.__file__); print(pose_ros.core.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", check=True).stdout.split()
    for f in out:
        assert str(INSTALL) in os.path.realpath(os.path.dirname(f)) or str(INSTALL) in f, out


def test_package_xml_declares_real_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "pose_ros"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    for need in ("rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "std_msgs",
                 "tf2_msgs", "builtin_interfaces", "rosidl_default_generators",
                 "rosidl_default_runtime", "python3-numpy", "python3-opencv"):
        assert need in deps, need
    assert root.find("export/build_type").text == "ament_cmake"
    assert "@" in root.find("maintainer").get("email")


def test_executables_and_data_installed():
    assert os.access(INSTALL / "lib" / "pose_ros" / "roundtrip_demo", os.X_OK)
    assert (INSTALL / "share" / "pose_ros" / "config" / "fastdds_loopback.xml").exists()
    assert (INSTALL / "share" / "pose_ros" / "msg" / "SkeletonArray.msg").exists()


def test_pip_wheel_has_core_and_cli(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("pose_ros-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("pose_ros/core/skeletons.py", "pose_ros/core/models/tflite_import.py",
              "pose_ros/core/pipeline.py", "pose_ros/cli.py"):
        assert f in names, f
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pose-ros = pose_ros.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
