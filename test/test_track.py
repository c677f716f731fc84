"""core/track.py: the 1-Euro filter against hand-computed steps and scipy's IIR filter, and the
tracker on scripted synthetic scenes (crossings, occlusions, jitter, clock jumps)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.signal import lfilter

from pose_ros.core.metrics import layout_sigmas
from pose_ros.core.pipeline import TrackIds
from pose_ros.core.skeletons import BLAZEPOSE_33
from pose_ros.core.track import (
    Observation,
    OneEuroFilter,
    Tracker,
    TrackerConfig,
    appearance_similarity,
    torso_histogram,
)

FPS = 30.0
SIGMAS = layout_sigmas(BLAZEPOSE_33)
# a fixed 33-joint stick figure, 60 x 200 px, origin at its box centre
TEMPLATE = np.random.default_rng(7).uniform([-30, -100], [30, 100], (33, 2))
TEMPLATE[11], TEMPLATE[12], TEMPLATE[23], TEMPLATE[24] = (-20, -60), (20, -60), (-15, 0), (15, 0)
COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (220, 220, 30)]


# ------------------------------------------------------------------------------ 1-Euro filter
def test_one_euro_matches_hand_computed_steps():
    # min_cutoff 1 Hz, beta 0.5, d_cutoff 1 Hz; x = 0, 1, 1.5, 1.5 at t = 0, 0.1, 0.2, 0.25 s.
    # Step 1 by hand: a_d = 1 / (1 + (1 / 2pi) / 0.1) = 0.385870; dx = 10 -> dx_hat = 3.85870;
    # fc = 1 + 0.5 * 3.85870 = 2.92935 Hz; a = 1 / (1 + 1 / (2pi 2.92935 0.1)) = 0.647957;
    # x_hat = 0.647957 * 1. Steps 2, 3 the same way (calculator).
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    out = [float(f(np.array([x]), t)[0]) for x, t in zip((0, 1, 1.5, 1.5), (0, 0.1, 0.2, 0.25), strict=True)]
    assert out == pytest.approx([0.0, 0.6479571696, 1.2498170951, 1.3851469394], abs=1e-9)
    # a repeated stamp returns the last output; a NaN element passes through
    assert float(f(np.array([9.0]), 0.25)[0]) == pytest.approx(1.3851469394)
    assert np.isnan(f(np.array([np.nan]), 0.3)[0])


def test_one_euro_with_beta_zero_is_a_first_order_lowpass():
    """beta = 0: y[n] = a x[n] + (1 - a) y[n-1], a fixed: scipy.signal.lfilter is the oracle."""
    te, fc = 1 / FPS, 2.0
    a = 1 / (1 + 1 / (2 * math.pi * fc * te))
    x = np.random.default_rng(0).normal(size=(60, 3, 2))
    f = OneEuroFilter(min_cutoff=fc, beta=0.0, d_cutoff=1.0)
    got = np.stack([f(x[n], n * te) for n in range(len(x))])
    want, _ = lfilter([a], [1, -(1 - a)], x[1:], axis=0, zi=((1 - a) * x[0])[None])
    np.testing.assert_allclose(got[0], x[0])
    np.testing.assert_allclose(got[1:], want, atol=1e-12)


def test_one_euro_speed_raises_the_cutoff_and_scale_normalises_it():
    ramp = [(np.array([100.0 * n]), n / FPS) for n in range(30)]  # 3000 px/s
    slow, fast, big = OneEuroFilter(1, 0), OneEuroFilter(1, 0.05), OneEuroFilter(1, 0.05)
    lag = {k: [] for k in ("slow", "fast", "big")}
    for x, t in ramp:
        lag["slow"].append(x[0] - slow(x, t)[0])
        lag["fast"].append(x[0] - fast(x, t)[0])
        lag["big"].append(x[0] - big(x, t, scale=10.0)[0])
    assert lag["fast"][-1] < 0.2 * lag["slow"][-1]  # beta: little lag when moving fast
    assert lag["fast"][-1] < lag["big"][-1] < lag["slow"][-1]  # scale 10: the speed counts 10x less


# ---------------------------------------------------------------------------- scripted scenes
def skeleton(cx: float, cy: float) -> np.ndarray:
    return TEMPLATE + (cx, cy)


def observe(points: np.ndarray, image: np.ndarray | None = None, rng=None, noise: float = 0.0):
    kp = points + (rng.normal(0, noise, points.shape) if noise else 0.0)
    app = torso_histogram(image, kp[[11, 12, 23, 24]]) if image is not None else None
    return Observation(kp, np.ones(33, bool), np.r_[kp.min(0), kp.max(0)], app)


def render(people: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """A grey 640 x 480 frame with each visible person's torso painted in their colour."""
    img = np.full((480, 640, 3), 128, np.uint8)
    for pts, who in people:
        t = pts[[11, 12, 23, 24]]
        cv2.rectangle(img, tuple(int(v) for v in t.min(0)), tuple(int(v) for v in t.max(0)),
                      COLOURS[who], -1)
    return img


def run(scene, cfg=None, colour=True, seed=0, noise=1.0):
    """scene(frame) -> [(gt person index, (33, 2) points)] of the people seen in that frame.
    Returns {gt: [ids over the frames it was reported]} and the tracker."""
    trk = Tracker(TrackIds(seed), SIGMAS, cfg or TrackerConfig())
    rng = np.random.default_rng(seed)
    seen: dict[int, list[int]] = {}
    for n in range(90):
        people = scene(n)
        img = render([(p, g) for g, p in people]) if colour else None
        ids = trk.update([observe(p, img, rng, noise) for _g, p in people], n / FPS)
        for (g, _p), i in zip(people, ids, strict=True):
            if i:
                seen.setdefault(g, []).append(i)
    return seen, trk


def switches(seen: dict[int, list[int]]) -> int:
    """Id switches: changes of a person's id plus ids shared by two people."""
    n = sum(sum(a != b for a, b in zip(ids, ids[1:], strict=False)) for ids in seen.values())
    owners: dict[int, set] = {}
    for g, ids in seen.items():
        for i in ids:
            owners.setdefault(i, set()).add(g)
    return n + sum(len(o) - 1 for o in owners.values())


def crossing(n):  # two people walk through each other at frame 45, 4 px/frame
    return [(0, skeleton(140 + 4 * n, 240)), (1, skeleton(500 - 4 * n, 250))]


def crossing_occluded(n):  # ... and the one behind is hidden for frames 38..57
    people = crossing(n)
    return people[:1] if 38 <= n < 58 else people


def pillar(n):  # person 0 walks behind a pillar (hidden 25 frames > max_misses); 1 stands
    people = [(1, skeleton(520, 240))]
    if not 30 <= n < 55:
        people.append((0, skeleton(60 + 3 * n, 240)))
    return people


def walk_past(n):  # 0 hidden frames 30..69; 1 walks through 0's last place meanwhile
    people = [] if 30 <= n < 70 else [(0, skeleton(200, 240))]
    people.append((1, skeleton(600 - 7 * n, 245)))
    return people


def fast_hidden(n):  # 0 runs at 20 px/frame, hidden frames 40..45 (fewer than max_misses)
    people = [(1, skeleton(560, 240))]
    if not 40 <= n < 46:
        people.append((0, skeleton(-200 + 20 * n, 240)))
    return people


def impostor(n):  # 0 leaves at frame 30; from frame 50 someone else stands on their spot
    return [(0, skeleton(200, 240))] if n < 30 else [(2, skeleton(200, 240))] if n >= 50 else []


@pytest.mark.parametrize("scene", [crossing, crossing_occluded, pillar, walk_past, fast_hidden])
@pytest.mark.parametrize("colour", [True, False])
def test_no_id_switches_on_scripted_scenes(scene, colour):
    seen, _ = run(scene, colour=colour)
    assert switches(seen) == 0, seen
    assert len(seen) == 2 and all(len(v) > 40 for v in seen.values())


def test_torso_colour_keeps_an_impostor_from_taking_a_lost_id():
    """Someone else standing where a lost person was: by position alone they inherit the
    lost id (the documented limit without images); the torso colour tells them apart."""
    seen, _ = run(impostor, colour=True)
    assert set(seen[2]).isdisjoint(seen[0]) and switches(seen) == 0
    blind, _ = run(impostor, colour=False)
    assert blind[2][0] == blind[0][0]


def test_birth_after_min_hits_and_one_frame_fragments_get_no_id():
    cfg = TrackerConfig(track_min_hits=3)
    trk = Tracker(TrackIds(1), SIGMAS, cfg)
    rng = np.random.default_rng(0)
    out = []
    for n in range(6):
        obs = [observe(skeleton(200 + 2 * n, 240), rng=rng)]
        if n == 2:
            obs.append(observe(skeleton(500, 100), rng=rng))  # a one-frame fragment
        out.append(trk.update(obs, n / FPS))
    assert [o[0] for o in out[:2]] == [0, 0] and out[2][0] != 0
    assert len({o[0] for o in out[2:]}) == 1 and out[2][1] == 0
    assert len(trk.tracks) == 1  # the fragment's tentative track died at its first miss


def leg_piece(points: np.ndarray) -> np.ndarray:
    """A whole skeleton squeezed into the lower 60 % of a person's box (what the landmark model
    invents on a crop of someone's legs): the template scaled by (0.9, 0.6), box inside."""
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return TEMPLATE * (0.9, 0.6) + ((x0 + x1) / 2, y1 - 0.3 * (y1 - y0) - 1)


def with_pieces(n):
    """Person 0 walks right; a leg piece of them shows up alone in frames 20, 40 and 41
    (hint: the pipeline's fresh detector candidates); from frame 60 a real newcomer, person 1,
    steps out from behind 0 (inside 0's box at first) and walks left."""
    a = skeleton(150 + 3 * n, 240)
    people = [(0, a)]
    if n in (20, 40, 41):
        people.append((3, leg_piece(a)))
    if n >= 60:
        people.append((1, skeleton(150 + 3 * n - 4 * (n - 60), 245)))
    return people


@pytest.mark.parametrize("colour", [True, False])
def test_a_piece_of_a_tracked_person_gets_no_id_but_a_newcomer_does(colour):
    """The cause of the third id on the two-person video (crowded profile without refinement):
    a leg crop of a tracked person, 0.97 inside their box, survived de-duplication for one
    frame and was born at once (track_min_hits 1). Nested in a tracked person's box, a newcomer
    needs Tracker.NESTED_MIN_HITS frames: pieces (1-2 frames) get no id, a real person emerging
    from behind someone gets theirs 2 frames later than track_min_hits alone would give."""
    a = skeleton(210, 240)
    assert np.all(np.r_[leg_piece(a).min(0), leg_piece(a).max(0)][:2] > a.min(0))
    seen, _ = run(with_pieces, colour=colour)
    assert 3 not in seen, seen  # the piece never got an id
    assert len(set(seen[0])) == 1 and len(set(seen[1])) == 1 and switches(seen) == 0, seen
    assert len(seen[1]) == 30 - (Tracker.NESTED_MIN_HITS - 1)  # born on its NESTED_MIN_HITS-th frame
    # away from anybody a newcomer is still born at once (track_min_hits 1)
    alone, _ = run(lambda n: [(0, skeleton(150, 240))] + ([(1, skeleton(500, 240))] if n >= 60 else []),
                   colour=colour)
    assert len(alone[1]) == 30


def second_skeleton(a: np.ndarray) -> np.ndarray:
    """A second, tilted skeleton of the person ``a`` (what a fresh detection whose crop sits
    differently gave on the soak scene): rotated 12 degrees about the hips and shifted 12 px,
    so its box overlaps ``a``'s by IoU >= 0.5 while its joints disagree."""
    c = a[[23, 24]].mean(0)
    r = np.deg2rad(12.0)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    return (a - c) @ rot.T + c + (12.0, 0.0)


def test_a_second_skeleton_of_a_tracked_person_gets_no_id():
    """Soak scene, before the IoU rule: a detection frame gave one tracked person a second,
    tilted skeleton (box IoU 0.68) that de-duplication let through; it was born at once, then
    lost, re-identified and swapped with the real track (20 ids for 11 appearances). Overlapping
    a tracked person's box by IoU >= Tracker.NESTED_IOU, a newcomer needs NESTED_MIN_HITS."""
    from pose_ros.core.dedupe import containment
    from pose_ros.core.models.blazepose import box_iou

    a = skeleton(300, 240)
    b = second_skeleton(a)
    box = lambda p: np.r_[p.min(0), p.max(0)]  # noqa: E731
    iou = box_iou(box(a)[None], box(b)[None])[0, 0]
    assert iou >= Tracker.NESTED_IOU and containment(box(b), box(a)) < Tracker.NESTED_CONTAINED, iou
    seen, _ = run(lambda n: [(0, a)] + ([(3, b)] if n in (20, 40, 41) else []))
    assert 3 not in seen and len(set(seen[0])) == 1, seen
    # someone who stays there (a person stepping out from behind) is born on their NESTED_MIN_HITS-th frame
    stay, _ = run(lambda n: [(0, a)] + ([(1, b)] if n >= 60 else []))
    assert len(stay[1]) == 30 - (Tracker.NESTED_MIN_HITS - 1) and switches(stay) == 0, stay


def test_a_skeleton_invented_on_a_tracked_persons_head_gets_no_id():
    """Soak scene: a tile showing a tracked person's head gave a small skeleton there (77 x 57
    px) for 3 frames. It sticks out above the person's keypoint box (the keypoints stop at the
    eyes): 0.39 inside that box, all inside the box grown by dedupe.PERSON_MARGIN, so it is
    held tentative. The same small skeleton away from anybody is born at once."""
    from pose_ros.core.dedupe import containment

    a = skeleton(300, 240)
    top = a[:, 1].min()
    box = lambda p: np.r_[p.min(0), p.max(0)]  # noqa: E731
    tiny = TEMPLATE * 0.25
    head = tiny - (box(tiny)[:2] + box(tiny)[2:]) / 2 + (a[0, 0], top)  # centred on the box's top edge
    assert containment(box(head), box(a)) < 0.6 and box(head)[1] < top
    seen, _ = run(lambda n: [(0, a)] + ([(3, head)] if 20 <= n < 23 else []))
    assert 3 not in seen and len(set(seen[0])) == 1, seen
    alone, _ = run(lambda n: [(0, a)] + ([(3, head + (250, 0))] if 20 <= n < 23 else []))
    assert len(alone[3]) == 3, alone


def test_reid_survives_guessed_legs_and_a_flicker_but_not_another_size():
    """1080p load scene: re-identification refused a re-found person whose guessed legs made the
    box 2x taller (size ratio on the diagonal alone), and one whose last frames flickered (the
    velocity left behind moved the predicted position 1.5 box diagonals away). Now the width or
    the height may agree, and the last-seen position counts too. Someone twice as large in both
    directions on the same spot is still someone else (no colour: position and size only)."""
    cfg = TrackerConfig(track_max_misses=2, track_reid_time=5.0)
    a = skeleton(300, 240)

    def seen(p: np.ndarray) -> Observation:
        return observe(p, render([(p, 0)]))  # with the torso colour, as in the pipeline

    def lost_then(found: np.ndarray, flicker: bool = False) -> bool:
        trk = Tracker(TrackIds(9), SIGMAS, cfg)
        first = trk.update([seen(a)], 0.0)[0]
        trk.update([seen(a + ((150, 0) if flicker else (0, 0)))], 1 / FPS)  # a jump: large velocity
        for n in range(2, 6):
            trk.update([], n / FPS)
        assert trk.lost and not trk.tracks
        return trk.update([seen(found)], 6 / FPS)[0] == first

    legs = a.copy()
    legs[25:, 1] += 2.0 * np.ptp(a[:, 1])  # knees and feet guessed two body heights lower
    box = lambda p: np.r_[p.min(0), p.max(0)]  # noqa: E731
    d = lambda b: float(np.hypot(*(b[2:] - b[:2])))  # noqa: E731
    assert d(box(legs)) / d(box(a)) > Tracker.REID_SIZE_RATIO
    assert lost_then(legs)
    assert lost_then(a, flicker=True)
    centre = a.mean(0)
    assert not lost_then(centre + (a - centre) * 2.2)


def test_the_tracker_compares_the_joints_a_person_shows():
    """pipeline.seen_box: the box of the keypoints with visibility > 0.5 (hand-computed here),
    the full box when fewer than 4 are visible."""
    from pose_ros.core.pipeline import seen_box

    kp = np.array([[10, 20], [30, 5], [50, 60], [40, 40], [500, 900]], np.float32)
    full = np.array([10, 5, 500, 900], np.float32)
    np.testing.assert_array_equal(seen_box(kp, np.array([1, 1, 1, 1, 0.2]), full), [10, 5, 50, 60])
    np.testing.assert_array_equal(seen_box(kp, np.array([1, 1, 1, 0.4, 0.2]), full), full)


def test_frames_a_busy_node_skipped_are_not_a_stalled_camera():
    """stale_after 1 s; the node processed frames at t = 10.0 and 11.6 s but the camera sent
    frames all along (the one before 11.6 s had stamp 11.5 s): no reset. A real stall (the
    frame before was the one at 10.0 s) and a stamp going backwards still reset."""
    obs = [observe(skeleton(200, 240))]
    for previous, resets in ((11.5, 0), (None, 1), (10.0, 1), (10.5, 1)):
        trk = Tracker(TrackIds(6), SIGMAS, TrackerConfig(stale_after=1.0))
        first = trk.update(obs, 10.0)[0]
        assert trk.check_time(11.6, previous) == trk.last_reset
        assert trk.resets == resets, (previous, trk.last_reset)
        assert (trk.update(obs, 11.6)[0] == first) == (resets == 0)
    trk = Tracker(TrackIds(7), SIGMAS, TrackerConfig(stale_after=1.0))
    trk.update(obs, 10.0)
    assert "backwards" in trk.check_time(9.5, 9.4) and trk.resets == 1


def test_death_after_max_misses_then_a_new_id_without_reid():
    cfg = TrackerConfig(track_max_misses=3, track_reid_time=0.0)
    trk = Tracker(TrackIds(2), SIGMAS, cfg)
    a = trk.update([observe(skeleton(200, 240))], 0.0)[0]
    for n in range(1, 4):  # 3 misses: still alive, its id comes back
        trk.update([], n / FPS)
    assert trk.update([observe(skeleton(200, 240))], 4 / FPS) == [a]
    for n in range(5, 9):  # 4 misses: dead, and re-identification is off
        trk.update([], n / FPS)
    b = trk.update([observe(skeleton(200, 240))], 9 / FPS)[0]
    assert b not in (0, a)


@pytest.mark.parametrize("jump", ["backwards", "stale"])
def test_time_jumps_reset_tracks_and_filters(jump):
    cfg = TrackerConfig(stale_after=1.0)
    trk = Tracker(TrackIds(3), SIGMAS, cfg)
    obs = observe(skeleton(200, 240))
    first = trk.update([obs], 100.0)[0]
    assert trk.update([obs], 100.5)[0] == first and trk.last_reset is None
    trk.smooth(first, obs.keypoints, scale=200)
    t = 99.0 if jump == "backwards" else 102.0
    after = trk.update([obs], t)[0]
    assert after not in (0, first) and trk.resets == 1
    assert ("backwards" if jump == "backwards" else "stale_after") in trk.last_reset
    # the filters restarted with the tracks: the first sample passes unfiltered
    moved = obs.keypoints + 5.0
    np.testing.assert_allclose(trk.smooth(after, moved, scale=200), moved)


def jitter(cfg: TrackerConfig, speed: float, noise: float = 3.0):
    """A person (60 x 200 px) walking at ``speed`` px/s with Gaussian keypoint noise (sigma
    ``noise`` px) at 30 fps, 4 s. Returns (RMS error raw / smoothed, frame-to-frame jitter
    raw / smoothed (RMS of the second difference of the error), mean x lag of the smoothed
    keypoints in px)."""
    trk = Tracker(TrackIds(4), SIGMAS, cfg)
    rng = np.random.default_rng(5)
    raw, smooth = [], []
    for n in range(120):
        t = n / FPS
        truth = skeleton(100 + speed * t, 240)
        o = observe(truth, rng=rng, noise=noise)
        i = trk.update([o], t)[0]
        s = trk.smooth(i, o.keypoints, scale=float(np.hypot(*(o.bbox[2:] - o.bbox[:2]))))
        if n >= 10:
            raw.append(o.keypoints - truth)
            smooth.append(s - truth)
    raw, smooth = np.array(raw), np.array(smooth)
    rms = lambda e: float(np.sqrt(np.mean(np.square(e))))  # noqa: E731
    return (rms(raw) / rms(smooth), rms(np.diff(raw, 2, axis=0)) / rms(np.diff(smooth, 2, axis=0)),
            -float(np.mean(smooth[..., 0])))


def test_smoothing_reduces_jitter_with_little_lag():
    """Defaults (min_cutoff 1 Hz, beta 10, d_cutoff 1 Hz), 3 px noise. Measured: standing:
    error / 2.1, jitter / 5.0; walking 100 px/s: error / 1.36, jitter / 2.4, lag 1.7 px;
    300 px/s: error / 1.12, jitter / 1.85, lag 2.4 px."""
    err, jit, _ = jitter(TrackerConfig(), 0.0)
    assert err >= 2.0 and jit >= 4.0
    err, jit, lag = jitter(TrackerConfig(), 100.0)
    assert err >= 1.25 and jit >= 2.0 and lag < 2.5
    err, jit, lag = jitter(TrackerConfig(), 300.0)
    assert err >= 1.0 and jit >= 1.5 and lag < 3.5
    assert jitter(TrackerConfig(smoothing=False), 100.0)[:2] == pytest.approx((1.0, 1.0))  # off


def test_appearance_histograms():
    red = render([(skeleton(200, 240), 0)])
    blue = render([(skeleton(200, 240), 1)])
    pts = skeleton(200, 240)[[11, 12, 23, 24]]
    hr, hb = torso_histogram(red, pts), torso_histogram(blue, pts)
    assert hr.shape == (128,) and hr.sum() == pytest.approx(1.0)
    assert appearance_similarity(hr, hr) == pytest.approx(1.0)
    assert appearance_similarity(hr, hb) < 0.1
    assert torso_histogram(red, np.array([[700.0, 10], [720, 30]])) is None  # off the image


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="smoothing_min_cutoff must be > 0"):
        TrackerConfig(smoothing_min_cutoff=0.0).validate()
    with pytest.raises(ValueError, match="track_min_hits must be >= 1"):
        TrackerConfig(track_min_hits=0).validate()
