"""core/decode.py against independent oracles: hand-computed parabola offsets, Gaussians with
known non-integer centres built here with the closed-form formula, cv2.warpAffine of a drawn dot
(crop -> image), the pinhole formula with literal numbers, and hand-made PAF fields whose limb
scores follow OpenPose's criterion by hand."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pose_ros.core import decode
from pose_ros.core.skeletons import BODY_25, OPENPOSE_18, PAF_CHANNELS, TRT_POSE_18, get_layout


def gauss2d(h, w, cx, cy, sigma):
    ys, xs = np.mgrid[0:h, 0:w]
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


# ------------------------------------------------------------------------ parabola refinement
def test_parabola_offset_hand_values():
    # 0.5 * (l - r) / (l - 2c + r): (1, 3, 2) -> 0.5 * -1 / -3 = +1/6
    assert decode.parabola_offset(1.0, 3.0, 2.0) == pytest.approx(1 / 6)
    assert decode.parabola_offset(2.0, 3.0, 1.0) == pytest.approx(-1 / 6)
    assert decode.parabola_offset(2.0, 4.0, 2.0) == 0.0
    # guards: flat, a minimum, NaN -> 0; a vertex beyond half a pixel is clipped
    assert decode.parabola_offset(1.0, 1.0, 1.0) == 0.0
    assert decode.parabola_offset(3.0, 1.0, 2.0) == 0.0
    assert decode.parabola_offset(np.nan, 1.0, 0.5) == 0.0
    assert decode.parabola_offset(0.0, 1.0, 1.2) == 0.5  # raw 0.75
    # log domain: exact for a Gaussian: samples of exp(-(x - 0.3)^2 / 2) at -1, 0, 1
    v = np.exp(-((np.array([-1.0, 0.0, 1.0]) - 0.3) ** 2) / 2)
    assert decode.parabola_offset(*v, log_domain=True) == pytest.approx(0.3, abs=1e-12)
    assert decode.parabola_offset(0.0, 1.0, 0.5, log_domain=True) == 0.0  # log(0) guarded


def test_heatmap_argmax_hand_made_map():
    hm = np.zeros((1, 9, 10), np.float32)
    hm[0, 5, 3:6] = (1.0, 3.0, 2.0)  # x: +1/6 around col 4
    hm[0, 4, 4], hm[0, 6, 4] = 2.0, 1.0  # y: 0.5 * (2 - 1) / (2 - 6 + 1) = -1/6 around row 5
    kp = decode.HeatmapArgmax(stride=4.0)(hm)
    np.testing.assert_allclose(kp.xy[0], [4 * (4 + 1 / 6), 4 * (5 - 1 / 6)], atol=1e-6)
    assert kp.scores[0] == 3.0
    raw = decode.HeatmapArgmax(refine="none")(hm)
    np.testing.assert_array_equal(raw.xy[0], [4, 5])


@pytest.mark.parametrize("cx,cy", [(21.3, 14.7), (5.5, 30.2), (40.85, 3.05)])
def test_heatmap_argmax_gaussian_known_centre(cx, cy):
    hm = gauss2d(36, 48, cx, cy, 2.0)[None].astype(np.float32)
    exact = decode.HeatmapArgmax(refine="log_parabola")(hm).xy[0]
    np.testing.assert_allclose(exact, [cx, cy], atol=1e-4)
    para = decode.HeatmapArgmax(refine="parabola")(hm).xy[0]
    raw = decode.HeatmapArgmax(refine="none")(hm).xy[0]
    assert np.abs(para - [cx, cy]).max() < 0.1
    assert np.abs(para - [cx, cy]).max() < np.abs(raw - [cx, cy]).max()


def test_heatmap_argmax_threshold_and_bad_shape():
    hm = np.zeros((2, 5, 5), np.float32)
    hm[0, 2, 2] = 0.9
    hm[1, 1, 1] = 0.05
    kp = decode.HeatmapArgmax(threshold=0.1)(hm)
    assert np.isfinite(kp.xy[0]).all() and np.isnan(kp.xy[1]).all()
    with pytest.raises(decode.DecodeError, match="batch axis"):
        decode.HeatmapArgmax()(hm[None])


# ------------------------------------------------------------------------------ soft-argmax
def test_soft_argmax_hand_cases():
    hm = np.zeros((1, 4, 6))
    hm[0, 1, 2] = hm[0, 3, 4] = 1.0
    kp = decode.SoftArgmax2D(normalised=True)(hm)
    np.testing.assert_allclose(kp.xy[0], [3.0, 2.0])  # mean of (2, 1) and (4, 3)
    # softmax over zeros and one cell of value v: weight e^(beta v) against 23 cells of 1
    hm = np.zeros((1, 4, 6))
    hm[0, 2, 5] = 1.0
    beta = 2.0
    w = np.exp(beta) / (np.exp(beta) + 23)
    xs = (1 - w) * (np.arange(6).sum() * 4 - 5) / 23 + w * 5
    ys = (1 - w) * (np.arange(4).sum() * 6 - 2) / 23 + w * 2
    np.testing.assert_allclose(decode.SoftArgmax2D(beta=beta)(hm).xy[0], [xs, ys], atol=1e-12)
    np.testing.assert_allclose(decode.SoftArgmax2D(beta=200.0)(hm).xy[0], [5, 2], atol=1e-9)


def test_soft_argmax_gaussian_centre():
    hm = gauss2d(40, 50, 23.37, 17.81, 2.5)[None]
    np.testing.assert_allclose(decode.SoftArgmax2D(normalised=True, stride=2)(hm).xy[0],
                               [2 * 23.37, 2 * 17.81], atol=1e-6)


# ------------------------------------------------------------------------------------ SimCC
def test_simcc_hand_case():
    sx = np.zeros((2, 20))
    sy = np.zeros((2, 16))
    sx[0, 7], sy[0, 11] = 0.9, 0.6  # joint 0 at (3.5, 5.5) px with split ratio 2
    sx[1, 3], sy[1, 2] = 0.8, -0.1  # joint 1: y never positive -> missing
    kp = decode.SimCC(split_ratio=2.0)(sx, sy)
    np.testing.assert_allclose(kp.xy[0], [3.5, 5.5])
    assert kp.scores[0] == pytest.approx(0.6)  # min(max_x, max_y)
    assert np.isnan(kp.xy[1]).all()
    with pytest.raises(decode.DecodeError, match="same model"):
        decode.SimCC()(sx, sy[:1])


# ------------------------------------------------------------------------- crop -> image
def test_crop_to_image_against_warp_affine_of_a_dot():
    img = np.zeros((240, 320), np.float32)
    dot = (201.0, 77.0)
    img[int(dot[1]), int(dot[0])] = 1.0
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    # crop: rotate 30 deg about the person centre, scale 1.6, centre into a 128 x 128 crop
    m = cv2.getRotationMatrix2D((190.0, 90.0), 30.0, 1.6)
    m[:, 2] += np.array([64.0, 64.0]) - np.array([190.0, 90.0])
    crop = cv2.warpAffine(img, m, (128, 128), flags=cv2.INTER_LINEAR)
    kp = decode.HeatmapArgmax(refine="log_parabola")(crop[None])
    back = decode.crop_to_image(kp.xy, m)
    np.testing.assert_allclose(back[0], dot, atol=0.15)
    with pytest.raises(decode.DecodeError, match="2 x 3"):
        decode.crop_to_image(kp.xy, np.eye(3))


# ------------------------------------------------------------------------------ 2.5D, 3D
def test_heatmap25d_pinhole_literal_numbers():
    km = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    hm = np.stack([gauss2d(60, 80, 52.5, 30.0, 1.5), gauss2d(60, 80, 40.0, 40.0, 1.5)])
    dec = decode.Heatmap25D(km, stride=8.0, depth_scale=0.001, refine="log_parabola")
    out = dec(hm, np.array([500.0, -250.0]), root_depth=2.0)  # relative depth in mm
    # joint 0: pixel (420, 240), Z = 2.5 -> X = (420 - 320) * 2.5 / 500 = 0.5, Y = 0
    # joint 1: pixel (320, 320), Z = 1.75 -> X = 0, Y = 80 * 1.75 / 500 = 0.28
    np.testing.assert_allclose(out.xyz, [[0.5, 0.0, 2.5], [0.0, 0.28, 1.75]], atol=1e-5)
    np.testing.assert_allclose(out.xy, [[420, 240], [320, 320]], atol=1e-3)
    maps = np.zeros((2, 60, 80))
    maps[0, 30, 52], maps[1, 40, 40] = 500.0, -250.0  # per-joint depth maps read at the peak
    np.testing.assert_allclose(dec(hm, maps, 2.0).xyz, out.xyz)
    with pytest.raises(decode.DecodeError, match="root_depth"):
        dec(hm, np.zeros(2), 0.0)


def test_soft_argmax_3d_gaussian_volume():
    d, h, w = 14, 14, 16
    z, y, x = np.mgrid[0:d, 0:h, 0:w]
    c = (7.3, 6.6, 6.8)  # x, y, z (>= 4 sigma from every face)
    vol = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 1.5**2))[None]
    out = decode.SoftArgmax3D(normalised=True, origin=(-1.0, 0.0, 2.0), voxel_size=0.05)(vol)
    np.testing.assert_allclose(out.xyz[0], [-1 + 0.05 * 7.3, 0.05 * 6.6, 2 + 0.05 * 6.8], atol=1e-6)
    # softmax version: one hot cell dominates with a large beta
    hot = np.zeros((1, d, h, w))
    hot[0, 3, 4, 5] = 1.0
    np.testing.assert_allclose(decode.SoftArgmax3D(beta=100.0)(hot).xyz[0], [5, 4, 3], atol=1e-6)


# ---------------------------------------------------------------------------- peaks, PAFs
def test_find_peaks_nms_threshold_and_plateau():
    hm = np.zeros((20, 20))
    hm[5, 5], hm[5, 6] = 0.9, 0.5  # neighbour inside the 3x3 window: suppressed
    hm[5, 9] = 0.7  # 4 px away: its own peak
    hm[15, 3] = 0.05  # below threshold
    hm[12, 12] = hm[12, 13] = 0.6  # plateau: one peak
    p = decode.find_peaks(hm, threshold=0.1, nms_size=3, refine="none")
    np.testing.assert_array_equal(p.xy, [[5, 5], [9, 5], [12, 12]])
    np.testing.assert_allclose(p.scores, [0.9, 0.7, 0.6])


def test_limb_scores_openpose_criterion_by_hand():
    h, w = 20, 60
    px, py = np.ones((h, w)), np.zeros((h, w))  # field pointing +x everywhere
    a = np.array([[5.0, 10.0]])
    b = np.array([[15.0, 10.0], [45.0, 10.0], [5.0, 18.0], [0.0, 10.0]])
    s, ok = decode.limb_scores(px, py, a, b, n_samples=10, paf_threshold=0.05, min_above=0.8)
    # +x, length 10 <= H/2: dot 1, no penalty -> 1
    assert s[0, 0] == pytest.approx(1.0) and ok[0, 0]
    # length 40: penalty 0.5 * 20 / 40 - 1 = -0.75 -> 0.25, still valid
    assert s[0, 1] == pytest.approx(0.25) and ok[0, 1]
    # perpendicular: dots 0 -> fraction above threshold 0 -> invalid
    assert s[0, 2] == pytest.approx(0.0) and not ok[0, 2]
    # against the field: -1 -> invalid
    assert s[0, 3] == pytest.approx(-1.0) and not ok[0, 3]
    # half of the samples on the field (x < 30 only): mean 0.5 - penalty, fraction 0.5 < 0.8
    px2 = px.copy()
    px2[:, 25:] = 0
    s2, ok2 = decode.limb_scores(px2, py, a, b[1:2], n_samples=9)
    t = np.linspace(0, 1, 9) * 40 + 5
    frac = np.mean(np.clip(25 - t, 0, 1) > 0.05)  # bilinear ramp between columns 24 and 25
    assert frac < 0.8 and not ok2[0, 0]
    assert s2[0, 0] == pytest.approx(np.clip(25 - t, 0, 1).mean() - 0.75)


def test_connections_use_optimal_assignment_not_greedy():
    # Two a-peaks, two b-peaks. Greedy by best score takes (a0, b0) = 0.9 and leaves a1-b1 invalid;
    # the optimal assignment takes (a0, b1) + (a1, b0). The field is built so that:
    # a0 -> b0 best, a0 -> b1 fine, a1 -> b0 fine, a1 -> b1 invalid.
    from pose_ros.core.skeletons import Layout
    lay = Layout("two", ("a", "b"), ((0, 1),))
    dec = decode.PafDecoder(lay, min_parts=2, min_score=0.0, peak_threshold=0.5)
    peaks = [decode.Peaks(np.array([[10.0, 10.0], [10.0, 30.0]]), np.ones(2)),
             decode.Peaks(np.array([[30.0, 10.0], [30.0, 30.0]]), np.ones(2))]
    h, w = 40, 40
    pafs = np.zeros((2, h, w))
    # a0 -> b0 horizontal along row 10: dot 1
    pafs[0, 9:12, 10:31] = 1.0
    # a0 -> b1 and a1 -> b0 diagonals: unit (1, +-1)/sqrt2 fields along each diagonal
    for (x0, y0), (x1, y1) in (((10, 10), (30, 30)), ((10, 30), (30, 10))):
        for t in np.linspace(0, 1, 200):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            for dx in (0, 1):
                for dy in (0, 1):
                    i, j = int(y) + dy, int(x) + dx
                    if not (9 <= i <= 11 and 10 <= j <= 30):  # keep row 10 pure for a0 -> b0
                        pafs[0, i, j] = (x1 - x0) / np.hypot(x1 - x0, y1 - y0) * 0.8
                        pafs[1, i, j] = (y1 - y0) / np.hypot(x1 - x0, y1 - y0) * 0.8
    s, ok = decode.limb_scores(pafs[0], pafs[1], peaks[0].xy, peaks[1].xy)
    assert ok[0, 0] and ok[0, 1] and ok[1, 0] and not ok[1, 1]
    assert s[0, 0] > s[0, 1] and s[0, 0] > s[1, 0]
    (cn,) = dec.connections(peaks, pafs)
    pairs = {(int(i), int(j)) for i, j, _ in cn}
    assert pairs == {(0, 1), (1, 0)}


def test_paf_decoder_rejects_mismatched_outputs():
    dec = decode.PafDecoder(OPENPOSE_18)
    with pytest.raises(decode.DecodeError, match="18 joints"):
        dec(np.zeros((10, 8, 8)), np.zeros((38, 8, 8)))
    with pytest.raises(decode.DecodeError, match="spec"):
        dec(np.zeros((19, 8, 8)), np.zeros((20, 8, 8)))
    with pytest.raises(ValueError, match="one \\(x, y\\) channel pair per limb"):
        decode.PafDecoder(OPENPOSE_18, paf_channels=[(0, 1)])


def test_layouts_for_bottom_up_models():
    # channel counts of the published models: OpenPose COCO 18 + 19 limbs (57 = 18 + 1 bg + 38),
    # BODY_25 25 + 26 limbs, trt_pose 18 + 21 links (cmap 18, paf 42)
    assert (len(OPENPOSE_18), len(OPENPOSE_18.limbs)) == (18, 19)
    assert (len(BODY_25), len(BODY_25.limbs)) == (25, 26)
    assert (len(TRT_POSE_18), len(TRT_POSE_18.limbs)) == (18, 21)
    for name in ("openpose_18", "body_25", "trt_pose_18"):
        ch = np.array(PAF_CHANNELS[name]).ravel()
        assert sorted(ch) == list(range(2 * len(get_layout(name).limbs)))
    lay = OPENPOSE_18
    assert [lay.names[i] for i in lay.limbs[0]] == ["neck", "right_shoulder"]
    assert TRT_POSE_18.names[TRT_POSE_18.limbs[16][0]] == "neck"
    assert [TRT_POSE_18.names[i] for i in TRT_POSE_18.limbs[0]] == ["left_ankle", "left_knee"]
