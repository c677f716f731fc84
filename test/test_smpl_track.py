"""SmplTracker (warm start per track id, vanished tracks, bad fits not kept) and the mesh
decimation smpl_node's markers use (core/smpl_track.py).

Oracles: bodies posed here with known parameters (their joints are the truth), the distances
between two known bodies computed here with numpy, and the original mesh's geometry (scipy
cKDTree) for the decimated one."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

torch = pytest.importorskip("torch")

from pose_ros.core.skeletons import COCO_17  # noqa: E402
from pose_ros.core.smpl import SMPL_JOINT_NAMES, SmplModel, builtin_body  # noqa: E402
from pose_ros.core.smpl_track import SmplTracker, decimate_faces  # noqa: E402

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
#: the COCO-17 keypoints that are SMPL joints (shoulders, elbows, wrists, hips, knees, ankles)
SHARED = [(k, J[n]) for k, n in enumerate(COCO_17.names) if n in J]


def body(model, transl, knee=0.0, elbow=0.0, yaw=0.0):
    """Joints (24, 3) of a built-in body facing the camera (root pi about x, optical frame) with
    a bent right knee / left elbow, turned by ``yaw`` about the vertical, at ``transl``."""
    from scipy.spatial.transform import Rotation

    pose = torch.zeros(1, 72, dtype=torch.float64)
    pose[0, :3] = torch.tensor((Rotation.from_euler("y", yaw) * Rotation.from_euler("x", np.pi)).as_rotvec())
    pose[0, 3 * J["right_knee"]] = knee
    pose[0, 3 * J["left_elbow"] + 1] = -elbow
    with torch.no_grad():
        return model(None, pose, torch.tensor([transl], dtype=torch.float64)).joints[0].numpy()


def coco(joints):
    """COCO-17 keypoints (17, 3) at the SMPL joints of the same name (face points NaN) and their
    confidence (17,)."""
    X = np.full((17, 3), np.nan)
    for k, j in SHARED:
        X[k] = joints[j]
    return X, np.isfinite(X).all(1).astype(np.float64)


def frame(*bodies):
    X, c = zip(*(coco(b) for b in bodies), strict=True)
    return np.stack(X), np.stack(c)


def observed(joints):
    return joints[[j for _, j in SHARED]]


@pytest.fixture(scope="module")
def model():
    return SmplModel.builtin(dtype=torch.float64)


def test_warm_start_comes_from_each_tracks_own_previous_fit(model):
    """warm_iters=0: a warm-started person is returned exactly as its track's previous fit, so
    which previous fit each track got is visible in the output."""
    A = body(model, (0.5, 0.0, 3.0), knee=0.9, elbow=0.3)
    B = body(model, (-0.6, 0.1, 4.0), knee=0.2, elbow=1.2, yaw=0.5)
    C = body(model, (0.0, 0.3, 2.5), yaw=-0.4)
    tr = SmplTracker(model, cold_iters=30, warm_iters=0, max_fit_error=0.15)
    f0 = tr.update([7, 8], COCO_17.names, *frame(A, B))
    assert f0.warm.tolist() == [False, False] and tr.tracks == [7, 8]
    for k, truth in enumerate((A, B)):  # both cold fits found their person
        assert np.linalg.norm(observed(f0.joints[k]) - observed(truth), axis=1).mean() < 0.01
    # next frame: track 8 first, a new track 9, track 7 last -- all three at C's keypoints
    f1 = tr.update([8, 9, 7], COCO_17.names, *frame(C, C, C))
    assert f1.ids.tolist() == [8, 9, 7] and f1.warm.tolist() == [True, False, True]
    np.testing.assert_allclose(f1.joints[0], f0.joints[1], atol=1e-9)  # 8 kept B's fit
    np.testing.assert_allclose(f1.joints[2], f0.joints[0], atol=1e-9)  # 7 kept A's fit
    assert np.linalg.norm(observed(f1.joints[1]) - observed(C), axis=1).mean() < 0.01  # 9: cold, on C
    # fit_error = mean distance of the (unchanged) fits to C's keypoints, computed here
    for k, truth in ((0, B), (2, A)):
        want = np.linalg.norm(observed(truth) - observed(C), axis=1).mean()
        assert want > 0.15 and f1.fit_error[k] == pytest.approx(want, abs=0.01)
    # fits worse than max_fit_error are not kept as warm starts: only 9 is
    assert tr.tracks == [9]
    # vertices, joint frames and joints agree (posed mesh of the same parameters)
    np.testing.assert_allclose(f1.joint_transforms[:, :, :3, 3], f1.joints, atol=1e-9)
    assert f1.vertices.shape == (3, model.v_template.shape[0], 3) and f1.vertices.dtype == np.float32
    f2 = tr.update([9], COCO_17.names, *frame(C))
    assert f2.warm.tolist() == [True]
    np.testing.assert_allclose(f2.joints[0], f1.joints[1], atol=1e-9)
    # a vanished track is forgotten; reset() forgets all
    tr.update([5], COCO_17.names, *frame(A))
    assert tr.tracks == [5]
    tr.reset()
    assert tr.tracks == []
    empty = tr.update([], COCO_17.names, np.zeros((0, 17, 3)), np.zeros((0, 17)))
    assert empty.pose.shape == (0, 72) and empty.vertices.shape == (0, model.v_template.shape[0], 3)
    with pytest.raises(ValueError, match="B x N x 3"):
        tr.update([1, 2], COCO_17.names, *frame(A))


def test_warm_start_follows_motion_with_few_iterations(model):
    """A moving person fitted with 2 warm iterations per frame stays on the truth."""
    tr = SmplTracker(model, cold_iters=30, warm_iters=2)
    for k in range(6):  # walks 5 cm and bends the knee a little more each frame
        truth = body(model, (0.05 * k, 0.0, 3.0), knee=0.3 + 0.05 * k, elbow=0.5)
        out = tr.update([3], COCO_17.names, *frame(truth))
        assert out.warm.tolist() == [k > 0]
        assert np.linalg.norm(observed(out.joints[0]) - observed(truth), axis=1).mean() < 0.01, k


def _areas(v, f):
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_decimated_mesh_keeps_the_surface(factor):
    arr = builtin_body()
    v, f = arr.v_template, arr.faces
    d = decimate_faces(v, f, factor)
    assert d.dtype == np.int64 and d.shape[1] == 3
    assert 0.8 * len(f) / factor <= len(d) <= 1.2 * len(f) / factor, len(d)
    assert d.min() >= 0 and d.max() < len(v)  # indexes the model's own vertices (posed meshes reuse it)
    assert ((d[:, 0] != d[:, 1]) & (d[:, 1] != d[:, 2]) & (d[:, 0] != d[:, 2])).all()  # no degenerate
    assert len(np.unique(np.sort(d, axis=1), axis=0)) == len(d)  # no duplicate
    assert _areas(v, d).min() > 1e-7  # m^2: no sliver of collinear vertices either
    # the coarse mesh lies on the body and covers it: triangle centroids near the original
    # surface, every original vertex near a kept vertex, total area close to the original
    tree = cKDTree(v)
    assert tree.query(v[d].mean(1))[0].max() < 0.03 * factor ** 0.5  # measured 0.028 / 0.032 / 0.050
    kept = np.unique(d)
    assert cKDTree(v[kept]).query(v)[0].max() < 0.035 * factor ** 0.5  # measured 0.038 / 0.064 / 0.087
    assert 0.6 < _areas(v, d).sum() / _areas(v, f).sum() < 1.05


def test_decimation_factor_one_and_bad_factor():
    arr = builtin_body()
    assert np.array_equal(decimate_faces(arr.v_template, arr.faces, 1), arr.faces)
    with pytest.raises(ValueError, match=">= 1"):
        decimate_faces(arr.v_template, arr.faces, 0)


def test_unseen_legs_stay_straight_under_the_body(model):
    """Legs out of view (BlazePose visibility ~0 below the hips: confidence 0, positions
    garbage): the pose prior keeps them straight under the hips -- also when the track's
    previous fit had them folded (a warm start must not keep a stale fold)."""
    tr = SmplTracker(model)
    legs = [COCO_17.index(f"{s}_{p}") for s in ("left", "right") for p in ("knee", "ankle")]
    folded = body(model, (0.2, 0.1, 3.0), knee=1.6, elbow=0.4)  # right knee folded 92 degrees
    first = tr.update([4], COCO_17.names, *frame(folded))
    assert first.pose[0, 3 * J["right_knee"]] == pytest.approx(1.6, abs=0.1)
    X, c = frame(body(model, (0.2, 0.1, 3.0), knee=1.6, elbow=0.6))
    X[:, legs] = np.random.default_rng(0).normal(0, 1, (1, 4, 3)) + [0, 0, 3]  # garbage
    c[:, legs] = 0.0
    out = tr.update([4], COCO_17.names, X, c)
    assert out.warm.tolist() == [True] and out.fit_error[0] < 0.01
    for j in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"):
        assert np.linalg.norm(out.pose[0, 3 * J[j]: 3 * J[j] + 3]) < 0.05, j  # rad
    # geometry: each ankle ~0.78 m (the built-in leg) straight down the torso axis from its hip
    Jo = out.joints[0]
    down = Jo[J["pelvis"]] - Jo[J["neck"]]
    down /= np.linalg.norm(down)
    for s in ("left", "right"):
        leg = Jo[J[f"{s}_ankle"]] - Jo[J[f"{s}_hip"]]
        assert leg @ down > 0.7, (s, leg @ down)
        assert np.linalg.norm(leg - (leg @ down) * down) < 0.15, s
