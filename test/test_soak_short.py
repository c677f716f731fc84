"""A short soak (issue 12, item 5): 300 frames through a real pose_node process over loopback
DDS (benchmarks/bench_soak.py, the full run is 10,000 frames in `make bench`). Timing-free
checks only: after the warm-up the node's threads and open file descriptors stay flat
(/proc/<pid>/status, /proc/<pid>/fd), RSS grows little, every frame is answered, and the
tracking state returns to nothing whenever nobody is in view (people come and go every 50
frames; stamps follow a synthetic 30 fps clock, so time-based tracking rules do not depend
on the machine's speed). Also: the id source's and the /tf history's memory are bounded."""
from __future__ import annotations

import sys
import tracemalloc

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np
from bench_soak import soak

from pose_ros.core.geometry import Rigid
from pose_ros.core.pipeline import TrackIds
from pose_ros.ros.tf_lookup import TfHistory

FRAMES, WARMUP, PHASE = 300, 100, 50


def test_threads_fds_rss_and_tracking_state_flat_over_300_frames(models, tmp_path):
    # re-identification window 1 s < an empty phase (50 frames = 1.67 s of stamps): lost tracks
    # must be forgotten by the end of it
    r = soak(FRAMES, phase=PHASE, sample_every=10, params={"track_reid_time": 1.0},
             log_path=tmp_path / "pose_node.log")
    log = (tmp_path / "pose_node.log").read_text()[-2000:]
    assert r.answered == FRAMES, f"{FRAMES - r.answered} frames unanswered; node log:\n{log}"
    after = r.after(WARMUP)
    assert len(after) >= 15
    threads = sorted({s.threads for s in after})
    fds = sorted({s.fds for s in after})
    assert len(threads) == 1, f"threads after the warm-up: {[s.threads for s in after]}"
    assert len(fds) == 1, f"open fds after the warm-up: {[s.fds for s in after]}"
    growth = (after[-1].rss_mib - after[0].rss_mib) / after[0].rss_mib
    assert growth < 0.10, f"RSS {after[0].rss_mib:.0f} -> {after[-1].rss_mib:.0f} MiB after the warm-up"
    # frames 100-149 have nobody in view (phases of 50: both, left, nobody, right, both, left)
    assert [n for n, _, _ in r.empty_ends] == [149], r.empty_ends
    assert all(t == 0 and lost == 0 for _, t, lost in r.empty_ends), \
        f"tracks / lost tracks left with nobody in view: {r.empty_ends}"
    assert r.tracks, "no tracking state in /diagnostics"
    assert max(t + lost for _, t, lost in r.tracks) <= 8, r.tracks
    assert r.node_exit == 0, log


def test_track_id_memory_is_bounded_and_recent_ids_unique():
    ids = TrackIds(seed=5)
    tracemalloc.start()  # before the first id: every id object kept is traced
    try:
        for _ in range(2 * TrackIds.MEMORY):  # memory full: the oldest id is forgotten from now on
            ids()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2 * TrackIds.MEMORY):  # a static-mode node issues ids every frame
            ids()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # remembering every id would keep ~50-70 bytes each (6-9 MB here); bounded: ~nothing
    assert grown < 500_000, f"{grown} bytes kept for {2 * TrackIds.MEMORY} more ids"
    recent = [ids() for _ in range(TrackIds.MEMORY)]
    assert len(set(recent)) == len(recent)


def test_tf_history_forgets_the_samples_of_frames_nobody_publishes_any_more():
    """pose_node's own /tf listener (no tf2_ros) stores body_<id> frames of people long gone:
    found by the soak benchmark's tracemalloc run (the node's largest growth per frame)."""
    hist = TfHistory(cache_s=2.0)
    eye = np.array([1.0, 0, 0, 0])
    tracemalloc.start()
    try:
        before = 0
        for person in range(100):  # one after another, each in view 2 s at 30 Hz
            if person == 50:
                before = tracemalloc.get_traced_memory()[0]
            for k in range(60):
                t = person * 2 * 10**9 + k * 10**9 // 30  # ns
                hist.add("camera", f"body_{person}", t, Rigid(np.array([0.0, 0, k]), eye))
                hist.add("odom", "camera", t, Rigid(np.zeros(3), eye))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 50 gone people x 60 samples would keep ~1.5 MB; their latest transform only: ~50 kB
    assert grown < 400_000, f"{grown} bytes for 50 more people who left"
    # what a lookup needs stays: the latest transform of a gone frame, the live frame's history
    last = hist.lookup("camera", "body_0")
    assert last is not None and last.t[2] == 59.0
    assert hist.lookup("odom", "camera", 99 * 2 * 10**9 + 10**9) is not None  # 1 s before the end
