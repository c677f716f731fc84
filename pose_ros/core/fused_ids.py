"""Stable ids for people fused from several cameras (ROS-free).

Each camera's pose_node already tracks its people in 2D (Skeleton.id, stable while tracked).
A fused person is a set of such detections, one per camera: ``members`` = {(camera, source
id)}. :class:`FusedIds` gives every fused person of a frame an id that stays the same over
frames:

1. A person keeps the id of the previous fused person with whom it shares the most members
   (the same 2D track in the same camera, source id 0 = untracked is ignored).
2. Otherwise (every camera lost and re-found it, or the sources do not track), it takes the
   id of the nearest previous person whose centroid (mean of the finite joints, metres) is
   within ``max_distance`` m.
3. Otherwise it gets a new id from ``new_id`` (e.g. :class:`pose_ros.core.pipeline.TrackIds`:
   random, unique across nodes and restarts, so fused ids never collide with pose_nodes').

Assignment is one-to-one (scipy.optimize.linear_sum_assignment on shared members first, then
distance). Previous people unseen for more than ``keep_s`` seconds (default 5, like pose_node's
``track_reid_time``: a rig that stalls for a second keeps its ids) are forgotten; a stamp
going backwards (bag loop) forgets everything.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class _Known:
    fused_id: int
    members: frozenset
    centroid: np.ndarray  # (3,) metres, NaN if unknown
    t: float  # s, last seen


class FusedIds:
    """See the module docstring. new_id: returns a fresh id; max_distance: m; keep_s: s."""

    def __init__(self, new_id: Callable[[], int], max_distance: float = 0.5, keep_s: float = 5.0) -> None:
        self.new_id = new_id
        self.max_distance = max_distance
        self.keep_s = keep_s
        self._known: list[_Known] = []
        self._last_t: float | None = None

    def update(self, members: list[Iterable[tuple[Hashable, int]]], positions: list[np.ndarray],
               t: float) -> list[int]:
        """One frame's fused people -> their ids (one per person, in order).

        members[i]: (camera, source id) pairs of person i; positions[i]: (K, 3) float metres
        (NaN rows allowed); t: the frame's stamp in seconds."""
        if self._last_t is not None and t < self._last_t:
            self._known = []
        self._last_t = t
        self._known = [k for k in self._known if t - k.t <= self.keep_s]
        keys = [frozenset((c, int(s)) for c, s in m if int(s) != 0) for m in members]
        cents = []
        for p in positions:
            p = np.asarray(p, np.float64).reshape(-1, 3)
            ok = np.isfinite(p).all(1)
            cents.append(p[ok].mean(0) if ok.any() else np.full(3, np.nan))
        ids = [0] * len(keys)
        if self._known and keys:
            shared = np.array([[len(k & old.members) for old in self._known] for k in keys], float)
            dist = np.array([[np.linalg.norm(c - old.centroid) for old in self._known] for c in cents])
            near = np.isfinite(dist) & (dist <= self.max_distance)
            feasible = (shared > 0) | near
            # shared members dominate; among equals, the nearer one (distance < max_distance)
            cost = np.where(feasible, -(shared * 10.0 + np.where(near, 1.0 - dist / max(self.max_distance, 1e-9),
                                                                 0.0)), 1e6)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if feasible[r, c]:
                    ids[r] = self._known[c].fused_id
        known = {k.fused_id: k for k in self._known}
        for i, (k, cent) in enumerate(zip(keys, cents, strict=True)):
            if ids[i] == 0:
                ids[i] = self.new_id()
            old = known.get(ids[i])
            # remember the latest members and centroid (keep the old centroid if none now)
            known[ids[i]] = _Known(ids[i], k, cent if np.isfinite(cent).all() or old is None else old.centroid, t)
        self._known = list(known.values())
        return ids
