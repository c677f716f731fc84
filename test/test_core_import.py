"""pose_ros.core never needs ROS: it imports with rclpy and every ROS module blocked."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

ROS_MODULES = ("rclpy", "rosidl_runtime_py", "sensor_msgs", "geometry_msgs", "std_msgs",
               "visualization_msgs", "diagnostic_msgs", "tf2_ros", "tf2_msgs", "launch",
               "launch_ros", "cv_bridge", "message_filters", "builtin_interfaces")

BLOCKER = f"""
import importlib.abc, pkgutil, sys
BLOCKED = {ROS_MODULES!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED or name == 'pose_ros.msg':
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
import pose_ros.core
names = [m.name for m in pkgutil.walk_packages(pose_ros.core.__path__, 'pose_ros.core.')]
for n in names:
    __import__(n)
leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
print('imported', len(names) + 1, 'modules; ros modules loaded:', leaked)
sys.exit(1 if leaked else 0)
"""


def test_core_imports_without_ros():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True,
                         timeout=300, cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ros modules loaded: []" in out.stdout


def test_core_sources_have_no_ros_imports():
    bad = []
    for path in Path(ROOT, "pose_ros", "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            bad += [f"{path.name}: {m}" for m in mods if m.split(".")[0] in ROS_MODULES]
    assert not bad, bad
