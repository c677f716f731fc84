"""Fine-tune a 2D-to-3D lifter with the multi-view consistency loss, no 3D labels (torch).

``pose-ros finetune-lifter CKPT`` (issue 10 item 4). Training data are synthetic multi-view
groups: one person (:func:`pose_ros.core.synthpose.sample_poses`) seen by ``views`` cameras
(:func:`pose_ros.core.synthpose.sample_cameras`, drawn independently around the person), noisy
2D with dropped joints in each view. The objective sees ONLY what a calibrated multi-camera rig
gives: each view's 2D keypoints and confidences, K, and the relative extrinsics. For every pair
of views (i, j) and person (:func:`batch_loss`):

1. the lifter's root-relative predictions from view i and from view j;
2. the reference length: the summed length of the torso, upper arms, forearms, thighs and shins
   (:func:`~pose_ros.core.mvconsistency.body_limbs`) TRIANGULATED from the two views' 2D
   (:func:`~pose_ros.core.mvconsistency.triangulate`): the size the rig measures;
3. :func:`~pose_ros.core.mvconsistency.symmetric_multiview_loss` with that reference (each
   prediction placed by ``solve_translation`` in its own view, scaled to the reference, moved
   into the other view, squared error against that view's 2D in normalised image units) plus
   ``reprojection_weight`` x the own-view reprojection error; its square root (RMS);
4. plus ``size_weight`` x |predicted length / triangulated length - 1| (the loss of step 3 is
   invariant to the prediction's scale, so without it the size drifts: measured from a
   150-step lifter, MPJPE 231 -> 420 mm while PA-MPJPE improved 159 -> 134 mm);
5. people worse than ``trim`` x the batch median are left out of that step.

Why the triangulated length rather than the other view's PREDICTED length (the seed's literal
"view 2's", ``reference="predicted"``): the lifter's input is scale-free
(:func:`pose_ros.core.lifter.normalise`), so it cannot know a person's metric size, and the
size error of the ratio becomes a placement error proportional to the distance (a squared
error of 1e5 for one badly lifted person). Measured (``benchmarks/bench_mvconsistency.py``,
start trained on cameras 5-10 deg below the hips only, 2000 people of the full distribution):
MPJPE 184.0 -> 150.2 mm triangulated, -> 153.9 mm predicted; PA-MPJPE 92.6 -> 96.0 / 99.2 mm.
What it fixes is the pose's orientation in a camera it was not trained for, not its shape.
It does not improve a lifter already trained on the full distribution (shipped COCO-17 model:
80.3 -> 85.6 mm; a 150-step model: 171 -> 175 mm).

3D labels are used only to score MPJPE / PA-MPJPE before and after on a held-out single-view
validation set (:func:`pose_ros.core.lifter_train.evaluate`). The network is the checkpoint's
(BatchNorm folded at export: :class:`pose_ros.core.lifter.Lifter`) as a torch module without
BatchNorm, so fine-tuning changes exactly the numbers inference uses; the result is written
in the same .npz format.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import synthpose
from .lifter import Lifter, normalise
from .mvconsistency import body_limbs, limb_length, symmetric_multiview_loss, torso_limb, triangulate


@contextlib.contextmanager
def camera_elevations(low_deg: float, high_deg: float):
    """Temporarily restrict :func:`pose_ros.core.synthpose.sample_cameras` to elevations in
    [low_deg, high_deg] (degrees, camera above the hips: positive): the biased camera distribution
    a deliberately weak start is trained on (tests and ``benchmarks/bench_mvconsistency.py``)."""
    saved = synthpose.ELEVATION_DEG
    synthpose.ELEVATION_DEG = (float(low_deg), float(high_deg))
    try:
        yield
    finally:
        synthpose.ELEVATION_DEG = saved


@dataclass
class MultiViewBatch:
    """n people, each seen by V cameras. names: K keypoint names; K (V, n, 3, 3) px; R (V, n, 3, 3)
    and t (V, n, 3) m with X_cam = R X_pose + t (optical frames); px (V, n, K, 2) noisy pixels;
    conf (V, n, K) in {0, 1}; cam_points (V, n, K, 3) m: the true camera-frame keypoints
    (evaluation only, never in the loss)."""

    names: tuple[str, ...]
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    px: np.ndarray
    conf: np.ndarray
    cam_points: np.ndarray

    def take(self, idx) -> MultiViewBatch:
        return MultiViewBatch(self.names, self.K[:, idx], self.R[:, idx], self.t[:, idx], self.px[:, idx],
                              self.conf[:, idx], self.cam_points[:, idx])


def sample_multiview(n: int, rng: np.random.Generator, names, views: int = 2, noise=(0.0, 0.02),
                     drop=(0.0, 0.08)) -> MultiViewBatch:
    """n synthetic people, each with ``views`` independent cameras (see the module docstring)."""
    if views < 2:
        raise ValueError(f"views must be >= 2 (the loss compares views), not {views}")
    poses = synthpose.sample_poses(n, rng, names)
    keep = [i for i, nm in enumerate(poses.names) if nm in ("left_hip", "right_hip")]
    Ks, Rs, ts, pxs, confs, pcs = [], [], [], [], [], []
    for _ in range(views):
        cams = synthpose.sample_cameras(n, rng, poses.keypoints)
        pc = synthpose.to_camera(poses.keypoints, cams)
        px, conf = synthpose.corrupt_2d(synthpose.project(pc, cams.K), rng, keep, noise, drop)
        bad = ~np.isfinite(px).all(-1)
        px[bad], conf[bad] = 0.0, 0.0
        Ks.append(cams.K), Rs.append(cams.R), ts.append(cams.t), pxs.append(px), confs.append(conf), pcs.append(pc)
    return MultiViewBatch(poses.names, *(np.stack(a) for a in (Ks, Rs, ts, pxs, confs, pcs)))


def torch_lifter(lifter: Lifter):
    """The numpy :class:`Lifter`'s network as a torch ``nn.Module`` (float32, no BatchNorm):
    (B, 2 J_in) normalised input -> (B, 3 J_out) metres, the same function as Lifter.forward."""
    import torch

    nn = torch.nn

    def lin(w, b):
        m = nn.Linear(*w.shape)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T, np.float32)))
            m.bias.copy_(torch.from_numpy(np.asarray(b, np.float32)))
        return m

    class FoldedLifterNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = lin(lifter.w_in, lifter.b_in)
            self.blocks = nn.ModuleList(nn.ModuleList([lin(*l1), lin(*l2)]) for l1, l2 in lifter.res)
            self.out = lin(lifter.w_out, lifter.b_out)

        def forward(self, x):
            h = torch.relu(self.inp(x))
            for l1, l2 in self.blocks:
                h = h + torch.relu(l2(torch.relu(l1(h))))
            return self.out(h)

    return FoldedLifterNet()


def to_lifter(net, like: Lifter, extra_meta: dict | None = None) -> Lifter:
    """A numpy :class:`Lifter` with the weights of ``torch_lifter``'s module ``net`` and the
    metadata of ``like`` (plus extra_meta)."""
    def wb(m):
        return m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()

    t = {}
    t["w_in"], t["b_in"] = wb(net.inp)
    for i, (l1, l2) in enumerate(net.blocks):
        t[f"w_{i}_0"], t[f"b_{i}_0"] = wb(l1)
        t[f"w_{i}_1"], t[f"b_{i}_1"] = wb(l2)
    t["w_out"], t["b_out"] = wb(net.out)
    return Lifter({**like.meta, **(extra_meta or {})}, t, like.source)


def save_lifter(lifter: Lifter, path, dtype=np.float16) -> Path:
    """Write ``lifter`` as a checkpoint :meth:`Lifter.load` reads (.npz, no pickles)."""
    arr = {"w_in": lifter.w_in, "b_in": lifter.b_in, "w_out": lifter.w_out, "b_out": lifter.b_out}
    for i, ((w1, b1), (w2, b2)) in enumerate(lifter.res):
        arr.update({f"w_{i}_0": w1, f"b_{i}_0": b1, f"w_{i}_1": w2, f"b_{i}_1": b2})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(lifter.meta)), **{k: v.astype(dtype) for k, v in arr.items()})
    return path


def lift_views(net, lifter: Lifter, px: np.ndarray, conf: np.ndarray, K: np.ndarray):
    """Torch predictions for one view: px (n, J, 2) pixels, conf (n, J), K (n, 3, 3) ->
    (n, J, 3) float64 tensor, root-relative metres in the camera's optical-frame axes
    (the numpy :meth:`Lifter.lift_normalised`, differentiable in the weights)."""
    import torch

    m = (px - K[:, None, :2, 2]) / K[:, None, [0, 1], [0, 1]]
    x, Rv = normalise(m, conf, lifter.hips_in, lifter.min_confidence)
    y = net(torch.from_numpy(x)).double().reshape(len(x), -1, 3)
    return torch.einsum("bji,bkj->bki", torch.from_numpy(Rv), y)  # Rv^T y


def batch_loss(net, lifter: Lifter, b: MultiViewBatch, limb, reprojection_weight: float = 1.0,
               trim: float | None = 3.0, reference: str = "triangulated", size_weight: float = 0.3):
    """The training objective of the module docstring (no 3D labels; a scalar tensor).

    b: the people and views of one step; limb: :func:`limb_length`'s limb (or list of limbs);
    reference: ``"triangulated"`` (default) or ``"predicted"`` (each direction scaled to the
    other view's predicted length, no size term). The square root of the per-person squared
    error keeps one badly lifted person from drowning the batch's gradient, as MPJPE (not MSE)
    does in supervised lifter training."""
    import torch

    V = len(b.K)
    preds = [lift_views(net, lifter, b.px[v], b.conf[v], b.K[v]) for v in range(V)]
    total, pairs = 0.0, 0
    for i in range(V):
        for j in range(i + 1, V):
            R_ji = b.R[j] @ np.transpose(b.R[i], (0, 2, 1))  # x_j = R_ji x_i + t_ji
            t_ji = b.t[j] - np.einsum("nab,nb->na", R_ji, b.t[i])
            ref = None
            if reference not in ("triangulated", "predicted"):
                raise ValueError(f"reference must be 'triangulated' or 'predicted', not {reference!r}")
            if reference == "triangulated":  # the limb measured by the two cameras (2D + calibration only)
                X = torch.from_numpy(triangulate(b.px[i], b.px[j], b.K[i], b.K[j], R_ji, t_ji))
                ref = limb_length(X, limb)
            rms = symmetric_multiview_loss(
                preds[i], preds[j], b.px[i], b.px[j], b.K[i], b.K[j], R_ji, t_ji, b.conf[i], b.conf[j],
                limb=limb, reprojection_weight=reprojection_weight, reduction="none", ref_length=ref).clamp(min=1e-12).sqrt()
            if ref is not None and size_weight:  # the size the two cameras measure (scale-invariant otherwise)
                rms = rms + size_weight * 0.5 * ((limb_length(preds[i], limb) / ref - 1).abs()
                                                 + (limb_length(preds[j], limb) / ref - 1).abs())
            if trim and trim > 0:  # leave out people far worse than the batch's median (their gradients explode)
                rms = rms[rms.detach() <= trim * rms.detach().median()]
            total = total + rms.mean()
            pairs += 1
    return total / pairs


def finetune(lifter: Lifter, steps: int = 1200, seed: int = 0, views: int = 2, batch: int = 64,
             lr: float = 1e-4, reprojection_weight: float = 1.0, pool: int = 4000, refresh: int = 400,
             val_n: int = 2000, val_seed: int = 1000, clip: float = 1.0, limbs: str = "body",
             trim: float | None = 3.0, reference: str = "triangulated", size_weight: float = 0.3,
             threads: int | None = None, progress: bool = True, log=None) -> tuple[Lifter, dict]:
    """Fine-tune ``lifter`` with the multi-view consistency loss on synthetic multi-view groups.

    Fresh groups: ``pool`` people every ``refresh`` steps; Adam (lr, cosine decay to 5 %),
    gradient norm clipped to ``clip``; limbs: ``"body"`` (:func:`body_limbs`) or ``"torso"``.

    Returns (the tuned numpy Lifter, record): record holds the settings, the loss of the first
    and last 20 steps (normalised image units squared), the seconds, and ``before`` / ``after``:
    MPJPE / PA-MPJPE (mm) of :func:`pose_ros.core.lifter_train.evaluate` on ``val_n`` held-out
    single-view samples drawn with ``val_seed`` (3D labels used only there).
    """
    import torch
    from tqdm import tqdm

    from .lifter_train import evaluate

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = lifter.names_in
    limb = body_limbs(names) if limbs == "body" else torso_limb(names)
    before = evaluate(lifter, val_n, val_seed, names)
    net = torch_lifter(lifter)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses: list[float] = []
    t0 = time.time()
    data = None
    bar = tqdm(total=steps, unit="step", disable=not progress, desc="finetune-lifter")
    for step in range(steps):
        if step % refresh == 0:
            data = sample_multiview(min(pool, max(batch, steps * batch)), rng, names, views)
        b = data.take(rng.integers(0, data.px.shape[1], batch))
        loss = batch_loss(net, lifter, b, limb, reprojection_weight, trim, reference, size_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2e}")
        bar.update(1)
    bar.close()
    record = {"finetune_multiview": {
        "steps": steps, "seed": seed, "views": views, "batch": batch, "lr": lr,
        "reprojection_weight": reprojection_weight, "size_weight": size_weight, "trim": trim,
        "reference": reference, "limb": str(limb), "seconds": round(time.time() - t0, 1),
        "loss_first_20": float(np.mean(losses[:20])) if losses else None,
        "loss_last_20": float(np.mean(losses[-20:])) if losses else None}}
    tuned = to_lifter(net, lifter, record)
    after = evaluate(tuned, val_n, val_seed, names)
    rnd = {k: (round(v, 1) if k != "n" else v) for k, v in before.items()}
    record["finetune_multiview"].update(
        before=rnd, after={k: (round(v, 1) if k != "n" else v) for k, v in after.items()}, val_seed=val_seed)
    tuned.meta.update(record)
    if log is not None:
        log(f"multi-view fine-tuning ({steps} steps, {views} views, no 3D labels): validation MPJPE "
            f"{before['mpjpe_mm']:.1f} -> {after['mpjpe_mm']:.1f} mm, PA-MPJPE {before['pa_mpjpe_mm']:.1f} -> "
            f"{after['pa_mpjpe_mm']:.1f} mm ({val_n} synthetic samples, seed {val_seed})")
    return tuned, record


def add_arguments(p) -> None:
    """``pose-ros finetune-lifter`` options (argparse parser p)."""
    p.add_argument("checkpoint", help="lifter checkpoint to start from (.npz of `pose-ros train-lifter`)")
    p.add_argument("--out", required=True, help="fine-tuned checkpoint (.npz; the record goes to OUT.json)")
    p.add_argument("--steps", type=int, default=1200, help="optimiser steps")
    p.add_argument("--batch", type=int, default=64, help="people per step (each seen by --views cameras)")
    p.add_argument("--views", type=int, default=2, help="cameras per person (every pair enters the loss)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (cosine decay)")
    p.add_argument("--reprojection-weight", type=float, default=1.0,
                   help="weight of the own-view 2D reprojection term (0: consistency only)")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--val-n", type=int, default=2000, help="validation samples (3D labels, scoring only)")
    p.add_argument("--val-seed", type=int, default=1000, help="validation seed (train-lifter's: its seed + 1000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_cli(args) -> int:
    """``pose-ros finetune-lifter``: load, fine-tune, write OUT and OUT.json, print before / after."""
    import sys

    from .lifter_train import _torch

    _torch()  # the clear "needs torch" error
    start = Lifter.load(args.checkpoint)
    tuned, record = finetune(start, steps=args.steps, seed=args.seed, views=args.views, batch=args.batch,
                             lr=args.lr, reprojection_weight=args.reprojection_weight, val_n=args.val_n,
                             val_seed=args.val_seed, progress=not args.quiet,
                             log=lambda m: print(f"pose-ros: {m}", file=sys.stderr))
    record["finetune_multiview"]["start"] = str(args.checkpoint)
    tuned.meta.update(record)
    path = save_lifter(tuned, args.out, np.float32)
    Path(str(path) + ".json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["finetune_multiview"]))
    return 0
