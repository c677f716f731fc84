"""Transform lookups for `target_frame`, at a stamp: tf2_ros's Buffer when the distro has it,
else our own listener on /tf and /tf_static with a time history per edge (:class:`TfHistory`).

Both answer ``lookup(target, source, stamp_ns, timeout) -> Rigid | None``: the transform
target <- source at the image stamp (waiting up to ``timeout`` seconds for it to arrive), or
the latest one when ``stamp_ns`` is None; None when no chain connects the two frames (at that
time).
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import transforms3d
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from pose_ros.core.geometry import Rigid

from .convert import rigid_from_msg
from .qos import TF_QOS

TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def interpolate(a: Rigid, b: Rigid, s: float) -> Rigid:
    """The transform a fraction ``s`` in [0, 1] of the way from ``a`` to ``b``: translation
    interpolated linearly, rotation by slerp (shortest arc), as tf2 does."""
    qa, qb = np.asarray(a.q, np.float64), np.asarray(b.q, np.float64)
    if qa @ qb < 0:
        qb = -qb  # same rotation, shortest arc
    axis, angle = transforms3d.quaternions.quat2axangle(
        transforms3d.quaternions.qmult(transforms3d.quaternions.qinverse(qa), qb))
    q = transforms3d.quaternions.qmult(qa, transforms3d.quaternions.axangle2quat(axis, angle * s))
    return Rigid((1 - s) * np.asarray(a.t, np.float64) + s * np.asarray(b.t, np.float64), q)


@dataclass
class _Edge:
    parent: str
    static: Rigid | None = None  # /tf_static: valid at all times
    stamps: list[int] = field(default_factory=list)  # ns, ascending
    values: list[Rigid] = field(default_factory=list)  # parent <- child at stamps[i]


class TfHistory:
    """ROS-free transform buffer: a few seconds of history per edge (child -> parent), static
    edges valid at all times, lookups interpolated between the two stored transforms around
    the requested time. Not thread-safe (:class:`TransformLookup` locks it)."""

    def __init__(self, cache_s: float = 5.0) -> None:
        self.cache_ns = int(cache_s * 1e9)  # older than the newest sample - cache_s: dropped
        self._edges: dict[str, _Edge] = {}
        self._newest = self._swept = 0  # newest stamp seen, stamp of the last stale-edge sweep (ns)

    def add(self, parent: str, child: str, stamp_ns: int, value: Rigid, static: bool = False) -> None:
        """Store parent <- child valid at stamp_ns (static: at all times)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        edge = self._edges.get(child)
        if edge is None or edge.parent != parent:  # new edge, or re-parented: forget the old one
            edge = self._edges[child] = _Edge(parent)
        if static:
            edge.static = value
            return
        edge.static = None
        i = bisect.bisect_left(edge.stamps, stamp_ns)
        if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
            edge.values[i] = value
        else:
            edge.stamps.insert(i, stamp_ns)
            edge.values.insert(i, value)
        cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
        del edge.stamps[:cut], edge.values[:cut]
        if stamp_ns > self._newest:
            self._newest = stamp_ns
            if stamp_ns - self._swept >= self.cache_ns:  # at most once per cache_s of stamps
                self._swept = stamp_ns
                self._trim_stale(stamp_ns - self.cache_ns)

    def _trim_stale(self, oldest_ns: int) -> None:
        """Edges not updated since ``oldest_ns`` (e.g. ``body_<id>`` of a person who left) keep
        only their latest transform (what a latest-transform lookup uses): without this every
        id ever seen kept ``cache_s`` of samples per joint frame (soak benchmark)."""
        for e in self._edges.values():
            if e.static is None and len(e.stamps) > 1 and e.stamps[-1] < oldest_ns:
                del e.stamps[:-1], e.values[:-1]

    def _edge_at(self, edge: _Edge, stamp_ns: int | None) -> Rigid | None:
        if edge.static is not None:
            return edge.static
        if not edge.stamps:
            return None
        if stamp_ns is None:
            return edge.values[-1]
        if not edge.stamps[0] <= stamp_ns <= edge.stamps[-1]:
            return None  # no extrapolation, like tf2 (too old, or not received yet)
        i = bisect.bisect_left(edge.stamps, stamp_ns)
        if edge.stamps[i] == stamp_ns:
            return edge.values[i]
        t0, t1 = edge.stamps[i - 1], edge.stamps[i]
        return interpolate(edge.values[i - 1], edge.values[i], (stamp_ns - t0) / (t1 - t0))

    def _to_root(self, frame: str, stamp_ns: int | None) -> list[tuple[str, Rigid]]:
        """[(ancestor, ancestor <- frame)] from ``frame`` itself up as far as known at the stamp."""
        out, acc, seen = [(frame, Rigid.identity())], Rigid.identity(), {frame}
        while frame in self._edges:
            edge = self._edges[frame]
            parent_from_frame = self._edge_at(edge, stamp_ns)
            if parent_from_frame is None or edge.parent in seen:  # unknown then, or a loop
                break
            acc = parent_from_frame @ acc
            out.append((edge.parent, acc))
            seen.add(edge.parent)
            frame = edge.parent
        return out

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> Rigid | None:
        """target <- source at stamp_ns (None: each edge's latest), or None when unknown."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return Rigid.identity()
        up_s = dict(self._to_root(source, stamp_ns))  # frame -> frame <- source
        for frame, frame_from_target in self._to_root(target, stamp_ns):
            if frame in up_s:  # common ancestor
                return frame_from_target.inverse() @ up_s[frame]
        return None


class TransformLookup:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._buffer = None
        self._subs: list = []
        try:
            import tf2_ros
        except ImportError:
            from tf2_msgs.msg import TFMessage

            self._history = TfHistory()
            self._cond = threading.Condition()
            self._subs = [node.create_subscription(TFMessage, "/tf", self._on_tf, TF_QOS),
                          node.create_subscription(TFMessage, "/tf_static", self._on_tf_static,
                                                   TF_STATIC_QOS)]
        else:
            self._buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(self._buffer, node, spin_thread=False)

    @property
    def uses_tf2_ros(self) -> bool:
        return self._buffer is not None

    def destroy(self) -> None:
        """Release subscriptions (lifecycle cleanup)."""
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
        if self._buffer is not None and hasattr(self._listener, "unregister"):
            self._listener.unregister()

    def _store(self, msg, static: bool) -> None:
        with self._cond:
            for t in msg.transforms:
                s = t.header.stamp
                self._history.add(t.header.frame_id, t.child_frame_id, s.sec * 10**9 + s.nanosec,
                                  rigid_from_msg(t.transform), static)
            self._cond.notify_all()

    def _on_tf(self, msg) -> None:
        self._store(msg, static=False)

    def _on_tf_static(self, msg) -> None:
        self._store(msg, static=True)

    def lookup(self, target: str, source: str, stamp_ns: int | None = None,
               timeout: float = 0.0) -> Rigid | None:
        """target <- source at ``stamp_ns`` (ns since the epoch of the message stamps; None: the
        latest transforms), waiting up to ``timeout`` seconds for data at that stamp; None
        when unknown (no chain, or not at that time: the caller may fall back to the latest)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return Rigid.identity()
        if self._buffer is not None:
            import rclpy.duration
            import rclpy.time

            when = rclpy.time.Time() if stamp_ns is None else rclpy.time.Time(nanoseconds=stamp_ns)
            try:
                t = self._buffer.lookup_transform(target, source, when,
                                                  timeout=rclpy.duration.Duration(seconds=timeout))
            except Exception:  # tf2 raises LookupException / ExtrapolationException / ...
                return None
            return rigid_from_msg(t.transform)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._history.lookup(target, source, stamp_ns)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._cond.wait(left)  # woken by every /tf message
