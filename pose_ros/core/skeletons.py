"""Keypoint layouts as data: joint names, limbs, colours and layout-to-layout mappings.

Every layout is a :class:`Layout`; code never hard-codes joint indices, it looks them up
by name (``layout.index("left_wrist")``). Colours are RGB uint8 tuples.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Layout:
    """A keypoint layout.

    names: joint names, snake_case, in the model's output order.
    limbs: pairs of joint indices drawn as bones.
    """

    name: str
    names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"layout {self.name!r} has no joint {name!r}; known joints: {', '.join(self.names)}"
            ) from None

    def limb_colors(self) -> np.ndarray:
        """Per-limb RGB colours (L x 3 uint8): left side blue, right side orange, centre green."""
        out = np.empty((len(self.limbs), 3), np.uint8)
        for i, (a, b) in enumerate(self.limbs):
            side = self.names[a] + self.names[b]
            out[i] = (40, 120, 255) if "left" in side else (255, 140, 30) if "right" in side else (60, 200, 60)
        return out


def _limbs(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    idx = {n: i for i, n in enumerate(names)}
    return tuple((idx[a], idx[b]) for a, b in pairs)


_BLAZEPOSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
BLAZEPOSE_33 = Layout(
    "blazepose_33",
    _BLAZEPOSE_NAMES,
    _limbs(_BLAZEPOSE_NAMES, [
        ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
        ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"),
        ("right_eye_inner", "right_eye"), ("right_eye", "right_eye_outer"),
        ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
        ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"), ("left_wrist", "left_pinky"), ("left_wrist", "left_index"),
        ("left_wrist", "left_thumb"), ("left_pinky", "left_index"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("right_wrist", "right_pinky"), ("right_wrist", "right_index"),
        ("right_wrist", "right_thumb"), ("right_pinky", "right_index"),
        ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
        ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_heel"),
        ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
        ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_heel"),
        ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
    ]),
)

_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_17 = Layout(
    "coco_17",
    _COCO_NAMES,
    _limbs(_COCO_NAMES, [
        ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("left_eye", "right_eye"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
        ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ]),
)

# OpenPose COCO-18 (CMU, poseParameters.cpp POSE_COCO_BODY_PARTS / POSE_BODY_PART_PAIRS): 18 joints,
# 19 PAF limbs; the last two (shoulder-ear) carry PAFs but are not drawn by OpenPose.
_OPENPOSE_18_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
OPENPOSE_18 = Layout(
    "openpose_18",
    _OPENPOSE_18_NAMES,
    tuple((a, b) for a, b in ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                              (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15),
                              (15, 17), (2, 16), (5, 17))),
)
# OpenPose BODY_25: 25 joints, 26 PAF limbs (POSE_BODY_25_BODY_PARTS / POSE_BODY_PART_PAIRS).
_BODY_25_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
    "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
BODY_25 = Layout(
    "body_25",
    _BODY_25_NAMES,
    ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
     (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (2, 17), (5, 18), (14, 19),
     (19, 20), (14, 21), (11, 22), (22, 23), (11, 24)),
)
# NVIDIA trt_pose human_pose.json: COCO-17 + neck; 21 links (the json's 1-based "skeleton", 0-based here).
_TRT_POSE_NAMES = _COCO_NAMES + ("neck",)
TRT_POSE_18 = Layout(
    "trt_pose_18",
    _TRT_POSE_NAMES,
    tuple((a - 1, b - 1) for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3),
        (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (18, 1), (18, 6), (18, 7), (18, 12), (18, 13))),
)
# PAF channel pairs (x, y) per limb, indices into the PAF block of the network output, for layouts
# whose channel order is not simply (2l, 2l+1). OpenPose: POSE_MAP_INDEX in poseParameters.cpp.
PAF_CHANNELS: dict[str, tuple[tuple[int, int], ...]] = {
    "openpose_18": ((12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3),
                    (4, 5), (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33),
                    (36, 37), (18, 19), (26, 27)),
    "body_25": ((0, 1), (14, 15), (22, 23), (16, 17), (18, 19), (24, 25), (26, 27), (6, 7), (2, 3),
                (4, 5), (8, 9), (10, 11), (12, 13), (30, 31), (32, 33), (36, 37), (34, 35), (38, 39),
                (20, 21), (28, 29), (40, 41), (42, 43), (44, 45), (46, 47), (48, 49), (50, 51)),
    # trt_pose (parse/paf_score_graph.cpp): channel 2k is the row (y) component, 2k + 1 the column (x)
    "trt_pose_18": tuple((2 * k + 1, 2 * k) for k in range(21)),
}

# MPII Human Pose, 16 joints in the dataset's order (PCKh uses head_top - upper_neck).
_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
)
MPII_16 = Layout(
    "mpii_16",
    _MPII_NAMES,
    ((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12),
     (12, 7), (13, 7), (13, 14), (14, 15)),
)

LAYOUTS: dict[str, Layout] = {
    lay.name: lay for lay in (BLAZEPOSE_33, COCO_17, OPENPOSE_18, BODY_25, TRT_POSE_18, MPII_16)
}


def get_layout(name: str) -> Layout:
    """Look a layout up by name, with the known names in the error."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def mapping(src: Layout, dst: Layout) -> np.ndarray:
    """Index array (len(dst),) int64 into ``src`` for every joint of ``dst`` that ``src`` has
    under the same name; -1 where it has none."""
    return np.array([src._index.get(n, -1) for n in dst.names], np.int64)


def convert(points: np.ndarray, src: Layout, dst: Layout, fill: float = np.nan) -> np.ndarray:
    """Re-order keypoints (..., len(src), C) into ``dst`` (..., len(dst), C); missing joints
    are ``fill``."""
    idx = mapping(src, dst)
    out = np.full(points.shape[:-2] + (len(dst), points.shape[-1]), fill, points.dtype)
    ok = idx >= 0
    out[..., ok, :] = points[..., idx[ok], :]
    return out
