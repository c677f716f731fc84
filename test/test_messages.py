"""pose_ros messages survive a round trip between two processes over real DDS."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from conftest import ROOT, spin_until
from pose_ros.msg import Keypoint, SkeletonArray, SmplBodyArray
from pose_ros.ros.qos import RESULT_QOS
from pose_ros.ros.roundtrip_demo import canonical, sample_skeletons, sample_smpl


def test_position_source_constants():
    assert (Keypoint.SOURCE_NONE, Keypoint.SOURCE_DEPTH, Keypoint.SOURCE_MONOCULAR,
            Keypoint.SOURCE_LIFTED, Keypoint.SOURCE_TRIANGULATED, Keypoint.SOURCE_SMPL) == (0, 1, 2, 3, 4, 5)


def test_fields_survive_echo_process(ros_node, spawn):
    echo = spawn("-m", "pose_ros.ros.roundtrip_demo", "--role", "echo")
    got = {"skeletons": [], "smpl": []}
    pub_sk = ros_node.create_publisher(SkeletonArray, "in/skeletons", RESULT_QOS)
    pub_smpl = ros_node.create_publisher(SmplBodyArray, "in/smpl", RESULT_QOS)
    ros_node.create_subscription(SkeletonArray, "out/skeletons", got["skeletons"].append, RESULT_QOS)
    ros_node.create_subscription(SmplBodyArray, "out/smpl", got["smpl"].append, RESULT_QOS)
    sk, smpl = sample_skeletons(3), sample_smpl(3)

    def exchanged():
        if not got["skeletons"]:
            pub_sk.publish(sk)
        if not got["smpl"]:
            pub_smpl.publish(smpl)
        return bool(got["skeletons"] and got["smpl"])

    assert spin_until(ros_node, exchanged, timeout=30), f"no echo; echo alive={echo.poll() is None}"
    rx_sk, rx_smpl = got["skeletons"][0], got["smpl"][0]
    assert canonical(rx_sk) == canonical(sk)
    assert canonical(rx_smpl) == canonical(smpl)
    # explicit checks of what matters to users
    assert rx_sk.header.frame_id == "camera_color_optical_frame"
    assert len(rx_sk.skeletons) == 2 and len(rx_sk.skeletons[0].keypoints) == 33
    kps = rx_sk.skeletons[0].keypoints
    assert kps[0].name == "nose" and kps[0].position_source == Keypoint.SOURCE_NONE
    assert all(math.isnan(v) for v in (kps[0].position.x, kps[0].position.y, kps[0].position.z))
    assert {k.position_source for k in kps} == {0, 1, 2, 3, 4, 5}
    assert math.isnan(rx_sk.skeletons[1].body_pose.position.x)
    body = rx_smpl.bodies[0]
    assert len(body.betas) == 10 and len(body.pose) == 72
    np.testing.assert_array_equal(np.asarray(body.pose), np.asarray(smpl.bodies[0].pose, np.float32))
    assert body.fit_error == np.float32(0.0123)


def test_roundtrip_demo_command():
    out = subprocess.run([sys.executable, "-m", "pose_ros.ros.roundtrip_demo", "--count", "10"],
                         capture_output=True, text=True, timeout=120, cwd=str(ROOT / "test"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skeletons: sent 10, received 10, bit-identical 10" in out.stdout
    assert "smpl: sent 10, received 10, bit-identical 10" in out.stdout
