"""3D composition: 2D persons + camera (+ depth, + floor) -> camera-frame 3D per joint.

One object, :class:`Composer3D`, used by both pose_node and ``pose-ros infer``. Output frame:
the camera's optical frame (x right, y down, z forward), metres. Building blocks live in
:mod:`pose_ros.core.lift` (depth back-projection, PnP).

Lifting modes (``Composer3D(mode=...)``):

* ``depth``: aligned depth back-projection only; joints without valid depth are NaN.
* ``world_landmarks``: the model's metric world landmarks placed with PnP (monocular; the
  distance inherits the model's size error: a skeleton predicted 10 % small lands 10 % near).
* ``ground_plane``: world landmarks placed with PnP, then scaled about the camera centre (which
  keeps every reprojection) so that the lowest visible foot joint (heel / toe, ankle when
  neither is visible; inside the image) rests on the floor: PnP gives the direction, the
  floor the distance. Needs the camera-to-floor transform (a frame whose z = 0 plane is the
  floor, z up). Falls back to ``world_landmarks`` when no foot is visible, the camera is not
  above the feet, the viewing ray meets the floor at a grazing angle, or the scale is
  implausible (the person is not standing on that floor).
* ``lifter``: the 2D-to-3D lifting network (:mod:`pose_ros.core.lifter`, trained on synthetic
  people; ``lifter_model`` or the shipped checkpoint for the layout) gives the root-relative
  skeleton in the camera's axes; a translation-only least-squares fit to the 2D keypoints
  places it (SOURCE_LIFTED). With a camera-to-floor transform (and ``use_floor``) it is then
  scaled onto the floor as in ``ground_plane`` (mode ``lifter_ground_plane``), with the same
  fallbacks. Works for any layout naming the lifter's joints (BlazePose-33, COCO-17 ...);
  a depth image is not used in this mode.
* ``auto``: ground_plane when a floor transform is given, else world_landmarks; with a depth
  image, joints with valid depth take it (SOURCE_DEPTH) and the others keep the monocular value.

Orientation of the world landmarks (``orientation=``): ``pnp`` solves rotation and translation
with PnP (SQPnP + LM); ``ray`` keeps the model's orientation, rotated by the rotation that takes
the optical axis to the viewing ray through the person's ROI centre (the landmark model sees
an off-centre person through that ray), and solves the translation only (linear least squares).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .camera import PinholeCamera
from .geometry import Rigid
from .imageconv import MAX_DEPTH, MIN_DEPTH
from .lift import SOURCE_DEPTH, SOURCE_MONOCULAR, depth_positions, pnp_positions

LIFTING_MODES = ("auto", "world_landmarks", "depth", "ground_plane", "lifter")
SOURCE_LIFTED = 3  # Keypoint.SOURCE_LIFTED
ORIENTATIONS = ("pnp", "ray")
# height of a foot joint above the sole when standing, m (approximate adult anatomy):
# BlazePose's heel / foot_index sit at the back of the heel / tip of the big toe.
FOOT_HEIGHTS = {"left_heel": 0.03, "right_heel": 0.03, "left_foot_index": 0.02,
                "right_foot_index": 0.02, "left_ankle": 0.08, "right_ankle": 0.08}
_SOLE = ("left_heel", "right_heel", "left_foot_index", "right_foot_index")
_ANKLES = ("left_ankle", "right_ankle")


@dataclass
class Body3D:
    """3D of one person.

    positions: (K, 3) float64 metres in the camera's optical frame, NaN where unknown.
    sources: (K,) uint8 Keypoint.SOURCE_* per joint. mode: what placed the monocular joints /
    the person: ``depth`` (depth only), ``world_landmarks``, ``ground_plane``, ``lifter``,
    ``lifter_ground_plane`` or ``none``.
    scale: the ground-plane scale applied to the PnP skeleton (1.0 otherwise).
    note: why ground_plane fell back (empty when it did not).
    """

    positions: np.ndarray
    sources: np.ndarray
    mode: str
    scale: float = 1.0
    note: str = ""

    def to_json(self) -> dict:
        """JSON-ready dict: camera-frame positions (m, None for NaN), sources, mode, scale."""
        return {"mode": self.mode, "scale": round(float(self.scale), 5), "note": self.note,
                "position": [[None if not np.isfinite(c) else round(float(c), 4) for c in p]
                             for p in self.positions],
                "position_source": [int(s) for s in self.sources]}


def ray_rotation(camera: PinholeCamera, pixel) -> np.ndarray:
    """(3, 3) rotation taking the optical axis (0, 0, 1) to the viewing ray through ``pixel``
    (x, y px; distortion honoured), about the axis perpendicular to both (minimal rotation)."""
    m = camera.normalized(np.asarray(pixel, np.float64).reshape(1, 2))[0]
    d = np.array([m[0], m[1], 1.0])
    d /= np.linalg.norm(d)
    axis = np.cross([0.0, 0.0, 1.0], d)
    s, c = np.linalg.norm(axis), d[2]
    if s < 1e-12:
        return np.eye(3)
    import transforms3d

    return transforms3d.axangles.axangle2mat(axis / s, math.atan2(s, c))


def translation_only(world: np.ndarray, keypoints: np.ndarray, weights: np.ndarray,
                     camera: PinholeCamera, min_weight: float = 0.5) -> np.ndarray | None:
    """Translation t (3,) m such that ``world + t`` projects onto ``keypoints`` (linear least
    squares on undistorted normalised points, visibility-weighted; rotation kept as given).

    world: (K, 3) metres already in camera orientation; keypoints: (K, 2) px; weights: (K,).
    None with fewer than 3 usable joints or a solution not in front of the camera."""
    use = (np.asarray(weights) >= min_weight) & np.isfinite(keypoints).all(1) & np.isfinite(world).all(1)
    if use.sum() < 3:
        return None
    m = camera.normalized(keypoints[use])
    q = np.asarray(world, np.float64)[use]
    ok = np.isfinite(m).all(1)
    if ok.sum() < 3:
        return None
    m, q, w = m[ok], q[ok], np.sqrt(np.asarray(weights, np.float64)[use][ok])
    n = len(m)
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[0::2, 0], A[0::2, 2], b[0::2] = 1.0, -m[:, 0], m[:, 0] * q[:, 2] - q[:, 0]
    A[1::2, 1], A[1::2, 2], b[1::2] = 1.0, -m[:, 1], m[:, 1] * q[:, 2] - q[:, 1]
    ww = np.repeat(w, 2)
    t = np.linalg.lstsq(A * ww[:, None], b * ww, rcond=None)[0]
    if not np.isfinite(t).all() or t[2] + q[:, 2].min() <= 0:
        return None
    return t


class Composer3D:
    """2D persons -> camera-frame 3D per joint (see the module docstring for the modes).

    mode: one of LIFTING_MODES. depth_window: odd side (px) of the per-joint depth median.
    min_depth, max_depth: plausible depth range, m. min_pnp_visibility: joints used for PnP.
    orientation: ``pnp`` or ``ray``. min_foot_visibility: foot joints trusted for the floor
    contact. min_ray_angle_deg: the ray through the foot must meet the floor at least this
    steeply. scale_range: accepted ground-plane scale of the PnP skeleton (outside: fallback).
    lifter_model: lifter checkpoint (.npz) for mode ``lifter`` ("": the shipped one for the
    person's layout). use_floor: mode ``lifter`` uses a given floor transform.
    Raises ValueError (with the accepted values) for bad settings.
    """

    def __init__(self, mode: str = "auto", depth_window: int = 5, min_depth: float = MIN_DEPTH,
                 max_depth: float = MAX_DEPTH, min_pnp_visibility: float = 0.5,
                 orientation: str = "pnp", min_foot_visibility: float = 0.5,
                 min_ray_angle_deg: float = 5.0, scale_range: tuple[float, float] = (0.6, 1.6),
                 lifter_model: str = "", use_floor: bool = True) -> None:
        if mode not in LIFTING_MODES:
            raise ValueError(f"lifting mode {mode!r} unknown; use one of {', '.join(LIFTING_MODES)}")
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation {orientation!r} unknown; use one of {', '.join(ORIENTATIONS)}")
        if depth_window < 1 or depth_window % 2 == 0:
            raise ValueError(f"depth_window must be odd and >= 1, got {depth_window}")
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        if not 0 < scale_range[0] < 1 < scale_range[1]:
            raise ValueError(f"scale_range must bracket 1, e.g. (0.6, 1.6), got {scale_range}")
        if not 0 <= min_ray_angle_deg < 90:
            raise ValueError(f"min_ray_angle_deg must be in [0, 90), got {min_ray_angle_deg}")
        self.mode, self.orientation = mode, orientation
        self.depth_window, self.min_depth, self.max_depth = int(depth_window), min_depth, max_depth
        self.min_pnp_visibility, self.min_foot_visibility = min_pnp_visibility, min_foot_visibility
        self.min_ray_angle_deg, self.scale_range = min_ray_angle_deg, tuple(scale_range)
        self.lifter_model, self.use_floor = str(lifter_model or ""), bool(use_floor)
        if mode == "lifter" and self.lifter_model:
            from .lifter import load_cached

            load_cached(self.lifter_model)  # a wrong path fails here, with the fix in the message

    def __call__(self, persons, camera: PinholeCamera, depth_m: np.ndarray | None = None,
                 camera_to_floor: Rigid | None = None) -> list[Body3D]:
        """All persons of one frame; see :meth:`compose`."""
        return [self.compose(p, camera, depth_m, camera_to_floor) for p in persons]

    # -- one person -------------------------------------------------------------------------
    def compose(self, person, camera: PinholeCamera, depth_m: np.ndarray | None = None,
                camera_to_floor: Rigid | None = None) -> Body3D:
        """3D of one :class:`~pose_ros.core.pipeline.Person` (any layout; ``world`` may be None).

        depth_m: (H, W) float32 metres aligned with the image (NaN invalid) or None.
        camera_to_floor: pose of the camera's optical frame in the floor frame (x_floor =
        R x_cam + t; z = 0 is the floor, z up), e.g. TF floor_frame <- camera frame, or None.
        """
        k = len(person.keypoints)
        pos = np.full((k, 3), np.nan)
        src = np.zeros(k, np.uint8)
        if self.mode == "depth":
            if depth_m is None:
                return Body3D(pos, src, "none", note="depth mode without a depth image")
            return self._with_depth(person, camera, depth_m, Body3D(pos, src, "depth"))
        want_floor = self.mode == "ground_plane" or (self.mode == "auto" and camera_to_floor is not None)
        if self.mode == "lifter":
            body = self._lifted(person, camera)
            if camera_to_floor is not None and self.use_floor and body.mode == "lifter":
                self._on_floor(person, body, camera, camera_to_floor)
            return body
        body = self._monocular(person, camera)
        if want_floor:
            if camera_to_floor is None:
                body.note = "ground_plane without a camera-to-floor transform"
            elif body.mode == "world_landmarks":
                self._on_floor(person, body, camera, camera_to_floor)
        if self.mode == "auto" and depth_m is not None:
            body = self._with_depth(person, camera, depth_m, body)
        return body

    def _with_depth(self, person, camera, depth_m, body: Body3D) -> Body3D:
        dpos, ok = depth_positions(person.keypoints, depth_m, camera, self.depth_window,
                                   min_depth=self.min_depth, max_depth=self.max_depth)
        body.positions[ok] = dpos[ok]
        body.sources[ok] = SOURCE_DEPTH
        if ok.any() and body.mode == "none":
            body.mode = "depth"
        return body

    def _monocular(self, person, camera: PinholeCamera) -> Body3D:
        """World landmarks placed in the camera frame (mode world_landmarks) or NaN (none)."""
        k = len(person.keypoints)
        none = Body3D(np.full((k, 3), np.nan), np.zeros(k, np.uint8), "none")
        world = getattr(person, "world", None)
        if world is None or np.shape(world) != (k, 3):
            none.note = "no world landmarks for this layout"
            return none
        world = np.asarray(world, np.float64)
        kp = np.asarray(person.keypoints, np.float64)
        if self.orientation == "ray":
            roi = getattr(person, "roi", None)
            centre = (roi.cx, roi.cy) if roi is not None else np.nanmean(kp, 0)
            world_c = world @ ray_rotation(camera, centre).T
            t = translation_only(world_c, kp, person.visibility, camera, self.min_pnp_visibility)
            pos = None if t is None else world_c + t
        else:
            res = pnp_positions(world, kp, person.visibility, camera, self.min_pnp_visibility)
            pos = None if res is None else res[0]
        if pos is None:
            none.note = "too few visible joints to place the world landmarks"
            return none
        return Body3D(pos, np.full(k, SOURCE_MONOCULAR, np.uint8), "world_landmarks")

    def _lifted(self, person, camera: PinholeCamera) -> Body3D:
        """The lifter's root-relative skeleton placed by translation (mode ``lifter``) or NaN."""
        from .lifter import default_model_path, load_cached

        k = len(person.keypoints)
        none = Body3D(np.full((k, 3), np.nan), np.zeros(k, np.uint8), "none")
        layout = person.layout
        lifter = load_cached(self.lifter_model or default_model_path(layout.name))
        kp = np.asarray(person.keypoints, np.float64)
        vis = np.asarray(person.visibility, np.float64)
        rel = lifter.lift(kp, vis, camera, layout.names)
        if rel is None:
            none.note = "lifter: hips not found or fewer than 6 usable joints"
            return none
        world = np.full((k, 3), np.nan)
        for j, name in enumerate(lifter.names_out):
            if name in layout.names:
                world[layout.index(name)] = rel[j]
        t = translation_only(world, kp, vis, camera, self.min_pnp_visibility)
        if t is None:
            none.note = "lifter: too few visible joints to place the skeleton"
            return none
        have = np.isfinite(world).all(1)
        src = np.where(have, SOURCE_LIFTED, 0).astype(np.uint8)
        return Body3D(world + t, src, "lifter")

    def _on_floor(self, person, body: Body3D, camera: PinholeCamera, camera_to_floor: Rigid) -> None:
        """Scale the PnP skeleton about the camera centre so its lowest foot joint stands on
        the floor (in place); leaves it unchanged with ``note`` set when that is not possible.
        Foot joints count when visible enough and inside the image."""
        names = person.layout.names
        vis = np.asarray(person.visibility, np.float64)
        kp = np.asarray(person.keypoints, np.float64)
        inside = np.isfinite(kp).all(1) & (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (
            kp[:, 0] <= camera.width - 1) & (kp[:, 1] <= camera.height - 1)
        ok = np.isfinite(body.positions).all(1) & inside & (vis >= self.min_foot_visibility)
        cand = [i for i, n in enumerate(names) if n in _SOLE and ok[i]]
        if not cand:
            cand = [i for i, n in enumerate(names) if n in _ANKLES and ok[i]]
        if not cand:
            body.note = "no visible foot: ground plane not used"
            return
        up = camera_to_floor.R.T @ np.array([0.0, 0.0, 1.0])  # floor's up axis in the camera frame
        cam_h = float(camera_to_floor.t[2])  # camera height above the floor, m
        g = body.positions[cand] @ up  # height of each foot joint relative to the camera, m
        j = int(np.argmin(g))
        i = cand[j]
        foot_h = FOOT_HEIGHTS.get(names[i], 0.0)
        if cam_h <= foot_h + 0.05 or g[j] >= 0:
            body.note = "camera not above the feet: ground plane not used"
            return
        ray = body.positions[i] / np.linalg.norm(body.positions[i])
        if math.degrees(math.asin(min(1.0, abs(float(ray @ up))))) < self.min_ray_angle_deg:
            body.note = "ray to the feet nearly parallel to the floor: ground plane not used"
            return
        s = (foot_h - cam_h) / float(g[j])
        if not self.scale_range[0] <= s <= self.scale_range[1]:
            body.note = (f"ground-plane scale {s:.2f} outside {self.scale_range}: not standing on "
                         "this floor? ground plane not used")
            return
        body.positions *= s
        body.scale, body.mode = s, "lifter_ground_plane" if body.mode == "lifter" else "ground_plane"
