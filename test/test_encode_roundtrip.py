"""core/encode.py against hand values (Gaussian and PAF pixels written out), then round trips:
synthetic people -> Gaussian heatmaps + PAFs -> PafDecoder -> every keypoint within 0.5 px and
every person grouped correctly (far apart, close, crossing limbs; OpenPose COCO-18 with its
POSE_MAP_INDEX channel order, BODY_25 and trt_pose topologies), plus SimCC and volumetric."""
from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core import decode, encode
from pose_ros.core.skeletons import BODY_25, OPENPOSE_18, PAF_CHANNELS, TRT_POSE_18

# A standing person in heatmap pixels (x right, y down) relative to the neck, by joint name.
_TEMPLATE = {
    "nose": (0, -7), "neck": (0, 0), "right_shoulder": (-6, 0), "right_elbow": (-9, 9),
    "right_wrist": (-10, 17), "left_shoulder": (6, 0), "left_elbow": (9, 9), "left_wrist": (10, 17),
    "right_hip": (-4, 17), "right_knee": (-4, 27), "right_ankle": (-4, 37), "left_hip": (4, 17),
    "left_knee": (4, 27), "left_ankle": (4, 37), "right_eye": (-2, -9), "left_eye": (2, -9),
    "right_ear": (-4, -8), "left_ear": (4, -8), "mid_hip": (0, 17), "left_big_toe": (7, 39),
    "left_small_toe": (9, 38), "left_heel": (3, 39), "right_big_toe": (-7, 39),
    "right_small_toe": (-9, 38), "right_heel": (-3, 39),
}


def person(layout, neck_xy, rng, scale=1.0, overrides=None):
    p = np.array([_TEMPLATE[n] for n in layout.names], np.float64) * scale + neck_xy
    p += rng.uniform(-0.5, 0.5, p.shape)  # non-integer positions
    for name, xy in (overrides or {}).items():
        p[layout.index(name)] = xy
    return p


def to_model_channels(pafs, layout):
    """Our encoder writes limb l at (2l, 2l+1); reorder into the model's channel order."""
    order = PAF_CHANNELS.get(layout.name)
    if order is None:
        return pafs
    out = np.zeros_like(pafs)
    for li, (cx, cy) in enumerate(order):
        out[cx], out[cy] = pafs[2 * li], pafs[2 * li + 1]
    return out


def roundtrip(layout, people, size, sigma=1.5, width=1.0, **kw):
    hm = encode.gaussian_heatmaps(people, size, sigma)
    pafs = to_model_channels(encode.paf_fields(people, layout.limbs, size, width), layout)
    return decode.PafDecoder(layout, **kw)(hm, pafs)


def assert_recovered(found, people, tol=1e-3):
    """Every person found once with all joints. The issue asks for 0.5 px; log-parabola
    refinement of exact Gaussians gives ~1e-7 px, so 1e-3 px also catches sub-pixel bugs."""
    assert len(found) == len(people), f"{len(found)} people decoded, {len(people)} encoded"
    matched = set()
    for q in found:
        d = np.linalg.norm(people - q.xy[None], axis=-1)  # (N, K), NaN where q lacks a joint
        n = int(np.nanargmin(np.nanmean(d, axis=1)))
        assert n not in matched, "two decoded people claim the same person"
        matched.add(n)
        assert np.isfinite(q.xy).all(), f"person {n} misses joints {np.nonzero(~np.isfinite(q.xy[:, 0]))[0]}"
        assert d[n].max() <= tol, f"person {n}: worst joint error {d[n].max():.3f} px"


# ------------------------------------------------------------------------ encoder oracles
def test_gaussian_heatmap_hand_values():
    hm = encode.gaussian_heatmaps(np.array([[[3.4, 2.2]], [[6.0, 2.0]]]), (5, 9), sigma=1.0)
    assert hm.shape == (1, 5, 9) and hm.dtype == np.float32
    # pixel (x=3, y=2): exp(-(0.4^2 + 0.2^2) / 2) = exp(-0.1)
    assert hm[0, 2, 3] == pytest.approx(np.exp(-0.1), rel=1e-6)
    # pixel (x=5, y=2): max(exp(-(1.6^2 + 0.2^2)/2), exp(-(1^2)/2)) = exp(-0.5)
    assert hm[0, 2, 5] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert hm[0, 2, 6] == pytest.approx(1.0)
    # invisible joints leave the map empty
    assert encode.gaussian_heatmaps(np.array([[3.0, 2.0]]), (5, 9), visible=[False]).max() == 0


def test_paf_hand_values_and_averaging():
    limbs = [(0, 1)]
    # horizontal limb (2, 5) -> (12, 5), half-width 1
    f = encode.paf_fields(np.array([[2.0, 5.0], [12.0, 5.0]]), limbs, (11, 15), width=1.0)
    assert f.shape == (2, 11, 15)
    np.testing.assert_array_equal(f[:, 5, 7], [1, 0])
    np.testing.assert_array_equal(f[:, 6, 7], [1, 0])  # 1 px off the axis: inside
    np.testing.assert_array_equal(f[:, 7, 7], [0, 0])  # 2 px: outside
    np.testing.assert_array_equal(f[:, 5, 1], [0, 0])  # before a
    np.testing.assert_array_equal(f[:, 5, 13], [0, 0])  # beyond b
    np.testing.assert_array_equal(f[:, 5, 12], [1, 0])  # at b
    # a second person's vertical limb through (7, 5): the crossing pixel holds the mean (0.5, 0.5)
    two = np.array([[[2.0, 5.0], [12.0, 5.0]], [[7.0, 0.0], [7.0, 10.0]]])
    f2 = encode.paf_fields(two, limbs, (11, 15), width=1.0)
    np.testing.assert_allclose(f2[:, 5, 7], [0.5, 0.5])
    np.testing.assert_allclose(f2[:, 2, 7], [0, 1])
    np.testing.assert_allclose(f2[:, 5, 3], [1, 0])


# --------------------------------------------------------------------------- round trips
def test_roundtrip_three_people_far_apart():
    rng = np.random.default_rng(1)
    people = np.stack([person(OPENPOSE_18, (20.2, 12.4), rng), person(OPENPOSE_18, (55.7, 14.1), rng),
                       person(OPENPOSE_18, (92.3, 13.6), rng, scale=1.2)])
    assert_recovered(roundtrip(OPENPOSE_18, people, (64, 112)), people)


def test_roundtrip_close_people():
    # shoulders 4 px apart between neighbours, hands overlapping the next person's arm
    rng = np.random.default_rng(2)
    people = np.stack([person(OPENPOSE_18, (x, 12.0), rng) for x in (20.0, 36.3, 52.8)])
    gap = people[1, OPENPOSE_18.index("right_shoulder"), 0] - people[0, OPENPOSE_18.index("left_shoulder"), 0]
    assert gap < 6
    assert_recovered(roundtrip(OPENPOSE_18, people, (56, 76)), people)


def test_roundtrip_crossing_limbs():
    # person A's left forearm crosses person B's right forearm; legs of A and B cross too
    rng = np.random.default_rng(3)
    lay = OPENPOSE_18
    a = person(lay, (20.0, 12.0), rng, overrides={"left_elbow": (30.0, 16.0), "left_wrist": (44.0, 26.0)})
    b = person(lay, (46.0, 12.5), rng, overrides={"right_elbow": (37.5, 15.0), "right_wrist": (23.5, 27.5),
                                                  "right_knee": (34.0, 38.0), "right_ankle": (28.0, 48.0)})
    a[lay.index("left_knee")] = (30.0, 39.0)
    a[lay.index("left_ankle")] = (38.0, 49.0)
    people = np.stack([a, b])
    # the forearms really cross (segments intersect)
    p, r = a[lay.index("left_elbow")], a[lay.index("left_wrist")] - a[lay.index("left_elbow")]
    q, s = b[lay.index("right_elbow")], b[lay.index("right_wrist")] - b[lay.index("right_elbow")]
    t, u = np.linalg.solve(np.column_stack([r, -s]), q - p)
    assert 0 < t < 1 and 0 < u < 1
    assert_recovered(roundtrip(lay, people, (56, 70)), people)


@pytest.mark.parametrize("layout", [BODY_25, TRT_POSE_18], ids=lambda lay: lay.name)
def test_roundtrip_other_topologies(layout):
    rng = np.random.default_rng(4)
    people = np.stack([person(layout, (18.4, 11.0), rng), person(layout, (40.1, 12.2), rng),
                       person(layout, (66.7, 10.9), rng, scale=0.9)])
    assert_recovered(roundtrip(layout, people, (56, 84)), people)


def test_trt_pose_channel_order_row_component_first():
    # trt_pose's paf_score_graph.cpp reads channel 2k as the row (y) and 2k + 1 as the column (x)
    # component of link k; write the fields that way here, without PAF_CHANNELS
    rng = np.random.default_rng(8)
    people = np.stack([person(TRT_POSE_18, (18.4, 11.0), rng), person(TRT_POSE_18, (40.1, 12.2), rng)])
    size = (56, 60)
    xy = encode.paf_fields(people, TRT_POSE_18.limbs, size)
    trt = np.empty_like(xy)
    trt[0::2], trt[1::2] = xy[1::2], xy[0::2]
    hm = encode.gaussian_heatmaps(people, size, 1.5)
    assert_recovered(decode.PafDecoder(TRT_POSE_18)(hm, trt), people)


def test_roundtrip_random_scenes():
    rng = np.random.default_rng(5)
    for _ in range(4):
        n = int(rng.integers(2, 5))
        xs = 16 + np.cumsum(rng.uniform(17, 24, n))
        people = np.stack([person(OPENPOSE_18, (x, rng.uniform(10, 14)), rng, scale=rng.uniform(0.85, 1.1))
                           for x in xs])
        assert_recovered(roundtrip(OPENPOSE_18, people, (60, int(xs[-1]) + 20)), people)


def test_min_parts_and_min_score_drop_fragments():
    rng = np.random.default_rng(6)
    full = person(OPENPOSE_18, (20.0, 12.0), rng)
    frag = np.full_like(full, np.nan)  # a fragment: only nose + neck
    for j in ("nose", "neck"):
        frag[OPENPOSE_18.index(j)] = person(OPENPOSE_18, (50.0, 12.0), rng)[OPENPOSE_18.index(j)]
    people = np.stack([full, frag])
    assert len(roundtrip(OPENPOSE_18, people, (56, 70), min_parts=3)) == 1
    assert len(roundtrip(OPENPOSE_18, people, (56, 70), min_parts=2)) == 2
    assert len(roundtrip(OPENPOSE_18, people, (56, 70), min_parts=2, min_score=5.0)) == 0


def test_stride_maps_to_input_pixels():
    rng = np.random.default_rng(7)
    people = np.stack([person(OPENPOSE_18, (20.0, 12.0), rng)])
    found = roundtrip(OPENPOSE_18, people, (56, 40), stride=8.0)
    np.testing.assert_allclose(found[0].xy, people[0] * 8.0, atol=1e-3)


def test_simcc_roundtrip():
    kp = np.array([[10.3, 20.8], [45.1, 3.6], [0.2, 63.7]])
    sx, sy = encode.simcc_targets(kp, (64, 48), split_ratio=2.0, sigma=4.0)
    assert sx.shape == (3, 96) and sy.shape == (3, 128)
    out = decode.SimCC(2.0)(sx, sy)
    assert np.abs(out.xy - kp).max() <= 0.25  # half a bin


def test_volumetric_roundtrip():
    pts = np.array([[7.3, 6.6, 6.8], [8.1, 9.5, 7.2]])  # >= 4 sigma inside
    vol = encode.volumetric_targets(pts, (14, 16, 16), sigma=1.2)
    assert vol.shape == (2, 14, 16, 16)
    np.testing.assert_allclose(vol[0, 7, 7, 7], np.exp(-((0.3**2 + 0.4**2 + 0.2**2) / (2 * 1.44))),
                               rtol=1e-6)  # voxel (x=7, y=7, z=7)
    out = decode.SoftArgmax3D(normalised=True)(vol)
    np.testing.assert_allclose(out.xyz, pts, atol=1e-4)
