"""One MediaPipe process doing what `pose-ros infer PHOTO --out DIR` does: read the photo,
BlazePose (model_complexity=1, static image), draw the skeleton, write the annotated image.
Runs in the MediaPipe benchmark venv (mediapipe 0.10.14 pins protobuf<5).

usage: python mediapipe_infer.py PHOTO OUT_DIR
"""
import sys
from pathlib import Path

import cv2
import mediapipe as mp

src, out = Path(sys.argv[1]), Path(sys.argv[2])
bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False) as pose:
    res = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
if res.pose_landmarks is None:
    sys.exit("no person found")
mp.solutions.drawing_utils.draw_landmarks(bgr, res.pose_landmarks, mp.solutions.pose.POSE_CONNECTIONS)
out.mkdir(parents=True, exist_ok=True)
cv2.imwrite(str(out / f"{src.stem}_pose.png"), bgr)
