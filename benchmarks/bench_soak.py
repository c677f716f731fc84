"""Soak: push --frames (default 10,000) camera frames through pose_node (its own process,
started as users start it) over loopback DDS, each frame published as soon as the node has
answered the previous one (as fast as the node keeps up; nothing is dropped), and watch the
node for leaks:

  * RSS, threads (/proc/<pid>/status) and open file descriptors (/proc/<pid>/fd) every
    --sample-every frames; after the warm-up (--warmup frames: every occupancy of the scene
    has been seen) RSS must grow < 5 %, threads and fds must stay flat;
  * tracking state: people come and go (phases of --phase frames: both, left only, nobody,
    right only), so tracks are born, lost and forgotten over and over; the node's
    /diagnostics "tracks (active)" / "tracks (lost, re-identifiable)" must return to 0 at the
    end of every empty phase (longer than track_max_misses + track_reid_time) and stay small.

Frames are 640x480 rgb8 with two real people (scikit-image's astronaut, and a mirrored
recoloured copy), stamped on a synthetic 30 fps clock (n / 30 s after the start), so the
tracker's time-based rules (re-identification window, stale stamps) behave the same on a fast
or a loaded machine. pose_node runs its defaults. Prints the table and FAIL lines for missed targets (--strict: exit 1 then).

    scripts/run.sh python benchmarks/bench_soak.py [--frames 10000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import table
from nodeproc import Client, GridScene, ProcSample, proc_sample, start_node, stop_node
from scipy.stats import theilslopes

SOAK_PARAMS: dict = {}  # pose_node's defaults
PHASES = ((0, 1), (0,), (), (1,))  # occupied cells: both, left only, nobody, right only
RSS_TARGET = 0.05  # growth after the warm-up
PHANTOM_FRAMES = 5  # an id reported for at most this many frames is a phantom, not a person


@dataclass
class SoakResult:
    frames: int = 0
    answered: int = 0
    retries: int = 0  # frames sent again (no answer within the timeout: lost in best-effort DDS)
    seconds: float = 0.0
    samples: list[tuple[int, ProcSample]] = field(default_factory=list)  # (frame, sample)
    # (frame, tracks, lost) from every diagnostics message, and at the end of each empty phase
    tracks: list[tuple[int, int, int]] = field(default_factory=list)
    empty_ends: list[tuple[int, int, int]] = field(default_factory=list)
    ids_per_cell: dict[int, set[int]] = field(default_factory=dict)
    frames_per_id: dict[int, int] = field(default_factory=dict)  # id -> frames it was reported
    appearances: int = 0  # times a person entered the scene
    appearances_per_cell: dict[int, int] = field(default_factory=dict)
    node_exit: int | None = None

    def after(self, warmup: int) -> list[ProcSample]:
        return [s for n, s in self.samples if n >= warmup]


def _tracks(diag: dict) -> tuple[int, int] | None:
    if "tracks (active)" not in diag:
        return None
    return int(diag["tracks (active)"]), int(diag["tracks (lost, re-identifiable)"])


def soak(frames: int, phase: int = 250, sample_every: int = 100, params: dict | None = None,
         width: int = 640, height: int = 480, log_path: Path | None = None, timeout: float = 3.0,
         attempts: int = 5) -> SoakResult:
    """Run pose_node with ``params`` (over SOAK_PARAMS) for ``frames`` frames; see the module
    docstring. ``timeout``: s to wait for one frame's answer before sending it again (same
    stamp: images and CameraInfo are best effort), at most ``attempts`` times."""
    scene = GridScene(width, height, 1, 2, sway=10, period=60, people=(0, 2))
    ns = f"/soak_{os.getpid()}"  # apart from anything else in this DDS domain
    proc = start_node(ns, {"backend": "onnxruntime", **SOAK_PARAMS, **(params or {})}, log_path)
    client = Client(ns, width, height)
    cycle = {occ: [client.image_msg(scene.frame(n, occ)) for n in range(scene.period)] for occ in PHASES}
    out = SoakResult()
    t_stamp0 = client.now_ns()
    try:
        # start-up: until the node answers a frame (model load, discovery)
        t0 = time.monotonic()
        while not client.spin_until(time.monotonic() + 0.5, lambda: client.received(t_stamp0)):
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                raise RuntimeError(f"pose_node gave no answer (exit {proc.poll()}); see {log_path}")
            client.publish(cycle[PHASES[0]][0], t_stamp0)
        start = time.monotonic()
        last_occ: tuple = ()
        for n in range(frames):
            occ = PHASES[(n // phase) % len(PHASES)]
            out.appearances += len(set(occ) - set(last_occ))
            for cell in set(occ) - set(last_occ):
                out.appearances_per_cell[cell] = out.appearances_per_cell.get(cell, 0) + 1
            last_occ = occ
            stamp = t_stamp0 + (n + 1) * 10**9 // 30
            out.frames += 1
            for attempt in range(attempts):  # best-effort input: a lost image is sent again
                out.retries += attempt > 0
                client.publish(cycle[occ][n % scene.period], stamp)
                if client.spin_until(time.monotonic() + timeout, lambda s=stamp: client.received(s)):
                    out.answered += 1
                    break
            if n % sample_every == 0 or n == frames - 1:
                out.samples.append((n, proc_sample(proc.pid)))
            with client.lock:
                tr = _tracks(client.diag)
                client.diag = {}
            if tr is not None:
                out.tracks.append((n, *tr))
            if not occ and (n + 1) % phase == 0:  # the end of an empty phase: the state now
                client.spin_until(time.monotonic() + 3.0, lambda: _tracks(client.diag) is not None)
                with client.lock:
                    tr = _tracks(client.diag)
                    client.diag = {}
                if tr is not None:
                    out.empty_ends.append((n, *tr))
        out.seconds = time.monotonic() - start
        with client.lock:
            for r in client.results:
                for i, x, y in r[3]:
                    out.ids_per_cell.setdefault(scene.cell_of(x, y), set()).add(i)
                    out.frames_per_id[i] = out.frames_per_id.get(i, 0) + 1
    finally:
        client.close()
        out.node_exit = stop_node(proc)
    return out


def failures(r: SoakResult, warmup: int, rss_target: float = RSS_TARGET, max_tracks: int = 8) -> list[str]:
    """What missed its target (empty: all good)."""
    bad = []
    after = r.after(warmup)
    if len(after) < 2:
        return [f"too few samples after the warm-up ({len(after)})"]
    growth = (after[-1].rss_mib - after[0].rss_mib) / after[0].rss_mib
    if growth >= rss_target:
        bad.append(f"RSS grew {growth:.1%} after the warm-up (target < {rss_target:.0%})")
    if len({s.threads for s in after}) > 1:
        bad.append(f"threads not flat: {sorted({s.threads for s in after})}")
    if len({s.fds for s in after}) > 1:
        bad.append(f"open fds not flat: {sorted({s.fds for s in after})}")
    if not r.empty_ends:
        bad.append("no tracking state seen at the end of an empty phase")
    for n, tracks, lost in r.empty_ends:
        if tracks or lost:
            bad.append(f"frame {n}: {tracks} tracks / {lost} lost tracks left with nobody in view")
    most = max((t + lost for _, t, lost in r.tracks + r.empty_ends), default=0)
    if most > max_tracks:
        bad.append(f"up to {most} tracks (active + lost) for 2 people (bound {max_tracks})")
    if r.answered < r.frames:
        bad.append(f"{r.frames - r.answered} of {r.frames} frames got no answer")
    return bad


def report(r: SoakResult, warmup: int) -> list[list]:
    after = r.after(warmup)
    rss = np.array([s.rss_mib for s in after])
    frames = np.array([n for n, _ in r.samples if n >= warmup], float)
    slope = theilslopes(rss, frames)[0] * 1000 if len(rss) > 2 else float("nan")
    most = max((t + lost for _, t, lost in r.tracks + r.empty_ends), default=0)
    first = r.samples[0][1]
    return [[f"{r.frames} ({r.answered} answered, {r.retries} sent again)", f"{r.seconds / 60:.1f} min ({r.frames / r.seconds:.1f} /s)",
             f"{first.rss_mib:.0f} / {rss[0]:.0f} / {rss[-1]:.0f} / {rss.max():.0f}",
             f"{(rss[-1] - rss[0]) / rss[0]:+.2%} ({slope:+.2f} MiB/1000)",
             f"{min(s.threads for s in after)}-{max(s.threads for s in after)}",
             f"{min(s.fds for s in after)}-{max(s.fds for s in after)}",
             f"{most}; 0 after {sum(1 for _, t, lost in r.empty_ends if t + lost == 0)}/{len(r.empty_ends)} "
             "empty phases",
             ", ".join(f"person {c + 1}: {len(v)} / {r.appearances_per_cell.get(c, 0)} "
                       f"({sum(r.frames_per_id[i] <= PHANTOM_FRAMES for i in v)} phantoms)"
                       for c, v in sorted(r.ids_per_cell.items()))]]


HEADER = ["frames", "time", "RSS MiB first / warm / end / max", "RSS growth after warm-up", "threads",
          "fds", "tracks+lost max", "distinct ids / appearances (1 each is perfect; phantoms: ids "
          f"reported <= {PHANTOM_FRAMES} frames)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=1000, help="frames before the RSS baseline")
    ap.add_argument("--phase", type=int, default=250, help="frames per occupancy phase")
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--log", type=Path, default=None, help="keep the node's log here")
    ap.add_argument("--strict", action="store_true", help="exit 1 on FAIL (make bench only prints it)")
    args, _ = ap.parse_known_args()
    log = args.log or Path(tempfile.mkdtemp(prefix="pose_ros_soak_")) / "pose_node.log"
    warmup = min(args.warmup, args.frames // 2)
    r = soak(args.frames, args.phase, args.sample_every, log_path=log)
    print(f"\nSoak: {args.frames} frames 640x480 (2 people coming and going, phases of {args.phase} frames) "
          f"through pose_node over loopback DDS, each published when the previous one was answered; "
          f"node params: defaults + {SOAK_PARAMS}; warm-up {warmup} frames")
    print(table(report(r, warmup), HEADER))
    bad = failures(r, warmup)
    for b in bad:
        print(f"FAIL: {b}")
    if not bad:
        print(f"PASS: RSS growth < {RSS_TARGET:.0%} after the warm-up, threads and fds flat, tracking "
              "state back to 0 with nobody in view")
    print(f"(node log: {log}; node exit {r.node_exit})")
    if bad and args.strict:
        sys.exit(1)


if __name__ == "__main__":
    main()
