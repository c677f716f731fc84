"""`pose-ros train-demo`: CPM and OpenPose nets learn on a CPU in minutes (torch).

* CPM (top-down): single-person crops, COCO-17 belief maps, loss at every stage.
* OpenPoseNet (bottom-up): whole images with several people, OpenPose-18 confidence maps +
  part affinity fields, both branches supervised at every stage.

Training data are synthetic figures rendered on the fly (:mod:`pose_ros.core.synth`) or a
COCO-format keypoint folder (:mod:`pose_ros.core.datasets`). Each run measures PCK@0.2 (box
reference) on a fixed validation set before training (the untrained baseline, same weights)
and after, writes the loss curves (PNG, matplotlib Agg), a checkpoint (``<family>.pt``:
state_dict + the :class:`DemoConfig`) and optionally an ONNX export. No weights ship.

Shapes: images (B, 3, S, S) float32 in [-0.5, 0.5] (:func:`pose_ros.core.datasets.normalise_image`);
outputs at S / stride; keypoints are network-input pixels (x, y).
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .datasets import CocoKeypoints, make_targets, normalise_image
from .decode import HeatmapArgmax, PafDecoder, limb_scores
from .metrics import pck, reference_length
from .models.heatmap_nets import CPM, OpenPoseNet, stagewise_loss
from .skeletons import COCO_17, OPENPOSE_18, Layout
from .synth import render_scene

FAMILIES = ("cpm", "openpose")
LAYOUTS: dict[str, Layout] = {"cpm": COCO_17, "openpose": OPENPOSE_18}
SHARE = {"cpm": 1.0, "openpose": 2.0}  # split of a --minutes budget (OpenPose learns more: PAFs)


@dataclass
class DemoConfig:
    """One training run. family: ``"cpm"`` or ``"openpose"``; steps: maximum optimiser steps;
    minutes: wall-clock cap (None: run all steps); batch: images per step; input_size: square
    input side in pixels (multiple of stride); stride: input pixels per output pixel; sigma:
    heatmap Gaussian sigma and paf_width: PAF half-width, both in output pixels; stages,
    features, width, depth, kernel: net size (see :mod:`pose_ros.core.models.heatmap_nets`);
    lr: Adam learning rate (cosine-decayed to 5 % over the steps or minutes); val_size: validation images;
    max_people: synthetic people per OpenPose image (1 .. max_people);
    threads: torch CPU threads; seed: everything (weights, data, validation set)."""

    family: str = "cpm"
    steps: int = 600
    minutes: float | None = None
    batch: int = 16
    input_size: int = 64
    stride: int = 4
    sigma: float = 1.5
    paf_width: float = 1.0
    stages: int = 3
    features: int = 32
    width: int = 32
    depth: int = 2
    kernel: int = 5
    lr: float = 2e-3
    val_size: int = 64
    max_people: int = 3
    threads: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {self.family!r}")
        if self.input_size % self.stride:
            raise ValueError(f"input_size {self.input_size} must be a multiple of stride {self.stride}")
        if self.steps < 0 or self.batch < 1 or self.val_size < 1:
            raise ValueError("steps must be >= 0, batch and val_size >= 1")

    @property
    def layout(self) -> Layout:
        return LAYOUTS[self.family]

    @property
    def out_size(self) -> tuple[int, int]:
        return (self.input_size // self.stride,) * 2


def default_config(family: str, **kw) -> DemoConfig:
    """Sizes that learn on 2 CPU cores in minutes: CPM on 64 px crops, OpenPose on 96 px images."""
    base = {"cpm": {"input_size": 64}, "openpose": {"input_size": 96}}[family]
    return DemoConfig(family=family, **{**base, **kw})


def make_net(cfg: DemoConfig) -> torch.nn.Module:
    """The family's net at the config's size (weights from torch's default init; seed first)."""
    kw = {"stages": cfg.stages, "features": cfg.features, "stride": cfg.stride, "width": cfg.width,
          "kernel": cfg.kernel, "depth": cfg.depth}
    return CPM(cfg.layout, **kw) if cfg.family == "cpm" else OpenPoseNet(cfg.layout, **kw)


# ------------------------------------------------------------------------------------- data
def synthetic_sample(rng: np.random.Generator, cfg: DemoConfig) -> dict:
    """One synthetic training sample, same keys as :class:`CocoKeypoints` items: a single-person
    crop (CPM: the figure fills about 1 / 1.25 of the crop, as a padded top-down box) or an image
    with 1 .. max_people people (OpenPose)."""
    s = (cfg.input_size, cfg.input_size)
    if cfg.family == "cpm":
        sc = render_scene(rng, cfg.layout, s, n_people=(1, 1), height=(0.6, 0.8), centre=(0.5, 0.5),
                          centre_jitter=0.04)
    else:
        sc = render_scene(rng, cfg.layout, s, n_people=(1, cfg.max_people), height=(0.45, 0.9))
    t = make_targets(sc.keypoints, sc.visible, cfg.layout, cfg.out_size, cfg.stride, cfg.sigma,
                     cfg.paf_width if cfg.family == "openpose" else None)
    kp = sc.keypoints.copy()
    kp[~sc.visible] = np.nan
    return {"image": normalise_image(sc.image), **t, "mask": np.ones((1, *cfg.out_size), np.float32),
            "keypoints": kp, "visible": sc.visible}


def collate(samples: list[dict], family: str):
    """Stack samples -> (images (B, 3, S, S), targets tensor or (heatmaps, pafs) tuple, mask)."""
    x = torch.from_numpy(np.stack([s["image"] for s in samples]))
    hm = torch.from_numpy(np.stack([s["heatmaps"] for s in samples]))
    mask = torch.from_numpy(np.stack([s["mask"] for s in samples]))
    if family == "openpose":
        return x, (hm, torch.from_numpy(np.stack([s["pafs"] for s in samples]))), mask
    return x, hm, mask


class _Source:
    """Training / validation samples: synthetic (rendered on demand) or a COCO dataset."""

    def __init__(self, cfg: DemoConfig, coco: CocoKeypoints | None = None, indices=None):
        self.cfg, self.coco = cfg, coco
        self.indices = list(range(len(coco))) if coco is not None and indices is None else indices

    def draw(self, rng: np.random.Generator, n: int) -> list[dict]:
        if self.coco is None:
            return [synthetic_sample(rng, self.cfg) for _ in range(n)]
        return [self.coco[int(i)] for i in rng.choice(self.indices, n)]

    def fixed(self, rng: np.random.Generator, n: int) -> list[dict]:
        if self.coco is None:
            return [synthetic_sample(rng, self.cfg) for _ in range(n)]
        return [self.coco[int(i)] for i in self.indices]


# ------------------------------------------------------------------------------------- eval
def _match(gt: np.ndarray, vis: np.ndarray, preds: list[np.ndarray], alpha: float) -> np.ndarray:
    """Assign predicted people to ground-truth people (max joints within alpha x box, Hungarian);
    (N, K, 2) predictions aligned with ``gt``, NaN for unmatched."""
    out = np.full(gt.shape, np.nan)
    if not preds or not len(gt):
        return out
    ref = reference_length(gt, "bbox", visible=vis)
    hits = np.zeros((len(gt), len(preds)))
    for j, p in enumerate(preds):
        d = np.linalg.norm(gt - p[None], axis=-1)
        hits[:, j] = ((d <= alpha * ref[:, None]) & vis).sum(1)
    ri, ci = linear_sum_assignment(-hits)
    for i, j in zip(ri, ci, strict=True):
        out[i] = preds[j]
    return out


def _joint_hits(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, alpha: float) -> np.ndarray:
    """(K,) bool: joint k of the single prediction (K, 2) lies within alpha x box of joint k of
    any visible ground-truth person (N, K, 2)."""
    ref = reference_length(gt, "bbox", visible=vis)
    d = np.linalg.norm(gt - pred[None], axis=-1)
    return ((d <= alpha * ref[:, None]) & vis).any(0)


@torch.no_grad()
def evaluate(net: torch.nn.Module, val: list[dict], cfg: DemoConfig, alpha: float = 0.2,
             batch: int = 32) -> dict[str, float]:
    """Scores of the last stage on the validation samples (reference: the ground-truth box's
    longer side).

    ``pck``: PCK@alpha of the family's decoder. CPM: per-joint argmax + parabola refinement.
    OpenPose: :class:`PafDecoder` (people assembled from peaks and PAFs), each ground-truth
    person matched to one decoded person; missed people count every joint as wrong.
    ``joint_rate`` (OpenPose): fraction of joint types whose heatmap argmax lies within
    alpha x box of that joint of some person (= PCK for one person per image);
    ``paf_score`` (OpenPose): mean over ground-truth limbs of the PAF line integral along the
    limb (:func:`pose_ros.core.decode.limb_scores`, 1 for a perfect field, ~0 untrained)."""
    was = net.training
    net.eval()
    preds, gts, viss, jr, paf = [], [], [], [], []
    dec = (HeatmapArgmax(stride=cfg.stride) if cfg.family == "cpm"
           else PafDecoder(cfg.layout, stride=cfg.stride, peak_threshold=0.1, min_parts=3,
                           min_score=0.2))
    argmax = HeatmapArgmax(stride=cfg.stride)
    limbs = np.asarray(cfg.layout.limbs)
    for i in range(0, len(val), batch):
        chunk = val[i:i + batch]
        out = net(torch.from_numpy(np.stack([s["image"] for s in chunk])))[-1]
        for b, s in enumerate(chunk):
            gt, vis = np.nan_to_num(s["keypoints"]), s["visible"]
            if cfg.family == "cpm":
                p = dec(out[b].numpy()).xy[None]
            else:
                hm, pf = out[0][b].numpy(), out[1][b].numpy()
                p = _match(gt, vis, [q.xy for q in dec(hm, pf)], alpha)
                jr.append(_joint_hits(argmax(hm).xy, gt, vis, alpha)[vis.any(0)])
                g = gt / cfg.stride
                for n in range(len(gt)):
                    for li, (ja, jb) in enumerate(limbs):
                        if vis[n, ja] and vis[n, jb]:
                            cx, cy = dec.paf_channels[li]
                            sc, _ = limb_scores(pf[cx], pf[cy], g[n, ja], g[n, jb])
                            paf.append(float(sc[0, 0]) if np.isfinite(sc[0, 0]) else 0.0)
            preds.append(p)
            gts.append(gt)
            viss.append(vis)
    net.train(was)
    gt, vis = np.concatenate(gts), np.concatenate(viss)
    out = {"pck": pck(np.concatenate(preds), gt, reference_length(gt, "bbox", visible=vis), alpha, vis)[0]}
    if cfg.family == "openpose":
        out["joint_rate"] = float(np.concatenate(jr).mean())
        out["paf_score"] = float(np.mean(paf)) if paf else float("nan")
    return out


# ------------------------------------------------------------------------------------ train
@dataclass
class DemoResult:
    """losses: (steps,) total stage-wise loss per step; stage_losses: (steps, stages) the loss
    of each stage (sum over its outputs); untrained / trained: :func:`evaluate` scores before /
    after training (``pck`` = PCK@0.2); seconds: training wall time."""

    config: DemoConfig
    losses: np.ndarray
    stage_losses: np.ndarray
    untrained: dict
    trained: dict
    steps: int
    seconds: float
    net: torch.nn.Module = field(repr=False)

    @property
    def pck_untrained(self) -> float:
        return self.untrained["pck"]

    @property
    def pck_trained(self) -> float:
        return self.trained["pck"]


def train(cfg: DemoConfig, coco: CocoKeypoints | None = None, progress: bool = False) -> DemoResult:
    """Train one family (see the module docstring). coco: train and validate on a COCO dataset
    (every 5th sample held out for validation when there are >= 5) instead of synthetic data."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if coco is None:
        train_src = val_src = _Source(cfg)
    else:
        idx = np.arange(len(coco))
        held = idx[::5] if len(idx) >= 5 else idx
        rest = np.setdiff1d(idx, held) if len(idx) >= 5 else idx
        train_src, val_src = _Source(cfg, coco, rest), _Source(cfg, coco, held)
    val = val_src.fixed(np.random.default_rng(cfg.seed + 10_000), cfg.val_size)
    net = make_net(cfg)
    pck0 = evaluate(net, val, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses, stage_losses = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train {cfg.family}", unit="step")
    t0 = time.monotonic()
    net.train()
    for step in range(cfg.steps):
        done = step / cfg.steps  # progress through the budget: steps or wall-clock minutes
        if cfg.minutes is not None:
            done = max(done, (time.monotonic() - t0) / (60.0 * cfg.minutes))
            if done >= 1.0:
                break
        for g in opt.param_groups:  # cosine decay to 5 % of lr
            g["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * done)))
        x, tgt, mask = collate(train_src.draw(rng, cfg.batch), cfg.family)
        outs = net(x)
        loss = stagewise_loss(outs, tgt, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            stage_losses.append([float(stagewise_loss([o], tgt, mask)) for o in outs])
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    seconds = time.monotonic() - t0
    if bar is not None:
        bar.close()
    pck1 = evaluate(net, val, cfg)
    return DemoResult(cfg, np.asarray(losses), np.asarray(stage_losses).reshape(len(losses), -1),
                      pck0, pck1, len(losses), seconds, net.eval())


# ---------------------------------------------------------------------------------- outputs
def plot_losses(results: list[DemoResult], path) -> Path:
    """Loss curves PNG: one panel per family, total and per-stage loss vs step (log y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        steps = np.arange(1, r.steps + 1)
        ax.semilogy(steps, r.losses, label="total (all stages)", color="k")
        for t in range(r.stage_losses.shape[1]):
            ax.semilogy(steps, r.stage_losses[:, t], label=f"stage {t + 1}", alpha=0.7)
        ax.set_title(f"{r.config.family}: PCK@0.2 {r.pck_untrained:.2f} -> {r.pck_trained:.2f}")
        ax.set_xlabel("step")
        ax.set_ylabel("MSE loss")
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


class _LastStage(torch.nn.Module):
    """Export wrapper: the last stage's outputs only."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[-1]


def save_checkpoint(result: DemoResult, path) -> Path:
    """``torch.save`` of {"family", "layout", "config" (dict), "state_dict", "pck_trained"}."""
    path = Path(path)
    torch.save({"family": result.config.family, "layout": result.config.layout.name,
                "config": asdict(result.config), "state_dict": result.net.state_dict(),
                "pck_trained": result.pck_trained}, path)
    return path


def load_checkpoint(path) -> tuple[torch.nn.Module, DemoConfig]:
    """The net (eval mode) and config of a :func:`save_checkpoint` file."""
    ck = torch.load(Path(path), map_location="cpu", weights_only=True)
    cfg = DemoConfig(**ck["config"])
    net = make_net(cfg)
    net.load_state_dict(ck["state_dict"])
    return net.eval(), cfg


def export_onnx(net: torch.nn.Module, cfg: DemoConfig, path) -> Path:
    """ONNX of the last stage: input ``image`` (1, 3, S, S) float32 in [-0.5, 0.5]; outputs
    ``heatmaps`` (1, K, S/stride, S/stride) [and ``pafs`` (1, 2L, ...), OpenPose] (torch.onnx,
    TorchScript exporter, opset 17)."""
    path = Path(path)
    names = ["heatmaps"] if cfg.family == "cpm" else ["heatmaps", "pafs"]
    x = torch.zeros(1, 3, cfg.input_size, cfg.input_size)
    with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer notes
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(_LastStage(net.eval()), (x,), str(path), input_names=["image"],
                          output_names=names, opset_version=17, dynamo=False)
    return path


def find_coco(coco_dir, annotations=None) -> tuple[Path, Path]:
    """(image folder, annotation json) of a COCO folder: ``annotations`` if given, else the one
    ``*.json`` in the folder or its ``annotations/`` subfolder whose name has "keypoints" (or
    the only json); images in the folder itself or ``images/``."""
    d = Path(coco_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"COCO folder {d} does not exist")
    if annotations is None:
        cands = sorted(d.glob("*.json")) + sorted(d.glob("annotations/*.json"))
        kp = [p for p in cands if "keypoints" in p.name] or cands
        if len(kp) != 1:
            raise FileNotFoundError(f"found {len(kp)} annotation json files in {d} ({[p.name for p in kp]}); "
                                    "name one with --coco-ann")
        annotations = kp[0]
    images = d / "images" if (d / "images").is_dir() else d
    return images, Path(annotations)


def run_demo(families=FAMILIES, minutes: float | None = None, out_dir="train_demo",
             coco_dir=None, coco_ann=None, onnx: bool = False, progress: bool = True,
             steps: int | None = None, log=print) -> list[DemoResult]:
    """Train each family (``minutes`` split 1 : 2 between CPM and OpenPose), write ``loss_curves.png``,
    ``<family>.pt`` (+ ``<family>.onnx`` if ``onnx``) and ``summary.json`` into ``out_dir``
    and log the PCK table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for fam in families:
        kw = {} if steps is None else {"steps": steps}
        if minutes is not None:
            kw["minutes"] = minutes * SHARE[fam] / sum(SHARE[f] for f in families)
            kw.setdefault("steps", 100_000)
        cfg = default_config(fam, **kw)
        coco = None
        if coco_dir is not None:
            images, ann = find_coco(coco_dir, coco_ann)
            coco = CocoKeypoints(images, ann, mode="crop" if fam == "cpm" else "full",
                                 layout=cfg.layout, input_size=(cfg.input_size,) * 2,
                                 stride=cfg.stride, sigma=cfg.sigma, paf_width=cfg.paf_width)
        r = train(cfg, coco, progress)
        results.append(r)
        save_checkpoint(r, out / f"{fam}.pt")
        if onnx:
            export_onnx(r.net, cfg, out / f"{fam}.onnx")
        extra = "".join(f", {k} {r.untrained[k]:.3f} -> {r.trained[k]:.3f}"
                        for k in r.trained if k != "pck")
        log(f"{fam}: {r.steps} steps in {r.seconds:.0f} s, loss {r.losses[0]:.4f} -> "
            f"{np.mean(r.losses[-10:]):.4f}, PCK@0.2 untrained {r.pck_untrained:.3f} -> trained "
            f"{r.pck_trained:.3f}{extra}")
    plot_losses(results, out / "loss_curves.png")
    summary = [{"family": r.config.family, "steps": r.steps, "seconds": round(r.seconds, 1),
                "loss_first": float(r.losses[0]) if r.steps else None,
                "loss_last10": float(np.mean(r.losses[-10:])) if r.steps else None,
                "untrained": r.untrained, "trained": r.trained,
                "data": "coco" if coco_dir else "synthetic"} for r in results]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"loss curves: {out / 'loss_curves.png'}; checkpoints in {out}/")
    return results
