"""One result per person: merge person candidates (whole-image and tile detections, tracked
crops) by keypoint similarity and box containment, not by box IoU alone (numpy, ROS-free).

Two candidates are the same person when
  * their skeletons agree: OKS of one against the other over the joints both see (visibility
    > 0.5; all joints when they share fewer than :data:`MIN_COMMON`), with the larger box's
    area as the scale, above :data:`SAME_OKS` (a second, shifted crop of one person: the joints
    it cannot see, e.g. legs out of the image, are guessed differently by each crop); or
  * one is a *fragment* of the other: its box lies at least :data:`FRAGMENT_CONTAINED` inside
    the other's box and has less than :data:`FRAGMENT_AREA` of its area (the landmark model
    run on a tile that shows only a head, hand or torso invents a small whole skeleton
    there). A smaller person overlapping a larger one is not merged unless nearly all of their
    box is inside it (measured on COCO val2017 images: a real pair 0.74 inside, fragments
    0.88-1.0 inside with 2-24 % of the area. Known miss: on the two-person video a leg crop
    0.97 inside with 59 % of the area survives; a larger limit merges a real person of a 2 x 2
    photo grid into a skeleton wrongly spanning two rows); or
  * their noses (joint 0, both visible) lie within :data:`SAME_NOSE` of the larger box's
    diagonal: two people cannot have their faces in one place, while a crop that hangs off the
    image edge around someone's head, or a tile crop of a turned person in the wrong
    orientation, yields a second, distorted skeleton with that face (measured: 0.033 and
    0.057 of the diagonal on skimage's astronaut upright and turned by 90 degrees); or
  * their boxes nearly coincide (IoU >= :data:`SAME_BOX_IOU`) and their noses (both visible)
    lie within :data:`NEAR_NOSE` of the larger diagonal: a fresh detection of a tracked
    person whose crop sits differently can give a second skeleton of them that is tilted
    (measured on the soak scene, an upper-body photo at the image's lower edge: box IoU 0.68,
    noses 0.11 diagonals apart, OKS 0.25); two people cannot share both their box and their
    face's place; or
  * the smaller one lies within the other's head region (its face keypoints' box grown by
    that box's longer side on every side): a tile showing a tracked person's head yields a
    small whole skeleton there (soak scene: 77 x 57 px, sticking out above the person's
    keypoint box, 0.39 inside it; its nose 0.14 diagonals from the person's); nobody fits
    within another person's head; or
  * their boxes overlap (IoU >= :data:`OPPOSED_IOU`) and their torsos point in opposite
    directions (mid-hip -> mid-shoulder more than 135 degrees apart): a tile crop can give an
    upside-down skeleton of the person in it with presence 1.0, which its own crop then follows
    from frame to frame (measured on the astronaut photo filling a 640 x 480 frame: cosines
    -0.94 .. -1.00, box IoU 0.19 - 0.65). Two overlapping people with one upside down are
    rare; a person lying at a standing one's feet (~90 degrees) is kept. Of such a pair the
    upright skeleton (torso up in the image) is kept.

Greedy: tracked candidates first (a tracked person keeps their crop against a fresh tile
detection of them), then by ``rank``: by default score^4 x sqrt(box area) (of equally
confident skeletons the more complete one wins; a clearly less confident one does not win by
size alone); the pipeline ranks new candidates by their self-consistency
(:mod:`pose_ros.core.refine`); a kept
candidate that turns out to be a fragment of a later, larger one is replaced by it but keeps
its identity. The person cap applies after de-duplication.
"""
from __future__ import annotations

import numpy as np

from .metrics import oks_matrix
from .models.blazepose import box_iou

SAME_OKS = 0.5
MIN_COMMON = 4
SAME_NOSE = 0.08
NEAR_NOSE = 0.16
SAME_BOX_IOU = 0.6
OPPOSED_COS = -0.7  # torsos more than ~135 degrees apart
OPPOSED_IOU = 0.15  # ... with boxes overlapping at least this much
NOSE = 0  # BlazePose-33 and COCO-17 both start with the nose
FRAGMENT_CONTAINED = 0.85
TORSO = {33: (11, 12, 23, 24), 17: (5, 6, 11, 12)}  # shoulders, hips by layout size
FACE = {33: 11, 17: 5}  # the face is keypoints 0 .. FACE[K] - 1 (nose, eyes, ears, mouth)
MAX_FACE = 0.35  # face box side / skeleton box side: an upper body 0.26, a whole body ~0.1
FRAGMENT_AREA = 0.3
# a keypoint box grown by this much per side covers the person (the head's top): used by the
# tracker's nested-newcomer rule; growing the boxes here merged a real pair on COCO (AP 0.598
# -> 0.569)
PERSON_MARGIN = 0.15


def box_area(b: np.ndarray) -> float:
    """Area (px^2) of a box (4,) x0, y0, x1, y1."""
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))


def containment(inner: np.ndarray, outer: np.ndarray) -> float:
    """Fraction of box ``inner`` (x0, y0, x1, y1) inside box ``outer``, in [0, 1]."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    a = box_area(inner)
    return float(max(w, 0.0) * max(h, 0.0) / a) if a > 0 else 1.0


def person_extent(box: np.ndarray, margin: float = PERSON_MARGIN) -> np.ndarray:
    """A person's keypoint box (4,) x0, y0, x1, y1 grown by ``margin`` of its width / height
    on every side: the keypoints stop at the eyes, ears, wrists and heels, the person does not
    (the top of the head, hair, hands)."""
    b = np.asarray(box, np.float64)
    d = np.r_[b[2:] - b[:2], b[2:] - b[:2]] * margin
    return b + d * (-1, -1, 1, 1)


def is_fragment(part: np.ndarray, whole: np.ndarray) -> bool:
    """Box ``part`` is a piece of the person in box ``whole`` (see the module docstring)."""
    return (containment(part, whole) >= FRAGMENT_CONTAINED
            and box_area(part) < FRAGMENT_AREA * box_area(whole))


def torso_up(kp: np.ndarray) -> np.ndarray | None:
    """Unit vector (2,) mid-hip -> mid-shoulder of a BlazePose-33 / COCO-17 skeleton (image
    axes: an upright person has y < 0); None for other layouts or a degenerate torso."""
    idx = TORSO.get(len(kp))
    if idx is None:
        return None
    up = kp[list(idx[:2])].mean(0) - kp[list(idx[2:])].mean(0)
    n = float(np.hypot(*up))
    return up / n if n > 1e-6 else None


def _upright(kp: np.ndarray) -> bool:
    up = torso_up(kp)
    return up is not None and float(up[1]) < 0.0


def _torsos_opposed(kp_a: np.ndarray, kp_b: np.ndarray) -> bool:
    """The torsos' up directions more than 135 degrees apart (cosine < OPPOSED_COS): one of
    the two is upside down relative to the other (a person lying next to a standing one is at
    ~90 degrees and does not count)."""
    a, b = torso_up(kp_a), torso_up(kp_b)
    return a is not None and b is not None and len(kp_a) == len(kp_b) and float(a @ b) < OPPOSED_COS


def head_region(kp: np.ndarray, vis=None) -> np.ndarray | None:
    """The region (4,) x0, y0, x1, y1 px around a skeleton's head: the box of its face
    keypoints (visible ones when ``vis`` is given) grown by the box's longer side on every
    side; None for other layouts, fewer than 3 face points, or a face box longer than
    :data:`MAX_FACE` of the whole skeleton's box (not a head-sized face)."""
    n = FACE.get(len(kp))
    if n is None:
        return None
    face = kp[:n] if vis is None else kp[:n][np.asarray(vis[:n]) > 0.5]
    if len(face) < 3:
        return None
    lo, hi = face.min(0), face.max(0)
    side = float(max(hi - lo))
    if side > MAX_FACE * float(np.ptp(kp, axis=0).max()):
        return None
    return np.r_[lo - side, hi + side]


def _on_the_head(part: np.ndarray, kp_whole: np.ndarray, vis_whole) -> bool:
    """Box ``part`` lies within the head region of the skeleton ``kp_whole``."""
    head = head_region(kp_whole, vis_whole)
    return head is not None and containment(part, head) >= FRAGMENT_CONTAINED


def same_person(kp_a: np.ndarray, box_a: np.ndarray, kp_b: np.ndarray, box_b: np.ndarray,
                sigmas: np.ndarray, vis_a=None, vis_b=None) -> bool:
    """Are candidates a and b ((K, 2) px keypoints, (4,) boxes, optional (K,) visibility in
    [0, 1]) one person?"""
    if is_fragment(box_a, box_b) or is_fragment(box_b, box_a):
        return True
    if (box_area(box_a) < box_area(box_b) and _on_the_head(box_a, kp_b, vis_b)) or (
            box_area(box_b) < box_area(box_a) and _on_the_head(box_b, kp_a, vis_a)):
        return True
    area = max(box_area(box_a), box_area(box_b), 1.0)
    iou = box_iou(box_a[None], box_b[None])[0, 0]
    same_box = iou >= SAME_BOX_IOU
    if iou >= OPPOSED_IOU and _torsos_opposed(kp_a, kp_b):
        return True
    if vis_a is not None and vis_b is not None and vis_a[NOSE] > 0.5 and vis_b[NOSE] > 0.5:
        diag = max(float(np.hypot(*(box_a[2:] - box_a[:2]))), float(np.hypot(*(box_b[2:] - box_b[:2]))))
        nose = float(np.hypot(*(kp_a[NOSE] - kp_b[NOSE])))
        if nose < SAME_NOSE * diag or (nose < NEAR_NOSE * diag and same_box):
            return True
    common = None
    if vis_a is not None and vis_b is not None:
        common = (np.asarray(vis_a) > 0.5) & (np.asarray(vis_b) > 0.5)
        common = common[None] if common.sum() >= MIN_COMMON else None
    return float(oks_matrix(kp_a[None], kp_b[None], [area], sigmas, common)[0, 0]) > SAME_OKS


def default_rank(score: float, box: np.ndarray) -> float:
    """score^4 x sqrt(box area): of equally confident skeletons the more complete one first."""
    return float(score) ** 4 * float(np.sqrt(max(box_area(box), 1.0)))


def dedupe(keypoints, boxes, scores, tracked, sigmas, limit: int,
           visibility=None, rank=None) -> list[tuple[int, int]]:
    """De-duplicate N candidates: keypoints (N, K, 2) px, boxes (N, 4) px, scores (N,) in
    [0, 1], tracked (N,) bool (from the previous frame's crops), sigmas (K,) OKS sigmas,
    visibility (N, K) in [0, 1] or None (all joints compared), rank (N,) order of preference
    among the tracked and among the untracked candidates (default: :func:`default_rank`).

    Returns at most ``limit`` pairs (kept index, identity index), best score first: the
    candidate whose skeleton / crop is used and the candidate whose identity it carries
    (itself, or the tracked fragment / duplicate it replaced)."""
    n = len(scores)
    boxes = np.asarray(boxes, np.float64)
    kps = np.asarray(keypoints, np.float64)
    vis = [None] * n if visibility is None else np.asarray(visibility, np.float64)
    if rank is None:
        rank = [default_rank(scores[i], boxes[i]) for i in range(n)]
    order = sorted(range(n), key=lambda i: (not tracked[i], -rank[i]))
    kept: list[list[int]] = []  # [used index, identity index]
    for i in order:
        k = next((k for k in kept if same_person(kps[i], boxes[i], kps[k[0]], boxes[k[0]], sigmas,
                                                 vis[i], vis[k[0]])), None)
        if k is None:
            kept.append([i, i])
        elif is_fragment(boxes[k[0]], boxes[i]):
            k[0] = i  # the kept one was a piece of this person: use the whole skeleton
        elif _torsos_opposed(kps[i], kps[k[0]]) and _upright(kps[i]) and not _upright(kps[k[0]]):
            k[0] = i  # the kept one was an upside-down skeleton of this person
        elif not tracked[k[1]] and tracked[i]:
            k[1] = i
    kept.sort(key=lambda k: -float(scores[k[0]]))
    return [(a, b) for a, b in kept[:limit]]
