"""Every DDS socket of our processes is bound to loopback (checked with `ss -uanp`)."""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess

import pytest
from std_msgs.msg import String

from conftest import spin_until


def udp_sockets(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every UDP socket the given processes own, from ss -uanp."""
    out = subprocess.run(["ss", "-uanp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 6:
            continue
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((pid, cols[3].rsplit(":", 1)[0].strip("[]")))
    return found


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
def test_dds_sockets_are_loopback_only(ros_node, spawn):
    echo = spawn("-m", "pose_ros.ros.roundtrip_demo", "--role", "echo")
    pub = ros_node.create_publisher(String, "in/loopback_probe", 10)
    got = []
    ros_node.create_subscription(String, "in/loopback_probe", got.append, 10)
    # wait until the other process is discovered, so its transports are fully set up
    assert spin_until(ros_node, lambda: "pose_ros_echo" in ros_node.get_node_names(), timeout=30)
    assert spin_until(ros_node, lambda: pub.publish(String(data="x")) or bool(got), timeout=10)
    socks = udp_sockets({os.getpid(), echo.pid})
    assert {pid for pid, _ in socks} == {os.getpid(), echo.pid}, socks  # the check sees both
    offenders = [(pid, addr) for pid, addr in socks if not ipaddress.ip_address(addr).is_loopback]
    assert not offenders, f"DDS sockets bound off loopback: {offenders}"
