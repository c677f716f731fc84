"""Multi-stage heatmap networks with intermediate supervision (torch).

* :class:`CPM` — Convolutional Pose Machines (Wei et al. 2016): a shared image-feature
  backbone; stage 1 predicts belief maps from the features, stage t >= 2 from
  ``[features, belief maps of stage t-1]`` with large kernels (growing receptive field).
* :class:`OpenPoseNet` — OpenPose's two-branch net (Cao et al. 2017): every stage predicts
  part confidence maps S (branch 1) and part affinity fields L (branch 2); stage t >= 2 sees
  ``[features, S_{t-1}, L_{t-1}]``.

Both return every stage's output so a loss can supervise each stage
(:func:`stagewise_loss`). Input: images (B, 3, H, W) float32, normalised by the caller;
outputs at 1 / ``stride`` resolution (H / stride, W / stride), channel order as
:mod:`pose_ros.core.decode` expects (heatmaps K [+1 background], PAFs (2l, 2l + 1) = (x, y)).
No weights ship; sizes are small by default so the nets train on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from ..skeletons import Layout


def _conv(cin: int, cout: int, k: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class Backbone(nn.Module):
    """Image features: conv blocks with max-pooling, 3 -> ``features`` channels at 1 / stride.

    stride: 2 ** n_pools (4 or 8 typical); width: channels of the first block (doubling per
    pool, capped at ``features``)."""

    def __init__(self, features: int = 32, stride: int = 8, width: int = 16):
        super().__init__()
        n_pool = stride.bit_length() - 1
        if stride < 1 or 2**n_pool != stride:
            raise ValueError(f"stride must be a power of two (1, 2, 4, 8, 16), got {stride}")
        layers: list[nn.Module] = []
        c = 3
        for i in range(n_pool):
            w = min(width * 2**i, features)
            layers += _conv(c, w, 3) + _conv(w, w, 3) + [nn.MaxPool2d(2)]
            c = w
        layers += _conv(c, features, 3)
        self.net = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _stage(cin: int, cout: int, width: int, kernel: int, depth: int) -> nn.Sequential:
    """depth conv layers of kernel x kernel, then a 1x1 conv (ReLU) and a linear 1x1 output."""
    layers: list[nn.Module] = []
    c = cin
    for _ in range(depth):
        layers += _conv(c, width, kernel)
        c = width
    layers += _conv(c, width, 1) + _conv(width, cout, 1, relu=False)
    return nn.Sequential(*layers)


def _check_input(x: torch.Tensor, stride: int) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[2] % stride or x.shape[3] % stride:
        raise ValueError(f"H and W must be multiples of the stride {stride}, got {tuple(x.shape[2:])}; "
                         "pad or resize the input")


class CPM(nn.Module):
    """Convolutional Pose Machine with ``stages`` stages.

    layout / n_maps: number of belief maps (K = len(layout)), +1 if ``background``.
    Returns a list of ``stages`` tensors (B, n_maps, H / stride, W / stride)."""

    def __init__(self, layout: Layout | None = None, n_maps: int | None = None, stages: int = 3,
                 features: int = 32, stride: int = 8, width: int = 32, kernel: int = 7,
                 depth: int = 3, background: bool = False):
        super().__init__()
        if (layout is None) == (n_maps is None):
            raise ValueError("give exactly one of layout= or n_maps=")
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        k = (len(layout) if layout is not None else int(n_maps)) + int(background)
        self.n_maps, self.stride = k, stride
        self.backbone = Backbone(features, stride)
        self.stages = nn.ModuleList(
            [_stage(features, k, width, 3, depth)]
            + [_stage(features + k, k, width, kernel, depth) for _ in range(stages - 1)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_input(x, self.stride)
        f = self.backbone(x)
        outs = [self.stages[0](f)]
        for stage in self.stages[1:]:
            outs.append(stage(torch.cat([f, outs[-1]], 1)))
        return outs


class OpenPoseNet(nn.Module):
    """OpenPose two-branch multi-stage net.

    layout: K = len(layout) confidence maps (+1 if ``background``), 2 L PAF channels for its
    L limbs. Returns a list of ``stages`` pairs (heatmaps (B, K, h, w), pafs (B, 2L, h, w))."""

    def __init__(self, layout: Layout, stages: int = 3, features: int = 32, stride: int = 8,
                 width: int = 32, kernel: int = 7, depth: int = 3, background: bool = False):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        k = len(layout) + int(background)
        p = 2 * len(layout.limbs)
        if p == 0:
            raise ValueError(f"layout {layout.name} has no limbs: PAFs need limbs")
        self.n_maps, self.n_pafs, self.stride = k, p, stride
        self.backbone = Backbone(features, stride)
        cin = [features] + [features + k + p] * (stages - 1)
        ks = [3] + [kernel] * (stages - 1)
        self.heat = nn.ModuleList([_stage(c, k, width, kk, depth) for c, kk in zip(cin, ks, strict=True)])
        self.paf = nn.ModuleList([_stage(c, p, width, kk, depth) for c, kk in zip(cin, ks, strict=True)])

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        _check_input(x, self.stride)
        f = self.backbone(x)
        outs = [(self.heat[0](f), self.paf[0](f))]
        for heat, paf in zip(self.heat[1:], self.paf[1:], strict=True):
            inp = torch.cat([f, *outs[-1]], 1)
            outs.append((heat(inp), paf(inp)))
        return outs


def stagewise_loss(outputs, targets, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Intermediate supervision: sum over stages of the (masked) mean squared error.

    outputs: list over stages of a tensor (B, C, h, w) or a tuple of tensors (OpenPose: heatmaps,
    PAFs); targets: the matching tensor or tuple (same for every stage); mask: optional
    (B, 1, h, w) weights (OpenPose's W(p): 0 where people are unlabelled), broadcast over
    channels. Per stage and per output: sum(mask * (out - target)^2) / numel."""
    if not outputs:
        raise ValueError("outputs is empty: pass the list of stage outputs the net returned")
    tgt = targets if isinstance(targets, (tuple, list)) else (targets,)
    total = outputs[0][0].new_zeros(()) if isinstance(outputs[0], (tuple, list)) else outputs[0].new_zeros(())
    for out in outputs:
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(tgt):
            raise ValueError(f"stage output has {len(outs)} tensors but targets {len(tgt)}")
        for o, t in zip(outs, tgt, strict=True):
            if o.shape != t.shape:
                raise ValueError(f"output {tuple(o.shape)} and target {tuple(t.shape)} differ; "
                                 "encode targets at the net's output size (input / stride)")
            sq = (o - t) ** 2
            if mask is not None:
                sq = sq * mask
            total = total + sq.sum() / sq.numel()
    return total
