"""Ctrl-C in a terminal: SIGINT to the whole process group, then launch's own SIGINT shortly
after. pose_node, the lifecycle node and demo_source must exit with 0 and print no traceback,
whether the signal comes while they load (imports, model) or while they spin."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sensor_msgs.msg import Image

from conftest import ROOT, spin_until
from pose_ros.ros.qos import SENSOR_QOS


class Proc:
    """A node executable started in its own session (= process group, as a
    terminal's foreground job), its merged stdout/stderr collected by a thread."""

    def __init__(self, which: str, *ros_args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen([sys.executable, *COMMANDS[which], "--ros-args", *ros_args], env=env,
                                  cwd=str(ROOT / "test"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True)
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, word: str, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.p.poll() is None:
            if word in self.text:
                return True
            time.sleep(0.05)
        return word in self.text

    def ctrl_c(self, second_after: float = 0.1) -> int:
        """SIGINT to the process group (the terminal), then a second one (launch forwarding it)."""
        os.killpg(self.p.pid, signal.SIGINT)
        time.sleep(second_after)
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
        try:
            rc = self.p.wait(timeout=30)
        finally:
            if self.p.poll() is None:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.t.join(5)
        return rc

    def assert_clean(self, rc: int) -> None:
        out = self.text
        assert rc == 0, f"exit code {rc}\n{out[-3000:]}"
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]


LIB = ROOT / "install" / "pose_ros" / "lib" / "pose_ros"  # what `ros2 run` / launch execute
COMMANDS = {
    "pose_node": ("-m", "pose_ros.ros.pose_node"),
    "pose_node_exe": (str(LIB / "pose_node"),),
    "lifecycle": (str(LIB / "pose_lifecycle_node"),),
    "demo_source": ("-m", "pose_ros.ros.demo_source"),
    "demo_source_exe": (str(LIB / "demo_source"),),
}
ORT = ("-p", "backend:=onnxruntime")


def wait_mapped(proc: Proc, lib: str, timeout: float = 60) -> bool:
    """Wait until the process has mapped a shared library whose path contains ``lib``: a
    deterministic "it is importing numpy now" / "it is loading the model now" (the moment
    onnxruntime's extension loads), instead of a guessed delay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.p.poll() is None:
        try:
            if lib in Path(f"/proc/{proc.p.pid}/maps").read_text():
                return True
        except OSError:
            pass
        time.sleep(0.002)
    return False


def wait_sigint_handled(proc: Proc, timeout: float = 60) -> bool:
    """Until the process catches or ignores SIGINT (/proc/<pid>/status SigCgt / SigIgn, bit 2)."""
    bit = 1 << (signal.SIGINT - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.p.poll() is None:
        try:
            fields = dict(line.split(":\t", 1) for line in
                          Path(f"/proc/{proc.p.pid}/status").read_text().splitlines() if ":\t" in line)
            if (int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)) & bit:
                return True
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("which", ["pose_node", "pose_node_exe", "lifecycle", "demo_source", "demo_source_exe"])
def test_ctrl_c_while_importing(which):
    """SIGINT while the executable imports its modules (numpy's extension is being mapped):
    before any rclpy code runs. (Earlier than that is Python's own start-up.)"""
    proc = Proc(which, *ORT) if which.startswith("pose") else Proc(which)
    assert wait_mapped(proc, "numpy"), proc.text[-2000:]
    assert "rclpy" not in Path(f"/proc/{proc.p.pid}/maps").read_text()  # really still importing
    proc.assert_clean(proc.ctrl_c())


@pytest.mark.parametrize("which", ["pose_node", "pose_node_exe"])
def test_ctrl_c_while_loading_the_model(which, models):
    """SIGINT while the model loads (onnxruntime is being loaded, before spin)."""
    proc = Proc(which, *ORT)
    assert wait_mapped(proc, "onnxruntime"), proc.text[-2000:]
    loading = "model loaded" not in proc.text
    proc.assert_clean(proc.ctrl_c())
    assert loading, "the model had already loaded: the SIGINT did not land during loading"


@pytest.mark.parametrize("delay", [0.5, 1.5], ids=lambda d: f"after_{d}s")
@pytest.mark.parametrize("which", ["pose_node", "lifecycle", "demo_source"])
def test_ctrl_c_soon_after_start(which, delay, models):
    """SIGINT `delay` s after the interpreter is up. The delay counts from the moment the process
    handles SIGINT at all (Python installs its handler during start-up; before that the kernel's
    default action ends any program with -2, whatever it is): on a loaded CI machine Python's own
    start-up can take longer than 0.5 s."""
    proc = Proc(which, *ORT) if which.startswith("pose") else Proc(which)
    assert wait_sigint_handled(proc), proc.text[-2000:]
    time.sleep(delay)
    proc.assert_clean(proc.ctrl_c())


@pytest.mark.parametrize("which", ["pose_node", "pose_node_exe"])
def test_ctrl_c_while_spinning_pose_node(which, models):
    proc = Proc(which, *ORT)
    assert proc.wait_for("model loaded"), proc.text[-2000:]
    time.sleep(0.5)
    proc.assert_clean(proc.ctrl_c())


@pytest.mark.parametrize("which", ["demo_source", "demo_source_exe"])
def test_ctrl_c_while_spinning_demo_source(which, ros_node):
    topic = f"/shutdown_test_{os.getpid()}/image"
    proc = Proc(which, "-p", "rate:=20.0", "-r", f"image:={topic}")
    got = []
    ros_node.create_subscription(Image, topic, got.append, SENSOR_QOS)
    assert spin_until(ros_node, lambda: got, timeout=60), proc.text[-2000:]
    proc.assert_clean(proc.ctrl_c())


@pytest.mark.parametrize("configured", [False, True])
def test_ctrl_c_while_spinning_lifecycle_node(configured, ros_node, models):
    """The managed node: unconfigured (answers get_state), or configured + active."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    name = f"pose_lc_{os.getpid()}"
    proc = Proc("lifecycle", *ORT, "-r", f"__node:={name}")
    cli = ros_node.create_client(GetState, f"/{name}/get_state")
    assert spin_until(ros_node, lambda: cli.service_is_ready(), timeout=60), proc.text[-2000:]
    if configured:
        change = ros_node.create_client(ChangeState, f"/{name}/change_state")
        for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            fut = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
            assert spin_until(ros_node, fut.done, timeout=60) and fut.result().success
    time.sleep(0.3)
    proc.assert_clean(proc.ctrl_c())


@pytest.mark.parametrize("second_after", [0.0, 0.5])
def test_second_sigint_during_cleanup(second_after, models):
    """The second SIGINT lands while the node tears down (worker join, model close)."""
    proc = Proc("pose_node", *ORT)
    assert proc.wait_for("model loaded"), proc.text[-2000:]
    proc.assert_clean(proc.ctrl_c(second_after))
