"""COCO-format keypoint datasets for training heatmap / PAF networks (numpy + OpenCV, no torch).

:class:`CocoKeypoints` reads an images folder and a ``person_keypoints_*.json`` and yields
training samples: ``mode="crop"`` gives one sample per annotated person (top-down: the person's
box, padded, warped to the input size), ``mode="full"`` one per image (bottom-up: the image
letterboxed into the input size, every person). Targets come from :mod:`pose_ros.core.encode`
(Gaussian heatmaps, PAFs) at the network's output size ``input / stride``. It is a map-style
dataset (``__len__`` / ``__getitem__``), so ``torch.utils.data.DataLoader`` takes it as is;
parsing and targets need no torch.

Conventions: COCO keypoints are ``17 x (x, y, v)`` (v 0 unlabelled, 1 occluded, 2 visible), box
``[x, y, w, h]`` pixels. Affine matrices are 2 x 3 image -> network-input pixels (what
``cv2.warpAffine`` takes; :func:`pose_ros.core.decode.crop_to_image` inverts them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .encode import gaussian_heatmaps, paf_fields
from .skeletons import COCO_17, PAF_CHANNELS, Layout, mapping


class DatasetError(ValueError):
    """A dataset that cannot be read (the message says how to fix it)."""


@dataclass
class CocoPerson:
    """One annotation: keypoints (17, 2) float64 image pixels in COCO-17 order, visible (17,)
    bool (v > 0), bbox (4,) float64 [x, y, w, h], image_id, ann_id."""

    image_id: int
    ann_id: int
    keypoints: np.ndarray
    visible: np.ndarray
    bbox: np.ndarray


@dataclass
class CocoImage:
    """One image: id, file_name, width, height, its labelled people and the regions to ignore
    (crowd / people without keypoints: list of (P, 2) float64 polygons in image pixels)."""

    id: int
    file_name: str
    width: int
    height: int
    people: list[CocoPerson]
    ignore: list[np.ndarray]


def parse_coco(annotations) -> list[CocoImage]:
    """Parse a COCO keypoints json (path or already-loaded dict) into :class:`CocoImage` s, in
    the json's image order. People need ``num_keypoints > 0`` and ``iscrowd == 0``; the others
    become ignore regions (their polygons, or their box for RLE / missing segmentations)."""
    if isinstance(annotations, (str, Path)):
        path = Path(annotations)
        if not path.is_file():
            raise DatasetError(f"annotation file {path} does not exist; give a COCO "
                               "person_keypoints_*.json")
        annotations = json.loads(path.read_text())
    if not isinstance(annotations, dict) or "images" not in annotations or "annotations" not in annotations:
        raise DatasetError("not a COCO annotation file: it needs 'images' and 'annotations' lists "
                           "(a person_keypoints_*.json)")
    images = {int(im["id"]): CocoImage(int(im["id"]), str(im["file_name"]), int(im["width"]),
                                       int(im["height"]), [], [])
              for im in annotations["images"]}
    n_kp = 0
    for ann in annotations["annotations"]:
        im = images.get(int(ann["image_id"]))
        if im is None:
            raise DatasetError(f"annotation {ann.get('id')} names image_id {ann['image_id']} "
                               "which is not in 'images'")
        kp = ann.get("keypoints")
        box = np.asarray(ann.get("bbox", [0, 0, 0, 0]), np.float64)
        if kp is not None and len(kp) % 3 == 0 and len(kp) != 51:
            raise DatasetError(f"annotation {ann.get('id')} has {len(kp) // 3} keypoints; "
                               "the loader reads COCO-17 (51 numbers: x, y, v per joint)")
        n = int(ann.get("num_keypoints", 0 if kp is None else int((np.asarray(kp)[2::3] > 0).sum())))
        if ann.get("iscrowd", 0) or kp is None or n == 0:
            seg = ann.get("segmentation")
            if isinstance(seg, list) and seg:
                im.ignore += [np.asarray(s, np.float64).reshape(-1, 2) for s in seg if len(s) >= 6]
            elif box[2] > 0 and box[3] > 0:
                x, y, w, h = box
                im.ignore.append(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))
            continue
        a = np.asarray(kp, np.float64).reshape(17, 3)
        vis = a[:, 2] > 0
        if box[2] <= 0 or box[3] <= 0:  # no box: the labelled keypoints' box
            lo, hi = a[vis, :2].min(0), a[vis, :2].max(0)
            box = np.array([*lo, *(hi - lo)])
        im.people.append(CocoPerson(im.id, int(ann.get("id", -1)), a[:, :2].copy(), vis, box))
        n_kp += 1
    if n_kp == 0:
        raise DatasetError("the annotation file has no person with keypoints (num_keypoints > 0, "
                           "iscrowd 0); pass a COCO person_keypoints_*.json")
    return list(images.values())


def to_layout(keypoints: np.ndarray, visible: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 keypoints (..., 17, 2) and visibility (..., 17) -> ``layout`` by joint name; a
    ``neck`` (OpenPose, trt_pose) is the shoulders' midpoint, visible when both are. Other
    missing joints are NaN / not visible."""
    idx = mapping(COCO_17, layout)
    kp = np.full(keypoints.shape[:-2] + (len(layout), 2), np.nan)
    vis = np.zeros(visible.shape[:-1] + (len(layout),), bool)
    ok = idx >= 0
    kp[..., ok, :] = keypoints[..., idx[ok], :]
    vis[..., ok] = visible[..., idx[ok]]
    if "neck" in layout.names:
        ls, rs, nk = COCO_17.index("left_shoulder"), COCO_17.index("right_shoulder"), layout.index("neck")
        kp[..., nk, :] = 0.5 * (keypoints[..., ls, :] + keypoints[..., rs, :])
        vis[..., nk] = visible[..., ls] & visible[..., rs]
    kp[~vis] = np.nan
    return kp, vis


def box_crop_matrix(bbox, input_size: tuple[int, int], padding: float = 1.25) -> np.ndarray:
    """2 x 3 image -> crop affine of a top-down crop: the box ``[x, y, w, h]`` grown to the
    input's aspect ratio, scaled by ``padding``, centred in the (H, W) input."""
    x, y, w, h = (float(v) for v in bbox)
    ih, iw = input_size
    if w <= 0 and h <= 0:
        raise DatasetError(f"box {list(bbox)} is empty; a top-down crop needs w, h > 0")
    width = max(w, h * iw / ih)  # the box grown to the input's aspect ratio
    s = iw / (width * padding)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    return np.array([[s, 0.0, 0.5 * (iw - 1) - s * cx], [0.0, s, 0.5 * (ih - 1) - s * cy]])


def letterbox_matrix(image_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """2 x 3 image -> input affine fitting an (H, W) image into the (H, W) input, aspect kept,
    centred (bottom-up)."""
    h, w = image_size
    ih, iw = input_size
    s = min(iw / w, ih / h)
    return np.array([[s, 0.0, 0.5 * (iw - s * w)], [0.0, s, 0.5 * (ih - s * h)]])


def apply_affine(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(..., 2) points through a 2 x 3 affine; NaN stays NaN."""
    m = np.asarray(matrix, np.float64)
    return np.asarray(xy, np.float64) @ m[:, :2].T + m[:, 2]


def normalise_image(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-0.5, 0.5] (what the demo nets take)."""
    return (np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0 - 0.5).astype(np.float32)


def make_targets(keypoints: np.ndarray, visible: np.ndarray, layout: Layout, out_size: tuple[int, int],
                 stride: int, sigma: float = 1.0, paf_width: float | None = None) -> dict:
    """Training targets at the network's output size.

    keypoints: (N, K, 2) network-input pixels; visible: (N, K) bool; out_size: (h, w) output
    maps; stride: input pixels per output pixel; sigma (output pixels) of the Gaussians;
    paf_width: half-width (output pixels) of the PAF band, None for no PAFs.
    Returns {"heatmaps": (K, h, w) float32, and "pafs": (2L, h, w) float32 if paf_width}; the
    PAF channels are in the layout's order (``PAF_CHANNELS``, e.g. OpenPose's POSE_MAP_INDEX for
    openpose_18; else (2l, 2l + 1)), what :class:`pose_ros.core.decode.PafDecoder` reads."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, len(layout), 2) / float(stride)
    vis = np.asarray(visible, bool).reshape(kp.shape[:2])
    out = {"heatmaps": gaussian_heatmaps(kp, out_size, sigma, vis)}
    if paf_width is not None:
        pafs = paf_fields(kp, layout.limbs, out_size, paf_width, vis)  # (2l, 2l + 1) order
        ch = PAF_CHANNELS.get(layout.name)
        if ch is not None:
            ordered = np.empty_like(pafs)
            for li, (cx, cy) in enumerate(ch):
                ordered[cx], ordered[cy] = pafs[2 * li], pafs[2 * li + 1]
            pafs = ordered
        out["pafs"] = pafs
    return out


class CocoKeypoints:
    """A COCO keypoints dataset as training samples (map-style; works with torch's DataLoader).

    image_dir: folder of the json's ``file_name`` s; annotations: the json path or dict.
    mode: ``"crop"`` (one sample per person, top-down) or ``"full"`` (one per image, bottom-up).
    layout: target keypoint layout (COCO-17 is mapped by joint name; neck = mid-shoulders).
    input_size: (H, W) network input pixels; stride: input pixels per output pixel;
    sigma: heatmap Gaussian sigma in output pixels; paf_width: PAF half-width in output pixels
    (``"full"`` mode; None for no PAFs); padding: crop box scale (``"crop"`` mode).

    ``dataset[i]`` is a dict: ``image`` (3, H, W) float32 (:func:`normalise_image`),
    ``heatmaps`` (K, h, w) float32, ``pafs`` (2L, h, w) float32 (full mode with paf_width),
    ``mask`` (1, h, w) float32 (0 over crowd / unlabelled people, OpenPose's W(p); 1 elsewhere),
    ``keypoints`` (N, K, 2) float64 input pixels (NaN where not labelled), ``visible`` (N, K)
    bool, ``matrix`` (2, 3) float64 image -> input, ``image_id`` int. Crop mode has N = 1."""

    def __init__(self, image_dir, annotations, mode: str = "crop", layout: Layout = COCO_17,
                 input_size: tuple[int, int] = (64, 64), stride: int = 4, sigma: float = 1.0,
                 paf_width: float | None = 1.0, padding: float = 1.25, min_keypoints: int = 1):
        if mode not in ("crop", "full"):
            raise DatasetError(f"mode must be 'crop' (top-down) or 'full' (bottom-up), not {mode!r}")
        ih, iw = input_size
        if ih % stride or iw % stride:
            raise DatasetError(f"input_size {input_size} must be a multiple of the stride {stride}")
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DatasetError(f"image folder {self.image_dir} does not exist")
        self.images = parse_coco(annotations)
        self.mode, self.layout, self.input_size, self.stride = mode, layout, (ih, iw), int(stride)
        self.out_size = (ih // stride, iw // stride)
        self.sigma, self.paf_width, self.padding = float(sigma), paf_width, float(padding)
        if mode == "crop":
            self.items = [(im, p) for im in self.images for p in im.people
                          if p.visible.sum() >= min_keypoints]
        else:
            self.items = [(im, None) for im in self.images if im.people]
        if not self.items:
            raise DatasetError(f"no samples: no person has >= {min_keypoints} labelled keypoints")

    def __len__(self) -> int:
        return len(self.items)

    def read_image(self, im: CocoImage) -> np.ndarray:
        """(H, W, 3) uint8 RGB of one image (DatasetError if it cannot be read)."""
        path = self.image_dir / im.file_name
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"cannot read image {path} (listed in the annotations as image "
                               f"{im.id}); check image_dir")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range (dataset has {len(self)})")
        im, person = self.items[i]
        rgb = self.read_image(im)
        ih, iw = self.input_size
        if person is not None:
            m = box_crop_matrix(person.bbox, self.input_size, self.padding)
            people = [person]
        else:
            m = letterbox_matrix(rgb.shape[:2], self.input_size)
            people = im.people
        img = cv2.warpAffine(rgb, m, (iw, ih), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        kp, vis = to_layout(np.stack([p.keypoints for p in people]), np.stack([p.visible for p in people]),
                            self.layout)
        kp = apply_affine(m, kp)
        vis &= (kp[..., 0] >= 0) & (kp[..., 0] <= iw - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= ih - 1)
        t = make_targets(kp, vis, self.layout, self.out_size, self.stride, self.sigma,
                         self.paf_width if self.mode == "full" else None)
        mask = np.ones(self.out_size, np.float32)
        sc = 1 << 4
        for poly in im.ignore:
            q = apply_affine(m, poly) / self.stride
            cv2.fillPoly(mask, [np.round(q * sc).astype(np.int32)], 0.0, cv2.LINE_8, 4)
        return {"image": normalise_image(img), **t, "mask": mask[None], "keypoints": kp,
                "visible": vis, "matrix": m, "image_id": im.id}
