"""The two top-down model families through pose_node over DDS (the bottom-up ones are in
test_spec_models.py): a top-down heatmap model cropping with the BlazePose detector on a real
photo, and a SimCC model cropping with a yolo_pose detector spec. The models are built in the
test; they light up red / blue dots drawn into the image, so the right answer is where the dots
were drawn (not what the code under test computes)."""
from __future__ import annotations

import numpy as np
from test_spec_models import COCO_17, dot_model, draw_dot, figure, topdown_dot_scene, write_spec, yolo_spec


def _skeletons_through_node(spec, image: np.ndarray, n_people: int):
    from test_node import Harness

    h = Harness(model_spec=str(spec), max_persons=2)
    try:
        got = []

        def done():
            with h.lock:
                got[:] = [m for m in h.got["skeletons"] if len(m.skeletons) == n_people]
            return bool(got)
        assert h.until(done, send=lambda: h.send(image=image), timeout=40), "no skeletons"
        return got[-1]
    finally:
        h.close()


def _xy(sk) -> np.ndarray:
    return np.array([[k.x, k.y] for k in sk.keypoints])


def test_topdown_heatmap_family_through_pose_node(tmp_path, models):
    img, red, blue, spec = topdown_dot_scene(tmp_path)
    msg = _skeletons_through_node(spec, img, 1)
    sk = msg.skeletons[0]
    assert sk.layout == "coco_17" and [k.name for k in sk.keypoints] == list(COCO_17.names)
    xy = _xy(sk)
    # the BlazePose crop of the astronaut is ~1290 px wide for 192 crop px: 6.7 px per crop px;
    # a quarter of a crop pixel is the decoder's budget (the core test measured 0.96 / 0.12 px)
    assert np.linalg.norm(xy[:8] - red, axis=1).max() < 1.7
    assert np.linalg.norm(xy[8:] - blue, axis=1).max() < 1.7


def test_simcc_family_through_pose_node(tmp_path):
    img = np.full((480, 640, 3), 90, np.uint8)
    dots = [((120.0, 180.0), (170.0, 330.0)), ((470.0, 200.0), (520.0, 300.0))]
    for r, bl in dots:
        draw_dot(img, r, (255, 0, 0), 5)
        draw_dot(img, bl, (0, 0, 255), 5)
    yolo_spec(tmp_path, [figure(COCO_17, (150, 250), 280), figure(COCO_17, (495, 250), 260)],
              [0.9, 0.8], (640, 480), (320, 240), name="det")
    dot_model(tmp_path / "sc.onnx", 256, 192, 17, "simcc")
    spec = write_spec(tmp_path / "sc.yaml", {
        "family": "simcc", "model": "sc.onnx", "keypoints": "coco_17", "detector": "det.yaml",
        "input": {"width": 192, "height": 256}, "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
        "decoder": {"min_score": 0.3}})
    msg = _skeletons_through_node(spec, img, 2)
    for sk in msg.skeletons:
        assert sk.layout == "coco_17"
        xy = _xy(sk)
        r, bl = min(dots, key=lambda d: np.hypot(*(xy[0] - d[0])))
        # crops ~ 280-300 px for 192 bins: 0.75 of a bin is ~1.2 px
        assert np.linalg.norm(xy[:8] - r, axis=1).max() < 1.5
        assert np.linalg.norm(xy[8:] - bl, axis=1).max() < 1.5
