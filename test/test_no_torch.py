"""torch is optional: an onnxruntime-only install runs the CLI and the node.

The no-torch processes get a ``sitecustomize`` (first on PYTHONPATH) that puts a meta-path
finder in front of all others; it answers every ``torch`` / ``torch.*`` import with
ModuleNotFoundError, exactly what Python does where torch is not installed. They write the
ONNX files into a fresh cache (from the .tflite, without torch) and must give the same
keypoints as the LiteRT pipeline run here (the oracle: the original .tflite files).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from conftest import ROOT, photo
from pose_ros.core.camera import default_camera
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.msg import SkeletonArray
from pose_ros.ros.convert import camera_info_msg, rgb_to_image
from pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

BLOCKER = '''\
import sys


class _NoTorch:
    """Behave as if torch were not installed (test_no_torch.py)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
'''


@pytest.fixture
def no_torch_env(tmp_path):
    """Environment for subprocesses in which `import torch` fails."""
    site = tmp_path / "no_torch_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr  # the blocker works
    return env


@pytest.fixture(scope="module")
def litert_reference(models):
    """Keypoints (33 x 2 px) of the LiteRT pipeline on astronaut.png: the oracle."""
    # whole-image detector (the node below too): with the tile pyramid two crops of the
    # astronaut rank almost equally and backends' last-bit differences may pick either one
    # refine_passes 0 (also below): re-cropping turns last-bit backend differences into other crops
    persons = PosePipeline(PipelineConfig(backend="litert", static_image_mode=True, detector_tiles=0,
                                          refine_passes=0))(
        photo("astronaut"))
    assert len(persons) == 1
    return persons[0].keypoints


def test_importing_core_cli_and_node_does_not_import_torch():
    code = ("import sys\n"
            "import pose_ros.core.pipeline, pose_ros.core.engines, pose_ros.cli, pose_ros.ros.pose_node\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", ["auto", "onnxruntime"])
def test_cli_infer_without_torch(models, tmp_path, no_torch_env, litert_reference, backend):
    img_path = tmp_path / "astronaut.png"
    cv2.imwrite(str(img_path), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    cache = tmp_path / "cache"  # no ONNX cached yet: it is written without torch
    r = subprocess.run(
        [sys.executable, shutil.which("pose-ros"), "infer", str(img_path), "--out", str(tmp_path / "out"),
         "--json", str(tmp_path / "frames.json"), "--quiet", "--backend", backend, "--static", "--detector-tiles", "0", "--refine-passes", "0",
         "--cache-dir", str(cache), "--detector-model", str(models["pose_detection.tflite"]),
         "--landmark-model", str(models["pose_landmark_full.tflite"])],
        env=no_torch_env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert len(list((cache / "onnx").glob("*.onnx"))) == 2
    (person,) = json.loads((tmp_path / "frames.json").read_text())[0]["persons"]
    kp = np.array([[k["x"], k["y"]] for k in person["keypoints"]])
    assert np.linalg.norm(kp - litert_reference, axis=1).max() < 0.7


def test_pose_node_without_torch(models, tmp_path, no_torch_env, ros_node, litert_reference):
    ns = "/no_torch"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pose_ros.ros.pose_node", "--ros-args", "-r", f"__ns:={ns}",
         "-p", "static_image_mode:=true", "-p", "refine_passes:=0", "-p", "detector_tiles:=0",
         "-p", f"cache_dir:={tmp_path / 'cache'}",
         "-p", f"detector_model:={models['pose_detection.tflite']}",
         "-p", f"landmark_model:={models['pose_landmark_full.tflite']}"],
        env=no_torch_env, cwd=str(ROOT / "test"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        got: list[SkeletonArray] = []
        ros_node.create_subscription(SkeletonArray, f"{ns}/skeletons", got.append, RESULT_QOS)
        pub_i = ros_node.create_publisher(Image, f"{ns}/image", SENSOR_QOS)
        pub_c = ros_node.create_publisher(CameraInfo, f"{ns}/camera_info", SENSOR_QOS)
        rgb = photo("astronaut")
        ex = rclpy.executors.SingleThreadedExecutor(context=ros_node.context)
        ex.add_node(ros_node)
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline and proc.poll() is None:
            h = Header(stamp=ros_node.get_clock().now().to_msg(), frame_id="camera_optical_frame")
            pub_c.publish(camera_info_msg(default_camera(rgb.shape[1], rgb.shape[0]), h))
            pub_i.publish(rgb_to_image(rgb, h))
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.05)
        ex.remove_node(ros_node)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert got, f"no skeletons from the torch-less pose_node (alive={alive}):\n{out[-3000:]}"
    (skel,) = got[-1].skeletons
    kp = np.array([[k.x, k.y] for k in skel.keypoints])
    assert np.linalg.norm(kp - litert_reference, axis=1).max() < 0.7
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2


def test_smpl_node_without_torch_names_the_fix(no_torch_env):
    """SMPL needs torch: without it smpl_node exits 1 with one line saying how to install it."""
    r = subprocess.run([sys.executable, "-m", "pose_ros.ros.smpl_node"], env=no_torch_env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "requirements/torch.txt" in r.stderr and "smpl:=true" in r.stderr, r.stderr
