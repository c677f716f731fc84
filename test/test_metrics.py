"""core/metrics.py: hand-computed PCK / PCKh / OKS / MPJPE / PCK3D cases; COCO keypoint AP/AR
checked against pycocotools' COCOeval on the same synthetic data (identical numbers); PA-MPJPE
against a known similarity transform and scipy.spatial.procrustes."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import transforms3d
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.spatial import procrustes

from pose_ros.core import metrics
from pose_ros.core.skeletons import COCO_17, get_layout


# ---------------------------------------------------------------------------------- PCK
def test_pck_hand_case():
    gt = np.array([[[0, 0], [10, 0], [0, 10], [10, 10]]], float)
    pred = gt + np.array([[[1, 0], [0, 2.5], [3, 4], [np.nan, np.nan]]])
    ref = reference = metrics.reference_length(gt, "bbox")
    assert reference[0] == 10.0
    # alpha 0.2 -> 2 px: errors 1, 2.5, 5, missing -> 1 of 4
    total, per = metrics.pck(pred, gt, ref, alpha=0.2)
    assert total == 0.25
    np.testing.assert_array_equal(per, [1, 0, 0, 0])
    # alpha 0.5 -> 5 px (<=): 3 of 4; an invisible joint leaves the mean
    total, per = metrics.pck(pred, gt, ref, alpha=0.5, visible=[[True, True, True, False]])
    assert total == 1.0
    assert np.isnan(per[3])


def test_reference_lengths_and_pckh():
    gt = np.zeros((2, 17, 2))
    ls, rh = COCO_17.index("left_shoulder"), COCO_17.index("right_hip")
    gt[0, ls], gt[0, rh] = (10, 10), (13, 14)  # torso 5
    gt[1, ls], gt[1, rh] = (0, 0), (6, 8)  # torso 10
    np.testing.assert_allclose(metrics.reference_length(gt, "torso", COCO_17), [5, 10])
    with pytest.raises(metrics.MetricError, match="head_top"):
        metrics.reference_length(gt, "head", COCO_17)
    # PCKh@0.5 with head sizes 4 and 10: errors 2.0 (hit: <= 2) and 6 (miss: > 5)
    pred = gt.copy()
    pred[0, 0] += (2.0, 0)
    pred[1, 0] += (0, 6.0)
    total, per = metrics.pckh(pred, gt, np.array([4.0, 10.0]))
    assert per[0] == 0.5 and total == pytest.approx((2 * 17 - 1) / 34)


# ---------------------------------------------------------------------------------- OKS
def test_oks_hand_values():
    gt = np.zeros((17, 3))
    gt[0] = (50, 40, 2)  # only the nose labelled
    dt = np.zeros((17, 2))
    dt[0] = (51, 40)
    # e = d^2 / (2 sigma)^2 / area / 2 with sigma 0.026, area 100, d = 1
    e = 1.0 / (2 * 0.026) ** 2 / 100 / 2
    assert metrics.oks(dt, gt, 100.0) == pytest.approx(np.exp(-e), rel=1e-12)
    # two labelled joints, exact on one: mean of 1 and exp(-e') (left ear, sigma .035, d = 2)
    gt[3] = (60, 40, 1)
    dt[3] = (60, 42)
    e2 = 4.0 / (2 * 0.035) ** 2 / 100 / 2
    dt[0] = (50, 40)
    assert metrics.oks(dt, gt, 100.0) == pytest.approx((1 + np.exp(-e2)) / 2, rel=1e-12)
    with pytest.raises(metrics.MetricError, match="gt_bbox"):
        metrics.oks(dt, np.zeros((17, 3)), 100.0)


def test_oks_matrix_equals_pairwise_oks():
    rng = np.random.default_rng(4)
    b = rng.uniform(0, 300, (3, 17, 2))
    vis = rng.random((3, 17)) > 0.3
    a = b[[2, 0, 1, 0]] + rng.normal(0, 6, (4, 17, 2))
    a[1, 5] = np.nan  # a missing joint scores 0
    areas = np.array([5000.0, 900.0, 20000.0])
    m = metrics.oks_matrix(a, b, areas, visible_b=vis)
    assert m.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            gt = np.column_stack([b[j], vis[j] * 2])
            dt = np.nan_to_num(a[i], nan=1e9)
            assert m[i, j] == pytest.approx(metrics.oks(dt, gt, areas[j]), rel=1e-12, abs=1e-300)
    assert m[0].argmax() == 2 and m[1].argmax() == 0
    with pytest.raises(metrics.MetricError, match="layout_sigmas"):
        metrics.oks_matrix(np.zeros((1, 33, 2)), np.zeros((1, 33, 2)), [1.0])
    from pose_ros.core.skeletons import BLAZEPOSE_33
    s = metrics.layout_sigmas(BLAZEPOSE_33)
    assert s[BLAZEPOSE_33.index("left_hip")] == pytest.approx(0.107)
    assert s[BLAZEPOSE_33.index("left_pinky")] == 0.08


def test_pckh_head_segment_mpii():
    from pose_ros.core.skeletons import MPII_16
    gt = np.zeros((1, 16, 2))
    gt[0, MPII_16.index("head_top")] = (100, 40)
    gt[0, MPII_16.index("upper_neck")] = (100, 70)  # head segment 30 px
    ref = metrics.reference_length(gt, "head", MPII_16)
    assert ref[0] == 30.0
    pred = gt.copy()
    pred[0, 0] += (15.0, 0)  # exactly 0.5 x 30: counts
    pred[0, 1] += (15.1, 0)  # just beyond
    total, per = metrics.pckh(pred, gt, ref)
    assert per[0] == 1 and per[1] == 0 and total == pytest.approx(15 / 16)


def _synthetic_coco(seed=0):
    """Ground truth with medium/large/small people, crowd and num_keypoints=0 annotations,
    and results with noise, duplicates, misses and false positives."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    aid = 1
    for img in range(1, 9):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img}.jpg"})
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(5, 200), rng.uniform(10, 300)
            x0, y0 = rng.uniform(0, 400), rng.uniform(0, 150)
            kp = np.column_stack([x0 + rng.uniform(0, w, 17), y0 + rng.uniform(0, h, 17),
                                  rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])])
            kp[kp[:, 2] == 0, :2] = 0
            crowd = int(rng.random() < 0.1)
            if rng.random() < 0.1:
                kp[:] = 0
            anns.append({"id": aid, "image_id": img, "category_id": 1, "iscrowd": crowd,
                         "area": float(w * h * 0.6), "bbox": [x0, y0, w, h],
                         "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "keypoints": kp.reshape(-1).round(2).tolist()})
            aid += 1
            for _rep in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, duplicated
                noise = rng.normal(0, rng.choice([1.0, 4.0, 15.0]), (17, 2))
                d = np.column_stack([kp[:, :2] + noise, np.ones(17)])
                results.append({"image_id": img, "category_id": 1,
                                "keypoints": d.reshape(-1).round(2).tolist(),
                                "score": float(round(rng.random(), 4))})
        for _ in range(int(rng.integers(0, 2))):  # false positives
            d = np.column_stack([rng.uniform(0, 640, 17), rng.uniform(0, 480, 17), np.ones(17)])
            results.append({"image_id": img, "category_id": 1, "keypoints": d.reshape(-1).tolist(),
                            "score": float(round(rng.random(), 4))})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.names),
                          "skeleton": [[a + 1, b + 1] for a, b in COCO_17.limbs]}]}
    return gt, results


def _pycocotools_stats(gt, results):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {k: [dict(v) for v in vals] for k, vals in gt.items()}
        coco.createIndex()
        dt = coco.loadRes([dict(r) for r in results])
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_keypoint_ap_equals_pycocotools(seed):
    gt, results = _synthetic_coco(seed)
    assert len(results) > 5
    ours = metrics.coco_keypoint_eval(gt, results)
    ref = _pycocotools_stats(gt, results)
    assert list(ours) == list(metrics.STAT_NAMES)
    np.testing.assert_allclose(list(ours.values()), ref, rtol=0, atol=1e-12)
    assert 0 < ours["AP"] < 1  # a non-trivial case


def test_coco_keypoint_ap_crowd_and_ignored_matching_rules():
    """pycocotools' matching rules: a detection matched to a real person does not switch to a
    better-fitting ignored (crowd) region, and a crowd region absorbs any number of detections."""
    rng = np.random.default_rng(9)
    ka = np.column_stack([rng.uniform(100, 220, 17), rng.uniform(50, 300, 17), np.full(17, 2)])
    kb = ka.copy()
    kb[:, :2] += 2.0
    images = [{"id": 1, "width": 640, "height": 480}, {"id": 2, "width": 640, "height": 480}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 20000.0,
             "bbox": [100, 50, 120, 250], "num_keypoints": 17, "keypoints": ka.ravel().tolist()},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 20000.0,
             "bbox": [102, 52, 120, 250], "num_keypoints": 17, "keypoints": kb.ravel().tolist()},
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 20000.0,
             "bbox": [100, 50, 120, 250], "num_keypoints": 17, "keypoints": ka.ravel().tolist()}]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}

    def det(img, kp, score, shift):
        d = kp.copy()
        d[:, :2] += shift
        return {"image_id": img, "category_id": 1, "keypoints": d.ravel().tolist(), "score": score}

    results = [det(1, ka, 0.9, 1.8),  # closer to the crowd region than to person 1
               det(1, kb, 0.88, 0.3), det(1, kb, 0.87, -0.2),  # both inside the crowd region
               det(2, ka, 0.5, 6.0), det(2, ka, 0.2, 30.0)]
    ours = metrics.coco_keypoint_eval(gt, results)
    np.testing.assert_allclose(list(ours.values()), _pycocotools_stats(gt, results), atol=1e-12)
    assert ours["AR50"] == 1.0


def test_coco_keypoint_ap_perfect_and_unknown_image():
    gt, _ = _synthetic_coco(3)
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    s = metrics.coco_keypoint_eval(gt, perfect)
    np.testing.assert_allclose(list(s.values()), _pycocotools_stats(gt, perfect), atol=1e-12)
    assert s["AP"] == 1.0 and s["AR"] == 1.0
    with pytest.raises(metrics.MetricError, match="image_id 999"):
        metrics.coco_keypoint_eval(gt, [{"image_id": 999, "keypoints": [0] * 51, "score": 1}])


# ------------------------------------------------------------------------------------ 3D
def test_mpjpe_and_pck3d_hand_case():
    gt = np.zeros((1, 3, 3))
    pred = np.array([[[3, 4, 0], [0, 0, 0], [0, 0, 200]]], float)  # errors 5, 0, 200
    assert metrics.mpjpe(pred, gt) == pytest.approx(205 / 3)
    assert metrics.mpjpe(pred, gt, visible=[[True, True, False]]) == pytest.approx(2.5)
    assert metrics.pck3d(pred, gt, threshold=150) == pytest.approx(2 / 3)
    assert metrics.pck3d(pred, gt, threshold=4.9) == pytest.approx(1 / 3)


def test_pa_mpjpe_removes_a_similarity_transform():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 300, (2, 17, 3))
    r = transforms3d.euler.euler2mat(0.4, -0.9, 2.1)
    pred = 0.7 * gt @ r.T + np.array([100.0, -50.0, 2000.0])
    assert metrics.mpjpe(pred, gt) > 100
    assert metrics.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)


def test_pa_mpjpe_against_scipy_procrustes():
    rng = np.random.default_rng(1)
    gt = rng.normal(0, 300, (17, 3))
    r = transforms3d.euler.euler2mat(-0.3, 0.5, 1.2)
    pred = 1.3 * (gt + rng.normal(0, 40, gt.shape)) @ r.T + 500.0
    # scipy standardises both (centre, unit Frobenius norm) and rotates + scales pred onto gt
    m1, m2, _ = procrustes(gt, pred)
    gc = gt - gt.mean(0)
    aligned = m2 * np.linalg.norm(gc) + gt.mean(0)
    expected = np.linalg.norm(aligned - gt, axis=-1).mean()
    assert metrics.pa_mpjpe(pred, gt) == pytest.approx(expected, rel=1e-9)
    assert 10 < expected < 80


def test_pa_mpjpe_does_not_reflect():
    gt = np.random.default_rng(2).normal(0, 1, (10, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # a reflection is not a rotation: error stays (scipy's orthogonal Procrustes would give 0)
    assert procrustes(gt, mirrored)[2] == pytest.approx(0.0, abs=1e-12)
    assert metrics.pa_mpjpe(mirrored, gt) > 0.1


def test_bad_shapes_are_explained():
    with pytest.raises(metrics.MetricError, match=r"\(N, K, 3\)"):
        metrics.mpjpe(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(metrics.MetricError, match="differ"):
        metrics.pck(np.zeros((1, 3, 2)), np.zeros((1, 4, 2)), [1.0])
    assert get_layout("coco_17") is COCO_17
