"""core/models/heatmap_nets.py: CPM and OpenPose two-branch nets return every stage's output at
1 / stride, stage t >= 2 sees exactly [features, previous stage's maps] (checked with forward
hooks), outputs fit the decoders' channel layouts, and the stage-wise loss equals the sum of
per-stage MSEs computed here with torch.nn.functional (masked where asked) and sends gradient
into every stage (intermediate supervision). No training runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pose_ros.core import decode
from pose_ros.core.models.heatmap_nets import CPM, OpenPoseNet, stagewise_loss
from pose_ros.core.skeletons import COCO_17, OPENPOSE_18

SMALL = {"features": 8, "width": 8, "depth": 1, "kernel": 5}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _inputs_of(module):
    seen = []
    module.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    return seen


def test_cpm_stages_shapes_and_inputs():
    net = CPM(COCO_17, stages=3, stride=8, **SMALL).eval()
    x = torch.randn(2, 3, 64, 48)
    feats = _inputs_of(net.stages[0])
    ins = [_inputs_of(s) for s in net.stages[1:]]
    with torch.no_grad():
        outs = net(x)
    assert len(outs) == 3
    for o in outs:
        assert o.shape == (2, 17, 8, 6)
    f = feats[0]
    assert f.shape == (2, 8, 8, 6)
    for t, seen in enumerate(ins, start=1):  # stage t+1 input = [features, stage t belief maps]
        torch.testing.assert_close(seen[0], torch.cat([f, outs[t - 1]], 1))
    # the belief maps of stage 1 change stage 2: zeroing them changes its output
    with torch.no_grad():
        alt = net.stages[1](torch.cat([f, torch.zeros_like(outs[0])], 1))
    assert not torch.allclose(alt, outs[1])


def test_openpose_two_branch_shapes_and_inputs():
    net = OpenPoseNet(OPENPOSE_18, stages=2, stride=4, background=True, **SMALL).eval()
    x = torch.randn(1, 3, 32, 40)
    seen_h, seen_p = _inputs_of(net.heat[1]), _inputs_of(net.paf[1])
    feats = _inputs_of(net.heat[0])
    with torch.no_grad():
        outs = net(x)
    assert len(outs) == 2
    for hm, paf in outs:
        assert hm.shape == (1, 19, 8, 10)  # 18 parts + background
        assert paf.shape == (1, 38, 8, 10)  # 19 limbs x (x, y)
    expected = torch.cat([feats[0], outs[0][0], outs[0][1]], 1)
    torch.testing.assert_close(seen_h[0], expected)
    torch.testing.assert_close(seen_p[0], expected)
    # the last stage plugs into the bottom-up decoder (extra background channel ignored)
    hm, paf = (t[0].numpy() for t in outs[-1])
    people = decode.PafDecoder(OPENPOSE_18, paf_channels=[(2 * i, 2 * i + 1) for i in range(19)],
                               peak_threshold=10.0)(hm, paf)
    assert people == []


def test_bad_inputs_are_explained():
    net = CPM(n_maps=5, stages=1, stride=4, **SMALL)
    with pytest.raises(ValueError, match="multiples of the stride 4"):
        net(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="exactly one of"):
        CPM(COCO_17, n_maps=3)
    with pytest.raises(ValueError, match="power of two"):
        CPM(n_maps=3, stride=6)


def test_stagewise_loss_is_the_sum_of_stage_mses():
    net = CPM(n_maps=4, stages=3, stride=4, **SMALL)
    x = torch.randn(2, 3, 16, 16)
    target = torch.rand(2, 4, 4, 4)
    outs = net(x)
    loss = stagewise_loss(outs, target)
    expected = sum(F.mse_loss(o, target, reduction="mean") for o in outs)
    torch.testing.assert_close(loss, expected)
    # masked: pixels with mask 0 do not count (OpenPose's unlabelled-person mask)
    mask = torch.ones(2, 1, 4, 4)
    mask[:, :, :2] = 0
    masked = stagewise_loss(outs, target, mask)
    exp_m = sum(((o - target) ** 2 * mask).sum() / o.numel() for o in outs)
    torch.testing.assert_close(masked, exp_m)
    # intermediate supervision: every stage's parameters get gradient from the loss, and the
    # first stage gets more than from the final-stage loss alone
    loss.backward()
    for s in net.stages:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters())
    g_all = net.stages[0][0].weight.grad.clone()
    net.zero_grad()
    stagewise_loss(net(x)[-1:], target).backward()
    assert not torch.allclose(g_all, net.stages[0][0].weight.grad)


def test_stagewise_loss_two_branch_targets():
    net = OpenPoseNet(OPENPOSE_18, stages=2, stride=8, **SMALL)
    outs = net(torch.randn(1, 3, 32, 32))
    th, tp = torch.rand(1, 18, 4, 4), torch.rand(1, 38, 4, 4)
    loss = stagewise_loss(outs, (th, tp))
    expected = sum(F.mse_loss(h, th) + F.mse_loss(p, tp) for h, p in outs)
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="input / stride"):
        stagewise_loss(outs, (th[..., :3], tp))
    assert np.isfinite(loss.item())
