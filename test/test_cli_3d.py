"""`pose-ros infer` camera-frame 3D (--camera-info / --fx), camera_calibration YAML, and
`pose-ros eval3d` on a 3DHP-format folder (issue 10 items 1, 7). No ../shared data."""
from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import transforms3d

from pose_ros.cli import main
from pose_ros.core.camera import CameraModelError
from pose_ros.core.camera_yaml import camera_from_yaml
from pose_ros.core.eval3d import (
    HP3D_17,
    SCORED,
    floor_from_extrinsics,
    load_cameras,
    load_folder,
    score,
)
from pose_ros.core.lift import SOURCE_MONOCULAR

OST = """image_width: 512
image_height: 512
camera_name: test_cam
camera_matrix:
  rows: 3
  cols: 3
  data: [600.0, 0.0, 250.0, 0.0, 610.0, 260.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [580.0, 0.0, 255.0, 0.0, 0.0, 590.0, 258.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_camera_from_yaml(tmp_path):
    f = tmp_path / "ost.yaml"
    f.write_text(OST.replace("[0.0, 0.0, 0.0, 0.0, 0.0]", "[-0.1, 0.01, 0.0, 0.0, 0.0]"))
    cam = camera_from_yaml(f)
    np.testing.assert_allclose(cam.K, [[600, 0, 250], [0, 610, 260], [0, 0, 1]])
    np.testing.assert_allclose(cam.D, [-0.1, 0.01, 0, 0, 0])
    assert (cam.width, cam.height, cam.distortion_model) == (512, 512, "plumb_bob")
    rect = camera_from_yaml(f, rectified=True)  # projection_matrix, no distortion
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (580, 590, 255, 258) and not rect.distorted
    f.write_text(OST.replace("camera_matrix", "camera_matrixx"))
    with pytest.raises(CameraModelError, match="camera_matrix"):
        camera_from_yaml(f)


@pytest.fixture(scope="module")
def astro_png(astronaut, tmp_path_factory):
    d = tmp_path_factory.mktemp("astro")
    cv2.imwrite(str(d / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return d / "astronaut.png"


def test_infer_writes_camera_frame_3d(models, astro_png, tmp_path):
    """--camera-info: 3D per joint in the JSON, placed by PnP with that camera: the 3D points
    project (with the YAML's K, computed here) onto the 2D keypoints."""
    ost = tmp_path / "ost.yaml"
    ost.write_text(OST)
    out = tmp_path / "r.json"
    assert main(["infer", str(astro_png), "--no-draw", "--quiet", "--static", "--json", str(out),
                 "--camera-info", str(ost)]) == 0
    frame = json.loads(out.read_text())[0]
    assert frame["camera"]["source"] == "camera_info" and frame["camera"]["fy"] == 610
    person = frame["persons"][0]
    c3d = person["camera_3d"]
    assert c3d["mode"] == "world_landmarks"
    assert set(c3d["position_source"]) == {SOURCE_MONOCULAR}
    P = np.array(c3d["position"], float)
    K = np.array([[600.0, 0, 250], [0, 610, 260], [0, 0, 1]])
    uv = (P @ K.T)[:, :2] / P[:, 2:]
    kp = np.array([[k["x"], k["y"]] for k in person["keypoints"]])
    vis = np.array([k["visibility"] for k in person["keypoints"]]) > 0.5
    assert np.median(np.linalg.norm(uv - kp, axis=1)[vis]) < 15
    assert 0.5 < np.median(P[:, 2]) < 5  # a person in a portrait photo: metres away
    # --fx: another focal length -> proportionally farther (same 2D, same skeleton)
    out2 = tmp_path / "r2.json"
    assert main(["infer", str(astro_png), "--no-draw", "--quiet", "--static", "--json", str(out2),
                 "--fx", "1200", "--cx", "250", "--cy", "260"]) == 0
    P2 = np.array(json.loads(out2.read_text())[0]["persons"][0]["camera_3d"]["position"], float)
    ratio = np.median(P2[:, 2]) / np.median(P[:, 2])
    assert 1.8 < ratio < 2.2


def test_infer_camera_argument_errors(astro_png, tmp_path, capsys):
    ost = tmp_path / "ost.yaml"
    ost.write_text(OST.replace("image_width: 512", "image_width: 640"))
    assert main(["infer", str(astro_png), "--no-draw", "--quiet", "--json", str(tmp_path / "x.json"),
                 "--camera-info", str(ost)]) == 2
    assert "640x512" in capsys.readouterr().err
    assert main(["infer", str(astro_png), "--no-draw", "--quiet", "--camera-to-floor", "1,2,3"]) == 2
    assert "7 numbers" in capsys.readouterr().err


def _extrinsics():
    R = transforms3d.euler.euler2mat(0.3, -0.2, 0.1)
    return R, np.array([[0.2], [1.1], [3.5]])


def test_floor_from_extrinsics_puts_world_y0_at_z0():
    """X_cam = R X_world + T, world y up: world points at height y land at floor z = y."""
    R, T = _extrinsics()
    c2f = floor_from_extrinsics(R, T)
    world = np.array([[0.5, 0.0, 2.0], [-1.0, 1.7, 0.3], [2.0, 0.4, -1.0]])
    cam = world @ R.T + T.ravel()
    np.testing.assert_allclose(c2f.apply(cam)[:, 2], world[:, 1], atol=1e-12)
    np.testing.assert_allclose(c2f.apply(cam)[:, 0], world[:, 0], atol=1e-12)


def test_cameras_pickle_accepts_numpy_only(tmp_path):
    good = tmp_path / "cameras_ok.pkl"
    good.write_bytes(pickle.dumps({"S1_Seq1_Cam0": {"f": np.ones((2, 1))}}))
    assert load_cameras(good)["S1_Seq1_Cam0"]["f"].shape == (2, 1)
    bad = tmp_path / "cameras_bad.pkl"
    bad.write_bytes(pickle.dumps({"x": pickle.PicklingError("boom")}))
    with pytest.raises(ValueError, match="only numpy"):
        load_cameras(bad)


def test_score_hand_values():
    """Every joint 10 cm too far along z: absolute error 100 mm, root-relative errors 0."""
    gt = np.column_stack([np.linspace(-0.3, 0.3, 12), np.linspace(-0.8, 0.8, 12), np.full(12, 4.0)])
    gt[:, 2] += np.linspace(0, 0.2, 12)
    from pose_ros.core.eval3d import Sample

    s = Sample(None, gt, np.ones(12, bool), None, None, None)
    r = score([gt + (0, 0, 0.1), None], [s, s])
    assert r["found"] == 1 and r["n"] == 2
    assert r["abs"] == pytest.approx(100.0) and r["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert r["pa_mpjpe"] == pytest.approx(0.0, abs=1e-6) and r["pck3d"] == 100.0


def test_eval3d_on_a_tiny_3dhp_folder(models, astronaut, tmp_path, capsys):
    """A folder in the shared sample's format (image, npz with imgname/S/center, cameras pkl);
    the ground truth is our own pipeline's PnP output moved 10 cm further away, so the printed
    world_landmarks/pnp row must read abs 100 mm, MPJPE 0, PA-MPJPE 0."""
    from pose_ros.core.compose3d import Composer3D
    from pose_ros.core.eval3d import blazepose_to_scored
    from pose_ros.core.pipeline import PipelineConfig, PosePipeline

    name = "S1_Seq1_Cam0_000001.jpg"
    cv2.imwrite(str(tmp_path / name), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 100])
    R, T = _extrinsics()
    f, c = np.array([[700.0], [700.0]]), np.array([[256.0], [250.0]])
    (tmp_path / "cameras_train.pkl").write_bytes(pickle.dumps(
        {"S1_Seq1_Cam0": {"f": f, "c": c, "R": R, "T": T, "w": 512.0, "h": 512.0}}))
    # ground truth: this image's PnP placement, pushed 10 cm along the optical axis
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB)
    person = PosePipeline(PipelineConfig(static_image_mode=True))(rgb)[0]
    from pose_ros.core.camera import PinholeCamera

    cam = PinholeCamera(512, 512, np.array([[700.0, 0, 256], [0, 700, 250], [0, 0, 1]]), np.zeros(0))
    pred = blazepose_to_scored(Composer3D("world_landmarks").compose(person, cam).positions, person.layout)
    S = np.zeros((1, 17, 4))
    S[0, :, 3] = 1
    for j, n in enumerate(SCORED):
        S[0, HP3D_17.index(n), :3] = pred[j] + (0, 0, 0.1)
    center = (person.bbox[:2] + person.bbox[2:]) / 2
    np.savez(tmp_path / "gt.npz", imgname=np.array([name]), S=S, center=center[None].astype(float),
             scale=np.array([1.0]))
    samples = load_folder(tmp_path)
    np.testing.assert_allclose(samples[0].camera.K, [[700, 0, 256], [0, 700, 250], [0, 0, 1]])
    assert samples[0].camera_to_floor is not None
    out = tmp_path / "res.json"
    assert main(["eval3d", str(tmp_path), "--quiet", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "world_landmarks/pnp" in printed and "ground_plane/pnp" in printed
    r = json.loads(out.read_text())["world_landmarks/pnp"]
    assert r["found"] == 1
    assert r["abs"] == pytest.approx(100.0, abs=0.5)
    assert r["mpjpe"] == pytest.approx(0.0, abs=0.5) and r["pa_mpjpe"] == pytest.approx(0.0, abs=0.5)
