"""Transform lookups for `target_frame`: tf2_ros's Buffer when the distro has it, else a
small listener on /tf and /tf_static that keeps the latest transform of every edge.

Both answer ``lookup(target, source) -> Rigid | None`` (latest available transforms; None
when no chain connects the two frames).
"""
from __future__ import annotations

import threading

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from pose_ros.core.geometry import Rigid

from .convert import rigid_from_msg
from .qos import TF_QOS

TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TransformLookup:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._buffer = None
        self._subs: list = []
        try:
            import tf2_ros
        except ImportError:
            from tf2_msgs.msg import TFMessage

            self._edges: dict[str, tuple[str, Rigid]] = {}  # child -> (parent, parent<-child)
            self._lock = threading.Lock()
            self._subs = [node.create_subscription(TFMessage, "/tf", self._on_tf, TF_QOS),
                          node.create_subscription(TFMessage, "/tf_static", self._on_tf, TF_STATIC_QOS)]
        else:
            self._buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(self._buffer, node, spin_thread=False)

    def destroy(self) -> None:
        """Release subscriptions (lifecycle cleanup)."""
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
        if self._buffer is not None and hasattr(self._listener, "unregister"):
            self._listener.unregister()

    def _on_tf(self, msg) -> None:
        with self._lock:
            for t in msg.transforms:
                self._edges[t.child_frame_id.lstrip("/")] = (t.header.frame_id.lstrip("/"),
                                                             rigid_from_msg(t.transform))

    def _to_root(self, frame: str) -> list[tuple[str, Rigid]]:
        """[(ancestor, ancestor <- frame)] from ``frame`` itself up to its root."""
        out, acc, seen = [(frame, Rigid.identity())], Rigid.identity(), {frame}
        while frame in self._edges:
            parent, parent_from_frame = self._edges[frame]
            if parent in seen:  # a loop in /tf: stop
                break
            acc = parent_from_frame @ acc
            out.append((parent, acc))
            seen.add(parent)
            frame = parent
        return out

    def lookup(self, target: str, source: str) -> Rigid | None:
        """target <- source, or None when unknown."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return Rigid.identity()
        if self._buffer is not None:
            import rclpy.time

            try:
                t = self._buffer.lookup_transform(target, source, rclpy.time.Time())
            except Exception:  # tf2 raises LookupException / ConnectivityException / ...
                return None
            return rigid_from_msg(t.transform)
        with self._lock:
            up_s = dict(self._to_root(source))  # frame -> frame<-source
            for frame, frame_from_target in self._to_root(target):
                if frame in up_s:  # common ancestor
                    return frame_from_target.inverse() @ up_s[frame]
        return None
