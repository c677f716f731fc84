"""Training demo (issue 11 item 3): synthetic figures are drawn where their keypoints say, the
COCO loader's targets peak at the annotated keypoints (hand-computed crop / letterbox maps),
and short seeded trainings of CPM and OpenPoseNet lower every stage's loss and beat the
untrained nets on held-out synthetic images. Oracles: pixel colours of the drawing, hand
arithmetic, onnxruntime for the export."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pose_ros.core import synth
from pose_ros.core.datasets import CocoKeypoints, DatasetError, parse_coco
from pose_ros.core.decode import HeatmapArgmax, find_peaks
from pose_ros.core.skeletons import COCO_17, OPENPOSE_18, PAF_CHANNELS

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------ synthetic
def _seg_dist(p, a, b):
    d = b - a
    t = np.clip(np.dot(p - a, d) / max(np.dot(d, d), 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t * d))


def test_synthetic_figures_are_drawn_at_their_keypoints():
    """Limb midpoints (from the returned keypoints) carry the limb's colour, face dots theirs, and
    every non-background pixel lies within the keypoints' box grown by the line width/head."""
    checked = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        sc = synth.render_scene(rng, COCO_17, (128, 128), n_people=(1, 1), height=(0.75, 0.85),
                                centre=(0.5, 0.5), background="plain", noise=0)
        kp, t, r = sc.keypoints[0], int(sc.thickness[0]), float(sc.head_radius[0])
        assert sc.visible.all() and sc.image.dtype == np.uint8
        segs = list(synth.SEGMENT_COLOURS.items())
        for n, ((a, b), colour) in enumerate(segs):
            pa, pb = kp[COCO_17.index(a)], kp[COCO_17.index(b)]
            mid = 0.5 * (pa + pb)
            later = [(kp[COCO_17.index(c)], kp[COCO_17.index(d)]) for (c, d), _ in segs[n + 1:]]
            if any(_seg_dist(mid, c, d) < t / 2 + 1.5 for c, d in later):
                continue  # covered by a limb drawn later
            if np.linalg.norm(mid - kp[COCO_17.index("nose")]) < r + 3:
                continue  # under the head
            x, y = np.round(mid).astype(int)
            assert tuple(sc.image[y, x]) == colour, (seed, a, b)
            checked += 1
        for name, colour in synth.DOT_COLOURS.items():
            x, y = np.round(kp[COCO_17.index(name)]).astype(int)
            assert tuple(sc.image[y, x]) == colour, (seed, name)
        fg = np.argwhere((sc.image != 128).any(-1))[:, ::-1]  # (x, y) of drawn pixels
        margin = max(t, 2 * r)
        assert (fg >= kp.min(0) - margin).all() and (fg <= kp.max(0) + margin).all()
    assert checked >= 30  # most of the 6 x 8 limbs were visible and checked


def test_synthetic_scene_layouts_and_errors():
    rng = np.random.default_rng(1)
    sc = synth.render_scene(rng, OPENPOSE_18, (96, 80), n_people=(3, 3))
    assert sc.image.shape == (96, 80, 3) and sc.keypoints.shape == (3, 18, 2)
    neck, ls, rs = (OPENPOSE_18.index(n) for n in ("neck", "left_shoulder", "right_shoulder"))
    # the figure's shoulders sit symmetrically about the neck
    np.testing.assert_allclose(sc.keypoints[:, neck], sc.keypoints[:, [ls, rs]].mean(1), atol=1e-9)
    inside = ((sc.keypoints >= 0) & (sc.keypoints <= [79, 95])).all(-1)
    np.testing.assert_array_equal(sc.visible, inside)
    with pytest.raises(ValueError, match="head_top"):
        synth.layout_joint_index(__import__("pose_ros.core.skeletons", fromlist=["MPII_16"]).MPII_16)


# ------------------------------------------------------------------------------ COCO loader
def _coco(tmp_path):
    img = np.full((64, 96, 3), 90, np.uint8)
    img[26:30, 36:40] = 255  # a white 4 x 4 square at x 36..39, y 26..29
    cv2.imwrite(str(tmp_path / "a.png"), img)
    kp1 = np.zeros((17, 3))
    kp1[:, 2] = 2
    kp1[:, 0] = 20 + 2.5 * np.arange(17)
    kp1[:, 1] = 12 + 2.25 * np.arange(17) % 30
    kp1[COCO_17.index("left_ear"), 2] = 0  # unlabelled
    kp2 = kp1.copy()
    kp2[:, 0] += 9.5
    kp2[:, 1] += 17.0
    kp2[:, 2] = 1
    ann = {"images": [{"id": 7, "file_name": "a.png", "width": 96, "height": 64}],
           "annotations": [
               {"id": 1, "image_id": 7, "keypoints": kp1.ravel().tolist(), "num_keypoints": 16,
                "bbox": [20, 10, 32, 32], "iscrowd": 0},
               {"id": 2, "image_id": 7, "keypoints": kp2.ravel().tolist(), "num_keypoints": 17,
                "bbox": [29, 29, 40, 30], "iscrowd": 0},
               {"id": 3, "image_id": 7, "keypoints": [0] * 51, "num_keypoints": 0,
                "bbox": [80, 40, 12, 20], "iscrowd": 0, "segmentation": [[80, 40, 92, 40, 92, 60, 80, 60]]},
           ]}
    path = tmp_path / "person_keypoints_tiny.json"
    path.write_text(json.dumps(ann))
    return path, kp1, kp2


def test_coco_loader_crop_targets_peak_at_keypoints(tmp_path):
    path, kp1, _ = _coco(tmp_path)
    ds = CocoKeypoints(tmp_path, path, mode="crop", input_size=(64, 64), stride=4, sigma=1.5,
                       padding=1.0)
    assert len(ds) == 2  # the keypoint-less annotation is no sample
    s = ds[0]
    # box [20, 10, 32, 32] -> 64 x 64: scale 2, box centre (36, 26) -> crop centre (31.5, 31.5)
    want = 2.0 * (kp1[:, :2] - [36, 26]) + 31.5
    assert s["image"].shape == (3, 64, 64) and s["heatmaps"].shape == (17, 16, 16)
    got = HeatmapArgmax(refine="log_parabola", stride=4)(s["heatmaps"]).xy
    vis = s["visible"][0]
    inside = ((want >= 0) & (want <= 63)).all(1) & (kp1[:, 2] > 0)
    np.testing.assert_array_equal(vis, inside)
    interior = vis & ((want / 4 >= 1) & (want / 4 <= 14)).all(1)  # 3-point refinement needs both neighbours
    assert interior.sum() >= 10
    np.testing.assert_allclose(got[interior], want[interior], atol=0.01)
    np.testing.assert_allclose(got[vis], want[vis], atol=0.5)
    assert not s["heatmaps"][~vis].any()  # unlabelled / outside: empty maps
    # the image went through the same map: the white square (x 36..39, y 26..29) -> 31.5..39.5
    img = (s["image"] + 0.5) * 255
    assert (img[:, 33:38, 33:38] > 250).all() and (img[:, 20:28, 20:28] < 100).all()


def test_coco_loader_full_image_targets_pafs_mask(tmp_path):
    path, kp1, kp2 = _coco(tmp_path)
    ds = CocoKeypoints(tmp_path, path, mode="full", layout=OPENPOSE_18, input_size=(64, 96),
                       stride=4, sigma=1.0, paf_width=1.0)
    assert len(ds) == 1
    s = ds[0]  # the image is the input size: identity letterbox
    np.testing.assert_allclose(s["matrix"], [[1, 0, 0], [0, 1, 0]])
    assert s["heatmaps"].shape == (18, 16, 24) and s["pafs"].shape == (38, 16, 24)
    for name in ("nose", "left_wrist", "right_ankle", "neck"):
        j = OPENPOSE_18.index(name)
        if name == "neck":
            want = [0.5 * (k[5, :2] + k[6, :2]) for k in (kp1, kp2)]
        else:
            want = [k[COCO_17.index(name), :2] for k in (kp1, kp2)]
        pk = find_peaks(s["heatmaps"][j], threshold=0.5).xy * 4
        assert len(pk) == 2
        d = np.linalg.norm(pk[:, None] - np.asarray(want)[None], axis=-1)
        assert d.min(1).max() < 0.01 and d.min(0).max() < 0.01
    # PAF of limb neck -> nose of person 1 at its midpoint pixel: the unit vector, in the channels
    li = OPENPOSE_18.limbs.index((1, 0))
    a, b = 0.5 * (kp1[5, :2] + kp1[6, :2]) / 4, kp1[0, :2] / 4
    mid = np.round(0.5 * (a + b)).astype(int)
    u = (b - a) / np.linalg.norm(b - a)
    cx, cy = PAF_CHANNELS["openpose_18"][li]  # OpenPose's channel order (what PafDecoder reads)
    np.testing.assert_allclose(s["pafs"][[cx, cy], mid[1], mid[0]], u, atol=1e-5)
    # ignore region (the keypoint-less person's polygon x 80..92, y 40..60 -> /4) is masked out
    assert s["mask"].shape == (1, 16, 24)
    assert s["mask"][0, 11:14, 21:22].max() == 0 and s["mask"][0, 2, 2] == 1


def test_coco_loader_errors(tmp_path):
    with pytest.raises(DatasetError, match="person_keypoints"):
        parse_coco({"images": [], "annotations": []})
    with pytest.raises(DatasetError, match="'images' and 'annotations'"):
        parse_coco({"foo": 1})
    path, _, _ = _coco(tmp_path)
    with pytest.raises(DatasetError, match="mode"):
        CocoKeypoints(tmp_path, path, mode="bottom")
    (tmp_path / "a.png").unlink()
    with pytest.raises(DatasetError, match="check image_dir"):
        CocoKeypoints(tmp_path, path)[0]


# ------------------------------------------------------------------------------ training
def test_cpm_learns_on_synthetic_crops():
    from pose_ros.core.train_demo import default_config, train

    r = train(default_config("cpm", steps=80, batch=8, val_size=32))
    assert r.steps == 80 and r.stage_losses.shape == (80, 3)
    assert r.losses[-10:].mean() < 0.6 * r.losses[:3].mean()
    # intermediate supervision: every stage's own loss fell
    assert (r.stage_losses[-10:].mean(0) < 0.6 * r.stage_losses[:3].mean(0)).all()
    assert r.pck_untrained < 0.1 and r.pck_trained > r.pck_untrained + 0.3


def test_openpose_learns_on_synthetic_images(tmp_path):
    from pose_ros.core.train_demo import default_config, export_onnx, load_checkpoint, save_checkpoint, train

    cfg = default_config("openpose", steps=150, batch=8, val_size=32, input_size=64, max_people=1,
                         stages=2)
    r = train(cfg)
    assert r.losses[-10:].mean() < 0.6 * r.losses[:3].mean()
    assert (r.stage_losses[-10:].mean(0) < 0.6 * r.stage_losses[:3].mean(0)).all()
    u, t = r.untrained, r.trained
    assert t["joint_rate"] > u["joint_rate"] + 0.3   # heatmap branch
    assert t["paf_score"] > u["paf_score"] + 0.03    # PAF branch: fields along the true limbs
    assert t["pck"] > u["pck"] + 0.2                 # whole bottom-up decode (PafDecoder)
    # checkpoint round trip and ONNX export (onnxruntime = torch's last stage)
    net, cfg2 = load_checkpoint(save_checkpoint(r, tmp_path / "op.pt"))
    assert cfg2 == cfg
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        hm, paf = r.net(x)[-1]
        torch.testing.assert_close(net(x)[-1][0], hm)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(export_onnx(r.net, cfg, tmp_path / "op.onnx")),
                                providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x.numpy()}), strict=True))
    np.testing.assert_allclose(out["heatmaps"], hm.numpy(), atol=1e-4)
    np.testing.assert_allclose(out["pafs"], paf.numpy(), atol=1e-4)


def test_cli_train_demo_writes_outputs(tmp_path):
    from pose_ros.cli import main

    assert main(["train-demo", "--family", "cpm", "--steps", "3", "--out", str(tmp_path), "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary[0]["family"] == "cpm" and summary[0]["steps"] == 3
    png = cv2.imread(str(tmp_path / "loss_curves.png"))
    assert png is not None and png.shape[0] > 100
    assert (tmp_path / "cpm.pt").is_file()


def test_cli_train_demo_on_a_coco_folder(tmp_path):
    """--coco-dir: the CPM trains on the folder's person crops (the one json is found)."""
    from pose_ros.cli import main

    _coco(tmp_path)
    out = tmp_path / "out"
    assert main(["train-demo", "--family", "cpm", "--steps", "2", "--coco-dir", str(tmp_path),
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["data"] == "coco" and summary[0]["steps"] == 2
    assert main(["train-demo", "--steps", "1", "--coco-dir", str(tmp_path / "nowhere"),
                 "--out", str(out), "--quiet"]) == 2  # clear error, exit code 2


def test_synth_and_datasets_import_without_torch():
    """Parsing and targets need no torch (an onnxruntime-only install can read COCO data)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class B:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, B())\n"
            "import pose_ros.core.datasets, pose_ros.core.synth\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
