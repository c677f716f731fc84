"""Multi-person defaults on real photos (skimage astronaut / camera and grids of them): every
person found once with the default settings (detector_tiles 3 + pyramid, keypoint-similarity
de-duplication), the detector batch of the pyramid, birth hysteresis, and tracking + smoothing
through PosePipeline."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_pipeline import CountingEngine, tiled

from conftest import photo
from pose_ros.core.models import blazepose as bp
from pose_ros.core.pipeline import PipelineConfig, PosePipeline, _Track


@pytest.fixture(scope="module")
def default_static(models):
    return PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True, max_persons=8))


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_one_person_is_reported_once(default_static, name):
    """The pyramid's tiles see each photo's person several times (astronaut: two crops whose
    out-of-image legs are guessed differently, and a crop hanging off the top edge)."""
    assert len(default_static.detect(photo(name))) >= 2  # duplicates do reach the landmarks
    assert len(default_static(photo(name))) == 1


@pytest.mark.parametrize("k", [2, 4])
def test_every_person_of_a_grid_once(default_static, k):
    img = tiled(k)
    found = default_static(img)
    assert len(found) == k
    cells = {(int(p.keypoints[0, 0] // 512), int(p.keypoints[0, 1] // 512)) for p in found}
    assert len(cells) == k  # one nose per photo of the grid


def test_pyramid_detector_batch(models):
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", static_image_mode=True))
    assert (pipe.cfg.detector_tiles, pipe.cfg.detector_pyramid) == (3, True)  # the defaults
    pipe.detector = CountingEngine(pipe.detector)
    img = photo("astronaut")  # 512 x 512: 2x2 grid -> 2 x 2 tiles, 3x3 -> 3 x 3
    pipe.detect(img)
    assert pipe.detector.batches == [1 + 4 + 9]
    assert len(bp.tile_rois(512, 512, 2)) == 4 and len(bp.tile_rois(512, 512, 3)) == 9


def test_birth_needs_more_presence_than_survival(models):
    img = photo("astronaut")
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", min_birth_presence=1.0))
    assert pipe(img, 0.0) == []  # presence ~0.99 < 1.0: not born
    pipe.cfg.min_birth_presence = 0.75
    first = pipe(img, 0.1)
    assert len(first) == 1
    pipe.cfg.min_birth_presence = 1.0  # a tracked person only needs min_presence
    assert [p.track_id for p in pipe(img, 0.2)] == [first[0].track_id]


def test_pipeline_smooths_keypoints_and_resets_on_time_jumps(models):
    """Tracking mode, the astronaut with 12 px of alternating horizontal shake: the smoothed
    nose moves far less than the raw one; the 2D filter is the tracker's (smoothing off: raw).
    (With 6 px the raw nose's own noise, ~3 px in the 1300 px crop the tracker settles on,
    decides whether the raw shake shows.)"""
    base = photo("astronaut")
    xs = {}
    for smoothing in (True, False):
        pipe = PosePipeline(PipelineConfig(backend="onnxruntime", smoothing=smoothing, detect_every=100))
        nose = []
        for n in range(12):
            shift = 12 if n % 2 else 0
            p = pipe(np.ascontiguousarray(np.roll(base, shift, axis=1)), n / 30)
            nose.append(p[0].keypoints[0, 0])
        xs[smoothing] = np.array(nose[4:])
    raw_shake = np.abs(np.diff(xs[False])).mean()
    smooth_shake = np.abs(np.diff(xs[True])).mean()
    assert raw_shake > 8.0 and smooth_shake < raw_shake / 2.5, (raw_shake, smooth_shake)
    first = pipe(base, 10.0)[0].track_id
    assert pipe(base, 5.0)[0].track_id != first and "backwards" in pipe.time_reset


def test_skeleton_squeezed_into_its_crop_is_dropped_and_refound(models):
    """A followed crop 4.7x too large for its person (the landmark model still says presence
    0.99, skeleton extent 0.18 of the crop side): not a person; the detector runs next frame and
    finds them with a crop that fits."""
    canvas = np.full((2048, 2048, 3), 128, np.uint8)
    canvas[768:1280, 768:1280] = photo("astronaut")
    pipe = PosePipeline(PipelineConfig(backend="onnxruntime", detect_every=100))
    pipe._tracks = [_Track(7, bp.Roi(1024.0, 1024.0, 2400.0, 0.0))]
    assert pipe(canvas, 0.0) == [] and not pipe.detector_ran
    found = pipe(canvas, 0.1)
    assert pipe.detector_ran and len(found) == 1
    assert 400 < found[0].roi.size < 1200


@pytest.mark.parametrize("code", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_a_turned_person_is_reported_once(default_static, code):
    """Turned by 90 degrees, a tile crop in the wrong orientation gives a second skeleton whose
    face sits near the real one (0.057 of the box diagonal): merged by the nose rule."""
    assert len(default_static(np.ascontiguousarray(cv2.rotate(photo("astronaut"), code)))) == 1


def test_3d_positions_are_smoothed_per_track(models):
    """PosePipeline.smooth_3d (the node calls it after lifting): a 0.1 m jump in 1/30 s with
    the defaults (1 Hz, beta 10, 1 Hz) -> by hand: a_d = 1 / (1 + 30 / 2pi) = 0.17317,
    speed 3 m/s -> 0.51951, fc = 6.1951 Hz, a = 1 / (1 + 30 / (2pi 6.1951)) = 0.56474."""
    img = photo("astronaut")
    for smoothing, want in ((True, 0.1 * 0.56474), (False, 0.1)):
        pipe = PosePipeline(PipelineConfig(backend="onnxruntime", smoothing=smoothing))
        first = pipe(img, 0.0)
        np.testing.assert_allclose(pipe.smooth_3d(first, [np.zeros((33, 3))])[0], 0.0)
        second = pipe(img, 1 / 30)
        assert second[0].track_id == first[0].track_id
        got = pipe.smooth_3d(second, [np.full((33, 3), 0.1)])[0]
        np.testing.assert_allclose(got, want, rtol=1e-4)
