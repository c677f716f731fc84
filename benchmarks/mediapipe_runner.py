"""Runs MediaPipe's own BlazePose solution; executed inside the separate benchmark venv
(mediapipe==0.10.14 pins protobuf<5 and cannot share pose_ros's environment).

usage: python mediapipe_runner.py FRAMES.npy MODE(static|tracking) OUT.json
FRAMES.npy: N x H x W x 3 uint8 RGB. Writes per-frame latency (ms) and landmarks (px).
"""
import json
import sys
import time

import mediapipe as mp
import numpy as np

frames = np.load(sys.argv[1], mmap_mode="r")
static = sys.argv[2] == "static"
out = {"ms": [], "landmarks": []}
with mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=False,
                            enable_segmentation=False) as pose:
    for f in frames:
        f = np.ascontiguousarray(f)
        h, w = f.shape[:2]
        t = time.perf_counter()
        r = pose.process(f)
        dt = (time.perf_counter() - t) * 1e3
        out["ms"].append(dt)
        out["landmarks"].append(
            [[lm.x * w, lm.y * h, lm.visibility] for lm in r.pose_landmarks.landmark]
            if r.pose_landmarks else None)
json.dump(out, open(sys.argv[3], "w"))
