"""Load: pose_node (its own process, started as users start it) fed a 30 Hz camera stream over
loopback DDS for a fixed time, two streams one after the other in the same run:

  * load: 1920x1080 rgb8, a 3x3 grid of real people (scikit-image's astronaut and cameraman,
    mirrored / recoloured), each swaying sideways; pose_node with its defaults (what a user who
    changes nothing gets: ``detector_tiles: 3`` + pyramid, ``tile_scan_period: 1.0``,
    ``max_persons: 10``);
  * peer: 640x480, one person (the astronaut), pose_node's defaults -- the common single-camera
    case through the same node, transport and rate, so the ratios isolate what 1080p x 9
    people cost (MediaPipe's Python solution is single-person: it cannot be a 9-person peer).

Per stream: processed rate, drops (published - processed; the node's own dropped counter from
/diagnostics; the rest never reached the node: DDS keep-last-1 replaced them), latency (image
stamp -> SkeletonArray received here) p50 / p99, p50 in the first and last third and its trend
(ms per minute), the node's RSS / threads / fds at the start and end (/proc, sampled each s),
people per frame and distinct ids per grid cell over the run (output people are assigned to
cells by their mid-shoulder; 1 id per person is perfect). Newest frame wins: latency must stay
bounded by about two processing times plus one frame interval, never grow with a queue.

    scripts/run.sh python benchmarks/bench_load.py [--duration 60] [--rate 30]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import table
from nodeproc import Client, GridScene, proc_sample, start_node, stop_node
from scipy.stats import theilslopes

LOAD_PARAMS: dict = {}  # pose_node's defaults
REID_TIME = 5.0  # s, pose_node's default track_reid_time: a longer gap ends an id by design


def run_stream(name: str, scene: GridScene, params: dict, duration: float, rate: float,
               occupied=None, log_dir: Path | None = None) -> dict:
    """Start pose_node, stream ``scene`` at ``rate`` Hz for ``duration`` s after a warm-up
    (model load, first people found, 3 s more), stop it; the measurements."""
    ns = f"/load_{name}_{os.getpid()}"  # apart from anything else in this DDS domain
    proc = start_node(ns, {"backend": "onnxruntime", **params}, log_dir / f"{name}.log" if log_dir else None)
    client = Client(ns, scene.width, scene.height)
    cycle = [client.image_msg(scene.frame(n, occupied)) for n in range(scene.period)]
    period = 1.0 / rate
    try:
        n = 0
        t0 = time.monotonic()
        while not any(r[3] for r in list(client.results)):  # model load, discovery, first people
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                raise RuntimeError(f"pose_node ({name}) gave no people (exit {proc.poll()}); see its log")
            client.publish(cycle[n % len(cycle)])
            n += 1
            client.spin_until(time.monotonic() + period)
        warm_end = time.monotonic() + 3.0
        while time.monotonic() < warm_end:
            client.publish(cycle[n % len(cycle)])
            n += 1
            client.spin_until(time.monotonic() + period)
        client.spin_until(time.monotonic() + 1.2)  # a diagnostics message after the warm-up
        with client.lock:
            first_result = len(client.results)
            d0 = dict(client.diag)
        samples = [proc_sample(proc.pid)]
        stamps: set[int] = set()
        start = time.monotonic()
        next_t, next_sample = start, start + 1.0
        while (now := time.monotonic()) < start + duration:
            if now >= next_t:
                stamps.add(client.publish(cycle[n % len(cycle)]))
                n += 1
                next_t += period
                if next_t < now:  # the publisher fell behind (a loaded machine): no burst
                    next_t = now + period
            if now >= next_sample:
                samples.append(proc_sample(proc.pid))
                next_sample += 1.0
            client.spin_until(min(next_t, next_sample))
        elapsed = time.monotonic() - start
        client.spin_until(time.monotonic() + 0.5)  # the last results in flight
        samples.append(proc_sample(proc.pid))
        client.spin_until(time.monotonic() + 1.2)  # a diagnostics message covering the run
        with client.lock:
            res = [r for r in client.results[first_result:] if r[2] in stamps]
            d1 = dict(client.diag)
    finally:
        client.close()
        code = stop_node(proc)
    if not res:
        raise RuntimeError(f"no results from pose_node ({name}) during the run")
    t = np.array([r[0] for r in res]) - start
    lat = np.array([r[1] for r in res])
    third = len(lat) // 3
    # age of each frame when the node took it, at most: the previous result's arrival here
    # minus this frame's stamp (the worker takes its next frame after publishing the previous
    # result). Newest frame wins: <= one frame interval + transport; a queue would add
    # whole processing times.
    recv_ns = np.array([r[2] + r[1] * 1e6 for r in res])
    age = np.clip((recv_ns[:-1] - np.array([r[2] for r in res[1:]])) * 1e-6, 0.0, None)
    key = "dropped frames (total)"
    node_dropped = int(d1.get(key, 0)) - int(d0.get(key, 0))
    ids: dict[int, set[int]] = {}
    seen: dict[int, list[float]] = {}  # cell -> stamps (s) of the frames its person was in
    frames_of: dict[int, dict[int, int]] = {}  # cell -> id -> frames reported
    for r in res:
        for i, x, y in r[3]:
            c = scene.cell_of(x, y)
            ids.setdefault(c, set()).add(i)
            seen.setdefault(c, []).append(r[2] * 1e-9)
            frames_of.setdefault(c, {}).setdefault(i, 0)
            frames_of[c][i] += 1
    # per cell: ids, share of processed frames with its person, longest gap (s) between them,
    # frames each id was reported (a 1-3 frame id is a phantom, not a renumbered person)
    detail = {c: (len(ids[c]), len(set(v)) / max(len(res), 1),
                  float(np.diff(sorted(set(v))).max()) if len(set(v)) > 1 else float("nan"),
                  sorted(frames_of[c].values(), reverse=True),
                  int(np.sum(np.diff(sorted(set(v))) > REID_TIME)))
              for c, v in sorted(seen.items())}
    people = [len(r[3]) for r in res]
    rss = [s.rss_mib for s in samples]
    return {
        "name": name, "published": len(stamps), "elapsed": elapsed, "processed": len(res),
        "processed_hz": len(res) / elapsed, "sent_hz": len(stamps) / elapsed,
        "dropped": len(stamps) - len(res), "node_dropped": node_dropped,
        "p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
        "p50_first": float(np.median(lat[:third])), "p50_last": float(np.median(lat[-third:])),
        "trend": float(theilslopes(lat, t)[0] * 60.0) if len(t) > 2 else float("nan"),
        "age_p50": float(np.median(age)) if len(age) else float("nan"),
        "age_p99": float(np.percentile(age, 99)) if len(age) else float("nan"),
        "rss0": rss[0], "rss1": rss[-1], "rss_max": max(rss),
        "threads": (min(s.threads for s in samples), max(s.threads for s in samples)),
        "fds": (min(s.fds for s in samples), max(s.fds for s in samples)),
        "people": float(np.median(people)), "cells": len(ids), "scene_cells": len(occupied or range(scene.cells)),
        "ids_per_cell": sorted(len(v) for v in ids.values()), "cell_detail": detail,
        "pipeline_ms": d1.get("pipeline median (ms)", "?"), "exit": code,
    }


def verdict(m: dict) -> str:
    """Newest frame, bounded latency: the median age of a frame when the node takes it stays
    within one frame interval + 50 ms of transport and scheduling slack, and the last third's
    median latency within 25 % (+ 10 ms) of the first third's (a queue would grow both; the
    p99 age is printed: on a loaded CPU a worker that is not scheduled ages any frame)."""
    bound = 1e3 / m["sent_hz"] + 50.0
    flat = m["p50_last"] <= 1.25 * m["p50_first"] + 10.0
    ok = flat and m["age_p50"] <= bound
    return (f"{'newest frame, bounded' if ok else 'NOT BOUNDED'}: frame age when taken p50 "
            f"{m['age_p50']:.0f} ms (<= {bound:.0f}: {'yes' if m['age_p50'] <= bound else 'NO'}), p99 "
            f"{m['age_p99']:.0f} ms; latency p50 first / last third "
            f"{m['p50_first']:.0f} / {m['p50_last']:.0f} ms ({'flat' if flat else 'GROWING'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds per stream")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    ap.add_argument("--log-dir", type=Path, default=None, help="keep the nodes' logs here")
    ap.add_argument("--strict", action="store_true", help="exit 1 on FAIL (make bench only prints it)")
    args, _ = ap.parse_known_args()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pose_ros_load_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    load = run_stream("1080p_9people", GridScene(1920, 1080, 3, 3, sway=20, period=60), LOAD_PARAMS,
                      args.duration, args.rate, log_dir=log_dir)
    peer = run_stream("vga_1person", GridScene(640, 480, 1, 1, sway=20, period=60), {},
                      args.duration, args.rate, log_dir=log_dir)

    def row(m: dict) -> list:
        return [m["name"], f"{m['sent_hz']:.1f}", f"{m['processed_hz']:.1f}",
                f"{m['dropped']} ({m['node_dropped']})", f"{m['p50']:.0f}", f"{m['p99']:.0f}",
                f"{m['p50_first']:.0f} / {m['p50_last']:.0f}", f"{m['trend']:+.1f}",
                f"{m['rss0']:.0f} / {m['rss1']:.0f}", f"{m['threads'][0]}-{m['threads'][1]}",
                f"{m['fds'][0]}-{m['fds'][1]}", f"{m['people']:.0f} of {m['scene_cells']}",
                f"{m['cells']}: {m['ids_per_cell']}", m["pipeline_ms"]]

    ratio = ["load / peer", f"{load['sent_hz'] / peer['sent_hz']:.2f}x",
             f"{load['processed_hz'] / peer['processed_hz']:.2f}x", "", f"{load['p50'] / peer['p50']:.2f}x",
             f"{load['p99'] / peer['p99']:.2f}x", "", "", f"{load['rss1'] / peer['rss1']:.2f}x", "", "",
             "", "", ""]
    print(f"\npose_node under load: {args.rate:g} Hz camera for {args.duration:g} s per stream, onnxruntime "
          "CPU, loopback DDS (latency = image stamp -> SkeletonArray received; medians over the run)")
    print(table([row(load), row(peer), ratio],
                ["stream", "sent Hz", "processed Hz", "dropped (by node)", "p50 ms", "p99 ms",
                 "p50 1st / last third", "trend ms/min", "RSS MiB start / end", "threads", "fds",
                 "people/frame", "cells found: ids per cell", "node pipeline ms"]))
    print(f"load: node params {LOAD_PARAMS or 'defaults'}; peer: node defaults")
    for m in (load, peer):
        print(f"{m['name']}: {verdict(m)}; published {m['published']}, processed {m['processed']}, "
              f"dropped by the node {m['node_dropped']}, replaced in DDS's keep-last-1 queue "
              f"{m['dropped'] - m['node_dropped']}; RSS max {m['rss_max']:.0f} MiB; node exit {m['exit']}")
        print("  per cell: ids (frames each id was reported), share of processed frames with that "
              "person, longest gap s (a gap over track_reid_time, 5 s, ends the id by design): "
              + "; ".join(f"cell {c}: {n} ids (frames each: {frames}), {share:.0%}, {gap:.1f} s, "
                          f"{long} gaps > {REID_TIME:g} s"
                          for c, (n, share, gap, frames, long) in m["cell_detail"].items()))
    print(f"(node logs: {log_dir})")
    if "NOT" in verdict(load) + verdict(peer):
        print("FAIL: latency not bounded")
        if args.strict:
            sys.exit(1)


if __name__ == "__main__":
    main()
