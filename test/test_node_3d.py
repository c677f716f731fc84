"""pose_node's 3D composition parameters over real DDS (issue 10 items 1, 2): `lifting` reaches
core.compose3d, `floor_frame` is looked up in TF (missing: a throttled warning, 2D and PnP 3D
still published)."""
from __future__ import annotations

import math

import pytest
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from test_node import FRAME, Harness, fresh_skeletons

from pose_ros.msg import Keypoint


@pytest.fixture(scope="module")
def harness(models):
    # the crowded-scene detector profile: on the upper-body astronaut photo its crop makes the
    # model place a foot joint inside the image with visibility >= 0.5, which the floor test needs
    # (that detector crop itself: refine_passes 0; re-cropped, the feet leave the image)
    h = Harness(detector_tiles=3, detector_pyramid=True, refine_passes=0)
    yield h
    h.close()


def test_lifting_parameter_reaches_the_composer(harness):
    node = harness.node
    msg = fresh_skeletons(harness)
    kp = msg.skeletons[0].keypoints
    assert {k.position_source for k in kp} == {Keypoint.SOURCE_MONOCULAR}  # auto, no depth, no floor
    assert not node.set_parameters([Parameter("lifting", value="lifterx")])[0].successful
    node.set_parameters([Parameter("lifting", value="depth")])
    try:  # depth-only without a depth image: NaN 3D, the 2D still published
        msg = fresh_skeletons(harness)
        kp = msg.skeletons[0].keypoints
        assert all(k.position_source == Keypoint.SOURCE_NONE and math.isnan(k.position.z) for k in kp)
        assert all(math.isfinite(k.x) for k in kp[:11])
    finally:
        node.set_parameters([Parameter("lifting", value="auto")])


def test_floor_frame_without_tf_warns_and_keeps_pnp(harness):
    node = harness.node
    node.set_parameters([Parameter("floor_frame", value="no_such_floor")])
    try:
        since = len(harness.got["log"])
        msg = fresh_skeletons(harness)
        kp = msg.skeletons[0].keypoints
        assert msg.header.frame_id == FRAME
        assert {k.position_source for k in kp} == {Keypoint.SOURCE_MONOCULAR}
        assert harness.until(lambda: harness.logged("floor_frame 'no_such_floor'", Log.WARN, since),
                             timeout=5)
    finally:
        node.set_parameters([Parameter("floor_frame", value="")])


def test_floor_frame_scales_the_skeleton_onto_the_floor(harness):
    """A level camera H m above the floor (static TF, hand-built): with floor_frame set, the
    published skeleton is the PnP skeleton scaled about the camera centre by s, where H is
    chosen so that s = 1.25 puts the lowest visible foot joint at its height above the sole
    (floor height of a camera-frame point = H - y for a level camera)."""
    from geometry_msgs.msg import TransformStamped
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage

    from pose_ros.core.compose3d import FOOT_HEIGHTS

    node = harness.node
    pnp = fresh_skeletons(harness).skeletons[0].keypoints
    names = [k.name for k in pnp]
    usable = [i for i, k in enumerate(pnp) if k.score >= 0.5 and 0 <= k.x <= 511 and 0 <= k.y <= 511]
    sole = [i for i in usable if names[i].endswith(("heel", "foot_index"))]
    feet = sole or [i for i in usable if names[i].endswith("ankle")]
    assert feet, "the photo's model output has no usable foot joint"
    low = max(feet, key=lambda i: pnp[i].position.y)  # level camera: largest y = lowest
    H = 1.25 * pnp[low].position.y + FOOT_HEIGHTS[names[low]]
    tr = TransformStamped(header=Header(frame_id="floor"), child_frame_id=FRAME)
    tr.transform.translation.z = H
    # optical frame in a z-up floor frame, looking along floor +x: x_cam = -y, y_cam = -z, z_cam = x
    tr.transform.rotation.w, tr.transform.rotation.x = 0.5, -0.5
    tr.transform.rotation.y, tr.transform.rotation.z = 0.5, -0.5
    msg = TFMessage(transforms=[tr])
    harness.pub_static.publish(msg)
    assert harness.until(lambda: node.tf_lookup.lookup("floor", FRAME) is not None,
                         send=lambda: harness.pub_static.publish(msg), timeout=10)
    node.set_parameters([Parameter("floor_frame", value="floor")])
    try:
        kp = fresh_skeletons(harness).skeletons[0].keypoints
        for a, b in zip(kp, pnp, strict=True):
            assert a.position_source == Keypoint.SOURCE_MONOCULAR
            for c in "xyz":
                assert getattr(a.position, c) == pytest.approx(1.25 * getattr(b.position, c), abs=2e-4)
        assert H - kp[low].position.y == pytest.approx(FOOT_HEIGHTS[names[low]], abs=2e-4)
    finally:
        node.set_parameters([Parameter("floor_frame", value="")])
