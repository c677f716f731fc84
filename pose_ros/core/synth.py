"""Synthetic training images: articulated stick figures with known keypoints (numpy + OpenCV).

A figure is a frontal human outline built from joint angles: a torso polygon (shoulders, hips),
upper/lower arms and legs as thick lines, a head disc with coloured dots at the nose, eyes and
ears. Poses (torso lean, head tilt, limb angles, limb lengths), scale and position are random;
several people per image, drawn back to front; random smooth-noise backgrounds with distractor
shapes and pixel noise. Nothing here needs torch (:mod:`pose_ros.core.train_demo` does).

Conventions: images are RGB uint8 ``(H, W, 3)``; keypoints are float64 ``(N, K, 2)`` pixels
``(x right, y down)`` in the requested layout's joint order; pixel ``(row i, col j)`` is the
point ``(x = j, y = i)`` (as in :mod:`pose_ros.core.decode`). The person's left side is on the
image's right (a figure faces the camera).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .skeletons import Layout

# every joint a figure has; layouts take theirs by name
JOINTS = (
    "nose", "neck", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_J = {n: i for i, n in enumerate(JOINTS)}

# drawn segments (joint a, joint b) -> RGB colour; upper and lower limb segments differ so the
# elbows and knees are visible, left (blue / cyan / violet) and right (orange / yellow / red)
# differ so the sides are.
SEGMENT_COLOURS: dict[tuple[str, str], tuple[int, int, int]] = {
    ("left_hip", "left_knee"): (90, 60, 230), ("left_knee", "left_ankle"): (170, 120, 255),
    ("right_hip", "right_knee"): (220, 40, 40), ("right_knee", "right_ankle"): (255, 130, 150),
    ("left_shoulder", "left_elbow"): (30, 110, 255), ("left_elbow", "left_wrist"): (40, 220, 255),
    ("right_shoulder", "right_elbow"): (255, 130, 20), ("right_elbow", "right_wrist"): (255, 230, 30),
}
TORSO_COLOUR = (60, 190, 70)
HEAD_COLOUR = (235, 200, 170)
DOT_COLOURS: dict[str, tuple[int, int, int]] = {
    "nose": (200, 0, 0), "left_eye": (0, 0, 160), "right_eye": (0, 120, 0),
    "left_ear": (120, 0, 160), "right_ear": (160, 90, 0),
}
# figure proportions as fractions of the figure height (crown to soles, about)
_LEN = {"neck": 0.30, "shoulder": 0.11, "hip": 0.08, "upper_arm": 0.15, "forearm": 0.14,
        "thigh": 0.23, "shin": 0.23, "nose": 0.11}


@dataclass
class Scene:
    """One synthetic image.

    image: (H, W, 3) uint8 RGB. keypoints: (N, K, 2) float64 pixels in ``layout`` order.
    visible: (N, K) bool, True where the joint lies inside the image (occlusion by another
    figure is not tracked, as COCO's v=1). boxes: (N, 4) float64 ``[x, y, w, h]`` of each
    figure's keypoints. thickness: (N,) int limb line widths in pixels; head_radius: (N,)
    float64 pixels."""

    image: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    thickness: np.ndarray
    head_radius: np.ndarray
    layout: Layout


def layout_joint_index(layout: Layout) -> np.ndarray:
    """(K,) indices into :data:`JOINTS` for the layout's joints; ValueError naming the joints a
    figure does not have (supported: coco_17, openpose_18, trt_pose_18)."""
    missing = [n for n in layout.names if n not in _J]
    if missing:
        raise ValueError(f"synthetic figures have no joints {missing} needed by layout "
                         f"{layout.name!r}; use coco_17, openpose_18 or trt_pose_18")
    return np.array([_J[n] for n in layout.names], np.int64)


def random_pose(rng: np.random.Generator, height: float, centre=(0.0, 0.0)) -> np.ndarray:
    """Joint positions of one random figure: (len(JOINTS), 2) float64 pixels.

    height: figure height in pixels (crown to soles, about); centre: (x, y) of the pelvis."""
    h = float(height)
    lean = rng.normal(0.0, 0.12)
    up = np.array([np.sin(lean), -np.cos(lean)])
    right = np.array([np.cos(lean), np.sin(lean)])  # image right = the figure's left side
    s = rng.uniform(0.9, 1.1, 8)  # per-segment length jitter
    p = np.zeros((len(JOINTS), 2))
    pelvis = np.asarray(centre, np.float64)
    neck = pelvis + _LEN["neck"] * h * up
    p[_J["neck"]] = neck
    width = rng.uniform(0.85, 1.15)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        p[_J[f"{side}_shoulder"]] = neck + sign * _LEN["shoulder"] * width * h * right
        p[_J[f"{side}_hip"]] = pelvis + sign * _LEN["hip"] * width * h * right
    tilt = rng.normal(0.0, 0.15)
    hu = np.cos(tilt) * up + np.sin(tilt) * right
    hr = np.array([-hu[1], hu[0]])  # hu rotated: the head's own "right"
    nose = neck + _LEN["nose"] * h * hu
    p[_J["nose"]] = nose
    for side, sign in (("left", 1.0), ("right", -1.0)):
        p[_J[f"{side}_eye"]] = nose + 0.03 * h * hu + sign * 0.025 * h * hr
        p[_J[f"{side}_ear"]] = nose + 0.012 * h * hu + sign * 0.055 * h * hr
    down = -up
    for i, (side, sign) in enumerate((("left", 1.0), ("right", -1.0))):
        out = sign * right  # away from the body's midline

        def direction(angle: float, out: np.ndarray = out) -> np.ndarray:
            return np.cos(angle) * down + np.sin(angle) * out

        a1 = rng.uniform(-0.3, 2.8)
        a2 = a1 + rng.uniform(-2.3, 1.2)
        sh = p[_J[f"{side}_shoulder"]]
        el = sh + _LEN["upper_arm"] * s[4 * i] * h * direction(a1)
        p[_J[f"{side}_elbow"]] = el
        p[_J[f"{side}_wrist"]] = el + _LEN["forearm"] * s[4 * i + 1] * h * direction(a2)
        t1 = rng.uniform(-0.25, 0.9)
        t2 = t1 + rng.uniform(-0.9, 0.7)
        hp = p[_J[f"{side}_hip"]]
        kn = hp + _LEN["thigh"] * s[4 * i + 2] * h * direction(t1)
        p[_J[f"{side}_knee"]] = kn
        p[_J[f"{side}_ankle"]] = kn + _LEN["shin"] * s[4 * i + 3] * h * direction(t2)
    return p


def limb_thickness(height: float) -> int:
    """Line width in pixels of a figure's limbs (>= 1)."""
    return max(1, int(round(0.05 * height)))


def head_radius(height: float) -> float:
    """Radius in pixels of a figure's head disc."""
    return 0.07 * height


def draw_figure(image: np.ndarray, joints: np.ndarray, height: float) -> None:
    """Draw one figure in place on (H, W, 3) uint8 ``image`` (RGB): torso polygon, legs, arms,
    head disc, face dots. joints: (len(JOINTS), 2) pixels from :func:`random_pose`. Lines are
    LINE_8 (no anti-aliasing) so every drawn pixel has exactly its part's colour."""
    sh = 4  # cv2 fixed-point: coordinates * 16 (sub-pixel accuracy)
    q = np.round(joints * (1 << sh)).astype(np.int32)
    t = limb_thickness(height)
    torso = q[[_J["left_shoulder"], _J["right_shoulder"], _J["right_hip"], _J["left_hip"]]]
    cv2.fillConvexPoly(image, torso, TORSO_COLOUR, cv2.LINE_8, sh)
    for (a, b), colour in SEGMENT_COLOURS.items():
        cv2.line(image, tuple(q[_J[a]]), tuple(q[_J[b]]), colour, t, cv2.LINE_8, sh)
    nose, eyes = joints[_J["nose"]], joints[[_J["left_eye"], _J["right_eye"]]].mean(0)
    centre = np.round((0.5 * (nose + eyes)) * (1 << sh)).astype(np.int32)
    cv2.circle(image, tuple(centre), int(round(head_radius(height) * (1 << sh))), HEAD_COLOUR,
               -1, cv2.LINE_8, sh)
    r = max(1, int(round(0.012 * height)))
    for name, colour in DOT_COLOURS.items():
        cv2.circle(image, tuple(q[_J[name]]), r * (1 << sh), colour, -1, cv2.LINE_8, sh)


def random_background(rng: np.random.Generator, size: tuple[int, int], clutter: int = 4) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour noise (a 4 x 4 random grid, cubic-upsampled) plus
    ``clutter`` random rectangles, ellipses and lines."""
    h, w = size
    grid = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    img = np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
    for _ in range(int(clutter)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = sorted(rng.integers(0, w, 2))
        y0, y1 = sorted(rng.integers(0, h, 2))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
        elif kind == 1:
            cv2.ellipse(img, (int((x0 + x1) // 2), int((y0 + y1) // 2)),
                        (int(max(1, (x1 - x0) // 2)), int(max(1, (y1 - y0) // 2))),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), colour,
                     int(rng.integers(1, max(2, h // 16))))
    return img


def render_scene(rng: np.random.Generator, layout: Layout, size: tuple[int, int] = (96, 96),
                 n_people: tuple[int, int] = (1, 3), height: tuple[float, float] = (0.45, 0.9),
                 centre: tuple[float, float] | None = None, centre_jitter: float = 0.0,
                 background: str = "random", noise: float = 6.0) -> Scene:
    """A random image with several figures.

    size: (H, W); n_people: inclusive range of the number of figures; height: range of figure
    heights as fractions of H. centre: None places every pelvis uniformly over the image
    (figures may be cut by the border); (cx, cy) in fractions of (W, H) places one figure's
    bounding-box centre there (top-down crops), jittered by ``centre_jitter`` x the figure
    height. background: ``"random"`` (:func:`random_background`) or ``"plain"`` (uniform grey
    128, no clutter). noise: Gaussian pixel noise sigma (0 keeps drawn colours exact)."""
    if background not in ("random", "plain"):
        raise ValueError(f"background must be 'random' or 'plain', not {background!r}")
    idx = layout_joint_index(layout)
    h, w = size
    img = (random_background(rng, size) if background == "random"
           else np.full((h, w, 3), 128, np.uint8))
    n = int(rng.integers(n_people[0], n_people[1] + 1))
    people, heights = [], []
    for _ in range(n):
        hh = rng.uniform(*height) * h
        if centre is None:
            c = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.2, 0.8) * h)
            j = random_pose(rng, hh, c)
        else:
            j = random_pose(rng, hh)
            box_c = 0.5 * (j.min(0) + j.max(0)) - np.array([0.0, 0.03 * hh])  # head disc above
            want = np.array([centre[0] * w, centre[1] * h]) + rng.normal(0, centre_jitter * hh, 2)
            j += want - box_c
        people.append(j)
        heights.append(hh)
    order = np.argsort(heights)  # small (far) figures first, larger ones drawn over them
    for i in order:
        draw_figure(img, people[i], heights[i])
    if noise > 0:
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    kp = np.stack(people)[:, idx] if n else np.zeros((0, len(idx), 2))
    vis = (kp[..., 0] >= 0) & (kp[..., 0] <= w - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= h - 1)
    boxes = np.array([[*p.min(0), *(p.max(0) - p.min(0))] for p in kp]).reshape(-1, 4)
    hs = np.asarray(heights, np.float64)
    return Scene(img, kp, vis, boxes, np.array([limb_thickness(x) for x in hs], np.int64),
                 head_radius(hs), layout)
