"""core/refine.py: re-cropping new detections from their own landmarks and the self-consistency
score, on a constructed photo pair with known faces (the mirrored astronaut and the astronaut
side by side: noses at MediaPipe's published (222.7, 128.0) and its mirror image) and against
the OKS formula by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_pipeline import MEDIAPIPE_REF, CountingEngine, tiled

from pose_ros.core import pipeline
from pose_ros.core.dedupe import dedupe
from pose_ros.core.metrics import layout_sigmas
from pose_ros.core.models import blazepose as bp
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.refine import consistency, refine
from pose_ros.core.skeletons import BLAZEPOSE_33

SIG = layout_sigmas(BLAZEPOSE_33)
NOSE_X, NOSE_Y = MEDIAPIPE_REF["astronaut"][0]
NOSES = np.array([[512 - NOSE_X, NOSE_Y], [512 + NOSE_X, NOSE_Y]])  # tiled(2): mirrored, original


def test_consistency_is_oks_by_hand():
    """Every joint moved by 10 px; scale = the previous skeleton's box, 100 x 200 px:
    OKS = mean_k exp(-d^2 / (2 s (2 sigma_k)^2)), s = 20000 px^2."""
    rng = np.random.default_rng(0)
    prev = rng.uniform([0, 0], [100, 200], (33, 2))
    prev[0], prev[1] = (0, 0), (100, 200)  # box exactly 100 x 200
    cur = prev + (6.0, 8.0)  # 10 px
    want = np.mean([math.exp(-100.0 / (2 * 20000.0 * (2 * s) ** 2)) for s in SIG])
    assert consistency(prev, cur, SIG) == pytest.approx(want, rel=1e-9)
    assert consistency(prev, prev, SIG) == pytest.approx(1.0)
    assert consistency(prev, cur + 500, SIG) < 1e-6


@pytest.fixture(scope="module")
def pipe(models):
    return PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, detector_tiles=0,
                                       max_persons=8))


def test_a_crop_between_two_people_moves_onto_one_of_them(pipe):
    """A detector-sized crop centred on the seam between the two photos: the landmark model
    puts a face between the two real ones (> 100 px from both) and the skeleton changes when
    re-cropped (consistency < 0.5); two passes of re-cropping from the model's own landmarks
    put the nose on a real face (< 8 px) with a stable skeleton (consistency > 0.8). A crop
    on one person is consistent from the first pass."""
    img = tiled(2)
    seam = pipe.landmarks(img, [bp.Roi(512.0, 376.0, 680.0, 0.0)])
    d0 = np.linalg.norm(NOSES - seam[0].keypoints[0, :2], axis=1)
    assert d0.min() > 100, d0
    (p1, c1), (p2, c2) = refine(pipe.landmarks, img, seam, SIG, 2)[0]
    assert c1 < 0.5 and c2 > 0.8, (c1, c2)
    assert np.linalg.norm(NOSES - p2.keypoints[0, :2], axis=1).min() < 8.0
    on_person = pipe.landmarks(img, [bp.Roi(320.0, 376.0, 680.0, 0.0)])
    assert refine(pipe.landmarks, img, on_person, SIG, 1)[0][0][1] > 0.8
    assert refine(pipe.landmarks, img, seam, SIG, 0) == [[(seam[0], 1.0)]]  # off: pass 0 as is


def test_pipeline_refines_new_people_in_one_call_per_pass(models):
    """Static mode on the pair: both people found once, noses on the known faces, three
    batched landmark calls (detector crops + 2 re-crops)."""
    counting = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, detector_tiles=0,
                                           max_persons=8))
    counting.landmarker = CountingEngine(counting.landmarker)
    found = counting(tiled(2))
    assert counting.landmarker.batches == [2, 2, 2]
    noses = sorted(p.keypoints[0, 0] for p in found)
    np.testing.assert_allclose(noses, NOSES[:, 0], atol=8.0)


def detection_for(roi: bp.Roi) -> bp.Detection:
    """A detector hit whose crop (roi_from_detection) is the upright ``roi``."""
    kp = np.array([[roi.cx, roi.cy], [roi.cx, roi.cy - roi.size / (2 * bp.ROI_SCALE)], [0.0, 0.0], [0.0, 0.0]])
    det = bp.Detection(np.zeros(4), kp, 0.9)
    r = bp.roi_from_detection(det)
    assert (r.cx, r.cy, r.size, r.angle) == pytest.approx((roi.cx, roi.cy, roi.size, roi.angle))
    return det


def test_the_consistent_pass_is_kept_and_scored_by_its_consistency(pipe, monkeypatch):
    """The detector proposes one crop of the right-hand astronaut, shifted 160 px towards the
    seam: its two re-cropped passes (one person, merged) are ranked by consistency, the stable
    one is kept, its nose is on the known face and score = presence x consistency. A crop whose
    own presence is below min_birth_presence (the seam crop, 0.15) is not re-cropped: debris can
    be re-cropped into a confident "person"."""
    img = tiled(2)
    crop = bp.Roi(576.0, 376.0, 680.0, 0.0)
    monkeypatch.setattr(pipe, "detect", lambda image, tiles=True: [detection_for(crop)])
    ranks = []

    def spy(*args, **kwargs):
        ranks.append(kwargs["rank"])
        return dedupe(*args, **kwargs)

    monkeypatch.setattr(pipeline, "dedupe", spy)
    first = pipe.landmarks(img, [crop])
    assert first[0].score >= pipe.cfg.min_birth_presence
    (p1, c1), (p2, c2) = refine(pipe.landmarks, img, first, SIG, 2)[0]
    assert c1 < c2 - 0.1, (c1, c2)
    found = pipe(img)
    assert ranks == [pytest.approx([c1, c2])]  # new candidates are ranked by consistency
    assert len(found) == 1
    np.testing.assert_allclose(found[0].keypoints, p2.keypoints[:33, :2], atol=1e-3)
    assert found[0].score == pytest.approx(p2.score * c2, rel=1e-5)
    assert np.linalg.norm(NOSES - found[0].keypoints[0], axis=1).min() < 8.0
    seam = bp.Roi(512.0, 376.0, 680.0, 0.0)
    assert pipe.landmarks(img, [seam])[0].score < pipe.cfg.min_birth_presence
    monkeypatch.setattr(pipe, "detect", lambda image, tiles=True: [detection_for(seam)])
    assert pipe(img) == []


def test_pose_node_refine_passes_parameter(models):
    """pose_node's refine_passes (default 2 = PipelineConfig's = the CLI's) reaches the pipeline
    at start-up and at run time; out of range (0..4) is refused. Real node, real DDS."""
    from rclpy.parameter import Parameter
    from test_node import Harness

    from pose_ros.cli import build_parser
    from pose_ros.ros.pose_node import PARAMS

    default = PipelineConfig().refine_passes
    assert default == 2 == next(p.default for p in PARAMS if p.name == "refine_passes")
    assert build_parser().parse_args(["infer", "x.png"]).refine_passes == default
    h = Harness(refine_passes=1)
    try:
        assert h.until(lambda: h.node.pipeline is not None, send=h.send, timeout=30)
        assert h.node.pipeline.cfg.refine_passes == 1
        assert h.node.set_parameters([Parameter("refine_passes", value=0)])[0].successful
        assert h.node.pipeline.cfg.refine_passes == 0
        assert not h.node.set_parameters([Parameter("refine_passes", value=7)])[0].successful
        assert h.node.pipeline.cfg.refine_passes == 0
    finally:
        h.close()


def test_a_fresh_detection_of_a_tracked_person_is_not_recropped(models):
    """Tracking mode, detector on every frame: the first frame re-crops the new person (3
    landmark calls); later, the detector's new crop of the same, tracked person is merged
    without re-cropping (1 call: tracked crop + detection)."""
    from conftest import photo

    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", detector_tiles=0, detect_every=1))
    pipe.landmarker = CountingEngine(pipe.landmarker)
    img = photo("astronaut")
    first = pipe(img, 0.0)
    assert pipe.landmarker.batches == [1, 1, 1]
    second = pipe(img, 1 / 30)
    assert pipe.detector_ran and pipe.landmarker.batches[3:] == [2]
    assert [p.track_id for p in second] == [p.track_id for p in first]
