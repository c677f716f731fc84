"""`pose-ros infer --smpl`: fitted parameters in the JSON and one mesh file per person that a
plain OBJ / PLY reader opens; the mesh lies on the person in the photo (projected with the
camera the JSON reports, through OpenCV) and the mesh writers' exact text on a tetrahedron."""
from __future__ import annotations

import json

import cv2
import numpy as np

from conftest import photo
from pose_ros.cli import main
from pose_ros.core.smpl_track import write_obj, write_ply

TETRA_V = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def read_obj(path) -> tuple[np.ndarray, np.ndarray]:
    """A tiny OBJ reader: `v x y z` and `f a b c` (1-based, optional /vt/vn suffixes)."""
    v, f = [], []
    for line in open(path):
        parts = line.split()
        if parts and parts[0] == "v":
            v.append([float(x) for x in parts[1:4]])
        elif parts and parts[0] == "f":
            f.append([int(x.split("/")[0]) - 1 for x in parts[1:]])
    return np.array(v), np.array(f)


def read_ply(path) -> tuple[np.ndarray, np.ndarray]:
    """A tiny ASCII PLY reader (vertex x y z, face lists)."""
    lines = open(path).read().splitlines()
    assert lines[0] == "ply" and lines[1] == "format ascii 1.0"
    end = lines.index("end_header")
    nv = next(int(x.split()[-1]) for x in lines if x.startswith("element vertex"))
    nf = next(int(x.split()[-1]) for x in lines if x.startswith("element face"))
    v = np.array([[float(t) for t in x.split()[:3]] for x in lines[end + 1: end + 1 + nv]])
    f = [[int(t) for t in x.split()] for x in lines[end + 1 + nv: end + 1 + nv + nf]]
    assert all(r[0] == len(r) - 1 for r in f)
    return v, np.array([r[1:] for r in f])


def test_mesh_writers_exact_text(tmp_path):
    write_obj(tmp_path / "t.obj", TETRA_V, TETRA_F, "tetra")
    assert (tmp_path / "t.obj").read_text() == (
        "# tetra\nv 0.000000 0.000000 0.000000\nv 1.000000 0.000000 0.000000\n"
        "v 0.000000 1.000000 0.000000\nv 0.000000 0.000000 1.000000\n"
        "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    write_ply(tmp_path / "t.ply", TETRA_V, TETRA_F)
    v, f = read_ply(tmp_path / "t.ply")
    assert np.array_equal(v, TETRA_V) and np.array_equal(f, TETRA_F)
    # outward normals (counter-clockwise seen from outside): every face normal points away
    # from the centroid
    c = TETRA_V.mean(0)
    tri = TETRA_V[TETRA_F]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert ((n * (tri.mean(1) - c)).sum(1) > 0).all()


def test_infer_smpl_writes_params_and_meshes(tmp_path, models):
    img = tmp_path / "astronaut.png"
    cv2.imwrite(str(img), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    rc = main(["infer", str(img), "--smpl", "--json", str(tmp_path / "r.json"), "--out", str(out),
               "--static", "--backend", "onnxruntime", "--quiet", "--no-draw", "--detector-tiles", "0"])
    assert rc == 0
    (frame,) = json.loads((tmp_path / "r.json").read_text())
    (person,) = frame["persons"]
    s = person["smpl"]
    assert len(s["betas"]) == 10 and len(s["pose"]) == 72 and len(s["transl"]) == 3
    assert 0 <= s["fit_error_m"] < 0.08 and s["warm"] is False and "NOT SMPL" in s["model"]
    v, f = read_obj(s["mesh"])
    assert v.shape == (s["vertices"], 3) == (4464, 3) and f.shape == (s["faces"], 3) == (8832, 3)
    assert f.min() == 0 and f.max() == len(v) - 1
    # the mesh is on the person (an upright half-body photo: the legs are out of the image)
    cam = frame["camera"]
    K = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
    P = np.array([[np.nan if c is None else c for c in q] for q in person["camera_3d"]["position"]])
    kp = {k["name"]: (i, k) for i, k in enumerate(person["keypoints"])}
    seen = [n for n in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
            if kp[n][1]["visibility"] >= 0.5 and np.isfinite(P[kp[n][0]]).all()]
    assert len(seen) >= 2, seen
    uv = cv2.projectPoints(v, np.zeros(3), np.zeros(3), K, None)[0].reshape(-1, 2)
    for n in seen:
        i, k = kp[n]
        d = np.linalg.norm(v - P[i], axis=1)
        assert d.min() < 0.12, (n, d.min())  # a capsule's radius plus the fit residual
        # the mesh around that joint projects (OpenCV) onto the photo's keypoint
        near = uv[d < d.min() + 0.05].mean(0)
        assert np.linalg.norm(near - [k["x"], k["y"]]) < 0.1 * (person["bbox"][2] - person["bbox"][0]), n
    assert (v[:, 2] > 0).all()  # in front of the camera
    assert np.ptp(v[:, 1]) > 1.2  # a whole upright body (built-in: ~1.7 m tall), y down the image
    # PLY too
    rc = main(["infer", str(img), "--smpl", "--mesh-format", "ply", "--out", str(out), "--static",
               "--backend", "onnxruntime", "--quiet", "--no-draw", "--detector-tiles", "0"])
    assert rc == 0
    (ply,) = out.glob("*.ply")
    pv, pf = read_ply(ply)
    assert pv.shape == (4464, 3) and pf.shape == (8832, 3)
    assert np.allclose(pv, v, atol=2e-6)  # same fit, same photo


def test_smpl_model_option_loads_that_file(tmp_path, models):
    from test_smpl_node import body_file_with_extra_vertices

    model = tmp_path / "my_model.npz"
    n_verts = body_file_with_extra_vertices(model)
    img = tmp_path / "astronaut.png"
    cv2.imwrite(str(img), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    rc = main(["infer", str(img), "--smpl", "--smpl-model", str(model), "--json", str(tmp_path / "r.json"),
               "--out", str(tmp_path / "out"), "--static", "--backend", "onnxruntime", "--quiet", "--no-draw",
               "--detector-tiles", "0"])
    assert rc == 0
    s = json.loads((tmp_path / "r.json").read_text())[0]["persons"][0]["smpl"]
    assert s["model"] == str(model) and s["fit_error_m"] < 0.08
    v, f = read_obj(s["mesh"])
    assert v.shape == (n_verts, 3) == (4467, 3) and f.shape == (8833, 3)


def test_missing_smpl_model_is_a_clear_error(tmp_path, capsys, models):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR))
    rc = main(["infer", str(img), "--smpl", "--smpl-model", str(tmp_path / "SMPL_NEUTRAL.pkl"),
               "--out", str(tmp_path), "--quiet", "--backend", "onnxruntime"])
    assert rc == 2
    assert "smpl.is.tue.mpg.de" in capsys.readouterr().err
