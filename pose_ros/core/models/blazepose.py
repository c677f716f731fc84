"""BlazePose pre- and post-processing as MediaPipe's pose graphs define it (numpy + OpenCV).

Detector (pose_detection.tflite, 224x224, inputs in [-1, 1]): SSD anchors, box and keypoint
decoding, sigmoid scores, weighted NMS, and the rotated person ROI from the hip-centre and
scale keypoints. Landmarks (pose_landmark_full.tflite, 256x256, inputs in [0, 1]): affine
crop of each ROI, 39 landmarks (33 body + 2 ROI-alignment + 4 unused) with visibility and
presence, heatmap refinement, world landmarks rotated back by the ROI angle.

Values below are from MediaPipe's graph configs (pose_detection_cpu.pbtxt,
pose_detection_to_roi.pbtxt, pose_landmark_by_roi_*.pbtxt, pose_landmarks_to_roi.pbtxt).

Coordinates: image pixels, x right, y down, origin at the top-left corner of the top-left
pixel (the convention of cv2.warpAffine matrices built from rectangle corners).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def expit(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid 1 / (1 + exp(-x)), elementwise, dtype kept; no overflow for any x.
    Equal to scipy.special.expit (tested) without importing scipy.special, which costs
    ~0.2 s of every process start."""
    return np.exp(-np.logaddexp(0.0, -x))

# --- detector -------------------------------------------------------------------------
DETECTOR_SIZE = 224
ANCHOR_STRIDES = (8, 16, 32, 32, 32)  # SsdAnchorsCalculator: num_layers 5, fixed size
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 + interpolated scale
NUM_ANCHORS = 2254
DETECTION_SCALE = 224.0  # x_scale = y_scale = w_scale = h_scale
SCORE_CLIP = 100.0
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
# --- ROI ------------------------------------------------------------------------------
ROI_SCALE = 1.25  # RectTransformationCalculator scale_x / scale_y, square_long
ROI_TARGET_ANGLE = math.pi / 2  # rotation_vector_target_angle_degrees: 90
# --- landmarks ------------------------------------------------------------------------
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39  # 33 body + 2 auxiliary (ROI centre, scale) + 4 unused
NUM_BODY = 33
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5
PRESENCE_THRESHOLD = 0.5  # pose flag


def ssd_anchors(size: int = DETECTOR_SIZE, strides: tuple[int, ...] = ANCHOR_STRIDES) -> np.ndarray:
    """Anchor centres (N x 2 float32, normalised [0, 1], x then y) in MediaPipe's order:
    layers of equal stride are merged, then row-major over the feature map, then anchors."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = (j - i) * ANCHORS_PER_LAYER
        fm = math.ceil(size / strides[i])
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(centres, n, axis=0))
        i = j
    anchors = np.concatenate(out).astype(np.float32)
    return anchors


_ANCHORS = ssd_anchors()
if len(_ANCHORS) != NUM_ANCHORS:  # pragma: no cover - guards the constants above
    raise RuntimeError(f"anchor count {len(_ANCHORS)} != {NUM_ANCHORS}")


@dataclass
class Detection:
    """One detector hit in image pixels.

    box: (4,) float x0, y0, x1, y1. keypoints: (4, 2) float x, y: hip centre, full-body
    scale point, then the two upper-body points. score: sigmoid score in [0, 1].
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass
class Roi:
    """A rotated square region of interest in image pixels.

    centre (x, y), side length ``size`` (px), ``angle`` (rad, MediaPipe's sign convention:
    the crop's up axis is rotated by ``angle`` clockwise in the image).
    """

    cx: float
    cy: float
    size: float
    angle: float

    def corners(self) -> np.ndarray:
        """(4, 2) float32: top-left, top-right, bottom-right, bottom-left of the crop."""
        h = self.size / 2
        local = np.array([[-h, -h], [h, -h], [h, h], [-h, h]], np.float64)
        return (local @ rotation(self.angle).T + (self.cx, self.cy)).astype(np.float32)

    def bbox(self) -> tuple[float, float, float, float]:
        c = self.corners()
        return float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max())


def rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def roi_from_points(centre: np.ndarray, scale_point: np.ndarray) -> Roi:
    """AlignmentPointsRectsCalculator + RectTransformationCalculator (pixels in, pixels out):
    the ROI is centred on ``centre``, its side is 2 x |scale_point - centre| x ROI_SCALE and
    it is rotated so that centre -> scale_point points up in the crop."""
    dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
    size = 2.0 * math.hypot(dx, dy) * ROI_SCALE
    angle = normalize_radians(ROI_TARGET_ANGLE - math.atan2(-dy, dx))
    return Roi(float(centre[0]), float(centre[1]), size, angle)


def crop_matrix(roi: Roi, out_size: int) -> np.ndarray:
    """2 x 3 affine map from crop pixels (u, v) to image pixels, for cv2.WARP_INVERSE_MAP."""
    r = rotation(roi.angle) * (roi.size / out_size)
    t = np.array([roi.cx, roi.cy]) - r @ np.array([out_size / 2, out_size / 2])
    return np.hstack([r, t[:, None]]).astype(np.float64)


def crop(image: np.ndarray, roi: Roi, out_size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Rotated crop (out_size x out_size x C uint8) of an RGB image through cv2.warpAffine."""
    return cv2.warpAffine(image, crop_matrix(roi, out_size), (out_size, out_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)


def letterbox_roi(width: int, height: int) -> Roi:
    """The whole image as a square ROI (what keep_aspect_ratio letterboxing amounts to)."""
    return Roi(width / 2, height / 2, float(max(width, height)), 0.0)


# --- detector -------------------------------------------------------------------------

def detector_batch(image: np.ndarray, rois: list[Roi]) -> np.ndarray:
    """Detector inputs for several (unrotated) ROIs: (len(rois), 224, 224, 3) in [-1, 1];
    outside the image is black, as MediaPipe's letterbox."""
    out = np.empty((len(rois), DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
    for i, roi in enumerate(rois):
        out[i] = crop(image, roi, DETECTOR_SIZE, border=cv2.BORDER_CONSTANT)
    out *= 2.0 / 255.0
    out -= 1.0
    return out


def tile_rois(width: int, height: int, grid: int, overlap: float = 0.5) -> list[Roi]:
    """Overlapping square tiles for finding people too small for the whole-image detector:
    side = (short image side / grid) x (1 + overlap), evenly spaced to cover the image."""
    side = min(width, height) / grid * (1 + overlap)
    stride = side / (1 + overlap)

    def centres(length: int) -> np.ndarray:
        if length <= side:
            return np.array([length / 2])
        n = math.ceil((length - side) / stride) + 1
        return np.linspace(side / 2, length - side / 2, n)

    return [Roi(float(x), float(y), side, 0.0) for y in centres(height) for x in centres(width)]


def same_person_roi(a: Roi, b: Roi) -> bool:
    """Two detector ROIs describe one person: centres within 15 % of the size, sizes within
    20 %, angles within 20 degrees."""
    size = max(a.size, b.size)
    dang = abs(normalize_radians(a.angle - b.angle))
    return (math.hypot(a.cx - b.cx, a.cy - b.cy) < 0.15 * size
            and min(a.size, b.size) > 0.8 * size and dang < math.radians(20))


def merge_detections(per_input: list[list[Detection]], limit: int | None = None) -> list[Detection]:
    """Detections from several detector inputs (whole image, tiles), best first, without the
    cross-input duplicates (same-person ROIs). Within one input NMS has already separated
    people, so only detections from different inputs are compared."""
    tagged = sorted(((d, i) for i, dets in enumerate(per_input) for d in dets), key=lambda t: -t[0].score)
    kept: list[tuple[Detection, int, Roi]] = []
    for det, src in tagged:
        roi = roi_from_detection(det)
        if any(k_src != src and same_person_roi(roi, k_roi) for _, k_src, k_roi in kept):
            continue
        kept.append((det, src, roi))
    return [d for d, _, _ in kept[:limit]]


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, roi: Roi,
                      min_score: float = MIN_DETECTION_SCORE, iou: float = NMS_IOU,
                      max_detections: int | None = None) -> list[Detection]:
    """Detector outputs (2254 x 12, 2254 x 1 logits) -> weighted-NMS detections in pixels."""
    scores = expit(np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP))
    keep = np.nonzero(scores >= min_score)[0]
    if keep.size == 0:
        return []
    raw = raw_boxes.reshape(-1, 12)[keep].astype(np.float64)
    anc = _ANCHORS[keep].astype(np.float64)
    # normalised [0, 1] coordinates of the 224 x 224 input (fixed anchor size 1)
    cx = raw[:, 0] / DETECTION_SCALE + anc[:, 0]
    cy = raw[:, 1] / DETECTION_SCALE + anc[:, 1]
    w = raw[:, 2] / DETECTION_SCALE
    h = raw[:, 3] / DETECTION_SCALE
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = raw[:, 4:12].reshape(-1, 4, 2) / DETECTION_SCALE + anc[:, None, :]
    dets = weighted_nms(boxes, kps, scores[keep], iou)
    # letterbox input -> image pixels (ROI has no rotation)
    m = crop_matrix(roi, 1)
    out = []
    for box, kp, score in dets[:max_detections]:
        b = box.reshape(2, 2) @ m[:, :2].T + m[:, 2]
        k = kp @ m[:, :2].T + m[:, 2]
        out.append(Detection(b.reshape(4), k, float(score)))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N x 4) against b (M x 4), x0 y0 x1 y1 -> N x M."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU > threshold with its
    best box) is replaced by the score-weighted mean of its boxes and keypoints; the score
    is the cluster's best."""
    order = np.argsort(-scores, kind="stable")
    remaining = list(order)
    out = []
    while remaining:
        best = remaining[0]
        ious = box_iou(boxes[[best]], boxes[remaining])[0]
        members = [r for r, v in zip(remaining, ious, strict=True) if v > iou_threshold or r == best]
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kp = (keypoints[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kp, float(scores[best])))
        member_set = set(members)
        remaining = [r for r in remaining if r not in member_set]
    return out


def roi_from_detection(det: Detection) -> Roi:
    """pose_detection_to_roi: keypoint 0 (hip centre) and 1 (full-body scale point)."""
    return roi_from_points(det.keypoints[0], det.keypoints[1])


# --- landmarks ------------------------------------------------------------------------

def landmark_input(image: np.ndarray, rois: list[Roi]) -> np.ndarray:
    """Batch of ROI crops: (len(rois) x 256 x 256 x 3) float32 in [0, 1]."""
    batch = np.empty((len(rois), LANDMARK_SIZE, LANDMARK_SIZE, 3), np.float32)
    for i, roi in enumerate(rois):
        batch[i] = crop(image, roi, LANDMARK_SIZE)
    batch *= 1.0 / 255.0
    return batch


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator for one person (vectorised over landmarks).

    xy: (K, 2) landmarks normalised to the crop [0, 1]. heatmap: (Hh, Wh, K) logits.
    Returns refined (K, 2): the sigmoid-weighted mean cell index in a kernel x kernel window
    around each landmark, divided by the heatmap size, where the window's max >= min_confidence.
    Cells outside the heatmap weigh 0 (MediaPipe shrinks the window at the edges).
    """
    hh, wh, k = heatmap.shape
    off = (kernel - 1) // 2
    out = xy.copy()
    cols = (xy[:, 0] * wh).astype(np.int64)  # C++ float->int truncation
    rows = (xy[:, 1] * hh).astype(np.int64)
    inside = (xy[:, 0] * wh >= 0) & (cols < wh) & (xy[:, 1] * hh >= 0) & (rows < hh)
    idx = np.nonzero(inside)[0]
    if idx.size == 0:
        return out
    d = np.arange(-off, off + 1)
    rr = rows[idx, None, None] + d[None, :, None]  # n x kernel x 1
    cc = cols[idx, None, None] + d[None, None, :]  # n x 1 x kernel
    valid = (rr >= 0) & (rr < hh) & (cc >= 0) & (cc < wh)  # n x kernel x kernel
    logits = heatmap[np.clip(rr, 0, hh - 1), np.clip(cc, 0, wh - 1), idx[:, None, None]]
    conf = np.where(valid, expit(logits.astype(np.float64)), 0.0)
    total = conf.sum((1, 2))
    refine = (conf.max((1, 2)) >= min_confidence) & (total > 0)
    sel = idx[refine]
    safe = np.where(total > 0, total, 1.0)
    out[sel, 0] = ((cc * conf).sum((1, 2)) / wh / safe)[refine]
    out[sel, 1] = ((rr * conf).sum((1, 2)) / hh / safe)[refine]
    return out


@dataclass
class LandmarkResult:
    """One person's landmarks.

    keypoints: (39, 3) float32 image pixels x, y and z (relative depth, px, hip-centred).
    visibility, presence: (39,) float32 in [0, 1]. world: (33, 3) float32 metres, origin
    mid-hip, axes of the camera image (x right, y down, z away), from the model.
    score: pose presence flag in [0, 1].
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    roi: Roi

    def next_roi(self) -> Roi:
        """pose_landmarks_to_roi: ROI for the next frame from auxiliary landmarks 33, 34."""
        return roi_from_points(self.keypoints[33, :2], self.keypoints[34, :2])


def decode_landmarks(raw: np.ndarray, flag: np.ndarray, world: np.ndarray,
                     heatmap: np.ndarray | None, rois: list[Roi]) -> list[LandmarkResult]:
    """Landmark net outputs for a batch -> per-person results in image pixels.

    raw: (B, 195), flag: (B, 1), world: (B, 117), heatmap: (B, 64, 64, 39) or None.
    """
    out = []
    for b, roi in enumerate(rois):
        lm = raw[b].reshape(NUM_LANDMARKS, 5).astype(np.float64)
        xy = lm[:, :2] / LANDMARK_SIZE
        if heatmap is not None:
            xy = refine_from_heatmap(xy, heatmap[b])
        rot = rotation(roi.angle)
        pix = ((xy - 0.5) * roi.size) @ rot.T + (roi.cx, roi.cy)
        z = lm[:, 2] / LANDMARK_SIZE * roi.size
        w = world[b].reshape(NUM_LANDMARKS, 3)[:NUM_BODY].astype(np.float64)
        w_xy = w[:, :2] @ rot.T
        out.append(LandmarkResult(
            keypoints=np.column_stack([pix, z]).astype(np.float32),
            visibility=expit(lm[:, 3]).astype(np.float32),
            presence=expit(lm[:, 4]).astype(np.float32),
            world=np.column_stack([w_xy, w[:, 2]]).astype(np.float32),
            score=float(np.asarray(flag[b]).reshape(-1)[0]),
            roi=roi,
        ))
    return out
