"""Pose metrics (numpy, ROS-free): PCK / PCKh, COCO OKS and keypoint AP/AR, MPJPE, PA-MPJPE, PCK3D.

2D arrays are pixels ``(N, K, 2)`` (x, y); 3D arrays are ``(N, K, 3)`` in one metric unit
(the results are in that unit, e.g. millimetres in, millimetres out). ``visible`` masks are
``(N, K)`` bool: joints with no ground truth are left out of every mean.

COCO keypoint AP/AR (:func:`coco_keypoint_eval`) re-implements pycocotools' COCOeval for
``iouType="keypoints"`` (OKS, maxDets 20, area ranges all / medium / large, 101-point
interpolated precision) and returns the same 10 numbers as ``COCOeval.stats``.
"""
from __future__ import annotations

import numpy as np

from .skeletons import Layout

# COCO keypoint sigmas (pycocotools cocoeval.py, Params.setKpParams), COCO-17 order.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0


class MetricError(ValueError):
    """Inputs that cannot be scored (the message says how to fix them)."""


def _arr(a, last: int, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != last:
        raise MetricError(f"{name} must be (N, K, {last}) or (K, {last}), got {np.shape(a)}")
    return a


def _vis(visible, gt: np.ndarray) -> np.ndarray:
    v = np.isfinite(gt).all(-1)
    if visible is not None:
        v &= np.asarray(visible, bool).reshape(gt.shape[:2])
    return v


# ------------------------------------------------------------------------------------------ PCK
def reference_length(gt: np.ndarray, kind: str = "bbox", layout: Layout | None = None,
                     visible: np.ndarray | None = None) -> np.ndarray:
    """Per-sample reference length (N,) for PCK.

    kind: ``"bbox"``: the longer side of the visible ground-truth keypoints' box;
    ``"torso"``: distance left_shoulder - right_hip (needs ``layout``);
    ``"head"``: head segment head_top - upper_neck (MPII layouts; needs ``layout``). NaN where
    the needed joints are missing."""
    g = _arr(gt, 2, "gt")
    v = _vis(visible, g)
    if kind == "bbox":
        out = np.full(len(g), np.nan)
        for n in range(len(g)):
            if v[n].any():
                p = g[n, v[n]]
                out[n] = (p.max(0) - p.min(0)).max()
        return out
    pairs = {"torso": ("left_shoulder", "right_hip"), "head": ("head_top", "upper_neck")}
    if kind not in pairs:
        raise MetricError(f"reference kind must be 'bbox', 'torso' or 'head', not {kind!r}")
    if layout is None:
        raise MetricError(f"reference {kind!r} needs the keypoint layout (layout=...)")
    try:
        a, b = (layout.index(j) for j in pairs[kind])
    except KeyError as e:
        raise MetricError(f"reference {kind!r} needs joints {pairs[kind]}: {e.args[0]}; "
                          "pass explicit reference lengths (ref=...) instead") from None
    d = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    return np.where(v[:, a] & v[:, b], d, np.nan)


def pck(pred, gt, ref, alpha: float = 0.2, visible=None) -> tuple[float, np.ndarray]:
    """PCK@alpha: fraction of visible joints with |pred - gt| <= alpha * ref.

    pred, gt: (N, K, 2) pixels; ref: (N,) reference lengths (see :func:`reference_length`;
    samples with NaN/<=0 reference are skipped). Returns (mean over all counted joints,
    per-joint (K,) PCK with NaN for joints never counted)."""
    p, g = _arr(pred, 2, "pred"), _arr(gt, 2, "gt")
    if p.shape != g.shape:
        raise MetricError(f"pred {p.shape} and gt {g.shape} differ")
    r = np.broadcast_to(np.asarray(ref, np.float64).reshape(-1), (len(g),))
    v = _vis(visible, g) & (np.isfinite(r) & (r > 0))[:, None]
    d = np.linalg.norm(p - g, axis=-1)
    hit = (d <= alpha * r[:, None]) & v  # NaN prediction -> miss
    cnt = v.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(cnt > 0, hit.sum(0) / cnt, np.nan)
    total = v.sum()
    return (float(hit.sum() / total) if total else float("nan")), per


def pckh(pred, gt, head_size, threshold: float = 0.5, visible=None) -> tuple[float, np.ndarray]:
    """PCKh@threshold (MPII): PCK with the head segment length as reference. head_size: (N,)
    (MPII: 0.6 x the head box diagonal, or :func:`reference_length` kind ``"head"``)."""
    return pck(pred, gt, head_size, threshold, visible)


# ------------------------------------------------------------------------------------ COCO OKS
def oks(dt, gt_keypoints, area: float, sigmas=COCO_SIGMAS, gt_bbox=None) -> float:
    """COCO object keypoint similarity of one detection with one ground truth (pycocotools
    computeOks): mean over labelled joints (v > 0) of exp(-d^2 / (2 s^2 (2 sigma)^2)),
    s^2 = area. dt: (K, 2|3) pixels; gt_keypoints: (K, 3) (x, y, v); area: gt segment area
    (px^2). With no labelled joint, the distance is to the box gt_bbox (x, y, w, h) enlarged
    by its size on each side, as pycocotools does."""
    d = np.asarray(dt, np.float64).reshape(len(sigmas), -1)[:, :2]
    g = np.asarray(gt_keypoints, np.float64).reshape(len(sigmas), 3)
    var = (2 * np.asarray(sigmas, np.float64)) ** 2
    vg = g[:, 2]
    k1 = np.count_nonzero(vg > 0)
    if k1 > 0:
        dx, dy = d[:, 0] - g[:, 0], d[:, 1] - g[:, 1]
    else:
        if gt_bbox is None:
            raise MetricError("ground truth has no labelled keypoint: pass gt_bbox (x, y, w, h)")
        bx, by, bw, bh = np.asarray(gt_bbox, np.float64)
        x0, x1, y0, y1 = bx - bw, bx + 2 * bw, by - bh, by + 2 * bh
        z = np.zeros(len(d))
        dx = np.maximum(z, x0 - d[:, 0]) + np.maximum(z, d[:, 0] - x1)
        dy = np.maximum(z, y0 - d[:, 1]) + np.maximum(z, d[:, 1] - y1)
    e = (dx**2 + dy**2) / var / (area + np.spacing(1)) / 2
    if k1 > 0:
        e = e[vg > 0]
    return float(np.sum(np.exp(-e)) / e.shape[0])


def layout_sigmas(layout: Layout, default: float = 0.08) -> np.ndarray:
    """(K,) OKS sigmas for any layout: COCO's sigma for joints named as in COCO-17, ``default``
    for the others (COCO has no sigma for e.g. BlazePose's fingers or OpenPose's neck)."""
    from .skeletons import COCO_17

    return np.array([COCO_SIGMAS[COCO_17.index(n)] if n in COCO_17.names else default
                     for n in layout.names])


def oks_matrix(a, b, areas, sigmas=COCO_SIGMAS, visible_b=None) -> np.ndarray:
    """Pairwise OKS between skeletons a (N, K, 2) and reference skeletons b (M, K, 2) with
    scales ``areas`` (M,) (px^2, e.g. box area) — for matching detections to tracks or
    de-duplicating people. Joints counted: those visible in b (``visible_b`` (M, K), default:
    finite); a NaN joint in a scores 0. Same formula as :func:`oks` (a reference with no
    visible joint gives 0 here). Returns (N, M) float64 in [0, 1]."""
    pa, pb = _arr(a, 2, "a"), _arr(b, 2, "b")
    sig = np.asarray(sigmas, np.float64).reshape(-1)
    if pa.shape[1] != pb.shape[1] or len(sig) != pa.shape[1]:
        raise MetricError(f"a {pa.shape}, b {pb.shape} and sigmas ({len(sig)},) must share K; "
                          "for non-COCO layouts pass sigmas=layout_sigmas(layout)")
    vis = _vis(visible_b, pb)
    area = np.asarray(areas, np.float64).reshape(-1)
    d2 = ((pa[:, None] - pb[None]) ** 2).sum(-1)  # (N, M, K)
    e = d2 / (2 * sig) ** 2 / (area[None, :, None] + np.spacing(1)) / 2
    k = np.where(np.isfinite(e), np.exp(-np.where(np.isfinite(e), e, 0.0)), 0.0)
    n = vis.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (k * vis[None]).sum(-1) / n[None]
    return np.where(n[None] > 0, out, 0.0)


_AREA_RNG = {"all": (0.0, 1e5**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
_IOU_THRS = np.linspace(0.5, 0.95, 10)
_REC_THRS = np.linspace(0.0, 1.0, 101)
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _dt_area(kps: np.ndarray) -> float:
    x, y = kps[0::3], kps[1::3]
    return float((x.max() - x.min()) * (y.max() - y.min()))


def _eval_image(gts: list[dict], dts: list[dict], arng, max_det: int, sigmas):
    if not gts and not dts:
        return None
    g_ign = np.array([bool(g.get("iscrowd", 0)) or g.get("num_keypoints", 1) == 0
                      or bool(g.get("ignore", 0)) or not (arng[0] <= g["area"] <= arng[1])
                      for g in gts], bool)
    gind = np.argsort(g_ign, kind="mergesort")
    gts = [gts[i] for i in gind]
    g_ign = g_ign[gind]
    crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], bool)
    dind = np.argsort([-d["score"] for d in dts], kind="mergesort")
    dts = [dts[i] for i in dind[:max_det]]
    ious = np.array([[oks(d["keypoints"], g["keypoints"], g["area"], sigmas, g.get("bbox"))
                      for g in gts] for d in dts]).reshape(len(dts), len(gts))
    t_n = len(_IOU_THRS)
    gtm = np.zeros((t_n, len(gts)), bool)
    dtm = np.zeros((t_n, len(dts)), bool)
    dt_ign = np.zeros((t_n, len(dts)), bool)
    for ti, t in enumerate(_IOU_THRS):
        for di in range(len(dts)):
            best, m = min(t, 1 - 1e-10), -1
            for gi in range(len(gts)):
                if gtm[ti, gi] and not crowd[gi]:
                    continue
                if m > -1 and not g_ign[m] and g_ign[gi]:
                    break
                if ious[di, gi] < best:
                    continue
                best, m = ious[di, gi], gi
            if m == -1:
                continue
            dt_ign[ti, di] = g_ign[m]
            dtm[ti, di] = True
            gtm[ti, m] = True
    d_out = np.array([not (arng[0] <= _dt_area(np.asarray(d["keypoints"], np.float64)) <= arng[1])
                      for d in dts], bool).reshape(1, -1)
    dt_ign |= ~dtm & d_out
    return {"scores": np.array([d["score"] for d in dts], np.float64), "dtm": dtm,
            "dt_ign": dt_ign, "g_ign": g_ign}


def coco_keypoint_eval(gt: dict, results: list[dict], sigmas=COCO_SIGMAS,
                       max_det: int = 20) -> dict[str, float]:
    """COCO keypoint AP/AR like pycocotools COCOeval(iouType="keypoints").summarize().

    gt: a COCO keypoint dataset dict ("images", "annotations" with keypoints (3K,), area,
    iscrowd, num_keypoints, bbox); results: COCO results ({"image_id", "category_id",
    "keypoints" (3K,), "score"}). Only category 1 (person). Returns the 10 stats by
    :data:`STAT_NAMES` (-1 where undefined, as pycocotools)."""
    img_ids = sorted(int(i["id"]) for i in gt["images"])
    known = set(img_ids)
    by_img_g: dict[int, list] = {i: [] for i in img_ids}
    by_img_d: dict[int, list] = {i: [] for i in img_ids}
    for a in gt["annotations"]:
        if a.get("category_id", 1) == 1 and a["image_id"] in known:
            by_img_g[a["image_id"]].append(a)
    for r in results:
        if r["image_id"] not in known:
            raise MetricError(f"result for image_id {r['image_id']} which the ground truth lacks")
        if r.get("category_id", 1) == 1:
            by_img_d[r["image_id"]].append(r)
    prec = -np.ones((len(_IOU_THRS), len(_REC_THRS), len(_AREA_RNG)))
    rec = -np.ones((len(_IOU_THRS), len(_AREA_RNG)))
    for ai, arng in enumerate(_AREA_RNG.values()):
        ev = [_eval_image(by_img_g[i], by_img_d[i], arng, max_det, sigmas) for i in img_ids]
        ev = [e for e in ev if e is not None]
        if not ev:
            continue
        scores = np.concatenate([e["scores"] for e in ev])
        order = np.argsort(-scores, kind="mergesort")
        dtm = np.concatenate([e["dtm"] for e in ev], axis=1)[:, order]
        dt_ign = np.concatenate([e["dt_ign"] for e in ev], axis=1)[:, order]
        npig = int(np.count_nonzero(~np.concatenate([e["g_ign"] for e in ev])))
        if npig == 0:
            continue
        tps = dtm & ~dt_ign
        fps = ~dtm & ~dt_ign
        tp_sum = np.cumsum(tps, axis=1).astype(float)
        fp_sum = np.cumsum(fps, axis=1).astype(float)
        for ti in range(len(_IOU_THRS)):
            tp, fp = tp_sum[ti], fp_sum[ti]
            nd = len(tp)
            rc = tp / npig
            pr = tp / (fp + tp + np.spacing(1))
            rec[ti, ai] = rc[-1] if nd else 0
            pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
            q = np.zeros(len(_REC_THRS))
            inds = np.searchsorted(rc, _REC_THRS, side="left")
            ok = inds < nd
            q[ok] = pr[inds[ok]]
            prec[ti, :, ai] = q

    def mean(s):
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    a_all, a_m, a_l = 0, 1, 2
    stats = [mean(prec[:, :, a_all]), mean(prec[0, :, a_all]), mean(prec[5, :, a_all]),
             mean(prec[:, :, a_m]), mean(prec[:, :, a_l]),
             mean(rec[:, a_all]), mean(rec[0, a_all]), mean(rec[5, a_all]),
             mean(rec[:, a_m]), mean(rec[:, a_l])]
    return dict(zip(STAT_NAMES, stats, strict=True))


# ------------------------------------------------------------------------------------------- 3D
def _arr3(pred, gt):
    p, g = _arr(pred, 3, "pred"), _arr(gt, 3, "gt")
    if p.shape != g.shape:
        raise MetricError(f"pred {p.shape} and gt {g.shape} differ")
    return p, g


def mpjpe(pred, gt, visible=None) -> float:
    """Mean per-joint position error: mean over visible joints of |pred - gt| (units of input).
    pred, gt: (N, K, 3) (root-align them first for root-relative MPJPE)."""
    p, g = _arr3(pred, gt)
    v = _vis(visible, g)
    d = np.linalg.norm(p - g, axis=-1)[v]
    return float(d.mean()) if d.size else float("nan")


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity (rotation, uniform scale, translation) aligning one (K, 3) pred to gt in the
    least-squares sense (Umeyama 1991, proper rotation: no reflection). Returns aligned (K, 3)."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mp, mg = p.mean(0), g.mean(0)
    pc, gc = p - mp, g - mg
    var_p = (pc**2).sum()
    if var_p < 1e-18:
        raise MetricError("prediction collapses to a point: Procrustes alignment is undefined")
    u, s, vt = np.linalg.svd(gc.T @ pc)  # covariance gt x pred
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    scale = (s * d).sum() / var_p
    return scale * pc @ r.T + mg


def pa_mpjpe(pred, gt, visible=None) -> float:
    """Procrustes-aligned MPJPE: each sample's visible joints aligned to gt with
    :func:`procrustes_align` (rotation + scale + translation), then MPJPE."""
    p, g = _arr3(pred, gt)
    v = _vis(visible, g) & np.isfinite(p).all(-1)
    errs = []
    for n in range(len(g)):
        if v[n].sum() < 3:
            continue
        a = procrustes_align(p[n, v[n]], g[n, v[n]])
        errs.append(np.linalg.norm(a - g[n, v[n]], axis=-1))
    return float(np.concatenate(errs).mean()) if errs else float("nan")


def pck3d(pred, gt, threshold: float = 150.0, visible=None) -> float:
    """3D PCK: fraction of visible joints with |pred - gt| <= threshold (150 mm in MPI-INF-3DHP;
    same unit as the inputs)."""
    p, g = _arr3(pred, gt)
    v = _vis(visible, g)
    d = np.linalg.norm(p - g, axis=-1)
    return float(((d <= threshold) & v).sum() / v.sum()) if v.any() else float("nan")


def root_relative(poses, root) -> np.ndarray:
    """Poses (N, K, 3) or (K, 3) minus their root: ``root`` is one joint index or a sequence of
    indices whose mean is the root (e.g. both hips: mid-hip). Returns (N, K, 3)."""
    p = _arr(poses, 3, "poses")
    idx = [root] if np.isscalar(root) else list(root)
    return p - p[:, idx].mean(1, keepdims=True)


def absolute_error(pred, gt, visible=None) -> float:
    """Absolute (camera-frame) mean per-joint position error: |pred - gt| with no alignment at
    all, so it measures placement (distance, direction) as well as pose. pred, gt: (N, K, 3)
    in the camera frame; joints where pred is NaN (not placed) are left out."""
    p, g = _arr3(pred, gt)
    v = _vis(visible, g) & np.isfinite(p).all(-1)
    d = np.linalg.norm(p - g, axis=-1)[v]
    return float(d.mean()) if d.size else float("nan")
