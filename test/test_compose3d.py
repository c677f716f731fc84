"""core/compose3d.py on synthetic scenes with a known floor, camera and person (issue 10
items 1, 2): the oracle is the hand-built scene, never the code under test."""
from __future__ import annotations

import math

import numpy as np
import pytest
import transforms3d

from pose_ros.core import synthetic3d
from pose_ros.core.compose3d import Composer3D, ray_rotation, translation_only
from pose_ros.core.geometry import Rigid
from pose_ros.core.lift import SOURCE_DEPTH, SOURCE_MONOCULAR, SOURCE_NONE
from pose_ros.core.models.blazepose import Roi
from pose_ros.core.pipeline import Person
from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17

CAM = synthetic3d.CAM
scene, standing_body, camera_to_floor = synthetic3d.scene, synthetic3d.standing_body, synthetic3d.camera_to_floor


def abs_err(a, b) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def test_scene_is_what_it_claims():
    """The synthetic scene: heels 3 cm and toes 2 cm above the floor, person in view."""
    person, true, c2f = scene()
    in_floor = c2f.apply(true)
    assert in_floor[BLAZEPOSE_33.index("left_heel"), 2] == pytest.approx(0.03)
    assert in_floor[BLAZEPOSE_33.index("right_foot_index"), 2] == pytest.approx(0.02)
    assert ((person.keypoints >= 0) & (person.keypoints < (1280, 960))).all()


@pytest.mark.parametrize("distance,lateral,height,pitch", [(4.0, 0.0, 1.3, 15.0), (6.0, 1.5, 1.0, 8.0),
                                                            (2.5, -0.5, 2.2, 35.0)])
def test_ground_plane_recovers_the_true_distance(distance, lateral, height, pitch):
    """A skeleton predicted 12 % small: PnP places it 12 % near; the floor restores the
    distance and size (scale 1 / 0.88) to millimetres."""
    person, true, c2f = scene(distance, lateral, height=height, pitch=pitch)
    mono = Composer3D("world_landmarks")(([person]), CAM)[0]
    gp = Composer3D("ground_plane").compose(person, CAM, camera_to_floor=c2f)
    assert mono.mode == "world_landmarks" and gp.mode == "ground_plane", gp.note
    assert abs_err(mono.positions, true) > 0.1 * distance * 0.8
    assert abs_err(gp.positions, true) < 0.005
    assert gp.scale == pytest.approx(1 / 0.88, rel=1e-3)
    assert (gp.sources == SOURCE_MONOCULAR).all()
    # auto picks the ground plane when a floor is given, world landmarks otherwise
    assert Composer3D().compose(person, CAM, camera_to_floor=c2f).mode == "ground_plane"
    assert Composer3D().compose(person, CAM).mode == "world_landmarks"


def test_ground_plane_uses_the_lowest_foot():
    """One foot lifted 20 cm (walking): the standing foot decides the distance."""
    person, true, c2f = scene()
    lifted = [BLAZEPOSE_33.index(n) for n in ("left_ankle", "left_heel", "left_foot_index")]
    in_floor = c2f.apply(true)
    in_floor[lifted, 2] += 0.2
    true = c2f.inverse().apply(in_floor)
    person.keypoints = CAM.project(true).astype(np.float32)
    mid = (true[23] + true[24]) / 2
    person.world = ((true - mid) * 0.9).astype(np.float32)
    gp = Composer3D("ground_plane").compose(person, CAM, camera_to_floor=c2f)
    assert gp.mode == "ground_plane"
    assert abs_err(gp.positions, true) < 0.005


def test_ground_plane_ankles_when_sole_joints_hidden():
    person, true, c2f = scene()
    for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index"):
        person.visibility[BLAZEPOSE_33.index(n)] = 0.1
    gp = Composer3D("ground_plane").compose(person, CAM, camera_to_floor=c2f)
    assert gp.mode == "ground_plane" and abs_err(gp.positions, true) < 0.005


@pytest.mark.parametrize("case,note", [("no_feet", "no visible foot"), ("feet_outside", "no visible foot"),
                                       ("grazing", "parallel"),
                                       ("low_camera", "not above"), ("far_floor", "scale")])
def test_ground_plane_falls_back_to_pnp(case, note):
    """Feet hidden, a ray nearly parallel to the floor, a camera at foot level, a floor that
    does not fit the person: the PnP placement is kept, with the reason."""
    if case == "grazing":  # camera 0.3 m high, level, person 25 m away: ray ~0.6 deg to the floor
        person, true, c2f = scene(distance=25.0, height=0.3, pitch=0.0)
    elif case == "low_camera":
        person, true, c2f = scene(height=0.05, pitch=0.0, distance=5.0)
    else:
        person, true, c2f = scene()
    if case == "no_feet":
        for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index", "left_ankle",
                  "right_ankle"):
            person.visibility[BLAZEPOSE_33.index(n)] = 0.0
    if case == "feet_outside":  # the model guesses feet below the image border (cropped photo)
        for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index", "left_ankle",
                  "right_ankle"):
            person.keypoints[BLAZEPOSE_33.index(n), 1] = CAM.height + 5
    if case == "far_floor":  # the floor is said to be 4 m lower than it is
        c2f = Rigid(c2f.t + (0, 0, 4.0), c2f.q)
    mono = Composer3D("world_landmarks").compose(person, CAM)
    gp = Composer3D("ground_plane").compose(person, CAM, camera_to_floor=c2f)
    assert gp.mode == "world_landmarks" and note in gp.note and gp.scale == 1.0
    np.testing.assert_allclose(gp.positions, mono.positions)


def test_ray_rotation_maps_the_optical_axis_to_the_ray():
    px = (1100.0, 150.0)
    R = ray_rotation(CAM, px)
    ray = np.array([(px[0] - 640) / 900, (px[1] - 480) / 900, 1.0])
    np.testing.assert_allclose(R @ [0, 0, 1], ray / np.linalg.norm(ray), atol=1e-12)
    axis, _ = transforms3d.axangles.mat2axangle(R)
    assert abs(axis[2]) < 1e-9  # minimal rotation: about an axis in the image plane
    np.testing.assert_allclose(ray_rotation(CAM, (640, 480)), np.eye(3), atol=1e-12)


def test_ray_orientation_places_an_off_centre_person():
    """World landmarks as the crop sees them (rotated with the viewing ray, 22 deg off axis):
    orientation=ray undoes that rotation, the translation-only solve recovers the position;
    without the rotation the skeleton is tilted and misplaced."""
    person, true, _ = scene(distance=4.0, lateral=1.8, model_scale=1.0, crop_view=True)
    off = math.degrees(math.acos(ray_rotation(CAM, person.keypoints.mean(0))[2, 2]))
    assert off > 20
    body = Composer3D("world_landmarks", orientation="ray").compose(person, CAM)
    assert abs_err(body.positions, true) < 0.002
    # the uncorrected orientation with the same translation solve: centimetres off
    t = translation_only(person.world.astype(np.float64), person.keypoints, person.visibility, CAM)
    assert abs_err(person.world + t, true) > 0.05


def test_translation_only_against_a_known_offset():
    world = standing_body() - (0, 0, 0.95)
    t_true = np.array([0.3, -0.2, 5.0])
    kp = CAM.project(world + t_true)
    t = translation_only(world, kp, np.ones(33), CAM)
    np.testing.assert_allclose(t, t_true, atol=1e-9)
    assert translation_only(world, kp, np.zeros(33), CAM) is None  # nothing visible


def test_other_layouts_depth_only_or_nan():
    """A COCO-17 person without world landmarks: depth where valid, NaN elsewhere."""
    n = len(COCO_17)
    kp = np.column_stack([np.linspace(100, 300, n), np.linspace(100, 400, n)]).astype(np.float32)
    person = Person(2, kp, np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32),
                    None, 1.0, Roi(200, 250, 300, 0), np.zeros(4, np.float32), layout=COCO_17)
    depth = np.full((960, 1280), 2.5, np.float32)
    depth[:, 245:] = np.nan  # joints right of x=245 (and their windows) have no depth
    for mode in ("auto", "depth", "world_landmarks", "ground_plane"):
        body = Composer3D(mode).compose(person, CAM, depth, camera_to_floor(1.3, 10))
        has = kp[:, 0] < 245
        if mode in ("auto", "depth"):
            assert body.mode == "depth"
            np.testing.assert_allclose(body.positions[has, 2], 2.5)
            np.testing.assert_allclose(body.positions[has, 0], (kp[has, 0] - 640) / 900 * 2.5, rtol=1e-5)
            assert (body.sources[has] == SOURCE_DEPTH).all()
        else:
            assert body.mode == "none" and "world landmarks" in body.note
        assert np.isnan(body.positions[~has]).all() and (body.sources[~has] == SOURCE_NONE).all()
    assert Composer3D("depth").compose(person, CAM).mode == "none"


def test_auto_with_depth_overrides_per_joint():
    person, true, c2f = scene()
    depth = np.full((960, 1280), np.nan, np.float32)
    i = BLAZEPOSE_33.index("nose")
    x, y = np.round(person.keypoints[i]).astype(int)
    depth[y - 3:y + 4, x - 3:x + 4] = true[i, 2]
    body = Composer3D().compose(person, CAM, depth, c2f)
    assert body.sources[i] == SOURCE_DEPTH and (np.delete(body.sources, i) == SOURCE_MONOCULAR).all()
    np.testing.assert_allclose(body.positions[i, 2], true[i, 2], rtol=1e-6)
    assert body.mode == "ground_plane"
    js = body.to_json()
    assert js["position_source"][i] == SOURCE_DEPTH and len(js["position"]) == 33


@pytest.mark.parametrize("kwargs,word", [({"mode": "lifterx"}, "lifting mode"),
                                         ({"orientation": "x"}, "orientation"),
                                         ({"depth_window": 4}, "odd"),
                                         ({"scale_range": (1.2, 2.0)}, "bracket")])
def test_bad_settings_raise_with_the_fix(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Composer3D(**kwargs)
