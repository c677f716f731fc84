"""core/dedupe.py on hand-built candidates with known answers: fragments inside a person,
a partial second crop of one person (box IoU < 0.5 but the same skeleton), a real smaller person
overlapping a larger one, tracked crops against fresh detections, and the cap after merging."""
from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core.dedupe import box_area, containment, dedupe, head_region, is_fragment
from pose_ros.core.metrics import layout_sigmas, oks_matrix
from pose_ros.core.models.blazepose import box_iou
from pose_ros.core.skeletons import BLAZEPOSE_33, COCO_17

SIG = layout_sigmas(BLAZEPOSE_33)
RNG = np.random.default_rng(3)
TEMPLATE = RNG.uniform([-50, -150], [50, 150], (33, 2))  # a 100 x 300 px person
TEMPLATE[:23, 1] = RNG.uniform(-150, -20, 23)  # face, arms, torso above y = -20; legs below
TEMPLATE[23:, 1] = RNG.uniform(-20, 150, 10)
TEMPLATE[0], TEMPLATE[15], TEMPLATE[16], TEMPLATE[31] = (0, -150), (-50, -60), (50, -60), (0, 150)


def person(cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    return TEMPLATE * scale + (cx, cy)


def box(kp: np.ndarray) -> np.ndarray:
    return np.r_[kp.min(0), kp.max(0)]


def run(kps, scores, tracked=None, limit=8):
    tracked = tracked if tracked is not None else [False] * len(kps)
    return dedupe(np.stack(kps), np.stack([box(k) for k in kps]), scores, tracked, SIG, limit)


def test_box_helpers():
    assert containment(np.array([0, 0, 10, 10.0]), np.array([5, 0, 20, 10.0])) == pytest.approx(0.5)
    assert is_fragment(np.array([10, 10, 30, 30.0]), np.array([0, 0, 100, 100.0]))  # inside, 4 %
    assert not is_fragment(np.array([0, 0, 60, 60.0]), np.array([0, 0, 100, 100.0]))  # 36 % area


def test_fragment_inside_a_person_is_merged_even_when_it_scores_higher():
    whole = person(300, 300)
    head = person(300, 180, 0.15)  # a whole small skeleton invented on a head crop
    assert run([head, whole], [1.0, 0.9]) == [(1, 1)]


def test_tracked_fragment_is_replaced_by_the_whole_person_but_keeps_its_identity():
    whole = person(300, 300)
    frag = person(320, 250, 0.2)
    assert run([frag, whole], [0.95, 0.9], tracked=[True, False]) == [(1, 0)]


def test_partial_second_crop_of_one_person_is_merged_though_box_iou_is_low():
    full = person(300, 300)
    part = full.copy()
    part[23:, 1] = 300 - 20 + 0.1 * (full[23:, 1] - 280)  # legs squashed to the hips (a cut-off crop)
    iou = box_iou(box(part)[None], box(full)[None])[0, 0]
    assert iou < 0.5  # the old IoU > 0.5 rule keeps both
    assert run([part, full], [1.0, 1.0]) == [(1, 1)]  # the more complete skeleton wins the tie


def test_real_smaller_person_overlapping_a_larger_one_is_kept():
    big = person(300, 300)
    small = person(340, 250, 0.5)  # mostly inside the big box, a different skeleton
    assert 0.5 < containment(box(small), box(big)) < 0.85
    assert sorted(run([big, small], [0.9, 0.8])) == [(0, 0), (1, 1)]


def test_tracked_crop_beats_a_fresh_higher_scoring_duplicate():
    tracked = person(300, 300)
    fresh = person(306, 303)  # a tile detection of the same person
    assert run([fresh, tracked], [1.0, 0.8], tracked=[False, True]) == [(1, 1)]


def test_cap_applies_after_deduplication():
    kps, scores = [], []
    for cx in (150, 450, 750):  # 3 people, each found 3 times (shifted crops, fragments)
        kps += [person(cx, 300), person(cx + 4, 302), person(cx, 200, 0.2)]
        scores += [0.8, 0.85, 1.0]
    got = run(kps, scores, limit=3)
    assert len(got) == 3
    assert sorted(int(kps[u][:, 0].mean() // 300) for u, _ in got) == [0, 1, 2]  # one each
    assert all(scores[u] < 1.0 for u, _ in got)  # no fragment among them


def test_joints_one_crop_cannot_see_do_not_split_a_person():
    """Two crops of one person cut off at the hips (as skimage's astronaut): each guesses the
    arms and legs differently, with low visibility. Compared on the joints both see, they merge."""
    a = person(300, 300)
    b = a.copy()
    b[13:] += RNG.uniform(-150, 150, (20, 2))  # arms and legs guessed elsewhere
    vis = np.ones((2, 33))
    vis[:, 13:] = 0.2
    boxes = np.stack([np.array([250, 150, 350, 450.0])] * 2)  # the same (clipped) box
    assert len(dedupe(np.stack([a, b]), boxes, [1.0, 0.9], [False, False], SIG, 8)) == 2
    assert dedupe(np.stack([a, b]), boxes, [1.0, 0.9], [False, False], SIG, 8, vis) == [(0, 0)]


def test_two_skeletons_sharing_one_face_are_one_person():
    """A crop hanging off the image around someone's head gives a distorted second skeleton
    whose face sits on the real one (seen on skimage's astronaut): merged by the nose."""
    real = person(300, 300)
    ghost = real[0] + (TEMPLATE - TEMPLATE[0]) * [0.8, -0.6] + (5, 8)  # flipped, squashed, same face
    vis = np.ones((2, 33))
    kps = np.stack([real, ghost])
    boxes = np.stack([box(real), box(ghost)])
    assert len(dedupe(kps, boxes, [1.0, 1.0], [False, False], SIG, 8)) == 2  # not by OKS or boxes
    assert dedupe(kps, boxes, [1.0, 0.99], [False, False], SIG, 8, vis) == [(0, 0)]
    vis[1, 0] = 0.1  # the ghost's nose unseen: no evidence
    assert len(dedupe(kps, boxes, [1.0, 0.99], [False, False], SIG, 8, vis)) == 2


def test_rank_chooses_among_duplicates_and_tracked_still_come_first():
    """Two passes of one person (core/refine.py): the first borrowed an arm from a neighbour
    (larger box, higher score: the default rank keeps it); ranked by self-consistency the
    stable skeleton is kept. A tracked crop still beats any fresh candidate."""
    stable = person(300, 300)
    borrowed = stable.copy()
    borrowed[[13, 15, 17, 19, 21]] += (120, 10)  # one forearm and hand on someone else
    kps = [borrowed, stable]
    assert run(kps, [1.0, 0.95]) == [(0, 0)]  # default: score^4 x sqrt(box area)
    boxes = np.stack([box(k) for k in kps])
    assert dedupe(np.stack(kps), boxes, [1.0, 0.95], [False, False], SIG, 8, rank=[0.4, 0.95]) == [(1, 1)]
    assert dedupe(np.stack(kps), boxes, [1.0, 0.95], [True, False], SIG, 8, rank=[0.4, 0.95]) == [(0, 0)]


def test_a_second_skeleton_over_the_same_box_and_face_is_one_person():
    """Soak scene: a fresh detection of a tracked person whose crop sat differently gave a
    second, distorted skeleton of them: OKS 0.25, noses 0.11 box diagonals apart (more than
    SAME_NOSE), box IoU 0.68. Boxes that nearly coincide (IoU >= 0.6) and noses within 0.16
    diagonals: one person. Here the second skeleton is the first mirrored in its box (same box,
    the joints disagree) with the nose 0.12 diagonals off; beside the person (IoU < 0.6), or
    over the same box with the face 0.25 diagonals away, it stays a second person."""
    real = person(300, 300)
    b = box(real)
    diag = float(np.hypot(*(b[2:] - b[:2])))
    ghost = real * (-1, 1) + (b[0] + b[2], 0)  # mirrored about the box's centre line
    ghost[0] = real[0] + (0.12 * diag, 0)
    ghost = np.clip(ghost, b[:2], b[2:])  # keep the box
    vis = np.ones((2, 33))

    def n_people(g):
        kps = np.stack([real, g])
        return len(dedupe(kps, np.stack([b, box(g)]), [1.0, 0.95], [True, False], SIG, 8, vis))

    oks = oks_matrix(real[None], ghost[None], [box_area(b)], SIG)[0, 0]
    assert oks < 0.5 and box_iou(b[None], box(ghost)[None])[0, 0] >= 0.6, oks  # not by OKS
    assert n_people(ghost) == 1
    beside = ghost + (0.5 * (b[2] - b[0]), 0)
    assert box_iou(b[None], box(beside)[None])[0, 0] < 0.6 and n_people(beside) == 2
    far_face = ghost.copy()
    far_face[0] = real[0] + (0, 0.25 * diag)
    assert n_people(far_face) == 2


def test_an_upside_down_skeleton_overlapping_a_person_is_that_person():
    """A tile crop gave upside-down skeletons of the astronaut filling a 640 x 480 frame
    (presence 1.0; torso cosines -0.94 .. -1.00; box IoU 0.19 - 0.65; its own crop then followed
    it from frame to frame): overlapping boxes (IoU >= 0.15) with torsos more than 135 degrees
    apart are one person, whatever OKS and the noses say, and the upright skeleton is kept even
    when the upside-down one ranks first. Turned by 90 degrees (a person lying at a standing
    one's feet) or upside down but apart (IoU < 0.15), it stays a second person."""
    real = person(300, 300)
    b = box(real)
    centre = (b[:2] + b[2:]) / 2

    def turned(deg, shift=(0.0, 0.0)):
        r = np.deg2rad(deg)
        rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
        return (real - centre) @ rot.T + centre + shift

    vis = np.ones((2, 33))

    def picks(g, scores=(1.0, 1.0)):
        kps = np.stack([real, g])
        return dedupe(kps, np.stack([b, box(g)]), list(scores), [True, True], SIG, 8, vis)

    iou = lambda g: box_iou(b[None], box(g)[None])[0, 0]  # noqa: E731
    flipped = turned(180)
    assert oks_matrix(real[None], flipped[None], [box_area(b)], SIG)[0, 0] < 0.5  # not by OKS
    assert picks(flipped) == [(0, 0)]
    # the upside-down one ranks first (higher score): merged, the upright skeleton is used
    assert picks(flipped, (0.9, 1.0)) == [(0, 1)]
    shifted = turned(180, (0, 0.6 * (b[3] - b[1])))  # IoU 0.15 - 0.6
    assert 0.15 <= iou(shifted) < 0.6 and len(picks(shifted)) == 1
    lying = turned(90, (0, 0.3 * (b[3] - b[1])))
    assert iou(lying) >= 0.15 and len(picks(lying)) == 2
    apart = turned(180, (1.2 * (b[2] - b[0]), 0))
    assert iou(apart) < 0.15 and len(picks(apart)) == 2
    # COCO-17 layout: shoulders 5, 6 and hips 11, 12
    coco = real[[0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]]
    coco_flipped = (coco - centre) * -1 + centre
    sig17 = layout_sigmas(COCO_17)
    assert len(dedupe(np.stack([coco, coco_flipped]), np.stack([box(coco), box(coco_flipped)]),
                      [1.0, 1.0], [True, False], sig17, 8, np.ones((2, 17)))) == 1


def test_a_small_skeleton_on_a_persons_head_is_part_of_them():
    """Soak scene: a tile showing a tracked person's head yields a small whole skeleton there
    (77 x 57 px) sticking out above the person's keypoint box (0.39 inside it), its nose 0.14
    diagonals from the person's: not a fragment by the box rule, nor by the nose rule. It lies
    within the person's head region (face keypoints' box grown by its side): one person. The
    same small skeleton by the person's feet, or next to their head outside that region, is
    kept; so is everything when the face points are not head-sized (no head region)."""
    real = person(300, 300)
    rng = np.random.default_rng(8)
    real[:11] = (300, 165) + rng.uniform(-15, 15, (11, 2))  # a 30 px face at the top
    b = box(real)
    small = TEMPLATE * 0.2  # 20 x 60 px
    at = lambda x, y: small - (box(small)[:2] + box(small)[2:]) / 2 + (x, y)  # noqa: E731
    on_head = at(300, b[1])  # centred on the box's top edge, half of it above
    assert containment(box(on_head), b) < 0.6 and containment(box(on_head), head_region(real)) >= 0.85
    vis = np.ones((2, 33))

    def n_people(kp_real, g):
        kps = np.stack([kp_real, g])
        return len(dedupe(kps, np.stack([box(kp_real), box(g)]), [1.0, 1.0], [True, False], SIG, 8, vis))

    assert n_people(real, on_head) == 1
    assert n_people(real, at(b[2] + 15, b[3] - 30)) == 2  # by the feet, outside the box
    assert n_people(real, at(300 + 90, b[1])) == 2  # beside the head, outside its region
    assert head_region(person(300, 300)) is None and n_people(person(300, 300), on_head) == 2
