"""Training the 2D-to-3D lifter on synthetic people (``pose-ros train-lifter``; needs torch).

Stable API (``core/mvconsistency.py`` builds on it; keep the names and signatures):

* ``LifterNet(n_in, n_out, width=512, blocks=2, dropout=0.1)``: ``nn.Module``, input (B, 2 * n_in)
  float32 (:func:`pose_ros.core.lifter.normalise`), output (B, 3 * n_out) float32: root-relative
  joints in metres in the virtual camera's axes (see :mod:`pose_ros.core.lifter`).
* ``make_batch(n, rng, names) -> (x (n, 2K) float32, y (n, 3K) float32, SynthBatch)``.
* ``export(net, path, names, meta, dtype=np.float16)``: folds each BatchNorm into its linear
  layer and writes the numpy checkpoint :meth:`pose_ros.core.lifter.Lifter.load` reads.
* ``evaluate(lifter, n, seed, names) -> {"mpjpe_mm", "pa_mpjpe_mm", "n"}`` (numpy model).
* ``train(out, steps, seed, joints_in, ...) -> dict`` (what the CLI runs).

Loss: mean per-joint Euclidean error (MPJPE) on root-relative joints. Data: fresh synthetic
batches (:mod:`pose_ros.core.synthpose`) from a pool of ``pool`` samples redrawn every
``refresh`` steps; Adam with a cosine learning-rate decay. Validation: a held-out set drawn with
``seed + 1000`` (never used for training), scored with the exported numpy model.
"""
from __future__ import annotations

import functools
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import synthpose
from .lifter import NORMALISATION, Lifter, normalise, targets
from .skeletons import get_layout

TORCH_HINT = ("training the lifter needs torch (inference does not): "
              "pip install -r requirements/torch.txt")


def _torch():
    try:
        import torch
    except ModuleNotFoundError as exc:
        raise RuntimeError(TORCH_HINT) from exc
    return torch


@functools.lru_cache(maxsize=1)
def _net_class():
    torch = _torch()
    nn = torch.nn

    class LifterNet(nn.Module):
        """Martinez et al. residual MLP: (B, 2 n_in) -> (B, 3 n_out)."""

        def __init__(self, n_in: int, n_out: int, width: int = 512, blocks: int = 2, dropout: float = 0.1):
            super().__init__()
            self.n_in, self.n_out, self.width, self.n_blocks = n_in, n_out, width, blocks
            self.inp = nn.Linear(2 * n_in, width)
            self.bn_in = nn.BatchNorm1d(width)
            self.blocks = nn.ModuleList()
            for _ in range(blocks):
                self.blocks.append(nn.ModuleList([nn.Linear(width, width), nn.BatchNorm1d(width),
                                                  nn.Linear(width, width), nn.BatchNorm1d(width)]))
            self.out = nn.Linear(width, 3 * n_out)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.drop(torch.relu(self.bn_in(self.inp(x))))
            for l1, b1, l2, b2 in self.blocks:
                r = self.drop(torch.relu(b1(l1(h))))
                r = self.drop(torch.relu(b2(l2(r))))
                h = h + r
            return self.out(h)

    return LifterNet


def __getattr__(name):  # LifterNet without importing torch at module import
    if name == "LifterNet":
        return _net_class()
    raise AttributeError(name)


def hips(names) -> tuple[int, int]:
    names = tuple(names)
    return names.index("left_hip"), names.index("right_hip")


def make_batch(n: int, rng: np.random.Generator, names) -> tuple[np.ndarray, np.ndarray, synthpose.SynthBatch]:
    """n synthetic samples: network input x (n, 2K) float32, target y (n, 3K) float32 metres."""
    b = synthpose.sample_batch(n, rng, names)
    m = (b.px - b.cameras.K[:, None, :2, 2]) / b.cameras.K[:, None, [0, 1], [0, 1]]
    h = hips(names)
    x, Rv = normalise(m, b.conf, h)
    y = targets(b.cam_points, h, Rv).reshape(n, -1).astype(np.float32)
    return x, y, b


def _fold(linear, bn) -> tuple[np.ndarray, np.ndarray]:
    """(W (in, out), b (out,)) of Linear followed by BatchNorm1d in eval mode."""
    W = linear.weight.detach().double().numpy()
    b = linear.bias.detach().double().numpy()
    g = (bn.weight.detach().double() / (bn.running_var.detach().double() + bn.eps).sqrt()).numpy()
    return (W * g[:, None]).T, (b - bn.running_mean.detach().double().numpy()) * g + bn.bias.detach().double().numpy()


def export(net, path, names, meta: dict | None = None, dtype=np.float16) -> Path:
    """Write ``net`` as a numpy checkpoint (BatchNorm folded) with its metadata; returns path."""
    names = list(names)
    arr = {}
    arr["w_in"], arr["b_in"] = _fold(net.inp, net.bn_in)
    for i, (l1, b1, l2, b2) in enumerate(net.blocks):
        arr[f"w_{i}_0"], arr[f"b_{i}_0"] = _fold(l1, b1)
        arr[f"w_{i}_1"], arr[f"b_{i}_1"] = _fold(l2, b2)
    arr["w_out"] = net.out.weight.detach().double().numpy().T
    arr["b_out"] = net.out.bias.detach().double().numpy()
    arr = {k: v.astype(dtype) for k, v in arr.items()}
    info = {"names_in": names, "names_out": names, "width": net.width, "blocks": net.n_blocks,
            "normalisation": NORMALISATION, "root": "mid-hip (left_hip + right_hip) / 2",
            "output_frame": "camera optical frame axes, root-relative, metres", **(meta or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(info)), **arr)
    return path


def evaluate(lifter: Lifter, n: int = 5000, seed: int = 1000, names=None) -> dict:
    """Root-relative MPJPE and PA-MPJPE (mm) of the numpy ``lifter`` on n fresh synthetic samples
    (noise and dropped joints as in training) drawn with ``seed``."""
    from . import metrics

    names = tuple(names or lifter.names_in)
    rng = np.random.default_rng(seed)
    b = synthpose.sample_batch(n, rng, names)
    m = (b.px - b.cameras.K[:, None, :2, 2]) / b.cameras.K[:, None, [0, 1], [0, 1]]
    pred = lifter.lift_normalised(m, b.conf) * 1000
    h = hips(names)
    gt = (b.cam_points - (b.cam_points[:, h[0]] + b.cam_points[:, h[1]])[:, None] / 2) * 1000
    return {"mpjpe_mm": metrics.mpjpe(pred, gt), "pa_mpjpe_mm": metrics.pa_mpjpe(pred, gt), "n": n}


def train(out: str | Path, steps: int = 20000, seed: int = 0, joints_in: str = "blazepose_33",
          width: int = 512, blocks: int = 2, batch: int = 256, lr: float = 1e-3, pool: int = 100_000,
          refresh: int = 2000, progress: bool = True, val_n: int = 5000, dtype=np.float16,
          command: str | None = None, log=None) -> dict:
    """Train a lifter from scratch and export it to ``out`` (.npz) plus ``out``.json (the
    record: command, seed, steps, losses, validation MPJPE / PA-MPJPE in mm). Returns the record."""
    torch = _torch()
    from tqdm import tqdm

    if joints_in not in ("blazepose_33", "coco_17"):
        raise ValueError(f"--joints-in {joints_in!r}: use blazepose_33 or coco_17")
    names = get_layout(joints_in).names
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _net_class()(len(names), len(names), width, blocks)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    t0 = time.time()
    losses: list[float] = []
    bar = tqdm(total=steps, unit="step", disable=not progress, desc="train-lifter")
    X = Y = None
    net.train()
    for step in range(steps):
        if step % refresh == 0:
            X, Y, _ = make_batch(min(pool, max(batch, steps * batch)), rng, names)
            X, Y = torch.from_numpy(X), torch.from_numpy(Y)
        idx = torch.from_numpy(rng.integers(0, len(X), batch))
        pred = net(X[idx])
        loss = (pred - Y[idx]).reshape(batch, -1, 3).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(mpjpe_mm=f"{1000 * np.mean(losses[-50:]):.0f}")
        bar.update(1)
    bar.close()
    net.eval()
    record = {"command": command or "pose-ros train-lifter", "seed": seed, "steps": steps, "batch": batch,
              "width": width, "blocks": blocks, "joints_in": joints_in, "lr": lr, "pool": pool,
              "refresh": refresh, "train_seconds": round(time.time() - t0, 1),
              "loss_first_100_mm": round(1000 * float(np.mean(losses[:100])), 1),
              "loss_last_100_mm": round(1000 * float(np.mean(losses[-100:])), 1)}
    path = export(net, out, names, {"training": record}, dtype)
    val = evaluate(Lifter.load(path), val_n, seed + 1000, names)
    record["validation"] = {"seed": seed + 1000, "n": val_n, "mpjpe_mm": round(val["mpjpe_mm"], 1),
                            "pa_mpjpe_mm": round(val["pa_mpjpe_mm"], 1)}
    export(net, out, names, {"training": record}, dtype)  # again, with the validation numbers
    Path(str(path) + ".json").write_text(json.dumps(record, indent=1) + "\n")
    if log is not None:
        log(f"lifter -> {path}: validation MPJPE {record['validation']['mpjpe_mm']} mm, "
            f"PA-MPJPE {record['validation']['pa_mpjpe_mm']} mm ({val_n} synthetic samples, seed {seed + 1000})")
    record["net"] = net
    return record


def command_line(argv=None) -> str:
    """The ``pose-ros`` command line (argv without the program; default sys.argv[1:])."""
    return "pose-ros " + " ".join(shlex.quote(str(a)) for a in (sys.argv[1:] if argv is None else argv))
