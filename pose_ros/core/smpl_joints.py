"""SMPL 24-joint tree as plain data (numpy only, no torch): names, parents, the built-in body's
rest joints. :mod:`pose_ros.core.smpl` (torch) and :mod:`pose_ros.core.synthpose` (numpy) share it.

Model frame: metres, y up, +x towards the body's left, +z forwards (rest T-pose, arms along +-x).
"""
from __future__ import annotations

import numpy as np

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
#: parent of each SMPL joint (-1 for the root), the official kintree_table[0]
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_JOINTS = 24

#: rest (T-pose) joint locations of the built-in body, metres, SMPL model frame
BUILTIN_JOINTS = np.array([
    [0.000, -0.22, 0.02],    # pelvis
    [0.070, -0.31, 0.02],    # left_hip
    [-0.070, -0.31, 0.02],   # right_hip
    [0.000, -0.10, 0.00],    # spine1
    [0.100, -0.70, 0.01],    # left_knee
    [-0.100, -0.70, 0.01],   # right_knee
    [0.000, 0.03, 0.02],     # spine2
    [0.090, -1.09, -0.03],   # left_ankle
    [-0.090, -1.09, -0.03],  # right_ankle
    [0.000, 0.09, 0.03],     # spine3
    [0.115, -1.15, 0.10],    # left_foot
    [-0.115, -1.15, 0.10],   # right_foot
    [0.000, 0.29, -0.01],    # neck
    [0.075, 0.20, 0.01],     # left_collar
    [-0.075, 0.20, 0.01],    # right_collar
    [0.000, 0.36, 0.03],     # head
    [0.175, 0.225, -0.02],   # left_shoulder
    [-0.175, 0.225, -0.02],  # right_shoulder
    [0.430, 0.215, -0.04],   # left_elbow
    [-0.430, 0.215, -0.04],  # right_elbow
    [0.685, 0.22, -0.035],   # left_wrist
    [-0.685, 0.22, -0.035],  # right_wrist
    [0.770, 0.215, -0.045],  # left_hand
    [-0.770, 0.215, -0.045],  # right_hand
])
