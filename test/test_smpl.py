"""SMPL core (issue 9): lbs, model loading (restricted unpickler), built-in body, smplx parity.

Oracles: scipy Rotation (Rodrigues, rigid kinematics), smplx's SMPL layer (parity), analytic
capsule volumes and hand-computed shape effects (built-in body).
"""
from __future__ import annotations

import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation

torch = pytest.importorskip("torch")
smpl = pytest.importorskip("pose_ros.core.smpl")

V_SMPL, F_SMPL = 6890, 13776


def random_official_dict(rng, V=V_SMPL, F=F_SMPL) -> dict:
    """A random model with the official SMPL array names, shapes and dtypes (plain numpy)."""
    w = rng.random((V, 24)) ** 4
    w /= w.sum(1, keepdims=True)
    jr = rng.random((24, V))
    jr /= jr.sum(1, keepdims=True)
    kt = np.stack([np.r_[2 ** 32 - 1, smpl.SMPL_PARENTS[1:]], np.arange(24)]).astype(np.uint32)
    return dict(v_template=rng.normal(0, 0.3, (V, 3)), shapedirs=rng.normal(0, 0.01, (V, 3, 10)),
                posedirs=rng.normal(0, 0.01, (V, 3, 207)), J_regressor=jr, weights=w,
                kintree_table=kt, f=rng.integers(0, V, (F, 3)).astype(np.uint32))


# ------------------------------------------------------------------------------------ 1. lbs

def test_rodrigues_matches_scipy():
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.r_[rng.uniform(0, np.pi, 190), 0.0, 1e-9, 1e-6, 1e-4, 1e-2, np.pi - 1e-6,
                   np.pi, 2.5, 3.0, 0.3]
    rv = axes * angles[:, None]
    got = smpl.batch_rodrigues(torch.tensor(rv)).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)
    got32 = smpl.batch_rodrigues(torch.tensor(rv, dtype=torch.float32))
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), Rotation.from_rotvec(rv).as_matrix(), atol=2e-6)


def test_rodrigues_gradient_finite_at_zero_pose():
    r = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    R = smpl.batch_rodrigues(r)
    R[:, 0, 1].sum().backward()  # d R01 / d rz = -1 at zero
    assert torch.isfinite(r.grad).all()
    np.testing.assert_allclose(r.grad.numpy(), [[0, 0, -1]] * 3, atol=1e-12)


@pytest.fixture(scope="module")
def body():
    return smpl.SmplModel.builtin(dtype=torch.float64)


def test_rest_pose_joints_and_vertices(body):
    out = body()
    assert out.vertices.shape == (1, body.v_template.shape[0], 3) and out.joints.shape == (1, 24, 3)
    np.testing.assert_allclose(out.joints[0].numpy(), smpl.BUILTIN_JOINTS, atol=1e-12)
    np.testing.assert_allclose(out.vertices[0].numpy(), body.v_template.numpy(), atol=1e-12)


def test_elbow_rotation_moves_forearm_rigidly(body):
    """Rotating one joint moves its descendants by that rotation about the joint (scipy oracle)."""
    names = smpl.SMPL_JOINT_NAMES
    e, w, h = names.index("left_elbow"), names.index("left_wrist"), names.index("left_hand")
    rv = np.array([0.3, -1.1, 0.4])
    pose = torch.zeros(2, 72, dtype=torch.float64)
    pose[0, 3 * e:3 * e + 3] = torch.tensor(rv)
    out = body(pose=pose)
    R = Rotation.from_rotvec(rv).as_matrix()
    J = smpl.BUILTIN_JOINTS
    for k in (w, h):
        np.testing.assert_allclose(out.joints[0, k].numpy(), J[e] + R @ (J[k] - J[e]), atol=1e-12)
    unaffected = [i for i in range(24) if i not in (w, h)]
    np.testing.assert_allclose(out.joints[0, unaffected].numpy(), J[unaffected], atol=1e-12)
    np.testing.assert_allclose(out.joints[1].numpy(), J, atol=1e-12)  # batch item 2: rest
    # vertices skinned only to the wrist / hand move rigidly with them
    wts = body.lbs_weights.numpy()
    rigid = (wts[:, w] + wts[:, h]) > 1 - 1e-12
    assert rigid.sum() > 50
    v0 = body.v_template.numpy()[rigid]
    np.testing.assert_allclose(out.vertices[0].numpy()[rigid], J[e] + (v0 - J[e]) @ R.T, atol=1e-12)
    # the joint frame's rotation is the accumulated rotation (TF input)
    np.testing.assert_allclose(out.joint_transforms[0, w, :3, :3].numpy(), R, atol=1e-12)


def test_global_orient_and_translation(body):
    rv, t = np.array([0.2, 2.0, -0.5]), np.array([0.5, -0.1, 3.0])
    pose = torch.zeros(1, 72, dtype=torch.float64)
    pose[0, :3] = torch.tensor(rv)
    out = body(pose=pose, transl=torch.tensor(t)[None])
    R = Rotation.from_rotvec(rv).as_matrix()
    J, p = smpl.BUILTIN_JOINTS, smpl.BUILTIN_JOINTS[0]
    np.testing.assert_allclose(out.joints[0].numpy(), p + (J - p) @ R.T + t, atol=1e-12)
    v = body.v_template.numpy()
    np.testing.assert_allclose(out.vertices[0].numpy(), p + (v - p) @ R.T + t, atol=1e-12)
    np.testing.assert_allclose(out.joint_transforms[0, :, :3, 3].numpy(), out.joints[0].numpy(),
                               atol=1e-12)


def test_model_checks_inputs_and_follows_dtype():
    m = smpl.SmplModel.builtin()  # float32
    out = m(betas=torch.zeros(3, 2, dtype=torch.float64))  # short betas are zero-padded
    assert out.vertices.dtype == torch.float32 and out.vertices.shape[0] == 3
    with pytest.raises(ValueError, match="pose must be"):
        m(pose=torch.zeros(2, 69))
    with pytest.raises(ValueError, match="betas must be"):
        m(betas=torch.zeros(1, 11))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    m = smpl.SmplModel.builtin()
    pose = torch.randn(4, 72) * 0.3
    cpu = m(pose=pose).vertices
    gpu = m.to("cuda")(pose=pose.cuda()).vertices
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ 4. parity

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_parity_with_smplx(tmp_path, dtype):
    smplx = pytest.importorskip("smplx")
    rng = np.random.default_rng(4)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with path.open("wb") as f:
        pickle.dump(random_official_dict(rng), f)
    B = 4
    ref = smplx.SMPL(model_path=str(path), batch_size=B, dtype=dtype)
    ours = smpl.SmplModel.from_file(tmp_path, gender="neutral", dtype=dtype)  # folder lookup
    betas = torch.tensor(rng.normal(0, 1, (B, 10)), dtype=dtype)
    theta = torch.tensor(rng.normal(0, 0.6, (B, 72)), dtype=dtype)
    transl = torch.tensor(rng.normal(0, 1, (B, 3)), dtype=dtype)
    r = ref(betas=betas, global_orient=theta[:, :3], body_pose=theta[:, 3:], transl=transl)
    o = ours(betas, theta, transl)
    assert o.vertices.shape == (B, V_SMPL, 3) and ours.faces.shape == (F_SMPL, 3)
    assert (o.vertices - r.vertices).abs().max().item() < 1e-5
    assert (o.joints - r.joints[:, :24]).abs().max().item() < 1e-5
    assert (o.vertices[0] - o.vertices[1]).abs().max().item() > 0.1  # batch items differ
    assert torch.equal(ours.faces, ref.faces_tensor.long())


# ------------------------------------------------------------------------------ 2. loading

class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    d = random_official_dict(np.random.default_rng(0), V=10, F=4)
    d["weights"] = _RunsCode(marker)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(smpl.UnsafePickleError, match=r"refusing to load global (posix|os|nt)\.system"):
        smpl.load_smpl_arrays(path)
    assert not marker.exists()
    # also through an allowed-looking module path and a plain builtin
    for payload in (b"cbuiltins\neval\n(S'1+1'\ntR.", b"cnumpy\nload\n(S'x'\ntR."):
        path.write_bytes(payload)
        with pytest.raises(smpl.UnsafePickleError):
            smpl.load_smpl_arrays(path)


@pytest.fixture
def chumpy_module(monkeypatch):
    """A stand-in `chumpy.ch.Ch` defined here (chumpy is not installed): only its pickle matters."""
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:  # the state layout of chumpy's Ch.__getstate__: a dict with the value in 'x'
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()
            self._depends_on_deps = {}

        def __getstate__(self):
            return dict(self.__dict__)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch, pkg.ch = Ch, mod
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    return Ch


def official_like_pickle(tmp_path, Ch, protocol=2):
    """Arrays as chumpy objects, J_regressor as scipy csc_matrix, extra official keys."""
    rng = np.random.default_rng(2)
    d = random_official_dict(rng, V=40, F=30)
    d["J_regressor"][d["J_regressor"] < 0.02] = 0
    dense = dict(d)
    d.update(v_template=Ch(d["v_template"]), shapedirs=Ch(d["shapedirs"]),
             posedirs=Ch(d["posedirs"]), weights=Ch(d["weights"]),
             J_regressor=sp.csc_matrix(d["J_regressor"]), J=Ch(rng.normal(size=(24, 3))),
             bs_style="lbs", bs_type="lrotmin", J_regressor_prior=sp.csr_matrix(np.eye(24, 40)))
    path = tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"
    path.write_bytes(pickle.dumps(d, protocol=protocol))
    return path, dense


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_and_sparse_pickle_loads_as_numpy(tmp_path, chumpy_module, monkeypatch, protocol):
    path, dense = official_like_pickle(tmp_path, chumpy_module, protocol)
    # chumpy is not importable while loading: the unpickler must not need it
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    arr = smpl.load_smpl_arrays(tmp_path, gender="male")  # official file name in a folder
    assert arr.source == str(path) and arr.gender == "male"
    for key in ("v_template", "shapedirs", "weights", "J_regressor"):
        got = getattr(arr, key)
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got, dense[key])
    np.testing.assert_array_equal(arr.posedirs, dense["posedirs"].reshape(120, 207))
    assert arr.parents.tolist() == list(smpl.SMPL_PARENTS)
    assert smpl.SmplModel(arr)().vertices.shape == (1, 40, 3)


def test_scipy_csc_regressor_loads(tmp_path):
    d = random_official_dict(np.random.default_rng(3), V=50, F=10)
    jr = d["J_regressor"] * (d["J_regressor"] > 0.025)
    d["J_regressor"] = sp.csc_matrix(jr)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(d))
    np.testing.assert_array_equal(smpl.load_smpl_arrays(tmp_path / "m.pkl").J_regressor, jr)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="smpl.is.tue.mpg.de"):
        smpl.load_smpl_arrays(tmp_path / "nope.pkl")
    with pytest.raises(smpl.SmplModelError, match="SMPL_FEMALE.pkl"):
        smpl.load_smpl_arrays(tmp_path, gender="female")
    with pytest.raises(smpl.SmplModelError, match="gender"):
        smpl.load_smpl_arrays(tmp_path, gender="other")


@pytest.mark.parametrize("ext", [".pkl", ".npz"])
def test_truncated_file(tmp_path, ext):
    d = random_official_dict(np.random.default_rng(5), V=30, F=10)
    path = tmp_path / f"SMPL_NEUTRAL{ext}"
    if ext == ".npz":
        np.savez(path, **d)
    else:
        path.write_bytes(pickle.dumps(d))
    assert smpl.load_smpl_arrays(path).num_vertices == 30
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(smpl.SmplModelError, match=r"truncated.*v_template \(V, 3\)"):
        smpl.load_smpl_arrays(path)


@pytest.mark.parametrize("key,shape,expect", [
    ("weights", (30, 23), r"'weights' has shape \(30, 23\), expected \(30, 24\)"),
    ("shapedirs", (30, 10), r"'shapedirs' has shape \(30, 10\), expected \(30, 3, NB\)"),
    ("posedirs", (30, 3, 200), r"'posedirs'.*expected \(30, 3, 207\) or \(90, 207\)"),
    ("J_regressor", (23, 30), r"'J_regressor'.*expected \(24, 30\)"),
    ("kintree_table", (2, 23), r"'kintree_table'.*expected \(2, 24\)"),
])
def test_wrong_shapes_name_the_array(tmp_path, key, shape, expect):
    d = random_official_dict(np.random.default_rng(6), V=30, F=10)
    d[key] = np.zeros(shape)
    np.savez(tmp_path / "m.npz", **d)
    with pytest.raises(smpl.SmplModelError, match=expect):
        smpl.load_smpl_arrays(tmp_path / "m.npz")
    del d[key]
    np.savez(tmp_path / "m.npz", **d)
    with pytest.raises(smpl.SmplModelError, match=f"missing arrays \\['{key}'\\]"):
        smpl.load_smpl_arrays(tmp_path / "m.npz")


def test_npz_of_builtin_body_loads_like_builtin(tmp_path):
    b = smpl.builtin_body()
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **b.to_dict())
    with zipfile.ZipFile(tmp_path / "SMPL_NEUTRAL.npz") as z:
        assert {n[:-4] for n in z.namelist()} == {
            "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"}
    got = smpl.load_smpl_arrays(tmp_path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "parents", "faces"):
        np.testing.assert_array_equal(getattr(got, key), getattr(b, key))
    assert smpl.load_smpl_arrays("builtin").source == "builtin"


# --------------------------------------------------------------------------- 3. built-in body

def _parts(arr):
    n, labels = connected_components(sp.coo_matrix(
        (np.ones(arr.faces.size), (arr.faces.ravel(), np.roll(arr.faces, 1, axis=1).ravel())),
        shape=(arr.num_vertices,) * 2), directed=False)
    return n, labels


def _areas(v, f):
    return 0.5 * np.linalg.norm(np.cross(v[..., f[:, 1], :] - v[..., f[:, 0], :],
                                         v[..., f[:, 2], :] - v[..., f[:, 0], :]), axis=-1)


def test_builtin_body_parts_are_closed_capsules():
    arr = smpl.builtin_body()
    n, labels = _parts(arr)
    assert n == 24
    v, f = arr.v_template, arr.faces
    for part in range(n):
        pf = f[labels[f[:, 0]] == part]
        # closed and consistently oriented: each directed edge once, its reverse once
        directed = {(a, b) for t in pf for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
        assert len(directed) == 3 * len(pf)
        assert all((b, a) in directed for a, b in directed)
        # outward orientation and plausible size: signed volume vs the analytic capsule
        vol = np.einsum("ij,ij->i", v[pf[:, 0]], np.cross(v[pf[:, 1]], v[pf[:, 2]])).sum() / 6
        joint = int(np.argmax(arr.weights[labels == part].sum(0)))
        end, rf, rs = smpl._BUILTIN_PARTS[smpl.SMPL_JOINT_NAMES[joint]]
        a = smpl.BUILTIN_JOINTS[joint]
        b = (smpl.BUILTIN_JOINTS[smpl.SMPL_JOINT_NAMES.index(end)] if isinstance(end, str)
             else a + np.asarray(end))
        analytic = np.pi * rf * rs * (np.linalg.norm(b - a) + 4 / 3 * min(rf, rs))
        assert 0.85 * analytic < vol < analytic


def test_builtin_body_posed_without_degenerate_triangles(body):
    arr = smpl.builtin_body()
    rng = np.random.default_rng(7)
    pose = torch.tensor(rng.uniform(-0.7, 0.7, (8, 72)))
    betas = torch.tensor(rng.normal(0, 1.5, (8, 10)))
    out = body(betas, pose)
    areas = _areas(out.vertices.numpy(), arr.faces)
    assert areas.min() > 1e-6, areas.min()  # m^2; the rest pose's smallest is ~2e-5
    assert np.isfinite(out.vertices.numpy()).all()


def test_builtin_body_weights_and_layout():
    arr = smpl.builtin_body()
    assert arr.shapedirs.shape == (arr.num_vertices, 3, 10)
    assert arr.posedirs.shape == (arr.num_vertices * 3, 207)
    assert arr.J_regressor.shape == (24, arr.num_vertices) and arr.weights.shape == (arr.num_vertices, 24)
    assert arr.kintree_table.shape == (2, 24) and arr.faces.shape[1] == 3
    assert (arr.weights >= 0).all()
    np.testing.assert_allclose(arr.weights.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(arr.J_regressor.sum(1), 1.0, atol=1e-12)
    # anatomy of the rest pose: mirror-symmetric, feet lowest, head highest, hands outermost
    J = smpl.BUILTIN_JOINTS
    names = smpl.SMPL_JOINT_NAMES
    for i, n in enumerate(names):
        if n.startswith("left_"):
            j = names.index("right_" + n[5:])
            np.testing.assert_allclose(J[j], J[i] * [-1, 1, 1], atol=1e-12)
            assert J[i, 0] > 0
    assert J[:, 1].argmin() in (names.index("left_foot"), names.index("right_foot"))
    assert J[:, 1].argmax() == names.index("head")
    assert J[:, 0].argmax() == names.index("left_hand")
    v = arr.v_template
    assert 1.65 < v[:, 1].max() - v[:, 1].min() < 1.9  # standing height, metres
    assert 1.6 < v[:, 0].max() - v[:, 0].min() < 1.8  # arm span in the T-pose


def test_builtin_shape_directions(body):
    def run(b0, b1):
        betas = torch.zeros(1, 10, dtype=torch.float64)
        betas[0, :2] = torch.tensor([b0, b1], dtype=torch.float64)
        return body(betas)

    def height(out):
        y = out.vertices[0, :, 1].numpy()
        return y.max() - y.min()

    h0 = height(run(0, 0))
    for b0 in (-2.0, 1.0, 2.0):
        assert height(run(b0, 0)) == pytest.approx(h0 * (1 + smpl.BUILTIN_HEIGHT_PER_BETA * b0), rel=1e-9)
    taller = run(2.0, 0)
    assert taller.joints[0, 15, 1] > run(0, 0).joints[0, 15, 1] + 0.05  # the head joint rises
    # girth: joints stay, the thigh's cross-section grows by 10 % per unit
    fat, rest = run(0, 1.5), run(0, 0)
    np.testing.assert_allclose(fat.joints.numpy(), rest.joints.numpy(), atol=1e-12)
    arr = smpl.builtin_body()
    thigh = (arr.weights[:, 1] > 0.99)
    J = smpl.BUILTIN_JOINTS

    def radius(out):  # distance of thigh vertices from the hip -> knee axis, max
        p = out.vertices[0].numpy()[thigh] - J[1]
        u = (J[4] - J[1]) / np.linalg.norm(J[4] - J[1])
        return np.linalg.norm(p - np.outer(p @ u, u), axis=1).max()

    assert radius(fat) == pytest.approx(radius(rest) * 1.15, rel=1e-9)
    assert radius(rest) == pytest.approx(0.075, rel=1e-9)


# ------------------------------------------------------------------------------- 5. fitting

def keypoints_from_joints(fitter, joints, n_kp, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = torch.full((joints.shape[0], n_kp, 3), float("nan"), dtype=joints.dtype)
    X[:, fitter.kp_idx] = joints[:, fitter.smpl_idx] + torch.tensor(
        rng.normal(0, noise, (joints.shape[0], len(fitter.kp_idx), 3)), dtype=joints.dtype)
    return X, torch.isfinite(X).all(-1).to(joints.dtype)


def test_joint_jacobian_matches_autograd(body):
    from torch.autograd.functional import jacobian

    from pose_ros.core.skeletons import COCO_17

    fitter = smpl.SmplFitter(body, COCO_17.names)
    torch.manual_seed(0)
    pose, betas = torch.randn(2, 72, dtype=torch.float64) * 0.7, torch.randn(2, 10, dtype=torch.float64)
    posed, dJ = fitter.joint_jacobian(betas, pose)
    np.testing.assert_allclose(posed.numpy(), body(betas, pose).joints.numpy(), atol=1e-12)
    ref = jacobian(lambda p, b, t: (fitter.joints(b, p) + t[:, None])[:, fitter.smpl_idx],
                   (pose, betas, torch.zeros(2, 3, dtype=torch.float64)))
    for b in range(2):
        want = torch.cat([ref[0][b, :, :, b], ref[1][b, :, :, b], ref[2][b, :, :, b]], -1)
        np.testing.assert_allclose(dJ[b].numpy(), want.numpy(), atol=1e-10)


def test_correspondences_by_name():
    from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17

    kp, sj, w = smpl.correspondences(COCO_17.names)
    assert [COCO_17.names[k] for k in kp] == [smpl.SMPL_JOINT_NAMES[j] for j in sj]
    assert len(kp) == 12 and (w == 1).all()
    kp, sj, w = smpl.correspondences(BLAZEPOSE_33.names)
    assert len(kp) == 14
    i = list(kp).index(BLAZEPOSE_33.index("left_foot_index"))
    assert smpl.SMPL_JOINT_NAMES[sj[i]] == "left_foot" and w[i] == 0.5
    with pytest.raises(ValueError, match="fewer than 4"):
        smpl.correspondences(("nose", "left_eye"))


@pytest.mark.parametrize("layout_name", ["coco_17", "blazepose_33"])
def test_fit_recovers_synthetic_poses(layout_name):
    from pose_ros.core import skeletons

    layout = {"coco_17": skeletons.COCO_17, "blazepose_33": skeletons.BLAZEPOSE_33}[layout_name]
    model = smpl.SmplModel.builtin(dtype=torch.float32)
    fitter = smpl.SmplFitter(model, layout.names)
    _, _, _, J = smpl.synthetic_people(model, 8, seed=11)
    X, conf = keypoints_from_joints(fitter, J, len(layout))
    fit = fitter.fit(X, conf)  # cold start, random global orientations
    observed = (fit.joints[:, fitter.smpl_idx] - J[:, fitter.smpl_idx]).norm(dim=-1)
    assert observed.mean(1).max() < 0.030 and fit.fit_error.max() < 0.030
    w = torch.as_tensor(fitter.kp_weight, dtype=observed.dtype)  # foot_index counts half
    np.testing.assert_allclose(fit.fit_error.numpy(), ((observed * w).sum(1) / w.sum()).numpy(),
                               atol=1e-6)
    # the whole body, unobserved spine / head / hands included, follows
    assert (fit.joints - J).norm(dim=-1).mean() < 0.040
    # the fitted parameters reproduce the fitted joints through the full model
    again = model(fit.betas, fit.pose, fit.transl).joints
    np.testing.assert_allclose(again.numpy(), fit.joints.numpy(), atol=1e-4)
    # noisy keypoints (1 cm per axis): the fit is still within 30 mm of the truth
    Xn, _ = keypoints_from_joints(fitter, J, len(layout), noise=0.01, seed=3)
    noisy = fitter.fit(Xn, conf)
    assert (noisy.joints[:, fitter.smpl_idx] - J[:, fitter.smpl_idx]).norm(dim=-1).mean(1).max() < 0.030


def test_fit_warm_start_tracks_motion():
    from pose_ros.core.skeletons import COCO_17

    model = smpl.SmplModel.builtin(dtype=torch.float64)
    fitter = smpl.SmplFitter(model, COCO_17.names)
    pose, betas, transl, J = smpl.synthetic_people(model, 4, seed=5)
    X, conf = keypoints_from_joints(fitter, J, 17)
    prev = fitter.fit(X, conf)
    rng = np.random.default_rng(6)
    for _ in range(3):  # a few frames of motion: ~3 degrees per joint, 2 cm
        pose = pose + torch.tensor(rng.normal(0, 0.05, pose.shape))
        transl = transl + 0.02
        J = model(betas, pose, transl).joints
        X, conf = keypoints_from_joints(fitter, J, 17)
        warm = fitter.fit(X, conf, init=prev, iters=3)
        cold = fitter.fit(X, conf, iters=3)
        assert warm.fit_error.max() < 0.010
        assert cold.fit_error.max() > 3 * warm.fit_error.max()  # the warm start is what helps
        prev = warm


def test_fit_confidence_weighting():
    from pose_ros.core.skeletons import COCO_17

    model = smpl.SmplModel.builtin(dtype=torch.float64)
    fitter = smpl.SmplFitter(model, COCO_17.names)
    _, _, _, J = smpl.synthetic_people(model, 2, seed=8)
    X, conf = keypoints_from_joints(fitter, J, 17)
    wrist = COCO_17.index("left_wrist")
    X[:, wrist] += torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64)  # a wrong detection
    X[0, COCO_17.index("right_ankle")] = float("nan")  # a missing one
    conf[0, COCO_17.index("right_ankle")] = 0
    conf[:, wrist] = 0.0
    ignored = fitter.fit(X, conf)
    assert torch.isfinite(ignored.joints).all()
    sj = smpl.SMPL_JOINT_NAMES.index("left_wrist")
    seen = conf[:, fitter.kp_idx] > 0  # all but the wrist (and person 0's right ankle)
    err = (ignored.joints[:, fitter.smpl_idx] - J[:, fitter.smpl_idx]).norm(dim=-1)
    assert err[seen].max() < 0.005
    assert ignored.fit_error.max() < 0.005  # the ignored wrist is not part of the residual
    conf[:, wrist] = 1.0
    trusted = fitter.fit(X, conf)
    assert trusted.fit_error.min() > 0.01
    to_bad = (trusted.joints[:, sj] - X[:, wrist]).norm(dim=-1)
    assert (to_bad < (ignored.joints[:, sj] - X[:, wrist]).norm(dim=-1) - 0.1).all()


def test_fit_2d_reprojection_term_fixes_depth_noise():
    """Depth-noisy 3D keypoints + exact 2D detections: the 2D term pulls the fitted joints onto
    the image rays (OpenCV projectPoints as the oracle)."""
    import cv2

    from pose_ros.core.skeletons import COCO_17

    model = smpl.SmplModel.builtin(dtype=torch.float64)
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    _, _, _, J = smpl.synthetic_people(model, 4, seed=9)
    fitter = smpl.SmplFitter(model, COCO_17.names)
    X, conf = keypoints_from_joints(fitter, J, 17)
    rng = np.random.default_rng(10)
    X = X * torch.tensor(1 + rng.normal(0, 0.03, X.shape[:2] + (1,)))  # scale along the ray
    uv = np.full(X.shape[:2] + (2,), np.nan)
    for b in range(4):
        uv[b, fitter.kp_idx] = cv2.projectPoints(J[b, fitter.smpl_idx].numpy(), np.zeros(3),
                                                 np.zeros(3), K, None)[0][:, 0]

    def px_error(fit):
        return np.mean([np.linalg.norm(cv2.projectPoints(
            fit.joints[b, fitter.smpl_idx].numpy(), np.zeros(3), np.zeros(3), K, None)[0][:, 0]
            - uv[b, fitter.kp_idx], axis=1).mean() for b in range(4)])

    only_3d = fitter.fit(X, conf)
    with_2d = smpl.SmplFitter(model, COCO_17.names, reproj_weight=100.0).fit(
        X, conf, keypoints_2d=torch.tensor(uv), K=torch.tensor(K))
    assert px_error(with_2d) < 0.5 * px_error(only_3d)
    assert px_error(with_2d) < 3.0  # pixels


def test_hinge_limits_penalise_hyperextension_only(body):
    """Knees flex about +x, the left elbow about -y, the right about +y (SMPL rest frame);
    bending the other way costs limit_weight * angle^2 (hand-computed)."""
    from pose_ros.core.skeletons import COCO_17

    fitter = smpl.SmplFitter(body, COCO_17.names, pose_weight=0.0, shape_weight=0.0, limit_weight=0.1)
    data = {"X": torch.zeros(1, 12, 3, dtype=torch.float64), "sw": torch.zeros(1, 12, dtype=torch.float64),
            "x2": None}
    names = smpl.SMPL_JOINT_NAMES
    for joint, comp, natural in (("left_knee", 0, 1), ("right_knee", 0, 1), ("left_elbow", 1, -1),
                                 ("right_elbow", 1, 1)):
        i = 3 * names.index(joint) + comp
        for sign, want in ((natural, 0.0), (-natural, 0.1 * 0.8 ** 2)):
            p = torch.zeros(1, 85, dtype=torch.float64)
            p[0, i] = 0.8 * sign
            r, jac, _ = fitter._residuals(p, data, True)
            assert (r ** 2).sum().item() == pytest.approx(want, abs=1e-12)
    # the natural bend moves the wrist forwards (+z), the knee bend moves the ankle backwards
    pose = torch.zeros(2, 72, dtype=torch.float64)
    pose[0, 3 * names.index("left_elbow") + 1] = -1.0
    pose[1, 3 * names.index("left_knee")] = 1.0
    J = body(pose=pose).joints
    assert J[0, names.index("left_wrist"), 2] > smpl.BUILTIN_JOINTS[names.index("left_wrist"), 2] + 0.1
    assert J[1, names.index("left_ankle"), 2] < smpl.BUILTIN_JOINTS[names.index("left_ankle"), 2] - 0.1


def test_residual_jacobian_matches_autograd(body):
    """The whole Levenberg-Marquardt Jacobian (3D, 2D reprojection, priors) vs autograd."""
    from torch.autograd.functional import jacobian

    from pose_ros.core.skeletons import COCO_17

    fitter = smpl.SmplFitter(body, COCO_17.names, pose_weight=1e-3, shape_weight=1e-3)
    rng = np.random.default_rng(12)
    B, M = 2, len(fitter.kp_idx)
    K = torch.tensor([[600.0, 0, 320], [0, 580.0, 240], [0, 0, 1]], dtype=torch.float64)
    data = {"X": torch.tensor(rng.normal(0, 1, (B, M, 3))), "sw": torch.tensor(rng.random((B, M))),
            "x2": torch.tensor(rng.normal(300, 50, (B, M, 2))), "K": K,
            "sw2": torch.tensor(rng.random((B, M)))}
    p = torch.tensor(rng.normal(0, 0.5, (B, 85)))
    p[:, 82:] = torch.tensor([[0.1, 0.2, 3.0], [-0.3, 0.1, 4.0]])  # in front of the camera
    p[:, 3 * 4] = -0.4  # an active knee limit
    _, jac, _ = fitter._residuals(p, data, True)
    ref = jacobian(lambda q: fitter._residuals(q, data, False)[0], p)
    for b in range(B):
        np.testing.assert_allclose(jac[b].numpy(), ref[b, :, b].numpy(), atol=1e-9)


def test_fit_edge_cases():
    from pose_ros.core.skeletons import COCO_17

    fitter = smpl.SmplFitter(smpl.SmplModel.builtin(), COCO_17.names)
    empty = fitter.fit(torch.zeros(0, 17, 3), torch.zeros(0, 17))
    assert empty.pose.shape == (0, 72) and empty.joints.shape == (0, 24, 3)
    unseen = fitter.fit(torch.full((2, 17, 3), float("nan")), torch.zeros(2, 17))
    assert torch.isnan(unseen.fit_error).all() and torch.isfinite(unseen.joints).all()
    with pytest.raises(ValueError, match="B x 17 x 3"):
        fitter.fit(torch.zeros(1, 33, 3), torch.ones(1, 33))
