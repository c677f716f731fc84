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

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (BLAZEPOSE_33, COCO_17)}


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
