"""Shared `main()` plumbing for pose_ros's node executables."""
from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 1) -> int:
    """rclpy.init, build the node (a construction error is printed, exit code 1), spin until
    Ctrl-C / SIGTERM, clean up. Errors raised only because of a signal-triggered shutdown are
    not reported; real errors propagate."""
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = factory()
    except Exception as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
