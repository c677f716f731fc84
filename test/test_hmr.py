"""HMR-style regressor head (issue 9 item 6): shapes, iterative feedback, rotation conversions
(oracles: scipy Rotation, transforms3d, numpy QR), weak-perspective projection (hand-computed,
OpenCV), checkpoint loading."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from transforms3d.axangles import mat2axangle

torch = pytest.importorskip("torch")
hmr = pytest.importorskip("pose_ros.core.models.hmr")


def random_rotations(n, seed=0):
    rng = np.random.default_rng(seed)
    R = Rotation.random(n, random_state=seed).as_matrix()
    # edge cases: identity, tiny angles, exactly / nearly 180 degrees about several axes
    axes = rng.normal(size=(6, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    extra = [np.eye(3), Rotation.from_rotvec([1e-7, 0, 0]).as_matrix(),
             Rotation.from_rotvec([0, 1e-4, 2e-4]).as_matrix(), np.diag([1.0, -1, -1]),
             np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])]
    extra += list(Rotation.from_rotvec(axes * np.pi).as_matrix())
    extra += list(Rotation.from_rotvec(axes * (np.pi - 1e-5)).as_matrix())
    return np.concatenate([R, np.asarray(extra)])


def test_matrix_to_axis_angle_matches_scipy_and_transforms3d():
    R = random_rotations(300)
    got = hmr.matrix_to_axis_angle(torch.tensor(R)).numpy()
    ref = Rotation.from_matrix(R).as_rotvec()
    angle = np.linalg.norm(ref, axis=1)
    near_pi = angle > np.pi - 1e-3  # +-axis are the same rotation at 180 degrees
    np.testing.assert_allclose(got[~near_pi], ref[~near_pi], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), R, atol=1e-9)
    for Ri, gi in zip(R[:50], got[:50], strict=True):  # transforms3d: axis and angle
        axis, ang = mat2axangle(Ri)
        np.testing.assert_allclose(gi, axis * ang, atol=1e-8)
    assert (np.linalg.norm(got, axis=1) <= np.pi + 1e-9).all()
    got32 = hmr.matrix_to_axis_angle(torch.tensor(R, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(got32).as_matrix(), R, atol=2e-5)


def test_rot6d_gram_schmidt_matches_qr():
    R = random_rotations(200, seed=1)
    six = hmr.matrix_to_rot6d(torch.tensor(R))
    assert six.shape == (len(R), 6)
    np.testing.assert_allclose(six.numpy(), R[:, :, :2].reshape(-1, 6), atol=0)
    np.testing.assert_allclose(hmr.rot6d_to_matrix(six).numpy(), R, atol=1e-12)
    # non-orthonormal 6D (what a network outputs): Gram-Schmidt == QR with positive diagonal
    rng = np.random.default_rng(2)
    A = rng.normal(size=(100, 3, 2))
    got = hmr.rot6d_to_matrix(torch.tensor(A.reshape(100, 6))).numpy()
    for a, g in zip(A, got, strict=True):
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        np.testing.assert_allclose(g[:, :2], q, atol=1e-12)
        np.testing.assert_allclose(g[:, 2], np.cross(q[:, 0], q[:, 1]), atol=1e-12)
        assert np.linalg.det(g) == pytest.approx(1.0, abs=1e-12)


def test_head_shapes_and_consistency():
    torch.manual_seed(0)
    head = hmr.HmrHead(feat_dim=64, hidden=32).eval()
    out = head(torch.randn(5, 64))
    assert out.pose.shape == (5, 72) and out.rotmats.shape == (5, 24, 3, 3)
    assert out.pose6d.shape == (5, 144) and out.betas.shape == (5, 10) and out.cam.shape == (5, 3)
    R = out.rotmats.detach().numpy().reshape(-1, 3, 3)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    np.testing.assert_allclose(Rotation.from_rotvec(out.pose.detach().numpy().reshape(-1, 3)).as_matrix(),
                               R, atol=1e-5)
    with pytest.raises(ValueError, match="B x 64"):
        head(torch.randn(5, 63))


def test_iterative_error_feedback_adds_deltas_each_iteration():
    """With zero decoder weights the MLP output is the decoder bias: after n iterations the
    parameters are init + n * bias (hand-computed)."""
    for n_iter in (1, 3):
        head = hmr.HmrHead(feat_dim=8, hidden=16, n_iter=n_iter).eval()
        with torch.no_grad():
            for layer, bias in ((head.decpose, 0.01), (head.decshape, 0.2), (head.deccam, -0.05)):
                layer.weight.zero_()
                layer.bias.fill_(bias)
        out = head(torch.randn(2, 8))
        np.testing.assert_allclose(out.betas.detach().numpy(), 0.2 * n_iter, atol=1e-6)
        np.testing.assert_allclose(out.cam.detach().numpy(),
                                   [[0.9 - 0.05 * n_iter, -0.05 * n_iter, -0.05 * n_iter]] * 2, atol=1e-6)
        np.testing.assert_allclose(out.pose6d.detach().numpy(),
                                   head.init_pose.numpy().repeat(2, 0) + 0.01 * n_iter, atol=1e-6)
    # the default initial root: upright body in a y-down camera = 180 degrees about x
    head = hmr.HmrHead(feat_dim=8, hidden=16)
    with torch.no_grad():
        for layer in (head.decpose, head.decshape, head.deccam):
            layer.weight.zero_()
    out = head.eval()(torch.randn(1, 8))
    np.testing.assert_allclose(out.pose[0, :3].abs().detach().numpy(), [np.pi, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out.pose[0, 3:].detach().numpy(), 0, atol=1e-6)


def test_feedback_depends_on_current_estimate():
    """Each iteration sees the current params: a weight on the param inputs changes the result
    versus feeding only the features."""
    torch.manual_seed(1)
    head = hmr.HmrHead(feat_dim=8, hidden=16, n_iter=3).eval()
    x = torch.randn(2, 8)
    a = head(x).betas
    with torch.no_grad():
        head.fc1.weight[:, 8:] = 0  # ignore the current estimate
    b = head(x).betas
    assert (a - b).abs().max() > 1e-6


def test_weak_perspective_projection_hand_computed():
    pts = torch.tensor([[[1.0, 2.0, 3.0], [-0.5, 0.0, 7.0]]])
    cam = torch.tensor([[2.0, 0.5, -1.0]])
    np.testing.assert_allclose(hmr.weak_perspective_project(pts, cam).numpy(),
                               [[[3.0, 2.0], [0.0, -2.0]]])


def test_weak_perspective_equals_pinhole_at_body_depth():
    """Points at depth 0 of the body frame project identically with the equivalent translation
    (OpenCV projectPoints as the pinhole oracle)."""
    f, crop = 5000.0, 224.0
    cam = torch.tensor([[0.8, 0.1, -0.2]], dtype=torch.float64)
    t = hmr.weak_perspective_to_translation(cam, f, crop)[0].numpy()
    assert t[2] == pytest.approx(2 * 5000 / (224 * 0.8))
    pts = np.array([[0.3, -0.4, 0.0], [-0.2, 0.5, 0.0], [0.0, 0.0, 0.0]])
    K = np.array([[f, 0, crop / 2], [0, f, crop / 2], [0, 0, 1]])
    px, _ = cv2.projectPoints(pts, np.zeros(3), t, K, None)
    weak = hmr.weak_perspective_project(torch.tensor(pts)[None], cam)[0].numpy()
    np.testing.assert_allclose(px[:, 0], (weak + 1) * crop / 2, atol=1e-9)


def test_checkpoint_roundtrip_prefixes_and_errors(tmp_path):
    torch.manual_seed(3)
    src = hmr.HmrHead(feat_dim=16, hidden=8).eval()
    x = torch.randn(3, 16)
    want = src(x)
    sd = src.state_dict()
    # plain state_dict; wrapped + DataParallel prefix; inside a full model with an encoder
    torch.save(sd, tmp_path / "a.pt")
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3}, tmp_path / "b.pt")
    torch.save({**{"head." + k: v for k, v in sd.items()}, "encoder.conv.weight": torch.zeros(2)},
               tmp_path / "c.pt")
    for name, kw in (("a.pt", {}), ("b.pt", {}), ("c.pt", {"prefix": "head."})):
        dst = hmr.load_checkpoint(hmr.HmrHead(feat_dim=16, hidden=8).eval(), tmp_path / name, **kw)
        torch.testing.assert_close(dst(x).pose, want.pose)
        torch.testing.assert_close(dst(x).cam, want.cam)
    # an encoder + head model whose encoder lacks the checkpoint's encoder tensor
    enc = torch.nn.Sequential()
    full = hmr.Hmr(enc, hmr.HmrHead(feat_dim=16, hidden=8))
    with pytest.raises(hmr.HmrCheckpointError, match=r"unexpected encoder\.conv\.weight"):
        hmr.load_checkpoint(full, tmp_path / "c.pt")
    with pytest.raises(hmr.HmrCheckpointError, match=r"unexpected encoder\.conv\.weight.*allow_extra"):
        hmr.load_checkpoint(hmr.HmrHead(feat_dim=16, hidden=8), tmp_path / "c.pt")
    # wrong architecture: names the tensor and both shapes
    with pytest.raises(hmr.HmrCheckpointError,
                       match=r"feat_dim=32.*fc1\.weight: checkpoint \(8, 173\) vs head \(8, 189\)"):
        hmr.load_checkpoint(hmr.HmrHead(feat_dim=32, hidden=8), tmp_path / "a.pt")
    torch.save({k: v for k, v in sd.items() if k != "deccam.bias"}, tmp_path / "d.pt")
    with pytest.raises(hmr.HmrCheckpointError, match=r"missing deccam\.bias"):
        hmr.load_checkpoint(hmr.HmrHead(feat_dim=16, hidden=8), tmp_path / "d.pt")
    with pytest.raises(FileNotFoundError, match="no weights ship"):
        hmr.load_checkpoint(src, tmp_path / "none.pt")
    (tmp_path / "e.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(hmr.HmrCheckpointError, match="cannot read"):
        hmr.load_checkpoint(src, tmp_path / "e.pt")
