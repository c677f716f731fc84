"""Synthetic 3D scenes with a known floor, camera and person (tests and benchmarks/bench_3d.py).

Frames: the floor frame has z up and z = 0 on the floor; the camera frame is the optical frame
(x right, y down, z forward); metres throughout.
"""
from __future__ import annotations

import math

import numpy as np
import transforms3d

from .camera import PinholeCamera
from .compose3d import ray_rotation
from .geometry import Rigid
from .models.blazepose import Roi
from .pipeline import Person
from .skeletons import BLAZEPOSE_33

# a standing adult, body frame: x forward, y to the person's left, z up, origin on the floor
# under the mid-hip (metres); arms a little forward so the skeleton is not planar
_HALF = {"shoulder": (0.0, 0.19, 1.45), "elbow": (0.02, 0.24, 1.17), "wrist": (0.12, 0.26, 0.92),
         "pinky": (0.14, 0.28, 0.86), "index": (0.17, 0.26, 0.85), "thumb": (0.16, 0.23, 0.88),
         "hip": (0.0, 0.10, 0.95), "knee": (0.03, 0.10, 0.50), "ankle": (0.0, 0.10, 0.08),
         "heel": (-0.05, 0.10, 0.03), "foot_index": (0.16, 0.11, 0.02),
         "eye_inner": (0.08, 0.02, 1.66), "eye": (0.08, 0.035, 1.66), "eye_outer": (0.075, 0.05, 1.66),
         "ear": (0.0, 0.075, 1.63)}


def standing_body() -> np.ndarray:
    """(33, 3) BlazePose-33 joints of a 1.7 m person in the body frame above."""
    out = np.zeros((33, 3))
    for i, name in enumerate(BLAZEPOSE_33.names):
        if name == "nose":
            out[i] = (0.10, 0.0, 1.62)
        elif name.startswith("mouth_"):
            out[i] = (0.09, 0.025 if name.endswith("left") else -0.025, 1.58)
        else:
            side, part = name.split("_", 1)
            x, y, z = _HALF[part]
            out[i] = (x, y if side == "left" else -y, z)
    return out


def camera_to_floor(height: float, pitch_deg: float) -> Rigid:
    """Pose of the optical frame in the floor frame (z up): camera at (0, 0, height) looking
    along floor +x, pitched down by pitch_deg."""
    base = np.column_stack([[0, -1, 0], [0, 0, -1], [1, 0, 0]]).astype(float)  # cam x, y, z in floor
    pitch = transforms3d.axangles.axangle2mat([0, 1, 0], math.radians(pitch_deg))  # about floor y
    return Rigid(np.array([0.0, 0.0, height]), transforms3d.quaternions.mat2quat(pitch @ base))


#: 1280 x 960 px, f = 900 px, no distortion
CAM = PinholeCamera(1280, 960, np.array([[900.0, 0, 640], [0, 900, 480], [0, 0, 1]]), np.zeros(0))


def scene(distance=4.0, lateral=0.0, yaw_deg=180.0, height=1.3, pitch=15.0, model_scale=0.88,
          crop_view=False, camera: PinholeCamera | None = None):
    """A person standing on the floor at (distance, lateral), facing yaw_deg (180: towards the
    camera). Returns (Person, true camera-frame joints (33, 3), camera_to_floor). The person's
    world landmarks are the true hip-centred skeleton times ``model_scale`` (a model predicting
    people too small), in camera orientation, or as seen along the ray through the person
    (``crop_view``: what the landmark model sees)."""
    cam = CAM if camera is None else camera
    c2f = camera_to_floor(height, pitch)
    yaw = transforms3d.axangles.axangle2mat([0, 0, 1], math.radians(yaw_deg))
    in_floor = standing_body() @ yaw.T + (distance, lateral, 0.0)
    true = c2f.inverse().apply(in_floor)
    kp = cam.project(true)
    mid_hip = (true[BLAZEPOSE_33.index("left_hip")] + true[BLAZEPOSE_33.index("right_hip")]) / 2
    world = (true - mid_hip) * model_scale
    centre = kp.mean(0)
    if crop_view:
        world = world @ ray_rotation(cam, centre)  # R^T: the model's view along the ray
    n = len(kp)
    roi = Roi(float(centre[0]), float(centre[1]), 400.0, 0.0)
    person = Person(1, kp.astype(np.float32), np.zeros(n, np.float32), np.ones(n, np.float32),
                    np.ones(n, np.float32), world.astype(np.float32), 1.0, roi,
                    np.array([*kp.min(0), *kp.max(0)], np.float32))
    return person, true, c2f
