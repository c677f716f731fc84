"""Shared `main()` plumbing for pose_ros's node executables, with a quiet Ctrl-C.

A Ctrl-C in a terminal sends SIGINT to the whole process group: `ros2 launch` and every node
get it, and launch may send each node a second one (it does when non-interactive, e.g. under
launch_testing or a service manager; measured with launch 3.7). Whenever it comes (while the
modules import, while the model loads, while spinning or during the clean-up) a node must exit
with 0 and print no traceback. :func:`quiet_sigint` installs the handler that makes this so;
:func:`run_node` installs it before ``rclpy.init`` (rclpy's own handler wakes the executor
and then chains to it). Light on purpose: importing this module does not import rclpy.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

_state = {"running": False, "interrupts": 0}


def _ignore_sigint() -> None:
    """Ignore SIGINT at the OS level from now on. A Python-level handler is not enough: the
    interpreter resets those to SIG_DFL when it finalizes, so a second SIGINT arriving while
    the process exits (DDS teardown) would kill it with -2."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_sigint(signum, frame) -> None:
    _state["interrupts"] += 1
    if _state["interrupts"] > 1:
        return  # launch's second SIGINT (or a second Ctrl-C): the clean-up is already under way
    _ignore_sigint()  # rclpy's own handler has already run (it wakes and stops the executor)
    if _state["running"]:
        raise KeyboardInterrupt  # run_node unwinds model loading / spin and cleans up
    raise SystemExit(0)  # still importing: nothing to clean up, exit quietly


def quiet_sigint() -> None:
    """Install the SIGINT handler (main thread only; idempotent): the first SIGINT stops the
    program quietly, any later one is ignored. Call it first thing in an executable."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not _on_sigint:
        signal.signal(signal.SIGINT, _on_sigint)


def interrupted() -> bool:
    """True once a SIGINT arrived."""
    return _state["interrupts"] > 0


def run_node(factory: Callable[[], object], name: str, args: list[str] | None = None, threads: int = 1) -> int:
    """rclpy.init, build the node, spin until Ctrl-C / SIGTERM / external shutdown, clean up.

    Returns the exit code: 0 after a normal or signal-triggered shutdown (also when SIGINT
    arrives while the node is still being built, e.g. loading its model), 1 when building the
    node fails (the error is printed in one line). Errors raised only because of a
    signal-triggered shutdown are not reported; real errors propagate."""
    quiet_sigint()
    _state["running"] = True
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    node = None
    try:
        rclpy.init(args=args if args is not None else sys.argv)
        try:
            node = factory()
        except KeyboardInterrupt:
            return 0
        except Exception as exc:
            if interrupted() or not rclpy.ok():
                return 0  # failed because Ctrl-C / SIGTERM shut the context down meanwhile
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok() and not interrupted():
                raise
        return 0
    except KeyboardInterrupt:  # between the steps above
        return 0
    finally:
        for step in ((node.destroy_node,) if node is not None else ()) + (rclpy.try_shutdown,):
            try:
                step()
            except KeyboardInterrupt:  # the first SIGINT landed in the clean-up itself
                pass
        if interrupted():
            _ignore_sigint()  # rclpy.shutdown restored the Python-level handler: ignore again
