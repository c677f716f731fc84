"""Multi-person tracking and keypoint smoothing (numpy / scipy / OpenCV, ROS-free).

* :class:`OneEuroFilter`: the 1-Euro filter of Casiez, Roussel and Vogel (CHI 2012),
  element-wise over an array of any shape (keypoints (K, 2) px, positions (K, 3) m).
* :class:`Tracker`: identities across frames. Each frame's people (:class:`Observation`)
  are assigned to tracks by Hungarian assignment (``scipy.optimize.linear_sum_assignment``)
  on a cost from keypoint similarity (OKS against the track's constant-velocity prediction),
  box IoU and, when given, torso colour. A track is *born* (gets its id and is reported)
  after ``track_min_hits`` hits (at least :attr:`Tracker.NESTED_MIN_HITS` when it appears
  inside, or largely over, the box of a person already tracked in that frame: a piece or a
  second skeleton of that person, not a newcomer) and *dies* after ``track_max_misses`` missed frames; a dead
  confirmed track is kept ``track_reid_time`` seconds for re-identification (appearance,
  box size and position) so a person re-found by the detector keeps their id.
  Ids come from :class:`pose_ros.core.pipeline.TrackIds`-like sources (random, unique
  across nodes). Time: every update carries the frame stamp (s); a stamp earlier than the
  last one (bag replay, ``use_sim_time`` restart) or later by more than ``stale_after`` than
  the camera's previous frame (processed or skipped by a busy node) resets all tracks and
  filters (:attr:`Tracker.last_reset` says why).

Settings are read from ``cfg`` on every update (duck-typed: :class:`TrackerConfig` or the
pipeline's config with the same field names), so runtime parameter changes apply at once.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .dedupe import containment, person_extent
from .metrics import oks_matrix

# ------------------------------------------------------------------------------ 1-Euro filter


def smoothing_factor(cutoff, te):
    """alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc) (Casiez 2012, eq. 3/4): cutoff in Hz
    (scalar or array), te sampling period in s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """1-Euro filter (Casiez et al., CHI 2012) applied element-wise to arrays of one shape.

    Per element, with Te the time since the last sample (s)::

        dx      = (x - x_hat_prev) / Te                  # speed, units/s
        dx_hat  = a(d_cutoff) dx + (1 - a(d_cutoff)) dx_hat_prev
        fc      = min_cutoff + beta |dx_hat| / scale      # Hz
        x_hat   = a(fc) x + (1 - a(fc)) x_hat_prev
        a(f)    = 1 / (1 + 1 / (2 pi f Te))

    The first sample passes unchanged (dx_hat = 0). ``scale`` (e.g. the person's size in
    pixels) makes ``beta`` independent of the image resolution: the speed term is in
    scales per second. Non-finite elements pass through and restart their element's state.
    A sample not later than the previous one (same stamp) returns the previous output.
    min_cutoff, d_cutoff in Hz (> 0); beta >= 0 in Hz per (scale/s).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x, t: float, scale: float = 1.0) -> np.ndarray:
        """x: array (any shape, float); t: sample time in s. Returns the filtered array
        (float64, same shape)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        te = float(t) - self._t
        if te <= 0.0:
            return self._x.copy()
        ok = np.isfinite(x) & np.isfinite(self._x)
        dx = np.where(ok, (x - np.where(ok, self._x, 0.0)) / te, 0.0)
        ad = smoothing_factor(self.d_cutoff, te)
        dx_hat = ad * dx + (1.0 - ad) * self._dx
        fc = self.min_cutoff + self.beta * np.abs(dx_hat) / max(float(scale), 1e-12)
        a = smoothing_factor(fc, te)
        x_hat = np.where(ok, a * x + (1.0 - a) * np.where(ok, self._x, 0.0), x)
        self._x, self._dx, self._t = x_hat, np.where(ok, dx_hat, 0.0), float(t)
        return x_hat.copy()


# ---------------------------------------------------------------------------------- tracking


@dataclass
class TrackerConfig:
    """Tracker / smoothing settings (the node's parameters of the same names)."""

    track_min_hits: int = 1  # frames a new person must be seen before it gets an id
    track_max_misses: int = 10  # frames a track survives unseen (predicted) before it is lost
    track_reid_time: float = 5.0  # s a lost track can be re-identified (keeps its id)
    stale_after: float = 2.0  # s: a larger gap between frame stamps resets tracks and filters
    smoothing: bool = True  # 1-Euro filter on 2D keypoints and 3D positions
    smoothing_min_cutoff: float = 1.0  # Hz
    smoothing_beta: float = 10.0  # Hz per (person size / s)
    smoothing_d_cutoff: float = 1.0  # Hz

    def validate(self) -> None:
        _validate(self)


def _validate(cfg) -> None:
    if cfg.track_min_hits < 1 or cfg.track_max_misses < 0:
        raise ValueError(f"track_min_hits must be >= 1 and track_max_misses >= 0, got "
                         f"{cfg.track_min_hits}, {cfg.track_max_misses}")
    for name in ("track_reid_time", "stale_after", "smoothing_beta"):
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("smoothing_min_cutoff", "smoothing_d_cutoff"):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0 Hz, got {getattr(cfg, name)}")


@dataclass
class Observation:
    """One person in one frame, as the tracker sees it.

    keypoints: (K, 2) float pixels; visible: (K,) bool (joints to compare); bbox: (4,) x0, y0,
    x1, y1 px; appearance: optional (B,) non-negative histogram (see :func:`torso_histogram`);
    hint: optional key linking this person to the previous frame's person with the same key
    (e.g. the pipeline's crop-tracking lineage), 0 = none.
    """

    keypoints: np.ndarray
    visible: np.ndarray
    bbox: np.ndarray
    appearance: np.ndarray | None = None
    hint: int = 0


@dataclass
class _Trk:
    track_id: int  # 0 while tentative
    kp: np.ndarray  # (K, 2) last seen
    vel: np.ndarray  # (K, 2) px/s
    visible: np.ndarray
    bbox: np.ndarray
    t: float  # last seen
    hits: int = 1
    misses: int = 0
    appearance: np.ndarray | None = None
    hint: int = 0
    lost_at: float | None = None
    filters: dict = field(default_factory=dict)  # key -> OneEuroFilter

    def predict(self, t: float) -> np.ndarray:
        return self.kp + self.vel * min(max(t - self.t, 0.0), 1.0)


def appearance_similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Bhattacharyya coefficient sum(sqrt(p q)) of two histograms normalised to sum 1, in
    [0, 1] (1 = same colour distribution); None if either is missing or empty."""
    if a is None or b is None:
        return None
    sa, sb = float(np.sum(a)), float(np.sum(b))
    if sa <= 0 or sb <= 0:
        return None
    return float(np.sum(np.sqrt(np.asarray(a, np.float64) / sa * np.asarray(b, np.float64) / sb)))


def torso_histogram(image: np.ndarray, points: np.ndarray, bins: tuple[int, int] = (16, 8)):
    """Hue-saturation histogram (flattened (16 * 8,) float32, sums to 1) of the box spanned by
    ``points`` (e.g. shoulders and hips, (P, 2) px) in an RGB uint8 image, shrunk by 20 % so
    that background is mostly excluded; None when the box is under 4 x 4 px or off-image."""
    h, w = image.shape[:2]
    p = np.asarray(points, np.float64)
    p = p[np.isfinite(p).all(1)]
    if len(p) < 2:
        return None
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    x0, x1 = int(max(x0 + mx, 0)), int(min(x1 - mx, w))
    y0, y1 = int(max(y0 + my, 0)), int(min(y1 - my, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(bins), [0, 180, 0, 256]).reshape(-1)
    s = float(hist.sum())
    return hist / s if s > 0 else None


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) and b (M, 4), x0 y0 x1 y1 -> (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _area(bbox: np.ndarray) -> float:
    return float(max(bbox[2] - bbox[0], 1.0) * max(bbox[3] - bbox[1], 1.0))


class Tracker:
    """Identities for people across frames (see the module docstring).

    new_id: returns a fresh id (e.g. :class:`pose_ros.core.pipeline.TrackIds`); sigmas: (K,)
    OKS sigmas of the keypoint layout (see :func:`pose_ros.core.metrics.layout_sigmas`).
    """

    MIN_SIMILARITY = 0.25  # below: a person is not this track (OKS / IoU / colour blend)
    REID_MIN_APPEARANCE = 0.7  # Bhattacharyya coefficient needed to re-identify by colour
    REID_MAX_DISTANCE = 1.5  # box diagonals between the lost track's last box and the person
    REID_SIZE_RATIO = 1.6  # max ratio of box diagonals for a re-identification
    # A newcomer whose box lies this much inside the box of a person tracked in the same frame
    # is held tentative for NESTED_MIN_HITS frames (at least): a crop of part of a tracked
    # person (measured on the two-person video: a leg crop 0.97 inside, 59 % of the area) that
    # de-duplication let through lives one frame, and must not get an id of its own.
    # The same holds for a newcomer whose box overlaps such a person's box by IoU >=
    # NESTED_IOU: a second, distorted skeleton of them from a fresh detection (soak scene:
    # IoU 0.68) lives one frame; a real person stepping out from behind someone is born
    # NESTED_MIN_HITS - 1 frames later than elsewhere.
    # "Inside" counts against the person's keypoint box grown by dedupe.PERSON_MARGIN: a
    # skeleton invented on a tile showing a tracked person's head sticks out above their
    # keypoint box (soak scene: 0.39 inside it, 1.0 inside the grown box) and lived 3 frames.
    NESTED_CONTAINED = 0.8
    NESTED_IOU = 0.5
    NESTED_MIN_HITS = 5

    def __init__(self, new_id: Callable[[], int], sigmas: np.ndarray, cfg=None):
        self.cfg = cfg if cfg is not None else TrackerConfig()
        self.new_id = new_id
        self.sigmas = np.asarray(sigmas, np.float64)
        self.tracks: list[_Trk] = []  # tentative and confirmed, seen within max_misses frames
        self.lost: list[_Trk] = []  # confirmed, waiting for re-identification
        self.last_t: float | None = None
        self.last_reset: str | None = None  # why the last update reset everything, else None
        self.resets = 0

    # -- time -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all tracks, lost tracks and filters (ids are never reused)."""
        self.tracks, self.lost = [], []
        self.last_t = None

    def check_time(self, t: float, previous: float | None = None) -> str | None:
        """Reset when ``t`` (s) jumps backwards or comes more than ``stale_after`` s after the
        last frame. ``previous``: the stamp (s) of the camera frame that arrived just before
        this one, processed or not: frames a busy node skipped are not a stalled camera, so the
        gap is measured from the later of the two. Returns the reason (also in
        :attr:`last_reset`) or None."""
        reason = None
        if self.last_t is not None:
            last = self.last_t if previous is None or not previous <= t else max(self.last_t, previous)
            if t < self.last_t:
                reason = f"time jumped backwards by {self.last_t - t:.3f} s"
            elif t - last > self.cfg.stale_after:
                reason = f"no frame for {t - last:.3f} s (> stale_after {self.cfg.stale_after} s)"
        if reason:
            self.reset()
            self.resets += 1
        self.last_reset = reason
        self.last_t = t
        return reason

    # -- assignment -----------------------------------------------------------------------
    def _similarity(self, trks: list[_Trk], obs: list[Observation], t: float) -> np.ndarray:
        """(T, N) similarity in [0, 1]: OKS of each person against the track's predicted
        skeleton (scale: the track's box area), blended with box IoU and torso colour."""
        if not trks or not obs:
            return np.zeros((len(trks), len(obs)))
        pred = np.stack([k.predict(t) for k in trks])
        dk = np.stack([np.where(o.visible[:, None], o.keypoints, np.nan) for o in obs])
        areas = np.array([_area(k.bbox) for k in trks])
        oks = oks_matrix(dk, pred, areas, self.sigmas, np.stack([k.visible for k in trks])).T
        shift = (pred - np.stack([k.kp for k in trks])).mean(1)  # (T, 2) predicted motion
        boxes = np.stack([k.bbox for k in trks]) + np.concatenate([shift, shift], 1)
        iou = _box_iou(boxes, np.stack([o.bbox for o in obs]))
        sim = 0.8 * oks + 0.2 * iou
        for i, k in enumerate(trks):
            for j, o in enumerate(obs):
                app = appearance_similarity(k.appearance, o.appearance)
                if app is not None:
                    sim[i, j] = 0.75 * sim[i, j] + 0.25 * app
                if k.hint and o.hint == k.hint:  # the same crop followed from the last frame
                    sim[i, j] = min(1.0, sim[i, j] + 0.1)
        return sim

    def _reid(self, k: _Trk, o: Observation, t: float) -> float:
        """Re-identification score of a lost track for a new person (0: not them)."""
        dk = math.hypot(*(k.bbox[2:] - k.bbox[:2]))
        do = math.hypot(*(o.bbox[2:] - o.bbox[:2]))
        if min(dk, do) <= 0:
            return 0.0
        # size: the diagonal, or the width or height alone (guessed legs can double one of them)
        sk, so = np.r_[dk, k.bbox[2:] - k.bbox[:2]], np.r_[do, o.bbox[2:] - o.bbox[:2]]
        ratios = np.maximum(sk, so) / np.maximum(np.minimum(sk, so), 1e-6)
        if ratios.min() > self.REID_SIZE_RATIO:
            return 0.0
        # position: where it was last seen, or where its last velocity would take it (a
        # flickering skeleton can leave a large, wrong velocity behind)
        last = (k.bbox[:2] + k.bbox[2:]) / 2
        centre = (o.bbox[:2] + o.bbox[2:]) / 2
        dist = min(float(np.hypot(*(centre - last))),
                   float(np.hypot(*(centre - last - k.vel.mean(0) * min(t - k.t, 1.0))))) / dk
        app = appearance_similarity(k.appearance, o.appearance)
        if app is None:  # position and size only: must be close
            return 1.0 - dist if dist < 0.5 else 0.0
        if app < self.REID_MIN_APPEARANCE or dist > self.REID_MAX_DISTANCE:
            return 0.0
        return app * (1.0 - dist / (2 * self.REID_MAX_DISTANCE))

    @staticmethod
    def _assign(sim: np.ndarray, floor: float) -> list[tuple[int, int]]:
        if sim.size == 0:
            return []
        from scipy.optimize import linear_sum_assignment  # lazy: keeps scipy out of start-up

        rows, cols = linear_sum_assignment(-sim)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if sim[r, c] > floor]

    def update(self, obs: list[Observation], t: float) -> list[int]:
        """Assign the people of the frame at time ``t`` (s) to tracks.

        Returns one id per observation: the track's id, or 0 for a person not yet reported
        (a new track with fewer than ``track_min_hits`` hits). Call :meth:`check_time` first
        (or let this call do it)."""
        if self.last_t is None or t != self.last_t:
            self.check_time(t)
        cfg = self.cfg
        owner: dict[int, _Trk] = {}  # observation index -> track
        sim = self._similarity(self.tracks, obs, t)
        matched_t, matched_o = set(), set()
        for r, c in self._assign(sim, self.MIN_SIMILARITY):
            self._hit(self.tracks[r], obs[c], t)
            owner[c] = self.tracks[r]
            matched_t.add(r)
            matched_o.add(c)
        # re-identification of lost tracks by the people nobody claimed
        rest = [j for j in range(len(obs)) if j not in matched_o]
        self.lost = [k for k in self.lost if t - (k.lost_at or t) <= cfg.track_reid_time]
        revived: list[_Trk] = []
        if rest and self.lost:
            score = np.array([[self._reid(k, obs[j], t) for j in rest] for k in self.lost])
            for r, c in self._assign(score, 0.0):
                k = self.lost[r]
                k.misses, k.lost_at = 0, None
                k.vel[:] = 0.0
                self._hit(k, obs[rest[c]], t)
                owner[rest[c]] = k
                revived.append(k)
                matched_o.add(rest[c])
            self.lost = [k for k in self.lost if k not in revived]
        survivors = []
        for i, k in enumerate(self.tracks):
            if i in matched_t:
                survivors.append(k)
                continue
            k.misses += 1
            if k.track_id == 0:
                continue  # tentative: one miss kills it
            if k.misses > cfg.track_max_misses:
                k.lost_at = t
                self.lost.append(k)
            else:
                survivors.append(k)
        for j, o in enumerate(obs):
            if j not in matched_o:
                owner[j] = _Trk(0, o.keypoints.astype(np.float64).copy(),
                                      np.zeros_like(o.keypoints, np.float64), o.visible.copy(),
                                      o.bbox.astype(np.float64).copy(), t, appearance=o.appearance,
                                      hint=o.hint)
                survivors.append(owner[j])
        self.tracks = survivors + revived
        # boxes of the people already tracked (confirmed before this frame) seen in this frame
        held = [obs[j].bbox for j, k in owner.items() if k.track_id != 0]
        for j, k in owner.items():
            if k.track_id != 0:
                continue
            nested = any(containment(obs[j].bbox, person_extent(b)) >= self.NESTED_CONTAINED
                         or _box_iou(obs[j].bbox[None], b[None])[0, 0] >= self.NESTED_IOU for b in held)
            if k.hits >= (max(cfg.track_min_hits, self.NESTED_MIN_HITS) if nested else cfg.track_min_hits):
                k.track_id = self.new_id()
        return [owner[j].track_id for j in range(len(obs))]

    def _hit(self, k: _Trk, o: Observation, t: float) -> None:
        dt = t - k.t
        kp = o.keypoints.astype(np.float64)
        if dt > 0:
            both = (o.visible & k.visible)[:, None]
            v = np.where(both, (kp - k.kp) / dt, k.vel)
            k.vel = 0.5 * k.vel + 0.5 * v
        k.kp = np.where(o.visible[:, None], kp, k.predict(t))
        k.visible = o.visible | k.visible
        k.bbox = o.bbox.astype(np.float64).copy()
        k.t = t
        k.hits += 1
        k.misses = 0
        k.hint = o.hint
        if o.appearance is not None:
            k.appearance = (o.appearance if k.appearance is None
                            else 0.8 * k.appearance + 0.2 * o.appearance)

    # -- smoothing --------------------------------------------------------------------------
    def _track(self, track_id: int) -> _Trk | None:
        return next((k for k in self.tracks if k.track_id == track_id), None)

    def smooth(self, track_id: int, x: np.ndarray, key: str = "2d", scale: float = 1.0) -> np.ndarray:
        """1-Euro filtered ``x`` (any shape; e.g. (K, 2) px with scale = the person's box
        diagonal, or (K, 3) m with scale 1) for track ``track_id`` at the last update's time,
        one filter per (track, key). Unfiltered when ``smoothing`` is off or the id unknown."""
        k = self._track(track_id) if track_id else None
        if not self.cfg.smoothing or k is None or self.last_t is None:
            return np.asarray(x, np.float64).copy() if k is None else np.asarray(x, np.float64)
        f = k.filters.get(key)
        if f is None:
            f = k.filters[key] = OneEuroFilter()
        f.min_cutoff, f.beta, f.d_cutoff = (self.cfg.smoothing_min_cutoff, self.cfg.smoothing_beta,
                                            self.cfg.smoothing_d_cutoff)
        return f(x, self.last_t, scale)
