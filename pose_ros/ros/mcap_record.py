"""Record ROS topics to MCAP (ros2msg schemas + CDR payloads, as rosbag2 writes them), so the
file opens in Foxglove and reads back with mcap-ros2-support. No rosbag2 needed."""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from mcap.writer import CompressionType, Writer
from rclpy.node import Node

_BUILTIN = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
            "int32", "uint32", "int64", "uint64", "string", "wstring"}
_SEP = "=" * 80
# Chunks are compressed with zstd (readable by the mcap CLI, Foxglove, mcap-ros2-support and
# rosbag2's mcap plugin). A chunk must hold several images for zstd to find the repetition
# between consecutive frames: with mcap's default 1 MiB chunks each 640x480 image sits alone
# in its chunk. 8 MiB is ~0.3 s of two 640x480 RGB streams at 15 Hz (what a crash can lose).
CHUNK_SIZE = 8 * 1024 * 1024
COMPRESSION = "zstd"


def _find_msg(pkg: str, name: str) -> Path:
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
    for prefix in prefixes:
        p = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if p.is_file():
            return p
    raise FileNotFoundError(f"{pkg}/msg/{name}.msg not found under AMENT_PREFIX_PATH")


def message_definition(type_name: str) -> str:
    """Full ros2msg definition of ``pkg/msg/Type`` with its dependencies appended
    (``MSG: pkg/Type`` sections separated by '=' lines)."""
    pkg, _, name = type_name.split("/")
    main = _find_msg(pkg, name).read_text()
    seen: set[str] = set()
    parts: list[str] = []

    def deps(text: str, pkg: str) -> None:
        for raw in text.splitlines():
            tokens = raw.split("#", 1)[0].split()
            if len(tokens) < 2 or "=" in tokens[1]:  # blank, comment or constant
                continue
            base = re.sub(r"\[.*\]$", "", tokens[0]).split("<=")[0]
            if base in _BUILTIN:
                continue
            full = "std_msgs/Header" if base == "Header" else base if "/" in base else f"{pkg}/{base}"
            if full in seen:
                continue
            seen.add(full)
            dpkg, dname = full.split("/")[0], full.split("/")[-1]
            dtext = _find_msg(dpkg, dname).read_text()
            parts.append(f"{_SEP}\nMSG: {dpkg}/{dname}\n{dtext}")
            deps(dtext, dpkg)

    deps(main, pkg)
    return "\n".join([main, *parts])


class McapRecorder:
    """Subscribe (raw, serialized) to topics on ``node`` and write them to an MCAP file."""

    def __init__(self, node: Node, path: str | Path, topics: dict[str, tuple[type, object]],
                 compression: str = COMPRESSION, chunk_size: int = CHUNK_SIZE):
        """topics: {topic name: (message class, QoS profile)}. compression: "zstd", "lz4" or
        "none" (chunk compression); chunk_size: uncompressed bytes per chunk."""
        kinds = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        if compression not in kinds:
            raise ValueError(f"compression must be one of {sorted(kinds)}, got {compression!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")
        self._w = Writer(self._f, chunk_size=chunk_size, compression=kinds[compression])
        self._w.start(profile="ros2", library="pose_ros")
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._seq = 0
        for topic, (cls, qos) in topics.items():
            type_name = _type_name(cls)
            schema = self._w.register_schema(type_name, "ros2msg", message_definition(type_name).encode())
            channel = self._w.register_channel(node.resolve_topic_name(topic), "cdr", schema)
            self.counts[topic] = 0
            node.create_subscription(cls, topic, self._callback(topic, channel), qos, raw=True)

    def _callback(self, topic: str, channel: int):
        def write(data: bytes) -> None:
            now = time.time_ns()
            with self._lock:
                if self._w is None:
                    return
                self._w.add_message(channel, log_time=now, data=data, publish_time=now, sequence=self._seq)
                self._seq += 1
                self.counts[topic] += 1
        return write

    def close(self) -> None:
        with self._lock:
            if self._w is not None:
                self._w.finish()
                self._f.close()
                self._w = None


def _type_name(cls) -> str:
    module = cls.__module__.split(".")  # e.g. pose_ros.msg._skeleton_array
    return f"{module[0]}/msg/{cls.__name__}"
