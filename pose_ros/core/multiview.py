"""Multi-camera fusion (ROS-free): 2D skeletons from N calibrated cameras -> world-frame 3D.

Frames and units: each camera's pixels are raw image pixels (x right, y down; distortion is
removed with :meth:`PinholeCamera.normalized`); ``View.world_from_camera`` maps the camera's
optical frame (x right, y down, z forward) into the common world frame; all 3D is metres in
that world frame.

Pipeline of :meth:`MultiViewFuser.fuse` (one synchronized frame set, e.g. a
:class:`StampGrouper` group):

1. Undistort every keypoint to normalised coordinates (X/Z, Y/Z) with its view's camera.
2. Associate people across views: greedy over views (most detections first), each view's
   detections are matched against the growing set of clusters with
   scipy.optimize.linear_sum_assignment. The cost of (cluster, detection) is the median over
   joints seen in both of a pixel distance: for a cluster already seen in >= 2 views, the
   reprojection error of the cluster's triangulated joints in the new view; for a
   single-view cluster, the symmetric epipolar distance (essential matrix from the
   extrinsics, distances converted to pixels with fx/fy). Pairs above ``match_px`` or with
   fewer than ``min_common`` shared joints are not matched; an unmatched detection starts a
   new cluster. The median makes the cost insensitive to a few wrong joints.
3. Triangulate each joint of each cluster with at least ``min_views`` views whose confidence
   is >= ``min_confidence``: confidence-weighted linear DLT (rows u P3 - P1, v P3 - P2 of
   each view scaled by fx / fy and by the confidence: with equal confidences and no
   distortion this is exactly cv2.triangulatePoints' algebraic error). With ``ransac``,
   every pair of views is a hypothesis (exhaustive: N choose 2 is small), views whose
   reprojection error is below ``inlier_px`` are its inliers, the hypothesis with the most
   inliers (ties: smallest summed error) wins and the joint is refit on its inliers. A joint
   whose best consensus has fewer than ``min_views`` views is NaN (with two views there is
   no redundancy: the pair must agree within ``inlier_px``). Inside RANSAC errors are in
   undistorted pixels (normalised x fx / fy); ``FusedPerson.reprojection_px`` is measured in
   the raw image (distortion applied).
4. People whose clusters span fewer than ``min_views`` views are not returned.

Limits: the association is greedy (a view's matches are not revisited later), so a person
whose first-matched views are ambiguous (e.g. exactly behind another person in the seeding
view) can be associated differently than a global optimum would; the RANSAC still rejects
the inconsistent joints of a wrong member.

:class:`StampGrouper` groups per-camera messages by stamp (tolerance), without stalling when
a camera drops out, with bounded memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import PinholeCamera
from .geometry import Rigid


class MultiViewError(ValueError):
    """Inconsistent input to the fusion (the message says what and how to fix it)."""


@dataclass
class View:
    """One calibrated camera.

    name: an identifier (e.g. the camera's namespace). camera: intrinsics and distortion of
    the image the keypoints are in. world_from_camera: pose of the camera's optical frame in
    the world frame (x_world = R x_cam + t), metres.
    """

    name: str
    camera: PinholeCamera
    world_from_camera: Rigid

    def camera_from_world(self) -> np.ndarray:
        """(3, 4) float64 [R | t] mapping homogeneous world points (metres) to the optical
        frame: the projection matrix in normalised coordinates."""
        R = self.world_from_camera.R
        return np.column_stack([R.T, -R.T @ np.asarray(self.world_from_camera.t, np.float64)])

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """World points (N, 3) metres -> pixels (N, 2) of this view's raw image (distortion
        applied); NaN for points behind the camera or NaN input."""
        pts = np.asarray(points_world, np.float64).reshape(-1, 3)
        cam = self.world_from_camera.inverse().apply(pts)
        out = np.full((len(pts), 2), np.nan)
        ok = np.isfinite(cam).all(1)
        if ok.any():
            out[ok] = self.camera.project(cam[ok])
        return out


@dataclass
class Detection2D:
    """One person seen in one view.

    keypoints: (K, 2) float pixels of the view's raw image (NaN = not seen). confidence: (K,)
    float in [0, 1]; 0 = not seen. All detections passed to one ``fuse`` call have the same K
    (the same skeleton layout).
    """

    keypoints: np.ndarray
    confidence: np.ndarray


@dataclass
class FusedPerson:
    """One person triangulated from several views.

    positions: (K, 3) float64 world frame, metres; NaN where not triangulated.
    confidence: (K,) float64 mean confidence of the inlier views (0 where not triangulated).
    n_views: (K,) int number of inlier views used per joint (0 where not triangulated).
    reprojection_px: (K,) float64 mean reprojection error of the inlier views in raw-image
    pixels; NaN where not triangulated.
    members: [(view index, detection index)] associated to this person, sorted by view index.
    score: mean confidence over triangulated joints (0 if none).
    """

    positions: np.ndarray
    confidence: np.ndarray
    n_views: np.ndarray
    reprojection_px: np.ndarray
    members: list[tuple[int, int]]
    score: float = 0.0


def dlt(P: np.ndarray, focal: np.ndarray, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted linear (DLT) triangulation, batched.

    P: (V, 3, 4) camera_from_world of each view (normalised coordinates), or (..., V, 3, 4)
    broadcasting against xn. focal: (V, 2) or (..., V, 2) fx, fy in px (the rows are scaled so
    the residuals are in pixels, as cv2.triangulatePoints' with K P). xn: (..., V, 2)
    normalised undistorted coordinates; w: (..., V) weights >= 0 (0: view not used). Returns
    (..., 3) world points, metres; NaN where fewer than 2 views have weight or the solution is
    at infinity. Solves min |A X| over |X| = 1 (homogeneous, like OpenCV) from the 4 x 4
    normal matrix A^T A (eigh: 2-3x faster than an SVD of A for these tiny batches).
    """
    xn = np.nan_to_num(np.asarray(xn, np.float64))
    w = np.asarray(w, np.float64)
    P = np.asarray(P, np.float64)
    rows_u = xn[..., 0:1] * P[..., 2, :] - P[..., 0, :]  # (..., V, 4)
    rows_v = xn[..., 1:2] * P[..., 2, :] - P[..., 1, :]
    wu, wv = w * focal[..., 0], w * focal[..., 1]
    M = np.einsum("...v,...vi,...vj->...ij", wu * wu, rows_u, rows_u) + \
        np.einsum("...v,...vi,...vj->...ij", wv * wv, rows_v, rows_v)  # A^T A, (..., 4, 4)
    X = np.full(M.shape[:-2] + (3,), np.nan)
    ok = (w > 0).sum(-1) >= 2
    if ok.any():
        h = np.linalg.eigh(M[ok])[1][..., :, 0]  # eigenvector of the smallest eigenvalue
        with np.errstate(divide="ignore", invalid="ignore"):
            pts = h[..., :3] / h[..., 3:4]
        pts[np.abs(h[..., 3]) < 1e-12] = np.nan
        X[ok] = pts
    return X


def reprojection_px(P: np.ndarray, focal: np.ndarray, X: np.ndarray, xn: np.ndarray) -> np.ndarray:
    """Distances in (undistorted) pixels between points X (..., 3) projected into the views
    and the observations xn (..., V, 2) (normalised). P: (V, 3, 4), focal: (V, 2). Returns
    (..., V); inf where the point is behind the camera, NaN where X or xn is NaN."""
    Xh = np.concatenate([X, np.ones(X.shape[:-1] + (1,))], -1)
    c = np.einsum("vij,...j->...vi", P, Xh)  # (..., V, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (c[..., :2] / c[..., 2:3] - xn) * focal
        err = np.hypot(d[..., 0], d[..., 1])
    return np.where(c[..., 2] > 1e-9, err, np.where(np.isnan(c[..., 2]), np.nan, np.inf))


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


class MultiViewFuser:
    """Associate people across views and triangulate their joints (see the module docstring).

    min_views: views needed per joint (>= 2). min_confidence: a keypoint with lower
    confidence is not used. inlier_px: RANSAC inlier threshold, reprojection error in pixels.
    ransac: reject outlier views per joint (off: one weighted DLT over all views).
    max_people: at most this many people are returned (most views, then highest score first).
    match_px: largest association cost (median epipolar / reprojection distance, pixels).
    min_common: joints two detections must share to be compared.
    """

    def __init__(self, min_views: int = 2, min_confidence: float = 0.3, inlier_px: float = 15.0,
                 ransac: bool = True, max_people: int = 32, match_px: float = 40.0,
                 min_common: int = 3):
        if int(min_views) < 2:
            raise MultiViewError(f"min_views={min_views}: triangulation needs at least 2 views")
        if not inlier_px > 0 or not match_px > 0:
            raise MultiViewError(f"inlier_px={inlier_px} and match_px={match_px} must be > 0 (pixels)")
        if int(max_people) < 1 or int(min_common) < 1:
            raise MultiViewError(f"max_people={max_people} and min_common={min_common} must be >= 1")
        self.min_views = int(min_views)
        self.min_confidence = float(min_confidence)
        self.inlier_px = float(inlier_px)
        self.ransac = bool(ransac)
        self.max_people = int(max_people)
        self.match_px = float(match_px)
        self.min_common = int(min_common)

    # -- input ---------------------------------------------------------------------------------
    def _prepare(self, views, detections):
        if len(detections) != len(views):
            raise MultiViewError(f"{len(detections)} detection lists for {len(views)} views: pass one "
                                 "list (possibly empty) per view, in the same order")
        K = None
        obs = []  # per view: (n, K, 2) normalised, (n, K) weights, (n, K) confidence
        for i, (view, dets) in enumerate(zip(views, detections, strict=True)):
            pose = view.world_from_camera
            if not (np.isfinite(pose.t).all() and np.isfinite(pose.q).all() and np.linalg.norm(pose.q) > 1e-9):
                raise MultiViewError(f"view {i} ({view.name}): world_from_camera is not a valid pose "
                                     f"(t={pose.t}, q={pose.q}); check the camera's extrinsics / TF")
            xs, ws, cs = [], [], []
            for j, d in enumerate(dets):
                kp = np.asarray(d.keypoints, np.float64)
                conf = np.asarray(d.confidence, np.float64).reshape(-1)
                if K is None:
                    K = len(conf)
                if kp.shape != (K, 2) or conf.shape != (K,):
                    raise MultiViewError(f"view {i} ({view.name}) detection {j}: keypoints {kp.shape} "
                                         f"and confidence {conf.shape}, expected ({K}, 2) and ({K},): "
                                         "all views must use the same skeleton layout")
                ok = np.isfinite(kp).all(1) & np.isfinite(conf) & (conf >= self.min_confidence) & (conf > 0)
                xn = np.full((K, 2), np.nan)
                if ok.any():
                    xn[ok] = view.camera.normalized(kp[ok])
                ok &= np.isfinite(xn).all(1)
                xs.append(xn)
                ws.append(np.where(ok, conf, 0.0))
                cs.append(np.where(ok, conf, 0.0))
            obs.append((xs, ws, cs))
        if K is None:
            return None, []
        obs = [(np.array(xs).reshape(-1, K, 2), np.array(ws).reshape(-1, K), np.array(cs).reshape(-1, K))
               for xs, ws, cs in obs]
        return K, obs

    # -- association ---------------------------------------------------------------------------
    def _epipolar_px(self, views, P, focal, u, xu, wu, v, xv, wv) -> np.ndarray:
        """Median symmetric epipolar distance (px) between one detection of view u (xu (K, 2),
        wu (K,)) and every detection of view v (xv (n, K, 2), wv (n, K)): (n,)."""
        R = P[v][:, :3] @ P[u][:, :3].T  # cam_v <- cam_u
        t = P[v][:, 3] - R @ P[u][:, 3]
        E = _skew(t) @ R
        hu = np.concatenate([xu, np.ones((len(xu), 1))], 1)  # (K, 3)
        hv = np.concatenate([xv, np.ones(xv.shape[:2] + (1,))], 2)  # (n, K, 3)
        lv = hu @ E.T  # lines in view v, (K, 3)
        lu = hv @ E  # lines in view u, (n, K, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            num = np.abs(np.einsum("nki,ki->nk", hv, lv))
            dv = num / np.hypot(lv[:, 0] / focal[v, 0], lv[:, 1] / focal[v, 1])
            du = num / np.hypot(lu[..., 0] / focal[u, 0], lu[..., 1] / focal[u, 1])
        return self._median_cost((du + dv) / 2, (wu > 0) & (wv > 0))

    def _median_cost(self, d: np.ndarray, common: np.ndarray) -> np.ndarray:
        """d, common: (n, K) -> (n,) median of d over the common joints (inf if too few)."""
        common = common & np.isfinite(d)
        enough = common.sum(1) >= self.min_common
        out = np.full(len(d), np.inf)
        if enough.any():  # median of the common joints: sort them first (others -> inf)
            srt = np.sort(np.where(common, d, np.inf)[enough], axis=1)
            c = common.sum(1)[enough]
            lo = np.take_along_axis(srt, ((c - 1) // 2)[:, None], 1)[:, 0]
            hi = np.take_along_axis(srt, (c // 2)[:, None], 1)[:, 0]
            out[enough] = (lo + hi) / 2
        return out

    def _associate(self, views, obs, P, focal) -> list[dict[int, int]]:
        from scipy.optimize import linear_sum_assignment

        order = sorted(range(len(views)), key=lambda i: (-len(obs[i][0]), i))
        clusters: list[dict[int, int]] = []
        cache: dict[int, np.ndarray] = {}  # cluster index -> triangulated (K, 3)
        for v in order:
            xv, wv, _ = obs[v]
            if len(xv) == 0:
                continue
            cost = np.full((len(clusters), len(xv)), np.inf)
            for c, members in enumerate(clusters):
                if len(members) >= 2:
                    if c not in cache:
                        cache[c] = self._triangulate_simple(members, obs, P, focal)
                    X = cache[c]
                    err = reprojection_px(P[v:v + 1], focal[v:v + 1], X, xv[:, :, None, :])[..., 0]
                    cost[c] = self._median_cost(err, (wv > 0) & np.isfinite(X).all(1))
                else:
                    u, j = next(iter(members.items()))  # the cluster's only member
                    cost[c] = self._epipolar_px(views, P, focal, u, obs[u][0][j], obs[u][1][j], v, xv, wv)
            matched = set()
            if clusters:
                big = np.where(np.isfinite(cost), cost, 1e12)
                for c, d in zip(*linear_sum_assignment(big), strict=True):
                    if cost[c, d] <= self.match_px:
                        clusters[c][v] = int(d)
                        cache.pop(c, None)
                        matched.add(int(d))
            clusters.extend({v: d} for d in range(len(xv)) if d not in matched)
        return clusters

    def _gather(self, members: dict[int, int], obs):
        vs = sorted(members)
        xn = np.stack([obs[v][0][members[v]] for v in vs], 1)  # (K, M, 2)
        w = np.stack([obs[v][1][members[v]] for v in vs], 1)  # (K, M)
        return vs, xn, w

    def _triangulate_simple(self, members, obs, P, focal) -> np.ndarray:
        vs, xn, w = self._gather(members, obs)
        return dlt(P[vs], focal[vs], xn, w)

    # -- triangulation -------------------------------------------------------------------------
    def _triangulate(self, members, obs, P, focal):
        """-> positions (K, 3), inlier mask (K, M), view indices (M,)."""
        vs, xn, w = self._gather(members, obs)
        Pm, fm = P[vs], focal[vs]
        M = len(vs)
        valid = w > 0
        if self.ransac and M >= 2:
            pairs = np.array([(a, b) for a in range(M) for b in range(a + 1, M)])  # (H, 2)
            xp = xn[:, pairs]  # (K, H, 2, 2)
            wp = w[:, pairs]  # (K, H, 2)
            hyp_ok = (wp > 0).all(-1)
            Xh = dlt(Pm[pairs], fm[pairs], xp, wp)  # (K, H, 3)
            err = reprojection_px(Pm, fm, Xh, xn[:, None])  # (K, H, M)
            inl = valid[:, None] & (err < self.inlier_px) & hyp_ok[..., None]
            count = inl.sum(-1)
            total = np.where(inl, err, 0.0).sum(-1)
            # most inliers, then the smallest summed inlier error (errors are < inlier_px each)
            best = np.argmin(-count * (M * self.inlier_px + 1.0) + total, axis=1)
            inliers = inl[np.arange(len(inl)), best]  # (K, M)
            for _ in range(2):  # refit on the inliers, then re-select the inliers once
                X = dlt(Pm, fm, xn, w * inliers)
                err = reprojection_px(Pm, fm, X, xn)
                new = valid & (err < self.inlier_px)
                if (new == inliers).all():
                    break
                inliers = new
            X = dlt(Pm, fm, xn, w * inliers)
            err = reprojection_px(Pm, fm, X, xn)
            inliers &= err < self.inlier_px
        else:
            inliers = valid
            X = dlt(Pm, fm, xn, w)
            err = reprojection_px(Pm, fm, X, xn)
            inliers = inliers & np.isfinite(err)
        ok = (inliers.sum(1) >= self.min_views) & np.isfinite(X).all(1)
        X[~ok] = np.nan
        inliers[~ok] = False
        return X, inliers, vs

    def fuse(self, views: list[View], detections: list[list[Detection2D]]) -> list[FusedPerson]:
        """views: N cameras; detections[i]: the people seen by views[i] (may be empty).
        Returns the fused people (world frame). Raises MultiViewError on inconsistent input
        (len(detections) != len(views), keypoint shapes that differ)."""
        K, obs = self._prepare(views, detections)
        if K is None or len(views) < 2:
            return []
        P = np.stack([v.camera_from_world() for v in views])  # (N, 3, 4)
        focal = np.array([[v.camera.fx, v.camera.fy] for v in views])
        out = []
        for members in self._associate(views, obs, P, focal):
            if len(members) < self.min_views:
                continue
            X, inliers, vs = self._triangulate(members, obs, P, focal)
            if not inliers.any():
                continue
            conf = np.stack([obs[v][2][members[v]] for v in vs], 1)  # (K, M)
            n = inliers.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                confidence = np.where(n > 0, (conf * inliers).sum(1) / n, 0.0)
                px = np.full((K, len(vs)), np.nan)
                for m, v in enumerate(vs):  # raw-image pixels, distortion applied
                    kp = np.asarray(detections[v][members[v]].keypoints, np.float64)
                    rows = inliers[:, m]
                    if rows.any():
                        px[rows, m] = np.hypot(*(views[v].project(X[rows]) - kp[rows]).T)
                reproj = np.where(n > 0, np.nansum(np.where(inliers, px, 0.0), 1) / n, np.nan)
            tri = n > 0
            out.append(FusedPerson(X, confidence, n.astype(int), reproj,
                                   [(v, members[v]) for v in vs], float(confidence[tri].mean())))
        out.sort(key=lambda p: (-len(p.members), -p.score))
        return out[:self.max_people]


class StampGrouper:
    """Group per-camera messages whose stamps agree within ``tolerance_s``.

    cameras: the camera names expected. A group is emitted (as {camera: item}) when
    * all cameras arrived, or
    * it is settled: every missing camera has since delivered a newer message (its frame for
      this stamp was dropped) or has been silent for more than ``max_wait_s`` while others
      delivered (dropped out); it is emitted if at least ``min_cameras`` arrived, or
    * it is older than ``max_wait_s`` (stamp time: the newest stamp seen) and at least
      ``min_cameras`` arrived.
    Groups are emitted in stamp order; when a group is emitted, older pending groups are
    emitted too (if they have ``min_cameras``) or dropped. Items older than the last emitted
    group, or than ``max_wait_s`` before the newest stamp, are discarded (late); at most
    ``max_pending`` groups are kept. A stamp more than ``reset_s`` (default: max(1 s,
    10 max_wait_s)) older than the newest one (a bag loop, sim time restarted) resets the
    grouper. A group's stamp is its first item's; an item joins the pending group nearest in
    stamp that lacks its camera, so ``tolerance_s`` should stay below the frame period (e.g.
    0.02 s at 30 fps). Counters: ``emitted``, ``dropped`` (incomplete
    groups discarded), ``late``, ``resets``.
    """

    def __init__(self, cameras: list[str], tolerance_s: float, max_wait_s: float,
                 min_cameras: int = 2, max_pending: int = 64, reset_s: float | None = None):
        self.cameras = list(dict.fromkeys(cameras))
        if len(self.cameras) < 1:
            raise ValueError("StampGrouper needs at least one camera name")
        if not tolerance_s >= 0 or not max_wait_s > 0:
            raise ValueError(f"tolerance_s={tolerance_s} must be >= 0 and max_wait_s={max_wait_s} > 0 (seconds)")
        self.tol = int(round(tolerance_s * 1e9))
        self.max_wait = int(round(max_wait_s * 1e9))
        self.min_cameras = max(1, min(int(min_cameras), len(self.cameras)))
        self.max_pending = max(1, int(max_pending))
        self.reset_ns = int(round((max(1.0, 10 * max_wait_s) if reset_s is None else reset_s) * 1e9))
        self.emitted = self.dropped = self.late = self.resets = 0
        self._reset()

    def _reset(self) -> None:
        self._pending: list[tuple[int, dict[str, object]]] = []  # (stamp, {camera: item}), sorted
        self._last: dict[str, int] = {}  # camera -> newest stamp received
        # camera -> first stamp (any camera) after its last message: silent since then
        self._quiet: dict[str, int] = {}
        self._newest: int | None = None
        self._start: int | None = None  # first stamp since the (re)start
        self._done: tuple[int, frozenset] | None = None  # last finalized group: stamp, cameras

    def push(self, camera: str, stamp_ns: int, item: object) -> list[dict[str, object]]:
        """Add one message (stamp in integer nanoseconds); returns the groups completed by it,
        oldest first, each {camera name: item}. Raises ValueError for an unknown camera."""
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}: expected one of {self.cameras}")
        s = int(stamp_ns)
        if self._newest is not None and s < self._newest - self.reset_ns:
            self.resets += 1
            self._reset()
        late = self._is_late(camera, s)
        if camera not in self._last or s > self._last[camera]:
            # the camera is alive (even if this frame is late): wait for it again
            self._newest = s if self._newest is None else max(self._newest, s)
            self._start = s if self._start is None else self._start
            self._last[camera] = s
            self._quiet.pop(camera, None)
            for cam in self.cameras:
                if cam != camera and cam not in self._quiet and self._last.get(cam, s) < s:
                    self._quiet[cam] = s
        if late:
            self.late += 1
            return []
        match = [(abs(s - g), n) for n, (g, items) in enumerate(self._pending)
                 if camera not in items and abs(s - g) <= self.tol]
        if match:
            self._pending[min(match)[1]][1][camera] = item
        else:
            self._pending.append((s, {camera: item}))
            self._pending.sort(key=lambda g: g[0])
            while len(self._pending) > self.max_pending:
                self._pending.pop(0)
                self.dropped += 1
        return self._finalize(self._newest)

    def poll(self, now_ns: int) -> list[dict[str, object]]:
        """Emit groups that are older than ``max_wait_s`` at stamp time ``now_ns`` (call from a
        timer so the last group is emitted even when every camera stops)."""
        if self._newest is None:
            return []
        return self._finalize(max(self._newest, int(now_ns)))

    def _is_late(self, camera: str, s: int) -> bool:
        if camera in self._last and s <= self._last[camera]:
            return True  # duplicate or out of order from this camera
        if self._done is not None:
            stamp, cams = self._done
            if s < stamp - self.tol or (abs(s - stamp) <= self.tol and camera not in cams):
                return True  # its group was already emitted / dropped
        if self._newest is not None and s < self._newest - self.max_wait:
            return not any(abs(s - g) <= self.tol and camera not in items for g, items in self._pending)
        return False

    def _ready(self, stamp: int, items: dict, now: int) -> bool:
        if len(items) == len(self.cameras) or now - stamp > self.max_wait:
            return True
        for cam in self.cameras:
            if cam in items:
                continue
            last = self._last.get(cam)
            # dropped out: others kept delivering for max_wait since its last message (a pause
            # of every camera does not count)
            silent = now - self._quiet.get(cam, self._start if last is None else now) > self.max_wait
            if not (silent or (last is not None and last > stamp + self.tol)):
                return False
        return True

    def _finalize(self, now: int) -> list[dict[str, object]]:
        ready = [n for n, (g, items) in enumerate(self._pending) if self._ready(g, items, now)]
        if not ready:
            return []
        upto = ready[-1] + 1
        out = []
        for _, items in self._pending[:upto]:
            if len(items) >= self.min_cameras:
                out.append(items)
                self.emitted += 1
            else:
                self.dropped += 1
        g, items = self._pending[upto - 1]
        self._done = (g, frozenset(items))
        del self._pending[:upto]
        return out


__all__ = ["Detection2D", "FusedPerson", "MultiViewError", "MultiViewFuser", "StampGrouper", "View",
           "dlt", "reprojection_px"]
